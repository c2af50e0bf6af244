//! The domain events switchboard publishes, and how each is made.
//!
//! Each type has a JSON Schema at `docs/events/<type>.schema.json` describing its
//! [`DomainEvent::bus_detail`], and a section in `docs/events.md`. The test suites validate
//! every event they see published against its schema, so a field added here and not there
//! fails them.
//!
//! Ids are derived from what identifies the fact, never from the processing time, so a retry
//! publishes the same id and consumers drop the repeat.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::model::{Conversation, Message};
use crate::ports::DomainEvent;
use crate::sla::WatchedAccount;

/// The schema version of every type this build publishes.
pub const VERSION: u32 = 1;

/// A conversation's priority was set.
pub const PRIORITIZED: &str = "conversation.prioritized";
/// A customer message was received.
pub const MESSAGE_RECEIVED: &str = "message.received";
/// The brand answered a waiting customer.
pub const ANSWERED: &str = "conversation.answered";
/// An agent resolved a conversation's case.
pub const RESOLVED: &str = "conversation.resolved";
/// A customer message after a resolution opened the next case.
pub const REOPENED: &str = "conversation.reopened";
/// A conversation was assigned to an agent, or unassigned.
pub const ASSIGNED: &str = "conversation.assigned";
/// A reply was sent through switchboard.
pub const MESSAGE_SENT: &str = "message.sent";
/// A business account sent nothing for the configured time of business hours.
pub const CHANNEL_SILENT: &str = "channel.silent";
/// A silent business account sent again.
pub const CHANNEL_RESUMED: &str = "channel.resumed";

/// Every type published, each with its schema under `docs/events/`.
pub const TYPES: [&str; 12] = [
    PRIORITIZED,
    MESSAGE_RECEIVED,
    MESSAGE_SENT,
    ANSWERED,
    RESOLVED,
    REOPENED,
    ASSIGNED,
    "sla.warning",
    "sla.breached",
    "window.closing",
    CHANNEL_SILENT,
    CHANNEL_RESUMED,
];

/// How the brand's answer became known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnsweredVia {
    /// The channel's echo of a message the brand sent (Messenger, Instagram, page replies,
    /// the WhatsApp Business app).
    Echo,
    /// A WhatsApp status of a message switchboard never saw: sent by an API tool.
    Status,
    /// An agent tool said so (`POST /api/conversations/{id}/answered`).
    AgentTool,
    /// A reply sent through switchboard (`POST /api/conversations/{id}/reply`).
    Reply,
}

/// The fields every conversation event starts with.
fn about(conversation: &Conversation) -> serde_json::Map<String, Value> {
    let mut map = serde_json::Map::new();
    map.insert("conversation_id".into(), json!(conversation.id));
    map.insert("customer_id".into(), json!(conversation.customer_id));
    map.insert("channel".into(), json!(conversation.channel));
    map.insert("account_id".into(), json!(conversation.account_id));
    map.insert("case".into(), json!(conversation.case.number));
    map
}

fn with(conversation: &Conversation, fields: Value) -> Value {
    let mut map = about(conversation);
    if let Value::Object(extra) = fields {
        map.extend(extra);
    }
    Value::Object(map)
}

fn millis(at: DateTime<Utc>) -> String {
    at.timestamp_millis().to_string()
}

/// `message.received`: a customer message of `conversation`, as stored. Its text travels in
/// the event (integrations need it to open a ticket); ids come from the message.
pub fn message_received(
    conversation: &Conversation,
    message: &Message,
    now: DateTime<Utc>,
) -> DomainEvent {
    DomainEvent::new(
        MESSAGE_RECEIVED,
        VERSION,
        &[
            conversation.id.as_str(),
            message.provider_message_id.as_str(),
        ],
        now,
        with(
            conversation,
            json!({
                "provider_message_id": message.provider_message_id,
                "kind": message.kind.as_str(),
                "text": message.text,
                "sent_at": message.sent_at,
                "public": message.public,
            }),
        ),
    )
}

/// `message.sent`: a reply sent through switchboard, stored as `message` of `conversation`.
/// Its id comes from the provider's id of the message, so a repeat is the same event.
pub fn message_sent(
    conversation: &Conversation,
    message: &Message,
    now: DateTime<Utc>,
) -> DomainEvent {
    DomainEvent::new(
        MESSAGE_SENT,
        VERSION,
        &[
            conversation.id.as_str(),
            message.provider_message_id.as_str(),
        ],
        now,
        with(
            conversation,
            json!({
                "provider_message_id": message.provider_message_id,
                "kind": message.provider_type.as_deref().unwrap_or(message.kind.as_str()),
                "text": message.text,
                "sent_at": message.sent_at,
                "public": message.public,
                "reply_to": message.reply_to,
                "sent_by": message.raw.get("sent_by").and_then(Value::as_str),
                // The web channel's source delivers the reply itself: it needs its customer.
                "recipient": (message.channel == crate::channel::Channel::Web)
                    .then(|| message.customer.provider_user_id.as_str()),
            }),
        ),
    )
}

/// `conversation.answered`: the wait of `conversation` ended at its `answered_at`. `None`
/// when the conversation has no answer.
pub fn answered(
    conversation: &Conversation,
    via: AnsweredVia,
    now: DateTime<Utc>,
) -> Option<DomainEvent> {
    let at = conversation.answered_at?;
    Some(DomainEvent::new(
        ANSWERED,
        VERSION,
        &[conversation.id.as_str(), &millis(at)],
        now,
        with(
            conversation,
            json!({
                "answered_at": at,
                "via": via,
                "response_seconds": conversation.last_response_seconds,
                "first_response": conversation.first_response_seconds
                    == conversation.last_response_seconds,
            }),
        ),
    ))
}

/// `conversation.resolved`: the current case of `conversation` is resolved. `None` when it is
/// not.
pub fn resolved(conversation: &Conversation, now: DateTime<Utc>) -> Option<DomainEvent> {
    let case = &conversation.case;
    let at = case.resolved_at?;
    Some(DomainEvent::new(
        RESOLVED,
        VERSION,
        &[conversation.id.as_str(), &case.number.to_string()],
        now,
        with(
            conversation,
            json!({
                "resolved_at": at,
                "resolved_by": case.resolved_by,
                "first_contact_resolution": case.first_contact_resolution.unwrap_or(false),
                "replies": case.replies.len(),
                "first_response_seconds": conversation.first_response_seconds,
            }),
        ),
    ))
}

/// `conversation.reopened`: a customer message opened case `conversation.case.number`.
pub fn reopened(conversation: &Conversation, now: DateTime<Utc>) -> DomainEvent {
    DomainEvent::new(
        REOPENED,
        VERSION,
        &[
            conversation.id.as_str(),
            &conversation.case.number.to_string(),
        ],
        now,
        with(
            conversation,
            json!({ "opened_at": conversation.case.opened_at }),
        ),
    )
}

/// `conversation.assigned`: `by` assigned the conversation to its `assignee` (or to nobody).
pub fn assigned(conversation: &Conversation, by: &str, now: DateTime<Utc>) -> DomainEvent {
    let at = conversation.assigned_at.unwrap_or(now);
    DomainEvent::new(
        ASSIGNED,
        VERSION,
        &[
            conversation.id.as_str(),
            conversation.assignee.as_deref().unwrap_or(""),
            &millis(at),
        ],
        now,
        with(
            conversation,
            json!({
                "assignee": conversation.assignee,
                "assigned_by": by,
                "assigned_at": at,
            }),
        ),
    )
}

/// `channel.silent`: `account` sent nothing since `last_heard_at`, for `silent_after_seconds`
/// of business hours, up to `silent_since`. One per silence (its id comes from the last
/// delivery heard).
pub fn channel_silent(
    account: &WatchedAccount,
    last_heard_at: DateTime<Utc>,
    silent_since: DateTime<Utc>,
    silent_after_seconds: i64,
    now: DateTime<Utc>,
) -> DomainEvent {
    DomainEvent::new(
        CHANNEL_SILENT,
        VERSION,
        &[
            account.channel.as_str(),
            account.account_id.as_str(),
            &millis(last_heard_at),
        ],
        now,
        json!({
            "channel": account.channel,
            "account_id": account.account_id,
            "last_heard_at": last_heard_at,
            "silent_since": silent_since,
            "silent_after_seconds": silent_after_seconds,
        }),
    )
}

/// `channel.resumed`: `account`, silent since `silent_since`, sent again at `resumed_at`.
pub fn channel_resumed(
    account: &WatchedAccount,
    silent_since: DateTime<Utc>,
    resumed_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> DomainEvent {
    DomainEvent::new(
        CHANNEL_RESUMED,
        VERSION,
        &[
            account.channel.as_str(),
            account.account_id.as_str(),
            &millis(silent_since),
        ],
        now,
        json!({
            "channel": account.channel,
            "account_id": account.account_id,
            "silent_since": silent_since,
            "resumed_at": resumed_at,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Direction, text_message};
    use chrono::TimeZone;

    #[test]
    fn every_event_names_its_conversation_and_case_and_repeats_its_id() {
        let record = text_message("5511", "in1", Direction::Inbound, 100, "hi");
        let mut c = Conversation::from_record(&record).unwrap();
        let now = Utc.timestamp_opt(1000, 0).unwrap();
        let later = Utc.timestamp_opt(2000, 0).unwrap();
        c.reply("out1", Utc.timestamp_opt(160, 0).unwrap());
        c.resolve(Utc.timestamp_opt(200, 0).unwrap(), "ana");
        let events = [
            answered(&c, AnsweredVia::Echo, now).unwrap(),
            resolved(&c, now).unwrap(),
            reopened(&c, now),
            assigned(&c, "ana", now),
        ];
        for e in &events {
            assert!(TYPES.contains(&e.kind.as_str()), "{}", e.kind);
            assert_eq!(e.version, VERSION);
            let detail = e.bus_detail();
            assert_eq!(detail["conversation_id"], json!(c.id));
            assert_eq!(detail["case"], json!(1));
            assert_eq!(detail["event_id"], json!(e.id));
        }
        assert_eq!(resolved(&c, later).unwrap().id, events[1].id);
        assert_eq!(events[1].detail["first_contact_resolution"], json!(true));
        assert_eq!(events[0].detail["response_seconds"], json!(60));
    }
}
