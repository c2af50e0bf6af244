use super::*;
use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;

use crate::channel::Channel;
use crate::priority::Priority;

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap()
        .with_timezone(&Utc)
}

fn ranges(list: &[&str]) -> Vec<Range> {
    list.iter().map(|r| Range::parse(r).unwrap()).collect()
}

/// Monday to Friday `hours`, in `zone`, with `holidays`.
fn weekdays(zone: &str, hours: &[&str], holidays: &[&str]) -> Calendar {
    let day = ranges(hours);
    Calendar::business(
        zone,
        [
            day.clone(),
            day.clone(),
            day.clone(),
            day.clone(),
            day,
            vec![],
            vec![],
        ],
        holidays.iter().map(|h| h.parse().unwrap()),
    )
    .unwrap()
}

#[test]
fn friday_night_with_a_one_hour_target_is_due_monday_at_ten() {
    // The example: Mon–Fri 9–18, a message at 22:00 on Friday, a 1 h target.
    let c = weekdays("UTC", &["09:00-18:00"], &[]);
    assert_eq!(
        c.add(at("2026-11-20T22:00:00Z"), Duration::hours(1)),
        at("2026-11-23T10:00:00Z")
    );
}

#[test]
fn table_of_due_times() {
    let mexico = weekdays("America/Mexico_City", &["09:00-18:00"], &["2026-11-16"]);
    let split = weekdays("Europe/Madrid", &["09:00-13:00", "15:00-19:00"], &[]);
    let tokyo = weekdays("Asia/Tokyo", &["09:00-18:00"], &[]);
    let cases: [(&str, &Calendar, &str, Duration, &str); 10] = [
        // Inside hours: plain addition.
        (
            "inside",
            &mexico,
            "2026-11-17T16:00:00Z",
            Duration::hours(1),
            "2026-11-17T17:00:00Z",
        ),
        // Crossing the close: the rest the next morning (Mexico City is UTC-6).
        (
            "over night",
            &mexico,
            "2026-11-17T23:30:00Z",
            Duration::hours(1),
            "2026-11-18T15:30:00Z",
        ),
        // Before opening: counts from 09:00.
        (
            "early",
            &mexico,
            "2026-11-17T12:00:00Z",
            Duration::minutes(15),
            "2026-11-17T15:15:00Z",
        ),
        // A holiday Monday: Friday evening is due Tuesday.
        (
            "holiday",
            &mexico,
            "2026-11-14T02:00:00Z",
            Duration::hours(1),
            "2026-11-17T16:00:00Z",
        ),
        // Split shift: the lunch break does not count (Madrid is UTC+1 in November).
        (
            "lunch",
            &split,
            "2026-11-17T11:30:00Z",
            Duration::hours(1),
            "2026-11-17T14:30:00Z",
        ),
        (
            "after lunch",
            &split,
            "2026-11-17T13:00:00Z",
            Duration::hours(1),
            "2026-11-17T15:00:00Z",
        ),
        // East of UTC: Tokyo's Monday 09:00 is Sunday 00:00 UTC.
        (
            "east",
            &tokyo,
            "2026-11-22T00:00:00Z",
            Duration::hours(2),
            "2026-11-23T02:00:00Z",
        ),
        // Long targets run over several days.
        (
            "long",
            &mexico,
            "2026-11-17T15:00:00Z",
            Duration::hours(24),
            "2026-11-19T21:00:00Z",
        ),
        // Zero: the next opening.
        (
            "zero",
            &mexico,
            "2026-11-17T02:00:00Z",
            Duration::zero(),
            "2026-11-17T15:00:00Z",
        ),
        (
            "at close",
            &mexico,
            "2026-11-18T00:00:00Z",
            Duration::minutes(1),
            "2026-11-18T15:01:00Z",
        ),
    ];
    for (name, calendar, start, d, due) in cases {
        assert_eq!(calendar.add(at(start), d), at(due), "{name}");
    }
}

#[test]
fn daylight_saving_changes_in_both_directions() {
    // New York: clocks go forward on 2026-03-08 at 02:00 and back on 2026-11-01 at 02:00.
    let ny = weekdays("America/New_York", &["09:00-18:00"], &[]);
    // Friday 17:00 EST (22:00 UTC) + 2 h: one hour Friday, one Monday from 09:00 EDT (13:00 UTC).
    assert_eq!(
        ny.add(at("2026-03-06T22:00:00Z"), Duration::hours(2)),
        at("2026-03-09T14:00:00Z")
    );
    // Friday 17:00 EDT (21:00 UTC) + 2 h: Monday 10:00 EST is 15:00 UTC.
    assert_eq!(
        ny.add(at("2026-10-30T21:00:00Z"), Duration::hours(2)),
        at("2026-11-02T15:00:00Z")
    );
    // A night shift through the change: Saturday 22:00 to Sunday 06:00 local.
    let day = |r: &[&str]| ranges(r);
    let nights = Calendar::business(
        "America/New_York",
        [
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            day(&["22:00-24:00"]),
            day(&["00:00-06:00"]),
        ],
        [],
    )
    .unwrap();
    // Spring forward: 22:00–06:00 local is 7 real hours.
    let start = at("2026-03-08T03:00:00Z"); // Saturday 22:00 EST
    assert_eq!(
        nights.running_between(start, at("2026-03-08T12:00:00Z")),
        Duration::hours(7)
    );
    assert_eq!(
        nights.add(start, Duration::hours(7)),
        at("2026-03-08T10:00:00Z")
    ); // 06:00 EDT
    // Fall back: the same shift is 9 real hours.
    let start = at("2026-11-01T02:00:00Z"); // Saturday 22:00 EDT
    assert_eq!(
        nights.running_between(start, at("2026-11-01T12:00:00Z")),
        Duration::hours(9)
    );
    assert_eq!(
        nights.add(start, Duration::hours(9)),
        at("2026-11-01T11:00:00Z")
    ); // 06:00 EST
}

#[test]
fn west_of_utc_and_a_clock_that_always_runs() {
    let sp = weekdays("America/Sao_Paulo", &["08:00-17:00"], &[]);
    // Monday 16:30 in São Paulo (UTC-3) + 1 h: 30 min Monday, 30 min Tuesday from 08:00.
    assert_eq!(
        sp.add(at("2026-11-23T19:30:00Z"), Duration::hours(1)),
        at("2026-11-24T11:30:00Z")
    );
    let always = Calendar::always();
    assert!(always.is_always());
    let start = at("2026-11-21T23:59:00Z");
    assert_eq!(
        always.add(start, Duration::minutes(15)),
        start + Duration::minutes(15)
    );
}

#[test]
fn calendars_refuse_nonsense() {
    assert!(Range::parse("18:00-09:00").is_err());
    assert!(Range::parse("9-18").is_err());
    assert!(TimeOfDay::parse("24:30").is_err());
    assert!(Calendar::business("Mars/Olympus", Default::default(), []).is_err());
    assert!(
        Calendar::business("UTC", Default::default(), []).is_err(),
        "no hours"
    );
    let overlap = ranges(&["09:00-13:00", "12:00-18:00"]);
    let err = Calendar::business(
        "UTC",
        [overlap, vec![], vec![], vec![], vec![], vec![], vec![]],
        [],
    )
    .unwrap_err();
    assert!(err.contains("mon") && err.contains("overlap"), "{err}");
}

fn zones() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("UTC"),
        Just("America/New_York"),
        Just("America/Sao_Paulo"),
        Just("Europe/Madrid"),
        Just("Asia/Tokyo"),
        Just("Australia/Sydney"),
        Just("Asia/Kolkata"),
    ]
}

fn calendars() -> impl Strategy<Value = Calendar> {
    let shift = (0u16..23, 1u16..8).prop_map(|(start, len)| {
        let end = (start + len).min(24);
        Range::parse(&format!("{start:02}:00-{end:02}:00")).unwrap()
    });
    let day = prop::collection::vec(shift, 0..3).prop_map(|mut r| {
        r.sort_by_key(|x| x.start);
        // Keep ranges apart: drop any that overlaps the one before.
        let mut kept: Vec<Range> = Vec::new();
        for x in r {
            if kept.last().is_none_or(|l| x.start >= l.end) {
                kept.push(x);
            }
        }
        kept
    });
    (
        zones(),
        prop::collection::vec(day, 7),
        prop::collection::vec(0u32..60, 0..4),
        any::<bool>(),
    )
        .prop_filter_map("some hours", |(zone, days, holidays, always)| {
            if always {
                return Some(Calendar::always());
            }
            let week: [Vec<Range>; 7] = days.try_into().ok()?;
            let holidays = holidays.into_iter().map(|d| {
                jiff::civil::date(2026, 11, 1)
                    .checked_add(jiff::Span::new().days(d))
                    .unwrap()
            });
            Calendar::business(zone, week, holidays).ok()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The running time between a start and its due time is the target, the due time never
    /// comes before the start, and a later start is never due earlier.
    #[test]
    fn due_times_are_consistent(
        calendar in calendars(),
        start_s in 1_790_000_000i64..1_800_000_000,
        later_s in 0i64..200_000,
        minutes in 0i64..3000,
    ) {
        let start = Utc.timestamp_opt(start_s, 0).unwrap();
        let target = Duration::minutes(minutes);
        let due = calendar.add(start, target);
        prop_assert!(due >= start);
        prop_assert_eq!(calendar.running_between(start, due), target);
        let later = start + Duration::seconds(later_s);
        prop_assert!(calendar.add(later, target) >= due);
        if calendar.is_always() {
            prop_assert_eq!(due, start + target);
        }
    }

    /// Adding in two steps is adding once.
    #[test]
    fn adding_in_two_steps_is_adding_once(
        calendar in calendars(),
        start_s in 1_790_000_000i64..1_800_000_000,
        a in 1i64..1500,
        b in 1i64..1500,
    ) {
        let start = Utc.timestamp_opt(start_s, 0).unwrap();
        let (a, b) = (Duration::minutes(a), Duration::minutes(b));
        prop_assert_eq!(calendar.add(calendar.add(start, a), b), calendar.add(start, a + b));
    }
}

#[test]
fn the_shipped_policy_is_valid() {
    let p = SlaPolicy::default_policy();
    let since = at("2026-11-17T16:00:00Z"); // Tuesday 10:00 in Mexico City
    let due = p.due(
        Channel::Whatsapp,
        Priority::P2,
        Wait::First,
        "billing",
        since,
    );
    assert_eq!(due.target, Duration::hours(1));
    assert_eq!(due.due_at, at("2026-11-17T17:00:00Z"));
    assert_eq!(
        due.warn_at,
        at("2026-11-17T16:45:00Z"),
        "three quarters of the target"
    );
    // Public comments have their own targets; the security team's clock always runs.
    assert_eq!(
        p.target(Channel::FacebookFeed, Priority::P1, Wait::First),
        Duration::minutes(10)
    );
    assert_eq!(
        p.target(Channel::FacebookFeed, Priority::P4, Wait::Next),
        Duration::hours(4)
    );
    // What customers expect of each channel bounds every level: X within the hour, Facebook
    // within four, a web chat within minutes; the rest keeps the default.
    for priority in [Priority::P1, Priority::P2, Priority::P3, Priority::P4] {
        for wait in [Wait::First, Wait::Next] {
            assert!(p.target(Channel::X, priority, wait) <= Duration::hours(1));
            for facebook in [Channel::Messenger, Channel::FacebookFeed] {
                assert!(p.target(facebook, priority, wait) <= Duration::hours(4));
            }
            assert!(p.target(Channel::Web, priority, wait) <= Duration::minutes(15));
            assert!(p.target(Channel::Web, priority, wait) < p.target(Channel::X, priority, wait));
        }
    }
    assert_eq!(
        p.target(Channel::Whatsapp, Priority::P4, Wait::First),
        Duration::hours(24)
    );
    let night = at("2026-11-18T08:00:00Z");
    let due = p.due(
        Channel::Whatsapp,
        Priority::P1,
        Wait::First,
        "fraud-and-security",
        night,
    );
    assert_eq!(due.due_at, night + Duration::minutes(15));
    // The window of WhatsApp, not of page comments.
    let w = p.window_closing(Channel::Whatsapp, since).unwrap();
    assert_eq!(w.closes_at, since + Duration::hours(24));
    assert_eq!(w.warn_at, since + Duration::hours(22));
    assert!(p.window_closing(Channel::FacebookFeed, since).is_none());
}

#[test]
fn a_fixed_lead_and_seconds_for_demos() {
    let text = policy::DEFAULT_TOML
        .replace("share = 0.75", "lead = \"5s\"")
        .replace(
            "P1 = { first = \"15m\", next = \"15m\" }",
            "P1 = { first = \"20s\", next = \"20s\" }",
        );
    let p = SlaPolicy::parse(&text).unwrap();
    let since = at("2026-11-18T08:00:00Z");
    let due = p.due(
        Channel::Whatsapp,
        Priority::P1,
        Wait::First,
        "fraud-and-security",
        since,
    );
    assert_eq!(due.due_at, since + Duration::seconds(20));
    assert_eq!(due.warn_at, since + Duration::seconds(15));
}

#[test]
fn policy_mistakes_are_named() {
    let with = |from: &str, to: &str| {
        assert!(policy::DEFAULT_TOML.contains(from), "{from}");
        match SlaPolicy::parse(&policy::DEFAULT_TOML.replacen(from, to, 1)) {
            Ok(_) => panic!("accepted: {from} -> {to}"),
            Err(e) => e.to_string(),
        }
    };
    let cases = [
        (with("share = 0.75", "share = 1.5"), "warning.share"),
        (
            with("share = 0.75", "share = 0.5\nlead = \"1m\""),
            "either share",
        ),
        (
            with("share = 0.75", "lead = \"20m\""),
            "not shorter than the target",
        ),
        (
            with("P2 = { first = \"1h\"", "P2 = { first = \"soon\""),
            "targets.default.P2.first",
        ),
        (
            with("P4 = { first = \"24h\", next = \"24h\" }", ""),
            "targets.default.P4: missing",
        ),
        (
            with("[targets.facebook_feed]", "[targets.fax]"),
            "targets.fax: not a channel",
        ),
        (
            with(
                "time_zone = \"America/Mexico_City\"",
                "time_zone = \"Mexico\"",
            ),
            "calendars.office",
        ),
        (
            with("sat = [\"10:00-14:00\"]", "sat = [\"14:00-10:00\"]"),
            "calendars.office.sat",
        ),
        (
            with("\"2026-12-25\"", "\"25/12/2026\""),
            "calendars.office.holidays",
        ),
        (
            with(
                "fraud-and-security = \"always\"",
                "fraud-and-security = \"nights\"",
            ),
            "teams.fraud-and-security",
        ),
        (
            with("default = \"office\"", "support = \"office\""),
            "teams.default",
        ),
        (
            with("warn_before = \"2h\"", "warn_before = \"25h\""),
            "window.warn_before",
        ),
        (
            with(
                "[calendars.always]\nclock = \"always\"",
                "[calendars.always]\nclock = \"sometimes\"",
            ),
            "calendars.always.clock",
        ),
    ];
    for (message, expected) in cases {
        assert!(message.starts_with("SLA policy:"), "{message}");
        assert!(message.contains(expected), "{expected}: {message}");
    }
}
