//! Production Redis: TLS-only servers (certificates made by the test with openssl), ACL users
//! without `CONFIG`, mutual TLS, each failure named with what to fix and no secret ever echoed;
//! and one server's budget shared by the policies that use it.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use redis_pool_operator::core::api::{Phase, RedisPoolPolicy, RedisPoolPolicyStatus};
use support::fleet::Health;
use support::scenario::*;
use support::*;

const PASSWORD: &str = "tls-acl-s3cret-pw";
/// Everything but @admin (and so no CONFIG): what a least-privilege user on managed Redis has.
const ACL_USER: &str = "pool-operator on >tls-acl-s3cret-pw ~* &* +@all -@admin";

async fn create<K>(api: Api<K>, value: serde_json::Value)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let object: K = serde_json::from_value(value).unwrap();
    api.create(&PostParams::default(), &object).await.unwrap();
}

/// The Secrets and ConfigMaps the policies below refer to.
async fn material(env: &Env, pki: &Pki) {
    let secrets: Api<Secret> = env.ns.api();
    create(
        secrets.clone(),
        serde_json::json!({"metadata": {"name": "redis-ca"}, "stringData": {"ca.crt": pki.read("ca.crt")}}),
    )
    .await;
    create(
        secrets.clone(),
        serde_json::json!({"metadata": {"name": "other-ca"}, "stringData": {"ca.crt": pki.read("other-ca.crt")}}),
    )
    .await;
    create(secrets.clone(), serde_json::json!({"metadata": {"name": "redis-auth"}, "stringData": {"password": PASSWORD, "wrong": "not-the-password"}})).await;
    create(
        secrets,
        serde_json::json!({"metadata": {"name": "redis-client"}, "type": "kubernetes.io/tls",
            "stringData": {"tls.crt": pki.read("client.crt"), "tls.key": pki.read("client.key")}}),
    )
    .await;
    create(
        env.ns.api::<ConfigMap>(),
        serde_json::json!({"metadata": {"name": "redis-ca"}, "data": {"ca.crt": pki.read("ca.crt")}}),
    )
    .await;
}

fn tls_redis(address: &str) -> serde_json::Value {
    serde_json::json!({
        "address": address, "tls": true, "username": "pool-operator",
        "passwordSecretRef": {"name": "redis-auth", "key": "password"},
        "tlsOptions": {"caRef": {"secret": "redis-ca"}}
    })
}

fn redis_condition(s: &RedisPoolPolicyStatus) -> Option<(String, String)> {
    s.conditions.iter().find(|c| c.type_ == "RedisReachable").map(|c| (c.status.clone(), c.message.clone()))
}

/// Waits until the policy's RedisReachable condition has `status` and a message with `expect`.
async fn wait_redis(env: &Env, name: &str, status: &str, expect: &str) -> String {
    let s = env
        .wait_status(name, &format!("RedisReachable={status} saying {expect:?}"), Duration::from_secs(45), |s| {
            redis_condition(s).is_some_and(|(st, m)| st == status && m.contains(expect))
        })
        .await;
    redis_condition(&s).unwrap().1
}

/// Replaces spec.redis whole (a merge patch would keep fields the new value leaves out).
async fn set_redis(env: &Env, name: &str, redis: serde_json::Value) {
    let patch = serde_json::json!([{"op": "replace", "path": "/spec/redis", "value": redis}]);
    let patch: json_patch::Patch = serde_json::from_value(patch).unwrap();
    env.policies().patch(name, &PatchParams::default(), &Patch::Json::<()>(patch)).await.unwrap();
}

/// Each way a TLS and ACL setup goes wrong gets its own message, and the policy never starts a
/// rollout on faith; fixing the spec is enough to get going.
#[tokio::test]
async fn tls_and_acl_failures_say_what_to_fix() {
    let pki = Pki::new();
    let redis = RedisServer::start_tls(&pki, &[("maxclients", "5000"), ("user", ACL_USER)]);
    let env = Env::new("tls-faults", 10).await;
    material(&env, &pki).await;
    let mut p = policy("auth-api");
    p["spec"]["redis"] = tls_redis(&redis.address());
    p["spec"]["redis"]["tlsOptions"]["caRef"] = serde_json::json!({"secret": "other-ca"});
    env.apply(p).await;

    let m = wait_redis(&env, "auth-api", "False", "not trusted by the CA in Secret").await;
    assert!(m.contains("set spec.redis.tlsOptions.caRef"), "{m}");
    assert_eq!(env.status("auth-api").await.phase, Phase::Blocked, "no rollout without a checked budget");

    let mut r = tls_redis(&redis.address());
    r["tlsOptions"]["serverName"] = serde_json::json!("wrong.example");
    set_redis(&env, "auth-api", r).await;
    let m = wait_redis(&env, "auth-api", "False", "not valid for the name \"wrong.example\"").await;
    assert!(m.contains("spec.redis.tlsOptions.serverName"), "{m}");

    let mut r = tls_redis(&redis.address());
    r["passwordSecretRef"]["key"] = serde_json::json!("wrong");
    set_redis(&env, "auth-api", r).await;
    let m = wait_redis(&env, "auth-api", "False", "authentication failed for user \"pool-operator\" (WRONGPASS)").await;
    assert!(m.contains("spec.redis.passwordSecretRef"), "{m}");

    // Plain TCP to a TLS-only port is not a TLS answer.
    let mut r = tls_redis(&redis.address());
    r["tls"] = serde_json::json!(false);
    r.as_object_mut().unwrap().remove("tlsOptions");
    set_redis(&env, "auth-api", r).await;
    wait_redis(&env, "auth-api", "False", "if it speaks only TLS, set spec.redis.tls: true").await;

    // Right CA (from a ConfigMap this time), right name, right password: but the user may not
    // run CONFIG GET, as on managed Redis. Redis 7 says maxclients in INFO clients, which the
    // user may read: the budget is checked against it, and the condition says where it came from.
    let mut r = tls_redis(&redis.address());
    r["tlsOptions"] = serde_json::json!({"caRef": {"configMap": "redis-ca"}, "serverName": "redis.test"});
    set_redis(&env, "auth-api", r.clone()).await;
    let m = wait_redis(&env, "auth-api", "True", "read from INFO clients").await;
    assert!(
        m.contains("maxclients 5000 (read from INFO clients; user \"pool-operator\" may not run CONFIG GET (NOPERM))"),
        "{m}"
    );
    env.wait_status("auth-api", "the budget checked against INFO's maxclients", Duration::from_secs(45), |s| {
        s.conditions.iter().any(|c| c.type_ == "BudgetOk" && c.message.contains("budget of 4000"))
    })
    .await;

    // spec.redis.maxClients overrides what the server says: 80% of 6000.
    r["maxClients"] = serde_json::json!(6000);
    set_redis(&env, "auth-api", r).await;
    env.wait_status("auth-api", "the budget checked against maxClients", Duration::from_secs(45), |s| {
        s.conditions.iter().any(|c| c.type_ == "BudgetOk" && c.status == "True" && c.message.contains("budget of 4800"))
    })
    .await;

    let everything = format!("{:?}{:?}", env.events().await, env.status("auth-api").await)
        + &std::fs::read_to_string(&env.operator.log).unwrap_or_default();
    for secret in [PASSWORD, "not-the-password", "PRIVATE KEY"] {
        assert!(!everything.contains(secret), "{secret:?} leaked into Events, status or logs");
    }
}

/// Against a TLS-only Redis with an ACL user (no CONFIG, so `maxClients` is set), a good pool
/// is promoted and, with the server asked at every analysis, a bad one rolled back: as over TCP.
#[tokio::test]
async fn a_tls_acl_redis_rolls_out_and_back_like_tcp() {
    let pki = Pki::new();
    let redis = RedisServer::start_tls(&pki, &[("maxclients", "5000"), ("user", ACL_USER)]);
    let env = Env::new("tls-rollout", 10).await;
    material(&env, &pki).await;
    // Canary pods started after `bad` is set exhaust their pools; the stable stays healthy.
    let bad = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let b = bad.clone();
    let _fleet = env.fleet(std::sync::Arc::new(move |pod: &k8s_openapi::api::core::v1::Pod| {
        let canary =
            pod.metadata.labels.as_ref().and_then(|l| l.get("redispool.io/track")).is_some_and(|t| t == "canary");
        let exhausted = canary && b.load(std::sync::atomic::Ordering::SeqCst);
        Some(if exhausted { Health { exhaustion_per_scrape: 5, ..Health::good() } } else { Health::good() })
    }));
    let mut p = policy("auth-api");
    p["spec"]["redis"] = tls_redis(&redis.address());
    p["spec"]["redis"]["maxClients"] = serde_json::json!(5000);
    env.apply(p).await;
    let s = env.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(120)).await;
    let (status, message) = redis_condition(&s).expect("a RedisReachable condition");
    assert_eq!(status, "True", "{message}");
    assert!(message.contains("maxclients 5000"), "{message}");

    // A bad pool: the canary's pools are exhausted.
    bad.store(true, std::sync::atomic::Ordering::SeqCst);
    let patch = serde_json::json!([{"op": "replace", "path": "/spec/tiers/1/connectionsPerWorker", "value": 1}]);
    env.policies()
        .patch("auth-api", &PatchParams::default(), &Patch::Json::<()>(serde_json::from_value(patch).unwrap()))
        .await
        .unwrap();
    let s = env.wait_phase("auth-api", Phase::RolledBack, Duration::from_secs(120)).await;
    assert!(s.failed.unwrap().reason.contains("poolExhaustionEvents"));
    assert_eq!(redis_condition(&env.status("auth-api").await).unwrap().0, "True");
}

/// Mutual TLS: a server that requires client certificates refuses the operator until the policy
/// names its certificate Secret.
#[tokio::test]
async fn mutual_tls_needs_the_client_certificate() {
    let pki = Pki::new();
    let redis = RedisServer::start_tls(&pki, &[("tls-auth-clients", "yes"), ("maxclients", "4000")]);
    let env = Env::new("mtls", 10).await;
    material(&env, &pki).await;
    let mut p = policy("auth-api");
    p["spec"]["redis"] =
        serde_json::json!({"address": redis.address(), "tls": true, "tlsOptions": {"caRef": {"secret": "redis-ca"}}});
    env.apply(p).await;
    let m = wait_redis(&env, "auth-api", "False", "clientCertSecret").await;
    assert!(!m.contains("PRIVATE"), "{m}");
    set_redis(
        &env,
        "auth-api",
        serde_json::json!({"address": redis.address(), "tls": true,
            "tlsOptions": {"caRef": {"secret": "redis-ca"}, "clientCertSecret": "redis-client"}}),
    )
    .await;
    wait_redis(&env, "auth-api", "True", "maxclients 4000").await;
}

/// Two policies on one real redis-server whose budget fits either rollout alone but not both:
/// the second waits, Blocked, naming the first and the numbers, and starts by itself when the
/// first's rollout ends. The two are never in flight together.
#[tokio::test]
async fn two_services_on_one_redis_never_plan_past_its_budget() {
    use k8s_openapi::api::apps::v1::Deployment;
    // Each plan peaks at 3200 (10 pods going from 60 to 160 connections) and holds 600 or 1600
    // steady. The budget, 6250 x 0.8 = 5000: 3200 + 600 fits, 3200 + 3200 does not, and once
    // the first is done, 3200 + 1600 does.
    let redis = RedisServer::start(&[("maxclients", "6250")]);
    let env = Env::new("shared-budget", 10).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let mut second: Deployment = env.target().await;
    second.metadata = kube::api::ObjectMeta { name: Some("search-api".into()), ..Default::default() };
    second.status = None;
    env.deployments().create(&PostParams::default(), &second).await.unwrap();
    let policies = support::recorder::Recorder::start(env.policies()).await;

    let with_redis = |name: &str, target: &str| {
        let mut p = policy(name);
        p["spec"]["targetRef"]["name"] = serde_json::json!(target);
        p["spec"]["redis"] = serde_json::json!({"address": redis.address()});
        p
    };
    env.apply(with_redis("auth", TARGET)).await;
    env.wait_status("auth", "the first rollout to start", Duration::from_secs(60), |s| s.phase.is_active()).await;
    env.apply(with_redis("search", "search-api")).await;

    let ns = env.ns.name.clone();
    let blocked = env.wait_phase("search", Phase::Blocked, Duration::from_secs(60)).await;
    let message = blocked.message.unwrap_or_default();
    assert!(message.contains("waiting for room on the Redis server"), "{message}");
    assert!(message.contains(&format!("3200 for {ns}/auth (rolling out)")), "{message}");
    assert!(message.contains("over the budget of 5000"), "{message}");

    // Until the second succeeds, never both in flight, at any version of either status.
    env.wait_phase("search", Phase::Succeeded, Duration::from_secs(150)).await;
    assert_eq!(env.status("auth").await.phase, Phase::Succeeded);
    let phase = |p: Option<&RedisPoolPolicy>| p.and_then(|p| Some(p.status.as_ref()?.phase)).unwrap_or_default();
    policies.sync().await;
    let states = policies.timeline();
    let both: Vec<_> = states
        .iter()
        .map(|s| (phase(s.get("auth")), phase(s.get("search"))))
        .filter(|(a, b)| a.is_active() && b.is_active())
        .collect();
    assert!(both.is_empty(), "both rolled out at once: {both:?}");
    let auth_rolled_out = states.iter().any(|s| phase(s.get("auth")).is_active());
    assert!(auth_rolled_out, "the recorder saw the first rollout in flight");
}

/// What the operator's probe of a real redis-server sees when the environment changes under a
/// rollout: a restart (the run_id), a replica cut off from its master, a failover that promotes
/// the replica. Each is named, so an analysis that fails then can blame the environment.
#[tokio::test]
async fn restarts_and_failovers_of_a_real_server_are_named() {
    use redis_pool_operator::core::analysis::redis::{RedisChange, RedisTarget, ServerIdentity, redis_change};
    use redis_pool_operator::providers::redis::probe;

    async fn identity(server: &RedisServer) -> ServerIdentity {
        let target = RedisTarget { address: server.address(), ..Default::default() };
        let signals = probe(&target, Duration::from_secs(5)).await.expect("the server answers");
        signals.identity.expect("INFO says who the server is")
    }
    async fn until(server: &RedisServer, what: &str, done: impl Fn(&ServerIdentity) -> bool) -> ServerIdentity {
        let server = &server;
        let done = &done;
        wait_until(what, Duration::from_secs(30), || async move {
            let seen = identity(server).await;
            done(&seen).then_some(seen)
        })
        .await
    }

    let mut master = RedisServer::start(&[]);
    let before = identity(&master).await;
    assert_eq!((before.role.as_str(), before.loading), ("master", false));
    assert_eq!(redis_change(Some(&before), &identity(&master).await), None, "nothing changed between two probes");
    master.restart();
    let after = identity(&master).await;
    assert!(
        matches!(redis_change(Some(&before), &after), Some(RedisChange::Restarted { .. })),
        "{before:?} then {after:?}"
    );

    let replica = RedisServer::start(&[("replicaof", &format!("127.0.0.1 {}", master.port))]);
    let following = until(&replica, "the replica to follow its master", |s| s.master_link_up == Some(true)).await;
    assert_eq!(following.role, "replica");
    let master_address = master.address();
    assert_eq!(following.master.as_deref(), Some(master_address.as_str()));
    drop(master);
    let cut_off = until(&replica, "the replica to lose its master", |s| s.master_link_up == Some(false)).await;
    assert_eq!(
        redis_change(Some(&following), &cut_off).map(|c| c.to_string()),
        Some(format!("the Redis replica's link to its master {master_address} is down"))
    );
    let promoted = std::process::Command::new("redis-cli")
        .args(["-p", &replica.port.to_string(), "REPLICAOF", "NO", "ONE"])
        .output()
        .expect("redis-cli runs");
    assert!(promoted.status.success(), "{promoted:?}");
    let promoted = until(&replica, "the replica to be promoted", |s| s.role == "master").await;
    assert_eq!(
        redis_change(Some(&cut_off), &promoted),
        Some(RedisChange::RoleChanged { before: "replica".into(), now: "master".into() })
    );
}

/// A connection storm: a server at its `maxclients` refuses every new connection. The operator's
/// probe keeps one connection per server, so it still sees the server through the storm (when
/// the budget matters most), while a new client is refused with the server's own words.
#[tokio::test]
async fn the_probe_keeps_its_connection_through_a_storm() {
    use redis_pool_operator::core::analysis::redis::{RedisFault, RedisTarget};
    use redis_pool_operator::providers::redis::probe;
    use tokio::io::AsyncWriteExt;
    let redis = RedisServer::start(&[("maxclients", "8")]);
    let target = RedisTarget { address: redis.address(), ..Default::default() };
    let calm = probe(&target, Duration::from_secs(3)).await.expect("the server answers");
    assert_eq!(calm.max_clients, Some(8));
    // The storm: clients take every slot and hold it (bounded: 20 connections, dropped below).
    let mut held = Vec::new();
    for _ in 0..20 {
        if let Ok(mut s) = tokio::net::TcpStream::connect(redis.address()).await {
            let _ = s.write_all(b"PING\r\n").await;
            held.push(s);
        }
    }
    // Another client (the default user named: another connection) is refused, in Redis's words.
    let stranger = RedisTarget { address: redis.address(), username: Some("default".into()), ..Default::default() };
    match probe(&stranger, Duration::from_secs(3)).await {
        Err(RedisFault::MaxClients(m)) => assert!(m.contains("max number of clients"), "{m}"),
        other => panic!("a new connection to a full server was not refused for want of slots: {other:?}"),
    }
    // The probe's own connection still answers, and sees the crowd.
    let storm = probe(&target, Duration::from_secs(3)).await.expect("the probe's connection answers in the storm");
    assert!(storm.connected_clients >= 8, "{} clients connected", storm.connected_clients);
    drop(held);
}

/// A Redis Cluster that speaks TLS only (the bus too), with an ACL user that may not run CONFIG:
/// the probe reaches every node on the TLS port the cluster announces, as that user, reads each
/// node's maxclients from INFO, and names the node the budget binds on; with room, it promotes.
#[tokio::test]
async fn a_tls_acl_cluster_is_checked_on_every_node() {
    let pki = Pki::new();
    let cluster = RedisCluster::start_tls(&pki, &["10000", "10000", "1000"], &[("user", ACL_USER)]);
    let small = cluster.nodes[2].address();
    let env = Env::new("tls-cluster", 10).await;
    material(&env, &pki).await;
    let _fleet = env.fleet(all_pods(Health::good()));
    let mut p = policy("auth-api");
    p["spec"]["redis"] = tls_redis(&cluster.nodes[0].address());
    p["spec"]["redis"]["topology"] = serde_json::json!("Cluster");
    env.apply(p).await;
    let status = env.wait_phase("auth-api", Phase::Blocked, Duration::from_secs(60)).await;
    let budget = status.conditions.iter().find(|c| c.type_ == "BudgetOk").unwrap();
    assert!(
        budget.message.contains(&format!("on node {small} (master")) && budget.message.contains("1000 maxclients"),
        "the small node is named over TLS: {}",
        budget.message
    );
    let (state, message) = redis_condition(&status).unwrap();
    assert_eq!(state, "True", "{message}");
    assert!(message.contains("least room of the 3 that hold pools"), "{message}");
    cluster.nodes[2].cli(&["CONFIG", "SET", "maxclients", "10000"]);
    env.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(120)).await;
}
