//! Standard Webhooks sources (web chat widgets, contact forms, mobile apps, in-house systems):
//! their signature check ([`verify`]). The channel module, its normalizer of switchboard's
//! inbound schema and its replies come with the rest of the channel.

pub mod verify;

pub use verify::{StandardSecret, StandardVerifier, sign};
