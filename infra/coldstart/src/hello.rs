//! `coldstart-hello`: the smallest Rust Lambda function, the baseline of the `coldstart`
//! harness. It answers every event with `"ok"`; it is built with the workspace's release profile,
//! like the webhook functions, so the difference between the two is what the functions add.
//!
//! lambda_runtime comes through lambda_http's re-export, with the features the functions build it
//! with.

use lambda_http::lambda_runtime::{self, Error, LambdaEvent, service_fn};
use serde_json::{Value, json};

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| async {
        Ok::<_, Error>(json!("ok"))
    }))
    .await
}
