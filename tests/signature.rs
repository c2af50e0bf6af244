//! X-Hub-Signature-256 verification, attacked from every side, through the real router.

use bytes::Bytes;
use serde_json::Value;

use switchboard_core::channels::meta::{MetaVerifier, sign};
use switchboard_core::verify::Secret;
use switchboard_tests::{
    APP_SECRET, OLD_APP_SECRET, all_records, call, embedded, fixtures_dir, post, signature,
};

fn vector() -> (Vec<u8>, String, String) {
    let dir = fixtures_dir().join("whatsapp");
    let meta: Value =
        serde_json::from_slice(&std::fs::read(dir.join("text_signed__pywa.meta.json")).unwrap())
            .unwrap();
    let raw = std::fs::read(dir.join(meta["raw_body_file"].as_str().unwrap())).unwrap();
    (
        raw,
        meta["app_secret"].as_str().unwrap().to_owned(),
        meta["headers"]["X-Hub-Signature-256"]
            .as_str()
            .unwrap()
            .to_owned(),
    )
}

#[test]
fn the_published_vector_verifies_over_its_raw_bytes_only() {
    let (raw, secret, header) = vector();
    let verifier = MetaVerifier::new(vec![Secret::new(secret)], Secret::new("t"));
    assert_eq!(
        verifier.verify_header(Some(header.as_bytes()), &raw),
        Ok(())
    );
    // The same JSON serialized again (the fixture's pretty-printed copy, or any other spacing)
    // is other bytes, and fails.
    let parsed: Value = serde_json::from_slice(&raw).unwrap();
    let pretty_fixture =
        std::fs::read(fixtures_dir().join("whatsapp/text_signed__pywa.json")).unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&pretty_fixture).unwrap(),
        parsed
    );
    for reserialized in [pretty_fixture, serde_json::to_vec_pretty(&parsed).unwrap()] {
        assert_ne!(reserialized, raw);
        assert!(
            verifier
                .verify_header(Some(header.as_bytes()), &reserialized)
                .is_err()
        );
    }
}

fn body() -> Bytes {
    Bytes::from_static(
        br#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"P"},"messages":[{"from":"1","id":"wamid.sig","timestamp":"1700000000","type":"text","text":{"body":"hi"}}]}}]}]}"#,
    )
}

async fn refused(sig: Option<&str>, body: Bytes) {
    let backend = embedded().await;
    let app = backend.app(None);
    let (status, _) = call(&app, post(body.clone(), sig)).await;
    assert_eq!(status, 401, "signature {sig:?} must be refused");
    assert!(!backend.kept(&body).await, "nothing kept");
    assert!(all_records(&app).await.is_empty(), "nothing stored");
    assert!(backend.probe.drain().await.is_empty(), "nothing queued");
}

#[tokio::test]
async fn tampered_body_is_rejected_and_nothing_is_kept() {
    let sig = signature(&body());
    let tampered = Bytes::from(
        String::from_utf8(body().to_vec())
            .unwrap()
            .replace("hi", "ho"),
    );
    refused(Some(&sig), tampered).await;
}

#[tokio::test]
async fn tampered_truncated_or_extended_signature_is_rejected() {
    let sig = signature(&body());
    let last = sig.chars().last().unwrap();
    let flipped = format!(
        "{}{}",
        &sig[..sig.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    refused(Some(&flipped), body()).await;
    refused(Some(&sig[..sig.len() - 2]), body()).await;
    refused(Some(&format!("{sig}00")), body()).await;
    refused(Some(&format!("{sig} ")), body()).await;
}

#[tokio::test]
async fn wrong_prefix_missing_header_and_malformed_values_are_rejected() {
    let sig = signature(&body());
    let hex = &sig["sha256=".len()..];
    for bad in [
        format!("sha1={hex}"),
        format!("SHA256={hex}"),
        format!("sha256:{hex}"),
        hex.to_owned(),
        "sha256=".to_owned(),
        format!("sha256={}", "z".repeat(64)),
        String::new(),
    ] {
        refused(Some(&bad), body()).await;
    }
    refused(None, body()).await;
}

#[tokio::test]
async fn uppercase_hex_is_the_same_digest_and_accepted() {
    let backend = embedded().await;
    let app = backend.app(None);
    let sig = signature(&body());
    let upper = format!("sha256={}", sig["sha256=".len()..].to_ascii_uppercase());
    assert_eq!(call(&app, post(body(), Some(&upper))).await.0, 200);
}

#[tokio::test]
async fn both_the_new_and_the_old_secret_are_accepted_during_rotation() {
    let backend = embedded().await;
    let app = backend.app(None);
    for secret in [APP_SECRET, OLD_APP_SECRET] {
        let sig = sign(secret, &body());
        assert_eq!(
            call(&app, post(body(), Some(&sig))).await.0,
            200,
            "{secret}"
        );
    }
    let retired = sign("a-secret-no-longer-configured", &body());
    assert_eq!(call(&app, post(body(), Some(&retired))).await.0, 401);
}

#[tokio::test]
async fn non_ascii_text_is_verified_over_the_escaped_bytes_meta_sends() {
    // Meta escapes non-ASCII characters (\u00e9) and signs those bytes.
    let escaped = Bytes::from_static(
        br#"{"object":"whatsapp_business_account","entry":[{"id":"W","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"P"},"messages":[{"from":"1","id":"wamid.utf","timestamp":"1700000000","type":"text","text":{"body":"\u00e9 urgente \ud83d\ude21"}}]}}]}]}"#,
    );
    let sig = signature(&escaped);
    let unescaped = Bytes::from(
        String::from_utf8(escaped.to_vec())
            .unwrap()
            .replace(r"\u00e9", "é")
            .replace(r"\ud83d\ude21", "😡"),
    );
    refused(Some(&sig), unescaped).await;

    let backend = embedded().await;
    let app = backend.app(None);
    assert_eq!(call(&app, post(escaped, Some(&sig))).await.0, 200);
    let records = all_records(&app).await;
    assert_eq!(records[0]["text"], "é urgente 😡");
}

#[tokio::test]
async fn the_handshake_echoes_the_challenge_and_refuses_a_wrong_token() {
    let backend = embedded().await;
    let app = backend.app(None);
    let get = |q: &str| {
        http::Request::get(format!("/webhooks/whatsapp?{q}"))
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let (status, body) = call(
        &app,
        get("hub.mode=subscribe&hub.verify_token=test-verify-token&hub.challenge=1158201444"),
    )
    .await;
    assert_eq!((status.as_u16(), &body[..]), (200, &b"1158201444"[..]));
    let (status, _) = call(
        &app,
        get("hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1"),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(&app, get("hub.mode=subscribe&hub.challenge=1")).await;
    assert_eq!(status, 400);
}

/// Every scheme's check of the headers alone (made before a body is read): a signed request's
/// headers pass it, and a request without them, or with malformed ones, is refused by it, as
/// by the full check; a secret-token scheme (Telegram) is checked whole.
#[test]
fn each_scheme_refuses_missing_or_malformed_headers_before_the_body() {
    use http::{HeaderMap, HeaderValue};
    use switchboard_core::channels::{standard, telegram, x};
    use switchboard_core::verify::{SignatureCheck, SignatureError};
    let now = chrono::Utc::now();
    let body = br#"{"object":"page"}"#;
    let headers = |pairs: &[(&'static str, String)]| {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    };
    let secret = standard::StandardSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let signed_at = now.timestamp();
    let schemes: Vec<(Box<dyn SignatureCheck>, HeaderMap, Vec<HeaderMap>)> = vec![
        (
            Box::new(MetaVerifier::new(vec![Secret::new("s")], Secret::new("t"))),
            headers(&[("x-hub-signature-256", sign("s", body))]),
            vec![
                headers(&[]),
                headers(&[("x-hub-signature-256", "sha256=00".into())]),
                headers(&[("x-hub-signature-256", format!("md5={}", "0".repeat(64)))]),
            ],
        ),
        (
            Box::new(x::XVerifier::new(vec![Secret::new("s")])),
            headers(&[(x::SIGNATURE_HEADER, x::verify::sign("s", body))]),
            vec![
                headers(&[]),
                headers(&[(x::SIGNATURE_HEADER, "sha256=not base64".into())]),
            ],
        ),
        (
            Box::new(telegram::SecretTokenVerifier::new(vec![Secret::new("tok")])),
            headers(&[(telegram::SECRET_TOKEN_HEADER, "tok".into())]),
            vec![
                headers(&[]),
                headers(&[(telegram::SECRET_TOKEN_HEADER, "wrong".into())]),
            ],
        ),
        (
            Box::new(standard::StandardVerifier::new(vec![secret.clone()])),
            headers(&[
                ("webhook-id", "msg_1".into()),
                ("webhook-timestamp", signed_at.to_string()),
                (
                    "webhook-signature",
                    standard::sign(&secret, "msg_1", signed_at, body),
                ),
            ]),
            vec![
                headers(&[]),
                headers(&[
                    ("webhook-id", "msg_1".into()),
                    ("webhook-timestamp", (signed_at - 3600).to_string()),
                    (
                        "webhook-signature",
                        standard::sign(&secret, "msg_1", signed_at - 3600, body),
                    ),
                ]),
            ],
        ),
    ];
    for (scheme, good, bad) in schemes {
        assert_eq!(scheme.precheck(&good, now), Ok(()), "{scheme:?}");
        assert_eq!(scheme.verify(&good, body, now), Ok(()), "{scheme:?}");
        for headers in bad {
            let early = scheme.precheck(&headers, now);
            assert!(early.is_err(), "{scheme:?} {headers:?}");
            assert!(scheme.verify(&headers, body, now).is_err());
            if headers.is_empty() {
                assert_eq!(early, Err(SignatureError::Missing));
            }
        }
    }
}
