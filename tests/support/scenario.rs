//! Shared scenario helpers for the end-to-end tests: a namespace with the target Deployment and
//! an operator process, the runbook policy with second-long pauses, and an observer of replicas.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use redis_pool_operator::core::api::{Phase, RedisPoolPolicy, canary_name};

use super::fleet::{Behaviour, Fleet, Health};
use super::operator::Operator;
use super::recorder::Recorder;
use super::*;

pub const TARGET: &str = "auth-api";

pub struct Env {
    pub ns: TestNamespace,
    pub operator: Operator,
    pub started: Instant,
}

impl Env {
    pub async fn new(prefix: &str, replicas: i32) -> Env {
        Env::with_target_env(prefix, replicas, &[]).await
    }

    /// With more env vars in the target's container (how its pods reach Redis, say).
    pub async fn with_target_env(prefix: &str, replicas: i32, env: &[(&str, &str)]) -> Env {
        let ns = TestNamespace::new(prefix).await;
        create_target_with(&ns, replicas, env).await;
        let operator = Operator::start(&cluster().kubeconfig, &ns.name);
        Env { ns, operator, started: Instant::now() }
    }

    pub fn policies(&self) -> Api<RedisPoolPolicy> {
        self.ns.api()
    }

    pub fn deployments(&self) -> Api<Deployment> {
        self.ns.api()
    }

    pub fn fleet(&self, behaviour: Behaviour) -> Fleet {
        Fleet::start(self.ns.api::<Pod>(), 8000, behaviour)
    }

    pub async fn apply(&self, policy: serde_json::Value) {
        let p: RedisPoolPolicy = serde_json::from_value(policy).expect("policy JSON");
        self.policies().create(&PostParams::default(), &p).await.expect("create the policy");
    }

    pub async fn status(&self, name: &str) -> redis_pool_operator::core::api::RedisPoolPolicyStatus {
        self.policies().get(name).await.unwrap().status.unwrap_or_default()
    }

    /// Waits until the policy's status satisfies `done`, naming `what` (and the operator log) on timeout.
    pub async fn wait_status(
        &self,
        name: &str,
        what: &str,
        timeout: Duration,
        done: impl Fn(&redis_pool_operator::core::api::RedisPoolPolicyStatus) -> bool,
    ) -> redis_pool_operator::core::api::RedisPoolPolicyStatus {
        let api = self.policies();
        let log = self.operator.log.display().to_string();
        let done = &done;
        wait_until(&format!("{what} (policy {name}, operator log: {log})"), timeout, || {
            let api = api.clone();
            let name = name.to_string();
            async move {
                let s = api.get(&name).await.ok()?.status?;
                done(&s).then_some(s)
            }
        })
        .await
    }

    pub async fn wait_phase(
        &self,
        name: &str,
        phase: Phase,
        timeout: Duration,
    ) -> redis_pool_operator::core::api::RedisPoolPolicyStatus {
        self.wait_status(name, &format!("phase {phase:?}"), timeout, |s| s.phase == phase).await
    }

    pub async fn events(&self) -> Vec<(String, String)> {
        let api: Api<Event> = self.ns.api();
        let mut list: Vec<Event> = api.list(&ListParams::default()).await.unwrap().items;
        list.sort_by_key(|e| e.metadata.creation_timestamp.clone().map(|t| t.0));
        list.into_iter().map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default())).collect()
    }

    /// Waits (bounded) until the policy `name` is gone from the API server; `why` says what
    /// should have let it go.
    pub async fn wait_gone(&self, name: &str, why: &str, timeout: Duration) {
        let policies = self.policies();
        wait_until(&format!("policy {name} to be gone ({why})"), timeout, || {
            let (policies, name) = (policies.clone(), name.to_string());
            async move { policies.get_opt(&name).await.ok()?.is_none().then_some(()) }
        })
        .await;
    }

    pub async fn target(&self) -> Deployment {
        self.deployments().get(TARGET).await.unwrap()
    }

    pub async fn canary(&self) -> Option<Deployment> {
        self.deployments().get_opt(&canary_name(TARGET)).await.unwrap()
    }

    /// Waits until the operator has finished more than `at_least` reconciles: a quiet window is
    /// only evidence when the operator was seen awake in it.
    pub async fn wait_reconciles(&self, at_least: f64, timeout: Duration) {
        wait_until(
            &format!("{at_least} reconciles (operator log: {})", self.operator.log.display()),
            timeout,
            || async {
                (self.operator.counter("redis_pool_operator_reconciles_total").await >= at_least).then_some(())
            },
        )
        .await;
    }

    /// Touches the policy (an annotation nobody reads) to wake the operator.
    pub async fn annotate_noop(&self, name: &str) {
        let patch = serde_json::json!({"metadata": {"annotations": {"example.com/poke": Instant::now().elapsed().as_nanos().to_string()}}});
        self.policies().patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    }

    pub async fn annotate(&self, name: &str, action: &str) {
        let patch = serde_json::json!({"metadata": {"annotations": {"redispool.io/action": action}}});
        self.policies().patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    }
}

pub async fn create_target(ns: &TestNamespace, replicas: i32) {
    create_target_with(ns, replicas, &[]).await
}

pub async fn create_target_with(ns: &TestNamespace, replicas: i32, env: &[(&str, &str)]) {
    let mut deploy = serde_json::json!({
        "metadata": {"name": TARGET, "labels": {"app": TARGET}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": TARGET}},
            "strategy": {"rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "template": {
                "metadata": {"labels": {"app": TARGET}},
                "spec": {"containers": [{"name": "api", "image": "example/auth-api:1", "env": [
                    {"name": "LOG_LEVEL", "value": "info"},
                    {"name": "DEPLOYMENT_ENV", "value": "production"},
                    {"name": "WORKERS", "value": "2"},
                    {"name": "REDIS_POOL_MAX_CONNECTIONS", "value": "30"}
                ]}]}
            }
        }
    });
    let vars = deploy["spec"]["template"]["spec"]["containers"][0]["env"].as_array_mut().unwrap();
    vars.extend(env.iter().map(|(name, value)| serde_json::json!({"name": name, "value": value})));
    let deploy: Deployment = serde_json::from_value(deploy).unwrap();
    ns.api::<Deployment>().create(&PostParams::default(), &deploy).await.unwrap();
    let api: Api<Deployment> = ns.api();
    wait_until("the target Deployment to be available", Duration::from_secs(60), || {
        let api = api.clone();
        async move { (api.get(TARGET).await.ok()?.status?.available_replicas.unwrap_or(0) == replicas).then_some(()) }
    })
    .await;
}

/// The runbook's policy with second-long pauses.
pub fn policy(name: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "redispool.io/v1alpha1",
        "kind": "RedisPoolPolicy",
        "metadata": {"name": name},
        "spec": {
            "targetRef": {"name": TARGET, "container": "api"},
            "environment": "production",
            "tiers": [
                {"name": "staging", "workers": 2, "connectionsPerWorker": 30},
                {"name": "production", "workers": 4, "connectionsPerWorker": 40, "replicas": 10}
            ],
            "rollout": {
                "steps": [{"weight": 10, "pause": "3s"}, {"weight": 50, "pause": "3s"}, {"weight": 100, "pause": "3s"}],
                "analysis": {"interval": "1s", "failureLimit": 2, "progressDeadline": "10s", "minRequests": 10}
            },
            "promotion": {"soak": "3s"}
        }
    })
}

pub fn all_pods(h: Health) -> Behaviour {
    Arc::new(move |_| Some(h.clone()))
}

/// Canary pods behave as `canary`, stable pods are healthy.
pub fn canary_pods(canary: Health) -> Behaviour {
    Arc::new(move |p: &Pod| {
        let is_canary =
            p.metadata.labels.as_ref().and_then(|l| l.get("redispool.io/track")).is_some_and(|t| t == "canary");
        Some(if is_canary { canary.clone() } else { Health::good() })
    })
}

/// (canary spec, target spec, canary available, target available)
pub type Sample = (i32, i32, i32, i32);

/// Records every version of the Deployments while a test runs (a watch, not a sampler), to
/// check the replicas requested and the pods available at every instant the API server saw.
pub struct Watcher {
    recorder: Recorder<Deployment>,
}

impl Watcher {
    pub async fn start(api: Api<Deployment>) -> Watcher {
        Watcher { recorder: Recorder::start(api).await }
    }

    /// (canary, target) replicas requested and available after each change up to now, repeats
    /// folded.
    async fn samples(&self) -> Vec<Sample> {
        self.recorder.sync().await;
        let spec = |d: Option<&Deployment>| d.and_then(|d| d.spec.replicas).unwrap_or(0);
        let avail = |d: Option<&Deployment>| d.and_then(|d| d.status.as_ref()?.available_replicas).unwrap_or(0);
        let mut out: Vec<Sample> = vec![];
        for state in self.recorder.timeline() {
            let (canary, target) = (state.get(&canary_name(TARGET)), state.get(TARGET));
            let sample = (spec(canary), spec(target), avail(canary), avail(target));
            if out.last() != Some(&sample) {
                out.push(sample);
            }
        }
        out
    }

    /// Distinct (canary, stable) splits requested, in order.
    pub async fn splits(&self) -> Vec<(i32, i32)> {
        let mut out: Vec<(i32, i32)> = vec![];
        for (c, t, _, _) in self.samples().await {
            if out.last() != Some(&(c, t)) {
                out.push((c, t));
            }
        }
        out
    }

    /// Available pods never drop below total - maxUnavailable (25% of 10 = 2), nor requested
    /// replicas below total, at any version of the Deployments.
    pub async fn assert_capacity(&self, total: i32, max_unavailable: i32) {
        let samples = self.samples().await;
        assert!(samples.len() > 1, "the recorder saw the Deployments change: {samples:?}");
        for (c, t, ac, at) in samples {
            assert!(c + t >= total, "requested replicas {c}+{t} below {total}");
            assert!(ac + at >= total - max_unavailable, "available {ac}+{at} below {total}-{max_unavailable}");
        }
    }
}

pub fn env_of(d: &Deployment, name: &str) -> Option<String> {
    let c = d.spec.template.spec.as_ref()?.containers.iter().find(|c| c.name == "api")?;
    c.env.as_ref()?.iter().find(|e| e.name == name)?.value.clone()
}
