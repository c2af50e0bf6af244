//! The prioritizer: the consumer of the intake queue.
//!
//! For each queue entry of a customer message it reads the message and the customer's recent
//! history, scores it ([`Scorer`]), applies the score to the conversation ([`crate::priority::apply`]: within
//! one wait the level only rises) and, when that set the conversation's priority, times the
//! wait by the SLA policy (its target, warning and due time; see [`crate::sla`]) and publishes
//! `conversation.prioritized`. Entries of events, notifications and the brand's own messages
//! are acknowledged without change.
//!
//! Idempotent: the conversation remembers the messages it scored, so an entry delivered twice
//! changes nothing and publishes nothing the second time. The event is published before the
//! conversation is written; if the write fails, the retry publishes it again with the same id
//! (events are at least once, with deterministic ids).
//!
//! [`Prioritizer::handle_batch`] is what a queue consumer calls (the Lambda function with an
//! SQS batch, `switchboard serve` with the embedded queue): it answers the ids of the items to
//! retry, so that only those are redelivered.

use chrono::Duration;
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;

use crate::answer::AnswerRecorder;
use crate::clock::Clock;
pub use crate::consume::BatchItem;
use crate::consume::{ConsumeError, QueueHandler, run_batch};
use crate::ids::ConversationId;
use crate::model::{Conversation, Direction, Message, Record};
use crate::ports::{
    BackendError, ConversationStore, CustomerDirectory, CustomerHistory, DomainEvent,
    EventPublisher, QueueEntry, RecordLookup, ReminderScheduler,
};
use crate::priority::{Applied, History, Priority, Scorer};
use crate::sla::{Reminder, SlaPolicy};
use crate::timers;

/// The type of the event published when a conversation's priority is set.
pub const PRIORITIZED: &str = "conversation.prioritized";

/// The most records of a customer read for the history of one message.
pub const HISTORY_LIMIT: usize = 500;

/// What handling one queue entry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not a customer message (an event, a notification, an echo): nothing to score.
    Skipped,
    /// Scored before: nothing changed.
    AlreadySeen,
    /// Scored; the conversation keeps the higher level it had in this wait.
    Kept,
    /// Scored; the conversation's priority is now this.
    Prioritized(Priority),
    /// The brand answered: the reminders of the wait that ended were cancelled.
    Answered,
}

/// Why an entry could not be handled: the batch runner's error.
pub type PrioritizeError = ConsumeError;

/// The ports the prioritizer reads and writes.
#[derive(Clone)]
pub struct PrioritizerPorts {
    /// The message of each queue entry.
    pub records: Arc<dyn RecordLookup>,
    /// Its conversation, and the others of the customer.
    pub conversations: Arc<dyn ConversationStore>,
    /// The customer (tier, merges).
    pub customers: Arc<dyn CustomerDirectory>,
    /// The customer's recent records.
    pub history: Arc<dyn CustomerHistory>,
    /// Where `conversation.prioritized` goes.
    pub events: Arc<dyn EventPublisher>,
    /// Where the SLA and window reminders are set.
    pub timers: Arc<dyn ReminderScheduler>,
}

/// The prioritizer over its ports.
#[derive(Clone)]
pub struct Prioritizer {
    ports: PrioritizerPorts,
    answers: AnswerRecorder,
    scorer: Arc<Scorer>,
    policy: Arc<SlaPolicy>,
    clock: Arc<dyn Clock>,
}

impl Prioritizer {
    /// A prioritizer over `ports`, scoring with `scorer` and timing waits by `policy`.
    pub fn new(
        ports: PrioritizerPorts,
        scorer: Arc<Scorer>,
        policy: Arc<SlaPolicy>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            answers: AnswerRecorder::new(ports.conversations.clone(), ports.timers.clone()),
            ports,
            scorer,
            policy,
            clock,
        }
    }

    /// The recorder of answers over the same ports.
    pub fn answers(&self) -> &AnswerRecorder {
        &self.answers
    }

    /// Handles a batch with the [batch runner](crate::consume::run_batch) and answers the ids
    /// of the items to retry: a failed one and the later ones of its conversation.
    pub async fn handle_batch(&self, items: &[BatchItem]) -> Vec<String> {
        run_batch(self, items).await
    }

    /// Handles one queue entry.
    pub async fn handle(&self, entry: &QueueEntry) -> Result<Outcome, PrioritizeError> {
        if entry.record_type != "message" {
            return Ok(Outcome::Skipped);
        }
        let key = &entry.record_key;
        let found = self.ports.records.find(std::slice::from_ref(key)).await?;
        let message = match found.get(key) {
            Some(Record::Message(m)) => m,
            Some(_) => return Ok(Outcome::Skipped),
            None => return Err(PrioritizeError::Missing("record")),
        };
        let conversation = self
            .ports
            .conversations
            .conversation(&message.conversation_id)
            .await?
            .ok_or(PrioritizeError::Missing("conversation"))?;
        if message.direction != Direction::Inbound {
            return self.answered(&conversation).await;
        }
        if conversation
            .priority
            .as_ref()
            .is_some_and(|p| p.seen.contains(key))
        {
            return Ok(Outcome::AlreadySeen);
        }

        let history = self.history(&conversation, message).await?;
        let score = self.scorer.score(
            message.text.as_deref().unwrap_or_default(),
            message.public,
            &history,
        );
        let now = self.clock.now();
        let mut preview = conversation.clone();
        let applied = preview.apply_score(key, &score, now);

        // The timers. The clock starts with the wait and moves when the level does (a
        // message that only confirms the level leaves it); the window moves with every
        // customer message. New reminders first, then the old ones cancelled, then the
        // conversation written: a retry after any failure redoes each step harmlessly.
        let mut created: Vec<Reminder> = Vec::new();
        let mut clock = preview.sla.clone();
        if applied == Applied::Prioritized {
            clock = preview.sla_clock(&self.policy).map(|mut k| {
                let reminders = Reminder::of_clock(&preview.id, &k);
                k.reminders = reminders.iter().map(|r| r.name.clone()).collect();
                created.extend(reminders);
                k
            });
        }
        let window = preview.last_inbound_at.and_then(|last| {
            let closing = self.policy.window_closing(preview.channel, last)?;
            Some(Reminder::of_window(&preview.id, last, &closing))
        });
        let window_name = window.as_ref().map(|w| w.name.clone());
        if window_name != conversation.window_reminder {
            created.extend(window);
        }
        preview.sla = clock.clone();
        preview.window_reminder = window_name.clone();
        let plan = timers::plan(&conversation, &preview, created);
        self.ports.timers.schedule(&plan.schedule).await?;
        self.ports.timers.cancel(&plan.cancel).await?;

        if applied == Applied::Prioritized {
            self.ports
                .events
                .publish(&[prioritized_event(&preview, now)])
                .await?;
        }
        self.ports
            .conversations
            .update_conversation(&conversation.id, &|c: &mut Conversation| {
                let applied = c.apply_score(key, &score, now);
                if applied == Applied::Prioritized {
                    c.sla = clock.clone();
                }
                let window_moved = c.window_reminder != window_name;
                c.window_reminder = window_name.clone();
                applied != Applied::AlreadySeen || window_moved
            })
            .await?
            .ok_or(PrioritizeError::Missing("conversation"))?;
        tracing::info!(
            record = %key,
            conversation = %conversation.id,
            priority = %score.priority,
            score = score.score,
            topic = %score.topic,
            team = %score.team,
            applied = ?applied,
            scheduled = plan.schedule.len(),
            cancelled = plan.cancel.len(),
            "message prioritized"
        );
        Ok(match applied {
            Applied::AlreadySeen => Outcome::AlreadySeen,
            Applied::Kept => Outcome::Kept,
            Applied::Prioritized => Outcome::Prioritized(score.priority),
        })
    }

    /// A brand message: when it ended the wait, the wait's reminders and the window's no
    /// longer apply and are cancelled.
    async fn answered(&self, conversation: &Conversation) -> Result<Outcome, PrioritizeError> {
        Ok(match self.answers.cancel_ended(conversation).await? {
            0 => Outcome::Skipped,
            _ => Outcome::Answered,
        })
    }

    /// The customer's history as of `message`: the surviving customer's records of the
    /// look-back window before it, and the conversations they belong to.
    async fn history(
        &self,
        conversation: &Conversation,
        message: &Message,
    ) -> Result<History, BackendError> {
        let at = message.sent_at;
        let lookback = Duration::days(i64::from(self.scorer.config().history.lookback_days));
        let customer = self
            .ports
            .customers
            .customer(&conversation.customer_id)
            .await?;
        let (customer_id, vip) = match customer {
            Some(c) => (
                c.id,
                c.tier
                    .as_deref()
                    .is_some_and(|t| t.eq_ignore_ascii_case("vip")),
            ),
            None => (conversation.customer_id.clone(), false),
        };
        let records = self
            .ports
            .history
            .customer_records(&customer_id, at - lookback, at, HISTORY_LIMIT)
            .await?;
        let mut history = History {
            vip,
            breaches: conversation.sla_breaches,
            ..History::default()
        };
        let mut others = BTreeSet::new();
        let message_key = Record::Message(message.clone()).key();
        for record in &records {
            if let Record::Message(m) = record
                && m.direction == Direction::Inbound
                && record.key() != message_key
            {
                if m.sent_at >= at - Duration::hours(24) {
                    history.contacts_24h += 1;
                }
                if m.sent_at >= at - Duration::days(7) {
                    history.contacts_7d += 1;
                }
            }
            if let Some(id) = record.conversation_id()
                && *id != conversation.id
            {
                others.insert(id.clone());
            }
        }
        let others: Vec<ConversationId> = others.into_iter().collect();
        for other in self
            .ports
            .conversations
            .conversations_by_id(&others)
            .await?
        {
            history.open_elsewhere += u32::from(other.waiting_since.is_some());
            history.breaches += other.sla_breaches;
            history.complaints += u32::from(other.priority.as_ref().is_some_and(|p| p.complaint));
        }
        Ok(history)
    }
}

#[async_trait::async_trait]
impl QueueHandler for Prioritizer {
    type Message = QueueEntry;
    type Outcome = Outcome;
    const QUEUE: &'static str = "intake";

    fn conversation(entry: &QueueEntry) -> &ConversationId {
        &entry.conversation_id
    }

    async fn handle(&self, entry: &QueueEntry) -> Result<Outcome, ConsumeError> {
        Prioritizer::handle(self, entry).await
    }
}

/// `conversation.prioritized` for a conversation whose priority was just set. Its id is
/// derived from the conversation and the message that set the level.
pub fn prioritized_event(
    conversation: &Conversation,
    now: chrono::DateTime<chrono::Utc>,
) -> DomainEvent {
    let p = conversation.priority.as_ref();
    let record_key = p.map(|p| p.record_key.as_str()).unwrap_or_default();
    DomainEvent {
        id: crate::ids::event_id(PRIORITIZED, &[conversation.id.as_str(), record_key]),
        kind: PRIORITIZED.to_owned(),
        time: now,
        detail: json!({
            "conversation_id": conversation.id,
            "customer_id": conversation.customer_id,
            "channel": conversation.channel,
            "account_id": conversation.account_id,
            "priority": p.map(|p| p.priority),
            "score": p.map(|p| p.score),
            "topic": p.map(|p| &p.topic),
            "team": p.map(|p| &p.team),
            "reasons": p.map(|p| &p.reasons),
            "record_key": record_key,
            "waiting_since": conversation.waiting_since,
            "due_at": conversation.current_sla().map(|k| k.due_at),
        }),
    }
}
