//! The one planner: a policy and what is known of its target -> the tier in force, the pool env
//! it renders, and the rollout plan (fleet, steps, peak connections, budget). The operator plans
//! from what it observed; `plan -f` from flags; `kubectl redispool plan` from the live cluster.

mod report;

use serde::Serialize;

pub use report::{
    GateThresholds, PlanReport, RequiredView, SharedGroup, chain_checks, render_text, report, shared_groups,
};

use crate::core::api::{RedisPoolPolicy, RedisPoolPolicySpec, RedisPoolPolicyStatus, Tier, WorkerPool};
use crate::core::render::{config_hash, render_env};
use crate::core::rollout::{Desired, TargetView, fleet};
use crate::core::sizing::{Fleet, RolloutPlan, tier};

/// What a plan is made from, beside the policy.
#[derive(Clone, Debug)]
pub struct PlanInput<'a> {
    /// A tier a person asked for (`--environment` of `plan`): it outranks `spec.environment`.
    pub environment: Option<&'a str>,
    /// The tier when neither a person nor the spec names one (the operator's `--environment`).
    pub default_environment: Option<&'a str>,
    pub replicas: Replicas<'a>,
    /// Connections per pod the target holds now; the new value when unknown.
    pub current_connections_per_pod: Option<i64>,
    /// The Redis server's `maxclients`, when known here; else `spec.redis.maxClients`.
    pub max_clients: Option<i64>,
}

/// Where the fleet's size comes from.
#[derive(Clone, Copy, Debug)]
pub enum Replicas<'a> {
    /// Given by a person: `--hpa-max-replicas` (an HPA sizes the stable up to it), else
    /// `--replicas`, else the tier's, else 1 (assumed).
    Given { replicas: Option<i32>, hpa_max: Option<i32> },
    /// As the operator sees the cluster (see [`fleet`]): the target (if it exists), its canary's
    /// replicas now, and the policy's status and generation.
    Observed {
        target: Option<&'a TargetView>,
        canary_replicas: Option<i32>,
        status: &'a RedisPoolPolicyStatus,
        generation: i64,
    },
}

/// Where the planned replica count came from.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReplicasSource {
    /// `--replicas`.
    Flag,
    /// The tier's `replicas`.
    Tier,
    /// An HPA's `maxReplicas`.
    Hpa,
    /// What the target runs (or the fleet its rollout in flight keeps).
    Target,
    /// Nothing says: 1.
    Assumed,
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error(
        "no environment chosen: set spec.environment, or pass --environment (to plan, or to the operator) (tiers: {0})"
    )]
    NoEnvironment(String),
    #[error("environment {0:?} is not a tier of this policy; tiers: {1} (add the tier, or choose one of these)")]
    UnknownEnvironment(String, String),
    #[error("--replicas must be >= 0, got {0}")]
    BadReplicas(i32),
    #[error("--hpa-max-replicas must be >= 1, got {0}")]
    BadHpaMax(i32),
}

/// A policy, planned.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    pub environment: String,
    pub tier: Tier,
    /// The pool env vars the tier renders (what the operator writes).
    pub env: Vec<(String, String)>,
    /// Their hash: what identifies a pool configuration.
    pub hash: String,
    pub plan: RolloutPlan,
    pub replicas_source: ReplicasSource,
}

impl Planned {
    /// What the rollout decision works towards.
    pub fn desired(&self) -> Desired {
        Desired {
            environment: self.environment.clone(),
            hash: self.hash.clone(),
            plan: self.plan.clone(),
            tier_replicas: self.tier.replicas,
        }
    }

    /// The per-worker pool this plan runs: what a verdict on it proves.
    pub fn worker_pool(&self, spec: &RedisPoolPolicySpec) -> WorkerPool {
        WorkerPool::new(&spec.pool, self.tier.connections_per_worker)
    }
}

/// Plans `policy`: the environment (a person's choice, else the spec's, else the default), its
/// tier, the env it renders, and the rollout plan for the fleet `input.replicas` gives.
pub fn plan(policy: &RedisPoolPolicy, input: &PlanInput) -> Result<Planned, PlanError> {
    let spec = &policy.spec;
    let names = || spec.tiers.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ");
    let environment = input
        .environment
        .or(spec.environment.as_deref())
        .or(input.default_environment)
        .ok_or_else(|| PlanError::NoEnvironment(names()))?;
    let t = tier(spec, environment).ok_or_else(|| PlanError::UnknownEnvironment(environment.into(), names()))?;
    let (fleet, replicas_source) = fleet_of(t, input.replicas)?;
    let env = render_env(spec, t);
    Ok(Planned {
        environment: environment.into(),
        hash: config_hash(&env),
        env,
        plan: RolloutPlan::new(spec, t, fleet, input.current_connections_per_pod, input.max_clients),
        tier: t.clone(),
        replicas_source,
    })
}

fn fleet_of(t: &Tier, replicas: Replicas) -> Result<(Fleet, ReplicasSource), PlanError> {
    let split = |n| Fleet::Split { total: n, running: n };
    Ok(match replicas {
        Replicas::Given { hpa_max: Some(m), .. } if m < 1 => return Err(PlanError::BadHpaMax(m)),
        Replicas::Given { hpa_max: Some(m), .. } => (Fleet::Beside { max_stable: m }, ReplicasSource::Hpa),
        Replicas::Given { replicas: Some(r), .. } if r < 0 => return Err(PlanError::BadReplicas(r)),
        Replicas::Given { replicas: Some(r), .. } => (split(r), ReplicasSource::Flag),
        Replicas::Given { replicas: None, .. } => match t.replicas {
            Some(r) => (split(r), ReplicasSource::Tier),
            None => (split(1), ReplicasSource::Assumed),
        },
        Replicas::Observed { target, canary_replicas, status, generation } => {
            let fleet = fleet(t.replicas, target, canary_replicas, status, generation);
            let applies_tier = t.replicas.is_some()
                && (target.is_none()
                    || !status.phase.is_active() && status.replicas_applied_generation != Some(generation));
            let source = match target {
                Some(t) if t.hpa.is_some() => ReplicasSource::Hpa,
                _ if applies_tier => ReplicasSource::Tier,
                _ => ReplicasSource::Target,
            };
            (fleet, source)
        }
    })
}
