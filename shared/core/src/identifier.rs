//! Identifiers of a person that hold across channels: an e-mail address, a phone number, a
//! WhatsApp business-scoped user id, a handle.
//!
//! Each is kept in one normal form, so that two sightings of the same address or number compare
//! equal: e-mail addresses lower-cased, phone numbers in E.164 (`+` and 8 to 15 digits), handles
//! lower-cased without `@`. A value that has no normal form (an address without a domain, a
//! number without its country code) is no identifier at all: weak evidence never links.
//!
//! The strong kinds ([`IdentifierKind::links`]) join identities automatically; a handle only
//! finds a customer (the same handle on two networks can be two people).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// What an identifier is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum IdentifierKind {
    /// An e-mail address, lower-cased.
    Email,
    /// A phone number in E.164 (`+5511999990000`).
    Phone,
    /// WhatsApp's business-scoped user id of a person (`US.…`), the same for one business
    /// whatever number the person uses.
    WhatsappUser,
    /// A public handle (an X screen name, a Telegram username), lower-cased, without `@`.
    Handle,
}

impl IdentifierKind {
    /// The name used in JSON and in query strings (`email`, `phone`, `whatsapp_user`, `handle`).
    pub fn as_str(self) -> &'static str {
        match self {
            IdentifierKind::Email => "email",
            IdentifierKind::Phone => "phone",
            IdentifierKind::WhatsappUser => "whatsapp_user",
            IdentifierKind::Handle => "handle",
        }
    }

    /// Whether two identities carrying the same identifier of this kind are one person, strong
    /// enough to link them without an agent: an e-mail address, a phone number, a WhatsApp user
    /// id. A handle is not (networks do not share them).
    pub fn links(self) -> bool {
        !matches!(self, IdentifierKind::Handle)
    }
}

/// One identifier in its normal form. Personal data: stored, shown to agents, never logged
/// (its [`Display`](fmt::Display) names only the kind).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Identifier {
    /// What it is.
    pub kind: IdentifierKind,
    /// The normal form of the value.
    pub value: String,
}

impl fmt::Debug for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identifier({}, <redacted>)", self.kind.as_str())
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.as_str())
    }
}

/// The longest value kept (an e-mail address has at most 254 characters).
const MAX_LEN: usize = 254;

impl Identifier {
    /// An e-mail address (`Ana@Example.com` → `ana@example.com`), or `None` when `raw` is no
    /// address: one `@`, something before it, a dotted domain after it, no spaces or angle
    /// brackets.
    pub fn email(raw: &str) -> Option<Self> {
        let value = raw.trim().to_lowercase();
        let (local, domain) = value.split_once('@')?;
        let plausible = !local.is_empty()
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@')
            && value.len() <= MAX_LEN
            && !value
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'));
        plausible.then_some(Self {
            kind: IdentifierKind::Email,
            value,
        })
    }

    /// A phone number in E.164, or `None`. `raw` must carry its country code: a leading `+`
    /// (or `00`), then 8 to 15 digits, the first not 0; spaces, dots, dashes and parentheses are
    /// ignored. A national number (`(11) 99999-0000`) is refused: without its country it is
    /// not one number.
    pub fn phone(raw: &str) -> Option<Self> {
        let raw = raw.trim();
        let rest = raw.strip_prefix('+').or_else(|| raw.strip_prefix("00"))?;
        Self::digits(rest)
    }

    /// The phone number of a WhatsApp id (`wa_id`: the number's digits, country code first,
    /// without `+`), or `None` when it is not one (a business-scoped user id).
    pub fn wa_id(raw: &str) -> Option<Self> {
        Self::digits(raw.trim())
    }

    fn digits(rest: &str) -> Option<Self> {
        let mut digits = String::with_capacity(16);
        digits.push('+');
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '.' | '-' | '(' | ')' => {}
                _ => return None,
            }
        }
        let n = digits.len() - 1;
        ((8..=15).contains(&n) && !digits[1..].starts_with('0')).then_some(Self {
            kind: IdentifierKind::Phone,
            value: digits,
        })
    }

    /// A WhatsApp business-scoped user id, kept as sent (it is case-sensitive), or `None` when
    /// empty or too long.
    pub fn whatsapp_user(raw: &str) -> Option<Self> {
        let value = raw.trim();
        (!value.is_empty() && value.len() <= MAX_LEN && !value.chars().any(char::is_whitespace))
            .then(|| Self {
                kind: IdentifierKind::WhatsappUser,
                value: value.to_owned(),
            })
    }

    /// A handle (`@Ana_B` → `ana_b`), or `None` when empty or not one word.
    pub fn handle(raw: &str) -> Option<Self> {
        let value = raw.trim().trim_start_matches('@').to_lowercase();
        (!value.is_empty() && value.len() <= MAX_LEN && !value.chars().any(char::is_whitespace))
            .then_some(Self {
                kind: IdentifierKind::Handle,
                value,
            })
    }

    /// The identifier of `kind` read from `raw` with that kind's rule.
    pub fn parse(kind: IdentifierKind, raw: &str) -> Option<Self> {
        match kind {
            IdentifierKind::Email => Self::email(raw),
            IdentifierKind::Phone => Self::phone(raw),
            IdentifierKind::WhatsappUser => Self::whatsapp_user(raw),
            IdentifierKind::Handle => Self::handle(raw),
        }
    }

    /// The key the identifier is indexed under: a hash of its kind and value, so that no
    /// address or number appears in a key (keys end up in logs and traces).
    pub fn key(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(self.kind.as_str().as_bytes());
        hash.update(b":");
        hash.update(self.value.as_bytes());
        format!("id_{}", hex::encode(&hash.finalize()[..16]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn email_addresses_are_lower_cased_and_must_have_a_domain() {
        let e = Identifier::email("  Ana@Example.COM ").unwrap();
        assert_eq!(e.value, "ana@example.com");
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.com",
            "ana@example",
            "ana @example.com",
            "a@b@c.d",
            "<ana@example.com>",
        ] {
            assert_eq!(Identifier::email(bad), None, "{bad}");
        }
    }

    #[test]
    fn phone_numbers_need_their_country_code() {
        for good in [
            "+55 11 99999-0000",
            "+5511999990000",
            "0055 (11) 99999.0000",
        ] {
            assert_eq!(
                Identifier::phone(good).unwrap().value,
                "+5511999990000",
                "{good}"
            );
        }
        for bad in [
            "(11) 99999-0000",
            "11999990000",
            "+0123456789",
            "+123",
            "+1234567890123456",
            "+55 11 ABC",
        ] {
            assert_eq!(Identifier::phone(bad), None, "{bad}");
        }
        assert_eq!(
            Identifier::wa_id("5511999990000").unwrap().value,
            "+5511999990000"
        );
        assert_eq!(Identifier::wa_id("US.13491208655302741918"), None);
    }

    #[test]
    fn handles_lose_their_at_sign_and_case() {
        assert_eq!(Identifier::handle("@Ana_B").unwrap().value, "ana_b");
        assert_eq!(Identifier::handle("@"), None);
        assert!(!IdentifierKind::Handle.links());
        assert!(IdentifierKind::Email.links() && IdentifierKind::Phone.links());
    }

    #[test]
    fn keys_hide_the_value_and_separate_the_kinds() {
        let e = Identifier::email("ana@example.com").unwrap();
        assert!(!e.key().contains("ana"));
        assert_eq!(e.key(), Identifier::email("ANA@example.com").unwrap().key());
        let h = Identifier::handle("ana@example.com").unwrap();
        assert_ne!(e.key(), h.key());
        assert!(!format!("{e:?} {e}").contains("ana"));
    }

    proptest! {
        #[test]
        fn parsing_never_panics_and_is_idempotent(raw in any::<String>()) {
            for kind in [IdentifierKind::Email, IdentifierKind::Phone, IdentifierKind::WhatsappUser, IdentifierKind::Handle] {
                if let Some(id) = Identifier::parse(kind, &raw) {
                    let again = Identifier::parse(kind, &id.value);
                    prop_assert_eq!(again.as_ref().map(|a| &a.value), Some(&id.value));
                }
            }
        }
    }
}
