//! Retries against AWS, written once: the batch calls that answer part of a batch undone
//! (`BatchWriteItem`'s unprocessed items, `BatchGetItem`'s unprocessed keys, the failed
//! entries of `PutEvents` and `SendMessageBatch`) and the conditional writes that lose to a
//! concurrent writer (a failed condition, a cancelled transaction).
//!
//! Both wait between attempts by one [`Backoff`]: exponential, with full jitter (so that
//! writers that collided do not collide again in step), a bounded number of attempts, then an
//! error naming the operation. The SDK's own retries (throttling, 5xx) happen inside each
//! call, before any of this.

use backon::{BackoffBuilder, ExponentialBuilder};
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use switchboard_core::ports::BackendError;

/// How long to wait between attempts, and how many to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first wait (before jitter).
    pub min: Duration,
    /// The longest wait.
    pub max: Duration,
    /// Attempts in all, the first included.
    pub attempts: usize,
}

impl Backoff {
    /// 8 attempts, from 25 ms up to 2 s apart (about 3 s in all at worst).
    pub const STANDARD: Backoff = Backoff {
        min: Duration::from_millis(25),
        max: Duration::from_secs(2),
        attempts: 8,
    };

    /// The waits before the second, third, … attempt.
    fn delays(self) -> impl Iterator<Item = Duration> {
        ExponentialBuilder::default()
            .with_min_delay(self.min)
            .with_max_delay(self.max)
            .with_max_times(self.attempts.saturating_sub(1))
            .with_jitter()
            .build()
    }
}

/// What is left of a batch after a call: nothing left means done.
pub trait Leftover {
    /// Nothing left to send.
    fn is_done(&self) -> bool;
}

impl<T> Leftover for Vec<T> {
    fn is_done(&self) -> bool {
        self.is_empty()
    }
}

impl<K, V> Leftover for HashMap<K, V> {
    fn is_done(&self) -> bool {
        self.is_empty()
    }
}

impl<T: Leftover> Leftover for Option<T> {
    fn is_done(&self) -> bool {
        self.as_ref().is_none_or(Leftover::is_done)
    }
}

/// Sends `first` with `send`, then what each call answers it left undone, waiting by
/// `backoff`, until nothing is left. Answers what the calls found (for reads); an error naming
/// `operation` when the attempts run out, or at the first error of a call.
pub async fn resend_leftovers<T, R, F, Fut>(
    operation: &'static str,
    call: &str,
    backoff: Backoff,
    first: T,
    mut send: F,
) -> Result<Vec<R>, BackendError>
where
    T: Leftover,
    F: FnMut(T) -> Fut,
    Fut: Future<Output = Result<(Vec<R>, T), BackendError>>,
{
    let mut found = Vec::new();
    let mut pending = first;
    let mut delays = backoff.delays();
    loop {
        if pending.is_done() {
            return Ok(found);
        }
        let (items, left) = send(pending).await?;
        found.extend(items);
        pending = left;
        if pending.is_done() {
            return Ok(found);
        }
        match delays.next() {
            Some(wait) => {
                tracing::debug!(operation, call, ?wait, "part of a batch left undone; again");
                tokio::time::sleep(wait).await;
            }
            None => {
                return Err(BackendError::unavailable(
                    operation,
                    format!(
                        "{call} kept leaving part of the batch undone after {} attempts",
                        backoff.attempts
                    ),
                ));
            }
        }
    }
}

/// The outcome of one attempt of a conditional write.
pub enum Attempt<T> {
    /// Written (or nothing to write): the answer.
    Done(T),
    /// Someone wrote in between (a failed condition, a cancelled transaction): read again.
    Conflict,
}

/// Runs `attempt` until it is done, waiting by `backoff` after each conflict; `gave_up` is the
/// error's reason when the conflicts outlast the attempts.
pub async fn until_no_conflict<T, F, Fut>(
    operation: &'static str,
    gave_up: &'static str,
    backoff: Backoff,
    mut attempt: F,
) -> Result<T, BackendError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Attempt<T>, BackendError>>,
{
    let mut delays = backoff.delays();
    loop {
        if let Attempt::Done(answer) = attempt().await? {
            return Ok(answer);
        }
        match delays.next() {
            Some(wait) => tokio::time::sleep(wait).await,
            None => return Err(BackendError::unavailable(operation, gave_up)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const FAST: Backoff = Backoff {
        min: Duration::from_millis(1),
        max: Duration::from_millis(2),
        attempts: 4,
    };

    #[test]
    fn the_waits_grow_are_jittered_and_bounded() {
        let waits: Vec<Duration> = Backoff::STANDARD.delays().collect();
        assert_eq!(waits.len(), Backoff::STANDARD.attempts - 1);
        assert!(waits.iter().all(|w| *w <= Duration::from_secs(4)));
        let runs: Vec<Vec<Duration>> = (0..8)
            .map(|_| Backoff::STANDARD.delays().collect())
            .collect();
        assert!(runs.windows(2).any(|w| w[0] != w[1]), "jittered");
    }

    #[tokio::test]
    async fn leftovers_are_sent_again_until_none_is_left() {
        let calls = AtomicUsize::new(0);
        let found = resend_leftovers("op", "Call", FAST, vec![1, 2, 3], |batch: Vec<i32>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                // Each call does the first item and leaves the rest.
                Ok((vec![batch[0]], batch[1..].to_vec()))
            }
        })
        .await
        .unwrap();
        assert_eq!(found, [1, 2, 3]);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn leftovers_that_never_go_are_an_error_after_the_attempts() {
        let calls = AtomicUsize::new(0);
        let err = resend_leftovers("publish", "PutEvents", FAST, vec![1], |batch: Vec<i32>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { Ok((Vec::<i32>::new(), batch)) }
        })
        .await
        .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), FAST.attempts);
        assert!(err.to_string().contains("publish"), "{err}");
    }

    #[tokio::test]
    async fn conflicts_are_tried_again_and_give_up_after_the_attempts() {
        let calls = AtomicUsize::new(0);
        let answer = until_no_conflict("update", "kept changing", FAST, || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                Ok(if n < 2 {
                    Attempt::Conflict
                } else {
                    Attempt::Done(n)
                })
            }
        })
        .await
        .unwrap();
        assert_eq!(answer, 2);
        let never = until_no_conflict::<(), _, _>("update", "kept changing", FAST, || async {
            Ok(Attempt::Conflict)
        })
        .await
        .unwrap_err();
        let source = std::error::Error::source(&never).unwrap().to_string();
        assert_eq!(source, "kept changing");
    }
}
