//! The intake queue: the [`IntakeQueue`] port and its consumer side.
//!
//! Semantics are those of an SQS FIFO queue whose message group is the conversation, with two
//! differences, both stronger:
//!
//! * deduplication by record key lasts as long as the entry is in the queue (until it is
//!   acknowledged), not five minutes;
//! * at most one entry of a group is in flight at a time, and a group's later entries wait until
//!   its earliest one is acknowledged (SQS may hand out several entries of a group in one
//!   receive).

use async_trait::async_trait;
use std::time::Duration;
use switchboard_core::ports::{BackendError, IntakeQueue, QueueEntry};

use crate::EmbeddedError;
use crate::engine::{Lane, SqliteStore, UndecodableDoc};
use crate::time;

/// How many times an entry is handed out before it goes to the dead-letter table instead (the
/// `maxReceiveCount` of the SQS intake queue's redrive policy).
pub const MAX_RECEIVES: u32 = 5;

/// An entry handed out by [`SqliteStore::receive`].
///
/// It stays in the queue, hidden, until acknowledged with [`SqliteStore::ack`] or until its
/// visibility timeout passes; then it is handed out again with a higher `receive_count`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedEntry {
    /// What to pass to [`SqliteStore::ack`] once the entry is handled (its sequence number).
    pub receipt: i64,
    /// The entry.
    pub entry: QueueEntry,
    /// How many times it has been received, this time included (1 the first time).
    pub receive_count: u32,
    /// When it was enqueued: how long it waited is the prioritization lag.
    pub enqueued_at: chrono::DateTime<chrono::Utc>,
}

/// What waits in the queue: [`SqliteStore::backlog`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backlog {
    /// Entries in the queue, visible or in flight.
    pub entries: usize,
    /// When the oldest of them was enqueued.
    pub oldest: Option<chrono::DateTime<chrono::Utc>>,
}

const ENQUEUE: &str = "enqueue";

/// Appends `entries` in order and marks their records enqueued (see [`IntakeQueue::enqueue`]);
/// answers how many were added (an entry already in the queue is not added again). Runs
/// inside the write's savepoint, which an error rolls back.
pub(crate) fn enqueue(
    tx: &rusqlite::Connection,
    entries: &[QueueEntry],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<usize, BackendError> {
    const OP: &str = ENQUEUE;
    let unavailable = |e| BackendError::unavailable(OP, e);
    let enqueued_at = time::to_text(now);
    let visible_at_ms = now.timestamp_millis();
    let mut added = 0usize;
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO intake_queue
                     (dedup_id, group_id, body, enqueued_at, visible_at_ms, receive_count)
                 VALUES (?1, ?2, ?3, ?4, ?5, 0)",
            )
            .map_err(unavailable)?;
        let mut confirm = tx
            .prepare_cached("UPDATE records SET enqueued = 1 WHERE key = ?1 AND enqueued = 0")
            .map_err(unavailable)?;
        for entry in entries {
            let body =
                serde_json::to_string(entry).map_err(|e| BackendError::unavailable(OP, e))?;
            confirm
                .execute([entry.record_key.as_str()])
                .map_err(unavailable)?;
            added += insert
                .execute(rusqlite::params![
                    entry.record_key.as_str(),
                    entry.conversation_id.as_str(),
                    body,
                    enqueued_at,
                    visible_at_ms,
                ])
                .map_err(unavailable)?;
        }
    }
    tracing::debug!(entries = entries.len(), added, "entries enqueued");
    Ok(added)
}

#[async_trait]
impl IntakeQueue for SqliteStore {
    /// Appends the entries in order, in one transaction: after `Ok` all are on disk, after an
    /// error none is. The same transaction marks their records enqueued (queue and records
    /// share the file, so the store's confirmation that follows has nothing left to write).
    /// An entry whose record key is already in the queue is not added again
    /// (deduplication until acknowledgement, see the module docs); once acknowledged, the same
    /// entry enqueued again is delivered again, and consumers stay idempotent.
    async fn enqueue(&self, entries: &[QueueEntry]) -> Result<(), BackendError> {
        if entries.is_empty() {
            return Ok(());
        }
        let entries = entries.to_vec();
        let now = self.clock.now();
        self.write(ENQUEUE, move |conn| enqueue(conn, &entries, now).map(drop))
            .await
    }
}

/// The lock file beside the database that the queue's consumer holds while it runs.
pub const CONSUMER_LOCK_FILE: &str = "consumer.lock";

/// Proof that this process is the store's only consumer: an exclusive lock on
/// [`CONSUMER_LOCK_FILE`], held until this value is dropped or the process ends (the
/// operating system releases it even after `kill -9`).
#[derive(Debug)]
pub struct ConsumerClaim {
    _lock: std::fs::File,
    released: usize,
}

impl ConsumerClaim {
    /// How many in-flight entries were handed back to the queue when the claim was taken.
    pub fn released(&self) -> usize {
        self.released
    }
}

impl SqliteStore {
    /// Makes this process the queue's only consumer and hands back every entry that an earlier
    /// consumer had received and not acknowledged.
    ///
    /// With the lock held nobody else can be working on those entries: the process that took
    /// them has stopped (crashed, killed), so they are visible again at once instead of after
    /// their visibility timeout. Their receive counts stay (a crash counts as a receive, so a
    /// message that crashes the process still reaches the dead letters).
    ///
    /// Fails with [`EmbeddedError::ConsumerRunning`] when another process holds the claim.
    pub async fn claim_consumer(&self) -> Result<ConsumerClaim, EmbeddedError> {
        let dir = self.path().parent().unwrap_or(std::path::Path::new("."));
        let path = dir.join(CONSUMER_LOCK_FILE);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| EmbeddedError::ConsumerLock {
                path: path.clone(),
                source,
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(EmbeddedError::ConsumerRunning {
                    path: dir.to_path_buf(),
                });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(EmbeddedError::ConsumerLock { path, source });
            }
        }
        const OP: &str = "claim_consumer";
        let now_ms = self.clock.now().timestamp_millis();
        let released = self
            .write(OP, move |conn| {
                conn.execute(
                    "UPDATE intake_queue SET visible_at_ms = ?1 WHERE visible_at_ms > ?1",
                    [now_ms],
                )
                .map_err(|e| BackendError::unavailable(OP, e))
            })
            .await
            .map_err(|e| EmbeddedError::Backend(Box::new(e)))?;
        if released > 0 {
            tracing::info!(
                released,
                "queue entries in flight when the last consumer stopped were handed back"
            );
        }
        Ok(ConsumerClaim {
            _lock: lock,
            released,
        })
    }

    /// Hands out up to `max` visible entries, in enqueue order, at most one per conversation
    /// (group): a group whose earliest entry is in flight is skipped, its later entries wait.
    /// An entry already handed out [`MAX_RECEIVES`] times is moved to the dead letters instead,
    /// so that it no longer blocks its conversation.
    /// Each entry handed out is hidden for `visibility` and its receive count goes up by one,
    /// in one transaction. `max` of 0 hands out nothing.
    ///
    /// An entry whose stored body no longer decodes is dropped with an error in the log (its
    /// record stays in the store), so that it cannot block its conversation.
    pub async fn receive(
        &self,
        max: usize,
        visibility: Duration,
    ) -> Result<Vec<ReceivedEntry>, BackendError> {
        const OP: &str = "receive";
        if max == 0 {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let now_ms = now.timestamp_millis();
        let hidden_until =
            now_ms.saturating_add(i64::try_from(visibility.as_millis()).unwrap_or(i64::MAX));
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        // The consumer's: it may wait while the intake keeps the store busy.
        self.write_in(Lane::Background, OP, move |conn| {
            let unavailable = |e| BackendError::unavailable(OP, e);
            let tx = conn.savepoint().map_err(unavailable)?;
            let heads: Vec<(i64, String, i64, String)> = tx
                .prepare_cached(
                    "SELECT q.seq, q.body, q.receive_count, q.enqueued_at FROM intake_queue q
                     WHERE q.visible_at_ms <= ?1
                       AND NOT EXISTS (SELECT 1 FROM intake_queue p
                                       WHERE p.group_id = q.group_id AND p.seq < q.seq)
                     ORDER BY q.seq
                     LIMIT ?2",
                )
                .and_then(|mut s| {
                    s.query_map(rusqlite::params![now_ms, max], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                    })?
                    .collect()
                })
                .map_err(unavailable)?;
            let mut received = Vec::with_capacity(heads.len());
            for (seq, body, count, enqueued_at) in heads {
                if count >= i64::from(MAX_RECEIVES) {
                    tx.prepare_cached(
                        "INSERT INTO dead_letters
                             (seq, dedup_id, group_id, body, enqueued_at, receive_count, dead_at)
                         SELECT seq, dedup_id, group_id, body, enqueued_at, receive_count, ?2
                         FROM intake_queue WHERE seq = ?1",
                    )
                    .and_then(|mut s| s.execute(rusqlite::params![seq, time::to_text(now)]))
                    .and_then(|_| tx.execute("DELETE FROM intake_queue WHERE seq = ?1", [seq]))
                    .map_err(unavailable)?;
                    tracing::error!(
                        seq,
                        receives = count,
                        "queue entry moved to the dead letters"
                    );
                    continue;
                }
                let entry = match serde_json::from_str::<QueueEntry>(&body) {
                    Ok(entry) => entry,
                    Err(e) => {
                        let e = UndecodableDoc::new("queue entry", &seq.to_string(), &e);
                        tracing::error!(seq, error = %e, "dropping an undecodable queue entry");
                        tx.execute("DELETE FROM intake_queue WHERE seq = ?1", [seq])
                            .map_err(unavailable)?;
                        continue;
                    }
                };
                tx.prepare_cached(
                    "UPDATE intake_queue
                     SET visible_at_ms = ?2, receive_count = receive_count + 1
                     WHERE seq = ?1",
                )
                .and_then(|mut s| s.execute(rusqlite::params![seq, hidden_until]))
                .map_err(unavailable)?;
                received.push(ReceivedEntry {
                    receipt: seq,
                    entry,
                    receive_count: u32::try_from(count.saturating_add(1)).unwrap_or(u32::MAX),
                    enqueued_at: time::from_text(&enqueued_at).unwrap_or(now),
                });
            }
            tx.commit().map_err(unavailable)?;
            tracing::debug!(received = received.len(), "entries received");
            Ok(received)
        })
        .await
    }

    /// Deletes handled entries by their receipts, in one transaction. Unknown receipts (already
    /// acknowledged) are ignored. A receipt stays valid after its visibility timeout: it still
    /// deletes the entry, even if the entry was handed out again.
    pub async fn ack(&self, receipts: &[i64]) -> Result<(), BackendError> {
        const OP: &str = "ack";
        if receipts.is_empty() {
            return Ok(());
        }
        let receipts = receipts.to_vec();
        self.write_in(Lane::Background, OP, move |conn| {
            let unavailable = |e| BackendError::unavailable(OP, e);
            let tx = conn.savepoint().map_err(unavailable)?;
            let mut deleted = 0usize;
            {
                let mut delete = tx
                    .prepare_cached("DELETE FROM intake_queue WHERE seq = ?1")
                    .map_err(unavailable)?;
                for receipt in &receipts {
                    deleted += delete.execute([receipt]).map_err(unavailable)?;
                }
            }
            tx.commit().map_err(unavailable)?;
            tracing::debug!(receipts = receipts.len(), deleted, "entries acknowledged");
            Ok(())
        })
        .await
    }

    /// The number of entries in the queue, visible or in flight.
    pub async fn queue_len(&self) -> Result<usize, BackendError> {
        const OP: &str = "queue_len";
        self.run(OP, |conn| {
            let n: i64 = conn
                .query_row("SELECT COUNT(*) FROM intake_queue", [], |row| row.get(0))
                .map_err(|e| BackendError::unavailable(OP, e))?;
            Ok(usize::try_from(n).unwrap_or(0))
        })
        .await
    }

    /// What waits in the queue: how many entries, and since when the oldest.
    pub async fn backlog(&self) -> Result<Backlog, BackendError> {
        const OP: &str = "backlog";
        self.run(OP, |conn| {
            let (n, oldest): (i64, Option<String>) = conn
                .query_row(
                    "SELECT COUNT(*),
                            (SELECT enqueued_at FROM intake_queue ORDER BY seq LIMIT 1)
                     FROM intake_queue",
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .map_err(|e| BackendError::unavailable(OP, e))?;
            Ok(Backlog {
                entries: usize::try_from(n).unwrap_or(0),
                oldest: oldest.and_then(|t| time::from_text(&t).ok()),
            })
        })
        .await
    }

    /// The number of entries in the dead letters.
    pub async fn dead_letters_len(&self) -> Result<usize, BackendError> {
        const OP: &str = "dead_letters_len";
        self.run(OP, |conn| {
            let n: i64 = conn
                .query_row("SELECT COUNT(*) FROM dead_letters", [], |row| row.get(0))
                .map_err(|e| BackendError::unavailable(OP, e))?;
            Ok(usize::try_from(n).unwrap_or(0))
        })
        .await
    }
}
