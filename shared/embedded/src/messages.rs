//! The [`MessageStore`] port on SQLite: raw deliveries, records written once by key, and the
//! conversations they update.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use switchboard_core::ids::{ConversationId, CustomerId, RecordKey};
use switchboard_core::metrics::Tally;
use switchboard_core::model::{Conversation, Record};
use switchboard_core::ports::{
    BackendError, MessageStore, Outbox, QueueEntry, QueuePosition, RawDelivery, RecordLookup,
};
use switchboard_core::recording::{self, Prior};

use crate::engine::{Lane, SqliteStore, decode_doc};
use crate::time;

/// Absorbs `records` (all of conversation `id`) into the stored conversation by the rule of
/// [`recording::fold`], and writes it (always, so that its expiry moves with its records) with
/// what it counted.
fn touch_conversation(
    tx: &Connection,
    id: &ConversationId,
    records: &[&Record],
    expires_at: i64,
) -> Result<(), BackendError> {
    const OP: &str = "record";
    let stored: Option<String> = tx
        .prepare_cached("SELECT doc FROM conversations WHERE id = ?1")
        .and_then(|mut s| s.query_row([id.as_str()], |row| row.get(0)).optional())
        .map_err(|e| BackendError::unavailable(OP, e))?;
    let before = match stored
        .map(|doc| decode_doc::<Conversation>("conversation", id.as_str(), &doc))
    {
        None => None,
        Some(Ok(stored)) => Some(stored),
        Some(Err(e)) => {
            tracing::warn!(conversation = %id, error = %e, "rebuilding an undecodable conversation");
            None
        }
    };
    let (conversation, tally) = match recording::fold(before.as_ref(), records) {
        Some(folded) => folded,
        None => match before {
            Some(unchanged) => (unchanged, Tally::default()),
            None => return Ok(()),
        },
    };
    crate::metrics::add_tally(tx, &tally, OP)?;
    write_conversation(tx, &conversation, expires_at, OP)
}

/// Writes a conversation, with the columns that place it in its team's queue and its agent's
/// (by [`QueuePosition`]): set while it waits and has a priority, cleared otherwise. The
/// expiry only moves later.
pub(crate) fn write_conversation(
    conn: &Connection,
    conversation: &Conversation,
    expires_at: i64,
    op: &'static str,
) -> Result<(), BackendError> {
    let doc = serde_json::to_string(conversation).map_err(|e| BackendError::unavailable(op, e))?;
    let queue = QueuePosition::of(conversation).map(|p| {
        (
            QueuePosition::team_of(conversation),
            p.rank,
            p.waiting_since_ms,
            QueuePosition::agent_of(conversation),
        )
    });
    conn.prepare_cached(
        "INSERT INTO conversations
             (id, channel, account_id, customer_id, doc, first_at_ms, last_at_ms, expires_at,
              queue_team, queue_rank, waiting_since_ms, queue_agent)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT (id) DO UPDATE SET
             doc = excluded.doc,
             first_at_ms = excluded.first_at_ms,
             last_at_ms = excluded.last_at_ms,
             expires_at = max(expires_at, excluded.expires_at),
             queue_team = excluded.queue_team,
             queue_rank = excluded.queue_rank,
             waiting_since_ms = excluded.waiting_since_ms,
             queue_agent = excluded.queue_agent",
    )
    .and_then(|mut s| {
        s.execute(params![
            conversation.id.as_str(),
            conversation.channel.as_str(),
            conversation.account_id.as_str(),
            conversation.customer_id.as_str(),
            doc,
            conversation.first_at.timestamp_millis(),
            conversation.last_at.timestamp_millis(),
            expires_at,
            queue.and_then(|q| q.0),
            queue.map(|q| q.1),
            queue.map(|q| q.2),
            queue.and_then(|q| q.3),
        ])
    })
    .map_err(|e| BackendError::unavailable(op, e))?;
    Ok(())
}

const KEEP: &str = "keep_delivery";
const RECORD: &str = "record";

/// Keeps the delivery under its id, whole (a `BLOB`, any size). A delivery already kept (same
/// id, that is the same bytes) is left as it is.
pub(crate) fn keep(
    conn: &Connection,
    delivery: &RawDelivery,
    expires_at: i64,
) -> Result<(), BackendError> {
    let new = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO deliveries
                 (id, channel, received_at, quarantined, body, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .and_then(|mut s| {
            s.execute(params![
                delivery.id.as_str(),
                delivery.webhook.as_str(),
                time::to_text(delivery.received_at),
                delivery.quarantined,
                &delivery.body[..],
                expires_at,
            ])
        })
        .map_err(|e| BackendError::unavailable(KEEP, e))?;
    tracing::debug!(
        delivery = %delivery.id,
        bytes = delivery.body.len(),
        quarantined = delivery.quarantined,
        new = new == 1,
        "delivery kept"
    );
    Ok(())
}

/// Writes `records` by the rule of [`recording::plan`] (see [`MessageStore::record`]), and
/// returns the queue entries still to enqueue. Runs inside the write's savepoint, which an
/// error rolls back.
pub(crate) fn record(
    tx: &Connection,
    records: &[Record],
    now: chrono::DateTime<chrono::Utc>,
    expires_at: i64,
) -> Result<Vec<QueueEntry>, BackendError> {
    const OP: &str = RECORD;
    let unavailable = |e| BackendError::unavailable(OP, e);
    let stored_at = time::to_text(now);
    // Each key derived once (a SHA-256): for the reads, the plan and the inserts.
    let keys: Vec<RecordKey> = records.iter().map(Record::key).collect();
    // What is stored of each key: (enqueued, the stored version).
    let mut prior: HashMap<RecordKey, (bool, Option<Record>)> = HashMap::new();
    {
        let mut select = tx
            .prepare_cached("SELECT enqueued, doc FROM records WHERE key = ?1")
            .map_err(unavailable)?;
        for (record, key) in records.iter().zip(&keys) {
            if prior.contains_key(key) {
                continue;
            }
            let row: Option<(bool, String)> = select
                .query_row([key.as_str()], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
                .map_err(unavailable)?;
            let Some((enqueued, doc)) = row else { continue };
            let stored = if enqueued {
                None
            } else {
                match decode_doc::<Record>("record", key.as_str(), &doc) {
                    Ok(stored) => Some(stored),
                    Err(e) => {
                        tracing::warn!(record = %key, error = %e, "stored record undecodable; using the delivered one");
                        Some(record.clone())
                    }
                }
            };
            prior.insert(key.clone(), (enqueued, stored));
        }
    }
    let plan = recording::plan(records, &keys, |key| match prior.get(key) {
        None => Prior::New,
        Some((true, _)) => Prior::Confirmed,
        Some((false, stored)) => stored.as_ref().map_or(Prior::Confirmed, Prior::Unconfirmed),
    });
    // Each new record listed under the surviving customer of its identity.
    let mut persons: HashMap<&CustomerId, CustomerId> = HashMap::new();
    for identity in &plan.identities {
        persons.insert(
            &identity.customer_id,
            crate::customers::ensure(tx, identity, expires_at, OP)?,
        );
    }
    for (key, record) in &plan.new {
        let doc = serde_json::to_string(record).map_err(|e| BackendError::unavailable(OP, e))?;
        let person = record.customer().and_then(|c| persons.get(&c.customer_id));
        tx.prepare_cached(
            "INSERT INTO records
                 (key, record_type, conversation_id, customer_id, at_ms, doc,
                  stored_at, enqueued, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8)",
        )
        .and_then(|mut s| {
            s.execute(params![
                key.as_str(),
                record.record_type(),
                record.conversation_id().map(|c| c.as_str()),
                person.map(|c| c.as_str()),
                record.at().timestamp_millis(),
                doc,
                stored_at,
                expires_at,
            ])
        })
        .map_err(unavailable)?;
    }
    for (id, absorbed) in &plan.conversations {
        touch_conversation(tx, id, absorbed, expires_at)?;
    }
    tracing::debug!(
        records = records.len(),
        written = plan.new.len(),
        pending = plan.pending.len(),
        "records stored"
    );
    Ok(plan.pending)
}

#[async_trait]
impl MessageStore for SqliteStore {
    /// Keeps the delivery under its id, whole (a `BLOB`, any size). A delivery already kept
    /// (same id, that is the same bytes) is left as it is.
    async fn keep_delivery(&self, delivery: &RawDelivery) -> Result<(), BackendError> {
        let delivery = delivery.clone();
        let expires_at = self.expires_at(self.clock.now());
        self.write(KEEP, move |conn| keep(conn, &delivery, expires_at))
            .await
    }

    /// In one transaction, by the rule of [`recording::plan`]: inserts each record not stored
    /// yet (the first version of a key wins), reflects every message and event not yet marked
    /// enqueued in its conversation (the stored version of one stored before), and returns
    /// their queue entries in input order, each key once. Notifications are stored, never
    /// returned. On error nothing was written.
    async fn record(&self, records: &[Record]) -> Result<Vec<QueueEntry>, BackendError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let records = records.to_vec();
        let now = self.clock.now();
        let expires_at = self.expires_at(now);
        self.write(RECORD, move |conn| record(conn, &records, now, expires_at))
            .await
    }

    /// Marks the records enqueued, in one transaction. Unknown keys are ignored, and so are
    /// records already marked (the embedded queue marks them as it takes their entries).
    async fn mark_enqueued(&self, keys: &[RecordKey]) -> Result<(), BackendError> {
        const OP: &str = "mark_enqueued";
        if keys.is_empty() {
            return Ok(());
        }
        let keys = keys.to_vec();
        self.write(OP, move |conn| {
            let unavailable = |e| BackendError::unavailable(OP, e);
            let tx = conn.savepoint().map_err(unavailable)?;
            let mut marked = 0usize;
            {
                let mut update = tx
                    .prepare_cached(
                        "UPDATE records SET enqueued = 1 WHERE key = ?1 AND enqueued = 0",
                    )
                    .map_err(unavailable)?;
                for key in &keys {
                    marked += update.execute([key.as_str()]).map_err(unavailable)?;
                }
            }
            tx.commit().map_err(unavailable)?;
            tracing::debug!(keys = keys.len(), marked, "records marked enqueued");
            Ok(())
        })
        .await
    }
}

#[async_trait]
impl Outbox for SqliteStore {
    /// One write, so one commit: under load the deliveries of many clients share it.
    async fn take_in(
        &self,
        delivery: Option<&RawDelivery>,
        records: &[Record],
    ) -> Result<Vec<QueueEntry>, BackendError> {
        let delivery = delivery.cloned();
        let records = records.to_vec();
        let now = self.clock.now();
        let expires_at = self.expires_at(now);
        // The engine runs each write in a savepoint of its own: an error rolls back all three.
        // A provider waits for its answer: the acknowledgement lane.
        self.write_in(Lane::Acknowledgement, RECORD, move |conn| {
            if let Some(delivery) = &delivery {
                keep(conn, delivery, expires_at)?;
            }
            let pending = if records.is_empty() {
                Vec::new()
            } else {
                record(conn, &records, now, expires_at)?
            };
            crate::queue::enqueue(conn, &pending, now)?;
            Ok(pending)
        })
        .await
    }
}

#[async_trait]
impl RecordLookup for SqliteStore {
    /// The stored records of `keys` (unknown keys are left out).
    async fn find(
        &self,
        keys: &[RecordKey],
    ) -> Result<std::collections::HashMap<RecordKey, Record>, BackendError> {
        const OP: &str = "find";
        let keys = keys.to_vec();
        self.run(OP, move |conn| {
            let unavailable = |e| BackendError::unavailable(OP, e);
            let mut select = conn
                .prepare_cached("SELECT doc FROM records WHERE key = ?1")
                .map_err(unavailable)?;
            let mut found = std::collections::HashMap::new();
            for key in keys {
                let doc: Option<String> = select
                    .query_row([key.as_str()], |row| row.get(0))
                    .optional()
                    .map_err(unavailable)?;
                if let Some(doc) = doc {
                    let record = decode_doc::<Record>("record", key.as_str(), &doc)
                        .map_err(|e| BackendError::unavailable(OP, e))?;
                    found.insert(key, record);
                }
            }
            Ok(found)
        })
        .await
    }
}
