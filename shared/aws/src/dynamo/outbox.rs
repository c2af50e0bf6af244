//! [`DynamoOutbox`]: the intake's [`Outbox`] on DynamoDB, the table's transactions writing the
//! queue entries into the outbox table, whose stream feeds the intake queue
//! ([`crate::forwarder`]).

use async_trait::async_trait;
use std::sync::Arc;

use switchboard_core::model::Record;
use switchboard_core::ports::{BackendError, MessageStore, Outbox, QueueEntry, RawDelivery};

use super::DynamoStore;

/// The intake's outbox on DynamoDB: a delivery's records, the customers and conversations they
/// touch and their queue entries (one outbox item per conversation, in the outbox table) are
/// written in one transaction; the raw bytes are kept at the same time, in parallel. A
/// one-message delivery of a known customer costs three calls in two rounds: a
/// `BatchGetItem` (the record's key, the customer, the conversation) beside the
/// `BatchWriteItem` of the raw bytes, then one `TransactWriteItems`.
///
/// Nothing is sent to SQS here: the outbox table's stream (new images) is read by the
/// `intake-forwarder` function, which sends each outbox item's entries to the FIFO intake
/// queue in order. A stream record appears once per write and in the order of the writes
/// to that item, so a conversation's entries reach the queue in the order they were written.
///
/// After an error the raw bytes may be kept and nothing else; repeating is safe (records are
/// written once by key, and a record stored unconfirmed by a write too large for one
/// transaction is confirmed by the retry).
#[derive(Clone)]
pub struct DynamoOutbox {
    store: Arc<DynamoStore>,
    table: Arc<str>,
}

impl DynamoOutbox {
    /// The outbox of `store`, writing its items to the table `outbox_table`.
    pub fn new(store: Arc<DynamoStore>, outbox_table: impl Into<String>) -> Self {
        Self {
            store,
            table: Arc::from(outbox_table.into()),
        }
    }
}

#[async_trait]
impl Outbox for DynamoOutbox {
    async fn take_in(
        &self,
        delivery: Option<&RawDelivery>,
        records: &[Record],
    ) -> Result<Vec<QueueEntry>, BackendError> {
        let kept = async {
            match delivery {
                Some(delivery) => self.store.keep_delivery(delivery).await,
                None => Ok(()),
            }
        };
        let written = self.store.write_records(records, Some(&self.table));
        let (kept, written) = tokio::join!(kept, written);
        kept?;
        written
    }
}
