//! The Prometheus provider against a real Prometheus (Debian's `prometheus`, on 127.0.0.1),
//! scraping the workload's `/metrics` on the pods' loopback IPs every second, with the
//! policy's default PromQL: a promotion, a rollback on each gate, Prometheus down, a query
//! without series and a query with several.

mod support;

use std::time::Duration;

use redis_pool_operator::core::api::{Gate, Phase, RedisPoolPolicyStatus, Verdict};
use support::fleet::{Fleet, Health};
use support::scenario::*;
use support::*;

/// The runbook policy measured through Prometheus. Windows of 5 s hold five 1 s scrapes.
fn prom_policy(address: &str) -> serde_json::Value {
    let mut p = policy("auth-api");
    p["spec"]["rollout"]["steps"] = serde_json::json!([
        {"weight": 10, "pause": "6s"}, {"weight": 50, "pause": "6s"}, {"weight": 100, "pause": "6s"}
    ]);
    p["spec"]["rollout"]["analysis"]["interval"] = serde_json::json!("5s");
    p["spec"]["rollout"]["analysis"]["progressDeadline"] = serde_json::json!("60s");
    p["spec"]["rollout"]["metrics"] = serde_json::json!({"provider": "Prometheus", "prometheus": {"address": address}});
    p
}

fn fleet(env: &Env, prom: &PrometheusServer, behaviour: support::fleet::Behaviour) -> Fleet {
    Fleet::start_with_sd(env.ns.api(), 8000, behaviour, Some(prom.sd_file.clone()))
}

fn gate(s: &RedisPoolPolicyStatus, g: Gate) -> Option<(Option<f64>, Verdict, String)> {
    s.analysis.as_ref()?.gates.iter().find(|r| r.gate == g).map(|r| (r.value, r.verdict, r.message.clone()))
}

#[tokio::test]
async fn promotes_on_what_prometheus_measured() {
    let prom = PrometheusServer::start();
    let env = Env::new("prom-promote", 10).await;
    let _fleet = fleet(&env, &prom, all_pods(Health::good()));
    env.apply(prom_policy(&prom.address())).await;
    // Every gate passed on Prometheus's numbers at some analysis of the canary.
    let s = env
        .wait_status("auth-api", "an analysis that passes on Prometheus data", Duration::from_secs(90), |s| {
            s.analysis.as_ref().is_some_and(|a| a.verdict == Verdict::Pass)
        })
        .await;
    let (success, _, _) = gate(&s, Gate::SuccessRate).unwrap();
    assert_eq!(success, Some(100.0), "{:?}", s.analysis);
    let (util, _, _) = gate(&s, Gate::PoolUtilization).unwrap();
    assert!(util.is_some_and(|u| (u - 20.0).abs() < 1.0), "utilization {util:?} (the pods report 20%)");
    let (p95, _, _) = gate(&s, Gate::P95LatencyMs).unwrap();
    assert!(p95.is_some_and(|v| v > 0.0 && v <= 10.0), "p95 {p95:?} (every request in the 10 ms bucket)");
    // The stable beside it, through the same queries with the stable's (empty) track.
    let s = env
        .wait_status(
            "auth-api",
            "an analysis with the stable measured through Prometheus",
            Duration::from_secs(60),
            |s| {
                s.analysis
                    .as_ref()
                    .is_some_and(|a| a.gates.iter().any(|g| g.gate == Gate::SuccessRate && g.stable == Some(100.0)))
            },
        )
        .await;
    let a = s.analysis.unwrap();
    let util = a.gates.iter().find(|g| g.gate == Gate::PoolUtilization).unwrap();
    assert!(util.stable.is_some_and(|u| (u - 20.0).abs() < 1.0), "the stable's utilization: {util:?}");
    env.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(120)).await;
}

/// The canary's pods misbehave on one signal; Prometheus sees it and the operator rolls back
/// naming that gate.
async fn rolls_back_on(prefix: &str, bad: Health, gate_name: &str) {
    let prom = PrometheusServer::start();
    let env = Env::new(prefix, 10).await;
    let _fleet = fleet(&env, &prom, canary_pods(bad));
    env.apply(prom_policy(&prom.address())).await;
    let s = env.wait_phase("auth-api", Phase::RolledBack, Duration::from_secs(120)).await;
    let failed = s.failed.expect("the failed configuration is remembered");
    assert!(failed.reason.contains(gate_name), "rolled back for {:?}, not {gate_name}", failed.reason);
    assert_eq!(env.target().await.spec.replicas, Some(10), "the stable is restored");
}

#[tokio::test]
async fn rolls_back_on_success_rate() {
    rolls_back_on("prom-success", Health { success_rate: 90.0, ..Health::good() }, "successRate").await;
}

#[tokio::test]
async fn rolls_back_on_p95_latency() {
    rolls_back_on("prom-latency", Health { latency_ms: 2000.0, ..Health::good() }, "p95LatencyMs").await;
}

#[tokio::test]
async fn rolls_back_on_pool_utilization() {
    rolls_back_on("prom-util", Health { utilization: 95.0, ..Health::good() }, "poolUtilization").await;
}

#[tokio::test]
async fn rolls_back_on_pool_exhaustion() {
    rolls_back_on("prom-exhaust", Health { exhaustion_per_scrape: 3, ..Health::good() }, "poolExhaustionEvents").await;
}

#[tokio::test]
async fn rolls_back_on_redis_connection_errors() {
    rolls_back_on("prom-errors", Health { redis_errors_per_scrape: 2, ..Health::good() }, "redisConnectionErrors")
        .await;
}

/// Prometheus unreachable: provider errors, never a Pass, never a step forward.
#[tokio::test]
async fn prometheus_down_is_never_a_pass() {
    let env = Env::new("prom-down", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    env.apply(prom_policy(&format!("http://127.0.0.1:{}", free_port()))).await;
    let s = env
        .wait_status("auth-api", "three provider errors", Duration::from_secs(60), |s| {
            s.analysis.as_ref().is_some_and(|a| a.provider_errors >= 3)
        })
        .await;
    let a = s.analysis.as_ref().unwrap();
    assert_ne!(a.verdict, Verdict::Pass);
    assert!(a.gates.iter().all(|g| g.verdict == Verdict::NoData && g.message.contains("provider error")), "{a:?}");
    assert_eq!(s.step, Some(0), "no step forward without data");
}

/// A query that matches no series is no data (a Hold, never a Pass); one that returns several
/// series is an error that says to aggregate it.
#[tokio::test]
async fn no_series_holds_and_several_series_say_to_aggregate() {
    let prom = PrometheusServer::start();
    let env = Env::new("prom-series", 10).await;
    let _fleet = fleet(&env, &prom, all_pods(Health::good()));
    let mut p = prom_policy(&prom.address());
    p["spec"]["rollout"]["metrics"]["prometheus"]["queries"] =
        serde_json::json!({"poolUtilization": "max(no_such_metric{namespace=\"{{namespace}}\"})"});
    env.apply(p).await;
    let s = env
        .wait_status("auth-api", "an analysis with the other gates measured", Duration::from_secs(90), |s| {
            gate(s, Gate::SuccessRate).is_some_and(|(v, _, _)| v.is_some())
        })
        .await;
    let (value, verdict, _) = gate(&s, Gate::PoolUtilization).unwrap();
    assert_eq!((value, verdict), (None, Verdict::NoData));
    assert_eq!(s.analysis.as_ref().unwrap().verdict, Verdict::Hold, "no data is never a pass");
    assert_eq!(s.step, Some(0));

    // Several series: every pod's counter, not summed.
    let patch = serde_json::json!({"spec": {"rollout": {"metrics": {"prometheus": {"queries": {
        "poolUtilization": null,
        "requests": "http_requests_total{namespace=\"{{namespace}}\",redispool_io_track=\"{{track}}\"}"
    }}}}}});
    env.policies()
        .patch("auth-api", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
        .await
        .unwrap();
    let s = env
        .wait_status("auth-api", "an error that says to aggregate", Duration::from_secs(90), |s| {
            gate(s, Gate::SuccessRate).is_some_and(|(_, _, m)| m.contains("series; aggregate it to one"))
        })
        .await;
    assert_ne!(s.analysis.unwrap().verdict, Verdict::Pass);
}

/// Every query of the chart's Grafana dashboard (panels and step annotations) evaluates without
/// error against a real Prometheus that scrapes the pods and the operator while a rollout runs,
/// and returns series: the dashboard shows the rollout, not empty panels.
#[tokio::test]
async fn the_charts_dashboard_shows_a_rollout_in_flight() {
    let env = Env::new("prom-dashboard", 10).await;
    let operator = format!("127.0.0.1:{}", env.operator.metrics_port);
    let prom = PrometheusServer::start_with_jobs(&[("rpo-redis-pool-operator-metrics", operator)]);
    let _fleet = fleet(&env, &prom, all_pods(Health::good()));
    let mut p = prom_policy(&prom.address());
    p["spec"]["rollout"]["steps"][1]["pause"] = serde_json::json!("10m");
    env.apply(p).await;
    env.wait_status("auth-api", "step 2 soaking", Duration::from_secs(120), |s| {
        s.step == Some(1) && s.step_started_at.is_some()
    })
    .await;

    let o = helm_command()
        .args(["template", "rpo", "charts/redis-pool-operator", "--set", "grafanaDashboard.enabled=true"])
        .args(["--show-only", "templates/dashboard.yaml"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let config_map: serde_yaml::Value = serde_yaml::from_slice(&o.stdout).unwrap();
    let dashboard: serde_json::Value =
        serde_json::from_str(config_map["data"]["redis-pool-operator.json"].as_str().unwrap()).unwrap();
    let mut queries: Vec<(String, String)> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter().map(|t| (p["title"].to_string(), t["expr"].to_string())))
        .collect();
    queries.extend(
        dashboard["annotations"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["name"].to_string(), a["expr"].to_string())),
    );
    assert!(queries.len() >= 10, "{queries:?}");
    let client = reqwest::Client::new();
    for (title, expr) in queries {
        // The dashboard's namespace variable, as Grafana fills it in.
        let expr: String = serde_json::from_str(&expr).unwrap();
        let expr = expr.replace("$namespace", &env.ns.name);
        let url = format!("{}/api/v1/query", prom.address());
        let answer = wait_until(&format!("panel {title} to show series: {expr}"), Duration::from_secs(60), || {
            let (client, url, expr, title) = (client.clone(), url.clone(), expr.clone(), title.clone());
            async move {
                let body: serde_json::Value =
                    client.get(&url).query(&[("query", &expr)]).send().await.ok()?.json().await.ok()?;
                assert_eq!(body["status"], "success", "panel {title}: {expr}: {body}");
                let result = body["data"]["result"].as_array()?;
                (!result.is_empty()).then(|| result.clone())
            }
        })
        .await;
        // Canary and stable side by side wherever the panel compares them.
        if expr.contains("label_replace") {
            let tracks: Vec<&str> = answer.iter().filter_map(|s| s["metric"]["redispool_io_track"].as_str()).collect();
            assert!(tracks.contains(&"canary") && tracks.contains(&"stable"), "panel {title}: {tracks:?}");
        }
    }
}
