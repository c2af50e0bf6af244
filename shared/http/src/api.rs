//! The read API: conversations and their timelines, JSON, paginated with a `next` cursor.
//!
//! * `GET /api/conversations?channel=&cursor=&limit=`: most recently active first.
//! * `GET /api/conversations/{id}`
//! * `GET /api/conversations/{id}/messages?cursor=&limit=`: messages and the events that refer
//!   to them, in provider-time order; each recent outbound message with its latest delivery
//!   `status`.
//! * `GET /api/customers/{id}`: a customer and their channel identities.
//! * `GET /api/customers/{id}/timeline?cursor=&limit=`: every message and event of a customer
//!   across channels, in provider-time order.
//! * `GET /api/customers?email=|phone=|handle=`: the customers carrying an identifier (an
//!   e-mail address, an E.164 phone number, a handle), `{"items": [...]}`.
//! * `POST /api/customers/{id}/link` with `{"customer_id": "cu_…"}`: the two are one person.
//! * `DELETE /api/customers/{id}/links/{other}`: undoes a link (an agent's or an automatic
//!   one): `other` stands alone again with its identities and timeline, and is not linked
//!   automatically again on the same evidence.
//! * `DELETE /api/customers/{id}`: erases the person (with every customer linked to them) and
//!   answers a receipt of what was erased, counted (`switchboard_core::erasure`).
//! * `PUT /api/customers/{id}/tier` with `{"tier": "vip"}` (or `null`): the customer's tier.
//! * `POST /api/conversations/{id}/answered` with `{"at": "<RFC 3339>"}` (or no body: now): an
//!   agent answered outside the channels' echoes; the wait ends, its reminders are cancelled.
//! * `POST /api/conversations/{id}/resolve`: the current case is resolved (`resolved_at`,
//!   `resolved_by`, `first_contact_resolution`); it leaves the queue, its reminders are
//!   cancelled. A customer message after it opens the next case.
//! * `POST /api/conversations/{id}/assign` with `{"agent": "<id>"}` or `{"agent": null}`.
//! * `POST /api/conversations/{id}/reply` with `{"text": "…", "reply_to": "<provider message
//!   id>", "private": false, "template": {…}, "tag": "HUMAN_AGENT"}` (all but `text` optional)
//!   and an optional `Idempotency-Key` header: sends the reply through the channel and answers
//!   `201` with the stored outbound message (as in `/messages`). See
//!   [`switchboard_core::replies`] and [`switchboard_core::outbound`] for the rules.
//! * `GET /api/teams`: the teams of the priority configuration. `GET /api/me`: the agent the
//!   request acts as.
//! * `GET /api/queue?team=&agent=&cursor=&limit=`: a team's waiting conversations, most urgent
//!   first, then longest waiting first, with priority, score, topic, team and reasons; without
//!   `team`, every team's queue merged in the same order; with `agent`, the waiting
//!   conversations assigned to that agent.
//!
//! Who acts (recorded on resolutions and assignments) is [`AgentSource`]'s: the caller's
//! identity from the authorizer on AWS, the `X-Switchboard-Agent` header under `serve`.
//! * `GET /api/metrics?from=&to=&granularity=hour|day|week&group_by=…`: the figures (see
//!   [`switchboard_core::metrics`]): JSON, or CSV with `Accept: text/csv`.
//! * `GET /api/events?type=&cursor=&limit=`: the published domain events, oldest first (the
//!   embedded backend; on AWS they go to the EventBridge bus, and this answers 404).
//! * `GET /api/quarantine?cursor=&limit=`: ids of deliveries kept because they were not JSON.
//! * `GET /api/deliveries/{id}`: a kept delivery, byte for byte.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use super::ApiError;
#[cfg(feature = "openapi")]
use crate::error::Problem;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use switchboard_core::case::CaseStatus;
use switchboard_core::cases::Cases;
use switchboard_core::clock::Clock;
use switchboard_core::erasure::{Erasure, ErasureReceipt};
use switchboard_core::ids::{ConversationId, CustomerId, DeliveryId, RecordKey};
use switchboard_core::metrics::report::ReportQuery;
use switchboard_core::model::{
    Attachment, Channel, Conversation, Customer, Direction, EventKind, Identifier, IdentifierKind,
    ProviderError, ProviderId, Record,
};
use switchboard_core::outbound::ReplyRequest;
use switchboard_core::ports::{BackendError, ConversationReader, Page, PageRequest, StoredRecord};
use switchboard_core::ports::{
    ConversationStore, CustomerDirectory, DomainEvent, EventLog, IdentityLookup, QueueName,
    QueuePosition,
};
use switchboard_core::priority::{ConversationPriority, Priority, Reason};
use switchboard_core::replies::Replies;
use switchboard_core::reports::Reports;

#[cfg(feature = "openapi")]
pub mod openapi;

/// Items per page when the client does not say.
pub const DEFAULT_LIMIT: usize = 50;
/// The most items per page a client may ask for.
pub const MAX_LIMIT: usize = 500;

/// What the read API serves from.
#[derive(Clone)]
pub struct ApiPorts {
    /// Conversations, timelines, deliveries, queues.
    pub reader: Arc<dyn ConversationReader>,
    /// Conversations one at a time.
    pub conversations: Arc<dyn ConversationStore>,
    /// Customers and links.
    pub customers: Arc<dyn CustomerDirectory>,
    /// Which identities carry which identifiers (`GET /api/customers?email=…`).
    pub identities: Arc<dyn IdentityLookup>,
    /// The time of an agent's link.
    pub clock: Arc<dyn Clock>,
    /// The log of published events, where the backend keeps one (embedded).
    pub events: Option<Arc<dyn EventLog>>,
    /// What agents do: answers (`POST …/answered`), resolutions, assignments.
    pub cases: Option<Cases>,
    /// Replies through the channels (`POST …/reply`); `None`: that route answers 404.
    pub replies: Option<Replies>,
    /// The teams of the priority configuration: the queues `GET /api/queue` without `team`
    /// merges.
    pub teams: Vec<String>,
    /// Where the acting agent's identity comes from.
    pub agents: AgentSource,
    /// The figures (`GET /api/metrics`); `None`: that route answers 404.
    pub reports: Option<Reports>,
    /// Erasure of customers (`DELETE /api/customers/{id}`); `None`: that route answers 404.
    pub erasure: Option<Erasure>,
}

/// The request header naming the acting agent under `switchboard serve`.
pub const AGENT_HEADER: &str = "x-switchboard-agent";
/// The agent recorded under `serve` when the header is absent.
pub const LOCAL_AGENT: &str = "local";
/// The longest agent id accepted.
pub const MAX_AGENT_CHARS: usize = 128;

/// Where the identity of the agent who acts comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentSource {
    /// The `X-Switchboard-Agent` header ([`LOCAL_AGENT`] when absent): `switchboard serve`,
    /// which listens on loopback for one team.
    Header,
    /// An [`Agent`] request extension, set by the deployment from the authenticated caller
    /// (the Lambda function from the API Gateway authorizer's context); absent, an agent
    /// action is refused with 401.
    Extension,
}

/// The authenticated caller, as a request extension (see [`AgentSource::Extension`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent(pub String);

/// Whether `id` can name an agent: 1 to [`MAX_AGENT_CHARS`] characters, no control characters.
pub fn valid_agent(id: &str) -> bool {
    let n = id.chars().count();
    (1..=MAX_AGENT_CHARS).contains(&n) && !id.chars().any(char::is_control)
}

impl AgentSource {
    fn agent(self, parts: &http::request::Parts) -> Result<String, ApiError> {
        match self {
            AgentSource::Header => match parts.headers.get(AGENT_HEADER) {
                None => Ok(LOCAL_AGENT.to_owned()),
                Some(v) => v
                    .to_str()
                    .ok()
                    .map(str::trim)
                    .filter(|a| valid_agent(a))
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "{AGENT_HEADER} must be 1 to {MAX_AGENT_CHARS} visible characters"
                        ))
                    }),
            },
            AgentSource::Extension => parts
                .extensions
                .get::<Agent>()
                .map(|a| a.0.clone())
                .ok_or(ApiError::Unauthenticated),
        }
    }
}

/// The `/api` routes.
pub fn api_router(ports: ApiPorts) -> Router {
    let ApiPorts {
        reader,
        conversations,
        customers,
        identities,
        clock,
        events,
        cases,
        replies,
        teams,
        agents,
        reports,
        erasure,
    } = ports;
    let mut teams = teams;
    teams.sort();
    teams.dedup();
    let queue = Router::new()
        .route("/api/queue", get(list_queue))
        .route("/api/teams", get(list_teams))
        .with_state(QueueState {
            reader: reader.clone(),
            teams: Arc::new(teams),
        });
    let listings = Router::new()
        .route("/api/conversations", get(list_conversations))
        .route("/api/quarantine", get(list_quarantine))
        .route("/api/deliveries/{id}", get(get_delivery))
        .with_state(reader.clone());
    let one = Router::new()
        .route("/api/conversations/{id}", get(get_conversation))
        .route("/api/conversations/{id}/messages", get(list_messages))
        .with_state(OneConversation {
            reader,
            conversations,
        });
    let customers = Router::new()
        .route("/api/customers", get(find_customers))
        .route("/api/customers/{id}", get(get_customer))
        .route("/api/customers/{id}/timeline", get(customer_timeline))
        .route("/api/customers/{id}/link", post(link_customers))
        .route(
            "/api/customers/{id}/links/{other}",
            delete(unlink_customers),
        )
        .route("/api/customers/{id}/tier", put(set_tier))
        .with_state(CustomerState {
            customers,
            identities,
            clock,
        })
        .merge(erasure_routes(ErasureState { erasure, agents }));
    let events = Router::new()
        .route("/api/events", get(list_events))
        .with_state(events);
    let answers = Router::new()
        .route("/api/conversations/{id}/answered", post(mark_answered))
        .route("/api/conversations/{id}/resolve", post(resolve))
        .route("/api/conversations/{id}/assign", post(assign))
        .route("/api/conversations/{id}/reply", post(reply))
        .route("/api/me", get(me))
        .with_state(CaseState {
            cases,
            replies,
            agents,
        });
    let figures = Router::new()
        .route("/api/metrics", get(metrics))
        .with_state(reports);
    listings
        .merge(figures)
        .merge(one)
        .merge(customers)
        .merge(events)
        .merge(queue)
        .merge(answers)
        // Any other /api path: 404 with a reason, like every other error of the API.
        .route("/api/{*rest}", axum::routing::any(unknown_route))
        .route("/api", axum::routing::any(unknown_route))
        .layer(axum::middleware::from_fn(bounded_body))
        .layer(axum::middleware::from_fn(problems_only))
}

/// Makes every error the router answers an RFC 9457 problem, also those answered before a
/// handler runs (a method the route does not take, say), with a reason of switchboard's own.
async fn problems_only(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == crate::error::PROBLEM_JSON.as_bytes());
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (code, detail) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            format!("this route does not take {method}"),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "send the body as application/json".to_owned(),
        ),
        status if status.is_server_error() => (
            "unavailable",
            "temporarily unavailable, retry later".to_owned(),
        ),
        _ => ("bad_request", "the request could not be read".to_owned()),
    };
    let mut problem = crate::error::problem(status, code, &detail);
    if let Some(allow) = response.headers().get(header::ALLOW) {
        problem.headers_mut().insert(header::ALLOW, allow.clone());
    }
    problem
}

/// The largest body an `/api` request may carry (the largest, a reply, is a few KiB).
pub const MAX_API_BODY: usize = 64 * 1024;

async fn unknown_route() -> ApiError {
    ApiError::NotFound("route")
}

/// Refuses an `/api` body over [`MAX_API_BODY`] with 413 before any handler reads it, by its
/// `Content-Length` or, without one, as it is read.
async fn bounded_body(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<Response, ApiError> {
    let too_large = ApiError::TooLarge {
        limit: MAX_API_BODY,
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > MAX_API_BODY as u64 => Err(too_large),
        Some(_) => Ok(next.run(request).await),
        None => {
            let (parts, body) = request.into_parts();
            let bytes = axum::body::to_bytes(body, MAX_API_BODY)
                .await
                .map_err(|_| too_large)?;
            Ok(next
                .run(axum::extract::Request::from_parts(
                    parts,
                    axum::body::Body::from(bytes),
                ))
                .await)
        }
    }
}

/// `GET /api/metrics?from=&to=&granularity=&group_by=` (`group_by` repeatable or
/// comma-separated): the report as JSON, or as CSV when the client accepts `text/csv`.
#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        get,
        path = "/api/metrics",
        tag = "figures",
        operation_id = "metrics",
        params(
            ("from" = Option<String>, Query, description = "Start (RFC 3339 or a date)."),
            ("to" = Option<String>, Query, description = "End (RFC 3339 or a date)."),
            ("granularity" = Option<String>, Query, pattern = "^(hour|day|week)?$", description = "`hour`, `day` or `week`."),
            ("group_by" = Option<String>, Query, description = "Dimensions to group by, comma-separated or repeated."),
        ),
        responses(
            (status = 200, description = "The report: JSON, or CSV with `Accept: text/csv`.", content((serde_json::Value = "application/json"), (String = "text/csv"))),
            (status = 400, description = "A parameter is wrong; `detail` says which.", body = Problem, content_type = "application/problem+json"),
            (status = 404, description = "This deployment keeps no figures.", body = Problem, content_type = "application/problem+json"),
        ),
    )
)]
async fn metrics(
    State(reports): State<Option<Reports>>,
    headers: http::HeaderMap,
    query: Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let reports = reports.ok_or(ApiError::NotFound("metrics"))?;
    let Query(pairs) = query.map_err(bad_query)?;
    let one = |name: &str| {
        let mut values = pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str());
        match (values.next(), values.next()) {
            (_, Some(_)) => Err(ApiError::BadRequest(format!("{name} given twice"))),
            (value, None) => Ok(value),
        }
    };
    let group_by: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "group_by")
        .map(|(_, v)| v.clone())
        .collect();
    let query = ReportQuery::parse(one("from")?, one("to")?, one("granularity")?, &group_by)
        .map_err(ApiError::BadRequest)?;
    let report = reports.report(&query).await?;
    let csv = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().starts_with("text/csv")));
    Ok(if csv {
        (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            report.to_csv(),
        )
            .into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "application/json")],
            report.to_json_bytes(),
        )
            .into_response()
    })
}

#[derive(Clone)]
struct OneConversation {
    reader: Arc<dyn ConversationReader>,
    conversations: Arc<dyn ConversationStore>,
}

#[derive(Clone)]
struct CaseState {
    cases: Option<Cases>,
    replies: Option<Replies>,
    agents: AgentSource,
}

impl CaseState {
    fn cases(&self) -> Result<&Cases, ApiError> {
        self.cases
            .as_ref()
            .ok_or(ApiError::NotFound("case actions"))
    }
}

#[derive(Clone)]
struct QueueState {
    reader: Arc<dyn ConversationReader>,
    teams: Arc<Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    cursor: Option<String>,
    limit: Option<String>,
    channel: Option<String>,
    team: Option<String>,
    agent: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
}

impl PageQuery {
    fn page(&self) -> Result<PageRequest, ApiError> {
        let limit = match self.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(text) => match text.parse::<usize>() {
                Ok(n @ 1..=MAX_LIMIT) => n,
                _ => {
                    return Err(ApiError::BadRequest(format!(
                        "limit must be a whole number from 1 to {MAX_LIMIT}"
                    )));
                }
            },
        };
        Ok(PageRequest {
            cursor: self.cursor.clone().filter(|c| !c.is_empty()),
            limit,
        })
    }

    fn channel(&self) -> Result<Option<Channel>, ApiError> {
        match self.channel.as_deref() {
            None => Ok(None),
            Some(name) => {
                name.parse()
                    .map(Some)
                    .map_err(|e: switchboard_core::model::UnknownChannel| {
                        ApiError::BadRequest(e.to_string())
                    })
            }
        }
    }
}

/// A query string the route could not read, with serde's reason and not the framework's words.
fn bad_query(e: axum::extract::rejection::QueryRejection) -> ApiError {
    ApiError::BadRequest(format!("query parameters: {}", innermost(&e)))
}

/// A JSON body the route could not read; `expected` shows what it takes.
fn bad_json(e: axum::extract::rejection::JsonRejection, expected: &str) -> ApiError {
    use axum::extract::rejection::JsonRejection;
    match e {
        JsonRejection::MissingJsonContentType(_) => ApiError::BadRequest(format!(
            "expected a JSON body {expected} with Content-Type: application/json"
        )),
        JsonRejection::BytesRejection(_) => ApiError::BodyUnreadable,
        e => ApiError::BadRequest(format!(
            "expected a JSON body {expected}: {}",
            innermost(&e)
        )),
    }
}

/// The innermost cause of `e`: the parser's own reason, under the framework's wrapping.
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut e = e;
    while let Some(source) = e.source() {
        e = source;
    }
    e.to_string()
}

/// A conversation as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConversationView {
    /// Conversation id.
    pub id: ConversationId,
    /// Channel.
    pub channel: Channel,
    /// Business account the customer writes to.
    pub account_id: ProviderId,
    /// Customer id.
    pub customer_id: CustomerId,
    /// The customer's id on the channel (a phone number on WhatsApp).
    pub customer_provider_id: ProviderId,
    /// The customer's display name, when the provider sent one.
    pub customer_name: Option<String>,
    /// The first words of the customer's latest message (140 characters at most).
    #[serde(default)]
    pub preview: Option<String>,
    /// Provider time of the first record.
    pub first_at: DateTime<Utc>,
    /// Provider time of the latest record.
    pub last_at: DateTime<Utc>,
    /// Provider time of the latest customer message.
    pub last_inbound_at: Option<DateTime<Utc>>,
    /// Provider time of the latest brand message (an agent's reply seen through its echo).
    pub last_outbound_at: Option<DateTime<Utc>>,
    /// The first customer message not answered yet; `null` when nobody waits.
    pub waiting_since: Option<DateTime<Utc>>,
    /// When the brand last answered a waiting customer.
    pub answered_at: Option<DateTime<Utc>>,
    /// Seconds from the first customer message to the first answer.
    pub first_response_seconds: Option<i64>,
    /// Seconds from the start of the latest answered wait to its answer.
    pub last_response_seconds: Option<i64>,
    /// When the current wait turns late (RFC 3339, UTC); `null` when nobody waits or the wait
    /// is not timed yet.
    pub due_at: Option<DateTime<Utc>>,
    /// When to warn before `due_at`.
    pub warn_at: Option<DateTime<Utc>>,
    /// The priority the prioritizer gave it; `null` until then.
    pub priority: Option<PriorityView>,
    /// How many response-time targets it has missed.
    pub sla_breaches: u32,
    /// `waiting` (a customer message has no answer), `answered` or `resolved`.
    pub status: CaseStatus,
    /// The number of the current case: 1, then one more each time a customer writes after a
    /// resolution.
    pub case: u32,
    /// When the current case was resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Who resolved it.
    pub resolved_by: Option<String>,
    /// Whether it was resolved after exactly one brand reply with no customer message after
    /// that reply; `null` while open.
    pub first_contact_resolution: Option<bool>,
    /// The agent it is assigned to.
    pub assignee: Option<String>,
}

/// A conversation's priority as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PriorityView {
    /// `P1` … `P4`.
    pub priority: Priority,
    /// The score behind it.
    pub score: i32,
    /// The topic.
    pub topic: String,
    /// The team that answers it.
    pub team: String,
    /// The signals that produced it, each with its weight.
    pub reasons: Vec<Reason>,
    /// When it was set.
    pub prioritized_at: DateTime<Utc>,
}

impl From<ConversationPriority> for PriorityView {
    fn from(p: ConversationPriority) -> Self {
        Self {
            priority: p.priority,
            score: p.score,
            topic: p.topic,
            team: p.team,
            reasons: p.reasons,
            prioritized_at: p.prioritized_at,
        }
    }
}

impl From<Conversation> for ConversationView {
    fn from(c: Conversation) -> Self {
        let clock = c.current_sla().map(|clock| (clock.due_at, clock.warn_at));
        let status = c.status();
        Self {
            id: c.id,
            channel: c.channel,
            account_id: c.account_id,
            customer_id: c.customer_id,
            customer_provider_id: c.customer.provider_user_id,
            customer_name: c.customer.display_name,
            preview: c.preview,
            first_at: c.first_at,
            last_at: c.last_at,
            last_inbound_at: c.last_inbound_at,
            last_outbound_at: c.last_outbound_at,
            waiting_since: c.waiting_since,
            answered_at: c.answered_at,
            first_response_seconds: c.first_response_seconds,
            last_response_seconds: c.last_response_seconds,
            due_at: clock.map(|(due, _)| due),
            warn_at: clock.map(|(_, warn)| warn),
            priority: c.priority.map(PriorityView::from),
            sla_breaches: c.sla_breaches,
            status,
            case: c.case.number,
            resolved_at: c.case.resolved_at,
            resolved_by: c.case.resolved_by,
            first_contact_resolution: c.case.first_contact_resolution,
            assignee: c.assignee,
        }
    }
}

/// A message or event as the API shows it (without the raw JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordView {
    /// `message` or `event`.
    pub record: String,
    /// Storage key.
    pub key: RecordKey,
    /// The conversation it belongs to.
    pub conversation_id: ConversationId,
    /// The provider's id of the message, or of the event.
    pub provider_message_id: ProviderId,
    /// Channel.
    pub channel: Channel,
    /// `text`, `image`, … for messages; `status.read`, `reaction`, `edit`, … for events.
    pub kind: String,
    /// Who sent it or caused it.
    pub direction: Direction,
    /// Provider time (RFC 3339, UTC).
    pub sent_at: DateTime<Utc>,
    /// True when the provider gave no readable time and `sent_at` is the receive time.
    pub sent_at_estimated: bool,
    /// Text, caption or chosen option.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Media references.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub attachments: Vec<Attachment>,
    /// The message this one replies to (messages) or the message it refers to (events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<ProviderId>,
    /// True for public messages (comments, mentions).
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub public: bool,
    /// The post or story a comment or story reply belongs to.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub thread_id: Option<ProviderId>,
    /// The event's details (status and errors, emoji, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<EventKind>,
    /// For an event: no message with the id it refers to had been seen when it arrived.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub refers_to_unknown: bool,
    /// When switchboard first stored it.
    pub stored_at: DateTime<Utc>,
    /// For an outbound message in `/messages`: its latest delivery status (`sent`,
    /// `delivered`, `read`, `failed`), when the provider reported one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status: Option<String>,
    /// When that status was reported.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub status_at: Option<DateTime<Utc>>,
    /// The provider's errors of a `failed` status.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub status_errors: Vec<ProviderError>,
}

impl RecordView {
    /// The view of `stored`, with its latest delivery status from `conversation` when it is
    /// one of its outbound messages.
    fn with_status(stored: StoredRecord, conversation: &Conversation) -> Option<Self> {
        let mut view = Self::from_stored(stored)?;
        if view.record == "message"
            && view.direction == Direction::Outbound
            && let Some(s) = conversation.status_of(&view.provider_message_id)
        {
            view.status = Some(s.status.as_str().to_owned());
            view.status_at = Some(s.at);
            view.status_errors = s.errors.clone();
        }
        Some(view)
    }

    fn from_stored(stored: StoredRecord) -> Option<Self> {
        let key = stored.key;
        let stored_at = stored.stored_at;
        Some(match stored.record {
            Record::Message(m) => Self {
                record: "message".into(),
                key,
                conversation_id: m.conversation_id,
                provider_message_id: m.provider_message_id,
                channel: m.channel,
                kind: m.kind.as_str().into(),
                direction: m.direction,
                sent_at: m.sent_at,
                sent_at_estimated: m.sent_at_estimated,
                text: m.text,
                attachments: m.attachments,
                reply_to: m.reply_to,
                public: m.public,
                thread_id: m.thread_id,
                event: None,
                refers_to_unknown: false,
                stored_at,
                status: None,
                status_at: None,
                status_errors: Vec::new(),
            },
            Record::Event(e) => Self {
                record: "event".into(),
                key,
                conversation_id: e.conversation_id,
                provider_message_id: e.event_id,
                channel: e.channel,
                kind: e.kind.name(),
                direction: e.direction,
                sent_at: e.occurred_at,
                sent_at_estimated: e.occurred_at_estimated,
                text: match &e.kind {
                    EventKind::Edit { text } => text.clone(),
                    _ => None,
                },
                attachments: Vec::new(),
                reply_to: Some(e.refers_to),
                public: false,
                thread_id: None,
                refers_to_unknown: e.refers_to_unknown,
                event: Some(e.kind),
                stored_at,
                status: None,
                status_at: None,
                status_errors: Vec::new(),
            },
            Record::Notification(_) => return None,
        })
    }
}

/// A delivery kept because it was not JSON, in `GET /api/quarantine`.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct Quarantined {
    /// Its id (`GET /api/deliveries/{id}` has its bytes).
    id: DeliveryId,
}

/// The answer of `GET /api/customers?…`: every surviving customer carrying the identifier once.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct CustomerMatches {
    /// The customers; empty when nobody carries it.
    items: Vec<Customer>,
}

/// The answer of `DELETE /api/customers/{id}/links/{other}`.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct Unlinked {
    /// What is left of the customer.
    customer: Customer,
    /// The customer that stands alone again.
    unlinked: Customer,
}

/// The answer of `GET /api/teams`.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct Teams {
    /// The teams of the priority configuration, sorted.
    teams: Vec<String>,
}

/// The answer of `GET /api/me`.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct Me {
    /// The agent recorded on this request's replies, assignments and resolutions.
    agent: String,
}

fn page_of<T, U>(page: Page<T>, f: impl FnMut(T) -> Option<U>) -> Json<Page<U>> {
    Json(Page {
        items: page.items.into_iter().filter_map(f).collect(),
        next: page.next,
    })
}

#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        get,
        path = "/api/conversations",
        tag = "conversations",
        operation_id = "list_conversations",
        params(
            ("channel" = Option<Channel>, Query, description = "Only this channel's conversations."),
            openapi::PageParams,
        ),
        responses(
            (status = 200, description = "Conversations, most recently active first.", body = Page<ConversationView>, links(
                ("conversation" = (operation_id = "get_conversation", parameters(("id" = "$response.body#/items/0/id")))),
                ("messages" = (operation_id = "list_messages", parameters(("id" = "$response.body#/items/0/id")))),
                ("answered" = (operation_id = "mark_answered", parameters(("id" = "$response.body#/items/0/id")))),
                ("resolve" = (operation_id = "resolve", parameters(("id" = "$response.body#/items/0/id")))),
                ("assign" = (operation_id = "assign", parameters(("id" = "$response.body#/items/0/id")))),
                ("reply" = (operation_id = "reply", parameters(("id" = "$response.body#/items/0/id")))),
                ("customer" = (operation_id = "get_customer", parameters(("id" = "$response.body#/items/0/customer_id")))),
                ("timeline" = (operation_id = "customer_timeline", parameters(("id" = "$response.body#/items/0/customer_id")))),
                ("tier" = (operation_id = "set_tier", parameters(("id" = "$response.body#/items/0/customer_id")))),
                ("link" = (operation_id = "link_customers", parameters(("id" = "$response.body#/items/0/customer_id")))),
                ("erase" = (operation_id = "erase_customer", parameters(("id" = "$response.body#/items/0/customer_id")))),
            )),
            (status = 400, description = "A parameter is wrong; `detail` says which.", body = Problem, content_type = "application/problem+json"),
        ),
    )
)]
async fn list_conversations(
    State(reader): State<Arc<dyn ConversationReader>>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Page<ConversationView>>, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let page = reader
        .conversations(query.channel()?, query.page()?)
        .await?;
    Ok(page_of(page, |c| Some(c.into())))
}

#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        get,
        path = "/api/conversations/{id}",
        tag = "conversations",
        operation_id = "get_conversation",
        params(
            ("id" = String, Path, description = "The conversation's id."),
        ),
        responses(
            (status = 200, description = "The conversation.", body = ConversationView),
            (status = 404, description = "No such conversation.", body = Problem, content_type = "application/problem+json"),
        ),
    )
)]
async fn get_conversation(
    State(state): State<OneConversation>,
    Path(id): Path<String>,
) -> Result<Json<ConversationView>, ApiError> {
    let conversation = state
        .conversations
        .conversation(&ConversationId::from_stored(id))
        .await?
        .ok_or(ApiError::NotFound("conversation"))?;
    Ok(Json(conversation.into()))
}

#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        get,
        path = "/api/conversations/{id}/messages",
        tag = "conversations",
        operation_id = "list_messages",
        params(
            ("id" = String, Path, description = "The conversation's id."),
            openapi::PageParams,
        ),
        responses(
            (status = 200, description = "Messages and events in provider-time order, outbound ones with their delivery status.", body = Page<RecordView>),
            (status = 400, description = "A parameter is wrong; `detail` says which.", body = Problem, content_type = "application/problem+json"),
            (status = 404, description = "No such conversation.", body = Problem, content_type = "application/problem+json"),
        ),
    )
)]
async fn list_messages(
    State(state): State<OneConversation>,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Page<RecordView>>, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let page_request = query.page()?;
    let id = ConversationId::from_stored(id);
    let conversation = state
        .conversations
        .conversation(&id)
        .await?
        .ok_or(ApiError::NotFound("conversation"))?;
    let page = state.reader.timeline(&id, page_request).await?;
    Ok(page_of(page, |r| RecordView::with_status(r, &conversation)))
}

#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        get,
        path = "/api/quarantine",
        tag = "deliveries",
        operation_id = "list_quarantine",
        params(
            openapi::PageParams,
        ),
        responses(
            (status = 200, description = "Ids of deliveries kept because they were not JSON.", body = Page<Quarantined>),
            (status = 400, description = "A parameter is wrong; `detail` says which.", body = Problem, content_type = "application/problem+json"),
        ),
    )
)]
async fn list_quarantine(
    State(reader): State<Arc<dyn ConversationReader>>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Page<Quarantined>>, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let page = reader.quarantined(query.page()?).await?;
    Ok(page_of(page, |id| Some(Quarantined { id })))
}

#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        get,
        path = "/api/deliveries/{id}",
        tag = "deliveries",
        operation_id = "get_delivery",
        params(
            ("id" = String, Path, description = "The delivery's id."),
        ),
        responses(
            (status = 200, description = "The delivery, byte for byte as the provider sent it.", body = Vec<u8>, content_type = "application/octet-stream"),
            (status = 404, description = "No such delivery, or its bytes were erased.", body = Problem, content_type = "application/problem+json"),
        ),
    )
)]
async fn get_delivery(
    State(reader): State<Arc<dyn ConversationReader>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let delivery = reader
        .delivery(&DeliveryId::from_stored(id))
        .await?
        .ok_or(ApiError::NotFound("delivery"))?;
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/octet-stream")],
        delivery.body,
    )
        .into_response())
}

#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        get,
        path = "/api/customers/{id}",
        tag = "customers",
        operation_id = "get_customer",
        params(
            ("id" = String, Path, description = "The customer's id."),
        ),
        responses(
            (status = 200, description = "The customer and their channel identities.", body = Customer, links(
                ("unlink" = (operation_id = "unlink_customers", parameters(("id" = "$response.body#/id")))),
            )),
            (status = 404, description = "No such customer.", body = Problem, content_type = "application/problem+json"),
        ),
    )
)]
async fn get_customer(
    State(CustomerState { customers, .. }): State<CustomerState>,
    Path(id): Path<String>,
) -> Result<Json<Customer>, ApiError> {
    let customer = customers
        .customer(&CustomerId::from_stored(id))
        .await?
        .ok_or(ApiError::NotFound("customer"))?;
    Ok(Json(customer))
}

#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        get,
        path = "/api/customers/{id}/timeline",
        tag = "customers",
        operation_id = "customer_timeline",
        params(
            ("id" = String, Path, description = "The customer's id."),
            openapi::PageParams,
        ),
        responses(
            (status = 200, description = "Every message and event of the customer across channels, in provider-time order.", body = Page<RecordView>),
            (status = 400, description = "A parameter is wrong; `detail` says which.", body = Problem, content_type = "application/problem+json"),
            (status = 404, description = "No such customer.", body = Problem, content_type = "application/problem+json"),
        ),
    )
)]
async fn customer_timeline(
    State(CustomerState { customers, .. }): State<CustomerState>,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Page<RecordView>>, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let page_request = query.page()?;
    let customer = customers
        .customer(&CustomerId::from_stored(id))
        .await?
        .ok_or(ApiError::NotFound("customer"))?;
    let page = customers.timeline(&customer.id, page_request).await?;
    Ok(page_of(page, RecordView::from_stored))
}

/// The body of `POST /api/customers/{id}/link`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct LinkRequest {
    /// The other customer: the two are one person.
    customer_id: String,
}

#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        post,
        path = "/api/customers/{id}/link",
        tag = "customers",
        operation_id = "link_customers",
        params(
            ("id" = String, Path, description = "The customer's id."),
        ),
        request_body = LinkRequest,
        responses(
            (status = 200, description = "The customer both are now.", body = Customer),
            (status = 400, description = "A parameter is wrong; `detail` says which.", body = Problem, content_type = "application/problem+json"),
            (status = 404, description = "No such customer.", body = Problem, content_type = "application/problem+json"),
        ),
    )
)]
async fn link_customers(
    State(CustomerState {
        customers, clock, ..
    }): State<CustomerState>,
    Path(id): Path<String>,
    body: Result<Json<LinkRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Customer>, ApiError> {
    let Json(request) = body.map_err(|e| bad_json(e, r#"{"customer_id": "cu_…"}"#))?;
    let merged = customers
        .link(
            &CustomerId::from_stored(id),
            &CustomerId::from_stored(request.customer_id),
            clock.now(),
            None,
        )
        .await?;
    Ok(Json(merged))
}

/// What the customer routes serve from.
#[derive(Clone)]
struct CustomerState {
    customers: Arc<dyn CustomerDirectory>,
    identities: Arc<dyn IdentityLookup>,
    clock: Arc<dyn Clock>,
}

/// What `DELETE /api/customers/{id}` serves from.
#[derive(Clone)]
struct ErasureState {
    erasure: Option<Erasure>,
    agents: AgentSource,
}

fn erasure_routes(state: ErasureState) -> Router {
    Router::new()
        .route("/api/customers/{id}", delete(erase_customer))
        .with_state(state)
}

/// `DELETE /api/customers/{id}` alone, with the API's error shape and body bound: what a
/// deployment serves from a function of its own (the erasure reads the whole table, which the
/// agent API has no need to). Agents come from `agents`.
pub fn erasure_router(erasure: Erasure, agents: AgentSource) -> Router {
    erasure_routes(ErasureState {
        erasure: Some(erasure),
        agents,
    })
    .route("/api/{*rest}", axum::routing::any(unknown_route))
    .layer(axum::middleware::from_fn(bounded_body))
    .layer(axum::middleware::from_fn(problems_only))
}

/// `DELETE /api/customers/{id}`: erases the person (the customer and every one linked with
/// them) and answers the receipt of what was erased; 404 when no such customer is stored
/// (an erasure done already among them). See [`switchboard_core::erasure`].
#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        delete,
        path = "/api/customers/{id}",
        tag = "customers",
        operation_id = "erase_customer",
        params(
            ("id" = String, Path, description = "The customer's id."),
            openapi::AgentHeader,
        ),
        responses(
            (status = 200, description = "What was erased, counted.", body = ErasureReceipt),
            (status = 400, description = "A bad `X-Switchboard-Agent`.", body = Problem, content_type = "application/problem+json"),
            (status = 404, description = "No such customer (or erased already).", body = Problem, content_type = "application/problem+json"),
        ),
    )
)]
async fn erase_customer(
    State(state): State<ErasureState>,
    Path(id): Path<String>,
    request: axum::extract::Request,
) -> Result<Json<ErasureReceipt>, ApiError> {
    let erasure = state
        .erasure
        .as_ref()
        .ok_or(ApiError::NotFound("customer erasure"))?;
    // An agent's action: refused (401) where no agent is authenticated.
    let (parts, _) = request.into_parts();
    state.agents.agent(&parts)?;
    let receipt = erasure
        .erase(&CustomerId::from_stored(id))
        .await?
        .ok_or(ApiError::NotFound("customer"))?;
    Ok(Json(receipt))
}

/// `DELETE /api/customers/{id}/links/{other}`: undoes the link of `other` into the customer of
/// `id`; answers both, `customer` (what is left) and `unlinked` (what stands alone again).
#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        delete,
        path = "/api/customers/{id}/links/{other}",
        tag = "customers",
        operation_id = "unlink_customers",
        params(
            ("id" = String, Path, description = "The customer's id."),
            ("other" = String, Path, description = "The customer linked into it."),
        ),
        responses(
            (status = 200, description = "What is left, and what stands alone again.", body = Unlinked),
            (status = 404, description = "No such customer or link.", body = Problem, content_type = "application/problem+json"),
        ),
    )
)]
async fn unlink_customers(
    State(CustomerState { customers, .. }): State<CustomerState>,
    Path((id, other)): Path<(String, String)>,
) -> Result<Json<Unlinked>, ApiError> {
    let (customer, unlinked) = customers
        .unlink(
            &CustomerId::from_stored(id),
            &CustomerId::from_stored(other),
        )
        .await?;
    Ok(Json(Unlinked { customer, unlinked }))
}

/// The query of `GET /api/customers`: exactly one identifier.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FindQuery {
    email: Option<String>,
    phone: Option<String>,
    handle: Option<String>,
}

/// `GET /api/customers?email=|phone=|handle=`: the customers carrying that identifier (each
/// surviving customer once), `{"items": [...]}`, empty when nobody does.
#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        get,
        path = "/api/customers",
        tag = "customers",
        operation_id = "find_customers",
        params(
            ("email" = Option<String>, Query, description = "An e-mail address."),
            ("phone" = Option<String>, Query, description = "An E.164 phone number, with its + and country code."),
            ("handle" = Option<String>, Query, description = "A handle."),
        ),
        responses(
            (status = 200, description = "The customers carrying the identifier (give exactly one).", body = CustomerMatches),
            (status = 400, description = "A parameter is wrong; `detail` says which.", body = Problem, content_type = "application/problem+json"),
        ),
    )
)]
async fn find_customers(
    State(CustomerState {
        customers,
        identities,
        ..
    }): State<CustomerState>,
    query: Result<Query<FindQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<CustomerMatches>, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let given = [
        (IdentifierKind::Email, query.email),
        (IdentifierKind::Phone, query.phone),
        (IdentifierKind::Handle, query.handle),
    ]
    .into_iter()
    .filter_map(|(kind, value)| value.map(|v| (kind, v)))
    .collect::<Vec<_>>();
    let [(kind, value)] = given.as_slice() else {
        return Err(ApiError::BadRequest(
            "give exactly one of email, phone (E.164, with its + and country code) or handle"
                .into(),
        ));
    };
    let identifier = Identifier::parse(*kind, value).ok_or_else(|| {
        ApiError::BadRequest(match kind {
            IdentifierKind::Phone => {
                "phone must be in E.164: + and the country code, then the number".into()
            }
            other => format!("{} is not a valid {}", other.as_str(), other.as_str()),
        })
    })?;
    let found =
        switchboard_core::resolve::customers_with(&*identities, &*customers, &identifier).await?;
    Ok(Json(CustomerMatches { items: found }))
}

/// Where the next page of a queue listing starts: after `after`, for `scope` (`team:<t>`,
/// `agent:<a>`, or none for all teams).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueCursor {
    #[serde(rename = "s")]
    scope: Option<String>,
    #[serde(rename = "a")]
    after: QueuePosition,
}

impl QueueCursor {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(text: &str, scope: Option<&str>) -> Result<QueuePosition, ApiError> {
        let bad = || ApiError::Backend(BackendError::BadCursor);
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
        let cursor: Self = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        if cursor.scope.as_deref() != scope {
            return Err(bad());
        }
        Ok(cursor.after)
    }
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|t| !t.is_empty())
}

/// `GET /api/teams`: the teams of the priority configuration, sorted.
#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        get,
        path = "/api/teams",
        tag = "queues",
        operation_id = "list_teams",
        responses(
            (status = 200, description = "The teams of the priority configuration, sorted.", body = Teams),
        ),
    )
)]
async fn list_teams(State(state): State<QueueState>) -> Json<Teams> {
    Json(Teams {
        teams: state.teams.to_vec(),
    })
}

/// `GET /api/me`: the agent this request acts as (recorded on replies, assignments and
/// resolutions): the `X-Switchboard-Agent` header under `serve`, the signed-in user deployed.
#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        get,
        path = "/api/me",
        tag = "agents",
        operation_id = "me",
        params(
            openapi::AgentHeader,
        ),
        responses(
            (status = 200, description = "The agent this request acts as.", body = Me),
            (status = 400, description = "A parameter is wrong; `detail` says which.", body = Problem, content_type = "application/problem+json"),
        ),
    )
)]
async fn me(
    State(state): State<CaseState>,
    request: axum::extract::Request,
) -> Result<Json<Me>, ApiError> {
    let (parts, _) = request.into_parts();
    Ok(Json(Me {
        agent: state.agents.agent(&parts)?,
    }))
}

/// Requires `Authorization: Bearer <token>` on every route of `router`, compared in constant
/// time (`SWITCHBOARD_API_TOKEN` under `serve`); anything else is 401 and reaches no handler.
pub fn require_token(router: Router, token: switchboard_core::verify::Secret) -> Router {
    router.layer(axum::middleware::from_fn_with_state(
        Arc::new(token),
        check_token,
    ))
}

async fn check_token(
    State(token): State<Arc<switchboard_core::verify::Secret>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(given)
            if switchboard_core::verify::constant_time_eq(
                given.as_bytes(),
                token.expose().as_bytes(),
            ) =>
        {
            next.run(request).await
        }
        _ => ApiError::SignIn.into_response(),
    }
}

#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        get,
        path = "/api/queue",
        tag = "queues",
        operation_id = "list_queue",
        params(
            ("team" = Option<String>, Query, description = "A team's queue; without it (and without `agent`), every team's queues merged."),
            ("agent" = Option<String>, Query, max_length = 128, description = "The waiting conversations assigned to this agent (not with `team`)."),
            openapi::PageParams,
        ),
        responses(
            (status = 200, description = "Waiting conversations, most urgent first, then longest waiting.", body = Page<ConversationView>),
            (status = 400, description = "A parameter is wrong; `detail` says which.", body = Problem, content_type = "application/problem+json"),
        ),
    )
)]
async fn list_queue(
    State(state): State<QueueState>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Page<ConversationView>>, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let page = query.page()?;
    let (team, agent) = (non_empty(&query.team), non_empty(&query.agent));
    let queues: Vec<QueueName> = match (team, agent) {
        (Some(_), Some(_)) => {
            return Err(ApiError::BadRequest(
                "give team or agent, not both".to_owned(),
            ));
        }
        (None, Some(agent)) if !valid_agent(agent) => {
            return Err(ApiError::BadRequest(format!(
                "agent must be 1 to {MAX_AGENT_CHARS} visible characters"
            )));
        }
        (None, Some(agent)) => vec![QueueName::Agent(agent)],
        (Some(team), None) => vec![QueueName::Team(team)],
        (None, None) => state.teams.iter().map(|t| QueueName::Team(t)).collect(),
    };
    let scope = match (team, agent) {
        (Some(t), _) => Some(format!("team:{t}")),
        (_, Some(a)) => Some(format!("agent:{a}")),
        _ => None,
    };
    let after = page
        .cursor
        .as_deref()
        .map(|c| QueueCursor::decode(c, scope.as_deref()))
        .transpose()?;
    // One more than the page from each queue: enough to fill the page from any mix of them
    // and to know whether another page follows.
    let mut merged = Vec::new();
    for q in queues {
        merged.extend(
            state
                .reader
                .queue(q, after.as_ref(), page.limit + 1)
                .await?,
        );
    }
    let mut merged: Vec<(QueuePosition, Conversation)> = merged
        .into_iter()
        .filter_map(|c| Some((QueuePosition::of(&c)?, c)))
        .collect();
    merged.sort_by(|a, b| a.0.cmp(&b.0));
    let next = (merged.len() > page.limit).then(|| {
        QueueCursor {
            scope,
            after: merged[page.limit - 1].0.clone(),
        }
        .encode()
    });
    merged.truncate(page.limit);
    Ok(Json(Page {
        items: merged.into_iter().map(|(_, c)| c.into()).collect(),
        next,
    }))
}

#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        get,
        path = "/api/events",
        tag = "events",
        operation_id = "list_events",
        params(
            ("type" = Option<String>, Query, description = "Only events of this type (`conversation.prioritized`, …)."),
            openapi::PageParams,
        ),
        responses(
            (status = 200, description = "Published domain events, oldest first.", body = Page<DomainEvent>),
            (status = 400, description = "A parameter is wrong; `detail` says which.", body = Problem, content_type = "application/problem+json"),
            (status = 404, description = "This backend publishes its events to EventBridge.", body = Problem, content_type = "application/problem+json"),
        ),
    )
)]
async fn list_events(
    State(events): State<Option<Arc<dyn EventLog>>>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Page<DomainEvent>>, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let events = events.ok_or(ApiError::NotFound(
        "event log (this backend publishes events to EventBridge)",
    ))?;
    let kind = query.kind.as_deref().filter(|k| !k.is_empty());
    Ok(Json(events.events(kind, query.page()?).await?))
}

/// The body of `PUT /api/customers/{id}/tier`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct TierRequest {
    /// The tier (1 to 64 characters), or `null`: none.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 64, pattern = "\\S")
    )]
    tier: Option<String>,
}

/// The longest tier name accepted.
const MAX_TIER_CHARS: usize = 64;

#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        put,
        path = "/api/customers/{id}/tier",
        tag = "customers",
        operation_id = "set_tier",
        params(
            ("id" = String, Path, description = "The customer's id."),
        ),
        request_body = TierRequest,
        responses(
            (status = 200, description = "The customer with the tier.", body = Customer),
            (status = 400, description = "A parameter is wrong; `detail` says which.", body = Problem, content_type = "application/problem+json"),
            (status = 404, description = "No such customer.", body = Problem, content_type = "application/problem+json"),
        ),
    )
)]
async fn set_tier(
    State(CustomerState { customers, .. }): State<CustomerState>,
    Path(id): Path<String>,
    body: Result<Json<TierRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Customer>, ApiError> {
    let Json(request) = body.map_err(|e| bad_json(e, r#"{"tier": "vip"} (or null)"#))?;
    let tier = request.tier.map(|t| t.trim().to_owned());
    if let Some(t) = &tier
        && (t.is_empty() || t.chars().count() > MAX_TIER_CHARS)
    {
        return Err(ApiError::BadRequest(format!(
            "tier must be 1 to {MAX_TIER_CHARS} characters, or null"
        )));
    }
    let customer = customers
        .set_tier(&CustomerId::from_stored(id), tier.as_deref())
        .await?
        .ok_or(ApiError::NotFound("customer"))?;
    Ok(Json(customer))
}

/// The body of `POST /api/conversations/{id}/answered`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct AnsweredRequest {
    /// When the agent answered (RFC 3339); absent: now. Not in the future, not before the
    /// wait.
    at: Option<DateTime<Utc>>,
}

#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        post,
        path = "/api/conversations/{id}/answered",
        tag = "cases",
        operation_id = "mark_answered",
        params(
            ("id" = String, Path, description = "The conversation's id."),
        ),
        request_body(content = AnsweredRequest, description = "No body: now."),
        responses(
            (status = 200, description = "The conversation, its wait ended.", body = ConversationView),
            (status = 400, description = "A parameter is wrong; `detail` says which.", body = Problem, content_type = "application/problem+json"),
            (status = 404, description = "No such conversation.", body = Problem, content_type = "application/problem+json"),
        ),
    )
)]
async fn mark_answered(
    State(state): State<CaseState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<ConversationView>, ApiError> {
    let cases = state.cases()?;
    let request: AnsweredRequest = if body.iter().all(u8::is_ascii_whitespace) {
        AnsweredRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::BadRequest(format!(
                "expected no body, or {{\"at\": \"<RFC 3339 time>\"}}: {e}"
            ))
        })?
    };
    let conversation = cases
        .mark_answered(&ConversationId::from_stored(id), request.at)
        .await?
        .ok_or(ApiError::NotFound("conversation"))?;
    Ok(Json(conversation.into()))
}

#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        post,
        path = "/api/conversations/{id}/resolve",
        tag = "cases",
        operation_id = "resolve",
        params(
            ("id" = String, Path, description = "The conversation's id."),
            openapi::AgentHeader,
        ),
        responses(
            (status = 200, description = "The conversation, its case resolved.", body = ConversationView),
            (status = 400, description = "A parameter is wrong; `detail` says which.", body = Problem, content_type = "application/problem+json"),
            (status = 404, description = "No such conversation.", body = Problem, content_type = "application/problem+json"),
        ),
    )
)]
async fn resolve(
    State(state): State<CaseState>,
    Path(id): Path<String>,
    request: axum::extract::Request,
) -> Result<Json<ConversationView>, ApiError> {
    let cases = state.cases()?;
    let (parts, _) = request.into_parts();
    let agent = state.agents.agent(&parts)?;
    let conversation = cases
        .resolve(&ConversationId::from_stored(id), &agent)
        .await?
        .ok_or(ApiError::NotFound("conversation"))?;
    Ok(Json(conversation.into()))
}

/// The body of `POST /api/conversations/{id}/assign`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
struct AssignRequest {
    /// The agent (1 to 128 visible characters), or `null`: nobody.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 128,
            pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
        )
    )]
    agent: Option<String>,
}

#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        post,
        path = "/api/conversations/{id}/assign",
        tag = "cases",
        operation_id = "assign",
        params(
            ("id" = String, Path, description = "The conversation's id."),
            openapi::AgentHeader,
        ),
        request_body = AssignRequest,
        responses(
            (status = 200, description = "The conversation, assigned.", body = ConversationView),
            (status = 400, description = "A parameter is wrong; `detail` says which.", body = Problem, content_type = "application/problem+json"),
            (status = 404, description = "No such conversation.", body = Problem, content_type = "application/problem+json"),
        ),
    )
)]
async fn assign(
    State(state): State<CaseState>,
    Path(id): Path<String>,
    request: axum::extract::Request,
) -> Result<Json<ConversationView>, ApiError> {
    let cases = state.cases()?;
    let (parts, body) = request.into_parts();
    let by = state.agents.agent(&parts)?;
    let body = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map_err(|_| ApiError::BadRequest("body unreadable or over 64 KiB".to_owned()))?;
    let expected = "expected a JSON body {\"agent\": \"<id>\"} or {\"agent\": null}";
    let AssignRequest { agent } = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("{expected}: {e}")))?;
    let agent = agent.map(|a| a.trim().to_owned());
    if let Some(a) = &agent
        && !valid_agent(a)
    {
        return Err(ApiError::BadRequest(format!(
            "agent must be 1 to {MAX_AGENT_CHARS} visible characters, or null"
        )));
    }
    let conversation = cases
        .assign(&ConversationId::from_stored(id), agent.as_deref(), &by)
        .await?
        .ok_or(ApiError::NotFound("conversation"))?;
    Ok(Json(conversation.into()))
}

/// The request header that makes a reply idempotent.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// The response header set on the answer to a repeated idempotency key.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// The largest reply body read.
const MAX_REPLY_BODY: usize = 64 * 1024;

#[cfg_attr(
    feature = "openapi",
    utoipa::path(
        post,
        path = "/api/conversations/{id}/reply",
        tag = "cases",
        operation_id = "reply",
        params(
            ("id" = String, Path, description = "The conversation's id."),
            openapi::AgentHeader,
            ("Idempotency-Key" = Option<String>, Header, description = "The same key answers the same reply once sent, without sending it again."),
        ),
        request_body = ReplyRequest,
        responses(
            (status = 201, description = "The stored outbound message.", body = RecordView),
            (status = 400, description = "A parameter is wrong; `detail` says which.", body = Problem, content_type = "application/problem+json"),
            (status = 404, description = "No such conversation, or replies are not configured.", body = Problem, content_type = "application/problem+json"),
            (status = 409, description = "The channel's window is closed, or the key is in progress.", body = Problem, content_type = "application/problem+json"),
            (status = 422, description = "The key was used for another body, or the kind of reply is not supported.", body = Problem, content_type = "application/problem+json"),
            (status = 502, description = "The provider refused the reply or could not be reached.", body = Problem, content_type = "application/problem+json"),
            (status = 503, description = "No access token for the channel.", body = Problem, content_type = "application/problem+json"),
            (status = 504, description = "The provider did not answer in time; the reply may have been sent.", body = Problem, content_type = "application/problem+json"),
        ),
    )
)]
async fn reply(
    State(state): State<CaseState>,
    Path(id): Path<String>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let replies = state
        .replies
        .as_ref()
        .ok_or(ApiError::NotFound("replies"))?;
    let (parts, body) = request.into_parts();
    let by = state.agents.agent(&parts)?;
    let key = match parts.headers.get(IDEMPOTENCY_KEY_HEADER) {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| {
            ApiError::BadRequest("Idempotency-Key must be visible ASCII".to_owned())
        })?),
    };
    let body = axum::body::to_bytes(body, MAX_REPLY_BODY)
        .await
        .map_err(|_| ApiError::BadRequest("body unreadable or over 64 KiB".to_owned()))?;
    let request: ReplyRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "expected a JSON body {{\"text\": \"…\", \"reply_to\": \"<provider message id>\"}} \
             (optional: private, template, tag): {e}"
        ))
    })?;
    let replied = replies
        .reply(&ConversationId::from_stored(id), &request, key, &by)
        .await?;
    let view = RecordView::from_stored(replied.record).ok_or(ApiError::NotFound("message"))?;
    let mut response = (StatusCode::CREATED, Json(view)).into_response();
    if replied.replayed {
        response
            .headers_mut()
            .insert(REPLAYED_HEADER, http::HeaderValue::from_static("true"));
    }
    Ok(response)
}
