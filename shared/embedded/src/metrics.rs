//! The metrics' counters on SQLite: [`add_tally`] adds a change's tally inside the transaction
//! that writes the change, and [`MetricsReader`] reads the buckets of a range of hours back.

use async_trait::async_trait;
use rusqlite::{Connection, params};
use std::collections::BTreeMap;

use switchboard_core::metrics::{self, BucketKey, Counts, Dims, Tally};
use switchboard_core::ports::{BackendError, MetricsReader};

use crate::engine::SqliteStore;

/// Adds every count of `tally` to its bucket's rows, on `conn` (inside the caller's
/// transaction, so the counts land with the change they count, or not at all).
pub(crate) fn add_tally(
    conn: &Connection,
    tally: &Tally,
    op: &'static str,
) -> Result<(), BackendError> {
    let unavailable = |e| BackendError::unavailable(op, e);
    let mut upsert = conn
        .prepare_cached(
            "INSERT INTO metric_counts (hour, dims, field, value, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (hour, dims, field) DO UPDATE SET value = value + excluded.value",
        )
        .map_err(unavailable)?;
    for (key, counts) in tally.buckets() {
        let dims =
            serde_json::to_string(&key.dims).map_err(|e| BackendError::unavailable(op, e))?;
        for (field, value) in counts.fields() {
            upsert
                .execute(params![
                    key.hour,
                    dims,
                    field,
                    value,
                    metrics::expires_at(key.hour)
                ])
                .map_err(unavailable)?;
        }
    }
    Ok(())
}

#[async_trait]
impl MetricsReader for SqliteStore {
    /// One range scan of the primary key: the rows of the hours, merged per bucket.
    async fn buckets(
        &self,
        from_hour: i64,
        to_hour: i64,
    ) -> Result<Vec<(BucketKey, Counts)>, BackendError> {
        const OP: &str = "metrics";
        self.run(OP, move |conn| {
            let unavailable = |e| BackendError::unavailable(OP, e);
            let rows: Vec<(i64, String, String, i64)> = conn
                .prepare_cached(
                    "SELECT hour, dims, field, value FROM metric_counts
                     WHERE hour >= ?1 AND hour < ?2 ORDER BY hour, dims",
                )
                .and_then(|mut s| {
                    s.query_map(params![from_hour, to_hour], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                    })?
                    .collect()
                })
                .map_err(unavailable)?;
            let mut buckets: BTreeMap<(i64, String), Counts> = BTreeMap::new();
            for (hour, dims, field, value) in rows {
                buckets
                    .entry((hour, dims))
                    .or_default()
                    .add_field(&field, value);
            }
            buckets
                .into_iter()
                .map(|((hour, dims), counts)| {
                    let dims: Dims = serde_json::from_str(&dims)
                        .map_err(|e| BackendError::unavailable(OP, e))?;
                    Ok((BucketKey { hour, dims }, counts))
                })
                .collect()
        })
        .await
    }
}
