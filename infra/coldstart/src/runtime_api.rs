//! The Lambda Runtime API (`2018-06-01`) on loopback, as a function process sees it in Lambda:
//! it polls `GET /runtime/invocation/next` for an event and posts the result to
//! `/runtime/invocation/{id}/response` (or `/error`, or `/runtime/init/error` when it cannot
//! start). One invocation is offered at a time; every request is reported to the harness with the
//! instant it arrived.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};

/// What the function process did, as the Runtime API saw it.
#[derive(Debug)]
pub enum Report {
    /// The process asked for its first event: its initialisation is over.
    Next {
        /// When the request arrived.
        at: Instant,
    },
    /// The result of an invocation.
    Response {
        /// The request id in the path.
        request_id: String,
        /// When the whole request had arrived.
        at: Instant,
        /// The function's response.
        body: Bytes,
    },
    /// An invocation failed (`/invocation/{id}/error`).
    Error {
        /// The request id in the path.
        request_id: String,
        /// `Lambda-Runtime-Function-Error-Type`.
        error_type: Option<String>,
        /// The error document.
        body: Bytes,
    },
    /// The function could not start (`/init/error`).
    InitError {
        /// `Lambda-Runtime-Function-Error-Type`.
        error_type: Option<String>,
        /// The error document.
        body: Bytes,
    },
    /// A request that is not part of the Runtime API.
    Stray {
        /// Its method.
        method: Method,
        /// Its path and query.
        uri: Uri,
    },
}

/// The invocation offered to the next process that asks for one.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// `Lambda-Runtime-Aws-Request-Id`.
    pub request_id: String,
    /// `Lambda-Runtime-Invoked-Function-Arn`.
    pub function_arn: String,
    /// The event.
    pub event: Bytes,
    /// The time the function is given (`Lambda-Runtime-Deadline-Ms` is now plus this).
    pub timeout: Duration,
}

struct Slot {
    invocation: Invocation,
    delivered: bool,
    reports: mpsc::UnboundedSender<Report>,
}

struct Inner {
    slot: Mutex<Option<Slot>>,
    /// Bumped when an invocation ends, to release the `next` requests held open.
    generation: watch::Sender<u64>,
}

/// The Runtime API's state, shared by its handlers and the harness.
#[derive(Clone)]
pub struct RuntimeApi {
    inner: Arc<Inner>,
}

impl RuntimeApi {
    /// A Runtime API with no invocation pending.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                slot: Mutex::new(None),
                generation: watch::Sender::new(0),
            }),
        }
    }

    /// Offers `invocation` to the next `GET /next`; what the process does with it arrives on the
    /// returned channel.
    pub fn begin(&self, invocation: Invocation) -> mpsc::UnboundedReceiver<Report> {
        let (reports, receiver) = mpsc::unbounded_channel();
        *self.lock() = Some(Slot {
            invocation,
            delivered: false,
            reports,
        });
        receiver
    }

    /// Ends the current invocation: later requests are no longer reported, and the `next`
    /// requests held open are answered (with 503: the harness has killed their process by then).
    pub fn end(&self) {
        self.lock().take();
        self.inner.generation.send_modify(|g| *g += 1);
    }

    /// The routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .fallback(stray)
            // Lambda's response payload limit, 6 MB, and a little room.
            .layer(DefaultBodyLimit::max(7 << 20))
            .with_state(self.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Slot>> {
        self.inner
            .slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn report(&self, report: Report) {
        if let Some(slot) = self.lock().as_ref() {
            let _ = slot.reports.send(report);
        }
    }
}

impl Default for RuntimeApi {
    fn default() -> Self {
        Self::new()
    }
}

fn error_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"OK"}"#,
    )
        .into_response()
}

/// `GET /2018-06-01/runtime/invocation/next`: the pending event, once; after that the request is
/// held open, as Lambda does between invocations, until the invocation ends.
async fn next(State(api): State<RuntimeApi>) -> Response {
    let at = Instant::now();
    let mut generation = api.inner.generation.subscribe();
    let offered = {
        let mut slot = api.lock();
        match slot.as_mut() {
            Some(slot) if !slot.delivered => {
                slot.delivered = true;
                let _ = slot.reports.send(Report::Next { at });
                Some(slot.invocation.clone())
            }
            _ => None,
        }
    };
    let Some(invocation) = offered else {
        // Bounded: the harness ends every invocation within its own timeout.
        let _ = tokio::time::timeout(Duration::from_secs(600), generation.changed()).await;
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let deadline_ms = (now + invocation.timeout).as_millis();
    let trace_id = format!(
        "Root=1-{:08x}-{:024x};Parent={:016x};Sampled=0",
        now.as_secs(),
        now.as_nanos(),
        now.as_nanos() as u64,
    );
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        invocation.event,
    )
        .into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        ("lambda-runtime-aws-request-id", invocation.request_id),
        ("lambda-runtime-deadline-ms", deadline_ms.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            invocation.function_arn,
        ),
        ("lambda-runtime-trace-id", trace_id),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

/// `POST /2018-06-01/runtime/invocation/{id}/response`.
async fn response(
    State(api): State<RuntimeApi>,
    Path(request_id): Path<String>,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    api.report(Report::Response {
        request_id,
        at,
        body,
    });
    accepted()
}

/// `POST /2018-06-01/runtime/invocation/{id}/error`.
async fn error(
    State(api): State<RuntimeApi>,
    Path(request_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    api.report(Report::Error {
        request_id,
        error_type: error_type(&headers),
        body,
    });
    accepted()
}

/// `POST /2018-06-01/runtime/init/error`.
async fn init_error(State(api): State<RuntimeApi>, headers: HeaderMap, body: Bytes) -> Response {
    api.report(Report::InitError {
        error_type: error_type(&headers),
        body,
    });
    accepted()
}

async fn stray(State(api): State<RuntimeApi>, method: Method, uri: Uri) -> Response {
    api.report(Report::Stray { method, uri });
    StatusCode::NOT_FOUND.into_response()
}
