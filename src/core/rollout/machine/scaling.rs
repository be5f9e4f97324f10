//! Who sizes the fleet during a rollout (the operator splits it, or another writer owns the
//! stable and canary pods run beside it) and the replicas each step asks for.

use super::*;

impl Machine<'_> {
    pub(super) fn mode(&self) -> ScalingMode {
        self.status.scaling.as_ref().map_or(ScalingMode::Split, |s| s.mode)
    }

    /// The fleet a split rollout keeps (its size when it began).
    pub(super) fn total(&self, target: &TargetView) -> i32 {
        self.status.replicas.as_ref().map_or(target.spec_replicas, |r| r.total)
    }

    /// The canary and stable replicas of `weight` now.
    pub(super) fn split_for(&self, target: &TargetView, weight: i32) -> Split {
        match self.mode() {
            ScalingMode::Split => split(self.total(target), weight),
            ScalingMode::Beside => beside(target.spec_replicas, weight),
        }
    }

    pub(super) fn record_split(&mut self, target: &TargetView, weight: i32) -> Split {
        let s = self.split_for(target, weight);
        self.status.weight = Some(weight);
        let total = match self.mode() {
            ScalingMode::Split => self.total(target),
            ScalingMode::Beside => s.stable + s.canary,
        };
        self.status.replicas = Some(replica_status(total, s.stable, s.canary));
        s
    }

    /// In a split rollout, another field manager wrote the target's replicas after the rollout
    /// began: it is active, so from now on the operator leaves the replicas to it.
    pub(super) fn hand_over_replicas(&mut self, target: &TargetView) {
        if self.mode() != ScalingMode::Split {
            return;
        }
        let started = self.status.started_at.as_ref().map(|t| t.0);
        // A managedFields entry's time is its manager's last write of any field, in seconds: a
        // take-over is a write since the rollout began that left a value other than the last one
        // the operator wrote (or found, before its first write). Leaving the replicas to someone
        // is always safe; writing over them is not.
        let writer = target
            .replicas_writer
            .as_ref()
            .filter(|w| w.at.zip(started).is_some_and(|(at, s)| at >= s))
            .filter(|_| self.status.scaled_to != Some(target.spec_replicas));
        let by = match (&target.hpa, writer) {
            (Some(h), _) => messages::hpa(&h.name),
            (None, Some(w)) => messages::field_managers(&[&w.manager]),
            (None, None) => return,
        };
        let msg = messages::replicas_handed_over(&by, target.spec_replicas);
        self.status.scaling = Some(ScalingStatus { mode: ScalingMode::Beside, by: Some(by) });
        self.event(Reason::ReplicasHandedOver, msg);
    }
}
