//! Lambda function: the e-mail intake on AWS. Amazon SES's receipt rule stores each message in
//! the mail bucket; the bucket's `ObjectCreated` event invokes this function, which takes each
//! message in (see `switchboard_aws::mail`).
//!
//! Wiring only: settings and clients are built once, at start (a missing setting stops
//! start-up with its name).

use aws_lambda_events::event::s3::S3Event;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    switchboard_lambda::init_lambda_tracing();
    let intake = switchboard_lambda::mail_intake_app().await?;
    let intake = &intake;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<S3Event>| async move {
        intake.handle(&event.payload).await?;
        Ok::<(), Error>(())
    }))
    .await
}
