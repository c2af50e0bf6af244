//! The intake forwarder: the outbox table's stream in, the intake queue out.
//!
//! Each outbox item ([`crate::dynamo::DynamoOutbox`]) holds the queue entries of one write, for
//! one conversation. The `intake-forwarder` function receives the stream's records (Lambda's
//! DynamoDB event source mapping, `ReportBatchItemFailures`) and sends their entries to the
//! FIFO intake queue, in stream order. A stream record appears once and in the order of the
//! writes to its item; the queue's deduplication id (the record key) drops a resend within
//! five minutes, and the prioritizer is idempotent past that, so an entry forwarded twice (a
//! retried batch) changes nothing.
//!
//! A failed send stops the batch: the response names the first stream record not forwarded,
//! and the event source mapping retries from there, so a conversation's entries never
//! overtake each other. A record that carries no entries (a removal by TTL, an item not
//! written by the intake) is skipped; one whose entries cannot be read is logged and skipped
//! too, since retrying it could never succeed and would hold the whole shard.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

use switchboard_core::ports::{IntakeQueue, QueueEntry};

use crate::resources::OUTBOX_ENTRIES;
use crate::sqs::SEND_BATCH_MAX;

/// Lambda's DynamoDB stream event: the part the forwarder reads.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamEvent {
    /// The stream records, in stream order.
    #[serde(rename = "Records", default)]
    pub records: Vec<StreamRecord>,
}

/// One stream record.
#[derive(Debug, Clone, Deserialize)]
pub struct StreamRecord {
    /// `INSERT`, `MODIFY` or `REMOVE`.
    #[serde(rename = "eventName", default)]
    pub event_name: String,
    /// The change.
    pub dynamodb: StreamChange,
}

/// The change a stream record carries.
#[derive(Debug, Clone, Deserialize)]
pub struct StreamChange {
    /// Its position in the shard: what a batch item failure names.
    #[serde(rename = "SequenceNumber")]
    pub sequence_number: String,
    /// The item after the change, in DynamoDB's JSON (`{"entries": {"S": "[…]"}}`); absent
    /// for a removal.
    #[serde(rename = "NewImage", default)]
    pub new_image: Option<HashMap<String, serde_json::Value>>,
}

/// The partial batch response of a stream event source mapping.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StreamResponse {
    /// The records to retry: at most one, the first not forwarded (the mapping retries from
    /// it).
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<StreamItemFailure>,
}

/// A record to retry, by its sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamItemFailure {
    /// The record's `SequenceNumber`.
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

impl StreamRecord {
    /// The queue entries this record's new image holds; `Ok(None)` when it holds none (a
    /// removal, another item), `Err` when they cannot be read.
    fn entries(&self) -> Result<Option<Vec<QueueEntry>>, serde_json::Error> {
        if self.event_name == "REMOVE" {
            return Ok(None);
        }
        let Some(text) = self
            .dynamodb
            .new_image
            .as_ref()
            .and_then(|image| image.get(OUTBOX_ENTRIES))
            .and_then(|value| value.get("S"))
            .and_then(|s| s.as_str())
        else {
            return Ok(None);
        };
        serde_json::from_str(text).map(Some)
    }
}

/// Sends the entries of the outbox's stream records to the intake queue. See the module docs.
#[derive(Clone)]
pub struct Forwarder {
    queue: Arc<dyn IntakeQueue>,
}

impl Forwarder {
    /// A forwarder to `queue`.
    pub fn new(queue: Arc<dyn IntakeQueue>) -> Self {
        Self { queue }
    }

    /// Forwards `event`'s entries in order, up to ten a send (records are grouped while their
    /// entries fit one `SendMessageBatch`); answers the record to retry from, if a send failed.
    pub async fn forward(&self, event: &StreamEvent) -> StreamResponse {
        let mut group: Vec<QueueEntry> = Vec::new();
        let mut first_of_group: Option<&str> = None;
        let mut forwarded = 0;
        for record in &event.records {
            let entries = match record.entries() {
                Ok(Some(entries)) if !entries.is_empty() => entries,
                Ok(_) => continue,
                Err(e) => {
                    tracing::error!(
                        sequence = %record.dynamodb.sequence_number,
                        error = %e,
                        "an outbox item's entries cannot be read; skipped"
                    );
                    continue;
                }
            };
            if !group.is_empty() && group.len() + entries.len() > SEND_BATCH_MAX {
                if let Err(failure) = self.send(&group, first_of_group).await {
                    return failure;
                }
                forwarded += group.len();
                group.clear();
            }
            if group.is_empty() {
                first_of_group = Some(&record.dynamodb.sequence_number);
            }
            group.extend(entries);
        }
        if !group.is_empty() {
            if let Err(failure) = self.send(&group, first_of_group).await {
                return failure;
            }
            forwarded += group.len();
        }
        tracing::info!(
            records = event.records.len(),
            forwarded,
            "outbox stream forwarded"
        );
        StreamResponse::default()
    }

    async fn send(
        &self,
        entries: &[QueueEntry],
        first: Option<&str>,
    ) -> Result<(), StreamResponse> {
        self.queue.enqueue(entries).await.map_err(|e| {
            tracing::warn!(error = %e, entries = entries.len(), "forwarding failed; the stream retries");
            StreamResponse {
                batch_item_failures: first
                    .map(|s| StreamItemFailure {
                        item_identifier: s.to_owned(),
                    })
                    .into_iter()
                    .collect(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use std::sync::Mutex;
    use switchboard_core::ports::BackendError;

    #[derive(Default)]
    struct Recorder {
        sends: Mutex<Vec<Vec<String>>>,
        fail_at: Option<usize>,
    }

    #[async_trait]
    impl IntakeQueue for Recorder {
        async fn enqueue(&self, entries: &[QueueEntry]) -> Result<(), BackendError> {
            let mut sends = self.sends.lock().unwrap();
            if Some(sends.len()) == self.fail_at {
                return Err(BackendError::unavailable(
                    "enqueue",
                    std::io::Error::other("down"),
                ));
            }
            sends.push(entries.iter().map(|e| e.record_key.to_string()).collect());
            Ok(())
        }
    }

    fn entry(key: &str) -> serde_json::Value {
        serde_json::json!({"record_key": key, "conversation_id": "cv_1", "channel": "whatsapp",
                           "record_type": "message", "kind": "text"})
    }

    fn record(seq: u32, name: &str, keys: &[&str]) -> serde_json::Value {
        let entries: Vec<_> = keys.iter().map(|k| entry(k)).collect();
        serde_json::json!({"eventName": name, "dynamodb": {"SequenceNumber": seq.to_string(),
            "NewImage": {"conversation": {"S": "cv_1"},
                         "entries": {"S": serde_json::to_string(&entries).unwrap()}}}})
    }

    fn event(records: Vec<serde_json::Value>) -> StreamEvent {
        serde_json::from_value(serde_json::json!({ "Records": records })).unwrap()
    }

    #[tokio::test]
    async fn entries_go_in_stream_order_ten_a_send() {
        let recorder = Arc::new(Recorder::default());
        let forwarder = Forwarder::new(recorder.clone());
        let keys: Vec<String> = (0..12).map(|i| format!("k{i}")).collect();
        let k: Vec<&str> = keys.iter().map(String::as_str).collect();
        let removal =
            serde_json::json!({"eventName": "REMOVE", "dynamodb": {"SequenceNumber": "9"}});
        let other = serde_json::json!({"eventName": "INSERT", "dynamodb": {"SequenceNumber": "10",
            "NewImage": {"conversation": {"S": "x"}}}});
        let answer = forwarder
            .forward(&event(vec![
                record(1, "INSERT", &k[0..4]),
                removal,
                record(2, "MODIFY", &k[4..9]),
                other,
                record(3, "MODIFY", &k[9..12]),
            ]))
            .await;
        assert_eq!(answer, StreamResponse::default());
        let sends = recorder.sends.lock().unwrap().clone();
        assert_eq!(sends, vec![keys[0..9].to_vec(), keys[9..12].to_vec()]);
    }

    #[tokio::test]
    async fn a_failed_send_names_the_first_record_not_forwarded_and_stops() {
        let recorder = Arc::new(Recorder {
            fail_at: Some(1),
            ..Recorder::default()
        });
        let forwarder = Forwarder::new(recorder.clone());
        let answer = forwarder
            .forward(&event(vec![
                record(1, "INSERT", &["a", "b", "c", "d", "e", "f"]),
                record(2, "MODIFY", &["g", "h", "i", "j", "k"]),
                record(3, "MODIFY", &["l"]),
            ]))
            .await;
        assert_eq!(
            answer.batch_item_failures,
            vec![StreamItemFailure {
                item_identifier: "2".into()
            }]
        );
        assert_eq!(
            recorder.sends.lock().unwrap().len(),
            1,
            "nothing after the failure"
        );
    }

    #[tokio::test]
    async fn unreadable_entries_are_skipped_not_retried_forever() {
        let recorder = Arc::new(Recorder::default());
        let forwarder = Forwarder::new(recorder.clone());
        let bad = serde_json::json!({"eventName": "INSERT", "dynamodb": {"SequenceNumber": "1",
            "NewImage": {"entries": {"S": "not json"}}}});
        let answer = forwarder
            .forward(&event(vec![bad, record(2, "INSERT", &["a"])]))
            .await;
        assert_eq!(answer, StreamResponse::default());
        assert_eq!(
            recorder.sends.lock().unwrap().clone(),
            vec![vec!["a".to_owned()]]
        );
    }

    #[test]
    fn a_stream_event_that_is_not_json_of_the_shape_is_an_error_not_a_panic() {
        for text in [
            "{}",
            "{\"Records\": []}",
            "{\"Records\": [{}]}",
            "[]",
            "null",
        ] {
            let _ = serde_json::from_str::<StreamEvent>(text);
        }
        assert!(
            serde_json::from_str::<StreamEvent>("{}")
                .unwrap()
                .records
                .is_empty()
        );
    }
}
