//! WhatsApp Business Cloud API deliveries.
//!
//! Envelope: `{"object":"whatsapp_business_account","entry":[{"id":WABA,"changes":[{"field":…,
//! "value":{…}}]}]}`. Every entry, every change and every item of `messages[]`, `statuses[]`,
//! `message_echoes[]` and `calls[]` becomes a record:
//!
//! | item | record |
//! |---|---|
//! | `messages[]` of type `reaction`, `edit`, `revoke` | [`Event`] on the message it names |
//! | other `messages[]` | inbound [`Message`]; unknown types are `unsupported` |
//! | `message_echoes[]` (the business app's own sends) | outbound message, or outbound event |
//! | `statuses[]` | status [`Event`] on our outbound message (`<id>:<status>`), or a call state |
//! | `calls[]` `connect` | a `call` message; other call events are events on the call |
//! | a value without item lists (`account_update`, `user_preferences`, …) | [`Notification`] |
//! | anything else in a value (`errors`, `groups`, …), or a shape nobody knows | [`Notification`] |
//!
//! The customer of an item is the user side of it, decided from `metadata` and `contacts[]`
//! (echoes of edits and revokes have `from`/`to` the other way round in real payloads).
//!
//! [`Event`]: crate::model::Event
//! [`Message`]: crate::model::Message
//! [`Notification`]: crate::model::Notification

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::channels::json::{
    id_at, provider_time, str_at, take_array, take_object, unknown_account, unsupported,
    unsupported_owned, value_at,
};
use crate::identifier::Identifier;
use crate::ids::{ConversationId, CustomerId, digest_json};
use crate::model::{
    Attachment, Channel, CustomerIdentity, DeliveryStatus, Direction, Event, EventKind, Message,
    MessageKind, ProviderError, ProviderId, Record,
};

const CHANNEL: Channel = Channel::Whatsapp;

/// The value keys that hold items this module turns into messages and events.
const ITEM_LISTS: [&str; 4] = ["messages", "message_echoes", "statuses", "calls"];
/// The value keys that only describe the items (the business number, the users' profiles).
const CONTEXT_KEYS: [&str; 3] = ["messaging_product", "metadata", "contacts"];

/// Normalizes one WhatsApp delivery. Never fails: see the module docs. Takes the delivery by
/// value: each item moves into its record as the raw JSON kept, instead of being copied.
pub fn normalize(mut body: Value, received_at: DateTime<Utc>) -> Vec<Record> {
    let mut out = Vec::new();
    let Some(entries) = take_array(&mut body, "entry") else {
        out.push(unsupported(
            CHANNEL,
            None,
            "unsupported",
            &body,
            received_at,
        ));
        return out;
    };
    for mut entry in entries {
        let waba = id_at(&entry, "/id");
        let Some(changes) = take_array(&mut entry, "changes") else {
            out.push(unsupported(
                CHANNEL,
                waba,
                "unsupported",
                &entry,
                received_at,
            ));
            continue;
        };
        for change in changes {
            normalize_change(change, waba.as_ref(), received_at, &mut out);
        }
    }
    out
}

fn normalize_change(
    mut change: Value,
    waba: Option<&ProviderId>,
    received_at: DateTime<Utc>,
    out: &mut Vec<Record>,
) {
    let field = str_at(&change, "/field")
        .unwrap_or("unsupported")
        .to_owned();
    let Some(mut map) = take_object(&mut change, "value") else {
        out.push(unsupported(
            CHANNEL,
            waba.cloned(),
            &field,
            &change,
            received_at,
        ));
        return;
    };
    let account_id = id_at_map(&map, "phone_number_id")
        .or_else(|| waba.cloned())
        .unwrap_or_else(unknown_account);
    if !ITEM_LISTS.iter().any(|k| map.contains_key(*k)) {
        // A notification that is not about a conversation: account updates, template reviews,
        // user preferences, user id changes. Kept whole, as one record.
        let value = Value::Object(map);
        out.push(notification(&account_id, received_at, &field, value));
        return;
    }
    let business_number = map
        .get("metadata")
        .and_then(|m| str_at(m, "/display_phone_number"))
        .map(str::to_owned);
    // The context keys only describe the items; the items move out of the map one by one.
    let contacts = match map.remove("contacts") {
        Some(Value::Array(contacts)) => contacts,
        _ => Vec::new(),
    };
    let ctx = Context {
        account_id,
        business_number: business_number.as_deref(),
        contacts: &contacts,
        received_at,
    };
    for (key, item_list) in map {
        let key = key.as_str();
        if CONTEXT_KEYS.contains(&key) {
            continue;
        }
        let items = match (ITEM_LISTS.contains(&key), item_list) {
            (true, Value::Array(items)) => items,
            (_, item_list) => {
                // `errors` beside the items, group updates, fields Meta adds later.
                let topic = format!("{field}.{key}");
                out.push(notification(
                    &ctx.account_id,
                    ctx.received_at,
                    &topic,
                    item_list,
                ));
                continue;
            }
        };
        for item in items {
            let record = match key {
                "messages" => ctx.message(&item, Direction::Inbound),
                "message_echoes" => ctx.message(&item, Direction::Outbound),
                "statuses" => ctx.status(&item),
                _ => ctx.call(&item),
            };
            out.push(record.with_raw(item));
        }
    }
}

/// The id at `metadata.<key>` of a change's value.
fn id_at_map(map: &serde_json::Map<String, Value>, key: &str) -> Option<ProviderId> {
    map.get("metadata")
        .and_then(|m| m.get(key))
        .and_then(ProviderId::from_json)
}

fn notification(
    account_id: &ProviderId,
    received_at: DateTime<Utc>,
    topic: &str,
    raw: Value,
) -> Record {
    let at = provider_time(raw.get("timestamp")).1.unwrap_or(received_at);
    unsupported_owned(CHANNEL, Some(account_id.clone()), topic, raw, at)
}

/// What identifies the person of `user_id` beyond WhatsApp: the phone number of a `wa_id`, and
/// the business-scoped user id (`user_id`) of a contact entry that carries one, so that an
/// identity keyed by the number and one keyed by the user id are found to be one person.
fn identifiers(user_id: &ProviderId, contact: Option<&Value>) -> Vec<Identifier> {
    let mut found = Vec::with_capacity(2);
    let wa_id = contact.and_then(|c| str_at(c, "/wa_id"));
    let user = contact.and_then(|c| str_at(c, "/user_id"));
    let number = Identifier::wa_id(user_id.as_str());
    // A customer keyed by a business-scoped id is one.
    let scoped = number
        .is_none()
        .then(|| Identifier::whatsapp_user(user_id.as_str()))
        .flatten();
    for id in [number, wa_id.and_then(Identifier::wa_id)]
        .into_iter()
        .flatten()
        .chain(
            [user.and_then(Identifier::whatsapp_user), scoped]
                .into_iter()
                .flatten(),
        )
    {
        if !found.contains(&id) {
            found.push(id);
        }
    }
    found
}

struct Context<'a> {
    account_id: ProviderId,
    business_number: Option<&'a str>,
    contacts: &'a [Value],
    received_at: DateTime<Utc>,
}

/// Fields common to every item: identity, time, customer.
struct ItemBase {
    id: ProviderId,
    provider_timestamp: Option<String>,
    at: DateTime<Utc>,
    estimated: bool,
    customer: CustomerIdentity,
    conversation_id: ConversationId,
}

impl Context<'_> {
    fn base(&self, item: &Value, customer_candidates: &[Option<ProviderId>]) -> ItemBase {
        let id = id_at(item, "/id")
            .unwrap_or_else(|| ProviderId(format!("synthetic:{}", digest_json(item))));
        let (provider_timestamp, at) = provider_time(item.get("timestamp"));
        let customer = self.customer(customer_candidates);
        ItemBase {
            id,
            provider_timestamp,
            at: at.unwrap_or(self.received_at),
            estimated: at.is_none(),
            conversation_id: ConversationId::derive(
                CHANNEL,
                &self.account_id,
                &customer.provider_user_id,
            ),
            customer,
        }
    }

    /// The user side of an item. Candidates come in order of preference: one that is a known
    /// contact wins, then one that is neither the business number nor a placeholder, then the
    /// only contact of the change, then the first candidate.
    fn customer(&self, candidates: &[Option<ProviderId>]) -> CustomerIdentity {
        let contact_ids = |c: &Value| [id_at(c, "/wa_id"), id_at(c, "/user_id")];
        let is_contact = |c: &Value, id: &ProviderId| {
            ["wa_id", "user_id"]
                .iter()
                .any(|key| c.get(*key).is_some_and(|v| id.matches_json(v)))
        };
        let present: Vec<&ProviderId> = candidates.iter().flatten().collect();
        let known = present.iter().find_map(|id| {
            let contact = self.contacts.iter().find(|c| is_contact(c, id))?;
            Some(((*id).clone(), Some(contact)))
        });
        let plausible = || {
            present
                .iter()
                .find(|id| self.business_number != Some(id.as_str()) && !is_placeholder(id))
                .map(|id| ((*id).clone(), None))
        };
        let only_contact = || match self.contacts {
            [only] => contact_ids(only)
                .into_iter()
                .flatten()
                .next()
                .map(|id| (id, Some(only))),
            _ => None,
        };
        let (user_id, contact) = known
            .or_else(plausible)
            .or_else(only_contact)
            .unwrap_or_else(|| {
                let first = present.first().map(|id| (*id).clone());
                (first.unwrap_or_else(unknown_user), None)
            });
        let display_name = contact
            .and_then(|c| str_at(c, "/profile/name"))
            .map(str::to_owned);
        CustomerIdentity {
            customer_id: CustomerId::derive(CHANNEL, &user_id),
            channel: CHANNEL,
            identifiers: identifiers(&user_id, contact),
            provider_user_id: user_id,
            display_name,
        }
    }

    fn message(&self, item: &Value, direction: Direction) -> Record {
        let candidates = match direction {
            Direction::Inbound => vec![
                id_at(item, "/from"),
                id_at(item, "/from_user_id"),
                id_at(item, "/system/user_id"),
            ],
            Direction::Outbound => vec![
                id_at(item, "/to"),
                id_at(item, "/to_user_id"),
                id_at(item, "/from"),
            ],
        };
        let base = self.base(item, &candidates);
        let provider_type = str_at(item, "/type").map(str::to_owned);
        let event_kind = match provider_type.as_deref() {
            Some("reaction") => Some((
                id_at(item, "/reaction/message_id"),
                EventKind::Reaction {
                    emoji: str_at(item, "/reaction/emoji").map(str::to_owned),
                },
            )),
            Some("edit") => Some((
                id_at(item, "/edit/original_message_id"),
                EventKind::Edit {
                    text: value_at(item, "/edit/message").and_then(content_text),
                },
            )),
            Some("revoke") => Some((
                id_at(item, "/revoke/original_message_id"),
                EventKind::Delete,
            )),
            _ => None,
        };
        if let Some((target, kind)) = event_kind {
            // An event without the id of its target still refers to *something*; keep it with
            // its own id as the target rather than drop it.
            let refers_to = target.unwrap_or_else(|| base.id.clone());
            return self.event(base, refers_to, direction, kind);
        }
        let kind = match provider_type.as_deref() {
            Some("text") => MessageKind::Text,
            Some("image") => MessageKind::Image,
            Some("audio") | Some("voice") => MessageKind::Audio,
            Some("video") => MessageKind::Video,
            Some("document") => MessageKind::Document,
            Some("sticker") => MessageKind::Sticker,
            Some("location") => MessageKind::Location,
            Some("contacts") => MessageKind::Contacts,
            Some("interactive") => MessageKind::Interactive,
            Some("button") => MessageKind::Button,
            Some("order") => MessageKind::Order,
            Some("system") => MessageKind::System,
            _ => MessageKind::Unsupported,
        };
        Record::Message(Message {
            channel: CHANNEL,
            account_id: self.account_id.clone(),
            provider_message_id: base.id,
            conversation_id: base.conversation_id,
            customer: base.customer,
            direction,
            kind,
            provider_type,
            text: content_text(item),
            attachments: attachments(item),
            sent_at: base.at,
            sent_at_estimated: base.estimated,
            provider_timestamp: base.provider_timestamp,
            reply_to: id_at(item, "/context/id"),
            public: false,
            thread_id: None,
            raw: Value::Null,
            source: None,
        })
    }

    fn status(&self, item: &Value) -> Record {
        let base = self.base(
            item,
            &[
                id_at(item, "/recipient_id"),
                id_at(item, "/recipient_user_id"),
            ],
        );
        let status = str_at(item, "/status").unwrap_or("unknown");
        let refers_to = base.id.clone();
        let mut base = base;
        base.id = ProviderId(format!("{}:{status}", base.id));
        let kind = if str_at(item, "/type") == Some("call") {
            EventKind::Call {
                state: status.to_ascii_lowercase(),
            }
        } else {
            EventKind::Status {
                status: DeliveryStatus::parse(status),
                errors: errors(item),
            }
        };
        self.event(base, refers_to, Direction::Outbound, kind)
    }

    fn call(&self, item: &Value) -> Record {
        let direction = match str_at(item, "/direction") {
            Some("BUSINESS_INITIATED") => Direction::Outbound,
            _ => Direction::Inbound,
        };
        let candidates = match direction {
            Direction::Inbound => [
                id_at(item, "/from"),
                id_at(item, "/from_user_id"),
                id_at(item, "/to"),
            ],
            Direction::Outbound => [
                id_at(item, "/to"),
                id_at(item, "/to_user_id"),
                id_at(item, "/from"),
            ],
        };
        let mut base = self.base(item, &candidates);
        let event = str_at(item, "/event")
            .unwrap_or("unknown")
            .to_ascii_lowercase();
        if event == "connect" {
            return Record::Message(Message {
                channel: CHANNEL,
                account_id: self.account_id.clone(),
                provider_message_id: base.id,
                conversation_id: base.conversation_id,
                customer: base.customer,
                direction,
                kind: MessageKind::Call,
                provider_type: Some("call".into()),
                text: None,
                attachments: Vec::new(),
                sent_at: base.at,
                sent_at_estimated: base.estimated,
                provider_timestamp: base.provider_timestamp,
                reply_to: None,
                public: false,
                thread_id: None,
                raw: Value::Null,
                source: None,
            });
        }
        let refers_to = base.id.clone();
        base.id = ProviderId(format!("{}:{event}", base.id));
        self.event(base, refers_to, direction, EventKind::Call { state: event })
    }

    fn event(
        &self,
        base: ItemBase,
        refers_to: ProviderId,
        direction: Direction,
        kind: EventKind,
    ) -> Record {
        Record::Event(Event {
            channel: CHANNEL,
            account_id: self.account_id.clone(),
            event_id: base.id,
            refers_to,
            conversation_id: base.conversation_id,
            customer: base.customer,
            direction,
            kind,
            occurred_at: base.at,
            occurred_at_estimated: base.estimated,
            provider_timestamp: base.provider_timestamp,
            refers_to_unknown: false,
            raw: Value::Null,
        })
    }
}

fn unknown_user() -> ProviderId {
    ProviderId("unknown".into())
}

/// Library fixtures write `<WHATSAPP_USER_PHONE_NUMBER>` where a number would be.
fn is_placeholder(id: &ProviderId) -> bool {
    id.as_str().starts_with('<')
}

/// The human-readable content of a message: its text, caption, chosen option or body.
fn content_text(item: &Value) -> Option<String> {
    const POINTERS: [&str; 14] = [
        "/text/body",
        "/image/caption",
        "/video/caption",
        "/document/caption",
        "/audio/caption",
        "/button/text",
        "/interactive/button_reply/title",
        "/interactive/list_reply/title",
        "/interactive/nfm_reply/body",
        "/order/text",
        "/system/body",
        "/location/name",
        "/location/address",
        "/reaction/emoji",
    ];
    POINTERS
        .iter()
        .find_map(|p| str_at(item, p))
        .map(str::to_owned)
}

fn attachments(item: &Value) -> Vec<Attachment> {
    ["image", "audio", "video", "document", "sticker", "voice"]
        .into_iter()
        .filter_map(|kind| {
            let media = item.get(kind).filter(|m| m.is_object())?;
            Some(Attachment {
                kind: kind.to_owned(),
                media_id: id_at(media, "/id").map(|id| id.0),
                url: str_at(media, "/url").map(str::to_owned),
                mime_type: str_at(media, "/mime_type").map(str::to_owned),
                sha256: str_at(media, "/sha256").map(str::to_owned),
                filename: str_at(media, "/filename").map(str::to_owned),
            })
        })
        .collect()
}

fn errors(item: &Value) -> Vec<ProviderError> {
    item.get("errors")
        .and_then(Value::as_array)
        .map(|errs| {
            errs.iter()
                .map(|e| ProviderError {
                    code: id_at(e, "/code").map(|c| c.0),
                    title: str_at(e, "/title")
                        .or_else(|| str_at(e, "/message"))
                        .map(str::to_owned),
                    details: str_at(e, "/error_data/details").map(str::to_owned),
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn delivery(value: Value) -> Value {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [
            {"field": "messages", "value": value}
        ]}]})
    }

    #[test]
    fn a_text_message_keeps_ids_time_and_customer() {
        let body = delivery(json!({
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "PNID"},
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": "5511999990000"}],
            "messages": [{"from": "5511999990000", "id": "wamid.A", "timestamp": "1730231903",
                          "type": "text", "text": {"body": "hola"}, "context": {"id": "wamid.PREV"}}]
        }));
        let records = normalize(body.clone(), now());
        let [Record::Message(m)] = records.as_slice() else {
            panic!("{records:?}")
        };
        assert_eq!(m.provider_message_id.as_str(), "wamid.A");
        assert_eq!(m.account_id.as_str(), "PNID");
        assert_eq!(m.customer.provider_user_id.as_str(), "5511999990000");
        assert_eq!(m.customer.display_name.as_deref(), Some("Ana"));
        assert_eq!(m.text.as_deref(), Some("hola"));
        assert_eq!(m.sent_at.timestamp(), 1_730_231_903);
        assert_eq!(m.provider_timestamp.as_deref(), Some("1730231903"));
        assert_eq!(
            m.reply_to.as_ref().map(ProviderId::as_str),
            Some("wamid.PREV")
        );
        assert_eq!(m.direction, Direction::Inbound);
    }

    #[test]
    fn numeric_ids_and_unreadable_timestamps_are_kept() {
        let body = delivery(json!({
            "metadata": {"phone_number_id": 123},
            "messages": [{"from": 5511, "id": 42, "timestamp": "TIMESTAMP", "type": "text",
                          "text": {"body": "x"}}]
        }));
        let records = normalize(body.clone(), now());
        let Record::Message(m) = &records[0] else {
            panic!()
        };
        assert_eq!(m.provider_message_id.as_str(), "42");
        assert_eq!(m.account_id.as_str(), "123");
        assert_eq!(m.provider_timestamp.as_deref(), Some("TIMESTAMP"));
        assert!(m.sent_at_estimated);
        assert_eq!(m.sent_at, now());
    }

    #[test]
    fn an_unknown_type_is_an_unsupported_message_with_its_raw_json() {
        let item = json!({"from": "1", "id": "wamid.U", "timestamp": "1", "type": "hologram",
                          "hologram": {"depth": 3}});
        let records = normalize(delivery(json!({"messages": [item.clone()]})), now());
        let Record::Message(m) = &records[0] else {
            panic!()
        };
        assert_eq!(m.kind, MessageKind::Unsupported);
        assert_eq!(m.provider_type.as_deref(), Some("hologram"));
        assert_eq!(m.raw, item);
    }

    #[test]
    fn reactions_edits_and_revokes_are_events_on_their_target() {
        let body = delivery(json!({"messages": [
            {"from": "1", "id": "wamid.R", "timestamp": "1", "type": "reaction",
             "reaction": {"message_id": "wamid.T", "emoji": ""}},
            {"from": "1", "id": "wamid.E", "timestamp": "1", "type": "edit",
             "edit": {"original_message_id": "wamid.T", "message": {"type": "text", "text": {"body": "new"}}}},
            {"from": "1", "id": "wamid.D", "timestamp": "1", "type": "revoke",
             "revoke": {"original_message_id": "wamid.T"}}
        ]}));
        let kinds: Vec<(String, String)> = normalize(body.clone(), now())
            .into_iter()
            .map(|r| match r {
                Record::Event(e) => (e.kind.name(), e.refers_to.0),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("reaction.removed".into(), "wamid.T".into()),
                ("edit".into(), "wamid.T".into()),
                ("delete".into(), "wamid.T".into())
            ]
        );
    }

    #[test]
    fn statuses_are_keyed_by_message_and_status() {
        let body = delivery(json!({"statuses": [
            {"id": "wamid.O", "status": "delivered", "timestamp": "2", "recipient_id": "1"},
            {"id": "wamid.O", "status": "read", "timestamp": "3", "recipient_id": "1"}
        ]}));
        let ids: Vec<String> = normalize(body.clone(), now())
            .iter()
            .map(|r| match r {
                Record::Event(e) => e.event_id.0.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids, ["wamid.O:delivered", "wamid.O:read"]);
    }

    #[test]
    fn values_without_items_and_extra_keys_become_notifications() {
        let body = json!({"entry": [{"id": "W", "changes": [
            {"field": "account_update", "value": {"event": "X"}},
            {"field": "messages", "value": {"messages": [], "errors": [{"code": 1}]}},
            {"field": "messages"}
        ]}, {"id": "W2"}]});
        let topics: Vec<String> = normalize(body.clone(), now())
            .iter()
            .map(|r| match r {
                Record::Notification(n) => n.topic.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            topics,
            [
                "account_update",
                "messages.errors",
                "messages",
                "unsupported"
            ]
        );
    }

    #[test]
    fn an_envelope_without_entries_is_kept_whole() {
        for body in [
            json!([1, 2]),
            json!("x"),
            json!({"object": "page"}),
            json!(null),
        ] {
            let records = normalize(body.clone(), now());
            assert_eq!(records.len(), 1);
            assert_eq!(records[0].raw(), &body);
        }
    }

    proptest::proptest! {
        #[test]
        fn any_json_is_normalized_without_panicking(json in arb_json()) {
            let _ = normalize(json.clone(), now());
            let _ = normalize(delivery(json.clone()), now());
            let _ = normalize(delivery(json!({"messages": [json.clone()], "statuses": [json.clone()],
                "message_echoes": [json.clone()], "calls": [json.clone()], "contacts": [json]})), now());
        }
    }

    fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
        const WORDS: &[&str] = &[
            "text",
            "reaction",
            "edit",
            "revoke",
            "connect",
            "",
            "BUSINESS_INITIATED",
        ];
        const KEYS: &[&str] = &[
            "id",
            "from",
            "to",
            "type",
            "timestamp",
            "entry",
            "changes",
            "value",
            "field",
            "messages",
            "statuses",
            "event",
            "reaction",
            "edit",
            "text",
            "body",
            "wa_id",
            "metadata",
        ];
        crate::channels::json::arb::json(WORDS, KEYS)
    }
}
