//! Meta webhook verification: the subscription handshake and `X-Hub-Signature-256`.
//!
//! Meta signs every POST with HMAC-SHA256 of the exact raw body under the app secret, and sends it
//! as `X-Hub-Signature-256: sha256=<64 hex digits>`. The check runs over the bytes as received,
//! before any parsing, and compares in constant time (`hmac`'s `verify_slice`). Several secrets
//! may be active at once, so an app secret can be rotated without dropping deliveries: a
//! signature made with any of them is accepted. The scheme signs no timestamp, so the clock is
//! not consulted.

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::Sha256;
use std::collections::HashMap;

use crate::verify::{
    Handshake, HandshakeError, HandshakeReply, HmacKey, Secret, SignatureCheck, SignatureError,
    constant_time_eq,
};

/// The header Meta puts the signature in.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

type HmacSha256 = Hmac<Sha256>;

/// The secrets and verify token of one Meta app (one webhook): its [`SignatureCheck`] and its
/// [`Handshake`].
#[derive(Clone, Debug)]
pub struct MetaVerifier {
    app_keys: Vec<HmacKey>,
    verify_token: Secret,
}

impl MetaVerifier {
    /// A verifier accepting signatures by any of `app_secrets`.
    ///
    /// # Panics
    /// Never; an empty list is allowed and then refuses every signature. Configuration loading
    /// refuses an empty list before it gets here.
    pub fn new(app_secrets: Vec<Secret>, verify_token: Secret) -> Self {
        Self {
            app_keys: app_secrets
                .iter()
                .map(|s| HmacKey::new(s.expose().as_bytes()))
                .collect(),
            verify_token,
        }
    }

    /// Checks the header value against the raw body.
    pub fn verify_header(&self, header: Option<&[u8]>, body: &[u8]) -> Result<(), SignatureError> {
        let expected = expected_digest(header)?;
        let mut matched = false;
        // Try every secret, without stopping at the first match, so the time taken does not tell
        // which secret matched.
        for key in &self.app_keys {
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

    /// Answers the GET handshake: returns the challenge to echo when the mode is `subscribe`
    /// and the token matches.
    pub fn challenge<'a>(
        &self,
        mode: Option<&str>,
        token: Option<&str>,
        challenge: Option<&'a str>,
    ) -> Result<&'a str, HandshakeError> {
        let (Some(mode), Some(token), Some(challenge)) = (mode, token, challenge) else {
            return Err(HandshakeError::Incomplete(
                "hub.mode, hub.verify_token and hub.challenge are required",
            ));
        };
        let token_ok = constant_time_eq(token.as_bytes(), self.verify_token.expose().as_bytes());
        if mode == "subscribe" && token_ok {
            Ok(challenge)
        } else {
            Err(HandshakeError::Rejected)
        }
    }
}

/// The digest a `sha256=<64 hex digits>` header carries.
fn expected_digest(header: Option<&[u8]>) -> Result<Vec<u8>, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let hex_digest = header
        .strip_prefix(b"sha256=")
        .ok_or(SignatureError::Malformed)?;
    if hex_digest.len() != 64 {
        return Err(SignatureError::Malformed);
    }
    hex::decode(hex_digest).map_err(|_| SignatureError::Malformed)
}

impl SignatureCheck for MetaVerifier {
    fn precheck(&self, headers: &HeaderMap, _: DateTime<Utc>) -> Result<(), SignatureError> {
        expected_digest(headers.get(SIGNATURE_HEADER).map(|v| v.as_bytes())).map(drop)
    }

    fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        _now: DateTime<Utc>,
    ) -> Result<(), SignatureError> {
        self.verify_header(headers.get(SIGNATURE_HEADER).map(|v| v.as_bytes()), body)
    }
}

impl Handshake for MetaVerifier {
    fn answer(
        &self,
        query: &HashMap<String, String>,
        _now: DateTime<Utc>,
    ) -> Result<HandshakeReply, HandshakeError> {
        let get = |name: &str| query.get(name).map(String::as_str);
        let challenge = self.challenge(
            get("hub.mode"),
            get("hub.verify_token"),
            get("hub.challenge"),
        )?;
        Ok(HandshakeReply {
            content_type: "text/plain; charset=utf-8",
            body: challenge.to_owned(),
        })
    }
}

/// Signs `body` the way Meta does, giving the full header value (`sha256=<hex>`). For tests and
/// for sending sample webhooks to a local server.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier() -> MetaVerifier {
        MetaVerifier::new(
            vec![Secret::new("new"), Secret::new("old")],
            Secret::new("tok-8e2f"),
        )
    }

    #[test]
    fn handshake_echoes_the_challenge_only_for_the_right_token() {
        let v = verifier();
        assert_eq!(
            v.challenge(Some("subscribe"), Some("tok-8e2f"), Some("42")),
            Ok("42")
        );
        assert_eq!(
            v.challenge(Some("subscribe"), Some("tok2"), Some("42")),
            Err(HandshakeError::Rejected)
        );
        assert_eq!(
            v.challenge(Some("unsubscribe"), Some("tok-8e2f"), Some("42")),
            Err(HandshakeError::Rejected)
        );
        assert!(matches!(
            v.challenge(Some("subscribe"), None, Some("42")),
            Err(HandshakeError::Incomplete(_))
        ));
        let query = HashMap::from([
            ("hub.mode".to_owned(), "subscribe".to_owned()),
            ("hub.verify_token".to_owned(), "tok-8e2f".to_owned()),
            ("hub.challenge".to_owned(), "1158201444".to_owned()),
        ]);
        let reply = v.answer(&query, Utc::now()).unwrap();
        assert_eq!(reply.body, "1158201444");
        assert!(reply.content_type.starts_with("text/plain"));
    }

    #[test]
    fn the_check_reads_the_signature_header_of_the_request() {
        let v = verifier();
        let body = br#"{"object":"page"}"#;
        let mut headers = HeaderMap::new();
        assert_eq!(
            v.verify(&headers, body, Utc::now()),
            Err(SignatureError::Missing)
        );
        headers.insert(SIGNATURE_HEADER, sign("new", body).parse().unwrap());
        assert_eq!(v.verify(&headers, body, Utc::now()), Ok(()));
        headers.insert(SIGNATURE_HEADER, sign("gone", body).parse().unwrap());
        assert_eq!(
            v.verify(&headers, body, Utc::now()),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_verifier_debug_hides_its_secrets() {
        assert!(!format!("{:?}", verifier()).contains("tok-8e2f"));
        assert!(!format!("{:?}", verifier()).contains("old"));
    }

    proptest::proptest! {
        #[test]
        fn any_header_and_body_is_answered_without_panicking(
            header in proptest::collection::vec(proptest::num::u8::ANY, 0..100),
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..200),
        ) {
            let v = verifier();
            let _ = v.verify_header(Some(&header), &body);
        }

        #[test]
        fn a_signature_verifies_only_over_the_signed_bytes(
            body in proptest::collection::vec(proptest::num::u8::ANY, 1..200),
            flip in 0usize..200,
        ) {
            let v = verifier();
            let sig = sign("old", &body);
            proptest::prop_assert!(v.verify_header(Some(sig.as_bytes()), &body).is_ok());
            let mut tampered = body.clone();
            let i = flip % tampered.len();
            tampered[i] ^= 1;
            proptest::prop_assert_eq!(v.verify_header(Some(sig.as_bytes()), &tampered), Err(SignatureError::Mismatch));
        }
    }
}
