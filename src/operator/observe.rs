//! Observe: everything the core decides on. The policy, its target and canary come from the
//! caches; a decision that would change anything is confirmed against the API server first (see
//! [`Objects::fresh`]). Other policies and HPAs come from the caches too; the Redis server and
//! the canary's health are measured when due.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use super::{Baseline, Context, Result};
use crate::core::analysis::redis::{RedisFault, RedisSignals, connection_errors, redis_change};
use crate::core::analysis::{Interval, judge, provider_failed};
use crate::core::api::{
    ACTION_ANNOTATION, AnalysisBaseline, AnalysisSpec, MetricsProvider, RedisPoolPolicy, RedisPoolPolicyStatus,
    TRACK_LABEL, canary_name,
};
use crate::core::deployments::{POLICY_LABEL, build_canary, canary_view, hpa_for, target_view};
use crate::core::plan::{Seen, for_decision};
use crate::core::rollout::{
    AnalysisRun, Claimant, Desired, Due, HeldBy, ManualAction, Observed, UnknownAction, analysis_due, holder,
    needs_redis, needs_verdicts,
};
use crate::providers::{self, Measured, Unmeasured};

/// The objects one decision reads.
pub struct Objects {
    pub policy: RedisPoolPolicy,
    pub target: Option<Arc<Deployment>>,
    pub canary: Option<Arc<Deployment>>,
    /// Read from the API server just now, not from the caches.
    pub fresh: bool,
}

impl Objects {
    /// From the caches: what a reconcile reads when nothing changes (most reconciles during a
    /// rollout are analyses that change nothing, and read nothing from the API server).
    pub async fn cached(policy: &RedisPoolPolicy, ctx: &Context) -> Result<Objects> {
        let store = ctx.deployments.get().expect("the Deployment cache is set before the controller runs");
        // The first reconciles may run before the Deployments are listed: an empty cache would
        // look like a missing target.
        wait_listed(store, "Deployments").await?;
        let ns = policy.namespace().unwrap_or_default();
        let get = |name: String| match store.get(&ObjectRef::new(&name).within(&ns)) {
            Some(frozen) => frozen.thaw().map(|d| Some(Arc::new(d))).map_err(|e| super::Error::Thaw {
                name,
                line: e.line(),
                column: e.column(),
            }),
            None => Ok(None),
        };
        let target_name = &policy.spec.target_ref.name;
        Ok(Objects {
            target: get(target_name.clone())?,
            canary: get(canary_name(target_name))?,
            policy: policy.clone(),
            fresh: false,
        })
    }

    /// From the API server; None when the policy is gone. A cache may lag a write by a moment
    /// (ours included): a decision on a stale status or Deployment could step a rollout back,
    /// so whatever a decision writes is decided on these.
    pub async fn fresh(policy: &RedisPoolPolicy, ctx: &Context) -> Result<Option<Objects>> {
        let ns = policy.namespace().unwrap_or_default();
        let policies: Api<RedisPoolPolicy> = Api::namespaced(ctx.client.clone(), &ns);
        // Another policy of the same name, made since, is not this one.
        let Some(policy) = policies.get_opt(&policy.name_any()).await?.filter(|p| p.uid() == policy.uid()) else {
            return Ok(None);
        };
        let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
        let target_name = &policy.spec.target_ref.name;
        let target = deployments.get_opt(target_name).await?.map(Arc::new);
        let canary = deployments.get_opt(&canary_name(target_name)).await?.map(Arc::new);
        Ok(Some(Objects { policy, target, canary, fresh: true }))
    }

    /// The resourceVersions read: equal versions are equal objects.
    pub fn versions(&self) -> [Option<&str>; 3] {
        fn rv(d: &Option<Arc<Deployment>>) -> Option<&str> {
            d.as_ref().and_then(|d| d.metadata.resource_version.as_deref())
        }
        [self.policy.metadata.resource_version.as_deref(), rv(&self.target), rv(&self.canary)]
    }
}

/// What one reconcile knows.
pub struct Observation {
    pub objects: Objects,
    pub status: RedisPoolPolicyStatus,
    pub desired: Desired,
    /// The rendered pool env of `desired`.
    pub env: Vec<(String, String)>,
    /// The canary built from the target and `env` (None without a target, or when the target's
    /// container is missing, which the core sees as an unusable target).
    pub build: Option<Deployment>,
    pub observed: Observed,
    pub analysis: Option<AnalysisRun>,
    /// The counters to diff the next analysis against.
    pub baseline: Option<Baseline>,
    /// The action annotation: understood, or its raw value.
    pub action: Option<Result<ManualAction, UnknownAction>>,
}

impl Observation {
    pub fn policy(&self) -> &RedisPoolPolicy {
        &self.objects.policy
    }
}

/// Reads the world around `objects`.
pub async fn observe(objects: Objects, ctx: &Context, now: Timestamp) -> Result<Observation> {
    let policy = &objects.policy;
    let (target, canary) = (objects.target.as_deref(), objects.canary.as_deref());
    let ns = policy.namespace().unwrap_or_default();
    let spec = &policy.spec;
    let status = ctx.status_of(policy);
    let hpa = ctx.hpas.get().and_then(|hpas| {
        let state = hpas.state();
        hpa_for(
            state.iter().filter(|h| h.namespace().as_deref() == Some(ns.as_str())).map(|h| &**h),
            &spec.target_ref.name,
        )
    });
    let target_view = target.map(|t| target_view(policy, t, hpa));
    let canary_replicas = canary.map(|c| c.spec.replicas.unwrap_or(1));
    let seen = Seen {
        default_environment: ctx.settings.environment.as_deref(),
        status: &status,
        canary_replicas,
        spec_check: ctx.check_spec(policy),
    };
    let (desired, env, target_result) = for_decision(policy, target_view, seen);
    // The canary as the operator would apply it now (at the replicas it has): what tells a
    // person's edits apart, and what an ApplyCanary applies.
    let build = target.and_then(|t| build_canary(policy, t, &env, canary_replicas.unwrap_or(0)).ok());
    let canary_view = canary.map(|c| canary_view(policy, c, build.as_ref()));

    // The Redis server: for the budget before a rollout starts, its rejections during one, and
    // for every analysis, whether it went away or changed (the environment's fault, not the pool's).
    let due = analysis_due(spec, &status, now);
    let ask_redis = needs_redis(spec, &status, target_result.as_ref().ok(), &desired.hash) || due.is_some();
    let redis = match (&spec.redis, ask_redis) {
        (Some(settings), true) => Some(providers::redis_signals(&ctx.client, &ns, settings).await),
        _ => None,
    };

    let (analysis, baseline) = match due {
        // A target that cannot be read has no pods of its own to watch.
        Some(Due::AfterPromotion) if target.is_none() => (None, None),
        Some(due) => {
            let gates = crate::core::analysis::for_tier(spec, &desired.environment);
            let measured = Measure { due, target, redis: redis.as_ref(), gates: &gates };
            let (run, baseline) = analyse(policy, &status, ctx, &ns, measured).await;
            (Some(run), baseline)
        }
        None => (None, None),
    };
    let target_hash = target_result.as_ref().ok().map(|t| t.config_hash.as_str());
    let required = match needs_verdicts(spec, &status, target_hash, &desired.hash) {
        true => Some(super::verdicts::read(&ctx.client, &ctx.remotes, policy, &ns).await),
        false => None,
    };
    let action = policy.annotations().get(ACTION_ANNOTATION).map(|raw| raw.parse());
    let holder = claim(policy, ctx, canary);
    // The other policies on the same Redis are read under their group's lock (see reconcile).
    let observed = Observed {
        target: target_result,
        canary: canary_view,
        holder,
        redis,
        peers: Vec::new(),
        required,
        approval_answers: ctx.approvals.answers(policy, &status, &desired),
    };
    Ok(Observation { objects, status, desired, env, build, observed, analysis, baseline, action })
}

/// Whether this policy holds its target among every policy of the namespace that names it.
fn claim(policy: &RedisPoolPolicy, ctx: &Context, canary: Option<&Deployment>) -> Result<(), HeldBy> {
    let Some(store) = ctx.policies.get() else { return Ok(()) };
    let ns = policy.namespace();
    let target = &policy.spec.target_ref.name;
    let me = Claimant {
        uid: policy.uid().unwrap_or_default(),
        name: policy.name_any(),
        created: policy.creation_timestamp().map(|t| t.0),
        active: policy.status.as_ref().is_some_and(|s| s.phase.is_active()),
    };
    // The policies the index says name this target, each read from the cache (which may have
    // moved on since: it is checked again).
    let mut claimants: Vec<Claimant> = ctx
        .targets
        .targeting(ns.as_deref().unwrap_or_default(), target)
        .iter()
        .filter_map(|r| store.get(r))
        .filter(|p| &p.spec.target_ref.name == target && p.metadata.namespace == policy.metadata.namespace)
        .filter(|p| p.metadata.uid != policy.metadata.uid && p.metadata.deletion_timestamp.is_none())
        .map(|p| Claimant {
            uid: p.uid().unwrap_or_default(),
            name: p.name_any(),
            created: p.creation_timestamp().map(|t| t.0),
            active: p.status.as_ref().is_some_and(|s| s.phase.is_active()),
        })
        .collect();
    claimants.push(me.clone());
    let owner =
        canary.and_then(|c| c.owner_references().iter().find(|o| o.controller == Some(true)).map(|o| o.uid.clone()));
    match holder(&claimants, owner.as_deref()) {
        Some(h) if h.uid != me.uid => {
            Err(HeldBy { namespace: ns.unwrap_or_default(), holder: h.name.clone(), target: target.clone() })
        }
        _ => Ok(()),
    }
}

/// What an analysis measures, and with what.
struct Measure<'a> {
    due: Due,
    target: Option<&'a Deployment>,
    redis: Option<&'a Result<RedisSignals, RedisFault>>,
    gates: &'a AnalysisSpec,
}

/// Measures what is due: the canary of a step (and, with `baseline: Stable`, the stable pods
/// over the same interval), or after a promotion the target's own pods; asks whether the Redis
/// server went away or changed; judges the gates and returns the counters seen, to be the next
/// analysis's baseline.
async fn analyse(
    policy: &RedisPoolPolicy,
    status: &RedisPoolPolicyStatus,
    ctx: &Context,
    ns: &str,
    m: Measure<'_>,
) -> (AnalysisRun, Option<Baseline>) {
    let (of, redis, spec) = (m.due, m.redis, m.gates);
    let key = policy.uid().unwrap_or_default();
    let previous = ctx.baselines.lock().await.get(&key).cloned().unwrap_or_default();
    let since = status.analysis.as_ref().map(|a| a.at.0);
    let canary = measure(policy, ctx, ns, &m, Track::Measured(of), &previous, since).await;
    let Measured { mut measurements, samples, errors } = match canary {
        Ok(m) => m,
        // The old baseline stays: the next analysis measures from there.
        Err(e) => {
            let e = e.to_string();
            let run = AnalysisRun { of, analysis: provider_failed(spec, &e), provider_error: Some(e) };
            return (run, None);
        }
    };
    // The stable beside a step's canary. Its pods older than the last analysis (all of them, at
    // the first) only set a baseline: their lifetime's counters are not this interval's.
    let stable = match (of, spec.baseline) {
        (Due::Step(_), AnalysisBaseline::Stable) => {
            let since = Some(since.unwrap_or(jiff::Timestamp::now()));
            measure(policy, ctx, ns, &m, Track::Stable, &previous, since).await
        }
        _ => Err(Unmeasured::NoReadyPods("stable".into())),
    };
    // A stable that could not be measured keeps its baselines for the next look.
    let kept = match &stable {
        Err(Unmeasured::NoReadyPods(_)) | Ok(_) => HashMap::new(),
        Err(_) => previous.pods.clone(),
    };
    let stable = stable.ok();
    measurements.redis_connection_errors =
        connection_errors(measurements.redis_connection_errors, redis, previous.rejected_connections);
    let identity = redis.and_then(|r| r.as_ref().ok()).and_then(|s| s.identity.clone());
    let weather = redis_weather(redis, previous.redis_identity.as_ref());
    let interval = Interval {
        canary: &measurements,
        stable: stable.as_ref().map(|s| &s.measurements),
        redis: weather.as_deref(),
        refused: match (of, redis) {
            (Due::Step(_), Some(Err(RedisFault::MaxClients(m)))) => Some(m.as_str()),
            _ => None,
        },
    };
    let analysis = judge(spec, &interval);
    // A probe that failed keeps the last count and identity it did see, so that rejections
    // during an outage of the probe, and a restart behind it, are still seen by the next one.
    let rejected =
        redis.and_then(|r| r.as_ref().ok()).map(|s| s.rejected_connections).or(previous.rejected_connections);
    let mut pods = kept;
    pods.extend(samples);
    pods.extend(stable.map(|s| s.samples).unwrap_or_default());
    let next = Baseline { pods, rejected_connections: rejected, redis_identity: identity.or(previous.redis_identity) };
    (AnalysisRun { of, analysis, provider_error: errors }, Some(next))
}

/// Which pods a measurement is of.
#[derive(Clone, Copy)]
enum Track {
    /// What the analysis is due for: a step's canary, or the target after a promotion.
    Measured(Due),
    /// The stable beside a step's canary: the target's own pods.
    Stable,
}

/// How many stable pods the Pods provider asks: enough to tell the weather, bounded so that a
/// large fleet does not cost one GET per pod per interval.
const STABLE_SAMPLE: usize = 20;

/// Measures one track through the policy's provider.
async fn measure(
    policy: &RedisPoolPolicy,
    ctx: &Context,
    ns: &str,
    m: &Measure<'_>,
    track: Track,
    previous: &Baseline,
    since: Option<jiff::Timestamp>,
) -> std::result::Result<Measured, Unmeasured> {
    let metrics = &policy.spec.rollout.metrics;
    let target_name = &policy.spec.target_ref.name;
    match metrics.provider {
        MetricsProvider::Pods => {
            let (what, ready) = match track {
                Track::Measured(Due::Step(_)) => ("canary", canary_pods(ctx, ns, &policy.name_any()).await),
                // The target's own pods, which no cache holds: listed.
                Track::Measured(Due::AfterPromotion) => {
                    ("target", providers::list_ready_pods(&ctx.client, ns, "target", &target_selector(m.target)).await)
                }
                Track::Stable => {
                    let listed =
                        providers::list_ready_pods(&ctx.client, ns, "stable", &target_selector(m.target)).await;
                    // The same pods each time (by uid), so that their baselines carry over.
                    (
                        "stable",
                        listed.map(|mut pods| {
                            pods.sort_by(|a, b| a.uid.cmp(&b.uid));
                            pods.truncate(STABLE_SAMPLE);
                            pods
                        }),
                    )
                }
            };
            providers::measure_pods(&ctx.http, what, &ready?, &metrics.pods, &previous.pods, since).await
        }
        MetricsProvider::Prometheus => {
            // Stable pods carry no track label: `label=""` selects exactly those in PromQL.
            let (deployment, track) = match track {
                Track::Measured(Due::Step(_)) => (canary_name(target_name), "canary"),
                Track::Measured(Due::AfterPromotion) | Track::Stable => (target_name.clone(), ""),
            };
            let scope = crate::core::analysis::prometheus::Scope {
                namespace: ns,
                deployment: &deployment,
                track,
                interval: &policy.spec.rollout.analysis.interval,
            };
            providers::measure_prometheus(&ctx.http, metrics.prometheus.as_ref(), &scope).await
        }
    }
}

/// What the operator's probe saw the Redis server go through since the last one, in words: it
/// could no longer be reached, restarted, failed over, lost its master or is loading. None when
/// it answered as before (or is not known to the policy, or was never reached).
fn redis_weather(
    redis: Option<&std::result::Result<RedisSignals, RedisFault>>,
    before: Option<&crate::core::analysis::redis::ServerIdentity>,
) -> Option<String> {
    match redis? {
        Ok(s) => redis_change(before, s.identity.as_ref()?).map(|c| c.to_string()),
        // Weather only for a server this operator has reached before: one it never could (a wrong
        // password, a missing Secret, a blocked port) is a misconfiguration, not an outage, and
        // must not hide the canary's own faults.
        Err(RedisFault::Unavailable(why)) if before.is_some() => {
            Some(format!("the operator's probe could not reach the Redis server: {why}"))
        }
        Err(RedisFault::Unavailable(_)) => None,
        // The server refused the operator for want of client slots: that counts against the
        // pool (a connection error), it is not weather.
        Err(RedisFault::MaxClients(_)) => None,
    }
}

/// Waits (bounded) until a cache has listed what it watches: a watch that RBAC forbids must
/// fail the reconcile with a reason, not hang it and, with it, a reconcile slot.
async fn wait_listed<K>(store: &kube::runtime::reflector::Store<K>, what: &'static str) -> Result<()>
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    match tokio::time::timeout(std::time::Duration::from_secs(30), store.wait_until_ready()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(super::Error::CacheStopped(what)),
        Err(_) => Err(super::Error::CacheNotListed(what)),
    }
}

/// The ready pods of the policy's canary, from the cache of canary pods.
async fn canary_pods(ctx: &Context, ns: &str, policy: &str) -> Result<Vec<providers::ReadyPod>, Unmeasured> {
    let store = ctx.canary_pods.get().expect("the canary pod cache is set before the controller runs");
    let unlisted = |e: super::Error| Unmeasured::List { what: "canary".into(), why: e.to_string() };
    wait_listed(store, "pods").await.map_err(unlisted)?;
    let state = store.state();
    let ours = state.iter().filter(|p| {
        p.metadata.namespace.as_deref() == Some(ns)
            && p.labels().get(POLICY_LABEL).is_some_and(|l| l == policy)
            && p.labels().get(TRACK_LABEL).is_some_and(|t| t == "canary")
    });
    Ok(providers::ready_pods(ours.map(|p| &**p)))
}

/// The target's own pods: its whole selector, and no track label (canary pods carry one).
fn target_selector(target: Option<&Deployment>) -> String {
    use kube::core::{Expression, Selector};
    let mut selector = target
        .and_then(|t| Selector::try_from(t.spec.selector.clone()).ok())
        .unwrap_or_else(|| Selector::from_iter(std::iter::empty::<Expression>()));
    selector.extend([Expression::DoesNotExist(TRACK_LABEL.into())]);
    selector.to_string()
}
