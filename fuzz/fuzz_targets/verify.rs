//! Every webhook's verification on arbitrary requests: the input is header lines
//! (`name: value`, also read as `key=value` query pairs for the handshake), a blank line, then
//! the body. `precheck`, `verify` and the handshake must answer without panicking, and a
//! request `verify` accepts must have passed `precheck` (a precheck never refuses what the
//! full check would accept).

#![no_main]

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::{TimeZone, Utc};
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use switchboard_core::channels::{ChannelSecrets, REGISTRY, Verification};

/// The secrets of the signed fixtures (published test values), so seeds reach the accepting
/// path; other fields get a development-style value.
fn secret_values(key: &str, dev_prefix: &str) -> Vec<String> {
    match key {
        "app_secrets" => vec![
            "1222e786b144d0e85b9f365372d93676".to_owned(),
            "APP_SECRET".to_owned(),
        ],
        "consumer_secrets" => vec!["test".to_owned()],
        "secret_tokens" => vec!["foo".to_owned()],
        _ => vec![format!("{dev_prefix}00112233445566778899aabbccddeeff")],
    }
}

static VERIFICATIONS: LazyLock<Vec<Verification>> = LazyLock::new(|| {
    REGISTRY
        .iter()
        .map(|module| {
            let mut secrets = ChannelSecrets::new("fuzz");
            for field in module.secrets() {
                secrets.set(field.key, secret_values(field.key, field.dev_prefix));
            }
            module.verification(&secrets).expect("valid fuzz secrets")
        })
        .collect()
});

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let mut headers = HeaderMap::new();
    let mut query = HashMap::new();
    for line in head.split(|b| *b == b'\n') {
        if let Some(colon) = line.iter().position(|b| *b == b':') {
            let value = line[colon + 1..]
                .strip_prefix(b" ")
                .unwrap_or(&line[colon + 1..]);
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(&line[..colon]),
                HeaderValue::from_bytes(value),
            ) {
                headers.append(name, value);
            }
        }
        if let Some(eq) = line.iter().position(|b| *b == b'=') {
            query.insert(
                String::from_utf8_lossy(&line[..eq]).into_owned(),
                String::from_utf8_lossy(&line[eq + 1..]).into_owned(),
            );
        }
    }
    let now = Utc.timestamp_opt(1_767_225_600, 0).unwrap();
    for verification in VERIFICATIONS.iter() {
        let pre = verification.signature.precheck(&headers, now);
        let full = verification.signature.verify(&headers, body, now);
        assert!(
            full.is_err() || pre.is_ok(),
            "precheck refused a request verify accepts"
        );
        let _ = verification.handshake.answer(&query, now);
    }
});
