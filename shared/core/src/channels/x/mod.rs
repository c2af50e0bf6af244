//! X (Account Activity API): the activity of a subscribed account, `POST`ed to `/webhooks/x`,
//! signed with the app's consumer secret, and checked by X's CRC ([`verify`]).
//!
//! A delivery has no list envelope: `{"for_user_id": "<the subscribed account>",
//! "<kind>_events": [...], "users": {…}, "apps": {…}}`. `for_user_id` is the business account.
//!
//! | events | records |
//! |---|---|
//! | `direct_message_events` (`message_create`) | a DM of the conversation with the other party; the brand's own (`sender_id == for_user_id`) is outbound and answers it |
//! | `tweet_create_events` | a mention of, or a reply to, the brand: public, one conversation per author and account (apart from their DMs); the brand's own reply answers its author's conversation |
//! | `tweet_delete_events` | a `delete` event of the tweet |
//! | `favorite_events` | a `reaction` (❤) on the tweet liked |
//! | `direct_message_mark_read_events` | a `status.read` event of the brand's DM read by the customer |
//! | typing, follows, blocks, mutes, the brand's own tweets that answer no one, and anything else | a notification, kept with its raw JSON |
//!
//! Ids are kept as the strings X sends (`id_str` where there is one). Names come from `users`
//! when the delivery carries them. Times: `created_timestamp` / `timestamp_ms` (milliseconds),
//! else a tweet's `created_at` (`Thu Apr 06 15:24:15 +0000 2017`).

use chrono::{DateTime, Utc};
use serde_json::Value;
use std::sync::Arc;

use super::json::{provider_time, str_at, unsupported, unsupported_owned, value_at};
use super::{ChannelModule, ChannelSecrets, SecretField, Verification};
use crate::channel::{Channel, Webhook};
use crate::identifier::Identifier;
use crate::ids::{ConversationId, CustomerId, ProviderId};
use crate::model::{
    Attachment, CustomerIdentity, DeliveryStatus, Direction, Event, EventKind, Message,
    MessageKind, Record,
};
use crate::settings::ConfigError;
use crate::verify::Secret;

pub mod verify;

pub use verify::{SIGNATURE_HEADER, XVerifier};

const CHANNEL: Channel = Channel::X;

/// The secrets of the X webhook: the app's consumer secret(s).
pub const SECRETS: &[SecretField] = &[SecretField {
    key: "consumer_secrets",
    env: "CONSUMER_SECRETS",
    list: true,
    hint: "the consumer secret(s) (API secret) of the X app, comma-separated",
    dev_prefix: "dev-",
}];

/// The verifier of an X app, refusing an empty list (the error names `secrets.origin`).
pub fn verifier(secrets: &ChannelSecrets) -> Result<XVerifier, ConfigError> {
    let list = secrets.list("consumer_secrets");
    if list.is_empty() {
        return Err(ConfigError::Invalid {
            name: secrets.origin.clone(),
            reason: "no consumer secret given".into(),
        });
    }
    Ok(XVerifier::new(
        list.iter().map(|s| Secret::new(s.clone())).collect(),
    ))
}

/// The X module of the registry.
#[derive(Debug, Clone, Copy)]
pub struct X;

/// The X module of the registry.
pub static X_MODULE: X = X;

impl ChannelModule for X {
    fn webhook(&self) -> Webhook {
        Webhook::X
    }
    fn function(&self) -> &'static str {
        "webhook-x"
    }
    fn secrets(&self) -> &'static [SecretField] {
        SECRETS
    }
    fn verification(&self, secrets: &ChannelSecrets) -> Result<Verification, ConfigError> {
        let verifier = Arc::new(verifier(secrets)?);
        Ok(Verification {
            signature: verifier.clone(),
            handshake: verifier,
        })
    }
    fn normalize(&self, body: &Value, received_at: DateTime<Utc>) -> Vec<Record> {
        normalize(body, received_at)
    }
    fn normalize_owned(&self, body: Value, received_at: DateTime<Utc>) -> Vec<Record> {
        normalize_owned(body, received_at)
    }
    fn records(&self, body: &[u8], received_at: DateTime<Utc>) -> Option<Vec<Record>> {
        if !super::bounds::within_bounds(body) {
            return super::default_records(self, body, received_at);
        }
        match super::parse_json::<Slim>(body) {
            Some(slim) if slim.holds_items() => Some(normalize_owned(slim.0, received_at)),
            // Kept whole, or not in the shape read here: the whole tree, as any channel.
            _ => super::default_records(self, body, received_at),
        }
    }
}

/// A delivery parsed for what the normalizer reads of it: the event lists whole, of `users`
/// only each person's `name` and `screen_name` (the rest of a profile, most of a one-event
/// delivery's bytes, is skipped without being built), and no `apps`. It gives the same
/// records as the whole tree whenever it [holds items](Slim::holds_items); a delivery kept
/// whole (its body is then the raw JSON kept), or one whose `users` is not a map of objects,
/// is parsed whole instead.
struct Slim(Value);

impl Slim {
    /// Whether the delivery names its account and holds an item, so that no record keeps the
    /// body itself.
    fn holds_items(&self) -> bool {
        self.0.as_object().is_some_and(|object| {
            object
                .get("for_user_id")
                .and_then(ProviderId::from_json)
                .is_some()
                && holds_items(object)
        })
    }
}

/// What is read of a person in `users`.
#[derive(serde::Deserialize)]
struct Names {
    #[serde(default)]
    name: Option<Value>,
    #[serde(default)]
    screen_name: Option<Value>,
}

impl<'de> serde::Deserialize<'de> for Slim {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Top;
        impl<'de> serde::de::Visitor<'de> for Top {
            type Value = Slim;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an Account Activity delivery")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Slim, A::Error> {
                let mut object = serde_json::Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "users" => {
                            let users: std::collections::BTreeMap<String, Names> =
                                map.next_value()?;
                            let users = users
                                .into_iter()
                                .map(|(id, names)| {
                                    let mut person = serde_json::Map::new();
                                    if let Some(name) = names.name {
                                        person.insert("name".into(), name);
                                    }
                                    if let Some(handle) = names.screen_name {
                                        person.insert("screen_name".into(), handle);
                                    }
                                    (id, Value::Object(person))
                                })
                                .collect();
                            object.insert(key, Value::Object(users));
                        }
                        // The other context the normalizer never reads.
                        other if is_context(other) && other != "for_user_id" => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                        _ => {
                            let value: Value = map.next_value()?;
                            object.insert(key, value);
                        }
                    }
                }
                Ok(Slim(Value::Object(object)))
            }
        }
        deserializer.deserialize_map(Top)
    }
}

/// [`id_or_str`] of a field named by a literal, with its `_str` name written at compile time.
macro_rules! id_of {
    ($value:expr, $field:literal) => {
        id_or_str($value, concat!($field, "_str"), $field)
    };
}

/// An id as X's string: the `<field>_str` form when there is one, else the field; see
/// [`id_of!`], which names both.
fn id_or_str(value: &Value, string_field: &str, field: &str) -> Option<ProviderId> {
    value
        .get(string_field)
        .and_then(ProviderId::from_json)
        .or_else(|| value.get(field).and_then(ProviderId::from_json))
}

/// A person of the delivery, with the name `users` gives them (or the embedded user object).
fn person(body: &Value, id: &ProviderId, embedded: Option<&Value>) -> CustomerIdentity {
    let user = body
        .get("users")
        .and_then(|users| users.get(id.as_str()))
        .or(embedded);
    let name = user
        .and_then(|u| str_at(u, "/name").or_else(|| str_at(u, "/screen_name")))
        .map(str::to_owned);
    CustomerIdentity {
        customer_id: CustomerId::derive(CHANNEL, id),
        channel: CHANNEL,
        provider_user_id: id.clone(),
        display_name: name,
        identifiers: user
            .and_then(|u| str_at(u, "/screen_name"))
            .and_then(Identifier::handle)
            .into_iter()
            .collect(),
    }
}

/// The DM conversation of `customer` with `account`.
fn dm_conversation(account: &ProviderId, customer: &ProviderId) -> ConversationId {
    ConversationId::derive(CHANNEL, account, customer)
}

/// The public conversation of `author`'s tweets with `account`.
fn tweet_conversation(account: &ProviderId, author: &ProviderId) -> ConversationId {
    ConversationId::derive(CHANNEL, account, &ProviderId(format!("tweets:{author}")))
}

/// A tweet's time: `timestamp_ms`, else `created_at` in X's v1.1 form.
fn tweet_time(tweet: &Value) -> (Option<String>, Option<DateTime<Utc>>) {
    if let Some(ms) = tweet.get("timestamp_ms") {
        let (raw, at) = provider_time(Some(ms));
        if at.is_some() {
            return (raw, at);
        }
    }
    match str_at(tweet, "/created_at") {
        Some(text) => (
            Some(text.to_owned()),
            DateTime::parse_from_str(text, "%a %b %d %H:%M:%S %z %Y")
                .ok()
                .map(|t| t.with_timezone(&Utc)),
        ),
        None => (None, None),
    }
}

fn dm(event: &Value, body: &Value, account: &ProviderId, at: DateTime<Utc>) -> Option<Record> {
    if str_at(event, "/type") != Some("message_create") {
        return None;
    }
    let id = id_of!(event, "id")?;
    let create = event.get("message_create")?;
    let sender = id_of!(create, "sender_id")?;
    let recipient = value_at(create, "/target/recipient_id").and_then(ProviderId::from_json);
    let outbound = &sender == account;
    let customer_id = if outbound { recipient? } else { sender };
    let data = create.get("message_data");
    let text = data.and_then(|d| str_at(d, "/text")).map(str::to_owned);
    let media = data.and_then(|d| value_at(d, "/attachment/media"));
    let attachments: Vec<Attachment> = media
        .map(|m| Attachment {
            kind: match str_at(m, "/type") {
                Some("photo") => "image".into(),
                Some("animated_gif" | "video") => "video".into(),
                Some(other) => other.into(),
                None => "document".into(),
            },
            media_id: id_of!(m, "id").map(|id| id.0),
            url: str_at(m, "/media_url_https").map(str::to_owned),
            ..Attachment::default()
        })
        .into_iter()
        .collect();
    let kind = match attachments.first().map(|a| a.kind.as_str()) {
        Some("image") => MessageKind::Image,
        Some("video") => MessageKind::Video,
        Some(_) => MessageKind::Document,
        None if text.is_some() => MessageKind::Text,
        None => MessageKind::Unsupported,
    };
    let (provider_timestamp, sent) = provider_time(event.get("created_timestamp"));
    Some(Record::Message(Message {
        channel: CHANNEL,
        account_id: account.clone(),
        provider_message_id: id,
        conversation_id: dm_conversation(account, &customer_id),
        customer: person(body, &customer_id, None),
        direction: if outbound {
            Direction::Outbound
        } else {
            Direction::Inbound
        },
        kind,
        provider_type: Some("message_create".into()),
        text,
        attachments,
        sent_at: sent.unwrap_or(at),
        sent_at_estimated: sent.is_none(),
        provider_timestamp,
        reply_to: None,
        public: false,
        thread_id: None,
        raw: Value::Null,
        source: None,
    }))
}

fn tweet(tweet: &Value, body: &Value, account: &ProviderId, at: DateTime<Utc>) -> Option<Record> {
    let id = id_of!(tweet, "id")?;
    let user = tweet.get("user")?;
    let author = id_of!(user, "id")?;
    let replied_user = id_of!(tweet, "in_reply_to_user_id");
    let replied_status = id_of!(tweet, "in_reply_to_status_id");
    let outbound = &author == account;
    // The brand's own tweet belongs to the conversation of whom it answers; one that answers
    // no one (a post, a thread of its own) is not a customer conversation.
    let customer_id = if outbound {
        replied_user.clone().filter(|u| u != account)?
    } else {
        author.clone()
    };
    let text = value_at(tweet, "/extended_tweet/full_text")
        .and_then(Value::as_str)
        .or_else(|| str_at(tweet, "/text"))
        .map(str::to_owned);
    let kind = if outbound || replied_user.as_ref() == Some(account) {
        MessageKind::Comment
    } else {
        MessageKind::Mention
    };
    let (provider_timestamp, sent) = tweet_time(tweet);
    let embedded = (!outbound).then_some(user);
    Some(Record::Message(Message {
        channel: CHANNEL,
        account_id: account.clone(),
        provider_message_id: id,
        conversation_id: tweet_conversation(account, &customer_id),
        customer: person(body, &customer_id, embedded),
        direction: if outbound {
            Direction::Outbound
        } else {
            Direction::Inbound
        },
        kind,
        provider_type: Some("tweet".into()),
        text,
        attachments: Vec::new(),
        sent_at: sent.unwrap_or(at),
        sent_at_estimated: sent.is_none(),
        provider_timestamp,
        reply_to: replied_status.clone(),
        public: true,
        thread_id: replied_status,
        raw: Value::Null,
        source: None,
    }))
}

/// An event of the tweet or DM `refers_to`, in `conversation` with `customer`.
#[allow(clippy::too_many_arguments)]
fn event_record(
    account: &ProviderId,
    event_id: String,
    refers_to: ProviderId,
    conversation_id: ConversationId,
    customer: CustomerIdentity,
    direction: Direction,
    kind: EventKind,
    time: (Option<String>, Option<DateTime<Utc>>),
    at: DateTime<Utc>,
) -> Record {
    let (provider_timestamp, occurred) = time;
    Record::Event(Event {
        channel: CHANNEL,
        account_id: account.clone(),
        event_id: ProviderId(event_id),
        refers_to,
        conversation_id,
        customer,
        direction,
        kind,
        occurred_at: occurred.unwrap_or(at),
        occurred_at_estimated: occurred.is_none(),
        provider_timestamp,
        refers_to_unknown: false,
        raw: Value::Null,
    })
}

fn tweet_delete(
    item: &Value,
    body: &Value,
    account: &ProviderId,
    at: DateTime<Utc>,
) -> Option<Record> {
    let status = item.get("status")?;
    let id = id_of!(status, "id")?;
    let user = id_of!(status, "user_id")?;
    let direction = if &user == account {
        Direction::Outbound
    } else {
        Direction::Inbound
    };
    Some(event_record(
        account,
        format!("{id}:delete"),
        id,
        tweet_conversation(account, &user),
        person(body, &user, None),
        direction,
        EventKind::Delete,
        provider_time(item.get("timestamp_ms")),
        at,
    ))
}

fn favorite(item: &Value, body: &Value, account: &ProviderId, at: DateTime<Utc>) -> Option<Record> {
    let liked = item.get("favorited_status")?;
    let tweet_id = id_of!(liked, "id")?;
    let by = item.get("user").and_then(|u| id_of!(u, "id"))?;
    let author = liked.get("user").and_then(|u| id_of!(u, "id"));
    // A customer liking the brand's tweet, or the brand liking a customer's.
    let (customer, direction) = if &by == account {
        (author.filter(|a| a != account)?, Direction::Outbound)
    } else {
        (by.clone(), Direction::Inbound)
    };
    let time = match item.get("timestamp_ms") {
        Some(ms) => provider_time(Some(ms)),
        None => tweet_time(item),
    };
    Some(event_record(
        account,
        format!("{tweet_id}:favorite:{by}"),
        tweet_id,
        tweet_conversation(account, &customer),
        person(
            body,
            &customer,
            item.get("user").filter(|_| direction == Direction::Inbound),
        ),
        direction,
        EventKind::Reaction {
            emoji: Some("❤".into()),
        },
        time,
        at,
    ))
}

fn mark_read(
    item: &Value,
    body: &Value,
    account: &ProviderId,
    at: DateTime<Utc>,
) -> Option<Record> {
    let reader = id_of!(item, "sender_id")?;
    if &reader == account {
        // The brand read the customer's messages: nothing the conversation needs.
        return None;
    }
    let last = id_of!(item, "last_read_event_id")?;
    let created = item.get("created_timestamp");
    Some(event_record(
        account,
        format!("{last}:read:{reader}"),
        last,
        dm_conversation(account, &reader),
        person(body, &reader, None),
        Direction::Inbound,
        EventKind::Status {
            status: DeliveryStatus::Read,
            errors: Vec::new(),
        },
        provider_time(created),
        at,
    ))
}

/// Whether a delivery's object holds an item: a list that is not empty, or a value, under a
/// key that is not context (when it holds none, the delivery is kept whole).
fn holds_items(object: &serde_json::Map<String, Value>) -> bool {
    object.iter().any(|(key, value)| {
        !is_context(key)
            && match value {
                Value::Array(items) => !items.is_empty(),
                _ => true,
            }
    })
}

/// The keys of a delivery that describe its items (the users, the apps) rather than hold them.
fn is_context(key: &str) -> bool {
    matches!(key, "for_user_id" | "users" | "apps" | "user_has_blocked")
}

/// The record of one `item` of the list `key` of `body`, which moves in as its provider
/// JSON; an item nobody reads is kept as `unsupported`.
fn item_record(
    key: &str,
    item: Value,
    body: &Value,
    account: &ProviderId,
    received_at: DateTime<Utc>,
) -> Record {
    let record = match key {
        "direct_message_events" => dm(&item, body, account, received_at),
        "tweet_create_events" => tweet(&item, body, account, received_at),
        "tweet_delete_events" => tweet_delete(&item, body, account, received_at),
        "favorite_events" => favorite(&item, body, account, received_at),
        "direct_message_mark_read_events" => mark_read(&item, body, account, received_at),
        _ => None,
    };
    match record {
        Some(record) => record.with_raw(item),
        None => {
            let at = provider_time(item.get("created_timestamp"))
                .1
                .unwrap_or(received_at);
            unsupported_owned(CHANNEL, Some(account.clone()), key, item, at)
        }
    }
}

/// [`normalize`], owning the delivery: each item moves into its record as the raw JSON kept
/// instead of being copied (the users and apps stay in the body, where the items' people are
/// looked up). The same records as [`normalize`], in the same order.
pub fn normalize_owned(mut body: Value, received_at: DateTime<Utc>) -> Vec<Record> {
    let account = body.get("for_user_id").and_then(ProviderId::from_json);
    let (Some(account), Some(object)) = (account, body.as_object_mut()) else {
        return normalize(&body, received_at);
    };
    if !holds_items(object) {
        // Nothing to move: the delivery is kept whole, as it came.
        return normalize(&body, received_at);
    }
    let keys: Vec<String> = object.keys().filter(|k| !is_context(k)).cloned().collect();
    let lists: Vec<(String, Value)> = keys
        .into_iter()
        .filter_map(|k| object.remove(&k).map(|v| (k, v)))
        .collect();
    let mut records = Vec::new();
    for (key, value) in lists {
        let items = match value {
            Value::Array(items) => items,
            other => vec![other],
        };
        for item in items {
            records.push(item_record(&key, item, &body, &account, received_at));
        }
    }
    records
}

/// The records of one delivery. Never fails, never panics: every item of every list becomes
/// a record, and what is not read is kept as a notification of its list's name.
pub fn normalize(body: &Value, received_at: DateTime<Utc>) -> Vec<Record> {
    let Some(object) = body.as_object() else {
        return vec![unsupported(CHANNEL, None, "unsupported", body, received_at)];
    };
    // Every delivery of the Account Activity API names its account; one that does not is not
    // one of its deliveries, and is kept whole.
    let Some(account) = object.get("for_user_id").and_then(ProviderId::from_json) else {
        return vec![unsupported(CHANNEL, None, "unsupported", body, received_at)];
    };
    let mut records = Vec::new();
    for (key, value) in object {
        if is_context(key) {
            continue;
        }
        let items: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            other => vec![other],
        };
        for item in items {
            records.push(item_record(key, item.clone(), body, &account, received_at));
        }
    }
    if records.is_empty() {
        records.push(unsupported(
            CHANNEL,
            Some(account),
            "empty",
            body,
            received_at,
        ));
    }
    records
}

#[cfg(test)]
mod tests;
