//! `kubectl redispool undo NAME [--to HASH]`: writes a configuration that succeeded here back
//! into the spec (the tier's workers and connections, the pool settings), over the version read.
//! With `spec.rollout.rollbackWindow` the operator then promotes it at once. When a GitOps tool
//! owns those fields, its next sync would undo the undo: the plugin says what to change in Git
//! instead (or writes anyway with --force).

use kube::api::{Patch, PatchParams};

use super::{Error, Kube, Result};
use crate::core::api::RedisPoolPolicy;
use crate::core::hand_undo::{choose, git_change, owned_by, patch};

const MANAGER: &str = "kubectl-redispool";

pub async fn run(kube: &Kube, name: &str, to: Option<&str>, force: bool) -> Result<u8> {
    let policy = kube.policy(name).await?;
    let status = policy.status.clone().unwrap_or_default();
    let current = status.stable.as_ref().map(|s| s.hash.as_str());
    let back = choose(&status.succeeded, current, to).map_err(|e| Error::Refused(format!("{name}: {e}")))?;
    let fast = policy.spec.rollout.rollback_window.as_ref().map(|w| w.revisions);
    if let Some(owner) = owned_by(&policy).filter(|_| !force) {
        return Err(Error::Refused(format!(
            "{name}: spec.tiers or spec.pool is written by {owner}, which would put its values back; change them \
             in Git to the configuration {} that succeeded here at {} (or run undo --force to write them here \
             anyway):\n{}",
            back.hash,
            back.at.0,
            git_change(back)
        )));
    }
    let patch = patch(&policy, back).map_err(|e| Error::Refused(format!("{name}: {e}")))?;
    let params = PatchParams { field_manager: Some(MANAGER.into()), ..Default::default() };
    kube.api::<RedisPoolPolicy>()
        .patch(name, &params, &Patch::Json::<()>(patch))
        .await
        .map_err(kube.error("write the configuration back into the spec"))?;
    let how = match fast {
        Some(n) => format!("within spec.rollout.rollbackWindow ({n} revisions back) it is promoted without steps"),
        None => "without spec.rollout.rollbackWindow it rolls out through the steps".into(),
    };
    println!(
        "{name}: spec set back to pool configuration {} ({}: {} workers x {} connections); {how}",
        back.hash, back.tier, back.workers, back.pool.connections_per_worker
    );
    Ok(0)
}
