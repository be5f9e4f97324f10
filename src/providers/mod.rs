//! The network I/O behind analysis and the budget: the canary's pool health (from its pods or
//! from Prometheus) and the Redis server. Everything here dials out; what it returns is judged by
//! the pure `analysis` gates and the `rollout` core.

pub mod pods;
pub mod prometheus;
pub mod redis;

use std::collections::HashMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use crate::core::analysis::Measurements;
use crate::core::analysis::contract::{PoolHealth, Sample, aggregate};
use crate::core::analysis::redis::{RedisFault, RedisSignals, RedisTarget, TlsMaterial};
use crate::core::api::{CaRef, PodsMetrics, PrometheusMetrics, RedisSettings, RedisTopology, SecretKeyRef};

/// Why a measurement could not be made. Messages reach status and Events: no URL in them
/// carries credentials.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unmeasured {
    #[error("no ready {0} pod to measure")]
    NoReadyPods(String),
    #[error("cannot list {what} pods: {why}")]
    List { what: String, why: String },
    /// One pod did not answer, or not with the pool health contract.
    #[error("GET {url}: {why}")]
    Pod { url: String, why: String },
    /// No pod answered: each one's error.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    EveryPod(Vec<Unmeasured>),
    #[error("spec.rollout.metrics.prometheus is not set")]
    NoPrometheus,
    #[error("{url}: {why}")]
    Prometheus { url: String, why: String },
}

/// A measurement of the canary, the samples it was made from (the next baseline), and the
/// errors of pods that did not answer (counted apart from gate verdicts).
pub struct Measured {
    pub measurements: Measurements,
    pub samples: HashMap<String, PoolHealth>,
    pub errors: Option<String>,
}

/// A pod to measure: ready, not being deleted, with an IP.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadyPod {
    pub uid: String,
    pub ip: String,
    pub started: Option<Timestamp>,
}

/// The pods to measure, of `pods`.
pub fn ready_pods<'a>(pods: impl IntoIterator<Item = &'a Pod>) -> Vec<ReadyPod> {
    pods.into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .filter_map(|p| {
            let started = p.creation_timestamp().map(|t| t.0);
            Some(ReadyPod { uid: p.uid()?, ip: p.status.as_ref()?.pod_ip.clone()?, started })
        })
        .collect()
}

/// Keeps of a pod what [`ready_pods`] reads, for the cache of canary pods.
pub fn slim_pod(pod: &mut Pod) {
    let meta = &mut pod.metadata;
    meta.managed_fields = None;
    meta.annotations = None;
    meta.owner_references = None;
    pod.spec = None;
    if let Some(s) = pod.status.as_mut() {
        *s = k8s_openapi::api::core::v1::PodStatus {
            pod_ip: s.pod_ip.take(),
            conditions: s.conditions.take().map(|c| {
                c.into_iter()
                    .filter(|c| c.type_ == "Ready")
                    .map(|c| k8s_openapi::api::core::v1::PodCondition {
                        type_: c.type_,
                        status: c.status,
                        ..Default::default()
                    })
                    .collect()
            }),
            ..Default::default()
        };
    }
}

/// Lists the pods matching `selector` (`what` they are: the canary's, the target's) and keeps
/// the ready ones.
pub async fn list_ready_pods(
    client: &Client,
    ns: &str,
    what: &str,
    selector: &str,
) -> Result<Vec<ReadyPod>, Unmeasured> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let listed = pods
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| Unmeasured::List { what: what.into(), why: e.to_string() })?;
    Ok(ready_pods(&listed.items))
}

/// GETs the contract on every pod of `ready` (`what` they are) and diffs it against
/// `baselines`. Pods that started before `since` (the last analysis) and have no baseline only
/// set one.
pub async fn measure_pods(
    http: &reqwest::Client,
    what: &str,
    ready: &[ReadyPod],
    spec: &PodsMetrics,
    baselines: &HashMap<String, PoolHealth>,
    since: Option<Timestamp>,
) -> Result<Measured, Unmeasured> {
    if ready.is_empty() {
        return Err(Unmeasured::NoReadyPods(what.into()));
    }
    let fetches = ready.iter().map(|p| async move {
        (p.uid.clone(), p.started, pods::fetch(http, &p.ip, spec.port, &spec.path, Duration::from_secs(2)).await)
    });
    let mut samples = HashMap::new();
    let mut errors = Vec::new();
    for (uid, started, r) in futures::future::join_all(fetches).await {
        match r {
            Ok(health) => {
                samples.insert(uid, Sample { health, started });
            }
            Err(e) => errors.push(e),
        }
    }
    if samples.is_empty() {
        return Err(Unmeasured::EveryPod(errors));
    }
    let measurements = aggregate(&samples, baselines, since);
    let samples = samples.into_iter().map(|(uid, s)| (uid, s.health)).collect();
    let errors = (!errors.is_empty()).then(|| Unmeasured::EveryPod(errors).to_string());
    Ok(Measured { measurements, samples, errors })
}

/// Measures the canary Deployment through Prometheus.
pub async fn measure_prometheus(
    http: &reqwest::Client,
    metrics: Option<&PrometheusMetrics>,
    scope: &crate::core::analysis::prometheus::Scope<'_>,
) -> Result<Measured, Unmeasured> {
    let prom = metrics.ok_or(Unmeasured::NoPrometheus)?;
    let measurements = prometheus::measure(http, &prom.address, &prom.queries, scope).await?;
    Ok(Measured { measurements, samples: HashMap::new(), errors: None })
}

/// Asks the Redis server of `settings` (through its topology: one server, a cluster's nodes,
/// the master the sentinels name, or a proxy), with the password, CA and client certificate from
/// the Secrets and ConfigMaps it names. No message names the password or the key.
pub async fn redis_signals(client: &Client, ns: &str, settings: &RedisSettings) -> Result<RedisSignals, RedisFault> {
    let password =
        secret_password(client, ns, settings.password_secret_ref.as_ref(), "spec.redis.passwordSecretRef").await?;
    let tls = tls_material(client, ns, settings).await?;
    let target = RedisTarget { address: settings.address.clone(), username: settings.username.clone(), password, tls };
    let timeout = Duration::from_secs(3);
    let mut signals = match settings.topology {
        RedisTopology::Standalone => redis::probe(&target, timeout).await?,
        RedisTopology::Cluster => {
            let more = settings.seeds.iter().map(|address| RedisTarget { address: address.clone(), ..target.clone() });
            let seeds: Vec<RedisTarget> = std::iter::once(target.clone()).chain(more).collect();
            redis::probe_cluster(&seeds, timeout, settings.read_from_replicas).await?
        }
        RedisTopology::Proxy => redis::probe_proxy(&target, timeout).await?,
        RedisTopology::Sentinel => {
            let Some(sentinel) = &settings.sentinel else {
                return Err(RedisFault::Unavailable("topology Sentinel needs spec.redis.sentinel.masterName".into()));
            };
            let field = "spec.redis.sentinel.passwordSecretRef";
            let password = secret_password(client, ns, sentinel.password_secret_ref.as_ref(), field).await?;
            // The sentinels speak TLS when the servers do, with the same CA.
            let sentinels: Vec<RedisTarget> = std::iter::once(&settings.address)
                .chain(&sentinel.addresses)
                .map(|address| RedisTarget {
                    address: address.clone(),
                    username: sentinel.username.clone(),
                    password: password.clone(),
                    tls: target.tls.clone(),
                })
                .collect();
            redis::probe_sentinel(&sentinels, &sentinel.master_name, &target, timeout, settings.read_from_replicas)
                .await?
        }
    };
    if let Some(m) = settings.max_clients {
        pin_max_clients(&mut signals, m, settings.topology);
    }
    Ok(signals)
}

/// `spec.redis.maxClients` instead of what the servers say: on every node alike.
fn pin_max_clients(signals: &mut RedisSignals, max_clients: i64, topology: RedisTopology) {
    signals.nodes.iter_mut().for_each(|n| n.max_clients = Some(max_clients));
    let tight = crate::core::analysis::redis::tightest(&signals.nodes).cloned();
    signals.max_clients = Some(max_clients);
    signals.connected_clients = tight.map_or(signals.connected_clients, |n| n.connected_clients);
    signals.max_clients_note = (topology == RedisTopology::Proxy).then(|| {
        "the proxy's client limit, from spec.redis.maxClients; the servers behind the proxy are not sized by the \
         pool and not checked"
            .to_string()
    });
}

/// The password a `field` names in a Secret, as UTF-8 (never quoted in a message).
async fn secret_password(
    client: &Client,
    ns: &str,
    secret: Option<&SecretKeyRef>,
    field: &str,
) -> Result<Option<String>, RedisFault> {
    let Some(r) = secret else { return Ok(None) };
    let bytes = secret_key(client, ns, &r.name, &r.key, field).await?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| RedisFault::Unavailable(format!("Secret {ns}/{} key {:?} is not UTF-8", r.name, r.key)))
}

/// The CA and client certificate `spec.redis.tlsOptions` names, when the server speaks TLS.
async fn tls_material(client: &Client, ns: &str, settings: &RedisSettings) -> Result<Option<TlsMaterial>, RedisFault> {
    let o = match (settings.tls, settings.tls_options.clone().unwrap_or_default()) {
        (false, _) => return Ok(None),
        (true, o) => o,
    };
    let ca = match &o.ca_ref {
        None => None,
        Some(CaRef { secret: Some(name), key, .. }) => Some((
            secret_key(client, ns, name, key, "spec.redis.tlsOptions.caRef").await?,
            format!("the CA in Secret {ns}/{name} key {key:?}"),
        )),
        Some(CaRef { config_map: Some(name), key, .. }) => {
            Some((config_map_key(client, ns, name, key).await?, format!("the CA in ConfigMap {ns}/{name} key {key:?}")))
        }
        Some(_) => None,
    };
    let client_pair = match &o.client_cert_secret {
        None => None,
        Some(name) => {
            let what = "spec.redis.tlsOptions.clientCertSecret";
            Some((
                secret_key(client, ns, name, "tls.crt", what).await?,
                secret_key(client, ns, name, "tls.key", what).await?,
            ))
        }
    };
    Ok(Some(TlsMaterial { ca, server_name: o.server_name.clone(), client: client_pair }))
}

/// One key of a Secret, or a fault that names the Secret, the key and the field that refers to
/// it (never the value).
async fn secret_key(client: &Client, ns: &str, name: &str, key: &str, field: &str) -> Result<Vec<u8>, RedisFault> {
    let unavailable = RedisFault::Unavailable;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret = secrets
        .get_opt(name)
        .await
        .map_err(|e| unavailable(format!("cannot read Secret {ns}/{name}: {e}")))?
        .ok_or_else(|| unavailable(format!("Secret {ns}/{name} ({field}) not found")))?;
    secret
        .data
        .and_then(|d| d.get(key).cloned())
        .map(|b| b.0)
        .ok_or_else(|| unavailable(format!("Secret {ns}/{name} ({field}) has no key {key:?}")))
}

async fn config_map_key(client: &Client, ns: &str, name: &str, key: &str) -> Result<Vec<u8>, RedisFault> {
    let unavailable = RedisFault::Unavailable;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let map = maps
        .get_opt(name)
        .await
        .map_err(|e| unavailable(format!("cannot read ConfigMap {ns}/{name}: {e}")))?
        .ok_or_else(|| unavailable(format!("ConfigMap {ns}/{name} (spec.redis.tlsOptions.caRef) not found")))?;
    map.data
        .and_then(|d| d.get(key).cloned())
        .map(String::into_bytes)
        .ok_or_else(|| unavailable(format!("ConfigMap {ns}/{name} (spec.redis.tlsOptions.caRef) has no key {key:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ready: &str, ip: Option<&str>, deleting: bool) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": name, "namespace": "saas", "uid": format!("uid-{name}"),
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "deletionTimestamp": deleting.then_some("2026-01-01T00:05:00Z"),
                "labels": {"redispool.io/track": "canary"},
                "annotations": {"kubectl.kubernetes.io/restartedAt": "now"},
                "managedFields": [{"manager": "kubelet", "operation": "Update", "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {}}}]
            },
            "spec": {"containers": [{"name": "api", "image": "auth:7"}]},
            "status": {
                "phase": "Running", "podIP": ip, "hostIP": "127.0.0.1",
                "conditions": [
                    {"type": "PodScheduled", "status": "True"},
                    {"type": "Ready", "status": ready, "lastTransitionTime": "2026-01-01T00:01:00Z"}
                ],
                "containerStatuses": [{"name": "api", "image": "auth:7", "imageID": "", "ready": true, "restartCount": 0}]
            }
        }))
        .unwrap()
    }

    #[test]
    fn a_slim_pod_is_measured_the_same() {
        let pods = vec![
            pod("a", "True", Some("127.200.0.1"), false),
            pod("not-ready", "False", Some("127.200.0.2"), false),
            pod("no-ip", "True", None, false),
            pod("leaving", "True", Some("127.200.0.4"), true),
        ];
        let ready = ready_pods(&pods);
        assert_eq!(
            ready,
            vec![ReadyPod {
                uid: "uid-a".into(),
                ip: "127.200.0.1".into(),
                started: Some("2026-01-01T00:00:00Z".parse().unwrap())
            }]
        );
        let slim: Vec<Pod> = pods
            .into_iter()
            .map(|mut p| {
                slim_pod(&mut p);
                p
            })
            .collect();
        assert_eq!(ready_pods(&slim), ready, "the cache's pods read the same");
        let s = &slim[0];
        assert!(s.spec.is_none() && s.metadata.managed_fields.is_none() && s.metadata.annotations.is_none());
        assert_eq!(s.status.as_ref().unwrap().conditions.as_ref().unwrap().len(), 1, "only Ready is kept");
        assert_eq!(s.status.as_ref().unwrap().host_ip, None);
    }
}
