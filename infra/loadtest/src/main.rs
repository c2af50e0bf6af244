//! A bounded load test of `switchboard serve` on the embedded backend (SQLite), end to end over
//! HTTP on loopback, followed by an exactly-once check of everything it sent.
//!
//! # What it measures
//!
//! It starts the real `switchboard serve` binary as a child process, on `127.0.0.1:0` with a fresh
//! temporary data folder, and posts signed WhatsApp deliveries to `POST /webhooks/whatsapp`
//! (`X-Hub-Signature-256`, as Meta signs them). For each concurrency level (`--concurrency`, one
//! keep-alive connection per concurrent client) it sends at most `--deliveries` deliveries, and
//! stops starting new ones after `--max-seconds`. Each delivery carries
//! `--messages-per-delivery` text messages, each with its own `wamid`, from one of `--senders`
//! customers (so there are many conversations). Each request's latency is measured from sending
//! the request to having read the whole response; any answer but 200 (or a connection failure, or
//! no answer within `--request-timeout`) is an error.
//!
//! Per level it prints the accepted deliveries and messages per second (over the level's wall
//! time), the p50, p90, p99 and maximum latency in milliseconds (over every request), and the
//! errors.
//!
//! A 200 from switchboard means the delivery is durable: the raw bytes, the records, the
//! conversation and the queue entries are committed to SQLite in WAL mode with
//! `synchronous=FULL`, over one connection; writes arriving while another commits are committed
//! together (group commit). The numbers therefore mostly measure the commits (and their
//! `fsync`s) of the disk under the data folder, which is taken in the system's temporary
//! directory (`TMPDIR`): point `TMPDIR` at the disk you care about.
//!
//! With `--reminders N` it also times the SLA reminders (issue 19, item 7): the server it
//! starts gets a policy of 20-second targets warned 10 s ahead on a 24/7 clock, and N more
//! customers (of a business number of their own) write once each, spread over
//! `--reminder-spread` seconds while the levels run. Once their instants have passed it reads
//! `GET /api/events` and prints how late each conversation's `sla.warning` and `sla.breached`
//! fired against its instant (the event's `time` against `due_at`, less the lead for a
//! warning): percentiles and a histogram. A missing reminder fails the run.
//!
//! # What it checks
//!
//! After the last level it pages through `GET /api/conversations` and each conversation's
//! `GET /api/conversations/{id}/messages`, and checks that every message of every accepted
//! delivery is there exactly once, in the conversation of its sender, and that nothing else is
//! there (a message of a delivery that failed may be there at most once). It then sends a sample
//! of the accepted deliveries again (`--resend`; half byte for byte, as Meta retries, half with
//! different bytes but the same messages, as a duplicate delivery) and checks that nothing
//! changed. It prints `exactly-once: ok (N messages)`, or explains what is wrong and exits with a
//! non-zero status.
//!
//! # How to run
//!
//! ```sh
//! cargo build --release -p switchboard -p loadtest && target/release/loadtest
//! target/release/loadtest --concurrency 1,8 --deliveries 500 --messages-per-delivery 10
//! target/release/loadtest --concurrency 16 --rate 200 --max-seconds 40 --reminders 500
//! ```
//!
//! The `switchboard` binary is `--bin`, by default `release/switchboard` under
//! `CARGO_TARGET_DIR` when that is set, otherwise the one next to the `loadtest` binary.
//! `--addr` targets a server already running on loopback instead (started with the same app
//! secret, `--secret`); the check then only looks at the conversations of this run, which are
//! told apart by a business phone number id of their own.
//!
//! Everything is bounded: the deliveries per level, the time per level, each request's time, the
//! pages read back. Only loopback addresses are ever contacted. The child server is killed and its
//! data folder removed at the end, on failure, and on Ctrl-C.

use bytes::Bytes;
use clap::Parser;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use switchboard_core::channels::meta::sign;
use switchboard_core::model::Direction;
use switchboard_http::{ConversationView, RecordView};

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "loadtest",
    about = "A bounded load test of `switchboard serve` (embedded backend) with an exactly-once check"
)]
struct Args {
    /// The `switchboard` binary to start (default: `$CARGO_TARGET_DIR/release/switchboard`, or
    /// the one next to this binary).
    #[arg(long, conflicts_with = "addr")]
    bin: Option<PathBuf>,
    /// Hit a server already running at this loopback address instead of starting one.
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// Concurrency levels, one run each: concurrent clients, one keep-alive connection each.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16,64")]
    concurrency: Vec<usize>,
    /// Deliveries per level, at most.
    #[arg(long, default_value_t = 2000)]
    deliveries: u64,
    /// Seconds per level, at most: no delivery is started after that.
    #[arg(long, default_value_t = 30)]
    max_seconds: u64,
    /// Text messages in each delivery, each with its own id.
    #[arg(long, default_value_t = 1)]
    messages_per_delivery: u64,
    /// Distinct customers writing (one conversation each).
    #[arg(long, default_value_t = 300)]
    senders: u64,
    /// Accepted deliveries sent again after the check, to see that nothing changes.
    #[arg(long, default_value_t = 100)]
    resend: usize,
    /// Deliveries per second to pace each level at, across its clients (0: as fast as they
    /// go). With a rate, a level is an open load: what the server does not take in time shows
    /// as latency and as prioritization lag.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Seconds a request may take before it counts as an error.
    #[arg(long, default_value_t = 30)]
    request_timeout: u64,
    /// Conversations whose SLA reminders to time (each a warning and a breach): with N > 0 the
    /// server runs a policy of 20-second targets warned 10 s ahead, and N more customers write
    /// once each, spread over `--reminder-spread` seconds, while the levels run. Needs a
    /// server this run starts.
    #[arg(long, default_value_t = 0, conflicts_with = "addr")]
    reminders: u64,
    /// Seconds over which the reminder conversations start.
    #[arg(long, default_value_t = 20)]
    reminder_spread: u64,
    /// The WhatsApp app secret deliveries are signed with (given to the server it starts).
    #[arg(
        long,
        env = "LOADTEST_APP_SECRET",
        default_value = "loadtest-app-secret"
    )]
    secret: String,
}

impl Args {
    /// Keeps every run bounded.
    fn validate(&self) -> Result<(), String> {
        if self.concurrency.is_empty() || self.concurrency.len() > 16 {
            return Err("--concurrency: from 1 to 16 levels".into());
        }
        if let Some(c) = self.concurrency.iter().find(|c| !(1..=1024).contains(*c)) {
            return Err(format!("--concurrency {c}: each level from 1 to 1024"));
        }
        let ranges = [
            ("--deliveries", self.deliveries, 1, 1_000_000),
            ("--max-seconds", self.max_seconds, 1, 3600),
            (
                "--messages-per-delivery",
                self.messages_per_delivery,
                1,
                100,
            ),
            ("--senders", self.senders, 1, 100_000),
            ("--resend", self.resend as u64, 0, 10_000),
            ("--rate", self.rate, 0, 100_000),
            ("--request-timeout", self.request_timeout, 1, 300),
            ("--reminders", self.reminders, 0, 10_000),
            ("--reminder-spread", self.reminder_spread, 1, 600),
        ];
        for (name, value, low, high) in ranges {
            if !(low..=high).contains(&value) {
                return Err(format!("{name} {value}: from {low} to {high}"));
            }
        }
        if let Some(addr) = self.addr
            && !addr.ip().is_loopback()
        {
            return Err(format!("--addr {addr}: only loopback addresses"));
        }
        if self.secret.is_empty() {
            return Err("--secret: empty".into());
        }
        Ok(())
    }

    fn binary(&self) -> PathBuf {
        if let Some(bin) = &self.bin {
            return bin.clone();
        }
        if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
            return PathBuf::from(target).join("release").join("switchboard");
        }
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("switchboard")))
            .unwrap_or_else(|| PathBuf::from("target/release/switchboard"))
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = args.validate() {
        eprintln!("loadtest: {e}");
        return ExitCode::from(2);
    }
    // Each message's prioritization lag, as the server it starts reports it.
    let lags: Arc<Mutex<Vec<u64>>> = Arc::default();
    let mut server = match args.addr {
        Some(_) => None,
        None => match Spawned::start(
            &args.binary(),
            &args.secret,
            (args.reminders > 0).then_some(REMINDER_POLICY),
            lags.clone(),
        ) {
            Ok(server) => Some(server),
            Err(e) => {
                eprintln!("loadtest: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let addr = match (&server, args.addr) {
        (Some(server), _) => server.addr,
        (None, Some(addr)) => addr,
        (None, None) => unreachable!("a server is started when no --addr is given"),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("loadtest: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let owned = server.as_ref().map(|s| s.child.0.id());
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = run(&args, addr, owned, &lags) => outcome,
            _ = tokio::signal::ctrl_c() => Err("interrupted".to_owned()),
        }
    });
    drop(runtime);
    let mut outcome = outcome;
    if let Some(server) = &mut server {
        if let Some(status) = server.exited() {
            let e = format!(
                "the server exited during the run ({status}); its last lines:\n{}",
                server.log_tail()
            );
            outcome = Err(match outcome {
                Ok(()) => e,
                Err(first) => format!("{first}\n{e}"),
            });
        } else if outcome.is_ok() {
            println!(
                "store: {:.1} MB on disk (SQLite file and WAL)",
                server.data_bytes() as f64 / 1e6
            );
        }
    }
    // Kills the server and removes its data folder.
    drop(server);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadtest: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The whole run against a server at `addr`; `server` is its process id when this process
/// started it (fresh data: the check is strict about anything that is not this run's).
async fn run(
    args: &Args,
    addr: SocketAddr,
    server: Option<u32>,
    lags: &Mutex<Vec<u64>>,
) -> Result<(), String> {
    let owned = server.is_some();
    let plan = Arc::new(Plan::new(args));
    let target = Arc::new(Target::new(addr, Duration::from_secs(args.request_timeout)));
    let sample_size = plan.body(0).len();
    println!(
        "switchboard at http://{addr} ({}); {} message(s) per delivery ({sample_size} bytes), {} senders, up to {} deliveries or {} s per level",
        if owned {
            "started for this run, fresh data folder"
        } else {
            "already running"
        },
        plan.messages_per_delivery,
        plan.senders,
        args.deliveries,
        args.max_seconds,
    );
    println!();
    println!(
        "{:>11} {:>10} {:>6} {:>8} {:>12} {:>10} {:>8} {:>8} {:>8} {:>8}",
        "concurrency",
        "deliveries",
        "errors",
        "seconds",
        "deliveries/s",
        "messages/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms"
    );
    let wave = (args.reminders > 0).then(|| {
        tokio::spawn(reminder_wave(
            target.clone(),
            plan.clone(),
            args.reminders,
            Duration::from_secs(args.reminder_spread),
        ))
    });
    let mut accepted = HashSet::new();
    let mut failed = HashSet::new();
    let mut first = 0;
    for &concurrency in &args.concurrency {
        let level = run_level(
            &target,
            &plan,
            concurrency,
            first,
            args.deliveries,
            Duration::from_secs(args.max_seconds),
            args.rate,
        )
        .await;
        first += args.deliveries;
        level.print(plan.messages_per_delivery);
        for sample in &level.samples {
            if sample.ok {
                accepted.insert(sample.delivery);
            } else {
                failed.insert(sample.delivery);
            }
        }
    }
    println!();
    if owned {
        // The reminder conversations' messages are prioritized too.
        let messages = accepted.len() as u64 * plan.messages_per_delivery + args.reminders;
        report_lag(lags, messages).await;
    }
    if let Some(pid) = server {
        report_cpu(pid, accepted.len());
    }
    if let Some(wave) = wave {
        let started = wave
            .await
            .map_err(|e| format!("the reminder conversations' task failed: {e}"))??;
        report_reminders(&target, &started).await?;
    }

    let found = inventory(&target, &plan, owned).await?;
    let messages = check(&found, &plan, &accepted, &failed)?;
    println!(
        "read back: {} conversations, {messages} messages",
        found.conversations
    );

    let resent = resend(&target, &plan, &accepted, args.resend).await?;
    let again = inventory(&target, &plan, owned).await?;
    let after = check(&again, &plan, &accepted, &failed)?;
    if after != messages || again.conversations != found.conversations {
        return Err(format!(
            "exactly-once: after resending {resent} deliveries there are {after} messages in {} conversations, not {messages} in {}",
            again.conversations, found.conversations
        ));
    }
    println!(
        "resent {resent} accepted deliveries (half byte for byte, half re-encoded): unchanged"
    );
    println!("exactly-once: ok ({messages} messages)");
    Ok(())
}

/// What this run sends: every body is a function of its delivery number, so a delivery can be
/// built again byte for byte.
struct Plan {
    secret: String,
    /// Unique to the run, in every message id.
    run: String,
    /// The business phone number id of the run: all its conversations, and only those, have it.
    account: String,
    senders: u64,
    messages_per_delivery: u64,
    /// Provider time (Unix seconds) of delivery 0; delivery `d` is one second per `d` later.
    first_timestamp: u64,
}

impl Plan {
    fn new(args: &Args) -> Self {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let nonce = (now.as_nanos() as u64) ^ (u64::from(std::process::id()) << 32);
        let planned = args.deliveries * args.concurrency.len() as u64;
        Self {
            secret: args.secret.clone(),
            run: format!("{nonce:016X}"),
            account: format!("9{:014}", nonce % 100_000_000_000_000),
            senders: args.senders,
            messages_per_delivery: args.messages_per_delivery,
            // In the past, in order, and well inside the retention period.
            first_timestamp: now.as_secs().saturating_sub(planned + 3600),
        }
    }

    /// The customer of delivery `d` (a WhatsApp id).
    fn sender(&self, delivery: u64) -> String {
        format!("1555{:07}", delivery % self.senders)
    }

    fn message_id(&self, delivery: u64, index: u64) -> String {
        format!("wamid.LOADTEST.{}.{delivery}.{index}", self.run)
    }

    /// The delivery and index of one of this run's message ids.
    fn parse_message_id(&self, id: &str) -> Option<(u64, u64)> {
        let rest = id
            .strip_prefix("wamid.LOADTEST.")?
            .strip_prefix(self.run.as_str())?
            .strip_prefix('.')?;
        let (delivery, index) = rest.split_once('.')?;
        Some((delivery.parse().ok()?, index.parse().ok()?))
    }

    /// The business phone number id of the conversations whose reminders are timed: apart
    /// from the levels' conversations, so that the exactly-once check does not count them.
    fn reminder_account(&self) -> String {
        format!("{}7", self.account)
    }

    /// The one message of reminder conversation `n`, sent at `timestamp` (Unix seconds, now).
    fn reminder_body(&self, n: u64, timestamp: u64) -> Bytes {
        let from = format!("1666{n:07}");
        let message = json!({
            "from": from,
            "id": format!("wamid.REMINDER.{}.{n}", self.run),
            "timestamp": timestamp.to_string(),
            "text": { "body": "hello, a question about my order" },
            "type": "text",
        });
        whatsapp_delivery(
            &self.reminder_account(),
            &from,
            "Reminder customer",
            vec![message],
        )
    }

    /// The body of delivery `d`, as the WhatsApp Business Cloud API sends it.
    fn body(&self, delivery: u64) -> Bytes {
        let from = self.sender(delivery);
        let timestamp = (self.first_timestamp + delivery).to_string();
        let messages: Vec<Value> = (0..self.messages_per_delivery)
            .map(|index| {
                json!({
                    "from": from,
                    "id": self.message_id(delivery, index),
                    "timestamp": timestamp,
                    "text": { "body": format!("load test message {delivery}.{index}") },
                    "type": "text",
                })
            })
            .collect();
        let name = format!("Load test customer {}", delivery % self.senders);
        whatsapp_delivery(&self.account, &from, &name, messages)
    }
}

/// A delivery of `messages` from customer `from` (shown as `name`) to the business number
/// `account`, as the WhatsApp Business Cloud API sends it.
fn whatsapp_delivery(account: &str, from: &str, name: &str, messages: Vec<Value>) -> Bytes {
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "102290129340398",
            "changes": [{
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {
                        "display_phone_number": "15550000000",
                        "phone_number_id": account,
                    },
                    "contacts": [{ "profile": { "name": name }, "wa_id": from }],
                    "messages": messages,
                },
                "field": "messages",
            }],
        }],
    });
    Bytes::from(serde_json::to_vec(&body).expect("a JSON value serializes"))
}

/// The server over HTTP/1.1 with pooled keep-alive connections.
struct Target {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    timeout: Duration,
}

impl Target {
    fn new(addr: SocketAddr, timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(usize::MAX)
            .build(connector);
        Self {
            client,
            base: format!("http://{addr}"),
            timeout,
        }
    }

    /// One request; the status and the whole body, or why there is none.
    async fn send(&self, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), String> {
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| switchboard_core::errors::chain(&e))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| switchboard_core::errors::chain(&e))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("no answer within {} s", self.timeout.as_secs()))?
    }

    fn delivery(&self, body: Bytes, secret: &str) -> Request<Full<Bytes>> {
        Request::post(format!("{}/webhooks/whatsapp", self.base))
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-hub-signature-256", sign(secret, &body))
            .body(Full::new(body))
            .expect("a valid request")
    }

    async fn get_json(&self, path: &str) -> Result<Value, String> {
        let request = Request::get(format!("{}{path}", self.base))
            .body(Full::new(Bytes::new()))
            .map_err(|e| format!("GET {path}: {e}"))?;
        let (status, body) = self
            .send(request)
            .await
            .map_err(|e| format!("GET {path}: {e}"))?;
        if status != StatusCode::OK {
            return Err(format!(
                "GET {path}: {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        serde_json::from_slice(&body).map_err(|e| format!("GET {path}: not JSON: {e}"))
    }
}

/// One delivery's request.
struct Sample {
    delivery: u64,
    micros: u64,
    ok: bool,
}

/// One concurrency level.
struct Level {
    concurrency: usize,
    elapsed: Duration,
    samples: Vec<Sample>,
    /// Why requests failed, and how often.
    errors: BTreeMap<String, u64>,
    /// Deliveries left unsent because the time ran out.
    unsent: u64,
}

/// Sends deliveries `first..first + count` with `concurrency` clients, starting none after
/// `max_time`.
async fn run_level(
    target: &Arc<Target>,
    plan: &Arc<Plan>,
    concurrency: usize,
    first: u64,
    count: u64,
    max_time: Duration,
    rate: u64,
) -> Level {
    let next = Arc::new(AtomicU64::new(first));
    let end = first + count;
    let start = Instant::now();
    let deadline = start + max_time;
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (target, plan, next) = (target.clone(), plan.clone(), next.clone());
            tokio::spawn(async move {
                let mut samples = Vec::new();
                let mut errors: BTreeMap<String, u64> = BTreeMap::new();
                while Instant::now() < deadline {
                    let delivery = next.fetch_add(1, Ordering::Relaxed);
                    if delivery >= end {
                        break;
                    }
                    if rate > 0 {
                        let due = start
                            + Duration::from_secs_f64((delivery - first) as f64 / rate as f64);
                        tokio::time::sleep_until(due.into()).await;
                    }
                    let request = target.delivery(plan.body(delivery), &plan.secret);
                    let sent = Instant::now();
                    let result = target.send(request).await;
                    let micros = sent.elapsed().as_micros() as u64;
                    let ok = match result {
                        Ok((StatusCode::OK, _)) => true,
                        Ok((status, _)) => {
                            *errors.entry(format!("HTTP {status}")).or_default() += 1;
                            false
                        }
                        Err(e) => {
                            *errors.entry(e).or_default() += 1;
                            false
                        }
                    };
                    samples.push(Sample {
                        delivery,
                        micros,
                        ok,
                    });
                }
                (samples, errors)
            })
        })
        .collect();
    let mut level = Level {
        concurrency,
        elapsed: Duration::ZERO,
        samples: Vec::new(),
        errors: BTreeMap::new(),
        unsent: 0,
    };
    for worker in workers {
        match worker.await {
            Ok((samples, errors)) => {
                level.samples.extend(samples);
                for (e, n) in errors {
                    *level.errors.entry(e).or_default() += n;
                }
            }
            Err(e) => *level.errors.entry(format!("client task: {e}")).or_default() += 1,
        }
    }
    level.elapsed = start.elapsed();
    level.unsent = count - level.samples.len() as u64;
    level
}

impl Level {
    fn print(&self, messages_per_delivery: u64) {
        let ok = self.samples.iter().filter(|s| s.ok).count() as u64;
        let errors = self.samples.len() as u64 - ok;
        let seconds = self.elapsed.as_secs_f64();
        let mut micros: Vec<u64> = self.samples.iter().map(|s| s.micros).collect();
        micros.sort_unstable();
        let ms = |p: f64| percentile(&micros, p) as f64 / 1000.0;
        println!(
            "{:>11} {:>10} {:>6} {:>8.2} {:>12.1} {:>10.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
            self.concurrency,
            self.samples.len(),
            errors,
            seconds,
            ok as f64 / seconds,
            (ok * messages_per_delivery) as f64 / seconds,
            ms(50.0),
            ms(90.0),
            ms(99.0),
            ms(100.0),
        );
        if self.unsent > 0 {
            println!(
                "{:>11} time limit reached: {} deliveries not sent",
                "", self.unsent
            );
        }
        for (e, n) in &self.errors {
            println!("{:>11} {n} × {e}", "");
        }
    }
}

/// Waits (up to two minutes) until every accepted message has been prioritized, then prints
/// the prioritization lag: from the entry's enqueueing (in the transaction that answered
/// 200) to its batch being taken, per message.
async fn report_lag(lags: &Mutex<Vec<u64>>, messages: u64) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let seen = lags.lock().unwrap_or_else(|e| e.into_inner()).len() as u64;
        if seen >= messages || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut lags = lags.lock().unwrap_or_else(|e| e.into_inner()).clone();
    lags.sort_unstable();
    println!(
        "prioritization lag over {} of {messages} messages: p50 {} ms, p99 {} ms, max {} ms",
        lags.len(),
        percentile(&lags, 50.0),
        percentile(&lags, 99.0),
        percentile(&lags, 100.0),
    );
}

/// Prints the CPU time the server's threads have used so far (its start, every level and the
/// prioritization of what they accepted), per accepted delivery, by kind of thread: a figure
/// that depends far less on what else the machine runs than the throughput does. Linux only
/// (`/proc`); prints nothing elsewhere.
fn report_cpu(pid: u32, deliveries: usize) {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return;
    };
    // utime and stime are in clock ticks, which `/proc` reports at 100 a second.
    const TICK_MICROS: f64 = 10_000.0;
    let mut by_kind: BTreeMap<&'static str, u64> = BTreeMap::new();
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let name = head.split_once(" (").map_or("", |(_, n)| n);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
            .sum();
        let kind = match name {
            "switchboard-sto" => "store writes",
            "switchboard-rea" => "store reads",
            n if n.starts_with("tokio-rt") => "async runtime",
            _ => "other",
        };
        *by_kind.entry(kind).or_default() += ticks;
    }
    let per = |ticks: u64| ticks as f64 * TICK_MICROS / deliveries.max(1) as f64;
    let total: u64 = by_kind.values().sum();
    let parts: Vec<String> = by_kind
        .iter()
        .map(|(kind, &ticks)| format!("{kind} {:.0}", per(ticks)))
        .collect();
    println!(
        "server CPU per accepted delivery, intake and prioritization: {:.0} µs ({})",
        per(total),
        parts.join(", ")
    );
}

/// The SLA policy of a `--reminders` run: every wait is due 20 s after it starts and warned
/// 10 s before, on a 24/7 clock, so that both reminders of every timed conversation fall inside
/// the run.
const REMINDER_POLICY: &str = r#"
[warning]
lead = "10s"

[targets.default]
P1 = { first = "20s", next = "20s" }
P2 = { first = "20s", next = "20s" }
P3 = { first = "20s", next = "20s" }
P4 = { first = "20s", next = "20s" }

[window]
length = "24h"
warn_before = "2h"
channels = ["whatsapp"]

[calendars.always]
clock = "always"

[teams]
default = "always"
"#;

/// The warning's lead in [`REMINDER_POLICY`], in milliseconds.
const REMINDER_LEAD_MS: i64 = 10_000;

/// Sends the one message of each of `count` reminder conversations, evenly over `spread`,
/// each stamped with the second it is sent. Returns the instant the first was sent (reminders
/// due before it are not this wave's) and how many were accepted.
async fn reminder_wave(
    target: Arc<Target>,
    plan: Arc<Plan>,
    count: u64,
    spread: Duration,
) -> Result<(SystemTime, u64), String> {
    let start = Instant::now();
    let began = SystemTime::now();
    let mut accepted = 0;
    for n in 0..count {
        let due = start + spread.mul_f64(n as f64 / count as f64);
        tokio::time::sleep_until(due.into()).await;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let request = target.delivery(plan.reminder_body(n, now), &plan.secret);
        match target.send(request).await {
            Ok((StatusCode::OK, _)) => accepted += 1,
            Ok((status, body)) => {
                return Err(format!(
                    "reminder conversation {n}: HTTP {status}: {}",
                    String::from_utf8_lossy(&body)
                ));
            }
            Err(e) => return Err(format!("reminder conversation {n}: {e}")),
        }
    }
    Ok((began, accepted))
}

/// Waits for the warning and the breach of every reminder conversation, then prints how late
/// each fired against its instant (the event's `time` against `due_at`, and against `due_at`
/// less the lead for a warning), as a histogram and percentiles. Fails when a reminder is
/// missing after its instant has long passed.
async fn report_reminders(target: &Target, started: &(SystemTime, u64)) -> Result<(), String> {
    let (began, conversations) = *started;
    let began: chrono::DateTime<chrono::Utc> = began.into();
    let expected = conversations as usize;
    let deadline = Instant::now() + Duration::from_secs(120);
    let (warnings, breaches) = loop {
        let warnings = reminder_lateness(target, "sla.warning", REMINDER_LEAD_MS, began).await?;
        let breaches = reminder_lateness(target, "sla.breached", 0, began).await?;
        if (warnings.len() >= expected && breaches.len() >= expected) || Instant::now() > deadline {
            break (warnings, breaches);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let mut all: Vec<i64> = warnings
        .values()
        .chain(breaches.values())
        .copied()
        .collect();
    all.sort_unstable();
    let early = all.iter().filter(|ms| **ms < 0).count();
    let late: Vec<u64> = all.iter().map(|ms| (*ms).max(0) as u64).collect();
    println!(
        "reminders: {} warnings and {} breaches of {conversations} conversations fired; lateness p50 {} ms, p90 {} ms, p99 {} ms, max {} ms{}",
        warnings.len(),
        breaches.len(),
        percentile(&late, 50.0),
        percentile(&late, 90.0),
        percentile(&late, 99.0),
        percentile(&late, 100.0),
        if early > 0 {
            format!(" ({early} fired before their instant)")
        } else {
            String::new()
        }
    );
    let buckets: [(u64, &str); 6] = [
        (100, "< 100 ms"),
        (250, "100-250 ms"),
        (500, "250-500 ms"),
        (1000, "0.5-1 s"),
        (2000, "1-2 s"),
        (u64::MAX, ">= 2 s"),
    ];
    let mut low = 0;
    for (high, label) in buckets {
        let n = late.iter().filter(|ms| (low..high).contains(*ms)).count();
        println!("  {label:>10}: {n}");
        low = high;
    }
    if warnings.len() < expected || breaches.len() < expected {
        return Err(format!(
            "reminders: {} warnings and {} breaches for {expected} conversations",
            warnings.len(),
            breaches.len()
        ));
    }
    Ok(())
}

/// For each conversation with an event of `kind` due at or after `began`: how late (ms) its
/// first such event was, against `due_at` less `lead_ms`.
async fn reminder_lateness(
    target: &Target,
    kind: &str,
    lead_ms: i64,
    began: chrono::DateTime<chrono::Utc>,
) -> Result<HashMap<String, i64>, String> {
    let mut first: HashMap<String, i64> = HashMap::new();
    for event in pages(target, &format!("/api/events?type={kind}")).await? {
        let detail = &event["detail"];
        let time = |v: &Value| {
            v.as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&chrono::Utc))
        };
        let (Some(fired), Some(due), Some(conversation)) = (
            time(&event["time"]),
            time(&detail["due_at"]),
            detail["conversation_id"].as_str(),
        ) else {
            return Err(format!(
                "a {kind} event without its time, due_at or conversation: {event}"
            ));
        };
        if due < began {
            continue;
        }
        let late = (fired - due).num_milliseconds() + lead_ms;
        first.entry(conversation.to_owned()).or_insert(late);
    }
    Ok(first)
}

/// Nearest-rank percentile of sorted values (0 for none).
fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// What the read API holds for this run.
struct Inventory {
    /// This run's conversations.
    conversations: usize,
    /// How often each message id was listed.
    counts: HashMap<String, u64>,
    /// Anything listed that this run did not send, or in the wrong place.
    anomalies: Vec<String>,
}

/// Pages through every conversation and every message of this run's conversations. `strict`:
/// the server's data is this run's alone, so any other conversation is an anomaly.
async fn inventory(target: &Target, plan: &Plan, strict: bool) -> Result<Inventory, String> {
    let mut found = Inventory {
        conversations: 0,
        counts: HashMap::new(),
        anomalies: Vec::new(),
    };
    let conversations = pages(target, "/api/conversations").await?;
    for item in conversations {
        let conversation: ConversationView = serde_json::from_value(item)
            .map_err(|e| format!("a conversation the API listed does not parse: {e}"))?;
        if conversation.account_id.as_str() != plan.account {
            if strict && conversation.account_id.as_str() != plan.reminder_account() {
                found.anomalies.push(format!(
                    "conversation {} of account {}, not this run's",
                    conversation.id.as_str(),
                    conversation.account_id
                ));
            }
            continue;
        }
        found.conversations += 1;
        let id = conversation.id.as_str();
        let path = format!("/api/conversations/{}/messages", encode(id));
        for item in pages(target, &path).await? {
            let record: RecordView = serde_json::from_value(item)
                .map_err(|e| format!("a record the API listed does not parse: {e}"))?;
            let message_id = record.provider_message_id.as_str().to_owned();
            let sender_ok = plan
                .parse_message_id(&message_id)
                .is_some_and(|(d, _)| plan.sender(d) == conversation.customer_provider_id.as_str());
            if record.record != "message"
                || record.kind != "text"
                || record.direction != Direction::Inbound
                || record.event.is_some()
                || record.conversation_id.as_str() != id
                || !sender_ok
            {
                found.anomalies.push(format!(
                    "conversation {id}: unexpected {} {} `{message_id}`",
                    record.record, record.kind
                ));
            }
            *found.counts.entry(message_id).or_default() += 1;
        }
    }
    Ok(found)
}

/// Every item of a paginated listing, following `next` (bounded in pages, and refusing a cursor
/// that comes back).
async fn pages(target: &Target, path: &str) -> Result<Vec<Value>, String> {
    const MAX_PAGES: usize = 100_000;
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let mut seen = HashSet::new();
    for _ in 0..MAX_PAGES {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut url = format!("{path}{separator}limit=500");
        if let Some(c) = &cursor {
            url.push_str("&cursor=");
            url.push_str(&encode(c));
        }
        let mut page = target.get_json(&url).await?;
        match page.get_mut("items").map(Value::take) {
            Some(Value::Array(page_items)) => items.extend(page_items),
            _ => return Err(format!("GET {url}: no `items` array")),
        }
        cursor = match page.get("next") {
            None | Some(Value::Null) => return Ok(items),
            Some(Value::String(next)) if seen.insert(next.clone()) => Some(next.clone()),
            Some(other) => return Err(format!("GET {url}: bad or repeated `next`: {other}")),
        };
    }
    Err(format!("{path}: more than {MAX_PAGES} pages"))
}

/// Percent-encodes everything but the unreserved characters (RFC 3986).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Every message of an accepted delivery listed exactly once, a message of a failed delivery at
/// most once, nothing else. Answers the number of messages listed.
fn check(
    found: &Inventory,
    plan: &Plan,
    accepted: &HashSet<u64>,
    failed: &HashSet<u64>,
) -> Result<u64, String> {
    let mut problems = found.anomalies.clone();
    let mut missing = 0u64;
    let mut doubled = 0u64;
    let mut sorted: Vec<u64> = accepted.iter().copied().collect();
    sorted.sort_unstable();
    for &delivery in &sorted {
        for index in 0..plan.messages_per_delivery {
            let id = plan.message_id(delivery, index);
            match found.counts.get(&id).copied().unwrap_or(0) {
                1 => {}
                0 => {
                    missing += 1;
                    if missing <= 5 {
                        problems.push(format!("`{id}` (accepted) is missing"));
                    }
                }
                n => {
                    doubled += 1;
                    if doubled <= 5 {
                        problems.push(format!("`{id}` is listed {n} times"));
                    }
                }
            }
        }
    }
    for (id, &n) in &found.counts {
        match plan.parse_message_id(id) {
            Some((d, index))
                if index < plan.messages_per_delivery
                    && (accepted.contains(&d) || failed.contains(&d)) =>
            {
                if n > 1 && !accepted.contains(&d) {
                    doubled += 1;
                    problems.push(format!("`{id}` (of a failed delivery) is listed {n} times"));
                }
            }
            _ => problems.push(format!("`{id}` was never sent")),
        }
    }
    if problems.is_empty() {
        return Ok(found.counts.values().sum());
    }
    let shown = problems.len().min(20);
    Err(format!(
        "exactly-once: FAILED ({missing} missing, {doubled} listed more than once, {} problems):\n  {}{}",
        problems.len(),
        problems[..shown].join("\n  "),
        if problems.len() > shown {
            "\n  …"
        } else {
            ""
        }
    ))
}

/// Sends `n` accepted deliveries again, spread over the run: even ones byte for byte (a retry),
/// odd ones with a trailing newline (a new delivery with the same messages). Each must be 200.
async fn resend(
    target: &Target,
    plan: &Plan,
    accepted: &HashSet<u64>,
    n: usize,
) -> Result<usize, String> {
    let mut sorted: Vec<u64> = accepted.iter().copied().collect();
    sorted.sort_unstable();
    let n = n.min(sorted.len());
    for i in 0..n {
        let delivery = sorted[i * sorted.len() / n];
        let mut body = plan.body(delivery).to_vec();
        if i % 2 == 1 {
            body.push(b'\n');
        }
        let request = target.delivery(Bytes::from(body), &plan.secret);
        match target.send(request).await {
            Ok((StatusCode::OK, _)) => {}
            Ok((status, body)) => {
                return Err(format!(
                    "resending delivery {delivery}: {status}: {}",
                    String::from_utf8_lossy(&body)
                ));
            }
            Err(e) => return Err(format!("resending delivery {delivery}: {e}")),
        }
    }
    Ok(n)
}

/// A `switchboard serve` started for the run, on a fresh data folder; dropping it kills the
/// process and removes the folder.
struct Spawned {
    // Declared (and so dropped) before the folder it writes to.
    child: KillOnDrop,
    data: RemoveOnDrop,
    addr: SocketAddr,
    log: Arc<Mutex<VecDeque<String>>>,
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Lines of the server's log kept to explain a failure.
const LOG_TAIL: usize = 40;

impl Spawned {
    fn start(
        bin: &Path,
        secret: &str,
        policy: Option<&str>,
        lags: Arc<Mutex<Vec<u64>>>,
    ) -> Result<Self, String> {
        if !bin.is_file() {
            return Err(format!(
                "no switchboard binary at {} (build it with `cargo build --release -p switchboard`, or pass --bin)",
                bin.display()
            ));
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!(
            "switchboard-loadtest-{}-{nanos:09}",
            std::process::id()
        ));
        std::fs::create_dir(&dir)
            .map_err(|e| format!("cannot create a data folder {}: {e}", dir.display()))?;
        let data = RemoveOnDrop(dir);

        let mut command = Command::new(bin);
        // Only this run's settings: an inherited secret ARN or AWS backend would change the test.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("SWITCHBOARD_") {
                command.env_remove(name);
            }
        }
        command
            .arg("serve")
            // The word lists alone: this measures the intake and the queue, not the model.
            .args([
                "--no-model",
                "--addr",
                "127.0.0.1:0",
                "--backend",
                "embedded",
                "--data",
            ])
            .arg(&data.0);
        if let Some(policy) = policy {
            let file = data.0.join("sla-policy.toml");
            std::fs::write(&file, policy)
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
            command.arg("--policy").arg(file);
        }
        let child = command
            .env("SWITCHBOARD_WHATSAPP_APP_SECRETS", secret)
            .env("SWITCHBOARD_WHATSAPP_VERIFY_TOKEN", "loadtest-verify-token")
            // The metrics events, for the prioritization lag of each message.
            .env("RUST_LOG", "info,switchboard::metrics=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let mut child = KillOnDrop(child);
        let stderr = child.0.stderr.take().expect("stderr is piped");

        let log = Arc::new(Mutex::new(VecDeque::with_capacity(LOG_TAIL)));
        let (tx, rx) = std::sync::mpsc::channel();
        let tail = log.clone();
        std::thread::spawn(move || {
            // Reads to the end, so that the server never blocks on a full pipe.
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(lag) = line
                    .split("prioritization_lag_ms=")
                    .nth(1)
                    .and_then(|v| v.split_whitespace().next())
                    .and_then(|v| v.parse::<u64>().ok())
                {
                    lags.lock().unwrap_or_else(|e| e.into_inner()).push(lag);
                    continue;
                }
                if line.contains("switchboard::metrics") {
                    continue;
                }
                if let Some(rest) = line.split("serving on http://").nth(1)
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                }
                let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
                if tail.len() == LOG_TAIL {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
        });
        let mut server = Self {
            child,
            data,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => {
                server.addr = addr
                    .parse()
                    .map_err(|e| format!("the server printed a bad address `{addr}`: {e}"))?;
                if !server.addr.ip().is_loopback() {
                    return Err(format!("the server listens on {addr}, not on loopback"));
                }
                Ok(server)
            }
            Err(_) => {
                // Give the reader a moment to collect the last lines of a failed start.
                std::thread::sleep(Duration::from_millis(200));
                let status = server
                    .exited()
                    .map_or_else(|| "still running".to_owned(), |s| s.to_string());
                Err(format!(
                    "switchboard serve did not print its address ({status}); its last lines:\n{}",
                    server.log_tail()
                ))
            }
        }
    }

    /// How the process ended, if it did.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.0.try_wait().ok().flatten()
    }

    fn log_tail(&self) -> String {
        let tail = self.log.lock().unwrap_or_else(|e| e.into_inner());
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Bytes in the data folder.
    fn data_bytes(&self) -> u64 {
        std::fs::read_dir(&self.data.0)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter_map(|e| e.metadata().ok())
                    .filter(|m| m.is_file())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(messages_per_delivery: u64) -> Plan {
        let args = Args::parse_from([
            "loadtest",
            "--messages-per-delivery",
            &messages_per_delivery.to_string(),
            "--senders",
            "7",
        ]);
        Plan::new(&args)
    }

    #[test]
    fn bodies_are_reproducible_and_carry_distinct_ids() {
        let plan = plan(3);
        assert_eq!(plan.body(42), plan.body(42));
        let body: Value = serde_json::from_slice(&plan.body(42)).unwrap();
        let value = &body["entry"][0]["changes"][0]["value"];
        assert_eq!(value["metadata"]["phone_number_id"], plan.account.as_str());
        assert_eq!(value["contacts"][0]["wa_id"], plan.sender(42));
        let ids: Vec<&str> = value["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), 3);
        for (index, id) in ids.iter().enumerate() {
            assert_eq!(plan.parse_message_id(id), Some((42, index as u64)));
        }
        assert_eq!(plan.sender(42), plan.sender(49));
        assert_ne!(plan.sender(42), plan.sender(43));
        assert_eq!(plan.parse_message_id("wamid.LOADTEST.0.1.2"), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 50.0), 50);
        assert_eq!(percentile(&values, 99.0), 99);
        assert_eq!(percentile(&values, 100.0), 100);
        assert_eq!(percentile(&[7], 50.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
    }

    #[test]
    fn the_check_wants_each_accepted_message_once_and_nothing_else() {
        let plan = plan(2);
        let accepted: HashSet<u64> = [0, 1].into();
        let failed: HashSet<u64> = [2].into();
        let mut counts: HashMap<String, u64> = (0..2)
            .flat_map(|d| (0..2).map(move |i| (d, i)))
            .map(|(d, i)| (plan.message_id(d, i), 1))
            .collect();
        let found = |counts: &HashMap<String, u64>| Inventory {
            conversations: 2,
            counts: counts.clone(),
            anomalies: Vec::new(),
        };
        assert_eq!(check(&found(&counts), &plan, &accepted, &failed), Ok(4));
        // A message of the failed delivery may be there, once.
        counts.insert(plan.message_id(2, 0), 1);
        assert_eq!(check(&found(&counts), &plan, &accepted, &failed), Ok(5));
        counts.insert(plan.message_id(2, 0), 2);
        assert!(check(&found(&counts), &plan, &accepted, &failed).is_err());
        counts.insert(plan.message_id(2, 0), 1);
        counts.insert(plan.message_id(1, 1), 2);
        assert!(check(&found(&counts), &plan, &accepted, &failed).is_err());
        counts.insert(plan.message_id(1, 1), 0);
        assert!(check(&found(&counts), &plan, &accepted, &failed).is_err());
        counts.insert(plan.message_id(1, 1), 1);
        counts.insert("wamid.other".into(), 1);
        assert!(check(&found(&counts), &plan, &accepted, &failed).is_err());
    }

    #[test]
    fn cursors_are_percent_encoded() {
        assert_eq!(encode("aZ09-._~"), "aZ09-._~");
        assert_eq!(encode("a+b/c=&d"), "a%2Bb%2Fc%3D%26d");
    }

    #[test]
    fn only_loopback_addresses_are_accepted() {
        let args = Args::parse_from(["loadtest", "--addr", "10.0.0.1:3000"]);
        assert!(args.validate().is_err());
        let args = Args::parse_from(["loadtest", "--addr", "127.0.0.1:3000"]);
        assert!(args.validate().is_ok());
        let args = Args::parse_from(["loadtest", "--concurrency", "0"]);
        assert!(args.validate().is_err());
    }
}
