//! Standard Webhooks verification (<https://www.standardwebhooks.com>), the open specification
//! of Svix, Zapier, Twilio Segment and others: what a web chat widget, a contact form or an
//! in-house system signs its deliveries with.
//!
//! Three headers: `webhook-id` (the delivery's id, its idempotency key), `webhook-timestamp`
//! (Unix seconds) and `webhook-signature`: one or more space-separated `v1,<base64>`
//! signatures. Each is the HMAC-SHA256 of `id.timestamp.body` under the secret, which is
//! configured as `whsec_<base64>` (the bytes after the prefix, base64-decoded, are the key).
//! A timestamp more than [`TOLERANCE`] from the injected clock is refused (a replay, or a clock
//! far off). Several secrets may be active (rotation); every signature of the header is tried
//! under every secret, in constant time each, without stopping early.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderName};
use sha2::Sha256;

use crate::verify::{HmacKey, SignatureCheck, SignatureError};

/// The header of the delivery's id.
pub const ID_HEADER: &str = "webhook-id";
/// The header of the signed Unix time.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// The header of the signatures.
pub const SIGNATURE_HEADER: &str = "webhook-signature";
/// How far the signed time may be from now.
pub const TOLERANCE: Duration = Duration::minutes(5);

type HmacSha256 = Hmac<Sha256>;

/// Why a configured secret is not a Standard Webhooks secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a Standard Webhooks secret is whsec_ followed by base64 (at least 16 bytes)")]
pub struct BadSecret;

/// The key of a `whsec_<base64>` secret.
#[derive(Clone)]
pub struct StandardSecret(Vec<u8>);

impl std::fmt::Debug for StandardSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StandardSecret(***)")
    }
}

impl StandardSecret {
    /// The key of `text` (`whsec_` and base64 of at least 16 bytes).
    pub fn parse(text: &str) -> Result<Self, BadSecret> {
        let encoded = text.trim().strip_prefix("whsec_").ok_or(BadSecret)?;
        let key = STANDARD.decode(encoded).map_err(|_| BadSecret)?;
        if key.len() < 16 {
            return Err(BadSecret);
        }
        Ok(Self(key))
    }
}

/// Signs `body` as a sender does: the `webhook-signature` value for `id` at `timestamp` (Unix
/// seconds) under `secret`. For tests and for the README's example sender.
pub fn sign(secret: &StandardSecret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let mac = HmacSha256::new_from_slice(&secret.0).expect("HMAC accepts keys of any length");
    let mac = signed(mac, id, timestamp, body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// `mac` over what a Standard Webhooks signature signs: `id.timestamp.` then the body, fed in
/// parts (no text is built for the prefix).
fn signed(mut mac: HmacSha256, id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut timestamp_text = itoa::Buffer::new();
    let timestamp_text = timestamp_text.format(timestamp).as_bytes();
    for part in [id.as_bytes(), b".", timestamp_text, b".", body] {
        mac.update(part);
    }
    mac
}

/// The signature check of a Standard Webhooks source.
#[derive(Debug, Clone)]
pub struct StandardVerifier {
    keys: Vec<HmacKey>,
}

impl StandardVerifier {
    /// A verifier accepting signatures by any of `secrets` (none: every delivery refused).
    pub fn new(secrets: Vec<StandardSecret>) -> Self {
        Self {
            keys: secrets.iter().map(|s| HmacKey::new(&s.0)).collect(),
        }
    }
}

/// The three headers' names, made once (a lookup by `&str` parses the name every time).
const ID_NAME: HeaderName = HeaderName::from_static(ID_HEADER);
const TIMESTAMP_NAME: HeaderName = HeaderName::from_static(TIMESTAMP_HEADER);
const SIGNATURE_NAME: HeaderName = HeaderName::from_static(SIGNATURE_HEADER);

fn header<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<&'a str, SignatureError> {
    headers
        .get(name)
        .ok_or(SignatureError::Missing)?
        .to_str()
        .map_err(|_| SignatureError::Malformed)
}

/// The signed headers: the id, the time in Unix seconds and the `v1` signatures.
fn signed_headers(
    headers: &HeaderMap,
    now: DateTime<Utc>,
) -> Result<(&str, i64, Vec<Vec<u8>>), SignatureError> {
    let id = header(headers, &ID_NAME)?;
    let timestamp = header(headers, &TIMESTAMP_NAME)?;
    let signatures = header(headers, &SIGNATURE_NAME)?;
    if id.is_empty() || id.len() > 256 {
        return Err(SignatureError::Malformed);
    }
    let seconds: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::Malformed)?;
    let signed_at = DateTime::<Utc>::from_timestamp(seconds, 0).ok_or(SignatureError::Malformed)?;
    if (now - signed_at).abs() > TOLERANCE {
        return Err(SignatureError::Stale);
    }
    let mut candidates = Vec::new();
    for part in signatures.split(' ').filter(|p| !p.is_empty()) {
        let (version, value) = part.split_once(',').ok_or(SignatureError::Malformed)?;
        if version != "v1" {
            // Other versions (v1a: asymmetric) are not ours to check; skip them.
            continue;
        }
        let bytes = STANDARD
            .decode(value)
            .map_err(|_| SignatureError::Malformed)?;
        candidates.push(bytes);
    }
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    Ok((id, seconds, candidates))
}

impl SignatureCheck for StandardVerifier {
    fn precheck(&self, headers: &HeaderMap, now: DateTime<Utc>) -> Result<(), SignatureError> {
        signed_headers(headers, now).map(drop)
    }

    fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), SignatureError> {
        let (id, seconds, candidates) = signed_headers(headers, now)?;
        let mut matched = false;
        for key in &self.keys {
            let mac = signed(key.mac(), id, seconds, body);
            for candidate in &candidates {
                matched |= mac.clone().verify_slice(candidate).is_ok();
            }
        }
        if matched {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    /// The specification's published test vector.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers(id: &str, timestamp: &str, signature: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(ID_HEADER, id.parse().unwrap());
        h.insert(TIMESTAMP_HEADER, timestamp.parse().unwrap());
        h.insert(SIGNATURE_HEADER, signature.parse().unwrap());
        h
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(seconds, 0).unwrap()
    }

    fn verifier(secrets: &[&str]) -> StandardVerifier {
        StandardVerifier::new(
            secrets
                .iter()
                .map(|s| StandardSecret::parse(s).unwrap())
                .collect(),
        )
    }

    #[test]
    fn the_specifications_vector_is_signed_and_accepted() {
        let secret = StandardSecret::parse(SECRET).unwrap();
        assert_eq!(sign(&secret, ID, TIMESTAMP, BODY), SIGNATURE);
        let h = headers(ID, &TIMESTAMP.to_string(), SIGNATURE);
        assert_eq!(verifier(&[SECRET]).verify(&h, BODY, at(TIMESTAMP)), Ok(()));
        // Within five minutes either way.
        assert_eq!(
            verifier(&[SECRET]).verify(&h, BODY, at(TIMESTAMP + 299)),
            Ok(())
        );
        assert_eq!(
            verifier(&[SECRET]).verify(&h, BODY, at(TIMESTAMP - 299)),
            Ok(())
        );
    }

    #[test]
    fn a_stale_or_future_timestamp_is_refused() {
        let h = headers(ID, &TIMESTAMP.to_string(), SIGNATURE);
        for now in [TIMESTAMP + 301, TIMESTAMP - 301, TIMESTAMP + 86_400] {
            assert_eq!(
                verifier(&[SECRET]).verify(&h, BODY, at(now)),
                Err(SignatureError::Stale),
                "{now}"
            );
        }
    }

    #[test]
    fn tampering_with_any_signed_part_is_refused() {
        let v = verifier(&[SECRET]);
        let now = at(TIMESTAMP);
        let tampered_body = br#"{"test": 2432232315}"#;
        assert_eq!(
            v.verify(
                &headers(ID, &TIMESTAMP.to_string(), SIGNATURE),
                tampered_body,
                now
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            v.verify(
                &headers("msg_other", &TIMESTAMP.to_string(), SIGNATURE),
                BODY,
                now
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            v.verify(
                &headers(ID, &(TIMESTAMP + 1).to_string(), SIGNATURE),
                BODY,
                now
            ),
            Err(SignatureError::Mismatch)
        );
        let truncated = &SIGNATURE[..SIGNATURE.len() - 4];
        assert!(
            v.verify(&headers(ID, &TIMESTAMP.to_string(), truncated), BODY, now)
                .is_err()
        );
    }

    #[test]
    fn every_header_missing_or_malformed_is_refused() {
        let v = verifier(&[SECRET]);
        let now = at(TIMESTAMP);
        let ts = TIMESTAMP.to_string();
        for name in [ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER] {
            let mut h = headers(ID, &ts, SIGNATURE);
            h.remove(name);
            assert_eq!(
                v.verify(&h, BODY, now),
                Err(SignatureError::Missing),
                "{name}"
            );
        }
        for (timestamp, signature) in [
            ("yesterday", SIGNATURE),
            (ts.as_str(), "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
            (ts.as_str(), "v1,not base64!"),
            (ts.as_str(), "sha256=abc"),
            (
                ts.as_str(),
                "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
        ] {
            assert!(
                v.verify(&headers(ID, timestamp, signature), BODY, now)
                    .is_err(),
                "{timestamp} {signature}"
            );
        }
        assert_eq!(
            StandardSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err(),
            BadSecret,
            "the whsec_ prefix is required"
        );
        assert!(
            StandardSecret::parse("whsec_c2hvcnQ=").is_err(),
            "too short a key"
        );
    }

    #[test]
    fn several_signatures_and_several_secrets_rotate() {
        let old = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let new = "whsec_bmV3LXNlY3JldC0wMTIzNDU2Nzg5YWJjZGVm";
        let now = at(TIMESTAMP);
        let ts = TIMESTAMP.to_string();
        let by_new = sign(&StandardSecret::parse(new).unwrap(), ID, TIMESTAMP, BODY);
        // A sender signing with both during its rotation; a receiver knowing either.
        let both = format!("{by_new} {SIGNATURE}");
        for secrets in [&[old][..], &[new][..], &[new, old][..]] {
            assert_eq!(
                verifier(secrets).verify(&headers(ID, &ts, &both), BODY, now),
                Ok(())
            );
        }
        assert_eq!(
            verifier(&[new]).verify(&headers(ID, &ts, SIGNATURE), BODY, now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            StandardVerifier::new(Vec::new()).verify(&headers(ID, &ts, SIGNATURE), BODY, now),
            Err(SignatureError::Mismatch)
        );
    }

    proptest! {
        #[test]
        fn arbitrary_headers_and_bodies_never_panic(
            id in ".{0,300}",
            timestamp in ".{0,24}",
            signature in ".{0,200}",
            body in proptest::collection::vec(any::<u8>(), 0..512),
            now in 0_i64..4_000_000_000,
        ) {
            let mut h = HeaderMap::new();
            for (name, value) in [(ID_HEADER, &id), (TIMESTAMP_HEADER, &timestamp), (SIGNATURE_HEADER, &signature)] {
                if let Ok(v) = value.parse() {
                    h.insert(name, v);
                }
            }
            let _ = verifier(&[SECRET]).verify(&h, &body, at(now));
        }
    }
}
