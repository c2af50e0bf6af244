use super::*;
use chrono::TimeZone;
use proptest::prelude::*;
use serde_json::json;

fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(1_790_000_000, 0).unwrap()
}

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../tests/fixtures/x/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).unwrap()
}

fn one(body: &Value) -> Record {
    let mut records = normalize(body, now());
    assert_eq!(records.len(), 1, "{records:?}");
    records.remove(0)
}

fn the_message(body: &Value) -> Message {
    match one(body) {
        Record::Message(m) => m,
        other => panic!("not a message: {other:?}"),
    }
}

fn the_event(body: &Value) -> Event {
    match one(body) {
        Record::Event(e) => e,
        other => panic!("not an event: {other:?}"),
    }
}

fn ms(millis: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(millis).unwrap()
}

#[test]
fn a_customers_dm_is_inbound_in_their_conversation_with_the_account() {
    let m = the_message(&fixture("direct_message_events_received__tweetinvi"));
    assert_eq!(m.channel, Channel::X);
    assert_eq!(m.account_id.as_str(), "42");
    assert_eq!(m.provider_message_id.as_str(), "1247299084244979717");
    assert_eq!(m.direction, Direction::Inbound);
    assert_eq!(m.kind, MessageKind::Text);
    assert_eq!(m.text.as_deref(), Some("Hello World!"));
    assert_eq!(m.customer.provider_user_id.as_str(), "1693649419");
    assert_eq!(m.customer.display_name.as_deref(), Some("tweetinvitest"));
    assert_eq!(m.sent_at, ms(1_586_214_250_037));
    assert!(!m.sent_at_estimated);
    assert!(!m.public);
    assert_eq!(
        m.conversation_id,
        ConversationId::derive(Channel::X, &"42".into(), &"1693649419".into())
    );
}

#[test]
fn the_brands_own_dm_is_outbound_and_answers_the_same_conversation() {
    let received = the_message(&fixture("direct_message_events_received__tweetinvi"));
    let sent = the_message(&fixture("direct_message_events_sent_with_apps__tweetinvi"));
    assert_eq!(sent.direction, Direction::Outbound);
    assert_eq!(sent.provider_message_id.as_str(), "1247295861006241798");
    assert_eq!(sent.text.as_deref(), Some("hello there"));
    assert_eq!(sent.customer.provider_user_id.as_str(), "1693649419");
    assert_eq!(sent.customer.display_name.as_deref(), Some("tweetinvitest"));
    assert_eq!(sent.conversation_id, received.conversation_id);
}

#[test]
fn a_mention_is_public_in_the_authors_tweet_conversation_apart_from_their_dms() {
    let m = the_message(&fixture("tweet_create_events__tweetinvi"));
    assert_eq!(m.account_id.as_str(), "100");
    assert_eq!(m.provider_message_id.as_str(), "850006245121695744");
    assert_eq!(m.direction, Direction::Inbound);
    assert_eq!(m.kind, MessageKind::Mention);
    assert!(m.public);
    // The author's id is a JSON number there: kept as its digits.
    assert_eq!(m.customer.provider_user_id.as_str(), "42");
    assert_eq!(m.customer.display_name.as_deref(), Some("Twitter Dev"));
    assert_eq!(
        m.sent_at,
        Utc.with_ymd_and_hms(2017, 4, 6, 15, 24, 15).unwrap()
    );
    assert_eq!(
        m.provider_timestamp.as_deref(),
        Some("Thu Apr 06 15:24:15 +0000 2017")
    );
    assert!(m.text.as_deref().unwrap().starts_with("1/ Today"));
    assert_ne!(
        m.conversation_id,
        ConversationId::derive(Channel::X, &"100".into(), &"42".into()),
        "public tweets and DMs of one person are two conversations"
    );
}

#[test]
fn a_reply_to_the_brand_is_a_comment_and_the_brands_reply_answers_its_author() {
    let mut body = fixture("tweet_create_events__tweetinvi");
    let tweet = &mut body["tweet_create_events"][0];
    tweet["in_reply_to_user_id_str"] = json!("100");
    tweet["in_reply_to_status_id_str"] = json!("849000000000000000");
    tweet["extended_tweet"] = json!({"full_text": "the whole of a long tweet"});
    let question = the_message(&body);
    assert_eq!(question.kind, MessageKind::Comment);
    assert_eq!(question.text.as_deref(), Some("the whole of a long tweet"));
    assert_eq!(
        question.reply_to.as_ref().map(ProviderId::as_str),
        Some("849000000000000000")
    );

    let answer = the_message(&json!({
        "for_user_id": "100",
        "tweet_create_events": [{
            "id_str": "850006245121695999",
            "created_at": "Thu Apr 06 15:40:00 +0000 2017",
            "timestamp_ms": "1491493200000",
            "text": "@TwitterDev sorry about that, we are on it",
            "in_reply_to_status_id_str": "850006245121695744",
            "in_reply_to_user_id_str": "42",
            "user": {"id_str": "100", "name": "Acme", "screen_name": "acme"}
        }]
    }));
    assert_eq!(answer.direction, Direction::Outbound);
    assert_eq!(answer.conversation_id, question.conversation_id);
    assert_eq!(answer.customer.provider_user_id.as_str(), "42");
    assert_eq!(answer.sent_at, ms(1_491_493_200_000), "timestamp_ms first");
    assert!(answer.public);
}

#[test]
fn the_brands_tweet_that_answers_no_one_is_a_notification() {
    let Record::Notification(n) = one(&json!({
        "for_user_id": "100",
        "tweet_create_events": [{"id_str": "1", "text": "Our new store opens today",
                                 "user": {"id_str": "100"}}]
    })) else {
        panic!("a notification")
    };
    assert_eq!(n.topic, "tweet_create_events");
    assert_eq!(n.account_id.as_str(), "100");
}

#[test]
fn a_deleted_tweet_is_a_delete_event_of_that_tweet() {
    let e = the_event(&fixture("tweet_delete_events__tweetinvi"));
    assert_eq!(e.kind, EventKind::Delete);
    assert_eq!(e.refers_to.as_str(), "601430178305220608");
    assert_eq!(e.event_id.as_str(), "601430178305220608:delete");
    assert_eq!(e.occurred_at, ms(1_432_228_155_593));
    // The brand deleted its own tweet: the customer is resolved from the tweet at intake.
    assert_eq!(e.direction, Direction::Outbound);
    assert_eq!(e.customer.provider_user_id, e.account_id);
}

#[test]
fn a_like_is_a_reaction_on_the_tweet_liked() {
    let e = the_event(&fixture("favorite_events__tweetinvi"));
    assert_eq!(
        e.kind,
        EventKind::Reaction {
            emoji: Some("❤".into())
        }
    );
    assert_eq!(e.refers_to.as_str(), "850006245121695744");
    assert_eq!(e.direction, Direction::Inbound);
    assert_eq!(e.customer.provider_user_id.as_str(), "4242");
    assert_eq!(e.customer.display_name.as_deref(), Some("Uesr Test"));
    assert_eq!(e.event_id.as_str(), "850006245121695744:favorite:4242");
}

#[test]
fn a_read_dm_is_a_read_status_of_the_last_message_read() {
    let e = the_event(&fixture("direct_message_mark_read_events__tweetinvi"));
    assert_eq!(
        e.kind,
        EventKind::Status {
            status: DeliveryStatus::Read,
            errors: Vec::new()
        }
    );
    assert_eq!(e.refers_to.as_str(), "1247310121283321862");
    assert_eq!(e.customer.provider_user_id.as_str(), "1693649419");
    assert_eq!(e.occurred_at, ms(1_586_216_882_004));
    assert_eq!(
        e.conversation_id,
        ConversationId::derive(
            Channel::X,
            &"1245855954975051776".into(),
            &"1693649419".into()
        )
    );
}

#[test]
fn typing_follows_blocks_and_mutes_are_kept_as_notifications_of_their_list() {
    for (name, topic, at) in [
        (
            "direct_message_indicate_typing_events__tweetinvi",
            "direct_message_indicate_typing_events",
            1_518_127_183_443,
        ),
        (
            "follow_events__tweetinvi",
            "follow_events",
            1_586_216_143_967,
        ),
        ("block_events__tweetinvi", "block_events", 1_586_215_587_741),
    ] {
        let body = fixture(name);
        let Record::Notification(n) = one(&body) else {
            panic!("{name}")
        };
        assert_eq!(n.topic, topic, "{name}");
        assert_eq!(
            n.account_id,
            ProviderId::from_json(&body["for_user_id"]).unwrap()
        );
        assert_eq!(n.raw, body[topic][0], "{name}: kept as it came");
        assert_eq!(n.occurred_at, ms(at), "{name}");
    }
    let mute = json!({"for_user_id": "1", "mute_events": [{"type": "mute"}]});
    let Record::Notification(n) = one(&mute) else {
        panic!("mute")
    };
    assert_eq!(n.topic, "mute_events");
    assert_eq!(n.occurred_at, now());
}

#[test]
fn a_delivery_without_events_or_account_is_kept() {
    let Record::Notification(n) = one(&fixture("sigvector_non_event_json__autohook")) else {
        panic!("kept")
    };
    assert_eq!(n.account_id.as_str(), "unknown");
    let Record::Notification(empty) = one(&json!({"for_user_id": "7"})) else {
        panic!("kept")
    };
    assert_eq!(empty.topic, "empty");
    assert_eq!(empty.account_id.as_str(), "7");
}

#[test]
fn several_lists_in_one_delivery_give_a_record_for_each_item() {
    let mut body = fixture("direct_message_events_received__tweetinvi");
    let dm = body["direct_message_events"][0].clone();
    let mut second = dm.clone();
    second["id"] = json!("1247299084244979999");
    body["direct_message_events"] = json!([dm, second]);
    body["follow_events"] = json!([{"type": "follow", "created_timestamp": "1586216143967"}]);
    let records = normalize(&body, now());
    assert_eq!(records.len(), 3, "{records:?}");
    assert_eq!(
        records
            .iter()
            .filter(|r| matches!(r, Record::Message(_)))
            .count(),
        2
    );
}

#[test]
fn every_fixture_gives_records_and_the_same_records_again() {
    let dir = format!("{}/../../tests/fixtures/x", env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".json") || name.ends_with(".meta.json") {
            continue;
        }
        let body: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let records = normalize(&body, now());
        assert!(!records.is_empty(), "{name}");
        assert_eq!(records, normalize(&body, now()), "{name}: deterministic");
        seen += 1;
    }
    assert!(seen >= 10, "{seen}");
}

#[test]
fn the_published_signature_vector_passes() {
    let dir = format!("{}/../../tests/fixtures/x", env!("CARGO_MANIFEST_DIR"));
    let meta: Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{dir}/sigvector_non_event_json__autohook.meta.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let raw = std::fs::read(format!("{dir}/sigvector_non_event_json__autohook.raw")).unwrap();
    let header = meta["headers"][SIGNATURE_HEADER].as_str().unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert(SIGNATURE_HEADER, header.parse().unwrap());
    let mut secrets = ChannelSecrets::new("SWITCHBOARD_X_CONSUMER_SECRETS");
    secrets.set(
        "consumer_secrets",
        [meta["app_secret"].as_str().unwrap().to_owned()],
    );
    let v = verifier(&secrets).unwrap();
    use crate::verify::SignatureCheck;
    assert_eq!(v.verify(&headers, &raw, now()), Ok(()));
    let mut tampered = raw.clone();
    tampered[2] ^= 1;
    assert!(v.verify(&headers, &tampered, now()).is_err());
}

#[test]
fn no_consumer_secret_is_a_configuration_error_naming_the_setting() {
    let secrets = ChannelSecrets::new("SWITCHBOARD_X_CONSUMER_SECRETS");
    let error = verifier(&secrets).unwrap_err().to_string();
    assert!(error.contains("SWITCHBOARD_X_CONSUMER_SECRETS"), "{error}");
}

proptest! {
    #[test]
    fn arbitrary_deliveries_never_panic_and_are_always_kept(
        body in super::super::json::arb::json(
            &["42", "100", "message_create", "1586214250037", "Thu Apr 06 15:24:15 +0000 2017", "x"],
            &["for_user_id", "direct_message_events", "tweet_create_events", "tweet_delete_events",
              "favorite_events", "direct_message_mark_read_events", "follow_events", "users",
              "type", "id", "id_str", "created_timestamp", "message_create", "target",
              "recipient_id", "sender_id", "message_data", "text", "attachment", "media",
              "user", "in_reply_to_user_id_str", "in_reply_to_status_id_str", "status",
              "user_id", "timestamp_ms", "favorited_status", "last_read_event_id", "created_at",
              "extended_tweet", "full_text", "name"],
        )
    ) {
        let records = normalize(&body, now());
        prop_assert!(!records.is_empty());
        // Reading the raw delivery for what is read of it changes nothing (against the tree
        // of the same bytes: a float may not survive writing and reading again).
        let bytes = serde_json::to_vec(&body).unwrap();
        let reread: Value = serde_json::from_slice(&bytes).unwrap();
        prop_assert_eq!(X.records(&bytes, now()), Some(normalize(&reread, now())));
        // Owning the delivery changes nothing but the copies.
        prop_assert_eq!(normalize_owned(body, now()), records);
    }
}

#[test]
fn a_delivery_of_empty_lists_is_kept_whole_owned_or_not() {
    let body = json!({"for_user_id": "42", "direct_message_events": [],
                      "users": {"42": {"name": "Acme", "followers_count": 3}}, "apps": {}});
    let records = normalize_owned(body.clone(), now());
    assert_eq!(records, normalize(&body, now()));
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].raw(), &body);
    // From the raw bytes too: the profile and the apps are kept with it.
    let from_bytes = X
        .records(&serde_json::to_vec(&body).unwrap(), now())
        .unwrap();
    assert_eq!(from_bytes, records);
}

/// A delivery whose `users` is not a map of people is read whole, as it was before the
/// profiles were skipped.
#[test]
fn odd_users_are_read_as_the_whole_tree_reads_them() {
    for users in [
        json!([1, 2]),
        json!({"7": "seven"}),
        json!({"7": {"name": 7}}),
        json!(null),
    ] {
        let body = json!({"for_user_id": "42", "users": users,
            "direct_message_events": [{"type": "message_create", "id": "1",
              "created_timestamp": "1586214250037",
              "message_create": {"sender_id": "7", "target": {"recipient_id": "42"},
                                 "message_data": {"text": "hi"}}}]});
        let bytes = serde_json::to_vec(&body).unwrap();
        assert_eq!(
            X.records(&bytes, now()),
            Some(normalize(&body, now())),
            "{users}"
        );
    }
}

#[test]
fn owning_a_delivery_gives_the_same_records_for_every_fixture() {
    let dir = format!("{}/../../tests/fixtures/x", env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json")
            && !path.to_string_lossy().ends_with(".meta.json")
        {
            let body: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            assert_eq!(
                normalize_owned(body.clone(), now()),
                normalize(&body, now()),
                "{}",
                path.display()
            );
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(
                X.records(&bytes, now()),
                Some(normalize(&body, now())),
                "{}",
                path.display()
            );
            seen += 1;
        }
    }
    assert!(seen >= 10, "{seen} fixtures");
}
