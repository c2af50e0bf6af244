//! How times are written to the file.
//!
//! Exact times (`received_at`, `stored_at`, `enqueued_at`) are RFC 3339 text in UTC with nine
//! fractional digits (`2024-05-01T12:00:00.123456789Z`): they round-trip exactly and, being
//! fixed-width, sort as text in time order. Sort keys of provider times are integer
//! milliseconds; expiry is integer unix seconds.

use chrono::{DateTime, SecondsFormat, Utc};

/// The fixed-width text of `t`.
pub(crate) fn to_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// A time written by [`to_text`].
pub(crate) fn from_text(s: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn text_round_trips_and_sorts() {
        let a = Utc.timestamp_opt(1_700_000_000, 5).unwrap();
        let b = Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap();
        let c = Utc.timestamp_opt(1_700_000_001, 0).unwrap();
        for t in [a, b, c] {
            assert_eq!(from_text(&to_text(t)).unwrap(), t);
        }
        assert!(to_text(a) < to_text(b) && to_text(b) < to_text(c));
    }
}
