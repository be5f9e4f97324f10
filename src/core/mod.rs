//! The pure core: the API types, sizing and budgets, planning, analysis verdicts, the rollout
//! decision, the verdict chain and advice. Nothing here performs I/O or imports the operator or
//! the tools.

pub mod advice;
pub mod analysis;
pub mod api;
pub mod cluster_settings;
pub mod deployments;
pub mod durations;
pub mod freeze;
pub mod hand_release;
pub mod hand_undo;
pub mod node_budget;
pub mod notify;
pub mod plan;
pub mod promotion;
pub mod render;
pub mod rollout;
pub mod shared_budget;
pub mod sizing;
