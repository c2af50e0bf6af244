//! The customer's history as counters, kept up to date as messages are prioritized, so that
//! scoring a message costs the same for a customer who wrote ten times as for one who wrote
//! ten thousand times.
//!
//! Two small structures hold it:
//!
//! * on each conversation, [`Contacts`]: its customer messages counted by the hour they were
//!   sent in, over the last seven days (at most 169 hours). The prioritizer adds a message in
//!   the same write that marks it scored, so a message counts once however often its queue
//!   entry is delivered;
//! * for each identity, its [`Activity`]: the conversations it wrote in and when it last did
//!   (noted at most once a day per conversation, forgotten after the look-back window, at most
//!   [`ACTIVITY_KEPT`] of them). A customer's conversations are those of its identities, so a
//!   link or an unlink moves nothing.
//!
//! From these the prioritizer derives the history signals with a fixed number of reads: the
//! surviving customer, its identities' activity, and the conversations it names.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{ConversationId, CustomerId};

/// One hour's count of customer messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourCount {
    /// The hour, in hours since the Unix epoch (provider time).
    pub hour: i64,
    /// The customer messages sent in it.
    pub n: u32,
}

/// The hours a conversation's contacts are kept for: seven days and the hour in progress.
pub const CONTACT_HOURS: i64 = 7 * 24 + 1;

/// A conversation's customer messages counted by the hour they were sent in, the oldest hour
/// first, over the [`CONTACT_HOURS`] up to the latest hour counted. Counting by the hour makes
/// the 24-hour and 7-day counts exact to the hour: a message up to an hour older than the
/// window may count in it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Contacts(Vec<HourCount>);

fn hour_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(3600)
}

impl Contacts {
    /// Nothing counted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The hours counted, the oldest first.
    pub fn hours(&self) -> &[HourCount] {
        &self.0
    }

    /// Counts a customer message sent at `at`. Hours more than [`CONTACT_HOURS`] before the
    /// latest one are dropped (a message that old, arriving late, is not counted).
    pub fn count(&mut self, at: DateTime<Utc>) {
        let hour = hour_of(at);
        let latest = self.0.last().map_or(hour, |h| h.hour.max(hour));
        if hour <= latest - CONTACT_HOURS {
            return;
        }
        match self.0.binary_search_by_key(&hour, |h| h.hour) {
            Ok(i) => self.0[i].n = self.0[i].n.saturating_add(1),
            Err(i) => self.0.insert(i, HourCount { hour, n: 1 }),
        }
        let keep_from = latest - CONTACT_HOURS + 1;
        let stale = self.0.partition_point(|h| h.hour < keep_from);
        self.0.drain(..stale);
    }

    /// The messages counted in the hours from the one holding `from` to the one holding
    /// `until`, both included.
    pub fn between(&self, from: DateTime<Utc>, until: DateTime<Utc>) -> u32 {
        let (from, until) = (hour_of(from), hour_of(until));
        self.0
            .iter()
            .filter(|h| h.hour >= from && h.hour <= until)
            .fold(0u32, |sum, h| sum.saturating_add(h.n))
    }
}

/// The most conversations an identity's [`Activity`] names: the most recent are kept. A
/// customer in more conversations than this within the look-back window (a commenter under
/// hundreds of posts) has its history read from the most recent ones.
pub const ACTIVITY_KEPT: usize = 200;

/// How stale a noted time may get before the prioritizer notes the conversation again: the
/// look-back window is counted in days, so once a day is enough.
pub const ACTIVITY_REFRESH: Duration = Duration::days(1);

/// That an identity wrote in a conversation, and when it last did as far as noted (at most
/// [`ACTIVITY_REFRESH`] behind).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activity {
    /// The identity (its own customer id, never the one it was merged into).
    pub identity: CustomerId,
    /// The conversation.
    pub conversation: ConversationId,
    /// The provider time of its latest customer message noted.
    pub at: DateTime<Utc>,
}

/// What to note of one identity's activity after a message of it, sent at `at` in
/// `conversation`: the conversation at the message's time, and the conversations to forget
/// (noted more than [`ACTIVITY_REFRESH`] before `since`, the start of the look-back window, or
/// beyond [`ACTIVITY_KEPT`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityNote {
    /// The conversation to note.
    pub conversation: ConversationId,
    /// The time to note: the message's, or the later one noted before.
    pub at: DateTime<Utc>,
    /// The conversations to forget (never `conversation`).
    pub forget: Vec<ConversationId>,
    /// The identity had nothing noted: this note is its first.
    pub first: bool,
}

impl ActivityNote {
    /// The note to write, from the identity's activity as read (`known`: its entries only);
    /// `None` when what is noted is recent enough.
    pub fn after(
        known: &[&Activity],
        conversation: &ConversationId,
        at: DateTime<Utc>,
        since: DateTime<Utc>,
    ) -> Option<Self> {
        let current = known.iter().find(|a| &a.conversation == conversation);
        if current.is_some_and(|a| a.at + ACTIVITY_REFRESH > at) {
            return None;
        }
        let mut others: Vec<&&Activity> = known
            .iter()
            .filter(|a| &a.conversation != conversation)
            .collect();
        // The most recent first; those past the window or the cap are forgotten.
        others.sort_by(|a, b| {
            b.at.cmp(&a.at)
                .then_with(|| a.conversation.cmp(&b.conversation))
        });
        let forget = others
            .iter()
            .enumerate()
            .filter(|(i, a)| a.at + ACTIVITY_REFRESH < since || *i + 1 >= ACTIVITY_KEPT)
            .map(|(_, a)| a.conversation.clone())
            .collect();
        Some(Self {
            conversation: conversation.clone(),
            at: current.map_or(at, |a| a.at.max(at)),
            forget,
            first: known.is_empty(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(hours: i64, minutes: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_795_000_000 / 3600 * 3600, 0).unwrap()
            + Duration::hours(hours)
            + Duration::minutes(minutes)
    }

    #[test]
    fn contacts_count_by_the_hour_and_sum_over_a_window() {
        let mut c = Contacts::default();
        for (h, m) in [(0, 5), (0, 50), (3, 0), (30, 10), (47, 59)] {
            c.count(t(h, m));
        }
        assert_eq!(c.hours().len(), 4);
        assert_eq!(c.between(t(0, 0), t(47, 0)), 5);
        assert_eq!(c.between(t(24, 0), t(48, 0)), 2);
        assert_eq!(
            c.between(t(3, 30), t(30, 0)),
            2,
            "the hours holding both ends count"
        );
        assert_eq!(c.between(t(48, 0), t(100, 0)), 0);
    }

    #[test]
    fn contacts_keep_seven_days_and_ignore_older_arrivals() {
        let mut c = Contacts::default();
        for h in 0..1_000 {
            c.count(t(h, 0));
            c.count(t(h, 30));
        }
        assert_eq!(c.hours().len() as i64, CONTACT_HOURS);
        assert_eq!(c.hours()[0].hour + CONTACT_HOURS - 1, c.hours()[168].hour);
        assert_eq!(c.between(t(999 - 23, 0), t(999, 0)), 48);
        let before = c.clone();
        c.count(t(999 - CONTACT_HOURS, 0));
        assert_eq!(
            c, before,
            "a message older than the kept hours is not counted"
        );
        c.count(t(999 - CONTACT_HOURS + 1, 0));
        assert_eq!(c.between(t(0, 0), t(999, 0)), 2 * CONTACT_HOURS as u32 + 1);
    }

    #[test]
    fn a_serialized_count_reads_back() {
        let mut c = Contacts::default();
        c.count(t(1, 0));
        c.count(t(1, 1));
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, format!(r#"[{{"hour":{},"n":2}}]"#, hour_of(t(1, 0))));
        assert_eq!(serde_json::from_str::<Contacts>(&json).unwrap(), c);
    }

    fn activity(conversation: &str, at: DateTime<Utc>) -> Activity {
        Activity {
            identity: CustomerId::from_stored("u"),
            conversation: ConversationId::from_stored(conversation),
            at,
        }
    }

    #[test]
    fn a_conversation_is_noted_when_new_or_a_day_stale_and_old_ones_are_forgotten() {
        let since = t(0, 0);
        let fresh = activity("c1", t(100, 0));
        let old = activity("c2", t(-25, 0));
        let known = [&fresh, &old];
        let c1 = ConversationId::from_stored("c1");
        let c3 = ConversationId::from_stored("c3");

        assert_eq!(ActivityNote::after(&known, &c1, t(110, 0), since), None);
        let stale = ActivityNote::after(&known, &c1, t(124, 0), since).unwrap();
        assert_eq!((&stale.conversation, stale.at), (&c1, t(124, 0)));
        assert_eq!(stale.forget, [ConversationId::from_stored("c2")]);
        assert!(!stale.first);
        let new = ActivityNote::after(&known, &c3, t(101, 0), since).unwrap();
        assert_eq!((&new.conversation, new.at), (&c3, t(101, 0)));
        assert_eq!(new.forget, [ConversationId::from_stored("c2")]);
        let first = ActivityNote::after(&[], &c3, t(101, 0), since).unwrap();
        assert!(first.first && first.forget.is_empty());
        // A message older than the time noted keeps the later time.
        let late = ActivityNote::after(&[&activity("c1", t(200, 0))], &c1, t(100, 0), since);
        assert_eq!(late, None);
    }

    #[test]
    fn an_identity_names_at_most_the_kept_number_of_conversations() {
        let many: Vec<Activity> = (0..ACTIVITY_KEPT + 5)
            .map(|i| activity(&format!("c{i:04}"), t(i as i64, 0)))
            .collect();
        let known: Vec<&Activity> = many.iter().collect();
        let note = ActivityNote::after(
            &known,
            &ConversationId::from_stored("new"),
            t(900, 0),
            t(0, 0),
        )
        .unwrap();
        assert_eq!(note.forget.len(), 6, "{:?}", note.forget);
        assert!(note.forget.contains(&ConversationId::from_stored("c0000")));
        assert!(!note.forget.contains(&ConversationId::from_stored("c0204")));
        assert_eq!(known.len() + 1 - note.forget.len(), ACTIVITY_KEPT);
    }
}
