//! Lambda function: the X (Account Activity API) intake: a subscribed account's DMs, the
//! tweets that mention or answer it, and their events; the CRC check on `GET`.
//!
//! Wiring only: configuration and clients are built once, at start (a missing setting stops
//! start-up with its name); the handler is the shared webhook router.

use switchboard_core::model::Webhook;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    switchboard_lambda::init_lambda_tracing();
    let app = switchboard_lambda::webhook_app(&[Webhook::X]).await?;
    lambda_http::run(app).await
}
