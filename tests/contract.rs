//! The port contract suite: the same tests against the embedded backend (SQLite on disk) and the
//! AWS backend (DynamoDB and SQS on a moto server on loopback).

use bytes::Bytes;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use switchboard_core::channels::meta::whatsapp;
use switchboard_core::ids::{ConversationId, DeliveryId};
use switchboard_core::intake::MAX_BODY_BYTES;
use switchboard_core::model::{Channel, Record};
use switchboard_core::ports::{IntakeQueue, MessageStore, PageRequest};
use switchboard_tests::{
    Backend, FlakyArchive, FlakyQueue, all_records, call, get_all, get_json, post, signature,
    signed, whatsapp_fixtures,
};

switchboard_tests::contract!(
    every_whatsapp_fixture_is_accepted_and_each_id_is_stored_once,
    a_repeated_delivery_stores_and_enqueues_nothing_new,
    a_duplicate_inside_one_delivery_is_stored_once,
    a_queue_failure_answers_5xx_and_the_retry_enqueues_exactly_once,
    nothing_is_enqueued_before_the_raw_delivery_is_kept,
    a_record_stored_but_not_confirmed_is_enqueued_by_the_next_attempt,
    a_redelivery_of_an_unconfirmed_record_with_another_body_counts_as_first_stored,
    a_six_megabyte_delivery_is_kept_whole,
    a_signed_body_that_is_not_json_is_quarantined_and_answered_200,
    a_bad_signature_is_refused_and_nothing_is_kept,
    conversations_and_messages_are_paginated_in_order,
    a_cursor_from_elsewhere_is_a_400,
    conversation_times_cover_records_arriving_out_of_order,
    unknown_conversation_and_delivery_are_404,
    an_idempotency_key_is_claimed_once_and_remembers_its_result,
    an_identitys_activity_is_noted_replaced_and_forgotten,
    a_delivery_too_large_for_one_transaction_is_enqueued_once_each,
    a_record_stored_unconfirmed_is_enqueued_once_by_the_intake_as_deployed,
    a_settlement_writes_its_reminders_activity_and_conversation,
);

/// Ids of `messages[]` and `message_echoes[]` items, as text, straight from the JSON.
fn message_ids(body: &Value) -> Vec<(String, String)> {
    let mut ids = Vec::new();
    for entry in body["entry"].as_array().into_iter().flatten() {
        for change in entry["changes"].as_array().into_iter().flatten() {
            let value = &change["value"];
            let account = match &value["metadata"]["phone_number_id"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            for list in ["messages", "message_echoes"] {
                for item in value[list].as_array().into_iter().flatten() {
                    if let Some(id) = item["id"].as_str() {
                        ids.push((account.clone(), id.to_owned()));
                    }
                }
            }
            for status in value["statuses"].as_array().into_iter().flatten() {
                if let (Some(id), Some(s)) = (status["id"].as_str(), status["status"].as_str()) {
                    ids.push((account.clone(), format!("{id}:{s}")));
                }
            }
        }
    }
    ids
}

async fn every_whatsapp_fixture_is_accepted_and_each_id_is_stored_once(backend: Backend) {
    let app = backend.app(None);
    let fixtures = whatsapp_fixtures();
    let mut expected_keys = HashSet::new();
    let mut expected_ids = HashSet::new();
    for (name, body) in &fixtures {
        let (status, answer) = call(&app, signed(body.clone())).await;
        assert_eq!(status, 200, "{name}: {answer:?}");
        let json: Value = serde_json::from_slice(body).unwrap();
        for record in whatsapp::normalize(json.clone(), chrono::Utc::now()) {
            if !matches!(record, Record::Notification(_)) {
                expected_keys.insert(record.key().to_string());
            }
        }
        expected_ids.extend(message_ids(&json));
    }
    let stored = all_records(&app).await;
    let mut seen_keys: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen_ids: BTreeMap<String, usize> = BTreeMap::new();
    for record in &stored {
        *seen_keys
            .entry(record["key"].as_str().unwrap().to_owned())
            .or_default() += 1;
        *seen_ids
            .entry(record["provider_message_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    assert!(seen_keys.values().all(|&n| n == 1), "a record listed twice");
    let seen: HashSet<String> = seen_keys.keys().cloned().collect();
    assert_eq!(
        seen, expected_keys,
        "stored records differ from the normalized ones"
    );
    // Every message id of every fixture is among the stored records. Placeholder ids shared by
    // several fixtures of the same account ("wamid.ID") are one message, stored once.
    for (_, id) in &expected_ids {
        assert!(seen_ids.contains_key(id), "message id {id} not stored");
    }
    let queued = backend.probe.drain().await;
    let queued_keys: Vec<String> = queued.iter().map(|e| e.record_key.to_string()).collect();
    let unique: HashSet<&String> = queued_keys.iter().collect();
    assert_eq!(
        unique.len(),
        queued_keys.len(),
        "an entry was enqueued twice"
    );
    assert_eq!(
        unique.into_iter().cloned().collect::<HashSet<_>>(),
        expected_keys,
        "every message and event is enqueued once"
    );

    // Posting every delivery again stores and enqueues nothing new.
    for (name, body) in &fixtures {
        let (status, _) = call(&app, signed(body.clone())).await;
        assert_eq!(status, 200, "{name} again");
    }
    assert_eq!(all_records(&app).await.len(), stored.len());
    assert!(backend.probe.drain().await.is_empty());
}

fn text_delivery(messages: &[(&str, &str, i64)]) -> Bytes {
    let items: Vec<Value> = messages
        .iter()
        .map(|(from, id, ts)| {
            json!({"from": from, "id": id, "timestamp": ts.to_string(), "type": "text",
                   "text": {"body": format!("message {id}")}})
        })
        .collect();
    Bytes::from(
        json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [
            {"field": "messages", "value": {"messaging_product": "whatsapp",
             "metadata": {"display_phone_number": "15550001111", "phone_number_id": "PN1"},
             "messages": items}}]}]})
        .to_string(),
    )
}

async fn a_repeated_delivery_stores_and_enqueues_nothing_new(backend: Backend) {
    let app = backend.app(None);
    let body = text_delivery(&[
        ("111", "wamid.r1", 1_700_000_000),
        ("111", "wamid.r2", 1_700_000_001),
    ]);
    for _ in 0..3 {
        assert_eq!(call(&app, signed(body.clone())).await.0, 200);
    }
    assert_eq!(all_records(&app).await.len(), 2);
    assert_eq!(backend.probe.drain().await.len(), 2);
}

async fn a_duplicate_inside_one_delivery_is_stored_once(backend: Backend) {
    let app = backend.app(None);
    let (_, body) = whatsapp_fixtures()
        .into_iter()
        .find(|(name, _)| name.starts_with("batch_two_changes_same_wamid"))
        .expect("fixture");
    assert_eq!(call(&app, signed(body)).await.0, 200);
    let records = all_records(&app).await;
    assert_eq!(records.len(), 1, "{records:?}");
    // The first version wins.
    assert_eq!(records[0]["text"], "MESSAGE_BODY");
    assert_eq!(backend.probe.drain().await.len(), 1);
}

async fn a_queue_failure_answers_5xx_and_the_retry_enqueues_exactly_once(backend: Backend) {
    let flaky = Arc::new(FlakyQueue::new(backend.queue.clone(), 1));
    let app = backend.app(Some(flaky.clone() as Arc<dyn IntakeQueue>));
    let body = text_delivery(&[("222", "wamid.f1", 1_700_000_000)]);
    let (status, answer) = call(&app, signed(body.clone())).await;
    assert_eq!(status, 500);
    assert!(
        !String::from_utf8_lossy(&answer).contains("injected"),
        "no internals in the body"
    );
    // The store succeeded: the message is there, the queue is empty.
    assert_eq!(all_records(&app).await.len(), 1);
    assert!(backend.probe.drain().await.is_empty());
    // The provider retries: now the message is enqueued, once.
    assert_eq!(call(&app, signed(body.clone())).await.0, 200);
    let queued = backend.probe.drain().await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].kind, "text");
    // And a further retry enqueues nothing.
    assert_eq!(call(&app, signed(body)).await.0, 200);
    assert!(backend.probe.drain().await.is_empty());
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 2);
}

async fn nothing_is_enqueued_before_the_raw_delivery_is_kept(backend: Backend) {
    let flaky = Arc::new(FlakyArchive::new(backend.store.clone(), 1));
    let app = backend.app_with(Some(flaky as Arc<dyn MessageStore>), None);
    let body = text_delivery(&[("666", "wamid.k1", 1_700_000_000)]);
    assert_eq!(call(&app, signed(body.clone())).await.0, 500);
    assert!(!backend.kept(&body).await);
    assert!(
        backend.probe.drain().await.is_empty(),
        "nothing enqueued without the raw bytes"
    );
    assert_eq!(call(&app, signed(body.clone())).await.0, 200);
    assert!(backend.kept(&body).await);
    assert_eq!(backend.probe.drain().await.len(), 1);
}

async fn a_record_stored_but_not_confirmed_is_enqueued_by_the_next_attempt(backend: Backend) {
    let json: Value = serde_json::from_slice(&text_delivery(&[
        ("333", "wamid.c1", 1_700_000_000),
        ("333", "wamid.c2", 1_700_000_005),
    ]))
    .unwrap();
    let records = whatsapp::normalize(json.clone(), chrono::Utc::now());
    let first = backend.store.record(&records).await.unwrap();
    assert_eq!(first.len(), 2, "new records are returned to enqueue");
    let again = backend.store.record(&records).await.unwrap();
    assert_eq!(again, first, "not yet confirmed: returned again");
    backend
        .store
        .mark_enqueued(&[first[0].record_key.clone()])
        .await
        .unwrap();
    let third = backend.store.record(&records).await.unwrap();
    assert_eq!(third, vec![first[1].clone()]);
    backend
        .store
        .mark_enqueued(&[first[1].record_key.clone()])
        .await
        .unwrap();
    assert!(backend.store.record(&records).await.unwrap().is_empty());
}

/// The rule of `switchboard_core::recording`: a record stored but never confirmed enqueued,
/// delivered again with other bytes (the provider resent it with another timestamp and text),
/// counts as it was first stored, on every backend: the same conversation state, the stored
/// version kept, its entry returned again.
async fn a_redelivery_of_an_unconfirmed_record_with_another_body_counts_as_first_stored(
    backend: Backend,
) {
    let delivery = |ts: i64, text: &str| -> Vec<Record> {
        let json = json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA",
            "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "PN1"},
            "contacts": [{"wa_id": "444", "profile": {"name": "Ana"}}],
            "messages": [{"from": "444", "id": "wamid.u1", "timestamp": ts.to_string(),
                          "type": "text", "text": {"body": text}}]}}]}]});
        whatsapp::normalize(json.clone(), chrono::Utc::now())
    };
    let first = delivery(1_700_000_000, "first version");
    let entries = backend.store.record(&first).await.unwrap();
    assert_eq!(entries.len(), 1);
    let conversation_id = entries[0].conversation_id.clone();
    let before = backend
        .conversations
        .conversation(&conversation_id)
        .await
        .unwrap()
        .expect("the conversation");

    let resent = delivery(1_700_000_900, "resent version");
    assert_eq!(resent[0].key(), first[0].key(), "the same provider id");
    let again = backend.store.record(&resent).await.unwrap();
    assert_eq!(again, entries, "still not confirmed: its entry again");
    let after = backend
        .conversations
        .conversation(&conversation_id)
        .await
        .unwrap()
        .expect("the conversation");
    assert_eq!(
        after, before,
        "the conversation reflects the first version only"
    );
    let t0 = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    assert_eq!((after.first_at, after.last_at), (t0, t0));
    assert_eq!(after.waiting_since, Some(t0));
    assert_eq!(after.last_inbound_at, Some(t0));
    let stored = backend.store.find(&[first[0].key()]).await.unwrap();
    assert_eq!(
        stored.get(&first[0].key()),
        Some(&first[0]),
        "the first version stays"
    );
}

async fn a_six_megabyte_delivery_is_kept_whole(backend: Backend) {
    let app = backend.app(None);
    // A JSON body of exactly the limit, most of it text that does not compress well.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let envelope = text_delivery(&[("444", "wamid.big", 1_700_000_000)]);
    let envelope = String::from_utf8(envelope.to_vec()).unwrap();
    let filler_len = MAX_BODY_BYTES - envelope.len() + "message wamid.big".len();
    let filler: String = (0..filler_len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            char::from(b'a' + (seed % 26) as u8)
        })
        .collect();
    let body = envelope.replace("message wamid.big", &filler);
    assert_eq!(body.len(), MAX_BODY_BYTES);
    let (status, answer) = call(&app, signed(body.clone())).await;
    assert_eq!(status, 200, "{answer:?}");
    let id = DeliveryId::of(body.as_bytes());
    let kept = backend.reader.delivery(&id).await.unwrap().expect("kept");
    assert!(kept.body == body.as_bytes(), "kept byte for byte");
    let (status, raw) = call(
        &app,
        http::Request::get(format!("/api/deliveries/{id}"))
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(raw.len(), MAX_BODY_BYTES);
    let records = all_records(&app).await;
    assert_eq!(records.len(), 1);
    assert!(!records[0]["text"].as_str().unwrap().is_empty());

    // One byte more is refused, and nothing of it is kept.
    let over = format!("{body} ");
    let (status, _) = call(&app, signed(over.clone())).await;
    assert_eq!(status, 413);
    assert!(!backend.kept(over.as_bytes()).await);
}

async fn a_signed_body_that_is_not_json_is_quarantined_and_answered_200(backend: Backend) {
    let app = backend.app(None);
    let body = Bytes::from_static(b"\x00not json {\xff");
    let (status, answer) = call(&app, signed(body.clone())).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&answer).unwrap()["status"],
        "quarantined"
    );
    let (status, page) = get_json(&app, "/api/quarantine").await;
    assert_eq!(status, 200);
    let id = DeliveryId::of(&body);
    assert_eq!(page["items"], json!([{"id": id.as_str()}]));
    let kept = backend.reader.delivery(&id).await.unwrap().expect("kept");
    assert!(kept.quarantined);
    assert_eq!(kept.body, body);
    assert!(all_records(&app).await.is_empty());
    assert!(backend.probe.drain().await.is_empty());
}

async fn a_bad_signature_is_refused_and_nothing_is_kept(backend: Backend) {
    let app = backend.app(None);
    let body = text_delivery(&[("555", "wamid.s1", 1_700_000_000)]);
    let good = signature(&body);
    let wrong = switchboard_core::channels::meta::sign("not-the-secret", &body);
    for sig in [
        None,
        Some("sha256="),
        Some(&good[..20]),
        Some(wrong.as_str()),
        Some(&good[7..]),
    ] {
        let (status, answer) = call(&app, post(body.clone(), sig)).await;
        assert_eq!(status, 401, "{sig:?}");
        assert_eq!(
            serde_json::from_slice::<Value>(&answer).unwrap()["error"],
            "invalid signature"
        );
    }
    assert!(!backend.kept(&body).await);
    assert!(all_records(&app).await.is_empty());
    assert!(backend.probe.drain().await.is_empty());
}

async fn conversations_and_messages_are_paginated_in_order(backend: Backend) {
    let app = backend.app(None);
    // Seven customers, one message each, and one customer with seven messages, sent in an
    // order different from their provider times.
    let mut messages: Vec<(String, String, i64)> = (0..7)
        .map(|i| (format!("c{i}"), format!("wamid.p{i}"), 1_700_000_000 + i))
        .collect();
    let times = [5, 1, 6, 0, 3, 2, 4];
    for (i, t) in times.iter().enumerate() {
        messages.push(("talker".into(), format!("wamid.t{i}"), 1_700_001_000 + t));
    }
    let refs: Vec<(&str, &str, i64)> = messages
        .iter()
        .map(|(a, b, c)| (a.as_str(), b.as_str(), *c))
        .collect();
    assert_eq!(call(&app, signed(text_delivery(&refs))).await.0, 200);

    let conversations = get_all(&app, "/api/conversations", 3).await;
    assert_eq!(conversations.len(), 8);
    let last: Vec<&str> = conversations
        .iter()
        .map(|c| c["last_at"].as_str().unwrap())
        .collect();
    let mut sorted = last.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(last, sorted, "most recently active first");
    for c in &conversations {
        assert_eq!(c["channel"], "whatsapp");
        assert!(c["customer_id"].as_str().unwrap().starts_with("cu_"));
        assert!(c["id"].as_str().unwrap().starts_with("cv_"));
    }
    let by_channel = get_all(&app, "/api/conversations?channel=whatsapp", 5).await;
    assert_eq!(by_channel, conversations);
    assert!(
        get_all(&app, "/api/conversations?channel=messenger", 5)
            .await
            .is_empty()
    );
    let (status, error) = get_json(&app, "/api/conversations?channel=fax").await;
    assert_eq!(status, 400);
    assert!(error["error"].as_str().unwrap().contains("fax"));
    let (status, _) = get_json(&app, "/api/conversations?limit=0").await;
    assert_eq!(status, 400);

    let talker = &conversations[0];
    assert_eq!(talker["customer_provider_id"], "talker");
    let id = talker["id"].as_str().unwrap();
    let timeline = get_all(&app, &format!("/api/conversations/{id}/messages"), 3).await;
    let ids: Vec<&str> = timeline
        .iter()
        .map(|m| m["provider_message_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "wamid.t3", "wamid.t1", "wamid.t5", "wamid.t4", "wamid.t6", "wamid.t0", "wamid.t2"
        ]
    );
    let first = &timeline[0];
    assert_eq!(first["channel"], "whatsapp");
    assert_eq!(first["kind"], "text");
    assert_eq!(first["direction"], "inbound");
    assert_eq!(first["sent_at"], "2023-11-14T22:30:00Z");
    assert_eq!(first["text"], "message wamid.t3");
}

async fn a_cursor_from_elsewhere_is_a_400(backend: Backend) {
    let app = backend.app(None);
    let refs = [
        ("x1", "wamid.x1", 1),
        ("x2", "wamid.x2", 2),
        ("x2", "wamid.x3", 3),
    ];
    assert_eq!(call(&app, signed(text_delivery(&refs))).await.0, 200);
    let (_, page) = get_json(&app, "/api/conversations?limit=1").await;
    let cursor = page["next"].as_str().expect("a next page").to_owned();
    for bad in ["garbage", "eyJ4IjoxfQ", "%00", &"A".repeat(300)] {
        let (status, body) = get_json(&app, &format!("/api/conversations?cursor={bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    // A conversations cursor is not a cursor of a conversation's messages.
    let (_, page) = get_json(&app, "/api/conversations?limit=1").await;
    let conversation = page["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = get_json(
        &app,
        &format!("/api/conversations/{conversation}/messages?cursor={cursor}"),
    )
    .await;
    assert_eq!(status, 400);
    let reader_result = backend
        .reader
        .timeline(
            &ConversationId::from_stored(conversation),
            PageRequest {
                cursor: Some("not-base64-!".into()),
                limit: 5,
            },
        )
        .await;
    assert!(reader_result.is_err());
}

async fn conversation_times_cover_records_arriving_out_of_order(backend: Backend) {
    let app = backend.app(None);
    for (id, ts) in [
        ("wamid.o2", 1_700_000_200),
        ("wamid.o1", 1_700_000_100),
        ("wamid.o3", 1_700_000_300),
    ] {
        assert_eq!(
            call(&app, signed(text_delivery(&[("ooo", id, ts)])))
                .await
                .0,
            200
        );
    }
    let conversations = get_all(&app, "/api/conversations", 10).await;
    assert_eq!(conversations.len(), 1);
    let c = &conversations[0];
    assert_eq!(c["first_at"], "2023-11-14T22:15:00Z");
    assert_eq!(c["last_at"], "2023-11-14T22:18:20Z");
    let (status, one) = get_json(
        &app,
        &format!("/api/conversations/{}", c["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(&one, c);
}

async fn unknown_conversation_and_delivery_are_404(backend: Backend) {
    let app = backend.app(None);
    for uri in [
        "/api/conversations/cv_nope",
        "/api/conversations/cv_nope/messages",
        "/api/deliveries/abc",
        "/webhooks/fax",
    ] {
        let (status, body) = get_json(&app, uri).await;
        assert_eq!(status, 404, "{uri}: {body}");
    }
    let _ = Channel::ALL;
}

async fn an_idempotency_key_is_claimed_once_and_remembers_its_result(backend: Backend) {
    use switchboard_core::ports::{Claim, StoredRecord};
    let claims = backend.claims.clone();
    let key = format!(
        "cv_test/{}-{}",
        backend.name,
        chrono::Utc::now().timestamp_nanos_opt().unwrap()
    );
    let until = chrono::Utc::now() + chrono::Duration::hours(24);
    // Eight claims of one key: exactly one wins, the others see it in progress. On the
    // embedded store they race; moto applies DynamoDB's conditions without serializing
    // concurrent requests (two racing conditional puts can both succeed there, never on
    // DynamoDB), so on AWS the claims come one after the other and the condition is what the
    // test holds.
    let mut outcomes = Vec::new();
    if backend.name == "aws" {
        for _ in 0..8 {
            outcomes.push(claims.claim(&key, "fp-1", until).await.unwrap());
        }
    } else {
        let tries: Vec<_> = (0..8)
            .map(|_| {
                let (claims, key) = (claims.clone(), key.clone());
                tokio::spawn(async move { claims.claim(&key, "fp-1", until).await.unwrap() })
            })
            .collect();
        for t in tries {
            outcomes.push(t.await.unwrap());
        }
    }
    let mut won = 0;
    for outcome in outcomes {
        match outcome {
            Claim::New => won += 1,
            Claim::InProgress { fingerprint } => assert_eq!(fingerprint, "fp-1"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(won, 1);

    // Done: every later claim answers the result, and a release does not free it.
    let record = whatsapp::normalize(
        serde_json::from_slice(&switchboard_tests::payloads::whatsapp_text(
            "PN",
            "5511",
            "wamid.IDEM",
            1_700_000_000,
            "hola",
        ))
        .unwrap(),
        chrono::Utc::now(),
    )
    .into_iter()
    .next()
    .unwrap();
    let stored = StoredRecord {
        key: record.key(),
        stored_at: chrono::Utc::now(),
        record,
    };
    claims.complete(&key, &stored).await.unwrap();
    claims.release(&key).await.unwrap();
    match claims.claim(&key, "fp-2", until).await.unwrap() {
        Claim::Done {
            fingerprint,
            record,
        } => {
            assert_eq!(fingerprint, "fp-1");
            assert_eq!(*record, stored);
        }
        other => panic!("{other:?}"),
    }

    // Released without a result: free again. Expired: free too.
    let other = format!("{key}-released");
    assert_eq!(claims.claim(&other, "fp", until).await.unwrap(), Claim::New);
    claims.release(&other).await.unwrap();
    assert_eq!(claims.claim(&other, "fp", until).await.unwrap(), Claim::New);
    let expired = format!("{key}-expired");
    let past = chrono::Utc::now() - chrono::Duration::seconds(5);
    assert_eq!(
        claims.claim(&expired, "fp", past).await.unwrap(),
        Claim::New
    );
    assert_eq!(
        claims.claim(&expired, "fp", until).await.unwrap(),
        Claim::New
    );
}

/// The prioritizer's history counters (`CustomerHistory::activity` and `note_activity`): a
/// note adds or replaces one conversation's time and forgets others, each identity's notes are
/// its own, a repeated note changes nothing, and an identity with none answers nothing.
async fn an_identitys_activity_is_noted_replaced_and_forgotten(backend: Backend) {
    use switchboard_core::history::{Activity, ActivityNote};
    use switchboard_core::ids::CustomerId;
    let (a, b) = (
        CustomerId::from_stored("wa_a"),
        CustomerId::from_stored("wa_b"),
    );
    let conv = |n: u32| ConversationId::from_stored(format!("cv_{n}"));
    let at = |s: i64| chrono::DateTime::from_timestamp(1_795_000_000 + s, 0).unwrap();
    let note = |c: u32, s: i64, forget: Vec<ConversationId>, first: bool| ActivityNote {
        conversation: conv(c),
        at: at(s),
        forget,
        first,
    };
    let read = |ids: Vec<CustomerId>| {
        let history = backend.history.clone();
        async move {
            let mut found: Vec<(String, String, i64)> = history
                .activity(&ids)
                .await
                .expect("activity")
                .into_iter()
                .map(
                    |Activity {
                         identity,
                         conversation,
                         at,
                     }| {
                        (
                            identity.to_string(),
                            conversation.to_string(),
                            at.timestamp(),
                        )
                    },
                )
                .collect();
            found.sort();
            found
        }
    };
    assert!(read(vec![a.clone(), b.clone()]).await.is_empty());

    let h = &backend.history;
    h.note_activity(&a, &note(1, 0, vec![], true))
        .await
        .unwrap();
    h.note_activity(&a, &note(2, 10, vec![], false))
        .await
        .unwrap();
    // A note believed first when it is not (two raced) still lands in the map.
    h.note_activity(&a, &note(3, 20, vec![], true))
        .await
        .unwrap();
    // Believed not first when it is: made all the same.
    h.note_activity(&b, &note(9, 5, vec![], false))
        .await
        .unwrap();
    let t0 = 1_795_000_000;
    assert_eq!(
        read(vec![a.clone(), b.clone()]).await,
        [
            ("wa_a".into(), "cv_1".into(), t0),
            ("wa_a".into(), "cv_2".into(), t0 + 10),
            ("wa_a".into(), "cv_3".into(), t0 + 20),
            ("wa_b".into(), "cv_9".into(), t0 + 5),
        ]
    );
    let replace = note(1, 100, vec![conv(2), conv(1), conv(7)], false);
    h.note_activity(&a, &replace).await.unwrap();
    h.note_activity(&a, &replace).await.unwrap();
    assert_eq!(
        read(vec![a.clone()]).await,
        [
            ("wa_a".into(), "cv_1".into(), t0 + 100),
            ("wa_a".into(), "cv_3".into(), t0 + 20),
        ],
        "cv_2 forgotten, cv_1 kept though named in forget, the unknown cv_7 ignored"
    );
}

/// Sixty messages from sixty customers: more than one DynamoDB transaction holds with their
/// customers, conversations and outbox items, so the outbox writes the records first and
/// confirms them after. Each reaches the queue once; a repeat adds nothing.
async fn a_delivery_too_large_for_one_transaction_is_enqueued_once_each(backend: Backend) {
    let app = backend.app(None);
    let messages: Vec<Value> = (0..60)
        .map(|i| {
            json!({"from": format!("55118{i:07}"), "id": format!("wamid.large.{i}"),
                   "timestamp": (1_700_000_000 + i).to_string(), "type": "text",
                   "text": {"body": format!("message {i}")}})
        })
        .collect();
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [
        {"field": "messages", "value": {"metadata": {"display_phone_number": "15550001111",
         "phone_number_id": "PNL"}, "messages": messages}}]}]})
    .to_string()
    .into_bytes();
    assert_eq!(call(&app, signed(body.clone())).await.0, 200);
    let queued = backend.probe.drain().await;
    let keys: HashSet<String> = queued.iter().map(|e| e.record_key.to_string()).collect();
    assert_eq!((queued.len(), keys.len()), (60, 60));
    assert_eq!(call(&app, signed(body)).await.0, 200);
    assert!(backend.probe.drain().await.is_empty());
}

/// What an interrupted write leaves (records stored, their enqueue never confirmed, nothing
/// queued) is finished by the provider's retry through the intake as deployed: each record
/// enqueued once, and a further retry adds nothing.
async fn a_record_stored_unconfirmed_is_enqueued_once_by_the_intake_as_deployed(backend: Backend) {
    let app = backend.app(None);
    let body = text_delivery(&[
        ("777", "wamid.i1", 1_700_000_000),
        ("778", "wamid.i2", 1_700_000_005),
    ]);
    let records = whatsapp::normalize(serde_json::from_slice(&body).unwrap(), chrono::Utc::now());
    assert_eq!(backend.store.record(&records).await.unwrap().len(), 2);
    assert!(backend.probe.drain().await.is_empty());
    assert_eq!(call(&app, signed(body.clone())).await.0, 200);
    let queued = backend.probe.drain().await;
    let keys: HashSet<String> = queued.iter().map(|e| e.record_key.to_string()).collect();
    let expected: HashSet<String> = records.iter().map(|r| r.key().to_string()).collect();
    assert_eq!((queued.len(), keys), (2, expected));
    assert_eq!(call(&app, signed(body)).await.0, 200);
    assert!(backend.probe.drain().await.is_empty());
}

/// `Settle`: a scored message's reminders created and cancelled, its activity noted and its
/// conversation changed, as the four ports' writes would; repeating it changes nothing; a
/// conversation that does not exist answers `None` with the rest written all the same.
async fn a_settlement_writes_its_reminders_activity_and_conversation(backend: Backend) {
    use switchboard_core::history::ActivityNote;
    use switchboard_core::metrics::Tally;
    use switchboard_core::model::Conversation;
    use switchboard_core::ports::Settlement;
    use switchboard_core::sla::{Reminder, WindowClosing};

    let app = backend.app(None);
    let body = text_delivery(&[("5511", "wamid.settle1", 1_790_000_000)]);
    assert_eq!(call(&app, signed(body)).await.0, 200);
    let listed = get_all(&app, "/api/conversations", 10).await;
    let id = ConversationId::from_stored(listed[0]["id"].as_str().unwrap());
    let stored = backend
        .conversations
        .conversation(&id)
        .await
        .unwrap()
        .unwrap();
    let far = |days: i64| chrono::Utc::now() + chrono::Duration::days(days);
    let window = |id: &ConversationId, days: i64| {
        Reminder::of_window(
            id,
            far(days),
            &WindowClosing {
                warn_at: far(days + 1),
                closes_at: far(days + 2),
            },
        )
    };
    let (old, new) = (window(&id, 10), window(&id, 20));
    backend
        .timers
        .schedule(std::slice::from_ref(&old))
        .await
        .unwrap();
    let note = ActivityNote {
        conversation: id.clone(),
        at: far(0),
        forget: Vec::new(),
        first: true,
    };
    let name = new.name.clone();
    let change = |c: &mut Conversation, _: &mut Tally| {
        let moved = c.window_reminder.as_deref() != Some(name.as_str());
        c.window_reminder = Some(name.clone());
        moved
    };
    for _ in 0..2 {
        let written = backend
            .settle
            .settle(Settlement {
                schedule: std::slice::from_ref(&new),
                cancel: std::slice::from_ref(&old.name),
                activity: Some((&stored.customer_id, &note)),
                conversation: &id,
                change: &change,
            })
            .await
            .unwrap()
            .expect("the conversation exists");
        assert_eq!(written.window_reminder.as_deref(), Some(new.name.as_str()));
    }
    let pending = backend.pending.names().await;
    assert!(pending.contains(&new.name), "{pending:?}");
    assert!(!pending.contains(&old.name), "{pending:?}");
    let read = backend
        .conversations
        .conversation(&id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.window_reminder.as_deref(), Some(new.name.as_str()));
    let activity = backend
        .history
        .activity(std::slice::from_ref(&stored.customer_id))
        .await
        .unwrap();
    assert_eq!(activity.len(), 1);
    assert_eq!(activity[0].conversation, id);

    let missing = ConversationId::from_stored("cv_missing");
    let elsewhere = window(&missing, 30);
    let answer = backend
        .settle
        .settle(Settlement {
            schedule: std::slice::from_ref(&elsewhere),
            cancel: &[],
            activity: None,
            conversation: &missing,
            change: &change,
        })
        .await
        .unwrap();
    assert!(answer.is_none());
    assert!(backend.pending.names().await.contains(&elsewhere.name));
}
