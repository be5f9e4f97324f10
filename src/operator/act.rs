//! Act: the writes each action makes, each idempotent, under one field manager:
//! - `ApplyCanary`: a server-side apply of the canary, or a replace guarded by its
//!   resourceVersion when a person edited its pod template (an apply cannot remove their fields);
//! - `ScaleTarget`: a merge patch of the target's `spec.replicas` alone, unguarded (the value is
//!   absolute, and who else writes it is read from managedFields before deciding);
//! - `PromoteTarget`: a server-side apply of the pool env, then that merge patch of replicas when
//!   the action gives them (the core asks only when they differ; two writes, the env first);
//! - `DeleteCanary`: a delete guarded by the observed canary's uid;
//! - `Event`: an Event, or a patch of a recent one's series (best effort).

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Api, ResourceExt};

use super::observe::Observation;
use super::{Context, Error, MANAGER, Result};
use crate::core::api::{RedisPoolPolicy, canary_name};
use crate::core::deployments::{target_container, target_env_patch};
use crate::core::rollout::{Action, EventType, NoTarget};

pub async fn act(action: &Action, o: &Observation, ctx: &Context) -> Result<()> {
    let policy = o.policy();
    let ns = policy.namespace().unwrap_or_default();
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
    let target_name = &policy.spec.target_ref.name;
    // The core acts on a target it saw; one deleted since is the next reconcile's to see.
    let gone = || NoTarget::Missing { namespace: ns.clone(), name: target_name.clone() };
    match action {
        Action::ApplyCanary { replicas, replace } => {
            let mut canary = o.build.clone().ok_or_else(gone)?;
            canary.spec.replicas = Some(*replicas);
            match o.objects.canary.as_deref().filter(|_| *replace) {
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
            let target = o.objects.target.as_deref().ok_or_else(gone)?;
            let container = target_container(policy, target)?.name.clone();
            // The env first: at the last step a split target has no pods, so its new replicas
            // start with the new pool instead of being replaced a moment later.
            let apply = PatchParams::apply(MANAGER).force();
            deployments
                .patch(target_name, &apply, &Patch::Apply(&target_env_patch(&container, &o.env)))
                .await
                .map_err(Error::write("promote the target"))?;
            ctx.metrics.count_write("target");
            if let Some(r) = replicas {
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
        Action::Event { reason, message } => {
            publish(ctx, policy, reason.kind(), reason.as_str(), message.clone()).await
        }
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
