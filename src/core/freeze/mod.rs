//! Freeze windows, read in their time zones: whether one holds at an instant, until when, and
//! when the next one opens. Pure: the time is an input, and the time zone database is the one
//! built into the binary.
//!
//! Daylight-saving time: a schedule names wall-clock times. One that falls in the hour skipped
//! in spring opens when the clocks have jumped (02:30 opens at 03:30), one in the hour repeated
//! in autumn opens the first time (`jiff`'s "compatible" reading), and a
//! window's `duration` is counted on the wall clock, so Friday 18:00 for 63h ends Monday 09:00
//! local time whether the weekend had 62, 63 or 64 hours.

pub mod cron;
#[cfg(test)]
mod tests;

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::{TimeZone, TimeZoneDatabase};
use jiff::{SignedDuration, Timestamp, ToSpan};

use crate::core::api::FreezeWindow;
use crate::core::durations::parse_duration;
use cron::Schedule;

/// A window, read and ready to be asked.
#[derive(Clone, Debug)]
pub struct Window {
    /// As status and Events say it: `weekend`, or `cluster/holidays` for the operator's own.
    pub name: String,
    kind: Kind,
}

#[derive(Clone, Debug)]
enum Kind {
    Recurring { schedule: Schedule, lasts: SignedDuration, tz: TimeZone },
    Once { start: Timestamp, end: Timestamp },
}

/// A window holds: since when, and until when (with the windows it runs into).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frozen {
    pub window: String,
    pub since: Timestamp,
    pub until: Timestamp,
    /// The end on the wall clock of the last window's time zone: `Mon 26 Oct 09:00 CET`.
    pub until_local: String,
}

/// A window that cannot be read, with the field to fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct WindowError {
    pub field: String,
    pub message: String,
}

/// How far back a window's openings are looked for: ten years (a window that lasts longer is
/// a one-off window in all but name).
const LOOKBACK_DAYS: i64 = 3660;

impl Window {
    /// Reads a window; `at` is where it is written (`spec.rollout.freezeWindows[0]`) and
    /// `named` what it is called (`weekend`, or `cluster/weekend`).
    pub fn read(w: &FreezeWindow, at: &str, named: String) -> Result<Window, WindowError> {
        let err = |field: &str, message: String| WindowError { field: format!("{at}.{field}"), message };
        let kind = match (&w.schedule, &w.duration, &w.start, &w.end) {
            (Some(schedule), Some(duration), None, None) => {
                let schedule = Schedule::parse(schedule).map_err(|e| err("schedule", e.to_string()))?;
                let lasts = parse_duration(duration)
                    .filter(|d| d.is_positive())
                    .ok_or_else(|| err("duration", format!("{duration:?} is not a positive duration, like 63h")))?;
                let zone = w.time_zone.as_deref().unwrap_or("UTC");
                let tz = time_zone(zone).ok_or_else(|| {
                    err("timeZone", format!("{zone:?} is not an IANA time zone name, like Europe/Berlin"))
                })?;
                Kind::Recurring { schedule, lasts, tz }
            }
            (None, None, Some(start), Some(end)) => {
                let time = |field: &str, text: &str| {
                    text.parse::<Timestamp>().map_err(|_| {
                        err(
                            field,
                            format!("{text:?} is not an RFC 3339 time with an offset, like 2026-12-24T00:00:00+01:00"),
                        )
                    })
                };
                let (start, end) = (time("start", start)?, time("end", end)?);
                if end <= start {
                    return Err(err("end", "must be after start".into()));
                }
                Kind::Once { start, end }
            }
            _ => {
                return Err(err(
                    "schedule",
                    "a window needs schedule and duration (recurring) or start and end (one-off)".into(),
                ));
            }
        };
        Ok(Window { name: named, kind })
    }

    /// When the window that holds at `now` opened and when it closes.
    pub fn holds_at(&self, now: Timestamp) -> Option<(Timestamp, Timestamp)> {
        match &self.kind {
            Kind::Once { start, end } => (*start <= now && now < *end).then_some((*start, *end)),
            Kind::Recurring { schedule, lasts, tz } => {
                // The latest opening at or before `now` closes last: if its window is over, so
                // are all before it. Wall-clock times up to two hours after `now` are looked at
                // too, since an autumn night repeats an hour.
                let from = now.to_zoned(tz.clone()).datetime().saturating_add(2.hours());
                let days = (lasts.as_hours() / 24 + 2).min(LOOKBACK_DAYS);
                let mut date = from.date();
                let mut limit = from.time();
                for _ in 0..=days {
                    if schedule.fires_on(date) {
                        let mut at = Some(limit);
                        while let Some(t) = at.and_then(|a| schedule.last_at_or_before(a)) {
                            // Opened on the wall clock as it was shown (03:30 for a 02:30 that
                            // was skipped), and lasts from there.
                            let opened = wall_clock(date.to_datetime(t), tz);
                            let start = instant(opened, tz);
                            if start <= now {
                                let end = instant(opened.saturating_add(*lasts), tz);
                                return (end > now).then_some((start, end));
                            }
                            at = t.checked_sub(1.minute()).ok().filter(|earlier| *earlier < t);
                        }
                    }
                    date = date.yesterday().ok()?;
                    limit = Time::MAX;
                }
                None
            }
        }
    }

    /// When the window next opens after `now`, within a year.
    pub fn next_open(&self, now: Timestamp) -> Option<Timestamp> {
        match &self.kind {
            Kind::Once { start, .. } => (*start > now).then_some(*start),
            Kind::Recurring { schedule, tz, .. } => {
                let from = now.to_zoned(tz.clone()).datetime().saturating_sub(2.hours());
                let mut date: Date = from.date();
                let mut limit = from.time();
                for _ in 0..=366 {
                    if schedule.fires_on(date) {
                        let mut at = Some(limit);
                        while let Some(t) = at.and_then(|a| schedule.first_at_or_after(a)) {
                            let start = instant(date.to_datetime(t), tz);
                            if start > now {
                                return Some(start);
                            }
                            at = t.checked_add(1.minute()).ok().filter(|later| *later > t);
                        }
                    }
                    date = date.tomorrow().ok()?;
                    limit = Time::MIN;
                }
                None
            }
        }
    }

    /// `instant` on this window's wall clock, for people: `Mon 26 Oct 09:00 CET`.
    pub fn local(&self, instant: Timestamp) -> String {
        let tz = match &self.kind {
            Kind::Recurring { tz, .. } => tz.clone(),
            Kind::Once { .. } => TimeZone::UTC,
        };
        instant.to_zoned(tz).strftime("%a %-d %b %H:%M %Z").to_string()
    }
}

/// Reads a list of windows: the policy's (`spec.rollout.freezeWindows`, named as written) or
/// the operator's (`cluster/NAME`).
pub fn read_all(windows: &[FreezeWindow], at: &str, prefix: &str) -> Result<Vec<Window>, WindowError> {
    windows
        .iter()
        .enumerate()
        .map(|(i, w)| Window::read(w, &format!("{at}[{i}]"), format!("{prefix}{}", w.name)))
        .collect()
}

/// The window that holds at `now`, if any: the one that closes last, and the end of the run of
/// windows it leads into (one that opens before another closes continues the freeze).
pub fn frozen(windows: &[Window], now: Timestamp) -> Option<Frozen> {
    let (first, since, mut until) = windows
        .iter()
        .filter_map(|w| w.holds_at(now).map(|(start, end)| (w, start, end)))
        .max_by_key(|(_, _, end)| *end)?;
    let mut last = first;
    for _ in 0..windows.len() {
        let next = windows.iter().filter_map(|w| w.holds_at(until).map(|(_, end)| (w, end))).max_by_key(|(_, e)| *e);
        match next {
            Some((w, end)) if end > until => (last, until) = (w, end),
            _ => break,
        }
    }
    Some(Frozen { window: first.name.clone(), since, until, until_local: last.local(until) })
}

/// The time zone of that IANA name, from the database built into the binary.
pub fn time_zone(name: &str) -> Option<TimeZone> {
    if name == "UTC" {
        return Some(TimeZone::UTC);
    }
    static DB: std::sync::OnceLock<TimeZoneDatabase> = std::sync::OnceLock::new();
    DB.get_or_init(TimeZoneDatabase::bundled).get(name).ok()
}

/// The wall-clock time shown for `at`: itself, or after the jump when it was skipped.
fn wall_clock(at: DateTime, tz: &TimeZone) -> DateTime {
    tz.to_ambiguous_zoned(at).compatible().map_or(at, |z| z.datetime())
}

/// The instant of a wall-clock time: in a skipped hour, as if the clocks had not jumped yet
/// (02:30 is 03:30 summer time); in a repeated hour, the first time.
fn instant(at: DateTime, tz: &TimeZone) -> Timestamp {
    tz.to_ambiguous_zoned(at).compatible().map_or(Timestamp::MAX, |z| z.timestamp())
}
