//! Scripted workloads: for every Running pod of a namespace, a small HTTP server on the pod's
//! loopback IP serving the pool health contract (`/health/redis`) and the same facts as
//! Prometheus text (`/metrics`), with values chosen per pod by the test. Each GET advances the
//! counters, as if the pod had served traffic since the last one. With a service-discovery file
//! the fleet also lists its pods for a real Prometheus, labelled as Kubernetes SD would.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use redis_pool_operator::core::analysis::contract::{Counters, Histogram, PoolGauges, PoolHealth};
use tokio::task::JoinHandle;

/// What one pod reports per scrape.
#[derive(Clone, Debug, PartialEq)]
pub struct Health {
    pub requests_per_scrape: u64,
    pub success_rate: f64,
    /// Every request lands in the bucket that holds this latency.
    pub latency_ms: f64,
    pub utilization: f64,
    pub exhaustion_per_scrape: u64,
    /// Pool exhaustion events counted on the first scrape only (a burst long past).
    pub exhaustion_on_first_scrape: u64,
    pub redis_errors_per_scrape: u64,
    /// Of those, refused by the server with "max number of clients reached".
    pub max_clients_errors_per_scrape: u64,
}

impl Health {
    pub fn good() -> Self {
        Health {
            requests_per_scrape: 500,
            success_rate: 100.0,
            latency_ms: 8.0,
            utilization: 20.0,
            exhaustion_per_scrape: 0,
            exhaustion_on_first_scrape: 0,
            redis_errors_per_scrape: 0,
            max_clients_errors_per_scrape: 0,
        }
    }
}

/// Running contract servers by pod uid.
pub type Servers = Arc<Mutex<HashMap<String, (SocketAddr, JoinHandle<()>)>>>;

pub type Behaviour = Arc<dyn Fn(&Pod) -> Option<Health> + Send + Sync>;

const LE: [f64; 9] = [5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0];

fn advance(state: &mut PoolHealth, h: &Health) {
    let c = &mut state.counters;
    c.requests_total += h.requests_per_scrape;
    let failed = ((h.requests_per_scrape as f64) * (100.0 - h.success_rate) / 100.0).round() as u64;
    c.requests_failed_total += failed;
    if c.requests_total == h.requests_per_scrape {
        c.pool_exhaustion_events_total += h.exhaustion_on_first_scrape;
    }
    c.pool_exhaustion_events_total += h.exhaustion_per_scrape;
    c.redis_connection_errors_total += h.redis_errors_per_scrape + h.max_clients_errors_per_scrape;
    c.redis_max_clients_errors_total += h.max_clients_errors_per_scrape;
    let bucket = LE.iter().position(|le| h.latency_ms <= *le).unwrap_or(LE.len() - 1);
    let hist = &mut state.latency_ms;
    for (i, count) in hist.counts.iter_mut().enumerate() {
        if i >= bucket {
            *count += h.requests_per_scrape;
        }
    }
    hist.count += h.requests_per_scrape;
    hist.sum += h.latency_ms * h.requests_per_scrape as f64;
    let max = 160u64;
    state.pool = PoolGauges {
        max_connections: max,
        in_use: (max as f64 * h.utilization / 100.0) as u64,
        available_connections: max - (max as f64 * h.utilization / 100.0) as u64,
        utilization_percent: h.utilization,
        peak_in_use: (max as f64 * h.utilization / 100.0) as u64,
    };
}

/// What pods report instead of their own health while it is set: the weather (a Redis outage, a
/// slow dependency) that canary and stable suffer alike. Canary pods and stable pods each have
/// their own, so that a test can let weather come and go without an analysis ever seeing the
/// canary in it and the stable not.
#[derive(Default)]
pub struct WeatherState {
    pub canary: Option<Health>,
    pub stable: Option<Health>,
}

pub type Weather = Arc<Mutex<WeatherState>>;

/// Serves the contract for the pods of one namespace until dropped.
pub struct Fleet {
    task: JoinHandle<()>,
    pub servers: Servers,
    weather: Weather,
}

impl Fleet {
    pub fn start(pods: Api<Pod>, port: u16, behaviour: Behaviour) -> Fleet {
        Self::start_with_sd(pods, port, behaviour, None)
    }

    /// Also writes `sd_file` (Prometheus `file_sd_configs` JSON): one target per serving pod,
    /// labelled `namespace`, `pod` and `redispool_io_track` (the canary label, as a `labelmap`
    /// of pod labels gives it).
    pub fn start_with_sd(
        pods: Api<Pod>,
        port: u16,
        behaviour: Behaviour,
        sd_file: Option<std::path::PathBuf>,
    ) -> Fleet {
        let servers = Servers::default();
        let s = servers.clone();
        let weather = Weather::default();
        let w = weather.clone();
        let task = tokio::spawn(async move {
            // Bounded: a test's fleet lives at most ten minutes.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
            let mut written = String::new();
            while tokio::time::Instant::now() < deadline {
                if let Ok(list) = pods.list(&ListParams::default()).await {
                    sync(&list.items, port, &behaviour, &s, &w);
                    if let Some(file) = &sd_file {
                        let targets = sd_targets(&list.items, &s);
                        if targets != written {
                            // Written whole and renamed, so Prometheus never reads half a file.
                            let tmp = file.with_extension("tmp");
                            std::fs::write(&tmp, &targets).unwrap();
                            std::fs::rename(&tmp, file).unwrap();
                            written = targets;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Fleet { task, servers, weather }
    }

    /// Every pod reports `health` from its next scrape on (None: its own again).
    pub fn set_weather(&self, health: Option<Health>) {
        *self.weather.lock().unwrap() = WeatherState { canary: health.clone(), stable: health };
    }

    /// Changes the weather by hand.
    pub fn weather_mut(&self, change: impl FnOnce(&mut WeatherState)) {
        change(&mut self.weather.lock().unwrap());
    }

    /// Weather that comes in and goes out stable first and canary last, and back: an analysis
    /// that measures in between sees the canary no worse than the stable, never the reverse,
    /// however the canary and stable scrapes fall around the change.
    pub async fn weather_for(&self, health: Health, spell: Duration) {
        let gap = Duration::from_millis(1500);
        self.weather.lock().unwrap().stable = Some(health.clone());
        tokio::time::sleep(gap).await;
        self.weather.lock().unwrap().canary = Some(health);
        tokio::time::sleep(spell).await;
        self.weather.lock().unwrap().canary = None;
        tokio::time::sleep(gap).await;
        self.weather.lock().unwrap().stable = None;
    }
}

fn sd_targets(pods: &[Pod], servers: &Servers) -> String {
    let servers = servers.lock().unwrap();
    let targets: Vec<serde_json::Value> = pods
        .iter()
        .filter_map(|p| {
            let (addr, _) = servers.get(p.metadata.uid.as_ref()?)?;
            let track =
                p.metadata.labels.as_ref().and_then(|l| l.get("redispool.io/track")).cloned().unwrap_or_default();
            Some(serde_json::json!({
                "targets": [addr.to_string()],
                "labels": {"namespace": p.metadata.namespace, "pod": p.metadata.name, "redispool_io_track": track}
            }))
        })
        .collect();
    serde_json::to_string(&targets).unwrap()
}

/// The pool health as Prometheus text, with the names the default queries expect.
fn prometheus_text(s: &PoolHealth) -> String {
    let c = &s.counters;
    let mut out = String::new();
    out += &format!("redis_pool_connections{{state=\"used\"}} {}\n", s.pool.in_use);
    out += &format!("redis_pool_connections{{state=\"idle\"}} {}\n", s.pool.available_connections);
    out += &format!("redis_pool_max_connections {}\n", s.pool.max_connections);
    out += &format!("redis_pool_timeouts_total {}\n", c.pool_exhaustion_events_total);
    out += &format!("redis_client_errors_total {}\n", c.redis_connection_errors_total);
    out += &format!("http_requests_total{{code=\"200\"}} {}\n", c.requests_total - c.requests_failed_total);
    out += &format!("http_requests_total{{code=\"503\"}} {}\n", c.requests_failed_total);
    let h = &s.latency_ms;
    for (le, count) in h.le.iter().zip(&h.counts) {
        out += &format!("http_request_duration_seconds_bucket{{le=\"{}\"}} {count}\n", le / 1000.0);
    }
    out += &format!("http_request_duration_seconds_bucket{{le=\"+Inf\"}} {}\n", h.count);
    out += &format!("http_request_duration_seconds_sum {}\n", h.sum / 1000.0);
    out += &format!("http_request_duration_seconds_count {}\n", h.count);
    out
}

fn sync(pods: &[Pod], port: u16, behaviour: &Behaviour, servers: &Servers, weather: &Weather) {
    let mut servers = servers.lock().unwrap();
    let running: HashMap<String, (&Pod, String)> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .filter_map(|p| Some((p.metadata.uid.clone()?, (p, p.status.as_ref()?.pod_ip.clone()?))))
        .collect();
    servers.retain(|uid, (_, task)| {
        let keep = running.contains_key(uid);
        if !keep {
            task.abort();
        }
        keep
    });
    for (uid, (pod, ip)) in running {
        if servers.contains_key(&uid) {
            continue;
        }
        let ip: std::net::IpAddr = ip.parse().expect("pod IP");
        assert!(ip.is_loopback(), "pod IP {ip} is not loopback: the network rule forbids dialling it");
        let Some(health) = behaviour(pod) else { continue };
        let addr = SocketAddr::new(ip, port);
        let Ok(listener) = std::net::TcpListener::bind(addr) else { continue };
        listener.set_nonblocking(true).unwrap();
        let state = Arc::new(Mutex::new(PoolHealth {
            status: "healthy".into(),
            pool: PoolGauges::default(),
            counters: Counters::default(),
            latency_ms: Histogram { le: LE.to_vec(), counts: vec![0; LE.len()], count: 0, sum: 0.0 },
        }));
        // Either endpoint is a scrape: it advances the counters and reports them, in its format.
        let weather = weather.clone();
        let is_canary =
            pod.metadata.labels.as_ref().and_then(|l| l.get("redispool.io/track")).is_some_and(|t| t == "canary");
        let scrape = Arc::new(move || {
            let w = weather.lock().unwrap();
            let now = if is_canary { w.canary.clone() } else { w.stable.clone() }.unwrap_or_else(|| health.clone());
            drop(w);
            let mut s = state.lock().unwrap();
            advance(&mut s, &now);
            s.clone()
        });
        let (json, text) = (scrape.clone(), scrape);
        let app = Router::new()
            .route("/health/redis", get(move || std::future::ready(axum::Json(json()))))
            .route("/metrics", get(move || std::future::ready(prometheus_text(&text()))));
        let task = tokio::spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let _ = axum::serve(listener, app).await;
        });
        servers.insert(uid, (addr, task));
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.task.abort();
        for (_, (_, t)) in self.servers.lock().unwrap().drain() {
            t.abort();
        }
    }
}
