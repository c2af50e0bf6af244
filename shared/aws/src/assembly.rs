//! The AWS backend assembled: the SDK configuration, one bundle of ports ([`AwsPorts`]) and
//! the services built from it. The Lambda functions and `switchboard serve --backend aws`
//! wire through here, and nowhere else builds an AWS client.
//!
//! Each service asks the bundle only for the ports it uses, so a function links only the
//! clients it needs (the agent API has no EventBridge or SQS client): that keeps each Lambda
//! artifact within its size budget.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use std::sync::Arc;

use switchboard_core::cases::Cases;
use switchboard_core::channels::{ChannelModule, Verification};
use switchboard_core::clock::Clock;
use switchboard_core::config::{self, ConfigError, Source};
use switchboard_core::erasure::Erasure;
use switchboard_core::intake::Intake;
use switchboard_core::model::Webhook;
use switchboard_core::ports::{ReplySender, SettleInSteps};
use switchboard_core::prioritize::{Prioritizer, PrioritizerPorts};
use switchboard_core::priority::Scorer;
use switchboard_core::remind::ReminderHandler;
use switchboard_core::replies::{Replies, ReplyPorts};
use switchboard_core::reports::Reports;
use switchboard_core::sla::Calendar;
use switchboard_core::sla::SlaPolicy;
use switchboard_core::watch::{WatchSettings, Watcher};

use crate::forwarder::Forwarder;
use crate::scheduler::ScheduleTarget;
use crate::settings::StoreSettings;
use crate::{DynamoOutbox, DynamoStore, EventBridgePublisher, SchedulerReminders, SqsIntakeQueue};

/// The shared AWS SDK configuration from the standard sources (`AWS_REGION`,
/// `AWS_ENDPOINT_URL`, credentials …).
pub async fn sdk_config() -> SdkConfig {
    sdk_defaults().load().await
}

/// The SDK configuration loader with switchboard's HTTPS client (rustls on ring), to which a
/// caller may add settings (an endpoint, a region) before loading.
///
/// Where the environment holds the region (`AWS_REGION` or `AWS_DEFAULT_REGION`) and the
/// credentials (`AWS_ACCESS_KEY_ID` and its secret) — every Lambda function — the SDK's default
/// chains would settle on them first; the loader is given them directly instead, so that a
/// start does not build the rest of each chain (the web-identity provider's STS client, the
/// instance-metadata clients, the profile providers) only to leave it unused. Anywhere else the
/// default chains are used as they are.
pub fn sdk_defaults() -> aws_config::ConfigLoader {
    use aws_config::environment::{
        EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider,
    };
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(https_client());
    if set("AWS_REGION") || set("AWS_DEFAULT_REGION") {
        loader = loader.region(EnvironmentVariableRegionProvider::new());
    }
    if set("AWS_ACCESS_KEY_ID") && (set("AWS_SECRET_ACCESS_KEY") || set("SECRET_ACCESS_KEY")) {
        loader = loader.credentials_provider(EnvironmentVariableCredentialsProvider::new());
    }
    loader
}

/// The HTTPS client every AWS client uses: rustls on ring, its connector (and the trust
/// store of the system's roots) built at the first request, once per timeout settings, and
/// shared by every client of the process ([`ConnectOnFirstRequest`]).
pub fn https_client() -> SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    SharedHttpClient::new(ConnectOnFirstRequest(
        aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https(),
    ))
}

/// An HTTP client that leaves out its inner client's check at client construction.
///
/// The SDK's hyper client checks its base configuration by building a whole TLS connector
/// and dropping it — the root certificates parsed into a trust store (about 150 of them) —
/// at every `Client::new`, the credential chain's STS client included, and then builds the
/// connector it keeps at the first request. A function making four clients parsed the roots
/// five times, four of them at start; with this wrapper, once, at the first request (which
/// builds, caches and reuses the connector as before). A connector that cannot be built
/// still fails that first request with the reason; nothing here changes what is sent.
#[derive(Debug)]
pub struct ConnectOnFirstRequest(SharedHttpClient);

impl HttpClient for ConnectOnFirstRequest {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

/// The forwarder of the outbox table's stream to the intake queue at `queue_url` (the
/// `intake-forwarder` function: no table of its own).
pub fn forwarder(sdk: &SdkConfig, queue_url: &str) -> Forwarder {
    Forwarder::new(Arc::new(SqsIntakeQueue::new(
        aws_sdk_sqs::Client::new(sdk),
        queue_url,
    )))
}

/// The ports of the AWS backend: the DynamoDB store, built once, and the other adapters on
/// demand from the same SDK configuration.
#[derive(Clone)]
pub struct AwsPorts {
    sdk: SdkConfig,
    store: Arc<DynamoStore>,
    clock: Arc<dyn Clock>,
}

impl AwsPorts {
    /// The bundle over `sdk`, with the store of `store`, timing writes by `clock`.
    pub fn new(sdk: &SdkConfig, store: &StoreSettings, clock: Arc<dyn Clock>) -> Self {
        Self {
            store: Arc::new(DynamoStore::new(
                aws_sdk_dynamodb::Client::new(sdk),
                &store.table,
                store.retention_days,
                clock.clone(),
            )),
            sdk: sdk.clone(),
            clock,
        }
    }

    /// The store: every storage port (messages, records, conversations, customers, the read
    /// side).
    pub fn store(&self) -> Arc<DynamoStore> {
        self.store.clone()
    }

    /// The clock.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// The e-mail reply sender, through SES.
    pub fn mailer(&self) -> Arc<crate::ses::SesMailer> {
        Arc::new(crate::ses::SesMailer::new(
            aws_sdk_sesv2::Client::new(&self.sdk),
            self.clock.clone(),
        ))
    }

    /// The intake queue at `url`.
    pub fn intake_queue(&self, url: &str) -> Arc<SqsIntakeQueue> {
        Arc::new(SqsIntakeQueue::new(
            aws_sdk_sqs::Client::new(&self.sdk),
            url,
        ))
    }

    /// The event bus `bus`.
    pub fn events(&self, bus: &str) -> Arc<EventBridgePublisher> {
        Arc::new(EventBridgePublisher::new(
            aws_sdk_eventbridge::Client::new(&self.sdk),
            bus,
        ))
    }

    /// The reminders of `target`.
    pub fn timers(&self, target: &ScheduleTarget) -> Arc<SchedulerReminders> {
        Arc::new(SchedulerReminders::new(
            aws_sdk_scheduler::Client::new(&self.sdk),
            target.clone(),
            self.clock.clone(),
        ))
    }

    /// The intake service, enqueueing to the queue at `queue_url` itself (a send and a
    /// confirming write after the records': `switchboard serve --backend aws`, which has no
    /// stream to read).
    pub fn intake(&self, queue_url: &str) -> Intake {
        Intake::new(self.store(), self.intake_queue(queue_url), self.clock())
    }

    /// The intake service of the deployed functions: the records' queue entries written into
    /// the outbox table `outbox_table` in the records' own transaction ([`DynamoOutbox`]),
    /// whose stream the [`forwarder`] sends on. No SQS call on the
    /// acknowledgement path.
    pub fn intake_through_outbox(&self, outbox_table: &str) -> Intake {
        let outbox = Arc::new(DynamoOutbox::new(self.store(), outbox_table));
        Intake::with_outbox(self.store(), outbox, self.clock())
    }

    /// The prioritizer: the store, the bus `bus`, the reminders of `target`, scoring by
    /// `scorer`, timing by `policy`, statuses of unseen messages answering when
    /// `statuses_answer`.
    pub fn prioritizer(
        &self,
        bus: &str,
        target: &ScheduleTarget,
        scorer: Arc<Scorer>,
        policy: SlaPolicy,
        statuses_answer: bool,
    ) -> Prioritizer {
        let store = self.store();
        let timers = self.timers(target);
        Prioritizer::new(
            PrioritizerPorts {
                records: store.clone(),
                conversations: store.clone(),
                customers: store.clone(),
                identities: store.clone(),
                history: store.clone(),
                events: self.events(bus),
                timers: timers.clone(),
                // DynamoDB and EventBridge Scheduler share no transaction: the steps in turn.
                settle: Arc::new(SettleInSteps {
                    timers,
                    history: store.clone(),
                    conversations: store,
                }),
            },
            scorer,
            Arc::new(policy),
            self.clock(),
        )
        .statuses_answer(statuses_answer)
    }

    /// The silent-channel watch: watches in the table, checks as schedules of `target`,
    /// events to `bus`.
    pub fn watcher(&self, target: &ScheduleTarget, bus: &str, settings: WatchSettings) -> Watcher {
        Watcher::new(
            self.store(),
            self.timers(target),
            self.events(bus),
            settings,
            self.clock(),
        )
    }

    /// The reminder consumer: the store and the bus `bus`.
    pub fn reminders(&self, bus: &str) -> ReminderHandler {
        ReminderHandler::new(self.store(), self.events(bus), self.clock())
    }

    /// What agents do to conversations (answers, resolutions, assignments): the store, the
    /// reminders of `target` and the bus `bus` (no scoring).
    pub fn cases(&self, target: &ScheduleTarget, bus: &str) -> Cases {
        Cases::new(
            self.store(),
            self.timers(target),
            self.events(bus),
            self.clock(),
        )
    }

    /// Customer erasure: the table's rows and deliveries, the reminders of `target`, and what
    /// `sites` hold (the mail bucket's objects, where the erasure may reach them; without
    /// one, the receipt counts the person's mail objects as left).
    pub fn erasure(
        &self,
        target: &ScheduleTarget,
        sites: Vec<Arc<dyn switchboard_core::erasure::ErasureSite>>,
    ) -> Erasure {
        Erasure::new(self.store(), self.timers(target), sites, self.clock())
    }

    /// Replies sent through `sender`, stored in the table (idempotency keys too), the ended
    /// wait's reminders deleted from `target`, events to `bus`.
    pub fn replies(
        &self,
        target: &ScheduleTarget,
        bus: &str,
        sender: Arc<dyn ReplySender>,
    ) -> Replies {
        let store = self.store();
        Replies::new(
            ReplyPorts {
                conversations: store.clone(),
                records: store.clone(),
                history: store.clone(),
                sender,
                claims: store,
                events: self.events(bus),
            },
            self.cases(target, bus),
            self.clock(),
        )
    }

    /// The figures over the table: the buckets, and the backlog of `teams`' queues; days and
    /// weeks of `calendar`.
    pub fn reports(&self, teams: Vec<String>, calendar: Calendar) -> Reports {
        Reports::new(self.store(), self.store(), teams, calendar, self.clock())
    }
}

/// The token for replies of each webhook that has one
/// ([`reply_credential`](switchboard_core::channels::reply_credential): `access_token`,
/// Telegram's `bot_token`, …): in the Secrets Manager secret named by `SWITCHBOARD_<WEBHOOK>_SECRET_ARN`
/// when that is set (and `sdk` given), otherwise in `SWITCHBOARD_<WEBHOOK>_<SUFFIX>`
/// (`SWITCHBOARD_WHATSAPP_ACCESS_TOKEN`, `SWITCHBOARD_TELEGRAM_BOT_TOKEN`). A webhook without
/// one is absent (its replies answer 503, naming the setting); a secret that cannot be read
/// stops start-up, naming its variable.
pub async fn reply_tokens(
    source: &impl Source,
    sdk: Option<&SdkConfig>,
) -> Result<std::collections::HashMap<Webhook, String>, ConfigError> {
    let mut tokens = std::collections::HashMap::new();
    for webhook in Webhook::ALL {
        let Some(field) = switchboard_core::channels::reply_credential(webhook) else {
            continue;
        };
        let arn_var = config::channel_var(webhook, config::SECRET_ARN_SUFFIX);
        let token = match (source.get(&arn_var), sdk) {
            (Some(arn), Some(sdk)) => {
                let client = aws_sdk_secretsmanager::Client::new(sdk);
                crate::secrets::reply_token(&client, &arn_var, &arn, field.key).await?
            }
            _ => source
                .get(&config::channel_var(webhook, field.env))
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty()),
        };
        if let Some(token) = token {
            tokens.insert(webhook, token);
        }
    }
    Ok(tokens)
}

/// The verification of channel `module`: from the Secrets Manager secret named by
/// `SWITCHBOARD_<WEBHOOK>_SECRET_ARN` when set (production), otherwise from its local
/// variables (`SWITCHBOARD_<WEBHOOK>_APP_SECRETS`, … see [`config::channel_secrets`]).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_webhook_reads_its_own_reply_token_locally() {
        let env = |name: &str| {
            match name {
                "SWITCHBOARD_WHATSAPP_ACCESS_TOKEN" => Some(" EAAG "),
                "SWITCHBOARD_TELEGRAM_BOT_TOKEN" => Some("123:abc"),
                // Telegram's token is its bot token; Standard Webhooks relays, with no token.
                "SWITCHBOARD_TELEGRAM_ACCESS_TOKEN" | "SWITCHBOARD_STANDARD_ACCESS_TOKEN" => {
                    Some("ignored")
                }
                "SWITCHBOARD_FACEBOOK_ACCESS_TOKEN" => Some("  "),
                _ => None,
            }
            .map(str::to_owned)
        };
        let tokens = reply_tokens(&env, None).await.unwrap();
        assert_eq!(
            tokens.get(&Webhook::Whatsapp).map(String::as_str),
            Some("EAAG")
        );
        assert_eq!(
            tokens.get(&Webhook::Telegram).map(String::as_str),
            Some("123:abc")
        );
        assert_eq!(tokens.len(), 2, "{:?}", tokens.keys().collect::<Vec<_>>());
    }
}
