//! The [`ConversationStore`] and [`CustomerHistory`] ports: conversations one at a time and by
//! id, the read-modify-write of a conversation in one transaction (the single connection makes
//! it atomic; there is no concurrent writer to retry for), and a customer's recent records.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, params, params_from_iter};
use switchboard_core::history::{Activity, ActivityNote};
use switchboard_core::ids::{ConversationId, CustomerId};
use switchboard_core::metrics;
use switchboard_core::model::{Conversation, Record};
use switchboard_core::ports::{
    BackendError, ConversationChange, ConversationStore, CustomerHistory, Settle, Settlement,
};

use crate::engine::{Lane, SqliteStore, decode_doc};
use crate::messages::write_conversation;
use crate::timers::{TimerRow, delete_timers, insert_timers, timer_rows};

/// Reads and writes of one update before giving up (each failed one saw another writer).
const UPDATE_ATTEMPTS: usize = 8;

#[async_trait]
impl CustomerHistory for SqliteStore {
    async fn customer_records(
        &self,
        customer: &CustomerId,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Record>, BackendError> {
        const OP: &str = "customer_records";
        let customer = customer.clone();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(OP, move |conn| {
            let unavailable = |e| BackendError::unavailable(OP, e);
            let rows: Vec<(String, String)> = conn
                .prepare_cached(
                    "SELECT key, doc FROM records
                     WHERE customer_id = ?1 AND at_ms >= ?2 AND at_ms < ?3
                     ORDER BY at_ms DESC, key DESC LIMIT ?4",
                )
                .and_then(|mut s| {
                    s.query_map(
                        params![
                            customer.as_str(),
                            since.timestamp_millis(),
                            until.timestamp_millis(),
                            limit
                        ],
                        |row| Ok((row.get(0)?, row.get(1)?)),
                    )?
                    .collect()
                })
                .map_err(unavailable)?;
            rows.iter()
                .map(|(key, doc)| {
                    decode_doc::<Record>("record", key, doc)
                        .map_err(|e| BackendError::unavailable(OP, e))
                })
                .collect()
        })
        .await
    }

    async fn activity(&self, identities: &[CustomerId]) -> Result<Vec<Activity>, BackendError> {
        const OP: &str = "activity";
        if identities.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Value> = identities
            .iter()
            .map(|i| Value::Text(i.as_str().to_owned()))
            .collect();
        self.run(OP, move |conn| {
            let marks = vec!["?"; ids.len()].join(", ");
            let rows: Vec<(String, String, i64)> = conn
                .prepare_cached(&format!(
                    "SELECT customer_id, conversation_id, at_ms FROM activity
                     WHERE customer_id IN ({marks})"
                ))
                .and_then(|mut s| {
                    s.query_map(params_from_iter(ids), |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                    })?
                    .collect()
                })
                .map_err(|e| BackendError::unavailable(OP, e))?;
            Ok(rows
                .into_iter()
                .map(|(identity, conversation, at_ms)| Activity {
                    identity: CustomerId::from_stored(identity),
                    conversation: ConversationId::from_stored(conversation),
                    at: DateTime::from_timestamp_millis(at_ms).unwrap_or_default(),
                })
                .collect())
        })
        .await
    }

    async fn note_activity(
        &self,
        identity: &CustomerId,
        note: &ActivityNote,
    ) -> Result<(), BackendError> {
        const OP: &str = "note_activity";
        let row = ActivityRow::of(self, identity, note);
        self.write(OP, move |conn| {
            let tx = conn
                .savepoint()
                .map_err(|e| BackendError::unavailable(OP, e))?;
            write_activity(&tx, &row, OP)?;
            tx.commit().map_err(|e| BackendError::unavailable(OP, e))
        })
        .await
    }
}

/// An identity's activity to note, as the `activity` table's rows have it.
#[derive(Debug, Clone)]
struct ActivityRow {
    identity: String,
    conversation: String,
    at_ms: i64,
    /// Conversations to forget (never `conversation`).
    forget: Vec<String>,
    expires_at: i64,
}

impl ActivityRow {
    fn of(store: &SqliteStore, identity: &CustomerId, note: &ActivityNote) -> Self {
        let conversation = note.conversation.as_str().to_owned();
        ActivityRow {
            identity: identity.as_str().to_owned(),
            forget: note
                .forget
                .iter()
                .map(|c| c.as_str().to_owned())
                .filter(|c| *c != conversation)
                .collect(),
            conversation,
            at_ms: note.at.timestamp_millis(),
            expires_at: store.expires_at(store.clock.now()),
        }
    }
}

/// Notes the activity of `row` and forgets what it says to.
fn write_activity(
    conn: &rusqlite::Connection,
    row: &ActivityRow,
    op: &'static str,
) -> Result<(), BackendError> {
    let unavailable = |e| BackendError::unavailable(op, e);
    conn.prepare_cached(
        "INSERT INTO activity (customer_id, conversation_id, at_ms, expires_at)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (customer_id, conversation_id) DO UPDATE SET
             at_ms = excluded.at_ms, expires_at = max(expires_at, excluded.expires_at)",
    )
    .and_then(|mut s| {
        s.execute(params![
            row.identity,
            row.conversation,
            row.at_ms,
            row.expires_at
        ])
    })
    .map_err(unavailable)?;
    for gone in &row.forget {
        conn.prepare_cached("DELETE FROM activity WHERE customer_id = ?1 AND conversation_id = ?2")
            .and_then(|mut s| s.execute(params![row.identity, gone]))
            .map_err(unavailable)?;
    }
    Ok(())
}

#[async_trait]
impl ConversationStore for SqliteStore {
    async fn conversation(
        &self,
        id: &ConversationId,
    ) -> Result<Option<Conversation>, BackendError> {
        const OP: &str = "conversation";
        let id = id.clone();
        self.run(OP, move |conn| {
            let doc: Option<String> = conn
                .prepare_cached("SELECT doc FROM conversations WHERE id = ?1")
                .and_then(|mut s| s.query_row([id.as_str()], |row| row.get(0)).optional())
                .map_err(|e| BackendError::unavailable(OP, e))?;
            doc.map(|doc| decode_doc("conversation", id.as_str(), &doc))
                .transpose()
                .map_err(|e| BackendError::unavailable(OP, e))
        })
        .await
    }

    async fn conversations_by_id(
        &self,
        ids: &[ConversationId],
    ) -> Result<Vec<Conversation>, BackendError> {
        const OP: &str = "conversations_by_id";
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<Value> = ids
            .iter()
            .map(|id| Value::Text(id.as_str().to_owned()))
            .collect();
        self.run(OP, move |conn| {
            let unavailable = |e| BackendError::unavailable(OP, e);
            let mut found = Vec::with_capacity(ids.len());
            // SQLite's default limit of bound parameters is well above 500.
            for chunk in ids.chunks(500) {
                let marks = vec!["?"; chunk.len()].join(", ");
                let sql = format!("SELECT id, doc FROM conversations WHERE id IN ({marks})");
                let rows: Vec<(String, String)> = conn
                    .prepare(&sql)
                    .and_then(|mut s| {
                        s.query_map(params_from_iter(chunk.iter()), |row| {
                            Ok((row.get(0)?, row.get(1)?))
                        })?
                        .collect()
                    })
                    .map_err(unavailable)?;
                for (id, doc) in rows {
                    found.push(
                        decode_doc::<Conversation>("conversation", &id, &doc)
                            .map_err(|e| BackendError::unavailable(OP, e))?,
                    );
                }
            }
            Ok(found)
        })
        .await
    }

    async fn update_conversation(
        &self,
        id: &ConversationId,
        change: ConversationChange<'_>,
    ) -> Result<Option<Conversation>, BackendError> {
        self.change_conversation(
            Lane::Foreground,
            "update_conversation",
            id,
            change,
            Beside::default(),
        )
        .await
    }
}

#[async_trait]
impl Settle for SqliteStore {
    async fn settle(
        &self,
        settlement: Settlement<'_>,
    ) -> Result<Option<Conversation>, BackendError> {
        const OP: &str = "settle";
        let beside = Beside {
            timers: timer_rows(settlement.schedule, OP)?,
            cancel: settlement.cancel.to_vec(),
            activity: settlement
                .activity
                .map(|(identity, note)| ActivityRow::of(self, identity, note)),
        };
        // The prioritizer's: nobody waits on a connection for it.
        self.change_conversation(
            Lane::Background,
            OP,
            settlement.conversation,
            settlement.change,
            beside,
        )
        .await
    }
}

/// What a [`Settlement`] writes beside its conversation, in the same transaction.
#[derive(Debug, Clone, Default)]
struct Beside {
    timers: Vec<TimerRow>,
    cancel: Vec<String>,
    activity: Option<ActivityRow>,
}

impl Beside {
    fn is_empty(&self) -> bool {
        self.timers.is_empty() && self.cancel.is_empty() && self.activity.is_none()
    }

    fn write(&self, conn: &rusqlite::Connection, op: &'static str) -> Result<(), BackendError> {
        insert_timers(conn, &self.timers, op)?;
        delete_timers(conn, &self.cancel, op)?;
        match &self.activity {
            Some(row) => write_activity(conn, row, op),
            None => Ok(()),
        }
    }
}

impl SqliteStore {
    /// Applies `change` to the conversation and writes it, with `beside`, in one write of the
    /// group commit, only if the stored document is still the one read (another writer in
    /// between means reading and changing again). `beside` is written even when the change
    /// changes nothing, or there is no such conversation (then `None`), as the ports' steps
    /// one after the other would.
    async fn change_conversation(
        &self,
        lane: Lane,
        op: &'static str,
        id: &ConversationId,
        change: ConversationChange<'_>,
        beside: Beside,
    ) -> Result<Option<Conversation>, BackendError> {
        // `change` borrows from the caller, so it runs here rather than on the store's
        // blocking thread. A background write may wait while the intake is busy, and the
        // intake writes conversations too: a second attempt, after another writer's change,
        // goes in the foreground so that it cannot be starved.
        for attempt in 0..UPDATE_ATTEMPTS {
            let lane = if attempt == 0 { lane } else { Lane::Foreground };
            let read_id = id.clone();
            let stored: Option<String> = self
                .run(op, move |conn| {
                    conn.prepare_cached("SELECT doc FROM conversations WHERE id = ?1")
                        .and_then(|mut s| {
                            s.query_row([read_id.as_str()], |row| row.get(0)).optional()
                        })
                        .map_err(|e| BackendError::unavailable(op, e))
                })
                .await?;
            let Some(read) = stored else {
                self.write_beside(lane, op, beside).await?;
                return Ok(None);
            };
            let mut conversation = decode_doc::<Conversation>("conversation", id.as_str(), &read)
                .map_err(|e| BackendError::unavailable(op, e))?;
            let Some(tally) = metrics::apply(&mut conversation, change) else {
                self.write_beside(lane, op, beside).await?;
                return Ok(Some(conversation));
            };
            let expires_at = self.expires_at(self.clock.now());
            let (write_id, written, beside) = (id.clone(), conversation.clone(), beside.clone());
            let done = self
                .write_in(lane, op, move |conn| {
                    let unavailable = |e| BackendError::unavailable(op, e);
                    let tx = conn.savepoint().map_err(unavailable)?;
                    let now: Option<String> = tx
                        .prepare_cached("SELECT doc FROM conversations WHERE id = ?1")
                        .and_then(|mut s| {
                            s.query_row([write_id.as_str()], |row| row.get(0))
                                .optional()
                        })
                        .map_err(unavailable)?;
                    if now.as_deref() != Some(read.as_str()) {
                        return Ok(false);
                    }
                    beside.write(&tx, op)?;
                    write_conversation(&tx, &written, expires_at, op)?;
                    crate::metrics::add_tally(&tx, &tally, op)?;
                    tx.commit().map_err(unavailable)?;
                    Ok(true)
                })
                .await?;
            if done {
                return Ok(Some(conversation));
            }
        }
        Err(BackendError::unavailable(
            op,
            "the conversation kept changing while it was being updated",
        ))
    }

    /// Writes `beside` alone (nothing when it is empty).
    async fn write_beside(
        &self,
        lane: Lane,
        op: &'static str,
        beside: Beside,
    ) -> Result<(), BackendError> {
        if beside.is_empty() {
            return Ok(());
        }
        self.write_in(lane, op, move |conn| {
            let tx = conn
                .savepoint()
                .map_err(|e| BackendError::unavailable(op, e))?;
            beside.write(&tx, op)?;
            tx.commit().map_err(|e| BackendError::unavailable(op, e))
        })
        .await
    }
}
