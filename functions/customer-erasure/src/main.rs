//! Lambda function: `DELETE /api/customers/{id}` — erases a person (their customers,
//! conversations, records, identities, raw deliveries, reminders) and answers the receipt,
//! behind the HTTP API with IAM authorization. A function of its own: it reads the whole table,
//! which the agent API is not allowed to.
//!
//! Wiring only: settings and clients are built once, at start (a missing or bad setting stops
//! start-up with its name); the handler is the shared erasure route.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    switchboard_lambda::init_lambda_tracing();
    let app = switchboard_lambda::erasure_app().await?;
    lambda_http::run(app).await
}
