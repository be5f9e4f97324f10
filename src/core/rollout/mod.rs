//! The rollout state machine. Pure: (spec, status, observations, analysis, manual action, now)
//! -> (next status, actions). The controller applies the actions and writes the status.
//!
//! Actions are declarative ("the canary should have 5 replicas"), so deciding again from the same
//! observations gives the same actions: a crash between acting and writing status is harmless.
//! Ordering keeps capacity: the canary scales up before the stable scales down, and a rollback
//! restores the stable before the canary goes.

pub(crate) mod conditions;
mod identity;
mod machine;
pub mod messages;
pub mod notices;
mod questions;
mod reason;
mod refusals;
mod writes;

pub use conditions::set_condition;
pub use identity::{Claimant, holder};
pub use machine::decide;
pub use questions::{
    holds_target, keeps_baseline, needs_fresh, needs_redis, needs_verdicts, next_look, webhooks_to_ask,
};
pub use reason::Reason;
pub use refusals::{HeldBy, NoTarget, UnknownAction, Unplannable, Unusable};
pub use writes::{StatusWrite, TALLIES_EVERY, status_write};

use jiff::Timestamp;

use crate::core::analysis::Analysis;
use crate::core::analysis::redis::{RedisFault, RedisSignals};
use crate::core::api::{RedisPoolPolicySpec, RedisPoolPolicyStatus, ScalingMode};
use crate::core::durations::{durations, promotion_soak};
use crate::core::sizing::{Fleet, RolloutPlan};

/// The configuration the spec asks for, rendered and sized by the caller.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub environment: String,
    /// Hash of the rendered env vars: what identifies a pool configuration.
    pub hash: String,
    pub plan: RolloutPlan,
    /// The tier's `replicas`, if it sets one: applied once per spec generation, or by a rollout.
    pub tier_replicas: Option<i32>,
}

/// The target Deployment as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetView {
    /// The Deployment object's uid.
    pub uid: String,
    pub spec_replicas: i32,
    pub available: i32,
    /// The Deployment controller has rolled out the current template to every replica.
    pub rolled_out: bool,
    /// Hash of the pool env vars the target container carries now.
    pub config_hash: String,
    /// Connections per pod the target's pool env gives, when it says so.
    pub connections_per_pod: Option<i64>,
    /// Hash of the pod template without the env vars the operator owns.
    pub template_hash: String,
    /// The target's own `maxUnavailable`, resolved against its replicas.
    pub max_unavailable: i32,
    /// The target's own `maxSurge`: what its rolling update adds during a promotion.
    pub max_surge: crate::core::sizing::Surge,
    /// Why the operator cannot manage this target's pool: the container is missing, or a pool
    /// env var is set from a ConfigMap or Secret (`valueFrom`), which the operator must not
    /// overwrite.
    pub unusable: Option<Unusable>,
    /// The field manager that last wrote `spec.replicas`, when it is not the operator.
    pub replicas_writer: Option<Writer>,
    /// Field managers other than the operator that own pool env vars of the container.
    pub env_writers: Vec<Writer>,
    /// A HorizontalPodAutoscaler that scales the target.
    pub hpa: Option<HpaView>,
}

/// Another field manager and what it wrote, from the object's `managedFields`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Writer {
    pub manager: String,
    /// When it last wrote (its managedFields entry's time).
    pub at: Option<Timestamp>,
    /// The owned env vars it holds (for env writers).
    pub fields: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HpaView {
    pub name: String,
    pub min_replicas: i32,
    pub max_replicas: i32,
}

/// The canary Deployment as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanaryView {
    pub spec_replicas: i32,
    pub available: i32,
    pub config_hash: String,
    /// Hash of the target's pod template it was made from (its annotation), when it carries
    /// the spec the operator applied; empty when someone else edited it.
    pub template_hash: String,
    /// Its controller owner, when that is not this policy: such a canary is never touched.
    pub foreign_owner: Option<String>,
    /// Its pod template is not the one the operator would apply now (a person edited it): an
    /// apply cannot remove fields another manager added, so the canary is replaced whole.
    pub edited: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// The target, or why there is none (the Deployment is missing, or the spec is invalid).
    pub target: Result<TargetView, NoTarget>,
    pub canary: Option<CanaryView>,
    /// Whether this policy holds the target: Err names the policy that does (see [`holder`]).
    pub holder: Result<(), HeldBy>,
    /// The Redis server, when `spec.redis` is set and the operator asked it this time.
    pub redis: Option<Result<RedisSignals, RedisFault>>,
    /// The other policies on the same Redis server (none without `spec.redis`).
    pub peers: Vec<crate::core::shared_budget::Peer>,
    /// `spec.promotion.requires`, resolved, when the shell read them (see [`needs_verdicts`]).
    pub required: Option<Vec<crate::core::promotion::Required>>,
    /// What the approval webhooks of the pending gate answered, when the shell asked them (see
    /// [`webhooks_to_ask`]).
    pub approval_answers: Vec<WebhookAnswer>,
}

/// An approval webhook's answer for a gate and a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookAnswer {
    pub gate: String,
    pub hash: String,
    /// The webhook, by its Secret's name.
    pub webhook: String,
    /// 2xx, or why not (the status and the start of the body; never the URL).
    pub answer: Result<(), String>,
}

/// What an analysis due now measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// The canary pods of this step.
    Step(i32),
    /// The target's pods, after a promotion: the verdict's soak.
    AfterPromotion,
}

/// What an analysis run produced: gate verdicts, and whether the provider itself failed.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalysisRun {
    /// What was measured (from [`analysis_due`]).
    pub of: Due,
    pub analysis: Analysis,
    pub provider_error: Option<String>,
}

/// `kubectl annotate rpp NAME redispool.io/action=...`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManualAction {
    Promote,
    Abort,
    Retry,
    Pause,
    Resume,
    /// Opens what waits for a person at the pending approval gate.
    Approve,
}

impl ManualAction {
    pub const ALL: [ManualAction; 6] =
        [Self::Promote, Self::Abort, Self::Retry, Self::Pause, Self::Resume, Self::Approve];

    /// The annotation's value for this action.
    pub fn name(self) -> &'static str {
        match self {
            Self::Promote => "promote",
            Self::Abort => "abort",
            Self::Retry => "retry",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Approve => "approve",
        }
    }
}

impl std::str::FromStr for ManualAction {
    type Err = UnknownAction;
    fn from_str(s: &str) -> Result<Self, UnknownAction> {
        let name = s.trim();
        Self::ALL.into_iter().find(|a| a.name() == name).ok_or_else(|| UnknownAction(s.into()))
    }
}

pub struct Input<'a> {
    pub spec: &'a RedisPoolPolicySpec,
    pub generation: i64,
    pub status: &'a RedisPoolPolicyStatus,
    pub desired: &'a Desired,
    pub observed: &'a Observed,
    /// An analysis the caller ran now because [`analysis_due`] said so.
    pub analysis: Option<&'a AnalysisRun>,
    /// The action annotation, when set: an action understood, or the value nobody understands.
    pub action: Option<Result<ManualAction, UnknownAction>>,
    /// Who set it: the user the plugin named (`redispool.io/approved-by`), else the field
    /// manager that wrote the annotation.
    pub action_by: Option<String>,
    pub now: Timestamp,
    /// When this operator process began acting: time before it (when no operator was watching)
    /// never counts against a deadline.
    pub awake_since: Timestamp,
    /// The policy is being deleted: give the target back, then let it go.
    pub deleting: bool,
    /// The operator's cluster-wide freeze windows (the policy's own are in its spec).
    pub cluster_windows: &'a [crate::core::freeze::Window],
    /// The operator's cluster-wide notification destinations (the policy's own are in its spec).
    pub cluster_subscriptions: &'a [crate::core::api::Subscription],
    /// How deliveries of the outbox's notices ended since the shell last reported.
    pub deliveries: &'a [notices::DeliveryResult],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create or update `<target>-pool-canary`: the target's pod template with the desired env;
    /// `replace`: the whole object (guarded by its resourceVersion), not an apply.
    ApplyCanary {
        replicas: i32,
        replace: bool,
    },
    /// Set the target's replicas, keeping the pool env it has.
    ScaleTarget {
        replicas: i32,
    },
    /// Write the desired pool env into the target, then set its replicas when given (the
    /// operator sizes the fleet and the target has another count).
    PromoteTarget {
        replicas: Option<i32>,
    },
    /// Delete the canary observed now (the shell deletes with its uid as a precondition).
    DeleteCanary,
    Event {
        reason: Reason,
        message: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub status: RedisPoolPolicyStatus,
    pub actions: Vec<Action>,
    /// The manual action was read and acted on (or refused with an Event): remove the annotation.
    pub action_consumed: bool,
    /// Deleting: the target is given back, so the finalizer may go.
    pub released: bool,
}

/// The fleet a plan counts, and so the connection budget:
/// - an HPA scales the target: canary pods run beside its stable, up to its `maxReplicas`;
/// - a rollout in flight keeps the fleet it began with (or, once another writer took the
///   replicas back, counts the stable they set);
/// - otherwise the tier's `replicas`, or the target's own.
pub fn fleet(
    tier_replicas: Option<i32>,
    target: Option<&TargetView>,
    canary_replicas: Option<i32>,
    status: &RedisPoolPolicyStatus,
    generation: i64,
) -> Fleet {
    let Some(t) = target else {
        let total = tier_replicas.unwrap_or(0);
        return Fleet::Split { total, running: total };
    };
    let beside = status.scaling.as_ref().is_some_and(|s| s.mode == ScalingMode::Beside);
    let running = t.spec_replicas;
    match (&t.hpa, status.phase.is_active()) {
        (Some(h), _) => Fleet::Beside { max_stable: h.max_replicas.max(running) },
        // A canary never outnumbers the stable it was sized beside, even if the stable shrank since.
        (None, true) if beside => Fleet::Beside { max_stable: running.max(canary_replicas.unwrap_or(0)) },
        (None, true) => Fleet::Split { total: status.replicas.as_ref().map_or(running, |r| r.total), running },
        (None, false) => Fleet::Split { total: rollout_total(tier_replicas, t, status, generation), running },
    }
}

/// The fleet a split rollout starting now keeps: the tier's `replicas` if this spec generation
/// has not applied them yet (a rollout applies them), else what the target runs.
pub fn rollout_total(
    tier_replicas: Option<i32>,
    target: &TargetView,
    status: &RedisPoolPolicyStatus,
    generation: i64,
) -> i32 {
    tier_replicas_pending(tier_replicas, status, generation).unwrap_or(target.spec_replicas)
}

/// The tier's `replicas`, while this spec generation has not applied them yet.
pub fn tier_replicas_pending(
    tier_replicas: Option<i32>,
    status: &RedisPoolPolicyStatus,
    generation: i64,
) -> Option<i32> {
    tier_replicas.filter(|_| status.replicas_applied_generation != Some(generation))
}

/// What the caller should analyse now, if anything:
/// - a step whose soak is running (its canary pods are all available), when the last analysis of
///   this step is at least one interval old;
/// - after a promotion, the target, until its verdict has soaked `spec.promotion.soak` (or failed),
///   at the same interval.
pub fn analysis_due(spec: &RedisPoolPolicySpec, status: &RedisPoolPolicyStatus, now: Timestamp) -> Option<Due> {
    if spec.suspend {
        return None;
    }
    let interval = durations(spec).interval;
    // The last analysis of the same kind since `since`, at least one interval old (or none).
    let last_old = |after_promotion: bool, step: i32, since: Timestamp| match &status.analysis {
        Some(a) if a.after_promotion == after_promotion && a.step == step && a.at.0 >= since => {
            now.duration_since(a.at.0) >= interval
        }
        _ => true,
    };
    if let Some(v) = watched_verdict(spec, status) {
        let last = spec.rollout.steps.len().max(1) as i32 - 1;
        let since = v.finished_at.0;
        let first_due = now.duration_since(since) >= interval;
        return (last_old(true, last, since) && first_due).then_some(Due::AfterPromotion);
    }
    if !matches!(status.phase, crate::core::api::Phase::Progressing | crate::core::api::Phase::Paused) {
        return None;
    }
    // A soak stopped for missing canary pods waits for them; one stopped by the environment
    // keeps analysing, to see it recover.
    if status.soak.as_ref().is_some_and(|s| s.running_since.is_none() && s.unavailable_since.is_some()) {
        return None;
    }
    if status.soak.as_ref().is_some_and(|s| s.running_since.is_none() && s.environment_since.is_none()) {
        return None;
    }
    let started = status.step_started_at.as_ref()?.0;
    let step = status.step.unwrap_or(0);
    last_old(false, step, started).then_some(Due::Step(step))
}

/// The verdict analyses still watch: of the configuration this policy promoted and the target
/// runs (as far as status knows; the core checks the target), with no rollout in flight, while
/// it has succeeded, has not soaked `spec.promotion.soak` and its watch has not ended.
pub fn watched_verdict<'s>(
    spec: &RedisPoolPolicySpec,
    status: &'s RedisPoolPolicyStatus,
) -> Option<&'s crate::core::api::RolloutVerdict> {
    use crate::core::api::Phase;
    if status.phase.is_active() || matches!(status.phase, Phase::Invalid | Phase::Conflict) {
        return None;
    }
    let stable = &status.stable.as_ref()?.hash;
    let v = status.verdicts.iter().find(|v| &v.hash == stable)?;
    let watching = v.result == crate::core::api::VerdictResult::Succeeded && v.watch_ended.is_none();
    (watching && v.soaked() < promotion_soak(spec)).then_some(v)
}

#[cfg(test)]
mod tests;
