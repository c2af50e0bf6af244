use super::*;
use crate::model::{Direction, Record, text_message};
use crate::priority::Reason;
use chrono::TimeZone;

fn t(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(s, 0).unwrap()
}

fn message(id: &str, direction: Direction, at: i64) -> Record {
    text_message("5511", id, direction, at, "hola")
}

fn score(priority: Priority, complaint: bool) -> Score {
    Score {
        priority,
        score: 10,
        topic: "billing".into(),
        team: "payments".into(),
        reasons: Vec::<Reason>::new(),
        complaint,
        calm: false,
    }
}

fn conversation(records: &[Record]) -> Conversation {
    let mut c = Conversation::from_record(&records[0]).unwrap();
    records.iter().for_each(|r| c.absorb(r));
    c
}

fn counter(tally: &Tally, c: Counter) -> u64 {
    tally.buckets().map(|(_, counts)| counts.get(c)).sum()
}

/// A conversation of customer `at`, prioritized P2 with an SLA clock due at `due`.
fn timed(at: i64, due: i64) -> Conversation {
    let m = message("in1", Direction::Inbound, at);
    let mut c = conversation(std::slice::from_ref(&m));
    c.apply_score(&m.key(), &score(Priority::P2, false), t(at));
    let policy = crate::sla::SlaPolicy::default_policy();
    let mut clock = c.sla_clock(&policy).unwrap();
    clock.due_at = t(due);
    c.sla = Some(clock);
    c
}

#[test]
fn an_answer_counts_once_with_its_response_time_and_sla_outcome() {
    let mut c = timed(3_600 * 10 + 60, 3_600 * 11);
    let before = Snapshot::of(&c);
    let echo = message("out1", Direction::Outbound, 3_600 * 10 + 660);
    c.absorb(&echo);
    let mut tally = Tally::default();
    transition(&before, &c, &mut tally);
    assert_eq!(counter(&tally, Counter::Answered), 1);
    assert_eq!(counter(&tally, Counter::SlaMet), 1);
    assert_eq!(counter(&tally, Counter::SlaBreached), 0);
    let (key, counts) = tally.buckets().next().unwrap();
    assert_eq!(key.hour, 3_600 * 10);
    assert_eq!(key.dims.team.as_deref(), Some("payments"));
    assert_eq!(key.dims.priority, Some(Priority::P2));
    assert_eq!(counts.first_response.count(), 1);
    assert_eq!(counts.first_response.sum(), 600);
    assert_eq!(counts.next_response.count(), 0);

    // The same echo again: nothing changes, nothing counts.
    let again = Snapshot::of(&c);
    c.absorb(&echo);
    let mut tally = Tally::default();
    transition(&again, &c, &mut tally);
    assert!(tally.is_empty());
}

#[test]
fn a_late_answer_is_a_breach_and_a_later_wait_is_a_next_response() {
    let mut c = timed(0, 600);
    c.absorb(&message("out1", Direction::Outbound, 900));
    c.absorb(&message("in2", Direction::Inbound, 1_000));
    let before = Snapshot::of(&c);
    c.absorb(&message("out2", Direction::Outbound, 1_030));
    let mut tally = Tally::default();
    transition(&before, &c, &mut tally);
    let (_, counts) = tally.buckets().next().unwrap();
    assert_eq!(counts.next_response.sum(), 30);
    assert_eq!(counts.first_response.count(), 0);
    // The second wait was never timed: no SLA outcome.
    assert_eq!(
        counter(&tally, Counter::SlaMet) + counter(&tally, Counter::SlaBreached),
        0
    );

    let mut late = timed(0, 600);
    let before = Snapshot::of(&late);
    late.absorb(&message("out1", Direction::Outbound, 900));
    let mut tally = Tally::default();
    transition(&before, &late, &mut tally);
    assert_eq!(counter(&tally, Counter::SlaBreached), 1);
}

#[test]
fn a_resolution_counts_first_contact_and_ends_a_timed_wait() {
    let mut answered = timed(0, 600);
    answered.absorb(&message("out1", Direction::Outbound, 100));
    let before = Snapshot::of(&answered);
    assert!(answered.resolve(t(200), "ana"));
    let mut tally = Tally::default();
    transition(&before, &answered, &mut tally);
    assert_eq!(counter(&tally, Counter::Resolved), 1);
    assert_eq!(counter(&tally, Counter::FirstContactResolved), 1);
    assert_eq!(
        counter(&tally, Counter::SlaMet),
        0,
        "its wait ended with the answer"
    );

    let mut waiting = timed(0, 600);
    let before = Snapshot::of(&waiting);
    assert!(waiting.resolve(t(700), "ana"));
    let mut tally = Tally::default();
    transition(&before, &waiting, &mut tally);
    assert_eq!(counter(&tally, Counter::FirstContactResolved), 0);
    assert_eq!(counter(&tally, Counter::SlaBreached), 1);
    assert_eq!(counter(&tally, Counter::Answered), 0);

    // A message after the resolution reopens it, in the hour of that message.
    let before = Snapshot::of(&waiting);
    waiting.absorb(&message("in9", Direction::Inbound, 7_300));
    let mut tally = Tally::default();
    transition(&before, &waiting, &mut tally);
    assert_eq!(counter(&tally, Counter::Reopened), 1);
    assert_eq!(tally.buckets().next().unwrap().0.hour, 7_200);
}

#[test]
fn a_scored_message_counts_its_volume_under_its_own_score() {
    let mut m = message("in1", Direction::Inbound, 5_000);
    let Record::Message(msg) = &mut m else {
        unreachable!()
    };
    msg.public = true;
    let c = conversation(&[m.clone()]);
    let Record::Message(msg) = &m else {
        unreachable!()
    };
    let mut tally = Tally::default();
    message_scored(&mut tally, &c, msg, &score(Priority::P1, true), true);
    for (counter_, want) in [
        (Counter::MessagesIn, 1),
        (Counter::PublicIn, 1),
        (Counter::Complaints, 1),
        (Counter::ConversationsOpened, 1),
        (Counter::Answered, 0),
    ] {
        assert_eq!(counter(&tally, counter_), want, "{counter_:?}");
    }
    let (key, _) = tally.buckets().next().unwrap();
    assert_eq!(key.dims.priority, Some(Priority::P1));
    assert_eq!(key.hour, 3_600);
}

#[test]
fn counts_read_back_from_their_fields() {
    let mut c = Counts::default();
    c.add(Counter::MessagesIn, 3);
    c.add(Counter::SlaBreached, 1);
    c.first_response.add(42);
    c.next_response.add(0);
    let fields = c.fields();
    assert!(fields.iter().all(|(name, _)| {
        name.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
    }));
    let back = Counts::from_fields(fields.iter().map(|(n, v)| (n.as_str(), *v)));
    assert_eq!(back, c);
    let mut merged = c.clone();
    merged.merge(&back);
    assert_eq!(merged.get(Counter::MessagesIn), 6);
    assert_eq!(merged.first_response.count(), 2);
}

#[test]
fn dims_ids_are_stable_and_distinct() {
    let c = timed(0, 600);
    let a = Dims::of_conversation(&c);
    let mut b = a.clone();
    b.topic = Some("other".into());
    assert_eq!(a.id(), Dims::of_conversation(&c).id());
    assert_ne!(a.id(), b.id());
    assert_eq!(a.id().len(), 16);
}
