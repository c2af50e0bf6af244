//! E-mail on AWS, through the `email-intake` function's handler on moto: SES's receipt rule
//! stores each message in the mail bucket (here the test puts it there as SES does, with the
//! verdict headers SES adds), the bucket's event names it, and the handler takes it in.
//!
//! * the corpus (`tests/fixtures/email/`) through S3 events: each message stored once, a
//!   repeated event (S3 may notify twice; Lambda retries) a no-op;
//! * attachments written apart to `attachments/<delivery>/<sha256>` and referenced from the record
//!   (`s3://…`), with their type and name; SES's spam and virus verdicts kept on the record;
//! * an event naming an object that is not there fails the invocation (Lambda retries it,
//!   then keeps it at the on-failure destination): nothing is acknowledged that was not read;
//! * an agent's reply on an e-mail conversation sent through SES v2 (moto), once per
//!   idempotency key, from the mailbox, `Re:` the subject, threaded with `In-Reply-To` and
//!   `References` under its own `Message-ID`, the id it is stored under; SES's refusal of an
//!   unverified mailbox a 502 with SES's reason, nothing stored.

use aws_lambda_events::event::s3::S3Event;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;

use switchboard_aws::mail::MailIntake;
use switchboard_aws::ses::SesMailer;
use switchboard_core::clock::SystemClock;
use switchboard_core::intake::Intake;
use switchboard_tests::{
    Backend, all_records, aws, call, conversation_of, email_post, fixtures_dir, moto,
};

async fn s3() -> aws_sdk_s3::Client {
    let sdk = moto().await.sdk_config().await;
    // moto on loopback answers path-style requests only.
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    )
}

async fn bucket(s3: &aws_sdk_s3::Client) -> String {
    let name = format!(
        "mail-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    s3.create_bucket().bucket(&name).send().await.unwrap();
    name
}

/// The S3 notification SES's store causes, for `key` (URL-encoded, as S3 sends it).
fn event(bucket: &str, key: &str) -> S3Event {
    let encoded: String = key
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                (b as char).to_string()
            }
            b' ' => "+".to_owned(),
            other => format!("%{other:02X}"),
        })
        .collect();
    serde_json::from_value(json!({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-12-05T10:00:00.000Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:SES"},
        "requestParameters": {"sourceIPAddress": "10.0.0.1"},
        "responseElements": {"x-amz-request-id": "R", "x-amz-id-2": "I"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "mail",
               "bucket": {"name": bucket, "ownerIdentity": {"principalId": "A"},
                          "arn": format!("arn:aws:s3:::{bucket}")},
               "object": {"key": encoded, "size": 1, "eTag": "e", "sequencer": "0"}}}]}))
    .expect("an S3 event")
}

/// `message` as SES stores it: its verdict headers first.
fn as_ses_stores(message: &[u8]) -> Vec<u8> {
    let mut stored = b"X-SES-Spam-Verdict: PASS\r\nX-SES-Virus-Verdict: PASS\r\n\
        Authentication-Results: amazonses.com; spf=pass smtp.mailfrom=example.net; \
        dkim=pass header.i=@example.net; dmarc=pass header.from=example.net\r\n"
        .to_vec();
    stored.extend_from_slice(message);
    stored
}

fn intake(backend: &Backend, s3: aws_sdk_s3::Client) -> MailIntake {
    MailIntake::new(
        s3,
        Intake::new(
            backend.store.clone(),
            backend.queue.clone(),
            Arc::new(SystemClock),
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_ses_stores_in_s3_are_taken_in_once_with_their_attachments_in_s3() {
    let backend = aws().await;
    let app = backend.app(None);
    let s3 = s3().await;
    let bucket = bucket(&s3).await;
    let mail = intake(&backend, s3.clone());

    // The whole corpus, each message by its own event, each event twice.
    let mut names = Vec::new();
    for entry in std::fs::read_dir(fixtures_dir().join("email")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "eml") {
            names.push(path);
        }
    }
    names.sort();
    assert!(names.len() >= 13);
    let mut enqueued = 0;
    for (i, path) in names.iter().enumerate() {
        let key = format!("inbound/ses message {i}=");
        let bytes = as_ses_stores(&std::fs::read(path).unwrap());
        s3.put_object()
            .bucket(&bucket)
            .key(&key)
            .body(bytes.into())
            .send()
            .await
            .unwrap();
        let first = mail.handle(&event(&bucket, &key)).await.unwrap();
        assert_eq!(first.len(), 1, "{path:?}");
        enqueued += first[0].enqueued;
        let again = mail.handle(&event(&bucket, &key)).await.unwrap();
        assert_eq!(
            again[0].enqueued, 0,
            "a repeated event is a no-op: {path:?}"
        );
    }
    let stored = all_records(&app).await;
    let messages: Vec<&Value> = stored.iter().filter(|r| r["record"] == "message").collect();
    let ids: HashSet<&str> = messages
        .iter()
        .filter_map(|m| m["provider_message_id"].as_str())
        .collect();
    assert_eq!(messages.len(), ids.len(), "each message once");
    assert_eq!(messages.len(), 11, "as through the webhook: {ids:?}");
    assert_eq!(
        enqueued,
        stored
            .iter()
            .filter(|r| r["conversation_id"].is_string())
            .count()
    );

    // The attachments: apart in S3, referenced from the record with type and name.
    let invoice = messages
        .iter()
        .find(|m| m["provider_message_id"] == "multi-9921@example.net")
        .unwrap();
    let attachments = invoice["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 2, "{invoice}");
    for a in attachments {
        let url = a["url"].as_str().unwrap();
        let sha = a["sha256"].as_str().unwrap();
        // Stored per message: attachments/<the message's delivery id>/<sha256>.
        let key = url
            .strip_prefix(&format!("s3://{bucket}/"))
            .expect("in the mail bucket");
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(parts.len(), 3, "{url}");
        assert_eq!((parts[0], parts[2]), ("attachments", sha), "{url}");
        assert_eq!(parts[1].len(), 64, "{url}");
        let object = s3
            .get_object()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(object.content_type(), a["mime_type"].as_str(), "{a}");
        let body = object.body.collect().await.unwrap().into_bytes();
        assert!(
            a["media_id"]
                .as_str()
                .unwrap()
                .starts_with(&body.len().to_string()),
            "{a}"
        );
    }
    assert_eq!(attachments[0]["filename"], "factura.pdf");
    assert_eq!(attachments[1]["mime_type"], "image/png");
    // SES's verdicts are on the stored record.
    let key = switchboard_core::ids::RecordKey::from_stored(invoice["key"].as_str().unwrap());
    let found = backend
        .store
        .find(std::slice::from_ref(&key))
        .await
        .unwrap();
    let Some(switchboard_core::model::Record::Message(stored)) = found.get(&key) else {
        panic!("the invoice is stored");
    };
    // The record names the object it came from.
    let source = stored.source.as_deref().expect("the message's object");
    assert!(
        source.starts_with(&format!("s3://{bucket}/inbound/ses message ")),
        "{source}"
    );
    for verdict in ["spam", "virus", "dmarc", "spf", "dkim"] {
        assert_eq!(
            stored.raw["auth"][verdict], "pass",
            "{verdict}: {}",
            stored.raw
        );
    }

    // An event naming an object that is not there fails: Lambda retries it.
    let missing = mail.handle(&event(&bucket, "inbound/not-there")).await;
    assert!(missing.is_err(), "{missing:?}");
    // The attachment objects the function wrote cause events too: they are no messages.
    let url = attachments[0]["url"].as_str().unwrap();
    let own = mail
        .handle(&event(
            &bucket,
            &format!("attachments/{}", url.split_once("/attachments/").unwrap().1),
        ))
        .await
        .unwrap();
    assert!(own.is_empty());
}

/// Every object key of `bucket`.
async fn keys(s3: &aws_sdk_s3::Client, bucket: &str) -> std::collections::BTreeSet<String> {
    let listed = s3.list_objects_v2().bucket(bucket).send().await.unwrap();
    listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

/// The erasure of a person who wrote by e-mail deletes their message as SES stored it and its
/// attachments from the mail bucket, and nothing of another customer who sent the same file;
/// an erasure that cannot reach the bucket counts the objects as left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_deletes_the_persons_mail_objects_and_no_one_elses() {
    let backend = aws().await;
    let app = backend.app(None);
    let s3 = s3().await;
    let bucket = bucket(&s3).await;
    let mail = intake(&backend, s3.clone());
    let carla = std::fs::read(fixtures_dir().join("email/multipart_attachment.eml")).unwrap();
    // Another sender, the same attachments.
    let pedro = String::from_utf8(carla.clone())
        .unwrap()
        .replace(
            "From: Carla Gomez <carla@example.net>",
            "From: Pedro Ruiz <pedro@example.org>",
        )
        .replace("Cc: Marta <marta@example.net>\r\n", "")
        .replace("<multi-9921@example.net>", "<multi-7710@example.org>")
        .into_bytes();
    assert_ne!(carla, pedro);
    for (key, message) in [("inbound/carla", &carla), ("inbound/pedro", &pedro)] {
        s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(as_ses_stores(message).into())
            .send()
            .await
            .unwrap();
        mail.handle(&event(&bucket, key)).await.unwrap();
    }
    let before = keys(&s3, &bucket).await;
    assert_eq!(
        before.len(),
        6,
        "two messages, two attachments each: {before:?}"
    );

    let customer = |address: &'static str| {
        let app = app.clone();
        async move {
            let conversation = conversation_of(&app, address).await;
            switchboard_core::ids::CustomerId::from_stored(
                conversation["customer_id"].as_str().expect("a customer"),
            )
        }
    };
    let erasure = backend.erasure.clone().expect("the AWS backend erases");
    let with_bucket = erasure
        .clone()
        .with_site(Arc::new(switchboard_aws::mail::MailObjects::new(
            s3.clone(),
            bucket.clone(),
        )));
    let receipt = with_bucket
        .erase(&customer("carla@example.net").await)
        .await
        .unwrap()
        .expect("carla is stored");
    assert_eq!(
        receipt.attachments, 3,
        "her message and its two attachments"
    );
    assert_eq!(receipt.attachments_left, 0);
    let after = keys(&s3, &bucket).await;
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(after.contains("inbound/pedro"), "{after:?}");
    assert!(!after.iter().any(|k| k == "inbound/carla"), "{after:?}");
    // Pedro's copies of the same files are whole.
    for key in after.iter().filter(|k| k.starts_with("attachments/")) {
        s3.get_object()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
            .unwrap();
    }

    // Without the bucket, the objects stay and the receipt says so.
    let receipt = erasure
        .erase(&customer("pedro@example.org").await)
        .await
        .unwrap()
        .expect("pedro is stored");
    assert_eq!((receipt.attachments, receipt.attachments_left), (0, 3));
    assert_eq!(keys(&s3, &bucket).await, after);
}

/// The raw messages moto's SES accepted from `source` (its internal model data).
async fn sent_from(source: &str) -> Vec<String> {
    use std::io::{Read, Write};
    let endpoint = moto().await.endpoint.clone();
    let address = endpoint.trim_start_matches("http://").to_owned();
    let body = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        write!(
            stream,
            "GET /moto-api/data.json HTTP/1.0\r\nHost: {address}\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap()
    })
    .await
    .unwrap();
    let data: Value = serde_json::from_str(&body).unwrap();
    data["ses"]["RawMessage"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["source"] == source)
        .map(|m| m["raw_data"].as_str().unwrap().to_owned())
        .collect()
}

async fn reply(app: &axum::Router, conversation: &str, text: &str, key: &str) -> (u16, Value) {
    let request = http::Request::post(format!("/api/conversations/{conversation}/reply"))
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(axum::body::Body::from(json!({ "text": text }).to_string()))
        .unwrap();
    let (status, body) = call(app, request).await;
    (
        status.as_u16(),
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_go_out_through_ses_once_threaded_under_the_message_they_answer() {
    let backend = aws().await;
    let sdk = moto().await.sdk_config().await;
    let ses = aws_sdk_sesv2::Client::new(&sdk);
    ses.create_email_identity()
        .email_identity("replies.acme.example")
        .send()
        .await
        .unwrap();
    let mailer = Arc::new(SesMailer::new(ses, Arc::new(SystemClock)));
    let (app, prioritizer) = backend.app_at(Arc::new(SystemClock), mailer);
    let question = b"Delivered-To: support@replies.acme.example\r\n\
        From: Ines Duarte <ines@example.org>\r\nTo: support@replies.acme.example\r\n\
        Reply-To: ines.duarte@example.org\r\nSubject: Encomenda 77\r\n\
        Date: Fri, 04 Dec 2026 09:00:00 +0000\r\nMessage-ID: <q-77@example.org>\r\n\
        References: <q-70@example.org>\r\n\
        Content-Type: text/plain; charset=UTF-8\r\n\r\nA encomenda 77 nao chegou.\r\n";
    let (status, _) = call(&app, email_post(question, "msg_q77")).await;
    assert_eq!(status, 200);
    backend.prioritize_all(&prioritizer).await;
    let conversation = conversation_of(&app, "ines@example.org").await;
    let id = conversation["id"].as_str().unwrap();

    let (status, sent) = reply(&app, id, "Ja seguiu: chega amanha.", "k-77").await;
    assert_eq!(status, 201, "{sent}");
    let message_id = sent["provider_message_id"].as_str().unwrap().to_owned();
    assert!(message_id.ends_with("@replies.acme.example"), "{sent}");
    let (status, again) = reply(&app, id, "Ja seguiu: chega amanha.", "k-77").await;
    assert!(status == 200 || status == 201, "{again}");
    assert_eq!(again["provider_message_id"], sent["provider_message_id"]);

    let mails = sent_from("support@replies.acme.example").await;
    assert_eq!(mails.len(), 1, "sent once per key: {mails:?}");
    let mail = &mails[0];
    for header in [
        format!("Message-ID: <{message_id}>"),
        "In-Reply-To: <q-77@example.org>".to_owned(),
        "References: <q-70@example.org> <q-77@example.org>".to_owned(),
        "Subject: Re: Encomenda 77".to_owned(),
        "To: <ines.duarte@example.org>".to_owned(),
    ] {
        assert!(mail.contains(&header), "{header} in {mail}");
    }
    let after = conversation_of(&app, "ines@example.org").await;
    assert!(after["waiting_since"].is_null(), "answered: {after}");

    // A mailbox SES has not verified: SES's refusal, nothing stored.
    let (status, _) = call(
        &app,
        email_post(
            &b"Delivered-To: help@unverified.example\r\nFrom: luis@example.org\r\n\
              To: help@unverified.example\r\nSubject: Hola\r\nMessage-ID: <q-1@example.org>\r\n\r\nHola\r\n"[..],
            "msg_q1",
        ),
    )
    .await;
    assert_eq!(status, 200);
    backend.prioritize_all(&prioritizer).await;
    let other = conversation_of(&app, "luis@example.org").await;
    let (status, refused) = reply(&app, other["id"].as_str().unwrap(), "Hola", "k-1").await;
    assert_eq!(status, 502, "{refused}");
    assert!(refused.to_string().contains("MessageRejected"), "{refused}");
    assert!(sent_from("help@unverified.example").await.is_empty());
}
