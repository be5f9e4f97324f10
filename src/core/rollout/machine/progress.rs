//! A step of the rollout: the canary at the step's replicas, then the stable at the rest, the
//! step's soak, its analyses, and the advance to the next step or the promotion.

use super::*;

/// Where a step's soak stands, for the advance.
struct Soaking {
    step: usize,
    started: Timestamp,
    available: i32,
    canary: i32,
    label: String,
}

impl Machine<'_> {
    pub(super) fn progress(&mut self, target: &TargetView) -> Next {
        if let Some(promoting) = self.finish_begun_promotion(target) {
            return promoting;
        }
        if let Some(reason) = self.restart_reason(target) {
            return self.restart(reason);
        }
        self.hand_over_replicas(target);
        let step = self.step();
        self.keep_holds(step);
        let weight = self.weight_of(step);
        let split = self.record_split(target, weight);
        self.status.step = Some(step as i32);
        let label = messages::step_label(step, self.steps(), weight);
        let available = match self.scale_step(target, &split, &label) {
            Ok(available) => available,
            Err(waiting) => return waiting,
        };
        // 3. The step's soak runs (begins, or resumes after canary pods were missing).
        let started = self.soak_runs(step, &label);
        // 4. Its analyses are recorded and judged.
        // What the verdicts this rollout requires say now (read once for the step).
        let clearance = self.clearance();
        if let Some(next) = self.judge_step(step, started, &label, &clearance) {
            return next;
        }
        if let Some(next) = self.weather_hold(&label) {
            return next;
        }
        // 5. It advances when the soak is over and the latest analysis of this step passed.
        self.advance(target, Soaking { step, started, available, canary: split.canary, label }, &clearance)
    }

    /// Why the rollout must start again: what it was started on has changed.
    fn restart_reason(&self, target: &TargetView) -> Option<String> {
        if let Some(why) = &target.unusable {
            return Some(messages::unmanageable(why));
        }
        let desired = self.input.desired;
        if self.canary_hash() != desired.hash {
            return Some(messages::spec_changed(&desired.hash));
        }
        if self.status.target_uid.as_deref().is_some_and(|u| u != target.uid) {
            return Some(messages::target_replaced());
        }
        if self.status.target_template_hash.as_deref().is_some_and(|h| h != target.template_hash) {
            return Some(messages::template_changed());
        }
        (!self.budget.ok).then(|| messages::no_longer_fits(&self.budget))
    }

    /// Sizes the step: first the canary runs the desired configuration at this step's replicas
    /// (a canary a person edited, its template no longer the one applied, is put back); only
    /// then does the stable give up its replicas (when the operator sizes it). The canary pods
    /// available, or what the step waits for.
    fn scale_step(&mut self, target: &TargetView, split: &Split, label: &str) -> Result<i32, Next> {
        let desired = self.input.desired;
        let canary_ok = self.canary().is_some_and(|c| {
            c.spec_replicas == split.canary && c.config_hash == desired.hash && c.template_hash == target.template_hash
        });
        // A step that advanced within this decision resizes the canary it already applies: one
        // apply, of the step the decision ends in. What was observed of the canary is stale then:
        // its pods count from the next look.
        let resized = self.actions.iter().position(|a| matches!(a, Action::ApplyCanary { .. }));
        if !canary_ok || resized.is_some() {
            let replace = self.canary().is_some_and(|c| c.edited);
            let apply = Action::ApplyCanary { replicas: split.canary, replace };
            match resized {
                Some(earlier) => self.actions[earlier] = apply,
                None => self.actions.push(apply),
            }
        }
        // Pods of the right configuration and template count, even while the step resizes the
        // canary (an HPA moved the stable): only missing pods pause the soak.
        let available = self
            .canary()
            .filter(|c| resized.is_none() && c.config_hash == desired.hash && c.template_hash == target.template_hash)
            .map_or(0, |c| c.available.min(split.canary));
        // During a soak, only pods it had counted on are missing when gone: new pods of a canary
        // that follows an HPA upwards are starting, not lost.
        // (A soak recorded before this count existed reads 0: it counts on the whole step.)
        let counted =
            self.status.soak.as_ref().filter(|s| s.canary > 0).map_or(split.canary, |s| s.canary.min(split.canary));
        if available < counted {
            return Err(self.canary_short(label, available, split.canary));
        }
        if let Some(s) = self.status.soak.as_mut()
            && available >= split.canary
        {
            s.canary = split.canary;
        }
        if self.mode() == ScalingMode::Split && target.spec_replicas != split.stable {
            self.actions.push(Action::ScaleTarget { replicas: split.stable });
            self.status.message = Some(messages::scaling_stable(label, split.stable));
            return Err(Next::Done);
        }
        Ok(available)
    }

    /// Records an analysis of this step; rolls back at `failureLimit` failures in a row, or when
    /// a verdict the rollout required turned against its pool. A paused rollout stops here.
    fn judge_step(&mut self, step: usize, started: Timestamp, label: &str, clearance: &Clearance) -> Option<Next> {
        if let Some(run) = self.input.analysis.filter(|r| !self.analysis_used && r.of == Due::Step(step as i32))
            && self.record_analysis(run, step, started)
        {
            if let Some(why) = &run.analysis.at_once {
                return Some(self.fail(messages::failed_at_once(label, why)));
            }
            self.soak_weather(step, started, label);
            let a = self.status.analysis.as_ref().expect("just recorded");
            let limit = self.input.spec.rollout.analysis.failure_limit;
            if a.consecutive_failures >= limit {
                let reason = messages::failed_in_a_row(label, a.consecutive_failures, &a.gates);
                return Some(self.fail(reason));
            }
        }
        // Staging failed the pool since this rollout started on its verdict.
        if let Clearance::Refuse(why) = clearance {
            return Some(self.fail(messages::verdict_no_longer_holds(why)));
        }
        if self.status.phase == Phase::Paused {
            self.status.message = Some(messages::paused(label));
            return Some(Next::Done);
        }
        None
    }

    /// Advances to the next step, or to the promotion after the last, when the step has soaked
    /// and its latest analysis passed; otherwise holds, and rolls back once the hold outlasts
    /// `progressDeadline` (the hold zone).
    fn advance(&mut self, target: &TargetView, at: Soaking, clearance: &Clearance) -> Next {
        let Soaking { step, started, available, canary, label } = at;
        let now = self.now();
        let pause = step_pause(self.input.spec, step);
        let soaked = self.soaked();
        let latest = self.status.analysis.as_ref().filter(|a| a.step == step as i32 && a.at.0 >= started);
        let passed = latest.is_some_and(|a| a.verdict == Verdict::Pass);
        if soaked >= pause && passed {
            if let Some(f) = self.hold_for_freeze() {
                // Held without a deadline: the freeze is the calendar's, not this canary's.
                self.status.message = Some(messages::held_by_freeze(&label, &f));
                if let Some(s) = self.status.soak.as_mut() {
                    s.held_until = Some(Time(now));
                }
                return Next::Done;
            }
            let gate = if step + 1 >= self.steps() { GateAt::Promotion } else { GateAt::Step(step + 1) };
            if let Some(closed) = self.gate_closed(gate, &self.canary_hash()) {
                // Held without a deadline: people answer on their own time.
                self.status.message =
                    Some(messages::held_for_approval(&label, &gate.name(), &closed.waiting, closed.refused.as_ref()));
                if let Some(s) = self.status.soak.as_mut() {
                    s.held_until = Some(Time(now));
                }
                return Next::Done;
            }
            if let Clearance::Wait { message, .. } = clearance {
                // Never a step without the verdicts (they cannot be read now): hold, without a
                // deadline, since another cluster's outage says nothing about this canary.
                self.status.message = Some(messages::holding_for_verdicts(&label, message));
                if let Some(s) = self.status.soak.as_mut() {
                    s.held_until = Some(Time(now));
                }
                return Next::Done;
            }
            return self.next_step(target, step);
        }
        let verdict = messages::last_analysis(latest.map(|a| (a.verdict, a.decided_by.as_deref())));
        self.status.message =
            Some(messages::soaking(&label, available, canary, soaked, &self.pause_label(step), &verdict));
        if soaked < pause {
            return Next::Done;
        }
        // The hold zone: the soak is over but no analysis passes. Its deadline counts from the
        // instant the soak completed; time held for the verdicts above is not this canary's to
        // answer for.
        let held = self.status.soak.as_ref().and_then(|s| s.held_until.as_ref()).map(|t| t.0);
        let completed_at = (now - (soaked - pause)).max(held.unwrap_or(Timestamp::MIN));
        if self.held_for(completed_at) > self.deadline() {
            let reason = messages::no_passing_analysis(self.deadline_label(), &label, &verdict);
            return self.fail(reason);
        }
        Next::Done
    }

    /// The step passed: on to the next one (its canary scale-up, or its soak, in this same
    /// decision), or to the promotion after the last.
    fn next_step(&mut self, target: &TargetView, step: usize) -> Next {
        self.status.progressed_at = Some(Time(self.now()));
        if step + 1 >= self.steps() {
            let msg = messages::every_step_passed(&self.input.desired.hash);
            self.enter(Phase::Promoting, Reason::Promoting, msg);
            return Next::Promote;
        }
        let next = step + 1;
        let w = self.weight_of(next);
        let s = self.record_split(target, w);
        self.status.step = Some(next as i32);
        self.status.step_started_at = None;
        self.status.soak = None;
        let label = messages::step_label(next, self.steps(), w);
        let msg = messages::step_advanced(&label, &self.canary_hash(), s.canary);
        self.event(Reason::StepAdvanced, msg);
        Next::Progress
    }

    /// Fewer canary pods are available than the step asks for. Before the soak began, wait for
    /// them; during the soak, stop its clock. Only a shortfall that lasts `progressDeadline`
    /// without a break rolls back.
    fn canary_short(&mut self, step_label: &str, available: i32, wanted: i32) -> Next {
        let now = self.now();
        let pause = self.pause_label(self.step());
        let Some(soak) = self.status.soak.clone() else {
            self.status.step_started_at = None;
            self.status.message = Some(messages::waiting_for_canary_pods(step_label, available, wanted));
            let since = self.status.progressed_at.as_ref().map_or(now, |t| t.0);
            if self.status.phase == Phase::Progressing && self.held_for(since) > self.deadline() {
                let reason = messages::canary_never_available(step_label, self.deadline_label());
                return self.fail(reason);
            }
            return Next::Done;
        };
        let (soaked, since) = match (soak.running_since.clone(), soak.unavailable_since.clone()) {
            (Some(run), _) => {
                let soaked = soak.soaked_seconds + now.duration_since(run.0).as_secs().max(0);
                self.status.soak = Some(SoakStatus {
                    soaked_seconds: soaked,
                    running_since: None,
                    unavailable_since: Some(Time(now)),
                    ..soak
                });
                let msg =
                    messages::soak_pauses(step_label, available, wanted, SignedDuration::from_secs(soaked), &pause);
                self.event(Reason::SoakPaused, msg);
                (soaked, now)
            }
            (None, Some(t)) => (soak.soaked_seconds, t.0),
            // Stopped for the weather (or by a status from before this clock): the missing pods'
            // deadline starts now, so a canary that dies during an outage still rolls back.
            (None, None) => {
                self.status.soak = Some(SoakStatus { unavailable_since: Some(Time(now)), ..soak.clone() });
                (soak.soaked_seconds, now)
            }
        };
        let down = self.held_for(since);
        let paused_at = SignedDuration::from_secs(soaked);
        let away = now.duration_since(since);
        self.status.message = Some(messages::soak_paused(step_label, available, wanted, away, paused_at, &pause));
        if self.status.phase == Phase::Progressing && down > self.deadline() {
            let reason = messages::canary_unavailable_too_long(step_label, down, self.deadline_label());
            return self.fail(reason);
        }
        Next::Done
    }
}
