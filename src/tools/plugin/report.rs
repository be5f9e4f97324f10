//! What `kubectl redispool` shows, computed from what it read. Pure: a snapshot of the policy,
//! its two Deployments and its Events in; a report out, which the renderer prints for people
//! and `-o json|yaml` prints for scripts.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Event;
use serde::Serialize;

use crate::core::analysis::{for_tier, thresholds};
use crate::core::api::{Gate, Phase, PoolPlan, RedisPoolPolicy, RedisPoolPolicyStatus, Verdict, canary_name};
use crate::core::deployments::target_env;
use crate::core::durations::{human, step_pause};
use crate::core::render::observed_connections_per_pod;
use crate::core::rollout::watched_verdict;

mod people;
pub use people::*;

/// Everything one screen is made of, as read at `now`.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub policy: RedisPoolPolicy,
    pub target: Option<Deployment>,
    pub canary: Option<Deployment>,
    /// Events about the policy, in any order.
    pub events: Vec<Event>,
    pub now: Timestamp,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StatusReport {
    pub namespace: String,
    pub name: String,
    pub environment: Option<String>,
    pub phase: Phase,
    /// `2/3`: the step, 1-based, of the step count.
    pub progress: Option<String>,
    /// The step, 1-based.
    pub step: Option<usize>,
    pub weight: Option<i32>,
    pub message: Option<String>,
    /// The rollout is over for the spec the operator last saw (see [`settled`]).
    pub settled: Option<Settled>,
    pub plan: Option<PlanView>,
    /// Pool size advice from what the analyses saw (the operator never applies it).
    pub advice: Option<String>,
    /// What a Waiting policy waits for, short.
    pub waiting_for: Option<String>,
    /// The freeze window holding the rollout now (the policy's or the operator's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frozen: Option<FrozenView>,
    /// The policy's own freeze windows, and when each holds or opens next.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub freeze_windows: Vec<WindowView>,
    /// The approval gate the rollout waits at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_approval: Option<PendingView>,
    /// Approvals given for the rollout in flight.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<ApprovalView>,
    /// Notices waiting to be told, then the last deliveries, newest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<NotificationView>,
    /// How the last rollouts ended, newest first.
    pub verdicts: Vec<VerdictView>,
    pub steps: Vec<StepView>,
    pub analysis: Option<AnalysisView>,
    pub deployments: Vec<DeploymentView>,
    pub conditions: Vec<ConditionView>,
    pub history: Vec<HistoryView>,
    /// Oldest first.
    pub events: Vec<EventView>,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlanView {
    #[serde(flatten)]
    pub pool: PoolPlan,
    /// The operator's budget verdict (the `BudgetOk` condition).
    pub budget: Option<String>,
    pub budget_ok: Option<bool>,
}

#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepState {
    Done,
    /// The canary pods of this step are up and its soak clock runs.
    Soaking,
    /// The soak clock stopped: fewer canary pods are available than the step asks for.
    WaitingForCanary,
    Paused,
    Pending,
    /// The rollout ended before this step.
    NotReached,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StepView {
    pub number: usize,
    pub weight: i32,
    pub pause_seconds: i64,
    pub state: StepState,
    /// Soak so far, for the current step.
    pub soaked_seconds: Option<i64>,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VerdictView {
    pub pool_hash: String,
    pub connections_per_worker: i32,
    pub environment: String,
    pub result: crate::core::api::VerdictResult,
    pub soaked_seconds: i64,
    /// `spec.promotion.soak`, while this verdict is still watched.
    pub soak: Option<String>,
    pub age_seconds: i64,
    pub reason: Option<String>,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisView {
    pub age_seconds: i64,
    /// 1-based, like `progress`.
    pub step: i32,
    /// It watched the target after a promotion, not a step's canary.
    pub after_promotion: bool,
    pub verdict: Verdict,
    pub decided_by: Option<String>,
    pub consecutive_failures: i32,
    /// Why it was Inconclusive: what the environment did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    pub gates: Vec<GateView>,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GateView {
    pub gate: Gate,
    pub value: Option<f64>,
    /// The stable's value over the same interval.
    pub stable: Option<f64>,
    pub unit: &'static str,
    pub promote: String,
    pub rollback: String,
    /// The bound relative to the stable, when the gate has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relative: Option<String>,
    pub verdict: Verdict,
    pub message: String,
    /// Shown, never counted.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentView {
    /// `stable` (the target) or `canary`.
    pub role: &'static str,
    pub name: String,
    pub exists: bool,
    pub replicas: i32,
    pub ready: i32,
    pub updated: i32,
    /// `4 x 40`, from the container's env.
    pub pool: Option<String>,
    pub connections_per_pod: Option<i64>,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConditionView {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: String,
    pub message: String,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HistoryView {
    pub hash: String,
    pub outcome: String,
    pub reason: String,
    pub age_seconds: i64,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub age_seconds: i64,
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    pub message: String,
    pub count: i32,
}

/// How a rollout ended, for `--until-done`.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Settled {
    /// Succeeded, or nothing to do (Idle).
    Succeeded,
    /// RolledBack, Blocked, Invalid, Conflict or Overridden: a person has to look.
    Failed,
}

/// Whether the rollout is over for the spec the operator last saw. A status older than the spec
/// (the operator has not seen the latest change yet) is never settled, so a watch started right
/// after `kubectl apply` does not end on the previous rollout's outcome.
pub fn settled(policy: &RedisPoolPolicy) -> Option<Settled> {
    let status = policy.status.as_ref()?;
    if status.observed_generation != policy.metadata.generation {
        return None;
    }
    match status.phase {
        Phase::Succeeded | Phase::Idle => Some(Settled::Succeeded),
        Phase::RolledBack | Phase::Blocked | Phase::Invalid | Phase::Conflict | Phase::Overridden => {
            Some(Settled::Failed)
        }
        Phase::Progressing
        | Phase::Paused
        | Phase::Promoting
        | Phase::Degraded
        | Phase::RollingBack
        | Phase::Waiting => None,
    }
}

pub fn status_report(s: &Snapshot) -> StatusReport {
    let p = &s.policy;
    let st = p.status.clone().unwrap_or_default();
    let secs_since = |t: Timestamp| s.now.duration_since(t).as_secs().max(0);
    let conditions: Vec<ConditionView> = st
        .conditions
        .iter()
        .map(|c| ConditionView {
            type_: c.type_.clone(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
        })
        .collect();
    let budget = conditions.iter().find(|c| c.type_ == "BudgetOk");
    let plan = st.canary.as_ref().or(st.stable.as_ref()).and_then(|c| c.plan.as_ref()).map(|pp| PlanView {
        pool: pp.clone(),
        budget: budget.map(|b| b.message.clone()),
        budget_ok: budget.map(|b| b.status == "True"),
    });
    let target_name = p.spec.target_ref.name.clone();
    let deployments = vec![
        deployment_view(p, "stable", &target_name, s.target.as_ref()),
        deployment_view(p, "canary", &canary_name(&target_name), s.canary.as_ref()),
    ];
    StatusReport {
        namespace: p.metadata.namespace.clone().unwrap_or_default(),
        name: p.metadata.name.clone().unwrap_or_default(),
        environment: st.environment.clone(),
        phase: st.phase,
        progress: st.progress.clone(),
        step: st.step.map(|i| i.max(0) as usize + 1),
        weight: st.weight,
        message: st.message.clone(),
        settled: settled(p),
        plan,
        advice: st.advice.as_ref().map(|a| a.message.clone()),
        waiting_for: st.waiting_for.clone(),
        frozen: frozen_view(&st, &secs_since),
        freeze_windows: window_views(p, s.now),
        pending_approval: pending_view(&st, &secs_since),
        approvals: approval_views(&st, &secs_since),
        notifications: notification_views(&st, &secs_since),
        verdicts: verdict_views(p, &st, secs_since),
        steps: steps(s),
        analysis: analysis_view(p, &st, secs_since),
        deployments,
        conditions,
        history: st
            .history
            .iter()
            .map(|h| HistoryView {
                hash: h.hash.clone(),
                outcome: format!("{:?}", h.outcome),
                reason: h.reason.clone(),
                age_seconds: secs_since(h.finished_at.0),
            })
            .collect(),
        events: event_views(s, secs_since),
    }
}

/// The latest analysis, each gate beside the thresholds of the tier in force (as the operator
/// judged by them).
fn analysis_view(
    p: &RedisPoolPolicy,
    st: &RedisPoolPolicyStatus,
    secs_since: impl Fn(Timestamp) -> i64,
) -> Option<AnalysisView> {
    let gates = for_tier(&p.spec, st.environment.as_deref().unwrap_or_default());
    st.analysis.as_ref().map(|a| AnalysisView {
        age_seconds: secs_since(a.at.0),
        step: a.step + 1,
        after_promotion: a.after_promotion,
        verdict: a.verdict,
        decided_by: a.decided_by.clone(),
        consecutive_failures: a.consecutive_failures,
        environment: a.environment.clone(),
        gates: a
            .gates
            .iter()
            .map(|g| {
                let t = thresholds(&gates, g.gate);
                GateView {
                    gate: g.gate,
                    value: g.value,
                    stable: g.stable,
                    unit: t.unit,
                    promote: t.promote,
                    rollback: t.rollback,
                    relative: t.relative,
                    verdict: g.verdict,
                    message: g.message.clone(),
                    dry_run: g.dry_run,
                }
            })
            .collect(),
    })
}

fn verdict_views(
    p: &RedisPoolPolicy,
    st: &RedisPoolPolicyStatus,
    secs_since: impl Fn(Timestamp) -> i64,
) -> Vec<VerdictView> {
    let watched = watched_verdict(&p.spec, st);
    st.verdicts
        .iter()
        .map(|v| VerdictView {
            pool_hash: v.pool_hash.clone(),
            connections_per_worker: v.pool.connections_per_worker,
            environment: v.environment.clone(),
            result: v.result,
            soaked_seconds: v.soaked_seconds,
            // Only the verdict analyses soak now (a newer rolled-back one is not watched).
            soak: watched.filter(|w| std::ptr::eq(*w, v)).map(|_| p.spec.promotion.soak.clone()),
            age_seconds: secs_since(v.finished_at.0),
            reason: v.reason.clone(),
        })
        .collect()
}

/// The policy's Events, oldest first: sorted by the full timestamp, since Events of one
/// reconcile share a second but not a microsecond.
fn event_views(s: &Snapshot, secs_since: impl Fn(Timestamp) -> i64) -> Vec<EventView> {
    let mut timed: Vec<(Option<Timestamp>, &Event)> = s.events.iter().map(|e| (event_time(e), e)).collect();
    timed.sort_by_key(|(t, _)| *t);
    timed
        .into_iter()
        .map(|(t, e)| EventView {
            age_seconds: t.map_or(0, &secs_since),
            type_: e.type_.clone().unwrap_or_default(),
            reason: e.reason.clone().unwrap_or_default(),
            message: e.message.clone().unwrap_or_default(),
            count: e.series.as_ref().and_then(|s| s.count).or(e.count).unwrap_or(1).max(1),
        })
        .collect()
}

/// Each step's state. Steps before the current one are done; the current one soaks (or waits
/// for its canary, or is paused); the rest wait. A promotion has done them all.
fn steps(s: &Snapshot) -> Vec<StepView> {
    let spec = &s.policy.spec;
    let st = s.policy.status.clone().unwrap_or_default();
    let current = st.step.map(|i| i.max(0) as usize);
    let soaked = st.soak.as_ref().map(|k| {
        let running = k.running_since.as_ref().map_or(0, |t| s.now.duration_since(t.0).as_secs().max(0));
        k.soaked_seconds + running
    });
    let waiting_for_canary = st.soak.as_ref().is_some_and(|k| k.running_since.is_none());
    spec.rollout
        .steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let state = match (st.phase, current) {
                (Phase::Promoting | Phase::Degraded | Phase::Succeeded, _) => StepState::Done,
                (Phase::Progressing | Phase::Paused, Some(c)) if i < c => StepState::Done,
                (Phase::Paused, Some(c)) if i == c => StepState::Paused,
                (Phase::Progressing, Some(c)) if i == c && waiting_for_canary => StepState::WaitingForCanary,
                (Phase::Progressing, Some(c)) if i == c => StepState::Soaking,
                (Phase::Progressing | Phase::Paused, _) => StepState::Pending,
                _ => StepState::NotReached,
            };
            StepView {
                number: i + 1,
                weight: step.weight,
                pause_seconds: step_pause(spec, i).as_secs(),
                state,
                soaked_seconds: if Some(i) == current && st.phase.is_active() { soaked } else { None },
            }
        })
        .collect()
}

fn deployment_view(p: &RedisPoolPolicy, role: &'static str, name: &str, d: Option<&Deployment>) -> DeploymentView {
    let status = d.and_then(|d| d.status.clone()).unwrap_or_default();
    let env = d.and_then(|d| target_env(p, d).ok());
    let get = |k: &str| env.as_ref()?.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let n = &p.spec.env_names;
    DeploymentView {
        role,
        name: name.to_string(),
        exists: d.is_some(),
        replicas: d.and_then(|d| d.spec.replicas).unwrap_or(0),
        ready: status.ready_replicas.unwrap_or(0),
        updated: status.updated_replicas.unwrap_or(0),
        pool: get(&n.workers).zip(get(&n.max_connections)).map(|(w, c)| format!("{w} x {c}")),
        connections_per_pod: env.as_ref().and_then(|e| observed_connections_per_pod(n, e)),
    }
}

/// When an Event last happened: the newest of its series, else its own time.
fn event_time(e: &Event) -> Option<Timestamp> {
    let micro = |t: &k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime| t.0;
    e.series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref().map(micro))
        .or(e.event_time.as_ref().map(micro))
        .or(e.last_timestamp.as_ref().map(|t| t.0))
        .or(e.first_timestamp.as_ref().map(|t| t.0))
        .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// One line for a policy: what changed since the last line is what a log of a rollout needs.
pub fn summary_line(r: &StatusReport) -> String {
    let mut parts = vec![format!("{:?}", r.phase)];
    if let Some(progress) = &r.progress {
        parts.push(format!("step {progress} ({}%)", r.weight.unwrap_or(0)));
    }
    let [stable, canary] = [&r.deployments[0], &r.deployments[1]];
    if canary.exists {
        parts.push(format!("canary {}/{} ready", canary.ready, canary.replicas));
    }
    parts.push(format!("stable {}/{} ready", stable.ready, stable.replicas));
    parts.push(gates_summary(r));
    parts.join("  ")
}

/// The gate values of the current step's last analysis, or what it waits for.
pub fn gates_summary(r: &StatusReport) -> String {
    match (&r.analysis, r.step) {
        (None, _) if r.phase.is_active() => "waiting for the first analysis".into(),
        (None, _) => String::new(),
        (Some(a), Some(step)) if r.phase == Phase::Progressing && step as i32 != a.step => {
            format!("waiting for the first analysis of step {step}")
        }
        (Some(a), _) => {
            let values: Vec<String> = a
                .gates
                .iter()
                .map(|g| format!("{} {}", short_gate(g.gate), g.value.map_or("-".into(), |v| fmt_value(v, g.unit))))
                .collect();
            format!("{:?}: {}", a.verdict, values.join(", "))
        }
    }
}

pub fn short_gate(g: Gate) -> &'static str {
    match g {
        Gate::SuccessRate => "success",
        Gate::P95LatencyMs => "p95",
        Gate::PoolUtilization => "utilization",
        Gate::PoolExhaustionEvents => "exhaustion",
        Gate::RedisConnectionErrors => "redis-errors",
    }
}

pub fn fmt_value(v: f64, unit: &str) -> String {
    let n = if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.2}") };
    format!("{n}{unit}")
}

pub fn ago(secs: i64) -> String {
    human(SignedDuration::from_secs(secs))
}

/// One row of `list`.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ListRow {
    pub namespace: String,
    pub name: String,
    pub environment: Option<String>,
    pub phase: Phase,
    pub progress: Option<String>,
    pub weight: Option<i32>,
    /// `canary/stable` replicas.
    pub replicas: Option<String>,
    pub verdict: Option<Verdict>,
    pub age_seconds: i64,
}

pub fn list_row(p: &RedisPoolPolicy, now: Timestamp) -> ListRow {
    let st = p.status.clone().unwrap_or_default();
    ListRow {
        namespace: p.metadata.namespace.clone().unwrap_or_default(),
        name: p.metadata.name.clone().unwrap_or_default(),
        environment: st.environment,
        phase: st.phase,
        progress: st.progress,
        weight: st.weight,
        replicas: st.replicas.map(|r| format!("{}/{}", r.canary, r.stable)),
        verdict: st.analysis.map(|a| a.verdict),
        age_seconds: p.metadata.creation_timestamp.as_ref().map_or(0, |t| now.duration_since(t.0).as_secs().max(0)),
    }
}

#[cfg(test)]
mod tests;
