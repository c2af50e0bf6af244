//! The [`ReminderScheduler`] port on SQLite: a timer table driven by the local process (see
//! [`crate::consumer::fire_due_once`]). Same semantics as EventBridge Scheduler one-time
//! schedules: created once by name, deleted on cancel, fired at most once.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::params;
use switchboard_core::ports::{BackendError, ReminderScheduler};
use switchboard_core::sla::Reminder;

use crate::engine::{SqliteStore, UndecodableDoc};
use crate::time;

#[async_trait]
impl ReminderScheduler for SqliteStore {
    async fn schedule(&self, reminders: &[Reminder]) -> Result<(), BackendError> {
        const OP: &str = "schedule";
        if reminders.is_empty() {
            return Ok(());
        }
        let rows = timer_rows(reminders, OP)?;
        self.write(OP, move |conn| {
            let tx = conn
                .savepoint()
                .map_err(|e| BackendError::unavailable(OP, e))?;
            insert_timers(&tx, &rows, OP)?;
            tx.commit().map_err(|e| BackendError::unavailable(OP, e))
        })
        .await
    }

    async fn cancel(&self, names: &[String]) -> Result<(), BackendError> {
        const OP: &str = "cancel";
        if names.is_empty() {
            return Ok(());
        }
        let names = names.to_vec();
        self.write(OP, move |conn| {
            let tx = conn
                .savepoint()
                .map_err(|e| BackendError::unavailable(OP, e))?;
            delete_timers(&tx, &names, OP)?;
            tx.commit().map_err(|e| BackendError::unavailable(OP, e))
        })
        .await
    }
}

/// A reminder as a row of the timer table: its name, when it fires, its document.
pub(crate) type TimerRow = (String, i64, String);

/// The rows of `reminders`.
pub(crate) fn timer_rows(
    reminders: &[Reminder],
    op: &'static str,
) -> Result<Vec<TimerRow>, BackendError> {
    reminders
        .iter()
        .map(|r| {
            serde_json::to_string(r)
                .map(|body| (r.name.clone(), r.fire_at.timestamp_millis(), body))
                .map_err(|e| BackendError::unavailable(op, e))
        })
        .collect()
}

/// Creates the timers of `rows` that do not exist yet.
pub(crate) fn insert_timers(
    conn: &rusqlite::Connection,
    rows: &[TimerRow],
    op: &'static str,
) -> Result<(), BackendError> {
    for (name, fire_at_ms, body) in rows {
        conn.prepare_cached(
            "INSERT OR IGNORE INTO timers (name, fire_at_ms, body) VALUES (?1, ?2, ?3)",
        )
        .and_then(|mut s| s.execute(params![name, fire_at_ms, body]))
        .map_err(|e| BackendError::unavailable(op, e))?;
    }
    Ok(())
}

/// Deletes the timers named that have not fired.
pub(crate) fn delete_timers(
    conn: &rusqlite::Connection,
    names: &[String],
    op: &'static str,
) -> Result<(), BackendError> {
    for name in names {
        conn.prepare_cached("DELETE FROM timers WHERE name = ?1 AND fired_at IS NULL")
            .and_then(|mut s| s.execute([name]))
            .map_err(|e| BackendError::unavailable(op, e))?;
    }
    Ok(())
}

impl SqliteStore {
    /// Timers due at `now` that have not fired, earliest first, at most `limit`.
    pub async fn due_reminders(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Reminder>, BackendError> {
        const OP: &str = "due_reminders";
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(OP, move |conn| {
            let rows: Vec<(String, String)> = conn
                .prepare_cached(
                    "SELECT name, body FROM timers WHERE fired_at IS NULL AND fire_at_ms <= ?1
                     ORDER BY fire_at_ms, name LIMIT ?2",
                )
                .and_then(|mut s| {
                    s.query_map(params![now.timestamp_millis(), limit], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })?
                    .collect()
                })
                .map_err(|e| BackendError::unavailable(OP, e))?;
            rows.iter()
                .map(|(name, body)| {
                    serde_json::from_str(body).map_err(|e| {
                        BackendError::unavailable(OP, UndecodableDoc::new("timer", name, &e))
                    })
                })
                .collect()
        })
        .await
    }

    /// Marks timers fired (they never fire again).
    pub async fn mark_fired(
        &self,
        names: &[String],
        at: DateTime<Utc>,
    ) -> Result<(), BackendError> {
        const OP: &str = "mark_fired";
        if names.is_empty() {
            return Ok(());
        }
        let names = names.to_vec();
        self.write(OP, move |conn| {
            let unavailable = |e| BackendError::unavailable(OP, e);
            let tx = conn.savepoint().map_err(unavailable)?;
            for name in &names {
                tx.prepare_cached(
                    "UPDATE timers SET fired_at = ?2 WHERE name = ?1 AND fired_at IS NULL",
                )
                .and_then(|mut s| s.execute(params![name, time::to_text(at)]))
                .map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)
        })
        .await
    }

    /// Timers not fired yet, by name (for tests and operators).
    pub async fn pending_reminders(&self) -> Result<Vec<String>, BackendError> {
        const OP: &str = "pending_reminders";
        self.run(OP, |conn| {
            conn.prepare_cached("SELECT name FROM timers WHERE fired_at IS NULL ORDER BY name")
                .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect())
                .map_err(|e| BackendError::unavailable(OP, e))
        })
        .await
    }
}
