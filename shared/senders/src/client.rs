//! The HTTPS client every sender shares: one connection pool on the rustls the AWS SDK links
//! already, JSON in and out, a bounded answer, a timeout, and a classification of what went
//! wrong that says whether the message may have gone.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
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

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("no HTTPS client: {0}")]
pub struct ClientError(#[from] std::io::Error);

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

/// One pooled HTTPS client with a timeout per exchange.
#[derive(Clone)]
pub(crate) struct Http {
    client: HttpsClient,
    timeout: Duration,
}

impl Http {
    /// A client trusting the system's root certificates (`http://` too, for loopback fakes;
    /// the settings allow it nowhere else).
    pub(crate) fn new(timeout: Duration) -> Result<Self, ClientError> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::ring::default_provider())?
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Ok(Self { client, timeout })
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
        let exchange = async {
            // hyper's errors name their kind, never the URL (which holds Telegram's token).
            let answer = self.client.request(request).await.map_err(|e| {
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
