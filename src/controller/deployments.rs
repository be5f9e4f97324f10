//! Reading the target Deployment and building the canary Deployment. Pure: no client here.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, EnvVar};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use kube::api::ObjectMeta;

use crate::api::{RedisPoolPolicy, TRACK_LABEL, canary_name};
use crate::render::{config_hash, observed_env, template_hash};
use crate::rollout::{CanaryView, TargetView};

/// The canary Deployment records the target template it was made from.
pub const TEMPLATE_HASH_ANNOTATION: &str = "redispool.io/template-hash";
pub const CONFIG_HASH_ANNOTATION: &str = "redispool.io/config-hash";
pub const POLICY_LABEL: &str = "redispool.io/policy";

/// The container the policy manages: the named one, or the first.
pub fn target_container<'a>(policy: &RedisPoolPolicy, deploy: &'a Deployment) -> Result<&'a Container, String> {
    let name = deploy.metadata.name.as_deref().unwrap_or_default();
    let containers = deploy.spec.template.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
    match &policy.spec.target_ref.container {
        Some(wanted) => containers.iter().find(|c| &c.name == wanted).ok_or_else(|| {
            let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
            format!(
                "container {wanted:?} not found in Deployment {name}; its containers are: {}; fix spec.targetRef.container",
                names.join(", ")
            )
        }),
        None => containers.first().ok_or_else(|| format!("Deployment {name} has no containers")),
    }
}

/// The owned env vars as the target's container carries them.
pub fn target_env(policy: &RedisPoolPolicy, deploy: &Deployment) -> Result<Vec<(String, String)>, String> {
    let c = target_container(policy, deploy)?;
    Ok(observed_env(&policy.spec.env_names, c.env.as_deref().unwrap_or_default()))
}

/// What the state machine needs to know about the target.
pub fn target_view(policy: &RedisPoolPolicy, deploy: &Deployment) -> Result<TargetView, String> {
    let env = target_env(policy, deploy)?;
    let spec = &deploy.spec;
    let status = deploy.status.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1);
    let generation = deploy.metadata.generation.unwrap_or(0);
    let rolled_out = status.observed_generation.unwrap_or(0) >= generation
        && status.updated_replicas.unwrap_or(0) == replicas
        && status.available_replicas.unwrap_or(0) == replicas
        && status.replicas.unwrap_or(0) == replicas;
    Ok(TargetView {
        spec_replicas: replicas,
        available: status.available_replicas.unwrap_or(0),
        rolled_out,
        config_hash: config_hash(&env),
        template_hash: template_hash(&policy.spec.env_names, &spec.template),
        max_unavailable: max_unavailable(deploy),
    })
}

/// The Deployment's own `maxUnavailable`, resolved against its replicas (rounded down, as the
/// Deployment controller does); `Recreate` tolerates losing every pod.
pub fn max_unavailable(deploy: &Deployment) -> i32 {
    let spec = &deploy.spec;
    let replicas = spec.replicas.unwrap_or(1);
    let strategy = spec.strategy.as_ref();
    if strategy.and_then(|s| s.type_.as_deref()) == Some("Recreate") {
        return replicas;
    }
    let value = strategy.and_then(|s| s.rolling_update.as_ref()).and_then(|r| r.max_unavailable.clone());
    match value {
        Some(IntOrString::Int(n)) => n.clamp(0, replicas),
        Some(IntOrString::String(s)) => percent(&s).map_or(0, |p| replicas * p / 100),
        None => replicas * 25 / 100,
    }
}

fn percent(s: &str) -> Option<i32> {
    s.strip_suffix('%')?.trim().parse().ok()
}

/// What the state machine needs to know about the canary.
pub fn canary_view(policy: &RedisPoolPolicy, deploy: &Deployment) -> CanaryView {
    let env = target_env(policy, deploy).unwrap_or_default();
    let annotations = deploy.metadata.annotations.clone().unwrap_or_default();
    CanaryView {
        spec_replicas: deploy.spec.replicas.unwrap_or(1),
        available: deploy.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0),
        config_hash: config_hash(&env),
        template_hash: annotations.get(TEMPLATE_HASH_ANNOTATION).cloned().unwrap_or_default(),
    }
}

/// The canary: the target's pod template with the new env in the managed container, the canary
/// track label on its pods and selector, and an owner reference to the policy (never to the
/// user's Deployment), so deleting the policy removes it.
pub fn build_canary(
    policy: &RedisPoolPolicy,
    target: &Deployment,
    env: &[(String, String)],
    replicas: i32,
) -> Result<Deployment, String> {
    let container = target_container(policy, target)?.name.clone();
    let target_name = target.metadata.name.clone().unwrap_or_default();
    let mut spec = target.spec.clone();
    let names = &policy.spec.env_names;
    let tpl_hash = template_hash(names, &spec.template);

    let policy_name = policy.metadata.name.clone().unwrap_or_default();
    let mut selector = spec.selector.match_labels.clone().unwrap_or_default();
    selector.insert(TRACK_LABEL.into(), "canary".into());
    selector.insert(POLICY_LABEL.into(), policy_name.clone());
    spec.selector =
        LabelSelector { match_labels: Some(selector), match_expressions: spec.selector.match_expressions.clone() };
    let meta = spec.template.metadata.get_or_insert_with(Default::default);
    let pod_labels = meta.labels.get_or_insert_with(BTreeMap::new);
    pod_labels.insert(TRACK_LABEL.into(), "canary".into());
    pod_labels.insert(POLICY_LABEL.into(), policy_name);
    if let Some(pod) = spec.template.spec.as_mut() {
        for c in pod.containers.iter_mut().filter(|c| c.name == container) {
            set_env(c, env);
        }
    }
    spec.replicas = Some(replicas);
    spec.paused = None;

    let owner = owner_reference(policy);
    let mut labels = target.metadata.labels.clone().unwrap_or_default();
    labels.insert(TRACK_LABEL.into(), "canary".into());
    labels.insert(POLICY_LABEL.into(), policy.metadata.name.clone().unwrap_or_default());
    let annotations = BTreeMap::from([
        (TEMPLATE_HASH_ANNOTATION.to_string(), tpl_hash),
        (CONFIG_HASH_ANNOTATION.to_string(), config_hash(env)),
    ]);
    Ok(Deployment {
        metadata: ObjectMeta {
            name: Some(canary_name(&target_name)),
            namespace: target.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec,
        status: None,
    })
}

/// Sets the owned env vars in a container, in place, leaving every other var as it is.
pub fn set_env(c: &mut Container, env: &[(String, String)]) {
    let vars = c.env.get_or_insert_with(Vec::new);
    for (name, value) in env {
        match vars.iter_mut().find(|v| &v.name == name) {
            Some(v) => {
                v.value = Some(value.clone());
                v.value_from = None;
            }
            None => vars.push(EnvVar { name: name.clone(), value: Some(value.clone()), value_from: None }),
        }
    }
}

/// The server-side-apply patch that writes the owned env vars and the replicas into the target:
/// only the fields the operator owns.
pub fn target_promotion_patch(container: &str, env: &[(String, String)], replicas: i32) -> serde_json::Value {
    let env: Vec<serde_json::Value> = env.iter().map(|(k, v)| serde_json::json!({"name": k, "value": v})).collect();
    serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": [{"name": container, "env": env}]}}
        }
    })
}

pub fn owner_reference(policy: &RedisPoolPolicy) -> OwnerReference {
    policy.controller_owner_ref(&()).expect("a stored policy has a name and uid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::render_env;

    fn policy() -> RedisPoolPolicy {
        let yaml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/auth-api.yaml")).unwrap();
        let mut p = crate::api::validation::parse_policy(&yaml).unwrap();
        p.metadata.uid = Some("uid-1".into());
        p
    }

    fn target() -> Deployment {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "auth-api", "namespace": "saas", "labels": {"app": "auth-api"}, "generation": 3},
            "spec": {
                "replicas": 10,
                "selector": {"matchLabels": {"app": "auth-api"}},
                "strategy": {"rollingUpdate": {"maxUnavailable": "30%"}},
                "template": {
                    "metadata": {"labels": {"app": "auth-api"}},
                    "spec": {"containers": [
                        {"name": "sidecar", "image": "proxy:1"},
                        {"name": "api", "image": "auth:7", "env": [
                            {"name": "LOG_LEVEL", "value": "info"},
                            {"name": "WORKERS", "value": "2"},
                            {"name": "REDIS_POOL_MAX_CONNECTIONS", "value": "30"}
                        ]}
                    ]}
                }
            },
            "status": {"observedGeneration": 3, "replicas": 10, "updatedReplicas": 10, "availableReplicas": 10}
        }))
        .unwrap()
    }

    #[test]
    fn canary_carries_new_env_track_label_and_owner() {
        let p = policy();
        let env = render_env(&p.spec, &p.spec.tiers[2]);
        let c = build_canary(&p, &target(), &env, 1).unwrap();
        assert_eq!(c.metadata.name.as_deref(), Some("auth-api-pool-canary"));
        let owner = &c.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.controller),
            ("RedisPoolPolicy", "auth-api", Some(true))
        );
        let spec = &c.spec;
        assert_eq!(spec.replicas, Some(1));
        let sel = spec.selector.match_labels.as_ref().unwrap();
        assert_eq!(sel.get("app").map(String::as_str), Some("auth-api"));
        assert_eq!(sel.get(TRACK_LABEL).map(String::as_str), Some("canary"));
        let pod_labels = spec.template.metadata.as_ref().unwrap().labels.as_ref().unwrap();
        assert_eq!(
            pod_labels.get("app").map(String::as_str),
            Some("auth-api"),
            "the Service still selects canary pods"
        );
        let containers = &spec.template.spec.as_ref().unwrap().containers;
        assert_eq!(containers[0].env, None, "other containers are untouched");
        let api_env = containers[1].env.as_ref().unwrap();
        let get = |k: &str| api_env.iter().find(|e| e.name == k).and_then(|e| e.value.clone());
        assert_eq!(get("LOG_LEVEL").as_deref(), Some("info"), "foreign env vars are kept");
        assert_eq!(get("WORKERS").as_deref(), Some("4"));
        assert_eq!(get("REDIS_POOL_MAX_CONNECTIONS").as_deref(), Some("40"));
        assert_eq!(containers[1].image.as_deref(), Some("auth:7"));
        // The canary's view matches the rendered configuration and the target's template.
        let view = canary_view(&p, &c);
        assert_eq!(view.config_hash, config_hash(&env));
        assert_eq!(view.template_hash, target_view(&p, &target()).unwrap().template_hash);
    }

    #[test]
    fn target_view_reads_replicas_budget_and_config() {
        let p = policy();
        let v = target_view(&p, &target()).unwrap();
        assert_eq!((v.spec_replicas, v.available, v.rolled_out, v.max_unavailable), (10, 10, true, 3));
        let mut d = target();
        d.metadata.generation = Some(4);
        assert!(!target_view(&p, &d).unwrap().rolled_out, "a newer generation is not rolled out yet");
    }

    #[test]
    fn a_missing_container_names_the_ones_there() {
        let mut p = policy();
        p.spec.target_ref.container = Some("web".into());
        let err = target_view(&p, &target()).unwrap_err();
        assert!(err.contains("\"web\" not found") && err.contains("sidecar, api"), "{err}");
    }

    #[test]
    fn max_unavailable_rules() {
        let mut d = target();
        assert_eq!(max_unavailable(&d), 3);
        d.spec.strategy = None;
        assert_eq!(max_unavailable(&d), 2, "default 25% of 10, rounded down");
        d.spec.strategy = Some(serde_json::from_value(serde_json::json!({"type": "Recreate"})).unwrap());
        assert_eq!(max_unavailable(&d), 10);
    }
}
