//! The `redispool.io/v1alpha1` API: `RedisPoolPolicy`.

mod analysis;
mod approvals;
mod defaults;
mod notifications;
mod report;
mod spec;
mod status;
pub mod validation;
mod verdict;
mod windows;

pub use analysis::*;
pub use approvals::*;
pub use notifications::*;
pub use report::*;
pub use spec::*;
pub use status::*;
pub use verdict::*;
pub use windows::*;

/// The annotation through which a person steers a rollout (`kubectl annotate rpp NAME ...`).
pub const ACTION_ANNOTATION: &str = "redispool.io/action";
/// Who asked for the action, as the plugin knows its user (`kubectl redispool approve`):
/// recorded with an approval, and removed with the action.
pub const APPROVED_BY_ANNOTATION: &str = "redispool.io/approved-by";

/// Who set the action annotation of `policy`: the user the plugin named, else the field manager
/// that wrote the annotation (`kubectl-annotate`, say).
pub fn action_by(policy: &RedisPoolPolicy) -> Option<String> {
    let meta = &policy.metadata;
    if let Some(by) = meta.annotations.as_ref().and_then(|a| a.get(APPROVED_BY_ANNOTATION)) {
        return Some(by.clone());
    }
    let key = format!("f:{ACTION_ANNOTATION}");
    meta.managed_fields.iter().flatten().find_map(|m| {
        let fields = &m.fields_v1.as_ref()?.0;
        fields.get("f:metadata")?.get("f:annotations")?.get(&key)?;
        m.manager.as_ref().map(|manager| format!("field manager {manager}"))
    })
}

/// A JSON patch that removes the action annotation only while it still reads `value` (and the
/// `approved-by` annotation read with it): the operator consuming an action and the plugin
/// withdrawing one never remove a newer request.
pub fn remove_action_patch(value: &str, approved_by: Option<&str>) -> json_patch::Patch {
    let path = |key: &str| format!("/metadata/annotations/{}", key.replace('~', "~0").replace('/', "~1"));
    let mut ops = vec![
        serde_json::json!({"op": "test", "path": path(ACTION_ANNOTATION), "value": value}),
        serde_json::json!({"op": "remove", "path": path(ACTION_ANNOTATION)}),
    ];
    if let Some(by) = approved_by {
        ops.push(serde_json::json!({"op": "test", "path": path(APPROVED_BY_ANNOTATION), "value": by}));
        ops.push(serde_json::json!({"op": "remove", "path": path(APPROVED_BY_ANNOTATION)}));
    }
    serde_json::from_value(serde_json::Value::Array(ops)).expect("a well-formed JSON patch")
}

/// Held while deleting the policy must first give its target back what a rollout took (a
/// canary, the stable's replicas, a promotion writing the target); never at rest.
pub const FINALIZER: &str = "redispool.io/restore-target";

/// A JSON patch that adds the finalizer to `current` (the policy's finalizers as read): it
/// appends, so no one else's finalizer is lost, and fails if the list changed since it was read.
pub fn add_finalizer_patch(current: Option<&[String]>) -> json_patch::Patch {
    let ops = match current {
        // No list yet: create it, unless one appeared meanwhile.
        None => serde_json::json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ]),
        Some(list) => serde_json::json!([
            {"op": "test", "path": "/metadata/finalizers", "value": list},
            {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
        ]),
    };
    serde_json::from_value(ops).expect("a well-formed JSON patch")
}

/// A JSON patch that removes the finalizer from `current`, only from the version of the policy
/// it was decided on (`resource_version`): a decision made on a stale cache fails instead of
/// releasing a policy whose rollout has begun.
pub fn remove_finalizer_patch(current: &[String], resource_version: &str) -> Option<json_patch::Patch> {
    let at = current.iter().position(|f| f == FINALIZER)?;
    let path = format!("/metadata/finalizers/{at}");
    let ops = serde_json::json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version},
        {"op": "test", "path": path, "value": FINALIZER},
        {"op": "remove", "path": path},
    ]);
    Some(serde_json::from_value(ops).expect("a well-formed JSON patch"))
}

/// The one field manager for every write the operator makes.
pub const MANAGER: &str = "redis-pool-operator";

/// Label on canary pods and the canary Deployment.
pub const TRACK_LABEL: &str = "redispool.io/track";
/// The canary Deployment is `<target>-pool-canary`.
pub fn canary_name(target: &str) -> String {
    format!("{target}-pool-canary")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patched(doc: serde_json::Value, patch: &json_patch::Patch) -> Result<serde_json::Value, String> {
        let mut doc = doc;
        json_patch::patch(&mut doc, patch).map_err(|e| e.to_string())?;
        Ok(doc)
    }

    #[test]
    fn the_finalizer_is_added_beside_anyone_elses_and_only_to_the_list_as_read() {
        // The API server's JSON patch reads a missing list as null (json_patch here does not).
        let bare = serde_json::json!({"metadata": {"resourceVersion": "7", "finalizers": null}});
        let added = patched(bare.clone(), &add_finalizer_patch(None)).unwrap();
        assert_eq!(added["metadata"]["finalizers"], serde_json::json!([FINALIZER]));
        let theirs = serde_json::json!({"metadata": {"finalizers": ["example.com/keep"]}});
        let both = patched(theirs.clone(), &add_finalizer_patch(Some(&["example.com/keep".into()]))).unwrap();
        assert_eq!(both["metadata"]["finalizers"], serde_json::json!(["example.com/keep", FINALIZER]));
        // Read before someone added theirs: the patch fails rather than overwrite the list.
        assert!(patched(theirs, &add_finalizer_patch(None)).is_err());
        assert!(patched(bare, &add_finalizer_patch(Some(&["example.com/keep".into()]))).is_err());
    }

    #[test]
    fn the_finalizer_is_removed_only_from_the_version_decided_on() {
        let list = vec!["example.com/keep".to_string(), FINALIZER.to_string()];
        let doc = serde_json::json!({"metadata": {"resourceVersion": "7", "finalizers": list}});
        let removed = patched(doc.clone(), &remove_finalizer_patch(&list, "7").unwrap()).unwrap();
        assert_eq!(removed["metadata"]["finalizers"], serde_json::json!(["example.com/keep"]));
        assert!(patched(doc, &remove_finalizer_patch(&list, "6").unwrap()).is_err(), "a stale decision");
        assert_eq!(remove_finalizer_patch(&["example.com/keep".into()], "7"), None, "nothing of ours to remove");
    }
}
