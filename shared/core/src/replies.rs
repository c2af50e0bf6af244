//! Replies sent through switchboard: [`Replies`], behind `POST /api/conversations/{id}/reply`.
//!
//! A reply is planned by the rules of [`crate::outbound`] (which endpoint, which window) before
//! any call, sent once through the [`ReplySender`], then stored as the conversation's outbound
//! message under the id the provider returned, so the echo or the statuses that follow are the
//! same record and double nothing. Storing it ends the wait at the send time exactly as an echo
//! does ([`Conversation::reply`]); `conversation.answered` (via `reply`) and `message.sent` are
//! published, and the reminders of the ended wait are cancelled.
//!
//! With an idempotency key the send happens at most once per key and conversation: the key is
//! claimed before the send, its result recorded after it, and a repeat answers the first
//! result (storing and publishing it again when an earlier attempt stopped half-way, which
//! changes nothing once done). A refused send releases the key; a timed-out one keeps it,
//! since the provider may have sent the message. The same key with another body is refused.

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use std::sync::Arc;

use crate::cases::{Actor, Cases};
use crate::clock::Clock;
use crate::events::{self, AnsweredVia};
use crate::ids::{ConversationId, RecordKey};
use crate::model::{Conversation, Direction, Message, Record};
use crate::outbound::{self, PlanError, ReplyRequest, SendError};
use crate::ports::{
    BackendError, Claim, ConversationStore, CustomerHistory, EventPublisher, IdempotencyStore,
    MessageStore, ReplySender, StoredRecord,
};

/// How long an idempotency key is remembered.
pub const KEY_LIFETIME: Duration = Duration::hours(24);
/// The longest idempotency key accepted.
pub const MAX_KEY_CHARS: usize = 255;

/// What [`Replies`] needs.
#[derive(Clone)]
pub struct ReplyPorts {
    /// Conversations.
    pub conversations: Arc<dyn ConversationStore>,
    /// Where the sent message is stored, and the message answered looked up.
    pub records: Arc<dyn MessageStore>,
    /// The customer's latest message, when the reply names none.
    pub history: Arc<dyn CustomerHistory>,
    /// The provider's API.
    pub sender: Arc<dyn ReplySender>,
    /// Idempotency keys.
    pub claims: Arc<dyn IdempotencyStore>,
    /// Where `message.sent` goes.
    pub events: Arc<dyn EventPublisher>,
}

/// A reply sent (or, for a repeated idempotency key, the first one's result).
#[derive(Debug, Clone, PartialEq)]
pub struct Replied {
    /// The outbound message, as stored.
    pub record: StoredRecord,
    /// True when this is the result of an earlier request with the same idempotency key.
    pub replayed: bool,
}

/// Why a reply was not sent.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    /// No such conversation.
    #[error("conversation not found")]
    NoConversation,
    /// `reply_to` names no message of this conversation.
    #[error("reply_to names no message of this conversation")]
    UnknownMessage,
    /// The idempotency key is not 1 to 255 visible ASCII characters.
    #[error("Idempotency-Key must be 1 to {MAX_KEY_CHARS} visible ASCII characters")]
    BadKey,
    /// The idempotency key was used for another request.
    #[error("this Idempotency-Key was used for a different request")]
    KeyReused,
    /// A request with this idempotency key is still being sent, or its outcome is unknown.
    #[error(
        "a request with this Idempotency-Key is in progress or timed out; check the conversation's messages before sending again with a new key"
    )]
    KeyInProgress,
    /// The request cannot be sent as asked (body, window, kind).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The provider did not take it.
    #[error(transparent)]
    Send(#[from] SendError),
    /// A storage failure.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Replies through the channels' APIs. See the module docs.
#[derive(Clone)]
pub struct Replies {
    ports: ReplyPorts,
    cases: Cases,
    clock: Arc<dyn Clock>,
}

impl Replies {
    /// Replies over `ports`, ending waits through `cases`.
    pub fn new(ports: ReplyPorts, cases: Cases, clock: Arc<dyn Clock>) -> Self {
        Self {
            ports,
            cases,
            clock,
        }
    }

    /// `by` replies `request` on conversation `id`, once per `key` when one is given.
    pub async fn reply(
        &self,
        id: &ConversationId,
        request: &ReplyRequest,
        key: Option<&str>,
        by: Actor<'_>,
    ) -> Result<Replied, ReplyError> {
        outbound::validate(request)?;
        if key.is_some_and(|k| !valid_key(k)) {
            return Err(ReplyError::BadKey);
        }
        let conversation = self
            .ports
            .conversations
            .conversation(id)
            .await?
            .ok_or(ReplyError::NoConversation)?;
        let claim = key.map(|k| format!("{id}/{k}"));
        let fingerprint = fingerprint(id, request);
        if let Some(claim) = &claim {
            let expires = self.clock.now() + KEY_LIFETIME;
            match self
                .ports
                .claims
                .claim(claim, &fingerprint, expires)
                .await?
            {
                Claim::New => {}
                Claim::Done {
                    fingerprint: f,
                    record,
                } if f == fingerprint => return self.finish(*record, true).await,
                Claim::InProgress { fingerprint: f } if f == fingerprint => {
                    return Err(ReplyError::KeyInProgress);
                }
                _ => return Err(ReplyError::KeyReused),
            }
        }
        let sent = match self.send(&conversation, request, by).await {
            Ok(sent) => sent,
            Err(e) => {
                // Nothing was sent unless the outcome is unknown: the key may be tried again.
                if let Some(claim) = &claim
                    && !matches!(&e, ReplyError::Send(s) if s.outcome_unknown())
                    && let Err(release) = self.ports.claims.release(claim).await
                {
                    tracing::warn!(conversation = %id, error = %release, "idempotency key not released");
                }
                return Err(e);
            }
        };
        // The result is kept before anything else can fail: a repeat finishes what this one
        // could not, and never sends again.
        if let Some(claim) = &claim {
            self.ports.claims.complete(claim, &sent).await?;
        }
        self.finish(sent, false).await
    }

    /// Plans and sends the reply; answers the outbound message to store.
    async fn send(
        &self,
        conversation: &Conversation,
        request: &ReplyRequest,
        by: Actor<'_>,
    ) -> Result<StoredRecord, ReplyError> {
        let answered = self.answered(conversation, request).await?;
        let now = self.clock.now();
        let outgoing = outbound::plan(conversation, answered.as_ref(), request, now)?;
        let sent = match outgoing.target {
            // The source system delivers it, from the `message.sent` published below.
            outbound::Target::Relay { .. } => Ok(outbound::relayed(conversation, &outgoing, now)),
            _ => self.ports.sender.send(&outgoing).await,
        };
        crate::telemetry::reply(conversation.channel, sent.is_ok());
        let sent = sent?;
        let at = self.clock.now();
        let message =
            outbound::sent_message(conversation, &outgoing, answered.as_ref(), &sent, by, at);
        tracing::info!(
            conversation = %conversation.id,
            channel = %conversation.channel,
            target = outgoing.target.as_str(),
            "reply sent"
        );
        let record = Record::Message(message);
        Ok(StoredRecord {
            key: record.key(),
            stored_at: at,
            record,
        })
    }

    /// Stores the sent message (a no-op when stored already), ends the wait it answers and
    /// publishes what happened.
    async fn finish(&self, sent: StoredRecord, replayed: bool) -> Result<Replied, ReplyError> {
        let Record::Message(message) = &sent.record else {
            return Err(ReplyError::UnknownMessage);
        };
        let entries = self
            .ports
            .records
            .record(std::slice::from_ref(&sent.record))
            .await?;
        // What the prioritizer would do with it is done here: it is not queued.
        let keys: Vec<RecordKey> = entries.into_iter().map(|e| e.record_key).collect();
        if !keys.is_empty() {
            self.ports.records.mark_enqueued(&keys).await?;
        }
        let conversation = self
            .ports
            .conversations
            .conversation(&message.conversation_id)
            .await?
            .ok_or(ReplyError::NoConversation)?;
        if conversation.answered_at == Some(message.sent_at) {
            self.cases
                .wait_ended(&conversation, AnsweredVia::Reply)
                .await?;
        }
        let event = events::message_sent(&conversation, message, self.clock.now());
        self.ports.events.publish(&[event]).await?;
        Ok(Replied {
            record: sent,
            replayed,
        })
    }

    /// The message answered: the one `reply_to` names, else the latest customer message.
    async fn answered(
        &self,
        conversation: &Conversation,
        request: &ReplyRequest,
    ) -> Result<Option<Message>, ReplyError> {
        if let Some(reply_to) = &request.reply_to {
            let key = RecordKey::derive(
                conversation.channel,
                &conversation.account_id,
                "message",
                reply_to,
            );
            let found = self.ports.records.find(std::slice::from_ref(&key)).await?;
            return match found.into_values().next() {
                Some(Record::Message(m)) if m.conversation_id == conversation.id => Ok(Some(m)),
                _ => Err(ReplyError::UnknownMessage),
            };
        }
        let Some(at) = conversation.last_inbound_at else {
            return Ok(None);
        };
        Ok(self
            .latest_inbound(conversation, at, at + Duration::milliseconds(1))
            .await?)
    }

    async fn latest_inbound(
        &self,
        conversation: &Conversation,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Message>, BackendError> {
        let records = self
            .ports
            .history
            .customer_records(&conversation.customer_id, since, until, 50)
            .await?;
        Ok(records.into_iter().find_map(|r| match r {
            Record::Message(m)
                if m.conversation_id == conversation.id && m.direction == Direction::Inbound =>
            {
                Some(m)
            }
            _ => None,
        }))
    }
}

/// Whether `key` can be an idempotency key: 1 to [`MAX_KEY_CHARS`] visible ASCII characters.
pub fn valid_key(key: &str) -> bool {
    (1..=MAX_KEY_CHARS).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

/// What makes two requests the same: the conversation and the body.
fn fingerprint(id: &ConversationId, request: &ReplyRequest) -> String {
    let body = serde_json::to_vec(&(id, request)).unwrap_or_default();
    hex::encode(Sha256::digest(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_and_the_fingerprint_follows_the_body() {
        assert!(valid_key("9f1c-2b"));
        for bad in [
            "",
            "with space",
            "tab\t",
            "ñ",
            &"k".repeat(MAX_KEY_CHARS + 1),
        ] {
            assert!(!valid_key(bad), "{bad:?}");
        }
        let id = ConversationId::from_stored("cv_1");
        let request = |text: &str| ReplyRequest {
            text: Some(text.to_owned()),
            reply_to: None,
            private: false,
            template: None,
            tag: None,
        };
        assert_eq!(
            fingerprint(&id, &request("a")),
            fingerprint(&id, &request("a"))
        );
        assert_ne!(
            fingerprint(&id, &request("a")),
            fingerprint(&id, &request("b"))
        );
        assert_ne!(
            fingerprint(&id, &request("a")),
            fingerprint(&ConversationId::from_stored("cv_2"), &request("a"))
        );
    }
}
