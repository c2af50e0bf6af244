//! Lambda function: the Telegram Bot API intake (a bot's updates, and those of the Telegram
//! Business accounts connected to it).
//!
//! Wiring only: configuration and clients are built once, at start (a missing setting stops
//! start-up with its name); the handler is the shared webhook router.

use switchboard_core::model::Webhook;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    switchboard_lambda::init_lambda_tracing();
    let app = switchboard_lambda::webhook_app(&[Webhook::Telegram]).await?;
    lambda_http::run(app).await
}
