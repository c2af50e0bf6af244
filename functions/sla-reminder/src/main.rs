//! Lambda function: the SLA reminders, consumer of the reminder queue that EventBridge
//! Scheduler sends to (SQS event source mapping with `ReportBatchItemFailures`).
//!
//! Wiring only: configuration and clients are built once, at start; the handler is the shared
//! reminder consumer.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    switchboard_lambda::init_lambda_tracing();
    let reminders = switchboard_lambda::reminder_app().await?;
    let reminders = &reminders;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(
            switchboard_lambda::handle_sqs(reminders, event.payload).await,
        )
    }))
    .await
}
