//! The chart's whole life, on a control plane of this test binary's own (so that deleting the CRD
//! touches no other suite): install, a policy rolls out as the chart's ServiceAccount and comes
//! to rest, uninstall; then, with no operator left, deleting the idle policy and the CRD
//! completes within seconds, since a policy at rest holds no finalizer.

mod support;

use std::time::{Duration, Instant};

use redis_pool_operator::core::api::Phase;
use support::fleet::Health;
use support::operator::Operator;
use support::scenario::*;
use support::*;

const CHART: &str = "charts/redis-pool-operator";

#[tokio::test]
async fn after_uninstall_the_idle_policy_and_the_crd_delete_at_once() {
    let ns = TestNamespace::new("life").await;
    let install = helm(&["install", "life", CHART, "-n", &ns.name, "--set", &format!("watchNamespace={}", ns.name)]);
    assert!(install.status.success(), "{}", String::from_utf8_lossy(&install.stderr));
    let kubeconfig = service_account_kubeconfig(&ns.name, "life-redis-pool-operator").await;
    create_target(&ns, 10).await;
    let _fleet = support::fleet::Fleet::start(ns.api(), 8000, all_pods(Health::good()));
    let operator = Operator::start_with(&kubeconfig, &ns.name, &[], "-life");
    let mut env = Env { ns, operator, started: Instant::now() };
    env.apply(policy("auth-api")).await;
    env.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(120)).await;
    let policies = env.policies();
    wait_until("the policy at rest to let its finalizer go", Duration::from_secs(30), || {
        let policies = policies.clone();
        async move { policies.get("auth-api").await.ok()?.metadata.finalizers.unwrap_or_default().is_empty().then_some(()) }
    })
    .await;

    // Uninstalled: the operator is gone with its ServiceAccount and RBAC.
    env.operator.kill();
    let uninstall = helm(&["uninstall", "life", "-n", &env.ns.name]);
    assert!(uninstall.status.success(), "{}", String::from_utf8_lossy(&uninstall.stderr));
    let started = Instant::now();
    let delete = cluster().kubectl(&["delete", "rpp", "--all", "-n", &env.ns.name, "--timeout=10s"]);
    assert!(delete.status.success(), "{}", String::from_utf8_lossy(&delete.stderr));
    let crd = cluster().kubectl(&["delete", "crd", "redispoolpolicies.redispool.io", "--timeout=30s"]);
    assert!(crd.status.success(), "deleting the CRD hung: {}", String::from_utf8_lossy(&crd.stderr));
    eprintln!("policy and CRD deleted in {:?}", started.elapsed());
    assert_eq!(env.target().await.spec.replicas, Some(10), "the target keeps its fleet");
}
