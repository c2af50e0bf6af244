//! Meta webhook verification: the subscription handshake and `X-Hub-Signature-256`.
//!
//! Meta signs every POST with HMAC-SHA256 of the exact raw body under the app secret, and sends it
//! as `X-Hub-Signature-256: sha256=<64 hex digits>`. The check runs over the bytes as received,
//! before any parsing, and compares in constant time (`hmac`'s `verify_slice`). Several secrets
//! may be active at once, so an app secret can be rotated without dropping deliveries: a
//! signature made with any of them is accepted.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

/// The header Meta puts the signature in.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

type HmacSha256 = Hmac<Sha256>;

/// A secret value: its `Debug` never shows it, so it cannot end up in a log by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Why a signature was refused. Every variant is a 401; the variant only goes to the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `X-Hub-Signature-256` header.
    #[error("signature header missing")]
    Missing,
    /// The header is not `sha256=` and 64 hex digits.
    #[error("signature header malformed")]
    Malformed,
    /// Well-formed, but no configured secret produces it over these bytes.
    #[error("signature does not match")]
    Mismatch,
}

/// The secrets and verify token of one Meta app (one channel).
#[derive(Clone, Debug)]
pub struct MetaVerifier {
    app_secrets: Vec<Secret>,
    verify_token: Secret,
}

/// Why a subscription handshake was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// `hub.mode`, `hub.verify_token` or `hub.challenge` is missing: not a Meta handshake.
    #[error("hub.mode, hub.verify_token and hub.challenge are required")]
    Incomplete,
    /// `hub.mode` is not `subscribe` or the token is wrong.
    #[error("verify token or mode rejected")]
    Rejected,
}

impl MetaVerifier {
    /// A verifier accepting signatures by any of `app_secrets`.
    ///
    /// # Panics
    /// Never; an empty list is allowed and then refuses every signature. Configuration loading
    /// refuses an empty list before it gets here.
    pub fn new(app_secrets: Vec<Secret>, verify_token: Secret) -> Self {
        Self {
            app_secrets,
            verify_token,
        }
    }

    /// Checks the header value against the raw body.
    pub fn verify(&self, header: Option<&[u8]>, body: &[u8]) -> Result<(), SignatureError> {
        let header = header.ok_or(SignatureError::Missing)?;
        let hex_digest = header
            .strip_prefix(b"sha256=")
            .ok_or(SignatureError::Malformed)?;
        if hex_digest.len() != 64 {
            return Err(SignatureError::Malformed);
        }
        let expected = hex::decode(hex_digest).map_err(|_| SignatureError::Malformed)?;
        let mut matched = false;
        // Try every secret, without stopping at the first match, so the time taken does not tell
        // which secret matched.
        for secret in &self.app_secrets {
            let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
                .expect("HMAC accepts keys of any length");
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
    pub fn handshake<'a>(
        &self,
        mode: Option<&str>,
        token: Option<&str>,
        challenge: Option<&'a str>,
    ) -> Result<&'a str, HandshakeError> {
        let (Some(mode), Some(token), Some(challenge)) = (mode, token, challenge) else {
            return Err(HandshakeError::Incomplete);
        };
        let token_ok = constant_time_eq(token.as_bytes(), self.verify_token.expose().as_bytes());
        if mode == "subscribe" && token_ok {
            Ok(challenge)
        } else {
            Err(HandshakeError::Rejected)
        }
    }
}

/// Equality whose time depends on the lengths only, not on where the inputs differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // An HMAC of both under a fixed key turns the comparison into `verify_slice`'s constant-time
    // one without a hand-rolled loop.
    let tag = |x: &[u8]| {
        let mut m = HmacSha256::new_from_slice(b"switchboard-token-compare").expect("any key");
        m.update(x);
        m
    };
    let a_tag = tag(a).finalize().into_bytes();
    tag(b).verify_slice(&a_tag).is_ok()
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
            v.handshake(Some("subscribe"), Some("tok-8e2f"), Some("42")),
            Ok("42")
        );
        assert_eq!(
            v.handshake(Some("subscribe"), Some("tok2"), Some("42")),
            Err(HandshakeError::Rejected)
        );
        assert_eq!(
            v.handshake(Some("unsubscribe"), Some("tok-8e2f"), Some("42")),
            Err(HandshakeError::Rejected)
        );
        assert_eq!(
            v.handshake(Some("subscribe"), None, Some("42")),
            Err(HandshakeError::Incomplete)
        );
    }

    #[test]
    fn secret_debug_hides_the_value() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
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
            let _ = v.verify(Some(&header), &body);
        }

        #[test]
        fn a_signature_verifies_only_over_the_signed_bytes(
            body in proptest::collection::vec(proptest::num::u8::ANY, 1..200),
            flip in 0usize..200,
        ) {
            let v = verifier();
            let sig = sign("old", &body);
            proptest::prop_assert!(v.verify(Some(sig.as_bytes()), &body).is_ok());
            let mut tampered = body.clone();
            let i = flip % tampered.len();
            tampered[i] ^= 1;
            proptest::prop_assert_eq!(v.verify(Some(sig.as_bytes()), &tampered), Err(SignatureError::Mismatch));
        }
    }
}
