//! Channel modules: everything switchboard knows of one provider's webhook, on one registry.
//!
//! A [`ChannelModule`] gives its [`Webhook`] (the route `/webhooks/{name}` and the settings
//! `SWITCHBOARD_{NAME}_…`), the Lambda function that serves it, the secrets it needs
//! ([`SecretField`]: the same names in a Secrets Manager secret and, for local use, in
//! environment variables), its verification ([`Verification`]: the signature check of every
//! `POST` and the handshake of `GET`), and its normalizer: a provider's delivery JSON in,
//! [`Record`]s out.
//!
//! A normalizer never fails and never panics: every item of every entry is turned into a record,
//! and what it does not understand becomes an `unsupported` message or a notification with
//! the raw JSON, so nothing a provider sends is dropped.
//!
//! The router, the configuration (local variables and Secrets Manager), `switchboard serve`,
//! the cold-start harness and the template tests all iterate over [`REGISTRY`].
//!
//! # Adding a channel
//!
//! 1. A module under `channels/` with a type implementing [`ChannelModule`] (its verification
//!    is a [`SignatureCheck`] and a [`Handshake`] built from its secrets, tested the way
//!    `meta::verify` is: tampered body, every header missing or malformed, rotation).
//! 2. A [`Webhook`] variant naming it, and one line in [`REGISTRY`].
//! 3. A thin function crate `functions/webhook-<name>` whose `main` calls
//!    `switchboard_aws::app::webhook_app(&[Webhook::…])`.
//! 4. One block in `template.yaml`: the function, its two routes and its secret
//!    (`tests/template.rs` checks each module of the registry has them).
//! 5. If agents reply on it: its token in [`reply_credential`], a sender in
//!    `shared/senders`, and its rules in `outbound::plan`.

use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::channel::Webhook;
use crate::model::Record;
use crate::settings::ConfigError;
use crate::verify::{Handshake, SignatureCheck};

pub mod bounds;
pub mod email;
pub(crate) mod json;
pub mod meta;
pub mod standard;
pub mod telegram;
pub mod x;

pub use json::provider_time;

/// One secret value a channel needs, as it is named in its Secrets Manager secret (a JSON
/// object) and, for local use, in the environment (`SWITCHBOARD_{WEBHOOK}_{env}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretField {
    /// The key in the secret's JSON (`app_secrets`).
    pub key: &'static str,
    /// The suffix of the local variable (`APP_SECRETS`).
    pub env: &'static str,
    /// Several values (rotation): a JSON array in the secret, comma-separated in the variable.
    pub list: bool,
    /// What to put there, for the error that names a missing one.
    pub hint: &'static str,
    /// How a generated development value begins (`serve`'s first run appends random hex):
    /// `dev-` for a free-form token, `whsec_` where the value must be a Standard Webhooks
    /// secret (hex is valid base64).
    pub dev_prefix: &'static str,
}

/// The usual reply credential: `access_token` in the secret, `SWITCHBOARD_<WEBHOOK>_ACCESS_TOKEN`
/// locally.
pub const ACCESS_TOKEN: SecretField = SecretField {
    key: "access_token",
    env: "ACCESS_TOKEN",
    list: false,
    hint: "the token replies are sent with",
    dev_prefix: "dev-",
};

/// The values of a channel's [`SecretField`]s, read from wherever they are kept.
#[derive(Clone, Default)]
pub struct ChannelSecrets {
    /// Where they came from (a variable or a secret ARN), for errors.
    pub origin: String,
    values: BTreeMap<&'static str, Vec<String>>,
}

impl std::fmt::Debug for ChannelSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelSecrets")
            .field("origin", &self.origin)
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ChannelSecrets {
    /// No values yet, read from `origin`.
    pub fn new(origin: impl Into<String>) -> Self {
        Self {
            origin: origin.into(),
            values: BTreeMap::new(),
        }
    }

    /// Sets the values of `key`; blank ones are dropped.
    pub fn set(&mut self, key: &'static str, values: impl IntoIterator<Item = String>) {
        self.values.insert(
            key,
            values
                .into_iter()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .collect(),
        );
    }

    /// Every value of `key` (none when absent).
    pub fn list(&self, key: &str) -> &[String] {
        self.values.get(key).map_or(&[], Vec::as_slice)
    }

    /// The first value of `key`, if any.
    pub fn one(&self, key: &str) -> Option<&str> {
        self.list(key).first().map(String::as_str)
    }
}

/// How a webhook's requests are verified: the check of every `POST`, the handshake of `GET`.
#[derive(Debug, Clone)]
pub struct Verification {
    /// Checks each delivery's signature (401 when refused).
    pub signature: Arc<dyn SignatureCheck>,
    /// Answers the provider's subscription or liveness `GET`.
    pub handshake: Arc<dyn Handshake>,
}

/// One provider webhook: its name, function, secrets, verification and normalizer.
///
/// Contract: [`normalize`](Self::normalize) turns any JSON value into records without
/// panicking, keeping what it does not understand; [`verification`](Self::verification)
/// refuses secrets that cannot verify anything (an empty list, a blank token) with a
/// [`ConfigError`] naming [`ChannelSecrets::origin`].
pub trait ChannelModule: Send + Sync + 'static {
    /// The webhook it serves.
    fn webhook(&self) -> Webhook;
    /// The name of the Lambda function crate (and binary) that serves it.
    fn function(&self) -> &'static str;
    /// The secrets it needs.
    fn secrets(&self) -> &'static [SecretField];
    /// Its verification, from its secrets.
    fn verification(&self, secrets: &ChannelSecrets) -> Result<Verification, ConfigError>;
    /// Normalizes a parsed delivery received at `received_at`.
    fn normalize(&self, body: &Value, received_at: DateTime<Utc>) -> Vec<Record>;
    /// [`normalize`](Self::normalize), owning the delivery: a module that moves each item
    /// into its record as the raw JSON kept (rather than copy it) overrides this, and its
    /// `normalize` clones the body once to call it. The same records either way.
    fn normalize_owned(&self, body: Value, received_at: DateTime<Utc>) -> Vec<Record> {
        self.normalize(&body, received_at)
    }
    /// The records of a raw delivery, or `None` when it is not in this webhook's format (the
    /// intake quarantines it). By default: JSON within [`bounds`], then
    /// [`normalize`](Self::normalize).
    fn records(&self, body: &[u8], received_at: DateTime<Utc>) -> Option<Vec<Record>> {
        default_records(self, body, received_at)
    }
}

/// [`ChannelModule::records`]' default, for a module that overrides it to fall back on: JSON
/// within [`bounds`], parsed whole, then [`ChannelModule::normalize_owned`].
pub fn default_records<M: ChannelModule + ?Sized>(
    module: &M,
    body: &[u8],
    received_at: DateTime<Utc>,
) -> Option<Vec<Record>> {
    if !bounds::within_bounds(body) {
        tracing::warn!(
            bytes = body.len(),
            max_values = bounds::MAX_VALUES,
            "delivery holds more JSON values than one may; kept unparsed"
        );
        return None;
    }
    let json: Value = parse_json(body)?;
    Some(module.normalize_owned(json, received_at))
}

/// A JSON body parsed into `T`, or `None` when it is not JSON of that shape: the body's UTF-8
/// checked once, in one pass (JSON is UTF-8 throughout), instead of each string's on its own
/// as `serde_json::from_slice` does — the same answer, in less time for a body of many strings.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
    serde_json::from_str(std::str::from_utf8(body).ok()?).ok()
}

/// Every channel module switchboard has, one per [`Webhook`].
pub static REGISTRY: &[&dyn ChannelModule] = &[
    &meta::WHATSAPP,
    &meta::FACEBOOK,
    &meta::INSTAGRAM,
    &standard::STANDARD,
    &telegram::TELEGRAM,
    &x::X_MODULE,
    &email::EMAIL,
];

/// The secret replies on `webhook`'s channels are sent with, as it is named in its Secrets
/// Manager secret and (suffix) in the local variable: Meta's `access_token`, Telegram's
/// `bot_token`; `None` when its replies call no provider (Standard Webhooks relays them).
///
/// A plain function rather than a method of the module: the agent API needs it, and calling
/// through the registry would link every normalizer into it.
pub fn reply_credential(webhook: Webhook) -> Option<SecretField> {
    match webhook {
        Webhook::Whatsapp | Webhook::Facebook | Webhook::Instagram | Webhook::X => {
            Some(ACCESS_TOKEN)
        }
        Webhook::Telegram => Some(telegram::BOT_TOKEN),
        Webhook::Standard | Webhook::Email => None,
    }
}

/// The module of `webhook`.
pub fn module(webhook: Webhook) -> &'static dyn ChannelModule {
    REGISTRY
        .iter()
        .copied()
        .find(|m| m.webhook() == webhook)
        .unwrap_or_else(|| unreachable!("every webhook is on the registry (tested)"))
}

/// Normalizes a parsed delivery to `webhook`, received at `received_at`.
pub fn normalize(webhook: Webhook, body: &Value, received_at: DateTime<Utc>) -> Vec<Record> {
    module(webhook).normalize(body, received_at)
}

/// [`normalize`], owning the delivery (what the intake does: no item is copied).
pub fn normalize_owned(webhook: Webhook, body: Value, received_at: DateTime<Utc>) -> Vec<Record> {
    module(webhook).normalize_owned(body, received_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `parse_json` accepts is exactly what `serde_json::from_slice` accepts, with the same
    /// value: on JSON, on JSON with a byte changed (invalid UTF-8 inside and outside strings,
    /// broken syntax), and on any bytes.
    #[test]
    fn parse_json_answers_as_from_slice_does() {
        let same = |body: &[u8]| {
            let slice: Option<Value> = serde_json::from_slice(body).ok();
            assert_eq!(parse_json::<Value>(body), slice, "{body:?}");
        };
        let json =
            b"{\"a\": [\"x\", \"\\u00e9t\\u00e9\", 1.5, null], \"b\": {\"c\": \"caf\xc3\xa9\"}}";
        assert!(
            parse_json::<Value>(json).is_some(),
            "the unchanged body is JSON"
        );
        same(json);
        for at in 0..json.len() {
            for byte in [0x80, 0xc3, 0xff, b'"', b'\\', b'}', 0] {
                let mut changed = json.to_vec();
                changed[at] = byte;
                same(&changed);
            }
        }
        for body in [
            &b""[..],
            b"\xef\xbb\xbf{}",
            b"{} ",
            b"{}x",
            b"\"\xc3\"",
            b"\"\xc3\xa9\"",
        ] {
            same(body);
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_json_answers_as_from_slice_does_on_any_bytes(
            body in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(b"{}[]\":,\\ 0123456789aeflnrstu".to_vec()),
                    proptest::num::u8::ANY,
                ],
                0..64,
            ),
        ) {
            let slice: Option<Value> = serde_json::from_slice(&body).ok();
            proptest::prop_assert_eq!(parse_json::<Value>(&body), slice);
        }
    }

    #[test]
    fn every_webhook_has_exactly_one_module_with_its_own_function() {
        for webhook in Webhook::ALL {
            let modules: Vec<_> = REGISTRY.iter().filter(|m| m.webhook() == webhook).collect();
            assert_eq!(modules.len(), 1, "{webhook}");
            assert_eq!(module(webhook).webhook(), webhook);
        }
        assert_eq!(REGISTRY.len(), Webhook::ALL.len());
        let mut functions: Vec<_> = REGISTRY.iter().map(|m| m.function()).collect();
        functions.sort();
        functions.dedup();
        assert_eq!(functions.len(), REGISTRY.len(), "unique function names");
    }

    #[test]
    fn channel_secrets_drop_blank_values_and_never_show_them() {
        let mut s = ChannelSecrets::new("SWITCHBOARD_X_SECRETS");
        s.set(
            "app_secrets",
            [" new ".to_owned(), " ".to_owned(), "old".to_owned()],
        );
        assert_eq!(s.list("app_secrets"), ["new", "old"]);
        assert_eq!(s.one("app_secrets"), Some("new"));
        assert_eq!(s.one("verify_token"), None);
        assert!(!format!("{s:?}").contains("new"));
    }
}
