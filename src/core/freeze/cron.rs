//! Cron schedules, `minute hour day-of-month month day-of-week`, as cron reads them: lists
//! (`1,15`), ranges (`MON-FRI`, and, beyond cron, ranges that wrap, `FRI-MON`), steps (`*/15`, `9-17/2`),
//! names for months and weekdays (any case), Sunday as 0 or 7. When both day fields are
//! restricted, a day matches either (cron's rule); otherwise both.
//!
//! The admission rule (`crate::core::api::schedule_regex`) accepts exactly what [`Schedule::parse`]
//! accepts; a property test holds them together.

use jiff::civil::{Date, Time};

use crate::core::api::{CRON_MONTHS as MONTHS, CRON_WEEKDAYS as WEEKDAYS};

/// One field: its name (for errors), its range, and the names it accepts (for index 0..).
struct Field {
    name: &'static str,
    min: u8,
    max: u8,
    names: &'static [&'static str],
}

const FIELDS: [Field; 5] = [
    Field { name: "minute", min: 0, max: 59, names: &[] },
    Field { name: "hour", min: 0, max: 23, names: &[] },
    Field { name: "day of month", min: 1, max: 31, names: &[] },
    Field { name: "month", min: 1, max: 12, names: MONTHS },
    // 7 is Sunday too.
    Field { name: "day of week", min: 0, max: 7, names: WEEKDAYS },
];

/// A schedule: the set of minutes, hours, days, months and weekdays it fires on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    /// Bit 0 is Sunday.
    weekdays: u64,
    days_restricted: bool,
    weekdays_restricted: bool,
}

/// Why a schedule cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error("a schedule has five fields (minute hour day-of-month month day-of-week), like '0 18 * * FRI'; found {0}")]
    Fields(usize),
    #[error("the {field} field {value:?} is not a value, range or step between {min} and {max}{names}")]
    Value { field: &'static str, value: String, min: u8, max: u8, names: &'static str },
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Schedule, CronError> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        if parts.len() != FIELDS.len() {
            return Err(CronError::Fields(parts.len()));
        }
        let mut sets = [0u64; 5];
        for ((set, field), part) in sets.iter_mut().zip(&FIELDS).zip(&parts) {
            *set = parse_field(field, part)?;
        }
        let [minutes, hours, days, months, mut weekdays] = sets;
        // Sunday is 0 and 7.
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & !(1 << 7);
        }
        Ok(Schedule {
            minutes,
            hours,
            days,
            months,
            weekdays,
            days_restricted: !parts[2].starts_with('*'),
            weekdays_restricted: !parts[4].starts_with('*'),
        })
    }

    /// Whether the schedule fires on some minute of `date`.
    pub fn fires_on(&self, date: Date) -> bool {
        if !has(self.months, date.month() as u8) {
            return false;
        }
        let day = has(self.days, date.day() as u8);
        let weekday = has(self.weekdays, date.weekday().to_sunday_zero_offset() as u8);
        match (self.days_restricted, self.weekdays_restricted) {
            (true, true) => day || weekday,
            _ => day && weekday,
        }
    }

    /// The latest time of day the schedule fires at, at or before `at` (on a day it fires on).
    pub fn last_at_or_before(&self, at: Time) -> Option<Time> {
        (0..=at.hour()).rev().filter(|h| has(self.hours, *h as u8)).find_map(|h| {
            let top = if h == at.hour() { at.minute() } else { 59 };
            (0..=top).rev().find(|m| has(self.minutes, *m as u8)).map(|m| Time::constant(h, m, 0, 0))
        })
    }

    /// The earliest time of day the schedule fires at, at or after `at` (on a day it fires on).
    pub fn first_at_or_after(&self, at: Time) -> Option<Time> {
        (at.hour()..24).filter(|h| has(self.hours, *h as u8)).find_map(|h| {
            let from = if h == at.hour() { at.minute() } else { 0 };
            (from..60).find(|m| has(self.minutes, *m as u8)).map(|m| Time::constant(h, m, 0, 0))
        })
    }
}

fn has(set: u64, value: u8) -> bool {
    set & (1 << value) != 0
}

/// A comma-separated list of `*`, `v` or `v-w` (wrapping when w < v), each with an optional
/// `/step` (1 to 99); `v/step` runs from v to the field's end.
fn parse_field(field: &'static Field, text: &str) -> Result<u64, CronError> {
    let bad = || CronError::Value {
        field: field.name,
        value: text.to_string(),
        min: field.min,
        max: field.max,
        names: match field.names.len() {
            12 => " (or JAN-DEC)",
            7 => " (or SUN-SAT)",
            _ => "",
        },
    };
    let mut set = 0u64;
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        let step = match step {
            None => 1,
            Some(s) if is_number(s, 2) => s.parse::<u8>().ok().filter(|n| (1..=99).contains(n)).ok_or_else(bad)?,
            Some(_) => return Err(bad()),
        };
        let (lo, hi) = match range.split_once('-') {
            _ if range == "*" => (field.min, field.max),
            Some((a, b)) => (value(field, a).ok_or_else(bad)?, value(field, b).ok_or_else(bad)?),
            None => {
                let v = value(field, range).ok_or_else(bad)?;
                (v, if step > 1 { field.max } else { v })
            }
        };
        // A range that wraps (FRI-MON) runs to the field's end and on from its start.
        let span = if hi >= lo { hi - lo } else { field.max - lo + 1 + hi - field.min };
        for i in (0..=span).step_by(step as usize) {
            let v = lo + i;
            set |= 1 << if v > field.max { v - field.max - 1 + field.min } else { v };
        }
    }
    Ok(set)
}

/// Digits only, at most `len` of them (the admission rule's bound).
fn is_number(s: &str, len: usize) -> bool {
    !s.is_empty() && s.len() <= len && s.bytes().all(|b| b.is_ascii_digit())
}

/// A number within the field's range (at most two digits), or one of its names.
fn value(field: &Field, text: &str) -> Option<u8> {
    if is_number(text, 2) {
        return text.parse::<u8>().ok().filter(|v| (field.min..=field.max).contains(v));
    }
    let lower = text.to_ascii_lowercase();
    let at = field.names.iter().position(|n| *n == lower)? as u8;
    // Months count from 1 (JAN), weekdays from 0 (SUN).
    Some(at + field.min)
}
