//! The [`MessageStore`] and [`RecordLookup`] ports on DynamoDB: raw deliveries in gzip
//! chunks, records written once by key in transactions with the conversations and customers
//! they touch (by the rule of `switchboard_core::recording`), and the confirmation of enqueueing.

use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use std::collections::{HashMap, HashSet};
use std::io::Write;

use switchboard_core::ids::{CustomerId, RecordKey};
use switchboard_core::model::Record;
use switchboard_core::ports::{BackendError, MessageStore, QueueEntry, RawDelivery, RecordLookup};
use switchboard_core::recording::{self, Prior};

use super::*;
use crate::resources::{OUTBOX_ENTRIES, OUTBOX_KEEP_SECS, OUTBOX_PK, PK, SK, TTL_ATTRIBUTE};
use crate::retry::{Attempt, until_no_conflict};

/// The state items (customers, conversations) `records` may touch: read with the records'
/// own keys in one round, before it is known which records are new.
fn state_keys_of(records: &[Record]) -> Vec<Item> {
    let mut seen = HashSet::new();
    let mut keys = Vec::new();
    for record in records {
        if let Some(customer) = record.customer()
            && seen.insert(format!("U#{}", customer.customer_id))
        {
            keys.push(customer_key(&customer.customer_id));
        }
        if let Some(conversation) = record.conversation_id()
            && seen.insert(format!("C#{conversation}"))
        {
            keys.push(conversation_key(conversation));
        }
    }
    keys
}

/// What one read found: which records exist (and whether each is confirmed enqueued), and
/// the state items by partition key.
struct Found {
    records: HashMap<RecordKey, bool>,
    states: HashMap<String, Item>,
    /// The partition keys of the state items asked for (found or not).
    asked: HashSet<String>,
}

impl DynamoStore {
    /// One read (a `BatchGetItem` per 100 keys) of the records `keys` and the state items
    /// `states`.
    async fn existing_and_states(
        &self,
        keys: &[RecordKey],
        states: &[Item],
    ) -> Result<Found, BackendError> {
        let record_keys = keys.iter().map(|key| {
            HashMap::from([(PK.to_owned(), s(record_pk(key))), (SK.to_owned(), s("R"))])
        });
        let all: Vec<Item> = record_keys.chain(states.iter().cloned()).collect();
        let mut found = Found {
            records: HashMap::new(),
            states: HashMap::new(),
            asked: states
                .iter()
                .filter_map(|k| get_s(k, PK).map(str::to_owned))
                .collect(),
        };
        let items = self
            .batch_get(
                "record",
                all,
                &["enqueued", "state", "version", TTL_ATTRIBUTE],
            )
            .await?;
        for item in items {
            let Some(pk) = get_s(&item, PK).map(str::to_owned) else {
                continue;
            };
            match pk.strip_prefix("R#") {
                Some(key) => {
                    let enqueued = item.get("enqueued").and_then(|v| v.as_bool().ok()).copied();
                    found
                        .records
                        .insert(RecordKey::from_stored(key), enqueued.unwrap_or(false));
                }
                None => {
                    found.states.insert(pk, item);
                }
            }
        }
        Ok(found)
    }

    /// Writes `records` once each, with the customers and conversations they touch, and
    /// answers the queue entries still to confirm (see [`MessageStore::record`]).
    ///
    /// With `outbox` (a table name), the entries answered are confirmed already, through the
    /// outbox: each
    /// conversation's entries go into its outbox item, whose stream feeds the intake queue.
    /// When the whole write fits one transaction (the usual delivery), the records are
    /// written already confirmed, in the same transaction as their outbox items: two rounds
    /// on the acknowledgement path in all (this read, that transaction). A larger write is
    /// written unconfirmed first, then confirmed by transactions that put the outbox items
    /// and mark their records, so that an interrupted write is finished by the retry.
    pub(crate) async fn write_records(
        &self,
        records: &[Record],
        outbox: Option<&str>,
    ) -> Result<Vec<QueueEntry>, BackendError> {
        const OP: &str = "record";
        let now = self.clock.now();
        let keys: Vec<RecordKey> = records.iter().map(Record::key).collect();
        let guessed = state_keys_of(records);
        // Read, decide, write in transactions; a cancelled transaction (a concurrent writer)
        // wrote nothing, so the round is done again from fresh reads. Every write is
        // conditional: records and customers on not existing yet, conversations on their version.
        let (keys, guessed) = (&keys, &guessed);
        until_no_conflict(
            OP,
            "transactions kept being cancelled by concurrent writers",
            self.backoff,
            || async move {
                let Found {
                    records: existing,
                    mut states,
                    asked,
                } = self.existing_and_states(keys, guessed).await?;
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
                let plan = recording::plan(records, keys, |key| match existing.get(key) {
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
                // The customers and conversations touched that the first read did not ask
                // for (a stored version naming another conversation): read now.
                let missing: Vec<Item> = plan
                    .identities
                    .iter()
                    .map(|i| customer_key(&i.customer_id))
                    .chain(
                        plan.conversations
                            .iter()
                            .map(|(id, _)| conversation_key(id)),
                    )
                    .filter(|k| get_s(k, PK).is_some_and(|pk| !asked.contains(pk)))
                    .collect();
                if !missing.is_empty() {
                    states.extend(
                        self.batch_get(OP, missing, &["state", "version", TTL_ATTRIBUTE])
                            .await?
                            .into_iter()
                            .filter_map(|item| Some((get_s(&item, PK)?.to_owned(), item))),
                    );
                }
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
                let mut record_items = Vec::with_capacity(plan.new.len());
                for &(key, record) in &plan.new {
                    let person = record.customer().and_then(|c| persons.get(&c.customer_id));
                    record_items.push(self.record_item(record, key, person, now)?);
                }
                let mut state_units = Vec::new();
                for (id, absorbed) in &plan.conversations {
                    let item = states.remove(&format!("C#{id}"));
                    let version = item.as_ref().and_then(|i| get_n(i, "version"));
                    let before = item.as_ref().map(conversation_from).transpose()?;
                    if let Some((conversation, tally)) = recording::fold(before.as_ref(), absorbed)
                    {
                        state_units.push(WriteUnit {
                            puts: vec![self.conversation_put(&conversation, version)?],
                            updates: Vec::new(),
                            tally,
                        });
                    }
                }
                // Through the outbox in this very transaction, when it fits one.
                let outbox_unit = match outbox {
                    Some(table) if !plan.pending.is_empty() => {
                        Some(self.outbox_unit(table, &plan.pending, &existing)?)
                    }
                    _ => None,
                };
                let confirm_here = outbox_unit.filter(|outbox| {
                    WriteUnit::fit_one_transaction(
                        units.iter().chain(&state_units).chain([outbox]),
                        &record_items,
                    )
                });
                let confirmed_here = confirm_here.is_some();
                if confirmed_here {
                    let pending: HashSet<&RecordKey> =
                        plan.pending.iter().map(|e| &e.record_key).collect();
                    for (item, (key, _)) in record_items.iter_mut().zip(&plan.new) {
                        if pending.contains(key) {
                            item.insert("enqueued".into(), AttributeValue::Bool(true));
                        }
                    }
                }
                for item in record_items {
                    units.push(WriteUnit::put(self.conditional_put(item, None)?));
                }
                units.extend(state_units);
                units.extend(confirm_here);
                let cancelled = self.transact(OP, units).await?;
                tracing::debug!(
                    records = records.len(),
                    new = plan.new.len(),
                    pending = plan.pending.len(),
                    cancelled,
                    confirmed_here,
                    "records stored"
                );
                if cancelled {
                    return Ok(Attempt::Conflict);
                }
                if let Some(table) = outbox
                    && !confirmed_here
                    && !plan.pending.is_empty()
                    && self.confirm_through_outbox(table, &plan.pending).await?
                {
                    return Ok(Attempt::Conflict);
                }
                Ok(Attempt::Done(plan.pending))
            },
        )
        .await
    }

    /// The puts of the outbox items of `pending` (one per conversation, its entries in
    /// order), with the updates that confirm those of its records that exist already
    /// (`existing`: stored by an earlier, interrupted attempt).
    fn outbox_unit(
        &self,
        table: &str,
        pending: &[QueueEntry],
        existing: &HashMap<RecordKey, bool>,
    ) -> Result<WriteUnit, BackendError> {
        let mut unit = self.outbox_puts(table, pending)?;
        for entry in pending {
            if existing.contains_key(&entry.record_key) {
                unit.updates.push(self.confirm_update(&entry.record_key)?);
            }
        }
        Ok(unit)
    }

    /// One put per conversation of `entries`: the outbox item holding that conversation's
    /// entries, in order.
    fn outbox_puts(&self, table: &str, entries: &[QueueEntry]) -> Result<WriteUnit, BackendError> {
        const OP: &str = "outbox";
        let mut by_conversation: Vec<(&str, Vec<&QueueEntry>)> = Vec::new();
        for entry in entries {
            let id = entry.conversation_id.as_str();
            match by_conversation.iter_mut().find(|(c, _)| *c == id) {
                Some((_, list)) => list.push(entry),
                None => by_conversation.push((id, vec![entry])),
            }
        }
        let expires =
            n((self.clock.now() + chrono::Duration::seconds(OUTBOX_KEEP_SECS)).timestamp());
        let mut unit = WriteUnit::default();
        for (conversation, list) in by_conversation {
            let entries = serde_json::to_string(&list).map_err(unavailable(OP))?;
            let put = Put::builder()
                .table_name(table)
                .item(OUTBOX_PK, s(conversation))
                .item(OUTBOX_ENTRIES, s(entries))
                .item(TTL_ATTRIBUTE, expires.clone())
                .build()
                .map_err(unavailable(OP))?;
            unit.puts.push(put);
        }
        Ok(unit)
    }

    /// The update that marks the record `key` confirmed enqueued.
    fn confirm_update(&self, key: &RecordKey) -> Result<Update, BackendError> {
        Update::builder()
            .table_name(self.table.as_ref())
            .key(PK, s(record_pk(key)))
            .key(SK, s("R"))
            .update_expression("SET enqueued = :t")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .build()
            .map_err(unavailable("mark_enqueued"))
    }

    /// Confirms the stored records of `pending` through the outbox, in transactions of 50
    /// entries (their outbox items and the updates that mark them). Answers whether one was
    /// cancelled (a concurrent writer of the same outbox item): the caller starts again.
    async fn confirm_through_outbox(
        &self,
        table: &str,
        pending: &[QueueEntry],
    ) -> Result<bool, BackendError> {
        for chunk in pending.chunks(TRANSACT_MAX / 2) {
            let mut unit = self.outbox_puts(table, chunk)?;
            for entry in chunk {
                unit.updates.push(self.confirm_update(&entry.record_key)?);
            }
            if self.transact("outbox", vec![unit]).await? {
                return Ok(true);
            }
        }
        Ok(false)
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
        self.write_records(records, None).await
    }

    async fn mark_enqueued(&self, keys: &[RecordKey]) -> Result<(), BackendError> {
        for chunk in keys.chunks(TRANSACT_MAX) {
            let actions = chunk
                .iter()
                .map(|key| {
                    let update = self.confirm_update(key)?;
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
