//! Replies out: the [`ReplySender`] port over each provider's send API, on one HTTPS client.
//! (E-mail replies go through SES: `switchboard_aws::ses`, given with [`Senders::with_mail`].)
//!
//! * [`graph`]: Meta's Graph API (WhatsApp, Messenger, Instagram, page and Instagram
//!   comments);
//! * [`telegram`]: the Bot API's `sendMessage`;
//! * [`x`]: X's API v2 (DMs and reply tweets);
//! * [`Senders`]: the one the services get, sending each [`Outgoing`] through its channel's
//!   API with the token of its webhook (a channel without one answers
//!   [`SendError::NotConfigured`], naming the setting).
//!
//! Tokens go where each API wants them (a bearer header; Telegram's in the URL path) and
//! never into a log or an error. A send is retried only when nothing can have gone (no
//! connection, or the provider says so); no answer within the timeout is
//! [`SendError::Timeout`], never retried: the message may have gone.
#![warn(missing_docs)]

use async_trait::async_trait;
use std::collections::HashMap;
use std::time::Duration;

use switchboard_core::channel::{Channel, Webhook};
use switchboard_core::channels;
use switchboard_core::config;
use switchboard_core::outbound::{Outgoing, SendError, Sent};
use switchboard_core::ports::ReplySender;

mod client;
pub mod graph;
pub mod telegram;
pub mod x;

pub use client::AccessToken;
pub use graph::{GraphSender, GraphSettings};
pub use telegram::TelegramSender;
pub use x::XSender;

/// How long a send may take before it is a [`SendError::Timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The waits before the retries of a send that cannot have gone.
pub(crate) const RETRY_DELAYS: [Duration; 2] =
    [Duration::from_millis(200), Duration::from_millis(800)];

/// [`SendError::NotConfigured`] for `channel`, naming the setting its token comes from.
pub(crate) fn not_configured(channel: Channel) -> SendError {
    let setting = channel
        .webhook()
        .and_then(|w| {
            let field = channels::reply_credential(w)?;
            Some(format!(
                "{} (on Lambda: {} in the {w} secret)",
                config::channel_var(w, field.env),
                field.key
            ))
        })
        .unwrap_or_else(|| "a sender for this channel".to_owned());
    SendError::NotConfigured { channel, setting }
}

/// Every provider's sender, each with the tokens of its webhooks, and the e-mail sender when
/// the deployment has one ([`Senders::with_mail`]).
#[derive(Clone)]
pub struct Senders {
    graph: GraphSender,
    telegram: TelegramSender,
    x: XSender,
    mail: Option<std::sync::Arc<dyn ReplySender>>,
}

impl std::fmt::Debug for Senders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Senders")
            .field("graph", &self.graph)
            .field("telegram", &self.telegram)
            .field("x", &self.x)
            .field("mail", &self.mail.is_some())
            .finish()
    }
}

impl Senders {
    /// The senders of the settings in `source` (`SWITCHBOARD_GRAPH_API_URL`,
    /// `SWITCHBOARD_TELEGRAM_API_URL`, `SWITCHBOARD_X_API_URL`) with `tokens` (see
    /// `switchboard_aws::assembly::reply_tokens`), on one client.
    pub fn from_source(
        source: &impl config::Source,
        tokens: HashMap<Webhook, String>,
    ) -> Result<Self, config::ConfigError> {
        let graph_url = config::graph_api_url(source)?;
        let telegram_url = config::telegram_api_url(source)?;
        let x_url = config::x_api_url(source)?;
        let http = client::Http::new(DEFAULT_TIMEOUT);
        let mut tokens: HashMap<Webhook, AccessToken> = tokens
            .into_iter()
            .map(|(w, t)| (w, AccessToken::new(t)))
            .collect();
        let bot = tokens.remove(&Webhook::Telegram);
        let x_user = tokens.remove(&Webhook::X);
        Ok(Self {
            graph: GraphSender::with_client(graph_url, tokens, http.clone()),
            telegram: TelegramSender::with_client(telegram_url, bot, http.clone()),
            x: XSender::with_client(x_url, x_user, http),
            mail: None,
        })
    }

    /// The same senders, e-mail replies going through `mail` (SES on AWS). Without one, an
    /// e-mail reply is [`SendError::NotConfigured`].
    pub fn with_mail(mut self, mail: std::sync::Arc<dyn ReplySender>) -> Self {
        self.mail = Some(mail);
        self
    }
}

#[async_trait]
impl ReplySender for Senders {
    async fn send(&self, outgoing: &Outgoing) -> Result<Sent, SendError> {
        match outgoing.channel {
            Channel::Telegram => self.telegram.send(outgoing).await,
            Channel::X => self.x.send(outgoing).await,
            Channel::Email => match &self.mail {
                Some(mail) => mail.send(outgoing).await,
                None => Err(SendError::NotConfigured {
                    channel: Channel::Email,
                    setting: "a mail sender: SES, on the stack or with serve --backend aws"
                        .to_owned(),
                }),
            },
            _ => self.graph.send(outgoing).await,
        }
    }
}
