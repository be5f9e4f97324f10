//! `decide`: one step of the rollout state machine.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::conditions::set_conditions;
use super::{Action, CanaryView, Decision, Due, EventType, Input, ManualAction, TargetView, durations, step_pause};
use crate::analysis::Verdict;
use crate::api::{
    AnalysisStatus, ConfigRef, FailedConfig, HISTORY_LIMIT, HistoryEntry, Outcome, OverrideStatus, Phase, PoolSeen,
    RedisConnections, RedisPoolPolicyStatus, ReplicaStatus, RollbackKind, RollbackStatus, ScalingMode, ScalingStatus,
    SoakStatus,
};
use crate::promotion::{self, Gate, RolloutVerdict, VerdictResult, WorkerPool};
use crate::shared_budget::{self, Shared};
use crate::sizing::{Budget, Split, actual_weight, beside, split};

/// Decides the next status and the actions that lead to it.
pub fn decide(input: &Input) -> Decision {
    let mut m = Machine {
        input,
        status: input.status.clone(),
        actions: Vec::new(),
        consumed: false,
        released: false,
        analysis_used: false,
        budget: effective_budget(input),
        handed_over: None,
        verdicts_met: Vec::new(),
    };
    m.status.observed_generation = Some(input.generation);
    m.status.environment = Some(input.desired.environment.clone());
    m.run();
    // A decision that went through two phases may ask for the same write twice: once is enough.
    let mut seen: Vec<Action> = Vec::new();
    m.actions.retain(|a| {
        let repeat = !matches!(a, Action::Event { .. }) && seen.contains(a);
        seen.push(a.clone());
        !repeat
    });
    // Remember the replicas this rollout wrote last, to tell another writer's value from ours.
    let wrote = m.actions.iter().rev().find_map(|a| match a {
        Action::ScaleTarget { replicas } | Action::PromoteTarget { replicas: Some(replicas) } => Some(*replicas),
        _ => None,
    });
    if let Some(r) = wrote.filter(|_| m.status.started_at.is_some()) {
        m.status.scaled_to = Some(r);
    }
    m.status.progress = m.status.step.map(|_| format!("{}/{}", m.step() + 1, m.steps()));
    if m.status.phase != Phase::Waiting {
        m.status.waiting_for = None;
    }
    // What other policies on this Redis count for this one: its steady use, and its peak while
    // a rollout is in flight.
    m.status.advice = advice_for(input, m.status.pool_seen.as_ref());
    // A policy in Conflict or Invalid accounts for nothing: the pods it sees are not its own.
    let accounts = !matches!(m.status.phase, Phase::Conflict | Phase::Invalid);
    m.status.redis_connections = input.spec.redis.as_ref().filter(|_| accounts).map(|_| RedisConnections {
        steady: own_steady(input),
        peak: m.status.phase.is_active().then_some(input.desired.plan.budget.peak_connections),
    });
    set_conditions(&mut m.status, input, &m.budget);
    Decision { status: m.status, actions: m.actions, action_consumed: m.consumed, released: m.released }
}

/// The plan's budget, checked against the `maxclients` the server reports now (unless the spec
/// gives one). A server that cannot be asked blocks a rollout from starting (never on faith), but
/// does not stop one in flight: the gates see the outage instead.
pub fn effective_budget(input: &Input) -> Budget {
    let b = &input.desired.plan.budget;
    let pinned = input.spec.redis.as_ref().is_some_and(|r| r.max_clients.is_some());
    let own = match &input.observed.redis {
        Some(Ok(signals)) if !pinned => Budget::check(b.peak_connections, signals.max_clients, b.utilization),
        Some(Err(e)) if !pinned && !input.status.phase.is_active() => return b.clone().unknown(e.to_string()),
        _ => b.clone(),
    };
    // A rollout in flight keeps the budget it started on: its own canary pods are among the
    // server's connected clients by now, and counting them again on top of its peak would
    // abort a healthy rollout.
    if input.status.phase.is_active() {
        return own;
    }
    // The server is shared: its budget holds this peak and what the others need at the same time.
    let shared = Shared {
        peers: input.observed.peers.clone(),
        connected_clients: input.observed.redis.as_ref().and_then(|r| r.as_ref().ok()).map(|s| s.connected_clients),
    };
    let demand = shared_budget::demand(own.peak_connections, own_steady(input), &shared);
    own.shared(demand)
}

/// Advice for the configuration the policy asks for, from what the analyses saw of it.
fn advice_for(input: &Input, seen: Option<&PoolSeen>) -> Option<crate::advice::Advice> {
    let seen = seen.filter(|s| s.hash == input.desired.hash)?;
    let pool = &input.desired.plan.pool;
    let gates = crate::analysis::for_tier(input.spec, &pool.tier);
    // What the analyses covered, from the first to the last: stable while nothing is measured.
    let covered = seen.since.as_ref().zip(seen.last.as_ref()).map(|(a, b)| b.0.duration_since(a.0));
    let over = match covered {
        Some(d) if d >= SignedDuration::from_mins(1) => human(d),
        _ => format!("{} analyses", seen.analyses),
    };
    let numbers = crate::advice::Seen {
        peak_utilization: seen.peak_utilization,
        exhaustion_events: seen.exhaustion_events,
        over,
    };
    crate::advice::advise(
        &pool.tier,
        pool.workers,
        pool.connections_per_worker,
        pool.replicas,
        gates.pool_utilization.promote_at_most,
        &numbers,
    )
}

/// What the target's pods hold now: their configured connections per pod (the new value when
/// unknown) times the replicas that run.
fn own_steady(input: &Input) -> i64 {
    match &input.observed.target {
        Ok(t) => {
            let per_pod = t.connections_per_pod.unwrap_or(input.desired.plan.pool.connections_per_pod);
            per_pod * i64::from(t.spec_replicas.max(0))
        }
        Err(_) => 0,
    }
}

struct Machine<'a> {
    input: &'a Input<'a>,
    status: RedisPoolPolicyStatus,
    actions: Vec<Action>,
    consumed: bool,
    released: bool,
    /// The input's analysis was recorded; a later step in the same decision must not reuse it.
    analysis_used: bool,
    budget: Budget,
    /// A restarting rollout whose replicas were handed over keeps them handed over.
    handed_over: Option<ScalingStatus>,
    /// The required verdicts a starting rollout met, for its message.
    verdicts_met: Vec<String>,
}

impl Machine<'_> {
    fn run(&mut self) {
        if self.input.deleting {
            return self.release();
        }
        if self.input.spec.suspend {
            // Frozen: no writes, and a pending manual action waits for resume.
            self.status.message = Some("suspended: spec.suspend is true; nothing is changed until it is false".into());
            return;
        }
        if let Err(holder) = &self.input.observed.holder {
            return self.conflict(holder.clone());
        }
        let target = match &self.input.observed.target {
            Ok(t) => t.clone(),
            Err(why) => return self.invalid(why.clone()),
        };
        if let Some(owner) = self.canary().and_then(|c| c.foreign_owner.clone()) {
            let msg = format!(
                "Deployment {} exists but belongs to {owner}, not to this policy; it is never touched: rename or delete it",
                crate::api::canary_name(&self.input.spec.target_ref.name)
            );
            return self.conflict(msg);
        }
        if let Some(action) = self.input.action {
            self.consumed = true;
            self.manual(action);
        }
        match self.status.phase {
            Phase::Idle
            | Phase::Succeeded
            | Phase::RolledBack
            | Phase::Blocked
            | Phase::Waiting
            | Phase::Invalid
            | Phase::Conflict
            | Phase::Overridden => {
                self.maybe_start(&target);
                if !self.status.phase.is_active() {
                    self.watch(&target);
                }
            }
            Phase::Progressing | Phase::Paused => self.progress(&target),
            Phase::Promoting | Phase::Degraded => self.promote(&target),
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

    /// Our canary, if there is one (a foreign one never reaches the phases).
    fn canary(&self) -> Option<&CanaryView> {
        self.input.observed.canary.as_ref()
    }

    fn delete_canary_if_any(&mut self) {
        if self.canary().is_some_and(|c| c.foreign_owner.is_none()) {
            self.actions.push(Action::DeleteCanary);
        }
    }

    /// Time a condition has held since `since`, not counting time before this operator woke.
    fn held_for(&self, since: Timestamp) -> SignedDuration {
        self.now().duration_since(since.max(self.input.awake_since))
    }

    fn deadline(&self) -> SignedDuration {
        durations(self.input.spec).progress_deadline
    }

    fn deadline_label(&self) -> &str {
        &self.input.spec.rollout.analysis.progress_deadline
    }

    fn mode(&self) -> ScalingMode {
        self.status.scaling.as_ref().map_or(ScalingMode::Split, |s| s.mode)
    }

    /// The fleet a split rollout keeps (its size when it began).
    fn total(&self, target: &TargetView) -> i32 {
        self.status.replicas.as_ref().map_or(target.spec_replicas, |r| r.total)
    }

    /// The canary and stable replicas of `weight` now.
    fn split_for(&self, target: &TargetView, weight: i32) -> Split {
        match self.mode() {
            ScalingMode::Split => split(self.total(target), weight),
            ScalingMode::Beside => beside(target.spec_replicas, weight),
        }
    }

    fn record_split(&mut self, target: &TargetView, weight: i32) -> Split {
        let s = self.split_for(target, weight);
        self.status.weight = Some(weight);
        let total = match self.mode() {
            ScalingMode::Split => self.total(target),
            ScalingMode::Beside => s.stable + s.canary,
        };
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
        s.soak = None;
        s.started_at = None;
        s.progressed_at = None;
        s.promoted_at = None;
        s.scaling = None;
        s.target_template_hash = None;
        s.target_uid = None;
        s.scaled_to = None;
        s.rollback = None;
    }

    /// The worker pool the spec asks for: what a verdict must prove, and what this rollout will.
    fn desired_worker_pool(&self) -> WorkerPool {
        WorkerPool::new(&self.input.spec.pool, self.input.desired.plan.pool.connections_per_worker)
    }

    /// What `spec.promotion.requires` says of the worker pool the spec asks for.
    fn verdicts_gate(&self) -> Gate {
        if self.input.spec.promotion.requires.is_empty() {
            return Gate::Clear(Vec::new());
        }
        match &self.input.observed.required {
            Some(required) => promotion::check(&self.desired_worker_pool(), required),
            // The shell reads them whenever a rollout may start or is in flight: never on faith.
            None => Gate::Wait {
                message: "waiting: the verdicts spec.promotion.requires names were not read".into(),
                short: "not read".into(),
                unreadable: true,
            },
        }
    }

    /// Records how the rollout of the canary's configuration ended (before the rollout is cleared).
    fn remember_verdict(&mut self, hash: String, result: VerdictResult, reason: Option<String>) {
        let canary = self.status.canary.as_ref();
        let plan = canary.and_then(|c| c.plan.clone()).unwrap_or_else(|| self.input.desired.plan.pool.clone());
        // The pool the canary ran, even if the spec changed since.
        let pool = canary
            .and_then(|c| c.worker_pool.clone())
            .unwrap_or_else(|| WorkerPool::new(&self.input.spec.pool, plan.connections_per_worker));
        let now = Time(self.now());
        let verdict = RolloutVerdict {
            hash,
            pool_hash: pool.hash(),
            pool,
            environment: if plan.tier.is_empty() { self.input.desired.environment.clone() } else { plan.tier },
            result,
            finished_at: now.clone(),
            soaked_seconds: 0,
            clean_at: (result == VerdictResult::Succeeded).then_some(now),
            analyses: 0,
            reason,
            watch_ended: None,
        };
        promotion::remember(&mut self.status.verdicts, verdict);
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
            RollbackKind::Release => (EventType::Normal, "Releasing"),
            RollbackKind::Restart => (EventType::Normal, "RolloutRestarting"),
            RollbackKind::Failed | RollbackKind::Aborted => (EventType::Warning, "RollingBack"),
        };
        self.status.rollback = Some(RollbackStatus { kind, reason: reason.clone() });
        self.enter(Phase::RollingBack, event_type, event_reason, format!("rolling back: {reason}"));
    }

    fn fail(&mut self, target: &TargetView, reason: String) {
        self.start_rollback(RollbackKind::Failed, reason);
        self.roll_back(target);
    }

    fn restart(&mut self, target: &TargetView, reason: String) {
        self.start_rollback(RollbackKind::Restart, reason);
        self.roll_back(target);
    }

    // ---- phases --------------------------------------------------------------------------

    /// Another policy holds the target (or owns the canary): touch nothing, say who. A rollout
    /// of ours in flight is undone first (the stable restored, our canary removed).
    fn conflict(&mut self, why: String) {
        if let Ok(target) = self.input.observed.target.clone()
            && self.status.phase.is_active()
        {
            if self.status.rollback.as_ref().is_none_or(|r| r.kind != RollbackKind::Release) {
                self.start_rollback(RollbackKind::Release, why.clone());
            }
            self.roll_back(&target);
            if !self.status.phase.is_active() {
                // A promotion that was writing the target completed instead.
                self.enter(Phase::Conflict, EventType::Warning, "Conflict", why);
            }
            return;
        }
        match self.input.observed.target.clone() {
            Ok(target) if !self.remove_leftover_canary(&target) => return,
            Ok(_) => {}
            Err(_) => self.delete_canary_if_any(),
        }
        if self.status.phase.is_active() {
            self.clear_rollout();
        }
        if self.input.action.is_some() {
            self.consumed = true;
            self.event(EventType::Warning, "ManualActionIgnored", format!("action ignored: {why}"));
        }
        self.enter(Phase::Conflict, EventType::Warning, "Conflict", why);
    }

    /// The target Deployment is missing, or the spec cannot be planned.
    fn invalid(&mut self, why: String) {
        // Nothing is left to give capacity back to; a canary of it serves no purpose.
        self.delete_canary_if_any();
        if self.status.phase.is_active() {
            self.clear_rollout();
        }
        if self.input.action.is_some() {
            // Answered, not left waiting: a person (or the plugin) is told why nothing happens.
            self.consumed = true;
            self.event(EventType::Warning, "ManualActionIgnored", format!("action ignored: {why}"));
        }
        self.enter(Phase::Invalid, EventType::Warning, "InvalidTarget", why);
    }

    /// The policy is being deleted: finish a promotion that is writing the target, undo any
    /// other rollout (the stable first), then let the finalizer go.
    fn release(&mut self) {
        let target = match &self.input.observed.target {
            Ok(t) => t.clone(),
            Err(_) => {
                self.delete_canary_if_any();
                self.released = true;
                return;
            }
        };
        match self.status.phase {
            Phase::Promoting | Phase::Degraded => {
                self.promote(&target);
                self.released = self.status.phase == Phase::Succeeded;
            }
            Phase::Progressing | Phase::Paused => {
                self.start_rollback(RollbackKind::Release, "the policy is being deleted".into());
                self.roll_back(&target);
            }
            Phase::RollingBack => {
                // Whatever the rollback was for, it now ends in giving the target back.
                if let Some(r) = &mut self.status.rollback {
                    r.kind = RollbackKind::Release;
                }
                self.roll_back(&target)
            }
            // A canary left over without a rollout (a lost status): the stable first.
            _ => self.released = self.remove_leftover_canary(&target),
        }
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
            Abort if matches!(phase, Phase::Promoting | Phase::Degraded) => self.event(
                EventType::Warning,
                "ManualActionIgnored",
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
                self.event(
                    EventType::Normal,
                    "Retry",
                    "retry asked by a person: the configuration may roll out again".into(),
                );
            }
            Retry => self.event(
                EventType::Warning,
                "ManualActionIgnored",
                "retry ignored: no rolled-back or overridden configuration to retry".into(),
            ),
            other => self.event(EventType::Warning, "ManualActionIgnored", refused(other.name())),
        }
    }

    fn maybe_start(&mut self, target: &TargetView) {
        let desired = self.input.desired;
        let generation = self.input.generation;
        self.clear_rollout();
        let up_to_date = desired.hash == target.config_hash && target.unusable.is_none();
        let not_retried =
            self.status.failed.as_ref().is_some_and(|f| f.hash == desired.hash && f.generation >= generation);
        let overridden_here = self.status.overridden.clone().filter(|o| o.generation == generation);
        let waiting_on_override = self.status.phase == Phase::Overridden && overridden_here.is_some();
        let may_start = !up_to_date && target.unusable.is_none() && !not_retried && !waiting_on_override;
        let gate = if may_start { self.verdicts_gate() } else { Gate::Clear(Vec::new()) };
        let starting = may_start && matches!(gate, Gate::Clear(_)) && self.budget.ok && !self.taken_back_again(target);
        if !starting && !self.remove_leftover_canary(target) {
            return;
        }
        if let Some(why) = &target.unusable {
            return self.enter(Phase::Invalid, EventType::Warning, "InvalidTarget", why.clone());
        }
        if up_to_date {
            return self.up_to_date(target);
        }
        if not_retried && let Some(f) = &self.status.failed {
            self.status.phase = Phase::RolledBack;
            self.status.message = Some(rolled_back_message(f));
            return;
        }
        if waiting_on_override {
            self.status.message = Some(overridden_message(self.status.overridden.as_ref().expect("checked")));
            return;
        }
        match gate {
            Gate::Wait { message, short, unreadable } => {
                self.status.waiting_for = Some(short);
                let (kind, reason) = match unreadable {
                    true => (EventType::Warning, "VerdictUnreadable"),
                    false => (EventType::Normal, "WaitingForVerdict"),
                };
                return self.enter(Phase::Waiting, kind, reason, message);
            }
            Gate::Refuse(why) => {
                let msg = format!(
                    "blocked: {why}; this worker pool starts once a newer verdict on it succeeds there, or change \
                     the pool here"
                );
                return self.enter(Phase::Blocked, EventType::Warning, "VerdictRefused", msg);
            }
            Gate::Clear(met) => self.verdicts_met = met,
        }
        if !self.budget.ok {
            let msg = format!("blocked: {}", self.budget.explain());
            return self.enter(Phase::Blocked, EventType::Warning, "BudgetExceeded", msg);
        }
        if self.taken_back(target) {
            // We promoted exactly this configuration and another writer put something else back.
            let since = self.status.history.iter().find(|h| h.outcome == Outcome::Succeeded).map(|h| h.finished_at.0);
            let (writers, fields) = env_writers(target, since);
            let prev = overridden_here.as_ref().map_or(0, |o| o.rerollouts);
            let record = OverrideStatus { generation, rerollouts: prev, by: writers.clone(), fields };
            if prev >= 1 {
                self.status.overridden = Some(record);
                let msg = overridden_message(self.status.overridden.as_ref().expect("just set"));
                return self.enter(Phase::Overridden, EventType::Warning, "EnvOverridden", msg);
            }
            self.status.overridden = Some(OverrideStatus { rerollouts: 1, ..record });
            let msg = format!(
                "{writers} rewrote the pool env vars{} after the promotion; rolling pool configuration {} out again, \
                 once for this generation (hand these fields to redis-pool-operator in your GitOps tool: see the README)",
                fields_label(self.status.overridden.as_ref().map_or(&[][..], |o| &o.fields)),
                desired.hash
            );
            self.event(EventType::Warning, "EnvOverridden", msg);
        }
        self.start(target);
    }

    /// A canary outside a rollout is left over (its status was lost): restore the target's
    /// capacity first (unless an HPA or another writer sizes it), then remove it. False while
    /// restoring.
    fn remove_leftover_canary(&mut self, target: &TargetView) -> bool {
        if self.canary().is_none_or(|c| c.foreign_owner.is_some()) {
            return true;
        }
        // Without a status, the fleet is the plan's, or the tier's if it names one.
        let desired = self.input.desired;
        let total = desired.plan.pool.replicas.max(desired.tier_replicas.unwrap_or(0));
        // Replicas another writer set last are theirs: the restore is a guess, theirs is not.
        if target.hpa.is_none() && target.replicas_writer.is_none() && target.spec_replicas < total {
            self.actions.push(Action::ScaleTarget { replicas: total });
            self.status.message =
                Some(format!("restoring the target to {total} replicas before removing a leftover canary"));
            return false;
        }
        if !stable_serves(target, target.spec_replicas) {
            self.status.message = Some(format!(
                "waiting for the target, {}/{} available, before removing a leftover canary",
                target.available, target.spec_replicas
            ));
            return false;
        }
        self.actions.push(Action::DeleteCanary);
        true
    }

    /// The target runs the desired configuration: apply the tier's replicas once per spec
    /// generation (never against an HPA), and rest.
    fn up_to_date(&mut self, target: &TargetView) {
        let desired = self.input.desired;
        let generation = self.input.generation;
        self.status.stable = Some(stable_ref(&desired.hash, Some(&desired.plan.pool), target));
        self.status.replicas = Some(replica_status(target.spec_replicas, target.spec_replicas, 0));
        if self.status.phase != Phase::Succeeded {
            self.enter(
                Phase::Idle,
                EventType::Normal,
                "UpToDate",
                format!("the target runs pool configuration {}", desired.hash),
            );
        }
        let tier_replicas = self.input.desired.tier_replicas;
        if self.status.replicas_applied_generation != Some(generation) && self.budget.ok {
            if let Some(r) = tier_replicas
                && target.hpa.is_none()
                && target.spec_replicas != r
            {
                self.actions.push(Action::ScaleTarget { replicas: r });
                self.status.replicas = Some(replica_status(r, r, 0));
                self.event(
                    EventType::Normal,
                    "Scaled",
                    format!("applied the tier's replicas: {r} (once for policy generation {generation})"),
                );
            }
            self.status.replicas_applied_generation = Some(generation);
        }
    }

    /// After a promotion, analyses of the target's pods soak its verdict (in any phase without
    /// a rollout in flight, while the target runs that configuration): consecutive passes add
    /// the time between them (at most two intervals, so that time nobody measured never counts),
    /// anything else stops the clock until the next pass, and `failureLimit` failures in a row
    /// mark the verdict Failed. The operator does not roll back a promoted configuration on its
    /// own: a person decides, and the Event says so. A watch that has not soaked `soak` within
    /// `soak + progressDeadline` ends, and says why, rather than analyse for ever.
    fn watch(&mut self, target: &TargetView) {
        let spec = self.input.spec;
        let Some(v) = super::watched_verdict(spec, &self.status).filter(|v| v.hash == target.config_hash) else {
            return;
        };
        let (hash, finished) = (v.hash.clone(), v.finished_at.0);
        let now = self.now();
        let d = durations(spec);
        let index = self.status.verdicts.iter().position(|x| x.hash == hash).expect("watched_verdict found it");
        if now.duration_since(finished) > d.promotion_soak + d.progress_deadline {
            let v = &mut self.status.verdicts[index];
            let why = format!(
                "its analyses did not pass cleanly for {} within {} of the promotion (they held, had no data, or \
                 were not running); it is not watched any longer",
                spec.promotion.soak,
                human(d.promotion_soak + d.progress_deadline)
            );
            v.watch_ended = Some(why.clone());
            v.clean_at = None;
            let msg =
                format!("pool configuration {hash} soaked {} of {}: {why}", human(v.soaked()), spec.promotion.soak);
            self.event(EventType::Warning, "VerdictWatchEnded", msg);
            return;
        }
        let Some(run) = self.input.analysis.filter(|r| r.of == Due::AfterPromotion && !self.analysis_used) else {
            return;
        };
        let prev = self.status.analysis.clone().filter(|a| a.after_promotion && a.at.0 >= finished);
        if !self.record(prev, run, self.steps() as i32 - 1, true, &hash) {
            return;
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
        let soak = format!("{} of {}", human(v.soaked()), spec.promotion.soak);
        let just_soaked = was_soaked < d.promotion_soak && v.soaked() >= d.promotion_soak;
        if a.verdict == Verdict::Fail && failures >= spec.rollout.analysis.failure_limit {
            let reason = format!(
                "{failures} analyses in a row failed {} after the promotion: {}",
                human(now.duration_since(finished)),
                failing_gates(&a.gates)
            );
            v.result = VerdictResult::Failed;
            v.reason = Some(reason.clone());
            let msg = format!(
                "pool configuration {hash} failed after its promotion ({reason}); the operator does not roll back a \
                 promoted configuration by itself: change the spec to roll out another one"
            );
            self.event(EventType::Warning, "VerdictFailed", msg.clone());
            if matches!(self.status.phase, Phase::Succeeded | Phase::Idle) {
                self.status.message = Some(msg);
            }
        } else if matches!(self.status.phase, Phase::Succeeded | Phase::Idle) {
            self.status.message = Some(format!(
                "the target runs pool configuration {hash}; its verdict has soaked {soak}, last analysis {:?}",
                a.verdict
            ));
        }
        if just_soaked {
            // The news environments that require this verdict wait for.
            let msg = format!(
                "pool configuration {hash} soaked {} after its promotion; it is not watched any longer",
                spec.promotion.soak
            );
            self.event(EventType::Normal, "VerdictSoaked", msg);
        }
    }

    /// We promoted the desired configuration, and the target carries another one now.
    fn taken_back(&self, target: &TargetView) -> bool {
        self.status.stable.as_ref().is_some_and(|s| s.hash == self.input.desired.hash)
            && target.config_hash != self.input.desired.hash
    }

    /// Taken back again after this generation's one automatic re-rollout.
    fn taken_back_again(&self, target: &TargetView) -> bool {
        self.taken_back(target)
            && self
                .status
                .overridden
                .as_ref()
                .is_some_and(|o| o.generation == self.input.generation && o.rerollouts >= 1)
    }

    fn start(&mut self, target: &TargetView) {
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
            (Some(h), _) => {
                ScalingStatus { mode: ScalingMode::Beside, by: Some(format!("HorizontalPodAutoscaler {}", h.name)) }
            }
            (None, Some(kept)) => kept,
            (None, None) => ScalingStatus { mode: ScalingMode::Split, by: None },
        });
        // A split rollout applies the tier's replicas as part of the rollout (once per generation);
        // beside an HPA there is nothing to apply. Either way this generation has had its say.
        let total = match self.mode() {
            ScalingMode::Split => {
                super::rollout_total(desired.tier_replicas, target, &self.status, self.input.generation)
            }
            ScalingMode::Beside => target.spec_replicas,
        };
        self.status.replicas_applied_generation = Some(self.input.generation);
        let p = &desired.plan.pool;
        if total == 0 {
            // No pods, no risk to measure: write the configuration straight away.
            self.status.replicas = Some(replica_status(0, 0, 0));
            let msg = format!("the target has no replicas: writing pool configuration {} directly", desired.hash);
            self.enter(Phase::Promoting, EventType::Normal, "Promoting", msg);
            return self.promote(target);
        }
        self.status.step = Some(0);
        self.status.replicas = Some(replica_status(total, total, 0));
        let weight = self.weight_of(0);
        let s = self.record_split(target, weight);
        let how = match &self.status.scaling {
            Some(ScalingStatus { mode: ScalingMode::Beside, by }) => format!(
                "{} sizes the stable, so {} canary pod(s) run beside its {} replicas",
                by.as_deref().unwrap_or("another actor"),
                s.canary,
                s.stable
            ),
            _ => format!("to {total} replicas"),
        };
        let msg = format!(
            "rolling out pool configuration {} (tier {}: {} workers x {} connections = {} per pod) {how}: step 1/{} at {}%",
            desired.hash,
            p.tier,
            p.workers,
            p.connections_per_worker,
            p.connections_per_pod,
            self.steps(),
            weight
        );
        let msg = match self.verdicts_met.as_slice() {
            [] => msg,
            met => format!("{msg}; {}", met.join("; ")),
        };
        self.enter(Phase::Progressing, EventType::Normal, "RolloutStarted", msg);
        // Go straight on, so that deciding again on this status gives the same status.
        self.progress(target);
    }

    /// The target already carries the canary's configuration: a promotion began and its status
    /// write was lost (a crash). The only consistent end is to finish it.
    fn finish_begun_promotion(&mut self, target: &TargetView) -> bool {
        if target.config_hash != self.canary_hash() || target.unusable.is_some() {
            return false;
        }
        let msg = format!(
            "the target already carries pool configuration {}: completing the promotion that was under way",
            target.config_hash
        );
        self.status.progressed_at = Some(Time(self.now()));
        self.enter(Phase::Promoting, EventType::Normal, "Promoting", msg);
        self.promote(target);
        true
    }

    /// In a split rollout, another field manager wrote the target's replicas after the rollout
    /// began: it is active, so from now on the operator leaves the replicas to it.
    fn hand_over_replicas(&mut self, target: &TargetView) {
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
            (Some(h), _) => format!("HorizontalPodAutoscaler {}", h.name),
            (None, Some(w)) => format!("field manager {}", w.manager),
            (None, None) => return,
        };
        let msg = format!(
            "{by} took over the target's replicas ({}) during the rollout: from now on canary pods run beside the stable and \
             the operator no longer writes the target's replicas",
            target.spec_replicas
        );
        self.status.scaling = Some(ScalingStatus { mode: ScalingMode::Beside, by: Some(by) });
        self.event(EventType::Warning, "ReplicasHandedOver", msg);
    }

    fn progress(&mut self, target: &TargetView) {
        if self.finish_begun_promotion(target) {
            return;
        }
        if let Some(why) = &target.unusable {
            return self.restart(target, format!("the target can no longer be managed: {why}"));
        }
        let desired = self.input.desired;
        if self.canary_hash() != desired.hash {
            let reason = format!("the spec changed to pool configuration {}; restarting the rollout", desired.hash);
            return self.restart(target, reason);
        }
        if self.status.target_uid.as_deref().is_some_and(|u| u != target.uid) {
            let reason =
                "the target Deployment was replaced (a new object of the same name); restarting the rollout on it"
                    .to_string();
            return self.restart(target, reason);
        }
        if self.status.target_template_hash.as_deref().is_some_and(|h| h != target.template_hash) {
            let reason =
                "the target's pod template changed during the rollout; restarting it with the new template".to_string();
            return self.restart(target, reason);
        }
        if !self.budget.ok {
            return self.restart(target, format!("the plan no longer fits: {}", self.budget.explain()));
        }
        self.hand_over_replicas(target);
        let now = self.now();
        let step = self.step();
        let weight = self.weight_of(step);
        let split = self.record_split(target, weight);
        self.status.step = Some(step as i32);
        let step_label = format!("step {}/{} ({}%)", step + 1, self.steps(), weight);

        // 1. The canary runs the desired configuration with this step's replicas. A canary a
        // person edited (its template no longer the one we applied) is put back.
        let canary_ok = self.canary().is_some_and(|c| {
            c.spec_replicas == split.canary && c.config_hash == desired.hash && c.template_hash == target.template_hash
        });
        // What was observed of the canary is stale once this decision has resized it (a step
        // advanced within it): wait for the next look.
        let resized = self.actions.iter().any(|a| matches!(a, Action::ApplyCanary { .. }));
        if !canary_ok {
            self.actions.push(Action::ApplyCanary { replicas: split.canary });
        }
        // Pods of the right configuration and template count, even while the step resizes the
        // canary (an HPA moved the stable): only missing pods pause the soak.
        let available = self
            .canary()
            .filter(|c| !resized && c.config_hash == desired.hash && c.template_hash == target.template_hash)
            .map_or(0, |c| c.available.min(split.canary));
        // During a soak, only pods it had counted on are missing when gone: new pods of a canary
        // that follows an HPA upwards are starting, not lost.
        // (A soak recorded before this count existed reads 0: it counts on the whole step.)
        let counted =
            self.status.soak.as_ref().filter(|s| s.canary > 0).map_or(split.canary, |s| s.canary.min(split.canary));
        if available < counted {
            return self.canary_short(target, &step_label, available, split.canary);
        }
        if let Some(s) = self.status.soak.as_mut()
            && available >= split.canary
        {
            s.canary = split.canary;
        }
        // 2. Only then does the stable give up its replicas (when the operator sizes it).
        if self.mode() == ScalingMode::Split && target.spec_replicas != split.stable {
            self.actions.push(Action::ScaleTarget { replicas: split.stable });
            self.status.message = Some(format!("{step_label}: scaling the stable to {} replicas", split.stable));
            return;
        }
        // 3. The step's soak runs (begins, or resumes after canary pods were missing).
        let started = self.soak_runs(step, &step_label);
        // 4. Record an analysis of this step.
        if let Some(run) = self.input.analysis.filter(|r| !self.analysis_used && r.of == Due::Step(step as i32))
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
                return self.fail(target, reason);
            }
        }
        // A verdict this rollout required turned against its pool (staging failed it since).
        let gate = self.verdicts_gate();
        if let Gate::Refuse(why) = &gate {
            return self.fail(target, format!("a required verdict no longer holds: {why}"));
        }
        if self.status.phase == Phase::Paused {
            self.status.message = Some(format!("{step_label}: paused by a person"));
            return;
        }
        // 5. Advance when the soak is over and the latest analysis of this step passed.
        let pause = step_pause(self.input.spec, step);
        let soaked = self.soaked();
        let latest = self.status.analysis.as_ref().filter(|a| a.step == step as i32 && a.at.0 >= started);
        let passed = latest.is_some_and(|a| a.verdict == Verdict::Pass);
        if soaked >= pause
            && passed
            && let Gate::Wait { message, .. } = &gate
        {
            // Never a step without the verdicts (they cannot be read now): hold, without a
            // deadline, since another cluster's outage says nothing about this canary.
            self.status.message = Some(format!("{step_label}: soaked and passing; holding: {message}"));
            if let Some(s) = self.status.soak.as_mut() {
                s.held_until = Some(Time(now));
            }
            return;
        }
        if soaked >= pause && passed {
            self.status.progressed_at = Some(Time(now));
            if step + 1 < self.steps() {
                let next = step + 1;
                let w = self.weight_of(next);
                let s = self.record_split(target, w);
                self.status.step = Some(next as i32);
                self.status.step_started_at = None;
                self.status.soak = None;
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
        self.status.message = Some(format!(
            "{step_label}: {}/{} canary pods available; soaked {} of {}; {verdict}",
            available,
            split.canary,
            human(soaked),
            self.pause_label(step)
        ));
        // The hold zone: the soak is over but no analysis passes. Its deadline counts from the
        // instant the soak completed.
        if soaked >= pause {
            // Time held for the verdicts above is not this canary's to answer for.
            let held = self.status.soak.as_ref().and_then(|s| s.held_until.as_ref()).map(|t| t.0);
            let completed_at = (now - (soaked - pause)).max(held.unwrap_or(Timestamp::MIN));
            if self.held_for(completed_at) > self.deadline() {
                let reason = format!(
                    "no passing analysis within progressDeadline {} after the pause of {step_label}; {verdict}",
                    self.deadline_label()
                );
                self.fail(target, reason);
            }
        }
    }

    /// Fewer canary pods are available than the step asks for. Before the soak began, wait for
    /// them; during the soak, stop its clock. Only a shortfall that lasts `progressDeadline`
    /// without a break rolls back.
    fn canary_short(&mut self, target: &TargetView, step_label: &str, available: i32, wanted: i32) {
        let now = self.now();
        let pause = self.pause_label(self.step());
        let Some(soak) = self.status.soak.clone() else {
            self.status.step_started_at = None;
            self.status.message =
                Some(format!("{step_label}: waiting for canary pods, {available}/{wanted} available"));
            let since = self.status.progressed_at.as_ref().map_or(now, |t| t.0);
            if self.status.phase == Phase::Progressing && self.held_for(since) > self.deadline() {
                let reason = format!(
                    "{step_label}: canary pods were not available within progressDeadline {}",
                    self.deadline_label()
                );
                self.fail(target, reason);
            }
            return;
        };
        let (soaked, since) = match (soak.running_since, soak.unavailable_since) {
            (Some(run), _) => {
                let soaked = soak.soaked_seconds + now.duration_since(run.0).as_secs().max(0);
                self.status.soak = Some(SoakStatus {
                    soaked_seconds: soaked,
                    running_since: None,
                    unavailable_since: Some(Time(now)),
                    ..soak
                });
                let msg = format!(
                    "{step_label}: canary {available}/{wanted} available; the soak pauses at {} of {pause} until they are back",
                    human(SignedDuration::from_secs(soaked))
                );
                self.event(EventType::Warning, "SoakPaused", msg);
                (soaked, now)
            }
            (None, Some(t)) => (soak.soaked_seconds, t.0),
            (None, None) => (soak.soaked_seconds, now),
        };
        let down = self.held_for(since);
        self.status.message = Some(format!(
            "{step_label}: canary {available}/{wanted} available for {}; soak paused at {} of {pause}",
            human(now.duration_since(since)),
            human(SignedDuration::from_secs(soaked))
        ));
        if self.status.phase == Phase::Progressing && down > self.deadline() {
            let reason = format!(
                "{step_label}: canary pods were unavailable for {} without a break, longer than progressDeadline {}",
                human(down),
                self.deadline_label()
            );
            self.fail(target, reason);
        }
    }

    /// Starts or resumes the soak clock of `step`; returns when the step's soak first began.
    fn soak_runs(&mut self, step: usize, step_label: &str) -> Timestamp {
        let now = self.now();
        match (self.status.step_started_at.clone(), self.status.soak.clone()) {
            (Some(started), Some(soak)) if soak.running_since.is_some() => started.0,
            (Some(started), Some(soak)) => {
                let since = soak.unavailable_since.map_or(now, |t| t.0);
                self.status.soak = Some(SoakStatus { running_since: Some(Time(now)), unavailable_since: None, ..soak });
                let msg = format!(
                    "{step_label}: canary pods are back after {}; the soak resumes at {} of {}",
                    human(now.duration_since(since)),
                    human(SignedDuration::from_secs(self.status.soak.as_ref().map_or(0, |s| s.soaked_seconds))),
                    self.pause_label(step)
                );
                self.event(EventType::Normal, "SoakResumed", msg);
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
                    let msg = format!(
                        "{step_label}: {} canary / {} stable replicas, soaking for {}",
                        s.canary,
                        s.stable,
                        self.pause_label(step)
                    );
                    self.event(EventType::Normal, "StepStarted", msg);
                }
                begun
            }
        }
    }

    /// Soak time of the current step so far.
    fn soaked(&self) -> SignedDuration {
        let Some(s) = &self.status.soak else { return SignedDuration::ZERO };
        let running = s.running_since.as_ref().map_or(SignedDuration::ZERO, |t| self.now().duration_since(t.0));
        SignedDuration::from_secs(s.soaked_seconds) + running.max(SignedDuration::ZERO)
    }

    fn pause_label(&self, step: usize) -> String {
        self.input.spec.rollout.steps.get(step).map_or_else(|| "0s".into(), |s| s.pause.clone())
    }

    /// Keeps the peak pool utilization and exhaustion the analyses saw of configuration `hash`,
    /// and over what time, for advice.
    fn see_pool(&mut self, hash: &str, gates: &[crate::analysis::GateResult]) {
        use crate::api::Gate;
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
    fn record_analysis(&mut self, run: &super::AnalysisRun, step: usize, started: Timestamp) -> bool {
        let prev =
            self.status.analysis.clone().filter(|a| !a.after_promotion && a.step == step as i32 && a.at.0 >= started);
        let hash = self.canary_hash();
        self.record(prev, run, step as i32, false, &hash)
    }

    /// Stores `run` as the latest analysis after `prev` (the one before it of the same
    /// rollout step or watch): failures in a row, provider errors, the pool seen of `hash`, and
    /// an Event for a failing one. False when `prev` is of this very instant.
    fn record(
        &mut self,
        prev: Option<AnalysisStatus>,
        run: &super::AnalysisRun,
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
            // A hold is neither evidence of failure nor of health.
            Verdict::Hold | Verdict::NoData => failures,
        };
        if a.verdict == Verdict::Fail {
            let limit = self.input.spec.rollout.analysis.failure_limit;
            let when = if after_promotion { "after the promotion: " } else { "" };
            let msg = format!("{when}{} ({consecutive_failures}/{limit})", failing_gates(&a.gates));
            self.event(EventType::Warning, "AnalysisFailed", msg);
        }
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
        });
        true
    }

    fn promote(&mut self, target: &TargetView) {
        self.hand_over_replicas(target);
        let desired = self.input.desired;
        let canary_hash = self.canary_hash();
        // The replicas the target ends with: the split fleet, or whatever its HPA sets.
        let (total, replicas) = match self.mode() {
            ScalingMode::Split => (self.total(target), Some(self.total(target))),
            ScalingMode::Beside => (target.spec_replicas, None),
        };
        if target.config_hash != canary_hash {
            if canary_hash != desired.hash {
                // Never write a configuration into the target that no canary has run.
                let reason = format!(
                    "the spec changed to pool configuration {} before promotion; restarting the rollout",
                    desired.hash
                );
                return self.restart(target, reason);
            }
            if self.status.promoted_at.is_some() {
                return self.overridden_while_promoting(target);
            }
            self.status.promoted_at = Some(Time(self.now()));
            self.actions.push(Action::PromoteTarget { replicas });
            self.status.message = Some(format!(
                "promoting: writing pool configuration {canary_hash} into the target{}",
                replicas.map(|r| format!(" with {r} replicas")).unwrap_or_default()
            ));
            return;
        }
        self.status.promoted_at.get_or_insert(Time(self.now()));
        if replicas.is_some_and(|r| r != target.spec_replicas) {
            self.actions.push(Action::PromoteTarget { replicas });
            return;
        }
        if !target.rolled_out || target.available < total {
            let msg = format!("promoting: waiting for the target's rollout, {}/{total} available", target.available);
            let since = self.status.progressed_at.as_ref().map_or(self.now(), |t| t.0);
            if self.status.phase == Phase::Promoting && self.held_for(since) > self.deadline() {
                let msg = format!(
                    "the target has not rolled out pool configuration {canary_hash} within progressDeadline {} \
                     ({}/{total} available); the canary keeps serving until it does: check the target's pods",
                    self.deadline_label(),
                    target.available
                );
                return self.enter(Phase::Degraded, EventType::Warning, "PromotionStalled", msg);
            }
            if self.status.phase == Phase::Promoting {
                self.status.message = Some(msg);
            }
            return;
        }
        self.delete_canary_if_any();
        self.remember_verdict(canary_hash.clone(), VerdictResult::Succeeded, None);
        if total == 0 {
            // No pods ran it and none run it now: nothing to watch, and nothing proven.
            self.status.verdicts[0].watch_ended =
                Some("the target has no replicas: there is nothing to measure".into());
        }
        let plan = self.status.canary.as_ref().and_then(|c| c.plan.clone());
        self.status.stable = Some(stable_ref(&canary_hash, plan.as_ref(), target));
        self.clear_rollout();
        self.status.replicas = Some(replica_status(target.spec_replicas, target.spec_replicas, 0));
        self.push_history(canary_hash.clone(), Outcome::Succeeded, "promoted".into());
        let msg = format!("promoted: the target runs pool configuration {canary_hash} on {total} replicas");
        self.enter(Phase::Succeeded, EventType::Normal, "Promoted", msg);
    }

    /// The promotion wrote the target and someone put another configuration back before it
    /// completed: writing again would fight them for ever. Give the stable its replicas, remove
    /// the canary and wait (as after a second override).
    fn overridden_while_promoting(&mut self, target: &TargetView) {
        let total = self.total(target);
        if self.mode() == ScalingMode::Split && target.spec_replicas < total {
            self.actions.push(Action::ScaleTarget { replicas: total });
            return;
        }
        if !stable_serves(target, target.spec_replicas) {
            self.status.message = Some(format!(
                "the pool env was taken back during the promotion: waiting for the target, {}/{} available, before removing the canary",
                target.available, target.spec_replicas
            ));
            return;
        }
        let (writers, fields) = env_writers(target, self.status.promoted_at.as_ref().map(|t| t.0));
        self.delete_canary_if_any();
        let hash = self.canary_hash();
        self.clear_rollout();
        self.status.replicas = Some(replica_status(target.spec_replicas, target.spec_replicas, 0));
        let o = OverrideStatus { generation: self.input.generation, rerollouts: 1, by: writers.clone(), fields };
        self.push_history(
            hash,
            Outcome::Overridden,
            format!("{writers} rewrote the pool env vars during the promotion"),
        );
        let msg = overridden_message(&o);
        self.status.overridden = Some(o);
        self.enter(Phase::Overridden, EventType::Warning, "EnvOverridden", msg);
    }

    fn roll_back(&mut self, target: &TargetView) {
        if self.finish_begun_promotion(target) {
            return;
        }
        self.hand_over_replicas(target);
        let total = self.total(target);
        let rollback = self
            .status
            .rollback
            .clone()
            .unwrap_or(RollbackStatus { kind: RollbackKind::Failed, reason: "rolling back".into() });
        if self.mode() == ScalingMode::Split {
            if target.spec_replicas < total {
                self.actions.push(Action::ScaleTarget { replicas: total });
                self.status.replicas = Some(replica_status(total, total, self.canary().map_or(0, |c| c.spec_replicas)));
                self.status.message =
                    Some(format!("rolling back: restoring the stable to {total} replicas ({})", rollback.reason));
                return;
            }
            if !stable_serves(target, total) {
                self.status.message = Some(format!(
                    "rolling back: waiting for the stable, {}/{total} available ({})",
                    target.available, rollback.reason
                ));
                return;
            }
        }
        let hash = self.canary_hash();
        let stable = target.spec_replicas.max(if self.mode() == ScalingMode::Split { total } else { 0 });
        match rollback.kind {
            RollbackKind::Release => {
                self.delete_canary_if_any();
                self.clear_rollout();
                self.status.replicas = Some(replica_status(stable, stable, 0));
                self.push_history(hash, Outcome::Restarted, rollback.reason.clone());
                match &self.input.observed.holder {
                    Err(why) if !self.input.deleting => {
                        self.enter(Phase::Conflict, EventType::Warning, "Conflict", why.clone())
                    }
                    _ => {
                        self.status.phase = Phase::Idle;
                        self.status.message = Some(format!("released: {}", rollback.reason));
                        self.released = self.input.deleting;
                    }
                }
            }
            RollbackKind::Restart => {
                // Start over from step 0, reusing the canary Deployment (it gets the new template or
                // configuration), so no delete and re-create of the same name is needed.
                self.push_history(hash, Outcome::Restarted, rollback.reason.clone());
                self.event(EventType::Normal, "RolloutRestarted", rollback.reason);
                self.status.phase = Phase::Idle;
                self.handed_over = self.status.scaling.clone().filter(|s| s.mode == ScalingMode::Beside);
                self.maybe_start(target)
            }
            RollbackKind::Failed | RollbackKind::Aborted => {
                self.delete_canary_if_any();
                self.remember_verdict(hash.clone(), VerdictResult::RolledBack, Some(rollback.reason.clone()));
                self.clear_rollout();
                self.status.replicas = Some(replica_status(stable, stable, 0));
                let failed = FailedConfig {
                    hash: hash.clone(),
                    generation: self.input.generation,
                    reason: rollback.reason.clone(),
                };
                let msg = rolled_back_message(&failed);
                self.status.failed = Some(failed);
                self.push_history(hash, Outcome::RolledBack, rollback.reason);
                self.enter(Phase::RolledBack, EventType::Warning, "RolledBack", msg);
            }
        }
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

fn overridden_message(o: &OverrideStatus) -> String {
    format!(
        "{} took the pool env vars{} back after the promotion, again; the operator re-rolled once for this \
         generation and now waits: hand these fields to redis-pool-operator in your GitOps tool (see the README), \
         then annotate redispool.io/action=retry",
        o.by,
        fields_label(&o.fields)
    )
}

/// ` (WORKERS, REDIS_POOL_MAX_CONNECTIONS)`, or nothing when no field is known.
fn fields_label(fields: &[String]) -> String {
    if fields.is_empty() { String::new() } else { format!(" ({})", fields.join(", ")) }
}

/// The field managers that wrote pool env vars since `since` (all that hold some when none did),
/// and the vars, for messages: `field manager argocd-controller`, `[WORKERS, ...]`.
fn env_writers(target: &TargetView, since: Option<Timestamp>) -> (String, Vec<String>) {
    let recent: Vec<&super::Writer> =
        target.env_writers.iter().filter(|w| since.is_none_or(|s| w.at.is_some_and(|at| at >= s))).collect();
    let writers = if recent.is_empty() { target.env_writers.iter().collect() } else { recent };
    let mut fields: Vec<String> = writers.iter().flat_map(|w| w.fields.clone()).collect();
    fields.dedup();
    let names: Vec<&str> = writers.iter().map(|w| w.manager.as_str()).collect();
    let by = if names.is_empty() { "another writer".into() } else { format!("field manager {}", names.join(", ")) };
    (by, fields)
}

/// The target serves `replicas` within its own `maxUnavailable`: the canary may go.
fn stable_serves(target: &TargetView, replicas: i32) -> bool {
    target.available >= (replicas - target.max_unavailable).max(0)
}

/// What the target runs: a configuration and its plan, at the replicas it has now.
fn stable_ref(hash: &str, plan: Option<&crate::api::PoolPlan>, target: &TargetView) -> ConfigRef {
    let plan = plan.map(|p| crate::api::PoolPlan { replicas: target.spec_replicas, ..p.clone() });
    ConfigRef { hash: hash.to_string(), plan, worker_pool: None }
}

/// A duration for people: `8h`, `25m`, `12s`, `1h30m`.
pub fn human(d: SignedDuration) -> String {
    let secs = d.as_secs().max(0);
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
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
