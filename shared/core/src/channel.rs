//! The channels switchboard receives from and the webhooks they arrive on: plain names, at the
//! bottom of the domain (every other module may use them; they use nothing of the crate).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A messaging channel switchboard receives from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// WhatsApp Business Cloud API.
    Whatsapp,
    /// Facebook Messenger (page messaging).
    Messenger,
    /// Instagram messaging, comments and mentions.
    Instagram,
    /// Facebook page feed: posts and comments.
    FacebookFeed,
    /// Telegram Bot API.
    Telegram,
    /// X (Account Activity API).
    X,
    /// A web chat widget, a contact form, a mobile app or an in-house system, through Standard
    /// Webhooks.
    Web,
    /// E-mail (raw RFC 5322 messages).
    Email,
}

impl Channel {
    /// Every channel, in a stable order.
    pub const ALL: [Channel; 8] = [
        Channel::Whatsapp,
        Channel::Messenger,
        Channel::Instagram,
        Channel::FacebookFeed,
        Channel::Telegram,
        Channel::X,
        Channel::Web,
        Channel::Email,
    ];

    /// The lower-case name used in URLs, keys and JSON (`whatsapp`, `facebook_feed`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Whatsapp => "whatsapp",
            Channel::Messenger => "messenger",
            Channel::Instagram => "instagram",
            Channel::FacebookFeed => "facebook_feed",
            Channel::Telegram => "telegram",
            Channel::X => "x",
            Channel::Web => "web",
            Channel::Email => "email",
        }
    }
}

impl Channel {
    /// The name people use for it, for texts shown to agents (`WhatsApp`, `e-mail`, …).
    pub fn label(self) -> &'static str {
        match self {
            Channel::Whatsapp => "WhatsApp",
            Channel::Messenger => "Messenger",
            Channel::Instagram => "Instagram",
            Channel::FacebookFeed => "Facebook comments",
            Channel::Telegram => "Telegram",
            Channel::X => "X",
            Channel::Web => "web chat",
            Channel::Email => "e-mail",
        }
    }

    /// The webhook this channel arrives on, whose credentials answer on it (`None` for the
    /// channels without a webhook yet).
    pub fn webhook(self) -> Option<Webhook> {
        match self {
            Channel::Whatsapp => Some(Webhook::Whatsapp),
            Channel::Messenger | Channel::FacebookFeed => Some(Webhook::Facebook),
            Channel::Instagram => Some(Webhook::Instagram),
            Channel::Web => Some(Webhook::Standard),
            Channel::Telegram => Some(Webhook::Telegram),
            Channel::X => Some(Webhook::X),
            Channel::Email => Some(Webhook::Email),
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Channel {
    type Err = UnknownChannel;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownChannel(s.to_owned()))
    }
}

/// A channel name that switchboard does not know.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "unknown channel {0:?}; expected one of whatsapp, messenger, instagram, facebook_feed, telegram, x, web, email"
)]
pub struct UnknownChannel(pub String);

/// A webhook endpoint, `/webhooks/{name}`: one per provider subscription, with its own secrets.
///
/// One webhook can carry several channels: Meta's `page` webhook (`facebook`) brings Messenger
/// messages and page feed changes (comments), the `instagram` webhook brings direct messages,
/// comments and mentions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Webhook {
    /// WhatsApp Business Cloud API (`object: whatsapp_business_account`).
    Whatsapp,
    /// A Facebook page (`object: page`): Messenger and the page feed.
    Facebook,
    /// An Instagram professional account (`object: instagram`).
    Instagram,
    /// Any source that signs with Standard Webhooks (web chat, forms, apps): switchboard's own
    /// inbound schema.
    Standard,
    /// A Telegram bot (Bot API updates), and the Telegram Business accounts connected to it.
    Telegram,
    /// An X account's activity (Account Activity API).
    X,
    /// Raw e-mail messages, signed with Standard Webhooks (a mail relay, an import).
    Email,
}

impl Webhook {
    /// Every webhook, in a stable order.
    pub const ALL: [Webhook; 7] = [
        Webhook::Whatsapp,
        Webhook::Facebook,
        Webhook::Instagram,
        Webhook::Standard,
        Webhook::Telegram,
        Webhook::X,
        Webhook::Email,
    ];

    /// The name in the route and in the settings (`SWITCHBOARD_FACEBOOK_…`).
    pub fn as_str(self) -> &'static str {
        match self {
            Webhook::Whatsapp => "whatsapp",
            Webhook::Facebook => "facebook",
            Webhook::Instagram => "instagram",
            Webhook::Standard => "standard",
            Webhook::Telegram => "telegram",
            Webhook::X => "x",
            Webhook::Email => "email",
        }
    }
}

impl fmt::Display for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Webhook {
    type Err = UnknownChannel;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Webhook::ALL
            .into_iter()
            .find(|w| w.as_str() == s)
            .ok_or_else(|| UnknownChannel(s.to_owned()))
    }
}
