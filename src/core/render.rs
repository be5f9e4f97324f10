//! The env contract: a tier rendered into the env vars the operator owns, and the hashes that
//! identify a pool configuration and the rest of a pod template. Pure.

use k8s_openapi::api::core::v1::{EnvVar, PodTemplateSpec};
use sha2::{Digest, Sha256};

use crate::core::api::{EnvNames, RedisPoolPolicySpec, Tier};

/// The env vars for `tier`, in a fixed order.
pub fn render_env(spec: &RedisPoolPolicySpec, tier: &Tier) -> Vec<(String, String)> {
    let n = &spec.env_names;
    let p = &spec.pool;
    vec![
        (n.environment.clone(), tier.name.clone()),
        (n.workers.clone(), tier.workers.to_string()),
        (n.max_connections.clone(), tier.connections_per_worker.to_string()),
        (n.health_check_interval.clone(), p.health_check_interval_seconds.to_string()),
        (n.retry_attempts.clone(), p.retry.attempts.to_string()),
        (n.retry_backoff_ms.clone(), p.retry.initial_backoff_ms.to_string()),
        (n.retry_backoff_max_ms.clone(), p.retry.max_backoff_ms.to_string()),
        (n.socket_timeout.clone(), p.socket_timeout_seconds.to_string()),
        (n.socket_connect_timeout.clone(), p.connect_timeout_seconds.to_string()),
    ]
}

/// All owned env var names.
pub fn owned_names(n: &EnvNames) -> [&str; 9] {
    [
        &n.environment,
        &n.workers,
        &n.max_connections,
        &n.health_check_interval,
        &n.retry_attempts,
        &n.retry_backoff_ms,
        &n.retry_backoff_max_ms,
        &n.socket_timeout,
        &n.socket_connect_timeout,
    ]
}

/// Identifies a pool configuration: a short hash of the owned env vars (name=value, sorted).
pub fn config_hash(env: &[(String, String)]) -> String {
    let mut pairs: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.sort();
    short_hash(pairs.join("\n").as_bytes())
}

/// The owned env vars as a container carries them now (literal values only; a var set from a
/// ConfigMap or Secret counts as absent, since the operator would replace it).
pub fn observed_env(names: &EnvNames, env: &[EnvVar]) -> Vec<(String, String)> {
    owned_names(names)
        .into_iter()
        .filter_map(|name| {
            env.iter().find(|e| e.name == name).and_then(|e| e.value.clone()).map(|v| (name.to_string(), v))
        })
        .collect()
}

/// Connections per pod the container is configured for, when it says so.
pub fn observed_connections_per_pod(names: &EnvNames, env: &[(String, String)]) -> Option<i64> {
    let get = |name: &str| env.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.parse::<i64>().ok());
    Some(get(&names.workers)? * get(&names.max_connections)?)
}

/// Hash of a pod template without the owned env vars of any container: changes here mean
/// someone else changed the workload.
pub fn template_hash(names: &EnvNames, template: &PodTemplateSpec) -> String {
    let mut t = template.clone();
    let owned = owned_names(names);
    if let Some(spec) = t.spec.as_mut() {
        for c in spec.containers.iter_mut() {
            if let Some(env) = c.env.as_mut() {
                env.retain(|e| !owned.contains(&e.name.as_str()));
                if env.is_empty() {
                    c.env = None;
                }
            }
        }
    }
    short_hash(serde_json::to_string(&t).unwrap_or_default().as_bytes())
}

pub(crate) fn short_hash(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().take(5).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::api::{RolloutSpec, TargetRef};

    fn spec() -> RedisPoolPolicySpec {
        RedisPoolPolicySpec {
            target_ref: TargetRef { name: "auth-api".into(), container: None },
            environment: None,
            tiers: vec![Tier {
                name: "production".into(),
                workers: 4,
                connections_per_worker: 40,
                replicas: Some(10),
                gates: None,
            }],
            pool: Default::default(),
            redis: None,
            rollout: RolloutSpec::default(),
            promotion: Default::default(),
            env_names: Default::default(),
            suspend: false,
            notifications: Vec::new(),
        }
    }

    #[test]
    fn renders_the_contract() {
        let s = spec();
        let env = render_env(&s, &s.tiers[0]);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("DEPLOYMENT_ENV"), Some("production"));
        assert_eq!(get("WORKERS"), Some("4"));
        assert_eq!(get("REDIS_POOL_MAX_CONNECTIONS"), Some("40"));
        assert_eq!(get("REDIS_HEALTH_CHECK_INTERVAL"), Some("30"));
        assert_eq!(get("REDIS_RETRY_ATTEMPTS"), Some("3"));
        assert_eq!(get("REDIS_SOCKET_CONNECT_TIMEOUT"), Some("5"));
        assert_eq!(env.len(), 9);
    }

    #[test]
    fn hash_depends_on_values_not_order() {
        let s = spec();
        let env = render_env(&s, &s.tiers[0]);
        let mut rev = env.clone();
        rev.reverse();
        assert_eq!(config_hash(&env), config_hash(&rev));
        let mut other = env.clone();
        other[2].1 = "41".into();
        assert_ne!(config_hash(&env), config_hash(&other));
    }

    #[test]
    fn observed_env_round_trips_and_ignores_foreign_vars() {
        let s = spec();
        let env = render_env(&s, &s.tiers[0]);
        let mut vars: Vec<EnvVar> =
            env.iter().map(|(k, v)| EnvVar { name: k.clone(), value: Some(v.clone()), ..Default::default() }).collect();
        vars.push(EnvVar { name: "LOG_LEVEL".into(), value: Some("debug".into()), ..Default::default() });
        let seen = observed_env(&s.env_names, &vars);
        assert_eq!(config_hash(&seen), config_hash(&env));
        assert_eq!(observed_connections_per_pod(&s.env_names, &seen), Some(160));
    }

    #[test]
    fn template_hash_ignores_owned_env_only() {
        use k8s_openapi::api::core::v1::{Container, PodSpec};
        let s = spec();
        let mk = |image: &str, max: &str| PodTemplateSpec {
            metadata: None,
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "api".into(),
                    image: Some(image.into()),
                    env: Some(vec![EnvVar {
                        name: "REDIS_POOL_MAX_CONNECTIONS".into(),
                        value: Some(max.into()),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        };
        assert_eq!(template_hash(&s.env_names, &mk("app:1", "20")), template_hash(&s.env_names, &mk("app:1", "40")));
        assert_ne!(template_hash(&s.env_names, &mk("app:1", "20")), template_hash(&s.env_names, &mk("app:2", "20")));
    }
}
