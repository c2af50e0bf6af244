//! The figures on both backends: a scripted day (messages on three channels at known provider
//! times, answers by echo and by reply at known times, resolutions, a breach, a reopened case,
//! duplicates and redeliveries) and every figure of `GET /api/metrics` checked exactly against
//! a model of that day (percentiles within the sketch's 1 %), by hour, day and week, grouped and
//! not, in JSON and CSV. Then the cost of a month's report: its reads do not grow with the
//! volume counted.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

use switchboard_core::clock::ManualClock;
use switchboard_core::ids::ConversationId;
use switchboard_core::metrics::{Counter, Dims, Tally};
use switchboard_core::model::{Channel, Conversation, Webhook};
use switchboard_core::ports::QueueEntry;
use switchboard_core::priority::{History, PriorityConfig, Scorer};
use switchboard_tests::graph::FakeGraph;
use switchboard_tests::payloads::{messenger_text, page_comment, whatsapp_status, whatsapp_text};
use switchboard_tests::{Backend, call, conversation_of, deliver, get_all, get_json};

switchboard_tests::contract!(
    a_scripted_day_gives_every_figure_exactly,
    figures_bad_queries_are_400_with_the_reason
);

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

/// What the model of the day expects of one message, answer or resolution.
#[derive(Debug, Clone)]
struct Fact {
    at: DateTime<Utc>,
    channel: &'static str,
    priority: String,
    team: String,
    counter: &'static str,
    /// For a response time: its seconds.
    seconds: Option<i64>,
}

/// A conversation's channel, priority and team as the API shows it now.
async fn dims_of(app: &axum::Router, who: &str) -> (String, String, String, Value) {
    let c = conversation_of(app, who).await;
    (
        c["channel"].as_str().unwrap().to_owned(),
        c["priority"]["priority"].as_str().unwrap().to_owned(),
        c["priority"]["team"].as_str().unwrap().to_owned(),
        c,
    )
}

struct Day {
    facts: Vec<Fact>,
    scorer: Scorer,
}

impl Day {
    fn fact(
        &mut self,
        at: DateTime<Utc>,
        dims: &(String, String, String, Value),
        counter: &'static str,
        seconds: Option<i64>,
    ) {
        let channel = match dims.0.as_str() {
            "whatsapp" => "whatsapp",
            "messenger" => "messenger",
            "facebook_feed" => "facebook_feed",
            other => panic!("{other}"),
        };
        self.facts.push(Fact {
            at,
            channel,
            priority: dims.1.clone(),
            team: dims.2.clone(),
            counter,
            seconds,
        });
    }

    /// A customer message scored: messages_in, public_in, complaints (by the scorer's
    /// signals, which do not depend on the history), conversations_opened when `first`.
    fn message(
        &mut self,
        sent: DateTime<Utc>,
        dims: &(String, String, String, Value),
        text: &str,
        public: bool,
        first: bool,
    ) {
        self.fact(sent, dims, "messages_in", None);
        if public {
            self.fact(sent, dims, "public_in", None);
        }
        if self
            .scorer
            .score(text, public, &History::default())
            .complaint
        {
            self.fact(sent, dims, "complaints", None);
        }
        if first {
            self.fact(sent, dims, "conversations_opened", None);
        }
    }

    /// A wait answered at `answered` after `seconds`, against the due time the API showed.
    fn answer(
        &mut self,
        answered: DateTime<Utc>,
        dims: &(String, String, String, Value),
        first: bool,
        seconds: i64,
    ) {
        let due = at(dims.3["due_at"].as_str().expect("a timed wait"));
        self.fact(answered, dims, "answered", None);
        let which = if first { "first" } else { "next" };
        self.fact(answered, dims, which, Some(seconds));
        let outcome = if answered <= due {
            "sla_met"
        } else {
            "sla_breached"
        };
        self.fact(answered, dims, outcome, None);
    }
}

async fn prioritize(backend: &Backend, prioritizer: &switchboard_core::prioritize::Prioritizer) {
    backend.prioritize_all(prioritizer).await;
}

async fn act(app: &axum::Router, uri: &str, body: Value) -> Value {
    let request = http::Request::post(uri)
        .header("content-type", "application/json")
        .header("x-switchboard-agent", "ana")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap();
    let (status, bytes) = call(app, request).await;
    let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    assert!(status.is_success(), "{uri}: {status} {json}");
    json
}

/// Plays the day on `backend` and answers the model of what it should count, and the app.
async fn play_the_day(backend: &Backend) -> (axum::Router, Day, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(at("2026-03-02T15:00:00Z")));
    let graph = FakeGraph::start().await;
    let (app, prioritizer) = backend.app_at(clock.clone(), graph.sender());
    let mut day = Day {
        facts: Vec::new(),
        scorer: Scorer::new(PriorityConfig::default_config()),
    };
    let (a, b, c_author, d) = ("5215500000101", "PSID-DAY-B", "FB-DAY-C", "5215500000104");
    let s = |t: &str| at(t).timestamp();
    let ms = |t: &str| at(t).timestamp_millis();

    // 15:05 A on WhatsApp: charged twice. Answered by a reply at 15:15, resolved at 15:30.
    let a1 = "Me cobraron dos veces el mismo pedido, quiero mi dinero";
    clock.set(at("2026-03-02T15:05:30Z"));
    let a1_body = whatsapp_text("PN-DAY", a, "wamid.DAY.A1", s("2026-03-02T15:05:00Z"), a1);
    deliver(&app, Webhook::Whatsapp, a1_body.clone()).await;
    prioritize(backend, &prioritizer).await;
    let a_dims = dims_of(&app, a).await;
    day.message(at("2026-03-02T15:05:00Z"), &a_dims, a1, false, true);
    let a_id = a_dims.3["id"].as_str().unwrap().to_owned();

    clock.set(at("2026-03-02T15:15:00Z"));
    let sent = act(
        &app,
        &format!("/api/conversations/{a_id}/reply"),
        json!({"text": "Lo revisamos ahora mismo"}),
    )
    .await;
    day.answer(at("2026-03-02T15:15:00Z"), &a_dims, true, 600);
    // Its statuses double nothing and answer nothing more.
    let reply_id = sent["provider_message_id"].as_str().unwrap().to_owned();
    for (status, t) in [("sent", "15:15:02"), ("delivered", "15:15:04")] {
        let ts = s(&format!("2026-03-02T{t}Z"));
        deliver(
            &app,
            Webhook::Whatsapp,
            whatsapp_status("PN-DAY", a, &reply_id, status, ts),
        )
        .await;
    }
    prioritize(backend, &prioritizer).await;

    clock.set(at("2026-03-02T15:30:00Z"));
    act(
        &app,
        &format!("/api/conversations/{a_id}/resolve"),
        json!({}),
    )
    .await;
    let a_resolved = dims_of(&app, a).await;
    assert_eq!(a_resolved.3["first_contact_resolution"], true);
    day.fact(at("2026-03-02T15:30:00Z"), &a_dims, "resolved", None);
    day.fact(
        at("2026-03-02T15:30:00Z"),
        &a_dims,
        "first_contact_resolved",
        None,
    );

    // 15:40 B on Messenger asks the opening hours; the page answers by echo at 16:10.
    let b1 = "Hola, cual es el horario de la tienda?";
    clock.set(at("2026-03-02T15:40:10Z"));
    deliver(
        &app,
        Webhook::Facebook,
        messenger_text(b, "m.DAY.B1", ms("2026-03-02T15:40:00Z"), b1, false),
    )
    .await;
    prioritize(backend, &prioritizer).await;
    let b_dims = dims_of(&app, b).await;
    day.message(at("2026-03-02T15:40:00Z"), &b_dims, b1, false, true);

    // 16:20 C complains in public under a post; nobody answers.
    let c1 = "Pesimo servicio, nadie responde, estoy harto";
    clock.set(at("2026-03-02T16:20:05Z"));
    deliver(
        &app,
        Webhook::Facebook,
        page_comment(
            c_author,
            "PAGE_P1_c1",
            "P1",
            None,
            s("2026-03-02T16:20:00Z"),
            c1,
        ),
    )
    .await;
    prioritize(backend, &prioritizer).await;
    let c_dims = dims_of(&app, c_author).await;
    day.message(at("2026-03-02T16:20:00Z"), &c_dims, c1, true, true);

    let b_echo = messenger_text(
        b,
        "m.DAY.B-echo1",
        ms("2026-03-02T16:10:00Z"),
        "Abrimos de 9 a 18",
        true,
    );
    deliver(&app, Webhook::Facebook, b_echo.clone()).await;
    prioritize(backend, &prioritizer).await;
    day.answer(at("2026-03-02T16:10:00Z"), &b_dims, true, 1_800);

    // 17:05 B again, answered at 17:06: a next response. Resolved at 18:00: two replies, so
    // not at first contact.
    let b2 = "Gracias, y los domingos abren?";
    clock.set(at("2026-03-02T17:05:10Z"));
    deliver(
        &app,
        Webhook::Facebook,
        messenger_text(b, "m.DAY.B2", ms("2026-03-02T17:05:00Z"), b2, false),
    )
    .await;
    prioritize(backend, &prioritizer).await;
    let b2_dims = dims_of(&app, b).await;
    day.message(at("2026-03-02T17:05:00Z"), &b2_dims, b2, false, false);
    deliver(
        &app,
        Webhook::Facebook,
        messenger_text(b, "m.DAY.B-echo2", ms("2026-03-02T17:06:00Z"), "No", true),
    )
    .await;
    prioritize(backend, &prioritizer).await;
    day.answer(at("2026-03-02T17:06:00Z"), &b2_dims, false, 60);
    clock.set(at("2026-03-02T18:00:00Z"));
    let b_id = b_dims.3["id"].as_str().unwrap().to_owned();
    act(
        &app,
        &format!("/api/conversations/{b_id}/resolve"),
        json!({}),
    )
    .await;
    day.fact(at("2026-03-02T18:00:00Z"), &b2_dims, "resolved", None);

    // 18:30 D's account was hacked: answered by a reply only at 21:00, long after its target.
    let d1 = "Me hackearon la cuenta y estan haciendo compras con mi tarjeta";
    clock.set(at("2026-03-02T18:30:05Z"));
    let d1_body = whatsapp_text("PN-DAY", d, "wamid.DAY.D1", s("2026-03-02T18:30:00Z"), d1);
    deliver(&app, Webhook::Whatsapp, d1_body.clone()).await;
    prioritize(backend, &prioritizer).await;
    let d_dims = dims_of(&app, d).await;
    day.message(at("2026-03-02T18:30:00Z"), &d_dims, d1, false, true);

    // 19:00 A writes again after the resolution: case 2, counted as reopened under the
    // conversation's priority of the moment (its first case's).
    let a2 = "Otra vez me llego un cobro duplicado";
    clock.set(at("2026-03-02T19:00:05Z"));
    deliver(
        &app,
        Webhook::Whatsapp,
        whatsapp_text("PN-DAY", a, "wamid.DAY.A2", s("2026-03-02T19:00:00Z"), a2),
    )
    .await;
    day.fact(at("2026-03-02T19:00:00Z"), &a_dims, "reopened", None);
    prioritize(backend, &prioritizer).await;
    let a2_dims = dims_of(&app, a).await;
    assert_eq!(a2_dims.3["case"], 2);
    day.message(at("2026-03-02T19:00:00Z"), &a2_dims, a2, false, false);

    clock.set(at("2026-03-02T21:00:00Z"));
    let d_id = d_dims.3["id"].as_str().unwrap().to_owned();
    act(
        &app,
        &format!("/api/conversations/{d_id}/reply"),
        json!({"text": "Bloqueamos la tarjeta"}),
    )
    .await;
    day.answer(at("2026-03-02T21:00:00Z"), &d_dims, true, 9_000);

    // Redeliveries and a second prioritization of every entry count nothing.
    clock.set(at("2026-03-02T22:00:00Z"));
    for (webhook, body) in [
        (Webhook::Whatsapp, a1_body),
        (Webhook::Whatsapp, d1_body),
        (Webhook::Facebook, b_echo),
    ] {
        deliver(&app, webhook, body).await;
    }
    prioritize(backend, &prioritizer).await;
    for who in [a, b, c_author, d] {
        let c = conversation_of(&app, who).await;
        let id = c["id"].as_str().unwrap();
        for record in get_all(&app, &format!("/api/conversations/{id}/messages"), 50).await {
            if record["record"] != "message" {
                continue;
            }
            let entry = QueueEntry {
                record_key: switchboard_core::ids::RecordKey::from_stored(
                    record["key"].as_str().unwrap(),
                ),
                conversation_id: ConversationId::from_stored(id),
                channel: c["channel"].as_str().unwrap().parse().unwrap(),
                record_type: "message".into(),
                kind: record["kind"].as_str().unwrap().into(),
                account_id: None,
            };
            prioritizer.handle(&entry).await.expect("handled again");
        }
    }
    clock.set(at("2026-03-02T23:00:00Z"));
    (app, day, clock)
}

const COUNTERS: [&str; 10] = [
    "messages_in",
    "conversations_opened",
    "public_in",
    "complaints",
    "answered",
    "sla_met",
    "sla_breached",
    "resolved",
    "first_contact_resolved",
    "reopened",
];

fn exact_quantile(values: &[i64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_unstable();
    v[(q * (v.len() - 1) as f64).floor() as usize] as f64
}

fn within(got: &Value, want: f64) -> bool {
    let got = got.as_f64().unwrap_or(f64::NAN);
    (got - want).abs() <= 0.01 * want + 0.05
}

/// Checks one bucket of the API against the facts it should hold.
fn check_bucket(what: &str, bucket: &Value, facts: &[&Fact]) {
    for counter in COUNTERS {
        let want = facts.iter().filter(|f| f.counter == counter).count();
        assert_eq!(
            bucket[counter],
            json!(want),
            "{what}: {counter} in {bucket}"
        );
    }
    for (which, field) in [
        ("first", "first_response_seconds"),
        ("next", "next_response_seconds"),
    ] {
        let values: Vec<i64> = facts
            .iter()
            .filter(|f| f.counter == which)
            .filter_map(|f| f.seconds)
            .collect();
        let d = &bucket[field];
        assert_eq!(d["count"], json!(values.len()), "{what}: {field} {d}");
        if values.is_empty() {
            for stat in ["mean", "p50", "p90", "p99", "max"] {
                assert!(d[stat].is_null(), "{what}: {field}.{stat} {d}");
            }
            continue;
        }
        let mean = values.iter().sum::<i64>() as f64 / values.len() as f64;
        assert!(within(&d["mean"], mean), "{what}: {field}.mean {d}");
        for (stat, q) in [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0)] {
            let want = exact_quantile(&values, q);
            assert!(
                within(&d[stat], want),
                "{what}: {field}.{stat} {d} want {want}"
            );
        }
    }
    let (met, breached) = (
        facts.iter().filter(|f| f.counter == "sla_met").count(),
        facts.iter().filter(|f| f.counter == "sla_breached").count(),
    );
    if met + breached == 0 {
        assert!(bucket["sla_attainment"].is_null(), "{what}");
    } else {
        assert!(within(
            &bucket["sla_attainment"],
            met as f64 / (met + breached) as f64
        ));
    }
    let resolved = facts.iter().filter(|f| f.counter == "resolved").count();
    let fcr = facts
        .iter()
        .filter(|f| f.counter == "first_contact_resolved")
        .count();
    if resolved == 0 {
        assert!(bucket["fcr_rate"].is_null(), "{what}");
    } else {
        assert!(within(&bucket["fcr_rate"], fcr as f64 / resolved as f64));
    }
}

fn key_of(fact: &Fact, group_by: &[&str]) -> BTreeMap<String, String> {
    group_by
        .iter()
        .map(|g| {
            let v = match *g {
                "channel" => fact.channel.to_owned(),
                "priority" => fact.priority.clone(),
                "team" => fact.team.clone(),
                other => panic!("{other}"),
            };
            (g.to_string(), v)
        })
        .collect()
}

/// `GET /api/metrics` of the range and grouping, checked bucket by bucket against the facts;
/// `period` names a fact's bucket start.
async fn check_report(
    app: &axum::Router,
    day: &Day,
    (from, to): (&str, &str),
    granularity: &str,
    group_by: &[&str],
    period: &dyn Fn(DateTime<Utc>) -> DateTime<Utc>,
    buckets: usize,
) -> Value {
    let mut uri = format!("/api/metrics?from={from}&to={to}&granularity={granularity}");
    for g in group_by {
        uri.push_str(&format!("&group_by={g}"));
    }
    let (status, report) = get_json(app, &uri).await;
    assert_eq!(status, 200, "{uri}: {report}");
    assert_eq!(report["granularity"], granularity);
    let series = report["series"].as_array().unwrap();
    let keys: std::collections::BTreeSet<BTreeMap<String, String>> =
        day.facts.iter().map(|f| key_of(f, group_by)).collect();
    // Keys with only a backlog show too (none here: every waiting one also had messages).
    assert_eq!(series.len(), keys.len(), "{uri}: {report}");
    for s in series {
        let key: BTreeMap<String, String> = s["key"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("a prioritized key").to_owned()))
            .collect();
        let of_key: Vec<&Fact> = day
            .facts
            .iter()
            .filter(|f| key_of(f, group_by) == key)
            .collect();
        assert!(!of_key.is_empty(), "{uri}: unexpected key {key:?}");
        let bs = s["buckets"].as_array().unwrap();
        assert_eq!(bs.len(), buckets, "{uri}");
        for b in bs {
            let start = at(b["start"].as_str().unwrap());
            let facts: Vec<&Fact> = of_key
                .iter()
                .copied()
                .filter(|f| period(f.at) == start)
                .collect();
            check_bucket(&format!("{uri} {key:?} {start}"), b, &facts);
        }
        check_bucket(&format!("{uri} {key:?} totals"), &s["totals"], &of_key);
    }
    let all: Vec<&Fact> = day.facts.iter().collect();
    check_bucket(&format!("{uri} totals"), &report["totals"], &all);
    report
}

async fn a_scripted_day_gives_every_figure_exactly(backend: Backend) {
    let (app, day, _clock) = play_the_day(&backend).await;
    let hour = |t: DateTime<Utc>| Utc.timestamp_opt(t.timestamp() / 3600 * 3600, 0).unwrap();
    // Mexico City (the default calendar's zone) is UTC-6: the day starts at 06:00Z.
    let local_day = |_: DateTime<Utc>| at("2026-03-02T06:00:00Z");
    let hours = ("2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z");
    let mut by_hour = Value::Null;
    for group_by in [
        &[][..],
        &["channel"][..],
        &["priority"][..],
        &["team", "channel"][..],
    ] {
        let report = check_report(&app, &day, hours, "hour", group_by, &hour, 24).await;
        if group_by.is_empty() {
            by_hour = report;
        }
        check_report(
            &app,
            &day,
            ("2026-03-02T06:00:00Z", "2026-03-03T06:00:00Z"),
            "day",
            group_by,
            &local_day,
            1,
        )
        .await;
        check_report(
            &app,
            &day,
            ("2026-03-02T06:00:00Z", "2026-03-09T06:00:00Z"),
            "week",
            group_by,
            &local_day,
            1,
        )
        .await;
    }

    // The backlog at 23:00: C (since 16:20) and A's second case (since 19:00).
    assert_eq!(by_hour["totals"]["waiting_now"], 2, "{}", by_hour["totals"]);
    assert_eq!(by_hour["totals"]["oldest_wait_seconds"], 6 * 3600 + 40 * 60);
    let (_, by_channel) = get_json(
        &app,
        "/api/metrics?from=2026-03-02T00:00:00Z&to=2026-03-03T00:00:00Z&group_by=channel",
    )
    .await;
    let waiting: BTreeMap<String, (Value, Value)> = by_channel["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["key"]["channel"].as_str().unwrap().to_owned(),
                (s["waiting_now"].clone(), s["oldest_wait_seconds"].clone()),
            )
        })
        .collect();
    assert_eq!(waiting["facebook_feed"], (json!(1), json!(24_000)));
    assert_eq!(waiting["whatsapp"], (json!(1), json!(4 * 3600)));
    assert_eq!(waiting["messenger"], (json!(0), Value::Null));

    // The same report as CSV: a header and a row per key and bucket, the same figures.
    let request = http::Request::get(
        "/api/metrics?from=2026-03-02T00:00:00Z&to=2026-03-03T00:00:00Z&group_by=channel",
    )
    .header("accept", "text/csv")
    .body(axum::body::Body::empty())
    .unwrap();
    let (status, body) = call(&app, request).await;
    assert_eq!(status, 200);
    let csv = String::from_utf8(body.to_vec()).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    let header = &rows[0];
    assert_eq!(&header[..3], ["start", "channel", "messages_in"]);
    assert_eq!(rows.len(), 1 + 3 * 24);
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    for series in by_channel["series"].as_array().unwrap() {
        for bucket in series["buckets"].as_array().unwrap() {
            let row = rows
                .iter()
                .find(|r| r[0] == bucket["start"] && r[1] == series["key"]["channel"])
                .expect("a row per key and bucket");
            for name in COUNTERS {
                assert_eq!(row[column(name)], bucket[name].to_string(), "{name}");
            }
            let p50 = bucket["first_response_seconds"]["p50"].as_f64();
            let cell = row[column("first_response_seconds_p50")];
            assert_eq!(cell.parse::<f64>().ok(), p50, "an empty cell is null");
        }
    }
}

async fn figures_bad_queries_are_400_with_the_reason(backend: Backend) {
    let app = backend.app(None);
    for (query, reason) in [
        ("to=2026-03-02T00:00:00Z", "from is required"),
        ("from=monday&to=2026-03-02T00:00:00Z", "RFC 3339"),
        (
            "from=2026-03-02T00:00:00Z&to=2026-03-03T00:00:00Z&granularity=minute",
            "granularity",
        ),
        (
            "from=2026-03-02T00:00:00Z&to=2026-03-03T00:00:00Z&group_by=colour",
            "group_by",
        ),
        (
            "from=2026-03-02T00:00:00Z&to=2026-03-03T00:00:00Z&from=2026-03-01T00:00:00Z",
            "twice",
        ),
    ] {
        let (status, body) = get_json(&app, &format!("/api/metrics?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["error"].as_str().unwrap_or_default().contains(reason),
            "{query}: {body}"
        );
    }
}

/// A month of hourly buckets with one count an hour, then a month with ten thousand an hour:
/// the report reads the same handful of pages (one `Query` per month on DynamoDB, plus a page
/// per megabyte of buckets, and a page of each team's queue for the backlog), whatever the
/// volume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_months_report_costs_a_bounded_number_of_reads_whatever_the_volume() {
    let (backend, counter) = switchboard_tests::aws_counted().await;
    let app = backend.app(None);
    // A conversation to hang the counts on: each update adds a day of hourly buckets.
    deliver(
        &app,
        Webhook::Whatsapp,
        whatsapp_text("PN-M", "5215500000900", "wamid.M1", 1_790_000_000, "hola"),
    )
    .await;
    let id = ConversationId::from_stored(
        conversation_of(&app, "5215500000900").await["id"]
            .as_str()
            .unwrap(),
    );
    let month = |y: i32, m: u32| Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).unwrap();
    // Four days of hours per write (a transaction holds 100 actions), 744 buckets a month.
    let fill = |start: DateTime<Utc>, per_hour: u64| {
        let (backend, id) = (backend.clone(), id.clone());
        async move {
            for first_day in (0..31).step_by(4) {
                let change = move |c: &mut Conversation, tally: &mut Tally| {
                    let dims = Dims {
                        channel: Channel::Whatsapp,
                        account: "PN-M".into(),
                        team: Some("care".into()),
                        topic: Some("billing".into()),
                        priority: None,
                    };
                    for h in 0..24 * 4 {
                        let at = start + chrono::Duration::hours(first_day * 24 + h);
                        if at < start + chrono::Duration::days(31) {
                            tally.count(at, &dims, Counter::MessagesIn, per_hour);
                        }
                    }
                    c.sla_breaches += 1;
                    true
                };
                backend
                    .conversations
                    .update_conversation(&id, &change)
                    .await
                    .unwrap()
                    .unwrap();
            }
        }
    };
    fill(month(2026, 1), 1).await;
    fill(month(2026, 3), 10_000).await;
    let mut reads = Vec::new();
    for (from, to, per_hour) in [
        ("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", 1u64),
        ("2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z", 10_000),
    ] {
        counter.reset();
        let (status, report) = get_json(
            &app,
            &format!("/api/metrics?from={from}&to={to}&granularity=day"),
        )
        .await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["totals"]["messages_in"], json!(per_hour * 24 * 31));
        let by = counter.by_operation();
        reads.push(by.get("Query").copied().unwrap_or_default());
        // The queue pages of the backlog aside, no other call.
        assert!(by.keys().all(|op| op == "Query"), "{by:?}");
    }
    let teams = switchboard_tests::teams().len();
    for (i, r) in reads.iter().enumerate() {
        assert!(
            *r <= teams + 2,
            "report {i}: {r} queries for {teams} team queues and one month of buckets"
        );
    }
}
