//! [`SqsIntakeQueue`]: the intake queue on SQS.

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use std::time::Duration;

use switchboard_core::ports::{BackendError, IntakeQueue, QueueEntry};

/// SQS accepts at most 10 entries per `SendMessageBatch`.
pub const SEND_BATCH_MAX: usize = 10;
const ATTEMPTS: u32 = 5;

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
            let mut pending: Vec<usize> = (0..chunk.len()).collect();
            for attempt in 0..ATTEMPTS {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
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
                pending = out
                    .failed()
                    .iter()
                    .filter_map(|f| f.id().parse().ok())
                    .collect();
                if pending.is_empty() {
                    break;
                }
                tracing::warn!(
                    failed = pending.len(),
                    attempt,
                    "SQS refused part of a batch"
                );
            }
            if !pending.is_empty() {
                return Err(BackendError::unavailable(
                    "enqueue",
                    format!(
                        "SQS refused {} entries after {ATTEMPTS} attempts",
                        pending.len()
                    ),
                ));
            }
        }
        Ok(())
    }
}
