//! The `Prometheus` provider: one instant PromQL query per signal, over the HTTP API.

use std::time::Duration;

use crate::analysis::Measurements;
use crate::analysis::prometheus::{Scope, measurements, parse_scalar, render};
use crate::api::PrometheusQueries;

async fn query(
    client: &reqwest::Client,
    address: &str,
    promql: &str,
    timeout: Duration,
) -> Result<Option<f64>, String> {
    let url = format!("{}/api/v1/query", address.trim_end_matches('/'));
    let resp = client
        .get(&url)
        .query(&[("query", promql)])
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let body = resp.text().await.map_err(|e| format!("{url}: {e}"))?;
    parse_scalar(&body)
}

/// Measures the canary through Prometheus. Any failing query fails the whole measurement.
pub async fn measure(
    client: &reqwest::Client,
    address: &str,
    q: &PrometheusQueries,
    scope: &Scope<'_>,
) -> Result<Measurements, String> {
    let t = Duration::from_secs(5);
    let run = |template: &str| {
        let promql = render(template, scope);
        async move { query(client, address, &promql, t).await }
    };
    let (requests, failed, p95, util, exhaustion, errors) = futures::try_join!(
        run(&q.requests),
        run(&q.failed_requests),
        run(&q.p95_latency_ms),
        run(&q.pool_utilization),
        run(&q.pool_exhaustion_events),
        run(&q.redis_connection_errors)
    )?;
    Ok(measurements(requests, failed, p95, util, exhaustion, errors))
}
