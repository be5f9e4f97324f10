//! The Helm chart against the real local API server: lint, schema, server-side dry run, a real
//! install; the chart's RBAC is sufficient (an operator with the chart's ServiceAccount token
//! completes a promotion) and least (it cannot list Secrets); leader election hands over.

mod support;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use redis_pool_operator::core::api::Phase;
use support::fleet::Health;
use support::operator::Operator;
use support::scenario::*;
use support::*;

const CHART: &str = "charts/redis-pool-operator";

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn chart_lints_clean() {
    let o = helm(&["lint", CHART, "--strict"]);
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(!t.contains("[WARNING]") && !t.contains("[ERROR]"), "{t}");
}

/// A person's first `helm template` is offline and names no Kubernetes version: helm must assume
/// the version it was built against (as its release builds do), not v1.20, which the chart's
/// `kubeVersion` refuses.
#[test]
fn offline_template_needs_no_kube_version() {
    // No kubeconfig, no cluster: helm cannot ask any server which version it runs.
    let o = helm_command().args(["template", "rpo", CHART]).output().unwrap();
    assert!(o.status.success(), "offline helm template failed:\n{}", text(&o));
    assert!(text(&o).contains("kind: Deployment"), "{}", text(&o));
}

#[test]
fn chart_crd_is_the_generated_one() {
    let chart = read("charts/redis-pool-operator/crds/redispoolpolicy.yaml");
    assert!(
        chart == read("crds/redispoolpolicy.yaml"),
        "the chart's CRD drifted; regenerate it with:\n  cargo run -- crd | tee crds/redispoolpolicy.yaml > charts/redis-pool-operator/crds/redispoolpolicy.yaml"
    );
}

#[test]
fn values_schema_refuses_wrong_values_readably() {
    for (set, expect) in [
        ("replicaCount=abc", "/replicaCount': got string, want integer"),
        ("logFormat=xml", "/logFormat"),
        ("metrics.port=70000", "/metrics/port"),
        ("leaderElection.enabled=maybe", "/leaderElection/enabled"),
    ] {
        let o = helm(&["template", "rpo", CHART, "--kube-version", "1.37.2", "--set", set]);
        assert!(!o.status.success(), "{set} was accepted");
        assert!(text(&o).contains(expect), "{set}: expected {expect:?} in:\n{}", text(&o));
    }
}

#[test]
fn rendered_manifests_are_hardened() {
    let o = helm(&["template", "rpo", CHART, "--kube-version", "1.37.2", "-n", "rpo-system"]);
    assert!(o.status.success(), "{}", text(&o));
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&String::from_utf8_lossy(&o.stdout))
        .filter_map(|d| serde::Deserialize::deserialize(d).ok())
        .collect();
    let deploy = docs.iter().find(|d| d["kind"] == "Deployment").expect("a Deployment");
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    let role = docs.iter().find(|d| d["kind"] == "ClusterRole").expect("a ClusterRole");
    let rules = serde_yaml::to_string(&role["rules"]).unwrap();
    assert!(!rules.contains('*'), "no wildcard in RBAC:\n{rules}");
    let secrets = role["rules"].as_sequence().unwrap().iter().find(|r| r["resources"][0] == "secrets").unwrap();
    assert_eq!(secrets["verbs"].as_sequence().unwrap().len(), 1, "Secrets: get only");
}

/// Server-side dry run, then a real install, upgrade and uninstall (the CRD stays).
#[test]
fn installs_on_the_real_api_server() {
    let o = helm(&["template", "rpo", CHART, "--kube-version", "1.37.2", "-n", "rpo-dry"]);
    assert!(o.status.success(), "{}", text(&o));
    let manifests = std::env::temp_dir().join(format!("rpo-manifests-{}.yaml", std::process::id()));
    std::fs::write(&manifests, &o.stdout).unwrap();
    let _ = cluster().kubectl(&["create", "namespace", "rpo-dry"]);
    let dry = cluster().kubectl(&["apply", "--dry-run=server", "-f", manifests.to_str().unwrap()]);
    assert!(dry.status.success(), "server-side dry run failed:\n{}", text(&dry));

    let install = helm(&[
        "install",
        "rpo",
        CHART,
        "-n",
        "rpo-install",
        "--create-namespace",
        "--set",
        "environment=production",
        "--wait=false",
    ]);
    assert!(install.status.success(), "{}", text(&install));
    assert!(text(&install).contains("STATUS: deployed"), "{}", text(&install));
    assert!(text(&install).contains("kubectl get rpp -A -w"), "NOTES.txt says what to do next");
    let got = cluster().kubectl(&["get", "deploy,sa,svc", "-n", "rpo-install", "-o", "name"]);
    let names = String::from_utf8_lossy(&got.stdout);
    for want in [
        "deployment.apps/rpo-redis-pool-operator",
        "serviceaccount/rpo-redis-pool-operator",
        "service/rpo-redis-pool-operator-metrics",
    ] {
        assert!(names.contains(want), "{want} missing: {names}");
    }
    let upgrade = helm(&["upgrade", "rpo", CHART, "-n", "rpo-install", "--set", "replicaCount=3"]);
    assert!(upgrade.status.success(), "{}", text(&upgrade));
    let uninstall = helm(&["uninstall", "rpo", "-n", "rpo-install"]);
    assert!(uninstall.status.success(), "{}", text(&uninstall));
    let crd = cluster().kubectl(&["get", "crd", "redispoolpolicies.redispool.io"]);
    assert!(crd.status.success(), "the CRD must survive uninstall");
}

#[tokio::test]
async fn the_charts_rbac_is_sufficient_and_least() {
    let install =
        helm(&["install", "rbac", CHART, "-n", "rpo-rbac", "--create-namespace", "--set", "environment=production"]);
    assert!(install.status.success(), "{}", text(&install));
    let kubeconfig = service_account_kubeconfig("rpo-rbac", "rbac-redis-pool-operator").await;

    // `kubectl auth can-i` as that ServiceAccount (`--subresource` names a subresource; a
    // `type/name` argument would name an object).
    let can_i = |verb: &str, what: &str, extra: &str| {
        let o = Command::new("kubectl")
            .env("KUBECONFIG", &kubeconfig)
            .args(["auth", "can-i", verb, what, extra, "-n=default"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    // Least: what the operator never needs is denied.
    for (verb, what, extra) in [
        ("list", "secrets", "-A"),
        ("watch", "secrets", "-A"),
        ("list", "configmaps", "-A"),
        ("delete", "namespaces", "-A"),
        ("create", "pods", "--subresource="),
        ("update", "deployments", "--subresource=scale"),
    ] {
        assert_eq!(can_i(verb, what, extra), "no", "the chart's ServiceAccount may {verb} {what} {extra}");
    }
    // Sufficient, verb by verb, for what the operator writes.
    for (verb, what, extra) in [
        ("update", "deployments", "--subresource="),
        ("patch", "deployments", "--subresource="),
        ("list", "horizontalpodautoscalers.autoscaling", "--subresource="),
        ("update", "redispoolpolicies.redispool.io", "--subresource=finalizers"),
        ("get", "configmaps", "--subresource="),
        ("get", "secrets", "--subresource="),
    ] {
        assert_eq!(can_i(verb, what, extra), "yes", "the chart's ServiceAccount may not {verb} {what} {extra}");
    }
    let o = Command::new("kubectl").env("KUBECONFIG", &kubeconfig).args(["get", "secrets", "-A"]).output().unwrap();
    assert!(!o.status.success() && text(&o).contains("forbidden"), "{}", text(&o));

    // Sufficient: the operator, as that ServiceAccount, with leader election, promotes.
    let ns = TestNamespace::new("rbac").await;
    create_target(&ns, 10).await;
    let _fleet = support::fleet::Fleet::start(ns.api(), 8000, all_pods(Health::good()));
    let operator = Operator::start_with(
        &kubeconfig,
        &ns.name,
        &["--leader-election", "--lease-namespace", "rpo-rbac", "--lease-name", "rbac-test", "--lease-duration", "5"],
        "-sa",
    );
    let env = Env { ns, operator, started: Instant::now() };
    env.apply(policy("auth-api")).await;
    env.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(120)).await;
    let log = std::fs::read_to_string(&env.operator.log).unwrap();
    assert!(!log.contains("forbidden"), "the operator hit a permission it lacks:\n{log}");
}

/// Two operators with leader election: one leads, the other waits; killing the leader mid-rollout
/// hands over within the lease duration and the rollout still ends Succeeded.
#[tokio::test]
async fn leader_election_hands_over_mid_rollout() {
    let ns = TestNamespace::new("leader").await;
    create_target(&ns, 10).await;
    let _fleet = support::fleet::Fleet::start(ns.api(), 8000, all_pods(Health::good()));
    let kubeconfig = cluster().kubeconfig.clone();
    let args =
        ["--leader-election", "--lease-namespace", ns.name.as_str(), "--lease-name", "rpo", "--lease-duration", "4"];
    let a = Operator::start_with(&kubeconfig, &ns.name, &[&args[..], &["--instance", "op-a"]].concat(), "-a");
    let leases: Api<Lease> = ns.api();
    let holder = |leases: Api<Lease>| async move { leases.get_opt("rpo").await.ok().flatten()?.spec?.holder_identity };
    wait_until("op-a to lead", Duration::from_secs(30), || {
        let l = leases.clone();
        async move { (holder(l).await.as_deref() == Some("op-a")).then_some(()) }
    })
    .await;
    let b = Operator::start_with(&kubeconfig, &ns.name, &[&args[..], &["--instance", "op-b"]].concat(), "-b");
    let mut p = policy("auth-api");
    p["spec"]["rollout"]["steps"][1]["pause"] = serde_json::json!("8s");
    let mut env = Env { ns, operator: a, started: Instant::now() };
    env.apply(p).await;
    env.wait_status("auth-api", "step 2 under way", Duration::from_secs(60), |s| s.step == Some(1)).await;
    assert_eq!(b.counter("redis_pool_operator_writes_total").await, 0.0, "the standby wrote");
    let killed = Instant::now();
    env.operator.kill();
    wait_until("op-b to take over", Duration::from_secs(30), || {
        let l = leases.clone();
        async move { (holder(l).await.as_deref() == Some("op-b")).then_some(()) }
    })
    .await;
    let handover = killed.elapsed();
    let status = env.wait_phase("auth-api", Phase::Succeeded, Duration::from_secs(120)).await;
    assert!(b.counter("redis_pool_operator_writes_total").await > 0.0, "the new leader did the rest");
    assert_eq!(status.history[0].outcome, redis_pool_operator::core::api::Outcome::Succeeded);
    assert!(handover <= Duration::from_secs(12), "hand-over took {handover:?}");
    eprintln!("leader hand-over took {handover:?}");
}

/// One template of the chart, rendered offline as release `rpo` in `rpo-system`.
fn render(template: &str, set: &str) -> serde_yaml::Value {
    let o = helm_command()
        .args(["template", "rpo", CHART, "-n", "rpo-system", "--set", set, "--show-only", template])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    serde_yaml::from_slice(&o.stdout).unwrap()
}

/// The chart's alert rules pass `promtool check rules`, and `promtool test rules` shows each
/// alert firing on series that should fire it and silent on series that should not
/// (`tests/promtool/alerts.test.yaml`); an alert without such a test fails here.
#[test]
fn alert_rules_fire_when_they_should_and_only_then() {
    let rule =
        render("templates/prometheusrule.yaml", "prometheusRule.enabled=true,metrics.serviceMonitor.enabled=true");
    let dir = std::env::temp_dir().join(format!("rpo-promtool-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("rules.yaml"), serde_yaml::to_string(&rule["spec"]).unwrap()).unwrap();
    let tests = read("tests/promtool/alerts.test.yaml");
    std::fs::write(dir.join("alerts.test.yaml"), &tests).unwrap();
    let promtool = |args: &[&str]| {
        let o = Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("promtool is installed (.ci/run installs prometheus)");
        assert!(o.status.success(), "promtool {}:\n{}", args.join(" "), text(&o));
    };
    promtool(&["check", "rules", "rules.yaml"]);
    promtool(&["test", "rules", "alerts.test.yaml"]);

    let alerts: Vec<&str> =
        rule["spec"]["groups"][0]["rules"].as_sequence().unwrap().iter().filter_map(|r| r["alert"].as_str()).collect();
    assert!(alerts.len() >= 6, "{alerts:?}");
    for alert in alerts {
        assert!(tests.contains(&format!("alertname: {alert},")), "no promtool test shows {alert} silent");
        assert!(tests.contains(&format!("alertname: {alert}\n")), "no promtool test shows {alert} firing");
    }
}

/// The chart's cluster-wide freeze windows reach the operator: a ConfigMap it mounts where
/// `RPO_CLUSTER_SETTINGS` points, in the shape the operator reads (checked by its own reader),
/// and a pod annotation that changes with them, so that a change restarts the operator.
#[test]
fn cluster_settings_reach_the_operator_and_restart_it_when_they_change() {
    let weekend = "clusterSettings.freezeWindows[0].name=weekend,clusterSettings.freezeWindows[0].schedule=0 18 * * FRI,\
                   clusterSettings.freezeWindows[0].duration=63h,clusterSettings.freezeWindows[0].timeZone=Europe/Berlin";
    let config = render("templates/cluster-settings.yaml", weekend);
    let file = config["data"]["cluster-settings.yaml"].as_str().expect("the settings file");
    let read = redis_pool_operator::core::cluster_settings::ClusterSettings::parse(file, "cluster-settings.yaml")
        .unwrap_or_else(|e| panic!("the operator cannot read what the chart renders: {e}\n{file}"));
    assert_eq!(read.freeze_windows.iter().map(|w| w.name.as_str()).collect::<Vec<_>>(), ["cluster/weekend"]);
    // Destinations alone turn the settings on too.
    let pager = "clusterSettings.notifications[0].name=pager,\
                 clusterSettings.notifications[0].alertmanager.urlSecretRef.name=rpo-notifications,\
                 clusterSettings.notifications[0].alertmanager.urlSecretRef.key=alertmanager";
    let file =
        render("templates/cluster-settings.yaml", pager)["data"]["cluster-settings.yaml"].as_str().unwrap().to_string();
    let read = redis_pool_operator::core::cluster_settings::ClusterSettings::parse(&file, "cluster-settings.yaml")
        .unwrap_or_else(|e| panic!("the operator cannot read what the chart renders: {e}\n{file}"));
    assert_eq!(read.notifications[0].name, "pager");

    let deployment = render("templates/deployment.yaml", weekend);
    let pod = &deployment["spec"]["template"];
    let env = pod["spec"]["containers"][0]["env"].as_sequence().unwrap();
    let path = env.iter().find(|e| e["name"] == "RPO_CLUSTER_SETTINGS").expect("RPO_CLUSTER_SETTINGS")["value"]
        .as_str()
        .unwrap();
    let mount = &pod["spec"]["containers"][0]["volumeMounts"][0];
    assert_eq!(format!("{}/cluster-settings.yaml", mount["mountPath"].as_str().unwrap()), path);
    assert_eq!(pod["spec"]["volumes"][0]["configMap"]["name"], config["metadata"]["name"]);
    let checksum = |set: &str| {
        render("templates/deployment.yaml", set)["spec"]["template"]["metadata"]["annotations"]
            ["checksum/cluster-settings"]
            .clone()
    };
    assert_ne!(checksum(weekend), checksum(&weekend.replace("63h", "64h")), "a change restarts the operator");

    // Without windows: no ConfigMap, no mount, no setting.
    let o = helm_command().args(["template", "rpo", CHART, "--kube-version", "1.37.2"]).output().unwrap();
    assert!(o.status.success() && !text(&o).contains("cluster-settings"), "{}", text(&o));
}
