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
