//! A step's soak clock: it runs while every canary pod the step counts on is available, and
//! pauses while some are missing.

use super::*;

impl Machine<'_> {
    /// Starts or resumes the soak clock of `step`; returns when the step's soak first began.
    pub(super) fn soak_runs(&mut self, step: usize, step_label: &str) -> Timestamp {
        let now = self.now();
        match (self.status.step_started_at.clone(), self.status.soak.clone()) {
            (Some(started), Some(soak)) if soak.running_since.is_some() => started.0,
            // Stopped by the environment: the analyses restart it, not the pods; pods that went
            // missing during the spell are back.
            (Some(started), Some(soak)) if soak.environment_since.is_some() => {
                if soak.unavailable_since.is_some() {
                    self.status.soak = Some(SoakStatus { unavailable_since: None, ..soak });
                }
                started.0
            }
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
                    environment_since: None,
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

    /// Stops or restarts the soak clock on the latest analysis of the step that began at
    /// `started`: an Inconclusive one stops it, and the interval it judged does not count; the
    /// next one that judges the configuration again restarts it.
    pub(super) fn soak_weather(&mut self, step: usize, started: Timestamp, label: &str) {
        let Some(a) = self.status.analysis.clone().filter(|a| a.step == step as i32 && a.at.0 >= started) else {
            return;
        };
        let Some(soak) = self.status.soak.clone() else { return };
        let now = self.now();
        let pause = self.pause_label(step);
        match (a.verdict == Verdict::Inconclusive, soak.running_since, soak.environment_since) {
            (true, Some(run), _) => {
                // The interval this analysis judged began at the one before it (or one interval
                // ago, without one): up to there the soak counts.
                let judged_from = self.judged_from.unwrap_or(a.at.0 - durations(self.input.spec).interval);
                let credit = judged_from.duration_since(run.0).as_secs().max(0);
                let soaked = soak.soaked_seconds + credit;
                self.status.soak = Some(SoakStatus {
                    soaked_seconds: soaked,
                    running_since: None,
                    environment_since: Some(a.at.clone()),
                    ..soak
                });
                let evidence = a.environment.as_deref().unwrap_or("no evidence recorded");
                let msg = messages::analysis_inconclusive(label, evidence, SignedDuration::from_secs(soaked), &pause);
                self.event(Reason::AnalysisInconclusive, msg);
            }
            // Still at fault, on new evidence (a failover in the middle of an outage): said too.
            (true, None, Some(_)) if self.weather_news => {
                let evidence = a.environment.as_deref().unwrap_or("no evidence recorded");
                let soaked = SignedDuration::from_secs(soak.soaked_seconds);
                let msg = messages::analysis_inconclusive(label, evidence, soaked, &pause);
                self.event(Reason::AnalysisInconclusive, msg);
            }
            // Only an analysis that measured something ends the spell (not a provider's outage).
            (false, None, Some(since)) if a.at.0 > since.0 && a.gates.iter().any(|g| g.value.is_some()) => {
                // The hold zone's deadline needs no help: it counts judged soak time, and the
                // clock stood still through the weather.
                self.status.soak = Some(SoakStatus { running_since: Some(Time(now)), environment_since: None, ..soak });
                let soaked = SignedDuration::from_secs(soak.soaked_seconds);
                let msg = messages::environment_recovered(label, now.duration_since(since.0), soaked, &pause);
                self.event(Reason::EnvironmentRecovered, msg);
            }
            _ => {}
        }
    }

    /// While the environment is at fault, the step holds: never promoting, never blaming the
    /// configuration; past `progressDeadline` it is Degraded, which pages once.
    pub(super) fn weather_hold(&mut self, label: &str) -> Option<Next> {
        let since = self.status.soak.as_ref()?.environment_since.clone()?;
        let evidence = self.status.analysis.as_ref().and_then(|a| a.environment.clone()).unwrap_or_default();
        let away = self.held_for(since.0);
        if away > self.deadline() {
            let msg = messages::environment_degraded(label, away, self.deadline_label(), &evidence);
            let paged = crate::core::rollout::conditions::is_true(
                self.input.status,
                crate::core::rollout::conditions::ENVIRONMENT_DEGRADED,
            );
            if !paged {
                self.event(Reason::EnvironmentDegraded, msg.clone());
            }
            self.status.message = Some(msg);
        } else {
            self.status.message = Some(messages::holding_for_environment(label, away, &evidence));
        }
        Some(Next::Done)
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
