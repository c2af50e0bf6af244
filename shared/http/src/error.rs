//! The one place where errors become HTTP statuses.
//!
//! | error | status |
//! |---|---|
//! | missing, malformed or wrong signature; an agent action without a caller identity | 401 |
//! | wrong verify token or mode in the handshake | 403 |
//! | body over [`MAX_BODY_BYTES`](switchboard_core::intake::MAX_BODY_BYTES) | 413 |
//! | bad query parameter, bad cursor, incomplete handshake | 400 |
//! | unknown route, conversation or delivery | 404 |
//! | any backend failure | 500 (the provider retries) |
//!
//! Bodies are short and generic (`{"error": "..."}`); the detail goes to the log only.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;

use switchboard_core::ports::{BackendError, LinkError};
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
    /// A storage or queue failure.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl From<LinkError> for ApiError {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::SameCustomer => ApiError::BadRequest(e.to_string()),
            LinkError::UnknownCustomer(_) => ApiError::NotFound("customer"),
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
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::Backend(BackendError::BadCursor) => StatusCode::BAD_REQUEST,
            ApiError::Backend(BackendError::Unavailable { .. }) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The message a client sees: the reason for a 4xx, nothing internal for a 5xx.
    fn public_message(&self) -> String {
        match self {
            ApiError::Signature(_) => "invalid signature".into(),
            ApiError::Backend(BackendError::Unavailable { .. }) => {
                "temporarily unavailable, retry later".into()
            }
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            // The full chain goes to the log; it names the operation, never the payload.
            let chain = switchboard_core::errors::causes(&self);
            tracing::error!(status = status.as_u16(), error = %self, cause = %chain, "request failed");
        } else {
            tracing::warn!(status = status.as_u16(), error = %self, "request refused");
        }
        (status, Json(json!({ "error": self.public_message() }))).into_response()
    }
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
