//! Act: one write per action, each idempotent and guarded, under one field manager.

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, ResourceExt};

use super::deployments::{build_canary, target_container, target_env_patch};
use super::observe::Observation;
use super::{Context, Error, MANAGER, Result};
use crate::api::{RedisPoolPolicy, canary_name};
use crate::rollout::{Action, EventType};

pub async fn act(action: &Action, o: &Observation, ctx: &Context) -> Result<()> {
    let policy = o.policy();
    let ns = policy.namespace().unwrap_or_default();
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let target_name = &policy.spec.target_ref.name;
    match action {
        Action::ApplyCanary { replicas } => {
            let target = o.objects.target.as_deref().ok_or_else(|| Error::Build("the target is gone".into()))?;
            let mut canary = build_canary(policy, target, &o.env, *replicas).map_err(Error::Build)?;
            match o.objects.canary.as_deref().filter(|c| c.spec.template != canary.spec.template) {
                // Someone edited the pod template: an apply cannot remove what another manager
                // added, so the whole object is replaced (guarded by its resourceVersion).
                Some(edited) => {
                    canary.metadata.resource_version = edited.resource_version();
                    deployments
                        .replace(
                            &canary_name(target_name),
                            &PostParams { field_manager: Some(MANAGER.into()), ..Default::default() },
                            &canary,
                        )
                        .await
                        .map_err(Error::write("replace the edited canary"))?;
                }
                None => {
                    let apply = PatchParams::apply(MANAGER).force();
                    deployments
                        .patch(&canary_name(target_name), &apply, &Patch::Apply(&canary))
                        .await
                        .map_err(Error::write("apply the canary"))?;
                }
            }
            ctx.metrics.count_write("canary");
        }
        Action::ScaleTarget { replicas } => scale_target(ctx, &deployments, target_name, *replicas).await?,
        Action::PromoteTarget { replicas } => {
            let target = o.objects.target.as_deref().ok_or_else(|| Error::Build("the target is gone".into()))?;
            let container = target_container(policy, target).map_err(Error::Build)?.name.clone();
            // The env first: at the last step a split target has no pods, so its new replicas
            // start with the new pool instead of being replaced a moment later.
            let apply = PatchParams::apply(MANAGER).force();
            deployments
                .patch(target_name, &apply, &Patch::Apply(&target_env_patch(&container, &o.env)))
                .await
                .map_err(Error::write("promote the target"))?;
            ctx.metrics.count_write("target");
            if let Some(r) = replicas
                && target.spec.replicas != Some(*r)
            {
                scale_target(ctx, &deployments, target_name, *r).await?;
            }
        }
        Action::DeleteCanary => {
            // Only the canary observed (and checked to be ours) is deleted, never one made since.
            let Some(uid) = o.objects.canary.as_ref().and_then(|c| c.uid()) else { return Ok(()) };
            let params = DeleteParams {
                preconditions: Some(Preconditions { uid: Some(uid), resource_version: None }),
                ..DeleteParams::background()
            };
            match deployments.delete(&canary_name(target_name), &params).await {
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

/// The target's replicas, by a merge patch of that one field (never server-side apply: see
/// `target_env_patch`).
async fn scale_target(ctx: &Context, deployments: &Api<Deployment>, name: &str, replicas: i32) -> Result<()> {
    let patch = serde_json::json!({"spec": {"replicas": replicas}});
    let params = PatchParams { field_manager: Some(MANAGER.into()), ..Default::default() };
    deployments.patch(name, &params, &Patch::Merge(&patch)).await.map_err(Error::write("scale the target"))?;
    ctx.metrics.count_write("target");
    Ok(())
}

/// Events are best effort: a failure to record one must not fail the rollout.
pub async fn publish(ctx: &Context, policy: &RedisPoolPolicy, kind: EventType, reason: &str, note: String) {
    if let Err(e) = ctx.recorder.publish(policy, kind, reason, note).await {
        tracing::warn!(error = %e, reason, "could not record an Event");
    }
    ctx.metrics.count_write("event");
}
