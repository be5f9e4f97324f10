//! Without a rollout in flight: start one when the target runs another configuration than the
//! spec asks for and nothing stands in the way; otherwise rest, or say what the policy waits for.

use super::*;

impl Machine<'_> {
    /// Starts a rollout when the target runs another configuration than the spec asks for and
    /// nothing stands in the way (a failed configuration not retried, an override, a required
    /// verdict, the budget); otherwise says what the policy waits for.
    pub(super) fn maybe_start(&mut self, target: &TargetView) -> Next {
        let desired = self.input.desired;
        let generation = self.input.generation;
        self.clear_rollout();
        let up_to_date = desired.hash == target.config_hash && target.unusable.is_none();
        let not_retried =
            self.status.failed.as_ref().is_some_and(|f| f.hash == desired.hash && f.generation >= generation);
        let overridden_here = self.status.overridden.clone().filter(|o| o.generation == generation);
        let waiting_on_override = self.status.phase == Phase::Overridden && overridden_here.is_some();
        let may_start = !up_to_date && target.unusable.is_none() && !not_retried && !waiting_on_override;
        let gate = if may_start { self.clearance() } else { Clearance::Clear(Vec::new()) };
        // An undo within the rollback window is a rollback: no freeze holds it.
        let undo = self.fast_undo(target).is_some();
        let starting = may_start
            && matches!(gate, Clearance::Clear(_))
            && self.budget.ok
            && !self.taken_back_again(target)
            && (self.frozen.is_none() || undo)
            && self.start_approved();
        if !starting && !self.remove_leftover_canary(target) {
            return Next::Done;
        }
        if let Some(why) = &target.unusable {
            return self.end_in(Phase::Invalid, Reason::InvalidTarget, why.to_string());
        }
        if up_to_date {
            return self.up_to_date(target);
        }
        if not_retried && let Some(f) = &self.status.failed {
            self.status.phase = Phase::RolledBack;
            self.status.message = Some(messages::rolled_back(f));
            return Next::Done;
        }
        if waiting_on_override {
            self.status.message = Some(messages::overridden(self.status.overridden.as_ref().expect("checked")));
            return Next::Done;
        }
        if !undo && let Some(waiting) = self.waits_for_freeze() {
            return waiting;
        }
        match gate {
            Clearance::Wait { message, short, unreadable } => {
                self.status.waiting_for = Some(short);
                let reason = if unreadable { Reason::VerdictUnreadable } else { Reason::WaitingForVerdict };
                return self.end_in(Phase::Waiting, reason, message);
            }
            Clearance::Refuse(why) => {
                return self.end_in(Phase::Blocked, Reason::VerdictRefused, messages::verdict_refused(&why));
            }
            Clearance::Clear(met) => self.verdicts_met = met,
        }
        if !self.budget.ok {
            return self.end_in(Phase::Blocked, Reason::BudgetExceeded, messages::over_budget(&self.budget));
        }
        if let Some(waiting) = self.waits_at_start_gate() {
            return waiting;
        }
        if self.taken_back(target) {
            // We promoted exactly this configuration and another writer put something else back.
            let since = self.status.history.iter().find(|h| h.outcome == Outcome::Succeeded).map(|h| h.finished_at.0);
            let (writers, fields) = env_writers(target, since);
            let prev = overridden_here.as_ref().map_or(0, |o| o.rerollouts);
            let record = OverrideStatus { generation, rerollouts: prev, by: writers.clone(), fields };
            if prev >= 1 {
                self.status.overridden = Some(record);
                let msg = messages::overridden(self.status.overridden.as_ref().expect("just set"));
                return self.end_in(Phase::Overridden, Reason::EnvOverridden, msg);
            }
            self.status.overridden = Some(OverrideStatus { rerollouts: 1, ..record });
            let fields = self.status.overridden.as_ref().map_or(&[][..], |o| &o.fields);
            let msg = messages::rolling_out_again(&writers, fields, &desired.hash);
            self.event(Reason::EnvOverridden, msg);
        }
        self.start(target)
    }

    /// A canary outside a rollout is left over (its status was lost): restore the target's
    /// capacity first (unless an HPA or another writer sizes it), then remove it. False while
    /// restoring.
    pub(super) fn remove_leftover_canary(&mut self, target: &TargetView) -> bool {
        if self.canary().is_none_or(|c| c.foreign_owner.is_some()) {
            return true;
        }
        // Without a status, the fleet is the plan's, or the tier's if it names one.
        let desired = self.input.desired;
        let total = desired.plan.pool.replicas.max(desired.tier_replicas.unwrap_or(0));
        // Replicas another writer set last are theirs: the restore is a guess, theirs is not.
        if target.hpa.is_none() && target.replicas_writer.is_none() && target.spec_replicas < total {
            self.actions.push(Action::ScaleTarget { replicas: total });
            self.status.message = Some(messages::restoring_before_leftover(total));
            return false;
        }
        if !stable_serves(target, target.spec_replicas) {
            self.status.message = Some(messages::waiting_before_leftover(target.available, target.spec_replicas));
            return false;
        }
        self.actions.push(Action::DeleteCanary);
        true
    }

    /// The target runs the desired configuration: apply the tier's replicas once per spec
    /// generation (never against an HPA), and rest.
    pub(super) fn up_to_date(&mut self, target: &TargetView) -> Next {
        let desired = self.input.desired;
        let generation = self.input.generation;
        self.status.stable = Some(stable_ref(&desired.hash, Some(&desired.plan.pool), target));
        self.status.replicas = Some(replica_status(target.spec_replicas, target.spec_replicas, 0));
        // What the policy found running is a configuration to come back to, too.
        if !self.status.succeeded.iter().any(|s| s.hash == desired.hash) {
            let pool = self.desired_worker_pool();
            self.remember_succeeded(&desired.hash, &desired.plan.pool, pool);
        }
        if self.status.phase != Phase::Succeeded {
            self.enter(Phase::Idle, Reason::UpToDate, messages::up_to_date(&desired.hash));
        }
        let tier_replicas = self.input.desired.tier_replicas;
        // The tier's replicas are a change too: they wait for the freeze to end.
        let frozen = self.status.replicas_applied_generation != Some(generation)
            && tier_replicas.is_some_and(|r| target.hpa.is_none() && target.spec_replicas != r)
            && self.hold_for_freeze().is_some();
        if self.status.replicas_applied_generation != Some(generation) && self.budget.ok && !frozen {
            if let Some(r) = tier_replicas
                && target.hpa.is_none()
                && target.spec_replicas != r
            {
                self.actions.push(Action::ScaleTarget { replicas: r });
                self.status.replicas = Some(replica_status(r, r, 0));
                self.event(Reason::Scaled, messages::tier_replicas_applied(r, generation));
            }
            self.status.replicas_applied_generation = Some(generation);
        }
        Next::Done
    }

    /// A freeze window holds the start: Waiting, said by the freeze's own Event, once.
    fn waits_for_freeze(&mut self) -> Option<Next> {
        let f = self.hold_for_freeze()?;
        self.status.phase = Phase::Waiting;
        self.status.message = Some(messages::frozen(&f));
        Some(Next::Done)
    }

    /// The start gate waits for approvals: Waiting, or Blocked when a pre-rollout check said no
    /// (said by the approval's own Events).
    fn waits_at_start_gate(&mut self) -> Option<Next> {
        let hash = self.input.desired.hash.clone();
        let closed = self.gate_closed(GateAt::Start, &hash)?;
        let (phase, msg) = match &closed.refused {
            Some(why) => (Phase::Blocked, messages::start_refused(&hash, why)),
            None => (Phase::Waiting, messages::start_awaits_approval(&hash, &closed.waiting, None)),
        };
        self.status.phase = phase;
        self.status.message = Some(msg);
        Some(Next::Done)
    }

    /// The configuration asked for is one of the last `rollbackWindow.revisions` that succeeded
    /// here (other than the one the target runs): an undo, which goes straight to the promotion.
    pub(super) fn fast_undo(&self, target: &TargetView) -> Option<&SucceededConfig> {
        let revisions = self.input.spec.rollout.rollback_window.as_ref()?.revisions.max(0) as usize;
        let recent = self.status.succeeded.iter().filter(|s| s.hash != target.config_hash).take(revisions);
        recent.into_iter().find(|s| s.hash == self.input.desired.hash)
    }

    /// Remembers a configuration that succeeded, with the values that make it (newest first).
    pub(super) fn remember_succeeded(&mut self, hash: &str, plan: &PoolPlan, pool: WorkerPool) {
        self.status.succeeded.retain(|s| s.hash != hash);
        let at = Time(self.now());
        let entry = SucceededConfig { hash: hash.into(), tier: plan.tier.clone(), workers: plan.workers, pool, at };
        self.status.succeeded.insert(0, entry);
        self.status.succeeded.truncate(SUCCEEDED_LIMIT);
    }

    /// We promoted the desired configuration, and the target carries another one now.
    pub(super) fn taken_back(&self, target: &TargetView) -> bool {
        self.status.stable.as_ref().is_some_and(|s| s.hash == self.input.desired.hash)
            && target.config_hash != self.input.desired.hash
    }

    /// Taken back again after this generation's one automatic re-rollout.
    pub(super) fn taken_back_again(&self, target: &TargetView) -> bool {
        self.taken_back(target)
            && self
                .status
                .overridden
                .as_ref()
                .is_some_and(|o| o.generation == self.input.generation && o.rerollouts >= 1)
    }

    pub(super) fn start(&mut self, target: &TargetView) -> Next {
        let desired = self.input.desired;
        let now = Time(self.now());
        let old_hash = target.config_hash.clone();
        let worker_pool = self.desired_worker_pool();
        let s = &mut self.status;
        s.failed = None;
        s.stable =
            Some(ConfigRef { hash: old_hash, plan: s.stable.as_ref().and_then(|c| c.plan.clone()), worker_pool: None });
        s.canary = Some(ConfigRef {
            hash: desired.hash.clone(),
            plan: Some(desired.plan.pool.clone()),
            worker_pool: Some(worker_pool),
        });
        s.target_template_hash = Some(target.template_hash.clone());
        s.target_uid = Some(target.uid.clone());
        s.scaled_to = Some(target.spec_replicas);
        s.started_at = Some(now.clone());
        s.progressed_at = Some(now);
        s.analysis = None;
        let handed_over = self.handed_over.take();
        let s = &mut self.status;
        s.scaling = Some(match (&target.hpa, handed_over) {
            (Some(h), _) => ScalingStatus { mode: ScalingMode::Beside, by: Some(messages::hpa(&h.name)) },
            (None, Some(kept)) => kept,
            (None, None) => ScalingStatus { mode: ScalingMode::Split, by: None },
        });
        // A split rollout applies the tier's replicas as part of the rollout (once per generation);
        // beside an HPA there is nothing to apply. Either way this generation has had its say.
        let total = match self.mode() {
            ScalingMode::Split => rollout_total(desired.tier_replicas, target, &self.status, self.input.generation),
            ScalingMode::Beside => target.spec_replicas,
        };
        self.status.replicas_applied_generation = Some(self.input.generation);
        let p = &desired.plan.pool;
        if let Some(back) = self.fast_undo(target).cloned() {
            // Straight to the promotion: the configuration succeeded here before.
            self.status.replicas = Some(replica_status(total, total, 0));
            let msg = messages::fast_undo(&back.hash, back.at.0, &desired.plan.pool);
            self.event(Reason::RolloutStarted, msg.clone());
            self.status.phase = Phase::Promoting;
            self.status.message = Some(msg);
            return Next::Promote;
        }
        if total == 0 {
            // No pods, no risk to measure: write the configuration straight away.
            self.status.replicas = Some(replica_status(0, 0, 0));
            let msg = messages::promoting_without_replicas(&desired.hash);
            self.enter(Phase::Promoting, Reason::Promoting, msg);
            return Next::Promote;
        }
        self.status.step = Some(0);
        self.status.replicas = Some(replica_status(total, total, 0));
        let weight = self.weight_of(0);
        let s = self.record_split(target, weight);
        let beside = match &self.status.scaling {
            Some(ScalingStatus { mode: ScalingMode::Beside, by }) => Some(by.as_deref().unwrap_or("another actor")),
            _ => None,
        };
        let sized = messages::sized(beside, total, s.canary, s.stable);
        let msg = messages::rollout_started(&desired.hash, p, &sized, self.steps(), weight, &self.verdicts_met);
        self.enter(Phase::Progressing, Reason::RolloutStarted, msg);
        // Go straight on, so that deciding again on this status gives the same status.
        Next::Progress
    }
}
