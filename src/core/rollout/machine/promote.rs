//! The promotion: the canary's configuration written into the target, the target's own rollout
//! waited for, the canary removed and the verdict remembered.

use super::*;

impl Machine<'_> {
    /// The target already carries the canary's configuration: a promotion began and its status
    /// write was lost (a crash). The only consistent end is to finish it: the promotion is next.
    pub(super) fn finish_begun_promotion(&mut self, target: &TargetView) -> Option<Next> {
        if target.config_hash != self.canary_hash() || target.unusable.is_some() {
            return None;
        }
        let msg = messages::completing_promotion(&target.config_hash);
        self.status.progressed_at = Some(Time(self.now()));
        self.enter(Phase::Promoting, Reason::Promoting, msg);
        Some(Next::Promote)
    }

    /// Writes the canary's configuration into the target (with the fleet's replicas when the
    /// operator sizes it), waits for the target's own rollout, then removes the canary.
    pub(super) fn promote(&mut self, target: &TargetView) -> Next {
        self.hand_over_replicas(target);
        let desired = self.input.desired;
        let canary_hash = self.canary_hash();
        // The replicas the target ends with: the split fleet, or whatever its HPA sets.
        let (total, replicas) = match self.mode() {
            ScalingMode::Split => (self.total(target), Some(self.total(target))),
            ScalingMode::Beside => (target.spec_replicas, None),
        };
        if target.config_hash != canary_hash {
            if canary_hash != desired.hash {
                // Never write a configuration into the target that no canary has run.
                return self.restart(messages::spec_changed_before_promotion(&desired.hash));
            }
            if self.status.promoted_at.is_some() {
                self.overridden_while_promoting(target);
                return Next::Done;
            }
            self.status.promoted_at = Some(Time(self.now()));
            // The replicas are written with the env only when they differ (a second write).
            let resize = replicas.filter(|r| *r != target.spec_replicas);
            self.actions.push(Action::PromoteTarget { replicas: resize });
            if replicas.is_some() {
                // The fleet's size is the rollout's value now, written or found.
                self.status.scaled_to = replicas;
            }
            self.status.message = Some(messages::writing_target(&canary_hash, replicas));
            return Next::Done;
        }
        self.status.promoted_at.get_or_insert(Time(self.now()));
        if replicas.is_some_and(|r| r != target.spec_replicas) {
            self.actions.push(Action::PromoteTarget { replicas });
            return Next::Done;
        }
        if !target.rolled_out || target.available < total {
            let msg = messages::waiting_for_target_rollout(target.available, total);
            let since = self.status.progressed_at.as_ref().map_or(self.now(), |t| t.0);
            if self.status.phase == Phase::Promoting && self.held_for(since) > self.deadline() {
                let msg = messages::promotion_stalled(&canary_hash, self.deadline_label(), target.available, total);
                self.enter(Phase::Degraded, Reason::PromotionStalled, msg);
                return Next::Done;
            }
            if self.status.phase == Phase::Promoting {
                self.status.message = Some(msg);
            }
            return Next::Done;
        }
        self.delete_canary_if_any();
        self.remember_verdict(canary_hash.clone(), VerdictResult::Succeeded, None);
        if total == 0 {
            // No pods ran it and none run it now: nothing to watch, and nothing proven.
            self.status.verdicts[0].watch_ended =
                Some("the target has no replicas: there is nothing to measure".into());
        }
        let plan = self.status.canary.as_ref().and_then(|c| c.plan.clone());
        let pool = self.status.canary.as_ref().and_then(|c| c.worker_pool.clone());
        if let (Some(plan), Some(pool)) = (&plan, pool) {
            self.remember_succeeded(&canary_hash, plan, pool);
        }
        self.status.stable = Some(stable_ref(&canary_hash, plan.as_ref(), target));
        self.clear_rollout();
        self.status.replicas = Some(replica_status(target.spec_replicas, target.spec_replicas, 0));
        self.push_history(canary_hash.clone(), Outcome::Succeeded, "promoted".into());
        let msg = messages::promoted(&canary_hash, total);
        self.enter(Phase::Succeeded, Reason::Promoted, msg);
        Next::Done
    }

    /// The promotion wrote the target and someone put another configuration back before it
    /// completed: writing again would fight them for ever. Give the stable its replicas, remove
    /// the canary and wait (as after a second override).
    pub(super) fn overridden_while_promoting(&mut self, target: &TargetView) {
        let total = self.total(target);
        if self.mode() == ScalingMode::Split && target.spec_replicas < total {
            self.actions.push(Action::ScaleTarget { replicas: total });
            return;
        }
        if !stable_serves(target, target.spec_replicas) {
            self.status.message = Some(messages::taken_back_while_promoting(target.available, target.spec_replicas));
            return;
        }
        let (writers, fields) = env_writers(target, self.status.promoted_at.as_ref().map(|t| t.0));
        self.delete_canary_if_any();
        let hash = self.canary_hash();
        self.clear_rollout();
        self.status.replicas = Some(replica_status(target.spec_replicas, target.spec_replicas, 0));
        let o = OverrideStatus { generation: self.input.generation, rerollouts: 1, by: writers.clone(), fields };
        self.push_history(hash, Outcome::Overridden, messages::rewrote_during_promotion(&writers));
        let msg = messages::overridden(&o);
        self.status.overridden = Some(o);
        self.enter(Phase::Overridden, Reason::EnvOverridden, msg);
    }
}
