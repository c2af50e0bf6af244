//! Replies through X's API v2, with the brand account's user-context token (bearer).
//!
//! | [`Outgoing`] | request | the sent id |
//! |---|---|---|
//! | a DM (`Target::Direct`: the customer's user id) | `POST {x}/2/dm_conversations/with/{participant_id}/messages` `{"text"}` | `data.dm_event_id` (the id the webhook gives the DM) |
//! | a public reply (`Target::PublicComment`: the tweet answered) | `POST {x}/2/tweets` `{"text", "reply": {"in_reply_to_tweet_id"}}` | `data.id` |
//!
//! An error answers [`SendError::Refused`] with X's `detail` (else `title`, else the first
//! of `errors`); nothing is retried but a failed connection (X sent nothing), twice at most. A
//! `429` is X's rate limit: refused, with the time X gives for its reset.

use async_trait::async_trait;
use serde_json::{Value, json};

use switchboard_core::channel::Channel;
use switchboard_core::model::ProviderId;
use switchboard_core::outbound::{Content, Outgoing, SendError, Sent, Target};
use switchboard_core::ports::ReplySender;

use crate::client::{Attempt, Http};
use crate::{AccessToken, RETRY_DELAYS, not_configured};

/// The X API client. See the module docs.
#[derive(Clone)]
pub struct XSender {
    base_url: String,
    token: Option<AccessToken>,
    http: Http,
}

impl std::fmt::Debug for XSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XSender")
            .field("base_url", &self.base_url)
            .field("configured", &self.token.is_some())
            .finish()
    }
}

impl XSender {
    /// A sender to X's API at `base_url` (`https://api.x.com`) with the brand account's
    /// user-context `token`, waiting at most `timeout` for an answer.
    pub fn new(base_url: &str, token: Option<AccessToken>, timeout: std::time::Duration) -> Self {
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

/// The path (under the base URL) and body of `outgoing`; `None` for what X cannot send.
pub fn request_for(outgoing: &Outgoing) -> Option<(String, Value)> {
    let Content::Text(text) = &outgoing.content else {
        return None;
    };
    match &outgoing.target {
        Target::Direct { recipient, .. } if is_id(recipient) => Some((
            format!("/2/dm_conversations/with/{recipient}/messages"),
            json!({ "text": text }),
        )),
        Target::PublicComment { comment_id } if is_id(comment_id) => Some((
            "/2/tweets".to_owned(),
            json!({ "text": text, "reply": { "in_reply_to_tweet_id": comment_id.as_str() } }),
        )),
        _ => None,
    }
}

/// X's ids are digits: anything else never goes into a path.
fn is_id(id: &ProviderId) -> bool {
    !id.as_str().is_empty() && id.as_str().bytes().all(|b| b.is_ascii_digit())
}

/// The id of what was sent: a DM's event id, a tweet's id.
fn sent_id(answer: &Value) -> Option<ProviderId> {
    let data = answer.get("data")?;
    data.get("dm_event_id")
        .or_else(|| data.get("id"))
        .and_then(ProviderId::from_json)
}

/// An X error answer as [`SendError::Refused`].
fn refused(status: u16, answer: &Value) -> SendError {
    let first = answer.pointer("/errors/0");
    let message = answer["detail"]
        .as_str()
        .or_else(|| answer["title"].as_str())
        .or_else(|| first.and_then(|e| e["message"].as_str()))
        .or_else(|| first.and_then(|e| e["detail"].as_str()))
        .unwrap_or("no detail");
    SendError::Refused {
        status,
        code: first.and_then(|e| e["code"].as_i64()),
        subcode: None,
        message: message.chars().take(500).collect(),
    }
}

#[async_trait]
impl ReplySender for XSender {
    async fn send(&self, outgoing: &Outgoing) -> Result<Sent, SendError> {
        let token = self
            .token
            .as_ref()
            .ok_or_else(|| not_configured(Channel::X))?;
        let (path, body) = request_for(outgoing).ok_or_else(|| {
            SendError::Unreachable("X sends text as a DM or a reply tweet: nothing else".into())
        })?;
        let url = format!("{}{path}", self.base_url);
        let mut delays = RETRY_DELAYS.iter();
        loop {
            match self.http.post_json(&url, Some(token), &body).await {
                Err(Attempt::NotConnected(_)) if delays.len() > 0 => {
                    tracing::warn!("x send not connected; retrying");
                    tokio::time::sleep(*delays.next().expect("checked")).await;
                }
                outcome => {
                    return match outcome? {
                        (status, answer) if (200..300).contains(&status) => {
                            match sent_id(&answer) {
                                Some(id) => Ok(Sent {
                                    provider_message_id: id,
                                    response: answer,
                                    request: body,
                                }),
                                None => {
                                    Err(SendError::Unreadable("the answer names no id".to_owned()))
                                }
                            }
                        }
                        (status, answer) => Err(refused(status, &answer)),
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outgoing(target: Target) -> Outgoing {
        Outgoing {
            channel: Channel::X,
            account_id: ProviderId::from("100"),
            target,
            content: Content::Text("hola".into()),
            tag: None,
        }
    }

    #[test]
    fn a_dm_and_a_reply_tweet_go_to_their_endpoints() {
        assert_eq!(
            request_for(&outgoing(Target::Direct {
                recipient: ProviderId::from("1693649419"),
                context: None
            })),
            Some((
                "/2/dm_conversations/with/1693649419/messages".to_owned(),
                json!({"text": "hola"})
            ))
        );
        assert_eq!(
            request_for(&outgoing(Target::PublicComment {
                comment_id: ProviderId::from("850006245121695744")
            })),
            Some((
                "/2/tweets".to_owned(),
                json!({"text": "hola", "reply": {"in_reply_to_tweet_id": "850006245121695744"}})
            ))
        );
        for target in [
            Target::Direct {
                recipient: ProviderId::from("../2/tweets"),
                context: None,
            },
            Target::PrivateComment {
                comment_id: ProviderId::from("1"),
            },
        ] {
            assert_eq!(request_for(&outgoing(target)), None);
        }
    }

    #[test]
    fn the_answer_gives_the_id_the_webhook_gives_and_errors_say_why() {
        let dm =
            json!({"data": {"dm_conversation_id": "100-1693649419", "dm_event_id": "1582838"}});
        assert_eq!(sent_id(&dm).unwrap().as_str(), "1582838");
        let tweet = json!({"data": {"id": "1445880548472328192", "text": "hola"}});
        assert_eq!(sent_id(&tweet).unwrap().as_str(), "1445880548472328192");
        assert_eq!(sent_id(&json!({"errors": []})), None);
        assert_eq!(
            refused(
                403,
                &json!({"title": "Forbidden", "detail": "You are not permitted to send a DM to this user.", "type": "about:blank", "status": 403})
            ),
            SendError::Refused {
                status: 403,
                code: None,
                subcode: None,
                message: "You are not permitted to send a DM to this user.".into()
            }
        );
        assert_eq!(
            refused(
                429,
                &json!({"errors": [{"code": 88, "message": "Rate limit exceeded"}]})
            ),
            SendError::Refused {
                status: 429,
                code: Some(88),
                subcode: None,
                message: "Rate limit exceeded".into()
            }
        );
    }
}
