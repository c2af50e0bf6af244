//! Operational counts for the operators' dashboards and alarms: deliveries, signature
//! failures, quarantined bodies, messages prioritized by level, reminders fired, breaches,
//! replies sent and failed, batch failures, silent channels.
//!
//! Each is one `tracing` event with target [`TARGET`]: its string fields are the metric's
//! dimensions, its number fields the values (a field ending in `_ms` is milliseconds, one in
//! `_seconds` seconds, any other a count). The Lambda functions turn every such event into a CloudWatch Embedded
//! Metric Format line (`switchboard_lambda::emf`), which CloudWatch Logs makes into metrics
//! with no agent and no call; `switchboard serve` leaves them out of its log unless
//! `RUST_LOG` asks for them. Dimensions are low-cardinality names (a webhook, a queue, a
//! level, a business account), never message text, a phone number or a customer id.
//!
//! The functions here are the only emitters, so every metric's name and dimensions are
//! written once.

use crate::channel::Channel;
use crate::priority::Priority;

/// The target of every metric event.
pub const TARGET: &str = "switchboard::metrics";

/// Every metric name the events here carry: what a dashboard or an alarm may name (the
/// template's tests hold them to it).
pub const METRICS: [&str; 25] = [
    "deliveries",
    "records",
    "duplicates",
    "quarantined",
    "signature_failures",
    "oversized",
    "failures",
    "events",
    "refers_to_unknown",
    "prioritized",
    "received",
    "batch_failures",
    "reminders_fired",
    "breaches",
    "replies_sent",
    "replies_failed",
    "answered",
    "response_seconds",
    "sla_met",
    "sla_breached",
    "silent_channels",
    "resumed_channels",
    "prioritization_lag_ms",
    "backlog",
    "oldest_age_seconds",
];

/// How one webhook delivery was answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Records normalized from it.
    pub records: u64,
    /// Items already taken: repeated inside it, or stored and enqueued by an earlier delivery.
    pub duplicates: u64,
    /// 1 when the body was not JSON and went to the quarantine.
    pub quarantined: u64,
    /// 1 when its signature was refused (401).
    pub signature_failures: u64,
    /// 1 when it was too large (413).
    pub oversized: u64,
    /// 1 when it failed and was answered 5xx (the provider retries).
    pub failures: u64,
}

/// A delivery to `webhook` (`deliveries` 1 and the counts of [`Delivery`]). The 5xx rate of a
/// webhook is `failures / deliveries`.
pub fn delivery(webhook: &str, d: &Delivery) {
    tracing::info!(
        target: TARGET,
        webhook,
        deliveries = 1u64,
        records = d.records,
        duplicates = d.duplicates,
        quarantined = d.quarantined,
        signature_failures = d.signature_failures,
        oversized = d.oversized,
        failures = d.failures,
    );
}

/// The events of one business account in a delivery, and how many of them refer to a
/// message never seen: a share that rises means deliveries are being lost.
pub fn account_events(webhook: &str, account: &str, events: u64, refers_to_unknown: u64) {
    tracing::info!(
        target: TARGET,
        webhook,
        account,
        events,
        refers_to_unknown,
    );
}

/// A message's priority was set.
pub fn prioritized(priority: Priority) {
    tracing::info!(
        target: TARGET,
        priority = priority.as_str(),
        prioritized = 1u64,
    );
}

/// A queue batch: how many messages came in it, and how many are handed back to retry.
pub fn batch(queue: &str, received: u64, batch_failures: u64) {
    tracing::info!(target: TARGET, queue, received, batch_failures);
}

/// An entry of the embedded intake queue taken for prioritizing: how long it waited since it
/// was enqueued. (On AWS, SQS's own `ApproximateAgeOfOldestMessage` says it.)
pub fn prioritization_lag(queue: &str, lag_ms: u64) {
    tracing::info!(target: TARGET, queue, prioritization_lag_ms = lag_ms);
}

/// What waits in the embedded intake queue: `backlog` entries, the oldest enqueued
/// `oldest_age_seconds` ago. (On AWS, SQS's own metrics say it.)
pub fn queue_backlog(queue: &str, backlog: u64, oldest_age_seconds: u64) {
    tracing::info!(target: TARGET, queue, backlog, oldest_age_seconds);
}

/// A reminder fired and was published (`kind`: `sla.warning`, `sla.breached`,
/// `window.closing`); `breaches` is 1 for a breach.
pub fn reminder_fired(kind: &str) {
    let breaches = u64::from(kind == "sla.breached");
    tracing::info!(target: TARGET, kind, reminders_fired = 1u64, breaches);
}

/// A reply through a channel's API: sent, or not (`failed`).
pub fn reply(channel: Channel, sent: bool) {
    tracing::info!(
        target: TARGET,
        channel = channel.as_str(),
        replies_sent = u64::from(sent),
        replies_failed = u64::from(!sent),
    );
}

/// A wait ended by an answer, after `response_seconds`; `sla_met` says whether it was
/// within the timed wait's due time (`None`: the wait was not timed). Published with
/// `conversation.answered`, at least once (a retry may count an answer twice; the figures of
/// `GET /api/metrics` count it once).
pub fn answered(channel: Channel, response_seconds: i64, sla_met: Option<bool>) {
    tracing::info!(
        target: TARGET,
        channel = channel.as_str(),
        answered = 1u64,
        response_seconds = response_seconds.max(0),
        sla_met = u64::from(sla_met == Some(true)),
        sla_breached = u64::from(sla_met == Some(false)),
    );
}

/// A business account went silent (`silent` 1) or spoke again (`resumed` 1).
pub fn channel_watch(channel: Channel, account: &str, silent: bool) {
    tracing::info!(
        target: TARGET,
        channel = channel.as_str(),
        account,
        silent_channels = u64::from(silent),
        resumed_channels = u64::from(!silent),
    );
}
