//! Meta messaging events: the `messaging[]` and `standby[]` items of Messenger (`object: page`)
//! and Instagram (`object: instagram`) deliveries, which share one shape.
//!
//! An event is `{"sender": {"id"}, "recipient": {"id"}, "timestamp": …, <kind>: {…}}`; ids may
//! be strings or numbers, `timestamp` milliseconds, a string of digits or an ISO-8601 string.
//! Every event becomes at least one record:
//!
//! | event | record |
//! |---|---|
//! | `message` | [`Message`] with id `mid`; `is_echo` makes it outbound (the brand's) |
//! | `message` with `is_deleted` | [`EventKind::Delete`] on `mid` |
//! | `postback` | a `postback` message (`mid`, or an id from sender and timestamp) |
//! | `reaction` | [`EventKind::Reaction`] on `reaction.mid` (no emoji when `unreact`) |
//! | `read` | read status on `read.mid` (Instagram) or `watermark:<watermark>` (Messenger) |
//! | `delivery` | one delivered status per `delivery.mids[]`, or one on the watermark |
//! | `message_edit` | [`EventKind::Edit`] on `message_edit.mid` |
//! | `referral`, `optin`, handover, payments, policy, … or a shape nobody knows | [`Notification`] |
//!
//! The customer is the sender of an inbound event and the recipient of an echo. `standby[]`
//! events (another app owns the thread) are read exactly like `messaging[]` ones: a customer's
//! message is theirs whichever app answers it.
//!
//! [`Message`]: crate::model::Message
//! [`Notification`]: crate::model::Notification

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::channels::json::{
    id_at, keep_raw, provider_time, str_at, unknown_account, unsupported, value_at,
};
use crate::ids::{ConversationId, CustomerId, digest_json};
use crate::model::{
    Attachment, Channel, CustomerIdentity, DeliveryStatus, Direction, Event, EventKind, Message,
    MessageKind, ProviderId, Record,
};

/// Event keys that are not about a message of a conversation; each becomes a notification with
/// the key as its topic. The thread-control family (handover protocol) matters for routing
/// later, so it is kept by name.
const NOTIFICATION_KEYS: [&str; 13] = [
    "referral",
    "optin",
    "account_linking",
    "policy-enforcement",
    "payment",
    "checkout_update",
    "pre_checkout",
    "pass_thread_control",
    "take_thread_control",
    "request_thread_control",
    "app_roles",
    "messaging_feedback",
    "game_play",
];

/// Normalizes one messaging event of `channel` received on the page or account `account_id`
/// (the entry's id). `standby` is true for events of `standby[]` (another app owns the thread).
/// Never fails: see the module docs of `channels`.
pub(crate) fn messaging_event(
    channel: Channel,
    account_id: &ProviderId,
    event: Value,
    standby: bool,
    received_at: DateTime<Utc>,
) -> Vec<Record> {
    let records = event_records(channel, account_id, &event, standby, received_at);
    keep_raw(records, event)
}

/// The records of one messaging event, before each is given the event as its raw JSON.
fn event_records(
    channel: Channel,
    account_id: &ProviderId,
    event: &Value,
    standby: bool,
    received_at: DateTime<Utc>,
) -> Vec<Record> {
    // A standby event is the same event; the model records what happened, not which app owned
    // the thread when it did.
    let _ = standby;
    let ctx = Context {
        channel,
        entry_account: account_id,
        event,
        time: event_time(event, received_at),
    };
    if let Some(message) = object_at(event, "message") {
        return vec![ctx.message(message)];
    }
    if let Some(postback) = object_at(event, "postback") {
        return vec![ctx.postback(postback)];
    }
    if let Some(reaction) = object_at(event, "reaction") {
        return vec![ctx.reaction(reaction)];
    }
    if let Some(read) = object_at(event, "read") {
        return vec![ctx.read(read)];
    }
    if let Some(delivery) = object_at(event, "delivery") {
        return ctx.delivery(delivery);
    }
    if let Some(edit) = object_at(event, "message_edit") {
        return vec![ctx.edit(edit)];
    }
    vec![ctx.notification()]
}

/// The value of `key` when it is a JSON object.
fn object_at<'a>(event: &'a Value, key: &str) -> Option<&'a Value> {
    event.get(key).filter(|v| v.is_object())
}

/// The provider time of an event, or the receive time when it has none that can be read.
struct Time {
    raw: Option<String>,
    at: DateTime<Utc>,
    estimated: bool,
}

fn event_time(event: &Value, received_at: DateTime<Utc>) -> Time {
    let (raw, at) = provider_time(event.get("timestamp"));
    let at = at.or_else(|| raw.as_deref().and_then(iso_time_without_colon));
    Time {
        raw,
        at: at.unwrap_or(received_at),
        estimated: at.is_none(),
    }
}

/// ISO-8601 with an offset written without a colon (`2021-09-08T06:34:04+0000`), which RFC 3339
/// does not allow but some Instagram payloads use.
fn iso_time_without_colon(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_str(s.trim(), "%Y-%m-%dT%H:%M:%S%.f%z")
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The id of one side of an event (`sender` or `recipient`): its `id`, or the `user_ref` of a
/// person known only through a plugin (checkbox, customer chat).
fn party(event: &Value, side: &str) -> Option<ProviderId> {
    let side = event.get(side)?;
    id_at(side, "/id").or_else(|| id_at(side, "/user_ref"))
}

/// The business account and the customer of an event.
#[derive(Clone)]
struct Parties {
    account: ProviderId,
    customer: CustomerIdentity,
    conversation_id: ConversationId,
}

struct Context<'a> {
    channel: Channel,
    entry_account: &'a ProviderId,
    event: &'a Value,
    time: Time,
}

impl Context<'_> {
    /// The account and customer of the event: the customer sends inbound events and receives
    /// outbound ones (echoes). The entry's id names the account; when the entry named none, the
    /// business side of the event does.
    fn parties(&self, direction: Direction) -> Parties {
        let (user_side, business_side) = match direction {
            Direction::Inbound => ("sender", "recipient"),
            Direction::Outbound => ("recipient", "sender"),
        };
        let mut user = party(self.event, user_side).unwrap_or_else(unknown_account);
        // Decide from the page id, not the field name: some payloads (library fixtures, but
        // also echoes of other apps) have the page on the side the direction says is the user.
        if user == *self.entry_account
            && let Some(other) = party(self.event, business_side).filter(|o| *o != user)
        {
            user = other;
        }
        let account = self.account(business_side);
        Parties {
            conversation_id: ConversationId::derive(self.channel, &account, &user),
            customer: CustomerIdentity {
                customer_id: CustomerId::derive(self.channel, &user),
                channel: self.channel,
                provider_user_id: user,
                display_name: None,
                identifiers: Vec::new(),
            },
            account,
        }
    }

    fn account(&self, business_side: &str) -> ProviderId {
        if *self.entry_account == unknown_account() {
            party(self.event, business_side).unwrap_or_else(unknown_account)
        } else {
            self.entry_account.clone()
        }
    }

    /// A deterministic id for an event that carries none of its own.
    fn synthetic_id(&self) -> ProviderId {
        ProviderId(format!("synthetic:{}", digest_json(self.event)))
    }

    /// The timestamp as sent, or a digest of the event when it has none: the part of a derived
    /// id that tells repeated actions apart.
    fn timestamp_or_digest(&self) -> String {
        self.time
            .raw
            .clone()
            .unwrap_or_else(|| digest_json(self.event))
    }

    fn message(&self, message: &Value) -> Record {
        let direction = if message.get("is_echo").and_then(Value::as_bool) == Some(true) {
            Direction::Outbound
        } else {
            Direction::Inbound
        };
        let parties = self.parties(direction);
        let mid = id_at(message, "/mid").unwrap_or_else(|| self.synthetic_id());
        if message.get("is_deleted").and_then(Value::as_bool) == Some(true) {
            let event_id = ProviderId(format!("{mid}:delete"));
            return self.event_record(parties, event_id, mid, direction, EventKind::Delete);
        }
        let attachments_value = message.get("attachments").filter(|v| !v.is_null());
        let attachments: &[Value] = attachments_value
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        // `attachments` present but not a list, or a message Meta itself could not render.
        let unreadable = attachments_value.is_some_and(|v| !v.is_array())
            || message.get("is_unsupported").and_then(Value::as_bool) == Some(true);
        let (kind, provider_type) = match attachments.first() {
            Some(first) => {
                let ty = str_at(first, "/type");
                let kind = if unreadable {
                    MessageKind::Unsupported
                } else {
                    attachment_kind(message, first, ty)
                };
                (kind, ty)
            }
            None if unreadable => (MessageKind::Unsupported, Some("unsupported")),
            None => (MessageKind::Text, Some("text")),
        };
        let text = str_at(message, "/text")
            .or_else(|| {
                attachments
                    .iter()
                    .filter(|a| matches!(str_at(a, "/type"), Some("fallback" | "share")))
                    .find_map(|a| str_at(a, "/title").or_else(|| str_at(a, "/payload/title")))
            })
            .map(str::to_owned);
        Record::Message(Message {
            channel: self.channel,
            account_id: parties.account,
            provider_message_id: mid,
            conversation_id: parties.conversation_id,
            customer: parties.customer,
            direction,
            kind,
            provider_type: provider_type.map(str::to_owned),
            text,
            attachments: attachments.iter().map(attachment).collect(),
            sent_at: self.time.at,
            sent_at_estimated: self.time.estimated,
            provider_timestamp: self.time.raw.clone(),
            reply_to: id_at(message, "/reply_to/mid"),
            public: false,
            thread_id: id_at(message, "/reply_to/story/id"),
            raw: Value::Null,
            source: None,
        })
    }

    fn postback(&self, postback: &Value) -> Record {
        let parties = self.parties(Direction::Inbound);
        let id = id_at(postback, "/mid").unwrap_or_else(|| {
            match (party(self.event, "sender"), &self.time.raw) {
                (Some(sender), Some(ts)) => ProviderId(format!("postback:{sender}:{ts}")),
                _ => ProviderId(format!("postback:{}", digest_json(self.event))),
            }
        });
        Record::Message(Message {
            channel: self.channel,
            account_id: parties.account,
            provider_message_id: id,
            conversation_id: parties.conversation_id,
            customer: parties.customer,
            direction: Direction::Inbound,
            kind: MessageKind::Postback,
            provider_type: Some("postback".to_owned()),
            text: str_at(postback, "/title").map(str::to_owned),
            attachments: Vec::new(),
            sent_at: self.time.at,
            sent_at_estimated: self.time.estimated,
            provider_timestamp: self.time.raw.clone(),
            reply_to: None,
            public: false,
            thread_id: None,
            raw: Value::Null,
            source: None,
        })
    }

    fn reaction(&self, reaction: &Value) -> Record {
        let parties = self.parties(Direction::Inbound);
        let action = str_at(reaction, "/action");
        let emoji = match action {
            Some("unreact") => None,
            // Meta sends the emoji; the reaction's name (`love`, `sad`) stands in without one.
            _ => str_at(reaction, "/emoji")
                .or_else(|| str_at(reaction, "/reaction"))
                .map(str::to_owned),
        };
        let target = id_at(reaction, "/mid").unwrap_or_else(|| self.synthetic_id());
        let event_id = ProviderId(format!(
            "{target}:reaction:{}:{}:{}",
            parties.customer.provider_user_id,
            action.unwrap_or("unknown"),
            self.timestamp_or_digest()
        ));
        self.event_record(
            parties,
            event_id,
            target,
            Direction::Inbound,
            EventKind::Reaction { emoji },
        )
    }

    fn read(&self, read: &Value) -> Record {
        let parties = self.parties(Direction::Inbound);
        let (refers_to, marker) = match (id_at(read, "/mid"), id_at(read, "/watermark")) {
            (Some(mid), _) => (mid.clone(), mid.0),
            (None, Some(watermark)) => (
                ProviderId(format!("watermark:{watermark}")),
                watermark.0.clone(),
            ),
            (None, None) => {
                let id = self.synthetic_id();
                (id.clone(), id.0)
            }
        };
        let event_id = ProviderId(format!(
            "read:{}:{marker}",
            parties.customer.provider_user_id
        ));
        let kind = EventKind::Status {
            status: DeliveryStatus::Read,
            errors: Vec::new(),
        };
        self.event_record(parties, event_id, refers_to, Direction::Inbound, kind)
    }

    /// Delivery reports are about the brand's messages reaching the customer, like WhatsApp's
    /// statuses: outbound.
    fn delivery(&self, delivery: &Value) -> Vec<Record> {
        let parties = self.parties(Direction::Inbound);
        let kind = || EventKind::Status {
            status: DeliveryStatus::Delivered,
            errors: Vec::new(),
        };
        let mids: Vec<ProviderId> = delivery
            .get("mids")
            .and_then(Value::as_array)
            .map(|mids| mids.iter().filter_map(ProviderId::from_json).collect())
            .unwrap_or_default();
        if mids.is_empty() {
            let marker = id_at(delivery, "/watermark")
                .map(|w| w.0)
                .unwrap_or_else(|| digest_json(self.event));
            let refers_to = ProviderId(format!("watermark:{marker}"));
            // Watermarks are times, not ids: two customers can share one, so the customer is
            // part of the id.
            let event_id = ProviderId(format!(
                "delivered:{}:{marker}",
                parties.customer.provider_user_id
            ));
            return vec![self.event_record(
                parties,
                event_id,
                refers_to,
                Direction::Outbound,
                kind(),
            )];
        }
        mids.into_iter()
            .map(|mid| {
                let event_id = ProviderId(format!("{mid}:delivered"));
                self.event_record(parties.clone(), event_id, mid, Direction::Outbound, kind())
            })
            .collect()
    }

    fn edit(&self, edit: &Value) -> Record {
        let parties = self.parties(Direction::Inbound);
        let target = id_at(edit, "/mid").unwrap_or_else(|| self.synthetic_id());
        let number = id_at(edit, "/num_edit")
            .map(|n| n.0)
            .unwrap_or_else(|| digest_json(self.event));
        let event_id = ProviderId(format!("{target}:edit:{number}"));
        let kind = EventKind::Edit {
            text: str_at(edit, "/text").map(str::to_owned),
        };
        self.event_record(parties, event_id, target, Direction::Inbound, kind)
    }

    fn event_record(
        &self,
        parties: Parties,
        event_id: ProviderId,
        refers_to: ProviderId,
        direction: Direction,
        kind: EventKind,
    ) -> Record {
        Record::Event(Event {
            channel: self.channel,
            account_id: parties.account,
            event_id,
            refers_to,
            conversation_id: parties.conversation_id,
            customer: parties.customer,
            direction,
            kind,
            occurred_at: self.time.at,
            occurred_at_estimated: self.time.estimated,
            provider_timestamp: self.time.raw.clone(),
            refers_to_unknown: false,
            raw: Value::Null,
        })
    }

    /// An event that is not about a message (referral, opt-in, handover, payment, policy), or
    /// one nobody knows: kept whole.
    fn notification(&self) -> Record {
        let topic = NOTIFICATION_KEYS
            .into_iter()
            .find(|key| self.event.get(*key).is_some())
            .unwrap_or("unsupported");
        unsupported(
            self.channel,
            Some(self.account("recipient")),
            topic,
            self.event,
            self.time.at,
        )
    }
}

/// The kind of a message from its first attachment.
fn attachment_kind(message: &Value, first: &Value, ty: Option<&str>) -> MessageKind {
    let has = |v: Option<&Value>| v.is_some_and(|v| !v.is_null());
    match ty {
        Some("image")
            if has(value_at(first, "/payload/sticker_id")) || has(message.get("sticker_id")) =>
        {
            MessageKind::Sticker
        }
        Some("image") => MessageKind::Image,
        Some("audio") => MessageKind::Audio,
        Some("video") => MessageKind::Video,
        Some("file") => MessageKind::Document,
        Some("location") => MessageKind::Location,
        Some("fallback" | "share" | "ig_reel" | "reel") => MessageKind::Share,
        Some("template") => MessageKind::Interactive,
        Some("story_mention") => MessageKind::StoryMention,
        _ => MessageKind::Unsupported,
    }
}

fn attachment(value: &Value) -> Attachment {
    Attachment {
        kind: str_at(value, "/type").unwrap_or("unknown").to_owned(),
        // Link previews (`fallback`) carry the URL beside the payload, not in it.
        url: str_at(value, "/payload/url")
            .or_else(|| str_at(value, "/url"))
            .map(str::to_owned),
        ..Attachment::default()
    }
}

#[cfg(test)]
mod tests {
    /// The entry that holds `event` (or the body itself, for a lone entry).
    fn entry_of<'a>(
        body: &'a serde_json::Value,
        event: &serde_json::Value,
    ) -> &'a serde_json::Value {
        body.get("entry")
            .and_then(serde_json::Value::as_array)
            .and_then(|entries| {
                entries.iter().find(|e| {
                    ["messaging", "standby"].iter().any(|l| {
                        e.get(*l)
                            .and_then(serde_json::Value::as_array)
                            .is_some_and(|list| list.contains(event))
                    })
                })
            })
            .unwrap_or(body)
    }

    use super::*;
    use crate::model::Webhook;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    /// Every body of a fixture directory (`messenger`, `instagram`), by file name.
    fn fixtures(channel: &str) -> BTreeMap<String, Value> {
        let dir = format!(
            "{}/../../tests/fixtures/{channel}",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut out = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).expect("fixture directory") {
            let path = entry.expect("fixture entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if !name.ends_with(".json") || name.ends_with(".meta.json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("fixture text");
            let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            out.insert(name.trim_end_matches(".json").to_owned(), body);
        }
        assert!(!out.is_empty(), "no fixtures for {channel}");
        out
    }

    fn webhook(channel: &str) -> Webhook {
        match channel {
            "messenger" => Webhook::Facebook,
            _ => Webhook::Instagram,
        }
    }

    fn fixture(channel: &str, name: &str) -> Vec<Record> {
        let body = fixtures(channel)
            .remove(name)
            .unwrap_or_else(|| panic!("no fixture {channel}/{name}"));
        crate::channels::normalize(webhook(channel), &body, now())
    }

    /// The messaging and standby events of a body, as the envelope reads them.
    fn messaging_events(body: &Value) -> Vec<&Value> {
        let entries: Vec<&Value> = match body.get("entry").and_then(Value::as_array) {
            Some(entries) => entries.iter().collect(),
            None => vec![body],
        };
        entries
            .into_iter()
            .flat_map(|entry| ["messaging", "standby"].map(|k| entry.get(k)))
            .flatten()
            .filter_map(Value::as_array)
            .flatten()
            .collect()
    }

    fn only_message(records: &[Record]) -> &Message {
        match records {
            [Record::Message(m)] => m,
            other => panic!("{other:?}"),
        }
    }

    fn only_event(records: &[Record]) -> &Event {
        match records {
            [Record::Event(e)] => e,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_fixture_message_becomes_a_message_and_echoes_are_outbound() {
        for channel in ["messenger", "instagram"] {
            for (name, body) in fixtures(channel) {
                let records = crate::channels::normalize(webhook(channel), &body, now());
                assert!(!records.is_empty(), "{channel}/{name}");
                for event in messaging_events(&body) {
                    let Some(mid) = id_at(event, "/message/mid") else {
                        continue;
                    };
                    if value_at(event, "/message/is_deleted") == Some(&Value::Bool(true)) {
                        continue;
                    }
                    let message = records
                        .iter()
                        .find_map(|r| match r {
                            Record::Message(m) if m.provider_message_id == mid => Some(m),
                            _ => None,
                        })
                        .unwrap_or_else(|| panic!("{channel}/{name}: no message {mid}"));
                    assert_eq!(&message.raw, event, "{channel}/{name}");
                    if value_at(event, "/message/is_echo") == Some(&Value::Bool(true)) {
                        assert_eq!(message.direction, Direction::Outbound, "{channel}/{name}");
                        // The customer is the side that is not the page.
                        let page = id_at(entry_of(&body, event), "/id");
                        let expected = [id_at(event, "/recipient/id"), id_at(event, "/sender/id")]
                            .into_iter()
                            .flatten()
                            .find(|id| Some(id) != page.as_ref());
                        assert_eq!(
                            Some(&message.customer.provider_user_id),
                            expected.as_ref(),
                            "{channel}/{name}"
                        );
                    } else {
                        assert_eq!(message.direction, Direction::Inbound, "{channel}/{name}");
                        assert_eq!(
                            Some(&message.customer.provider_user_id),
                            id_at(event, "/sender/id").as_ref(),
                            "{channel}/{name}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn numeric_ids_are_kept_as_text() {
        let m = only_message(&fixture("messenger", "text__restfb")).clone();
        assert_eq!(m.account_id.as_str(), "12345654332");
        assert_eq!(m.customer.provider_user_id.as_str(), "987654321432");
        assert_eq!(
            m.customer.customer_id,
            CustomerId::derive(Channel::Messenger, &"987654321432".into())
        );
        assert_eq!(
            m.conversation_id,
            ConversationId::derive(
                Channel::Messenger,
                &"12345654332".into(),
                &"987654321432".into()
            )
        );
        assert_eq!(m.kind, MessageKind::Text);
        assert_eq!(m.provider_type.as_deref(), Some("text"));
        assert_eq!(m.text.as_deref(), Some("hello, world!"));
        assert_eq!(m.sent_at.timestamp_millis(), 1_457_764_197_627);
        assert!(!m.sent_at_estimated);
        assert_eq!(m.provider_timestamp.as_deref(), Some("1457764197627"));
        assert!(!m.public);
    }

    #[test]
    fn message_kinds_follow_the_first_attachment() {
        let cases = [
            (
                "messenger",
                "attachment_image__restfb",
                MessageKind::Image,
                "image",
            ),
            (
                "messenger",
                "attachment_sticker__restfb",
                MessageKind::Sticker,
                "image",
            ),
            (
                "messenger",
                "attachment_location__restfb",
                MessageKind::Location,
                "location",
            ),
            (
                "messenger",
                "attachment_fallback__restfb",
                MessageKind::Share,
                "fallback",
            ),
            (
                "messenger",
                "attachment_button_template__restfb",
                MessageKind::Interactive,
                "template",
            ),
            (
                "messenger",
                "attachment_product_template__restfb",
                MessageKind::Interactive,
                "template",
            ),
            (
                "messenger",
                "text_with_link_attachment_nlp__restfb",
                MessageKind::Share,
                "fallback",
            ),
            (
                "messenger",
                "message_unsupported__restfb",
                MessageKind::Unsupported,
                "unsupported",
            ),
            (
                "messenger",
                "quick_reply__restfb",
                MessageKind::Text,
                "text",
            ),
            (
                "instagram",
                "attachment_share_no_object_envelope__chatwoot",
                MessageKind::Share,
                "share",
            ),
            (
                "instagram",
                "attachment_unsupported__restfb",
                MessageKind::Unsupported,
                "unsupported_type",
            ),
            (
                "instagram",
                "story_mention_no_object_envelope__chatwoot",
                MessageKind::StoryMention,
                "story_mention",
            ),
            (
                "instagram",
                "story_mention_echo_no_object_envelope__chatwoot",
                MessageKind::StoryMention,
                "story_mention",
            ),
        ];
        for (channel, name, kind, provider_type) in cases {
            let records = fixture(channel, name);
            let m = only_message(&records);
            assert_eq!(m.kind, kind, "{name}");
            assert_eq!(m.provider_type.as_deref(), Some(provider_type), "{name}");
            let expected = m
                .raw
                .pointer("/message/attachments")
                .and_then(Value::as_array);
            assert_eq!(m.attachments.len(), expected.map_or(0, Vec::len), "{name}");
        }
        let records = fixture("messenger", "attachment_image__restfb");
        let image = only_message(&records);
        assert_eq!(image.attachments[0].kind, "image");
        assert_eq!(image.attachments[0].url.as_deref(), Some("IMAGE_URL"));
        assert_eq!(image.attachments[0].media_id, None);
        let records = fixture("messenger", "attachment_fallback__restfb");
        let fallback = only_message(&records);
        assert_eq!(fallback.text.as_deref(), Some("Legacy Attachment"));
        assert_eq!(
            fallback.attachments[0].url.as_deref(),
            Some("https://www.messenger.com/")
        );
        let records = fixture("messenger", "text_with_link_attachment_nlp__restfb");
        let link = only_message(&records);
        assert_eq!(
            link.text.as_deref(),
            Some("Please go to http://www.google.com")
        );
    }

    #[test]
    fn replies_and_story_replies_keep_what_they_answer() {
        let records = fixture("messenger", "reply_to__restfb");
        let reply = only_message(&records);
        assert_eq!(
            reply.reply_to.as_ref().map(ProviderId::as_str),
            Some("very_long_id_representing_the_original_message")
        );
        assert_eq!(reply.thread_id, None);
        let records = fixture("instagram", "story_reply_no_object_envelope__chatwoot");
        let story = only_message(&records);
        assert_eq!(story.kind, MessageKind::Text);
        assert_eq!(
            story.thread_id.as_ref().map(ProviderId::as_str),
            Some("chatwoot-app-user-id-1")
        );
        assert_eq!(story.text.as_deref(), Some("This is the story reply"));
    }

    #[test]
    fn iso_timestamps_are_read() {
        let expected = DateTime::parse_from_rfc3339("2021-09-08T06:34:04Z").unwrap();
        for name in [
            "text_no_object_envelope__chatwoot",
            "standby_text_no_object_envelope__chatwoot",
            "attachment_share_no_object_envelope__chatwoot",
            "story_mention_no_object_envelope__chatwoot",
        ] {
            let records = fixture("instagram", name);
            let m = only_message(&records);
            assert_eq!(m.sent_at, expected, "{name}");
            assert!(!m.sent_at_estimated, "{name}");
            assert_eq!(
                m.provider_timestamp.as_deref(),
                Some("2021-09-08T06:34:04+0000")
            );
        }
        let records = fixture("instagram", "unsend_deleted_no_object_envelope__chatwoot");
        let e = only_event(&records);
        assert_eq!(e.occurred_at, expected);
        assert!(!e.occurred_at_estimated);
        assert_eq!(
            iso_time_without_colon("2021-09-08T06:34:04.250-0300").map(|t| t.timestamp_millis()),
            Some(1_631_093_644_250)
        );
    }

    #[test]
    fn deletions_reactions_reads_deliveries_and_edits_are_events() {
        let cases = [
            (
                "messenger",
                "message_deleted__restfb",
                "delete",
                "message_id",
                "message_id:delete",
            ),
            (
                "instagram",
                "unsend_deleted_no_object_envelope__chatwoot",
                "delete",
                "message-id-to-delete",
                "message-id-to-delete:delete",
            ),
            (
                "messenger",
                "reaction_react__restfb",
                "reaction",
                "original_message_id",
                "original_message_id:reaction:USER_ID:react:1572465098502",
            ),
            (
                "messenger",
                "reaction_unreact__restfb",
                "reaction.removed",
                "original_message_id",
                "original_message_id:reaction:USER_ID:unreact:1572466511366",
            ),
            (
                "messenger",
                "read__restfb",
                "status.read",
                "watermark:1458668856253",
                "read:987654321432:1458668856253",
            ),
            (
                "instagram",
                "seen_read__restfb",
                "status.read",
                "MESSAGE-ID",
                "read:5614879045272581:MESSAGE-ID",
            ),
            (
                "messenger",
                "delivery__restfb",
                "status.delivered",
                "mid.1458668856218:ed81099e15d3f4f233",
                "mid.1458668856218:ed81099e15d3f4f233:delivered",
            ),
            (
                "messenger",
                "message_edit__restfb",
                "edit",
                "mid.1457764197618:41d102a3e1ae206a38",
                "mid.1457764197618:41d102a3e1ae206a38:edit:37",
            ),
        ];
        for (channel, name, kind, refers_to, event_id) in cases {
            let records = fixture(channel, name);
            let e = only_event(&records);
            assert_eq!(e.kind.name(), kind, "{name}");
            assert_eq!(e.refers_to.as_str(), refers_to, "{name}");
            assert_eq!(e.event_id.as_str(), event_id, "{name}");
            assert_eq!(
                Some(&e.customer.provider_user_id),
                id_at(&e.raw, "/sender/id").as_ref(),
                "{name}"
            );
        }
        let records = fixture("messenger", "reaction_react__restfb");
        assert_eq!(
            only_event(&records).kind,
            EventKind::Reaction {
                emoji: Some("\u{1f622}".into())
            }
        );
        let records = fixture("messenger", "message_edit__restfb");
        assert_eq!(
            only_event(&records).kind,
            EventKind::Edit {
                text: Some("hello, world!".into())
            }
        );
        let records = fixture("messenger", "read__restfb");
        assert_eq!(only_event(&records).direction, Direction::Inbound);
        // The delivery fixture has no timestamp.
        let records = fixture("messenger", "delivery__restfb");
        let delivery = only_event(&records);
        assert!(delivery.occurred_at_estimated);
        assert_eq!(delivery.occurred_at, now());
        assert_eq!(delivery.provider_timestamp, None);
    }

    #[test]
    fn a_delivery_without_mids_refers_to_its_watermark_and_one_with_mids_to_each() {
        let account: ProviderId = "P".into();
        let event = json!({"sender": {"id": "U"}, "recipient": {"id": "P"},
                           "delivery": {"watermark": 1_458_668_856_253_i64}});
        let records = messaging_event(Channel::Messenger, &account, event.clone(), false, now());
        let e = only_event(&records);
        assert_eq!(e.refers_to.as_str(), "watermark:1458668856253");
        assert_eq!(e.event_id.as_str(), "delivered:U:1458668856253");
        let event = json!({"sender": {"id": "U"}, "recipient": {"id": "P"}, "timestamp": 5,
                           "delivery": {"mids": ["m1", "m2"], "watermark": 1}});
        let ids: Vec<(String, String)> =
            messaging_event(Channel::Messenger, &account, event.clone(), false, now())
                .into_iter()
                .map(|r| match r {
                    Record::Event(e) => (e.event_id.0, e.refers_to.0),
                    other => panic!("{other:?}"),
                })
                .collect();
        assert_eq!(
            ids,
            [
                ("m1:delivered".to_owned(), "m1".to_owned()),
                ("m2:delivered".to_owned(), "m2".to_owned())
            ]
        );
    }

    #[test]
    fn postbacks_are_messages_with_the_title_as_text() {
        let records = fixture("messenger", "postback_with_referral__botbuilder-dotnet");
        let m = only_message(&records);
        assert_eq!(m.kind, MessageKind::Postback);
        assert_eq!(m.provider_type.as_deref(), Some("postback"));
        assert_eq!(m.text.as_deref(), Some("title"));
        assert_eq!(
            m.provider_message_id.as_str(),
            "m_1457764197618:41d102a3e1ae206a38"
        );
        assert_eq!(m.direction, Direction::Inbound);
        let records = fixture("instagram", "entry_fragment_postback__jovo");
        let m = only_message(&records);
        assert_eq!(m.kind, MessageKind::Postback);
        assert_eq!(m.text.as_deref(), Some("Get Started"));
        assert_eq!(
            m.provider_message_id.as_str(),
            "postback:5360758100663278:1622550442519"
        );
        assert_eq!(m.account_id.as_str(), "104098558513421");
        // Without a title the payload stays in the raw JSON only.
        let records = fixture("messenger", "postback__restfb");
        let m = only_message(&records);
        assert_eq!(m.kind, MessageKind::Postback);
        assert_eq!(m.text, None);
        // A guest of the customer chat plugin is known by `user_ref`.
        let records = fixture("messenger", "postback_title_referral__restfb");
        let m = only_message(&records);
        assert_eq!(m.customer.provider_user_id.as_str(), "987654321432");
        assert_eq!(m.text, None);
    }

    #[test]
    fn other_events_are_notifications_named_by_their_key() {
        let cases = [
            ("account_linking_linked__restfb", "account_linking"),
            ("checkout_update__restfb", "checkout_update"),
            ("handover_app_roles__restfb", "app_roles"),
            (
                "handover_pass_thread_control__botbuilder-dotnet",
                "pass_thread_control",
            ),
            (
                "handover_pass_thread_control__restfb",
                "pass_thread_control",
            ),
            (
                "handover_request_thread_control__botbuilder-dotnet",
                "request_thread_control",
            ),
            (
                "handover_take_thread_control__botbuilder-dotnet",
                "take_thread_control",
            ),
            ("optin__restfb", "optin"),
            ("optin_user_ref__restfb", "optin"),
            ("payment__restfb", "payment"),
            ("policy_enforcement_block__restfb", "policy-enforcement"),
            ("referral__restfb", "referral"),
            ("referral_shortlink__botbuilder-dotnet", "referral"),
        ];
        for (name, topic) in cases {
            let records = fixture("messenger", name);
            let [Record::Notification(n)] = records.as_slice() else {
                panic!("{name}: {records:?}")
            };
            assert_eq!(n.topic, topic, "{name}");
            assert_eq!(n.channel, Channel::Messenger);
            assert_eq!(&n.raw, messaging_events(&fixtures("messenger")[name])[0]);
        }
        let records = fixture("messenger", "payment__restfb");
        assert_eq!(records[0].account_id().as_str(), "1234567890321");
        assert_eq!(records[0].at().timestamp_millis(), 1_473_208_792_799);
    }

    #[test]
    fn standby_items_are_read_like_messaging_ones() {
        let records = fixture("messenger", "standby_plus_messaging__botbuilder-dotnet");
        let mut kinds: Vec<String> = records.iter().map(Record::kind_name).collect();
        kinds.sort();
        assert_eq!(kinds, ["text", "unsupported", "unsupported"]);
        // Two standby items that differ only in their sender stay two notifications.
        let keys: std::collections::BTreeSet<_> = records.iter().map(Record::key).collect();
        assert_eq!(keys.len(), 3);
        let records = fixture("messenger", "standby_echo__restfb");
        let m = only_message(&records);
        assert_eq!(m.direction, Direction::Outbound);
        // The recipient is the page itself here, so the customer is the other side.
        assert_eq!(m.customer.provider_user_id.as_str(), "987654321432");
        let records = fixture("instagram", "standby_text_no_object_envelope__chatwoot");
        assert_eq!(only_message(&records).direction, Direction::Inbound);
    }

    #[test]
    fn an_unknown_account_is_taken_from_the_business_side() {
        let unknown = unknown_account();
        let inbound = json!({"sender": {"id": "U"}, "recipient": {"id": "P"}, "timestamp": 1,
                             "message": {"mid": "m", "text": "hi"}});
        let records = messaging_event(Channel::Instagram, &unknown, inbound.clone(), false, now());
        assert_eq!(records[0].account_id().as_str(), "P");
        let echo = json!({"sender": {"id": "P"}, "recipient": {"id": "U"}, "timestamp": 1,
                          "message": {"mid": "m", "text": "hi", "is_echo": true}});
        let records = messaging_event(Channel::Instagram, &unknown, echo.clone(), true, now());
        let m = only_message(&records);
        assert_eq!(m.account_id.as_str(), "P");
        assert_eq!(m.customer.provider_user_id.as_str(), "U");
        assert_eq!(m.direction, Direction::Outbound);
        let known = messaging_event(Channel::Instagram, &"A".into(), echo.clone(), false, now());
        assert_eq!(known[0].account_id().as_str(), "A");
    }

    #[test]
    fn missing_ids_and_times_are_synthesized_deterministically() {
        let account: ProviderId = "P".into();
        let event = json!({"sender": {"id": "U"}, "message": {"text": "no mid"}});
        let a = messaging_event(Channel::Messenger, &account, event.clone(), false, now());
        let b = messaging_event(Channel::Messenger, &account, event.clone(), true, now());
        assert_eq!(a, b);
        let m = only_message(&a);
        assert!(m.provider_message_id.as_str().starts_with("synthetic:"));
        assert!(m.sent_at_estimated);
        assert_eq!(m.sent_at, now());
        let postback = json!({"sender": {"id": "U"}, "postback": {"payload": "P"}});
        let records = messaging_event(Channel::Messenger, &account, postback.clone(), false, now());
        assert_eq!(
            only_message(&records).provider_message_id.0,
            format!("postback:{}", digest_json(&postback))
        );
        let unreadable = json!({"sender": {"id": "U"}, "timestamp": "TIMESTAMP",
                                "message": {"mid": "m"}});
        let records = messaging_event(
            Channel::Messenger,
            &account,
            unreadable.clone(),
            false,
            now(),
        );
        let m = only_message(&records);
        assert!(m.sent_at_estimated);
        assert_eq!(m.provider_timestamp.as_deref(), Some("TIMESTAMP"));
    }

    #[test]
    fn shapes_nobody_knows_are_kept_as_notifications() {
        let account: ProviderId = "P".into();
        for event in [
            json!(null),
            json!([1, 2]),
            json!("x"),
            json!({}),
            json!({"sender": {"id": "U"}, "hologram": {"depth": 3}}),
            json!({"sender": {"id": "U"}, "message": "not an object"}),
        ] {
            let records =
                messaging_event(Channel::Messenger, &account, event.clone(), false, now());
            let [Record::Notification(n)] = records.as_slice() else {
                panic!("{records:?}")
            };
            assert_eq!(n.topic, "unsupported");
            assert_eq!(n.raw, event);
            assert_eq!(n.account_id, account);
        }
    }

    proptest::proptest! {
        #[test]
        fn any_json_is_normalized_without_panicking(json in arb_json(), event in arb_event()) {
            for item in [&json, &event] {
                for (channel, account) in [
                    (Channel::Messenger, ProviderId::from("P")),
                    (Channel::Instagram, unknown_account()),
                ] {
                    for standby in [false, true] {
                        let records = messaging_event(channel, &account, item.clone(), standby, now());
                        proptest::prop_assert!(!records.is_empty());
                        for record in &records {
                            proptest::prop_assert_eq!(record.raw(), item);
                        }
                    }
                }
            }
            let body = json!({"object": "page", "entry": [
                {"id": "P", "messaging": [json.clone(), event.clone()], "standby": [event.clone()]}
            ]});
            let _ = crate::channels::normalize(Webhook::Facebook, &body, now());
            let _ = crate::channels::normalize(Webhook::Instagram, &json, now());
        }
    }

    /// A messaging event of one of the kinds this module reads, with arbitrary contents.
    fn arb_event() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let key = prop::sample::select(vec![
            "message",
            "postback",
            "reaction",
            "read",
            "delivery",
            "message_edit",
            "referral",
            "pass_thread_control",
        ]);
        (arb_json(), arb_json(), arb_json(), key, arb_json()).prop_map(
            |(sender, recipient, timestamp, key, content)| {
                let mut event = serde_json::Map::new();
                event.insert("sender".into(), json!({"id": sender}));
                event.insert("recipient".into(), json!({"id": recipient}));
                event.insert("timestamp".into(), timestamp);
                event.insert(key.into(), content);
                Value::Object(event)
            },
        )
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
        const WORDS: &[&str] = &[
            "image",
            "fallback",
            "template",
            "story_mention",
            "react",
            "unreact",
            "",
            "unknown",
            "2021-09-08T06:34:04+0000",
            "1458668856253",
        ];
        const KEYS: &[&str] = &[
            "id",
            "mid",
            "mids",
            "sender",
            "recipient",
            "user_ref",
            "timestamp",
            "message",
            "is_echo",
            "is_deleted",
            "is_unsupported",
            "attachments",
            "type",
            "payload",
            "url",
            "title",
            "sticker_id",
            "text",
            "reply_to",
            "story",
            "postback",
            "reaction",
            "action",
            "emoji",
            "read",
            "watermark",
            "delivery",
            "message_edit",
            "num_edit",
            "entry",
            "messaging",
        ];
        crate::channels::json::arb::json(WORDS, KEYS)
    }
}
