//! The `crd` and `plan` commands as a user runs them, and the example and invalid-policy corpora.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_redis-pool-operator"))
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = bin().current_dir(root()).args(args).output().expect("run redis-pool-operator");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn plan_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["plan", "-f", "examples/auth-api.yaml", "-o", "json"];
    all.extend_from_slice(args);
    let (code, out, err) = run(&all);
    assert_eq!(code, 0, "plan failed: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("plan -o json is not JSON ({e}): {out}"))
}

#[test]
fn crd_file_matches_the_types() {
    let (code, out, _) = run(&["crd"]);
    assert_eq!(code, 0);
    let committed = std::fs::read_to_string(root().join("crds/redispoolpolicy.yaml")).unwrap();
    assert!(
        out == committed,
        "crds/redispoolpolicy.yaml drifted from the Rust types; regenerate it with:\n  cargo run -- crd > crds/redispoolpolicy.yaml"
    );
}

#[test]
fn plan_of_the_runbook_policy() {
    let p = plan_json(&[]);
    assert_eq!(p["tier"], "production");
    assert_eq!(p["workers"], 4);
    assert_eq!(p["connectionsPerWorker"], 40);
    assert_eq!(p["connectionsPerPod"], 160);
    assert_eq!(p["replicas"], 10);
    let canaries: Vec<i64> =
        p["steps"].as_array().unwrap().iter().map(|s| s["canaryReplicas"].as_i64().unwrap()).collect();
    assert_eq!(canaries, vec![1, 5, 10]);
    let stables: Vec<i64> =
        p["steps"].as_array().unwrap().iter().map(|s| s["stableReplicas"].as_i64().unwrap()).collect();
    assert_eq!(stables, vec![9, 5, 0]);
    let peaks: Vec<i64> =
        p["steps"].as_array().unwrap().iter().map(|s| s["peakConnections"].as_i64().unwrap()).collect();
    assert_eq!(peaks, vec![1760, 2400, 3200]);
    assert_eq!(p["budget"]["ok"], true);
    assert_eq!(p["budget"]["limit"], serde_json::Value::Null);
    assert_eq!(plan_json(&["--environment", "staging"])["connectionsPerPod"], 60);
    assert_eq!(plan_json(&["--environment", "development"])["connectionsPerPod"], 20);
    assert_eq!(plan_json(&["--environment", "staging", "--replicas", "4"])["steps"][1]["canaryReplicas"], 2);
}

#[test]
fn plan_budget_verdict_and_exit_code() {
    let (code, out, _) = run(&["plan", "-f", "examples/auth-api.yaml", "-o", "json", "--max-clients", "3000"]);
    assert_eq!(code, 3, "an exceeded budget exits 3");
    let p: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        p["budget"],
        serde_json::json!({"maxClients": 3000, "limit": 2400, "utilization": 0.8, "peakConnections": 3200, "ok": false})
    );
    let (code, out, _) = run(&["plan", "-f", "examples/auth-api.yaml", "--max-clients", "4000"]);
    assert_eq!(code, 0);
    assert!(out.contains("budget ok: planned peak of 3200 connections fits the budget of 3200"), "{out}");
}

#[test]
fn plan_text_is_a_table() {
    let (code, out, _) = run(&["plan", "-f", "examples/auth-api.yaml"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("tier production: 4 workers x 40 connections = 160 connections per pod; 10 replicas"),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["2", "50%", "5", "5", "50%", "2400"]),
        "{out}"
    );
}

#[test]
fn plan_refuses_an_unknown_environment() {
    let (code, _, err) = run(&["plan", "-f", "examples/auth-api.yaml", "--environment", "qa"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("environment \"qa\" is not a tier of this policy; tiers: development, staging, production"),
        "{err}"
    );
}

#[test]
fn run_without_a_cluster_says_so() {
    let out = bin()
        .args(["run", "--kubeconfig", "/nonexistent/kubeconfig", "--metrics-addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kubeconfig /nonexistent/kubeconfig"), "{err}");
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_policy_is_valid() {
    let files = yaml_files(&root().join("examples"));
    assert!(files.len() >= 2, "examples/ has policies");
    for f in files {
        let (code, out, err) = run(&["plan", "-f", f.to_str().unwrap()]);
        assert_eq!(code, 0, "{} should be valid: {err}", f.display());
        assert!(out.contains("connections per pod"), "{out}");
    }
}

/// Each file in tests/corpus/invalid starts with `# expect: <message>`; `plan` must refuse it with
/// that message (the cluster tests check the API server says the same).
#[test]
fn every_broken_policy_is_refused_with_its_message() {
    let files = yaml_files(&root().join("tests/corpus/invalid"));
    assert!(files.len() >= 10, "the corpus has at least ten kinds of broken policy");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let expect =
            text.lines().next().and_then(|l| l.strip_prefix("# expect: ")).expect("first line is # expect: ...");
        let (code, out, err) = run(&["plan", "-f", f.to_str().unwrap()]);
        assert_eq!(code, 1, "{} must be refused, got: {out}", f.display());
        assert!(err.contains(expect), "{}: expected {expect:?} in:\n{err}", f.display());
        assert_eq!(err.matches("\n  - ").count(), 1, "{}: exactly one violation expected:\n{err}", f.display());
    }
}

#[test]
fn shape_errors_name_the_field() {
    let good = std::fs::read_to_string(root().join("examples/auth-api.yaml")).unwrap();
    let cases = [
        (
            "workers: 4, connectionsPerWorker: 40",
            "workers: four, connectionsPerWorker: 40",
            "spec.tiers[2].workers: invalid type: string \"four\", expected an integer",
        ),
        ("socketTimeoutSeconds: 5", "socketTimeoutSecs: 5", "spec.pool.socketTimeoutSecs: unknown field"),
        (
            "kind: RedisPoolPolicy",
            "kind: Deployment",
            "expected apiVersion redispool.io/v1alpha1 and kind RedisPoolPolicy",
        ),
        ("  targetRef:\n    name: auth-api\n    container: api\n", "", "missing field `targetRef`"),
    ];
    for (from, to, expect) in cases {
        assert!(good.contains(from), "fixture lost {from:?}");
        // Removed when dropped, whatever the test's outcome.
        let tmp = tempfile::Builder::new().prefix("rpo-cli-").tempdir().unwrap();
        let dir = tmp.path();
        let file = dir.join("bad.yaml");
        std::fs::write(&file, good.replacen(from, to, 1)).unwrap();
        let (code, _, err) = run(&["plan", "-f", file.to_str().unwrap()]);
        assert_eq!(code, 1);
        assert!(err.contains(expect), "expected {expect:?} in:\n{err}");
    }
}

/// The krew manifest names the archive it was written with: its sha256, the binary inside it,
/// and the version. (A small stand-in binary: packaging the 300 MB debug build only costs time.)
#[test]
fn krew_manifest_matches_its_archive() {
    use sha2::Digest as _;
    let out = std::env::temp_dir().join(format!("rpo-krew-{}", std::process::id()));
    let o = Command::new(root().join("hack/krew-manifest"))
        .args(["--bin", "/usr/bin/true", "--version", "9.8.7", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let manifest: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(out.join("redispool.yaml")).unwrap()).unwrap();
    assert_eq!(manifest["kind"], "Plugin");
    assert_eq!(manifest["metadata"]["name"], "redispool", "krew installs it as `kubectl redispool`");
    assert_eq!(manifest["spec"]["version"], "v9.8.7");
    let platform = &manifest["spec"]["platforms"][0];
    let archive = out.join("kubectl-redispool-v9.8.7-linux-amd64.tar.gz");
    let sha: String =
        sha2::Sha256::digest(std::fs::read(&archive).unwrap()).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(platform["sha256"].as_str(), Some(sha.as_str()));
    assert!(platform["uri"].as_str().unwrap().ends_with("/v9.8.7/kubectl-redispool-v9.8.7-linux-amd64.tar.gz"));
    let listing = Command::new("tar").arg("-tzf").arg(&archive).output().unwrap();
    let files = String::from_utf8_lossy(&listing.stdout).to_string();
    assert!(files.lines().any(|f| f == platform["bin"].as_str().unwrap()), "{files}");
    let _ = std::fs::remove_dir_all(&out);
}

/// Policies on one Redis share its budget: `plan` shows each rollout's peak beside the others'
/// steady connections, and refuses (exit 3) a set in which one could never start.
#[test]
fn plan_shows_the_budget_policies_share() {
    let (code, out, err) = run(&["plan", "-f", "examples/shared-redis.yaml"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("shared Redis redis.shared:6379:"), "{out}");
    // The same two policies from two files: each service keeps its own.
    // Removed when dropped, whatever the test's outcome.
    let tmp = tempfile::Builder::new().prefix("rpo-shared-").tempdir().unwrap();
    let dir = tmp.path();
    let both = std::fs::read_to_string(root().join("examples/shared-redis.yaml")).unwrap();
    let (first, second) = both.split_once("\n---\n").unwrap();
    std::fs::write(dir.join("auth.yaml"), first).unwrap();
    std::fs::write(dir.join("search.yaml"), second).unwrap();
    let (a, b) = (dir.join("auth.yaml"), dir.join("search.yaml"));
    let (code, separate, err) = run(&["plan", "-f", a.to_str().unwrap(), "-f", b.to_str().unwrap()]);
    assert_eq!((code, separate.as_str()), (0, out.as_str()), "{err}");
    assert!(
        out.contains("saas/auth-api: peak 3200 beside the others' steady 1600 = 4800 fits the budget of 5000"),
        "{out}"
    );
    assert!(out.contains("all at once: 6400 > 5000: the operator runs them one after another"), "{out}");

    let tight = std::fs::read_to_string(root().join("examples/shared-redis.yaml")).unwrap().replace("6250", "5500");
    let out = bin()
        .args(["plan", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(tight.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert!(text.contains("EXCEEDS the budget of 4400: it could never start"), "{text}");
}

/// Each tier is planned with the gates it is judged by: the runbook's staging asks pool
/// utilization below 50%, production (the policy's gates) below 60%.
#[test]
fn plan_prints_each_tiers_gates() {
    let (code, staging, err) = run(&["plan", "-f", "examples/auth-api.yaml", "--environment", "staging"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        staging
            .contains("gates (staging): successRate >= 99.5% (rollback < 99%, no more than 0.5 points below stable)"),
        "{staging}"
    );
    assert!(staging.contains("poolUtilization <= 50% (rollback > 80%)"), "{staging}");
    let (_, production, _) = run(&["plan", "-f", "examples/auth-api.yaml"]);
    assert!(production.contains("gates (production): "), "{production}");
    assert!(production.contains("poolUtilization <= 60% (rollback > 80%)"), "{production}");
    let json = plan_json(&["--environment", "staging"]);
    assert_eq!(json["gates"][2]["promote"], "<= 50%", "{json}");
    assert_eq!(json["gates"][1]["relative"], "no more than 25% above stable", "{json}");
    // The last step of a split rollout leaves no stable pods to compare with: the plan says so.
    assert_eq!(json["baseline"]["compareWith"], "Stable", "{json}");
    assert_eq!(json["baseline"]["stepsWithoutStable"], serde_json::json!([3]), "{json}");
    assert!(production.contains("judged beside the stable") && production.contains("step 3 has no stable pods"));
}

/// The chain example plans together: production's requirement names staging's policy, whose
/// staging tier runs the same worker pool; a staging tier on another pool is refused with the
/// field that differs.
#[test]
fn plan_checks_that_a_chain_compares_the_same_worker_pool() {
    let (code, out, err) = run(&["plan", "-f", "examples/chain/staging.yaml", "-f", "examples/chain/production.yaml"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("requires: a staging verdict on worker pool"), "{out}");
    assert!(out.contains("saas/auth-api requires saas/auth-api: its staging tier runs the same worker pool"), "{out}");
    // Removed when dropped, whatever the test's outcome.
    let tmp = tempfile::Builder::new().prefix("rpo-chain-").tempdir().unwrap();
    let dir = tmp.path();
    let staging = std::fs::read_to_string(root().join("examples/chain/staging.yaml")).unwrap().replace(
        "{ name: staging, workers: 2, connectionsPerWorker: 40",
        "{ name: staging, workers: 2, connectionsPerWorker: 30",
    );
    let file = dir.join("staging.yaml");
    std::fs::write(&file, staging).unwrap();
    let (code, _, err) = run(&["plan", "-f", file.to_str().unwrap(), "-f", "examples/chain/production.yaml"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("(connectionsPerWorker 30 there, 40 here): no verdict of it can ever count"), "{err}");
}

/// A cluster settings file the operator cannot read stops it at start, naming the file and the
/// field, before it talks to any cluster.
#[test]
fn run_refuses_a_bad_cluster_settings_file_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cluster-settings.yaml");
    std::fs::write(
        &file,
        "freezeWindows:\n- {name: weekend, schedule: '0 18 * * FRI', duration: 63h, timeZone: Europe/Berlinn}\n",
    )
    .unwrap();
    let out = bin().args(["run", "--kubeconfig", "/nonexistent", "--cluster-settings"]).arg(&file).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "cluster-settings.yaml: freezeWindows[0].timeZone: \"Europe/Berlinn\" is not an IANA time zone name"
        ),
        "{err}"
    );
}
