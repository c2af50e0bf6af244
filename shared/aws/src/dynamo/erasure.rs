//! [`CustomerErasure`] on DynamoDB.
//!
//! The person is found from the customer items (the survivor and those its links name), their
//! records on `gsi2` (`U#<customer>`) and their conversations' records on `gsi1`
//! (`C#<conversation>`). Kept deliveries are read with a `Scan` (one call a page: up to 1 MB
//! of the table), and a dropped delivery's chunks go in one transaction with the tombstone
//! that replaces its head (`erased_at`, no data). Idempotency results of replies are found by
//! a filtered `Scan` on their key prefix (`K#<conversation>/`). Rows are deleted with
//! `BatchWriteItem`. Queue entries in SQS cannot be picked out: they carry ids only, and an
//! entry whose record is gone fails to its dead-letter queue.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{Delete, TransactWriteItem};
use std::collections::{BTreeSet, HashMap};

use switchboard_core::erasure::{CustomerErasure, ErasedRows, ErasureScope, stored_apart};
use switchboard_core::ids::DeliveryId;
use switchboard_core::ports::{ConversationReader, ConversationStore, RawDelivery};

use super::*;

/// The sort key of a delivery's first chunk, which holds its attributes.
const HEAD: &str = "CHUNK#0000";
/// How many conversations' idempotency prefixes one `Scan` filters on.
const PREFIXES_PER_SCAN: usize = 20;

/// The `pk` and `sk` of `item`.
fn key_of(item: &Item, op: &'static str) -> Result<Item, BackendError> {
    let get = |name: &str| item.get(name).cloned().ok_or_else(|| corrupt(op, "key"));
    Ok(HashMap::from([
        (PK.to_owned(), get(PK)?),
        (SK.to_owned(), get(SK)?),
    ]))
}

fn token_of(key: &Item) -> Option<String> {
    let pk = get_s(key, PK)?;
    let sk = get_s(key, SK)?;
    serde_json::to_string(&[pk, sk]).ok()
}

fn start_of(token: &str) -> Result<Item, BackendError> {
    let [pk, sk]: [String; 2] = serde_json::from_str(token).map_err(|_| BackendError::BadCursor)?;
    Ok(HashMap::from([
        (PK.to_owned(), s(pk)),
        (SK.to_owned(), s(sk)),
    ]))
}

impl DynamoStore {
    /// Every item of the partition `partition` of `index` (the table when `None`).
    async fn query_all(
        &self,
        op: &'static str,
        index: Option<IndexSpec>,
        partition: &str,
    ) -> Result<Vec<Item>, BackendError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(self.table.as_ref())
                .set_index_name(index.map(|i| i.name.to_owned()))
                .key_condition_expression("#p = :p")
                .expression_attribute_names("#p", index.map_or(PK, |i| i.pk))
                .expression_attribute_values(":p", s(partition))
                .set_consistent_read(index.is_none().then_some(true))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable(op))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// The keys of the idempotency items of `conversations`' replies.
    async fn reply_keys(
        &self,
        op: &'static str,
        conversations: &[String],
    ) -> Result<Vec<Item>, BackendError> {
        let mut keys = Vec::new();
        for group in conversations.chunks(PREFIXES_PER_SCAN) {
            let filter = (0..group.len())
                .map(|i| format!("begins_with(#pk, :k{i})"))
                .collect::<Vec<_>>()
                .join(" OR ");
            let mut start = None;
            loop {
                let mut scan = self
                    .client
                    .scan()
                    .table_name(self.table.as_ref())
                    .filter_expression(&filter)
                    .projection_expression("#pk, #sk")
                    .expression_attribute_names("#pk", PK)
                    .expression_attribute_names("#sk", SK)
                    .set_exclusive_start_key(start);
                for (i, conversation) in group.iter().enumerate() {
                    scan = scan.expression_attribute_values(
                        format!(":k{i}"),
                        s(format!("K#{conversation}/")),
                    );
                }
                let out = scan.send().await.map_err(unavailable(op))?;
                for item in out.items.unwrap_or_default() {
                    keys.push(key_of(&item, op)?);
                }
                match out.last_evaluated_key {
                    Some(k) if !k.is_empty() => start = Some(k),
                    _ => break,
                }
            }
        }
        Ok(keys)
    }
}

#[async_trait]
impl CustomerErasure for DynamoStore {
    async fn scope(&self, id: &CustomerId) -> Result<Option<ErasureScope>, BackendError> {
        const OP: &str = "erasure_scope";
        let Some(survivor) = self.root_customer(id, OP).await? else {
            return Ok(None);
        };
        let mut customers = vec![survivor.id.clone()];
        for link in &survivor.links {
            if !customers.contains(&link.customer_id) {
                customers.push(link.customer_id.clone());
            }
        }
        let mut identities = BTreeSet::new();
        for customer in &customers {
            if let Some(found) = self.load_customer(customer, OP).await? {
                identities.extend(
                    found
                        .identities
                        .into_iter()
                        .map(|i| i.provider_user_id.as_str().to_owned()),
                );
            }
        }
        let mut conversation_ids = BTreeSet::new();
        let mut attachments = BTreeSet::new();
        for customer in &customers {
            for item in self
                .query_all(OP, Some(GSI2), &format!("U#{customer}"))
                .await?
            {
                let record = stored_record_from(&item)?.record;
                if let Some(conversation) = record.conversation_id() {
                    conversation_ids.insert(conversation.clone());
                }
                attachments.extend(stored_apart(&record));
            }
        }
        let mut conversations = Vec::new();
        for conversation in &conversation_ids {
            if let Some(found) = self.conversation(conversation).await? {
                conversations.push(found);
            }
        }
        Ok(Some(ErasureScope {
            customers,
            identities: identities.into_iter().collect(),
            conversations,
            attachments: attachments.into_iter().collect(),
        }))
    }

    /// One `Scan` call a page (`limit` is not used: DynamoDB bounds a page by the bytes it
    /// reads), then each delivery read whole.
    async fn deliveries_page(
        &self,
        after: Option<String>,
        _limit: usize,
    ) -> Result<(Vec<RawDelivery>, Option<String>), BackendError> {
        const OP: &str = "erasure_deliveries";
        let out = self
            .client
            .scan()
            .table_name(self.table.as_ref())
            .filter_expression(
                "begins_with(#pk, :d) AND #sk = :head AND attribute_not_exists(erased_at)",
            )
            .projection_expression("#pk")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":d", s("D#"))
            .expression_attribute_values(":head", s(HEAD))
            .set_exclusive_start_key(after.as_deref().map(start_of).transpose()?)
            .send()
            .await
            .map_err(unavailable(OP))?;
        let mut page = Vec::new();
        for item in out.items.unwrap_or_default() {
            let id = get_s(&item, PK)
                .and_then(|pk| pk.strip_prefix("D#"))
                .ok_or_else(|| corrupt(OP, "pk"))?;
            if let Some(delivery) = self.delivery(&DeliveryId::from_stored(id)).await? {
                page.push(delivery);
            }
        }
        let next = out
            .last_evaluated_key
            .filter(|k| !k.is_empty())
            .as_ref()
            .and_then(token_of);
        Ok((page, next))
    }

    /// One transaction a delivery: its chunks deleted, its head replaced by the tombstone.
    async fn drop_deliveries(
        &self,
        ids: &[DeliveryId],
        at: DateTime<Utc>,
    ) -> Result<usize, BackendError> {
        const OP: &str = "drop_deliveries";
        let mut dropped = 0;
        for id in ids {
            let chunks = self.query_all(OP, None, &format!("D#{id}")).await?;
            let Some(head) = chunks.iter().find(|c| get_s(c, SK) == Some(HEAD)) else {
                continue;
            };
            if head.contains_key("erased_at") {
                continue;
            }
            let mut tombstone = key_of(head, OP)?;
            for kept in ["channel", "received_at", "quarantined", TTL_ATTRIBUTE] {
                if let Some(v) = head.get(kept) {
                    tombstone.insert(kept.to_owned(), v.clone());
                }
            }
            tombstone.insert(
                "erased_at".to_owned(),
                s(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            );
            let mut writes = vec![
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(self.table.as_ref())
                            .set_item(Some(tombstone))
                            .build()
                            .map_err(unavailable(OP))?,
                    )
                    .build(),
            ];
            for chunk in chunks.iter().filter(|c| get_s(c, SK) != Some(HEAD)) {
                writes.push(
                    TransactWriteItem::builder()
                        .delete(
                            Delete::builder()
                                .table_name(self.table.as_ref())
                                .set_key(Some(key_of(chunk, OP)?))
                                .build()
                                .map_err(unavailable(OP))?,
                        )
                        .build(),
                );
            }
            self.client
                .transact_write_items()
                .set_transact_items(Some(writes))
                .send()
                .await
                .map_err(unavailable(OP))?;
            dropped += 1;
        }
        Ok(dropped)
    }

    async fn erase(&self, scope: &ErasureScope) -> Result<ErasedRows, BackendError> {
        const OP: &str = "erase_customer";
        let mut rows = ErasedRows::default();
        let mut records = BTreeSet::new();
        let mut keys = Vec::new();
        let mut identifiers = BTreeSet::new();
        for customer in &scope.customers {
            for item in self
                .query_all(OP, Some(GSI2), &format!("U#{customer}"))
                .await?
            {
                records.insert(
                    get_s(&item, PK)
                        .ok_or_else(|| corrupt(OP, "pk"))?
                        .to_owned(),
                );
            }
            if let Some(found) = self.load_customer(customer, OP).await? {
                for identity in &found.identities {
                    for identifier in &identity.identifiers {
                        identifiers.insert((
                            customers::identifier_pk(identifier),
                            identity.customer_id.as_str().to_owned(),
                        ));
                    }
                }
                keys.push(customer_key(customer));
                keys.push(customers::activity_key(customer));
                rows.customers += 1;
            }
        }
        let conversations: Vec<String> = scope
            .conversations
            .iter()
            .map(|c| c.id.as_str().to_owned())
            .collect();
        for conversation in &scope.conversations {
            for item in self
                .query_all(OP, Some(GSI1), &format!("C#{}", conversation.id))
                .await?
            {
                records.insert(
                    get_s(&item, PK)
                        .ok_or_else(|| corrupt(OP, "pk"))?
                        .to_owned(),
                );
            }
            keys.push(conversation_key(&conversation.id));
            rows.conversations += 1;
        }
        rows.records = records.len();
        keys.extend(
            records
                .into_iter()
                .map(|pk| HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s("R"))])),
        );
        rows.identifiers = identifiers.len();
        keys.extend(
            identifiers
                .into_iter()
                .map(|(pk, sk)| HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])),
        );
        let replies = self.reply_keys(OP, &conversations).await?;
        rows.replies = replies.len();
        keys.extend(replies);
        self.delete_batch(OP, keys).await?;
        Ok(rows)
    }
}
