//! A fake Telegram Bot API on loopback: it records every `sendMessage` (the bot token of its
//! path and the JSON body) and answers as Telegram does (`{"ok": true, "result": {"message_id",
//! "chat"}}`), or with what a test told it to answer next.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard_senders::{AccessToken, TelegramSender};

/// The bot token the tests configure.
pub const BOT_TOKEN: &str = "123456:TEST-bot-token";

/// One request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct BotRequest {
    /// The bot token of the path (`/bot<token>/<method>`).
    pub token: String,
    /// The method (`sendMessage`).
    pub method: String,
    /// The JSON body.
    pub body: Value,
}

#[derive(Default)]
struct Recorded {
    requests: Vec<BotRequest>,
    script: VecDeque<(u16, Value)>,
    sent: i64,
}

/// The fake, serving until dropped with the test's runtime.
#[derive(Clone)]
pub struct FakeTelegram {
    /// Its base URL (`http://127.0.0.1:<port>`).
    pub url: String,
    state: Arc<Mutex<Recorded>>,
}

impl FakeTelegram {
    /// Starts a fake on a free loopback port.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(Recorded::default()));
        let app = Router::new()
            .route("/{bot}/{method}", axum::routing::post(answer))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Bot API");
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    /// A sender to this fake with the test bot token.
    pub fn sender(&self) -> Arc<TelegramSender> {
        Arc::new(TelegramSender::new(
            &self.url,
            Some(AccessToken::new(BOT_TOKEN)),
            Duration::from_secs(10),
        ))
    }

    /// Answers the next request with `status` and `json` (in the order given).
    pub fn then(&self, status: u16, json: Value) {
        self.state.lock().unwrap().script.push_back((status, json));
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<BotRequest> {
        self.state.lock().unwrap().requests.clone()
    }
}

async fn answer(
    State(state): State<Arc<Mutex<Recorded>>>,
    Path((bot, method)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut s = state.lock().unwrap();
    s.requests.push(BotRequest {
        token: bot.strip_prefix("bot").unwrap_or_default().to_owned(),
        method,
        body: body.clone(),
    });
    if let Some((status, json)) = s.script.pop_front() {
        return (StatusCode::from_u16(status).unwrap(), axum::Json(json)).into_response();
    }
    s.sent += 1;
    let ok = json!({"ok": true, "result": {
        "message_id": 9000 + s.sent,
        "chat": {"id": body["chat_id"], "type": "private"},
        "date": 1_790_000_000,
        "text": body["text"],
    }});
    (StatusCode::OK, axum::Json(ok)).into_response()
}
