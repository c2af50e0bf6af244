//! A fake Graph API on loopback: it records every request (path, bearer token, JSON body) and
//! answers as Meta does (`messages[0].id` for WhatsApp, `message_id` for Messenger and
//! Instagram, `id` for comments), or with what a test told it to answer next (an error, a
//! delay).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard_core::model::Webhook;
use switchboard_senders::{AccessToken, GraphSender, GraphSettings};

/// The token the fake expects for each webhook: `token-<webhook>`.
pub fn token_of(webhook: Webhook) -> String {
    format!("token-{webhook}")
}

/// One request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphRequest {
    /// The path after the version (`<id>/messages`, `<comment>/comments`, …).
    pub path: String,
    /// The bearer token, when there was one.
    pub token: Option<String>,
    /// The JSON body.
    pub body: Value,
}

/// What the fake answers to the next request instead of success.
#[derive(Debug, Clone)]
pub enum Scripted {
    /// This status and JSON.
    Answer(u16, Value),
    /// No answer for this long, then success.
    Delay(Duration),
}

#[derive(Default)]
struct Recorded {
    requests: Vec<GraphRequest>,
    script: VecDeque<Scripted>,
    sent: usize,
}

/// The fake, serving until dropped with the test's runtime.
#[derive(Clone)]
pub struct FakeGraph {
    /// Its base URL (`http://127.0.0.1:<port>/v23.0`).
    pub url: String,
    state: Arc<Mutex<Recorded>>,
}

impl FakeGraph {
    /// Starts a fake on a free loopback port.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(Recorded::default()));
        let app = Router::new()
            .route("/v23.0/{id}/{edge}", axum::routing::post(answer))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Graph API");
        let url = format!("http://{}/v23.0", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    /// A sender to this fake with every webhook's token, timing out after `timeout`.
    pub fn sender_with_timeout(&self, timeout: Duration) -> Arc<GraphSender> {
        let tokens = Webhook::ALL
            .into_iter()
            .map(|w| (w, AccessToken::new(token_of(w))))
            .collect();
        Arc::new(GraphSender::new(GraphSettings {
            base_url: self.url.clone(),
            tokens,
            timeout,
        }))
    }

    /// A sender to this fake with every webhook's token.
    pub fn sender(&self) -> Arc<GraphSender> {
        self.sender_with_timeout(Duration::from_secs(10))
    }

    /// Answers the next request with `scripted` (in the order given).
    pub fn then(&self, scripted: Scripted) {
        self.state.lock().unwrap().script.push_back(scripted);
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<GraphRequest> {
        self.state.lock().unwrap().requests.clone()
    }
}

async fn answer(
    State(state): State<Arc<Mutex<Recorded>>>,
    Path((id, edge)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let (scripted, n) = {
        let mut s = state.lock().unwrap();
        s.requests.push(GraphRequest {
            path: format!("{id}/{edge}"),
            token,
            body: body.clone(),
        });
        let scripted = s.script.pop_front();
        if !matches!(scripted, Some(Scripted::Answer(..))) {
            s.sent += 1;
        }
        (scripted, s.sent)
    };
    match scripted {
        Some(Scripted::Answer(status, json)) => {
            return (StatusCode::from_u16(status).unwrap(), axum::Json(json)).into_response();
        }
        Some(Scripted::Delay(d)) => tokio::time::sleep(d).await,
        None => {}
    }
    let ok = if edge == "comments" || edge == "replies" {
        json!({ "id": format!("{id}_reply{n}") })
    } else if body["messaging_product"] == "whatsapp" {
        json!({
            "messaging_product": "whatsapp",
            "contacts": [{ "input": body["to"], "wa_id": body["to"] }],
            "messages": [{ "id": format!("wamid.FAKE{n}") }],
        })
    } else {
        json!({ "recipient_id": body["recipient"]["id"], "message_id": format!("m_FAKE{n}") })
    };
    (StatusCode::OK, axum::Json(ok)).into_response()
}
