//! AWS calls per delivery, counted by an interceptor on the real SDK clients (which also
//! counts the sequential rounds: calls sent while another is in flight share a round).
//!
//! As deployed, the intake writes through the outbox ([`switchboard_aws::DynamoOutbox`]): a
//! one-message delivery costs three calls in two rounds — the raw bytes' `BatchWriteItem`
//! beside one `BatchGetItem` (the record's key, its customer, its conversation), then one
//! `TransactWriteItems` (the record, the conversation, the outbox item whose stream feeds the
//! queue). No SQS call: the forwarder, another function, sends. A delivery of n new messages
//! costs O(n/25 + 1) calls, whether from one customer or from n, and a repeat one read per 100
//! keys and the raw bytes.
//!
//! Up to 100 messages the calls go to moto (everything really stored, queued once through the
//! stream, repeats free). For 1000, to a scripted endpoint that answers every call with
//! success: moto copies the whole table for every item of a transaction, which makes a
//! 1000-message delivery take minutes there, and the number of calls does not depend on who
//! answers them. The intake that enqueues itself (`switchboard serve --backend aws`, which has
//! no stream to read) is held to its own budget there too.

use serde_json::json;
use std::sync::Arc;

use switchboard_aws::DynamoOutbox;
use switchboard_core::clock::SystemClock;
use switchboard_core::intake::Intake;
use switchboard_core::model::Webhook;
use switchboard_http::{WebhookState, webhook_router};
use switchboard_tests::{aws_counted, call, scripted_counted, signed_to, verifiers};

/// One delivery of `n` new WhatsApp text messages from `senders` distinct customers.
fn delivery(tag: &str, n: usize, senders: usize) -> Vec<u8> {
    let messages: Vec<_> = (0..n)
        .map(|i| {
            json!({"from": format!("55119{:07}", i % senders), "id": format!("wamid.{tag}.{i}"),
                   "timestamp": (1_700_000_000 + i).to_string(), "type": "text",
                   "text": {"body": format!("message {i}")}})
        })
        .collect();
    json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "messages",
        "value": {"metadata": {"display_phone_number": "15550001111", "phone_number_id": "PN"},
                  "messages": messages}}]}]})
    .to_string()
    .into_bytes()
}

/// The budget the outbox holds to: one `BatchGetItem` per 100 keys (the records, their
/// customers and conversations: 2 per sender), one `BatchWriteItem` for the raw delivery, and
/// one transaction when the records, customers, conversations and outbox items fit one (up
/// to 100 actions with the metrics' counters); otherwise a transaction per 100 of the first
/// three, then one per 50 records confirming them with their outbox items.
fn budget(n: usize, senders: usize) -> usize {
    let touched = 2 * senders;
    let reads = (n + touched).div_ceil(100);
    let writes = if n + touched + senders <= 90 {
        1
    } else {
        (n + touched).div_ceil(90) + n.div_ceil(50)
    };
    reads + 1 + writes
}

/// The budget of the intake that enqueues itself: per 100 keys one `BatchGetItem`, per 100
/// records and states a transaction, per 10 entries a `SendMessageBatch`, per 100 records a
/// confirming transaction, and the raw delivery.
fn direct_budget(n: usize, senders: usize) -> usize {
    let touched = 2 * senders;
    1 + (n + touched).div_ceil(100) + (n + touched).div_ceil(90) + n.div_ceil(10) + n.div_ceil(100)
}

/// The bound the issue asks for, O(n/25 + n/10 + 1), with a constant of 2.
fn bound(n: usize) -> usize {
    2 * (n.div_ceil(25) + n.div_ceil(10) + 1)
}

fn check(
    n: usize,
    senders: usize,
    calls: usize,
    detail: &std::collections::BTreeMap<String, usize>,
) {
    println!("n={n:>4} senders={senders:>4}: {calls:>3} calls {detail:?}");
    assert!(
        calls <= budget(n, senders),
        "n={n} senders={senders}: {calls} > {} {detail:?}",
        budget(n, senders)
    );
    assert!(calls <= bound(n), "n={n}: {calls} > {}", bound(n));
    assert_eq!(
        detail.get("SendMessageBatch"),
        None,
        "no SQS call: {detail:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_message_delivery_costs_three_calls_in_two_rounds() {
    let (backend, counter) = aws_counted().await;
    let app = backend.app(None);
    let text = |id: &str, ts: u64| {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "messages",
            "value": {"metadata": {"display_phone_number": "15550001111", "phone_number_id": "PN"},
                      "messages": [{"from": "5511900000777", "id": id, "timestamp": ts.to_string(),
                                    "type": "text", "text": {"body": "hola"}}]}}]}]})
        .to_string()
        .into_bytes()
    };
    let expected = std::collections::BTreeMap::from([
        ("BatchGetItem".to_owned(), 1),
        ("BatchWriteItem".to_owned(), 1),
        ("TransactWriteItems".to_owned(), 1),
    ]);
    // A new customer, then the same customer again (known: customer and conversation stored).
    for (id, ts) in [
        ("wamid.first", 1_700_000_000),
        ("wamid.second", 1_700_000_060),
    ] {
        counter.reset();
        let (status, answer) = call(&app, signed_to(Webhook::Whatsapp, text(id, ts))).await;
        assert_eq!(status, 200, "{answer:?}");
        assert_eq!(counter.by_operation(), expected, "{id}");
        // The read beside the raw bytes, then the write (which need not wait for the raw
        // bytes: both must be durable before the answer, not before each other).
        assert_eq!(counter.rounds(), 2, "{id}: {:?}", counter.by_operation());
    }
    // Both reached the queue, in order, through the stream.
    let queued = backend.probe.drain().await;
    assert_eq!(queued.len(), 2, "{queued:?}");
    assert_eq!(queued[0].conversation_id, queued[1].conversation_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_of_n_new_messages_costs_o_of_n_over_25_calls_on_moto() {
    // From one customer (one conversation), and from n customers (n conversations): the worst.
    for (n, senders) in [(1, 1), (10, 1), (10, 10), (100, 1), (100, 100)] {
        let (backend, counter) = aws_counted().await;
        let app = backend.app(None);
        let body = delivery(&format!("{n}-{senders}"), n, senders);
        let (status, answer) = call(&app, signed_to(Webhook::Whatsapp, body.clone())).await;
        assert_eq!(status, 200, "{answer:?}");
        check(n, senders, counter.total(), &counter.by_operation());

        // The same delivery again: the raw bytes and one read per 100 keys, nothing else.
        counter.reset();
        assert_eq!(call(&app, signed_to(Webhook::Whatsapp, body)).await.0, 200);
        let again = counter.by_operation();
        assert_eq!(
            counter.total(),
            1 + (n + 2 * senders).div_ceil(100),
            "n={n} repeated: {again:?}"
        );
        assert_eq!(
            backend.probe.count().await,
            n,
            "every message enqueued once"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_of_1000_new_messages_stays_within_the_same_bound() {
    for senders in [1, 1000] {
        let (store, queue, counter) = scripted_counted();
        let outbox = Arc::new(DynamoOutbox::new(store.clone(), "scripted-outbox"));
        let through_outbox = Intake::with_outbox(store.clone(), outbox, Arc::new(SystemClock));
        let direct = Intake::new(store, queue, Arc::new(SystemClock));
        for (intake, outbox) in [(through_outbox, true), (direct, false)] {
            counter.reset();
            let app = webhook_router(WebhookState::new(
                intake,
                verifiers(),
                Arc::new(SystemClock),
            ));
            let body = delivery(&format!("k{senders}{outbox}"), 1000, senders);
            let (status, answer) = call(&app, signed_to(Webhook::Whatsapp, body)).await;
            assert_eq!(status, 200, "{answer:?}");
            let (calls, detail) = (counter.total(), counter.by_operation());
            if outbox {
                check(1000, senders, calls, &detail);
            } else {
                println!("direct n=1000 senders={senders:>4}: {calls:>3} calls {detail:?}");
                assert!(calls <= direct_budget(1000, senders), "{calls} {detail:?}");
                assert!(calls <= bound(1000), "{calls} {detail:?}");
                assert_eq!(detail.get("SendMessageBatch"), Some(&100));
            }
        }
    }
}

/// The prioritizer's DynamoDB calls for one customer message (the SQS receive and delete, one
/// each per batch of up to 10, and one `PutEvents` per message that sets a level come on top):
/// the record, the conversation, the customer, the activity of the customer's identities (its
/// history's counters, see `switchboard_core::history`), and the conversation read and written
/// back under its version, in one transaction with the `ADD` of the message's counts (the
/// metrics cost no call of their own). The first message of a conversation (and one a day
/// after) notes it in the identity's activity with one update. The customer's phone number
/// (identity resolution) costs one query, and one put the first time it is seen. A customer
/// with other conversations adds one `BatchGetItem`. A repeated entry costs two reads and no
/// write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prioritizing_a_message_costs_a_fixed_handful_of_calls() {
    let (backend, counter) = aws_counted().await;
    let app = backend.app(None);
    let prioritizer = backend.prioritizer();
    let text = |from: &str, id: &str, ts: i64, pn: &str| {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "messages",
            "value": {"metadata": {"display_phone_number": "15550001111", "phone_number_id": pn},
                      "messages": [{"from": from, "id": id, "timestamp": ts.to_string(), "type": "text",
                                    "text": {"body": "me cobraron dos veces"}}]}}]}]})
        .to_string()
        .into_bytes()
    };
    let post = |body: Vec<u8>| {
        let app = app.clone();
        async move { assert_eq!(call(&app, signed_to(Webhook::Whatsapp, body)).await.0, 200) }
    };
    let expected = |others: usize, new_number: bool| {
        let mut calls = std::collections::BTreeMap::from([
            ("BatchGetItem".to_owned(), 2 + others),
            ("GetItem".to_owned(), 3),
            ("Query".to_owned(), 1),
            ("TransactWriteItems".to_owned(), 1),
            ("UpdateItem".to_owned(), 1),
        ]);
        if new_number {
            calls.insert("PutItem".to_owned(), 1);
        }
        calls
    };

    post(text("5511900000001", "wamid.calls.1", 1_795_000_000, "PN")).await;
    counter.reset();
    assert_eq!(backend.prioritize_all(&prioritizer).await, 1);
    assert_eq!(counter.by_operation(), expected(0, true));

    // The same customer on another business number: one more read, for the other conversation.
    post(text("5511900000001", "wamid.calls.2", 1_795_000_100, "PN2")).await;
    counter.reset();
    assert_eq!(backend.prioritize_all(&prioritizer).await, 1);
    assert_eq!(counter.by_operation(), expected(1, false));

    // Delivered again: the record and the conversation are read, nothing is written.
    let conversation = switchboard_tests::get_all(&app, "/api/conversations", 10)
        .await
        .into_iter()
        .find(|c| c["account_id"] == "PN2")
        .expect("the PN2 conversation");
    let id = conversation["id"].as_str().unwrap();
    let message =
        &switchboard_tests::get_all(&app, &format!("/api/conversations/{id}/messages"), 10).await
            [0];
    let entry = switchboard_core::ports::QueueEntry {
        record_key: switchboard_core::ids::RecordKey::from_stored(message["key"].as_str().unwrap()),
        conversation_id: switchboard_core::ids::ConversationId::from_stored(id),
        channel: switchboard_core::model::Channel::Whatsapp,
        record_type: "message".into(),
        kind: "text".into(),
        account_id: None,
    };
    counter.reset();
    assert_eq!(
        prioritizer.handle(&entry).await.unwrap(),
        switchboard_core::prioritize::Outcome::AlreadySeen
    );
    assert_eq!(
        counter.by_operation(),
        std::collections::BTreeMap::from([
            ("BatchGetItem".to_owned(), 1),
            ("GetItem".to_owned(), 1)
        ])
    );
}

/// Issue 19, item 6: what prioritizing a message reads does not grow with the customer's
/// history. Two customers, one with 10 earlier messages and one with 300 (all prioritized, so
/// their counters hold them), each write once more to another business number: the same
/// calls, and within 2× the bytes read back (a history read from its records reads 30 times
/// more for the second). The count of contacts is right for both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prioritizing_reads_the_same_after_ten_or_three_hundred_earlier_messages() {
    use switchboard_tests::payloads::{whatsapp_text, whatsapp_texts};
    let (backend, counter) = aws_counted().await;
    let app = backend.app(None);
    let prioritizer = backend.prioritizer();
    let t = 1_795_000_000;
    let post = |body: Vec<u8>| {
        let app = app.clone();
        async move { assert_eq!(call(&app, signed_to(Webhook::Whatsapp, body)).await.0, 200) }
    };
    let mut costs = Vec::new();
    for (from, earlier) in [("5511700000010", 10), ("5511700000300", 300)] {
        let times: Vec<i64> = (0..earlier).map(|i| t - 20 * 3600 + 60 * i).collect();
        for (i, chunk) in times.chunks(100).enumerate() {
            post(whatsapp_texts(
                "PN",
                from,
                &format!("wamid.h{from}.{i}"),
                chunk,
                "hola",
            ))
            .await;
        }
        assert_eq!(backend.prioritize_all(&prioritizer).await, earlier as usize);
        // On another business number: a new conversation, scored with the whole history.
        post(whatsapp_text(
            "PN2",
            from,
            &format!("wamid.now{from}"),
            t,
            "hola",
        ))
        .await;
        counter.reset();
        assert_eq!(backend.prioritize_all(&prioritizer).await, 1);
        costs.push((counter.by_operation(), counter.received()));

        let conversation = switchboard_tests::get_all(&app, "/api/conversations", 10)
            .await
            .into_iter()
            .find(|c| c["customer_provider_id"] == from && c["account_id"] == "PN2")
            .expect("the conversation");
        let contacts = conversation["priority"]["reasons"]
            .as_array()
            .expect("reasons")
            .iter()
            .find(|r| r["signal"] == "contacts_24h")
            .map(|r| r["detail"].clone());
        assert_eq!(contacts, Some(serde_json::json!(earlier.to_string())));
    }
    let (few, many) = (&costs[0], &costs[1]);
    assert_eq!(few.0, many.0, "the calls");
    // What grows is bounded: the other conversation's memory of the messages it scored (at
    // most `SEEN_KEPT` keys) and its counters (at most 169 hours).
    assert!(
        many.1 <= 2 * few.1,
        "read {} bytes after 300 messages, {} after 10",
        many.1,
        few.1
    );
}
