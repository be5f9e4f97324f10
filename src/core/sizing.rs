//! Pool sizing, the canary replica split and the Redis connection budget. Pure.

use serde::{Deserialize, Serialize};

pub use crate::core::api::PoolPlan;
use crate::core::api::{RedisPoolPolicySpec, Tier};

/// The tier named `environment`, if the policy has it.
pub fn tier<'a>(spec: &'a RedisPoolPolicySpec, environment: &str) -> Option<&'a Tier> {
    spec.tiers.iter().find(|t| t.name == environment)
}

/// Canary and stable replicas for one step.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Split {
    pub canary: i32,
    pub stable: i32,
    /// Percent of all running pods that are canaries, rounded to the nearest integer.
    pub actual_weight: i32,
}

/// Splits `total` replicas for a requested canary `weight` (percent).
///
/// The rule:
/// - weight 0 -> no canary; weight >= 100 -> everything is canary;
/// - otherwise canary = the integer closest to `total * weight / 100`, ties going to the smaller
///   (a canary is a risk; the smaller exposure wins a tie), then clamped to `1..=total-1` so a
///   step always has at least one canary and one stable pod;
/// - `total == 1` cannot have both, so the single stable pod stays and one canary pod is added
///   on top (a surge of one): 1 canary + 1 stable, actual weight 50.
pub fn split(total: i32, weight: i32) -> Split {
    let total = total.max(0);
    let (canary, stable) = if weight <= 0 || total == 0 {
        (0, total)
    } else if weight >= 100 {
        (total, 0)
    } else if total == 1 {
        (1, 1)
    } else {
        // Closest integer, ties down: ceil(x - 0.5) in integer arithmetic.
        let scaled = i64::from(total) * i64::from(weight); // canary * 100
        let nearest = ((scaled * 2 - 100 + 199) / 200) as i32; // ceil((2*scaled - 100) / 200)
        let canary = nearest.clamp(1, total - 1);
        (canary, total - canary)
    };
    Split { canary, stable, actual_weight: actual_weight(canary, stable) }
}

/// Canary pods beside a stable that another actor sizes (a HorizontalPodAutoscaler): the
/// operator never changes the stable, so the weight is `canary / (stable + canary)`.
///
/// The rule:
/// - weight 0 or no stable pods -> no canary;
/// - weights 1..49 -> the integer closest to `stable * w / (100 - w)`, ties going to the smaller,
///   clamped to `1..=stable`;
/// - weights 50..100 -> as many canary pods as stable ones (actual weight 50%): a canary never
///   outnumbers the stable, and the last step's promotion moves everything.
pub fn beside(stable: i32, weight: i32) -> Split {
    let stable = stable.max(0);
    let canary = if weight <= 0 || stable == 0 {
        0
    } else if weight >= 50 {
        stable
    } else {
        // Closest integer, ties down: ceil((2 * stable * w - (100 - w)) / (2 * (100 - w))).
        let num = 2 * i64::from(stable) * i64::from(weight) - i64::from(100 - weight);
        let den = 2 * i64::from(100 - weight);
        let nearest = -((-num).div_euclid(den));
        nearest.clamp(1, i64::from(stable)) as i32
    };
    Split { canary, stable, actual_weight: actual_weight(canary, stable) }
}

/// Percent of running pods that are canaries, rounded half up.
pub fn actual_weight(canary: i32, stable: i32) -> i32 {
    let running = i64::from(canary) + i64::from(stable);
    if running == 0 { 0 } else { ((i64::from(canary) * 200 + running) / (2 * running)) as i32 }
}

/// Connections at the worst moment of a step and of the promotion, for a fleet of `total` pods
/// moving from `old_per_pod` to `new_per_pod` connections per pod.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StepPlan {
    pub weight: i32,
    pub canary_replicas: i32,
    pub stable_replicas: i32,
    pub actual_weight: i32,
    /// Most connections that can exist while entering, holding, or rolling back from this step.
    pub peak_connections: i64,
}

/// The peak of each step.
///
/// The operator scales the canary up before scaling the stable down (availability first), and a
/// rollback scales the stable back to `total` before removing the canary. So while at step k,
/// the worst case is a rollback in flight: `total` old pods plus `canary_k` new pods. Entering
/// the step (`canary_k` new + `stable_{k-1}` old) is never worse, since `stable_{k-1} <= total`,
/// except that the first canary may stand beside the `running` pods the target had before the
/// rollout resized it.
pub fn step_plans(total: i32, running: i32, weights: &[i32], old_per_pod: i64, new_per_pod: i64) -> Vec<StepPlan> {
    weights
        .iter()
        .map(|&weight| {
            let s = split(total, weight);
            let stable_max = i64::from(total.max(running).max(s.stable));
            StepPlan {
                weight,
                canary_replicas: s.canary,
                stable_replicas: s.stable,
                actual_weight: s.actual_weight,
                peak_connections: stable_max * old_per_pod + i64::from(s.canary) * new_per_pod,
            }
        })
        .collect()
}

/// The peak of each step when canary pods run beside a stable of up to `max_stable` pods (an
/// HPA's `maxReplicas`): the stable is never scaled by the operator, so the worst case is the
/// largest stable beside that stable's canary.
pub fn beside_plans(max_stable: i32, weights: &[i32], old_per_pod: i64, new_per_pod: i64) -> Vec<StepPlan> {
    weights
        .iter()
        .map(|&weight| {
            let s = beside(max_stable, weight);
            StepPlan {
                weight,
                canary_replicas: s.canary,
                stable_replicas: s.stable,
                actual_weight: s.actual_weight,
                peak_connections: i64::from(s.stable) * old_per_pod + i64::from(s.canary) * new_per_pod,
            }
        })
        .collect()
}

/// How a rollout sizes its canary.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", tag = "mode")]
pub enum Fleet {
    /// The operator moves replicas from the stable to the canary; `total` stays constant.
    /// `running` is what the target runs before the rollout resizes it (a new generation's tier
    /// replicas): until the stable is scaled, that many old pods stand beside the first canary.
    Split { total: i32, running: i32 },
    /// Another actor (an HPA) sizes the stable, up to `max_stable`; canary pods run beside it.
    #[serde(rename_all = "camelCase")]
    Beside { max_stable: i32 },
}

impl Fleet {
    /// The replicas a plan counts: the fleet, or the most the stable can have.
    pub fn replicas(self) -> i32 {
        match self {
            Fleet::Split { total, .. } => total,
            Fleet::Beside { max_stable } => max_stable,
        }
    }
}

/// Peak during promotion: the target rolls out `total` new pods (plus the Deployment's surge
/// when some of its pods still run the old configuration) while the canary still runs.
pub fn promotion_peak(total: i32, last: &Split, surge: i32, old_per_pod: i64, new_per_pod: i64) -> i64 {
    let surge = if last.stable > 0 { i64::from(surge) } else { 0 };
    let target = (i64::from(total) + surge) * new_per_pod.max(old_per_pod);
    target + i64::from(last.canary) * new_per_pod
}

/// The Deployment's default `maxSurge` of 25%, rounded up, at least one pod.
pub fn default_surge(total: i32) -> i32 {
    ((total + 3) / 4).max(1)
}

/// A Deployment's `maxSurge`: the extra pods its rolling update may run beside the old ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Surge {
    Pods(i32),
    /// Of the replicas, rounded up (as the Deployment controller does).
    Percent(i32),
}

impl Surge {
    pub fn resolve(self, total: i32) -> i32 {
        match self {
            Surge::Pods(n) => n.max(0),
            Surge::Percent(p) => (total * p.max(0) + 99) / 100,
        }
    }
}

/// Whether a plan's peak fits the Redis server.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Budget {
    pub max_clients: Option<i64>,
    /// `floor(maxClients * maxClientsUtilization)`; none without a known `maxclients`.
    pub limit: Option<i64>,
    pub utilization: f64,
    pub peak_connections: i64,
    pub ok: bool,
    /// Why the budget could not be checked (the server could not be asked), if so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unchecked: Option<String>,
    /// Other policies (and unaccounted clients) on the same server: `peak_connections` is then
    /// their sum with this plan's own peak.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<SharedUse>,
    /// The node the budget binds on (the least room), when several hold pools (a cluster, or a
    /// Sentinel master and the replicas the application reads from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Every Redis Cluster node that holds pools, each with its own budget (see `node_budget`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<crate::core::node_budget::NodeBudget>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SharedUse {
    pub own_peak: i64,
    /// How the total adds up, naming the other policies.
    pub breakdown: String,
}

impl Budget {
    pub fn check(peak_connections: i64, max_clients: Option<i64>, utilization: f64) -> Self {
        let limit = max_clients.map(|m| (m as f64 * utilization).floor() as i64);
        Budget {
            max_clients,
            limit,
            utilization,
            peak_connections,
            ok: limit.is_none_or(|l| peak_connections <= l),
            unchecked: None,
            shared: None,
            node: None,
            nodes: Vec::new(),
        }
    }

    /// The budget of one node of several (a Redis Cluster node, each holding every pool).
    pub fn on_node(mut self, node: Option<String>) -> Self {
        self.node = node;
        self
    }

    /// The same server's budget, counting what others on it need too (see `shared_budget`).
    pub fn shared(self, demand: crate::core::shared_budget::Demand) -> Self {
        let own_peak = self.peak_connections;
        if demand.total == own_peak {
            return self;
        }
        Budget {
            shared: Some(SharedUse { own_peak, breakdown: demand.breakdown }),
            node: self.node.clone(),
            nodes: self.nodes.clone(),
            ..Budget::check(demand.total, self.max_clients, self.utilization)
        }
    }

    /// Why the budget refuses, with the numbers, for conditions and events.
    /// A budget that cannot be checked refuses: a rollout never starts on faith.
    pub fn unknown(mut self, why: String) -> Self {
        self.ok = false;
        self.limit = None;
        self.unchecked = Some(why);
        self
    }

    pub fn explain(&self) -> String {
        let over = self.nodes.iter().filter(|n| !n.ok).count();
        match &self.node {
            Some(node) if self.unchecked.is_none() && over > 1 => {
                format!("on node {node}, the tightest of {over} nodes over: {}", self.explain_one())
            }
            Some(node) if self.unchecked.is_none() => {
                format!("on node {node}, the tightest: {}", self.explain_one())
            }
            _ => self.explain_one(),
        }
    }

    fn explain_one(&self) -> String {
        if let Some(why) = &self.unchecked {
            return format!(
                "cannot check the Redis connection budget ({why}); set spec.redis.maxClients or make the server reachable"
            );
        }
        match (self.max_clients, self.limit) {
            (Some(max), Some(limit)) if !self.ok && self.shared.as_ref().is_some_and(|s| s.own_peak <= limit) => {
                let breakdown = self.shared.as_ref().map_or("", |s| s.breakdown.as_str());
                format!(
                    "waiting for room on the Redis server: at this rollout's peak it would hold {} connections \
                     ({breakdown}), over the budget of {limit} ({max} maxclients x {}); it starts by itself when there is room",
                    self.peak_connections, self.utilization
                )
            }
            (Some(max), Some(limit)) if !self.ok => format!(
                "planned peak of {} Redis connections exceeds the budget of {limit} ({max} maxclients x {}); \
                 lower workers, connectionsPerWorker or replicas, or raise maxclients",
                self.peak_connections, self.utilization
            ),
            (Some(_), Some(limit)) => match &self.shared {
                Some(s) => format!(
                    "planned peak of {} connections, with the others on this Redis ({}), fits the budget of {limit}",
                    self.peak_connections, s.breakdown
                ),
                None => format!("planned peak of {} connections fits the budget of {limit}", self.peak_connections),
            },
            _ => format!(
                "planned peak of {} connections; no Redis maxclients known, budget not checked",
                self.peak_connections
            ),
        }
    }
}

/// The full plan of a policy for one environment: what `plan` prints and the controller checks.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutPlan {
    #[serde(flatten)]
    pub pool: PoolPlan,
    pub fleet: Fleet,
    pub steps: Vec<StepPlan>,
    pub promotion_peak_connections: i64,
    /// Pods the target's own rolling update may add during the promotion (its `maxSurge`,
    /// else the default 25%).
    pub promotion_surge: i32,
    pub budget: Budget,
}

impl RolloutPlan {
    /// `old_per_pod` is what the target's pods hold now (the new value when unknown).
    pub fn new(
        spec: &RedisPoolPolicySpec,
        tier: &Tier,
        fleet: Fleet,
        old_per_pod: Option<i64>,
        max_clients: Option<i64>,
        surge: Option<Surge>,
    ) -> Self {
        let total = fleet.replicas();
        let surge = surge.map_or_else(|| default_surge(total), |s| s.resolve(total));
        let pool = PoolPlan::new(tier, total);
        let new = pool.connections_per_pod;
        let old = old_per_pod.unwrap_or(new);
        let weights: Vec<i32> = spec.rollout.steps.iter().map(|s| s.weight).collect();
        let last_weight = weights.last().copied().unwrap_or(100);
        let (steps, last) = match fleet {
            Fleet::Split { running, .. } => (step_plans(total, running, &weights, old, new), split(total, last_weight)),
            Fleet::Beside { .. } => (beside_plans(total, &weights, old, new), beside(total, last_weight)),
        };
        let promotion = promotion_peak(total, &last, surge, old, new);
        let peak = steps.iter().map(|s| s.peak_connections).chain([promotion]).max().unwrap_or(0);
        let utilization = spec.redis.as_ref().map_or(1.0, |r| r.max_clients_utilization);
        let max_clients = max_clients.or(spec.redis.as_ref().and_then(|r| r.max_clients));
        RolloutPlan {
            pool,
            fleet,
            steps,
            promotion_peak_connections: promotion,
            promotion_surge: surge,
            budget: Budget::check(peak, max_clients, utilization),
        }
    }
}

/// Why no tier or fleet size can be chosen for a plan.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error(
        "no environment chosen: set spec.environment, or pass --environment (to plan, or to the operator) (tiers: {0})"
    )]
    NoEnvironment(String),
    #[error(
        "environment {0:?} is not a tier of this policy; tiers: {1} (add the tier, or set spec.environment or \
         --environment to one of these)"
    )]
    UnknownEnvironment(String, String),
    #[error("--replicas must be >= 0, got {0}")]
    BadReplicas(i32),
    #[error("--hpa-max-replicas must be >= 1, got {0}")]
    BadHpaMax(i32),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn runbook_split_for_ten_replicas() {
        let got: Vec<_> = [10, 50, 100].iter().map(|&w| split(10, w)).collect();
        assert_eq!(
            got,
            vec![
                Split { canary: 1, stable: 9, actual_weight: 10 },
                Split { canary: 5, stable: 5, actual_weight: 50 },
                Split { canary: 10, stable: 0, actual_weight: 100 },
            ]
        );
    }

    /// Canary replicas for N in 1..=20 at 10%, 50% and 100%, worked out by hand from the rule.
    #[test]
    fn split_table_for_runbook_weights() {
        #[rustfmt::skip]
        let table: [(i32, [i32; 3]); 20] = [
            (1, [1, 1, 1]), (2, [1, 1, 2]), (3, [1, 1, 3]), (4, [1, 2, 4]), (5, [1, 2, 5]),
            (6, [1, 3, 6]), (7, [1, 3, 7]), (8, [1, 4, 8]), (9, [1, 4, 9]), (10, [1, 5, 10]),
            (11, [1, 5, 11]), (12, [1, 6, 12]), (13, [1, 6, 13]), (14, [1, 7, 14]), (15, [1, 7, 15]),
            (16, [2, 8, 16]), (17, [2, 8, 17]), (18, [2, 9, 18]), (19, [2, 9, 19]), (20, [2, 10, 20]),
        ];
        for (n, expected) in table {
            for (w, want) in [10, 50, 100].into_iter().zip(expected) {
                let s = split(n, w);
                assert_eq!(s.canary, want, "canary for N={n} w={w}");
                let stable_want = if n == 1 && w < 100 { 1 } else { n - want };
                assert_eq!(s.stable, stable_want, "stable for N={n} w={w}");
            }
        }
    }

    #[test]
    fn split_edges() {
        assert_eq!(split(0, 50), Split { canary: 0, stable: 0, actual_weight: 0 });
        assert_eq!(split(10, 0), Split { canary: 0, stable: 10, actual_weight: 0 });
        assert_eq!(split(1, 100), Split { canary: 1, stable: 0, actual_weight: 100 });
        assert_eq!(split(1, 10), Split { canary: 1, stable: 1, actual_weight: 50 });
        // 2.5 -> 2: ties go to fewer canaries; 99% of 10 keeps one stable pod.
        assert_eq!(split(10, 25).canary, 2);
        assert_eq!(split(10, 35).canary, 3);
        assert_eq!(split(10, 99).canary, 9);
        assert_eq!(split(3, 50).canary, 1);
    }

    #[test]
    fn runbook_production_plan() {
        let tier =
            Tier { name: "production".into(), workers: 4, connections_per_worker: 40, replicas: Some(10), gates: None };
        let plan = PoolPlan::new(&tier, 10);
        assert_eq!(plan.connections_per_pod, 160);
        let steps = step_plans(10, 10, &[10, 50, 100], 160, 160);
        assert_eq!(steps.iter().map(|s| s.peak_connections).collect::<Vec<_>>(), vec![1760, 2400, 3200]);
        // Old pods with a smaller pool: the rollback worst case holds 10 old + canaries new.
        let steps = step_plans(10, 10, &[10], 60, 160);
        assert_eq!(steps[0].peak_connections, 10 * 60 + 160);
        assert_eq!(promotion_peak(10, &split(10, 100), 3, 160, 160), 3200);
        assert_eq!(promotion_peak(10, &split(10, 50), 3, 160, 160), 13 * 160 + 5 * 160);
    }

    #[test]
    fn budget_numbers() {
        let b = Budget::check(3200, Some(4000), 0.8);
        assert_eq!((b.limit, b.ok), (Some(3200), true));
        let b = Budget::check(3201, Some(4000), 0.8);
        assert!(!b.ok);
        assert!(
            b.explain().contains("3201") && b.explain().contains("3200") && b.explain().contains("4000"),
            "{}",
            b.explain()
        );
        let b = Budget::check(1_000_000, None, 0.8);
        assert!(b.ok && b.limit.is_none());
    }

    /// Canary pods beside N stable pods at 10%, 25% and 50%, worked out by hand from the rule.
    #[test]
    fn beside_table() {
        #[rustfmt::skip]
        let table: [(i32, [i32; 3]); 8] = [
            (1, [1, 1, 1]), (2, [1, 1, 2]), (4, [1, 1, 4]), (5, [1, 2, 5]),
            (10, [1, 3, 10]), (12, [1, 4, 12]), (14, [2, 5, 14]), (20, [2, 7, 20]),
        ];
        for (n, expected) in table {
            for (w, want) in [10, 25, 50].into_iter().zip(expected) {
                let s = beside(n, w);
                assert_eq!((s.canary, s.stable), (want, n), "N={n} w={w}");
            }
        }
        assert_eq!(beside(10, 100), Split { canary: 10, stable: 10, actual_weight: 50 }, "never outnumbers the stable");
        assert_eq!(beside(0, 10).canary, 0);
        assert_eq!(beside(10, 0).canary, 0);
        // 10 beside 10 at 10%: 10/9 = 1.1 -> 1 canary, actual 1/11 = 9%.
        assert_eq!(beside(10, 10).actual_weight, 9);
    }

    /// Beside an HPA's stable, the promotion runs the target's rolling update while old pods
    /// remain: a target that surges 100% doubles its pods for a while, and the peak says so.
    #[test]
    fn the_promotion_peak_counts_the_targets_own_surge() {
        let tier =
            Tier { name: "production".into(), workers: 4, connections_per_worker: 40, replicas: None, gates: None };
        let spec: RedisPoolPolicySpec = serde_json::from_value(serde_json::json!({
            "targetRef": {"name": "auth-api"}, "tiers": [{"name": "production", "workers": 4, "connectionsPerWorker": 40}]
        }))
        .unwrap();
        let fleet = Fleet::Beside { max_stable: 20 };
        let default = RolloutPlan::new(&spec, &tier, fleet, None, None, None);
        let doubling = RolloutPlan::new(&spec, &tier, fleet, None, None, Some(Surge::Percent(100)));
        assert_eq!((default.promotion_surge, doubling.promotion_surge), (5, 20));
        // 15 more pods of 160 connections each.
        assert_eq!(doubling.promotion_peak_connections - default.promotion_peak_connections, 15 * 160);
    }

    #[test]
    fn an_hpa_plan_counts_max_replicas() {
        let tier =
            Tier { name: "production".into(), workers: 4, connections_per_worker: 40, replicas: None, gates: None };
        let spec: RedisPoolPolicySpec = serde_json::from_value(serde_json::json!({
            "targetRef": {"name": "auth-api"},
            "tiers": [{"name": "production", "workers": 4, "connectionsPerWorker": 40}],
            "redis": {"address": "redis:6379", "maxClientsUtilization": 0.8}
        }))
        .unwrap();
        let plan = RolloutPlan::new(&spec, &tier, Fleet::Beside { max_stable: 20 }, Some(60), Some(10_000), None);
        let got: Vec<(i32, i32, i64)> =
            plan.steps.iter().map(|s| (s.canary_replicas, s.stable_replicas, s.peak_connections)).collect();
        // 10%: 20 x 60 + 2 x 160; 50%: 20 x 60 + 20 x 160; 100%: the same beside-the-stable peak.
        assert_eq!(got, vec![(2, 20, 1520), (20, 20, 4400), (20, 20, 4400)]);
        // Promotion: 20 + 5 surge pods at the larger pool, beside the 20 canary pods.
        assert_eq!(plan.promotion_peak_connections, 25 * 160 + 20 * 160);
        assert_eq!(plan.budget.peak_connections, 7200);
        assert_eq!(plan.budget.limit, Some(8000));
        assert!(plan.budget.ok);
    }

    proptest! {
        #[test]
        fn beside_keeps_the_stable_and_stays_close(stable in 0i32..300, weight in 0i32..=100) {
            let s = beside(stable, weight);
            prop_assert_eq!(s.stable, stable);
            prop_assert!(s.canary >= 0 && s.canary <= stable, "the canary never outnumbers the stable");
            if stable >= 1 && (1..50).contains(&weight) {
                prop_assert!(s.canary >= 1);
                let want = f64::from(stable) * f64::from(weight) / f64::from(100 - weight);
                let err = (f64::from(s.canary) - want).abs();
                for c in 1..=stable {
                    prop_assert!(err <= (f64::from(c) - want).abs() + 1e-9, "N={} w={} picked {} but {} is closer", stable, weight, s.canary, c);
                }
            }
            prop_assert!(beside(stable, weight).canary <= beside(stable, (weight + 1).min(100)).canary, "monotonic in weight");
        }

        #[test]
        fn split_conserves_and_stays_close(total in 0i32..500, weight in 0i32..=100) {
            let s = split(total, weight);
            prop_assert!(s.canary >= 0 && s.stable >= 0);
            if total == 1 && (1..100).contains(&weight) {
                prop_assert_eq!((s.canary, s.stable), (1, 1));
            } else {
                prop_assert_eq!(s.canary + s.stable, total);
            }
            if total >= 2 && (1..100).contains(&weight) {
                prop_assert!(s.canary >= 1 && s.stable >= 1);
                // No other split in 1..total-1 is closer to the requested share.
                let want = f64::from(total) * f64::from(weight) / 100.0;
                let err = (f64::from(s.canary) - want).abs();
                for c in 1..total {
                    prop_assert!(err <= (f64::from(c) - want).abs() + 1e-9, "N={} w={} picked {} but {} is closer", total, weight, s.canary, c);
                }
            }
        }

        #[test]
        fn split_is_monotonic_in_weight(total in 0i32..200, a in 0i32..=100, b in 0i32..=100) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(split(total, lo).canary <= split(total, hi).canary);
        }

        #[test]
        fn peaks_cover_every_pod_that_can_coexist(total in 1i32..100, old in 1i64..500, new in 1i64..500) {
            for s in step_plans(total, total, &[10, 50, 100], old, new) {
                prop_assert!(s.peak_connections >= i64::from(s.canary_replicas) * new + i64::from(s.stable_replicas) * old);
                prop_assert!(s.peak_connections >= i64::from(total) * old.min(new));
            }
        }
    }
}
