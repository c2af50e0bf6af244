//! Cases on both backends: a conversation is answered, resolved and reopened; first-contact
//! resolution is decided at the resolution; an agent's queue holds what is assigned to them;
//! a WhatsApp status of a message sent by another tool answers the waiting customer. Every
//! step is on the bus, valid against its schema.

use serde_json::{Value, json};

use switchboard_core::events;
use switchboard_core::ids::ConversationId;
use switchboard_core::model::{Conversation, Webhook};
use switchboard_tests::payloads::{messenger_text as messenger, whatsapp_status, whatsapp_text};
use switchboard_tests::{Backend, call, get_all, get_json};
use switchboard_tests::{conversation_of, deliver as post};

switchboard_tests::contract!(
    a_resolved_case_leaves_the_queue_and_a_later_message_opens_case_two,
    first_contact_resolution_needs_one_reply_and_no_customer_message_after_it,
    an_assigned_conversation_is_in_its_agents_queue_until_it_is_answered,
    a_status_of_a_message_sent_elsewhere_answers_the_waiting_customer_once,
    an_agent_tools_answer_time_must_be_past_and_within_the_wait,
);

/// A POST to the API as `agent` (no header: `local`), and its status and JSON.
async fn act(
    app: &axum::Router,
    uri: &str,
    agent: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = http::Request::post(uri).header("content-type", "application/json");
    if let Some(agent) = agent {
        request = request.header("x-switchboard-agent", agent);
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let (status, bytes) = call(app, request.body(axum::body::Body::from(body)).unwrap()).await;
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status.as_u16(), json)
}

async fn stored(backend: &Backend, id: &Value) -> Conversation {
    let id = ConversationId::from_stored(id.as_str().unwrap());
    backend
        .conversations
        .conversation(&id)
        .await
        .unwrap()
        .expect("stored")
}

fn in_queue(queue: &[Value], id: &Value) -> bool {
    queue.iter().any(|c| c["id"] == *id)
}

/// The events of `kind` about the conversation `id`.
async fn events_of(backend: &Backend, kind: &str, id: &Value) -> Vec<Value> {
    let mut all = backend.published.of_type(kind).await;
    all.retain(|e| e["detail"]["conversation_id"] == *id);
    all
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

async fn a_resolved_case_leaves_the_queue_and_a_later_message_opens_case_two(backend: Backend) {
    let app = backend.app(None);
    let prioritizer = backend.prioritizer();
    let customer = "PSID-CASES";
    let t = now_ms();
    post(
        &app,
        Webhook::Facebook,
        messenger(customer, "c1", t - 60_000, "mi pedido no llegó", false),
    )
    .await;
    backend.prioritize_all(&prioritizer).await;
    let c = conversation_of(&app, customer).await;
    assert_eq!(
        (c["status"].as_str(), c["case"].as_u64()),
        (Some("waiting"), Some(1))
    );
    assert!(in_queue(&get_all(&app, "/api/queue", 50).await, &c["id"]));
    let reminders: Vec<String> = {
        let s = stored(&backend, &c["id"]).await;
        s.sla
            .iter()
            .flat_map(|k| k.reminders.clone())
            .chain(s.window_reminder.clone())
            .collect()
    };
    assert!(!reminders.is_empty());

    // The page answers (its echo): answered, not resolved; the answer is on the bus.
    post(
        &app,
        Webhook::Facebook,
        messenger(customer, "c2", t - 30_000, "lo revisamos ya", true),
    )
    .await;
    backend.prioritize_all(&prioritizer).await;
    let c = conversation_of(&app, customer).await;
    assert_eq!(c["status"], "answered", "{c}");
    let answered = events_of(&backend, events::ANSWERED, &c["id"]).await;
    assert_eq!(answered.len(), 1, "{answered:?}");
    assert_eq!(answered[0]["detail"]["via"], "echo");
    assert_eq!(answered[0]["detail"]["response_seconds"], 30);

    // Resolved by ana: out of the queue, reminders gone, first contact.
    let uri = format!("/api/conversations/{}/resolve", c["id"].as_str().unwrap());
    let (status, resolved) = act(&app, &uri, Some("ana"), None).await;
    assert_eq!(status, 200, "{resolved}");
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["resolved_by"], "ana");
    assert_eq!(resolved["first_contact_resolution"], true);
    assert!(resolved["resolved_at"].is_string());
    assert!(!in_queue(&get_all(&app, "/api/queue", 50).await, &c["id"]));
    let pending = backend.pending.names().await;
    assert!(
        reminders.iter().all(|r| !pending.contains(r)),
        "{pending:?}"
    );
    // Resolving again changes nothing and publishes nothing new.
    let (status, again) = act(&app, &uri, Some("bo"), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (&again["resolved_at"], &again["resolved_by"]),
        (&resolved["resolved_at"], &resolved["resolved_by"])
    );
    let resolutions = events_of(&backend, events::RESOLVED, &c["id"]).await;
    assert_eq!(resolutions.len(), 1, "{resolutions:?}");
    let d = &resolutions[0]["detail"];
    assert_eq!(
        (d["case"].as_u64(), &d["resolved_by"]),
        (Some(1), &json!("ana"))
    );
    assert_eq!(d["first_contact_resolution"], true);

    // The customer writes again after the resolution: case 2 of the same conversation.
    post(
        &app,
        Webhook::Facebook,
        messenger(customer, "c3", now_ms() + 5_000, "sigue sin llegar", false),
    )
    .await;
    backend.prioritize_all(&prioritizer).await;
    let c2 = conversation_of(&app, customer).await;
    assert_eq!(c2["id"], c["id"], "one conversation");
    assert_eq!(
        (c2["status"].as_str(), c2["case"].as_u64()),
        (Some("waiting"), Some(2))
    );
    assert!(c2["resolved_at"].is_null() && c2["first_contact_resolution"].is_null());
    assert!(in_queue(&get_all(&app, "/api/queue", 50).await, &c["id"]));
    let reopened = events_of(&backend, events::REOPENED, &c["id"]).await;
    assert_eq!(reopened.len(), 1);
    assert_eq!(reopened[0]["detail"]["case"], 2);
    let received = events_of(&backend, events::MESSAGE_RECEIVED, &c["id"]).await;
    let cases: Vec<u64> = received
        .iter()
        .map(|e| e["detail"]["case"].as_u64().unwrap())
        .collect();
    assert_eq!(cases, [1, 2], "{received:?}");
    assert_eq!(received[1]["detail"]["text"], "sigue sin llegar");
    // One timeline.
    let uri = format!("/api/conversations/{}/messages", c["id"].as_str().unwrap());
    assert_eq!(get_all(&app, &uri, 50).await.len(), 3);
    // An unknown conversation.
    let (status, _) = act(
        &app,
        "/api/conversations/cv_00000000000000000000000000000000/resolve",
        None,
        None,
    )
    .await;
    assert_eq!(status, 404);
}

async fn first_contact_resolution_needs_one_reply_and_no_customer_message_after_it(
    backend: Backend,
) {
    let app = backend.app(None);
    let prioritizer = backend.prioritizer();
    let t = now_ms() - 600_000;
    // Two replies before the resolution.
    let two = "PSID-FCR-TWO";
    for (mid, at, text, echo) in [
        ("t1", t, "no puedo entrar", false),
        ("t2", t + 10_000, "¿qué error ves?", true),
        ("t3", t + 20_000, "prueba ahora", true),
    ] {
        post(&app, Webhook::Facebook, messenger(two, mid, at, text, echo)).await;
    }
    // One reply, then the customer wrote again.
    let after = "PSID-FCR-AFTER";
    for (mid, at, text, echo) in [
        ("a1", t, "no puedo entrar", false),
        ("a2", t + 10_000, "prueba ahora", true),
        ("a3", t + 20_000, "sigue igual", false),
    ] {
        post(
            &app,
            Webhook::Facebook,
            messenger(after, mid, at, text, echo),
        )
        .await;
    }
    backend.prioritize_all(&prioritizer).await;
    for customer in [two, after] {
        let c = conversation_of(&app, customer).await;
        let uri = format!("/api/conversations/{}/resolve", c["id"].as_str().unwrap());
        let (status, resolved) = act(&app, &uri, None, None).await;
        assert_eq!(status, 200, "{resolved}");
        assert_eq!(resolved["first_contact_resolution"], false, "{customer}");
        assert_eq!(resolved["resolved_by"], "local", "no header under serve");
        let e = events_of(&backend, events::RESOLVED, &c["id"]).await;
        assert_eq!(e.len(), 1);
        assert_eq!(e[0]["detail"]["first_contact_resolution"], false);
    }
    // A bad agent header is refused with its reason.
    let c = conversation_of(&app, two).await;
    let uri = format!("/api/conversations/{}/resolve", c["id"].as_str().unwrap());
    let (status, body) = act(&app, &uri, Some(&"x".repeat(200)), None).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("x-switchboard-agent")
    );
}

async fn an_assigned_conversation_is_in_its_agents_queue_until_it_is_answered(backend: Backend) {
    let app = backend.app(None);
    let prioritizer = backend.prioritizer();
    let t = now_ms() / 1000 - 300;
    for (from, id) in [
        ("5511000000001", "wamid.AS1"),
        ("5511000000002", "wamid.AS2"),
    ] {
        post(
            &app,
            Webhook::Whatsapp,
            whatsapp_text("PN-AS", from, id, t, "me cobraron dos veces"),
        )
        .await;
    }
    backend.prioritize_all(&prioritizer).await;
    let c = conversation_of(&app, "5511000000001").await;
    let uri = format!("/api/conversations/{}/assign", c["id"].as_str().unwrap());

    let (status, assigned) = act(&app, &uri, Some("ana"), Some(json!({"agent": "bo"}))).await;
    assert_eq!(status, 200, "{assigned}");
    assert_eq!(assigned["assignee"], "bo");
    let bo = get_all(&app, "/api/queue?agent=bo", 50).await;
    assert_eq!(bo.len(), 1);
    assert_eq!(bo[0]["id"], c["id"]);
    assert!(get_all(&app, "/api/queue?agent=ana", 50).await.is_empty());
    assert_eq!(
        get_all(&app, "/api/queue", 50).await.len(),
        2,
        "still in its team's"
    );
    // Assigning again to the same agent publishes nothing more.
    let (status, _) = act(&app, &uri, Some("ana"), Some(json!({"agent": "bo"}))).await;
    assert_eq!(status, 200);
    let e = events_of(&backend, events::ASSIGNED, &c["id"]).await;
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(
        (&e[0]["detail"]["assignee"], &e[0]["detail"]["assigned_by"]),
        (&json!("bo"), &json!("ana"))
    );

    // Bad requests say why.
    for body in [json!({"agent": ""}), json!({"who": "bo"}), json!("bo")] {
        let (status, answer) = act(&app, &uri, None, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer["error"].is_string());
    }
    let (status, _) = get_json(&app, "/api/queue?agent=bo&team=billing").await;
    assert_eq!(status, 400);
    let (status, _) = act(
        &app,
        "/api/conversations/cv_00000000000000000000000000000000/assign",
        None,
        Some(json!({"agent": "bo"})),
    )
    .await;
    assert_eq!(status, 404);

    // Unassigned, then assigned again; an answer takes it out of the agent's queue.
    let (_, none) = act(&app, &uri, None, Some(json!({"agent": null}))).await;
    assert!(none["assignee"].is_null());
    assert!(get_all(&app, "/api/queue?agent=bo", 50).await.is_empty());
    act(&app, &uri, None, Some(json!({"agent": "bo"}))).await;
    assert_eq!(get_all(&app, "/api/queue?agent=bo", 50).await.len(), 1);
    let answered = format!("/api/conversations/{}/answered", c["id"].as_str().unwrap());
    let (status, after) = act(&app, &answered, None, None).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(
        (after["status"].as_str(), &after["assignee"]),
        (Some("answered"), &json!("bo"))
    );
    assert!(get_all(&app, "/api/queue?agent=bo", 50).await.is_empty());
    let e = events_of(&backend, events::ANSWERED, &c["id"]).await;
    assert_eq!(e.len(), 1);
    assert_eq!(e[0]["detail"]["via"], "agent_tool");
}

async fn a_status_of_a_message_sent_elsewhere_answers_the_waiting_customer_once(backend: Backend) {
    let app = backend.app(None);
    let prioritizer = backend.prioritizer();
    let t = now_ms() / 1000 - 600;
    let customer = "5511000000009";
    post(
        &app,
        Webhook::Whatsapp,
        whatsapp_text("PN-ST", customer, "wamid.IN", t, "hola, una consulta"),
    )
    .await;
    // A failed send is no answer.
    post(
        &app,
        Webhook::Whatsapp,
        whatsapp_status("PN-ST", customer, "wamid.FAILED", "failed", t + 30),
    )
    .await;
    backend.prioritize_all(&prioritizer).await;
    assert_eq!(conversation_of(&app, customer).await["status"], "waiting");

    // Another tool sent a reply through the Cloud API: switchboard sees its statuses only.
    for (status, at) in [("sent", t + 60), ("delivered", t + 61), ("read", t + 90)] {
        post(
            &app,
            Webhook::Whatsapp,
            whatsapp_status("PN-ST", customer, "wamid.ELSEWHERE", status, at),
        )
        .await;
    }
    backend.prioritize_all(&prioritizer).await;
    let c = conversation_of(&app, customer).await;
    assert_eq!(c["status"], "answered", "{c}");
    assert_eq!(c["first_response_seconds"], 60);
    let answered_at = chrono::DateTime::from_timestamp(t + 60, 0).unwrap();
    assert_eq!(c["answered_at"], json!(answered_at));
    let e = events_of(&backend, events::ANSWERED, &c["id"]).await;
    assert_eq!(e.len(), 1, "once: {e:?}");
    assert_eq!(e[0]["detail"]["via"], "status");
    // It counts as the case's one reply.
    let uri = format!("/api/conversations/{}/resolve", c["id"].as_str().unwrap());
    let (_, resolved) = act(&app, &uri, None, None).await;
    assert_eq!(resolved["first_contact_resolution"], true);

    // With the setting off, a status answers nothing.
    let off = backend.prioritizer().statuses_answer(false);
    let other = "5511000000010";
    post(
        &app,
        Webhook::Whatsapp,
        whatsapp_text("PN-ST", other, "wamid.IN2", t, "hola"),
    )
    .await;
    post(
        &app,
        Webhook::Whatsapp,
        whatsapp_status("PN-ST", other, "wamid.NOTIFY", "read", t + 60),
    )
    .await;
    backend.prioritize_all(&off).await;
    assert_eq!(conversation_of(&app, other).await["status"], "waiting");
}

/// `POST …/answered` with an `at` in the future (beyond a few minutes of skew) or before the
/// wait started is refused with 400 and a reason, and the customer still waits; a time within
/// the wait answers it with that response time.
async fn an_agent_tools_answer_time_must_be_past_and_within_the_wait(backend: Backend) {
    let app = backend.app(None);
    let prioritizer = backend.prioritizer();
    let t = chrono::Utc::now().timestamp() - 600;
    let customer = "5215550009911";
    post(
        &app,
        Webhook::Whatsapp,
        whatsapp_text("PN-AT", customer, "wamid.AT", t, "hola, una consulta"),
    )
    .await;
    backend.prioritize_all(&prioritizer).await;
    let c = conversation_of(&app, customer).await;
    let uri = format!("/api/conversations/{}/answered", c["id"].as_str().unwrap());
    let at = |s: i64| json!({"at": chrono::DateTime::from_timestamp(s, 0).unwrap()});

    let (status, error) = act(
        &app,
        &uri,
        None,
        Some(json!({"at": "2999-01-01T00:00:00Z"})),
    )
    .await;
    assert_eq!(status, 400, "{error}");
    assert!(
        error["error"].as_str().unwrap().contains("future"),
        "{error}"
    );
    let (status, error) = act(&app, &uri, None, Some(at(t - 60))).await;
    assert_eq!(status, 400, "{error}");
    assert!(
        error["error"].as_str().unwrap().contains("before"),
        "{error}"
    );
    assert_eq!(conversation_of(&app, customer).await["status"], "waiting");

    // A tool whose clock runs a minute ahead is fine; so is a time within the wait.
    let (status, answered) = act(&app, &uri, None, Some(at(t + 120))).await;
    assert_eq!(status, 200, "{answered}");
    assert_eq!(answered["first_response_seconds"], 120);
    let (status, _) = act(
        &app,
        &uri,
        None,
        Some(json!({"at": chrono::Utc::now() + chrono::Duration::minutes(1)})),
    )
    .await;
    assert_eq!(status, 200);
}
