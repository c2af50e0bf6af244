//! Meta's webhooks: WhatsApp Business Cloud API (`whatsapp`), a Facebook page (`facebook`:
//! Messenger and the page feed) and an Instagram professional account (`instagram`: direct
//! messages, comments and mentions). All three sign with `X-Hub-Signature-256` under the app
//! secret and subscribe with the `hub.challenge` handshake ([`verify`]).
//!
//! * [`whatsapp`]: the `whatsapp_business_account` envelope;
//! * `envelope`: the `page` and `instagram` envelope, which hands `messaging[]` items to
//!   `messaging` and `changes[]` to `feed`.

use chrono::{DateTime, Utc};
use serde_json::Value;
use std::sync::Arc;

use super::{ChannelModule, ChannelSecrets, SecretField, Verification};
use crate::channel::Webhook;
use crate::model::Record;
use crate::settings::ConfigError;
use crate::verify::Secret;

mod envelope;
mod feed;
mod messaging;
pub mod samples;
pub mod verify;
pub mod whatsapp;

pub use verify::{MetaVerifier, SIGNATURE_HEADER, sign};

/// The secrets of a Meta webhook: the app secret(s) and the verify token.
pub const SECRETS: &[SecretField] = &[
    SecretField {
        key: "app_secrets",
        env: "APP_SECRETS",
        list: true,
        hint: "the app secret(s) of the Meta app, comma-separated (App settings > Basic > App secret)",
        dev_prefix: "dev-",
    },
    SecretField {
        key: "verify_token",
        env: "VERIFY_TOKEN",
        list: false,
        hint: "the verify token you type in the Meta app's webhook settings",
        dev_prefix: "dev-",
    },
];

/// The verifier of a Meta webhook from its secrets, refusing an empty secret list or a blank
/// token (the error names `secrets.origin`).
pub fn verifier(secrets: &ChannelSecrets) -> Result<MetaVerifier, ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        name: secrets.origin.clone(),
        reason: reason.into(),
    };
    let app_secrets: Vec<Secret> = secrets
        .list("app_secrets")
        .iter()
        .map(Secret::new)
        .collect();
    if app_secrets.is_empty() {
        return Err(invalid("no app secret given"));
    }
    let token = secrets
        .one("verify_token")
        .ok_or_else(|| invalid("empty verify token"))?;
    Ok(MetaVerifier::new(app_secrets, Secret::new(token)))
}

fn verification(secrets: &ChannelSecrets) -> Result<Verification, ConfigError> {
    let verifier = Arc::new(verifier(secrets)?);
    Ok(Verification {
        signature: verifier.clone(),
        handshake: verifier,
    })
}

/// The WhatsApp Business Cloud API webhook (`object: whatsapp_business_account`).
#[derive(Debug, Clone, Copy)]
pub struct Whatsapp;
/// A Facebook page's webhook (`object: page`): Messenger and the page feed.
#[derive(Debug, Clone, Copy)]
pub struct Facebook;
/// An Instagram professional account's webhook (`object: instagram`).
#[derive(Debug, Clone, Copy)]
pub struct Instagram;

/// The WhatsApp module of the registry.
pub static WHATSAPP: Whatsapp = Whatsapp;
/// The Facebook page module of the registry.
pub static FACEBOOK: Facebook = Facebook;
/// The Instagram module of the registry.
pub static INSTAGRAM: Instagram = Instagram;

impl ChannelModule for Whatsapp {
    fn webhook(&self) -> Webhook {
        Webhook::Whatsapp
    }
    fn function(&self) -> &'static str {
        "webhook-whatsapp"
    }
    fn secrets(&self) -> &'static [SecretField] {
        SECRETS
    }
    fn verification(&self, secrets: &ChannelSecrets) -> Result<Verification, ConfigError> {
        verification(secrets)
    }
    fn normalize(&self, body: &Value, received_at: DateTime<Utc>) -> Vec<Record> {
        whatsapp::normalize(body.clone(), received_at)
    }
    fn normalize_owned(&self, body: Value, received_at: DateTime<Utc>) -> Vec<Record> {
        whatsapp::normalize(body, received_at)
    }
}

impl ChannelModule for Facebook {
    fn webhook(&self) -> Webhook {
        Webhook::Facebook
    }
    fn function(&self) -> &'static str {
        "webhook-facebook"
    }
    fn secrets(&self) -> &'static [SecretField] {
        SECRETS
    }
    fn verification(&self, secrets: &ChannelSecrets) -> Result<Verification, ConfigError> {
        verification(secrets)
    }
    fn normalize(&self, body: &Value, received_at: DateTime<Utc>) -> Vec<Record> {
        envelope::normalize(envelope::MetaObject::Page, body.clone(), received_at)
    }
    fn normalize_owned(&self, body: Value, received_at: DateTime<Utc>) -> Vec<Record> {
        envelope::normalize(envelope::MetaObject::Page, body, received_at)
    }
}

impl ChannelModule for Instagram {
    fn webhook(&self) -> Webhook {
        Webhook::Instagram
    }
    fn function(&self) -> &'static str {
        "webhook-instagram"
    }
    fn secrets(&self) -> &'static [SecretField] {
        SECRETS
    }
    fn verification(&self, secrets: &ChannelSecrets) -> Result<Verification, ConfigError> {
        verification(secrets)
    }
    fn normalize(&self, body: &Value, received_at: DateTime<Utc>) -> Vec<Record> {
        envelope::normalize(envelope::MetaObject::Instagram, body.clone(), received_at)
    }
    fn normalize_owned(&self, body: Value, received_at: DateTime<Utc>) -> Vec<Record> {
        envelope::normalize(envelope::MetaObject::Instagram, body, received_at)
    }
}
