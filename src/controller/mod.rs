//! The controller: kube-runtime wiring around the pure core.
//!
//! Each reconcile observes (policy, target, canary, signals), decides through
//! [`crate::rollout::decide`], acts with server-side apply under one field manager, and records
//! status and Events. A reconcile that changes nothing writes nothing.

pub mod deployments;
mod error;
pub mod metrics;
mod reconcile;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tokio::sync::Mutex;

pub use error::{Error, Result};
use metrics::Metrics;

use crate::analysis::pods::PoolHealth;
use crate::api::RedisPoolPolicy;

/// The one field manager for every write the operator makes.
pub const MANAGER: &str = "redis-pool-operator";

#[derive(Clone, Debug)]
pub struct Settings {
    /// The tier for policies that do not name one.
    pub environment: Option<String>,
    /// Watch one namespace only; all when None.
    pub namespace: Option<String>,
    /// Identity for Events (the pod name in a cluster).
    pub instance: Option<String>,
}

/// Counters seen at the previous analysis, so the next one measures only its own interval.
#[derive(Default, Debug, Clone)]
pub struct Baseline {
    pub pods: HashMap<String, PoolHealth>,
    pub rejected_connections: Option<i64>,
}

pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    pub http: reqwest::Client,
    /// Keyed by policy uid.
    pub baselines: Mutex<HashMap<String, Baseline>>,
}

impl Context {
    pub fn new(client: Client, settings: Settings, metrics: Arc<Metrics>) -> Self {
        let reporter = Reporter { controller: MANAGER.into(), instance: settings.instance.clone() };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            settings,
            http: reqwest::Client::builder().no_proxy().build().expect("http client"),
            baselines: Mutex::default(),
        }
    }
}

/// Runs the controller until a shutdown signal. `ready` turns true once the policy cache is
/// synced.
pub async fn run(ctx: Arc<Context>, ready: Arc<AtomicBool>) {
    let client = ctx.client.clone();
    let (policies, deployments): (Api<RedisPoolPolicy>, Api<Deployment>) = match &ctx.settings.namespace {
        Some(ns) => (Api::namespaced(client.clone(), ns), Api::namespaced(client.clone(), ns)),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let config = watcher::Config::default().any_semantic();
    let policies_probe = policies.clone();
    // Our own status writes wake the policy once more; that reconcile finds nothing to change
    // and writes nothing, because the status is a pure function of what it observes.
    let controller = Controller::new(policies, config.clone());
    let store = controller.store();
    let mapper_store = store.clone();
    // A Deployment wakes the policies that target it, and its owner policy if it is a canary.
    let controller = controller.watches(deployments, config, move |d: Deployment| {
        let ns = d.namespace().unwrap_or_default();
        let name = d.name_any();
        let owner = d.owner_references().iter().find(|o| o.kind == "RedisPoolPolicy").map(|o| o.name.clone());
        mapper_store
            .state()
            .into_iter()
            .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
            .filter(|p| p.spec.target_ref.name == name || owner.as_deref() == Some(p.name_any().as_str()))
            .map(|p| ObjectRef::from_obj(&*p))
            .collect::<Vec<_>>()
    });
    // Ready once the API server answers a list of policies: connectivity and RBAC both work.
    let readiness = {
        let policies = policies_probe;
        tokio::spawn(async move {
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
    };
    controller
        .shutdown_on_signal()
        .run(reconcile::reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "reconcile failed");
            }
        })
        .await;
    readiness.abort();
}

/// Connects, serves probes and metrics, and runs the controller until a signal.
pub async fn start(args: crate::cli::RunArgs) -> std::result::Result<(), String> {
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig =
                kube::config::Kubeconfig::read_from(path).map_err(|e| format!("kubeconfig {}: {e}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                .await
                .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?
        }
        None => kube::Config::infer().await.map_err(|e| format!("no Kubernetes configuration found: {e}"))?,
    };
    let client = Client::try_from(config).map_err(|e| format!("Kubernetes client: {e}"))?;
    let settings = Settings {
        environment: args.environment.clone(),
        namespace: args.namespace.clone(),
        instance: args.instance.clone(),
    };
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let server = tokio::spawn(metrics::serve(args.metrics_addr, metrics.clone(), ready.clone()));
    tracing::info!(environment = ?settings.environment, namespace = ?settings.namespace, "starting redis-pool-operator");
    let ctx = Arc::new(Context::new(client.clone(), settings, metrics));
    let work = async {
        if args.leader_election {
            lead(client, &args, ctx, ready).await
        } else {
            run(ctx, ready).await;
            Ok(())
        }
    };
    tokio::select! {
        r = work => r,
        r = server => match r {
            Ok(Err(e)) => Err(format!("metrics server on {}: {e}", args.metrics_addr)),
            _ => Err("metrics server stopped".into()),
        },
    }
}

/// Waits for the Lease, then runs the controller for as long as it is held. Losing it ends the
/// process: a former leader must stop writing at once, and a restart makes it a clean standby.
async fn lead(
    client: Client,
    args: &crate::cli::RunArgs,
    ctx: Arc<Context>,
    ready: Arc<AtomicBool>,
) -> std::result::Result<(), String> {
    let identity = args.instance.clone().unwrap_or_else(|| format!("{}-{}", hostname(), std::process::id()));
    let duration = args.lease_duration.max(2);
    let manager = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), &args.lease_name)
        .with_namespace(&args.lease_namespace)
        .with_identity(&identity)
        .with_duration(duration)
        .with_grace((duration / 3).max(1))
        .build()
        .await
        .map_err(|e| format!("leader election Lease {}/{}: {e}", args.lease_namespace, args.lease_name))?;
    let (mut leading, task) = manager.watch().await;
    // A standby is ready: it serves probes and waits.
    {
        let policies: Api<RedisPoolPolicy> = Api::all(client);
        let ready = ready.clone();
        tokio::spawn(async move {
            if policies.list(&kube::api::ListParams::default().limit(1)).await.is_ok() {
                ready.store(true, Ordering::Relaxed);
            }
        });
    }
    tracing::info!(%identity, lease = %args.lease_name, "waiting to lead");
    while !*leading.borrow_and_update() {
        leading.changed().await.map_err(|_| "the leader election task stopped".to_string())?;
    }
    tracing::info!(%identity, "leading");
    let lost = async {
        loop {
            if leading.changed().await.is_err() || !*leading.borrow_and_update() {
                return;
            }
        }
    };
    let result = tokio::select! {
        _ = run(ctx, ready) => Ok(()),
        _ = lost => Err(format!("lost the Lease {}/{}; stopping so that only the leader writes", args.lease_namespace, args.lease_name)),
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

fn error_policy(policy: Arc<RedisPoolPolicy>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(policy = %policy.name_any(), namespace = ?policy.namespace(), %error, "reconcile failed; retrying");
    ctx.metrics.errors.get_or_create(&metrics::ErrorLabels { error: error.metric_label().into() }).inc();
    ctx.metrics.reconciles.get_or_create(&metrics::ResultLabels { result: "error".into() }).inc();
    Action::requeue(Duration::from_secs(if error.metric_label() == "conflict" { 1 } else { 5 }))
}
