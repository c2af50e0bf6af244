//! Ports: the narrow traits the intake service and the read API need from storage and queues.
//!
//! Each has two implementations, AWS (DynamoDB, SQS) and embedded (SQLite), held to the same
//! contract by one test suite run against both.

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

use crate::ids::{ConversationId, CustomerId, DeliveryId, RecordKey};
use crate::metrics::{BucketKey, Counts, Tally};
use crate::model::{
    Channel, Conversation, Customer, Identifier, LinkEvidence, ProviderId, Record, Sighting,
    Webhook,
};
use crate::sla::WatchedAccount;

/// A failure of a storage or queue backend. Always retryable from the provider's point of view:
/// the webhook answers 5xx and the provider sends the delivery again.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend could not be reached or refused the operation.
    #[error("{operation} failed")]
    Unavailable {
        /// What was being done (`keep_delivery`, `enqueue`, …), for the log.
        operation: &'static str,
        /// The underlying error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A pagination cursor that this backend did not issue.
    #[error("invalid cursor")]
    BadCursor,
}

impl BackendError {
    /// Wraps any error as [`BackendError::Unavailable`].
    pub fn unavailable(
        operation: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Unavailable {
            operation,
            source: source.into(),
        }
    }
}

/// The exact bytes of one webhook delivery, as received.
#[derive(Debug, Clone, PartialEq)]
pub struct RawDelivery {
    /// SHA-256 of the bytes.
    pub id: DeliveryId,
    /// The webhook that received it.
    pub webhook: Webhook,
    /// When switchboard received it.
    pub received_at: DateTime<Utc>,
    /// True when the signature was valid but the body is not JSON: kept for a human to look at.
    pub quarantined: bool,
    /// The body, byte for byte.
    pub body: Bytes,
}

impl RawDelivery {
    /// A delivery of `body` to `webhook`, received at `received_at`.
    pub fn new(
        webhook: Webhook,
        body: Bytes,
        received_at: DateTime<Utc>,
        quarantined: bool,
    ) -> Self {
        Self {
            id: DeliveryId::of(&body),
            webhook,
            received_at,
            quarantined,
            body,
        }
    }
}

/// What the intake queue carries: a reference to a stored record, never its content (no message
/// text or phone number travels through the queue).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    /// The stored record.
    pub record_key: RecordKey,
    /// Its conversation; the queue keeps one conversation's entries in order.
    pub conversation_id: ConversationId,
    /// Its channel.
    pub channel: Channel,
    /// `message` or `event`.
    pub record_type: String,
    /// `text`, `status.read`, …
    pub kind: String,
    /// The business account it came to (for the silent-channel watch); absent in entries
    /// enqueued before it was added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<ProviderId>,
}

impl QueueEntry {
    /// The entry for a message or event; `None` for a notification (not about a conversation).
    pub fn for_record(record: &Record) -> Option<Self> {
        Self::for_keyed(record.key(), record)
    }

    /// [`QueueEntry::for_record`] of a record whose key (`record.key()`) is derived already.
    pub fn for_keyed(record_key: RecordKey, record: &Record) -> Option<Self> {
        Some(Self {
            record_key,
            conversation_id: record.conversation_id()?.clone(),
            channel: record.channel(),
            record_type: record.record_type().to_owned(),
            kind: record.kind_name(),
            account_id: Some(record.account_id().clone()),
        })
    }
}

/// A record as stored, with when it was first stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRecord {
    /// The record's key.
    pub key: RecordKey,
    /// When this store first wrote it.
    pub stored_at: DateTime<Utc>,
    /// The record.
    pub record: Record,
}

/// The durable side of intake.
///
/// Contract (held by the contract suite on every backend):
/// * [`keep_delivery`](Self::keep_delivery) keeps the bytes whole, whatever their size up to the
///   intake limit; keeping the same delivery again changes nothing.
/// * [`record`](Self::record) writes each record that is not stored yet, once, keyed by
///   [`Record::key`]; a record already stored is left as it is (a duplicate is a no-op, the
///   first version wins). Every conversation of the records reflects them afterwards, and
///   what absorbing them counted ([`crate::recording::fold`]) is added to the metrics in the
///   same atomic write as the conversation.
///   It returns, in input order, the queue entries of every message and event that is not yet
///   marked enqueued: those written now *and* those an earlier call wrote whose enqueue was never
///   confirmed. What a record does to its conversation and customer is decided by
///   [`crate::recording`], the same rule on every backend. On error, some records may be
///   written; calling again with the same records is always safe.
/// * [`mark_enqueued`](Self::mark_enqueued) confirms entries were handed to the queue, so later
///   calls of `record` with the same records return nothing for them.
#[async_trait]
pub trait MessageStore: RecordLookup {
    /// Keeps a raw delivery durably.
    async fn keep_delivery(&self, delivery: &RawDelivery) -> Result<(), BackendError>;
    /// Writes new records; returns the entries still to enqueue.
    async fn record(&self, records: &[Record]) -> Result<Vec<QueueEntry>, BackendError>;
    /// Marks records as handed to the queue.
    async fn mark_enqueued(&self, keys: &[RecordKey]) -> Result<(), BackendError>;
}

/// A store whose intake queue is fed from its own transactions, a transactional outbox: a
/// delivery's records and their queue entries are written in one atomic step, so the intake
/// neither enqueues nor confirms them separately. The embedded backend (the queue is a table
/// of the same file: one commit instead of three on the acknowledgement path) and DynamoDB
/// (the entries go into an outbox table in the records' transaction; its stream feeds the
/// queue: two rounds instead of five).
#[async_trait]
pub trait Outbox: Send + Sync {
    /// In one transaction: keeps `delivery` when given (as [`MessageStore::keep_delivery`]),
    /// writes `records` (as [`MessageStore::record`]), and enqueues the entries that returns,
    /// in order, marking their records enqueued (as [`IntakeQueue::enqueue`]). Returns those
    /// entries. After `Ok` all of it is durable; after an error repeating the call is safe
    /// (on the embedded store none of it was written; on DynamoDB the raw bytes, kept in
    /// parallel, may be).
    async fn take_in(
        &self,
        delivery: Option<&RawDelivery>,
        records: &[Record],
    ) -> Result<Vec<QueueEntry>, BackendError>;
}

/// Stored records by key: what intake reads to resolve replies and events, and what the
/// prioritizer reads for the message of a queue entry.
#[async_trait]
pub trait RecordLookup: Send + Sync {
    /// The stored records with these keys; a key never stored is absent from the map.
    async fn find(&self, keys: &[RecordKey]) -> Result<HashMap<RecordKey, Record>, BackendError>;
}

/// One page of a listing, and the cursor of the next page (`None` at the end).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Opaque cursor of the next page, `None` when this is the last.
    pub next: Option<String>,
}

/// What to read: where to start and how many at most.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PageRequest {
    /// A `next` cursor from an earlier page of the same listing.
    pub cursor: Option<String>,
    /// The most items to return (the backend may return fewer, never more).
    pub limit: usize,
}

/// The read side of the store: conversations and their records.
///
/// Listings are paginated with opaque cursors; a cursor not issued by the same listing of the
/// same backend is [`BackendError::BadCursor`].
#[async_trait]
pub trait ConversationReader: Send + Sync {
    /// Conversations, most recently active first, optionally of one channel.
    async fn conversations(
        &self,
        channel: Option<Channel>,
        page: PageRequest,
    ) -> Result<Page<Conversation>, BackendError>;
    /// A conversation's messages and events, in provider-time order.
    async fn timeline(
        &self,
        id: &ConversationId,
        page: PageRequest,
    ) -> Result<Page<StoredRecord>, BackendError>;
    /// A kept delivery, whole.
    async fn delivery(&self, id: &DeliveryId) -> Result<Option<RawDelivery>, BackendError>;
    /// Quarantined deliveries (valid signature, not JSON), newest first.
    async fn quarantined(&self, page: PageRequest) -> Result<Page<DeliveryId>, BackendError>;
    /// A queue: its waiting conversations that have a priority, in [`QueuePosition`] order
    /// (most urgent first, then longest waiting, then by id), those after `after` only, at
    /// most `limit`. A conversation leaves the queue when it is answered or resolved.
    async fn queue(
        &self,
        queue: QueueName<'_>,
        after: Option<&QueuePosition>,
        limit: usize,
    ) -> Result<Vec<Conversation>, BackendError>;
}

/// Which queue to read: a team's (the team of the conversation's priority), or an agent's (the
/// conversations assigned to them). A waiting, prioritized conversation is in its team's queue
/// and, when assigned, in its agent's too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueName<'a> {
    /// The queue of a team.
    Team(&'a str),
    /// The conversations assigned to an agent.
    Agent(&'a str),
}

/// A conversation's place in a queue: priority rank (1 for P1), then the start of its wait,
/// then its id. The derived order is the queue's order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct QueuePosition {
    /// 1 for P1 … 4 for P4.
    #[serde(rename = "r")]
    pub rank: u8,
    /// `waiting_since`, in milliseconds.
    #[serde(rename = "t")]
    pub waiting_since_ms: i64,
    /// The conversation.
    #[serde(rename = "id")]
    pub id: ConversationId,
}

impl QueuePosition {
    /// The position of a conversation in its queues; `None` when it is in none (not waiting,
    /// resolved, or not prioritized yet).
    pub fn of(conversation: &Conversation) -> Option<Self> {
        Some(Self {
            rank: conversation.priority.as_ref()?.priority.rank(),
            waiting_since_ms: conversation.waiting_since?.timestamp_millis(),
            id: conversation.id.clone(),
        })
    }

    /// The team of a conversation in a queue.
    pub fn team_of(conversation: &Conversation) -> Option<&str> {
        Self::of(conversation)?;
        conversation.priority.as_ref().map(|p| p.team.as_str())
    }

    /// The agent of a conversation in a queue, when it is assigned.
    pub fn agent_of(conversation: &Conversation) -> Option<&str> {
        Self::of(conversation)?;
        conversation.assignee.as_deref()
    }
}

/// The queue that hands new records to the prioritizer.
///
/// Contract: after `Ok`, every entry is durably in the queue. Entries of one conversation keep
/// their order. An entry enqueued twice may be delivered twice (FIFO queues drop a repeat within
/// their deduplication window); consumers are idempotent.
#[async_trait]
pub trait IntakeQueue: Send + Sync {
    /// Enqueues entries, in batches where the backend allows.
    async fn enqueue(&self, entries: &[QueueEntry]) -> Result<(), BackendError>;
}

/// Why two customers could not be linked.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// A customer cannot be linked to itself.
    #[error("a customer cannot be linked to itself")]
    SameCustomer,
    /// No customer has this id.
    #[error("customer {0} not found")]
    UnknownCustomer(CustomerId),
    /// The link to undo does not exist: `other` is not linked into this customer.
    #[error("customer {other} is not linked into {id}")]
    NotLinked {
        /// The surviving customer.
        id: CustomerId,
        /// The one that is not linked into it.
        other: CustomerId,
    },
    /// A storage failure.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Customers across channels: who is who, and each person's whole history.
///
/// Contract (held by the contract suite on every backend):
/// * after [`MessageStore::record`], the customer of every message and event exists here, and
///   the record is in the [`timeline`](Self::timeline) of the customer its identity belongs to;
/// * [`customer`](Self::customer) of a merged id answers the surviving customer;
/// * [`link`](Self::link) merges `other` into `into`: afterwards both ids answer one customer
///   holding both identities, and its timeline holds the records of both, in provider-time order,
///   including records written later under either identity. Linking again is a no-op answering
///   the same customer; linking a customer to itself, or to an unknown id, is an error and
///   changes nothing. The survivor records the [`Link`](crate::model::Link) (when, and the evidence of an
///   automatic one);
/// * [`unlink`](Self::unlink) undoes one link: the customer linked in stands alone again with
///   its identities and its records (those of its identities), both remember the undone link
///   ([`Customer::declines`]), and the survivor keeps the rest.
#[async_trait]
pub trait CustomerDirectory: Send + Sync {
    /// A customer, following merges to the surviving one.
    async fn customer(&self, id: &CustomerId) -> Result<Option<Customer>, BackendError>;
    /// Merges `other` into `into` at `at` (by an agent when `evidence` is `None`); answers the
    /// merged customer.
    async fn link(
        &self,
        into: &CustomerId,
        other: &CustomerId,
        at: DateTime<Utc>,
        evidence: Option<LinkEvidence>,
    ) -> Result<Customer, LinkError>;
    /// Undoes the link of `other` into the customer of `id`; answers the survivor and the
    /// customer split back out.
    async fn unlink(
        &self,
        id: &CustomerId,
        other: &CustomerId,
    ) -> Result<(Customer, Customer), LinkError>;
    /// Every message and event of a customer across channels, in provider-time order.
    async fn timeline(
        &self,
        id: &CustomerId,
        page: PageRequest,
    ) -> Result<Page<StoredRecord>, BackendError>;
    /// Sets (or with `None` clears) the tier of a customer (the surviving one of a merged id);
    /// answers the customer, or `None` when no customer has this id.
    async fn set_tier(
        &self,
        id: &CustomerId,
        tier: Option<&str>,
    ) -> Result<Option<Customer>, BackendError>;
}

/// A change to a conversation, applied by [`ConversationStore::update_conversation`]: it
/// changes the conversation in place, may add what it counts to the [`Tally`] (a message
/// scored), and answers whether it changed anything (no write when not). The store adds the
/// tally, and what the change itself counts ([`crate::metrics::transition`]), in the same
/// atomic write as the conversation.
pub type ConversationChange<'a> = &'a (dyn Fn(&mut Conversation, &mut Tally) -> bool + Send + Sync);

/// Conversations one at a time: read, and changed safely while intake may write them too.
///
/// Contract (held by the contract suite on every backend):
/// * [`conversation`](Self::conversation) answers the conversation as last written;
/// * [`conversations_by_id`](Self::conversations_by_id) answers those of the ids that exist;
/// * [`update_conversation`](Self::update_conversation) applies `change` to the current
///   conversation and writes it only if nobody wrote it in between (otherwise it reads again
///   and applies `change` again), so a concurrent intake of a new message is never lost;
///   it answers the conversation as written, or `None` when there is no such conversation.
#[async_trait]
pub trait ConversationStore: Send + Sync {
    /// One conversation.
    async fn conversation(&self, id: &ConversationId)
    -> Result<Option<Conversation>, BackendError>;
    /// The conversations with these ids that exist, in no particular order.
    async fn conversations_by_id(
        &self,
        ids: &[ConversationId],
    ) -> Result<Vec<Conversation>, BackendError>;
    /// Read, change, write if unchanged since the read (retried).
    async fn update_conversation(
        &self,
        id: &ConversationId,
        change: ConversationChange<'_>,
    ) -> Result<Option<Conversation>, BackendError>;
}

/// The stored counters of the metrics ([`crate::metrics`]), read back.
///
/// Contract (held by the contract suite on every backend): answers every stored bucket whose
/// hour starts in `[from_hour, to_hour)` (Unix seconds), each key once, with everything ever
/// added to it: what [`MessageStore::record`] and [`ConversationStore::update_conversation`]
/// counted, each change once. The number of reads does not grow with the volume counted, only
/// with the hours and keys.
#[async_trait]
pub trait MetricsReader: Send + Sync {
    /// The buckets of the hours in `[from_hour, to_hour)`.
    async fn buckets(
        &self,
        from_hour: i64,
        to_hour: i64,
    ) -> Result<Vec<(BucketKey, Counts)>, BackendError>;
}

/// What is known of a business account's deliveries, for [`crate::watch`]: when it was last
/// heard from, whether it is silent, and the check set to look again.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Watch {
    /// When a delivery of the account last reached the prioritizer (processing time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heard_at: Option<DateTime<Utc>>,
    /// Since when it is silent (`channel.silent` was published); `None` while it sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent_since: Option<DateTime<Utc>>,
    /// The name of the check reminder that is current; a check with another name is stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    /// When that check fires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_at: Option<DateTime<Utc>>,
}

/// A change to a [`Watch`], applied by [`ChannelWatches::update_watch`]; answers whether it
/// changed anything.
pub type WatchChange<'a> = &'a (dyn Fn(&mut Watch) -> bool + Send + Sync);

/// The watch of each business account's deliveries.
///
/// Contract (held by the contract suite on every backend):
/// * [`watch`](Self::watch) answers the watch as last written, `None` before the first;
/// * [`update_watch`](Self::update_watch) applies `change` to the current watch (a default one
///   when there is none) and writes it only if nobody wrote it in between (otherwise it reads
///   again and applies `change` again); it answers the watch as written.
#[async_trait]
pub trait ChannelWatches: Send + Sync {
    /// The watch of `account`.
    async fn watch(&self, account: &WatchedAccount) -> Result<Option<Watch>, BackendError>;
    /// Read, change, write if unchanged since the read (retried).
    async fn update_watch(
        &self,
        account: &WatchedAccount,
        change: WatchChange<'_>,
    ) -> Result<Watch, BackendError>;
}

/// Which identities carry which identifiers (e-mail addresses, phone numbers, handles), for
/// linking identities automatically and finding customers by them.
///
/// Contract (held by the contract suite on every backend): [`observe`](Self::observe) keeps one
/// sighting per identifier and identity (the first; a repeat changes nothing) and answers every
/// identity that carries the identifier, this one included, oldest first, at most `limit`;
/// [`carriers`](IdentityLookup::carriers) answers the same without writing. Keys are
/// [`Identifier::key`]s: no address or number is in a key.
#[async_trait]
pub trait IdentityIndex: IdentityLookup {
    /// Notes `sighting` of `identifier`; answers its carriers.
    async fn observe(
        &self,
        identifier: &Identifier,
        sighting: &Sighting,
        limit: usize,
    ) -> Result<Vec<Sighting>, BackendError>;
}

/// The read half of the [`IdentityIndex`], for lookups (the agent API links no more).
#[async_trait]
pub trait IdentityLookup: Send + Sync {
    /// The identities that carry `identifier`, oldest first, at most `limit`.
    async fn carriers(
        &self,
        identifier: &Identifier,
        limit: usize,
    ) -> Result<Vec<Sighting>, BackendError>;
}

/// A customer's recent history: its records, and which conversations its identities wrote in
/// (the prioritizer's history, see [`crate::history`]).
///
/// Contract (held by the contract suite on every backend): `customer_records` answers the
/// messages and events of the customer's timeline (the surviving customer's, merged identities
/// included) whose provider time is in `[since, until)`, the newest first, at most `limit`;
/// `activity` answers what `note_activity` noted, each identity's own.
#[async_trait]
pub trait CustomerHistory: Send + Sync {
    /// A customer's records in a time window, newest first.
    async fn customer_records(
        &self,
        customer: &CustomerId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Record>, BackendError>;

    /// The conversations each of `identities` wrote in, as noted by
    /// [`note_activity`](Self::note_activity), in no particular order. An identity with none
    /// noted has no entry.
    async fn activity(
        &self,
        identities: &[CustomerId],
    ) -> Result<Vec<crate::history::Activity>, BackendError>;

    /// Notes that `identity` wrote in `note.conversation` at `note.at` (replacing the time
    /// noted before) and forgets `note.forget`, in one write (`note.first` tells the store the
    /// identity had nothing noted when read). Repeating it changes nothing; erasing the
    /// identity's customer erases its activity.
    async fn note_activity(
        &self,
        identity: &CustomerId,
        note: &crate::history::ActivityNote,
    ) -> Result<(), BackendError>;
}

/// A domain event for integrations (ticketing, CRM): `conversation.prioritized`, …
///
/// `id` is deterministic (the same fact gives the same id), so a consumer can drop a repeat:
/// events are published at least once. `version` is the version of the type's schema
/// (`docs/events/<type>.schema.json`): a change a consumer could trip on is a new version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DomainEvent {
    /// Deterministic id of the fact.
    pub id: String,
    /// The event type, `conversation.prioritized`, ….
    #[serde(rename = "type")]
    pub kind: String,
    /// The version of the type's schema.
    #[serde(default = "first_version")]
    pub version: u32,
    /// When it happened (processing time).
    pub time: DateTime<Utc>,
    /// The event's fields; see `docs/events.md` for each type's schema.
    pub detail: serde_json::Value,
}

fn first_version() -> u32 {
    1
}

impl DomainEvent {
    /// The event `kind` of schema `version` whose id is derived from `id_parts`, at `time`.
    pub fn new(
        kind: &str,
        version: u32,
        id_parts: &[&str],
        time: DateTime<Utc>,
        detail: serde_json::Value,
    ) -> Self {
        Self {
            id: crate::ids::event_id(kind, id_parts),
            kind: kind.to_owned(),
            version,
            time,
            detail,
        }
    }

    /// The `detail` as it travels on a bus, self-contained: the event's fields plus `event_id`,
    /// `version` and `time` (RFC 3339, milliseconds). What the schemas describe.
    pub fn bus_detail(&self) -> serde_json::Value {
        let mut detail = match &self.detail {
            serde_json::Value::Object(map) => map.clone(),
            other => serde_json::Map::from_iter([("value".to_owned(), other.clone())]),
        };
        detail.insert("event_id".into(), self.id.clone().into());
        detail.insert("version".into(), self.version.into());
        detail.insert(
            "time".into(),
            self.time
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                .into(),
        );
        serde_json::Value::Object(detail)
    }
}

/// Where domain events go: an EventBridge bus, or a JSON-lines file on the embedded backend.
///
/// Contract: after `Ok`, every event is published (durably appended, for a file).
#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Publishes events, in batches where the backend allows.
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), BackendError>;
}

/// Published events, readable back (the embedded backend's event file).
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Events in publication order, optionally of one type.
    async fn events(
        &self,
        kind: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<DomainEvent>, BackendError>;
}

/// One-time timers: EventBridge Scheduler `at()` schedules on AWS, a timer table on the
/// embedded backend. When a reminder fires, its JSON goes to the reminder consumer.
///
/// Contract (held by the contract suite on every backend):
/// * [`schedule`](Self::schedule) creates each reminder once: creating one whose name exists
///   is a no-op, not an error;
/// * [`cancel`](Self::cancel) deletes reminders by name; a name that does not exist (never
///   created, fired, or deleted before) is not an error;
/// * a reminder fires at most once, at or after its `fire_at`.
#[async_trait]
pub trait ReminderScheduler: Send + Sync {
    /// Creates reminders (idempotent by name).
    async fn schedule(&self, reminders: &[crate::sla::Reminder]) -> Result<(), BackendError>;
    /// Deletes reminders by name (missing ones are fine).
    async fn cancel(&self, names: &[String]) -> Result<(), BackendError>;
}

/// What the prioritization of one inbound message writes once it is scored and its events are
/// published: the reminders to create, those to cancel, the customer's activity to note, and
/// the change to its conversation (which marks the message seen).
pub struct Settlement<'a> {
    /// Reminders to create ([`ReminderScheduler::schedule`]).
    pub schedule: &'a [crate::sla::Reminder],
    /// Reminders to delete by name ([`ReminderScheduler::cancel`]).
    pub cancel: &'a [String],
    /// The activity to note ([`CustomerHistory::note_activity`]), if any.
    pub activity: Option<(&'a CustomerId, &'a crate::history::ActivityNote)>,
    /// The conversation to change.
    pub conversation: &'a ConversationId,
    /// The change ([`ConversationStore::update_conversation`]).
    pub change: ConversationChange<'a>,
}

/// Writes a [`Settlement`].
///
/// Contract (held by the contract suite on every backend): the same effects as
/// [`ReminderScheduler::schedule`], [`ReminderScheduler::cancel`],
/// [`CustomerHistory::note_activity`] and then [`ConversationStore::update_conversation`],
/// in that order; it answers what `update_conversation` answers. After an error, the whole
/// settlement may be repeated harmlessly (each part is idempotent, and the conversation's
/// change is what marks the message seen, so it is written last or with the rest). A store
/// that can write them in one transaction does ([`SettleInSteps`] is the others' way).
#[async_trait]
pub trait Settle: Send + Sync {
    /// Writes the settlement; `None` when the conversation does not exist.
    async fn settle(
        &self,
        settlement: Settlement<'_>,
    ) -> Result<Option<Conversation>, BackendError>;
}

/// [`Settle`] as the four writes of the ports, one after the other: for a backend without
/// transactions across them (DynamoDB's timers are EventBridge Scheduler's).
#[derive(Clone)]
pub struct SettleInSteps {
    /// Where the reminders are.
    pub timers: Arc<dyn ReminderScheduler>,
    /// Where the activity is noted.
    pub history: Arc<dyn CustomerHistory>,
    /// Where the conversation is.
    pub conversations: Arc<dyn ConversationStore>,
}

#[async_trait]
impl Settle for SettleInSteps {
    async fn settle(
        &self,
        settlement: Settlement<'_>,
    ) -> Result<Option<Conversation>, BackendError> {
        self.timers.schedule(settlement.schedule).await?;
        self.timers.cancel(settlement.cancel).await?;
        if let Some((identity, note)) = settlement.activity {
            self.history.note_activity(identity, note).await?;
        }
        self.conversations
            .update_conversation(settlement.conversation, settlement.change)
            .await
    }
}

/// Sends a reply through a provider's API (the Graph API for Meta's channels).
///
/// Contract: answers the provider's id of the message once the provider has accepted it, or
/// why not. [`SendError::Refused`](crate::outbound::SendError::Refused) and
/// [`SendError::Unreachable`](crate::outbound::SendError::Unreachable) mean nothing was sent;
/// [`SendError::Timeout`](crate::outbound::SendError::Timeout) that it may have been. A send is
/// retried inside only when the provider says a retry is safe. No token reaches a log.
#[async_trait]
pub trait ReplySender: Send + Sync {
    /// Sends one message.
    async fn send(
        &self,
        outgoing: &crate::outbound::Outgoing,
    ) -> Result<crate::outbound::Sent, crate::outbound::SendError>;
}

/// Where an idempotency key stands, as [`IdempotencyStore::claim`] found it.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The key was free and is now claimed by the caller: go ahead.
    New,
    /// Another request claimed it and has not finished (or its outcome is unknown).
    InProgress {
        /// The fingerprint of that request.
        fingerprint: String,
    },
    /// A request with this key finished with `record`.
    Done {
        /// The fingerprint of that request.
        fingerprint: String,
        /// Its result.
        record: Box<StoredRecord>,
    },
}

/// Idempotency keys of agent actions (`Idempotency-Key` on `POST …/reply`), kept for a day.
///
/// Contract (held by the contract suite on every backend):
/// * [`claim`](Self::claim) claims a free (or expired) key atomically: of concurrent claims of
///   one key, exactly one answers [`Claim::New`]; the others see the claim.
/// * [`complete`](Self::complete) records the result of a claimed key; later claims answer
///   [`Claim::Done`] with it.
/// * [`release`](Self::release) frees a claimed key that has no result (the action failed
///   and did nothing), so the same key may be tried again.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` for a request with `fingerprint` until `expires_at`.
    async fn claim(
        &self,
        key: &str,
        fingerprint: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<Claim, BackendError>;
    /// Records the result of the claimed `key`.
    async fn complete(&self, key: &str, record: &StoredRecord) -> Result<(), BackendError>;
    /// Frees the claimed `key`, when it has no result.
    async fn release(&self, key: &str) -> Result<(), BackendError>;
}
