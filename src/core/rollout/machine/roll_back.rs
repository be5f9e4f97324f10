//! Rolling back: the stable restored first, then the canary removed; a rollback ends the rollout
//! as released, restarted, or rolled back with its configuration remembered as failed.

use super::*;

impl Machine<'_> {
    pub(super) fn start_rollback(&mut self, kind: RollbackKind, reason: String) {
        let event = match kind {
            RollbackKind::Release => Reason::Releasing,
            RollbackKind::Restart => Reason::RolloutRestarting,
            RollbackKind::Failed | RollbackKind::Aborted => Reason::RollingBack,
        };
        self.status.rollback = Some(RollbackStatus { kind, reason: reason.clone() });
        self.enter(Phase::RollingBack, event, messages::rolling_back(&reason));
    }

    /// The canary failed: roll back, and remember the configuration as failed.
    pub(super) fn fail(&mut self, reason: String) -> Next {
        self.start_rollback(RollbackKind::Failed, reason);
        Next::RollBack
    }

    /// Something the rollout was started on changed: give the stable back, then start again.
    pub(super) fn restart(&mut self, reason: String) -> Next {
        self.start_rollback(RollbackKind::Restart, reason);
        Next::RollBack
    }

    /// The policy is being deleted: finish a promotion that is writing the target, undo any
    /// other rollout (the stable first), then let the finalizer go (a promotion that completes
    /// lets it go in `run`).
    pub(super) fn release(&mut self) -> Next {
        let input = self.input;
        let target = match &input.observed.target {
            Ok(t) => t,
            Err(_) => {
                self.delete_canary_if_any();
                self.released = true;
                return Next::Done;
            }
        };
        match self.status.phase {
            Phase::Promoting | Phase::Degraded => Next::Promote,
            Phase::Progressing | Phase::Paused => {
                self.start_rollback(RollbackKind::Release, "the policy is being deleted".into());
                Next::RollBack
            }
            Phase::RollingBack => {
                // Whatever the rollback was for, it now ends in giving the target back.
                if let Some(r) = &mut self.status.rollback {
                    r.kind = RollbackKind::Release;
                }
                Next::RollBack
            }
            // A canary left over without a rollout (a lost status): the stable first.
            _ => {
                self.released = self.remove_leftover_canary(target);
                Next::Done
            }
        }
    }

    /// Gives the stable its replicas back (when the operator sizes it), then ends the rollout as
    /// its kind says: released, restarted, or rolled back with the configuration remembered.
    pub(super) fn roll_back(&mut self, target: &TargetView) -> Next {
        if let Some(promoting) = self.finish_begun_promotion(target) {
            return promoting;
        }
        self.hand_over_replicas(target);
        let total = self.total(target);
        let rollback = self
            .status
            .rollback
            .clone()
            .unwrap_or(RollbackStatus { kind: RollbackKind::Failed, reason: "rolling back".into() });
        if self.mode() == ScalingMode::Split {
            if target.spec_replicas < total {
                self.actions.push(Action::ScaleTarget { replicas: total });
                self.status.replicas = Some(replica_status(total, total, self.canary().map_or(0, |c| c.spec_replicas)));
                self.status.message = Some(messages::restoring_stable(total, &rollback.reason));
                return Next::Done;
            }
            if !stable_serves(target, total) {
                self.status.message = Some(messages::waiting_for_stable(target.available, total, &rollback.reason));
                return Next::Done;
            }
        }
        let hash = self.canary_hash();
        let stable = target.spec_replicas.max(if self.mode() == ScalingMode::Split { total } else { 0 });
        match rollback.kind {
            RollbackKind::Release => {
                self.delete_canary_if_any();
                self.clear_rollout();
                self.status.replicas = Some(replica_status(stable, stable, 0));
                self.push_history(hash, Outcome::Restarted, rollback.reason.clone());
                // A policy that lost its target to another says Conflict (see `run`).
                self.status.phase = Phase::Idle;
                self.status.message = Some(messages::released(&rollback.reason));
                self.released = self.input.deleting;
                Next::Done
            }
            RollbackKind::Restart => {
                // Start over from step 0, reusing the canary Deployment (it gets the new template or
                // configuration), so no delete and re-create of the same name is needed.
                self.push_history(hash, Outcome::Restarted, rollback.reason.clone());
                self.event(Reason::RolloutRestarted, rollback.reason);
                self.status.phase = Phase::Idle;
                self.handed_over = self.status.scaling.clone().filter(|s| s.mode == ScalingMode::Beside);
                Next::Start
            }
            RollbackKind::Failed | RollbackKind::Aborted => {
                self.delete_canary_if_any();
                self.remember_verdict(hash.clone(), VerdictResult::RolledBack, Some(rollback.reason.clone()));
                self.clear_rollout();
                self.status.replicas = Some(replica_status(stable, stable, 0));
                let failed = FailedConfig {
                    hash: hash.clone(),
                    generation: self.input.generation,
                    reason: rollback.reason.clone(),
                };
                let msg = messages::rolled_back(&failed);
                self.status.failed = Some(failed);
                self.push_history(hash, Outcome::RolledBack, rollback.reason);
                self.enter(Phase::RolledBack, Reason::RolledBack, msg);
                Next::Done
            }
        }
    }
}
