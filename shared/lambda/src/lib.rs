//! switchboard's Lambda functions, wired: each function's `main` calls one of these, which
//! reads and checks its settings once (a missing or bad one stops start-up with its name),
//! builds its ports through [`AwsPorts`] and answers the application `lambda_http::run` or
//! `lambda_runtime::run` serves.
//!
//! | function | here | handler |
//! |---|---|---|
//! | `webhook-<channel>` | [`webhook_app`] | the webhook router |
//! | `email-intake` | `mail_intake_app` (feature `mail`) | `MailIntake::handle` on the mail bucket's S3 events |
//! | `intake-forwarder` | [`forwarder_app`] | [`Forwarder::forward`] on the outbox table's stream |
//! | `prioritizer` | [`prioritizer_app`] | [`handle_sqs`] on the intake queue |
//! | `sla-reminder` | [`reminder_app`] | [`handle_sqs`] on the reminder queue |
//! | `agent-api` | [`agent_api_app`] | the `/api` router |
//! | `customer-erasure` | [`erasure_app`] | `DELETE /api/customers/{id}` |
#![warn(missing_docs)]

use std::collections::HashMap;
use std::sync::Arc;

use switchboard_aws::assembly::{AwsPorts, channel_verification, reply_tokens, sdk_config};
use switchboard_aws::settings::{
    ApiSettings, ErasureSettings, IntakeSettings, PrioritizerSettings, ReminderSettings,
};
use switchboard_core::channels;
use switchboard_core::clock::{Clock, SystemClock};
use switchboard_core::config::{ConfigError, ProcessEnv};
use switchboard_core::erasure::ErasureSite;
use switchboard_core::model::Webhook;
use switchboard_core::ports::ReplySender;
use switchboard_core::prioritize::Prioritizer;
use switchboard_core::priority::{PriorityConfig, Scorer};
use switchboard_core::remind::ReminderHandler;
use switchboard_http::api::Agent;
use switchboard_http::{
    AgentSource, ApiPorts, ConsoleAuth, ConsoleConfig, WebhookState, api_router, console_router,
    webhook_router,
};
use switchboard_senders::Senders;

pub use switchboard_aws::forwarder::{Forwarder, StreamEvent, StreamResponse};
pub use switchboard_aws::sqs_events::handle_sqs;

pub mod emf;

/// Why a function could not start.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct StartupError(#[from] ConfigError);

/// The webhook application of a function serving `webhooks`, from the process environment:
/// the router `lambda_http::run` serves.
pub async fn webhook_app(webhooks: &[Webhook]) -> Result<axum::Router, StartupError> {
    let source = ProcessEnv;
    let settings = IntakeSettings::from_source(&source)?;
    let sdk = sdk_config().await;
    let mut verifiers = HashMap::new();
    for &webhook in webhooks {
        let module = channels::module(webhook);
        verifiers.insert(
            webhook,
            channel_verification(&source, Some(&sdk), module).await?,
        );
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ports = AwsPorts::new(&sdk, &settings.store, clock.clone());
    let intake = ports.intake_through_outbox(&settings.outbox_table);
    Ok(webhook_router(WebhookState::new(intake, verifiers, clock)))
}

/// The prioritizer of the function, from the process environment: the word lists of
/// `SWITCHBOARD_PRIORITY` and the urgency model of `SWITCHBOARD_MODEL` ([`scorer`]).
pub async fn prioritizer_app() -> Result<Prioritizer, StartupError> {
    let settings = PrioritizerSettings::from_source(&ProcessEnv)?;
    let store = settings.store();
    let scorer = scorer(settings.priority, settings.model.as_deref())?;
    let sdk = sdk_config().await;
    let ports = AwsPorts::new(&sdk, &store, Arc::new(SystemClock));
    let watcher = settings
        .watch
        .clone()
        .map(|w| ports.watcher(&settings.schedules, &settings.event_bus, w));
    let prioritizer = ports
        .prioritizer(
            &settings.event_bus,
            &settings.schedules,
            Arc::new(scorer),
            settings.policy,
            settings.statuses_answer,
        )
        .auto_link(settings.auto_link);
    Ok(match watcher {
        Some(w) => prioritizer.watching(w),
        None => prioritizer,
    })
}

/// The prioritizer's scorer: the word lists of `priority`, and the urgency model of the file
/// `model` when there is one (the prioritizer's layer; `SWITCHBOARD_MODEL`). A file that is
/// named but cannot be opened stops start-up with an error naming `SWITCHBOARD_MODEL`: on
/// Lambda the layer is part of the stack, so a missing model is a broken deployment, not a
/// reason to prioritize with less without anyone noticing. (`switchboard serve` falls back to
/// the word lists with a warning instead.)
pub fn scorer(
    priority: PriorityConfig,
    model: Option<&std::path::Path>,
) -> Result<Scorer, StartupError> {
    let scorer = Scorer::new(priority);
    let Some(path) = model else {
        tracing::info!("SWITCHBOARD_MODEL unset: the word lists alone prioritize");
        return Ok(scorer);
    };
    let invalid = |reason: String| {
        StartupError(ConfigError::Invalid {
            name: switchboard_core::config::MODEL.to_owned(),
            reason,
        })
    };
    #[cfg(feature = "model")]
    {
        let model = switchboard_encoder::urgency::Urgency::open(path)
            .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
        tracing::info!("urgency model loaded");
        Ok(scorer.with_model(Arc::new(model)))
    }
    #[cfg(not(feature = "model"))]
    {
        let _ = scorer;
        Err(invalid(format!(
            "{}: this build has no urgency model (the `model` feature of switchboard-lambda)",
            path.display()
        )))
    }
}

/// The e-mail intake of the function `email-intake`, from the process environment: the
/// messages SES stored in the mail bucket, through the intake of the table and queue.
#[cfg(feature = "mail")]
pub async fn mail_intake_app() -> Result<switchboard_aws::mail::MailIntake, StartupError> {
    let settings = IntakeSettings::from_source(&ProcessEnv)?;
    let sdk = sdk_config().await;
    let ports = AwsPorts::new(&sdk, &settings.store, Arc::new(SystemClock));
    Ok(switchboard_aws::mail::MailIntake::from_sdk(
        &sdk,
        ports.intake_through_outbox(&settings.outbox_table),
    ))
}

/// The forwarder of the function `intake-forwarder`, from the process environment
/// (`SWITCHBOARD_INTAKE_QUEUE_URL`): the outbox table's stream records in, their queue
/// entries sent to the intake queue.
pub async fn forwarder_app() -> Result<Forwarder, StartupError> {
    let queue_url = switchboard_aws::settings::intake_queue_url(&ProcessEnv)?;
    let sdk = sdk_config().await;
    Ok(switchboard_aws::assembly::forwarder(&sdk, &queue_url))
}

/// The agent API on AWS: the `/api` routes (queue, conversations, timelines, customers,
/// links, tiers, quarantine, deliveries, the agent tool's answer, resolutions, assignments and
/// replies through `sender`) over DynamoDB. An answer or a resolution ends the wait and deletes its reminders from the
/// Scheduler group; answers, resolutions and assignments are published to the bus. Nothing
/// here scores or enqueues. The acting agent is the caller the HTTP API's IAM authorizer
/// authenticated ([`caller_identity`]). `GET /api/events` answers 404: on AWS the events are
/// on the EventBridge bus.
pub fn agent_api(
    ports: &AwsPorts,
    settings: &ApiSettings,
    sender: Arc<dyn ReplySender>,
) -> axum::Router {
    let store = ports.store();
    // The console, when the stack has its user pool: the page, signing in with Cognito.
    let console = settings.console.as_ref().map(|c| {
        console_router(ConsoleConfig {
            api_base: "/api".into(),
            auth: ConsoleAuth::Cognito {
                domain: c.domain.clone(),
                client_id: c.client_id.clone(),
            },
        })
    });
    let api = api_router(ApiPorts {
        reader: store.clone(),
        conversations: store.clone(),
        customers: store.clone(),
        identities: store,
        clock: ports.clock(),
        events: None,
        cases: Some(ports.cases(&settings.schedules, &settings.event_bus)),
        replies: Some(ports.replies(&settings.schedules, &settings.event_bus, sender)),
        reports: Some(ports.reports(settings.teams.clone(), settings.calendar.clone())),
        teams: settings.teams.clone(),
        agents: AgentSource::Extension,
        // `DELETE /api/customers/{id}` is the customer-erasure function's ([`erasure_api`]).
        erasure: None,
    })
    .layer(axum::middleware::from_fn(with_caller));
    match console {
        Some(console) => api.merge(console),
        None => api,
    }
}

/// The caller of a request through an HTTP API: with the console's JWT authorizer, the signed-in
/// user (the token's `username`, else `cognito:username`, `email`, `sub`); with IAM
/// authorization, the authorizer's `userArn` (an IAM user or an assumed role's session), else its
/// `callerId`. `None` for a request without that context.
pub fn caller_identity(request: &http::Request<axum::body::Body>) -> Option<String> {
    use lambda_http::RequestExt;
    use lambda_http::request::RequestContext;
    let Some(RequestContext::ApiGatewayV2(context)) = request.request_context_ref() else {
        return None;
    };
    let authorizer = context.authorizer.as_ref()?;
    // The console's calls: a Cognito access token through the JWT authorizer.
    if let Some(jwt) = &authorizer.jwt {
        return ["username", "cognito:username", "email", "sub"]
            .iter()
            .find_map(|claim| jwt.claims.get(*claim).cloned())
            .filter(|id| switchboard_http::api::valid_agent(id));
    }
    let iam = authorizer.iam.as_ref()?;
    iam.user_arn
        .clone()
        .or_else(|| iam.caller_id.clone())
        .filter(|id| switchboard_http::api::valid_agent(id))
}

async fn with_caller(
    mut request: http::Request<axum::body::Body>,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if let Some(caller) = caller_identity(&request) {
        request.extensions_mut().insert(Agent(caller));
    }
    next.run(request).await
}

/// The agent API of the function, from the process environment.
pub async fn agent_api_app() -> Result<axum::Router, StartupError> {
    let settings = ApiSettings::from_source(&ProcessEnv)?;
    let sdk = sdk_config().await;
    let ports = AwsPorts::new(&sdk, &settings.store(), Arc::new(SystemClock));
    let tokens = reply_tokens(&ProcessEnv, Some(&sdk)).await?;
    let sender = Arc::new(Senders::from_source(&ProcessEnv, tokens)?.with_mail(ports.mailer()));
    Ok(agent_api(&ports, &settings, sender))
}

/// The customer erasure on AWS: `DELETE /api/customers/{id}` alone, over the table and the
/// Scheduler group; the caller is the IAM-authenticated one ([`caller_identity`]). A function
/// of its own: it reads every kept delivery (a `Scan`), which the agent API has no grant for,
/// and its code stays out of the agent API's artifact.
///
/// `sites` are the other stores it forgets in (the mail bucket's objects).
pub fn erasure_api(
    ports: &AwsPorts,
    settings: &ErasureSettings,
    sites: Vec<Arc<dyn ErasureSite>>,
) -> axum::Router {
    switchboard_http::erasure_router(
        ports.erasure(&settings.schedules, sites),
        AgentSource::Extension,
    )
    .layer(axum::middleware::from_fn(with_caller))
}

/// The customer erasure of the function, from the process environment; with
/// `SWITCHBOARD_MAIL_BUCKET`, the person's objects in the mail bucket are deleted too.
#[cfg(feature = "mail")]
pub async fn erasure_app() -> Result<axum::Router, StartupError> {
    let settings = ErasureSettings::from_source(&ProcessEnv)?;
    let sdk = sdk_config().await;
    let ports = AwsPorts::new(&sdk, &settings.store, Arc::new(SystemClock));
    let sites: Vec<Arc<dyn ErasureSite>> = match &settings.mail_bucket {
        Some(bucket) => vec![Arc::new(switchboard_aws::mail::MailObjects::from_sdk(
            &sdk,
            bucket.clone(),
        ))],
        None => Vec::new(),
    };
    Ok(erasure_api(&ports, &settings, sites))
}

/// The reminder consumer of the function, from the process environment.
pub async fn reminder_app() -> Result<ReminderHandler, StartupError> {
    let settings = ReminderSettings::from_source(&ProcessEnv)?;
    let sdk = sdk_config().await;
    let ports = AwsPorts::new(&sdk, &settings.store, Arc::new(SystemClock));
    let reminders = ports.reminders(&settings.event_bus);
    Ok(match settings.watch {
        Some((watch, target)) => {
            reminders.watching(ports.watcher(&target, &settings.event_bus, watch))
        }
        None => reminders,
    })
}

/// Logging for a Lambda function: JSON lines when the function's log format is JSON (Lambda's
/// `AWS_LAMBDA_LOG_FORMAT`), at the level Lambda's advanced logging controls set
/// (`AWS_LAMBDA_LOG_LEVEL`, default `INFO`), and the operational counts as CloudWatch
/// Embedded Metric Format lines ([`emf`], namespace `SWITCHBOARD_METRICS_NAMESPACE`, whatever
/// the level). No filter language: a smaller binary.
pub fn init_lambda_tracing() {
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::{LevelFilter, filter_fn};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = match std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .unwrap_or_default()
        .to_ascii_uppercase()
        .as_str()
    {
        "TRACE" => LevelFilter::TRACE,
        "DEBUG" => LevelFilter::DEBUG,
        "WARN" => LevelFilter::WARN,
        "ERROR" | "FATAL" => LevelFilter::ERROR,
        _ => LevelFilter::INFO,
    };
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let logs = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_ansi(false)
        .without_time();
    // Metric events are the EMF layer's alone; the log keeps everything else at `level`.
    let not_metrics = filter_fn(|m| m.target() != switchboard_core::telemetry::TARGET);
    let logs = if json {
        logs.json()
            .with_current_span(false)
            .with_filter(not_metrics)
            .with_filter(level)
            .boxed()
    } else {
        logs.with_filter(not_metrics).with_filter(level).boxed()
    };
    let namespace = std::env::var(emf::NAMESPACE_SETTING)
        .ok()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| emf::DEFAULT_NAMESPACE.to_owned());
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(
            emf::EmfLayer::new(namespace, std::io::stdout()).with_filter(filter_fn(|m| {
                m.target() == switchboard_core::telemetry::TARGET
            })),
        )
        .try_init();
}
