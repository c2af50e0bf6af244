//! Lambda function: the prioritizer, consumer of the intake queue (SQS event source mapping
//! with `ReportBatchItemFailures`).
//!
//! Wiring only: configuration (the priority file included) and clients are built once, at
//! start (a missing or bad setting stops start-up with its name); the handler is the shared
//! prioritizer.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    switchboard_lambda::init_lambda_tracing();
    let prioritizer = switchboard_lambda::prioritizer_app().await?;
    let prioritizer = &prioritizer;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(
            switchboard_lambda::handle_sqs(prioritizer, event.payload).await,
        )
    }))
    .await
}
