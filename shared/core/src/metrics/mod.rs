//! The contact center's figures, counted when things happen: never by scanning the history.
//!
//! A [`Tally`] is a set of increments to hourly buckets, each bucket keyed by its hour and its
//! [`Dims`] (channel, account, team, topic, priority). The stores add a tally to their
//! counters **in the same atomic write** as the conversation change it comes from, so a
//! change that happens once counts once: a redelivery, a prioritization run twice, an echo of
//! a reply already stored change nothing and count nothing.
//!
//! What counts, and in which hour:
//!
//! | counter | counted | hour of | dims of |
//! |---|---|---|---|
//! | `messages_in`, `public_in`, `complaints` | a customer message scored ([`message_scored`]) | the message's provider time | its own score |
//! | `conversations_opened` | the first customer message of a conversation scored | its case's first message | that message's score |
//! | `answered`, `first_response`, `next_response` | a wait ended by an answer ([`transition`]) | the answer | the conversation's priority |
//! | `sla_met`, `sla_breached` | a timed wait ended, by an answer or a resolution | the answer or resolution | the conversation's priority |
//! | `resolved`, `first_contact_resolved` | a case resolved | the resolution | the conversation's priority |
//! | `reopened` | a customer message after a resolution opened the next case | that message | the conversation's priority |
//!
//! A complaint is a message with a signal marked `complaint = true` in the priority
//! configuration (anger, money lost, a service down, legal threats, …). Response times are
//! kept as [`Sketch`]es (1 % relative error), so any range of hours merges into one
//! distribution. [`report`] turns stored buckets into the series of `GET /api/metrics`.

pub mod report;
pub mod sketch;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::model::{Channel, Conversation, Message};
use crate::priority::{Priority, Score};
pub use sketch::Sketch;

/// An hour's length in seconds: the width of a stored bucket.
pub const HOUR: i64 = 3_600;

/// How long a stored bucket is kept after its hour: a year and a month, for a year-on-year
/// comparison. Buckets hold counts by channel, account, team, topic and priority: no personal
/// data, so they outlive the records' retention.
pub const RETENTION_DAYS: i64 = 400;

/// When a bucket of `hour` expires (Unix seconds).
pub fn expires_at(hour: i64) -> i64 {
    hour + RETENTION_DAYS * 86_400
}

/// The start of the UTC hour of `at`, in Unix seconds.
pub fn hour_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(HOUR) * HOUR
}

/// What a bucket is about. `team`, `topic` and `priority` are `None` for a conversation that
/// was never prioritized (an answer seen before the prioritizer ran, say).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Dims {
    /// The channel.
    pub channel: Channel,
    /// The business account (a WhatsApp phone number id, a page id, …).
    pub account: String,
    /// The team of the priority.
    pub team: Option<String>,
    /// The topic of the priority.
    pub topic: Option<String>,
    /// The level.
    pub priority: Option<Priority>,
}

impl Dims {
    /// The dims of a conversation: its channel and account, and its current priority's team,
    /// topic and level.
    pub fn of_conversation(c: &Conversation) -> Self {
        let p = c.priority.as_ref();
        Self {
            channel: c.channel,
            account: c.account_id.as_str().to_owned(),
            team: p.map(|p| p.team.clone()),
            topic: p.map(|p| p.topic.clone()),
            priority: p.map(|p| p.priority),
        }
    }

    /// The dims of a message scored as `score`.
    pub fn of_message(m: &Message, score: &Score) -> Self {
        Self {
            channel: m.channel,
            account: m.account_id.as_str().to_owned(),
            team: Some(score.team.clone()),
            topic: Some(score.topic.clone()),
            priority: Some(score.priority),
        }
    }

    /// A short stable id of these dims (16 hex digits of a SHA-256), for a store's key.
    pub fn id(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        crate::ids::short_hash(text.as_bytes())
    }
}

/// A plain counter of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Counter {
    /// Customer messages in.
    MessagesIn,
    /// Conversations whose first customer message arrived.
    ConversationsOpened,
    /// Public customer messages in (comments, mentions).
    PublicIn,
    /// Customer messages carrying a complaint signal.
    Complaints,
    /// Waits ended by an answer.
    Answered,
    /// Timed waits that ended by their due time.
    SlaMet,
    /// Timed waits that ended after their due time.
    SlaBreached,
    /// Cases resolved.
    Resolved,
    /// Cases resolved at first contact.
    FirstContactResolved,
    /// Cases reopened by a customer message after their resolution.
    Reopened,
}

impl Counter {
    /// Every counter, in report order.
    pub const ALL: [Counter; 10] = [
        Counter::MessagesIn,
        Counter::ConversationsOpened,
        Counter::PublicIn,
        Counter::Complaints,
        Counter::Answered,
        Counter::SlaMet,
        Counter::SlaBreached,
        Counter::Resolved,
        Counter::FirstContactResolved,
        Counter::Reopened,
    ];

    /// Its name in reports and stores.
    pub fn name(self) -> &'static str {
        match self {
            Counter::MessagesIn => "messages_in",
            Counter::ConversationsOpened => "conversations_opened",
            Counter::PublicIn => "public_in",
            Counter::Complaints => "complaints",
            Counter::Answered => "answered",
            Counter::SlaMet => "sla_met",
            Counter::SlaBreached => "sla_breached",
            Counter::Resolved => "resolved",
            Counter::FirstContactResolved => "first_contact_resolved",
            Counter::Reopened => "reopened",
        }
    }

    /// The counter of a name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// Which response time a duration is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Response {
    /// The first answer of a conversation.
    First,
    /// Any later answer (a customer message after an answer).
    Next,
}

/// The prefixes of the two sketches in [`Counts::fields`].
const FIRST_PREFIX: &str = "fr_";
const NEXT_PREFIX: &str = "nr_";

/// What one bucket holds: its counters and its two response-time distributions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    counters: [u64; Counter::ALL.len()],
    /// First response times, seconds.
    pub first_response: Sketch,
    /// Next response times, seconds.
    pub next_response: Sketch,
}

impl Counts {
    /// The value of a counter.
    pub fn get(&self, counter: Counter) -> u64 {
        self.counters[counter as usize]
    }

    /// Adds `n` to a counter.
    pub fn add(&mut self, counter: Counter, n: u64) {
        self.counters[counter as usize] += n;
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Counts) {
        for (a, b) in self.counters.iter_mut().zip(other.counters) {
            *a += b;
        }
        self.first_response.merge(&other.first_response);
        self.next_response.merge(&other.next_response);
    }

    /// Whether nothing is counted.
    pub fn is_empty(&self) -> bool {
        self.counters.iter().all(|c| *c == 0)
            && self.first_response.count() == 0
            && self.next_response.count() == 0
    }

    /// The counts as named numbers (only those that are not zero): what a store adds to its
    /// counters (`ADD` on DynamoDB, an upsert on SQLite). Names are ASCII letters, digits and
    /// `_`.
    pub fn fields(&self) -> Vec<(String, i64)> {
        let mut out: Vec<(String, i64)> = Counter::ALL
            .into_iter()
            .filter(|c| self.get(*c) > 0)
            .map(|c| (c.name().to_owned(), self.get(c) as i64))
            .collect();
        out.extend(self.first_response.fields(FIRST_PREFIX));
        out.extend(self.next_response.fields(NEXT_PREFIX));
        out
    }

    /// Adds one named number of [`Counts::fields`]; a name it does not know is ignored (a
    /// newer build's counter read by an older one).
    pub fn add_field(&mut self, name: &str, value: i64) {
        if let Some(c) = Counter::from_name(name) {
            self.add(c, value.max(0) as u64);
        } else if let Some(rest) = name.strip_prefix(FIRST_PREFIX) {
            self.first_response.add_field(rest, value);
        } else if let Some(rest) = name.strip_prefix(NEXT_PREFIX) {
            self.next_response.add_field(rest, value);
        }
    }

    /// Counts from named numbers.
    pub fn from_fields<'a>(fields: impl IntoIterator<Item = (&'a str, i64)>) -> Self {
        let mut counts = Counts::default();
        for (name, value) in fields {
            counts.add_field(name, value);
        }
        counts
    }
}

/// A stored bucket's key: the start of its UTC hour (Unix seconds) and its dims.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BucketKey {
    /// The start of the hour.
    pub hour: i64,
    /// What it counts.
    pub dims: Dims,
}

/// Increments to hourly buckets, made by one change. See the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    buckets: BTreeMap<BucketKey, Counts>,
}

impl Tally {
    /// Whether it adds nothing.
    pub fn is_empty(&self) -> bool {
        self.buckets.values().all(Counts::is_empty)
    }

    fn bucket(&mut self, at: DateTime<Utc>, dims: &Dims) -> &mut Counts {
        self.buckets
            .entry(BucketKey {
                hour: hour_of(at),
                dims: dims.clone(),
            })
            .or_default()
    }

    /// Counts `n` of `counter` in the hour of `at`.
    pub fn count(&mut self, at: DateTime<Utc>, dims: &Dims, counter: Counter, n: u64) {
        if n > 0 {
            self.bucket(at, dims).add(counter, n);
        }
    }

    /// Records a response time of `seconds` in the hour of `at`.
    pub fn response(&mut self, at: DateTime<Utc>, dims: &Dims, which: Response, seconds: i64) {
        let counts = self.bucket(at, dims);
        match which {
            Response::First => counts.first_response.add(seconds),
            Response::Next => counts.next_response.add(seconds),
        }
    }

    /// Adds every increment of `other`.
    pub fn merge(&mut self, other: &Tally) {
        for (key, counts) in &other.buckets {
            self.buckets.entry(key.clone()).or_default().merge(counts);
        }
    }

    /// The buckets it adds to, in key order, empty ones left out.
    pub fn buckets(&self) -> impl Iterator<Item = (&BucketKey, &Counts)> {
        self.buckets.iter().filter(|(_, c)| !c.is_empty())
    }
}

/// What of a conversation decides what a change of it counts: taken before the change,
/// compared with the conversation after it by [`transition`].
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    waiting_since: Option<DateTime<Utc>>,
    answered_at: Option<DateTime<Utc>>,
    first_response_seconds: Option<i64>,
    due_at: Option<DateTime<Utc>>,
    case: u32,
    resolved: bool,
}

impl Snapshot {
    /// The snapshot of `c`.
    pub fn of(c: &Conversation) -> Self {
        Self {
            waiting_since: c.waiting_since,
            answered_at: c.answered_at,
            first_response_seconds: c.first_response_seconds,
            due_at: c.current_sla().map(|k| k.due_at),
            case: c.case.number,
            resolved: c.case.is_resolved(),
        }
    }
}

/// Counts what happened to a conversation between `before` and `after`: a wait ended by an
/// answer (its response time, and its SLA outcome when it was timed), a case resolved (and at
/// first contact), a timed wait ended by a resolution, a case reopened. Nothing when nothing of
/// that changed, so a change applied twice counts once.
pub fn transition(before: &Snapshot, after: &Conversation, tally: &mut Tally) {
    let dims = Dims::of_conversation(after);
    let mut wait_ended_at = None;
    if before.waiting_since.is_some()
        && let Some(at) = after.answered_at.filter(|a| Some(*a) != before.answered_at)
    {
        tally.count(at, &dims, Counter::Answered, 1);
        let which = if before.first_response_seconds.is_none() {
            Response::First
        } else {
            Response::Next
        };
        let seconds = after.last_response_seconds.unwrap_or_default();
        tally.response(at, &dims, which, seconds);
        wait_ended_at = Some(at);
    }
    if after.case.number > before.case {
        let at = after.case.opened_at.unwrap_or(after.last_at);
        tally.count(
            at,
            &dims,
            Counter::Reopened,
            u64::from(after.case.number - before.case),
        );
    } else if !before.resolved
        && let Some(at) = after.case.resolved_at
    {
        tally.count(at, &dims, Counter::Resolved, 1);
        if after.case.first_contact_resolution == Some(true) {
            tally.count(at, &dims, Counter::FirstContactResolved, 1);
        }
        if wait_ended_at.is_none() && before.waiting_since.is_some() {
            wait_ended_at = Some(at);
        }
    }
    if let (Some(at), Some(due)) = (wait_ended_at, before.due_at) {
        let outcome = if at <= due {
            Counter::SlaMet
        } else {
            Counter::SlaBreached
        };
        tally.count(at, &dims, outcome, 1);
    }
}

/// Counts a customer message scored for the first time: `messages_in`, `public_in`,
/// `complaints`, and `conversations_opened` when the conversation had never been prioritized
/// before (`first`). `conversation` is the conversation the message belongs to.
pub fn message_scored(
    tally: &mut Tally,
    conversation: &Conversation,
    message: &Message,
    score: &Score,
    first: bool,
) {
    let dims = Dims::of_message(message, score);
    let at = message.sent_at;
    tally.count(at, &dims, Counter::MessagesIn, 1);
    tally.count(at, &dims, Counter::PublicIn, u64::from(message.public));
    tally.count(at, &dims, Counter::Complaints, u64::from(score.complaint));
    if first {
        let opened = match conversation.case.number {
            1 => conversation.case.opened_at.unwrap_or(at),
            _ => at,
        };
        tally.count(opened, &dims, Counter::ConversationsOpened, 1);
    }
}

/// Applies `change` to `conversation` and answers what the change counts (its own tally and
/// the [`transition`] it made), or `None` when it changed nothing: what a store's
/// read-modify-write calls, so both backends count alike.
pub fn apply(
    conversation: &mut Conversation,
    change: &(dyn Fn(&mut Conversation, &mut Tally) -> bool + Send + Sync),
) -> Option<Tally> {
    let before = Snapshot::of(conversation);
    let mut tally = Tally::default();
    if !change(conversation, &mut tally) {
        return None;
    }
    transition(&before, conversation, &mut tally);
    Some(tally)
}

#[cfg(test)]
mod tests;
