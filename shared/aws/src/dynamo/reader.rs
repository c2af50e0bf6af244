//! The [`ConversationReader`] port on DynamoDB: listings as index queries with opaque cursors,
//! a team's queue on `gsi3`, raw deliveries reassembled from their chunks.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::io::Read;

use switchboard_core::ids::{ConversationId, DeliveryId};
use switchboard_core::model::{Channel, Conversation};
use switchboard_core::ports::{
    BackendError, ConversationReader, Page, PageRequest, QueueName, QueuePosition, RawDelivery,
    StoredRecord,
};

use super::*;
use crate::resources::{GSI1, GSI2, IndexSpec, PK, SK};

/// The keys a cursor carries: the table's and the index's key attributes of the last item.
fn cursor_of(item: &Item, index: Option<IndexSpec>) -> Option<String> {
    let mut names = vec![PK, SK];
    if let Some(index) = index {
        names.extend([index.pk, index.sk]);
    }
    let map: serde_json::Map<String, serde_json::Value> = names
        .into_iter()
        .map(|name| Some((name.to_owned(), get_s(item, name)?.into())))
        .collect::<Option<_>>()?;
    Some(URL_SAFE_NO_PAD.encode(serde_json::Value::Object(map).to_string()))
}

/// The `ExclusiveStartKey` of a cursor, checked to belong to the same listing (`expect_pk` is
/// the partition the listing reads: the index's, or the table's).
fn start_key(
    cursor: &str,
    index: Option<IndexSpec>,
    expect_pk: &str,
) -> Result<Item, BackendError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| BackendError::BadCursor)?;
    let json: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|_| BackendError::BadCursor)?;
    let mut names = vec![PK, SK];
    if let Some(index) = index {
        names.extend([index.pk, index.sk]);
    }
    if json.len() != names.len() {
        return Err(BackendError::BadCursor);
    }
    let mut key = Item::new();
    for name in names {
        let value = json
            .get(name)
            .and_then(|v| v.as_str())
            .ok_or(BackendError::BadCursor)?;
        key.insert(name.to_owned(), s(value));
    }
    let partition = index.map_or(PK, |i| i.pk);
    if get_s(&key, partition) != Some(expect_pk) {
        return Err(BackendError::BadCursor);
    }
    Ok(key)
}

impl DynamoStore {
    /// One page of the records of `partition` on `index`, in provider-time order.
    pub(super) async fn records_page(
        &self,
        operation: &'static str,
        index: IndexSpec,
        partition: &str,
        page: &PageRequest,
    ) -> Result<Page<StoredRecord>, BackendError> {
        let (items, next) = self
            .query_page(operation, Some(index), partition, true, page)
            .await?;
        let items = items
            .iter()
            .map(stored_record_from)
            .collect::<Result<_, _>>()?;
        Ok(Page { items, next })
    }

    /// One page of a query on `partition` of the table or an index, `limit + 1` read to know
    /// whether another page follows.
    pub(super) async fn query_page(
        &self,
        operation: &'static str,
        index: Option<IndexSpec>,
        partition: &str,
        forward: bool,
        page: &PageRequest,
    ) -> Result<(Vec<Item>, Option<String>), BackendError> {
        let limit = page.limit.max(1);
        let pk_name = index.map_or(PK, |i| i.pk);
        let start = match &page.cursor {
            Some(c) => Some(start_key(c, index, partition)?),
            None => None,
        };
        let mut items: Vec<Item> = Vec::new();
        let mut exclusive_start = start;
        loop {
            let out = self
                .client
                .query()
                .table_name(self.table.as_ref())
                .set_index_name(index.map(|i| i.name.to_owned()))
                .key_condition_expression("#p = :p")
                .expression_attribute_names("#p", pk_name)
                .expression_attribute_values(":p", s(partition))
                .scan_index_forward(forward)
                .limit((limit + 1 - items.len()) as i32)
                .set_exclusive_start_key(exclusive_start.take())
                .set_consistent_read(index.is_none().then_some(true))
                .send()
                .await
                .map_err(unavailable(operation))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if items.len() <= limit => exclusive_start = Some(k),
                _ => break,
            }
        }
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().and_then(|last| cursor_of(last, index))
        } else {
            None
        };
        Ok((items, next))
    }
}

#[async_trait]
impl ConversationReader for DynamoStore {
    /// One query on `gsi3` (partition `Q#<team>`) or `gsi4` (`A#<agent>`), in sort-key order
    /// from after `after`.
    async fn queue(
        &self,
        queue: QueueName<'_>,
        after: Option<&QueuePosition>,
        limit: usize,
    ) -> Result<Vec<Conversation>, BackendError> {
        const OP: &str = "queue";
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (index, partition) = queue_partition(queue);
        let mut condition = "#p = :p".to_owned();
        let mut query = self
            .client
            .query()
            .table_name(self.table.as_ref())
            .index_name(index.name)
            .expression_attribute_names("#p", index.pk)
            .expression_attribute_values(":p", s(partition));
        if let Some(p) = after {
            condition.push_str(" AND #s > :after");
            query = query
                .expression_attribute_names("#s", index.sk)
                .expression_attribute_values(":after", s(queue_sort_key_of(p)));
        }
        let query = query.key_condition_expression(condition);
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let out = query
                .clone()
                .limit(i32::try_from(limit - found.len()).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(unavailable(OP))?;
            for item in out.items.unwrap_or_default() {
                found.push(conversation_from(&item)?);
            }
            match out.last_evaluated_key {
                Some(k) if found.len() < limit => start = Some(k),
                _ => return Ok(found),
            }
        }
    }

    async fn conversations(
        &self,
        channel: Option<Channel>,
        page: PageRequest,
    ) -> Result<Page<Conversation>, BackendError> {
        let (index, partition) = match channel {
            None => (GSI1, "CONVS".to_owned()),
            Some(c) => (GSI2, format!("CONVS#{c}")),
        };
        let (items, next) = self
            .query_page("conversations", Some(index), &partition, false, &page)
            .await?;
        let items = items
            .iter()
            .map(conversation_from)
            .collect::<Result<_, _>>()?;
        Ok(Page { items, next })
    }

    async fn timeline(
        &self,
        id: &ConversationId,
        page: PageRequest,
    ) -> Result<Page<StoredRecord>, BackendError> {
        self.records_page("timeline", GSI1, &format!("C#{id}"), &page)
            .await
    }

    async fn delivery(&self, id: &DeliveryId) -> Result<Option<RawDelivery>, BackendError> {
        let pk = format!("D#{id}");
        let mut chunks: Vec<Item> = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(self.table.as_ref())
                .key_condition_expression("#p = :p")
                .expression_attribute_names("#p", PK)
                .expression_attribute_values(":p", s(&pk))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable("delivery"))?;
            chunks.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        let Some(head) = chunks.first() else {
            return Ok(None);
        };
        // An erased delivery's tombstone: its bytes are gone.
        if head.contains_key("erased_at") {
            return Ok(None);
        }
        let expected = get_n(head, "chunks").unwrap_or(0) as usize;
        if chunks.len() != expected {
            return Err(corrupt("delivery", "chunk count"));
        }
        let webhook = get_s(head, "channel")
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| corrupt("delivery", "channel"))?;
        let received_at = get_s(head, "received_at")
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| corrupt("delivery", "received_at"))?;
        let quarantined = head
            .get("quarantined")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false);
        let mut compressed = Vec::new();
        for chunk in &chunks {
            let data = chunk
                .get("data")
                .and_then(|v| v.as_b().ok())
                .ok_or_else(|| corrupt("delivery", "data"))?;
            compressed.extend_from_slice(data.as_ref());
        }
        let mut body = Vec::with_capacity(get_n(head, "size").unwrap_or(0).max(0) as usize);
        flate2::read::GzDecoder::new(compressed.as_slice())
            .read_to_end(&mut body)
            .map_err(|_| corrupt("delivery", "gzip"))?;
        let delivery = RawDelivery {
            id: id.clone(),
            webhook,
            received_at,
            quarantined,
            body: Bytes::from(body),
        };
        Ok(Some(delivery))
    }

    async fn quarantined(&self, page: PageRequest) -> Result<Page<DeliveryId>, BackendError> {
        let (items, next) = self
            .query_page("quarantined", None, "QUARANTINE", false, &page)
            .await?;
        let items = items
            .iter()
            .map(|item| {
                get_s(item, "delivery_id")
                    .map(DeliveryId::from_stored)
                    .ok_or_else(|| corrupt("quarantined", "delivery_id"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Page { items, next })
    }
}
