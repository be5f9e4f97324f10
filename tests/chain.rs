//! Staging proves it first, end to end: a production policy waits for a staging policy's
//! verdict on the same worker pool, starts by itself once it has soaked, and does not start on a
//! pool staging rolled back. Once within one control plane (two namespaces), once across two
//! control planes, each with its own operator, through a kubeconfig Secret that may only read
//! policies over there.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, Patch, PatchParams, PostParams};
use redis_pool_operator::core::api::VerdictResult;
use redis_pool_operator::core::api::{Phase, RedisPoolPolicy};
use support::fleet::{Behaviour, Fleet, Health};
use support::operator::Operator;
use support::scenario::*;
use support::*;

/// One environment: a namespace with the target, its pods' health, and an operator.
struct Side {
    ns: TestNamespace,
    _fleet: Fleet,
    operator: Operator,
}

impl Side {
    async fn start(cluster: &Cluster, prefix: &str, replicas: i32) -> Side {
        let ns = cluster.namespace(prefix).await;
        create_target(&ns, replicas).await;
        let fleet = Fleet::start(ns.api::<Pod>(), 8000, canaries_with_50_fail());
        let operator = Operator::start(&cluster.kubeconfig, &ns.name);
        Side { ns, _fleet: fleet, operator }
    }

    fn policies(&self) -> Api<RedisPoolPolicy> {
        self.ns.api()
    }

    async fn wait(
        &self,
        what: &str,
        done: impl Fn(&redis_pool_operator::core::api::RedisPoolPolicyStatus) -> bool,
    ) -> redis_pool_operator::core::api::RedisPoolPolicyStatus {
        let api = self.policies();
        let log = self.operator.log.display().to_string();
        let done = &done;
        wait_until(&format!("{what} in {} (operator log: {log})", self.ns.name), Duration::from_secs(90), || {
            let api = api.clone();
            async move {
                let s = api.get("auth-api").await.ok()?.status?;
                done(&s).then_some(s)
            }
        })
        .await
    }

    async fn env_var(&self, name: &str) -> Option<String> {
        let api: Api<k8s_openapi::api::apps::v1::Deployment> = self.ns.api();
        env_of(&api.get(TARGET).await.unwrap(), name)
    }

    /// Moves both tiers to `connections_per_worker`.
    async fn set_pool(&self, connections_per_worker: i32) {
        let tiers = tiers(connections_per_worker);
        let patch = serde_json::json!({"spec": {"tiers": tiers}});
        self.policies().patch("auth-api", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    }
}

/// Pods are healthy, except canary pods of a 50-connection pool, which exhaust it.
fn canaries_with_50_fail() -> Behaviour {
    std::sync::Arc::new(|p: &Pod| {
        let c = &p.spec.as_ref()?.containers[0];
        let fifty =
            c.env.iter().flatten().any(|e| e.name == "REDIS_POOL_MAX_CONNECTIONS" && e.value.as_deref() == Some("50"));
        let canary =
            p.metadata.labels.as_ref().and_then(|l| l.get("redispool.io/track")).is_some_and(|t| t == "canary");
        Some(if canary && fifty { Health { utilization: 95.0, ..Health::good() } } else { Health::good() })
    })
}

/// Staging runs 2 workers and production 4, each with the same pool per worker.
fn tiers(connections_per_worker: i32) -> serde_json::Value {
    serde_json::json!([
        {"name": "staging", "workers": 2, "connectionsPerWorker": connections_per_worker, "replicas": 4},
        {"name": "production", "workers": 4, "connectionsPerWorker": connections_per_worker, "replicas": 6}
    ])
}

fn policy(environment: &str, promotion: serde_json::Value) -> RedisPoolPolicy {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "redispool.io/v1alpha1",
        "kind": "RedisPoolPolicy",
        "metadata": {"name": "auth-api"},
        "spec": {
            "targetRef": {"name": TARGET, "container": "api"},
            "environment": environment,
            "tiers": tiers(40),
            "rollout": {
                "steps": [{"weight": 50, "pause": "2s"}, {"weight": 100, "pause": "2s"}],
                "analysis": {"interval": "1s", "failureLimit": 2, "progressDeadline": "20s", "minRequests": 10}
            },
            "promotion": promotion
        }
    }))
    .unwrap()
}

/// Production requires staging's verdict (soaked 4s) from `from`; staging soaks for 4s.
async fn chain(staging: &Side, production: &Side, from: serde_json::Value, from_label: &str) {
    let requires =
        serde_json::json!({"soak": "2s", "requires": [{"environment": "staging", "soak": "4s", "from": from}]});
    production.policies().create(&PostParams::default(), &policy("production", requires)).await.unwrap();
    let s = production.wait("Waiting for staging", |s| s.phase == Phase::Waiting).await;
    assert_eq!(s.waiting_for.as_deref(), Some(format!("{from_label} not found").as_str()), "{:?}", s.message);
    // `kubectl get rpp` says what it waits for.
    // Production always lives in the binary's first cluster.
    let out = cluster().kubectl(&["get", "rpp", "-n", &production.ns.name]);
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(table.contains("WAITING") && table.contains(&format!("{from_label} not found")), "{table}");

    staging
        .policies()
        .create(&PostParams::default(), &policy("staging", serde_json::json!({"soak": "4s"})))
        .await
        .unwrap();
    let s = staging.wait("staging promoted", |s| s.phase == Phase::Succeeded).await;
    assert_eq!(s.verdicts[0].result, VerdictResult::Succeeded);
    // Promoted, not yet soaked: production still waits, untouched.
    let p = production.policies().get("auth-api").await.unwrap().status.unwrap();
    assert_eq!(p.phase, Phase::Waiting, "{:?}", p.message);
    assert_eq!(production.env_var("REDIS_POOL_MAX_CONNECTIONS").await.as_deref(), Some("30"));

    let s = staging
        .wait("staging's verdict soaked 4s", |s| s.verdicts.first().is_some_and(|v| v.soaked_seconds >= 4))
        .await;
    let pool_hash = s.verdicts[0].pool_hash.clone();
    let p = production.wait("production promoted on staging's verdict", |s| s.phase == Phase::Succeeded).await;
    assert_eq!(p.verdicts[0].pool_hash, pool_hash, "the same worker pool in both environments");
    assert_eq!(production.env_var("WORKERS").await.as_deref(), Some("4"));
    assert_eq!(production.env_var("REDIS_POOL_MAX_CONNECTIONS").await.as_deref(), Some("40"));
    let events = events_of(production).await;
    assert!(
        events
            .iter()
            .any(|(r, m)| r == "RolloutStarted" && m.contains(&format!("{from_label} proved worker pool {pool_hash}"))),
        "{events:?}"
    );

    // A new pool: staging rolls it back (its canaries exhaust the pool); production never starts it.
    production.set_pool(50).await;
    let p = production.wait("production waits for a verdict on the new pool", |s| s.phase == Phase::Waiting).await;
    assert!(p.message.as_deref().unwrap().contains("connectionsPerWorker 40 there, 50 here"), "{:?}", p.message);
    staging.set_pool(50).await;
    staging.wait("staging rolled back the new pool", |s| s.phase == Phase::RolledBack).await;
    let p = production.wait("production blocked by staging's rollback", |s| s.phase == Phase::Blocked).await;
    let msg = p.message.unwrap();
    assert!(msg.contains(&format!("{from_label} rolled back worker pool")) && msg.contains("poolUtilization"), "{msg}");
    assert_eq!(production.env_var("REDIS_POOL_MAX_CONNECTIONS").await.as_deref(), Some("40"), "production untouched");
    let canary: Api<k8s_openapi::api::apps::v1::Deployment> = production.ns.api();
    assert!(canary.get_opt("auth-api-pool-canary").await.unwrap().is_none(), "no canary in production");
}

async fn events_of(side: &Side) -> Vec<(String, String)> {
    let events: Api<k8s_openapi::api::core::v1::Event> = side.ns.api();
    let list = events.list(&Default::default()).await.unwrap();
    list.items.into_iter().map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default())).collect()
}

#[tokio::test]
async fn production_waits_for_staging_in_another_namespace() {
    let staging = Side::start(cluster(), "staging", 4).await;
    let production = Side::start(cluster(), "production", 6).await;
    let from = serde_json::json!({"namespace": staging.ns.name, "name": "auth-api"});
    let label = format!("{}/auth-api", staging.ns.name);
    chain(&staging, &production, from, &label).await;
}

#[tokio::test]
async fn production_waits_for_staging_in_another_cluster() {
    let staging_cluster = Cluster::start("-staging", 125);
    let staging = Side::start(&staging_cluster, "staging", 4).await;
    let production = Side::start(cluster(), "production", 6).await;
    // Over there, a ServiceAccount that may only get policies; here, its kubeconfig in a Secret.
    let kubeconfig = reader_kubeconfig(&staging_cluster, &staging.ns).await;
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "staging-kubeconfig"},
        "stringData": {"kubeconfig": kubeconfig}
    }))
    .unwrap();
    production.ns.api::<Secret>().create(&PostParams::default(), &secret).await.unwrap();
    let from = serde_json::json!({
        "namespace": staging.ns.name,
        "name": "auth-api",
        "kubeconfigSecretRef": {"name": "staging-kubeconfig", "key": "kubeconfig"}
    });
    let label = format!("staging:{}/auth-api", staging.ns.name);
    chain(&staging, &production, from, &label).await;
    // The reader's token never shows: not in status, not in Events, not in the operator's log.
    let token =
        kubeconfig.lines().find_map(|l| l.split("token: ").nth(1)).unwrap().trim_end_matches('}').trim().to_string();
    assert!(token.len() > 20, "a real token: {token}");
    let status = serde_json::to_string(&production.policies().get("auth-api").await.unwrap().status).unwrap();
    let events = format!("{:?}", events_of(&production).await);
    let log = std::fs::read_to_string(&production.operator.log).unwrap();
    for (what, text) in [("status", status), ("Events", events), ("the operator log", log)] {
        assert!(!text.contains(&token), "the kubeconfig's token is in {what}");
    }
}

/// A kubeconfig for `cluster` as a ServiceAccount whose Role allows `get` on
/// `redispoolpolicies` in `ns` and nothing else (the RBAC the README documents).
async fn reader_kubeconfig(cluster: &Cluster, ns: &TestNamespace) -> String {
    let role: Role = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "verdict-reader"},
        "rules": [{"apiGroups": ["redispool.io"], "resources": ["redispoolpolicies"], "verbs": ["get"]}]
    }))
    .unwrap();
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "verdict-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "verdict-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "verdict-reader", "namespace": ns.name}]
    }))
    .unwrap();
    let created = cluster.kubectl(&["create", "serviceaccount", "verdict-reader", "-n", &ns.name]);
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    ns.api::<Role>().create(&PostParams::default(), &role).await.unwrap();
    ns.api::<RoleBinding>().create(&PostParams::default(), &binding).await.unwrap();
    let token = cluster.kubectl(&["create", "token", "verdict-reader", "-n", &ns.name, "--duration", "1h"]);
    assert!(token.status.success(), "{}", String::from_utf8_lossy(&token.stderr));
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();
    let admin = std::fs::read_to_string(&cluster.kubeconfig).unwrap();
    let server = admin.lines().find_map(|l| l.trim().strip_prefix("server: ")).unwrap().to_string();
    let ca_path = admin.lines().find_map(|l| l.trim().strip_prefix("certificate-authority: ")).unwrap().to_string();
    let ca = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, std::fs::read(ca_path).unwrap());
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: staging\n  cluster: {{server: {server}, certificate-authority-data: {ca}}}\n\
         users:\n- name: verdict-reader\n  user: {{token: {token}}}\ncontexts:\n- name: staging\n  context: {{cluster: staging, user: verdict-reader}}\n\
         current-context: staging\n"
    )
}
