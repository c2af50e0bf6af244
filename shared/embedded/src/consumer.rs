//! The embedded queue's consumer: what Lambda's SQS event source mapping does on AWS, in the
//! local process. It receives batches from the intake queue, hands them to the
//! [`Prioritizer`], acknowledges what succeeded, and leaves the rest to be received again after
//! the visibility timeout (and, after [`MAX_RECEIVES`](crate::MAX_RECEIVES), to the dead
//! letters).

use std::sync::Arc;
use std::time::Duration;
use switchboard_core::clock::Clock;
use switchboard_core::errors::is_reported;
use switchboard_core::ports::BackendError;
use switchboard_core::prioritize::{BatchItem, Prioritizer};
use switchboard_core::remind::ReminderHandler;

use crate::SqliteStore;

/// Entries per batch, as the Lambda function's event source mapping receives them.
pub const BATCH_SIZE: usize = 10;

/// How the consumer polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerSettings {
    /// How long an entry handed out stays hidden before it is received again.
    pub visibility: Duration,
    /// How long to wait after finding the queue empty.
    pub idle: Duration,
}

impl Default for ConsumerSettings {
    /// Hidden 30 s after a failure; polled every 100 ms when idle (a message posted to a
    /// local webhook is prioritized well within a second).
    fn default() -> Self {
        Self {
            visibility: Duration::from_secs(30),
            idle: Duration::from_millis(100),
        }
    }
}

/// Receives one batch, prioritizes it and acknowledges what succeeded; answers how many
/// entries were received (0: the queue had nothing visible).
pub async fn drain_once(
    store: &SqliteStore,
    prioritizer: &Prioritizer,
    visibility: Duration,
) -> Result<usize, BackendError> {
    let received = store.receive(BATCH_SIZE, visibility).await?;
    if received.is_empty() {
        return Ok(0);
    }
    let items: Vec<BatchItem> = received
        .iter()
        .map(|r| {
            Ok(BatchItem {
                id: r.receipt.to_string(),
                body: serde_json::to_string(&r.entry)
                    .map_err(|e| BackendError::unavailable("receive", e))?,
            })
        })
        .collect::<Result<_, BackendError>>()?;
    let failed = prioritizer.handle_batch(&items).await;
    let done: Vec<i64> = received
        .iter()
        .map(|r| r.receipt)
        .filter(|receipt| !failed.contains(&receipt.to_string()))
        .collect();
    store.ack(&done).await?;
    Ok(received.len())
}

/// Consumes the queue until the task is dropped or aborted. A store failure is logged and
/// retried after the idle wait.
pub async fn consume(
    store: Arc<SqliteStore>,
    prioritizer: Prioritizer,
    settings: ConsumerSettings,
) {
    loop {
        match drain_once(&store, &prioritizer, settings.visibility).await {
            Ok(0) => tokio::time::sleep(settings.idle).await,
            Ok(_) => {}
            Err(e) if is_reported(&e) => tokio::time::sleep(settings.idle).await,
            Err(e) => {
                tracing::error!(error = %e, "the prioritizer could not read the queue");
                tokio::time::sleep(settings.idle).await;
            }
        }
    }
}

/// Fires the timers that are due at `clock`'s now: each goes to the reminder handler and, once
/// handled, is marked fired (a failed one stays due and is tried again at the next call).
/// Answers how many fired.
pub async fn fire_due_once(
    store: &SqliteStore,
    handler: &ReminderHandler,
    clock: &dyn Clock,
) -> Result<usize, BackendError> {
    let due = store.due_reminders(clock.now(), BATCH_SIZE).await?;
    let mut fired = Vec::new();
    for reminder in &due {
        match handler.handle(reminder).await {
            Ok(_) => fired.push(reminder.name.clone()),
            Err(e) if is_reported(&e) => {}
            Err(e) => {
                tracing::error!(reminder = %reminder.name, error = %e, "reminder failed; it stays due")
            }
        }
    }
    store.mark_fired(&fired, clock.now()).await?;
    Ok(fired.len())
}

/// Fires due timers until the task is dropped or aborted, checking every `settings.idle`
/// (a reminder fires within that of its time).
pub async fn fire_timers(
    store: Arc<SqliteStore>,
    handler: ReminderHandler,
    clock: Arc<dyn Clock>,
    settings: ConsumerSettings,
) {
    loop {
        match fire_due_once(&store, &handler, clock.as_ref()).await {
            Ok(n) if n == BATCH_SIZE => {}
            Ok(_) => tokio::time::sleep(settings.idle).await,
            Err(e) if is_reported(&e) => tokio::time::sleep(settings.idle).await,
            Err(e) => {
                tracing::error!(error = %e, "the timers could not be read");
                tokio::time::sleep(settings.idle).await;
            }
        }
    }
}
