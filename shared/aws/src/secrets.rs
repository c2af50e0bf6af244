//! Channel secrets from AWS Secrets Manager, read once at start.
//!
//! The secret of a channel is a JSON object with one key per [`SecretField`] of its module: a
//! list field is an array (several values during a rotation) or one string, any other a
//! string. A Meta
//! webhook's: `{"app_secrets": ["<current>", "<previous, during rotation>"], "verify_token":
//! "<token>"}`.

use serde_json::Value;

use switchboard_core::channels::{ChannelModule, ChannelSecrets, SecretField};
use switchboard_core::config::ConfigError;

/// The form of the secret of `fields`, for the error that refuses another.
fn form(fields: &[SecretField]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .map(|f| {
            if f.list {
                format!("\"{}\": [\"…\"]", f.key)
            } else {
                format!("\"{}\": \"…\"", f.key)
            }
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// The values of the secret's JSON `text` for `module`, or `None` when it is not of its form.
pub fn parse(module: &dyn ChannelModule, origin: &str, text: &str) -> Option<ChannelSecrets> {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else {
        return None;
    };
    let mut secrets = ChannelSecrets::new(origin);
    for field in module.secrets() {
        let values: Vec<String> = match map.get(field.key) {
            None | Some(Value::Null) => Vec::new(),
            // A list field may hold one value as a plain string (what CloudFormation
            // generates for a new secret).
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) if field.list => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<_>>()?,
            Some(_) => return None,
        };
        secrets.set(field.key, values);
    }
    Some(secrets)
}

/// The text of the secret `arn` (named by the variable `variable`, for errors).
async fn secret_text(
    client: &aws_sdk_secretsmanager::Client,
    variable: &str,
    arn: &str,
) -> Result<String, ConfigError> {
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
    Ok(out.secret_string().unwrap_or_default().to_owned())
}

/// Reads the secret `arn` of channel `module` (named by the variable `variable`, for errors).
pub async fn channel_secrets(
    client: &aws_sdk_secretsmanager::Client,
    module: &dyn ChannelModule,
    variable: &str,
    arn: &str,
) -> Result<ChannelSecrets, ConfigError> {
    let text = secret_text(client, variable, arn).await?;
    parse(module, variable, &text).ok_or_else(|| ConfigError::Invalid {
        name: variable.to_owned(),
        reason: format!(
            "the secret is not JSON of the form {}",
            form(module.secrets())
        ),
    })
}

/// The reply token `key` (`access_token`, `bot_token`) in the secret `arn` (named by
/// `variable`, for errors); `None` when the secret has none.
pub async fn reply_token(
    client: &aws_sdk_secretsmanager::Client,
    variable: &str,
    arn: &str,
    key: &str,
) -> Result<Option<String>, ConfigError> {
    let text = secret_text(client, variable, arn).await?;
    token_in(&text, key).map_err(|reason| ConfigError::Invalid {
        name: variable.to_owned(),
        reason,
    })
}

/// The token `key` of a secret's JSON `text`.
fn token_in(text: &str, key: &str) -> Result<Option<String>, String> {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text) else {
        return Err("the secret is not a JSON object".to_owned());
    };
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(t)) if t.trim().is_empty() => Ok(None),
        Some(Value::String(t)) => Ok(Some(t.trim().to_owned())),
        Some(_) => Err(format!("{key} in the secret must be a string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::channels::meta::WHATSAPP;

    #[test]
    fn the_access_token_is_optional_and_a_string() {
        assert_eq!(
            token_in(
                r#"{"app_secrets": [], "access_token": "EAAG"}"#,
                "access_token"
            ),
            Ok(Some("EAAG".to_owned()))
        );
        assert_eq!(token_in(r#"{"app_secrets": []}"#, "access_token"), Ok(None));
        assert_eq!(
            token_in(r#"{"access_token": ""}"#, "access_token"),
            Ok(None)
        );
        assert!(token_in(r#"{"access_token": 1}"#, "access_token").is_err());
        assert!(token_in("nope", "bot_token").is_err());
    }

    #[test]
    fn a_meta_secret_is_read_by_its_fields_and_anything_else_refused() {
        let s = parse(
            &WHATSAPP,
            "ARN_VAR",
            r#"{"app_secrets": ["new", "old"], "verify_token": "t"}"#,
        )
        .unwrap();
        assert_eq!(s.list("app_secrets"), ["new", "old"]);
        assert_eq!(s.one("verify_token"), Some("t"));
        assert_eq!(s.origin, "ARN_VAR");
        for bad in [
            "not json",
            "[]",
            r#"{"app_secrets": [1], "verify_token": "t"}"#,
            r#"{"app_secrets": ["a"], "verify_token": ["t"]}"#,
        ] {
            assert!(parse(&WHATSAPP, "V", bad).is_none(), "{bad}");
        }
        let one = parse(
            &WHATSAPP,
            "V",
            r#"{"app_secrets": "a", "verify_token": "t"}"#,
        )
        .unwrap();
        assert_eq!(
            one.list("app_secrets"),
            ["a"],
            "one value of a list, as a string"
        );
        assert_eq!(
            form(WHATSAPP.secrets()),
            r#"{"app_secrets": ["…"], "verify_token": "…"}"#
        );
    }
}
