//! switchboard's AWS backend: the adapters of the ports (the store on DynamoDB, the intake
//! queue on SQS, domain events on EventBridge, reminders on EventBridge Scheduler), channel
//! secrets from Secrets Manager, the stack's setting names, the resource definitions shared
//! with `template.yaml`, and the one place that assembles them ([`assembly::AwsPorts`]).
//!
//! Retries written once ([`retry`]): the unprocessed part of a batch call, and a conditional
//! write that lost to another writer, with jittered backoff. Nothing here serves HTTP: the
//! routers are in `switchboard-http`, the Lambda wiring in `switchboard-lambda`.
#![warn(missing_docs)]

pub mod assembly;
pub mod dynamo;
pub mod events;
pub mod forwarder;
#[cfg(feature = "mail")]
pub mod mail;
pub mod redrive;
pub mod resources;
pub mod retry;
pub mod scheduler;
pub mod secrets;
pub mod ses;
pub mod settings;
pub mod sqs;
pub mod sqs_events;

pub use dynamo::{DynamoOutbox, DynamoStore};
pub use events::EventBridgePublisher;
pub use scheduler::SchedulerReminders;
pub use sqs::SqsIntakeQueue;
