//! The timer plan: which reminders to create and which to cancel when a conversation changes,
//! as a pure function of the conversation before and after.
//!
//! A conversation records the names of its reminders: its SLA clock's (warning, breach) and
//! its messaging window's. A reminder is **live** while what it watches still runs: the clock's
//! while it is the clock of the current wait ([`Conversation::current_sla`]), the window's
//! while the customer waits. Every recorded name that is not live after the change is
//! cancelled; the reminders made for the change are created (creating is idempotent by name).
//! The prioritizer (a new wait, a higher level, a later customer message) and the answers (a
//! wait that ended) use the same plan.

use crate::metrics::Tally;
use crate::model::Conversation;
use crate::sla::Reminder;

/// What to do with a conversation's reminders.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TimerPlan {
    /// Reminders to create.
    pub schedule: Vec<Reminder>,
    /// Names of reminders to delete.
    pub cancel: Vec<String>,
}

impl TimerPlan {
    /// Nothing to create or cancel.
    pub fn is_empty(&self) -> bool {
        self.schedule.is_empty() && self.cancel.is_empty()
    }
}

/// Every reminder name recorded on `c`.
fn recorded(c: &Conversation) -> impl Iterator<Item = &String> {
    c.sla
        .iter()
        .flat_map(|k| k.reminders.iter())
        .chain(c.window_reminder.iter())
}

/// Whether the reminder `name` recorded on `c` still watches something that runs.
fn is_live(c: &Conversation, name: &str) -> bool {
    let clock = c
        .current_sla()
        .is_some_and(|k| k.reminders.iter().any(|r| r == name));
    let window = c.waiting_since.is_some() && c.window_reminder.as_deref() == Some(name);
    clock || window
}

/// The plan from `before` to `after` (the conversation as it will be written, with the names
/// of its new reminders recorded), creating `created`.
pub fn plan(before: &Conversation, after: &Conversation, created: Vec<Reminder>) -> TimerPlan {
    let mut cancel: Vec<String> = Vec::new();
    for name in recorded(before).chain(recorded(after)) {
        if !is_live(after, name) && !cancel.contains(name) {
            cancel.push(name.clone());
        }
    }
    TimerPlan {
        schedule: created,
        cancel,
    }
}

/// Forgets on `c` the reminder names that are no longer live (after their cancellation
/// succeeded); answers whether anything changed. A [`ConversationChange`] that counts nothing.
///
/// [`ConversationChange`]: crate::ports::ConversationChange
pub fn forget_ended(c: &mut Conversation, _: &mut Tally) -> bool {
    let mut changed = false;
    if c.current_sla().is_none()
        && let Some(clock) = &mut c.sla
        && !clock.reminders.is_empty()
    {
        clock.reminders.clear();
        changed = true;
    }
    if c.waiting_since.is_none() && c.window_reminder.take().is_some() {
        changed = true;
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::Channel;
    use crate::ids::{ConversationId, CustomerId, ProviderId};
    use crate::model::CustomerIdentity;
    use crate::priority::Priority;
    use crate::sla::{SlaClock, Wait};
    use chrono::{DateTime, TimeZone, Utc};

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(s, 0).unwrap()
    }

    fn clock(since: i64, names: &[&str]) -> SlaClock {
        SlaClock {
            wait_since: t(since),
            wait: Wait::First,
            priority: Priority::P3,
            team: "support".into(),
            target_seconds: 3600,
            warn_at: t(since + 2700),
            due_at: t(since + 3600),
            reminders: names.iter().map(|n| n.to_string()).collect(),
            breached_at: None,
        }
    }

    fn conversation(
        waiting: Option<i64>,
        sla: Option<SlaClock>,
        window: Option<&str>,
    ) -> Conversation {
        let identity = CustomerIdentity {
            customer_id: CustomerId::from_stored("cu_1"),
            channel: Channel::Whatsapp,
            provider_user_id: ProviderId::from("5511"),
            display_name: None,
            identifiers: Vec::new(),
        };
        Conversation {
            id: ConversationId::from_stored("cv_1"),
            channel: Channel::Whatsapp,
            account_id: ProviderId::from("PN"),
            customer_id: identity.customer_id.clone(),
            customer: identity,
            first_at: t(0),
            last_at: t(0),
            last_inbound_at: waiting.map(t),
            last_outbound_at: None,
            waiting_since: waiting.map(t),
            answered_at: None,
            first_response_seconds: None,
            last_response_seconds: None,
            sla,
            window_reminder: window.map(str::to_owned),
            priority: None,
            sla_breaches: 0,
            case: Default::default(),
            assignee: None,
            assigned_at: None,
            statuses: Vec::new(),
            preview: None,
            contacts: Default::default(),
        }
    }

    #[test]
    fn an_ended_wait_cancels_its_clock_and_window_and_forgets_them() {
        let mut c = conversation(None, Some(clock(100, &["warn", "breach"])), Some("win"));
        let plan = plan(&c, &c, Vec::new());
        assert_eq!(plan.cancel, ["warn", "breach", "win"]);
        assert!(forget_ended(&mut c, &mut Tally::default()));
        assert!(
            !forget_ended(&mut c, &mut Tally::default()),
            "forgotten once"
        );
        assert_eq!(super::plan(&c, &c, Vec::new()), TimerPlan::default());
    }

    #[test]
    fn a_running_wait_keeps_its_reminders() {
        let c = conversation(
            Some(100),
            Some(clock(100, &["warn", "breach"])),
            Some("win"),
        );
        assert!(plan(&c, &c, Vec::new()).is_empty());
    }

    #[test]
    fn a_moved_clock_or_window_cancels_the_old_names_only() {
        let before = conversation(Some(100), Some(clock(100, &["w1", "b1"])), Some("win1"));
        let after = conversation(Some(100), Some(clock(100, &["w2", "b2"])), Some("win2"));
        let plan = plan(&before, &after, Vec::new());
        assert_eq!(plan.cancel, ["w1", "b1", "win1"]);
        // A clock of an earlier wait still recorded is cancelled too.
        let stale = conversation(Some(900), Some(clock(100, &["w1", "b1"])), Some("win1"));
        assert_eq!(super::plan(&stale, &stale, Vec::new()).cancel, ["w1", "b1"]);
    }
}
