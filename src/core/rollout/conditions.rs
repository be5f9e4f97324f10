//! Status conditions, derived from the phase, the last analysis and what was observed.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::{Input, messages};
use crate::core::analysis::Verdict;
use crate::core::api::{Phase, RedisPoolPolicyStatus, ScalingMode};
use crate::core::sizing::Budget;

/// Sets Ready, Progressing, Healthy, BudgetOk, RedisReachable, EnvironmentDegraded (once it
/// happened), Autoscaled and EnvOwned. A
/// condition's lastTransitionTime moves only when its status flips, and messages carry only
/// stable facts, so a steady state produces an identical status (and no write).
pub(super) fn set_conditions(status: &mut RedisPoolPolicyStatus, input: &Input, budget: &Budget) {
    let phase = status.phase;
    let message = status.message.clone().unwrap_or_default();
    let phase_reason = format!("{phase:?}");
    let ready = matches!(phase, Phase::Idle | Phase::Succeeded);
    let mut set = |type_: &str, ok: Option<bool>, reason: &str, message: &str| {
        upsert(status, input, type_, state(ok), reason, message)
    };
    // The message once: Progressing carries it while a rollout is in flight, Ready otherwise
    // (why the policy rests, or why it is not ready).
    let (ready_says, progressing_says) = match phase.is_active() {
        true => (messages::READY_WHILE_ROLLING_OUT, message.as_str()),
        false => (message.as_str(), messages::NOTHING_IN_FLIGHT),
    };
    set("Ready", Some(ready), &phase_reason, ready_says);
    set("Progressing", Some(phase.is_active()), &phase_reason, progressing_says);
    set("BudgetOk", Some(budget.ok), if budget.ok { "WithinBudget" } else { "BudgetExceeded" }, &budget.explain());
    redis_reachable(status, input);
    degraded(status, input);
    autoscaled(status, input);
    env_owned(status, input);
    let healthy = status.analysis.as_ref().map(|a| {
        let ok = match a.verdict {
            Verdict::Pass => Some(true),
            Verdict::Fail => Some(false),
            Verdict::Hold | Verdict::NoData | Verdict::Inconclusive => None,
        };
        let why = a.environment.clone().map(|e| format!("the environment is at fault: {e}"));
        let why = why.unwrap_or_else(|| {
            a.decided_by.as_deref().map_or_else(
                || "all gates pass".to_string(),
                |g| {
                    let detail = a.gates.iter().find(|x| x.gate.name() == g).map(|x| x.message.as_str()).unwrap_or("");
                    format!("{g}: {detail}")
                },
            )
        });
        (ok, format!("{:?}", a.verdict), why)
    });
    if let Some((ok, reason, why)) = healthy {
        upsert(status, input, "Healthy", state(ok), &reason, &why);
    }
}

/// A condition's status for a yes, a no, or "cannot tell".
fn state(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "True",
        Some(false) => "False",
        None => "Unknown",
    }
}

/// The condition that says the environment has been at fault for longer than progressDeadline
/// (not the phase `Degraded`, which is a promotion the target has not rolled out).
pub const ENVIRONMENT_DEGRADED: &str = "EnvironmentDegraded";

/// EnvironmentDegraded: the environment has been at fault (analyses Inconclusive) for longer than
/// `progressDeadline`. Set once it is first true, then kept, False, when it recovers.
fn degraded(status: &mut RedisPoolPolicyStatus, input: &Input) {
    let since = status.soak.as_ref().and_then(|s| s.environment_since.as_ref()).map(|t| t.0);
    let deadline = crate::core::durations::durations(input.spec).progress_deadline;
    let away = since.map(|t| input.now.duration_since(t.max(input.awake_since)));
    match away {
        Some(d) if d > deadline => {
            let evidence = status.analysis.as_ref().and_then(|a| a.environment.clone()).unwrap_or_default();
            let msg = messages::degraded(&input.spec.rollout.analysis.progress_deadline, &evidence);
            upsert(status, input, ENVIRONMENT_DEGRADED, "True", "EnvironmentAtFault", &msg)
        }
        _ if status.conditions.iter().any(|c| c.type_ == ENVIRONMENT_DEGRADED) => {
            upsert(status, input, ENVIRONMENT_DEGRADED, "False", "EnvironmentHealthy", messages::NOT_DEGRADED)
        }
        _ => {}
    }
}

/// Whether condition `type_` is True in `status`.
pub fn is_true(status: &RedisPoolPolicyStatus, type_: &str) -> bool {
    status.conditions.iter().any(|c| c.type_ == type_ && c.status == "True")
}

fn redis_reachable(status: &mut RedisPoolPolicyStatus, input: &Input) {
    let address = input.spec.redis.as_ref().map_or("", |r| r.address.as_str());
    match &input.observed.redis {
        Some(Err(e)) => upsert(status, input, "RedisReachable", "False", "RedisUnreachable", &e.to_string()),
        Some(Ok(s)) => {
            let msg = messages::redis_answers(address, s.max_clients, s.max_clients_note.as_deref());
            upsert(status, input, "RedisReachable", "True", "Reachable", &msg)
        }
        None => {}
    }
}

/// Who sizes the target: the operator (split rollouts) or another actor (canary pods beside).
fn autoscaled(status: &mut RedisPoolPolicyStatus, input: &Input) {
    let Ok(target) = &input.observed.target else { return };
    let handed_over = status
        .scaling
        .as_ref()
        .filter(|s| s.mode == ScalingMode::Beside && target.hpa.is_none())
        .and_then(|s| s.by.clone());
    let (state, reason, msg) = match (&target.hpa, handed_over) {
        (Some(h), _) => ("True", "HorizontalPodAutoscaler", messages::autoscaled(h)),
        (None, Some(by)) => ("True", "ReplicasHandedOver", messages::replicas_set_by(&by)),
        (None, None) => ("False", "NoAutoscaler", messages::no_autoscaler()),
    };
    upsert(status, input, "Autoscaled", state, reason, &msg);
}

/// Whether the pool env vars the operator promoted are still the target's.
fn env_owned(status: &mut RedisPoolPolicyStatus, input: &Input) {
    let Some(o) = status.overridden.clone() else { return };
    let (state, reason, msg) = if status.phase == Phase::Overridden {
        ("False", "Overridden", messages::env_overridden(&o))
    } else if status.phase.is_active() && o.generation == input.generation {
        ("Unknown", "RollingOutAgain", messages::env_rolling_out_again(&o))
    } else {
        ("True", "Owned", messages::env_owned())
    };
    upsert(status, input, "EnvOwned", state, reason, &msg);
}

fn upsert(status: &mut RedisPoolPolicyStatus, input: &Input, type_: &str, state: &str, reason: &str, message: &str) {
    set_condition(status, type_, state, reason, message, input.now, input.generation);
}

/// Sets one condition; its lastTransitionTime moves only when its status flips.
pub fn set_condition(
    status: &mut RedisPoolPolicyStatus,
    type_: &str,
    state: &str,
    reason: &str,
    message: &str,
    now: jiff::Timestamp,
    generation: i64,
) {
    let generation = Some(generation);
    match status.conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != state {
                c.last_transition_time = Time(now);
                c.status = state.into();
            }
            c.reason = reason.into();
            c.message = message.into();
            c.observed_generation = generation;
        }
        None => status.conditions.push(Condition {
            type_: type_.into(),
            status: state.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: Time(now),
            observed_generation: generation,
        }),
    }
}
