//! Silent channels on both backends: the watch of a business account is read and written
//! back safely; a quiet account is reported `channel.silent` once, after the configured time,
//! and `channel.resumed` when it sends again; a check that is not the current one does
//! nothing. Every event published is valid against its schema (the probes check it).

use chrono::{DateTime, Duration, TimeZone, Utc};
use std::sync::Arc;

use switchboard_core::clock::ManualClock;
use switchboard_core::events::{CHANNEL_RESUMED, CHANNEL_SILENT};
use switchboard_core::model::{Channel, ProviderId};
use switchboard_core::ports::{ChannelWatches, Watch};
use switchboard_core::sla::{Calendar, Reminder, WatchedAccount};
use switchboard_core::watch::{Checked, WatchSettings, Watcher};
use switchboard_tests::Backend;

switchboard_tests::contract!(
    a_watch_is_created_changed_and_left_alone_when_nothing_changes,
    a_quiet_account_is_reported_silent_once_and_its_return_too,
);

fn account(name: &str) -> WatchedAccount {
    WatchedAccount {
        channel: Channel::Whatsapp,
        account_id: ProviderId::from(name),
    }
}

fn t(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0).unwrap() + Duration::minutes(minutes)
}

async fn a_watch_is_created_changed_and_left_alone_when_nothing_changes(backend: Backend) {
    let watches: Arc<dyn ChannelWatches> = backend.watches.clone();
    let a = account(&format!("PN-W-{}", backend.name));
    assert_eq!(watches.watch(&a).await.unwrap(), None);
    let written = watches
        .update_watch(&a, &|w: &mut Watch| {
            w.last_heard_at = Some(t(0));
            true
        })
        .await
        .unwrap();
    assert_eq!(written.last_heard_at, Some(t(0)));
    assert_eq!(watches.watch(&a).await.unwrap(), Some(written.clone()));
    // A change that changes nothing writes nothing and answers the watch as read.
    let same = watches
        .update_watch(&a, &|_: &mut Watch| false)
        .await
        .unwrap();
    assert_eq!(same, written);
    // Each change applies to what is stored: two in a row both land.
    for (i, name) in ["check-1", "check-2"].into_iter().enumerate() {
        watches
            .update_watch(&a, &|w: &mut Watch| {
                w.check = Some(name.into());
                w.check_at = Some(t(10 + i as i64));
                true
            })
            .await
            .unwrap();
    }
    let now = watches.watch(&a).await.unwrap().unwrap();
    assert_eq!(
        (now.check.as_deref(), now.check_at, now.last_heard_at),
        (Some("check-2"), Some(t(11)), Some(t(0)))
    );
    // Another account's watch is its own.
    assert_eq!(watches.watch(&account("PN-OTHER")).await.unwrap(), None);
}

async fn a_quiet_account_is_reported_silent_once_and_its_return_too(backend: Backend) {
    let clock = Arc::new(ManualClock::new(t(0)));
    let watcher = Watcher::new(
        backend.watches.clone(),
        backend.timers.clone(),
        backend.events.clone(),
        WatchSettings {
            silent_after: Duration::minutes(10),
            calendar: Calendar::always(),
        },
        clock.clone(),
    );
    let a = account(&format!("PN-QUIET-{}", backend.name));
    let events = |kind: &'static str| {
        let backend = backend.clone();
        let a = a.clone();
        async move {
            let mut all = backend.published.of_type(kind).await;
            all.retain(|e| e["detail"]["account_id"] == a.account_id.as_str());
            all
        }
    };

    // Heard at 15:00: a check at 15:10.
    watcher.heard(&a).await.unwrap();
    let first = Reminder::channel_check(&a, t(0), t(10));
    assert!(backend.pending.names().await.contains(&first.name));
    // Heard again at 15:05: the check stays (it moves itself when it fires).
    clock.set(t(5));
    watcher.heard(&a).await.unwrap();
    let w = backend.watches.watch(&a).await.unwrap().unwrap();
    assert_eq!(
        (w.last_heard_at, w.check.as_deref()),
        (Some(t(5)), Some(first.name.as_str()))
    );

    // 15:10: heard five minutes ago, so not silent: the next check at 15:15.
    clock.set(t(10));
    assert_eq!(watcher.check(&first).await.unwrap(), Checked::Rescheduled);
    let second = Reminder::channel_check(&a, t(5), t(15));
    assert!(backend.pending.names().await.contains(&second.name));
    assert_eq!(
        watcher.check(&first).await.unwrap(),
        Checked::Stale,
        "the first check again is not the current one"
    );
    assert!(events(CHANNEL_SILENT).await.is_empty());

    // 15:16: quiet since 15:05, ten minutes reached at 15:15: silent, once.
    clock.set(t(16));
    assert_eq!(watcher.check(&second).await.unwrap(), Checked::Silent);
    assert_eq!(watcher.check(&second).await.unwrap(), Checked::Stale);
    let silent = events(CHANNEL_SILENT).await;
    assert_eq!(silent.len(), 1, "{silent:?}");
    let d = &silent[0]["detail"];
    assert_eq!(d["channel"], "whatsapp");
    assert_eq!(d["silent_after_seconds"], 600);
    let at = |v: &serde_json::Value| {
        DateTime::parse_from_rfc3339(v.as_str().unwrap())
            .unwrap()
            .with_timezone(&Utc)
    };
    assert_eq!(at(&d["last_heard_at"]), t(5));
    assert_eq!(at(&d["silent_since"]), t(15));
    assert!(events(CHANNEL_RESUMED).await.is_empty());

    // 15:30: it sends again: resumed, once, and watched again.
    clock.set(t(30));
    watcher.heard(&a).await.unwrap();
    let resumed = events(CHANNEL_RESUMED).await;
    assert_eq!(resumed.len(), 1, "{resumed:?}");
    assert_eq!(at(&resumed[0]["detail"]["silent_since"]), t(15));
    assert_eq!(at(&resumed[0]["detail"]["resumed_at"]), t(30));
    let w = backend.watches.watch(&a).await.unwrap().unwrap();
    assert_eq!(w.silent_since, None);
    let third = Reminder::channel_check(&a, t(30), t(40));
    assert_eq!(w.check.as_deref(), Some(third.name.as_str()));
    clock.set(t(31));
    watcher.heard(&a).await.unwrap();
    assert_eq!(events(CHANNEL_RESUMED).await.len(), 1, "resumed once");
}
