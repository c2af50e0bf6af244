//! Replies through Telegram's Bot API: `POST {api}/bot<token>/sendMessage`.
//!
//! | [`Outgoing`] | body |
//! |---|---|
//! | a reply in a chat (`Target::Direct`: the chat id) | `chat_id`, `text`; `reply_parameters.message_id` (with `allow_sending_without_reply`) when it quotes; `business_connection_id` when the conversation came through a Telegram Business connection |
//!
//! The bot token is part of the URL's path (Telegram's scheme): it goes nowhere else, and no
//! error or log line carries the URL. The sent message's id is `<chat id>:<message_id>` of the
//! answer's `result`, the id the webhook gives the same message. An error answers
//! [`SendError::Refused`] with `error_code` and `description`; a `429` whose `retry_after` is
//! at most two seconds is retried after it (Telegram sent nothing), as is a failed connection,
//! twice at most.

use async_trait::async_trait;
use serde_json::{Value, json};
use std::time::Duration;

use switchboard_core::channel::Channel;
use switchboard_core::channels::telegram::{BOT_ACCOUNT, split_message_id};
use switchboard_core::model::ProviderId;
use switchboard_core::outbound::{Content, Outgoing, SendError, Sent, Target};
use switchboard_core::ports::ReplySender;

use crate::client::{Attempt, Http};
use crate::{AccessToken, RETRY_DELAYS, not_configured};

/// The longest `retry_after` waited for before a retry.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(2);

/// The Bot API client. See the module docs.
#[derive(Clone)]
pub struct TelegramSender {
    base_url: String,
    token: Option<AccessToken>,
    http: Http,
}

impl std::fmt::Debug for TelegramSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramSender")
            .field("base_url", &self.base_url)
            .field("configured", &self.token.is_some())
            .finish()
    }
}

impl TelegramSender {
    /// A sender to the Bot API at `base_url` (`https://api.telegram.org`) with the bot's
    /// `token`, waiting at most `timeout` for an answer.
    pub fn new(base_url: &str, token: Option<AccessToken>, timeout: Duration) -> Self {
        Self::with_client(base_url.to_owned(), token, Http::new(timeout))
    }

    pub(crate) fn with_client(base_url: String, token: Option<AccessToken>, http: Http) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
            token,
            http,
        }
    }
}

/// The `sendMessage` body of `outgoing`; `None` for what Telegram cannot send (a template).
pub fn request_for(outgoing: &Outgoing) -> Option<Value> {
    let (Target::Direct { recipient, context }, Content::Text(text)) =
        (&outgoing.target, &outgoing.content)
    else {
        return None;
    };
    // A numeric chat id as a number, as the Bot API documents it; anything else (@channel) as
    // text.
    let chat_id = recipient
        .as_str()
        .parse::<i64>()
        .map_or_else(|_| json!(recipient.as_str()), |n| json!(n));
    let mut body = json!({ "chat_id": chat_id, "text": text });
    if let Some((_, message_id)) = context.as_ref().and_then(split_message_id)
        && let Ok(message_id) = message_id.parse::<i64>()
    {
        body["reply_parameters"] = json!({
            "message_id": message_id,
            "allow_sending_without_reply": true,
        });
    }
    if outgoing.account_id.as_str() != BOT_ACCOUNT {
        body["business_connection_id"] = json!(outgoing.account_id.as_str());
    }
    Some(body)
}

/// The id of the sent message in the answer: `<chat id>:<message_id>`.
fn sent_id(answer: &Value) -> Option<ProviderId> {
    let result = answer.get("result")?;
    let chat = ProviderId::from_json(result.pointer("/chat/id")?)?;
    let message = ProviderId::from_json(result.get("message_id")?)?;
    Some(ProviderId(format!("{chat}:{message}")))
}

/// A Bot API error answer as [`SendError::Refused`].
fn refused(status: u16, answer: &Value) -> SendError {
    SendError::Refused {
        status,
        code: answer["error_code"].as_i64(),
        subcode: None,
        message: answer["description"]
            .as_str()
            .unwrap_or("no description")
            .chars()
            .take(500)
            .collect(),
    }
}

#[async_trait]
impl ReplySender for TelegramSender {
    async fn send(&self, outgoing: &Outgoing) -> Result<Sent, SendError> {
        let token = self
            .token
            .as_ref()
            .ok_or_else(|| not_configured(Channel::Telegram))?;
        let body = request_for(outgoing).ok_or_else(|| {
            SendError::Unreachable("Telegram sends text to a chat: nothing else".into())
        })?;
        let url = format!("{}/bot{}/sendMessage", self.base_url, token.expose());
        let mut delays = RETRY_DELAYS.iter();
        loop {
            let outcome = self.http.post_json(&url, None, &body).await;
            // Retried only when Telegram sent nothing: no connection, or a short 429.
            let wait = match &outcome {
                Ok((429, answer)) => answer["parameters"]["retry_after"]
                    .as_u64()
                    .map(Duration::from_secs)
                    .filter(|d| *d <= MAX_RETRY_AFTER),
                Err(Attempt::NotConnected(_)) => Some(Duration::ZERO),
                _ => None,
            };
            if let Some(wait) = wait
                && let Some(delay) = delays.next()
            {
                tracing::warn!("telegram send not accepted yet; retrying");
                tokio::time::sleep(wait.max(*delay)).await;
                continue;
            }
            return match outcome? {
                (status, answer) if (200..300).contains(&status) && answer["ok"] == true => {
                    match sent_id(&answer) {
                        Some(id) => Ok(Sent {
                            provider_message_id: id,
                            response: answer,
                            request: body,
                        }),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn outgoing(account: &str, chat: &str, context: Option<&str>) -> Outgoing {
        Outgoing {
            channel: Channel::Telegram,
            account_id: ProviderId::from(account),
            target: Target::Direct {
                recipient: ProviderId::from(chat),
                context: context.map(ProviderId::from),
            },
            content: Content::Text("hola".into()),
            tag: None,
        }
    }

    #[test]
    fn a_reply_goes_to_its_chat_quoting_and_through_its_business_connection() {
        assert_eq!(
            request_for(&outgoing("bot", "555", None)),
            Some(json!({"chat_id": 555, "text": "hola"}))
        );
        assert_eq!(
            request_for(&outgoing("BC-1", "-1001234", Some("-1001234:35"))),
            Some(json!({"chat_id": -1_001_234_i64, "text": "hola",
                        "reply_parameters": {"message_id": 35, "allow_sending_without_reply": true},
                        "business_connection_id": "BC-1"}))
        );
        let mut template = outgoing("bot", "555", None);
        template.content = Content::Template(switchboard_core::outbound::Template {
            name: "t".into(),
            language: "es".into(),
            components: Vec::new(),
        });
        assert_eq!(request_for(&template), None);
    }

    #[test]
    fn the_answer_gives_the_same_id_the_webhook_would() {
        let answer = json!({"ok": true, "result": {"message_id": 36, "chat": {"id": -1001234, "type": "group"}, "date": 1}});
        assert_eq!(sent_id(&answer).unwrap().as_str(), "-1001234:36");
        assert_eq!(sent_id(&json!({"ok": true})), None);
        assert_eq!(
            refused(
                403,
                &json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"})
            ),
            SendError::Refused {
                status: 403,
                code: Some(403),
                subcode: None,
                message: "Forbidden: bot was blocked by the user".into()
            }
        );
    }

    #[test]
    fn the_token_is_never_printed() {
        let sender = TelegramSender::new(
            "https://api.telegram.org",
            Some(AccessToken::new("123:SECRET")),
            Duration::from_secs(1),
        );
        assert!(!format!("{sender:?}").contains("SECRET"));
    }
}
