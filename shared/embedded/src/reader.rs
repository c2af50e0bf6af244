//! The [`ConversationReader`] port: keyset pagination over the indexes, never `OFFSET`.

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::types::Value;
use rusqlite::{OptionalExtension, params_from_iter};
use switchboard_core::ids::{ConversationId, DeliveryId, RecordKey};
use switchboard_core::model::{Channel, Conversation, Record};
use switchboard_core::ports::{
    BackendError, ConversationReader, Page, PageRequest, QueueName, QueuePosition, RawDelivery,
    StoredRecord,
};

use crate::cursor::Cursor;
use crate::engine::{MAX_PAGE_LIMIT, SqliteStore, decode_doc};
use crate::time;

/// The number of items a page holds: at least 1, at most [`MAX_PAGE_LIMIT`].
fn page_limit(requested: usize) -> usize {
    requested.clamp(1, MAX_PAGE_LIMIT)
}

/// `LIMIT` of the query: one more row than the page, to know whether a next page exists.
fn fetch_limit(limit: usize) -> i64 {
    i64::try_from(limit + 1).unwrap_or(i64::MAX)
}

/// The page of the first `limit` rows; the cursor of its last row when there were more.
fn into_page<T>(
    mut rows: Vec<(T, Cursor)>,
    limit: usize,
    operation: &'static str,
) -> Result<Page<T>, BackendError> {
    let next = if rows.len() > limit {
        rows.truncate(limit);
        match rows.last() {
            Some((_, cursor)) => Some(cursor.encode(operation)?),
            None => None,
        }
    } else {
        None
    };
    Ok(Page {
        items: rows.into_iter().map(|(item, _)| item).collect(),
        next,
    })
}

#[async_trait]
impl ConversationReader for SqliteStore {
    /// Ordered by rank, `waiting_since` (milliseconds) and id, on the partial index
    /// `conversations_queue` (a team's) or `conversations_agent_queue` (an agent's).
    async fn queue(
        &self,
        queue: QueueName<'_>,
        after: Option<&QueuePosition>,
        limit: usize,
    ) -> Result<Vec<Conversation>, BackendError> {
        const OP: &str = "queue";
        let (column, name) = match queue {
            QueueName::Team(team) => ("queue_team", team.to_owned()),
            QueueName::Agent(agent) => ("queue_agent", agent.to_owned()),
        };
        let after = after.cloned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(OP, move |conn| {
            let unavailable = |e| BackendError::unavailable(OP, e);
            let mut sql = format!("SELECT id, doc FROM conversations WHERE {column} = ?");
            let mut args: Vec<Value> = vec![Value::Text(name)];
            if let Some(p) = after {
                sql.push_str(" AND (queue_rank, waiting_since_ms, id) > (?, ?, ?)");
                args.extend([
                    Value::Integer(i64::from(p.rank)),
                    Value::Integer(p.waiting_since_ms),
                    Value::Text(p.id.as_str().to_owned()),
                ]);
            }
            sql.push_str(" ORDER BY queue_rank, waiting_since_ms, id LIMIT ?");
            args.push(Value::Integer(limit));
            let mut stmt = conn.prepare_cached(&sql).map_err(unavailable)?;
            let raw = stmt
                .query_map(params_from_iter(args), |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(unavailable)?;
            raw.into_iter()
                .map(|(id, doc)| {
                    decode_doc::<Conversation>("conversation", &id, &doc)
                        .map_err(|e| BackendError::unavailable(OP, e))
                })
                .collect()
        })
        .await
    }

    async fn conversations(
        &self,
        channel: Option<Channel>,
        page: PageRequest,
    ) -> Result<Page<Conversation>, BackendError> {
        const OP: &str = "conversations";
        let limit = page_limit(page.limit);
        let after = match page.cursor.as_deref().map(Cursor::decode).transpose()? {
            None => None,
            Some(Cursor::Conversations {
                channel: issued_for,
                last_at_ms,
                id,
            }) if issued_for == channel => Some((last_at_ms, id)),
            Some(_) => return Err(BackendError::BadCursor),
        };
        self.run(OP, move |conn| {
            let unavailable = |e| BackendError::unavailable(OP, e);
            let mut sql = String::from("SELECT id, last_at_ms, doc FROM conversations WHERE 1");
            let mut args: Vec<Value> = Vec::new();
            if let Some(channel) = channel {
                sql.push_str(" AND channel = ?");
                args.push(Value::Text(channel.as_str().to_owned()));
            }
            if let Some((last_at_ms, id)) = after {
                sql.push_str(" AND (last_at_ms, id) < (?, ?)");
                args.extend([Value::Integer(last_at_ms), Value::Text(id)]);
            }
            sql.push_str(" ORDER BY last_at_ms DESC, id DESC LIMIT ?");
            args.push(Value::Integer(fetch_limit(limit)));
            let mut stmt = conn.prepare_cached(&sql).map_err(unavailable)?;
            let raw = stmt
                .query_map(params_from_iter(args), |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, String>(2)?,
                    ))
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(unavailable)?;
            let rows = raw
                .into_iter()
                .map(|(id, last_at_ms, doc)| {
                    let conversation = decode_doc::<Conversation>("conversation", &id, &doc)
                        .map_err(|e| BackendError::unavailable(OP, e))?;
                    let cursor = Cursor::Conversations {
                        channel,
                        last_at_ms,
                        id,
                    };
                    Ok((conversation, cursor))
                })
                .collect::<Result<Vec<_>, BackendError>>()?;
            into_page(rows, limit, OP)
        })
        .await
    }

    /// Ordered by provider time (milliseconds) ascending, then record key. A cursor is valid only
    /// for the conversation it was issued for. An unknown conversation has an empty timeline.
    async fn timeline(
        &self,
        id: &ConversationId,
        page: PageRequest,
    ) -> Result<Page<StoredRecord>, BackendError> {
        let after = match page.cursor.as_deref().map(Cursor::decode).transpose()? {
            None => None,
            Some(Cursor::Timeline {
                conversation_id,
                at_ms,
                key,
            }) if conversation_id == id.as_str() => Some((at_ms, key)),
            Some(_) => return Err(BackendError::BadCursor),
        };
        let owner = id.as_str().to_owned();
        self.records_page(
            "timeline",
            RecordsOf::Conversation,
            owner,
            after,
            page.limit,
            |owner, at_ms, key| Cursor::Timeline {
                conversation_id: owner,
                at_ms,
                key,
            },
        )
        .await
    }

    async fn delivery(&self, id: &DeliveryId) -> Result<Option<RawDelivery>, BackendError> {
        const OP: &str = "delivery";
        let id = id.clone();
        self.run(OP, move |conn| {
            let row: Option<(String, String, bool, Vec<u8>)> = conn
                .prepare_cached(
                    "SELECT channel, received_at, quarantined, body FROM deliveries
                     WHERE id = ?1 AND erased_at IS NULL",
                )
                .and_then(|mut s| {
                    s.query_row([id.as_str()], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                    })
                    .optional()
                })
                .map_err(|e| BackendError::unavailable(OP, e))?;
            let Some((channel, received_at, quarantined, body)) = row else {
                return Ok(None);
            };
            stored_delivery(id, &channel, &received_at, quarantined, body, OP).map(Some)
        })
        .await
    }

    /// Ordered by receive time descending (newest first), then id descending.
    async fn quarantined(&self, page: PageRequest) -> Result<Page<DeliveryId>, BackendError> {
        const OP: &str = "quarantined";
        let limit = page_limit(page.limit);
        let after = match page.cursor.as_deref().map(Cursor::decode).transpose()? {
            None => None,
            Some(Cursor::Quarantine { received_at, id }) => Some((received_at, id)),
            Some(_) => return Err(BackendError::BadCursor),
        };
        self.run(OP, move |conn| {
            let unavailable = |e| BackendError::unavailable(OP, e);
            let mut sql =
                String::from("SELECT id, received_at FROM deliveries WHERE quarantined = 1");
            let mut args: Vec<Value> = Vec::new();
            if let Some((received_at, id)) = after {
                sql.push_str(" AND (received_at, id) < (?, ?)");
                args.extend([Value::Text(received_at), Value::Text(id)]);
            }
            sql.push_str(" ORDER BY received_at DESC, id DESC LIMIT ?");
            args.push(Value::Integer(fetch_limit(limit)));
            let mut stmt = conn.prepare_cached(&sql).map_err(unavailable)?;
            let rows = stmt
                .query_map(params_from_iter(args), |row| {
                    let id: String = row.get(0)?;
                    let received_at: String = row.get(1)?;
                    Ok((
                        DeliveryId::from_stored(id.clone()),
                        Cursor::Quarantine { received_at, id },
                    ))
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(unavailable)?;
            into_page(rows, limit, OP)
        })
        .await
    }
}

/// A kept delivery from its row's columns (webhook name, receive time as `time` writes it).
pub(crate) fn stored_delivery(
    id: DeliveryId,
    webhook: &str,
    received_at: &str,
    quarantined: bool,
    body: Vec<u8>,
    operation: &'static str,
) -> Result<RawDelivery, BackendError> {
    Ok(RawDelivery {
        id,
        webhook: webhook
            .parse()
            .map_err(|e| BackendError::unavailable(operation, e))?,
        received_at: time::from_text(received_at)
            .map_err(|e| BackendError::unavailable(operation, e))?,
        quarantined,
        body: Bytes::from(body),
    })
}

/// The deliveries `stmt` selects with `params`: its columns are `id, channel, received_at,
/// quarantined, body`, in that order.
pub(crate) fn deliveries_of(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
    operation: &'static str,
) -> Result<Vec<RawDelivery>, BackendError> {
    let unavailable = |e| BackendError::unavailable(operation, e);
    let rows = stmt
        .query_map(params, |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, bool>(3)?,
                row.get::<_, Vec<u8>>(4)?,
            ))
        })
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(unavailable)?;
    rows.into_iter()
        .map(|(id, channel, received_at, quarantined, body)| {
            stored_delivery(
                DeliveryId::from_stored(id),
                &channel,
                &received_at,
                quarantined,
                body,
                operation,
            )
        })
        .collect()
}

/// Which records a page lists: a conversation's or a customer's (after links).
#[derive(Debug, Clone, Copy)]
pub(crate) enum RecordsOf {
    /// By `conversation_id`.
    Conversation,
    /// By `customer_id`, which holds the surviving customer of the record's identity.
    Customer,
}

impl SqliteStore {
    /// One page of records of `owner`, in provider-time order, after `after` (exclusive).
    pub(crate) async fn records_page(
        &self,
        operation: &'static str,
        of: RecordsOf,
        owner: String,
        after: Option<(i64, String)>,
        limit: usize,
        cursor: fn(String, i64, String) -> Cursor,
    ) -> Result<Page<StoredRecord>, BackendError> {
        let limit = page_limit(limit);
        self.run(operation, move |conn| {
            let unavailable = |e| BackendError::unavailable(operation, e);
            let column = match of {
                RecordsOf::Conversation => "conversation_id",
                RecordsOf::Customer => "customer_id",
            };
            let mut sql =
                format!("SELECT key, at_ms, stored_at, doc FROM records WHERE {column} = ?");
            let mut args = vec![Value::Text(owner.clone())];
            if let Some((at_ms, key)) = after {
                sql.push_str(" AND (at_ms, key) > (?, ?)");
                args.extend([Value::Integer(at_ms), Value::Text(key)]);
            }
            sql.push_str(" ORDER BY at_ms ASC, key ASC LIMIT ?");
            args.push(Value::Integer(fetch_limit(limit)));
            let mut stmt = conn.prepare_cached(&sql).map_err(unavailable)?;
            let raw = stmt
                .query_map(params_from_iter(args), |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                    ))
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(unavailable)?;
            let rows = raw
                .into_iter()
                .map(|(key, at_ms, stored_at, doc)| {
                    let record = decode_doc::<Record>("record", &key, &doc)
                        .map_err(|e| BackendError::unavailable(operation, e))?;
                    let stored_at = time::from_text(&stored_at)
                        .map_err(|e| BackendError::unavailable(operation, e))?;
                    let next = cursor(owner.clone(), at_ms, key.clone());
                    let item = StoredRecord {
                        key: RecordKey::from_stored(key),
                        stored_at,
                        record,
                    };
                    Ok((item, next))
                })
                .collect::<Result<Vec<_>, BackendError>>()?;
            into_page(rows, limit, operation)
        })
        .await
    }
}
