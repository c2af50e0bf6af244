//! [`SchedulerReminders`]: reminders as EventBridge Scheduler one-time schedules.
//!
//! Each reminder is a schedule named by the reminder (deterministic, so creating it twice is
//! one schedule: the second create is a `ConflictException`, taken as done), in the stack's
//! schedule group, `at(<fire time>)` in UTC, no flexible window, deleted by Scheduler after it
//! runs (`ActionAfterCompletion: DELETE`). Its target is the reminder queue, with the
//! reminder's JSON as the message, sent with the role Scheduler assumes, and a dead-letter
//! queue for a reminder it could not deliver. Cancelling deletes the schedule; one that no
//! longer exists (fired, or deleted before) is fine.
//!
//! Scheduler's resolution is one minute and it refuses times in the past: a reminder due
//! sooner than a minute from now is scheduled a minute from now (the consumer checks, when it
//! fires, whether it still applies).

use async_trait::async_trait;
use aws_sdk_scheduler::Client;
use aws_sdk_scheduler::types::{
    ActionAfterCompletion, DeadLetterConfig, FlexibleTimeWindow, FlexibleTimeWindowMode, Target,
};
use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;

use switchboard_core::clock::Clock;
use switchboard_core::ports::{BackendError, ReminderScheduler};
use switchboard_core::sla::Reminder;

/// Where the schedules go and what they send to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleTarget {
    /// The schedule group.
    pub group: String,
    /// The reminder queue's ARN.
    pub queue_arn: String,
    /// The role Scheduler assumes to send to the queue.
    pub role_arn: String,
    /// The queue a reminder goes to when Scheduler could not deliver it (the target refused
    /// it, or its retries ran out): every schedule carries it, so no reminder is dropped
    /// silently. `None`: no dead-letter queue (an emulator, a test).
    pub dead_letter_arn: Option<String>,
}

/// Reminders on EventBridge Scheduler. See the module docs.
#[derive(Clone)]
pub struct SchedulerReminders {
    client: Client,
    target: ScheduleTarget,
    clock: Arc<dyn Clock>,
}

/// The soonest a schedule is set after now.
const SOONEST: Duration = Duration::minutes(1);

/// The `at()` expression of an instant: `at(yyyy-mm-ddThh:mm:ss)`, to be read in UTC.
pub fn at_expression(at: DateTime<Utc>) -> String {
    format!("at({})", at.format("%Y-%m-%dT%H:%M:%S"))
}

impl SchedulerReminders {
    /// Reminders in `target`'s group, timed by `clock`.
    pub fn new(client: Client, target: ScheduleTarget, clock: Arc<dyn Clock>) -> Self {
        Self {
            client,
            target,
            clock,
        }
    }

    async fn create(&self, reminder: &Reminder) -> Result<(), BackendError> {
        const OP: &str = "schedule";
        let soonest = self.clock.now() + SOONEST;
        let at = reminder.fire_at.max(soonest);
        let input =
            serde_json::to_string(reminder).map_err(|e| BackendError::unavailable(OP, e))?;
        let mut target = Target::builder()
            .arn(&self.target.queue_arn)
            .role_arn(&self.target.role_arn)
            .input(input);
        if let Some(dlq) = &self.target.dead_letter_arn {
            target = target.dead_letter_config(DeadLetterConfig::builder().arn(dlq).build());
        }
        let target = target
            .build()
            .map_err(|e| BackendError::unavailable(OP, e))?;
        let window = FlexibleTimeWindow::builder()
            .mode(FlexibleTimeWindowMode::Off)
            .build()
            .map_err(|e| BackendError::unavailable(OP, e))?;
        let created = self
            .client
            .create_schedule()
            .name(&reminder.name)
            .group_name(&self.target.group)
            .schedule_expression(at_expression(at))
            .schedule_expression_timezone("UTC")
            .flexible_time_window(window)
            .action_after_completion(ActionAfterCompletion::Delete)
            .target(target)
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conflict_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(BackendError::unavailable(OP, e)),
        }
    }

    async fn delete(&self, name: &str) -> Result<(), BackendError> {
        let deleted = self
            .client
            .delete_schedule()
            .name(name)
            .group_name(&self.target.group)
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(BackendError::unavailable("cancel", e)),
        }
    }
}

#[async_trait]
impl ReminderScheduler for SchedulerReminders {
    /// One `CreateSchedule` per reminder (Scheduler has no batch call).
    async fn schedule(&self, reminders: &[Reminder]) -> Result<(), BackendError> {
        for reminder in reminders {
            self.create(reminder).await?;
        }
        Ok(())
    }

    /// One `DeleteSchedule` per name.
    async fn cancel(&self, names: &[String]) -> Result<(), BackendError> {
        for name in names {
            self.delete(name).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn at_expressions_are_utc_to_the_second() {
        let t = Utc.timestamp_opt(1_795_000_000, 123_000_000).unwrap();
        assert_eq!(at_expression(t), "at(2026-11-18T11:06:40)");
    }
}
