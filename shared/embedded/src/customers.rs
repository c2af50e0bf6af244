//! The customer directory on SQLite: one row per customer, merged ones pointing at the survivor.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use switchboard_core::ids::CustomerId;
use switchboard_core::model::{
    Customer, CustomerIdentity, Identifier, Link, LinkEvidence, Sighting,
};
use switchboard_core::ports::{
    BackendError, CustomerDirectory, IdentityIndex, IdentityLookup, LinkError, Page, PageRequest,
    StoredRecord,
};

use crate::cursor::Cursor;
use crate::engine::{SqliteStore, decode_doc};
use crate::reader::RecordsOf;

/// Merges are followed at most this far (a merge rewrites pointers to the survivor, so chains
/// stay short; the bound only guards against a corrupted file).
const MAX_HOPS: usize = 16;

fn load(conn: &Connection, id: &str, op: &'static str) -> Result<Option<Customer>, BackendError> {
    let doc: Option<String> = conn
        .prepare_cached("SELECT doc FROM customers WHERE id = ?1")
        .and_then(|mut s| s.query_row([id], |row| row.get(0)).optional())
        .map_err(|e| BackendError::unavailable(op, e))?;
    doc.map(|doc| {
        decode_doc::<Customer>("customer", id, &doc).map_err(|e| BackendError::unavailable(op, e))
    })
    .transpose()
}

/// The surviving customer of `id`, following merges.
pub(crate) fn root(
    conn: &Connection,
    id: &str,
    op: &'static str,
) -> Result<Option<Customer>, BackendError> {
    let mut current = load(conn, id, op)?;
    for _ in 0..MAX_HOPS {
        match current {
            Some(Customer {
                merged_into: Some(next),
                ..
            }) => current = load(conn, next.as_str(), op)?,
            other => return Ok(other),
        }
    }
    Err(BackendError::unavailable(
        op,
        "customer merges form a cycle",
    ))
}

/// Writes `customer`, to expire no sooner than `expires_at` (unix seconds).
fn save(
    conn: &Connection,
    customer: &Customer,
    expires_at: i64,
    op: &'static str,
) -> Result<(), BackendError> {
    let doc = serde_json::to_string(customer).map_err(|e| BackendError::unavailable(op, e))?;
    conn.prepare_cached(
        "INSERT INTO customers (id, doc, merged_into, expires_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (id) DO UPDATE SET doc = excluded.doc, merged_into = excluded.merged_into,
             expires_at = max(expires_at, excluded.expires_at)",
    )
    .and_then(|mut s| {
        s.execute(params![
            customer.id.as_str(),
            doc,
            customer.merged_into.as_ref().map(|m| m.as_str()),
            expires_at
        ])
    })
    .map_err(|e| BackendError::unavailable(op, e))?;
    Ok(())
}

/// Makes sure the customer of `identity` exists; answers the id its records are listed under
/// (the surviving customer, after links). Both the identity's own customer and the survivor
/// are kept until `expires_at` at least: a customer expires when nothing of theirs was written
/// for the retention period.
pub(crate) fn ensure(
    conn: &Connection,
    identity: &CustomerIdentity,
    expires_at: i64,
    op: &'static str,
) -> Result<CustomerId, BackendError> {
    let survivor = root(conn, identity.customer_id.as_str(), op)?;
    let (id, create) = switchboard_core::recording::customer_of(identity, survivor.as_ref());
    if let Some(customer) = create {
        save(conn, &customer, expires_at, op)?;
    } else {
        conn.prepare_cached(
            "UPDATE customers SET expires_at = ?3
             WHERE id IN (?1, ?2) AND expires_at < ?3",
        )
        .and_then(|mut s| {
            s.execute(params![
                identity.customer_id.as_str(),
                id.as_str(),
                expires_at
            ])
        })
        .map_err(|e| BackendError::unavailable(op, e))?;
    }
    Ok(id)
}

#[async_trait]
impl CustomerDirectory for SqliteStore {
    async fn customer(&self, id: &CustomerId) -> Result<Option<Customer>, BackendError> {
        let id = id.clone();
        self.run("customer", move |conn| root(conn, id.as_str(), "customer"))
            .await
    }

    async fn link(
        &self,
        into: &CustomerId,
        other: &CustomerId,
        at: DateTime<Utc>,
        evidence: Option<LinkEvidence>,
    ) -> Result<Customer, LinkError> {
        const OP: &str = "link";
        if into == other {
            return Err(LinkError::SameCustomer);
        }
        let (into, other) = (into.clone(), other.clone());
        let expires_at = self.expires_at(self.clock.now());
        let outcome = self
            .write(OP, move |conn| {
                let unavailable = |e| BackendError::unavailable(OP, e);
                let tx = conn.savepoint().map_err(unavailable)?;
                let Some(mut survivor) = root(&tx, into.as_str(), OP)? else {
                    return Ok(Err(into));
                };
                let Some(mut merged) = root(&tx, other.as_str(), OP)? else {
                    return Ok(Err(other));
                };
                let link = Link {
                    customer_id: merged.id.clone(),
                    at,
                    evidence,
                };
                if survivor.absorb(&mut merged, link) {
                    save(&tx, &survivor, expires_at, OP)?;
                    save(&tx, &merged, expires_at, OP)?;
                    // Earlier merges into the merged one now point at the survivor directly.
                    tx.execute(
                        "UPDATE customers SET merged_into = ?1 WHERE merged_into = ?2",
                        params![survivor.id.as_str(), merged.id.as_str()],
                    )
                    .map_err(unavailable)?;
                    let moved = tx
                        .execute(
                            "UPDATE records SET customer_id = ?1 WHERE customer_id = ?2",
                            params![survivor.id.as_str(), merged.id.as_str()],
                        )
                        .map_err(unavailable)?;
                    tracing::info!(customer = %survivor.id, merged = %merged.id, moved, "customers linked");
                }
                tx.commit().map_err(unavailable)?;
                Ok(Ok(survivor))
            })
            .await?;
        outcome.map_err(LinkError::UnknownCustomer)
    }

    async fn unlink(
        &self,
        id: &CustomerId,
        other: &CustomerId,
    ) -> Result<(Customer, Customer), LinkError> {
        const OP: &str = "unlink";
        let (id, other) = (id.clone(), other.clone());
        let expires_at = self.expires_at(self.clock.now());
        self.write(OP, move |conn| {
            let unavailable = |e| BackendError::unavailable(OP, e);
            let tx = conn.savepoint().map_err(unavailable)?;
            let Some(mut survivor) = root(&tx, id.as_str(), OP)? else {
                return Ok(Err(LinkError::UnknownCustomer(id)));
            };
            let Some(mut split) = load(&tx, other.as_str(), OP)? else {
                return Ok(Err(LinkError::UnknownCustomer(other)));
            };
            if !survivor.release(&mut split) {
                return Ok(Err(LinkError::NotLinked {
                    id: survivor.id,
                    other: split.id,
                }));
            }
            save(&tx, &survivor, expires_at, OP)?;
            save(&tx, &split, expires_at, OP)?;
            // The identities it brought, and the customers merged into it before, go with it.
            let theirs: Vec<String> = split
                .identity_ids()
                .map(|i| i.as_str().to_owned())
                .collect();
            let mut moved = 0;
            for identity in &theirs {
                if identity != split.id.as_str() {
                    tx.execute(
                        "UPDATE customers SET merged_into = ?1 WHERE id = ?2 AND merged_into = ?3",
                        params![split.id.as_str(), identity, survivor.id.as_str()],
                    )
                    .map_err(unavailable)?;
                }
                moved += tx
                    .execute(
                        "UPDATE records SET customer_id = ?1 WHERE customer_id = ?2
                         AND json_extract(doc, '$.customer.customer_id') = ?3",
                        params![split.id.as_str(), survivor.id.as_str(), identity],
                    )
                    .map_err(unavailable)?;
            }
            tracing::info!(customer = %survivor.id, split = %split.id, moved, "customers unlinked");
            tx.commit().map_err(unavailable)?;
            Ok(Ok((survivor, split)))
        })
        .await?
    }

    async fn set_tier(
        &self,
        id: &CustomerId,
        tier: Option<&str>,
    ) -> Result<Option<Customer>, BackendError> {
        const OP: &str = "set_tier";
        let (id, tier) = (id.clone(), tier.map(str::to_owned));
        let expires_at = self.expires_at(self.clock.now());
        self.write(OP, move |conn| {
            let unavailable = |e| BackendError::unavailable(OP, e);
            let tx = conn.savepoint().map_err(unavailable)?;
            let Some(mut customer) = root(&tx, id.as_str(), OP)? else {
                return Ok(None);
            };
            customer.tier = tier;
            save(&tx, &customer, expires_at, OP)?;
            tx.commit().map_err(unavailable)?;
            Ok(Some(customer))
        })
        .await
    }

    async fn timeline(
        &self,
        id: &CustomerId,
        page: PageRequest,
    ) -> Result<Page<StoredRecord>, BackendError> {
        let after = match page.cursor.as_deref().map(Cursor::decode).transpose()? {
            None => None,
            Some(Cursor::CustomerTimeline {
                customer_id,
                at_ms,
                key,
            }) if customer_id == id.as_str() => Some((at_ms, key)),
            Some(_) => return Err(BackendError::BadCursor),
        };
        self.records_page(
            "customer_timeline",
            RecordsOf::Customer,
            id.as_str().to_owned(),
            after,
            page.limit,
            |customer_id, at_ms, key| Cursor::CustomerTimeline {
                customer_id,
                at_ms,
                key,
            },
        )
        .await
    }
}

fn carriers(
    conn: &Connection,
    key: &str,
    limit: usize,
    op: &'static str,
) -> Result<Vec<Sighting>, BackendError> {
    let unavailable = |e| BackendError::unavailable(op, e);
    let mut statement = conn
        .prepare_cached(
            "SELECT customer_id, channel, at_ms FROM identifiers WHERE key = ?1
             ORDER BY at_ms, customer_id LIMIT ?2",
        )
        .map_err(unavailable)?;
    let rows = statement
        .query_map(
            params![key, i64::try_from(limit).unwrap_or(i64::MAX)],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            },
        )
        .map_err(unavailable)?;
    let mut found = Vec::new();
    for row in rows {
        let (identity, channel, at_ms) = row.map_err(unavailable)?;
        found.push(Sighting {
            identity: CustomerId::from_stored(identity),
            channel: channel
                .parse()
                .map_err(|e| BackendError::unavailable(op, e))?,
            at: DateTime::from_timestamp_millis(at_ms).unwrap_or_default(),
        });
    }
    Ok(found)
}

/// How far behind its due expiry a sighting's row may be before a sighting renews it: rows of
/// identifiers seen every day are written once a day (and so expire at most a day before the
/// retention after their last sighting).
const SIGHTING_REFRESH_SECS: i64 = 86_400;

#[async_trait]
impl IdentityIndex for SqliteStore {
    async fn observe(
        &self,
        identifier: &Identifier,
        sighting: &Sighting,
        limit: usize,
    ) -> Result<Vec<Sighting>, BackendError> {
        const OP: &str = "observe_identifier";
        let key = identifier.key();
        let sighting = sighting.clone();
        let expires_at = self.expires_at(self.clock.now());
        // Most messages come from an identity already seen with this identifier, whose row the
        // upsert would only give a later expiry: read first, on the reading thread, and write
        // only a new or earlier sighting, or an expiry more than a day behind. One write a day
        // per identity and identifier instead of one per message, and no turn of the writing
        // thread to wait for.
        let (seen, found) = {
            let (key, identity) = (key.clone(), sighting.identity.clone());
            self.run(OP, move |conn| {
                let seen: Option<(i64, i64)> = conn
                    .prepare_cached(
                        "SELECT at_ms, expires_at FROM identifiers
                         WHERE key = ?1 AND customer_id = ?2",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![key, identity.as_str()], |row| {
                            Ok((row.get(0)?, row.get(1)?))
                        })
                        .optional()
                    })
                    .map_err(|e| BackendError::unavailable(OP, e))?;
                Ok((seen, carriers(conn, &key, limit, OP)?))
            })
            .await?
        };
        if seen.is_some_and(|(at_ms, expires)| {
            at_ms <= sighting.at.timestamp_millis() && expires >= expires_at - SIGHTING_REFRESH_SECS
        }) {
            return Ok(found);
        }
        self.write(OP, move |conn| {
            let unavailable = |e| BackendError::unavailable(OP, e);
            let tx = conn.savepoint().map_err(unavailable)?;
            tx.prepare_cached(
                "INSERT INTO identifiers (key, customer_id, channel, at_ms, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (key, customer_id) DO UPDATE SET
                     at_ms = min(at_ms, excluded.at_ms),
                     expires_at = max(expires_at, excluded.expires_at)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    key,
                    sighting.identity.as_str(),
                    sighting.channel.as_str(),
                    sighting.at.timestamp_millis(),
                    expires_at
                ])
            })
            .map_err(unavailable)?;
            let found = carriers(&tx, &key, limit, OP)?;
            tx.commit().map_err(unavailable)?;
            Ok(found)
        })
        .await
    }
}

#[async_trait]
impl IdentityLookup for SqliteStore {
    async fn carriers(
        &self,
        identifier: &Identifier,
        limit: usize,
    ) -> Result<Vec<Sighting>, BackendError> {
        let key = identifier.key();
        self.run("identifier_carriers", move |conn| {
            carriers(conn, &key, limit, "identifier_carriers")
        })
        .await
    }
}
