//! The `Prometheus` provider: one instant PromQL query per signal, over the HTTP API.

use std::time::Duration;

use super::Unmeasured;
use crate::core::analysis::Measurements;
use crate::core::analysis::prometheus::{Scope, measurements, parse_scalar, render};
use crate::core::api::PrometheusQueries;

async fn query(
    client: &reqwest::Client,
    address: &str,
    promql: &str,
    timeout: Duration,
) -> Result<Option<f64>, Unmeasured> {
    let url = format!("{}/api/v1/query", address.trim_end_matches('/'));
    let failed = |why: String| Unmeasured::Prometheus { url: without_userinfo(&url), why };
    let resp = client
        .get(&url)
        .query(&[("query", promql)])
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| failed(e.without_url().to_string()))?;
    let body = resp.text().await.map_err(|e| failed(e.without_url().to_string()))?;
    parse_scalar(&body).map_err(|e| failed(e.to_string()))
}

/// Measures the canary through Prometheus. Any failing query fails the whole measurement.
pub async fn measure(
    client: &reqwest::Client,
    address: &str,
    q: &PrometheusQueries,
    scope: &Scope<'_>,
) -> Result<Measurements, Unmeasured> {
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

/// The URL without `user:password@`: messages reach status and Events.
fn without_userinfo(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => "the Prometheus address".into(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_in_the_address_never_reach_a_message() {
        let shown = super::without_userinfo("http://admin:s3cret@prometheus.monitoring:9090/api/v1/query");
        assert_eq!(shown, "http://prometheus.monitoring:9090/api/v1/query");
    }
}
