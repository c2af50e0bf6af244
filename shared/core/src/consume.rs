//! One batch runner for every queue consumer: the prioritizer on the intake queue, the reminder
//! handler on the reminder queue, on Lambda (an SQS event) and in `switchboard serve` (the
//! embedded queue).
//!
//! [`run_batch`] decodes each message, handles it in a span of its own (the queue, the item and
//! its conversation on every log line), and answers the ids of the messages to receive again
//! (SQS's partial batch failures): one that fails, and every later one of the same
//! conversation in the batch, so that a conversation's order holds; the other conversations go
//! on. A message that keeps failing reaches the dead-letter queue after the queue's
//! `maxReceiveCount`.

use serde::de::DeserializeOwned;
use std::collections::HashSet;
use std::fmt;
use tracing::Instrument;

use crate::ids::ConversationId;
use crate::ports::BackendError;

/// One message of a queue batch: the consumer's id for it and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchItem {
    /// The id to answer when the item must be retried (SQS `messageId`, an embedded receipt).
    pub id: String,
    /// The queue message body (JSON).
    pub body: String,
}

/// Why a queue message could not be handled. Every kind is retried by the queue; one that
/// keeps failing ends in the dead-letter queue.
#[derive(Debug, thiserror::Error)]
pub enum ConsumeError {
    /// The message is not what the queue carries (a poison message).
    #[error("undecodable queue message: {0}")]
    Undecodable(#[from] serde_json::Error),
    /// The message refers to a record or conversation the store does not have.
    #[error("the {0} of the message is not in the store")]
    Missing(&'static str),
    /// What the message acts on is not written yet, and will be: a reminder fired between its
    /// scheduling and the write of the conversation's clock, by a prioritizer that writes them
    /// in that order. Retried like a failure, logged as none.
    #[error("the {0} is not written yet; retried")]
    NotYet(&'static str),
    /// A storage, scheduler or event-bus failure.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// What a queue's consumer does with one message.
#[async_trait::async_trait]
pub trait QueueHandler: Send + Sync {
    /// What the queue carries.
    type Message: DeserializeOwned + Send + Sync;
    /// What handling one message did, for the log.
    type Outcome: fmt::Debug + Send;
    /// The queue's name in logs (`intake`, `reminders`).
    const QUEUE: &'static str;

    /// The conversation whose messages must be handled in order.
    fn conversation(message: &Self::Message) -> &ConversationId;

    /// Handles one message. Handling the same message again must be harmless.
    async fn handle(&self, message: &Self::Message) -> Result<Self::Outcome, ConsumeError>;
}

/// Handles `items` in order with `handler`; answers the ids to retry (see the module docs).
pub async fn run_batch<H: QueueHandler>(handler: &H, items: &[BatchItem]) -> Vec<String> {
    let mut failed = Vec::new();
    let mut stopped: HashSet<ConversationId> = HashSet::new();
    for item in items {
        let span = tracing::info_span!("message", queue = H::QUEUE, item = %item.id, conversation = tracing::field::Empty);
        let message = match serde_json::from_str::<H::Message>(&item.body) {
            Ok(message) => message,
            Err(e) => {
                span.in_scope(|| tracing::error!(error = %e, "undecodable queue message"));
                failed.push(item.id.clone());
                continue;
            }
        };
        let conversation = H::conversation(&message);
        span.record("conversation", tracing::field::display(conversation));
        if stopped.contains(conversation) {
            failed.push(item.id.clone());
            continue;
        }
        match handler.handle(&message).instrument(span.clone()).await {
            Ok(outcome) => span.in_scope(|| tracing::debug!(?outcome, "handled")),
            Err(e) => {
                span.in_scope(|| {
                    if crate::errors::is_reported(&e) || matches!(e, ConsumeError::NotYet(_)) {
                        return tracing::debug!(error = %e, "handling failed; retried later");
                    }
                    tracing::error!(
                        error = %e,
                        source = ?std::error::Error::source(&e),
                        "handling failed; the message will be retried"
                    )
                });
                stopped.insert(conversation.clone());
                failed.push(item.id.clone());
            }
        }
    }
    crate::telemetry::batch(H::QUEUE, items.len() as u64, failed.len() as u64);
    failed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::sync::Mutex;

    #[derive(Deserialize)]
    struct Note {
        conversation: ConversationId,
        fail: bool,
    }

    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    #[async_trait::async_trait]
    impl QueueHandler for Recorder {
        type Message = Note;
        type Outcome = ();
        const QUEUE: &'static str = "test";
        fn conversation(message: &Note) -> &ConversationId {
            &message.conversation
        }
        async fn handle(&self, message: &Note) -> Result<(), ConsumeError> {
            self.0
                .lock()
                .unwrap()
                .push(message.conversation.to_string());
            if message.fail {
                Err(ConsumeError::Missing("record"))
            } else {
                Ok(())
            }
        }
    }

    fn item(id: &str, conversation: &str, fail: bool) -> BatchItem {
        BatchItem {
            id: id.into(),
            body: format!(r#"{{"conversation": "{conversation}", "fail": {fail}}}"#),
        }
    }

    #[tokio::test]
    async fn a_failure_holds_back_its_conversation_and_only_its_conversation() {
        let handler = Recorder::default();
        let items = [
            item("1", "a", false),
            item("2", "a", true),
            item("3", "b", false),
            item("4", "a", false),
            BatchItem {
                id: "5".into(),
                body: "not json".into(),
            },
            item("6", "b", false),
        ];
        let failed = run_batch(&handler, &items).await;
        assert_eq!(failed, ["2", "4", "5"]);
        assert_eq!(*handler.0.lock().unwrap(), ["a", "a", "b", "b"]);
    }
}
