//! Erasure: `DELETE /api/customers/{id}` forgets a person — every customer linked with the one
//! named, their conversations and records, identities and identifiers, the raw deliveries that
//! held them, their scheduled reminders, replies' idempotency results, queue entries, events
//! and the mail bucket's objects (messages as received, attachments) — and answers an [`ErasureReceipt`] of what went.
//!
//! **Raw deliveries are dropped, not rewritten.** A kept delivery is the provider's signed
//! body, kept byte for byte so that it can be verified and normalized again; a rewritten body
//! would be neither. Its bytes are removed and a tombstone stays (its id, channel and receive
//! time, marked erased), so that a listing shows a gap rather than nothing. The other customers
//! a shared delivery held (a WhatsApp batch, a page feed) lose only the raw copy: their records
//! were normalized from it and stay.
//!
//! **Which deliveries.** Records do not name their delivery (nothing is added to the
//! acknowledgement path for a rare operation): the erasure reads every kept delivery and drops
//! each one whose bytes name one of the person's channel identities (a phone number, a
//! page-scoped id, an e-mail address…) as a whole token. That finds every delivery of theirs
//! (each names its sender or recipient), quarantined ones included, and also one where someone
//! else wrote their number: erring toward erasing. No normalizer is needed, so the agent API's
//! function stays small. Its cost is one read of the kept deliveries, bounded by the retention.
//!
//! **Order and retries.** The deliveries, reminders and extra stores go first and the store's
//! own rows last, in one step: until that step the person is still found, so an erasure cut
//! short is completed by calling it again. Afterwards the person is unknown (404), and the same
//! person writing again starts as a new customer: no history, links or tier.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;

use crate::clock::Clock;
use crate::ids::{ConversationId, CustomerId, DeliveryId};
use crate::model::{Conversation, Record};
use crate::ports::{BackendError, RawDelivery, ReminderScheduler};

/// How many kept deliveries an erasure reads a page.
pub const DELIVERY_PAGE: usize = 200;

/// A person as a store holds them: what an erasure removes.
#[derive(Debug, Clone, PartialEq)]
pub struct ErasureScope {
    /// The customer named and every customer linked with them (the survivor first).
    pub customers: Vec<CustomerId>,
    /// Their channel identities' ids, as the providers send them (`provider_user_id`).
    pub identities: Vec<String>,
    /// Their conversations.
    pub conversations: Vec<Conversation>,
    /// What switchboard stored of their messages apart from the store: the mail bucket's
    /// `s3://bucket/key` objects (a message as SES wrote it, its attachments), sorted, each
    /// once. A provider's own media links are not listed.
    pub attachments: Vec<String>,
}

/// The objects `record` has stored apart from the store ([`ErasureScope::attachments`]): its
/// `source` and its attachments' `s3://` locations.
pub fn stored_apart(record: &Record) -> impl Iterator<Item = String> + '_ {
    let message = match record {
        Record::Message(m) => Some(m),
        _ => None,
    };
    message
        .into_iter()
        .flat_map(|m| {
            m.source
                .iter()
                .chain(m.attachments.iter().filter_map(|a| a.url.as_ref()))
        })
        .filter(|url| url.starts_with("s3://"))
        .cloned()
}

impl ErasureScope {
    /// Whether `body` names one of the identities as a whole token (not inside a longer run
    /// of letters and digits).
    pub fn named_in(&self, body: &[u8]) -> bool {
        self.identities
            .iter()
            .filter(|id| !id.is_empty())
            .any(|id| contains_token(body, id.as_bytes()))
    }

    /// The names of the reminders scheduled for the conversations.
    fn reminders(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .conversations
            .iter()
            .flat_map(|c| {
                c.sla
                    .iter()
                    .flat_map(|s| s.reminders.iter().cloned())
                    .chain(c.window_reminder.iter().cloned())
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The conversations' ids.
    pub fn conversation_ids(&self) -> Vec<ConversationId> {
        self.conversations.iter().map(|c| c.id.clone()).collect()
    }
}

fn contains_token(haystack: &[u8], needle: &[u8]) -> bool {
    let word = |b: Option<&u8>| b.is_some_and(u8::is_ascii_alphanumeric);
    let mut from = 0;
    while let Some(at) = find(&haystack[from..], needle).map(|i| from + i) {
        let end = at + needle.len();
        let before = at.checked_sub(1).and_then(|i| haystack.get(i));
        if !word(before) && !word(haystack.get(end)) {
            return true;
        }
        from = at + 1;
    }
    false
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// What a store removed of a person in the last step of an erasure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErasedRows {
    /// Customers (the one named and the linked ones).
    pub customers: usize,
    /// Conversations.
    pub conversations: usize,
    /// Messages and events.
    pub records: usize,
    /// Identifier sightings (e-mail addresses, phone numbers, handles) of their identities.
    pub identifiers: usize,
    /// Idempotency results of replies to their conversations (they hold the reply).
    pub replies: usize,
    /// Entries of the intake queue and dead letters about their records.
    pub queue_entries: usize,
}

/// The receipt of an erasure: what was erased, counted, and nothing of the person but ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErasureReceipt {
    /// The customer id the erasure was asked for.
    pub customer_id: CustomerId,
    /// When.
    pub erased_at: DateTime<Utc>,
    /// Every customer id erased (the one asked for and those linked with it).
    pub customer_ids: Vec<CustomerId>,
    /// The store's rows.
    #[serde(flatten)]
    pub rows: ErasedRows,
    /// Raw deliveries whose bytes were dropped (tombstones stay).
    pub deliveries: usize,
    /// Scheduled reminders cancelled.
    pub reminders: usize,
    /// Lines of the event log blanked (embedded).
    pub events: usize,
    /// Objects stored apart deleted: the mail bucket's messages as received and their
    /// attachments.
    pub attachments: usize,
    /// Objects stored apart this erasure could not delete (no mail bucket configured where it
    /// ran, or an attachment stored under an older, shared key): the bucket's lifecycle
    /// forgets them with the retention period.
    pub attachments_left: usize,
}

/// What a store does for an erasure. Contract: [`erase`](Self::erase) is the last step and
/// removes everything [`scope`](Self::scope) found, so `scope` answers `None` afterwards;
/// every step may be repeated.
#[async_trait]
pub trait CustomerErasure: Send + Sync {
    /// The person of customer `id` (followed to the survivor of links), `None` if unknown.
    async fn scope(&self, id: &CustomerId) -> Result<Option<ErasureScope>, BackendError>;
    /// Up to `limit` kept deliveries after the position `after` (an opaque token this store
    /// gave), in a stable order, with the token of the next page (`None`: the last page).
    async fn deliveries_page(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<RawDelivery>, Option<String>), BackendError>;
    /// Drops the bytes of these deliveries, leaving tombstones; answers how many it dropped.
    async fn drop_deliveries(
        &self,
        ids: &[DeliveryId],
        at: DateTime<Utc>,
    ) -> Result<usize, BackendError>;
    /// Removes the person's rows, in one step where the store allows.
    async fn erase(&self, scope: &ErasureScope) -> Result<ErasedRows, BackendError>;
}

/// Another place that holds something of a person: the embedded event log, the mail bucket.
#[async_trait]
pub trait ErasureSite: Send + Sync {
    /// What this site counts in the receipt.
    fn counts(&self) -> SiteCount;
    /// Forgets what it holds of `scope`; answers how many items it removed or blanked.
    async fn forget(&self, scope: &ErasureScope) -> Result<usize, BackendError>;
}

/// The receipt field an [`ErasureSite`] adds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteCount {
    /// [`ErasureReceipt::events`].
    Events,
    /// [`ErasureReceipt::attachments`].
    Attachments,
}

/// The erasure service over its ports.
#[derive(Clone)]
pub struct Erasure {
    store: Arc<dyn CustomerErasure>,
    reminders: Arc<dyn ReminderScheduler>,
    sites: Vec<Arc<dyn ErasureSite>>,
    clock: Arc<dyn Clock>,
}

impl Erasure {
    /// An erasure over `store`, cancelling through `reminders`, forgetting in `sites` too.
    pub fn new(
        store: Arc<dyn CustomerErasure>,
        reminders: Arc<dyn ReminderScheduler>,
        sites: Vec<Arc<dyn ErasureSite>>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            reminders,
            sites,
            clock,
        }
    }

    /// The same erasure, forgetting in `site` too.
    pub fn with_site(mut self, site: Arc<dyn ErasureSite>) -> Self {
        self.sites.push(site);
        self
    }

    /// Erases the person of customer `id`; `None` when no such customer is stored. See the
    /// module docs for what goes and in which order.
    pub async fn erase(&self, id: &CustomerId) -> Result<Option<ErasureReceipt>, BackendError> {
        let Some(scope) = self.store.scope(id).await? else {
            return Ok(None);
        };
        let erased_at = self.clock.now();
        let deliveries = self.drop_deliveries(&scope, erased_at).await?;
        let names = scope.reminders();
        self.reminders.cancel(&names).await?;
        let mut receipt = ErasureReceipt {
            customer_id: id.clone(),
            erased_at,
            customer_ids: scope.customers.clone(),
            rows: ErasedRows::default(),
            deliveries,
            reminders: names.len(),
            events: 0,
            attachments: 0,
            attachments_left: 0,
        };
        for site in &self.sites {
            let n = site.forget(&scope).await?;
            match site.counts() {
                SiteCount::Events => receipt.events += n,
                SiteCount::Attachments => receipt.attachments += n,
            }
        }
        receipt.attachments_left = scope.attachments.len().saturating_sub(receipt.attachments);
        receipt.rows = self.store.erase(&scope).await?;
        tracing::info!(
            customer = %id,
            customers = receipt.customer_ids.len(),
            records = receipt.rows.records,
            conversations = receipt.rows.conversations,
            deliveries = receipt.deliveries,
            "customer erased"
        );
        Ok(Some(receipt))
    }

    /// Reads every kept delivery and drops those naming the person.
    async fn drop_deliveries(
        &self,
        scope: &ErasureScope,
        at: DateTime<Utc>,
    ) -> Result<usize, BackendError> {
        let mut after = None;
        let mut dropped = 0;
        loop {
            let (page, next) = self.store.deliveries_page(after, DELIVERY_PAGE).await?;
            let holding: Vec<DeliveryId> = page
                .iter()
                .filter(|d| scope.named_in(&d.body))
                .map(|d| d.id.clone())
                .collect();
            if !holding.is_empty() {
                dropped += self.store.drop_deliveries(&holding, at).await?;
            }
            match next {
                Some(token) => after = Some(token),
                None => return Ok(dropped),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(ids: &[&str]) -> ErasureScope {
        ErasureScope {
            customers: Vec::new(),
            identities: ids.iter().map(|s| (*s).to_owned()).collect(),
            conversations: Vec::new(),
            attachments: Vec::new(),
        }
    }

    #[test]
    fn a_delivery_is_the_persons_when_it_names_an_id_as_a_whole_token() {
        let person = scope(&["5511977770001", "ana@example.com"]);
        assert!(person.named_in(br#"{"wa_id":"5511977770001"}"#));
        assert!(person.named_in(b"From: Ana <ana@example.com>\r\n"));
        assert!(
            person.named_in(b"5511977770001"),
            "at both ends of the body"
        );
        // Inside a longer number or address: someone else.
        assert!(!person.named_in(br#"{"wa_id":"55119777700012"}"#));
        assert!(!person.named_in(br#"{"wa_id":"955119777700010"}"#));
        assert!(!person.named_in(b"From: <diana@example.com>"));
        // A later whole occurrence after a partial one still counts.
        assert!(person.named_in(b"155119777700011 and 5511977770001."));
        assert!(!person.named_in(b""));
        // No identity, no match (an empty id would match everything).
        assert!(!scope(&[""]).named_in(b"anything"));
    }
}
