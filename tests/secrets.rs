//! Channel secrets from Secrets Manager (moto): read once at start, several app secrets accepted,
//! and a clear error naming the setting when the secret is missing or malformed.

use switchboard_aws::assembly::channel_verification;
use switchboard_core::channels;
use switchboard_core::channels::meta::sign;
use switchboard_core::config::{ConfigError, Source};
use switchboard_tests::moto;

fn source(pairs: Vec<(&'static str, String)>) -> impl Source {
    move |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }
}

async fn secret(sdk: &aws_config::SdkConfig, name: &str, value: &str) -> String {
    aws_sdk_secretsmanager::Client::new(sdk)
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .expect("create secret")
        .arn()
        .expect("arn")
        .to_owned()
}

#[tokio::test]
async fn the_verifier_comes_from_the_secret_named_by_its_arn() {
    let sdk = moto().await.sdk_config().await;
    let name = format!("wa-{}", std::process::id());
    let arn = secret(
        &sdk,
        &name,
        r#"{"app_secrets": ["new-secret", "old-secret"], "verify_token": "vt-123"}"#,
    )
    .await;
    let verifier = channel_verification(
        &source(vec![("SWITCHBOARD_WHATSAPP_SECRET_ARN", arn)]),
        Some(&sdk),
        &channels::meta::WHATSAPP,
    )
    .await
    .expect("verifier");
    let now = chrono::Utc::now();
    for secret in ["new-secret", "old-secret"] {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            channels::meta::SIGNATURE_HEADER,
            sign(secret, b"{}").parse().unwrap(),
        );
        assert!(
            verifier.signature.verify(&headers, b"{}", now).is_ok(),
            "{secret}"
        );
    }
    let query = std::collections::HashMap::from([
        ("hub.mode".to_owned(), "subscribe".to_owned()),
        ("hub.verify_token".to_owned(), "vt-123".to_owned()),
        ("hub.challenge".to_owned(), "c".to_owned()),
    ]);
    assert_eq!(verifier.handshake.answer(&query, now).unwrap().body, "c");
}

#[tokio::test]
async fn a_missing_unreadable_or_empty_secret_stops_start_up_naming_the_setting() {
    let sdk = moto().await.sdk_config().await;
    let var = "SWITCHBOARD_WHATSAPP_SECRET_ARN";
    let missing = channel_verification(&source(vec![]), Some(&sdk), &channels::meta::WHATSAPP)
        .await
        .unwrap_err();
    assert!(
        matches!(&missing, ConfigError::Missing { name, .. } if name == var),
        "{missing}"
    );

    let unknown = channel_verification(
        &source(vec![(
            var,
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope".into(),
        )]),
        Some(&sdk),
        &channels::meta::WHATSAPP,
    )
    .await
    .unwrap_err();
    assert!(unknown.to_string().contains(var), "{unknown}");

    let pid = std::process::id();
    for (suffix, value) in [
        ("text", "not json"),
        ("empty", r#"{"app_secrets": [], "verify_token": "x"}"#),
        ("notoken", r#"{"app_secrets": ["s"]}"#),
    ] {
        let arn = secret(&sdk, &format!("bad-{suffix}-{pid}"), value).await;
        let err = channel_verification(
            &source(vec![(var, arn)]),
            Some(&sdk),
            &channels::meta::WHATSAPP,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { name, .. } if name == var),
            "{err}"
        );
        assert!(
            !err.to_string().contains("\"s\""),
            "the error never shows a secret: {err}"
        );
    }
}
