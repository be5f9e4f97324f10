//! PromQL for the `Prometheus` provider: the query templates and the answers. Pure; the HTTP
//! calls are in `crate::providers::prometheus`.

use serde::Deserialize;

/// Values for the query placeholders.
pub struct Scope<'a> {
    pub namespace: &'a str,
    pub deployment: &'a str,
    pub track: &'a str,
    pub interval: &'a str,
}

/// Fills `{{namespace}}`, `{{deployment}}`, `{{track}}` and `{{interval}}`.
pub fn render(template: &str, s: &Scope) -> String {
    template
        .replace("{{namespace}}", s.namespace)
        .replace("{{deployment}}", s.deployment)
        .replace("{{track}}", s.track)
        .replace("{{interval}}", s.interval)
}

#[derive(Deserialize)]
struct Response {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    result: serde_json::Value,
}

/// Why an answer of Prometheus's query API holds no number.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadAnswer {
    #[error("not a Prometheus API answer: {0}")]
    NotAnAnswer(String),
    #[error("{0}")]
    QueryFailed(String),
    #[error("no data in the answer")]
    NoData,
    #[error("the query returned {0} series; aggregate it to one")]
    ManySeries(usize),
    #[error("unsupported result type {0}")]
    ResultType(String),
    #[error("no sample value")]
    NoValue,
    #[error("sample {0:?} is not a number")]
    NotANumber(String),
}

/// The single number of an instant query's answer; `None` for an empty vector (no data).
pub fn parse_scalar(body: &str) -> Result<Option<f64>, BadAnswer> {
    let r: Response = serde_json::from_str(body).map_err(|e| BadAnswer::NotAnAnswer(e.to_string()))?;
    if r.status != "success" {
        return Err(BadAnswer::QueryFailed(r.error.unwrap_or_else(|| "query failed".into())));
    }
    let data = r.data.ok_or(BadAnswer::NoData)?;
    let value = match data.result_type.as_str() {
        "vector" => match data.result.as_array().map(Vec::as_slice) {
            Some([]) => return Ok(None),
            Some([one]) => one.get("value").cloned(),
            Some(many) => return Err(BadAnswer::ManySeries(many.len())),
            None => None,
        },
        "scalar" => Some(data.result.clone()),
        other => return Err(BadAnswer::ResultType(other.into())),
    };
    let text = value.as_ref().and_then(|v| v.get(1)).and_then(|v| v.as_str()).ok_or(BadAnswer::NoValue)?;
    let v: f64 = text.parse().map_err(|_| BadAnswer::NotANumber(text.into()))?;
    Ok(v.is_finite().then_some(v))
}

/// The six answers (requests, failed, p95, utilization, exhaustion, errors) as measurements.
pub fn measurements(
    requests: Option<f64>,
    failed: Option<f64>,
    p95: Option<f64>,
    util: Option<f64>,
    exhaustion: Option<f64>,
    errors: Option<f64>,
) -> super::Measurements {
    let success_rate = match (requests, failed) {
        (Some(r), f) if r > 0.0 => Some(100.0 * (r - f.unwrap_or(0.0)).max(0.0) / r),
        _ => None,
    };
    super::Measurements {
        requests: requests.map(|r| r.round() as i64),
        success_rate,
        p95_latency_ms: p95,
        pool_utilization: util,
        // An empty vector for a counter means it never moved.
        pool_exhaustion_events: Some(exhaustion.unwrap_or(0.0).round() as i64),
        redis_connection_errors: Some(errors.unwrap_or(0.0).round() as i64),
        failed_requests: requests.map(|r| failed.unwrap_or(0.0).clamp(0.0, r).round() as i64),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::api::PrometheusQueries;

    #[test]
    fn renders_placeholders() {
        let s = Scope { namespace: "saas", deployment: "auth-api-pool-canary", track: "canary", interval: "30s" };
        let q = PrometheusQueries::default();
        assert_eq!(
            render(&q.requests, &s),
            r#"sum(increase(http_requests_total{namespace="saas",redispool_io_track="canary",pod=~"auth-api-pool-canary-[a-z0-9]+-[a-z0-9]+"}[30s]))"#
        );
        assert!(render(&q.failed_requests, &s).contains(r#"code=~"5..""#));
    }

    #[test]
    fn parses_answers() {
        let one = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"12.5"]}]}}"#;
        assert_eq!(parse_scalar(one), Ok(Some(12.5)));
        let empty = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(parse_scalar(empty), Ok(None));
        let nan = r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"NaN"]}}"#;
        assert_eq!(parse_scalar(nan), Ok(None), "NaN is no data");
        let two =
            r#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"1"]},{"value":[1,"2"]}]}}"#;
        assert_eq!(parse_scalar(two), Err(BadAnswer::ManySeries(2)));
        let bad = r#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#;
        assert_eq!(parse_scalar(bad), Err(BadAnswer::QueryFailed("parse error at char 5".into())));
    }
}
