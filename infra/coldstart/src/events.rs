//! The event each function is invoked with, and what counts as a successful answer.
//!
//! * `webhook-whatsapp`: `infra/events/whatsapp-post.json` as it is, an API Gateway HTTP API
//!   (payload 2.0) event of a signed WhatsApp text message.
//! * `webhook-facebook`, `webhook-instagram`: the same event sent to their route, with a small
//!   Messenger (`object: page`) or Instagram (`object: instagram`) text message, signed here.
//! * anything else (`coldstart-hello`): a small JSON object.
//!
//! A webhook function must answer `statusCode` 200; for any other function, a response with a
//! `statusCode` must have 200, one without is accepted as it is.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use switchboard_core::model::Webhook;
use switchboard_core::verify::{SIGNATURE_HEADER, sign};

/// The app secret the sample events are signed with.
pub const APP_SECRET: &str = "dev-secret";
/// The verify token of the handshake.
pub const VERIFY_TOKEN: &str = "dev-token";

const WHATSAPP_POST: &str = include_str!("../../events/whatsapp-post.json");
const WHATSAPP_VERIFY: &str = include_str!("../../events/whatsapp-verify.json");

const FACEBOOK_BODY: &str = r#"{"object":"page","entry":[{"id":"1029384756","time":1730231903000,"messaging":[{"sender":{"id":"5550001"},"recipient":{"id":"1029384756"},"timestamp":1730231903000,"message":{"mid":"m_coldstart_facebook","text":"hello"}}]}]}"#;

const INSTAGRAM_BODY: &str = r#"{"object":"instagram","entry":[{"id":"17841400000000001","time":1730231903000,"messaging":[{"sender":{"id":"5550002"},"recipient":{"id":"17841400000000001"},"timestamp":1730231903000,"message":{"mid":"m_coldstart_instagram","text":"hello"}}]}]}"#;

/// What a binary is, from its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A webhook function (`webhook-<channel>`): it needs the table, the queue and the channel's
    /// settings, and answers API Gateway events.
    Webhook(Webhook),
    /// Any other function: it gets a small JSON event.
    Plain,
}

impl Kind {
    /// `webhook-whatsapp` → WhatsApp, …; anything else is plain.
    pub fn of(name: &str) -> Self {
        Webhook::ALL
            .into_iter()
            .find(|w| name == format!("webhook-{w}"))
            .map_or(Kind::Plain, Kind::Webhook)
    }
}

/// Which first invocation a webhook function gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// A signed one-message delivery: the whole intake path, AWS calls included.
    Post,
    /// Meta's subscription handshake (`GET` with `hub.challenge`): no AWS call, so spawn to
    /// response is start-up plus routing, comparable with a function doing no I/O.
    Handshake,
}

/// The event for `kind` in `scenario`, as sent.
pub fn event(kind: Kind, scenario: Scenario) -> Result<Vec<u8>, String> {
    let template: Value = serde_json::from_str(WHATSAPP_POST)
        .map_err(|e| format!("infra/events/whatsapp-post.json: {e}"))?;
    let event = match (kind, scenario) {
        (Kind::Plain, _) => json!({"coldstart": "hello"}),
        (Kind::Webhook(webhook), Scenario::Handshake) => handshake(webhook)?,
        (Kind::Webhook(webhook), Scenario::Post) => post_event(template, webhook)?,
    };
    serde_json::to_vec(&event).map_err(|e| e.to_string())
}

fn post_event(template: Value, webhook: Webhook) -> Result<Value, String> {
    Ok(match webhook {
        Webhook::Whatsapp => {
            check_signature(&template)?;
            template
        }
        Webhook::Facebook => post(template, webhook, FACEBOOK_BODY),
        Webhook::Instagram => post(template, webhook, INSTAGRAM_BODY),
    })
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

/// Whether `body`, a function's response to the event of `kind`, is a success.
pub fn check_response(kind: Kind, body: &[u8]) -> Result<(), String> {
    let shown = || String::from_utf8_lossy(&body[..body.len().min(400)]).into_owned();
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| format!("the response is not JSON ({e}): {}", shown()))?;
    match value.get("statusCode") {
        Some(code) if code.as_u64() == Some(200) => Ok(()),
        Some(code) => Err(format!("statusCode {code}: {}", shown())),
        None if matches!(kind, Kind::Webhook(_)) => {
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
    }

    #[test]
    fn events_are_signed_for_their_route() {
        for webhook in Webhook::ALL {
            let kind = Kind::Webhook(webhook);
            let post: Value =
                serde_json::from_slice(&event(kind, Scenario::Post).unwrap()).expect("JSON event");
            assert_eq!(post["rawPath"], format!("/webhooks/{webhook}"));
            check_signature(&post).expect("signed with the app secret");
            let get: Value = serde_json::from_slice(&event(kind, Scenario::Handshake).unwrap())
                .expect("JSON event");
            assert_eq!(get["rawPath"], format!("/webhooks/{webhook}"));
            assert_eq!(get["requestContext"]["http"]["method"], "GET");
        }
    }

    #[test]
    fn responses() {
        let webhook = Kind::Webhook(Webhook::Whatsapp);
        assert!(check_response(webhook, br#"{"statusCode":200,"body":""}"#).is_ok());
        assert!(check_response(webhook, br#"{"statusCode":401,"body":""}"#).is_err());
        assert!(check_response(webhook, br#""ok""#).is_err());
        assert!(check_response(Kind::Plain, br#""ok""#).is_ok());
        assert!(check_response(Kind::Plain, b"not json").is_err());
    }
}
