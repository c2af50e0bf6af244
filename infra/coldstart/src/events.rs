//! The event each function is invoked with, and what counts as a successful answer.
//!
//! * `webhook-whatsapp`: `infra/events/whatsapp-post.json` as it is, an API Gateway HTTP API
//!   (payload 2.0) event of a signed WhatsApp text message.
//! * `webhook-facebook`, `webhook-instagram`: the same event sent to their route, with a small
//!   Messenger (`object: page`) or Instagram (`object: instagram`) text message, signed here.
//! * `prioritizer`: an SQS event of the intake queue carrying the queue entry of a WhatsApp
//!   message that the harness stored just before the run ([`prioritizer_event`]): the whole
//!   prioritizing path (reads, history, scoring, reminders, the event, the write).
//! * `sla-reminder`: an SQS event of the reminder queue with one breach reminder
//!   (`infra/events/sqs-reminder.json`'s first record) of a conversation that is not stored:
//!   one read, and nothing to do.
//! * `agent-api`: `infra/events/api-queue.json`, `GET /api/queue?team=billing`: one query.
//! * `intake-forwarder`: `infra/events/outbox-stream.json`, an outbox stream event with one
//!   queue entry: one `SendMessageBatch` to the intake queue.
//! * anything else (`coldstart-hello`): a small JSON object.
//!
//! With [`Scenario::Handshake`] every function gets a first invocation that makes no AWS call:
//! Meta's subscription `GET` for the webhooks, an entry of a status (acknowledged unread) for
//! the prioritizer, an empty batch for the sla-reminder and the forwarder, `GET /api/events`
//! (404 on AWS) for the agent API.
//!
//! A webhook or agent-API function must answer the expected `statusCode`; a queue consumer
//! must answer an empty `batchItemFailures`; for any other function, a response with a
//! `statusCode` must have 200, one without is accepted as it is.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use switchboard_core::channels::meta::{SIGNATURE_HEADER, sign};
use switchboard_core::model::Webhook;

/// The app secret the sample events are signed with.
pub const APP_SECRET: &str = "dev-secret";
/// The verify token of the handshake.
pub const VERIFY_TOKEN: &str = "dev-token";
/// The Standard Webhooks signing secret of `webhook-standard`'s sample event.
pub const STANDARD_SECRET: &str = "whsec_Y29sZHN0YXJ0LXNpZ25pbmcta2V5LTAx";

const WHATSAPP_POST: &str = include_str!("../../events/whatsapp-post.json");
const WHATSAPP_VERIFY: &str = include_str!("../../events/whatsapp-verify.json");
const SQS_INTAKE: &str = include_str!("../../events/sqs-intake.json");
const SQS_REMINDER: &str = include_str!("../../events/sqs-reminder.json");
const API_QUEUE: &str = include_str!("../../events/api-queue.json");
const OUTBOX_STREAM: &str = include_str!("../../events/outbox-stream.json");

const FACEBOOK_BODY: &str = r#"{"object":"page","entry":[{"id":"1029384756","time":1730231903000,"messaging":[{"sender":{"id":"5550001"},"recipient":{"id":"1029384756"},"timestamp":1730231903000,"message":{"mid":"m_coldstart_facebook","text":"hello"}}]}]}"#;

const STANDARD_BODY: &str = r#"{"type":"message.received","source":"webchat","account":"coldstart-site","customer":{"id":"v-1","name":"Ana"},"message":{"id":"m_coldstart_standard","text":"hello","sent_at":"2024-10-29T20:00:00Z"}}"#;

const TELEGRAM_BODY: &str = r#"{"update_id":900000001,"message":{"message_id":1,"from":{"id":5550003,"is_bot":false,"first_name":"Ana"},"chat":{"id":5550003,"first_name":"Ana","type":"private"},"date":1730231903,"text":"hello"}}"#;

const X_BODY: &str = r#"{"for_user_id":"100","direct_message_events":[{"type":"message_create","id":"1900000000000000001","created_timestamp":"1730231903000","message_create":{"target":{"recipient_id":"100"},"sender_id":"5550005","message_data":{"text":"hello"}}}],"users":{"5550005":{"id":"5550005","name":"Ana","screen_name":"ana"}}}"#;

const EMAIL_BODY: &str = "From: Ana <ana@example.com>\r\nTo: support@acme.example\r\nSubject: Pedido\r\nDate: Tue, 29 Oct 2024 20:00:00 +0000\r\nMessage-ID: <coldstart-email@example.com>\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nhello\r\n";

const INSTAGRAM_BODY: &str = r#"{"object":"instagram","entry":[{"id":"17841400000000001","time":1730231903000,"messaging":[{"sender":{"id":"5550002"},"recipient":{"id":"17841400000000001"},"timestamp":1730231903000,"message":{"mid":"m_coldstart_instagram","text":"hello"}}]}]}"#;

/// What a binary is, from its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A webhook function (`webhook-<channel>`): it needs the table, the queue and the channel's
    /// settings, and answers API Gateway events.
    Webhook(Webhook),
    /// The intake queue's consumer (`prioritizer`): SQS events.
    Prioritizer,
    /// The reminder queue's consumer (`sla-reminder`): SQS events.
    SlaReminder,
    /// The agent API (`agent-api`): API Gateway events.
    AgentApi,
    /// The outbox stream's consumer (`intake-forwarder`): DynamoDB stream events.
    Forwarder,
    /// Any other function: it gets a small JSON event.
    Plain,
}

impl Kind {
    /// `webhook-whatsapp` → WhatsApp, `prioritizer`, `sla-reminder`, `agent-api`; anything
    /// else is plain.
    pub fn of(name: &str) -> Self {
        match name {
            "prioritizer" => Kind::Prioritizer,
            "sla-reminder" => Kind::SlaReminder,
            "agent-api" => Kind::AgentApi,
            "intake-forwarder" => Kind::Forwarder,
            _ => switchboard_core::channels::REGISTRY
                .iter()
                .find(|m| m.function() == name)
                .map_or(Kind::Plain, |m| Kind::Webhook(m.webhook())),
        }
    }

    /// Whether the function needs the stack's resources (a table, queues, …) to start.
    pub fn needs_resources(self) -> bool {
        self != Kind::Plain
    }
}

/// Which first invocation a function gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// A real first request: a signed one-message delivery for a webhook, a stored message's
    /// queue entry for the prioritizer, a reminder for the sla-reminder, a queue read for the
    /// agent API: the function's path with its AWS calls.
    Post,
    /// A first request answered without any AWS call (Meta's subscription handshake for a
    /// webhook; see the module docs for the others), so that spawn to response is start-up plus
    /// routing, comparable with a function doing no I/O.
    Handshake,
}

/// The event for `kind` in `scenario`, as sent; `None` for the prioritizer's real request,
/// whose entry refers to a message stored for each run ([`prioritizer_event`]).
pub fn event(kind: Kind, scenario: Scenario) -> Result<Option<Vec<u8>>, String> {
    let template: Value = serde_json::from_str(WHATSAPP_POST)
        .map_err(|e| format!("infra/events/whatsapp-post.json: {e}"))?;
    let event = match (kind, scenario) {
        (Kind::Plain, _) => json!({"coldstart": "hello"}),
        (Kind::Webhook(webhook), Scenario::Handshake) => handshake(webhook)?,
        (Kind::Webhook(webhook), Scenario::Post) => post_event(template, webhook)?,
        (Kind::Prioritizer, Scenario::Post) => return Ok(None),
        (Kind::Prioritizer, Scenario::Handshake) => {
            let mut event = sample("sqs-intake.json", SQS_INTAKE)?;
            // The third record: a status of a conversation, acknowledged without a read.
            let status = event["Records"][2].take();
            event["Records"] = json!([status]);
            event
        }
        (Kind::SlaReminder, Scenario::Post) => {
            let mut event = sample("sqs-reminder.json", SQS_REMINDER)?;
            let reminder = event["Records"][0].take();
            event["Records"] = json!([reminder]);
            event
        }
        (Kind::SlaReminder, Scenario::Handshake) => json!({"Records": []}),
        (Kind::Forwarder, Scenario::Post) => sample("outbox-stream.json", OUTBOX_STREAM)?,
        (Kind::Forwarder, Scenario::Handshake) => json!({"Records": []}),
        (Kind::AgentApi, Scenario::Post) => sample("api-queue.json", API_QUEUE)?,
        (Kind::AgentApi, Scenario::Handshake) => {
            let mut event = sample("api-queue.json", API_QUEUE)?;
            event["rawPath"] = json!("/api/events");
            event["rawQueryString"] = json!("");
            event["queryStringParameters"] = json!({});
            event["pathParameters"]["proxy"] = json!("events");
            event["requestContext"]["http"]["path"] = json!("/api/events");
            event
        }
    };
    serde_json::to_vec(&event)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// The body of `infra/events/whatsapp-post.json`: a signed WhatsApp text message.
pub fn whatsapp_body() -> Result<Vec<u8>, String> {
    let event = sample("whatsapp-post.json", WHATSAPP_POST)?;
    let body = event["body"].as_str().unwrap_or_default();
    if event["isBase64Encoded"].as_bool() == Some(true) {
        STANDARD
            .decode(body)
            .map_err(|e| format!("infra/events/whatsapp-post.json: body: {e}"))
    } else {
        Ok(body.as_bytes().to_vec())
    }
}

/// The prioritizer's SQS event carrying `entries` (queue entry JSON bodies), shaped as the
/// FIFO intake queue's event source mapping delivers them.
pub fn prioritizer_event(entries: &[String]) -> Result<Vec<u8>, String> {
    let mut event = sample("sqs-intake.json", SQS_INTAKE)?;
    let template = event["Records"][0].take();
    let records: Vec<Value> = entries
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let mut record = template.clone();
            record["messageId"] = json!(format!("c01d5a47-0000-4000-8000-{i:012x}"));
            record["body"] = json!(body);
            record
        })
        .collect();
    event["Records"] = json!(records);
    serde_json::to_vec(&event).map_err(|e| e.to_string())
}

fn sample(name: &str, text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("infra/events/{name}: {e}"))
}

fn post_event(template: Value, webhook: Webhook) -> Result<Value, String> {
    Ok(match webhook {
        Webhook::Whatsapp => {
            check_signature(&template)?;
            template
        }
        Webhook::Facebook => post(template, webhook, FACEBOOK_BODY),
        Webhook::Instagram => post(template, webhook, INSTAGRAM_BODY),
        Webhook::Telegram => {
            // Telegram signs nothing: its secret token is the app secret here.
            let mut event = post(template, webhook, TELEGRAM_BODY);
            let headers = event["headers"].as_object_mut().ok_or("no headers")?;
            headers.remove(SIGNATURE_HEADER);
            headers.insert(
                switchboard_core::channels::telegram::SECRET_TOKEN_HEADER.into(),
                json!(APP_SECRET),
            );
            event
        }
        Webhook::X => {
            let mut event = post(template, webhook, X_BODY);
            let headers = event["headers"].as_object_mut().ok_or("no headers")?;
            headers.remove(SIGNATURE_HEADER);
            headers.insert(
                switchboard_core::channels::x::SIGNATURE_HEADER.into(),
                json!(switchboard_core::channels::x::verify::sign(
                    APP_SECRET,
                    X_BODY.as_bytes()
                )),
            );
            event
        }
        Webhook::Standard => {
            standard_signed(template, webhook, STANDARD_BODY, "msg_coldstart_standard")?
        }
        Webhook::Email => standard_signed(template, webhook, EMAIL_BODY, "msg_coldstart_email")?,
    })
}

/// `template` turned into a POST of `body` to `/webhooks/<webhook>`, signed the Standard
/// Webhooks way with [`STANDARD_SECRET`] at the time of the run, as delivery `id`.
fn standard_signed(
    template: Value,
    webhook: Webhook,
    body: &str,
    id: &str,
) -> Result<Value, String> {
    let mut event = post(template, webhook, body);
    let headers = event["headers"].as_object_mut().ok_or("no headers")?;
    headers.remove(SIGNATURE_HEADER);
    let secret = switchboard_core::channels::standard::StandardSecret::parse(STANDARD_SECRET)
        .map_err(|e| e.to_string())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    headers.insert("webhook-id".into(), json!(id));
    headers.insert("webhook-timestamp".into(), json!(now.to_string()));
    headers.insert(
        "webhook-signature".into(),
        json!(switchboard_core::channels::standard::sign(
            &secret,
            id,
            now,
            body.as_bytes()
        )),
    );
    Ok(event)
}

/// `infra/events/whatsapp-verify.json` sent to `/webhooks/<webhook>`.
fn handshake(webhook: Webhook) -> Result<Value, String> {
    let mut event: Value = serde_json::from_str(WHATSAPP_VERIFY)
        .map_err(|e| format!("infra/events/whatsapp-verify.json: {e}"))?;
    let path = format!("/webhooks/{webhook}");
    let route = format!("GET {path}");
    event["routeKey"] = json!(route);
    event["rawPath"] = json!(path);
    event["requestContext"]["routeKey"] = json!(route);
    event["requestContext"]["http"]["path"] = json!(path);
    if event["queryStringParameters"]["hub.verify_token"] != VERIFY_TOKEN {
        return Err(format!(
            "infra/events/whatsapp-verify.json does not carry the verify token {VERIFY_TOKEN:?}"
        ));
    }
    if webhook == Webhook::X {
        // X's CRC: a token to sign.
        event["rawQueryString"] = json!("crc_token=coldstart-crc-token");
        event["queryStringParameters"] = json!({ "crc_token": "coldstart-crc-token" });
    }
    Ok(event)
}

/// The sample event must be signed with [`APP_SECRET`], or every run would measure a 401.
fn check_signature(event: &Value) -> Result<(), String> {
    let body = event["body"].as_str().unwrap_or_default();
    let body = if event["isBase64Encoded"].as_bool() == Some(true) {
        STANDARD
            .decode(body)
            .map_err(|e| format!("infra/events/whatsapp-post.json: body: {e}"))?
    } else {
        body.as_bytes().to_vec()
    };
    if event["headers"][SIGNATURE_HEADER].as_str() == Some(sign(APP_SECRET, &body).as_str()) {
        Ok(())
    } else {
        Err(format!(
            "infra/events/whatsapp-post.json is not signed with the app secret {APP_SECRET:?}"
        ))
    }
}

/// `template` turned into a signed POST of `body` to `/webhooks/<webhook>`.
fn post(mut template: Value, webhook: Webhook, body: &str) -> Value {
    let path = format!("/webhooks/{webhook}");
    let route = format!("POST {path}");
    template["routeKey"] = json!(route);
    template["rawPath"] = json!(path);
    template["requestContext"]["routeKey"] = json!(route);
    template["requestContext"]["http"]["path"] = json!(path);
    template["headers"][SIGNATURE_HEADER] = json!(sign(APP_SECRET, body.as_bytes()));
    template["body"] = json!(STANDARD.encode(body));
    template["isBase64Encoded"] = json!(true);
    template
}

/// Whether `body`, a function's response to the event of `kind` in `scenario`, is a success.
pub fn check_response(kind: Kind, scenario: Scenario, body: &[u8]) -> Result<(), String> {
    let shown = || String::from_utf8_lossy(&body[..body.len().min(400)]).into_owned();
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the response is not JSON ({e}): {}", shown()))?;
    let expected = match (kind, scenario) {
        (Kind::Prioritizer | Kind::SlaReminder | Kind::Forwarder, _) => {
            return match value.get("batchItemFailures") {
                Some(Value::Array(failed)) if failed.is_empty() => Ok(()),
                _ => Err(format!("a batch with failures: {}", shown())),
            };
        }
        (Kind::AgentApi, Scenario::Handshake) => 404,
        // Standard Webhooks, Telegram and e-mail have no handshake: a GET is answered 400 without
        // any call.
        (
            Kind::Webhook(Webhook::Standard | Webhook::Telegram | Webhook::Email),
            Scenario::Handshake,
        ) => 400,
        _ => 200,
    };
    match value.get("statusCode") {
        Some(code) if code.as_u64() == Some(expected) => Ok(()),
        Some(code) => Err(format!(
            "statusCode {code}, expected {expected}: {}",
            shown()
        )),
        None if matches!(kind, Kind::Webhook(_) | Kind::AgentApi) => {
            Err(format!("no statusCode in the response: {}", shown()))
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_names() {
        assert_eq!(
            Kind::of("webhook-whatsapp"),
            Kind::Webhook(Webhook::Whatsapp)
        );
        assert_eq!(
            Kind::of("webhook-instagram"),
            Kind::Webhook(Webhook::Instagram)
        );
        assert_eq!(Kind::of("coldstart-hello"), Kind::Plain);
        assert_eq!(Kind::of("prioritizer"), Kind::Prioritizer);
        assert_eq!(Kind::of("sla-reminder"), Kind::SlaReminder);
        assert_eq!(Kind::of("agent-api"), Kind::AgentApi);
        assert_eq!(Kind::of("intake-forwarder"), Kind::Forwarder);
    }

    #[test]
    fn events_are_signed_for_their_route() {
        for webhook in Webhook::ALL {
            let kind = Kind::Webhook(webhook);
            let post: Value =
                serde_json::from_slice(&event(kind, Scenario::Post).unwrap().unwrap())
                    .expect("JSON event");
            assert_eq!(post["rawPath"], format!("/webhooks/{webhook}"));
            if matches!(webhook, Webhook::Standard | Webhook::Email) {
                check_standard_signature(&post);
            } else if webhook == Webhook::Telegram {
                let header = switchboard_core::channels::telegram::SECRET_TOKEN_HEADER;
                assert_eq!(post["headers"][header], APP_SECRET);
            } else if webhook == Webhook::X {
                let header = switchboard_core::channels::x::SIGNATURE_HEADER;
                let body = STANDARD.decode(post["body"].as_str().unwrap()).unwrap();
                assert_eq!(
                    post["headers"][header],
                    switchboard_core::channels::x::verify::sign(APP_SECRET, &body)
                );
            } else {
                check_signature(&post).expect("signed with the app secret");
            }
            let get: Value =
                serde_json::from_slice(&event(kind, Scenario::Handshake).unwrap().unwrap())
                    .expect("JSON event");
            assert_eq!(get["rawPath"], format!("/webhooks/{webhook}"));
            assert_eq!(get["requestContext"]["http"]["method"], "GET");
        }
    }

    fn check_standard_signature(event: &Value) {
        use switchboard_core::channels::standard::{StandardSecret, StandardVerifier};
        use switchboard_core::verify::SignatureCheck;
        let mut headers = lambda_http::http::HeaderMap::new();
        for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
            let value = event["headers"][name].as_str().expect(name);
            headers.insert(name, value.parse().unwrap());
        }
        let verifier = StandardVerifier::new(vec![StandardSecret::parse(STANDARD_SECRET).unwrap()]);
        let body = STANDARD.decode(event["body"].as_str().unwrap()).unwrap();
        verifier
            .verify(
                &headers,
                &body,
                switchboard_core::clock::Clock::now(&switchboard_core::clock::SystemClock),
            )
            .expect("signed with the Standard Webhooks secret");
        assert!(event["headers"].get(SIGNATURE_HEADER).is_none());
    }

    #[test]
    fn the_other_functions_get_events_of_their_sources() {
        let sqs = |kind, scenario| -> Value {
            serde_json::from_slice(&event(kind, scenario).unwrap().unwrap()).unwrap()
        };
        assert!(event(Kind::Prioritizer, Scenario::Post).unwrap().is_none());
        let status = sqs(Kind::Prioritizer, Scenario::Handshake);
        assert_eq!(status["Records"].as_array().unwrap().len(), 1);
        assert!(
            status["Records"][0]["body"]
                .as_str()
                .unwrap()
                .contains("\"event\"")
        );
        let reminder = sqs(Kind::SlaReminder, Scenario::Post);
        assert!(
            reminder["Records"][0]["body"]
                .as_str()
                .unwrap()
                .contains("sla.breached")
        );
        assert_eq!(
            sqs(Kind::SlaReminder, Scenario::Handshake)["Records"],
            json!([])
        );
        // The forwarder's sample is a stream event its handler reads.
        let stream: switchboard_aws::forwarder::StreamEvent =
            serde_json::from_value(sqs(Kind::Forwarder, Scenario::Post)).unwrap();
        assert_eq!(stream.records.len(), 2);
        assert_eq!(
            sqs(Kind::Forwarder, Scenario::Handshake)["Records"],
            json!([])
        );
        assert_eq!(sqs(Kind::AgentApi, Scenario::Post)["rawPath"], "/api/queue");
        assert_eq!(
            sqs(Kind::AgentApi, Scenario::Handshake)["rawPath"],
            "/api/events"
        );
        let entries: Value =
            serde_json::from_slice(&prioritizer_event(&["{}".into(), "[]".into()]).unwrap())
                .unwrap();
        assert_eq!(entries["Records"][1]["body"], "[]");
        assert_ne!(
            entries["Records"][0]["messageId"],
            entries["Records"][1]["messageId"]
        );
    }

    #[test]
    fn responses() {
        let post = Scenario::Post;
        let webhook = Kind::Webhook(Webhook::Whatsapp);
        assert!(check_response(webhook, post, br#"{"statusCode":200,"body":""}"#).is_ok());
        assert!(check_response(webhook, post, br#"{"statusCode":401,"body":""}"#).is_err());
        assert!(check_response(webhook, post, br#""ok""#).is_err());
        assert!(check_response(Kind::Plain, post, br#""ok""#).is_ok());
        assert!(check_response(Kind::Plain, post, b"not json").is_err());
        let quiet = Scenario::Handshake;
        assert!(check_response(Kind::AgentApi, quiet, br#"{"statusCode":404}"#).is_ok());
        assert!(check_response(Kind::AgentApi, post, br#"{"statusCode":404}"#).is_err());
        let none = br#"{"batchItemFailures":[]}"#;
        let one = br#"{"batchItemFailures":[{"itemIdentifier":"a"}]}"#;
        assert!(check_response(Kind::Prioritizer, post, none).is_ok());
        assert!(check_response(Kind::SlaReminder, post, one).is_err());
        assert!(check_response(Kind::Forwarder, post, none).is_ok());
        assert!(check_response(Kind::Forwarder, post, one).is_err());
    }
}
