//! The normalized model: one schema for every channel.
//!
//! A provider delivery (one webhook POST) is normalized into [`Record`]s. A record is one of
//! three things:
//!
//! * a [`Message`]: something a customer sent to the brand (inbound) or the brand sent to a
//!   customer (outbound, seen through the provider's echo);
//! * an [`Event`]: something that happened *to another message* (a delivery status, a reaction,
//!   an edit, a deletion) and refers to it by its provider id;
//! * a [`Notification`]: anything the provider sends that is not about a conversation (account
//!   updates, template reviews, user preferences) or that nobody understands yet. It is kept with
//!   its raw JSON, never dropped.
//!
//! Ids and timestamps are kept exactly as the provider sent them ([`ProviderId`],
//! `provider_timestamp`); the parsed time used for ordering is [`Message::sent_at`].

use crate::case::{Case, CaseStatus, Inbound};
pub use crate::channel::{Channel, UnknownChannel, Webhook};
pub use crate::identifier::{Identifier, IdentifierKind};
pub use crate::ids::ProviderId;
use crate::ids::{ConversationId, CustomerId, RecordKey};
use crate::priority::ConversationPriority;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Whether a message went from the customer to the brand or from the brand to the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Sent by the customer, received by the brand.
    Inbound,
    /// Sent by the brand (an agent, a bot or the business app), seen through an echo.
    Outbound,
}

/// The customer on the other side of a conversation, as one channel identifies them.
///
/// `provider_user_id` is the channel's own id for the person (a WhatsApp number or business-scoped
/// user id, a page-scoped id, …). It is personal data: it is stored, never logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CustomerIdentity {
    /// Deterministic id of this identity, safe to log.
    pub customer_id: CustomerId,
    /// The channel the identity belongs to.
    pub channel: Channel,
    /// The provider's id of the person on that channel.
    pub provider_user_id: ProviderId,
    /// The name the person shows on the channel, when the provider sends one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// What else identifies the person across channels, as this channel saw it: the e-mail
    /// address of an e-mail, the phone number of a WhatsApp id, a web form's `customer.email`
    /// and `customer.phone`, handles. Strong ones link identities automatically
    /// ([`crate::identifier`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifiers: Vec<Identifier>,
}

/// What a message is. Providers' own type names are kept in [`Message::provider_type`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// Plain text.
    Text,
    /// A picture (attachment reference).
    Image,
    /// An audio file or voice note.
    Audio,
    /// A video.
    Video,
    /// A document or file.
    Document,
    /// A sticker.
    Sticker,
    /// A location pin.
    Location,
    /// One or more contact cards.
    Contacts,
    /// A reply to an interactive element: button, list, flow.
    Interactive,
    /// A press of a template quick-reply button.
    Button,
    /// A product order.
    Order,
    /// A call started or received on the channel.
    Call,
    /// A system message about the customer (number or identity changed).
    System,
    /// A public comment (or a reply to one) on a post, photo, video or reel.
    Comment,
    /// A public mention of the brand in someone's post, comment or story.
    Mention,
    /// A press of a button the brand sent (Messenger/Instagram postback).
    Postback,
    /// A story of the customer's that mentions the brand.
    StoryMention,
    /// A shared post, reel or link.
    Share,
    /// A kind nobody knows yet, or one the provider itself could not render; the raw JSON is kept.
    Unsupported,
}

impl MessageKind {
    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Text => "text",
            MessageKind::Image => "image",
            MessageKind::Audio => "audio",
            MessageKind::Video => "video",
            MessageKind::Document => "document",
            MessageKind::Sticker => "sticker",
            MessageKind::Location => "location",
            MessageKind::Contacts => "contacts",
            MessageKind::Interactive => "interactive",
            MessageKind::Button => "button",
            MessageKind::Order => "order",
            MessageKind::Call => "call",
            MessageKind::System => "system",
            MessageKind::Comment => "comment",
            MessageKind::Mention => "mention",
            MessageKind::Postback => "postback",
            MessageKind::StoryMention => "story_mention",
            MessageKind::Share => "share",
            MessageKind::Unsupported => "unsupported",
        }
    }
}

/// A reference to media the provider holds. switchboard stores the reference, not the bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attachment {
    /// `image`, `audio`, `video`, `document`, `sticker`, … as the provider names it.
    pub kind: String,
    /// The provider's media id, to fetch the bytes through its API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_id: Option<String>,
    /// A URL the provider gave for the media, when it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// MIME type, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// SHA-256 of the media as the provider reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The file name of a document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
}

/// A message of a conversation, inbound or outbound.
///
/// Identity: `(channel, account_id, provider_message_id)`; [`Record::key`] derives the storage
/// key from it, so a provider retry of the same message is the same record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// The channel it arrived on.
    pub channel: Channel,
    /// The business account it arrived on (WhatsApp `phone_number_id`, a page id, …).
    pub account_id: ProviderId,
    /// The provider's id of the message, exactly as sent.
    pub provider_message_id: ProviderId,
    /// The conversation it belongs to: this customer with this business account on this channel.
    pub conversation_id: ConversationId,
    /// The customer of the conversation (the sender of an inbound message, the recipient of an
    /// outbound one).
    pub customer: CustomerIdentity,
    /// Who sent it.
    pub direction: Direction,
    /// What it is.
    pub kind: MessageKind,
    /// The provider's own type name (`text`, `interactive`, `nfm_reply`, `some_new_type`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_type: Option<String>,
    /// The text of the message, its caption, or the title of the option chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Media referenced by the message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// The provider's time of the message, or the time switchboard received it when the provider
    /// sent none that could be read (then `sent_at_estimated` is true).
    pub sent_at: DateTime<Utc>,
    /// True when `sent_at` is the receive time, not the provider's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sent_at_estimated: bool,
    /// The timestamp exactly as the provider sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_timestamp: Option<String>,
    /// The provider id of the message this one replies to or quotes (for a reply to a comment,
    /// the parent comment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<ProviderId>,
    /// True when everyone can read it (a comment, a mention): a complaint in public weighs more.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub public: bool,
    /// The post, photo, video or story the message belongs to (comments, mentions, story
    /// replies), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<ProviderId>,
    /// The raw JSON of the item as the provider sent it.
    pub raw: Value,
    /// Where the message as received is kept apart from the store, when it is: the mail
    /// bucket's `s3://<bucket>/inbound/…` object SES wrote. An erasure deletes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// The delivery state of an outbound message, as the provider reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Accepted by the provider.
    Sent,
    /// Delivered to the customer's device.
    Delivered,
    /// Read by the customer.
    Read,
    /// A voice message played.
    Played,
    /// Not delivered; see the errors.
    Failed,
    /// A status value nobody knows yet, kept as sent.
    Other(String),
}

impl DeliveryStatus {
    /// Parses the provider's status word.
    pub fn parse(s: &str) -> Self {
        match s {
            "sent" => Self::Sent,
            "delivered" => Self::Delivered,
            "read" => Self::Read,
            "played" => Self::Played,
            "failed" => Self::Failed,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The status word.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Played => "played",
            Self::Failed => "failed",
            Self::Other(s) => s,
        }
    }
}

/// An error a provider attached to a status or a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProviderError {
    /// The provider's error code, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// The provider's title or message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Further detail, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
}

/// What happened to the message an [`Event`] refers to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// A delivery status of an outbound message.
    Status {
        /// The new status.
        status: DeliveryStatus,
        /// Errors, for a failed delivery.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        errors: Vec<ProviderError>,
    },
    /// A reaction added (`emoji` set) or removed (`emoji` none).
    Reaction {
        /// The emoji, or none when the reaction was removed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        emoji: Option<String>,
    },
    /// The message was edited; the new text when there is one.
    Edit {
        /// The new text or caption.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    /// The message was deleted (revoked, unsent, a comment removed).
    Delete,
    /// A public comment was hidden (`hidden: true`) or shown again by the page.
    Hide {
        /// Hidden now.
        hidden: bool,
    },
    /// A call's state changed (terminated, ringing, …).
    Call {
        /// The provider's word for the new state.
        state: String,
    },
}

impl EventKind {
    /// A short name: `status.read`, `reaction`, `edit`, `delete`, `call.terminate`.
    pub fn name(&self) -> String {
        match self {
            EventKind::Status { status, .. } => format!("status.{}", status.as_str()),
            EventKind::Reaction { emoji: Some(_) } => "reaction".into(),
            EventKind::Reaction { emoji: None } => "reaction.removed".into(),
            EventKind::Edit { .. } => "edit".into(),
            EventKind::Delete => "delete".into(),
            EventKind::Hide { hidden: true } => "hide".into(),
            EventKind::Hide { hidden: false } => "unhide".into(),
            EventKind::Call { state } => format!("call.{state}"),
        }
    }
}

/// Something that happened to another message, which it names by provider id (`refers_to`).
///
/// Identity: `(channel, account_id, event_id)`. `event_id` is the provider's own id of the event
/// when it has one (a reaction's or an edit's wamid), otherwise derived from what identifies it
/// (a status is `<message id>:<status>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The channel it arrived on.
    pub channel: Channel,
    /// The business account it arrived on.
    pub account_id: ProviderId,
    /// The id of the event (see the type's docs).
    pub event_id: ProviderId,
    /// The provider id of the message it refers to.
    pub refers_to: ProviderId,
    /// The conversation of the message it refers to.
    pub conversation_id: ConversationId,
    /// The customer of that conversation.
    pub customer: CustomerIdentity,
    /// Who caused it: the customer (inbound) or the brand (outbound).
    pub direction: Direction,
    /// What happened.
    pub kind: EventKind,
    /// The provider's time of the event, or the receive time (then `occurred_at_estimated`).
    pub occurred_at: DateTime<Utc>,
    /// True when `occurred_at` is the receive time, not the provider's.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub occurred_at_estimated: bool,
    /// The timestamp exactly as the provider sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_timestamp: Option<String>,
    /// True when, at intake, no message with the `refers_to` id had been seen: a status for a
    /// message sent outside switchboard's view, or a sign of a lost delivery. Kept all the same.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refers_to_unknown: bool,
    /// The raw JSON of the item as the provider sent it.
    pub raw: Value,
}

/// A delivery item that is not about a conversation, or not understood: kept, never dropped.
///
/// Identity: `(channel, account_id, notification_id)`, where `notification_id` is derived from
/// the item's raw JSON, so a retried delivery yields the same notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// The channel it arrived on.
    pub channel: Channel,
    /// The business account it concerns, when the provider names one.
    pub account_id: ProviderId,
    /// Derived id (see the type's docs).
    pub notification_id: ProviderId,
    /// What the provider called it (`account_update`, `message_template_status_update`, …), or
    /// `unsupported` for a shape nobody knows.
    pub topic: String,
    /// The provider's time, or the receive time.
    pub occurred_at: DateTime<Utc>,
    /// The raw JSON of the item as the provider sent it.
    pub raw: Value,
}

/// One normalized item of a delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    /// A conversation message.
    Message(Message),
    /// An event referring to another message.
    Event(Event),
    /// Anything else, kept as received.
    Notification(Notification),
}

impl Record {
    /// Puts `raw` in as the provider JSON the record keeps. The normalizers read an item by
    /// reference, then move the item itself in rather than copy it.
    pub(crate) fn with_raw(mut self, raw: Value) -> Self {
        match &mut self {
            Record::Message(m) => m.raw = raw,
            Record::Event(e) => e.raw = raw,
            Record::Notification(n) => n.raw = raw,
        }
        self
    }

    /// The deterministic storage key: equal for every repeat of the same provider item.
    pub fn key(&self) -> RecordKey {
        match self {
            Record::Message(m) => {
                RecordKey::derive(m.channel, &m.account_id, "message", &m.provider_message_id)
            }
            Record::Event(e) => RecordKey::derive(e.channel, &e.account_id, "event", &e.event_id),
            Record::Notification(n) => {
                RecordKey::derive(n.channel, &n.account_id, "notification", &n.notification_id)
            }
        }
    }

    /// The channel of the record.
    pub fn channel(&self) -> Channel {
        match self {
            Record::Message(m) => m.channel,
            Record::Event(e) => e.channel,
            Record::Notification(n) => n.channel,
        }
    }

    /// The business account of the record.
    pub fn account_id(&self) -> &ProviderId {
        match self {
            Record::Message(m) => &m.account_id,
            Record::Event(e) => &e.account_id,
            Record::Notification(n) => &n.account_id,
        }
    }

    /// The conversation, for messages and events.
    pub fn conversation_id(&self) -> Option<&ConversationId> {
        match self {
            Record::Message(m) => Some(&m.conversation_id),
            Record::Event(e) => Some(&e.conversation_id),
            Record::Notification(_) => None,
        }
    }

    /// The customer, for messages and events.
    pub fn customer(&self) -> Option<&CustomerIdentity> {
        match self {
            Record::Message(m) => Some(&m.customer),
            Record::Event(e) => Some(&e.customer),
            Record::Notification(_) => None,
        }
    }

    /// The provider time that orders the record in its conversation.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Record::Message(m) => m.sent_at,
            Record::Event(e) => e.occurred_at,
            Record::Notification(n) => n.occurred_at,
        }
    }

    /// `message`, `event` or `notification`.
    pub fn record_type(&self) -> &'static str {
        match self {
            Record::Message(_) => "message",
            Record::Event(_) => "event",
            Record::Notification(_) => "notification",
        }
    }

    /// The kind, for logs and queue entries: `text`, `status.read`, `account_update`, …
    pub fn kind_name(&self) -> String {
        match self {
            Record::Message(m) => m.kind.as_str().to_owned(),
            Record::Event(e) => e.kind.name(),
            Record::Notification(n) => n.topic.clone(),
        }
    }

    /// The raw JSON of the item.
    pub fn raw(&self) -> &Value {
        match self {
            Record::Message(m) => &m.raw,
            Record::Event(e) => &e.raw,
            Record::Notification(n) => &n.raw,
        }
    }

    /// Replaces the raw JSON (used by stores that keep oversized raw items by reference).
    pub fn set_raw(&mut self, raw: Value) {
        match self {
            Record::Message(m) => m.raw = raw,
            Record::Event(e) => e.raw = raw,
            Record::Notification(n) => n.raw = raw,
        }
    }
}

/// A conversation: one customer with one business account on one channel.
///
/// Besides its identity it holds the state of the current wait, derived from its messages by
/// [`Conversation::absorb`]: a customer message starts a wait (`waiting_since`), a brand message
/// (an echo of an agent's reply, a page reply to a comment) at or after it answers it
/// (`answered_at`), and the first answer's delay is kept (`first_response_seconds`). All times
/// are provider times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conversation {
    /// Deterministic id from channel, account and customer identity.
    pub id: ConversationId,
    /// The channel.
    pub channel: Channel,
    /// The business account.
    pub account_id: ProviderId,
    /// The customer.
    pub customer_id: CustomerId,
    /// The customer's identity on the channel.
    pub customer: CustomerIdentity,
    /// Provider time of the earliest record seen.
    pub first_at: DateTime<Utc>,
    /// Provider time of the latest record seen.
    pub last_at: DateTime<Utc>,
    /// Provider time of the latest customer message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_inbound_at: Option<DateTime<Utc>>,
    /// Provider time of the latest brand message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_outbound_at: Option<DateTime<Utc>>,
    /// The first customer message not answered yet; `None` when nobody is waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_since: Option<DateTime<Utc>>,
    /// When the brand last answered a waiting customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<DateTime<Utc>>,
    /// Seconds from the first customer message to the first answer; kept once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_response_seconds: Option<i64>,
    /// Seconds from the start of the latest answered wait to its answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_response_seconds: Option<i64>,
    /// The SLA clock of the wait the prioritizer last timed (see [`Conversation::current_sla`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla: Option<crate::sla::SlaClock>,
    /// The window-closing reminder scheduled after the customer's latest message, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_reminder: Option<String>,
    /// The priority, topic and team the prioritizer gave the conversation; `None` until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<ConversationPriority>,
    /// How many response-time targets this conversation has missed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sla_breaches: u32,
    /// The current case (see [`crate::case`]): its number, replies and resolution.
    #[serde(default)]
    pub case: Case,
    /// The agent the conversation is assigned to; `None` when nobody is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// When it was last assigned or unassigned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_at: Option<DateTime<Utc>>,
    /// The latest delivery status of each of the most recent outbound messages (at most
    /// [`TRACKED_STATUSES`], the newest kept), by the provider's message id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<OutboundStatus>,
    /// The first words of the customer's latest message (at most [`PREVIEW_CHARS`]), for a
    /// queue to show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
    /// The customer messages counted by the hour (the prioritizer's history counter; see
    /// [`crate::history`]). Internal: the API does not show it.
    #[serde(default, skip_serializing_if = "crate::history::Contacts::is_empty")]
    pub contacts: crate::history::Contacts,
}

/// The most characters of a customer message a conversation keeps as its preview.
pub const PREVIEW_CHARS: usize = 140;

fn preview_of(text: &str) -> String {
    let text = text.trim();
    match text.char_indices().nth(PREVIEW_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// How many outbound messages' statuses a conversation keeps.
pub const TRACKED_STATUSES: usize = 50;

/// The latest delivery status of one outbound message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundStatus {
    /// The provider's id of the message.
    pub message_id: ProviderId,
    /// Its latest status.
    pub status: DeliveryStatus,
    /// When the provider reported it.
    pub at: DateTime<Utc>,
    /// The provider's errors, for a failed delivery.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ProviderError>,
}

impl DeliveryStatus {
    /// The order of statuses reported at the same time: a later stage wins, a failure wins.
    fn rank(&self) -> u8 {
        match self {
            DeliveryStatus::Other(_) => 0,
            DeliveryStatus::Sent => 1,
            DeliveryStatus::Delivered => 2,
            DeliveryStatus::Read => 3,
            DeliveryStatus::Played => 4,
            DeliveryStatus::Failed => 5,
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Conversation {
    /// The conversation a message or event belongs to, as known from that one record.
    pub fn from_record(record: &Record) -> Option<Self> {
        let customer = record.customer()?.clone();
        let mut conversation = Self {
            id: record.conversation_id()?.clone(),
            channel: record.channel(),
            account_id: record.account_id().clone(),
            customer_id: customer.customer_id.clone(),
            customer,
            first_at: record.at(),
            last_at: record.at(),
            last_inbound_at: None,
            last_outbound_at: None,
            waiting_since: None,
            answered_at: None,
            first_response_seconds: None,
            last_response_seconds: None,
            sla: None,
            window_reminder: None,
            priority: None,
            sla_breaches: 0,
            case: Case::default(),
            assignee: None,
            assigned_at: None,
            statuses: Vec::new(),
            preview: None,
            contacts: Default::default(),
        };
        conversation.absorb(record);
        Some(conversation)
    }

    /// The SLA clock of the current wait: `None` when nobody waits, or the wait has not been
    /// timed yet.
    pub fn current_sla(&self) -> Option<&crate::sla::SlaClock> {
        let since = self.waiting_since?;
        self.sla.as_ref().filter(|clock| clock.wait_since == since)
    }

    /// Applies the score of message `key` to the conversation's priority, by the rule of
    /// [`crate::priority::apply`] for its current wait.
    pub fn apply_score(
        &mut self,
        key: &RecordKey,
        score: &crate::priority::Score,
        now: DateTime<Utc>,
    ) -> crate::priority::Applied {
        crate::priority::apply(&mut self.priority, self.waiting_since, key, score, now)
    }

    /// The SLA clock of the current wait at the current priority, by `policy`: `None` when
    /// nobody waits or the conversation has no priority yet. A conversation never answered
    /// waits for its first response; after an answer, for the next.
    pub fn sla_clock(&self, policy: &crate::sla::SlaPolicy) -> Option<crate::sla::SlaClock> {
        let since = self.waiting_since?;
        let p = self.priority.as_ref()?;
        let wait = if self.first_response_seconds.is_none() {
            crate::sla::Wait::First
        } else {
            crate::sla::Wait::Next
        };
        Some(policy.clock(self.channel, since, wait, p.priority, &p.team))
    }

    /// Reflects one record of this conversation. Absorbing the same record again changes
    /// nothing; records of another conversation and notifications are ignored.
    pub fn absorb(&mut self, record: &Record) {
        if record.conversation_id() != Some(&self.id) {
            return;
        }
        let at = record.at();
        self.first_at = self.first_at.min(at);
        self.last_at = self.last_at.max(at);
        if let Some(name) = record.customer().and_then(|c| c.display_name.clone())
            && (self.customer.display_name.is_none() || at >= self.last_at)
        {
            self.customer.display_name = Some(name);
        }
        if let Record::Event(event) = record
            && let EventKind::Status { status, errors } = &event.kind
        {
            self.track_status(&event.refers_to, status, errors, at);
        }
        let Record::Message(message) = record else {
            return;
        };
        match message.direction {
            Direction::Inbound => {
                if self.last_inbound_at.is_none_or(|last| at >= last)
                    && let Some(text) = message.text.as_deref().filter(|t| !t.trim().is_empty())
                {
                    self.preview = Some(preview_of(text));
                }
                self.last_inbound_at = self.last_inbound_at.max(Some(at));
                let before_resolution = self.case.customer_wrote(at) == Inbound::BeforeResolution;
                if !before_resolution && self.last_outbound_at.is_none_or(|answered| at > answered)
                {
                    self.waiting_since = Some(self.waiting_since.map_or(at, |w| w.min(at)));
                }
            }
            Direction::Outbound => {
                self.last_outbound_at = self.last_outbound_at.max(Some(at));
                self.reply(message.provider_message_id.as_str(), at);
            }
        }
    }

    /// Keeps `status` as the latest of message `id` when it is later than the one kept (at the
    /// same time, the later stage), then forgets the oldest beyond [`TRACKED_STATUSES`].
    fn track_status(
        &mut self,
        id: &ProviderId,
        status: &DeliveryStatus,
        errors: &[ProviderError],
        at: DateTime<Utc>,
    ) {
        let newer = |kept: &OutboundStatus| (at, status.rank()) > (kept.at, kept.status.rank());
        match self.statuses.iter_mut().find(|s| &s.message_id == id) {
            Some(kept) if newer(kept) => {
                kept.status = status.clone();
                kept.at = at;
                kept.errors = errors.to_vec();
            }
            Some(_) => return,
            None => self.statuses.push(OutboundStatus {
                message_id: id.clone(),
                status: status.clone(),
                at,
                errors: errors.to_vec(),
            }),
        }
        if self.statuses.len() > TRACKED_STATUSES {
            self.statuses.sort_by_key(|s| std::cmp::Reverse(s.at));
            self.statuses.truncate(TRACKED_STATUSES);
        }
    }

    /// The latest delivery status of outbound message `id`, when one is kept.
    pub fn status_of(&self, id: &ProviderId) -> Option<&OutboundStatus> {
        self.statuses.iter().find(|s| &s.message_id == id)
    }

    /// The brand's reply `id` at `at` (an echo, a reply sent through switchboard, a status of
    /// a message sent elsewhere): it answers the wait ([`Conversation::answer`]) and counts as
    /// a reply of the open case when it is not earlier than the case's first customer message.
    /// The same reply again changes nothing.
    pub fn reply(&mut self, id: &str, at: DateTime<Utc>) {
        self.answer(at);
        if self.case.opened_at.is_some_and(|opened| at >= opened) {
            self.case.brand_replied(id, at);
        }
    }

    /// Where the current case stands: resolved, a customer waiting, or answered.
    pub fn status(&self) -> CaseStatus {
        if self.case.is_resolved() {
            CaseStatus::Resolved
        } else if self.waiting_since.is_some() {
            CaseStatus::Waiting
        } else {
            CaseStatus::Answered
        }
    }

    /// An agent `by` resolves the current case at `at` (never earlier than the latest record,
    /// so a message already seen cannot reopen it): nobody waits any more, first-contact
    /// resolution is decided. Answers false, changing nothing, when it was resolved already.
    pub fn resolve(&mut self, at: DateTime<Utc>, by: &str) -> bool {
        if !self.case.resolve(at.max(self.last_at), by) {
            return false;
        }
        self.waiting_since = None;
        true
    }

    /// Assigns the conversation to `agent` (or to nobody) at `at`. Answers false, changing
    /// nothing, when it is assigned so already.
    pub fn assign(&mut self, agent: Option<&str>, at: DateTime<Utc>) -> bool {
        if self.assignee.as_deref() == agent {
            return false;
        }
        self.assignee = agent.map(str::to_owned);
        self.assigned_at = Some(at);
        true
    }

    /// The brand answered at `at` (a reply seen through its echo, or an agent tool saying so):
    /// the wait that started before `at` ends, and its response time is recorded. An answer
    /// before the wait started changes nothing; a customer message later than the answer still
    /// waits. Answering again at the same time changes nothing.
    pub fn answer(&mut self, at: DateTime<Utc>) {
        let Some(waiting) = self.waiting_since.filter(|w| at >= *w) else {
            return;
        };
        self.answered_at = self.answered_at.max(Some(at));
        if self.first_response_seconds.is_none() {
            self.first_response_seconds = Some((at - waiting).num_seconds());
        }
        self.last_response_seconds = Some((at - waiting).num_seconds());
        // A customer message later than this answer (seen earlier, out of order) still waits.
        self.waiting_since = self.last_inbound_at.filter(|last| *last > at);
    }
}

/// A customer: one person, known on one or more channels by their identities.
///
/// Every channel identity starts as its own customer (its id is the identity's
/// [`CustomerId`]). Linking merges one customer into another: the merged one keeps its id, now
/// an alias (`merged_into`), and its identities and history show under the surviving one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Customer {
    /// The customer's id.
    pub id: CustomerId,
    /// The channel identities of this person.
    pub identities: Vec<CustomerIdentity>,
    /// Set when this customer was merged into another: the id to use instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<CustomerId>,
    /// The customer's service tier (`vip`, …), set by an agent tool or a CRM; `vip` raises
    /// the priority of the customer's messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// The customers merged into this one, each with who or what linked it: undoing one
    /// (`DELETE /api/customers/{id}/links/{other}`) splits it back out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<Link>,
    /// Links undone: the automatic linking does not make them again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub declined: Vec<Declined>,
}

/// One customer merged into another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Link {
    /// The customer merged in (its id is now an alias of the survivor).
    pub customer_id: CustomerId,
    /// When.
    pub at: DateTime<Utc>,
    /// Why: `None` when an agent linked them, the evidence when switchboard did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<LinkEvidence>,
}

/// Why switchboard linked two identities by itself: both carried the same strong identifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LinkEvidence {
    /// The identifier both carried.
    pub identifier: Identifier,
    /// The identity whose message brought it, with its channel and the message's time.
    pub seen: Sighting,
    /// The identity it was seen on before.
    pub matched: Sighting,
}

/// An identity seen carrying an identifier: where and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Sighting {
    /// The identity (its own customer id).
    pub identity: CustomerId,
    /// Its channel.
    pub channel: Channel,
    /// When it was first seen with the identifier.
    pub at: DateTime<Utc>,
}

/// A link an agent undid: not made again automatically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Declined {
    /// The customer on the other side of the undone link.
    pub customer_id: CustomerId,
    /// The identifier of the undone automatic link; `None` when the undone link was an agent's,
    /// which declines every automatic link between the two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<Identifier>,
}

impl Customer {
    /// The customer made of one channel identity.
    pub fn of_identity(identity: &CustomerIdentity) -> Self {
        Self {
            id: identity.customer_id.clone(),
            identities: vec![identity.clone()],
            merged_into: None,
            tier: None,
            links: Vec::new(),
            declined: Vec::new(),
        }
    }

    /// The ids of this customer's identities.
    pub fn identity_ids(&self) -> impl Iterator<Item = &CustomerId> {
        self.identities.iter().map(|i| &i.customer_id)
    }

    /// Merges `other` (a surviving customer, not this one) into this one, for `link`: this
    /// one takes its identities (`other` keeps its own list, to be split back out), its tier
    /// when it has none, and what it declined; `other` becomes an alias. Answers false, and
    /// changes nothing, when they are already one.
    pub fn absorb(&mut self, other: &mut Customer, link: Link) -> bool {
        if self.id == other.id || other.merged_into.is_some() {
            return false;
        }
        if self.tier.is_none() {
            self.tier = other.tier.clone();
        }
        for identity in &other.identities {
            if !self.identity_ids().any(|i| *i == identity.customer_id) {
                self.identities.push(identity.clone());
            }
        }
        for declined in &other.declined {
            if !self.declined.contains(declined) {
                self.declined.push(declined.clone());
            }
        }
        self.links.retain(|l| l.customer_id != other.id);
        self.links.push(link);
        other.merged_into = Some(self.id.clone());
        true
    }

    /// Undoes the link of `other` (loaded by its own id) into this one: `other` stands alone
    /// again with its identities, which this one gives back, and neither is linked to the
    /// other automatically again (from the same identifier for an automatic link, at all for
    /// an agent's). Answers false, and changes nothing, when `other` is not linked into this
    /// one.
    pub fn release(&mut self, other: &mut Customer) -> bool {
        let Some(at) = self
            .links
            .iter()
            .position(|l| l.customer_id == other.id)
            .filter(|_| other.merged_into.as_ref() == Some(&self.id))
        else {
            return false;
        };
        let link = self.links.remove(at);
        let theirs: Vec<CustomerId> = other.identity_ids().cloned().collect();
        self.identities.retain(|i| !theirs.contains(&i.customer_id));
        other.merged_into = None;
        let identifier = link.evidence.map(|e| e.identifier);
        self.declined.push(Declined {
            customer_id: other.id.clone(),
            identifier: identifier.clone(),
        });
        other.declined.push(Declined {
            customer_id: self.id.clone(),
            identifier,
        });
        true
    }

    /// Whether an undone link forbids linking this customer and `other` automatically on
    /// `identifier`.
    pub fn declines(&self, other: &Customer, identifier: &Identifier) -> bool {
        let names = |mine: &Customer, theirs: &Customer| {
            mine.declined.iter().any(|d| {
                d.identifier.as_ref().is_none_or(|i| i == identifier)
                    && (d.customer_id == theirs.id
                        || theirs.identity_ids().any(|i| *i == d.customer_id))
            })
        };
        names(self, other) || names(other, self)
    }
}

/// A WhatsApp text of `customer` with the account `PN` at `at` (seconds), for the domain's
/// unit tests.
#[cfg(test)]
pub(crate) fn text_message(
    customer: &str,
    id: &str,
    direction: Direction,
    at: i64,
    text: &str,
) -> Record {
    use chrono::TimeZone;
    let customer = ProviderId::from(customer);
    let account = ProviderId::from("PN");
    Record::Message(Message {
        channel: Channel::Whatsapp,
        account_id: account.clone(),
        provider_message_id: ProviderId::from(id),
        conversation_id: ConversationId::derive(Channel::Whatsapp, &account, &customer),
        customer: CustomerIdentity {
            customer_id: CustomerId::derive(Channel::Whatsapp, &customer),
            channel: Channel::Whatsapp,
            provider_user_id: customer,
            display_name: None,
            identifiers: Vec::new(),
        },
        direction,
        kind: MessageKind::Text,
        provider_type: None,
        text: Some(text.to_owned()),
        attachments: Vec::new(),
        sent_at: Utc.timestamp_opt(at, 0).unwrap(),
        sent_at_estimated: false,
        provider_timestamp: None,
        reply_to: None,
        public: false,
        thread_id: None,
        raw: Value::Null,
        source: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn person(channel: Channel, id: &str) -> Customer {
        let provider_user_id = ProviderId::from(id);
        Customer::of_identity(&CustomerIdentity {
            customer_id: CustomerId::derive(channel, &provider_user_id),
            channel,
            provider_user_id,
            display_name: None,
            identifiers: Vec::new(),
        })
    }

    fn linked(customer_id: &CustomerId, identifier: Option<Identifier>) -> Link {
        let at = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        Link {
            customer_id: customer_id.clone(),
            at,
            evidence: identifier.map(|identifier| LinkEvidence {
                identifier,
                seen: Sighting {
                    identity: customer_id.clone(),
                    channel: Channel::Web,
                    at,
                },
                matched: Sighting {
                    identity: customer_id.clone(),
                    channel: Channel::Email,
                    at,
                },
            }),
        }
    }

    #[test]
    fn a_released_link_gives_the_identities_back_and_is_declined_on_its_evidence() {
        let email = Identifier::email("ana@example.com").unwrap();
        let mut ana = person(Channel::Email, "ana@example.com");
        let mut web = person(Channel::Web, "web:v1");
        web.tier = Some("vip".into());
        let link = linked(&web.id, Some(email.clone()));
        assert!(ana.absorb(&mut web, link));
        let again = linked(&web.id, None);
        assert!(!ana.absorb(&mut web, again), "once");
        assert_eq!(ana.identities.len(), 2);
        assert_eq!(ana.tier.as_deref(), Some("vip"));
        assert_eq!(web.merged_into.as_ref(), Some(&ana.id));

        let mut stranger = person(Channel::Web, "web:v2");
        assert!(!ana.release(&mut stranger), "not linked");
        assert!(ana.release(&mut web));
        assert!(!ana.release(&mut web), "once");
        assert_eq!(ana.identities.len(), 1);
        assert!(ana.links.is_empty());
        assert_eq!(web.merged_into, None);
        assert_eq!(web.identities.len(), 1);
        // Declined on that identifier, both ways; another identifier may still link them.
        assert!(ana.declines(&web, &email) && web.declines(&ana, &email));
        let phone = Identifier::phone("+5511999990000").unwrap();
        assert!(!ana.declines(&web, &phone));
        assert!(!ana.declines(&stranger, &email));
    }

    #[test]
    fn an_agents_undone_link_declines_every_automatic_one() {
        let mut ana = person(Channel::Email, "ana@example.com");
        let mut web = person(Channel::Web, "web:v1");
        let link = linked(&web.id, None);
        ana.absorb(&mut web, link);
        assert!(ana.release(&mut web));
        let phone = Identifier::phone("+5511999990000").unwrap();
        assert!(ana.declines(&web, &phone) && web.declines(&ana, &phone));
        // Still declined after the web visitor is merged into someone else.
        let mut other = person(Channel::Whatsapp, "5511999990000");
        let link = linked(&web.id, Some(phone.clone()));
        other.absorb(&mut web, link);
        assert!(ana.declines(&other, &phone));
    }

    fn status_event(of: &Record, refers_to: &str, status: &str, at: i64) -> Record {
        let Record::Message(m) = of else {
            unreachable!()
        };
        Record::Event(Event {
            channel: m.channel,
            account_id: m.account_id.clone(),
            event_id: ProviderId::from(format!("{refers_to}:{status}:{at}").as_str()),
            refers_to: ProviderId::from(refers_to),
            conversation_id: m.conversation_id.clone(),
            customer: m.customer.clone(),
            direction: Direction::Outbound,
            kind: EventKind::Status {
                status: DeliveryStatus::parse(status),
                errors: Vec::new(),
            },
            occurred_at: Utc.timestamp_opt(at, 0).unwrap(),
            occurred_at_estimated: false,
            provider_timestamp: None,
            refers_to_unknown: false,
            raw: Value::Null,
        })
    }

    #[test]
    fn the_latest_status_of_each_outbound_message_is_kept_in_any_order() {
        let first = text_message("5511", "in1", Direction::Inbound, 100, "hola");
        let mut c = Conversation::from_record(&first).unwrap();
        // Out of order, a stage and its successor in the same second, a repeat.
        for (status, at) in [
            ("read", 130),
            ("sent", 110),
            ("delivered", 110),
            ("read", 130),
        ] {
            c.absorb(&status_event(&first, "out1", status, at));
        }
        c.absorb(&status_event(&first, "out2", "sent", 140));
        c.absorb(&status_event(&first, "out2", "failed", 140));
        let of = |c: &Conversation, id: &str| {
            c.status_of(&ProviderId::from(id))
                .map(|s| s.status.as_str().to_owned())
        };
        assert_eq!(of(&c, "out1").as_deref(), Some("read"));
        assert_eq!(of(&c, "out2").as_deref(), Some("failed"));
        for i in 0..TRACKED_STATUSES as i64 {
            c.absorb(&status_event(&first, &format!("later{i}"), "sent", 200 + i));
        }
        assert_eq!(c.statuses.len(), TRACKED_STATUSES);
        assert_eq!(of(&c, "out1"), None, "the oldest is forgotten first");
    }

    fn message(id: &str, direction: Direction, at: i64) -> Record {
        text_message("5511", id, direction, at, "hi")
    }

    fn fold(records: &[Record]) -> Conversation {
        let mut c = Conversation::from_record(&records[0]).unwrap();
        for r in records {
            c.absorb(r);
        }
        c
    }

    fn t(at: i64) -> Option<DateTime<Utc>> {
        Some(Utc.timestamp_opt(at, 0).unwrap())
    }

    #[test]
    fn an_answer_after_a_customer_message_answers_the_wait_at_the_answer_time() {
        let c = fold(&[
            message("in1", Direction::Inbound, 100),
            message("in2", Direction::Inbound, 130),
            message("out", Direction::Outbound, 400),
        ]);
        assert_eq!(c.waiting_since, None);
        assert_eq!(c.answered_at, t(400));
        assert_eq!(c.first_response_seconds, Some(300));
        assert_eq!((c.last_inbound_at, c.last_outbound_at), (t(130), t(400)));
    }

    #[test]
    fn a_brand_message_alone_makes_nobody_wait_and_answers_nothing() {
        let c = fold(&[message("out", Direction::Outbound, 50)]);
        assert_eq!(
            (c.waiting_since, c.answered_at, c.first_response_seconds),
            (None, None, None)
        );
        assert_eq!(c.last_inbound_at, None);
    }

    #[test]
    fn the_next_customer_message_starts_a_new_wait_and_the_first_response_is_kept() {
        let c = fold(&[
            message("in1", Direction::Inbound, 100),
            message("out1", Direction::Outbound, 160),
            message("in2", Direction::Inbound, 1000),
        ]);
        assert_eq!(c.waiting_since, t(1000));
        assert_eq!(c.first_response_seconds, Some(60));
        let c = fold(&[
            message("in1", Direction::Inbound, 100),
            message("out1", Direction::Outbound, 160),
            message("in2", Direction::Inbound, 1000),
            message("out2", Direction::Outbound, 5000),
        ]);
        assert_eq!(
            (c.waiting_since, c.answered_at, c.first_response_seconds),
            (None, t(5000), Some(60))
        );
    }

    #[test]
    fn absorbing_again_or_out_of_order_changes_nothing() {
        let records = [
            message("in1", Direction::Inbound, 100),
            message("out1", Direction::Outbound, 160),
            message("in2", Direction::Inbound, 1000),
        ];
        let once = fold(&records);
        let mut twice = once.clone();
        for r in &records {
            twice.absorb(r);
        }
        assert_eq!(once, twice);
        // The answer seen before the later customer message it did not answer.
        let shuffled = fold(&[records[0].clone(), records[2].clone(), records[1].clone()]);
        assert_eq!(shuffled.waiting_since, t(1000));
        assert_eq!(shuffled.first_response_seconds, Some(60));
    }

    fn resolve_at(c: &mut Conversation, at: i64) -> bool {
        c.resolve(Utc.timestamp_opt(at, 0).unwrap(), "ana")
    }

    #[test]
    fn a_resolution_ends_the_wait_and_a_later_message_opens_case_two() {
        let mut c = fold(&[
            message("in1", Direction::Inbound, 100),
            message("out1", Direction::Outbound, 160),
        ]);
        assert_eq!(c.status(), CaseStatus::Answered);
        assert!(resolve_at(&mut c, 200));
        assert_eq!(c.status(), CaseStatus::Resolved);
        assert_eq!(c.case.first_contact_resolution, Some(true));
        assert!(!resolve_at(&mut c, 300), "resolving twice");
        // Written before the resolution, arrived after: no wait, no new case.
        c.absorb(&message("in0", Direction::Inbound, 190));
        assert_eq!(
            (c.status(), c.case.number, c.waiting_since),
            (CaseStatus::Resolved, 1, None)
        );
        c.absorb(&message("in2", Direction::Inbound, 500));
        assert_eq!(
            (c.status(), c.case.number, c.waiting_since),
            (CaseStatus::Waiting, 2, t(500))
        );
        c.absorb(&message("in2", Direction::Inbound, 500));
        assert_eq!(c.case.number, 2, "a repeat reopens nothing");
        assert_eq!(
            c.first_response_seconds,
            Some(60),
            "the first response is kept"
        );
    }

    #[test]
    fn resolving_a_waiting_conversation_takes_it_out_of_the_wait_at_the_latest_record() {
        let mut c = fold(&[message("in1", Direction::Inbound, 100)]);
        assert_eq!(c.status(), CaseStatus::Waiting);
        assert!(resolve_at(&mut c, 50));
        assert_eq!(c.case.resolved_at, t(100), "never before the latest record");
        assert_eq!(c.waiting_since, None);
        assert_eq!(c.case.first_contact_resolution, Some(false));
    }

    #[test]
    fn assigning_twice_to_the_same_agent_changes_nothing() {
        let mut c = fold(&[message("in1", Direction::Inbound, 100)]);
        let at = Utc.timestamp_opt(120, 0).unwrap();
        assert!(c.assign(Some("ana"), at));
        assert!(!c.assign(Some("ana"), at));
        assert!(c.assign(None, at));
        assert_eq!(c.assignee, None);
    }
}
