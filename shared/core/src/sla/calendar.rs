//! Business calendars: when the SLA clock runs, and the due-time arithmetic over it.
//!
//! A [`Calendar`] is a time zone, weekly hours (any number of ranges a day: split shifts) and
//! holidays, or a clock that runs all the time. [`Calendar::add`] answers the instant at which
//! a given amount of running clock time has passed since a start: a message at 22:00 on Friday
//! with hours Monday to Friday 09:00–18:00 and a target of one hour is due on Monday at 10:00.
//!
//! Hours are wall-clock times of the calendar's zone, turned into instants day by day, so they
//! follow daylight-saving changes: 09:00–18:00 is nine real hours on either side of a change.
//! A range that starts or ends in the hour a spring-forward change skips starts or ends when
//! the clock reaches the other side (RFC 5545's "compatible" rule); in the hour a fall-back
//! change repeats, at the first occurrence. Counted time is real elapsed time.

use chrono::{DateTime, Duration, Utc};
use jiff::Timestamp;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use std::collections::BTreeSet;
use std::fmt;

/// A time of day, `00:00` to `24:00`, to the minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeOfDay {
    minutes: u16,
}

impl TimeOfDay {
    /// `HH:MM`, `24:00` allowed (the end of the day).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("{text:?} is not a time of day HH:MM (00:00 to 24:00)");
        let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
        let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if m >= 60 || h > 24 || (h == 24 && m != 0) {
            return Err(bad());
        }
        Ok(Self {
            minutes: h * 60 + m,
        })
    }

    fn hour(self) -> i8 {
        (self.minutes / 60) as i8
    }

    fn minute(self) -> i8 {
        (self.minutes % 60) as i8
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.minutes / 60, self.minutes % 60)
    }
}

/// An opening range of one day, `start` before `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// Opening.
    pub start: TimeOfDay,
    /// Closing (`24:00`: midnight at the end of the day).
    pub end: TimeOfDay,
}

impl Range {
    /// `HH:MM-HH:MM`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (a, b) = text
            .split_once('-')
            .ok_or_else(|| format!("{text:?} is not a range HH:MM-HH:MM"))?;
        let (start, end) = (TimeOfDay::parse(a)?, TimeOfDay::parse(b)?);
        if start >= end {
            return Err(format!("{text:?}: the range must end after it starts"));
        }
        Ok(Self { start, end })
    }
}

/// When the SLA clock of a team runs.
#[derive(Debug, Clone)]
pub struct Calendar {
    zone: TimeZone,
    zone_name: String,
    /// Monday first; `None`: the clock runs all the time.
    week: Option<[Vec<Range>; 7]>,
    holidays: BTreeSet<Date>,
}

/// How far ahead a due time is looked for before giving up (a calendar with hours always finds
/// one well within this; it bounds the loop on a year of holidays).
const MAX_DAYS: usize = 3 * 366;

impl Calendar {
    /// A clock that runs all the time (24/7).
    pub fn always() -> Self {
        Self {
            zone: TimeZone::UTC,
            zone_name: "UTC".into(),
            week: None,
            holidays: BTreeSet::new(),
        }
    }

    /// Business hours: `zone` (an IANA name), the ranges of each weekday (Monday first), and
    /// holidays (dates of the zone on which the clock does not run). The ranges of a day must
    /// not overlap; at least one day must have one.
    pub fn business(
        zone: &str,
        week: [Vec<Range>; 7],
        holidays: impl IntoIterator<Item = Date>,
    ) -> Result<Self, String> {
        let tz = TimeZone::get(zone).map_err(|e| format!("time zone {zone:?}: {e}"))?;
        let mut week = week;
        for (day, ranges) in week.iter_mut().enumerate() {
            ranges.sort_by_key(|r| r.start);
            for pair in ranges.windows(2) {
                if pair[1].start < pair[0].end {
                    return Err(format!(
                        "{}: ranges {}-{} and {}-{} overlap",
                        WEEKDAYS[day], pair[0].start, pair[0].end, pair[1].start, pair[1].end
                    ));
                }
            }
        }
        if week.iter().all(Vec::is_empty) {
            return Err("no opening hours on any day of the week".into());
        }
        Ok(Self {
            zone: tz,
            zone_name: zone.to_owned(),
            week: Some(week),
            holidays: holidays.into_iter().collect(),
        })
    }

    /// Whether the clock runs all the time.
    pub fn is_always(&self) -> bool {
        self.week.is_none()
    }

    /// The zone's name.
    pub fn zone(&self) -> &str {
        &self.zone_name
    }

    /// The instant at which `running` clock time has passed since `start`. With business
    /// hours, time outside them does not count; a start outside them counts from the next
    /// opening. Zero running time is `start` itself (24/7) or the next opening at or after it.
    pub fn add(&self, start: DateTime<Utc>, running: Duration) -> DateTime<Utc> {
        let Some(week) = &self.week else {
            return start + running;
        };
        let mut left = running.max(Duration::zero());
        let mut day = self.date_of(start);
        for _ in 0..MAX_DAYS {
            if !self.holidays.contains(&day) {
                for range in &week[weekday_index(day.weekday())] {
                    let (open, close) = self.instants(day, *range);
                    if close <= start {
                        continue;
                    }
                    let from = open.max(start);
                    let available = close - from;
                    if left <= available {
                        return from + left;
                    }
                    left -= available;
                }
            }
            day = match day.tomorrow() {
                Ok(next) => next,
                Err(_) => break,
            };
        }
        // Only reachable with a calendar closed for years on end: never due.
        DateTime::<Utc>::MAX_UTC
    }

    /// Running clock time between two instants (zero if `to` is before `from`): the inverse
    /// of [`add`](Self::add).
    pub fn running_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        if to <= from {
            return Duration::zero();
        }
        let Some(week) = &self.week else {
            return to - from;
        };
        let mut total = Duration::zero();
        let mut day = self.date_of(from);
        let last = self.zone_date(to);
        loop {
            if !self.holidays.contains(&day) {
                for range in &week[weekday_index(day.weekday())] {
                    let (open, close) = self.instants(day, *range);
                    let (a, b) = (open.max(from), close.min(to));
                    if b > a {
                        total += b - a;
                    }
                }
            }
            if day >= last {
                return total;
            }
            day = match day.tomorrow() {
                Ok(next) => next,
                Err(_) => return total,
            };
        }
    }

    /// The start of the zone's day containing `at` (with `week`, of the week: Monday's
    /// midnight), as an instant; a midnight a daylight-saving change skips is the first instant
    /// after it.
    pub fn period_start(&self, at: DateTime<Utc>, week: bool) -> DateTime<Utc> {
        let mut day = self.zone_date(at);
        if week {
            for _ in 0..weekday_index(day.weekday()) {
                day = day.yesterday().unwrap_or(day);
            }
        }
        self.instant(day, TimeOfDay { minutes: 0 })
    }

    /// Whether the clock runs at `at`.
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        self.add(at, Duration::zero()) == at
            && self.running_between(at, at + Duration::seconds(1)) > Duration::zero()
    }

    /// The first day whose ranges can still be open at `at`: the day before the zone's date
    /// (a range of the previous day ending at 24:00 is open until midnight; the loops skip
    /// what has ended).
    fn date_of(&self, at: DateTime<Utc>) -> Date {
        let date = self.zone_date(at);
        date.yesterday().unwrap_or(date)
    }

    /// The zone's date at `at`.
    fn zone_date(&self, at: DateTime<Utc>) -> Date {
        let ts = Timestamp::from_millisecond(at.timestamp_millis()).unwrap_or(Timestamp::MIN);
        ts.to_zoned_datetime(self.zone.clone()).date()
    }

    /// The instants of a day's range.
    fn instants(&self, day: Date, range: Range) -> (DateTime<Utc>, DateTime<Utc>) {
        (self.instant(day, range.start), self.instant(day, range.end))
    }

    fn instant(&self, day: Date, time: TimeOfDay) -> DateTime<Utc> {
        let (day, hour) = if time.hour() == 24 {
            (day.tomorrow().unwrap_or(day), 0)
        } else {
            (day, time.hour())
        };
        let civil = day.at(hour, time.minute(), 0, 0);
        let ts = self
            .zone
            .to_ambiguous_timestamp(civil)
            .compatible()
            .unwrap_or(Timestamp::MAX);
        DateTime::<Utc>::from_timestamp_millis(ts.as_millisecond())
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// The names of the weekdays in a policy file, Monday first.
pub fn weekday_names() -> [&'static str; 7] {
    WEEKDAYS
}

fn weekday_index(day: Weekday) -> usize {
    usize::try_from(day.to_monday_one_offset() - 1).unwrap_or(0)
}
