//! The one rule for storing records: what a batch of records does to the store, decided here
//! and applied by every [`MessageStore`](crate::ports::MessageStore) adapter.
//!
//! A store tells, for each record's key, what it already holds ([`Prior`]); [`plan`] answers
//! what to write and what to hand to the queue:
//!
//! * a record not stored yet is written (the first version of a key wins; a key twice in one
//!   batch counts once);
//! * every message and event not yet confirmed enqueued — new, or stored by an earlier call
//!   whose enqueue was never confirmed — is absorbed into its conversation and its queue entry
//!   returned. For a stored one it is the **stored** version that counts, never the one
//!   delivered again (a provider may resend an item with other bytes: another timestamp text,
//!   a field added);
//! * a record confirmed enqueued changes nothing;
//! * the customer of each new record's identity exists afterwards ([`customer_of`]), and the
//!   record is listed under the surviving customer when that identity was linked to another.
//!
//! [`fold`] is what absorbing does to one conversation. All of it is plain functions over
//! plain data.

use std::collections::{HashMap, HashSet};

use crate::ids::{ConversationId, CustomerId, RecordKey};
use crate::metrics::{self, Snapshot, Tally};
use crate::model::{Conversation, Customer, CustomerIdentity, Record};
use crate::ports::QueueEntry;

/// What a store holds of a record key before a write.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Prior<'a> {
    /// Nothing: the record is new.
    New,
    /// The record as stored, its enqueue not confirmed yet.
    Unconfirmed(&'a Record),
    /// Stored and confirmed enqueued.
    Confirmed,
}

/// What to do for a batch of records. Every list keeps the input order; each key appears once.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan<'a> {
    /// Records to write, with their keys: not stored yet.
    pub new: Vec<(&'a RecordKey, &'a Record)>,
    /// The identities of the new records, each once: their customer must exist.
    pub identities: Vec<&'a CustomerIdentity>,
    /// For each conversation touched, the records to absorb into it (for a record stored
    /// before, its stored version), in input order.
    pub conversations: Vec<(ConversationId, Vec<&'a Record>)>,
    /// The queue entries still to confirm.
    pub pending: Vec<QueueEntry>,
}

impl Plan<'_> {
    /// Nothing to write: every record was stored and confirmed before (or the batch is empty).
    pub fn writes_nothing(&self) -> bool {
        self.new.is_empty() && self.conversations.is_empty()
    }
}

/// The plan for `records`, given what the store holds of each key (`prior`). `keys` are the
/// records' keys in the same order (`keys[i]` is `records[i].key()`): a key is a SHA-256, so
/// the caller derives them once, for its reads, this plan and its writes.
///
/// # Panics
///
/// When `keys` and `records` differ in length.
pub fn plan<'a>(
    records: &'a [Record],
    keys: &'a [RecordKey],
    prior: impl Fn(&RecordKey) -> Prior<'a>,
) -> Plan<'a> {
    assert_eq!(records.len(), keys.len(), "one key per record");
    let mut out = Plan::default();
    let mut seen: HashSet<&RecordKey> = HashSet::with_capacity(records.len());
    let mut identities = HashSet::new();
    let mut conversations: HashMap<ConversationId, usize> = HashMap::new();
    for (record, key) in records.iter().zip(keys) {
        if !seen.insert(key) {
            continue;
        }
        let current = match prior(key) {
            Prior::Confirmed => continue,
            Prior::Unconfirmed(stored) => stored,
            Prior::New => {
                out.new.push((key, record));
                if let Some(identity) = record.customer()
                    && identities.insert(identity.customer_id.clone())
                {
                    out.identities.push(identity);
                }
                record
            }
        };
        let (Some(entry), Some(id)) = (
            QueueEntry::for_keyed(key.clone(), current),
            current.conversation_id(),
        ) else {
            continue;
        };
        let slot = *conversations.entry(id.clone()).or_insert_with(|| {
            out.conversations.push((id.clone(), Vec::new()));
            out.conversations.len() - 1
        });
        out.conversations[slot].1.push(current);
        out.pending.push(entry);
    }
    out
}

/// The conversation after absorbing `records` into `before` (as stored; `None` when it does
/// not exist yet, then it is made from the first record), and what absorbing them counted
/// (each record's [`transition`](crate::metrics::transition): an echo that ended a wait, a
/// message that reopened a case). `None` when nothing changed, so nothing needs writing.
pub fn fold(before: Option<&Conversation>, records: &[&Record]) -> Option<(Conversation, Tally)> {
    let mut conversation = match before {
        Some(c) => c.clone(),
        None => Conversation::from_record(records.first()?)?,
    };
    let mut tally = Tally::default();
    for record in records {
        let snapshot = Snapshot::of(&conversation);
        conversation.absorb(record);
        metrics::transition(&snapshot, &conversation, &mut tally);
    }
    (before != Some(&conversation)).then_some((conversation, tally))
}

/// The customer a new record of `identity` is listed under, given the surviving customer the
/// store found for it (`survivor`: the identity's own customer, or the one it was merged into
/// by a link; `None` when it has none yet). Answers the id, and the customer to create when
/// there is none.
pub fn customer_of(
    identity: &CustomerIdentity,
    survivor: Option<&Customer>,
) -> (CustomerId, Option<Customer>) {
    match survivor {
        Some(customer) => (customer.id.clone(), None),
        None => (
            identity.customer_id.clone(),
            Some(Customer::of_identity(identity)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Direction;
    use chrono::{TimeZone, Utc};

    fn message(id: &str, customer: &str, direction: Direction, at: i64, text: &str) -> Record {
        crate::model::text_message(customer, id, direction, at, text)
    }

    #[test]
    fn new_records_are_written_and_queued_confirmed_ones_change_nothing() {
        let a = message("a", "1", Direction::Inbound, 100, "hi");
        let b = message("b", "1", Direction::Inbound, 110, "hello?");
        let c = message("c", "2", Direction::Inbound, 120, "hey");
        let records = [a.clone(), b.clone(), a.clone(), c.clone()];
        let confirmed = b.key();
        let keys: Vec<RecordKey> = records.iter().map(Record::key).collect();
        let plan = plan(&records, &keys, |k| {
            if *k == confirmed {
                Prior::Confirmed
            } else {
                Prior::New
            }
        });
        assert_eq!(plan.new, [(&a.key(), &a), (&c.key(), &c)]);
        assert_eq!(plan.identities.len(), 2);
        assert_eq!(
            plan.pending
                .iter()
                .map(|e| &e.record_key)
                .collect::<Vec<_>>(),
            [&a.key(), &c.key()]
        );
        assert_eq!(plan.conversations.len(), 2);
        assert!(!plan.writes_nothing());
        let all_confirmed = super::plan(&records, &keys, |_| Prior::Confirmed);
        assert!(all_confirmed.writes_nothing() && all_confirmed.pending.is_empty());
    }

    #[test]
    fn an_unconfirmed_record_counts_as_stored_not_as_delivered_again() {
        let stored = message("a", "1", Direction::Inbound, 100, "first");
        let again = message("a", "1", Direction::Inbound, 900, "resent");
        let records = [again];
        let keys = [records[0].key()];
        let plan = plan(&records, &keys, |_| Prior::Unconfirmed(&stored));
        assert!(plan.new.is_empty() && plan.identities.is_empty());
        assert_eq!(plan.conversations[0].1, [&stored]);
        let (conversation, _) = fold(None, &plan.conversations[0].1).unwrap();
        assert_eq!(
            conversation.waiting_since,
            Some(Utc.timestamp_opt(100, 0).unwrap())
        );
        assert_eq!(plan.pending.len(), 1);
    }

    #[test]
    fn folding_what_is_already_reflected_writes_nothing() {
        let a = message("a", "1", Direction::Inbound, 100, "hi");
        let out = message("o", "1", Direction::Outbound, 200, "answer");
        let (first, tally) = fold(None, &[&a]).unwrap();
        assert!(tally.is_empty(), "a wait starting counts nothing");
        assert_eq!(fold(Some(&first), &[&a]), None);
        let (answered, tally) = fold(Some(&first), &[&out]).unwrap();
        assert_eq!(answered.first_response_seconds, Some(100));
        assert!(!tally.is_empty(), "the answer counts");
    }

    #[test]
    fn a_new_identity_gets_its_customer_and_a_linked_one_is_listed_under_the_survivor() {
        let Record::Message(m) = message("a", "1", Direction::Inbound, 100, "hi") else {
            unreachable!()
        };
        let (id, create) = customer_of(&m.customer, None);
        assert_eq!(id, m.customer.customer_id);
        assert_eq!(create, Some(Customer::of_identity(&m.customer)));
        let survivor = Customer {
            id: CustomerId::from_stored("cu_survivor"),
            ..Customer::of_identity(&m.customer)
        };
        assert_eq!(
            customer_of(&m.customer, Some(&survivor)),
            (survivor.id.clone(), None)
        );
    }
}
