//! Messenger, Instagram and the Facebook page feed, on both backends: every fixture accepted and
//! stored once, echoes answering conversations, comment versions, page replies in the
//! commenter's conversation, events on unknown messages kept and flagged.

use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};

use switchboard_core::channels;
use switchboard_core::ids::RecordKey;
use switchboard_core::model::{Record, Webhook};
use switchboard_tests::conversation_of;
use switchboard_tests::{Backend, all_records, call, fixtures, get_all, get_json, signed_to};

switchboard_tests::contract!(
    every_meta_fixture_is_accepted_and_each_id_is_stored_once,
    an_echo_after_a_customer_message_answers_the_conversation_at_the_echo_time,
    an_echo_alone_creates_no_customer_message,
    a_comment_edited_then_removed_is_one_comment_with_three_versions,
    a_page_reply_to_a_comment_lands_in_the_commenters_conversation,
    an_event_on_a_message_never_seen_is_kept_and_flagged,
);

/// The fixture folders and the webhook each is posted to.
const FOLDERS: [(&str, Webhook); 3] = [
    ("messenger", Webhook::Facebook),
    ("facebook_feed", Webhook::Facebook),
    ("instagram", Webhook::Instagram),
];

/// Ids of messages, postbacks and new comments, straight from the JSON (not via the normalizer).
fn provider_ids(body: &Value) -> Vec<String> {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let entries: Vec<&Value> = match body.get("entry") {
        Some(Value::Array(e)) => e.iter().collect(),
        _ => vec![body],
    };
    let mut ids = Vec::new();
    for entry in entries {
        for list in ["messaging", "standby"] {
            for event in entry[list].as_array().into_iter().flatten() {
                let message = &event["message"];
                if message["is_deleted"] != true {
                    ids.extend(text(&message["mid"]));
                }
                ids.extend(text(&event["postback"]["mid"]));
            }
        }
        for change in entry["changes"].as_array().into_iter().flatten() {
            let value = &change["value"];
            match change["field"].as_str() {
                Some("feed") if value["item"] == "comment" && value["verb"] == "add" => {
                    ids.extend(text(&value["comment_id"]))
                }
                Some("comments" | "live_comments") => ids.extend(text(&value["id"])),
                _ => {}
            }
        }
    }
    ids
}

async fn every_meta_fixture_is_accepted_and_each_id_is_stored_once(backend: Backend) {
    let app = backend.app(None);
    let mut expected: HashSet<String> = HashSet::new();
    let mut all_keys: Vec<RecordKey> = Vec::new();
    let mut ids = Vec::new();
    let mut posted = 0;
    for (folder, webhook) in FOLDERS {
        for (name, body) in fixtures(folder) {
            if name.ends_with(".raw") {
                continue;
            }
            let (status, answer) = call(&app, signed_to(webhook, body.clone())).await;
            assert_eq!(status, 200, "{folder}/{name}: {answer:?}");
            posted += 1;
            let json: Value = serde_json::from_slice(&body).unwrap();
            for record in channels::normalize(webhook, &json, chrono::Utc::now()) {
                all_keys.push(record.key());
                if !matches!(record, Record::Notification(_)) {
                    expected.insert(record.key().to_string());
                }
            }
            ids.extend(
                provider_ids(&json)
                    .into_iter()
                    .map(|id| (format!("{folder}/{name}"), id)),
            );
        }
    }
    assert!(posted >= 85, "{posted} fixtures");
    let stored = all_records(&app).await;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut provider: HashSet<String> = HashSet::new();
    for r in &stored {
        *counts
            .entry(r["key"].as_str().unwrap().to_owned())
            .or_default() += 1;
        provider.insert(r["provider_message_id"].as_str().unwrap().to_owned());
    }
    assert!(counts.values().all(|&n| n == 1), "a record listed twice");
    assert_eq!(counts.keys().cloned().collect::<HashSet<_>>(), expected);
    for (fixture, id) in &ids {
        assert!(provider.contains(id), "{fixture}: id {id} not stored");
    }
    // Nothing lost: notifications too (multi_entry_*, handover, unknown fields) are stored.
    all_keys.sort();
    all_keys.dedup();
    let found = backend.store.find(&all_keys).await.unwrap();
    let missing: Vec<_> = all_keys
        .iter()
        .filter(|k| !found.contains_key(*k))
        .collect();
    assert!(missing.is_empty(), "{} records not stored", missing.len());
    let queued = backend.probe.drain().await;
    assert_eq!(
        queued.len(),
        expected.len(),
        "each message and event enqueued once"
    );

    // Posting everything again stores and enqueues nothing new.
    for (folder, webhook) in FOLDERS {
        for (name, body) in fixtures(folder) {
            if !name.ends_with(".raw") {
                assert_eq!(call(&app, signed_to(webhook, body)).await.0, 200);
            }
        }
    }
    assert_eq!(all_records(&app).await.len(), stored.len());
    assert!(backend.probe.drain().await.is_empty());
}

fn messenger(events: Vec<Value>) -> Vec<u8> {
    json!({"object": "page", "entry": [{"id": "PAGE", "time": 1_700_000_000_000_i64, "messaging": events}]})
        .to_string()
        .into_bytes()
}

fn text_event(from: &str, to: &str, mid: &str, ms: i64, echo: bool) -> Value {
    let mut message = json!({"mid": mid, "text": format!("text of {mid}")});
    if echo {
        message["is_echo"] = json!(true);
        message["app_id"] = json!(1);
    }
    json!({"sender": {"id": from}, "recipient": {"id": to}, "timestamp": ms, "message": message})
}

async fn an_echo_after_a_customer_message_answers_the_conversation_at_the_echo_time(
    backend: Backend,
) {
    let app = backend.app(None);
    let customer = messenger(vec![text_event(
        "PSID1",
        "PAGE",
        "m.in",
        1_700_000_000_000,
        false,
    )]);
    assert_eq!(
        call(&app, signed_to(Webhook::Facebook, customer)).await.0,
        200
    );
    let waiting = conversation_of(&app, "PSID1").await;
    assert_eq!(waiting["waiting_since"], "2023-11-14T22:13:20Z");
    assert_eq!(waiting["answered_at"], Value::Null);

    let echo = messenger(vec![text_event(
        "PAGE",
        "PSID1",
        "m.out",
        1_700_000_754_000,
        true,
    )]);
    assert_eq!(call(&app, signed_to(Webhook::Facebook, echo)).await.0, 200);
    let answered = conversation_of(&app, "PSID1").await;
    assert_eq!(
        answered["id"], waiting["id"],
        "the echo belongs to the customer's conversation"
    );
    assert_eq!(answered["waiting_since"], Value::Null);
    assert_eq!(answered["answered_at"], "2023-11-14T22:25:54Z");
    assert_eq!(answered["first_response_seconds"], 754);

    // The same on WhatsApp, with the business app's echo.
    let wa = |list: &str, item: Value| {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "messages",
          "value": {"metadata": {"display_phone_number": "15550001111", "phone_number_id": "PN"},
                    "contacts": [{"wa_id": "5511999"}], list: [item]}}]}]})
        .to_string()
    };
    let inbound = wa(
        "messages",
        json!({"from": "5511999", "id": "wamid.in", "timestamp": "1700000000", "type": "text", "text": {"body": "hola"}}),
    );
    let echo = wa(
        "message_echoes",
        json!({"from": "15550001111", "to": "5511999", "id": "wamid.out", "timestamp": "1700000060", "type": "text", "text": {"body": "hola!"}}),
    );
    assert_eq!(
        call(&app, signed_to(Webhook::Whatsapp, inbound)).await.0,
        200
    );
    assert_eq!(call(&app, signed_to(Webhook::Whatsapp, echo)).await.0, 200);
    let whatsapp = conversation_of(&app, "5511999").await;
    assert_eq!(whatsapp["answered_at"], "2023-11-14T22:14:20Z");
    assert_eq!(whatsapp["first_response_seconds"], 60);
}

async fn an_echo_alone_creates_no_customer_message(backend: Backend) {
    let app = backend.app(None);
    let (_, body) = fixtures("messenger")
        .into_iter()
        .find(|(n, _)| n.starts_with("echo_text"))
        .unwrap();
    assert_eq!(call(&app, signed_to(Webhook::Facebook, body)).await.0, 200);
    let records = all_records(&app).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["direction"], "outbound");
    let conversation = conversation_of(&app, "987654321432").await;
    assert_eq!(conversation["last_inbound_at"], Value::Null);
    assert_eq!(conversation["waiting_since"], Value::Null);
    assert_eq!(conversation["answered_at"], Value::Null);
}

fn feed(value: Value) -> Vec<u8> {
    json!({"object": "page", "entry": [{"id": "PAGE", "time": 1_700_000_000, "changes": [{"field": "feed", "value": value}]}]})
        .to_string()
        .into_bytes()
}

async fn a_comment_edited_then_removed_is_one_comment_with_three_versions(backend: Backend) {
    let app = backend.app(None);
    let base = |verb: &str, time: i64, message: &str| {
        json!({"item": "comment", "verb": verb, "comment_id": "POST_C1", "post_id": "PAGE_POST",
               "parent_id": "PAGE_POST", "from": {"id": "FAN", "name": "A Fan"},
               "created_time": time, "message": message})
    };
    for delivery in [
        feed(base("add", 1_700_000_000, "my card was charged twice")),
        feed(base(
            "edited",
            1_700_000_100,
            "my card was charged twice!!!",
        )),
        feed(base("remove", 1_700_000_200, "")),
    ] {
        assert_eq!(
            call(&app, signed_to(Webhook::Facebook, delivery)).await.0,
            200
        );
    }
    let records = all_records(&app).await;
    let comment: Vec<&Value> = records
        .iter()
        .filter(|r| r["record"] == "message")
        .collect();
    assert_eq!(comment.len(), 1, "{records:?}");
    assert_eq!(comment[0]["provider_message_id"], "POST_C1");
    assert_eq!(comment[0]["kind"], "comment");
    assert_eq!(comment[0]["public"], true);
    assert_eq!(comment[0]["thread_id"], "PAGE_POST");
    let versions: Vec<&str> = records
        .iter()
        .filter(|r| r["record"] == "event" && r["reply_to"] == "POST_C1")
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["edit", "delete"]);
    assert!(records.iter().all(|r| r.get("refers_to_unknown").is_none()));
}

async fn a_page_reply_to_a_comment_lands_in_the_commenters_conversation(backend: Backend) {
    let app = backend.app(None);
    let customer = feed(
        json!({"item": "comment", "verb": "add", "comment_id": "C_FAN", "post_id": "P1",
        "parent_id": "P1", "from": {"id": "FAN2", "name": "Fan"}, "created_time": 1_700_000_000,
        "message": "where is my order?"}),
    );
    let reply = feed(
        json!({"item": "comment", "verb": "add", "comment_id": "C_PAGE", "post_id": "P1",
        "parent_id": "C_FAN", "from": {"id": "PAGE", "name": "The Brand"}, "created_time": 1_700_000_300,
        "message": "We sent you a DM"}),
    );
    assert_eq!(
        call(&app, signed_to(Webhook::Facebook, customer)).await.0,
        200
    );
    assert_eq!(call(&app, signed_to(Webhook::Facebook, reply)).await.0, 200);
    let conversations = get_all(&app, "/api/conversations", 50).await;
    assert_eq!(
        conversations.len(),
        1,
        "no conversation of the page with itself: {conversations:?}"
    );
    let c = &conversations[0];
    assert_eq!(c["customer_provider_id"], "FAN2");
    assert_eq!(c["answered_at"], "2023-11-14T22:18:20Z");
    let (_, page) = get_json(
        &app,
        &format!("/api/conversations/{}/messages", c["id"].as_str().unwrap()),
    )
    .await;
    let directions: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["direction"].as_str().unwrap())
        .collect();
    assert_eq!(directions, ["inbound", "outbound"]);
}

async fn an_event_on_a_message_never_seen_is_kept_and_flagged(backend: Backend) {
    let app = backend.app(None);
    let reaction = |mid: &str| {
        json!({"sender": {"id": "PSID9"}, "recipient": {"id": "PAGE"}, "timestamp": 1_700_000_100_000_i64,
               "reaction": {"mid": mid, "action": "react", "emoji": "😡", "reaction": "angry"}})
    };
    let body = messenger(vec![
        text_event("PSID9", "PAGE", "m.known", 1_700_000_000_000, false),
        reaction("m.known"),
        reaction("m.lost"),
    ]);
    assert_eq!(call(&app, signed_to(Webhook::Facebook, body)).await.0, 200);
    let records = all_records(&app).await;
    let flags: BTreeMap<&str, bool> = records
        .iter()
        .filter(|r| r["record"] == "event")
        .map(|r| {
            (
                r["reply_to"].as_str().unwrap(),
                r.get("refers_to_unknown") == Some(&json!(true)),
            )
        })
        .collect();
    assert_eq!(
        flags,
        BTreeMap::from([("m.known", false), ("m.lost", true)])
    );
    // A later reaction to the message stored earlier finds it in the store.
    let later = messenger(vec![
        json!({"sender": {"id": "PSID9"}, "recipient": {"id": "PAGE"},
        "timestamp": 1_700_000_200_000_i64, "reaction": {"mid": "m.known", "action": "unreact"}}),
    ]);
    assert_eq!(call(&app, signed_to(Webhook::Facebook, later)).await.0, 200);
    let records = all_records(&app).await;
    let unreact = records
        .iter()
        .find(|r| r["kind"] == "reaction.removed")
        .expect("unreact");
    assert!(unreact.get("refers_to_unknown").is_none());
}
