//! `switchboard redrive` on AWS: every message of a queue's dead-letter queue back to the queue.
//!
//! The dead-letter queue is the one the queue's own `RedrivePolicy` names, so nothing else
//! needs configuring. Messages are received from it in batches of ten, sent to the queue (on
//! a FIFO queue with their message group, and with the dead letter's message id as the
//! deduplication id, so a redrive cut short and run again within SQS's five-minute window
//! sends nothing twice), and deleted from the dead-letter queue only once sent. The consumers
//! are idempotent per record, so a message sent again after that window is still a no-op.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};

use switchboard_core::ports::BackendError;

/// Seconds a received dead letter stays hidden while it is moved.
const MOVE_VISIBILITY_SECS: i32 = 60;

/// What a redrive did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redriven {
    /// The dead-letter queue's URL.
    pub dead_letter_queue: String,
    /// Messages moved back.
    pub moved: usize,
}

/// Moves every message of the dead-letter queue of the queue at `queue_url` back to it.
///
/// # Errors
/// [`BackendError::Unavailable`] when a call fails, or when the queue has no redrive policy;
/// what was moved before stays moved, and a new run goes on from there.
pub async fn redrive(client: &Client, queue_url: &str) -> Result<Redriven, BackendError> {
    const OP: &str = "redrive";
    let fail = |e: Box<dyn std::error::Error + Send + Sync>| BackendError::unavailable(OP, e);
    let attributes = client
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .map_err(|e| fail(e.into()))?;
    let policy = attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::RedrivePolicy))
        .ok_or_else(|| fail(format!("the queue {queue_url} has no dead-letter queue").into()))?;
    let dlq_arn = serde_json::from_str::<serde_json::Value>(policy)
        .ok()
        .and_then(|p| p["deadLetterTargetArn"].as_str().map(str::to_owned))
        .ok_or_else(|| fail("the queue's redrive policy names no dead-letter queue".into()))?;
    let dlq_name = dlq_arn.rsplit(':').next().unwrap_or_default();
    let dlq_url = client
        .get_queue_url()
        .queue_name(dlq_name)
        .send()
        .await
        .map_err(|e| fail(e.into()))?
        .queue_url
        .ok_or_else(|| fail("GetQueueUrl answered no URL".into()))?;
    let fifo = queue_url.ends_with(".fifo");

    let mut moved = 0;
    loop {
        let received = client
            .receive_message()
            .queue_url(&dlq_url)
            .max_number_of_messages(10)
            // Long polling asks every SQS server, so an empty answer means an empty queue.
            .wait_time_seconds(1)
            .visibility_timeout(MOVE_VISIBILITY_SECS)
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .send()
            .await
            .map_err(|e| fail(e.into()))?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        let mut entries = Vec::with_capacity(messages.len());
        for (i, message) in messages.iter().enumerate() {
            let mut entry = SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(message.body().unwrap_or_default());
            if fifo {
                let group = message
                    .attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                    .map_or("redrive", String::as_str);
                entry = entry
                    .message_group_id(group)
                    .message_deduplication_id(message.message_id().unwrap_or_default());
            }
            entries.push(entry.build().map_err(|e| fail(e.into()))?);
        }
        let sent = client
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| fail(e.into()))?;
        let deletes = sent
            .successful()
            .iter()
            .filter_map(|ok| {
                let i: usize = ok.id().parse().ok()?;
                let handle = messages.get(i)?.receipt_handle()?;
                DeleteMessageBatchRequestEntry::builder()
                    .id(ok.id())
                    .receipt_handle(handle)
                    .build()
                    .ok()
            })
            .collect::<Vec<_>>();
        let sent_now = deletes.len();
        if sent_now > 0 {
            client
                .delete_message_batch()
                .queue_url(&dlq_url)
                .set_entries(Some(deletes))
                .send()
                .await
                .map_err(|e| fail(e.into()))?;
        }
        moved += sent_now;
        if !sent.failed().is_empty() {
            // They stay in the dead-letter queue (visible again after the move's timeout).
            return Err(fail(
                format!(
                    "{} dead letters could not be sent back ({}); run redrive again",
                    sent.failed().len(),
                    sent.failed()[0].code()
                )
                .into(),
            ));
        }
    }
    tracing::info!(moved, "dead letters moved back to their queue");
    Ok(Redriven {
        dead_letter_queue: dlq_url,
        moved,
    })
}
