//! The intake service: one delivery in, durable records and queue entries out.
//!
//! The steps of DESIGN.md's flow, after the signature check:
//! 1. keep the raw delivery (before anything can answer 200);
//! 2. normalize every entry, change and item (a body that is not JSON is quarantined instead);
//! 3. write each record once, keyed by its provider id (at the same time as step 1);
//! 4. once both are durable, enqueue what is not enqueued yet, in batches, and confirm it —
//!    or, on a store whose queue shares its transactions ([`Outbox`]), steps 1, 3 and 4 in one
//!    transaction.
//!
//! `Ok` means all of that is durable; any error means the caller must answer 5xx so that the
//! provider retries, and the retry is safe: stored records are not written again, and records
//! whose enqueue was not confirmed are enqueued then.

use bytes::Bytes;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::channels;
use crate::clock::Clock;
use crate::ids::{ConversationId, RecordKey};
use crate::model::{CustomerIdentity, Direction, Message, ProviderId, Record, Webhook};
use crate::ports::{BackendError, IntakeQueue, MessageStore, Outbox, RawDelivery};
use crate::telemetry;

/// The largest body accepted: Lambda's own limit for a synchronous invocation (6 MB).
pub const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;

/// What happened to an accepted delivery, for the log and for tests.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IntakeOutcome {
    /// The delivery was not JSON and went to the quarantine.
    pub quarantined: bool,
    /// Records normalized from the delivery, duplicates inside it removed.
    pub records: usize,
    /// Duplicates inside the delivery (the same key twice), dropped before storing.
    pub duplicates_in_delivery: usize,
    /// Items already taken: the duplicates inside the delivery, and the messages and events
    /// stored and enqueued by an earlier delivery (a provider's retry).
    pub duplicates: usize,
    /// Entries handed to the queue by this call.
    pub enqueued: usize,
    /// Events referring to a message never seen (flagged `refers_to_unknown`, stored all the same).
    pub unknown_targets: usize,
}

/// The intake service over its ports.
#[derive(Clone)]
pub struct Intake {
    store: Arc<dyn MessageStore>,
    queue: Queue,
    clock: Arc<dyn Clock>,
}

/// Where the intake's queue entries go.
#[derive(Clone)]
enum Queue {
    /// A queue of its own: enqueued once the records are durable, then confirmed.
    Separate(Arc<dyn IntakeQueue>),
    /// The store's own tables: written with the records.
    Outbox(Arc<dyn Outbox>),
}

impl Intake {
    /// An intake writing to `store` and `queue`, timing receipts by `clock`.
    pub fn new(
        store: Arc<dyn MessageStore>,
        queue: Arc<dyn IntakeQueue>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            queue: Queue::Separate(queue),
            clock,
        }
    }

    /// An intake over a store whose queue shares its transactions: each delivery's bytes,
    /// records and queue entries are written by one [`Outbox::take_in`], one commit (`outbox`
    /// is the same store as `store`, seen through that port).
    pub fn with_outbox(
        store: Arc<dyn MessageStore>,
        outbox: Arc<dyn Outbox>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            queue: Queue::Outbox(outbox),
            clock,
        }
    }

    /// Takes in one verified delivery to `webhook`. See the module docs for the guarantees.
    pub async fn accept(
        &self,
        webhook: Webhook,
        body: Bytes,
    ) -> Result<IntakeOutcome, BackendError> {
        self.accept_mapped(webhook, body, |_| {}).await
    }

    /// [`accept`](Self::accept), with `map` applied to each record before it is stored: what
    /// the caller knows and the body does not (where an e-mail's attachments were stored).
    #[tracing::instrument(skip_all, fields(webhook = %webhook, bytes = body.len()))]
    pub async fn accept_mapped(
        &self,
        webhook: Webhook,
        body: Bytes,
        map: impl Fn(&mut Record),
    ) -> Result<IntakeOutcome, BackendError> {
        let received_at = self.clock.now();
        let parsed = channels::module(webhook)
            .records(&body, received_at)
            .map(|mut records| {
                records.iter_mut().for_each(&map);
                records
            });
        let delivery = RawDelivery::new(webhook, body, received_at, parsed.is_none());
        let Some(normalized) = parsed else {
            self.store.keep_delivery(&delivery).await?;
            tracing::warn!(delivery = %delivery.id, "delivery is not in the webhook's format; quarantined");
            return Ok(IntakeOutcome {
                quarantined: true,
                ..IntakeOutcome::default()
            });
        };
        self.take_in(&delivery, normalized, true).await
    }

    /// Takes in again a delivery kept earlier (`switchboard replay`, after a normalizer
    /// upgrade): normalizes its bytes as of its receive time and writes what is new, exactly as
    /// a provider's retry would. Records already stored are left as they are, so a replay of
    /// an unchanged normalizer changes nothing and only the kinds a new one reads appear (and
    /// are enqueued for prioritization). The bytes are not kept again; a delivery that still
    /// does not parse is left in the quarantine.
    pub async fn replay(&self, delivery: &RawDelivery) -> Result<IntakeOutcome, BackendError> {
        let Some(normalized) =
            channels::module(delivery.webhook).records(&delivery.body, delivery.received_at)
        else {
            return Ok(IntakeOutcome {
                quarantined: true,
                ..IntakeOutcome::default()
            });
        };
        self.take_in(delivery, normalized, false).await
    }

    /// Writes the records of `delivery` (and keeps its bytes alongside when `keep`), then
    /// enqueues what is not enqueued yet.
    async fn take_in(
        &self,
        delivery: &RawDelivery,
        normalized: Vec<Record>,
        keep: bool,
    ) -> Result<IntakeOutcome, BackendError> {
        let total = normalized.len();
        let records = unique_by_key(normalized);
        let queue = match &self.queue {
            Queue::Separate(queue) => queue,
            Queue::Outbox(outbox) => {
                let (records, unknown_targets) = self.resolve(records).await?;
                let pending = outbox.take_in(keep.then_some(delivery), &records).await?;
                return Ok(accepted(
                    delivery,
                    keep,
                    total,
                    &records,
                    unknown_targets,
                    &pending,
                ));
            }
        };
        // Keeping the raw bytes and writing the records do not depend on each other: one round
        // trip less on the acknowledgement path. Nothing is enqueued (and no 200 answered)
        // before both are durable; if either fails, the provider's retry redoes both safely.
        let kept = async {
            if keep {
                self.store.keep_delivery(delivery).await
            } else {
                Ok(())
            }
        };
        let write = async {
            let (records, unknown_targets) = self.resolve(records).await?;
            let pending = self.store.record(&records).await?;
            Ok::<_, BackendError>((records, unknown_targets, pending))
        };
        let (kept, written) = tokio::join!(kept, write);
        kept?;
        let (records, unknown_targets, pending) = written?;
        for chunk in pending.chunks(ENQUEUE_CHUNK) {
            queue.enqueue(chunk).await?;
            let keys: Vec<_> = chunk.iter().map(|e| e.record_key.clone()).collect();
            self.store.mark_enqueued(&keys).await?;
        }
        Ok(accepted(
            delivery,
            keep,
            total,
            &records,
            unknown_targets,
            &pending,
        ))
    }

    /// Completes what one delivery cannot tell alone, from the records stored before (one
    /// lookup for the whole delivery):
    /// * a brand reply to a public comment goes to the conversation of the comment it answers
    ///   (the payload names the parent comment, not its author), and an e-mail to the
    ///   conversation of the first stored message its `In-Reply-To`/`References` name;
    /// * an event whose target message was never seen is flagged `refers_to_unknown`;
    /// * an event of the brand's own message that names the brand as its customer goes to the
    ///   conversation of that message.
    async fn resolve(
        &self,
        mut records: Vec<Record>,
    ) -> Result<(Vec<Record>, usize), BackendError> {
        let message_key = |channel, account: &ProviderId, id: &ProviderId| {
            RecordKey::derive(channel, account, "message", id)
        };
        let mut wanted = Vec::new();
        for record in &records {
            match record {
                Record::Event(e) if !e.refers_to.as_str().starts_with("watermark:") => {
                    wanted.push(message_key(e.channel, &e.account_id, &e.refers_to));
                }
                Record::Message(m) => {
                    for parent in reply_parents(m) {
                        wanted.push(message_key(m.channel, &m.account_id, &parent));
                    }
                }
                _ => {}
            }
        }
        if wanted.is_empty() {
            return Ok((records, 0));
        }
        // Messages of this delivery first, then the store for the rest.
        let mut known: HashMap<RecordKey, (ConversationId, CustomerIdentity)> = records
            .iter()
            .filter_map(|r| match r {
                Record::Message(m) => {
                    Some((r.key(), (m.conversation_id.clone(), m.customer.clone())))
                }
                _ => None,
            })
            .collect();
        wanted.retain(|k| !known.contains_key(k));
        wanted.sort();
        wanted.dedup();
        if !wanted.is_empty() {
            for (key, record) in self.store.find(&wanted).await? {
                if let (Some(c), Some(u)) = (record.conversation_id(), record.customer()) {
                    known.insert(key, (c.clone(), u.clone()));
                }
            }
        }
        let mut unknown = 0;
        for record in &mut records {
            match record {
                Record::Event(e) if !e.refers_to.as_str().starts_with("watermark:") => {
                    let target = message_key(e.channel, &e.account_id, &e.refers_to);
                    match known.get(&target) {
                        None => {
                            e.refers_to_unknown = true;
                            unknown += 1;
                        }
                        // An event of the brand's own message whose payload names no customer
                        // (an X tweet deleted by the brand) belongs where that message is.
                        Some((conversation, customer))
                            if e.customer.provider_user_id == e.account_id =>
                        {
                            e.conversation_id = conversation.clone();
                            e.customer = customer.clone();
                        }
                        Some(_) => {}
                    }
                }
                Record::Message(m) => {
                    let joined = reply_parents(m)
                        .into_iter()
                        .find_map(|p| known.get(&message_key(m.channel, &m.account_id, &p)));
                    if let Some((conversation, customer)) = joined {
                        m.conversation_id = conversation.clone();
                        m.customer = customer.clone();
                    }
                }
                _ => {}
            }
        }
        Ok((records, unknown))
    }
}

/// Counts each business account's events of a delivery, and those that refer to a message
/// never seen ([`telemetry::account_events`]).
fn account_events(webhook: Webhook, records: &[Record]) {
    let mut accounts: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
    for record in records {
        if let Record::Event(e) = record {
            let counts = accounts.entry(e.account_id.as_str()).or_default();
            counts.0 += 1;
            counts.1 += u64::from(e.refers_to_unknown);
        }
    }
    for (account, (events, unknown)) in accounts {
        telemetry::account_events(webhook.as_str(), account, events, unknown);
    }
}

/// The parent comment of a brand reply whose conversation the payload cannot tell: an outbound
/// public message that the normalizer left in the account's own conversation.
fn provisional_reply_parent(m: &Message) -> Option<&ProviderId> {
    let provisional = m.direction == Direction::Outbound
        && m.public
        && m.customer.provider_user_id == m.account_id;
    m.reply_to.as_ref().filter(|_| provisional)
}

/// The stored messages whose conversation `m` joins, nearest first: the parent of a
/// provisional public reply, or an e-mail's `In-Reply-To` and `References`.
fn reply_parents(m: &Message) -> Vec<ProviderId> {
    match provisional_reply_parent(m) {
        Some(parent) => vec![parent.clone()],
        None => channels::email::thread_parents(m),
    }
}

/// Entries confirmed per round: large enough to batch (10 per SQS call, 100 per DynamoDB
/// transaction), small enough that a failure part-way leaves little to enqueue again.
const ENQUEUE_CHUNK: usize = 100;

/// The outcome of a delivery whose `records` (of `total` normalized) are stored and whose
/// `pending` entries are enqueued; logged and counted.
fn accepted(
    delivery: &RawDelivery,
    keep: bool,
    total: usize,
    records: &[Record],
    unknown_targets: usize,
    pending: &[crate::ports::QueueEntry],
) -> IntakeOutcome {
    let queued = records
        .iter()
        .filter(|r| r.conversation_id().is_some())
        .count();
    let outcome = IntakeOutcome {
        quarantined: false,
        records: records.len(),
        duplicates_in_delivery: total - records.len(),
        duplicates: total - records.len() + queued.saturating_sub(pending.len()),
        enqueued: pending.len(),
        unknown_targets,
    };
    account_events(delivery.webhook, records);
    tracing::info!(
        delivery = %delivery.id,
        records = outcome.records,
        duplicates_in_delivery = outcome.duplicates_in_delivery,
        enqueued = outcome.enqueued,
        unknown_targets = outcome.unknown_targets,
        replay = !keep,
        "delivery accepted"
    );
    outcome
}

/// Keeps the first record of each key, in order.
fn unique_by_key(records: Vec<Record>) -> Vec<Record> {
    let mut seen = HashSet::with_capacity(records.len());
    records
        .into_iter()
        .filter(|r| seen.insert(r.key()))
        .collect()
}
