//! The envelope of Meta's `page` and `instagram` webhooks:
//! `{"object": …, "entry": [{"id": <page or account>, "time": …, "messaging": [...],
//! "standby": [...], "changes": [...]}]}`.
//!
//! Every item of every list of every entry becomes records; an entry key nobody knows yet is kept
//! as a notification. Bodies that lost their envelope (a lone entry object, `{"entry": [...]}`
//! without `object`) are read the same way.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{feed, messaging};
use crate::channels::json::{str_at, take_array, unknown_account, unsupported, unsupported_owned};
use crate::model::{Channel, ProviderId, Record};

/// Which Meta webhook the envelope came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetaObject {
    /// `object: page`: Messenger messaging and page feed changes.
    Page,
    /// `object: instagram`: Instagram messaging, comments and mentions.
    Instagram,
}

impl MetaObject {
    fn messaging_channel(self) -> Channel {
        match self {
            MetaObject::Page => Channel::Messenger,
            MetaObject::Instagram => Channel::Instagram,
        }
    }

    fn changes_channel(self) -> Channel {
        match self {
            MetaObject::Page => Channel::FacebookFeed,
            MetaObject::Instagram => Channel::Instagram,
        }
    }
}

/// Normalizes a `page` or `instagram` delivery. Takes it by value: each event and change moves
/// into its records as the raw JSON kept, instead of being copied.
pub(crate) fn normalize(
    object: MetaObject,
    mut body: Value,
    received_at: DateTime<Utc>,
) -> Vec<Record> {
    let channel = object.messaging_channel();
    // A lone entry object, as some libraries keep them.
    let lone = body.get("entry").is_none()
        && (body.get("messaging").is_some() || body.get("changes").is_some());
    let entries: Vec<Value> = if lone {
        vec![body]
    } else {
        match take_array(&mut body, "entry") {
            Some(entries) => entries,
            None => {
                return vec![unsupported(
                    channel,
                    None,
                    "unsupported",
                    &body,
                    received_at,
                )];
            }
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let Value::Object(map) = entry else {
            out.push(unsupported(
                channel,
                None,
                "unsupported",
                &entry,
                received_at,
            ));
            continue;
        };
        let account = map
            .get("id")
            .and_then(ProviderId::from_json)
            .unwrap_or_else(unknown_account);
        for (key, value) in map {
            match (key.as_str(), value) {
                ("id" | "time" | "uid", _) => {}
                ("messaging" | "standby", Value::Array(events)) => {
                    let standby = key == "standby";
                    for event in events {
                        out.extend(messaging::messaging_event(
                            channel,
                            &account,
                            event,
                            standby,
                            received_at,
                        ));
                    }
                }
                ("changes", Value::Array(changes)) => {
                    for mut change in changes {
                        let value = change.get_mut("value").map(Value::take);
                        let field = str_at(&change, "/field").unwrap_or("unsupported");
                        out.push(match (value, object) {
                            (Some(v), MetaObject::Page) => {
                                feed::page_change(&account, field, v, received_at)
                            }
                            (Some(v), MetaObject::Instagram) => {
                                feed::instagram_change(&account, field, v, received_at)
                            }
                            (None, _) => {
                                let field = field.to_owned();
                                unsupported_owned(
                                    object.changes_channel(),
                                    Some(account.clone()),
                                    &field,
                                    change,
                                    received_at,
                                )
                            }
                        });
                    }
                }
                (other, value) => out.push(unsupported_owned(
                    channel,
                    Some(account.clone()),
                    other,
                    value,
                    received_at,
                )),
            }
        }
    }
    out
}
