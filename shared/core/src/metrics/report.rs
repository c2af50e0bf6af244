//! The report of `GET /api/metrics`: stored hourly buckets merged into hours, days or weeks,
//! grouped by any of the dims, with the backlog of the moment.
//!
//! Hours are UTC hours (the stored buckets). Days and weeks are those of a calendar's time
//! zone (the SLA policy's default calendar): a day starts at the zone's midnight, a week on
//! Monday; an hour belongs to the day or week in which it starts (in a zone whose offset is not
//! whole hours, the hour that holds midnight counts to the day it starts in).

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

use super::{BucketKey, Counter, Counts, Dims, HOUR, Sketch, hour_of};
use crate::sla::Calendar;

/// The most days one report may cover.
pub const MAX_DAYS: i64 = 400;
/// The most days a report by the hour may cover.
pub const MAX_HOURLY_DAYS: i64 = 62;

/// How wide each bucket of a report is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// A UTC hour.
    Hour,
    /// A day of the calendar's zone.
    Day,
    /// A week of the calendar's zone, from Monday.
    Week,
}

impl Granularity {
    /// `hour`, `day`, `week`.
    pub fn as_str(self) -> &'static str {
        match self {
            Granularity::Hour => "hour",
            Granularity::Day => "day",
            Granularity::Week => "week",
        }
    }
}

/// A dim a report can group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupBy {
    /// The channel.
    Channel,
    /// The business account.
    Account,
    /// The team.
    Team,
    /// The topic.
    Topic,
    /// The priority level.
    Priority,
}

impl GroupBy {
    /// Every dim, in key order.
    pub const ALL: [GroupBy; 5] = [
        GroupBy::Channel,
        GroupBy::Account,
        GroupBy::Team,
        GroupBy::Topic,
        GroupBy::Priority,
    ];

    /// Its name in the query and the key.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Channel => "channel",
            GroupBy::Account => "account",
            GroupBy::Team => "team",
            GroupBy::Topic => "topic",
            GroupBy::Priority => "priority",
        }
    }

    fn value(self, dims: &Dims) -> Option<String> {
        match self {
            GroupBy::Channel => Some(dims.channel.as_str().to_owned()),
            GroupBy::Account => Some(dims.account.clone()),
            GroupBy::Team => dims.team.clone(),
            GroupBy::Topic => dims.topic.clone(),
            GroupBy::Priority => dims.priority.map(|p| p.as_str().to_owned()),
        }
    }
}

/// What a report covers. Build it with [`ReportQuery::parse`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReportQuery {
    /// From (inclusive).
    pub from: DateTime<Utc>,
    /// To (exclusive).
    pub to: DateTime<Utc>,
    /// The width of each bucket.
    pub granularity: Granularity,
    /// The dims of each series' key, each once, in [`GroupBy::ALL`] order; empty: one series.
    pub group_by: Vec<GroupBy>,
}

impl ReportQuery {
    /// The query of `from` and `to` (RFC 3339), `granularity` (`hour`, `day` or `week`;
    /// default `hour`) and `group_by` (each `channel`, `account`, `team`, `topic` or
    /// `priority`). The error says which parameter is wrong and why.
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        granularity: Option<&str>,
        group_by: &[String],
    ) -> Result<Self, String> {
        let instant = |name: &str, value: Option<&str>| {
            let value = value.ok_or_else(|| format!("{name} is required (RFC 3339)"))?;
            DateTime::parse_from_rfc3339(value)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| format!("{name} must be an RFC 3339 time, as 2026-12-01T00:00:00Z"))
        };
        let (from, to) = (instant("from", from)?, instant("to", to)?);
        if to <= from {
            return Err("to must be later than from".into());
        }
        let granularity = match granularity.unwrap_or("hour") {
            "hour" => Granularity::Hour,
            "day" => Granularity::Day,
            "week" => Granularity::Week,
            other => return Err(format!("granularity {other:?}: hour, day or week")),
        };
        let days = ((to - from).num_seconds() + 86_399) / 86_400;
        if days > MAX_DAYS {
            return Err(format!("a report covers at most {MAX_DAYS} days"));
        }
        if granularity == Granularity::Hour && days > MAX_HOURLY_DAYS {
            return Err(format!(
                "a report by the hour covers at most {MAX_HOURLY_DAYS} days: use day or week"
            ));
        }
        let mut dims = Vec::new();
        for name in group_by.iter().flat_map(|g| g.split(',')) {
            let dim = GroupBy::ALL
                .into_iter()
                .find(|d| d.as_str() == name.trim())
                .ok_or_else(|| {
                    format!("group_by {name:?}: channel, account, team, topic or priority")
                })?;
            dims.push(dim);
        }
        dims.sort();
        dims.dedup();
        Ok(Self {
            from,
            to,
            granularity,
            group_by: dims,
        })
    }

    /// The stored hours the report reads: those that overlap `[from, to)`, as the start of the
    /// first and the end of the last (Unix seconds, `[start, end)`).
    pub fn hours(&self) -> (i64, i64) {
        let end = hour_of(self.to)
            + if self.to.timestamp() % HOUR == 0 {
                0
            } else {
                HOUR
            };
        (hour_of(self.from), end)
    }
}

/// A conversation waiting now, as the backlog counts it.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    /// Its dims.
    pub dims: Dims,
    /// Since when its customer waits.
    pub since: DateTime<Utc>,
}

type Key = Vec<(GroupBy, Option<String>)>;

#[derive(Default)]
struct Series {
    buckets: BTreeMap<DateTime<Utc>, Counts>,
    waiting: u64,
    oldest: Option<DateTime<Utc>>,
}

/// One series of a report: its key, its buckets (every period of the range, empty ones
/// included, oldest first) and its backlog now.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesReport {
    /// The value of each grouped dim (`None`: not prioritized).
    pub key: Vec<(GroupBy, Option<String>)>,
    /// Each period's start and counts.
    pub buckets: Vec<(DateTime<Utc>, Counts)>,
    /// All of its buckets merged.
    pub totals: Counts,
    /// Conversations of this key waiting now.
    pub waiting_now: u64,
    /// The longest of their waits, in seconds.
    pub oldest_wait_seconds: Option<i64>,
}

/// A report. See the module docs; [`Report::to_json`] and [`Report::to_csv`] are what the API
/// answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// What it covers.
    pub query: ReportQuery,
    /// One per key, in key order.
    pub series: Vec<SeriesReport>,
    /// Everything merged.
    pub totals: Counts,
    /// Conversations waiting now, all keys.
    pub waiting_now: u64,
    /// The longest wait now, in seconds.
    pub oldest_wait_seconds: Option<i64>,
}

/// The start of the period of `query` that the stored hour `hour` belongs to.
fn period_of(query: &ReportQuery, calendar: &Calendar, hour: i64) -> DateTime<Utc> {
    let at = DateTime::<Utc>::from_timestamp(hour, 0).unwrap_or_default();
    match query.granularity {
        Granularity::Hour => at,
        Granularity::Day => calendar.period_start(at, false),
        Granularity::Week => calendar.period_start(at, true),
    }
}

/// The report of `query` from the stored buckets `stored` (those of [`ReportQuery::hours`];
/// others are ignored) and the conversations `waiting` now, at `now`. Days and weeks are
/// `calendar`'s.
pub fn report(
    query: &ReportQuery,
    calendar: &Calendar,
    stored: &[(BucketKey, Counts)],
    waiting: &[Waiting],
    now: DateTime<Utc>,
) -> Report {
    let (start, end) = query.hours();
    let mut periods = Vec::new();
    let mut hour = start;
    while hour < end {
        let p = period_of(query, calendar, hour);
        if periods.last() != Some(&p) {
            periods.push(p);
        }
        hour += HOUR;
    }
    let key_of =
        |dims: &Dims| -> Key { query.group_by.iter().map(|g| (*g, g.value(dims))).collect() };
    let mut series: BTreeMap<Key, Series> = BTreeMap::new();
    if query.group_by.is_empty() {
        series.insert(Vec::new(), Series::default());
    }
    let mut period_cache: BTreeMap<i64, DateTime<Utc>> = BTreeMap::new();
    for (key, counts) in stored {
        if key.hour < start || key.hour >= end {
            continue;
        }
        let period = *period_cache
            .entry(key.hour)
            .or_insert_with(|| period_of(query, calendar, key.hour));
        series
            .entry(key_of(&key.dims))
            .or_default()
            .buckets
            .entry(period)
            .or_default()
            .merge(counts);
    }
    for w in waiting {
        let s = series.entry(key_of(&w.dims)).or_default();
        s.waiting += 1;
        s.oldest = Some(s.oldest.map_or(w.since, |o| o.min(w.since)));
    }
    let wait_seconds = |since: Option<DateTime<Utc>>| since.map(|s| (now - s).num_seconds().max(0));
    let mut totals = Counts::default();
    let mut all_waiting = 0;
    let mut all_oldest: Option<DateTime<Utc>> = None;
    let series = series
        .into_iter()
        .map(|(key, mut s)| {
            let mut series_totals = Counts::default();
            let buckets = periods
                .iter()
                .map(|p| {
                    let counts = s.buckets.remove(p).unwrap_or_default();
                    series_totals.merge(&counts);
                    (*p, counts)
                })
                .collect();
            totals.merge(&series_totals);
            all_waiting += s.waiting;
            all_oldest = match (all_oldest, s.oldest) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            SeriesReport {
                key,
                buckets,
                totals: series_totals,
                waiting_now: s.waiting,
                oldest_wait_seconds: wait_seconds(s.oldest),
            }
        })
        .collect();
    Report {
        query: query.clone(),
        series,
        totals,
        waiting_now: all_waiting,
        oldest_wait_seconds: wait_seconds(all_oldest),
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The summary of a distribution: `count`, `mean`, `p50`, `p90`, `p99`, `max` (seconds;
/// `null` when empty; percentiles and max within 1 %).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Distribution {
    /// Observations.
    pub count: u64,
    /// Exact mean, to a tenth of a second.
    pub mean: Option<f64>,
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Largest.
    pub max: Option<f64>,
}

impl Distribution {
    fn of(s: &Sketch) -> Self {
        let round = |v: Option<f64>| v.map(|v| (v * 10.0).round() / 10.0);
        let [p50, p90, p99] = s.quantiles([0.5, 0.9, 0.99]).map(round);
        Self {
            count: s.count(),
            mean: round(s.mean()),
            p50,
            p90,
            p99,
            max: round(s.max()),
        }
    }

    fn cells(&self) -> [String; 6] {
        let f = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        [
            self.count.to_string(),
            f(self.mean),
            f(self.p50),
            f(self.p90),
            f(self.p99),
            f(self.max),
        ]
    }
}

/// The figures of a bucket (or of the totals), as the API answers them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    /// The start of the bucket (RFC 3339); absent on totals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// Customer messages in.
    pub messages_in: u64,
    /// Conversations whose first customer message arrived.
    pub conversations_opened: u64,
    /// Public customer messages in.
    pub public_in: u64,
    /// Customer messages with a complaint signal.
    pub complaints: u64,
    /// Waits ended by an answer.
    pub answered: u64,
    /// First response times.
    pub first_response_seconds: Distribution,
    /// Next response times.
    pub next_response_seconds: Distribution,
    /// Timed waits that ended by their due time.
    pub sla_met: u64,
    /// Timed waits that ended after it.
    pub sla_breached: u64,
    /// `sla_met / (sla_met + sla_breached)`; `null` with neither.
    pub sla_attainment: Option<f64>,
    /// Cases resolved.
    pub resolved: u64,
    /// Of them, at first contact.
    pub first_contact_resolved: u64,
    /// `first_contact_resolved / resolved`; `null` with none resolved.
    pub fcr_rate: Option<f64>,
    /// Cases reopened.
    pub reopened: u64,
}

/// The names of the CSV columns of [`Figures`], after `start` and the key's.
const COLUMNS: [&str; 22] = [
    "messages_in",
    "conversations_opened",
    "public_in",
    "complaints",
    "answered",
    "first_response_seconds_count",
    "first_response_seconds_mean",
    "first_response_seconds_p50",
    "first_response_seconds_p90",
    "first_response_seconds_p99",
    "first_response_seconds_max",
    "next_response_seconds_count",
    "next_response_seconds_mean",
    "next_response_seconds_p50",
    "next_response_seconds_p90",
    "next_response_seconds_p99",
    "next_response_seconds_max",
    "sla_met",
    "sla_breached",
    "sla_attainment",
    "resolved",
    "first_contact_resolved",
];

impl Figures {
    /// The figures of `c`, starting at `start` (none for totals).
    pub fn of(c: &Counts, start: Option<DateTime<Utc>>) -> Self {
        let (met, breached) = (c.get(Counter::SlaMet), c.get(Counter::SlaBreached));
        let (resolved, fcr) = (
            c.get(Counter::Resolved),
            c.get(Counter::FirstContactResolved),
        );
        Self {
            start: start.map(time),
            messages_in: c.get(Counter::MessagesIn),
            conversations_opened: c.get(Counter::ConversationsOpened),
            public_in: c.get(Counter::PublicIn),
            complaints: c.get(Counter::Complaints),
            answered: c.get(Counter::Answered),
            first_response_seconds: Distribution::of(&c.first_response),
            next_response_seconds: Distribution::of(&c.next_response),
            sla_met: met,
            sla_breached: breached,
            sla_attainment: ratio(met, met + breached),
            resolved,
            first_contact_resolved: fcr,
            fcr_rate: ratio(fcr, resolved),
            reopened: c.get(Counter::Reopened),
        }
    }

    /// The CSV cells, in the order of the header after `start` and the key: [`COLUMNS`],
    /// then `fcr_rate` and `reopened`.
    fn cells(&self) -> Vec<String> {
        let f = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        let mut out = vec![
            self.messages_in.to_string(),
            self.conversations_opened.to_string(),
            self.public_in.to_string(),
            self.complaints.to_string(),
            self.answered.to_string(),
        ];
        out.extend(self.first_response_seconds.cells());
        out.extend(self.next_response_seconds.cells());
        out.extend([
            self.sla_met.to_string(),
            self.sla_breached.to_string(),
            f(self.sla_attainment),
            self.resolved.to_string(),
            self.first_contact_resolved.to_string(),
            f(self.fcr_rate),
            self.reopened.to_string(),
        ]);
        out
    }
}

/// The totals: the figures of everything merged, and the backlog now.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Totals {
    #[serde(flatten)]
    figures: Figures,
    waiting_now: u64,
    oldest_wait_seconds: Option<i64>,
}

#[derive(Serialize)]
struct SeriesOut {
    key: Map<String, Value>,
    buckets: Vec<Figures>,
    totals: Figures,
    waiting_now: u64,
    oldest_wait_seconds: Option<i64>,
}

#[derive(Serialize)]
struct ReportOut {
    from: String,
    to: String,
    granularity: &'static str,
    group_by: Vec<&'static str>,
    series: Vec<SeriesOut>,
    totals: Totals,
}

impl Report {
    fn out(&self) -> ReportOut {
        ReportOut {
            from: time(self.query.from),
            to: time(self.query.to),
            granularity: self.query.granularity.as_str(),
            group_by: self.query.group_by.iter().map(|g| g.as_str()).collect(),
            series: self
                .series
                .iter()
                .map(|s| SeriesOut {
                    key: s
                        .key
                        .iter()
                        .map(|(g, v)| (g.as_str().to_owned(), json!(v)))
                        .collect(),
                    buckets: s
                        .buckets
                        .iter()
                        .map(|(start, c)| Figures::of(c, Some(*start)))
                        .collect(),
                    totals: Figures::of(&s.totals, None),
                    waiting_now: s.waiting_now,
                    oldest_wait_seconds: s.oldest_wait_seconds,
                })
                .collect(),
            totals: Totals {
                figures: Figures::of(&self.totals, None),
                waiting_now: self.waiting_now,
                oldest_wait_seconds: self.oldest_wait_seconds,
            },
        }
    }

    /// The JSON of `GET /api/metrics`, as bytes.
    pub fn to_json_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.out()).unwrap_or_default()
    }

    /// The JSON of `GET /api/metrics`, as a value.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.out()).unwrap_or_default()
    }

    /// The same buckets as CSV (RFC 4180): a header row, then one row per key and bucket;
    /// a distribution is six columns (`first_response_seconds_p50`, …); an empty cell is null.
    pub fn to_csv(&self) -> String {
        let mut header: Vec<&str> = vec!["start"];
        header.extend(self.query.group_by.iter().map(|g| g.as_str()));
        header.extend(COLUMNS);
        header.extend(["fcr_rate", "reopened"]);
        let mut out = String::new();
        push_row(&mut out, header.into_iter());
        for s in &self.series {
            for (start, counts) in &s.buckets {
                let mut row = vec![time(*start)];
                row.extend(s.key.iter().map(|(_, v)| v.clone().unwrap_or_default()));
                row.extend(Figures::of(counts, None).cells());
                push_row(&mut out, row.iter().map(String::as_str));
            }
        }
        out
    }
}

fn push_row<'a>(out: &mut String, cells: impl Iterator<Item = &'a str>) {
    for (i, cell) in cells.enumerate() {
        if i > 0 {
            out.push(',');
        }
        if cell.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&cell.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(cell);
        }
    }
    out.push_str("\r\n");
}

/// The backlog entry of a waiting conversation (`None` when nobody waits).
pub fn waiting_of(c: &crate::model::Conversation) -> Option<Waiting> {
    Some(Waiting {
        dims: Dims::of_conversation(c),
        since: c.waiting_since?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Channel;
    use crate::priority::Priority;
    use chrono::TimeZone;

    fn dims(channel: Channel, team: &str) -> Dims {
        Dims {
            channel,
            account: "PN".into(),
            team: Some(team.into()),
            topic: Some("billing".into()),
            priority: Some(Priority::P2),
        }
    }

    fn counts(messages: u64, response: Option<i64>) -> Counts {
        let mut c = Counts::default();
        c.add(Counter::MessagesIn, messages);
        if let Some(r) = response {
            c.add(Counter::Answered, 1);
            c.first_response.add(r);
        }
        c
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn stored() -> Vec<(BucketKey, Counts)> {
        let h = |t: &str| at(t).timestamp();
        vec![
            (
                BucketKey {
                    hour: h("2026-03-02T10:00:00Z"),
                    dims: dims(Channel::Whatsapp, "payments"),
                },
                counts(3, Some(60)),
            ),
            (
                BucketKey {
                    hour: h("2026-03-02T10:00:00Z"),
                    dims: dims(Channel::Messenger, "care"),
                },
                counts(1, None),
            ),
            (
                BucketKey {
                    hour: h("2026-03-03T05:00:00Z"),
                    dims: dims(Channel::Whatsapp, "payments"),
                },
                counts(2, Some(600)),
            ),
        ]
    }

    #[test]
    fn hours_merge_into_days_of_the_zone_and_group_by_key() {
        let query = ReportQuery::parse(
            Some("2026-03-02T00:00:00-06:00"),
            Some("2026-03-04T00:00:00-06:00"),
            Some("day"),
            &["channel".into()],
        )
        .unwrap();
        let calendar = Calendar::business(
            "America/Mexico_City",
            std::array::from_fn(|_| vec![crate::sla::Range::parse("09:00-18:00").unwrap()]),
            [],
        )
        .unwrap();
        let waiting = [Waiting {
            dims: dims(Channel::Whatsapp, "payments"),
            since: at("2026-03-03T10:00:00Z"),
        }];
        let report = report(
            &query,
            &calendar,
            &stored(),
            &waiting,
            at("2026-03-03T10:30:00Z"),
        );
        assert_eq!(report.series.len(), 2);
        // Keys in order: messenger, then whatsapp.
        let wa = &report.series[1];
        assert_eq!(wa.key, [(GroupBy::Channel, Some("whatsapp".into()))]);
        // 05:00Z on the 3rd is 23:00 on the 2nd in Mexico City: the same day as 10:00Z.
        assert_eq!(wa.buckets.len(), 2);
        assert_eq!(wa.buckets[0].0, at("2026-03-02T06:00:00Z"));
        assert_eq!(wa.buckets[0].1.get(Counter::MessagesIn), 5);
        assert_eq!(wa.buckets[1].1.get(Counter::MessagesIn), 0);
        assert_eq!(wa.waiting_now, 1);
        assert_eq!(wa.oldest_wait_seconds, Some(1_800));
        assert_eq!(report.totals.get(Counter::MessagesIn), 6);
        assert_eq!(report.totals.first_response.count(), 2);
        let json = report.to_json();
        assert_eq!(json["series"][0]["key"]["channel"], "messenger");
        assert_eq!(json["series"][0]["waiting_now"], 0);
        assert_eq!(json["totals"]["answered"], 2);
        assert_eq!(json["totals"]["first_response_seconds"]["mean"], 330.0);
        assert_eq!(json["totals"]["sla_attainment"], Value::Null);
    }

    #[test]
    fn weeks_start_on_monday_and_csv_has_a_row_per_key_and_bucket() {
        let query = ReportQuery::parse(
            Some("2026-03-01T00:00:00Z"),
            Some("2026-03-10T00:00:00Z"),
            Some("week"),
            &["team,priority".into()],
        )
        .unwrap();
        let report = report(&query, &Calendar::always(), &stored(), &[], Utc::now());
        // Sunday the 1st is in the week of Monday 23 February; then the weeks of the 2nd and 9th.
        let starts: Vec<_> = report.series[0].buckets.iter().map(|b| b.0).collect();
        assert_eq!(
            starts,
            [
                at("2026-02-23T00:00:00Z"),
                at("2026-03-02T00:00:00Z"),
                at("2026-03-09T00:00:00Z")
            ]
        );
        let csv = report.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 1 + 2 * 3);
        assert!(lines[0].starts_with("start,team,priority,messages_in,"));
        assert!(lines[0].contains("first_response_seconds_p90"));
        assert!(lines[2].starts_with("2026-03-02T00:00:00Z,care,P2,1,"));
    }

    #[test]
    fn bad_queries_say_what_is_wrong() {
        let parse = |f: Option<&str>, t: Option<&str>, g: Option<&str>, by: &[&str]| {
            let by: Vec<String> = by.iter().map(|s| s.to_string()).collect();
            ReportQuery::parse(f, t, g, &by).unwrap_err()
        };
        let (f, t) = (Some("2026-03-01T00:00:00Z"), Some("2026-03-02T00:00:00Z"));
        assert!(parse(None, t, None, &[]).contains("from is required"));
        assert!(parse(Some("yesterday"), t, None, &[]).contains("RFC 3339"));
        assert!(parse(t, f, None, &[]).contains("later"));
        assert!(parse(f, t, Some("minute"), &[]).contains("granularity"));
        assert!(parse(f, t, None, &["colour"]).contains("group_by"));
        assert!(parse(f, Some("2026-06-01T00:00:00Z"), Some("hour"), &[]).contains("day or week"));
        assert!(parse(f, Some("2028-06-01T00:00:00Z"), Some("day"), &[]).contains("at most"));
        let q = ReportQuery::parse(Some("2026-03-01T10:30:00Z"), t, None, &[]).unwrap();
        let (a, b) = q.hours();
        assert_eq!(b - a, 14 * HOUR);
        assert_eq!(Utc.timestamp_opt(a, 0).unwrap(), at("2026-03-01T10:00:00Z"));
    }
}
