//! Lambda function: the intake forwarder, consumer of the outbox table's stream (DynamoDB
//! event source mapping with `ReportBatchItemFailures`): sends the queue entries the intake
//! wrote there to the FIFO intake queue, in order.
//!
//! Wiring only: the queue's URL is read once, at start (missing, start-up stops naming
//! `SWITCHBOARD_INTAKE_QUEUE_URL`); the handler is the shared forwarder.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use switchboard_lambda::{StreamEvent, StreamResponse};

#[tokio::main]
async fn main() -> Result<(), Error> {
    switchboard_lambda::init_lambda_tracing();
    let forwarder = switchboard_lambda::forwarder_app().await?;
    let forwarder = &forwarder;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<StreamEvent>| async move {
            Ok::<StreamResponse, Error>(forwarder.forward(&event.payload).await)
        },
    ))
    .await
}
