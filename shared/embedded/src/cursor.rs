//! Pagination cursors: the sort key of the last row of a page, as base64url (no padding) of a
//! small JSON document tagged with its listing, so a cursor of one listing is refused by another.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use switchboard_core::model::Channel;
use switchboard_core::ports::BackendError;

/// Where the next page of a listing starts (exclusive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) enum Cursor {
    /// `conversations`, with the channel filter it was issued for.
    #[serde(rename = "c")]
    Conversations {
        #[serde(rename = "ch")]
        channel: Option<Channel>,
        #[serde(rename = "t")]
        last_at_ms: i64,
        #[serde(rename = "id")]
        id: String,
    },
    /// `timeline` of one conversation.
    #[serde(rename = "t")]
    Timeline {
        #[serde(rename = "cv")]
        conversation_id: String,
        #[serde(rename = "t")]
        at_ms: i64,
        #[serde(rename = "k")]
        key: String,
    },
    /// `timeline` of one customer.
    #[serde(rename = "u")]
    CustomerTimeline {
        #[serde(rename = "cu")]
        customer_id: String,
        #[serde(rename = "t")]
        at_ms: i64,
        #[serde(rename = "k")]
        key: String,
    },
    /// `events`: the line after which the next page starts, with the type filter.
    #[serde(rename = "e")]
    Events {
        #[serde(rename = "ty")]
        kind: Option<String>,
        #[serde(rename = "l")]
        line: u64,
    },
    /// `quarantined`.
    #[serde(rename = "q")]
    Quarantine {
        #[serde(rename = "t")]
        received_at: String,
        #[serde(rename = "id")]
        id: String,
    },
}

impl Cursor {
    /// The opaque text of the cursor.
    pub(crate) fn encode(&self, operation: &'static str) -> Result<String, BackendError> {
        let json = serde_json::to_vec(self).map_err(|e| BackendError::unavailable(operation, e))?;
        Ok(URL_SAFE_NO_PAD.encode(json))
    }

    /// The cursor of an opaque text; anything this module did not write is
    /// [`BackendError::BadCursor`].
    pub(crate) fn decode(text: &str) -> Result<Self, BackendError> {
        let json = URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| BackendError::BadCursor)?;
        serde_json::from_slice(&json).map_err(|_| BackendError::BadCursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_anything_else() {
        let c = Cursor::Timeline {
            conversation_id: "cv_1".into(),
            at_ms: -5,
            key: "k".into(),
        };
        let text = c.encode("test").unwrap();
        assert!(!text.contains('=') && !text.contains('+') && !text.contains('/'));
        assert_eq!(Cursor::decode(&text).unwrap(), c);
        for bad in ["", "!!!", "e30", "bnVsbA", &format!("{text}=")] {
            assert!(
                matches!(Cursor::decode(bad), Err(BackendError::BadCursor)),
                "{bad:?}"
            );
        }
    }
}
