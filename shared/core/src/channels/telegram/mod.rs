//! Telegram Bot API: one `Update` per `POST` to `/webhooks/telegram`, authenticated by the
//! `secret_token` given to `setWebhook` ([`verify`]).
//!
//! | update | record |
//! |---|---|
//! | `message`, `business_message` | a message of the chat (see below) |
//! | `channel_post` | the brand's own post in its channel: an outbound public message |
//! | `edited_message`, `edited_business_message`, `edited_channel_post` | an `edit` event of the original message |
//! | `deleted_business_messages` | a `delete` event per message |
//! | `message_reaction` | a `reaction` event of the message (`reaction.removed` when none is left) |
//! | `callback_query` | a `postback` message of the customer (a button pressed) |
//! | a service message (members joined, a pin, …) | a notification `service.<field>` |
//! | `business_connection` and anything else | a notification, kept with its raw JSON |
//!
//! * **Account**: the bot (`bot`), or the Telegram Business connection the update came
//!   through (`business_connection_id`): replies to that conversation go through it.
//! * **Message id**: `<chat id>:<message_id>` (`message_id` is unique only inside a chat);
//!   `reply_to_message` becomes `reply_to`. Ids are kept as the text of the JSON numbers.
//! * **Private chats** are conversations with the person; a message whose sender is not the
//!   chat (the business account's owner writing in a business chat) is outbound and answers
//!   it. **Groups and supergroups**: one conversation per member who writes, flagged public.
//!   **Channels**: a bot only sees the posts of channels it administers, so they are the
//!   brand's own (outbound, public).
//! * **Times**: `date` (Unix seconds); an edit's `edit_date`.

use chrono::{DateTime, Utc};
use serde_json::Value;
use std::sync::Arc;

use super::json::{provider_time, str_at, unknown_account, unsupported, value_at};
use super::{ChannelModule, ChannelSecrets, SecretField, Verification};
use crate::channel::{Channel, Webhook};
use crate::identifier::Identifier;
use crate::ids::{ConversationId, CustomerId, ProviderId};
use crate::model::{
    Attachment, CustomerIdentity, Direction, Event, EventKind, Message, MessageKind, Notification,
    Record,
};
use crate::settings::ConfigError;
use crate::verify::{NoHandshake, Secret};

pub mod verify;

pub use verify::{SECRET_TOKEN_HEADER, SecretTokenVerifier};

const CHANNEL: Channel = Channel::Telegram;

/// The account of updates that came to the bot itself (not through a business connection).
pub const BOT_ACCOUNT: &str = "bot";

/// The secrets of the Telegram webhook: its secret token(s).
pub const SECRETS: &[SecretField] = &[SecretField {
    key: "secret_tokens",
    env: "SECRET_TOKENS",
    list: true,
    hint: "the secret_token(s) given to setWebhook, comma-separated (1-256 of A-Z a-z 0-9 _ -)",
    dev_prefix: "dev-",
}];

/// The secret replies are sent with: the bot's token (`@BotFather`).
pub const BOT_TOKEN: SecretField = SecretField {
    key: "bot_token",
    env: "BOT_TOKEN",
    list: false,
    hint: "the bot's token from @BotFather (123456:ABC-…)",
    dev_prefix: "dev-",
};

/// The verifier of a bot's webhook, refusing an empty list or a token Telegram would not
/// accept (the error names `secrets.origin`, never the token).
pub fn verifier(secrets: &ChannelSecrets) -> Result<SecretTokenVerifier, ConfigError> {
    let tokens = secrets.list("secret_tokens");
    if tokens.is_empty() {
        return Err(ConfigError::Invalid {
            name: secrets.origin.clone(),
            reason: "no secret token given".into(),
        });
    }
    if let Some(n) = tokens.iter().position(|t| !verify::valid_token(t)) {
        return Err(ConfigError::Invalid {
            name: secrets.origin.clone(),
            reason: format!(
                "secret token {} is not 1-256 characters of A-Z a-z 0-9 _ - (what setWebhook accepts)",
                n + 1
            ),
        });
    }
    Ok(SecretTokenVerifier::new(
        tokens.iter().map(|t| Secret::new(t.clone())).collect(),
    ))
}

/// The Telegram module of the registry.
#[derive(Debug, Clone, Copy)]
pub struct Telegram;

/// The Telegram module of the registry.
pub static TELEGRAM: Telegram = Telegram;

impl ChannelModule for Telegram {
    fn webhook(&self) -> Webhook {
        Webhook::Telegram
    }
    fn function(&self) -> &'static str {
        "webhook-telegram"
    }
    fn secrets(&self) -> &'static [SecretField] {
        SECRETS
    }
    fn verification(&self, secrets: &ChannelSecrets) -> Result<Verification, ConfigError> {
        Ok(Verification {
            signature: Arc::new(verifier(secrets)?),
            handshake: Arc::new(NoHandshake(
                "Telegram has no handshake: POST updates with X-Telegram-Bot-Api-Secret-Token",
            )),
        })
    }
    fn normalize(&self, body: &Value, received_at: DateTime<Utc>) -> Vec<Record> {
        normalize(body, received_at)
    }
}

/// An id field (number or string) as text.
fn id_text(value: &Value, pointer: &str) -> Option<String> {
    ProviderId::from_json(value_at(value, pointer)?).map(|id| id.0)
}

/// `<chat>:<message_id>`.
fn message_key(chat: &str, message_id: &str) -> ProviderId {
    ProviderId(format!("{chat}:{message_id}"))
}

/// The chat id and message id a message id of this channel is made of (`None` for ids of
/// other shapes, such as a pressed button's).
pub fn split_message_id(id: &ProviderId) -> Option<(&str, &str)> {
    let (chat, message) = id.as_str().rsplit_once(':')?;
    let number = |s: &str| {
        let digits = s.strip_prefix('-').unwrap_or(s);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    };
    (number(chat) && number(message)).then_some((chat, message))
}

/// The name a Telegram user or chat shows.
fn display_name(person: &Value) -> Option<String> {
    let first = str_at(person, "/first_name");
    let last = str_at(person, "/last_name");
    match (first, last) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (Some(f), None) => Some(f.to_owned()),
        (None, Some(l)) => Some(l.to_owned()),
        (None, None) => str_at(person, "/title")
            .or_else(|| str_at(person, "/username"))
            .map(str::to_owned),
    }
}

/// The account of an update: its business connection, or the bot.
fn account_of(item: &Value) -> ProviderId {
    id_text(item, "/business_connection_id")
        .map_or_else(|| ProviderId::from(BOT_ACCOUNT), ProviderId)
}

/// Who a message of `chat` is with and which conversation it belongs to: the customer's
/// identity, the conversation key, whether it is public, and whether `from` is the customer.
struct Party {
    customer: CustomerIdentity,
    conversation_key: ProviderId,
    public: bool,
    from_customer: bool,
}

fn party(item: &Value) -> Option<Party> {
    let chat = item.get("chat")?;
    let chat_id = id_text(chat, "/id")?;
    let chat_type = str_at(chat, "/type").unwrap_or("private");
    let from = item.get("from");
    let from_id = from.and_then(|f| id_text(f, "/id"));
    let identity = |id: String, who: Option<&Value>| {
        let provider_user_id = ProviderId(id);
        CustomerIdentity {
            customer_id: CustomerId::derive(CHANNEL, &provider_user_id),
            channel: CHANNEL,
            provider_user_id,
            display_name: who.and_then(display_name),
            identifiers: who
                .and_then(|w| str_at(w, "/username"))
                .and_then(Identifier::handle)
                .into_iter()
                .collect(),
        }
    };
    Some(match chat_type {
        "group" | "supergroup" => {
            let author = from_id
                .clone()
                .or_else(|| id_text(item, "/sender_chat/id"))?;
            let who = from.or_else(|| item.get("sender_chat"));
            Party {
                conversation_key: ProviderId(format!("{chat_id}:{author}")),
                customer: identity(author, who),
                public: true,
                from_customer: from.and_then(|f| f.get("is_bot")).and_then(Value::as_bool)
                    != Some(true),
            }
        }
        "channel" => Party {
            conversation_key: ProviderId(chat_id.clone()),
            customer: identity(chat_id, Some(chat)),
            public: true,
            from_customer: false,
        },
        _ => Party {
            from_customer: from_id.as_deref().is_none_or(|f| f == chat_id),
            conversation_key: ProviderId(chat_id.clone()),
            customer: identity(chat_id, Some(chat)),
            public: false,
        },
    })
}

/// The file of a media message: its kind, the provider's type name and the attachment.
fn media(item: &Value) -> Option<(MessageKind, &'static str, Attachment)> {
    const KINDS: [(&str, MessageKind, &str); 8] = [
        ("photo", MessageKind::Image, "image"),
        ("video", MessageKind::Video, "video"),
        ("animation", MessageKind::Video, "video"),
        ("video_note", MessageKind::Video, "video"),
        ("voice", MessageKind::Audio, "audio"),
        ("audio", MessageKind::Audio, "audio"),
        ("document", MessageKind::Document, "document"),
        ("sticker", MessageKind::Sticker, "sticker"),
    ];
    KINDS.iter().find_map(|&(field, kind, attachment_kind)| {
        let value = item.get(field)?;
        // A photo is a list of sizes: the largest is the last.
        let file = match value {
            Value::Array(sizes) => sizes.last()?,
            other => other,
        };
        Some((
            kind,
            field_name(field),
            Attachment {
                kind: attachment_kind.to_owned(),
                media_id: str_at(file, "/file_id").map(str::to_owned),
                mime_type: str_at(file, "/mime_type").map(str::to_owned),
                filename: str_at(file, "/file_name").map(str::to_owned),
                ..Attachment::default()
            },
        ))
    })
}

/// The static name of a known field (the provider type of the message).
fn field_name(field: &str) -> &'static str {
    match field {
        "photo" => "photo",
        "video" => "video",
        "animation" => "animation",
        "video_note" => "video_note",
        "voice" => "voice",
        "audio" => "audio",
        "document" => "document",
        "sticker" => "sticker",
        _ => "message",
    }
}

/// What a message is, its provider type, text and attachments.
fn content(item: &Value) -> (MessageKind, String, Option<String>, Vec<Attachment>) {
    let text = str_at(item, "/text")
        .or_else(|| str_at(item, "/caption"))
        .map(str::to_owned);
    if let Some((kind, name, attachment)) = media(item) {
        return (kind, name.to_owned(), text, vec![attachment]);
    }
    if item.get("text").is_some() {
        return (MessageKind::Text, "text".into(), text, Vec::new());
    }
    for (field, kind) in [
        ("location", MessageKind::Location),
        ("venue", MessageKind::Location),
        ("contact", MessageKind::Contacts),
        ("story", MessageKind::Share),
        ("poll", MessageKind::Interactive),
        ("dice", MessageKind::Interactive),
        ("web_app_data", MessageKind::Interactive),
        ("users_shared", MessageKind::Interactive),
        ("successful_payment", MessageKind::Order),
    ] {
        if item.get(field).is_some() {
            let text = text.or_else(|| match field {
                "venue" => str_at(item, "/venue/title").map(str::to_owned),
                "poll" => str_at(item, "/poll/question").map(str::to_owned),
                "web_app_data" => str_at(item, "/web_app_data/data").map(str::to_owned),
                _ => None,
            });
            return (kind, field.to_owned(), text, Vec::new());
        }
    }
    // Service messages (members joined, a pinned message, …) and what nobody knows yet.
    let provider_type = item
        .as_object()
        .and_then(|o| {
            o.keys().find(|k| {
                !matches!(
                    k.as_str(),
                    "message_id"
                        | "from"
                        | "chat"
                        | "date"
                        | "sender_chat"
                        | "business_connection_id"
                        | "message_thread_id"
                        | "is_topic_message"
                        | "reply_to_message"
                        | "forward_origin"
                        | "entities"
                        | "reply_markup"
                        | "edit_date"
                )
            })
        })
        .cloned()
        .unwrap_or_else(|| "unknown".into());
    (MessageKind::System, provider_type, text, Vec::new())
}

/// The message record of a `message`, `business_message` or `channel_post`; a service
/// message (members joined, a message pinned, …) is a notification `service.<field>`.
fn message(item: &Value, raw: &Value, received_at: DateTime<Utc>) -> Option<Record> {
    let party = party(item)?;
    let chat_id = id_text(item, "/chat/id")?;
    let message_id = id_text(item, "/message_id")?;
    let account = account_of(item);
    let (kind, provider_type, text, attachments) = content(item);
    let (provider_timestamp, at) = provider_time(item.get("date"));
    if kind == MessageKind::System {
        // Members joined, a message pinned, …: nobody waits on it; kept as a notification.
        let topic = format!("service.{provider_type}");
        return Some(notification(
            &topic,
            raw,
            account,
            at.unwrap_or(received_at),
        ));
    }
    Some(Record::Message(Message {
        channel: CHANNEL,
        conversation_id: ConversationId::derive(CHANNEL, &account, &party.conversation_key),
        customer: party.customer,
        account_id: account,
        provider_message_id: message_key(&chat_id, &message_id),
        direction: if party.from_customer {
            Direction::Inbound
        } else {
            Direction::Outbound
        },
        kind,
        provider_type: Some(provider_type),
        text,
        attachments,
        sent_at: at.unwrap_or(received_at),
        sent_at_estimated: at.is_none(),
        provider_timestamp,
        reply_to: id_text(item, "/reply_to_message/message_id")
            .map(|id| message_key(&chat_id, &id)),
        public: party.public,
        thread_id: id_text(item, "/message_thread_id").map(ProviderId),
        raw: raw.clone(),
        source: None,
    }))
}

/// An event of the message `message_id` of the chat of `item`.
#[allow(clippy::too_many_arguments)]
fn event(
    item: &Value,
    message_id: &str,
    event_id: String,
    kind: EventKind,
    at_field: Option<&Value>,
    raw: &Value,
    received_at: DateTime<Utc>,
) -> Option<Record> {
    let party = party(item)?;
    let chat_id = id_text(item, "/chat/id")?;
    let account = account_of(item);
    let (provider_timestamp, at) = provider_time(at_field);
    Some(Record::Event(Event {
        channel: CHANNEL,
        conversation_id: ConversationId::derive(CHANNEL, &account, &party.conversation_key),
        customer: party.customer,
        account_id: account,
        event_id: ProviderId(event_id),
        refers_to: message_key(&chat_id, message_id),
        direction: if party.from_customer {
            Direction::Inbound
        } else {
            Direction::Outbound
        },
        kind,
        occurred_at: at.unwrap_or(received_at),
        occurred_at_estimated: at.is_none(),
        provider_timestamp,
        refers_to_unknown: false,
        raw: raw.clone(),
    }))
}

/// The edit of a message: an event of the original, keyed by its edit time.
fn edit(item: &Value, raw: &Value, received_at: DateTime<Utc>) -> Option<Record> {
    let chat_id = id_text(item, "/chat/id")?;
    let message_id = id_text(item, "/message_id")?;
    let edited = id_text(item, "/edit_date").unwrap_or_else(|| "0".into());
    let text = str_at(item, "/text")
        .or_else(|| str_at(item, "/caption"))
        .map(str::to_owned);
    event(
        item,
        &message_id,
        format!("{chat_id}:{message_id}:edit:{edited}"),
        EventKind::Edit { text },
        item.get("edit_date").or_else(|| item.get("date")),
        raw,
        received_at,
    )
}

/// A change of a member's reactions to a message: the reaction now (the first one added, or
/// the first left), or `reaction.removed` when none is left.
fn reaction(item: &Value, raw: &Value, received_at: DateTime<Utc>) -> Option<Record> {
    let chat_id = id_text(item, "/chat/id")?;
    let message_id = id_text(item, "/message_id")?;
    let emojis = |field: &str| -> Vec<String> {
        item.get(field)
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|r| {
                        str_at(r, "/emoji")
                            .or_else(|| str_at(r, "/custom_emoji_id"))
                            .map(str::to_owned)
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (old, new) = (emojis("old_reaction"), emojis("new_reaction"));
    let emoji = new
        .iter()
        .find(|e| !old.contains(e))
        .or_else(|| new.first())
        .cloned();
    let who = id_text(item, "/user/id")
        .or_else(|| id_text(item, "/actor_chat/id"))
        .unwrap_or_default();
    let date = id_text(item, "/date").unwrap_or_default();
    // The reacting member, not the message's author, is who the event is from.
    let mut as_message = item.clone();
    if let Some(user) = item.get("user") {
        as_message["from"] = user.clone();
    }
    event(
        &as_message,
        &message_id,
        format!("{chat_id}:{message_id}:reaction:{who}:{date}"),
        EventKind::Reaction { emoji },
        item.get("date"),
        raw,
        received_at,
    )
}

/// A pressed inline button: a postback message of the person who pressed it.
fn callback(item: &Value, raw: &Value, received_at: DateTime<Utc>) -> Option<Record> {
    let id = id_text(item, "/id")?;
    let from = item.get("from")?;
    let user = id_text(from, "/id")?;
    // The chat of the message with the button, else the person's private chat.
    let mut chat = value_at(item, "/message/chat")
        .filter(|c| c.is_object())
        .cloned()
        .unwrap_or_else(|| serde_json::json!({"id": user, "type": "private"}));
    if chat.get("id").is_none() {
        chat["id"] = Value::String(user.clone());
    }
    let as_message = serde_json::json!({"chat": chat, "from": from,
        "business_connection_id": value_at(item, "/message/business_connection_id")});
    let party = party(&as_message)?;
    let account = account_of(&as_message);
    let chat_id = id_text(&chat, "/id")?;
    Some(Record::Message(Message {
        channel: CHANNEL,
        conversation_id: ConversationId::derive(CHANNEL, &account, &party.conversation_key),
        customer: party.customer,
        account_id: account,
        provider_message_id: ProviderId(format!("callback:{id}")),
        direction: Direction::Inbound,
        kind: MessageKind::Postback,
        provider_type: Some("callback_query".into()),
        text: str_at(item, "/data")
            .or_else(|| str_at(item, "/game_short_name"))
            .map(str::to_owned),
        attachments: Vec::new(),
        sent_at: received_at,
        sent_at_estimated: true,
        provider_timestamp: None,
        reply_to: id_text(item, "/message/message_id").map(|m| message_key(&chat_id, &m)),
        public: party.public,
        thread_id: None,
        raw: raw.clone(),
        source: None,
    }))
}

/// A notification of `kind`, keyed by the update's id when it has one.
fn notification(kind: &str, body: &Value, account: ProviderId, at: DateTime<Utc>) -> Record {
    match id_text(body, "/update_id") {
        Some(update) => Record::Notification(Notification {
            channel: CHANNEL,
            account_id: account,
            notification_id: ProviderId(format!("{kind}:{update}")),
            topic: kind.to_owned(),
            occurred_at: at,
            raw: body.clone(),
        }),
        None => unsupported(CHANNEL, Some(account), kind, body, at),
    }
}

/// The records of one update. Never fails, never panics: an update of a kind it does not
/// read, or one missing what it needs, is kept as a notification. Telegram sends one kind per
/// update; should one carry several, each is read.
pub fn normalize(body: &Value, received_at: DateTime<Utc>) -> Vec<Record> {
    let Some(object) = body.as_object() else {
        return vec![unsupported(CHANNEL, None, "unsupported", body, received_at)];
    };
    let records: Vec<Record> = object
        .iter()
        .filter(|(k, _)| k.as_str() != "update_id")
        .flat_map(|(kind, item)| kind_records(kind, item, body, received_at))
        .collect();
    if records.is_empty() {
        return vec![notification("empty", body, unknown_account(), received_at)];
    }
    records
}

/// The records of the part `kind` of an update.
fn kind_records(kind: &str, item: &Value, body: &Value, received_at: DateTime<Utc>) -> Vec<Record> {
    let records: Option<Vec<Record>> = match kind {
        "message" | "business_message" | "channel_post" => {
            message(item, body, received_at).map(|r| vec![r])
        }
        "edited_message" | "edited_business_message" | "edited_channel_post" => {
            edit(item, body, received_at).map(|r| vec![r])
        }
        "message_reaction" => reaction(item, body, received_at).map(|r| vec![r]),
        "callback_query" => callback(item, body, received_at).map(|r| vec![r]),
        "deleted_business_messages" => {
            let ids = item.get("message_ids").and_then(Value::as_array);
            ids.filter(|ids| !ids.is_empty()).and_then(|ids| {
                let chat_id = id_text(item, "/chat/id")?;
                let update = id_text(body, "/update_id").unwrap_or_default();
                ids.iter()
                    .map(|id| {
                        let id = ProviderId::from_json(id)?.0;
                        event(
                            item,
                            &id,
                            format!("{chat_id}:{id}:delete:{update}"),
                            EventKind::Delete,
                            None,
                            body,
                            received_at,
                        )
                    })
                    .collect()
            })
        }
        _ => None,
    };
    records.unwrap_or_else(|| {
        let account = if kind == "business_connection" {
            id_text(item, "/id").map_or_else(|| ProviderId::from(BOT_ACCOUNT), ProviderId)
        } else if item.is_object() {
            account_of(item)
        } else {
            unknown_account()
        };
        vec![notification(kind, body, account, received_at)]
    })
}

#[cfg(test)]
mod tests;
