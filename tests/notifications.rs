//! Notifications against real parts: loopback receivers that record every request, a real
//! Alertmanager, and an operator that is SIGKILLed right after a transition.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use redis_pool_operator::core::api::{DeliveryState, Phase, RedisPoolPolicyStatus};
use support::fleet::Health;
use support::receiver::{Received, Receiver, Reply};
use support::scenario::*;
use support::*;

/// A Secret in the test's namespace with these keys.
async fn secret(env: &Env, name: &str, data: &[(&str, &str)]) {
    let data: BTreeMap<&str, &str> = data.iter().copied().collect();
    let s = serde_json::json!({"metadata": {"name": name}, "stringData": data});
    let api: kube::Api<Secret> = env.ns.api();
    api.create(&Default::default(), &serde_json::from_value(s).unwrap()).await.unwrap();
}

fn webhook(name: &str, on: &[&str]) -> serde_json::Value {
    serde_json::json!({"name": name, "on": on,
        "webhook": {"urlSecretRef": {"name": "hooks", "key": name}, "signingKeySecretRef": {"name": "hooks", "key": "signing-key"}}})
}

/// The outbox is empty: every notice reached every destination (or was given up).
async fn all_told(env: &Env, timeout: Duration) -> RedisPoolPolicyStatus {
    env.wait_status("auth-api", "every notice delivered", timeout, |s| {
        s.notifications.as_ref().is_some_and(|n| n.outbox.is_empty() && n.sequence > 0)
    })
    .await
}

fn hmac_hex(key: &[u8], body: &[u8]) -> String {
    let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key), body);
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// (id, trigger) of each request, in arrival order.
fn told(requests: &[Received]) -> Vec<(String, String)> {
    requests
        .iter()
        .map(|r| {
            let b = r.json();
            (b["id"].as_str().unwrap().to_string(), b["trigger"].as_str().unwrap().to_string())
        })
        .collect()
}

/// A whole rollout: each transition reaches the webhook exactly once, in order, signed with the
/// key, with its idempotency key; Slack gets the one it subscribed to.
#[tokio::test]
async fn each_transition_reaches_each_destination_once_signed() {
    let env = Env::new("notify-once", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let (hook, slack) = (Receiver::answering(200).await, Receiver::answering(200).await);
    secret(&env, "hooks", &[("oncall", &hook.url), ("chat", &slack.url), ("signing-key", "k3y")]).await;
    let mut p = policy("auth-api");
    p["spec"]["notifications"] = serde_json::json!([webhook("oncall", &[]),
        {"name": "chat", "on": ["Succeeded"], "slack": {"urlSecretRef": {"name": "hooks", "key": "chat"}}}]);
    env.apply(p).await;
    env.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(90)).await;
    let s = all_told(&env, Duration::from_secs(30)).await;
    let requests = hook.received();
    let uid = env.policies().get("auth-api").await.unwrap().metadata.uid.unwrap();
    let expected: Vec<(String, String)> = ["RolloutStarted", "StepAdvanced", "StepAdvanced", "Succeeded"]
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("{uid}/{}", i + 1), t.to_string()))
        .collect();
    let mut got = told(&requests);
    // VerdictSoaked may follow the promotion's short soak.
    got.retain(|(_, t)| t != "VerdictSoaked");
    assert_eq!(got, expected, "exactly once each, in order");
    for r in &requests {
        assert_eq!(r.headers.get("idempotency-key").map(String::as_str), r.json()["id"].as_str());
        let signature = r.headers.get("x-redispool-signature").expect("signed");
        assert_eq!(signature, &format!("sha256={}", hmac_hex(b"k3y", &r.body)), "the signature verifies");
    }
    let chat = slack.received();
    assert_eq!(chat.len(), 1, "{chat:?}");
    let text = chat[0].json()["text"].as_str().unwrap().to_string();
    assert!(text.starts_with(&format!("*{}/auth-api*: Succeeded", env.ns.name)), "{text}");
    let recent = &s.notifications.unwrap().recent;
    assert!(recent.iter().all(|d| d.state == DeliveryState::Delivered), "{recent:?}");
    let c = s.conditions.iter().find(|c| c.type_ == "NotificationsDelivered").unwrap();
    assert_eq!(c.status, "True");
}

/// A receiver that fails three times, then answers: it gets the notice, with one idempotency
/// key across the four requests. One that never answers is given up, said by a Warning Event
/// and a condition that name it, not its URL.
#[tokio::test]
async fn retries_reach_a_receiver_that_recovers_and_failures_name_the_destination() {
    let env = Env::new("notify-retry", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let flaky = Receiver::start(Arc::new(|n, _| match n {
        0..=2 => Reply::Status(503, "busy".into()),
        _ => Reply::Status(200, String::new()),
    }))
    .await;
    let down = Receiver::answering(500).await;
    secret(&env, "hooks", &[("oncall", &flaky.url), ("audit", &down.url), ("signing-key", "k")]).await;
    let mut p = policy("auth-api");
    p["spec"]["notifications"] =
        serde_json::json!([webhook("oncall", &["RolloutStarted"]), webhook("audit", &["RolloutStarted"])]);
    env.apply(p).await;
    let s = all_told(&env, Duration::from_secs(90)).await;
    let requests = flaky.wait_for(4, Duration::from_secs(5)).await;
    assert_eq!(requests.len(), 4, "three failures and the delivery");
    let keys: Vec<&String> = requests.iter().map(|r| r.headers.get("idempotency-key").unwrap()).collect();
    assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
    let recent = s.notifications.unwrap().recent;
    let by = |d: &str| recent.iter().find(|r| r.destination == d).unwrap().clone();
    assert_eq!((by("oncall").state, by("oncall").attempts), (DeliveryState::Delivered, 4));
    assert_eq!((by("audit").state, by("audit").reason.as_deref()), (DeliveryState::Failed, Some("HTTP 500")));
    let c = s.conditions.iter().find(|c| c.type_ == "NotificationsDelivered").unwrap();
    assert_eq!((c.status.as_str(), c.message.as_str()), ("False", "audit: HTTP 500"));
    let events = env.events().await;
    let failed = events.iter().find(|(r, _)| r == "NotificationFailed").expect("a Warning Event");
    assert!(failed.1.contains("to audit failed after 6 attempts: HTTP 500"), "{failed:?}");
    assert!(events.iter().all(|(_, m)| !m.contains("127.0.0.1")), "a URL leaked into an Event");
}

/// Two rollouts side by side, one telling a receiver that never answers (each request hangs a
/// minute): its steps take as long as the other's.
#[tokio::test]
async fn a_receiver_that_hangs_delays_no_decision() {
    let quiet = Env::new("notify-quiet", 10).await;
    let hung = Env::new("notify-hung", 10).await;
    let (_a, _b) = (quiet.fleet(all_pods(Health::good())), hung.fleet(all_pods(Health::good())));
    let hang = Receiver::start(Arc::new(|_, _| Reply::Hang(Duration::from_secs(60)))).await;
    secret(&hung, "hooks", &[("oncall", &hang.url), ("signing-key", "k")]).await;
    let mut p = policy("auth-api");
    p["spec"]["notifications"] = serde_json::json!([webhook("oncall", &[])]);
    let started = Instant::now();
    let (q, h) = tokio::join!(
        async {
            quiet.apply(policy("auth-api")).await;
            quiet.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(120)).await;
            started.elapsed()
        },
        async {
            hung.apply(p).await;
            hung.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(120)).await;
            started.elapsed()
        }
    );
    eprintln!("rollout without notifications {q:?}, with a hanging receiver {h:?}");
    assert!(h <= q + Duration::from_secs(8), "the hanging receiver delayed the rollout: {h:?} against {q:?}");
    assert!(!hang.received().is_empty(), "the receiver was told (and hung)");
}

/// The operator is SIGKILLed right after a transition is recorded, and started again: the
/// receiver sees every transition, none more than twice, a repeat with the same key and body.
#[tokio::test]
async fn a_killed_operator_neither_loses_nor_repeats_more_than_once() {
    let mut env = Env::new("notify-kill", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let hook = Receiver::answering(200).await;
    secret(&env, "hooks", &[("oncall", &hook.url), ("signing-key", "k")]).await;
    let mut p = policy("auth-api");
    p["spec"]["notifications"] = serde_json::json!([webhook("oncall", &[])]);
    env.apply(p).await;
    for sequence in [1, 2] {
        env.wait_status("auth-api", &format!("transition {sequence} recorded"), Duration::from_secs(60), |s| {
            s.notifications.as_ref().is_some_and(|n| n.sequence >= sequence)
        })
        .await;
        env.operator.kill();
        env.operator.restart();
    }
    env.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(120)).await;
    let s = all_told(&env, Duration::from_secs(60)).await;
    let last = s.notifications.unwrap().sequence;
    let requests = hook.received();
    let mut seen: BTreeMap<i64, Vec<&Received>> = BTreeMap::new();
    for r in &requests {
        seen.entry(r.json()["sequence"].as_i64().unwrap()).or_default().push(r);
    }
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), (1..=last).collect::<Vec<_>>(), "none missing");
    for (id, copies) in &seen {
        assert!(copies.len() <= 2, "transition {id} delivered {} times", copies.len());
        assert!(copies.iter().all(|c| c.body == copies[0].body), "a repeat of {id} differs");
    }
    eprintln!("{} requests for {last} transitions", requests.len());
}

/// A real Alertmanager: a rollback fires RedisPoolRolledBack (read back through its API), and
/// the retry's rollout resolves it.
#[tokio::test]
async fn alertmanager_fires_on_a_rollback_and_resolves_when_it_ends() {
    let env = Env::new("notify-am", 10).await;
    let healthy = Arc::new(AtomicBool::new(false));
    let good = healthy.clone();
    let _fleet = env.fleet(Arc::new(move |p: &k8s_openapi::api::core::v1::Pod| {
        let canary =
            p.metadata.labels.as_ref().and_then(|l| l.get("redispool.io/track")).is_some_and(|t| t == "canary");
        let bad = Health { utilization: 91.0, ..Health::good() };
        Some(if canary && !good.load(Ordering::Relaxed) { bad } else { Health::good() })
    }));
    let am = AlertmanagerServer::start();
    am.wait_alerts("Alertmanager answers", Duration::from_secs(30), |_| true).await;
    secret(&env, "hooks", &[("alertmanager", &am.url)]).await;
    let mut p = policy("auth-api");
    p["spec"]["notifications"] = serde_json::json!([{"name": "pager", "alertmanager": {"urlSecretRef": {"name": "hooks", "key": "alertmanager"}}}]);
    env.apply(p).await;
    env.wait_phase("auth-api", Phase::RolledBack, Duration::from_secs(90)).await;
    let firing = am
        .wait_alerts("RedisPoolRolledBack firing", Duration::from_secs(30), |alerts| {
            alerts.iter().any(|a| a["labels"]["alertname"] == "RedisPoolRolledBack" && a["status"]["state"] == "active")
        })
        .await;
    let alert = firing.iter().find(|a| a["labels"]["alertname"] == "RedisPoolRolledBack").unwrap();
    assert_eq!(alert["labels"]["redispoolpolicy"], "auth-api");
    assert_eq!(alert["labels"]["namespace"], env.ns.name.as_str());
    healthy.store(true, Ordering::Relaxed);
    env.annotate("auth-api", "retry").await;
    env.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(90)).await;
    am.wait_alerts("RedisPoolRolledBack resolved", Duration::from_secs(30), |alerts| {
        !alerts.iter().any(|a| a["labels"]["alertname"] == "RedisPoolRolledBack" && a["status"]["state"] == "active")
    })
    .await;
}

/// `prometheus-alertmanager` on a loopback port, with a route that sends nowhere.
struct AlertmanagerServer {
    url: String,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl AlertmanagerServer {
    fn start() -> AlertmanagerServer {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(&config, "route: {receiver: nowhere}\nreceivers: [{name: nowhere}]\n").unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("alertmanager.log")).unwrap();
        let child = std::process::Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.path().display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus-alertmanager (hack/test installs it)");
        AlertmanagerServer { url: format!("http://127.0.0.1:{port}"), child, _dir: dir }
    }

    /// Waits until the alerts Alertmanager's API lists satisfy `done`.
    async fn wait_alerts(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let url = format!("{}/api/v2/alerts", self.url);
        wait_until(&format!("{what} (Alertmanager {url})"), timeout, || {
            let url = url.clone();
            let done = &done;
            async move {
                let alerts: Vec<serde_json::Value> = reqwest::get(&url).await.ok()?.json().await.ok()?;
                done(&alerts).then_some(alerts)
            }
        })
        .await
    }
}

impl Drop for AlertmanagerServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
