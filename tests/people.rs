//! People in the loop, against a real API server and operator: freeze windows (the policy's and
//! the operator's cluster-wide ones).

mod support;

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use kube::api::{Patch, PatchParams};
use redis_pool_operator::core::api::Phase;
use support::fleet::Health;
use support::operator::Operator;
use support::scenario::*;
use support::*;

/// A one-off window from `from` to `to` seconds from now.
fn window(name: &str, from: i64, to: i64) -> serde_json::Value {
    let at = |s: i64| (Timestamp::now() + SignedDuration::from_secs(s)).round(jiff::Unit::Second).unwrap().to_string();
    serde_json::json!({"name": name, "start": at(from), "end": at(to)})
}

async fn set_windows(env: &Env, windows: serde_json::Value) {
    let patch = serde_json::json!({"spec": {"rollout": {"freezeWindows": windows}}});
    env.policies().patch("auth-api", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
}

/// A window opened mid-rollout: the step soaks and is analysed, but does not advance, for
/// longer than its pause and `progressDeadline` together; `kubectl get` and status say which
/// window and until when. Closing the window lets the rollout go on to the end.
#[tokio::test]
async fn a_window_opened_mid_rollout_holds_the_step_until_it_closes() {
    let env = Env::new("freeze-mid", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    env.apply(policy("auth-api")).await;
    env.wait_status("auth-api", "step 1 soaking", Duration::from_secs(30), |s| s.step_started_at.is_some()).await;
    set_windows(&env, serde_json::json!([window("incident", -60, 3600)])).await;
    let held = env
        .wait_status("auth-api", "the step held by the window", Duration::from_secs(30), |s| s.freeze.is_some())
        .await;
    assert_eq!(held.freeze.as_ref().unwrap().window, "incident");
    assert!(held.message.as_deref().unwrap().contains("held by freeze window incident until"), "{:?}", held.message);
    let column =
        cluster().kubectl(&["get", "rpp", "auth-api", "-n", &env.ns.name, "-o", "custom-columns=W:.status.waitingFor"]);
    assert!(String::from_utf8_lossy(&column.stdout).contains("freeze incident until"), "{column:?}");
    // Longer than the step's pause (3s) and progressDeadline (10s), over many reconciles.
    let analyses = env.operator.counter("redis_pool_operator_analyses_total").await;
    let reconciles = env.operator.counter("redis_pool_operator_reconciles_total").await;
    env.wait_reconciles(reconciles + 15.0, Duration::from_secs(60)).await;
    let s = env.status("auth-api").await;
    assert_eq!((s.phase, s.step), (Phase::Progressing, Some(0)), "moved inside the window: {:?}", s.message);
    let analysed = env.operator.counter("redis_pool_operator_analyses_total").await - analyses;
    assert!(analysed >= 5.0, "analyses stopped inside the window: {analysed} in 15 reconciles");
    set_windows(&env, serde_json::json!([])).await;
    env.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(90)).await;
    let reasons: Vec<String> = env.events().await.into_iter().map(|(r, _)| r).collect();
    assert_eq!(reasons.iter().filter(|r| *r == "FreezeHolds").count(), 1, "{reasons:?}");
    assert!(reasons.contains(&"FreezeEnded".to_string()), "{reasons:?}");
}

/// The operator's cluster-wide window holds a new rollout before it starts: nothing is created,
/// the policy is Waiting and names `cluster/NAME`; the window ends by itself and the rollout
/// starts without anyone touching the policy.
#[tokio::test]
async fn a_cluster_window_holds_every_new_rollout_until_it_ends() {
    let ns = TestNamespace::new("freeze-cluster").await;
    create_target(&ns, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("cluster-settings.yaml");
    let ends_in = 20;
    let w = window("change-freeze", -60, ends_in);
    std::fs::write(&settings, serde_yaml::to_string(&serde_json::json!({"freezeWindows": [w]})).unwrap()).unwrap();
    let operator = Operator::start_with(
        &cluster().kubeconfig,
        &ns.name,
        &["--cluster-settings", settings.to_str().unwrap()],
        "freeze-cluster",
    );
    let env = Env { ns, operator, started: std::time::Instant::now() };
    let _fleet = env.fleet(all_pods(Health::good()));
    env.apply(policy("auth-api")).await;
    let s = env.wait_phase("auth-api", Phase::Waiting, Duration::from_secs(30)).await;
    assert_eq!(s.freeze.as_ref().unwrap().window, "cluster/change-freeze");
    assert!(s.waiting_for.as_deref().unwrap().starts_with("freeze cluster/change-freeze until"), "{s:?}");
    assert!(env.canary().await.is_none(), "a canary was made inside the window");
    let started =
        env.wait_status("auth-api", "the rollout started", Duration::from_secs(60), |s| s.started_at.is_some()).await;
    let end = w["end"].as_str().unwrap().parse::<Timestamp>().unwrap();
    assert!(started.started_at.unwrap().0 >= end, "started before the window ended");
    env.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(90)).await;
}
