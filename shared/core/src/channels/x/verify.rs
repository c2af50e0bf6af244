//! X (Account Activity API) webhook verification: the CRC and `x-twitter-webhooks-signature`.
//!
//! * Every `POST` carries `x-twitter-webhooks-signature: sha256=<base64 HMAC-SHA256 of the
//!   raw body under the app's consumer secret>`; several secrets may be active (a rotation),
//!   each compared in constant time (`hmac`'s `verify_slice`).
//! * X checks the webhook with a challenge-response check (CRC) when it is registered and
//!   about hourly after: `GET ?crc_token=T` is answered `200 {"response_token":
//!   "sha256=<base64 HMAC-SHA256 of T under the consumer secret>"}` from memory (X allows three
//!   seconds), with the first (current) secret; without a token it is 400.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::Sha256;
use std::collections::HashMap;

use crate::verify::{
    Handshake, HandshakeError, HandshakeReply, HmacKey, Secret, SignatureCheck, SignatureError,
};

/// The header X puts the signature in.
pub const SIGNATURE_HEADER: &str = "x-twitter-webhooks-signature";

/// The longest CRC token answered (X's are 48 characters or so).
const MAX_CRC_TOKEN: usize = 512;

type HmacSha256 = Hmac<Sha256>;

/// `sha256=<base64 HMAC-SHA256(secret, data)>`, X's form of a signature.
pub fn sign(secret: &str, data: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(data);
    format!("sha256={}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The consumer secrets of one X app: its [`SignatureCheck`] and its CRC [`Handshake`].
#[derive(Debug, Clone)]
pub struct XVerifier {
    consumer_secrets: Vec<Secret>,
    keys: Vec<HmacKey>,
}

impl XVerifier {
    /// A verifier accepting signatures by any of `consumer_secrets`, answering the CRC with
    /// the first (an empty list refuses everything; configuration refuses it before).
    pub fn new(consumer_secrets: Vec<Secret>) -> Self {
        let keys = consumer_secrets
            .iter()
            .map(|s| HmacKey::new(s.expose().as_bytes()))
            .collect();
        Self {
            consumer_secrets,
            keys,
        }
    }
}

/// The digest the `sha256=<base64>` signature header carries.
fn expected_digest(headers: &HeaderMap) -> Result<Vec<u8>, SignatureError> {
    let header = headers
        .get(SIGNATURE_HEADER)
        .ok_or(SignatureError::Missing)?
        .as_bytes();
    let encoded = header
        .strip_prefix(b"sha256=")
        .ok_or(SignatureError::Malformed)?;
    let expected = STANDARD
        .decode(encoded)
        .map_err(|_| SignatureError::Malformed)?;
    if expected.len() != 32 {
        return Err(SignatureError::Malformed);
    }
    Ok(expected)
}

impl SignatureCheck for XVerifier {
    fn precheck(&self, headers: &HeaderMap, _: DateTime<Utc>) -> Result<(), SignatureError> {
        expected_digest(headers).map(drop)
    }

    fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        _: DateTime<Utc>,
    ) -> Result<(), SignatureError> {
        let expected = expected_digest(headers)?;
        // Every secret is tried, so the time taken does not tell which one matched.
        let mut matched = false;
        for key in &self.keys {
            let mut mac = key.mac();
            mac.update(body);
            matched |= mac.verify_slice(&expected).is_ok();
        }
        if matched {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }
}

impl Handshake for XVerifier {
    fn answer(
        &self,
        query: &HashMap<String, String>,
        _: DateTime<Utc>,
    ) -> Result<HandshakeReply, HandshakeError> {
        let token = query
            .get("crc_token")
            .filter(|t| !t.is_empty() && t.len() <= MAX_CRC_TOKEN)
            .ok_or(HandshakeError::Incomplete(
                "X's CRC needs crc_token (GET ?crc_token=…)",
            ))?;
        let secret = self
            .consumer_secrets
            .first()
            .ok_or(HandshakeError::Rejected)?;
        let response =
            serde_json::json!({ "response_token": sign(secret.expose(), token.as_bytes()) });
        Ok(HandshakeReply {
            content_type: "application/json",
            body: response.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn verifier(secrets: &[&str]) -> XVerifier {
        XVerifier::new(secrets.iter().map(|s| Secret::new(*s)).collect())
    }

    fn headers(value: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = value {
            h.insert(SIGNATURE_HEADER, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn a_signed_body_passes_and_a_tampered_truncated_or_prefixless_one_does_not() {
        let body = br#"{"for_user_id":"42"}"#;
        let v = verifier(&["consumer-secret"]);
        let good = sign("consumer-secret", body);
        let now = Utc::now();
        assert_eq!(v.verify(&headers(Some(&good)), body, now), Ok(()));
        assert_eq!(
            v.verify(&headers(Some(&good)), br#"{"for_user_id":"43"}"#, now),
            Err(SignatureError::Mismatch)
        );
        let truncated = &good[..good.len() - 4];
        assert_eq!(
            v.verify(&headers(Some(truncated)), body, now),
            Err(SignatureError::Malformed)
        );
        let bare = good.trim_start_matches("sha256=");
        assert_eq!(
            v.verify(&headers(Some(bare)), body, now),
            Err(SignatureError::Malformed)
        );
        let hex_form = format!("sha256={}", "0".repeat(64));
        assert_eq!(
            v.verify(&headers(Some(&hex_form)), body, now),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            v.verify(&headers(None), body, now),
            Err(SignatureError::Missing)
        );
        let other = sign("another-app", body);
        assert_eq!(
            v.verify(&headers(Some(&other)), body, now),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn during_a_rotation_both_secrets_sign_and_the_crc_uses_the_first() {
        let body = b"{}";
        let v = verifier(&["new", "old"]);
        for secret in ["new", "old"] {
            assert!(
                v.verify(&headers(Some(&sign(secret, body))), body, Utc::now())
                    .is_ok()
            );
        }
        let query = HashMap::from([("crc_token".to_owned(), "challenge".to_owned())]);
        let reply = v.answer(&query, Utc::now()).unwrap();
        let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(json["response_token"], sign("new", b"challenge"));
        assert_eq!(reply.content_type, "application/json");
        assert!(matches!(
            v.answer(&HashMap::new(), Utc::now()),
            Err(HandshakeError::Incomplete(_))
        ));
    }

    proptest! {
        #[test]
        fn arbitrary_headers_and_bodies_never_panic_and_never_pass(
            header in "[ -~]{0,120}",
            body in prop::collection::vec(any::<u8>(), 0..64),
            token in "[ -~]{0,600}",
        ) {
            let v = verifier(&["consumer-secret"]);
            prop_assert!(v.verify(&headers(Some(&header)), &body, Utc::now()).is_err()
                || header == sign("consumer-secret", &body));
            let _ = v.answer(&HashMap::from([("crc_token".to_owned(), token)]), Utc::now());
        }
    }
}
