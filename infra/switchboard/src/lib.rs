//! The `switchboard` command: the local face of the whole system.
//!
//! * `switchboard serve` serves the same routers as the Lambda functions (webhooks) plus the
//!   read API, on the embedded backend (one SQLite file in `--data`) or on AWS.
//! * `switchboard provision` creates the table and queues on the configured AWS endpoint (an
//!   emulator, or a development account) from the definitions `template.yaml` also uses.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use switchboard_aws::app::{AwsBackend, AwsSettings, channel_verifier, sdk_config};
use switchboard_aws::resources::{ResourceNames, provision};
use switchboard_core::clock::{Clock, SystemClock};
use switchboard_core::config::{self, ConfigError, ProcessEnv, Source};
use switchboard_core::http::{WebhookState, api_router, webhook_router};
use switchboard_core::intake::Intake;
use switchboard_core::model::Webhook;
use switchboard_core::ports::{ConversationReader, CustomerDirectory, IntakeQueue, MessageStore};
use switchboard_embedded::SqliteStore;

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
    /// Create the table and queues on the configured AWS endpoint (e.g. an emulator).
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
            tokio::signal::ctrl_c().await.ok();
            server.shutdown().await
        }
        Command::Provision(args) => {
            let sdk = sdk_config().await;
            let out = provision(
                &aws_sdk_dynamodb::Client::new(&sdk),
                &aws_sdk_sqs::Client::new(&sdk),
                &ResourceNames::with_prefix(&args.prefix),
            )
            .await?;
            println!("{}={}", config::TABLE, out.table);
            println!("{}={}", config::INTAKE_QUEUE_URL, out.intake_queue_url);
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
}

/// The webhooks `serve` can answer; each one is served when its settings are present.
pub const WEBHOOKS: [Webhook; 3] = Webhook::ALL;

/// Builds the whole application (webhooks and read API) from `args` and settings in `source`.
pub async fn app(args: &ServeArgs, source: &impl Source) -> Result<axum::Router, CliError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let retention = config::retention_days(source)?;
    let (ports, sdk) = match args.backend {
        Backend::Embedded => {
            let store = Arc::new(SqliteStore::open(&args.data, retention, clock.clone())?);
            let ports = Ports {
                store: store.clone(),
                reader: store.clone(),
                customers: store.clone(),
                queue: store,
            };
            (ports, None)
        }
        Backend::Aws => {
            let settings = AwsSettings::from_source(source)?;
            let sdk = sdk_config().await;
            let backend = AwsBackend::new(&sdk, &settings, clock.clone());
            let ports = Ports {
                store: backend.store.clone(),
                reader: backend.store.clone(),
                customers: backend.store,
                queue: backend.queue,
            };
            (ports, Some(sdk))
        }
    };
    // Every webhook whose settings are present is served; with none, start-up names WhatsApp's.
    let mut verifiers = HashMap::new();
    for webhook in WEBHOOKS {
        let configured = ["SECRET_ARN", "APP_SECRETS", "VERIFY_TOKEN"]
            .iter()
            .any(|suffix| source.get(&config::channel_var(webhook, suffix)).is_some());
        if configured {
            verifiers.insert(
                webhook,
                channel_verifier(source, sdk.as_ref(), webhook).await?,
            );
        }
    }
    if verifiers.is_empty() {
        channel_verifier(source, sdk.as_ref(), Webhook::Whatsapp).await?;
    }
    tracing::info!(
        webhooks = ?verifiers.keys().map(|w| w.as_str()).collect::<Vec<_>>(),
        "webhooks served"
    );
    let intake = Intake::new(ports.store, ports.queue, clock);
    Ok(webhook_router(WebhookState::new(intake, verifiers))
        .merge(api_router(ports.reader, ports.customers)))
}

/// A running server.
pub struct Server {
    /// The address it listens on (the real port when asked for port 0).
    pub addr: SocketAddr,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Stops accepting, finishes the requests under way, and returns.
    pub async fn shutdown(self) -> Result<(), CliError> {
        let _ = self.shutdown.send(());
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
    let app = app(args, source).await?;
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
    Ok(Server {
        addr,
        shutdown,
        task,
    })
}
