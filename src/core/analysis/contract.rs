//! The pool health contract (what a workload serves at `GET /health/redis`) and its aggregation
//! over the canary pods: counters diffed against a baseline, gauges at their worst. Pure; the
//! `Pods` provider in `crate::providers::pods` does the fetching.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::{Buckets, Measurements};

/// What a workload serves at `/health/redis` (the README's "The sample workload" and
/// docs/runbook.md describe the contract).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct PoolHealth {
    #[serde(default)]
    pub status: String,
    pub pool: PoolGauges,
    pub counters: Counters,
    pub latency_ms: Histogram,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct PoolGauges {
    pub max_connections: u64,
    pub in_use: u64,
    #[serde(default)]
    pub available_connections: u64,
    pub utilization_percent: f64,
    #[serde(default)]
    pub peak_in_use: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Counters {
    pub requests_total: u64,
    pub requests_failed_total: u64,
    pub pool_exhaustion_events_total: u64,
    pub redis_connection_errors_total: u64,
    /// Of the connection errors, those where the server said "max number of clients reached"
    /// (optional: a workload that does not tell them apart leaves it out).
    #[serde(default)]
    pub redis_max_clients_errors_total: u64,
}

/// Cumulative latency buckets in milliseconds, Prometheus style.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Histogram {
    pub le: Vec<f64>,
    pub counts: Vec<u64>,
    pub count: u64,
    #[serde(default)]
    pub sum: f64,
}

/// A counter's growth since the baseline; a counter that went down means the process restarted,
/// so everything it counted is new.
fn delta(now: u64, before: Option<u64>) -> u64 {
    match before {
        Some(b) if now >= b => now - b,
        _ => now,
    }
}

/// One pod's answer and when the pod was created.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub health: PoolHealth,
    pub started: Option<jiff::Timestamp>,
}

/// Pods' samples (keyed by pod uid) diffed against `baselines` and summed into one measurement.
///
/// A pod without a baseline that started after `since` (the last analysis of this rollout, or
/// with none yet) contributes everything it counted: it is a canary pod of this configuration. A
/// pod without a baseline that is older than the last analysis lost its baseline (the operator
/// restarted): its counters only become the next baseline, so an event from hours ago never
/// counts as fresh. When no pod could be diffed, the counters are no data (never a Pass).
pub fn aggregate(
    samples: &HashMap<String, Sample>,
    baselines: &HashMap<String, PoolHealth>,
    since: Option<jiff::Timestamp>,
) -> Measurements {
    if samples.is_empty() {
        return Measurements::default();
    }
    let (mut requests, mut failed, mut exhaustion, mut errors, mut max_clients) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut utilization: f64 = 0.0;
    let mut buckets: Option<(Vec<f64>, Vec<u64>)> = None;
    let mut buckets_agree = true;
    let mut diffed: i64 = 0;
    for (uid, sample) in samples {
        let s = &sample.health;
        utilization = utilization.max(s.pool.utilization_percent);
        let b = baselines.get(uid);
        let new_since_last = match (since, sample.started) {
            (None, _) => true,
            (Some(since), Some(started)) => started > since,
            (Some(_), None) => false,
        };
        if b.is_none() && !new_since_last {
            continue;
        }
        diffed += 1;
        let reset = b.is_some_and(|b| s.counters.requests_total < b.counters.requests_total);
        let b = if reset { None } else { b };
        requests += delta(s.counters.requests_total, b.map(|b| b.counters.requests_total));
        failed += delta(s.counters.requests_failed_total, b.map(|b| b.counters.requests_failed_total));
        exhaustion +=
            delta(s.counters.pool_exhaustion_events_total, b.map(|b| b.counters.pool_exhaustion_events_total));
        errors += delta(s.counters.redis_connection_errors_total, b.map(|b| b.counters.redis_connection_errors_total));
        max_clients +=
            delta(s.counters.redis_max_clients_errors_total, b.map(|b| b.counters.redis_max_clients_errors_total));
        let h = &s.latency_ms;
        let base: Vec<u64> = match b {
            Some(b) if b.latency_ms.le == h.le => b.latency_ms.counts.clone(),
            _ => vec![0; h.counts.len()],
        };
        let d: Vec<u64> =
            h.counts.iter().zip(base.iter().chain(std::iter::repeat(&0))).map(|(n, o)| n.saturating_sub(*o)).collect();
        match &mut buckets {
            None => buckets = Some((h.le.clone(), d)),
            Some((le, acc)) if *le == h.le && acc.len() == d.len() => acc.iter_mut().zip(d).for_each(|(a, x)| *a += x),
            Some(_) => buckets_agree = false,
        }
    }
    if diffed == 0 {
        return Measurements { pool_utilization: Some(utilization), ..Measurements::default() };
    }
    let success_rate = (requests > 0).then(|| 100.0 * (requests - failed.min(requests)) as f64 / requests as f64);
    let buckets = buckets.filter(|_| buckets_agree);
    let p95 = buckets.as_ref().and_then(|(le, counts)| quantile(0.95, le, counts));
    let latency = buckets.map(|(le, cumulative)| {
        let counts =
            cumulative.iter().scan(0, |below, &c| Some(c.saturating_sub(std::mem::replace(below, c)))).collect();
        Buckets { le, counts }
    });
    Measurements {
        requests: Some(requests as i64),
        success_rate,
        p95_latency_ms: p95,
        pool_utilization: Some(utilization),
        pool_exhaustion_events: Some(exhaustion as i64),
        redis_connection_errors: Some(errors as i64),
        failed_requests: Some(failed.min(requests) as i64),
        pods: Some(diffed),
        latency,
        max_clients_errors: Some(max_clients as i64),
    }
}

/// `histogram_quantile` over cumulative buckets: linear within the bucket that holds the rank.
/// Observations above the last bound report that bound (as Prometheus does for `+Inf`).
pub fn quantile(q: f64, le: &[f64], cumulative: &[u64]) -> Option<f64> {
    let total = *cumulative.last()?;
    if total == 0 || le.len() != cumulative.len() {
        return None;
    }
    let rank = q * total as f64;
    let mut prev_bound = 0.0;
    let mut prev_count = 0u64;
    for (bound, &count) in le.iter().zip(cumulative) {
        if count as f64 >= rank {
            let in_bucket = (count - prev_count) as f64;
            if in_bucket == 0.0 {
                return Some(*bound);
            }
            return Some(prev_bound + (bound - prev_bound) * (rank - prev_count as f64) / in_bucket);
        }
        prev_bound = *bound;
        prev_count = count;
    }
    le.last().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(requests: u64, failed: u64, util: f64, counts: Vec<u64>) -> PoolHealth {
        PoolHealth {
            status: "healthy".into(),
            pool: PoolGauges {
                max_connections: 160,
                in_use: 10,
                available_connections: 150,
                utilization_percent: util,
                peak_in_use: 20,
            },
            counters: Counters { requests_total: requests, requests_failed_total: failed, ..Default::default() },
            latency_ms: Histogram { le: vec![10.0, 100.0, 1000.0], count: *counts.last().unwrap(), counts, sum: 0.0 },
        }
    }

    fn at(secs: i64) -> Option<jiff::Timestamp> {
        Some(jiff::Timestamp::from_second(secs).unwrap())
    }

    fn samples(pods: Vec<(&str, PoolHealth)>) -> HashMap<String, Sample> {
        pods.into_iter().map(|(uid, health)| (uid.to_string(), Sample { health, started: at(100) })).collect()
    }

    #[test]
    fn deltas_sum_over_pods() {
        let base = HashMap::from([("a".to_string(), sample(1000, 0, 10.0, vec![900, 1000, 1000]))]);
        let now = samples(vec![
            ("a", sample(2000, 5, 30.0, vec![1800, 1990, 2000])),
            ("b", sample(1000, 5, 70.0, vec![900, 990, 1000])),
        ]);
        let m = aggregate(&now, &base, None);
        assert_eq!(m.requests, Some(2000));
        assert_eq!(m.success_rate, Some(99.5));
        assert_eq!(m.pool_utilization, Some(70.0), "the worst pod counts");
        assert_eq!((m.failed_requests, m.pods), (Some(10), Some(2)));
        let latency = m.latency.as_ref().unwrap();
        assert_eq!(latency.counts, vec![1800, 180, 20], "per bucket, not cumulative");
        // 2000 requests: 1800 <= 10ms, 1980 <= 100ms, 2000 <= 1000ms; rank 1900 -> 10 + 90 * 100/180.
        let p95 = m.p95_latency_ms.unwrap();
        assert!((p95 - 60.0).abs() < 1e-9, "{p95}");
    }

    #[test]
    fn a_restarted_pod_counts_from_zero() {
        let base = HashMap::from([("a".to_string(), sample(5000, 100, 10.0, vec![5000, 5000, 5000]))]);
        let now = samples(vec![("a", sample(300, 0, 10.0, vec![300, 300, 300]))]);
        assert_eq!(aggregate(&now, &base, None).requests, Some(300));
        assert_eq!(aggregate(&now, &base, None).success_rate, Some(100.0));
    }

    #[test]
    fn a_lost_baseline_is_only_set_never_counted() {
        let mut old = sample(5000, 400, 30.0, vec![5000, 5000, 5000]);
        old.counters.pool_exhaustion_events_total = 7;
        // The operator restarted after its last analysis at t=500; the pod started at t=100.
        let now = samples(vec![("a", old.clone())]);
        let m = aggregate(&now, &HashMap::new(), at(500));
        assert_eq!((m.requests, m.pool_exhaustion_events, m.success_rate), (None, None, None), "no stale events");
        assert_eq!(m.pool_utilization, Some(30.0), "gauges still count");
        // A pod that started after the last analysis is this configuration's: everything counts.
        let fresh = HashMap::from([("b".to_string(), Sample { health: old.clone(), started: at(600) })]);
        assert_eq!(aggregate(&fresh, &HashMap::new(), at(500)).pool_exhaustion_events, Some(7));
        // With a baseline kept in memory, only the growth counts.
        let base = HashMap::from([("a".to_string(), old.clone())]);
        assert_eq!(aggregate(&now, &base, at(500)).pool_exhaustion_events, Some(0));
    }

    #[test]
    fn no_pods_no_data() {
        assert_eq!(aggregate(&HashMap::new(), &HashMap::new(), None), Measurements::default());
        let idle = samples(vec![("a", sample(0, 0, 0.0, vec![0, 0, 0]))]);
        let m = aggregate(&idle, &HashMap::new(), None);
        assert_eq!((m.requests, m.success_rate, m.p95_latency_ms), (Some(0), None, None));
    }

    #[test]
    fn quantiles() {
        assert_eq!(quantile(0.5, &[10.0, 20.0], &[0, 100]), Some(15.0));
        assert_eq!(quantile(0.95, &[10.0, 20.0], &[100, 100]), Some(9.5));
        assert_eq!(quantile(0.95, &[], &[]), None);
    }
}
