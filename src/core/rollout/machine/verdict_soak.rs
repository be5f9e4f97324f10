//! After a promotion, analyses of the target's pods soak the verdict on its configuration: the
//! evidence other environments wait for (`spec.promotion.requires`).

use super::*;

impl Machine<'_> {
    /// After a promotion, analyses of the target's pods soak its verdict (in any phase without
    /// a rollout in flight, while the target runs that configuration): consecutive passes add
    /// the time between them (at most two intervals, so that time nobody measured never counts),
    /// anything else stops the clock until the next pass, and `failureLimit` failures in a row
    /// mark the verdict Failed. The operator does not roll back a promoted configuration on its
    /// own: a person decides, and the Event says so. A watch that has not soaked `soak` within
    /// `soak + progressDeadline` ends, and says why, rather than analyse for ever.
    pub(super) fn soak_verdict(&mut self, target: &TargetView) -> Next {
        let spec = self.input.spec;
        let Some(v) = watched_verdict(spec, &self.status).filter(|v| v.hash == target.config_hash) else {
            return Next::Done;
        };
        let (hash, finished) = (v.hash.clone(), v.finished_at.0);
        let now = self.now();
        let d = durations(spec);
        let index = self.status.verdicts.iter().position(|x| x.hash == hash).expect("watched_verdict found it");
        if now.duration_since(finished) > d.promotion_soak + d.progress_deadline {
            let v = &mut self.status.verdicts[index];
            let why = messages::watch_ended(&spec.promotion.soak, d.promotion_soak + d.progress_deadline);
            v.watch_ended = Some(why.clone());
            v.clean_at = None;
            let msg = messages::verdict_watch_ended(&hash, v.soaked(), &spec.promotion.soak, &why);
            self.event(Reason::VerdictWatchEnded, msg);
            return Next::Done;
        }
        let Some(run) = self.input.analysis.filter(|r| r.of == Due::AfterPromotion && !self.analysis_used) else {
            return Next::Done;
        };
        let prev = self.status.analysis.clone().filter(|a| a.after_promotion && a.at.0 >= finished);
        if !self.record(prev, run, self.steps() as i32 - 1, true, &hash) {
            return Next::Done;
        }
        let failures = self.status.analysis.as_ref().map_or(0, |a| a.consecutive_failures);
        let a = &run.analysis;
        let v = &mut self.status.verdicts[index];
        let was_soaked = v.soaked();
        v.analyses += 1;
        match (a.verdict, v.clean_at.take()) {
            (Verdict::Pass, Some(c)) => {
                let gap = now.duration_since(c.0).clamp(SignedDuration::ZERO, d.interval * 2);
                v.soaked_seconds += gap.as_secs();
                v.clean_at = Some(Time(now));
            }
            (Verdict::Pass, None) => v.clean_at = Some(Time(now)),
            _ => {}
        }
        let just_soaked = was_soaked < d.promotion_soak && v.soaked() >= d.promotion_soak;
        if a.verdict == Verdict::Fail && failures >= spec.rollout.analysis.failure_limit {
            let reason = messages::failed_after_promotion(failures, now.duration_since(finished), &a.gates);
            v.result = VerdictResult::Failed;
            v.reason = Some(reason.clone());
            let msg = messages::verdict_failed(&hash, &reason);
            self.event(Reason::VerdictFailed, msg.clone());
            if matches!(self.status.phase, Phase::Succeeded | Phase::Idle) {
                self.status.message = Some(msg);
            }
        } else if matches!(self.status.phase, Phase::Succeeded | Phase::Idle) {
            self.status.message = Some(messages::verdict_soaking(&hash, v.soaked(), &spec.promotion.soak, a.verdict));
        }
        if just_soaked {
            // The news environments that require this verdict wait for.
            let msg = messages::verdict_soaked(&hash, &spec.promotion.soak);
            self.event(Reason::VerdictSoaked, msg);
        }
        Next::Done
    }
}
