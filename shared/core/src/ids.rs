//! Deterministic ids.
//!
//! Every id switchboard makes is a hash of what identifies the thing at the provider, so a retry
//! of the same delivery yields the same ids (idempotency), and the ids carry no personal data:
//! a WhatsApp message id or a conversation key contains the customer's phone number, their hash
//! does not, so these ids are safe in logs, URLs and queue messages.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt;

use crate::channel::Channel;

/// An identifier exactly as the provider sent it.
///
/// Providers send ids as JSON strings or numbers (`"wamid.HBg…"`, `987654321432`); both are kept
/// as the text of the value, so `"123"` and `123` are the same id. The original JSON type
/// survives in the record's raw JSON.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct ProviderId(pub String);

impl ProviderId {
    /// The id from a JSON string or number; `None` for anything else (null, object, empty string).
    pub fn from_json(value: &Value) -> Option<Self> {
        match value {
            Value::String(s) if !s.is_empty() => Some(Self(s.clone())),
            Value::Number(n) => Some(Self(n.to_string())),
            _ => None,
        }
    }

    /// Whether `value`, read as [`ProviderId::from_json`] reads it, is this id; without
    /// building one.
    pub fn matches_json(&self, value: &Value) -> bool {
        match value {
            Value::String(s) => !s.is_empty() && *s == self.0,
            Value::Number(n) => n.to_string() == self.0,
            _ => false,
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ProviderId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

fn hash_parts(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        // Length-prefix each part so ("ab","c") and ("a","bc") differ.
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// `prefix` and the first half of `digest` in lower-case hex: one allocation, of the right size.
fn prefixed_hex(prefix: &str, digest: &[u8; 32]) -> String {
    let mut buf = [0u8; 32];
    hex::encode_to_slice(&digest[..16], &mut buf).expect("16 bytes fill 32 hex digits");
    let mut id = String::with_capacity(prefix.len() + buf.len());
    id.push_str(prefix);
    id.push_str(std::str::from_utf8(&buf).expect("hex digits are ASCII"));
    id
}

fn short_hex(digest: &[u8; 32]) -> String {
    prefixed_hex("", digest)
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Wraps an id read back from storage or a URL, without checking it.
            pub fn from_stored(s: impl Into<String>) -> Self {
                Self(s.into())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A conversation: `cv_` and 32 hex digits, from channel, business account and customer.
    ConversationId
);
string_id!(
    /// A customer identity on one channel: `cu_` and 32 hex digits, from channel and the
    /// provider's user id.
    CustomerId
);
string_id!(
    /// The storage key of a record: 32 hex digits, from channel, account, record type and the
    /// provider's id. Equal for every repeat of the same item.
    RecordKey
);
string_id!(
    /// A raw delivery: the SHA-256 of its exact bytes, in hex. A retried delivery (same bytes)
    /// has the same id.
    DeliveryId
);

impl ConversationId {
    /// The conversation of `customer` with `account` on `channel`.
    pub fn derive(channel: Channel, account: &ProviderId, customer: &ProviderId) -> Self {
        let d = hash_parts(&[
            b"conversation",
            channel.as_str().as_bytes(),
            account.as_str().as_bytes(),
            customer.as_str().as_bytes(),
        ]);
        Self(prefixed_hex("cv_", &d))
    }
}

impl CustomerId {
    /// The customer known on `channel` by `provider_user_id`.
    pub fn derive(channel: Channel, provider_user_id: &ProviderId) -> Self {
        let d = hash_parts(&[
            b"customer",
            channel.as_str().as_bytes(),
            provider_user_id.as_str().as_bytes(),
        ]);
        Self(prefixed_hex("cu_", &d))
    }
}

impl RecordKey {
    /// The key of the record `record_type` with id `id` on `account` of `channel`.
    pub fn derive(
        channel: Channel,
        account: &ProviderId,
        record_type: &str,
        id: &ProviderId,
    ) -> Self {
        let d = hash_parts(&[
            b"record",
            channel.as_str().as_bytes(),
            account.as_str().as_bytes(),
            record_type.as_bytes(),
            id.as_str().as_bytes(),
        ]);
        Self(short_hex(&d))
    }
}

impl DeliveryId {
    /// The id of a delivery with these exact bytes.
    pub fn of(body: &[u8]) -> Self {
        Self(hex::encode(Sha256::digest(body)))
    }
}

/// The deterministic id of a domain event of type `kind` about `parts` (`ev_` + 32 hex).
pub fn event_id(kind: &str, parts: &[&str]) -> String {
    let mut all: Vec<&[u8]> = vec![b"event", kind.as_bytes()];
    all.extend(parts.iter().map(|p| p.as_bytes()));
    prefixed_hex("ev_", &hash_parts(&all))
}

/// 16 hex digits of the SHA-256 of `bytes`: a short stable key for a value that needs no more
/// (the dims of a metrics bucket).
pub fn short_hash(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..8])
}

/// A short stable digest of any JSON value, for items that carry no id of their own.
pub fn digest_json(value: &serde_json::Value) -> String {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    short_hex(&hash_parts(&[&bytes]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_carry_no_input_text() {
        let a = ConversationId::derive(Channel::Whatsapp, &"123".into(), &"5511999990000".into());
        let b = ConversationId::derive(Channel::Whatsapp, &"123".into(), &"5511999990000".into());
        assert_eq!(a, b);
        assert!(!a.as_str().contains("5511999990000"));
        assert!(a.as_str().starts_with("cv_") && a.as_str().len() == 35);
    }

    #[test]
    fn parts_are_not_confused_by_concatenation() {
        let a = RecordKey::derive(Channel::Whatsapp, &"ab".into(), "message", &"c".into());
        let b = RecordKey::derive(Channel::Whatsapp, &"a".into(), "message", &"bc".into());
        assert_ne!(a, b);
    }
}
