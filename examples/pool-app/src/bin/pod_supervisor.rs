//! pod-supervisor: makes kwok's pods real. For every Running pod matching a selector it starts
//! pool-app on the pod's loopback IP with the pod's own env (so a patched Deployment really
//! resizes the pools), and stops it when the pod goes away. Bounded in time; stops its children
//! when it ends or when the process it watches ends.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    pods: pool_app::PodsArgs,
    /// The workload binary.
    #[arg(long)]
    app: PathBuf,
    /// Where children log (one file per pod).
    #[arg(long)]
    log_dir: PathBuf,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 900)]
    max_seconds: u64,
}

struct Running {
    child: Child,
    name: String,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let pods = args.pods.api().await;
    std::fs::create_dir_all(&args.log_dir).expect("log dir");
    let mut running: HashMap<String, Running> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(args.max_seconds);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM");
    loop {
        if Instant::now() > deadline || args.pods.orphaned() {
            break;
        }
        if let Ok(list) = pods.list(&ListParams::default().labels(&args.pods.selector)).await {
            sync(&args, &list.items, &mut running);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = term.recv() => break,
        }
    }
    for (_, r) in running.drain() {
        stop(r);
    }
}

fn sync(args: &Args, pods: &[Pod], running: &mut HashMap<String, Running>) {
    let live: HashMap<String, &Pod> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .filter(|p| p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some())
        .filter_map(|p| Some((p.metadata.uid.clone()?, p)))
        .collect();
    let gone: Vec<String> = running.keys().filter(|uid| !live.contains_key(*uid)).cloned().collect();
    for uid in gone {
        if let Some(r) = running.remove(&uid) {
            println!("stopped {}", r.name);
            stop(r);
        }
    }
    // A child that died (a bad config, say) is restarted, like a kubelet would.
    running.retain(|_, r| matches!(r.child.try_wait(), Ok(None)));
    for (uid, pod) in live {
        if running.contains_key(&uid) {
            continue;
        }
        let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default();
        let parsed: std::net::IpAddr = match ip.parse() {
            Ok(a) => a,
            Err(_) => continue,
        };
        // The network rule: only loopback pod IPs are ever bound or dialled.
        if !parsed.is_loopback() {
            eprintln!("skipping pod with non-loopback IP {ip}");
            continue;
        }
        let name = pod.metadata.name.clone().unwrap_or_default();
        let container = pod.spec.as_ref().and_then(|s| s.containers.first());
        let env: Vec<(String, String)> = container
            .and_then(|c| c.env.as_ref())
            .map(|env| env.iter().filter_map(|e| Some((e.name.clone(), e.value.clone()?))).collect())
            .unwrap_or_default();
        let log = std::fs::File::create(args.log_dir.join(format!("{name}.log"))).expect("pod log");
        let child = Command::new(&args.app)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("LISTEN_ADDR", format!("{ip}:{}", args.pods.port))
            .env("POD_NAME", &name)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn();
        match child {
            Ok(child) => {
                let pool = env
                    .iter()
                    .filter(|(k, _)| k == "WORKERS" || k == "REDIS_POOL_MAX_CONNECTIONS")
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>();
                println!("started {name} on {ip}:{} {}", args.pods.port, pool.join(" "));
                running.insert(uid, Running { child, name });
            }
            Err(e) => eprintln!("cannot start {}: {e}", args.app.display()),
        }
    }
}

fn stop(mut r: Running) {
    let pid = r.child.id();
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    for _ in 0..20 {
        if matches!(r.child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = r.child.kill();
    let _ = r.child.wait();
}
