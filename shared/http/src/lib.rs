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

pub use api::{AgentSource, ApiPorts, ConversationView, RecordView, api_router, require_token};
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
}

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
        }
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
    let body = read_body(&parts.headers, body).await?;
    verifier
        .signature
        .verify(&parts.headers, &body, state.clock.now())?;
    Ok(state.intake.accept(channel, body).await?)
}

/// Reads the whole body, refusing more than [`MAX_BODY_BYTES`] without buffering it.
async fn read_body(headers: &HeaderMap, body: Body) -> Result<bytes::Bytes, ApiError> {
    let too_large = ApiError::TooLarge {
        limit: MAX_BODY_BYTES,
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large);
    }
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large),
        Err(_) => Err(ApiError::BodyUnreadable),
    }
}
