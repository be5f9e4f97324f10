//! What the demo tools share: reaching the pods of a namespace.

use std::path::Path;

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Which pods a demo tool works on, and when it must stop.
#[derive(clap::Args, Debug)]
pub struct PodsArgs {
    #[arg(long)]
    pub kubeconfig: std::path::PathBuf,
    #[arg(long)]
    pub namespace: String,
    /// Label selector of the pods, e.g. app=auth-api.
    #[arg(long)]
    pub selector: String,
    /// The port pool-app serves on, on each pod's IP.
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Stop when this process ends.
    #[arg(long)]
    pub watch_pid: Option<u32>,
}

impl PodsArgs {
    pub async fn api(&self) -> Api<Pod> {
        pods_api(&self.kubeconfig, &self.namespace).await
    }

    /// The process to watch has ended.
    pub fn orphaned(&self) -> bool {
        self.watch_pid.is_some_and(|p| !alive(p))
    }
}

/// The Pods of `namespace`, through `kubeconfig`.
pub async fn pods_api(kubeconfig: &Path, namespace: &str) -> Api<Pod> {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("kubeconfig");
    Api::namespaced(kube::Client::try_from(config).expect("client"), namespace)
}

/// The pod's IP when it is live and Ready, and on loopback (the network rule: nothing else is
/// ever bound or dialled).
pub fn ready_loopback_ip(p: &Pod) -> Option<String> {
    if p.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = p.status.as_ref()?;
    let ready = status.conditions.as_ref()?.iter().any(|c| c.type_ == "Ready" && c.status == "True");
    let ip = status.pod_ip.clone()?;
    (ready && ip.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())).then_some(ip)
}

/// Whether process `pid` still runs.
pub fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}
