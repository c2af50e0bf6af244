//! Replies through Meta's Graph API: the [`ReplySender`] for WhatsApp, Messenger,
//! Instagram and the comments of pages and Instagram accounts.
//!
//! | [`Outgoing`] | request |
//! |---|---|
//! | WhatsApp, direct | `POST {graph}/{phone_number_id}/messages`: `messaging_product`, `to`, `type` `text` (or `template`), `context.message_id` |
//! | Messenger / Instagram, direct | `POST {graph}/{page or Instagram account id}/messages`: `recipient.id`, `messaging_type` `RESPONSE` (or `MESSAGE_TAG` with `tag`), `message.text` |
//! | page comment, public | `POST {graph}/{comment_id}/comments`: `message` |
//! | Instagram comment, public | `POST {graph}/{comment_id}/replies`: `message` |
//! | either, private | `POST {graph}/{account}/messages`: `recipient.comment_id`, `message.text` |
//!
//! The token of the channel's webhook goes in `Authorization: Bearer`, never in the URL or a
//! log. The id of the sent message is the answer's `messages[0].id` (WhatsApp), `message_id`
//! (Messenger, Instagram) or `id` (comments). A Graph error answers
//! [`SendError::Refused`] with its code and message, retried first only when Graph marks it
//! `is_transient`; no answer within the timeout is [`SendError::Timeout`], never retried (the
//! message may have gone).

use async_trait::async_trait;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

use switchboard_core::channel::{Channel, Webhook};
use switchboard_core::model::ProviderId;
use switchboard_core::outbound::{Content, Outgoing, SendError, Sent, Target};
use switchboard_core::ports::ReplySender;

use crate::client::{Attempt, Http};
use crate::{AccessToken, RETRY_DELAYS, not_configured};

/// Where replies go and with which tokens.
#[derive(Debug, Clone)]
pub struct GraphSettings {
    /// The Graph API's base URL, with its version (`https://graph.facebook.com/v23.0`).
    pub base_url: String,
    /// The access token of each webhook that can reply.
    pub tokens: HashMap<Webhook, AccessToken>,
    /// How long a send may take.
    pub timeout: Duration,
}

/// The Graph API client. See the module docs.
#[derive(Clone)]
pub struct GraphSender {
    base_url: String,
    tokens: HashMap<Webhook, AccessToken>,
    http: Http,
}

impl std::fmt::Debug for GraphSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphSender")
            .field("base_url", &self.base_url)
            .field("webhooks", &self.tokens.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl GraphSender {
    /// A sender by `settings`, trusting the system's root certificates (loaded at the first
    /// send).
    pub fn new(settings: GraphSettings) -> Self {
        Self::with_client(
            settings.base_url,
            settings.tokens,
            Http::new(settings.timeout),
        )
    }

    pub(crate) fn with_client(
        base_url: String,
        tokens: HashMap<Webhook, AccessToken>,
        http: Http,
    ) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            tokens,
            http,
        }
    }
}

#[async_trait]
impl ReplySender for GraphSender {
    async fn send(&self, outgoing: &Outgoing) -> Result<Sent, SendError> {
        let webhook = outgoing.channel.webhook();
        let token = webhook
            .and_then(|w| self.tokens.get(&w))
            .ok_or_else(|| not_configured(outgoing.channel))?;
        let (path, body) = request_for(outgoing).ok_or_else(|| {
            SendError::Unreachable("a relayed reply is published, not sent to the Graph API".into())
        })?;
        let url = format!("{}/{path}", self.base_url);
        let mut delays = RETRY_DELAYS.iter();
        loop {
            let outcome = self.http.post_json(&url, Some(token), &body).await;
            let retry = match &outcome {
                Ok((status, answer)) if !(200..300).contains(status) => {
                    answer["error"]["is_transient"] == Value::Bool(true)
                }
                Err(Attempt::NotConnected(_)) => true,
                _ => false,
            };
            if retry && let Some(delay) = delays.next() {
                tracing::warn!(channel = %outgoing.channel, "graph send failed transiently; retrying");
                tokio::time::sleep(*delay).await;
                continue;
            }
            return match outcome? {
                (status, answer) if (200..300).contains(&status) => {
                    match sent_id(outgoing, &answer) {
                        Some(id) => Ok(Sent {
                            provider_message_id: ProviderId::from(id),
                            response: answer,
                            request: body,
                        }),
                        // Accepted, but with no id to keep: the message may have gone.
                        None => Err(SendError::Unreadable(
                            "the answer names no message id".to_owned(),
                        )),
                    }
                }
                (status, answer) => Err(refused(status, &answer)),
            };
        }
    }
}

/// Characters left as they are in a path segment; everything else is percent-encoded, so an
/// id can never change the path.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'-').remove(b'.');

fn segment(id: &ProviderId) -> String {
    utf8_percent_encode(id.as_str(), SEGMENT).to_string()
}

/// The path (after the base URL) and JSON body of `outgoing`; `None` for a reply that goes
/// through no provider ([`Target::Relay`]).
pub fn request_for(outgoing: &Outgoing) -> Option<(String, Value)> {
    let account = segment(&outgoing.account_id);
    let text = match &outgoing.content {
        Content::Text(text) => Some(text.as_str()),
        Content::Template(_) => None,
    };
    Some(match (&outgoing.target, outgoing.channel) {
        (Target::Direct { recipient, context }, Channel::Whatsapp) => {
            let mut body = json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": recipient,
            });
            match &outgoing.content {
                Content::Text(text) => {
                    body["type"] = json!("text");
                    body["text"] = json!({ "preview_url": false, "body": text });
                }
                Content::Template(t) => {
                    body["type"] = json!("template");
                    body["template"] = json!({
                        "name": t.name,
                        "language": { "code": t.language },
                    });
                    if !t.components.is_empty() {
                        body["template"]["components"] = json!(t.components);
                    }
                }
            }
            if let Some(context) = context {
                body["context"] = json!({ "message_id": context });
            }
            (format!("{account}/messages"), body)
        }
        (Target::Direct { recipient, .. }, _) => {
            let mut body = json!({
                "recipient": { "id": recipient },
                "messaging_type": "RESPONSE",
                "message": { "text": text },
            });
            if let Some(tag) = outgoing.tag {
                body["messaging_type"] = json!("MESSAGE_TAG");
                body["tag"] = json!(tag.as_str());
            }
            (format!("{account}/messages"), body)
        }
        (Target::PublicComment { comment_id }, Channel::Instagram) => (
            format!("{}/replies", segment(comment_id)),
            json!({ "message": text }),
        ),
        (Target::PublicComment { comment_id }, _) => (
            format!("{}/comments", segment(comment_id)),
            json!({ "message": text }),
        ),
        (Target::PrivateComment { comment_id }, _) => (
            format!("{account}/messages"),
            json!({
                "recipient": { "comment_id": comment_id },
                "message": { "text": text },
            }),
        ),
        (Target::Relay { .. } | Target::Mail { .. }, _) => return None,
    })
}

/// The id of the sent message in Graph's answer.
fn sent_id<'a>(outgoing: &Outgoing, answer: &'a Value) -> Option<&'a str> {
    let id = match (&outgoing.target, outgoing.channel) {
        (Target::Direct { .. }, Channel::Whatsapp) => &answer["messages"][0]["id"],
        (Target::PublicComment { .. }, _) => &answer["id"],
        _ => &answer["message_id"],
    };
    id.as_str().filter(|id| !id.is_empty())
}

/// A Graph error answer as [`SendError::Refused`].
fn refused(status: u16, answer: &Value) -> SendError {
    let error = &answer["error"];
    let message = error["message"]
        .as_str()
        .or_else(|| error["error_data"]["details"].as_str())
        .unwrap_or("no error message")
        .chars()
        .take(500)
        .collect();
    SendError::Refused {
        status,
        code: error["code"].as_i64(),
        subcode: error["error_subcode"].as_i64(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent_to(o: &Outgoing) -> (String, Value) {
        request_for(o).expect("a Graph API request")
    }
    use switchboard_core::outbound::{MessageTag, Template};

    fn outgoing(channel: Channel, target: Target) -> Outgoing {
        Outgoing {
            channel,
            account_id: ProviderId::from("ACC"),
            target,
            content: Content::Text("hola".to_owned()),
            tag: None,
        }
    }

    #[test]
    fn each_kind_of_reply_goes_to_its_endpoint_in_its_shape() {
        let direct = |context: Option<&str>| Target::Direct {
            recipient: ProviderId::from("CUST"),
            context: context.map(ProviderId::from),
        };
        let (path, body) = sent_to(&outgoing(Channel::Whatsapp, direct(Some("wamid.X="))));
        assert_eq!(path, "ACC/messages");
        assert_eq!(
            body,
            json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "CUST",
                   "type": "text", "text": {"preview_url": false, "body": "hola"},
                   "context": {"message_id": "wamid.X="}})
        );
        let mut tagged = outgoing(Channel::Messenger, direct(None));
        tagged.tag = Some(MessageTag::HumanAgent);
        assert_eq!(
            request_for(&tagged).unwrap().1,
            json!({"recipient": {"id": "CUST"}, "messaging_type": "MESSAGE_TAG",
                   "tag": "HUMAN_AGENT", "message": {"text": "hola"}})
        );
        let comment = || ProviderId::from("POST_COMMENT");
        assert_eq!(
            sent_to(&outgoing(
                Channel::FacebookFeed,
                Target::PublicComment {
                    comment_id: comment()
                }
            )),
            (
                "POST_COMMENT/comments".to_owned(),
                json!({"message": "hola"})
            )
        );
        assert_eq!(
            sent_to(&outgoing(
                Channel::Instagram,
                Target::PublicComment {
                    comment_id: comment()
                }
            ))
            .0,
            "POST_COMMENT/replies"
        );
        assert_eq!(
            sent_to(&outgoing(
                Channel::FacebookFeed,
                Target::PrivateComment {
                    comment_id: comment()
                }
            )),
            (
                "ACC/messages".to_owned(),
                json!({"recipient": {"comment_id": "POST_COMMENT"}, "message": {"text": "hola"}})
            )
        );
        let mut template = outgoing(Channel::Whatsapp, direct(None));
        template.content = Content::Template(Template {
            name: "seguimiento".into(),
            language: "es".into(),
            components: vec![json!({"type": "body"})],
        });
        let body = request_for(&template).unwrap().1;
        assert_eq!(body["type"], "template");
        assert_eq!(body["template"]["language"]["code"], "es");
        assert_eq!(body["template"]["components"][0]["type"], "body");
    }

    #[test]
    fn an_id_cannot_change_the_path() {
        let o = outgoing(
            Channel::FacebookFeed,
            Target::PublicComment {
                comment_id: ProviderId::from("../me/feed?x=1"),
            },
        );
        assert_eq!(
            request_for(&o).unwrap().0,
            "..%2Fme%2Ffeed%3Fx%3D1/comments"
        );
    }

    #[test]
    fn a_graph_error_keeps_its_code_and_message() {
        let answer = json!({"error": {"message": "Re-engagement message", "type": "OAuthException",
            "code": 131047, "error_subcode": 2494010, "is_transient": false}});
        assert_eq!(
            refused(400, &answer),
            SendError::Refused {
                status: 400,
                code: Some(131047),
                subcode: Some(2494010),
                message: "Re-engagement message".into()
            }
        );
        assert!(matches!(
            refused(500, &Value::Null),
            SendError::Refused { code: None, .. }
        ));
    }

    #[test]
    fn a_token_is_never_printed() {
        let settings = GraphSettings {
            base_url: "https://graph.example".into(),
            tokens: [(Webhook::Whatsapp, AccessToken::new("EAAG-secret"))].into(),
            timeout: crate::DEFAULT_TIMEOUT,
        };
        assert!(!format!("{settings:?}").contains("EAAG"));
    }
}
