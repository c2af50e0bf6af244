//! Telegram, on both backends: every fixture accepted with the secret token and stored once
//! (ids checked against the raw JSON, not the normalizer), its repeat a no-op; a wrong, old or
//! missing token refused with nothing kept; an edit an event of the original message; the
//! business owner's own message answering; replies through a fake Bot API on loopback (to the
//! chat, quoting, through the business connection), a refusal storing nothing. The fixtures'
//! secret-token vector is checked over its raw bytes.

use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};

use switchboard_core::channels;
use switchboard_core::ids::RecordKey;
use switchboard_core::model::{Record, Webhook};
use switchboard_tests::telegram::{BOT_TOKEN, FakeTelegram};
use switchboard_tests::{
    Backend, OLD_TELEGRAM_TOKEN, TELEGRAM_TOKEN, all_records, call, conversation_of, fixtures,
    fixtures_dir, telegram_post,
};

switchboard_tests::contract!(
    every_telegram_fixture_is_stored_once_and_its_repeat_is_a_no_op,
    a_wrong_or_missing_secret_token_is_refused_and_nothing_is_kept,
    an_edit_is_an_event_of_the_original_message,
    the_business_owners_own_message_answers_the_conversation,
    a_reply_is_sent_to_the_chat_through_the_bot_api_and_answers,
);

async fn post(app: &axum::Router, body: &Value) -> u16 {
    let bytes = serde_json::to_vec(body).unwrap();
    call(app, telegram_post(&bytes, TELEGRAM_TOKEN))
        .await
        .0
        .as_u16()
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The fields of a Telegram service message: no one waits on those.
const SERVICE: [&str; 6] = [
    "new_chat_members",
    "left_chat_member",
    "pinned_message",
    "new_chat_title",
    "group_chat_created",
    "chat_shared",
];

/// What the raw JSON says must be stored: the id of each message (`<chat>:<message_id>`) and
/// of each pressed button, and the message each edit refers to. Read from the JSON directly.
fn expected_ids(body: &Value) -> (Vec<String>, Vec<String>) {
    let (mut messages, mut edits) = (Vec::new(), Vec::new());
    for kind in ["message", "business_message", "channel_post"] {
        let m = &body[kind];
        if m.is_object() && !SERVICE.iter().any(|s| m.get(*s).is_some()) {
            messages.push(format!(
                "{}:{}",
                text(&m["chat"]["id"]).unwrap(),
                text(&m["message_id"]).unwrap()
            ));
        }
    }
    if let Some(id) = text(&body["callback_query"]["id"]) {
        messages.push(format!("callback:{id}"));
    }
    for kind in [
        "edited_message",
        "edited_business_message",
        "edited_channel_post",
    ] {
        let m = &body[kind];
        if m.is_object() {
            edits.push(format!(
                "{}:{}",
                text(&m["chat"]["id"]).unwrap(),
                text(&m["message_id"]).unwrap()
            ));
        }
    }
    (messages, edits)
}

async fn every_telegram_fixture_is_stored_once_and_its_repeat_is_a_no_op(backend: Backend) {
    let app = backend.app(None);
    let mut expected_keys: HashSet<String> = HashSet::new();
    let mut all_keys: Vec<RecordKey> = Vec::new();
    let (mut messages, mut edits) = (HashSet::new(), HashSet::new());
    let mut posted = 0;
    for (name, bytes) in fixtures("telegram") {
        let (status, answer) = call(&app, telegram_post(&bytes, TELEGRAM_TOKEN)).await;
        assert_eq!(status, 200, "{name}: {answer:?}");
        posted += 1;
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        for record in channels::normalize(Webhook::Telegram, &body, chrono::Utc::now()) {
            all_keys.push(record.key());
            if !matches!(record, Record::Notification(_)) {
                expected_keys.insert(record.key().to_string());
            }
        }
        let (m, e) = expected_ids(&body);
        messages.extend(m);
        edits.extend(e);
    }
    assert!(posted >= 45, "{posted} fixtures");
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
    let edited: HashSet<&str> = stored
        .iter()
        .filter(|r| r["record"] == "event" && r["kind"] == "edit")
        .filter_map(|r| r["reply_to"].as_str())
        .collect();
    for id in &edits {
        assert!(edited.contains(id.as_str()), "no edit of {id}");
    }
    // Nothing lost: the notifications (inline queries, members, polls, …) are kept too.
    all_keys.sort();
    all_keys.dedup();
    let found = backend.store.find(&all_keys).await.unwrap();
    assert_eq!(found.len(), all_keys.len(), "every record kept");
    assert_eq!(
        backend.probe.drain().await.len(),
        expected_keys.len(),
        "each message and event enqueued once"
    );

    // Telegram redelivers: nothing new, nothing enqueued.
    for (_, bytes) in fixtures("telegram") {
        assert_eq!(
            call(&app, telegram_post(&bytes, TELEGRAM_TOKEN)).await.0,
            200
        );
    }
    assert_eq!(all_records(&app).await.len(), stored.len());
    assert!(backend.probe.drain().await.is_empty());
}

async fn a_wrong_or_missing_secret_token_is_refused_and_nothing_is_kept(backend: Backend) {
    let app = backend.app(None);
    let body = br#"{"update_id": 5, "message": {"message_id": 1, "chat": {"id": 42, "type": "private"}, "from": {"id": 42}, "date": 1790000000, "text": "hola"}}"#;
    for token in ["wrong-token", "test-telegram-secret_toke", ""] {
        assert_eq!(
            call(&app, telegram_post(body, token)).await.0,
            401,
            "{token:?}"
        );
    }
    let unsigned = http::Request::post("/webhooks/telegram")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_vec()))
        .unwrap();
    assert_eq!(call(&app, unsigned).await.0, 401);
    assert!(!backend.kept(body).await, "nothing kept");
    assert_eq!(backend.probe.count().await, 0);
    // The previous token still works during a rotation; there is no handshake.
    assert_eq!(
        call(&app, telegram_post(body, OLD_TELEGRAM_TOKEN)).await.0,
        200
    );
    assert!(backend.kept(body).await);
    let (status, _) = switchboard_tests::get_json(&app, "/webhooks/telegram").await;
    assert_eq!(status, 400);
}

fn private(update: i64, chat: i64, from: i64, message_id: i64, date: i64, text: &str) -> Value {
    json!({"update_id": update, "message": {"message_id": message_id,
        "from": {"id": from, "is_bot": false, "first_name": "Lucía"},
        "chat": {"id": chat, "first_name": "Lucía", "type": "private"},
        "date": date, "text": text}})
}

async fn an_edit_is_an_event_of_the_original_message(backend: Backend) {
    let app = backend.app(None);
    let t = 1_790_000_000;
    assert_eq!(
        post(&app, &private(1, 700, 700, 10, t, "mi pedido no llego")).await,
        200
    );
    let mut edit = private(2, 700, 700, 10, t, "mi pedido no llegó");
    edit["edited_message"] = edit["message"].take();
    edit.as_object_mut().unwrap().remove("message");
    edit["edited_message"]["edit_date"] = json!(t + 30);
    assert_eq!(post(&app, &edit).await, 200);
    let records = all_records(&app).await;
    let messages: Vec<&Value> = records
        .iter()
        .filter(|r| r["record"] == "message")
        .collect();
    assert_eq!(
        messages.len(),
        1,
        "the edit is not a second message: {records:?}"
    );
    assert_eq!(messages[0]["provider_message_id"], "700:10");
    let events: Vec<&Value> = records.iter().filter(|r| r["record"] == "event").collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["kind"], "edit");
    assert_eq!(events[0]["reply_to"], "700:10");
}

async fn the_business_owners_own_message_answers_the_conversation(backend: Backend) {
    let app = backend.app(None);
    let prioritizer = backend.prioritizer();
    let t = chrono::Utc::now().timestamp() - 600;
    let mut asked = private(1, 800, 800, 20, t, "¿tienen talla M?");
    asked["business_message"] = asked["message"].take();
    asked.as_object_mut().unwrap().remove("message");
    asked["business_message"]["business_connection_id"] = json!("BC-9");
    assert_eq!(post(&app, &asked).await, 200);
    backend.prioritize_all(&prioritizer).await;
    assert_eq!(conversation_of(&app, "800").await["status"], "waiting");
    // The owner answers from the Telegram app: same chat, another sender.
    let mut answered = asked.clone();
    answered["update_id"] = json!(2);
    answered["business_message"]["message_id"] = json!(21);
    answered["business_message"]["from"] = json!({"id": 55, "first_name": "Tienda"});
    answered["business_message"]["date"] = json!(t + 120);
    answered["business_message"]["text"] = json!("Sí, la tenemos");
    assert_eq!(post(&app, &answered).await, 200);
    backend.prioritize_all(&prioritizer).await;
    let c = conversation_of(&app, "800").await;
    assert_eq!(c["status"], "answered", "{c}");
    assert_eq!(c["first_response_seconds"], 120);
    assert_eq!(c["account_id"], "BC-9");
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

async fn a_reply_is_sent_to_the_chat_through_the_bot_api_and_answers(backend: Backend) {
    let bot = FakeTelegram::start().await;
    let app = backend.app_replying(bot.sender());
    let prioritizer = backend.prioritizer();
    let t = chrono::Utc::now().timestamp() - 300;

    // A private chat: to the chat, quoting what reply_to names.
    assert_eq!(
        post(&app, &private(1, 900, 900, 30, t, "no funciona la app")).await,
        200
    );
    backend.prioritize_all(&prioritizer).await;
    let c = conversation_of(&app, "900").await;
    let id = c["id"].as_str().unwrap();
    let (status, sent) = reply(
        &app,
        id,
        json!({"text": "¿Qué versión tiene?", "reply_to": "900:30"}),
    )
    .await;
    assert_eq!(status, 201, "{sent}");
    assert_eq!(
        sent["provider_message_id"], "900:9001",
        "the id the webhook would give it"
    );
    let requests = bot.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].token, BOT_TOKEN);
    assert_eq!(requests[0].method, "sendMessage");
    assert_eq!(
        requests[0].body,
        json!({"chat_id": 900, "text": "¿Qué versión tiene?",
               "reply_parameters": {"message_id": 30, "allow_sending_without_reply": true}})
    );
    assert_eq!(conversation_of(&app, "900").await["status"], "answered");

    // A group: to the group, quoting the member, through the business connection when there
    // is one.
    let group = json!({"update_id": 3, "message": {"message_id": 77,
        "from": {"id": 901, "is_bot": false, "first_name": "Raúl"},
        "chat": {"id": -100_555, "title": "Clientes", "type": "supergroup"},
        "date": t, "text": "¿alguien más sin servicio?"}});
    assert_eq!(post(&app, &group).await, 200);
    backend.prioritize_all(&prioritizer).await;
    let g = conversation_of(&app, "901").await;
    let (status, sent) = reply(
        &app,
        g["id"].as_str().unwrap(),
        json!({"text": "Estamos en ello"}),
    )
    .await;
    assert_eq!(status, 201, "{sent}");
    assert_eq!(
        bot.requests()[1].body,
        json!({"chat_id": -100_555, "text": "Estamos en ello",
               "reply_parameters": {"message_id": 77, "allow_sending_without_reply": true}})
    );
    let mut business = private(4, 902, 902, 5, t, "hola");
    business["message"]["business_connection_id"] = json!("BC-2");
    assert_eq!(post(&app, &business).await, 200);
    backend.prioritize_all(&prioritizer).await;
    let b = conversation_of(&app, "902").await;
    let (status, _) = reply(&app, b["id"].as_str().unwrap(), json!({"text": "¡Hola!"})).await;
    assert_eq!(status, 201);
    assert_eq!(bot.requests()[2].body["business_connection_id"], "BC-2");

    // Refused (the customer blocked the bot): 502 with Telegram's code, nothing stored.
    bot.then(
        403,
        json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}),
    );
    let before = all_records(&app).await.len();
    let (status, error) = reply(&app, id, json!({"text": "¿Sigue ahí?"})).await;
    assert_eq!(status, 502, "{error}");
    assert_eq!(error["provider"]["code"], 403, "{error}");
    assert_eq!(all_records(&app).await.len(), before);
    // A template is not Telegram's.
    let (status, _) = reply(
        &app,
        id,
        json!({"template": {"name": "t", "language": "es"}}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        bot.requests().len(),
        4,
        "no request for what is refused before sending"
    );
}

/// The fixtures' vector: the header carries the token given to setWebhook; the body is not
/// signed. Checked over the bytes of the `.raw` file.
#[test]
fn the_fixtures_secret_token_vector_is_accepted_and_another_token_refused() {
    let dir = fixtures_dir().join("telegram");
    let meta: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("message_text_secret_token__nutgram.meta.json")).unwrap(),
    )
    .unwrap();
    let raw = std::fs::read(dir.join(meta["raw_body_file"].as_str().unwrap())).unwrap();
    let mut headers = http::HeaderMap::new();
    for (name, value) in meta["headers"].as_object().unwrap() {
        headers.insert(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.as_str().unwrap().parse().unwrap(),
        );
    }
    let verification = |token: &str| {
        let mut secrets = channels::ChannelSecrets::new("test");
        secrets.set("secret_tokens", [token.to_owned()]);
        channels::module(Webhook::Telegram)
            .verification(&secrets)
            .unwrap()
    };
    let now = chrono::Utc::now();
    let configured = meta["app_secret"].as_str().unwrap();
    assert!(
        verification(configured)
            .signature
            .verify(&headers, &raw, now)
            .is_ok()
    );
    let other = meta["negative_case"]["configured_secret"].as_str().unwrap();
    assert!(
        verification(other)
            .signature
            .verify(&headers, &raw, now)
            .is_err()
    );
}
