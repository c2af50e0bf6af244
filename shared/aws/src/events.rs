//! [`EventBridgePublisher`]: domain events on an EventBridge bus.

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::primitives::DateTime as AwsDateTime;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use std::time::Duration;

use switchboard_core::ports::{BackendError, DomainEvent, EventPublisher};

/// The `source` of every event switchboard publishes (what a rule matches on).
pub const EVENT_SOURCE: &str = "switchboard";
/// EventBridge accepts at most 10 entries per `PutEvents`.
pub const PUT_EVENTS_MAX: usize = 10;
const ATTEMPTS: u32 = 5;

/// Publishes domain events to one bus: `source` [`EVENT_SOURCE`], `detail-type` the event type
/// (`conversation.prioritized`, …), `detail` the event's fields plus `event_id` (the
/// deterministic id, for consumers to drop repeats) and `time`. Entries go 10 a call; entries
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
        let mut detail = match &event.detail {
            serde_json::Value::Object(map) => map.clone(),
            other => serde_json::Map::from_iter([("value".to_owned(), other.clone())]),
        };
        detail.insert("event_id".into(), event.id.clone().into());
        detail.insert("time".into(), event.time.to_rfc3339().into());
        Ok(PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(EVENT_SOURCE)
            .detail_type(&event.kind)
            .time(AwsDateTime::from_millis(event.time.timestamp_millis()))
            .detail(serde_json::Value::Object(detail).to_string())
            .build())
    }
}

#[async_trait]
impl EventPublisher for EventBridgePublisher {
    async fn publish(&self, events: &[DomainEvent]) -> Result<(), BackendError> {
        const OP: &str = "publish";
        for chunk in events.chunks(PUT_EVENTS_MAX) {
            let mut pending: Vec<&DomainEvent> = chunk.iter().collect();
            for attempt in 0..ATTEMPTS {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(50 << attempt)).await;
                }
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
                pending = pending
                    .into_iter()
                    .zip(out.entries())
                    .filter(|(_, result)| result.error_code().is_some())
                    .map(|(event, _)| event)
                    .collect();
                if pending.is_empty() {
                    break;
                }
                tracing::warn!(
                    failed = pending.len(),
                    attempt,
                    "EventBridge refused part of a batch"
                );
            }
            if !pending.is_empty() {
                return Err(BackendError::unavailable(
                    OP,
                    format!(
                        "EventBridge refused {} events after {ATTEMPTS} attempts",
                        pending.len()
                    ),
                ));
            }
        }
        Ok(())
    }
}
