//! The CPU cost of one webhook delivery, before any storage or queue I/O.
//!
//! * `verify`: `MetaVerifier::verify` alone (one app secret, and two as during a rotation) over
//!   the signed WhatsApp fixture and over a ~1 MB body.
//! * `deliver/<channel>/<n>`: the whole per-delivery CPU path for a delivery carrying `n`
//!   messages (1, 10, 100, 1000): signature check over the raw bytes, the channel module's
//!   `records` (parse and normalize, as the intake calls it), and each record's storage
//!   `key()`. The deliveries are built from the test fixtures by replicating one real item with
//!   distinct ids and a few distinct senders, and signed once outside the timed loop. Each is
//!   reported both as messages/s (`n` elements per delivery) and as bytes/s of body.
//!
//! * `deliver/<telegram|x|standard|email>/<n>`: the same path for the other channels, through
//!   their channel module as the intake calls it (`SignatureCheck::verify`, then
//!   `ChannelModule::records`, which parses): one message a delivery for Telegram, Standard
//!   Webhooks and e-mail (as they send them), 1, 10 and 100 direct-message events for X.
//!
//! Run with `cargo bench -p switchboard-core` (add a filter such as `-- deliver/whatsapp` to run
//! part of it). The benchmarks are single-threaded; measuring takes about a minute, after the
//! release build of the bench profile.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group};
use serde_json::{Value, json};
use switchboard_core::channels;
use switchboard_core::channels::meta::{MetaVerifier, sign};
use switchboard_core::channels::{ChannelModule, ChannelSecrets};
use switchboard_core::ids::RecordKey;
use switchboard_core::model::{Record, Webhook};
use switchboard_core::verify::Secret;
use switchboard_core::verify::SignatureCheck;

// ---------------------------------------------------------------------------------------------
// Fixtures and deliveries
// ---------------------------------------------------------------------------------------------

/// Messages per delivery.
const SIZES: [usize; 4] = [1, 10, 100, 1000];

/// How many distinct customers the messages of one delivery come from.
const SENDERS: usize = 5;

/// The signed WhatsApp fixture: its raw body, and the file naming the app secret and signature
/// it was sent with (published by its source, since revoked).
const FIXTURE_SECRET_META: &str = "whatsapp/text_signed__pywa.meta.json";
const FIXTURE_RAW: &str = "whatsapp/text_signed__pywa.raw";

/// The secret the built deliveries are signed with.
const BENCH_SECRET: &str = "bench-app-secret-0123456789abcdef";
/// A second secret, configured alongside during a rotation; it never matches.
const ROTATED_OUT_SECRET: &str = "bench-previous-app-secret-fedcba98";

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn fixture_bytes(name: &str) -> Vec<u8> {
    let path = fixture_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading fixture {}: {e}", path.display()))
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture_bytes(name))
        .unwrap_or_else(|e| panic!("parsing fixture {name}: {e}"))
}

/// A fixed receive time, so every iteration does the same work.
fn received_at() -> DateTime<Utc> {
    Utc.timestamp_opt(1_730_232_000, 0).unwrap()
}

fn verifier(secrets: &[&str]) -> MetaVerifier {
    MetaVerifier::new(
        secrets.iter().map(|s| Secret::new(*s)).collect(),
        Secret::new("bench-verify-token"),
    )
}

/// The channels benchmarked, with the webhook each arrives on.
#[derive(Clone, Copy)]
enum BenchChannel {
    Whatsapp,
    Messenger,
    Instagram,
    FacebookFeed,
}

impl BenchChannel {
    const ALL: [BenchChannel; 4] = [
        BenchChannel::Whatsapp,
        BenchChannel::Messenger,
        BenchChannel::Instagram,
        BenchChannel::FacebookFeed,
    ];

    fn name(self) -> &'static str {
        match self {
            BenchChannel::Whatsapp => "whatsapp",
            BenchChannel::Messenger => "messenger",
            BenchChannel::Instagram => "instagram",
            BenchChannel::FacebookFeed => "facebook_feed",
        }
    }

    fn webhook(self) -> Webhook {
        match self {
            BenchChannel::Whatsapp => Webhook::Whatsapp,
            BenchChannel::Messenger | BenchChannel::FacebookFeed => Webhook::Facebook,
            BenchChannel::Instagram => Webhook::Instagram,
        }
    }

    /// A delivery of `n` messages, as compact JSON (as Meta sends it).
    fn delivery(self, n: usize) -> Vec<u8> {
        let body = match self {
            BenchChannel::Whatsapp => whatsapp_delivery(n),
            BenchChannel::Messenger => messenger_delivery(n),
            BenchChannel::Instagram => instagram_delivery(n),
            BenchChannel::FacebookFeed => feed_delivery(n),
        };
        serde_json::to_vec(&body).expect("JSON serializes")
    }
}

/// `text__pywa.json` with its `messages[0]` replicated `n` times inside the one change: distinct
/// `id`s and timestamps, from `SENDERS` customers, each with their `contacts[]` entry.
fn whatsapp_delivery(n: usize) -> Value {
    let mut body = fixture_json("whatsapp/text__pywa.json");
    let value = &mut body["entry"][0]["changes"][0]["value"];
    let message = value["messages"][0].clone();
    let contact = value["contacts"][0].clone();
    let sender = |s: usize| format!("97298765{s:04}");
    value["contacts"] = (0..SENDERS.min(n))
        .map(|s| {
            let mut c = contact.clone();
            c["wa_id"] = json!(sender(s));
            c["user_id"] = json!(format!("US.1349120865530274{s:04}"));
            c["profile"]["name"] = json!(format!("Customer {s}"));
            c
        })
        .collect();
    value["messages"] = (0..n)
        .map(|i| {
            let mut m = message.clone();
            m["id"] = json!(format!("wamid.bench{i:06}"));
            m["from"] = json!(sender(i % SENDERS));
            m["timestamp"] = json!((1_697_043_223 + i).to_string());
            m["text"]["body"] = json!(format!("Body text of message {i}"));
            m
        })
        .collect();
    body
}

/// Replicates `entry[0].messaging[0]` of a page or Instagram body `n` times: distinct `mid`s
/// and timestamps, from `SENDERS` customers.
fn replicate_messaging(mut body: Value, n: usize, sender_base: u64) -> Value {
    let entry = &mut body["entry"][0];
    let event = entry["messaging"][0].clone();
    let timestamp = event["timestamp"].as_u64().expect("numeric timestamp");
    entry["messaging"] = (0..n)
        .map(|i| {
            let mut e = event.clone();
            e["sender"]["id"] = json!((sender_base + (i % SENDERS) as u64).to_string());
            e["timestamp"] = json!(timestamp + i as u64);
            e["message"]["mid"] = json!(format!("m_bench{i:06}"));
            e["message"]["text"] = json!(format!("hello, message {i}"));
            e
        })
        .collect();
    body
}

/// `messenger/text__restfb.json` with its text event replicated `n` times.
fn messenger_delivery(n: usize) -> Value {
    replicate_messaging(
        fixture_json("messenger/text__restfb.json"),
        n,
        987_654_321_000,
    )
}

/// `instagram/entry_fragment_text__jovo.json` (a DM event) in its `object: instagram`
/// envelope, with the event replicated `n` times.
fn instagram_delivery(n: usize) -> Value {
    let entry = fixture_json("instagram/entry_fragment_text__jovo.json");
    let body = json!({ "object": "instagram", "entry": [entry] });
    replicate_messaging(body, n, 5_360_758_100_660_000)
}

/// `facebook_feed/comment_add_from__restfb.json` with its comment change replicated `n` times:
/// distinct `comment_id`s, from `SENDERS` authors.
fn feed_delivery(n: usize) -> Value {
    let mut body = fixture_json("facebook_feed/comment_add_from__restfb.json");
    let entry = &mut body["entry"][0];
    let change = entry["changes"][0].clone();
    let created = change["value"]["created_time"]
        .as_u64()
        .expect("numeric created_time");
    entry["changes"] = (0..n)
        .map(|i| {
            let mut c = change.clone();
            let v = &mut c["value"];
            v["comment_id"] = json!(format!("901097836652708_{:015}", 903_438_993_085_259 + i));
            v["from"]["id"] = json!(format!("{}", 100_000_000_000_u64 + (i % SENDERS) as u64));
            v["from"]["name"] = json!(format!("Commenter {}", i % SENDERS));
            v["created_time"] = json!(created + i as u64);
            v["message"] = json!(format!("comment number {i}"));
            c
        })
        .collect();
    body
}

/// A valid WhatsApp delivery of at least `min_len` bytes, for the large-body verify case.
fn large_body(min_len: usize) -> Vec<u8> {
    let per_message =
        BenchChannel::Whatsapp.delivery(2).len() - BenchChannel::Whatsapp.delivery(1).len();
    let mut n = min_len / per_message;
    loop {
        let body = BenchChannel::Whatsapp.delivery(n);
        if body.len() >= min_len {
            return body;
        }
        n += n / 100 + 1;
    }
}

/// The per-delivery CPU path: what the intake does between receiving the bytes and writing.
/// Never inlined, so that a profiler can count it alone.
#[inline(never)]
fn deliver(
    verifier: &MetaVerifier,
    webhook: Webhook,
    signature: &[u8],
    body: &[u8],
    received_at: DateTime<Utc>,
) -> (Vec<Record>, Vec<RecordKey>) {
    verifier
        .verify_header(Some(signature), body)
        .expect("signature verifies");
    let records = channels::module(webhook)
        .records(body, received_at)
        .expect("delivery is JSON");
    let keys = records.iter().map(Record::key).collect();
    (records, keys)
}

/// Checks, once and untimed, that a built delivery takes the intended path: `n` messages with
/// `n` distinct keys, nothing left as a notification.
fn check_delivery(
    channel: BenchChannel,
    n: usize,
    verifier: &MetaVerifier,
    sig: &str,
    body: &[u8],
) {
    let (records, keys) = deliver(
        verifier,
        channel.webhook(),
        sig.as_bytes(),
        body,
        received_at(),
    );
    assert_eq!(records.len(), n, "{}: records of {n}", channel.name());
    assert!(
        records.iter().all(|r| matches!(r, Record::Message(_))),
        "{}: every record is a message",
        channel.name()
    );
    let distinct: std::collections::HashSet<_> = keys.into_iter().collect();
    assert_eq!(distinct.len(), n, "{}: distinct keys", channel.name());
}

/// The channels beyond Meta's, verified and normalized through their channel module as the
/// intake does (`SignatureCheck::verify`, then `ChannelModule::records`, which parses).
/// Telegram, Standard Webhooks and e-mail carry one message a delivery; X batches its events.
#[derive(Clone, Copy)]
enum OtherChannel {
    Telegram,
    X,
    Standard,
    Email,
}

/// The Standard Webhooks secret of the Standard and e-mail deliveries.
const BENCH_WHSEC: &str = "whsec_YmVuY2gtc3RhbmRhcmQtc2lnbmluZy1rZXk=";

impl OtherChannel {
    const ALL: [OtherChannel; 4] = [
        OtherChannel::Telegram,
        OtherChannel::X,
        OtherChannel::Standard,
        OtherChannel::Email,
    ];

    fn name(self) -> &'static str {
        match self {
            OtherChannel::Telegram => "telegram",
            OtherChannel::X => "x",
            OtherChannel::Standard => "standard",
            OtherChannel::Email => "email",
        }
    }

    fn webhook(self) -> Webhook {
        match self {
            OtherChannel::Telegram => Webhook::Telegram,
            OtherChannel::X => Webhook::X,
            OtherChannel::Standard => Webhook::Standard,
            OtherChannel::Email => Webhook::Email,
        }
    }

    /// The message counts a delivery of this channel can carry.
    fn sizes(self) -> &'static [usize] {
        match self {
            OtherChannel::X => &[1, 10, 100],
            _ => &[1],
        }
    }

    fn module(self) -> &'static dyn ChannelModule {
        channels::module(self.webhook())
    }

    fn check(self) -> std::sync::Arc<dyn SignatureCheck> {
        let module = self.module();
        let field = module.secrets()[0].key;
        let secret = match self {
            OtherChannel::Standard | OtherChannel::Email => BENCH_WHSEC,
            _ => BENCH_SECRET,
        };
        let mut secrets = ChannelSecrets::new("bench");
        secrets.set(field, [secret.to_owned()]);
        module
            .verification(&secrets)
            .expect("the bench's secrets verify")
            .signature
    }

    /// A delivery of `n` messages.
    fn delivery(self, n: usize) -> Vec<u8> {
        match self {
            OtherChannel::Telegram => {
                assert_eq!(n, 1, "a Telegram update carries one message");
                serde_json::to_vec(&fixture_json("telegram/message_text__nutgram.json"))
                    .expect("JSON serializes")
            }
            OtherChannel::X => {
                let mut body = fixture_json("x/direct_message_events_received__tweetinvi.json");
                let event = body["direct_message_events"][0].clone();
                let sender = event["message_create"]["sender_id"].clone();
                body["direct_message_events"] = (0..n)
                    .map(|i| {
                        let mut e = event.clone();
                        e["id"] = json!(format!("{}", 1_247_299_084_244_979_717_u64 + i as u64));
                        e["created_timestamp"] =
                            json!(format!("{}", 1_586_214_250_037_u64 + i as u64));
                        e["message_create"]["sender_id"] = sender.clone();
                        e
                    })
                    .collect();
                serde_json::to_vec(&body).expect("JSON serializes")
            }
            OtherChannel::Standard => serde_json::to_vec(&json!({
                "type": "message.received", "source": "webchat", "account": "bench-site",
                "customer": {"id": "v-1", "name": "Ana", "email": "ana@example.com"},
                "message": {"id": "m-bench-1", "text": "Hola, no me llegó el pedido",
                            "sent_at": "2024-10-29T20:00:00Z"}
            }))
            .expect("JSON serializes"),
            OtherChannel::Email => fixture_bytes("email/plain.eml"),
        }
    }

    /// The headers the provider signs `body` with.
    fn headers(self, body: &[u8]) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        let mut put = |name: &'static str, value: String| {
            headers.insert(name, value.parse().expect("a header value"));
        };
        match self {
            OtherChannel::Telegram => put(
                channels::telegram::verify::SECRET_TOKEN_HEADER,
                BENCH_SECRET.to_owned(),
            ),
            OtherChannel::X => put(
                channels::x::SIGNATURE_HEADER,
                channels::x::verify::sign(BENCH_SECRET, body),
            ),
            OtherChannel::Standard | OtherChannel::Email => {
                let secret = channels::standard::StandardSecret::parse(BENCH_WHSEC)
                    .expect("a whsec_ secret");
                let at = received_at().timestamp();
                put("webhook-id", "msg_bench".to_owned());
                put("webhook-timestamp", at.to_string());
                put(
                    "webhook-signature",
                    channels::standard::sign(&secret, "msg_bench", at, body),
                );
            }
        }
        headers
    }
}

/// The whole per-delivery CPU path of a channel beyond Meta's: the signature, the records
/// (parsed as the intake parses them), each record's key.
fn deliver_other(
    check: &dyn SignatureCheck,
    module: &dyn ChannelModule,
    headers: &http::HeaderMap,
    body: &[u8],
    received_at: DateTime<Utc>,
) -> (Vec<Record>, Vec<RecordKey>) {
    check
        .verify(headers, body, received_at)
        .expect("signature verifies");
    let records = module.records(body, received_at).expect("in the format");
    let keys = records.iter().map(Record::key).collect();
    (records, keys)
}

/// Checks, once and untimed, that a built delivery of `channel` makes `n` messages.
fn check_other(channel: OtherChannel, n: usize, headers: &http::HeaderMap, body: &[u8]) {
    let (records, keys) = deliver_other(
        channel.check().as_ref(),
        channel.module(),
        headers,
        body,
        received_at(),
    );
    let messages = records
        .iter()
        .filter(|r| matches!(r, Record::Message(_)))
        .count();
    assert_eq!(
        messages,
        n,
        "{}: messages of {n}: {records:?}",
        channel.name()
    );
    let distinct: std::collections::HashSet<_> = keys.iter().collect();
    assert_eq!(
        distinct.len(),
        keys.len(),
        "{}: distinct keys",
        channel.name()
    );
}

// ---------------------------------------------------------------------------------------------
// Benchmarks
// ---------------------------------------------------------------------------------------------

/// Short runs: the whole suite stays within a few minutes on two cores. Command-line options
/// (`--sample-size`, `--measurement-time`, …) still override these.
fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

/// Flat sampling (the same iteration count in every sample) for the milliseconds-long inputs,
/// so their 20 samples fit the measurement time; the default linear ramp for the rest.
fn sampling(body_len: usize) -> SamplingMode {
    if body_len >= 64 * 1024 {
        SamplingMode::Flat
    } else {
        SamplingMode::Auto
    }
}

fn bench_verify(c: &mut Criterion) {
    let meta = fixture_json(FIXTURE_SECRET_META);
    let fixture_secret = meta["app_secret"].as_str().expect("app_secret").to_owned();
    let fixture_sig = meta["headers"]["X-Hub-Signature-256"]
        .as_str()
        .expect("signature header")
        .to_owned();
    let fixture_body = fixture_bytes(FIXTURE_RAW);
    let large = large_body(1_000_000);
    let large_sig = sign(&fixture_secret, &large);

    let one = verifier(&[&fixture_secret]);
    let two = verifier(&[ROTATED_OUT_SECRET, &fixture_secret]);
    let inputs = [
        ("fixture", fixture_sig.as_str(), fixture_body.as_slice()),
        ("1MB", large_sig.as_str(), large.as_slice()),
    ];

    let mut group = c.benchmark_group("verify");
    for (label, sig, body) in inputs {
        one.verify_header(Some(sig.as_bytes()), body)
            .expect("signature verifies");
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.sampling_mode(sampling(body.len()));
        for (secrets, v) in [("one_secret", &one), ("two_secrets", &two)] {
            group.bench_with_input(BenchmarkId::new(secrets, label), body, |b, body| {
                b.iter(|| v.verify_header(Some(black_box(sig.as_bytes())), black_box(body)))
            });
        }
    }
    group.finish();
}

fn bench_deliver(c: &mut Criterion) {
    let v = verifier(&[BENCH_SECRET]);
    let at = received_at();
    for channel in BenchChannel::ALL {
        let mut group = c.benchmark_group(format!("deliver/{}", channel.name()));
        for n in SIZES {
            let body = channel.delivery(n);
            let sig = sign(BENCH_SECRET, &body);
            check_delivery(channel, n, &v, &sig, &body);
            group.sampling_mode(sampling(body.len()));
            group.throughput(Throughput::ElementsAndBytes {
                elements: n as u64,
                bytes: body.len() as u64,
            });
            group.bench_with_input(BenchmarkId::from_parameter(n), &body, |b, body| {
                b.iter(|| {
                    deliver(
                        &v,
                        channel.webhook(),
                        black_box(sig.as_bytes()),
                        black_box(body),
                        at,
                    )
                })
            });
        }
        group.finish();
    }
}

fn bench_deliver_other(c: &mut Criterion) {
    let at = received_at();
    for channel in OtherChannel::ALL {
        let check = channel.check();
        let module = channel.module();
        let mut group = c.benchmark_group(format!("deliver/{}", channel.name()));
        for &n in channel.sizes() {
            let body = channel.delivery(n);
            let headers = channel.headers(&body);
            check_other(channel, n, &headers, &body);
            group.throughput(Throughput::ElementsAndBytes {
                elements: n as u64,
                bytes: body.len() as u64,
            });
            group.bench_with_input(BenchmarkId::from_parameter(n), &body, |b, body| {
                b.iter(|| deliver_other(check.as_ref(), module, &headers, black_box(body), at))
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = intake;
    config = config();
    targets = bench_verify, bench_deliver, bench_deliver_other
}

/// The profiling mode: `INTAKE_PROFILE=<channel>/<n>[:<repeats>]` (say `whatsapp/100:200`,
/// or `telegram/1:1000`)
/// builds that one delivery and runs [`deliver`] on it `repeats` times (100 by default), with
/// no criterion around it, so that `valgrind --tool=callgrind --toggle-collect=intake::deliver`
/// counts the instructions of the intake path alone (BENCHMARKS.md section 1).
/// `INTAKE_PROFILE=verify/<bytes>[:<repeats>]` checks the signature of a body of that size
/// instead: the instruction count of the HMAC alone, for a build under `qemu-aarch64`.
fn profile(spec: &str) {
    let (what, repeats) = spec.split_once(':').unwrap_or((spec, "100"));
    let (name, n) = what
        .split_once('/')
        .expect("INTAKE_PROFILE is <channel>/<n>[:<repeats>]");
    if name == "verify" {
        let body = large_body(n.parse().expect("INTAKE_PROFILE: bytes is a number"));
        let sig = sign(BENCH_SECRET, &body);
        let v = verifier(&[BENCH_SECRET]);
        let repeats: usize = repeats
            .parse()
            .expect("INTAKE_PROFILE: repeats is a number");
        for _ in 0..repeats {
            v.verify_header(Some(black_box(sig.as_bytes())), black_box(&body))
                .expect("signature verifies");
        }
        println!("verify: {repeats} bodies of {} bytes", body.len());
        return;
    }
    let n: usize = n.parse().expect("INTAKE_PROFILE: n is a number");
    let repeats: usize = repeats
        .parse()
        .expect("INTAKE_PROFILE: repeats is a number");
    if let Some(channel) = OtherChannel::ALL.into_iter().find(|c| c.name() == name) {
        let (check, module) = (channel.check(), channel.module());
        let body = channel.delivery(n);
        let headers = channel.headers(&body);
        check_other(channel, n, &headers, &body);
        for _ in 0..repeats {
            black_box(deliver_other(
                check.as_ref(),
                module,
                &headers,
                black_box(&body),
                received_at(),
            ));
        }
        println!("{name}/{n}: {repeats} deliveries of {} bytes", body.len());
        return;
    }
    let channel = BenchChannel::ALL
        .into_iter()
        .find(|c| c.name() == name)
        .unwrap_or_else(|| panic!("INTAKE_PROFILE: no channel {name}"));
    let v = verifier(&[BENCH_SECRET]);
    let body = channel.delivery(n);
    let sig = sign(BENCH_SECRET, &body);
    check_delivery(channel, n, &v, &sig, &body);
    for _ in 0..repeats {
        black_box(deliver(
            &v,
            channel.webhook(),
            black_box(sig.as_bytes()),
            black_box(&body),
            received_at(),
        ));
    }
    println!("{name}/{n}: {repeats} deliveries of {} bytes", body.len());
}

fn main() {
    if let Ok(spec) = std::env::var("INTAKE_PROFILE") {
        profile(&spec);
        return;
    }
    intake();
    Criterion::default().configure_from_args().final_summary();
}
