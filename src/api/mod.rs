//! The `redispool.io/v1alpha1` API: `RedisPoolPolicy`.

mod report;
mod spec;
mod status;
pub mod validation;

pub use report::*;
pub use spec::*;
pub use status::*;

/// The annotation through which a person steers a rollout (`kubectl annotate rpp NAME ...`).
pub const ACTION_ANNOTATION: &str = "redispool.io/action";
/// Label on canary pods and the canary Deployment.
pub const TRACK_LABEL: &str = "redispool.io/track";
/// The canary Deployment is `<target>-pool-canary`.
pub fn canary_name(target: &str) -> String {
    format!("{target}-pool-canary")
}
