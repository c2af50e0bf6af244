//! Telegram webhook verification: `X-Telegram-Bot-Api-Secret-Token`.
//!
//! Telegram signs nothing: `setWebhook` takes a `secret_token` (1–256 characters of `A-Z`,
//! `a-z`, `0-9`, `_` and `-`) and Telegram sends it back in this header with every update. The
//! check compares it, in constant time, with every configured token (several during a
//! rotation), before anything of the body is read. There is no timestamp to check and no
//! handshake (a `GET` is 400).

use chrono::{DateTime, Utc};
use http::HeaderMap;

use crate::verify::{Secret, SignatureCheck, SignatureError, constant_time_eq};

/// The header Telegram puts the secret token in.
pub const SECRET_TOKEN_HEADER: &str = "x-telegram-bot-api-secret-token";

/// The longest secret token Telegram accepts.
pub const MAX_TOKEN_LEN: usize = 256;

/// Whether `token` is one Telegram's `setWebhook` accepts: 1–256 of `A-Z a-z 0-9 _ -`.
pub fn valid_token(token: &str) -> bool {
    (1..=MAX_TOKEN_LEN).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// The secret tokens of one bot's webhook.
#[derive(Debug, Clone)]
pub struct SecretTokenVerifier {
    tokens: Vec<Secret>,
}

impl SecretTokenVerifier {
    /// A verifier accepting any of `tokens` (an empty list refuses everything; configuration
    /// refuses it before it gets here).
    pub fn new(tokens: Vec<Secret>) -> Self {
        Self { tokens }
    }
}

impl SignatureCheck for SecretTokenVerifier {
    /// The whole check: the token is a header, the body plays no part.
    fn precheck(&self, headers: &HeaderMap, now: DateTime<Utc>) -> Result<(), SignatureError> {
        self.verify(headers, &[], now)
    }

    fn verify(
        &self,
        headers: &HeaderMap,
        _: &[u8],
        _: DateTime<Utc>,
    ) -> Result<(), SignatureError> {
        let given = headers
            .get(SECRET_TOKEN_HEADER)
            .ok_or(SignatureError::Missing)?
            .as_bytes();
        if given.is_empty() || given.len() > MAX_TOKEN_LEN {
            return Err(SignatureError::Malformed);
        }
        // Every token is compared, so the time taken does not tell which one matched.
        let mut matched = false;
        for token in &self.tokens {
            matched |= constant_time_eq(given, token.expose().as_bytes());
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
    use proptest::prelude::*;

    fn headers(token: Option<&[u8]>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(t) = token {
            h.insert(
                SECRET_TOKEN_HEADER,
                http::HeaderValue::from_bytes(t).unwrap(),
            );
        }
        h
    }

    fn verifier(tokens: &[&str]) -> SecretTokenVerifier {
        SecretTokenVerifier::new(tokens.iter().map(|t| Secret::new(*t)).collect())
    }

    #[test]
    fn the_configured_token_passes_and_anything_else_is_refused() {
        let now = Utc::now();
        let v = verifier(&["s3cr3t_token-A"]);
        assert_eq!(
            v.verify(&headers(Some(b"s3cr3t_token-A")), b"{}", now),
            Ok(())
        );
        for (given, error) in [
            (Some(&b"s3cr3t_token-B"[..]), SignatureError::Mismatch),
            (Some(b"s3cr3t_token-"), SignatureError::Mismatch),
            (Some(b"s3cr3t_token-AA"), SignatureError::Mismatch),
            (Some(b"S3CR3T_TOKEN-A"), SignatureError::Mismatch),
            (Some(b""), SignatureError::Malformed),
            (None, SignatureError::Missing),
        ] {
            assert_eq!(
                v.verify(&headers(given), b"{}", now),
                Err(error),
                "{given:?}"
            );
        }
        let long = vec![b'a'; MAX_TOKEN_LEN + 1];
        assert_eq!(
            v.verify(&headers(Some(&long)), b"{}", now),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn during_a_rotation_both_tokens_pass() {
        let v = verifier(&["new-token", "old-token"]);
        for t in ["new-token", "old-token"] {
            assert!(
                v.verify(&headers(Some(t.as_bytes())), b"", Utc::now())
                    .is_ok()
            );
        }
        assert!(
            verifier(&[])
                .verify(&headers(Some(b"x")), b"", Utc::now())
                .is_err()
        );
    }

    #[test]
    fn tokens_telegram_accepts() {
        assert!(valid_token("abc_DEF-123"));
        assert!(valid_token(&"a".repeat(256)));
        for bad in ["", "has space", "dots.no", "ñ", &"a".repeat(257)] {
            assert!(!valid_token(bad), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_headers_never_panic_and_never_pass(
            token in prop::collection::vec(any::<u8>(), 0..300),
            body in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let v = verifier(&["the-real-token"]);
            let mut h = HeaderMap::new();
            if let Ok(value) = http::HeaderValue::from_bytes(&token) {
                h.insert(SECRET_TOKEN_HEADER, value);
            }
            let ok = v.verify(&h, &body, Utc::now()).is_ok();
            prop_assert_eq!(ok, token == b"the-real-token");
        }
    }
}
