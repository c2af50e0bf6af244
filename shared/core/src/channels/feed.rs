//! Public conversations: Facebook page feed changes (`object: page`, `changes[]`) and Instagram
//! comments and mentions (`object: instagram`, `changes[]`).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::unsupported;
use crate::model::{Channel, ProviderId, Record};

/// Normalizes one `changes[]` item of a page entry (`field` `feed`, `mention`, `ratings`, …).
pub(crate) fn page_change(
    page_id: &ProviderId,
    field: &str,
    value: &Value,
    received_at: DateTime<Utc>,
) -> Vec<Record> {
    vec![unsupported(
        Channel::FacebookFeed,
        Some(page_id.clone()),
        field,
        value,
        received_at,
    )]
}

/// Normalizes one `changes[]` item of an Instagram entry (`comments`, `live_comments`,
/// `mentions`, `story_insights`, …).
pub(crate) fn instagram_change(
    account_id: &ProviderId,
    field: &str,
    value: &Value,
    received_at: DateTime<Utc>,
) -> Vec<Record> {
    vec![unsupported(
        Channel::Instagram,
        Some(account_id.clone()),
        field,
        value,
        received_at,
    )]
}
