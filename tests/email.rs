//! E-mail, on both backends: every message of the corpus (`tests/fixtures/email/`, written
//! for these tests) posted raw, signed with Standard Webhooks, stored once with its exact text
//! and its repeat (another delivery id) a no-op; a thread of three one conversation, the
//! brand's journal copy answering it and the customer's `AW: RE:` reply waiting again;
//! auto-replies and bounces kept but never timed or queued; mail failing DMARC no higher than
//! P3; a forged signature refused with nothing kept.

use serde_json::Value;
use std::collections::HashSet;

use switchboard_core::ids::RecordKey;
use switchboard_tests::{
    Backend, all_records, call, conversation_of, email_post, fixtures_dir, get_all, get_json,
};

switchboard_tests::contract!(
    every_message_is_stored_once_with_its_text_and_its_repeat_is_a_no_op,
    a_thread_is_one_conversation_that_the_brands_copy_answers,
    auto_replies_and_bounces_are_kept_and_never_wait,
    mail_failing_dmarc_is_never_above_p3,
    a_forged_signature_is_refused_and_nothing_is_kept,
);

/// The corpus, by file name.
fn corpus() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(fixtures_dir().join("email"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(out.len() >= 13, "the corpus");
    out
}

fn eml(name: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join("email").join(format!("{name}.eml"))).unwrap()
}

async fn post(app: &axum::Router, name: &str) -> u16 {
    call(app, email_post(&eml(name), &format!("msg_{name}")))
        .await
        .0
        .as_u16()
}

async fn every_message_is_stored_once_with_its_text_and_its_repeat_is_a_no_op(backend: Backend) {
    let app = backend.app(None);
    let mut keys: Vec<RecordKey> = Vec::new();
    for (name, bytes) in corpus() {
        let (status, answer) = call(&app, email_post(&bytes, &format!("msg_{name}"))).await;
        assert_eq!(status, 200, "{name}: {answer:?}");
        for record in switchboard_core::channels::email::parse(&bytes, chrono::Utc::now()) {
            keys.push(record.key());
        }
    }
    let stored = all_records(&app).await;
    let messages: Vec<&Value> = stored.iter().filter(|r| r["record"] == "message").collect();
    let ids: HashSet<&str> = messages
        .iter()
        .filter_map(|m| m["provider_message_id"].as_str())
        .collect();
    assert_eq!(messages.len(), ids.len(), "each message once");
    for id in [
        "CAF3x1-plain-4411@mail.example.com",
        "html-only-77@example.org",
        "multi-9921@example.net",
        "latin1-3301@example.com.br",
        "encoded-5@example.com",
        "fwd-chain-1@example.com",
        "thread-1@example.com",
        "answer-2@acme.example",
        "thread-3@example.com",
        "phish-1@bank.example",
    ] {
        assert!(ids.contains(id), "{id} stored: {ids:?}");
    }
    assert_eq!(
        messages.len(),
        11,
        "ten with an id and one without: {ids:?}"
    );
    let text = |id: &str| {
        messages
            .iter()
            .find(|m| m["provider_message_id"] == id)
            .and_then(|m| m["text"].as_str())
            .unwrap()
            .to_owned()
    };
    assert_eq!(
        text("CAF3x1-plain-4411@mail.example.com"),
        "Hola,\n\nmi pedido 4411 lleva una semana de retraso y nadie me contesta. ¿Dónde está?\n\nAna"
    );
    assert_eq!(
        text("latin1-3301@example.com.br"),
        "Não recebi o pedido e a loja não responde. Preciso de uma solução."
    );
    // Nothing lost: the auto-reply and the bounce are kept too.
    keys.sort();
    keys.dedup();
    assert_eq!(backend.store.find(&keys).await.unwrap().len(), keys.len());
    let queued = backend.probe.drain().await.len();
    assert_eq!(queued, 11, "each message enqueued once, nothing else");

    // Delivered again under other delivery ids (a relay's retry): nothing new.
    for (name, bytes) in corpus() {
        let (status, _) = call(&app, email_post(&bytes, &format!("retry_{name}"))).await;
        assert_eq!(status, 200);
    }
    assert_eq!(all_records(&app).await.len(), stored.len());
    assert!(backend.probe.drain().await.is_empty());
}

async fn a_thread_is_one_conversation_that_the_brands_copy_answers(backend: Backend) {
    let app = backend.app(None);
    let prioritizer = backend.prioritizer();
    assert_eq!(post(&app, "thread_1").await, 200);
    backend.prioritize_all(&prioritizer).await;
    let c = conversation_of(&app, "gloria@example.com").await;
    assert_eq!(c["status"], "waiting");
    assert_eq!(c["channel"], "email");
    assert_eq!(c["account_id"], "support@acme.example");
    // The brand's answer, as its journal copy: outbound, 40 minutes later.
    assert_eq!(post(&app, "thread_2").await, 200);
    backend.prioritize_all(&prioritizer).await;
    let c = conversation_of(&app, "gloria@example.com").await;
    assert_eq!(c["status"], "answered", "{c}");
    assert_eq!(c["first_response_seconds"], 40 * 60);
    // Her "AW: RE:" reply waits again, in the same conversation.
    assert_eq!(post(&app, "thread_3").await, 200);
    backend.prioritize_all(&prioritizer).await;
    let conversations: Vec<Value> = get_all(&app, "/api/conversations", 50)
        .await
        .into_iter()
        .filter(|c| c["channel"] == "email")
        .collect();
    assert_eq!(conversations.len(), 1, "one thread, one conversation");
    assert_eq!(conversations[0]["status"], "waiting");
    let id = conversations[0]["id"].as_str().unwrap();
    let (_, page) = get_json(&app, &format!("/api/conversations/{id}/messages")).await;
    let directions: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["direction"].as_str().unwrap())
        .collect();
    assert_eq!(directions, ["inbound", "outbound", "inbound"]);
}

async fn auto_replies_and_bounces_are_kept_and_never_wait(backend: Backend) {
    let app = backend.app(None);
    for name in ["auto_reply", "bounce"] {
        assert_eq!(post(&app, name).await, 200);
    }
    assert_eq!(backend.probe.count().await, 0, "nothing queued");
    let prioritizer = backend.prioritizer();
    backend.prioritize_all(&prioritizer).await;
    assert!(
        get_all(&app, "/api/conversations", 50).await.is_empty(),
        "no one waits"
    );
    let (_, queue) = get_json(&app, "/api/queue").await;
    assert_eq!(queue["items"].as_array().map(Vec::len), Some(0));
    for name in ["auto_reply", "bounce"] {
        assert!(backend.kept(&eml(name)).await, "{name} kept");
    }
}

async fn mail_failing_dmarc_is_never_above_p3(backend: Backend) {
    let app = backend.app(None);
    let prioritizer = backend.prioritizer();
    let forged = eml("dmarc_fail");
    assert_eq!(call(&app, email_post(&forged, "msg_forged")).await.0, 200);
    // The same words from a sender whose mail passes: no Authentication-Results failure.
    let genuine = String::from_utf8(forged.clone())
        .unwrap()
        .replace("dmarc=fail", "dmarc=pass")
        .replace("<phish-1@bank.example>", "<genuine-1@bank.example>")
        .replace("avisos@bank.example", "cliente@example.com");
    assert_eq!(
        call(&app, email_post(genuine.as_bytes(), "msg_genuine"))
            .await
            .0,
        200
    );
    backend.prioritize_all(&prioritizer).await;
    let forged = conversation_of(&app, "avisos@bank.example").await;
    let genuine = conversation_of(&app, "cliente@example.com").await;
    let level = |c: &Value| c["priority"]["priority"].as_str().unwrap().to_owned();
    assert!(
        level(&genuine).as_str() < "P3",
        "the words alone are urgent: {genuine}"
    );
    assert_eq!(level(&forged), "P3", "{forged}");
    assert!(
        forged["priority"]["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["signal"] == "dmarc_failed"),
        "{forged}"
    );
}

async fn a_forged_signature_is_refused_and_nothing_is_kept(backend: Backend) {
    let app = backend.app(None);
    let bytes = eml("plain");
    let mut request = email_post(&bytes, "msg_forged_signature");
    request.headers_mut().insert(
        "webhook-signature",
        "v1,Zm9yZ2VkLXNpZ25hdHVyZS1vZi10aGlydHktdHdvLWJ5dGVz"
            .parse()
            .unwrap(),
    );
    assert_eq!(call(&app, request).await.0, 401);
    let mut tampered = email_post(&bytes, "msg_tampered");
    *tampered.body_mut() = axum::body::Body::from([bytes.as_slice(), b"P.S."].concat());
    assert_eq!(call(&app, tampered).await.0, 401);
    assert!(!backend.kept(&bytes).await);
    assert_eq!(backend.probe.count().await, 0);
    let (status, _) = get_json(&app, "/webhooks/email").await;
    assert_eq!(status, 400, "no handshake");
}
