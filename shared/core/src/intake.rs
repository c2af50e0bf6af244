//! The intake service: one delivery in, durable records and queue entries out.
//!
//! The steps of DESIGN.md's flow, after the signature check:
//! 1. keep the raw delivery (before anything can answer 200);
//! 2. normalize every entry, change and item (a body that is not JSON is quarantined instead);
//! 3. write each record once, keyed by its provider id;
//! 4. enqueue what is not enqueued yet, in batches, and confirm it.
//!
//! `Ok` means all of that is durable; any error means the caller must answer 5xx so that the
//! provider retries, and the retry is safe: stored records are not written again, and records
//! whose enqueue was not confirmed are enqueued then.

use bytes::Bytes;
use std::collections::HashSet;
use std::sync::Arc;

use crate::channels;
use crate::clock::Clock;
use crate::model::{Record, Webhook};
use crate::ports::{BackendError, IntakeQueue, MessageStore, RawDelivery};

/// The largest body accepted: Lambda's own limit for a synchronous invocation (6 MB).
pub const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;

/// What happened to an accepted delivery, for the log and for tests.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IntakeOutcome {
    /// The delivery was not JSON and went to the quarantine.
    pub quarantined: bool,
    /// Records normalized from the delivery, duplicates inside it removed.
    pub records: usize,
    /// Duplicates inside the delivery (the same key twice), dropped before storing.
    pub duplicates_in_delivery: usize,
    /// Entries handed to the queue by this call.
    pub enqueued: usize,
}

/// The intake service over its ports.
#[derive(Clone)]
pub struct Intake {
    store: Arc<dyn MessageStore>,
    queue: Arc<dyn IntakeQueue>,
    clock: Arc<dyn Clock>,
}

impl Intake {
    /// An intake writing to `store` and `queue`, timing receipts by `clock`.
    pub fn new(
        store: Arc<dyn MessageStore>,
        queue: Arc<dyn IntakeQueue>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            queue,
            clock,
        }
    }

    /// Takes in one verified delivery to `webhook`. See the module docs for the guarantees.
    #[tracing::instrument(skip_all, fields(webhook = %webhook, bytes = body.len()))]
    pub async fn accept(
        &self,
        webhook: Webhook,
        body: Bytes,
    ) -> Result<IntakeOutcome, BackendError> {
        let received_at = self.clock.now();
        let parsed = serde_json::from_slice::<serde_json::Value>(&body);
        let delivery = RawDelivery::new(webhook, body, received_at, parsed.is_err());
        self.store.keep_delivery(&delivery).await?;
        let Ok(json) = parsed else {
            tracing::warn!(delivery = %delivery.id, "delivery is not JSON; quarantined");
            return Ok(IntakeOutcome {
                quarantined: true,
                ..IntakeOutcome::default()
            });
        };
        let normalized = channels::normalize(webhook, &json, received_at);
        let total = normalized.len();
        let records = unique_by_key(normalized);
        let pending = self.store.record(&records).await?;
        for chunk in pending.chunks(ENQUEUE_CHUNK) {
            self.queue.enqueue(chunk).await?;
            let keys: Vec<_> = chunk.iter().map(|e| e.record_key.clone()).collect();
            self.store.mark_enqueued(&keys).await?;
        }
        let outcome = IntakeOutcome {
            quarantined: false,
            records: records.len(),
            duplicates_in_delivery: total - records.len(),
            enqueued: pending.len(),
        };
        tracing::info!(
            delivery = %delivery.id,
            records = outcome.records,
            duplicates_in_delivery = outcome.duplicates_in_delivery,
            enqueued = outcome.enqueued,
            "delivery accepted"
        );
        Ok(outcome)
    }
}

/// Entries confirmed per round: large enough to batch (10 per SQS call, 100 per DynamoDB
/// transaction), small enough that a failure part-way leaves little to enqueue again.
const ENQUEUE_CHUNK: usize = 100;

/// Keeps the first record of each key, in order.
fn unique_by_key(records: Vec<Record>) -> Vec<Record> {
    let mut seen = HashSet::with_capacity(records.len());
    records
        .into_iter()
        .filter(|r| seen.insert(r.key()))
        .collect()
}
