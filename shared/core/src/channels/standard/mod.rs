//! Standard Webhooks sources: web chat widgets, contact forms, mobile apps and in-house systems
//! send switchboard's own inbound schema (`docs/inbound.schema.json`), signed with Standard
//! Webhooks ([`verify`]), to `/webhooks/standard`. Their messages are on the `web` channel;
//! replies to them are not sent anywhere by switchboard: they are published as `message.sent`
//! for the source system to deliver.
//!
//! ```json
//! {"type": "message.received", "source": "webchat", "account": "acme-site",
//!  "customer": {"id": "visitor-81", "name": "Ana", "email": "ana@example.com"},
//!  "message": {"id": "m-1", "text": "Hola", "sent_at": "2026-03-02T15:05:00Z"},
//!  "conversation": {"id": "chat-17"}}
//! ```
//!
//! * `type`: `message.received` (the customer wrote) or `message.sent` (an agent answered in
//!   the source system: it answers the conversation, like Meta's echoes). Anything else is kept
//!   as a notification.
//! * `account`: the brand's id in that source (a site, a form, an app): the business account.
//! * `customer.id` is unique within `source`; `conversation.id` is optional (absent: one
//!   conversation per customer and account).
//! * `message.id` identifies the message within the account (absent: a hash of the message);
//!   a redelivery is a no-op. `webhook-id` identifies the delivery.

use chrono::{DateTime, Utc};
use serde_json::Value;
use std::sync::Arc;

use super::json::{provider_time, str_at, unsupported, value_at};
use super::{ChannelModule, ChannelSecrets, SecretField, Verification};
use crate::channel::{Channel, Webhook};
use crate::identifier::Identifier;
use crate::ids::{ConversationId, CustomerId, ProviderId, digest_json};
use crate::model::{Attachment, CustomerIdentity, Direction, Message, MessageKind, Record};
use crate::settings::ConfigError;
use crate::verify::NoHandshake;

pub mod verify;

pub use verify::{StandardSecret, StandardVerifier, sign};

const CHANNEL: Channel = Channel::Web;

/// The secrets of a Standard Webhooks source: its signing secrets.
pub const SECRETS: &[SecretField] = &[SecretField {
    key: "secrets",
    env: "SECRETS",
    list: true,
    hint: "the source's Standard Webhooks signing secret(s), whsec_…, comma-separated",
    dev_prefix: "whsec_",
}];

/// The verifier of a source from its secrets, refusing an empty list or a secret that is not
/// `whsec_<base64>` (the error names `secrets.origin`).
pub fn verifier(secrets: &ChannelSecrets) -> Result<StandardVerifier, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name: secrets.origin.clone(),
        reason,
    };
    let keys = secrets
        .list("secrets")
        .iter()
        .map(|s| StandardSecret::parse(s).map_err(|e| invalid(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    if keys.is_empty() {
        return Err(invalid("no signing secret given".into()));
    }
    Ok(StandardVerifier::new(keys))
}

/// The Standard Webhooks module of the registry.
#[derive(Debug, Clone, Copy)]
pub struct Standard;

/// The Standard Webhooks module of the registry.
pub static STANDARD: Standard = Standard;

impl ChannelModule for Standard {
    fn webhook(&self) -> Webhook {
        Webhook::Standard
    }
    fn function(&self) -> &'static str {
        "webhook-standard"
    }
    fn secrets(&self) -> &'static [SecretField] {
        SECRETS
    }
    fn verification(&self, secrets: &ChannelSecrets) -> Result<Verification, ConfigError> {
        Ok(Verification {
            signature: Arc::new(verifier(secrets)?),
            handshake: Arc::new(NoHandshake(
                "Standard Webhooks has no handshake: POST signed deliveries",
            )),
        })
    }
    fn normalize(&self, body: &Value, received_at: DateTime<Utc>) -> Vec<Record> {
        normalize(body, received_at)
    }
}

fn attachment(value: &Value) -> Option<Attachment> {
    let url = str_at(value, "/url")?.to_owned();
    let mime_type = str_at(value, "/mime_type").map(str::to_owned);
    let kind = match mime_type.as_deref().and_then(|m| m.split('/').next()) {
        Some("image") => "image",
        Some("audio") => "audio",
        Some("video") => "video",
        _ => "document",
    };
    Some(Attachment {
        kind: kind.to_owned(),
        url: Some(url),
        mime_type,
        filename: str_at(value, "/name").map(str::to_owned),
        ..Attachment::default()
    })
}

/// The records of one delivery of the inbound schema: one message, or a notification keeping
/// what is not one. Never fails, never panics.
pub fn normalize(body: &Value, received_at: DateTime<Utc>) -> Vec<Record> {
    let account = str_at(body, "/account").map(ProviderId::from);
    let kind = str_at(body, "/type").unwrap_or("unknown");
    let direction = match kind {
        "message.received" => Direction::Inbound,
        "message.sent" => Direction::Outbound,
        other => return vec![unsupported(CHANNEL, account, other, body, received_at)],
    };
    let customer_id = value_at(body, "/customer/id").and_then(ProviderId::from_json);
    let message = body.get("message").filter(|m| m.is_object());
    let (Some(account), Some(customer_id), Some(message)) = (account.clone(), customer_id, message)
    else {
        return vec![unsupported(
            CHANNEL,
            account,
            "incomplete_message",
            body,
            received_at,
        )];
    };
    let source = str_at(body, "/source").unwrap_or("web");
    let person = ProviderId(format!("{source}:{customer_id}"));
    let conversation_key = match value_at(body, "/conversation/id").and_then(ProviderId::from_json)
    {
        Some(id) => ProviderId(format!("{source}:conversation:{id}")),
        None => person.clone(),
    };
    let text = str_at(message, "/text").map(str::to_owned);
    let attachments: Vec<Attachment> = message
        .get("attachments")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(attachment).collect())
        .unwrap_or_default();
    let kind = match (&text, attachments.first()) {
        (Some(_), _) => MessageKind::Text,
        (None, Some(a)) => match a.kind.as_str() {
            "image" => MessageKind::Image,
            "audio" => MessageKind::Audio,
            "video" => MessageKind::Video,
            _ => MessageKind::Document,
        },
        (None, None) => MessageKind::Unsupported,
    };
    let (provider_timestamp, at) = provider_time(message.get("sent_at"));
    let id = message
        .get("id")
        .and_then(ProviderId::from_json)
        .unwrap_or_else(|| ProviderId(format!("sha:{}", digest_json(message))));
    vec![Record::Message(Message {
        channel: CHANNEL,
        conversation_id: ConversationId::derive(CHANNEL, &account, &conversation_key),
        customer: CustomerIdentity {
            customer_id: CustomerId::derive(CHANNEL, &person),
            channel: CHANNEL,
            provider_user_id: person,
            display_name: str_at(body, "/customer/name").map(str::to_owned),
            identifiers: [
                str_at(body, "/customer/email").and_then(Identifier::email),
                str_at(body, "/customer/phone").and_then(Identifier::phone),
            ]
            .into_iter()
            .flatten()
            .collect(),
        },
        account_id: account,
        provider_message_id: id,
        direction,
        kind,
        provider_type: Some(source.to_owned()),
        text,
        attachments,
        sent_at: at.unwrap_or(received_at),
        sent_at_estimated: at.is_none(),
        provider_timestamp,
        reply_to: message.get("reply_to").and_then(ProviderId::from_json),
        public: message
            .get("public")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        thread_id: None,
        raw: body.clone(),
        source: None,
    })]
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        Utc.timestamp_opt(1_790_000_000, 0).unwrap()
    }

    fn received(customer: &str, id: &str, text: &str) -> Value {
        json!({"type": "message.received", "source": "webchat", "account": "acme-site",
               "customer": {"id": customer, "name": "Ana", "email": "ana@example.com"},
               "message": {"id": id, "text": text, "sent_at": "2026-03-02T15:05:00Z",
                           "attachments": [{"url": "https://cdn.example/p.png", "mime_type": "image/png", "name": "p.png"}]}})
    }

    #[test]
    fn a_customer_message_is_an_inbound_web_message_of_its_customer_and_account() {
        let records = normalize(&received("v-81", "m-1", "Hola"), now());
        let [Record::Message(m)] = records.as_slice() else {
            panic!("{records:?}")
        };
        assert_eq!(m.channel, Channel::Web);
        assert_eq!(m.direction, Direction::Inbound);
        assert_eq!(m.account_id.as_str(), "acme-site");
        assert_eq!(m.provider_message_id.as_str(), "m-1");
        assert_eq!(m.customer.provider_user_id.as_str(), "webchat:v-81");
        assert_eq!(m.customer.display_name.as_deref(), Some("Ana"));
        assert_eq!(m.text.as_deref(), Some("Hola"));
        assert_eq!(
            m.sent_at,
            Utc.with_ymd_and_hms(2026, 3, 2, 15, 5, 0).unwrap()
        );
        assert_eq!(m.attachments[0].kind, "image");
        assert_eq!(m.attachments[0].filename.as_deref(), Some("p.png"));
        // The same customer in another source is another person.
        let mut other = received("v-81", "m-2", "Hola");
        other["source"] = json!("form");
        let Record::Message(o) = normalize(&other, now()).remove(0) else {
            unreachable!()
        };
        assert_ne!(o.customer.customer_id, m.customer.customer_id);
    }

    #[test]
    fn an_answer_in_the_source_is_outbound_and_a_conversation_id_groups_messages() {
        let mut sent = received("v-81", "m-9", "Le ayudamos");
        sent["type"] = json!("message.sent");
        sent["conversation"] = json!({"id": "chat-17"});
        let mut asked = received("v-81", "m-1", "Hola");
        asked["conversation"] = json!({"id": "chat-17"});
        let (Record::Message(s), Record::Message(a)) = (
            normalize(&sent, now()).remove(0),
            normalize(&asked, now()).remove(0),
        ) else {
            unreachable!()
        };
        assert_eq!(s.direction, Direction::Outbound);
        assert_eq!(s.conversation_id, a.conversation_id);
        let plain = normalize(&received("v-81", "m-1", "Hola"), now()).remove(0);
        assert_ne!(plain.conversation_id(), Some(&a.conversation_id));
    }

    #[test]
    fn what_is_not_a_message_is_kept_as_a_notification() {
        for body in [
            json!({"type": "visitor.typing", "account": "acme-site"}),
            json!({"type": "message.received", "account": "acme-site", "message": {"text": "x"}}),
            json!({"type": "message.received", "customer": {"id": "v"}, "message": {"text": "x"}}),
            json!([1, 2, 3]),
            json!("text"),
        ] {
            let records = normalize(&body, now());
            assert!(
                matches!(records.as_slice(), [Record::Notification(n)] if n.raw == body),
                "{body}: {records:?}"
            );
        }
    }

    #[test]
    fn a_message_without_an_id_or_time_gets_stable_ones() {
        let body = json!({"type": "message.received", "account": "acme-site",
                          "customer": {"id": 81}, "message": {"text": "Hola"}});
        let a = normalize(&body, now()).remove(0);
        let b = normalize(&body, now() + chrono::Duration::hours(1)).remove(0);
        assert_eq!(a.key(), b.key(), "a redelivery is the same record");
        let Record::Message(m) = a else {
            unreachable!()
        };
        assert!(m.sent_at_estimated);
        assert_eq!(m.customer.provider_user_id.as_str(), "web:81");
    }

    proptest! {
        #[test]
        fn arbitrary_json_never_panics_and_is_always_kept(
            body in super::super::json::arb::json(
                &["message.received", "message.sent", "webchat", "acme", "v-1", "m-1", "2026-03-02T15:05:00Z"],
                &["type", "source", "account", "customer", "id", "name", "message", "text", "sent_at", "attachments", "url", "mime_type", "reply_to", "public", "conversation"],
            )
        ) {
            let records = normalize(&body, now());
            prop_assert_eq!(records.len(), 1);
        }
    }
}
