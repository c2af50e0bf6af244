//! What the operator's commands read and move: the kept deliveries, oldest first, for
//! `switchboard replay`, and the dead letters back to the queue, for `switchboard redrive`.

use chrono::{DateTime, Utc};
use rusqlite::params_from_iter;
use rusqlite::types::Value;
use switchboard_core::model::Webhook;
use switchboard_core::ports::{BackendError, RawDelivery};

use crate::engine::SqliteStore;
use crate::reader::deliveries_of;
use crate::time;

/// Where a listing of kept deliveries goes on: after this delivery (its receive time, then id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryPosition {
    received_at: String,
    id: String,
}

impl DeliveryPosition {
    /// The position just after `delivery`.
    pub fn after(delivery: &RawDelivery) -> Self {
        Self {
            received_at: time::to_text(delivery.received_at),
            id: delivery.id.as_str().to_owned(),
        }
    }
}

impl SqliteStore {
    /// Up to `limit` (at least 1) kept deliveries received at or after `since`, to `webhook`
    /// only when given, in the order they were received (then by id), starting after `after`.
    /// Quarantined ones are included: a new normalizer may read them.
    pub async fn kept_deliveries(
        &self,
        since: DateTime<Utc>,
        webhook: Option<Webhook>,
        after: Option<DeliveryPosition>,
        limit: usize,
    ) -> Result<Vec<RawDelivery>, BackendError> {
        const OP: &str = "kept_deliveries";
        self.run(OP, move |conn| {
            let unavailable = |e| BackendError::unavailable(OP, e);
            let mut sql = String::from(
                "SELECT id, channel, received_at, quarantined, body FROM deliveries
                 WHERE received_at >= ? AND erased_at IS NULL",
            );
            let mut args = vec![Value::Text(time::to_text(since))];
            if let Some(webhook) = webhook {
                sql.push_str(" AND channel = ?");
                args.push(Value::Text(webhook.as_str().to_owned()));
            }
            if let Some(after) = after {
                sql.push_str(" AND (received_at, id) > (?, ?)");
                args.extend([Value::Text(after.received_at), Value::Text(after.id)]);
            }
            sql.push_str(" ORDER BY received_at, id LIMIT ?");
            args.push(Value::Integer(
                i64::try_from(limit.max(1)).unwrap_or(i64::MAX),
            ));
            let mut stmt = conn.prepare(&sql).map_err(unavailable)?;
            deliveries_of(&mut stmt, params_from_iter(args), OP)
        })
        .await
    }

    /// Moves every dead letter back to the end of the intake queue, visible at once and with
    /// its receive count reset, in one transaction; answers how many were moved. A dead letter
    /// whose record is queued again already (the same deduplication id) is only removed.
    /// Safe while `serve` runs on the same folder: its consumer takes them in turn.
    pub async fn redrive(&self) -> Result<usize, BackendError> {
        const OP: &str = "redrive";
        let now_ms = self.clock.now().timestamp_millis();
        self.write(OP, move |conn| {
            let unavailable = |e| BackendError::unavailable(OP, e);
            let tx = conn.savepoint().map_err(unavailable)?;
            let moved = tx
                .execute(
                    "INSERT OR IGNORE INTO intake_queue
                         (dedup_id, group_id, body, enqueued_at, visible_at_ms, receive_count)
                     SELECT dedup_id, group_id, body, enqueued_at, ?1, 0
                     FROM dead_letters ORDER BY seq",
                    [now_ms],
                )
                .map_err(unavailable)?;
            let removed = tx
                .execute("DELETE FROM dead_letters", [])
                .map_err(unavailable)?;
            tx.commit().map_err(unavailable)?;
            tracing::info!(
                moved,
                removed,
                "dead letters moved back to the intake queue"
            );
            Ok(moved)
        })
        .await
    }
}
