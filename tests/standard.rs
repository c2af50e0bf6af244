//! Standard Webhooks sources (web chat, forms, apps) on both backends: a signed delivery of the
//! inbound schema is stored once and its repeat is a no-op; a forged, stale or unsigned one is
//! 401 and nothing is kept; the source's own answer (`message.sent`) answers the conversation;
//! a reply through switchboard calls no provider and is published as `message.sent` with the
//! source's customer, for the source to deliver. Every body posted here is checked against
//! `docs/inbound.schema.json`; one outside it is kept as a notification, not dropped.

use serde_json::{Value, json};

use switchboard_core::events;
use switchboard_tests::graph::FakeGraph;
use switchboard_tests::{
    Backend, OLD_STANDARD_SECRET, STANDARD_SECRET, call, conversation_of, get_all, get_json,
    standard_post,
};

switchboard_tests::contract!(
    a_signed_delivery_is_stored_once_and_its_repeat_is_a_no_op,
    a_forged_stale_or_unsigned_delivery_is_refused_and_nothing_is_kept,
    a_body_outside_the_schema_is_kept_and_makes_no_message,
    the_sources_answer_ends_the_wait_and_a_reply_is_published_for_the_source,
);

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn message(kind: &str, customer: &str, id: &str, at: i64, text: &str) -> Vec<u8> {
    let sent_at = chrono::DateTime::from_timestamp(at, 0)
        .unwrap()
        .to_rfc3339();
    let body = json!({"type": kind, "source": "webchat", "account": "acme-site",
           "customer": {"id": customer, "name": "Ana"},
           "message": {"id": id, "text": text, "sent_at": sent_at}});
    let schema = switchboard_tests::inbound_schema();
    assert!(
        schema.is_valid(&body),
        "the documented schema holds our own sample"
    );
    body.to_string().into_bytes()
}

async fn a_body_outside_the_schema_is_kept_and_makes_no_message(backend: Backend) {
    let app = backend.app(None);
    let schema = switchboard_tests::inbound_schema();
    let typing = json!({"type": "typing.started", "source": "webchat", "account": "acme-site",
                        "customer": {"id": "v-90"}});
    let no_customer = json!({"type": "message.received", "account": "acme-site",
                             "message": {"id": "m-90", "text": "hola"}});
    let not_even_an_object = json!(["message.received"]);
    for (n, body) in [typing, no_customer, not_even_an_object].iter().enumerate() {
        assert!(!schema.is_valid(body), "{body} is outside the schema");
        let bytes = body.to_string().into_bytes();
        let id = format!("msg_odd_{n}");
        assert_eq!(post(&app, &bytes, &id, STANDARD_SECRET, now()).await, 200);
        assert!(backend.kept(&bytes).await, "{body} kept");
    }
    let (_, listed) = get_json(&app, "/api/conversations?channel=web").await;
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(0),
        "{listed}"
    );
    assert_eq!(backend.probe.count().await, 0, "nothing to prioritize");
}

async fn post(app: &axum::Router, body: &[u8], id: &str, secret: &str, at: i64) -> u16 {
    call(app, standard_post(body, id, secret, at))
        .await
        .0
        .as_u16()
}

async fn a_signed_delivery_is_stored_once_and_its_repeat_is_a_no_op(backend: Backend) {
    let app = backend.app(None);
    let body = message(
        "message.received",
        "v-81",
        "m-1",
        now() - 30,
        "Hola, ¿tienen envíos?",
    );
    assert_eq!(
        post(&app, &body, "msg_1", STANDARD_SECRET, now()).await,
        200
    );
    // The source retries the same delivery, then sends it again under another delivery id,
    // signed with the previous secret (a rotation): nothing new.
    assert_eq!(
        post(&app, &body, "msg_1", STANDARD_SECRET, now()).await,
        200
    );
    assert_eq!(
        post(&app, &body, "msg_2", OLD_STANDARD_SECRET, now()).await,
        200
    );
    let c = conversation_of(&app, "webchat:v-81").await;
    assert_eq!(c["channel"], "web");
    assert_eq!(c["account_id"], "acme-site");
    assert_eq!(c["customer_name"], "Ana");
    let records = get_all(
        &app,
        &format!("/api/conversations/{}/messages", c["id"].as_str().unwrap()),
        50,
    )
    .await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["provider_message_id"], "m-1");
    assert_eq!(records[0]["text"], "Hola, ¿tienen envíos?");
    assert_eq!(backend.probe.drain().await.len(), 1, "enqueued once");
    let (status, conversations) = get_json(&app, "/api/conversations?channel=web").await;
    assert_eq!(status, 200);
    assert_eq!(conversations["items"].as_array().unwrap().len(), 1);
    // Standard Webhooks has no handshake.
    let (status, _) = get_json(&app, "/webhooks/standard").await;
    assert_eq!(status, 400);
}

async fn a_forged_stale_or_unsigned_delivery_is_refused_and_nothing_is_kept(backend: Backend) {
    let app = backend.app(None);
    let forged = message("message.received", "v-82", "m-forged", now(), "x");
    let stranger = "whsec_c29tZW9uZS1lbHNlcy1zaWduaW5nLWtleQ==";
    assert_eq!(post(&app, &forged, "msg_f", stranger, now()).await, 401);
    let stale = message("message.received", "v-82", "m-stale", now(), "x");
    assert_eq!(
        post(&app, &stale, "msg_s", STANDARD_SECRET, now() - 600).await,
        401
    );
    let unsigned = message("message.received", "v-82", "m-unsigned", now(), "x");
    let request = http::Request::post("/webhooks/standard")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(unsigned.clone()))
        .unwrap();
    assert_eq!(call(&app, request).await.0, 401);
    for body in [&forged, &stale, &unsigned] {
        assert!(!backend.kept(body).await, "nothing kept");
    }
    assert_eq!(backend.probe.count().await, 0);
}

async fn the_sources_answer_ends_the_wait_and_a_reply_is_published_for_the_source(
    backend: Backend,
) {
    let graph = FakeGraph::start().await;
    let app = backend.app_replying(graph.sender());
    let prioritizer = backend.prioritizer();
    let t = now();
    let asked = message(
        "message.received",
        "v-83",
        "m-a1",
        t - 120,
        "¿Dónde está mi pedido?",
    );
    assert_eq!(post(&app, &asked, "msg_a1", STANDARD_SECRET, t).await, 200);
    backend.prioritize_all(&prioritizer).await;
    let c = conversation_of(&app, "webchat:v-83").await;
    assert_eq!(c["status"], "waiting", "{c}");
    // An agent answers in the source system: it answers the conversation, like an echo.
    let answered = message("message.sent", "v-83", "m-a2", t - 60, "Sale hoy");
    assert_eq!(
        post(&app, &answered, "msg_a2", STANDARD_SECRET, t).await,
        200
    );
    backend.prioritize_all(&prioritizer).await;
    let c = conversation_of(&app, "webchat:v-83").await;
    assert_eq!(c["status"], "answered", "{c}");
    assert_eq!(c["first_response_seconds"], 60);

    // The customer writes again; an agent replies through switchboard.
    let again = message(
        "message.received",
        "v-83",
        "m-a3",
        t - 10,
        "¿Y el número de guía?",
    );
    assert_eq!(post(&app, &again, "msg_a3", STANDARD_SECRET, t).await, 200);
    backend.prioritize_all(&prioritizer).await;
    let id = c["id"].as_str().unwrap();
    let request = http::Request::post(format!("/api/conversations/{id}/reply"))
        .header("content-type", "application/json")
        .header("x-switchboard-agent", "ana")
        .body(axum::body::Body::from(
            json!({"text": "Es 1Z999", "reply_to": "m-a3"}).to_string(),
        ))
        .unwrap();
    let (status, body) = call(&app, request).await;
    let sent: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, 201, "{sent}");
    assert!(
        sent["provider_message_id"]
            .as_str()
            .unwrap()
            .starts_with("sb_")
    );
    assert!(graph.requests().is_empty(), "no provider is called");
    let c = conversation_of(&app, "webchat:v-83").await;
    assert_eq!(c["status"], "answered", "{c}");
    let published: Vec<Value> = backend
        .published
        .of_type(events::MESSAGE_SENT)
        .await
        .into_iter()
        .filter(|e| e["detail"]["conversation_id"] == id)
        .collect();
    assert_eq!(published.len(), 1, "{published:?}");
    let d = &published[0]["detail"];
    assert_eq!(d["recipient"], "webchat:v-83");
    assert_eq!(d["text"], "Es 1Z999");
    assert_eq!(d["reply_to"], "m-a3");
    assert_eq!(d["channel"], "web");
    assert_eq!(d["sent_by"], "ana");
}

/// The README shows the widget back end the end-to-end test runs (`console/e2e/widget.e2e.mjs`)
/// exactly as it is in `docs/examples/`.
#[test]
fn the_readme_shows_the_tested_widget_back_end() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let example = std::fs::read_to_string(root.join("docs/examples/widget-backend.mjs")).unwrap();
    assert!(
        readme.contains(&format!("```js\n{example}```\n")),
        "README.md must quote docs/examples/widget-backend.mjs verbatim"
    );
}
