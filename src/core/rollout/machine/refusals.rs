//! Decisions that touch nothing of the target: another policy holds it (Conflict), or it is
//! missing or the spec cannot be planned (Invalid).

use super::*;

impl Machine<'_> {
    /// Another policy holds the target (or owns the canary): touch nothing, say who. A rollout
    /// of ours in flight is undone first (the stable restored, our canary removed); the decision
    /// says Conflict once it is (see `run`).
    pub(super) fn conflict(&mut self, why: String) -> Next {
        let input = self.input;
        if input.observed.target.is_ok() && self.status.phase.is_active() {
            if self.status.rollback.as_ref().is_none_or(|r| r.kind != RollbackKind::Release) {
                self.start_rollback(RollbackKind::Release, why);
            }
            return Next::RollBack;
        }
        match &input.observed.target {
            Ok(target) if !self.remove_leftover_canary(target) => return Next::Done,
            Ok(_) => {}
            Err(_) => self.delete_canary_if_any(),
        }
        if self.status.phase.is_active() {
            self.clear_rollout();
        }
        if matches!(self.input.action, Some(Ok(_))) {
            self.consumed = true;
            self.event(Reason::ManualActionIgnored, messages::action_ignored(&why));
        }
        self.enter(Phase::Conflict, Reason::Conflict, why);
        Next::Done
    }

    /// The target Deployment is missing, or the spec cannot be planned.
    pub(super) fn invalid(&mut self, why: String) {
        // Nothing is left to give capacity back to; a canary of it serves no purpose.
        self.delete_canary_if_any();
        if self.status.phase.is_active() {
            self.clear_rollout();
        }
        if matches!(self.input.action, Some(Ok(_))) {
            // Answered, not left waiting: a person (or the plugin) is told why nothing happens.
            self.consumed = true;
            self.event(Reason::ManualActionIgnored, messages::action_ignored(&why));
        }
        self.enter(Phase::Invalid, Reason::InvalidTarget, why);
    }
}
