//! The `RedisPoolPolicy` spec: what a user declares.
//!
//! Every admission rule is a CEL rule (`x-kubernetes-validations`) on the type it constrains, so
//! the API server and `redis-pool-operator plan` evaluate the very same rules with the very same
//! messages (see [`super::validation`]). Schema-only constraints (`minimum`, `enum`) are avoided
//! for anything a person can get wrong, because their messages are not ours.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::status::RedisPoolPolicyStatus;
use super::{
    AnalysisSpec, ApprovalSpec, CountGate, FreezeWindow, LatencyGate, MetricsSpec, Subscription, SuccessRateGate,
    UtilizationGate, defaults,
};

/// A tier's relative bounds need the stable measured, like the policy's.
const TIER_RELATIVE_NEEDS_STABLE: &str = "!has(self.rollout) || !has(self.rollout.analysis) || \
    !has(self.rollout.analysis.baseline) || self.rollout.analysis.baseline == 'Stable' || \
    self.tiers.all(t, !has(t.gates) || ((!has(t.gates.successRate) || !has(t.gates.successRate.maxBelowStable)) && \
    (!has(t.gates.p95LatencyMs) || !has(t.gates.p95LatencyMs.maxAboveStablePercent)) && \
    (!has(t.gates.poolUtilization) || !has(t.gates.poolUtilization.maxAboveStable))))";

/// Declares per-environment Redis pool sizes for a Deployment and how a change rolls out.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "redispool.io",
    version = "v1alpha1",
    kind = "RedisPoolPolicy",
    plural = "redispoolpolicies",
    shortname = "rpp",
    namespaced,
    status = "RedisPoolPolicyStatus",
    cel,
    printcolumn = r#"{"name":"Environment","type":"string","jsonPath":".status.environment"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Step","type":"string","jsonPath":".status.progress"}"#,
    printcolumn = r#"{"name":"Weight","type":"integer","jsonPath":".status.weight"}"#,
    printcolumn = r#"{"name":"Canary","type":"string","jsonPath":".status.replicas.summary"}"#,
    printcolumn = r#"{"name":"Waiting","type":"string","jsonPath":".status.waitingFor"}"#,
    printcolumn = r#"{"name":"Advice","type":"string","priority":1,"jsonPath":".status.advice.message"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.environment) || self.tiers.exists(t, t.name == self.environment)")
    .message("spec.environment must name one of spec.tiers[].name; add that tier or fix the name")
    .field_path(".environment"))]
#[x_kube(validation = Rule::new(TIER_RELATIVE_NEEDS_STABLE)
    .message("spec.tiers[].gates bound the canary relative to the stable (maxBelowStable, maxAboveStablePercent, \
              maxAboveStable) but spec.rollout.analysis.baseline is None: set it to Stable or remove the bounds"))]
pub struct RedisPoolPolicySpec {
    /// The Deployment (same namespace) whose pool settings this policy manages.
    pub target_ref: TargetRef,
    /// Which tier applies. Defaults to the operator's `--environment`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub environment: Option<String>,
    /// Pool sizes per environment.
    #[x_kube(validation = Rule::new("size(self) >= 1").message("spec.tiers needs at least one tier"))]
    #[x_kube(validation = Rule::new("self.all(a, self.exists_one(b, b.name == a.name))")
        .message("spec.tiers[].name must be unique; rename or remove the duplicate tier"))]
    #[schemars(length(max = 16))]
    pub tiers: Vec<Tier>,
    /// Connection behaviour shared by every tier.
    #[serde(default)]
    pub pool: PoolSettings,
    /// The Redis server: its `maxclients` is the connection budget, its stats a health signal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisSettings>,
    /// How a new pool configuration is rolled out.
    #[serde(default)]
    pub rollout: RolloutSpec,
    /// What a rollout waits for before it starts (another environment's verdict), and how long
    /// this policy watches its own promotions.
    #[serde(default)]
    pub promotion: PromotionSpec,
    /// Names of the env vars the operator owns in the target container.
    #[serde(default)]
    pub env_names: EnvNames,
    /// Freeze everything: no writes to the target or canary while true.
    #[serde(default)]
    pub suspend: bool,
    /// Who is told about this policy's transitions, besides the operator's cluster-wide
    /// destinations. URLs and keys come from Secrets in the policy's namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(a, self.exists_one(b, b.name == a.name))")
        .message("spec.notifications[].name must be unique; rename or remove the duplicate destination"))]
    #[schemars(length(max = 8))]
    pub notifications: Vec<Subscription>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    /// Name of an apps/v1 Deployment in the policy's namespace.
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')")
        .message("spec.targetRef.name must be a Deployment name (lowercase letters, digits, '-' and '.')"))]
    #[schemars(length(max = 253))]
    pub name: String,
    /// The container that holds the pool. Defaults to the first container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub container: Option<String>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Tier {
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')")
        .message("spec.tiers[].name must be lowercase letters, digits and '-', like 'production'"))]
    #[schemars(length(max = 63))]
    pub name: String,
    /// Worker processes per pod, each with its own pool.
    #[x_kube(validation = Rule::new("self >= 1 && self <= 1024").message("spec.tiers[].workers must be between 1 and 1024"))]
    pub workers: i32,
    /// Pool size (max connections) of each worker.
    #[x_kube(validation = Rule::new("self >= 1 && self <= 100000")
        .message("spec.tiers[].connectionsPerWorker must be between 1 and 100000"))]
    pub connections_per_worker: i32,
    /// Replicas of the Deployment in this tier. Defaults to the Deployment's own replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0 && self <= 10000").message("spec.tiers[].replicas must be between 0 and 10000"))]
    pub replicas: Option<i32>,
    /// This environment's own gate thresholds (the runbook's staging asks pool utilization
    /// below 50%, production below 60%). A gate given here replaces the policy's
    /// `spec.rollout.analysis` gate whole; gates not given keep the policy's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gates: Option<TierGates>,
}

/// Per-tier gate thresholds, validated by the same rules as `spec.rollout.analysis`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TierGates {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rate: Option<SuccessRateGate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_latency_ms: Option<LatencyGate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_utilization: Option<UtilizationGate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_exhaustion_events: Option<CountGate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_connection_errors: Option<CountGate>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PoolSettings {
    #[serde(default = "defaults::health_check_interval_seconds")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 3600")
        .message("spec.pool.healthCheckIntervalSeconds must be between 1 and 3600"))]
    pub health_check_interval_seconds: i32,
    #[serde(default)]
    pub retry: RetrySettings,
    #[serde(default = "defaults::timeout_seconds")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 300").message("spec.pool.socketTimeoutSeconds must be between 1 and 300"))]
    pub socket_timeout_seconds: i32,
    #[serde(default = "defaults::timeout_seconds")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 300")
        .message("spec.pool.connectTimeoutSeconds must be between 1 and 300"))]
    pub connect_timeout_seconds: i32,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            health_check_interval_seconds: 30,
            retry: RetrySettings::default(),
            socket_timeout_seconds: 5,
            connect_timeout_seconds: 5,
        }
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.maxBackoffMs >= self.initialBackoffMs")
    .message("spec.pool.retry.maxBackoffMs must be >= initialBackoffMs"))]
pub struct RetrySettings {
    #[serde(default = "defaults::retry_attempts")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 10").message("spec.pool.retry.attempts must be between 1 and 10"))]
    pub attempts: i32,
    #[serde(default = "defaults::initial_backoff_ms")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 60000")
        .message("spec.pool.retry.initialBackoffMs must be between 1 and 60000"))]
    pub initial_backoff_ms: i32,
    #[serde(default = "defaults::max_backoff_ms")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 600000")
        .message("spec.pool.retry.maxBackoffMs must be between 1 and 600000"))]
    pub max_backoff_ms: i32,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self { attempts: 3, initial_backoff_ms: 100, max_backoff_ms: 2000 }
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.tlsOptions) || self.tls")
    .message("spec.redis.tlsOptions is set but spec.redis.tls is false; set tls: true or remove tlsOptions")
    .field_path(".tlsOptions"))]
#[x_kube(validation = Rule::new("!has(self.topology) || self.topology != 'Proxy' || has(self.maxClients)")
    .message("spec.redis.maxClients is required with topology: Proxy: the proxy's client limit is the budget (a proxy does not say it)"))]
#[x_kube(validation = Rule::new("!has(self.readFromReplicas) || !self.readFromReplicas || (has(self.topology) && (self.topology == 'Cluster' || self.topology == 'Sentinel'))")
    .message("spec.redis.readFromReplicas is for topology: Cluster or Sentinel, whose replicas the operator finds and budgets; a standalone server or a proxy has none to find"))]
#[x_kube(validation = Rule::new("!has(self.seeds) || size(self.seeds) == 0 || (has(self.topology) && self.topology == 'Cluster')")
    .message("spec.redis.seeds are a cluster's nodes: set topology: Cluster, or remove seeds"))]
#[x_kube(validation = Rule::new("!has(self.clusterPools) || (has(self.topology) && self.topology == 'Cluster')")
    .message("spec.redis.clusterPools is for topology: Cluster (how a cluster client's pool maps to the nodes); remove it or set topology: Cluster"))]
#[x_kube(validation = Rule::new("has(self.topology) && self.topology == 'Sentinel' ? has(self.sentinel) : !has(self.sentinel)")
    .message("spec.redis.sentinel goes with topology: Sentinel (the sentinels' masterName); set both or neither"))]
pub struct RedisSettings {
    /// `host:port` of the Redis server, as the operator can reach it.
    #[x_kube(validation = Rule::new("self.matches('^[^:/\\\\s]+:[0-9]{1,5}$')")
        .message("spec.redis.address must be host:port, like redis.saas.svc:6379"))]
    #[schemars(length(max = 255))]
    pub address: String,
    /// Secret key holding the Redis password. Never logged or echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
    /// ACL user to authenticate as (`AUTH username password`); the `default` user when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub username: Option<String>,
    /// Speak TLS to the server (rustls). The server's certificate is verified against
    /// `tlsOptions.caRef`, else the system roots.
    #[serde(default)]
    pub tls: bool,
    /// How to verify the server, and the client certificate for mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_options: Option<RedisTlsOptions>,
    /// Planned peak connections must stay within this fraction of `maxclients`.
    #[serde(default = "defaults::max_clients_utilization")]
    #[x_kube(validation = Rule::new("self > 0.0 && self <= 1.0")
        .message("spec.redis.maxClientsUtilization must be in (0, 1], e.g. 0.8 for 80% of maxclients"))]
    pub max_clients_utilization: f64,
    /// Policies with the same `budgetGroup` share one budget (one Redis server behind different
    /// addresses). Without it, policies share a budget when their `address` is the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub budget_group: Option<String>,
    /// Use this `maxclients` instead of asking the server (for servers that forbid CONFIG GET).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1").message("spec.redis.maxClients must be >= 1"))]
    pub max_clients: Option<i64>,
    /// What `address` is: one server (`Standalone`), or a seed node of a Redis Cluster
    /// (`Cluster`), whose nodes the operator discovers at each probe. Cluster clients keep a pool
    /// per node, so every node that serves the application holds the whole fleet's pools, each
    /// against its own `maxclients`: the budget must hold on every one.
    #[serde(default)]
    pub topology: RedisTopology,
    /// With `topology: Cluster`: more seed nodes, asked in turn when `address` does not answer
    /// (after them, every node a probe has seen in the cluster).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(max = 255)))]
    #[x_kube(validation = Rule::new("self.all(s, s.matches('^[^:/\\\\s]+:[0-9]{1,5}$'))")
        .message("spec.redis.seeds must be host:port each, like redis-cluster-1.saas.svc:6379"))]
    pub seeds: Vec<String>,
    /// Replicas hold pools too, and are budgeted like masters: clients that read from replicas,
    /// and clients that link to every node whatever they read (redis-rs's cluster client does).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_from_replicas: bool,
    /// With `topology: Cluster`: how the application's pool maps to the nodes. `PerNode` (the
    /// default: go-redis, Jedis, redis-py-cluster keep a pool per node) puts the whole pool on
    /// every node; `Spread` (one pool spread over the nodes) puts an even share on each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_pools: Option<ClusterPools>,
    /// With `topology: Sentinel`: which master the sentinels watch, and how to ask them.
    /// `address` is then a sentinel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentinel: Option<SentinelSettings>,
}

/// How to find the master through Redis Sentinel.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SentinelSettings {
    /// The name the sentinels monitor the master under (`sentinel monitor <name> ...`).
    #[x_kube(validation = Rule::new("size(self) >= 1").message("spec.redis.sentinel.masterName must not be empty"))]
    #[schemars(length(max = 253))]
    pub master_name: String,
    /// More sentinels, `host:port`, asked in turn when `address` does not answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub addresses: Vec<String>,
    /// The sentinels' own ACL user and password, when they require one (`requirepass` on the
    /// sentinels is separate from the servers').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
}

/// How a cluster client's pool maps to the nodes.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClusterPools {
    /// A pool per node: every node holds pods x workers x connections.
    #[default]
    PerNode,
    /// One pool spread over the nodes: each holds its even share (rounded up).
    Spread,
}

/// What `spec.redis.address` is.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RedisTopology {
    #[default]
    Standalone,
    Cluster,
    /// `address` is a sentinel: the budget is checked on the master it names now, and a
    /// failover moves it (and the pools) to the new one at the next probe.
    Sentinel,
    /// `address` is a proxy (twemproxy, Envoy's Redis proxy, Redis Enterprise's): the pools
    /// connect to it, and the budget is its client limit (`maxClients`, required). The proxy's
    /// own connections to the servers behind it do not follow the pool size and are not checked.
    Proxy,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RedisTlsOptions {
    /// The CA bundle (PEM) that signed the server's certificate, from a Secret or a ConfigMap in
    /// the policy's namespace. The system roots when unset (managed Redis with public CAs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_ref: Option<CaRef>,
    /// The name the server's certificate must carry, when it differs from the host of
    /// `address` (an IP address, or a name only the certificate knows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub server_name: Option<String>,
    /// A `kubernetes.io/tls` Secret (`tls.crt`, `tls.key`) the operator presents for mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub client_cert_secret: Option<String>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.secret) != has(self.configMap)")
    .message("spec.redis.tlsOptions.caRef needs exactly one of secret or configMap"))]
pub struct CaRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub config_map: Option<String>,
    /// The key holding the PEM bundle.
    #[serde(default = "ca_crt")]
    #[schemars(length(max = 253))]
    pub key: String,
}

fn ca_crt() -> String {
    "ca.crt".into()
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    #[schemars(length(max = 253))]
    pub name: String,
    #[schemars(length(max = 253))]
    pub key: String,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.approvals) || self.approvals.all(a, !a.before.matches('^step-[0-9]+$') || int(a.before.substring(5)) <= size(self.steps))")
    .message("spec.rollout.approvals[].before names a step that spec.rollout.steps does not have; steps count from 1, so with 3 steps use step-2 or step-3")
    .field_path(".approvals"))]
pub struct RolloutSpec {
    #[serde(default = "default_steps")]
    #[x_kube(validation = Rule::new("size(self) >= 1").message("spec.rollout.steps needs at least one step, and the last must have weight 100"))]
    #[x_kube(validation = Rule::new("size(self) == 0 || self[size(self) - 1].weight == 100")
        .message("spec.rollout.steps must end with weight 100 so that a rollout completes"))]
    #[x_kube(validation = Rule::new("self.all(a, self.exists_one(b, b.weight == a.weight)) && self.map(s, s.weight).isSorted()")
        .message("spec.rollout.steps weights must be strictly increasing, e.g. 10, 50, 100"))]
    #[schemars(length(max = 20))]
    pub steps: Vec<Step>,
    #[serde(default)]
    pub analysis: AnalysisSpec,
    #[serde(default)]
    pub metrics: MetricsSpec,
    /// Times when no rollout starts and no step advances or promotes (a rollback always may),
    /// besides the operator's cluster-wide windows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(a, self.exists_one(b, b.name == a.name))")
        .message("spec.rollout.freezeWindows[].name must be unique; rename or remove the duplicate window"))]
    #[schemars(length(max = 16))]
    pub freeze_windows: Vec<FreezeWindow>,
    /// Gates a person or a webhook must open: before the rollout starts, before a step, before
    /// the promotion. Soaking and analyses go on while a gate waits (a failing canary still
    /// rolls back), and waiting never counts against `progressDeadline`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(a, self.exists_one(b, b.before == a.before && b.by == a.by && (a.by == 'Person' || !has(a.webhook) || !has(b.webhook) || b.webhook.urlSecretRef.name == a.webhook.urlSecretRef.name)))")
        .message("spec.rollout.approvals lists the same approval twice (webhooks are told apart by their Secret's name); remove the duplicate"))]
    #[schemars(length(max = 16))]
    pub approvals: Vec<ApprovalSpec>,
    /// A return to one of the last `revisions` configurations that succeeded (an undo) skips the
    /// steps and soaks, and any freeze window: it is written into the target at once, within the
    /// Redis budget. Like Argo Rollouts' `rollbackWindow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_window: Option<RollbackWindow>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RollbackWindow {
    #[x_kube(validation = Rule::new("self >= 1 && self <= 5")
        .message("spec.rollout.rollbackWindow.revisions must be between 1 and 5 (status keeps the last 5 that succeeded)"))]
    pub revisions: i32,
}

impl Default for RolloutSpec {
    fn default() -> Self {
        Self {
            steps: default_steps(),
            analysis: AnalysisSpec::default(),
            metrics: MetricsSpec::default(),
            freeze_windows: Vec::new(),
            approvals: Vec::new(),
            rollback_window: None,
        }
    }
}

/// The runbook's 10% (8h), 50% (12h), 100% (24h).
fn default_steps() -> Vec<Step> {
    [(10, "8h"), (50, "12h"), (100, "24h")]
        .into_iter()
        .map(|(weight, pause)| Step { weight, pause: pause.into() })
        .collect()
}

/// Staging proves it first: verdicts this policy needs, and the soak of its own.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PromotionSpec {
    /// After a promotion, analyses keep watching the target's pods this long: the verdict's clean
    /// soak grows while they pass, and a failure marks the verdict Failed (never rolls back).
    /// `0s` stops watching at the promotion.
    #[serde(default = "defaults::promotion_soak")]
    #[x_kube(validation = Rule::new(DURATION_RULE).message("spec.promotion.soak must be a duration like 24h"))]
    #[schemars(length(max = 32))]
    pub soak: String,
    /// Verdicts that must be in before a rollout starts, and stay good while it steps on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub requires: Vec<Requirement>,
}

impl Default for PromotionSpec {
    fn default() -> Self {
        Self { soak: defaults::promotion_soak(), requires: Vec::new() }
    }
}

/// Another policy's verdict on the same worker pool, in one of its environments.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Requirement {
    /// The tier the verdict must come from, like `staging`.
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')")
        .message("spec.promotion.requires[].environment must be a tier name, like 'staging'"))]
    #[schemars(length(max = 63))]
    pub environment: String,
    /// How long the verdict must have soaked cleanly after its promotion.
    #[serde(default = "defaults::no_pause")]
    #[x_kube(validation = Rule::new(DURATION_RULE)
        .message("spec.promotion.requires[].soak must be a duration like 24h"))]
    #[schemars(length(max = 32))]
    pub soak: String,
    /// The policy whose verdict counts.
    pub from: PolicyRef,
}

/// A RedisPoolPolicy in this cluster, or in another one through a kubeconfig.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRef {
    /// Its namespace; this policy's when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')")
        .message("spec.promotion.requires[].from.namespace must be a namespace name"))]
    #[schemars(length(max = 63))]
    pub namespace: Option<String>,
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')")
        .message("spec.promotion.requires[].from.name must be a RedisPoolPolicy name"))]
    #[schemars(length(max = 253))]
    pub name: String,
    /// Another cluster: a Secret in this policy's namespace holding a kubeconfig for it. Reading
    /// `redispoolpolicies` there is all it needs (see the README for the Role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig_secret_ref: Option<SecretKeyRef>,
}

impl PolicyRef {
    /// `namespace/name`, in `ns` when the reference names no namespace.
    pub fn at(&self, ns: &str) -> String {
        format!("{}/{}", self.namespace.as_deref().unwrap_or(ns), self.name)
    }
}

/// Go-style durations: `30s`, `5m`, `1h30m`, `500ms`.
pub const DURATION_RULE: &str = "self.matches('^([0-9]+(ns|us|ms|s|m|h))+$')";

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    /// Percent of replicas that run the new configuration at this step.
    #[x_kube(validation = Rule::new("self >= 1 && self <= 100").message("spec.rollout.steps[].weight must be between 1 and 100"))]
    pub weight: i32,
    /// How long to soak at this step before advancing.
    #[serde(default = "defaults::no_pause")]
    #[x_kube(validation = Rule::new(DURATION_RULE)
        .message("spec.rollout.steps[].pause must be a duration like 30s, 10m or 8h"))]
    #[schemars(length(max = 32))]
    pub pause: String,
}

/// The env vars the operator owns in the target container; rename them to fit an existing app.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EnvNames {
    #[serde(default = "defaults::env_environment")]
    pub environment: String,
    #[serde(default = "defaults::env_workers")]
    pub workers: String,
    #[serde(default = "defaults::env_max_connections")]
    pub max_connections: String,
    #[serde(default = "defaults::env_health_check_interval")]
    pub health_check_interval: String,
    #[serde(default = "defaults::env_retry_attempts")]
    pub retry_attempts: String,
    #[serde(default = "defaults::env_retry_backoff_ms")]
    pub retry_backoff_ms: String,
    #[serde(default = "defaults::env_retry_backoff_max_ms")]
    pub retry_backoff_max_ms: String,
    #[serde(default = "defaults::env_socket_timeout")]
    pub socket_timeout: String,
    #[serde(default = "defaults::env_socket_connect_timeout")]
    pub socket_connect_timeout: String,
}

impl Default for EnvNames {
    fn default() -> Self {
        Self {
            environment: defaults::env_environment(),
            workers: defaults::env_workers(),
            max_connections: defaults::env_max_connections(),
            health_check_interval: defaults::env_health_check_interval(),
            retry_attempts: defaults::env_retry_attempts(),
            retry_backoff_ms: defaults::env_retry_backoff_ms(),
            retry_backoff_max_ms: defaults::env_retry_backoff_max_ms(),
            socket_timeout: defaults::env_socket_timeout(),
            socket_connect_timeout: defaults::env_socket_connect_timeout(),
        }
    }
}
