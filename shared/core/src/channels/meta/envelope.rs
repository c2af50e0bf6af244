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
use crate::channels::json::{id_at, str_at, unknown_account, unsupported};
use crate::model::{Channel, Record};

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

/// Normalizes a `page` or `instagram` delivery.
pub(crate) fn normalize(
    object: MetaObject,
    body: &Value,
    received_at: DateTime<Utc>,
) -> Vec<Record> {
    let channel = object.messaging_channel();
    let entries: Vec<&Value> = match body.get("entry") {
        Some(Value::Array(entries)) => entries.iter().collect(),
        // A lone entry object, as some libraries keep them.
        None if body.get("messaging").is_some() || body.get("changes").is_some() => vec![body],
        _ => return vec![unsupported(channel, None, "unsupported", body, received_at)],
    };
    let mut out = Vec::new();
    for entry in entries {
        let Some(map) = entry.as_object() else {
            out.push(unsupported(
                channel,
                None,
                "unsupported",
                entry,
                received_at,
            ));
            continue;
        };
        let account = id_at(entry, "/id").unwrap_or_else(unknown_account);
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
                    for change in changes {
                        let field = str_at(change, "/field").unwrap_or("unsupported");
                        match change.get("value") {
                            Some(v) => out.extend(match object {
                                MetaObject::Page => {
                                    feed::page_change(&account, field, v, received_at)
                                }
                                MetaObject::Instagram => {
                                    feed::instagram_change(&account, field, v, received_at)
                                }
                            }),
                            None => out.push(unsupported(
                                object.changes_channel(),
                                Some(account.clone()),
                                field,
                                change,
                                received_at,
                            )),
                        }
                    }
                }
                (other, value) => out.push(unsupported(
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
