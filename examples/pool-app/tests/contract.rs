//! pool-app against a real redis-server: the pool sizes, the health contract and the metrics
//! report what really happens.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on 127.0.0.1:{port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn redis(port: u16) -> Proc {
    redis_with(port, &[])
}

/// A redis-server on loopback with more arguments, working in a directory of its own.
fn redis_with(port: u16, args: &[&str]) -> Proc {
    let dir = std::env::temp_dir().join(format!("pool-app-redis-{port}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(&dir)
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server is installed (.ci/run installs it)");
    wait_port(port);
    Proc(p)
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli").args(["-p", &port.to_string()]).args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until `check` holds, naming `what` on timeout.
fn wait_for(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn app(redis_port: u16, env: &[(&str, &str)]) -> (Proc, String) {
    app_at(&format!("127.0.0.1:{redis_port}"), env)
}

fn app_at(redis_address: &str, env: &[(&str, &str)]) -> (Proc, String) {
    let port = free_port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pool-app"));
    cmd.env_clear()
        .env("REDIS_ADDRESS", redis_address)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("POD_NAME", "test-pod")
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let p = Proc(cmd.spawn().unwrap());
    wait_port(port);
    (p, format!("http://127.0.0.1:{port}"))
}

async fn health(base: &str) -> serde_json::Value {
    reqwest::get(format!("{base}/health/redis")).await.unwrap().json().await.unwrap()
}

fn client_names(redis_port: u16) -> Vec<String> {
    cli(redis_port, &["client", "list"])
        .lines()
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("name=")).map(String::from))
        .filter(|n| n.starts_with("pool-app"))
        .collect()
}

#[tokio::test]
async fn pools_are_the_configured_size_and_the_contract_tells_the_truth() {
    let redis_port = free_port();
    let _redis = redis(redis_port);
    let env = [
        ("WORKERS", "2"),
        ("REDIS_POOL_MAX_CONNECTIONS", "2"),
        ("REDIS_HOLD_MS", "600"),
        ("POOL_CHECKOUT_TIMEOUT_MS", "150"),
        ("DEPLOYMENT_ENV", "staging"),
    ];
    let (_app, base) = app(redis_port, &env);
    let h = health(&base).await;
    assert_eq!(h["pool"]["max_connections"], 4, "2 workers x 2 connections");
    assert_eq!(h["status"], "healthy");

    // Eight requests at once, each holding its connection for 600 ms: four get a connection
    // (two per worker), four wait 150 ms and count as pool exhaustion.
    let client = reqwest::Client::new();
    let work = (0..8).map(|_| {
        let client = client.clone();
        let url = format!("{base}/work");
        tokio::spawn(async move { client.get(url).send().await.unwrap().status().as_u16() })
    });
    let handles: Vec<_> = work.collect();
    tokio::time::sleep(Duration::from_millis(350)).await;
    let during = health(&base).await;
    assert_eq!(during["pool"]["in_use"], 4, "{during}");
    assert_eq!(during["pool"]["utilization_percent"], 100.0);
    let mut names = client_names(redis_port);
    names.sort();
    assert_eq!(
        names,
        ["pool-app:test-pod:w0", "pool-app:test-pod:w0", "pool-app:test-pod:w1", "pool-app:test-pod:w1"],
        "CLIENT LIST"
    );
    let mut codes = Vec::new();
    for h in handles {
        codes.push(h.await.unwrap());
    }
    codes.sort();
    assert_eq!(codes, [200, 200, 200, 200, 503, 503, 503, 503]);

    let after = health(&base).await;
    let c = &after["counters"];
    assert_eq!(c["requests_total"], 8);
    assert_eq!(c["requests_failed_total"], 4);
    assert_eq!(c["pool_exhaustion_events_total"], 4);
    assert_eq!(c["redis_connection_errors_total"], 0);
    assert_eq!(after["pool"]["peak_in_use"], 4);
    assert_eq!(after["status"], "degraded");
    let lat = &after["latency_ms"];
    assert_eq!(lat["count"], 8);
    let counts: Vec<u64> = lat["counts"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    // Four fast failures (~150 ms, in the 250 ms bucket) and four ~600 ms successes (1000 ms bucket).
    assert_eq!(counts, [0, 0, 0, 0, 0, 4, 4, 8, 8], "{lat}");

    // The same numbers in Prometheus text.
    let text = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    for line in [
        "redis_pool_max_connections 4",
        "redis_pool_timeouts_total 4",
        "http_requests_total{code=\"503\"} 4",
        "http_request_duration_seconds_count 8",
    ] {
        assert!(text.contains(line), "missing {line:?} in:\n{text}");
    }

    // Tokens really live in Redis.
    let token = client.post(format!("{base}/token")).send().await.unwrap().text().await.unwrap();
    let user = client.get(format!("{base}/verify?token={token}")).send().await.unwrap().text().await.unwrap();
    assert_eq!(user.trim(), "user-1");
}

#[tokio::test]
async fn redis_failures_are_retried_then_counted() {
    let redis_port = free_port();
    let redis = redis(redis_port);
    let env = [
        ("WORKERS", "1"),
        ("REDIS_POOL_MAX_CONNECTIONS", "2"),
        ("REDIS_RETRY_ATTEMPTS", "3"),
        ("REDIS_RETRY_BACKOFF_MS", "50"),
        ("REDIS_SOCKET_CONNECT_TIMEOUT", "1"),
    ];
    let (_app, base) = app(redis_port, &env);
    assert_eq!(reqwest::get(format!("{base}/work")).await.unwrap().status(), 200);
    drop(redis);
    let start = Instant::now();
    let status = reqwest::get(format!("{base}/work")).await.unwrap().status();
    assert_eq!(status, 502);
    // Three attempts with 50 ms then 100 ms of backoff between them.
    assert!(start.elapsed() >= Duration::from_millis(150), "no backoff: {:?}", start.elapsed());
    let h = health(&base).await;
    assert!(h["counters"]["redis_connection_errors_total"].as_u64().unwrap() >= 1, "{h}");
    assert_eq!(h["counters"]["requests_failed_total"], 1);
}

#[test]
fn a_broken_env_is_refused_with_the_variable_named() {
    let out = Command::new(env!("CARGO_BIN_EXE_pool-app")).env_clear().env("WORKERS", "four").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("WORKERS=\"four\" is not a valid number"));
    let out = Command::new(env!("CARGO_BIN_EXE_pool-app"))
        .env_clear()
        .env("REDIS_TOPOLOGY", "sentinel")
        .env("REDIS_ADDRESS", "127.0.0.1:26379")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("REDIS_TOPOLOGY=sentinel needs REDIS_SENTINEL_MASTER"));
}

/// Sends `n` requests to `/work` at once (each holding its connection), and waits for them.
async fn hold_all(base: &str, n: usize) -> Vec<u16> {
    let client = reqwest::Client::new();
    let work: Vec<_> = (0..n)
        .map(|_| {
            let (client, url) = (client.clone(), format!("{base}/work"));
            tokio::spawn(async move { client.get(url).send().await.unwrap().status().as_u16() })
        })
        .collect();
    let mut codes = Vec::new();
    for w in work {
        codes.push(w.await.unwrap());
    }
    codes
}

/// In cluster mode every pooled connection links to every node: each node holds the whole pool
/// (workers x connections), which is what the operator budgets per node.
#[tokio::test]
async fn in_cluster_mode_every_node_holds_the_whole_pool() {
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let _nodes: Vec<Proc> =
        ports.iter().map(|p| redis_with(*p, &["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"])).collect();
    let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let out = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addresses)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .unwrap();
    assert!(out.status.success(), "redis-cli --cluster create: {}", String::from_utf8_lossy(&out.stdout));
    wait_for("cluster_state:ok on every node", || {
        ports.iter().all(|p| cli(*p, &["cluster", "info"]).contains("cluster_state:ok"))
    });
    let env = [
        ("REDIS_TOPOLOGY", "cluster"),
        ("WORKERS", "2"),
        ("REDIS_POOL_MAX_CONNECTIONS", "2"),
        ("REDIS_HOLD_MS", "400"),
        ("POOL_CHECKOUT_TIMEOUT_MS", "2000"),
    ];
    // One seed is enough: the other nodes are found through the cluster.
    let (_app, base) = app_at(&addresses[0], &env);
    let codes = hold_all(&base, 8).await;
    assert!(codes.iter().all(|c| *c == 200), "{codes:?}");
    for port in &ports {
        let mut names = client_names(*port);
        names.sort();
        assert_eq!(
            names,
            ["pool-app:test-pod:w0", "pool-app:test-pod:w0", "pool-app:test-pod:w1", "pool-app:test-pod:w1"],
            "CLIENT LIST on node {port}: a pool per node"
        );
    }
    let h = health(&base).await;
    assert_eq!(h["pool"]["max_connections"], 4, "the contract counts the pool, not the links: {h}");
}

/// In sentinel mode the pools land on the master the sentinels name.
#[tokio::test]
async fn in_sentinel_mode_the_pool_is_on_the_master() {
    let (master, replica, sentinel) = (free_port(), free_port(), free_port());
    let _master = redis_with(master, &[]);
    let follow = master.to_string();
    let _replica = redis_with(replica, &["--replicaof", "127.0.0.1", &follow]);
    let dir = std::env::temp_dir().join(format!("pool-app-sentinel-{sentinel}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "port {sentinel}\nbind 127.0.0.1\ndir {}\nsentinel monitor cache 127.0.0.1 {master} 1\n",
            dir.display()
        ),
    )
    .unwrap();
    let _sentinel = Proc(
        Command::new("redis-sentinel")
            .arg(&conf)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-sentinel is installed (.ci/run installs it)"),
    );
    wait_port(sentinel);
    let env = [
        ("REDIS_TOPOLOGY", "sentinel"),
        ("REDIS_SENTINEL_MASTER", "cache"),
        ("WORKERS", "1"),
        ("REDIS_POOL_MAX_CONNECTIONS", "2"),
        ("REDIS_HOLD_MS", "300"),
        ("POOL_CHECKOUT_TIMEOUT_MS", "2000"),
    ];
    let (_app, base) = app_at(&format!("127.0.0.1:{sentinel}"), &env);
    let codes = hold_all(&base, 4).await;
    assert!(codes.iter().all(|c| *c == 200), "{codes:?}");
    assert_eq!(client_names(master), ["pool-app:test-pod:w0", "pool-app:test-pod:w0"], "on the master");
    assert!(client_names(replica).is_empty(), "nothing on the replica");
    // A name the sentinels do not monitor: every request fails, and is counted.
    let (_app, base) =
        app_at(&format!("127.0.0.1:{sentinel}"), &[("REDIS_TOPOLOGY", "sentinel"), ("REDIS_SENTINEL_MASTER", "nope")]);
    assert_eq!(reqwest::get(format!("{base}/work")).await.unwrap().status(), 502);
}
