//! The `redispool.io/v1alpha1` API: `RedisPoolPolicy`.

mod analysis;
mod defaults;
mod report;
mod spec;
mod status;
pub mod validation;
mod verdict;

pub use analysis::*;
pub use report::*;
pub use spec::*;
pub use status::*;
pub use verdict::*;

/// The annotation through which a person steers a rollout (`kubectl annotate rpp NAME ...`).
pub const ACTION_ANNOTATION: &str = "redispool.io/action";
/// A JSON patch that removes the action annotation only while it still reads `value`: the
/// operator consuming an action and the plugin withdrawing one never remove a newer request.
pub fn remove_action_patch(value: &str) -> json_patch::Patch {
    let path = format!("/metadata/annotations/{}", ACTION_ANNOTATION.replace('~', "~0").replace('/', "~1"));
    serde_json::from_value(serde_json::json!([
        {"op": "test", "path": path, "value": value},
        {"op": "remove", "path": path},
    ]))
    .expect("a well-formed JSON patch")
}

/// The one field manager for every write the operator makes.
pub const MANAGER: &str = "redis-pool-operator";

/// Label on canary pods and the canary Deployment.
pub const TRACK_LABEL: &str = "redispool.io/track";
/// The canary Deployment is `<target>-pool-canary`.
pub fn canary_name(target: &str) -> String {
    format!("{target}-pool-canary")
}
