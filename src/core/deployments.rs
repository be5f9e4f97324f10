//! Reading the target Deployment and building the canary Deployment. Pure: no client here.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, EnvVar};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, LabelSelector, ManagedFieldsEntry, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use kube::api::ObjectMeta;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;

use crate::core::api::MANAGER;
use crate::core::api::{RedisPoolPolicy, TRACK_LABEL, canary_name};
use crate::core::render::{config_hash, observed_env, owned_names, template_hash};
use crate::core::rollout::{CanaryView, HpaView, TargetView, Unusable, Writer};

/// The canary Deployment records the target template it was made from.
pub const TEMPLATE_HASH_ANNOTATION: &str = "redispool.io/template-hash";
pub const CONFIG_HASH_ANNOTATION: &str = "redispool.io/config-hash";
pub const POLICY_LABEL: &str = "redispool.io/policy";
/// kubectl's client-side apply keeps a whole copy of the object here.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The container the policy manages: the named one, or the first.
pub fn target_container<'a>(policy: &RedisPoolPolicy, deploy: &'a Deployment) -> Result<&'a Container, Unusable> {
    let deployment = deploy.metadata.name.clone().unwrap_or_default();
    let containers = deploy.spec.template.spec.as_ref().map(|s| s.containers.as_slice()).unwrap_or_default();
    match &policy.spec.target_ref.container {
        Some(wanted) => containers.iter().find(|c| &c.name == wanted).ok_or_else(|| Unusable::NoSuchContainer {
            deployment,
            wanted: wanted.clone(),
            found: containers.iter().map(|c| c.name.clone()).collect(),
        }),
        None => containers.first().ok_or(Unusable::NoContainers { deployment }),
    }
}

/// The owned env vars as the target's container carries them.
pub fn target_env(policy: &RedisPoolPolicy, deploy: &Deployment) -> Result<Vec<(String, String)>, Unusable> {
    let c = target_container(policy, deploy)?;
    Ok(observed_env(&policy.spec.env_names, c.env.as_deref().unwrap_or_default()))
}

/// Why the operator must not write the target's pool env: a var it owns is set from a ConfigMap
/// or Secret. Writing `value` beside another manager's `valueFrom` is refused by the API server.
fn value_from_problem(policy: &RedisPoolPolicy, c: &Container) -> Option<Unusable> {
    let owned = owned_names(&policy.spec.env_names);
    let vars: Vec<String> = c
        .env
        .iter()
        .flatten()
        .filter(|e| e.value_from.is_some() && owned.contains(&e.name.as_str()))
        .map(|e| e.name.clone())
        .collect();
    (!vars.is_empty()).then(|| Unusable::ValueFrom { container: c.name.clone(), vars })
}

/// What the state machine needs to know about the target. A target whose container is missing
/// is still observed (its replicas matter to a rollout in flight), but marked unusable.
pub fn target_view(policy: &RedisPoolPolicy, deploy: &Deployment, hpa: Option<HpaView>) -> TargetView {
    let (env, unusable, container) = match target_container(policy, deploy) {
        Ok(c) => (
            observed_env(&policy.spec.env_names, c.env.as_deref().unwrap_or_default()),
            value_from_problem(policy, c),
            Some(c.name.clone()),
        ),
        Err(why) => (vec![], Some(why), None),
    };
    let spec = &deploy.spec;
    let status = deploy.status.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1);
    let generation = deploy.metadata.generation.unwrap_or(0);
    let rolled_out = status.observed_generation.unwrap_or(0) >= generation
        && status.updated_replicas.unwrap_or(0) == replicas
        && status.available_replicas.unwrap_or(0) == replicas
        && status.replicas.unwrap_or(0) == replicas;
    let env_writers = container.map(|c| env_writers(policy, deploy, &c)).unwrap_or_default();
    TargetView {
        uid: deploy.metadata.uid.clone().unwrap_or_default(),
        spec_replicas: replicas,
        available: status.available_replicas.unwrap_or(0),
        rolled_out,
        config_hash: if unusable.is_some() { String::new() } else { config_hash(&env) },
        connections_per_pod: crate::core::render::observed_connections_per_pod(&policy.spec.env_names, &env),
        template_hash: template_hash(&policy.spec.env_names, &spec.template),
        max_unavailable: max_unavailable(deploy),
        max_surge: max_surge(deploy),
        unusable,
        replicas_writer: replicas_writer(deploy),
        env_writers,
        hpa,
    }
}

/// The managedFields entries of other managers, with their field sets.
fn foreign_fields(deploy: &Deployment) -> impl Iterator<Item = (String, Option<jiff::Timestamp>, &serde_json::Value)> {
    deploy.metadata.managed_fields.iter().flatten().filter_map(|m| {
        let manager = m.manager.clone()?;
        (manager != MANAGER).then_some(())?;
        Some((manager, m.time.as_ref().map(|t| t.0), &m.fields_v1.as_ref()?.0))
    })
}

/// Keeps of a Deployment what decisions read, for the cache: every Deployment of the watched
/// namespaces is held in memory, so each one costs what it keeps. Gone: the client-side-apply copy
/// of the object, the status conditions (messages and times nobody here reads) and, of the
/// managedFields, all but who else writes the replicas or a container's env values (and when).
pub fn slim(deploy: &mut Deployment) {
    if let Some(a) = deploy.metadata.annotations.as_mut() {
        a.remove(LAST_APPLIED_ANNOTATION);
    }
    if let Some(s) = deploy.status.as_mut() {
        s.conditions = None;
    }
    if let Some(entries) = deploy.metadata.managed_fields.take() {
        let kept: Vec<_> = entries
            .into_iter()
            .filter(|m| m.manager.as_deref() != Some(MANAGER))
            .filter_map(|m| {
                let fields = writes_we_read(&m.fields_v1.as_ref()?.0)?;
                Some(ManagedFieldsEntry {
                    manager: m.manager,
                    time: m.time,
                    fields_v1: Some(FieldsV1(fields)),
                    ..Default::default()
                })
            })
            .collect();
        deploy.metadata.managed_fields = (!kept.is_empty()).then_some(kept);
    }
}

/// Of a field set, what decisions read, as a compact list: `replicas` when it sets
/// `spec.replicas`, and `env=CONTAINER=VAR` for each env value it sets (neither name can hold a
/// `=`); None when it has neither. Kept as the nested field set, this was kilobytes of JSON maps
/// per Deployment, the largest part of the cache (a heap profile at 1,000 Deployments: 12 MB).
fn writes_we_read(fields: &serde_json::Value) -> Option<serde_json::Value> {
    use serde_json::Value;
    let mut kept = vec![];
    if fields.pointer(REPLICAS_FIELD).is_some() {
        kept.push(Value::from(REPLICAS_WRITE));
    }
    let containers = fields.pointer(CONTAINERS_FIELD).and_then(Value::as_object).into_iter().flatten();
    for (container_key, c) in containers {
        let Some(container) = keyed_name(container_key) else { continue };
        let env = c.get("f:env").and_then(Value::as_object).into_iter().flatten();
        for (var_key, _) in env.filter(|(_, e)| e.get("f:value").is_some()) {
            if let Some(var) = keyed_name(var_key) {
                kept.push(Value::from(env_write(&container, &var)));
            }
        }
    }
    (!kept.is_empty()).then_some(Value::Array(kept))
}

const REPLICAS_FIELD: &str = "/f:spec/f:replicas";
const CONTAINERS_FIELD: &str = "/f:spec/f:template/f:spec/f:containers";
const REPLICAS_WRITE: &str = "replicas";

fn env_write(container: &str, var: &str) -> String {
    format!("env={container}={var}")
}

/// The name in a field set's list-item key, `k:{"name":"api"}`.
fn keyed_name(key: &str) -> Option<String> {
    let item: serde_json::Value = serde_json::from_str(key.strip_prefix("k:")?).ok()?;
    Some(item.get("name")?.as_str()?.to_string())
}

/// The list-item key of `name` in a field set.
fn item_key(name: &str) -> String {
    format!("k:{}", serde_json::json!({ "name": name }))
}

/// Whether a field set (whole, from the API server, or kept by `slim`) sets `spec.replicas`.
fn writes_replicas(fields: &serde_json::Value) -> bool {
    match fields {
        serde_json::Value::Array(kept) => kept.iter().any(|k| k == REPLICAS_WRITE),
        whole => whole.pointer(REPLICAS_FIELD).is_some(),
    }
}

/// Whether a field set (whole or kept by `slim`) sets the value of env var `var` of `container`.
fn writes_env_value(fields: &serde_json::Value, container: &str, var: &str) -> bool {
    match fields {
        serde_json::Value::Array(kept) => {
            let write = env_write(container, var);
            kept.iter().any(|k| k.as_str() == Some(write.as_str()))
        }
        // Owning the value is what counts: after a forced apply the earlier owner may still
        // share the entry's name.
        whole => whole
            .pointer(CONTAINERS_FIELD)
            .and_then(|c| c.get(item_key(container)))
            .and_then(|c| c.get("f:env"))
            .and_then(|env| env.get(item_key(var)))
            .and_then(|e| e.get("f:value"))
            .is_some(),
    }
}

/// The last manager other than the operator that wrote `spec.replicas` (an HPA writes it through
/// the scale subresource, `kubectl scale` and GitOps tools directly).
pub fn replicas_writer(deploy: &Deployment) -> Option<Writer> {
    foreign_fields(deploy)
        .filter(|(_, _, f)| writes_replicas(f))
        .max_by_key(|(_, at, _)| *at)
        .map(|(manager, at, _)| Writer { manager, at, fields: vec![] })
}

/// Managers other than the operator that own pool env vars of `container`, with the vars.
pub fn env_writers(policy: &RedisPoolPolicy, deploy: &Deployment, container: &str) -> Vec<Writer> {
    let owned = owned_names(&policy.spec.env_names);
    foreign_fields(deploy)
        .filter_map(|(manager, at, f)| {
            let fields: Vec<String> =
                owned.iter().filter(|n| writes_env_value(f, container, n)).map(|n| n.to_string()).collect();
            (!fields.is_empty()).then_some(Writer { manager, at, fields })
        })
        .collect()
}

/// The HPA among `hpas` that scales the Deployment `name`, as the core sees it.
pub fn hpa_for<'a>(hpas: impl IntoIterator<Item = &'a HorizontalPodAutoscaler>, name: &str) -> Option<HpaView> {
    hpas.into_iter().find(|h| h.spec.scale_target_ref.kind == "Deployment" && h.spec.scale_target_ref.name == name).map(
        |h| HpaView {
            name: h.metadata.name.clone().unwrap_or_default(),
            min_replicas: h.spec.min_replicas.unwrap_or(1),
            max_replicas: h.spec.max_replicas,
        },
    )
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

/// The Deployment's own `maxSurge` (25% by default); `Recreate` surges nothing.
pub fn max_surge(deploy: &Deployment) -> crate::core::sizing::Surge {
    use crate::core::sizing::Surge;
    let strategy = deploy.spec.strategy.as_ref();
    if strategy.and_then(|s| s.type_.as_deref()) == Some("Recreate") {
        return Surge::Pods(0);
    }
    match strategy.and_then(|s| s.rolling_update.as_ref()).and_then(|r| r.max_surge.clone()) {
        Some(IntOrString::Int(n)) => Surge::Pods(n),
        Some(IntOrString::String(s)) => percent(&s).map_or(Surge::Percent(25), Surge::Percent),
        None => Surge::Percent(25),
    }
}

fn percent(s: &str) -> Option<i32> {
    s.strip_suffix('%')?.trim().parse().ok()
}

/// What the state machine needs to know about the canary. `expected` is the canary the operator
/// would apply now: a canary whose pod template or selector differs from it (a person edited it)
/// reports no template, so the core applies it again.
pub fn canary_view(policy: &RedisPoolPolicy, deploy: &Deployment, expected: Option<&Deployment>) -> CanaryView {
    let env = target_env(policy, deploy).unwrap_or_default();
    let annotations = deploy.metadata.annotations.clone().unwrap_or_default();
    let edited = expected.is_some_and(|e| e.spec.template != deploy.spec.template);
    let as_built = expected.is_some_and(|e| !edited && e.spec.selector == deploy.spec.selector);
    let owner = deploy.metadata.owner_references.iter().flatten().find(|o| o.controller == Some(true));
    let foreign_owner = match owner {
        Some(o) if Some(&o.uid) == policy.metadata.uid.as_ref() => None,
        Some(o) => Some(format!("{} {}", o.kind, o.name)),
        None => Some("no controller (it was not made by the operator)".into()),
    };
    CanaryView {
        spec_replicas: deploy.spec.replicas.unwrap_or(1),
        available: deploy.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0),
        config_hash: config_hash(&env),
        template_hash: if as_built {
            annotations.get(TEMPLATE_HASH_ANNOTATION).cloned().unwrap_or_default()
        } else {
            String::new()
        },
        foreign_owner,
        edited,
    }
}

/// Labels and annotations by which GitOps tools and Helm track what they manage: a canary that
/// carried them would look like part of the app to Argo CD (and be pruned), or to Helm.
pub fn is_tracking_key(key: &str) -> bool {
    const EXACT: [&str; 2] = ["app.kubernetes.io/instance", "app.kubernetes.io/managed-by"];
    const PREFIXES: [&str; 4] = ["argocd.argoproj.io/", "kustomize.toolkit.fluxcd.io/", "helm.sh/", "meta.helm.sh/"];
    EXACT.contains(&key) || PREFIXES.iter().any(|p| key.starts_with(p))
}

/// The canary: the target's pod template with the new env in the managed container, the canary
/// track label on its pods and selector, and an owner reference to the policy (never to the
/// user's Deployment), so deleting the policy removes it.
pub fn build_canary(
    policy: &RedisPoolPolicy,
    target: &Deployment,
    env: &[(String, String)],
    replicas: i32,
) -> Result<Deployment, Unusable> {
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
    labels.retain(|k, _| !is_tracking_key(k));
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

/// The server-side-apply patch that writes the owned env vars into the target, and nothing else.
/// Replicas never go through this apply: a field an applier stops sending is removed when nobody
/// else owns it, so an apply that sometimes carried replicas could one day reset them.
pub fn target_env_patch(container: &str, env: &[(String, String)]) -> serde_json::Value {
    let env: Vec<serde_json::Value> = env.iter().map(|(k, v)| serde_json::json!({"name": k, "value": v})).collect();
    serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "spec": {"template": {"spec": {"containers": [{"name": container, "env": env}]}}}
    })
}

pub fn owner_reference(policy: &RedisPoolPolicy) -> OwnerReference {
    policy.controller_owner_ref(&()).expect("a stored policy has a name and uid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::render::render_env;

    fn policy() -> RedisPoolPolicy {
        let yaml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/auth-api.yaml")).unwrap();
        let mut p = crate::core::api::validation::parse_policy(&yaml).unwrap();
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
        let view = canary_view(&p, &c, Some(&c));
        assert_eq!(view.config_hash, config_hash(&env));
        assert_eq!(view.template_hash, target_view(&p, &target(), None).template_hash);
        assert_eq!(view.foreign_owner, None, "owned by this policy");
    }

    #[test]
    fn a_canary_edited_by_a_person_or_owned_by_another_is_told_apart() {
        let p = policy();
        let env = render_env(&p.spec, &p.spec.tiers[2]);
        let built = build_canary(&p, &target(), &env, 1).unwrap();
        let mut edited = built.clone();
        edited.spec.template.spec.as_mut().unwrap().containers[1].image = Some("auth:8".into());
        assert_eq!(canary_view(&p, &edited, Some(&built)).template_hash, "", "an edit makes the core apply it again");
        let mut other = p.clone();
        other.metadata.uid = Some("uid-2".into());
        let view = canary_view(&other, &built, Some(&built));
        assert_eq!(view.foreign_owner.as_deref(), Some("RedisPoolPolicy auth-api"));
        let mut orphan = built.clone();
        orphan.metadata.owner_references = None;
        assert!(canary_view(&p, &orphan, Some(&built)).foreign_owner.is_some(), "a canary nobody owns is not ours");
    }

    #[test]
    fn the_canary_carries_no_gitops_or_helm_tracking() {
        let p = policy();
        let mut t = target();
        let labels = t.metadata.labels.get_or_insert_with(Default::default);
        for k in [
            "app.kubernetes.io/instance",
            "app.kubernetes.io/managed-by",
            "argocd.argoproj.io/instance",
            "kustomize.toolkit.fluxcd.io/name",
            "helm.sh/chart",
        ] {
            labels.insert(k.into(), "x".into());
        }
        t.metadata.annotations = Some(BTreeMap::from([(
            "argocd.argoproj.io/tracking-id".to_string(),
            "app:apps/Deployment:saas/auth-api".to_string(),
        )]));
        let c = build_canary(&p, &t, &render_env(&p.spec, &p.spec.tiers[2]), 1).unwrap();
        let labels = c.metadata.labels.unwrap();
        assert!(labels.keys().all(|k| !is_tracking_key(k)), "{labels:?}");
        assert_eq!(labels.get("app").map(String::as_str), Some("auth-api"), "other labels stay");
        assert!(c.metadata.annotations.unwrap().keys().all(|k| !is_tracking_key(k)));
        // The pods keep every label: a Service may select on app.kubernetes.io/instance.
        assert_eq!(c.spec.template.metadata.unwrap().labels.unwrap().get("app").map(String::as_str), Some("auth-api"));
    }

    fn managed(manager: &str, time: &str, fields: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"manager": manager, "operation": "Apply", "apiVersion": "apps/v1", "time": time,
                           "fieldsType": "FieldsV1", "fieldsV1": fields})
    }

    #[test]
    fn managed_fields_name_the_other_writers() {
        let p = policy();
        let mut d = target();
        let env_fields = serde_json::json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
        "k:{\"name\":\"api\"}": {"f:env": {
            "k:{\"name\":\"WORKERS\"}": {".": {}, "f:name": {}, "f:value": {}},
            "k:{\"name\":\"LOG_LEVEL\"}": {".": {}, "f:name": {}, "f:value": {}}
        }}}}}}});
        d.metadata.managed_fields = Some(
            serde_json::from_value(serde_json::json!([
                managed("argocd-controller", "2026-01-01T00:00:00Z", env_fields),
                // A co-owner of the entry's name only: not a writer of the value.
                managed("kubectl-client-side-apply", "2026-01-01T00:07:00Z", serde_json::json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
                    "k:{\"name\":\"api\"}": {"f:env": {"k:{\"name\":\"REDIS_POOL_MAX_CONNECTIONS\"}": {".": {}, "f:name": {}}}}}}}}})),
                managed(
                    "kube-controller-manager",
                    "2026-01-01T00:05:00Z",
                    serde_json::json!({"f:spec": {"f:replicas": {}}})
                ),
                managed(MANAGER, "2026-01-01T00:09:00Z", serde_json::json!({"f:spec": {"f:replicas": {}}})),
            ]))
            .unwrap(),
        );
        let v = target_view(&p, &d, None);
        let w = v.replicas_writer.unwrap();
        assert_eq!(w.manager, "kube-controller-manager", "the operator's own writes are not another writer");
        assert_eq!(w.at, Some("2026-01-01T00:05:00Z".parse().unwrap()));
        assert_eq!(v.env_writers.len(), 1);
        assert_eq!(
            (v.env_writers[0].manager.as_str(), v.env_writers[0].fields.clone()),
            ("argocd-controller", vec!["WORKERS".to_string()])
        );
    }

    #[test]
    fn a_slim_target_reads_the_same_and_keeps_less() {
        let p = policy();
        let mut d = target();
        let env_fields = serde_json::json!({"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:replicas": {},
        "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"api\"}": {"f:image": {}, "f:env": {
            "k:{\"name\":\"WORKERS\"}": {".": {}, "f:name": {}, "f:value": {}},
            "k:{\"name\":\"REDIS_POOL_MAX_CONNECTIONS\"}": {".": {}, "f:name": {}}
        }}}}}}});
        d.metadata.managed_fields = Some(
            serde_json::from_value(serde_json::json!([
                managed("kubectl-client-side-apply", "2026-01-01T00:07:00Z", env_fields),
                managed(
                    "kube-controller-manager",
                    "2026-01-01T00:05:00Z",
                    serde_json::json!({"f:status": {"f:replicas": {}}})
                ),
                managed(MANAGER, "2026-01-01T00:09:00Z", serde_json::json!({"f:spec": {"f:replicas": {}}})),
            ]))
            .unwrap(),
        );
        d.metadata.annotations = Some(BTreeMap::from([
            (LAST_APPLIED_ANNOTATION.to_string(), "{...}".to_string()),
            (TEMPLATE_HASH_ANNOTATION.to_string(), "abc".to_string()),
        ]));
        d.status.as_mut().unwrap().conditions = Some(vec![Default::default()]);
        let before = target_view(&p, &d, None);
        let canary_before = build_canary(&p, &d, &[], 1).unwrap();
        let mut slimmed = d.clone();
        slim(&mut slimmed);
        assert_eq!(target_view(&p, &slimmed, None), before, "decisions read the same");
        assert_eq!(build_canary(&p, &slimmed, &[], 1).unwrap(), canary_before, "the canary is built the same");
        assert_eq!(before.env_writers.len(), 1, "the fixture has a writer of a pool var");
        assert!(before.replicas_writer.is_some(), "and of the replicas");
        let kept = slimmed.metadata.managed_fields.as_ref().unwrap();
        assert_eq!(kept.len(), 1, "only the entry with fields we read stays: {kept:?}");
        assert_eq!(kept[0].fields_v1.as_ref().unwrap().0, serde_json::json!(["replicas", "env=api=WORKERS"]));
        let annotations = slimmed.metadata.annotations.unwrap();
        assert!(!annotations.contains_key(LAST_APPLIED_ANNOTATION));
        assert!(annotations.contains_key(TEMPLATE_HASH_ANNOTATION), "the canary's own annotations stay");
        assert_eq!(slimmed.status.unwrap().conditions, None);
    }

    #[test]
    fn value_from_on_a_pool_var_makes_the_target_unusable() {
        let p = policy();
        let mut d = target();
        let env = d.spec.template.spec.as_mut().unwrap().containers[1].env.as_mut().unwrap();
        env[1] = serde_json::from_value(serde_json::json!({"name": "WORKERS", "valueFrom": {"configMapKeyRef": {"name": "pool", "key": "workers"}}})).unwrap();
        let why = target_view(&p, &d, None).unusable.unwrap().to_string();
        assert!(why.contains("WORKERS") && why.contains("valueFrom") && why.contains("spec.envNames"), "{why}");
    }

    #[test]
    fn the_hpa_of_a_deployment_is_found_by_its_scale_target() {
        let hpa = |name: &str, kind: &str, target: &str| -> HorizontalPodAutoscaler {
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target},
                "maxReplicas": 12}}))
            .unwrap()
        };
        let all = [
            hpa("other", "Deployment", "web"),
            hpa("sts", "StatefulSet", "auth-api"),
            hpa("auth", "Deployment", "auth-api"),
        ];
        assert_eq!(hpa_for(&all, "auth-api"), Some(HpaView { name: "auth".into(), min_replicas: 1, max_replicas: 12 }));
        assert_eq!(hpa_for(&all, "none"), None);
    }

    #[test]
    fn target_view_reads_replicas_budget_and_config() {
        let p = policy();
        let v = target_view(&p, &target(), None);
        assert_eq!((v.spec_replicas, v.available, v.rolled_out, v.max_unavailable), (10, 10, true, 3));
        assert_eq!(v.connections_per_pod, Some(60));
        let mut d = target();
        d.metadata.generation = Some(4);
        assert!(!target_view(&p, &d, None).rolled_out, "a newer generation is not rolled out yet");
    }

    #[test]
    fn a_missing_container_names_the_ones_there() {
        let mut p = policy();
        p.spec.target_ref.container = Some("web".into());
        let err = target_view(&p, &target(), None).unusable.unwrap().to_string();
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

    /// The target's own maxSurge is what its rolling update adds during a promotion: rounded up
    /// (as the Deployment controller does), 25% by default, nothing for Recreate.
    #[test]
    fn max_surge_rules() {
        use crate::core::sizing::Surge;
        let mut d = target();
        let strategy = |v| Some(serde_json::from_value(v).unwrap());
        d.spec.strategy = strategy(serde_json::json!({"rollingUpdate": {"maxSurge": "50%"}}));
        assert_eq!((max_surge(&d), max_surge(&d).resolve(10)), (Surge::Percent(50), 5));
        d.spec.strategy = strategy(serde_json::json!({"rollingUpdate": {"maxSurge": 4}}));
        assert_eq!(max_surge(&d).resolve(10), 4);
        d.spec.strategy = None;
        assert_eq!(max_surge(&d).resolve(10), 3, "25% of 10, rounded up");
        d.spec.strategy = strategy(serde_json::json!({"type": "Recreate"}));
        assert_eq!(max_surge(&d).resolve(10), 0);
    }
}
