//! Lambda function: the agent API under `/api` (the team queues by priority, conversations and
//! their SLA times, customer timelines across channels, links and tiers, and an agent tool's
//! `POST /api/conversations/{id}/answered`), behind the HTTP API with IAM authorization.
//!
//! Wiring only: configuration (the priority file's teams included) and clients are built once,
//! at start (a missing or bad setting stops start-up with its name); the handler is the shared
//! API router.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    switchboard_lambda::init_lambda_tracing();
    let app = switchboard_lambda::agent_api_app().await?;
    lambda_http::run(app).await
}
