//! The [`MessageStore`] and [`RecordLookup`] ports on DynamoDB: raw deliveries in gzip
//! chunks, records written once by key in transactions with the conversations and customers
//! they touch (by the rule of `switchboard_core::recording`), and the confirmation of enqueueing.

use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use std::collections::HashMap;
use std::io::Write;

use switchboard_core::ids::{CustomerId, RecordKey};
use switchboard_core::model::Record;
use switchboard_core::ports::{BackendError, MessageStore, QueueEntry, RawDelivery, RecordLookup};
use switchboard_core::recording::{self, Prior};

use super::*;
use crate::resources::{PK, SK, TTL_ATTRIBUTE};
use crate::retry::{Attempt, until_no_conflict};

impl DynamoStore {
    /// Which of `keys` exist, and whether each is confirmed enqueued.
    async fn existing(&self, keys: &[RecordKey]) -> Result<HashMap<RecordKey, bool>, BackendError> {
        Ok(self
            .get_records("record", keys, &["enqueued"])
            .await?
            .into_iter()
            .map(|(key, item)| {
                let enqueued = item.get("enqueued").and_then(|v| v.as_bool().ok()).copied();
                (key, enqueued.unwrap_or(false))
            })
            .collect())
    }
}

#[async_trait]
impl MessageStore for DynamoStore {
    async fn keep_delivery(&self, delivery: &RawDelivery) -> Result<(), BackendError> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder
            .write_all(&delivery.body)
            .map_err(unavailable("keep_delivery"))?;
        let compressed = encoder.finish().map_err(unavailable("keep_delivery"))?;
        let chunks: Vec<&[u8]> = if compressed.is_empty() {
            vec![&[]]
        } else {
            compressed.chunks(CHUNK_BYTES).collect()
        };
        let pk = format!("D#{}", delivery.id);
        let received_at = delivery
            .received_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut items: Vec<Item> = chunks
            .iter()
            .enumerate()
            .map(|(i, chunk)| {
                Item::from([
                    (PK.to_owned(), s(pk.clone())),
                    (SK.to_owned(), s(format!("CHUNK#{i:04}"))),
                    (
                        "data".to_owned(),
                        AttributeValue::B(Blob::new(chunk.to_vec())),
                    ),
                    (TTL_ATTRIBUTE.to_owned(), self.expires_at()),
                ])
            })
            .collect();
        let head = &mut items[0];
        head.insert("chunks".into(), n(chunks.len()));
        head.insert("size".into(), n(delivery.body.len()));
        head.insert("encoding".into(), s("gzip"));
        head.insert("channel".into(), s(delivery.webhook.as_str()));
        head.insert("received_at".into(), s(received_at.clone()));
        head.insert(
            "quarantined".into(),
            AttributeValue::Bool(delivery.quarantined),
        );
        if delivery.quarantined {
            items.push(Item::from([
                (PK.to_owned(), s("QUARANTINE")),
                (SK.to_owned(), s(format!("{received_at}#{}", delivery.id))),
                ("delivery_id".to_owned(), s(delivery.id.as_str())),
                (TTL_ATTRIBUTE.to_owned(), self.expires_at()),
            ]));
        }
        self.write_batch("keep_delivery", items).await
    }

    async fn record(&self, records: &[Record]) -> Result<Vec<QueueEntry>, BackendError> {
        const OP: &str = "record";
        let now = self.clock.now();
        let keys: Vec<RecordKey> = records.iter().map(Record::key).collect();
        // Read, decide, write in transactions; a cancelled transaction (a concurrent writer)
        // wrote nothing, so the round is done again from fresh reads. Every write is
        // conditional: records and customers on not existing yet, conversations on their version.
        let keys = &keys;
        until_no_conflict(
            OP,
            "transactions kept being cancelled by concurrent writers",
            self.backoff,
            || async move {
                let existing = self.existing(keys).await?;
                // The stored version of a record whose enqueue was never confirmed is what counts;
                // read only in that case (a retry after a failure), never for a plain duplicate.
                let unconfirmed: Vec<RecordKey> = existing
                    .iter()
                    .filter(|(_, enqueued)| !**enqueued)
                    .map(|(key, _)| key.clone())
                    .collect();
                let stored = if unconfirmed.is_empty() {
                    HashMap::new()
                } else {
                    self.find(&unconfirmed).await?
                };
                let plan = recording::plan(records, |key| match existing.get(key) {
                    None => Prior::New,
                    Some(true) => Prior::Confirmed,
                    // A stored doc that could not be read back (never seen): the delivered one.
                    Some(false) => stored
                        .get(key)
                        .or_else(|| keys.iter().position(|k| k == key).map(|i| &records[i]))
                        .map_or(Prior::New, Prior::Unconfirmed),
                });
                if plan.writes_nothing() {
                    return Ok(Attempt::Done(plan.pending));
                }
                // The customers and conversations touched, in one read.
                let state_keys = plan
                    .identities
                    .iter()
                    .map(|i| customer_key(&i.customer_id))
                    .chain(
                        plan.conversations
                            .iter()
                            .map(|(id, _)| conversation_key(id)),
                    )
                    .collect();
                let mut states: HashMap<String, Item> = self
                    .batch_get(OP, state_keys, &["state", "version", TTL_ATTRIBUTE])
                    .await?
                    .into_iter()
                    .filter_map(|item| Some((get_s(&item, PK)?.to_owned(), item)))
                    .collect();
                let mut units = Vec::new();
                let mut persons: HashMap<&CustomerId, CustomerId> = HashMap::new();
                for identity in &plan.identities {
                    let id = &identity.customer_id;
                    let survivor = match states.remove(&format!("U#{id}")) {
                        None => None,
                        Some(item) => {
                            let customer = customer_from(&item)?;
                            if let Some(renewal) =
                                self.customer_renewal(id, get_n(&item, TTL_ATTRIBUTE))?
                            {
                                units.push(WriteUnit::update(renewal));
                            }
                            match customer.merged_into {
                                None => Some(customer),
                                Some(_) => self.root_customer(id, OP).await?.or(Some(customer)),
                            }
                        }
                    };
                    let (person, create) = recording::customer_of(identity, survivor.as_ref());
                    if let Some(customer) = create {
                        units.push(WriteUnit::put(
                            self.conditional_put(self.customer_item(&customer)?, None)?,
                        ));
                    }
                    persons.insert(id, person);
                }
                for record in &plan.new {
                    let person = record.customer().and_then(|c| persons.get(&c.customer_id));
                    let item = self.record_item(record, &record.key(), person, now)?;
                    units.push(WriteUnit::put(self.conditional_put(item, None)?));
                }
                for (id, absorbed) in &plan.conversations {
                    let item = states.remove(&format!("C#{id}"));
                    let version = item.as_ref().and_then(|i| get_n(i, "version"));
                    let before = item.as_ref().map(conversation_from).transpose()?;
                    if let Some((conversation, tally)) = recording::fold(before.as_ref(), absorbed)
                    {
                        units.push(WriteUnit {
                            puts: vec![self.conversation_put(&conversation, version)?],
                            updates: Vec::new(),
                            tally,
                        });
                    }
                }
                let cancelled = self.transact(OP, units).await?;
                tracing::debug!(
                    records = records.len(),
                    new = plan.new.len(),
                    pending = plan.pending.len(),
                    cancelled,
                    "records stored"
                );
                Ok(if cancelled {
                    Attempt::Conflict
                } else {
                    Attempt::Done(plan.pending)
                })
            },
        )
        .await
    }

    async fn mark_enqueued(&self, keys: &[RecordKey]) -> Result<(), BackendError> {
        for chunk in keys.chunks(TRANSACT_MAX) {
            let actions = chunk
                .iter()
                .map(|key| {
                    let update = Update::builder()
                        .table_name(self.table.as_ref())
                        .key(PK, s(record_pk(key)))
                        .key(SK, s("R"))
                        .update_expression("SET enqueued = :t")
                        .condition_expression("attribute_exists(#pk)")
                        .expression_attribute_names("#pk", PK)
                        .expression_attribute_values(":t", AttributeValue::Bool(true))
                        .build()
                        .map_err(unavailable("mark_enqueued"))?;
                    Ok(TransactWriteItem::builder().update(update).build())
                })
                .collect::<Result<Vec<_>, BackendError>>()?;
            self.client
                .transact_write_items()
                .set_transact_items(Some(actions))
                .send()
                .await
                .map_err(unavailable("mark_enqueued"))?;
        }
        Ok(())
    }
}

#[async_trait]
impl RecordLookup for DynamoStore {
    async fn find(&self, keys: &[RecordKey]) -> Result<HashMap<RecordKey, Record>, BackendError> {
        self.get_records("find", keys, &["doc"])
            .await?
            .into_iter()
            .map(|(key, item)| {
                let doc = get_s(&item, "doc").ok_or_else(|| corrupt("find", "doc"))?;
                let record = serde_json::from_str(doc).map_err(|_| corrupt("find", "doc"))?;
                Ok((key, record))
            })
            .collect()
    }
}
