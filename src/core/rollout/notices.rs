//! The outbox: which transitions of a decision people are told about and whom, recorded in
//! status with the transition itself (one write), so that an operator restart or a new leader
//! delivers what was not delivered yet and knows what was. The shell delivers and reports back
//! ([`DeliveryResult`]); the next decision takes delivered notices out.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{Action, Reason};
use crate::core::api::{Delivery, DeliveryState, Notice, Phase, RedisPoolPolicyStatus, Subscription, Trigger};

/// Notices kept undelivered at most: a destination down for long loses the oldest, said so.
pub const OUTBOX_LIMIT: usize = 32;
/// Deliveries kept for people.
pub const RECENT_LIMIT: usize = 10;

/// How delivering one notice to one destination ended (the shell's retries included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryResult {
    pub id: i64,
    pub destination: String,
    pub attempts: i32,
    /// Delivered, or why not (never a URL).
    pub result: Result<(), String>,
}

/// The transition an Event of the decision is, for people outside the cluster.
fn trigger_of(reason: Reason, after: &RedisPoolPolicyStatus) -> Option<Trigger> {
    use Reason as R;
    Some(match reason {
        R::RolloutStarted | R::RolloutRestarted => Trigger::RolloutStarted,
        R::StepAdvanced => Trigger::StepAdvanced,
        R::Paused => Trigger::Paused,
        R::Resumed => Trigger::Resumed,
        // The first failure of a spell, not every one.
        R::AnalysisFailed if after.analysis.as_ref().is_some_and(|a| a.consecutive_failures <= 1) => {
            Trigger::AnalysisFailed
        }
        R::AnalysisInconclusive => Trigger::Inconclusive,
        R::RolledBack => Trigger::RolledBack,
        R::Promoted => Trigger::Succeeded,
        R::BudgetExceeded | R::VerdictRefused => Trigger::Blocked,
        R::ApprovalRefused if after.phase == Phase::Blocked => Trigger::Blocked,
        R::WaitingForVerdict | R::VerdictUnreadable => Trigger::Waiting,
        R::EnvironmentDegraded | R::PromotionStalled => Trigger::Degraded,
        R::VerdictSoaked => Trigger::VerdictSoaked,
        R::VerdictFailed => Trigger::VerdictFailed,
        R::FreezeHolds => Trigger::FreezeEntered,
        R::FreezeEnded => Trigger::FreezeLeft,
        R::ApprovalRequested => Trigger::ApprovalRequested,
        _ => return None,
    })
}

/// The alerts a policy in `status` fires (for Alertmanager): while it is rolled back, blocked,
/// degraded, or waits for an approval.
pub fn alerts_for(status: &RedisPoolPolicyStatus) -> Vec<String> {
    let degraded = status.phase == Phase::Degraded
        || status.conditions.iter().any(|c| c.type_ == "EnvironmentDegraded" && c.status == "True");
    [
        (status.phase == Phase::RolledBack, "RedisPoolRolledBack"),
        (status.phase == Phase::Blocked, "RedisPoolBlocked"),
        (degraded, "RedisPoolDegraded"),
        (status.pending_approval.is_some(), "RedisPoolApprovalRequested"),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, name)| name.to_string())
    .collect()
}

/// Destinations, as status names them: the policy's as written, the operator's `cluster/NAME`.
pub fn destinations<'s>(
    own: &'s [Subscription],
    cluster: &'s [Subscription],
) -> impl Iterator<Item = (String, &'s Subscription)> {
    own.iter().map(|s| (s.name.clone(), s)).chain(cluster.iter().map(|s| (format!("cluster/{}", s.name), s)))
}

/// Records the decision's transitions (its Events that are triggers) in the outbox of `after`,
/// each with the destinations that want it; Alertmanager destinations also get every change of
/// the policy's alerts (an `AlertsChanged` notice when no transition carried it).
pub fn record(
    after: &mut RedisPoolPolicyStatus,
    actions: &[Action],
    subscriptions: &[(String, &Subscription)],
    now: Timestamp,
) {
    if subscriptions.is_empty() && after.notifications.as_ref().is_none_or(|n| n.outbox.is_empty()) {
        return;
    }
    let firing = alerts_for(after);
    let gates = gate_lines(after);
    let mut notes = after.notifications.take().unwrap_or_default();
    // Alertmanager destinations hear every change of the alerts, whatever their `on`.
    let alerting: Vec<String> =
        subscriptions.iter().filter(|(_, s)| s.alertmanager.is_some()).map(|(name, _)| name.clone()).collect();
    let mut events: Vec<(Trigger, String)> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Event { reason, message } => trigger_of(*reason, after).map(|t| (t, message.clone())),
            _ => None,
        })
        .collect();
    if events.is_empty() && firing != notes.alerts && !alerting.is_empty() {
        let message = format!("alerts firing: {}", if firing.is_empty() { "none".into() } else { firing.join(", ") });
        events.push((Trigger::AlertsChanged, message));
    }
    for (trigger, message) in events {
        let changed = firing != notes.alerts;
        let mut pending: Vec<String> = subscriptions
            .iter()
            .filter(|(_, s)| trigger != Trigger::AlertsChanged && (s.on.is_empty() || s.on.contains(&trigger)))
            .map(|(name, _)| name.clone())
            .collect();
        for a in alerting.iter().filter(|_| changed) {
            if !pending.contains(a) {
                pending.push(a.clone());
            }
        }
        if pending.is_empty() {
            continue;
        }
        let resolved = notes.alerts.iter().filter(|a| !firing.contains(a)).cloned().collect();
        notes.alerts = firing.clone();
        notes.sequence += 1;
        notes.outbox.push(Notice {
            id: notes.sequence,
            trigger,
            at: Time(now),
            phase: after.phase,
            progress: after.progress.clone(),
            message,
            canary: after.canary.as_ref().map(|c| c.hash.clone()),
            stable: after.stable.as_ref().map(|c| c.hash.clone()),
            gates: gates.clone(),
            firing: firing.clone(),
            resolved,
            pending,
        });
    }
    drop_overflow(&mut notes, now);
    after.notifications = Some(notes);
}

/// The gates of the latest analysis, a line each: `poolUtilization 95.00 Fail`.
fn gate_lines(status: &RedisPoolPolicyStatus) -> Vec<String> {
    let Some(a) = &status.analysis else { return Vec::new() };
    a.gates
        .iter()
        .map(|g| {
            let value = g.value.map_or("no data".into(), |v| format!("{v:.2}"));
            format!("{} {value} {:?}", g.gate.name(), g.verdict)
        })
        .collect()
}

/// A destination down for long: the oldest notices go, and people are told which.
fn drop_overflow(notes: &mut crate::core::api::NotificationStatus, now: Timestamp) {
    while notes.outbox.len() > OUTBOX_LIMIT {
        let dropped = notes.outbox.remove(0);
        for destination in dropped.pending.clone() {
            let reason = Some(format!("dropped: more than {OUTBOX_LIMIT} notices were waiting"));
            notes.recent.insert(0, delivery(&dropped, destination, DeliveryState::Failed, 0, reason, now));
        }
    }
    notes.recent.truncate(RECENT_LIMIT);
}

fn delivery(
    n: &Notice,
    destination: String,
    state: DeliveryState,
    attempts: i32,
    reason: Option<String>,
    now: Timestamp,
) -> Delivery {
    Delivery { id: n.id, trigger: n.trigger, destination, state, attempts, at: Time(now), reason }
}

/// Takes delivered (or given up) notices out of the outbox; returns what people should hear of
/// the failures (Warning Events naming the destination, never its URL).
pub fn apply_deliveries(
    status: &mut RedisPoolPolicyStatus,
    results: &[DeliveryResult],
    now: Timestamp,
) -> Vec<(Reason, String)> {
    let mut said = Vec::new();
    let Some(notes) = status.notifications.as_mut() else { return said };
    for r in results {
        let Some(n) = notes.outbox.iter_mut().find(|n| n.id == r.id) else { continue };
        let Some(at) = n.pending.iter().position(|d| *d == r.destination) else { continue };
        n.pending.remove(at);
        let (state, reason) = match &r.result {
            Ok(()) => (DeliveryState::Delivered, None),
            Err(why) => {
                let msg = format!(
                    "notification {} ({:?}) to {} failed after {} attempts: {why}",
                    n.id, n.trigger, r.destination, r.attempts
                );
                said.push((Reason::NotificationFailed, msg));
                (DeliveryState::Failed, Some(why.clone()))
            }
        };
        let d = delivery(n, r.destination.clone(), state, r.attempts, reason, now);
        notes.recent.insert(0, d);
    }
    notes.outbox.retain(|n| !n.pending.is_empty());
    notes.recent.truncate(RECENT_LIMIT);
    said
}

/// The `NotificationsDelivered` condition: False while the last delivery to some destination
/// failed, naming it.
pub fn delivery_condition(status: &RedisPoolPolicyStatus) -> Option<(&'static str, &'static str, String)> {
    let notes = status.notifications.as_ref()?;
    let mut latest: Vec<&Delivery> = Vec::new();
    for d in &notes.recent {
        if !latest.iter().any(|l| l.destination == d.destination) {
            latest.push(d);
        }
    }
    let failed: Vec<String> = latest
        .iter()
        .filter(|d| d.state == DeliveryState::Failed)
        .map(|d| format!("{}: {}", d.destination, d.reason.as_deref().unwrap_or("failed")))
        .collect();
    Some(match failed.is_empty() {
        true if latest.is_empty() => return None,
        true => ("True", "Delivered", "the last notification to each destination was delivered".into()),
        false => ("False", "DeliveryFailed", failed.join("; ")),
    })
}
