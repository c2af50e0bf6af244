//! SQS batches for the queue consumers: Lambda's SQS event in, the partial batch response out
//! (`ReportBatchItemFailures`), through the one [batch runner](switchboard_core::consume);
//! and, for `switchboard serve --backend aws` and tests, a poller that does what Lambda's event
//! source mapping does.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};

use switchboard_core::consume::{BatchItem, QueueHandler, run_batch};
use switchboard_core::ports::BackendError;

/// The batch of an SQS event: each message's id and body.
fn batch_items(event: SqsEvent) -> Vec<BatchItem> {
    event
        .records
        .into_iter()
        .enumerate()
        .map(|(i, m)| BatchItem {
            // A message without an id cannot be named in the response; such an event is not
            // one SQS sends.
            id: m.message_id.unwrap_or_else(|| format!("#{i}")),
            body: m.body.unwrap_or_default(),
        })
        .collect()
}

/// The response naming `failed` for retry.
fn batch_response(failed: Vec<String>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for id in failed {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = id;
        response.batch_item_failures.push(failure);
    }
    response
}

/// Handles an SQS batch with `handler` (the event source mapping of its queue, with
/// `ReportBatchItemFailures`): the response names the messages to retry, and only those are
/// received again; the others are deleted. A message that keeps failing goes to the DLQ after
/// the queue's `maxReceiveCount`.
pub async fn handle_sqs<H: QueueHandler>(handler: &H, event: SqsEvent) -> SqsBatchResponse {
    let items = batch_items(event);
    let failed = run_batch(handler, &items).await;
    tracing::info!(
        queue = H::QUEUE,
        messages = items.len(),
        failed = failed.len(),
        "batch handled"
    );
    batch_response(failed)
}

/// Receives one batch from the queue at `queue_url` (waiting up to `wait` for one) and hands
/// it to `handler` as Lambda's event source mapping does, then deletes every message not
/// reported failed. For `switchboard serve --backend aws` and tests; deployed, the event source
/// mappings in `template.yaml` do this. `visibility` overrides the queue's visibility timeout
/// for the messages received (how soon a failed one is received again). Answers how many
/// messages were received.
pub async fn poll_queue<H: QueueHandler>(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    handler: &H,
    wait: std::time::Duration,
    visibility: Option<std::time::Duration>,
) -> Result<usize, BackendError> {
    const OP: &str = "receive";
    let out = sqs
        .receive_message()
        .queue_url(queue_url)
        .max_number_of_messages(10)
        .wait_time_seconds(i32::try_from(wait.as_secs()).unwrap_or(20).min(20))
        .set_visibility_timeout(visibility.map(|v| i32::try_from(v.as_secs()).unwrap_or(i32::MAX)))
        .send()
        .await
        .map_err(|e| BackendError::unavailable(OP, e))?;
    let messages = out.messages.unwrap_or_default();
    if messages.is_empty() {
        return Ok(0);
    }
    let mut event = SqsEvent::default();
    for m in &messages {
        let mut message = SqsMessage::default();
        message.message_id = m.message_id.clone();
        message.receipt_handle = m.receipt_handle.clone();
        message.body = m.body.clone();
        event.records.push(message);
    }
    let response = handle_sqs(handler, event).await;
    let failed: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    for m in &messages {
        if failed.contains(&m.message_id().unwrap_or_default()) {
            continue;
        }
        if let Some(receipt) = m.receipt_handle() {
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(receipt)
                .send()
                .await
                .map_err(|e| BackendError::unavailable("delete", e))?;
        }
    }
    Ok(messages.len())
}
