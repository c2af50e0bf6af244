//! [`EventBridgePublisher`]: domain events on an EventBridge bus.

use crate::retry::{Backoff, resend_leftovers};
use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::primitives::DateTime as AwsDateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use switchboard_core::ports::{BackendError, DomainEvent, EventPublisher};

/// The `source` of every event switchboard publishes (what a rule matches on).
pub const EVENT_SOURCE: &str = "switchboard";
/// EventBridge accepts at most 10 entries per `PutEvents`.
pub const PUT_EVENTS_MAX: usize = 10;

/// Publishes domain events to one bus: `source` [`EVENT_SOURCE`], `detail-type` the event type
/// (`conversation.prioritized`, …), `detail` the event's fields plus `event_id` (the
/// deterministic id, for consumers to drop repeats), `version` and `time`
/// ([`DomainEvent::bus_detail`]). Entries go 10 a call; entries
/// EventBridge reports as failed are sent again (a bounded number of times) before `publish`
/// gives up with an error.
#[derive(Clone)]
pub struct EventBridgePublisher {
    client: Client,
    bus: String,
}

impl EventBridgePublisher {
    /// A publisher to the bus named `bus` (a name or an ARN).
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }

    fn entry(&self, event: &DomainEvent) -> Result<PutEventsRequestEntry, BackendError> {
        Ok(PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(EVENT_SOURCE)
            .detail_type(&event.kind)
            .time(AwsDateTime::from_millis(event.time.timestamp_millis()))
            .detail(event.bus_detail().to_string())
            .build())
    }
}

#[async_trait]
impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), BackendError> {
        const OP: &str = "publish";
        for chunk in events.chunks(PUT_EVENTS_MAX) {
            let all: Vec<&DomainEvent> = chunk.iter().collect();
            resend_leftovers(
                OP,
                "PutEvents",
                Backoff::STANDARD,
                all,
                |pending| async move {
                    let entries = pending
                        .iter()
                        .map(|e| self.entry(e))
                        .collect::<Result<Vec<_>, _>>()?;
                    let out = self
                        .client
                        .put_events()
                        .set_entries(Some(entries))
                        .send()
                        .await
                        .map_err(|e| BackendError::unavailable(OP, e))?;
                    // Results come in request order; an entry with an error code failed.
                    let failed: Vec<&DomainEvent> = pending
                        .into_iter()
                        .zip(out.entries())
                        .filter(|(_, result)| result.error_code().is_some())
                        .map(|(event, _)| event)
                        .collect();
                    if !failed.is_empty() {
                        tracing::warn!(
                            failed = failed.len(),
                            "EventBridge refused part of a batch"
                        );
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
    use aws_sdk_eventbridge::operation::put_events::PutEventsOutput;
    use aws_sdk_eventbridge::types::PutEventsResultEntry;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use std::sync::{Arc, Mutex};

    fn event(n: usize) -> DomainEvent {
        DomainEvent {
            id: format!("ev_{n}"),
            kind: "conversation.prioritized".into(),
            version: 1,
            time: chrono::Utc::now(),
            detail: serde_json::json!({"n": n}),
        }
    }

    #[tokio::test]
    async fn entries_eventbridge_refuses_are_sent_again_and_only_those() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let put = mock!(Client::put_events).then_compute_output(move |req| {
            let entries = req.entries();
            let mut seen = seen.lock().unwrap();
            seen.push(entries.len());
            // The first call refuses its second entry; later calls take everything.
            let results = (0..entries.len())
                .map(|i| {
                    let refused = seen.len() == 1 && i == 1;
                    let entry = PutEventsResultEntry::builder();
                    if refused {
                        entry.error_code("ThrottlingException").build()
                    } else {
                        entry.event_id(format!("e{i}")).build()
                    }
                })
                .collect();
            PutEventsOutput::builder()
                .set_entries(Some(results))
                .failed_entry_count(i32::from(seen.len() == 1))
                .build()
        });
        let client = mock_client!(aws_sdk_eventbridge, RuleMode::MatchAny, [&put]);
        let events: Vec<DomainEvent> = (0..12).map(event).collect();
        EventBridgePublisher::new(client, "bus")
            .publish(&events)
            .await
            .unwrap();
        // 12 events: a call of 10 (one refused), its one again, then the last 2.
        assert_eq!(*sizes.lock().unwrap(), [10, 1, 2]);
    }
}
