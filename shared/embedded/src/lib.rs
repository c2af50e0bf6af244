//! switchboard's embedded backend: the message store, the read side and the intake queue in one
//! SQLite file on disk, for `switchboard serve` (local development, demos, small teams).
//!
//! [`SqliteStore`] implements the storage ports of `switchboard_core::ports` with the same
//! contract as the AWS adapters, a module each on top of the commit engine (`engine`: the one
//! connection, group commit, retention):
//!
//! * [`MessageStore`](switchboard_core::ports::MessageStore): raw deliveries kept byte for byte,
//!   records written once by key (the first version wins), conversations kept up to date, and
//!   the queue entries still to enqueue returned until they are confirmed;
//! * [`ConversationReader`](switchboard_core::ports::ConversationReader): keyset-paginated
//!   listings with opaque cursors;
//! * [`CustomerDirectory`](switchboard_core::ports::CustomerDirectory): customers across
//!   channels, links, and each customer's timeline;
//! * [`IntakeQueue`](switchboard_core::ports::IntakeQueue): a durable FIFO-per-conversation
//!   queue, with inherent consumer methods ([`SqliteStore::receive`], [`SqliteStore::ack`]),
//!   and a dead-letter table for entries received too often;
//! * [`RecordLookup`](switchboard_core::ports::RecordLookup): stored records by key;
//! * [`ConversationStore`](switchboard_core::ports::ConversationStore) and
//!   [`CustomerHistory`](switchboard_core::ports::CustomerHistory): conversations one at a time
//!   and their read-modify-write, a customer's recent records, with each team's queue on a
//!   partial index;
//! * [`ReminderScheduler`](switchboard_core::ports::ReminderScheduler): one-time timers, fired
//!   at most once;
//! * [`MetricsReader`](switchboard_core::ports::MetricsReader): the metrics' hourly buckets,
//!   added to in the transaction of each change they count;
//! * [`ChannelWatches`](switchboard_core::ports::ChannelWatches): each business account's
//!   watch (silent channels).
//!
//! [`assembly::EmbeddedPorts`] bundles them with the event file for `switchboard serve`.
//!
//! [`EventFile`] is the event bus of the embedded backend: domain events appended to
//! `events.jsonl` in the data folder.
//!
//! Durability: the file is in WAL mode with `synchronous=FULL`, so an operation that returned
//! `Ok` survives a crash of the process or of the machine. Every operation runs on a blocking
//! thread, one at a time over a single connection; writes that arrive while another is being
//! committed are committed with the next transaction, together (group commit: one `fsync` for
//! many concurrent deliveries, each write still atomic on its own).
//!
//! Layout of the file (schema version [`SCHEMA_VERSION`], kept in `PRAGMA user_version`):
//!
//! | table | key | holds |
//! |---|---|---|
//! | `deliveries` | delivery id (SHA-256 of the bytes) | raw bodies, the quarantine; tombstones of erased ones (`erased_at`, no body) |
//! | `records` | record key | each normalized record as JSON, and whether it was enqueued |
//! | `conversations` | conversation id | each conversation as JSON, first and last record times |
//! | `customers` | customer id | each customer's identities, and whom a merged one merged into |
//! | `intake_queue` | sequence number | queue entries, deduplicated by record key |
//! | `timers` | reminder name | one-time reminders, fired at most once |
//! | `dead_letters` | sequence number | queue entries received [`MAX_RECEIVES`] times without success |
//! | `idempotency` | key | idempotency keys of replies and their results |
//! | `metric_counts` | hour, dims, counter | the metrics' hourly buckets, one row per counter |
//! | `watches` | watch id of a business account | when it was last heard from, its silence, its check |
#![warn(missing_docs)]

mod archive;
pub mod assembly;
pub mod consumer;
mod cursor;
mod customers;
mod engine;
mod erasure;
mod error;
mod events;
mod faults;
mod idempotency;
mod messages;
mod metrics;
mod priority;
mod queue;
mod reader;
mod schema;
mod time;
mod timers;
mod watches;

#[cfg(test)]
mod tests;

pub use archive::DeliveryPosition;
pub use engine::{FILE_NAME, MAX_PAGE_LIMIT, Purged, SqliteStore};
pub use error::EmbeddedError;
pub use events::{EVENTS_FILE_NAME, EventFile};
pub use queue::{Backlog, CONSUMER_LOCK_FILE, ConsumerClaim, MAX_RECEIVES, ReceivedEntry};
pub use schema::SCHEMA_VERSION;
