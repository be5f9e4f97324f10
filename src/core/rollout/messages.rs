//! Every sentence the rollout decision says to people: status messages, Event notes, and the
//! reasons a rollout remembers. One place, so that one word means one thing:
//! - a *pool configuration* is the env vars the operator owns, named by their hash;
//! - a *worker pool* is what a verdict proves (connections per worker and the pool settings);
//! - a *step* is one of `spec.rollout.steps`, labelled `step 2/3 (50%)`;
//! - the *stable* is the target Deployment, the *canary* `<target>-pool-canary`.
//!
//! Each message says what happens and, when a person must act, what to do.

use jiff::SignedDuration;

use crate::core::analysis::{GateResult, Verdict};
use crate::core::api::{FailedConfig, OverrideStatus, PendingApproval, PoolPlan};
use crate::core::durations::human;
use crate::core::freeze::Frozen;
use crate::core::sizing::Budget;

use super::HpaView;

// ---- starting -------------------------------------------------------------------------------

pub fn up_to_date(hash: &str) -> String {
    format!("the target runs pool configuration {hash}")
}

pub fn tier_replicas_applied(replicas: i32, generation: i64) -> String {
    format!("applied the tier's replicas: {replicas} (once for policy generation {generation})")
}

pub fn verdict_refused(why: &str) -> String {
    format!(
        "blocked: {why}; this worker pool starts once a newer verdict on it succeeds there, or change the pool here"
    )
}

pub fn over_budget(budget: &Budget) -> String {
    format!("blocked: {}", budget.explain())
}

/// How a starting rollout sizes its canary: `to 10 replicas`, or beside another writer's stable.
pub fn sized(beside: Option<&str>, total: i32, canary: i32, stable: i32) -> String {
    match beside {
        Some(by) => format!("{by} sizes the stable, so {canary} canary pod(s) run beside its {stable} replicas"),
        None => format!("to {total} replicas"),
    }
}

pub fn rollout_started(hash: &str, pool: &PoolPlan, sized: &str, steps: usize, weight: i32, met: &[String]) -> String {
    let msg = format!(
        "rolling out pool configuration {hash} (tier {}: {} workers x {} connections = {} per pod) {sized}: step 1/{steps} \
         at {weight}%",
        pool.tier, pool.workers, pool.connections_per_worker, pool.connections_per_pod
    );
    if met.is_empty() { msg } else { format!("{msg}; {}", met.join("; ")) }
}

pub fn promoting_without_replicas(hash: &str) -> String {
    format!("the target has no replicas: writing pool configuration {hash} directly")
}

pub fn rolling_out_again(writers: &str, fields: &[String], hash: &str) -> String {
    format!(
        "{writers} rewrote the pool env vars{} after the promotion; rolling pool configuration {hash} out again, once \
         for this generation (hand these fields to redis-pool-operator in your GitOps tool: see the README)",
        fields_label(fields)
    )
}

pub fn overridden(o: &OverrideStatus) -> String {
    format!(
        "{} took the pool env vars{} back after the promotion, again; the operator re-rolled once for this \
         generation and now waits: hand these fields to redis-pool-operator in your GitOps tool (see the README), \
         then annotate redispool.io/action=retry",
        o.by,
        fields_label(&o.fields)
    )
}

pub fn rolled_back(f: &FailedConfig) -> String {
    format!(
        "rolled back pool configuration {} ({}); change the spec or annotate redispool.io/action=retry to try again",
        f.hash, f.reason
    )
}

pub fn restoring_before_leftover(total: i32) -> String {
    format!("restoring the target to {total} replicas before removing a leftover canary")
}

pub fn waiting_before_leftover(available: i32, replicas: i32) -> String {
    format!("waiting for the target, {available}/{replicas} available, before removing a leftover canary")
}

// ---- a step -----------------------------------------------------------------------------------

/// `step 2/3 (50%)`.
pub fn step_label(step: usize, steps: usize, weight: i32) -> String {
    format!("step {}/{steps} ({weight}%)", step + 1)
}

pub fn scaling_stable(label: &str, replicas: i32) -> String {
    format!("{label}: scaling the stable to {replicas} replicas")
}

pub fn paused(label: &str) -> String {
    format!("{label}: paused by a person")
}

/// `approval step-2: person, webhook change-ticket`, for `kubectl get`.
pub fn awaiting_approval_short(p: &PendingApproval) -> String {
    format!("approval {}: {}", p.gate, p.waiting_for.join(", "))
}

/// Who the gate waits for, for people: how a person approves, what a webhook said.
fn awaiting(waiting: &[String], refused: Option<&String>) -> String {
    let who: Vec<String> = waiting
        .iter()
        .map(|w| match w.as_str() {
            "person" => "a person (kubectl redispool approve)".to_string(),
            webhook => webhook.to_string(),
        })
        .collect();
    let answer = refused.map(|r| format!("; last answer: {r}")).unwrap_or_default();
    format!("{}{answer}", who.join(" and "))
}

pub fn approval_requested(p: &PendingApproval) -> String {
    format!("{} of pool configuration {} waits for approval by {}", p.gate, p.hash, awaiting(&p.waiting_for, None))
}

pub fn approval_refused(p: &PendingApproval) -> String {
    format!("{} of pool configuration {}: {}", p.gate, p.hash, p.refused.as_deref().unwrap_or("refused"))
}

pub fn approved(gate: &str, hash: &str, who: &str) -> String {
    format!("{gate} of pool configuration {hash} approved by {who}")
}

pub fn nothing_to_approve() -> String {
    "approve ignored: nothing waits for a person's approval".into()
}

/// A rollout that has not started, waiting at its start gate.
pub fn start_awaits_approval(hash: &str, waiting: &[String], refused: Option<&String>) -> String {
    format!("the rollout of pool configuration {hash} waits for approval by {}", awaiting(waiting, refused))
}

/// A pre-rollout check said no.
pub fn start_refused(hash: &str, why: &str) -> String {
    format!(
        "blocked: the pre-rollout check refused pool configuration {hash}: {why}; it is asked again until it approves"
    )
}

/// A step that would advance, waiting at the next gate.
pub fn held_for_approval(label: &str, gate: &str, waiting: &[String], refused: Option<&String>) -> String {
    format!("{label}: soaked and passing; {gate} waits for approval by {}", awaiting(waiting, refused))
}

pub fn promote_awaits_webhook(who: &str) -> String {
    format!("promote refused: it would skip the approval of {who}, which has not come")
}

/// An undo within `rollbackWindow`.
pub fn fast_undo(hash: &str, succeeded_at: jiff::Timestamp, p: &PoolPlan) -> String {
    format!(
        "fast undo to pool configuration {hash} ({}: {} workers x {} connections), which succeeded here at {}: \
         promoting it now without steps or soaks (spec.rollout.rollbackWindow)",
        p.tier,
        p.workers,
        p.connections_per_worker,
        succeeded_at.strftime("%Y-%m-%d %H:%M UTC")
    )
}

/// What `kubectl get` shows of a freeze: `freeze weekend until Mon 7 Dec 09:00 CET`.
pub fn frozen_short(f: &Frozen) -> String {
    format!("freeze {} until {}", f.window, f.until_local)
}

/// Why nothing starts: the freeze window, and until when.
pub fn frozen(f: &Frozen) -> String {
    format!(
        "freeze window {} holds until {}: no rollout starts and no step advances or promotes until then (a rollback \
         still may)",
        f.window, f.until_local
    )
}

/// A step that would advance, held by a freeze window.
pub fn held_by_freeze(label: &str, f: &Frozen) -> String {
    format!("{label}: soaked and passing; held by freeze window {} until {}", f.window, f.until_local)
}

pub fn freeze_ended(window: &str) -> String {
    format!("freeze window {window} no longer holds the rollout")
}

pub fn promote_frozen(f: &Frozen) -> String {
    format!("promote refused: freeze window {} holds until {}; promote once it ends", f.window, f.until_local)
}

pub fn holding_for_verdicts(label: &str, waiting: &str) -> String {
    format!("{label}: soaked and passing; holding: {waiting}")
}

/// `last analysis Hold (p95LatencyMs)`, or that there is none yet.
pub fn last_analysis(verdict: Option<(Verdict, Option<&str>)>) -> String {
    match verdict {
        None => "no analysis yet".into(),
        Some((v, by)) => format!("last analysis {v:?}{}", by.map(|g| format!(" ({g})")).unwrap_or_default()),
    }
}

pub fn soaking(label: &str, available: i32, canary: i32, soaked: SignedDuration, pause: &str, last: &str) -> String {
    format!("{label}: {available}/{canary} canary pods available; soaked {} of {pause}; {last}", human(soaked))
}

pub fn step_started(label: &str, hash: &str, canary: i32, stable: i32, pause: &str) -> String {
    // The configuration named: two rollouts' first steps would otherwise be one Event (repeats
    // within minutes fold into a series).
    format!("{label} of pool configuration {hash}: {canary} canary / {stable} stable replicas, soaking for {pause}")
}

pub fn step_advanced(label: &str, hash: &str, canary: i32) -> String {
    format!("{label} of pool configuration {hash}: scaling the canary to {canary} replicas")
}

pub fn every_step_passed(hash: &str) -> String {
    format!("every step passed; promoting pool configuration {hash}")
}

pub fn waiting_for_canary_pods(label: &str, available: i32, wanted: i32) -> String {
    format!("{label}: waiting for canary pods, {available}/{wanted} available")
}

pub fn soak_pauses(label: &str, available: i32, wanted: i32, soaked: SignedDuration, pause: &str) -> String {
    format!(
        "{label}: canary {available}/{wanted} available; the soak pauses at {} of {pause} until they are back",
        human(soaked)
    )
}

pub fn soak_paused(
    label: &str,
    available: i32,
    wanted: i32,
    down: SignedDuration,
    soaked: SignedDuration,
    pause: &str,
) -> String {
    format!(
        "{label}: canary {available}/{wanted} available for {}; soak paused at {} of {pause}",
        human(down),
        human(soaked)
    )
}

pub fn soak_resumes(label: &str, away: SignedDuration, soaked: SignedDuration, pause: &str) -> String {
    format!("{label}: canary pods are back after {}; the soak resumes at {} of {pause}", human(away), human(soaked))
}

pub fn replicas_handed_over(by: &str, replicas: i32) -> String {
    format!(
        "{by} took over the target's replicas ({replicas}) during the rollout: from now on canary pods run beside the \
         stable and the operator no longer writes the target's replicas"
    )
}

pub fn analysis_inconclusive(label: &str, evidence: &str, soaked: SignedDuration, pause: &str) -> String {
    format!(
        "{label}: analysis inconclusive, the environment is at fault: {evidence}; the soak holds at {} of {pause} and \
         nothing counts against the configuration",
        human(soaked)
    )
}

pub fn environment_recovered(label: &str, away: SignedDuration, soaked: SignedDuration, pause: &str) -> String {
    format!(
        "{label}: the analyses judge the configuration again after {} of inconclusive results; the soak resumes at {} \
         of {pause}",
        human(away),
        human(soaked)
    )
}

pub fn holding_for_environment(label: &str, away: SignedDuration, evidence: &str) -> String {
    format!("{label}: holding while the environment is at fault ({} so far): {evidence}", human(away))
}

pub fn environment_degraded(label: &str, away: SignedDuration, deadline: &str, evidence: &str) -> String {
    format!(
        "{label}: the environment has been at fault for {}, longer than progressDeadline {deadline}; holding, never \
         promoting, and not blaming the configuration: {evidence}",
        human(away)
    )
}

pub const NOT_DEGRADED: &str = "the analyses judge the configuration: the environment is not at fault";

pub fn degraded(deadline: &str, evidence: &str) -> String {
    format!("the environment has been at fault for longer than progressDeadline {deadline}: {evidence}")
}

pub fn failed_at_once(label: &str, why: &str) -> String {
    format!("analysis at {label}: {why}; rolling back at once")
}

pub fn analysis_failed(gates: &[GateResult], after_promotion: bool, failures: i32, limit: i32) -> String {
    let when = if after_promotion { "after the promotion: " } else { "" };
    format!("{when}{} ({failures}/{limit})", failing_gates(gates))
}

// ---- why a rollout restarts or rolls back ------------------------------------------------------

pub fn unmanageable(why: &impl std::fmt::Display) -> String {
    format!("the target can no longer be managed: {why}")
}

pub fn spec_changed(hash: &str) -> String {
    format!("the spec changed to pool configuration {hash}; restarting the rollout")
}

pub fn spec_changed_before_promotion(hash: &str) -> String {
    format!("the spec changed to pool configuration {hash} before promotion; restarting the rollout")
}

pub fn target_replaced() -> String {
    "the target Deployment was replaced (a new object of the same name); restarting the rollout on it".into()
}

pub fn template_changed() -> String {
    "the target's pod template changed during the rollout; restarting it with the new template".into()
}

pub fn no_longer_fits(budget: &Budget) -> String {
    format!("the plan no longer fits: {}", budget.explain())
}

pub fn failed_in_a_row(label: &str, failures: i32, gates: &[GateResult]) -> String {
    format!("analysis failed {failures} times in a row at {label}: {}", failing_gates(gates))
}

pub fn verdict_no_longer_holds(why: &str) -> String {
    format!("a required verdict no longer holds: {why}")
}

pub fn no_passing_analysis(deadline: &str, label: &str, last: &str) -> String {
    format!("no passing analysis within progressDeadline {deadline} after the pause of {label}; {last}")
}

pub fn canary_never_available(label: &str, deadline: &str) -> String {
    format!("{label}: canary pods were not available within progressDeadline {deadline}")
}

pub fn canary_unavailable_too_long(label: &str, down: SignedDuration, deadline: &str) -> String {
    format!(
        "{label}: canary pods were unavailable for {} without a break, longer than progressDeadline {deadline}",
        human(down)
    )
}

/// Every failing gate with its numbers, e.g. `poolUtilization 95.0% is above ...; successRate ...`.
pub fn failing_gates(gates: &[GateResult]) -> String {
    let failing: Vec<String> = gates
        .iter()
        .filter(|g| g.verdict == Verdict::Fail && !g.dry_run)
        .map(|g| format!("{} {}", g.gate.name(), g.message))
        .collect();
    if failing.is_empty() { "no data (onNoData: Fail)".into() } else { failing.join("; ") }
}

// ---- the promotion -----------------------------------------------------------------------------

pub fn completing_promotion(hash: &str) -> String {
    format!("the target already carries pool configuration {hash}: completing the promotion that was under way")
}

pub fn writing_target(hash: &str, replicas: Option<i32>) -> String {
    let with = replicas.map(|r| format!(" with {r} replicas")).unwrap_or_default();
    format!("promoting: writing pool configuration {hash} into the target{with}")
}

pub fn waiting_for_target_rollout(available: i32, total: i32) -> String {
    format!("promoting: waiting for the target's rollout, {available}/{total} available")
}

pub fn promotion_stalled(hash: &str, deadline: &str, available: i32, total: i32) -> String {
    format!(
        "the target has not rolled out pool configuration {hash} within progressDeadline {deadline} \
         ({available}/{total} available); the canary keeps serving until it does: check the target's pods"
    )
}

pub fn promoted(hash: &str, total: i32) -> String {
    format!("promoted: the target runs pool configuration {hash} on {total} replicas")
}

pub fn taken_back_while_promoting(available: i32, replicas: i32) -> String {
    format!(
        "the pool env was taken back during the promotion: waiting for the target, {available}/{replicas} available, \
         before removing the canary"
    )
}

pub fn rewrote_during_promotion(writers: &str) -> String {
    format!("{writers} rewrote the pool env vars during the promotion")
}

// ---- rolling back ------------------------------------------------------------------------------

pub fn rolling_back(reason: &str) -> String {
    format!("rolling back: {reason}")
}

pub fn restoring_stable(total: i32, reason: &str) -> String {
    format!("rolling back: restoring the stable to {total} replicas ({reason})")
}

pub fn waiting_for_stable(available: i32, total: i32, reason: &str) -> String {
    format!("rolling back: waiting for the stable, {available}/{total} available ({reason})")
}

pub fn released(reason: &str) -> String {
    format!("released: {reason}")
}

// ---- after a promotion: the verdict's soak ------------------------------------------------------

pub fn watch_ended(soak: &str, within: SignedDuration) -> String {
    format!(
        "its analyses did not pass cleanly for {soak} within {} of the promotion (they held, had no data, or were not \
         running); it is not watched any longer",
        human(within)
    )
}

pub fn verdict_watch_ended(hash: &str, soaked: SignedDuration, soak: &str, why: &str) -> String {
    format!("pool configuration {hash} soaked {} of {soak}: {why}", human(soaked))
}

pub fn failed_after_promotion(failures: i32, since: SignedDuration, gates: &[GateResult]) -> String {
    format!("{failures} analyses in a row failed {} after the promotion: {}", human(since), failing_gates(gates))
}

pub fn verdict_failed(hash: &str, reason: &str) -> String {
    format!(
        "pool configuration {hash} failed after its promotion ({reason}); the operator does not roll back a promoted \
         configuration by itself: change the spec to roll out another one"
    )
}

pub fn verdict_soaking(hash: &str, soaked: SignedDuration, soak: &str, last: Verdict) -> String {
    format!(
        "the target runs pool configuration {hash}; its verdict has soaked {} of {soak}, last analysis {last:?}",
        human(soaked)
    )
}

pub fn verdict_soaked(hash: &str, soak: &str) -> String {
    format!("pool configuration {hash} soaked {soak} after its promotion; it is not watched any longer")
}

// ---- conditions -------------------------------------------------------------------------------

/// Ready's message while Progressing carries the status message.
pub const READY_WHILE_ROLLING_OUT: &str = "a rollout is in flight: see the Progressing condition";
/// Progressing's message at rest, when Ready carries the status message.
pub const NOTHING_IN_FLIGHT: &str = "no rollout in flight";

pub fn redis_answers(address: &str, max_clients: Option<i64>, note: Option<&str>) -> String {
    match max_clients {
        Some(m) => match note {
            Some(n) => format!("{address} answers; maxclients {m} ({n})"),
            None => format!("{address} answers; maxclients {m}"),
        },
        None => format!("{address} answers; maxclients unknown: {}", note.unwrap_or("set spec.redis.maxClients")),
    }
}

pub fn autoscaled(h: &HpaView) -> String {
    format!(
        "HorizontalPodAutoscaler {} ({}..{} replicas) owns the target's replicas: the operator never writes them; \
         canary pods run beside the stable and the budget counts maxReplicas {}",
        h.name, h.min_replicas, h.max_replicas, h.max_replicas
    )
}

pub fn replicas_set_by(by: &str) -> String {
    format!("{by} sets the target's replicas during this rollout: canary pods run beside the stable")
}

pub fn no_autoscaler() -> String {
    "no HorizontalPodAutoscaler targets the Deployment: a rollout moves replicas from the stable to the canary".into()
}

pub fn env_overridden(o: &OverrideStatus) -> String {
    format!("{} wrote the pool env vars {} after the operator promoted them", o.by, o.fields.join(", "))
}

pub fn env_rolling_out_again(o: &OverrideStatus) -> String {
    format!("{} wrote the pool env vars {} after the promotion; rolling out again", o.by, o.fields.join(", "))
}

pub fn env_owned() -> String {
    "the target carries the pool env vars the policy asks for".into()
}

// ---- people and other policies -----------------------------------------------------------------

pub fn action_ignored(why: &str) -> String {
    format!("action ignored: {why}")
}

pub fn action_refused(action: &str, phase: crate::core::api::Phase) -> String {
    format!("{action} ignored: the policy is {phase:?}")
}

pub fn suspended() -> String {
    "suspended: spec.suspend is true; nothing is changed until it is false".into()
}

pub fn canary_not_ours(canary: &str, owner: &str) -> String {
    format!(
        "Deployment {canary} exists but belongs to {owner}, not to this policy; it is never touched: rename or delete it"
    )
}

/// Who else writes a field: `HorizontalPodAutoscaler auth-api`.
pub fn hpa(name: &str) -> String {
    format!("HorizontalPodAutoscaler {name}")
}

/// `field manager argocd-controller`, or `another writer` when none is known.
pub fn field_managers(names: &[&str]) -> String {
    if names.is_empty() { "another writer".into() } else { format!("field manager {}", names.join(", ")) }
}

/// What advice covers when it is less than a minute: `3 analyses`.
pub fn analyses(n: i32) -> String {
    format!("{n} analyses")
}

/// ` (WORKERS, REDIS_POOL_MAX_CONNECTIONS)`, or nothing when no field is known.
fn fields_label(fields: &[String]) -> String {
    if fields.is_empty() { String::new() } else { format!(" ({})", fields.join(", ")) }
}
