//! A step's soak clock: it runs while every canary pod the step counts on is available, and
//! pauses while some are missing.

use super::*;

impl Machine<'_> {
    /// Starts or resumes the soak clock of `step`; returns when the step's soak first began.
    pub(super) fn soak_runs(&mut self, step: usize, step_label: &str) -> Timestamp {
        let now = self.now();
        match (self.status.step_started_at.clone(), self.status.soak.clone()) {
            (Some(started), Some(soak)) if soak.running_since.is_some() => started.0,
            (Some(started), Some(soak)) => {
                let since = soak.unavailable_since.map_or(now, |t| t.0);
                self.status.soak = Some(SoakStatus { running_since: Some(Time(now)), unavailable_since: None, ..soak });
                let soaked = SignedDuration::from_secs(self.status.soak.as_ref().map_or(0, |s| s.soaked_seconds));
                let msg =
                    messages::soak_resumes(step_label, now.duration_since(since), soaked, &self.pause_label(step));
                self.event(Reason::SoakResumed, msg);
                started.0
            }
            (started, _) => {
                // A status from before the soak clock existed counts from its step start.
                let begun = started.map_or(now, |t| t.0);
                self.status.step_started_at = Some(Time(begun));
                let canary = self.status.replicas.as_ref().map_or(0, |r| r.canary);
                self.status.soak = Some(SoakStatus {
                    soaked_seconds: 0,
                    running_since: Some(Time(begun)),
                    unavailable_since: None,
                    canary,
                    held_until: None,
                });
                if begun == now {
                    self.status.progressed_at = Some(Time(now));
                    let s = self.status.replicas.clone().unwrap_or(replica_status(0, 0, 0));
                    let pause = self.pause_label(step);
                    let msg = messages::step_started(step_label, &self.canary_hash(), s.canary, s.stable, &pause);
                    self.event(Reason::StepStarted, msg);
                }
                begun
            }
        }
    }

    /// Soak time of the current step so far.
    pub(super) fn soaked(&self) -> SignedDuration {
        let Some(s) = &self.status.soak else { return SignedDuration::ZERO };
        let running = s.running_since.as_ref().map_or(SignedDuration::ZERO, |t| self.now().duration_since(t.0));
        SignedDuration::from_secs(s.soaked_seconds) + running.max(SignedDuration::ZERO)
    }

    pub(super) fn pause_label(&self, step: usize) -> String {
        self.input.spec.rollout.steps.get(step).map_or_else(|| "0s".into(), |s| s.pause.clone())
    }
}
