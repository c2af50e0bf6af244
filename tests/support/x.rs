//! A fake X API on loopback: it records every DM (`/2/dm_conversations/with/{id}/messages`)
//! and reply tweet (`/2/tweets`) with its bearer token and JSON body, and answers as X does
//! (`201 {"data": {"dm_event_id"}}`, `201 {"data": {"id", "text"}}`), or with what a test told
//! it to answer next.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard_senders::{AccessToken, XSender};

/// The user-context token the tests configure.
pub const X_USER_TOKEN: &str = "test-x-user-token";

/// One request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct XRequest {
    /// The path (`/2/tweets`).
    pub path: String,
    /// The `Authorization` header.
    pub authorization: String,
    /// The JSON body.
    pub body: Value,
}

#[derive(Default)]
struct Recorded {
    requests: Vec<XRequest>,
    script: VecDeque<(u16, Value)>,
    sent: u64,
}

/// The fake, serving until dropped with the test's runtime.
#[derive(Clone)]
pub struct FakeX {
    /// Its base URL (`http://127.0.0.1:<port>`).
    pub url: String,
    state: Arc<Mutex<Recorded>>,
}

impl FakeX {
    /// Starts a fake on a free loopback port.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(Recorded::default()));
        let app = Router::new()
            .fallback(axum::routing::post(answer))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake X API");
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    /// A sender to this fake with the test user token.
    pub fn sender(&self) -> Arc<XSender> {
        Arc::new(XSender::new(
            &self.url,
            Some(AccessToken::new(X_USER_TOKEN)),
            Duration::from_secs(10),
        ))
    }

    /// Answers the next request with `status` and `json` (in the order given).
    pub fn then(&self, status: u16, json: Value) {
        self.state.lock().unwrap().script.push_back((status, json));
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<XRequest> {
        self.state.lock().unwrap().requests.clone()
    }
}

async fn answer(
    State(state): State<Arc<Mutex<Recorded>>>,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = uri.path().to_owned();
    let mut s = state.lock().unwrap();
    s.requests.push(XRequest {
        path: path.clone(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        body: body.clone(),
    });
    if let Some((status, json)) = s.script.pop_front() {
        return (StatusCode::from_u16(status).unwrap(), axum::Json(json)).into_response();
    }
    s.sent += 1;
    let id = (1_900_000_000_000_000_000 + s.sent).to_string();
    let data = if path == "/2/tweets" {
        json!({"data": {"id": id, "text": body["text"]}})
    } else if let Some(participant) = path
        .strip_prefix("/2/dm_conversations/with/")
        .and_then(|p| p.strip_suffix("/messages"))
    {
        json!({"data": {"dm_conversation_id": format!("100-{participant}"), "dm_event_id": id}})
    } else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"title": "Not Found"})),
        )
            .into_response();
    };
    (StatusCode::CREATED, axum::Json(data)).into_response()
}
