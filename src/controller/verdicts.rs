//! Reads the verdicts `spec.promotion.requires` names: from a policy in this cluster, or from one
//! in another cluster through a kubeconfig kept in a Secret. Only `get` on `redispoolpolicies` is
//! needed there. Nothing here ever echoes the kubeconfig: its token or key may be in it.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use tokio::sync::Mutex;

use crate::api::{PolicyRef, RedisPoolPolicy, SecretKeyRef};
use crate::promotion::{Found, Required};
use crate::rollout::parse_duration;

/// How long a read of another cluster may take: a slow cluster must not hold up reconciles.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Clients for other clusters, built once per kubeconfig Secret version.
#[derive(Default)]
pub struct RemoteClients {
    /// Keyed by `namespace/secret/key`: the Secret's resourceVersion, the client, the cluster's name.
    cache: Mutex<HashMap<String, (String, Client, String)>>,
}

/// Every requirement of `policy` (in namespace `ns`), with what was found where it points.
pub async fn read(client: &Client, remotes: &RemoteClients, policy: &RedisPoolPolicy, ns: &str) -> Vec<Required> {
    let mut required = Vec::new();
    for r in &policy.spec.promotion.requires {
        let (from, found) = find(client, remotes, &r.from, ns).await;
        required.push(Required {
            from,
            environment: r.environment.clone(),
            soak: parse_duration(&r.soak).unwrap_or(jiff::SignedDuration::ZERO),
            found,
        });
    }
    required
}

async fn find(
    client: &Client,
    remotes: &RemoteClients,
    at: &PolicyRef,
    ns: &str,
) -> (String, Result<Option<Found>, String>) {
    let policy_ns = at.namespace.as_deref().unwrap_or(ns);
    let here = format!("{policy_ns}/{}", at.name);
    match &at.kubeconfig_secret_ref {
        None => (here, get(client, policy_ns, &at.name).await),
        Some(secret) => match remotes.client(client, ns, secret).await {
            Ok((remote, cluster)) => (format!("{cluster}:{here}"), get(&remote, policy_ns, &at.name).await),
            Err(e) => (format!("{here} (kubeconfig in Secret {ns}/{})", secret.name), Err(e)),
        },
    }
}

async fn get(client: &Client, ns: &str, name: &str) -> Result<Option<Found>, String> {
    let api: Api<RedisPoolPolicy> = Api::namespaced(client.clone(), ns);
    let policy = match tokio::time::timeout(TIMEOUT, api.get_opt(name)).await {
        Err(_) => return Err(format!("no answer within {}s", TIMEOUT.as_secs())),
        Ok(Err(kube::Error::Api(e))) if e.code == 403 => {
            return Err(format!(
                "forbidden: the operator may not get redispoolpolicies in namespace {ns} there (see the README for the Role)"
            ));
        }
        Ok(Err(e)) => return Err(e.to_string()),
        Ok(Ok(None)) => return Ok(None),
        Ok(Ok(Some(p))) => p,
    };
    Ok(Some(Found {
        verdicts: policy.status.map(|s| s.verdicts).unwrap_or_default(),
        watches: parse_duration(&policy.spec.promotion.soak).unwrap_or(jiff::SignedDuration::from_hours(24)),
    }))
}

impl RemoteClients {
    /// A client for the cluster of the kubeconfig in `secret` (namespace `ns`), and its name.
    async fn client(&self, local: &Client, ns: &str, secret: &SecretKeyRef) -> Result<(Client, String), String> {
        let what = format!("Secret {ns}/{} (spec.promotion.requires[].from.kubeconfigSecretRef)", secret.name);
        let secrets: Api<Secret> = Api::namespaced(local.clone(), ns);
        let found = secrets.get_opt(&secret.name).await.map_err(|e| format!("cannot read {what}: {e}"))?;
        let found = found.ok_or_else(|| format!("{what} not found"))?;
        let version = found.metadata.resource_version.clone().unwrap_or_default();
        let key = format!("{ns}/{}/{}", secret.name, secret.key);
        if let Some((v, client, cluster)) = self.cache.lock().await.get(&key)
            && *v == version
        {
            return Ok((client.clone(), cluster.clone()));
        }
        let bytes = found
            .data
            .and_then(|d| d.get(&secret.key).cloned())
            .ok_or_else(|| format!("{what} has no key {:?}", secret.key))?;
        // Parse errors can quote the text: say where, never what.
        let text = String::from_utf8(bytes.0).map_err(|_| format!("key {:?} of {what} is not UTF-8", secret.key))?;
        let kubeconfig =
            Kubeconfig::from_yaml(&text).map_err(|_| format!("key {:?} of {what} is not a kubeconfig", secret.key))?;
        let cluster = kubeconfig.current_context.clone().unwrap_or_else(|| secret.name.clone());
        let mut config =
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.map_err(|_| {
                format!(
                    "the kubeconfig in key {:?} of {what} cannot be used (no current context, cluster or user)",
                    secret.key
                )
            })?;
        config.connect_timeout = Some(TIMEOUT);
        config.read_timeout = Some(TIMEOUT);
        let client = Client::try_from(config).map_err(|_| format!("no client from the kubeconfig in {what}"))?;
        self.cache.lock().await.insert(key, (version, client.clone(), cluster.clone()));
        Ok((client, cluster))
    }
}
