//! The [`ConversationStore`] port on DynamoDB: a consistent `GetItem`, a `BatchGetItem` for
//! several, and the read-modify-write conditional on the conversation's version.

use async_trait::async_trait;

use switchboard_core::ids::ConversationId;
use switchboard_core::metrics;
use switchboard_core::model::Conversation;
use switchboard_core::ports::{BackendError, ConversationChange, ConversationStore};

use super::*;
use crate::resources::{PK, SK};
use crate::retry::{Attempt, until_no_conflict};

#[async_trait]
impl ConversationStore for DynamoStore {
    async fn conversation(
        &self,
        id: &ConversationId,
    ) -> Result<Option<Conversation>, BackendError> {
        let out = self
            .client
            .get_item()
            .table_name(self.table.as_ref())
            .key(PK, s(format!("C#{id}")))
            .key(SK, s("C"))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable("conversation"))?;
        out.item.as_ref().map(conversation_from).transpose()
    }

    async fn conversations_by_id(
        &self,
        ids: &[ConversationId],
    ) -> Result<Vec<Conversation>, BackendError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys = ids.iter().map(conversation_key).collect();
        self.batch_get("conversations_by_id", keys, &["state"])
            .await?
            .iter()
            .map(conversation_from)
            .collect()
    }

    /// `GetItem` (consistent), the change, then a `PutItem` conditional on the version read
    /// (a `TransactWriteItems` with the `ADD` of its buckets when the change counts
    /// something); a failed condition (intake wrote the conversation in between) or a
    /// cancelled transaction reads again.
    async fn update_conversation(
        &self,
        id: &ConversationId,
        change: ConversationChange<'_>,
    ) -> Result<Option<Conversation>, BackendError> {
        const OP: &str = "update_conversation";
        until_no_conflict(
            OP,
            "the conversation kept changing while it was being updated",
            self.backoff,
            || async {
                let out = self
                    .client
                    .get_item()
                    .table_name(self.table.as_ref())
                    .set_key(Some(conversation_key(id)))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(unavailable(OP))?;
                let Some(item) = out.item else {
                    return Ok(Attempt::Done(None));
                };
                let mut conversation = conversation_from(&item)?;
                let Some(tally) = metrics::apply(&mut conversation, change) else {
                    return Ok(Attempt::Done(Some(conversation)));
                };
                let put = self.conversation_put(&conversation, get_n(&item, "version"))?;
                if !tally.is_empty() {
                    let cancelled = self
                        .transact(
                            OP,
                            vec![WriteUnit {
                                puts: vec![put],
                                updates: Vec::new(),
                                tally,
                            }],
                        )
                        .await?;
                    return Ok(if cancelled {
                        Attempt::Conflict
                    } else {
                        Attempt::Done(Some(conversation))
                    });
                }
                Ok(if self.put_if(OP, &put).await? {
                    Attempt::Done(Some(conversation))
                } else {
                    Attempt::Conflict
                })
            },
        )
        .await
    }
}
