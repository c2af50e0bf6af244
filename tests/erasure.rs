//! `DELETE /api/customers/{id}` on both backends: the person is erased — records,
//! conversations, identities, links, the raw deliveries that held them, reminders, events —
//! with a receipt; nothing of their phone, name or words is left anywhere in the store; another
//! customer of a shared delivery keeps their records; and the same person writing again is a
//! new customer.

use serde_json::{Value, json};

use switchboard_core::ids::DeliveryId;
use switchboard_core::model::Webhook;
use switchboard_tests::deliver as post;
use switchboard_tests::{Backend, call, get_all, get_json, payloads};

switchboard_tests::contract!(an_erased_customer_leaves_nothing_of_them_in_the_store);

const PHONE: &str = "5511977770001";
const NAME: &str = "Quimera Erasmo";
const WORDS: &[&str] = &[
    "robaron mi tarjeta Zafiro",
    "segundo mensaje Zafiro",
    "por instagram Zafiro",
];
const OTHER_WORDS: &str = "Bruno se queda aqui";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// One WhatsApp delivery holding the entries of both bodies (a batch of two customers).
fn batch(a: Vec<u8>, b: Vec<u8>) -> Vec<u8> {
    let mut a: Value = serde_json::from_slice(&a).unwrap();
    let b: Value = serde_json::from_slice(&b).unwrap();
    let more = b["entry"].as_array().unwrap().clone();
    a["entry"].as_array_mut().unwrap().extend(more);
    a.to_string().into_bytes()
}

async fn customer_of(app: &axum::Router, provider_id: &str) -> Option<String> {
    get_all(app, "/api/conversations", 50)
        .await
        .into_iter()
        .find(|c| c["customer_provider_id"] == provider_id)
        .map(|c| c["customer_id"].as_str().unwrap().to_owned())
}

async fn send(app: &axum::Router, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let builder = http::Request::builder().method(method).uri(path);
    let request = match body {
        Some(body) => builder
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_string())),
        None => builder.body(axum::body::Body::empty()),
    }
    .unwrap();
    let (status, answer) = call(app, request).await;
    (
        status.as_u16(),
        serde_json::from_slice(&answer).unwrap_or(Value::Null),
    )
}

async fn an_erased_customer_leaves_nothing_of_them_in_the_store(backend: Backend) {
    let app = backend.app(None);
    let t = now() - 600;
    let first = payloads::whatsapp_text_named("PN", PHONE, NAME, "wamid.E1", t, WORDS[0]);
    let first_delivery = format!("/api/deliveries/{}", DeliveryId::of(&first));
    post(&app, Webhook::Whatsapp, first).await;
    post(
        &app,
        Webhook::Whatsapp,
        batch(
            payloads::whatsapp_text_named("PN", PHONE, NAME, "wamid.E2", t + 60, WORDS[1]),
            payloads::whatsapp_text_named(
                "PN",
                "5511966660002",
                "Bruno Otro",
                "wamid.K1",
                t + 61,
                OTHER_WORDS,
            ),
        ),
    )
    .await;
    post(
        &app,
        Webhook::Instagram,
        payloads::instagram_text(
            "IGSID-QUIMERA",
            "IGACCOUNT",
            "ig.E3",
            (t + 120) * 1000,
            WORDS[2],
        ),
    )
    .await;
    let prioritizer = backend.prioritizer();
    backend.prioritize_all(&prioritizer).await;
    let wa = customer_of(&app, PHONE)
        .await
        .expect("the WhatsApp customer");
    let ig = customer_of(&app, "IGSID-QUIMERA")
        .await
        .expect("the Instagram customer");
    let (status, linked) = send(
        &app,
        "POST",
        &format!("/api/customers/{wa}/link"),
        Some(json!({"customer_id": ig})),
    )
    .await;
    assert_eq!(status, 200, "{linked}");
    assert_eq!(get_json(&app, &first_delivery).await.0, 200);
    // The history's counters: both identities noted the conversations they wrote in.
    let identities = [
        switchboard_core::ids::CustomerId::from_stored(wa.as_str()),
        switchboard_core::ids::CustomerId::from_stored(ig.as_str()),
    ];
    let activity = backend.history.activity(&identities).await.unwrap();
    assert_eq!(activity.len(), 2, "{activity:?}");
    let before = backend.storage.everything().await;
    for needle in [PHONE, NAME, WORDS[0], WORDS[2], OTHER_WORDS] {
        assert!(
            before.contains(needle),
            "the search sees the store: {needle}"
        );
    }
    // Their waits' reminders; a business account's check (`sb-check-…`) is no one's.
    let theirs = |names: Vec<String>| -> Vec<String> {
        names
            .into_iter()
            .filter(|n| !n.starts_with("sb-check-"))
            .collect()
    };
    let scheduled = theirs(backend.pending.names().await);

    // Erasing through the Instagram id erases the person: both customers.
    let (status, receipt) = send(&app, "DELETE", &format!("/api/customers/{ig}"), None).await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["customer_id"], ig.as_str());
    let mut ids: Vec<&str> = receipt["customer_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    ids.sort();
    let mut expected = vec![wa.as_str(), ig.as_str()];
    expected.sort();
    assert_eq!(ids, expected);
    assert_eq!(receipt["customers"], 2, "{receipt}");
    assert_eq!(receipt["conversations"], 2, "{receipt}");
    assert_eq!(receipt["records"], 3, "{receipt}");
    assert_eq!(receipt["deliveries"], 3, "{receipt}");
    assert!(
        receipt["reminders"].as_u64().unwrap() >= 4,
        "a warning and a breach for each of their waits: {receipt}"
    );
    if backend.event_log.is_some() {
        assert!(receipt["events"].as_u64().unwrap() >= 1, "{receipt}");
    }

    // Nothing of them is left: not by id, not in any listing, not in the store's bytes.
    for id in [&wa, &ig] {
        let (status, body) = get_json(&app, &format!("/api/customers/{id}")).await;
        assert_eq!(status, 404, "{body}");
    }
    assert_eq!(
        backend.history.activity(&identities).await.unwrap(),
        [],
        "the activity goes with the customers"
    );
    assert_eq!(customer_of(&app, PHONE).await, None);
    assert_eq!(customer_of(&app, "IGSID-QUIMERA").await, None);
    assert_eq!(
        get_json(&app, &first_delivery).await.0,
        404,
        "an erased delivery's bytes are gone"
    );
    let (status, _) = send(&app, "DELETE", &format!("/api/customers/{wa}"), None).await;
    assert_eq!(status, 404, "a second erasure finds no one");
    let after = backend.storage.everything().await;
    for needle in [PHONE, NAME].iter().chain(WORDS) {
        assert!(
            !after.contains(needle),
            "{needle:?} is still in the {} store",
            backend.name
        );
    }
    // Their reminders are cancelled; the other customer's stay.
    let left = theirs(backend.pending.names().await);
    assert!(left.iter().all(|n| scheduled.contains(n)));
    assert!(
        !left.is_empty(),
        "the other customer's wait keeps its reminders"
    );
    assert_eq!(
        (scheduled.len() - left.len()) as u64,
        receipt["reminders"].as_u64().unwrap(),
        "{receipt}"
    );

    // The other customer of the shared delivery keeps their records (its raw copy is gone).
    assert!(after.contains(OTHER_WORDS));
    let bruno = customer_of(&app, "5511966660002")
        .await
        .expect("the other customer stays");
    let timeline = get_all(&app, &format!("/api/customers/{bruno}/timeline"), 10).await;
    assert_eq!(timeline.len(), 1);
    assert_eq!(timeline[0]["text"], OTHER_WORDS);

    // The same person writing again is a new customer: one message, no links.
    post(
        &app,
        Webhook::Whatsapp,
        payloads::whatsapp_text_named("PN", PHONE, NAME, "wamid.E4", now(), "hola de nuevo"),
    )
    .await;
    let again = customer_of(&app, PHONE).await.expect("a new customer");
    let (status, customer) = get_json(&app, &format!("/api/customers/{again}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        customer["links"].as_array().map_or(0, Vec::len),
        0,
        "{customer}"
    );
    assert_eq!(customer["identities"].as_array().unwrap().len(), 1);
    let timeline = get_all(&app, &format!("/api/customers/{again}/timeline"), 10).await;
    assert_eq!(timeline.len(), 1);
    assert_eq!(timeline[0]["text"], "hola de nuevo");
}
