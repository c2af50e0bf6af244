//! The HTTPS client every sender shares: one connection pool on the rustls the AWS SDK links
//! already, JSON in and out, a bounded answer, a timeout, and a classification of what went
//! wrong that says whether the message may have gone.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use switchboard_core::outbound::SendError;

/// The largest answer read from a provider.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// A provider credential (an access token, a bot token): shown nowhere, not even in `Debug`.
#[derive(Clone)]
pub struct AccessToken(String);

impl AccessToken {
    /// The token `text`.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The token itself, where a request needs it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken(…)")
    }
}

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// How one attempt ended without an answer.
#[derive(Debug)]
pub(crate) enum Attempt {
    /// No connection was made: nothing was sent, a retry is safe.
    NotConnected(String),
    /// The exchange broke after the request may have gone.
    Failed(String),
    /// No answer within the timeout.
    TimedOut,
}

impl From<Attempt> for SendError {
    fn from(attempt: Attempt) -> Self {
        match attempt {
            Attempt::TimedOut => SendError::Timeout,
            Attempt::NotConnected(e) => SendError::Unreachable(e),
            Attempt::Failed(e) => SendError::Unreadable(e),
        }
    }
}

/// One pooled HTTPS client with a timeout per exchange, shared by its clones. It is built at
/// the first exchange, not with the senders: loading the system's root certificates costs a
/// function's cold start a millisecond or more, and most starts of the agent API send nothing.
/// Without root certificates every exchange fails as unreachable, saying why.
#[derive(Clone)]
pub(crate) struct Http {
    client: Arc<OnceLock<Result<HttpsClient, String>>>,
    timeout: Duration,
}

impl Http {
    /// A client trusting the system's root certificates (`http://` too, for loopback fakes;
    /// the settings allow it nowhere else).
    pub(crate) fn new(timeout: Duration) -> Self {
        Self {
            client: Arc::default(),
            timeout,
        }
    }

    fn client(&self) -> Result<&HttpsClient, Attempt> {
        self.client
            .get_or_init(|| {
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
                    .map_err(|e| format!("no HTTPS client: {e}"))?
                    .https_or_http()
                    .enable_http1()
                    .build();
                Ok(Client::builder(TokioExecutor::new())
                    .pool_idle_timeout(Duration::from_secs(30))
                    .build(https))
            })
            .as_ref()
            .map_err(|e| Attempt::NotConnected(e.clone()))
    }

    /// POSTs `body` as JSON to `url` (with `bearer` in `Authorization` when given) and reads
    /// the answer: its status and JSON (`null` when it is not JSON). The URL and the token are
    /// never part of an error.
    pub(crate) async fn post_json(
        &self,
        url: &str,
        bearer: Option<&AccessToken>,
        body: &Value,
    ) -> Result<(u16, Value), Attempt> {
        let mut request = http::Request::post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json");
        if let Some(token) = bearer {
            request = request.header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", token.expose()),
            );
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|_| Attempt::Failed("the request could not be built".to_owned()))?;
        let client = self.client()?;
        let exchange = async {
            // hyper's errors name their kind, never the URL (which holds Telegram's token).
            let answer = client.request(request).await.map_err(|e| {
                if e.is_connect() {
                    Attempt::NotConnected(e.to_string())
                } else {
                    Attempt::Failed(e.to_string())
                }
            })?;
            let status = answer.status().as_u16();
            let bytes = Limited::new(answer.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| Attempt::Failed(format!("answer unreadable: {e}")))?
                .to_bytes();
            Ok((
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            ))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| Attempt::TimedOut)?
    }
}
