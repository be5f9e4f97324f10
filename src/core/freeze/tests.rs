//! Freeze windows: schedules, time zones and daylight-saving changes, table-tested.

use jiff::Timestamp;
use proptest::prelude::*;

use super::cron::Schedule;
use super::*;

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn recurring(name: &str, schedule: &str, duration: &str, tz: &str) -> Window {
    let w = FreezeWindow {
        name: name.into(),
        schedule: Some(schedule.into()),
        duration: Some(duration.into()),
        time_zone: Some(tz.into()),
        start: None,
        end: None,
    };
    Window::read(&w, "w", name.into()).unwrap()
}

fn once(name: &str, start: &str, end: &str) -> Window {
    let w = FreezeWindow {
        name: name.into(),
        schedule: None,
        duration: None,
        time_zone: None,
        start: Some(start.into()),
        end: Some(end.into()),
    };
    Window::read(&w, "w", name.into()).unwrap()
}

/// (now, holds: (opened, closes)) for one window.
fn table(w: &Window, rows: &[(&str, Option<(&str, &str)>)]) {
    for (now, want) in rows {
        let got = w.holds_at(at(now));
        let want = want.map(|(a, b)| (at(a), at(b)));
        assert_eq!(got, want, "{} at {now}", w.name);
    }
}

#[test]
fn the_weekend_freeze_ends_monday_nine_local_across_both_daylight_saving_changes() {
    let weekend = recurring("weekend", "0 18 * * FRI", "63h", "Europe/Berlin");
    table(
        &weekend,
        &[
            // An ordinary weekend in winter (UTC+1): Friday 17:00Z to Monday 08:00Z.
            ("2026-12-04T16:59:59Z", None),
            ("2026-12-04T17:00:00Z", Some(("2026-12-04T17:00:00Z", "2026-12-07T08:00:00Z"))),
            ("2026-12-06T12:00:00Z", Some(("2026-12-04T17:00:00Z", "2026-12-07T08:00:00Z"))),
            ("2026-12-07T07:59:59Z", Some(("2026-12-04T17:00:00Z", "2026-12-07T08:00:00Z"))),
            ("2026-12-07T08:00:00Z", None),
            // Spring forward (29 March): Friday 18:00 CET (17:00Z) to Monday 09:00 CEST (07:00Z), 62h.
            ("2026-03-28T12:00:00Z", Some(("2026-03-27T17:00:00Z", "2026-03-30T07:00:00Z"))),
            ("2026-03-30T07:00:00Z", None),
            // Fall back (25 October): Friday 18:00 CEST (16:00Z) to Monday 09:00 CET (08:00Z), 64h.
            ("2026-10-23T16:00:00Z", Some(("2026-10-23T16:00:00Z", "2026-10-26T08:00:00Z"))),
            ("2026-10-26T07:30:00Z", Some(("2026-10-23T16:00:00Z", "2026-10-26T08:00:00Z"))),
            ("2026-10-26T08:00:00Z", None),
            // A Wednesday.
            ("2026-10-28T12:00:00Z", None),
        ],
    );
    assert_eq!(weekend.local(at("2026-10-26T08:00:00Z")), "Mon 26 Oct 09:00 CET");
    assert_eq!(weekend.next_open(at("2026-10-28T12:00:00Z")), Some(at("2026-10-30T17:00:00Z")));
}

#[test]
fn a_window_in_the_skipped_or_repeated_hour_opens_once() {
    // 02:30 on Sundays, for an hour, in Berlin.
    let night = recurring("night", "30 2 * * SUN", "1h", "Europe/Berlin");
    table(
        &night,
        &[
            // 29 March: 02:30 is never shown; it opens when the clocks jump, at 03:30 CEST
            // (01:30Z), and lasts its hour.
            ("2026-03-29T01:29:00Z", None),
            ("2026-03-29T01:30:00Z", Some(("2026-03-29T01:30:00Z", "2026-03-29T02:30:00Z"))),
            ("2026-03-29T02:30:00Z", None),
            // 25 October: 02:30 happens twice; it opens the first time (00:30Z) and closes at
            // 03:30 CET (02:30Z).
            ("2026-10-25T00:29:00Z", None),
            ("2026-10-25T00:30:00Z", Some(("2026-10-25T00:30:00Z", "2026-10-25T02:30:00Z"))),
            ("2026-10-25T01:45:00Z", Some(("2026-10-25T00:30:00Z", "2026-10-25T02:30:00Z"))),
            ("2026-10-25T02:30:00Z", None),
            // An ordinary Sunday in summer.
            ("2026-07-05T00:30:00Z", Some(("2026-07-05T00:30:00Z", "2026-07-05T01:30:00Z"))),
        ],
    );
    // New York falls back on 1 November: 01:30 happens twice, the window opens once.
    let ny = recurring("ny", "30 1 * * *", "30m", "America/New_York");
    assert_eq!(ny.next_open(at("2026-11-01T04:00:00Z")), Some(at("2026-11-01T05:30:00Z")));
    assert_eq!(ny.next_open(at("2026-11-01T05:30:00Z")), Some(at("2026-11-02T06:30:00Z")));
}

#[test]
fn one_off_windows_and_windows_that_run_into_each_other() {
    let holidays = once("holidays", "2026-12-24T00:00:00+01:00", "2026-12-27T00:00:00+01:00");
    table(
        &holidays,
        &[
            ("2026-12-23T22:59:59Z", None),
            ("2026-12-23T23:00:00Z", Some(("2026-12-23T23:00:00Z", "2026-12-26T23:00:00Z"))),
            ("2026-12-26T23:00:00Z", None),
        ],
    );
    // Christmas 2026 is a Thursday: the holidays run into the weekend's window (it opens
    // Friday 18:00, before the holidays end), which ends on Monday 28th.
    let weekend = recurring("weekend", "0 18 * * FRI", "63h", "Europe/Berlin");
    let windows = [holidays, weekend];
    let f = frozen(&windows, at("2026-12-24T10:00:00Z")).unwrap();
    assert_eq!(f.window, "holidays");
    assert_eq!(f.since, at("2026-12-23T23:00:00Z"));
    assert_eq!(f.until, at("2026-12-28T08:00:00Z"));
    assert_eq!(f.until_local, "Mon 28 Dec 09:00 CET");
    // Inside both, the one that closes last is named.
    let f = frozen(&windows, at("2026-12-26T10:00:00Z")).unwrap();
    assert_eq!((f.window.as_str(), f.until), ("weekend", at("2026-12-28T08:00:00Z")));
    assert_eq!(frozen(&windows, at("2026-12-28T08:00:00Z")), None);
    assert_eq!(frozen(&[], at("2026-12-28T08:00:00Z")), None);
}

#[test]
fn schedules_read_like_cron() {
    // (schedule, now, holds for a 1-minute window)
    let rows = [
        ("*/15 * * * *", "2026-12-04T10:45:30Z", true),
        ("*/15 * * * *", "2026-12-04T10:46:30Z", false),
        ("0 9-17/2 * * *", "2026-12-04T11:00:10Z", true),
        ("0 9-17/2 * * *", "2026-12-04T12:00:10Z", false),
        // Wrapping ranges: Friday to Monday, 22:00 to 02:00.
        ("0 0 * * FRI-MON", "2026-12-07T00:00:10Z", true),
        ("0 0 * * FRI-MON", "2026-12-08T00:00:10Z", false),
        ("0 22-2 * * *", "2026-12-04T01:00:10Z", true),
        ("0 22-2 * * *", "2026-12-04T03:00:10Z", false),
        // Sunday is 0 and 7; names in any case.
        ("0 0 * * 7", "2026-12-06T00:00:10Z", true),
        ("0 0 * * sun", "2026-12-06T00:00:10Z", true),
        ("0 0 1 Dec *", "2026-12-01T00:00:10Z", true),
        // Both day fields restricted: either matches (the 13th, or a Friday).
        ("0 0 13 * 5", "2026-12-04T00:00:10Z", true),
        ("0 0 13 * 5", "2026-12-13T00:00:10Z", true),
        ("0 0 13 * 5", "2026-12-05T00:00:10Z", false),
        // Only one restricted: both must.
        ("0 0 13 * *", "2026-12-04T00:00:10Z", false),
        ("0 0 29 2 *", "2028-02-29T00:00:10Z", true),
    ];
    for (schedule, now, holds) in rows {
        let w = recurring("w", schedule, "1m", "UTC");
        assert_eq!(w.holds_at(at(now)).is_some(), holds, "{schedule} at {now}");
    }
}

#[test]
fn unreadable_windows_name_the_field() {
    let base = FreezeWindow {
        name: "w".into(),
        schedule: Some("0 18 * * FRI".into()),
        duration: Some("63h".into()),
        time_zone: Some("Europe/Berlin".into()),
        start: None,
        end: None,
    };
    let cases = [
        (FreezeWindow { schedule: Some("0 18 * *".into()), ..base.clone() }, "x.schedule", "five fields"),
        (FreezeWindow { schedule: Some("0 25 * * *".into()), ..base.clone() }, "x.schedule", "hour field"),
        (FreezeWindow { schedule: Some("0 18 * * FRY".into()), ..base.clone() }, "x.schedule", "(or SUN-SAT)"),
        (FreezeWindow { schedule: Some("*/0 * * * *".into()), ..base.clone() }, "x.schedule", "minute field"),
        (FreezeWindow { duration: Some("0s".into()), ..base.clone() }, "x.duration", "positive duration"),
        (FreezeWindow { time_zone: Some("Europe/Berlinn".into()), ..base.clone() }, "x.timeZone", "IANA"),
        (
            FreezeWindow {
                schedule: None,
                duration: None,
                start: Some("2026-12-27T00:00:00Z".into()),
                end: Some("2026-12-24T00:00:00Z".into()),
                ..base.clone()
            },
            "x.end",
            "after start",
        ),
    ];
    for (w, field, says) in cases {
        let e = Window::read(&w, "x", "w".into()).unwrap_err();
        assert_eq!(e.field, field, "{w:?}");
        assert!(e.message.contains(says), "{w:?}: {e}");
    }
}

/// Cron-like text: fields from a small alphabet, so that near misses are common.
fn cronish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("*".to_string()),
        (0u8..80).prop_map(|n| n.to_string()),
        Just("0".to_string()),
        Just("00".to_string()),
        Just("7".to_string()),
        Just("fri".to_string()),
        Just("DEC".to_string()),
        Just("foo".to_string()),
        Just("".to_string()),
    ];
    let item = (
        token.clone(),
        prop::option::of(token.clone()),
        prop::option::of(prop_oneof![
            (0u8..120).prop_map(|n| n.to_string()),
            Just("099".to_string()),
            Just("x".to_string()),
        ]),
    )
        .prop_map(|(a, b, step)| {
            let mut s = a;
            if let Some(b) = b {
                s = format!("{s}-{b}");
            }
            if let Some(step) = step {
                s = format!("{s}/{step}");
            }
            s
        });
    let field = prop::collection::vec(item, 1..3).prop_map(|items| items.join(","));
    prop::collection::vec(field, 4..7).prop_map(|fields| fields.join(" "))
}

/// A policy with one window on `schedule`, through the CRD's own rules.
fn admitted(schedule: &str) -> bool {
    let policy = serde_json::json!({
        "apiVersion": "redispool.io/v1alpha1",
        "kind": "RedisPoolPolicy",
        "metadata": {"name": "p"},
        "spec": {
            "targetRef": {"name": "auth-api"},
            "tiers": [{"name": "production", "workers": 1, "connectionsPerWorker": 1}],
            "rollout": {"freezeWindows": [{"name": "w", "schedule": schedule, "duration": "1h"}]},
        },
    });
    crate::core::api::validation::policy_from_value(policy).is_ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    /// What admission's rule accepts is exactly what the operator reads.
    #[test]
    fn the_admission_rule_and_the_parser_agree(text in cronish()) {
        prop_assert_eq!(admitted(&text), Schedule::parse(&text).is_ok(), "{:?}", text);
    }
}

#[test]
fn admission_takes_the_schedules_people_write() {
    for ok in ["0 18 * * FRI", "*/15 9-17 * * mon-fri", "0 0 24-26 DEC *", " 30 2 * * 7 "] {
        assert!(admitted(ok) && Schedule::parse(ok).is_ok(), "{ok}");
    }
    for bad in ["0 18 * *", "0 24 * * *", "60 * * * *", "0 0 0 * *", "* * * 13 *", "* * * * 8", "*/0 * * * *"] {
        assert!(!admitted(bad) && Schedule::parse(bad).is_err(), "{bad}");
    }
}
