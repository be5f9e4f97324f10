//! Reads the verdicts `spec.promotion.requires` names: from a policy in this cluster, or from one
//! in another cluster through a kubeconfig kept in a Secret. Only `get` on `redispoolpolicies` is
//! needed there. Nothing here ever echoes the kubeconfig: its token or key may be in it.
//!
//! Whoever may create a Secret and a policy writes that kubeconfig, so it may carry only data:
//! a server, its CA and a token or client certificate, inline. Commands (`exec`, auth
//! providers) would run inside the operator, and file paths (`tokenFile`, a key file) would
//! hand the operator's own credentials to a server of their choosing: both are refused.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use tokio::sync::Mutex;

use crate::core::api::{PolicyRef, RedisPoolPolicy, SecretKeyRef};
use crate::core::durations::parse_duration;
use crate::core::promotion::{Found, Required, Unreadable};

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
            // Admission checks the format; one that still cannot be read can never be met.
            soak: parse_duration(&r.soak).unwrap_or(jiff::SignedDuration::MAX),
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
) -> (String, Result<Option<Found>, Unreadable>) {
    let policy_ns = at.namespace.as_deref().unwrap_or(ns);
    let here = at.at(ns);
    match &at.kubeconfig_secret_ref {
        None => (here, get(client, policy_ns, &at.name, false).await),
        Some(secret) => match remotes.client(client, ns, secret).await {
            Ok((remote, cluster)) => (format!("{cluster}:{here}"), get(&remote, policy_ns, &at.name, true).await),
            Err(e) => (format!("{here} (another cluster)"), Err(e)),
        },
    }
}

async fn get(client: &Client, ns: &str, name: &str, remote: bool) -> Result<Option<Found>, Unreadable> {
    let api: Api<RedisPoolPolicy> = Api::namespaced(client.clone(), ns);
    let policy = match tokio::time::timeout(TIMEOUT, api.get_opt(name)).await {
        Err(_) => return Err(Unreadable::Timeout(TIMEOUT.as_secs())),
        Ok(Err(e)) => return Err(read_error(e, ns, remote)),
        Ok(Ok(None)) => return Ok(None),
        Ok(Ok(Some(p))) => p,
    };
    Ok(Some(Found {
        verdicts: policy.status.map(|s| s.verdicts).unwrap_or_default(),
        watches: crate::core::durations::promotion_soak(&policy.spec),
    }))
}

/// What went wrong, in words that name the fix and never quote a credential.
fn read_error(e: kube::Error, ns: &str, remote: bool) -> Unreadable {
    let whose = if remote { "the kubeconfig's user" } else { "the operator" };
    match e {
        kube::Error::Api(s) if s.code == 401 => Unreadable::Unauthorized { whose },
        kube::Error::Api(s) if s.code == 403 => Unreadable::Forbidden { whose, namespace: ns.into() },
        kube::Error::Api(s) => Unreadable::Answered { code: s.code, reason: s.reason, message: s.message },
        // Auth errors may carry what a credential source printed.
        kube::Error::Auth(_) => Unreadable::Unauthenticated { whose },
        other => Unreadable::Unreachable(other.to_string()),
    }
}

impl RemoteClients {
    /// A client for the cluster of the kubeconfig in `secret` (namespace `ns`), and its name.
    async fn client(&self, local: &Client, ns: &str, secret: &SecretKeyRef) -> Result<(Client, String), Unreadable> {
        self.reach(local, ns, secret).await.map_err(|p| Unreadable::Kubeconfig(p.0))
    }

    /// [`Self::client`], its failures in words.
    async fn reach(
        &self,
        local: &Client,
        ns: &str,
        secret: &SecretKeyRef,
    ) -> Result<(Client, String), KubeconfigProblem> {
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
        if let Some(why) = refused(&kubeconfig) {
            return Err(format!("the kubeconfig in key {:?} of {what} {why}", secret.key).into());
        }
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

/// Why the kubeconfig Secret of a requirement cannot be used (never quoting its contents).
struct KubeconfigProblem(String);

impl From<String> for KubeconfigProblem {
    fn from(why: String) -> Self {
        KubeconfigProblem(why)
    }
}

/// Why a kubeconfig is refused: it would run a command or read a file inside the operator.
fn refused(k: &Kubeconfig) -> Option<String> {
    for u in &k.auth_infos {
        let Some(a) = &u.auth_info else { continue };
        let refused = [
            (a.exec.is_some(), "exec (a command)"),
            (a.auth_provider.is_some(), "auth-provider"),
            (a.token_file.is_some(), "tokenFile (a file path)"),
            (a.client_certificate.is_some(), "client-certificate (a file path; use client-certificate-data)"),
            (a.client_key.is_some(), "client-key (a file path; use client-key-data)"),
            (a.username.is_some() || a.password.is_some(), "username/password"),
        ];
        if let Some((_, what)) = refused.iter().find(|(yes, _)| *yes) {
            return Some(format!("uses {what} for user {:?}: only inline tokens and certificates are allowed", u.name));
        }
    }
    for c in &k.clusters {
        if c.cluster.as_ref().is_some_and(|c| c.certificate_authority.is_some()) {
            return Some(format!("names a CA file for cluster {:?}: inline it as certificate-authority-data", c.name));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kubeconfig(user: &str, cluster: &str) -> Kubeconfig {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: staging\n  cluster: {{server: 'https://127.0.0.1:6443'{cluster}}}\n\
             users:\n- name: reader\n  user: {{{user}}}\ncontexts:\n- name: staging\n  context: {{cluster: staging, user: reader}}\n\
             current-context: staging\n"
        );
        Kubeconfig::from_yaml(&text).unwrap()
    }

    #[test]
    fn only_inline_credentials_pass() {
        assert_eq!(refused(&kubeconfig("token: abc", ", certificate-authority-data: Zm9v")), None);
        assert_eq!(refused(&kubeconfig("client-certificate-data: Zm9v, client-key-data: YmFy", "")), None);
        let refused = [
            ("exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh, args: [-c, id]}", "", "exec"),
            ("tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token", "", "tokenFile"),
            ("client-key: /etc/key.pem, client-certificate-data: Zm9v", "", "client-key"),
            ("token: abc", ", certificate-authority: /etc/ca.crt", "certificate-authority-data"),
        ];
        for (user, cluster, says) in refused {
            let why = super::refused(&kubeconfig(user, cluster)).expect("refused");
            assert!(why.contains(says), "{user}: {why}");
            assert!(!why.contains("/bin/sh") && !why.contains("abc"), "never echoes the kubeconfig: {why}");
        }
    }
}
