//! The one planner: a policy and what is known of its target -> the tier in force, the pool env
//! it renders, and the rollout plan (fleet, steps, peak connections, budget). The operator plans
//! from what it observed; `plan -f` from flags; `kubectl redispool plan` from the live cluster.

mod report;

use serde::Serialize;

pub use report::{
    GateThresholds, PlanReport, RequiredView, SharedGroup, chain_checks, node_table, render_text, report, shared_groups,
};

use crate::core::analysis::redis::NodeSignals;
use crate::core::api::validation::Invalid;
use crate::core::api::{RedisPoolPolicy, RedisPoolPolicySpec, RedisPoolPolicyStatus, Tier, WorkerPool};
use crate::core::node_budget::{Ask, per_node};
use crate::core::render::{config_hash, render_env};
use crate::core::rollout::{Desired, NoTarget, TargetView, Unplannable, Unusable, fleet, tier_replicas_pending};
pub use crate::core::sizing::PlanError;
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
    /// The Redis Cluster nodes that hold pools, as they answered (`plan NAME` asks them): the
    /// budget is then checked on each.
    pub redis_nodes: &'a [NodeSignals],
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
    let mut plan = RolloutPlan::new(
        spec,
        t,
        fleet,
        input.current_connections_per_pod,
        input.max_clients,
        surge_of(input.replicas),
    );
    if let Some(redis) = spec.redis.as_ref().filter(|_| !input.redis_nodes.is_empty()) {
        let per_pod = input.current_connections_per_pod.unwrap_or(plan.pool.connections_per_pod);
        let ask = Ask {
            peak: plan.budget.peak_connections,
            steady: per_pod * i64::from(plan.fleet.replicas()),
            pools: redis.cluster_pools.unwrap_or_default(),
            pinned: input.max_clients.or(redis.max_clients),
            utilization: plan.budget.utilization,
        };
        plan.budget = per_node(&ask, &[], input.redis_nodes, false);
    }
    Ok(Planned {
        environment: environment.into(),
        hash: config_hash(&env),
        env,
        plan,
        tier: t.clone(),
        replicas_source,
    })
}

/// The target's own `maxSurge`, when the plan observes the target (else the default).
fn surge_of(replicas: Replicas) -> Option<crate::core::sizing::Surge> {
    match replicas {
        Replicas::Observed { target, .. } => target.map(|t| t.max_surge),
        Replicas::Given { .. } => None,
    }
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
            let pending = tier_replicas_pending(t.replicas, status, generation).is_some();
            let applies_tier = t.replicas.is_some() && (target.is_none() || !status.phase.is_active() && pending);
            let source = match target {
                Some(t) if t.hpa.is_some() => ReplicasSource::Hpa,
                _ if applies_tier => ReplicasSource::Tier,
                _ => ReplicasSource::Target,
            };
            (fleet, source)
        }
    })
}

/// What the operator observed beside the target, for [`for_decision`].
pub struct Seen<'a> {
    /// The operator's `--environment`.
    pub default_environment: Option<&'a str>,
    pub status: &'a RedisPoolPolicyStatus,
    pub canary_replicas: Option<i32>,
    /// The spec against the CRD's rules (an API server without them may have admitted it).
    pub spec_check: Result<(), Invalid>,
}

/// What the rollout decision works from: the desired configuration and its env, and the target
/// as the decision sees it. A spec that cannot be planned makes an existing target unusable (a
/// rollout in flight gives the stable back first, then the policy is Invalid); without a target
/// there is nothing to give back. The decision then works towards a stand-in that sizes nothing:
/// no tier, no replicas, no hash any target could carry.
pub fn for_decision(
    policy: &RedisPoolPolicy,
    target: Option<TargetView>,
    seen: Seen,
) -> (Desired, Vec<(String, String)>, Result<TargetView, NoTarget>) {
    let spec = &policy.spec;
    let input = PlanInput {
        environment: None,
        default_environment: seen.default_environment,
        replicas: Replicas::Observed {
            target: target.as_ref(),
            canary_replicas: seen.canary_replicas,
            status: seen.status,
            generation: policy.metadata.generation.unwrap_or(0),
        },
        current_connections_per_pod: target.as_ref().and_then(|t| t.connections_per_pod),
        max_clients: None,
        redis_nodes: &[],
    };
    let planned = seen.spec_check.map_err(Unplannable::from).and_then(|()| Ok(plan(policy, &input)?));
    match planned {
        Ok(planned) => {
            let missing = || NoTarget::Missing {
                namespace: policy.metadata.namespace.clone().unwrap_or_default(),
                name: spec.target_ref.name.clone(),
            };
            (planned.desired(), planned.env, target.ok_or_else(missing))
        }
        Err(why) => {
            let view = target.map(|v| TargetView {
                unusable: Some(Unusable::Unplannable(why.clone())),
                config_hash: String::new(),
                ..v
            });
            let environment = spec.environment.as_deref().or(seen.default_environment).unwrap_or_default();
            let nothing =
                Tier { name: String::new(), workers: 0, connections_per_worker: 0, replicas: Some(0), gates: None };
            let plan = RolloutPlan::new(spec, &nothing, Fleet::Split { total: 0, running: 0 }, None, None, None);
            let stand_in = Desired { environment: environment.into(), hash: String::new(), plan, tier_replicas: None };
            (stand_in, vec![], view.ok_or(NoTarget::Unplannable(why)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::api::validation::parse_policy;
    use crate::core::render::{config_hash, render_env};

    fn policy() -> RedisPoolPolicy {
        let mut p = parse_policy(include_str!("../../../examples/auth-api.yaml")).unwrap();
        p.metadata.namespace = Some("saas".into());
        p.metadata.generation = Some(1);
        p
    }

    fn target(replicas: i32) -> TargetView {
        TargetView {
            uid: "t-1".into(),
            spec_replicas: replicas,
            available: replicas,
            rolled_out: true,
            config_hash: "old".into(),
            connections_per_pod: Some(60),
            template_hash: "tpl".into(),
            max_unavailable: 2,
            max_surge: crate::core::sizing::Surge::Percent(25),
            unusable: None,
            replicas_writer: None,
            env_writers: vec![],
            hpa: None,
        }
    }

    fn seen(status: &RedisPoolPolicyStatus, check: Result<(), Invalid>) -> Seen<'_> {
        Seen { default_environment: Some("staging"), status, canary_replicas: None, spec_check: check }
    }

    #[test]
    fn the_decision_works_towards_the_same_plan_people_see() {
        let (p, status) = (policy(), RedisPoolPolicyStatus::default());
        let (desired, env, observed) = for_decision(&p, Some(target(10)), seen(&status, Ok(())));
        let tier = tier(&p.spec, "production").unwrap();
        assert_eq!(desired.environment, "production", "spec.environment outranks the operator's default");
        assert_eq!(env, render_env(&p.spec, tier));
        assert_eq!(desired.hash, config_hash(&env));
        assert_eq!(observed, Ok(target(10)));
        // `plan -f` with the same replicas and current connections says the same.
        let given = PlanInput {
            environment: None,
            default_environment: None,
            replicas: Replicas::Given { replicas: Some(10), hpa_max: None },
            current_connections_per_pod: Some(60),
            max_clients: None,
            redis_nodes: &[],
        };
        assert_eq!(report(&p, &given).unwrap().plan, desired.plan);
    }

    #[test]
    fn an_unplannable_spec_makes_the_target_unusable_and_plans_nothing() {
        let (mut p, status) = (policy(), RedisPoolPolicyStatus::default());
        p.spec.environment = Some("qa".into());
        let (desired, env, observed) = for_decision(&p, Some(target(10)), seen(&status, Ok(())));
        let why = observed.unwrap().unusable.expect("unusable").to_string();
        assert!(why.starts_with("environment \"qa\" is not a tier of this policy"), "{why}");
        assert!((desired.hash.is_empty(), env.is_empty(), desired.plan.pool.replicas) == (true, true, 0));
        // Without a target there is nothing to give back: the policy is Invalid for that reason.
        let (_, _, observed) = for_decision(&p, None, seen(&status, Ok(())));
        assert!(matches!(observed, Err(NoTarget::Unplannable(Unplannable::Plan(PlanError::UnknownEnvironment(..))))));
        // A spec the CRD's rules refuse is not planned at all.
        let invalid = crate::core::api::validation::Invalid(vec![]);
        let (_, _, observed) = for_decision(&policy(), None, seen(&status, Err(invalid)));
        assert!(matches!(observed, Err(NoTarget::Unplannable(Unplannable::Spec(_)))));
    }

    #[test]
    fn the_plan_says_which_gates_run_dry() {
        let yaml = include_str!("../../../examples/auth-api.yaml").replace(
            "successRate: { promoteAtLeast: 99.5, rollbackBelow: 99.0, maxBelowStable: 0.5 }",
            "successRate: { promoteAtLeast: 99.5, rollbackBelow: 99.0, dryRun: true }",
        );
        let p = parse_policy(&yaml).expect("dryRun is part of the API");
        let given = PlanInput {
            environment: None,
            default_environment: None,
            replicas: Replicas::Given { replicas: Some(10), hpa_max: None },
            current_connections_per_pod: None,
            max_clients: None,
            redis_nodes: &[],
        };
        let text = render_text(&report(&p, &given).unwrap());
        assert!(text.contains("successRate >= 99.5% (rollback < 99%, dry run)"), "{text}");
        assert!(text.contains("p95LatencyMs <= 500ms (rollback > 1000ms, no more than 25% above stable),"), "{text}");
    }

    #[test]
    fn a_missing_target_is_named() {
        let status = RedisPoolPolicyStatus::default();
        let (_, _, observed) = for_decision(&policy(), None, seen(&status, Ok(())));
        assert_eq!(observed.unwrap_err().to_string(), "target Deployment saas/auth-api not found");
    }
}
