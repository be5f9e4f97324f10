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

/// A policy gated on a person before step 2: the step soaks and holds (past its deadline) until
/// `kubectl redispool approve`, which the operator records with the caller's user name.
#[tokio::test]
async fn a_person_approves_a_step_with_the_plugin_and_is_named() {
    let env = Env::new("approve", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let mut p = policy("auth-api");
    p["spec"]["rollout"]["approvals"] = serde_json::json!([{"before": "step-2", "by": "Person"}]);
    env.apply(p).await;
    let waiting = env
        .wait_status("auth-api", "step 2 waiting for a person", Duration::from_secs(30), |s| {
            s.pending_approval.is_some()
        })
        .await;
    assert_eq!(waiting.waiting_for.as_deref(), Some("approval step-2: person"));
    // Held past the step's pause and progressDeadline (10s) without rolling back.
    let reconciles = env.operator.counter("redis_pool_operator_reconciles_total").await;
    env.wait_reconciles(reconciles + 12.0, Duration::from_secs(60)).await;
    let s = env.status("auth-api").await;
    assert_eq!((s.phase, s.step), (Phase::Progressing, Some(0)), "{:?}", s.message);
    let shown = out(&plugin(&env.ns.name, &["status", "auth-api"]).await);
    assert!(shown.contains("step-2 waits for a person (kubectl redispool approve auth-api)"), "{shown}");

    let o = plugin(&env.ns.name, &["approve", "auth-api", "--timeout", "30s"]).await;
    assert!(o.status.success(), "{}{}", out(&o), String::from_utf8_lossy(&o.stderr));
    assert!(out(&o).contains("Approved: step-2 of pool configuration"), "{}", out(&o));
    let s = env.status("auth-api").await;
    let who = &s.approvals.first().expect("the approval is recorded").who;
    // The API server's name for this kubeconfig's user (a SelfSubjectReview), not a guess.
    let review: k8s_openapi::api::authentication::v1::SelfSubjectReview =
        kube::Api::all(cluster().client().await).create(&Default::default(), &Default::default()).await.unwrap();
    assert_eq!(Some(who.clone()), review.status.and_then(|s| s.user_info).and_then(|u| u.username));
    env.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(90)).await;
    let annotations = env.policies().get("auth-api").await.unwrap().metadata.annotations.unwrap_or_default();
    assert!(!annotations.contains_key("redispool.io/approved-by"), "left behind: {annotations:?}");
}

/// A pre-rollout check on a loopback webhook: it says no twice (the policy is Blocked with its
/// answer, nothing is created), then yes; the rollout starts and completes. Every request
/// carries the documented body.
#[tokio::test]
async fn a_pre_rollout_check_says_no_then_yes() {
    let env = Env::new("pre-check", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let webhook = support::receiver::Receiver::start(std::sync::Arc::new(|n, _| match n {
        0 | 1 => support::receiver::Reply::Status(409, "change CHG-42 is not approved yet".into()),
        _ => support::receiver::Reply::Status(204, String::new()),
    }))
    .await;
    let secrets: kube::Api<k8s_openapi::api::core::v1::Secret> = env.ns.api();
    let secret = serde_json::json!({"metadata": {"name": "change-ticket"}, "stringData": {"url": format!("{}/approve?token=s3cret", webhook.url)}});
    secrets.create(&Default::default(), &serde_json::from_value(secret).unwrap()).await.unwrap();
    let mut p = policy("auth-api");
    p["spec"]["rollout"]["approvals"] = serde_json::json!([{"before": "start", "by": "Webhook",
        "webhook": {"urlSecretRef": {"name": "change-ticket", "key": "url"}, "timeoutSeconds": 5}}]);
    env.apply(p).await;
    let blocked = env.wait_phase("auth-api", Phase::Blocked, Duration::from_secs(30)).await;
    let msg = blocked.message.unwrap();
    assert!(msg.contains("webhook change-ticket: HTTP 409: change CHG-42 is not approved yet"), "{msg}");
    assert!(!msg.contains("s3cret") && !msg.contains("127.0.0.1"), "the URL leaked: {msg}");
    assert!(env.canary().await.is_none());
    env.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(90)).await;
    let requests = webhook.received();
    assert!(requests.len() >= 3, "{requests:?}");
    let body = requests[0].json();
    assert_eq!((body["kind"].as_str(), body["gate"].as_str()), (Some("ApprovalRequest"), Some("start")));
    assert_eq!(body["policy"]["name"], "auth-api");
    assert_eq!(body["pool"]["connectionsPerWorker"], 40);
    assert_eq!(requests[0].path, "/approve");
    let s = env.status("auth-api").await;
    assert!(s.approvals.is_empty(), "used up with the rollout");
    let events = env.events().await;
    assert!(
        events.iter().any(|(r, m)| r == "Approved" && m.contains("approved by webhook change-ticket")),
        "{events:?}"
    );
    assert!(events.iter().all(|(_, m)| !m.contains("s3cret")), "the URL leaked into an Event");
}

/// Mid-incident, `kubectl redispool undo` returns to the configuration that ran before the last
/// promotion: refused while GitOps owns the pool fields (it says what to change in Git), then,
/// with --force, written back and, within `rollbackWindow`, promoted in one step: no canary, no
/// step, the old pool in the target.
#[tokio::test]
async fn undo_returns_to_the_last_good_configuration_in_one_step() {
    let env = Env::new("undo", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let mut p = policy("auth-api");
    // What the target runs (2 x 30) first, then 4 x 40.
    p["spec"]["tiers"][1]["workers"] = 2.into();
    p["spec"]["tiers"][1]["connectionsPerWorker"] = 30.into();
    p["spec"]["rollout"]["rollbackWindow"] = serde_json::json!({"revisions": 1});
    env.apply(p).await;
    env.wait_status("auth-api", "2 x 30 in place", Duration::from_secs(90), |s| {
        matches!(s.phase, Phase::Idle | Phase::Succeeded) && !s.succeeded.is_empty()
    })
    .await;
    let gitops = PatchParams { field_manager: Some("argocd-controller".into()), ..Default::default() };
    let bigger = serde_json::json!({"spec": {"tiers": [
        {"name": "staging", "workers": 2, "connectionsPerWorker": 30},
        {"name": "production", "workers": 4, "connectionsPerWorker": 40, "replicas": 10}]}});
    env.policies().patch("auth-api", &gitops, &Patch::Merge(&bigger)).await.unwrap();
    env.wait_status("auth-api", "4 x 40 promoted", Duration::from_secs(90), |s| {
        s.phase == Phase::Succeeded && s.succeeded.len() >= 2
    })
    .await;
    assert_eq!(env_of(&env.target().await, "WORKERS").as_deref(), Some("4"));

    let refused = plugin(&env.ns.name, &["undo", "auth-api"]).await;
    let said = String::from_utf8_lossy(&refused.stderr).to_string();
    assert_eq!(refused.status.code(), Some(1), "{said}");
    assert!(said.contains("written by argocd-controller") && said.contains("change them in Git"), "{said}");
    assert!(said.contains("workers: 2\n      connectionsPerWorker: 30"), "{said}");
    assert_eq!(env.policies().get("auth-api").await.unwrap().spec.tiers[1].workers, 4, "refused, unchanged");

    let steps = env.events().await.iter().filter(|(r, _)| r == "StepAdvanced").count();
    let undone = plugin(&env.ns.name, &["undo", "auth-api", "--force"]).await;
    assert!(undone.status.success(), "{}", String::from_utf8_lossy(&undone.stderr));
    assert!(out(&undone).contains("promoted without steps"), "{}", out(&undone));
    let s = env
        .wait_status("auth-api", "back on 2 x 30", Duration::from_secs(60), |s| {
            s.phase == Phase::Succeeded
                && s.stable.as_ref().and_then(|c| c.plan.as_ref()).is_some_and(|p| p.workers == 2)
        })
        .await;
    assert_eq!(env_of(&env.target().await, "WORKERS").as_deref(), Some("2"));
    assert_eq!(s.history[0].outcome, redis_pool_operator::core::api::Outcome::Succeeded);
    let events = env.events().await;
    assert_eq!(events.iter().filter(|(r, _)| r == "StepAdvanced").count(), steps, "the undo took a step");
    assert!(
        events.iter().any(|(r, m)| r == "RolloutStarted" && m.starts_with("fast undo to pool configuration")),
        "{events:?}"
    );
}
