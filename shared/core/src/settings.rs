//! Settings: where they are read from and the error that names one that is missing or wrong.
//! At the bottom of the crate, so that every layer can refuse a bad setting the same way.

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
