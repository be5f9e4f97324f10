//! Recording an analysis: failures in a row, provider errors, the pool seen (for advice), and
//! an Event for a failing one. Shared by a step's analyses and the verdict's soak.

use super::*;

impl Machine<'_> {
    /// Keeps the peak pool utilization and exhaustion the analyses saw of configuration `hash`,
    /// and over what time, for advice.
    pub(super) fn see_pool(&mut self, hash: &str, gates: &[crate::core::analysis::GateResult]) {
        use crate::core::api::Gate;
        let value = |g: Gate| gates.iter().find(|r| r.gate == g).and_then(|r| r.value);
        let Some(utilization) = value(Gate::PoolUtilization) else { return };
        let now = Time(self.now());
        let fresh = || PoolSeen { hash: hash.to_string(), since: Some(now.clone()), ..Default::default() };
        let mut seen = self.status.pool_seen.take().filter(|s| s.hash == hash).unwrap_or_else(fresh);
        seen.peak_utilization = seen.peak_utilization.max(utilization);
        seen.exhaustion_events += value(Gate::PoolExhaustionEvents).map_or(0, |v| v as i64);
        seen.analyses += 1;
        seen.last = Some(now);
        self.status.pool_seen = Some(seen);
    }

    /// Stores an analysis of the canary of `step`; false when it was already stored (the same
    /// instant).
    pub(super) fn record_analysis(&mut self, run: &AnalysisRun, step: usize, started: Timestamp) -> bool {
        let prev =
            self.status.analysis.clone().filter(|a| !a.after_promotion && a.step == step as i32 && a.at.0 >= started);
        let hash = self.canary_hash();
        self.record(prev, run, step as i32, false, &hash)
    }

    /// Stores `run` as the latest analysis after `prev` (the one before it of the same
    /// rollout step or watch): failures in a row, provider errors, the pool seen of `hash`, and
    /// an Event for a failing one. False when `prev` is of this very instant.
    pub(super) fn record(
        &mut self,
        prev: Option<AnalysisStatus>,
        run: &AnalysisRun,
        step: i32,
        after_promotion: bool,
        hash: &str,
    ) -> bool {
        self.analysis_used = true;
        let now = self.now();
        if prev.as_ref().is_some_and(|a| a.at.0 == now) {
            return false;
        }
        let failures = prev.as_ref().map_or(0, |a| a.consecutive_failures);
        let errors = prev.as_ref().map_or(0, |a| a.provider_errors);
        let a = &run.analysis;
        let consecutive_failures = match a.verdict {
            Verdict::Fail => failures + 1,
            Verdict::Pass => 0,
            // A hold is neither evidence of failure nor of health; nor is an interval in which the
            // environment was at fault.
            Verdict::Hold | Verdict::NoData | Verdict::Inconclusive => failures,
        };
        if a.verdict == Verdict::Fail {
            let limit = self.input.spec.rollout.analysis.failure_limit;
            let msg = messages::analysis_failed(&a.gates, after_promotion, consecutive_failures, limit);
            self.event(Reason::AnalysisFailed, msg);
        }
        // What kind of fault the evidence names (its words before the numbers): a failover in
        // the middle of an outage is news, the outage's numbers moving are not.
        let kind = |e: Option<&str>| e.map(|e| e.split([':', '(']).next().unwrap_or(e).trim().to_string());
        self.weather_news = a.verdict == Verdict::Inconclusive
            && prev.as_ref().is_none_or(|p| {
                p.verdict != Verdict::Inconclusive || kind(p.environment.as_deref()) != kind(a.environment.as_deref())
            });
        self.judged_from = prev.as_ref().map(|p| p.at.0);
        self.see_pool(hash, &a.gates);
        self.status.analysis = Some(AnalysisStatus {
            at: Time(now),
            verdict: a.verdict,
            decided_by: a.decided_by.map(|g| g.name().to_string()),
            gates: a.gates.clone(),
            consecutive_failures,
            provider_errors: errors + i32::from(run.provider_error.is_some()),
            step,
            after_promotion,
            environment: a.environment.clone(),
        });
        true
    }
}
