//! `switchboard demo`: a realistic, signed sample day posted through the real webhooks of a
//! running `switchboard serve`, so that a newcomer sees a working queue, a timeline across
//! channels and figures within a minute.
//!
//! Seven customers on WhatsApp, Messenger, Instagram and a page's comments, in Spanish,
//! Portuguese and English: a double charge and a hacked account among calm questions, a public
//! complaint, a page that answered (its echo) and cases resolved, one customer writing on
//! WhatsApp and Instagram (linked here, as an agent would). Times are relative to now, so the
//! queue counts down live. Nothing is sent to any provider.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::time::Duration;

use switchboard_core::channels::meta::samples::{
    instagram_text, messenger_text, page_comment, whatsapp_text_named,
};
use switchboard_core::channels::meta::sign;
use switchboard_core::model::Webhook;

/// The business accounts the sample day writes to.
pub const WHATSAPP_NUMBER: &str = "106540352242922";
/// The Instagram account.
pub const INSTAGRAM_ACCOUNT: &str = "17841400000000001";

/// Why the demo could not finish.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// No app secret to sign a webhook's deliveries with.
    #[error(
        "no app secret for the {0} webhook: run the demo with the data folder of the serve it \
         posts to (--data), or with SWITCHBOARD_{upper}_APP_SECRETS set",
        upper = .0.as_str().to_ascii_uppercase()
    )]
    NoSecret(Webhook),
    /// The server could not be reached or refused a request.
    #[error("{what}: {why}")]
    Http {
        /// What was being done.
        what: String,
        /// What happened.
        why: String,
    },
}

/// What the demo did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Deliveries posted.
    pub deliveries: usize,
    /// Conversations waiting in the queue afterwards.
    pub waiting: usize,
}

struct Server {
    url: String,
    token: Option<String>,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Server {
    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Result<(u16, Value), DemoError> {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url.trim_end_matches('/')))
            .header("content-type", "application/json")
            .header("x-switchboard-agent", "demo");
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        for (k, v) in headers {
            request = request.header(*k, v);
        }
        let fail = |why: String| DemoError::Http {
            what: format!("{method} {path}"),
            why,
        };
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| fail(e.to_string()))?;
        let response = tokio::time::timeout(Duration::from_secs(30), self.client.request(request))
            .await
            .map_err(|_| fail("no answer in 30 s".into()))?
            .map_err(|e| fail(format!("{e} (is `switchboard serve` running there?)")))?;
        let status = response.status().as_u16();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| fail(e.to_string()))?
            .to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status >= 400 {
            return Err(fail(format!("{status} {json}")));
        }
        Ok((status, json))
    }

    async fn get(&self, path: &str) -> Result<Value, DemoError> {
        Ok(self.send("GET", path, &[], Vec::new()).await?.1)
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value, DemoError> {
        Ok(self
            .send("POST", path, &[], body.to_string().into_bytes())
            .await?
            .1)
    }
}

/// The sample day's deliveries, relative to `now_ms` (milliseconds).
pub fn sample_day(now_ms: i64) -> Vec<(Webhook, Vec<u8>)> {
    let minutes = |m: i64| now_ms - m * 60_000;
    let secs = |m: i64| minutes(m) / 1000;
    let wa = |from: &str, name: &str, id: &str, ago: i64, text: &str| {
        (
            Webhook::Whatsapp,
            whatsapp_text_named(WHATSAPP_NUMBER, from, name, id, secs(ago), text),
        )
    };
    vec![
        // Yesterday: a question on Messenger, answered by the page, resolved.
        (
            Webhook::Facebook,
            messenger_text(
                "PSID-FER",
                "m.demo.fer1",
                minutes(26 * 60),
                "Do you ship to Canada?",
                false,
            ),
        ),
        (
            Webhook::Facebook,
            messenger_text(
                "PSID-FER",
                "m.demo.fer2",
                minutes(26 * 60 - 12),
                "Yes, in 5 to 7 days.",
                true,
            ),
        ),
        // This morning: a late order, answered by the page.
        (
            Webhook::Facebook,
            messenger_text(
                "PSID-CARLA",
                "m.demo.carla1",
                minutes(95),
                "My order hasn't arrived and it's been two weeks, this is unacceptable",
                false,
            ),
        ),
        (
            Webhook::Facebook,
            messenger_text(
                "PSID-CARLA",
                "m.demo.carla2",
                minutes(80),
                "Sorry Carla, it ships today: tracking number to follow.",
                true,
            ),
        ),
        wa(
            "5511922220000",
            "Bruno",
            "wamid.demo.bruno1",
            40,
            "Olá, qual é o horário de atendimento no sábado?",
        ),
        wa(
            "5215511110000",
            "Ana Martínez",
            "wamid.demo.ana1",
            25,
            "Me cobraron dos veces la suscripción y necesito el reembolso urgente",
        ),
        (
            Webhook::Facebook,
            page_comment(
                "FB-GABRIEL",
                "PAGE_POST1_c1",
                "POST1",
                None,
                secs(15),
                "Pésimo servicio, nadie contesta los mensajes privados",
            ),
        ),
        (
            Webhook::Instagram,
            instagram_text(
                "IG-DIEGO",
                INSTAGRAM_ACCOUNT,
                "m.demo.diego1",
                minutes(10),
                "hola! tienen envíos a Monterrey?",
            ),
        ),
        (
            Webhook::Instagram,
            instagram_text(
                "IG-ANA",
                INSTAGRAM_ACCOUNT,
                "m.demo.ana-ig1",
                minutes(5),
                "Les escribí por WhatsApp también, ¿me ayudan con el cobro doble?",
            ),
        ),
        wa(
            "5215533330000",
            "Eva",
            "wamid.demo.eva1",
            3,
            "Me hackearon la cuenta y están haciendo compras con mi tarjeta",
        ),
    ]
}

fn conversation_of<'a>(conversations: &'a [Value], provider_id: &str) -> Option<&'a Value> {
    conversations
        .iter()
        .find(|c| c["customer_provider_id"] == provider_id)
}

/// Posts the sample day to the `switchboard serve` at `url`, signing each delivery with the
/// app secret `secret_of` gives for its webhook; `token` is the API token when the server
/// asks for one.
pub async fn run(
    url: &str,
    secret_of: impl Fn(Webhook) -> Option<String>,
    token: Option<String>,
) -> Result<Summary, DemoError> {
    let server = Server {
        url: url.to_owned(),
        token,
        client: Client::builder(TokioExecutor::new()).build_http(),
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    let day = sample_day(now_ms);
    for (webhook, body) in &day {
        let secret = secret_of(*webhook).ok_or(DemoError::NoSecret(*webhook))?;
        let signature = sign(&secret, body);
        server
            .send(
                "POST",
                &format!("/webhooks/{webhook}"),
                &[("x-hub-signature-256", signature)],
                body.clone(),
            )
            .await?;
    }
    // The prioritizer runs beside the server: wait until it has ranked the day.
    let mut conversations = Vec::new();
    for _ in 0..100 {
        conversations = server.get("/api/conversations?limit=100").await?["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let ranked = conversations
            .iter()
            .filter(|c| !c["priority"].is_null())
            .count();
        if ranked >= 8 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // Ana on WhatsApp and on Instagram is one person; the answered cases are resolved.
    if let (Some(wa), Some(ig)) = (
        conversation_of(&conversations, "5215511110000"),
        conversation_of(&conversations, "IG-ANA"),
    ) {
        server
            .post(
                &format!(
                    "/api/customers/{}/link",
                    wa["customer_id"].as_str().unwrap_or_default()
                ),
                json!({"customer_id": ig["customer_id"]}),
            )
            .await?;
    }
    for who in ["PSID-FER", "PSID-CARLA"] {
        if let Some(c) = conversation_of(&conversations, who) {
            let id = c["id"].as_str().unwrap_or_default();
            server
                .post(&format!("/api/conversations/{id}/resolve"), json!({}))
                .await?;
        }
    }
    let waiting = server.get("/api/queue?limit=100").await?["items"]
        .as_array()
        .map_or(0, Vec::len);
    Ok(Summary {
        deliveries: day.len(),
        waiting,
    })
}
