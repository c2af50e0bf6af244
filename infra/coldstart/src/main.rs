//! `coldstart`: cold start and peak memory of the real function binaries, against the smallest
//! Rust Lambda function (`coldstart-hello`), measured in the same run on the same machine.
//!
//! # What is measured
//!
//! Each binary runs as Lambda runs a `provided.al2023` function: a fresh process with a clean
//! environment (only `AWS_LAMBDA_RUNTIME_API`, `AWS_LAMBDA_FUNCTION_NAME`,
//! `AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256`, `AWS_LAMBDA_FUNCTION_VERSION=$LATEST`,
//! `AWS_LAMBDA_LOG_FORMAT=JSON`, `AWS_REGION` and `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`, static test credentials and
//! the `SWITCHBOARD_*` settings, with the plain app secret `dev-secret` and verify token
//! `dev-token`), polling a Lambda Runtime API that the harness serves on `127.0.0.1`. Per run:
//!
//! * **cold start**: from just before the spawn to the first `POST …/invocation/{id}/response`
//!   received: process start, the function's initialisation (settings, AWS clients) and its first
//!   invocation. A webhook function's first invocation is the whole intake path against the
//!   emulator (three DynamoDB calls in two rounds to moto, a Python server), so this figure
//!   includes the emulator's latency, which the baseline, doing no I/O, does not have;
//! * **init**: from the spawn to the first `GET …/invocation/next`, the initialisation alone
//!   (Lambda's `Init Duration`), with no network call in it;
//! * **peak RSS**: `VmHWM` of the process, read after its response and before it is killed
//!   (MiB = 2^20 bytes, the unit of Lambda's `Max Memory Used`). `ru_maxrss` from `wait4` is
//!   printed too (`maxrss`), but it is a floor set by the harness, not the function's figure: see
//!   the `process` module.
//!
//! The response must be a success (`statusCode` 200 for the webhook functions): a failed
//! invocation is reported with the function's output and makes the run exit with status 1; that
//! binary's later runs are skipped. Every wait is bounded (`--timeout`, 30 s by default).
//!
//! With `--event handshake` the webhook functions get Meta's subscription handshake instead
//! (`infra/events/whatsapp-verify.json`, sent to each one's route): a `GET` answered from the
//! settings with no AWS call, so that the cold start compares like with like against the
//! baseline. The default events (`--event post`): `infra/events/whatsapp-post.json` for
//! `webhook-whatsapp`; for `webhook-facebook`
//! and `webhook-instagram` the same API Gateway event carrying a small text message to their
//! route, signed here; for `webhook-standard` a message of the inbound schema signed here with
//! Standard Webhooks at the time of the run (its `GET` is answered 400: it has no handshake);
//! a small JSON object for any other binary. Each run of a webhook function
//! gets its own freshly provisioned table and queues (`switchboard_aws::resources::provision`),
//! so every run stores and enqueues the message anew rather than finding a duplicate.
//!
//! Runs are interleaved (one run of each binary per round) so that a drift of the machine affects
//! them alike, after `--warmup` unmeasured rounds (default 1: the binaries into the page cache).
//! The table gives, per binary, median and 90th percentile (nearest rank) of the cold start, of
//! init and of the peak RSS, the median first invocation alone (`invoke`, cold start − init), and
//! the ratio of each median to `coldstart-hello`'s; the issue's target is a cold start within 3x
//! of it. `--json` gives the same figures and every sample. On a machine busy with other work the
//! spread grows: compare figures of one run, not of two.
//!
//! # Running it
//!
//! Linux only (`/proc`, `wait4`). With moto from `./infra/dev-setup.sh`:
//!
//! ```sh
//! cargo build --release -p webhook-whatsapp -p webhook-facebook -p webhook-instagram \
//!   -p webhook-standard -p intake-forwarder -p prioritizer -p sla-reminder -p agent-api \
//!   -p coldstart
//! cargo run --release -p coldstart -- --runs 20
//! cargo run --release -p coldstart -- --runs 20 --json > coldstart.json
//! ```
//!
//! The binaries are taken from `$CARGO_TARGET_DIR/release/` (or the `release` folder next to the
//! harness's own build folder); `--bin PATH` (repeated) measures other ones, the one named
//! `coldstart-hello` being the baseline. moto is `--moto PATH`, else `SWITCHBOARD_MOTO_SERVER`,
//! else `moto_server` on `PATH`, else the one `./infra/dev-setup.sh` installs; the harness starts
//! it on a free loopback port and stops it at the end. `--endpoint URL` uses an emulator already
//! running on loopback instead.
//!
//! `--python PATH` adds `python-boto3`: the same WhatsApp intake written in Python with boto3
//! (`infra/coldstart/python/intake.py`: the secret at init, the signature, one conditional put
//! per message, one batched send to the FIFO queue), run by `awslambdaric` under the
//! interpreter at PATH, as Lambda's Python runtime runs a function, and measured like the
//! others (same events, a fresh stack per run):
//!
//! ```sh
//! cargo run --release -p coldstart -- --runs 20 --bin target/release/webhook-whatsapp \
//!   --bin target/release/coldstart-hello --python ~/.cache/switchboard/venv/bin/python3
//! ```
//!
//! These are local figures: a laptop or CI machine, not a Lambda sandbox (whose CPU share at
//! 256 MB is a fraction of a core), on the host architecture rather than arm64. The ratios of init
//! and of memory to the baseline are what carries over, not the milliseconds; the cold-start
//! ratio is as much a measure of the emulator as of the function.

#[cfg(target_os = "linux")]
mod events;
#[cfg(target_os = "linux")]
mod process;
#[cfg(target_os = "linux")]
mod report;
#[cfg(target_os = "linux")]
mod runtime_api;

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    harness::main()
}

#[cfg(not(target_os = "linux"))]
fn main() -> std::process::ExitCode {
    eprintln!("coldstart: Linux only (it reads /proc and uses wait4)");
    std::process::ExitCode::from(2)
}

#[cfg(target_os = "linux")]
mod harness {
    use clap::Parser;
    use std::ffi::OsString;
    use std::net::{Ipv4Addr, TcpListener, TcpStream};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, ExitCode, Stdio};
    use std::time::Duration;

    use aws_config::Region;
    use aws_sdk_dynamodb::config::Credentials;
    use switchboard_aws::resources::{
        ResourceNames, provision, provision_event_bus, provision_reminders,
    };
    use switchboard_core::config;
    use switchboard_core::model::Webhook;

    use crate::events::{self, APP_SECRET, Kind, Scenario, VERIFY_TOKEN};
    use crate::process::Process;
    use crate::report::{self, Results, Sample};
    use crate::runtime_api::{Invocation, Report, RuntimeApi};

    const REGION: &str = "us-east-1";
    const BASELINE: &str = "coldstart-hello";
    /// The functions measured by default: every webhook of the registry, then the others.
    const OTHER_BINS: [&str; 4] = [
        "intake-forwarder",
        "prioritizer",
        "sla-reminder",
        "agent-api",
    ];

    fn default_bins() -> Vec<&'static str> {
        switchboard_core::channels::REGISTRY
            .iter()
            .map(|m| m.function())
            .chain(OTHER_BINS)
            .chain([BASELINE])
            .collect()
    }

    fn build_hint() -> String {
        let packages: Vec<String> = default_bins()
            .into_iter()
            .filter(|b| *b != BASELINE)
            .chain(["coldstart"])
            .map(|b| format!("-p {b}"))
            .collect();
        format!("cargo build --release {}", packages.join(" "))
    }

    /// Cold start and peak memory of Lambda function binaries, against a hello-world baseline.
    #[derive(Debug, Parser)]
    #[command(name = "coldstart")]
    struct Cli {
        /// A function binary to measure (repeat for several). Default: every function (each
        /// webhook of the registry, intake-forwarder, prioritizer, sla-reminder, agent-api) and
        /// coldstart-hello,
        /// from the release folder.
        #[arg(long = "bin", value_name = "PATH")]
        bins: Vec<PathBuf>,
        /// Measured runs per binary.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
        runs: u32,
        /// Unmeasured rounds first (page cache).
        #[arg(long, default_value_t = 1)]
        warmup: u32,
        /// The moto_server program.
        #[arg(long, env = "SWITCHBOARD_MOTO_SERVER", value_name = "PATH")]
        moto: Option<PathBuf>,
        /// An AWS emulator already running on loopback (http://127.0.0.1:PORT), instead of
        /// starting moto.
        #[arg(long, value_name = "URL")]
        endpoint: Option<String>,
        /// Seconds any one wait may take (a run, moto's start, a provisioning).
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
        timeout: u64,
        /// Print the results as JSON.
        #[arg(long)]
        json: bool,
        /// An extra variable for every function, `NAME=VALUE` (repeat for several), e.g. to
        /// point rustls at one certificate bundle as on Lambda's images:
        /// `--env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt --env SSL_CERT_DIR=/nonexistent`.
        #[arg(long = "env", value_name = "NAME=VALUE", value_parser = parse_env)]
        env: Vec<(String, String)>,
        /// The first invocation: `post`, a real request with its AWS calls (a signed
        /// one-message delivery for a webhook, a stored message's queue entry for the
        /// prioritizer, a reminder, a queue read), or `handshake`, one answered with no AWS call
        /// (Meta's subscription GET for a webhook, a status entry, an empty batch, a 404):
        /// start-up and routing alone.
        #[arg(long, value_enum, default_value_t = Scenario::Post)]
        event: Scenario,
        /// Also measure the Python + boto3 baseline of the WhatsApp webhook
        /// (`infra/coldstart/python/intake.py` under `awslambdaric`, as `python-boto3`), run by
        /// the Python interpreter at PATH, which must have `boto3` and `awslambdaric`
        /// (`./infra/dev-setup.sh` installs both in its virtual environment).
        #[arg(long, value_name = "PATH")]
        python: Option<PathBuf>,
    }

    fn parse_env(text: &str) -> Result<(String, String), String> {
        match text.split_once('=') {
            Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
            _ => Err(format!("expected NAME=VALUE, got {text:?}")),
        }
    }

    struct Target {
        name: String,
        path: PathBuf,
        /// Arguments of the program (the Python baseline's module to run).
        args: Vec<OsString>,
        /// Variables of this target alone (the Python baseline's `PYTHONPATH`).
        extra_env: Vec<(String, OsString)>,
        kind: Kind,
        /// The event of every run; `None`: made per run ([`seed`]).
        event: Option<Vec<u8>>,
    }

    pub fn main() -> ExitCode {
        let cli = Cli::parse();
        let runtime = match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("coldstart: {e}");
                return ExitCode::from(2);
            }
        };
        let outcome = runtime.block_on(async {
            tokio::select! {
                outcome = run(&cli) => outcome,
                _ = tokio::signal::ctrl_c() => Err("interrupted".to_owned()),
            }
        });
        // Drops the server and any held request before returning.
        runtime.shutdown_timeout(Duration::from_secs(1));
        match outcome {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::from(1),
            Err(e) => {
                eprintln!("coldstart: {e}");
                ExitCode::from(2)
            }
        }
    }

    /// Runs everything; `Ok(false)` when an invocation failed.
    async fn run(cli: &Cli) -> Result<bool, String> {
        let timeout = Duration::from_secs(cli.timeout);
        let targets = targets(cli)?;

        let api = RuntimeApi::new();
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| format!("could not listen on loopback: {e}"))?;
        let api_addr = listener.local_addr().map_err(|e| e.to_string())?;
        let router = api.router();
        let server = tokio::spawn(async move { axum::serve(listener, router).await });
        let _server = AbortOnDrop(server);

        let mut moto = None;
        let endpoint = match &cli.endpoint {
            Some(url) => loopback_endpoint(url)?,
            None => {
                let started = Moto::start(&moto_program(cli)?, timeout).await?;
                let endpoint = started.endpoint.clone();
                moto = Some(started);
                endpoint
            }
        };
        let sdk = switchboard_aws::assembly::sdk_defaults()
            .endpoint_url(&endpoint)
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "coldstart",
            ))
            .load()
            .await;
        let clients = Clients {
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            eventbridge: aws_sdk_eventbridge::Client::new(&sdk),
            scheduler: aws_sdk_scheduler::Client::new(&sdk),
        };

        let mut base_env = base_env(&api_addr.to_string(), &endpoint);
        base_env.extend(cli.env.iter().map(|(k, v)| (k.clone(), v.into())));
        let mut results: Vec<Results> = targets
            .iter()
            .map(|t| Results {
                name: t.name.clone(),
                samples: Vec::new(),
                failure: None,
            })
            .collect();
        let rounds = cli.warmup + cli.runs;
        let mut seq = 0u64;
        for round in 0..rounds {
            if results.iter().all(|r| r.failure.is_some()) {
                break;
            }
            let measured = round >= cli.warmup;
            let mut line = if measured {
                format!("run {}/{}:", round - cli.warmup + 1, cli.runs)
            } else {
                format!("warm-up {}/{}:", round + 1, cli.warmup)
            };
            for (target, result) in targets.iter().zip(results.iter_mut()) {
                if result.failure.is_some() {
                    continue;
                }
                seq += 1;
                let mut env = base_env.clone();
                env.push((
                    "AWS_LAMBDA_FUNCTION_NAME".into(),
                    target.name.clone().into(),
                ));
                env.extend(target.extra_env.iter().cloned());
                let mut event = target.event.clone();
                if target.kind.needs_resources() {
                    let prefix = format!("coldstart-{}-{seq}", std::process::id());
                    let (settings, seeded) =
                        tokio::time::timeout(timeout, stack(&clients, &prefix, target.kind))
                            .await
                            .map_err(|_| format!("provisioning took more than {timeout:?}"))??;
                    env.extend(settings.into_iter().map(|(k, v)| (k.to_owned(), v.into())));
                    if event.is_none() {
                        event = Some(events::prioritizer_event(&seeded)?);
                    }
                }
                let event = event.ok_or("no event for the run")?;
                match invoke(&api, target, event, cli.event, &env, timeout, seq).await {
                    Ok(sample) => {
                        line.push_str(&format!(
                            " {} {:.1} ms {:.1} MiB,",
                            target.name,
                            sample.cold_ms,
                            sample.peak_rss_kib as f64 / 1024.0
                        ));
                        if measured {
                            result.samples.push(sample);
                        }
                    }
                    Err(e) => {
                        line.push_str(&format!(" {} FAILED,", target.name));
                        result.failure = Some(e);
                    }
                }
            }
            eprintln!("{}", line.trim_end_matches(','));
        }
        drop(moto);

        let baseline = results
            .iter()
            .any(|r| r.name == BASELINE)
            .then_some(BASELINE);
        if cli.json {
            let json = report::to_json(&results, baseline, cli.runs, cli.warmup);
            println!(
                "{}",
                serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?
            );
        } else {
            println!(
                "cold start = spawn to the first /response (init + first invocation, on the \
                 emulator); init = spawn to the first /next;\ninvoke = cold start - init; peak \
                 RSS = VmHWM before the kill; maxrss = wait4's ru_maxrss (at least the harness's \
                 own size);\nbaseline = {}; the target: a median cold start within {}x of the \
                 baseline's\n",
                baseline.unwrap_or("none"),
                report::TARGET_RATIO
            );
            print!("{}", report::table(&results, baseline));
        }
        let mut ok = true;
        for r in &results {
            if let Some(failure) = &r.failure {
                ok = false;
                eprintln!("\n{} failed: {failure}", r.name);
            }
        }
        Ok(ok)
    }

    /// One cold start: spawn, serve the event, wait for the response, read the peak RSS, kill.
    async fn invoke(
        api: &RuntimeApi,
        target: &Target,
        event: Vec<u8>,
        scenario: Scenario,
        env: &[(String, OsString)],
        timeout: Duration,
        seq: u64,
    ) -> Result<Sample, String> {
        let request_id = format!("c01d5a47-0000-4000-8000-{seq:012x}");
        let mut reports = api.begin(Invocation {
            request_id: request_id.clone(),
            function_arn: format!(
                "arn:aws:lambda:{REGION}:123456789012:function:{}",
                target.name
            ),
            event: event.into(),
            timeout,
        });
        let (mut process, start) = match Process::spawn(&target.path, &target.args, env) {
            Ok(spawned) => spawned,
            Err(e) => {
                api.end();
                return Err(format!("could not start {}: {e}", target.path.display()));
            }
        };
        let deadline = tokio::time::Instant::from_std(start + timeout);
        let mut init_at = None;
        let outcome = loop {
            tokio::select! {
                report = reports.recv() => match report {
                    Some(Report::Next { at }) => {
                        init_at.get_or_insert(at);
                    }
                    Some(Report::Response { request_id: id, at, body }) if id == request_id => {
                        break Ok((at, body));
                    }
                    Some(Report::Response { request_id: id, .. }) => {
                        break Err(format!("a response for an unknown request id {id:?}"));
                    }
                    Some(Report::Error { request_id: id, error_type, body }) => {
                        break Err(format!(
                            "invocation error (request {id}) {}: {}",
                            error_type.unwrap_or_default(),
                            String::from_utf8_lossy(&body)
                        ));
                    }
                    Some(Report::InitError { error_type, body }) => {
                        break Err(format!(
                            "init error {}: {}",
                            error_type.unwrap_or_default(),
                            String::from_utf8_lossy(&body)
                        ));
                    }
                    Some(Report::Stray { method, uri }) => {
                        break Err(format!("a request outside the Runtime API: {method} {uri}"));
                    }
                    None => break Err("the Runtime API stopped".to_owned()),
                },
                () = process.exited() => break Err("the process exited without a response".to_owned()),
                () = tokio::time::sleep_until(deadline) => {
                    break Err(format!("no response within {timeout:?}"));
                }
            }
        };
        let peak_rss_kib = process.peak_rss_kib();
        let exit = process.kill_and_reap(timeout).await;
        api.end();
        let fail = |e: String, process: &mut Process| {
            let exit = match &exit {
                Ok(exit) => exit.describe(),
                Err(e) => e.to_string(),
            };
            format!(
                "{e}\n  process: {exit}; its last output:\n{}",
                process.log_tail(30)
            )
        };
        let (at, body) = outcome.map_err(|e| fail(e, &mut process))?;
        events::check_response(target.kind, scenario, &body).map_err(|e| fail(e, &mut process))?;
        let exit = exit.map_err(|e| e.to_string())?;
        let init_at = init_at.ok_or("a response without a request for the event")?;
        Ok(Sample {
            cold_ms: (at - start).as_secs_f64() * 1000.0,
            init_ms: (init_at - start).as_secs_f64() * 1000.0,
            peak_rss_kib: peak_rss_kib.ok_or("no VmHWM in /proc for the process")?,
            ru_maxrss_kib: exit.ru_maxrss_kib,
        })
    }

    struct Clients {
        dynamodb: aws_sdk_dynamodb::Client,
        sqs: aws_sdk_sqs::Client,
        eventbridge: aws_sdk_eventbridge::Client,
        scheduler: aws_sdk_scheduler::Client,
    }

    /// A fresh stack for one run, named by `prefix`: the table and the intake queue, and for
    /// the prioritizer, the sla-reminder and the agent API the event bus, the reminder queue
    /// and the schedule group too. Answers the settings a deployed function gets, and for the
    /// prioritizer the queue entries of the WhatsApp sample message, accepted through the
    /// intake as its webhook would (so that its first invocation finds the message stored).
    async fn stack(
        clients: &Clients,
        prefix: &str,
        kind: Kind,
    ) -> Result<(Vec<(&'static str, String)>, Vec<String>), String> {
        let chain = |e: &dyn std::error::Error| switchboard_core::errors::chain(e);
        let names = ResourceNames::with_prefix(prefix);
        let provisioned = provision(&clients.dynamodb, &clients.sqs, &names)
            .await
            .map_err(|e| chain(&e))?;
        let mut settings = vec![
            (switchboard_aws::settings::TABLE, provisioned.table.clone()),
            (
                switchboard_aws::settings::INTAKE_QUEUE_URL,
                provisioned.intake_queue_url.clone(),
            ),
            (
                switchboard_aws::settings::OUTBOX_TABLE,
                provisioned.outbox_table.clone(),
            ),
        ];
        if matches!(kind, Kind::Webhook(_)) {
            return Ok((settings, Vec::new()));
        }
        let bus = provision_event_bus(&clients.eventbridge, &names)
            .await
            .map_err(|e| chain(&e))?;
        let reminders = provision_reminders(&clients.sqs, &clients.scheduler, &names)
            .await
            .map_err(|e| chain(&e))?;
        settings.extend([
            (switchboard_aws::settings::EVENT_BUS, bus),
            (switchboard_aws::settings::SCHEDULE_GROUP, reminders.group),
            (
                switchboard_aws::settings::REMINDER_QUEUE_ARN,
                reminders.queue_arn,
            ),
            (
                switchboard_aws::settings::SCHEDULER_ROLE_ARN,
                reminders.role_arn,
            ),
        ]);
        if kind != Kind::Prioritizer {
            return Ok((settings, Vec::new()));
        }
        let entries = seed(clients, &provisioned.table, &provisioned.intake_queue_url).await?;
        Ok((settings, entries))
    }

    /// Accepts the WhatsApp sample delivery into `table` and the intake queue, and answers the
    /// bodies of the queue entries it made (received and deleted from the queue, as the event
    /// source mapping would).
    async fn seed(clients: &Clients, table: &str, queue_url: &str) -> Result<Vec<String>, String> {
        use std::sync::Arc;
        use switchboard_aws::{DynamoStore, SqsIntakeQueue};
        use switchboard_core::clock::SystemClock;
        use switchboard_core::intake::Intake;
        let clock = Arc::new(SystemClock);
        let intake = Intake::new(
            Arc::new(DynamoStore::new(
                clients.dynamodb.clone(),
                table,
                30,
                clock.clone(),
            )),
            Arc::new(SqsIntakeQueue::new(clients.sqs.clone(), queue_url)),
            clock,
        );
        intake
            .accept(Webhook::Whatsapp, events::whatsapp_body()?.into())
            .await
            .map_err(|e| format!("the sample delivery was not accepted: {e}"))?;
        // Received and deleted as the event source mapping would, by the same poller that
        // `switchboard serve --backend aws` uses.
        let collected = Collect::default();
        switchboard_aws::sqs_events::poll_queue(
            &clients.sqs,
            queue_url,
            &collected,
            Duration::ZERO,
            None,
        )
        .await
        .map_err(|e| format!("the intake queue: {e}"))?;
        let bodies = collected
            .0
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if bodies.is_empty() {
            return Err("the sample delivery made no queue entry".to_owned());
        }
        Ok(bodies)
    }

    /// The environment every function gets; `AWS_LAMBDA_FUNCTION_NAME` and the table and queue
    /// are added per run.
    fn base_env(runtime_api: &str, endpoint: &str) -> Vec<(String, OsString)> {
        let mut env: Vec<(String, OsString)> = vec![
            ("AWS_LAMBDA_RUNTIME_API".into(), runtime_api.into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE".into(), "256".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION".into(), "$LATEST".into()),
            ("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into()),
            ("AWS_REGION".into(), REGION.into()),
            // Lambda sets both; boto3 reads this one.
            ("AWS_DEFAULT_REGION".into(), REGION.into()),
            ("AWS_ENDPOINT_URL".into(), endpoint.into()),
            ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
        ];
        for module in switchboard_core::channels::REGISTRY {
            for field in module.secrets() {
                let value = if field.key == "verify_token" {
                    VERIFY_TOKEN
                } else if matches!(
                    module.webhook(),
                    switchboard_core::model::Webhook::Standard
                        | switchboard_core::model::Webhook::Email
                ) {
                    events::STANDARD_SECRET
                } else {
                    APP_SECRET
                };
                env.push((
                    config::channel_var(module.webhook(), field.env),
                    value.into(),
                ));
            }
        }
        env
    }

    /// A queue consumer that keeps the entries it receives (as their JSON), for the
    /// prioritizer's first event.
    #[derive(Default)]
    struct Collect(std::sync::Mutex<Vec<String>>);

    #[async_trait::async_trait]
    impl switchboard_core::consume::QueueHandler for Collect {
        type Message = switchboard_core::ports::QueueEntry;
        type Outcome = ();
        const QUEUE: &'static str = "intake";

        fn conversation(entry: &Self::Message) -> &switchboard_core::ids::ConversationId {
            &entry.conversation_id
        }

        async fn handle(
            &self,
            entry: &Self::Message,
        ) -> Result<(), switchboard_core::consume::ConsumeError> {
            let body = serde_json::to_string(entry)?;
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(body);
            Ok(())
        }
    }

    fn targets(cli: &Cli) -> Result<Vec<Target>, String> {
        let paths = if cli.bins.is_empty() {
            let dir = release_dir()?;
            let paths: Vec<PathBuf> = default_bins().iter().map(|n| dir.join(n)).collect();
            let missing: Vec<String> = paths
                .iter()
                .filter(|p| !p.is_file())
                .map(|p| p.display().to_string())
                .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "not built: {}; build them with `{}`",
                    missing.join(", "),
                    build_hint()
                ));
            }
            paths
        } else {
            cli.bins.clone()
        };
        let mut targets = Vec::new();
        for path in paths {
            if !path.is_file() {
                return Err(format!("no such binary: {}", path.display()));
            }
            let file = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            // Two builds of one function side by side (this build and a previous one): the
            // second is named by its folder too.
            let name = if targets.iter().any(|t: &Target| t.name == file) {
                let folder = path
                    .parent()
                    .and_then(Path::file_name)
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                format!("{folder}/{file}")
            } else {
                file.clone()
            };
            if targets.iter().any(|t: &Target| t.name == name) {
                return Err(format!("two binaries named {name}"));
            }
            let kind = Kind::of(&file);
            let event = events::event(kind, cli.event)?;
            targets.push(Target {
                name,
                path,
                args: Vec::new(),
                extra_env: Vec::new(),
                kind,
                event,
            });
        }
        if let Some(python) = &cli.python {
            let kind = Kind::Webhook(Webhook::Whatsapp);
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("python");
            targets.push(Target {
                name: "python-boto3".to_owned(),
                path: python.clone(),
                args: ["-m", "awslambdaric", "intake.handler"]
                    .map(OsString::from)
                    .to_vec(),
                extra_env: vec![("PYTHONPATH".to_owned(), dir.into_os_string())],
                kind,
                event: events::event(kind, cli.event)?,
            });
        }
        Ok(targets)
    }

    /// `$CARGO_TARGET_DIR/release`, else the `release` folder beside the one this harness was
    /// built into.
    fn release_dir() -> Result<PathBuf, String> {
        if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
            return Ok(PathBuf::from(dir).join("release"));
        }
        let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
        exe.parent()
            .and_then(Path::parent)
            .map(|target| target.join("release"))
            .ok_or_else(|| "no target folder; pass --bin".to_owned())
    }

    fn moto_program(cli: &Cli) -> Result<PathBuf, String> {
        if let Some(program) = &cli.moto {
            return Ok(program.clone());
        }
        let on_path = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("moto_server"))
                .find(|p| p.is_file())
        });
        let dev_setup = std::env::var_os("HOME")
            .map(|home| PathBuf::from(home).join(".cache/switchboard/venv/bin/moto_server"));
        on_path
            .or(dev_setup.filter(|p| p.is_file()))
            .ok_or_else(|| {
                "moto_server not found: run ./infra/dev-setup.sh, or pass --moto PATH (or set \
                 SWITCHBOARD_MOTO_SERVER), or --endpoint URL"
                    .to_owned()
            })
    }

    /// `url` if its host is loopback: the harness uses static test credentials and creates a
    /// table and queues per run, for an emulator only.
    fn loopback_endpoint(url: &str) -> Result<String, String> {
        let uri: axum::http::Uri = url.parse().map_err(|e| format!("--endpoint {url}: {e}"))?;
        match uri.host() {
            Some("127.0.0.1" | "localhost" | "[::1]" | "::1") => {
                Ok(url.trim_end_matches('/').to_owned())
            }
            _ => Err(format!(
                "--endpoint {url}: only an emulator on loopback (127.0.0.1, localhost, [::1])"
            )),
        }
    }

    /// A moto server on a free loopback port, stopped when dropped.
    struct Moto {
        child: Child,
        endpoint: String,
    }

    impl Moto {
        async fn start(program: &Path, timeout: Duration) -> Result<Self, String> {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .and_then(|l| l.local_addr())
                .map_err(|e| format!("no free loopback port: {e}"))?
                .port();
            let child = Command::new(program)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("could not start {}: {e}", program.display()))?;
            let mut moto = Moto {
                child,
                endpoint: format!("http://127.0.0.1:{port}"),
            };
            let deadline = tokio::time::Instant::now() + timeout;
            loop {
                if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                    return Ok(moto);
                }
                if let Ok(Some(status)) = moto.child.try_wait() {
                    return Err(format!("{} exited at start: {status}", program.display()));
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(format!(
                        "{} did not answer on port {port} within {timeout:?}",
                        program.display()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    impl Drop for Moto {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

    impl<T> Drop for AbortOnDrop<T> {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
}
