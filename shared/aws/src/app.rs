//! Wiring from the environment: the same variables for the Lambda functions and for
//! `switchboard serve --backend aws`. Everything is read and checked once, at start; a missing
//! setting is an error that names it, before any AWS client is built.

use aws_config::{BehaviorVersion, SdkConfig};
use std::collections::HashMap;
use std::sync::Arc;
use tracing_subscriber::filter::LevelFilter;

use switchboard_core::answer::AnswerRecorder;
use switchboard_core::channels::{self, ChannelModule, Verification};
use switchboard_core::clock::{Clock, SystemClock};
use switchboard_core::config::{self, ConfigError, Source};
use switchboard_core::http::{ApiPorts, WebhookState, api_router, webhook_router};
use switchboard_core::intake::Intake;
use switchboard_core::model::Webhook;
use switchboard_core::prioritize::{BatchItem, Prioritizer};
use switchboard_core::priority::{PriorityConfig, Scorer};
use switchboard_core::remind::ReminderHandler;
use switchboard_core::sla::SlaPolicy;

use crate::scheduler::ScheduleTarget;
use crate::{DynamoStore, EventBridgePublisher, SchedulerReminders, SqsIntakeQueue};

/// The AWS settings: `SWITCHBOARD_TABLE`, `SWITCHBOARD_INTAKE_QUEUE_URL`,
/// `SWITCHBOARD_RETENTION_DAYS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    /// Table name.
    pub table: String,
    /// Intake queue URL.
    pub intake_queue_url: String,
    /// Days data is kept.
    pub retention_days: u32,
}

impl AwsSettings {
    /// Reads the settings; the error names the first missing or bad one.
    pub fn from_source(source: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            table: source.require(
                config::TABLE,
                "the DynamoDB table name (stack output TableName, or `switchboard provision`)",
            )?,
            intake_queue_url: source.require(
                config::INTAKE_QUEUE_URL,
                "the intake queue URL (stack output IntakeQueueUrl, or `switchboard provision`)",
            )?,
            retention_days: config::retention_days(source)?,
        })
    }
}

/// The shared AWS SDK configuration from the standard sources (`AWS_REGION`,
/// `AWS_ENDPOINT_URL`, credentials …).
pub async fn sdk_config() -> SdkConfig {
    sdk_defaults().load().await
}

/// The SDK configuration loader with switchboard's HTTPS client (rustls on ring), to which a
/// caller may add settings (an endpoint, a region) before loading.
pub fn sdk_defaults() -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest()).http_client(https_client())
}

/// The HTTPS client every AWS client uses.
pub fn https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The store and the queue on AWS.
#[derive(Clone)]
pub struct AwsBackend {
    /// The DynamoDB store (also the reader of the read API).
    pub store: Arc<DynamoStore>,
    /// The SQS intake queue.
    pub queue: Arc<SqsIntakeQueue>,
}

impl AwsBackend {
    /// Builds the clients from `sdk` for `settings`.
    pub fn new(sdk: &SdkConfig, settings: &AwsSettings, clock: Arc<dyn Clock>) -> Self {
        Self {
            store: Arc::new(DynamoStore::new(
                aws_sdk_dynamodb::Client::new(sdk),
                &settings.table,
                settings.retention_days,
                clock,
            )),
            queue: Arc::new(SqsIntakeQueue::new(
                aws_sdk_sqs::Client::new(sdk),
                &settings.intake_queue_url,
            )),
        }
    }
}

/// The verification of channel `module`: from the Secrets Manager secret named by
/// `SWITCHBOARD_<WEBHOOK>_SECRET_ARN` when set (production), otherwise from its local
/// variables (`SWITCHBOARD_<WEBHOOK>_APP_SECRETS`, … see
/// [`config::channel_secrets`]).
pub async fn channel_verification(
    source: &impl Source,
    sdk: Option<&SdkConfig>,
    module: &dyn ChannelModule,
) -> Result<Verification, ConfigError> {
    let webhook = module.webhook();
    let arn_var = config::channel_var(webhook, config::SECRET_ARN_SUFFIX);
    let local: Vec<String> = module
        .secrets()
        .iter()
        .map(|f| config::channel_var(webhook, f.env))
        .collect();
    match (source.get(&arn_var), sdk) {
        (Some(arn), Some(sdk)) => {
            let client = aws_sdk_secretsmanager::Client::new(sdk);
            let secrets = crate::secrets::channel_secrets(&client, module, &arn_var, &arn).await?;
            module.verification(&secrets)
        }
        _ if local.first().is_none_or(|name| source.get(name).is_none()) => {
            Err(ConfigError::Missing {
                name: arn_var,
                hint: format!(
                    "the ARN of the Secrets Manager secret with the {webhook} secrets \
                     (for local use: {})",
                    local.join(" and "),
                ),
            })
        }
        _ => config::channel_verification(source, module),
    }
}

/// Why a function could not start.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct StartupError(#[from] ConfigError);

/// The webhook application of a Lambda function serving `channels`, from the process
/// environment: the router `lambda_http::run` serves.
pub async fn webhook_app(channels: &[Webhook]) -> Result<axum::Router, StartupError> {
    let source = config::ProcessEnv;
    let settings = AwsSettings::from_source(&source)?;
    let sdk = sdk_config().await;
    let mut verifiers = HashMap::new();
    for &webhook in channels {
        let module = channels::module(webhook);
        verifiers.insert(
            webhook,
            channel_verification(&source, Some(&sdk), module).await?,
        );
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let backend = AwsBackend::new(&sdk, &settings, clock.clone());
    let intake = Intake::new(backend.store, backend.queue, clock.clone());
    Ok(webhook_router(WebhookState::new(intake, verifiers, clock)))
}

/// The prioritizer's settings: `SWITCHBOARD_TABLE`, `SWITCHBOARD_EVENT_BUS`,
/// `SWITCHBOARD_SCHEDULE_GROUP`, `SWITCHBOARD_REMINDER_QUEUE_ARN`,
/// `SWITCHBOARD_SCHEDULER_ROLE_ARN`, `SWITCHBOARD_RETENTION_DAYS`, `SWITCHBOARD_PRIORITY`,
/// `SWITCHBOARD_POLICY`.
#[derive(Debug, Clone)]
pub struct PrioritizerSettings {
    /// Table name.
    pub table: String,
    /// The EventBridge bus of the domain events.
    pub event_bus: String,
    /// Where the SLA reminders are scheduled, and what they send to.
    pub schedules: ScheduleTarget,
    /// Days data is kept.
    pub retention_days: u32,
    /// Weights, word lists, topics and teams.
    pub priority: PriorityConfig,
    /// Response-time targets and calendars.
    pub policy: SlaPolicy,
}

fn require_table(source: &impl Source) -> Result<String, ConfigError> {
    source.require(
        config::TABLE,
        "the DynamoDB table name (stack output TableName, or `switchboard provision`)",
    )
}

fn require_bus(source: &impl Source) -> Result<String, ConfigError> {
    source.require(
        config::EVENT_BUS,
        "the EventBridge bus name (stack output EventBusName, or `switchboard provision`)",
    )
}

fn schedule_target(source: &impl Source) -> Result<ScheduleTarget, ConfigError> {
    Ok(ScheduleTarget {
        group: source.require(
            config::SCHEDULE_GROUP,
            "the EventBridge Scheduler group of the SLA reminders (stack output \
             ScheduleGroupName, or `switchboard provision`)",
        )?,
        queue_arn: source.require(
            config::REMINDER_QUEUE_ARN,
            "the ARN of the reminder queue the schedules send to (stack output \
             ReminderQueueArn, or `switchboard provision`)",
        )?,
        role_arn: source.require(
            config::SCHEDULER_ROLE_ARN,
            "the ARN of the role EventBridge Scheduler assumes to send reminders \
             (stack output SchedulerRoleArn, or `switchboard provision`)",
        )?,
    })
}

impl PrioritizerSettings {
    /// Reads the settings; the error names the first missing or bad one.
    pub fn from_source(source: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            table: require_table(source)?,
            event_bus: require_bus(source)?,
            schedules: schedule_target(source)?,
            retention_days: config::retention_days(source)?,
            priority: config::priority_config(source)?,
            policy: config::sla_policy(source)?,
        })
    }
}

/// The prioritizer on AWS: DynamoDB, the EventBridge bus and the Scheduler group of
/// `settings`.
pub fn prioritizer(
    sdk: &SdkConfig,
    settings: &PrioritizerSettings,
    clock: Arc<dyn Clock>,
) -> Prioritizer {
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        &settings.table,
        settings.retention_days,
        clock.clone(),
    ));
    let events = Arc::new(EventBridgePublisher::new(
        aws_sdk_eventbridge::Client::new(sdk),
        &settings.event_bus,
    ));
    let timers = Arc::new(SchedulerReminders::new(
        aws_sdk_scheduler::Client::new(sdk),
        settings.schedules.clone(),
        clock.clone(),
    ));
    Prioritizer::new(
        store,
        events,
        timers,
        Arc::new(Scorer::new(settings.priority.clone())),
        Arc::new(settings.policy.clone()),
        clock,
    )
}

/// The prioritizer of the Lambda function, from the process environment.
pub async fn prioritizer_app() -> Result<Prioritizer, StartupError> {
    let settings = PrioritizerSettings::from_source(&config::ProcessEnv)?;
    let sdk = sdk_config().await;
    Ok(prioritizer(&sdk, &settings, Arc::new(SystemClock)))
}

/// The agent API's settings: `SWITCHBOARD_TABLE`, `SWITCHBOARD_SCHEDULE_GROUP`,
/// `SWITCHBOARD_REMINDER_QUEUE_ARN`, `SWITCHBOARD_SCHEDULER_ROLE_ARN` (the prioritizer's
/// reminder settings: an answer deletes the reminders it made), `SWITCHBOARD_RETENTION_DAYS`,
/// and `SWITCHBOARD_PRIORITY` for the teams whose queues `GET /api/queue` merges.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Table name.
    pub table: String,
    /// Where the SLA reminders are (an answer deletes its wait's).
    pub schedules: ScheduleTarget,
    /// Days data is kept.
    pub retention_days: u32,
    /// The teams of the priority configuration.
    pub teams: Vec<String>,
}

impl ApiSettings {
    /// Reads the settings; the error names the first missing or bad one.
    pub fn from_source(source: &impl Source) -> Result<Self, ConfigError> {
        Ok(Self {
            table: require_table(source)?,
            schedules: schedule_target(source)?,
            retention_days: config::retention_days(source)?,
            teams: config::priority_config(source)?
                .teams
                .into_values()
                .collect(),
        })
    }
}

/// The agent API on AWS: the `/api` routes (queue, conversations, timelines, customers,
/// links, tiers, quarantine, deliveries, and the agent tool's answer) over DynamoDB. An answer
/// ends the wait and deletes its reminders from the Scheduler group ([`AnswerRecorder`]);
/// nothing here scores, schedules, publishes or enqueues. `GET /api/events` answers 404: on
/// AWS the events are on the EventBridge bus.
pub fn agent_api(sdk: &SdkConfig, settings: &ApiSettings, clock: Arc<dyn Clock>) -> axum::Router {
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        &settings.table,
        settings.retention_days,
        clock.clone(),
    ));
    let timers = Arc::new(SchedulerReminders::new(
        aws_sdk_scheduler::Client::new(sdk),
        settings.schedules.clone(),
        clock,
    ));
    api_router(ApiPorts {
        reader: store.clone(),
        customers: store.clone(),
        events: None,
        answers: Some(Arc::new(AnswerRecorder::new(store, timers))),
        teams: settings.teams.clone(),
    })
}

/// The agent API of the Lambda function, from the process environment.
pub async fn agent_api_app() -> Result<axum::Router, StartupError> {
    let settings = ApiSettings::from_source(&config::ProcessEnv)?;
    let sdk = sdk_config().await;
    Ok(agent_api(&sdk, &settings, Arc::new(SystemClock)))
}

/// The reminder consumer on AWS: DynamoDB and the EventBridge bus (`SWITCHBOARD_TABLE`,
/// `SWITCHBOARD_EVENT_BUS`, `SWITCHBOARD_RETENTION_DAYS`).
pub fn reminder_handler(
    sdk: &SdkConfig,
    table: &str,
    event_bus: &str,
    retention_days: u32,
    clock: Arc<dyn Clock>,
) -> ReminderHandler {
    let store = Arc::new(DynamoStore::new(
        aws_sdk_dynamodb::Client::new(sdk),
        table,
        retention_days,
        clock.clone(),
    ));
    let events = Arc::new(EventBridgePublisher::new(
        aws_sdk_eventbridge::Client::new(sdk),
        event_bus,
    ));
    ReminderHandler::new(store, events, clock)
}

/// The reminder consumer of the Lambda function, from the process environment.
pub async fn reminder_app() -> Result<ReminderHandler, StartupError> {
    let source = config::ProcessEnv;
    let table = require_table(&source)?;
    let bus = require_bus(&source)?;
    let retention = config::retention_days(&source)?;
    let sdk = sdk_config().await;
    Ok(reminder_handler(
        &sdk,
        &table,
        &bus,
        retention,
        Arc::new(SystemClock),
    ))
}

/// The batch of an SQS event: each message's id and body.
fn batch_items(event: aws_lambda_events::event::sqs::SqsEvent) -> Vec<BatchItem> {
    event
        .records
        .into_iter()
        .enumerate()
        .map(|(i, m)| BatchItem {
            // A message without an id cannot be named in the response; such an event is not
            // one SQS sends.
            id: m.message_id.unwrap_or_else(|| format!("#{i}")),
            body: m.body.unwrap_or_default(),
        })
        .collect()
}

/// The response naming `failed` for retry (`ReportBatchItemFailures`).
fn batch_response(failed: Vec<String>) -> aws_lambda_events::event::sqs::SqsBatchResponse {
    use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};
    let mut response = SqsBatchResponse::default();
    for id in failed {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    response
}

/// Handles an SQS batch of the intake queue (its event source mapping, with
/// `ReportBatchItemFailures`): the response names the messages to retry, and only those are
/// received again; the others are deleted. A message that keeps failing goes to the DLQ after
/// the queue's `maxReceiveCount`.
pub async fn handle_sqs(
    prioritizer: &Prioritizer,
    event: aws_lambda_events::event::sqs::SqsEvent,
) -> aws_lambda_events::event::sqs::SqsBatchResponse {
    let items = batch_items(event);
    let failed = prioritizer.handle_batch(&items).await;
    tracing::info!(
        messages = items.len(),
        failed = failed.len(),
        "batch prioritized"
    );
    batch_response(failed)
}

/// Handles an SQS batch of the reminder queue, as [`handle_sqs`] does for the intake queue.
pub async fn handle_reminders(
    reminders: &ReminderHandler,
    event: aws_lambda_events::event::sqs::SqsEvent,
) -> aws_lambda_events::event::sqs::SqsBatchResponse {
    let items = batch_items(event);
    let failed = reminders.handle_batch(&items).await;
    tracing::info!(
        messages = items.len(),
        failed = failed.len(),
        "reminders handled"
    );
    batch_response(failed)
}

/// Receives one batch from the queue at `queue_url` (waiting up to `wait` for one) and hands
/// it to `handle` as Lambda's event source mapping does: an SQS event made of the messages,
/// then every message not reported failed is deleted. For `switchboard serve --backend aws`
/// and tests; deployed, the event source mappings in `template.yaml` do this. `visibility`
/// overrides the queue's visibility timeout for the messages received (how soon a failed one
/// is received again). Answers how many messages were received.
pub async fn poll_queue<F, Fut>(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    wait: std::time::Duration,
    visibility: Option<std::time::Duration>,
    handle: F,
) -> Result<usize, switchboard_core::ports::BackendError>
where
    F: FnOnce(aws_lambda_events::event::sqs::SqsEvent) -> Fut,
    Fut: std::future::Future<Output = aws_lambda_events::event::sqs::SqsBatchResponse>,
{
    use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
    use switchboard_core::ports::BackendError;
    const OP: &str = "receive";
    let out = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(i32::try_from(wait.as_secs()).unwrap_or(20).min(20))
        .set_visibility_timeout(visibility.map(|v| i32::try_from(v.as_secs()).unwrap_or(i32::MAX)))
        .send()
        .await
        .map_err(|e| BackendError::unavailable(OP, e))?;
    let messages = out.messages.unwrap_or_default();
    if messages.is_empty() {
        return Ok(0);
    }
    let mut event = SqsEvent::default();
    for m in &messages {
        let mut message = SqsMessage::default();
        message.message_id = m.message_id.clone();
        message.receipt_handle = m.receipt_handle.clone();
        message.body = m.body.clone();
        event.records.push(message);
    }
    let response = handle(event).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    for m in &messages {
        if failed.contains(&m.message_id().unwrap_or_default()) {
            continue;
        }
        if let Some(receipt) = m.receipt_handle() {
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(receipt)
                .send()
                .await
                .map_err(|e| BackendError::unavailable("delete", e))?;
        }
    }
    Ok(messages.len())
}

/// [`poll_queue`] on the intake queue with the prioritizer's handler.
pub async fn poll_intake_queue(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    prioritizer: &Prioritizer,
    wait: std::time::Duration,
    visibility: Option<std::time::Duration>,
) -> Result<usize, switchboard_core::ports::BackendError> {
    poll_queue(sqs, queue_url, wait, visibility, |event| {
        handle_sqs(prioritizer, event)
    })
    .await
}

/// Logging for a Lambda function: JSON lines when the function's log format is JSON (Lambda's
/// `AWS_LAMBDA_LOG_FORMAT`), at the level Lambda's advanced logging controls set
/// (`AWS_LAMBDA_LOG_LEVEL`, default `INFO`). No filter language: a smaller binary.
pub fn init_lambda_tracing() {
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
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false)
        .with_ansi(false)
        .without_time();
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let _ = if json {
        builder.json().with_current_span(false).try_init()
    } else {
        builder.try_init()
    };
}
