//! `kubectl redispool` end to end: the plugin binary against a real control plane, a running
//! operator and a rollout of real (kwok) pods; `status --watch` under a pseudo-terminal, its
//! screen read back through a terminal emulator.

mod support;

use std::io::Read as _;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::api::{Patch, PatchParams};
use redis_pool_operator::core::api::Phase;
use support::fleet::Health;
use support::scenario::*;
use support::*;

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn show(o: &Output) -> String {
    format!("exit {:?}\nstdout:\n{}\nstderr:\n{}", o.status.code(), out(o), err(o))
}

/// The runbook policy with a first step long enough to pause, resume and promote in.
fn slow_policy() -> serde_json::Value {
    let mut p = policy("auth-api");
    p["spec"]["rollout"]["steps"][0]["pause"] = serde_json::json!("10m");
    p
}

#[tokio::test]
async fn every_verb_on_a_real_rollout() {
    let env = Env::new("plugin-verbs", 10).await;
    let ns = env.ns.name.clone();
    let _fleet = env.fleet(all_pods(Health::good()));
    env.apply(slow_policy()).await;
    env.wait_status("auth-api", "step 1 soaking", Duration::from_secs(60), |s| {
        s.phase == Phase::Progressing && s.soak.as_ref().is_some_and(|k| k.running_since.is_some())
    })
    .await;

    // list and status, for people and for scripts.
    let o = plugin(&ns, &["list"]).await;
    assert!(o.status.success(), "{}", show(&o));
    let header = out(&o).lines().next().unwrap_or_default().to_string();
    assert!(header.starts_with("NAME") && header.contains("CANARY/STABLE"), "{}", show(&o));
    assert!(out(&o).contains("auth-api") && out(&o).contains("Progressing") && out(&o).contains("1/3"), "{}", show(&o));
    let o = plugin(&ns, &["list", "-A", "-o", "json"]).await;
    let rows: Vec<serde_json::Value> =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&o)));
    assert!(rows.iter().any(|r| r["namespace"] == ns.as_str() && r["name"] == "auth-api"), "{rows:?}");

    let o = plugin(&ns, &["status", "auth-api", "-o", "json"]).await;
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&o)));
    assert_eq!((r["phase"].as_str(), r["progress"].as_str()), (Some("Progressing"), Some("1/3")), "{r}");
    assert_eq!(r["steps"][0]["state"], "Soaking", "{r}");
    assert_eq!(r["deployments"][1]["role"], "canary", "{r}");
    assert_eq!(r["deployments"][1]["pool"], "4 x 40", "{r}");
    let o = plugin(&ns, &["status", "auth-api"]).await;
    assert!(out(&o).contains("step 1/3 (10%)") && out(&o).contains("Deployments"), "{}", show(&o));

    // The live plan reads the target: 10 replicas on 2 x 30 today.
    let o = plugin(&ns, &["plan", "auth-api"]).await;
    assert!(o.status.success(), "{}", show(&o));
    assert!(out(&o).contains("tier production: 4 workers x 40 connections"), "{}", show(&o));
    assert!(out(&o).contains("its pods hold 60 connections each today"), "{}", show(&o));

    // pause, a refused second pause, resume.
    let o = plugin(&ns, &["pause", "auth-api", "--timeout", "30s"]).await;
    assert!(o.status.success(), "{}", show(&o));
    // The status the plugin prints is the one the operator wrote with its answer.
    assert!(out(&o).lines().last().unwrap_or_default().starts_with("auth-api: Paused"), "{}", show(&o));
    assert_eq!(env.status("auth-api").await.phase, Phase::Paused);
    let o = plugin(&ns, &["pause", "auth-api", "--timeout", "30s"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(err(&o).contains("pause refused by the operator: pause ignored: the policy is Paused"), "{}", show(&o));
    let o = plugin(&ns, &["resume", "auth-api", "--timeout", "30s"]).await;
    assert!(o.status.success() && out(&o).contains("Resumed"), "{}", show(&o));
    assert!(out(&o).lines().last().unwrap_or_default().starts_with("auth-api: Progressing"), "{}", show(&o));

    // promote skips the 10-minute soak; --until-done exits 0 on the promotion.
    let o = plugin(&ns, &["promote", "auth-api", "--timeout", "30s"]).await;
    assert!(o.status.success() && out(&o).contains("Promoting"), "{}", show(&o));
    let o = plugin(&ns, &["status", "auth-api", "--watch", "--until-done", "--timeout", "120s"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(out(&o).lines().last().unwrap_or_default().starts_with("auth-api: Succeeded"), "{}", show(&o));

    // Nothing to retry: refused, with the operator's reason.
    let o = plugin(&ns, &["retry", "auth-api", "--timeout", "30s"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(err(&o).contains("no rolled-back or overridden configuration to retry"), "{}", show(&o));

    // A new pool, aborted: --until-done exits 1 on the rollback; retry is then accepted.
    let patch = serde_json::json!([{"op": "replace", "path": "/spec/tiers/1/connectionsPerWorker", "value": 41}]);
    env.policies()
        .patch("auth-api", &PatchParams::default(), &Patch::Json::<()>(serde_json::from_value(patch).unwrap()))
        .await
        .unwrap();
    env.wait_phase("auth-api", Phase::Progressing, Duration::from_secs(60)).await;
    let o = plugin(&ns, &["abort", "auth-api", "--timeout", "30s"]).await;
    assert!(o.status.success(), "{}", show(&o));
    let o = plugin(&ns, &["status", "auth-api", "--watch", "--until-done", "--timeout", "120s"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(out(&o).lines().last().unwrap_or_default().starts_with("auth-api: RolledBack"), "{}", show(&o));
    let o = plugin(&ns, &["retry", "auth-api", "--timeout", "30s"]).await;
    assert!(o.status.success() && out(&o).contains("Retry"), "{}", show(&o));
    // The retried configuration starts again at once (the spec asks for it).
    assert!(out(&o).lines().last().unwrap_or_default().starts_with("auth-api: Progressing"), "{}", show(&o));
}

#[tokio::test]
async fn an_operator_that_does_not_answer_times_out_and_the_request_is_withdrawn() {
    let env = Env::new("plugin-silent", 2).await;
    let ns = env.ns.name.clone();
    env.apply(slow_policy()).await;
    env.wait_phase("auth-api", Phase::Progressing, Duration::from_secs(60)).await;
    let mut env = env;
    env.operator.kill();
    let o = plugin(&ns, &["pause", "auth-api", "--timeout", "3s"]).await;
    assert_eq!(o.status.code(), Some(5), "{}", show(&o));
    assert!(err(&o).contains("the operator did not act on pause within 3s"), "{}", show(&o));
    let annotations = env.policies().get("auth-api").await.unwrap().metadata.annotations.unwrap_or_default();
    assert!(!annotations.contains_key("redispool.io/action"), "the request was left behind: {annotations:?}");

    // A suspended policy: the operator would change nothing, so the plugin asks nothing of it.
    let patch = serde_json::json!({"spec": {"suspend": true}});
    env.policies().patch("auth-api", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let o = plugin(&ns, &["abort", "auth-api"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(err(&o).contains("auth-api is suspended (spec.suspend: true)"), "{}", show(&o));
    let annotations = env.policies().get("auth-api").await.unwrap().metadata.annotations.unwrap_or_default();
    assert!(!annotations.contains_key("redispool.io/action"), "{annotations:?}");
}

#[tokio::test]
async fn bad_input_is_named_with_its_fix() {
    let ns = TestNamespace::new("plugin-input").await;
    let o = plugin(&ns.name, &["status", "nope"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        err(&o).contains(&format!(
            "redispoolpolicy \"nope\" not found in namespace \"{}\"; there are no policies",
            ns.name
        )),
        "{}",
        show(&o)
    );
    let o = plugin("no-such-namespace", &["promote", "nope"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(err(&o).contains("namespace \"no-such-namespace\" does not exist"), "{}", show(&o));
    let o = plugin(&ns.name, &["status", "nope", "--until-done"]).await;
    assert_eq!(o.status.code(), Some(2), "clap refuses --until-done without --watch: {}", show(&o));

    // No cluster: a kubeconfig whose server is a closed loopback port.
    // Removed when dropped, whatever the test's outcome.
    let tmp = tempfile::Builder::new().prefix("rpo-plugin-").tempdir().unwrap();
    let dir = tmp.path();
    let port = free_port();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{port}', insecure-skip-tls-verify: true}}}}]\n\
             users: [{{name: u, user: {{token: t}}}}]\ncontexts: [{{name: x, context: {{cluster: c, user: u}}}}]\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    let o = std::process::Command::new(PLUGIN).arg("--kubeconfig").arg(&kubeconfig).args(["list"]).output().unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", show(&o));
    assert!(err(&o).contains(&format!("cannot reach the Kubernetes API at https://127.0.0.1:{port}")), "{}", show(&o));

    // A file plan needs no cluster at all.
    let file = root().join("examples/auth-api.yaml");
    let o = std::process::Command::new(PLUGIN).args(["plan", "-f"]).arg(&file).output().unwrap();
    assert!(o.status.success() && out(&o).contains("step    weight"), "{}", show(&o));
}

/// A pseudo-terminal running the plugin, its output fed to a terminal emulator.
struct Terminal {
    screen: Arc<Mutex<vt100::Parser>>,
    raw: Arc<Mutex<Vec<u8>>>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
}

impl Terminal {
    fn spawn(args: &[&str]) -> Terminal {
        use portable_pty::{CommandBuilder, PtySize, native_pty_system};
        let (rows, cols) = (60, 140);
        let pair = native_pty_system()
            .openpty(PtySize { rows, cols, pixel_width: 0, pixel_height: 0 })
            .expect("open a pseudo-terminal");
        let mut cmd = CommandBuilder::new(PLUGIN);
        cmd.args(args);
        cmd.env("TERM", "xterm-256color");
        let child = pair.slave.spawn_command(cmd).expect("spawn the plugin in the pty");
        drop(pair.slave);
        let mut reader = pair.master.try_clone_reader().unwrap();
        let screen = Arc::new(Mutex::new(vt100::Parser::new(rows, cols, 0)));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let (s, r) = (screen.clone(), raw.clone());
        // The master must stay open while the child writes: the thread owns it.
        std::thread::spawn(move || {
            let _master = pair.master;
            let mut buf = [0u8; 8192];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                s.lock().unwrap().process(&buf[..n]);
                r.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Terminal { screen, raw, child }
    }

    fn contents(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    async fn wait_for(&self, what: &str, timeout: Duration, check: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let now = self.contents();
            if check(&now) {
                return now;
            }
            assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}; the screen:\n{now}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

#[tokio::test]
async fn status_watch_redraws_in_place_on_a_terminal() {
    let env = Env::new("plugin-watch", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let mut p = policy("auth-api");
    p["spec"]["rollout"]["steps"][0]["pause"] = serde_json::json!("8s");
    p["spec"]["rollout"]["steps"][1]["pause"] = serde_json::json!("8s");
    env.apply(p).await;
    let kubeconfig = cluster().kubeconfig.display().to_string();
    let term = Terminal::spawn(&["--kubeconfig", &kubeconfig, "-n", &env.ns.name, "status", "auth-api", "--watch"]);

    let header = |s: &str| s.lines().next().unwrap_or_default().to_string();
    let first = term
        .wait_for("step 1 soaking with gate values", Duration::from_secs(60), |s| {
            header(s).contains("step 1/3 (10%)") && s.contains("soaking") && s.contains("successRate")
        })
        .await;
    assert!(header(&first).starts_with("RedisPoolPolicy"), "the screen starts at the top:\n{first}");
    assert!(first.contains(">= 99.5%") && first.contains("< 99%"), "thresholds beside the values:\n{first}");
    assert!(first.contains("canary  auth-api-pool-canary"), "{first}");

    let second = term.wait_for("step 2", Duration::from_secs(60), |s| header(s).contains("step 2/3 (50%)")).await;
    // Redrawn in place: one screen, not a scroll of frames.
    assert_eq!(second.matches("RedisPoolPolicy ").count(), 1, "more than one frame on screen:\n{second}");
    assert!(second.lines().any(|l| l.trim_start().starts_with("1    10%  done")), "{second}");
    // No flicker: the screen is cleared once, then every frame overwrites the last in place.
    let raw = String::from_utf8_lossy(&term.raw.lock().unwrap()).into_owned();
    assert_eq!(raw.matches("\x1b[2J").count(), 1, "the screen was cleared between frames");
    assert!(raw.matches("\x1b[H").count() >= 2, "fewer than two frames were drawn");
}

/// `plan NAME` plans what the cluster runs: an HPA's maxReplicas, the target's pool today, and the
/// `maxclients` the Redis server reports, asked with the password from the policy's Secret
/// (which the output never shows).
#[tokio::test]
async fn live_plan_reads_the_hpa_the_target_and_the_redis_server() {
    use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::PostParams;
    let ns = TestNamespace::new("plugin-plan").await;
    create_target(&ns, 10).await;
    let redis = RedisServer::start(&[("maxclients", "300"), ("requirepass", "pl4n-s3cret")]);
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "redis"}, "stringData": {"password": "pl4n-s3cret"}
    }))
    .unwrap();
    ns.api::<Secret>().create(&PostParams::default(), &secret).await.unwrap();
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(serde_json::json!({
        "metadata": {"name": TARGET},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": TARGET},
                 "minReplicas": 10, "maxReplicas": 20}
    }))
    .unwrap();
    ns.api::<HorizontalPodAutoscaler>().create(&PostParams::default(), &hpa).await.unwrap();
    let mut p = policy("auth-api");
    p["spec"]["redis"] = serde_json::json!({
        "address": redis.address(), "passwordSecretRef": {"name": "redis", "key": "password"}
    });
    let p: redis_pool_operator::core::api::RedisPoolPolicy = serde_json::from_value(p).unwrap();
    ns.api().create(&PostParams::default(), &p).await.unwrap();

    let o = plugin(&ns.name, &["plan", "auth-api"]).await;
    // 20 stable pods beside the canary at 160 connections each cannot fit 80% of 300.
    assert_eq!(o.status.code(), Some(3), "{}", show(&o));
    let text = out(&o);
    assert!(text.contains("budget EXCEEDED"), "{}", show(&o));
    assert!(text.contains("HorizontalPodAutoscaler auth-api scales the target up to 20"), "{}", show(&o));
    assert!(text.contains(&format!("maxclients 300 read from {}", redis.address())), "{}", show(&o));
    assert!(text.contains("its pods hold 60 connections each today"), "{}", show(&o));
    assert!(!text.contains("pl4n-s3cret") && !err(&o).contains("pl4n-s3cret"), "the password leaked: {}", show(&o));

    // A flag wins over the server, as with the file planner.
    let o = plugin(&ns.name, &["plan", "auth-api", "--max-clients", "100000", "-o", "json"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", show(&o)));
    assert_eq!(plan["budget"]["maxClients"], 100000, "{plan}");
}

/// A policy deleted mid-rollout with its operator gone waits on its finalizer; `release` gives
/// the stable its replicas back, deletes the canary and lets it go. On a policy that is not
/// being deleted it changes nothing.
#[tokio::test]
async fn release_lets_a_deleted_policy_go_with_its_target_restored() {
    let mut env = Env::new("plugin-release", 10).await;
    let ns = env.ns.name.clone();
    let _fleet = env.fleet(all_pods(Health::good()));
    let mut p = policy("auth-api");
    p["spec"]["rollout"]["steps"][1]["pause"] = serde_json::json!("10m");
    env.apply(p).await;
    env.wait_status("auth-api", "step 2 soaking", Duration::from_secs(60), |s| {
        s.step == Some(1) && s.step_started_at.is_some()
    })
    .await;
    assert_eq!(env.target().await.spec.replicas, Some(5));
    let o = plugin(&ns, &["release", "auth-api"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert!(err(&o).contains("auth-api is not being deleted"), "{}", show(&o));
    assert!(env.canary().await.is_some(), "release changed a live rollout");

    env.operator.kill();
    env.policies().delete("auth-api", &Default::default()).await.unwrap();
    let held = env.policies().get("auth-api").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some(), "the finalizer holds it");
    let o = plugin(&ns, &["release", "auth-api"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", show(&o));
    assert!(out(&o).contains("deployment/auth-api scaled back to 10 replicas"), "{}", show(&o));
    assert!(out(&o).contains("deployment/auth-api-pool-canary deleted"), "{}", show(&o));
    env.wait_gone("auth-api", "released", Duration::from_secs(10)).await;
    assert_eq!(env.target().await.spec.replicas, Some(10));
    assert!(env.canary().await.is_none());
    assert_eq!(env_of(&env.target().await, "WORKERS").as_deref(), Some("2"), "the unfinished pool stays unwritten");
}
