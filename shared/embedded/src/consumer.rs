//! The embedded queue's consumer: what Lambda's SQS event source mapping does on AWS, in the
//! local process. It receives batches from the intake queue, hands them to the
//! [`Prioritizer`], acknowledges what succeeded, and leaves the rest to be received again after
//! the visibility timeout (and, after [`MAX_RECEIVES`](crate::MAX_RECEIVES), to the dead
//! letters).

use std::sync::Arc;
use std::time::Duration;
use switchboard_core::clock::Clock;
use switchboard_core::consume::ConsumeError;
use switchboard_core::errors::is_reported;
use switchboard_core::ports::BackendError;
use switchboard_core::prioritize::{BatchItem, Prioritizer};
use switchboard_core::remind::ReminderHandler;
use switchboard_core::sla::reminder::Reminder;

use crate::{EventFile, SqliteStore};

/// Entries per batch, as the Lambda function's event source mapping receives them.
pub const BATCH_SIZE: usize = 10;

/// How the consumer polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerSettings {
    /// How long an entry handed out stays hidden before it is received again.
    pub visibility: Duration,
    /// How long to wait after finding the queue empty.
    pub idle: Duration,
    /// Batches prioritized at once. The queue hands each conversation to one batch at a
    /// time, so they never touch the same conversation, and their writes share the store's
    /// commits: under intake load the prioritizer gets as many turns at the store as it has
    /// batches waiting, instead of one.
    pub workers: usize,
}

impl Default for ConsumerSettings {
    /// Hidden 30 s after a failure; polled every 100 ms when idle (a message posted to a
    /// local webhook is prioritized well within a second); [`WORKERS`] batches at once.
    fn default() -> Self {
        Self {
            visibility: Duration::from_secs(30),
            idle: Duration::from_millis(100),
            workers: WORKERS,
        }
    }
}

/// Batches the consumer prioritizes at once by default.
pub const WORKERS: usize = 8;

/// How often the backlog is measured (the `backlog` and `oldest_age_seconds` metrics).
pub const BACKLOG_EVERY: Duration = Duration::from_secs(5);

/// An oldest entry waiting longer than this is a prioritizer behind: logged (once a minute).
pub const BEHIND_AFTER: Duration = Duration::from_secs(60);

/// How often a running `serve` deletes what its retention has passed.
pub const EXPIRE_EVERY: Duration = Duration::from_secs(3600);

/// Deletes, every `every` (the first time one `every` after the start, which purged at
/// open), the store's rows and the event file's events older than the store's retention, so
/// that a process that runs for months forgets as a restarted one would. A failure is logged
/// and tried again at the next turn. Runs until dropped.
pub async fn expire_periodically(
    store: Arc<SqliteStore>,
    events: Arc<EventFile>,
    clock: Arc<dyn Clock>,
    every: Duration,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(e) = store.purge_expired().await
            && !is_reported(&e)
        {
            tracing::error!(error = %e, "expired rows could not be purged; trying again later");
        }
        let cutoff = clock.now() - chrono::TimeDelta::days(i64::from(store.retention_days()));
        if let Err(e) = events.expire(cutoff).await {
            tracing::error!(error = %e, "expired events could not be dropped; trying again later");
        }
    }
}

/// Receives one batch, prioritizes its entries (each of another conversation) at once and
/// acknowledges what succeeded; answers how many entries were received (0: the queue had
/// nothing visible).
pub async fn drain_once(
    store: &SqliteStore,
    prioritizer: &Prioritizer,
    visibility: Duration,
) -> Result<usize, BackendError> {
    let received = store.receive(BATCH_SIZE, visibility).await?;
    if received.is_empty() {
        return Ok(0);
    }
    let now = store.clock.now();
    for entry in &received {
        let lag = (now - entry.enqueued_at).num_milliseconds().max(0);
        switchboard_core::telemetry::prioritization_lag("intake", lag as u64);
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
    // The queue hands out one entry per conversation, so the entries of a batch are handled
    // at once: their store operations share turns instead of waiting for each other.
    let mut handling = tokio::task::JoinSet::new();
    for item in items {
        let prioritizer = prioritizer.clone();
        handling.spawn(async move { prioritizer.handle_batch(&[item]).await });
    }
    let failed: Vec<String> = handling.join_all().await.into_iter().flatten().collect();
    let done: Vec<i64> = received
        .iter()
        .map(|r| r.receipt)
        .filter(|receipt| !failed.contains(&receipt.to_string()))
        .collect();
    store.ack(&done).await?;
    Ok(received.len())
}

/// Consumes the queue with `settings.workers` batches at once, and measures its backlog
/// every [`BACKLOG_EVERY`], until the task is dropped or aborted. A store failure is logged
/// and retried after the idle wait.
pub async fn consume(
    store: Arc<SqliteStore>,
    prioritizer: Prioritizer,
    settings: ConsumerSettings,
) {
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..settings.workers.max(1) {
        workers.spawn(work(store.clone(), prioritizer.clone(), settings));
    }
    // Dropping the set (when this task is aborted) aborts the workers.
    tokio::join!(workers.join_all(), watch_backlog(&store, settings));
}

/// Measures the backlog until aborted: the metrics, and a warning (at most once a minute)
/// while the oldest entry has waited longer than [`BEHIND_AFTER`].
async fn watch_backlog(store: &SqliteStore, settings: ConsumerSettings) {
    let mut warned: Option<std::time::Instant> = None;
    loop {
        tokio::time::sleep(BACKLOG_EVERY).await;
        let Ok(backlog) = store.backlog().await else {
            continue;
        };
        let age = backlog
            .oldest
            .map(|t| (store.clock.now() - t).num_seconds().max(0) as u64)
            .unwrap_or(0);
        switchboard_core::telemetry::queue_backlog("intake", backlog.entries as u64, age);
        if age > BEHIND_AFTER.as_secs() && warned.is_none_or(|w| w.elapsed() >= BEHIND_AFTER) {
            warned = Some(std::time::Instant::now());
            tracing::warn!(
                backlog = backlog.entries,
                oldest_age_seconds = age,
                workers = settings.workers,
                "the prioritizer is behind the intake"
            );
        }
    }
}

/// One worker of [`consume`].
async fn work(store: Arc<SqliteStore>, prioritizer: Prioritizer, settings: ConsumerSettings) {
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

/// Timers read and handled at once by [`fire_due_once`].
pub const TIMER_BATCH: usize = 64;

/// Fires the timers that are due at `clock`'s now (at most [`TIMER_BATCH`]): each goes to the
/// reminder handler and, once handled, is marked fired (a failed one stays due and is tried
/// again at the next call). A conversation's reminders are handled one after the other, in the
/// order they came due (its warning before its breach); different conversations' at once, so
/// that their reads and writes share the store's commits instead of waiting in line behind the
/// intake's (one at a time, a thousand reminders under load fell seconds behind). Answers how
/// many fired.
pub async fn fire_due_once(
    store: &SqliteStore,
    handler: &ReminderHandler,
    clock: &dyn Clock,
) -> Result<usize, BackendError> {
    let due = store.due_reminders(clock.now(), TIMER_BATCH).await?;
    let mut chains: Vec<Vec<Reminder>> = Vec::new();
    for reminder in due {
        match chains
            .iter_mut()
            .find(|chain| chain[0].conversation_id == reminder.conversation_id)
        {
            Some(chain) => chain.push(reminder),
            None => chains.push(vec![reminder]),
        }
    }
    let mut handling = tokio::task::JoinSet::new();
    for chain in chains {
        let handler = handler.clone();
        handling.spawn(async move {
            let mut fired = Vec::new();
            for reminder in chain {
                match handler.handle(&reminder).await {
                    Ok(_) => fired.push(reminder.name),
                    // Its conversation's clock is being written: it fires at a next round.
                    Err(ConsumeError::NotYet(_)) => {}
                    Err(e) if is_reported(&e) => {}
                    Err(e) => {
                        tracing::error!(reminder = %reminder.name, error = %e, "reminder failed; it stays due")
                    }
                }
            }
            fired
        });
    }
    let fired: Vec<String> = handling.join_all().await.into_iter().flatten().collect();
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
            // A full batch fired: more may be due already.
            Ok(n) if n == TIMER_BATCH => {}
            Ok(_) => tokio::time::sleep(settings.idle).await,
            Err(e) if is_reported(&e) => tokio::time::sleep(settings.idle).await,
            Err(e) => {
                tracing::error!(error = %e, "the timers could not be read");
                tokio::time::sleep(settings.idle).await;
            }
        }
    }
}
