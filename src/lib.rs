//! redis-pool-operator: rolls Redis connection pool settings out through canaries.
//!
//! The functional core (`sizing`, `analysis`, `rollout`) is pure; `api` holds the CRD types.

pub mod advice;
pub mod analysis;
pub mod api;
pub mod cli;
pub mod controller;
pub mod plan;
pub mod plugin;
pub mod promotion;
pub mod providers;
pub mod render;
pub mod rollout;
pub mod shared_budget;
pub mod sizing;
pub mod telemetry;
