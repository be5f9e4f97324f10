//! The `RedisPoolPolicy` status: everything needed to resume a rollout after a restart.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    Advice, Approval, GateResult, NotificationStatus, PendingApproval, PoolPlan, RolloutVerdict, Verdict, WorkerPool,
};

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Phase {
    /// The target runs the desired configuration and nothing is in flight.
    #[default]
    Idle,
    /// A canary runs the new configuration at `step`.
    Progressing,
    /// A person paused the rollout at its current step.
    Paused,
    /// The target is being given the new configuration; the canary goes once it is rolled out.
    Promoting,
    /// The last rollout completed: the target runs the new configuration.
    Succeeded,
    /// The target carries the new configuration but has not rolled it out within
    /// `progressDeadline`; the canary keeps serving until it does.
    Degraded,
    /// The stable Deployment is being restored and the canary removed.
    RollingBack,
    /// The last rollout was rolled back; its configuration is not retried until asked.
    RolledBack,
    /// The plan does not fit the Redis connection budget, or a verdict it requires refuses its
    /// worker pool; nothing was changed.
    Blocked,
    /// A verdict `spec.promotion.requires` names is not in yet (staging still soaks); the
    /// rollout starts by itself when it is.
    Waiting,
    /// The policy cannot be acted on (missing target, container, invalid spec).
    Invalid,
    /// Another policy manages the same Deployment (or owns its canary); this one touches nothing.
    Conflict,
    /// Another field manager took the pool env vars back after a promotion, again: the operator
    /// re-rolled once for this generation and now waits for `retry` or a spec change.
    Overridden,
}

impl Phase {
    pub const ALL: [Phase; 13] = [
        Phase::Idle,
        Phase::Progressing,
        Phase::Paused,
        Phase::Promoting,
        Phase::Succeeded,
        Phase::Degraded,
        Phase::RollingBack,
        Phase::RolledBack,
        Phase::Blocked,
        Phase::Waiting,
        Phase::Invalid,
        Phase::Conflict,
        Phase::Overridden,
    ];

    /// A rollout is in flight: a canary may exist and the target's replicas are ours.
    pub fn is_active(self) -> bool {
        matches!(self, Phase::Progressing | Phase::Paused | Phase::Promoting | Phase::Degraded | Phase::RollingBack)
    }
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RedisPoolPolicyStatus {
    #[serde(default)]
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The tier in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// A one-line, human explanation of the phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The configuration the target runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable: Option<ConfigRef>,
    /// The configuration being rolled out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<ConfigRef>,
    /// Index into spec.rollout.steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<i32>,
    /// The step for people, 1-based, as Events and the plugin say it: `2/3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// Requested canary weight (percent); `replicas.actualWeight` is what the split gives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<ReplicaStatus>,
    /// When the current step's canary pods were first all available: its soak began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_started_at: Option<Time>,
    /// The current step's soak clock, which stops while canary pods are missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak: Option<SoakStatus>,
    /// When the rollout began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the rollout last moved forward (started, began a step, or began promoting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progressed_at: Option<Time>,
    /// When the promotion first wrote the new configuration into the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_at: Option<Time>,
    /// Who sets the target's replicas during this rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<ScalingStatus>,
    /// Hash of the target's pod template (without the env vars we own) when the rollout began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_template_hash: Option<String>,
    /// The uid of the target Deployment the rollout began on: a target replaced since (same
    /// name, new object) restarts the rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_uid: Option<String>,
    /// The target's replicas as the operator last wrote them in this rollout (or found them when
    /// it began): another manager leaving a different value has taken the replicas over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaled_to: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisStatus>,
    /// What the analyses saw of the pool configuration rolled out last (the canary's pools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_seen: Option<PoolSeen>,
    /// How the last rollouts ended, one per worker pool, newest first: what other policies'
    /// `spec.promotion.requires` read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verdicts: Vec<RolloutVerdict>,
    /// What a Waiting policy waits for, short, for `kubectl get`: `staging/auth-api 6h/24h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
    /// A freeze window that holds the rollout now: nothing starts, advances or promotes until it
    /// ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze: Option<FreezeStatus>,
    /// The approval gate the rollout waits at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_approval: Option<PendingApproval>,
    /// Approvals given for the rollout in flight (or about to start), until it ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<Approval>,
    /// Transitions to tell people about, and how telling them went.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifications: Option<NotificationStatus>,
    /// Pool size advice from `poolSeen`; never applied by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advice: Option<Advice>,
    /// The Redis connections this policy accounts for on its server, which other policies on
    /// the same server count against the shared budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_connections: Option<RedisConnections>,
    /// Why a rollback is in progress, and whether its configuration may be retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackStatus>,
    /// A configuration that was rolled back and must not be retried until the spec changes or a
    /// person asks for `retry`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<FailedConfig>,
    /// The policy generation whose tier `replicas` was last applied to the target: a tier's
    /// replicas is applied once per generation, never enforced against other writers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas_applied_generation: Option<i64>,
    /// Another field manager took the pool env vars back after a promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overridden: Option<OverrideStatus>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The last few rollouts, newest first.
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// The last configurations that succeeded, newest first, with the values that make them:
    /// what `kubectl redispool undo` writes back, and what `rollbackWindow` returns to fast.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub succeeded: Vec<SucceededConfig>,
}

/// A configuration that succeeded (or ran when the policy found the target up to date).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SucceededConfig {
    pub hash: String,
    pub tier: String,
    pub workers: i32,
    /// The per-worker pool: connections and the pool settings.
    pub pool: WorkerPool,
    pub at: Time,
}

/// Configurations kept in `status.succeeded`.
pub const SUCCEEDED_LIMIT: usize = 5;

/// The freeze window holding a rollout.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FreezeStatus {
    /// The window's name; `cluster/NAME` for one of the operator's cluster-wide windows.
    pub window: String,
    /// When it began holding this rollout.
    pub since: Time,
    /// When it ends (with any window it runs into).
    pub until: Time,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RedisConnections {
    /// What the target's pods hold: connections per pod x replicas.
    pub steady: i64,
    /// The plan's peak, while a rollout is in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak: Option<i64>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PoolSeen {
    /// The pool configuration measured.
    pub hash: String,
    /// The highest pool utilization an analysis measured, in percent.
    pub peak_utilization: f64,
    /// Pool exhaustion events counted by the analyses.
    pub exhaustion_events: i64,
    /// Analyses that measured the pool.
    pub analyses: i32,
    /// The first of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Time>,
    /// The last of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Time>,
}

/// The soak clock of a step: it runs while the step's canary pods are all available.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SoakStatus {
    /// Soak time accumulated before `runningSince`.
    #[serde(default)]
    pub soaked_seconds: i64,
    /// The clock runs since then (all canary pods available).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running_since: Option<Time>,
    /// The clock stopped then: fewer canary pods available than the step asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable_since: Option<Time>,
    /// Canary pods the soak counts on: all of the step's once they were available together.
    #[serde(default)]
    pub canary: i32,
    /// The step, soaked and passing, was last held then for verdicts `spec.promotion.requires`
    /// could not read: its deadline counts from there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_until: Option<Time>,
    /// The clock stopped then: an analysis found the environment at fault (Inconclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_since: Option<Time>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalingMode {
    /// The operator moves replicas from the stable to the canary: stable + canary = total.
    Split,
    /// Another actor (a HorizontalPodAutoscaler, or a writer that took the target's replicas
    /// back mid-rollout) sets the target's replicas; canary pods run beside the stable and the
    /// operator never writes the target's replicas.
    Beside,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ScalingStatus {
    pub mode: ScalingMode,
    /// Who sets the target's replicas in `Beside` mode, e.g. `HorizontalPodAutoscaler auth-api`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OverrideStatus {
    /// The policy generation in which the overrides were seen.
    pub generation: i64,
    /// Automatic re-rollouts after an override in that generation (at most one).
    pub rerollouts: i32,
    /// The field managers that wrote the pool env vars, e.g. `argocd-controller`.
    pub by: String,
    /// The env vars they wrote.
    #[serde(default)]
    pub fields: Vec<String>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigRef {
    pub hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<PoolPlan>,
    /// The per-worker pool the canary runs: what its verdict will prove.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_pool: Option<WorkerPool>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    pub total: i32,
    pub stable: i32,
    pub canary: i32,
    /// Percent of replicas that actually run the canary configuration.
    pub actual_weight: i32,
    /// `canary/total`, for `kubectl get`.
    pub summary: String,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisStatus {
    pub at: Time,
    pub verdict: Verdict,
    /// The gate that decided a Fail or Hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(default)]
    pub gates: Vec<GateResult>,
    #[serde(default)]
    pub consecutive_failures: i32,
    /// Provider errors since the step began (counted apart from gate verdicts).
    #[serde(default)]
    pub provider_errors: i32,
    /// Step the analysis belongs to.
    #[serde(default)]
    pub step: i32,
    /// It watched the target after a promotion (for the verdict), not a step's canary.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub after_promotion: bool,
    /// Why it was Inconclusive: what the environment did (the stable's values, a Redis change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RollbackKind {
    /// Gates failed or the deadline passed: remember the configuration as failed.
    Failed,
    /// A person aborted: remember the configuration as failed.
    Aborted,
    /// The spec or the target changed: start again afterwards.
    Restart,
    /// The policy is being deleted: give the target back, then let the policy go.
    Release,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RollbackStatus {
    pub kind: RollbackKind,
    pub reason: String,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FailedConfig {
    pub hash: String,
    /// The policy generation at which it failed: a newer spec may try again.
    pub generation: i64,
    pub reason: String,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    RolledBack,
    Restarted,
    /// Another field manager took the target's pool env back during the promotion.
    Overridden,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub hash: String,
    pub outcome: Outcome,
    pub reason: String,
    pub finished_at: Time,
}

/// Entries kept in `status.history`.
pub const HISTORY_LIMIT: usize = 5;
