//! The schema and its version.

use rusqlite::Connection;

/// The schema version this crate writes and reads, kept in `PRAGMA user_version`. A file of a
/// higher version is refused at open ([`EmbeddedError::UnsupportedSchema`]).
///
/// [`EmbeddedError::UnsupportedSchema`]: crate::EmbeddedError::UnsupportedSchema
pub const SCHEMA_VERSION: i64 = 11;

/// Version 1. Times: see `crate::time`.
const V1: &str = "
CREATE TABLE IF NOT EXISTS deliveries (
    id          TEXT PRIMARY KEY NOT NULL,
    channel     TEXT NOT NULL,
    received_at TEXT NOT NULL,
    quarantined INTEGER NOT NULL,
    body        BLOB NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_quarantine
    ON deliveries (received_at DESC, id DESC) WHERE quarantined = 1;
CREATE INDEX IF NOT EXISTS deliveries_expiry ON deliveries (expires_at);

CREATE TABLE IF NOT EXISTS records (
    key             TEXT PRIMARY KEY NOT NULL,
    record_type     TEXT NOT NULL,
    conversation_id TEXT NULL,
    customer_id     TEXT NULL,
    at_ms           INTEGER NOT NULL,
    doc             TEXT NOT NULL,
    stored_at       TEXT NOT NULL,
    enqueued        INTEGER NOT NULL DEFAULT 0,
    expires_at      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS records_conversation ON records (conversation_id, at_ms, key);
CREATE INDEX IF NOT EXISTS records_customer ON records (customer_id, at_ms, key);
CREATE INDEX IF NOT EXISTS records_expiry ON records (expires_at);

CREATE TABLE IF NOT EXISTS conversations (
    id          TEXT PRIMARY KEY NOT NULL,
    channel     TEXT NOT NULL,
    account_id  TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    doc         TEXT NOT NULL,
    first_at_ms INTEGER NOT NULL,
    last_at_ms  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS conversations_recent ON conversations (last_at_ms DESC, id DESC);
CREATE INDEX IF NOT EXISTS conversations_channel_recent
    ON conversations (channel, last_at_ms DESC, id DESC);
CREATE INDEX IF NOT EXISTS conversations_expiry ON conversations (expires_at);

CREATE TABLE IF NOT EXISTS intake_queue (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_id      TEXT NOT NULL UNIQUE,
    group_id      TEXT NOT NULL,
    body          TEXT NOT NULL,
    enqueued_at   TEXT NOT NULL,
    visible_at_ms INTEGER NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS intake_queue_group ON intake_queue (group_id, seq);
";

/// Version 2: customers. `records.customer_id` holds the surviving customer of the record's
/// identity (rewritten when customers are linked), so a customer's timeline is one index range.
const V2: &str = "
CREATE TABLE IF NOT EXISTS customers (
    id          TEXT PRIMARY KEY NOT NULL,
    doc         TEXT NOT NULL,
    merged_into TEXT NULL
);
CREATE INDEX IF NOT EXISTS customers_merged ON customers (merged_into) WHERE merged_into IS NOT NULL;
";

/// Version 3: priority. A conversation that waits and has a priority is in its team's queue
/// (`queue_team`, `queue_rank` 1–4, `waiting_since_ms`); entries received too often go to
/// `dead_letters` instead of blocking their conversation.
const V3: &str = "
ALTER TABLE conversations ADD COLUMN queue_team TEXT NULL;
ALTER TABLE conversations ADD COLUMN queue_rank INTEGER NULL;
ALTER TABLE conversations ADD COLUMN waiting_since_ms INTEGER NULL;
CREATE INDEX IF NOT EXISTS conversations_queue
    ON conversations (queue_team, queue_rank, waiting_since_ms, id) WHERE queue_team IS NOT NULL;

CREATE TABLE IF NOT EXISTS dead_letters (
    seq           INTEGER PRIMARY KEY NOT NULL,
    dedup_id      TEXT NOT NULL,
    group_id      TEXT NOT NULL,
    body          TEXT NOT NULL,
    enqueued_at   TEXT NOT NULL,
    receive_count INTEGER NOT NULL,
    dead_at       TEXT NOT NULL
);
";

/// Version 4: reminders. One row per timer, by name; `fired_at` is set when it has fired
/// (a timer fires at most once), and a cancelled one is deleted.
const V4: &str = "
CREATE TABLE IF NOT EXISTS timers (
    name       TEXT PRIMARY KEY NOT NULL,
    fire_at_ms INTEGER NOT NULL,
    body       TEXT NOT NULL,
    fired_at   TEXT NULL
);
CREATE INDEX IF NOT EXISTS timers_due ON timers (fire_at_ms) WHERE fired_at IS NULL;
";

/// Version 5: cases. A waiting, prioritized conversation assigned to an agent is in that
/// agent's queue too (`queue_agent`, the same order as the team's queue).
const V5: &str = "
ALTER TABLE conversations ADD COLUMN queue_agent TEXT NULL;
CREATE INDEX IF NOT EXISTS conversations_agent_queue
    ON conversations (queue_agent, queue_rank, waiting_since_ms, id) WHERE queue_agent IS NOT NULL;
";

/// Version 6: idempotency keys of replies, each with the request's fingerprint and, once
/// done, its result; `expires_at` in seconds, purged with the rest.
const V6: &str = "
CREATE TABLE IF NOT EXISTS idempotency (
    key         TEXT PRIMARY KEY NOT NULL,
    fingerprint TEXT NOT NULL,
    result      TEXT NULL,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idempotency_expiry ON idempotency (expires_at);
";

/// Version 7: the metrics' hourly buckets, one row per counter of a bucket (`hour` in Unix
/// seconds, `dims` the bucket's dims as JSON), added to in the transaction of the change
/// counted; `expires_at` in seconds, purged with the rest. And the watch of each business
/// account (silent channels), by its watch id.
const V7: &str = "
CREATE TABLE IF NOT EXISTS metric_counts (
    hour       INTEGER NOT NULL,
    dims       TEXT NOT NULL,
    field      TEXT NOT NULL,
    value      INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (hour, dims, field)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS metric_counts_expiry ON metric_counts (expires_at);

CREATE TABLE IF NOT EXISTS watches (
    id  TEXT PRIMARY KEY NOT NULL,
    doc TEXT NOT NULL
);
";

/// Version 8: which identities carry which identifiers (e-mail addresses, phone numbers,
/// handles), by the identifier's hashed key ([`Identifier::key`]), the first sighting of each;
/// `expires_at` in seconds, purged with the rest.
///
/// [`Identifier::key`]: switchboard_core::model::Identifier::key
const V8: &str = "
CREATE TABLE IF NOT EXISTS identifiers (
    key         TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    channel     TEXT NOT NULL,
    at_ms       INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (key, customer_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS identifiers_expiry ON identifiers (expires_at);
";

/// Version 9: customers expire as the rest does: `expires_at` in seconds, moved forward each
/// time a record of the customer is written (and by links and tiers), purged with the rest.
/// Customers of an older file get one retention period from the migration (set by `open`, 0
/// here).
const V9: &str = "
ALTER TABLE customers ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS customers_expiry ON customers (expires_at);
";

/// Version 10: erasures. A delivery that held an erased customer keeps its row as a tombstone
/// (its id, channel and receive time) with its body emptied and `erased_at` set; readers
/// skip it.
const V10: &str = "
ALTER TABLE deliveries ADD COLUMN erased_at TEXT NULL;
";

/// Version 11: the prioritizer's history counters: which conversations each identity wrote
/// in, and when it last did as noted (see `switchboard_core::history`); `expires_at` in
/// seconds, purged with the rest, erased with the identity's customer.
const V11: &str = "
CREATE TABLE IF NOT EXISTS activity (
    customer_id     TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    at_ms           INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL,
    PRIMARY KEY (customer_id, conversation_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS activity_expiry ON activity (expires_at);
";

/// Brings a file of version `found` (0: new, or older) to [`SCHEMA_VERSION`], in one transaction.
pub(crate) fn migrate(conn: &mut Connection, found: i64) -> rusqlite::Result<()> {
    if found >= SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    if found < 1 {
        tx.execute_batch(V1)?;
    }
    if found < 2 {
        tx.execute_batch(V2)?;
    }
    if found < 3 {
        tx.execute_batch(V3)?;
    }
    if found < 4 {
        tx.execute_batch(V4)?;
    }
    if found < 5 {
        tx.execute_batch(V5)?;
    }
    if found < 6 {
        tx.execute_batch(V6)?;
    }
    if found < 7 {
        tx.execute_batch(V7)?;
    }
    if found < 8 {
        tx.execute_batch(V8)?;
    }
    if found < 9 {
        tx.execute_batch(V9)?;
    }
    tx.execute_batch(V10)?;
    if found < 11 {
        tx.execute_batch(V11)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()
}
