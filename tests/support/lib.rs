//! Test support: fixtures, signing, a moto server on loopback, and the two backends behind one
//! interface so that the same contract tests run against both.

use async_trait::async_trait;
use aws_config::{Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use std::collections::HashMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OnceCell;

pub mod graph;
pub mod payloads;
pub mod stream;
pub mod telegram;
pub mod x;

use stream::OutboxPump;
use switchboard_aws::resources::{ResourceNames, provision, provision_event_bus};
use switchboard_aws::{DynamoOutbox, DynamoStore, SqsIntakeQueue};
use switchboard_core::channels::meta::sign;
use switchboard_core::channels::{ChannelSecrets, Verification};
use switchboard_core::clock::{Clock, SystemClock};
use switchboard_core::erasure::{Erasure, ErasureSite};
use switchboard_core::intake::Intake;
use switchboard_core::model::Webhook;
use switchboard_core::ports::{
    BackendError, ChannelWatches, ConversationReader, ConversationStore, CustomerDirectory,
    CustomerHistory, EventLog, EventPublisher, IdempotencyStore, IntakeQueue, MessageStore,
    MetricsReader, Outbox, PageRequest, QueueEntry, RecordLookup, ReplySender,
};
use switchboard_core::prioritize::{Prioritizer, PrioritizerPorts};
use switchboard_core::priority::{PriorityConfig, Scorer};
use switchboard_core::replies::{Replies, ReplyPorts};
use switchboard_core::reports::Reports;
use switchboard_embedded::{EventFile, SqliteStore};
use switchboard_http::{ApiPorts, WebhookState, api_router, webhook_router};

/// The app secret the tests sign with.
pub const APP_SECRET: &str = "test-app-secret";
/// An older secret still accepted (rotation).
pub const OLD_APP_SECRET: &str = "test-app-secret-previous";
/// The verify token of the handshake.
pub const VERIFY_TOKEN: &str = "test-verify-token";
/// The Standard Webhooks signing secret the tests sign with.
pub const STANDARD_SECRET: &str = "whsec_dGVzdC1zdGFuZGFyZC1zaWduaW5nLWtleQ==";
/// An older Standard Webhooks secret still accepted (rotation).
pub const OLD_STANDARD_SECRET: &str = "whsec_b2xkLXN0YW5kYXJkLXNpZ25pbmcta2V5";

/// A Standard Webhooks POST of `body` as delivery `id`, signed with `secret` at `timestamp`.
pub fn standard_post(
    body: &[u8],
    id: &str,
    secret: &str,
    timestamp: i64,
) -> http::Request<axum::body::Body> {
    standard_signed(
        "/webhooks/standard",
        "application/json",
        body,
        id,
        secret,
        timestamp,
    )
}

/// A POST of `body` to `path`, signed the Standard Webhooks way as delivery `id`.
fn standard_signed(
    path: &str,
    content_type: &str,
    body: &[u8],
    id: &str,
    secret: &str,
    timestamp: i64,
) -> http::Request<axum::body::Body> {
    use switchboard_core::channels::standard::{StandardSecret, sign};
    let secret = StandardSecret::parse(secret).expect("a whsec_ secret");
    http::Request::post(path)
        .header("content-type", content_type)
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", sign(&secret, id, timestamp, body))
        .body(axum::body::Body::from(body.to_vec()))
        .expect("request")
}

/// The Telegram webhook's secret token in the tests.
pub const TELEGRAM_TOKEN: &str = "test-telegram-secret_token";
/// An older Telegram secret token still accepted (rotation).
pub const OLD_TELEGRAM_TOKEN: &str = "old-telegram-secret_token";

/// A Telegram update POST of `body` with the secret token `token`.
pub fn telegram_post(body: &[u8], token: &str) -> http::Request<axum::body::Body> {
    http::Request::post("/webhooks/telegram")
        .header("content-type", "application/json")
        .header("x-telegram-bot-api-secret-token", token)
        .body(axum::body::Body::from(body.to_vec()))
        .expect("request")
}

/// A raw e-mail POST of `message` to `/webhooks/email` as delivery `id`, signed with the
/// test Standard Webhooks secret now.
pub fn email_post(message: &[u8], id: &str) -> http::Request<axum::body::Body> {
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    standard_signed(
        "/webhooks/email",
        "message/rfc822",
        message,
        id,
        STANDARD_SECRET,
        timestamp,
    )
}

/// The X app's consumer secret in the tests.
pub const X_SECRET: &str = "test-x-consumer-secret";
/// An older X consumer secret still accepted (rotation).
pub const OLD_X_SECRET: &str = "old-x-consumer-secret";

/// An X Account Activity POST of `body`, signed with the consumer secret `secret`.
pub fn x_post(body: &[u8], secret: &str) -> http::Request<axum::body::Body> {
    http::Request::post("/webhooks/x")
        .header("content-type", "application/json")
        .header(
            switchboard_core::channels::x::SIGNATURE_HEADER,
            switchboard_core::channels::x::verify::sign(secret, body),
        )
        .body(axum::body::Body::from(body.to_vec()))
        .expect("request")
}

/// The folder of the fixtures.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Every WhatsApp webhook body of the fixtures (not the signature metadata), by file name.
pub fn whatsapp_fixtures() -> Vec<(String, Vec<u8>)> {
    let out = fixtures("whatsapp");
    assert!(out.len() >= 80, "expected the WhatsApp fixtures");
    out
}

/// Every webhook body of one fixture folder (not the signature metadata), by file name.
pub fn fixtures(folder: &str) -> Vec<(String, Vec<u8>)> {
    let dir = fixtures_dir().join(folder);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("fixtures folder")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".json") && !name.ends_with(".meta.json")
        })
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("fixture"))
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no fixtures in {}", dir.display());
    out
}

/// The verifications the tests' apps use, one per module of the registry, each with both
/// secrets active, as during a rotation.
pub fn verifiers() -> HashMap<Webhook, Verification> {
    switchboard_core::channels::REGISTRY
        .iter()
        .map(|module| {
            let mut secrets = ChannelSecrets::new("test");
            secrets.set("app_secrets", [APP_SECRET.into(), OLD_APP_SECRET.into()]);
            secrets.set("verify_token", [VERIFY_TOKEN.into()]);
            secrets.set(
                "secrets",
                [STANDARD_SECRET.into(), OLD_STANDARD_SECRET.into()],
            );
            secrets.set(
                "secret_tokens",
                [TELEGRAM_TOKEN.into(), OLD_TELEGRAM_TOKEN.into()],
            );
            secrets.set("consumer_secrets", [X_SECRET.into(), OLD_X_SECRET.into()]);
            let verification = module.verification(&secrets).expect("test secrets");
            (module.webhook(), verification)
        })
        .collect()
}

/// The `X-Hub-Signature-256` value for `body` under the test secret.
pub fn signature(body: &[u8]) -> String {
    sign(APP_SECRET, body)
}

/// Declares the contract tests: each named `async fn(Backend)` of the calling file runs against
/// the embedded backend (`mod embedded`) and the AWS backend on moto (`mod aws`).
#[macro_export]
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::embedded().await).await
                }
            )*
        }
        mod aws {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::aws().await).await
                }
            )*
        }
    };
}

/// A store, reader and queue of one backend, and a way to read what reached the queue.
#[derive(Clone)]
pub struct Backend {
    /// `embedded` or `aws`.
    pub name: &'static str,
    /// The store.
    pub store: Arc<dyn MessageStore>,
    /// The reader.
    pub reader: Arc<dyn ConversationReader>,
    /// The customer directory.
    pub customers: Arc<dyn CustomerDirectory>,
    /// The queue.
    pub queue: Arc<dyn IntakeQueue>,
    /// The intake's outbox as deployed (DynamoDB: the outbox table, whose stream the probe and
    /// the consumer forward first); `None`: the intake enqueues itself.
    pub outbox: Option<Arc<dyn Outbox>>,
    /// Reads and removes what is in the queue.
    pub probe: Arc<dyn QueueProbe>,
    /// Conversations one at a time (and their read-modify-write).
    pub conversations: Arc<dyn ConversationStore>,
    /// Customers' recent records.
    pub history: Arc<dyn CustomerHistory>,
    /// Which identities carry which identifiers.
    pub identities: Arc<dyn switchboard_core::ports::IdentityIndex>,
    /// Where domain events go (the JSON-lines file, or the bus on moto).
    pub events: Arc<dyn EventPublisher>,
    /// Reads what was published.
    pub published: Arc<dyn EventProbe>,
    /// Feeds the intake queue to a prioritizer, as the deployed consumer does.
    pub consumer: Arc<dyn QueueConsumer>,
    /// The event log the read API serves (embedded only).
    pub event_log: Option<Arc<dyn EventLog>>,
    /// Where reminders are scheduled (the timer table, or EventBridge Scheduler on moto).
    pub timers: Arc<dyn switchboard_core::ports::ReminderScheduler>,
    /// Where a scored message's writes go together (the store in one transaction, or the
    /// ports' steps in turn on AWS).
    pub settle: Arc<dyn switchboard_core::ports::Settle>,
    /// Names the reminders scheduled and not fired (or deleted) yet.
    pub pending: Arc<dyn PendingReminders>,
    /// Idempotency keys.
    pub claims: Arc<dyn IdempotencyStore>,
    /// The metrics' stored buckets.
    pub metrics: Arc<dyn MetricsReader>,
    /// The watches of business accounts (silent channels).
    pub watches: Arc<dyn ChannelWatches>,
    /// The settings a deployed function gets for this backend (`SWITCHBOARD_TABLE`, …); empty
    /// for the embedded backend.
    pub env: HashMap<String, String>,
    /// Customer erasure over this backend.
    pub erasure: Option<Erasure>,
    /// Where everything the backend stores is, for a test to look through it all.
    pub storage: Storage,
    _keep: Arc<dyn std::any::Any + Send + Sync>,
}

/// Where a backend stores: the embedded data folder, or the DynamoDB table.
#[derive(Clone)]
pub enum Storage {
    /// The data folder (the SQLite file, its log, the event file).
    Folder(std::path::PathBuf),
    /// The table.
    Table(aws_sdk_dynamodb::Client, String),
}

impl Storage {
    /// Everything stored, as text a test can search: every file of the folder, byte for byte
    /// (lossily as UTF-8); every item of the table, its binary attributes also un-gzipped
    /// (how raw deliveries are kept).
    pub async fn everything(&self) -> String {
        let mut all = String::new();
        match self {
            Storage::Folder(dir) => {
                for entry in std::fs::read_dir(dir).expect("data folder") {
                    let path = entry.expect("entry").path();
                    if path.is_file() {
                        let bytes = std::fs::read(&path).expect("read a stored file");
                        all.push_str(&String::from_utf8_lossy(&bytes));
                    }
                }
            }
            Storage::Table(client, table) => {
                let mut start = None;
                loop {
                    let out = client
                        .scan()
                        .table_name(table)
                        .set_exclusive_start_key(start)
                        .send()
                        .await
                        .expect("scan the table");
                    for item in out.items() {
                        for value in item.values() {
                            all.push_str(&format!("{value:?}\n"));
                            if let Ok(blob) = value.as_b() {
                                let mut text = String::new();
                                let _ = std::io::Read::read_to_string(
                                    &mut flate2::read::GzDecoder::new(blob.as_ref()),
                                    &mut text,
                                );
                                all.push_str(&text);
                            }
                        }
                    }
                    match out.last_evaluated_key {
                        Some(key) if !key.is_empty() => start = Some(key),
                        _ => break,
                    }
                }
            }
        }
        all
    }
}

impl Backend {
    /// The application (webhooks and read API) over this backend, with the queue replaced by
    /// `queue` when given (to inject faults).
    pub fn app(&self, queue: Option<Arc<dyn IntakeQueue>>) -> axum::Router {
        self.app_with(None, queue)
    }

    /// Replies over this backend, sent through `sender`.
    pub fn replies(&self, sender: Arc<dyn ReplySender>) -> Replies {
        self.replies_with(sender, &self.prioritizer(), Arc::new(SystemClock))
    }

    /// Replies over this backend, sent through `sender`, ending waits through `prioritizer`'s
    /// cases, on `clock`.
    fn replies_with(
        &self,
        sender: Arc<dyn ReplySender>,
        prioritizer: &Prioritizer,
        clock: Arc<dyn Clock>,
    ) -> Replies {
        Replies::new(
            ReplyPorts {
                conversations: self.conversations.clone(),
                records: self.store.clone(),
                history: self.history.clone(),
                sender,
                claims: self.claims.clone(),
                events: self.events.clone(),
            },
            prioritizer.cases().clone(),
            clock,
        )
    }

    /// The application with replies sent through `sender`.
    pub fn app_replying(&self, sender: Arc<dyn ReplySender>) -> axum::Router {
        self.router(
            self.store.clone(),
            self.queue.clone(),
            Some(self.replies(sender)),
        )
    }

    /// Whether the raw delivery with exactly these bytes is kept.
    pub async fn kept(&self, body: &[u8]) -> bool {
        let id = switchboard_core::ids::DeliveryId::of(body);
        self.reader
            .delivery(&id)
            .await
            .expect("read delivery")
            .is_some()
    }

    /// The application with the store and/or the queue replaced (to inject faults).
    pub fn app_with(
        &self,
        store: Option<Arc<dyn MessageStore>>,
        queue: Option<Arc<dyn IntakeQueue>>,
    ) -> axum::Router {
        self.router(
            store.unwrap_or_else(|| self.store.clone()),
            queue.unwrap_or_else(|| self.queue.clone()),
            None,
        )
    }

    /// The intake as deployed: through the outbox when the backend has one.
    pub fn intake(&self) -> Intake {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        match &self.outbox {
            Some(outbox) => Intake::with_outbox(self.store.clone(), outbox.clone(), clock),
            None => Intake::new(self.store.clone(), self.queue.clone(), clock),
        }
    }

    fn router(
        &self,
        store: Arc<dyn MessageStore>,
        queue: Arc<dyn IntakeQueue>,
        replies: Option<Replies>,
    ) -> axum::Router {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        // The store or the queue replaced (a fault injected): the intake that enqueues itself,
        // where the replacement is used; otherwise as deployed.
        let replaced = !Arc::ptr_eq(&store, &self.store) || !Arc::ptr_eq(&queue, &self.queue);
        let intake = if replaced {
            Intake::new(store, queue, clock.clone())
        } else {
            self.intake()
        };
        webhook_router(WebhookState::new(intake, verifiers(), clock.clone())).merge(api_router(
            ApiPorts {
                reader: self.reader.clone(),
                conversations: self.conversations.clone(),
                customers: self.customers.clone(),
                identities: self.identities.clone(),
                clock: clock.clone(),
                events: self.event_log.clone(),
                cases: Some(self.prioritizer().cases().clone()),
                replies,
                reports: Some(self.reports()),
                teams: teams(),
                agents: switchboard_http::AgentSource::Header,
                erasure: self.erasure.clone(),
            },
        ))
    }

    /// The figures over this backend: the shipped teams and the shipped policy's calendar.
    pub fn reports(&self) -> Reports {
        Reports::new(
            self.metrics.clone(),
            self.reader.clone(),
            teams(),
            switchboard_core::sla::SlaPolicy::default_policy()
                .default_calendar()
                .clone(),
            Arc::new(SystemClock),
        )
    }

    /// A prioritizer over this backend with the shipped priority configuration.
    pub fn prioritizer(&self) -> Prioritizer {
        self.prioritizer_with(PriorityConfig::default_config())
    }

    /// A prioritizer over this backend with `config` and the shipped SLA policy.
    pub fn prioritizer_with(&self, config: PriorityConfig) -> Prioritizer {
        self.prioritizer_timed(config, switchboard_core::sla::SlaPolicy::default_policy())
    }

    /// A prioritizer over this backend with `config` and `policy`.
    pub fn prioritizer_timed(
        &self,
        config: PriorityConfig,
        policy: switchboard_core::sla::SlaPolicy,
    ) -> Prioritizer {
        self.prioritizer_clocked(config, policy, Arc::new(SystemClock))
    }

    /// A prioritizer over this backend with `config` and `policy`, on `clock`.
    pub fn prioritizer_clocked(
        &self,
        config: PriorityConfig,
        policy: switchboard_core::sla::SlaPolicy,
        clock: Arc<dyn Clock>,
    ) -> Prioritizer {
        self.prioritizer_scored(Arc::new(Scorer::new(config)), policy, clock)
    }

    /// A prioritizer over this backend scoring with `scorer` (the urgency model's, say).
    pub fn prioritizer_scored(
        &self,
        scorer: Arc<Scorer>,
        policy: switchboard_core::sla::SlaPolicy,
        clock: Arc<dyn Clock>,
    ) -> Prioritizer {
        Prioritizer::new(self.prioritizer_ports(), scorer, Arc::new(policy), clock)
    }

    /// The prioritizer's ports over this backend (a test may replace one of them).
    pub fn prioritizer_ports(&self) -> PrioritizerPorts {
        PrioritizerPorts {
            records: self.store.clone(),
            conversations: self.conversations.clone(),
            customers: self.customers.clone(),
            history: self.history.clone(),
            identities: self.identities.clone(),
            events: self.events.clone(),
            timers: self.timers.clone(),
            settle: self.settle.clone(),
        }
    }

    /// The whole application on `clock` (intake, cases, replies through `sender`, figures), and
    /// the prioritizer to run its queue with: for a scripted day whose every time is known.
    pub fn app_at(
        &self,
        clock: Arc<dyn Clock>,
        sender: Arc<dyn ReplySender>,
    ) -> (axum::Router, Prioritizer) {
        let policy = switchboard_core::sla::SlaPolicy::default_policy();
        let calendar = policy.default_calendar().clone();
        let prioritizer =
            self.prioritizer_clocked(PriorityConfig::default_config(), policy, clock.clone());
        let replies = self.replies_with(sender, &prioritizer, clock.clone());
        let intake = Intake::new(self.store.clone(), self.queue.clone(), clock.clone());
        let router = webhook_router(WebhookState::new(intake, verifiers(), clock.clone())).merge(
            api_router(ApiPorts {
                reader: self.reader.clone(),
                conversations: self.conversations.clone(),
                customers: self.customers.clone(),
                identities: self.identities.clone(),
                clock: clock.clone(),
                events: self.event_log.clone(),
                cases: Some(prioritizer.cases().clone()),
                replies: Some(replies),
                reports: Some(Reports::new(
                    self.metrics.clone(),
                    self.reader.clone(),
                    teams(),
                    calendar,
                    clock,
                )),
                teams: teams(),
                agents: switchboard_http::AgentSource::Header,
                erasure: self.erasure.clone(),
            }),
        );
        (router, prioritizer)
    }

    /// The reminder consumer over this backend.
    pub fn reminder_handler(&self) -> switchboard_core::remind::ReminderHandler {
        switchboard_core::remind::ReminderHandler::new(
            self.conversations.clone(),
            self.events.clone(),
            Arc::new(SystemClock),
        )
    }

    /// Runs the queue through `prioritizer` until a receive finds nothing; answers how many
    /// entries were received.
    pub async fn prioritize_all(&self, prioritizer: &Prioritizer) -> usize {
        let mut total = 0;
        loop {
            let n = self.consumer.consume_once(prioritizer).await;
            if n == 0 {
                return total;
            }
            total += n;
        }
    }
}

/// Receives one batch from the intake queue and hands it to a prioritizer, as the deployed
/// consumer does (the Lambda event source mapping on AWS, `serve`'s loop on the embedded queue).
#[async_trait]
pub trait QueueConsumer: Send + Sync {
    /// One batch; answers how many entries were received (0: nothing visible).
    async fn consume_once(&self, prioritizer: &Prioritizer) -> usize;
    /// Entries moved to the dead letters.
    async fn dead_letters(&self) -> usize;
    /// The same consumer, hiding what it receives for `visibility` (zero: a failed entry is
    /// received again at the next call).
    fn with_visibility(&self, visibility: Duration) -> Arc<dyn QueueConsumer>;
}

/// The names of the reminders scheduled and still to fire, sorted.
#[async_trait]
pub trait PendingReminders: Send + Sync {
    /// Every pending reminder's name.
    async fn names(&self) -> Vec<String>;
}

struct EmbeddedTimers(Arc<SqliteStore>);

#[async_trait]
impl PendingReminders for EmbeddedTimers {
    async fn names(&self) -> Vec<String> {
        self.0.pending_reminders().await.expect("pending reminders")
    }
}

/// The schedules of a group on EventBridge Scheduler (moto).
pub struct SchedulerGroup {
    /// The client.
    pub client: aws_sdk_scheduler::Client,
    /// The group.
    pub group: String,
}

#[async_trait]
impl PendingReminders for SchedulerGroup {
    async fn names(&self) -> Vec<String> {
        let mut names = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .client
                .list_schedules()
                .group_name(&self.group)
                .set_next_token(token)
                .send()
                .await
                .expect("list schedules");
            names.extend(
                out.schedules()
                    .iter()
                    .filter_map(|s| s.name().map(str::to_owned)),
            );
            token = out.next_token;
            if token.is_none() {
                break;
            }
        }
        names.sort();
        names
    }
}

/// Reads the domain events published so far.
#[async_trait]
pub trait EventProbe: Send + Sync {
    /// Every event published so far: `{"id", "type", "detail"}` objects, in publication order
    /// as far as the backend keeps it.
    async fn published(&self) -> Vec<serde_json::Value>;

    /// The events of one type published so far, in publication order.
    async fn of_type(&self, kind: &str) -> Vec<serde_json::Value> {
        let mut all = self.published().await;
        all.retain(|e| e["type"] == kind);
        all
    }
}

/// The teams of the shipped priority configuration.
pub fn teams() -> Vec<String> {
    PriorityConfig::default_config()
        .teams
        .into_values()
        .collect()
}

/// Reads and removes everything that is in a queue.
#[async_trait]
pub trait QueueProbe: Send + Sync {
    /// Every entry now in the queue, in the order received; the queue is empty afterwards.
    async fn drain(&self) -> Vec<QueueEntry>;
    /// How many entries are in the queue, without reading them.
    async fn count(&self) -> usize;
}

/// The variable naming the file the suite's logs go to, for the log scan of CI
/// (`infra/log-scan.py`): every test binary appends to it what switchboard logs, at debug,
/// and what the `switchboard` processes the tests start print.
pub const TEST_LOG: &str = "SWITCHBOARD_TEST_LOG";

/// What the suite logs when [`TEST_LOG`] is set: switchboard's crates at debug, the libraries
/// under them at info.
pub const TEST_LOG_FILTER: &str = "info,switchboard=debug,switchboard_core=debug,switchboard_aws=debug,switchboard_embedded=debug,\
     switchboard_http=debug,switchboard_lambda=debug,switchboard_senders=debug";

fn test_log_file() -> Option<&'static Mutex<std::fs::File>> {
    static FILE: std::sync::OnceLock<Option<Mutex<std::fs::File>>> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let path = std::env::var_os(TEST_LOG)?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{TEST_LOG}: cannot open {path:?}: {e}"));
        Some(Mutex::new(file))
    })
    .as_ref()
}

/// Appends `text` (lines another process printed) to the suite's log, when [`TEST_LOG`] is set.
pub fn append_test_log(text: &str) {
    if let Some(file) = test_log_file() {
        let mut file = file.lock().unwrap_or_else(|p| p.into_inner());
        let _ = std::io::Write::write_all(&mut *file, text.as_bytes());
        let _ = std::io::Write::write_all(&mut *file, b"\n");
    }
}

struct TestLogWriter;

impl std::io::Write for TestLogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match test_log_file() {
            Some(file) => file.lock().unwrap_or_else(|p| p.into_inner()).write(buf),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// When [`TEST_LOG`] is set, makes the suite's log the process's default subscriber (once;
/// a test that sets a subscriber of its own for a while logs there meanwhile).
pub fn log_to_test_log() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if test_log_file().is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(TEST_LOG_FILTER))
                .with_ansi(false)
                .with_writer(|| TestLogWriter)
                .try_init();
        }
    });
}

/// An embedded backend in a fresh temporary folder.
pub async fn embedded() -> Backend {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_owned();
    embedded_in(&path, Arc::new(dir))
}

/// An embedded backend on the store in `path`.
pub fn embedded_in(path: &Path, keep: Arc<dyn std::any::Any + Send + Sync>) -> Backend {
    log_to_test_log();
    let store = Arc::new(SqliteStore::open(path, 30, Arc::new(SystemClock)).expect("open store"));
    let events = Arc::new(EventFile::in_folder(path));
    let events_site: Arc<dyn ErasureSite> = events.clone();
    Backend {
        name: "embedded",
        store: store.clone(),
        reader: store.clone(),
        customers: store.clone(),
        queue: store.clone(),
        outbox: None,
        probe: Arc::new(EmbeddedProbe(store.clone())),
        conversations: store.clone(),
        history: store.clone(),
        identities: store.clone(),
        events: events.clone(),
        published: Arc::new(FileEvents(events.clone())),
        consumer: Arc::new(EmbeddedConsumer {
            store: store.clone(),
            visibility: Duration::from_secs(30),
        }),
        event_log: Some(events),
        timers: store.clone(),
        settle: store.clone(),
        claims: store.clone(),
        metrics: store.clone(),
        watches: store.clone(),
        pending: Arc::new(EmbeddedTimers(store.clone())),
        env: HashMap::new(),
        erasure: Some(Erasure::new(
            store.clone(),
            store,
            vec![events_site],
            Arc::new(SystemClock),
        )),
        storage: Storage::Folder(path.to_owned()),
        _keep: keep,
    }
}

/// The embedded queue's consumer, with a visibility timeout of its own (0 makes a failed
/// entry visible again at once).
pub struct EmbeddedConsumer {
    /// The store.
    pub store: Arc<SqliteStore>,
    /// How long a received entry stays hidden.
    pub visibility: Duration,
}

#[async_trait]
impl QueueConsumer for EmbeddedConsumer {
    async fn consume_once(&self, prioritizer: &Prioritizer) -> usize {
        switchboard_embedded::consumer::drain_once(&self.store, prioritizer, self.visibility)
            .await
            .expect("consume the embedded queue")
    }

    async fn dead_letters(&self) -> usize {
        self.store.dead_letters_len().await.expect("dead letters")
    }

    fn with_visibility(&self, visibility: Duration) -> Arc<dyn QueueConsumer> {
        Arc::new(Self {
            store: self.store.clone(),
            visibility,
        })
    }
}

struct FileEvents(Arc<EventFile>);

#[async_trait]
impl EventProbe for FileEvents {
    async fn published(&self) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .0
                .events(None, PageRequest { cursor, limit: 500 })
                .await
                .expect("read events");
            out.extend(page.items.iter().map(|e| {
                let event = serde_json::json!({
                    "id": e.id,
                    "type": e.kind,
                    "detail": e.bus_detail(),
                });
                assert_valid_event(&event);
                event
            }));
            match page.next {
                Some(next) => cursor = Some(next),
                None => return out,
            }
        }
    }
}

struct EmbeddedProbe(Arc<SqliteStore>);

#[async_trait]
impl QueueProbe for EmbeddedProbe {
    async fn drain(&self) -> Vec<QueueEntry> {
        let mut out = Vec::new();
        loop {
            let batch = self
                .0
                .receive(100, Duration::from_secs(60))
                .await
                .expect("receive");
            if batch.is_empty() {
                return out;
            }
            let receipts: Vec<_> = batch.iter().map(|r| r.receipt).collect();
            out.extend(batch.into_iter().map(|r| r.entry));
            self.0.ack(&receipts).await.expect("ack");
        }
    }

    async fn count(&self) -> usize {
        self.0.queue_len().await.expect("queue length")
    }
}

/// A moto server on loopback, shared by the tests of one test binary.
pub struct Moto {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
}

static MOTO: OnceCell<Moto> = OnceCell::const_new();
static NAMES: AtomicUsize = AtomicUsize::new(0);

/// The moto server of this test binary, started on first use. It stops by itself when the test
/// process ends. Never skipped: without `moto_server` the test fails and says how to install it.
pub async fn moto() -> &'static Moto {
    log_to_test_log();
    MOTO.get_or_init(|| async {
        if let Ok(endpoint) = std::env::var("SWITCHBOARD_TEST_AWS_ENDPOINT") {
            return Moto { endpoint };
        }
        let program =
            std::env::var("SWITCHBOARD_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into());
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        // A watchdog shell stops moto when this test process is gone, so no server outlives the
        // tests (the harness exits without running destructors).
        let script = format!(
            "( \"$0\" -H 127.0.0.1 -p {port} & m=$!; \
               while kill -0 {parent} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 1; done; \
               kill $m 2>/dev/null ) >/dev/null 2>&1 &",
            parent = std::process::id()
        );
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v \"{program}\" >/dev/null"))
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            found,
            "moto_server not found (looked for {program:?}): run ./infra/dev-setup.sh and put its \
             virtual environment first on PATH, or set SWITCHBOARD_MOTO_SERVER"
        );
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(&program)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("start moto_server");
        let endpoint = format!("http://127.0.0.1:{port}");
        for _ in 0..300 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Moto { endpoint };
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("moto_server did not answer on port {port} within 30 s");
    })
    .await
}

impl Moto {
    /// SDK configuration pointing at this server with static test credentials.
    pub async fn sdk_config(&self) -> SdkConfig {
        switchboard_aws::assembly::sdk_defaults()
            .endpoint_url(&self.endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .load()
            .await
    }
}

/// An AWS backend on moto, with its own freshly provisioned table and queues.
pub async fn aws() -> Backend {
    aws_with(None).await
}

/// An AWS backend on moto whose clients count every request they send.
pub async fn aws_counted() -> (Backend, Arc<CallCounter>) {
    let counter = Arc::new(CallCounter::default());
    (aws_with(Some(counter.clone())).await, counter)
}

/// Counts the AWS requests sent (retries included), by operation (`BatchGetItem`, …).
#[derive(Debug, Default)]
pub struct CallCounter {
    calls: std::sync::Mutex<std::collections::BTreeMap<String, usize>>,
    received: std::sync::atomic::AtomicUsize,
    /// The sequential rounds: (the deepest round of a request answered so far, the deepest
    /// round of a request sent so far). A request sent is one round deeper than the deepest
    /// answered before it was sent: requests sent together share a round, one sent after
    /// another's answer is the next (it may have waited for it), so the deepest is the length
    /// of the longest chain of requests one after the other.
    rounds: std::sync::Mutex<(usize, usize)>,
}

/// The round of a request, kept in its attempt's configuration from send to answer.
#[derive(Debug, Clone, Copy)]
struct Round(usize);

impl aws_smithy_types::config_bag::Storable for Round {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

impl CallCounter {
    /// Every request counted so far, by operation.
    pub fn by_operation(&self) -> std::collections::BTreeMap<String, usize> {
        self.calls.lock().unwrap().clone()
    }

    /// The number of requests counted so far.
    pub fn total(&self) -> usize {
        self.calls.lock().unwrap().values().sum()
    }

    /// The bytes of the response bodies received so far (by their `Content-Length`): what
    /// the calls read, whatever their number.
    pub fn received(&self) -> usize {
        self.received.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The sequential rounds of the calls counted so far: the longest chain of calls each
    /// sent after the one before was answered (calls sent together share a round).
    pub fn rounds(&self) -> usize {
        self.rounds.lock().unwrap().1
    }

    /// Forgets what was counted.
    pub fn reset(&self) {
        self.calls.lock().unwrap().clear();
        self.received.store(0, std::sync::atomic::Ordering::Relaxed);
        *self.rounds.lock().unwrap() = (0, 0);
    }
}

#[derive(Debug)]
struct Counting(Arc<CallCounter>);

impl aws_sdk_dynamodb::config::Intercept for Counting {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_transmit(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        // Both DynamoDB and SQS name the operation in X-Amz-Target: `DynamoDB_20120810.PutItem`.
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("unknown")
            .to_owned();
        *self.0.calls.lock().unwrap().entry(target).or_default() += 1;
        let mut rounds = self.0.rounds.lock().unwrap();
        let round = rounds.0 + 1;
        rounds.1 = rounds.1.max(round);
        cfg.interceptor_state().store_put(Round(round));
        Ok(())
    }

    fn read_after_attempt(
        &self,
        _context: &aws_sdk_dynamodb::config::interceptors::FinalizerInterceptorContextRef<'_>,
        _components: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        if let Some(Round(round)) = cfg.load::<Round>() {
            let mut rounds = self.0.rounds.lock().unwrap();
            rounds.0 = rounds.0.max(*round);
        }
        Ok(())
    }

    fn read_before_deserialization(
        &self,
        context: &aws_sdk_dynamodb::config::interceptors::BeforeDeserializationInterceptorContextRef<'_>,
        _components: &aws_sdk_dynamodb::config::RuntimeComponents,
        _cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let length = context
            .response()
            .headers()
            .get("content-length")
            .and_then(|l| l.parse::<usize>().ok())
            .unwrap_or(0);
        self.0
            .received
            .fetch_add(length, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }
}

/// An AWS backend on moto whose DynamoDB and SQS clients (the acknowledgement path's and the
/// prioritizer's) meet the faults `plan` schedules, and retry as deployed (three attempts),
/// with short backoffs. Provisioning happens before any fault.
pub async fn aws_faulty(plan: Arc<FaultPlan>) -> Backend {
    aws_with_clients(None, Some(plan)).await
}

async fn aws_with(counter: Option<Arc<CallCounter>>) -> Backend {
    aws_with_clients(counter, None).await
}

/// A fault injected into one AWS request attempt by a [`FaultPlan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Sent, and answered as the service answers.
    None,
    /// Never reaches the service: the connection is refused (an I/O error, retryable).
    Refused,
    /// Turned away by the service before it does anything: `ThrottlingException`.
    Throttled,
    /// Done by the service, and its answer lost: a 500 in its place (what a timeout after the
    /// write looks like to the caller).
    Lost,
}

/// The faults of the next request attempts, one each, in order (retries are attempts too);
/// attempts beyond the schedule are left alone.
#[derive(Debug, Default)]
pub struct FaultPlan {
    next: Mutex<std::collections::VecDeque<Fault>>,
    injected: AtomicUsize,
    held: std::sync::atomic::AtomicBool,
}

/// While alive, a [`FaultPlan`] injects nothing (set-up calls).
pub struct FaultsHeld<'a>(&'a FaultPlan);

impl Drop for FaultsHeld<'_> {
    fn drop(&mut self) {
        self.0.held.store(false, Ordering::SeqCst);
    }
}

impl FaultPlan {
    /// Replaces the schedule.
    pub fn schedule(&self, faults: impl IntoIterator<Item = Fault>) {
        *self.next.lock().unwrap() = faults.into_iter().collect();
    }

    /// How many attempts the schedule still holds.
    pub fn remaining(&self) -> usize {
        self.next.lock().unwrap().len()
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> usize {
        self.injected.load(Ordering::SeqCst)
    }

    /// Injects nothing until the guard is dropped.
    pub fn hold(&self) -> FaultsHeld<'_> {
        self.held.store(true, Ordering::SeqCst);
        FaultsHeld(self)
    }

    fn take(&self) -> Fault {
        if self.held.load(Ordering::SeqCst) {
            return Fault::None;
        }
        let fault = self.next.lock().unwrap().pop_front().unwrap_or(Fault::None);
        if fault != Fault::None {
            self.injected.fetch_add(1, Ordering::SeqCst);
        }
        fault
    }
}

/// The fault chosen for the attempt under way (between the interceptor's hooks).
#[derive(Debug, Clone, Copy)]
struct Chosen(Fault);

impl aws_smithy_types::config_bag::Storable for Chosen {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

/// Applies a [`FaultPlan`] in the SDK's interceptor chain: before an attempt is sent (refused:
/// its address is one nobody listens on; throttled: its operation is one the service does not
/// have, so nothing is done) and before its answer is read (throttled: a
/// `ThrottlingException`; lost: a 500 in place of the real answer).
#[derive(Debug)]
struct Faulting(Arc<FaultPlan>);

impl aws_sdk_dynamodb::config::Intercept for Faulting {
    fn name(&self) -> &'static str {
        "Faulting"
    }

    fn modify_before_transmit(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextMut<
            '_,
        >,
        _components: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let fault = self.0.take();
        cfg.interceptor_state().store_put(Chosen(fault));
        let request = context.request_mut();
        match fault {
            Fault::Refused => request.set_uri("http://127.0.0.1:1/")?,
            Fault::Throttled => {
                request
                    .headers_mut()
                    .insert("x-amz-target", "Injected.NoSuchOperation");
            }
            Fault::None | Fault::Lost => {}
        }
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut aws_sdk_dynamodb::config::interceptors::BeforeDeserializationInterceptorContextMut<'_>,
        _components: &aws_sdk_dynamodb::config::RuntimeComponents,
        cfg: &mut aws_sdk_dynamodb::config::ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let (status, code) = match cfg.load::<Chosen>() {
            Some(Chosen(Fault::Throttled)) => (400, "ThrottlingException"),
            Some(Chosen(Fault::Lost)) => (500, "InternalServerError"),
            _ => return Ok(()),
        };
        let body = format!(r#"{{"__type":"{code}","message":"injected"}}"#);
        let mut response = aws_smithy_runtime_api::http::Response::new(
            status.try_into()?,
            aws_smithy_types::body::SdkBody::from(body),
        );
        response
            .headers_mut()
            .insert("content-type", "application/x-amz-json-1.0");
        *context.response_mut() = response;
        Ok(())
    }
}

async fn aws_with_clients(
    counter: Option<Arc<CallCounter>>,
    faults: Option<Arc<FaultPlan>>,
) -> Backend {
    let moto = moto().await;
    let sdk = moto.sdk_config().await;
    let prefix = format!(
        "t{}-{}",
        std::process::id(),
        NAMES.fetch_add(1, Ordering::SeqCst)
    );
    let mut dynamodb = aws_sdk_dynamodb::config::Builder::from(&sdk);
    let mut sqs = aws_sdk_sqs::config::Builder::from(&sdk);
    if let Some(counter) = &counter {
        dynamodb = dynamodb.interceptor(Counting(counter.clone()));
        sqs = sqs.interceptor(Counting(counter.clone()));
    }
    if let Some(plan) = &faults {
        let retries = aws_config::retry::RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(Duration::from_millis(1))
            .with_max_backoff(Duration::from_millis(5));
        dynamodb = dynamodb
            .interceptor(Faulting(plan.clone()))
            .retry_config(retries.clone());
        sqs = sqs
            .interceptor(Faulting(plan.clone()))
            .retry_config(retries);
    }
    let (dynamodb, sqs) = (
        aws_sdk_dynamodb::Client::from_conf(dynamodb.build()),
        aws_sdk_sqs::Client::from_conf(sqs.build()),
    );
    let names = ResourceNames::with_prefix(&prefix);
    let held = faults.as_ref().map(|plan| plan.hold());
    let provisioned = provision(&dynamodb, &sqs, &names)
        .await
        .expect("provision on moto");
    drop(held);
    let eventbridge = aws_sdk_eventbridge::Client::new(&sdk);
    let bus = provision_event_bus(&eventbridge, &names)
        .await
        .expect("event bus on moto");
    let tap = event_tap(&eventbridge, &aws_sdk_sqs::Client::new(&sdk), &bus, &prefix).await;
    let scheduler = aws_sdk_scheduler::Client::new(&sdk);
    let reminders = switchboard_aws::resources::provision_reminders(
        &aws_sdk_sqs::Client::new(&sdk),
        &scheduler,
        &names,
    )
    .await
    .expect("reminders on moto");
    if let Some(counter) = &counter {
        counter.reset();
    }
    use switchboard_core::config;
    let env: HashMap<String, String> = [
        (switchboard_aws::settings::TABLE, provisioned.table.clone()),
        (
            switchboard_aws::settings::INTAKE_QUEUE_URL,
            provisioned.intake_queue_url.clone(),
        ),
        (
            switchboard_aws::settings::OUTBOX_TABLE,
            provisioned.outbox_table.clone(),
        ),
        (config::RETENTION_DAYS, "30".to_owned()),
        (switchboard_aws::settings::EVENT_BUS, bus.clone()),
        (
            switchboard_aws::settings::SCHEDULE_GROUP,
            reminders.group.clone(),
        ),
        (
            switchboard_aws::settings::REMINDER_QUEUE_ARN,
            reminders.queue_arn.clone(),
        ),
        (
            switchboard_aws::settings::SCHEDULER_ROLE_ARN,
            reminders.role_arn.clone(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let table_client = aws_sdk_dynamodb::Client::new(&sdk);
    let store = Arc::new(DynamoStore::new(
        dynamodb,
        &provisioned.table,
        30,
        Arc::new(SystemClock),
    ));
    let queue = Arc::new(SqsIntakeQueue::new(
        sqs.clone(),
        &provisioned.intake_queue_url,
    ));
    let outbox = Arc::new(DynamoOutbox::new(store.clone(), &provisioned.outbox_table));
    // The forwarder is a function of its own: it sends with a client of its own, outside the
    // counts and the faults of the intake's and the prioritizer's.
    let pump = Arc::new(OutboxPump::new(
        &moto.endpoint,
        &provisioned.outbox_stream_arn,
        switchboard_aws::forwarder::Forwarder::new(Arc::new(SqsIntakeQueue::new(
            aws_sdk_sqs::Client::new(&sdk),
            &provisioned.intake_queue_url,
        ))),
    ));
    let timers = Arc::new(switchboard_aws::SchedulerReminders::new(
        scheduler.clone(),
        switchboard_aws::scheduler::ScheduleTarget {
            group: reminders.group.clone(),
            queue_arn: reminders.queue_arn.clone(),
            role_arn: reminders.role_arn.clone(),
            dead_letter_arn: Some(reminders.schedule_dlq_arn.clone()),
        },
        Arc::new(SystemClock),
    ));
    Backend {
        name: "aws",
        store: store.clone(),
        reader: store.clone(),
        customers: store.clone(),
        queue,
        outbox: Some(outbox),
        conversations: store.clone(),
        claims: store.clone(),
        metrics: store.clone(),
        watches: store.clone(),
        history: store.clone(),
        identities: store.clone(),
        events: Arc::new(switchboard_aws::EventBridgePublisher::new(
            eventbridge,
            &bus,
        )),
        published: Arc::new(tap),
        consumer: Arc::new(SqsConsumer {
            client: aws_sdk_sqs::Client::new(&sdk),
            url: provisioned.intake_queue_url.clone(),
            dlq_url: provisioned.intake_dlq_url.clone(),
            visibility: Duration::from_secs(30),
            pump: Some(pump.clone()),
        }),
        event_log: None,
        timers: timers.clone(),
        settle: Arc::new(switchboard_core::ports::SettleInSteps {
            timers: timers.clone(),
            history: store.clone(),
            conversations: store.clone(),
        }),
        pending: Arc::new(SchedulerGroup {
            client: scheduler,
            group: reminders.group,
        }),
        // The probe reads with a client of its own, so what it does is never counted.
        probe: Arc::new(SqsProbe {
            client: aws_sdk_sqs::Client::new(&sdk),
            url: provisioned.intake_queue_url,
            pump: Some(pump),
        }),
        env,
        erasure: Some(Erasure::new(
            store,
            timers.clone(),
            Vec::new(),
            Arc::new(SystemClock),
        )),
        storage: Storage::Table(table_client, provisioned.table.clone()),
        _keep: Arc::new(()),
    }
}

/// The intake queue on moto, consumed as Lambda's event source mapping does
/// ([`switchboard_aws::sqs_events::poll_queue`]).
pub struct SqsConsumer {
    /// The client.
    pub client: aws_sdk_sqs::Client,
    /// The intake queue.
    pub url: String,
    /// Its dead-letter queue.
    pub dlq_url: String,
    /// How long a received message stays hidden.
    pub visibility: Duration,
    /// The outbox stream, forwarded to the queue before each receive.
    pub pump: Option<Arc<OutboxPump>>,
}

#[async_trait]
impl QueueConsumer for SqsConsumer {
    async fn consume_once(&self, prioritizer: &Prioritizer) -> usize {
        if let Some(pump) = &self.pump {
            pump.pump().await;
        }
        switchboard_aws::sqs_events::poll_queue(
            &self.client,
            &self.url,
            prioritizer,
            Duration::ZERO,
            Some(self.visibility),
        )
        .await
        .expect("consume the intake queue")
    }

    async fn dead_letters(&self) -> usize {
        SqsProbe {
            client: self.client.clone(),
            url: self.dlq_url.clone(),
            pump: None,
        }
        .count()
        .await
    }

    fn with_visibility(&self, visibility: Duration) -> Arc<dyn QueueConsumer> {
        Arc::new(Self {
            client: self.client.clone(),
            url: self.url.clone(),
            dlq_url: self.dlq_url.clone(),
            visibility,
            pump: self.pump.clone(),
        })
    }
}

/// A rule on `bus` that sends every switchboard event to a queue of its own, so that tests
/// read what EventBridge really delivered.
async fn event_tap(
    eventbridge: &aws_sdk_eventbridge::Client,
    sqs: &aws_sdk_sqs::Client,
    bus: &str,
    prefix: &str,
) -> BusTap {
    let url = sqs
        .create_queue()
        .queue_name(format!("{prefix}-event-tap"))
        .send()
        .await
        .expect("tap queue")
        .queue_url
        .expect("tap queue url");
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("tap queue arn")
        .attributes
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .expect("QueueArn");
    let rule = format!("{prefix}-tap");
    eventbridge
        .put_rule()
        .name(&rule)
        .event_bus_name(bus)
        .event_pattern(r#"{"source":["switchboard"]}"#)
        .send()
        .await
        .expect("tap rule");
    eventbridge
        .put_targets()
        .rule(&rule)
        .event_bus_name(bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("tap")
                .arn(arn)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("tap target");
    BusTap {
        client: sqs.clone(),
        url,
        seen: Default::default(),
    }
}

/// What EventBridge delivered to the tap queue (read once, then remembered).
pub struct BusTap {
    client: aws_sdk_sqs::Client,
    url: String,
    seen: tokio::sync::Mutex<Vec<serde_json::Value>>,
}

#[async_trait]
impl EventProbe for BusTap {
    async fn published(&self) -> Vec<serde_json::Value> {
        let mut seen = self.seen.lock().await;
        loop {
            let out = self
                .client
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive from the tap");
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                return seen.clone();
            }
            for m in &messages {
                let event: serde_json::Value =
                    serde_json::from_str(m.body().unwrap_or_default()).expect("event JSON");
                let event = serde_json::json!({
                    "id": event["detail"]["event_id"],
                    "type": event["detail-type"],
                    "source": event["source"],
                    "detail": event["detail"],
                });
                assert_valid_event(&event);
                seen.push(event);
                self.client
                    .delete_message()
                    .queue_url(&self.url)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("delete from the tap");
            }
        }
    }
}

/// Reads an SQS queue empty.
pub struct SqsProbe {
    /// The client.
    pub client: aws_sdk_sqs::Client,
    /// The queue URL.
    pub url: String,
    /// The outbox stream, forwarded to the queue before each look.
    pub pump: Option<Arc<OutboxPump>>,
}

#[async_trait]
impl QueueProbe for SqsProbe {
    async fn count(&self) -> usize {
        if let Some(pump) = &self.pump {
            pump.pump().await;
        }
        let attribute = aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages;
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(attribute.clone())
            .send()
            .await
            .expect("queue attributes");
        out.attributes()
            .and_then(|a| a.get(&attribute))
            .and_then(|n| n.parse().ok())
            .expect("ApproximateNumberOfMessages")
    }

    async fn drain(&self) -> Vec<QueueEntry> {
        if let Some(pump) = &self.pump {
            pump.pump().await;
        }
        let mut out = Vec::new();
        loop {
            let received = self
                .client
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages(10)
                .visibility_timeout(60)
                .wait_time_seconds(0)
                .send()
                .await
                .expect("receive");
            let messages = received.messages();
            if messages.is_empty() {
                return out;
            }
            for m in messages {
                out.push(serde_json::from_str(m.body().unwrap_or_default()).expect("entry"));
                self.client
                    .delete_message()
                    .queue_url(&self.url)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("delete");
            }
        }
    }
}

/// A queue that fails its first `failures` calls, then passes everything to `inner`.
pub struct FlakyQueue {
    inner: Arc<dyn IntakeQueue>,
    failures: AtomicUsize,
    /// Calls made, failed or not.
    pub calls: AtomicUsize,
}

impl FlakyQueue {
    /// Fails the first `failures` calls.
    pub fn new(inner: Arc<dyn IntakeQueue>, failures: usize) -> Self {
        Self {
            inner,
            failures: AtomicUsize::new(failures),
            calls: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl IntakeQueue for FlakyQueue {
    async fn enqueue(&self, entries: &[QueueEntry]) -> Result<(), BackendError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let left = self.failures.load(Ordering::SeqCst);
        if left > 0 {
            self.failures.store(left - 1, Ordering::SeqCst);
            return Err(BackendError::unavailable(
                "enqueue",
                std::io::Error::other("injected queue failure"),
            ));
        }
        self.inner.enqueue(entries).await
    }
}

/// Sends `request` to `app` in-process and returns the status and the body.
pub async fn call(
    app: &axum::Router,
    request: http::Request<axum::body::Body>,
) -> (http::StatusCode, bytes::Bytes) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let response = app
        .clone()
        .oneshot(request)
        .await
        .expect("router is infallible");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, body)
}

/// A WhatsApp webhook POST of `body`, with `signature` as the signature header when given.
pub fn post(
    body: impl Into<bytes::Bytes>,
    signature: Option<&str>,
) -> http::Request<axum::body::Body> {
    post_to(Webhook::Whatsapp, body, signature)
}

/// A POST of `body` to `webhook`, with `signature` as the signature header when given.
pub fn post_to(
    webhook: Webhook,
    body: impl Into<bytes::Bytes>,
    signature: Option<&str>,
) -> http::Request<axum::body::Body> {
    let mut builder = http::Request::post(format!("/webhooks/{webhook}"))
        .header("content-type", "application/json");
    if let Some(sig) = signature {
        builder = builder.header("x-hub-signature-256", sig);
    }
    builder
        .body(axum::body::Body::from(body.into()))
        .expect("request")
}

/// A signed POST of `body` to `webhook`.
pub fn signed_to(
    webhook: Webhook,
    body: impl Into<bytes::Bytes>,
) -> http::Request<axum::body::Body> {
    let body = body.into();
    let sig = signature(&body);
    post_to(webhook, body, Some(&sig))
}

/// A signed WhatsApp webhook POST of `body`.
pub fn signed(body: impl Into<bytes::Bytes>) -> http::Request<axum::body::Body> {
    let body = body.into();
    let sig = signature(&body);
    post(body, Some(&sig))
}

/// Delivers the signed `body` to `webhook` and asserts it was taken (200).
pub async fn deliver(app: &axum::Router, webhook: Webhook, body: Vec<u8>) {
    let (status, answer) = call(app, signed_to(webhook, body)).await;
    assert_eq!(status, 200, "{answer:?}");
}

/// The conversation of the customer known on its channel as `provider_id`.
pub async fn conversation_of(app: &axum::Router, provider_id: &str) -> serde_json::Value {
    get_all(app, "/api/conversations", 50)
        .await
        .into_iter()
        .find(|c| c["customer_provider_id"] == provider_id)
        .unwrap_or_else(|| panic!("no conversation of {provider_id}"))
}

/// A GET of `uri`, parsed as JSON.
pub async fn get_json(app: &axum::Router, uri: &str) -> (http::StatusCode, serde_json::Value) {
    let (status, body) = call(
        app,
        http::Request::get(uri)
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    (status, json)
}

/// Follows `next` cursors from `uri` (which has no query or ends in `?`/`&`-ready query) until the
/// end, with pages of `limit`, and returns every item.
pub async fn get_all(app: &axum::Router, uri: &str, limit: usize) -> Vec<serde_json::Value> {
    let sep = if uri.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page_uri = match &cursor {
            None => format!("{uri}{sep}limit={limit}"),
            Some(c) => format!("{uri}{sep}limit={limit}&cursor={c}"),
        };
        let (status, page) = get_json(app, &page_uri).await;
        assert_eq!(status, 200, "{page_uri}: {page}");
        let got = page["items"].as_array().expect("items").clone();
        assert!(got.len() <= limit, "a page never holds more than the limit");
        items.extend(got);
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
}

/// Every message and event of every conversation, through the read API.
pub async fn all_records(app: &axum::Router) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for conversation in get_all(app, "/api/conversations", 50).await {
        let id = conversation["id"].as_str().expect("id");
        out.extend(get_all(app, &format!("/api/conversations/{id}/messages"), 100).await);
    }
    out
}

/// A store and a queue on real SDK clients whose HTTP client answers every DynamoDB and SQS call
/// with success and keeps nothing: for counting the calls of deliveries too large for moto,
/// whose transactions copy the whole table once per item. Every read finds nothing, so every
/// record is new.
pub fn scripted_counted() -> (Arc<DynamoStore>, Arc<SqsIntakeQueue>, Arc<CallCounter>) {
    use aws_sdk_dynamodb::config::SharedCredentialsProvider;
    let client = aws_smithy_http_client::test_util::infallible_client_fn(|request| {
        let target = request
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.to_str().ok())
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or_default()
            .to_owned();
        let body = match target.as_str() {
            "BatchGetItem" => r#"{"Responses": {}, "UnprocessedKeys": {}}"#,
            "BatchWriteItem" => r#"{"UnprocessedItems": {}}"#,
            "SendMessageBatch" => r#"{"Successful": [], "Failed": []}"#,
            _ => "{}",
        };
        http::Response::builder()
            .status(200)
            .header("content-type", "application/x-amz-json-1.0")
            .body(body)
            .unwrap()
    });
    let sdk = SdkConfig::builder()
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "tests",
        )))
        .http_client(client)
        .endpoint_url("http://127.0.0.1:9")
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .build();
    let counter = Arc::new(CallCounter::default());
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .interceptor(Counting(counter.clone()))
            .build(),
    );
    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&sdk)
            .interceptor(Counting(counter.clone()))
            .build(),
    );
    let store = Arc::new(DynamoStore::new(
        dynamodb,
        "scripted",
        30,
        Arc::new(SystemClock),
    ));
    let queue = Arc::new(SqsIntakeQueue::new(
        sqs,
        "http://127.0.0.1:9/123456789012/scripted.fifo",
    ));
    (store, queue, counter)
}

/// A store whose `keep_delivery` fails its first `failures` calls; everything else goes to
/// `inner`.
pub struct FlakyArchive {
    inner: Arc<dyn MessageStore>,
    failures: AtomicUsize,
}

impl FlakyArchive {
    /// Fails the first `failures` calls of `keep_delivery`.
    pub fn new(inner: Arc<dyn MessageStore>, failures: usize) -> Self {
        Self {
            inner,
            failures: AtomicUsize::new(failures),
        }
    }
}

#[async_trait]
impl MessageStore for FlakyArchive {
    async fn keep_delivery(
        &self,
        delivery: &switchboard_core::ports::RawDelivery,
    ) -> Result<(), BackendError> {
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(BackendError::unavailable(
                "keep_delivery",
                std::io::Error::other("injected archive failure"),
            ));
        }
        self.inner.keep_delivery(delivery).await
    }

    async fn record(
        &self,
        records: &[switchboard_core::model::Record],
    ) -> Result<Vec<QueueEntry>, BackendError> {
        self.inner.record(records).await
    }

    async fn mark_enqueued(
        &self,
        keys: &[switchboard_core::ids::RecordKey],
    ) -> Result<(), BackendError> {
        self.inner.mark_enqueued(keys).await
    }
}

#[async_trait]
impl RecordLookup for FlakyArchive {
    async fn find(
        &self,
        keys: &[switchboard_core::ids::RecordKey],
    ) -> Result<
        HashMap<switchboard_core::ids::RecordKey, switchboard_core::model::Record>,
        BackendError,
    > {
        self.inner.find(keys).await
    }
}

/// The JSON Schema of an event type, `docs/events/<type>.schema.json`, as JSON.
pub fn event_schema_json(kind: &str) -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/events")
        .join(format!("{kind}.schema.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("a schema is JSON")
}

/// `docs/inbound.schema.json`, the body a Standard Webhooks source posts, compiled.
pub fn inbound_schema() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/inbound.schema.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let schema: serde_json::Value = serde_json::from_str(&text).expect("a schema is JSON");
    jsonschema::draft202012::options()
        .build(&schema)
        .expect("a valid schema")
}

/// The JSON Schema of an event type, `docs/events/<type>.schema.json`, compiled once.
pub fn event_schema(kind: &str) -> &'static jsonschema::Validator {
    use std::sync::OnceLock;
    static SCHEMAS: OnceLock<HashMap<&'static str, jsonschema::Validator>> = OnceLock::new();
    let schemas = SCHEMAS.get_or_init(|| {
        switchboard_core::events::TYPES
            .iter()
            .map(|&t| {
                let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../docs/events")
                    .join(format!("{t}.schema.json"));
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let schema: serde_json::Value = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                let validator = jsonschema::draft202012::options()
                    .should_validate_formats(true)
                    .build(&schema)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                (t, validator)
            })
            .collect()
    });
    schemas
        .get(kind)
        .unwrap_or_else(|| panic!("{kind} is not one of switchboard_core::events::TYPES"))
}

/// Panics unless `event` (`{"type", "detail"}`, `detail` as on the bus) is valid against its
/// type's schema: every field documented, none missing, none extra.
pub fn assert_valid_event(event: &serde_json::Value) {
    let kind = event["type"].as_str().expect("an event type");
    let errors: Vec<String> = event_schema(kind)
        .iter_errors(&event["detail"])
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "{kind} does not match docs/events/{kind}.schema.json: {errors:?}\n{event}"
    );
}

/// The field names of an event type's table in `docs/events.md` (the section whose heading
/// names the type), sorted.
pub fn documented_fields(kind: &str) -> Vec<&'static str> {
    let doc: &'static str = include_str!("../../docs/events.md");
    let heading = format!("`{kind}`");
    let start = doc
        .split("\n## ")
        .find(|section| section.lines().next().is_some_and(|h| h.contains(&heading)))
        .unwrap_or_else(|| panic!("docs/events.md has no section for {kind}"));
    let mut fields: Vec<&str> = start
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .collect();
    fields.sort_unstable();
    fields
}

/// A `Write` into a shared buffer, for a log or metrics subscriber under test: clone it into
/// the subscriber's writer and read [`text`](Self::text) afterwards.
#[derive(Clone, Default)]
pub struct Captured(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    /// Everything written so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
