//! Wiring from the environment: the same variables for the Lambda functions and for
//! `switchboard serve --backend aws`. Everything is read and checked once, at start; a missing
//! setting is an error that names it, before any AWS client is built.

use aws_config::{BehaviorVersion, SdkConfig};
use std::collections::HashMap;
use std::sync::Arc;
use tracing_subscriber::filter::LevelFilter;

use switchboard_core::clock::{Clock, SystemClock};
use switchboard_core::config::{self, ConfigError, Source};
use switchboard_core::http::{WebhookState, webhook_router};
use switchboard_core::intake::Intake;
use switchboard_core::model::Webhook;
use switchboard_core::verify::MetaVerifier;

use crate::{DynamoStore, SqsIntakeQueue};

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

/// The verifier of a Meta channel: from the secret named by `SWITCHBOARD_<CHANNEL>_SECRET_ARN`
/// when set (production), otherwise from `SWITCHBOARD_<CHANNEL>_APP_SECRETS` and
/// `SWITCHBOARD_<CHANNEL>_VERIFY_TOKEN` (local use).
pub async fn channel_verifier(
    source: &impl Source,
    sdk: Option<&SdkConfig>,
    channel: Webhook,
) -> Result<MetaVerifier, ConfigError> {
    let arn_var = config::channel_var(channel, "SECRET_ARN");
    match (source.get(&arn_var), sdk) {
        (Some(arn), Some(sdk)) => {
            let client = aws_sdk_secretsmanager::Client::new(sdk);
            crate::secrets::meta_verifier(&client, &arn_var, &arn).await
        }
        _ if source
            .get(&config::channel_var(channel, "APP_SECRETS"))
            .is_none() =>
        {
            Err(ConfigError::Missing {
                name: arn_var,
                hint: format!(
                    "the ARN of the Secrets Manager secret with the {channel} app secrets and \
                     verify token (for local use: {} and {})",
                    config::channel_var(channel, "APP_SECRETS"),
                    config::channel_var(channel, "VERIFY_TOKEN"),
                ),
            })
        }
        _ => config::meta_verifier(source, channel),
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
    for &channel in channels {
        verifiers.insert(
            channel,
            channel_verifier(&source, Some(&sdk), channel).await?,
        );
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let backend = AwsBackend::new(&sdk, &settings, clock.clone());
    let intake = Intake::new(backend.store, backend.queue, clock);
    Ok(webhook_router(WebhookState::new(intake, verifiers)))
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
