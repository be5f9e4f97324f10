//! Living among other actors, end to end on the real control plane: a real HPA (the local
//! controller-manager runs the HPA controller), a GitOps tool re-applying the target with
//! server-side apply, a canary pod lost mid-soak, a second policy, a foreign finalizer, an env
//! var set from a ConfigMap, and an operator restart between analyses.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use redis_pool_operator::core::api::{Outcome, Phase, RedisPoolPolicyStatus};
use support::fleet::Health;
use support::recorder::Recorder;
use support::scenario::*;
use support::*;

/// Tests that cordon the nodes hold this exclusively; the others share it, so that no test's pods
/// meet a cordoned cluster that another test made.
fn nodes() -> &'static tokio::sync::RwLock<()> {
    static NODES: std::sync::OnceLock<tokio::sync::RwLock<()>> = std::sync::OnceLock::new();
    NODES.get_or_init(Default::default)
}

/// Managers that owned the target's `spec.replicas` at any sampled instant.
fn replicas_owners(d: &Deployment) -> Vec<String> {
    d.metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.fields_v1.as_ref().is_some_and(|f| f.0.pointer("/f:spec/f:replicas").is_some()))
        .filter_map(|m| m.manager.clone())
        .collect()
}

fn condition<'a>(
    s: &'a RedisPoolPolicyStatus,
    type_: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    s.conditions.iter().find(|c| c.type_ == type_).unwrap_or_else(|| panic!("no {type_} condition: {:?}", s.conditions))
}

/// With a real HPA on the target, a rollout completes while the target's replicas are written by
/// the HPA alone; canary pods run beside its stable; the budget counts `maxReplicas`.
#[tokio::test]
async fn with_an_hpa_the_target_replicas_are_the_hpas_alone() {
    let _nodes = nodes().read().await;
    let env = Env::new("hpa", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    // minReplicas above the current 10: the HPA controller scales to 12 without any metrics API.
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(serde_json::json!({
        "metadata": {"name": TARGET},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": TARGET},
                 "minReplicas": 12, "maxReplicas": 16}
    }))
    .unwrap();
    env.ns.api::<HorizontalPodAutoscaler>().create(&PostParams::default(), &hpa).await.unwrap();
    let deployments = env.deployments();
    wait_until("the HPA to scale the target to its minReplicas", Duration::from_secs(60), || {
        let d = deployments.clone();
        async move { (d.get(TARGET).await.ok()?.spec.replicas == Some(12)).then_some(()) }
    })
    .await;
    // Every version of the target during the whole rollout, to see who owned its replicas.
    let recorded = Recorder::start(deployments.clone()).await;
    let mut p = policy("auth-api");
    p["spec"]["tiers"][1].as_object_mut().unwrap().remove("replicas");
    env.apply(p).await;
    let s = env
        .wait_status("auth-api", "step 1 soaking beside the stable", Duration::from_secs(60), |s| {
            s.step_started_at.is_some()
        })
        .await;
    let r = s.replicas.clone().unwrap();
    assert_eq!((r.stable, r.canary), (12, 1), "10% beside 12 stable pods is one canary pod");
    let autoscaled = condition(&s, "Autoscaled");
    assert_eq!(autoscaled.status, "True");
    assert!(
        autoscaled.message.contains("HorizontalPodAutoscaler auth-api (12..16 replicas)"),
        "{}",
        autoscaled.message
    );
    let budget = condition(&s, "BudgetOk");
    // 16 stable + 4 surge at 160 beside 16 canary pods at 160: the worst case at maxReplicas.
    assert!(budget.message.contains("planned peak of 5760 connections"), "{}", budget.message);
    let done = env.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(120)).await;
    let target = env.target().await;
    assert_eq!(target.spec.replicas, Some(12), "the HPA's replicas stand");
    assert_eq!(env_of(&target, "WORKERS").as_deref(), Some("4"));
    assert!(env.canary().await.is_none());
    recorded.sync().await;
    let versions: Vec<Deployment> = recorded.versions_of(TARGET).into_iter().flatten().collect();
    assert!(versions.len() > 1, "the recorder saw the target change");
    let owners: Vec<String> = versions.iter().flat_map(replicas_owners).collect();
    assert!(!owners.is_empty(), "the HPA's ownership of the replicas was seen");
    assert!(
        owners.iter().all(|m| m != "redis-pool-operator"),
        "the operator owned the target's replicas at some point: {owners:?}"
    );
    assert_eq!(done.history[0].outcome, Outcome::Succeeded);
}

/// A canary pod lost for a few seconds late in a soak, long after `progressDeadline` since the
/// soak began, pauses the soak clock; it neither restarts the soak nor rolls back.
#[tokio::test]
async fn a_canary_pod_lost_late_in_a_soak_does_not_fail_the_rollout() {
    let _nodes = nodes().write().await;
    let env = Env::new("disrupt", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let mut p = policy("auth-api");
    p["spec"]["rollout"]["steps"][0]["pause"] = serde_json::json!("20s");
    p["spec"]["rollout"]["analysis"]["progressDeadline"] = serde_json::json!("8s");
    env.apply(p).await;
    let s =
        env.wait_status("auth-api", "step 1 soaking", Duration::from_secs(60), |s| s.step_started_at.is_some()).await;
    let began = s.step_started_at.clone().unwrap();
    // Past the deadline since the soak began, with the operator seen awake in that time: cordon
    // every node and evict the canary pod.
    let awake = env.operator.counter("redis_pool_operator_reconciles_total").await;
    let late = began.0 + jiff::SignedDuration::from_secs(10);
    wait_until("10 s into the soak", Duration::from_secs(30), || async {
        (jiff::Timestamp::now() >= late).then_some(())
    })
    .await;
    env.wait_reconciles(awake + 2.0, Duration::from_secs(30)).await;
    assert_eq!(env.status("auth-api").await.step, Some(0), "still soaking the first step");
    cordon(&env, true).await;
    let pods: Api<Pod> = env.ns.api();
    let canary_pods = pods.list(&ListParams::default().labels("redispool.io/track=canary")).await.unwrap().items;
    assert_eq!(canary_pods.len(), 1);
    pods.delete(&canary_pods[0].metadata.name.clone().unwrap(), &DeleteParams::default()).await.unwrap();
    env.wait_status("auth-api", "the soak to pause", Duration::from_secs(15), |s| {
        s.soak.as_ref().is_some_and(|k| k.unavailable_since.is_some())
    })
    .await;
    // The pod stays lost while the operator looks again, twice.
    let seen = env.operator.counter("redis_pool_operator_reconciles_total").await;
    env.wait_reconciles(seen + 2.0, Duration::from_secs(30)).await;
    cordon(&env, false).await;
    let s = env
        .wait_status("auth-api", "the soak to resume", Duration::from_secs(30), |s| {
            s.soak.as_ref().is_some_and(|k| k.running_since.is_some()) || s.step != Some(0)
        })
        .await;
    assert_eq!(s.phase, Phase::Progressing, "{:?}", s.message);
    assert_eq!(s.step_started_at, Some(began), "the soak restarted");
    let done = env.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(120)).await;
    assert!(done.failed.is_none());
    let reasons: Vec<String> = env.events().await.into_iter().map(|(r, _)| r).collect();
    for r in ["SoakPaused", "SoakResumed"] {
        assert!(reasons.iter().any(|x| x == r), "no {r} Event: {reasons:?}");
    }
    assert!(!reasons.iter().any(|x| x == "RollingBack"), "rolled back: {reasons:?}");
}

/// The target as a GitOps tool holds it in Git (the old pool), applied with server-side apply
/// under Argo CD's field manager.
fn gitops_apply(ns: &str) -> std::process::Output {
    let manifest = format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: {TARGET}, namespace: {ns}}}
spec:
  selector: {{matchLabels: {{app: {TARGET}}}}}
  template:
    metadata: {{labels: {{app: {TARGET}}}}}
    spec:
      containers:
      - name: api
        image: example/auth-api:1
        env:
        - {{name: LOG_LEVEL, value: info}}
        - {{name: DEPLOYMENT_ENV, value: production}}
        - {{name: WORKERS, value: "2"}}
        - {{name: REDIS_POOL_MAX_CONNECTIONS, value: "30"}}
"#
    );
    let path = std::env::temp_dir().join(format!("rpo-gitops-{ns}.yaml"));
    std::fs::write(&path, manifest).unwrap();
    cluster().kubectl(&[
        "apply",
        "--server-side",
        "--field-manager=argocd-controller",
        "--force-conflicts",
        "-f",
        path.to_str().unwrap(),
    ])
}

/// Two GitOps reverts after a promotion start at most one new rollout; the policy names the
/// field manager. The canary never carries GitOps or Helm tracking metadata.
#[tokio::test]
async fn gitops_reverts_start_at_most_one_new_rollout() {
    let _nodes = nodes().read().await;
    let env = Env::new("gitops", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let tracking = serde_json::json!({"metadata": {
        "labels": {"app.kubernetes.io/instance": "auth", "app.kubernetes.io/managed-by": "Helm"},
        "annotations": {"argocd.argoproj.io/tracking-id": "auth:apps/Deployment:x/auth-api", "meta.helm.sh/release-name": "auth"}
    }});
    env.deployments().patch(TARGET, &PatchParams::default(), &Patch::Merge(&tracking)).await.unwrap();
    env.apply(policy("auth-api")).await;
    env.wait_status("auth-api", "a canary", Duration::from_secs(30), |s| s.step_started_at.is_some()).await;
    let canary = env.canary().await.expect("a canary");
    let keys: Vec<String> = canary
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_keys()
        .chain(canary.metadata.annotations.clone().unwrap_or_default().into_keys())
        .collect();
    for k in [
        "app.kubernetes.io/instance",
        "app.kubernetes.io/managed-by",
        "argocd.argoproj.io/tracking-id",
        "meta.helm.sh/release-name",
    ] {
        assert!(!keys.iter().any(|x| x == k), "the canary carries {k}: {keys:?}");
    }
    env.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(120)).await;
    // Identical Events fold into one series, so rollouts are counted in the policy's history.
    let promotions = |s: &RedisPoolPolicyStatus| s.history.iter().filter(|h| h.outcome == Outcome::Succeeded).count();

    // First revert: one automatic re-rollout, which names the field manager.
    let o = gitops_apply(&env.ns.name);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = env
        .wait_status("auth-api", "the re-rollout to succeed", Duration::from_secs(120), |s| {
            s.phase == Phase::Succeeded && s.history.len() >= 2
        })
        .await;
    assert_eq!(promotions(&s), 2, "{:?}", s.history);
    assert_eq!(
        s.overridden.as_ref().map(|o| (o.by.as_str(), o.rerollouts)),
        Some(("field manager argocd-controller", 1))
    );
    let events = env.events().await;
    assert!(events.iter().any(|(r, m)| r == "EnvOverridden" && m.contains("argocd-controller")), "{events:?}");

    // Second revert: no new rollout; the policy waits and says who and what.
    let o = gitops_apply(&env.ns.name);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = env.wait_phase("auth-api", Phase::Overridden, Duration::from_secs(30)).await;
    let msg = s.message.clone().unwrap();
    assert!(msg.contains("argocd-controller") && msg.contains("WORKERS"), "{msg}");
    assert_eq!(condition(&s, "EnvOwned").status, "False");
    // A window that must stay quiet, while the operator is seen to be awake in it.
    let reconciles = env.operator.counter("redis_pool_operator_reconciles_total").await;
    let writes = env.operator.counter("redis_pool_operator_writes_total").await;
    wait_until("reconciles in the quiet window", Duration::from_secs(30), || {
        let env = &env;
        async move { (env.operator.counter("redis_pool_operator_reconciles_total").await > reconciles + 2.0).then_some(()) }
    })
    .await;
    assert_eq!(env.operator.counter("redis_pool_operator_writes_total").await, writes, "the Overridden state wrote");
    let s = env.status("auth-api").await;
    assert_eq!(
        (s.phase, promotions(&s), s.history.len()),
        (Phase::Overridden, 2, 2),
        "another rollout: {:?}",
        s.history
    );
    assert!(env.canary().await.is_none());
    assert_eq!(env_of(&env.target().await, "WORKERS").as_deref(), Some("2"), "Git's value stands");
}

/// One policy per target: a second one is refused by name and touches nothing; a foreign
/// finalizer on a policy survives the operator's own.
#[tokio::test]
async fn a_second_policy_is_refused_and_a_foreign_finalizer_survives() {
    let _nodes = nodes().read().await;
    let env = Env::new("identity", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let mut first = policy("first");
    first["metadata"]["finalizers"] = serde_json::json!(["example.com/keep"]);
    first["spec"]["rollout"]["steps"][0]["pause"] = serde_json::json!("10m");
    env.apply(first).await;
    env.wait_status("first", "step 1 soaking", Duration::from_secs(30), |s| s.step_started_at.is_some()).await;
    let finalizers = env.policies().get("first").await.unwrap().metadata.finalizers.unwrap_or_default();
    assert!(finalizers.contains(&"example.com/keep".to_string()), "{finalizers:?}");
    assert!(finalizers.contains(&"redispool.io/restore-target".to_string()), "{finalizers:?}");

    let canary_generation = env.canary().await.unwrap().metadata.generation;
    env.apply(policy("second")).await;
    let s = env.wait_phase("second", Phase::Conflict, Duration::from_secs(30)).await;
    assert!(s.message.clone().unwrap().contains(&format!("RedisPoolPolicy {}/first", env.ns.name)), "{:?}", s.message);
    assert_eq!(
        env.canary().await.unwrap().metadata.generation,
        canary_generation,
        "the second policy touched the canary"
    );
    assert_eq!(env.status("first").await.phase, Phase::Progressing);
    assert_eq!(env.target().await.spec.replicas, Some(9));
}

/// A pool env var set from a ConfigMap is a clear condition, never an endless apply error.
#[tokio::test]
async fn a_value_from_on_a_pool_var_is_reported_not_fought() {
    let _nodes = nodes().read().await;
    let env = Env::new("valuefrom", 4).await;
    let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "api", "env": [
        {"name": "WORKERS", "value": null, "valueFrom": {"configMapKeyRef": {"name": "pool", "key": "workers"}}}
    ]}]}}}});
    env.deployments().patch(TARGET, &PatchParams::default(), &Patch::Strategic(&patch)).await.unwrap();
    let generation = env.target().await.metadata.generation;
    env.apply(policy("auth-api")).await;
    let s = env.wait_phase("auth-api", Phase::Invalid, Duration::from_secs(30)).await;
    let msg = s.message.unwrap();
    assert!(msg.contains("WORKERS") && msg.contains("valueFrom"), "{msg}");
    // Reconciles go on (woken by a touch of the policy) without errors or writes to the target.
    let errors = env.operator.counter("redis_pool_operator_reconcile_errors_total").await;
    let reconciles = env.operator.counter("redis_pool_operator_reconciles_total").await;
    env.annotate_noop("auth-api").await;
    env.wait_reconciles(reconciles + 1.0, Duration::from_secs(30)).await;
    assert_eq!(env.operator.counter("redis_pool_operator_reconcile_errors_total").await, errors, "an error loop");
    assert!(env.canary().await.is_none());
    assert_eq!(env.target().await.metadata.generation, generation, "the target was written");
}

/// A burst of pool exhaustion long before an operator restart never counts as fresh after it.
#[tokio::test]
async fn counter_baselines_survive_an_operator_restart() {
    let _nodes = nodes().read().await;
    let mut env = Env::new("baseline", 10).await;
    let burst = Health { exhaustion_on_first_scrape: 3, ..Health::good() };
    let _fleet = env.fleet(canary_pods(burst));
    let mut p = policy("auth-api");
    p["spec"]["rollout"]["steps"][0]["pause"] = serde_json::json!("10m");
    p["spec"]["rollout"]["analysis"]["failureLimit"] = serde_json::json!(5);
    env.apply(p).await;
    // The burst is seen once (a Fail), then the pod is healthy (Pass resets the count).
    env.wait_status("auth-api", "a passing analysis after the burst", Duration::from_secs(60), |s| {
        s.analysis.as_ref().is_some_and(|a| a.verdict == redis_pool_operator::core::analysis::Verdict::Pass)
    })
    .await;
    let failed_before = env.events().await.iter().filter(|(r, _)| r == "AnalysisFailed").count();
    assert_eq!(failed_before, 1, "the burst was counted once");
    let restarted = Instant::now();
    env.operator.restart();
    let at_restart = jiff::Timestamp::now();
    let s = env
        .wait_status("auth-api", "an analysis after the restart", Duration::from_secs(30), |s| {
            s.analysis.as_ref().is_some_and(|a| a.at.0 > at_restart)
        })
        .await;
    let a = s.analysis.unwrap();
    assert_ne!(
        a.verdict,
        redis_pool_operator::core::analysis::Verdict::Fail,
        "the old burst counted again: {:?}",
        a.gates
    );
    let reconciles = env.operator.counter("redis_pool_operator_reconciles_total").await;
    env.wait_reconciles(reconciles + 3.0, Duration::from_secs(30)).await;
    let failed_after = env.events().await.iter().filter(|(r, _)| r == "AnalysisFailed").count();
    assert_eq!(failed_after, failed_before, "a stale Fail after the restart ({:?} ago)", restarted.elapsed());
}

/// In namespaced mode a standby becomes Ready with only the chart's namespaced Role.
#[tokio::test]
async fn standbys_become_ready_in_namespaced_mode() {
    let _nodes = nodes().read().await;
    let ns = TestNamespace::new("standby").await;
    let release_ns = format!("{}-op", ns.name);
    let namespace = format!("watchNamespace={}", ns.name);
    let install = helm(&[
        "install",
        "standby",
        "charts/redis-pool-operator",
        "-n",
        &release_ns,
        "--create-namespace",
        "--set",
        &namespace,
        "--set",
        "environment=production",
        "--skip-crds",
    ]);
    assert!(install.status.success(), "{}", String::from_utf8_lossy(&install.stderr));
    let kubeconfig = service_account_kubeconfig(&release_ns, "standby-redis-pool-operator").await;
    let args =
        ["--leader-election", "--lease-namespace", release_ns.as_str(), "--lease-name", "rpo", "--lease-duration", "4"];
    let a = support::operator::Operator::start_with(
        &kubeconfig,
        &ns.name,
        &[&args[..], &["--instance", "a"]].concat(),
        "-a",
    );
    let b = support::operator::Operator::start_with(
        &kubeconfig,
        &ns.name,
        &[&args[..], &["--instance", "b"]].concat(),
        "-b",
    );
    for (name, op) in [("a", &a), ("b", &b)] {
        wait_until(
            &format!("operator {name} to be Ready (log {})", op.log.display()),
            Duration::from_secs(30),
            || async { op.is_ready().await.then_some(()) },
        )
        .await;
    }
    let logs = std::fs::read_to_string(&a.log).unwrap() + &std::fs::read_to_string(&b.log).unwrap();
    assert!(!logs.contains("forbidden"), "a permission is missing:\n{logs}");
}

/// Cordons (or uncordons) every node: new pods stay Pending until uncordoned.
async fn cordon(env: &Env, on: bool) {
    let nodes: Api<Node> = Api::all(env.ns.client.clone());
    for n in nodes.list(&ListParams::default()).await.unwrap().items {
        let patch = serde_json::json!({"spec": {"unschedulable": on}});
        nodes.patch(&n.metadata.name.unwrap(), &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    }
}

/// A canary a person scales and edits is put back to the spec the operator applies.
#[tokio::test]
async fn a_canary_edited_by_a_person_is_restored() {
    let _nodes = nodes().read().await;
    let env = Env::new("canaryedit", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let mut p = policy("auth-api");
    p["spec"]["rollout"]["steps"][0]["pause"] = serde_json::json!("10m");
    env.apply(p).await;
    env.wait_status("auth-api", "step 1 soaking", Duration::from_secs(30), |s| s.step_started_at.is_some()).await;
    let edit = serde_json::json!({"spec": {"replicas": 4, "template": {"spec": {"containers": [{"name": "api", "image": "example/auth-api:hacked"}]}}}});
    let name = redis_pool_operator::core::api::canary_name(TARGET);
    env.deployments().patch(&name, &PatchParams::default(), &Patch::Strategic(&edit)).await.unwrap();
    let deployments = env.deployments();
    let canary = wait_until("the canary to be put back", Duration::from_secs(30), || {
        let (d, name) = (deployments.clone(), name.clone());
        async move {
            let c = d.get(&name).await.ok()?;
            let image = c.spec.template.spec.as_ref()?.containers[0].image.clone();
            (c.spec.replicas == Some(1) && image.as_deref() == Some("example/auth-api:1")).then_some(c)
        }
    })
    .await;
    assert_eq!(env_of(&canary, "WORKERS").as_deref(), Some("4"));
    assert_eq!(env.status("auth-api").await.phase, Phase::Progressing);
}

/// A promotion whose target cannot roll out (no node takes its pods) becomes Degraded after
/// `progressDeadline`, keeps the canary serving, and completes once the pods can run.
#[tokio::test]
async fn a_stalled_promotion_is_degraded_then_completes() {
    let _nodes = nodes().write().await;
    let env = Env::new("stalled", 4).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let mut p = policy("auth-api");
    p["spec"]["tiers"][1]["replicas"] = serde_json::json!(4);
    p["spec"]["rollout"]["analysis"]["progressDeadline"] = serde_json::json!("5s");
    env.apply(p).await;
    env.wait_status("auth-api", "the last step soaking", Duration::from_secs(60), |s| {
        s.step == Some(2) && s.step_started_at.is_some()
    })
    .await;
    cordon(&env, true).await;
    let s = env.wait_phase("auth-api", Phase::Degraded, Duration::from_secs(60)).await;
    cordon(&env, false).await;
    assert!(s.message.as_deref().unwrap().contains("within progressDeadline 5s"), "{:?}", s.message);
    assert_eq!(env.canary().await.and_then(|c| c.spec.replicas), Some(4), "the canary keeps serving");
    assert!(env.events().await.iter().any(|(r, _)| r == "PromotionStalled"));
    let s = env.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(60)).await;
    assert_eq!(s.history[0].outcome, Outcome::Succeeded);
    assert!(env.canary().await.is_none());
}
