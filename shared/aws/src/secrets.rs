//! Channel secrets from AWS Secrets Manager, read once at start.
//!
//! The secret of a Meta channel is JSON:
//! `{"app_secrets": ["<current>", "<previous, during rotation>"], "verify_token": "<token>"}`.

use serde::Deserialize;

use switchboard_core::config::{ConfigError, meta_verifier_from_parts};
use switchboard_core::verify::MetaVerifier;

#[derive(Deserialize)]
struct MetaSecret {
    #[serde(default)]
    app_secrets: Vec<String>,
    #[serde(default)]
    verify_token: String,
}

/// Reads the Meta channel secret `arn` (named by the variable `variable`, for errors).
pub async fn meta_verifier(
    client: &aws_sdk_secretsmanager::Client,
    variable: &str,
    arn: &str,
) -> Result<MetaVerifier, ConfigError> {
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| ConfigError::Invalid {
            name: variable.to_owned(),
            reason: format!(
                "cannot read the secret it names: {}",
                aws_sdk_secretsmanager::error::DisplayErrorContext(e)
            ),
        })?;
    let text = out.secret_string().unwrap_or_default();
    let secret: MetaSecret = serde_json::from_str(text).map_err(|_| ConfigError::Invalid {
        name: variable.to_owned(),
        reason: r#"the secret is not JSON of the form {"app_secrets": ["…"], "verify_token": "…"}"#
            .into(),
    })?;
    meta_verifier_from_parts(variable, secret.app_secrets, secret.verify_token)
}
