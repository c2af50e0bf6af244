//! The first run: `switchboard serve` on the embedded backend with no webhook configured
//! starts anyway, on development secrets it generates once into the data folder
//! (`dev-secrets.json`: every secret each webhook reads, readable by its owner only) and
//! says how to sign a sample. Settings in the environment always win; a webhook set partly
//! there (a secret without its verify token) still stops start-up, naming what is missing.
//! Never used on the AWS backend.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use switchboard_core::channels::{self, ChannelModule};
use switchboard_core::config::Source;

/// The file, in the data folder.
pub const FILE: &str = "dev-secrets.json";

/// Development secrets: the settings a webhook would read from the environment.
#[derive(Debug, Clone)]
pub struct DevSecrets {
    /// Where they are kept.
    pub path: PathBuf,
    values: BTreeMap<String, String>,
}

/// Why the development secrets could not be kept.
#[derive(Debug, thiserror::Error)]
#[error("development secrets in {path}: {source}")]
pub struct DevSecretsError {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

fn random_hex(bytes: usize) -> Result<String, std::io::Error> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(hex::encode(buf))
}

impl DevSecrets {
    /// The secrets of `data`, generated and written the first time. Answers them and whether
    /// they were created now.
    pub fn load_or_create(data: &Path) -> Result<(Self, bool), DevSecretsError> {
        let path = data.join(FILE);
        let fail = |source| DevSecretsError {
            path: path.clone(),
            source,
        };
        if let Ok(text) = std::fs::read_to_string(&path) {
            let values: BTreeMap<String, String> = serde_json::from_str(&text)
                .map_err(|e| fail(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
            return Ok((Self { path, values }, false));
        }
        std::fs::create_dir_all(data).map_err(fail)?;
        let mut values = BTreeMap::new();
        for module in channels::REGISTRY {
            let webhook = module.webhook().as_str().to_ascii_uppercase();
            for field in module.secrets() {
                values.insert(
                    format!("SWITCHBOARD_{webhook}_{}", field.env),
                    format!("{}{}", field.dev_prefix, random_hex(24).map_err(fail)?),
                );
            }
        }
        let text = serde_json::to_string_pretty(&values).map_err(std::io::Error::other);
        write_private(&path, text.map_err(fail)?.as_bytes()).map_err(fail)?;
        Ok((Self { path, values }, true))
    }

    /// The app secret of `module`'s webhook.
    pub fn app_secret(&self, module: &dyn ChannelModule) -> Option<&str> {
        let webhook = module.webhook().as_str().to_ascii_uppercase();
        self.values
            .get(&format!("SWITCHBOARD_{webhook}_APP_SECRETS"))
            .map(String::as_str)
    }

    /// What to tell the person who started `serve` on `addr` (on the terminal, never in the
    /// log): the file, and how to sign a sample. The secrets themselves are printed once, when
    /// they are made; afterwards the sample's command reads the app secret from the file.
    pub fn banner(&self, addr: std::net::SocketAddr, created: bool) -> String {
        let path = self.path.display();
        let data = self
            .path
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let mut out = format!(
            "no webhook configured: {} development secrets in {path} (local use only).\n",
            if created { "generated" } else { "using the" }
        );
        if created {
            for (name, value) in &self.values {
                out.push_str(&format!("  {name}={value}\n"));
            }
        }
        let read = format!(
            r#"secret=$(sed -n 's/.*"SWITCHBOARD_WHATSAPP_APP_SECRETS": "\(.*\)".*/\1/p' {path})"#
        );
        out.push_str(&format!(
            "Open the console at http://{addr}/ ; fill it with a sample day: \
             switchboard demo --url http://{addr} --data {data}\n\
             Sign a delivery yourself:\n  \
             {read}\n  \
             body='{{\"object\":\"whatsapp_business_account\",\"entry\":[]}}'\n  \
             sig=$(printf %s \"$body\" | openssl dgst -sha256 -hmac \"$secret\" -hex | sed 's/^.*= //')\n  \
             curl -i http://{addr}/webhooks/whatsapp -H \"x-hub-signature-256: sha256=$sig\" \\\n    \
             -H 'content-type: application/json' --data-binary \"$body\""
        ));
        out
    }
}

/// The environment first, then the development secrets.
pub struct WithDevSecrets<'a, S: Source> {
    /// The environment.
    pub env: &'a S,
    /// The development secrets.
    pub dev: &'a DevSecrets,
}

impl<S: Source> Source for WithDevSecrets<'_, S> {
    fn get(&self, name: &str) -> Option<String> {
        self.env
            .get(name)
            .or_else(|| self.dev.values.get(name).cloned())
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_made_once_and_read_back_and_the_environment_wins() {
        let dir = tempfile::tempdir().unwrap();
        let (first, created) = DevSecrets::load_or_create(dir.path()).unwrap();
        assert!(created);
        let (again, created) = DevSecrets::load_or_create(dir.path()).unwrap();
        assert!(!created);
        assert_eq!(first.values, again.values);
        let fields: usize = channels::REGISTRY.iter().map(|m| m.secrets().len()).sum();
        assert_eq!(first.values.len(), fields);
        let secret = first.app_secret(channels::REGISTRY[0]).unwrap();
        assert!(secret.starts_with("dev-") && secret.len() == 52);
        let standard = &first.values["SWITCHBOARD_STANDARD_SECRETS"];
        switchboard_core::channels::standard::StandardSecret::parse(standard)
            .expect("a Standard Webhooks secret");
        let addr = "127.0.0.1:3000".parse().unwrap();
        assert!(first.banner(addr, true).contains(secret), "shown when made");
        let later = again.banner(addr, false);
        assert!(!later.contains(secret), "never again: {later}");
        assert!(later.contains(FILE) && later.contains("openssl dgst"));
        let env =
            |name: &str| (name == "SWITCHBOARD_WHATSAPP_VERIFY_TOKEN").then(|| "mine".to_owned());
        let source = WithDevSecrets {
            env: &env,
            dev: &first,
        };
        assert_eq!(
            source.get("SWITCHBOARD_WHATSAPP_VERIFY_TOKEN").as_deref(),
            Some("mine")
        );
        assert_eq!(
            source.get("SWITCHBOARD_WHATSAPP_APP_SECRETS").as_deref(),
            Some(secret)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&first.path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
