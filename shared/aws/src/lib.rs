//! switchboard's AWS adapters: the store on DynamoDB, the intake queue on SQS, domain events on
//! EventBridge, channel secrets
//! from Secrets Manager, the resource definitions shared with `template.yaml`, and the wiring
//! that builds the webhook application from the environment.
#![warn(missing_docs)]

pub mod app;
pub mod dynamo;
pub mod events;
pub mod resources;
pub mod scheduler;
pub mod secrets;
pub mod sqs;

pub use dynamo::DynamoStore;
pub use events::EventBridgePublisher;
pub use scheduler::SchedulerReminders;
pub use sqs::SqsIntakeQueue;
