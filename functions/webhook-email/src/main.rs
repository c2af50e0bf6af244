//! Lambda function: the e-mail intake for raw RFC 5322 messages signed with Standard Webhooks
//! (a mail relay, an import): each message one record of the `email` channel, threads joined.
//!
//! Wiring only: configuration and clients are built once, at start (a missing setting stops
//! start-up with its name); the handler is the shared webhook router.

use switchboard_core::model::Webhook;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    switchboard_lambda::init_lambda_tracing();
    let app = switchboard_lambda::webhook_app(&[Webhook::Email]).await?;
    lambda_http::run(app).await
}
