//! Redis as production runs it: the budget holds on every node of a Redis Cluster. The operator
//! process against a real control plane, kwok pods with scripted pool health, and real
//! redis-servers in cluster mode (Debian's `redis-server`, `redis-cli --cluster create`).

mod support;

use std::time::Duration;

use redis_pool_operator::core::api::Phase;
use support::fleet::Health;
use support::scenario::*;
use support::*;

/// Cluster clients keep a pool per node, so every master holds the whole fleet's pools against
/// its own `maxclients`. A rollout that fits the large nodes but not the small one is Blocked,
/// naming that node; once the node has room, it starts by itself and promotes.
#[tokio::test]
async fn every_cluster_node_must_fit_and_the_tightest_is_named() {
    let cluster = RedisCluster::start(&["10000", "10000", "1000"]);
    let small = cluster.nodes[2].address();
    let env = Env::new("cluster", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let mut p = policy("auth-api");
    // The seed is a large node: the small one is found through CLUSTER NODES.
    p["spec"]["redis"] = serde_json::json!({"address": cluster.nodes[0].address(), "topology": "Cluster"});
    env.apply(p).await;
    let status = env.wait_phase("auth-api", Phase::Blocked, Duration::from_secs(30)).await;
    let budget = status.conditions.iter().find(|c| c.type_ == "BudgetOk").unwrap();
    assert_eq!(budget.status, "False", "{budget:?}");
    assert!(
        budget.message.contains(&format!("on node {small} (master")) && budget.message.contains("1000 maxclients"),
        "the small node is named with its numbers: {}",
        budget.message
    );
    let reachable = status.conditions.iter().find(|c| c.type_ == "RedisReachable").unwrap();
    assert!(reachable.message.contains("least room of the 3 that hold pools"), "{}", reachable.message);
    assert!(env.canary().await.is_none(), "nothing starts on a node that cannot hold it");
    eprintln!(
        "BudgetOk {}: {}\nRedisReachable {}: {}",
        budget.status, budget.message, reachable.status, reachable.message
    );

    // `plan NAME` asks the nodes itself and prints the budget of each: only the small one is over.
    let o = plugin(&env.ns.name, &["plan", "auth-api"]).await;
    let text = out(&o);
    eprintln!("{text}");
    assert_eq!(o.status.code(), Some(3), "over budget: {text}");
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("127.0.0.1:")).collect();
    assert_eq!(rows.len(), 3, "a row per master: {text}");
    for row in rows {
        let verdict = if row.starts_with(&small) { "OVER" } else { "fits" };
        assert!(row.contains(" master ") && row.ends_with(verdict), "{row}");
    }
    assert!(text.contains("redis: cluster seen through seed") && text.contains("a pool per node"), "{text}");

    // The small node gets room: the rollout starts by itself and completes.
    cluster.nodes[2].cli(&["CONFIG", "SET", "maxclients", "10000"]);
    env.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(120)).await;
}

/// A seed that does not answer gives way to the next of `seeds`; the condition says which
/// seeds were tried only when none answers.
#[tokio::test]
async fn a_dead_seed_gives_way_to_the_next() {
    let cluster = RedisCluster::start(&["10000", "10000", "10000"]);
    let dead = format!("127.0.0.1:{}", free_port());
    let env = Env::new("cluster-seeds", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let mut p = policy("auth-api");
    p["spec"]["redis"] =
        serde_json::json!({"address": dead, "topology": "Cluster", "seeds": [cluster.nodes[1].address()]});
    env.apply(p).await;
    let status = env.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(120)).await;
    let reachable = status.conditions.iter().find(|c| c.type_ == "RedisReachable").unwrap();
    assert_eq!(reachable.status, "True", "{}", reachable.message);
    assert!(reachable.message.contains("of the 3 that hold pools"), "{}", reachable.message);
}

/// A seed that is a standalone server is refused, naming the field and the fix.
#[tokio::test]
async fn a_cluster_seed_that_is_a_standalone_server_is_refused() {
    let standalone = RedisServer::start(&[]);
    let env = Env::new("notcluster", 10).await;
    let mut p = policy("auth-api");
    p["spec"]["redis"] = serde_json::json!({"address": standalone.address(), "topology": "Cluster"});
    env.apply(p).await;
    let status = env
        .wait_status("auth-api", "RedisReachable False naming the topology", Duration::from_secs(30), |s| {
            s.conditions.iter().any(|c| c.type_ == "RedisReachable" && c.status == "False")
        })
        .await;
    let reachable = status.conditions.iter().find(|c| c.type_ == "RedisReachable").unwrap();
    assert!(
        reachable.message.contains("spec.redis.topology is Cluster but")
            && reachable.message.contains("is not a cluster node")
            && reachable.message.contains("topology: Standalone"),
        "{}",
        reachable.message
    );
    assert!(env.canary().await.is_none());
}

/// Redis Sentinel: the budget is checked on the master the sentinels name now. The master is too
/// small for the rollout (Blocked); after `SENTINEL FAILOVER` the next probe checks the new
/// master, which has room, and the rollout starts by itself and completes.
#[tokio::test]
async fn with_sentinel_the_budget_follows_the_master() {
    let sentinel = SentinelSet::start_with(&[("maxclients", "1000")], &[("maxclients", "10000")]);
    let env = Env::new("sentinel", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let mut p = policy("auth-api");
    p["spec"]["redis"] = serde_json::json!({
        "address": sentinel.sentinel_address(0),
        "topology": "Sentinel",
        "sentinel": {"masterName": SentinelSet::NAME, "addresses": [sentinel.sentinel_address(1)]}
    });
    env.apply(p).await;
    let status = env.wait_phase("auth-api", Phase::Blocked, Duration::from_secs(30)).await;
    let reachable = status.conditions.iter().find(|c| c.type_ == "RedisReachable").unwrap();
    let master = sentinel.master.address();
    assert!(
        reachable
            .message
            .contains(&format!("maxclients 1000 (master of \"mymaster\" at {master}, per the sentinel at")),
        "{}",
        reachable.message
    );
    let sentinel = tokio::task::spawn_blocking(move || {
        sentinel.failover();
        sentinel
    })
    .await
    .unwrap();
    env.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(120)).await;
    let reachable = env.status("auth-api").await.conditions.into_iter().find(|c| c.type_ == "RedisReachable");
    let new_master = sentinel.replica.address();
    assert!(reachable.is_some_and(|c| c.message.contains(&format!("at {new_master}"))), "the new master is checked");
}

/// With `readFromReplicas`, the replicas the sentinels report hold pools too: each has a budget
/// of its own, and a small replica blocks a rollout that fits the master, named as a replica;
/// `plan NAME` shows both rows. With room on the replica, the rollout completes.
#[tokio::test]
async fn with_sentinel_and_replica_reads_every_replica_must_fit() {
    let sentinel = SentinelSet::start_with(&[("maxclients", "10000")], &[("maxclients", "1000")]);
    let env = Env::new("sentinel-reads", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let mut p = policy("auth-api");
    p["spec"]["redis"] = serde_json::json!({
        "address": sentinel.sentinel_address(0),
        "topology": "Sentinel",
        "readFromReplicas": true,
        "sentinel": {"masterName": SentinelSet::NAME}
    });
    env.apply(p).await;
    let status = env.wait_phase("auth-api", Phase::Blocked, Duration::from_secs(30)).await;
    let replica = sentinel.replica.address();
    let budget = status.conditions.iter().find(|c| c.type_ == "BudgetOk").unwrap();
    assert!(
        budget.message.contains(&format!("on node {replica} (replica")) && budget.message.contains("1000 maxclients"),
        "{}",
        budget.message
    );
    let o = plugin(&env.ns.name, &["plan", "auth-api"]).await;
    let text = out(&o);
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("127.0.0.1:")).collect();
    assert_eq!(rows.len(), 2, "the master and its replica: {text}");
    assert!(
        rows.iter().any(|r| r.starts_with(&sentinel.master.address()) && r.contains(" master ") && r.ends_with("fits")),
        "{text}"
    );
    assert!(rows.iter().any(|r| r.starts_with(&replica) && r.contains(" replica ") && r.ends_with("OVER")), "{text}");
    sentinel.replica.cli(&["CONFIG", "SET", "maxclients", "10000"]);
    env.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(120)).await;
}

/// A master name the sentinels do not monitor is refused, naming the field.
#[tokio::test]
async fn an_unknown_sentinel_master_name_is_refused() {
    let sentinel = SentinelSet::start();
    let env = Env::new("sentinelname", 10).await;
    let mut p = policy("auth-api");
    p["spec"]["redis"] = serde_json::json!({
        "address": sentinel.sentinel_address(0),
        "topology": "Sentinel",
        "sentinel": {"masterName": "nosuchmaster"}
    });
    env.apply(p).await;
    let status = env
        .wait_status("auth-api", "RedisReachable False naming the master name", Duration::from_secs(30), |s| {
            s.conditions.iter().any(|c| c.type_ == "RedisReachable" && c.status == "False")
        })
        .await;
    let m = status.conditions.into_iter().find(|c| c.type_ == "RedisReachable").unwrap().message;
    assert!(m.contains("spec.redis.sentinel.masterName \"nosuchmaster\" is not a master"), "{m}");
}

/// twemproxy in front of Redis: the pools connect to the proxy, so the budget is the proxy's
/// client limit (`maxClients`), and the status says plainly what is not checked: the servers
/// behind it. Over the limit, Blocked; with room, promoted.
#[tokio::test]
async fn behind_a_proxy_the_budget_is_the_proxys_limit() {
    let redis = RedisServer::start(&[]);
    let proxy = Twemproxy::start(&redis.address());
    let env = Env::new("proxy", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let mut p = policy("auth-api");
    p["spec"]["redis"] = serde_json::json!({"address": proxy.address(), "topology": "Proxy", "maxClients": 1000});
    env.apply(p).await;
    let status = env.wait_phase("auth-api", Phase::Blocked, Duration::from_secs(30)).await;
    let reachable = status.conditions.iter().find(|c| c.type_ == "RedisReachable").unwrap();
    assert_eq!(reachable.status, "True", "twemproxy answers PING: {}", reachable.message);
    assert!(
        reachable.message.contains("the proxy's client limit") && reachable.message.contains("not checked"),
        "{}",
        reachable.message
    );
    let mut redis_spec = p_redis(&env).await;
    redis_spec["maxClients"] = serde_json::json!(10000);
    let patch = serde_json::json!({"spec": {"redis": redis_spec}});
    env.policies()
        .patch("auth-api", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch))
        .await
        .unwrap();
    env.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(120)).await;
}

async fn p_redis(env: &Env) -> serde_json::Value {
    let p = env.policies().get("auth-api").await.unwrap();
    serde_json::to_value(p.spec.redis.unwrap()).unwrap()
}

/// Two policies that name different seeds of one Redis Cluster draw on one budget: every node
/// holds both fleets' pools. Each plan peaks at 3200 against 6250 per node (x 0.8 = 5000): one
/// at a time fits (beside the other's 1600 steady), both at once do not, so the second waits for
/// room, naming the first, and rolls out once the first is done.
#[tokio::test]
async fn two_policies_on_different_seeds_of_one_cluster_share_its_budget() {
    use k8s_openapi::api::apps::v1::Deployment;
    use kube::api::PostParams;
    let cluster = RedisCluster::start(&["6250", "6250", "6250"]);
    let env = Env::new("cluster-shared", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let mut second: Deployment = env.target().await;
    second.metadata = kube::api::ObjectMeta { name: Some("search-api".into()), ..Default::default() };
    second.status = None;
    env.deployments().create(&PostParams::default(), &second).await.unwrap();
    let on_seed = |name: &str, target: &str, seed: String| {
        let mut p = policy(name);
        p["spec"]["targetRef"]["name"] = serde_json::json!(target);
        p["spec"]["redis"] = serde_json::json!({"address": seed, "topology": "Cluster"});
        p
    };
    env.apply(on_seed("auth", TARGET, cluster.nodes[0].address())).await;
    env.wait_status("auth", "the first rollout to start", Duration::from_secs(60), |s| s.phase.is_active()).await;
    env.apply(on_seed("search", "search-api", cluster.nodes[1].address())).await;
    let blocked = env.wait_phase("search", Phase::Blocked, Duration::from_secs(60)).await;
    let message = blocked.message.unwrap_or_default();
    let ns = env.ns.name.clone();
    assert!(
        message.contains("waiting for room on the Redis server")
            && message.contains(&format!("{ns}/auth (rolling out)")),
        "{message}"
    );
    env.wait_phase("search", Phase::Succeeded, Duration::from_secs(150)).await;
}

/// Real pool-app pods (cluster mode) behind real load: every node holds a pool from every pod,
/// each within the pod's configured size (CLIENT LIST on each node). redis-rs links every pooled
/// connection to the replicas too, so the policy says `readFromReplicas: true` and the replicas
/// are budgeted. A failover in the middle of the rollout is followed: the smallest node, a
/// replica, is the one the budget binds on before and after it takes over its master, and the
/// rollout completes on the real pools' health.
#[tokio::test]
async fn real_pods_hold_a_pool_on_every_node_and_a_failover_mid_rollout_is_followed() {
    use k8s_openapi::api::core::v1::Pod;
    // Three masters with room; their replicas have less, and one of them least of all.
    let cluster = RedisCluster::start_with_replicas(&["10000", "10000", "10000", "5000", "5000", "5000"], 1);
    let old = cluster.node_with_role("master", None);
    let promoted = cluster.node_with_role("slave", Some(old));
    promoted.cli(&["CONFIG", "SET", "maxclients", "4000"]);
    let smallest = promoted.address();
    let seed = cluster.nodes[0].address();
    let env = Env::with_target_env(
        "poolnodes",
        4,
        // A cold cluster pool links to six nodes before its first request: on a busy machine
        // that takes longer than pool-app's default 250 ms wait, which would count as exhaustion.
        &[
            ("REDIS_TOPOLOGY", "cluster"),
            ("REDIS_ADDRESS", &seed),
            ("REDIS_HOLD_MS", "20"),
            ("POOL_CHECKOUT_TIMEOUT_MS", "3000"),
        ],
    )
    .await;
    let workload = Workload::start(&env.ns.name, 60, 300);
    let mut p = policy("auth-api");
    p["spec"]["tiers"] =
        serde_json::json!([{"name": "production", "workers": 2, "connectionsPerWorker": 3, "replicas": 4}]);
    p["spec"]["redis"] = serde_json::json!({"address": seed, "topology": "Cluster", "readFromReplicas": true});
    p["spec"]["rollout"]["steps"] = serde_json::json!([{"weight": 25, "pause": "6s"}, {"weight": 50, "pause": "3s"}, {"weight": 100, "pause": "3s"}]);
    // This test is about following the cluster, not judging the pool: a pool of three per node
    // may be fully checked out for a moment while the other suites load the machine.
    p["spec"]["rollout"]["analysis"]["poolUtilization"] =
        serde_json::json!({"promoteAtMost": 100.0, "rollbackAbove": 100.0});
    env.apply(p).await;
    let logs = workload.log_dir.display().to_string();
    let binds_on = |role: &'static str| {
        let label = format!("cluster node {smallest} ({role}");
        move |s: &redis_pool_operator::core::api::RedisPoolPolicyStatus| {
            s.conditions.iter().any(|c| {
                c.type_ == "RedisReachable"
                    && c.message.contains(&label)
                    && c.message.contains("of the 6 that hold pools")
            })
        }
    };
    let first = binds_on("replica");
    env.wait_status(
        "auth-api",
        &format!("the first step to run (workload logs in {logs})"),
        Duration::from_secs(90),
        |s| s.step == Some(0) && s.step_started_at.is_some() && first(s),
    )
    .await;

    // Mid-rollout, the smallest replica takes over its master (a coordinated CLUSTER FAILOVER).
    assert_eq!(promoted.cli(&["CLUSTER", "FAILOVER"]).trim(), "OK");
    wait_until("the replica to take over", Duration::from_secs(30), || async {
        promoted.cli(&["INFO", "replication"]).contains("role:master").then_some(())
    })
    .await;
    let followed = env
        .wait_status(
            "auth-api",
            "the budget to see the replica as a master",
            Duration::from_secs(60),
            binds_on("master"),
        )
        .await;
    let reachable = followed.conditions.iter().find(|c| c.type_ == "RedisReachable").unwrap();
    eprintln!("after the failover: {}", reachable.message);
    env.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(180)).await;

    // Every pod of the promoted fleet holds a pool on every node, each within 2 x 3 connections.
    let pods: Vec<String> = env
        .ns
        .api::<Pod>()
        .list(&kube::api::ListParams::default().labels("app=auth-api"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.metadata.name)
        .collect();
    assert_eq!(pods.len(), 4, "{pods:?}");
    for node in &cluster.nodes {
        let names = wait_until(
            &format!("a pool from every pod on node {} (workload logs in {logs})", node.address()),
            Duration::from_secs(30),
            || async {
                let names: Vec<String> = node
                    .cli(&["CLIENT", "LIST"])
                    .lines()
                    .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("name=pool-app:")).map(String::from))
                    .collect();
                pods.iter().all(|pod| names.iter().any(|n| n.starts_with(&format!("{pod}:")))).then_some(names)
            },
        )
        .await;
        for pod in &pods {
            for worker in ["w0", "w1"] {
                let held = names.iter().filter(|n| **n == format!("{pod}:{worker}")).count();
                assert!(held <= 3, "{pod} {worker} holds {held} connections on {}: over its pool", node.address());
            }
        }
        eprintln!("{}: {} pool-app connections from {} pods", node.address(), names.len(), pods.len());
    }
}
