//! The CRD and the local control plane, against a real kube-apiserver, etcd, controller-manager,
//! scheduler and kwok.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use support::*;

fn rpp_api(ns: &TestNamespace) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("redispool.io", "v1alpha1", "RedisPoolPolicy");
    Api::namespaced_with(ns.client.clone(), &ns.name, &ApiResource::from_gvk(&gvk))
}

fn object(yaml: &str, ns: &str) -> DynamicObject {
    let mut obj: DynamicObject = serde_yaml::from_str(yaml).unwrap();
    obj.metadata.namespace = Some(ns.to_string());
    obj
}

/// The API server refuses every policy of the invalid corpus with the same message `plan` gives.
#[tokio::test]
async fn api_server_refuses_each_broken_policy_with_its_message() {
    let ns = TestNamespace::new("corpus").await;
    let api = rpp_api(&ns);
    let mut files: Vec<_> =
        std::fs::read_dir(root().join("tests/corpus/invalid")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 10);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let expect = text.lines().next().and_then(|l| l.strip_prefix("# expect: ")).unwrap();
        let err = api
            .create(&PostParams::default(), &object(&text, &ns.name))
            .await
            .expect_err(&format!("{} was accepted", f.display()));
        let msg = err.to_string();
        assert!(msg.contains(expect), "{}: expected {expect:?} in the API server's answer:\n{msg}", f.display());
    }
}

#[tokio::test]
async fn api_server_accepts_the_examples_and_defaults_them() {
    let ns = TestNamespace::new("examples").await;
    let api = rpp_api(&ns);
    for name in [
        "examples/auth-api.yaml",
        "examples/auth-api-demo.yaml",
        "examples/chain/staging.yaml",
        "examples/chain/production.yaml",
    ] {
        let created = api
            .create(&PostParams::default(), &object(&read(name), &ns.name))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        api.delete(&created.metadata.name.clone().unwrap(), &Default::default()).await.unwrap();
    }
    // A minimal policy gets the runbook's defaults from the schema.
    let minimal = "apiVersion: redispool.io/v1alpha1\nkind: RedisPoolPolicy\nmetadata: {name: minimal}\nspec:\n  targetRef: {name: web}\n  tiers: [{name: production, workers: 4, connectionsPerWorker: 40}]\n";
    let created = api.create(&PostParams::default(), &object(minimal, &ns.name)).await.unwrap();
    let spec = &created.data["spec"];
    let weights: Vec<i64> =
        spec["rollout"]["steps"].as_array().unwrap().iter().map(|s| s["weight"].as_i64().unwrap()).collect();
    assert_eq!(weights, vec![10, 50, 100]);
    assert_eq!(spec["rollout"]["analysis"]["successRate"]["promoteAtLeast"], 99.5);
    assert_eq!(spec["pool"]["retry"]["attempts"], 3);
    assert_eq!(spec["envNames"]["maxConnections"], "REDIS_POOL_MAX_CONNECTIONS");
    assert_eq!(spec["promotion"]["soak"], "24h", "a promotion is watched for the runbook's 24 hours");
}

#[tokio::test]
async fn a_deployment_gets_running_pods_with_loopback_ips() {
    let ns = TestNamespace::new("pods").await;
    let deploy: Deployment = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "api", "image": "example/api:1"}]}}
        }
    }))
    .unwrap();
    ns.api::<Deployment>().create(&PostParams::default(), &deploy).await.unwrap();
    let pods: Api<Pod> = ns.api();
    let ips = wait_until("3 Running pods with IPs", Duration::from_secs(60), || {
        let pods = pods.clone();
        async move {
            let list = pods.list(&ListParams::default().labels("app=web")).await.ok()?;
            let ips: Vec<String> = list
                .items
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
                .collect();
            (ips.len() == 3).then_some(ips)
        }
    })
    .await;
    for ip in &ips {
        let addr: std::net::Ipv4Addr = ip.parse().unwrap();
        assert!(addr.is_loopback(), "pod IP {ip} is not on 127.0.0.0/8");
    }
    let deployments: Api<Deployment> = ns.api();
    wait_until("the Deployment reports 3 available replicas", Duration::from_secs(30), || {
        let d = deployments.clone();
        async move { (d.get("web").await.ok()?.status?.available_replicas? == 3).then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn kubectl_get_rpp_shows_the_printer_columns() {
    let ns = TestNamespace::new("columns").await;
    rpp_api(&ns).create(&PostParams::default(), &object(&read("examples/auth-api.yaml"), &ns.name)).await.unwrap();
    let out = cluster().kubectl(&["get", "rpp", "-n", &ns.name]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let header: Vec<&str> = stdout.lines().next().unwrap_or_default().split_whitespace().collect();
    assert_eq!(header, ["NAME", "ENVIRONMENT", "PHASE", "STEP", "WEIGHT", "CANARY", "WAITING", "AGE"]);
    assert!(stdout.contains("auth-api"));
    let wide = cluster().kubectl(&["get", "rpp", "-n", &ns.name, "-o", "wide"]);
    let header = String::from_utf8_lossy(&wide.stdout).lines().next().unwrap_or_default().to_string();
    assert!(header.contains("ADVICE"), "{header}");
}

#[test]
fn redis_server_harness_serves_on_loopback() {
    let redis = RedisServer::start(&[("maxclients", "5")]);
    let mut s = std::net::TcpStream::connect(redis.address()).unwrap();
    use std::io::{Read, Write};
    s.write_all(b"CONFIG GET maxclients\r\n").unwrap();
    let mut buf = [0u8; 128];
    let n = s.read(&mut buf).unwrap();
    let reply = String::from_utf8_lossy(&buf[..n]);
    assert!(reply.contains("maxclients") && reply.contains("\r\n5\r\n"), "{reply}");
}
