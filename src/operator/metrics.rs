//! Operator metrics (Prometheus text at `/metrics`) and the probe endpoints.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::core::api::Phase;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub destination: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerbLabels {
    pub verb: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    pub namespace: String,
    pub policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub namespace: String,
    pub policy: String,
    pub phase: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerdictLabels {
    pub namespace: String,
    pub policy: String,
    pub verdict: String,
}

pub struct Metrics {
    pub registry: Registry,
    pub reconciles: Family<ResultLabels, Counter>,
    pub errors: Family<ErrorLabels, Counter>,
    pub duration: Histogram,
    pub phase: Family<PhaseLabels, Gauge>,
    pub weight: Family<PolicyLabels, Gauge>,
    pub canary_replicas: Family<PolicyLabels, Gauge>,
    /// 1 while a policy's environment has been at fault for longer than its progressDeadline.
    pub degraded: Family<PolicyLabels, Gauge>,
    pub analyses: Family<VerdictLabels, Counter>,
    pub writes: Family<ResultLabels, Counter>,
    /// Requests to the API server by verb (counted by the client's `requests` layer).
    pub api_requests: Family<VerbLabels, Counter>,
    /// Notifications by destination and how their delivery ended.
    pub notifications: Family<DeliveryLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("redis_pool_operator");
        let reconciles = Family::<ResultLabels, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let duration = Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]);
        let phase = Family::<PhaseLabels, Gauge>::default();
        let weight = Family::<PolicyLabels, Gauge>::default();
        let canary_replicas = Family::<PolicyLabels, Gauge>::default();
        let degraded = Family::<PolicyLabels, Gauge>::default();
        let analyses = Family::<VerdictLabels, Counter>::default();
        let writes = Family::<ResultLabels, Counter>::default();
        registry.register("reconciles", "Reconciles by result", reconciles.clone());
        registry.register("reconcile_errors", "Failed reconciles by error kind", errors.clone());
        registry.register("reconcile_duration_seconds", "Time spent in one reconcile", duration.clone());
        registry.register("policy_phase", "1, labelled with the phase each policy is in", phase.clone());
        registry.register("policy_canary_weight", "Requested canary weight (percent) of each policy", weight.clone());
        registry.register("policy_canary_replicas", "Canary replicas of each policy", canary_replicas.clone());
        registry.register(
            "policy_degraded",
            "1 while the environment has been at fault (analyses Inconclusive) for longer than progressDeadline",
            degraded.clone(),
        );
        registry.register("analyses", "Analyses by verdict", analyses.clone());
        registry.register("writes", "Writes to the Kubernetes API by kind", writes.clone());
        let api_requests = Family::<VerbLabels, Counter>::default();
        registry.register("api_requests", "Requests to the Kubernetes API server by verb", api_requests.clone());
        let notifications = Family::<DeliveryLabels, Counter>::default();
        registry.register(
            "notifications",
            "Notifications by destination and result (delivered, failed after retries)",
            notifications.clone(),
        );
        Metrics {
            notifications,
            registry,
            reconciles,
            errors,
            duration,
            phase,
            weight,
            canary_replicas,
            degraded,
            analyses,
            writes,
            api_requests,
        }
    }
}

impl Metrics {
    /// One series per policy, its current phase at 1 (`policy_phase == 1` and alerts on a phase
    /// read the same as with a series per phase, which cost 13 series per policy).
    pub fn set_degraded(&self, namespace: &str, policy: &str, degraded: bool) {
        let labels = PolicyLabels { namespace: namespace.into(), policy: policy.into() };
        self.degraded.get_or_create(&labels).set(i64::from(degraded));
    }

    pub fn set_phase(&self, namespace: &str, policy: &str, current: Phase, weight: i32, canary: i32) {
        let labels = PhaseLabels { namespace: namespace.into(), policy: policy.into(), phase: format!("{current:?}") };
        let known = self.phase.get(&labels).is_some();
        if !known {
            self.forget_phases(namespace, policy);
            self.phase.get_or_create(&labels).set(1);
        }
        let labels = PolicyLabels { namespace: namespace.into(), policy: policy.into() };
        self.weight.get_or_create(&labels).set(i64::from(weight));
        self.canary_replicas.get_or_create(&labels).set(i64::from(canary));
    }

    fn forget_phases(&self, namespace: &str, policy: &str) {
        for p in Phase::ALL {
            self.phase.remove(&PhaseLabels {
                namespace: namespace.into(),
                policy: policy.into(),
                phase: format!("{p:?}"),
            });
        }
    }

    pub fn forget(&self, namespace: &str, policy: &str) {
        self.forget_phases(namespace, policy);
        let labels = PolicyLabels { namespace: namespace.into(), policy: policy.into() };
        self.weight.remove(&labels);
        self.canary_replicas.remove(&labels);
        self.degraded.remove(&labels);
    }

    pub fn count_notification(&self, destination: &str, result: &str) {
        self.notifications
            .get_or_create(&DeliveryLabels { destination: destination.into(), result: result.into() })
            .inc();
    }

    pub fn count_write(&self, kind: &str) {
        self.writes.get_or_create(&ResultLabels { result: kind.into() }).inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("metrics encode");
        out
    }
}

#[derive(Clone)]
struct ServerState {
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
}

/// Serves `/healthz`, `/readyz` and `/metrics` until the process ends.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>, ready: Arc<AtomicBool>) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(|State(s): State<ServerState>| async move {
                if s.ready.load(Ordering::Relaxed) {
                    (StatusCode::OK, "ready")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "starting")
                }
            }),
        )
        .route("/metrics", get(|State(s): State<ServerState>| async move { s.metrics.encode() }))
        .with_state(ServerState { metrics, ready });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(address = %listener.local_addr()?, "serving /healthz, /readyz and /metrics");
    axum::serve(listener, app).await
}

/// Durations as fractional seconds, for the histogram.
pub fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase_lines(m: &Metrics) -> Vec<String> {
        m.encode().lines().filter(|l| l.starts_with("redis_pool_operator_policy_phase{")).map(str::to_string).collect()
    }

    #[test]
    fn a_policy_has_one_phase_series_its_current_phase() {
        let m = Metrics::default();
        m.set_phase("ns", "a", Phase::Progressing, 10, 1);
        m.set_phase("ns", "b", Phase::Idle, 0, 0);
        m.set_phase("ns", "a", Phase::Succeeded, 0, 0);
        let mut lines = phase_lines(&m);
        lines.sort();
        assert_eq!(
            lines,
            [
                r#"redis_pool_operator_policy_phase{namespace="ns",policy="a",phase="Succeeded"} 1"#,
                r#"redis_pool_operator_policy_phase{namespace="ns",policy="b",phase="Idle"} 1"#,
            ]
        );
        m.forget("ns", "a");
        assert_eq!(phase_lines(&m), [r#"redis_pool_operator_policy_phase{namespace="ns",policy="b",phase="Idle"} 1"#]);
    }

    /// Degraded pages through a gauge an alert can read: 1 while degraded, 0 after, gone with the policy.
    #[test]
    fn degraded_is_a_gauge_per_policy() {
        let m = Metrics::default();
        let line = |m: &Metrics| {
            m.encode().lines().find(|l| l.starts_with("redis_pool_operator_policy_degraded{")).map(str::to_string)
        };
        m.set_degraded("ns", "a", true);
        assert_eq!(line(&m).as_deref(), Some(r#"redis_pool_operator_policy_degraded{namespace="ns",policy="a"} 1"#));
        m.set_degraded("ns", "a", false);
        assert_eq!(line(&m).as_deref(), Some(r#"redis_pool_operator_policy_degraded{namespace="ns",policy="a"} 0"#));
        m.forget("ns", "a");
        assert_eq!(line(&m), None);
    }
}
