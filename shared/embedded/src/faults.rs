//! Conditions of the disk that refuse every write (full, failing, read-only): logged once when
//! they start, summarized while they last, and once more when writes succeed again, instead of
//! one error line per refused write.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a lasting condition is summarized in the log.
pub(crate) const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// What refuses the writes, when a failure is one of the disk's conditions rather than of one
/// write.
pub(crate) fn classify(e: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(code) = e
            .downcast_ref::<rusqlite::Error>()
            .and_then(rusqlite::Error::sqlite_error_code)
        {
            return match code {
                rusqlite::ErrorCode::DiskFull => Some("disk full"),
                rusqlite::ErrorCode::SystemIoFailure => Some("disk I/O error"),
                rusqlite::ErrorCode::ReadOnly => Some("read-only file system"),
                _ => None,
            };
        }
        next = e.source();
    }
    None
}

struct Condition {
    kind: &'static str,
    since: Instant,
    refused: u64,
    said: Instant,
}

/// The store's write condition (see the module docs).
#[derive(Default)]
pub(crate) struct FaultLog {
    state: Mutex<Option<Condition>>,
    refused_total: std::sync::atomic::AtomicU64,
}

impl FaultLog {
    /// `refused` writes failed for `kind`: logs at error level if the condition is new, at warn
    /// level every [`SUMMARY_EVERY`] while it lasts, otherwise only counts.
    pub(crate) fn refused(&self, kind: &'static str, refused: u64) {
        self.refused_total
            .fetch_add(refused, std::sync::atomic::Ordering::Relaxed);
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        match state.as_mut() {
            Some(c) if c.kind == kind => {
                c.refused += refused;
                if now.duration_since(c.said) >= SUMMARY_EVERY {
                    c.said = now;
                    tracing::warn!(
                        condition = kind,
                        refused_writes = c.refused,
                        for_secs = now.duration_since(c.since).as_secs(),
                        "the store still cannot write"
                    );
                }
            }
            _ => {
                tracing::error!(
                    condition = kind,
                    refused_writes = refused,
                    "the store cannot write: every write is refused until it can (webhooks \
                     answer 500 and their providers retry; nothing is acknowledged that is not \
                     stored); logged once, then summarized every minute"
                );
                *state = Some(Condition {
                    kind,
                    since: now,
                    refused,
                    said: now,
                });
            }
        }
    }

    /// A write was committed: ends the condition, if any, with its count.
    pub(crate) fn committed(&self) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = state.take() {
            tracing::warn!(
                condition = c.kind,
                refused_writes = c.refused,
                for_secs = c.since.elapsed().as_secs(),
                "the store writes again"
            );
        }
    }

    /// Writes refused by a condition since the store was opened.
    pub(crate) fn refused_total(&self) -> u64 {
        self.refused_total
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}
