//! The priority configuration: weights, word lists per language, topics and their teams.
//!
//! It is a TOML file. switchboard ships a documented default, `config/priority.toml`, built
//! into every binary; `SWITCHBOARD_PRIORITY` (a path) replaces it. A file is checked whole when
//! it is loaded: [`PriorityConfig::parse`] names the first thing wrong with it.

use serde::Deserialize;
use std::collections::BTreeMap;

use super::text::Phrase;

/// The configuration shipped with switchboard (`config/priority.toml`).
pub const DEFAULT_TOML: &str = include_str!("../../../../config/priority.toml");

/// [`DEFAULT_TOML`] as JSON, made by the build script.
pub(crate) const DEFAULT_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/priority.json"));

/// The priority configuration, as written in the file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorityConfig {
    /// The topic of a message no topical signal matched.
    pub default_topic: String,
    /// Score thresholds of P1, P2 and P3; below `p3` is P4.
    pub levels: Levels,
    /// The team of each topic.
    pub teams: BTreeMap<String, String>,
    /// Weights of the signals read from the shape of the message.
    pub style: Style,
    /// Weights of the customer's history.
    pub history: HistoryWeights,
    /// Content signals, by name.
    pub signals: BTreeMap<String, Signal>,
}

/// Score thresholds: a score of at least `p1` is P1, and so on; below `p3` is P4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Levels {
    /// Lowest score of P1.
    pub p1: i32,
    /// Lowest score of P2.
    pub p2: i32,
    /// Lowest score of P3.
    pub p3: i32,
}

/// Signals from the shape of the message rather than its words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Style {
    /// Mostly capital letters (at least 8 letters, 70 % or more of them capitals).
    pub shouting: i32,
    /// `!!`, `??`, `?!` and longer runs.
    pub repeated_punctuation: i32,
    /// A public comment or mention that carries a problem (any complaint signal).
    pub public: i32,
    /// A question with no complaint signal: a simple question.
    pub question: i32,
}

/// A weight per occurrence, up to a maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerCount {
    /// Added for each occurrence.
    pub each: i32,
    /// The most all occurrences together add.
    pub max: i32,
}

impl PerCount {
    /// The weight of `n` occurrences.
    pub fn weight(&self, n: u32) -> i32 {
        let n = i32::try_from(n).unwrap_or(i32::MAX);
        self.each.saturating_mul(n).min(self.max)
    }
}

/// Weights of the customer's service history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryWeights {
    /// How far back the history is read, in days (contacts use 1 and 7 days within it).
    pub lookback_days: u32,
    /// Another conversation of the customer, on any channel, is waiting for an answer.
    pub open_elsewhere: i32,
    /// Each earlier message of the customer in the last 24 hours.
    pub contacts_24h: PerCount,
    /// Each earlier message of the customer in the last 7 days, before the last 24 hours.
    pub contacts_7d: PerCount,
    /// Each earlier SLA breach on the customer's conversations.
    pub breaches: PerCount,
    /// Each earlier conversation of the customer that carried a complaint.
    pub complaints: PerCount,
    /// The customer's tier is `vip`.
    pub vip: i32,
}

/// A content signal: phrases in any number of languages and what finding one means.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signal {
    /// Added to the score when any of the phrases is found (once, however many are found).
    pub weight: i32,
    /// The topic this signal points to, if any.
    #[serde(default)]
    pub topic: Option<String>,
    /// Whether a message with this signal counts as a complaint in the customer's history.
    #[serde(default)]
    pub complaint: bool,
    /// Phrases by language code (`es`, `en`, `pt`, …); matching ignores the language.
    pub words: BTreeMap<String, Vec<String>>,
}

/// What is wrong with a priority configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("priority configuration: {0}")]
pub struct ConfigError(pub String);

impl PriorityConfig {
    /// The configuration shipped with switchboard: [`DEFAULT_TOML`], read from the JSON the
    /// build made of it (the same document, read several times faster at a function's start).
    /// Not checked again at each start: a test holds it equal to [`parse`](Self::parse) of the
    /// TOML, which checks it.
    pub fn default_config() -> Self {
        serde_json::from_str(DEFAULT_JSON)
            .expect("config/priority.toml as JSON is a configuration (checked by a test)")
    }

    /// Parses and checks a configuration file's text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        let Levels { p1, p2, p3 } = self.levels;
        if !(p1 > p2 && p2 > p3) {
            return err(format!(
                "levels must decrease from p1 to p3 (p1 > p2 > p3), got {p1}, {p2}, {p3}"
            ));
        }
        if self.teams.is_empty() {
            return err("teams: at least one topic and its team".into());
        }
        for (topic, team) in &self.teams {
            if team.trim().is_empty() {
                return err(format!("teams.{topic}: the team name is empty"));
            }
        }
        if !self.teams.contains_key(&self.default_topic) {
            return err(format!(
                "default_topic {:?} has no team in [teams]",
                self.default_topic
            ));
        }
        for (what, per) in [
            ("contacts_24h", self.history.contacts_24h),
            ("contacts_7d", self.history.contacts_7d),
            ("breaches", self.history.breaches),
            ("complaints", self.history.complaints),
        ] {
            if per.max < 0 || per.each < 0 {
                return err(format!("history.{what}: each and max cannot be negative"));
            }
        }
        if self.history.lookback_days < 7 {
            return err(format!(
                "history.lookback_days must be at least 7 (contacts are counted over 7 days), got {}",
                self.history.lookback_days
            ));
        }
        if self.signals.is_empty() {
            return err("signals: at least one".into());
        }
        for (name, signal) in &self.signals {
            if let Some(topic) = &signal.topic
                && !self.teams.contains_key(topic)
            {
                return err(format!(
                    "signals.{name}: topic {topic:?} has no team in [teams]"
                ));
            }
            if signal.words.values().all(Vec::is_empty) {
                return err(format!("signals.{name}: no words"));
            }
            for (lang, list) in &signal.words {
                for phrase in list {
                    if Phrase::new(phrase).is_none() {
                        return err(format!(
                            "signals.{name}.words.{lang}: {phrase:?} has no letter or digit"
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_made_at_build_time_is_the_shipped_toml() {
        assert_eq!(
            PriorityConfig::default_config(),
            PriorityConfig::parse(DEFAULT_TOML).expect("valid")
        );
    }

    #[test]
    fn the_shipped_configuration_is_valid_and_covers_three_languages() {
        let config = PriorityConfig::parse(DEFAULT_TOML).expect("valid");
        for name in [
            "urgency",
            "anger",
            "money_lost",
            "service_down",
            "security",
            "legal",
            "leaving",
            "thanks",
        ] {
            let signal = config.signals.get(name).unwrap_or_else(|| panic!("{name}"));
            for lang in ["es", "en", "pt"] {
                assert!(
                    signal.words.get(lang).is_some_and(|w| !w.is_empty()),
                    "{name} has {lang} words"
                );
            }
        }
    }

    fn with(from: &str, to: &str) -> Result<PriorityConfig, ConfigError> {
        assert!(DEFAULT_TOML.contains(from), "{from}");
        PriorityConfig::parse(&DEFAULT_TOML.replacen(from, to, 1))
    }

    #[test]
    fn mistakes_are_named() {
        let e = with("p2 = ", "p2 = 1000 # ").unwrap_err().to_string();
        assert!(e.contains("levels must decrease"), "{e}");
        let e = with("default_topic = \"general\"", "default_topic = \"nope\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"nope\" has no team"), "{e}");
        let e = with("topic = \"billing\"", "topic = \"biling\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("topic \"biling\" has no team"), "{e}");
        let e = with("[style]", "[style]\nloudness = 3")
            .unwrap_err()
            .to_string();
        assert!(e.contains("loudness"), "{e}");
        let e = PriorityConfig::parse("not toml at all [")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("priority configuration:"), "{e}");
    }
}
