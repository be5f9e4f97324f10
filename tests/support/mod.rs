//! Test harness for the real-control-plane layer: one isolated local cluster per test binary
//! (built by hack/local-cluster, torn down by its watchdog when the binary exits, pass or fail),
//! a fresh namespace per test, and real `redis-server` processes on free loopback ports.

#![allow(dead_code)]

pub mod fleet;
pub mod operator;
pub mod receiver;
pub mod recorder;
pub mod scenario;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A control plane shared by the tests of one binary.
pub struct Cluster {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

/// Starts (once per test binary) an isolated cluster with the CRD installed. A failed start
/// fails every test that needs it, with the same message.
pub fn cluster() -> &'static Cluster {
    let started = CLUSTER.get_or_init(|| std::panic::catch_unwind(start_cluster).map_err(panic_message));
    match started {
        Ok(c) => c,
        Err(e) => panic!("the local cluster did not start: {e}"),
    }
}

fn panic_message(e: Box<dyn std::any::Any + Send>) -> String {
    e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

fn start_cluster() -> Cluster {
    Cluster::start("", 0)
}

impl Cluster {
    /// A control plane with the CRD installed, torn down when the test binary exits; `tag` tells
    /// apart several of one binary, and its pod IPs come from a /16 of loopback `offset` away
    /// from the first one's, so that clusters never share an IP.
    pub fn start(tag: &str, offset: u32) -> Cluster {
        let name = std::env::current_exe()
            .ok()
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "tests".into());
        let dir = std::env::temp_dir().join(format!("rpo-cluster-{name}{tag}-{}", std::process::id()));
        let octet = 2 + (std::process::id() + offset) % 250;
        let out = Command::new(root().join("hack/local-cluster"))
            .args(["up", "--dir", dir.to_str().unwrap(), "--pod-cidr", &format!("127.{octet}.0.0/16")])
            .args(["--watch-pid", &std::process::id().to_string()])
            .stderr(Stdio::inherit())
            .output()
            .expect("run hack/local-cluster up");
        assert!(out.status.success(), "hack/local-cluster up failed; logs in {}/logs", dir.display());
        let cluster = Cluster { kubeconfig: dir.join("kubeconfig"), dir };
        // Tests run inside their own runtimes; this one-off setup gets a thread and runtime of its own.
        let kubeconfig = cluster.kubeconfig.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async { install_crd(&client_for(&kubeconfig).await).await });
        })
        .join()
        .unwrap_or_else(|e| panic!("install the CRD: {}", panic_message(e)));
        cluster
    }

    /// A fresh namespace in this cluster.
    pub async fn namespace(&self, prefix: &str) -> TestNamespace {
        let client = self.client().await;
        let name = format!("{prefix}-{:x}", rand_u32());
        let api: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        api.create(&PostParams::default(), &ns).await.expect("create namespace");
        TestNamespace { name, client }
    }

    /// A client bound to the calling test's runtime.
    pub async fn client(&self) -> Client {
        client_for(&self.kubeconfig).await
    }

    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }

    /// kubectl against this cluster.
    pub fn kubectl(&self, args: &[&str]) -> std::process::Output {
        Command::new("kubectl").env("KUBECONFIG", &self.kubeconfig).args(args).output().expect("run kubectl")
    }
}

async fn client_for(path: &Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("read kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("kubeconfig");
    Client::try_from(config).expect("client")
}

async fn install_crd(client: &Client) {
    let yaml = std::fs::read_to_string(root().join("crds/redispoolpolicy.yaml")).unwrap();
    let crd: CustomResourceDefinition = serde_yaml::from_str(&yaml).unwrap();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    api.create(&PostParams::default(), &crd).await.expect("create the CRD");
    let name = crd.metadata.name.clone().unwrap();
    wait_until("the CRD is established", Duration::from_secs(30), || {
        let api = api.clone();
        let name = name.clone();
        async move {
            let crd = api.get(&name).await.ok()?;
            let established = crd.status?.conditions?.iter().any(|c| c.type_ == "Established" && c.status == "True");
            established.then_some(())
        }
    })
    .await;
}

/// A namespace for one test, deleted when dropped (best effort; the cluster goes anyway).
pub struct TestNamespace {
    pub name: String,
    pub client: Client,
}

impl TestNamespace {
    pub async fn new(prefix: &str) -> Self {
        cluster().namespace(prefix).await
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let client = self.client.clone();
        let name = self.name.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = Api::<Namespace>::all(client).delete(&name, &DeleteParams::default()).await;
            });
        }
    }
}

fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish() as u32
}

/// Polls `check` until it returns Some, or panics after `timeout` naming what was awaited.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > timeout {
            let logs =
                CLUSTER.get().and_then(|c| c.as_ref().ok()).map(|c| c.logs().display().to_string()).unwrap_or_default();
            panic!("timed out after {timeout:?} waiting for {what} (control plane logs: {logs})");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A real redis-server on a free loopback port, killed when dropped.
pub struct RedisServer {
    pub port: u16,
    process: Option<Daemon>,
    /// The command line, to start the server again on the same port.
    args: Vec<String>,
}

/// A server process the test started, with its scratch directory: both go when it is dropped.
struct Daemon {
    child: Child,
    dir: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl RedisServer {
    /// Starts redis-server with extra `config` directives (e.g. `("maxclients", "50")`).
    pub fn start(config: &[(&str, &str)]) -> Self {
        let port = free_port();
        Self::spawn(port, &[("port", &port.to_string())], config)
    }

    /// A TLS-only server (`--port 0`) with the certificates of `pki`; clients need a certificate
    /// too when `config` sets `tls-auth-clients yes`.
    pub fn start_tls(pki: &Pki, config: &[(&str, &str)]) -> Self {
        let port = free_port();
        let file = |name: &str| pki.dir.join(name).display().to_string();
        let (cert, key, ca) = (file("server.crt"), file("server.key"), file("ca.crt"));
        let tls = [
            ("port", "0"),
            ("tls-port", &*port.to_string()),
            ("tls-cert-file", &*cert),
            ("tls-key-file", &*key),
            ("tls-ca-cert-file", &*ca),
        ]
        .map(|(k, v)| (k, v.to_string()));
        let tls: Vec<(&str, &str)> = tls.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut all: Vec<(&str, &str)> = vec![("tls-auth-clients", "no")];
        all.extend_from_slice(config);
        Self::spawn(port, &tls, &all)
    }

    fn spawn(port: u16, listen: &[(&str, &str)], config: &[(&str, &str)]) -> Self {
        let mut args: Vec<String> =
            ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"].map(String::from).into();
        for (k, v) in listen {
            args.extend([format!("--{k}"), v.to_string()]);
        }
        for (k, v) in config {
            args.push(format!("--{k}"));
            // An ACL rule and a replicaof are several words; one argument with spaces would be one.
            match *k {
                "user" | "replicaof" => args.extend(v.split_whitespace().map(String::from)),
                _ => args.push(v.to_string()),
            }
        }
        let process = Some(Self::run(port, &args));
        RedisServer { port, process, args }
    }

    fn run(port: u16, args: &[String]) -> Daemon {
        let dir = std::env::temp_dir().join(format!("rpo-redis-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("redis-server")
            .args(args)
            .args(["--dir", dir.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (.ci/run installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen on 127.0.0.1:{port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Daemon { child, dir }
    }

    /// Stops the server and starts it again on the same port: a restart, as a person or an
    /// orchestrator does it.
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Stops the server: its port refuses connections until [`Self::start_again`].
    pub fn stop(&mut self) {
        // The old process goes first: the port must be free for the new one.
        self.process = None;
    }

    /// Starts a stopped server again on the same port (a new process: a new run_id).
    pub fn start_again(&mut self) {
        self.process = Some(Self::run(self.port, &self.args));
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// A Redis Cluster on loopback: one master per entry of `max_clients` (each node its own
/// `maxclients`), slots spread by `redis-cli --cluster create`. Everything stops when dropped.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Masters only, each with its `maxclients`.
    pub fn start(max_clients: &[&str]) -> Self {
        Self::start_with_replicas(max_clients, 0)
    }

    /// `max_clients.len()` nodes, `replicas` of each master among them (`redis-cli` picks which:
    /// the first nodes are the masters).
    pub fn start_with_replicas(max_clients: &[&str], replicas: usize) -> Self {
        let nodes = max_clients
            .iter()
            .map(|m| {
                RedisServer::start(&[("cluster-enabled", "yes"), ("maxclients", m), ("cluster-node-timeout", "2000")])
            })
            .collect();
        Self::create(nodes, replicas)
    }

    /// Masters that speak TLS only, on the cluster bus too (`tls-cluster yes`): CLUSTER NODES
    /// over TLS announces their TLS ports. `config` is added to every node (an ACL user, say).
    pub fn start_tls(pki: &Pki, max_clients: &[&str], config: &[(&str, &str)]) -> Self {
        let nodes = max_clients
            .iter()
            .map(|m| {
                let mut all = vec![
                    ("cluster-enabled", "yes"),
                    ("maxclients", *m),
                    ("cluster-node-timeout", "2000"),
                    ("tls-cluster", "yes"),
                    ("tls-replication", "yes"),
                ];
                all.extend_from_slice(config);
                RedisServer::start_tls(pki, &all)
            })
            .collect();
        Self::create(nodes, 0)
    }

    fn create(nodes: Vec<RedisServer>, replicas: usize) -> Self {
        let addresses: Vec<String> = nodes.iter().map(RedisServer::address).collect();
        let out = Command::new("redis-cli")
            .args(nodes[0].tls_flags())
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("redis-cli is installed (.ci/run installs it)");
        assert!(out.status.success(), "redis-cli --cluster create: {}", String::from_utf8_lossy(&out.stdout));
        let cluster = RedisCluster { nodes };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cluster.nodes.iter().all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok")) {
            assert!(Instant::now() < deadline, "the cluster never reached cluster_state:ok");
            std::thread::sleep(Duration::from_millis(200));
        }
        cluster
    }
}

impl RedisCluster {
    /// The node whose `INFO replication` says `role:<role>` and, for a replica, that follows
    /// `master` (any master when None).
    pub fn node_with_role(&self, role: &str, master: Option<&RedisServer>) -> &RedisServer {
        self.nodes
            .iter()
            .find(|n| {
                let info = n.cli(&["INFO", "replication"]);
                info.contains(&format!("role:{role}"))
                    && master.is_none_or(|m| info.contains(&format!("master_port:{}", m.port)))
            })
            .unwrap_or_else(|| panic!("no {role} node in the cluster"))
    }
}

impl RedisServer {
    /// What `redis-cli` needs to speak to this server: TLS with its CA, when it speaks TLS.
    fn tls_flags(&self) -> Vec<String> {
        let ca = self.args.iter().position(|a| a == "--tls-ca-cert-file").and_then(|i| self.args.get(i + 1));
        match ca {
            Some(ca) => vec!["--tls".into(), "--cacert".into(), ca.clone()],
            None => Vec::new(),
        }
    }

    /// `redis-cli` against this server; its output.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(self.tls_flags())
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli is installed (.ci/run installs it)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// twemproxy (Debian's `nutcracker`) on loopback in front of `backend`; stopped when dropped.
pub struct Twemproxy {
    pub port: u16,
    _process: Daemon,
}

impl Twemproxy {
    pub fn start(backend: &str) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("rpo-twemproxy-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let conf = dir.join("nutcracker.yml");
        std::fs::write(
            &conf,
            format!("pool:\n  listen: 127.0.0.1:{port}\n  redis: true\n  servers:\n    - {backend}:1\n"),
        )
        .unwrap();
        let binary = ["/usr/sbin/nutcracker", "nutcracker"]
            .into_iter()
            .find(|b| std::path::Path::new(b).exists() || *b == "nutcracker")
            .unwrap();
        // Its stats port binds loopback too (it would take 0.0.0.0 by default).
        let child = Command::new(binary)
            .arg("-c")
            .arg(&conf)
            .args(["-a", "127.0.0.1", "-s", &free_port().to_string()])
            .arg("-o")
            .arg(dir.join("nutcracker.log"))
            .arg("-p")
            .arg(dir.join("nutcracker.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nutcracker is installed (.ci/run installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nutcracker did not listen on 127.0.0.1:{port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Twemproxy { port, _process: Daemon { child, dir } }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// A Sentinel setup on loopback, as production runs one: a master, one replica and three
/// sentinels (Debian's `redis-sentinel`) watching them with a quorum of two. Everything stops
/// when it is dropped.
pub struct SentinelSet {
    pub master: RedisServer,
    pub replica: RedisServer,
    sentinels: Vec<(u16, Daemon)>,
}

impl SentinelSet {
    pub const NAME: &'static str = "mymaster";

    /// Starts the servers and the sentinels, and waits until the sentinels know the replica (a
    /// failover needs one to promote).
    pub fn start() -> Self {
        Self::start_with(&[], &[])
    }

    /// With extra directives for the master and the replica (e.g. their `maxclients`).
    pub fn start_with(master: &[(&str, &str)], replica: &[(&str, &str)]) -> Self {
        let master = RedisServer::start(master);
        let follow = format!("127.0.0.1 {}", master.port);
        let mut replica_config = vec![("replicaof", follow.as_str())];
        replica_config.extend_from_slice(replica);
        let replica = RedisServer::start(&replica_config);
        let sentinels = (0..3)
            .map(|_| {
                let port = free_port();
                let dir = std::env::temp_dir().join(format!("rpo-sentinel-{port}-{}", std::process::id()));
                std::fs::create_dir_all(&dir).unwrap();
                // Sentinel rewrites its configuration file: it must be its own, and writable.
                let conf = dir.join("sentinel.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor {} 127.0.0.1 {} 2\n\
                         sentinel down-after-milliseconds {1} 1000\nsentinel failover-timeout {1} 5000\n\
                         sentinel parallel-syncs {1} 1\n",
                        dir.display(),
                        Self::NAME,
                        master.port
                    ),
                )
                .unwrap();
                let child = Command::new("redis-sentinel")
                    .arg(&conf)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("redis-sentinel is installed (.ci/run installs it)");
                (port, Daemon { child, dir })
            })
            .collect();
        let set = SentinelSet { master, replica, sentinels };
        let replica = set.replica.port.to_string();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let known = set.ask(&["SENTINEL", "REPLICAS", Self::NAME]).is_some_and(|out| out.contains(&replica));
            if known {
                break;
            }
            assert!(Instant::now() < deadline, "the sentinels never learnt of the replica on port {replica}");
            std::thread::sleep(Duration::from_millis(250));
        }
        set
    }

    /// The address of sentinel `i` (of three).
    pub fn sentinel_address(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.sentinels[i].0)
    }

    /// Asks the first sentinel `args`; its answer, when it answered.
    pub fn ask(&self, args: &[&str]) -> Option<String> {
        let (port, _) = &self.sentinels[0];
        let out =
            Command::new("redis-cli").args(["-h", "127.0.0.1", "-p", &port.to_string()]).args(args).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `SENTINEL FAILOVER`, as an operator of Redis forces one, then waits until the old
    /// replica serves as master.
    pub fn failover(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let answer = self.ask(&["SENTINEL", "FAILOVER", Self::NAME]).unwrap_or_default();
            if answer.trim() == "OK" {
                break;
            }
            assert!(Instant::now() < deadline, "SENTINEL FAILOVER was never accepted: {answer}");
            std::thread::sleep(Duration::from_millis(250));
        }
        let replica = self.replica.port.to_string();
        loop {
            let out = Command::new("redis-cli").args(["-p", &replica, "ROLE"]).output().unwrap();
            if String::from_utf8_lossy(&out.stdout).starts_with("master") {
                return;
            }
            assert!(Instant::now() < deadline, "the replica on port {replica} was never promoted");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The helm built by hack/build-tools.
/// A real Prometheus (Debian's `prometheus`) on a free loopback port, scraping the targets of a
/// `file_sd_configs` file every second; killed when dropped.
pub struct PrometheusServer {
    pub port: u16,
    pub sd_file: PathBuf,
    process: Daemon,
}

impl PrometheusServer {
    pub fn start() -> Self {
        Self::start_with_jobs(&[])
    }

    /// Also scrapes each `(job, host:port)` (on loopback) every second.
    pub fn start_with_jobs(jobs: &[(&str, String)]) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("rpo-prometheus-{port}-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let sd_file = dir.join("targets.json");
        std::fs::write(&sd_file, "[]").unwrap();
        let config = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s, scrape_timeout: 900ms}}\n\
             scrape_configs:\n\
             - job_name: pods\n  file_sd_configs: [{{files: ['{}'], refresh_interval: 1s}}]\n{}",
            sd_file.display(),
            jobs.iter()
                .map(|(job, address)| format!("- job_name: {job}\n  static_configs: [{{targets: ['{address}']}}]\n"))
                .collect::<String>()
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus is installed (.ci/run installs it)");
        let server = PrometheusServer { port, sd_file, process: Daemon { child, dir } };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = std::net::TcpStream::connect(("127.0.0.1", port)).ok().and_then(|mut s| {
                use std::io::{Read as _, Write as _};
                s.write_all(b"GET /-/ready HTTP/1.0\r\n\r\n").ok()?;
                let mut answer = String::new();
                s.read_to_string(&mut answer).ok()?;
                (answer.split_whitespace().nth(1) == Some("200")).then_some(())
            });
            if ready.is_some() {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus was not ready on 127.0.0.1:{port}; see {}",
                server.log().display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn address(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> PathBuf {
        self.process.dir.join("prometheus.log")
    }
}

/// Certificates made with openssl for one test: a CA, a server certificate for `redis.test` and
/// 127.0.0.1, a client certificate, and a second CA that signed none of them.
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = std::env::temp_dir().join(format!("rpo-pki-{}-{:x}", std::process::id(), rand_u32()));
        std::fs::create_dir_all(&dir).unwrap();
        let run = |args: &[&str]| {
            let o = Command::new("openssl").current_dir(&dir).args(args).output().expect("openssl is installed");
            assert!(o.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        };
        for ca in ["ca", "other-ca"] {
            let (key, crt, subj) = (format!("{ca}.key"), format!("{ca}.crt"), format!("/CN=rpo-test-{ca}"));
            run(&[
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &crt, "-days", "2", "-subj",
                &subj,
            ]);
        }
        std::fs::write(dir.join("server.ext"), "subjectAltName=DNS:redis.test,IP:127.0.0.1\n").unwrap();
        std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        for (name, subj) in [("server", "/CN=redis.test"), ("client", "/CN=redis-pool-operator")] {
            let (key, csr, crt, ext) =
                (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"), format!("{name}.ext"));
            run(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", subj]);
            run(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                &ext,
            ]);
        }
        Pki { dir }
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap()
    }
}

pub fn helm_bin() -> PathBuf {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        // The demo and the local cluster build no helm: build it here if nobody has yet.
        let built = Command::new(root().join("hack/build-tools")).arg("helm").status().expect("run hack/build-tools");
        assert!(built.success(), "hack/build-tools helm failed");
        let out = Command::new(root().join("hack/build-tools")).arg("--print-dir").output().unwrap();
        PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()).join("helm")
    })
    .clone()
}

/// helm from the repository root with its own home and no cluster at all.
pub fn helm_command() -> Command {
    let helm_home = std::env::temp_dir().join(format!("rpo-helm-{}", std::process::id()));
    let mut cmd = Command::new(helm_bin());
    cmd.current_dir(root())
        .env_remove("KUBECONFIG")
        .env("HELM_CACHE_HOME", helm_home.join("cache"))
        .env("HELM_CONFIG_HOME", helm_home.join("config"))
        .env("HELM_DATA_HOME", helm_home.join("data"));
    cmd
}

/// helm against this binary's cluster.
pub fn helm(args: &[&str]) -> std::process::Output {
    helm_command().env("KUBECONFIG", &cluster().kubeconfig).args(args).output().expect("run helm")
}

pub fn read(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(root().join(path)).unwrap()
}

/// A kubeconfig that authenticates as a ServiceAccount (the chart's) with a short-lived token,
/// once the ServiceAccount exists.
pub async fn service_account_kubeconfig(namespace: &str, sa: &str) -> PathBuf {
    let sas: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(cluster().client().await, namespace);
    wait_until(&format!("ServiceAccount {namespace}/{sa}"), Duration::from_secs(20), || {
        let sas = sas.clone();
        async move { sas.get_opt(sa).await.ok().flatten().map(|_| ()) }
    })
    .await;
    let token = cluster().kubectl(&["create", "token", sa, "-n", namespace, "--duration", "1h"]);
    assert!(token.status.success(), "{}", String::from_utf8_lossy(&token.stderr));
    let token = String::from_utf8(token.stdout).unwrap().trim().to_string();
    let admin = std::fs::read_to_string(&cluster().kubeconfig).unwrap();
    let server = admin.lines().find_map(|l| l.trim().strip_prefix("server: ")).unwrap().to_string();
    let ca = admin.lines().find_map(|l| l.trim().strip_prefix("certificate-authority: ")).unwrap().to_string();
    let path = std::env::temp_dir().join(format!("rpo-sa-{namespace}-{}.kubeconfig", std::process::id()));
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: local\n  cluster: {{server: {server}, certificate-authority: {ca}}}\nusers:\n- name: sa\n  user: {{token: {token}}}\ncontexts:\n- name: sa\n  context: {{cluster: local, user: sa}}\ncurrent-context: sa\n"
        ),
    )
    .unwrap();
    path
}

pub const PLUGIN: &str = env!("CARGO_BIN_EXE_kubectl-redispool");

/// Runs the plugin against this binary's cluster in `ns`, off the test's runtime thread.
pub async fn plugin(ns: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(PLUGIN);
    cmd.arg("--kubeconfig").arg(&cluster().kubeconfig).args(["-n", ns]).args(args).env("NO_COLOR", "1");
    tokio::task::spawn_blocking(move || cmd.output().expect("run kubectl-redispool")).await.unwrap()
}

/// What a command printed on stdout.
pub fn out(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Real pool-app processes on the pods' loopback IPs (pod-supervisor) and load spread over the
/// ready ones (loadgen): the workspace's own tools, built by `cargo build --workspace`. Both stop
/// when dropped, when the test process ends, and by their own time limit.
pub struct Workload {
    children: Vec<Child>,
    pub log_dir: PathBuf,
}

impl Workload {
    pub fn start(ns: &str, rate: u32, seconds: u64) -> Workload {
        let bin = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf();
        for tool in ["pool-app", "pod-supervisor", "loadgen"] {
            assert!(
                bin.join(tool).exists(),
                "{} is missing: build the workspace first (cargo build --workspace --bins, as hack/test does)",
                bin.join(tool).display()
            );
        }
        let log_dir = std::env::temp_dir().join(format!("rpo-workload-{ns}"));
        std::fs::create_dir_all(log_dir.join("pods")).unwrap();
        let common = |tool: &str| {
            let mut cmd = Command::new(bin.join(tool));
            cmd.arg("--kubeconfig")
                .arg(&cluster().kubeconfig)
                .args(["--namespace", ns, "--selector", "app=auth-api"])
                .args(["--watch-pid", &std::process::id().to_string()]);
            cmd
        };
        let log = |name: &str| std::fs::File::create(log_dir.join(name)).unwrap();
        let supervisor = common("pod-supervisor")
            .arg("--app")
            .arg(bin.join("pool-app"))
            .arg("--log-dir")
            .arg(log_dir.join("pods"))
            .args(["--max-seconds", &seconds.to_string()])
            .stdout(log("supervisor.log"))
            .stderr(log("supervisor.err"))
            .spawn()
            .expect("pod-supervisor");
        let load = common("loadgen")
            .args(["--rate", &rate.to_string(), "--duration", &seconds.to_string(), "--report-every", "5"])
            .stdout(log("load.log"))
            .stderr(log("load.err"))
            .spawn()
            .expect("loadgen");
        Workload { children: vec![supervisor, load], log_dir }
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        for c in &mut self.children {
            // SIGTERM first: pod-supervisor stops its pool-app children on the way out.
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        }
        for c in &mut self.children {
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
