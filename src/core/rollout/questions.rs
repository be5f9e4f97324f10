//! What the shell asks the core besides `decide`: what to read before deciding, whether a
//! decision must be made again on fresh objects, what to keep, and when to look again. Pure, so
//! that the tests reach every choice the operator makes.

use std::time::Duration;

use super::{Action, Decision, Observed, StatusWrite, TargetView, watched_verdict};
use crate::core::api::{Phase, RedisPoolPolicySpec, RedisPoolPolicyStatus};
use crate::core::durations::durations;

/// Whether the shell must ask the Redis server for this decision: for the budget before a
/// rollout starts, and for its rejected connections during one (never for a target that cannot
/// be managed, nor at rest).
pub fn needs_redis(
    spec: &RedisPoolPolicySpec,
    status: &RedisPoolPolicyStatus,
    target: Option<&TargetView>,
    desired_hash: &str,
) -> bool {
    spec.redis.is_some() && target.is_some_and(|t| t.config_hash != desired_hash || status.phase.is_active())
}

/// Whether the shell must read `spec.promotion.requires` for this decision: a rollout may start
/// (the target does not run the desired configuration) or is in flight.
pub fn needs_verdicts(
    spec: &RedisPoolPolicySpec,
    status: &RedisPoolPolicyStatus,
    target_hash: Option<&str>,
    desired_hash: &str,
) -> bool {
    !spec.promotion.requires.is_empty() && (status.phase.is_active() || target_hash != Some(desired_hash))
}

/// The approval webhooks to ask in this look: those the pending gate still waits for, with the
/// gate and the configuration to ask about.
pub fn webhooks_to_ask<'s>(
    spec: &'s RedisPoolPolicySpec,
    status: &RedisPoolPolicyStatus,
) -> Vec<(String, String, &'s crate::core::api::ApprovalWebhook)> {
    let Some(p) = &status.pending_approval else { return Vec::new() };
    spec.rollout
        .approvals
        .iter()
        .filter(|a| a.before == p.gate)
        .filter_map(|a| a.webhook.as_ref())
        .filter(|w| p.waiting_for.iter().any(|who| *who == format!("webhook {}", w.url_secret_ref.name)))
        .map(|w| (p.gate.clone(), p.hash.clone(), w))
        .collect()
}

/// Whether `decision` must be made again on objects read fresh before it is carried out: it
/// acts, consumes an action, lets a deleted policy go (the finalizer's removal rides on the
/// status), or writes a status that decisions depend on. Tallies alone are written over the
/// cached version, conditionally on its resourceVersion, so a stale cache makes that write
/// fail, not lie.
pub fn needs_fresh(decision: &Decision, write: StatusWrite) -> bool {
    decision.released || !decision.actions.is_empty() || decision.action_consumed || write == StatusWrite::Now
}

/// Whether the policy must carry its finalizer through `decision`: deleting it must first give
/// its target back what a rollout took. That is while a rollout is in flight (the stable may be
/// lowered, a promotion may be writing the target), while a canary of its own exists, and
/// before any decision that writes the target or the canary. At rest it carries none, so that
/// deleting an idle policy, the CRD or the operator itself never waits on an operator that is
/// gone; the shell adds it before the first such write.
pub fn holds_target(decision: &Decision, observed: &Observed) -> bool {
    decision.status.phase.is_active()
        || observed.canary.as_ref().is_some_and(|c| c.foreign_owner.is_none())
        || decision.actions.iter().any(|a| !matches!(a, Action::Event { .. }))
}

/// Whether the counters of the last analysis are kept as the next one's baseline: while a
/// rollout is in flight, or analyses soak a promoted configuration's verdict.
pub fn keeps_baseline(spec: &RedisPoolPolicySpec, status: &RedisPoolPolicyStatus) -> bool {
    status.phase.is_active() || watched_verdict(spec, status).is_some()
}

/// When to decide again though nothing changed: at the analysis interval (at most 30 s) while
/// something is measured or awaited, every 30 s while another policy or the budget stands in
/// the way (nothing else wakes this one), else every 5 minutes.
pub fn next_look(spec: &RedisPoolPolicySpec, status: &RedisPoolPolicyStatus) -> Duration {
    let interval = durations(spec).interval.unsigned_abs().max(Duration::from_secs(1));
    let after = match status.phase {
        p if p.is_active() => interval.min(Duration::from_secs(30)),
        // A verdict comes in elsewhere: looked for at the analysis interval.
        Phase::Waiting => interval.min(Duration::from_secs(30)),
        Phase::Blocked | Phase::Conflict => Duration::from_secs(30),
        _ => Duration::from_secs(300),
    };
    // A promotion being watched is analysed at the interval, whatever the phase.
    let after = match watched_verdict(spec, status) {
        Some(_) => after.min(interval),
        None => after,
    };
    // An approval webhook is asked again every few seconds while its gate waits.
    match webhooks_to_ask(spec, status).is_empty() {
        true => after,
        false => after.min(Duration::from_secs(5)),
    }
}
