//! The [`ChannelWatches`] port on the table: one item per business account, `pk`
//! `W#<watch id>`, `sk` `W`, its watch as JSON in `state` and a `version` for the
//! read-modify-write (a `PutItem` conditional on the version read, read again when it lost).
//! No TTL: one small item per account the stack ever heard from.

use async_trait::async_trait;
use std::collections::HashMap;

use switchboard_core::ports::{BackendError, ChannelWatches, Watch, WatchChange};
use switchboard_core::sla::{WatchedAccount, watch_id};

use super::{DynamoStore, Item, corrupt, get_n, get_s, s, unavailable};
use crate::resources::{PK, SK};
use crate::retry::{Attempt, until_no_conflict};

fn watch_key(account: &WatchedAccount) -> Item {
    HashMap::from([
        (PK.to_owned(), s(format!("W#{}", watch_id(account)))),
        (SK.to_owned(), s("W")),
    ])
}

fn watch_from(item: &Item) -> Result<Watch, BackendError> {
    let state = get_s(item, "state").ok_or_else(|| corrupt("watch", "state"))?;
    serde_json::from_str(state).map_err(|_| corrupt("watch", "state"))
}

impl DynamoStore {
    async fn watch_item(
        &self,
        account: &WatchedAccount,
        op: &'static str,
    ) -> Result<Option<Item>, BackendError> {
        Ok(self
            .client
            .get_item()
            .table_name(self.table.as_ref())
            .set_key(Some(watch_key(account)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable(op))?
            .item)
    }
}

#[async_trait]
impl ChannelWatches for DynamoStore {
    async fn watch(&self, account: &WatchedAccount) -> Result<Option<Watch>, BackendError> {
        self.watch_item(account, "watch")
            .await?
            .as_ref()
            .map(watch_from)
            .transpose()
    }

    async fn update_watch(
        &self,
        account: &WatchedAccount,
        change: WatchChange<'_>,
    ) -> Result<Watch, BackendError> {
        const OP: &str = "update_watch";
        until_no_conflict(
            OP,
            "the watch kept changing while it was being updated",
            self.backoff,
            || async {
                let item = self.watch_item(account, OP).await?;
                let version = item.as_ref().and_then(|i| get_n(i, "version"));
                let mut watch = item
                    .as_ref()
                    .map(watch_from)
                    .transpose()?
                    .unwrap_or_default();
                if !change(&mut watch) {
                    return Ok(Attempt::Done(watch));
                }
                let mut put = watch_key(account);
                put.insert(
                    "state".into(),
                    s(serde_json::to_string(&watch).map_err(unavailable(OP))?),
                );
                put.insert("version".into(), super::n(version.unwrap_or(0) + 1));
                let put = self.conditional_put(put, version)?;
                Ok(if self.put_if(OP, &put).await? {
                    Attempt::Done(watch)
                } else {
                    Attempt::Conflict
                })
            },
        )
        .await
    }
}
