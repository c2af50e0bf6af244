//! The prioritizer: the consumer of the intake queue.
//!
//! For each queue entry of a message it first links the customer with the identities that
//! carry the same e-mail address or phone number ([`crate::resolve`]). For a customer message
//! it then reads the customer's recent history (every linked identity's, from the counters of
//! [`crate::history`]: a fixed number of reads however long it is), scores it ([`Scorer`]; the
//! urgency model, when there is one, reads the text on a blocking thread meanwhile, from the
//! moment the message is found), applies the score to the conversation ([`crate::priority::apply`]: within
//! one wait the level only rises) and, when that set the conversation's priority, times the
//! wait by the SLA policy (its target, warning and due time; see [`crate::sla`]) and publishes
//! `conversation.prioritized`; every customer message publishes `message.received`, and one
//! that opened a new case `conversation.reopened`. A brand message that ended a wait (its echo)
//! publishes `conversation.answered` and cancels the wait's reminders; so does a WhatsApp
//! status of a message switchboard never saw (sent by another tool), unless
//! [`Prioritizer::statuses_answer`] is off. Other entries are acknowledged without change.
//!
//! Each message scored is counted in the metrics (`messages_in`, `complaints`, …, under its own
//! score; see [`crate::metrics`]) in the same write that remembers it was scored.
//!
//! Idempotent: the conversation remembers the messages it scored, so an entry delivered twice
//! changes nothing, counts nothing and publishes nothing the second time. The event is published before the
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

use crate::cases::Cases;
use crate::clock::Clock;
pub use crate::consume::BatchItem;
use crate::consume::{ConsumeError, QueueHandler, run_batch};
use crate::events::{self, AnsweredVia};
use crate::history::{ACTIVITY_REFRESH, Activity, ActivityNote};
use crate::ids::{ConversationId, CustomerId};
use crate::metrics::{self, Tally};
use crate::model::{Conversation, DeliveryStatus, Direction, Event, EventKind, Message, Record};
use crate::ports::{
    BackendError, ConversationStore, CustomerDirectory, CustomerHistory, DomainEvent,
    EventPublisher, IdentityIndex, QueueEntry, RecordLookup, ReminderScheduler, Settle, Settlement,
};
use crate::priority::{Applied, History, Priority, Scorer};
use crate::resolve::Resolver;
use crate::sla::{Reminder, SlaPolicy, WatchedAccount};
use crate::telemetry;
use crate::timers;
use crate::watch::Watcher;

/// The type of the event published when a conversation's priority is set.
pub use crate::events::PRIORITIZED;

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
    /// The brand answered (an echo, or a status of a message sent elsewhere): the wait ended,
    /// `conversation.answered` was published and the wait's reminders were cancelled.
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
    /// Which identities carry which identifiers, for linking them.
    pub identities: Arc<dyn IdentityIndex>,
    /// Where `conversation.prioritized` goes.
    pub events: Arc<dyn EventPublisher>,
    /// Where the SLA and window reminders are set.
    pub timers: Arc<dyn ReminderScheduler>,
    /// Where a scored message's reminders, activity and conversation are written together.
    pub settle: Arc<dyn Settle>,
}

/// The prioritizer over its ports.
#[derive(Clone)]
pub struct Prioritizer {
    ports: PrioritizerPorts,
    cases: Cases,
    resolver: Resolver,
    statuses_answer: bool,
    watcher: Option<Watcher>,
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
            cases: Cases::new(
                ports.conversations.clone(),
                ports.timers.clone(),
                ports.events.clone(),
                clock.clone(),
            ),
            resolver: Resolver::new(
                ports.identities.clone(),
                ports.customers.clone(),
                clock.clone(),
            ),
            statuses_answer: true,
            watcher: None,
            ports,
            scorer,
            policy,
            clock,
        }
    }

    /// Whether a WhatsApp status (`sent` or later) of a message switchboard never saw answers
    /// a waiting customer at the status's time (default true). Off for accounts whose other
    /// tools also send notifications, which are no answers.
    pub fn statuses_answer(mut self, on: bool) -> Self {
        self.statuses_answer = on;
        self
    }

    /// Whether identities carrying the same e-mail address, phone number or WhatsApp user id
    /// are linked into one customer automatically (default true; see [`crate::resolve`]).
    pub fn auto_link(mut self, on: bool) -> Self {
        self.resolver = self.resolver.automatic(on);
        self
    }

    /// Notes every entry's business account with `watcher` (silent channels; off without).
    pub fn watching(mut self, watcher: Watcher) -> Self {
        self.watcher = Some(watcher);
        self
    }

    /// The cases (answers, resolutions, assignments) over the same ports.
    pub fn cases(&self) -> &Cases {
        &self.cases
    }

    /// Handles a batch with the [batch runner](crate::consume::run_batch) and answers the ids
    /// of the items to retry: a failed one and the later ones of its conversation.
    pub async fn handle_batch(&self, items: &[BatchItem]) -> Vec<String> {
        run_batch(self, items).await
    }

    /// Handles one queue entry.
    pub async fn handle(&self, entry: &QueueEntry) -> Result<Outcome, PrioritizeError> {
        if let (Some(watcher), Some(account_id)) = (&self.watcher, &entry.account_id) {
            let account = WatchedAccount {
                channel: entry.channel,
                account_id: account_id.clone(),
            };
            // The watch is a monitor: its failure is logged and never holds the message up.
            if let Err(e) = watcher.heard(&account).await {
                tracing::warn!(error = %e, "the channel watch could not note a delivery");
            }
        }
        let answering_status = self.statuses_answer
            && entry.record_type == "event"
            && ANSWERING_STATUSES
                .iter()
                .any(|s| entry.kind.strip_prefix("status.") == Some(s));
        if entry.record_type != "message" && !answering_status {
            return Ok(Outcome::Skipped);
        }
        let key = &entry.record_key;
        let found = self.ports.records.find(std::slice::from_ref(key)).await?;
        let message = match found.get(key) {
            Some(Record::Message(m)) => m,
            Some(Record::Event(e)) => return self.status(e).await,
            Some(_) => return Ok(Outcome::Skipped),
            None => return Err(PrioritizeError::Missing("record")),
        };
        let text = crate::channels::email::scored_text(message);
        // The urgency model's inference, the costly part of scoring, runs on a blocking thread
        // while the conversation is read, the customer's identities resolved and the history
        // read: a message waits for the longer of the two rather than their sum. (A message
        // found already scored below wastes its inference: a redelivery, rare.)
        let assessment =
            (self.scorer.has_model() && message.direction == Direction::Inbound).then(|| {
                let scorer = Arc::clone(&self.scorer);
                let text = text.clone().into_owned();
                tokio::task::spawn_blocking(move || scorer.assess(&text))
            });
        let conversation = self
            .ports
            .conversations
            .conversation(&message.conversation_id)
            .await?
            .ok_or(PrioritizeError::Missing("conversation"))?;
        if message.direction != Direction::Inbound {
            self.resolver.resolve(message).await?;
            return self.answered(&conversation, message).await;
        }
        if conversation
            .priority
            .as_ref()
            .is_some_and(|p| p.seen.contains(key))
        {
            return Ok(Outcome::AlreadySeen);
        }
        // Before the history is read, so that it sees every identity of the customer.
        self.resolver.resolve(message).await?;

        let (history, activity) = self.history(&conversation, message).await?;
        let assessment = match assessment {
            None => None,
            Some(inference) => inference.await.unwrap_or_else(|_| {
                tracing::error!(
                    conversation = %conversation.id,
                    "the urgency model failed: scored by the word lists alone"
                );
                None
            }),
        };
        let mut score = self
            .scorer
            .score_assessed(&text, message.public, &history, assessment);
        if crate::channels::email::dmarc_failed(message) && score.priority < Priority::P3 {
            // Mail that fails DMARC may not be from whom it says: never above normal.
            score.priority = Priority::P3;
            score.reasons.push(crate::priority::Reason {
                signal: "dmarc_failed".to_owned(),
                weight: 0,
                detail: None,
            });
        }
        let now = self.clock.now();
        let mut preview = conversation.clone();
        let applied = preview.apply_score(key, &score, now);

        // The timers. The clock starts with the wait and moves when the level does (a
        // message that only confirms the level leaves it); the window moves with every
        // customer message.
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

        let mut published = vec![events::message_received(&conversation, message, now)];
        if conversation.case.number > 1 && conversation.case.opened_at == Some(message.sent_at) {
            published.push(events::reopened(&conversation, now));
        }
        if applied == Applied::Prioritized {
            published.push(prioritized_event(&preview, now));
        }
        // Before the settlement marks the message seen: a retry publishes them again.
        self.ports.events.publish(&published).await?;
        let sent_at = message.sent_at;
        let change = |c: &mut Conversation, tally: &mut Tally| {
            let first = c.priority.is_none();
            let applied = c.apply_score(key, &score, now);
            if applied != Applied::AlreadySeen {
                metrics::message_scored(tally, c, message, &score, first);
                // In the write that marks it seen: counted once.
                c.contacts.count(sent_at);
            }
            if applied == Applied::Prioritized {
                c.sla = clock.clone();
            }
            let window_moved = c.window_reminder != window_name;
            c.window_reminder = window_name.clone();
            applied != Applied::AlreadySeen || window_moved
        };
        // New reminders, the old ones cancelled, the activity noted and the conversation
        // written: one write where the store can, else in that order, each harmless to redo.
        self.ports
            .settle
            .settle(Settlement {
                schedule: &plan.schedule,
                cancel: &plan.cancel,
                activity: activity
                    .as_ref()
                    .map(|note| (&conversation.customer_id, note)),
                conversation: &conversation.id,
                change: &change,
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
            Applied::Prioritized => {
                telemetry::prioritized(score.priority);
                Outcome::Prioritized(score.priority)
            }
        })
    }

    /// A brand message, already absorbed into its conversation at intake. When it ended a
    /// wait (the conversation's answer is at its time), `conversation.answered` is published;
    /// the reminders that no longer apply are cancelled either way.
    async fn answered(
        &self,
        conversation: &Conversation,
        message: &Message,
    ) -> Result<Outcome, PrioritizeError> {
        if conversation.answered_at == Some(message.sent_at) {
            self.cases
                .wait_ended(conversation, AnsweredVia::Echo)
                .await?;
            return Ok(Outcome::Answered);
        }
        Ok(match self.cases.cancel_ended(conversation).await? {
            0 => Outcome::Skipped,
            _ => Outcome::Answered,
        })
    }

    /// A delivery status. One of a message switchboard never saw (sent by another tool through
    /// the API, which sends no echo) is the brand's answer at the status's time.
    async fn status(&self, event: &Event) -> Result<Outcome, PrioritizeError> {
        let EventKind::Status { status, .. } = &event.kind else {
            return Ok(Outcome::Skipped);
        };
        if !event.refers_to_unknown
            || event.direction != Direction::Outbound
            || matches!(status, DeliveryStatus::Failed | DeliveryStatus::Other(_))
        {
            return Ok(Outcome::Skipped);
        }
        let before = self
            .ports
            .conversations
            .conversation(&event.conversation_id)
            .await?
            .ok_or(PrioritizeError::Missing("conversation"))?;
        let after = self
            .cases
            .answered_elsewhere(
                &event.conversation_id,
                event.refers_to.as_str(),
                event.occurred_at,
                AnsweredVia::Status,
            )
            .await?
            .ok_or(PrioritizeError::Missing("conversation"))?;
        Ok(if after.answered_at != before.answered_at {
            Outcome::Answered
        } else {
            Outcome::Skipped
        })
    }

    /// The customer's history as of `message`, from counters (see [`crate::history`]): the
    /// surviving customer, its identities' activity, and the conversations the activity names
    /// within the look-back window (this one's counted contacts included). A fixed number of
    /// reads, whatever the length of the history. Answers the activity note to write for
    /// this message too.
    async fn history(
        &self,
        conversation: &Conversation,
        message: &Message,
    ) -> Result<(History, Option<ActivityNote>), BackendError> {
        let at = message.sent_at;
        let since = at - Duration::days(i64::from(self.scorer.config().history.lookback_days));
        let customer = self
            .ports
            .customers
            .customer(&conversation.customer_id)
            .await?;
        let (identities, vip) = match customer {
            Some(c) => {
                let vip = c
                    .tier
                    .as_deref()
                    .is_some_and(|t| t.eq_ignore_ascii_case("vip"));
                let mut ids: Vec<CustomerId> =
                    c.identities.into_iter().map(|i| i.customer_id).collect();
                if !ids.contains(&conversation.customer_id) {
                    ids.push(conversation.customer_id.clone());
                }
                (ids, vip)
            }
            None => (vec![conversation.customer_id.clone()], false),
        };
        let activity = self.ports.history.activity(&identities).await?;
        let own: Vec<&Activity> = activity
            .iter()
            .filter(|a| a.identity == conversation.customer_id)
            .collect();
        let note = ActivityNote::after(&own, &conversation.id, at, since);

        let mut history = History {
            vip,
            breaches: conversation.sla_breaches,
            ..History::default()
        };
        let (day, week) = (at - Duration::hours(24), at - Duration::days(7));
        let contacts = |history: &mut History, c: &Conversation| {
            history.contacts_24h += c.contacts.between(day, at);
            history.contacts_7d += c.contacts.between(week, at);
        };
        contacts(&mut history, conversation);
        let others: BTreeSet<ConversationId> = activity
            .into_iter()
            // What was noted lags by up to a day; the conversation's own time decides below.
            .filter(|a| a.at + ACTIVITY_REFRESH >= since && a.conversation != conversation.id)
            .map(|a| a.conversation)
            .collect();
        let others: Vec<ConversationId> = others.into_iter().collect();
        let others = if others.is_empty() {
            Vec::new()
        } else {
            self.ports
                .conversations
                .conversations_by_id(&others)
                .await?
        };
        for other in others.iter().filter(|o| o.last_at >= since) {
            contacts(&mut history, other);
            if let Some(since) = other.waiting_since {
                history.open_elsewhere += 1;
                if history.oldest_open.is_none_or(|(_, oldest)| since < oldest) {
                    history.oldest_open = Some((other.channel, since));
                }
            }
            history.breaches += other.sla_breaches;
            history.complaints += u32::from(other.priority.as_ref().is_some_and(|p| p.complaint));
        }
        Ok((history, note))
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

/// The statuses that show a message reached the provider or the customer: an answer.
const ANSWERING_STATUSES: [&str; 4] = ["sent", "delivered", "read", "played"];

/// `conversation.prioritized` for a conversation whose priority was just set. Its id is
/// derived from the conversation and the message that set the level.
pub fn prioritized_event(
    conversation: &Conversation,
    now: chrono::DateTime<chrono::Utc>,
) -> DomainEvent {
    let p = conversation.priority.as_ref();
    let record_key = p.map(|p| p.record_key.as_str()).unwrap_or_default();
    DomainEvent::new(
        PRIORITIZED,
        events::VERSION,
        &[conversation.id.as_str(), record_key],
        now,
        json!({
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
            "case": conversation.case.number,
        }),
    )
}
