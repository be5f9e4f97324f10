//! The people-in-the-loop part of the status report: the freeze windows, the approval gate
//! that waits, the approvals given, and the notices with how their delivery went.

use jiff::Timestamp;
use serde::Serialize;

use crate::core::api::{RedisPoolPolicy, RedisPoolPolicyStatus};

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FrozenView {
    pub window: String,
    pub until: Timestamp,
    /// How long it has held the rollout.
    pub held_seconds: i64,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PendingView {
    pub gate: String,
    /// `person`, `webhook change-ticket`.
    pub waiting_for: Vec<String>,
    pub waiting_seconds: i64,
    /// A webhook's last answer that was not 2xx.
    pub refused: Option<String>,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NotificationView {
    pub id: i64,
    pub trigger: crate::core::api::Trigger,
    pub destination: String,
    /// `Pending`, `Delivered` or `Failed`.
    pub state: String,
    pub attempts: i32,
    pub age_seconds: i64,
    pub reason: Option<String>,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalView {
    pub gate: String,
    pub who: String,
    pub age_seconds: i64,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WindowView {
    pub name: String,
    /// `0 18 * * FRI for 63h (Europe/Berlin)`, or the one-off's start and end.
    pub when: String,
    /// `holds until Mon 7 Dec 09:00 CET`, `opens Fri 11 Dec 18:00 CET`, or `over`.
    pub state: String,
}

/// The freeze window holding the rollout, and for how long it has.
pub(super) fn frozen_view(st: &RedisPoolPolicyStatus, secs_since: &impl Fn(Timestamp) -> i64) -> Option<FrozenView> {
    st.freeze.as_ref().map(|f| FrozenView {
        window: f.window.clone(),
        until: f.until.0,
        held_seconds: secs_since(f.since.0),
    })
}

/// The gate the rollout waits at, for whom and since when.
pub(super) fn pending_view(st: &RedisPoolPolicyStatus, secs_since: &impl Fn(Timestamp) -> i64) -> Option<PendingView> {
    st.pending_approval.as_ref().map(|p| PendingView {
        gate: p.gate.clone(),
        waiting_for: p.waiting_for.clone(),
        waiting_seconds: secs_since(p.since.0),
        refused: p.refused.clone(),
    })
}

/// The approvals given for the rollout in flight.
pub(super) fn approval_views(st: &RedisPoolPolicyStatus, secs_since: &impl Fn(Timestamp) -> i64) -> Vec<ApprovalView> {
    st.approvals
        .iter()
        .map(|a| ApprovalView { gate: a.gate.clone(), who: a.who.clone(), age_seconds: secs_since(a.at.0) })
        .collect()
}

/// What waits to be told, then how the last deliveries went.
pub(super) fn notification_views(
    st: &RedisPoolPolicyStatus,
    secs_since: &impl Fn(Timestamp) -> i64,
) -> Vec<NotificationView> {
    let Some(n) = &st.notifications else { return Vec::new() };
    let pending = n.outbox.iter().rev().flat_map(|notice| {
        notice.pending.iter().map(|d| NotificationView {
            id: notice.id,
            trigger: notice.trigger,
            destination: d.clone(),
            state: "Pending".into(),
            attempts: 0,
            age_seconds: secs_since(notice.at.0),
            reason: None,
        })
    });
    let done = n.recent.iter().map(|d| NotificationView {
        id: d.id,
        trigger: d.trigger,
        destination: d.destination.clone(),
        state: format!("{:?}", d.state),
        attempts: d.attempts,
        age_seconds: secs_since(d.at.0),
        reason: d.reason.clone(),
    });
    pending.chain(done).collect()
}

/// The policy's freeze windows as the operator reads them: which holds now, when each opens.
pub(super) fn window_views(p: &RedisPoolPolicy, now: Timestamp) -> Vec<WindowView> {
    p.spec
        .rollout
        .freeze_windows
        .iter()
        .map(|w| {
            let when = match (&w.schedule, &w.duration, &w.start, &w.end) {
                (Some(cron), Some(lasts), _, _) => {
                    format!("{cron} for {lasts} ({})", w.time_zone.as_deref().unwrap_or("UTC"))
                }
                (_, _, Some(start), Some(end)) => format!("{start} to {end}"),
                _ => String::new(),
            };
            let state = match crate::core::freeze::Window::read(w, "window", w.name.clone()) {
                Err(e) => format!("unreadable: {}", e.message),
                Ok(read) => match (read.holds_at(now), read.next_open(now)) {
                    (Some((_, until)), _) => format!("holds until {}", read.local(until)),
                    (None, Some(opens)) => format!("opens {}", read.local(opens)),
                    (None, None) => "over".into(),
                },
            };
            WindowView { name: w.name.clone(), when, state }
        })
        .collect()
}
