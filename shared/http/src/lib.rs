//! switchboard's HTTP face, shared by the Lambda functions (through `lambda_http`) and by
//! `switchboard serve` (through hyper): the same axum routers answer in both, and every error
//! becomes a status in one place ([`ApiError`]).
//!
//! * [`webhook_router`]: `GET`/`POST /webhooks/{channel}` for the webhooks given a verification.
//! * [`api_router`]: the agent API under `/api` ([`require_token`] puts a token before it).
//! * [`console_router`]: the web console at `/`, embedded.
#![warn(missing_docs)]

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::collections::HashMap;
use std::sync::Arc;

use switchboard_core::channels::Verification;
use switchboard_core::clock::Clock;
use switchboard_core::intake::{Intake, IntakeOutcome, MAX_BODY_BYTES};
use switchboard_core::model::Webhook;
use switchboard_core::telemetry;

pub mod api;
pub mod console;
mod error;

pub use api::{
    AgentSource, ApiPorts, ConversationView, RecordView, api_router, erasure_router, require_token,
};
pub use console::{ConsoleAuth, ConsoleConfig, console_router};
pub use error::ApiError;

/// What the webhook routes need: the intake service, the verification of each enabled
/// webhook (from its [`ChannelModule`](switchboard_core::channels::ChannelModule)), and the clock the
/// checks read.
#[derive(Clone)]
pub struct WebhookState {
    intake: Intake,
    verifiers: Arc<HashMap<Webhook, Verification>>,
    clock: Arc<dyn Clock>,
    budget: Arc<tokio::sync::Semaphore>,
}

/// The memory the webhook bodies being read may hold together, by default: eleven bodies of
/// the largest size, or thousands of ordinary ones.
pub const DEFAULT_BODY_BUDGET: usize = 64 * 1024 * 1024;

impl WebhookState {
    /// Webhook routes for the webhooks in `verifiers`; any other is 404. Signatures and
    /// handshakes are checked at `clock`'s time.
    pub fn new(
        intake: Intake,
        verifiers: HashMap<Webhook, Verification>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            intake,
            verifiers: Arc::new(verifiers),
            clock,
            budget: Arc::new(tokio::sync::Semaphore::new(DEFAULT_BODY_BUDGET)),
        }
    }

    /// Bounds the memory of the bodies being read, across all connections, to `bytes` (at
    /// least [`MAX_BODY_BYTES`]): a body is read only into memory set aside for it (its
    /// `Content-Length` up front, or chunk by chunk as it arrives), kept until the delivery is
    /// stored, and a body that finds the budget taken is answered 503 with `Retry-After` (the
    /// providers retry) instead of being read. Unsigned bodies cannot take it: the headers a
    /// signature needs are checked before any byte of the body is read.
    pub fn with_body_budget(mut self, bytes: usize) -> Self {
        self.budget = Arc::new(tokio::sync::Semaphore::new(bytes.max(MAX_BODY_BYTES)));
        self
    }

    fn verifier(&self, channel: &str) -> Result<(Webhook, &Verification), ApiError> {
        let channel: Webhook = channel.parse().map_err(|_| ApiError::NotFound("webhook"))?;
        let verifier = self
            .verifiers
            .get(&channel)
            .ok_or(ApiError::NotFound("webhook"))?;
        Ok((channel, verifier))
    }
}

/// `GET`/`POST /webhooks/{webhook}`, for every webhook of the registry that has a verifier.
pub fn webhook_router(state: WebhookState) -> Router {
    Router::new()
        .route("/webhooks/{channel}", get(handshake).post(deliver))
        .with_state(state)
}

/// The subscription handshake of the webhook's channel (Meta: echo `hub.challenge` when the
/// verify token matches).
async fn handshake(
    State(state): State<WebhookState>,
    Path(channel): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let (_, verifier) = state.verifier(&channel)?;
    let reply = verifier.handshake.answer(&query, state.clock.now())?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, reply.content_type)],
        reply.body,
    )
        .into_response())
}

/// A delivery: size check, signature over the raw bytes, then intake. 200 only once durable.
async fn deliver(
    State(state): State<WebhookState>,
    Path(channel): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let (channel, verifier) = state.verifier(&channel)?;
    let taken = take(&state, channel, verifier, request).await;
    telemetry::delivery(
        channel.as_str(),
        &match &taken {
            Ok(outcome) => telemetry::Delivery {
                records: outcome.records as u64,
                duplicates: outcome.duplicates as u64,
                quarantined: u64::from(outcome.quarantined),
                ..Default::default()
            },
            Err(ApiError::Signature(_)) => telemetry::Delivery {
                signature_failures: 1,
                ..Default::default()
            },
            Err(ApiError::TooLarge { .. }) => telemetry::Delivery {
                oversized: 1,
                ..Default::default()
            },
            Err(e) => telemetry::Delivery {
                failures: u64::from(e.status().is_server_error()),
                ..Default::default()
            },
        },
    );
    let outcome = taken?;
    let answer = if outcome.quarantined {
        "quarantined"
    } else {
        "accepted"
    };
    Ok((
        StatusCode::OK,
        axum::Json(serde_json::json!({ "status": answer })),
    )
        .into_response())
}

/// Reads, verifies and takes in one delivery.
async fn take(
    state: &WebhookState,
    channel: Webhook,
    verifier: &Verification,
    request: Request,
) -> Result<IntakeOutcome, ApiError> {
    let (parts, body) = request.into_parts();
    // Before a byte of the body is read: what the headers alone refuse.
    verifier
        .signature
        .precheck(&parts.headers, state.clock.now())?;
    // The memory set aside stays taken until the delivery is stored.
    let (body, _reserved) = read_body(&parts.headers, body, &state.budget).await?;
    verifier
        .signature
        .verify(&parts.headers, &body, state.clock.now())?;
    Ok(state.intake.accept(channel, body).await?)
}

/// Reads the whole body into memory taken from `budget`, refusing more than
/// [`MAX_BODY_BYTES`] (413) and a body the budget cannot hold (503) without buffering it.
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    budget: &Arc<tokio::sync::Semaphore>,
) -> Result<(bytes::Bytes, Option<tokio::sync::OwnedSemaphorePermit>), ApiError> {
    let too_large = ApiError::TooLarge {
        limit: MAX_BODY_BYTES,
    };
    let take = |n: usize| {
        u32::try_from(n)
            .ok()
            .and_then(|n| Arc::clone(budget).try_acquire_many_owned(n).ok())
            .ok_or(ApiError::Busy)
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large);
    }
    if let Some(n) = declared {
        let reserved = take(n as usize)?;
        return match Limited::new(body, n as usize).collect().await {
            Ok(collected) => Ok((collected.to_bytes(), Some(reserved))),
            // Longer than declared: hyper refuses that before, so the body is unreadable.
            Err(_) => Err(ApiError::BodyUnreadable),
        };
    }
    // A length not declared (chunked): memory taken chunk by chunk as it arrives.
    let mut body = Limited::new(body, MAX_BODY_BYTES);
    let mut read = bytes::BytesMut::new();
    let mut reserved: Option<tokio::sync::OwnedSemaphorePermit> = None;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => return Err(too_large),
            Err(_) => return Err(ApiError::BodyUnreadable),
        };
        if let Ok(chunk) = frame.into_data() {
            let more = take(chunk.len())?;
            match reserved.as_mut() {
                Some(r) => r.merge(more),
                None => reserved = Some(more),
            }
            read.extend_from_slice(&chunk);
        }
    }
    Ok((read.freeze(), reserved))
}
