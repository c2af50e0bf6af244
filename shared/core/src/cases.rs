//! What agents do to a conversation, and what the brand's answers end: [`Cases`].
//!
//! * An answer (the channel's echo of an agent's reply through the prioritizer, a WhatsApp
//!   status of a message sent by another tool, an agent tool's `POST …/answered`) ends the wait
//!   ([`Conversation::reply`]: its response time recorded, out of the queue) and publishes
//!   `conversation.answered`.
//! * A resolution (`POST …/resolve`) closes the current case, decides first-contact resolution
//!   and publishes `conversation.resolved`.
//! * An assignment (`POST …/assign`) puts the conversation in an agent's queue and publishes
//!   `conversation.assigned`.
//!
//! Each change is published before it is written (the event describes the change applied to
//! the conversation as read), then written with the store's safe read-modify-write, then the
//! reminders that no longer apply are cancelled: the SLA clock's once the wait is over, the
//! window's once nobody waits. A retry after any failure repeats what did not happen: the
//! event again with the same id, the write (a no-op once done), the cancellation (a reminder
//! already deleted is fine). A reminder that fires all the same finds the wait over and does
//! nothing.
//!
//! [`Cases`] needs the store, the reminder scheduler and the event bus: no scoring, no policy,
//! which keeps the agent API's function small.

use chrono::{DateTime, Utc};
use std::sync::Arc;

use crate::clock::Clock;
use crate::events::{self, AnsweredVia};
use crate::ids::ConversationId;
use crate::metrics::Tally;
use crate::model::Conversation;
use crate::ports::{
    BackendError, ConversationStore, DomainEvent, EventPublisher, ReminderScheduler,
};
use crate::telemetry;
use crate::timers;

/// How far in the future an agent tool's answer time may be (the tool's clock may run ahead).
pub const MAX_CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

/// Why an agent tool's answer was refused.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// The answer time is in the future (beyond [`MAX_CLOCK_SKEW`]).
    #[error("at {at} is in the future (now is {now}): give the time the answer was sent")]
    Future {
        /// The time given.
        at: DateTime<Utc>,
        /// The server's time.
        now: DateTime<Utc>,
    },
    /// The answer time is before the wait it would end.
    #[error("at {at} is before the customer started waiting ({waiting_since}): it answers nothing")]
    BeforeWait {
        /// The time given.
        at: DateTime<Utc>,
        /// When the wait started.
        waiting_since: DateTime<Utc>,
    },
    /// A storage failure.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Who acts: an agent id (the authorizer's identity on AWS, `X-Switchboard-Agent` under
/// `serve`).
pub type Actor<'a> = &'a str;

/// Answers, resolutions and assignments of conversations. See the module docs.
#[derive(Clone)]
pub struct Cases {
    conversations: Arc<dyn ConversationStore>,
    timers: Arc<dyn ReminderScheduler>,
    events: Arc<dyn EventPublisher>,
    clock: Arc<dyn Clock>,
}

impl Cases {
    /// Cases over `conversations`, cancelling reminders with `timers`, publishing to `events`.
    pub fn new(
        conversations: Arc<dyn ConversationStore>,
        timers: Arc<dyn ReminderScheduler>,
        events: Arc<dyn EventPublisher>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            conversations,
            timers,
            events,
            clock,
        }
    }

    /// The brand answered the conversation at `at` with the reply `reply_id` that switchboard
    /// did not see as a message (a status of a message another tool sent, an agent tool's
    /// word): the wait ends as with an echo. Answers the conversation as stored afterwards, or
    /// `None` when there is none. Repeating it changes nothing more.
    pub async fn answered_elsewhere(
        &self,
        id: &ConversationId,
        reply_id: &str,
        at: DateTime<Utc>,
        via: AnsweredVia,
    ) -> Result<Option<Conversation>, BackendError> {
        let now = self.clock.now();
        self.change(
            id,
            &|c: &mut Conversation, _: &mut Tally| {
                let before = (c.waiting_since, c.case.clone());
                c.reply(reply_id, at);
                (c.waiting_since, c.case.clone()) != before
            },
            &|before, after| {
                (after.answered_at != before.answered_at)
                    .then(|| events::answered(after, via, now))
                    .flatten()
            },
        )
        .await
    }

    /// An agent tool says the conversation was answered at `at` (now when `None`).
    pub async fn mark_answered(
        &self,
        id: &ConversationId,
        at: Option<DateTime<Utc>>,
    ) -> Result<Option<Conversation>, AnswerError> {
        let now = self.clock.now();
        if let Some(at) = at {
            if at > now + MAX_CLOCK_SKEW {
                return Err(AnswerError::Future { at, now });
            }
            let Some(conversation) = self.conversations.conversation(id).await? else {
                return Ok(None);
            };
            if let Some(waiting_since) = conversation.waiting_since
                && at < waiting_since
            {
                return Err(AnswerError::BeforeWait { at, waiting_since });
            }
        }
        let at = at.unwrap_or(now);
        let reply = format!("agent-tool:{}", at.timestamp_millis());
        Ok(self
            .answered_elsewhere(id, &reply, at, AnsweredVia::AgentTool)
            .await?)
    }

    /// A message already absorbed into `conversation` (an echo) ended its wait: publishes
    /// `conversation.answered` and cancels the reminders that no longer apply.
    pub async fn wait_ended(
        &self,
        conversation: &Conversation,
        via: AnsweredVia,
    ) -> Result<(), BackendError> {
        if let Some(event) = events::answered(conversation, via, self.clock.now()) {
            self.events.publish(&[event]).await?;
            count_answer(conversation);
        }
        self.cancel_ended(conversation).await?;
        Ok(())
    }

    /// `by` resolves the current case. Answers the conversation afterwards (unchanged when it
    /// was resolved already), or `None` when there is none.
    pub async fn resolve(
        &self,
        id: &ConversationId,
        by: Actor<'_>,
    ) -> Result<Option<Conversation>, BackendError> {
        let now = self.clock.now();
        self.change(
            id,
            &|c: &mut Conversation, _: &mut Tally| c.resolve(now, by),
            &|_, after| events::resolved(after, now),
        )
        .await
    }

    /// `by` assigns the conversation to `agent`, or to nobody.
    pub async fn assign(
        &self,
        id: &ConversationId,
        agent: Option<&str>,
        by: Actor<'_>,
    ) -> Result<Option<Conversation>, BackendError> {
        let now = self.clock.now();
        self.change(
            id,
            &|c: &mut Conversation, _: &mut Tally| c.assign(agent, now),
            &|_, after| Some(events::assigned(after, by, now)),
        )
        .await
    }

    /// Publish what `change` does to the conversation as read, write it, cancel what ended.
    async fn change(
        &self,
        id: &ConversationId,
        change: crate::ports::ConversationChange<'_>,
        event: &(dyn Fn(&Conversation, &Conversation) -> Option<DomainEvent> + Send + Sync),
    ) -> Result<Option<Conversation>, BackendError> {
        let Some(current) = self.conversations.conversation(id).await? else {
            return Ok(None);
        };
        let mut preview = current.clone();
        let written = if change(&mut preview, &mut Tally::default()) {
            if let Some(e) = event(&current, &preview) {
                self.events.publish(&[e]).await?;
                if preview.answered_at != current.answered_at {
                    count_answer(&preview);
                }
            }
            match self.conversations.update_conversation(id, change).await? {
                Some(written) => written,
                None => return Ok(None),
            }
        } else {
            current
        };
        if self.cancel_ended(&written).await? == 0 {
            return Ok(Some(written));
        }
        self.conversations.conversation(id).await
    }

    /// Cancels the reminders of `conversation` that its state says no longer apply (by the
    /// [timer plan](crate::timers): an ended wait's, and the window's once nobody waits), then
    /// forgets them on the conversation. Answers how many were cancelled (0: nothing to do,
    /// nothing written).
    pub async fn cancel_ended(&self, conversation: &Conversation) -> Result<usize, BackendError> {
        let plan = timers::plan(conversation, conversation, Vec::new());
        if plan.cancel.is_empty() {
            return Ok(0);
        }
        self.timers.cancel(&plan.cancel).await?;
        self.conversations
            .update_conversation(&conversation.id, &timers::forget_ended)
            .await?;
        tracing::info!(conversation = %conversation.id, cancelled = plan.cancel.len(), "reminders cancelled");
        Ok(plan.cancel.len())
    }
}

/// The operational count of an answer ([`telemetry::answered`]): its response time, and
/// whether it met the due time of the wait it ended.
fn count_answer(c: &Conversation) {
    let Some(at) = c.answered_at else {
        return;
    };
    let met = c
        .sla
        .as_ref()
        .filter(|k| k.wait_since <= at)
        .map(|k| at <= k.due_at);
    telemetry::answered(c.channel, c.last_response_seconds.unwrap_or_default(), met);
}
