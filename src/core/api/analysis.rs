//! How a canary is judged (`spec.rollout.analysis`, `spec.rollout.metrics`): the analysis's
//! interval and limits, the gates with their promote and rollback thresholds, and where the
//! measurements come from.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::defaults;
use super::spec::DURATION_RULE;

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(RELATIVE_NEEDS_STABLE[0].0).message(RELATIVE_NEEDS_STABLE[0].1))]
#[x_kube(validation = Rule::new(RELATIVE_NEEDS_STABLE[1].0).message(RELATIVE_NEEDS_STABLE[1].1))]
#[x_kube(validation = Rule::new(RELATIVE_NEEDS_STABLE[2].0).message(RELATIVE_NEEDS_STABLE[2].1))]
pub struct AnalysisSpec {
    #[serde(default = "defaults::analysis_interval")]
    #[x_kube(validation = Rule::new(DURATION_RULE).message("spec.rollout.analysis.interval must be a duration like 30s"))]
    #[schemars(length(max = 32))]
    pub interval: String,
    /// Consecutive failing analyses that trigger a rollback.
    #[serde(default = "defaults::failure_limit")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 100")
        .message("spec.rollout.analysis.failureLimit must be between 1 and 100"))]
    pub failure_limit: i32,
    /// Roll back when a step has not advanced for this long after its pause.
    #[serde(default = "defaults::progress_deadline")]
    #[x_kube(validation = Rule::new(DURATION_RULE)
        .message("spec.rollout.analysis.progressDeadline must be a duration like 1h"))]
    #[schemars(length(max = 32))]
    pub progress_deadline: String,
    /// Fewer requests than this in an interval means no data for the rate and latency gates.
    #[serde(default = "defaults::min_requests")]
    #[x_kube(validation = Rule::new("self >= 0").message("spec.rollout.analysis.minRequests must be >= 0"))]
    pub min_requests: i64,
    #[serde(default)]
    pub on_no_data: OnNoData,
    /// What the canary is judged beside: `Stable` measures the stable pods over the same
    /// interval, so that a fault they share is the environment's (Inconclusive), and relative
    /// bounds have something to compare with. `None` judges the canary alone.
    #[serde(default)]
    pub baseline: AnalysisBaseline,
    /// How sure a comparison with the stable must be before it decides, in percent (one-sided).
    #[serde(default = "defaults::confidence")]
    #[x_kube(validation = Rule::new("self >= 50.0 && self < 100.0")
        .message("spec.rollout.analysis.confidence is a percentage in 50..100, like 95"))]
    pub confidence: f64,
    #[serde(default)]
    pub success_rate: SuccessRateGate,
    #[serde(default)]
    pub p95_latency_ms: LatencyGate,
    #[serde(default)]
    pub pool_utilization: UtilizationGate,
    #[serde(default)]
    pub pool_exhaustion_events: CountGate,
    #[serde(default)]
    pub redis_connection_errors: CountGate,
}

impl Default for AnalysisSpec {
    fn default() -> Self {
        Self {
            interval: "30s".into(),
            failure_limit: 2,
            progress_deadline: "1h".into(),
            min_requests: 100,
            on_no_data: OnNoData::Hold,
            baseline: AnalysisBaseline::Stable,
            confidence: defaults::confidence(),
            success_rate: SuccessRateGate::default(),
            p95_latency_ms: LatencyGate::default(),
            pool_utilization: UtilizationGate::default(),
            pool_exhaustion_events: CountGate::default(),
            redis_connection_errors: CountGate::default(),
        }
    }
}

/// A relative bound compares the canary with the stable: without `baseline: Stable` there is
/// nothing to compare with. (CEL rule, message; `plan` says the same.)
pub const RELATIVE_NEEDS_STABLE: [(&str, &str); 3] = [
    (
        "!has(self.baseline) || self.baseline == 'Stable' || !has(self.successRate) || !has(self.successRate.maxBelowStable)",
        "successRate.maxBelowStable compares the canary with the stable: set baseline: Stable or remove the bound",
    ),
    (
        "!has(self.baseline) || self.baseline == 'Stable' || !has(self.p95LatencyMs) || !has(self.p95LatencyMs.maxAboveStablePercent)",
        "p95LatencyMs.maxAboveStablePercent compares the canary with the stable: set baseline: Stable or remove the bound",
    ),
    (
        "!has(self.baseline) || self.baseline == 'Stable' || !has(self.poolUtilization) || !has(self.poolUtilization.maxAboveStable)",
        "poolUtilization.maxAboveStable compares the canary with the stable: set baseline: Stable or remove the bound",
    ),
];

/// What the canary is judged beside.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AnalysisBaseline {
    /// The stable pods, measured over the same interval by the same provider.
    #[default]
    Stable,
    /// Nothing: absolute thresholds only, and no fault is recognised as the environment's.
    #[serde(rename = "None")]
    Nothing,
}

/// What a gate without data means. Never Pass.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OnNoData {
    #[default]
    Hold,
    Fail,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.promoteAtLeast >= self.rollbackBelow")
    .message("successRate.promoteAtLeast must be >= rollbackBelow (promote needs the healthier value)"))]
pub struct SuccessRateGate {
    #[serde(default = "defaults::success_rate_promote")]
    #[x_kube(validation = Rule::new("self >= 0.0 && self <= 100.0").message("successRate thresholds are percentages in 0..100"))]
    pub promote_at_least: f64,
    #[serde(default = "defaults::success_rate_rollback")]
    #[x_kube(validation = Rule::new("self >= 0.0 && self <= 100.0").message("successRate thresholds are percentages in 0..100"))]
    pub rollback_below: f64,
    /// Fail when the canary's rate is below the stable's by more than this many percentage
    /// points, at `confidence`; until the requests say either way, hold (status says how many
    /// more it needs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0.0 && self <= 100.0")
        .message("successRate.maxBelowStable is percentage points above 0 and at most 100, like 0.5 (0 could never be shown)"))]
    pub max_below_stable: Option<f64>,
    /// Measured, recorded and shown like any other gate, but never deciding: how a new gate or
    /// threshold is calibrated on real traffic before it counts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

impl Default for SuccessRateGate {
    fn default() -> Self {
        Self { promote_at_least: 99.5, rollback_below: 99.0, max_below_stable: None, dry_run: false }
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.promoteAtMost <= self.rollbackAbove")
    .message("p95LatencyMs.promoteAtMost must be <= rollbackAbove (promote needs the faster value)"))]
pub struct LatencyGate {
    #[serde(default = "defaults::p95_latency_promote_ms")]
    #[x_kube(validation = Rule::new("self > 0.0").message("p95LatencyMs thresholds must be > 0 milliseconds"))]
    pub promote_at_most: f64,
    #[serde(default = "defaults::p95_latency_rollback_ms")]
    #[x_kube(validation = Rule::new("self > 0.0").message("p95LatencyMs thresholds must be > 0 milliseconds"))]
    pub rollback_above: f64,
    /// Fail when the canary's p95 is more than this many percent above the stable's (and its
    /// latencies rank slower at `confidence`, when the provider has the histograms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0.0")
        .message("p95LatencyMs.maxAboveStablePercent must be >= 0, like 25"))]
    pub max_above_stable_percent: Option<f64>,
    /// Measured, recorded and shown like any other gate, but never deciding: how a new gate or
    /// threshold is calibrated on real traffic before it counts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

impl Default for LatencyGate {
    fn default() -> Self {
        Self { promote_at_most: 500.0, rollback_above: 1000.0, max_above_stable_percent: None, dry_run: false }
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.promoteAtMost <= self.rollbackAbove")
    .message("poolUtilization.promoteAtMost must be <= rollbackAbove (promote needs the lower value)"))]
pub struct UtilizationGate {
    #[serde(default = "defaults::utilization_promote")]
    #[x_kube(validation = Rule::new("self >= 0.0 && self <= 100.0").message("poolUtilization thresholds are percentages in 0..100"))]
    pub promote_at_most: f64,
    #[serde(default = "defaults::utilization_rollback")]
    #[x_kube(validation = Rule::new("self >= 0.0 && self <= 100.0").message("poolUtilization thresholds are percentages in 0..100"))]
    pub rollback_above: f64,
    /// Fail when the canary's busiest pod uses more than this many percentage points more of
    /// its pool than the stable's busiest pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 0.0 && self <= 100.0")
        .message("poolUtilization.maxAboveStable is percentage points in 0..100, like 20"))]
    pub max_above_stable: Option<f64>,
    /// Measured, recorded and shown like any other gate, but never deciding: how a new gate or
    /// threshold is calibrated on real traffic before it counts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

impl Default for UtilizationGate {
    fn default() -> Self {
        Self { promote_at_most: 60.0, rollback_above: 80.0, max_above_stable: None, dry_run: false }
    }
}

/// A counter gate: more than `max` new events in an interval fails the analysis.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CountGate {
    #[serde(default)]
    #[x_kube(validation = Rule::new("self >= 0").message("event gates' max must be >= 0"))]
    pub max: i64,
    /// Measured, recorded and shown like any other gate, but never deciding: how a new gate or
    /// threshold is calibrated on real traffic before it counts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MetricsProvider {
    #[default]
    Pods,
    Prometheus,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.provider != 'Prometheus' || has(self.prometheus)")
    .message("spec.rollout.metrics.prometheus.address is required when provider is Prometheus"))]
pub struct MetricsSpec {
    #[serde(default)]
    pub provider: MetricsProvider,
    #[serde(default)]
    pub pods: PodsMetrics,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusMetrics>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PodsMetrics {
    #[serde(default = "defaults::health_port")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("spec.rollout.metrics.pods.port must be a port, 1..65535"))]
    pub port: i32,
    #[serde(default = "defaults::health_path")]
    #[x_kube(validation = Rule::new("self.startsWith('/')").message("spec.rollout.metrics.pods.path must start with '/'"))]
    #[schemars(length(max = 255))]
    pub path: String,
}

impl Default for PodsMetrics {
    fn default() -> Self {
        Self { port: 8000, path: defaults::health_path() }
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusMetrics {
    #[x_kube(validation = Rule::new("self.startsWith('http://') || self.startsWith('https://')")
        .message("spec.rollout.metrics.prometheus.address must be an http(s) URL"))]
    #[schemars(length(max = 1024))]
    pub address: String,
    /// PromQL per signal. `{{namespace}}`, `{{deployment}}` (the canary's, or the target's for the
    /// stable beside it), `{{track}}` (`canary`, or empty for the stable) and `{{interval}}` are
    /// filled in; each query must return one number.
    #[serde(default)]
    pub queries: PrometheusQueries,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusQueries {
    #[serde(default = "q_requests")]
    #[schemars(length(max = 2048))]
    pub requests: String,
    #[serde(default = "q_failed")]
    #[schemars(length(max = 2048))]
    pub failed_requests: String,
    #[serde(default = "q_p95")]
    #[schemars(length(max = 2048))]
    pub p95_latency_ms: String,
    #[serde(default = "q_util")]
    #[schemars(length(max = 2048))]
    pub pool_utilization: String,
    #[serde(default = "q_exhaustion")]
    #[schemars(length(max = 2048))]
    pub pool_exhaustion_events: String,
    #[serde(default = "q_errors")]
    #[schemars(length(max = 2048))]
    pub redis_connection_errors: String,
}

impl Default for PrometheusQueries {
    fn default() -> Self {
        Self {
            requests: q_requests(),
            failed_requests: q_failed(),
            p95_latency_ms: q_p95(),
            pool_utilization: q_util(),
            pool_exhaustion_events: q_exhaustion(),
            redis_connection_errors: q_errors(),
        }
    }
}

// Defaults over the contract's /metrics names, for pods scraped with their labels as
// `redispool_io_track` (the usual `labelmap` of pod labels), `namespace` and `pod`. The pod
// name pins the Deployment (`<name>-<replicaset hash>-<suffix>`): the stable's empty track alone
// would select every other workload of the namespace too.
const SEL: &str =
    r#"namespace="{{namespace}}",redispool_io_track="{{track}}",pod=~"{{deployment}}-[a-z0-9]+-[a-z0-9]+""#;
fn q_requests() -> String {
    format!("sum(increase(http_requests_total{{{SEL}}}[{{{{interval}}}}]))")
}
fn q_failed() -> String {
    format!(r#"sum(increase(http_requests_total{{{SEL},code=~"5.."}}[{{{{interval}}}}]))"#)
}
fn q_p95() -> String {
    format!(
        "1000 * histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{{{SEL}}}[{{{{interval}}}}])))"
    )
}
fn q_util() -> String {
    format!(r#"100 * max(redis_pool_connections{{{SEL},state="used"}} / on(pod) redis_pool_max_connections{{{SEL}}})"#)
}
fn q_exhaustion() -> String {
    format!("sum(increase(redis_pool_timeouts_total{{{SEL}}}[{{{{interval}}}}]))")
}
fn q_errors() -> String {
    format!("sum(increase(redis_client_errors_total{{{SEL}}}[{{{{interval}}}}]))")
}
