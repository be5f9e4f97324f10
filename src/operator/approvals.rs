//! Asking approval webhooks. A gate that waits for a webhook is asked with a POST of a
//! documented, versioned body (`ApprovalRequest`, see the README); a 2xx answer approves, any
//! other answer (or none in time) is a no with its reason. The URL comes from a Secret and is
//! never logged or echoed: answers name the webhook by its Secret.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

use crate::core::api::{ApprovalWebhook, RedisPoolPolicy, RedisPoolPolicyStatus};
use crate::core::rollout::{Desired, WebhookAnswer, webhooks_to_ask};

/// How often one policy's webhooks are asked while its gate waits.
const EVERY: Duration = Duration::from_secs(5);
/// The most of an answer's body a reason quotes.
const QUOTE: usize = 200;

/// What was last asked of a policy's webhooks, and what they answered.
#[derive(Default)]
struct Asked {
    at: Option<Instant>,
    answers: Vec<WebhookAnswer>,
    asking: bool,
}

/// Asks approval webhooks in the background: a reconcile takes the answers that are in and never
/// waits for one (a webhook that hangs delays no decision, a failing canary's rollback least of
/// all); the next look, a few seconds later, takes the new ones.
pub struct Asker {
    client: kube::Client,
    http: reqwest::Client,
    asked: Mutex<HashMap<String, Asked>>,
}

impl Asker {
    pub fn new(client: kube::Client, http: reqwest::Client) -> Self {
        Asker { client, http, asked: Mutex::default() }
    }

    pub fn forget(&self, uid: &str) {
        self.asked.lock().expect("not poisoned").remove(uid);
    }

    /// The answers in for the webhooks the pending gate waits for; asks them again (in the
    /// background) when the last asking is a few seconds old.
    pub fn answers(
        self: &Arc<Self>,
        policy: &RedisPoolPolicy,
        status: &RedisPoolPolicyStatus,
        desired: &Desired,
    ) -> Vec<WebhookAnswer> {
        let due: Vec<(String, String, ApprovalWebhook)> =
            webhooks_to_ask(&policy.spec, status).into_iter().map(|(g, h, w)| (g, h, w.clone())).collect();
        let uid = policy.uid().unwrap_or_default();
        let mut asked = self.asked.lock().expect("not poisoned");
        if due.is_empty() {
            asked.remove(&uid);
            return Vec::new();
        }
        let entry = asked.entry(uid.clone()).or_default();
        let answers = entry.answers.clone();
        if entry.asking || entry.at.is_some_and(|at| at.elapsed() < EVERY) {
            return answers;
        }
        (entry.asking, entry.at) = (true, Some(Instant::now()));
        let (asker, policy, desired) = (self.clone(), policy.clone(), desired.clone());
        tokio::spawn(async move {
            let mut answers = Vec::new();
            for (gate, hash, webhook) in due {
                let answer = asker.ask_one(&policy, &gate, &hash, &desired, &webhook).await;
                answers.push(WebhookAnswer { gate, hash, webhook: webhook.url_secret_ref.name.clone(), answer });
            }
            if let Some(e) = asker.asked.lock().expect("not poisoned").get_mut(&uid) {
                (e.answers, e.asking) = (answers, false);
            }
        });
        answers
    }
}

/// The request body, version `redispool.io/v1alpha1`, kind `ApprovalRequest`.
pub fn request_body(policy: &RedisPoolPolicy, gate: &str, hash: &str, desired: &Desired) -> serde_json::Value {
    let pool = &desired.plan.pool;
    serde_json::json!({
        "apiVersion": "redispool.io/v1alpha1",
        "kind": "ApprovalRequest",
        "policy": {"namespace": policy.namespace(), "name": policy.name_any(), "uid": policy.uid()},
        "gate": gate,
        "configuration": hash,
        "environment": desired.environment,
        "pool": {
            "workers": pool.workers,
            "connectionsPerWorker": pool.connections_per_worker,
            "connectionsPerPod": pool.connections_per_pod,
            "replicas": pool.replicas,
        },
    })
}

impl Asker {
    async fn ask_one(
        &self,
        policy: &RedisPoolPolicy,
        gate: &str,
        hash: &str,
        desired: &Desired,
        webhook: &ApprovalWebhook,
    ) -> Result<(), String> {
        let ns = policy.namespace().unwrap_or_default();
        let secret = &webhook.url_secret_ref;
        let what = format!("Secret {ns}/{} key {:?}", secret.name, secret.key);
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
        let found = secrets.get_opt(&secret.name).await.map_err(|e| format!("cannot read {what}: {e}"))?;
        let bytes = found
            .and_then(|s| s.data)
            .and_then(|d| d.get(&secret.key).cloned())
            .ok_or_else(|| format!("{what} not found"))?;
        let url = String::from_utf8(bytes.0).map_err(|_| format!("{what} is not UTF-8"))?;
        let timeout = Duration::from_secs(webhook.timeout_seconds.clamp(1, 60) as u64);
        let body = request_body(policy, gate, hash, desired);
        // Errors would quote the URL: `without_url` keeps it out.
        let sent = self.http.post(url.trim()).timeout(timeout).json(&body).send().await;
        let response = sent.map_err(|e| format!("not answered: {}", e.without_url()))?;
        let code = response.status();
        if code.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        let quote = quote_without(&text, url.trim());
        Err(if quote.is_empty() {
            format!("HTTP {}", code.as_u16())
        } else {
            format!("HTTP {}: {quote}", code.as_u16())
        })
    }
}

/// The start of an answer's body, on one line, without the URL or its path and query (a page
/// that echoes the request must not put a token into status).
fn quote_without(text: &str, url: &str) -> String {
    let mut text = text.replace(url, "<url>");
    if let Ok(u) = reqwest::Url::parse(url) {
        let tail = match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        };
        for secret in [tail, u.path().to_string()].into_iter().filter(|t| t.len() > 1) {
            text = text.replace(&secret, "<url>");
        }
        if let Some(q) = u.query() {
            text = text.replace(q, "<url>");
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(QUOTE).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_quoted_answer_never_carries_the_url() {
        let url = "https://tickets.example/hooks/T0K3N/approve?key=s3cret";
        let page = "404 Not Found: no route for POST /hooks/T0K3N/approve?key=s3cret\n (see https://tickets.example/hooks/T0K3N/approve?key=s3cret)";
        let q = super::quote_without(page, url);
        assert!(!q.contains("T0K3N") && !q.contains("s3cret"), "{q}");
        assert!(q.starts_with("404 Not Found: no route for POST <url>"), "{q}");
    }
}
