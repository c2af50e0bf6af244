//! Replies by e-mail through Amazon SES: [`SesMailer`] composes the reply (RFC 5322, UTF-8
//! text, from the conversation's mailbox, `In-Reply-To` and `References` naming the thread, its
//! own `Message-ID`) and sends it raw with SES v2's `SendEmail`, so that the id it is stored
//! under is the id the customer's answer will name.
//!
//! The mailbox must be a verified SES identity (the domain verified for receiving is one). A
//! refusal (an unverified address, the SES sandbox's unverified recipient, a suppressed
//! address) is [`SendError::Refused`] with SES's code and message; no answer in time is
//! [`SendError::Timeout`] (the mail may have gone, the idempotency key is kept).

use async_trait::async_trait;
use aws_sdk_sesv2::error::SdkError;
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{Destination, EmailContent, RawMessage};
use mail_builder::MessageBuilder;
use mail_builder::headers::message_id::MessageId;
use serde_json::json;
use std::sync::Arc;

use switchboard_core::clock::Clock;
use switchboard_core::outbound::{Content, Outgoing, SendError, Sent, Target};
use switchboard_core::ports::ReplySender;

/// The e-mail reply sender over SES v2.
#[derive(Clone)]
pub struct SesMailer {
    client: aws_sdk_sesv2::Client,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SesMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SesMailer").finish_non_exhaustive()
    }
}

/// The raw message of an e-mail reply: `from` (the mailbox), the [`Target::Mail`] fields,
/// `text` and the `Date`. `None` for another target.
pub fn compose(
    from: &str,
    target: &Target,
    text: &str,
    date: chrono::DateTime<chrono::Utc>,
) -> Option<Vec<u8>> {
    let Target::Mail {
        to,
        subject,
        in_reply_to,
        references,
        message_id,
    } = target
    else {
        return None;
    };
    let mut message = MessageBuilder::new()
        .from(from)
        .to(to.as_str())
        .subject(subject.as_str())
        .message_id(message_id.as_str())
        .date(date.timestamp())
        .text_body(text);
    if let Some(parent) = in_reply_to {
        message = message.in_reply_to(parent.as_str());
    }
    if !references.is_empty() {
        message = message.references(MessageId::from(
            references
                .iter()
                .map(|r| r.as_str().to_owned())
                .collect::<Vec<_>>(),
        ));
    }
    message.write_to_vec().ok()
}

impl SesMailer {
    /// A sender through `client`, dating mail by `clock`.
    pub fn new(client: aws_sdk_sesv2::Client, clock: Arc<dyn Clock>) -> Self {
        Self { client, clock }
    }
}

#[async_trait]
impl ReplySender for SesMailer {
    async fn send(&self, outgoing: &Outgoing) -> Result<Sent, SendError> {
        let Content::Text(text) = &outgoing.content else {
            return Err(SendError::Unreachable("an e-mail reply is text".to_owned()));
        };
        let from = outgoing.account_id.as_str();
        let (
            Target::Mail {
                to,
                subject,
                in_reply_to,
                references,
                message_id,
            },
            Some(raw),
        ) = (
            &outgoing.target,
            compose(from, &outgoing.target, text, self.clock.now()),
        )
        else {
            return Err(SendError::Unreachable("not an e-mail reply".to_owned()));
        };
        let content = EmailContent::builder()
            .raw(
                RawMessage::builder()
                    .data(Blob::new(raw))
                    .build()
                    .map_err(|e| SendError::Unreachable(e.to_string()))?,
            )
            .build();
        let answer = self
            .client
            .send_email()
            .from_email_address(from)
            .destination(Destination::builder().to_addresses(to.as_str()).build())
            .content(content)
            .send()
            .await;
        let out = match answer {
            Ok(out) => out,
            Err(SdkError::ServiceError(e)) => {
                let status = e.raw().status().as_u16();
                let err = e.into_err();
                return Err(SendError::Refused {
                    status,
                    code: None,
                    subcode: None,
                    message: format!(
                        "{}: {}",
                        aws_sdk_sesv2::error::ProvideErrorMetadata::code(&err).unwrap_or("SES"),
                        aws_sdk_sesv2::error::ProvideErrorMetadata::message(&err).unwrap_or("")
                    ),
                });
            }
            Err(SdkError::TimeoutError(_)) => return Err(SendError::Timeout),
            Err(SdkError::DispatchFailure(e)) if e.is_timeout() => return Err(SendError::Timeout),
            Err(SdkError::DispatchFailure(e)) if e.is_io() => {
                return Err(SendError::Unreachable(
                    "SES could not be reached".to_owned(),
                ));
            }
            Err(e) => return Err(SendError::Unreadable(e.to_string())),
        };
        Ok(Sent {
            provider_message_id: message_id.clone(),
            response: json!({"ses_message_id": out.message_id}),
            request: json!({
                "to": to,
                "subject": subject,
                "in_reply_to": in_reply_to,
                "references": references,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use switchboard_core::ids::ProviderId;

    #[test]
    fn a_reply_names_its_thread_and_reads_back_as_the_brands_answer() {
        let target = Target::Mail {
            to: "ana@example.com".into(),
            subject: "Re: Pedido 4411".into(),
            in_reply_to: Some(ProviderId::from("q-2@example.com")),
            references: vec![
                ProviderId::from("q-1@example.com"),
                ProviderId::from("q-2@example.com"),
            ],
            message_id: ProviderId::from("sb.abc@acme.example"),
        };
        let date = chrono::Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let raw = compose(
            "support@acme.example",
            &target,
            "¿Dónde está? Ya lo enviamos.",
            date,
        )
        .unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(text.contains("Message-ID: <sb.abc@acme.example>"), "{text}");
        assert!(text.contains("In-Reply-To: <q-2@example.com>"), "{text}");
        assert!(
            text.contains("References: <q-1@example.com> <q-2@example.com>"),
            "{text}"
        );
        // What the mailbox's Bcc copy of it becomes: the brand's answer, in the thread.
        let mut copy = b"Delivered-To: support@acme.example\r\n".to_vec();
        copy.extend_from_slice(&raw);
        let records = switchboard_core::channels::email::parse(&copy, date);
        let switchboard_core::model::Record::Message(m) = &records[0] else {
            panic!("{records:?}");
        };
        assert_eq!(m.direction, switchboard_core::model::Direction::Outbound);
        assert_eq!(m.provider_message_id.as_str(), "sb.abc@acme.example");
        assert_eq!(m.customer.provider_user_id.as_str(), "ana@example.com");
        assert_eq!(m.text.as_deref(), Some("¿Dónde está? Ya lo enviamos."));
        assert_eq!(
            switchboard_core::channels::email::thread_parents(m),
            vec![
                ProviderId::from("q-2@example.com"),
                ProviderId::from("q-1@example.com")
            ]
        );
        assert!(
            compose(
                "a@b.c",
                &Target::PublicComment {
                    comment_id: "1".into()
                },
                "x",
                date
            )
            .is_none()
        );
    }
}
