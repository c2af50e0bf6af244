//! [`DynamoStore`]: the store on one DynamoDB table (single-table design).
//!
//! | item | pk | sk | gsi1pk / gsi1sk | gsi2pk / gsi2sk |
//! |---|---|---|---|---|
//! | record (message, event) | `R#<key>` | `R` | `C#<conversation>` / `<at>#<key>` | `U#<customer>` / `<at>#<key>` |
//! | record (notification) | `R#<key>` | `R` | `N#<channel>#<account>` / `<at>#<key>` | – |
//! | conversation | `C#<id>` | `C` | `CONVS` / `<last_at>#<id>` | `CONVS#<channel>` / `<last_at>#<id>` |
//! | conversation (waiting, prioritized) | | | + `gsi3pk` / `gsi3sk`: `Q#<team>` / `<rank>#<waiting_since>#<id>` | |
//! | raw delivery chunk | `D#<sha256>` | `CHUNK#<n>` | – | – |
//! | quarantine entry | `QUARANTINE` | `<received_at>#<sha256>` | – | – |
//!
//! `<at>` is the provider time in milliseconds, zero-padded, so the sort key orders by time.
//! A record is keyed by its provider id alone (`R#<key>`), which makes the conditional write
//! (`attribute_not_exists(pk)`) the idempotency check; a conversation's records in provider-time
//! order are one query on `gsi1`, a customer's history one query on `gsi2`.
//!
//! **Raw deliveries** can be 6 MB and an item holds 400 KB: the body is gzip-compressed and split
//! into chunks of at most [`CHUNK_BYTES`], written with `BatchWriteItem` (25 a call; a 6 MB body
//! needs one or two calls). No S3 bucket is needed and everything shares the table's TTL.
//!
//! **Calls per delivery of n records** on the acknowledgement path: ⌈chunks/25⌉ to keep the
//! delivery, ⌈n/100⌉ `BatchGetItem`, ⌈n/100⌉ `TransactWriteItems` for the new records, a `GetItem`
//! and a conditional `PutItem` per conversation touched, ⌈n/100⌉ `TransactWriteItems` to confirm enqueueing.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, PutRequest, TransactWriteItem, Update, WriteRequest,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use switchboard_core::clock::Clock;
use switchboard_core::ids::{ConversationId, CustomerId, DeliveryId, RecordKey};
use switchboard_core::model::{Channel, Conversation, Customer, Message, Record};
use switchboard_core::ports::{
    BackendError, ConversationChange, ConversationReader, CustomerDirectory, LinkError,
    MessageStore, Page, PageRequest, PriorityStore, QueueEntry, QueuePosition, RawDelivery,
    StoredRecord,
};
use switchboard_core::recording::{self, Prior};

use crate::resources::{GSI1, GSI2, GSI3, IndexSpec, PK, SK, TTL_ATTRIBUTE};

/// Largest piece of a compressed raw delivery in one item (leaves room under DynamoDB's 400 KB).
pub const CHUNK_BYTES: usize = 350 * 1024;
/// Largest record document kept whole; above it the raw JSON is replaced by a marker (the
/// delivery it came in is kept whole).
pub const MAX_DOC_BYTES: usize = 300 * 1024;
/// DynamoDB's limits per call.
const BATCH_WRITE_MAX: usize = 25;
const BATCH_GET_MAX: usize = 100;
const TRANSACT_MAX: usize = 100;
const TRANSACT_MAX_BYTES: usize = 3 * 1024 * 1024;
/// Attempts for the unprocessed part of a batch call before giving up with an error.
const BATCH_ATTEMPTS: u32 = 8;

type Item = HashMap<String, AttributeValue>;

/// The store on one DynamoDB table. See the module docs for the key design.
///
/// Implements [`MessageStore`] and [`ConversationReader`] with the contract stated on them;
/// every failed AWS call is a [`BackendError::Unavailable`], after which a retry of the same
/// delivery is safe.
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: Arc<str>,
    retention: chrono::Duration,
    clock: Arc<dyn Clock>,
}

impl DynamoStore {
    /// A store on `table`, keeping data `retention_days` (DynamoDB TTL).
    pub fn new(
        client: Client,
        table: impl Into<String>,
        retention_days: u32,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            client,
            table: Arc::from(table.into()),
            retention: chrono::Duration::days(i64::from(retention_days)),
            clock,
        }
    }

    fn expires_at(&self) -> AttributeValue {
        n((self.clock.now() + self.retention).timestamp())
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn at_key(at: DateTime<Utc>, id: &str) -> String {
    // 15 digits of milliseconds cover every date until the year 33658; negative times (before
    // 1970) sort first.
    format!("{:015}#{id}", at.timestamp_millis().max(0))
}

fn record_pk(key: &RecordKey) -> String {
    format!("R#{key}")
}

fn get_s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

fn get_n(item: &Item, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn unavailable<E>(operation: &'static str) -> impl FnOnce(E) -> BackendError
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |e| BackendError::unavailable(operation, e)
}

/// Whether a call failed on its condition (`ConditionalCheckFailedException`): someone wrote
/// in between, read again.
fn is_condition_failure<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|se| se.code())
        .is_some_and(|code| code == "ConditionalCheckFailedException")
}

/// Read-modify-write attempts before giving up (each failed one saw another writer).
const UPDATE_ATTEMPTS: u32 = 8;

fn corrupt(operation: &'static str, what: &str) -> BackendError {
    BackendError::unavailable(operation, format!("stored item unreadable: {what}"))
}

/// The document stored for a record: its JSON, with an oversized raw item replaced by a marker.
fn record_doc(record: &Record) -> Result<String, BackendError> {
    let doc = serde_json::to_string(record).map_err(unavailable("record"))?;
    if doc.len() <= MAX_DOC_BYTES {
        return Ok(doc);
    }
    let mut slim = record.clone();
    slim.set_raw(serde_json::json!({
        "omitted": "raw item too large for one item; it is kept in its raw delivery",
        "bytes": record.raw().to_string().len(),
    }));
    let doc = serde_json::to_string(&slim).map_err(unavailable("record"))?;
    if doc.len() <= MAX_DOC_BYTES {
        return Ok(doc);
    }
    // Text or attachments themselves too large: keep the first part of the text.
    if let Record::Message(Message {
        text: Some(text), ..
    }) = &mut slim
    {
        let mut cut = (MAX_DOC_BYTES / 2).min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    serde_json::to_string(&slim).map_err(unavailable("record"))
}

impl DynamoStore {
    fn record_item(
        &self,
        record: &Record,
        key: &RecordKey,
        person: Option<&CustomerId>,
        now: DateTime<Utc>,
    ) -> Result<Item, BackendError> {
        let mut item = Item::from([
            (PK.to_owned(), s(record_pk(key))),
            (SK.to_owned(), s("R")),
            ("record_type".to_owned(), s(record.record_type())),
            ("doc".to_owned(), s(record_doc(record)?)),
            ("stored_at".to_owned(), s(now.to_rfc3339())),
            ("enqueued".to_owned(), AttributeValue::Bool(false)),
            (TTL_ATTRIBUTE.to_owned(), self.expires_at()),
        ]);
        let sort = at_key(record.at(), key.as_str());
        match (record.conversation_id(), record.customer()) {
            (Some(conversation), Some(customer)) => {
                item.insert(GSI1.pk.into(), s(format!("C#{conversation}")));
                item.insert(GSI1.sk.into(), s(sort.clone()));
                let person = person.unwrap_or(&customer.customer_id);
                item.insert(GSI2.pk.into(), s(format!("U#{person}")));
                item.insert(GSI2.sk.into(), s(sort));
            }
            _ => {
                item.insert(
                    GSI1.pk.into(),
                    s(format!("N#{}#{}", record.channel(), record.account_id())),
                );
                item.insert(GSI1.sk.into(), s(sort));
            }
        }
        Ok(item)
    }

    /// `BatchGetItem` of any keys, 100 a call, retrying unprocessed keys (strongly consistent):
    /// the items found, with `pk`, `sk` and the attributes `projection` names.
    async fn batch_get(
        &self,
        operation: &'static str,
        keys: Vec<Item>,
        projection: &[&str],
    ) -> Result<Vec<Item>, BackendError> {
        let mut found = Vec::new();
        // Every name through a placeholder: some (`state`) are reserved words.
        let names: Vec<&str> = [PK, SK]
            .into_iter()
            .chain(projection.iter().copied())
            .collect();
        let placeholders: Vec<String> = (0..names.len()).map(|i| format!("#a{i}")).collect();
        for chunk in keys.chunks(BATCH_GET_MAX) {
            let mut request = KeysAndAttributes::builder()
                .set_keys(Some(chunk.to_vec()))
                .projection_expression(placeholders.join(", "))
                .consistent_read(true);
            for (placeholder, name) in placeholders.iter().zip(&names) {
                request = request.expression_attribute_names(placeholder, *name);
            }
            let request = request.build().map_err(unavailable(operation))?;
            let first = HashMap::from([(self.table.to_string(), request)]);
            let (client, table) = (self.client.clone(), self.table.clone());
            let items = until_processed(operation, "BatchGetItem", first, move |items| {
                let (client, table) = (client.clone(), table.clone());
                async move {
                    let mut out = client
                        .batch_get_item()
                        .set_request_items(Some(items))
                        .send()
                        .await
                        .map_err(unavailable(operation))?;
                    let found = out
                        .responses
                        .as_mut()
                        .and_then(|r| r.remove(table.as_ref()))
                        .unwrap_or_default();
                    Ok((found, out.unprocessed_keys))
                }
            })
            .await?;
            found.extend(items);
        }
        Ok(found)
    }

    /// `BatchGetItem` of record keys: the records found, with the attributes `projection` names.
    async fn get_records(
        &self,
        operation: &'static str,
        keys: &[RecordKey],
        projection: &[&str],
    ) -> Result<Vec<(RecordKey, Item)>, BackendError> {
        let keys = keys
            .iter()
            .map(|key| HashMap::from([(PK.to_owned(), s(record_pk(key))), (SK.to_owned(), s("R"))]))
            .collect();
        Ok(self
            .batch_get(operation, keys, projection)
            .await?
            .into_iter()
            .filter_map(|item| {
                let key = get_s(&item, PK)?.strip_prefix("R#")?.to_owned();
                Some((RecordKey::from_stored(key), item))
            })
            .collect())
    }

    /// Writes `puts` in transactions of up to 100, each put under its own condition. Answers the
    /// indexes of the puts not written because a transaction was cancelled (a failed condition,
    /// or a conflict with a concurrent transaction), for the caller to look at again.
    async fn transact_puts(
        &self,
        operation: &'static str,
        puts: Vec<Put>,
    ) -> Result<Vec<usize>, BackendError> {
        let mut cancelled = Vec::new();
        // Up to 100 actions and well under the 4 MB a transaction may hold.
        let mut chunks: Vec<Vec<(usize, Put)>> = Vec::new();
        let mut bytes = 0;
        for (i, put) in puts.into_iter().enumerate() {
            let size = item_size(put.item());
            match chunks.last_mut() {
                Some(chunk) if chunk.len() < TRANSACT_MAX && bytes + size <= TRANSACT_MAX_BYTES => {
                    bytes += size;
                    chunk.push((i, put));
                }
                _ => {
                    bytes = size;
                    chunks.push(vec![(i, put)]);
                }
            }
        }
        for chunk in &chunks {
            let actions = chunk
                .iter()
                .map(|(_, put)| TransactWriteItem::builder().put(put.clone()).build())
                .collect();
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(actions))
                .send()
                .await;
            match result {
                Ok(_) => {}
                Err(e)
                    if e.as_service_error().is_some_and(|s| {
                        matches!(s, TransactWriteItemsError::TransactionCanceledException(_))
                    }) =>
                {
                    cancelled.extend(chunk.iter().map(|(i, _)| *i));
                }
                Err(e) => return Err(BackendError::unavailable(operation, e)),
            }
        }
        Ok(cancelled)
    }

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

    /// The conditional put of a conversation: new (`version` none) or still at `version`.
    fn conversation_put(
        &self,
        conversation: &Conversation,
        version: Option<i64>,
    ) -> Result<Put, BackendError> {
        const OP: &str = "record";
        let doc = serde_json::to_string(conversation).map_err(unavailable(OP))?;
        let sort = at_key(conversation.last_at, conversation.id.as_str());
        let mut item = conversation_key(&conversation.id);
        item.extend([
            ("state".to_owned(), s(doc)),
            ("version".to_owned(), n(version.unwrap_or(0) + 1)),
            ("channel".to_owned(), s(conversation.channel.as_str())),
            (GSI1.pk.to_owned(), s("CONVS")),
            (GSI1.sk.to_owned(), s(sort.clone())),
            (
                GSI2.pk.to_owned(),
                s(format!("CONVS#{}", conversation.channel)),
            ),
            (GSI2.sk.to_owned(), s(sort)),
            (TTL_ATTRIBUTE.to_owned(), self.expires_at()),
        ]);
        // In its team's queue while it waits (gsi3 is sparse: a put without the keys removes
        // the conversation from it).
        if let (Some(position), Some(team)) = (
            QueuePosition::of(conversation),
            QueuePosition::team_of(conversation),
        ) {
            item.insert(GSI3.pk.to_owned(), s(queue_partition(team)));
            item.insert(GSI3.sk.to_owned(), s(queue_sort_key_of(&position)));
        }
        self.conditional_put(item, version)
    }

    async fn write_batch(
        &self,
        operation: &'static str,
        items: Vec<Item>,
    ) -> Result<(), BackendError> {
        for chunk in items.chunks(BATCH_WRITE_MAX) {
            let requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|item| {
                    let put = PutRequest::builder()
                        .set_item(Some(item.clone()))
                        .build()
                        .map_err(unavailable(operation))?;
                    Ok(WriteRequest::builder().put_request(put).build())
                })
                .collect::<Result<_, BackendError>>()?;
            let first = HashMap::from([(self.table.to_string(), requests)]);
            let client = self.client.clone();
            until_processed(operation, "BatchWriteItem", first, move |items| {
                let client = client.clone();
                async move {
                    let out = client
                        .batch_write_item()
                        .set_request_items(Some(items))
                        .send()
                        .await
                        .map_err(unavailable(operation))?;
                    Ok((Vec::new(), out.unprocessed_items))
                }
            })
            .await?;
        }
        Ok(())
    }
}

/// Sends `first` with `send`, then whatever DynamoDB answers it left unprocessed (it does so
/// under throttling), with backoff, until nothing is left; an error after
/// [`BATCH_ATTEMPTS`] attempts. Answers the items the calls returned.
async fn until_processed<T, F, Fut>(
    operation: &'static str,
    call: &str,
    first: HashMap<String, T>,
    mut send: F,
) -> Result<Vec<Item>, BackendError>
where
    F: FnMut(HashMap<String, T>) -> Fut,
    Fut:
        std::future::Future<Output = Result<(Vec<Item>, Option<HashMap<String, T>>), BackendError>>,
{
    let mut found = Vec::new();
    let mut pending = Some(first);
    let mut attempt = 0;
    while let Some(items) = pending.take().filter(|m| !m.is_empty()) {
        if attempt == BATCH_ATTEMPTS {
            return Err(BackendError::unavailable(
                operation,
                format!("{call} kept returning unprocessed requests"),
            ));
        }
        backoff(attempt).await;
        attempt += 1;
        let (items, unprocessed) = send(items).await?;
        found.extend(items);
        pending = unprocessed;
    }
    Ok(found)
}

/// Approximate size of an item, for the 4 MB limit of a transaction.
fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(k, v)| {
            k.len()
                + match v {
                    AttributeValue::S(s) => s.len(),
                    AttributeValue::B(b) => b.as_ref().len(),
                    _ => 16,
                }
        })
        .sum()
}

/// Exponential backoff before a retry of an unprocessed part: none before the first attempt.
async fn backoff(attempt: u32) {
    if attempt > 0 {
        tokio::time::sleep(Duration::from_millis(25 << attempt.min(6))).await;
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
        let delivered: HashMap<RecordKey, &Record> = keys.iter().cloned().zip(records).collect();
        for attempt in 0..BATCH_ATTEMPTS {
            backoff(attempt).await;
            let existing = self.existing(&keys).await?;
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
                Some(false) => stored
                    .get(key)
                    .or_else(|| delivered.get(key).copied())
                    .map_or(Prior::New, Prior::Unconfirmed),
            });
            if plan.writes_nothing() {
                return Ok(plan.pending);
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
                .batch_get(OP, state_keys, &["state", "version"])
                .await?
                .into_iter()
                .filter_map(|item| Some((get_s(&item, PK)?.to_owned(), item)))
                .collect();
            let mut puts = Vec::new();
            let mut persons: HashMap<&CustomerId, CustomerId> = HashMap::new();
            for identity in &plan.identities {
                let id = &identity.customer_id;
                let survivor = match states.remove(&format!("U#{id}")) {
                    None => None,
                    Some(item) => {
                        let customer = customer_from(&item)?;
                        match customer.merged_into {
                            None => Some(customer),
                            Some(_) => self.root_customer(id, OP).await?.or(Some(customer)),
                        }
                    }
                };
                let (person, create) = recording::customer_of(identity, survivor.as_ref());
                if let Some(customer) = create {
                    puts.push(self.conditional_put(self.customer_item(&customer)?, None)?);
                }
                persons.insert(id, person);
            }
            for record in &plan.new {
                let person = record.customer().and_then(|c| persons.get(&c.customer_id));
                let item = self.record_item(record, &record.key(), person, now)?;
                puts.push(self.conditional_put(item, None)?);
            }
            for (id, absorbed) in &plan.conversations {
                let item = states.remove(&format!("C#{id}"));
                let version = item.as_ref().and_then(|i| get_n(i, "version"));
                let before = item.as_ref().map(conversation_from).transpose()?;
                if let Some(conversation) = recording::fold(before.as_ref(), absorbed) {
                    puts.push(self.conversation_put(&conversation, version)?);
                }
            }
            let cancelled = self.transact_puts(OP, puts).await?;
            tracing::debug!(
                records = records.len(),
                new = plan.new.len(),
                pending = plan.pending.len(),
                cancelled = cancelled.len(),
                attempt,
                "records stored"
            );
            if cancelled.is_empty() {
                return Ok(plan.pending);
            }
        }
        Err(BackendError::unavailable(
            OP,
            "transactions kept being cancelled by concurrent writers",
        ))
    }

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

/// The keys a cursor carries: the table's and the index's key attributes of the last item.
fn cursor_of(item: &Item, index: Option<IndexSpec>) -> Option<String> {
    let mut names = vec![PK, SK];
    if let Some(index) = index {
        names.extend([index.pk, index.sk]);
    }
    let map: serde_json::Map<String, serde_json::Value> = names
        .into_iter()
        .map(|name| Some((name.to_owned(), get_s(item, name)?.into())))
        .collect::<Option<_>>()?;
    Some(URL_SAFE_NO_PAD.encode(serde_json::Value::Object(map).to_string()))
}

/// The `ExclusiveStartKey` of a cursor, checked to belong to the same listing (`expect_pk` is
/// the partition the listing reads: the index's, or the table's).
fn start_key(
    cursor: &str,
    index: Option<IndexSpec>,
    expect_pk: &str,
) -> Result<Item, BackendError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| BackendError::BadCursor)?;
    let json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|_| BackendError::BadCursor)?;
    let mut names = vec![PK, SK];
    if let Some(index) = index {
        names.extend([index.pk, index.sk]);
    }
    if json.len() != names.len() {
        return Err(BackendError::BadCursor);
    }
    let mut key = Item::new();
    for name in names {
        let value = json
            .get(name)
            .and_then(|v| v.as_str())
            .ok_or(BackendError::BadCursor)?;
        key.insert(name.to_owned(), s(value));
    }
    let partition = index.map_or(PK, |i| i.pk);
    if get_s(&key, partition) != Some(expect_pk) {
        return Err(BackendError::BadCursor);
    }
    Ok(key)
}

impl DynamoStore {
    /// One page of a query on `partition` of the table or an index, `limit + 1` read to know
    /// whether another page follows.
    async fn query_page(
        &self,
        operation: &'static str,
        index: Option<IndexSpec>,
        partition: &str,
        forward: bool,
        page: &PageRequest,
    ) -> Result<(Vec<Item>, Option<String>), BackendError> {
        let limit = page.limit.max(1);
        let pk_name = index.map_or(PK, |i| i.pk);
        let start = match &page.cursor {
            Some(c) => Some(start_key(c, index, partition)?),
            None => None,
        };
        let mut items: Vec<Item> = Vec::new();
        let mut exclusive_start = start;
        loop {
            let out = self
                .client
                .query()
                .table_name(self.table.as_ref())
                .set_index_name(index.map(|i| i.name.to_owned()))
                .key_condition_expression("#p = :p")
                .expression_attribute_names("#p", pk_name)
                .expression_attribute_values(":p", s(partition))
                .scan_index_forward(forward)
                .limit((limit + 1 - items.len()) as i32)
                .set_exclusive_start_key(exclusive_start.take())
                .set_consistent_read(index.is_none().then_some(true))
                .send()
                .await
                .map_err(unavailable(operation))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if items.len() <= limit => exclusive_start = Some(k),
                _ => break,
            }
        }
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().and_then(|last| cursor_of(last, index))
        } else {
            None
        };
        Ok((items, next))
    }
}

fn conversation_from(item: &Item) -> Result<Conversation, BackendError> {
    let state = get_s(item, "state").ok_or_else(|| corrupt("conversations", "state"))?;
    serde_json::from_str(state).map_err(|_| corrupt("conversations", "state"))
}

fn stored_record_from(item: &Item) -> Result<StoredRecord, BackendError> {
    let key = get_s(item, PK)
        .and_then(|p| p.strip_prefix("R#"))
        .ok_or_else(|| corrupt("timeline", "pk"))?;
    let record = serde_json::from_str(get_s(item, "doc").unwrap_or_default())
        .map_err(|_| corrupt("timeline", "doc"))?;
    let stored_at = get_s(item, "stored_at")
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| corrupt("timeline", "stored_at"))?;
    Ok(StoredRecord {
        key: RecordKey::from_stored(key),
        stored_at,
        record,
    })
}

#[async_trait]
impl ConversationReader for DynamoStore {
    /// One query on `gsi3`, partition `Q#<team>`, in sort-key order from after `after`.
    async fn queue(
        &self,
        team: &str,
        after: Option<&QueuePosition>,
        limit: usize,
    ) -> Result<Vec<Conversation>, BackendError> {
        const OP: &str = "queue";
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut condition = "#p = :p".to_owned();
        let mut query = self
            .client
            .query()
            .table_name(self.table.as_ref())
            .index_name(GSI3.name)
            .expression_attribute_names("#p", GSI3.pk)
            .expression_attribute_values(":p", s(queue_partition(team)));
        if let Some(p) = after {
            condition.push_str(" AND #s > :after");
            query = query
                .expression_attribute_names("#s", GSI3.sk)
                .expression_attribute_values(":after", s(queue_sort_key_of(p)));
        }
        let query = query.key_condition_expression(condition);
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let out = query
                .clone()
                .limit(i32::try_from(limit - found.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable(OP))?;
            for item in out.items.unwrap_or_default() {
                found.push(conversation_from(&item)?);
            }
            match out.last_evaluated_key {
                Some(k) if found.len() < limit => start = Some(k),
                _ => return Ok(found),
            }
        }
    }

    async fn conversations(
        &self,
        channel: Option<Channel>,
        page: PageRequest,
    ) -> Result<Page<Conversation>, BackendError> {
        let (index, partition) = match channel {
            None => (GSI1, "CONVS".to_owned()),
            Some(c) => (GSI2, format!("CONVS#{c}")),
        };
        let (items, next) = self
            .query_page("conversations", Some(index), &partition, false, &page)
            .await?;
        let items = items
            .iter()
            .map(conversation_from)
            .collect::<Result<_, _>>()?;
        Ok(Page { items, next })
    }

    async fn conversation(
        &self,
        id: &ConversationId,
    ) -> Result<Option<Conversation>, BackendError> {
        let out = self
            .client
            .get_item()
            .table_name(self.table.as_ref())
            .key(PK, s(format!("C#{id}")))
            .key(SK, s("C"))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable("conversation"))?;
        out.item.as_ref().map(conversation_from).transpose()
    }

    async fn timeline(
        &self,
        id: &ConversationId,
        page: PageRequest,
    ) -> Result<Page<StoredRecord>, BackendError> {
        let (items, next) = self
            .query_page("timeline", Some(GSI1), &format!("C#{id}"), true, &page)
            .await?;
        let items = items
            .iter()
            .map(stored_record_from)
            .collect::<Result<_, _>>()?;
        Ok(Page { items, next })
    }

    async fn delivery(&self, id: &DeliveryId) -> Result<Option<RawDelivery>, BackendError> {
        let pk = format!("D#{id}");
        let mut chunks: Vec<Item> = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(self.table.as_ref())
                .key_condition_expression("#p = :p")
                .expression_attribute_names("#p", PK)
                .expression_attribute_values(":p", s(&pk))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable("delivery"))?;
            chunks.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        let Some(head) = chunks.first() else {
            return Ok(None);
        };
        let expected = get_n(head, "chunks").unwrap_or(0) as usize;
        if chunks.len() != expected {
            return Err(corrupt("delivery", "chunk count"));
        }
        let webhook = get_s(head, "channel")
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| corrupt("delivery", "channel"))?;
        let received_at = get_s(head, "received_at")
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| corrupt("delivery", "received_at"))?;
        let quarantined = head
            .get("quarantined")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false);
        let mut compressed = Vec::new();
        for chunk in &chunks {
            let data = chunk
                .get("data")
                .and_then(|v| v.as_b().ok())
                .ok_or_else(|| corrupt("delivery", "data"))?;
            compressed.extend_from_slice(data.as_ref());
        }
        let mut body = Vec::with_capacity(get_n(head, "size").unwrap_or(0).max(0) as usize);
        flate2::read::GzDecoder::new(compressed.as_slice())
            .read_to_end(&mut body)
            .map_err(|_| corrupt("delivery", "gzip"))?;
        let delivery = RawDelivery {
            id: id.clone(),
            webhook,
            received_at,
            quarantined,
            body: Bytes::from(body),
        };
        Ok(Some(delivery))
    }

    async fn quarantined(&self, page: PageRequest) -> Result<Page<DeliveryId>, BackendError> {
        let (items, next) = self
            .query_page("quarantined", None, "QUARANTINE", false, &page)
            .await?;
        let items = items
            .iter()
            .map(|item| {
                get_s(item, "delivery_id")
                    .map(DeliveryId::from_stored)
                    .ok_or_else(|| corrupt("quarantined", "delivery_id"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Page { items, next })
    }
}

/// Merges are followed at most this far.
const MAX_HOPS: usize = 16;

/// The `gsi3` sort key of a queue position: `<rank>#<waiting_since ms, 15 digits>#<id>`, whose
/// string order is the queue's order.
fn queue_sort_key_of(p: &QueuePosition) -> String {
    format!("{}#{:015}#{}", p.rank, p.waiting_since_ms.max(0), p.id)
}

/// The `gsi3` partition of a team's queue.
fn queue_partition(team: &str) -> String {
    format!("Q#{team}")
}

fn conversation_key(id: &ConversationId) -> Item {
    HashMap::from([
        (PK.to_owned(), s(format!("C#{id}"))),
        (SK.to_owned(), s("C")),
    ])
}

fn customer_key(id: &CustomerId) -> Item {
    HashMap::from([
        (PK.to_owned(), s(format!("U#{id}"))),
        (SK.to_owned(), s("CUSTOMER")),
    ])
}

fn customer_from(item: &Item) -> Result<Customer, BackendError> {
    let state = get_s(item, "state").ok_or_else(|| corrupt("customer", "state"))?;
    serde_json::from_str(state).map_err(|_| corrupt("customer", "state"))
}

impl DynamoStore {
    async fn load_customer(
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
    async fn root_customer(
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

    /// A put of `item` that succeeds only if the item does not exist yet (`version` none) or is
    /// still at `version`.
    fn conditional_put(&self, item: Item, version: Option<i64>) -> Result<Put, BackendError> {
        let put = Put::builder()
            .table_name(self.table.as_ref())
            .set_item(Some(item));
        let put = match version {
            None => put
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", PK),
            Some(v) => put
                .condition_expression("#version = :version")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":version", n(v)),
        };
        put.build().map_err(unavailable("record"))
    }

    fn customer_item(&self, customer: &Customer) -> Result<Item, BackendError> {
        let mut item = customer_key(&customer.id);
        item.insert(
            "state".into(),
            s(serde_json::to_string(customer).map_err(unavailable("customer"))?),
        );
        Ok(item)
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
        for _ in 0..UPDATE_ATTEMPTS {
            let Some(mut customer) = self.root_customer(id, OP).await? else {
                return Ok(None);
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
                Ok(_) => return Ok(Some(customer)),
                Err(e) if is_condition_failure(&e) => continue,
                Err(e) => return Err(BackendError::unavailable(OP, e)),
            }
        }
        Err(BackendError::unavailable(
            OP,
            "the customer kept changing while its tier was set",
        ))
    }

    async fn timeline(
        &self,
        id: &CustomerId,
        page: PageRequest,
    ) -> Result<Page<StoredRecord>, BackendError> {
        let (items, next) = self
            .query_page(
                "customer_timeline",
                Some(GSI2),
                &format!("U#{id}"),
                true,
                &page,
            )
            .await?;
        let items = items
            .iter()
            .map(stored_record_from)
            .collect::<Result<_, _>>()?;
        Ok(Page { items, next })
    }
}

#[async_trait]
impl PriorityStore for DynamoStore {
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

    async fn conversations_by_id(
        &self,
        ids: &[ConversationId],
    ) -> Result<Vec<Conversation>, BackendError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys = ids.iter().map(conversation_key).collect();
        self.batch_get("conversations_by_id", keys, &["state"])
            .await?
            .iter()
            .map(conversation_from)
            .collect()
    }

    /// `GetItem` (consistent), the change, then a `PutItem` conditional on the version read;
    /// a failed condition (intake wrote the conversation in between) reads again.
    async fn update_conversation(
        &self,
        id: &ConversationId,
        change: ConversationChange<'_>,
    ) -> Result<Option<Conversation>, BackendError> {
        const OP: &str = "update_conversation";
        for attempt in 0..UPDATE_ATTEMPTS {
            backoff(attempt).await;
            let out = self
                .client
                .get_item()
                .table_name(self.table.as_ref())
                .set_key(Some(conversation_key(id)))
                .consistent_read(true)
                .send()
                .await
                .map_err(unavailable(OP))?;
            let Some(item) = out.item else {
                return Ok(None);
            };
            let mut conversation = conversation_from(&item)?;
            if !change(&mut conversation) {
                return Ok(Some(conversation));
            }
            let put = self.conversation_put(&conversation, get_n(&item, "version"))?;
            let outcome = self
                .client
                .put_item()
                .table_name(self.table.as_ref())
                .set_item(Some(put.item().clone()))
                .set_condition_expression(put.condition_expression().map(str::to_owned))
                .set_expression_attribute_names(put.expression_attribute_names().cloned())
                .set_expression_attribute_values(put.expression_attribute_values().cloned())
                .send()
                .await;
            match outcome {
                Ok(_) => return Ok(Some(conversation)),
                Err(e) if is_condition_failure(&e) => continue,
                Err(e) => return Err(BackendError::unavailable(OP, e)),
            }
        }
        Err(BackendError::unavailable(
            OP,
            "the conversation kept changing while it was being updated",
        ))
    }
}
