//! Webhook verification, whatever the channel: the two hooks a channel module gives
//! ([`SignatureCheck`] for every `POST`, [`Handshake`] for the `GET` a provider sends to
//! subscribe), the errors they answer with, and [`Secret`], which never shows in a log.
//!
//! A check sees the request's headers, its raw body exactly as received (before any parsing)
//! and the time from an injected clock, so a scheme that signs a timestamp (Standard Webhooks,
//! X) can refuse a stale or replayed request and be tested at any instant. Comparisons of
//! signatures and tokens are constant-time: [`constant_time_eq`], or `hmac`'s `verify_slice`.

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::Sha256;
use std::collections::HashMap;
use std::fmt;

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

/// An HMAC-SHA256 key made ready once: the key's inner and outer blocks are hashed when it is
/// built, and each signature check starts from a copy of that state instead of hashing them
/// again (two of the dozen SHA-256 blocks of a one-message delivery). Its `Debug` never shows
/// the key.
#[derive(Clone)]
pub struct HmacKey(Hmac<Sha256>);

impl HmacKey {
    /// The key `secret` (any length).
    pub fn new(secret: &[u8]) -> Self {
        Self(Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length"))
    }

    /// A MAC under this key, ready for the signed bytes.
    pub fn mac(&self) -> Hmac<Sha256> {
        self.0.clone()
    }
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacKey(***)")
    }
}

/// Why a signature was refused. Every variant is a 401; the variant only goes to the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature header (or one the scheme needs beside it) is missing.
    #[error("signature header missing")]
    Missing,
    /// A header is not of the form the scheme defines.
    #[error("signature header malformed")]
    Malformed,
    /// Well-formed, but no configured secret produces it over these bytes.
    #[error("signature does not match")]
    Mismatch,
    /// The signed timestamp is too far from now (a replay, or a clock far off).
    #[error("signature timestamp outside the tolerance")]
    Stale,
}

/// Why a subscription handshake was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// A parameter the handshake needs is missing: not a handshake of this channel (400).
    /// The text says what is required.
    #[error("{0}")]
    Incomplete(&'static str),
    /// The token or mode is wrong (403).
    #[error("verify token or mode rejected")]
    Rejected,
}

/// The answer to a successful handshake: `200` with this body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeReply {
    /// The `Content-Type` of the body.
    pub content_type: &'static str,
    /// The body (an echoed challenge, a signed CRC response).
    pub body: String,
}

/// Checks the signature of a webhook `POST`.
///
/// Contract: `Ok` only when the request was signed by a holder of one of the channel's secrets
/// (several may be active during a rotation); it runs over the exact raw bytes, compares in
/// constant time, and never panics, whatever the headers and body.
pub trait SignatureCheck: Send + Sync + fmt::Debug {
    /// Verifies `body` as received with `headers`, at `now`.
    fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), SignatureError>;

    /// What can be checked from the headers alone, before the body is read: the headers the
    /// scheme needs are there and well formed (and not stale, for a scheme that signs a
    /// time). A request refused here is refused without reading, or holding, its body;
    /// `Ok` here does not mean [`verify`](Self::verify) will pass. By default, nothing.
    fn precheck(&self, headers: &HeaderMap, now: DateTime<Utc>) -> Result<(), SignatureError> {
        let _ = (headers, now);
        Ok(())
    }
}

/// Answers the `GET` a provider sends to subscribe a webhook or to check it still answers
/// (Meta's `hub.challenge`, X's CRC).
pub trait Handshake: Send + Sync + fmt::Debug {
    /// The reply to a `GET` with these query parameters, at `now`.
    fn answer(
        &self,
        query: &HashMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<HandshakeReply, HandshakeError>;
}

/// The handshake of a webhook that has none (Standard Webhooks, Telegram): every `GET` is
/// answered 400 with the text given, without any call.
#[derive(Debug, Clone, Copy)]
pub struct NoHandshake(pub &'static str);

impl Handshake for NoHandshake {
    fn answer(
        &self,
        _: &HashMap<String, String>,
        _: DateTime<Utc>,
    ) -> Result<HandshakeReply, HandshakeError> {
        Err(HandshakeError::Incomplete(self.0))
    }
}

/// Equality whose time depends on the lengths only, not on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // An HMAC of both under a fixed key turns the comparison into `verify_slice`'s constant-time
    // one without a hand-rolled loop.
    let tag = |x: &[u8]| {
        let mut m = Hmac::<Sha256>::new_from_slice(b"switchboard-token-compare").expect("any key");
        m.update(x);
        m
    };
    let a_tag = tag(a).finalize().into_bytes();
    tag(b).verify_slice(&a_tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_hides_the_value() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }
}
