//! Asking approval webhooks. A gate that waits for a webhook is asked with a POST of a
//! documented, versioned body (`ApprovalRequest`, see the README); a 2xx answer approves, any
//! other answer (or none in time) is a no with its reason. The URL comes from a Secret and is
//! never logged or echoed: answers name the webhook by its Secret.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

use super::Context;
use crate::core::api::{ApprovalWebhook, RedisPoolPolicy, RedisPoolPolicyStatus};
use crate::core::rollout::{Desired, WebhookAnswer, webhooks_to_ask};

/// How often one policy's webhooks are asked while its gate waits.
const EVERY: Duration = Duration::from_secs(5);
/// The most of an answer's body a reason quotes.
const QUOTE: usize = 200;

/// Asks the webhooks the pending gate waits for, at most every few seconds per policy; in
/// between, the last answers stand (a decision made again on fresh objects sees them too).
pub async fn ask(
    ctx: &Context,
    policy: &RedisPoolPolicy,
    status: &RedisPoolPolicyStatus,
    desired: &Desired,
) -> Vec<WebhookAnswer> {
    let due = webhooks_to_ask(&policy.spec, status);
    if due.is_empty() {
        return Vec::new();
    }
    let uid = policy.uid().unwrap_or_default();
    if let Some((at, answers)) = ctx.asked.lock().expect("not poisoned").get(&uid)
        && at.elapsed() < EVERY
    {
        return answers.clone();
    }
    let mut answers = Vec::new();
    for (gate, hash, webhook) in due {
        let answer = ask_one(ctx, policy, &gate, &hash, desired, webhook).await;
        answers.push(WebhookAnswer { gate, hash, webhook: webhook.url_secret_ref.name.clone(), answer });
    }
    ctx.asked.lock().expect("not poisoned").insert(uid, (Instant::now(), answers.clone()));
    answers
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

async fn ask_one(
    ctx: &Context,
    policy: &RedisPoolPolicy,
    gate: &str,
    hash: &str,
    desired: &Desired,
    webhook: &ApprovalWebhook,
) -> Result<(), String> {
    let ns = policy.namespace().unwrap_or_default();
    let secret = &webhook.url_secret_ref;
    let what = format!("Secret {ns}/{} key {:?}", secret.name, secret.key);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let found = secrets.get_opt(&secret.name).await.map_err(|e| format!("cannot read {what}: {e}"))?;
    let bytes = found
        .and_then(|s| s.data)
        .and_then(|d| d.get(&secret.key).cloned())
        .ok_or_else(|| format!("{what} not found"))?;
    let url = String::from_utf8(bytes.0).map_err(|_| format!("{what} is not UTF-8"))?;
    let timeout = Duration::from_secs(webhook.timeout_seconds.clamp(1, 60) as u64);
    let body = request_body(policy, gate, hash, desired);
    // Errors would quote the URL: `without_url` keeps it out.
    let sent = ctx.http.post(url.trim()).timeout(timeout).json(&body).send().await;
    let response = sent.map_err(|e| format!("not answered: {}", e.without_url()))?;
    let code = response.status();
    if code.is_success() {
        return Ok(());
    }
    let text = response.text().await.unwrap_or_default();
    let quote: String = text.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(QUOTE).collect();
    Err(if quote.is_empty() { format!("HTTP {}", code.as_u16()) } else { format!("HTTP {}: {quote}", code.as_u16()) })
}
