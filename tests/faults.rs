//! Faults on the AWS path, as a property over random failure schedules: every DynamoDB and SQS
//! request attempt of the acknowledgement path and of the prioritizer may be refused (never
//! sent), throttled (turned away, nothing done) or lost (done, its answer replaced by a 500),
//! after the SDK's own retries. Whatever the schedule:
//! * a delivery answers 200 or 5xx, never anything else, and the provider's retries get a 200;
//! * every acknowledged message is stored once, counted once in the metrics and enqueued once;
//! * a queue entry handled until it succeeds (Lambda's redelivery of a failed batch item)
//!   prioritizes its conversation and publishes its `conversation.prioritized` event: at least
//!   once, as docs/events.md says (an event goes out before the change it reports is stored),
//!   a repeat always with the same id, so that consumers can drop it.
//!
//! The faults are injected in the SDK's interceptor chain on real state (moto): unlike
//! answers made up by a mock, what was stored, counted and enqueued can then be read back.

use proptest::prelude::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use switchboard_core::metrics::Counter;
use switchboard_core::model::Webhook;
use switchboard_tests::{Backend, Fault, FaultPlan, aws_faulty, call, payloads, signed_to};

/// Attempts of a delivery (the provider's retries) and of a queue entry (redeliveries) once
/// the schedule is spent: while it lasts, every fault may be in a row.
const TRIES: usize = 3;

struct Shared {
    rt: tokio::runtime::Runtime,
    backend: Backend,
    app: axum::Router,
    plan: Arc<FaultPlan>,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let plan = Arc::new(FaultPlan::default());
        let backend = rt.block_on(aws_faulty(plan.clone()));
        let app = backend.app(None);
        Shared {
            rt,
            backend,
            app,
            plan,
        }
    })
}

fn schedules() -> impl Strategy<Value = Vec<Fault>> {
    prop::collection::vec(
        prop_oneof![
            5 => Just(Fault::None),
            1 => Just(Fault::Refused),
            1 => Just(Fault::Throttled),
            1 => Just(Fault::Lost),
        ],
        0..80,
    )
}

/// One case's deliveries to its own business account: two customers, three messages, one of
/// them delivered twice (alone, then again in a batch with different bytes).
fn deliveries(case: usize, at: i64) -> (String, Vec<Vec<u8>>) {
    let account = format!("PNF{case}");
    let one = |from: &str, id: &str, ts: i64, text: &str| {
        payloads::whatsapp_text(&account, from, id, ts, text)
    };
    let (ana, bea) = (format!("55119{case:06}1"), format!("55119{case:06}2"));
    let first = one(&ana, &format!("wamid.F{case}.1"), at, "um");
    let mut batch: Value =
        serde_json::from_slice(&one(&ana, &format!("wamid.F{case}.1"), at, "um")).unwrap();
    let second: Value =
        serde_json::from_slice(&one(&bea, &format!("wamid.F{case}.2"), at + 1, "dois")).unwrap();
    batch["entry"]
        .as_array_mut()
        .unwrap()
        .extend(second["entry"].as_array().unwrap().clone());
    let third = one(&ana, &format!("wamid.F{case}.3"), at + 2, "tres");
    (account, vec![first, batch.to_string().into_bytes(), third])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn whatever_fails_each_acknowledged_message_is_stored_counted_enqueued_and_prioritized_once(
        intake_faults in schedules(),
        prioritizer_faults in schedules(),
    ) {
        static CASES: AtomicUsize = AtomicUsize::new(0);
        let case = CASES.fetch_add(1, Ordering::SeqCst);
        let Shared { rt, backend, app, plan } = shared();
        let at = chrono::Utc::now().timestamp() - 60;
        let (account, bodies) = deliveries(case, at);

        // The provider sends each delivery until it gets a 200.
        let first_faulty = intake_faults.first().is_some_and(|f| *f != Fault::None);
        let injected = plan.injected();
        plan.schedule(intake_faults);
        for body in &bodies {
            let mut answered = None;
            for _ in 0..plan.remaining() + TRIES {
                let (status, _) = rt.block_on(call(app, signed_to(Webhook::Whatsapp, body.clone())));
                prop_assert!(status == 200 || status.is_server_error(), "{}", status);
                if status == 200 {
                    answered = Some(status);
                    break;
                }
            }
            prop_assert!(answered.is_some(), "a delivery never acknowledged");
        }
        // The injector is not idle: a schedule that starts with a fault injected it.
        prop_assert!(!first_faulty || plan.injected() > injected, "no fault was injected");
        plan.schedule([]);

        // Enqueued once each (the FIFO queue's deduplication is part of the design).
        let entries = rt.block_on(backend.probe.drain());
        let mut per_key: BTreeMap<String, usize> = BTreeMap::new();
        for entry in &entries {
            *per_key.entry(entry.record_key.to_string()).or_default() += 1;
        }
        prop_assert_eq!(per_key.len(), 3, "{:?}", per_key);
        prop_assert!(per_key.values().all(|n| *n == 1), "{:?}", per_key);

        // Each entry handled until it succeeds; one prioritized event per message.
        let prioritizer = backend.prioritizer();
        plan.schedule(prioritizer_faults);
        for entry in &entries {
            let mut last = None;
            for _ in 0..plan.remaining() + TRIES {
                match rt.block_on(prioritizer.handle(entry)) {
                    Ok(_) => {
                        last = None;
                        break;
                    }
                    Err(e) => last = Some(format!("{e:?}")),
                }
            }
            prop_assert!(last.is_none(), "an entry never prioritized: {:?}", last);
        }
        plan.schedule([]);
        // Stored and counted once (the prioritizer counts what intake stored): three messages, two
        // conversations, in the account's buckets.
        let hour = switchboard_core::metrics::hour_of(chrono::Utc::now());
        let buckets = rt.block_on(backend.metrics.buckets(hour - 2 * 3600, hour + 2 * 3600)).unwrap();
        let count = |counter: Counter| -> u64 {
            buckets
                .iter()
                .filter(|(key, _)| key.dims.account == account)
                .map(|(_, counts)| counts.get(counter))
                .sum()
        };
        prop_assert_eq!(count(Counter::MessagesIn), 3);
        prop_assert_eq!(count(Counter::ConversationsOpened), 2);

        let conversations: Vec<String> = {
            let mut c: Vec<String> = entries.iter().map(|e| e.conversation_id.to_string()).collect();
            c.sort();
            c.dedup();
            c
        };
        prop_assert_eq!(conversations.len(), 2);
        let published = rt.block_on(backend.published.published());
        let prioritized: Vec<&Value> = published
            .iter()
            .filter(|e| e["type"] == "conversation.prioritized")
            .filter(|e| conversations.iter().any(|c| e["detail"]["conversation_id"] == c.as_str()))
            .collect();
        // A repeat is the same fact: same id, same detail but for when it was published.
        let mut facts: BTreeMap<&str, Value> = BTreeMap::new();
        for event in &prioritized {
            let id = event["id"].as_str().unwrap();
            let mut detail = event["detail"].clone();
            detail.as_object_mut().unwrap().remove("time");
            if let Some(first) = facts.insert(id, detail.clone()) {
                prop_assert_eq!(first, detail, "one id, two facts");
            }
        }
        prop_assert!(facts.len() <= 3, "more facts than messages: {:?}", facts.keys());
        for conversation in &conversations {
            prop_assert!(
                prioritized.iter().any(|e| e["detail"]["conversation_id"] == conversation.as_str()),
                "a conversation prioritized without its event"
            );
        }
    }
}
