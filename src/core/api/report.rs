//! Types the status publishes from the pure core: gate verdicts and the pool plan. They live
//! here so that `api` depends on nothing else in the crate.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Tier;

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Hold,
    Fail,
    NoData,
    /// The environment is at fault (the stable suffered alike, or the Redis server went away
    /// or changed): neither evidence against the configuration nor for it.
    Inconclusive,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Gate {
    SuccessRate,
    P95LatencyMs,
    PoolUtilization,
    PoolExhaustionEvents,
    RedisConnectionErrors,
}

impl Gate {
    pub const ALL: [Gate; 5] = [
        Gate::SuccessRate,
        Gate::P95LatencyMs,
        Gate::PoolUtilization,
        Gate::PoolExhaustionEvents,
        Gate::RedisConnectionErrors,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Gate::SuccessRate => "successRate",
            Gate::P95LatencyMs => "p95LatencyMs",
            Gate::PoolUtilization => "poolUtilization",
            Gate::PoolExhaustionEvents => "poolExhaustionEvents",
            Gate::RedisConnectionErrors => "redisConnectionErrors",
        }
    }
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GateResult {
    pub gate: Gate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    pub verdict: Verdict,
    pub message: String,
    /// The stable's value over the same interval, when it was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable: Option<f64>,
    /// The gate runs dry: its verdict is shown, never counted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// One tier's pool, per worker, per pod and for the fleet.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PoolPlan {
    pub tier: String,
    pub workers: i32,
    pub connections_per_worker: i32,
    pub connections_per_pod: i64,
    pub replicas: i32,
}

impl PoolPlan {
    /// Connections the fleet holds when nothing rolls out.
    pub fn steady_connections(&self) -> i64 {
        self.connections_per_pod * i64::from(self.replicas)
    }

    pub fn new(tier: &Tier, replicas: i32) -> Self {
        Self {
            tier: tier.name.clone(),
            workers: tier.workers,
            connections_per_worker: tier.connections_per_worker,
            connections_per_pod: i64::from(tier.workers) * i64::from(tier.connections_per_worker),
            replicas,
        }
    }
}
