//! End to end: the operator process against a real control plane, kwok pods, scripted pool
//! health on the pods' loopback IPs, and a real redis-server.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use redis_pool_operator::core::api::VerdictResult;
use redis_pool_operator::core::api::{FINALIZER, Phase, RedisPoolPolicy};
use support::fleet::Health;
use support::recorder::Recorder;
use support::scenario::*;
use support::*;

#[tokio::test]
async fn promotes_through_10_50_100_and_then_writes_nothing() {
    let env = Env::new("promote", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let watcher = Watcher::start(env.deployments()).await;
    env.apply(policy("auth-api")).await;
    let status = env.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(120)).await;
    let took = env.started.elapsed();

    let target = env.target().await;
    assert_eq!(target.spec.replicas, Some(10));
    assert_eq!(env_of(&target, "WORKERS").as_deref(), Some("4"));
    assert_eq!(env_of(&target, "REDIS_POOL_MAX_CONNECTIONS").as_deref(), Some("40"));
    assert_eq!(env_of(&target, "LOG_LEVEL").as_deref(), Some("info"), "foreign env vars are untouched");
    assert!(env.canary().await.is_none(), "the canary is removed");
    assert_eq!(target.spec.template.spec.as_ref().unwrap().containers[0].image.as_deref(), Some("example/auth-api:1"));

    let splits = watcher.splits().await;
    for step in [(1, 9), (5, 5), (10, 0)] {
        assert!(splits.contains(&step), "split {step:?} never observed: {splits:?}");
    }
    watcher.assert_capacity(10, 2).await;
    let reasons: Vec<String> = env.events().await.into_iter().map(|(r, _)| r).collect();
    let count = |r: &str| reasons.iter().filter(|x| *x == r).count();
    for (r, n) in [("RolloutStarted", 1), ("StepStarted", 3), ("StepAdvanced", 2), ("Promoting", 1), ("Promoted", 1)] {
        assert_eq!(count(r), n, "{r} Events: {reasons:?}");
    }
    assert_eq!(status.history[0].outcome, redis_pool_operator::core::api::Outcome::Succeeded);

    // After the promotion, analyses of the target's own pods soak its verdict (3s here).
    let status = env
        .wait_status("auth-api", "the verdict soaked 3s", Duration::from_secs(30), |s| {
            s.verdicts.first().is_some_and(|v| v.soaked_seconds >= 3)
        })
        .await;
    let v = &status.verdicts[0];
    assert_eq!((v.result, v.environment.as_str()), (VerdictResult::Succeeded, "production"));
    assert_eq!(v.pool.connections_per_worker, 40);
    let a = status.analysis.as_ref().unwrap();
    assert!(a.after_promotion && a.verdict == redis_pool_operator::core::analysis::Verdict::Pass, "{a:?}");

    // Steady state: a reconcile (woken by a touch of the policy) writes nothing.
    let writes = env.operator.counter("redis_pool_operator_writes_total").await;
    let reconciles = env.operator.counter("redis_pool_operator_reconciles_total").await;
    let gets = r#"redis_pool_operator_api_requests_total{verb="get"}"#;
    let got = env.operator.counter(gets).await;
    env.annotate_noop("auth-api").await;
    let rv = (
        env.policies().get("auth-api").await.unwrap().metadata.resource_version,
        env.target().await.metadata.generation,
    );
    env.wait_reconciles(reconciles + 1.0, Duration::from_secs(30)).await;
    assert_eq!(env.operator.counter("redis_pool_operator_writes_total").await, writes, "the steady state wrote");
    // The client counts its own requests by verb: the rollout read fresh objects before it
    // wrote, patched, and watched. A reconcile that changes nothing reads only its caches.
    let metrics = env.operator.metrics().await;
    for verb in ["get", "patch", "watch"] {
        let line = format!(r#"redis_pool_operator_api_requests_total{{verb="{verb}"}}"#);
        assert!(metrics.contains(&line), "no {verb} counted: {metrics}");
    }
    assert_eq!(env.operator.counter(gets).await, got, "a reconcile that changed nothing read from the API server");
    let rv2 = (
        env.policies().get("auth-api").await.unwrap().metadata.resource_version,
        env.target().await.metadata.generation,
    );
    assert_eq!(rv, rv2, "policy or target changed in the steady state");
    eprintln!("promotion took {took:?}");
}

async fn rolls_back_on(prefix: &str, canary: Health, gate: &str) {
    let env = Env::new(prefix, 10).await;
    let _fleet = env.fleet(canary_pods(canary));
    let watcher = Watcher::start(env.deployments()).await;
    env.apply(policy("auth-api")).await;
    let status = env.wait_phase("auth-api", Phase::RolledBack, Duration::from_secs(90)).await;
    let target = env.target().await;
    assert_eq!(target.spec.replicas, Some(10), "stable restored");
    assert_eq!(env_of(&target, "WORKERS").as_deref(), Some("2"), "the target keeps its old pool");
    assert!(env.canary().await.is_none(), "the canary is removed");
    let failed = status.failed.expect("the failed config is remembered");
    assert!(failed.reason.contains(gate), "rollback reason {:?} does not name {gate}", failed.reason);
    watcher.assert_capacity(10, 2).await;
    let events = env.events().await;
    assert!(events.iter().any(|(r, m)| r == "AnalysisFailed" && m.contains(gate)), "{events:?}");
    assert!(events.iter().any(|(r, _)| r == "RolledBack"), "{events:?}");
    // Not retried, although the operator looks again.
    let reconciles = env.operator.counter("redis_pool_operator_reconciles_total").await;
    env.annotate_noop("auth-api").await;
    env.wait_reconciles(reconciles + 1.0, Duration::from_secs(30)).await;
    assert!(env.canary().await.is_none(), "a rolled-back config was retried");
    assert_eq!(env.status("auth-api").await.phase, Phase::RolledBack);
    eprintln!("{prefix}: rolled back in {:?}", env.started.elapsed());
}

#[tokio::test]
async fn rolls_back_on_pool_utilization() {
    rolls_back_on("util", Health { utilization: 91.0, ..Health::good() }, "poolUtilization").await;
}

#[tokio::test]
async fn rolls_back_on_success_rate() {
    rolls_back_on("success", Health { success_rate: 97.0, ..Health::good() }, "successRate").await;
}

#[tokio::test]
async fn rolls_back_on_p95_latency() {
    rolls_back_on("latency", Health { latency_ms: 2000.0, ..Health::good() }, "p95LatencyMs").await;
}

#[tokio::test]
async fn rolls_back_on_pool_exhaustion() {
    rolls_back_on("exhaust", Health { exhaustion_per_scrape: 2, ..Health::good() }, "poolExhaustionEvents").await;
}

/// A real redis-server with a low `maxclients`, saturated by clients of the test: the server
/// rejects connections, and the operator reads `rejected_connections` and rolls back.
#[tokio::test]
async fn rolls_back_on_redis_connection_errors_from_a_real_server() {
    let redis = RedisServer::start(&[("maxclients", "20")]);
    let env = Env::new("redis", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let mut p = policy("auth-api");
    // The server's own maxclients (20) is far below the fleet; the budget is given explicitly so
    // that this test is about refused connections, not the budget.
    p["spec"]["redis"] = serde_json::json!({"address": redis.address(), "maxClients": 100000});
    env.apply(p).await;
    let addr = redis.address();
    let saturate = tokio::spawn(async move {
        // Bounded: at most 60 s of bursts of 25 connections against maxclients 20.
        for _ in 0..80 {
            let mut held = Vec::new();
            for _ in 0..25 {
                if let Ok(mut s) = tokio::net::TcpStream::connect(&addr).await {
                    use tokio::io::AsyncWriteExt;
                    let _ = s.write_all(b"PING\r\n").await;
                    held.push(s);
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            drop(held);
            tokio::time::sleep(Duration::from_millis(450)).await;
        }
    });
    let status = env.wait_phase("auth-api", Phase::RolledBack, Duration::from_secs(90)).await;
    saturate.abort();
    assert!(status.failed.unwrap().reason.contains("redisConnectionErrors"));
    assert!(env.canary().await.is_none());
    assert_eq!(env.target().await.spec.replicas, Some(10));
}

#[tokio::test]
async fn hold_zone_never_advances_and_rolls_back_at_the_deadline() {
    let env = Env::new("hold", 10).await;
    let _fleet = env.fleet(canary_pods(Health { utilization: 70.0, ..Health::good() }));
    env.apply(policy("auth-api")).await;
    let api = env.policies();
    let steps = Arc::new(Mutex::new(Vec::new()));
    let seen = steps.clone();
    let status = wait_until("a rollback after the progress deadline", Duration::from_secs(90), || {
        let api = api.clone();
        let seen = seen.clone();
        async move {
            let s = api.get("auth-api").await.ok()?.status?;
            seen.lock().unwrap().push(s.step);
            (s.phase == Phase::RolledBack).then_some(s)
        }
    })
    .await;
    assert!(steps.lock().unwrap().iter().all(|s| s.unwrap_or(0) == 0), "advanced past step 0 on Hold");
    let reason = status.failed.unwrap().reason;
    assert!(reason.contains("progressDeadline") && reason.contains("poolUtilization"), "{reason}");
    assert!(env.started.elapsed() >= Duration::from_secs(13), "rolled back before pause + deadline");
}

#[tokio::test]
async fn unreachable_pods_are_never_promoted() {
    let env = Env::new("nodata", 10).await;
    // Nobody serves the contract on canary pods: every analysis is a provider error.
    let _fleet = env.fleet(Arc::new(|p: &Pod| {
        let canary = p.metadata.labels.as_ref().and_then(|l| l.get("redispool.io/track")).is_some();
        (!canary).then(Health::good)
    }));
    env.apply(policy("auth-api")).await;
    let status = env.wait_phase("auth-api", Phase::RolledBack, Duration::from_secs(90)).await;
    assert!(status.history.iter().all(|h| h.outcome != redis_pool_operator::core::api::Outcome::Succeeded));
    let gates = status.analysis.unwrap().gates;
    assert!(gates.iter().all(|g| g.verdict == redis_pool_operator::core::analysis::Verdict::NoData), "{gates:?}");
    assert!(gates[0].message.contains("provider error"), "{gates:?}");
    assert_eq!(env_of(&env.target().await, "WORKERS").as_deref(), Some("2"));
}

#[tokio::test]
async fn a_plan_over_the_redis_budget_is_blocked_and_nothing_changes() {
    let redis = RedisServer::start(&[("maxclients", "1000")]);
    let env = Env::new("budget", 10).await;
    let before = env.target().await.metadata.generation;
    let mut p = policy("auth-api");
    p["spec"]["redis"] = serde_json::json!({"address": redis.address(), "maxClientsUtilization": 0.8});
    env.apply(p).await;
    let status = env.wait_phase("auth-api", Phase::Blocked, Duration::from_secs(30)).await;
    let msg = status.message.unwrap();
    // The promotion peak: the target's 10 new pods of 160 beside the canary's 10: 3200 > 800.
    assert!(msg.contains("3200") && msg.contains("800") && msg.contains("1000 maxclients"), "{msg}");
    let budget = status.conditions.iter().find(|c| c.type_ == "BudgetOk").unwrap();
    assert_eq!(budget.status, "False");
    // Blocked is a steady state too: no writes, although the budget is checked again and again.
    let writes = env.operator.counter("redis_pool_operator_writes_total").await;
    let reconciles = env.operator.counter("redis_pool_operator_reconciles_total").await;
    env.annotate_noop("auth-api").await;
    env.wait_reconciles(reconciles + 1.0, Duration::from_secs(30)).await;
    assert_eq!(
        env.operator.counter("redis_pool_operator_writes_total").await,
        writes,
        "the Blocked steady state wrote"
    );
    assert!(env.canary().await.is_none(), "a canary was created");
    assert_eq!(env.target().await.metadata.generation, before, "the target was changed");
    assert!(env.events().await.iter().any(|(r, _)| r == "BudgetExceeded"));
}

#[tokio::test]
async fn target_template_change_mid_rollout_restarts_with_a_reason() {
    let env = Env::new("template", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let mut p = policy("auth-api");
    p["spec"]["rollout"]["steps"][0]["pause"] = serde_json::json!("30s");
    env.apply(p).await;
    env.wait_status("auth-api", "step 1 under way", Duration::from_secs(30), |s| s.step_started_at.is_some()).await;
    let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": [{"name": "api", "image": "example/auth-api:2"}]}}}});
    env.deployments().patch(TARGET, &PatchParams::default(), &Patch::Strategic(&patch)).await.unwrap();
    let restarted = |s: &redis_pool_operator::core::api::RedisPoolPolicyStatus| {
        s.history.first().is_some_and(|h| h.outcome == redis_pool_operator::core::api::Outcome::Restarted)
    };
    let status = env.wait_status("auth-api", "a restart recorded in history", Duration::from_secs(60), restarted).await;
    assert!(status.history[0].reason.contains("pod template changed"), "{:?}", status.history);
    let events = env.events().await;
    assert!(events.iter().any(|(r, _)| r == "RolloutRestarted"), "{events:?}");
    // The canary now runs the new image, with the new pool.
    let canary = env.canary().await.expect("the canary carries on");
    let c = &canary.spec.template.spec.as_ref().unwrap().containers[0];
    assert_eq!(c.image.as_deref(), Some("example/auth-api:2"));
    assert_eq!(env_of(&canary, "WORKERS").as_deref(), Some("4"));
}

#[tokio::test]
async fn analyses_that_change_only_tallies_write_status_at_most_once_a_minute() {
    let env = Env::new("tallies", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let mut p = policy("auth-api");
    p["spec"]["rollout"]["steps"][0]["pause"] = serde_json::json!("10m");
    env.apply(p).await;
    let passing = |s: &redis_pool_operator::core::api::RedisPoolPolicyStatus| {
        s.analysis.as_ref().is_some_and(|a| a.verdict == redis_pool_operator::core::analysis::Verdict::Pass)
    };
    let before = env.wait_status("auth-api", "a passing analysis of step 1", Duration::from_secs(60), passing).await;
    let status_writes = r#"redis_pool_operator_writes_total{result="status"}"#;
    let written = env.operator.counter(status_writes).await;
    let analyses = env.operator.counter("redis_pool_operator_analyses_total").await;
    // One analysis a second (interval 1s), each passing again with new values.
    wait_until("five more analyses", Duration::from_secs(30), || {
        let env = &env;
        async move { (env.operator.counter("redis_pool_operator_analyses_total").await >= analyses + 5.0).then_some(()) }
    })
    .await;
    let writes = env.operator.counter(status_writes).await - written;
    assert!(writes <= 1.0, "{writes} status writes for 5 analyses that changed only tallies");
    let after = env.status("auth-api").await;
    assert_eq!((after.phase, after.step), (before.phase, before.step), "the rollout moved on");
    assert!(passing(&after), "the stored status still holds a passing analysis: {:?}", after.analysis);
}

#[tokio::test]
async fn manual_pause_resume_and_promote() {
    let env = Env::new("manual", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let mut p = policy("auth-api");
    p["spec"]["rollout"]["steps"][0]["pause"] = serde_json::json!("2s");
    p["spec"]["rollout"]["steps"][1]["pause"] = serde_json::json!("10m");
    env.apply(p).await;
    env.wait_status("auth-api", "step 1 soaking", Duration::from_secs(30), |s| s.step_started_at.is_some()).await;
    env.annotate("auth-api", "pause").await;
    env.wait_phase("auth-api", Phase::Paused, Duration::from_secs(15)).await;
    // Past the 2 s pause, over several reconciles (one per 1 s interval while paused).
    let reconciles = env.operator.counter("redis_pool_operator_reconciles_total").await;
    env.wait_reconciles(reconciles + 4.0, Duration::from_secs(30)).await;
    let s = env.status("auth-api").await;
    assert_eq!((s.phase, s.step), (Phase::Paused, Some(0)), "a paused rollout advanced");
    let annotations = env.policies().get("auth-api").await.unwrap().metadata.annotations.unwrap_or_default();
    assert!(!annotations.contains_key("redispool.io/action"), "the action annotation is consumed");
    env.annotate("auth-api", "resume").await;
    env.wait_status("auth-api", "step 2 after resume", Duration::from_secs(30), |s| s.step == Some(1)).await;
    // Step 2 soaks for ten minutes; a person promotes now.
    env.annotate("auth-api", "promote").await;
    env.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(60)).await;
    assert_eq!(env_of(&env.target().await, "WORKERS").as_deref(), Some("4"));
    let reasons: Vec<String> = env.events().await.into_iter().map(|(r, _)| r).collect();
    for r in ["Paused", "Resumed", "Promoting", "Promoted"] {
        assert!(reasons.contains(&r.to_string()), "no {r} Event: {reasons:?}");
    }
}

#[tokio::test]
async fn manual_abort_then_retry() {
    let env = Env::new("abort", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let mut p = policy("auth-api");
    p["spec"]["rollout"]["steps"][0]["pause"] = serde_json::json!("10m");
    env.apply(p).await;
    env.wait_status("auth-api", "step 1 soaking", Duration::from_secs(30), |s| s.step_started_at.is_some()).await;
    env.annotate("auth-api", "abort").await;
    let s = env.wait_phase("auth-api", Phase::RolledBack, Duration::from_secs(30)).await;
    assert!(s.failed.unwrap().reason.contains("aborted"));
    assert!(env.canary().await.is_none());
    assert_eq!(env.target().await.spec.replicas, Some(10));
    env.annotate("auth-api", "retry").await;
    env.wait_status("auth-api", "a new rollout after retry", Duration::from_secs(30), |s| {
        s.phase == Phase::Progressing
    })
    .await;
    // A value nobody understands is refused with an Event, and consumed.
    env.annotate("auth-api", "yolo").await;
    wait_until("a ManualActionIgnored Event", Duration::from_secs(15), || {
        let env = &env;
        async move { env.events().await.iter().any(|(r, m)| r == "ManualActionIgnored" && m.contains("yolo")).then_some(()) }
    })
    .await;
    // The same refusal again, once the first value is consumed, is the same Event twice.
    let consumed = |env: &Env| {
        let policies = env.policies();
        async move {
            let p = policies.get("auth-api").await.unwrap();
            (!p.annotations().contains_key("redispool.io/action")).then_some(())
        }
    };
    wait_until("the refused action consumed", Duration::from_secs(15), || consumed(&env)).await;
    env.annotate("auth-api", "yolo").await;
    let events: Api<k8s_openapi::api::events::v1::Event> = env.ns.api();
    let series = wait_until("the refusal repeated as a series of one Event", Duration::from_secs(15), || {
        let events = &events;
        async move {
            let ignored: Vec<_> = events
                .list(&Default::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some("ManualActionIgnored"))
                .collect();
            let count = ignored.iter().map(|e| e.series.as_ref().map_or(1, |s| s.count)).max()?;
            (count == 2).then_some(ignored.len())
        }
    })
    .await;
    assert_eq!(series, 1, "a repeat is folded into the Event, not recorded anew");
}

#[tokio::test]
async fn an_invalid_target_is_reported_and_other_policies_go_on() {
    let env = Env::new("invalid", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let mut ghost = policy("ghost");
    ghost["spec"]["targetRef"]["name"] = serde_json::json!("no-such-deployment");
    env.apply(ghost).await;
    let mut wrong = policy("wrong-container");
    wrong["spec"]["targetRef"]["container"] = serde_json::json!("web");
    env.apply(wrong).await;
    let s = env.wait_phase("ghost", Phase::Invalid, Duration::from_secs(30)).await;
    assert!(s.message.unwrap().contains("no-such-deployment not found"));
    let ready = s.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "Invalid"));
    let s = env.wait_phase("wrong-container", Phase::Invalid, Duration::from_secs(30)).await;
    assert!(s.message.unwrap().contains("container \"web\" not found"));
    let events = env.events().await;
    assert!(events.iter().filter(|(r, _)| r == "InvalidTarget").count() >= 2, "{events:?}");
    // The valid policy of the same namespace is served all the same.
    env.policies().delete("wrong-container", &Default::default()).await.unwrap();
    env.apply(policy("auth-api")).await;
    env.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(120)).await;
    assert_eq!(env.status("ghost").await.phase, Phase::Invalid);
}

/// Kill the operator at several points of a rollout: it resumes from status, no step is
/// skipped, capacity holds at every observation, and the rollout ends Succeeded.
#[tokio::test]
async fn survives_operator_restarts_at_every_stage() {
    let mut env = Env::new("restart", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let watcher = Watcher::start(env.deployments()).await;
    let policies = Recorder::start(env.policies()).await;
    env.apply(policy("auth-api")).await;
    let api = env.policies();
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(150);
    // Drives the restarts until the promotion; the checks read every status the API server saw.
    loop {
        let s = api.get("auth-api").await.unwrap().status.unwrap_or_default();
        if s.phase == Phase::Succeeded {
            break;
        }
        assert!(Instant::now() < deadline, "no promotion within 150 s across restarts; status {s:?}");
        // Kill roughly every 2.5 s: mid-step, mid-scale, mid-promotion.
        if env.started.elapsed() > Duration::from_millis(2500 * (kills + 1)) && kills < 8 {
            env.operator.restart();
            kills += 1;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(kills >= 3, "the operator was restarted {kills} times");
    policies.sync().await;
    let statuses = policies.versions_of("auth-api");
    let steps: Vec<i32> = statuses.iter().flatten().filter_map(|p| p.status.as_ref()?.step).collect();
    assert!(steps.contains(&2), "the recorder saw the last step: {steps:?}");
    for w in steps.windows(2) {
        assert!(w[1] == w[0] || w[1] == w[0] + 1, "a step was skipped or repeated backwards: {steps:?}");
    }
    watcher.assert_capacity(10, 2).await;
    assert!(env.canary().await.is_none());
    assert_eq!(env_of(&env.target().await, "WORKERS").as_deref(), Some("4"));
    eprintln!("promoted across {kills} operator restarts in {:?}", env.started.elapsed());
}

/// Redis faults: an unreachable server, a missing Secret, a wrong password. Each is a condition
/// and an Event with a clear message; none starts a rollout on faith; no password is ever echoed.
#[tokio::test]
async fn redis_faults_are_conditions_and_never_leak_the_password() {
    let redis = RedisServer::start(&[("requirepass", "the-right-one")]);
    let env = Env::new("redisfault", 10).await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = env.ns.api();
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(
        serde_json::json!({"metadata": {"name": "redis-auth"}, "stringData": {"password": "wrong-s3cret-pw"}}),
    )
    .unwrap();
    secrets.create(&PostParams::default(), &secret).await.unwrap();

    let cases = [
        ("unreachable", serde_json::json!({"address": format!("127.0.0.1:{}", free_port())}), "Connection refused"),
        (
            "nosecret",
            serde_json::json!({"address": redis.address(), "passwordSecretRef": {"name": "missing", "key": "password"}}),
            "Secret",
        ),
        (
            "wrongpw",
            serde_json::json!({"address": redis.address(), "passwordSecretRef": {"name": "redis-auth", "key": "password"}}),
            "redis 127.0.0.1",
        ),
    ];
    for (name, redis_spec, expect) in &cases {
        let mut p = policy(name);
        p["spec"]["redis"] = redis_spec.clone();
        env.apply(p).await;
        let s = env.wait_phase(name, Phase::Blocked, Duration::from_secs(30)).await;
        let c = s.conditions.iter().find(|c| c.type_ == "RedisReachable").expect("a RedisReachable condition");
        assert_eq!(c.status, "False");
        assert!(c.message.contains(expect), "{name}: {:?}", c.message);
        env.policies().delete(name, &Default::default()).await.unwrap();
    }
    assert!(env.canary().await.is_none(), "no rollout started without a budget");
    let everything =
        format!("{:?}", env.events().await) + &std::fs::read_to_string(&env.operator.log).unwrap_or_default();
    assert!(!everything.contains("wrong-s3cret-pw"), "the password leaked into Events or logs");
}

/// `spec.suspend` freezes a rollout where it is (no writes), and lifting it carries on.
#[tokio::test]
async fn suspend_freezes_and_resumes() {
    let env = Env::new("suspend", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    env.apply(policy("auth-api")).await;
    env.wait_status("auth-api", "step 1 soaking", Duration::from_secs(30), |s| s.step_started_at.is_some()).await;
    let patch = serde_json::json!({"spec": {"suspend": true}});
    env.policies().patch("auth-api", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    env.wait_status("auth-api", "the suspended message", Duration::from_secs(15), |s| {
        s.message.as_deref().is_some_and(|m| m.starts_with("suspended"))
    })
    .await;
    // Generations move with spec changes only (the Deployment controller's status updates do not).
    let before = (env.target().await.metadata.generation, env.canary().await.unwrap().metadata.generation);
    // Longer than the step's pause, over several reconciles.
    let reconciles = env.operator.counter("redis_pool_operator_reconciles_total").await;
    env.wait_reconciles(reconciles + 5.0, Duration::from_secs(30)).await;
    let s = env.status("auth-api").await;
    assert_eq!((s.phase, s.step), (Phase::Progressing, Some(0)), "a suspended rollout moved");
    let after = (env.target().await.metadata.generation, env.canary().await.unwrap().metadata.generation);
    assert_eq!(before, after, "a suspended policy changed the Deployments");
    let patch = serde_json::json!({"spec": {"suspend": false}});
    env.policies().patch("auth-api", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    env.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(90)).await;
}

/// Editing the policy's pool mid-rollout restarts the rollout for the new configuration; the
/// configuration that was never finished is not written to the target.
#[tokio::test]
async fn a_policy_edited_mid_rollout_restarts_for_the_new_pool() {
    let env = Env::new("edit", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let mut p = policy("auth-api");
    p["spec"]["rollout"]["steps"][1]["pause"] = serde_json::json!("30s");
    env.apply(p).await;
    env.wait_status("auth-api", "step 2 under way", Duration::from_secs(60), |s| s.step == Some(1)).await;
    let patch = serde_json::json!([{"op": "replace", "path": "/spec/tiers/1/connectionsPerWorker", "value": 50}]);
    env.policies()
        .patch("auth-api", &PatchParams::default(), &Patch::<()>::Json(serde_json::from_value(patch).unwrap()))
        .await
        .unwrap();
    let s = env
        .wait_status("auth-api", "a restart for the edited pool", Duration::from_secs(60), |s| {
            s.history.first().is_some_and(|h| h.outcome == redis_pool_operator::core::api::Outcome::Restarted)
        })
        .await;
    assert!(s.history[0].reason.contains("the spec changed"), "{:?}", s.history[0]);
    let canary = env.canary().await.expect("the canary carries the new pool");
    assert_eq!(env_of(&canary, "REDIS_POOL_MAX_CONNECTIONS").as_deref(), Some("50"));
    assert_eq!(
        env_of(&env.target().await, "REDIS_POOL_MAX_CONNECTIONS").as_deref(),
        Some("30"),
        "the unfinished 40 never reached the target"
    );
}

/// Deleting a policy mid-rollout gives the target its replicas back before the policy goes; the
/// canary goes with its owner.
#[tokio::test]
async fn deleting_a_policy_mid_rollout_restores_the_target() {
    let env = Env::new("delete", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let mut p = policy("auth-api");
    p["spec"]["rollout"]["steps"][1]["pause"] = serde_json::json!("10m");
    env.apply(p).await;
    env.wait_status("auth-api", "step 2 soaking", Duration::from_secs(60), |s| {
        s.step == Some(1) && s.step_started_at.is_some()
    })
    .await;
    assert_eq!(env.target().await.spec.replicas, Some(5));
    env.policies().delete("auth-api", &Default::default()).await.unwrap();
    env.wait_gone("auth-api", "its target given back", Duration::from_secs(60)).await;
    assert_eq!(env.target().await.spec.replicas, Some(10), "the target got its replicas back");
    assert_eq!(env_of(&env.target().await, "WORKERS").as_deref(), Some("2"), "the unfinished pool was not written");
    let deployments = env.deployments();
    wait_until("the canary to be garbage-collected", Duration::from_secs(60), || {
        let d = deployments.clone();
        async move { d.get_opt(&redis_pool_operator::core::api::canary_name(TARGET)).await.ok()?.is_none().then_some(()) }
    })
    .await;
}

/// The finalizer is held only while there is something to give back: a policy at rest carries
/// none, so deleting it completes at once (with no operator running too: `tests/lifecycle.rs`),
/// and the operator forgets it (its phase series go) though no reconcile runs for its going.
#[tokio::test]
async fn a_policy_at_rest_holds_no_finalizer_and_its_deletion_is_forgotten() {
    let env = Env::new("rest", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let mut p = policy("auth-api");
    p["spec"]["rollout"]["steps"][0]["pause"] = serde_json::json!("4s");
    env.apply(p).await;
    let finalizers = |p: &RedisPoolPolicy| p.metadata.finalizers.clone().unwrap_or_default();
    let policies = env.policies();
    // While the canary soaks, the finalizer holds.
    env.wait_status("auth-api", "step 1 soaking", Duration::from_secs(60), |s| s.step_started_at.is_some()).await;
    let held = finalizers(&policies.get("auth-api").await.unwrap());
    assert!(held.contains(&FINALIZER.to_string()), "mid-rollout: {held:?}");
    env.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(120)).await;
    wait_until("the policy at rest to let its finalizer go", Duration::from_secs(30), || {
        let policies = policies.clone();
        async move { finalizers(&policies.get("auth-api").await.ok()?).is_empty().then_some(()) }
    })
    .await;
    let series = format!(r#"redis_pool_operator_policy_phase{{namespace="{}",policy="auth-api""#, env.ns.name);
    assert!(env.operator.metrics().await.contains(&series), "no phase series to forget");

    policies.delete("auth-api", &Default::default()).await.unwrap();
    env.wait_gone("auth-api", "idle, at once", Duration::from_secs(10)).await;
    wait_until("the operator to forget the deleted policy's phase", Duration::from_secs(10), || {
        let (env, series) = (&env, series.clone());
        async move { (!env.operator.metrics().await.contains(&series)).then_some(()) }
    })
    .await;
    assert_eq!(env_of(&env.target().await, "WORKERS").as_deref(), Some("4"), "the promoted pool stays");
    assert_eq!(env.target().await.spec.replicas, Some(10));
}

/// A tier's own gates are the ones its canary is judged by: a staging tier that asks pool
/// utilization at most 10% holds a canary whose pools run at 20%, which production would pass.
#[tokio::test]
async fn a_tier_is_judged_by_its_own_gates() {
    let env = Env::new("tiergates", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let mut p = policy("auth-api");
    p["spec"]["environment"] = serde_json::json!("staging");
    p["spec"]["tiers"][0]["workers"] = serde_json::json!(3);
    p["spec"]["tiers"][0]["gates"] = serde_json::json!({"poolUtilization": {"promoteAtMost": 10, "rollbackAbove": 80}});
    env.apply(p).await;
    let s = env
        // The first analysis of a canary only sets the counters' baseline: wait for one with
        // every gate measured.
        .wait_status("auth-api", "an analysis with every gate measured", Duration::from_secs(60), |s| {
            s.analysis.as_ref().is_some_and(|a| a.gates.iter().all(|g| g.value.is_some()))
        })
        .await;
    let a = s.analysis.unwrap();
    assert_eq!(a.verdict, redis_pool_operator::core::api::Verdict::Hold, "{a:?}");
    assert_eq!(a.decided_by.as_deref(), Some("poolUtilization"), "{a:?}");
    let util = a.gates.iter().find(|g| g.gate == redis_pool_operator::core::api::Gate::PoolUtilization).unwrap();
    assert!(util.message.contains("between 10% and 80%"), "{:?}", util.message);
    assert_eq!(s.step, Some(0), "held at the first step");
}
