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
    use switchboard_core::channels::Verification;
    use switchboard_core::channels::meta::MetaVerifier;
    use switchboard_core::intake::Intake;
    use switchboard_core::model::Webhook;
    use switchboard_core::verify::Secret;
    use switchboard_http::{WebhookState, webhook_router};

    let backend = embedded().await;
    let verifier = std::sync::Arc::new(MetaVerifier::new(
        vec![Secret::new("dev-secret")],
        Secret::new("dev-token"),
    ));
    let verification = Verification {
        signature: verifier.clone(),
        handshake: verifier,
    };
    let intake = Intake::new(
        backend.store.clone(),
        backend.queue.clone(),
        std::sync::Arc::new(switchboard_core::clock::SystemClock),
    );
    let mut telegram = switchboard_core::channels::ChannelSecrets::new("dev");
    telegram.set("secret_tokens", ["dev-secret".to_owned()]);
    let telegram = switchboard_core::channels::module(Webhook::Telegram)
        .verification(&telegram)
        .unwrap();
    let mut x = switchboard_core::channels::ChannelSecrets::new("dev");
    x.set("consumer_secrets", ["dev-secret".to_owned()]);
    let x = switchboard_core::channels::module(Webhook::X)
        .verification(&x)
        .unwrap();
    let app = webhook_router(WebhookState::new(
        intake,
        HashMap::from([
            (Webhook::Whatsapp, verification),
            (Webhook::Telegram, telegram),
            (Webhook::X, x),
        ]),
        std::sync::Arc::new(switchboard_core::clock::SystemClock),
    ));
    let events = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/events");
    let read = |name: &str| std::fs::read_to_string(events.join(name)).unwrap();
    assert_eq!(
        invoke(&app, &read("whatsapp-verify.json")).await,
        (200, "1158201444".to_owned())
    );
    assert_eq!(invoke(&app, &read("whatsapp-post.json")).await.0, 200);
    assert_eq!(backend.probe.drain().await.len(), 1);
    assert_eq!(invoke(&app, &read("telegram-post.json")).await.0, 200);
    assert_eq!(backend.probe.drain().await.len(), 1);
    assert_eq!(invoke(&app, &read("x-post.json")).await.0, 200);
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
    let response = switchboard_lambda::handle_sqs(&backend.prioritizer(), event).await;
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
    let response = switchboard_lambda::handle_sqs(&backend.reminder_handler(), event).await;
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        json!({"batchItemFailures": [{"itemIdentifier": "8e9d5b6f-2c3a-4d4e-af90-1b2c3d4e5f60"}]})
    );
}

/// An API Gateway HTTP API event of the agent API's route (`ANY /api/{proxy+}`), IAM-authorized,
/// built on `infra/events/api-queue.json`.
fn api_event(method: &str, path_and_query: &str, body: Option<&str>) -> String {
    let mut event: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/events/api-queue.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let params: serde_json::Map<String, serde_json::Value> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_owned(), json!(v))
        })
        .collect();
    event["rawPath"] = json!(path);
    event["rawQueryString"] = json!(query);
    event["queryStringParameters"] = json!(params);
    event["pathParameters"]["proxy"] = json!(path.trim_start_matches("/api/"));
    event["requestContext"]["http"]["method"] = json!(method);
    event["requestContext"]["http"]["path"] = json!(path);
    if let Some(body) = body {
        event["headers"]["content-type"] = json!("application/json");
        event["body"] = json!(body);
    }
    event.to_string()
}

async fn api_json(
    app: &axum::Router,
    method: &str,
    uri: &str,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let (status, body) = invoke(app, &api_event(method, uri, body)).await;
    (
        status,
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
    )
}

/// The agent-api function as deployed: built from the settings the stack gives it, over
/// DynamoDB and EventBridge Scheduler on moto, answering API Gateway events. The sample event
/// reads the billing queue; an agent tool's answer ends the wait, deletes its reminders and
/// takes the conversation out of the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_api_function_serves_the_queue_and_takes_answers_on_aws() {
    use switchboard_aws::assembly::AwsPorts;
    use switchboard_aws::settings::ApiSettings;
    use switchboard_lambda::agent_api;

    let backend = switchboard_tests::aws().await;
    let webhooks = backend.app(None);
    let t = chrono::Utc::now().timestamp() - 60;
    for (from, id, ts, text) in [
        (
            "5215550000001",
            "wamid.API1",
            t,
            "me cobraron dos veces, es urgente",
        ),
        ("5215550000002", "wamid.API2", t - 60, "gracias!"),
    ] {
        let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "messages",
          "value": {"metadata": {"display_phone_number": "15550001111", "phone_number_id": "PN"},
                    "contacts": [{"profile": {"name": "Cliente"}, "wa_id": from}],
                    "messages": [{"from": from, "id": id, "timestamp": ts.to_string(),
                                  "type": "text", "text": {"body": text}}]}}]}]})
        .to_string();
        let (status, _) = switchboard_tests::call(
            &webhooks,
            switchboard_tests::signed_to(
                switchboard_core::model::Webhook::Whatsapp,
                body.into_bytes(),
            ),
        )
        .await;
        assert_eq!(status, 200);
    }
    assert_eq!(backend.prioritize_all(&backend.prioritizer()).await, 2);
    let scheduled = backend.pending.names().await;
    assert!(!scheduled.is_empty(), "the waits have reminders");

    let env = backend.env.clone();
    let settings =
        ApiSettings::from_source(&|name: &str| env.get(name).cloned()).expect("settings");
    let sdk = switchboard_tests::moto().await.sdk_config().await;
    let ports = AwsPorts::new(
        &sdk,
        &settings.store(),
        std::sync::Arc::new(switchboard_core::clock::SystemClock),
    );
    let fake = switchboard_tests::graph::FakeGraph::start().await;
    let api = agent_api(&ports, &settings, fake.sender());

    // The sample event, as it is: the billing team's queue holds the double charge.
    let sample = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/events/api-queue.json"),
    )
    .unwrap();
    let (status, body) = invoke(&api, &sample).await;
    assert_eq!(status, 200, "{body}");
    let billing: serde_json::Value = serde_json::from_str(&body).unwrap();
    let items = billing["items"].as_array().expect("a page");
    assert_eq!(items.len(), 1, "{billing}");
    let urgent = &items[0];
    assert_eq!(urgent["customer_provider_id"], "5215550000001");
    assert!(
        urgent["due_at"].is_string() && urgent["warn_at"].is_string(),
        "{urgent}"
    );
    assert!(!urgent["priority"]["reasons"].as_array().unwrap().is_empty());

    // Every team's queue: the urgent one first.
    let (status, all) = api_json(&api, "GET", "/api/queue", None).await;
    assert_eq!(status, 200);
    let who: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["customer_provider_id"].as_str().unwrap())
        .collect();
    assert_eq!(who, ["5215550000001", "5215550000002"]);

    // An agent tool answers the urgent one.
    let id = urgent["id"].as_str().unwrap();
    let (status, answered) = api_json(
        &api,
        "POST",
        &format!("/api/conversations/{id}/answered"),
        Some(&json!({"at": chrono::Utc::now().to_rfc3339()}).to_string()),
    )
    .await;
    assert_eq!(status, 200, "{answered}");
    assert!(answered["waiting_since"].is_null(), "{answered}");
    assert!(
        answered["last_response_seconds"].as_i64().is_some(),
        "{answered}"
    );
    let left = backend.pending.names().await;
    assert!(
        left.len() < scheduled.len(),
        "the answered wait's reminders are deleted"
    );
    let (_, all) = api_json(&api, "GET", "/api/queue", None).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 1, "{all}");
    assert_eq!(all["items"][0]["customer_provider_id"], "5215550000002");

    // The rest of the contract: 404 for an unknown conversation, 404 for events (on the bus).
    let (status, _) = api_json(
        &api,
        "POST",
        "/api/conversations/cv_00000000000000000000000000000000/answered",
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = api_json(&api, "GET", "/api/events", None).await;
    assert_eq!(status, 404);
}

/// The agent-api function replies as deployed: its access token from the webhook's secret in
/// Secrets Manager (on moto), the Graph API from `SWITCHBOARD_GRAPH_API_URL` (a fake on
/// loopback); the reply is stored in DynamoDB, ends the wait and deletes its reminders, the
/// agent is the IAM caller; the same idempotency key sends nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_api_function_replies_with_the_token_in_its_secret_on_aws() {
    use switchboard_aws::assembly::{AwsPorts, reply_tokens};
    use switchboard_aws::settings::ApiSettings;
    use switchboard_lambda::agent_api;
    use switchboard_senders::Senders;

    let backend = switchboard_tests::aws().await;
    let webhooks = backend.app(None);
    let customer = "5215550000077";
    let body = switchboard_tests::payloads::whatsapp_text(
        "PN",
        customer,
        "wamid.LAMBDA1",
        chrono::Utc::now().timestamp() - 120,
        "no puedo entrar a mi cuenta",
    );
    let (status, _) = switchboard_tests::call(
        &webhooks,
        switchboard_tests::signed_to(switchboard_core::model::Webhook::Whatsapp, body),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(backend.prioritize_all(&backend.prioritizer()).await, 1);
    let scheduled = backend.pending.names().await;
    assert!(!scheduled.is_empty());

    let sdk = switchboard_tests::moto().await.sdk_config().await;
    let secret = aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(format!(
            "whatsapp-{}",
            chrono::Utc::now().timestamp_nanos_opt().unwrap()
        ))
        .secret_string(
            json!({"app_secrets": ["s"], "verify_token": "v", "access_token": "EAAG-from-secret"})
                .to_string(),
        )
        .send()
        .await
        .expect("create secret");
    let fake = switchboard_tests::graph::FakeGraph::start().await;
    let mut env = backend.env.clone();
    env.insert(
        "SWITCHBOARD_WHATSAPP_SECRET_ARN".into(),
        secret.arn().unwrap().to_owned(),
    );
    env.insert("SWITCHBOARD_GRAPH_API_URL".into(), fake.url.clone());
    let source = |name: &str| env.get(name).cloned();
    let settings = ApiSettings::from_source(&source).expect("settings");
    let tokens = reply_tokens(&source, Some(&sdk)).await.expect("tokens");
    assert_eq!(tokens.len(), 1, "only WhatsApp has a token");
    let sender = Senders::from_source(&source, tokens).expect("sender");
    let ports = AwsPorts::new(
        &sdk,
        &settings.store(),
        std::sync::Arc::new(switchboard_core::clock::SystemClock),
    );
    let api = agent_api(&ports, &settings, std::sync::Arc::new(sender));

    let (_, listed) = api_json(&api, "GET", "/api/conversations", None).await;
    let id = listed["items"][0]["id"].as_str().unwrap().to_owned();
    let mut event: serde_json::Value = serde_json::from_str(&api_event(
        "POST",
        &format!("/api/conversations/{id}/reply"),
        Some(&json!({"text": "Te ayudamos ya", "reply_to": "wamid.LAMBDA1"}).to_string()),
    ))
    .unwrap();
    event["headers"]["idempotency-key"] = json!("k-lambda");
    let (status, sent) = invoke(&api, &event.to_string()).await;
    assert_eq!(status, 201, "{sent}");
    let (again, _) = invoke(&api, &event.to_string()).await;
    assert_eq!(again, 201);
    let requests = fake.requests();
    assert_eq!(requests.len(), 1, "one send for one key");
    assert_eq!(requests[0].token.as_deref(), Some("EAAG-from-secret"));
    assert_eq!(requests[0].path, "PN/messages");
    assert_eq!(requests[0].body["to"], customer);
    let sent: serde_json::Value = serde_json::from_str(&sent).unwrap();
    assert_eq!(sent["provider_message_id"], "wamid.FAKE1");

    let (_, c) = api_json(&api, "GET", &format!("/api/conversations/{id}"), None).await;
    assert_eq!(c["status"], "answered", "{c}");
    let left = backend.pending.names().await;
    assert!(
        left.len() < scheduled.len(),
        "the answered wait's reminders are deleted"
    );
    let sent_events = backend.published.of_type("message.sent").await;
    assert!(
        sent_events
            .iter()
            .all(|e| e["detail"]["sent_by"] == "arn:aws:iam::123456789012:user/agent-desk"),
        "{sent_events:?}"
    );
    assert!(!sent_events.is_empty());
}

/// The agent-api function refuses to start without its settings, naming the first missing.
#[test]
fn the_agent_api_settings_name_what_is_missing() {
    use switchboard_aws::settings::ApiSettings;
    let none = |_: &str| None::<String>;
    let err = ApiSettings::from_source(&none).unwrap_err();
    assert!(err.to_string().contains("SWITCHBOARD_TABLE"), "{err}");
    let table_only = |name: &str| (name == "SWITCHBOARD_TABLE").then(|| "t".to_owned());
    let err = ApiSettings::from_source(&table_only).unwrap_err();
    assert!(err.to_string().contains("SWITCHBOARD_EVENT_BUS"), "{err}");
    let no_schedules = |name: &str| {
        matches!(name, "SWITCHBOARD_TABLE" | "SWITCHBOARD_EVENT_BUS").then(|| "t".to_owned())
    };
    let err = ApiSettings::from_source(&no_schedules).unwrap_err();
    assert!(
        err.to_string().contains("SWITCHBOARD_SCHEDULE_GROUP"),
        "{err}"
    );
    let bad_priority = |name: &str| match name {
        "SWITCHBOARD_PRIORITY" => Some("/nonexistent/priority.toml".to_owned()),
        "SWITCHBOARD_RETENTION_DAYS" => None,
        _ => Some("x".to_owned()),
    };
    let err = ApiSettings::from_source(&bad_priority).unwrap_err();
    assert!(err.to_string().contains("SWITCHBOARD_PRIORITY"), "{err}");
}

/// The prioritizer's model setting: unset, the word lists alone; named, the model it opens;
/// a file that is not there or not a model stops start-up with an error naming
/// `SWITCHBOARD_MODEL` (the layer is part of the stack: its absence is a broken deployment).
#[test]
fn the_prioritizer_opens_the_model_its_setting_names_or_says_why_not() {
    use switchboard_aws::settings::PrioritizerSettings;
    use switchboard_core::priority::{History, PriorityConfig};
    let model = switchboard_encoder::default_model_path();
    let with = |value: Option<String>| {
        move |name: &str| match name {
            "SWITCHBOARD_MODEL" => value.clone(),
            "SWITCHBOARD_RETENTION_DAYS" | "SWITCHBOARD_PRIORITY" | "SWITCHBOARD_POLICY" => None,
            "SWITCHBOARD_SCHEDULER_DLQ_ARN" | "SWITCHBOARD_SILENT_AFTER" => None,
            "SWITCHBOARD_STATUSES_ANSWER" | "SWITCHBOARD_AUTO_LINK" => None,
            _ => Some("arn:aws:sqs:us-east-1:000000000000:x".to_owned()),
        }
    };
    let unset = PrioritizerSettings::from_source(&with(None)).unwrap();
    assert_eq!(unset.model, None);
    let plain = switchboard_lambda::scorer(unset.priority, None).unwrap();
    assert!(!plain.has_model());

    let named = PrioritizerSettings::from_source(&with(Some(model.display().to_string()))).unwrap();
    assert_eq!(named.model.as_deref(), Some(model.as_path()));
    let scorer = switchboard_lambda::scorer(named.priority, named.model.as_deref())
        .unwrap_or_else(|e| panic!("{e} (run infra/model.sh)"));
    let scored = scorer.score(
        "se me incendió el horno al segundo uso",
        false,
        &History::default(),
    );
    assert!(
        scored.reasons.iter().any(|r| r.signal == "model"),
        "{scored:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let not_a_model = dir.path().join("model.bin");
    std::fs::write(&not_a_model, b"not a model").unwrap();
    for path in [dir.path().join("missing.bin"), not_a_model] {
        let err = switchboard_lambda::scorer(PriorityConfig::default_config(), Some(&path))
            .unwrap_err()
            .to_string();
        assert!(err.contains("SWITCHBOARD_MODEL"), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
    }
}

/// The deployed console: the agent-api function, given the stack's user pool settings, serves
/// the page (told to sign in with Cognito) and its assets to API Gateway events, and records
/// the signed-in user of the JWT authorizer as the agent; without them it serves no console.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_api_function_serves_the_console_and_knows_the_signed_in_agent() {
    use switchboard_aws::assembly::AwsPorts;
    use switchboard_aws::settings::{ApiSettings, CONSOLE_CLIENT_ID, CONSOLE_COGNITO_DOMAIN};
    use switchboard_lambda::agent_api;

    let backend = switchboard_tests::aws().await;
    let mut env = backend.env.clone();
    let sdk = switchboard_tests::moto().await.sdk_config().await;
    let fake = switchboard_tests::graph::FakeGraph::start().await;
    let build = |env: &std::collections::HashMap<String, String>| {
        let settings = ApiSettings::from_source(&|name: &str| env.get(name).cloned());
        settings.map(|settings| {
            let ports = AwsPorts::new(
                &sdk,
                &settings.store(),
                std::sync::Arc::new(switchboard_core::clock::SystemClock),
            );
            agent_api(&ports, &settings, fake.sender())
        })
    };
    let page_event = |path: &str| {
        let mut e: serde_json::Value = serde_json::from_str(&api_event("GET", path, None)).unwrap();
        e["routeKey"] = json!(if path == "/" {
            "GET /"
        } else {
            "GET /assets/{proxy+}"
        });
        e["requestContext"]["authorizer"] = serde_json::Value::Null;
        e.to_string()
    };

    let without = build(&env).expect("settings");
    assert_eq!(
        invoke(&without, &page_event("/")).await.0,
        404,
        "no console without a pool"
    );

    // One of the two settings alone names the other.
    env.insert(
        CONSOLE_COGNITO_DOMAIN.into(),
        "switchboard-x.auth.us-east-1.amazoncognito.com".into(),
    );
    let Err(err) = build(&env) else {
        panic!("a missing setting")
    };
    let err = err.to_string();
    assert!(err.contains(CONSOLE_CLIENT_ID), "{err}");
    env.insert(CONSOLE_CLIENT_ID.into(), "3abcclient".into());
    let app = build(&env).expect("settings");

    let (status, page) = invoke(&app, &page_event("/")).await;
    assert_eq!(status, 200);
    assert!(
        page.contains(r#"<meta name="switchboard-auth" content="cognito" />"#),
        "{page}"
    );
    assert!(page.contains("switchboard-x.auth.us-east-1.amazoncognito.com"));
    assert!(page.contains(r#"content="3abcclient""#));
    let (status, script) = invoke(&app, &page_event("/assets/console.js")).await;
    assert_eq!(status, 200);
    assert!(script.len() > 10_000);

    // A call through the console's JWT authorizer acts as the signed-in user.
    let mut me: serde_json::Value =
        serde_json::from_str(&api_event("GET", "/api/me", None)).unwrap();
    me["requestContext"]["authorizer"] = json!({"jwt": {
        "claims": {"username": "ana@example.com", "client_id": "3abcclient", "token_use": "access"},
        "scopes": ["openid", "email"]}});
    let (status, body) = invoke(&app, &me.to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["agent"],
        "ana@example.com"
    );
}

/// The customer-erasure function as deployed: built from the settings the stack gives it (none
/// of the agent API's priority or console settings), over DynamoDB and Scheduler on moto,
/// answering an IAM-authorized API Gateway event with the receipt; the agent API does not
/// erase.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_customer_erasure_function_erases_on_aws_and_the_agent_api_does_not() {
    use switchboard_aws::assembly::AwsPorts;
    use switchboard_aws::settings::{ApiSettings, ErasureSettings};
    use switchboard_lambda::{agent_api, erasure_api};

    let backend = switchboard_tests::aws().await;
    let webhooks = backend.app(None);
    let body = switchboard_tests::payloads::whatsapp_text(
        "PN",
        "5215550000099",
        "wamid.ERASE1",
        chrono::Utc::now().timestamp() - 60,
        "borren mis datos",
    );
    let (status, _) = switchboard_tests::call(
        &webhooks,
        switchboard_tests::signed_to(switchboard_core::model::Webhook::Whatsapp, body),
    )
    .await;
    assert_eq!(status, 200);
    let customer =
        switchboard_tests::conversation_of(&webhooks, "5215550000099").await["customer_id"]
            .as_str()
            .unwrap()
            .to_owned();

    let env = backend.env.clone();
    let source = |name: &str| env.get(name).cloned();
    let sdk = switchboard_tests::moto().await.sdk_config().await;
    let clock = std::sync::Arc::new(switchboard_core::clock::SystemClock);
    let api_settings = ApiSettings::from_source(&source).expect("agent API settings");
    let api_ports = AwsPorts::new(&sdk, &api_settings.store(), clock.clone());
    let fake = switchboard_tests::graph::FakeGraph::start().await;
    let api = agent_api(&api_ports, &api_settings, fake.sender());
    let path = format!("/api/customers/{customer}");
    let (status, _) = api_json(&api, "DELETE", &path, None).await;
    assert_eq!(status, 404, "the agent API does not erase");

    let settings = ErasureSettings::from_source(&source).expect("erasure settings");
    let ports = AwsPorts::new(&sdk, &settings.store, clock);
    let erasure = erasure_api(&ports, &settings, Vec::new());
    let (status, receipt) = api_json(&erasure, "DELETE", &path, None).await;
    assert_eq!(status, 200, "{receipt}");
    assert_eq!(receipt["customers"], 1, "{receipt}");
    assert_eq!(receipt["records"], 1, "{receipt}");
    assert_eq!(receipt["deliveries"], 1, "{receipt}");
    let (status, _) = api_json(&erasure, "DELETE", &path, None).await;
    assert_eq!(status, 404, "erased already");
    let (status, body) = api_json(&erasure, "GET", &path, None).await;
    assert!(status == 404 || status == 405, "{status} {body}");
    assert_eq!(api_json(&api, "GET", &path, None).await.0, 404);
}

/// A webhook function (and `email-intake`) refuses to start without its settings, naming the
/// first missing: the table, then the outbox table.
#[test]
fn the_intake_settings_name_what_is_missing() {
    use switchboard_aws::settings::IntakeSettings;
    let none = |_: &str| None::<String>;
    let err = IntakeSettings::from_source(&none).unwrap_err();
    assert!(err.to_string().contains("SWITCHBOARD_TABLE"), "{err}");
    let table_only = |name: &str| (name == "SWITCHBOARD_TABLE").then(|| "t".to_owned());
    let err = IntakeSettings::from_source(&table_only).unwrap_err();
    assert!(
        err.to_string().contains("SWITCHBOARD_OUTBOX_TABLE"),
        "{err}"
    );
    let both = |name: &str| {
        matches!(name, "SWITCHBOARD_TABLE" | "SWITCHBOARD_OUTBOX_TABLE").then(|| "t".to_owned())
    };
    let settings = IntakeSettings::from_source(&both).unwrap();
    assert_eq!(settings.outbox_table, "t");
}

/// The intake-forwarder's handler on a DynamoDB stream event as Lambda sends it (every field
/// of the record, not only those read): the entries reach the intake queue on moto in order,
/// and the response is the partial batch response Lambda reads; a failed send names the
/// record to retry from.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forwarder_answers_a_stream_event_as_lambda_sends_it() {
    use std::sync::Arc;
    use switchboard_aws::forwarder::{Forwarder, StreamEvent};
    use switchboard_core::ports::IntakeQueue;
    let backend = switchboard_tests::aws().await;
    let entry = |key: &str| {
        json!({"record_key": key, "conversation_id": "cv_fwd", "channel": "whatsapp",
               "record_type": "message", "kind": "text", "account_id": "PN"})
    };
    let record = |seq: &str, name: &str, keys: &[&str]| {
        let entries: Vec<_> = keys.iter().map(|k| entry(k)).collect();
        json!({
            "eventID": format!("e{seq}"), "eventName": name, "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
            "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/s-outbox/stream/2026-12-07T00:00:00.000",
            "dynamodb": {
                "ApproximateCreationDateTime": 1796600000.0,
                "Keys": {"conversation": {"S": "cv_fwd"}},
                "NewImage": {"conversation": {"S": "cv_fwd"},
                             "entries": {"S": serde_json::to_string(&entries).unwrap()},
                             "expires_at": {"N": "1796686400"}},
                "SequenceNumber": seq, "SizeBytes": 412, "StreamViewType": "NEW_IMAGE"
            }
        })
    };
    let event: StreamEvent = serde_json::from_value(json!({"Records": [
        record("100", "INSERT", &["k1", "k2"]),
        record("101", "MODIFY", &["k3"]),
    ]}))
    .expect("the event Lambda sends");
    let forwarder = Forwarder::new(backend.queue.clone());
    let answer = serde_json::to_value(forwarder.forward(&event).await).unwrap();
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let queued: Vec<String> = backend
        .probe
        .drain()
        .await
        .iter()
        .map(|e| e.record_key.to_string())
        .collect();
    assert_eq!(queued, ["k1", "k2", "k3"]);

    let flaky = Arc::new(switchboard_tests::FlakyQueue::new(backend.queue.clone(), 1));
    let forwarder = Forwarder::new(flaky as Arc<dyn IntakeQueue>);
    let answer = serde_json::to_value(forwarder.forward(&event).await).unwrap();
    assert_eq!(
        answer,
        json!({"batchItemFailures": [{"itemIdentifier": "100"}]})
    );
}
