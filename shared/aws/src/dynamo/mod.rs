//! [`DynamoStore`]: the store on one DynamoDB table (single-table design).
//!
//! | item | pk | sk | gsi1pk / gsi1sk | gsi2pk / gsi2sk |
//! |---|---|---|---|---|
//! | record (message, event) | `R#<key>` | `R` | `C#<conversation>` / `<at>#<key>` | `U#<customer>` / `<at>#<key>` |
//! | record (notification) | `R#<key>` | `R` | `N#<channel>#<account>` / `<at>#<key>` | – |
//! | conversation | `C#<id>` | `C` | `CONVS` / `<last_at>#<id>` | `CONVS#<channel>` / `<last_at>#<id>` |
//! | conversation (waiting, prioritized) | | | + `gsi3pk` / `gsi3sk`: `Q#<team>` / `<rank>#<waiting_since>#<id>` | |
//! | conversation (waiting, prioritized, assigned) | | | + `gsi4pk` / `gsi4sk`: `A#<agent>` / as `gsi3sk` | |
//! | raw delivery chunk | `D#<sha256>` | `CHUNK#<n>` | – | – |
//! | quarantine entry | `QUARANTINE` | `<received_at>#<sha256>` | – | – |
//! | idempotency key (`POST …/reply`) | `K#<conversation>/<key>` | `K` | – | – |
//! | metrics bucket (an hour, one set of dims) | `M#<yyyy-mm>` | `<hour>#<dims id>` | – | – |
//! | watch of a business account (silent channels) | `W#<watch id>` | `W` | – | – |
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
//!
//! **Metrics** are counted in the writes that make what they count: the `ADD` of a change's
//! buckets goes in the same transaction as the conversation put (see the `metrics` module), so
//! no call is added, and a change that is not written counts nothing.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, DeleteRequest, KeysAndAttributes, Put, PutRequest, TransactWriteItem, Update,
    WriteRequest,
};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;

use switchboard_core::clock::Clock;
use switchboard_core::ids::{ConversationId, CustomerId, RecordKey};
use switchboard_core::metrics::Tally;
use switchboard_core::model::{Conversation, Customer, Message, Record};
use switchboard_core::ports::{BackendError, QueueName, QueuePosition, StoredRecord};

use crate::resources::{GSI1, GSI2, GSI3, GSI4, IndexSpec, PK, SK, TTL_ATTRIBUTE};
use crate::retry::{Backoff, resend_leftovers};

mod conversations;
mod customers;
mod erasure;
mod idempotency;
mod messages;
mod metrics;
mod outbox;
mod reader;
#[cfg(test)]
mod tests;
mod watches;

pub use outbox::DynamoOutbox;

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

type Item = HashMap<String, AttributeValue>;

/// The store on one DynamoDB table. See the module docs for the key design.
///
/// Implements the storage ports of `switchboard_core::ports` (a module each: `messages`,
/// `reader`, `customers`, `conversations`) with the contract stated on them;
/// every failed AWS call is a [`BackendError::Unavailable`], after which a retry of the same
/// delivery is safe.
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: Arc<str>,
    retention: chrono::Duration,
    clock: Arc<dyn Clock>,
    backoff: Backoff,
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
            backoff: Backoff::STANDARD,
        }
    }

    /// The same store, waiting by `backoff` between the attempts of a batch call that left
    /// part undone and of a write that lost to another writer (default
    /// [`Backoff::STANDARD`]; tests shorten it).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
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

/// A modeled error that may be a failed condition.
trait ConditionFailure {
    fn is_condition_failure(&self) -> bool;
}

impl ConditionFailure for aws_sdk_dynamodb::operation::put_item::PutItemError {
    fn is_condition_failure(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

impl ConditionFailure for aws_sdk_dynamodb::operation::delete_item::DeleteItemError {
    fn is_condition_failure(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

impl ConditionFailure for aws_sdk_dynamodb::operation::update_item::UpdateItemError {
    fn is_condition_failure(&self) -> bool {
        self.is_conditional_check_failed_exception()
    }
}

/// Whether a call failed on its condition (`ConditionalCheckFailedException`, by its modeled
/// variant): someone wrote in between, read again.
fn is_condition_failure<E: ConditionFailure, R>(
    e: &aws_sdk_dynamodb::error::SdkError<E, R>,
) -> bool {
    e.as_service_error()
        .is_some_and(ConditionFailure::is_condition_failure)
}

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

/// Merges are followed at most this far.
const MAX_HOPS: usize = 16;

/// The `gsi3` sort key of a queue position: `<rank>#<waiting_since ms, 15 digits>#<id>`, whose
/// string order is the queue's order.
fn queue_sort_key_of(p: &QueuePosition) -> String {
    format!("{}#{:015}#{}", p.rank, p.waiting_since_ms.max(0), p.id)
}

/// The index and partition of a queue: `gsi3` `Q#<team>`, `gsi4` `A#<agent>`.
fn queue_partition(queue: QueueName<'_>) -> (IndexSpec, String) {
    match queue {
        QueueName::Team(team) => (GSI3, format!("Q#{team}")),
        QueueName::Agent(agent) => (GSI4, format!("A#{agent}")),
    }
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
            let items = resend_leftovers(
                operation,
                "BatchGetItem",
                self.backoff,
                first,
                move |items| {
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
                        Ok((found, out.unprocessed_keys.unwrap_or_default()))
                    }
                },
            )
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

    /// Writes `units` in transactions of up to 100 actions, each put under its own condition
    /// and each unit's tally added to its buckets (`ADD`) in the same transaction as its puts
    /// (the tallies of one transaction merged per bucket: a transaction touches an item once).
    /// Answers whether a transaction was cancelled (a failed condition, or a conflict with a
    /// concurrent transaction): then what it held was not written, and the caller decides again
    /// from fresh reads.
    async fn transact(
        &self,
        operation: &'static str,
        units: Vec<WriteUnit>,
    ) -> Result<bool, BackendError> {
        // Up to 100 actions and well under the 4 MB a transaction may hold; a unit is never
        // split.
        let mut chunks: Vec<Vec<WriteUnit>> = Vec::new();
        let (mut actions, mut bytes) = (0, 0);
        for unit in units {
            let (n, size) = unit.cost();
            match chunks.last_mut() {
                Some(chunk)
                    if actions + n <= TRANSACT_MAX && bytes + size <= TRANSACT_MAX_BYTES =>
                {
                    actions += n;
                    bytes += size;
                    chunk.push(unit);
                }
                _ => {
                    (actions, bytes) = (n, size);
                    chunks.push(vec![unit]);
                }
            }
        }
        let mut cancelled = false;
        for chunk in chunks {
            let mut tally = Tally::default();
            let mut items = Vec::new();
            for unit in chunk {
                tally.merge(&unit.tally);
                items.extend(
                    unit.puts
                        .into_iter()
                        .map(|put| TransactWriteItem::builder().put(put).build()),
                );
                items.extend(
                    unit.updates
                        .into_iter()
                        .map(|update| TransactWriteItem::builder().update(update).build()),
                );
            }
            items.extend(
                self.counter_updates(operation, &tally)?
                    .into_iter()
                    .map(|update| TransactWriteItem::builder().update(update).build()),
            );
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await;
            match result {
                Ok(_) => {}
                Err(e)
                    if e.as_service_error().is_some_and(|s| {
                        matches!(s, TransactWriteItemsError::TransactionCanceledException(_))
                    }) =>
                {
                    cancelled = true;
                }
                Err(e) => return Err(BackendError::unavailable(operation, e)),
            }
        }
        Ok(cancelled)
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
        // In its team's queue while it waits, and in its agent's when assigned (the queue
        // indexes are sparse: a put without the keys removes the conversation from them).
        if let Some(position) = QueuePosition::of(conversation) {
            let queues = [
                QueuePosition::team_of(conversation).map(QueueName::Team),
                QueuePosition::agent_of(conversation).map(QueueName::Agent),
            ];
            for queue in queues.into_iter().flatten() {
                let (index, partition) = queue_partition(queue);
                item.insert(index.pk.to_owned(), s(partition));
                item.insert(index.sk.to_owned(), s(queue_sort_key_of(&position)));
            }
        }
        self.conditional_put(item, version)
    }

    async fn write_batch(
        &self,
        operation: &'static str,
        items: Vec<Item>,
    ) -> Result<(), BackendError> {
        let requests = items
            .into_iter()
            .map(|item| {
                let put = PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map_err(unavailable(operation))?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>, BackendError>>()?;
        self.send_writes(operation, requests).await
    }

    /// Deletes the items of `keys` with `BatchWriteItem`.
    pub(super) async fn delete_batch(
        &self,
        operation: &'static str,
        keys: Vec<Item>,
    ) -> Result<(), BackendError> {
        let requests = keys
            .into_iter()
            .map(|key| {
                let delete = DeleteRequest::builder()
                    .set_key(Some(key))
                    .build()
                    .map_err(unavailable(operation))?;
                Ok(WriteRequest::builder().delete_request(delete).build())
            })
            .collect::<Result<Vec<_>, BackendError>>()?;
        self.send_writes(operation, requests).await
    }

    /// Sends `requests` with `BatchWriteItem`, [`BATCH_WRITE_MAX`] a call, sending what comes
    /// back unprocessed again.
    async fn send_writes(
        &self,
        operation: &'static str,
        requests: Vec<WriteRequest>,
    ) -> Result<(), BackendError> {
        for chunk in requests.chunks(BATCH_WRITE_MAX) {
            let first = HashMap::from([(self.table.to_string(), chunk.to_vec())]);
            let client = self.client.clone();
            resend_leftovers(
                operation,
                "BatchWriteItem",
                self.backoff,
                first,
                move |items| {
                    let client = client.clone();
                    async move {
                        let out = client
                            .batch_write_item()
                            .set_request_items(Some(items))
                            .send()
                            .await
                            .map_err(unavailable(operation))?;
                        Ok((
                            Vec::<Item>::new(),
                            out.unprocessed_items.unwrap_or_default(),
                        ))
                    }
                },
            )
            .await?;
        }
        Ok(())
    }
    /// Sends a conditional `put` as one `PutItem`: `true` when written, `false` when its
    /// condition failed (someone wrote in between: read again).
    async fn put_if(&self, op: &'static str, put: &Put) -> Result<bool, BackendError> {
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
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(BackendError::unavailable(op, e)),
        }
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

    /// A customer's item, expiring one retention period from now (a customer of whom nothing
    /// is written for that long goes with their records).
    fn customer_item(&self, customer: &Customer) -> Result<Item, BackendError> {
        let mut item = customer_key(&customer.id);
        item.insert(
            "state".into(),
            s(serde_json::to_string(customer).map_err(unavailable("customer"))?),
        );
        item.insert(TTL_ATTRIBUTE.to_owned(), self.expires_at());
        Ok(item)
    }

    /// The update that moves an existing customer's expiry to one retention period from now,
    /// when what was read (`ttl`, unix seconds; none on items written before customers
    /// expired) is due within a day: at most one such write a day per customer.
    fn customer_renewal(
        &self,
        id: &CustomerId,
        ttl: Option<i64>,
    ) -> Result<Option<Update>, BackendError> {
        let renew_below =
            (self.clock.now() + self.retention - chrono::Duration::days(1)).timestamp();
        if ttl.is_some_and(|t| t >= renew_below) {
            return Ok(None);
        }
        Update::builder()
            .table_name(self.table.as_ref())
            .set_key(Some(customer_key(id)))
            .update_expression("SET #ttl = :ttl")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":ttl", self.expires_at())
            .build()
            .map(Some)
            .map_err(unavailable("record"))
    }
}

/// Writes that must land together, in one transaction: conditional puts, and the counts of
/// the change they make.
#[derive(Default)]
struct WriteUnit {
    puts: Vec<Put>,
    updates: Vec<Update>,
    tally: Tally,
}

impl WriteUnit {
    /// The actions and bytes this unit takes of a transaction. Counter updates are small: a
    /// bucket's update is counted as one action and 1 KB.
    fn cost(&self) -> (usize, usize) {
        let buckets = self.tally.buckets().count();
        let actions = self.puts.len() + self.updates.len() + buckets;
        let bytes = self.puts.iter().map(|p| item_size(p.item())).sum::<usize>()
            + 1024 * (self.updates.len() + buckets);
        (actions, bytes)
    }

    /// Whether `units` and the puts of `items` fit one transaction ([`DynamoStore::transact`]
    /// writes them in one call).
    fn fit_one_transaction<'a>(units: impl Iterator<Item = &'a WriteUnit>, items: &[Item]) -> bool {
        let puts: (usize, usize) = (items.len(), items.iter().map(item_size).sum());
        let (actions, bytes) = units
            .map(Self::cost)
            .fold(puts, |(a, b), (n, s)| (a + n, b + s));
        actions <= TRANSACT_MAX && bytes <= TRANSACT_MAX_BYTES
    }

    fn put(put: Put) -> Self {
        Self {
            puts: vec![put],
            ..Self::default()
        }
    }

    fn update(update: Update) -> Self {
        Self {
            updates: vec![update],
            ..Self::default()
        }
    }
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
