//! The [`IdempotencyStore`] port on the table: one item per key, `pk` `K#<key>`, `sk` `K`, with
//! the request's `fingerprint`, the `result` once done, and the table's TTL attribute set to
//! the key's expiry (DynamoDB deletes it within days of that; a claim treats an expired item as
//! free).
//!
//! A claim is one conditional `PutItem` (`attribute_not_exists(pk) OR ttl < now`); when it
//! fails on its condition, one consistent `GetItem` says who holds the key.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use switchboard_core::ports::{BackendError, Claim, IdempotencyStore, StoredRecord};

use super::{DynamoStore, corrupt, get_s, is_condition_failure, n, s, unavailable};
use crate::resources::{PK, SK, TTL_ATTRIBUTE};

fn key_pk(key: &str) -> String {
    format!("K#{key}")
}

const KEY_SK: &str = "K";

#[async_trait]
impl IdempotencyStore for DynamoStore {
    async fn claim(
        &self,
        key: &str,
        fingerprint: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<Claim, BackendError> {
        const OP: &str = "claim_idempotency_key";
        let put = self
            .client
            .put_item()
            .table_name(self.table.as_ref())
            .item(PK, s(key_pk(key)))
            .item(SK, s(KEY_SK))
            .item("fingerprint", s(fingerprint))
            .item(TTL_ATTRIBUTE, n(expires_at.timestamp()))
            .condition_expression("attribute_not_exists(#pk) OR #ttl < :now")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#ttl", TTL_ATTRIBUTE)
            .expression_attribute_values(":now", n(self.clock.now().timestamp()))
            .send()
            .await;
        match put {
            Ok(_) => return Ok(Claim::New),
            Err(e) if is_condition_failure(&e) => {}
            Err(e) => return Err(unavailable(OP)(e)),
        }
        let item = self
            .client
            .get_item()
            .table_name(self.table.as_ref())
            .key(PK, s(key_pk(key)))
            .key(SK, s(KEY_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable(OP))?
            .item
            .ok_or_else(|| {
                // Released between the two calls: report it held; the client tries again.
                BackendError::unavailable(OP, "the key was released during the claim")
            })?;
        let fingerprint = get_s(&item, "fingerprint")
            .ok_or_else(|| corrupt(OP, "idempotency key without fingerprint"))?
            .to_owned();
        Ok(match get_s(&item, "result") {
            None => Claim::InProgress { fingerprint },
            Some(result) => Claim::Done {
                fingerprint,
                record: Box::new(
                    serde_json::from_str(result).map_err(|_| corrupt(OP, "idempotency result"))?,
                ),
            },
        })
    }

    async fn complete(&self, key: &str, record: &StoredRecord) -> Result<(), BackendError> {
        const OP: &str = "complete_idempotency_key";
        let result = serde_json::to_string(record).map_err(unavailable(OP))?;
        self.client
            .update_item()
            .table_name(self.table.as_ref())
            .key(PK, s(key_pk(key)))
            .key(SK, s(KEY_SK))
            .update_expression("SET #result = :result")
            .condition_expression("attribute_exists(#pk)")
            .expression_attribute_names("#result", "result")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":result", s(result))
            .send()
            .await
            .map_err(unavailable(OP))?;
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), BackendError> {
        const OP: &str = "release_idempotency_key";
        let deleted = self
            .client
            .delete_item()
            .table_name(self.table.as_ref())
            .key(PK, s(key_pk(key)))
            .key(SK, s(KEY_SK))
            .condition_expression("attribute_not_exists(#result)")
            .expression_attribute_names("#result", "result")
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(()),
            // It has a result: it is not released, and that is right.
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(unavailable(OP)(e)),
        }
    }
}
