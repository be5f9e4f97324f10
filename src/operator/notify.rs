//! Delivering the outbox. Reconciles hand the notices their written status holds to a bounded
//! queue and go on: a slow or down receiver never delays a decision. Workers deliver with a
//! timeout per attempt and retries with backoff, report how it ended, and wake the policy, whose
//! next decision takes the notice out of its status (the core's `notices::apply_deliveries`).
//!
//! Delivery is at least once: an operator that stops after delivering and before that status
//! is written delivers again after its restart (or its successor does), with the same
//! idempotency key, so a receiver can drop the repeat. Nothing recorded is lost: the outbox is
//! in status.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use futures::channel::mpsc::UnboundedSender;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use super::Context;
use crate::core::api::{Notice, RedisPoolPolicy, RedisPoolPolicyStatus, SecretKeyRef, Subscription};
use crate::core::notify::{self, About};
use crate::core::rollout::notices::{DeliveryResult, destinations};

/// Deliveries waiting for a worker at most; more wait in status for the next reconcile.
const QUEUE: usize = 1024;
/// Results remembered per policy: more than a policy's outbox holds.
const REMEMBERED: usize = 2 * crate::core::rollout::notices::OUTBOX_LIMIT;
/// Deliveries at once.
const WORKERS: usize = 4;
/// One attempt's time, and the attempts (with backoff 1 s, 2 s, 4 s, ... between them).
const TIMEOUT: Duration = Duration::from_secs(5);
const ATTEMPTS: i32 = 6;

/// One notice for one destination.
struct Job {
    policy: ObjectRef<RedisPoolPolicy>,
    uid: String,
    notice: Notice,
    destination: String,
    subscription: Subscription,
    /// Where its Secrets are: the policy's namespace, or the operator's for cluster-wide ones.
    secrets_namespace: String,
}

type Key = (String, i64, String);

pub struct Notifier {
    queue: tokio::sync::mpsc::Sender<Job>,
    jobs: Mutex<Option<tokio::sync::mpsc::Receiver<Job>>>,
    /// (policy uid, notice id, destination) queued or being delivered.
    inflight: Mutex<HashSet<Key>>,
    /// How the last deliveries ended, by policy uid: reported to every decision (taking in a
    /// result twice changes nothing), and never queued again however stale a cached status is.
    finished: Mutex<HashMap<String, Vec<DeliveryResult>>>,
    wake: Mutex<Option<UnboundedSender<ObjectRef<RedisPoolPolicy>>>>,
}

impl Default for Notifier {
    fn default() -> Self {
        let (queue, jobs) = tokio::sync::mpsc::channel(QUEUE);
        Notifier {
            queue,
            jobs: Mutex::new(Some(jobs)),
            inflight: Mutex::default(),
            finished: Mutex::default(),
            wake: Mutex::default(),
        }
    }
}

impl Notifier {
    /// How this policy's deliveries ended, for its next decision.
    pub fn results(&self, policy: &RedisPoolPolicy) -> Vec<DeliveryResult> {
        let uid = policy.uid().unwrap_or_default();
        self.finished.lock().expect("not poisoned").get(&uid).cloned().unwrap_or_default()
    }

    /// Asks for a reconcile of `policy` (its deliveries or webhook answers came in).
    pub fn wake(&self, policy: ObjectRef<RedisPoolPolicy>) {
        if let Some(wake) = self.wake.lock().expect("not poisoned").as_ref() {
            let _ = wake.unbounded_send(policy);
        }
    }

    pub fn forget(&self, uid: &str) {
        self.finished.lock().expect("not poisoned").remove(uid);
        self.inflight.lock().expect("not poisoned").retain(|(u, _, _)| u != uid);
    }

    /// Queues what `stored` (the policy's status as stored, perhaps as a lagging cache still
    /// shows it) has to deliver, unless it is queued, in flight, or done.
    pub fn enqueue(&self, ctx: &Context, policy: &RedisPoolPolicy, stored: Option<&RedisPoolPolicyStatus>) {
        let uid = policy.uid().unwrap_or_default();
        let outbox = stored.and_then(|s| s.notifications.as_ref()).map(|n| n.outbox.as_slice()).unwrap_or_default();
        if outbox.is_empty() {
            return;
        }
        let done: HashSet<(i64, String)> = self.results(policy).into_iter().map(|r| (r.id, r.destination)).collect();
        let ns = policy.namespace().unwrap_or_default();
        let subscriptions: Vec<(String, &Subscription)> =
            destinations(&policy.spec.notifications, &ctx.settings.cluster_subscriptions).collect();
        // One notice at a time per destination, oldest first: a receiver hears them in order.
        let mut first: HashSet<&str> = HashSet::new();
        for notice in outbox {
            for destination in &notice.pending {
                let key = (uid.clone(), notice.id, destination.clone());
                if done.contains(&(notice.id, destination.clone())) || !first.insert(destination.as_str()) {
                    continue;
                }
                if !self.inflight.lock().expect("not poisoned").insert(key.clone()) {
                    continue;
                }
                let found = subscriptions.iter().find(|(name, _)| name == destination);
                let (subscription, secrets_namespace) = match found {
                    Some((name, s)) if name.starts_with("cluster/") => {
                        ((*s).clone(), ctx.settings.secrets_namespace.clone())
                    }
                    Some((_, s)) => ((*s).clone(), ns.clone()),
                    None => {
                        // The destination was removed from the spec since: nothing to deliver to.
                        let gone = Err("the destination is no longer configured".into());
                        self.finish(
                            key,
                            DeliveryResult {
                                id: notice.id,
                                destination: destination.clone(),
                                attempts: 0,
                                result: gone,
                            },
                            ObjectRef::from_obj(policy),
                        );
                        continue;
                    }
                };
                let job = Job {
                    policy: ObjectRef::from_obj(policy),
                    uid: uid.clone(),
                    notice: notice.clone(),
                    destination: destination.clone(),
                    subscription,
                    secrets_namespace,
                };
                if self.queue.try_send(job).is_err() {
                    // Full: it stays pending in status and is queued again by a later reconcile.
                    self.inflight.lock().expect("not poisoned").remove(&key);
                    tracing::warn!(destination, "notification queue full; the notice waits in status");
                }
            }
        }
    }

    fn finish(&self, key: Key, result: DeliveryResult, policy: ObjectRef<RedisPoolPolicy>) {
        {
            let mut finished = self.finished.lock().expect("not poisoned");
            let results = finished.entry(key.0.clone()).or_default();
            results.push(result);
            let over = results.len().saturating_sub(REMEMBERED);
            results.drain(..over);
        }
        self.inflight.lock().expect("not poisoned").remove(&key);
        self.wake(policy);
    }

    /// Starts the workers; the returned stream wakes the policies whose deliveries ended.
    pub fn start(
        ctx: std::sync::Arc<Context>,
    ) -> futures::channel::mpsc::UnboundedReceiver<ObjectRef<RedisPoolPolicy>> {
        let (wake, woken) = futures::channel::mpsc::unbounded();
        *ctx.notifier.wake.lock().expect("not poisoned") = Some(wake);
        let jobs = ctx.notifier.jobs.lock().expect("not poisoned").take();
        if let Some(jobs) = jobs {
            let jobs = std::sync::Arc::new(tokio::sync::Mutex::new(jobs));
            for _ in 0..WORKERS {
                let (ctx, jobs) = (ctx.clone(), jobs.clone());
                tokio::spawn(async move {
                    loop {
                        let Some(job) = jobs.lock().await.recv().await else { return };
                        let (result, attempts) = deliver(&ctx, &job).await;
                        let key = (job.uid.clone(), job.notice.id, job.destination.clone());
                        let outcome = if result.is_ok() { "delivered" } else { "failed" };
                        ctx.metrics.count_notification(&job.destination, outcome);
                        let result =
                            DeliveryResult { id: job.notice.id, destination: job.destination, attempts, result };
                        ctx.notifier.finish(key, result, job.policy);
                    }
                });
            }
        }
        woken
    }
}

/// One notice to one destination, with retries: how it ended, and the attempts made.
async fn deliver(ctx: &Context, job: &Job) -> (Result<(), String>, i32) {
    let request = match build(ctx, job).await {
        Ok(Some(r)) => r,
        // Nothing to send this destination (an Alertmanager with no alert to change).
        Ok(None) => return (Ok(()), 0),
        Err(why) => return (Err(why), 0),
    };
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        let mut post = ctx.http.post(&request.url).timeout(TIMEOUT).header("Content-Type", "application/json");
        for (k, v) in &request.headers {
            post = post.header(k.as_str(), v.as_str());
        }
        match post.body(request.body.clone()).send().await {
            Ok(r) if r.status().is_success() => return (Ok(()), attempt),
            Ok(r) => last = format!("HTTP {}", r.status().as_u16()),
            // Errors would quote the URL: `without_url` keeps it out.
            Err(e) => last = format!("not answered: {}", e.without_url()),
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
        }
    }
    (Err(last), ATTEMPTS)
}

struct Request {
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// The request for this destination's kind, its URL and key read from their Secrets.
async fn build(ctx: &Context, job: &Job) -> Result<Option<Request>, String> {
    let p = &job.policy;
    let about = About { namespace: p.namespace.as_deref().unwrap_or_default(), name: &p.name, uid: &job.uid };
    let s = &job.subscription;
    let secret = |r: &Option<SecretKeyRef>| r.clone().ok_or_else(|| "no urlSecretRef".to_string());
    let (url_ref, body, key_ref) = if let Some(w) = &s.webhook {
        (secret(&w.url_secret_ref)?, notify::webhook_body(&about, &job.notice), w.signing_key_secret_ref.clone())
    } else if let Some(w) = &s.slack {
        (secret(&w.url_secret_ref)?, notify::slack_body(&about, &job.notice), None)
    } else if let Some(w) = &s.alertmanager {
        let Some(alerts) = notify::alertmanager_body(&about, &job.notice) else { return Ok(None) };
        (secret(&w.url_secret_ref)?, alerts, None)
    } else {
        return Err("no destination kind".into());
    };
    let mut url = read_secret(ctx, &job.secrets_namespace, &url_ref).await?.trim().to_string();
    if s.alertmanager.is_some() {
        url = format!("{}/api/v2/alerts", url.trim_end_matches('/'));
    }
    let body = serde_json::to_vec(&body).expect("JSON");
    let mut headers = vec![("Idempotency-Key".to_string(), notify::idempotency_key(&about, &job.notice))];
    if let Some(k) = key_ref {
        let key = read_secret(ctx, &job.secrets_namespace, &k).await?;
        headers.push(("X-RedisPool-Signature".into(), format!("sha256={}", sign(key.as_bytes(), &body))));
    }
    Ok(Some(Request { url, headers, body }))
}

/// HMAC-SHA256 of `body` with `key`, in lowercase hex.
pub fn sign(key: &[u8], body: &[u8]) -> String {
    let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key), body);
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A Secret's key, named in errors by the Secret and key (never its value).
async fn read_secret(ctx: &Context, ns: &str, r: &SecretKeyRef) -> Result<String, String> {
    let what = format!("Secret {ns}/{} key {:?}", r.name, r.key);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let found = secrets.get_opt(&r.name).await.map_err(|e| format!("cannot read {what}: {e}"))?;
    let bytes =
        found.and_then(|s| s.data).and_then(|d| d.get(&r.key).cloned()).ok_or_else(|| format!("{what} not found"))?;
    String::from_utf8(bytes.0).map_err(|_| format!("{what} is not UTF-8"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn signs_like_rfc_4231() {
        // RFC 4231, test case 2.
        let mac = super::sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(mac, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
