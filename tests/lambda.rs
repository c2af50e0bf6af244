//! The Lambda face: API Gateway events, as `lambda_http` turns them into requests, reach the same
//! router; a base64-encoded body is verified over its decoded raw bytes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;

use switchboard_tests::{all_records, embedded, fixtures_dir, signature};

fn http_api_event(body: &[u8], signature: &str, base64: bool) -> String {
    json!({
        "version": "2.0",
        "routeKey": "POST /webhooks/whatsapp",
        "rawPath": "/webhooks/whatsapp",
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "x-hub-signature-256": signature},
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com",
            "domainPrefix": "api", "requestId": "req-1", "routeKey": "POST /webhooks/whatsapp",
            "stage": "$default", "time": "23/Nov/2026:10:00:00 +0000", "timeEpoch": 1795000000000_i64,
            "http": {"method": "POST", "path": "/webhooks/whatsapp", "protocol": "HTTP/1.1",
                     "sourceIp": "192.0.2.1", "userAgent": "facebookexternalua"}
        },
        "body": if base64 { STANDARD.encode(body) } else { String::from_utf8(body.to_vec()).unwrap() },
        "isBase64Encoded": base64
    })
    .to_string()
}

async fn invoke(app: &axum::Router, event: &str) -> (u16, String) {
    let request = lambda_http::request::from_str(event).expect("API Gateway event");
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn a_base64_encoded_body_is_verified_over_its_decoded_raw_bytes() {
    let backend = embedded().await;
    let app = backend.app(None);
    let raw = std::fs::read(fixtures_dir().join("whatsapp/text_signed__pywa.raw")).unwrap();
    let sig = signature(&raw);
    assert_eq!(invoke(&app, &http_api_event(&raw, &sig, true)).await.0, 200);
    assert_eq!(
        invoke(&app, &http_api_event(&raw, &sig, false)).await.0,
        200
    );
    let records = all_records(&app).await;
    assert_eq!(records.len(), 1, "the same delivery twice is one message");
    assert_eq!(records[0]["text"], "Hey there! I am using PyWa.");
}

#[tokio::test]
async fn a_signature_over_the_base64_text_instead_of_the_bytes_is_refused() {
    let backend = embedded().await;
    let app = backend.app(None);
    let raw = std::fs::read(fixtures_dir().join("whatsapp/text_signed__pywa.raw")).unwrap();
    let wrong = signature(STANDARD.encode(&raw).as_bytes());
    assert_eq!(
        invoke(&app, &http_api_event(&raw, &wrong, true)).await.0,
        401
    );
    assert!(all_records(&app).await.is_empty());
}

#[tokio::test]
async fn the_handshake_works_through_an_api_gateway_event() {
    let backend = embedded().await;
    let app = backend.app(None);
    let event = json!({
        "version": "2.0", "routeKey": "GET /webhooks/whatsapp", "rawPath": "/webhooks/whatsapp",
        "rawQueryString": "hub.mode=subscribe&hub.verify_token=test-verify-token&hub.challenge=987",
        "queryStringParameters": {"hub.mode": "subscribe", "hub.verify_token": "test-verify-token", "hub.challenge": "987"},
        "headers": {},
        "requestContext": {"accountId": "1", "apiId": "a", "domainName": "d", "domainPrefix": "d",
            "requestId": "r", "routeKey": "GET /webhooks/whatsapp", "stage": "$default",
            "time": "t", "timeEpoch": 0,
            "http": {"method": "GET", "path": "/webhooks/whatsapp", "protocol": "HTTP/1.1",
                     "sourceIp": "192.0.2.1", "userAgent": "ua"}},
        "isBase64Encoded": false
    });
    assert_eq!(
        invoke(&app, &event.to_string()).await,
        (200, "987".to_owned())
    );
}

#[tokio::test]
async fn the_sample_events_in_infra_are_answered_as_documented() {
    use std::collections::HashMap;
    use switchboard_core::http::{WebhookState, webhook_router};
    use switchboard_core::intake::Intake;
    use switchboard_core::model::Webhook;
    use switchboard_core::verify::{MetaVerifier, Secret};

    let backend = embedded().await;
    let verifier = MetaVerifier::new(vec![Secret::new("dev-secret")], Secret::new("dev-token"));
    let intake = Intake::new(
        backend.store.clone(),
        backend.queue.clone(),
        std::sync::Arc::new(switchboard_core::clock::SystemClock),
    );
    let app = webhook_router(WebhookState::new(
        intake,
        HashMap::from([(Webhook::Whatsapp, verifier)]),
    ));
    let events = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/events");
    let read = |name: &str| std::fs::read_to_string(events.join(name)).unwrap();
    assert_eq!(
        invoke(&app, &read("whatsapp-verify.json")).await,
        (200, "1158201444".to_owned())
    );
    assert_eq!(invoke(&app, &read("whatsapp-post.json")).await.0, 200);
    assert_eq!(backend.probe.drain().await.len(), 1);
}

/// The prioritizer's Lambda handler on an SQS event as Lambda delivers it
/// (`infra/events/sqs-intake.json`), over DynamoDB on moto: the response names exactly the
/// messages to retry, in the shape the event source mapping reads (`batchItemFailures`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prioritizer_answers_an_sqs_event_with_only_the_failed_message_ids() {
    let event = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/events/sqs-intake.json"),
    )
    .unwrap();
    let event: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_str(&event).expect("an SQS event");
    let backend = switchboard_tests::aws().await;
    let response = switchboard_aws::app::handle_sqs(&backend.prioritizer(), event).await;
    let response = serde_json::to_value(&response).unwrap();
    assert_eq!(
        response,
        json!({"batchItemFailures": [
            {"itemIdentifier": "059f36b4-87a3-44ab-83d2-661975830a7d"},
            {"itemIdentifier": "2e1424d4-f796-459a-8184-9c92662be6da"}
        ]})
    );
}

/// The sla-reminder function's handler on an SQS event of the reminder queue
/// (`infra/events/sqs-reminder.json`), over DynamoDB on moto.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sla_reminder_answers_an_sqs_event_with_only_the_failed_message_ids() {
    let event = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/events/sqs-reminder.json"),
    )
    .unwrap();
    let event: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_str(&event).expect("an SQS event");
    let backend = switchboard_tests::aws().await;
    let response = switchboard_aws::app::handle_reminders(&backend.reminder_handler(), event).await;
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        json!({"batchItemFailures": [{"itemIdentifier": "8e9d5b6f-2c3a-4d4e-af90-1b2c3d4e5f60"}]})
    );
}
