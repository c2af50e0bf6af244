//! The prioritizer on both backends: the queue consumer scores each customer message, routes
//! its conversation to a team's queue, publishes `conversation.prioritized`, and does all of
//! that once however often an entry is delivered.

use serde_json::{Value, json};

use switchboard_core::ids::{ConversationId, RecordKey};
use switchboard_core::model::{Channel, Webhook};
use switchboard_core::ports::QueueEntry;
use switchboard_core::prioritize::{BatchItem, Outcome, PRIORITIZED};
use switchboard_tests::payloads::{
    messenger_text as messenger, whatsapp_text as whatsapp, whatsapp_texts,
};
use switchboard_tests::{Backend, call, get_all, get_json};
use switchboard_tests::{conversation_of, deliver as post};

switchboard_tests::contract!(
    a_double_charge_marked_urgent_is_above_a_thank_you_in_the_queue,
    an_entry_delivered_twice_changes_nothing_the_second_time,
    within_one_wait_the_level_only_rises_and_an_answer_takes_it_out_of_the_queue,
    each_history_signal_found_in_the_store_raises_the_priority,
    a_failed_item_fails_alone_and_holds_back_only_its_own_conversation,
    a_poison_entry_ends_in_the_dead_letters,
    the_queue_pages_in_order_and_refuses_a_foreign_cursor,
    each_wait_is_timed_by_the_policy_and_its_clock_moves_only_with_the_level,
    a_described_harm_lands_in_p2_with_the_models_reason,
);

/// Issue 18's end-to-end case: a harm described without a word of the lists, through the
/// intake and the prioritizer with the urgency model (the Lambda prioritizer's scorer, from
/// the model file the layer carries), lands in P2 with the model's reason; the same message
/// without the model waits below.
async fn a_described_harm_lands_in_p2_with_the_models_reason(backend: Backend) {
    let app = backend.app(None);
    let t = 1_795_000_000;
    let harm = "se me incendió el horno al segundo uso";
    post(
        &app,
        Webhook::Whatsapp,
        whatsapp("PN", "5215550000011", "wamid.H1", t, harm),
    )
    .await;
    let model = switchboard_encoder::default_model_path();
    let scorer = switchboard_lambda::scorer(
        switchboard_core::priority::PriorityConfig::default_config(),
        Some(&model),
    )
    .unwrap_or_else(|e| panic!("{e} (run infra/model.sh)"));
    assert!(scorer.has_model());
    let prioritizer = backend.prioritizer_scored(
        std::sync::Arc::new(scorer),
        switchboard_core::sla::SlaPolicy::default_policy(),
        std::sync::Arc::new(switchboard_core::clock::SystemClock),
    );
    assert_eq!(backend.prioritize_all(&prioritizer).await, 1);
    let queue = get_all(&app, "/api/queue", 10).await;
    assert_eq!(queue.len(), 1, "{queue:?}");
    let harmed = &queue[0];
    assert_eq!(harmed["priority"]["priority"], "P2", "{harmed}");
    let model_reason = harmed["priority"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["signal"] == "model")
        .unwrap_or_else(|| panic!("no model reason: {harmed}"))
        .clone();
    assert!(
        model_reason["weight"].as_i64().unwrap() > 0,
        "{model_reason}"
    );
    assert!(
        model_reason["detail"]
            .as_str()
            .unwrap()
            .contains("nearest: "),
        "{model_reason}"
    );

    // Without the model the same words wait below P2.
    post(
        &app,
        Webhook::Whatsapp,
        whatsapp("PN", "5215550000012", "wamid.H2", t + 1, harm),
    )
    .await;
    assert_eq!(backend.prioritize_all(&backend.prioritizer()).await, 1);
    let plain = conversations_of(&app, "5215550000012").await;
    let level = plain[0]["priority"]["priority"].as_str().unwrap();
    assert!(level == "P3" || level == "P4", "{}", plain[0]);
    assert!(!signals(&plain[0]).contains(&"model".to_owned()));
}

async fn conversations_of(app: &axum::Router, provider_id: &str) -> Vec<Value> {
    get_all(app, "/api/conversations", 50)
        .await
        .into_iter()
        .filter(|c| c["customer_provider_id"] == provider_id)
        .collect()
}

fn signals(conversation: &Value) -> Vec<String> {
    conversation["priority"]["reasons"]
        .as_array()
        .unwrap_or_else(|| panic!("no reasons: {conversation}"))
        .iter()
        .map(|r| r["signal"].as_str().unwrap().to_owned())
        .collect()
}

/// Issue 5's end-to-end case, on the read API.
async fn a_double_charge_marked_urgent_is_above_a_thank_you_in_the_queue(backend: Backend) {
    let app = backend.app(None);
    let t = 1_795_000_000;
    post(
        &app,
        Webhook::Whatsapp,
        whatsapp(
            "PN",
            "5215550000001",
            "wamid.A",
            t,
            "me cobraron dos veces, es urgente",
        ),
    )
    .await;
    post(
        &app,
        Webhook::Whatsapp,
        whatsapp("PN", "5215550000002", "wamid.B", t - 60, "gracias!"),
    )
    .await;
    let prioritizer = backend.prioritizer();
    assert_eq!(backend.prioritize_all(&prioritizer).await, 2);

    let queue = get_all(&app, "/api/queue", 10).await;
    let who: Vec<&str> = queue
        .iter()
        .map(|c| c["customer_provider_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        who,
        ["5215550000001", "5215550000002"],
        "urgent first, though it waits less"
    );
    let urgent = &queue[0];
    let priority = urgent["priority"]["priority"].as_str().unwrap();
    assert!(priority == "P1" || priority == "P2", "{urgent}");
    assert_eq!(urgent["priority"]["topic"], "billing");
    assert_eq!(urgent["priority"]["team"], "billing");
    assert_eq!(signals(urgent), ["money_lost", "urgency"]);
    for reason in urgent["priority"]["reasons"].as_array().unwrap() {
        assert!(reason["weight"].as_i64().unwrap() > 0, "{reason}");
    }
    assert_eq!(queue[1]["priority"]["priority"], "P4");
    assert_eq!(queue[1]["priority"]["team"], "customer-care");

    // One team's queue holds its own conversations only.
    let billing = get_all(&app, "/api/queue?team=billing", 10).await;
    assert_eq!(billing.len(), 1);
    assert_eq!(billing[0]["id"], urgent["id"]);
    assert!(
        get_all(&app, "/api/queue?team=retention", 10)
            .await
            .is_empty()
    );
    // The conversation shows the same priority.
    let (status, one) = get_json(
        &app,
        &format!("/api/conversations/{}", urgent["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(one["priority"], urgent["priority"]);

    // One conversation.prioritized per conversation, with what a CRM needs.
    let events = backend.published.of_type(PRIORITIZED).await;
    assert_eq!(events.len(), 2, "{events:?}");
    let event = events
        .iter()
        .find(|e| e["detail"]["conversation_id"] == urgent["id"])
        .expect("the urgent conversation's event");
    assert_eq!(event["type"], PRIORITIZED);
    let d = &event["detail"];
    assert_eq!(d["customer_id"], urgent["customer_id"]);
    assert_eq!(d["channel"], "whatsapp");
    assert_eq!(d["priority"], priority);
    assert_eq!(d["topic"], "billing");
    assert_eq!(d["team"], "billing");
    assert_eq!(d["reasons"], urgent["priority"]["reasons"]);
    assert!(event["id"].as_str().unwrap().starts_with("ev_"));
    // Exactly the fields docs/events.md documents (EventBridge adds the envelope's two).
    let mut fields: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
    fields.retain(|f| !["event_id", "version", "time"].contains(f));
    fields.sort_unstable();
    assert_eq!(fields, switchboard_tests::documented_fields(PRIORITIZED));
    // The event carries no message text: a reason names the configured phrase it found.
    assert!(!event.to_string().contains("es urgente"), "{event}");
    assert_eq!(d["reasons"][0]["detail"], "me cobraron");
}

/// The entry of each message stored for `app`'s conversations, as the queue carried it.
async fn entries_of(backend: &Backend, conversation: &Value) -> Vec<QueueEntry> {
    let id = conversation["id"].as_str().unwrap();
    let app = backend.app(None);
    get_all(&app, &format!("/api/conversations/{id}/messages"), 50)
        .await
        .iter()
        .map(|m| QueueEntry {
            record_key: RecordKey::from_stored(m["key"].as_str().unwrap().to_owned()),
            conversation_id: ConversationId::from_stored(id.to_owned()),
            channel: m["channel"].as_str().unwrap().parse::<Channel>().unwrap(),
            record_type: m["record"].as_str().unwrap().to_owned(),
            kind: m["kind"].as_str().unwrap().to_owned(),
            account_id: None,
        })
        .collect()
}

async fn an_entry_delivered_twice_changes_nothing_the_second_time(backend: Backend) {
    let app = backend.app(None);
    post(
        &app,
        Webhook::Whatsapp,
        whatsapp(
            "PN",
            "5215550000003",
            "wamid.C",
            1_795_000_000,
            "HACKEARON MI CUENTA!!!",
        ),
    )
    .await;
    let prioritizer = backend.prioritizer();
    backend.prioritize_all(&prioritizer).await;
    let before = conversation_of(&app, "5215550000003").await;
    assert_eq!(before["priority"]["topic"], "security", "{before}");
    let events = backend.published.of_type(PRIORITIZED).await.len();
    assert_eq!(events, 1);

    let entries = entries_of(&backend, &before).await;
    assert_eq!(entries.len(), 1);
    for _ in 0..2 {
        let outcome = prioritizer.handle(&entries[0]).await.expect("handle again");
        assert_eq!(outcome, Outcome::AlreadySeen);
    }
    // Through the queue too: enqueued again, consumed again.
    backend
        .queue
        .enqueue(&entries)
        .await
        .expect("enqueue again");
    assert_eq!(backend.prioritize_all(&prioritizer).await, 1);
    assert_eq!(conversation_of(&app, "5215550000003").await, before);
    assert_eq!(
        backend.published.of_type(PRIORITIZED).await.len(),
        events,
        "no second event"
    );
}

async fn within_one_wait_the_level_only_rises_and_an_answer_takes_it_out_of_the_queue(
    backend: Backend,
) {
    let app = backend.app(None);
    let prioritizer = backend.prioritizer();
    let ms = 1_795_000_000_000_i64;
    let customer = "PSID-WAIT";
    post(
        &app,
        Webhook::Facebook,
        messenger(
            customer,
            "m1",
            ms,
            "the app is not working and nobody answers!!",
            false,
        ),
    )
    .await;
    backend.prioritize_all(&prioritizer).await;
    let first = conversation_of(&app, customer).await;
    let level = first["priority"]["priority"].clone();
    assert!(level == "P1" || level == "P2", "{first}");

    // A calmer follow-up in the same wait keeps the level.
    post(
        &app,
        Webhook::Facebook,
        messenger(customer, "m2", ms + 60_000, "hello?", false),
    )
    .await;
    backend.prioritize_all(&prioritizer).await;
    let second = conversation_of(&app, customer).await;
    assert_eq!(second["priority"]["priority"], level);
    assert_eq!(second["priority"]["reasons"], first["priority"]["reasons"]);
    assert_eq!(
        get_all(&app, "/api/queue?team=tech-support", 10)
            .await
            .len(),
        1
    );

    // The page answers: the conversation leaves the queue.
    post(
        &app,
        Webhook::Facebook,
        messenger(customer, "m3", ms + 120_000, "sorry, looking into it", true),
    )
    .await;
    backend.prioritize_all(&prioritizer).await;
    assert!(
        get_all(&app, "/api/queue?team=tech-support", 10)
            .await
            .is_empty()
    );
    assert!(get_all(&app, "/api/queue", 10).await.is_empty());

    // A thank-you starts a new wait, prioritized afresh and lower.
    post(
        &app,
        Webhook::Facebook,
        messenger(customer, "m4", ms + 180_000, "thanks, works now", false),
    )
    .await;
    backend.prioritize_all(&prioritizer).await;
    let after = conversation_of(&app, customer).await;
    assert_eq!(after["priority"]["priority"], "P4", "{after}");
    let queue = get_all(&app, "/api/queue", 10).await;
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0]["priority"]["team"], "customer-care");
    // Three customer messages, each prioritized once; two set the level.
    assert_eq!(backend.published.of_type(PRIORITIZED).await.len(), 2);
}

/// The same calm message from four customers, three of them with history the store holds:
/// the plain one is the baseline, each other is raised by the signal named.
async fn each_history_signal_found_in_the_store_raises_the_priority(backend: Backend) {
    let app = backend.app(None);
    let prioritizer = backend.prioritizer();
    let t = 1_795_000_000;
    let text = "hello, I am waiting for my refund";

    // Baseline.
    post(
        &app,
        Webhook::Whatsapp,
        whatsapp("PN1", "5215550000010", "wamid.base", t, text),
    )
    .await;
    // Open elsewhere, and a contact in the last 24 hours: an unanswered message to the other
    // business number an hour before.
    post(
        &app,
        Webhook::Whatsapp,
        whatsapp(
            "PN2",
            "5215550000011",
            "wamid.open.1",
            t - 3600,
            "my card does not work",
        ),
    )
    .await;
    backend.prioritize_all(&prioritizer).await;
    post(
        &app,
        Webhook::Whatsapp,
        whatsapp("PN1", "5215550000011", "wamid.open.2", t, text),
    )
    .await;
    // A VIP.
    post(
        &app,
        Webhook::Whatsapp,
        whatsapp(
            "PN2",
            "5215550000012",
            "wamid.vip.0",
            t - 30 * 86_400 - 10,
            "hi",
        ),
    )
    .await;
    backend.prioritize_all(&prioritizer).await;
    let vip = conversation_of(&app, "5215550000012").await;
    let request = http::Request::put(format!(
        "/api/customers/{}/tier",
        vip["customer_id"].as_str().unwrap()
    ))
    .header("content-type", "application/json")
    .body(axum::body::Body::from(r#"{"tier": "vip"}"#))
    .unwrap();
    let (status, answer) = call(&app, request).await;
    assert_eq!(status, 200, "{answer:?}");
    post(
        &app,
        Webhook::Whatsapp,
        whatsapp("PN1", "5215550000012", "wamid.vip.1", t, text),
    )
    .await;
    // Earlier breaches on another conversation of the customer (the SLA engine records them).
    post(
        &app,
        Webhook::Whatsapp,
        whatsapp(
            "PN2",
            "5215550000013",
            "wamid.breach.0",
            t - 2 * 86_400,
            "pesimo servicio",
        ),
    )
    .await;
    backend.prioritize_all(&prioritizer).await;
    let earlier = conversation_of(&app, "5215550000013").await;
    let earlier_id = ConversationId::from_stored(earlier["id"].as_str().unwrap().to_owned());
    backend
        .conversations
        .update_conversation(&earlier_id, &|c, _| {
            c.sla_breaches = 2;
            c.waiting_since = None;
            true
        })
        .await
        .expect("record breaches")
        .expect("the conversation");
    post(
        &app,
        Webhook::Whatsapp,
        whatsapp("PN1", "5215550000013", "wamid.breach.1", t, text),
    )
    .await;
    backend.prioritize_all(&prioritizer).await;

    let on_pn1 = |convs: Vec<Value>| {
        convs
            .into_iter()
            .find(|c| c["account_id"] == "PN1")
            .expect("the PN1 conversation")
    };
    let base = on_pn1(conversations_of(&app, "5215550000010").await);
    let base_score = base["priority"]["score"].as_i64().unwrap();
    assert_eq!(signals(&base), ["refund"], "{base}");
    for (customer, expected) in [
        ("5215550000011", vec!["open_elsewhere", "contacts_24h"]),
        ("5215550000012", vec!["vip"]),
        (
            "5215550000013",
            vec!["contacts_7d", "breaches", "complaints"],
        ),
    ] {
        let c = on_pn1(conversations_of(&app, customer).await);
        let got = signals(&c);
        for signal in &expected {
            assert!(
                got.iter().any(|s| s == signal),
                "{customer}: {signal} in {got:?}"
            );
        }
        assert!(c["priority"]["score"].as_i64().unwrap() > base_score, "{c}");
        assert!(
            c["priority"]["priority"].as_str() < base["priority"]["priority"].as_str(),
            "{customer} is more urgent than the baseline: {c}"
        );
    }
    // The 30-day-old message of the VIP is outside the look-back: no contact counted.
    let vip = on_pn1(conversations_of(&app, "5215550000012").await);
    assert!(
        !signals(&vip).iter().any(|s| s.starts_with("contacts")),
        "{vip}"
    );
}

async fn a_failed_item_fails_alone_and_holds_back_only_its_own_conversation(backend: Backend) {
    let app = backend.app(None);
    let t = 1_795_000_000;
    post(
        &app,
        Webhook::Whatsapp,
        whatsapp("PN", "5215550000020", "wamid.ok.a", t, "no funciona la app"),
    )
    .await;
    post(
        &app,
        Webhook::Whatsapp,
        whatsapp("PN", "5215550000021", "wamid.ok.b", t, "no funciona la app"),
    )
    .await;
    let a = conversation_of(&app, "5215550000020").await;
    let b = conversation_of(&app, "5215550000021").await;
    let a_entry = entries_of(&backend, &a).await.remove(0);
    let b_entry = entries_of(&backend, &b).await.remove(0);
    backend.probe.drain().await;
    let missing = QueueEntry {
        record_key: RecordKey::from_stored("never-stored".to_owned()),
        ..a_entry.clone()
    };
    let body = |e: &QueueEntry| serde_json::to_string(e).unwrap();
    let items = vec![
        BatchItem {
            id: "1-garbage".into(),
            body: "{not json".into(),
        },
        BatchItem {
            id: "2-a-missing".into(),
            body: body(&missing),
        },
        BatchItem {
            id: "3-a-after".into(),
            body: body(&a_entry),
        },
        BatchItem {
            id: "4-b".into(),
            body: body(&b_entry),
        },
    ];
    let prioritizer = backend.prioritizer();
    let failed = prioritizer.handle_batch(&items).await;
    assert_eq!(failed, ["1-garbage", "2-a-missing", "3-a-after"]);
    // B went through; A waits for its retry, in order.
    assert!(conversation_of(&app, "5215550000021").await["priority"].is_object());
    assert!(conversation_of(&app, "5215550000020").await["priority"].is_null());
    // The retry of A alone succeeds.
    let failed = prioritizer.handle_batch(&items[2..3]).await;
    assert!(failed.is_empty());
    assert!(conversation_of(&app, "5215550000020").await["priority"].is_object());
}

async fn a_poison_entry_ends_in_the_dead_letters(backend: Backend) {
    let app = backend.app(None);
    post(
        &app,
        Webhook::Whatsapp,
        whatsapp("PN", "5215550000030", "wamid.p", 1_795_000_000, "hola"),
    )
    .await;
    let conversation = conversation_of(&app, "5215550000030").await;
    let good = entries_of(&backend, &conversation).await.remove(0);
    backend.probe.drain().await;
    let poison = QueueEntry {
        record_key: RecordKey::from_stored("never-stored".to_owned()),
        conversation_id: ConversationId::from_stored("cv_poison".to_owned()),
        ..good.clone()
    };
    backend
        .queue
        .enqueue(&[poison, good])
        .await
        .expect("enqueue");
    let consumer = backend.consumer.with_visibility(std::time::Duration::ZERO);
    let prioritizer = backend.prioritizer();
    for _ in 0..20 {
        consumer.consume_once(&prioritizer).await;
        if consumer.dead_letters().await == 1 {
            break;
        }
    }
    assert_eq!(
        consumer.dead_letters().await,
        1,
        "the poison entry is a dead letter"
    );
    assert!(conversation_of(&app, "5215550000030").await["priority"].is_object());
    assert_eq!(
        backend.prioritize_all(&prioritizer).await,
        0,
        "nothing left in the queue"
    );
}

async fn the_queue_pages_in_order_and_refuses_a_foreign_cursor(backend: Backend) {
    let app = backend.app(None);
    let t = 1_795_000_000;
    let texts = [
        "gracias",
        "me cobraron dos veces",
        "HACKEARON MI CUENTA, voy a PROFECO!!!",
        "hola",
        "no funciona nada, pesimo servicio",
        "quiero cancelar",
    ];
    for (i, text) in texts.iter().enumerate() {
        let from = format!("52155500001{i:02}");
        post(
            &app,
            Webhook::Whatsapp,
            whatsapp("PN", &from, &format!("wamid.q{i}"), t + i as i64, text),
        )
        .await;
    }
    let prioritizer = backend.prioritizer();
    backend.prioritize_all(&prioritizer).await;
    let all = get_all(&app, "/api/queue", 2).await;
    assert_eq!(all.len(), texts.len());
    let keys: Vec<(String, String)> = all
        .iter()
        .map(|c| {
            (
                c["priority"]["priority"].as_str().unwrap().to_owned(),
                c["waiting_since"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "by priority, then longest waiting");
    assert_eq!(all.first().unwrap()["priority"]["priority"], "P1");

    let (status, first) = get_json(&app, "/api/queue?limit=1").await;
    assert_eq!(status, 200);
    let cursor = first["next"].as_str().unwrap();
    let (status, answer) =
        get_json(&app, &format!("/api/queue?team=billing&cursor={cursor}")).await;
    assert_eq!(status, 400, "a cursor of another listing: {answer}");
    let (status, _) = get_json(&app, "/api/queue?cursor=garbage").await;
    assert_eq!(status, 400);
    let (status, _) = get_json(&app, "/api/queue?limit=0").await;
    assert_eq!(status, 400);
}

/// Issue 19, item 6: the history is counted as messages arrive, not read back. A customer who
/// wrote 600 times in the last day on two business numbers (more than a read of its records
/// would take) and 40 times three days before: the reasons of its next message count every
/// one of them, and its other conversation is open.
#[tokio::test]
async fn the_history_counts_every_earlier_message_however_many() {
    let backend = switchboard_tests::embedded().await;
    let app = backend.app(None);
    let prioritizer = backend.prioritizer();
    let t = 1_795_000_000;
    let from = "5215550000077";
    let minutes = |n: i64, start: i64| (0..n).map(|i| start + 60 * i).collect::<Vec<i64>>();
    for (pn, tag, times) in [
        ("PN1", "wamid.week", minutes(40, t - 3 * 86_400)),
        ("PN1", "wamid.day1", minutes(400, t - 20 * 3600)),
        ("PN2", "wamid.day2", minutes(200, t - 10 * 3600)),
    ] {
        for (i, chunk) in times.chunks(100).enumerate() {
            let body = whatsapp_texts(pn, from, &format!("{tag}.{i}"), chunk, "hola");
            post(&app, Webhook::Whatsapp, body).await;
        }
        backend.prioritize_all(&prioritizer).await;
    }
    post(
        &app,
        Webhook::Whatsapp,
        whatsapp("PN1", from, "wamid.now", t, "hola"),
    )
    .await;
    assert_eq!(backend.prioritize_all(&prioritizer).await, 1);

    let on_pn1 = conversations_of(&app, from)
        .await
        .into_iter()
        .find(|c| c["account_id"] == "PN1")
        .expect("the PN1 conversation");
    let reasons = on_pn1["priority"]["reasons"].as_array().expect("reasons");
    let detail = |signal: &str| {
        reasons
            .iter()
            .find(|r| r["signal"] == signal)
            .and_then(|r| r["detail"].as_str())
            .unwrap_or_else(|| panic!("no {signal} in {reasons:?}"))
            .to_owned()
    };
    assert_eq!(detail("contacts_24h"), "600");
    assert_eq!(
        detail("contacts_7d"),
        "40",
        "those of the week before the last day"
    );
    assert!(detail("open_elsewhere").starts_with("on "), "{reasons:?}");
}

#[tokio::test]
async fn a_tier_needs_a_known_customer_and_a_sensible_value() {
    let backend = switchboard_tests::embedded().await;
    let app = backend.app(None);
    let put = |id: &str, body: &str| {
        http::Request::put(format!("/api/customers/{id}/tier"))
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_owned()))
            .unwrap()
    };
    let (status, _) = call(&app, put("cu_unknown", r#"{"tier":"vip"}"#)).await;
    assert_eq!(status, 404);
    post(
        &app,
        Webhook::Whatsapp,
        whatsapp("PN", "5215550000040", "wamid.t", 1_795_000_000, "hola"),
    )
    .await;
    let id = conversation_of(&app, "5215550000040").await["customer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for bad in [r#"{"tier":""}"#, r#"{"tier":5}"#, "not json"] {
        let (status, _) = call(&app, put(&id, bad)).await;
        assert_eq!(status, 400, "{bad}");
    }
    let (status, body) = call(&app, put(&id, r#"{"tier":"vip"}"#)).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["tier"],
        "vip"
    );
    let (status, body) = call(&app, put(&id, r#"{"tier":null}"#)).await;
    assert_eq!(status, 200);
    assert!(serde_json::from_slice::<Value>(&body).unwrap()["tier"].is_null());
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// The wait's `due_at` and `warn_at` in `/api/queue` and `/api/conversations/{id}`, from the
/// SLA policy (here with every team on a 24/7 clock, so the expected times are plain sums).
async fn each_wait_is_timed_by_the_policy_and_its_clock_moves_only_with_the_level(
    backend: Backend,
) {
    use switchboard_core::sla::SlaPolicy;
    let policy = SlaPolicy::parse(
        &switchboard_core::sla::policy::DEFAULT_TOML
            .replace("default = \"office\"", "default = \"always\""),
    )
    .unwrap();
    let prioritizer = backend.prioritizer_timed(
        switchboard_core::priority::PriorityConfig::default_config(),
        policy,
    );
    let app = backend.app(None);
    let customer = "PSID-SLA";
    let t = 1_795_000_000_000_i64;
    let minute = 60_000;
    let timed = |c: &Value| (c["due_at"].clone(), c["warn_at"].clone());

    // A thank-you: P4, Messenger's 4 h, warned at three quarters.
    post(
        &app,
        Webhook::Facebook,
        messenger(customer, "s1", t, "gracias", false),
    )
    .await;
    backend.prioritize_all(&prioritizer).await;
    let c = conversation_of(&app, customer).await;
    assert_eq!(c["priority"]["priority"], "P4");
    assert_eq!(
        timed(&c),
        (
            json!(rfc3339(t + 4 * 60 * minute)),
            json!(rfc3339(t + 3 * 60 * minute))
        )
    );
    let queued = get_all(&app, "/api/queue", 10).await;
    assert_eq!(timed(&queued[0]), timed(&c));

    // More of the same wait does not move the clock.
    post(
        &app,
        Webhook::Facebook,
        messenger(customer, "s2", t + minute, "hola?", false),
    )
    .await;
    backend.prioritize_all(&prioritizer).await;
    assert_eq!(timed(&conversation_of(&app, customer).await), timed(&c));

    // A raised level moves it: its target, from the start of the wait (P1 here: the two
    // earlier messages count as contacts).
    post(
        &app,
        Webhook::Facebook,
        messenger(
            customer,
            "s3",
            t + 2 * minute,
            "me cobraron dos veces, es urgente",
            false,
        ),
    )
    .await;
    backend.prioritize_all(&prioritizer).await;
    let c = conversation_of(&app, customer).await;
    let target = target_minutes(&c);
    assert_eq!(
        timed(&c),
        (
            json!(rfc3339(t + target * minute)),
            json!(rfc3339(t + target * minute * 3 / 4))
        )
    );

    // Answered: no due time; the response time is recorded.
    post(
        &app,
        Webhook::Facebook,
        messenger(customer, "s4", t + 30 * minute, "we are on it", true),
    )
    .await;
    backend.prioritize_all(&prioritizer).await;
    let c = conversation_of(&app, customer).await;
    assert_eq!(timed(&c), (Value::Null, Value::Null));
    assert_eq!(c["first_response_seconds"], 1800);
    assert_eq!(c["last_response_seconds"], 1800);

    // The next customer message starts a next-response wait, timed afresh.
    let later = t + 120 * minute;
    post(
        &app,
        Webhook::Facebook,
        messenger(customer, "s5", later, "the app is not working!!", false),
    )
    .await;
    backend.prioritize_all(&prioritizer).await;
    let c = conversation_of(&app, customer).await;
    assert_eq!(
        c["due_at"],
        json!(rfc3339(later + target_minutes(&c) * minute)),
        "{c}"
    );
}

/// The shipped targets of P1 and P2, in minutes.
fn target_minutes(conversation: &Value) -> i64 {
    match conversation["priority"]["priority"].as_str() {
        Some("P1") => 15,
        Some("P2") => 60,
        other => panic!("{other:?}: {conversation}"),
    }
}

/// The urgency model's inference, the costly part of scoring, overlaps the history reads:
/// the history port below answers only once the model has begun (or after 5 s), so a
/// prioritizer that ran the model after reading the history would show the wait in the
/// flag this test reads. The model's raise still reaches the score.
#[tokio::test]
async fn the_models_inference_runs_while_the_history_is_read() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use switchboard_core::ids::CustomerId;
    use switchboard_core::ports::{BackendError as PortError, CustomerHistory};
    use switchboard_core::prioritize::{Prioritizer, PrioritizerPorts};
    use switchboard_core::priority::{Assessment, Scorer, UrgencyModel};

    #[derive(Debug)]
    struct Begins(tokio::sync::watch::Sender<bool>);
    impl UrgencyModel for Begins {
        fn assess(&self, _text: &str) -> Assessment {
            self.0.send_replace(true);
            Assessment {
                probability: 0.9,
                raise: true,
                lower: false,
                topics: vec!["security".into()],
            }
        }
    }

    struct WaitsForTheModel {
        inner: Arc<dyn CustomerHistory>,
        model_began: tokio::sync::watch::Receiver<bool>,
        overlapped: AtomicBool,
    }
    #[async_trait::async_trait]
    impl CustomerHistory for WaitsForTheModel {
        async fn customer_records(
            &self,
            customer: &CustomerId,
            since: chrono::DateTime<chrono::Utc>,
            until: chrono::DateTime<chrono::Utc>,
            limit: usize,
        ) -> Result<Vec<switchboard_core::model::Record>, PortError> {
            self.inner
                .customer_records(customer, since, until, limit)
                .await
        }
        async fn activity(
            &self,
            identities: &[CustomerId],
        ) -> Result<Vec<switchboard_core::history::Activity>, PortError> {
            let mut began = self.model_began.clone();
            let overlapped = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                began.wait_for(|began| *began),
            )
            .await
            .is_ok_and(|seen| seen.is_ok());
            self.overlapped.store(overlapped, Ordering::SeqCst);
            self.inner.activity(identities).await
        }
        async fn note_activity(
            &self,
            identity: &CustomerId,
            note: &switchboard_core::history::ActivityNote,
        ) -> Result<(), PortError> {
            self.inner.note_activity(identity, note).await
        }
    }

    let backend = switchboard_tests::embedded().await;
    let app = backend.app(None);
    post(
        &app,
        Webhook::Whatsapp,
        whatsapp("PN", "5215550000021", "wamid.M1", 1_795_000_000, "hola"),
    )
    .await;
    let (began, model_began) = tokio::sync::watch::channel(false);
    let history = Arc::new(WaitsForTheModel {
        inner: backend.history.clone(),
        model_began,
        overlapped: AtomicBool::new(false),
    });
    let prioritizer = Prioritizer::new(
        PrioritizerPorts {
            history: history.clone(),
            ..backend.prioritizer_ports()
        },
        Arc::new(Scorer::default().with_model(Arc::new(Begins(began)))),
        Arc::new(switchboard_core::sla::SlaPolicy::default_policy()),
        Arc::new(switchboard_core::clock::SystemClock),
    );
    assert_eq!(backend.prioritize_all(&prioritizer).await, 1);
    assert!(
        history.overlapped.load(Ordering::SeqCst),
        "the history was read before the model began"
    );
    let scored = conversations_of(&app, "5215550000021").await;
    assert_eq!(scored[0]["priority"]["priority"], "P2", "{}", scored[0]);
    assert!(signals(&scored[0]).contains(&"model".to_owned()));
}
