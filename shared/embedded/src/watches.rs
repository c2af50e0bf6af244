//! The [`ChannelWatches`] port on SQLite: the `watches` table, one row per business account
//! (its watch as JSON), and the read-modify-write of a watch, written only if the row is still
//! the one read.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use switchboard_core::ports::{BackendError, ChannelWatches, Watch, WatchChange};
use switchboard_core::sla::{WatchedAccount, watch_id};

use crate::engine::{SqliteStore, decode_doc};

/// Reads and writes of one update before giving up (each failed one saw another writer).
const UPDATE_ATTEMPTS: usize = 8;

impl SqliteStore {
    async fn watch_doc(&self, id: String) -> Result<Option<String>, BackendError> {
        const OP: &str = "watch";
        self.run(OP, move |conn| {
            conn.prepare_cached("SELECT doc FROM watches WHERE id = ?1")
                .and_then(|mut s| s.query_row([id.as_str()], |row| row.get(0)).optional())
                .map_err(|e| BackendError::unavailable(OP, e))
        })
        .await
    }
}

#[async_trait]
impl ChannelWatches for SqliteStore {
    async fn watch(&self, account: &WatchedAccount) -> Result<Option<Watch>, BackendError> {
        let id = watch_id(account);
        self.watch_doc(id.as_str().to_owned())
            .await?
            .map(|doc| decode_doc("watch", id.as_str(), &doc))
            .transpose()
            .map_err(|e| BackendError::unavailable("watch", e))
    }

    async fn update_watch(
        &self,
        account: &WatchedAccount,
        change: WatchChange<'_>,
    ) -> Result<Watch, BackendError> {
        const OP: &str = "update_watch";
        let id = watch_id(account).as_str().to_owned();
        for _ in 0..UPDATE_ATTEMPTS {
            let read = self.watch_doc(id.clone()).await?;
            let mut watch: Watch = match &read {
                Some(doc) => {
                    decode_doc("watch", &id, doc).map_err(|e| BackendError::unavailable(OP, e))?
                }
                None => Watch::default(),
            };
            if !change(&mut watch) {
                return Ok(watch);
            }
            let doc =
                serde_json::to_string(&watch).map_err(|e| BackendError::unavailable(OP, e))?;
            let id = id.clone();
            let done = self
                .write(OP, move |conn| {
                    let unavailable = |e| BackendError::unavailable(OP, e);
                    let tx = conn.savepoint().map_err(unavailable)?;
                    let now: Option<String> = tx
                        .prepare_cached("SELECT doc FROM watches WHERE id = ?1")
                        .and_then(|mut s| s.query_row([id.as_str()], |row| row.get(0)).optional())
                        .map_err(unavailable)?;
                    if now != read {
                        return Ok(false);
                    }
                    tx.execute(
                        "INSERT INTO watches (id, doc) VALUES (?1, ?2)
                         ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
                        params![id, doc],
                    )
                    .map_err(unavailable)?;
                    tx.commit().map_err(unavailable)?;
                    Ok(true)
                })
                .await?;
            if done {
                return Ok(watch);
            }
        }
        Err(BackendError::unavailable(
            OP,
            "the watch kept changing while it was being updated",
        ))
    }
}
