//! `decide`: one step of the rollout state machine.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::conditions::set_conditions;
use super::{Action, CanaryView, Decision, EventType, Input, ManualAction, TargetView, durations, step_pause};
use crate::analysis::Verdict;
use crate::api::{
    AnalysisStatus, ConfigRef, FailedConfig, HISTORY_LIMIT, HistoryEntry, Outcome, Phase, RedisPoolPolicyStatus,
    ReplicaStatus, RollbackKind, RollbackStatus,
};
use crate::sizing::{actual_weight, split};

/// Decides the next status and the actions that lead to it.
pub fn decide(input: &Input) -> Decision {
    let mut m =
        Machine { input, status: input.status.clone(), actions: Vec::new(), consumed: false, analysis_used: false };
    m.status.observed_generation = Some(input.generation);
    m.status.environment = Some(input.desired.environment.clone());
    m.run();
    set_conditions(&mut m.status, input);
    Decision { status: m.status, actions: m.actions, action_consumed: m.consumed }
}

struct Machine<'a> {
    input: &'a Input<'a>,
    status: RedisPoolPolicyStatus,
    actions: Vec<Action>,
    consumed: bool,
    /// The input's analysis was recorded; a later step in the same decision must not reuse it.
    analysis_used: bool,
}

impl Machine<'_> {
    fn run(&mut self) {
        if self.input.spec.suspend {
            // Frozen: no writes, and a pending manual action waits for resume.
            self.status.message = Some("suspended: spec.suspend is true; nothing is changed until it is false".into());
            return;
        }
        let target = match &self.input.observed.target {
            Ok(t) => t.clone(),
            Err(why) => return self.invalid(why.clone()),
        };
        if let Some(action) = self.input.action {
            self.consumed = true;
            self.manual(action);
        }
        match self.status.phase {
            Phase::Idle | Phase::Succeeded | Phase::RolledBack | Phase::Blocked | Phase::Invalid => {
                self.maybe_start(&target)
            }
            Phase::Progressing | Phase::Paused => self.progress(&target),
            Phase::Promoting => self.promote(&target),
            Phase::RollingBack => self.roll_back(&target),
        }
    }

    // ---- helpers -------------------------------------------------------------------------

    fn now(&self) -> Timestamp {
        self.input.now
    }

    fn event(&mut self, kind: EventType, reason: &'static str, message: String) {
        self.actions.push(Action::Event { kind, reason, message });
    }

    /// Moves to `phase`, with an Event only when the phase actually changes (steady state is silent).
    fn enter(&mut self, phase: Phase, kind: EventType, reason: &'static str, message: String) {
        if self.status.phase != phase {
            self.event(kind, reason, message.clone());
        }
        self.status.phase = phase;
        self.status.message = Some(message);
    }

    fn canary(&self) -> Option<&CanaryView> {
        self.input.observed.canary.as_ref()
    }

    fn total(&self, target: &TargetView) -> i32 {
        self.status.replicas.as_ref().map_or(target.spec_replicas, |r| r.total)
    }

    fn set_split(&mut self, total: i32, weight: i32) -> crate::sizing::Split {
        let s = split(total, weight);
        self.status.weight = Some(weight);
        self.status.replicas = Some(replica_status(total, s.stable, s.canary));
        s
    }

    fn steps(&self) -> usize {
        self.input.spec.rollout.steps.len().max(1)
    }

    /// The current step index, clamped in case the spec lost steps mid-rollout.
    fn step(&self) -> usize {
        (self.status.step.unwrap_or(0).max(0) as usize).min(self.steps() - 1)
    }

    fn weight_of(&self, step: usize) -> i32 {
        self.input.spec.rollout.steps.get(step).map_or(100, |s| s.weight)
    }

    fn clear_rollout(&mut self) {
        let s = &mut self.status;
        s.canary = None;
        s.step = None;
        s.weight = None;
        s.step_started_at = None;
        s.progressed_at = None;
        s.target_template_hash = None;
        s.rollback = None;
    }

    fn push_history(&mut self, hash: String, outcome: Outcome, reason: String) {
        let entry = HistoryEntry { hash, outcome, reason, finished_at: Time(self.now()) };
        self.status.history.insert(0, entry);
        self.status.history.truncate(HISTORY_LIMIT);
    }

    fn canary_hash(&self) -> String {
        self.status.canary.as_ref().map_or_else(|| self.input.desired.hash.clone(), |c| c.hash.clone())
    }

    fn start_rollback(&mut self, kind: RollbackKind, reason: String) {
        let (event_type, event_reason) = match kind {
            RollbackKind::Restart => (EventType::Normal, "RolloutRestarting"),
            _ => (EventType::Warning, "RollingBack"),
        };
        self.status.rollback = Some(RollbackStatus { kind, reason: reason.clone() });
        self.enter(Phase::RollingBack, event_type, event_reason, format!("rolling back: {reason}"));
    }

    // ---- phases --------------------------------------------------------------------------

    fn invalid(&mut self, why: String) {
        if self.status.phase.is_active() && self.canary().is_some() {
            // The target is gone or unusable: a canary of it serves no purpose.
            self.actions.push(Action::DeleteCanary);
        }
        if self.status.phase.is_active() {
            self.clear_rollout();
        }
        self.enter(Phase::Invalid, EventType::Warning, "InvalidTarget", why);
    }

    fn manual(&mut self, action: ManualAction) {
        use ManualAction::*;
        let phase = self.status.phase;
        let refused = |what: &str| format!("{what} ignored: the policy is {phase:?}");
        match action {
            Pause if phase == Phase::Progressing => self.enter(
                Phase::Paused,
                EventType::Normal,
                "Paused",
                "paused by a person; resume with redispool.io/action=resume".into(),
            ),
            Resume if phase == Phase::Paused => {
                self.status.phase = Phase::Progressing;
                self.event(EventType::Normal, "Resumed", "resumed by a person".into());
            }
            Promote
                if matches!(phase, Phase::Progressing | Phase::Paused)
                    && self.canary_hash() == self.input.desired.hash =>
            {
                self.status.progressed_at = Some(Time(self.now()));
                self.enter(
                    Phase::Promoting,
                    EventType::Normal,
                    "Promoting",
                    "promotion asked by a person; skipping the remaining steps".into(),
                );
            }
            Abort if matches!(phase, Phase::Progressing | Phase::Paused) => {
                self.start_rollback(RollbackKind::Aborted, "aborted by a person".into())
            }
            Abort if phase == Phase::Promoting => self.event(
                EventType::Warning,
                "ManualActionIgnored",
                "abort ignored: the promotion is already writing the target; it will complete".into(),
            ),
            Retry if self.status.failed.is_some() => {
                self.status.failed = None;
                if phase == Phase::RolledBack {
                    self.status.phase = Phase::Idle;
                }
                self.event(
                    EventType::Normal,
                    "Retry",
                    "retry asked by a person: the rolled-back configuration may roll out again".into(),
                );
            }
            Retry => self.event(
                EventType::Warning,
                "ManualActionIgnored",
                "retry ignored: no rolled-back configuration to retry".into(),
            ),
            other => {
                let what = format!("{other:?}").to_lowercase();
                self.event(EventType::Warning, "ManualActionIgnored", refused(&what))
            }
        }
    }

    fn maybe_start(&mut self, target: &TargetView) {
        let desired = self.input.desired;
        let total = desired.plan.pool.replicas;
        self.clear_rollout();
        let up_to_date = desired.hash == target.config_hash;
        let not_retried = self
            .status
            .failed
            .as_ref()
            .is_some_and(|f| f.hash == desired.hash && f.generation >= self.input.generation);
        let starting = !up_to_date && !not_retried && desired.plan.budget.ok;
        if self.canary().is_some() && !starting {
            // A canary outside a rollout is left over (its status was lost): restore the
            // target's capacity first, then remove it.
            if target.spec_replicas < total {
                self.actions.push(Action::ScaleTarget { replicas: total });
                self.status.message =
                    Some(format!("restoring the target to {total} replicas before removing a leftover canary"));
                return;
            }
            self.actions.push(Action::DeleteCanary);
        }
        if up_to_date {
            self.status.stable = Some(ConfigRef { hash: desired.hash.clone(), plan: Some(desired.plan.pool.clone()) });
            self.status.replicas = Some(replica_status(target.spec_replicas, target.spec_replicas, 0));
            if self.status.phase != Phase::Succeeded {
                self.enter(
                    Phase::Idle,
                    EventType::Normal,
                    "UpToDate",
                    format!("the target runs pool configuration {}", desired.hash),
                );
            }
            if target.spec_replicas != total && desired.plan.budget.ok {
                // Only the replica count differs: no canary needed for a size change.
                self.actions.push(Action::ScaleTarget { replicas: total });
                self.status.replicas = Some(replica_status(total, total, 0));
            }
            return;
        }
        if not_retried && let Some(f) = &self.status.failed {
            self.status.phase = Phase::RolledBack;
            self.status.message = Some(rolled_back_message(f));
            return;
        }
        if !desired.plan.budget.ok {
            let msg = format!("blocked: {}", desired.plan.budget.explain());
            return self.enter(Phase::Blocked, EventType::Warning, "BudgetExceeded", msg);
        }
        // Start a rollout (adopting a canary of the same configuration, if one was left).
        let old_hash = target.config_hash.clone();
        let s = &mut self.status;
        s.failed = None;
        s.stable = Some(ConfigRef { hash: old_hash, plan: s.stable.as_ref().and_then(|c| c.plan.clone()) });
        s.canary = Some(ConfigRef { hash: desired.hash.clone(), plan: Some(desired.plan.pool.clone()) });
        s.target_template_hash = Some(target.template_hash.clone());
        s.progressed_at = Some(Time(self.input.now));
        s.analysis = None;
        let p = &desired.plan.pool;
        if total == 0 {
            // No pods, no risk to measure: write the configuration straight away.
            self.status.replicas = Some(replica_status(0, 0, 0));
            let msg = format!("the target has no replicas: writing pool configuration {} directly", desired.hash);
            self.enter(Phase::Promoting, EventType::Normal, "Promoting", msg);
            return self.promote(target);
        }
        self.status.step = Some(0);
        let weight = self.weight_of(0);
        // The fleet size this rollout keeps; progress() reads it back.
        self.set_split(total, weight);
        let msg = format!(
            "rolling out pool configuration {} (tier {}: {} workers x {} connections = {} per pod) to {} replicas: step 1/{} at {}%",
            desired.hash,
            p.tier,
            p.workers,
            p.connections_per_worker,
            p.connections_per_pod,
            total,
            self.steps(),
            weight
        );
        self.enter(Phase::Progressing, EventType::Normal, "RolloutStarted", msg);
        // Go straight on, so that deciding again on this status gives the same status.
        self.progress(target);
    }

    /// The target already carries the canary's configuration: a promotion began and its status
    /// write was lost (a crash). The only consistent end is to finish it.
    fn finish_begun_promotion(&mut self, target: &TargetView) -> bool {
        if target.config_hash != self.canary_hash() {
            return false;
        }
        let msg = format!(
            "the target already carries pool configuration {}: completing the promotion that was under way",
            target.config_hash
        );
        self.enter(Phase::Promoting, EventType::Normal, "Promoting", msg);
        self.promote(target);
        true
    }

    fn progress(&mut self, target: &TargetView) {
        if self.finish_begun_promotion(target) {
            return;
        }
        let desired = self.input.desired;
        if self.canary_hash() != desired.hash {
            let reason = format!("the spec changed to pool configuration {}; restarting the rollout", desired.hash);
            self.start_rollback(RollbackKind::Restart, reason);
            return self.roll_back(target);
        }
        if self.status.target_template_hash.as_deref().is_some_and(|h| h != target.template_hash) {
            let reason =
                "the target's pod template changed during the rollout; restarting it with the new template".to_string();
            self.start_rollback(RollbackKind::Restart, reason);
            return self.roll_back(target);
        }
        let now = self.now();
        let d = durations(self.input.spec);
        let step = self.step();
        let total = self.total(target);
        let weight = self.weight_of(step);
        let split = self.set_split(total, weight);
        self.status.step = Some(step as i32);
        let step_label = format!("step {}/{} ({}%)", step + 1, self.steps(), weight);

        // 1. The canary runs the desired configuration with this step's replicas.
        let canary_ok = self.canary().is_some_and(|c| {
            c.spec_replicas == split.canary && c.config_hash == desired.hash && c.template_hash == target.template_hash
        });
        if !canary_ok {
            self.actions.push(Action::ApplyCanary { replicas: split.canary });
        }
        let available = self.canary().map_or(0, |c| c.available);
        if !canary_ok || available < split.canary {
            self.status.step_started_at = None;
            self.status.message =
                Some(format!("{step_label}: waiting for canary pods, {available}/{} available", split.canary));
            let since = self.status.progressed_at.as_ref().map_or(now, |t| t.0);
            if self.status.phase == Phase::Progressing && now.duration_since(since) > d.progress_deadline {
                let reason = format!(
                    "canary pods were not available within progressDeadline {}",
                    self.input.spec.rollout.analysis.progress_deadline
                );
                self.start_rollback(RollbackKind::Failed, reason);
                return self.roll_back(target);
            }
            return;
        }
        // 2. Only then does the stable give up its replicas.
        if target.spec_replicas != split.stable {
            self.actions.push(Action::ScaleTarget { replicas: split.stable });
            self.status.message = Some(format!("{step_label}: scaling the stable to {} replicas", split.stable));
            return;
        }
        // 3. The step's soak begins.
        let started = match &self.status.step_started_at {
            Some(t) => t.0,
            None => {
                self.status.step_started_at = Some(Time(now));
                self.status.progressed_at = Some(Time(now));
                let msg = format!(
                    "{step_label}: {} canary / {} stable replicas, soaking for {}",
                    split.canary,
                    split.stable,
                    self.pause_label(step)
                );
                self.event(EventType::Normal, "StepStarted", msg);
                now
            }
        };
        // 4. Record an analysis of this step.
        if let Some(run) = self.input.analysis.filter(|r| !self.analysis_used && r.step == step as i32)
            && self.record_analysis(run, step, started)
        {
            let a = self.status.analysis.as_ref().expect("just recorded");
            let limit = self.input.spec.rollout.analysis.failure_limit;
            if a.consecutive_failures >= limit {
                let reason = format!(
                    "analysis failed {} times in a row at {step_label}: {}",
                    a.consecutive_failures,
                    failing_gates(&a.gates)
                );
                self.start_rollback(RollbackKind::Failed, reason);
                return self.roll_back(target);
            }
        }
        if self.status.phase == Phase::Paused {
            self.status.message = Some(format!("{step_label}: paused by a person"));
            return;
        }
        // 5. Advance when the soak is over and the latest analysis of this step passed.
        let soaked_at = started + step_pause(self.input.spec, step);
        let latest = self.status.analysis.as_ref().filter(|a| a.step == step as i32 && a.at.0 >= started);
        let passed = latest.is_some_and(|a| a.verdict == Verdict::Pass);
        if now >= soaked_at && passed {
            self.status.progressed_at = Some(Time(now));
            if step + 1 < self.steps() {
                let next = step + 1;
                let w = self.weight_of(next);
                let s = self.set_split(total, w);
                self.status.step = Some(next as i32);
                self.status.step_started_at = None;
                let msg =
                    format!("step {}/{} ({w}%): scaling the canary to {} replicas", next + 1, self.steps(), s.canary);
                self.event(EventType::Normal, "StepAdvanced", msg);
                // Go straight on into the new step (its canary scale-up, or its soak).
                self.progress(target);
            } else {
                let msg = format!("every step passed; promoting pool configuration {}", desired.hash);
                self.enter(Phase::Promoting, EventType::Normal, "Promoting", msg);
                self.promote(target);
            }
            return;
        }
        let verdict = latest.map_or("no analysis yet".to_string(), |a| {
            format!(
                "last analysis {:?}{}",
                a.verdict,
                a.decided_by.as_ref().map(|g| format!(" ({g})")).unwrap_or_default()
            )
        });
        self.status.message =
            Some(format!("{step_label}: {}/{} canary pods available; {verdict}", available, split.canary));
        if now > soaked_at && now.duration_since(soaked_at) > d.progress_deadline {
            let reason = format!(
                "no passing analysis within progressDeadline {} after the pause of {step_label}; {verdict}",
                self.input.spec.rollout.analysis.progress_deadline
            );
            self.start_rollback(RollbackKind::Failed, reason);
            self.roll_back(target);
        }
    }

    fn pause_label(&self, step: usize) -> String {
        self.input.spec.rollout.steps.get(step).map_or_else(|| "0s".into(), |s| s.pause.clone())
    }

    /// Stores an analysis of `step`; false when it was already stored (the same instant).
    fn record_analysis(&mut self, run: &super::AnalysisRun, step: usize, started: Timestamp) -> bool {
        self.analysis_used = true;
        let now = self.now();
        let prev = self.status.analysis.as_ref().filter(|a| a.step == step as i32 && a.at.0 >= started);
        if prev.is_some_and(|a| a.at.0 == now) {
            return false;
        }
        let failures = prev.map_or(0, |a| a.consecutive_failures);
        let errors = prev.map_or(0, |a| a.provider_errors);
        let a = &run.analysis;
        let consecutive_failures = match a.verdict {
            Verdict::Fail => failures + 1,
            Verdict::Pass => 0,
            // A hold is neither evidence of failure nor of health.
            Verdict::Hold | Verdict::NoData => failures,
        };
        let decided_by = a.decided_by.map(|g| g.name().to_string());
        if a.verdict == Verdict::Fail {
            let limit = self.input.spec.rollout.analysis.failure_limit;
            let msg = format!("{} ({consecutive_failures}/{limit})", failing_gates(&a.gates));
            self.event(EventType::Warning, "AnalysisFailed", msg);
        }
        self.status.analysis = Some(AnalysisStatus {
            at: Time(now),
            verdict: a.verdict,
            decided_by,
            gates: a.gates.clone(),
            consecutive_failures,
            provider_errors: errors + i32::from(run.provider_error.is_some()),
            step: step as i32,
        });
        true
    }

    fn promote(&mut self, target: &TargetView) {
        let desired = self.input.desired;
        let total = self.total(target);
        let canary_hash = self.canary_hash();
        if target.config_hash != canary_hash {
            if canary_hash != desired.hash {
                // Never write a configuration into the target that no canary has run.
                let reason = format!(
                    "the spec changed to pool configuration {} before promotion; restarting the rollout",
                    desired.hash
                );
                self.start_rollback(RollbackKind::Restart, reason);
                return self.roll_back(target);
            }
            self.actions.push(Action::PromoteTarget { replicas: total });
            self.status.message = Some(format!(
                "promoting: writing pool configuration {canary_hash} into the target with {total} replicas"
            ));
            return;
        }
        if target.spec_replicas != total {
            self.actions.push(Action::PromoteTarget { replicas: total });
            return;
        }
        if !target.rolled_out || target.available < total {
            self.status.message =
                Some(format!("promoting: waiting for the target's rollout, {}/{total} available", target.available));
            return;
        }
        if self.canary().is_some() {
            self.actions.push(Action::DeleteCanary);
        }
        let plan = self.status.canary.as_ref().and_then(|c| c.plan.clone());
        self.status.stable = Some(ConfigRef { hash: canary_hash.clone(), plan });
        self.clear_rollout();
        self.status.replicas = Some(replica_status(total, total, 0));
        self.push_history(canary_hash.clone(), Outcome::Succeeded, "promoted".into());
        let msg = format!("promoted: the target runs pool configuration {canary_hash} on {total} replicas");
        self.enter(Phase::Succeeded, EventType::Normal, "Promoted", msg);
    }

    fn roll_back(&mut self, target: &TargetView) {
        if self.finish_begun_promotion(target) {
            return;
        }
        let total = self.total(target);
        let rollback = self
            .status
            .rollback
            .clone()
            .unwrap_or(RollbackStatus { kind: RollbackKind::Failed, reason: "rolling back".into() });
        if target.spec_replicas < total {
            self.actions.push(Action::ScaleTarget { replicas: total });
            self.status.replicas = Some(replica_status(total, total, self.canary().map_or(0, |c| c.spec_replicas)));
            self.status.message =
                Some(format!("rolling back: restoring the stable to {total} replicas ({})", rollback.reason));
            return;
        }
        let needed = (total - target.max_unavailable).max(0);
        if target.available < needed {
            self.status.message = Some(format!(
                "rolling back: waiting for the stable, {}/{total} available ({})",
                target.available, rollback.reason
            ));
            return;
        }
        let hash = self.canary_hash();
        if rollback.kind == RollbackKind::Restart {
            // Start over from step 0, reusing the canary Deployment (it gets the new template or
            // configuration), so no delete and re-create of the same name is needed.
            self.push_history(hash, Outcome::Restarted, rollback.reason.clone());
            self.event(EventType::Normal, "RolloutRestarted", rollback.reason);
            self.status.phase = Phase::Idle;
            return self.maybe_start(target);
        }
        if self.canary().is_some() {
            self.actions.push(Action::DeleteCanary);
        }
        self.clear_rollout();
        self.status.replicas = Some(replica_status(total, total, 0));
        let failed =
            FailedConfig { hash: hash.clone(), generation: self.input.generation, reason: rollback.reason.clone() };
        let msg = rolled_back_message(&failed);
        self.status.failed = Some(failed);
        self.push_history(hash, Outcome::RolledBack, rollback.reason);
        self.enter(Phase::RolledBack, EventType::Warning, "RolledBack", msg);
    }
}

/// Every failing gate with its numbers, e.g. `poolUtilization 95.0% is above ...; successRate ...`.
fn failing_gates(gates: &[crate::analysis::GateResult]) -> String {
    let failing: Vec<String> = gates
        .iter()
        .filter(|g| g.verdict == Verdict::Fail)
        .map(|g| format!("{} {}", g.gate.name(), g.message))
        .collect();
    if failing.is_empty() { "no data (onNoData: Fail)".into() } else { failing.join("; ") }
}

fn rolled_back_message(f: &FailedConfig) -> String {
    format!(
        "rolled back pool configuration {} ({}); change the spec or annotate redispool.io/action=retry to try again",
        f.hash, f.reason
    )
}

pub(crate) fn replica_status(total: i32, stable: i32, canary: i32) -> ReplicaStatus {
    ReplicaStatus {
        total,
        stable,
        canary,
        actual_weight: actual_weight(canary, stable),
        summary: format!("{canary}/{total}"),
    }
}
