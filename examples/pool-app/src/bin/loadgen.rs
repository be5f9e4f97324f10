//! loadgen: spreads requests over the ready pods of a selector the way a Service would
//! (round-robin over the endpoints, refreshed every second), at a fixed rate, for a bounded time,
//! and prints success rate and p50/p95/p99 latency per window and overall.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use kube::api::ListParams;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    pods: pool_app::PodsArgs,
    #[arg(long, default_value = "/work")]
    path: String,
    /// Requests per second (open loop: a slow pod does not slow the load).
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Seconds to run; the generator always stops by itself.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Most requests in flight at once.
    #[arg(long, default_value_t = 1000)]
    max_in_flight: usize,
    /// Seconds between report lines (0: only the final summary).
    #[arg(long, default_value_t = 10)]
    report_every: u64,
}

#[derive(Default)]
struct Window {
    ok: u64,
    failed: u64,
    latencies_ms: Vec<f64>,
}

impl Window {
    fn line(&mut self, label: &str) -> String {
        let total = self.ok + self.failed;
        self.latencies_ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let q = |p: f64| {
            self.latencies_ms
                .get(((self.latencies_ms.len() as f64 * p) as usize).min(self.latencies_ms.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0.0)
        };
        let rate = if total == 0 { 100.0 } else { 100.0 * self.ok as f64 / total as f64 };
        format!(
            "{label}: {total} requests, success {rate:.2}%, p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
            q(0.50),
            q(0.95),
            q(0.99)
        )
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let pods = args.pods.api().await;
    let endpoints: Arc<Mutex<Vec<String>>> = Arc::default();
    {
        let endpoints = endpoints.clone();
        let selector = args.pods.selector.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await {
                    let ready: Vec<String> = list.items.iter().filter_map(pool_app::ready_loopback_ip).collect();
                    *endpoints.lock().unwrap() = ready;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(3))
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let window = Arc::new(Mutex::new(Window::default()));
    let total = Arc::new(Mutex::new(Window::default()));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let end = start + Duration::from_secs(args.duration);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1))));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_report = Instant::now();
    while Instant::now() < end {
        tick.tick().await;
        if args.pods.orphaned() {
            break;
        }
        if args.report_every > 0 && last_report.elapsed() >= Duration::from_secs(args.report_every) {
            let line = window.lock().unwrap().line(&format!("load t+{:>3}s", start.elapsed().as_secs()));
            println!("{line}");
            *window.lock().unwrap() = Window::default();
            last_report = Instant::now();
        }
        let ip = {
            let e = endpoints.lock().unwrap();
            if e.is_empty() {
                continue;
            }
            e[next.fetch_add(1, Ordering::Relaxed) % e.len()].clone()
        };
        if in_flight.load(Ordering::Relaxed) >= args.max_in_flight {
            let mut w = window.lock().unwrap();
            w.failed += 1;
            continue;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        let url = format!("http://{ip}:{}{}", args.pods.port, args.path);
        let (client, window, total, in_flight) = (client.clone(), window.clone(), total.clone(), in_flight.clone());
        tokio::spawn(async move {
            let t0 = Instant::now();
            let ok = client.get(&url).send().await.is_ok_and(|r| r.status().is_success());
            let ms = t0.elapsed().as_secs_f64() * 1000.0;
            for w in [&window, &total] {
                let mut w = w.lock().unwrap();
                if ok {
                    w.ok += 1
                } else {
                    w.failed += 1
                }
                w.latencies_ms.push(ms);
            }
            in_flight.fetch_sub(1, Ordering::Relaxed);
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    println!("{}", total.lock().unwrap().line(&format!("load total over {}s", start.elapsed().as_secs())));
}
