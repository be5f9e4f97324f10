//! What a rollout leaves behind for other policies and for people: the verdict on a worker pool,
//! and pool size advice. Stored in status, so defined here; the rules that make and read them are
//! in `core::promotion` and `core::advice`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::RetrySettings;

/// The per-worker pool configuration: what a verdict proves, and what a requirement compares.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WorkerPool {
    pub connections_per_worker: i32,
    pub health_check_interval_seconds: i32,
    pub retry: RetrySettings,
    pub socket_timeout_seconds: i32,
    pub connect_timeout_seconds: i32,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerdictResult {
    /// Promoted, and no analysis after the promotion has failed (yet).
    Succeeded,
    /// Rolled back (by its gates, its deadline, or a person's abort).
    RolledBack,
    /// Promoted, then failed the analyses that watch it after the promotion.
    Failed,
}

/// How a rollout of one worker pool ended, and how long it has run cleanly since.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutVerdict {
    /// The pool configuration rolled out (all the env vars the operator owns).
    pub hash: String,
    /// The per-worker pool it proves ([`WorkerPool::hash`]).
    pub pool_hash: String,
    pub pool: WorkerPool,
    /// The tier it ran in.
    pub environment: String,
    pub result: VerdictResult,
    /// When the rollout ended (the promotion completed, or the rollback).
    pub finished_at: Time,
    /// Clean soak after the promotion: time between consecutive passing analyses of the target.
    #[serde(default)]
    pub soaked_seconds: i64,
    /// The last passing analysis, while the soak runs (none after one that did not pass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean_at: Option<Time>,
    /// Analyses since the promotion.
    #[serde(default)]
    pub analyses: i32,
    /// Why it rolled back or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why analyses stopped watching it before it soaked `spec.promotion.soak`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watch_ended: Option<String>,
}

/// Pool size advice: what the analyses saw suggests another `connectionsPerWorker`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Advice {
    /// The connectionsPerWorker advised.
    pub connections_per_worker: i32,
    /// Redis connections the change frees (negative: it needs more).
    pub frees_connections: i64,
    pub message: String,
}
