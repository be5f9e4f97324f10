//! A person's action (`redispool.io/action`): pause, resume, promote, abort, retry. Applied
//! before the phase's own handler, which then carries on from the phase it leaves.

use super::*;

impl Machine<'_> {
    pub(super) fn manual(&mut self, action: ManualAction) {
        use ManualAction::*;
        let phase = self.status.phase;
        let refused = |what: &str| messages::action_refused(what, phase);
        match action {
            Pause if phase == Phase::Progressing => self.enter(
                Phase::Paused,
                Reason::Paused,
                "paused by a person; resume with redispool.io/action=resume".into(),
            ),
            Resume if phase == Phase::Paused => {
                self.status.phase = Phase::Progressing;
                self.event(Reason::Resumed, "resumed by a person".into());
            }
            Promote if self.frozen.is_some() => {
                let why = self.frozen.as_ref().map(messages::promote_frozen).unwrap_or_default();
                self.event(Reason::ManualActionIgnored, why)
            }
            Promote if self.promotion_awaits_webhook().is_some() => {
                let who = self.promotion_awaits_webhook().unwrap_or_default();
                self.event(Reason::ManualActionIgnored, messages::promote_awaits_webhook(&who))
            }
            Approve => self.approve(),
            Promote
                if matches!(phase, Phase::Progressing | Phase::Paused)
                    && self.canary_hash() == self.input.desired.hash =>
            {
                self.status.progressed_at = Some(Time(self.now()));
                self.enter(
                    Phase::Promoting,
                    Reason::Promoting,
                    "promotion asked by a person; skipping the remaining steps".into(),
                );
            }
            Abort if matches!(phase, Phase::Progressing | Phase::Paused) => {
                self.start_rollback(RollbackKind::Aborted, "aborted by a person".into())
            }
            Abort if matches!(phase, Phase::Promoting | Phase::Degraded) => self.event(
                Reason::ManualActionIgnored,
                "abort ignored: the promotion is already writing the target; it will complete".into(),
            ),
            Retry if self.status.failed.is_some() || phase == Phase::Overridden => {
                self.status.failed = None;
                if let Some(o) = &mut self.status.overridden {
                    o.rerollouts = 0;
                }
                if matches!(phase, Phase::RolledBack | Phase::Overridden) {
                    self.status.phase = Phase::Idle;
                }
                self.event(Reason::Retry, "retry asked by a person: the configuration may roll out again".into());
            }
            Retry => self.event(
                Reason::ManualActionIgnored,
                "retry ignored: no rolled-back or overridden configuration to retry".into(),
            ),
            other => self.event(Reason::ManualActionIgnored, refused(other.name())),
        }
    }
}
