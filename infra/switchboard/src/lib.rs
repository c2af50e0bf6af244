//! The `switchboard` command: the local face of the whole system.
//!
//! * `switchboard serve` serves the same routers as the Lambda functions (webhooks) plus the
//!   read API, on the embedded backend (one SQLite file in `--data`) or on AWS, and runs the
//!   prioritizer on the intake queue as the Lambda function does (fed by the embedded queue,
//!   or by polling SQS).
//! * `switchboard provision` creates the table, queues and event bus on the configured AWS
//!   endpoint (an emulator, or a development account) from the definitions `template.yaml`
//!   also uses.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use switchboard_aws::app::{
    AwsBackend, AwsSettings, PrioritizerSettings, channel_verification, handle_reminders,
    poll_intake_queue, poll_queue, prioritizer, reminder_handler, sdk_config,
};
use switchboard_aws::resources::{
    ResourceNames, provision, provision_event_bus, provision_reminders,
};
use switchboard_core::channels;
use switchboard_core::clock::{Clock, SystemClock};
use switchboard_core::config::{self, ConfigError, ProcessEnv, Source};
use switchboard_core::http::{ApiPorts, WebhookState, api_router, webhook_router};
use switchboard_core::intake::Intake;
use switchboard_core::ports::{
    Answers, ConversationReader, CustomerDirectory, EventLog, IntakeQueue, MessageStore,
};
use switchboard_core::prioritize::Prioritizer;
use switchboard_core::priority::{PriorityConfig, Scorer};
use switchboard_core::remind::ReminderHandler;
use switchboard_core::sla::SlaPolicy;
use switchboard_embedded::consumer::{ConsumerSettings, consume, fire_timers};
use switchboard_embedded::{EventFile, SqliteStore};

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Social customer service intake: webhooks in, conversations out"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the webhooks and the read API in one process.
    Serve(ServeArgs),
    /// Create the table, queues and event bus on the configured AWS endpoint (e.g. an
    /// emulator).
    Provision(ProvisionArgs),
}

/// Where `serve` keeps things.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// One SQLite file in the data directory.
    Embedded,
    /// DynamoDB and SQS, configured as the Lambda functions are.
    Aws,
}

/// `switchboard serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000", env = "SWITCHBOARD_ADDR")]
    pub addr: SocketAddr,
    /// Directory of the embedded store (created if missing).
    #[arg(long, default_value = "./.switchboard", env = "SWITCHBOARD_DATA")]
    pub data: PathBuf,
    /// Storage backend.
    #[arg(long, value_enum, default_value_t = Backend::Embedded, env = "SWITCHBOARD_BACKEND")]
    pub backend: Backend,
    /// The priority configuration (weights, word lists, topics, teams); default: the shipped
    /// `config/priority.toml`.
    #[arg(long, value_name = "FILE", env = "SWITCHBOARD_PRIORITY")]
    pub priority: Option<PathBuf>,
    /// The SLA policy (targets, warnings, calendars, the messaging window); default: the
    /// shipped `config/sla.toml`.
    #[arg(long, value_name = "FILE", env = "SWITCHBOARD_POLICY")]
    pub policy: Option<PathBuf>,
}

/// `switchboard provision`.
#[derive(Debug, Clone, Args)]
pub struct ProvisionArgs {
    /// Prefix of the resource names: `<prefix>-table`, `<prefix>-intake.fifo`, …
    #[arg(long, default_value = "switchboard")]
    pub prefix: String,
}

/// Why the command failed. Each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A setting is missing or wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The embedded store could not be opened.
    #[error(transparent)]
    Embedded(#[from] switchboard_embedded::EmbeddedError),
    /// Provisioning failed.
    #[error("{0}: {cause}", cause = source_chain(.0))]
    Provision(#[from] switchboard_aws::resources::ProvisionError),
    /// The address could not be bound, or the server failed.
    #[error("cannot serve on {addr}: {source}")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// The failure.
        source: std::io::Error,
    },
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut source = e.source();
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    parts.join(": ")
}

/// Logs to stderr; `RUST_LOG` filters (default `info`), `SWITCHBOARD_LOG_FORMAT=json` for JSON.
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if ProcessEnv.get("SWITCHBOARD_LOG_FORMAT").as_deref() == Some("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// What to say when `serve` listens beyond this machine: its `/api` routes (conversations,
/// message text, customers) have no authentication of their own, unlike the deployed agent
/// API behind IAM. `None` on a loopback address.
pub fn exposure_warning(addr: SocketAddr) -> Option<&'static str> {
    (!addr.ip().is_loopback()).then_some(
        "listening beyond loopback: the /api routes have no authentication of their own; \
         put an authenticating proxy in front, or listen on 127.0.0.1",
    )
}

/// Runs a command to completion.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve(args) => {
            let server = start(&args, &ProcessEnv).await?;
            eprintln!(
                "switchboard serving on http://{} ({} backend{})",
                server.addr,
                match args.backend {
                    Backend::Embedded => "embedded",
                    Backend::Aws => "aws",
                },
                match args.backend {
                    Backend::Embedded => format!(", data in {}", args.data.display()),
                    Backend::Aws => String::new(),
                }
            );
            if let Some(warning) = exposure_warning(server.addr) {
                tracing::warn!(addr = %server.addr, "{warning}");
            }
            tokio::signal::ctrl_c().await.ok();
            server.shutdown().await
        }
        Command::Provision(args) => {
            let sdk = sdk_config().await;
            let names = ResourceNames::with_prefix(&args.prefix);
            let out = provision(
                &aws_sdk_dynamodb::Client::new(&sdk),
                &aws_sdk_sqs::Client::new(&sdk),
                &names,
            )
            .await?;
            let bus = provision_event_bus(&aws_sdk_eventbridge::Client::new(&sdk), &names).await?;
            let reminders = provision_reminders(
                &aws_sdk_sqs::Client::new(&sdk),
                &aws_sdk_scheduler::Client::new(&sdk),
                &names,
            )
            .await?;
            println!("{}={}", config::TABLE, out.table);
            println!("{}={}", config::INTAKE_QUEUE_URL, out.intake_queue_url);
            println!("{}={}", config::EVENT_BUS, bus);
            println!("{}={}", config::SCHEDULE_GROUP, reminders.group);
            println!("{}={}", config::REMINDER_QUEUE_ARN, reminders.queue_arn);
            println!("{}={}", config::REMINDER_QUEUE_URL, reminders.queue_url);
            println!("{}={}", config::SCHEDULER_ROLE_ARN, reminders.role_arn);
            println!(
                "# the scheduler role is not created here: on a real account, deploy the stack \
                 (it creates it), or create a role trusted by scheduler.amazonaws.com with \
                 sqs:SendMessage on the reminder queue"
            );
            println!("# reminder dead-letter queue: {}", reminders.dlq_url);
            println!("# dead-letter queue: {}", out.intake_dlq_url);
            Ok(())
        }
    }
}

/// The store, reader and queue of one backend.
struct Ports {
    store: Arc<dyn MessageStore>,
    reader: Arc<dyn ConversationReader>,
    customers: Arc<dyn CustomerDirectory>,
    queue: Arc<dyn IntakeQueue>,
    events: Option<Arc<dyn EventLog>>,
    answers: Arc<dyn Answers>,
}

/// The application `serve` runs: the HTTP routes and the prioritizer consuming the queue.
pub struct App {
    /// Webhooks and read API.
    pub router: axum::Router,
    /// The consumer of the intake queue (runs until aborted).
    pub consumer: AppConsumer,
}

/// The SLA policy of `serve`: `--policy` (or `SWITCHBOARD_POLICY`), else the shipped default.
fn sla_policy(args: &ServeArgs) -> Result<SlaPolicy, ConfigError> {
    match &args.policy {
        Some(path) => config::sla_policy_file("--policy (SWITCHBOARD_POLICY)", path),
        None => Ok(SlaPolicy::default_policy()),
    }
}

/// The priority configuration of `serve`: `--priority` (or `SWITCHBOARD_PRIORITY`), else the
/// shipped default.
fn priority_config(args: &ServeArgs) -> Result<PriorityConfig, ConfigError> {
    match &args.priority {
        Some(path) => config::priority_config_file("--priority (SWITCHBOARD_PRIORITY)", path),
        None => Ok(PriorityConfig::default_config()),
    }
}

/// Builds the whole application (webhooks, read API, prioritizer) from `args` and settings in
/// `source`.
pub async fn app(args: &ServeArgs, source: &impl Source) -> Result<App, CliError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let retention = config::retention_days(source)?;
    let scorer = Arc::new(Scorer::new(priority_config(args)?));
    let teams: Vec<String> = scorer.config().teams.values().cloned().collect();
    let policy = Arc::new(sla_policy(args)?);
    let (ports, sdk, consumer) = match args.backend {
        Backend::Embedded => {
            let store = Arc::new(SqliteStore::open(&args.data, retention, clock.clone())?);
            let events = Arc::new(EventFile::in_folder(&args.data));
            let prioritizer = Prioritizer::new(
                store.clone(),
                events.clone(),
                store.clone(),
                scorer,
                policy,
                clock.clone(),
            );
            let answers: Arc<dyn Answers> = Arc::new(prioritizer.clone());
            let reminders = ReminderHandler::new(store.clone(), events.clone(), clock.clone());
            let consumer: AppConsumer = Box::pin({
                let (store, clock) = (store.clone(), clock.clone());
                async move {
                    tokio::join!(
                        consume(store.clone(), prioritizer, ConsumerSettings::default()),
                        fire_timers(store, reminders, clock, ConsumerSettings::default()),
                    );
                }
            });
            let ports = Ports {
                store: store.clone(),
                reader: store.clone(),
                customers: store.clone(),
                queue: store,
                events: Some(events),
                answers,
            };
            (ports, None, consumer)
        }
        Backend::Aws => {
            let settings = AwsSettings::from_source(source)?;
            let mut timed = PrioritizerSettings::from_source(source)?;
            timed.priority = scorer.config().clone();
            timed.policy = (*policy).clone();
            let reminder_url = source.require(
                config::REMINDER_QUEUE_URL,
                "the reminder queue URL (stack output ReminderQueueUrl, or `switchboard provision`)",
            )?;
            let sdk = sdk_config().await;
            let backend = AwsBackend::new(&sdk, &settings, clock.clone());
            let prioritizer = prioritizer(&sdk, &timed, clock.clone());
            let answers: Arc<dyn Answers> = Arc::new(prioritizer.clone());
            let reminders = reminder_handler(
                &sdk,
                &timed.table,
                &timed.event_bus,
                timed.retention_days,
                clock.clone(),
            );
            let sqs = aws_sdk_sqs::Client::new(&sdk);
            let intake_url = settings.intake_queue_url.clone();
            let consumer: AppConsumer = Box::pin(async move {
                tokio::join!(
                    poll_forever("prioritizer", || poll_intake_queue(
                        &sqs,
                        &intake_url,
                        &prioritizer,
                        Duration::from_secs(1),
                        Some(Duration::from_secs(30)),
                    )),
                    poll_forever("sla-reminder", || poll_queue(
                        &sqs,
                        &reminder_url,
                        Duration::from_secs(1),
                        Some(Duration::from_secs(30)),
                        |event| handle_reminders(&reminders, event),
                    )),
                );
            });
            let ports = Ports {
                store: backend.store.clone(),
                reader: backend.store.clone(),
                customers: backend.store,
                queue: backend.queue,
                events: None,
                answers,
            };
            (ports, Some(sdk), consumer)
        }
    };
    // Every webhook of the registry whose settings are present is served; with none, start-up
    // names the first one's.
    let mut verifiers = HashMap::new();
    for module in channels::REGISTRY.iter().copied() {
        if config::channel_configured(source, module) {
            verifiers.insert(
                module.webhook(),
                channel_verification(source, sdk.as_ref(), module).await?,
            );
        }
    }
    if verifiers.is_empty() {
        channel_verification(source, sdk.as_ref(), channels::REGISTRY[0]).await?;
    }
    tracing::info!(
        webhooks = ?verifiers.keys().map(|w| w.as_str()).collect::<Vec<_>>(),
        "webhooks served"
    );
    let intake = Intake::new(ports.store, ports.queue, clock.clone());
    let router =
        webhook_router(WebhookState::new(intake, verifiers, clock)).merge(api_router(ApiPorts {
            reader: ports.reader,
            customers: ports.customers,
            events: ports.events,
            answers: Some(ports.answers),
            teams,
        }));
    Ok(App { router, consumer })
}

/// Polls with `poll` until aborted, pausing when a poll found nothing or failed.
async fn poll_forever<F, Fut>(name: &'static str, poll: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<usize, switchboard_core::ports::BackendError>>,
{
    loop {
        match poll().await {
            Ok(0) => tokio::time::sleep(Duration::from_millis(100)).await,
            Ok(_) => {}
            Err(e) => {
                tracing::error!(consumer = name, error = %e, "could not read the queue");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// A background task of `serve`.
pub type AppConsumer = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// A running server.
pub struct Server {
    /// The address it listens on (the real port when asked for port 0).
    pub addr: SocketAddr,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    consumer: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Stops accepting, finishes the requests under way, and returns.
    pub async fn shutdown(self) -> Result<(), CliError> {
        let _ = self.shutdown.send(());
        // Stops between batches or mid-batch: an entry not acknowledged is received again at
        // the next start, and handling it again is a no-op.
        self.consumer.abort();
        let addr = self.addr;
        match self.task.await {
            Ok(result) => result.map_err(|source| CliError::Io { addr, source }),
            Err(e) => Err(CliError::Io {
                addr,
                source: std::io::Error::other(e),
            }),
        }
    }
}

/// Builds the application and serves it on `args.addr` in the background.
pub async fn start(args: &ServeArgs, source: &impl Source) -> Result<Server, CliError> {
    let App {
        router: app,
        consumer,
    } = app(args, source).await?;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .map_err(|source| CliError::Io {
            addr: args.addr,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| CliError::Io {
        addr: args.addr,
        source,
    })?;
    let (shutdown, signal) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = signal.await;
            })
            .await
    });
    let consumer = tokio::spawn(consumer);
    Ok(Server {
        addr,
        shutdown,
        task,
        consumer,
    })
}

#[cfg(test)]
mod tests {
    use super::exposure_warning;

    #[test]
    fn serving_beyond_loopback_is_warned_about() {
        assert_eq!(exposure_warning("127.0.0.1:3000".parse().unwrap()), None);
        assert_eq!(exposure_warning("[::1]:3000".parse().unwrap()), None);
        for addr in ["0.0.0.0:3000", "192.168.1.20:3000", "[::]:3000"] {
            let warning = exposure_warning(addr.parse().unwrap()).expect(addr);
            assert!(warning.contains("no authentication"), "{warning}");
        }
    }
}
