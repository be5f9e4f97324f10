//! Request and pool counters, and the two ways of telling them: the JSON health contract and
//! Prometheus text.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Latency bucket bounds in milliseconds, shared by both formats.
pub const LE_MS: [f64; 9] = [5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0];

#[derive(Default)]
pub struct Stats {
    requests: AtomicU64,
    failed: AtomicU64,
    exhaustion: AtomicU64,
    redis_errors: AtomicU64,
    /// Of `redis_errors`, those where the server refused a connection for want of client slots.
    max_clients_errors: AtomicU64,
    peak_in_use: AtomicU64,
    latency: Mutex<Latency>,
}

#[derive(Default)]
struct Latency {
    /// Non-cumulative counts per bucket, plus one for above the last bound.
    buckets: [u64; 10],
    count: u64,
    sum_ms: f64,
}

impl Stats {
    pub fn request(&self, took: Duration, ok: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        let ms = took.as_secs_f64() * 1000.0;
        let i = LE_MS.iter().position(|le| ms <= *le).unwrap_or(LE_MS.len());
        let mut l = self.latency.lock().unwrap();
        l.buckets[i] += 1;
        l.count += 1;
        l.sum_ms += ms;
    }

    pub fn exhausted(&self) {
        self.exhaustion.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a Redis error; `what` the server or the client said.
    pub fn redis_error(&self, what: &str) {
        self.redis_errors.fetch_add(1, Ordering::Relaxed);
        // Redis's words when `maxclients` is reached: the one error a pool's size causes.
        if what.contains("max number of clients") {
            self.max_clients_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn observe_in_use(&self, in_use: usize) {
        self.peak_in_use.fetch_max(in_use as u64, Ordering::Relaxed);
    }

    fn cumulative(&self) -> (Vec<u64>, u64, f64) {
        let l = self.latency.lock().unwrap();
        let mut acc = 0;
        let counts = LE_MS.iter().enumerate().map(|(i, _)| {
            acc += l.buckets[i];
            acc
        });
        (counts.collect(), l.count, l.sum_ms)
    }

    /// The pool health contract served at `/health/redis`.
    pub fn contract(&self, max: usize, in_use: usize) -> serde_json::Value {
        let utilization = if max == 0 { 0.0 } else { 100.0 * in_use as f64 / max as f64 };
        let exhaustion = self.exhaustion.load(Ordering::Relaxed);
        let errors = self.redis_errors.load(Ordering::Relaxed);
        let mut recommendations = Vec::new();
        if exhaustion > 0 {
            recommendations
                .push(format!("Pool exhausted {exhaustion} times: raise REDIS_POOL_MAX_CONNECTIONS or WORKERS"));
        }
        if utilization > 80.0 {
            recommendations.push("Pool utilization above 80%: the pool is too small for this load".to_string());
        }
        if errors > 0 {
            recommendations.push(format!("{errors} Redis connection errors: check the server and maxclients"));
        }
        if recommendations.is_empty() {
            recommendations.push("Pool operating optimally".to_string());
        }
        let (counts, count, sum) = self.cumulative();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        serde_json::json!({
            "status": if exhaustion > 0 || errors > 0 { "degraded" } else { "healthy" },
            "pool": {
                "max_connections": max,
                "in_use": in_use,
                "available_connections": max.saturating_sub(in_use),
                "utilization_percent": (utilization * 100.0).round() / 100.0,
                "peak_in_use": self.peak_in_use.load(Ordering::Relaxed),
            },
            "counters": {
                "requests_total": self.requests.load(Ordering::Relaxed),
                "requests_failed_total": self.failed.load(Ordering::Relaxed),
                "pool_exhaustion_events_total": exhaustion,
                "redis_connection_errors_total": errors,
                "redis_max_clients_errors_total": self.max_clients_errors.load(Ordering::Relaxed),
            },
            "latency_ms": {"le": LE_MS, "counts": counts, "count": count, "sum": sum},
            "recommendations": recommendations,
            "timestamp": now,
        })
    }

    /// The same facts as Prometheus text at `/metrics`.
    pub fn prometheus(&self, max: usize, in_use: usize) -> String {
        let (counts, count, sum) = self.cumulative();
        let requests = self.requests.load(Ordering::Relaxed);
        let failed = self.failed.load(Ordering::Relaxed);
        let mut out = String::new();
        out += "# TYPE redis_pool_connections gauge\n";
        out += &format!("redis_pool_connections{{state=\"used\"}} {in_use}\n");
        out += &format!("redis_pool_connections{{state=\"idle\"}} {}\n", max.saturating_sub(in_use));
        out += "# TYPE redis_pool_max_connections gauge\n";
        out += &format!("redis_pool_max_connections {max}\n");
        out += "# TYPE redis_pool_timeouts_total counter\n";
        out += &format!("redis_pool_timeouts_total {}\n", self.exhaustion.load(Ordering::Relaxed));
        out += "# TYPE redis_client_errors_total counter\n";
        out += &format!("redis_client_errors_total {}\n", self.redis_errors.load(Ordering::Relaxed));
        out += "# TYPE http_requests_total counter\n";
        out += &format!("http_requests_total{{code=\"200\"}} {}\n", requests - failed);
        out += &format!("http_requests_total{{code=\"503\"}} {failed}\n");
        out += "# TYPE http_request_duration_seconds histogram\n";
        for (le, c) in LE_MS.iter().zip(&counts) {
            out += &format!("http_request_duration_seconds_bucket{{le=\"{}\"}} {c}\n", le / 1000.0);
        }
        out += &format!("http_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n");
        out += &format!("http_request_duration_seconds_sum {}\n", sum / 1000.0);
        out += &format!("http_request_duration_seconds_count {count}\n");
        out
    }
}
