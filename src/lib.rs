//! redis-pool-operator: rolls Redis connection pool settings out through canaries.
//!
//! Layers, each importing only from the ones listed before it (ARCHITECTURE.md draws them):
//! - `core`: pure decisions and the API types; no I/O, no client.
//! - `providers`: the network reads of measurements (pool health from pods, Prometheus, the Redis
//!   server itself), shared by the operator and the tools.
//! - `operator`: the controller that observes the cluster, asks the core, acts and records.
//! - `tools`: the command line and the kubectl plugin; they use the core and talk to the cluster
//!   themselves, never through the operator's insides.

pub mod core;
pub mod operator;
pub mod providers;
pub mod tools;
