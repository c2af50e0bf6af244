//! Cases: a conversation's requests, handled like any support interaction.
//!
//! A conversation is one customer with one business account on one channel, for ever; a
//! [`Case`] is one request within it, from the customer message that opened it to its
//! resolution. Case 1 opens with the conversation. A customer message later than a
//! resolution opens the next case in the same conversation (the history stays one timeline).
//!
//! First-contact resolution: a case resolved after exactly one brand reply, with no customer
//! message between that reply and the resolution.
//!
//! The rules here are pure: [`crate::model::Conversation`] calls them as it absorbs records
//! and as agents act, so both backends decide alike.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The most brand-reply ids a case remembers: enough to tell "exactly one" from "more", and
/// to count a repeat of the same reply once.
const REPLIES_KEPT: usize = 2;

/// Where a conversation's current case stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    /// A customer message has no answer yet.
    Waiting,
    /// The brand answered; the case is not resolved.
    Answered,
    /// An agent resolved the case.
    Resolved,
}

impl CaseStatus {
    /// The snake_case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Waiting => "waiting",
            CaseStatus::Answered => "answered",
            CaseStatus::Resolved => "resolved",
        }
    }
}

/// One request of a conversation. All times are provider times, except `resolved_at`, which is
/// when the agent resolved it (never earlier than the conversation's latest record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    /// 1 for the conversation's first case, then one more for each reopening.
    pub number: u32,
    /// The customer message that opened the case; `None` for case 1 until a customer writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<DateTime<Utc>>,
    /// The provider ids of the brand's first replies in this case (at most two are kept).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replies: Vec<String>,
    /// The time of the brand's latest reply in this case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reply_at: Option<DateTime<Utc>>,
    /// The time of the customer's latest message in this case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_inbound_at: Option<DateTime<Utc>>,
    /// When it was resolved; `None` while open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<DateTime<Utc>>,
    /// Who resolved it (an agent id, `local` under `serve` without a header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
    /// Set at resolution: exactly one brand reply, and no customer message after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_contact_resolution: Option<bool>,
}

impl Default for Case {
    fn default() -> Self {
        Self {
            number: 1,
            opened_at: None,
            replies: Vec::new(),
            last_reply_at: None,
            last_inbound_at: None,
            resolved_at: None,
            resolved_by: None,
            first_contact_resolution: None,
        }
    }
}

/// What a customer message did to the case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// It belongs to the open case (a new wait may start).
    Open,
    /// It opened the next case: the conversation is reopened.
    Reopened,
    /// It was written before the resolution and arrived after it: kept in the timeline, no
    /// wait starts.
    BeforeResolution,
}

impl Case {
    /// True once resolved.
    pub fn is_resolved(&self) -> bool {
        self.resolved_at.is_some()
    }

    /// A customer message at `at`. Opens the next case when it is later than the resolution;
    /// repeating it changes nothing more.
    pub fn customer_wrote(&mut self, at: DateTime<Utc>) -> Inbound {
        match self.resolved_at {
            Some(resolved) if at > resolved => {
                *self = Case {
                    number: self.number + 1,
                    opened_at: Some(at),
                    last_inbound_at: Some(at),
                    ..Case::default()
                };
                Inbound::Reopened
            }
            Some(_) => Inbound::BeforeResolution,
            None => {
                self.opened_at = Some(self.opened_at.map_or(at, |o| o.min(at)));
                self.last_inbound_at = self.last_inbound_at.max(Some(at));
                Inbound::Open
            }
        }
    }

    /// A brand reply `id` at `at` in the open case (a resolved case takes no more replies).
    /// The same reply twice counts once. Answers whether it changed the case.
    pub fn brand_replied(&mut self, id: &str, at: DateTime<Utc>) -> bool {
        if self.is_resolved() {
            return false;
        }
        let before = self.clone();
        if self.replies.len() < REPLIES_KEPT && !self.replies.iter().any(|r| r == id) {
            self.replies.push(id.to_owned());
        }
        self.last_reply_at = self.last_reply_at.max(Some(at));
        *self != before
    }

    /// Resolves the case at `at` by `by`, deciding first-contact resolution. Answers false
    /// (and changes nothing) when it was resolved already.
    pub fn resolve(&mut self, at: DateTime<Utc>, by: &str) -> bool {
        if self.is_resolved() {
            return false;
        }
        let one_reply = self.replies.len() == 1;
        let nothing_after = match (self.last_inbound_at, self.last_reply_at) {
            (Some(customer), Some(reply)) => customer <= reply,
            (None, _) => true,
            (Some(_), None) => false,
        };
        self.resolved_at = Some(at);
        self.resolved_by = Some(by.to_owned());
        self.first_contact_resolution = Some(one_reply && nothing_after);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(s, 0).unwrap()
    }

    #[test]
    fn one_reply_and_nothing_after_it_is_a_first_contact_resolution() {
        let mut case = Case::default();
        assert_eq!(case.customer_wrote(t(100)), Inbound::Open);
        assert!(case.brand_replied("r1", t(200)));
        assert!(
            !case.brand_replied("r1", t(200)),
            "the same reply counts once"
        );
        assert!(case.resolve(t(300), "ana"));
        assert_eq!(case.first_contact_resolution, Some(true));
        assert!(
            !case.resolve(t(400), "bo"),
            "resolving again changes nothing"
        );
        assert_eq!(case.resolved_by.as_deref(), Some("ana"));
    }

    #[test]
    fn two_replies_or_a_customer_message_after_the_reply_is_not() {
        let mut two = Case::default();
        two.customer_wrote(t(100));
        two.brand_replied("r1", t(200));
        two.brand_replied("r2", t(250));
        two.resolve(t(300), "ana");
        assert_eq!(two.first_contact_resolution, Some(false));

        let mut after = Case::default();
        after.customer_wrote(t(100));
        after.brand_replied("r1", t(200));
        after.customer_wrote(t(220));
        after.resolve(t(300), "ana");
        assert_eq!(after.first_contact_resolution, Some(false));

        let mut none = Case::default();
        none.customer_wrote(t(100));
        none.resolve(t(300), "ana");
        assert_eq!(none.first_contact_resolution, Some(false));
    }

    #[test]
    fn a_message_after_the_resolution_opens_the_next_case_and_one_before_does_not() {
        let mut case = Case::default();
        case.customer_wrote(t(100));
        case.brand_replied("r1", t(200));
        case.resolve(t(300), "ana");
        assert_eq!(case.customer_wrote(t(250)), Inbound::BeforeResolution);
        assert_eq!(case.number, 1);
        assert_eq!(case.customer_wrote(t(400)), Inbound::Reopened);
        assert_eq!(case.number, 2);
        assert_eq!(case.opened_at, Some(t(400)));
        assert!(case.replies.is_empty() && case.resolved_at.is_none());
        assert_eq!(case.customer_wrote(t(400)), Inbound::Open, "a repeat");
        assert_eq!(case.number, 2);
    }
}
