//! Ending a wait: what happens when the brand answers a conversation, from the channel's echo
//! of the agent's reply (through the prioritizer) or from an agent tool
//! (`POST /api/conversations/{id}/answered`).
//!
//! The wait ends ([`Conversation::answer`]: its response time recorded, out of the team's
//! queue), and the reminders that no longer apply are cancelled: the SLA clock's warning and
//! breach once the wait is over, the messaging window's once nobody waits. The reminder names
//! are cleared from the conversation after their cancellation succeeded, so a retry after any
//! failure cancels them again (a reminder already deleted is fine), and a reminder that fires
//! all the same finds the wait over and does nothing.
//!
//! [`AnswerRecorder`] needs only the store and the reminder scheduler: no scoring, no policy,
//! no event bus, which keeps the agent API's function small.

use chrono::{DateTime, Utc};
use std::sync::Arc;

use crate::ids::ConversationId;
use crate::model::Conversation;
use crate::ports::{BackendError, ConversationStore, ReminderScheduler};
use crate::timers;

/// Ends waits and cancels their reminders. See the module docs.
#[derive(Clone)]
pub struct AnswerRecorder {
    conversations: Arc<dyn ConversationStore>,
    timers: Arc<dyn ReminderScheduler>,
}

impl AnswerRecorder {
    /// A recorder writing `conversations` and cancelling reminders with `timers`.
    pub fn new(
        conversations: Arc<dyn ConversationStore>,
        timers: Arc<dyn ReminderScheduler>,
    ) -> Self {
        Self {
            conversations,
            timers,
        }
    }

    /// The conversation was answered at `at` by an agent tool: the wait ends as with an echo
    /// ([`Conversation::answer`]) and its reminders are cancelled. Answers the conversation as
    /// stored afterwards, or `None` when there is none. Repeating it changes nothing more.
    pub async fn mark_answered(
        &self,
        id: &ConversationId,
        at: DateTime<Utc>,
    ) -> Result<Option<Conversation>, BackendError> {
        let Some(conversation) = self
            .conversations
            .update_conversation(id, &|c: &mut Conversation| {
                let before = c.waiting_since;
                c.answer(at);
                c.waiting_since != before
            })
            .await?
        else {
            return Ok(None);
        };
        self.cancel_ended(&conversation).await?;
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
