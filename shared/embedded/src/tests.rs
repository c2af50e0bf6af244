use bytes::Bytes;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_core::clock::Clock;
use switchboard_core::ids::{ConversationId, CustomerId, DeliveryId};
use switchboard_core::model::{
    Channel, CustomerIdentity, Direction, Message, MessageKind, Notification, ProviderId, Record,
    Webhook,
};
use switchboard_core::ports::{
    BackendError, ConversationReader, ConversationStore, IntakeQueue, MessageStore, Page,
    PageRequest, QueueEntry, RawDelivery,
};

use crate::{EmbeddedError, FILE_NAME, SCHEMA_VERSION, SqliteStore};

/// A clock tests move by hand.
struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    fn new() -> Arc<Self> {
        Arc::new(Self(Mutex::new(t(1_700_000_000))))
    }

    fn advance(&self, by: TimeDelta) {
        let mut now = self.0.lock().unwrap();
        *now += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).unwrap()
}

fn open(dir: &tempfile::TempDir, clock: &Arc<TestClock>) -> SqliteStore {
    SqliteStore::open(dir.path(), 30, clock.clone()).unwrap()
}

fn message(customer: &str, id: &str, at: DateTime<Utc>, text: &str) -> Record {
    let channel = Channel::Whatsapp;
    let account = ProviderId::from("100200300");
    let customer = ProviderId::from(customer);
    Record::Message(Message {
        channel,
        account_id: account.clone(),
        provider_message_id: id.into(),
        conversation_id: ConversationId::derive(channel, &account, &customer),
        customer: CustomerIdentity {
            customer_id: CustomerId::derive(channel, &customer),
            channel,
            provider_user_id: customer,
            display_name: None,
            identifiers: Vec::new(),
        },
        direction: Direction::Inbound,
        kind: MessageKind::Text,
        provider_type: Some("text".into()),
        text: Some(text.into()),
        attachments: Vec::new(),
        sent_at: at,
        sent_at_estimated: false,
        provider_timestamp: Some(at.timestamp().to_string()),
        reply_to: None,
        public: false,
        thread_id: None,
        raw: json!({"id": id, "text": {"body": text}}),
        source: None,
    })
}

fn notification(id: &str) -> Record {
    Record::Notification(Notification {
        channel: Channel::Whatsapp,
        account_id: "100200300".into(),
        notification_id: id.into(),
        topic: "account_update".into(),
        occurred_at: t(1_700_000_000),
        raw: json!({"event": id}),
    })
}

fn text_of(record: &Record) -> Option<&str> {
    match record {
        Record::Message(m) => m.text.as_deref(),
        _ => None,
    }
}

fn entry(conversation: &str, key: &str) -> QueueEntry {
    QueueEntry {
        record_key: switchboard_core::ids::RecordKey::from_stored(key),
        conversation_id: ConversationId::from_stored(conversation),
        channel: Channel::Whatsapp,
        record_type: "message".into(),
        kind: "text".into(),
        account_id: None,
    }
}

fn page(cursor: Option<String>, limit: usize) -> PageRequest {
    PageRequest { cursor, limit }
}

/// Reads a whole listing `limit` items at a time, checking every page but the last is full.
async fn read_all<T, F, Fut>(limit: usize, mut read: F) -> Vec<Vec<T>>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: std::future::Future<Output = Result<Page<T>, BackendError>>,
{
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let Page { items, next } = read(page(cursor, limit)).await.unwrap();
        pages.push(items);
        match next {
            Some(next) => {
                assert_eq!(pages.last().unwrap().len(), limit);
                cursor = Some(next);
            }
            None => return pages,
        }
        assert!(pages.len() < 100, "pagination does not end");
    }
}

#[tokio::test]
async fn everything_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let body = Bytes::from_static(br#"{"entry":[]}"#);
    let delivery = RawDelivery::new(
        Webhook::Whatsapp,
        body,
        Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap(),
        false,
    );
    let record = message("5511999990000", "wamid.1", t(1_700_000_100), "hello");
    let conversation_id = record.conversation_id().unwrap().clone();
    {
        let store = open(&dir, &clock);
        store.keep_delivery(&delivery).await.unwrap();
        let pending = store.record(std::slice::from_ref(&record)).await.unwrap();
        store.enqueue(&pending).await.unwrap();
    }
    let file = dir.path().join(FILE_NAME);
    let mode: String = rusqlite::Connection::open(&file)
        .unwrap()
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");

    let store = open(&dir, &clock);
    assert_eq!(store.delivery(&delivery.id).await.unwrap(), Some(delivery));
    let conversation = store.conversation(&conversation_id).await.unwrap().unwrap();
    assert_eq!(conversation.first_at, t(1_700_000_100));
    let timeline = store
        .timeline(&conversation_id, page(None, 10))
        .await
        .unwrap();
    assert_eq!(timeline.items.len(), 1);
    assert_eq!(timeline.items[0].record, record);
    assert_eq!(timeline.items[0].key, record.key());
    assert_eq!(timeline.items[0].stored_at, clock.now());
    assert_eq!(store.queue_len().await.unwrap(), 1);
    // Its entry is in the queue, so it is confirmed: nothing pending.
    assert!(store.record(&[record]).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_record_never_enqueued_stays_pending_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let record = message("5511999990000", "wamid.1", t(1_700_000_100), "hello");
    {
        let store = open(&dir, &clock);
        assert_eq!(
            store
                .record(std::slice::from_ref(&record))
                .await
                .unwrap()
                .len(),
            1
        );
    }
    let store = open(&dir, &clock);
    let pending = store.record(std::slice::from_ref(&record)).await.unwrap();
    assert_eq!(
        pending.len(),
        1,
        "stored, not enqueued: the next attempt enqueues it"
    );
    store.enqueue(&pending).await.unwrap();
    assert!(store.record(&[record]).await.unwrap().is_empty());
    assert_eq!(store.queue_len().await.unwrap(), 1);
}

#[tokio::test]
async fn a_duplicate_record_is_a_no_op_and_the_first_version_wins() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let store = open(&dir, &clock);
    let first = message("5511999990000", "wamid.1", t(1_700_000_100), "first");
    let second = message("5511999990000", "wamid.1", t(1_700_000_900), "second");
    assert_eq!(first.key(), second.key());

    let pending = store.record(std::slice::from_ref(&first)).await.unwrap();
    assert_eq!(pending, vec![QueueEntry::for_record(&first).unwrap()]);
    store.mark_enqueued(&[first.key()]).await.unwrap();
    let stored_at = clock.now();

    clock.advance(TimeDelta::seconds(60));
    assert!(store.record(&[second]).await.unwrap().is_empty());

    let conversation_id = first.conversation_id().unwrap();
    let timeline = store
        .timeline(conversation_id, page(None, 10))
        .await
        .unwrap();
    assert_eq!(timeline.items.len(), 1);
    assert_eq!(text_of(&timeline.items[0].record), Some("first"));
    assert_eq!(timeline.items[0].stored_at, stored_at);
    let conversation = store.conversation(conversation_id).await.unwrap().unwrap();
    assert_eq!(conversation.last_at, t(1_700_000_100));
}

#[tokio::test]
async fn a_record_not_marked_enqueued_is_returned_again_until_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let store = open(&dir, &clock);
    let a = message("5511999990000", "wamid.a", t(1_700_000_100), "a");
    let b = message("5511999990000", "wamid.b", t(1_700_000_200), "b");
    let note = notification("n1");
    let entry_a = QueueEntry::for_record(&a).unwrap();
    let entry_b = QueueEntry::for_record(&b).unwrap();

    let pending = store.record(&[a.clone(), note.clone()]).await.unwrap();
    assert_eq!(pending, vec![entry_a.clone()]);
    // `a` left unconfirmed, `b` new, the notification never returned; input order, each once.
    let pending = store
        .record(&[b.clone(), note.clone(), a.clone(), a.clone()])
        .await
        .unwrap();
    assert_eq!(pending, vec![entry_b.clone(), entry_a.clone()]);

    store.mark_enqueued(&[a.key()]).await.unwrap();
    assert_eq!(
        store.record(&[a.clone(), b.clone()]).await.unwrap(),
        vec![entry_b]
    );
    store.mark_enqueued(&[b.key()]).await.unwrap();
    assert!(store.record(&[a, b, note]).await.unwrap().is_empty());
}

#[tokio::test]
async fn conversation_times_are_min_and_max_whatever_the_arrival_order() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let store = open(&dir, &clock);
    let times = [50, 10, 90, 30];
    for (i, at) in times.into_iter().enumerate() {
        let record = message(
            "5511999990000",
            &format!("wamid.{i}"),
            t(1_700_000_000 + at),
            "x",
        );
        store.record(&[record]).await.unwrap();
    }
    // And several in one call, out of order.
    let batch = [
        message("5511999990000", "wamid.x", t(1_700_000_095), "x"),
        message("5511999990000", "wamid.y", t(1_700_000_005), "y"),
    ];
    store.record(&batch).await.unwrap();

    let id = batch[0].conversation_id().unwrap();
    let conversation = store.conversation(id).await.unwrap().unwrap();
    assert_eq!(conversation.first_at, t(1_700_000_005));
    assert_eq!(conversation.last_at, t(1_700_000_095));
    assert_eq!(conversation.channel, Channel::Whatsapp);

    let timeline = store.timeline(id, page(None, 100)).await.unwrap();
    let at: Vec<i64> = timeline
        .items
        .iter()
        .map(|r| r.record.at().timestamp() - 1_700_000_000)
        .collect();
    assert_eq!(at, [5, 10, 30, 50, 90, 95]);
}

#[tokio::test]
async fn conversations_page_through_every_item_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let store = open(&dir, &clock);
    // Seven conversations; two share a last time (ordered by id then).
    let offsets = [70, 10, 40, 40, 20, 60, 30];
    for (i, at) in offsets.into_iter().enumerate() {
        let record = message(
            &format!("55119999900{i:02}"),
            &format!("wamid.c{i}"),
            t(1_700_000_000 + at),
            "x",
        );
        store.record(&[record]).await.unwrap();
    }
    let pages = read_all(3, |p| store.conversations(None, p)).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1]);
    let all: Vec<_> = pages.into_iter().flatten().collect();
    let keys: Vec<_> = all.iter().map(|c| (c.last_at, c.id.clone())).collect();
    let mut expected = keys.clone();
    expected.sort_by(|a, b| b.cmp(a));
    assert_eq!(keys, expected);
    let mut ids: Vec<_> = all.iter().map(|c| c.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 7);

    // The channel filter, with its own cursors.
    let whatsapp = read_all(3, |p| store.conversations(Some(Channel::Whatsapp), p)).await;
    assert_eq!(whatsapp.concat().len(), 7);
    let telegram = store
        .conversations(Some(Channel::Telegram), page(None, 3))
        .await
        .unwrap();
    assert_eq!(
        telegram,
        Page {
            items: Vec::new(),
            next: None
        }
    );
}

#[tokio::test]
async fn timeline_and_quarantine_page_through_every_item_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let store = open(&dir, &clock);
    let records: Vec<Record> = [5, 3, 3, 1, 7, 6, 2]
        .into_iter()
        .enumerate()
        .map(|(i, at)| {
            message(
                "5511999990000",
                &format!("wamid.{i}"),
                t(1_700_000_000 + at),
                "x",
            )
        })
        .collect();
    store.record(&records).await.unwrap();
    let id = records[0].conversation_id().unwrap();
    let pages = read_all(3, |p| store.timeline(id, p)).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1]);
    let got: Vec<_> = pages
        .concat()
        .into_iter()
        .map(|r| (r.record.at(), r.key))
        .collect();
    let mut expected: Vec<_> = records.iter().map(|r| (r.at(), r.key())).collect();
    expected.sort();
    assert_eq!(got, expected);

    let mut kept = Vec::new();
    for i in 0..7 {
        let delivery = RawDelivery::new(
            Webhook::Whatsapp,
            Bytes::from(format!("not json {i}")),
            t(1_700_000_000 + [3, 1, 4, 1, 5, 9, 2][i]),
            true,
        );
        store.keep_delivery(&delivery).await.unwrap();
        kept.push((delivery.received_at, delivery.id));
    }
    store
        .keep_delivery(&RawDelivery::new(
            Webhook::Whatsapp,
            Bytes::from_static(b"{}"),
            t(1_700_000_010),
            false,
        ))
        .await
        .unwrap();
    let pages = read_all(3, |p| store.quarantined(p)).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1]);
    kept.sort_by(|a, b| b.cmp(a));
    let expected: Vec<DeliveryId> = kept.into_iter().map(|(_, id)| id).collect();
    assert_eq!(pages.concat(), expected);
}

#[tokio::test]
async fn a_limit_of_zero_is_one_and_an_exact_last_page_has_no_next() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let store = open(&dir, &clock);
    let records: Vec<Record> = (0..6)
        .map(|i| {
            message(
                "5511999990000",
                &format!("wamid.{i}"),
                t(1_700_000_000 + i),
                "x",
            )
        })
        .collect();
    store.record(&records).await.unwrap();
    let id = records[0].conversation_id().unwrap();
    let first = store.timeline(id, page(None, 0)).await.unwrap();
    assert_eq!(first.items.len(), 1);
    assert!(first.next.is_some());
    let pages = read_all(3, |p| store.timeline(id, p)).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3]);
}

#[tokio::test]
async fn a_cursor_not_issued_by_the_same_listing_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let store = open(&dir, &clock);
    let records: Vec<Record> = (0..3)
        .map(|i| {
            message(
                &format!("55119999900{i:02}"),
                &format!("wamid.c{i}"),
                t(1_700_000_000 + i),
                "x",
            )
        })
        .collect();
    store.record(&records).await.unwrap();
    let id = records[0].conversation_id().unwrap();
    let other = records[1].conversation_id().unwrap();

    for garbage in ["garbage", "%%%", "eyJ4IjoxfQ", "AAAA"] {
        let bad = || page(Some(garbage.to_owned()), 3);
        assert!(matches!(
            store.conversations(None, bad()).await,
            Err(BackendError::BadCursor)
        ));
        assert!(matches!(
            store.timeline(id, bad()).await,
            Err(BackendError::BadCursor)
        ));
        assert!(matches!(
            store.quarantined(bad()).await,
            Err(BackendError::BadCursor)
        ));
    }

    let conversations_cursor = store.conversations(None, page(None, 1)).await.unwrap().next;
    assert!(conversations_cursor.is_some());
    let misuse = page(conversations_cursor.clone(), 1);
    assert!(matches!(
        store.timeline(id, misuse.clone()).await,
        Err(BackendError::BadCursor)
    ));
    assert!(matches!(
        store.quarantined(misuse.clone()).await,
        Err(BackendError::BadCursor)
    ));
    assert!(matches!(
        store
            .conversations(Some(Channel::Whatsapp), misuse.clone())
            .await,
        Err(BackendError::BadCursor)
    ));
    assert!(store.conversations(None, misuse).await.is_ok());

    store
        .record(&[message("5511999990000", "wamid.2", t(1_700_000_050), "x")])
        .await
        .unwrap();
    let timeline_cursor = store.timeline(id, page(None, 1)).await.unwrap().next;
    assert!(timeline_cursor.is_some());
    assert!(matches!(
        store
            .timeline(other, page(timeline_cursor.clone(), 1))
            .await,
        Err(BackendError::BadCursor)
    ));
    assert!(store.timeline(id, page(timeline_cursor, 1)).await.is_ok());
}

#[tokio::test]
async fn a_six_megabyte_delivery_round_trips_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let store = open(&dir, &clock);
    let body: Vec<u8> = (0..6 * 1024 * 1024)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let delivery = RawDelivery::new(Webhook::Facebook, Bytes::from(body), clock.now(), true);
    store.keep_delivery(&delivery).await.unwrap();
    // Same bytes again: no-op.
    store.keep_delivery(&delivery).await.unwrap();
    let read = store.delivery(&delivery.id).await.unwrap().unwrap();
    assert_eq!(read.body.len(), 6 * 1024 * 1024);
    assert_eq!(read, delivery);
    assert_eq!(DeliveryId::of(&read.body), delivery.id);
    assert_eq!(
        store.delivery(&DeliveryId::of(b"other")).await.unwrap(),
        None
    );
}

/// `n` bytes that do not compress, different for each `seed`.
fn noise(seed: u32, n: usize) -> Bytes {
    (0..n as u32)
        .map(|i| {
            (i.wrapping_add(seed.wrapping_mul(7919))
                .wrapping_mul(2_654_435_761)
                >> 24) as u8
        })
        .collect::<Vec<u8>>()
        .into()
}

fn wal_len(dir: &tempfile::TempDir) -> u64 {
    std::fs::metadata(dir.path().join(format!("{FILE_NAME}-wal")))
        .map(|m| m.len())
        .unwrap_or(0)
}

#[tokio::test]
async fn the_write_ahead_log_is_truncated_back_under_its_limit_after_large_writes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let store = open(&dir, &clock);
    let mut largest = 0;
    for seed in 0..6 {
        let delivery = RawDelivery::new(Webhook::Facebook, noise(seed, 3 << 20), clock.now(), true);
        store.keep_delivery(&delivery).await.unwrap();
        largest = largest.max(wal_len(&dir));
    }
    assert!(
        largest <= crate::engine::WAL_LIMIT_BYTES,
        "after 18 MiB of deliveries the log was {largest} bytes at rest, over its limit"
    );
}

/// A `Write` into a buffer the test reads.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_full_disk_is_logged_once_with_a_count_and_its_end_once() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer({
            let logs = logs.clone();
            move || logs.clone()
        })
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    tracing::subscriber::with_default(subscriber, || {
        // Outside Tokio every operation runs on this thread, under this subscriber.
        let store = SqliteStore::open(dir.path(), 30, clock.clone()).unwrap();
        let pages = |store: &SqliteStore| -> i64 {
            store
                .hold_connection()
                .query_row("PRAGMA page_count", [], |r| r.get(0))
                .unwrap()
        };
        // SQLite answers SQLITE_FULL past max_page_count, as it does on a full volume.
        let cap = pages(&store) + 8;
        store
            .hold_connection()
            .query_row(&format!("PRAGMA max_page_count = {cap}"), [], |_| Ok(()))
            .unwrap();
        let mut refused = 0;
        for seed in 0..40 {
            let delivery =
                RawDelivery::new(Webhook::Facebook, noise(seed, 64 << 10), clock.now(), true);
            match futures_lite_block_on(store.keep_delivery(&delivery)) {
                Ok(()) => assert_eq!(refused, 0, "a write succeeded on a full disk"),
                Err(e) => {
                    assert!(
                        switchboard_core::errors::is_reported(&e),
                        "a disk-full error not marked as logged: {e}"
                    );
                    refused += 1;
                }
            }
        }
        assert!(refused >= 35, "only {refused} writes refused");
        assert_eq!(store.refused_writes(), refused);
        // Space comes back: the next write succeeds and ends the condition.
        store
            .hold_connection()
            .query_row("PRAGMA max_page_count = 1000000", [], |_| Ok(()))
            .unwrap();
        let delivery = RawDelivery::new(Webhook::Facebook, noise(99, 64 << 10), clock.now(), true);
        futures_lite_block_on(store.keep_delivery(&delivery)).unwrap();
    });
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let errors: Vec<&str> = logs.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(
        errors.len(),
        1,
        "one error line for the whole condition:\n{logs}"
    );
    assert!(errors[0].contains("disk full"), "{}", errors[0]);
    let ended: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("the store writes again"))
        .collect();
    assert_eq!(ended.len(), 1, "{logs}");
    assert!(ended[0].contains("condition=\"disk full\""), "{}", ended[0]);
}

#[tokio::test]
async fn the_queue_deduplicates_and_keeps_each_conversation_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let store = open(&dir, &clock);
    let visibility = Duration::from_secs(30);
    store
        .enqueue(&[
            entry("cv_a", "a1"),
            entry("cv_a", "a2"),
            entry("cv_b", "b1"),
        ])
        .await
        .unwrap();
    store
        .enqueue(&[entry("cv_a", "a1"), entry("cv_a", "a3")])
        .await
        .unwrap();
    assert_eq!(store.queue_len().await.unwrap(), 4);

    // One per group, in enqueue order.
    let got = store.receive(10, visibility).await.unwrap();
    let keys: Vec<_> = got.iter().map(|r| r.entry.record_key.as_str()).collect();
    assert_eq!(keys, ["a1", "b1"]);
    assert!(got.iter().all(|r| r.receive_count == 1));
    // cv_a's head is in flight, cv_b's only entry too.
    assert!(store.receive(10, visibility).await.unwrap().is_empty());

    store.ack(&[got[0].receipt]).await.unwrap();
    let next = store.receive(10, visibility).await.unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].entry, entry("cv_a", "a2"));

    // b1's visibility passes without an ack: handed out again.
    clock.advance(TimeDelta::seconds(31));
    let again = store.receive(10, visibility).await.unwrap();
    let keys: Vec<_> = again
        .iter()
        .map(|r| (r.entry.record_key.as_str(), r.receive_count))
        .collect();
    assert_eq!(keys, [("a2", 2), ("b1", 2)]);
    store
        .ack(&again.iter().map(|r| r.receipt).collect::<Vec<_>>())
        .await
        .unwrap();
    store.ack(&[got[0].receipt]).await.unwrap();

    let last = store.receive(1, visibility).await.unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].entry, entry("cv_a", "a3"));
    assert!(store.receive(0, visibility).await.unwrap().is_empty());
    store.ack(&[last[0].receipt]).await.unwrap();
    assert_eq!(store.queue_len().await.unwrap(), 0);
}

#[tokio::test]
async fn a_new_consumer_takes_back_at_once_what_a_stopped_one_had_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let visibility = Duration::from_secs(30);
    {
        let store = open(&dir, &clock);
        let _claim = store.claim_consumer().await.unwrap();
        store
            .enqueue(&[entry("c1", "k1"), entry("c2", "k2"), entry("c3", "k3")])
            .await
            .unwrap();
        let taken = store.receive(2, visibility).await.unwrap();
        assert_eq!(taken.len(), 2);
        // While the claim is held, nobody else may consume: a second claim is refused.
        let other = open(&dir, &clock);
        match other.claim_consumer().await {
            Err(EmbeddedError::ConsumerRunning { path }) => assert_eq!(path, dir.path()),
            other => panic!("a second consumer was let in: {other:?}"),
        }
        // The process stops here without acknowledging (as after kill -9: the claim's lock
        // goes with the process).
    }
    clock.advance(TimeDelta::seconds(1));
    let store = open(&dir, &clock);
    let claim = store.claim_consumer().await.unwrap();
    assert_eq!(claim.released(), 2);
    let again = store.receive(10, visibility).await.unwrap();
    let mut keys: Vec<(String, u32)> = again
        .iter()
        .map(|r| (r.entry.record_key.as_str().to_owned(), r.receive_count))
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [("k1".into(), 2), ("k2".into(), 2), ("k3".into(), 1)],
        "the in-flight entries are visible at once, well before their 30 s, counted as received"
    );
}

#[tokio::test]
async fn redrive_puts_every_dead_letter_back_once_and_it_is_received_again() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let store = open(&dir, &clock);
    let visibility = Duration::from_secs(1);
    store
        .enqueue(&[entry("c1", "k1"), entry("c2", "k2")])
        .await
        .unwrap();
    // Never acknowledged: received MAX_RECEIVES times, then moved to the dead letters.
    for _ in 0..=crate::MAX_RECEIVES {
        let _ = store.receive(10, visibility).await.unwrap();
        clock.advance(TimeDelta::seconds(2));
    }
    assert_eq!(store.queue_len().await.unwrap(), 0);
    assert_eq!(store.dead_letters_len().await.unwrap(), 2);
    // One of them is enqueued again meanwhile (a provider's retry): redrive does not double it.
    store.enqueue(&[entry("c2", "k2")]).await.unwrap();

    assert_eq!(store.redrive().await.unwrap(), 1);
    assert_eq!(store.dead_letters_len().await.unwrap(), 0);
    assert_eq!(store.queue_len().await.unwrap(), 2);
    let again = store.receive(10, visibility).await.unwrap();
    let mut keys: Vec<_> = again
        .iter()
        .map(|r| (r.entry.record_key.as_str().to_owned(), r.receive_count))
        .collect();
    keys.sort();
    assert_eq!(keys, [("k1".into(), 1), ("k2".into(), 1)], "counted afresh");
    // Nothing left to move: a second redrive is a no-op.
    assert_eq!(store.redrive().await.unwrap(), 0);
    assert_eq!(store.queue_len().await.unwrap(), 2);
}

#[tokio::test]
async fn kept_deliveries_page_from_a_time_oldest_first_by_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let store = open(&dir, &clock);
    let mut kept = Vec::new();
    for i in 0..7u8 {
        let webhook = if i % 3 == 0 {
            Webhook::Telegram
        } else {
            Webhook::Whatsapp
        };
        let delivery = RawDelivery::new(
            webhook,
            Bytes::from(vec![b'{', i, b'}']),
            clock.now(),
            i == 4,
        );
        store.keep_delivery(&delivery).await.unwrap();
        kept.push(delivery);
        clock.advance(TimeDelta::seconds(10));
    }
    let since = kept[2].received_at;
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .kept_deliveries(since, Some(Webhook::Whatsapp), after.clone(), 2)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(crate::DeliveryPosition::after(last));
        seen.extend(page);
    }
    let wanted: Vec<_> = kept[2..]
        .iter()
        .filter(|d| d.webhook == Webhook::Whatsapp)
        .cloned()
        .collect();
    assert_eq!(
        seen, wanted,
        "every one once, in receive order, quarantined included"
    );
    let all = store.kept_deliveries(t(0), None, None, 100).await.unwrap();
    assert_eq!(all, kept);
}

#[tokio::test]
async fn expired_rows_are_purged_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let record = message("5511999990000", "wamid.1", t(1_700_000_100), "x");
    let delivery = RawDelivery::new(
        Webhook::Whatsapp,
        Bytes::from_static(b"{}"),
        clock.now(),
        false,
    );
    {
        let store = SqliteStore::open(dir.path(), 2, clock.clone()).unwrap();
        store.keep_delivery(&delivery).await.unwrap();
        store.record(std::slice::from_ref(&record)).await.unwrap();
    }
    clock.advance(TimeDelta::days(1));
    let store = SqliteStore::open(dir.path(), 2, clock.clone()).unwrap();
    assert!(store.delivery(&delivery.id).await.unwrap().is_some());

    clock.advance(TimeDelta::days(1));
    drop(store);
    let store = SqliteStore::open(dir.path(), 2, clock.clone()).unwrap();
    assert_eq!(store.delivery(&delivery.id).await.unwrap(), None);
    let id = record.conversation_id().unwrap();
    assert_eq!(store.conversation(id).await.unwrap(), None);
    assert!(
        store
            .timeline(id, page(None, 10))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        store.purge_expired().await.unwrap(),
        crate::Purged::default()
    );
}

#[tokio::test]
async fn a_customer_expires_with_the_retention_while_the_store_runs_and_writing_renews_it() {
    use switchboard_core::ports::CustomerDirectory;
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let store = SqliteStore::open(dir.path(), 2, clock.clone()).unwrap();
    let first = message("5511999990000", "wamid.1", t(1_700_000_100), "x");
    let customer = first.customer().unwrap().customer_id.clone();
    store.record(std::slice::from_ref(&first)).await.unwrap();
    // Another customer, written once and never again.
    let other = message("5511988887777", "wamid.9", t(1_700_000_100), "y");
    let gone = other.customer().unwrap().customer_id.clone();
    store.record(std::slice::from_ref(&other)).await.unwrap();

    // A day later the first one writes again: their retention starts over.
    clock.advance(TimeDelta::days(1));
    let again = message("5511999990000", "wamid.2", t(1_700_086_500), "z");
    store.record(std::slice::from_ref(&again)).await.unwrap();

    // Two days after the first writes: the silent customer is purged by the running store
    // (no reopen), the one who wrote again is not.
    clock.advance(TimeDelta::days(1));
    let purged = store.purge_expired().await.unwrap();
    assert_eq!(purged.customers, 1, "{purged:?}");
    assert_eq!(store.customer(&gone).await.unwrap(), None);
    assert!(store.customer(&customer).await.unwrap().is_some());

    // A link or a tier renews too; then, with nothing written, they go as well.
    clock.advance(TimeDelta::days(1));
    store.set_tier(&customer, Some("vip")).await.unwrap();
    clock.advance(TimeDelta::days(1));
    assert_eq!(store.purge_expired().await.unwrap().customers, 0);
    clock.advance(TimeDelta::days(1));
    let purged = store.purge_expired().await.unwrap();
    assert_eq!(purged.customers, 1);
    assert_eq!(store.customer(&customer).await.unwrap(), None);
}

#[test]
fn customers_of_an_older_file_get_one_retention_period_from_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    drop(SqliteStore::open(dir.path(), 2, clock.clone()).unwrap());
    // Back to version 8: no expiry column, one customer.
    {
        let conn = rusqlite::Connection::open(dir.path().join(crate::FILE_NAME)).unwrap();
        conn.execute_batch(
            "DROP INDEX customers_expiry; ALTER TABLE customers DROP COLUMN expires_at;
             ALTER TABLE deliveries DROP COLUMN erased_at;
             INSERT INTO customers (id, doc) VALUES ('cu_old', '{}'); PRAGMA user_version = 8;",
        )
        .unwrap();
    }
    let store = SqliteStore::open(dir.path(), 2, clock.clone()).unwrap();
    let expires: i64 = store
        .conn
        .lock()
        .unwrap()
        .query_row(
            "SELECT expires_at FROM customers WHERE id = 'cu_old'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(expires, clock.now().timestamp() + 2 * 86_400);
}

#[test]
fn a_newer_schema_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE_NAME);
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }
    let err = SqliteStore::open(dir.path(), 30, TestClock::new()).unwrap_err();
    match &err {
        EmbeddedError::UnsupportedSchema {
            path: p,
            found,
            supported,
        } => {
            assert_eq!(p, &path);
            assert_eq!((*found, *supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains(FILE_NAME));
    let conn = rusqlite::Connection::open(&path).unwrap();
    let tables: i64 = conn
        .query_row("SELECT COUNT(*) FROM sqlite_master", [], |row| row.get(0))
        .unwrap();
    assert_eq!(tables, 0);
}

#[test]
fn opening_creates_the_directory_and_a_bad_directory_names_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a").join("b");
    SqliteStore::open(&nested, 30, TestClock::new()).unwrap();
    assert!(nested.join(FILE_NAME).is_file());

    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let err = SqliteStore::open(&file, 30, TestClock::new()).unwrap_err();
    assert!(matches!(err, EmbeddedError::CreateDir { .. }), "{err:?}");
    assert!(err.to_string().contains("plain-file"));
}

#[test]
fn operations_work_outside_a_tokio_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path(), 30, TestClock::new()).unwrap();
    let len = futures_lite_block_on(store.queue_len());
    assert_eq!(len.unwrap(), 0);
}

/// Polls a future that never waits (the store runs in place outside Tokio) to completion.
fn futures_lite_block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::task::{Context, Poll, Waker};
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

#[tokio::test]
async fn whatsapp_deliveries_normalize_store_and_enqueue() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let store = open(&dir, &clock);
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": "100200300"},
            "contacts": [{"profile": {"name": "Ana"}, "wa_id": "5511999990000"}],
            "messages": [{"from": "5511999990000", "id": "wamid.A", "timestamp": "1700000000",
                          "type": "text", "text": {"body": "hi"}}]
        }}]}]
    });
    let records = switchboard_core::channels::meta::whatsapp::normalize(body, clock.now());
    assert!(!records.is_empty());
    let pending = store.record(&records).await.unwrap();
    assert_eq!(pending.len(), 1);
    store.enqueue(&pending).await.unwrap();
    store
        .mark_enqueued(&[pending[0].record_key.clone()])
        .await
        .unwrap();
    let conversation = store
        .conversation(&pending[0].conversation_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conversation.customer.display_name.as_deref(), Some("Ana"));
    let received = store.receive(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].entry, pending[0]);
}

fn whatsapp_text(id: &str) -> Bytes {
    Bytes::from(
        json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550001111", "phone_number_id": "100200300"},
                "contacts": [{"profile": {"name": "Ana"}, "wa_id": "5511999990000"}],
                "messages": [{"from": "5511999990000", "id": id, "timestamp": "1700000000",
                              "type": "text", "text": {"body": "hi"}}]
            }}]}]
        })
        .to_string(),
    )
}

/// The intake as `serve` builds it: the store is its outbox.
fn outbox_intake(store: &SqliteStore, clock: &Arc<TestClock>) -> switchboard_core::intake::Intake {
    let shared = Arc::new(store.clone());
    switchboard_core::intake::Intake::with_outbox(shared.clone(), shared, clock.clone())
}

/// The intake over the embedded store keeps a delivery's bytes, writes its records and
/// enqueues them in one write, so one commit answers the provider (the separate enqueue and
/// confirmation were two more, each waiting for its own turn under load).
#[tokio::test]
async fn a_delivery_is_kept_recorded_and_enqueued_in_one_commit() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let store = open(&dir, &clock);
    let intake = outbox_intake(&store, &clock);
    let body = whatsapp_text("wamid.ONE");
    let before = store.commits();
    let outcome = intake
        .accept(Webhook::Whatsapp, body.clone())
        .await
        .unwrap();
    assert_eq!(
        store.commits() - before,
        1,
        "one commit for the whole delivery"
    );
    assert_eq!((outcome.records, outcome.enqueued), (1, 1));
    assert!(
        store
            .delivery(&DeliveryId::of(&body))
            .await
            .unwrap()
            .is_some(),
        "the bytes are kept"
    );
    let received = store.receive(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(received.len(), 1);
    let conversation = store
        .conversation(&received[0].entry.conversation_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conversation.customer.display_name.as_deref(), Some("Ana"));
    // Confirmed in the same write: the provider's retry enqueues nothing again.
    let before = store.commits();
    let again = intake.accept(Webhook::Whatsapp, body).await.unwrap();
    assert_eq!((again.enqueued, again.duplicates), (0, 1));
    assert_eq!(store.commits() - before, 1);
    assert_eq!(store.queue_len().await.unwrap(), 1);
}

/// The one write is atomic: when its last part fails (here the queue refuses the entry),
/// nothing of the delivery is kept or recorded either, and the provider's retry writes all of
/// it.
#[tokio::test]
async fn a_delivery_that_cannot_be_enqueued_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let store = open(&dir, &clock);
    let intake = outbox_intake(&store, &clock);
    store
        .hold_connection()
        .execute_batch(
            "CREATE TEMP TRIGGER refuse BEFORE INSERT ON main.intake_queue
             BEGIN SELECT RAISE(ABORT, 'refused'); END;",
        )
        .unwrap();
    let body = whatsapp_text("wamid.REFUSED");
    assert!(
        intake
            .accept(Webhook::Whatsapp, body.clone())
            .await
            .is_err()
    );
    assert!(
        store
            .delivery(&DeliveryId::of(&body))
            .await
            .unwrap()
            .is_none()
    );
    let kept: i64 = store
        .hold_connection()
        .query_row("SELECT count(*) FROM records", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kept, 0, "no record without its queue entry");
    store
        .hold_connection()
        .execute_batch("DROP TRIGGER temp.refuse")
        .unwrap();
    let outcome = intake
        .accept(Webhook::Whatsapp, body.clone())
        .await
        .unwrap();
    assert_eq!(outcome.enqueued, 1);
    assert!(
        store
            .delivery(&DeliveryId::of(&body))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.queue_len().await.unwrap(), 1);
}

#[tokio::test]
async fn a_panic_inside_an_operation_is_an_error_and_the_store_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let store = open(&dir, &clock);
    let panicked = store
        .run("test", |conn| -> Result<(), BackendError> {
            let _tx = conn.transaction().unwrap();
            conn_panics()
        })
        .await;
    assert!(matches!(
        panicked,
        Err(BackendError::Unavailable {
            operation: "test",
            ..
        })
    ));
    // The store's thread caught it and rolled its transaction back: the next operation works.
    assert_eq!(store.queue_len().await.unwrap(), 0);
    store.enqueue(&[entry("cv_a", "a1")]).await.unwrap();
    assert_eq!(store.queue_len().await.unwrap(), 1);
}

fn conn_panics() -> Result<(), BackendError> {
    panic!("deliberate panic inside a store operation")
}

/// Group commit: writes that arrive while the connection is busy wait, and are committed
/// together in one transaction; every one of them is durable and answers its own result.
// The connection is held on purpose while the writes queue up behind it (the store's thread
// waits for it, so holding it here blocks nothing but that thread).
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_waiting_for_the_connection_are_committed_together() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let store = open(&dir, &clock);
    let before = store.commits();
    let held = store.hold_connection();
    let mut writes = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        let body = Bytes::from(format!("{{\"n\": {i}}}"));
        writes.push(tokio::spawn(async move {
            let delivery = RawDelivery::new(Webhook::Whatsapp, body, t(1_700_000_000), false);
            store.keep_delivery(&delivery).await
        }));
    }
    while store.pending_writes() < 20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(held);
    for write in writes {
        write.await.unwrap().unwrap();
    }
    assert_eq!(store.commits() - before, 1, "20 writes, one transaction");
    drop(store);
    // Durable: another store on the same file sees all twenty.
    let reopened = open(&dir, &clock);
    for i in 0..20 {
        let id = DeliveryId::of(format!("{{\"n\": {i}}}").as_bytes());
        assert!(
            reopened.delivery(&id).await.unwrap().is_some(),
            "delivery {i}"
        );
    }
}

/// In a group, a write that fails or panics is rolled back alone; the others are committed.
// The connection is held on purpose while the writes queue up behind it (the store's thread
// waits for it, so holding it here blocks nothing but that thread).
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_write_in_a_group_is_rolled_back_alone() {
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let store = open(&dir, &clock);
    let held = store.hold_connection();
    let good = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .enqueue(&[entry("cv_a", "a1"), entry("cv_a", "a2")])
                .await
        })
    };
    let failing = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .write("failing", |conn| -> Result<(), BackendError> {
                    conn.execute("DELETE FROM intake_queue", []).unwrap();
                    Err(BackendError::unavailable("failing", "deliberate"))
                })
                .await
        })
    };
    let panicking = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .write("panicking", |conn| -> Result<(), BackendError> {
                    conn.execute("DELETE FROM intake_queue", []).unwrap();
                    conn_panics()
                })
                .await
        })
    };
    while store.pending_writes() < 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(held);
    good.await.unwrap().unwrap();
    assert!(matches!(
        failing.await.unwrap(),
        Err(BackendError::Unavailable {
            operation: "failing",
            ..
        })
    ));
    assert!(matches!(
        panicking.await.unwrap(),
        Err(BackendError::Unavailable {
            operation: "panicking",
            ..
        })
    ));
    assert_eq!(
        store.queue_len().await.unwrap(),
        2,
        "the deletes were rolled back"
    );
    // The store goes on: the next write works.
    store.enqueue(&[entry("cv_b", "b1")]).await.unwrap();
    assert_eq!(store.queue_len().await.unwrap(), 3);
}

/// Publishes that arrive while the file is being written are written and flushed together,
/// each answered once its lines are on disk, every event once and each publish's in order.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_waiting_for_the_file_are_flushed_together() {
    use switchboard_core::ports::{DomainEvent, EventLog, EventPublisher};
    let dir = tempfile::tempdir().unwrap();
    let file = Arc::new(crate::EventFile::in_folder(dir.path()));
    let event = |i: i64| {
        DomainEvent::new(
            "message.received",
            1,
            &[&i.to_string()],
            t(i),
            json!({"i": i}),
        )
    };
    // The first publish starts the appending thread.
    file.publish(&[event(0)]).await.unwrap();
    assert_eq!(file.flushes(), 1);
    let held = file.hold_appends();
    let mut publishes = Vec::new();
    for i in 0..64 {
        let file = file.clone();
        publishes.push(tokio::spawn(async move {
            file.publish(&[event(1 + 2 * i), event(2 + 2 * i)]).await
        }));
    }
    // Let every publish reach the thread's inbox while the file is held.
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(held);
    for publish in publishes {
        publish.await.unwrap().unwrap();
    }
    assert!(
        file.flushes() <= 3,
        "64 publishes waiting took {} flushes",
        file.flushes() - 1
    );
    let all = file.events(None, page(None, 1000)).await.unwrap();
    let mut numbers: Vec<i64> = all
        .items
        .iter()
        .map(|e| e.detail["i"].as_i64().unwrap())
        .collect();
    for pair in numbers[1..].chunks(2) {
        assert_eq!(
            pair[1],
            pair[0] + 1,
            "one publish's events together, in order"
        );
    }
    numbers.sort_unstable();
    assert_eq!(numbers, (0..=128).collect::<Vec<_>>());
}

#[tokio::test]
async fn expired_events_leave_the_file_and_cursors_issued_before_stay_valid() {
    use switchboard_core::ports::{DomainEvent, EventLog, EventPublisher};
    let dir = tempfile::tempdir().unwrap();
    let file = crate::EventFile::in_folder(dir.path());
    let event = |i: i64| {
        DomainEvent::new(
            "conversation.prioritized",
            1,
            &[&i.to_string()],
            t(i * 100),
            json!({"i": i}),
        )
    };
    let numbers = |page: &switchboard_core::ports::Page<DomainEvent>| -> Vec<i64> {
        page.items
            .iter()
            .map(|e| e.detail["i"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(file.expire(t(1_000)).await.unwrap(), 0, "no file yet");
    file.publish(&(0..5).map(event).collect::<Vec<_>>())
        .await
        .unwrap();
    let first = file.events(None, page(None, 2)).await.unwrap();
    assert_eq!(numbers(&first), [0, 1]);
    let third = file
        .events(
            None,
            page(
                file.events(None, page(first.next.clone(), 2))
                    .await
                    .unwrap()
                    .next,
                2,
            ),
        )
        .await
        .unwrap();
    assert_eq!(numbers(&third), [4]);

    // Events 0, 1 and 2 are past the retention.
    assert_eq!(file.expire(t(300)).await.unwrap(), 3);
    let text = std::fs::read_to_string(file.path()).unwrap();
    assert!(
        !text.contains("\"i\":0") && !text.contains("\"i\":2"),
        "{text}"
    );
    assert_eq!(
        file.expire(t(300)).await.unwrap(),
        0,
        "nothing more to drop"
    );
    let all = file.events(None, page(None, 10)).await.unwrap();
    assert_eq!(numbers(&all), [3, 4]);
    // The cursor of the first page pointed at event 2, dropped: it resumes at the oldest kept.
    assert_eq!(
        numbers(&file.events(None, page(first.next, 10)).await.unwrap()),
        [3, 4]
    );
    // New events go on after the kept ones; a cursor issued before the trim still finds them.
    file.publish(&[event(5)]).await.unwrap();
    assert_eq!(
        numbers(&file.events(None, page(None, 10)).await.unwrap()),
        [3, 4, 5]
    );
    let last = file.events(None, page(None, 2)).await.unwrap();
    assert_eq!(
        numbers(&file.events(None, page(last.next, 2)).await.unwrap()),
        [5]
    );

    // Everything expires: the header alone is left, numbering goes on.
    assert_eq!(file.expire(t(10_000)).await.unwrap(), 3);
    assert!(
        file.events(None, page(None, 10))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    file.publish(&[event(200)]).await.unwrap();
    assert_eq!(
        numbers(&file.events(None, page(None, 10)).await.unwrap()),
        [200]
    );
    assert_eq!(
        numbers(&file.events(None, page(third.next, 10)).await.unwrap()),
        [200]
    );
}

#[tokio::test(start_paused = true)]
async fn a_running_serve_forgets_customers_and_events_past_the_retention_without_a_restart() {
    use switchboard_core::ports::{CustomerDirectory, DomainEvent, EventLog, EventPublisher};
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let store = Arc::new(SqliteStore::open(dir.path(), 1, clock.clone()).unwrap());
    let events = Arc::new(crate::EventFile::in_folder(dir.path()));
    let record = message("5511999990000", "wamid.1", t(1_700_000_100), "x");
    let customer = record.customer().unwrap().customer_id.clone();
    store.record(std::slice::from_ref(&record)).await.unwrap();
    events
        .publish(&[DomainEvent::new(
            "conversation.prioritized",
            1,
            &["a"],
            clock.now(),
            json!({}),
        )])
        .await
        .unwrap();
    let every = Duration::from_secs(3600);
    let task = tokio::spawn(crate::consumer::expire_periodically(
        store.clone(),
        events.clone(),
        clock.clone(),
        every,
    ));
    // Within the retention: kept through a turn.
    tokio::time::sleep(every + Duration::from_secs(1)).await;
    assert!(store.customer(&customer).await.unwrap().is_some());
    assert_eq!(
        events
            .events(None, page(None, 10))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    // A day and more later, the next turn forgets them.
    clock.advance(TimeDelta::days(1) + TimeDelta::seconds(1));
    tokio::time::sleep(every).await;
    // The turn runs on the store's threads: wait for both of its steps.
    for _ in 0..1000 {
        if store.customer(&customer).await.unwrap().is_none()
            && events
                .events(None, page(None, 10))
                .await
                .unwrap()
                .items
                .is_empty()
        {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(store.customer(&customer).await.unwrap(), None);
    assert!(
        events
            .events(None, page(None, 10))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    task.abort();
}

/// A sighting of an identity with an identifier it was already seen with is read, not written,
/// for a day: one write a day per identity and identifier instead of one per message. A new
/// identity, an earlier sighting, or one a day later is written.
#[tokio::test]
async fn a_known_sighting_is_written_once_a_day() {
    use switchboard_core::identifier::Identifier;
    use switchboard_core::model::Sighting;
    use switchboard_core::ports::IdentityIndex;
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let store = open(&dir, &clock);
    let phone = Identifier::phone("+55 11 99999-0000").unwrap();
    let seen = |who: &str, at: DateTime<Utc>| Sighting {
        identity: CustomerId::from_stored(who),
        channel: Channel::Whatsapp,
        at,
    };
    let first = store
        .observe(&phone, &seen("cu_a", clock.now()), 5)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    let commits = store.commits();
    clock.advance(TimeDelta::hours(20));
    let again = store
        .observe(&phone, &seen("cu_a", clock.now()), 5)
        .await
        .unwrap();
    assert_eq!(again, first, "the same carriers");
    assert_eq!(store.commits(), commits, "nothing written within the day");
    // Another identity with the same number: written, and both carry it.
    let both = store
        .observe(&phone, &seen("cu_b", clock.now()), 5)
        .await
        .unwrap();
    assert_eq!(both.len(), 2);
    assert_eq!(store.commits(), commits + 1);
    // An earlier sighting than the one kept moves it back: written.
    let earlier = clock.now() - TimeDelta::days(3);
    let moved = store
        .observe(&phone, &seen("cu_a", earlier), 5)
        .await
        .unwrap();
    assert_eq!(moved[0].at, earlier);
    assert_eq!(store.commits(), commits + 2);
    // A day on, the expiry is renewed: the row outlives the retention counted from today.
    clock.advance(TimeDelta::days(2));
    store
        .observe(&phone, &seen("cu_a", clock.now()), 5)
        .await
        .unwrap();
    assert_eq!(store.commits(), commits + 3);
    clock.advance(TimeDelta::days(29));
    store.purge_expired().await.unwrap();
    let kept = store
        .observe(&phone, &seen("cu_c", clock.now()), 5)
        .await
        .unwrap();
    let ids: Vec<&str> = kept.iter().map(|s| s.identity.as_str()).collect();
    assert!(ids.contains(&"cu_a"), "renewed two days on: {ids:?}");
    assert!(!ids.contains(&"cu_b"), "not seen for 31 days: {ids:?}");
}

/// A scored message's reminders, activity and conversation are one write of the group
/// commit ([`switchboard_core::ports::Settle`]), where they were three writes in turn (the
/// reminders, the activity, the conversation), each waiting for a commit of its own.
#[tokio::test]
async fn prioritizing_a_message_settles_it_in_one_commit() {
    use switchboard_core::ports::CustomerHistory;
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let ports = crate::assembly::EmbeddedPorts::open(dir.path(), 30, clock.clone()).unwrap();
    let store = ports.store();
    let prioritizer = ports.prioritizer(
        Arc::new(switchboard_core::priority::Scorer::new(
            switchboard_core::priority::PriorityConfig::default_config(),
        )),
        Arc::new(switchboard_core::sla::SlaPolicy::default_policy()),
    );
    ports
        .intake()
        .accept(Webhook::Whatsapp, whatsapp_text("wamid.SETTLE"))
        .await
        .unwrap();
    let entry = store
        .receive(1, Duration::from_secs(30))
        .await
        .unwrap()
        .remove(0)
        .entry;
    // The identity's first sighting is written before the history is read; what follows
    // the scoring is the settlement alone.
    let before = store.commits();
    prioritizer.handle(&entry).await.unwrap();
    let during = store.commits() - before;
    let conversation = store
        .conversation(&entry.conversation_id)
        .await
        .unwrap()
        .unwrap();
    assert!(conversation.priority.is_some(), "scored");
    let pending = store.pending_reminders().await.unwrap();
    assert!(
        pending.len() >= 2,
        "the SLA's warning and breach: {pending:?}"
    );
    let activity = store
        .activity(std::slice::from_ref(&conversation.customer_id))
        .await
        .unwrap();
    assert_eq!(activity.len(), 1, "the activity noted");
    assert_eq!(during, 2, "the identity's sighting, then the settlement");
}

/// Acknowledgements first: a background write waits while a turn holds eight acknowledgement
/// writes (`BUSY_TURN`), and joins a quieter turn; beside fewer, it joins the same one.
#[allow(clippy::await_holding_lock)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_writes_wait_while_acknowledgements_keep_the_store_busy() {
    use crate::engine::Lane;
    let dir = tempfile::tempdir().unwrap();
    let clock = TestClock::new();
    let store = open(&dir, &clock);
    // Turns of `acks` acknowledgement writes and one background write, queued together.
    let turn = |acks: usize, wait_first: Duration| {
        let store = store.clone();
        async move {
            let before = store.commits();
            let held = store.hold_connection();
            let mut writes = Vec::new();
            let s = store.clone();
            writes.push(tokio::spawn(async move {
                s.write_in(Lane::Background, "test", |_| Ok(())).await
            }));
            while store.pending_writes() < 1 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            tokio::time::sleep(wait_first).await;
            for _ in 0..acks {
                let s = store.clone();
                writes.push(tokio::spawn(async move {
                    s.write_in(Lane::Acknowledgement, "test", |_| Ok(())).await
                }));
            }
            while store.pending_writes() < acks + 1 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            drop(held);
            for write in writes {
                write.await.unwrap().unwrap();
            }
            store.commits() - before
        }
    };
    assert_eq!(turn(7, Duration::ZERO).await, 1, "a quiet turn takes it");
    assert_eq!(
        turn(8, Duration::ZERO).await,
        2,
        "a busy turn leaves it to the next"
    );
    let waited = crate::engine::BACKGROUND_MAX_WAIT + Duration::from_millis(50);
    assert_eq!(
        turn(8, waited).await,
        1,
        "once it has waited its longest, it joins"
    );
}
