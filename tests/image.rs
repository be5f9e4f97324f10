//! The operator's image, run as the chart deploys it. `hack/image` builds it with buildah and
//! exports its filesystem; each copy of the operator runs the image's own entrypoint and command
//! in that filesystem, mounted read-only, in new mount, pid and uts namespaces (`unshare`), as
//! user 65532 with no capabilities (`chroot --userspec`), with the chart's env, a token of the
//! chart's ServiceAccount and the cluster CA where a kubelet mounts them, and in-cluster
//! configuration. (`podman run` cannot set rlimits inside these machines' sandbox.)

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use redis_pool_operator::core::api::Phase;
use sha2::Digest;
use support::fleet::Health;
use support::scenario::*;
use support::*;

const CHART: &str = "charts/redis-pool-operator";
const SERVICE_ACCOUNT_DIR: &str = "var/run/secrets/kubernetes.io/serviceaccount";

struct Image {
    tag: String,
    rootfs: PathBuf,
    config: serde_json::Value,
}

/// Builds the image (cached by hack/image) and exports its filesystem, once per test binary.
fn image() -> &'static Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE.get_or_init(|| {
        // One place, replaced by each run (not one per process, to pile up in /tmp).
        let rootfs = std::env::temp_dir().join("rpo-image-rootfs");
        let o = Command::new(root().join("hack/image")).arg("--rootfs").arg(&rootfs).output().unwrap();
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "hack/image failed:\n{stdout}{}", String::from_utf8_lossy(&o.stderr));
        let tag = stdout.lines().last().expect("hack/image prints the tag last").to_string();
        let inspected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(rootfs.with_extension("json")).unwrap()).unwrap();
        // Mount points a kubelet would provide; the image itself has none.
        for dir in [SERVICE_ACCOUNT_DIR, "proc"] {
            std::fs::create_dir_all(rootfs.join(dir)).unwrap();
        }
        Image { tag, rootfs, config: inspected["OCIv1"]["config"].clone() }
    })
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect()).unwrap_or_default()
}

/// The image holds the binary, the CA bundle and who user 65532 is, nothing else; it runs as
/// the Dockerfile says (user, entrypoint, command, port); its labels say what built it.
#[test]
fn the_image_is_small_and_built_as_the_dockerfile_says() {
    let image = image();
    assert!(image.tag.starts_with("localhost/redis-pool-operator:"), "{}", image.tag);
    let c = &image.config;
    let dockerfile = read("Dockerfile");
    let said = |directive: &str| {
        dockerfile.lines().find_map(|l| l.strip_prefix(directive)).map(str::trim).unwrap_or_default().to_string()
    };
    assert_eq!(c["User"], said("USER "), "{c}");
    assert_eq!(format!("{:?}", strings(&c["Entrypoint"])).replace(' ', ""), said("ENTRYPOINT ").replace(' ', ""));
    assert_eq!(format!("{:?}", strings(&c["Cmd"])).replace(' ', ""), said("CMD ").replace(' ', ""));
    assert!(c["ExposedPorts"].get(format!("{}/tcp", said("EXPOSE "))).is_some(), "{c}");

    let mut files = vec![];
    let mut size = 0;
    let mut stack = vec![image.rootfs.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                size += path.metadata().unwrap().len();
                files.push(path.strip_prefix(&image.rootfs).unwrap().display().to_string());
            }
        }
    }
    files.sort();
    assert_eq!(files, ["etc/group", "etc/passwd", "etc/ssl/certs/ca-certificates.crt", "redis-pool-operator"]);
    assert!(size < 20 * 1024 * 1024, "the image's files take {size} bytes, over 20 MiB");
    eprintln!("image {}: {:.1} MiB", image.tag, size as f64 / 1024.0 / 1024.0);

    let labels = &c["Labels"];
    let version =
        read("Cargo.toml").lines().find_map(|l| l.strip_prefix("version = ")).unwrap().trim_matches('"').to_string();
    assert_eq!(labels["org.opencontainers.image.version"], version.as_str());
    assert!(image.tag.ends_with(&format!(":{version}")));
    let head = Command::new("git").args(["rev-parse", "HEAD"]).current_dir(root()).output().unwrap();
    let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
    assert!(labels["org.opencontainers.image.revision"].as_str().unwrap().starts_with(&head), "{labels}");
    let lock = format!("{:x}", sha2::Sha256::digest(read("Cargo.lock")));
    assert_eq!(labels["io.redis-pool-operator.build.cargo-lock-sha256"], lock.as_str());
    assert!(labels["io.redis-pool-operator.build.cargo"].as_str().unwrap().starts_with("cargo "), "{labels}");

    // The dependency tree travels in the binary (cargo-auditable's .dep-v0, zlib JSON), where
    // cargo audit, trivy, syft and grype read it.
    let section = std::env::temp_dir().join(format!("rpo-image-dep-v0-{}", std::process::id()));
    let dumped = Command::new("objcopy")
        .arg(format!("--dump-section=.dep-v0={}", section.display()))
        .arg(image.rootfs.join("redis-pool-operator"))
        .arg(section.with_extension("discard"))
        .output()
        .unwrap();
    assert!(dumped.status.success(), "no .dep-v0 section: {}", String::from_utf8_lossy(&dumped.stderr));
    let listed = Command::new("python3")
        .args(["-c", "import json,sys,zlib; d=json.loads(zlib.decompress(open(sys.argv[1],'rb').read())); print('\\n'.join(p['name']+' '+p['version'] for p in d['packages']))"])
        .arg(&section)
        .output()
        .unwrap();
    let packages = String::from_utf8_lossy(&listed.stdout);
    for want in [format!("redis-pool-operator {version}"), "kube ".into(), "rustls ".into(), "ring ".into()] {
        assert!(packages.lines().any(|l| l.starts_with(&want)), "{want} not in the embedded dependencies:\n{packages}");
    }
    // rustls only (openssl-probe, which finds the CA bundle, is pure Rust).
    let openssl = packages.lines().any(|l| l.starts_with("openssl ") || l.starts_with("openssl-sys "));
    assert!(!openssl, "OpenSSL in the image:\n{packages}");
    let _ = std::fs::remove_file(&section);
    let _ = std::fs::remove_file(section.with_extension("discard"));
}

/// One copy of the operator in the image's filesystem; killed (its pid namespace with it) on drop.
struct Jailed {
    unshare: Child,
    log: PathBuf,
    metrics_port: u16,
}

impl Jailed {
    /// The operator's own process: the chain `unshare` forks execs into it.
    fn pid(&self) -> Option<u32> {
        let id = self.unshare.id();
        let children = std::fs::read_to_string(format!("/proc/{id}/task/{id}/children")).ok()?;
        children.split_whitespace().next()?.parse().ok()
    }

    async fn get(&self, path: &str) -> Option<String> {
        let r = reqwest::get(format!("http://127.0.0.1:{}{path}", self.metrics_port)).await.ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.text().await.ok()
    }

    async fn counter(&self, name: &str) -> f64 {
        let text = self.get("/metrics").await.unwrap_or_default();
        text.lines().filter(|l| l.starts_with(name)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
    }
}

impl Drop for Jailed {
    fn drop(&mut self) {
        // The operator first: pid 1 of its namespace, whose end ends everything in it. (Its
        // parent-death signal does not survive chroot's change of user.)
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// Runs the image's entrypoint and command with `env`, as a kubelet would run the chart's pod.
fn run_jailed(image: &Image, service_account: &Path, pod: &str, env: &[(String, String)]) -> Jailed {
    let metrics_port = free_port();
    let log = std::env::temp_dir().join(format!("rpo-image-{pod}-{}.log", std::process::id()));
    let mut command: Vec<String> = strings(&image.config["Entrypoint"]);
    command.extend(strings(&image.config["Cmd"]));
    let user = image.config["User"].as_str().unwrap().to_string();
    let mut env: Vec<(String, String)> = env.to_vec();
    env.retain(|(k, _)| k != "RPO_METRICS_ADDR");
    // Metrics on loopback here (the chart binds 0.0.0.0 in a pod's own network namespace).
    env.push(("RPO_METRICS_ADDR".into(), format!("127.0.0.1:{metrics_port}")));
    let script = r#"set -e
        mount --bind "$ROOTFS" "$ROOTFS"
        mount -o remount,bind,ro "$ROOTFS"
        mount --bind -o ro "$SA" "$ROOTFS/$SA_DIR"
        mount -t proc proc "$ROOTFS/proc"
        hostname "$POD"
        exec env -i "$@""#;
    let mut args = vec!["--mount", "--pid", "--uts", "--fork", "--kill-child", "sh", "-c", script, "sh"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    args.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
    // `env -i` leaves no PATH: chroot by its path.
    let chroot = ["/usr/sbin/chroot", "/usr/bin/chroot"].into_iter().find(|p| Path::new(p).exists()).expect("chroot");
    args.extend([chroot.to_string(), format!("--userspec={user}"), image.rootfs.display().to_string()]);
    args.extend(command);
    let out = std::fs::File::create(&log).unwrap();
    let unshare = Command::new("unshare")
        .args(&args)
        .env("ROOTFS", &image.rootfs)
        .env("SA", service_account)
        .env("SA_DIR", SERVICE_ACCOUNT_DIR)
        .env("POD", pod)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("unshare (util-linux; new mount and pid namespaces need root, as CI runs)");
    Jailed { unshare, log, metrics_port }
}

/// The chart's objects for release `rpo` in `ns`, watching `ns` only (the test cluster is shared).
fn render_chart(ns: &str) -> Vec<serde_yaml::Value> {
    let o = helm_command()
        .args(["template", "rpo", CHART, "-n", ns, "--set", &format!("watchNamespace={ns}")])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_yaml::Deserializer::from_slice(&o.stdout)
        .filter_map(|d| serde::Deserialize::deserialize(d).ok())
        .filter(|d: &serde_yaml::Value| !d.is_null())
        .collect()
}

/// The image, with the chart's env, ServiceAccount and RBAC: `/readyz` answers, two copies
/// elect one leader through the chart's Lease RBAC, the leader completes a real rollout, and
/// it logs JSON as the chart asks, as user 65532 with no capabilities.
#[tokio::test]
async fn the_image_runs_as_the_chart_deploys_it() {
    let image = image();
    let ns = TestNamespace::new("image").await;
    let docs = render_chart(&ns.name);
    let rbac: Vec<&serde_yaml::Value> = docs
        .iter()
        .filter(|d| {
            ["ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"]
                .contains(&d["kind"].as_str().unwrap_or(""))
        })
        .collect();
    assert!(rbac.len() >= 3, "{rbac:?}");
    let manifests = std::env::temp_dir().join(format!("rpo-image-rbac-{}.yaml", std::process::id()));
    std::fs::write(
        &manifests,
        rbac.iter().map(|d| serde_yaml::to_string(d).unwrap()).collect::<Vec<_>>().join("---\n"),
    )
    .unwrap();
    let applied = cluster().kubectl(&["apply", "-n", &ns.name, "-f", manifests.to_str().unwrap()]);
    assert!(applied.status.success(), "{}", String::from_utf8_lossy(&applied.stderr));

    // The pod as the chart specifies it.
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").expect("the chart's Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(pod["securityContext"]["runAsUser"].as_u64(), Some(65532));
    assert_eq!(image.config["User"], "65532:65532", "the image's user is the chart's");
    let args: Vec<String> =
        container["args"].as_sequence().unwrap().iter().map(|a| a.as_str().unwrap().into()).collect();
    assert_eq!(args, strings(&image.config["Cmd"]), "the chart's args are the image's command");
    let sa_name = pod["serviceAccountName"].as_str().unwrap();

    // What a kubelet mounts: a token of the chart's ServiceAccount, the cluster CA, the namespace.
    let sa_dir = std::env::temp_dir().join(format!("rpo-image-sa-{}", std::process::id()));
    std::fs::create_dir_all(&sa_dir).unwrap();
    let token = cluster().kubectl(&["create", "token", sa_name, "-n", &ns.name, "--duration", "1h"]);
    assert!(token.status.success(), "{}", String::from_utf8_lossy(&token.stderr));
    std::fs::write(sa_dir.join("token"), String::from_utf8(token.stdout).unwrap().trim()).unwrap();
    let kubeconfig = std::fs::read_to_string(&cluster().kubeconfig).unwrap();
    let server = kubeconfig.lines().find_map(|l| l.trim().strip_prefix("server: ")).unwrap().to_string();
    let ca = kubeconfig.lines().find_map(|l| l.trim().strip_prefix("certificate-authority: ")).unwrap();
    std::fs::copy(ca, sa_dir.join("ca.crt")).unwrap();
    std::fs::write(sa_dir.join("namespace"), &ns.name).unwrap();
    let (host, port) = server.trim_start_matches("https://").rsplit_once(':').unwrap();

    let env_for = |pod_name: &str| -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = container["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|e| {
                let name = e["name"].as_str().unwrap().to_string();
                let value = match e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                    Some("metadata.name") => pod_name.to_string(),
                    Some("metadata.namespace") => ns.name.clone(),
                    Some(other) => panic!("a fieldRef the test does not fill in: {other}"),
                    None => e["value"].as_str().unwrap().to_string(),
                };
                (name, value)
            })
            .collect();
        env.push(("KUBERNETES_SERVICE_HOST".into(), host.to_string()));
        env.push(("KUBERNETES_SERVICE_PORT".into(), port.to_string()));
        env
    };
    let env_a = env_for("rpo-a");
    let lease_name = env_a.iter().find(|(k, _)| k == "RPO_LEASE_NAME").unwrap().1.clone();
    assert!(env_a.iter().any(|(k, v)| k == "RPO_LOG_FORMAT" && v == "json"), "{env_a:?}");
    let a = run_jailed(image, &sa_dir, "rpo-a", &env_a);
    let b = run_jailed(image, &sa_dir, "rpo-b", &env_for("rpo-b"));
    let logs = format!("(logs: {} and {})", a.log.display(), b.log.display());

    for copy in [&a, &b] {
        wait_until(&format!("/readyz to answer {logs}"), Duration::from_secs(60), || copy.get("/readyz")).await;
    }
    // As the image's user, with no capabilities, in its own pid namespace.
    let pid = a.pid().expect("the operator's process");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)).unwrap().trim().to_string();
    assert!(field("Uid:").starts_with("65532"), "{status}");
    assert_eq!(field("CapEff:"), "0000000000000000", "{status}");
    assert_eq!(field("NSpid:").split_whitespace().last(), Some("1"), "pid 1 of its own namespace: {status}");
    // Its root is the image's filesystem, read-only; the token is mounted where a kubelet puts it.
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    let options = |at: &str| {
        mounts.lines().map(|l| l.split(' ').collect::<Vec<_>>()).find(|f| f[4] == at).map(|f| f[5].to_string())
    };
    assert!(options("/").is_some_and(|o| o.split(',').any(|o| o == "ro")), "{mounts}");
    assert!(options(&format!("/{SERVICE_ACCOUNT_DIR}")).is_some(), "{mounts}");

    // One leader, through the chart's Lease RBAC in the release namespace.
    let leases: Api<Lease> = ns.api();
    let leader = wait_until(&format!("a leader {logs}"), Duration::from_secs(60), || {
        let leases = leases.clone();
        let name = lease_name.clone();
        async move { leases.get_opt(&name).await.ok().flatten()?.spec?.holder_identity }
    })
    .await;
    assert!(leader == "rpo-a" || leader == "rpo-b", "{leader}");
    let (leading, standby) = if leader == "rpo-a" { (&a, &b) } else { (&b, &a) };

    // A real rollout, decided by the image.
    create_target(&ns, 10).await;
    let _fleet = support::fleet::Fleet::start(ns.api(), 8000, all_pods(Health::good()));
    let policies: Api<redis_pool_operator::core::api::RedisPoolPolicy> = ns.api();
    let p: redis_pool_operator::core::api::RedisPoolPolicy = serde_json::from_value(policy("auth-api")).unwrap();
    policies.create(&Default::default(), &p).await.unwrap();
    let started = Instant::now();
    wait_until(&format!("the rollout to succeed {logs}"), Duration::from_secs(180), || {
        let policies = policies.clone();
        async move {
            let s = policies.get("auth-api").await.ok()?.status?;
            (s.phase == Phase::Succeeded).then_some(())
        }
    })
    .await;
    eprintln!("the image promoted in {:?}", started.elapsed());
    assert!(leading.counter("redis_pool_operator_writes_total").await > 0.0, "the leader wrote nothing");
    assert_eq!(standby.counter("redis_pool_operator_writes_total").await, 0.0, "the standby wrote");

    // JSON logs, line by line, and no permission it lacked.
    let log = std::fs::read_to_string(&leading.log).unwrap();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() > 5, "{log}");
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{line}");
    }
    assert!(!log.contains("forbidden"), "the image hit a permission the chart does not grant:\n{log}");
    drop((a, b));
    let _ = std::fs::remove_dir_all(&sa_dir);
}
