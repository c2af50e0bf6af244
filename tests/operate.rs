//! The operator's commands on stored data: `switchboard replay` re-normalizes kept deliveries
//! idempotently, `switchboard redrive` moves dead letters back to their queue (embedded and
//! SQS on moto), each exactly once.

use bytes::Bytes;
use chrono::{TimeDelta, Utc};
use std::collections::HashMap;
use std::sync::Arc;

use switchboard::Backend as CliBackend;
use switchboard::operate::{self, Redrive};
use switchboard_core::clock::SystemClock;
use switchboard_core::model::Webhook;
use switchboard_core::ports::{ConversationReader, MessageStore, PageRequest, RawDelivery};
use switchboard_embedded::SqliteStore;
use switchboard_tests::{fixtures, moto};

fn env() -> impl Fn(&str) -> Option<String> {
    |_: &str| None
}

#[tokio::test]
async fn replay_stores_what_kept_deliveries_hold_once_and_leaves_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), 30, Arc::new(SystemClock)).unwrap();
    // Deliveries kept by an older version whose normalizer did not read them: their bytes are
    // there, their records are not.
    let (_, body) = fixtures("whatsapp")
        .into_iter()
        .find(|(name, _)| name.starts_with("text__"))
        .expect("a WhatsApp text fixture");
    let readable = RawDelivery::new(Webhook::Whatsapp, Bytes::from(body), Utc::now(), true);
    let unreadable = RawDelivery::new(
        Webhook::Whatsapp,
        Bytes::from_static(b"not json at all"),
        Utc::now(),
        true,
    );
    for delivery in [&readable, &unreadable] {
        store.keep_delivery(delivery).await.unwrap();
    }
    let conversations = |store: &SqliteStore| {
        let store = store.clone();
        async move {
            store
                .conversations(
                    None,
                    PageRequest {
                        cursor: None,
                        limit: 100,
                    },
                )
                .await
                .unwrap()
                .items
                .len()
        }
    };
    assert_eq!(conversations(&store).await, 0);

    let since = Utc::now() - TimeDelta::hours(1);
    // Another webhook's deliveries only: nothing read.
    let none = operate::replay(dir.path(), since, Some(Webhook::Telegram), &env())
        .await
        .unwrap();
    assert_eq!(none.deliveries, 0);

    let first = operate::replay(dir.path(), since, None, &env())
        .await
        .unwrap();
    assert_eq!(first.deliveries, 2);
    assert_eq!(first.still_quarantined, 1);
    assert!(first.records >= 1);
    assert!(
        first.new >= 1,
        "the message is stored and enqueued: {first:?}"
    );
    assert_eq!(conversations(&store).await, 1);
    let queued = store.queue_len().await.unwrap();
    assert_eq!(queued, first.new);

    // Again: nothing new, nothing enqueued twice.
    let second = operate::replay(dir.path(), since, None, &env())
        .await
        .unwrap();
    assert_eq!((second.deliveries, second.new), (2, 0));
    assert_eq!(second.records, first.records);
    assert_eq!(store.queue_len().await.unwrap(), queued);
    assert_eq!(conversations(&store).await, 1);

    // Nothing received since a later time.
    let later = operate::replay(dir.path(), Utc::now() + TimeDelta::minutes(1), None, &env())
        .await
        .unwrap();
    assert_eq!(later.deliveries, 0);
}

#[test]
fn since_takes_a_time_or_a_date_and_names_what_it_wants() {
    assert_eq!(
        operate::parse_since("2026-12-01").unwrap().to_rfc3339(),
        "2026-12-01T00:00:00+00:00"
    );
    assert_eq!(
        operate::parse_since("2026-12-01T08:30:00+01:00")
            .unwrap()
            .to_rfc3339(),
        "2026-12-01T07:30:00+00:00"
    );
    let e = operate::parse_since("yesterday").unwrap_err();
    assert!(e.contains("RFC 3339") && e.contains("yesterday"), "{e}");
}

#[tokio::test]
async fn redrive_on_the_embedded_store_reports_what_it_moved() {
    let dir = tempfile::tempdir().unwrap();
    // An empty store: nothing to move, and the store is created.
    let done = operate::redrive(CliBackend::Embedded, dir.path(), &env())
        .await
        .unwrap();
    assert_eq!(
        done,
        [Redrive {
            from: format!("the dead letters in {}", dir.path().display()),
            to: "its intake queue".to_owned(),
            moved: 0
        }]
    );
}

#[tokio::test]
async fn redrive_moves_every_sqs_dead_letter_back_once_with_its_message_group() {
    let moto = moto().await;
    let sdk = moto.sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let names = switchboard_aws::resources::ResourceNames::with_prefix(&format!(
        "redrive{}",
        std::process::id()
    ));
    let queues = switchboard_aws::resources::provision(&dynamodb, &sqs, &names)
        .await
        .unwrap();
    let mut sent = HashMap::new();
    for i in 0..13 {
        let body = format!("{{\"entry\":{i}}}");
        sqs.send_message()
            .queue_url(&queues.intake_dlq_url)
            .message_body(&body)
            .message_group_id(format!("cv_{}", i % 4))
            .message_deduplication_id(format!("k{i}"))
            .send()
            .await
            .unwrap();
        sent.insert(body, format!("cv_{}", i % 4));
    }

    let first = switchboard_aws::redrive::redrive(&sqs, &queues.intake_queue_url)
        .await
        .unwrap();
    assert_eq!(first.moved, 13);
    assert_eq!(first.dead_letter_queue, queues.intake_dlq_url);
    let again = switchboard_aws::redrive::redrive(&sqs, &queues.intake_queue_url)
        .await
        .unwrap();
    assert_eq!(again.moved, 0, "the dead-letter queue is empty");

    let mut back = HashMap::new();
    loop {
        let got = sqs
            .receive_message()
            .queue_url(&queues.intake_queue_url)
            .max_number_of_messages(10)
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId,
            )
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        if got.is_empty() {
            break;
        }
        for m in got {
            let group = m.attributes().unwrap()
                [&aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId]
                .clone();
            assert!(
                back.insert(m.body().unwrap().to_owned(), group).is_none(),
                "a dead letter came back twice"
            );
            sqs.delete_message()
                .queue_url(&queues.intake_queue_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    assert_eq!(
        back, sent,
        "every one back once, in its conversation's group"
    );
}

#[tokio::test]
async fn redrive_names_a_queue_without_a_dead_letter_queue() {
    let moto = moto().await;
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let url = sqs
        .create_queue()
        .queue_name(format!("plain{}", std::process::id()))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let e = switchboard_aws::redrive::redrive(&sqs, &url)
        .await
        .unwrap_err();
    let text = switchboard_core::errors::chain(&e);
    assert!(text.contains("has no dead-letter queue"), "{text}");
}
