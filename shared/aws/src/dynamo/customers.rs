//! The [`CustomerDirectory`] and [`CustomerHistory`] ports on DynamoDB: one item per
//! customer, merged ones pointing at the survivor; a customer's records on `gsi2`.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Put, TransactWriteItem};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

use switchboard_core::ids::CustomerId;
use switchboard_core::model::{Customer, Record};
use switchboard_core::ports::{
    BackendError, CustomerDirectory, CustomerHistory, LinkError, Page, PageRequest, StoredRecord,
};

use super::*;
use crate::resources::{GSI2, PK, SK};
use crate::retry::{Attempt, until_no_conflict};

impl DynamoStore {
    pub(super) async fn load_customer(
        &self,
        id: &CustomerId,
        op: &'static str,
    ) -> Result<Option<Customer>, BackendError> {
        let out = self
            .client
            .get_item()
            .table_name(self.table.as_ref())
            .set_key(Some(customer_key(id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable(op))?;
        out.item.as_ref().map(customer_from).transpose()
    }

    /// The surviving customer of `id`, following merges.
    pub(super) async fn root_customer(
        &self,
        id: &CustomerId,
        op: &'static str,
    ) -> Result<Option<Customer>, BackendError> {
        let mut current = self.load_customer(id, op).await?;
        for _ in 0..MAX_HOPS {
            match current {
                Some(Customer {
                    merged_into: Some(next),
                    ..
                }) => current = self.load_customer(&next, op).await?,
                other => return Ok(other),
            }
        }
        Err(BackendError::unavailable(
            op,
            "customer merges form a cycle",
        ))
    }

    /// Lists the records of customer `from` under customer `to` (one query page and one
    /// `UpdateItem` per record: linking is an agent's action, not the intake path).
    async fn move_records(
        &self,
        from: &CustomerId,
        to: &CustomerId,
    ) -> Result<usize, BackendError> {
        const OP: &str = "link";
        if from == to {
            return Ok(0);
        }
        // Read every key first, then move: the index is eventually consistent, so re-reading
        // its first page after each move could meet moved records again.
        let mut keys = Vec::new();
        let mut cursor = None;
        loop {
            let page = PageRequest { cursor, limit: 500 };
            let (items, next) = self
                .query_page(OP, Some(GSI2), &format!("U#{from}"), true, &page)
                .await?;
            for item in items {
                keys.push(HashMap::from([
                    (
                        PK.to_owned(),
                        item.get(PK).cloned().ok_or_else(|| corrupt(OP, "pk"))?,
                    ),
                    (
                        SK.to_owned(),
                        item.get(SK).cloned().ok_or_else(|| corrupt(OP, "sk"))?,
                    ),
                ]));
            }
            match next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        for key in &keys {
            self.client
                .update_item()
                .table_name(self.table.as_ref())
                .set_key(Some(key.clone()))
                .update_expression("SET #g = :to")
                .condition_expression("attribute_exists(#pk)")
                .expression_attribute_names("#g", GSI2.pk)
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":to", s(format!("U#{to}")))
                .send()
                .await
                .map_err(unavailable(OP))?;
        }
        Ok(keys.len())
    }
}

#[async_trait]
impl CustomerDirectory for DynamoStore {
    async fn customer(&self, id: &CustomerId) -> Result<Option<Customer>, BackendError> {
        self.root_customer(id, "customer").await
    }

    async fn link(&self, into: &CustomerId, other: &CustomerId) -> Result<Customer, LinkError> {
        const OP: &str = "link";
        if into == other {
            return Err(LinkError::SameCustomer);
        }
        let mut survivor = self
            .root_customer(into, OP)
            .await?
            .ok_or_else(|| LinkError::UnknownCustomer(into.clone()))?;
        let mut merged = self
            .root_customer(other, OP)
            .await?
            .ok_or_else(|| LinkError::UnknownCustomer(other.clone()))?;
        if survivor.id != merged.id {
            if survivor.tier.is_none() {
                survivor.tier = merged.tier.clone();
            }
            for identity in std::mem::take(&mut merged.identities) {
                if !survivor
                    .identities
                    .iter()
                    .any(|i| i.customer_id == identity.customer_id)
                {
                    survivor.identities.push(identity);
                }
            }
            merged.merged_into = Some(survivor.id.clone());
            // Both customers change together, or neither does.
            let puts = [&survivor, &merged]
                .into_iter()
                .map(|c| {
                    let put = Put::builder()
                        .table_name(self.table.as_ref())
                        .set_item(Some(self.customer_item(c)?))
                        .build()
                        .map_err(unavailable(OP))?;
                    Ok(TransactWriteItem::builder().put(put).build())
                })
                .collect::<Result<Vec<_>, BackendError>>()?;
            self.client
                .transact_write_items()
                .set_transact_items(Some(puts))
                .send()
                .await
                .map_err(unavailable(OP))?;
        }
        // Also on a repeated link: finishes moving records an interrupted link left behind.
        let mut moved = self.move_records(&merged.id, &survivor.id).await?;
        if other != &merged.id && other != &survivor.id {
            moved += self.move_records(other, &survivor.id).await?;
        }
        tracing::info!(customer = %survivor.id, merged = %merged.id, moved, "customers linked");
        Ok(survivor)
    }

    async fn set_tier(
        &self,
        id: &CustomerId,
        tier: Option<&str>,
    ) -> Result<Option<Customer>, BackendError> {
        const OP: &str = "set_tier";
        until_no_conflict(
            OP,
            "the customer kept changing while its tier was set",
            self.backoff,
            || async {
                let Some(mut customer) = self.root_customer(id, OP).await? else {
                    return Ok(Attempt::Done(None));
                };
                let read = serde_json::to_string(&customer).map_err(unavailable(OP))?;
                customer.tier = tier.map(str::to_owned);
                let written = serde_json::to_string(&customer).map_err(unavailable(OP))?;
                // Only if the customer is still as read: a link in between is not overwritten.
                let outcome = self
                    .client
                    .update_item()
                    .table_name(self.table.as_ref())
                    .set_key(Some(customer_key(&customer.id)))
                    .update_expression("SET #state = :state")
                    .condition_expression("#state = :read")
                    .expression_attribute_names("#state", "state")
                    .expression_attribute_values(":state", s(written))
                    .expression_attribute_values(":read", s(read))
                    .send()
                    .await;
                match outcome {
                    Ok(_) => Ok(Attempt::Done(Some(customer))),
                    Err(e) if is_condition_failure(&e) => Ok(Attempt::Conflict),
                    Err(e) => Err(BackendError::unavailable(OP, e)),
                }
            },
        )
        .await
    }

    async fn timeline(
        &self,
        id: &CustomerId,
        page: PageRequest,
    ) -> Result<Page<StoredRecord>, BackendError> {
        self.records_page("customer_timeline", GSI2, &format!("U#{id}"), &page)
            .await
    }
}

#[async_trait]
impl CustomerHistory for DynamoStore {
    /// Queries `gsi2` (`U#<customer>`) on the provider-time range, newest first.
    async fn customer_records(
        &self,
        customer: &CustomerId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Record>, BackendError> {
        const OP: &str = "customer_records";
        if until <= since || limit == 0 {
            return Ok(Vec::new());
        }
        // `<ms>#<key>`: from the first key of `since` to the last key of the millisecond
        // before `until` ('~' sorts after every character of a key).
        let from = at_key(since, "");
        let to = at_key(until - chrono::Duration::milliseconds(1), "~");
        let mut records = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(self.table.as_ref())
                .index_name(GSI2.name)
                .key_condition_expression("#p = :p AND #s BETWEEN :from AND :to")
                .expression_attribute_names("#p", GSI2.pk)
                .expression_attribute_names("#s", GSI2.sk)
                .expression_attribute_values(":p", s(format!("U#{customer}")))
                .expression_attribute_values(":from", s(from.clone()))
                .expression_attribute_values(":to", s(to.clone()))
                .scan_index_forward(false)
                .limit(i32::try_from(limit - records.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable(OP))?;
            for item in out.items.unwrap_or_default() {
                records.push(stored_record_from(&item)?.record);
            }
            match out.last_evaluated_key {
                Some(k) if records.len() < limit => start = Some(k),
                _ => break,
            }
        }
        Ok(records)
    }
}
