//! Releasing a deleted policy by hand (`kubectl redispool release`), when no operator will:
//! what its target gets back before the finalizer may go. The operator's own release decides
//! through the rollout machine; this is the same promise kept from what the status recorded,
//! for a policy whose operator is gone.

use crate::core::api::{Phase, RedisPoolPolicyStatus, ScalingMode};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandRelease {
    /// Give the stable this many replicas (what the rollout took from it).
    pub scale_target_to: Option<i32>,
    /// Delete the policy's canary.
    pub delete_canary: bool,
    /// What is left as it is, and why.
    pub notes: Vec<String>,
    /// The stable stays below the fleet the rollout began with, and deleting the canary would
    /// take those pods away too: a person must say so (`--force`).
    pub drops_capacity: bool,
}

/// `target_replicas`: the target's `spec.replicas` now (None: no target); `operator_wrote_them`:
/// the operator is their last writer (managedFields), which holds even when it crashed before
/// recording `scaledTo`. `canary_is_ours`: a canary exists and this policy owns it.
pub fn hand_release(
    status: &RedisPoolPolicyStatus,
    target_replicas: Option<i32>,
    operator_wrote_them: bool,
    canary_is_ours: bool,
) -> HandRelease {
    let mut notes = Vec::new();
    let mut drops_capacity = false;
    let split = status.scaling.as_ref().is_none_or(|s| s.mode == ScalingMode::Split);
    let scale_target_to = match (status.phase.is_active(), &status.replicas, target_replicas) {
        (true, Some(r), Some(now)) if split && now < r.total => {
            if status.scaled_to == Some(now) || operator_wrote_them {
                Some(r.total)
            } else {
                // Someone set the replicas since the operator last did: theirs to keep.
                notes.push(format!(
                    "the target's replicas ({now}) were set by someone else since the operator last wrote them; left as they are"
                ));
                drops_capacity = canary_is_ours;
                None
            }
        }
        (true, Some(_), Some(_)) if !split => {
            let by = status.scaling.as_ref().and_then(|s| s.by.clone()).unwrap_or_else(|| "another writer".into());
            notes.push(format!("the target's replicas belong to {by}; left as they are"));
            None
        }
        (_, _, None) => {
            notes.push("the target Deployment does not exist".into());
            None
        }
        _ => None,
    };
    if matches!(status.phase, Phase::Promoting | Phase::Degraded) {
        notes.push("a promotion was writing the target: it keeps the pool configuration it got".into());
    }
    HandRelease { scale_target_to, delete_canary: canary_is_ours, notes, drops_capacity }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::api::{ReplicaStatus, ScalingStatus};

    fn status(phase: Phase, total: i32, scaled_to: Option<i32>, scaling: Option<ScalingMode>) -> RedisPoolPolicyStatus {
        RedisPoolPolicyStatus {
            phase,
            replicas: Some(ReplicaStatus { total, stable: 5, canary: 5, actual_weight: 50, summary: "5/10".into() }),
            scaled_to,
            scaling: scaling.map(|mode| ScalingStatus { mode, by: Some("HorizontalPodAutoscaler auth-api".into()) }),
            ..Default::default()
        }
    }

    #[test]
    fn a_split_rollout_gives_the_stable_its_replicas_back() {
        let r = hand_release(&status(Phase::Progressing, 10, Some(5), None), Some(5), false, true);
        assert_eq!(
            r,
            HandRelease { scale_target_to: Some(10), delete_canary: true, notes: vec![], drops_capacity: false }
        );
        let r = hand_release(&status(Phase::RollingBack, 10, Some(5), Some(ScalingMode::Split)), Some(5), false, false);
        assert_eq!((r.scale_target_to, r.delete_canary), (Some(10), false));
        // The operator wrote 3 and crashed before recording it: still its own to give back.
        let r = hand_release(&status(Phase::Progressing, 10, Some(5), None), Some(3), true, true);
        assert_eq!((r.scale_target_to, r.drops_capacity), (Some(10), false));
    }

    #[test]
    fn replicas_someone_else_set_are_theirs() {
        let r = hand_release(&status(Phase::Progressing, 10, Some(5), None), Some(7), false, true);
        assert_eq!(r.scale_target_to, None);
        assert!(r.notes[0].contains("someone else"), "{:?}", r.notes);
        assert!(r.drops_capacity, "the canary's pods are the fleet's until the stable has them back");
        let r = hand_release(&status(Phase::Progressing, 10, Some(5), Some(ScalingMode::Beside)), Some(5), false, true);
        assert_eq!(r.scale_target_to, None);
        assert!(r.notes[0].contains("HorizontalPodAutoscaler auth-api"), "{:?}", r.notes);
        assert!(r.delete_canary, "the canary goes whoever sizes the stable");
    }

    #[test]
    fn at_rest_or_whole_nothing_is_scaled() {
        for phase in [Phase::Succeeded, Phase::RolledBack, Phase::Idle, Phase::Blocked] {
            let r = hand_release(&status(phase, 10, Some(5), None), Some(5), true, false);
            assert_eq!(r.scale_target_to, None, "{phase:?}");
        }
        let whole = hand_release(&status(Phase::Progressing, 10, Some(10), None), Some(10), true, true);
        assert_eq!((whole.scale_target_to, whole.drops_capacity), (None, false));
        let r = hand_release(&status(Phase::Promoting, 10, Some(5), None), None, false, true);
        assert_eq!(r.scale_target_to, None);
        assert_eq!(r.notes.len(), 2, "{:?}", r.notes);
    }
}
