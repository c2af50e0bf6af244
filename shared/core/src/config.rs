//! Configuration from the environment, the same names for the Lambda functions and
//! `switchboard serve`. Read and checked once, at start; a missing or bad setting stops start-up
//! with an error that names it.

use crate::model::Webhook;
use crate::verify::{MetaVerifier, Secret};

/// A setting that is missing or unusable. The message names the variable and what to put there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set (or empty).
    #[error("missing setting {name}: {hint}")]
    Missing {
        /// The environment variable.
        name: String,
        /// What it should hold.
        hint: String,
    },
    /// A variable is set to something unusable.
    #[error("invalid setting {name}: {reason}")]
    Invalid {
        /// The environment variable.
        name: String,
        /// Why it cannot be used.
        reason: String,
    },
}

/// Where settings are looked up: the process environment, or a map in tests.
pub trait Source {
    /// The value of `name`, `None` when unset or empty.
    fn get(&self, name: &str) -> Option<String>;

    /// A required value.
    fn require(&self, name: &str, hint: &str) -> Result<String, ConfigError> {
        self.get(name).ok_or_else(|| ConfigError::Missing {
            name: name.to_owned(),
            hint: hint.to_owned(),
        })
    }
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Source for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

impl<F: Fn(&str) -> Option<String>> Source for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name).filter(|v| !v.trim().is_empty())
    }
}

/// The table name: `SWITCHBOARD_TABLE`.
pub const TABLE: &str = "SWITCHBOARD_TABLE";
/// The intake queue URL: `SWITCHBOARD_INTAKE_QUEUE_URL`.
pub const INTAKE_QUEUE_URL: &str = "SWITCHBOARD_INTAKE_QUEUE_URL";
/// Days stored data is kept: `SWITCHBOARD_RETENTION_DAYS` (default 365).
pub const RETENTION_DAYS: &str = "SWITCHBOARD_RETENTION_DAYS";
/// The priority configuration file: `SWITCHBOARD_PRIORITY` (a path; default: the
/// `config/priority.toml` built into the binary).
pub const PRIORITY: &str = "SWITCHBOARD_PRIORITY";
/// The SLA policy file: `SWITCHBOARD_POLICY` (a path; default: the `config/sla.toml` built
/// into the binary).
pub const POLICY: &str = "SWITCHBOARD_POLICY";
/// The EventBridge Scheduler group of the SLA reminders: `SWITCHBOARD_SCHEDULE_GROUP`.
pub const SCHEDULE_GROUP: &str = "SWITCHBOARD_SCHEDULE_GROUP";
/// The ARN of the reminder queue the schedules send to: `SWITCHBOARD_REMINDER_QUEUE_ARN`.
pub const REMINDER_QUEUE_ARN: &str = "SWITCHBOARD_REMINDER_QUEUE_ARN";
/// The URL of the reminder queue (for `serve --backend aws`): `SWITCHBOARD_REMINDER_QUEUE_URL`.
pub const REMINDER_QUEUE_URL: &str = "SWITCHBOARD_REMINDER_QUEUE_URL";
/// The role EventBridge Scheduler assumes to send reminders: `SWITCHBOARD_SCHEDULER_ROLE_ARN`.
pub const SCHEDULER_ROLE_ARN: &str = "SWITCHBOARD_SCHEDULER_ROLE_ARN";
/// The EventBridge bus of the domain events: `SWITCHBOARD_EVENT_BUS`.
pub const EVENT_BUS: &str = "SWITCHBOARD_EVENT_BUS";
/// Default retention.
pub const DEFAULT_RETENTION_DAYS: u32 = 365;

/// The name of a per-webhook variable: `SWITCHBOARD_WHATSAPP_APP_SECRETS`, …
pub fn channel_var(channel: Webhook, suffix: &str) -> String {
    format!(
        "SWITCHBOARD_{}_{suffix}",
        channel.as_str().to_ascii_uppercase()
    )
}

/// Retention in days, from `SWITCHBOARD_RETENTION_DAYS` or the default.
pub fn retention_days(source: &impl Source) -> Result<u32, ConfigError> {
    match source.get(RETENTION_DAYS) {
        None => Ok(DEFAULT_RETENTION_DAYS),
        Some(v) => match v.trim().parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(ConfigError::Invalid {
                name: RETENTION_DAYS.into(),
                reason: "expected a whole number of days, at least 1".into(),
            }),
        },
    }
}

/// The priority configuration: the file `SWITCHBOARD_PRIORITY` names, or the shipped default.
/// A file that cannot be read or is not a valid configuration stops start-up with the reason.
pub fn priority_config(
    source: &impl Source,
) -> Result<crate::priority::PriorityConfig, ConfigError> {
    match source.get(PRIORITY) {
        None => Ok(crate::priority::PriorityConfig::default_config()),
        Some(path) => priority_config_file(PRIORITY, std::path::Path::new(path.trim())),
    }
}

/// The priority configuration in the file at `path`; `origin` names the setting (or flag)
/// that gave the path, for the error.
pub fn priority_config_file(
    origin: &str,
    path: &std::path::Path,
) -> Result<crate::priority::PriorityConfig, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name: origin.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
    crate::priority::PriorityConfig::parse(&text)
        .map_err(|e| invalid(format!("{}: {e}", path.display())))
}

/// The SLA policy: the file `SWITCHBOARD_POLICY` names, or the shipped default. A file that
/// cannot be read or is not a valid policy stops start-up with the reason.
pub fn sla_policy(source: &impl Source) -> Result<crate::sla::SlaPolicy, ConfigError> {
    match source.get(POLICY) {
        None => Ok(crate::sla::SlaPolicy::default_policy()),
        Some(path) => sla_policy_file(POLICY, std::path::Path::new(path.trim())),
    }
}

/// The SLA policy in the file at `path`; `origin` names the setting (or flag) that gave the
/// path, for the error.
pub fn sla_policy_file(
    origin: &str,
    path: &std::path::Path,
) -> Result<crate::sla::SlaPolicy, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name: origin.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
    crate::sla::SlaPolicy::parse(&text).map_err(|e| invalid(format!("{}: {e}", path.display())))
}

/// The verifier of a Meta channel from plain variables, for local use:
/// `SWITCHBOARD_<CHANNEL>_APP_SECRETS` (comma-separated, newest first) and
/// `SWITCHBOARD_<CHANNEL>_VERIFY_TOKEN`. On Lambda the same values come from Secrets Manager.
pub fn meta_verifier(source: &impl Source, channel: Webhook) -> Result<MetaVerifier, ConfigError> {
    let secrets_var = channel_var(channel, "APP_SECRETS");
    let secrets = source.require(
        &secrets_var,
        "the app secret(s) of the Meta app, comma-separated (App settings > Basic > App secret)",
    )?;
    let token = source.require(
        &channel_var(channel, "VERIFY_TOKEN"),
        "the verify token you type in the Meta app's webhook settings",
    )?;
    meta_verifier_from_parts(
        &secrets_var,
        secrets.split(',').map(str::trim).map(str::to_owned),
        token,
    )
}

/// A verifier from secrets and a token, refusing an empty secret list. `origin` names where the
/// values came from, for the error.
pub fn meta_verifier_from_parts(
    origin: &str,
    secrets: impl IntoIterator<Item = String>,
    verify_token: String,
) -> Result<MetaVerifier, ConfigError> {
    let secrets: Vec<Secret> = secrets
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .map(Secret::new)
        .collect();
    if secrets.is_empty() {
        return Err(ConfigError::Invalid {
            name: origin.to_owned(),
            reason: "no app secret given".into(),
        });
    }
    if verify_token.trim().is_empty() {
        return Err(ConfigError::Invalid {
            name: origin.to_owned(),
            reason: "empty verify token".into(),
        });
    }
    Ok(MetaVerifier::new(secrets, Secret::new(verify_token)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(pairs: &'static [(&'static str, &'static str)]) -> impl Source {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_priority_configuration_is_the_default_or_a_checked_file() {
        let default = priority_config(&source(&[])).unwrap();
        assert_eq!(default, crate::priority::PriorityConfig::default_config());
        let err = priority_config(&source(&[(PRIORITY, "/nonexistent/priority.toml")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SWITCHBOARD_PRIORITY") && err.contains("cannot read"),
            "{err}"
        );
        let dir = std::env::temp_dir().join(format!("switchboard-priority-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("bad.toml");
        std::fs::write(&bad, "default_topic = 3").unwrap();
        let err = priority_config_file("--priority", &bad)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--priority") && err.contains("bad.toml"),
            "{err}"
        );
        let good = dir.join("good.toml");
        std::fs::write(&good, crate::priority::config::DEFAULT_TOML).unwrap();
        assert_eq!(priority_config_file("--priority", &good).unwrap(), default);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_secret_is_named() {
        let err = meta_verifier(&source(&[]), Webhook::Whatsapp).unwrap_err();
        assert!(
            err.to_string().contains("SWITCHBOARD_WHATSAPP_APP_SECRETS"),
            "{err}"
        );
        let err = meta_verifier(
            &source(&[("SWITCHBOARD_WHATSAPP_APP_SECRETS", "a,b")]),
            Webhook::Whatsapp,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("SWITCHBOARD_WHATSAPP_VERIFY_TOKEN"),
            "{err}"
        );
    }

    #[test]
    fn secrets_are_split_on_commas_and_blank_ones_refused() {
        let ok = meta_verifier(
            &source(&[
                ("SWITCHBOARD_WHATSAPP_APP_SECRETS", " new , old "),
                ("SWITCHBOARD_WHATSAPP_VERIFY_TOKEN", "t"),
            ]),
            Webhook::Whatsapp,
        )
        .unwrap();
        let body = b"{}";
        let sig = crate::verify::sign("old", body);
        assert!(ok.verify(Some(sig.as_bytes()), body).is_ok());
        let err = meta_verifier(
            &source(&[
                ("SWITCHBOARD_WHATSAPP_APP_SECRETS", " , "),
                ("SWITCHBOARD_WHATSAPP_VERIFY_TOKEN", "t"),
            ]),
            Webhook::Whatsapp,
        );
        assert!(matches!(err, Err(ConfigError::Invalid { .. })));
    }

    #[test]
    fn retention_defaults_and_rejects_nonsense() {
        assert_eq!(retention_days(&source(&[])), Ok(365));
        assert_eq!(
            retention_days(&source(&[("SWITCHBOARD_RETENTION_DAYS", "30")])),
            Ok(30)
        );
        assert!(retention_days(&source(&[("SWITCHBOARD_RETENTION_DAYS", "0")])).is_err());
    }
}
