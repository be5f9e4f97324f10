//! One reconcile: observe -> decide -> act -> record.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::events::{Event, EventType as KubeEventType};
use kube::{Api, Resource, ResourceExt};

use super::deployments::{
    build_canary, canary_view, target_container, target_env, target_promotion_patch, target_view,
};
use super::{Baseline, Context, Error, MANAGER, Result};
use crate::analysis::pods::{PoolHealth, aggregate, fetch};
use crate::analysis::prometheus::{self, Scope};
use crate::analysis::redis::{RedisSignals, RedisTarget, probe};
use crate::analysis::{Measurements, evaluate, provider_failed};
use crate::api::validation::validate;
use crate::api::{
    ACTION_ANNOTATION, MetricsProvider, Phase, RedisPoolPolicy, RedisPoolPolicyStatus, TRACK_LABEL, canary_name,
};
use crate::render::{config_hash, observed_connections_per_pod, render_env};
use crate::rollout::{
    self, Action, AnalysisRun, Desired, EventType, Input, ManualAction, Observed, analysis_due, durations,
};
use crate::sizing::{Budget, RolloutPlan, default_surge, tier};

pub async fn reconcile(policy: Arc<RedisPoolPolicy>, ctx: Arc<Context>) -> Result<Requeue> {
    let start = Instant::now();
    let result = reconcile_inner(&policy, &ctx).await;
    ctx.metrics.duration.observe(start.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.metrics.reconciles.get_or_create(&super::metrics::ResultLabels { result: "ok".into() }).inc();
    }
    result
}

/// Seconds only: the API server stores times at second precision, and a status compared after a
/// round trip must be equal for the steady state to write nothing.
fn now() -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second()).expect("now is a valid timestamp")
}

async fn reconcile_inner(cached: &RedisPoolPolicy, ctx: &Context) -> Result<Requeue> {
    let ns = cached.namespace().ok_or(Error::NoNamespace)?;
    let name = cached.name_any();
    // Decide on the stored policy, not the cache: a Deployment event can wake us before our own
    // last status write reached the cache, and a decision on an old status would step back.
    let policies: Api<RedisPoolPolicy> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(fresh) = policies.get_opt(&name).await? else {
        ctx.metrics.forget(&ns, &name);
        return Ok(Requeue::await_change());
    };
    let policy = &fresh;
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    if policy.metadata.deletion_timestamp.is_some() {
        return finalize(policy, ctx, &policies, &deployments).await;
    }
    if !policy.finalizers().iter().any(|f| f == FINALIZER) {
        // Deleting a policy mid-rollout must give the target its replicas back first.
        let patch = serde_json::json!({"metadata": {"finalizers": [FINALIZER], "resourceVersion": policy.metadata.resource_version}});
        let params = PatchParams { field_manager: Some(MANAGER.into()), ..Default::default() };
        policies.patch(&name, &params, &Patch::Merge(&patch)).await.map_err(Error::write("add the finalizer"))?;
        ctx.metrics.count_write("finalizer");
        return Ok(Requeue::requeue(Duration::ZERO));
    }
    let spec = &policy.spec;
    let status = policy.status.clone().unwrap_or_default();
    let now = now();

    // Observe.
    let target = deployments.get_opt(&spec.target_ref.name).await?;
    let canary = deployments.get_opt(&canary_name(&spec.target_ref.name)).await?;
    let environment = spec.environment.clone().or(ctx.settings.environment.clone());
    let planned = plan(policy, &status, target.as_ref(), environment.as_deref());
    let (desired, desired_env, target_result) = match planned {
        Ok((desired, env)) => {
            let view = target
                .as_ref()
                .ok_or_else(|| format!("target Deployment {ns}/{} not found", spec.target_ref.name))
                .and_then(|t| target_view(policy, t));
            (desired, env, view)
        }
        Err(why) => (
            Desired {
                environment: environment.clone().unwrap_or_default(),
                hash: String::new(),
                plan: empty_plan(policy),
            },
            vec![],
            Err(why),
        ),
    };

    // Signals: the Redis server (budget and rejected connections), the canary pods (gates).
    let needs_redis = spec.redis.is_some()
        && target_result.as_ref().is_ok_and(|t| t.config_hash != desired.hash || status.phase.is_active());
    let redis = if needs_redis { Some(redis_signals(policy, ctx, &ns).await) } else { None };
    let mut desired = desired;
    if let Some(Ok(signals)) = &redis
        && spec.redis.as_ref().and_then(|r| r.max_clients).is_none()
        && target.is_some()
    {
        // Only the budget depends on the server's maxclients: check the same peak against it.
        let b = &desired.plan.budget;
        desired.plan.budget = Budget::check(b.peak_connections, signals.max_clients, b.utilization);
    } else if let Some(Err(e)) = &redis
        && !status.phase.is_active()
        && spec.redis.as_ref().and_then(|r| r.max_clients).is_none()
    {
        desired.plan.budget = desired.plan.budget.clone().unknown(e.clone());
    }

    let (analysis, next_baseline) = match analysis_due(spec, &status, now) {
        Some(step) => {
            let (run, baseline) = analyse(policy, ctx, &ns, step, redis.as_ref()).await;
            (Some(run), baseline)
        }
        None => (None, None),
    };
    if let Some(run) = &analysis {
        let labels = super::metrics::VerdictLabels {
            namespace: ns.clone(),
            policy: name.clone(),
            verdict: format!("{:?}", run.analysis.verdict),
        };
        ctx.metrics.analyses.get_or_create(&labels).inc();
    }

    let (action, bad_action) = manual_action(policy);
    let observed = Observed { target: target_result, canary: canary.as_ref().map(|c| canary_view(policy, c)) };
    let generation = policy.metadata.generation.unwrap_or(0);
    let input = Input {
        spec,
        generation,
        status: &status,
        desired: &desired,
        observed: &observed,
        analysis: analysis.as_ref(),
        action,
        now,
    };
    let mut decision = rollout::decide(&input);
    if let Some(Err(e)) = &redis {
        rollout::set_condition(&mut decision.status, "RedisReachable", "False", "RedisUnreachable", e, now, generation);
    } else if let Some(Ok(s)) = &redis {
        // Only stable facts: a message that changed every time would write status every time.
        let address = spec.redis.as_ref().map_or("", |r| r.address.as_str());
        let msg = match s.max_clients {
            Some(m) => format!("{address} answers; maxclients {m}"),
            None => format!("{address} answers; maxclients unknown (set spec.redis.maxClients)"),
        };
        rollout::set_condition(&mut decision.status, "RedisReachable", "True", "Reachable", &msg, now, generation);
    }

    // Act, in order; a failure leaves status unwritten so the next reconcile decides again.
    for a in &decision.actions {
        act(a, policy, ctx, &deployments, target.as_ref(), &desired_env).await?;
    }
    if let Some(raw) = &bad_action {
        publish(
            ctx,
            policy,
            EventType::Warning,
            "ManualActionIgnored",
            format!("{ACTION_ANNOTATION}={raw:?} ignored: use promote, abort, retry, pause or resume"),
        )
        .await;
    }
    let mut status_version = policy.metadata.resource_version.clone();
    if decision.action_consumed || bad_action.is_some() {
        let patch = serde_json::json!({"metadata": {"annotations": {ACTION_ANNOTATION: null}}});
        let params = PatchParams { field_manager: Some(MANAGER.into()), ..Default::default() };
        let updated = policies
            .patch(&name, &params, &Patch::Merge(&patch))
            .await
            .map_err(Error::write("remove the action annotation"))?;
        status_version = updated.metadata.resource_version;
        ctx.metrics.count_write("annotation");
    }
    if let Some(b) = next_baseline {
        // This analysis's counters are where the next one starts.
        ctx.baselines.lock().await.insert(policy.uid().unwrap_or_default(), b);
    }

    // Record.
    let s = &decision.status;
    ctx.metrics.set_phase(&ns, &name, s.phase, s.weight.unwrap_or(0), s.replicas.as_ref().map_or(0, |r| r.canary));
    if policy.status.as_ref() != Some(s) {
        log_transition(&ns, &name, policy.status.as_ref(), s, &decision.actions);
        // resourceVersion makes this write conditional: if anyone wrote the policy since we read
        // it, the write fails with a conflict and the next reconcile decides again.
        let patch = serde_json::json!({
            "apiVersion": "redispool.io/v1alpha1",
            "kind": "RedisPoolPolicy",
            "metadata": {"resourceVersion": status_version},
            "status": s
        });
        policies
            .patch_status(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch))
            .await
            .map_err(Error::write("write status"))?;
        ctx.metrics.count_write("status");
    }
    if !s.phase.is_active() {
        ctx.baselines.lock().await.remove(&policy.uid().unwrap_or_default());
    }
    Ok(requeue(policy, s))
}

/// Held until a deleted policy has given its target back the replicas a rollout took.
pub const FINALIZER: &str = "redispool.io/restore-target";

/// A deleted policy: restore the target's replicas (the canary goes with its owner), then let go.
async fn finalize(
    policy: &RedisPoolPolicy,
    ctx: &Context,
    policies: &Api<RedisPoolPolicy>,
    deployments: &Api<Deployment>,
) -> Result<Requeue> {
    let name = policy.name_any();
    let status = policy.status.clone().unwrap_or_default();
    if status.phase.is_active()
        && let (Some(total), Some(target)) =
            (status.replicas.as_ref().map(|r| r.total), deployments.get_opt(&policy.spec.target_ref.name).await?)
    {
        let spec_replicas = target.spec.replicas.unwrap_or(1);
        if spec_replicas < total {
            let patch = serde_json::json!({"spec": {"replicas": total}});
            let params = PatchParams { field_manager: Some(MANAGER.into()), ..Default::default() };
            deployments
                .patch(&policy.spec.target_ref.name, &params, &Patch::Merge(&patch))
                .await
                .map_err(Error::write("restore the target"))?;
            ctx.metrics.count_write("target");
            publish(
                ctx,
                policy,
                EventType::Normal,
                "RestoringTarget",
                format!("policy deleted mid-rollout: restoring {} to {total} replicas", policy.spec.target_ref.name),
            )
            .await;
            return Ok(Requeue::requeue(Duration::from_secs(1)));
        }
        let available = target.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0);
        if available < total - super::deployments::max_unavailable(&target) {
            return Ok(Requeue::requeue(Duration::from_secs(1)));
        }
    }
    if let Some(i) = policy.finalizers().iter().position(|f| f == FINALIZER) {
        let patch: json_patch::Patch = serde_json::from_value(serde_json::json!([
            {"op": "test", "path": format!("/metadata/finalizers/{i}"), "value": FINALIZER},
            {"op": "remove", "path": format!("/metadata/finalizers/{i}")}
        ]))
        .expect("a JSON patch");
        policies
            .patch(&name, &PatchParams::default(), &Patch::<()>::Json(patch))
            .await
            .map_err(Error::write("remove the finalizer"))?;
        ctx.metrics.count_write("finalizer");
    }
    ctx.metrics.forget(&policy.namespace().unwrap_or_default(), &name);
    ctx.baselines.lock().await.remove(&policy.uid().unwrap_or_default());
    Ok(Requeue::await_change())
}

fn log_transition(
    ns: &str,
    name: &str,
    before: Option<&RedisPoolPolicyStatus>,
    after: &RedisPoolPolicyStatus,
    actions: &[Action],
) {
    let acts: Vec<String> =
        actions.iter().filter(|a| !matches!(a, Action::Event { .. })).map(|a| format!("{a:?}")).collect();
    tracing::info!(
        namespace = ns,
        policy = name,
        from = ?before.map(|s| (s.phase, s.step)),
        phase = ?after.phase,
        step = ?after.step,
        actions = ?acts,
        message = after.message.as_deref().unwrap_or(""),
        "status"
    );
}

/// How soon to look again without an event: every analysis interval during a rollout.
fn requeue(policy: &RedisPoolPolicy, s: &RedisPoolPolicyStatus) -> Requeue {
    let interval = durations(&policy.spec).interval.unsigned_abs().max(Duration::from_secs(1));
    match s.phase {
        p if p.is_active() => Requeue::requeue(interval.min(Duration::from_secs(30))),
        Phase::Blocked => Requeue::requeue(Duration::from_secs(30)),
        _ => Requeue::requeue(Duration::from_secs(300)),
    }
}

/// The desired configuration and its env, for the environment in force.
fn plan(
    policy: &RedisPoolPolicy,
    status: &RedisPoolPolicyStatus,
    target: Option<&Deployment>,
    environment: Option<&str>,
) -> Result<(Desired, Vec<(String, String)>), String> {
    validate(policy).map_err(|e| format!("invalid spec: {e}"))?;
    let env = environment.ok_or("no environment: set spec.environment or run the operator with --environment")?;
    let t = tier(&policy.spec, env).ok_or_else(|| unknown_tier(policy, env))?;
    let rendered = render_env(&policy.spec, t);
    // During a rollout the target's replicas are ours; the fleet size is what the rollout began with.
    let total = match (target, &status.replicas, status.phase.is_active()) {
        (None, _, _) => t.replicas.unwrap_or(0),
        (Some(_), Some(r), true) => r.total,
        (Some(target), _, _) => t.replicas.unwrap_or(target.spec.replicas.unwrap_or(1)),
    };
    let current = target
        .and_then(|target| target_env(policy, target).ok())
        .and_then(|e| observed_connections_per_pod(&policy.spec.env_names, &e));
    let plan = RolloutPlan::new(&policy.spec, t, total, current, default_surge(total), None);
    Ok((Desired { environment: env.into(), hash: config_hash(&rendered), plan }, rendered))
}

fn unknown_tier(policy: &RedisPoolPolicy, env: &str) -> String {
    let names: Vec<&str> = policy.spec.tiers.iter().map(|t| t.name.as_str()).collect();
    format!(
        "environment {env:?} is not a tier of this policy (tiers: {}); add the tier or set spec.environment",
        names.join(", ")
    )
}

fn empty_plan(policy: &RedisPoolPolicy) -> RolloutPlan {
    let t = crate::api::Tier { name: String::new(), workers: 0, connections_per_worker: 0, replicas: Some(0) };
    RolloutPlan::new(&policy.spec, &t, 0, None, 1, None)
}

fn manual_action(policy: &RedisPoolPolicy) -> (Option<ManualAction>, Option<String>) {
    match policy.annotations().get(ACTION_ANNOTATION) {
        None => (None, None),
        Some(raw) => match raw.parse::<ManualAction>() {
            Ok(a) => (Some(a), None),
            Err(_) => (None, Some(raw.clone())),
        },
    }
}

async fn redis_signals(policy: &RedisPoolPolicy, ctx: &Context, ns: &str) -> Result<RedisSignals, String> {
    let settings = policy.spec.redis.as_ref().expect("checked by the caller");
    let password = match &settings.password_secret_ref {
        None => None,
        Some(r) => {
            let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
            let secret = secrets
                .get_opt(&r.name)
                .await
                .map_err(|e| format!("cannot read Secret {ns}/{}: {e}", r.name))?
                .ok_or_else(|| format!("Secret {ns}/{} (spec.redis.passwordSecretRef) not found", r.name))?;
            let bytes = secret
                .data
                .and_then(|d| d.get(&r.key).cloned())
                .ok_or_else(|| format!("Secret {ns}/{} has no key {:?}", r.name, r.key))?;
            Some(
                String::from_utf8(bytes.0)
                    .map_err(|_| format!("Secret {ns}/{} key {:?} is not UTF-8", r.name, r.key))?,
            )
        }
    };
    let target = RedisTarget { address: settings.address.clone(), password, tls: settings.tls };
    let mut signals = probe(&target, Duration::from_secs(3)).await?;
    if let Some(m) = settings.max_clients {
        signals.max_clients = Some(m);
    }
    Ok(signals)
}

/// Measures the canary of `step` (through its pods or Prometheus, and the Redis server) and
/// evaluates the gates; returns the counters seen, to be the next analysis's baseline.
async fn analyse(
    policy: &RedisPoolPolicy,
    ctx: &Context,
    ns: &str,
    step: i32,
    redis: Option<&Result<RedisSignals, String>>,
) -> (AnalysisRun, Option<Baseline>) {
    let key = policy.uid().unwrap_or_default();
    let previous = ctx.baselines.lock().await.get(&key).cloned().unwrap_or_default();
    let measured = match policy.spec.rollout.metrics.provider {
        MetricsProvider::Pods => measure_pods(policy, ctx, ns, &previous).await,
        MetricsProvider::Prometheus => measure_prometheus(policy, ctx, ns).await,
    };
    let (mut m, pods, errors) = match measured {
        Ok(v) => v,
        // The old baseline stays: the next analysis measures from there.
        Err(e) => return (failed(policy, step, e), None),
    };
    // The server refusing connections is a Redis connection error whoever was refused; a server
    // the operator cannot ask leaves the gate without data (never a Pass), unless it refused the
    // operator itself for want of client slots, which is the very failure the gate looks for.
    match redis {
        Some(Ok(signals)) => {
            let rejected = previous.rejected_connections.map_or(0, |b| (signals.rejected_connections - b).max(0));
            m.redis_connection_errors = m.redis_connection_errors.map(|e| e + rejected);
        }
        Some(Err(e)) if e.contains("max number of clients") => {
            m.redis_connection_errors = Some(m.redis_connection_errors.unwrap_or(0) + 1);
        }
        Some(Err(_)) => m.redis_connection_errors = None,
        None => {}
    }
    let analysis = evaluate(&policy.spec.rollout.analysis, &m);
    // A probe that failed keeps the last count it did see, so rejections during an outage of the
    // probe are still counted by the next one that succeeds.
    let rejected =
        redis.and_then(|r| r.as_ref().ok()).map(|s| s.rejected_connections).or(previous.rejected_connections);
    let next = Baseline { pods, rejected_connections: rejected };
    (AnalysisRun { step, analysis, provider_error: errors }, Some(next))
}

type Measured = (Measurements, HashMap<String, PoolHealth>, Option<String>);

/// GETs the contract on every ready canary pod and diffs it against the previous analysis.
async fn measure_pods(
    policy: &RedisPoolPolicy,
    ctx: &Context,
    ns: &str,
    previous: &Baseline,
) -> Result<Measured, String> {
    let spec = &policy.spec.rollout.metrics.pods;
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let listed = pods
        .list(&ListParams::default().labels(&canary_selector(policy)))
        .await
        .map_err(|e| format!("cannot list canary pods: {e}"))?
        .items;
    let ready: Vec<(String, String)> = listed
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .filter_map(|p| Some((p.uid()?, p.status.as_ref()?.pod_ip.clone()?)))
        .collect();
    if ready.is_empty() {
        return Err("no ready canary pod to measure".into());
    }
    let fetches = ready.iter().map(|(uid, ip)| async move {
        (uid.clone(), fetch(&ctx.http, ip, spec.port, &spec.path, Duration::from_secs(2)).await)
    });
    let mut samples = HashMap::new();
    let mut errors = Vec::new();
    for (uid, r) in futures::future::join_all(fetches).await {
        match r {
            Ok(h) => {
                samples.insert(uid, h);
            }
            Err(e) => errors.push(e),
        }
    }
    if samples.is_empty() {
        return Err(errors.join("; "));
    }
    let m = aggregate(&samples, &previous.pods);
    Ok((m, samples, (!errors.is_empty()).then(|| errors.join("; "))))
}

async fn measure_prometheus(policy: &RedisPoolPolicy, ctx: &Context, ns: &str) -> Result<Measured, String> {
    let metrics = &policy.spec.rollout.metrics;
    let prom = metrics.prometheus.as_ref().ok_or("spec.rollout.metrics.prometheus is not set")?;
    let deployment = canary_name(&policy.spec.target_ref.name);
    let scope = Scope {
        namespace: ns,
        deployment: &deployment,
        track: "canary",
        interval: &policy.spec.rollout.analysis.interval,
    };
    let m = prometheus::measure(&ctx.http, &prom.address, &prom.queries, &scope).await?;
    Ok((m, HashMap::new(), None))
}

fn failed(policy: &RedisPoolPolicy, step: i32, error: String) -> AnalysisRun {
    AnalysisRun { step, analysis: provider_failed(&policy.spec.rollout.analysis, &error), provider_error: Some(error) }
}

fn canary_selector(policy: &RedisPoolPolicy) -> String {
    format!("{TRACK_LABEL}=canary,{}={}", super::deployments::POLICY_LABEL, policy.name_any())
}

async fn act(
    action: &Action,
    policy: &RedisPoolPolicy,
    ctx: &Context,
    deployments: &Api<Deployment>,
    target: Option<&Deployment>,
    desired_env: &[(String, String)],
) -> Result<()> {
    let spec = &policy.spec;
    let target_name = &spec.target_ref.name;
    let apply = PatchParams::apply(MANAGER).force();
    match action {
        Action::ApplyCanary { replicas } => {
            let target = target.expect("the core only acts on an observed target");
            let canary = build_canary(policy, target, desired_env, *replicas).map_err(Error::Build)?;
            deployments
                .patch(&canary_name(target_name), &apply, &Patch::Apply(&canary))
                .await
                .map_err(Error::write("apply the canary"))?;
            ctx.metrics.count_write("canary");
        }
        Action::ScaleTarget { replicas } => {
            let patch = serde_json::json!({"spec": {"replicas": replicas}});
            let params = PatchParams { field_manager: Some(MANAGER.into()), ..Default::default() };
            deployments
                .patch(target_name, &params, &Patch::Merge(&patch))
                .await
                .map_err(Error::write("scale the target"))?;
            ctx.metrics.count_write("target");
        }
        Action::PromoteTarget { replicas } => {
            let target = target.expect("the core only acts on an observed target");
            let container = target_container(policy, target).map(|c| c.name.clone()).unwrap_or_default();
            let patch = target_promotion_patch(&container, desired_env, *replicas);
            deployments
                .patch(target_name, &apply, &Patch::Apply(&patch))
                .await
                .map_err(Error::write("promote the target"))?;
            ctx.metrics.count_write("target");
        }
        Action::DeleteCanary => {
            match deployments.delete(&canary_name(target_name), &DeleteParams::background()).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(Error::write("delete the canary")(e)),
            }
            ctx.metrics.count_write("canary");
        }
        Action::Event { kind, reason, message } => publish(ctx, policy, *kind, reason, message.clone()).await,
    }
    Ok(())
}

fn note_action(note: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(note.as_bytes());
    format!("Reconcile-{:02x}{:02x}{:02x}{:02x}", digest[0], digest[1], digest[2], digest[3])
}

/// Events are best effort: a failure to record one must not fail the rollout.
async fn publish(ctx: &Context, policy: &RedisPoolPolicy, kind: EventType, reason: &str, note: String) {
    let action = note_action(&note);
    let event = Event {
        type_: match kind {
            EventType::Normal => KubeEventType::Normal,
            EventType::Warning => KubeEventType::Warning,
        },
        reason: reason.into(),
        note: Some(note),
        // kube's Recorder folds Events with the same (type, reason, action) into one series and keeps
        // the first note; a note-derived action keeps "step 2" from being folded into "step 1".
        action,
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &policy.object_ref(&())).await {
        tracing::warn!(error = %e, reason, "could not record an Event");
    }
    ctx.metrics.count_write("event");
}
