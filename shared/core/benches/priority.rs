//! The CPU cost of scoring: `Scorer::score` over the 249 messages of the labelled set
//! (`tests/fixtures/priority/labelled.jsonl`), with and without history, and building the
//! scorer from the shipped configuration (once per cold start), and the start-up pieces apart.
//!
//! Run with `cargo bench -p switchboard-core --bench priority`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use switchboard_core::priority::{History, PriorityConfig, Scorer};

const LABELLED: &str = include_str!("../../../tests/fixtures/priority/labelled.jsonl");

fn messages() -> Vec<(String, bool)> {
    LABELLED
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            (
                v["text"].as_str().expect("text").to_owned(),
                v["public"].as_bool().expect("public"),
            )
        })
        .collect()
}

fn scoring(c: &mut Criterion) {
    let messages = messages();
    let scorer = Scorer::default();
    let history = History {
        open_elsewhere: 1,
        contacts_24h: 2,
        contacts_7d: 3,
        breaches: 1,
        complaints: 1,
        vip: true,
        ..History::default()
    };
    let mut group = c.benchmark_group("score");
    group.throughput(Throughput::Elements(messages.len() as u64));
    group.bench_function("labelled_set", |b| {
        b.iter(|| {
            for (text, public) in &messages {
                black_box(scorer.score(black_box(text), *public, &History::default()));
            }
        })
    });
    group.bench_function("labelled_set_with_history", |b| {
        b.iter(|| {
            for (text, public) in &messages {
                black_box(scorer.score(black_box(text), *public, &history));
            }
        })
    });
    group.finish();
    c.bench_function("scorer_from_shipped_config", |b| {
        b.iter(|| black_box(Scorer::new(PriorityConfig::default_config())))
    });
}

/// What the functions build at start from the shipped configuration, piece by piece: the
/// priority configuration parsed and checked, the scorer's phrase index from it, the team
/// names alone (the agent API), the SLA policy.
fn startup(c: &mut Criterion) {
    let mut group = c.benchmark_group("startup");
    group.bench_function("priority_config", |b| {
        b.iter(|| black_box(PriorityConfig::default_config()))
    });
    let config = PriorityConfig::default_config();
    group.bench_function("phrase_index", |b| {
        b.iter(|| black_box(Scorer::new(config.clone())))
    });
    let none = |_: &str| None::<String>;
    group.bench_function("priority_teams", |b| {
        b.iter(|| black_box(switchboard_core::config::priority_teams(&none)))
    });
    group.bench_function("sla_policy", |b| {
        b.iter(|| black_box(switchboard_core::sla::SlaPolicy::default_policy()))
    });
    group.finish();
}

criterion_group!(priority, scoring, startup);
criterion_main!(priority);
