//! `kubectl redispool undo`: which configuration that succeeded to return to, and how to write it
//! into the spec (or, when GitOps owns the spec, what to change in Git instead). Pure.

use crate::core::api::{PoolSettings, RedisPoolPolicy, SucceededConfig};

/// Field managers of tools that sync a spec from Git again and again (Argo CD, Flux and its
/// kustomize and helm controllers, Rancher Fleet, kapp-controller): a value written beside them
/// is put back at their next sync. Any other writer (kubectl, a one-off script) is not.
fn syncs_from_git(manager: &str) -> bool {
    ["argocd", "flux", "kustomize-controller", "helm-controller", "fleet-agent", "kapp"]
        .iter()
        .any(|m| manager.contains(m))
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UndoError {
    #[error("no configuration has succeeded here besides the one the target runs: nothing to go back to")]
    Nothing,
    #[error("no configuration that succeeded here starts with {0:?}; those kept are: {1}")]
    Unknown(String, String),
    #[error("{0} is the configuration the target runs already")]
    Current(String),
    #[error("spec.tiers has no tier {0:?} any longer: add it back, or undo by hand")]
    NoTier(String),
}

/// The configuration to return to: the one named (a hash or its prefix), else the newest that
/// succeeded besides the one the target runs (`current`).
pub fn choose<'s>(
    succeeded: &'s [SucceededConfig],
    current: Option<&str>,
    to: Option<&str>,
) -> Result<&'s SucceededConfig, UndoError> {
    match to {
        Some(prefix) => {
            let found = succeeded.iter().find(|s| s.hash.starts_with(prefix)).ok_or_else(|| {
                let kept: Vec<&str> = succeeded.iter().map(|s| s.hash.as_str()).collect();
                UndoError::Unknown(prefix.into(), kept.join(", "))
            })?;
            match Some(found.hash.as_str()) == current {
                true => Err(UndoError::Current(found.hash.clone())),
                false => Ok(found),
            }
        }
        None => succeeded.iter().find(|s| Some(s.hash.as_str()) != current).ok_or(UndoError::Nothing),
    }
}

/// The GitOps tool that owns the pool fields of the spec (`spec.tiers`, `spec.pool`), whose next
/// sync would put its own values back.
pub fn owned_by(policy: &RedisPoolPolicy) -> Option<String> {
    policy.metadata.managed_fields.iter().flatten().find_map(|m| {
        let manager = m.manager.as_deref()?;
        let spec = m.fields_v1.as_ref()?.0.get("f:spec")?;
        let pool = spec.get("f:tiers").is_some() || spec.get("f:pool").is_some();
        (pool && syncs_from_git(manager)).then(|| manager.to_string())
    })
}

fn pool_settings(c: &SucceededConfig) -> PoolSettings {
    PoolSettings {
        health_check_interval_seconds: c.pool.health_check_interval_seconds,
        retry: c.pool.retry.clone(),
        socket_timeout_seconds: c.pool.socket_timeout_seconds,
        connect_timeout_seconds: c.pool.connect_timeout_seconds,
    }
}

/// A JSON patch that writes `c`'s values into the spec, only over the version read.
pub fn patch(policy: &RedisPoolPolicy, c: &SucceededConfig) -> Result<json_patch::Patch, UndoError> {
    let at =
        policy.spec.tiers.iter().position(|t| t.name == c.tier).ok_or_else(|| UndoError::NoTier(c.tier.clone()))?;
    let ops = serde_json::json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": policy.metadata.resource_version},
        {"op": "replace", "path": format!("/spec/tiers/{at}/workers"), "value": c.workers},
        {"op": "replace", "path": format!("/spec/tiers/{at}/connectionsPerWorker"), "value": c.pool.connections_per_worker},
        {"op": "add", "path": "/spec/pool", "value": pool_settings(c)},
    ]);
    Ok(serde_json::from_value(ops).expect("a well-formed JSON patch"))
}

/// What to change in Git: the tier's two values and the pool settings, as YAML.
pub fn git_change(c: &SucceededConfig) -> String {
    let pool = serde_yaml::to_string(&pool_settings(c)).unwrap_or_default();
    let pool: Vec<String> = pool.lines().map(|l| format!("    {l}")).collect();
    format!(
        "spec:\n  tiers:\n    - name: {}\n      workers: {}\n      connectionsPerWorker: {}\n  pool:\n{}\n",
        c.tier,
        c.workers,
        c.pool.connections_per_worker,
        pool.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, Time};

    use super::*;
    use crate::core::api::{PoolSettings, WorkerPool};

    fn config(hash: &str, workers: i32, conns: i32) -> SucceededConfig {
        SucceededConfig {
            hash: hash.into(),
            tier: "production".into(),
            workers,
            pool: WorkerPool::new(&PoolSettings::default(), conns),
            at: Time("2026-12-05T10:00:00Z".parse().unwrap()),
        }
    }

    #[test]
    fn goes_back_to_the_newest_other_configuration_or_the_one_named() {
        let kept = [config("bbb111", 4, 60), config("aaa000", 4, 40)];
        assert_eq!(choose(&kept, Some("bbb111"), None).unwrap().hash, "aaa000");
        assert_eq!(choose(&kept, Some("ccc222"), None).unwrap().hash, "bbb111", "mid-rollout: the last good one");
        assert_eq!(choose(&kept, Some("bbb111"), Some("aaa")).unwrap().hash, "aaa000");
        assert_eq!(choose(&kept, Some("bbb111"), Some("bbb")), Err(UndoError::Current("bbb111".into())));
        assert!(
            matches!(choose(&kept, None, Some("zzz")), Err(UndoError::Unknown(_, kept)) if kept == "bbb111, aaa000")
        );
        assert_eq!(choose(&kept[..1], Some("bbb111"), None), Err(UndoError::Nothing));
    }

    #[test]
    fn a_spec_gitops_writes_is_changed_in_git() {
        let mut p: RedisPoolPolicy =
            serde_yaml::from_str(include_str!("../../examples/auth-api.yaml")).expect("the example");
        let entry = |manager: &str, fields: serde_json::Value| ManagedFieldsEntry {
            manager: Some(manager.into()),
            fields_v1: Some(FieldsV1(fields)),
            ..Default::default()
        };
        p.metadata.managed_fields = Some(vec![
            entry("kubectl-client-side-apply", serde_json::json!({"f:spec": {"f:tiers": {}}})),
            entry("unknown", serde_json::json!({"f:spec": {"f:tiers": {}}})),
            entry("redis-pool-operator", serde_json::json!({"f:status": {}})),
        ]);
        assert_eq!(owned_by(&p), None);
        p.metadata
            .managed_fields
            .as_mut()
            .unwrap()
            .push(entry("argocd-controller", serde_json::json!({"f:spec": {"f:pool": {}}})));
        assert_eq!(owned_by(&p).as_deref(), Some("argocd-controller"));
        let yaml = git_change(&config("aaa000", 4, 40));
        assert!(yaml.starts_with("spec:\n  tiers:\n    - name: production\n      workers: 4\n      connectionsPerWorker: 40\n  pool:\n    healthCheckIntervalSeconds: 30\n"), "{yaml}");
        let tier = p.spec.tiers.iter().position(|t| t.name == "production").unwrap();
        let patch = serde_json::to_value(patch(&p, &config("aaa000", 4, 40)).unwrap()).unwrap();
        assert_eq!(patch[1]["path"], format!("/spec/tiers/{tier}/workers"));
        assert_eq!(patch[2]["value"], 40);
    }
}
