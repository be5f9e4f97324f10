//! Status conditions, derived from the phase and the last analysis.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::Input;
use crate::analysis::Verdict;
use crate::api::{Phase, RedisPoolPolicyStatus};

/// Sets Ready, Progressing, Healthy and BudgetOk. A condition's lastTransitionTime moves only when
/// its status flips, so a steady state produces an identical status (and no write).
pub(super) fn set_conditions(status: &mut RedisPoolPolicyStatus, input: &Input) {
    let phase = status.phase;
    let message = status.message.clone().unwrap_or_default();
    let phase_reason = format!("{phase:?}");
    let ready = matches!(phase, Phase::Idle | Phase::Succeeded);
    let mut set = |type_: &str, ok: Option<bool>, reason: &str, message: &str| {
        let state = match ok {
            Some(true) => "True",
            Some(false) => "False",
            None => "Unknown",
        };
        upsert(status, input, type_, state, reason, message);
    };
    set("Ready", Some(ready), &phase_reason, &message);
    set("Progressing", Some(phase.is_active()), &phase_reason, &message);
    let budget = &input.desired.plan.budget;
    set("BudgetOk", Some(budget.ok), if budget.ok { "WithinBudget" } else { "BudgetExceeded" }, &budget.explain());
    let healthy = status.analysis.as_ref().map(|a| {
        let ok = match a.verdict {
            Verdict::Pass => Some(true),
            Verdict::Fail => Some(false),
            Verdict::Hold | Verdict::NoData => None,
        };
        let why = a.decided_by.as_deref().map_or_else(
            || "all gates pass".to_string(),
            |g| {
                let detail = a.gates.iter().find(|x| x.gate.name() == g).map(|x| x.message.as_str()).unwrap_or("");
                format!("{g}: {detail}")
            },
        );
        (ok, format!("{:?}", a.verdict), why)
    });
    if let Some((ok, reason, why)) = healthy {
        upsert(
            status,
            input,
            "Healthy",
            match ok {
                Some(true) => "True",
                Some(false) => "False",
                None => "Unknown",
            },
            &reason,
            &why,
        );
    }
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
