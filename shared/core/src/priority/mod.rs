//! Priority: how urgent a customer message is, from its words and from the customer's history,
//! explained signal by signal, and which team should answer it.
//!
//! [`Scorer::score`] is a plain function of the message text, whether it is public, and the
//! customer's [`History`]; the weights, the word lists and the teams come from a
//! [`PriorityConfig`] (see `config/priority.toml`). The score is the sum of the weights of
//! the signals found, floored at 0; the levels of the configuration turn it into P1–P4. Every
//! signal that counted is a [`Reason`] naming it and its weight, so an agent (or a supervisor
//! tuning the file) sees why.

pub mod config;
pub mod text;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::channel::Channel;
use crate::ids::RecordKey;

pub use config::{ConfigError, PriorityConfig};
use text::{Phrase, PhraseSet, words};

/// A priority level. P1 is the most urgent; the order of the type is P1 < P2 < P3 < P4, the
/// order of a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Priority {
    /// Answer first.
    P1,
    /// Answer soon.
    P2,
    /// Normal.
    P3,
    /// Whenever there is time.
    P4,
}

impl Priority {
    /// All levels, most urgent first.
    pub const ALL: [Priority; 4] = [Priority::P1, Priority::P2, Priority::P3, Priority::P4];

    /// `P1` … `P4`.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::P1 => "P1",
            Priority::P2 => "P2",
            Priority::P3 => "P3",
            Priority::P4 => "P4",
        }
    }

    /// 1 for P1 … 4 for P4.
    pub fn rank(self) -> u8 {
        self as u8 + 1
    }

    /// One level more urgent (P1 stays P1).
    pub fn raised(self) -> Self {
        match self {
            Priority::P1 | Priority::P2 => Priority::P1,
            Priority::P3 => Priority::P2,
            Priority::P4 => Priority::P3,
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Priority {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Priority::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown priority {s:?} (P1, P2, P3 or P4)"))
    }
}

/// One signal that counted towards a score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reason {
    /// The signal: a content signal of the configuration (`money_lost`, …), a style signal
    /// (`shouting`, `repeated_punctuation`, `public`, `question`) or a history signal
    /// (`open_elsewhere`, `contacts_24h`, `contacts_7d`, `breaches`, `complaints`, `vip`).
    pub signal: String,
    /// What it added to the score (negative when it lowered it).
    pub weight: i32,
    /// The phrase of the configuration that was found, for a content signal; the count, for a
    /// counted history signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What is known of the customer's service history when a message is scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct History {
    /// Other conversations of the customer, on any channel, waiting for an answer.
    pub open_elsewhere: u32,
    /// The one of them waiting longest: its channel and since when (the detail of the
    /// `open_elsewhere` reason, "on e-mail since …").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_open: Option<(Channel, DateTime<Utc>)>,
    /// The customer's earlier messages in the 24 hours before this one.
    pub contacts_24h: u32,
    /// The customer's earlier messages in the 7 days before this one, the last 24 hours
    /// included.
    pub contacts_7d: u32,
    /// SLA breaches on the customer's conversations.
    pub breaches: u32,
    /// The customer's other conversations that carried a complaint.
    pub complaints: u32,
    /// The customer's tier is VIP.
    pub vip: bool,
}

/// The outcome of scoring one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Score {
    /// The level.
    pub priority: Priority,
    /// The sum of the weights, floored at 0.
    pub score: i32,
    /// The topic: that of the heaviest topical signal found, else the default topic.
    pub topic: String,
    /// The team of the topic.
    pub team: String,
    /// Every signal that counted, content first, then style, then history.
    pub reasons: Vec<Reason>,
    /// Whether a complaint signal was found (it counts in the customer's later history).
    pub complaint: bool,
    /// Whether a calming content signal was found (a signal of negative weight: thanks,
    /// laughter, a problem resolved or withdrawn, a hypothetical question). The urgency model
    /// never raises such a message: its embedding tells what a message is about far better
    /// than whether the trouble is over or only imagined.
    #[serde(default)]
    pub calm: bool,
}

/// The priority of a conversation, as stored on it: the [`Score`] of the message that set it,
/// and what the prioritizer has seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationPriority {
    /// The level.
    pub priority: Priority,
    /// The score behind the level.
    pub score: i32,
    /// The topic.
    pub topic: String,
    /// The team that answers it.
    pub team: String,
    /// Why: the signals of the message that set the level, with their weights.
    pub reasons: Vec<Reason>,
    /// Whether any message of the conversation carried a complaint.
    pub complaint: bool,
    /// The message that set the level.
    pub record_key: RecordKey,
    /// The wait (`waiting_since` of the conversation) the level belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait: Option<DateTime<Utc>>,
    /// When the level was set (processing time).
    pub prioritized_at: DateTime<Utc>,
    /// The latest messages scored, oldest first, at most [`SEEN_KEPT`]: a message found here
    /// is not scored again.
    #[serde(default)]
    pub seen: Vec<RecordKey>,
}

/// How many scored message keys a conversation remembers.
pub const SEEN_KEPT: usize = 32;

/// What [`apply`] did to a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The message was scored before: nothing changed.
    AlreadySeen,
    /// The message is remembered, but the level stays: within one wait a conversation keeps
    /// the level of its most urgent message.
    Kept,
    /// The message set the conversation's priority (first, higher, or the first of a new wait).
    Prioritized,
}

/// Applies the score of message `key` to the priority `current` of a conversation whose wait
/// started at `wait` (its `waiting_since`).
///
/// The rule: a message scored before changes nothing. Within one wait (the same
/// `waiting_since`), the priority only rises: a calmer follow-up ("hello?") does not lower
/// it. A message of a new wait (after an answer) sets it afresh. Whether the conversation ever
/// carried a complaint is kept either way.
pub fn apply(
    current: &mut Option<ConversationPriority>,
    wait: Option<DateTime<Utc>>,
    key: &RecordKey,
    score: &Score,
    now: DateTime<Utc>,
) -> Applied {
    if let Some(current) = current {
        if current.seen.contains(key) {
            return Applied::AlreadySeen;
        }
        current.seen.push(key.clone());
        if current.seen.len() > SEEN_KEPT {
            let excess = current.seen.len() - SEEN_KEPT;
            current.seen.drain(..excess);
        }
        current.complaint |= score.complaint;
        if current.wait == wait && current.score >= score.score {
            return Applied::Kept;
        }
    }
    let (complaint, seen) = match current.take() {
        Some(old) => (old.complaint, old.seen),
        None => (score.complaint, vec![key.clone()]),
    };
    *current = Some(ConversationPriority {
        priority: score.priority,
        score: score.score,
        topic: score.topic.clone(),
        team: score.team.clone(),
        reasons: score.reasons.clone(),
        complaint,
        record_key: key.clone(),
        wait,
        prioritized_at: now,
        seen,
    });
    Applied::Prioritized
}

/// A learned urgency model beside the word lists: what it makes of a message's text.
///
/// Contract: [`assess`](Self::assess) is pure (the same text, the same assessment) and cheap
/// enough to run once per customer message.
pub trait UrgencyModel: Send + Sync + std::fmt::Debug {
    /// Its assessment of `text` (not empty).
    fn assess(&self, text: &str) -> Assessment;
}

/// What an [`UrgencyModel`] makes of a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// The calibrated probability that the message is urgent (P1 or P2).
    pub probability: f64,
    /// Sure enough that it is urgent to raise it to P2 at least (unless its words are calm:
    /// [`Score::calm`]).
    pub raise: bool,
    /// Sure enough that it is not, to lower a P2 that rests on its words alone to P3.
    pub lower: bool,
    /// The topics of the labelled examples nearest to it, nearest first.
    pub topics: Vec<String>,
}

/// The signal name of the model's reason.
pub const MODEL_SIGNAL: &str = "model";

/// The scorer: a [`PriorityConfig`] with its phrases indexed, and the urgency model when there
/// is one. Cheap to share, built once.
#[derive(Debug, Clone)]
pub struct Scorer {
    config: PriorityConfig,
    phrases: PhraseSet<usize>,
    signals: Vec<(String, config::Signal)>,
    model: Option<std::sync::Arc<dyn UrgencyModel>>,
}

impl Scorer {
    /// A scorer for `config` (already checked by [`PriorityConfig::parse`]).
    pub fn new(mut config: PriorityConfig) -> Self {
        let mut phrases = PhraseSet::new();
        // The signals move into the scorer, their phrases into the index (neither is copied).
        let mut signals = Vec::with_capacity(config.signals.len());
        for (i, (name, mut signal)) in std::mem::take(&mut config.signals).into_iter().enumerate() {
            for phrase in std::mem::take(&mut signal.words).into_values().flatten() {
                if let Some(p) = Phrase::from_owned(phrase) {
                    phrases.insert(p, i);
                }
            }
            signals.push((name, signal));
        }
        Self {
            config,
            phrases,
            signals,
            model: None,
        }
    }

    /// The same scorer with the urgency model `model` as a second stage: see
    /// [`score`](Self::score).
    pub fn with_model(mut self, model: std::sync::Arc<dyn UrgencyModel>) -> Self {
        self.model = Some(model);
        self
    }

    /// Whether an urgency model is in use.
    pub fn has_model(&self) -> bool {
        self.model.is_some()
    }

    /// The configuration in use, but for its signals, which are in the scorer's index.
    pub fn config(&self) -> &PriorityConfig {
        &self.config
    }

    /// The team of `topic`, or of the default topic when `topic` has none.
    pub fn team_of(&self, topic: &str) -> &str {
        self.config
            .teams
            .get(topic)
            .or_else(|| self.config.teams.get(&self.config.default_topic))
            .map_or("", String::as_str)
    }

    /// Scores one customer message: `text` (empty for a message without text), whether it was
    /// posted publicly, and the customer's history.
    ///
    /// The word lists' signals, the style and the history add their weights; the sum sets the
    /// level. With an urgency model, its assessment is one more reason (`model`, the
    /// probability and the nearest topics as the detail): when it is sure the message is
    /// urgent, it adds what the sum lacks to reach P2; when it is sure the message is not and
    /// the P2 rests on the text alone (no history signal), it takes off what puts it below P2;
    /// otherwise it weighs 0 and only explains. A P1 is never lowered. Where the words name no
    /// topic, the model's nearest topic routes the message.
    pub fn score(&self, text: &str, public: bool, history: &History) -> Score {
        self.score_assessed(text, public, history, self.assess(text))
    }

    /// The urgency model's assessment of `text`, the costly part of scoring: `None` without a
    /// model or for an empty text. A caller that has something to wait for meanwhile (the
    /// prioritizer reads the customer's history) runs it apart and hands the result to
    /// [`score_assessed`](Self::score_assessed).
    pub fn assess(&self, text: &str) -> Option<Assessment> {
        self.model
            .as_ref()
            .filter(|_| !text.trim().is_empty())
            .map(|model| model.assess(text))
    }

    /// [`score`](Self::score) with the model's assessment of `text` already made
    /// ([`assess`](Self::assess)); `None` scores by the word lists, the style and the history
    /// alone.
    pub fn score_assessed(
        &self,
        text: &str,
        public: bool,
        history: &History,
        assessment: Option<Assessment>,
    ) -> Score {
        let folded = words(text);
        let mut reasons = Vec::new();
        let mut found: Vec<(usize, &Phrase)> = Vec::new();
        for (phrase, &signal) in self.phrases.find(&folded) {
            if !found.iter().any(|(s, _)| *s == signal) {
                found.push((signal, phrase));
            }
        }
        found.sort_by_key(|(s, _)| *s);
        let mut complaint = false;
        let mut calm = None;
        let mut topic: Option<(i32, &str)> = None;
        for (i, phrase) in &found {
            let (name, signal) = &self.signals[*i];
            complaint |= signal.complaint;
            if signal.weight < 0 && calm.is_none() {
                calm = Some(name.as_str());
            }
            if let Some(t) = &signal.topic
                && signal.weight > 0
                && topic.is_none_or(|(w, _)| signal.weight > w)
            {
                topic = Some((signal.weight, t));
            }
            reasons.push(Reason {
                signal: name.clone(),
                weight: signal.weight,
                detail: Some(phrase.text.clone()),
            });
        }

        let style = self.config.style;
        let mut add = |signal: &str, weight: i32, detail: Option<String>| {
            if weight != 0 {
                reasons.push(Reason {
                    signal: signal.to_owned(),
                    weight,
                    detail,
                });
            }
        };
        if is_shouting(text) {
            add("shouting", style.shouting, None);
        }
        if has_repeated_punctuation(text) {
            add("repeated_punctuation", style.repeated_punctuation, None);
        }
        if public && complaint {
            add("public", style.public, None);
        }
        if !complaint && (text.contains('?') || text.contains('¿')) {
            add("question", style.question, None);
        }

        let h = self.config.history;
        if history.open_elsewhere > 0 {
            add(
                "open_elsewhere",
                h.open_elsewhere,
                Some(open_detail(history.open_elsewhere, history.oldest_open)),
            );
        }
        let counted = [
            ("contacts_24h", h.contacts_24h, history.contacts_24h),
            (
                "contacts_7d",
                h.contacts_7d,
                history.contacts_7d.saturating_sub(history.contacts_24h),
            ),
            ("breaches", h.breaches, history.breaches),
            ("complaints", h.complaints, history.complaints),
        ];
        for (signal, per, n) in counted {
            if n > 0 {
                add(signal, per.weight(n), Some(n.to_string()));
            }
        }
        if history.vip {
            add("vip", h.vip, None);
        }

        let levels = self.config.levels;
        let sum = |reasons: &[Reason]| {
            reasons
                .iter()
                .fold(0i32, |sum, r| sum.saturating_add(r.weight))
                .max(0)
        };
        let mut model_topic = None;
        if let Some(assessment) = assessment {
            // The sum before the floor at 0: what the model's weight must make up.
            let before = reasons
                .iter()
                .fold(0i32, |sum, r| sum.saturating_add(r.weight));
            let from_history = reasons
                .iter()
                .any(|r| HISTORY_SIGNALS.contains(&r.signal.as_str()));
            let weight = if assessment.raise && calm.is_none() && before < levels.p2 {
                levels.p2 - before
            } else if assessment.lower && !from_history && (levels.p2..levels.p1).contains(&before)
            {
                (levels.p2 - 1) - before
            } else {
                0
            };
            reasons.push(Reason {
                signal: MODEL_SIGNAL.to_owned(),
                weight,
                detail: Some(format!(
                    "{:.2}, nearest: {}{}",
                    assessment.probability,
                    assessment.topics.join(", "),
                    match calm {
                        Some(signal) if assessment.raise => format!(", held back by {signal}"),
                        _ => String::new(),
                    }
                )),
            });
            model_topic = assessment.topics.into_iter().next();
        }
        let score = sum(&reasons);
        let priority = if score >= levels.p1 {
            Priority::P1
        } else if score >= levels.p2 {
            Priority::P2
        } else if score >= levels.p3 {
            Priority::P3
        } else {
            Priority::P4
        };
        let topic = topic.map_or_else(
            || model_topic.unwrap_or_else(|| self.config.default_topic.clone()),
            |(_, t)| t.to_owned(),
        );
        Score {
            priority,
            score,
            team: self.team_of(&topic).to_owned(),
            topic,
            reasons,
            complaint,
            calm: calm.is_some(),
        }
    }
}

/// The reasons that come from the customer's history, not from the text.
const HISTORY_SIGNALS: [&str; 6] = [
    "open_elsewhere",
    "contacts_24h",
    "contacts_7d",
    "breaches",
    "complaints",
    "vip",
];

impl Default for Scorer {
    /// The scorer of the shipped configuration.
    fn default() -> Self {
        Self::new(PriorityConfig::default_config())
    }
}

/// Mostly capitals: at least 8 letters, 70 % or more of them upper case.
fn is_shouting(text: &str) -> bool {
    let (letters, upper) = text
        .chars()
        .filter(|c| c.is_alphabetic())
        .fold((0usize, 0usize), |(l, u), c| {
            (l + 1, u + usize::from(c.is_uppercase()))
        });
    letters >= 8 && upper * 10 >= letters * 7
}

/// Two or more `!`/`?` in a row.
fn has_repeated_punctuation(text: &str) -> bool {
    let mut run = 0;
    for c in text.chars() {
        if matches!(c, '!' | '?' | '¡' | '¿') {
            run += 1;
            if run >= 2 {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

#[cfg(test)]
mod tests;

/// The detail of `open_elsewhere`: how many, and where and since when the oldest waits
/// (`on e-mail since 2026-11-27 09:14 UTC`, `2, the oldest on e-mail since …`).
fn open_detail(count: u32, oldest: Option<(Channel, DateTime<Utc>)>) -> String {
    match (count, oldest) {
        (1, Some((channel, since))) => format!(
            "on {} since {}",
            channel.label(),
            since.format("%Y-%m-%d %H:%M UTC")
        ),
        (n, Some((channel, since))) => format!(
            "{n}, the oldest on {} since {}",
            channel.label(),
            since.format("%Y-%m-%d %H:%M UTC")
        ),
        (n, None) => n.to_string(),
    }
}
