//! The CPU cost of the metrics: what counting adds to the writes that already happen, and what
//! a month's report costs once its buckets are read.
//!
//! * `count/fold_answer`: `recording::fold` of a customer message and the page's echo into a
//!   new conversation, the answer counted by `metrics::transition` at each step (what intake
//!   does for an echo);
//! * `count/transition`: the snapshot and the transition of one answer alone;
//! * `count/message_scored`: the tally of one scored message (`messages_in`, `complaints`, …)
//!   and its named fields, as a store writes them;
//! * `report/month_by_day` and `report/month_by_hour_by_channel`: `metrics::report::report`
//!   over 31 days of hourly buckets in 4 keys (2,976 buckets), with a backlog of 100.
//!
//! Run with `cargo bench -p switchboard-core --bench metrics`.

use std::hint::black_box;

use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

use switchboard_core::channels;
use switchboard_core::metrics::report::{ReportQuery, Waiting, report};
use switchboard_core::metrics::{self, BucketKey, Counter, Counts, Dims, Snapshot, Tally};
use switchboard_core::model::{Channel, Conversation, Record, Webhook};
use switchboard_core::priority::{History, Priority, Scorer};
use switchboard_core::recording;
use switchboard_core::sla::Calendar;

fn messenger(mid: &str, ms: i64, echo: bool) -> Record {
    let (from, to) = if echo {
        ("PAGE", "PSID")
    } else {
        ("PSID", "PAGE")
    };
    let mut message = json!({"mid": mid, "text": "me cobraron dos veces"});
    if echo {
        message["is_echo"] = json!(true);
    }
    let body = json!({"object": "page", "entry": [{"id": "PAGE", "time": ms, "messaging": [
        {"sender": {"id": from}, "recipient": {"id": to}, "timestamp": ms, "message": message}]}]});
    channels::normalize(Webhook::Facebook, &body, Utc::now())
        .into_iter()
        .next()
        .expect("one record")
}

fn counting(c: &mut Criterion) {
    let inbound = messenger("m1", 1_790_000_000_000, false);
    let echo = messenger("m2", 1_790_000_600_000, true);
    let mut group = c.benchmark_group("count");
    group.bench_function("fold_answer", |b| {
        b.iter(|| black_box(recording::fold(None, black_box(&[&inbound, &echo]))))
    });
    let waiting = Conversation::from_record(&inbound).expect("a conversation");
    let mut answered = waiting.clone();
    answered.absorb(&echo);
    group.bench_function("transition", |b| {
        b.iter(|| {
            let snapshot = Snapshot::of(black_box(&waiting));
            let mut tally = Tally::default();
            metrics::transition(&snapshot, black_box(&answered), &mut tally);
            black_box(tally)
        })
    });
    let scorer = Scorer::default();
    let score = scorer.score("me cobraron dos veces", false, &History::default());
    let Record::Message(message) = &inbound else {
        unreachable!()
    };
    group.bench_function("message_scored", |b| {
        b.iter(|| {
            let mut tally = Tally::default();
            metrics::message_scored(&mut tally, &waiting, message, &score, true);
            let fields: Vec<_> = tally.buckets().map(|(_, c)| c.fields()).collect();
            black_box((tally, fields))
        })
    });
    group.finish();
}

fn month() -> (Vec<(BucketKey, Counts)>, Vec<Waiting>) {
    let start = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
    let channels = [
        Channel::Whatsapp,
        Channel::Messenger,
        Channel::Instagram,
        Channel::FacebookFeed,
    ];
    let mut stored = Vec::new();
    for h in 0..31 * 24 {
        for channel in channels {
            let mut counts = Counts::default();
            counts.add(Counter::MessagesIn, 40);
            counts.add(Counter::Answered, 35);
            counts.add(Counter::SlaMet, 30);
            counts.add(Counter::SlaBreached, 5);
            for s in 0..35 {
                counts.first_response.add(60 + s * 97);
            }
            stored.push((
                BucketKey {
                    hour: (start + Duration::hours(h)).timestamp(),
                    dims: dims(channel),
                },
                counts,
            ));
        }
    }
    let waiting = (0..100)
        .map(|i| Waiting {
            dims: dims(channels[i % 4]),
            since: start + Duration::days(30) + Duration::minutes(i as i64),
        })
        .collect();
    (stored, waiting)
}

fn dims(channel: Channel) -> Dims {
    Dims {
        channel,
        account: "106540352242922".into(),
        team: Some("care".into()),
        topic: Some("billing".into()),
        priority: Some(Priority::P3),
    }
}

fn reporting(c: &mut Criterion) {
    let (stored, waiting) = month();
    let calendar = Calendar::business(
        "America/Mexico_City",
        std::array::from_fn(|_| vec![switchboard_core::sla::Range::parse("09:00-18:00").unwrap()]),
        [],
    )
    .unwrap();
    let now: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 4, 1, 0, 0, 0).unwrap();
    let by_day = ReportQuery::parse(
        Some("2026-03-01T00:00:00Z"),
        Some("2026-04-01T00:00:00Z"),
        Some("day"),
        &[],
    )
    .unwrap();
    let by_hour = ReportQuery::parse(
        Some("2026-03-01T00:00:00Z"),
        Some("2026-04-01T00:00:00Z"),
        Some("hour"),
        &["channel".into()],
    )
    .unwrap();
    let mut group = c.benchmark_group("report");
    group.bench_function("month_by_day", |b| {
        b.iter(|| black_box(report(&by_day, &calendar, &stored, &waiting, now).to_json()))
    });
    group.bench_function("month_by_hour_by_channel", |b| {
        b.iter(|| black_box(report(&by_hour, &calendar, &stored, &waiting, now).to_json()))
    });
    group.finish();
}

criterion_group!(benches, counting, reporting);
criterion_main!(benches);
