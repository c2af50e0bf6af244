//! Replies through switchboard on both backends, against a fake Graph API on loopback: each
//! kind of conversation sends exactly its request with its token, stores the outbound message
//! under the id Graph returned and ends the wait; the echo or the statuses that follow double
//! nothing. One idempotency key sends once. A refused send stores nothing and leaves the wait
//! running; outside Meta's window nothing is sent at all.

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

use switchboard_core::events;
use switchboard_core::model::Webhook;
use switchboard_tests::graph::{FakeGraph, GraphRequest, Scripted, token_of};
use switchboard_tests::payloads::{
    instagram_comment, instagram_text, messenger_text, page_comment, whatsapp_status, whatsapp_text,
};
use switchboard_tests::{Backend, get_all, get_json};
use switchboard_tests::{conversation_of, deliver as post};

switchboard_tests::contract!(
    a_whatsapp_reply_quotes_the_message_ends_the_wait_and_shows_its_statuses,
    messenger_and_instagram_replies_reach_the_customer_and_their_echoes_double_nothing,
    a_comment_is_answered_in_public_or_in_private_and_the_echoes_double_nothing,
    one_idempotency_key_sends_once_and_refuses_another_body,
    a_refused_send_stores_nothing_and_the_customer_still_waits,
    outside_the_window_nothing_is_sent_unless_a_template_or_the_tag_allows_it,
    a_send_that_times_out_answers_504_and_is_not_sent_again_with_its_key,
);

/// `POST …/reply` as `ana`, with `key` as the idempotency key: status, JSON, and whether the
/// answer says it is a replay.
async fn reply(
    app: &axum::Router,
    id: &Value,
    body: Value,
    key: Option<&str>,
) -> (u16, Value, bool) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let uri = format!("/api/conversations/{}/reply", id.as_str().unwrap());
    let mut request = http::Request::post(uri)
        .header("content-type", "application/json")
        .header("x-switchboard-agent", "ana");
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = app
        .clone()
        .oneshot(
            request
                .body(axum::body::Body::from(body.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status().as_u16();
    let replayed = response.headers().get("idempotent-replayed").is_some();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        replayed,
    )
}

async fn conversation(app: &axum::Router, id: &Value) -> Value {
    let (status, c) = get_json(app, &format!("/api/conversations/{}", id.as_str().unwrap())).await;
    assert_eq!(status, 200, "{c}");
    c
}

async fn outbound_messages(app: &axum::Router, id: &Value) -> Vec<Value> {
    let mut all = get_all(
        app,
        &format!("/api/conversations/{}/messages", id.as_str().unwrap()),
        50,
    )
    .await;
    all.retain(|r| r["record"] == "message" && r["direction"] == "outbound");
    all
}

/// The distinct events of `kind` about conversation `id` (an event published again after a
/// retry has the same id).
async fn events_of(backend: &Backend, kind: &str, id: &Value) -> Vec<Value> {
    let mut seen = BTreeSet::new();
    let mut all = backend.published.of_type(kind).await;
    all.retain(|e| {
        e["detail"]["conversation_id"] == *id
            && seen.insert(
                e["detail"]["event_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
    });
    all
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A customer message on `webhook`, prioritized: the conversation waits.
async fn waiting(
    backend: &Backend,
    app: &axum::Router,
    webhook: Webhook,
    body: Vec<u8>,
    who: &str,
) -> Value {
    post(app, webhook, body).await;
    backend.prioritize_all(&backend.prioritizer()).await;
    let c = conversation_of(app, who).await;
    assert_eq!(c["status"], "waiting", "{c}");
    c
}

/// The reply answered the wait: answered, one `conversation.answered` via `reply`, one
/// `message.sent` by ana.
async fn assert_answered_by_reply(backend: &Backend, app: &axum::Router, id: &Value) {
    let c = conversation(app, id).await;
    assert_eq!(c["status"], "answered", "{c}");
    assert!(c["waiting_since"].is_null(), "{c}");
    assert!(c["last_response_seconds"].as_i64().unwrap() >= 0, "{c}");
    let answered = events_of(backend, events::ANSWERED, id).await;
    assert_eq!(answered.len(), 1, "{answered:?}");
    assert_eq!(answered[0]["detail"]["via"], "reply");
    let sent = events_of(backend, events::MESSAGE_SENT, id).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["detail"]["sent_by"], "ana");
}

async fn a_whatsapp_reply_quotes_the_message_ends_the_wait_and_shows_its_statuses(
    backend: Backend,
) {
    let fake = FakeGraph::start().await;
    let app = backend.app_replying(fake.sender());
    let customer = "5215551230001";
    let c = waiting(
        &backend,
        &app,
        Webhook::Whatsapp,
        whatsapp_text(
            "PN",
            customer,
            "wamid.IN1",
            now_s() - 60,
            "no me llegó el pedido",
        ),
        customer,
    )
    .await;
    let (status, sent, _) = reply(
        &app,
        &c["id"],
        json!({"text": "Ya lo revisamos", "reply_to": "wamid.IN1"}),
        None,
    )
    .await;
    assert_eq!(status, 201, "{sent}");
    assert_eq!(
        fake.requests(),
        [GraphRequest {
            path: "PN/messages".into(),
            token: Some(token_of(Webhook::Whatsapp)),
            body: json!({"messaging_product": "whatsapp", "recipient_type": "individual",
                "to": customer, "type": "text",
                "text": {"preview_url": false, "body": "Ya lo revisamos"},
                "context": {"message_id": "wamid.IN1"}}),
        }]
    );
    assert_eq!(
        (
            &sent["provider_message_id"],
            &sent["direction"],
            &sent["text"],
            &sent["reply_to"]
        ),
        (
            &json!("wamid.FAKE1"),
            &json!("outbound"),
            &json!("Ya lo revisamos"),
            &json!("wamid.IN1")
        )
    );
    assert!(c["last_response_seconds"].is_null());
    assert_answered_by_reply(&backend, &app, &c["id"]).await;

    // Its statuses attach to it: one outbound message, now delivered; nothing answered again.
    for s in ["sent", "delivered"] {
        post(
            &app,
            Webhook::Whatsapp,
            whatsapp_status("PN", customer, "wamid.FAKE1", s, now_s()),
        )
        .await;
    }
    backend.prioritize_all(&backend.prioritizer()).await;
    let out = outbound_messages(&app, &c["id"]).await;
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0]["status"], "delivered", "{:?}", out[0]);
    let mut listed = out[0].clone();
    let mut returned = sent.clone();
    for v in [&mut listed, &mut returned] {
        let o = v.as_object_mut().unwrap();
        for k in ["stored_at", "status", "status_at"] {
            o.remove(k);
        }
    }
    assert_eq!(
        listed, returned,
        "the 201 is the message as /messages lists it"
    );
    assert_eq!(
        events_of(&backend, events::ANSWERED, &c["id"]).await.len(),
        1
    );
}

async fn messenger_and_instagram_replies_reach_the_customer_and_their_echoes_double_nothing(
    backend: Backend,
) {
    let fake = FakeGraph::start().await;
    let app = backend.app_replying(fake.sender());
    let cases = [
        (
            Webhook::Facebook,
            "PSID-R1",
            messenger_text("PSID-R1", "m_in1", now_ms() - 60_000, "hola", false),
            "PAGE/messages",
        ),
        (
            Webhook::Instagram,
            "IGSID-R1",
            instagram_text("IGSID-R1", "IGACC", "ig_in1", now_ms() - 60_000, "hola"),
            "IGACC/messages",
        ),
    ];
    for (n, (webhook, customer, inbound, path)) in cases.into_iter().enumerate() {
        let c = waiting(&backend, &app, webhook, inbound, customer).await;
        let (status, sent, _) =
            reply(&app, &c["id"], json!({"text": "¿En qué te ayudo?"}), None).await;
        assert_eq!(status, 201, "{sent}");
        let mid = format!("m_FAKE{}", n + 1);
        assert_eq!(sent["provider_message_id"], mid);
        assert_eq!(
            fake.requests()[n],
            GraphRequest {
                path: path.into(),
                token: Some(token_of(webhook)),
                body: json!({"recipient": {"id": customer}, "messaging_type": "RESPONSE",
                    "message": {"text": "¿En qué te ayudo?"}}),
            }
        );
        assert_answered_by_reply(&backend, &app, &c["id"]).await;
        // The echo of the same message is the same record.
        let echo = match webhook {
            Webhook::Facebook => {
                messenger_text(customer, &mid, now_ms(), "¿En qué te ayudo?", true)
            }
            _ => {
                let body = json!({"object": "instagram", "entry": [{"id": "IGACC", "time": now_ms(),
                    "messaging": [{"sender": {"id": "IGACC"}, "recipient": {"id": customer},
                    "timestamp": now_ms(), "message": {"mid": mid, "text": "¿En qué te ayudo?",
                    "is_echo": true}}]}]});
                body.to_string().into_bytes()
            }
        };
        post(&app, webhook, echo).await;
        backend.prioritize_all(&backend.prioritizer()).await;
        let out = outbound_messages(&app, &c["id"]).await;
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            events_of(&backend, events::ANSWERED, &c["id"]).await.len(),
            1
        );
    }
    assert_eq!(fake.requests().len(), 2);
}

async fn a_comment_is_answered_in_public_or_in_private_and_the_echoes_double_nothing(
    backend: Backend,
) {
    let fake = FakeGraph::start().await;
    let app = backend.app_replying(fake.sender());
    let c = waiting(
        &backend,
        &app,
        Webhook::Facebook,
        page_comment(
            "USER-C1",
            "PAGE_P1_C1",
            "P1",
            None,
            now_s() - 60,
            "pésimo servicio",
        ),
        "USER-C1",
    )
    .await;

    // In public, under the comment: the page's own comment comes back and is the same record.
    let (status, public, _) = reply(
        &app,
        &c["id"],
        json!({"text": "Lo sentimos, te escribimos"}),
        None,
    )
    .await;
    assert_eq!(status, 201, "{public}");
    assert_eq!(
        fake.requests()[0],
        GraphRequest {
            path: "PAGE_P1_C1/comments".into(),
            token: Some(token_of(Webhook::Facebook)),
            body: json!({"message": "Lo sentimos, te escribimos"}),
        }
    );
    assert_eq!(
        (
            &public["provider_message_id"],
            &public["public"],
            &public["reply_to"]
        ),
        (
            &json!("PAGE_P1_C1_reply1"),
            &json!(true),
            &json!("PAGE_P1_C1")
        )
    );
    assert_answered_by_reply(&backend, &app, &c["id"]).await;
    post(
        &app,
        Webhook::Facebook,
        page_comment(
            "PAGE",
            "PAGE_P1_C1_reply1",
            "P1",
            Some("PAGE_P1_C1"),
            now_s(),
            "Lo sentimos, te escribimos",
        ),
    )
    .await;
    backend.prioritize_all(&backend.prioritizer()).await;
    assert_eq!(outbound_messages(&app, &c["id"]).await.len(), 1);

    // In private, to the comment's author: a Messenger message whose echo doubles nothing.
    let (status, private, _) = reply(
        &app,
        &c["id"],
        json!({"text": "Te escribimos por privado", "reply_to": "PAGE_P1_C1", "private": true}),
        None,
    )
    .await;
    assert_eq!(status, 201, "{private}");
    assert_eq!(
        fake.requests()[1],
        GraphRequest {
            path: "PAGE/messages".into(),
            token: Some(token_of(Webhook::Facebook)),
            body: json!({"recipient": {"comment_id": "PAGE_P1_C1"},
                "message": {"text": "Te escribimos por privado"}}),
        }
    );
    assert_eq!(
        (
            &private["provider_message_id"],
            &private["channel"],
            &private["public"]
        ),
        (&json!("m_FAKE2"), &json!("messenger"), &Value::Null)
    );
    post(
        &app,
        Webhook::Facebook,
        messenger_text(
            "PSID-OF-USER-C1",
            "m_FAKE2",
            now_ms(),
            "Te escribimos por privado",
            true,
        ),
    )
    .await;
    backend.prioritize_all(&backend.prioritizer()).await;
    let everywhere: Vec<Value> = switchboard_tests::all_records(&app)
        .await
        .into_iter()
        .filter(|r| r["provider_message_id"] == "m_FAKE2")
        .collect();
    assert_eq!(everywhere.len(), 1, "{everywhere:?}");
    assert_eq!(outbound_messages(&app, &c["id"]).await.len(), 2);

    // An Instagram comment is answered under it with /replies.
    let ig = waiting(
        &backend,
        &app,
        Webhook::Instagram,
        instagram_comment(
            "IGU-1",
            "IGACC",
            "ig_c1",
            "MEDIA1",
            None,
            "¿tienen talla M?",
        ),
        "IGU-1",
    )
    .await;
    let (status, answer, _) = reply(&app, &ig["id"], json!({"text": "Sí, escríbenos"}), None).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(fake.requests()[2].path, "ig_c1/replies");
    assert_eq!(fake.requests()[2].token, Some(token_of(Webhook::Instagram)));
    assert_eq!(answer["provider_message_id"], "ig_c1_reply3");
    assert_eq!(conversation(&app, &ig["id"]).await["status"], "answered");
}

async fn one_idempotency_key_sends_once_and_refuses_another_body(backend: Backend) {
    let fake = FakeGraph::start().await;
    let app = backend.app_replying(fake.sender());
    let customer = "5215551230002";
    let c = waiting(
        &backend,
        &app,
        Webhook::Whatsapp,
        whatsapp_text(
            "PN",
            customer,
            "wamid.IN2",
            now_s() - 60,
            "¿y mi reembolso?",
        ),
        customer,
    )
    .await;
    let body = json!({"text": "Sale mañana"});
    let (s1, first, replayed1) = reply(&app, &c["id"], body.clone(), Some("key-1")).await;
    let (s2, second, replayed2) = reply(&app, &c["id"], body, Some("key-1")).await;
    assert_eq!((s1, s2), (201, 201), "{first} {second}");
    assert_eq!((replayed1, replayed2), (false, true));
    assert_eq!(first, second);
    assert_eq!(fake.requests().len(), 1, "one send for one key");
    assert_eq!(outbound_messages(&app, &c["id"]).await.len(), 1);
    assert_answered_by_reply(&backend, &app, &c["id"]).await;

    let (status, refused, _) =
        reply(&app, &c["id"], json!({"text": "otra cosa"}), Some("key-1")).await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key"),
        "{refused}"
    );
    let (status, bad, _) = reply(&app, &c["id"], json!({"text": "x"}), Some("has space")).await;
    assert_eq!(status, 400, "{bad}");
    assert_eq!(fake.requests().len(), 1);
}

async fn a_refused_send_stores_nothing_and_the_customer_still_waits(backend: Backend) {
    let fake = FakeGraph::start().await;
    let app = backend.app_replying(fake.sender());
    let customer = "5215551230003";
    let c = waiting(
        &backend,
        &app,
        Webhook::Whatsapp,
        whatsapp_text(
            "PN",
            customer,
            "wamid.IN3",
            now_s() - 60,
            "me bloquearon la cuenta",
        ),
        customer,
    )
    .await;
    for (code, message) in [
        (131047, "Re-engagement message"),
        (190, "Error validating access token: Session has expired"),
        (80007, "Rate limit hit"),
    ] {
        fake.then(Scripted::Answer(
            400,
            json!({"error": {"message": message, "type": "OAuthException", "code": code,
                "error_subcode": 2494010, "is_transient": false, "fbtrace_id": "AbC"}}),
        ));
        let (status, error, _) =
            reply(&app, &c["id"], json!({"text": "hola"}), Some("key-r")).await;
        assert_eq!(status, 502, "{error}");
        assert_eq!(error["provider"]["code"], code, "{error}");
        assert_eq!(error["provider"]["message"], message, "{error}");
    }
    assert_eq!(fake.requests().len(), 3, "a refusal is not retried");
    let now = conversation(&app, &c["id"]).await;
    assert_eq!(now["status"], "waiting", "{now}");
    assert!(outbound_messages(&app, &c["id"]).await.is_empty());
    assert!(
        events_of(&backend, events::MESSAGE_SENT, &c["id"])
            .await
            .is_empty()
    );

    // Graph says a retry is safe: retried, sent once. The key freed by the refusals works.
    fake.then(Scripted::Answer(
        500,
        json!({"error": {"message": "Service temporarily unavailable", "code": 2, "is_transient": true}}),
    ));
    let (status, sent, _) = reply(&app, &c["id"], json!({"text": "hola"}), Some("key-r")).await;
    assert_eq!(status, 201, "{sent}");
    assert_eq!(fake.requests().len(), 5);
    assert_eq!(outbound_messages(&app, &c["id"]).await.len(), 1);

    // No token for the channel: 503 naming the setting, nothing sent.
    let unconfigured = switchboard_senders::GraphSender::new(switchboard_senders::GraphSettings {
        base_url: fake.url.clone(),
        tokens: Default::default(),
        timeout: Duration::from_secs(5),
    });
    let bare = backend.app_replying(std::sync::Arc::new(unconfigured));
    post(
        &app,
        Webhook::Whatsapp,
        whatsapp_text("PN", customer, "wamid.IN3b", now_s(), "¿hola?"),
    )
    .await;
    let (status, error, _) = reply(&bare, &c["id"], json!({"text": "hola"}), None).await;
    assert_eq!(status, 503, "{error}");
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("SWITCHBOARD_WHATSAPP_ACCESS_TOKEN"),
        "{error}"
    );
    assert_eq!(fake.requests().len(), 5);
}

async fn outside_the_window_nothing_is_sent_unless_a_template_or_the_tag_allows_it(
    backend: Backend,
) {
    let fake = FakeGraph::start().await;
    let app = backend.app_replying(fake.sender());
    let customer = "5215551230004";
    let c = waiting(
        &backend,
        &app,
        Webhook::Whatsapp,
        whatsapp_text(
            "PN",
            customer,
            "wamid.IN4",
            now_s() - 25 * 3600,
            "¿siguen abiertos?",
        ),
        customer,
    )
    .await;
    let (status, error, _) = reply(&app, &c["id"], json!({"text": "sí"}), None).await;
    assert_eq!(status, 409, "{error}");
    assert!(
        error["error"].as_str().unwrap().contains("template"),
        "{error}"
    );
    assert!(
        fake.requests().is_empty(),
        "nothing is sent outside the window"
    );
    assert_eq!(conversation(&app, &c["id"]).await["status"], "waiting");
    let template = json!({"template": {"name": "seguimiento", "language": "es",
        "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}]}});
    let (status, sent, _) = reply(&app, &c["id"], template, None).await;
    assert_eq!(status, 201, "{sent}");
    let body = &fake.requests()[0].body;
    assert_eq!(body["type"], "template", "{body}");
    assert_eq!(body["template"]["name"], "seguimiento");
    assert_eq!(body["template"]["language"]["code"], "es");

    // Messenger two days later: only with HUMAN_AGENT.
    let psid = "PSID-LATE";
    let m = waiting(
        &backend,
        &app,
        Webhook::Facebook,
        messenger_text(psid, "m_late", now_ms() - 48 * 3_600_000, "hola??", false),
        psid,
    )
    .await;
    let (status, error, _) = reply(&app, &m["id"], json!({"text": "perdón la demora"}), None).await;
    assert_eq!(status, 409, "{error}");
    assert!(
        error["error"].as_str().unwrap().contains("HUMAN_AGENT"),
        "{error}"
    );
    assert_eq!(fake.requests().len(), 1);
    let (status, sent, _) = reply(
        &app,
        &m["id"],
        json!({"text": "perdón la demora", "tag": "HUMAN_AGENT"}),
        None,
    )
    .await;
    assert_eq!(status, 201, "{sent}");
    let body = &fake.requests()[1].body;
    assert_eq!(
        (&body["messaging_type"], &body["tag"]),
        (&json!("MESSAGE_TAG"), &json!("HUMAN_AGENT"))
    );

    // Bodies that mean nothing are refused with a reason.
    for bad in [
        json!({}),
        json!({"text": "a", "template": {"name": "t", "language": "es"}}),
        json!({"text": "a", "unknown": 1}),
        json!({"text": "a", "tag": "ACCOUNT_UPDATE"}),
        json!({"text": "a", "private": true}),
        json!({"text": "a", "reply_to": "wamid.NOT-HERE"}),
    ] {
        let (status, error, _) = reply(&app, &m["id"], bad.clone(), None).await;
        assert_eq!(status, 400, "{bad}: {error}");
        assert!(error["error"].is_string());
    }
    let (status, _, _) = reply(
        &app,
        &json!("cv_00000000000000000000000000000000"),
        json!({"text": "a"}),
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(fake.requests().len(), 2);
}

async fn a_send_that_times_out_answers_504_and_is_not_sent_again_with_its_key(backend: Backend) {
    let fake = FakeGraph::start().await;
    let app = backend.app_replying(fake.sender_with_timeout(Duration::from_millis(300)));
    let customer = "5215551230005";
    let c = waiting(
        &backend,
        &app,
        Webhook::Whatsapp,
        whatsapp_text("PN", customer, "wamid.IN5", now_s() - 60, "urgente"),
        customer,
    )
    .await;
    fake.then(Scripted::Delay(Duration::from_secs(2)));
    let (status, error, _) = reply(&app, &c["id"], json!({"text": "ya"}), Some("key-t")).await;
    assert_eq!(status, 504, "{error}");
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("may have been sent"),
        "{error}"
    );
    let (status, again, _) = reply(&app, &c["id"], json!({"text": "ya"}), Some("key-t")).await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(fake.requests().len(), 1, "the key is not sent again");
    assert_eq!(conversation(&app, &c["id"]).await["status"], "waiting");
}
