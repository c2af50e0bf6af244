//! The prioritizer's cost for one message as the customer's history grows (issue 19, item 6):
//! customers with 10, 1,000 and 10,000 earlier messages (all prioritized, over three and a half
//! days), then one more message each, timed from the queue entry to the conversation written
//! (`Prioritizer::handle` on the embedded store, the whole of it: the reads, the scoring, the
//! timers, the event, the write).
//!
//! Run with `cargo bench -p switchboard-embedded --bench history`. Building the histories
//! takes about a minute (11,010 messages through the intake and the prioritizer).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use switchboard_core::channels::meta::samples::whatsapp_texts;
use switchboard_core::clock::SystemClock;
use switchboard_core::intake::Intake;
use switchboard_core::model::Webhook;
use switchboard_core::prioritize::Prioritizer;
use switchboard_core::priority::{PriorityConfig, Scorer};
use switchboard_core::sla::SlaPolicy;
use switchboard_embedded::SqliteStore;
use switchboard_embedded::assembly::EmbeddedPorts;
use switchboard_embedded::consumer::drain_once;

const SIZES: [usize; 3] = [10, 1_000, 10_000];
/// The provider time of the timed messages; the history ends just before.
const NOW: i64 = 1_795_000_000;

/// A WhatsApp delivery of texts from `from`, one at each of `times`.
fn delivery(from: &str, tag: &str, times: &[i64]) -> Bytes {
    Bytes::from(whatsapp_texts(
        "PN",
        from,
        tag,
        times,
        "hola, sigo esperando mi reembolso",
    ))
}

/// Prioritizes everything the queue holds, the way `serve` does (`consumer::drain_once`).
async fn drain(store: &SqliteStore, prioritizer: &Prioritizer) -> usize {
    let mut total = 0;
    loop {
        match drain_once(store, prioritizer, Duration::from_secs(30)).await {
            Ok(0) => return total,
            Ok(n) => total += n,
            Err(e) => panic!("the queue could not be drained: {e}"),
        }
    }
}

fn history(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let ports = EmbeddedPorts::open(dir.path(), 30, Arc::new(SystemClock)).expect("store");
    let store = ports.store();
    let intake: Intake = ports.intake();
    let prioritizer = ports.prioritizer(
        Arc::new(Scorer::new(PriorityConfig::default_config())),
        Arc::new(SlaPolicy::default_policy()),
    );
    let from = |size: usize| format!("5511600{size:06}");
    runtime.block_on(async {
        for size in SIZES {
            // One message every 30 seconds up to a minute before NOW.
            let first = NOW - 60 - 30 * size as i64;
            let times: Vec<i64> = (0..size as i64).map(|i| first + 30 * i).collect();
            for (i, chunk) in times.chunks(100).enumerate() {
                intake
                    .accept(
                        Webhook::Whatsapp,
                        delivery(&from(size), &format!("h{size}.{i}"), chunk),
                    )
                    .await
                    .expect("accepted");
            }
            assert_eq!(drain(&store, &prioritizer).await, size);
        }
    });

    let mut group = c.benchmark_group("prioritize_one_message");
    group.sample_size(30);
    for size in SIZES {
        let mut next = 0u64;
        group.bench_function(format!("after_{size}_earlier"), |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        next += 1;
                        let body = delivery(&from(size), &format!("now{size}.{next}"), &[NOW]);
                        intake
                            .accept(Webhook::Whatsapp, body)
                            .await
                            .expect("accepted");
                        let received = store
                            .receive(10, Duration::from_secs(30))
                            .await
                            .expect("receive");
                        assert_eq!(received.len(), 1);
                        let start = Instant::now();
                        prioritizer
                            .handle(&received[0].entry)
                            .await
                            .expect("prioritized");
                        spent += start.elapsed();
                        store.ack(&[received[0].receipt]).await.expect("ack");
                    }
                    spent
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, history);
criterion_main!(benches);
