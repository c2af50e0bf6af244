//! Replies before they are sent: what an agent asks for ([`ReplyRequest`]), what switchboard
//! sends ([`Outgoing`]), and the rules between the two ([`plan`]): which endpoint answers which
//! message, and Meta's windows, checked before any call.
//!
//! | conversation / message answered | sent as | window |
//! |---|---|---|
//! | WhatsApp | a text to the customer's wa_id (`context.message_id` = `reply_to`) | 24 h after the customer's last message; a template at any time |
//! | Messenger, Instagram direct message | a text to the PSID / IGSID, `messaging_type: RESPONSE` | 24 h; with `tag: HUMAN_AGENT`, 7 days |
//! | a Facebook page comment or visitor post | a public reply under it | none |
//! | an Instagram comment | a public reply under it | none |
//! | either, with `private: true` (comments only) | a private message to its author (`recipient.comment_id`) | 7 days after the comment |
//! | Telegram | a text to the chat of the message answered, quoting it in a group or when named by `reply_to` | none |
//! | X, a DM conversation | a DM to the customer | none |
//! | X, a tweet (a mention or a reply) | a public reply tweet under it; with `private: true`, a DM to its author | none |
//! | web (Standard Webhooks) | nothing sent: relayed as `message.sent` for the source to deliver | none |
//! | e-mail | a mail from the conversation's mailbox to the answered message's `Reply-To` (else its sender), `Re:` its subject, with `In-Reply-To` and `References`, through SES | none |
//!
//! Without `reply_to`, the reply answers the conversation's latest customer message.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::channel::Channel;
use crate::model::{Conversation, Direction, Message, MessageKind, ProviderId};

/// Meta's customer service window: free text within 24 hours of the customer's last message.
pub const SERVICE_WINDOW: Duration = Duration::hours(24);
/// Messenger's and Instagram's `HUMAN_AGENT` tag: an agent may answer within 7 days.
pub const HUMAN_AGENT_WINDOW: Duration = Duration::days(7);
/// A private reply to a comment: within 7 days of the comment.
pub const PRIVATE_REPLY_WINDOW: Duration = Duration::days(7);
/// The longest reply text accepted (WhatsApp's limit; Messenger's and Instagram's are lower and
/// their API says so).
pub const MAX_TEXT_CHARS: usize = 4096;

/// The body of `POST /api/conversations/{id}/reply`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReplyRequest {
    /// The text to send (required unless `template`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The provider id of the message answered: a WhatsApp message quoted, the comment replied
    /// under. Absent: the conversation's latest customer message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<ProviderId>,
    /// A private message to the author of the comment answered, instead of a public reply.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub private: bool,
    /// A WhatsApp message template: what WhatsApp allows outside the 24-hour window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Template>,
    /// A Messenger/Instagram message tag: `HUMAN_AGENT` answers up to 7 days after the
    /// customer's last message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<MessageTag>,
}

/// A WhatsApp message template, approved in WhatsApp Manager.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// The template's name.
    pub name: String,
    /// Its language code (`es`, `en_US`, `pt_BR`).
    pub language: String,
    /// Its parameters, exactly as the Cloud API takes them (`[{"type": "body", …}]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Value>,
}

/// A Messenger/Instagram message tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum MessageTag {
    /// A human agent answering a request, up to 7 days after the customer's last message.
    #[serde(rename = "HUMAN_AGENT")]
    HumanAgent,
}

impl MessageTag {
    /// The tag as Meta names it.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageTag::HumanAgent => "HUMAN_AGENT",
        }
    }
}

/// One message for a provider, as [`plan`] decided it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// The conversation's channel.
    pub channel: Channel,
    /// The business account it is sent from (phone number id, page id, Instagram account id).
    pub account_id: ProviderId,
    /// Where it goes.
    pub target: Target,
    /// What it says.
    pub content: Content,
    /// The message tag, when sent outside the 24-hour window with one.
    pub tag: Option<MessageTag>,
}

/// Where an [`Outgoing`] message goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A direct message to the customer (wa_id, PSID, IGSID), quoting `context` when given.
    Direct {
        /// The customer's id on the channel.
        recipient: ProviderId,
        /// The message quoted (WhatsApp's `context.message_id`).
        context: Option<ProviderId>,
    },
    /// A public reply under a comment or post.
    PublicComment {
        /// The comment (or visitor post) answered.
        comment_id: ProviderId,
    },
    /// A private message to the author of a comment.
    PrivateComment {
        /// The comment answered.
        comment_id: ProviderId,
    },
    /// An e-mail from the conversation's mailbox (the account), threaded under the message
    /// it answers.
    Mail {
        /// The customer's address: the answered message's `Reply-To`, else its sender.
        to: String,
        /// `Re: ` and the subject answered (not doubled).
        subject: String,
        /// The `Message-ID` of the message answered.
        in_reply_to: Option<ProviderId>,
        /// The thread's `References`: the answered message's, then its own id.
        references: Vec<ProviderId>,
        /// The reply's own `Message-ID` (without angle brackets), derived from the
        /// conversation, the time and the text: the id it is stored under, and the one the
        /// customer's answer will name.
        message_id: ProviderId,
    },
    /// No provider call: the reply is published as `message.sent` for its source system to
    /// deliver (web chat, forms, apps through Standard Webhooks).
    Relay {
        /// The customer, by the source's own id.
        recipient: ProviderId,
        /// The message answered.
        reply_to: Option<ProviderId>,
    },
}

impl SendError {
    /// Whether the message may have been sent all the same (no answer, or an unreadable one).
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, SendError::Timeout | SendError::Unreadable(_))
    }
}

impl Target {
    /// `direct`, `public_comment` or `private_comment`: how `message.sent` names it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Target::Direct { .. } => "direct",
            Target::PublicComment { .. } => "public_comment",
            Target::PrivateComment { .. } => "private_comment",
            Target::Relay { .. } => "relay",
            Target::Mail { .. } => "mail",
        }
    }
}

/// The [`Sent`] of a relayed reply ([`Target::Relay`]): nothing goes out; its id is derived
/// from the conversation, the time and the content, so an idempotent retry of the same request
/// at the same instant is the same message.
pub fn relayed(conversation: &Conversation, outgoing: &Outgoing, at: DateTime<Utc>) -> Sent {
    let text = match &outgoing.content {
        Content::Text(text) => text.as_str(),
        Content::Template(t) => t.name.as_str(),
    };
    let millis = at.timestamp_millis().to_string();
    let id = crate::ids::event_id("relay", &[conversation.id.as_str(), &millis, text]);
    Sent {
        provider_message_id: ProviderId(id.replacen("ev_", "sb_", 1)),
        response: serde_json::json!({"relayed": true}),
        request: serde_json::json!({"text": text}),
    }
}

/// What an [`Outgoing`] message says.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// A WhatsApp template.
    Template(Template),
}

/// What the provider answered to a message it accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    /// The id it gave the message: the id its echo and statuses will carry.
    pub provider_message_id: ProviderId,
    /// Its answer, as JSON (kept on the stored message).
    pub response: Value,
    /// The request body sent, as JSON, without the token (kept on the stored message).
    pub request: Value,
}

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// The provider refused it: nothing was sent.
    #[error("the provider refused the message (HTTP {status}, code {code:?}): {message}")]
    Refused {
        /// The HTTP status of the answer.
        status: u16,
        /// The provider's error code (Graph `error.code`: 190 expired token, 131047 window…).
        code: Option<i64>,
        /// Its subcode.
        subcode: Option<i64>,
        /// Its message.
        message: String,
    },
    /// No answer in time: the message may have been sent.
    #[error("the provider did not answer in time")]
    Timeout,
    /// The provider could not be reached: nothing was sent.
    #[error("the provider could not be reached: {0}")]
    Unreachable(String),
    /// The exchange broke or the answer could not be read after the request went: the message
    /// may have been sent.
    #[error("the provider's answer could not be read: {0}")]
    Unreadable(String),
    /// No access token is configured for the webhook of this channel.
    #[error("no access token for {channel} replies: set {setting}")]
    NotConfigured {
        /// The channel.
        channel: Channel,
        /// The setting that holds the token.
        setting: String,
    },
}

/// Why a reply cannot be sent as asked, decided before any call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    /// The body is wrong: the message says how.
    #[error("{0}")]
    Invalid(String),
    /// Meta's window for this reply has closed: the message says when and what is allowed.
    #[error("{0}")]
    WindowClosed(String),
    /// This kind of reply cannot be sent through switchboard (yet).
    #[error("{0}")]
    Unsupported(String),
}

/// Checks the shape of `request`: text or template, not both; a tag or `private` only where
/// they mean something is checked by [`plan`].
pub fn validate(request: &ReplyRequest) -> Result<(), PlanError> {
    let invalid = |m: &str| Err(PlanError::Invalid(m.to_owned()));
    match (&request.text, &request.template) {
        (Some(_), Some(_)) => return invalid("give text or template, not both"),
        (None, None) => return invalid("text is required (or a template on WhatsApp)"),
        (Some(text), None) => {
            let n = text.chars().count();
            if text.trim().is_empty() || n > MAX_TEXT_CHARS {
                return Err(PlanError::Invalid(format!(
                    "text must be 1 to {MAX_TEXT_CHARS} characters"
                )));
            }
        }
        (None, Some(t)) => {
            if t.name.trim().is_empty() || t.language.trim().is_empty() {
                return invalid("a template needs a name and a language");
            }
        }
    }
    if request
        .reply_to
        .as_ref()
        .is_some_and(|r| r.as_str().is_empty())
    {
        return invalid("reply_to must be a provider message id");
    }
    Ok(())
}

fn closed(at: DateTime<Utc>, what: &str, then: &str) -> PlanError {
    PlanError::WindowClosed(format!(
        "{what} closed at {}; {then}",
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    ))
}

/// What to send for `request` on `conversation`, answering `answered` (the message named by
/// `reply_to`, else the latest customer message; `None` when there is none), at `now`. See
/// the module docs for the rules.
pub fn plan(
    conversation: &Conversation,
    answered: Option<&Message>,
    request: &ReplyRequest,
    now: DateTime<Utc>,
) -> Result<Outgoing, PlanError> {
    validate(request)?;
    let channel = conversation.channel;
    let content = match (&request.text, &request.template) {
        (_, Some(t)) => Content::Template(t.clone()),
        (Some(text), None) => Content::Text(text.clone()),
        (None, None) => return Err(PlanError::Invalid("text is required".to_owned())),
    };
    let outgoing = |target, tag| Outgoing {
        channel,
        account_id: conversation.account_id.clone(),
        target,
        content: content.clone(),
        tag,
    };
    if channel == Channel::Web {
        // The source delivers it: no window, no template, no tag.
        if request.template.is_some() || request.tag.is_some() || request.private {
            return Err(PlanError::Invalid(
                "a reply on the web channel is text: no template, tag or private".to_owned(),
            ));
        }
        return Ok(outgoing(
            Target::Relay {
                recipient: conversation.customer.provider_user_id.clone(),
                reply_to: request.reply_to.clone(),
            },
            None,
        ));
    }
    if channel == Channel::Telegram {
        return telegram(conversation, answered, request).map(|target| outgoing(target, None));
    }
    if channel == Channel::X {
        return x(conversation, answered, request).map(|target| outgoing(target, None));
    }
    if let Some(message) = answered.filter(|m| m.public) {
        if request.template.is_some() || request.tag.is_some() {
            return Err(PlanError::Invalid(
                "a reply to a comment is text: no template or tag".to_owned(),
            ));
        }
        let comment_id = message.provider_message_id.clone();
        if request.private {
            if message.kind != MessageKind::Comment {
                return Err(PlanError::Unsupported(format!(
                    "a private reply answers a comment, not a {}",
                    message.kind.as_str()
                )));
            }
            let until = message.sent_at + PRIVATE_REPLY_WINDOW;
            if now > until {
                return Err(closed(
                    until,
                    "the 7-day window for a private reply to this comment",
                    "answer it publicly",
                ));
            }
            return Ok(outgoing(Target::PrivateComment { comment_id }, None));
        }
        if channel == Channel::Instagram && message.kind != MessageKind::Comment {
            return Err(PlanError::Unsupported(format!(
                "an Instagram {} cannot be answered through the API; reply on the media",
                message.kind.as_str()
            )));
        }
        return Ok(outgoing(Target::PublicComment { comment_id }, None));
    }
    if request.private {
        return Err(PlanError::Invalid(
            "private applies to a reply to a comment".to_owned(),
        ));
    }
    let recipient = conversation.customer.provider_user_id.clone();
    let since_customer = conversation.last_inbound_at.map(|at| now - at);
    let in_window = |window: Duration| since_customer.is_some_and(|d| d <= window);
    let window_end = |window: Duration| conversation.last_inbound_at.map(|at| at + window);
    match channel {
        Channel::Whatsapp => {
            if request.tag.is_some() {
                return Err(PlanError::Invalid(
                    "tags are for Messenger and Instagram; WhatsApp sends a template".to_owned(),
                ));
            }
            if request.template.is_none() && !in_window(SERVICE_WINDOW) {
                return Err(match window_end(SERVICE_WINDOW) {
                    Some(end) => closed(
                        end,
                        "the 24-hour customer service window",
                        "send an approved template ({\"template\": {\"name\", \"language\", \"components\"}})",
                    ),
                    None => PlanError::WindowClosed(
                        "the customer has not written: only a template can be sent".to_owned(),
                    ),
                });
            }
            let context = request.reply_to.clone();
            Ok(outgoing(Target::Direct { recipient, context }, None))
        }
        Channel::Messenger | Channel::Instagram => {
            if request.template.is_some() {
                return Err(PlanError::Invalid(
                    "templates are WhatsApp's; Messenger and Instagram answer late with tag HUMAN_AGENT".to_owned(),
                ));
            }
            let tag = match request.tag {
                _ if in_window(SERVICE_WINDOW) => None,
                Some(MessageTag::HumanAgent) if in_window(HUMAN_AGENT_WINDOW) => {
                    Some(MessageTag::HumanAgent)
                }
                Some(MessageTag::HumanAgent) => {
                    return Err(match window_end(HUMAN_AGENT_WINDOW) {
                        Some(end) => closed(
                            end,
                            "the 7-day HUMAN_AGENT window",
                            "the customer must write again",
                        ),
                        None => PlanError::WindowClosed(
                            "the customer has not written: nothing can be sent".to_owned(),
                        ),
                    });
                }
                None => {
                    return Err(match window_end(SERVICE_WINDOW) {
                        Some(end) => closed(
                            end,
                            "the 24-hour messaging window",
                            "an agent can answer within 7 days with {\"tag\": \"HUMAN_AGENT\"}",
                        ),
                        None => PlanError::WindowClosed(
                            "the customer has not written: nothing can be sent".to_owned(),
                        ),
                    });
                }
            };
            Ok(outgoing(
                Target::Direct {
                    recipient,
                    context: None,
                },
                tag,
            ))
        }
        Channel::FacebookFeed => Err(PlanError::Invalid(
            "this page conversation has no comment to answer; give reply_to".to_owned(),
        )),
        Channel::Web => Ok(outgoing(
            Target::Relay {
                recipient,
                reply_to: request.reply_to.clone(),
            },
            None,
        )),
        Channel::Telegram => {
            telegram(conversation, answered, request).map(|target| outgoing(target, None))
        }
        Channel::X => x(conversation, answered, request).map(|target| outgoing(target, None)),
        Channel::Email => mail(conversation, answered, request, now).map(|t| outgoing(t, None)),
    }
}

/// An e-mail reply: text only, to the answered message's `Reply-To` or sender, threaded under
/// it.
fn mail(
    conversation: &Conversation,
    answered: Option<&Message>,
    request: &ReplyRequest,
    now: DateTime<Utc>,
) -> Result<Target, PlanError> {
    if request.template.is_some() || request.tag.is_some() || request.private {
        return Err(PlanError::Invalid(
            "an e-mail reply is text: no template, tag or private".to_owned(),
        ));
    }
    let raw = answered.map(|m| &m.raw);
    let text_at = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let to = raw
        .and_then(|r| r.pointer("/reply_to/0/address"))
        .and_then(Value::as_str)
        .filter(|a| a.contains('@'))
        .map(str::to_owned)
        .unwrap_or_else(|| conversation.customer.provider_user_id.as_str().to_owned());
    let subject = text_at(raw.and_then(|r| r.get("subject"))).unwrap_or_default();
    let subject = if subject.to_lowercase().starts_with("re:") {
        subject
    } else if subject.trim().is_empty() {
        "Re: your message".to_owned()
    } else {
        format!("Re: {subject}")
    };
    let mut references: Vec<ProviderId> = raw
        .and_then(|r| r.get("references"))
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(ProviderId::from_json).collect())
        .unwrap_or_default();
    let in_reply_to = answered.map(|m| m.provider_message_id.clone());
    references.extend(in_reply_to.clone());
    let text = request.text.as_deref().unwrap_or_default();
    let domain = conversation
        .account_id
        .as_str()
        .rsplit_once('@')
        .map_or("switchboard.invalid", |(_, d)| d);
    let millis = now.timestamp_millis().to_string();
    let id = crate::ids::event_id("mail", &[conversation.id.as_str(), &millis, text]);
    Ok(Target::Mail {
        to,
        subject,
        in_reply_to,
        references,
        message_id: ProviderId(format!("{}@{domain}", id.replacen("ev_", "sb.", 1))),
    })
}

/// An X reply: a public reply tweet under the tweet answered, or a DM (in a DM conversation,
/// or to a tweet's author with `private`). X has no messaging window; whether the customer
/// accepts DMs from the brand is X's to say (a refusal comes back as the provider's error).
fn x(
    conversation: &Conversation,
    answered: Option<&Message>,
    request: &ReplyRequest,
) -> Result<Target, PlanError> {
    if request.template.is_some() || request.tag.is_some() {
        return Err(PlanError::Invalid(
            "a reply on X is text: no template or tag".to_owned(),
        ));
    }
    let recipient = conversation.customer.provider_user_id.clone();
    match answered.filter(|m| m.public) {
        Some(tweet) if !request.private => Ok(Target::PublicComment {
            comment_id: tweet.provider_message_id.clone(),
        }),
        Some(_) => Ok(Target::Direct {
            recipient,
            context: None,
        }),
        None if request.private => Err(PlanError::Invalid(
            "private applies to a reply to a tweet: a DM is private already".to_owned(),
        )),
        None => Ok(Target::Direct {
            recipient,
            context: None,
        }),
    }
}

/// A Telegram reply: a `sendMessage` to the chat of the message answered (the customer's
/// private chat, or the group it was written in), quoting it when it was public or named by
/// `reply_to`. Bots have no messaging window.
fn telegram(
    conversation: &Conversation,
    answered: Option<&Message>,
    request: &ReplyRequest,
) -> Result<Target, PlanError> {
    use crate::channels::telegram::split_message_id;
    if request.template.is_some() || request.tag.is_some() || request.private {
        return Err(PlanError::Invalid(
            "a reply on Telegram is text: no template, tag or private".to_owned(),
        ));
    }
    // The message itself, or for a pressed button the message that carried it.
    let in_chat = answered.and_then(|m| {
        split_message_id(&m.provider_message_id)
            .map(|_| &m.provider_message_id)
            .or_else(|| {
                m.reply_to
                    .as_ref()
                    .filter(|r| split_message_id(r).is_some())
            })
    });
    let recipient = in_chat.and_then(split_message_id).map_or_else(
        || conversation.customer.provider_user_id.clone(),
        |(chat, _)| ProviderId::from(chat),
    );
    let quote = request.reply_to.is_some() || answered.is_some_and(|m| m.public);
    Ok(Target::Direct {
        recipient,
        context: in_chat.filter(|_| quote).cloned(),
    })
}

/// The outbound message to store for `sent`, a reply `by` an agent to `conversation` sent at
/// `at`, answering `answered`.
///
/// A private reply to a Facebook comment is a Messenger message: it is stored in the
/// comment's conversation under its Messenger identity, so the echo Messenger sends of it is
/// the same record and doubles nothing.
pub fn sent_message(
    conversation: &Conversation,
    outgoing: &Outgoing,
    answered: Option<&Message>,
    sent: &Sent,
    by: &str,
    at: DateTime<Utc>,
) -> Message {
    let (channel, public) = match (&outgoing.target, conversation.channel) {
        (Target::PrivateComment { .. }, Channel::FacebookFeed) => (Channel::Messenger, false),
        (Target::PrivateComment { .. }, channel) => (channel, false),
        (Target::PublicComment { .. }, channel) => (channel, true),
        // A reply in a Telegram group is read by the whole group.
        (Target::Direct { .. }, Channel::Telegram) => {
            (Channel::Telegram, answered.is_some_and(|m| m.public))
        }
        (Target::Direct { .. } | Target::Relay { .. } | Target::Mail { .. }, channel) => {
            (channel, false)
        }
    };
    let (kind, provider_type, text) = match &outgoing.content {
        Content::Text(text) => (MessageKind::Text, "text", Some(text.clone())),
        Content::Template(t) => (MessageKind::Text, "template", Some(t.name.clone())),
    };
    let (kind, provider_type) = match outgoing.target {
        Target::PublicComment { .. } => (MessageKind::Comment, "comment"),
        _ => (kind, provider_type),
    };
    let reply_to = match &outgoing.target {
        Target::Direct { context, .. } => context.clone(),
        Target::PublicComment { comment_id } | Target::PrivateComment { comment_id } => {
            Some(comment_id.clone())
        }
        Target::Relay { reply_to, .. } => reply_to.clone(),
        Target::Mail { in_reply_to, .. } => in_reply_to.clone(),
    };
    Message {
        channel,
        account_id: conversation.account_id.clone(),
        provider_message_id: sent.provider_message_id.clone(),
        conversation_id: conversation.id.clone(),
        customer: conversation.customer.clone(),
        direction: Direction::Outbound,
        kind,
        provider_type: Some(provider_type.to_owned()),
        text,
        attachments: Vec::new(),
        sent_at: at,
        sent_at_estimated: false,
        provider_timestamp: None,
        reply_to,
        public,
        thread_id: answered.and_then(|m| m.thread_id.clone()),
        raw: serde_json::json!({
            "sent_by": by,
            "request": sent.request,
            "response": sent.response,
        }),
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Record, text_message};
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(s, 0).unwrap()
    }

    fn text(s: &str) -> ReplyRequest {
        ReplyRequest {
            text: Some(s.to_owned()),
            reply_to: None,
            private: false,
            template: None,
            tag: None,
        }
    }

    fn conversation_on(channel: Channel, at: i64) -> (Conversation, Message) {
        let Record::Message(mut m) = text_message("cust", "in1", Direction::Inbound, at, "hola")
        else {
            unreachable!()
        };
        m.channel = channel;
        let mut c = Conversation::from_record(&Record::Message(m.clone())).unwrap();
        c.channel = channel;
        (c, m)
    }

    const HOUR: i64 = 3600;
    const DAY: i64 = 24 * HOUR;

    #[test]
    fn telegram_answers_in_the_chat_of_the_message_and_quotes_in_groups() {
        let (mut c, mut m) = conversation_on(Channel::Telegram, 0);
        c.customer.provider_user_id = ProviderId::from("555");
        m.provider_message_id = ProviderId::from("555:10");
        let target = |c: &Conversation, m: &Message, r: &ReplyRequest| {
            plan(c, Some(m), r, t(30 * DAY)).unwrap().target
        };
        let direct = |chat: &str, context: Option<&str>| Target::Direct {
            recipient: ProviderId::from(chat),
            context: context.map(ProviderId::from),
        };
        // A private chat, a month later: no window.
        assert_eq!(target(&c, &m, &text("hola")), direct("555", None));
        let mut quoted = text("hola");
        quoted.reply_to = Some(ProviderId::from("555:10"));
        assert_eq!(target(&c, &m, &quoted), direct("555", Some("555:10")));
        // In a group: to the group, quoting the member's message.
        let mut group = m.clone();
        group.provider_message_id = ProviderId::from("-1001234:35");
        group.public = true;
        assert_eq!(
            target(&c, &group, &text("hola")),
            direct("-1001234", Some("-1001234:35"))
        );
        let sent = Sent {
            provider_message_id: ProviderId::from("-1001234:36"),
            response: Value::Null,
            request: Value::Null,
        };
        let o = plan(&c, Some(&group), &text("hola"), t(0)).unwrap();
        assert!(sent_message(&c, &o, Some(&group), &sent, "ana", t(0)).public);
        // A pressed button: the chat of the message that carried it.
        let mut button = m.clone();
        button.provider_message_id = ProviderId::from("callback:777");
        button.reply_to = Some(ProviderId::from("555:9"));
        assert_eq!(target(&c, &button, &text("ok")), direct("555", None));
        let mut template = text("x");
        template.tag = Some(MessageTag::HumanAgent);
        assert!(matches!(
            plan(&c, Some(&m), &template, t(0)),
            Err(PlanError::Invalid(_))
        ));
    }

    #[test]
    fn x_answers_a_tweet_in_public_or_by_dm_and_a_dm_by_dm() {
        let (mut c, mut m) = conversation_on(Channel::X, 0);
        c.customer.provider_user_id = ProviderId::from("1693649419");
        let dm = Target::Direct {
            recipient: ProviderId::from("1693649419"),
            context: None,
        };
        // A DM conversation, a month later: no window.
        let o = plan(&c, Some(&m), &text("hola"), t(30 * DAY)).unwrap();
        assert_eq!(o.target, dm);
        let mut private = text("hola");
        private.private = true;
        assert!(matches!(
            plan(&c, Some(&m), &private, t(0)),
            Err(PlanError::Invalid(_))
        ));
        // A tweet: a public reply under it, or a DM to its author.
        m.public = true;
        m.kind = MessageKind::Mention;
        m.provider_message_id = ProviderId::from("850006245121695744");
        let o = plan(&c, Some(&m), &text("hola"), t(0)).unwrap();
        assert_eq!(
            o.target,
            Target::PublicComment {
                comment_id: ProviderId::from("850006245121695744")
            }
        );
        let sent = Sent {
            provider_message_id: ProviderId::from("850006245121695999"),
            response: Value::Null,
            request: Value::Null,
        };
        let stored = sent_message(&c, &o, Some(&m), &sent, "ana", t(0));
        assert!(stored.public);
        assert_eq!(stored.kind, MessageKind::Comment);
        assert_eq!(
            stored.reply_to,
            Some(ProviderId::from("850006245121695744"))
        );
        let o = plan(&c, Some(&m), &private, t(0)).unwrap();
        assert_eq!(o.target, dm);
        assert!(!sent_message(&c, &o, Some(&m), &sent, "ana", t(0)).public);
        let mut tagged = text("x");
        tagged.tag = Some(MessageTag::HumanAgent);
        assert!(matches!(
            plan(&c, Some(&m), &tagged, t(0)),
            Err(PlanError::Invalid(_))
        ));
    }

    #[test]
    fn whatsapp_sends_text_inside_the_window_and_only_a_template_after() {
        let (c, m) = conversation_on(Channel::Whatsapp, 0);
        let mut quoted = text("ya va");
        quoted.reply_to = Some(ProviderId::from("in1"));
        let o = plan(&c, Some(&m), &quoted, t(DAY)).unwrap();
        assert_eq!(
            o.target,
            Target::Direct {
                recipient: c.customer.provider_user_id.clone(),
                context: Some(ProviderId::from("in1")),
            }
        );
        let late = plan(&c, Some(&m), &text("ya va"), t(DAY + 1)).unwrap_err();
        assert!(
            matches!(&late, PlanError::WindowClosed(why) if why.contains("template")),
            "{late}"
        );
        let mut template = text("x");
        template.text = None;
        template.template = Some(Template {
            name: "seguimiento".into(),
            language: "es".into(),
            components: Vec::new(),
        });
        assert!(matches!(
            plan(&c, Some(&m), &template, t(30 * DAY)).unwrap().content,
            Content::Template(_)
        ));
        let mut tagged = text("x");
        tagged.tag = Some(MessageTag::HumanAgent);
        assert!(matches!(
            plan(&c, Some(&m), &tagged, t(1)),
            Err(PlanError::Invalid(_))
        ));
    }

    #[test]
    fn messenger_answers_late_only_with_the_human_agent_tag_within_seven_days() {
        for channel in [Channel::Messenger, Channel::Instagram] {
            let (c, m) = conversation_on(channel, 0);
            assert_eq!(plan(&c, Some(&m), &text("hi"), t(HOUR)).unwrap().tag, None);
            assert!(matches!(
                plan(&c, Some(&m), &text("hi"), t(2 * DAY)),
                Err(PlanError::WindowClosed(why)) if why.contains("HUMAN_AGENT")
            ));
            let mut tagged = text("hi");
            tagged.tag = Some(MessageTag::HumanAgent);
            // Inside 24 hours the tag is not needed and not sent.
            assert_eq!(plan(&c, Some(&m), &tagged, t(HOUR)).unwrap().tag, None);
            assert_eq!(
                plan(&c, Some(&m), &tagged, t(6 * DAY)).unwrap().tag,
                Some(MessageTag::HumanAgent)
            );
            assert!(matches!(
                plan(&c, Some(&m), &tagged, t(7 * DAY + 1)),
                Err(PlanError::WindowClosed(_))
            ));
        }
    }

    #[test]
    fn a_comment_is_answered_in_public_at_any_time_and_in_private_within_seven_days() {
        for channel in [Channel::FacebookFeed, Channel::Instagram] {
            let (c, mut m) = conversation_on(channel, 0);
            m.public = true;
            m.kind = MessageKind::Comment;
            let public = plan(&c, Some(&m), &text("gracias"), t(90 * DAY)).unwrap();
            assert_eq!(
                public.target,
                Target::PublicComment {
                    comment_id: ProviderId::from("in1")
                }
            );
            let mut private = text("te escribimos");
            private.private = true;
            assert!(matches!(
                plan(&c, Some(&m), &private, t(6 * DAY)).unwrap().target,
                Target::PrivateComment { .. }
            ));
            assert!(matches!(
                plan(&c, Some(&m), &private, t(8 * DAY)),
                Err(PlanError::WindowClosed(_))
            ));
        }
        // A private flag on a direct message means nothing: refused, not ignored.
        let (c, m) = conversation_on(Channel::Messenger, 0);
        let mut private = text("x");
        private.private = true;
        assert!(matches!(
            plan(&c, Some(&m), &private, t(1)),
            Err(PlanError::Invalid(_))
        ));
    }

    #[test]
    fn a_private_reply_to_a_page_comment_is_stored_as_its_messenger_echo_will_be() {
        let (c, mut m) = conversation_on(Channel::FacebookFeed, 0);
        m.public = true;
        m.kind = MessageKind::Comment;
        let mut private = text("te escribimos");
        private.private = true;
        let o = plan(&c, Some(&m), &private, t(60)).unwrap();
        let sent = Sent {
            provider_message_id: ProviderId::from("m_1"),
            response: Value::Null,
            request: Value::Null,
        };
        let stored = sent_message(&c, &o, Some(&m), &sent, "ana", t(60));
        assert_eq!(
            (
                stored.channel,
                stored.public,
                stored.conversation_id.clone()
            ),
            (Channel::Messenger, false, c.id.clone())
        );
        assert_eq!(stored.reply_to, Some(ProviderId::from("in1")));
        assert_eq!(stored.raw["sent_by"], "ana");
    }

    #[test]
    fn a_body_without_text_or_with_both_is_refused() {
        let mut both = text("x");
        both.template = Some(Template {
            name: "a".into(),
            language: "es".into(),
            components: Vec::new(),
        });
        let mut none = text("x");
        none.text = None;
        for bad in [
            both,
            none,
            text("   "),
            text(&"a".repeat(MAX_TEXT_CHARS + 1)),
        ] {
            assert!(
                matches!(validate(&bad), Err(PlanError::Invalid(_))),
                "{bad:?}"
            );
        }
        assert!(validate(&text(&"a".repeat(MAX_TEXT_CHARS))).is_ok());
    }
}
