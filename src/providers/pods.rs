//! The `Pods` provider: GETs the pool health contract on each ready canary pod.

use std::time::Duration;

use super::Unmeasured;
use crate::core::analysis::contract::PoolHealth;

/// Fetches one pod's contract. Only the pod's own IP is dialled.
pub async fn fetch(
    client: &reqwest::Client,
    ip: &str,
    port: i32,
    path: &str,
    timeout: Duration,
) -> Result<PoolHealth, Unmeasured> {
    let url = format!("http://{ip}:{port}{path}");
    let failed = |why: String| Unmeasured::Pod { url: url.clone(), why };
    let resp = client.get(&url).timeout(timeout).send().await.map_err(|e| failed(without_url(&e)))?;
    if !resp.status().is_success() {
        return Err(failed(format!("HTTP {}", resp.status())));
    }
    resp.json::<PoolHealth>().await.map_err(|e| failed(format!("not the pool health contract: {}", without_url(&e))))
}

fn without_url(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut text = e.to_string();
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    text
}
