//! The [`CustomerDirectory`] and [`CustomerHistory`] ports on DynamoDB: one item per
//! customer, merged ones pointing at the survivor; a customer's records on `gsi2`.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use chrono::{DateTime, Utc};
use std::collections::HashMap;

use switchboard_core::history::{Activity, ActivityNote};
use switchboard_core::ids::{ConversationId, CustomerId};
use switchboard_core::model::{Customer, Identifier, Link, LinkEvidence, Record, Sighting};
use switchboard_core::ports::{
    BackendError, CustomerDirectory, CustomerHistory, IdentityIndex, IdentityLookup, LinkError,
    Page, PageRequest, StoredRecord,
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

    /// Writes customers together, or none of them.
    async fn put_customers(
        &self,
        op: &'static str,
        customers: &[&Customer],
    ) -> Result<(), BackendError> {
        let puts = customers
            .iter()
            .map(|c| {
                let put = Put::builder()
                    .table_name(self.table.as_ref())
                    .set_item(Some(self.customer_item(c)?))
                    .build()
                    .map_err(unavailable(op))?;
                Ok(TransactWriteItem::builder().put(put).build())
            })
            .collect::<Result<Vec<_>, BackendError>>()?;
        self.client
            .transact_write_items()
            .set_transact_items(Some(puts))
            .send()
            .await
            .map_err(unavailable(op))?;
        Ok(())
    }

    /// Lists the records of customer `from` that `which` selects under customer `to` (one query page and one
    /// `UpdateItem` per record: linking is an agent's action, not the intake path).
    async fn move_records(
        &self,
        from: &CustomerId,
        to: &CustomerId,
        which: impl Fn(&Record) -> bool,
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
                if !which(&stored_record_from(&item)?.record) {
                    continue;
                }
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

    async fn link(
        &self,
        into: &CustomerId,
        other: &CustomerId,
        at: DateTime<Utc>,
        evidence: Option<LinkEvidence>,
    ) -> Result<Customer, LinkError> {
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
        let link = Link {
            customer_id: merged.id.clone(),
            at,
            evidence,
        };
        if survivor.absorb(&mut merged, link) {
            // Both customers change together, or neither does.
            self.put_customers(OP, &[&survivor, &merged]).await?;
        }
        // Also on a repeated link: finishes moving records an interrupted link left behind.
        let mut moved = self
            .move_records(&merged.id, &survivor.id, |_| true)
            .await?;
        if other != &merged.id && other != &survivor.id {
            moved += self.move_records(other, &survivor.id, |_| true).await?;
        }
        tracing::info!(customer = %survivor.id, merged = %merged.id, moved, "customers linked");
        Ok(survivor)
    }

    async fn unlink(
        &self,
        id: &CustomerId,
        other: &CustomerId,
    ) -> Result<(Customer, Customer), LinkError> {
        const OP: &str = "unlink";
        let mut survivor = self
            .root_customer(id, OP)
            .await?
            .ok_or_else(|| LinkError::UnknownCustomer(id.clone()))?;
        let mut split = self
            .load_customer(other, OP)
            .await?
            .ok_or_else(|| LinkError::UnknownCustomer(other.clone()))?;
        if !survivor.release(&mut split) {
            return Err(LinkError::NotLinked {
                id: survivor.id,
                other: split.id,
            });
        }
        // The customers merged into it before it was linked go with it.
        let mut nested = Vec::new();
        for identity in split.identity_ids().filter(|i| **i != split.id) {
            if let Some(mut c) = self.load_customer(identity, OP).await?
                && c.merged_into.as_ref() == Some(&survivor.id)
            {
                c.merged_into = Some(split.id.clone());
                nested.push(c);
            }
        }
        let mut changed = vec![&survivor, &split];
        changed.extend(nested.iter());
        self.put_customers(OP, &changed).await?;
        let theirs: Vec<CustomerId> = split.identity_ids().cloned().collect();
        let moved = self
            .move_records(&survivor.id, &split.id, |r| {
                r.customer()
                    .is_some_and(|c| theirs.contains(&c.customer_id))
            })
            .await?;
        tracing::info!(customer = %survivor.id, split = %split.id, moved, "customers unlinked");
        Ok((survivor, split))
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
                    .update_expression("SET #state = :state, #ttl = :ttl")
                    .condition_expression("#state = :read")
                    .expression_attribute_names("#state", "state")
                    .expression_attribute_names("#ttl", crate::resources::TTL_ATTRIBUTE)
                    .expression_attribute_values(":state", s(written))
                    .expression_attribute_values(":ttl", self.expires_at())
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

    /// One `BatchGetItem` of the identities' `ACTIVITY` items (up to 100 identities a call).
    async fn activity(&self, identities: &[CustomerId]) -> Result<Vec<Activity>, BackendError> {
        const OP: &str = "activity";
        if identities.is_empty() {
            return Ok(Vec::new());
        }
        let keys = identities.iter().map(activity_key).collect();
        let mut found = Vec::new();
        for item in self.batch_get(OP, keys, &[ACTIVITY]).await? {
            let identity = get_s(&item, PK)
                .and_then(|pk| pk.strip_prefix("U#"))
                .ok_or_else(|| corrupt(OP, "pk"))?;
            let Some(AttributeValue::M(noted)) = item.get(ACTIVITY) else {
                continue;
            };
            for (conversation, at) in noted {
                let at = at
                    .as_n()
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .and_then(DateTime::from_timestamp_millis)
                    .ok_or_else(|| corrupt(OP, ACTIVITY))?;
                found.push(Activity {
                    identity: CustomerId::from_stored(identity),
                    conversation: ConversationId::from_stored(conversation.as_str()),
                    at,
                });
            }
        }
        Ok(found)
    }

    /// One `UpdateItem` of the identity's `ACTIVITY` item: into its map (the entry set, the
    /// forgotten ones removed), or, for an identity's first note, the whole map made. When
    /// the item is not as expected (two first notes raced), the other form follows.
    async fn note_activity(
        &self,
        identity: &CustomerId,
        note: &ActivityNote,
    ) -> Result<(), BackendError> {
        const OP: &str = "note_activity";
        let mut into_map = !note.first;
        for _ in 0..3 {
            let outcome = if into_map {
                self.note_into_map(identity, note).await
            } else {
                self.first_note(identity, note).await
            };
            match outcome {
                Ok(_) => return Ok(()),
                Err(e) if is_condition_failure(&e) => into_map = !into_map,
                Err(e) => return Err(BackendError::unavailable(OP, e)),
            }
        }
        Err(BackendError::unavailable(
            OP,
            "the activity item kept changing while it was noted",
        ))
    }
}

type UpdateResult = Result<
    aws_sdk_dynamodb::operation::update_item::UpdateItemOutput,
    aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::update_item::UpdateItemError,
        aws_sdk_dynamodb::config::http::HttpResponse,
    >,
>;

impl DynamoStore {
    /// Sets the note's entry into the identity's map and removes the forgotten ones, if the
    /// item has a map.
    async fn note_into_map(&self, identity: &CustomerId, note: &ActivityNote) -> UpdateResult {
        let mut update = self
            .client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(activity_key(identity)))
            .condition_expression("attribute_exists(#a)")
            .expression_attribute_names("#a", ACTIVITY)
            .expression_attribute_names("#c", note.conversation.as_str())
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":at", n(note.at.timestamp_millis()))
            .expression_attribute_values(":ttl", self.expires_at());
        let mut expression = "SET #a.#c = :at, #ttl = :ttl".to_owned();
        let forget = note.forget.iter().filter(|c| **c != note.conversation);
        for (i, gone) in forget.enumerate() {
            expression.push_str(if i == 0 { " REMOVE " } else { ", " });
            expression.push_str(&format!("#a.#f{i}"));
            update = update.expression_attribute_names(format!("#f{i}"), gone.as_str());
        }
        update.update_expression(expression).send().await
    }

    /// Makes the identity's map with the note's entry alone, if the item has none.
    async fn first_note(&self, identity: &CustomerId, note: &ActivityNote) -> UpdateResult {
        let entry = (
            note.conversation.as_str().to_owned(),
            n(note.at.timestamp_millis()),
        );
        self.client
            .update_item()
            .table_name(self.table.as_ref())
            .set_key(Some(activity_key(identity)))
            .update_expression("SET #a = :m, #ttl = :ttl")
            .condition_expression("attribute_not_exists(#a)")
            .expression_attribute_names("#a", ACTIVITY)
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":m", AttributeValue::M(HashMap::from([entry])))
            .expression_attribute_values(":ttl", self.expires_at())
            .send()
            .await
    }
}

/// The attribute of an identity's `ACTIVITY` item holding its conversations: a map of
/// conversation id to the time last noted (Unix milliseconds).
const ACTIVITY: &str = "activity";

/// The key of an identity's activity: its customer partition, sort key `ACTIVITY`.
pub(super) fn activity_key(identity: &CustomerId) -> Item {
    HashMap::from([
        (PK.to_owned(), s(format!("U#{identity}"))),
        (SK.to_owned(), s("ACTIVITY")),
    ])
}

/// The partition of an identifier's sightings (one item per identity, sorted by its id).
pub(super) fn identifier_pk(identifier: &Identifier) -> String {
    format!("I#{}", identifier.key())
}

fn sighting_from(item: &HashMap<String, AttributeValue>) -> Result<Sighting, BackendError> {
    const OP: &str = "identifier_carriers";
    let identity = get_s(item, SK).ok_or_else(|| corrupt(OP, "sk"))?;
    let channel = get_s(item, "channel")
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| corrupt(OP, "channel"))?;
    let at = get_n(item, "at_ms")
        .and_then(DateTime::from_timestamp_millis)
        .ok_or_else(|| corrupt(OP, "at_ms"))?;
    Ok(Sighting {
        identity: CustomerId::from_stored(identity),
        channel,
        at,
    })
}

impl DynamoStore {
    /// The sightings of `identifier` (at most `limit`, oldest first) and the expiry of
    /// `identity`'s, when it has one.
    async fn sightings(
        &self,
        identifier: &Identifier,
        identity: Option<&CustomerId>,
        limit: usize,
    ) -> Result<(Vec<Sighting>, Option<i64>), BackendError> {
        const OP: &str = "identifier_carriers";
        let out = self
            .client
            .query()
            .table_name(self.table.as_ref())
            .key_condition_expression("#p = :p")
            .expression_attribute_names("#p", PK)
            .expression_attribute_values(":p", s(identifier_pk(identifier)))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable(OP))?;
        let mut found = Vec::new();
        let mut expiry = None;
        for item in out.items.unwrap_or_default() {
            let sighting = sighting_from(&item)?;
            if Some(&sighting.identity) == identity {
                expiry = Some(get_n(&item, crate::resources::TTL_ATTRIBUTE).unwrap_or(0));
            }
            found.push(sighting);
        }
        found.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.identity.cmp(&b.identity)));
        Ok((found, expiry))
    }
}

#[async_trait]
impl IdentityIndex for DynamoStore {
    /// One query; a new sighting adds one conditional put (the first one stays), and one that
    /// is about to expire is renewed with one update (at most once a day).
    async fn observe(
        &self,
        identifier: &Identifier,
        sighting: &Sighting,
        limit: usize,
    ) -> Result<Vec<Sighting>, BackendError> {
        const OP: &str = "observe_identifier";
        let (mut found, expiry) = self
            .sightings(identifier, Some(&sighting.identity), limit)
            .await?;
        let renew_below =
            (self.clock.now() + self.retention - chrono::Duration::days(1)).timestamp();
        match expiry {
            None => {
                let item = HashMap::from([
                    (PK.to_owned(), s(identifier_pk(identifier))),
                    (SK.to_owned(), s(sighting.identity.as_str())),
                    ("channel".to_owned(), s(sighting.channel.as_str())),
                    ("at_ms".to_owned(), n(sighting.at.timestamp_millis())),
                    (
                        crate::resources::TTL_ATTRIBUTE.to_owned(),
                        self.expires_at(),
                    ),
                ]);
                let put = self
                    .client
                    .put_item()
                    .table_name(self.table.as_ref())
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(#pk)")
                    .expression_attribute_names("#pk", PK)
                    .send()
                    .await;
                match put {
                    Ok(_) => {
                        found.push(sighting.clone());
                        found.sort_by(|a, b| {
                            a.at.cmp(&b.at).then_with(|| a.identity.cmp(&b.identity))
                        });
                    }
                    // Written in between by another consumer: read what is there.
                    Err(e) if is_condition_failure(&e) => {
                        found = self.sightings(identifier, None, limit).await?.0;
                    }
                    Err(e) => return Err(BackendError::unavailable(OP, e)),
                }
            }
            Some(expires) if expires < renew_below => {
                self.client
                    .update_item()
                    .table_name(self.table.as_ref())
                    .key(PK, s(identifier_pk(identifier)))
                    .key(SK, s(sighting.identity.as_str()))
                    .update_expression("SET #ttl = :ttl")
                    .expression_attribute_names("#ttl", crate::resources::TTL_ATTRIBUTE)
                    .expression_attribute_values(":ttl", self.expires_at())
                    .send()
                    .await
                    .map_err(unavailable(OP))?;
            }
            Some(_) => {}
        }
        found.truncate(limit);
        Ok(found)
    }
}

#[async_trait]
impl IdentityLookup for DynamoStore {
    async fn carriers(
        &self,
        identifier: &Identifier,
        limit: usize,
    ) -> Result<Vec<Sighting>, BackendError> {
        Ok(self.sightings(identifier, None, limit).await?.0)
    }
}
