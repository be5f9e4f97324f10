//! Freeze windows: times when no rollout starts and no step advances (a rollback always may).
//!
//! The admission rules here accept what `core::freeze` reads: the schedule grammar is built from
//! the same names, and the time zones are those of the database the operator carries.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::spec::DURATION_RULE;

/// Month names a schedule accepts (any case), from January.
pub const CRON_MONTHS: &[&str] = &["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
/// Weekday names a schedule accepts (any case), from Sunday.
pub const CRON_WEEKDAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// A recurring window (`schedule`, `duration`, `timeZone`) or a one-off one (`start`, `end`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.schedule) != has(self.start)")
    .message("spec.rollout.freezeWindows[] needs either schedule and duration (a recurring window) or start and end (a one-off window), not both"))]
#[x_kube(validation = Rule::new("has(self.schedule) == has(self.duration)")
    .message("spec.rollout.freezeWindows[].schedule and duration go together: when the window opens and how long it lasts, like schedule: '0 18 * * FRI' with duration: 63h"))]
#[x_kube(validation = Rule::new("has(self.start) == has(self.end)")
    .message("spec.rollout.freezeWindows[].start and end go together, like start: '2026-12-24T00:00:00+01:00' with end: '2026-12-27T00:00:00+01:00'"))]
#[x_kube(validation = Rule::new("!has(self.timeZone) || has(self.schedule)")
    .message("spec.rollout.freezeWindows[].timeZone is for a schedule; start and end carry their own UTC offset"))]
#[x_kube(validation = Rule::new(end_after_start_rule())
    .message("spec.rollout.freezeWindows[].end must be after start"))]
pub struct FreezeWindow {
    /// Names the window in status, Events and the plugin, like `weekend`.
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')")
        .message("spec.rollout.freezeWindows[].name must be lowercase letters, digits and '-', like 'weekend'"))]
    #[schemars(length(max = 63))]
    pub name: String,
    /// When a recurring window opens, as cron reads it in `timeZone`: minute hour day-of-month
    /// month day-of-week, like `0 18 * * FRI` (Friday 18:00).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(schedule_rule())
        .message("spec.rollout.freezeWindows[].schedule must be five cron fields (minute hour day-of-month month day-of-week), like '0 18 * * FRI'"))]
    #[schemars(length(max = 128))]
    pub schedule: Option<String>,
    /// How long a recurring window lasts, on the wall clock of `timeZone`: Friday 18:00 for
    /// `63h` ends Monday 09:00 local time, even across a daylight-saving change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(format!("{DURATION_RULE} && !self.matches('^(0+(ns|us|ms|s|m|h))+$')"))
        .message("spec.rollout.freezeWindows[].duration must be a positive duration like 63h or 90m"))]
    #[schemars(length(max = 32))]
    pub duration: Option<String>,
    /// The IANA time zone `schedule` and `duration` are read in, like `Europe/Berlin`; UTC when
    /// unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(time_zone_rule())
        .message("spec.rollout.freezeWindows[].timeZone must be an IANA time zone name, like Europe/Berlin or America/New_York"))]
    #[schemars(length(max = 64))]
    pub time_zone: Option<String>,
    /// A one-off window's start, RFC 3339 with its offset: `2026-12-24T00:00:00+01:00`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(format!("self.matches('{RFC3339}')"))
        .message("spec.rollout.freezeWindows[].start must be an RFC 3339 time with its offset, like 2026-12-24T00:00:00+01:00"))]
    #[schemars(length(max = 40))]
    pub start: Option<String>,
    /// A one-off window's end, RFC 3339 with its offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(format!("self.matches('{RFC3339}')"))
        .message("spec.rollout.freezeWindows[].end must be an RFC 3339 time with its offset, like 2026-12-27T00:00:00+01:00"))]
    #[schemars(length(max = 40))]
    pub end: Option<String>,
}

/// RFC 3339 with an offset, as a CEL string (backslashes doubled).
const RFC3339: &str = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$";

/// `end > start`, compared only once both are well-formed (each has its own rule), so that a
/// malformed time is reported as that, not as an evaluation error.
fn end_after_start_rule() -> String {
    format!(
        "!has(self.start) || !has(self.end) || !self.start.matches('{RFC3339}') || !self.end.matches('{RFC3339}') || \
         timestamp(self.end) > timestamp(self.start)"
    )
}

fn schedule_rule() -> String {
    format!("self.matches('{}')", schedule_regex().replace('\\', "\\\\"))
}

/// One of the time zones the operator's own database knows (it carries the IANA database, so
/// what admission accepts is what the operator can read, whatever its image holds).
fn time_zone_rule() -> String {
    let names: Vec<String> = time_zone_names().map(|n| format!("'{n}'")).collect();
    format!("self in [{}]", names.join(","))
}

/// The time zones the operator knows, sorted.
pub fn time_zone_names() -> impl Iterator<Item = String> {
    let mut names: Vec<String> =
        jiff::tz::TimeZoneDatabase::bundled().available().map(|n| n.as_str().to_string()).collect();
    names.sort();
    names.dedup();
    names.into_iter()
}

/// The regular expression of one schedule: five fields of the grammar `core::freeze::cron`
/// reads (values, names, ranges, steps of 1 to 99, lists).
pub fn schedule_regex() -> String {
    let values = [
        "[0-5]?[0-9]".to_string(),
        "[01]?[0-9]|2[0-3]".to_string(),
        "0?[1-9]|[12][0-9]|3[01]".to_string(),
        format!("0?[1-9]|1[0-2]|{}", CRON_MONTHS.join("|")),
        format!("0?[0-7]|{}", CRON_WEEKDAYS.join("|")),
    ];
    let fields: Vec<String> = values
        .iter()
        .map(|v| {
            let item = format!("(?:\\*|(?:{v})(?:-(?:{v}))?)(?:/(?:0[1-9]|[1-9][0-9]?))?");
            format!("{item}(?:,{item})*")
        })
        .collect();
    format!("(?i)^\\s*{}\\s*$", fields.join("\\s+"))
}
