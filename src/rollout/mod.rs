//! The rollout state machine. Pure: (spec, status, observations, analysis, manual action, now)
//! -> (next status, actions). The controller applies the actions and writes the status.
//!
//! Actions are declarative ("the canary should have 5 replicas"), so deciding again from the same
//! observations gives the same actions: a crash between acting and writing status is harmless.
//! Ordering keeps capacity: the canary scales up before the stable scales down, and a rollback
//! restores the stable before the canary goes.

mod conditions;
mod machine;

pub use conditions::set_condition;
pub use machine::decide;

use jiff::Timestamp;

use crate::analysis::Analysis;
use crate::api::{RedisPoolPolicySpec, RedisPoolPolicyStatus};
use crate::sizing::RolloutPlan;

/// The configuration the spec asks for, rendered and sized by the caller.
#[derive(Clone, Debug, PartialEq)]
pub struct Desired {
    pub environment: String,
    /// Hash of the rendered env vars: what identifies a pool configuration.
    pub hash: String,
    pub plan: RolloutPlan,
}

/// The target Deployment as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetView {
    pub spec_replicas: i32,
    pub available: i32,
    /// The Deployment controller has rolled out the current template to every replica.
    pub rolled_out: bool,
    /// Hash of the pool env vars the target container carries now.
    pub config_hash: String,
    /// Hash of the pod template without the env vars the operator owns.
    pub template_hash: String,
    /// The target's own `maxUnavailable`, resolved against its replicas.
    pub max_unavailable: i32,
}

/// The canary Deployment as observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CanaryView {
    pub spec_replicas: i32,
    pub available: i32,
    pub config_hash: String,
    /// Hash of its pod template without the owned env vars and the track label: equal to the
    /// target's `template_hash` when the canary was made from the target's current template.
    pub template_hash: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// The target, or why it cannot be used (missing Deployment or container).
    pub target: Result<TargetView, String>,
    pub canary: Option<CanaryView>,
}

/// What an analysis run produced: gate verdicts, and whether the provider itself failed.
#[derive(Clone, Debug, PartialEq)]
pub struct AnalysisRun {
    /// The step whose canary pods were measured (from [`analysis_due`]).
    pub step: i32,
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
}

impl std::str::FromStr for ManualAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "promote" => Ok(Self::Promote),
            "abort" => Ok(Self::Abort),
            "retry" => Ok(Self::Retry),
            "pause" => Ok(Self::Pause),
            "resume" => Ok(Self::Resume),
            other => Err(format!("unknown action {other:?}; use promote, abort, retry, pause or resume")),
        }
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
    pub action: Option<ManualAction>,
    pub now: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Create or update `<target>-pool-canary`: the target's pod template with the desired env.
    ApplyCanary {
        replicas: i32,
    },
    /// Set the target's replicas, keeping the pool env it has.
    ScaleTarget {
        replicas: i32,
    },
    /// Write the desired pool env into the target and set its replicas.
    PromoteTarget {
        replicas: i32,
    },
    DeleteCanary,
    Event {
        kind: EventType,
        reason: &'static str,
        message: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub status: RedisPoolPolicyStatus,
    pub actions: Vec<Action>,
    /// The manual action was read and acted on (or refused with an Event): remove the annotation.
    pub action_consumed: bool,
}

/// The step the caller should analyse now, if any: a step is under way, its canary pods are all
/// available, and the last analysis of this step is at least one interval old.
pub fn analysis_due(spec: &RedisPoolPolicySpec, status: &RedisPoolPolicyStatus, now: Timestamp) -> Option<i32> {
    if !matches!(status.phase, crate::api::Phase::Progressing | crate::api::Phase::Paused) {
        return None;
    }
    let started = status.step_started_at.as_ref()?.0;
    let step = status.step.unwrap_or(0);
    let interval = durations(spec).interval;
    let due = match &status.analysis {
        Some(a) if a.step == step && a.at.0 >= started => now.duration_since(a.at.0) >= interval,
        _ => true,
    };
    due.then_some(step)
}

/// The spec's durations, parsed. Admission guarantees the format; a value that still fails to
/// parse (an old CRD without the rules) falls back to the runbook default, never to zero.
pub struct Durations {
    pub interval: jiff::SignedDuration,
    pub progress_deadline: jiff::SignedDuration,
}

pub fn parse_duration(s: &str) -> Option<jiff::SignedDuration> {
    humantime::parse_duration(s).ok().and_then(|d| jiff::SignedDuration::try_from(d).ok())
}

pub fn durations(spec: &RedisPoolPolicySpec) -> Durations {
    let a = &spec.rollout.analysis;
    Durations {
        interval: parse_duration(&a.interval).unwrap_or(jiff::SignedDuration::from_secs(30)),
        progress_deadline: parse_duration(&a.progress_deadline).unwrap_or(jiff::SignedDuration::from_hours(1)),
    }
}

pub fn step_pause(spec: &RedisPoolPolicySpec, step: usize) -> jiff::SignedDuration {
    spec.rollout.steps.get(step).and_then(|s| parse_duration(&s.pause)).unwrap_or(jiff::SignedDuration::ZERO)
}

#[cfg(test)]
mod tests;
