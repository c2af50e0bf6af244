//! Arbitrary input through the whole webhook path: whatever a signed body holds (WhatsApp's
//! envelope, a Telegram update, an X delivery or an e-mail of any kind), the answer is 200 (stored, or quarantined when
//! it is not JSON), never a panic or a 5xx, a repeat doubles nothing, and an unsigned one is
//! always 401.

use proptest::prelude::*;
use serde_json::{Value, json};

use switchboard_tests::{
    Backend, TELEGRAM_TOKEN, X_SECRET, call, email_post, embedded, post, signed, telegram_post,
    x_post,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn shapes() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z0-9 .<>é😡]{0,10}".prop_map(Value::from),
    ];
    let tree = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map(
                prop_oneof![
                    Just("id".to_owned()),
                    Just("type".to_owned()),
                    Just("from".to_owned()),
                    Just("timestamp".to_owned()),
                    Just("text".to_owned()),
                    Just("status".to_owned()),
                    Just("reaction".to_owned()),
                    Just("contacts".to_owned()),
                    "[a-z]{1,6}"
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    (tree.clone(), tree).prop_map(|(item, other)| {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [
            {"field": "messages", "value": {"metadata": {"phone_number_id": "P"},
              "messages": [item.clone()], "statuses": [item.clone()], "message_echoes": [item.clone()],
              "calls": [item], "other": other}}
        ]}]})
    })
}

/// Telegram updates of every kind switchboard reads, with arbitrary parts.
fn telegram_shapes() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::from),
        prop_oneof![Just("private"), Just("group"), Just("channel"), Just("x")]
            .prop_map(Value::from),
        "[a-z0-9 é😡]{0,8}".prop_map(Value::from),
    ];
    let item = leaf.prop_recursive(3, 24, 5, |inner| {
        prop::collection::btree_map(
            prop_oneof![
                Just("message_id".to_owned()),
                Just("chat".to_owned()),
                Just("id".to_owned()),
                Just("type".to_owned()),
                Just("from".to_owned()),
                Just("date".to_owned()),
                Just("text".to_owned()),
                Just("photo".to_owned()),
                Just("message_ids".to_owned()),
                Just("new_reaction".to_owned()),
                Just("business_connection_id".to_owned()),
                "[a-z_]{1,8}"
            ],
            inner,
            0..5,
        )
        .prop_map(|m| Value::Object(m.into_iter().collect()))
    });
    let kind = prop_oneof![
        Just("message"),
        Just("edited_message"),
        Just("business_message"),
        Just("channel_post"),
        Just("deleted_business_messages"),
        Just("message_reaction"),
        Just("callback_query"),
        Just("business_connection"),
        Just("poll"),
    ];
    (any::<i64>(), kind, item).prop_map(|(id, kind, item)| json!({"update_id": id, kind: item}))
}

/// X Account Activity deliveries of every list switchboard reads, with arbitrary parts.
fn x_shapes() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<i64>().prop_map(Value::from),
        prop_oneof![
            Just("100"),
            Just("42"),
            Just("message_create"),
            Just("1586214250037")
        ]
        .prop_map(Value::from),
        "[a-z0-9 é😡]{0,8}".prop_map(Value::from),
    ];
    let item = leaf.prop_recursive(3, 24, 5, |inner| {
        prop::collection::btree_map(
            prop_oneof![
                Just("id".to_owned()),
                Just("id_str".to_owned()),
                Just("type".to_owned()),
                Just("message_create".to_owned()),
                Just("sender_id".to_owned()),
                Just("target".to_owned()),
                Just("recipient_id".to_owned()),
                Just("message_data".to_owned()),
                Just("user".to_owned()),
                Just("status".to_owned()),
                Just("favorited_status".to_owned()),
                Just("in_reply_to_user_id_str".to_owned()),
                Just("timestamp_ms".to_owned()),
                "[a-z_]{1,8}"
            ],
            inner,
            0..5,
        )
        .prop_map(|m| Value::Object(m.into_iter().collect()))
    });
    let kind = prop_oneof![
        Just("direct_message_events"),
        Just("tweet_create_events"),
        Just("tweet_delete_events"),
        Just("favorite_events"),
        Just("direct_message_mark_read_events"),
        Just("follow_events"),
        Just("users"),
    ];
    let account = prop_oneof![Just(json!("100")), Just(json!(100)), Just(Value::Null)];
    (account, kind, prop::collection::vec(item, 0..3))
        .prop_map(|(account, kind, items)| json!({"for_user_id": account, kind: items}))
}

fn backend(rt: &tokio::runtime::Runtime) -> (Backend, axum::Router) {
    let backend = rt.block_on(embedded());
    let app = backend.app(None);
    (backend, app)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn any_signed_bytes_are_answered_200_and_kept(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let rt = runtime();
        let (backend, app) = backend(&rt);
        let (status, _) = rt.block_on(call(&app, signed(bytes.clone())));
        prop_assert_eq!(status, 200);
        let kept = rt.block_on(backend.reader.delivery(&switchboard_core::ids::DeliveryId::of(&bytes))).unwrap();
        prop_assert!(kept.is_some_and(|d| d.body == bytes));
    }

    #[test]
    fn any_signed_json_shape_is_accepted_twice_without_doubling(body in shapes()) {
        let rt = runtime();
        let (backend, app) = backend(&rt);
        let bytes = body.to_string();
        prop_assert_eq!(rt.block_on(call(&app, signed(bytes.clone()))).0, 200);
        let first = rt.block_on(backend.probe.drain()).len();
        prop_assert_eq!(rt.block_on(call(&app, signed(bytes))).0, 200);
        prop_assert_eq!(rt.block_on(backend.probe.drain()).len(), 0, "{} queued first", first);
    }

    #[test]
    fn any_telegram_update_is_accepted_twice_without_doubling(body in telegram_shapes()) {
        let rt = runtime();
        let (backend, app) = backend(&rt);
        let bytes = body.to_string().into_bytes();
        prop_assert_eq!(rt.block_on(call(&app, telegram_post(&bytes, TELEGRAM_TOKEN))).0, 200);
        prop_assert!(rt.block_on(backend.kept(&bytes)));
        let first = rt.block_on(backend.probe.drain()).len();
        prop_assert_eq!(rt.block_on(call(&app, telegram_post(&bytes, TELEGRAM_TOKEN))).0, 200);
        prop_assert_eq!(rt.block_on(backend.probe.drain()).len(), 0, "{} queued first", first);
    }

    #[test]
    fn any_x_delivery_is_accepted_twice_without_doubling(body in x_shapes()) {
        let rt = runtime();
        let (backend, app) = backend(&rt);
        let bytes = body.to_string().into_bytes();
        prop_assert_eq!(rt.block_on(call(&app, x_post(&bytes, X_SECRET))).0, 200);
        prop_assert!(rt.block_on(backend.kept(&bytes)));
        let first = rt.block_on(backend.probe.drain()).len();
        prop_assert_eq!(rt.block_on(call(&app, x_post(&bytes, X_SECRET))).0, 200);
        prop_assert_eq!(rt.block_on(backend.probe.drain()).len(), 0, "{} queued first", first);
    }

    #[test]
    fn any_bytes_posted_as_an_email_are_kept_and_doubled_nowhere(
        bytes in prop::collection::vec(any::<u8>(), 0..1024),
        headers in prop::collection::vec("(From|To|Message-ID|In-Reply-To|References|Content-Type|Auto-Submitted): [ -~]{0,40}\r\n", 0..6),
    ) {
        let rt = runtime();
        let (backend, app) = backend(&rt);
        let mut message = headers.concat().into_bytes();
        message.extend_from_slice(b"\r\n");
        message.extend_from_slice(&bytes);
        prop_assert_eq!(rt.block_on(call(&app, email_post(&message, "msg_a"))).0, 200);
        prop_assert!(rt.block_on(backend.kept(&message)));
        let first = rt.block_on(backend.probe.drain()).len();
        prop_assert!(first <= 1);
        prop_assert_eq!(rt.block_on(call(&app, email_post(&message, "msg_b"))).0, 200);
        prop_assert_eq!(rt.block_on(backend.probe.drain()).len(), 0, "{} queued first", first);
    }

    #[test]
    fn any_unsigned_body_is_401(bytes in prop::collection::vec(any::<u8>(), 0..256), header in "[ -~]{0,80}") {
        let rt = runtime();
        let (_, app) = backend(&rt);
        prop_assert_eq!(rt.block_on(call(&app, post(bytes.clone(), Some(&header)))).0, 401);
        prop_assert_eq!(rt.block_on(call(&app, post(bytes, None))).0, 401);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever a queue message holds (any text, any JSON shape, an entry naming nothing that
    /// is stored), the prioritizer answers it as failed and does not panic; nothing is written.
    #[test]
    fn any_queue_message_fails_cleanly_in_the_prioritizer(
        bodies in prop::collection::vec(
            prop_oneof![
                any::<String>(),
                shapes().prop_map(|v| v.to_string()),
                ("[a-z0-9]{0,12}", "[a-z_]{0,8}").prop_map(|(key, kind)| json!({
                    "record_key": key, "conversation_id": format!("cv_{key}"),
                    "channel": "whatsapp", "record_type": "message", "kind": kind
                }).to_string()),
            ],
            1..6,
        )
    ) {
        let rt = runtime();
        let (backend, app) = backend(&rt);
        let items: Vec<switchboard_core::prioritize::BatchItem> = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| switchboard_core::prioritize::BatchItem { id: i.to_string(), body: body.clone() })
            .collect();
        let failed = rt.block_on(backend.prioritizer().handle_batch(&items));
        prop_assert_eq!(failed.len(), items.len());
        let (status, queue) = rt.block_on(switchboard_tests::get_json(&app, "/api/queue"));
        prop_assert_eq!(status.as_u16(), 200);
        prop_assert_eq!(queue["items"].as_array().map(Vec::len), Some(0));
    }
}
