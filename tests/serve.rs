//! End to end over HTTP: the real `switchboard` binary, started as a process, answering on
//! loopback, on the embedded backend and on AWS (moto), plus its start-up errors.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use switchboard_tests::{APP_SECRET, OLD_APP_SECRET, VERIFY_TOKEN, fixtures_dir, moto, signature};

/// The `switchboard` binary of this workspace, built if `cargo test` did not build it.
fn binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("test binary path");
        // <target>/<profile>/deps/<test> → <target>/<profile>/switchboard
        let path = exe
            .parent()
            .and_then(|p| p.parent())
            .expect("target dir")
            .join("switchboard");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "switchboard",
                "--bin",
                "switchboard",
            ])
            .status()
            .expect("cargo build");
        assert!(status.success(), "building the switchboard binary failed");
        assert!(path.exists(), "no binary at {}", path.display());
        path
    })
    .clone()
}

struct Process {
    child: Child,
    addr: SocketAddr,
    /// The lines of its log that carry a prioritization lag (`RUST_LOG` must ask for
    /// `switchboard::metrics`).
    lags: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `output`, with what the process printed on stderr appended to the suite's log (the log scan).
fn logged(output: std::process::Output) -> std::process::Output {
    switchboard_tests::append_test_log(&String::from_utf8_lossy(&output.stderr));
    output
}

fn command(envs: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(binary());
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd
}

/// The API token of the tests that set one.
const API_TOKEN: &str = "0123456789abcdef0123";

/// `switchboard serve` on `data` with the local secrets and [`API_TOKEN`], and the
/// `Authorization` value that passes.
fn serve_with_token(data: &std::path::Path) -> (Process, String) {
    let mut envs = LOCAL_SECRETS.to_vec();
    envs.push(("SWITCHBOARD_API_TOKEN", API_TOKEN));
    let server = serve(&["--data", data.to_str().unwrap()], &envs);
    (server, format!("Bearer {API_TOKEN}"))
}

/// Starts `switchboard serve ARGS` and waits for the line that gives its address.
fn serve(args: &[&str], envs: &[(&str, &str)]) -> Process {
    let mut child = command(envs)
        .arg("serve")
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start switchboard serve");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let lags = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = lags.clone();
    std::thread::spawn(move || {
        // Keep reading after the address line so the server never blocks on a full pipe.
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            switchboard_tests::append_test_log(&line);
            if let Some(lag) = line
                .split("prioritization_lag_ms=")
                .nth(1)
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
            {
                seen.lock().unwrap().push(lag);
            }
            if let Some(rest) = line.split("serving on http://").nth(1)
                && let Some(tx) = tx.take()
            {
                let addr = rest.split_whitespace().next().unwrap_or_default();
                let _ = tx.send(addr.to_owned());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("switchboard serve did not print its address");
    Process {
        child,
        addr: addr.parse().expect("address"),
        lags,
    }
}

/// One HTTP/1.1 request over a fresh connection; returns the status and the body.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, response[split + 4..].to_vec())
}

fn get_json(addr: SocketAddr, path: &str) -> Value {
    let (status, body) = http(addr, "GET", path, &[], b"");
    assert_eq!(status, 200, "{path}");
    serde_json::from_slice(&body).expect("JSON")
}

fn post_signed(addr: SocketAddr, body: &[u8]) -> u16 {
    let sig = signature(body);
    http(
        addr,
        "POST",
        "/webhooks/whatsapp",
        &[
            ("content-type", "application/json"),
            ("x-hub-signature-256", &sig),
        ],
        body,
    )
    .0
}

const LOCAL_SECRETS: [(&str, &str); 4] = [
    (
        "SWITCHBOARD_WHATSAPP_APP_SECRETS",
        "test-app-secret,test-app-secret-previous",
    ),
    ("SWITCHBOARD_WHATSAPP_VERIFY_TOKEN", VERIFY_TOKEN),
    ("SWITCHBOARD_FACEBOOK_APP_SECRETS", "test-app-secret"),
    ("SWITCHBOARD_FACEBOOK_VERIFY_TOKEN", "facebook-token"),
];

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join("whatsapp").join(name)).unwrap()
}

/// Waits until `check` holds (the read API of the AWS backend reads an index).
fn eventually(mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "condition not met in time"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn serve_on_the_embedded_backend_takes_webhooks_and_keeps_them_across_restarts() {
    assert_eq!(
        (APP_SECRET, OLD_APP_SECRET),
        ("test-app-secret", "test-app-secret-previous")
    );
    let data = tempfile::tempdir().unwrap();
    let data_arg = data.path().to_str().unwrap();
    let server = serve(&["--data", data_arg], &LOCAL_SECRETS);

    let (status, challenge) = http(
        server.addr,
        "GET",
        &format!(
            "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=31337"
        ),
        &[],
        b"",
    );
    assert_eq!((status, challenge.as_slice()), (200, &b"31337"[..]));
    let (status, _) = http(
        server.addr,
        "GET",
        "/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1",
        &[],
        b"",
    );
    assert_eq!(status, 403);
    // Each configured webhook is served with its own token; one without settings is not.
    let (status, _) = http(
        server.addr,
        "GET",
        "/webhooks/facebook?hub.mode=subscribe&hub.verify_token=facebook-token&hub.challenge=7",
        &[],
        b"",
    );
    assert_eq!(status, 200);
    let (status, _) = http(
        server.addr,
        "GET",
        &format!(
            "/webhooks/instagram?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=7"
        ),
        &[],
        b"",
    );
    assert_eq!(status, 404);

    let raw = fixture("text_signed__pywa.raw");
    assert_eq!(post_signed(server.addr, &raw), 200);
    assert_eq!(post_signed(server.addr, &fixture("image__pywa.json")), 200);
    let (status, _) = http(
        server.addr,
        "POST",
        "/webhooks/whatsapp",
        &[("x-hub-signature-256", "sha256=00")],
        &raw,
    );
    assert_eq!(status, 401);

    let conversations = get_json(server.addr, "/api/conversations");
    assert_eq!(conversations["items"].as_array().unwrap().len(), 2);
    assert_eq!(conversations["next"], Value::Null);
    drop(server);

    // Restarted on the same data folder: everything is still there.
    let server = serve(&["--data", data_arg], &LOCAL_SECRETS);
    let conversations = get_json(server.addr, "/api/conversations?channel=whatsapp");
    let items = conversations["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let pywa = items
        .iter()
        .find(|c| c["customer_name"] == "PyWa Tests")
        .expect("the signed fixture's conversation");
    assert_eq!(pywa["channel"], "whatsapp");
    let messages = get_json(
        server.addr,
        &format!(
            "/api/conversations/{}/messages",
            pywa["id"].as_str().unwrap()
        ),
    );
    let message = &messages["items"][0];
    assert_eq!(
        message["provider_message_id"],
        "wamid.HBgMOTcyNTQ0NDAxMjQzFQIAEhggM0RFQTNCMEEwRTY3QzUwODYzMDc4NjQ4QzM4ODAxM0YA"
    );
    assert_eq!(message["kind"], "text");
    assert_eq!(message["direction"], "inbound");
    assert_eq!(message["sent_at"], "2024-10-29T19:58:23Z");
    assert_eq!(message["text"], "Hey there! I am using PyWa.");
    // Posting it again after the restart stores nothing new.
    assert_eq!(post_signed(server.addr, &raw), 200);
    let again = get_json(
        server.addr,
        &format!(
            "/api/conversations/{}/messages",
            pywa["id"].as_str().unwrap()
        ),
    );
    assert_eq!(again["items"].as_array().unwrap().len(), 1);
}

/// Production settings still fail loudly: a webhook set in part, the AWS backend with no
/// webhook, a token too short to guard anything.
#[test]
fn serve_refuses_partial_settings_and_names_what_is_missing() {
    let data = tempfile::tempdir().unwrap();
    let run = |envs: &[(&str, &str)], args: &[&str]| {
        let output = command(envs)
            .args(["serve", "--addr", "127.0.0.1:0", "--data"])
            .arg(data.path())
            .args(args)
            .output()
            .map(logged)
            .expect("run");
        assert!(!output.status.success());
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let stderr = run(&[("SWITCHBOARD_WHATSAPP_APP_SECRETS", "a-secret")], &[]);
    assert!(
        stderr.contains("SWITCHBOARD_WHATSAPP_VERIFY_TOKEN"),
        "{stderr}"
    );
    assert!(
        !data.path().join("dev-secrets.json").exists(),
        "no development secrets when a webhook is configured"
    );

    let stderr = run(&[("AWS_REGION", "us-east-1")], &["--backend", "aws"]);
    assert!(stderr.contains("SWITCHBOARD_TABLE"), "{stderr}");
    let stderr = run(&LOCAL_SECRETS, &["--backend", "aws"]);
    assert!(stderr.contains("SWITCHBOARD_TABLE"), "{stderr}");

    let mut short = LOCAL_SECRETS.to_vec();
    short.push(("SWITCHBOARD_API_TOKEN", "short"));
    let stderr = run(&short, &[]);
    assert!(stderr.contains("SWITCHBOARD_API_TOKEN"), "{stderr}");
}

/// A data directory that cannot be used fails at start-up with the path and the operating
/// system's (or SQLite's) reason, not only "cannot open".
#[test]
fn a_data_directory_that_cannot_be_used_names_the_os_cause() {
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let taken = scratch.path().join("taken");
    std::fs::create_dir_all(taken.join("switchboard.sqlite3")).unwrap();
    for (data, cause) in [
        (file.join("data"), "Not a directory"),
        (taken.clone(), "unable to open database file"),
    ] {
        let output = command(&LOCAL_SECRETS)
            .args(["serve", "--addr", "127.0.0.1:0", "--data"])
            .arg(&data)
            .output()
            .map(logged)
            .expect("run");
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&*data.to_string_lossy()) && stderr.contains(cause),
            "{stderr}"
        );
    }
}

/// The first run is the demo: `serve` in an empty folder with no settings starts on
/// development secrets it keeps, serves the console, and `switchboard demo` fills it: a queue,
/// a customer's timeline across WhatsApp and Instagram, figures.
#[test]
fn the_first_run_starts_without_settings_and_the_demo_fills_it() {
    let data = tempfile::tempdir().unwrap();
    let mut child = command(&[])
        .args(["serve", "--addr", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            switchboard_tests::append_test_log(&line);
            let _ = tx.send(line);
        }
    });
    let mut addr = None;
    let mut said = String::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && !(addr.is_some() && said.contains("--data-binary")) {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            if let Some(rest) = line.split("serving on http://").nth(1) {
                addr = rest.split_whitespace().next().map(str::to_owned);
            }
            said.push_str(&line);
            said.push('\n');
        }
    }
    let server = Process {
        child,
        addr: addr.expect("serving").parse().unwrap(),
        lags: Default::default(),
    };
    assert!(said.contains("development secrets"), "{said}");
    assert!(said.contains("dev-secrets.json"), "{said}");
    assert!(
        said.contains("openssl dgst"),
        "the curl line that signs a sample: {said}"
    );
    let secrets: Value = serde_json::from_str(
        &std::fs::read_to_string(data.path().join("dev-secrets.json")).unwrap(),
    )
    .unwrap();
    let secret = secrets["SWITCHBOARD_WHATSAPP_APP_SECRETS"]
        .as_str()
        .unwrap();
    assert!(said.contains(secret), "printed once, when made");

    // The console is served, and it is told there is nothing to sign in with.
    let (status, page) = http(server.addr, "GET", "/", &[], b"");
    assert_eq!(status, 200);
    let page = String::from_utf8(page).unwrap();
    assert!(
        page.contains(r#"<meta name="switchboard-auth" content="none" />"#),
        "{page}"
    );
    assert!(page.contains("/assets/console.js"));
    let (status, script) = http(server.addr, "GET", "/assets/console.js", &[], b"");
    assert_eq!(status, 200);
    assert!(script.len() > 10_000);

    // A delivery signed with the development secret is taken; another secret is refused.
    let body = switchboard_tests::payloads::whatsapp_text(
        "PN-FIRST",
        "5511",
        "wamid.F1",
        1_790_000_000,
        "hola",
    );
    let sig = switchboard_core::channels::meta::sign(secret, &body);
    let headers = [
        ("content-type", "application/json"),
        ("x-hub-signature-256", sig.as_str()),
    ];
    assert_eq!(
        http(server.addr, "POST", "/webhooks/whatsapp", &headers, &body).0,
        200
    );
    assert_eq!(
        post_signed(server.addr, &body),
        401,
        "the test secret is not this one"
    );

    // The demo fills it.
    let output = command(&[])
        .args([
            "demo",
            "--url",
            &format!("http://{}", server.addr),
            "--data",
        ])
        .arg(data.path())
        .output()
        .map(logged)
        .expect("demo");
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(out.contains("posted 10 deliveries"), "{out}");
    let queue = get_json(server.addr, "/api/queue?limit=100")["items"]
        .as_array()
        .unwrap()
        .clone();
    assert!(queue.len() >= 5, "{queue:?}");
    assert_eq!(
        queue[0]["priority"]["priority"], "P1",
        "the urgent first: {:?}",
        queue[0]
    );
    let ana = get_json(server.addr, "/api/conversations?limit=100")["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["customer_provider_id"] == "5215511110000")
        .cloned()
        .unwrap();
    let timeline = get_json(
        server.addr,
        &format!(
            "/api/customers/{}/timeline",
            ana["customer_id"].as_str().unwrap()
        ),
    );
    let channels: std::collections::BTreeSet<&str> = timeline["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["channel"].as_str().unwrap())
        .collect();
    assert_eq!(channels, ["instagram", "whatsapp"].into_iter().collect());
    let now = chrono::Utc::now();
    let figures = get_json(
        server.addr,
        &format!(
            "/api/metrics?from={}&to={}&granularity=day",
            (now - chrono::Duration::days(2)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            (now + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
    );
    assert!(
        figures["totals"]["messages_in"].as_u64().unwrap() >= 8,
        "{figures}"
    );
    assert!(
        figures["totals"]["answered"].as_u64().unwrap() >= 2,
        "{figures}"
    );
    assert!(
        figures["totals"]["resolved"].as_u64().unwrap() >= 2,
        "{figures}"
    );
}

/// With SWITCHBOARD_API_TOKEN every /api route needs it (the console asks for it), the
/// webhooks keep their signatures, and no warning is needed beyond loopback.
#[test]
fn an_api_token_guards_the_api_and_the_console_asks_for_it() {
    let data = tempfile::tempdir().unwrap();
    let (server, bearer) = serve_with_token(data.path());
    for (headers, want) in [
        (vec![], 401),
        (vec![("authorization", "Bearer 0123456789abcdef0124")], 401),
        (vec![("authorization", API_TOKEN)], 401),
        (vec![("authorization", bearer.as_str())], 200),
    ] {
        assert_eq!(
            http(server.addr, "GET", "/api/queue", &headers, b"").0,
            want,
            "{headers:?}"
        );
    }
    let (status, body) = http(
        server.addr,
        "GET",
        "/api/me",
        &[("authorization", bearer.as_str())],
        b"",
    );
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["agent"],
        "local"
    );
    let (_, page) = http(server.addr, "GET", "/", &[], b"");
    assert!(
        String::from_utf8(page)
            .unwrap()
            .contains(r#"content="token""#)
    );
    let body = std::fs::read(fixtures_dir().join("whatsapp/text__pywa.json")).unwrap();
    assert_eq!(
        post_signed(server.addr, &body),
        200,
        "webhooks need no token"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn provision_then_serve_on_the_aws_backend_with_the_lambda_settings() {
    let moto = moto().await;
    let aws_env = [
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ];
    let prefix = format!("serve{}", std::process::id());
    let output = command(&aws_env)
        .args(["provision", "--prefix", &prefix])
        .output()
        .map(logged)
        .expect("run provision");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let setting = |name: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} not printed: {stdout}"))
            .to_owned()
    };
    let table = setting("SWITCHBOARD_TABLE");
    let queue = setting("SWITCHBOARD_INTAKE_QUEUE_URL");
    let bus = setting("SWITCHBOARD_EVENT_BUS");
    assert_eq!(bus, format!("{prefix}-events"));
    assert_eq!(table, format!("{prefix}-table"));
    assert!(queue.ends_with(&format!("{prefix}-intake.fifo")), "{queue}");
    // Provisioning again is harmless.
    assert!(
        command(&aws_env)
            .args(["provision", "--prefix", &prefix])
            .output()
            .map(logged)
            .unwrap()
            .status
            .success()
    );

    let mut envs = aws_env.to_vec();
    envs.extend([
        ("SWITCHBOARD_TABLE", table.as_str()),
        ("SWITCHBOARD_INTAKE_QUEUE_URL", queue.as_str()),
    ]);
    envs.extend(LOCAL_SECRETS);
    // Without the bus, start-up names it.
    let output = command(&envs)
        .args(["serve", "--backend", "aws", "--addr", "127.0.0.1:0"])
        .output()
        .map(logged)
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SWITCHBOARD_EVENT_BUS"), "{stderr}");
    envs.push(("SWITCHBOARD_EVENT_BUS", bus.as_str()));
    let reminder_settings: Vec<(&str, String)> = [
        "SWITCHBOARD_SCHEDULE_GROUP",
        "SWITCHBOARD_REMINDER_QUEUE_ARN",
        "SWITCHBOARD_REMINDER_QUEUE_URL",
        "SWITCHBOARD_SCHEDULER_ROLE_ARN",
    ]
    .into_iter()
    .map(|name| (name, setting(name)))
    .collect();
    envs.extend(reminder_settings.iter().map(|(k, v)| (*k, v.as_str())));
    let server = serve(&["--backend", "aws"], &envs);
    let addr = server.addr;
    let body = fixture("text_signed__pywa.raw");
    let status = tokio::task::spawn_blocking(move || post_signed(addr, &body))
        .await
        .unwrap();
    assert_eq!(status, 200);
    let items = tokio::task::spawn_blocking(move || {
        let mut items = Vec::new();
        eventually(|| {
            items = get_json(addr, "/api/conversations")["items"]
                .as_array()
                .unwrap()
                .clone();
            !items.is_empty()
        });
        items
    })
    .await
    .unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["customer_name"], "PyWa Tests");

    // serve consumed the SQS queue as the event source mapping would: the conversation is in
    // its team's queue, and the SQS queue is empty.
    let queued = tokio::task::spawn_blocking(move || {
        let mut queued = Vec::new();
        eventually(|| {
            queued = get_json(addr, "/api/queue")["items"]
                .as_array()
                .unwrap()
                .clone();
            !queued.is_empty()
        });
        queued
    })
    .await
    .unwrap();
    assert_eq!(queued.len(), 1);
    assert!(queued[0]["priority"]["team"].is_string(), "{}", queued[0]);
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let probe = switchboard_tests::SqsProbe {
        client: sqs,
        url: queue,
        pump: None,
    };
    assert_eq!(switchboard_tests::QueueProbe::count(&probe).await, 0);
    // The events go to the bus: no event log to read on this backend.
    let (status, _) =
        tokio::task::spawn_blocking(move || http(addr, "GET", "/api/events", &[], b""))
            .await
            .unwrap();
    assert_eq!(status, 404);
}

fn whatsapp_text(from: &str, id: &str, ts: i64, text: &str) -> Vec<u8> {
    switchboard_tests::payloads::whatsapp_text("PN", from, id, ts, text)
}

/// Issue 5's end-to-end case through the real binary: what is posted to a local webhook is
/// prioritized by the process itself, shows in `/api/queue` with its reasons, and its event is
/// in `/api/events` (and in `events.jsonl` in the data folder).
#[test]
fn serve_prioritizes_what_it_receives_and_serves_the_queue_and_the_events() {
    let data = tempfile::tempdir().unwrap();
    // A priority file of one's own: the billing topic goes to a team called finance.
    let custom = data.path().join("priority.toml");
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/priority.toml"),
    )
    .unwrap();
    std::fs::write(
        &custom,
        shipped.replace("billing = \"billing\"", "billing = \"finance\""),
    )
    .unwrap();
    let server = serve(
        &[
            "--data",
            data.path().to_str().unwrap(),
            "--priority",
            custom.to_str().unwrap(),
        ],
        &LOCAL_SECRETS,
    );
    // Now: with a time in the past, the process would find the waits already late (it fires
    // the SLA reminders too) and raise their priority.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert_eq!(
        post_signed(
            server.addr,
            &whatsapp_text(
                "5215550009001",
                "wamid.S1",
                t,
                "me cobraron dos veces, es urgente"
            )
        ),
        200
    );
    assert_eq!(
        post_signed(
            server.addr,
            &whatsapp_text("5215550009002", "wamid.S2", t - 60, "gracias!")
        ),
        200
    );
    let mut queue = Vec::new();
    eventually(|| {
        queue = get_json(server.addr, "/api/queue")["items"]
            .as_array()
            .unwrap()
            .clone();
        queue.len() == 2
    });
    assert_eq!(
        queue[0]["customer_provider_id"], "5215550009001",
        "{queue:?}"
    );
    assert_eq!(queue[0]["priority"]["team"], "finance");
    assert_eq!(queue[0]["priority"]["reasons"][0]["signal"], "money_lost");
    assert_eq!(queue[1]["priority"]["priority"], "P4");
    let finance = get_json(server.addr, "/api/queue?team=finance");
    assert_eq!(finance["items"].as_array().unwrap().len(), 1);

    let events = get_json(server.addr, "/api/events?type=conversation.prioritized");
    let events = events["items"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert!(
        events
            .iter()
            .all(|e| e["type"] == "conversation.prioritized")
    );
    assert!(
        get_json(server.addr, "/api/events?type=sla.breached")["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Each customer message is received once; only message.received carries its text.
    let file = std::fs::read_to_string(data.path().join("events.jsonl")).unwrap();
    let lines: Vec<Value> = file
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let received = lines.iter().filter(|e| e["type"] == "message.received");
    assert_eq!(received.count(), 2, "{file}");
    for e in lines.iter().filter(|e| e["type"] != "message.received") {
        assert!(
            !e.to_string().contains("es urgente"),
            "no message text: {e}"
        );
    }
}

#[test]
fn serve_refuses_a_bad_priority_or_policy_file_and_says_why() {
    let data = tempfile::tempdir().unwrap();
    let bad = data.path().join("priority.toml");
    std::fs::write(
        &bad,
        "default_topic = \"general\"\n[levels]\np1 = 10\np2 = 20\np3 = 30\n",
    )
    .unwrap();
    for (file, expected) in [
        (bad.to_str().unwrap().to_owned(), "missing field"),
        (
            data.path().join("nope.toml").to_str().unwrap().to_owned(),
            "cannot read",
        ),
    ] {
        let output = command(&LOCAL_SECRETS)
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--data",
                data.path().to_str().unwrap(),
                "--priority",
                &file,
            ])
            .output()
            .map(logged)
            .expect("run");
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("--priority") && stderr.contains(expected),
            "{stderr}"
        );
    }
    // The same for the SLA policy.
    let policy = data.path().join("sla.toml");
    std::fs::write(&policy, "[warning]\nshare = 2.0\n").unwrap();
    let output = command(&LOCAL_SECRETS)
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--data",
            data.path().to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
        ])
        .output()
        .map(logged)
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--policy") && stderr.contains("SLA policy"),
        "{stderr}"
    );
}

fn post_signed_to(addr: SocketAddr, webhook: &str, body: &[u8]) -> u16 {
    let sig = signature(body);
    http(
        addr,
        "POST",
        &format!("/webhooks/{webhook}"),
        &[
            ("content-type", "application/json"),
            ("x-hub-signature-256", &sig),
        ],
        body,
    )
    .0
}

fn messenger_text(customer: &str, mid: &str, ms: i64, echo: bool) -> Vec<u8> {
    switchboard_tests::payloads::messenger_text(customer, mid, ms, "hola", echo)
}

/// Issue 6's end-to-end case on the embedded backend, through the real binary, with a policy
/// in seconds: an unanswered message gets a warning, then a breach, in that order and not
/// before their time; an answered one gets none; a late answer records the response time and
/// the breach stays recorded.
#[test]
fn serve_fires_the_sla_reminders_of_a_policy_in_seconds() {
    let data = tempfile::tempdir().unwrap();
    let policy = data.path().join("sla.toml");
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/sla.toml"),
    )
    .unwrap();
    // Every target of every channel four seconds, every clock 24/7.
    let text: String = shipped
        .replace("default = \"office\"", "default = \"always\"")
        .lines()
        .map(|line| match line.split_once(" = { first = ") {
            Some((level, _)) if level.starts_with('P') => {
                format!("{level} = {{ first = \"4s\", next = \"4s\" }}\n")
            }
            _ => format!("{line}\n"),
        })
        .collect();
    std::fs::write(&policy, text).unwrap();
    let server = serve(
        &[
            "--data",
            data.path().to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
        ],
        &LOCAL_SECRETS,
    );
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let start = now_ms();
    assert_eq!(
        post_signed_to(
            server.addr,
            "facebook",
            &messenger_text("PSID-UNANSWERED", "u1", start, false)
        ),
        200
    );
    assert_eq!(
        post_signed_to(
            server.addr,
            "facebook",
            &messenger_text("PSID-ANSWERED", "a1", start, false)
        ),
        200
    );
    assert_eq!(
        post_signed_to(
            server.addr,
            "facebook",
            &messenger_text("PSID-LATE", "l1", start, false)
        ),
        200
    );
    assert_eq!(
        post_signed_to(
            server.addr,
            "facebook",
            &messenger_text("PSID-ANSWERED", "a2", start + 500, true)
        ),
        200
    );

    let conversation = |customer: &str| -> Value {
        get_json(server.addr, "/api/conversations")["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["customer_provider_id"] == customer)
            .cloned()
            .unwrap_or(Value::Null)
    };
    let sla_events = || -> Vec<Value> {
        get_json(server.addr, "/api/events?limit=500")["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"].as_str().is_some_and(|t| t.starts_with("sla.")))
            .cloned()
            .collect()
    };
    let of = |events: &[Value], c: &Value| -> Vec<Value> {
        events
            .iter()
            .filter(|e| e["detail"]["conversation_id"] == c["id"])
            .cloned()
            .collect()
    };
    // Both waits breach about 4 s after the message; wait for them (bounded).
    let mut events = Vec::new();
    eventually(|| {
        events = sla_events();
        events
            .iter()
            .filter(|e| e["type"] == "sla.breached")
            .count()
            >= 2
    });
    // The breach is published before its conversation is written (a failed write publishes
    // again with the same id): wait for the write too.
    eventually(|| {
        ["PSID-UNANSWERED", "PSID-LATE"]
            .iter()
            .all(|c| conversation(c)["sla_breaches"] == 1)
    });
    let unanswered = conversation("PSID-UNANSWERED");
    let answered = conversation("PSID-ANSWERED");
    let late = conversation("PSID-LATE");
    for c in [&unanswered, &late] {
        let mine = of(&events, c);
        let types: Vec<&str> = mine.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["sla.warning", "sla.breached"], "{c}");
        let time = |e: &Value| {
            chrono::DateTime::parse_from_rfc3339(e["time"].as_str().unwrap())
                .unwrap()
                .timestamp_millis()
        };
        assert!(
            time(&mine[0]) >= start + 3000,
            "the warning at three quarters, not before"
        );
        assert!(
            time(&mine[1]) >= start + 4000,
            "the breach at the target, not before"
        );
        // A loose upper bound that holds on a loaded machine: the timer loop checks every
        // 100 ms.
        assert!(time(&mine[1]) < start + 9000, "the breach on time");
        assert!(mine[1]["detail"]["late_seconds"].as_i64().unwrap() >= 0);
    }
    assert!(
        of(&events, &answered).is_empty(),
        "an answered wait gets no reminder"
    );
    assert_eq!(unanswered["sla_breaches"], 1);
    assert_eq!(
        unanswered["priority"]["priority"], "P3",
        "raised one step from P4"
    );

    // The late answer: its response time, and the breach stays.
    let answer_at = now_ms();
    assert_eq!(
        post_signed_to(
            server.addr,
            "facebook",
            &messenger_text("PSID-LATE", "l2", answer_at, true)
        ),
        200
    );
    eventually(|| conversation("PSID-LATE")["last_response_seconds"].is_number());
    let late = conversation("PSID-LATE");
    assert!(
        late["last_response_seconds"].as_i64().unwrap() >= 4,
        "{late}"
    );
    assert_eq!(late["sla_breaches"], 1);
    assert!(late["due_at"].is_null());
    assert_eq!(of(&sla_events(), &answered).len(), 0);
}

/// A policy file: the shipped one with every team on the 24/7 calendar.
fn always_policy(dir: &std::path::Path) -> PathBuf {
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/sla.toml"),
    )
    .unwrap();
    let path = dir.join("sla.toml");
    std::fs::write(
        &path,
        shipped.replace("default = \"office\"", "default = \"always\""),
    )
    .unwrap();
    path
}

/// A business account that goes quiet is reported silent once `SWITCHBOARD_SILENT_AFTER` of
/// business time has passed (3 s on a 24/7 calendar here), once, and resumed when it sends
/// again: through the real binary, its prioritizer and its timer loop.
#[test]
fn serve_reports_a_silent_channel_once_and_its_return() {
    let data = tempfile::tempdir().unwrap();
    let policy = always_policy(data.path());
    let mut envs = LOCAL_SECRETS.to_vec();
    envs.push(("SWITCHBOARD_SILENT_AFTER", "3s"));
    let server = serve(
        &[
            "--data",
            data.path().to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
        ],
        &envs,
    );
    let now_s = || chrono::Utc::now().timestamp();
    let of = |kind: &str| -> Vec<Value> {
        get_json(server.addr, &format!("/api/events?type={kind}&limit=500"))["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["detail"]["account_id"] == "PN-SILENT")
            .cloned()
            .collect()
    };
    let start = chrono::Utc::now();
    let body = |id: &str| {
        switchboard_tests::payloads::whatsapp_text(
            "PN-SILENT",
            "5511911110000",
            id,
            now_s(),
            "hola",
        )
    };
    assert_eq!(post_signed(server.addr, &body("wamid.S1")), 200);
    eventually(|| of("channel.silent").len() == 1);
    let silent = &of("channel.silent")[0];
    let at = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    let since = at(&silent["detail"]["silent_since"]);
    assert!(
        since >= at(&silent["detail"]["last_heard_at"]) + chrono::Duration::seconds(3),
        "{silent}"
    );
    assert!(
        at(&silent["time"]) >= start + chrono::Duration::seconds(3),
        "not before its time"
    );
    assert!(of("channel.resumed").is_empty());
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(of("channel.silent").len(), 1, "once per silence");

    assert_eq!(post_signed(server.addr, &body("wamid.S2")), 200);
    eventually(|| of("channel.resumed").len() == 1);
    assert_eq!(
        at(&of("channel.resumed")[0]["detail"]["silent_since"]),
        since
    );
    // Watched again: quiet once more, silent once more.
    eventually(|| of("channel.silent").len() == 2);
}

/// The e-mail corpus as an mbox, newest first (the import must put it back in order), with a
/// body line that mbox escapes (`>From `).
fn corpus_mbox() -> Vec<u8> {
    let dir = fixtures_dir().join("email");
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "eml"))
        .collect();
    names.sort();
    names.reverse();
    let mut mbox = Vec::new();
    for path in names {
        let raw = std::fs::read(&path).unwrap();
        mbox.extend_from_slice(b"From sender@example.com Thu Dec  3 10:00:00 2026\n");
        for line in raw.split_inclusive(|b| *b == b'\n') {
            if line.starts_with(b"From ") {
                mbox.push(b'>');
            }
            mbox.extend_from_slice(line);
        }
        mbox.extend_from_slice(b"\n");
    }
    mbox
}

fn import(path: &std::path::Path, data: &str) -> String {
    let output = command(&[])
        .args(["import-mail", path.to_str().unwrap(), "--data", data])
        .output()
        .map(logged)
        .expect("run import-mail");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn import_mail_takes_an_mbox_or_a_maildir_once_and_serve_shows_the_threads() {
    let dir = tempfile::tempdir().unwrap();
    let mbox = dir.path().join("support.mbox");
    std::fs::write(&mbox, corpus_mbox()).unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let first = import(&mbox, data_arg);
    assert!(first.contains("imported 13 messages"), "{first}");
    assert!(first.contains("13 new, 0 already there"), "{first}");
    let again = import(&mbox, data_arg);
    assert!(again.contains("0 new, 13 already there"), "{again}");

    // A Maildir of the same messages, into the same store: nothing new either.
    let maildir = dir.path().join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    for entry in std::fs::read_dir(fixtures_dir().join("email")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "eml") {
            let name = format!("{}.host:2,S", path.file_stem().unwrap().to_string_lossy());
            std::fs::copy(&path, maildir.join("cur").join(name)).unwrap();
        }
    }
    let maildir_run = import(&maildir, data_arg);
    assert!(
        maildir_run.contains("0 new, 13 already there"),
        "{maildir_run}"
    );
    let missing = command(&[])
        .args(["import-mail", "/nonexistent/mbox", "--data", data_arg])
        .output()
        .map(logged)
        .unwrap();
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/mbox"),
        "the error names the path"
    );

    // serve prioritizes what was imported; the thread of three is one conversation, even
    // though the mbox held it newest first.
    let server = serve(&["--data", data_arg], &LOCAL_SECRETS);
    eventually(|| {
        let conversations = get_json(server.addr, "/api/conversations?channel=email");
        let thread = conversations["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["customer_provider_id"] == "gloria@example.com")
            .cloned();
        thread.is_some_and(|c| c["status"] == "waiting" && c["priority"].is_object())
    });
    let conversations = get_json(server.addr, "/api/conversations?channel=email");
    let gloria: Vec<&Value> = conversations["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["customer_provider_id"] == "gloria@example.com")
        .collect();
    assert_eq!(gloria.len(), 1, "one thread, one conversation");
    let id = gloria[0]["id"].as_str().unwrap();
    let messages = get_json(server.addr, &format!("/api/conversations/{id}/messages"));
    assert_eq!(messages["items"].as_array().unwrap().len(), 3);
}

/// SIGTERM (systemd's and containers' stop) with a delivery half sent: the server stops
/// accepting, finishes that request (200: it is stored), and exits 0; the delivery is there
/// at the next start.
#[test]
fn sigterm_finishes_the_request_under_way_and_exits_zero() {
    let data = tempfile::tempdir().unwrap();
    let data_arg = data.path().to_str().unwrap();
    let mut server = serve(&["--data", data_arg], &LOCAL_SECRETS);
    let body = whatsapp_text("5215550007777", "wamid.SIGTERM", 1_796_000_000, "hola");
    let sig = signature(&body);
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "POST /webhooks/whatsapp HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
         content-type: application/json\r\nx-hub-signature-256: {sig}\r\n\
         Content-Length: {}\r\n\r\n",
        server.addr,
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let half = body.len() / 2;
    stream.write_all(&body[..half]).unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(&body[half..]).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");

    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = server.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(exit.code(), Some(0), "{exit:?}");
    drop(server);

    let again = serve(&["--data", data_arg], &LOCAL_SECRETS);
    let conversations = get_json(again.addr, "/api/conversations");
    assert!(
        conversations["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["customer_provider_id"] == "5215550007777"),
        "{conversations}"
    );
}

/// A client sending its headers a byte at a time, one that never sends the body it announced,
/// connections held idle: each is cut off by its timeout, connections beyond the cap are
/// answered 503 at once, and a well-behaved request is served all along and after.
#[test]
fn slow_and_idle_clients_are_cut_off_and_connections_beyond_the_cap_refused() {
    let data = tempfile::tempdir().unwrap();
    let data_arg = data.path().to_str().unwrap();
    let mut envs = LOCAL_SECRETS.to_vec();
    envs.extend([
        ("SWITCHBOARD_MAX_CONNECTIONS", "4"),
        // Not shorter: the four idle connections below must still hold their places when the
        // fifth arrives, on a machine busy with the other tests.
        ("SWITCHBOARD_HEADER_TIMEOUT_SECS", "3"),
        ("SWITCHBOARD_REQUEST_TIMEOUT_SECS", "4"),
    ]);
    let server = serve(&["--data", data_arg], &envs);
    let addr = server.addr;
    let closed_within = |stream: &mut TcpStream, limit: Duration| {
        let started = std::time::Instant::now();
        stream.set_read_timeout(Some(limit)).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        (
            started.elapsed(),
            String::from_utf8_lossy(&answer).into_owned(),
        )
    };

    // Headers a byte every 200 ms: cut off after the header timeout, not served.
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /api/teams HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let writer = {
        let mut slow = slow.try_clone().unwrap();
        std::thread::spawn(move || {
            for _ in 0..50 {
                if slow.write_all(b"X").is_err() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            false
        })
    };
    let (elapsed, answer) = closed_within(&mut slow, Duration::from_secs(9));
    assert!(elapsed < Duration::from_secs(7), "{elapsed:?}");
    assert!(!answer.contains(" 200 "), "{answer}");
    assert!(writer.join().unwrap(), "the server closed the connection");

    // A body announced and never sent: 408 after the request timeout.
    let mut stalled = TcpStream::connect(addr).unwrap();
    stalled
        .write_all(
            b"POST /webhooks/whatsapp HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n\
              x-hub-signature-256: sha256=0000000000000000000000000000000000000000000000000000000000000000\r\n\
              Content-Length: 100\r\n\r\n{",
        )
        .unwrap();
    let (elapsed, answer) = closed_within(&mut stalled, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(elapsed < Duration::from_secs(8), "{elapsed:?}");

    // Four idle connections take every place: the fifth is refused at once with 503.
    let idle: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut fifth = TcpStream::connect(addr).unwrap();
    let (_, answer) = closed_within(&mut fifth, Duration::from_secs(3));
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("Retry-After"), "{answer}");
    // The server closes the idle ones after the header timeout; the places are free again.
    for mut stream in idle {
        let (elapsed, _) = closed_within(&mut stream, Duration::from_secs(8));
        assert!(
            elapsed < Duration::from_secs(6),
            "an idle connection held {elapsed:?}"
        );
    }
    std::thread::sleep(Duration::from_millis(100));
    let (status, _) = http(addr, "GET", "/api/teams", &[], b"");
    assert_eq!(status, 200);
}

/// The process's peak resident memory (`VmHWM`), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmHWM");
    kib * 1024
}

/// Unauthenticated clients cannot pin memory: a delivery without the headers a signature
/// needs is refused before its body is read, and bodies being read share a budget; the
/// uploads beyond it are answered 503 with Retry-After, unread. 100 clients each sending
/// 5.9 MB of a 6 MB body held 635 MB before; here the peak stays within the budget and the
/// buffers of the connections.
#[test]
fn bodies_being_read_cannot_take_more_memory_than_their_budget() {
    const BUDGET_MB: u64 = 16;
    const CLIENTS: usize = 100;
    const DECLARED: usize = 6_000_000;
    const SENT: usize = 5_900_000;
    let data = tempfile::tempdir().unwrap();
    let mut envs = LOCAL_SECRETS.to_vec();
    let budget = BUDGET_MB.to_string();
    envs.push(("SWITCHBOARD_MAX_BODY_MEMORY_MB", &budget));
    let server = serve(&["--data", data.path().to_str().unwrap()], &envs);
    let addr = server.addr;
    assert_eq!(post_signed(addr, &fixture("text__pywa.json")), 200);
    let before = peak_rss(server.child.id());

    // Without a signature header: 401 before a byte of the body is sent.
    let mut unsigned = TcpStream::connect(addr).unwrap();
    unsigned
        .write_all(
            format!(
                "POST /webhooks/whatsapp HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n\
                 Content-Length: {DECLARED}\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    unsigned
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = [0u8; 12];
    unsigned.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 401");

    // A hundred uploads with a well-formed (wrong) signature, never finished.
    let head = format!(
        "POST /webhooks/whatsapp HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n\
         x-hub-signature-256: sha256={}\r\nContent-Length: {DECLARED}\r\n\r\n",
        "0".repeat(64)
    );
    let chunk = vec![b'1'; 64 * 1024];
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (head, chunk) = (head.clone(), chunk.clone());
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream
                    .set_write_timeout(Some(Duration::from_secs(3)))
                    .unwrap();
                stream.write_all(head.as_bytes()).unwrap();
                let mut sent = 0;
                while sent < SENT {
                    if stream.write_all(&chunk).is_err() {
                        break;
                    }
                    sent += chunk.len();
                }
                // Keep it open, unfinished, while the memory is read.
                stream
            })
        })
        .collect();
    let streams: Vec<TcpStream> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let grown = peak_rss(server.child.id()).saturating_sub(before);
    assert!(
        grown < (BUDGET_MB + 64) * 1024 * 1024,
        "100 unfinished uploads grew the peak by {} MiB (budget {BUDGET_MB} MiB)",
        grown >> 20
    );
    // The uploads beyond the budget were told to come back.
    let mut busy = 0;
    for mut stream in streams {
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        if answer.starts_with("HTTP/1.1 503") {
            assert!(answer.to_lowercase().contains("retry-after: 1"), "{answer}");
            busy += 1;
        }
    }
    assert!(
        busy + (BUDGET_MB as usize) / 5 >= CLIENTS,
        "only {busy} refused"
    );
    // And a signed delivery still gets in.
    assert_eq!(post_signed(addr, &fixture("text__pywa.json")), 200);
}

/// A signed body of millions of tiny values cannot make the server build a record (or a
/// document node) for each: it is counted in one streaming pass, found over the bound, and
/// kept unparsed (quarantined). A 5 MB body of 2.5 M integers peaked at 1.81 GB before.
#[test]
fn a_signed_body_of_millions_of_tiny_values_is_kept_unparsed_within_a_memory_bound() {
    let data = tempfile::tempdir().unwrap();
    let server = serve(&["--data", data.path().to_str().unwrap()], &LOCAL_SECRETS);
    let addr = server.addr;
    assert_eq!(post_signed(addr, &fixture("text__pywa.json")), 200);
    let before = peak_rss(server.child.id());
    let envelope = |entries: &str| {
        format!(r#"{{"object":"whatsapp_business_account","entry":[{entries}]}}"#).into_bytes()
    };
    let integers = envelope(&format!("{}1", "1,".repeat(2_500_000)));
    let empties = envelope(&format!("{}{{}}", "{},".repeat(200_000)));
    for body in [&integers, &empties] {
        let sig = signature(body);
        let (status, answer) = http(
            addr,
            "POST",
            "/webhooks/whatsapp",
            &[
                ("content-type", "application/json"),
                ("x-hub-signature-256", &sig),
            ],
            body,
        );
        assert_eq!(status, 200);
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.contains("quarantined"), "{answer}");
    }
    let grown = peak_rss(server.child.id()).saturating_sub(before);
    assert!(
        grown < 64 * 1024 * 1024,
        "two absurd deliveries grew the peak by {} MiB",
        grown >> 20
    );
    // Kept, whole, for a person to look at.
    let quarantine = get_json(addr, "/api/quarantine");
    assert_eq!(
        quarantine["items"].as_array().unwrap().len(),
        2,
        "{quarantine}"
    );
}

/// The prioritizer gets its share of the process while deliveries pour in: by the time the
/// last of 3,000 deliveries (from 16 clients at once, as fast as they go) is accepted, most
/// are already prioritized, and all of them soon after. Before, at saturation, all but one of
/// 28,063 entries were still waiting after 10 s, because every store operation took a thread
/// of its own and fought for one lock, and the consumer handled one message at a time.
#[test]
fn the_prioritizer_keeps_up_while_deliveries_pour_in() {
    const DELIVERIES: usize = 3000;
    const CLIENTS: usize = 16;
    let data = tempfile::tempdir().unwrap();
    let mut envs = LOCAL_SECRETS.to_vec();
    envs.push(("RUST_LOG", "warn,switchboard::metrics=info"));
    let server = serve(&["--data", data.path().to_str().unwrap()], &envs);
    let addr = server.addr;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            std::thread::spawn(move || {
                for n in (client..DELIVERIES).step_by(CLIENTS) {
                    let body = switchboard_core::channels::meta::samples::whatsapp_text(
                        "PN-LOAD",
                        &format!("5511{n:08}"),
                        &format!("wamid.load.{n}"),
                        1_700_000_000 + n as i64,
                        "hola, una consulta",
                    );
                    assert_eq!(post_signed(addr, &body), 200);
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    let prioritized = server.lags.lock().unwrap().len();
    assert!(
        prioritized * 2 >= DELIVERIES,
        "only {prioritized} of {DELIVERIES} messages prioritized by the time the last was accepted"
    );
    eventually(|| server.lags.lock().unwrap().len() >= DELIVERIES);
}

/// One signed WhatsApp delivery, without panicking on a dead server: its status, or `None`
/// when the connection failed or no whole answer came.
fn try_post(addr: SocketAddr, body: &[u8]) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let head = format!(
        "POST /webhooks/whatsapp HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         content-type: application/json\r\nx-hub-signature-256: {}\r\nContent-Length: {}\r\n\r\n",
        signature(body),
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let answer = String::from_utf8_lossy(&answer);
    answer.split_whitespace().nth(1)?.parse().ok()
}

/// The crash test: the real binary under concurrent load is killed (`SIGKILL`) at a random
/// moment, started again on the same data, and sent again what it had not acknowledged, as a
/// provider retries. Every delivery it acknowledged is there, and every message exactly once.
#[test]
fn killed_at_a_random_moment_it_loses_and_doubles_nothing_it_acknowledged() {
    const DELIVERIES: usize = 400;
    const CLIENTS: usize = 8;
    let data = tempfile::tempdir().unwrap();
    let data_arg = data.path().to_str().unwrap().to_owned();
    let mut server = serve(&["--data", &data_arg], &LOCAL_SECRETS);
    let addr = server.addr;
    let body = |n: usize| {
        switchboard_core::channels::meta::samples::whatsapp_text(
            "PN-CRASH",
            &format!("5521{n:08}"),
            &format!("wamid.crash.{n}"),
            1_700_000_000 + n as i64,
            "mi pedido no llegó",
        )
    };
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let kill_after = Duration::from_millis(50 + u64::from(seed % 700));
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(vec![false; DELIVERIES]));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let acknowledged = acknowledged.clone();
            std::thread::spawn(move || {
                for n in (client..DELIVERIES).step_by(CLIENTS) {
                    if try_post(addr, &body(n)) == Some(200) {
                        acknowledged.lock().unwrap()[n] = true;
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(kill_after);
    server.child.kill().unwrap(); // SIGKILL
    server.child.wait().unwrap();
    for client in clients {
        client.join().unwrap();
    }
    let acked: Vec<usize> = (0..DELIVERIES)
        .filter(|n| acknowledged.lock().unwrap()[*n])
        .collect();
    let context = format!(
        "killed after {kill_after:?}, {} of {DELIVERIES} acknowledged",
        acked.len()
    );

    // Started again on the same data; what was not acknowledged is sent again.
    let server = serve(&["--data", &data_arg], &LOCAL_SECRETS);
    for n in 0..DELIVERIES {
        if !acknowledged.lock().unwrap()[n] {
            assert_eq!(try_post(server.addr, &body(n)), Some(200), "{context}");
        }
    }
    // Every message once, in the conversation of its sender, and each prioritized.
    let mut conversations = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/conversations?limit=500&cursor={c}"),
            None => "/api/conversations?limit=500".to_owned(),
        };
        let page = get_json(server.addr, &path);
        conversations.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(conversations.len(), DELIVERIES, "{context}");
    let mut senders = std::collections::BTreeSet::new();
    for conversation in &conversations {
        let id = conversation["id"].as_str().unwrap();
        let messages = get_json(server.addr, &format!("/api/conversations/{id}/messages"));
        let items = messages["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{context}: {id} has {}", items.len());
        senders.insert(
            conversation["customer_provider_id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(senders.len(), DELIVERIES, "{context}");
    eventually(|| {
        let queue = get_json(server.addr, "/api/queue?limit=500");
        queue["items"].as_array().unwrap().len() >= DELIVERIES.min(500)
    });
}

/// The document `switchboard openapi` prints (generated from the handlers and their types).
fn openapi_document() -> Value {
    let output = logged(command(&[]).arg("openapi").output().expect("run"));
    assert!(output.status.success(), "switchboard openapi failed");
    serde_json::from_slice(&output.stdout).expect("the document is JSON")
}

#[test]
fn the_committed_openapi_document_is_the_one_the_code_generates() {
    let generated = openapi_document();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
    let committed: Value =
        serde_json::from_slice(&std::fs::read(&path).expect("docs/openapi.json")).unwrap();
    assert!(
        generated == committed,
        "docs/openapi.json is not what the code generates: run \
         `cargo run -p switchboard -- openapi > docs/openapi.json`"
    );
    assert_eq!(generated["openapi"], "3.1.0");
}

#[test]
fn every_route_of_the_api_is_documented_and_every_documented_operation_is_served() {
    let doc = openapi_document();
    let paths = doc["paths"].as_object().expect("paths");
    let mut documented = std::collections::BTreeSet::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    // The routes the API module names in its docs (each route it serves is listed there).
    let api_rs = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/http/src/api.rs"),
    )
    .unwrap();
    let mut named = std::collections::BTreeSet::new();
    for line in api_rs.lines().filter(|l| l.starts_with("//!")) {
        for method in ["GET", "POST", "PUT", "DELETE"] {
            for part in line.split(&format!("`{method} ")).skip(1) {
                let path = part.split(['?', '`', ' ']).next().unwrap();
                named.insert((method.to_owned(), path.to_owned()));
            }
        }
    }
    assert!(
        named.len() >= 20,
        "the module docs name the routes: {named:?}"
    );
    let undocumented: Vec<_> = named.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "not in the OpenAPI document: {undocumented:?}"
    );

    // Every documented operation reaches a handler: no "route not found", no 405.
    let data = tempfile::tempdir().unwrap();
    let (server, bearer) = serve_with_token(data.path());
    for (method, path) in &documented {
        let concrete = path.replace("{id}", "cv_0").replace("{other}", "cu_0");
        let (status, body) = http(
            server.addr,
            method,
            &concrete,
            &[
                ("authorization", bearer.as_str()),
                ("content-type", "application/json"),
            ],
            b"{}",
        );
        assert_ne!(status, 405, "{method} {path}");
        if status >= 400 {
            let problem: Value = serde_json::from_slice(&body).expect("a problem body");
            assert_ne!(
                problem["detail"], "route not found",
                "{method} {path} is documented but not served"
            );
        }
        let (unsigned, _) = http(server.addr, method, &concrete, &[], b"");
        assert_eq!(unsigned, 401, "{method} {path} without the token");
    }
}

/// The urgency model's file (`SWITCHBOARD_MODEL`, or where `infra/model.sh` puts it).
fn model_file() -> String {
    switchboard_encoder::default_model_path()
        .to_string_lossy()
        .into_owned()
}

/// The conversation of `from` once prioritized (its `priority` set).
fn prioritized(addr: SocketAddr, from: &str) -> Value {
    let mut found = Value::Null;
    eventually(|| {
        let page = get_json(addr, "/api/conversations");
        found = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["customer_provider_id"] == from && !c["priority"].is_null())
            .cloned()
            .unwrap_or(Value::Null);
        !found.is_null()
    });
    found
}

/// Issue 18 end to end through the real binary: with the model, a harm described without any
/// word of the lists lands in P1/P2 with the model's reason; without its file, `serve` starts
/// all the same, says so, and the word lists alone leave the message lower.
#[test]
fn serve_prioritizes_a_described_harm_with_the_model_and_falls_back_without_it() {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let harm = "se me incendió el horno al segundo uso";
    for (model, expect_model) in [
        (model_file(), true),
        ("/nonexistent/e5.bin".to_owned(), false),
    ] {
        let data = tempfile::tempdir().unwrap();
        let mut server = serve(
            &["--data", data.path().to_str().unwrap(), "--model", &model],
            &LOCAL_SECRETS,
        );
        let body = whatsapp_text("5215550009301", "wamid.HARM1", t, harm);
        assert_eq!(post_signed(server.addr, &body), 200);
        let conversation = prioritized(server.addr, "5215550009301");
        let priority = &conversation["priority"];
        let reasons = priority["reasons"].as_array().unwrap();
        let model_reason = reasons.iter().find(|r| r["signal"] == "model");
        if expect_model {
            assert!(
                ["P1", "P2"].contains(&priority["priority"].as_str().unwrap()),
                "{priority}"
            );
            let reason = model_reason.expect("the model's reason");
            assert!(reason["weight"].as_i64().unwrap() > 0, "{reason}");
            assert!(
                reason["detail"].as_str().unwrap().contains("nearest: "),
                "{reason}"
            );
        } else {
            assert!(
                ["P3", "P4"].contains(&priority["priority"].as_str().unwrap()),
                "{priority}"
            );
            assert!(model_reason.is_none(), "{priority}");
        }
        let _ = server.child.kill();
        let _ = server.child.wait();
    }
}
