//! [`CustomerErasure`] on SQLite. The rows of a person go in one transaction; the file deletes
//! securely (`PRAGMA secure_delete`, set at open: freed content is overwritten with zeros) and
//! the write-ahead log is checkpointed and truncated afterwards, so the erased bytes are not
//! left in free pages or in the log.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, params_from_iter};
use switchboard_core::erasure::{CustomerErasure, ErasedRows, ErasureScope, stored_apart};
use switchboard_core::ids::{CustomerId, DeliveryId};
use switchboard_core::model::{Conversation, Customer, Record};
use switchboard_core::ports::{BackendError, RawDelivery};

use crate::engine::{SqliteStore, decode_doc};
use crate::reader::deliveries_of;
use crate::time;

/// `?, ?, …` for `n` parameters.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// The text of each id, for a parameter list.
fn texts<'a>(ids: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    ids.into_iter().map(str::to_owned).collect()
}

fn strings(
    conn: &Connection,
    sql: &str,
    args: &[String],
    op: &'static str,
) -> Result<Vec<String>, BackendError> {
    conn.prepare(sql)
        .and_then(|mut s| {
            s.query_map(params_from_iter(args), |row| row.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|e| BackendError::unavailable(op, e))
}

fn scope(conn: &Connection, id: &str) -> Result<Option<ErasureScope>, BackendError> {
    const OP: &str = "erasure_scope";
    let Some(survivor) = crate::customers::root(conn, id, OP)? else {
        return Ok(None);
    };
    let mut customers = vec![survivor.id.as_str().to_owned()];
    // Merges point at the survivor; the loop also takes any chain a corrupted file may hold.
    let mut next = 0;
    while next < customers.len() && customers.len() < 10_000 {
        let merged = strings(
            conn,
            "SELECT id FROM customers WHERE merged_into = ?",
            &customers[next..=next],
            OP,
        )?;
        next += 1;
        for m in merged {
            if !customers.contains(&m) {
                customers.push(m);
            }
        }
    }
    let marks = placeholders(customers.len());
    let mut identities = Vec::new();
    for doc in strings(
        conn,
        &format!("SELECT doc FROM customers WHERE id IN ({marks})"),
        &customers,
        OP,
    )? {
        let customer = decode_doc::<Customer>("customer", "", &doc)
            .map_err(|e| BackendError::unavailable(OP, e))?;
        identities.extend(
            customer
                .identities
                .into_iter()
                .map(|i| i.provider_user_id.as_str().to_owned()),
        );
    }
    identities.sort();
    identities.dedup();
    let conversations = strings(
        conn,
        &format!("SELECT doc FROM conversations WHERE customer_id IN ({marks}) ORDER BY id"),
        &customers,
        OP,
    )?
    .iter()
    .map(|doc| {
        decode_doc::<Conversation>("conversation", "", doc)
            .map_err(|e| BackendError::unavailable(OP, e))
    })
    .collect::<Result<Vec<_>, _>>()?;
    let mut attachments = Vec::new();
    for doc in strings(
        conn,
        &format!("SELECT doc FROM records WHERE customer_id IN ({marks})"),
        &customers,
        OP,
    )? {
        if let Ok(record) = serde_json::from_str::<Record>(&doc) {
            attachments.extend(stored_apart(&record));
        }
    }
    attachments.sort();
    attachments.dedup();
    Ok(Some(ErasureScope {
        customers: customers.into_iter().map(CustomerId::from_stored).collect(),
        identities,
        conversations,
        attachments,
    }))
}

fn erase(conn: &mut Connection, scope: &ErasureScope) -> Result<ErasedRows, BackendError> {
    const OP: &str = "erase_customer";
    let unavailable = |e| BackendError::unavailable(OP, e);
    let customers = texts(scope.customers.iter().map(|c| c.as_str()));
    let conversations = texts(scope.conversations.iter().map(|c| c.id.as_str()));
    let (cu, co) = (
        placeholders(customers.len()),
        placeholders(conversations.len()),
    );
    let both: Vec<String> = customers.iter().chain(&conversations).cloned().collect();
    let tx = conn.savepoint().map_err(unavailable)?;
    let by_conversation = |sql: &str| -> Result<usize, BackendError> {
        if conversations.is_empty() {
            return Ok(0);
        }
        tx.execute(&sql.replace("{co}", &co), params_from_iter(&conversations))
            .map_err(unavailable)
    };
    let queue_entries = by_conversation(
        "DELETE FROM intake_queue WHERE json_extract(body, '$.conversation_id') IN ({co})",
    )? + by_conversation(
        "DELETE FROM dead_letters WHERE json_extract(body, '$.conversation_id') IN ({co})",
    )?;
    by_conversation("DELETE FROM timers WHERE json_extract(body, '$.conversation_id') IN ({co})")?;
    let mut replies = 0;
    for conversation in &conversations {
        // The keys of a conversation's replies are `<conversation>/<key>`: one range.
        replies += tx
            .execute(
                "DELETE FROM idempotency WHERE key > ?1 || '/' AND key < ?1 || '0'",
                [conversation],
            )
            .map_err(unavailable)?;
    }
    let conversations_removed = by_conversation("DELETE FROM conversations WHERE id IN ({co})")?;
    let records = tx
        .execute(
            &format!(
                "DELETE FROM records WHERE customer_id IN ({cu})
                 OR conversation_id IN ({})",
                if conversations.is_empty() {
                    "NULL".to_owned()
                } else {
                    co.clone()
                }
            ),
            params_from_iter(&both),
        )
        .map_err(unavailable)?;
    let identifiers = tx
        .execute(
            &format!("DELETE FROM identifiers WHERE customer_id IN ({cu})"),
            params_from_iter(&customers),
        )
        .map_err(unavailable)?;
    tx.execute(
        &format!("DELETE FROM activity WHERE customer_id IN ({cu})"),
        params_from_iter(&customers),
    )
    .map_err(unavailable)?;
    let customers_removed = tx
        .execute(
            &format!("DELETE FROM customers WHERE id IN ({cu})"),
            params_from_iter(&customers),
        )
        .map_err(unavailable)?;
    tx.commit().map_err(unavailable)?;
    Ok(ErasedRows {
        customers: customers_removed,
        conversations: conversations_removed,
        records,
        identifiers,
        replies,
        queue_entries,
    })
}

#[async_trait]
impl CustomerErasure for SqliteStore {
    async fn scope(&self, id: &CustomerId) -> Result<Option<ErasureScope>, BackendError> {
        let id = id.clone();
        // On the writer's connection: a scope read beside a write in flight could miss what
        // that write adds.
        self.write("erasure_scope", move |conn| scope(conn, id.as_str()))
            .await
    }

    /// Ordered by id; the token is the last id of the page. Erased deliveries are not listed.
    async fn deliveries_page(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<RawDelivery>, Option<String>), BackendError> {
        const OP: &str = "erasure_deliveries";
        let limit = limit.max(1);
        self.run(OP, move |conn| {
            let unavailable = |e| BackendError::unavailable(OP, e);
            let mut stmt = conn
                .prepare_cached(
                    "SELECT id, channel, received_at, quarantined, body FROM deliveries
                     WHERE id > ?1 AND erased_at IS NULL ORDER BY id LIMIT ?2",
                )
                .map_err(unavailable)?;
            let page = deliveries_of(
                &mut stmt,
                rusqlite::params![after.unwrap_or_default(), limit as i64],
                OP,
            )?;
            let next = (page.len() == limit)
                .then(|| page.last().map(|d| d.id.as_str().to_owned()))
                .flatten();
            Ok((page, next))
        })
        .await
    }

    async fn drop_deliveries(
        &self,
        ids: &[DeliveryId],
        at: DateTime<Utc>,
    ) -> Result<usize, BackendError> {
        const OP: &str = "drop_deliveries";
        let ids = texts(ids.iter().map(|d| d.as_str()));
        let at = time::to_text(at);
        self.write(OP, move |conn| {
            let mut args = vec![at];
            let marks = placeholders(ids.len());
            args.extend(ids);
            conn.execute(
                &format!(
                    "UPDATE deliveries SET body = x'', erased_at = ?
                     WHERE erased_at IS NULL AND id IN ({marks})"
                ),
                params_from_iter(&args),
            )
            .map_err(|e| BackendError::unavailable(OP, e))
        })
        .await
    }

    async fn erase(&self, scope: &ErasureScope) -> Result<ErasedRows, BackendError> {
        let scope = scope.clone();
        self.write_and_truncate("erase_customer", move |conn| erase(conn, &scope))
            .await
    }
}
