//! Configuration from the environment that does not depend on the backend, the same names for
//! the Lambda functions and `switchboard serve`: retention, the priority file, the SLA policy,
//! each channel's secrets for local use. (The AWS resources' names are in
//! `switchboard_aws::settings`.) Read and checked once, at start; a missing or bad setting
//! stops start-up with an error that names it.

use std::path::Path;

use crate::channels::{ChannelModule, ChannelSecrets, Verification};
use crate::model::Webhook;
use crate::priority::PriorityConfig;
use crate::sla::SlaPolicy;

pub use crate::settings::{ConfigError, ProcessEnv, Source};

/// Days stored data is kept: `SWITCHBOARD_RETENTION_DAYS` (default 365).
pub const RETENTION_DAYS: &str = "SWITCHBOARD_RETENTION_DAYS";
/// The priority configuration file: `SWITCHBOARD_PRIORITY` (a path; default: the
/// `config/priority.toml` built into the binary).
pub const PRIORITY: &str = "SWITCHBOARD_PRIORITY";
/// The SLA policy file: `SWITCHBOARD_POLICY` (a path; default: the `config/sla.toml` built
/// into the binary).
pub const POLICY: &str = "SWITCHBOARD_POLICY";
/// Default retention.
pub const DEFAULT_RETENTION_DAYS: u32 = 365;
/// The urgency model's encoder file: `SWITCHBOARD_MODEL` (a path). On Lambda the prioritizer's
/// layer puts it at `/opt/switchboard/e5-small-enpt-q4.bin`; unset, the word lists alone
/// prioritize. (`switchboard serve` reads it as the default of `--model`.)
pub const MODEL: &str = "SWITCHBOARD_MODEL";

/// The urgency model's file, from `SWITCHBOARD_MODEL`; `None` when unset.
pub fn model_path(source: &impl Source) -> Option<std::path::PathBuf> {
    source
        .get(MODEL)
        .map(|p| std::path::PathBuf::from(p.trim()))
}

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

/// Whether a WhatsApp status of a message switchboard never saw answers a waiting customer:
/// `SWITCHBOARD_STATUSES_ANSWER`, `true` (the default) or `false`.
pub const STATUSES_ANSWER: &str = "SWITCHBOARD_STATUSES_ANSWER";

/// Reads [`STATUSES_ANSWER`].
pub fn statuses_answer(source: &impl Source) -> Result<bool, ConfigError> {
    flag(source, STATUSES_ANSWER, true)
}

/// Whether identities carrying the same e-mail address, phone number or WhatsApp user id are
/// linked into one customer automatically: `SWITCHBOARD_AUTO_LINK`, `true` (the default) or
/// `false` (identifiers are still noted for lookups; only agents link).
pub const AUTO_LINK: &str = "SWITCHBOARD_AUTO_LINK";

/// Reads [`AUTO_LINK`].
pub fn auto_link(source: &impl Source) -> Result<bool, ConfigError> {
    flag(source, AUTO_LINK, true)
}

/// A `true`/`false` setting (`1`/`0` too), `default` when unset or empty.
fn flag(source: &impl Source, name: &str, default: bool) -> Result<bool, ConfigError> {
    match source.get(name).as_deref().map(str::trim) {
        None | Some("") => Ok(default),
        Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => Ok(false),
        Some(_) => Err(ConfigError::Invalid {
            name: name.into(),
            reason: "expected true or false".into(),
        }),
    }
}

/// The token every `/api` route of `switchboard serve` requires, and the console asks for:
/// `SWITCHBOARD_API_TOKEN` (at least 16 characters). Unset: no token, fine on loopback.
pub const API_TOKEN: &str = "SWITCHBOARD_API_TOKEN";

/// Reads [`API_TOKEN`].
pub fn api_token(source: &impl Source) -> Result<Option<crate::verify::Secret>, ConfigError> {
    match source.get(API_TOKEN).map(|t| t.trim().to_owned()) {
        None => Ok(None),
        Some(t) if t.chars().count() >= 16 && !t.chars().any(char::is_whitespace) => {
            Ok(Some(crate::verify::Secret::new(t)))
        }
        Some(_) => Err(ConfigError::Invalid {
            name: API_TOKEN.into(),
            reason: "expected at least 16 characters without spaces (e.g. openssl rand -hex 24)"
                .into(),
        }),
    }
}

/// How long a business account may send nothing, in business hours of the SLA policy's
/// default calendar, before it is reported silent: `SWITCHBOARD_SILENT_AFTER` (a duration as
/// in the policy file, `2h`, `45m`, `30s`; `off` disables the watch). Default
/// [`DEFAULT_SILENT_AFTER`].
pub const SILENT_AFTER: &str = "SWITCHBOARD_SILENT_AFTER";
/// The default of [`SILENT_AFTER`].
pub const DEFAULT_SILENT_AFTER: &str = "2h";

/// Reads [`SILENT_AFTER`]: `None` when it is `off`.
pub fn silent_after(source: &impl Source) -> Result<Option<chrono::Duration>, ConfigError> {
    let value = source.get(SILENT_AFTER);
    let text = value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or(DEFAULT_SILENT_AFTER);
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    match crate::sla::policy::parse_duration(text) {
        Ok(d) if d > chrono::Duration::zero() => Ok(Some(d)),
        Ok(_) => Err(ConfigError::Invalid {
            name: SILENT_AFTER.into(),
            reason: "expected a duration longer than zero, or off".into(),
        }),
        Err(e) => Err(ConfigError::Invalid {
            name: SILENT_AFTER.into(),
            reason: format!("{e} (or off)"),
        }),
    }
}

/// The Graph API replies are sent to: `SWITCHBOARD_GRAPH_API_URL` (default
/// [`DEFAULT_GRAPH_API_URL`]).
pub const GRAPH_API_URL: &str = "SWITCHBOARD_GRAPH_API_URL";
/// Meta's Graph API, at the version switchboard is written against.
pub const DEFAULT_GRAPH_API_URL: &str = "https://graph.facebook.com/v23.0";
/// Telegram's Bot API: `SWITCHBOARD_TELEGRAM_API_URL` (default [`DEFAULT_TELEGRAM_API_URL`]).
pub const TELEGRAM_API_URL: &str = "SWITCHBOARD_TELEGRAM_API_URL";
/// Telegram's Bot API server.
pub const DEFAULT_TELEGRAM_API_URL: &str = "https://api.telegram.org";
/// X's API: `SWITCHBOARD_X_API_URL` (default [`DEFAULT_X_API_URL`]).
pub const X_API_URL: &str = "SWITCHBOARD_X_API_URL";
/// X's API server (its `/2/` endpoints).
pub const DEFAULT_X_API_URL: &str = "https://api.x.com";

/// Reads [`GRAPH_API_URL`]: an `https` URL, or `http` on loopback (a fake Graph API in tests),
/// without a trailing slash.
pub fn graph_api_url(source: &impl Source) -> Result<String, ConfigError> {
    api_url(source, GRAPH_API_URL, DEFAULT_GRAPH_API_URL)
}

/// Reads [`TELEGRAM_API_URL`], as [`graph_api_url`] does.
pub fn telegram_api_url(source: &impl Source) -> Result<String, ConfigError> {
    api_url(source, TELEGRAM_API_URL, DEFAULT_TELEGRAM_API_URL)
}

/// Reads [`X_API_URL`], as [`graph_api_url`] does.
pub fn x_api_url(source: &impl Source) -> Result<String, ConfigError> {
    api_url(source, X_API_URL, DEFAULT_X_API_URL)
}

/// The provider API base URL in `name` (else `default`), checked by [`check_api_url`],
/// without a trailing slash.
fn api_url(source: &impl Source, name: &str, default: &str) -> Result<String, ConfigError> {
    let text = source
        .get(name)
        .map(|v| v.trim().trim_end_matches('/').to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned());
    check_api_url(&text).map_err(|reason| ConfigError::Invalid {
        name: name.into(),
        reason,
    })?;
    Ok(text)
}

/// Whether `url` can be a provider API's base URL: `https://host[/path]`, or `http://` to
/// `127.0.0.1`, `[::1]` or `localhost`; no query, no credentials.
pub fn check_api_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("not a URL ({e}): expected https://host/path"))?;
    let host = uri.host().unwrap_or_default();
    let loopback = matches!(host, "127.0.0.1" | "[::1]" | "::1" | "localhost");
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if loopback => {}
        _ => return Err("expected an https:// URL (http:// only on loopback)".into()),
    }
    if host.is_empty()
        || uri.query().is_some()
        || uri.authority().is_some_and(|a| a.as_str().contains('@'))
    {
        return Err("expected https://host/path, without credentials or a query".into());
    }
    Ok(())
}

/// A configuration file read and checked whole by `parse`; `origin` names the setting (or
/// flag) that gave the path, for the error, which also says what is wrong with the file.
fn config_file<T, E: std::fmt::Display>(
    origin: &str,
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name: origin.to_owned(),
        reason,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(format!("cannot read {}: {e}", path.display())))?;
    parse(&text).map_err(|e| invalid(format!("{}: {e}", path.display())))
}

/// The priority configuration: the file `SWITCHBOARD_PRIORITY` names, or the shipped default.
/// A file that cannot be read or is not a valid configuration stops start-up with the reason.
pub fn priority_config(source: &impl Source) -> Result<PriorityConfig, ConfigError> {
    let path = source.get(PRIORITY);
    priority_config_at(PRIORITY, path.as_deref().map(|p| Path::new(p.trim())))
}

/// The priority configuration in the file at `path` (`origin` names the setting or flag that
/// gave it, for the error), or the shipped default when there is none.
pub fn priority_config_at(
    origin: &str,
    path: Option<&Path>,
) -> Result<PriorityConfig, ConfigError> {
    match path {
        None => Ok(PriorityConfig::default_config()),
        Some(path) => config_file(origin, path, PriorityConfig::parse),
    }
}

/// The team names of the priority configuration (the file `SWITCHBOARD_PRIORITY` names, or the
/// shipped default), sorted, each once: what the agent API needs of it. Only its `[teams]`
/// table is read: the whole configuration is checked where it scores (the prioritizer, `serve`),
/// and a function that only lists queues links none of the scorer.
pub fn priority_teams(source: &impl Source) -> Result<Vec<String>, ConfigError> {
    match source.get(PRIORITY) {
        None => {
            let shipped: Teams = serde_json::from_str(crate::priority::config::DEFAULT_JSON)
                .expect("config/priority.toml has its [teams] (checked by a test)");
            Ok(team_names(shipped).expect("config/priority.toml names teams"))
        }
        Some(path) => config_file(PRIORITY, Path::new(path.trim()), |text| {
            team_names(toml::from_str(text).map_err(|e| e.to_string())?)
        }),
    }
}

/// The `[teams]` of a priority configuration.
#[derive(serde::Deserialize)]
struct Teams {
    teams: std::collections::BTreeMap<String, String>,
}

/// The team names of `[teams]`, sorted, each once.
fn team_names(parsed: Teams) -> Result<Vec<String>, String> {
    let mut teams: Vec<String> = parsed.teams.into_values().collect();
    teams.sort();
    teams.dedup();
    if teams.is_empty() {
        return Err("[teams] names no team".to_owned());
    }
    Ok(teams)
}

/// The SLA policy: the file `SWITCHBOARD_POLICY` names, or the shipped default. A file that
/// cannot be read or is not a valid policy stops start-up with the reason.
pub fn sla_policy(source: &impl Source) -> Result<SlaPolicy, ConfigError> {
    let path = source.get(POLICY);
    sla_policy_at(POLICY, path.as_deref().map(|p| Path::new(p.trim())))
}

/// The SLA policy in the file at `path` (`origin` names the setting or flag that gave it, for
/// the error), or the shipped default when there is none.
pub fn sla_policy_at(origin: &str, path: Option<&Path>) -> Result<SlaPolicy, ConfigError> {
    match path {
        None => Ok(SlaPolicy::default_policy()),
        Some(path) => config_file(origin, path, SlaPolicy::parse),
    }
}

/// The secrets of channel `module` from plain variables, for local use: for each of its
/// [`SecretField`](crate::channels::SecretField)s, `SWITCHBOARD_<WEBHOOK>_<FIELD>` (a list comma-separated, newest first),
/// e.g. `SWITCHBOARD_WHATSAPP_APP_SECRETS` and `SWITCHBOARD_WHATSAPP_VERIFY_TOKEN`. On Lambda
/// the same values come from Secrets Manager. A missing variable is named in the error.
pub fn channel_secrets(
    source: &impl Source,
    module: &dyn ChannelModule,
) -> Result<ChannelSecrets, ConfigError> {
    let fields = module.secrets();
    let origin = fields
        .first()
        .map(|f| channel_var(module.webhook(), f.env))
        .unwrap_or_default();
    let mut secrets = ChannelSecrets::new(origin);
    for field in fields {
        let value = source.require(&channel_var(module.webhook(), field.env), field.hint)?;
        if field.list {
            secrets.set(field.key, value.split(',').map(str::to_owned));
        } else {
            secrets.set(field.key, [value]);
        }
    }
    Ok(secrets)
}

/// The verification of channel `module` from plain variables ([`channel_secrets`]).
pub fn channel_verification(
    source: &impl Source,
    module: &dyn ChannelModule,
) -> Result<Verification, ConfigError> {
    module.verification(&channel_secrets(source, module)?)
}

/// Whether any setting of channel `module` is present: its secret's ARN
/// (`SWITCHBOARD_<WEBHOOK>_SECRET_ARN`) or one of its local variables. `serve` serves the
/// webhooks that have settings.
pub fn channel_configured(source: &impl Source, module: &dyn ChannelModule) -> bool {
    std::iter::once(SECRET_ARN_SUFFIX)
        .chain(module.secrets().iter().map(|f| f.env))
        .any(|suffix| source.get(&channel_var(module.webhook(), suffix)).is_some())
}

/// The suffix of the variable naming a channel's Secrets Manager secret:
/// `SWITCHBOARD_<WEBHOOK>_SECRET_ARN`.
pub const SECRET_ARN_SUFFIX: &str = "SECRET_ARN";

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
    fn the_teams_are_read_alone_and_match_the_whole_configuration() {
        let mut whole: Vec<String> = PriorityConfig::default_config()
            .teams
            .into_values()
            .collect();
        whole.sort();
        whole.dedup();
        assert_eq!(priority_teams(&source(&[])).unwrap(), whole);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("priority.toml");
        std::fs::write(&file, "[teams]\nbilling = \"money\"\nrefund = \"money\"\n").unwrap();
        let path: &'static str = Box::leak(file.to_string_lossy().into_owned().into_boxed_str());
        let pairs: &'static [(&str, &str)] = Box::leak(Box::new([(PRIORITY, path)]));
        assert_eq!(priority_teams(&source(pairs)).unwrap(), ["money"]);
        std::fs::write(&file, "[levels]\np1 = 3\n").unwrap();
        let err = priority_teams(&source(pairs)).unwrap_err().to_string();
        assert!(err.contains(PRIORITY) && err.contains("teams"), "{err}");
    }

    #[test]
    fn the_graph_api_url_is_https_or_loopback_http() {
        assert_eq!(graph_api_url(&source(&[])).unwrap(), DEFAULT_GRAPH_API_URL);
        assert_eq!(
            graph_api_url(&source(&[(GRAPH_API_URL, "http://127.0.0.1:9/v23.0/")])).unwrap(),
            "http://127.0.0.1:9/v23.0"
        );
        for bad in [
            "http://graph.facebook.com/v23.0",
            "ftp://x",
            "not a url",
            "https://user:pw@graph.facebook.com",
            "https://graph.facebook.com/v23.0?access_token=x",
        ] {
            let pairs: &'static [(&str, &str)] = Box::leak(Box::new([(GRAPH_API_URL, bad)]));
            let err = graph_api_url(&source(pairs)).unwrap_err().to_string();
            assert!(err.contains(GRAPH_API_URL), "{bad}: {err}");
        }
        assert_eq!(
            telegram_api_url(&source(&[])).unwrap(),
            DEFAULT_TELEGRAM_API_URL
        );
        let err = telegram_api_url(&source(&[(TELEGRAM_API_URL, "http://api.telegram.org")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains(TELEGRAM_API_URL), "{err}");
        assert_eq!(x_api_url(&source(&[])).unwrap(), DEFAULT_X_API_URL);
        let err = x_api_url(&source(&[(X_API_URL, "http://api.x.com")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains(X_API_URL), "{err}");
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
        let err = priority_config_at("--priority", Some(&bad))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--priority") && err.contains("bad.toml"),
            "{err}"
        );
        let good = dir.join("good.toml");
        std::fs::write(&good, crate::priority::config::DEFAULT_TOML).unwrap();
        assert_eq!(
            priority_config_at("--priority", Some(&good)).unwrap(),
            default
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    use crate::channels::meta::{MetaVerifier, WHATSAPP};

    fn meta_verifier(source: &impl Source, _: Webhook) -> Result<MetaVerifier, ConfigError> {
        crate::channels::meta::verifier(&channel_secrets(source, &WHATSAPP)?)
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
        let sig = crate::channels::meta::sign("old", body);
        assert!(ok.verify_header(Some(sig.as_bytes()), body).is_ok());
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
