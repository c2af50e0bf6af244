//! The operator's commands on stored data: `switchboard redrive` (dead letters back to their
//! queue) and `switchboard replay` (kept deliveries through the current normalizers).

use chrono::{DateTime, NaiveDate, Utc};
use std::path::Path;
use std::sync::Arc;

use switchboard_core::clock::SystemClock;
use switchboard_core::config::{self, ConfigError, Source};
use switchboard_core::model::Webhook;
use switchboard_embedded::DeliveryPosition;
use switchboard_embedded::assembly::EmbeddedPorts;

use crate::{Backend, CliError};

/// Deliveries read per page by `replay`.
const REPLAY_PAGE: usize = 100;

/// What `replay` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Kept deliveries read.
    pub deliveries: usize,
    /// Of them, still not in their webhook's format (left in the quarantine).
    pub still_quarantined: usize,
    /// Records normalized from them.
    pub records: usize,
    /// Records that were not stored before (new kinds a newer normalizer reads), now stored
    /// and enqueued for prioritization.
    pub new: usize,
}

/// `--since`: an RFC 3339 time (`2026-12-01T08:00:00Z`) or a UTC date (`2026-12-01`).
pub fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            format!("{text:?} is neither an RFC 3339 time (2026-12-01T08:00:00Z) nor a date (2026-12-01)")
        })
}

/// Re-normalizes the deliveries kept in the embedded store in `data` received since `since`
/// (to `webhook` only, when given), oldest first, through the intake as a provider's retry
/// would go: records stored before are left as they are, new ones are stored and enqueued
/// (a running `serve` on the same folder prioritizes them). Running it twice changes nothing
/// the second time.
pub async fn replay(
    data: &Path,
    since: DateTime<Utc>,
    webhook: Option<Webhook>,
    source: &impl Source,
) -> Result<Replayed, CliError> {
    let retention = config::retention_days(source)?;
    let ports = EmbeddedPorts::open(data, retention, Arc::new(SystemClock))?;
    let (store, intake) = (ports.store(), ports.intake());
    let mut summary = Replayed::default();
    let mut after = None;
    loop {
        let page = store
            .kept_deliveries(since, webhook, after.take(), REPLAY_PAGE)
            .await
            .map_err(|e| CliError::Operation(switchboard_core::errors::chain(&e)))?;
        let Some(last) = page.last() else { break };
        after = Some(DeliveryPosition::after(last));
        for delivery in &page {
            let outcome = intake
                .replay(delivery)
                .await
                .map_err(|e| CliError::Operation(switchboard_core::errors::chain(&e)))?;
            summary.deliveries += 1;
            summary.still_quarantined += usize::from(outcome.quarantined);
            summary.records += outcome.records;
            summary.new += outcome.enqueued;
        }
    }
    Ok(summary)
}

/// One queue's redrive, for the summary line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redrive {
    /// Where the dead letters were.
    pub from: String,
    /// Where they went.
    pub to: String,
    /// How many.
    pub moved: usize,
}

/// Moves the dead letters back to their queue: on the embedded backend, the store's dead
/// letters to its intake queue; on AWS, the dead-letter queue of the intake queue
/// (`SWITCHBOARD_INTAKE_QUEUE_URL`) and, when `SWITCHBOARD_REMINDER_QUEUE_URL` is set, of the
/// reminder queue.
pub async fn redrive(
    backend: Backend,
    data: &Path,
    source: &impl Source,
) -> Result<Vec<Redrive>, CliError> {
    let failed = |e: switchboard_core::ports::BackendError| {
        CliError::Operation(switchboard_core::errors::chain(&e))
    };
    match backend {
        Backend::Embedded => {
            let retention = config::retention_days(source)?;
            let ports = EmbeddedPorts::open(data, retention, Arc::new(SystemClock))?;
            let moved = ports.store().redrive().await.map_err(failed)?;
            Ok(vec![Redrive {
                from: format!("the dead letters in {}", data.display()),
                to: "its intake queue".to_owned(),
                moved,
            }])
        }
        Backend::Aws => {
            let mut queues = vec![switchboard_aws::settings::intake_queue_url(source)?];
            match switchboard_aws::settings::reminder_queue_url(source) {
                Ok(url) => queues.push(url),
                Err(ConfigError::Missing { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            let sqs = aws_sdk_sqs::Client::new(&switchboard_aws::assembly::sdk_config().await);
            let mut done = Vec::new();
            for queue in queues {
                let moved = switchboard_aws::redrive::redrive(&sqs, &queue)
                    .await
                    .map_err(failed)?;
                done.push(Redrive {
                    from: moved.dead_letter_queue,
                    to: queue,
                    moved: moved.moved,
                });
            }
            Ok(done)
        }
    }
}
