use super::*;
use chrono::TimeZone;
use proptest::prelude::*;
use serde_json::json;

fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(1_790_000_000, 0).unwrap()
}

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/../../tests/fixtures/telegram/{name}.json",
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

#[test]
fn a_private_message_is_the_customers_in_their_chat_with_the_bot() {
    let m = the_message(&fixture("message_text__nutgram"));
    assert_eq!(m.channel, Channel::Telegram);
    assert_eq!(m.account_id.as_str(), BOT_ACCOUNT);
    assert_eq!(m.provider_message_id.as_str(), "12345678:123456");
    assert_eq!(m.direction, Direction::Inbound);
    assert_eq!(m.kind, MessageKind::Text);
    assert_eq!(m.text.as_deref(), Some("aaaaaaaaaa"));
    assert_eq!(m.customer.provider_user_id.as_str(), "12345678");
    assert_eq!(m.customer.display_name.as_deref(), Some("Mario Bros"));
    assert_eq!(m.sent_at, Utc.timestamp_opt(1_631_818_904, 0).unwrap());
    assert!(!m.public);
    assert_eq!(
        m.conversation_id,
        ConversationId::derive(Channel::Telegram, &"bot".into(), &"12345678".into())
    );
    assert_eq!(
        split_message_id(&m.provider_message_id),
        Some(("12345678", "123456"))
    );
}

#[test]
fn a_business_connection_is_the_account_and_the_owners_own_message_is_outbound() {
    let mut body = fixture("business_message__nutgram");
    body["business_message"]["business_connection_id"] = json!("BC-1");
    let m = the_message(&body);
    assert_eq!(m.account_id.as_str(), "BC-1");
    assert_eq!(m.direction, Direction::Inbound);
    // The business account's owner answers in the same private chat: from is not the chat.
    body["business_message"]["from"] = json!({"id": 999, "first_name": "Acme"});
    body["business_message"]["message_id"] = json!(124);
    let answer = the_message(&body);
    assert_eq!(answer.direction, Direction::Outbound);
    assert_eq!(answer.conversation_id, m.conversation_id);
    assert_eq!(answer.customer.provider_user_id.as_str(), "456");
    // Without a connection id, the bot's account.
    assert_eq!(
        the_message(&fixture("business_message__nutgram"))
            .account_id
            .as_str(),
        BOT_ACCOUNT
    );
}

#[test]
fn an_edit_is_an_event_of_the_original_message() {
    let e = the_event(&fixture("edited_message_reply__nutgram"));
    assert_eq!(e.refers_to.as_str(), "999999999:23762");
    assert_eq!(
        e.kind,
        EventKind::Edit {
            text: Some("Editing this message".into())
        }
    );
    assert_eq!(e.occurred_at, Utc.timestamp_opt(1_584_985_245, 0).unwrap());
    assert_eq!(e.event_id.as_str(), "999999999:23762:edit:1584985245");
    // A second edit of the same message is another event.
    let mut again = fixture("edited_message_reply__nutgram");
    again["edited_message"]["edit_date"] = json!(1_584_985_300);
    assert_ne!(the_event(&again).event_id, e.event_id);
    let business = the_event(&fixture("edited_business_message__nutgram"));
    assert!(matches!(business.kind, EventKind::Edit { .. }));
}

#[test]
fn deleted_business_messages_are_a_delete_event_each() {
    let records = normalize(&fixture("deleted_business_messages__nutgram"), now());
    let refers: Vec<_> = records
        .iter()
        .map(|r| match r {
            Record::Event(e) => {
                assert_eq!(e.kind, EventKind::Delete);
                assert_eq!(e.account_id.as_str(), "123");
                e.refers_to.as_str().to_owned()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(refers, ["456:123", "456:321"]);
}

#[test]
fn a_reaction_names_the_emoji_added_and_an_emptied_one_is_removed() {
    let e = the_event(&fixture("message_reaction__nutgram"));
    assert_eq!(e.refers_to.as_str(), "456:123");
    assert_eq!(
        e.kind,
        EventKind::Reaction {
            emoji: Some("🤡".into())
        }
    );
    let mut removed = fixture("message_reaction__nutgram");
    removed["message_reaction"]["new_reaction"] = json!([]);
    removed["message_reaction"]["date"] = json!(1_684_984_700);
    let r = the_event(&removed);
    assert_eq!(r.kind, EventKind::Reaction { emoji: None });
    assert_ne!(r.event_id, e.event_id);
}

#[test]
fn a_pressed_button_is_a_postback_of_the_person_in_the_chat_of_its_message() {
    let m = the_message(&fixture("callback_query_with_message__nutgram"));
    assert_eq!(m.kind, MessageKind::Postback);
    assert_eq!(m.direction, Direction::Inbound);
    assert_eq!(m.text.as_deref(), Some("thedata"));
    assert_eq!(
        m.provider_message_id.as_str(),
        "callback:666728699048485871"
    );
    assert_eq!(m.customer.provider_user_id.as_str(), "222222222");
    assert_eq!(m.reply_to.as_ref().unwrap().as_str(), "222222222:69587");
    assert_eq!(split_message_id(&m.provider_message_id), None);
    let without = the_message(&fixture("callback_query_message_null__nutgram"));
    assert_eq!(
        without.conversation_id, m.conversation_id,
        "the same private chat"
    );
    assert_eq!(without.reply_to, None);
}

#[test]
fn group_messages_are_public_one_conversation_per_member_and_channel_posts_are_the_brands() {
    let m = the_message(&fixture("message_forum_topic_reply__nutgram"));
    assert!(m.public);
    assert_eq!(m.direction, Direction::Inbound);
    assert_eq!(m.customer.provider_user_id.as_str(), "123456");
    assert_eq!(m.provider_message_id.as_str(), "-1001234567489:35");
    assert_eq!(m.reply_to.as_ref().unwrap().as_str(), "-1001234567489:33");
    assert_eq!(m.thread_id.as_ref().unwrap().as_str(), "33");
    assert_eq!(
        split_message_id(&m.provider_message_id),
        Some(("-1001234567489", "35"))
    );
    let mut other = fixture("message_forum_topic_reply__nutgram");
    other["message"]["from"]["id"] = json!(654321);
    assert_ne!(the_message(&other).conversation_id, m.conversation_id);

    let post = the_message(&fixture("channel_post__nutgram"));
    assert!(post.public);
    assert_eq!(post.direction, Direction::Outbound);
    let edited = the_event(&fixture("edited_channel_post__nutgram"));
    assert_eq!(edited.direction, Direction::Outbound);
}

#[test]
fn media_keep_the_largest_file_and_the_caption() {
    let m = the_message(&fixture("message_photo_caption__nutgram"));
    assert_eq!(m.kind, MessageKind::Image);
    assert_eq!(m.text.as_deref(), Some("asdasdasdasdasdasd"));
    assert_eq!(m.attachments[0].media_id.as_deref(), Some("SEES"));
    for (name, kind) in [
        ("message_document__nutgram", MessageKind::Document),
        ("message_voice__nutgram", MessageKind::Audio),
        ("message_video__nutgram", MessageKind::Video),
        ("message_sticker__nutgram", MessageKind::Sticker),
        ("message_location__nutgram", MessageKind::Location),
        ("message_contact__nutgram", MessageKind::Contacts),
    ] {
        assert_eq!(the_message(&fixture(name)).kind, kind, "{name}");
    }
}

#[test]
fn everything_else_is_kept_as_a_notification_keyed_by_the_update() {
    for (name, topic) in [
        ("business_connection__nutgram", "business_connection"),
        ("inline_query__nutgram", "inline_query"),
        ("chat_member__nutgram", "chat_member"),
        ("poll_answer__nutgram", "poll_answer"),
        (
            "message_new_chat_members__nutgram",
            "service.new_chat_members",
        ),
        ("message_pinned_message__nutgram", "service.pinned_message"),
    ] {
        let body = fixture(name);
        let Record::Notification(n) = one(&body) else {
            panic!("{name}")
        };
        assert_eq!(n.topic, topic, "{name}");
        assert_eq!(
            n.notification_id.as_str(),
            format!("{topic}:{}", body["update_id"]),
            "{name}"
        );
        assert_eq!(n.raw, body);
    }
    let Record::Notification(connection) = one(&fixture("business_connection__nutgram")) else {
        unreachable!()
    };
    assert_eq!(connection.account_id.as_str(), "123456");
}

#[test]
fn every_fixture_gives_records_and_the_same_records_again() {
    let dir = format!(
        "{}/../../tests/fixtures/telegram",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with("__nutgram.json") && !name.ends_with("__telegrambots.json") {
            continue;
        }
        let body: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let records = normalize(&body, now());
        assert!(!records.is_empty(), "{name}");
        assert_eq!(records, normalize(&body, now()), "{name}: deterministic");
        seen += 1;
    }
    assert!(seen >= 45, "{seen}");
}

#[test]
fn secrets_must_be_tokens_telegram_accepts() {
    let mut secrets = ChannelSecrets::new("SWITCHBOARD_TELEGRAM_SECRET_TOKENS");
    assert!(verifier(&secrets).is_err(), "none given");
    secrets.set("secret_tokens", ["has a space".to_owned()]);
    let error = verifier(&secrets).unwrap_err().to_string();
    assert!(
        error.contains("SWITCHBOARD_TELEGRAM_SECRET_TOKENS"),
        "{error}"
    );
    assert!(
        !error.contains("has a space"),
        "the token is never shown: {error}"
    );
    secrets.set("secret_tokens", ["good_token-1".to_owned()]);
    assert!(verifier(&secrets).is_ok());
}

proptest! {
    #[test]
    fn arbitrary_updates_never_panic_and_are_always_kept(
        body in super::super::json::arb::json(
            &["private", "group", "supergroup", "channel", "BC-1", "1", "-100", "x"],
            &["update_id", "message", "edited_message", "business_message", "channel_post",
              "deleted_business_messages", "message_reaction", "callback_query",
              "business_connection", "message_id", "chat", "id", "type", "from", "date",
              "text", "caption", "photo", "file_id", "reply_to_message", "message_ids",
              "new_reaction", "old_reaction", "emoji", "user", "data", "edit_date",
              "business_connection_id", "sender_chat", "is_bot"],
        )
    ) {
        let records = normalize(&body, now());
        prop_assert!(!records.is_empty());
    }
}

#[test]
fn an_update_with_several_kinds_gives_a_record_for_each() {
    let body = fixture("synthetic_multi_kind_update__telegrambots");
    let records = normalize(&body, now());
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| match r {
            Record::Message(m) => m.kind.as_str(),
            Record::Event(e) if matches!(e.kind, EventKind::Edit { .. }) => "edit",
            Record::Event(_) => "event",
            Record::Notification(n) => n.topic.as_str(),
        })
        .collect();
    assert_eq!(kinds.len(), 5, "{kinds:?}");
    for kind in [
        "audio",
        "edit",
        "postback",
        "inline_query",
        "chosen_inline_result",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
}
