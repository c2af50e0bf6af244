use super::*;
use proptest::prelude::*;

fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(1_796_000_000, 0).unwrap()
}

fn raw(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../tests/fixtures/email/{name}.eml",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).expect(&path)
}

fn one(name: &str) -> Record {
    let mut records = parse(&raw(name), now());
    assert_eq!(records.len(), 1, "{records:?}");
    records.remove(0)
}

fn message(name: &str) -> Message {
    match one(name) {
        Record::Message(m) => m,
        other => panic!("{name}: not a message: {other:?}"),
    }
}

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .with_timezone(&Utc)
}

#[test]
fn a_plain_message_is_the_senders_in_their_conversation_with_the_mailbox() {
    let m = message("plain");
    assert_eq!(m.channel, Channel::Email);
    assert_eq!(
        m.provider_message_id.as_str(),
        "CAF3x1-plain-4411@mail.example.com"
    );
    assert_eq!(m.account_id.as_str(), "support@acme.example");
    assert_eq!(
        m.customer.provider_user_id.as_str(),
        "ana@example.com",
        "lowercased"
    );
    assert_eq!(m.customer.display_name.as_deref(), Some("Ana María Ruiz"));
    assert_eq!(m.direction, Direction::Inbound);
    assert_eq!(
        m.text.as_deref(),
        Some(
            "Hola,\n\nmi pedido 4411 lleva una semana de retraso y nadie me contesta. ¿Dónde está?\n\nAna"
        )
    );
    assert_eq!(m.sent_at, at("2026-11-27T08:15:00Z"));
    assert_eq!(
        m.provider_timestamp.as_deref(),
        Some("Fri, 27 Nov 2026 09:15:00 +0100")
    );
    assert!(!m.public);
    assert_eq!(m.raw["subject"], "Pedido 4411 sin entregar");
    assert_eq!(
        m.conversation_id,
        ConversationId::derive(
            Channel::Email,
            &"support@acme.example".into(),
            &"ana@example.com".into()
        )
    );
}

#[test]
fn html_alone_is_turned_into_readable_text() {
    let m = message("html_only");
    let text = m.text.unwrap();
    assert!(
        text.contains("Fui cobrado duas vezes pelo mesmo pedido."),
        "{text:?}"
    );
    assert!(text.contains("Quero o estorno & uma resposta."), "{text:?}");
    assert!(!text.contains('<'), "{text:?}");
    assert_eq!(m.sent_at, at("2026-11-28T13:00:00Z"));
}

#[test]
fn attachments_are_kept_by_name_type_and_size_and_the_text_part_is_the_text() {
    let m = message("multipart_attachment");
    assert_eq!(
        m.text.as_deref(),
        Some("Adjunto la factura con el importe incorrecto y una captura.")
    );
    let found: Vec<(&str, Option<&str>, Option<&str>)> = m
        .attachments
        .iter()
        .map(|a| {
            (
                a.kind.as_str(),
                a.mime_type.as_deref(),
                a.filename.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("document", Some("application/pdf"), Some("factura.pdf")),
            ("image", Some("image/png"), Some("captura.png")),
        ]
    );
    assert_eq!(m.attachments[0].media_id.as_deref(), Some("24 bytes"));
    assert_eq!(m.raw["cc"][0]["address"], "marta@example.net");
}

#[test]
fn other_charsets_and_encoded_words_are_decoded() {
    let m = message("latin1");
    assert_eq!(
        m.text.as_deref(),
        Some("Não recebi o pedido e a loja não responde. Preciso de uma solução.")
    );
    assert_eq!(m.raw["subject"], "Não recebi o pedido");
    assert_eq!(m.customer.display_name.as_deref(), Some("João Araújo"));
    let m = message("encoded_subject");
    assert_eq!(m.raw["subject"], "¡Urgente! Cuenta hackeada");
    assert_eq!(
        m.text.as_deref(),
        Some("Alguien entró en mi cuenta y cambió la contraseña – ayuda.")
    );
}

#[test]
fn a_forwarded_chain_is_one_message_of_the_forwarder() {
    let m = message("forwarded");
    assert_eq!(m.customer.provider_user_id.as_str(), "elena@example.com");
    let text = m.text.unwrap();
    assert!(text.starts_with("Os reenvio lo que me dijeron en tienda."));
    assert!(
        text.ends_with("> Quiero devolver el pedido 7788."),
        "{text:?}"
    );
}

#[test]
fn auto_replies_and_bounces_are_notifications_not_customers_waiting() {
    for (name, topic, id) in [
        ("auto_reply", "email.auto_reply", "ooo-42@example.com"),
        ("bounce", "email.bounce", "bounce-20261202@mx.example.com"),
    ] {
        let Record::Notification(n) = one(name) else {
            panic!("{name}")
        };
        assert_eq!(n.topic, topic);
        assert_eq!(n.notification_id.as_str(), format!("{topic}:{id}"));
        assert_eq!(n.account_id.as_str(), "support@acme.example");
    }
}

#[test]
fn the_brands_answer_is_outbound_to_its_customer_and_names_its_thread() {
    let question = message("thread_1");
    let answer = message("thread_2");
    assert_eq!(answer.direction, Direction::Outbound);
    assert_eq!(answer.account_id.as_str(), "support@acme.example");
    assert_eq!(
        answer.customer.provider_user_id.as_str(),
        "gloria@example.com"
    );
    assert_eq!(answer.conversation_id, question.conversation_id);
    assert_eq!(
        thread_parents(&answer),
        [ProviderId::from("thread-1@example.com")]
    );
    let reply = message("thread_3");
    assert_eq!(reply.direction, Direction::Inbound);
    assert_eq!(
        thread_parents(&reply),
        [
            ProviderId::from("answer-2@acme.example"),
            ProviderId::from("thread-1@example.com")
        ],
        "In-Reply-To first, then References from the last"
    );
    assert_eq!(reply.conversation_id, question.conversation_id);
    assert!(thread_parents(&question).is_empty());
}

#[test]
fn a_message_without_an_id_gets_one_from_its_bytes() {
    let bytes = raw("no_message_id");
    let m = message("no_message_id");
    assert_eq!(
        m.provider_message_id.as_str(),
        format!("sha256:{}", DeliveryId::of(bytes.trim_ascii_end()))
    );
    let mut from_an_mbox = bytes.clone();
    from_an_mbox.extend_from_slice(b"\n");
    assert_eq!(
        raw_id(&from_an_mbox),
        m.provider_message_id,
        "the separator is not the message"
    );
    assert_eq!(parse(&bytes, now()), parse(&bytes, now()), "the same again");
}

#[test]
fn authentication_verdicts_are_kept_and_a_dmarc_failure_is_known() {
    let m = message("dmarc_fail");
    assert_eq!(m.raw["auth"]["spf"], "fail");
    assert_eq!(m.raw["auth"]["dkim"], "none");
    assert_eq!(m.raw["auth"]["dmarc"], "fail");
    assert_eq!(m.raw["auth"]["spam"], "pass");
    assert!(dmarc_failed(&m));
    assert!(!dmarc_failed(&message("plain")));
}

#[test]
fn what_is_not_a_message_is_kept() {
    let Record::Notification(n) = parse(b"", now()).remove(0) else {
        panic!("kept")
    };
    assert_eq!(n.topic, "email.unreadable");
    let Record::Notification(n) = parse(b"Subject: nobody sent this\r\n\r\nhi", now()).remove(0)
    else {
        panic!("kept")
    };
    assert_eq!(n.topic, "email.no_sender");
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_give_one_record(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        prop_assert_eq!(parse(&bytes, now()).len(), 1);
    }

    #[test]
    fn arbitrary_headers_and_bodies_never_panic(
        headers in prop::collection::vec(
            (prop_oneof![Just("From".to_owned()), Just("To".to_owned()),
                         Just("Message-ID".to_owned()), Just("In-Reply-To".to_owned()),
                         Just("References".to_owned()), Just("Content-Type".to_owned()),
                         Just("Auto-Submitted".to_owned()),
                         Just("Authentication-Results".to_owned()), Just("Date".to_owned()),
                         Just("Delivered-To".to_owned()),
                         Just("Content-Transfer-Encoding".to_owned()), "[A-Za-z-]{1,12}"],
             "[ -~]{0,60}"),
            0..10),
        body in "[ -~\r\n]{0,300}",
    ) {
        let mut raw = String::new();
        for (name, value) in headers {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
        raw.push_str("\r\n");
        raw.push_str(&body);
        prop_assert_eq!(parse(raw.as_bytes(), now()).len(), 1);
    }
}

/// SES stores no `Delivered-To`: the brand's Bcc copy is known by the recipient of SES's
/// `Received` line, and is the brand's answer; the same line on a customer's mail names the
/// mailbox it was sent to.
#[test]
fn the_received_line_names_the_mailbox_when_no_delivered_to_does() {
    let ses = |raw: &[u8], recipient: &str| {
        let text = String::from_utf8(raw.to_vec()).unwrap();
        let text = text
            .lines()
            .filter(|l| !l.starts_with("Delivered-To:"))
            .collect::<Vec<_>>()
            .join("\r\n");
        format!(
            "Received: from mail.example.com (mail.example.com [192.0.2.1])\r\n by \
             inbound-smtp.us-east-1.amazonaws.com with SMTP id abc123\r\n for {recipient};\r\n \
             Thu, 26 Nov 2026 10:40:01 +0000 (UTC)\r\n{text}"
        )
        .into_bytes()
    };
    let answer = match parse(&ses(&raw("thread_2"), "journal@acme.example"), now()).remove(0) {
        Record::Message(m) => m,
        other => panic!("{other:?}"),
    };
    assert_eq!(answer.direction, Direction::Outbound);
    assert_eq!(
        answer.customer.provider_user_id.as_str(),
        "gloria@example.com"
    );
    assert_eq!(answer.account_id.as_str(), "support@acme.example");
    let question = match parse(&ses(&raw("plain"), "<Help@Acme.example>"), now()).remove(0) {
        Record::Message(m) => m,
        other => panic!("{other:?}"),
    };
    assert_eq!(question.direction, Direction::Inbound);
    assert_eq!(question.account_id.as_str(), "help@acme.example");
    // A relay's older line below SES's names another mailbox: the topmost line, the receiving
    // service's own, is the one read.
    let relayed = String::from_utf8(ses(&raw("plain"), "<help@acme.example>")).unwrap();
    let (first, rest) = relayed.split_once("\r\nReturn-Path").unwrap();
    let relayed = format!(
        "{first}\r\nReceived: from relay.example by mx.example for <old@acme.example>; \
         Wed, 25 Nov 2026 10:00:00 +0000\r\nReturn-Path{rest}"
    );
    match parse(relayed.as_bytes(), now()).remove(0) {
        Record::Message(m) => assert_eq!(m.account_id.as_str(), "help@acme.example"),
        other => panic!("{other:?}"),
    }
    assert_eq!(received_for("from x by y; Thu, 26 Nov 2026"), None);
    assert_eq!(received_for("from x by y for @;"), None);
}

/// The header summary kept as the record's raw JSON, whole.
#[test]
fn the_summary_holds_the_headers_and_not_the_body() {
    let m = message("plain");
    assert_eq!(
        m.raw,
        serde_json::json!({
            "message_id": "CAF3x1-plain-4411@mail.example.com",
            "from": [{"address": "ana@example.com", "name": "Ana María Ruiz"}],
            "to": [{"address": "support@acme.example", "name": "Acme Support"}],
            "cc": [],
            "reply_to": [],
            "subject": "Pedido 4411 sin entregar",
            "in_reply_to": [],
            "references": [],
            "auth": {},
        })
    );
}

/// The one pass over the headers reads what mail-parser's accessors (`from`, `message_id`,
/// …) and `header_raw` read, header by header: the last of each name, the topmost
/// `Received`.
fn assert_one_pass_reads_as_the_accessors(raw: &[u8]) {
    let Some(mail) = MessageParser::default().parse(raw) else {
        return;
    };
    let h = Headers::of(&mail);
    assert_eq!(
        h.message_id.and_then(HeaderValue::as_text),
        mail.message_id()
    );
    assert_eq!(h.date.and_then(HeaderValue::as_datetime), mail.date());
    assert_eq!(h.address(h.from), mail.from());
    assert_eq!(h.address(h.to), mail.to());
    assert_eq!(h.address(h.cc), mail.cc());
    assert_eq!(h.address(h.reply_to), mail.reply_to());
    assert_eq!(h.subject.and_then(HeaderValue::as_text), mail.subject());
    assert_eq!(
        h.in_reply_to.unwrap_or(&HeaderValue::Empty),
        mail.in_reply_to()
    );
    assert_eq!(
        h.references.unwrap_or(&HeaderValue::Empty),
        mail.references()
    );
    assert_eq!(h.date_raw, mail.header_raw("Date"));
    for (slot, name) in [
        "X-Original-To",
        "Delivered-To",
        "Envelope-To",
        "X-Envelope-To",
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(h.envelope[slot], mail.header_raw(name), "{name}");
    }
    assert_eq!(h.auto_submitted, mail.header_raw("Auto-Submitted"));
    assert_eq!(h.precedence, mail.header_raw("Precedence"));
    let first = |name: &str| {
        mail.headers_raw()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    assert_eq!(h.received, first("Received"));
    assert_eq!(
        h.autoreply,
        first("X-Autoreply").or(first("X-Autorespond")).is_some()
    );
}

#[test]
fn the_headers_are_read_in_one_pass_as_the_accessors_read_them() {
    let dir = format!("{}/../../tests/fixtures/email", env!("CARGO_MANIFEST_DIR"));
    let mut read = 0;
    for entry in std::fs::read_dir(&dir).expect(&dir) {
        let path = entry.expect("an entry").path();
        if path.extension().is_some_and(|e| e == "eml") {
            assert_one_pass_reads_as_the_accessors(&std::fs::read(&path).expect("readable"));
            read += 1;
        }
    }
    assert!(read >= 10, "{read} fixtures");
    // Repeated headers: the last of each name, the first `Received`.
    assert_one_pass_reads_as_the_accessors(
        b"Received: from a by b for <one@acme.example>; Mon, 1 Jan 2024 00:00:00 +0000\r\n\
          Received: from c by d for <two@acme.example>; Mon, 1 Jan 2024 00:00:00 +0000\r\n\
          From: First <first@example.com>\r\nFrom: Second <second@example.com>\r\n\
          Delivered-To: a@acme.example\r\ndelivered-to: b@acme.example\r\n\
          Subject: one\r\nSubject: two\r\nMessage-ID: <1@x>\r\nMessage-ID: <2@x>\r\n\
          X-Autorespond: yes\r\n\r\nbody",
    );
}

proptest! {
    #[test]
    fn arbitrary_headers_are_read_in_one_pass_as_the_accessors_read_them(
        headers in prop::collection::vec(
            (prop_oneof![Just("From"), Just("To"), Just("Cc"), Just("Reply-To"),
                         Just("Subject"), Just("Date"), Just("Message-ID"),
                         Just("In-Reply-To"), Just("References"), Just("Received"),
                         Just("Delivered-To"), Just("x-original-to"), Just("Envelope-To"),
                         Just("X-Envelope-To"), Just("Auto-Submitted"), Just("PRECEDENCE"),
                         Just("X-Autoreply"), Just("X-Autorespond"), Just("X-Other")],
             "[ -~]{0,60}"),
            0..12),
    ) {
        let mut raw = String::new();
        for (name, value) in headers {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
        raw.push_str("\r\nbody");
        assert_one_pass_reads_as_the_accessors(raw.as_bytes());
    }
}
