//! The SLA policy: response-time targets, warnings, business calendars per team, and the
//! messaging window. A TOML file; switchboard ships a documented default,
//! `config/sla.toml`, built into every binary, and `SWITCHBOARD_POLICY` (a path) or
//! `switchboard serve --policy FILE` replaces it. A file is checked whole when it is loaded:
//! [`SlaPolicy::parse`] names the first thing wrong with it.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use std::collections::BTreeMap;

use super::calendar::{Calendar, Range, weekday_names};
use crate::channel::Channel;
use crate::priority::Priority;

/// The policy shipped with switchboard (`config/sla.toml`).
pub const DEFAULT_TOML: &str = include_str!("../../../../config/sla.toml");

/// [`DEFAULT_TOML`] as JSON, made by the build script: what [`SlaPolicy::default_policy`]
/// reads, so that a start with the shipped policy runs no TOML parser (a test holds the two
/// documents equal).
const DEFAULT_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/sla.json"));

/// What is wrong with a policy file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SLA policy: {0}")]
pub struct PolicyError(pub String);

/// Which wait a target applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Wait {
    /// The conversation's first customer message waiting for its first answer.
    First,
    /// A later wait: a customer message after an answer.
    Next,
}

/// When a wait turns late, and when to warn before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// The target that applies.
    pub target: Duration,
    /// When to warn (before `due_at`).
    pub warn_at: DateTime<Utc>,
    /// When the wait breaches its target.
    pub due_at: DateTime<Utc>,
}

/// The messaging window of a channel closing: the brand can reply freely until `closes_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowClosing {
    /// When to warn.
    pub warn_at: DateTime<Utc>,
    /// When the window closes.
    pub closes_at: DateTime<Utc>,
}

/// A checked SLA policy.
#[derive(Debug, Clone)]
pub struct SlaPolicy {
    warning: Warning,
    targets: BTreeMap<String, BTreeMap<Priority, Targets>>,
    window: Option<WindowRule>,
    calendars: BTreeMap<String, Calendar>,
    teams: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy)]
enum Warning {
    Share(f64),
    Lead(Duration),
}

#[derive(Debug, Clone, Copy)]
struct Targets {
    first: Duration,
    next: Duration,
}

#[derive(Debug, Clone)]
struct WindowRule {
    length: Duration,
    warn_before: Duration,
    channels: Vec<Channel>,
}

// --- the file ---------------------------------------------------------------------------------

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    warning: WarningFile,
    targets: BTreeMap<String, BTreeMap<String, TargetFile>>,
    #[serde(default)]
    window: Option<WindowFile>,
    calendars: BTreeMap<String, CalendarFile>,
    teams: BTreeMap<String, String>,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct WarningFile {
    share: Option<f64>,
    lead: Option<String>,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetFile {
    first: String,
    next: String,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowFile {
    length: String,
    warn_before: String,
    channels: Vec<String>,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarFile {
    clock: String,
    time_zone: Option<String>,
    #[serde(default)]
    mon: Vec<String>,
    #[serde(default)]
    tue: Vec<String>,
    #[serde(default)]
    wed: Vec<String>,
    #[serde(default)]
    thu: Vec<String>,
    #[serde(default)]
    fri: Vec<String>,
    #[serde(default)]
    sat: Vec<String>,
    #[serde(default)]
    sun: Vec<String>,
    #[serde(default)]
    holidays: Vec<String>,
}

/// A duration of the file: `30s`, `15m`, `1h 30m`, `2d`, or ISO 8601 (`PT15M`); positive.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d: jiff::SignedDuration = text
        .parse()
        .map_err(|e| format!("{text:?} is not a duration like 30s, 15m, 1h 30m or PT15M: {e}"))?;
    let ms = i64::try_from(d.as_millis()).map_err(|_| format!("{text:?} is too long"))?;
    if ms <= 0 {
        return Err(format!("{text:?} must be longer than zero"));
    }
    Ok(Duration::milliseconds(ms))
}

impl SlaPolicy {
    /// The policy shipped with switchboard (`config/sla.toml`, read from the JSON the build
    /// makes of it), checked as [`parse`](Self::parse) checks a file.
    pub fn default_policy() -> Self {
        let file: File =
            serde_json::from_str(DEFAULT_JSON).expect("config/sla.toml as JSON (a test reads it)");
        Self::check(file).expect("config/sla.toml is valid (checked by a test)")
    }

    /// Parses and checks a policy file's text.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let file: File = toml::from_str(text).map_err(|e| PolicyError(e.to_string()))?;
        Self::check(file)
    }

    /// The policy of a parsed file, checked: the first thing wrong with it, named.
    fn check(file: File) -> Result<Self, PolicyError> {
        let err = |m: String| PolicyError(m);

        let warning = match (file.warning.share, file.warning.lead.as_deref()) {
            (Some(share), None) if share > 0.0 && share < 1.0 => Warning::Share(share),
            (Some(share), None) => {
                return Err(err(format!(
                    "warning.share must be between 0 and 1 (a share of the target), got {share}"
                )));
            }
            (None, Some(lead)) => {
                Warning::Lead(parse_duration(lead).map_err(|e| err(format!("warning.lead: {e}")))?)
            }
            _ => {
                return Err(err(
                    "warning: give either share (of the target) or lead (a duration)".into(),
                ));
            }
        };

        let mut targets = BTreeMap::new();
        for (scope, levels) in &file.targets {
            if scope != "default" {
                scope
                    .parse::<Channel>()
                    .map_err(|_| err(format!("targets.{scope}: not a channel (or default)")))?;
            }
            let mut parsed = BTreeMap::new();
            for (level, t) in levels {
                let priority: Priority = level
                    .parse()
                    .map_err(|e| err(format!("targets.{scope}.{level}: {e}")))?;
                let first = parse_duration(&t.first)
                    .map_err(|e| err(format!("targets.{scope}.{level}.first: {e}")))?;
                let next = parse_duration(&t.next)
                    .map_err(|e| err(format!("targets.{scope}.{level}.next: {e}")))?;
                if let Warning::Lead(lead) = warning
                    && lead >= first.min(next)
                {
                    return Err(err(format!(
                        "targets.{scope}.{level}: the warning lead {} is not shorter than the target",
                        human(lead)
                    )));
                }
                parsed.insert(priority, Targets { first, next });
            }
            targets.insert(scope.clone(), parsed);
        }
        let default = targets
            .get("default")
            .ok_or_else(|| err("targets.default: required, with P1, P2, P3 and P4".into()))?;
        for p in Priority::ALL {
            if !default.contains_key(&p) {
                return Err(err(format!("targets.default.{p}: missing")));
            }
        }

        let window = match file.window {
            None => None,
            Some(w) => {
                let length =
                    parse_duration(&w.length).map_err(|e| err(format!("window.length: {e}")))?;
                let warn_before = parse_duration(&w.warn_before)
                    .map_err(|e| err(format!("window.warn_before: {e}")))?;
                if warn_before >= length {
                    return Err(err(
                        "window.warn_before must be shorter than window.length".into()
                    ));
                }
                let channels = w
                    .channels
                    .iter()
                    .map(|c| {
                        c.parse::<Channel>()
                            .map_err(|_| err(format!("window.channels: {c:?} is not a channel")))
                    })
                    .collect::<Result<_, _>>()?;
                Some(WindowRule {
                    length,
                    warn_before,
                    channels,
                })
            }
        };

        let mut calendars = BTreeMap::new();
        for (name, c) in file.calendars {
            let calendar = match c.clock.as_str() {
                "always" => {
                    let has_hours = [&c.mon, &c.tue, &c.wed, &c.thu, &c.fri, &c.sat, &c.sun]
                        .iter()
                        .any(|d| !d.is_empty());
                    if has_hours || !c.holidays.is_empty() {
                        return Err(err(format!(
                            "calendars.{name}: clock = \"always\" takes no hours or holidays"
                        )));
                    }
                    Calendar::always()
                }
                "business_hours" => {
                    let zone = c.time_zone.as_deref().ok_or_else(|| {
                        err(format!("calendars.{name}.time_zone: required for business_hours (an IANA name such as America/Mexico_City)"))
                    })?;
                    let days = [c.mon, c.tue, c.wed, c.thu, c.fri, c.sat, c.sun];
                    let mut week: [Vec<Range>; 7] = Default::default();
                    for (i, ranges) in days.iter().enumerate() {
                        for r in ranges {
                            week[i].push(Range::parse(r).map_err(|e| {
                                err(format!("calendars.{name}.{}: {e}", weekday_names()[i]))
                            })?);
                        }
                    }
                    let holidays = c
                        .holidays
                        .iter()
                        .map(|h| {
                            h.parse::<jiff::civil::Date>().map_err(|_| {
                                err(format!(
                                    "calendars.{name}.holidays: {h:?} is not a date YYYY-MM-DD"
                                ))
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    Calendar::business(zone, week, holidays)
                        .map_err(|e| err(format!("calendars.{name}: {e}")))?
                }
                other => {
                    return Err(err(format!(
                        "calendars.{name}.clock: {other:?} (business_hours or always)"
                    )));
                }
            };
            calendars.insert(name, calendar);
        }
        if !file.teams.contains_key("default") {
            return Err(err(
                "teams.default: required (the calendar of a team not listed)".into(),
            ));
        }
        for (team, calendar) in &file.teams {
            if !calendars.contains_key(calendar) {
                return Err(err(format!(
                    "teams.{team}: calendar {calendar:?} is not in [calendars]"
                )));
            }
        }
        Ok(Self {
            warning,
            targets,
            window,
            calendars,
            teams: file.teams,
        })
    }

    /// The calendar of `teams.default`: its zone's days and weeks are those of the figures
    /// (`GET /api/metrics`).
    pub fn default_calendar(&self) -> &Calendar {
        self.calendar("default")
    }

    /// The calendar of `team` (the default one's when the team is not listed).
    pub fn calendar(&self, team: &str) -> &Calendar {
        let name = self
            .teams
            .get(team)
            .or_else(|| self.teams.get("default"))
            .expect("checked at parse");
        &self.calendars[name]
    }

    /// The target of a wait on `channel` at `priority`.
    pub fn target(&self, channel: Channel, priority: Priority, wait: Wait) -> Duration {
        let t = self
            .targets
            .get(channel.as_str())
            .and_then(|levels| levels.get(&priority))
            .or_else(|| self.targets["default"].get(&priority))
            .expect("checked at parse");
        match wait {
            Wait::First => t.first,
            Wait::Next => t.next,
        }
    }

    /// When a wait that started at `since` (the customer's message, provider time) is due,
    /// and when to warn, on `team`'s calendar.
    pub fn due(
        &self,
        channel: Channel,
        priority: Priority,
        wait: Wait,
        team: &str,
        since: DateTime<Utc>,
    ) -> Due {
        let target = self.target(channel, priority, wait);
        let calendar = self.calendar(team);
        let warn_after = match self.warning {
            Warning::Share(share) => {
                Duration::milliseconds((target.num_milliseconds() as f64 * share).round() as i64)
            }
            Warning::Lead(lead) => target - lead,
        };
        Due {
            target,
            warn_at: calendar.add(since, warn_after),
            due_at: calendar.add(since, target),
        }
    }

    /// The messaging window after the customer's last message on `channel`, when the policy
    /// watches that channel's window (wall-clock time: the provider's rule, not the team's).
    pub fn window_closing(
        &self,
        channel: Channel,
        last_inbound: DateTime<Utc>,
    ) -> Option<WindowClosing> {
        let w = self.window.as_ref()?;
        if !w.channels.contains(&channel) {
            return None;
        }
        let closes_at = last_inbound + w.length;
        Some(WindowClosing {
            warn_at: closes_at - w.warn_before,
            closes_at,
        })
    }
}

/// The SLA clock of one wait, as stored on the conversation: which target applies and when
/// to warn and to breach.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SlaClock {
    /// The start of the wait (the conversation's `waiting_since`).
    pub wait_since: DateTime<Utc>,
    /// First response or next response.
    pub wait: Wait,
    /// The priority the target was taken for.
    pub priority: Priority,
    /// The team whose calendar runs the clock.
    pub team: String,
    /// The target, in seconds of running clock.
    pub target_seconds: i64,
    /// When to warn.
    pub warn_at: DateTime<Utc>,
    /// When the wait breaches.
    pub due_at: DateTime<Utc>,
    /// The names of the reminders scheduled for this clock (warning, breach), so that they
    /// can be cancelled when the wait ends or the clock moves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reminders: Vec<String>,
    /// When the breach was handled (published, priority raised): once per wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breached_at: Option<DateTime<Utc>>,
}

impl SlaPolicy {
    /// The clock of a wait on `channel` that started at `since`, of the kind `wait`, at
    /// `priority`, on the calendar of `team`. A conversation never answered waits for its
    /// first response; after an answer, for the next.
    pub fn clock(
        &self,
        channel: Channel,
        since: DateTime<Utc>,
        wait: Wait,
        priority: Priority,
        team: &str,
    ) -> SlaClock {
        let due = self.due(channel, priority, wait, team, since);
        SlaClock {
            wait_since: since,
            wait,
            priority,
            team: team.to_owned(),
            target_seconds: due.target.num_seconds(),
            warn_at: due.warn_at,
            due_at: due.due_at,
            reminders: Vec::new(),
            breached_at: None,
        }
    }
}

fn human(d: Duration) -> String {
    format!("{}s", d.num_seconds())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_json_is_the_shipped_toml() {
        let from_toml: File =
            toml::from_str(DEFAULT_TOML).expect("config/sla.toml is a policy file");
        let from_json: File = serde_json::from_str(DEFAULT_JSON).expect("the build's JSON");
        assert_eq!(from_json, from_toml);
        assert!(SlaPolicy::parse(DEFAULT_TOML).is_ok());
    }
}
