//! Meta messaging events: the `messaging[]` and `standby[]` items of Messenger (`object: page`)
//! and Instagram (`object: instagram`) deliveries, which share one shape.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::unsupported;
use crate::model::{Channel, ProviderId, Record};

/// Normalizes one messaging event of `channel` received on the page or account `account_id`
/// (the entry's id). `standby` is true for events of `standby[]` (another app owns the thread).
/// Never fails: see the module docs of `channels`.
pub(crate) fn messaging_event(
    channel: Channel,
    account_id: &ProviderId,
    event: &Value,
    standby: bool,
    received_at: DateTime<Utc>,
) -> Vec<Record> {
    let _ = standby;
    vec![unsupported(
        channel,
        Some(account_id.clone()),
        "unsupported",
        event,
        received_at,
    )]
}
