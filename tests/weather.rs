//! End to end: judging the configuration, not the weather. The operator process against a real
//! control plane, kwok pods with scripted pool health on their loopback IPs, and a real
//! redis-server: faults every pod suffers alike are sat out; the canary's own still roll back.

mod support;

use std::time::Duration;

use redis_pool_operator::core::analysis::Verdict;
use redis_pool_operator::core::api::{Gate, Phase, RedisPoolPolicyStatus};
use support::fleet::Health;
use support::scenario::*;
use support::*;

/// The runbook policy with soaks long enough for weather to strike in the middle of one.
fn soaking_policy(pause: &str) -> serde_json::Value {
    let mut p = policy("auth-api");
    let steps: Vec<_> = [10, 50, 100].iter().map(|w| serde_json::json!({"weight": w, "pause": pause})).collect();
    p["spec"]["rollout"]["steps"] = serde_json::json!(steps);
    p["spec"]["rollout"]["analysis"]["progressDeadline"] = serde_json::json!("30s");
    p
}

/// The second step's soak is running: weather now falls on canary and stable pods alike.
fn mid_soak(s: &RedisPoolPolicyStatus) -> bool {
    s.step == Some(1) && s.soak.as_ref().is_some_and(|k| k.running_since.is_some())
}

/// A Redis outage that every pod suffers (failed requests, connection errors) and a restart of
/// the real server behind it: the analyses are Inconclusive and name the evidence, nothing
/// counts against the configuration, and the rollout completes.
#[tokio::test]
async fn a_redis_outage_every_pod_suffers_is_sat_out() {
    let mut redis = RedisServer::start(&[]);
    let env = Env::new("outage", 10).await;
    let fleet = env.fleet(all_pods(Health::good()));
    let mut p = soaking_policy("8s");
    p["spec"]["redis"] = serde_json::json!({"address": redis.address(), "maxClients": 100000});
    env.apply(p).await;
    env.wait_status("auth-api", "the second step soaking", Duration::from_secs(90), mid_soak).await;

    // Six seconds without Redis: a fifth of every pod's requests fail, each counts errors.
    let outage = Health { success_rate: 80.0, redis_errors_per_scrape: 100, ..Health::good() };
    redis.stop();
    let spell = fleet.weather_for(outage, Duration::from_secs(3));
    let seen = env.wait_status("auth-api", "an Inconclusive analysis", Duration::from_secs(30), |s| {
        s.analysis.as_ref().is_some_and(|a| a.verdict == Verdict::Inconclusive)
    });
    let ((), inconclusive) = tokio::join!(spell, seen);
    redis.start_again();

    let status = env.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(120)).await;
    let a = inconclusive.analysis.unwrap();
    let evidence = a.environment.unwrap_or_default();
    assert!(
        evidence.contains("could not reach the Redis server") || evidence.contains("the stable breached"),
        "the evidence is named: {evidence}"
    );
    assert_eq!(a.consecutive_failures, 0, "never counted against the configuration");
    let events = env.events().await;
    let said = |reason: &str| events.iter().filter(|(r, _)| r == reason).map(|(_, m)| m.as_str()).collect::<Vec<_>>();
    assert!(!said("AnalysisInconclusive").is_empty(), "{events:?}");
    assert!(said("AnalysisFailed").is_empty(), "a fault every pod shared counted as a failure: {events:?}");
    assert!(said("RollingBack").is_empty(), "{events:?}");
    // The restart itself is named: the probe saw a new run_id (or the server gone) in an analysis.
    let named = said("AnalysisInconclusive")
        .iter()
        .chain(said("EnvironmentRecovered").iter())
        .any(|m| m.contains("restarted") || m.contains("could not reach") || m.contains("the stable breached"));
    assert!(named, "{events:?}");
    assert_eq!(status.history[0].outcome, redis_pool_operator::core::api::Outcome::Succeeded);
    assert_eq!(env_of(&env.target().await, "REDIS_POOL_MAX_CONNECTIONS").as_deref(), Some("40"));
}

/// A slow spell on every pod (p95 above the promote threshold, canary equal to stable) holds
/// the step rather than failing it, with the stable's value shown beside the canary's; when it
/// passes the rollout completes.
#[tokio::test]
async fn a_slow_spell_everywhere_holds_and_then_completes() {
    let env = Env::new("slow", 10).await;
    let fleet = env.fleet(all_pods(Health::good()));
    env.apply(soaking_policy("5s")).await;
    env.wait_status("auth-api", "the second step soaking", Duration::from_secs(90), mid_soak).await;
    let slow = Health { latency_ms: 700.0, ..Health::good() };
    fleet.weather_mut(|w| w.stable = Some(slow.clone()));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    fleet.weather_mut(|w| w.canary = Some(slow.clone()));
    let held = env
        .wait_status("auth-api", "a Hold on p95 with the stable measured", Duration::from_secs(30), |s| {
            s.analysis.as_ref().is_some_and(|a| {
                let p95 = a.gates.iter().find(|g| g.gate == Gate::P95LatencyMs);
                a.verdict == Verdict::Hold && p95.is_some_and(|g| g.stable.is_some_and(|v| v > 500.0))
            })
        })
        .await;
    let p95 = held.analysis.unwrap().gates.into_iter().find(|g| g.gate == Gate::P95LatencyMs).unwrap();
    assert!(p95.value.is_some_and(|v| v > 500.0), "{p95:?}");
    // Held for as long as the spell lasts: a step's soak is 5 s, and it stays on the step through
    // several more analyses of the spell (counted by the operator's metric: status records a
    // Hold that changes only numbers at most once a minute).
    let holds = || async {
        let metrics = env.operator.metrics().await;
        metrics
            .lines()
            .filter(|l| l.starts_with("redis_pool_operator_analyses_total{") && l.contains(r#"verdict="Hold""#))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let before = holds().await;
    wait_until("three more Hold analyses of the spell", Duration::from_secs(20), || async {
        (holds().await >= before + 3.0).then_some(())
    })
    .await;
    let status = env.status("auth-api").await;
    assert_eq!(status.step, Some(1), "held: never advanced on a slow spell");
    assert_eq!(status.phase, Phase::Progressing);
    fleet.weather_mut(|w| w.canary = None);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    fleet.set_weather(None);
    env.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(90)).await;
    let events = env.events().await;
    assert!(!events.iter().any(|(r, _)| r == "AnalysisFailed" || r == "RollingBack"), "{events:?}");
}

/// Pool exhaustion on the canary alone, beside a healthy stable measured over the same
/// intervals, still rolls back within failureLimit analyses.
#[tokio::test]
async fn a_fault_the_canary_alone_shows_still_rolls_back_beside_the_stable() {
    let env = Env::new("alone", 10).await;
    let _fleet = env.fleet(canary_pods(Health { exhaustion_per_scrape: 3, ..Health::good() }));
    env.apply(soaking_policy("5s")).await;
    let status = env.wait_phase("auth-api", Phase::RolledBack, Duration::from_secs(90)).await;
    let reason = status.failed.unwrap().reason;
    assert!(reason.contains("poolExhaustionEvents"), "{reason}");
    let a = status.analysis.unwrap();
    let g = a.gates.iter().find(|g| g.gate == Gate::PoolExhaustionEvents).unwrap();
    assert_eq!(g.stable, Some(0.0), "the stable was measured beside the canary: {a:?}");
}

/// A real Sentinel setup (one master, one replica, three sentinels on loopback): a
/// `SENTINEL FAILOVER` in the middle of a soak turns the server the policy names into a replica.
/// The operator's probe names the failover, the analysis is Inconclusive, nothing is counted
/// against the pool, and the rollout completes.
#[tokio::test]
async fn a_sentinel_failover_mid_soak_is_named_and_sat_out() {
    let sentinel = SentinelSet::start();
    let env = Env::new("failover", 10).await;
    let fleet = env.fleet(all_pods(Health::good()));
    let mut p = soaking_policy("8s");
    p["spec"]["redis"] = serde_json::json!({"address": sentinel.master.address(), "maxClients": 100000});
    env.apply(p).await;
    env.wait_status("auth-api", "the second step soaking", Duration::from_secs(90), mid_soak).await;

    // While the master moves, every pod's requests fail for a moment.
    let moving = Health { success_rate: 90.0, redis_errors_per_scrape: 20, ..Health::good() };
    let spell = fleet.weather_for(moving, Duration::from_secs(2));
    let failover = tokio::task::spawn_blocking(move || {
        sentinel.failover();
        sentinel
    });
    let (_, sentinel) = tokio::join!(spell, failover);
    let _sentinel = sentinel.unwrap();
    // The failover is said in an Event (status moves on with the next analysis).
    let said = wait_until("an AnalysisInconclusive Event naming the failover", Duration::from_secs(30), || async {
        env.events()
            .await
            .into_iter()
            .find(|(r, m)| r == "AnalysisInconclusive" && m.contains("failover"))
            .map(|(_, m)| m)
    })
    .await;
    assert!(said.contains("changed role from master to replica"), "{said}");

    env.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(120)).await;
    let events = env.events().await;
    assert!(!events.iter().any(|(r, _)| r == "AnalysisFailed" || r == "RollingBack"), "{events:?}");
}

/// The canary alone refused by Redis with "max number of clients reached", the stable not: its
/// pool does not fit the server, and the first such analysis beside a measured stable rolls
/// back, whatever failureLimit (here 20) says.
#[tokio::test]
async fn max_clients_on_the_canary_alone_rolls_back_at_once() {
    let env = Env::new("maxclients", 10).await;
    let _fleet = env.fleet(canary_pods(Health { max_clients_errors_per_scrape: 4, ..Health::good() }));
    let mut p = soaking_policy("5s");
    p["spec"]["rollout"]["analysis"]["failureLimit"] = serde_json::json!(20);
    env.apply(p).await;
    let status = env.wait_phase("auth-api", Phase::RolledBack, Duration::from_secs(90)).await;
    let reason = status.failed.unwrap().reason;
    assert!(reason.contains("max number of clients") && reason.contains("at once"), "{reason}");
    let a = status.analysis.unwrap();
    assert!(a.consecutive_failures < 20, "rolled back before failureLimit: {a:?}");
}
