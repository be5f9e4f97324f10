//! The spec's defaults: the runbook's values (docs/runbook.md). Functions, because serde's
//! `default = ...` takes a path; each is named after the field it fills.

pub fn failure_limit() -> i32 {
    2
}
pub fn retry_attempts() -> i32 {
    3
}
pub fn timeout_seconds() -> i32 {
    5
}
pub fn health_check_interval_seconds() -> i32 {
    30
}
pub fn initial_backoff_ms() -> i32 {
    100
}
pub fn max_backoff_ms() -> i32 {
    2000
}
pub fn health_port() -> i32 {
    8000
}
pub fn min_requests() -> i64 {
    100
}
pub fn confidence() -> f64 {
    95.0
}
pub fn max_clients_utilization() -> f64 {
    0.8
}
pub fn success_rate_rollback() -> f64 {
    99.0
}
pub fn success_rate_promote() -> f64 {
    99.5
}
pub fn utilization_promote() -> f64 {
    60.0
}
pub fn utilization_rollback() -> f64 {
    80.0
}
pub fn p95_latency_promote_ms() -> f64 {
    500.0
}
pub fn p95_latency_rollback_ms() -> f64 {
    1000.0
}
pub fn analysis_interval() -> String {
    "30s".into()
}
pub fn promotion_soak() -> String {
    "24h".into()
}
pub fn progress_deadline() -> String {
    "1h".into()
}
pub fn no_pause() -> String {
    "0s".into()
}
pub fn health_path() -> String {
    "/health/redis".into()
}
pub fn env_environment() -> String {
    "DEPLOYMENT_ENV".into()
}
pub fn env_workers() -> String {
    "WORKERS".into()
}
pub fn env_max_connections() -> String {
    "REDIS_POOL_MAX_CONNECTIONS".into()
}
pub fn env_health_check_interval() -> String {
    "REDIS_HEALTH_CHECK_INTERVAL".into()
}
pub fn env_retry_attempts() -> String {
    "REDIS_RETRY_ATTEMPTS".into()
}
pub fn env_retry_backoff_ms() -> String {
    "REDIS_RETRY_BACKOFF_MS".into()
}
pub fn env_retry_backoff_max_ms() -> String {
    "REDIS_RETRY_BACKOFF_MAX_MS".into()
}
pub fn env_socket_timeout() -> String {
    "REDIS_SOCKET_TIMEOUT".into()
}
pub fn env_socket_connect_timeout() -> String {
    "REDIS_SOCKET_CONNECT_TIMEOUT".into()
}
