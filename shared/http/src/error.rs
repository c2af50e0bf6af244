//! The one place where errors become HTTP statuses.
//!
//! | error | status |
//! |---|---|
//! | missing, malformed or wrong signature; an agent action without a caller identity; an `/api` request without the API token | 401 |
//! | wrong verify token or mode in the handshake | 403 |
//! | body over [`MAX_BODY_BYTES`](switchboard_core::intake::MAX_BODY_BYTES) | 413 |
//! | bad query parameter, bad cursor, incomplete handshake; an agent tool's answer time in the future or before the wait | 400 |
//! | unknown route, conversation or delivery | 404 |
//! | any backend failure | 500 (the provider retries) |
//! | the memory for bodies being read is taken (see `WebhookState::with_body_budget`) | 503 with `Retry-After` |
//! | a reply: bad body, bad `Idempotency-Key`, `reply_to` of another conversation | 400 |
//! | a reply: Meta's window closed; its `Idempotency-Key` still in progress | 409 |
//! | a reply: the `Idempotency-Key` used for another body; a kind of reply not supported | 422 |
//! | a reply the provider refused (its code and message in `provider`) or could not be reached | 502 |
//! | a reply with no access token configured for its channel | 503 |
//! | a reply the provider did not answer in time (it may have been sent) | 504 |
//!
//! Every error body is an RFC 9457 problem (`application/problem+json`):
//!
//! ```json
//! {"type": "about:blank", "title": "Bad Request", "status": 400,
//!  "detail": "limit: expected a number from 1 to 1000", "code": "bad_request",
//!  "error": "limit: expected a number from 1 to 1000"}
//! ```
//!
//! `title` is the status's phrase, `detail` the reason in words (nothing internal for a 5xx),
//! `code` a stable name of the kind of error for programs to switch on ([`ApiError::code`]),
//! `error` the same text as `detail` (the field earlier versions answered with), and, for a
//! reply the provider refused, `provider` with its status and codes. The log gets the status
//! and the code of a refusal, never its text (it may quote what the client sent), and the
//! chain of causes of a 5xx.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;

use switchboard_core::cases::AnswerError;
use switchboard_core::outbound::{PlanError, SendError};
use switchboard_core::ports::{BackendError, LinkError};
use switchboard_core::replies::ReplyError;
use switchboard_core::verify::{HandshakeError, SignatureError};

/// Everything a switchboard HTTP handler can answer with instead of success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The webhook signature was refused.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The subscription handshake was refused or incomplete.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// The body is larger than switchboard accepts.
    #[error("body larger than {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The bodies being read already hold the memory set aside for them: retry shortly.
    #[error("too many deliveries are being received at once; retry shortly")]
    Busy,
    /// The body could not be read from the connection.
    #[error("body could not be read")]
    BodyUnreadable,
    /// A request parameter is wrong; the message says which and why.
    #[error("{0}")]
    BadRequest(String),
    /// The thing asked for does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// An agent action without an identity to record (no authorizer context on AWS).
    #[error("no caller identity: the agent who acts cannot be recorded")]
    Unauthenticated,
    /// An `/api` request without the API token `switchboard serve` was given.
    #[error("sign in: this switchboard needs its API token (Authorization: Bearer <token>)")]
    SignIn,
    /// A storage or queue failure.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A reply that was not sent.
    #[error(transparent)]
    Reply(ReplyError),
}

impl From<ReplyError> for ApiError {
    fn from(e: ReplyError) -> Self {
        match e {
            ReplyError::Backend(b) => ApiError::Backend(b),
            ReplyError::NoConversation => ApiError::NotFound("conversation"),
            other => ApiError::Reply(other),
        }
    }
}

impl From<AnswerError> for ApiError {
    fn from(e: AnswerError) -> Self {
        match e {
            AnswerError::Backend(b) => ApiError::Backend(b),
            refused => ApiError::BadRequest(refused.to_string()),
        }
    }
}

impl From<LinkError> for ApiError {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::SameCustomer => ApiError::BadRequest(e.to_string()),
            LinkError::UnknownCustomer(_) => ApiError::NotFound("customer"),
            LinkError::NotLinked { .. } => ApiError::NotFound("link"),
            LinkError::Backend(b) => ApiError::Backend(b),
        }
    }
}

impl ApiError {
    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Signature(_) => StatusCode::UNAUTHORIZED,
            ApiError::Handshake(HandshakeError::Rejected) => StatusCode::FORBIDDEN,
            ApiError::Handshake(HandshakeError::Incomplete(_)) => StatusCode::BAD_REQUEST,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyUnreadable => StatusCode::BAD_REQUEST,
            ApiError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unauthenticated | ApiError::SignIn => StatusCode::UNAUTHORIZED,
            ApiError::Backend(BackendError::BadCursor) => StatusCode::BAD_REQUEST,
            ApiError::Backend(BackendError::Unavailable { .. }) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            ApiError::Reply(e) => match e {
                ReplyError::NoConversation => StatusCode::NOT_FOUND,
                ReplyError::UnknownMessage
                | ReplyError::BadKey
                | ReplyError::Plan(PlanError::Invalid(_)) => StatusCode::BAD_REQUEST,
                ReplyError::KeyInProgress | ReplyError::Plan(PlanError::WindowClosed(_)) => {
                    StatusCode::CONFLICT
                }
                ReplyError::KeyReused | ReplyError::Plan(PlanError::Unsupported(_)) => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                ReplyError::Send(SendError::Timeout) => StatusCode::GATEWAY_TIMEOUT,
                ReplyError::Send(SendError::NotConfigured { .. }) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                ReplyError::Send(_) => StatusCode::BAD_GATEWAY,
                ReplyError::Backend(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    /// A stable name of the kind of error: the problem body's `code`.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Signature(_) => "invalid_signature",
            ApiError::Handshake(HandshakeError::Rejected) => "handshake_rejected",
            ApiError::Handshake(HandshakeError::Incomplete(_)) => "handshake_incomplete",
            ApiError::TooLarge { .. } => "too_large",
            ApiError::BodyUnreadable => "body_unreadable",
            ApiError::Busy => "busy",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::NotFound(_) => "not_found",
            ApiError::Unauthenticated => "no_caller_identity",
            ApiError::SignIn => "sign_in",
            ApiError::Backend(BackendError::BadCursor) => "bad_cursor",
            ApiError::Backend(BackendError::Unavailable { .. }) => "unavailable",
            ApiError::Reply(e) => match e {
                ReplyError::NoConversation => "not_found",
                ReplyError::UnknownMessage => "unknown_message",
                ReplyError::BadKey => "bad_idempotency_key",
                ReplyError::Plan(PlanError::Invalid(_)) => "invalid_reply",
                ReplyError::KeyInProgress => "idempotency_key_in_progress",
                ReplyError::Plan(PlanError::WindowClosed(_)) => "window_closed",
                ReplyError::KeyReused => "idempotency_key_reused",
                ReplyError::Plan(PlanError::Unsupported(_)) => "reply_not_supported",
                ReplyError::Send(SendError::Timeout) => "provider_timeout",
                ReplyError::Send(SendError::NotConfigured { .. }) => "channel_not_configured",
                ReplyError::Send(SendError::Refused { .. }) => "provider_refused",
                ReplyError::Send(SendError::Unreachable(_)) => "provider_unreachable",
                ReplyError::Send(SendError::Unreadable(_)) => "provider_unreadable",
                ReplyError::Backend(_) => "unavailable",
            },
        }
    }

    /// The provider's side of a refused reply, for the body.
    fn provider(&self) -> Option<ProviderRefusal> {
        match self {
            ApiError::Reply(ReplyError::Send(SendError::Refused {
                status,
                code,
                subcode,
                message,
            })) => Some(ProviderRefusal {
                status: *status,
                code: *code,
                subcode: *subcode,
                message: message.clone(),
            }),
            _ => None,
        }
    }

    /// The message a client sees: the reason for a 4xx, nothing internal for a 5xx.
    fn public_message(&self) -> String {
        match self {
            ApiError::Signature(_) => "invalid signature".into(),
            ApiError::Backend(BackendError::Unavailable { .. })
            | ApiError::Reply(ReplyError::Backend(_)) => {
                "temporarily unavailable, retry later".into()
            }
            ApiError::Reply(ReplyError::Send(SendError::Refused { .. })) => {
                "the provider refused the reply; nothing was sent".into()
            }
            ApiError::Reply(ReplyError::Send(SendError::Unreachable(_))) => {
                "the provider could not be reached; nothing was sent".into()
            }
            ApiError::Reply(ReplyError::Send(SendError::Unreadable(_))) => {
                "the provider's answer could not be read; the reply may have been sent: check the conversation before sending again".into()
            }
            ApiError::Reply(ReplyError::Send(SendError::Timeout)) => {
                "the provider did not answer in time; the reply may have been sent: check the conversation before sending again".into()
            }
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Reply(ReplyError::Send(SendError::Refused {
            status: provider_status,
            code,
            subcode,
            ..
        })) = &self
        {
            // The provider's message may quote what was sent: its codes only.
            tracing::warn!(
                status = status.as_u16(),
                provider_status,
                ?code,
                ?subcode,
                "reply refused by the provider"
            );
        } else if status.is_server_error() && switchboard_core::errors::is_reported(&self) {
            // Its condition (a full disk, say) was logged once where it was found.
            tracing::debug!(status = status.as_u16(), error = %self, "request failed");
        } else if status.is_server_error() {
            // The full chain goes to the log; it names the operation, never the payload.
            let chain = switchboard_core::errors::causes(&self);
            tracing::error!(status = status.as_u16(), error = %self, cause = %chain, "request failed");
        } else {
            // The code only: the text may quote what the client sent.
            tracing::warn!(
                status = status.as_u16(),
                code = self.code(),
                "request refused"
            );
        }
        let mut body = Problem::new(status, self.code(), self.public_message());
        body.provider = self.provider();
        let mut response = body.into_response();
        if let ApiError::Busy = self {
            response.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("1"),
            );
        }
        response
    }
}

/// The media type of an error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem: the body of every error the API answers (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// Always `about:blank`: `code` tells the kinds apart.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The status's phrase (`Bad Request`).
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// The reason in words (nothing internal for a 5xx).
    pub detail: String,
    /// A stable name of the kind of error, for programs to switch on (`bad_request`,
    /// `not_found`, `window_closed`, …).
    pub code: String,
    /// The same text as `detail` (the field earlier versions answered with).
    pub error: String,
    /// For a reply the provider refused: its status and codes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderRefusal>,
}

/// A provider's refusal of a reply, as a [`Problem`] shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProviderRefusal {
    /// The HTTP status the provider answered.
    pub status: u16,
    /// Its error code (Graph `error.code`).
    pub code: Option<i64>,
    /// Its subcode.
    pub subcode: Option<i64>,
    /// Its message.
    pub message: String,
}

impl Problem {
    /// The problem of `status`, of kind `code`, for the reason `detail`.
    pub fn new(status: StatusCode, code: &str, detail: String) -> Self {
        Self {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            error: detail.clone(),
            detail,
            code: code.to_owned(),
            provider: None,
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        (status, [(http::header::CONTENT_TYPE, PROBLEM_JSON)], body).into_response()
    }
}

/// An RFC 9457 problem response (see the module docs), for the errors that are not an
/// [`ApiError`] (a method the route does not allow, say).
pub fn problem(status: StatusCode, code: &str, detail: &str) -> Response {
    Problem::new(status, code, detail.to_owned()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_error_map() {
        let unavailable = BackendError::unavailable("enqueue", std::io::Error::other("down"));
        let cases = [
            (ApiError::from(SignatureError::Missing), 401),
            (ApiError::from(SignatureError::Mismatch), 401),
            (ApiError::from(HandshakeError::Rejected), 403),
            (ApiError::from(HandshakeError::Incomplete("x")), 400),
            (ApiError::TooLarge { limit: 1 }, 413),
            (ApiError::BadRequest("x".into()), 400),
            (ApiError::NotFound("conversation"), 404),
            (ApiError::Unauthenticated, 401),
            (ApiError::from(BackendError::BadCursor), 400),
            (ApiError::from(unavailable), 500),
            (ApiError::from(ReplyError::NoConversation), 404),
            (ApiError::from(ReplyError::KeyReused), 422),
            (ApiError::from(ReplyError::KeyInProgress), 409),
            (
                ApiError::from(ReplyError::Plan(PlanError::WindowClosed("x".into()))),
                409,
            ),
            (
                ApiError::from(ReplyError::Send(SendError::Refused {
                    status: 400,
                    code: Some(190),
                    subcode: None,
                    message: "expired".into(),
                })),
                502,
            ),
            (ApiError::from(ReplyError::Send(SendError::Timeout)), 504),
        ];
        for (error, status) in cases {
            assert_eq!(error.status().as_u16(), status, "{error:?}");
        }
    }

    #[test]
    fn a_server_error_does_not_leak_its_cause() {
        let e = ApiError::from(BackendError::unavailable(
            "keep_delivery",
            std::io::Error::other("table arn:aws:dynamodb:secret-internal"),
        ));
        assert!(!e.public_message().contains("arn"));
    }
}
