//! Reading provider JSON: the small helpers every normalizer shares, and the rule for what
//! nobody understands (kept as an `unsupported` notification with its raw JSON).

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

use crate::channel::Channel;
use crate::ids::{ProviderId, digest_json};
use crate::model::{Notification, Record};

/// A notification that keeps `raw` as it came, keyed by its digest, at `occurred_at`.
pub(crate) fn unsupported(
    channel: Channel,
    account_id: Option<ProviderId>,
    topic: &str,
    raw: &Value,
    occurred_at: DateTime<Utc>,
) -> Record {
    unsupported_owned(channel, account_id, topic, raw.clone(), occurred_at)
}

/// [`unsupported`], moving `raw` in.
pub(crate) fn unsupported_owned(
    channel: Channel,
    account_id: Option<ProviderId>,
    topic: &str,
    raw: Value,
    occurred_at: DateTime<Utc>,
) -> Record {
    Record::Notification(Notification {
        channel,
        account_id: account_id.unwrap_or_else(unknown_account),
        notification_id: ProviderId(format!("{topic}:{}", digest_json(&raw))),
        topic: topic.to_owned(),
        occurred_at,
        raw,
    })
}

/// Takes the array at `key` out of the object `value` (leaving an empty one), or answers
/// `None` and leaves `value` as it was when there is no array there.
pub(crate) fn take_array(value: &mut Value, key: &str) -> Option<Vec<Value>> {
    match value.get_mut(key) {
        Some(Value::Array(items)) => Some(std::mem::take(items)),
        _ => None,
    }
}

/// Takes the object at `key` out of the object `value` (leaving an empty one), or answers
/// `None` and leaves `value` as it was when there is no object there.
pub(crate) fn take_object(value: &mut Value, key: &str) -> Option<serde_json::Map<String, Value>> {
    match value.get_mut(key) {
        Some(Value::Object(map)) => Some(std::mem::take(map)),
        _ => None,
    }
}

/// Gives every record `raw` as the provider JSON it keeps: the last record moves it in, any
/// other gets a copy (one provider item can make several records, each keeping the item).
pub(crate) fn keep_raw(mut records: Vec<Record>, raw: Value) -> Vec<Record> {
    let Some(last) = records.pop() else {
        return records;
    };
    let mut out: Vec<Record> = records
        .into_iter()
        .map(|r| r.with_raw(raw.clone()))
        .collect();
    out.push(last.with_raw(raw));
    out
}

/// The account used when a delivery names none.
pub(crate) fn unknown_account() -> ProviderId {
    ProviderId("unknown".into())
}

/// A provider timestamp: the text exactly as sent and the instant it denotes, when it can be
/// read. Accepts Unix seconds or milliseconds (as a JSON number or a string of digits) and
/// RFC 3339 strings; anything else (`"TIMESTAMP"`, null) has no instant.
pub fn provider_time(value: Option<&Value>) -> (Option<String>, Option<DateTime<Utc>>) {
    let Some(value) = value else {
        return (None, None);
    };
    let raw = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return (None, None),
    };
    let at = if let Ok(n) = raw.trim().parse::<i64>() {
        // Seconds until the year 5138; anything larger is milliseconds.
        if n.abs() >= 100_000_000_000 {
            Utc.timestamp_millis_opt(n).single()
        } else {
            Utc.timestamp_opt(n, 0).single()
        }
    } else if let Ok(f) = raw.trim().parse::<f64>() {
        if f.is_finite() && f.abs() < 1e11 {
            Utc.timestamp_millis_opt((f * 1000.0) as i64).single()
        } else {
            None
        }
    } else {
        DateTime::parse_from_rfc3339(raw.trim())
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    (Some(raw), at)
}

/// The value at a JSON pointer (RFC 6901), as [`Value::pointer`] finds it, without its cost:
/// `Value::pointer` unescapes every token into a new string (two allocations a token), and the
/// normalizers look up several pointers per item. A pointer with an escape (`~0`, `~1`) goes
/// the long way.
pub(crate) fn value_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a Value> {
    if pointer.is_empty() {
        return Some(value);
    }
    let tokens = pointer.strip_prefix('/')?;
    if tokens.contains('~') {
        return value.pointer(pointer);
    }
    tokens.split('/').try_fold(value, |v, token| match v {
        // Provider objects are small: comparing a few keys costs less than hashing one.
        Value::Object(map) if map.len() <= SMALL_OBJECT => {
            map.iter().find_map(|(k, v)| (k == token).then_some(v))
        }
        Value::Object(map) => map.get(token),
        Value::Array(list) => index(token).and_then(|i| list.get(i)),
        _ => None,
    })
}

/// Up to this many keys, an object is searched key by key rather than through its hash table.
const SMALL_OBJECT: usize = 8;

/// An array index as RFC 6901 writes it: digits, no sign, no leading zero.
fn index(token: &str) -> Option<usize> {
    if token.starts_with('+') || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    token.parse().ok()
}

/// The text of a JSON string field.
pub(crate) fn str_at<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    text_of(value_at(value, pointer))
}

/// An id field (string or number).
pub(crate) fn id_at(value: &Value, pointer: &str) -> Option<ProviderId> {
    id_of(value_at(value, pointer))
}

/// A field found already, read as text: a string that is not empty.
pub(crate) fn text_of(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// A field found already, read as an id (a string or a number).
pub(crate) fn id_of(value: Option<&Value>) -> Option<ProviderId> {
    value.and_then(ProviderId::from_json)
}

/// Arbitrary JSON for the normalizers' property tests.
#[cfg(test)]
pub(crate) mod arb {
    use proptest::prelude::*;
    use serde_json::Value;

    /// JSON trees whose strings and keys are drawn mostly from `words` and `keys` (the values
    /// and field names a normalizer looks at), the rest at random.
    pub(crate) fn json(
        words: &'static [&'static str],
        keys: &'static [&'static str],
    ) -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            prop_oneof![
                prop::sample::select(words).prop_map(str::to_owned),
                "[a-z0-9.:_<>]{0,12}",
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            let key = prop_oneof![
                prop::sample::select(keys).prop_map(str::to_owned),
                "[a-z_]{1,8}",
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(key, inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn provider_time_reads_seconds_millis_and_rfc3339_and_keeps_the_text() {
        let (raw, at) = provider_time(Some(&json!("1730231903")));
        assert_eq!(raw.as_deref(), Some("1730231903"));
        assert_eq!(at.unwrap().timestamp(), 1_730_231_903);
        let (_, at) = provider_time(Some(&json!(1_458_692_752_478_i64)));
        assert_eq!(at.unwrap().timestamp_millis(), 1_458_692_752_478);
        let (_, at) = provider_time(Some(&json!("2024-03-01T10:00:00Z")));
        assert_eq!(at.unwrap().timestamp(), 1_709_287_200);
        let (raw, at) = provider_time(Some(&json!("TIMESTAMP")));
        assert_eq!((raw.as_deref(), at), (Some("TIMESTAMP"), None));
        assert_eq!(provider_time(Some(&json!(i64::MAX))).1, None);
        assert_eq!(provider_time(Some(&json!(1e300))).1, None);
    }

    #[test]
    fn value_at_reads_escaped_and_indexed_pointers_as_rfc_6901_does() {
        let v = json!({"a/b": {"m~n": 1}, "list": [10, 20], "": {"x": 2}});
        assert_eq!(value_at(&v, "/a~1b/m~0n"), Some(&json!(1)));
        assert_eq!(value_at(&v, "/list/1"), Some(&json!(20)));
        assert_eq!(value_at(&v, "/list/01"), None);
        assert_eq!(value_at(&v, "/list/+1"), None);
        assert_eq!(value_at(&v, "//x"), Some(&json!(2)));
        assert_eq!(value_at(&v, ""), Some(&v));
        assert_eq!(value_at(&v, "list"), None);
    }

    proptest::proptest! {
        /// `value_at` finds exactly what `Value::pointer` finds, on any tree and any pointer.
        #[test]
        fn value_at_agrees_with_value_pointer(
            v in arb::json(&["0", "1", "a"], &["a", "b", "0", "1", "~", "/"]),
            pointer in "(/(a|b|0|1|01|\\+1|~0|~1|x|))*",
        ) {
            proptest::prop_assert_eq!(value_at(&v, &pointer), v.pointer(&pointer));
        }
    }
}
