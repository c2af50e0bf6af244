//! The store's edge cases on the real SDK client, with `aws-smithy-mocks` rules in place of
//! DynamoDB: a condition that fails because someone wrote in between, a transaction cancelled
//! by a concurrent writer, unprocessed items and keys under throttling, and a throttle that
//! never ends. The flows themselves are tested against moto (`tests/contract.rs`).

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::batch_get_item::BatchGetItemOutput;
use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemOutput;
use aws_sdk_dynamodb::operation::get_item::{GetItemError, GetItemOutput};
use aws_sdk_dynamodb::operation::put_item::{PutItemError, PutItemOutput};
use aws_sdk_dynamodb::operation::transact_write_items::{
    TransactWriteItemsError, TransactWriteItemsOutput,
};
use aws_sdk_dynamodb::types::error::{
    ConditionalCheckFailedException, ProvisionedThroughputExceededException,
    TransactionCanceledException,
};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, PutRequest, WriteRequest};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use switchboard_core::clock::SystemClock;
use switchboard_core::ids::RecordKey;
use switchboard_core::metrics::Tally;
use switchboard_core::model::{Conversation, Record, Webhook};
use switchboard_core::ports::{ConversationStore, MessageStore, RawDelivery, RecordLookup};

use super::DynamoStore;
use crate::retry::Backoff;

const TABLE: &str = "t";

/// Short waits: the tests count attempts, not seconds.
const FAST: Backoff = Backoff {
    min: Duration::from_millis(1),
    max: Duration::from_millis(2),
    attempts: 4,
};

fn store(client: Client) -> DynamoStore {
    DynamoStore::new(client, TABLE, 30, Arc::new(SystemClock)).with_backoff(FAST)
}

fn message() -> Record {
    let body = serde_json::json!({"object": "whatsapp_business_account", "entry": [{"id": "W",
        "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "1555", "phone_number_id": "PN"},
        "messages": [{"from": "5511", "id": "wamid.M1", "timestamp": "1700000000",
                      "type": "text", "text": {"body": "hola"}}]}}]}]});
    switchboard_core::channels::normalize(Webhook::Whatsapp, &body, chrono::Utc::now()).remove(0)
}

fn conversation() -> Conversation {
    Conversation::from_record(&message()).expect("a conversation")
}

/// The conversation item as the store writes it, at `version`.
fn conversation_item(c: &Conversation, version: i64) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".into(), AttributeValue::S(format!("C#{}", c.id))),
        ("sk".into(), AttributeValue::S("C".into())),
        (
            "state".into(),
            AttributeValue::S(serde_json::to_string(c).unwrap()),
        ),
        ("version".into(), AttributeValue::N(version.to_string())),
    ])
}

/// Someone wrote the item in between.
fn lost_condition() -> PutItemError {
    PutItemError::ConditionalCheckFailedException(
        ConditionalCheckFailedException::builder().build(),
    )
}

#[tokio::test]
async fn an_update_that_loses_its_condition_reads_again_and_writes_once() {
    let c = conversation();
    let item = conversation_item(&c, 3);
    let get = mock!(Client::get_item).then_output(move || {
        GetItemOutput::builder()
            .set_item(Some(item.clone()))
            .build()
    });
    let put = mock!(Client::put_item)
        .match_requests(|r| {
            r.condition_expression() == Some("#version = :version")
                && r.expression_attribute_values()
                    .and_then(|v| v.get(":version"))
                    == Some(&AttributeValue::N("3".into()))
        })
        .sequence()
        .error(lost_condition)
        .output(|| PutItemOutput::builder().build())
        .build();
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&get, &put]);
    let updated = store(client)
        .update_conversation(&c.id, &|c: &mut Conversation, _: &mut Tally| {
            c.sla_breaches += 1;
            true
        })
        .await
        .unwrap()
        .expect("the conversation");
    assert_eq!(
        updated.sla_breaches, 1,
        "the change applied to the fresh read"
    );
    assert_eq!((get.num_calls(), put.num_calls()), (2, 2));
}

#[tokio::test]
async fn an_update_that_keeps_losing_gives_up_with_an_error_after_its_attempts() {
    let c = conversation();
    let item = conversation_item(&c, 1);
    let get = mock!(Client::get_item).then_output(move || {
        GetItemOutput::builder()
            .set_item(Some(item.clone()))
            .build()
    });
    let put = mock!(Client::put_item).then_error(lost_condition);
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&get, &put]);
    let err = store(client)
        .update_conversation(&c.id, &|_: &mut Conversation, _: &mut Tally| true)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("update_conversation"), "{err}");
    assert_eq!(put.num_calls(), FAST.attempts);
}

#[tokio::test]
async fn a_change_that_changes_nothing_writes_nothing() {
    let c = conversation();
    let item = conversation_item(&c, 1);
    let get = mock!(Client::get_item).then_output(move || {
        GetItemOutput::builder()
            .set_item(Some(item.clone()))
            .build()
    });
    let put = mock!(Client::put_item).then_output(|| PutItemOutput::builder().build());
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&get, &put]);
    let same = store(client)
        .update_conversation(&c.id, &|_: &mut Conversation, _: &mut Tally| false)
        .await
        .unwrap();
    assert_eq!(same, Some(c));
    assert_eq!(put.num_calls(), 0);
}

#[tokio::test]
async fn a_throttled_read_is_an_error_naming_the_operation_not_a_panic() {
    let get = mock!(Client::get_item).then_error(|| {
        GetItemError::ProvisionedThroughputExceededException(
            ProvisionedThroughputExceededException::builder()
                .message("slow down")
                .build(),
        )
    });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&get]);
    let err = store(client)
        .conversation(&conversation().id)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("conversation"), "{err}");
}

/// An unprocessed-items answer that gives the first request back.
fn unprocessed(items: &HashMap<String, Vec<WriteRequest>>) -> BatchWriteItemOutput {
    BatchWriteItemOutput::builder()
        .set_unprocessed_items(Some(items.clone()))
        .build()
}

#[tokio::test]
async fn unprocessed_items_of_a_batch_write_are_sent_again_until_none_is_left() {
    let leftover = HashMap::from([(
        TABLE.to_owned(),
        vec![
            WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .item("pk", AttributeValue::S("D#x".into()))
                        .build()
                        .unwrap(),
                )
                .build(),
        ],
    )]);
    let write = mock!(Client::batch_write_item)
        .sequence()
        .output(move || unprocessed(&leftover))
        .times(2)
        .output(|| BatchWriteItemOutput::builder().build())
        .build();
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&write]);
    let delivery = RawDelivery::new(
        Webhook::Whatsapp,
        Bytes::from_static(b"{}"),
        chrono::Utc::now(),
        false,
    );
    store(client).keep_delivery(&delivery).await.unwrap();
    assert_eq!(write.num_calls(), 3);
}

#[tokio::test]
async fn a_batch_write_throttled_throughout_is_an_error_after_its_attempts() {
    let write = mock!(Client::batch_write_item).then_compute_output(|req| {
        BatchWriteItemOutput::builder()
            .set_unprocessed_items(req.request_items().cloned())
            .build()
    });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&write]);
    let delivery = RawDelivery::new(
        Webhook::Whatsapp,
        Bytes::from_static(b"{}"),
        chrono::Utc::now(),
        false,
    );
    let err = store(client).keep_delivery(&delivery).await.unwrap_err();
    assert!(err.to_string().contains("keep_delivery"), "{err}");
    assert_eq!(write.num_calls(), FAST.attempts);
}

#[tokio::test]
async fn unprocessed_keys_of_a_batch_get_are_read_again_and_every_record_found() {
    let record = message();
    let key = record.key();
    let doc = serde_json::to_string(&record).unwrap();
    let found = HashMap::from([
        ("pk".to_owned(), AttributeValue::S(format!("R#{key}"))),
        ("sk".to_owned(), AttributeValue::S("R".into())),
        ("doc".to_owned(), AttributeValue::S(doc)),
    ]);
    let get = mock!(Client::batch_get_item)
        .sequence()
        .output(|| {
            // Throttled: nothing read, every key given back.
            let keys = KeysAndAttributes::builder()
                .keys(HashMap::from([(
                    "pk".to_owned(),
                    AttributeValue::S("R#k".into()),
                )]))
                .build()
                .unwrap();
            BatchGetItemOutput::builder()
                .unprocessed_keys(TABLE, keys)
                .build()
        })
        .output(move || {
            BatchGetItemOutput::builder()
                .responses(TABLE, vec![found.clone()])
                .build()
        })
        .build();
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&get]);
    let records = store(client)
        .find(std::slice::from_ref(&key))
        .await
        .unwrap();
    assert_eq!(records.get(&key), Some(&record));
    assert_eq!(get.num_calls(), 2);
}

#[tokio::test]
async fn a_transaction_cancelled_by_a_concurrent_writer_is_decided_again_from_fresh_reads() {
    let record = message();
    // Nothing stored yet, every time it is read.
    let reads = mock!(Client::batch_get_item).then_output(|| BatchGetItemOutput::builder().build());
    let write = mock!(Client::transact_write_items)
        .sequence()
        .error(|| {
            TransactWriteItemsError::TransactionCanceledException(
                TransactionCanceledException::builder().build(),
            )
        })
        .output(|| TransactWriteItemsOutput::builder().build())
        .build();
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&reads, &write]);
    let pending = store(client)
        .record(std::slice::from_ref(&record))
        .await
        .unwrap();
    assert_eq!(
        pending
            .iter()
            .map(|e| &e.record_key)
            .collect::<Vec<&RecordKey>>(),
        [&record.key()]
    );
    assert_eq!(write.num_calls(), 2);
    // Each round reads what is stored (records, customers and conversations, in one call)
    // afresh.
    assert_eq!(reads.num_calls(), 2);
}
