//! One reconcile: observe -> decide -> act -> record.

use std::sync::Arc;
use std::time::Instant;

use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action as Requeue;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::{Api, ResourceExt};

use super::act::act;
use super::observe::{Objects, Observation, observe};
use super::{Context, Error, MANAGER, Result};
use crate::core::api::{ACTION_ANNOTATION, RedisPoolPolicy, RedisPoolPolicyStatus};
use crate::core::rollout::{self, Action, Input, StatusWrite};

/// Held until a deleted policy has given its target back what a rollout took.
pub const FINALIZER: &str = "redispool.io/restore-target";

pub async fn reconcile(policy: Arc<RedisPoolPolicy>, ctx: Arc<Context>) -> Result<Requeue> {
    let start = Instant::now();
    let ns = policy.namespace().ok_or(Error::NoNamespace)?;
    let policies: Api<RedisPoolPolicy> = Api::namespaced(ctx.client.clone(), &ns);
    let policy_ref = (*policy).clone();
    // kube-runtime's finalizer helper adds ours without touching anyone else's (a JSON patch that
    // appends, guarded by a test), and removes it only once cleanup says the target is given back.
    let result = finalizer(&policies, FINALIZER, policy, |event| async {
        match event {
            Finalizer::Apply(p) => step(&p, &ctx, false).await,
            Finalizer::Cleanup(p) => step(&p, &ctx, true).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics.duration.observe(start.elapsed().as_secs_f64());
    if result.is_ok() {
        super::reset_backoff(&ctx, &policy_ref);
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
            now,
            awake_since: ctx.awake_since,
            deleting,
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
    // Act, in order; a failure leaves status unwritten so the next reconcile decides again.
    for a in &decision.actions {
        act(a, o, ctx).await?;
    }
    record(o, ctx, &decision, write, now).await?;
    if deleting {
        if !decision.released {
            return Err(Error::Releasing(decision.status.message.unwrap_or_default()));
        }
        ctx.forget(o.policy()).await;
        return Ok(Requeue::await_change());
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

/// Writes what changed: the next baseline, metrics, the status (only when it differs: the
/// steady state writes nothing), and then the consumed action annotation.
async fn record(
    o: &Observation,
    ctx: &Context,
    decision: &rollout::Decision,
    write: StatusWrite,
    now: Timestamp,
) -> Result<()> {
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
            "metadata": {"resourceVersion": o.policy().metadata.resource_version},
            "status": s
        });
        policies
            .patch_status(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch))
            .await
            .map_err(Error::write("write status"))?;
        ctx.metrics.count_write("status");
        ctx.remember_status(o.policy(), Some(now), None);
    }
    // Last: whoever waits for the annotation to go (`kubectl redispool`) then reads the status
    // this decision wrote. Only the value that was read is removed, so an action set meanwhile
    // is decided next time rather than lost.
    if decision.action_consumed {
        let read = o.policy().annotations().get(ACTION_ANNOTATION).cloned().unwrap_or_default();
        let patch = crate::core::api::remove_action_patch(&read);
        let params = PatchParams { field_manager: Some(MANAGER.into()), ..Default::default() };
        match policies.patch(&name, &params, &Patch::Json::<()>(patch)).await {
            Ok(_) => ctx.metrics.count_write("annotation"),
            // The test failed: a new action was set (or the old one removed) since we read it.
            Err(kube::Error::Api(e)) if e.code == 422 => {}
            Err(e) => return Err(Error::write("remove the action annotation")(e)),
        }
    }
    Ok(())
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
