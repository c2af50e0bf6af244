//! The metrics' counters on the table: one item per bucket, `pk` `M#<yyyy-mm>` (the month of
//! its UTC hour), `sk` `<hour, 12 digits>#<dims id>`, with the bucket's `dims` (JSON), one
//! number attribute per counter, added to with `ADD` in the transaction of the change it
//! counts, and the table's TTL attribute at [`metrics::expires_at`].
//!
//! A month's buckets are one partition, in hour order: a report reads one `Query` per month
//! it covers (and one more per megabyte of buckets), whatever the volume counted.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, Update};
use chrono::{DateTime, Datelike, Utc};
use std::collections::HashMap;

use switchboard_core::metrics::{self, BucketKey, Counts, Dims, Tally};
use switchboard_core::ports::{BackendError, MetricsReader};

use super::{DynamoStore, Item, corrupt, get_s, n, s, unavailable};
use crate::resources::{PK, SK, TTL_ATTRIBUTE};

/// The attribute holding a bucket's dims.
const DIMS: &str = "dims";

fn month_pk(hour: i64) -> String {
    let at = DateTime::<Utc>::from_timestamp(hour, 0).unwrap_or_default();
    format!("M#{:04}-{:02}", at.year(), at.month())
}

fn hour_sk(hour: i64) -> String {
    format!("{:012}", hour.max(0))
}

impl DynamoStore {
    /// The `ADD` of each bucket of `tally`, one update per bucket item.
    pub(super) fn counter_updates(
        &self,
        op: &'static str,
        tally: &Tally,
    ) -> Result<Vec<Update>, BackendError> {
        tally
            .buckets()
            .map(|(key, counts)| {
                let dims = serde_json::to_string(&key.dims).map_err(unavailable(op))?;
                let fields = counts.fields();
                let adds: Vec<String> = (0..fields.len()).map(|i| format!("#f{i} :v{i}")).collect();
                let mut update = Update::builder()
                    .table_name(self.table.as_ref())
                    .key(PK, s(month_pk(key.hour)))
                    .key(SK, s(format!("{}#{}", hour_sk(key.hour), key.dims.id())))
                    .update_expression(format!(
                        "SET #dims = :dims, #ttl = :ttl ADD {}",
                        adds.join(", ")
                    ))
                    .expression_attribute_names("#dims", DIMS)
                    .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
                    .expression_attribute_values(":dims", s(dims))
                    .expression_attribute_values(":ttl", n(metrics::expires_at(key.hour)));
                for (i, (name, value)) in fields.iter().enumerate() {
                    update = update
                        .expression_attribute_names(format!("#f{i}"), name)
                        .expression_attribute_values(format!(":v{i}"), n(value));
                }
                update.build().map_err(unavailable(op))
            })
            .collect()
    }
}

fn bucket_from(item: &Item) -> Result<(BucketKey, Counts), BackendError> {
    const OP: &str = "metrics";
    let hour = get_s(item, SK)
        .and_then(|sk| sk.split_once('#'))
        .and_then(|(hour, _)| hour.parse().ok())
        .ok_or_else(|| corrupt(OP, "metrics bucket key"))?;
    let dims: Dims = get_s(item, DIMS)
        .and_then(|d| serde_json::from_str(d).ok())
        .ok_or_else(|| corrupt(OP, "metrics bucket dims"))?;
    let counts = Counts::from_fields(item.iter().filter_map(|(name, value)| {
        let AttributeValue::N(v) = value else {
            return None;
        };
        Some((name.as_str(), v.parse().ok()?))
    }));
    Ok((BucketKey { hour, dims }, counts))
}

#[async_trait]
impl MetricsReader for DynamoStore {
    /// One `Query` per month of the range (`sk` between the first and the last hour), each
    /// followed to its last page.
    async fn buckets(
        &self,
        from_hour: i64,
        to_hour: i64,
    ) -> Result<Vec<(BucketKey, Counts)>, BackendError> {
        const OP: &str = "metrics";
        let mut out = Vec::new();
        if to_hour <= from_hour {
            return Ok(out);
        }
        let last_hour = to_hour - metrics::HOUR;
        let mut months: Vec<String> = Vec::new();
        let mut hour = from_hour;
        while hour <= last_hour {
            let month = month_pk(hour);
            if months.last() != Some(&month) {
                months.push(month);
            }
            // Next day is enough to find every month, and cheap.
            hour += 86_400;
        }
        let last_month = month_pk(last_hour);
        if months.last() != Some(&last_month) {
            months.push(last_month);
        }
        for month in months {
            let mut start: Option<HashMap<String, AttributeValue>> = None;
            loop {
                let page = self
                    .client
                    .query()
                    .table_name(self.table.as_ref())
                    .key_condition_expression("#pk = :pk AND #sk BETWEEN :from AND :to")
                    .expression_attribute_names("#pk", PK)
                    .expression_attribute_names("#sk", SK)
                    .expression_attribute_values(":pk", s(month.clone()))
                    .expression_attribute_values(":from", s(hour_sk(from_hour)))
                    // `~` sorts after `#`: every dims id of the last hour.
                    .expression_attribute_values(":to", s(format!("{}~", hour_sk(last_hour))))
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(unavailable(OP))?;
                for item in page.items() {
                    out.push(bucket_from(item)?);
                }
                match page.last_evaluated_key {
                    Some(key) if !key.is_empty() => start = Some(key),
                    _ => break,
                }
            }
        }
        Ok(out)
    }
}
