//! Webhook bodies the tests build: one text message from a customer (or the brand's echo), in
//! each provider's envelope; the same builders `switchboard demo` posts with.

pub use switchboard_core::channels::meta::samples::*;
