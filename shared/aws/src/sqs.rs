//! [`SqsIntakeQueue`]: the intake queue on SQS.

use crate::retry::{Backoff, resend_leftovers};
use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use switchboard_core::ports::{BackendError, IntakeQueue, QueueEntry};

/// SQS accepts at most 10 entries per `SendMessageBatch`.
pub const SEND_BATCH_MAX: usize = 10;

/// The intake queue on SQS.
///
/// On a FIFO queue (URL ending in `.fifo`) each entry's message group is its conversation, so a
/// conversation's records are consumed in order, and its deduplication id is the record key, so
/// a repeat within SQS's five-minute window is dropped by SQS. Entries go in batches of 10;
/// entries SQS reports as failed are sent again (a bounded number of times) before `enqueue`
/// gives up with an error.
#[derive(Clone)]
pub struct SqsIntakeQueue {
    client: Client,
    url: String,
    fifo: bool,
}

impl SqsIntakeQueue {
    /// The queue at `url`.
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        let url = url.into();
        Self {
            fifo: url.ends_with(".fifo"),
            client,
            url,
        }
    }

    fn entry(
        &self,
        id: usize,
        entry: &QueueEntry,
    ) -> Result<SendMessageBatchRequestEntry, BackendError> {
        let body =
            serde_json::to_string(entry).map_err(|e| BackendError::unavailable("enqueue", e))?;
        let mut builder = SendMessageBatchRequestEntry::builder()
            .id(id.to_string())
            .message_body(body);
        if self.fifo {
            builder = builder
                .message_group_id(entry.conversation_id.as_str())
                .message_deduplication_id(entry.record_key.as_str());
        }
        builder
            .build()
            .map_err(|e| BackendError::unavailable("enqueue", e))
    }
}

#[async_trait]
impl IntakeQueue for SqsIntakeQueue {
    async fn enqueue(&self, entries: &[QueueEntry]) -> Result<(), BackendError> {
        for chunk in entries.chunks(SEND_BATCH_MAX) {
            let all: Vec<usize> = (0..chunk.len()).collect();
            resend_leftovers(
                "enqueue",
                "SendMessageBatch",
                Backoff::STANDARD,
                all,
                |pending| async move {
                    let batch = pending
                        .iter()
                        .map(|&i| self.entry(i, &chunk[i]))
                        .collect::<Result<Vec<_>, _>>()?;
                    let out = self
                        .client
                        .send_message_batch()
                        .queue_url(&self.url)
                        .set_entries(Some(batch))
                        .send()
                        .await
                        .map_err(|e| BackendError::unavailable("enqueue", e))?;
                    // The ids of the failed entries are their indexes in the chunk.
                    let failed: Vec<usize> = out
                        .failed()
                        .iter()
                        .filter_map(|f| f.id().parse().ok())
                        .collect();
                    if !failed.is_empty() {
                        tracing::warn!(failed = failed.len(), "SQS refused part of a batch");
                    }
                    Ok((Vec::<()>::new(), failed))
                },
            )
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchOutput;
    use aws_sdk_sqs::types::{BatchResultErrorEntry, SendMessageBatchResultEntry};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use std::sync::{Arc, Mutex};
    use switchboard_core::ids::{ConversationId, RecordKey};
    use switchboard_core::model::Channel;

    fn entry(n: usize) -> QueueEntry {
        QueueEntry {
            record_key: RecordKey::from_stored(format!("k{n}")),
            conversation_id: ConversationId::from_stored("cv_1"),
            channel: Channel::Whatsapp,
            record_type: "message".into(),
            kind: "text".into(),
            account_id: None,
        }
    }

    #[tokio::test]
    async fn entries_sqs_refuses_are_sent_again_keeping_their_group_and_dedup_ids() {
        let calls = Arc::new(Mutex::new(Vec::<Vec<(String, String)>>::new()));
        let seen = calls.clone();
        let send = mock!(Client::send_message_batch).then_compute_output(move |req| {
            let mut seen = seen.lock().unwrap();
            let batch: Vec<(String, String)> = req
                .entries()
                .iter()
                .map(|e| {
                    (
                        e.id().to_owned(),
                        e.message_deduplication_id().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            let first = seen.is_empty();
            seen.push(batch.clone());
            let mut out = SendMessageBatchOutput::builder()
                .set_successful(Some(Vec::new()))
                .set_failed(Some(Vec::new()));
            for (id, _) in batch {
                if first && id == "3" {
                    out = out.failed(
                        BatchResultErrorEntry::builder()
                            .id(id)
                            .code("ServiceUnavailable")
                            .sender_fault(false)
                            .build()
                            .unwrap(),
                    );
                } else {
                    out = out.successful(
                        SendMessageBatchResultEntry::builder()
                            .id(id)
                            .message_id("m")
                            .md5_of_message_body("x")
                            .build()
                            .unwrap(),
                    );
                }
            }
            out.build().unwrap()
        });
        let client = mock_client!(aws_sdk_sqs, RuleMode::MatchAny, [&send]);
        let entries: Vec<QueueEntry> = (0..5).map(entry).collect();
        SqsIntakeQueue::new(client, "https://sqs/q.fifo")
            .enqueue(&entries)
            .await
            .unwrap();
        let calls = calls.lock().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].len(), 5);
        assert_eq!(calls[1], [("3".to_owned(), "k3".to_owned())]);
    }
}
