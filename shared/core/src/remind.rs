//! The reminder consumer: what happens when a reminder fires (the `sla-reminder` function on
//! AWS, fed by the reminder queue that EventBridge Scheduler sends to; the timer loop of
//! `switchboard serve` on the embedded backend).
//!
//! A reminder re-reads its conversation first: one for a wait that was answered meanwhile, or
//! whose clock moved (a higher level), or a window that moved (a later customer message), does
//! nothing. A channel check goes to the [`Watcher`] (it may publish `channel.silent`).
//! Otherwise it publishes `sla.warning`, `sla.breached` or `window.closing` with the
//! conversation, team, priority, due time and how late; a breach also raises the
//! conversation's priority one step and counts the breach, once per wait.
//!
//! Idempotent: the event id comes from the reminder's name, and the breach's changes are made
//! once (the clock remembers `breached_at`).

use chrono::{DateTime, Utc};
use serde_json::json;
use std::sync::Arc;

use crate::clock::Clock;
use crate::consume::{BatchItem, ConsumeError, QueueHandler, run_batch};
use crate::ids::ConversationId;
use crate::metrics::Tally;
use crate::model::Conversation;
use crate::ports::{ConversationStore, DomainEvent, EventPublisher};
use crate::priority::Reason;
use crate::sla::{Reminder, ReminderKind};
use crate::watch::{Checked, Watcher};

/// What a fired reminder did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fired {
    /// Its event was published (and, for a breach, the priority raised).
    Published(ReminderKind),
    /// It no longer applies (answered, moved, or the conversation is gone): nothing done.
    Stale,
    /// A breach already handled (a repeated delivery): nothing done again.
    Repeat,
}

/// The reminder consumer over its ports.
#[derive(Clone)]
pub struct ReminderHandler {
    store: Arc<dyn ConversationStore>,
    events: Arc<dyn EventPublisher>,
    clock: Arc<dyn Clock>,
    watcher: Option<Watcher>,
}

impl ReminderHandler {
    /// A handler reading and writing conversations in `store` and publishing to `events`.
    pub fn new(
        store: Arc<dyn ConversationStore>,
        events: Arc<dyn EventPublisher>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            events,
            clock,
            watcher: None,
        }
    }

    /// Runs the channel checks with `watcher` (without, a check fires as stale).
    pub fn watching(mut self, watcher: Watcher) -> Self {
        self.watcher = Some(watcher);
        self
    }

    /// Handles a batch of fired reminders (their JSON) with the
    /// [batch runner](crate::consume::run_batch), answering the ids to retry.
    pub async fn handle_batch(&self, items: &[BatchItem]) -> Vec<String> {
        run_batch(self, items).await
    }

    /// Handles one fired reminder.
    pub async fn handle(&self, reminder: &Reminder) -> Result<Fired, ConsumeError> {
        if reminder.kind == ReminderKind::ChannelCheck {
            let Some(watcher) = &self.watcher else {
                return Ok(Fired::Stale);
            };
            return Ok(match watcher.check(reminder).await? {
                Checked::Silent => {
                    crate::telemetry::reminder_fired(reminder.kind.event_type());
                    Fired::Published(ReminderKind::ChannelCheck)
                }
                Checked::Rescheduled | Checked::Stale => Fired::Stale,
            });
        }
        let Some(conversation) = self.store.conversation(&reminder.conversation_id).await? else {
            return Ok(Fired::Stale);
        };
        let now = self.clock.now();
        if !applies(&conversation, reminder) {
            if awaits_its_clock(&conversation, reminder, now) {
                return Err(ConsumeError::NotYet("conversation's SLA clock"));
            }
            tracing::info!(conversation = %reminder.conversation_id, kind = reminder.kind.event_type(), "stale reminder");
            return Ok(Fired::Stale);
        }
        if reminder.kind == ReminderKind::Breach
            && conversation
                .current_sla()
                .is_some_and(|k| k.breached_at.is_some())
        {
            return Ok(Fired::Repeat);
        }
        self.events
            .publish(&[event(&conversation, reminder, now)])
            .await?;
        if reminder.kind == ReminderKind::Breach {
            self.store
                .update_conversation(&conversation.id, &|c: &mut Conversation, _: &mut Tally| {
                    breach(c, reminder, now)
                })
                .await?;
        }
        tracing::info!(conversation = %reminder.conversation_id, kind = reminder.kind.event_type(), "reminder fired");
        crate::telemetry::reminder_fired(reminder.kind.event_type());
        Ok(Fired::Published(reminder.kind))
    }
}

#[async_trait::async_trait]
impl QueueHandler for ReminderHandler {
    type Message = Reminder;
    type Outcome = Fired;
    const QUEUE: &'static str = "reminders";

    fn conversation(reminder: &Reminder) -> &ConversationId {
        &reminder.conversation_id
    }

    async fn handle(&self, reminder: &Reminder) -> Result<Fired, ConsumeError> {
        ReminderHandler::handle(self, reminder).await
    }
}

/// How long after its instant a warning or breach may wait for its conversation's clock (see
/// [`awaits_its_clock`]) before it is dropped as stale: far beyond any prioritization lag a
/// working prioritizer has, and a bound on retrying one whose prioritization failed for good.
pub const CLOCK_GRACE: chrono::TimeDelta = chrono::TimeDelta::minutes(15);

/// Whether `reminder` is a warning or breach of the wait `conversation` is in, whose clock
/// is not written yet: the prioritizer schedules a wait's reminders before it writes the
/// conversation (so that a retry never loses them), and one already due fires at once, in
/// between. Within [`CLOCK_GRACE`] of its instant it is retried, not dropped.
pub fn awaits_its_clock(
    conversation: &Conversation,
    reminder: &Reminder,
    now: DateTime<Utc>,
) -> bool {
    matches!(reminder.kind, ReminderKind::Warning | ReminderKind::Breach)
        && conversation.waiting_since == Some(reminder.wait_since)
        && conversation.current_sla().is_none()
        && now - reminder.fire_at < CLOCK_GRACE
}

/// Whether `reminder` still applies to `conversation`.
pub fn applies(conversation: &Conversation, reminder: &Reminder) -> bool {
    match reminder.kind {
        ReminderKind::Warning | ReminderKind::Breach => conversation
            .current_sla()
            .is_some_and(|k| k.wait_since == reminder.wait_since && k.due_at == reminder.due_at),
        ReminderKind::WindowClosing => {
            conversation.waiting_since.is_some()
                && conversation.last_inbound_at == Some(reminder.wait_since)
        }
        ReminderKind::ChannelCheck => false,
    }
}

/// The breach, applied once per wait: counted, and the priority raised one step.
pub fn breach(c: &mut Conversation, reminder: &Reminder, now: DateTime<Utc>) -> bool {
    if !applies(c, reminder) {
        return false;
    }
    let Some(clock) = c.sla.as_mut() else {
        return false;
    };
    if clock.breached_at.is_some() {
        return false;
    }
    clock.breached_at = Some(now);
    c.sla_breaches += 1;
    if let Some(p) = c.priority.as_mut() {
        let raised = p.priority.raised();
        if raised != p.priority {
            p.priority = raised;
            p.reasons.push(Reason {
                signal: "breached".into(),
                weight: 0,
                detail: Some(format!("raised to {raised}")),
            });
        }
    }
    true
}

/// The event of a fired reminder.
pub fn event(conversation: &Conversation, reminder: &Reminder, now: DateTime<Utc>) -> DomainEvent {
    let p = conversation.priority.as_ref();
    DomainEvent::new(
        reminder.kind.event_type(),
        crate::events::VERSION,
        &[&reminder.name],
        now,
        json!({
            "conversation_id": conversation.id,
            "customer_id": conversation.customer_id,
            "channel": conversation.channel,
            "team": p.map(|p| &p.team),
            "priority": p.map(|p| p.priority),
            "wait_since": reminder.wait_since,
            "due_at": reminder.due_at,
            "late_seconds": (now - reminder.due_at).num_seconds(),
        }),
    )
}
