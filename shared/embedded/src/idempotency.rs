//! The [`IdempotencyStore`] port on SQLite: the `idempotency` table, one row per key. A claim
//! is one write (a read and an insert in the same transaction, so concurrent claims of one
//! key are serialized by the writer and exactly one wins).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use switchboard_core::ports::{BackendError, Claim, IdempotencyStore, StoredRecord};

use crate::engine::SqliteStore;

#[async_trait]
impl IdempotencyStore for SqliteStore {
    async fn claim(
        &self,
        key: &str,
        fingerprint: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<Claim, BackendError> {
        const OP: &str = "claim_idempotency_key";
        let (key, fingerprint) = (key.to_owned(), fingerprint.to_owned());
        let now = self.clock.now().timestamp();
        self.write(OP, move |conn| {
            let unavailable = |e| BackendError::unavailable(OP, e);
            let held: Option<(String, Option<String>)> = conn
                .prepare_cached(
                    "SELECT fingerprint, result FROM idempotency WHERE key = ?1 AND expires_at > ?2",
                )
                .and_then(|mut s| {
                    s.query_row(params![key, now], |row| Ok((row.get(0)?, row.get(1)?)))
                        .optional()
                })
                .map_err(unavailable)?;
            match held {
                Some((fingerprint, None)) => Ok(Claim::InProgress { fingerprint }),
                Some((fingerprint, Some(result))) => Ok(Claim::Done {
                    fingerprint,
                    record: Box::new(serde_json::from_str(&result).map_err(|_| {
                        BackendError::unavailable(OP, "stored idempotency result does not decode")
                    })?),
                }),
                None => {
                    conn.prepare_cached(
                        "INSERT OR REPLACE INTO idempotency (key, fingerprint, result, expires_at)
                         VALUES (?1, ?2, NULL, ?3)",
                    )
                    .and_then(|mut s| s.execute(params![key, fingerprint, expires_at.timestamp()]))
                    .map_err(unavailable)?;
                    Ok(Claim::New)
                }
            }
        })
        .await
    }

    async fn complete(&self, key: &str, record: &StoredRecord) -> Result<(), BackendError> {
        const OP: &str = "complete_idempotency_key";
        let result = serde_json::to_string(record).map_err(|e| BackendError::unavailable(OP, e))?;
        let key = key.to_owned();
        self.write(OP, move |conn| {
            conn.prepare_cached("UPDATE idempotency SET result = ?2 WHERE key = ?1")
                .and_then(|mut s| s.execute(params![key, result]))
                .map(drop)
                .map_err(|e| BackendError::unavailable(OP, e))
        })
        .await
    }

    async fn release(&self, key: &str) -> Result<(), BackendError> {
        const OP: &str = "release_idempotency_key";
        let key = key.to_owned();
        self.write(OP, move |conn| {
            conn.prepare_cached("DELETE FROM idempotency WHERE key = ?1 AND result IS NULL")
                .and_then(|mut s| s.execute([key]))
                .map(drop)
                .map_err(|e| BackendError::unavailable(OP, e))
        })
        .await
    }
}
