//! switchboard's core: the domain, its ports and its services. Nothing here knows about AWS or
//! HTTP: the adapters live in `switchboard-aws` and `switchboard-embedded`, the routers in
//! `switchboard-http`.
//!
//! The modules read bottom-up; none imports one that imports it back (`tests/layout.rs` holds
//! that):
//!
//! | layer | modules |
//! |---|---|
//! | names and ids | [`channel`] (channels, webhooks), [`identifier`] (e-mail addresses, phone numbers, handles), [`ids`] (provider and derived ids), [`clock`], [`settings`], [`errors`] |
//! | values and rules | [`case`] (cases, first-contact resolution), [`telemetry`] (operational counts, for CloudWatch), [`priority`] (scoring, the apply rule), [`sla`] (policy, calendars, due times, reminders), [`verify`] (signature checks, handshakes) |
//! | the model | [`model`] (records, conversations, customers) |
//! | channels | [`channels`] (one module per webhook on one registry: verification, secrets, normalizer) |
//! | domain decisions | [`recording`] (what storing records does), [`metrics`] (what a change counts, and the report), [`timers`] (which reminders to create and cancel), [`outbound`] (what a reply sends, and Meta's windows) |
//! | ports | [`ports`] (one narrow trait per capability, two adapters each) |
//! | services | [`intake`], [`prioritize`], [`resolve`] (one customer across channels), [`remind`], [`cases`] (answers, resolutions, assignments), [`replies`] (replies through the channels' APIs), [`reports`] (the figures), [`events`] (the domain events' contract), [`consume`] (the one queue batch runner), [`watch`] (silent channels), [`config`] |
#![warn(missing_docs)]

pub mod case;
pub mod cases;
pub mod channel;
pub mod channels;
pub mod clock;
pub mod config;
pub mod consume;
pub mod erasure;
pub mod errors;
pub mod events;
pub mod history;
pub mod identifier;
pub mod ids;
pub mod intake;
pub mod metrics;
pub mod model;
pub mod outbound;
pub mod ports;
pub mod prioritize;
pub mod priority;
pub mod recording;
pub mod remind;
pub mod replies;
pub mod reports;
pub mod resolve;
pub mod settings;
pub mod sla;
pub mod telemetry;
pub mod timers;
pub mod verify;
pub mod watch;
