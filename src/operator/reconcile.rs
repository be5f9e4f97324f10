//! One reconcile: observe -> decide -> act -> record.

use std::sync::Arc;
use std::time::Instant;

use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action as Requeue;
use kube::{Api, ResourceExt};

use super::act::act;
use super::observe::{Objects, Observation, observe};
use super::{Context, Error, MANAGER, Result};
use crate::core::api::{ACTION_ANNOTATION, FINALIZER, RedisPoolPolicy, RedisPoolPolicyStatus};
use crate::core::rollout::{self, Action, Input, StatusWrite};

pub async fn reconcile(policy: Arc<RedisPoolPolicy>, ctx: Arc<Context>) -> Result<Requeue> {
    let start = Instant::now();
    policy.namespace().ok_or(Error::NoNamespace)?;
    // A policy being deleted gives its target back first, if it holds the finalizer (it holds
    // it only while it has something to give back; see `holds_target`).
    let deleting = policy.metadata.deletion_timestamp.is_some();
    let result = if deleting && !policy.finalizers().iter().any(|f| f == FINALIZER) {
        ctx.forget(&policy).await;
        Ok(Requeue::await_change())
    } else {
        step(&policy, &ctx, deleting).await
    };
    ctx.metrics.duration.observe(start.elapsed().as_secs_f64());
    if result.is_ok() {
        super::reset_backoff(&ctx, &policy);
        ctx.metrics.reconciles.get_or_create(&super::metrics::ResultLabels { result: "ok".into() }).inc();
    }
    result
}

/// Seconds only: the API server stores times at second precision, and a status compared after a
/// round trip must be equal for the steady state to write nothing.
fn now() -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second()).expect("now is a valid timestamp")
}

/// Observe, decide through the pure core, act in order, record. Decided on the caches first: a
/// decision that changes nothing ends there, having read nothing from the API server; one that
/// would write is decided again on objects read fresh, unless they are the very ones cached.
async fn step(cached: &RedisPoolPolicy, ctx: &Context, deleting: bool) -> Result<Requeue> {
    let now = now();
    let mut objects = Objects::cached(cached, ctx).await?;
    loop {
        let mut o = observe(objects, ctx, now).await?;
        // Fresh objects may show a deletion the cache had not: decide it as one.
        let deleting = deleting || o.policy().metadata.deletion_timestamp.is_some();
        if deleting && !o.policy().finalizers().iter().any(|f| f == FINALIZER) {
            ctx.forget(o.policy()).await;
            return Ok(Requeue::await_change());
        }
        // Policies on one Redis server decide, act and record one at a time, each seeing what
        // the others decided last, so that two rollouts never both start on room only one of
        // them has. Observing (probes, scrapes) stays outside: nobody waits on another's calls.
        let lock = super::budgets::group_of(o.policy()).map(|g| ctx.budgets.lock(&g));
        let _deciding = match &lock {
            Some(l) => Some(l.lock().await),
            None => None,
        };
        o.observed.peers = ctx.budgets.peers(ctx.policies.get(), o.policy());
        let decision = rollout::decide(&Input {
            spec: &o.policy().spec,
            generation: o.policy().metadata.generation.unwrap_or(0),
            status: &o.status,
            desired: &o.desired,
            observed: &o.observed,
            analysis: o.analysis.as_ref(),
            action: o.action.clone(),
            action_by: crate::core::api::action_by(o.policy()),
            now,
            awake_since: ctx.awake_since,
            deleting,
            cluster_windows: &ctx.settings.cluster_windows,
            cluster_subscriptions: &ctx.settings.cluster_subscriptions,
            deliveries: &ctx.notifier.results(o.policy()),
        });
        let write = status_write(&o, &decision, ctx, now);
        if !o.objects.fresh && rollout::needs_fresh(&decision, write) {
            match Objects::fresh(o.policy(), ctx).await? {
                None => {
                    ctx.forget(o.policy()).await;
                    return Ok(Requeue::await_change());
                }
                Some(fresh) if fresh.versions() != o.objects.versions() => {
                    objects = fresh;
                    continue;
                }
                Some(_) => {}
            }
        }
        return carry_out(&o, ctx, decision, write, deleting, now).await;
    }
}

/// A decision that acts (an Event included) writes its status with it; otherwise tallies wait.
fn status_write(o: &Observation, decision: &rollout::Decision, ctx: &Context, now: Timestamp) -> StatusWrite {
    let last_write = if decision.actions.is_empty() { ctx.last_write(o.policy()) } else { None };
    rollout::status_write(o.policy().status.as_ref(), &decision.status, last_write, now)
}

/// Acts on a decision, in order, and records it.
async fn carry_out(
    o: &Observation,
    ctx: &Context,
    decision: rollout::Decision,
    write: StatusWrite,
    deleting: bool,
    now: Timestamp,
) -> Result<Requeue> {
    // What this decision means for a shared Redis, before anything is applied: if acting or
    // recording fails half way, the others on the server still count this rollout.
    let s = &decision.status;
    ctx.budgets.record(o.policy(), s.redis_connections.as_ref(), s.phase.is_active());
    let holds = deleting || rollout::holds_target(&decision, &o.observed);
    // Before the first write a deletion would have to undo. The policy as that left it is the
    // version the status is written over.
    let held = if holds { hold(o.policy(), ctx).await? } else { None };
    let current = held.as_ref().unwrap_or(o.policy());
    // Act, in order; a failure leaves status unwritten so the next reconcile decides again.
    // What the stored status has to tell goes out even if acting fails below.
    ctx.notifier.enqueue(ctx, o.policy(), o.policy().status.as_ref());
    for a in &decision.actions {
        act(a, o, ctx).await?;
    }
    let written = record(o, current, ctx, &decision, write, now).await?;
    // What the stored status still has to tell: queued, never awaited.
    let stored = written.as_ref().unwrap_or(current);
    ctx.notifier.enqueue(ctx, o.policy(), stored.status.as_ref());
    // The finalizer goes from the version this decision was made on, as this decision left it.
    let latest = written.as_ref().unwrap_or(current);
    if deleting {
        if !decision.released {
            return Err(Error::Releasing(decision.status.message.unwrap_or_default()));
        }
        if !let_go(latest, ctx).await? {
            // The policy changed since (a change that may wake nothing): look again soon.
            return Ok(Requeue::requeue(std::time::Duration::from_secs(1)));
        }
        ctx.forget(o.policy()).await;
        return Ok(Requeue::await_change());
    }
    if !holds && !let_go(latest, ctx).await? {
        // At rest, but the policy changed since: its finalizer is decided again soon.
        return Ok(Requeue::requeue(std::time::Duration::from_secs(1)));
    }
    if !rollout::keeps_baseline(&o.policy().spec, &decision.status) {
        ctx.baselines.lock().await.remove(&o.policy().uid().unwrap_or_default());
    }
    // Tallies kept for later are written by a reconcile within the minute, whatever else wakes it.
    let after = rollout::next_look(&o.policy().spec, &decision.status);
    Ok(Requeue::requeue(match ctx.pending_due(o.policy(), now) {
        Some(due) => after.min(due),
        None => after,
    }))
}

/// Adds the finalizer, if the policy does not carry it yet, and returns the policy as that left
/// it. A policy already being deleted cannot take a new finalizer (the API server refuses), so
/// nothing is acted on for it.
async fn hold(policy: &RedisPoolPolicy, ctx: &Context) -> Result<Option<RedisPoolPolicy>> {
    let finalizers = policy.metadata.finalizers.as_deref();
    if finalizers.is_some_and(|f| f.iter().any(|f| f == FINALIZER)) {
        return Ok(None);
    }
    let patch = crate::core::api::add_finalizer_patch(finalizers.filter(|f| !f.is_empty()));
    patch_finalizers(policy, ctx, patch, "add the finalizer").await.map(Some)
}

/// Removes the finalizer, if the policy carries it: from the version decided on only. False
/// when the policy changed since (the next decision is made on what it is now).
async fn let_go(policy: &RedisPoolPolicy, ctx: &Context) -> Result<bool> {
    let version = policy.metadata.resource_version.as_deref().unwrap_or_default();
    let Some(patch) = crate::core::api::remove_finalizer_patch(policy.finalizers(), version) else {
        return Ok(true);
    };
    match patch_finalizers(policy, ctx, patch, "remove the finalizer").await {
        Err(Error::Write { source: kube::Error::Api(e), .. }) if e.code == 422 => Ok(false),
        other => other.map(|_| true),
    }
}

async fn patch_finalizers(
    policy: &RedisPoolPolicy,
    ctx: &Context,
    patch: json_patch::Patch,
    what: &str,
) -> Result<RedisPoolPolicy> {
    let policies: Api<RedisPoolPolicy> = Api::namespaced(ctx.client.clone(), &policy.namespace().unwrap_or_default());
    let params = PatchParams { field_manager: Some(MANAGER.into()), ..Default::default() };
    let patched =
        policies.patch(&policy.name_any(), &params, &Patch::Json::<()>(patch)).await.map_err(Error::write(what))?;
    ctx.metrics.count_write("finalizer");
    Ok(patched)
}

/// Writes what changed: the next baseline, metrics, the status (only when it differs: the
/// steady state writes nothing), and then the consumed action annotation, over `current` (the
/// observed policy, or what the finalizer's write made of it). Returns the policy as the last
/// of these writes left it, if any wrote.
async fn record(
    o: &Observation,
    current: &RedisPoolPolicy,
    ctx: &Context,
    decision: &rollout::Decision,
    write: StatusWrite,
    now: Timestamp,
) -> Result<Option<RedisPoolPolicy>> {
    let mut written = None;
    let name = o.policy().name_any();
    let ns = o.policy().namespace().unwrap_or_default();
    let policies: Api<RedisPoolPolicy> = Api::namespaced(ctx.client.clone(), &ns);
    if let Some(b) = &o.baseline {
        // This analysis's counters are where the next one starts.
        ctx.baselines.lock().await.insert(o.policy().uid().unwrap_or_default(), b.clone());
    }
    if let Some(run) = &o.analysis {
        let labels = super::metrics::VerdictLabels {
            namespace: ns.clone(),
            policy: name.clone(),
            verdict: format!("{:?}", run.analysis.verdict),
        };
        ctx.metrics.analyses.get_or_create(&labels).inc();
    }
    let s = &decision.status;
    ctx.metrics.set_phase(&ns, &name, s.phase, s.weight.unwrap_or(0), s.replicas.as_ref().map_or(0, |r| r.canary));
    ctx.metrics.set_degraded(
        &ns,
        &name,
        crate::core::rollout::conditions::is_true(s, crate::core::rollout::conditions::ENVIRONMENT_DEGRADED),
    );
    if !write.writes() {
        ctx.remember_status(o.policy(), None, (write == StatusWrite::Later).then(|| s.clone()));
    } else {
        log_transition(&ns, &name, o.policy().status.as_ref(), s, &decision.actions, now);
        // resourceVersion makes this write conditional: if anyone wrote the policy since we read
        // it, the write fails with a conflict and the next reconcile decides again.
        let patch = serde_json::json!({
            "apiVersion": "redispool.io/v1alpha1",
            "kind": "RedisPoolPolicy",
            "metadata": {"resourceVersion": current.metadata.resource_version},
            "status": s
        });
        written = Some(
            policies
                .patch_status(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch))
                .await
                .map_err(Error::write("write status"))?,
        );
        ctx.metrics.count_write("status");
        ctx.remember_status(o.policy(), Some(now), None);
    }
    // Last: whoever waits for the annotation to go (`kubectl redispool`) then reads the status
    // this decision wrote. Only the value that was read is removed, so an action set meanwhile
    // is decided next time rather than lost.
    if decision.action_consumed {
        let read = o.policy().annotations().get(ACTION_ANNOTATION).cloned().unwrap_or_default();
        let by = o.policy().annotations().get(crate::core::api::APPROVED_BY_ANNOTATION);
        let patch = crate::core::api::remove_action_patch(&read, by.map(String::as_str));
        let params = PatchParams { field_manager: Some(MANAGER.into()), ..Default::default() };
        match policies.patch(&name, &params, &Patch::Json::<()>(patch)).await {
            Ok(p) => {
                ctx.metrics.count_write("annotation");
                written = Some(p);
            }
            // The test failed: a new action was set (or the old one removed) since we read it.
            Err(kube::Error::Api(e)) if e.code == 422 => {}
            Err(e) => return Err(Error::write("remove the action annotation")(e)),
        }
    }
    Ok(written)
}

fn log_transition(
    ns: &str,
    name: &str,
    before: Option<&RedisPoolPolicyStatus>,
    after: &RedisPoolPolicyStatus,
    actions: &[Action],
    now: Timestamp,
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
        at = %now,
        "status"
    );
}
