//! Reminders: the one-time timers of a wait (a warning before the breach, the breach), of
//! the messaging window (closing soon), and of a business account's silence (is it still
//! sending?), and their deterministic names.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{SlaClock, WindowClosing};
use crate::channel::Channel;
use crate::ids::{ConversationId, ProviderId};

/// What a reminder is for; also the type of the event it publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReminderKind {
    /// The wait is about to breach its target.
    #[serde(rename = "sla.warning")]
    Warning,
    /// The wait breached its target.
    #[serde(rename = "sla.breached")]
    Breach,
    /// The messaging window of the channel closes soon and nobody answered.
    #[serde(rename = "window.closing")]
    WindowClosing,
    /// Time to look whether a business account still sends (it may publish `channel.silent`;
    /// see [`crate::watch`]).
    #[serde(rename = "channel.check")]
    ChannelCheck,
}

impl ReminderKind {
    /// The event type: `sla.warning`, `sla.breached`, `window.closing` (`channel.check`
    /// publishes `channel.silent` when the account is silent).
    pub fn event_type(self) -> &'static str {
        match self {
            ReminderKind::Warning => "sla.warning",
            ReminderKind::Breach => "sla.breached",
            ReminderKind::WindowClosing => "window.closing",
            ReminderKind::ChannelCheck => "channel.check",
        }
    }

    fn short(self) -> &'static str {
        match self {
            ReminderKind::Warning => "warn",
            ReminderKind::Breach => "breach",
            ReminderKind::WindowClosing => "window",
            ReminderKind::ChannelCheck => "check",
        }
    }
}

/// A one-time timer, and the message it delivers when it fires (as JSON).
///
/// The name is derived from the conversation, the kind and the time it fires, so creating
/// the same reminder twice is creating one (an EventBridge Scheduler schedule name: at most 64
/// characters of `[0-9a-zA-Z-_.]`). What it carries is enough to tell, when it fires, whether
/// it still applies: the wait it was set for, and the due time it warns about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reminder {
    /// Deterministic name.
    pub name: String,
    /// What for.
    pub kind: ReminderKind,
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The start of the wait (for the window: the customer's last message).
    pub wait_since: DateTime<Utc>,
    /// The breach time (for the window: when it closes).
    pub due_at: DateTime<Utc>,
    /// When it fires.
    pub fire_at: DateTime<Utc>,
    /// The business account a [`ReminderKind::ChannelCheck`] watches (its `conversation_id`
    /// is the account's watch id then, [`watch_id`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<WatchedAccount>,
}

/// A business account on a channel: what a channel check watches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WatchedAccount {
    /// The channel.
    pub channel: Channel,
    /// The account (a WhatsApp phone number id, a page id, an Instagram account id).
    pub account_id: ProviderId,
}

/// The id a channel check of `account` carries in place of a conversation (`cw_` and a hash):
/// the queue keeps one account's checks in order, as it does a conversation's reminders.
pub fn watch_id(account: &WatchedAccount) -> ConversationId {
    let text = format!("{}\u{1f}{}", account.channel.as_str(), account.account_id);
    ConversationId::from_stored(format!("cw_{}", crate::ids::short_hash(text.as_bytes())))
}

impl Reminder {
    /// A reminder, named from what it is.
    pub fn new(
        kind: ReminderKind,
        conversation_id: &ConversationId,
        wait_since: DateTime<Utc>,
        due_at: DateTime<Utc>,
        fire_at: DateTime<Utc>,
    ) -> Self {
        let mut h = Sha256::new();
        for part in [
            conversation_id.as_str().as_bytes(),
            kind.short().as_bytes(),
            &fire_at.timestamp_millis().to_be_bytes(),
            &due_at.timestamp_millis().to_be_bytes(),
        ] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part);
        }
        let digest = h.finalize();
        Self {
            name: format!("sb-{}-{}", kind.short(), hex::encode(&digest[..20])),
            kind,
            conversation_id: conversation_id.clone(),
            wait_since,
            due_at,
            fire_at,
            account: None,
        }
    }

    /// The check of `account`'s silence, last heard at `heard_at`, due (silent) at `due_at`.
    pub fn channel_check(
        account: &WatchedAccount,
        heard_at: DateTime<Utc>,
        due_at: DateTime<Utc>,
    ) -> Self {
        Self {
            account: Some(account.clone()),
            ..Self::new(
                ReminderKind::ChannelCheck,
                &watch_id(account),
                heard_at,
                due_at,
                due_at,
            )
        }
    }

    /// The warning and the breach of a wait's clock.
    pub fn of_clock(conversation_id: &ConversationId, clock: &SlaClock) -> [Self; 2] {
        [
            Self::new(
                ReminderKind::Warning,
                conversation_id,
                clock.wait_since,
                clock.due_at,
                clock.warn_at,
            ),
            Self::new(
                ReminderKind::Breach,
                conversation_id,
                clock.wait_since,
                clock.due_at,
                clock.due_at,
            ),
        ]
    }

    /// The window-closing warning after the customer's last message at `last_inbound`.
    pub fn of_window(
        conversation_id: &ConversationId,
        last_inbound: DateTime<Utc>,
        window: &WindowClosing,
    ) -> Self {
        Self::new(
            ReminderKind::WindowClosing,
            conversation_id,
            last_inbound,
            window.closes_at,
            window.warn_at,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn names_are_deterministic_short_and_scheduler_safe() {
        let c = ConversationId::from_stored("cv_0123456789abcdef0123456789abcdef");
        let t = Utc.timestamp_opt(1_795_000_000, 0).unwrap();
        let a = Reminder::new(ReminderKind::Breach, &c, t, t, t);
        let b = Reminder::new(ReminderKind::Breach, &c, t, t, t);
        assert_eq!(a.name, b.name);
        assert!(a.name.len() <= 64, "{}", a.name);
        assert!(
            a.name
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch))
        );
        let later = Reminder::new(
            ReminderKind::Breach,
            &c,
            t,
            t,
            t + chrono::Duration::minutes(1),
        );
        let warning = Reminder::new(ReminderKind::Warning, &c, t, t, t);
        assert_ne!(a.name, later.name);
        assert_ne!(a.name, warning.name);
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(json["kind"], "sla.breached");
        assert_eq!(serde_json::from_value::<Reminder>(json).unwrap(), a);
    }
}
