//! The controller: kube-runtime wiring around the pure core.
//!
//! Each reconcile observes (policy, target, canary, signals), decides through
//! [`crate::core::rollout::decide`], acts under one field manager (see `act` for which write each
//! action makes), and records status and Events. A reconcile that changes nothing writes nothing.

mod act;
mod approvals;
mod budgets;
mod error;
mod events;
mod frozen;
mod index;
pub mod metrics;
mod notify;
mod observe;
mod reconcile;
mod requests;
pub mod telemetry;
mod verdicts;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Predicate, PredicateConfig, WatchStreamExt, predicates, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::Mutex;

pub use error::{Error, Result};
use frozen::FrozenDeployment;
use metrics::Metrics;

use crate::core::analysis::contract::PoolHealth;
use crate::core::api::validation::Invalid;
use crate::core::api::{RedisPoolPolicy, RedisPoolPolicyStatus};

pub use crate::core::api::MANAGER;

#[derive(Clone, Debug)]
pub struct Settings {
    /// Reconciles at once (at least 1).
    pub concurrency: u16,
    /// The tier for policies that do not name one.
    pub environment: Option<String>,
    /// Watch one namespace only; all when None.
    pub namespace: Option<String>,
    /// Identity for Events (the pod name in a cluster).
    pub instance: Option<String>,
    /// Cluster-wide freeze windows (`--cluster-settings`), for every policy.
    pub cluster_windows: Vec<crate::core::freeze::Window>,
    /// Cluster-wide notification destinations (`--cluster-settings`), with Secrets in
    /// `secrets_namespace`.
    pub cluster_subscriptions: Vec<crate::core::api::Subscription>,
    /// Where the Secrets of cluster-wide destinations live: the operator's own namespace.
    pub secrets_namespace: String,
}

/// How to run: what `run` on the command line asks for.
#[derive(Clone, Debug)]
pub struct Options {
    pub kubeconfig: Option<PathBuf>,
    pub settings: Settings,
    pub metrics_addr: std::net::SocketAddr,
    pub leader_election: bool,
    pub lease_name: String,
    pub lease_namespace: String,
    pub lease_duration: u64,
}

/// Counters seen at the previous analysis, so the next one measures only its own interval.
#[derive(Default, Debug, Clone)]
pub struct Baseline {
    /// Canary and stable pods alike, by uid.
    pub pods: HashMap<String, PoolHealth>,
    pub rejected_connections: Option<i64>,
    /// Who the Redis server was at the last probe that reached it: a restart or a failover since
    /// is the environment's doing.
    pub redis_identity: Option<crate::core::analysis::redis::ServerIdentity>,
}

/// A policy's status as this process wrote or decided it last.
#[derive(Default, Debug, Clone)]
pub struct Written {
    /// When this process last wrote it.
    pub at: Option<Timestamp>,
    /// A status decided and not written yet (only tallies changed), with the stored status it
    /// follows: the next decision goes on from it while the stored status is still that one.
    /// Boxed: a status is kilobytes inline, and every policy has an entry (a heap profile found
    /// 4.75 MB of this map's table at 1,000 policies when it was not).
    pub pending: Option<Box<(Option<RedisPoolPolicyStatus>, RedisPoolPolicyStatus)>>,
}

/// A spec's generation and the CEL rules' verdict on it.
type SpecCheck = (i64, Result<(), Invalid>);

pub struct Context {
    pub client: Client,
    pub recorder: events::Recorder,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    pub http: reqwest::Client,
    /// Keyed by policy uid.
    pub baselines: Mutex<HashMap<String, Baseline>>,
    /// Keyed by policy uid.
    pub written: std::sync::Mutex<HashMap<String, Written>>,
    /// The CEL rules' verdict on each policy's spec, by uid, with the generation it was made for:
    /// the rules read only the spec, and evaluating them (regexes compiled per evaluation) was
    /// the costliest part of a reconcile.
    spec_checks: std::sync::Mutex<HashMap<String, SpecCheck>>,
    /// When this process began acting: time before it never counts against a deadline.
    pub awake_since: Timestamp,
    /// Every policy the controller watches (to tell which one holds a shared target).
    pub policies: OnceLock<Store<RedisPoolPolicy>>,
    /// Which policies name which Deployment, kept by the policy watch's events.
    pub targets: index::TargetIndex,
    /// Every HorizontalPodAutoscaler in the watched namespaces.
    pub hpas: OnceLock<Store<HorizontalPodAutoscaler>>,
    /// Every Deployment in the watched namespaces, slimmed to what decisions read and frozen.
    pub deployments: OnceLock<Store<FrozenDeployment>>,
    /// The canary pods (label `redispool.io/track=canary`), slimmed to what analyses read.
    pub canary_pods: OnceLock<Store<Pod>>,
    /// Consecutive failed reconciles per policy, for the error backoff.
    failures: std::sync::Mutex<HashMap<ObjectRef<RedisPoolPolicy>, u32>>,
    /// The shared Redis budgets: a lock per server, and what each policy recorded last.
    pub budgets: budgets::Budgets,
    /// Clients for the other clusters `spec.promotion.requires` reads verdicts from.
    pub remotes: verdicts::RemoteClients,
    /// Delivers the notices of the policies' outboxes.
    pub notifier: notify::Notifier,
    /// Asks approval webhooks in the background.
    pub approvals: Arc<approvals::Asker>,
}

impl Context {
    pub fn new(client: Client, settings: Settings, metrics: Arc<Metrics>) -> Self {
        let http = reqwest::Client::builder().no_proxy().build().expect("http client");
        Context {
            recorder: events::Recorder::new(client.clone(), MANAGER, settings.instance.as_deref()),
            approvals: Arc::new(approvals::Asker::new(client.clone(), http.clone())),
            client,
            metrics,
            settings,
            http,
            baselines: Mutex::default(),
            written: std::sync::Mutex::default(),
            spec_checks: std::sync::Mutex::default(),
            awake_since: Timestamp::from_second(Timestamp::now().as_second()).expect("now is a valid timestamp"),
            policies: OnceLock::new(),
            targets: index::TargetIndex::default(),
            hpas: OnceLock::new(),
            deployments: OnceLock::new(),
            canary_pods: OnceLock::new(),
            failures: std::sync::Mutex::default(),
            budgets: budgets::Budgets::default(),
            remotes: verdicts::RemoteClients::default(),
            notifier: notify::Notifier::default(),
        }
    }

    /// Drops what the process remembers of a policy that is gone.
    async fn forget(&self, policy: &RedisPoolPolicy) {
        self.metrics.forget(&policy.namespace().unwrap_or_default(), &policy.name_any());
        self.baselines.lock().await.remove(&policy.uid().unwrap_or_default());
        self.written.lock().expect("not poisoned").remove(&policy.uid().unwrap_or_default());
        self.spec_checks.lock().expect("not poisoned").remove(&policy.uid().unwrap_or_default());
        self.budgets.forget(&policy.uid().unwrap_or_default());
        self.approvals.forget(&policy.uid().unwrap_or_default());
        self.notifier.forget(&policy.uid().unwrap_or_default());
    }
}

impl Context {
    /// The status to decide on: the stored one, or what this process decided after it and has
    /// not written yet.
    pub fn status_of(&self, policy: &RedisPoolPolicy) -> RedisPoolPolicyStatus {
        let written = self.written.lock().expect("not poisoned");
        match written.get(&policy.uid().unwrap_or_default()).and_then(|w| w.pending.as_deref()) {
            Some((follows, decided)) if follows.as_ref() == policy.status.as_ref() => decided.clone(),
            _ => policy.status.clone().unwrap_or_default(),
        }
    }

    /// Whether the policy's spec passes the CRD's CEL rules, checked once per generation.
    pub fn check_spec(&self, policy: &RedisPoolPolicy) -> Result<(), Invalid> {
        let check = || crate::core::api::validation::validate(policy);
        let (Some(uid), Some(generation)) = (policy.uid(), policy.metadata.generation) else { return check() };
        let known = self.spec_checks.lock().expect("not poisoned").get(&uid).cloned();
        match known {
            Some((checked, result)) if checked == generation => result,
            _ => {
                let result = check();
                self.spec_checks.lock().expect("not poisoned").insert(uid, (generation, result.clone()));
                result
            }
        }
    }

    /// When this process last wrote the policy's status.
    pub fn last_write(&self, policy: &RedisPoolPolicy) -> Option<Timestamp> {
        self.written.lock().expect("not poisoned").get(&policy.uid().unwrap_or_default()).and_then(|w| w.at)
    }

    /// How soon tallies kept for later are due to be written, if any are kept.
    pub fn pending_due(&self, policy: &RedisPoolPolicy, now: Timestamp) -> Option<Duration> {
        let written = self.written.lock().expect("not poisoned");
        let w = written.get(&policy.uid().unwrap_or_default()).filter(|w| w.pending.is_some())?;
        let left =
            w.at.map_or(jiff::SignedDuration::ZERO, |at| crate::core::rollout::TALLIES_EVERY - now.duration_since(at));
        // Overdue (negative): at once, within a second.
        Some(Duration::try_from(left).unwrap_or_default().max(Duration::from_secs(1)))
    }

    /// Remembers what was written (`at`) or decided and kept for later (`pending`).
    pub fn remember_status(
        &self,
        policy: &RedisPoolPolicy,
        at: Option<Timestamp>,
        pending: Option<RedisPoolPolicyStatus>,
    ) {
        let mut written = self.written.lock().expect("not poisoned");
        let w = written.entry(policy.uid().unwrap_or_default()).or_default();
        if at.is_some() {
            w.at = at;
        }
        w.pending = pending.map(|p| Box::new((policy.status.clone(), p)));
    }
}

fn apis<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Marks the process ready once the API server answers a list of policies in the watched scope
/// (connectivity and RBAC both work), retrying until it does. A namespaced operator lists its own
/// namespace: its Role allows nothing wider.
fn ready_when_listable(
    client: Client,
    namespace: Option<String>,
    ready: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let policies: Api<RedisPoolPolicy> = apis(&client, namespace.as_deref());
        loop {
            match policies.list(&kube::api::ListParams::default().limit(1)).await {
                Ok(_) => {
                    ready.store(true, Ordering::Relaxed);
                    tracing::info!("listed policies; ready");
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "cannot list RedisPoolPolicies yet"),
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    })
}

/// How the caches list what they watch: by streaming where the API server serves it (the
/// WatchList feature: objects arrive one by one, so the operator never holds a whole list
/// response, which at a thousand policies was most of its peak memory), else in pages from the
/// API server's watch cache. Asked once, with a short streaming watch of the policies.
async fn list_strategy(client: &Client, namespace: Option<&str>) -> watcher::Config {
    use kube::api::{WatchEvent, WatchParams};
    let policies: Api<RedisPoolPolicy> = apis(client, namespace);
    let probe = async {
        let events = policies.watch(&WatchParams::streaming_lists().timeout(5), "0").await.ok()?;
        futures::pin_mut!(events);
        match events.next().await? {
            Ok(WatchEvent::Added(_) | WatchEvent::Bookmark(_)) => Some(()),
            _ => None,
        }
    };
    match tokio::time::timeout(Duration::from_secs(10), probe).await {
        Ok(Some(())) => watcher::Config::default().streaming_lists(),
        _ => {
            tracing::info!("the API server does not stream lists (WatchList); listing in pages instead");
            watcher::Config::default().any_semantic().page_size(100)
        }
    }
}

/// Runs the controller until a shutdown signal. `ready` turns true once policies can be listed.
pub async fn run(ctx: Arc<Context>, ready: Arc<AtomicBool>) {
    let client = ctx.client.clone();
    let ns = ctx.settings.namespace.clone();
    let policies: Api<RedisPoolPolicy> = apis(&client, ns.as_deref());
    let deployments: Api<FrozenDeployment> = apis(&client, ns.as_deref());
    let hpas: Api<HorizontalPodAutoscaler> = apis(&client, ns.as_deref());
    let config = list_strategy(&client, ns.as_deref()).await;
    let controller = watch_policies(&ctx, policies, config.clone());
    // Deployments: a cache the reconciles read, whose watch also wakes the policies.
    let (deployment_store, deployment_writer) = reflector::store();
    let _ = ctx.deployments.set(deployment_store);
    let deployment_events = reflector(deployment_writer, watcher(deployments, config.clone())).touched_objects();
    // HPAs: a cache the reconciles read, kept by its own watch.
    let (hpa_store, hpa_writer) = reflector::store();
    let _ = ctx.hpas.set(hpa_store.clone());
    let hpa_cache = keep_cache(hpa_writer, watcher(hpas.clone(), config.clone()), "HorizontalPodAutoscalers");
    // Canary pods: a cache the analyses read (their IPs and readiness), by the canary label.
    let (pod_store, pod_writer) = reflector::store();
    let _ = ctx.canary_pods.set(pod_store);
    let pods: Api<Pod> = apis(&client, ns.as_deref());
    let canary_only = config.clone().labels(&format!("{}=canary", crate::core::api::TRACK_LABEL));
    let pod_cache =
        keep_cache(pod_writer, watcher(pods, canary_only).modify(crate::providers::slim_pod), "canary pods");
    // No decision before the HPAs are known: with an empty cache an autoscaled target would look
    // like the operator's to size.
    // Until then the process is not Ready (a standby may have said it was), so a missing RBAC
    // rule shows as a NotReady pod, not as a leader that silently does nothing.
    ready.store(false, Ordering::Relaxed);
    while tokio::time::timeout(Duration::from_secs(10), hpa_store.wait_until_ready()).await.is_err() {
        tracing::warn!("waiting for the HorizontalPodAutoscaler cache (list/watch horizontalpodautoscalers)");
    }
    // A lookup in the index, not a scan of every policy per event.
    let targets_of = |ctx: &Context, ns: String, name: String, owner: Option<String>| {
        let mut policies = ctx.targets.targeting(&ns, &name);
        policies.extend(owner.map(|o| ObjectRef::new(&o).within(&ns)));
        policies
    };
    let (deployment_ctx, hpa_ctx) = (ctx.clone(), ctx.clone());
    // A Deployment wakes the policies that target it, and its owner policy if it is a canary;
    // an HPA wakes the policies of the Deployment it scales.
    let controller = controller
        .with_config(kube::runtime::controller::Config::default().concurrency(ctx.settings.concurrency.max(1)))
        .watches_stream(deployment_events, move |d: FrozenDeployment| {
            let owner = d.owner_references().iter().find(|o| o.kind == "RedisPoolPolicy").map(|o| o.name.clone());
            targets_of(&deployment_ctx, d.namespace().unwrap_or_default(), d.name_any(), owner)
        })
        .watches(hpas, config, move |h: HorizontalPodAutoscaler| {
            let target = h.spec.scale_target_ref.name.clone();
            targets_of(&hpa_ctx, h.namespace().unwrap_or_default(), target, None)
        });
    let readiness = ready_when_listable(client, ns, ready);
    // A delivery that ended wakes its policy, whose next decision takes the notice out.
    let delivered = notify::Notifier::start(ctx.clone());
    controller
        .reconcile_on(delivered)
        .shutdown_on_signal()
        .run(reconcile::reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile failed");
            }
        })
        .await;
    readiness.abort();
    hpa_cache.abort();
    pod_cache.abort();
}

/// The controller over the policies' watch, whose cache the reconciles read (`ctx.policies`).
fn watch_policies(
    ctx: &Arc<Context>,
    policies: Api<RedisPoolPolicy>,
    config: watcher::Config,
) -> Controller<RedisPoolPolicy> {
    // A policy's own changes wake it when they change what it asks for: its spec (generation,
    // bumped by a deletion too), annotations (a person's action) or finalizers. Not its status:
    // the operator writes that itself, and each write woke one more reconcile that found nothing
    // to do. The cache still takes every change.
    let (store, writer) = reflector::store();
    let asks = predicates::generation.combine(predicates::annotations).combine(predicates::finalizers);
    // A deleted policy is forgotten (its metrics, baselines, budget records) when its deletion
    // is seen: one at rest holds no finalizer, so no reconcile runs for its going.
    // The (namespace, target) index follows the same events as the cache.
    let forgetting = ctx.clone();
    let policy_events = reflector(writer, watcher(policies, config).modify(slim_policy))
        .inspect(move |event| {
            let Ok(event) = event else { return };
            forgetting.targets.apply(event);
            if let watcher::Event::Delete(policy) = event {
                let (ctx, policy) = (forgetting.clone(), policy.clone());
                tokio::spawn(async move { ctx.forget(&policy).await });
            }
        })
        .applied_objects()
        .predicate_filter(asks, PredicateConfig::default());
    let _ = ctx.policies.set(store.clone());
    Controller::for_stream(policy_events, store)
}

/// Keeps a cache that only reconciles read (it wakes none) in a task of its own, retrying its
/// watch with backoff and saying what it cannot watch.
fn keep_cache<K>(
    writer: reflector::store::Writer<K>,
    events: impl futures::Stream<Item = watcher::Result<watcher::Event<K>>> + Send + 'static,
    what: &'static str,
) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource + Clone + Send + Sync + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    tokio::spawn(reflector(writer, events).default_backoff().applied_objects().for_each(move |r| async move {
        if let Err(e) = r {
            tracing::warn!(error = %e, "cannot watch {what}");
        }
    }))
}

/// Keeps of a policy what decisions read, for the cache: not who wrote which field, nor
/// kubectl's client-side-apply copy of the whole object.
fn slim_policy(policy: &mut RedisPoolPolicy) {
    policy.metadata.managed_fields = None;
    if let Some(a) = policy.metadata.annotations.as_mut() {
        a.remove(crate::core::deployments::LAST_APPLIED_ANNOTATION);
    }
}

/// Why the operator stopped, or could not start.
#[derive(Debug, thiserror::Error)]
pub enum Stopped {
    #[error("kubeconfig {path}: {why}")]
    Kubeconfig { path: PathBuf, why: String },
    #[error("no Kubernetes configuration found: {0}")]
    NoConfiguration(String),
    #[error("Kubernetes client: {0}")]
    Client(String),
    #[error("metrics server on {addr}: {why}")]
    MetricsServer { addr: std::net::SocketAddr, why: String },
    #[error("leader election Lease {lease}: {why}")]
    Lease { lease: String, why: String },
    #[error("the leader election task stopped")]
    ElectionStopped,
    #[error("lost the Lease {0}; stopping so that only the leader writes")]
    LostLease(String),
}

/// Connects, serves probes and metrics, and runs the controller until a signal.
pub async fn start(options: Options) -> std::result::Result<(), Stopped> {
    let unusable = |path: &PathBuf| {
        let path = path.clone();
        move |e: kube::config::KubeconfigError| Stopped::Kubeconfig { path, why: e.to_string() }
    };
    let config = match &options.kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(unusable(path))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.map_err(unusable(path))?
        }
        None => kube::Config::infer().await.map_err(|e| Stopped::NoConfiguration(e.to_string()))?,
    };
    let metrics = Arc::new(Metrics::default());
    let client = kube::client::ClientBuilder::try_from(config)
        .map_err(|e| Stopped::Client(e.to_string()))?
        .with_layer(&requests::CountRequests(metrics.api_requests.clone()))
        .build();
    let settings = options.settings.clone();
    let ready = Arc::new(AtomicBool::new(false));
    let server = tokio::spawn(metrics::serve(options.metrics_addr, metrics.clone(), ready.clone()));
    tracing::info!(environment = ?settings.environment, namespace = ?settings.namespace, "starting redis-pool-operator");
    let work = async {
        if options.leader_election {
            lead(client, &options, metrics, ready).await
        } else {
            run(Arc::new(Context::new(client, settings, metrics)), ready).await;
            Ok(())
        }
    };
    tokio::select! {
        r = work => r,
        r = server => match r {
            Ok(Err(e)) => Err(Stopped::MetricsServer { addr: options.metrics_addr, why: e.to_string() }),
            _ => Err(Stopped::MetricsServer { addr: options.metrics_addr, why: "it stopped".into() }),
        },
    }
}

/// Waits for the Lease, then runs the controller for as long as it is held. Losing it ends the
/// process: a former leader must stop writing at once, and a restart makes it a clean standby.
async fn lead(
    client: Client,
    args: &Options,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
) -> std::result::Result<(), Stopped> {
    let lease = format!("{}/{}", args.lease_namespace, args.lease_name);
    let identity = args.settings.instance.clone().unwrap_or_else(|| format!("{}-{}", hostname(), std::process::id()));
    let duration = args.lease_duration.max(2);
    let manager = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &args.lease_name)
        .with_namespace(&args.lease_namespace)
        .with_identity(&identity)
        .with_duration(duration)
        .with_grace((duration / 3).max(1))
        .build()
        .await
        .map_err(|e| Stopped::Lease { lease: lease.clone(), why: e.to_string() })?;
    let (mut leading, task) = manager.watch().await;
    // A standby is ready once it can list policies in its scope: it serves probes and waits.
    let standby = ready_when_listable(client.clone(), args.settings.namespace.clone(), ready.clone());
    tracing::info!(%identity, lease = %args.lease_name, "waiting to lead");
    while !*leading.borrow_and_update() {
        leading.changed().await.map_err(|_| Stopped::ElectionStopped)?;
    }
    tracing::info!(%identity, "leading");
    standby.abort();
    // Deadlines count from when this leader began: a hand-over gap is no one's time.
    let ctx = Arc::new(Context::new(client, args.settings.clone(), metrics));
    let lost = async {
        loop {
            if leading.changed().await.is_err() || !*leading.borrow_and_update() {
                return;
            }
        }
    };
    let result = tokio::select! {
        _ = run(ctx, ready) => Ok(()),
        _ = lost => Err(Stopped::LostLease(lease)),
    };
    drop(leading);
    let _ = task.await;
    result
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "redis-pool-operator".into())
}

/// Retries a failed reconcile with a per-policy exponential backoff (1 s doubling to 5 min); a
/// write conflict or a release in progress retries at once.
fn error_policy(policy: Arc<RedisPoolPolicy>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.errors.get_or_create(&metrics::ErrorLabels { error: error.metric_label().into() }).inc();
    ctx.metrics.reconciles.get_or_create(&metrics::ResultLabels { result: "error".into() }).inc();
    if let Error::Releasing(why) = error {
        tracing::info!(policy = %policy.name_any(), namespace = ?policy.namespace(), %why, "releasing the target");
        return Action::requeue(Duration::from_secs(1));
    }
    tracing::warn!(policy = %policy.name_any(), namespace = ?policy.namespace(), %error, "reconcile failed; retrying");
    if error.metric_label() == "conflict" {
        return Action::requeue(Duration::from_secs(1));
    }
    let failures = {
        let mut f = ctx.failures.lock().expect("not poisoned");
        let n = f.entry(ObjectRef::from_obj(&*policy)).or_default();
        *n = n.saturating_add(1);
        *n
    };
    Action::requeue(Duration::from_secs(1u64 << failures.min(9).saturating_sub(1)).min(Duration::from_secs(300)))
}

/// A reconcile succeeded: the next failure starts the backoff over.
fn reset_backoff(ctx: &Context, policy: &RedisPoolPolicy) {
    ctx.failures.lock().expect("not poisoned").remove(&ObjectRef::from_obj(policy));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(generation: i64, interval: &str) -> RedisPoolPolicy {
        let yaml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/auth-api.yaml")).unwrap();
        let mut p = serde_json::to_value(crate::core::api::validation::parse_policy(&yaml).unwrap()).unwrap();
        p["spec"]["rollout"]["analysis"]["interval"] = interval.into();
        p["metadata"]["uid"] = "uid-1".into();
        p["metadata"]["generation"] = generation.into();
        serde_json::from_value(p).unwrap()
    }

    #[tokio::test]
    async fn a_spec_is_checked_once_per_generation() {
        // A client that is never used: checking a spec reads nothing.
        let client = Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
        let settings = Settings {
            concurrency: 1,
            environment: None,
            namespace: None,
            instance: None,
            cluster_windows: vec![],
            cluster_subscriptions: vec![],
            secrets_namespace: "default".into(),
        };
        let ctx = Context::new(client, settings, Arc::default());
        assert_eq!(ctx.check_spec(&policy(1, "30s")), Ok(()));
        // The API server enforces the same rules; an operator that checked every reconcile would
        // see this spec only under a new generation, so the verdict for generation 1 stands.
        assert_eq!(ctx.check_spec(&policy(1, "soon")), Ok(()), "checked once per generation");
        let invalid = ctx.check_spec(&policy(2, "soon")).unwrap_err().to_string();
        assert!(invalid.contains("spec.rollout.analysis.interval must be a duration like 30s"), "{invalid}");
        assert_eq!(ctx.check_spec(&policy(3, "1m")), Ok(()), "a fixed spec is valid again");
    }
}
