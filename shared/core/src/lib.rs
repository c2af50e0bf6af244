//! switchboard's core: the normalized model, channel normalizers, Meta verification, the ports
//! (storage and queue traits), the intake service, and the HTTP routers shared by the Lambda
//! functions and `switchboard serve`.
//!
//! Nothing here knows about AWS: adapters live in `switchboard-aws` and `switchboard-embedded`.
#![warn(missing_docs)]

pub mod answer;
pub mod channel;
pub mod channels;
pub mod clock;
pub mod config;
pub mod consume;
pub mod errors;
pub mod ids;
pub mod intake;
pub mod model;
pub mod ports;
pub mod prioritize;
pub mod priority;
pub mod recording;
pub mod remind;
pub mod settings;
pub mod sla;
pub mod timers;
pub mod verify;
