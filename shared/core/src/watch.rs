//! Silent channels: a business account that stops sending (an expired token, an unsubscribed
//! app, a page removed: Meta tells nobody) is noticed, and so is its return.
//!
//! [`Watcher::heard`] is called by the prioritizer for each queue entry of an account: it
//! notes the time, publishes `channel.resumed` when the account was silent, and makes sure a
//! check is set for when the account would be silent: [`WatchSettings::silent_after`] of
//! business time (the SLA policy's default calendar) after that. [`Watcher::check`] runs when
//! the check fires (a [`ReminderKind::ChannelCheck`] reminder, through the reminder consumer):
//! heard from since, it sets the next check; otherwise it publishes `channel.silent` once.
//!
//! No periodic scan: one pending check per account, moved forward only when it fires, so an
//! account that sends all day costs a check every `silent_after`, and a quiet one none after
//! its silence was reported. Writes are spared too: a process notes an account at most once
//! a minute while it is not silent.
//!
//! The order makes every step safe to repeat: the check is scheduled (idempotent by name)
//! before the watch names it, so a check that is not named is stale and does nothing; an event
//! is published before the watch records it, with an id from the fact, so a retry publishes
//! the same id.

use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::clock::Clock;
use crate::events;
use crate::ports::{BackendError, ChannelWatches, EventPublisher, ReminderScheduler, Watch};
use crate::sla::{Calendar, Reminder, ReminderKind, WatchedAccount};
use crate::telemetry;

/// How long an account may be quiet, and on whose clock.
#[derive(Debug, Clone)]
pub struct WatchSettings {
    /// Business time without a delivery after which an account is silent.
    pub silent_after: Duration,
    /// The calendar whose hours count (the SLA policy's default calendar).
    pub calendar: Calendar,
}

/// How long a process trusts its own note that an account is heard and watched.
const NOTED_FOR: Duration = Duration::minutes(1);

/// What a fired check did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// The account was heard from since: the next check is set.
    Rescheduled,
    /// It is silent: `channel.silent` was published.
    Silent,
    /// Not the current check, or the silence was reported already: nothing done.
    Stale,
}

/// The silent-channel watch over its ports. See the module docs.
#[derive(Clone)]
pub struct Watcher {
    watches: Arc<dyn ChannelWatches>,
    timers: Arc<dyn ReminderScheduler>,
    events: Arc<dyn EventPublisher>,
    settings: Arc<WatchSettings>,
    clock: Arc<dyn Clock>,
    noted: Arc<Mutex<HashMap<WatchedAccount, DateTime<Utc>>>>,
}

impl Watcher {
    /// A watcher keeping watches in `watches`, setting checks with `timers`, publishing to
    /// `events`.
    pub fn new(
        watches: Arc<dyn ChannelWatches>,
        timers: Arc<dyn ReminderScheduler>,
        events: Arc<dyn EventPublisher>,
        settings: WatchSettings,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            watches,
            timers,
            events,
            settings: Arc::new(settings),
            clock,
            noted: Arc::default(),
        }
    }

    fn due(&self, heard_at: DateTime<Utc>) -> DateTime<Utc> {
        self.settings
            .calendar
            .add(heard_at, self.settings.silent_after)
    }

    /// A delivery of `account` reached switchboard now.
    pub async fn heard(&self, account: &WatchedAccount) -> Result<(), BackendError> {
        let now = self.clock.now();
        {
            let noted = self.noted.lock().unwrap_or_else(|e| e.into_inner());
            if noted.get(account).is_some_and(|at| now - *at < NOTED_FOR) {
                return Ok(());
            }
        }
        let watch = self.watches.watch(account).await?.unwrap_or_default();
        if let Some(since) = watch.silent_since {
            self.events
                .publish(&[events::channel_resumed(account, since, now, now)])
                .await?;
            telemetry::channel_watch(account.channel, account.account_id.as_str(), false);
            tracing::info!(channel = %account.channel, account = %account.account_id, "channel resumed");
        }
        // A check is set unless one is pending (it moves itself forward when it fires).
        let pending = watch.check.is_some() && watch.check_at.is_some_and(|at| at > now);
        let check = (!pending).then(|| Reminder::channel_check(account, now, self.due(now)));
        if let Some(check) = &check {
            self.timers.schedule(std::slice::from_ref(check)).await?;
        }
        self.watches
            .update_watch(account, &|w: &mut Watch| {
                let before = w.clone();
                w.last_heard_at = w.last_heard_at.max(Some(now));
                w.silent_since = None;
                if let Some(check) = &check
                    && w.check_at.is_none_or(|at| at <= now)
                {
                    w.check = Some(check.name.clone());
                    w.check_at = Some(check.fire_at);
                }
                *w != before
            })
            .await?;
        self.noted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(account.clone(), now);
        Ok(())
    }

    /// The check `reminder` fired.
    pub async fn check(&self, reminder: &Reminder) -> Result<Checked, BackendError> {
        let Some(account) = reminder
            .account
            .as_ref()
            .filter(|_| reminder.kind == ReminderKind::ChannelCheck)
        else {
            return Ok(Checked::Stale);
        };
        let Some(watch) = self.watches.watch(account).await? else {
            return Ok(Checked::Stale);
        };
        if watch.check.as_deref() != Some(reminder.name.as_str()) || watch.silent_since.is_some() {
            return Ok(Checked::Stale);
        }
        let Some(heard) = watch.last_heard_at else {
            return Ok(Checked::Stale);
        };
        let now = self.clock.now();
        let due = self.due(heard);
        if due > now {
            let next = Reminder::channel_check(account, heard, due);
            self.timers.schedule(std::slice::from_ref(&next)).await?;
            let name = reminder.name.clone();
            self.watches
                .update_watch(account, &|w: &mut Watch| {
                    if w.check.as_deref() != Some(name.as_str()) {
                        return false;
                    }
                    w.check = Some(next.name.clone());
                    w.check_at = Some(next.fire_at);
                    true
                })
                .await?;
            return Ok(Checked::Rescheduled);
        }
        let seconds = self.settings.silent_after.num_seconds();
        self.events
            .publish(&[events::channel_silent(account, heard, due, seconds, now)])
            .await?;
        let name = reminder.name.clone();
        self.watches
            .update_watch(account, &|w: &mut Watch| {
                if w.check.as_deref() != Some(name.as_str()) || w.last_heard_at != Some(heard) {
                    return false;
                }
                w.silent_since = Some(due);
                w.check = None;
                w.check_at = None;
                true
            })
            .await?;
        // This process may have noted the account before it went quiet: forget it, so the next
        // delivery is seen as a return.
        self.noted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(account);
        telemetry::channel_watch(account.channel, account.account_id.as_str(), true);
        tracing::warn!(channel = %account.channel, account = %account.account_id, "channel silent");
        Ok(Checked::Silent)
    }
}
