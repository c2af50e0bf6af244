//! The `switchboard` command: the local face of the whole system.
//!
//! * `switchboard serve` serves the same routers as the Lambda functions (webhooks) plus the
//!   read API, on the embedded backend (one SQLite file in `--data`) or on AWS, and runs the
//!   prioritizer on the intake queue as the Lambda function does (fed by the embedded queue,
//!   or by polling SQS).
//! * `switchboard provision` creates the table, queues and event bus on the configured AWS
//!   endpoint (an emulator, or a development account) from the definitions `template.yaml`
//!   also uses.
//! * `switchboard demo` posts a signed sample day to a running `serve` ([`demo`]).
//!
//! `serve` also serves the web console at `/`; with `SWITCHBOARD_API_TOKEN` every `/api` route
//! needs it. With no webhook configured on the embedded backend it starts on development
//! secrets it keeps in the data folder ([`first_run`]).

pub mod demo;
pub mod first_run;
pub mod import;
pub mod listen;
pub mod operate;
pub mod train;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use switchboard_aws::assembly::{AwsPorts, channel_verification, reply_tokens, sdk_config};
use switchboard_aws::resources::{
    ResourceNames, provision, provision_event_bus, provision_reminders,
};
use switchboard_aws::settings::{self, AwsSettings, PrioritizerSettings};
use switchboard_aws::sqs_events::poll_queue;
use switchboard_core::channels;
use switchboard_core::clock::{Clock, SystemClock};
use switchboard_core::config::{self, ConfigError, ProcessEnv, Source};
use switchboard_core::priority::{PriorityConfig, Scorer};
use switchboard_core::sla::SlaPolicy;
use switchboard_core::watch::WatchSettings;
use switchboard_embedded::assembly::EmbeddedPorts;
use switchboard_embedded::consumer::{
    ConsumerSettings, EXPIRE_EVERY, consume, expire_periodically, fire_timers,
};
use switchboard_http::{
    AgentSource, ApiPorts, ConsoleAuth, ConsoleConfig, WebhookState, api_router, console_router,
    require_token, webhook_router,
};
use switchboard_senders::Senders;

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
    /// Import an mbox file or a Maildir folder into the embedded store (the e-mail channel):
    /// oldest first, each message once however often it is imported.
    ImportMail(ImportMailArgs),
    /// Post a signed sample day (several channels, urgent and calm messages, an answer, a
    /// customer on two channels) to a running `switchboard serve`.
    Demo(DemoArgs),
    /// Move the dead letters back to their queue, to be handled again (after the fault that
    /// stopped them is fixed).
    Redrive(RedriveArgs),
    /// Run the kept raw deliveries through the current normalizers (after an upgrade):
    /// records stored before stay as they are, what is new is stored and prioritized.
    Replay(ReplayArgs),
    /// Print the agent API's OpenAPI 3.1 document (the committed copy is docs/openapi.json).
    Openapi,
    /// Train the urgency model's head on the labelled sets and write it (the shipped one is
    /// config/urgency-head.json); the same sets and model file give the same head.
    TrainUrgency(TrainArgs),
}

/// `switchboard train-urgency`.
#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// The folder of the labelled sets.
    #[arg(long, default_value = "tests/fixtures/priority")]
    pub sets: PathBuf,
    /// The model file (infra/model.sh fetches it).
    #[arg(long, env = "SWITCHBOARD_MODEL", default_value_os_t = train::default_model_path())]
    pub model: PathBuf,
    /// Where to write the head.
    #[arg(long, default_value = "config/urgency-head.json")]
    pub out: PathBuf,
}

/// `switchboard redrive`.
#[derive(Debug, Clone, Args)]
pub struct RedriveArgs {
    /// Where the dead letters are: the embedded store in `--data`, or the SQS dead-letter
    /// queues of `SWITCHBOARD_INTAKE_QUEUE_URL` (and of `SWITCHBOARD_REMINDER_QUEUE_URL`
    /// when set).
    #[arg(long, value_enum, default_value_t = Backend::Embedded, env = "SWITCHBOARD_BACKEND")]
    pub backend: Backend,
    /// Directory of the embedded store.
    #[arg(long, default_value = "./.switchboard", env = "SWITCHBOARD_DATA")]
    pub data: PathBuf,
}

/// `switchboard replay`.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// The deliveries received from then on: an RFC 3339 time or a UTC date (2026-12-01).
    #[arg(long, value_parser = operate::parse_since)]
    pub since: chrono::DateTime<chrono::Utc>,
    /// Only the deliveries to this webhook (whatsapp, facebook, instagram, standard,
    /// telegram, x, email).
    #[arg(long, value_parser = |s: &str| s.parse::<switchboard_core::model::Webhook>().map_err(|e| e.to_string()))]
    pub webhook: Option<switchboard_core::model::Webhook>,
    /// Directory of the embedded store (the deliveries are read from it; a running `serve`
    /// on it prioritizes what is new).
    #[arg(long, default_value = "./.switchboard", env = "SWITCHBOARD_DATA")]
    pub data: PathBuf,
}

/// `switchboard demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// The `switchboard serve` to post to.
    #[arg(long, default_value = "http://127.0.0.1:3000")]
    pub url: String,
    /// Its data folder, for its development secrets (when the app secrets are not in the
    /// environment).
    #[arg(long, default_value = "./.switchboard", env = "SWITCHBOARD_DATA")]
    pub data: PathBuf,
}

/// `switchboard import-mail`.
#[derive(Debug, Clone, Args)]
pub struct ImportMailArgs {
    /// The mbox file or Maildir folder (with `cur/` and `new/`; Maildir++ subfolders too).
    pub path: PathBuf,
    /// Directory of the embedded store (created if missing); stop `serve` on it first.
    #[arg(long, default_value = "./.switchboard", env = "SWITCHBOARD_DATA")]
    pub data: PathBuf,
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
    /// Once started, post a sample day to itself (as `switchboard demo` does).
    #[arg(long)]
    pub demo: bool,
    /// The urgency model's encoder file (`infra/model.sh` fetches it); default: where that
    /// script puts it. Without it, the word lists alone prioritize, with a warning.
    #[arg(long, value_name = "FILE", env = "SWITCHBOARD_MODEL")]
    pub model: Option<PathBuf>,
    /// Prioritize with the word lists alone, without the urgency model (it costs about 40 ms
    /// of CPU a message).
    #[arg(long)]
    pub no_model: bool,
    /// Connections served at once; one more is answered 503 and closed.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..), env = "SWITCHBOARD_MAX_CONNECTIONS")]
    pub max_connections: u32,
    /// Seconds for a request's headers to arrive, and for an idle keep-alive connection.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..), env = "SWITCHBOARD_HEADER_TIMEOUT_SECS")]
    pub header_timeout_secs: u64,
    /// Seconds for a whole request, body included; slower is answered 408.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..), env = "SWITCHBOARD_REQUEST_TIMEOUT_SECS")]
    pub request_timeout_secs: u64,
    /// MiB the webhook bodies being read may hold together; a body beyond is answered 503
    /// with Retry-After, unread (at least 6, the largest body).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(6..=65536), env = "SWITCHBOARD_MAX_BODY_MEMORY_MB")]
    pub max_body_memory_mb: u64,
}

impl ServeArgs {
    /// The listener's limits of these arguments.
    pub fn limits(&self) -> listen::Limits {
        listen::Limits {
            max_connections: self.max_connections as usize,
            header_timeout: std::time::Duration::from_secs(self.header_timeout_secs),
            request_timeout: std::time::Duration::from_secs(self.request_timeout_secs),
        }
    }
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
    /// The embedded store could not be opened (with the operating system's or SQLite's reason).
    #[error("{}", switchboard_core::errors::chain(.0))]
    Embedded(#[from] switchboard_embedded::EmbeddedError),
    /// Provisioning failed.
    #[error("{0}: {cause}", cause = switchboard_core::errors::causes(.0))]
    Provision(#[from] switchboard_aws::resources::ProvisionError),
    /// The development secrets could not be kept.
    #[error(transparent)]
    DevSecrets(#[from] first_run::DevSecretsError),
    /// The mailbox could not be read.
    #[error(transparent)]
    Mailbox(#[from] import::MailboxError),
    /// A message could not be stored.
    #[error("import stopped: {0}")]
    Import(String),
    /// The demo could not finish.
    #[error(transparent)]
    Demo(#[from] demo::DemoError),
    /// A stored-data operation (redrive, replay) stopped; what it did before stays done.
    #[error("stopped: {0}")]
    Operation(String),
    /// The urgency model could not be trained.
    #[error("training stopped: {0}")]
    Training(String),
    /// The address could not be bound, or the server failed.
    #[error("cannot serve on {addr}: {source}")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// The failure.
        source: std::io::Error,
    },
}

/// Logs to stderr; `RUST_LOG` filters (default `info`, without the operational counts of
/// `switchboard::metrics`, which the Lambda functions send to CloudWatch: add
/// `switchboard::metrics=info` to see them), `SWITCHBOARD_LOG_FORMAT=json` for JSON.
pub fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,switchboard::metrics=off"));
    // Colours only for a terminal: a log file or a pipe gets plain text.
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours)
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
pub fn exposure_warning(addr: SocketAddr, token: bool) -> Option<&'static str> {
    (!addr.ip().is_loopback() && !token).then_some(
        "listening beyond loopback: the /api routes and the console have no authentication; \
         set SWITCHBOARD_API_TOKEN, put an authenticating proxy in front, or listen on 127.0.0.1",
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
            if let Some(banner) = &server.first_run {
                eprintln!("{banner}");
            }
            if let Some(warning) = exposure_warning(server.addr, server.token) {
                tracing::warn!(addr = %server.addr, "{warning}");
            }
            if args.demo {
                let (addr, data) = (server.addr, args.data.clone());
                tokio::spawn(async move {
                    match run_demo(&format!("http://{addr}"), &data).await {
                        Ok(s) => eprintln!(
                            "demo: posted {} deliveries; {} conversations waiting in the queue",
                            s.deliveries, s.waiting
                        ),
                        Err(e) => eprintln!("demo: {e}"),
                    }
                });
            }
            stop_requested().await;
            eprintln!("stopping: no new connections; finishing the requests under way");
            match tokio::time::timeout(SHUTDOWN_GRACE, server.shutdown()).await {
                Ok(result) => result,
                Err(_) => {
                    eprintln!(
                        "stopped after {} s with requests still under way (their senders retry)",
                        SHUTDOWN_GRACE.as_secs()
                    );
                    Ok(())
                }
            }
        }
        Command::ImportMail(args) => {
            let retention = config::retention_days(&ProcessEnv)?;
            let summary = import::import_mail(&args.path, &args.data, retention, 100).await?;
            println!(
                "imported {} messages from {} into {}: {} new, {} already there",
                summary.read,
                args.path.display(),
                args.data.display(),
                summary.new,
                summary.read - summary.new
            );
            Ok(())
        }
        Command::TrainUrgency(args) => {
            let r = train::train_urgency(&args.sets, &args.model, &args.out)?;
            let trained: usize = r.head.trained_on.iter().map(|(_, n)| n).sum();
            println!(
                "trained on {trained} messages; lambda {}; logistic share {}, {} neighbours at temperature {}; raise at {}, lower below {}",
                r.head.lambda,
                r.head.linear_share,
                r.head.k,
                r.head.temperature,
                r.head.raise_at,
                r.head.lower_at
            );
            println!(
                "out of fold (each set predicted by the head of the others), precision / recall of P1+P2:"
            );
            for (name, (p, rc)) in [
                ("keywords", r.keywords),
                ("model at 0.5", r.model),
                ("combined", r.combined),
            ] {
                println!("  {name:<14} {p:.3} / {rc:.3}");
            }
            println!("wrote {}", args.out.display());
            Ok(())
        }
        Command::Openapi => {
            print!("{}", switchboard_http::api::openapi::json());
            Ok(())
        }
        Command::Redrive(args) => {
            for done in operate::redrive(args.backend, &args.data, &ProcessEnv).await? {
                println!(
                    "moved {} dead letters from {} back to {}",
                    done.moved, done.from, done.to
                );
            }
            Ok(())
        }
        Command::Replay(args) => {
            let r = operate::replay(&args.data, args.since, args.webhook, &ProcessEnv).await?;
            println!(
                "replayed {} deliveries: {} records, {} of them new; {} still not readable (kept in the quarantine)",
                r.deliveries, r.records, r.new, r.still_quarantined
            );
            Ok(())
        }
        Command::Demo(args) => {
            let summary = run_demo(&args.url, &args.data).await?;
            println!(
                "posted {} deliveries to {}; {} conversations waiting: open {}/ to see them",
                summary.deliveries,
                args.url,
                summary.waiting,
                args.url.trim_end_matches('/')
            );
            Ok(())
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
            println!("{}={}", switchboard_aws::settings::TABLE, out.table);
            println!(
                "{}={}",
                switchboard_aws::settings::INTAKE_QUEUE_URL,
                out.intake_queue_url
            );
            println!(
                "{}={}",
                switchboard_aws::settings::OUTBOX_TABLE,
                out.outbox_table
            );
            println!("{}={}", switchboard_aws::settings::EVENT_BUS, bus);
            println!(
                "{}={}",
                switchboard_aws::settings::SCHEDULE_GROUP,
                reminders.group
            );
            println!(
                "{}={}",
                switchboard_aws::settings::REMINDER_QUEUE_ARN,
                reminders.queue_arn
            );
            println!(
                "{}={}",
                switchboard_aws::settings::REMINDER_QUEUE_URL,
                reminders.queue_url
            );
            println!(
                "{}={}",
                switchboard_aws::settings::SCHEDULER_ROLE_ARN,
                reminders.role_arn
            );
            println!(
                "# the scheduler role is not created here: on a real account, deploy the stack \
                 (it creates it), or create a role trusted by scheduler.amazonaws.com with \
                 sqs:SendMessage on the reminder queue"
            );
            println!(
                "{}={}",
                switchboard_aws::settings::SCHEDULER_DLQ_ARN,
                reminders.schedule_dlq_arn
            );
            println!("# reminder dead-letter queue: {}", reminders.dlq_url);
            println!("# dead-letter queue: {}", out.intake_dlq_url);
            Ok(())
        }
    }
}

/// `switchboard demo` against `url`: app secrets from the environment, else the development
/// secrets of `data`; the API token from `SWITCHBOARD_API_TOKEN`.
async fn run_demo(url: &str, data: &std::path::Path) -> Result<demo::Summary, CliError> {
    let dev = std::fs::read_to_string(data.join(first_run::FILE))
        .ok()
        .and_then(|t| serde_json::from_str::<HashMap<String, String>>(&t).ok())
        .unwrap_or_default();
    let secret_of = |webhook: switchboard_core::model::Webhook| {
        let name = format!(
            "SWITCHBOARD_{}_APP_SECRETS",
            webhook.as_str().to_ascii_uppercase()
        );
        ProcessEnv
            .get(&name)
            .or_else(|| dev.get(&name).cloned())
            .and_then(|list| list.split(',').next().map(|s| s.trim().to_owned()))
    };
    let token = ProcessEnv.get(config::API_TOKEN);
    Ok(demo::run(url, secret_of, token).await?)
}

/// The application `serve` runs: the HTTP routes and the consumers of the queues.
pub struct App {
    /// Webhooks, agent API and console.
    pub router: axum::Router,
    /// The consumers of the intake and reminder queues (run until aborted).
    pub consumer: AppConsumer,
    /// The development secrets of a first run (and whether they were made now); `None` when
    /// the webhooks are configured.
    pub first_run: Option<(first_run::DevSecrets, bool)>,
    /// Whether the API needs a token.
    pub token: bool,
}

/// The SLA policy of `serve`: `--policy` (or `SWITCHBOARD_POLICY`), else the shipped default.
fn sla_policy(args: &ServeArgs) -> Result<SlaPolicy, ConfigError> {
    config::sla_policy_at("--policy (SWITCHBOARD_POLICY)", args.policy.as_deref())
}

/// The priority configuration of `serve`: `--priority` (or `SWITCHBOARD_PRIORITY`), else the
/// shipped default.
fn priority_config(args: &ServeArgs) -> Result<PriorityConfig, ConfigError> {
    config::priority_config_at(
        "--priority (SWITCHBOARD_PRIORITY)",
        args.priority.as_deref(),
    )
}

/// Builds the whole application (webhooks, read API, prioritizer, reminders) from `args` and
/// settings in `source`, on the backend's assembly of ports.
/// The scorer of `serve`: the word lists of `priority`, and the urgency model unless
/// `--no-model` or its file cannot be opened (then a warning says so and how to fix it).
fn scorer(args: &ServeArgs, priority: PriorityConfig) -> Scorer {
    let scorer = Scorer::new(priority);
    if args.no_model {
        tracing::info!("urgency model off (--no-model): the word lists alone prioritize");
        return scorer;
    }
    let path = args.model.clone().unwrap_or_else(train::default_model_path);
    match switchboard_encoder::urgency::Urgency::open(&path) {
        Ok(model) => {
            tracing::info!(model = %path.display(), "urgency model loaded");
            scorer.with_model(Arc::new(model))
        }
        Err(e) => {
            tracing::warn!(
                "no urgency model ({e}): the word lists alone prioritize; fetch it with \
                 infra/model.sh or pass --model FILE, or --no-model to prioritize without it"
            );
            scorer
        }
    }
}

pub async fn app(args: &ServeArgs, source: &impl Source) -> Result<App, CliError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let retention = config::retention_days(source)?;
    let priority = priority_config(args)?;
    let teams: Vec<String> = priority.teams.values().cloned().collect();
    let policy = sla_policy(args)?;
    let calendar = policy.default_calendar().clone();
    let watch = config::silent_after(source)?.map(|silent_after| WatchSettings {
        silent_after,
        calendar: calendar.clone(),
    });
    let (intake, api, sdk, consumer) = match args.backend {
        Backend::Embedded => {
            let tokens = reply_tokens(source, None).await?;
            let sender = Arc::new(Senders::from_source(source, tokens)?);
            let ports = EmbeddedPorts::open(&args.data, retention, clock.clone())?;
            let mut prioritizer = ports
                .prioritizer(Arc::new(scorer(args, priority)), Arc::new(policy))
                .statuses_answer(config::statuses_answer(source)?)
                .auto_link(config::auto_link(source)?);
            let mut reminders = ports.reminders();
            if let Some(watch) = watch {
                let watcher = ports.watcher(watch);
                prioritizer = prioritizer.watching(watcher.clone());
                reminders = reminders.watching(watcher);
            }
            let claim = ports.store().claim_consumer().await?;
            let consumer: AppConsumer = Box::pin({
                let (store, clock, events) = (ports.store(), ports.clock(), ports.events());
                async move {
                    let _claim = claim;
                    tokio::join!(
                        consume(store.clone(), prioritizer, ConsumerSettings::default()),
                        fire_timers(
                            store.clone(),
                            reminders,
                            clock.clone(),
                            ConsumerSettings::default()
                        ),
                        expire_periodically(store, events, clock, EXPIRE_EVERY),
                    );
                }
            });
            let store = ports.store();
            let api = ApiPorts {
                reader: store.clone(),
                conversations: store.clone(),
                customers: store.clone(),
                identities: store,
                clock: ports.clock(),
                events: Some(ports.events()),
                cases: Some(ports.cases()),
                replies: Some(ports.replies(sender)),
                reports: Some(ports.reports(teams.clone(), calendar)),
                teams,
                agents: AgentSource::Header,
                erasure: Some(ports.erasure()),
            };
            (ports.intake(), api, None, consumer)
        }
        Backend::Aws => {
            let settings = AwsSettings::from_source(source)?;
            let timed = PrioritizerSettings::from_source(source)?;
            let reminder_url = settings::reminder_queue_url(source)?;
            let sdk = sdk_config().await;
            let ports = AwsPorts::new(&sdk, &settings.store(), clock.clone());
            let tokens = reply_tokens(source, Some(&sdk)).await?;
            let sender = Arc::new(Senders::from_source(source, tokens)?.with_mail(ports.mailer()));
            let mut prioritizer = ports
                .prioritizer(
                    &timed.event_bus,
                    &timed.schedules,
                    Arc::new(scorer(args, priority)),
                    policy,
                    timed.statuses_answer,
                )
                .auto_link(timed.auto_link);
            let mut reminders = ports.reminders(&timed.event_bus);
            if let Some(watch) = watch {
                let watcher = ports.watcher(&timed.schedules, &timed.event_bus, watch);
                prioritizer = prioritizer.watching(watcher.clone());
                reminders = reminders.watching(watcher);
            }
            let sqs = aws_sdk_sqs::Client::new(&sdk);
            let intake_url = settings.intake_queue_url.clone();
            let consumer: AppConsumer = Box::pin(async move {
                tokio::join!(
                    poll_forever("prioritizer", || poll_queue(
                        &sqs,
                        &intake_url,
                        &prioritizer,
                        Duration::from_secs(1),
                        Some(Duration::from_secs(30)),
                    )),
                    poll_forever("sla-reminder", || poll_queue(
                        &sqs,
                        &reminder_url,
                        &reminders,
                        Duration::from_secs(1),
                        Some(Duration::from_secs(30)),
                    )),
                );
            });
            let store = ports.store();
            let api = ApiPorts {
                reader: store.clone(),
                conversations: store.clone(),
                customers: store.clone(),
                identities: store,
                clock: ports.clock(),
                events: None,
                cases: Some(ports.cases(&timed.schedules, &timed.event_bus)),
                replies: Some(ports.replies(&timed.schedules, &timed.event_bus, sender)),
                reports: Some(ports.reports(teams.clone(), calendar)),
                teams,
                agents: AgentSource::Header,
                erasure: Some(ports.erasure(&timed.schedules, Vec::new())),
            };
            (
                ports.intake(&settings.intake_queue_url),
                api,
                Some(sdk),
                consumer,
            )
        }
    };
    // Every webhook of the registry whose settings are present is served. With none: on the
    // embedded backend, every webhook on development secrets (a first run); on AWS, start-up
    // names the first one's settings.
    let configured = channels::REGISTRY
        .iter()
        .any(|m| config::channel_configured(source, *m));
    let dev = match (configured, args.backend) {
        (false, Backend::Embedded) => Some(first_run::DevSecrets::load_or_create(&args.data)?),
        _ => None,
    };
    let mut verifiers = HashMap::new();
    for module in channels::REGISTRY.iter().copied() {
        let verification = match &dev {
            Some((dev, _)) => {
                let with_dev = first_run::WithDevSecrets { env: source, dev };
                channel_verification(&with_dev, sdk.as_ref(), module).await?
            }
            None if config::channel_configured(source, module) => {
                channel_verification(source, sdk.as_ref(), module).await?
            }
            None => continue,
        };
        verifiers.insert(module.webhook(), verification);
    }
    if verifiers.is_empty() {
        channel_verification(source, sdk.as_ref(), channels::REGISTRY[0]).await?;
    }
    tracing::info!(
        webhooks = ?verifiers.keys().map(|w| w.as_str()).collect::<Vec<_>>(),
        "webhooks served"
    );
    let token = config::api_token(source)?;
    let console = ConsoleConfig {
        api_base: "/api".into(),
        auth: if token.is_some() {
            ConsoleAuth::Token
        } else {
            ConsoleAuth::None
        },
    };
    let api = match &token {
        Some(token) => require_token(api_router(api), token.clone()),
        None => api_router(api),
    };
    let webhooks = WebhookState::new(intake, verifiers, clock)
        .with_body_budget(args.max_body_memory_mb as usize * 1024 * 1024);
    let router = webhook_router(webhooks)
        .merge(api)
        .merge(console_router(console));
    Ok(App {
        router,
        consumer,
        first_run: dev,
        token: token.is_some(),
    })
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
            Err(e) if switchboard_core::errors::is_reported(&e) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => {
                tracing::error!(consumer = name, error = %e, "could not read the queue");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// A background task of `serve`.
pub type AppConsumer = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// How long a stop waits for the requests under way before it exits all the same.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits for Ctrl-C (SIGINT) or SIGTERM (what systemd, container runtimes and `kill` send).
async fn stop_requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                tokio::signal::ctrl_c().await.ok();
            }
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await.ok();
}

/// A running server.
pub struct Server {
    /// The address it listens on (the real port when asked for port 0).
    pub addr: SocketAddr,
    /// What to tell about the development secrets of a first run.
    pub first_run: Option<String>,
    /// Whether the API needs a token.
    pub token: bool,
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
        first_run,
        token,
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
    let limits = args.limits();
    let task = tokio::spawn(async move {
        listen::serve(listener, app, limits, async {
            let _ = signal.await;
        })
        .await
    });
    let consumer = tokio::spawn(consumer);
    let first_run = first_run.map(|(dev, created)| dev.banner(addr, created));
    Ok(Server {
        addr,
        first_run,
        token,
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
        assert_eq!(
            exposure_warning("127.0.0.1:3000".parse().unwrap(), false),
            None
        );
        assert_eq!(exposure_warning("[::1]:3000".parse().unwrap(), false), None);
        for addr in ["0.0.0.0:3000", "192.168.1.20:3000", "[::]:3000"] {
            let warning = exposure_warning(addr.parse().unwrap(), false).expect(addr);
            assert!(warning.contains("no authentication"), "{warning}");
            assert_eq!(
                exposure_warning(addr.parse().unwrap(), true),
                None,
                "a token guards it"
            );
        }
    }
}
