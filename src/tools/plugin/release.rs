//! `kubectl redispool release NAME`: a policy deleted mid-rollout waits on its finalizer until
//! an operator gives the target back. With no operator coming back, this does what it would:
//! the stable's replicas first, then the canary, then the finalizer (from the version read, so
//! an operator that acted meanwhile is not overruled).

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Resource, ResourceExt};

use super::{Error, Kube, Result};
use crate::core::api::{FINALIZER, RedisPoolPolicy, canary_name, remove_finalizer_patch};
use crate::core::hand_release::hand_release;

const MANAGER: &str = "kubectl-redispool";

/// Whether `manager` last wrote the Deployment's `spec.replicas` (its managedFields).
fn replicas_written_by(target: &Deployment, manager: &str) -> bool {
    target.metadata.managed_fields.iter().flatten().any(|f| {
        f.manager.as_deref() == Some(manager)
            && f.fields_v1.as_ref().is_some_and(|v| v.0.get("f:spec").is_some_and(|s| s.get("f:replicas").is_some()))
    })
}

pub async fn run(kube: &Kube, name: &str, force: bool) -> Result<u8> {
    let policy = kube.policy(name).await?;
    if policy.metadata.deletion_timestamp.is_none() {
        return Err(Error::Refused(format!(
            "{name} is not being deleted: release is for a policy deleted while no operator runs to give its \
             target back (kubectl delete rpp {name} --wait=false, then release); nothing was changed"
        )));
    }
    if !policy.finalizers().iter().any(|f| f == FINALIZER) {
        println!("{name}: nothing of this operator's holds it ({FINALIZER} is gone)");
        return Ok(0);
    }
    let deployments = kube.api::<Deployment>();
    let target_name = &policy.spec.target_ref.name;
    let target = deployments.get_opt(target_name).await.map_err(kube.error("read the target"))?;
    let canary = deployments.get_opt(&canary_name(target_name)).await.map_err(kube.error("read the canary"))?;
    let uid = policy.meta().uid.clone();
    let ours = canary.as_ref().filter(|c| c.owner_references().iter().any(|o| Some(&o.uid) == uid.as_ref()));
    let status = policy.status.clone().unwrap_or_default();
    let operator_wrote_them = target.as_ref().is_some_and(|t| replicas_written_by(t, crate::core::api::MANAGER));
    let replicas = target.as_ref().and_then(|t| t.spec.replicas);
    let plan = hand_release(&status, replicas, operator_wrote_them, ours.is_some());
    if plan.drops_capacity && !force {
        return Err(Error::Refused(format!(
            "{name}: {}; deleting the canary now would leave the target below the {} replicas the rollout began \
             with. Scale it yourself, or run release --force to delete the canary anyway; nothing was changed",
            plan.notes.join("; "),
            status.replicas.as_ref().map_or(0, |r| r.total)
        )));
    }
    let params = PatchParams { field_manager: Some(MANAGER.into()), ..Default::default() };

    if let Some(replicas) = plan.scale_target_to {
        // Only over the version read: a writer in between is not overruled.
        let version = target.as_ref().and_then(|t| t.metadata.resource_version.clone());
        let patch = serde_json::json!({"metadata": {"resourceVersion": version}, "spec": {"replicas": replicas}});
        deployments.patch(target_name, &params, &Patch::Merge(&patch)).await.map_err(kube.error("scale the target"))?;
        println!("{name}: deployment/{target_name} scaled back to {replicas} replicas");
    }
    if let Some(canary) = ours {
        let dp = DeleteParams {
            preconditions: Some(Preconditions { uid: canary.metadata.uid.clone(), resource_version: None }),
            ..Default::default()
        };
        deployments.delete(&canary.name_any(), &dp).await.map_err(kube.error("delete the canary"))?;
        println!("{name}: deployment/{} deleted", canary.name_any());
    }
    for note in &plan.notes {
        println!("{name}: {note}");
    }
    let version = policy.metadata.resource_version.as_deref().unwrap_or_default();
    if let Some(patch) = remove_finalizer_patch(policy.finalizers(), version) {
        let policies = kube.api::<RedisPoolPolicy>();
        policies.patch(name, &params, &Patch::Json::<()>(patch)).await.map_err(|e| match e {
            kube::Error::Api(s) if s.code == 422 => Error::Refused(format!(
                "{name} changed while it was released (an operator may be acting on it): run release again"
            )),
            other => kube.error("remove the finalizer")(other),
        })?;
    }
    println!("{name}: released; its deletion completes");
    Ok(0)
}
