//! X (Account Activity API), on both backends: every fixture accepted with the consumer
//! secret's signature and stored once (ids checked against the raw JSON, not the normalizer),
//! its repeat a no-op; a tampered, truncated, prefixless, missing or foreign signature refused
//! with nothing kept, the previous secret accepted during a rotation; the CRC answered with an
//! HMAC computed here independently, a missing token 400; the brand's own DM and reply tweet
//! answering their conversations, its deleted tweet an event of the customer's conversation;
//! replies through a fake X API on loopback (DM, public reply, DM to a tweet's author), their
//! webhook echoes no second message, a refusal storing nothing. The fixtures' signature vector
//! is checked over its raw bytes.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::{BTreeMap, HashSet};

use switchboard_core::channels;
use switchboard_core::ids::RecordKey;
use switchboard_core::model::{Record, Webhook};
use switchboard_tests::x::{FakeX, X_USER_TOKEN};
use switchboard_tests::{
    Backend, OLD_X_SECRET, X_SECRET, all_records, call, fixtures, fixtures_dir, get_all, get_json,
    x_post,
};

switchboard_tests::contract!(
    every_x_fixture_is_stored_once_and_its_repeat_is_a_no_op,
    a_bad_signature_is_refused_and_nothing_is_kept_and_the_crc_is_answered,
    the_brands_own_dm_and_reply_tweet_answer_and_its_deleted_tweet_is_an_event,
    replies_go_out_as_dms_and_reply_tweets_through_the_x_api,
);

/// X's signature computed here, apart from the code under test.
fn independent_signature(secret: &str, data: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(data);
    format!(
        "sha256={}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    )
}

async fn post(app: &axum::Router, body: &Value) -> u16 {
    let bytes = serde_json::to_vec(body).unwrap();
    call(app, x_post(&bytes, X_SECRET)).await.0.as_u16()
}

fn id(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// What the raw JSON says must be stored: each DM's id and each customer tweet's id, and the
/// tweet each delete or like refers to. Read from the JSON directly.
fn expected_ids(body: &Value) -> (Vec<String>, Vec<String>) {
    let (mut messages, mut refers) = (Vec::new(), Vec::new());
    let account = id(&body["for_user_id"]);
    for dm in body["direct_message_events"]
        .as_array()
        .into_iter()
        .flatten()
    {
        messages.push(id(&dm["id"]).unwrap());
    }
    for tweet in body["tweet_create_events"].as_array().into_iter().flatten() {
        if id(&tweet["user"]["id_str"]).or_else(|| id(&tweet["user"]["id"])) != account {
            messages.push(id(&tweet["id_str"]).unwrap());
        }
    }
    for delete in body["tweet_delete_events"].as_array().into_iter().flatten() {
        refers.push(id(&delete["status"]["id"]).unwrap());
    }
    for like in body["favorite_events"].as_array().into_iter().flatten() {
        refers.push(id(&like["favorited_status"]["id_str"]).unwrap());
    }
    (messages, refers)
}

async fn every_x_fixture_is_stored_once_and_its_repeat_is_a_no_op(backend: Backend) {
    let app = backend.app(None);
    let mut expected_keys: HashSet<String> = HashSet::new();
    let mut all_keys: Vec<RecordKey> = Vec::new();
    let (mut messages, mut refers) = (HashSet::new(), HashSet::new());
    let mut posted = 0;
    for (name, bytes) in fixtures("x") {
        let (status, answer) = call(&app, x_post(&bytes, X_SECRET)).await;
        assert_eq!(status, 200, "{name}: {answer:?}");
        posted += 1;
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        for record in channels::normalize(Webhook::X, &body, chrono::Utc::now()) {
            all_keys.push(record.key());
            if !matches!(record, Record::Notification(_)) {
                expected_keys.insert(record.key().to_string());
            }
        }
        let (m, r) = expected_ids(&body);
        messages.extend(m);
        refers.extend(r);
    }
    assert!(posted >= 10, "{posted} fixtures");
    assert!(
        messages.len() >= 3 && refers.len() >= 2,
        "{messages:?} {refers:?}"
    );
    let stored = all_records(&app).await;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in &stored {
        *counts
            .entry(r["key"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert!(counts.values().all(|&n| n == 1), "a record listed twice");
    assert_eq!(
        counts.keys().cloned().collect::<HashSet<_>>(),
        expected_keys
    );
    let stored_messages: HashSet<&str> = stored
        .iter()
        .filter(|r| r["record"] == "message")
        .filter_map(|r| r["provider_message_id"].as_str())
        .collect();
    for id in &messages {
        assert!(
            stored_messages.contains(id.as_str()),
            "message {id} not stored"
        );
    }
    let events: HashSet<&str> = stored
        .iter()
        .filter(|r| r["record"] == "event")
        .filter_map(|r| r["reply_to"].as_str())
        .collect();
    for id in &refers {
        assert!(events.contains(id.as_str()), "no event of {id}: {stored:?}");
    }
    // Nothing lost: follows, blocks, typing are kept as notifications.
    all_keys.sort();
    all_keys.dedup();
    let found = backend.store.find(&all_keys).await.unwrap();
    assert_eq!(found.len(), all_keys.len(), "every record kept");
    assert_eq!(
        backend.probe.drain().await.len(),
        expected_keys.len(),
        "each message and event enqueued once"
    );

    // X redelivers: nothing new, nothing enqueued.
    for (_, bytes) in fixtures("x") {
        assert_eq!(call(&app, x_post(&bytes, X_SECRET)).await.0, 200);
    }
    assert_eq!(all_records(&app).await.len(), stored.len());
    assert!(backend.probe.drain().await.is_empty());
}

async fn a_bad_signature_is_refused_and_nothing_is_kept_and_the_crc_is_answered(backend: Backend) {
    let app = backend.app(None);
    let body = br#"{"for_user_id":"100","direct_message_events":[{"type":"message_create","id":"77","created_timestamp":"1790000000000","message_create":{"target":{"recipient_id":"100"},"sender_id":"5","message_data":{"text":"hola"}}}]}"#;
    let good = independent_signature(X_SECRET, body);
    let mut tampered = body.to_vec();
    tampered[20] ^= 1;
    let with = |header: Option<&str>, bytes: &[u8]| {
        let mut request =
            http::Request::post("/webhooks/x").header("content-type", "application/json");
        if let Some(h) = header {
            request = request.header(channels::x::SIGNATURE_HEADER, h);
        }
        request
            .body(axum::body::Body::from(bytes.to_vec()))
            .unwrap()
    };
    let truncated = &good[..good.len() - 3];
    let prefixless = good.trim_start_matches("sha256=");
    let foreign = independent_signature("another-app", body);
    let hex_form = format!("sha256={}", "ab".repeat(32));
    for header in [
        Some(truncated),
        Some(prefixless),
        Some(&foreign),
        Some(&hex_form),
        None,
    ] {
        assert_eq!(call(&app, with(header, body)).await.0, 401, "{header:?}");
    }
    assert_eq!(call(&app, with(Some(&good), &tampered)).await.0, 401);
    assert!(!backend.kept(body).await, "nothing kept");
    assert!(!backend.kept(&tampered).await, "nothing kept");
    assert_eq!(backend.probe.count().await, 0);
    // During a rotation the previous secret signs too.
    let old = independent_signature(OLD_X_SECRET, body);
    assert_eq!(call(&app, with(Some(&old), body)).await.0, 200);
    assert!(backend.kept(body).await);

    // The CRC: signed with the current secret, computed here independently.
    let (status, answer) = get_json(&app, "/webhooks/x?crc_token=Zm9vYmFy%2Bchallenge").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"response_token": independent_signature(X_SECRET, b"Zm9vYmFy+challenge")})
    );
    for uri in ["/webhooks/x", "/webhooks/x?crc_token="] {
        let (status, _) = get_json(&app, uri).await;
        assert_eq!(status, 400, "{uri}");
    }
}

fn dm(id: &str, from: &str, to: &str, at_ms: i64, text: &str) -> Value {
    json!({"for_user_id": "100", "direct_message_events": [{
        "type": "message_create", "id": id, "created_timestamp": at_ms.to_string(),
        "message_create": {"target": {"recipient_id": to}, "sender_id": from,
                           "message_data": {"text": text}}}],
        "users": {"5550": {"id": "5550", "name": "Marta", "screen_name": "marta"},
                  "100": {"id": "100", "name": "Acme", "screen_name": "acme"}}})
}

fn tweet(
    id: &str,
    author: &str,
    replying_to: Option<(&str, &str)>,
    at_ms: i64,
    text: &str,
) -> Value {
    let mut t = json!({"id_str": id, "text": text, "timestamp_ms": at_ms.to_string(),
        "created_at": "Sat Dec 05 10:00:00 +0000 2026",
        "user": {"id_str": author, "name": if author == "100" { "Acme" } else { "Marta" }}});
    if let Some((status, user)) = replying_to {
        t["in_reply_to_status_id_str"] = json!(status);
        t["in_reply_to_user_id_str"] = json!(user);
    }
    json!({"for_user_id": "100", "tweet_create_events": [t]})
}

/// The conversations of the customer `provider_id`: (DMs, tweets), told apart by whether
/// their messages are public.
async fn conversations_of(app: &axum::Router, provider_id: &str) -> (Option<Value>, Option<Value>) {
    let (mut dms, mut tweets) = (None, None);
    for c in get_all(app, "/api/conversations", 50).await {
        if c["customer_provider_id"] != provider_id {
            continue;
        }
        let items = messages_of(app, c["id"].as_str().unwrap()).await;
        let public = items
            .iter()
            .any(|m| m["record"] == "message" && m["public"] == true);
        if public {
            tweets = Some(c)
        } else {
            dms = Some(c)
        }
    }
    (dms, tweets)
}

async fn messages_of(app: &axum::Router, conversation: &str) -> Vec<Value> {
    get_all(
        app,
        &format!("/api/conversations/{conversation}/messages"),
        50,
    )
    .await
}

async fn the_brands_own_dm_and_reply_tweet_answer_and_its_deleted_tweet_is_an_event(
    backend: Backend,
) {
    let app = backend.app(None);
    let prioritizer = backend.prioritizer();
    let t = (chrono::Utc::now().timestamp() - 900) * 1000;
    assert_eq!(
        post(
            &app,
            &dm("9001", "5550", "100", t, "my card was charged twice")
        )
        .await,
        200
    );
    assert_eq!(
        post(
            &app,
            &tweet("7001", "5550", None, t, "@acme still waiting for my refund")
        )
        .await,
        200
    );
    backend.prioritize_all(&prioritizer).await;
    let (dms, tweets) = conversations_of(&app, "5550").await;
    let (dms, tweets) = (
        dms.expect("the DM conversation"),
        tweets.expect("the tweet conversation"),
    );
    assert_ne!(dms["id"], tweets["id"], "public and private apart");
    assert_eq!(dms["status"], "waiting");
    assert_eq!(tweets["status"], "waiting");

    // The brand answers both from X's own app.
    assert_eq!(
        post(
            &app,
            &dm("9002", "100", "5550", t + 60_000, "sorry, checking")
        )
        .await,
        200
    );
    assert_eq!(
        post(
            &app,
            &tweet(
                "7002",
                "100",
                Some(("7001", "5550")),
                t + 120_000,
                "@marta DM us"
            )
        )
        .await,
        200
    );
    backend.prioritize_all(&prioritizer).await;
    let (dms, tweets) = conversations_of(&app, "5550").await;
    let (dms, tweets) = (dms.unwrap(), tweets.unwrap());
    assert_eq!(dms["status"], "answered", "{dms}");
    assert_eq!(dms["first_response_seconds"], 60);
    assert_eq!(tweets["status"], "answered", "{tweets}");
    assert_eq!(tweets["first_response_seconds"], 120);

    // The brand deletes its reply: the payload names only the brand; the event goes to the
    // conversation of the tweet.
    let delete = json!({"for_user_id": "100", "tweet_delete_events": [
        {"status": {"id": "7002", "user_id": "100"}, "timestamp_ms": (t + 180_000).to_string()}]});
    assert_eq!(post(&app, &delete).await, 200);
    let records = messages_of(&app, tweets["id"].as_str().unwrap()).await;
    assert!(
        records
            .iter()
            .any(|r| r["record"] == "event" && r["kind"] == "delete" && r["reply_to"] == "7002"),
        "the delete is an event of the reply, in its conversation: {records:?}"
    );
    let all = get_all(&app, "/api/conversations", 50).await;
    assert!(
        !all.iter().any(|c| c["customer_provider_id"] == "100"),
        "no conversation of the brand with itself"
    );
}

async fn reply(app: &axum::Router, id: &str, body: Value) -> (u16, Value) {
    let request = http::Request::post(format!("/api/conversations/{id}/reply"))
        .header("content-type", "application/json")
        .header("x-switchboard-agent", "ana")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap();
    let (status, bytes) = call(app, request).await;
    (
        status.as_u16(),
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn replies_go_out_as_dms_and_reply_tweets_through_the_x_api(backend: Backend) {
    let x = FakeX::start().await;
    let app = backend.app_replying(x.sender());
    let prioritizer = backend.prioritizer();
    let t = (chrono::Utc::now().timestamp() - 300) * 1000;
    assert_eq!(
        post(&app, &dm("9101", "5550", "100", t, "where is my order?")).await,
        200
    );
    assert_eq!(
        post(
            &app,
            &tweet(
                "7101",
                "5550",
                Some(("6000", "100")),
                t,
                "@acme no answer in days"
            )
        )
        .await,
        200
    );
    backend.prioritize_all(&prioritizer).await;
    let (dms, tweets) = conversations_of(&app, "5550").await;
    let (dms, tweets) = (dms.unwrap(), tweets.unwrap());

    // A DM conversation: a DM to the customer, with the brand's user token.
    let (status, sent) = reply(
        &app,
        dms["id"].as_str().unwrap(),
        json!({"text": "Checking now"}),
    )
    .await;
    assert_eq!(status, 201, "{sent}");
    let requests = x.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/2/dm_conversations/with/5550/messages");
    assert_eq!(requests[0].authorization, format!("Bearer {X_USER_TOKEN}"));
    assert_eq!(requests[0].body, json!({"text": "Checking now"}));
    let dm_id = sent["provider_message_id"].as_str().unwrap().to_owned();
    assert_eq!(sent["direction"], "outbound");

    // A tweet: a public reply under it.
    let (status, sent) = reply(
        &app,
        tweets["id"].as_str().unwrap(),
        json!({"text": "Sorry! Looking into it"}),
    )
    .await;
    assert_eq!(status, 201, "{sent}");
    assert_eq!(x.requests()[1].path, "/2/tweets");
    assert_eq!(
        x.requests()[1].body,
        json!({"text": "Sorry! Looking into it", "reply": {"in_reply_to_tweet_id": "7101"}})
    );
    assert_eq!(sent["public"], true);
    let tweet_id = sent["provider_message_id"].as_str().unwrap().to_owned();
    // …or a DM to its author.
    let (status, sent) = reply(
        &app,
        tweets["id"].as_str().unwrap(),
        json!({"text": "Could you DM us your order number?", "private": true}),
    )
    .await;
    assert_eq!(status, 201, "{sent}");
    assert_eq!(
        x.requests()[2].path,
        "/2/dm_conversations/with/5550/messages"
    );
    assert_ne!(sent["public"], true, "a DM: {sent}");
    backend.prioritize_all(&prioritizer).await;
    let (dms, tweets) = conversations_of(&app, "5550").await;
    assert_eq!(dms.unwrap()["status"], "answered");
    assert_eq!(tweets.unwrap()["status"], "answered");

    // X's webhook echoes both: the same records, nothing doubled.
    let before = all_records(&app).await.len();
    assert_eq!(
        post(&app, &dm(&dm_id, "100", "5550", t + 10_000, "Checking now")).await,
        200
    );
    assert_eq!(
        post(
            &app,
            &tweet(
                &tweet_id,
                "100",
                Some(("7101", "5550")),
                t + 20_000,
                "Sorry! Looking into it"
            )
        )
        .await,
        200
    );
    assert_eq!(
        all_records(&app).await.len(),
        before,
        "the echoes double nothing"
    );

    // Refused (the customer does not accept DMs): 502 with X's reason, nothing stored.
    x.then(403, json!({"title": "Forbidden", "detail": "You are not permitted to send a DM to this user.", "type": "about:blank", "status": 403}));
    let (status, error) = reply(
        &app,
        dms_id(&app).await.as_str(),
        json!({"text": "¿Sigue ahí?"}),
    )
    .await;
    assert_eq!(status, 502, "{error}");
    assert!(error.to_string().contains("not permitted"), "{error}");
    assert_eq!(all_records(&app).await.len(), before);
    // Templates and tags are not X's.
    let (status, _) = reply(
        &app,
        tweets_id(&app).await.as_str(),
        json!({"template": {"name": "t", "language": "es"}}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        x.requests().len(),
        4,
        "nothing sent for what is refused before sending"
    );
}

async fn dms_id(app: &axum::Router) -> String {
    conversations_of(app, "5550").await.0.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn tweets_id(app: &axum::Router) -> String {
    conversations_of(app, "5550").await.1.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The fixtures' vector (consumer secret `test`), checked over the bytes of the `.raw` file,
/// and by the independent HMAC.
#[test]
fn the_fixtures_signature_vector_is_accepted_and_another_secret_refused() {
    let dir = fixtures_dir().join("x");
    let meta: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("sigvector_non_event_json__autohook.meta.json")).unwrap(),
    )
    .unwrap();
    let raw = std::fs::read(dir.join(meta["raw_body_file"].as_str().unwrap())).unwrap();
    let header = meta["headers"][channels::x::SIGNATURE_HEADER]
        .as_str()
        .unwrap();
    let secret = meta["app_secret"].as_str().unwrap();
    assert_eq!(independent_signature(secret, &raw), header);
    let mut headers = http::HeaderMap::new();
    headers.insert(channels::x::SIGNATURE_HEADER, header.parse().unwrap());
    let verification = |secret: &str| {
        let mut secrets = channels::ChannelSecrets::new("test");
        secrets.set("consumer_secrets", [secret.to_owned()]);
        channels::module(Webhook::X).verification(&secrets).unwrap()
    };
    let now = chrono::Utc::now();
    assert!(
        verification(secret)
            .signature
            .verify(&headers, &raw, now)
            .is_ok()
    );
    assert!(
        verification("not-test")
            .signature
            .verify(&headers, &raw, now)
            .is_err()
    );
}
