//! The operator as a real process, scoped to one test namespace.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::free_port;

pub struct Operator {
    child: Option<Child>,
    extra: Vec<String>,
    pub metrics_port: u16,
    pub log: std::path::PathBuf,
    kubeconfig: std::path::PathBuf,
    namespace: String,
}

impl Operator {
    pub fn start(kubeconfig: &Path, namespace: &str) -> Operator {
        Self::start_with(kubeconfig, namespace, &[], "")
    }

    /// With extra `run` flags; `tag` tells apart the logs of several operators of one namespace.
    pub fn start_with(kubeconfig: &Path, namespace: &str, extra: &[&str], tag: &str) -> Operator {
        let log = std::env::temp_dir().join(format!("rpo-operator-{namespace}{tag}.log"));
        let mut op = Operator {
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            metrics_port: 0,
            log,
            kubeconfig: kubeconfig.to_path_buf(),
            namespace: namespace.into(),
        };
        op.spawn();
        op
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn spawn(&mut self) {
        self.metrics_port = free_port();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_redis-pool-operator"))
            .args(["run", "--namespace", &self.namespace, "--environment", "production"])
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args([
                "--metrics-addr",
                &format!("127.0.0.1:{}", self.metrics_port),
                "--log-level",
                "info,redis_pool_operator=debug",
            ])
            .args(&self.extra)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the operator");
        self.child = Some(child);
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// The operator's own /metrics.
    pub async fn metrics(&self) -> String {
        let url = format!("http://127.0.0.1:{}/metrics", self.metrics_port);
        for _ in 0..50 {
            if let Ok(r) = reqwest::get(&url).await
                && let Ok(t) = r.text().await
            {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("operator metrics not served on {url}; log: {}", self.log.display())
    }

    /// Whether `/readyz` answers 200.
    pub async fn is_ready(&self) -> bool {
        let url = format!("http://127.0.0.1:{}/readyz", self.metrics_port);
        reqwest::get(&url).await.is_ok_and(|r| r.status().is_success())
    }

    /// A counter's value summed over its label sets.
    pub async fn counter(&self, name: &str) -> f64 {
        self.metrics()
            .await
            .lines()
            .filter(|l| l.starts_with(name) && (l[name.len()..].starts_with('{') || l[name.len()..].starts_with(' ')))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}
