//! E-mail: raw RFC 5322 messages, parsed with `mail-parser`, on the `email` channel.
//!
//! A message reaches `/webhooks/email` as its raw bytes, signed the Standard Webhooks way (a
//! mail relay, an import, a test), and becomes one record:
//!
//! * **the provider id** is the `Message-ID` (without its angle brackets); a message without
//!   one gets `sha256:<hex of the raw bytes>` ([`raw_id`]), so a redelivery is a no-op either
//!   way;
//! * **the account** is the brand's mailbox that received it: the envelope recipient a relay
//!   writes (`X-Original-To`, `Delivered-To`, `Envelope-To`, `X-Envelope-To`), else the first
//!   `To`; the brand's domain is that address's domain;
//! * **the direction**: mail `From` the brand's domain is the brand's own (a Bcc or journal copy
//!   of an answer): outbound, its customer the first recipient outside that domain, and it
//!   answers the conversation like Meta's echoes; anything else is the customer's, from the
//!   `From` address;
//! * **the conversation**: one per customer address and brand mailbox; a message whose
//!   `In-Reply-To` or `References` name a message already stored joins that message's
//!   conversation instead (at intake: [`thread_parents`]), so subject prefixes (`Re:`, `RV:`,
//!   `Fwd:`, `AW:`) never split a thread;
//! * **the text** is the first text part, or the first HTML part turned into readable text;
//!   line ends are `\n`; attachments are kept by name, type and size;
//! * **not a customer waiting**: auto-replies (`Auto-Submitted` other than `no`,
//!   `X-Autoreply`, `X-Autorespond`, `Precedence: bulk|auto_reply|junk`) and bounces (a
//!   `multipart/report` delivery status, or mail from `MAILER-DAEMON`/`postmaster`) are kept as
//!   notifications (`email.auto_reply`, `email.bounce`), never timed or queued;
//! * **authentication**: the verdicts of `Authentication-Results` (SPF, DKIM, DMARC) and
//!   SES's `X-SES-Spam-Verdict` / `X-SES-Virus-Verdict` are kept on the record's `raw.auth`;
//!   [`dmarc_failed`] tells the prioritizer, which ranks such mail no higher than P3.
//!
//! The record's `raw` is a JSON summary of the headers (addresses, subject, ids, verdicts);
//! the raw bytes themselves are the kept delivery.

use chrono::{DateTime, TimeZone, Utc};
use mail_parser::{Address, HeaderName, HeaderValue, MessageParser, MimeHeaders};
use serde_json::{Value, json};
use std::sync::Arc;

use super::json::unsupported;
use super::{ChannelModule, ChannelSecrets, SecretField, Verification};
use crate::channel::{Channel, Webhook};
use crate::identifier::Identifier;
use crate::ids::{ConversationId, CustomerId, DeliveryId, ProviderId};
use crate::model::{
    Attachment, CustomerIdentity, Direction, Message, MessageKind, Notification, Record,
};
use crate::settings::ConfigError;
use crate::verify::NoHandshake;

const CHANNEL: Channel = Channel::Email;

/// The secrets of the e-mail webhook: the Standard Webhooks signing secret(s) the poster signs
/// raw messages with.
pub const SECRETS: &[SecretField] = &[SecretField {
    key: "secrets",
    env: "SECRETS",
    list: true,
    hint: "the Standard Webhooks signing secret(s), whsec_…, that raw messages are signed with, comma-separated",
    dev_prefix: "whsec_",
}];

/// The e-mail module of the registry.
#[derive(Debug, Clone, Copy)]
pub struct Email;

/// The e-mail module of the registry.
pub static EMAIL: Email = Email;

impl ChannelModule for Email {
    fn webhook(&self) -> Webhook {
        Webhook::Email
    }
    fn function(&self) -> &'static str {
        "webhook-email"
    }
    fn secrets(&self) -> &'static [SecretField] {
        SECRETS
    }
    fn verification(&self, secrets: &ChannelSecrets) -> Result<Verification, ConfigError> {
        Ok(Verification {
            signature: Arc::new(super::standard::verifier(secrets)?),
            handshake: Arc::new(NoHandshake(
                "the e-mail webhook has no handshake: POST raw messages signed with Standard Webhooks",
            )),
        })
    }
    fn normalize(&self, body: &Value, received_at: DateTime<Utc>) -> Vec<Record> {
        // A JSON body is not a message: kept whole.
        vec![unsupported(
            CHANNEL,
            None,
            "email.not_a_message",
            body,
            received_at,
        )]
    }
    fn records(&self, body: &[u8], received_at: DateTime<Utc>) -> Option<Vec<Record>> {
        Some(parse(body, received_at))
    }
}

/// The records of one raw message (always one). Never fails, never panics.
pub fn parse(raw: &[u8], received_at: DateTime<Utc>) -> Vec<Record> {
    let Some(mail) = MessageParser::default().parse(raw) else {
        return vec![notification(
            None,
            "email.unreadable",
            &raw_id(raw),
            json!({ "bytes": raw.len() }),
            received_at,
        )];
    };
    let mut headers = Headers::of(&mail);
    let provider_id = headers
        .message_id
        .and_then(HeaderValue::as_text)
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map_or_else(|| raw_id(raw), ProviderId::from);
    let (sent_at, provider_timestamp) = match headers.date.and_then(HeaderValue::as_datetime) {
        Some(date) => (
            Utc.timestamp_opt(date.to_timestamp(), 0).single(),
            headers.date_raw.map(|d| d.trim().to_owned()),
        ),
        None => (None, None),
    };
    let parents = ids(headers.in_reply_to);
    let references = ids(headers.references);
    let from_header = headers.address(headers.from);
    let to = headers.address(headers.to);
    let account = envelope_recipient(&headers)
        .or_else(|| first_address(to))
        .unwrap_or_else(|| "unknown".to_owned());
    let from = from_header.and_then(|a| a.first());
    let from_address = from.and_then(|a| a.address()).map(str::to_lowercase);
    let summary = summary(&mut headers, &provider_id, &parents, &references);
    let at = sent_at.unwrap_or(received_at);

    let auto = automatic(&mail, &headers, from_address.as_deref());
    if let Some(topic) = auto {
        return vec![notification(
            Some(ProviderId::from(account.as_str())),
            topic,
            &provider_id,
            summary,
            at,
        )];
    }
    let Some(from_address) = from_address else {
        return vec![notification(
            Some(ProviderId::from(account.as_str())),
            "email.no_sender",
            &provider_id,
            summary,
            at,
        )];
    };
    let brand_domain = domain(&account);
    let outbound = same_domain(domain(&from_address), brand_domain);
    let (account, customer, customer_name) = if outbound {
        let outside = recipients(&headers)
            .into_iter()
            .find(|(address, _)| !same_domain(domain(address), brand_domain));
        match outside {
            Some((address, name)) => (from_address.clone(), address, name),
            None => {
                // The brand writing to itself: no customer in it.
                return vec![notification(
                    Some(ProviderId::from(account.as_str())),
                    "email.internal",
                    &provider_id,
                    summary,
                    at,
                )];
            }
        }
    } else {
        let name = from.and_then(|a| a.name()).map(str::to_owned);
        (account, from_address, name)
    };
    let account = ProviderId::from(account.as_str());
    let customer_id = ProviderId::from(customer.as_str());
    let text = mail
        .body_text(0)
        .map(|t| {
            let t = t.trim_end();
            if t.contains('\r') {
                t.replace("\r\n", "\n")
            } else {
                t.to_owned()
            }
        })
        .filter(|t| !t.trim().is_empty());
    let attachments: Vec<Attachment> = mail
        .attachments()
        .map(|part| {
            let mime = part.content_type().map(|ct| match &ct.c_subtype {
                Some(sub) => format!("{}/{}", ct.c_type, sub).to_lowercase(),
                None => ct.c_type.to_lowercase(),
            });
            let kind = match mime.as_deref().and_then(|m| m.split('/').next()) {
                Some("image") => "image",
                Some("audio") => "audio",
                Some("video") => "video",
                _ => "document",
            };
            Attachment {
                kind: kind.to_owned(),
                mime_type: mime,
                filename: part.attachment_name().map(str::to_owned),
                sha256: Some(DeliveryId::of(part.contents()).to_string()),
                media_id: Some(format!("{} bytes", part.contents().len())),
                ..Attachment::default()
            }
        })
        .collect();
    let kind = if text.is_some() || attachments.is_empty() {
        MessageKind::Text
    } else {
        MessageKind::Document
    };
    vec![Record::Message(Message {
        channel: CHANNEL,
        conversation_id: ConversationId::derive(CHANNEL, &account, &customer_id),
        customer: CustomerIdentity {
            customer_id: CustomerId::derive(CHANNEL, &customer_id),
            channel: CHANNEL,
            identifiers: Identifier::email(customer_id.as_str())
                .into_iter()
                .collect(),
            provider_user_id: customer_id,
            display_name: customer_name,
        },
        account_id: account,
        provider_message_id: provider_id,
        direction: if outbound {
            Direction::Outbound
        } else {
            Direction::Inbound
        },
        kind,
        provider_type: Some("email".into()),
        text,
        attachments,
        sent_at: at,
        sent_at_estimated: sent_at.is_none(),
        provider_timestamp,
        reply_to: parents.first().map(|p| ProviderId::from(p.as_str())),
        public: false,
        thread_id: references.first().map(|r| ProviderId::from(r.as_str())),
        raw: summary,
        source: None,
    })]
}

/// One attachment of a message, with its bytes, for storing it apart (the e-mail intake on AWS
/// puts each in S3 under its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentPart {
    /// The SHA-256 of the bytes, as [`Attachment::sha256`] has it.
    pub sha256: String,
    /// The part's MIME type, when it has one.
    pub mime_type: Option<String>,
    /// The decoded bytes.
    pub bytes: Vec<u8>,
}

/// The attachments of a raw message, decoded, in the order of the record's `attachments`;
/// none for bytes that are no message.
pub fn attachment_parts(raw: &[u8]) -> Vec<AttachmentPart> {
    let Some(mail) = MessageParser::default().parse(raw) else {
        return Vec::new();
    };
    mail.attachments()
        .map(|part| AttachmentPart {
            sha256: DeliveryId::of(part.contents()).to_string(),
            mime_type: part.content_type().map(|ct| match &ct.c_subtype {
                Some(sub) => format!("{}/{}", ct.c_type, sub).to_lowercase(),
                None => ct.c_type.to_lowercase(),
            }),
            bytes: part.contents().to_vec(),
        })
        .collect()
}

/// `sha256:<hex>` of the raw bytes without their trailing whitespace (an mbox keeps the blank
/// line that separates messages): the id of a message without a `Message-ID`.
pub fn raw_id(raw: &[u8]) -> ProviderId {
    ProviderId(format!("sha256:{}", DeliveryId::of(raw.trim_ascii_end())))
}

fn notification(
    account: Option<ProviderId>,
    topic: &str,
    id: &ProviderId,
    raw: Value,
    at: DateTime<Utc>,
) -> Record {
    Record::Notification(Notification {
        channel: CHANNEL,
        account_id: account.unwrap_or_else(|| ProviderId::from("unknown")),
        notification_id: ProviderId(format!("{topic}:{id}")),
        topic: topic.to_owned(),
        occurred_at: at,
        raw,
    })
}

/// The addresses of an address header, lowercased, with their display names.
fn addresses(address: Option<&Address<'_>>) -> Vec<(String, Option<String>)> {
    address
        .map(|a| {
            a.iter()
                .filter_map(|addr| {
                    let address = addr.address()?.trim().to_lowercase();
                    (!address.is_empty()).then(|| (address, addr.name().map(str::to_owned)))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn first_address(address: Option<&Address<'_>>) -> Option<String> {
    addresses(address).into_iter().next().map(|(a, _)| a)
}

/// `To` then `Cc`, in order.
fn recipients(headers: &Headers<'_>) -> Vec<(String, Option<String>)> {
    let mut all = addresses(headers.address(headers.to));
    all.extend(addresses(headers.address(headers.cc)));
    all
}

/// The headers the intake reads, gathered in one pass over the message's headers (rather
/// than one search of them all per name, as `mail_parser::Message`'s accessors do, and a
/// second pass for the raw ones).
///
/// * Parsed values: the last header of each name, as the accessors give (`Message::from`,
///   `Message::message_id`, …).
/// * Raw values (the text after the colon, when it is UTF-8): the last of each name, as
///   `Message::header_raw` gives, except `Received`, of which the topmost is kept (the latest
///   hop's, the receiving service's own line).
/// * The authentication verdicts (`auth`, which [`summary`] takes), read in the headers' order.
#[derive(Debug, Default)]
struct Headers<'a> {
    message_id: Option<&'a HeaderValue<'a>>,
    date: Option<&'a HeaderValue<'a>>,
    date_raw: Option<&'a str>,
    from: Option<&'a HeaderValue<'a>>,
    to: Option<&'a HeaderValue<'a>>,
    cc: Option<&'a HeaderValue<'a>>,
    reply_to: Option<&'a HeaderValue<'a>>,
    subject: Option<&'a HeaderValue<'a>>,
    in_reply_to: Option<&'a HeaderValue<'a>>,
    references: Option<&'a HeaderValue<'a>>,
    /// `X-Original-To`, `Delivered-To`, `Envelope-To`, `X-Envelope-To`, in that order of
    /// preference.
    envelope: [Option<&'a str>; 4],
    received: Option<&'a str>,
    auto_submitted: Option<&'a str>,
    precedence: Option<&'a str>,
    /// `X-Autoreply` or `X-Autorespond` is present.
    autoreply: bool,
    /// The verdicts of `Authentication-Results` (the first of each method), `Received-SPF`
    /// (when no `Authentication-Results` before it gave SPF's) and SES's
    /// `X-SES-Spam-Verdict` / `X-SES-Virus-Verdict` (the last of each).
    auth: serde_json::Map<String, Value>,
}

impl<'a> Headers<'a> {
    fn of(mail: &'a mail_parser::Message<'a>) -> Self {
        const ENVELOPE: [&str; 4] = [
            "X-Original-To",
            "Delivered-To",
            "Envelope-To",
            "X-Envelope-To",
        ];
        let raw_message: &'a [u8] = &mail.raw_message;
        let mut headers = Headers::default();
        for header in mail.root_part().headers() {
            // Only the raw values that are read are sliced and checked for UTF-8.
            let raw = || {
                raw_message
                    .get(header.offset_start as usize..header.offset_end as usize)
                    .and_then(|bytes| std::str::from_utf8(bytes).ok())
            };
            let value = Some(&header.value);
            match &header.name {
                HeaderName::MessageId => headers.message_id = value,
                HeaderName::Date => {
                    headers.date = value;
                    // As `header_raw` gives it: the last that is UTF-8.
                    headers.date_raw = raw().or(headers.date_raw);
                }
                HeaderName::From => headers.from = value,
                HeaderName::To => headers.to = value,
                HeaderName::Cc => headers.cc = value,
                HeaderName::ReplyTo => headers.reply_to = value,
                HeaderName::Subject => headers.subject = value,
                HeaderName::InReplyTo => headers.in_reply_to = value,
                HeaderName::References => headers.references = value,
                HeaderName::Received => {
                    if headers.received.is_none() {
                        headers.received = raw();
                    }
                }
                // The rest by name (mail-parser knows some of them, such as
                // `Authentication-Results`, as variants of their own; others are `Other`).
                other => {
                    let name = other.as_str();
                    let is = |expected: &str| name.eq_ignore_ascii_case(expected);
                    if is("Authentication-Results") {
                        if let Some(value) = raw() {
                            authentication_results(value, &mut headers.auth);
                        }
                    } else if is("Received-SPF") {
                        if let Some(value) = raw() {
                            let verdict = value.split_whitespace().next().unwrap_or_default();
                            headers
                                .auth
                                .entry("spf")
                                .or_insert_with(|| Value::String(verdict.to_lowercase()));
                        }
                    } else if is("X-SES-Spam-Verdict") || is("X-SES-Virus-Verdict") {
                        if let Some(value) = raw() {
                            let key = if is("X-SES-Spam-Verdict") {
                                "spam"
                            } else {
                                "virus"
                            };
                            headers
                                .auth
                                .insert(key.into(), Value::String(value.trim().to_lowercase()));
                        }
                    } else if is("Auto-Submitted") {
                        headers.auto_submitted = raw().or(headers.auto_submitted);
                    } else if is("Precedence") {
                        headers.precedence = raw().or(headers.precedence);
                    } else if is("X-Autoreply") || is("X-Autorespond") {
                        headers.autoreply |= raw().is_some();
                    } else if let Some(slot) = ENVELOPE.iter().position(|e| is(e)) {
                        headers.envelope[slot] = raw().or(headers.envelope[slot]);
                    }
                }
            }
        }
        headers
    }

    /// The address list of a parsed address header.
    fn address(&self, value: Option<&'a HeaderValue<'a>>) -> Option<&'a Address<'a>> {
        value.and_then(HeaderValue::as_address)
    }
}

/// The SPF, DKIM and DMARC verdicts of one `Authentication-Results` header, each unless an
/// earlier header gave it.
fn authentication_results(value: &str, verdicts: &mut serde_json::Map<String, Value>) {
    for clause in value.split(';').skip(1) {
        let clause = clause.trim().to_lowercase();
        for method in ["spf", "dkim", "dmarc"] {
            if let Some(rest) = clause
                .strip_prefix(method)
                .and_then(|r| r.strip_prefix('='))
            {
                verdicts.entry(method).or_insert_with(|| {
                    Value::String(
                        rest.chars()
                            .take_while(|c| c.is_ascii_alphanumeric())
                            .collect(),
                    )
                });
            }
        }
    }
}

/// The envelope recipient a relay wrote into the message, lowercased, without brackets.
fn envelope_recipient(headers: &Headers<'_>) -> Option<String> {
    headers
        .envelope
        .iter()
        .flatten()
        .map(|v| {
            v.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .trim()
                .to_lowercase()
        })
        .find(|v| v.contains('@') && !v.contains(char::is_whitespace))
        .or_else(|| received_for(headers.received?))
}

/// The recipient the topmost `Received` header names (`… for <journal@acme.example>; date`):
/// the envelope recipient of a message stored by a service that writes no `Delivered-To`
/// (Amazon SES stores its receipt line on top).
fn received_for(received: &str) -> Option<String> {
    let lower = received.to_lowercase();
    let at = lower.rfind(" for ")?;
    let rest = lower[at + 5..].trim_start();
    let address: String = rest
        .trim_start_matches('<')
        .chars()
        .take_while(|c| !matches!(c, '>' | ';' | ' ' | '\r' | '\n' | '\t'))
        .collect();
    (address.contains('@') && !address.starts_with('@')).then_some(address)
}

/// The domain of an address (compare with `eq_ignore_ascii_case`).
fn domain(address: &str) -> Option<&str> {
    address
        .rsplit_once('@')
        .map(|(_, d)| d)
        .filter(|d| !d.is_empty())
}

/// Whether two optional domains are the same one, case aside.
fn same_domain(a: Option<&str>, b: Option<&str>) -> bool {
    matches!((a, b), (Some(a), Some(b)) if a.eq_ignore_ascii_case(b))
}

/// The message ids of `In-Reply-To` or `References`, in order.
fn ids(value: Option<&HeaderValue<'_>>) -> Vec<String> {
    match value.unwrap_or(&HeaderValue::Empty) {
        HeaderValue::Text(id) => vec![id.trim().to_owned()],
        HeaderValue::TextList(list) => list.iter().map(|id| id.trim().to_owned()).collect(),
        _ => Vec::new(),
    }
    .into_iter()
    .filter(|id| !id.is_empty())
    .collect()
}

/// `email.auto_reply` or `email.bounce` when the message is one; `None` for a person's mail.
fn automatic(
    mail: &mail_parser::Message<'_>,
    headers: &Headers<'_>,
    from: Option<&str>,
) -> Option<&'static str> {
    let report = mail.content_type().is_some_and(|ct| {
        ct.c_type.eq_ignore_ascii_case("multipart")
            && ct
                .c_subtype
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
            && ct.attribute("report-type").is_some_and(|r| {
                r.eq_ignore_ascii_case("delivery-status")
                    || r.eq_ignore_ascii_case("disposition-notification")
            })
    });
    let daemon = from.is_some_and(|f| {
        let local = f.split('@').next().unwrap_or_default();
        local == "mailer-daemon" || local == "postmaster"
    });
    if report || daemon {
        return Some("email.bounce");
    }
    let lower = |v: Option<&str>| v.map(|v| v.trim().to_ascii_lowercase());
    let auto_submitted = lower(headers.auto_submitted).is_some_and(|v| !v.starts_with("no"));
    let precedence = lower(headers.precedence)
        .is_some_and(|v| matches!(v.as_str(), "bulk" | "auto_reply" | "junk"));
    (auto_submitted || precedence || headers.autoreply).then_some("email.auto_reply")
}

/// The record's `raw`: what the headers say, without the body. Built as values directly
/// (`json!` would serialize each list into a value again).
fn summary(
    headers: &mut Headers<'_>,
    id: &ProviderId,
    in_reply_to: &[String],
    references: &[String],
) -> Value {
    let list = |value| {
        Value::Array(
            addresses(headers.address(value))
                .into_iter()
                .map(|(address, name)| {
                    let mut entry = serde_json::Map::new();
                    entry.insert("address".into(), Value::String(address));
                    entry.insert("name".into(), name.map_or(Value::Null, Value::String));
                    Value::Object(entry)
                })
                .collect(),
        )
    };
    let id_list = |ids: &[String]| Value::Array(ids.iter().cloned().map(Value::String).collect());
    let mut summary = serde_json::Map::new();
    summary.insert("message_id".into(), Value::String(id.as_str().to_owned()));
    summary.insert("from".into(), list(headers.from));
    summary.insert("to".into(), list(headers.to));
    summary.insert("cc".into(), list(headers.cc));
    summary.insert("reply_to".into(), list(headers.reply_to));
    summary.insert(
        "subject".into(),
        headers
            .subject
            .and_then(HeaderValue::as_text)
            .map_or(Value::Null, |s| Value::String(s.to_owned())),
    );
    summary.insert("in_reply_to".into(), id_list(in_reply_to));
    summary.insert("references".into(), id_list(references));
    summary.insert(
        "auth".into(),
        Value::Object(std::mem::take(&mut headers.auth)),
    );
    Value::Object(summary)
}

/// Whether the message's DMARC verdict was a failure.
pub fn dmarc_failed(message: &Message) -> bool {
    message.channel == CHANNEL
        && message
            .raw
            .pointer("/auth/dmarc")
            .and_then(Value::as_str)
            .is_some_and(|v| v == "fail")
}

/// The text the prioritizer scores: an e-mail's subject and body (the subject is often where
/// the harm is named), any other message's text.
pub fn scored_text(message: &Message) -> std::borrow::Cow<'_, str> {
    let text = message.text.as_deref().unwrap_or_default();
    match message.raw.get("subject").and_then(Value::as_str) {
        Some(subject) if message.channel == CHANNEL && !subject.trim().is_empty() => {
            format!("{subject}\n\n{text}").into()
        }
        _ => text.into(),
    }
}

/// The messages `message` may answer, nearest first: `In-Reply-To`, then `References` from
/// the last; the first one stored gives it its conversation (see the module docs).
pub fn thread_parents(message: &Message) -> Vec<ProviderId> {
    if message.channel != CHANNEL {
        return Vec::new();
    }
    let listed = |field: &str| {
        message
            .raw
            .get(field)
            .and_then(Value::as_array)
            .map(|ids| {
                ids.iter()
                    .filter_map(Value::as_str)
                    .map(ProviderId::from)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    };
    let mut parents = listed("in_reply_to");
    for reference in listed("references").into_iter().rev() {
        if !parents.contains(&reference) {
            parents.push(reference);
        }
    }
    parents.retain(|p| p != &message.provider_message_id);
    parents
}

#[cfg(test)]
mod tests;
