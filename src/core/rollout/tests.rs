//! The state machine, driven against a small simulated world: scenario tests for each path, and
//! property tests over random event sequences (other actors included) for the invariants of the
//! rollout: capacity, budget, no skipped step, no promotion without a pass, no writes to an
//! autoscaled target's replicas, no fights, and every rollout ends.

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

use super::*;
use crate::core::analysis::{Analysis, Gate, GateResult, Verdict};
use crate::core::api::VerdictResult;
use crate::core::api::{Outcome, Phase, RedisPoolPolicyStatus, RolloutSpec, ScalingMode, Step, TargetRef, Tier};
use crate::core::sizing::{default_surge, split};

const OLD: &str = "old0000000";
const NEW: &str = "new1111111";

fn spec(total: i32) -> RedisPoolPolicySpec {
    let mut rollout = RolloutSpec {
        steps: [10, 50, 100].into_iter().map(|weight| Step { weight, pause: "60s".into() }).collect(),
        ..Default::default()
    };
    rollout.analysis.interval = "10s".into();
    rollout.analysis.progress_deadline = "300s".into();
    rollout.analysis.failure_limit = 2;
    RedisPoolPolicySpec {
        target_ref: TargetRef { name: "auth-api".into(), container: None },
        environment: Some("production".into()),
        tiers: vec![Tier {
            name: "production".into(),
            workers: 4,
            connections_per_worker: 40,
            replicas: Some(total),
            gates: None,
        }],
        pool: Default::default(),
        redis: None,
        rollout,
        promotion: Default::default(),
        env_names: Default::default(),
        suspend: false,
        notifications: Vec::new(),
    }
}

fn analysis(of: Due, verdict: Verdict) -> AnalysisRun {
    let gate = Gate::PoolUtilization;
    let (value, decided_by) = match verdict {
        Verdict::Pass => (20.0, None),
        Verdict::Hold => (70.0, Some(gate)),
        Verdict::Fail => (95.0, Some(gate)),
        Verdict::NoData => (0.0, Some(gate)),
        Verdict::Inconclusive => (95.0, Some(gate)),
    };
    let verdict_of_combined = if verdict == Verdict::NoData { Verdict::Hold } else { verdict };
    AnalysisRun {
        of,
        analysis: Analysis {
            verdict: verdict_of_combined,
            decided_by,
            gates: vec![GateResult {
                gate,
                value: Some(value),
                verdict,
                message: format!("{value}%"),
                stable: (verdict == Verdict::Inconclusive).then_some(96.0),
                dry_run: false,
            }],
            environment: (verdict == Verdict::Inconclusive)
                .then(|| "the stable breached the same thresholds in the same interval".into()),
            at_once: None,
        },
        provider_error: None,
    }
}

fn writer(manager: &str, at: Timestamp, fields: &[&str]) -> Writer {
    Writer { manager: manager.into(), at: Some(at), fields: fields.iter().map(|f| f.to_string()).collect() }
}

/// The cluster as the controller would see it. Pods become available one tick after asked for.
#[derive(Clone, Debug)]
struct World {
    target: TargetView,
    /// The target Deployment exists.
    target_exists: bool,
    canary: Option<CanaryView>,
    /// The replicas whoever last sized the target asked for: requested pods never drop below it.
    total: i32,
    /// Another policy holds the target.
    second_policy: bool,
    /// The operator wrote the target's replicas while an HPA scaled it.
    wrote_autoscaled_replicas: bool,
    /// What the shell read of `spec.promotion.requires`.
    required: Option<Vec<crate::core::promotion::Required>>,
    /// What approval webhooks answer when asked (none: nobody answers).
    webhook: Option<Result<(), String>>,
}

impl World {
    /// What deleting the policy would have to give back: a canary of its own, or a stable
    /// below the size it had (unless someone else sized it since).
    fn something_to_undo(&self, sized_by_others: bool) -> Option<&'static str> {
        if self.canary.as_ref().is_some_and(|c| c.foreign_owner.is_none()) {
            Some("a canary")
        } else if self.target_exists && self.pods() < self.total && !sized_by_others {
            Some("a lowered stable")
        } else {
            None
        }
    }

    fn new(total: i32) -> Self {
        World {
            target: TargetView {
                uid: "uid-1".into(),
                spec_replicas: total,
                available: total,
                rolled_out: true,
                config_hash: OLD.into(),
                connections_per_pod: None,
                template_hash: "tpl-a".into(),
                max_unavailable: default_surge(total).min(total),
                max_surge: crate::core::sizing::Surge::Percent(25),
                unusable: None,
                replicas_writer: None,
                env_writers: vec![],
                hpa: None,
            },
            target_exists: true,
            canary: None,
            total,
            second_policy: false,
            wrote_autoscaled_replicas: false,
            required: None,
            webhook: None,
        }
    }

    fn observe(&self) -> Observed {
        Observed {
            target: if self.target_exists {
                Ok(self.target.clone())
            } else {
                Err(NoTarget::Missing { namespace: "saas".into(), name: "auth-api".into() })
            },
            canary: self.canary.clone(),
            holder: if self.second_policy {
                Err(HeldBy { namespace: "saas".into(), holder: "first".into(), target: "auth-api".into() })
            } else {
                Ok(())
            },
            redis: None,
            peers: Vec::new(),
            required: self.required.clone(),
            approval_answers: Vec::new(),
        }
    }

    fn apply(&mut self, actions: &[Action], desired_hash: &str) {
        for a in actions {
            if matches!(a, Action::ScaleTarget { .. } | Action::PromoteTarget { replicas: Some(_) })
                && self.target.hpa.is_some()
            {
                self.wrote_autoscaled_replicas = true;
            }
            match a {
                Action::ApplyCanary { replicas, .. } => {
                    let template = self.target.template_hash.clone();
                    let c = self.canary.get_or_insert(CanaryView {
                        spec_replicas: 0,
                        available: 0,
                        config_hash: desired_hash.into(),
                        template_hash: template.clone(),
                        foreign_owner: None,
                        edited: false,
                    });
                    if c.config_hash != desired_hash || c.template_hash != template {
                        c.available = 0; // new pods
                    }
                    c.spec_replicas = *replicas;
                    c.available = c.available.min(*replicas);
                    c.config_hash = desired_hash.into();
                    c.template_hash = template;
                }
                Action::ScaleTarget { replicas } => self.scale_target(*replicas),
                Action::PromoteTarget { replicas } => {
                    if self.target.config_hash != desired_hash {
                        self.target.config_hash = desired_hash.into();
                        // A new template replaces the pods: old ones stay available while new start.
                        self.target.rolled_out = false;
                    }
                    self.target.env_writers.clear();
                    if let Some(r) = replicas {
                        self.scale_target(*r);
                    }
                }
                Action::DeleteCanary => self.canary = None,
                Action::Event { .. } => {}
            }
        }
    }

    /// The operator scales the target: it owns the field now.
    fn scale_target(&mut self, replicas: i32) {
        let t = &mut self.target;
        if t.spec_replicas != replicas {
            t.rolled_out = false;
        }
        t.spec_replicas = replicas;
        t.available = t.available.min(replicas);
        t.replicas_writer = None;
        if self.canary.is_none() {
            self.total = replicas;
        }
    }

    /// The Deployment controller catches up.
    fn tick(&mut self) {
        self.target.available = self.target.spec_replicas;
        self.target.rolled_out = true;
        if let Some(c) = &mut self.canary {
            c.available = c.spec_replicas;
        }
    }

    fn pods(&self) -> i32 {
        self.target.spec_replicas + self.canary.as_ref().map_or(0, |c| c.spec_replicas)
    }
}

struct Sim {
    spec: RedisPoolPolicySpec,
    hash: String,
    max_clients: Option<i64>,
    generation: i64,
    status: RedisPoolPolicyStatus,
    world: World,
    now: Timestamp,
    awake_since: Timestamp,
    events: Vec<(&'static str, String)>,
    trace: Vec<RedisPoolPolicyStatus>,
    /// A reconcile wrote the new configuration into the target without a passing last step, a
    /// person's promote, or an empty fleet.
    unjustified_promotion: bool,
    /// The last reconcile's status write was lost (a crash), so status and world may disagree.
    status_is_stale: bool,
    /// A reconcile that acted while another policy held the target.
    acted_without_holding: bool,
    /// A decision let the finalizer go (or never took it) while the world kept something of the
    /// rollout's to give back: a canary, or a stable below its size.
    rested_holding: Option<String>,
    /// The pool was reverted by another writer since the last retry.
    reverted: bool,
    /// Promotions written after a revert, since the last retry: automatic re-rollouts.
    rerollouts: usize,
    /// The last event was a reconcile (other actors may break invariants between reconciles).
    settled: bool,
    /// Someone other than an HPA scaled the target: the fleet the capacity invariant protects is
    /// then theirs to choose (see the scenario tests for what the operator does).
    hand_scaled: bool,
    /// A person deleted the canary while the operator had lost the status of the rollout that
    /// made it (a crash): nothing tells it the stable gave replicas to that canary, so capacity
    /// is not promised until the target is back at its size (the claim holder, or the next
    /// rollout, sizes it).
    untracked_canary_deleted: bool,
    /// What Inconclusive analyses name as the environment's fault, instead of the default.
    evidence: Option<String>,
    /// The operator's cluster-wide freeze windows.
    cluster_windows: Vec<crate::core::freeze::Window>,
    /// What the shell reports of deliveries, for the next decision.
    deliveries: Vec<notices::DeliveryResult>,
    /// A decision made while a freeze window held moved the rollout on: a start, a step, or a
    /// promotion that had not begun.
    moved_while_frozen: Option<String>,
}

impl Sim {
    fn new(total: i32) -> Self {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        Sim {
            spec: spec(total),
            hash: NEW.into(),
            max_clients: None,
            generation: 1,
            status: RedisPoolPolicyStatus::default(),
            world: World::new(total),
            now,
            awake_since: now,
            events: vec![],
            trace: vec![],
            unjustified_promotion: false,
            status_is_stale: false,
            acted_without_holding: false,
            rested_holding: None,
            reverted: false,
            rerollouts: 0,
            settled: true,
            hand_scaled: false,
            untracked_canary_deleted: false,
            evidence: None,
            cluster_windows: vec![],
            moved_while_frozen: None,
            deliveries: vec![],
        }
    }

    fn with_hpa(total: i32, min: i32, max: i32) -> Self {
        let mut sim = Sim::new(total);
        sim.spec.tiers[0].replicas = None;
        sim.world.target.hpa = Some(HpaView { name: "auth-api".into(), min_replicas: min, max_replicas: max });
        sim
    }

    /// What the shell computes from the spec and the world: the plan for the fleet in force.
    fn desired(&self) -> Desired {
        let tier = &self.spec.tiers[0];
        let target = self.world.target_exists.then_some(&self.world.target);
        let fleet = fleet(
            tier.replicas,
            target,
            self.world.canary.as_ref().map(|c| c.spec_replicas),
            &self.status,
            self.generation,
        );
        Desired {
            environment: tier.name.clone(),
            hash: self.hash.clone(),
            plan: RolloutPlan::new(&self.spec, tier, fleet, None, self.max_clients, None),
            tier_replicas: tier.replicas,
        }
    }

    fn input<'a>(
        &'a self,
        desired: &'a Desired,
        observed: &'a Observed,
        run: Option<&'a AnalysisRun>,
        action: Option<ManualAction>,
        deleting: bool,
    ) -> Input<'a> {
        Input {
            spec: &self.spec,
            generation: self.generation,
            status: &self.status,
            desired,
            observed,
            analysis: run,
            action: action.map(Ok),
            action_by: Some("alice".into()),
            now: self.now,
            awake_since: self.awake_since,
            deleting,
            cluster_windows: &self.cluster_windows,
            cluster_subscriptions: &[],
            deliveries: &self.deliveries,
        }
    }

    /// One reconcile: analyse when due (with `verdict`), decide, act, record.
    fn reconcile_with(&mut self, verdict: Verdict, action: Option<ManualAction>) -> Decision {
        self.reconcile_full(verdict, action, false)
    }

    fn reconcile_full(&mut self, verdict: Verdict, action: Option<ManualAction>, deleting: bool) -> Decision {
        let mut run = analysis_due(&self.spec, &self.status, self.now).map(|due| analysis(due, verdict));
        if let Some(r) = run.as_mut().filter(|r| r.analysis.verdict == Verdict::Inconclusive) {
            r.analysis.environment = self.evidence.clone().or(r.analysis.environment.take());
        }
        let mut observed = self.world.observe();
        // The shell asks the webhooks the pending gate waits for.
        if let Some(answer) = &self.world.webhook {
            observed.approval_answers = webhooks_to_ask(&self.spec, &self.status)
                .into_iter()
                .map(|(gate, hash, w)| WebhookAnswer {
                    gate,
                    hash,
                    webhook: w.url_secret_ref.name.clone(),
                    answer: answer.clone(),
                })
                .collect();
        }
        let desired = self.desired();
        let d = decide(&self.input(&desired, &observed, run.as_ref(), action, deleting));
        // The shell looks again (at `next_look`) in time for the next analysis that comes due.
        let interval = crate::core::durations::durations(&self.spec).interval;
        if analysis_due(&self.spec, &d.status, self.now + interval).is_some() {
            let look = next_look(&self.spec, &d.status);
            assert!(look <= interval.unsigned_abs(), "looks again after {look:?}, analyses every {interval}");
        }
        // Each write is asked for once, however many phases the decision went through.
        let writes: Vec<&Action> = d.actions.iter().filter(|a| !matches!(a, Action::Event { .. })).collect();
        for (i, a) in writes.iter().enumerate() {
            assert!(!writes[..i].contains(a), "{a:?} asked for twice in one decision: {:?}", d.actions);
        }
        // Another policy holds the target: a policy that had nothing in flight touches nothing.
        let acts = d.actions.iter().any(|a| !matches!(a, Action::Event { .. }));
        let had_nothing = !self.status.phase.is_active() && self.world.canary.is_none();
        self.acted_without_holding |= acts && self.world.second_policy && !deleting && had_nothing;
        let first_write = self.world.target.config_hash != self.hash
            && d.actions.iter().any(|a| matches!(a, Action::PromoteTarget { .. }));
        if first_write && self.world.target_exists && self.reverted {
            self.rerollouts += 1;
        }
        if first_write {
            let last = self.spec.rollout.steps.len() as i32 - 1;
            let passed = d.status.analysis.as_ref().is_some_and(|a| a.verdict == Verdict::Pass && a.step == last);
            let empty = d.status.replicas.as_ref().is_some_and(|r| r.total == 0);
            self.unjustified_promotion |= !(passed || action == Some(ManualAction::Promote) || empty);
        }
        // Inside a freeze window nothing starts, advances or begins promoting.
        if !self.cluster_windows.is_empty() && !deleting {
            let before = &self.status;
            let same_rollout = before.canary == d.status.canary && before.history.first() == d.status.history.first();
            let started = d.status.started_at.is_some() && d.status.started_at != before.started_at;
            let stepped = same_rollout && d.status.step > before.step && before.step.is_some();
            let promoted = first_write && !matches!(before.phase, Phase::Promoting | Phase::Degraded);
            if (started || stepped || promoted) && self.moved_while_frozen.is_none() {
                self.moved_while_frozen = Some(format!("{:?} -> {:?}: {:?}", before.phase, d.status.phase, d.actions));
            }
        }
        // Before and after the decision's writes: whenever deleting the policy would have
        // something to give back, the policy holds its finalizer.
        let undo_before = self.world.something_to_undo(self.hand_scaled || self.untracked_canary_deleted);
        self.world.apply(&d.actions, &self.hash);
        let undo_after = self.world.something_to_undo(self.hand_scaled || self.untracked_canary_deleted);
        if !deleting
            && !holds_target(&d, &observed)
            && self.rested_holding.is_none()
            && let Some(what) = undo_before.or(undo_after)
        {
            self.rested_holding = Some(format!("{what} in {:?}: {:?}", d.status.phase, d.actions));
        }
        // A split rollout that applies the tier's replicas may resize the fleet: it keeps at least
        // the smaller of what ran and what the tier asks for.
        if self.status.started_at.is_none()
            && let (Some(_), Some(r)) = (&d.status.started_at, &d.status.replicas)
            && d.status.scaling.as_ref().is_some_and(|s| s.mode == ScalingMode::Split)
        {
            self.world.total = self.world.total.min(r.total);
        }
        for a in &d.actions {
            if let Action::Event { reason, message, .. } = a {
                self.events.push((reason.as_str(), message.clone()));
                // A person's retry, or the target changing hands, starts the count over.
                if matches!(reason, Reason::Retry | Reason::Conflict) {
                    (self.reverted, self.rerollouts) = (false, 0);
                }
            }
        }
        self.status = d.status.clone();
        self.status_is_stale = false;
        if self.world.pods() >= self.world.total {
            self.untracked_canary_deleted = false;
        }
        self.settled = true;
        self.trace.push(self.status.clone());
        d
    }

    fn advance(&mut self, secs: i64) {
        self.now += SignedDuration::from_secs(secs);
        self.world.tick();
    }

    /// Reconciles every 5 s of simulated time until `done` or `limit` reconciles.
    fn run_until(&mut self, verdict: Verdict, limit: usize, done: impl Fn(&Sim) -> bool) {
        for _ in 0..limit {
            self.reconcile_with(verdict, None);
            if done(self) {
                return;
            }
            self.advance(5);
        }
        panic!("not done after {limit} reconciles; status: {:#?}", self.status);
    }

    fn splits_seen(&self) -> Vec<(i32, i32)> {
        let mut seen: Vec<(i32, i32)> = vec![];
        for s in &self.trace {
            if let (Some(r), Some(_)) = (&s.replicas, s.step)
                && s.step_started_at.is_some()
                && seen.last() != Some(&(r.canary, r.stable))
            {
                seen.push((r.canary, r.stable));
            }
        }
        seen
    }

    /// The step's soak has run for at least `secs`.
    fn soaked_at_least(&self, secs: i64) -> bool {
        let Some(s) = &self.status.soak else { return false };
        let running = s.running_since.as_ref().map_or(0, |t| self.now.duration_since(t.0).as_secs());
        s.soaked_seconds + running >= secs
    }

    fn reasons(&self) -> Vec<&str> {
        self.events.iter().map(|(r, _)| *r).collect()
    }

    fn count(&self, reason: &str) -> usize {
        self.events.iter().filter(|(r, _)| *r == reason).count()
    }

    /// Another field manager puts the old pool env back (a GitOps re-apply).
    fn gitops_revert(&mut self) {
        self.reverted = true;
        self.world.target.config_hash = OLD.into();
        self.world.target.env_writers =
            vec![writer("argocd-controller", self.now, &["WORKERS", "REDIS_POOL_MAX_CONNECTIONS"])];
        self.world.target.rolled_out = false;
    }

    /// Someone else scales the target (`kubectl scale`, or an HPA when there is one).
    /// Managed fields carry seconds; the write gets a second of its own, so that it is
    /// unambiguously after what came before and before what comes after.
    fn external_scale(&mut self, replicas: i32) {
        self.now += SignedDuration::from_secs(1);
        let at = self.now;
        self.now += SignedDuration::from_secs(1);
        let (replicas, manager) = match &self.world.target.hpa {
            Some(h) => (replicas.clamp(h.min_replicas, h.max_replicas), "kube-controller-manager"),
            None => (replicas, "kubectl"),
        };
        self.hand_scaled |= self.world.target.hpa.is_none();
        let t = &mut self.world.target;
        t.spec_replicas = replicas;
        t.available = t.available.min(replicas);
        t.replicas_writer = Some(writer(manager, at, &[]));
        self.world.total = replicas;
    }
}

#[test]
fn promotes_through_every_step() {
    let mut sim = Sim::new(10);
    sim.run_until(Verdict::Pass, 200, |s| s.status.phase == Phase::Succeeded);
    assert_eq!(sim.splits_seen(), vec![(1, 9), (5, 5), (10, 0)]);
    assert!(sim.world.canary.is_none(), "canary removed");
    assert_eq!(sim.world.target.config_hash, NEW);
    assert_eq!(sim.world.target.spec_replicas, 10);
    assert_eq!(sim.status.stable.as_ref().unwrap().hash, NEW);
    assert_eq!(sim.status.history[0].outcome, Outcome::Succeeded);
    assert_eq!(
        sim.reasons(),
        vec![
            "RolloutStarted",
            "StepStarted",
            "StepAdvanced",
            "StepStarted",
            "StepAdvanced",
            "StepStarted",
            "Promoting",
            "Promoted"
        ]
    );
    // Analyses watch the promotion until its verdict has soaked spec.promotion.soak; then the
    // steady state: no actions at all, and the same status.
    sim.spec.promotion.soak = "30s".into();
    sim.run_until(Verdict::Pass, 20, |s| {
        analysis_due(&s.spec, &s.status, s.now + SignedDuration::from_hours(1)).is_none()
    });
    let v = &sim.status.verdicts[0];
    assert_eq!((v.result, v.soaked_seconds >= 30, v.hash.as_str()), (VerdictResult::Succeeded, true, NEW));
    let before = sim.status.clone();
    for _ in 0..3 {
        sim.advance(10);
        let d = sim.reconcile_with(Verdict::Pass, None);
        assert!(d.actions.is_empty(), "steady state acts: {:?}", d.actions);
        assert_eq!(d.status, before);
    }
}

#[test]
fn a_promotion_is_watched_until_its_verdict_has_soaked() {
    let mut sim = Sim::new(10);
    sim.spec.promotion.soak = "60s".into();
    sim.run_until(Verdict::Pass, 200, |s| s.status.phase == Phase::Succeeded);
    let verdict = |s: &Sim| s.status.verdicts[0].clone();
    assert_eq!((verdict(&sim).soaked_seconds, verdict(&sim).analyses), (0, 0));
    // Passes add the time between them; a hold stops the clock until the next pass.
    sim.run_until(Verdict::Pass, 20, |s| verdict(s).soaked_seconds >= 20);
    let soaked = verdict(&sim).soaked_seconds;
    for _ in 0..6 {
        sim.advance(5);
        sim.reconcile_with(Verdict::Hold, None);
    }
    assert_eq!(verdict(&sim).soaked_seconds, soaked, "a hold is not a clean soak");
    assert_eq!(verdict(&sim).clean_at, None);
    // Time nobody measured (the operator was down for two minutes) counts two intervals at most.
    sim.advance(5);
    sim.reconcile_with(Verdict::Pass, None);
    sim.now += SignedDuration::from_mins(2);
    sim.reconcile_with(Verdict::Pass, None);
    assert!(verdict(&sim).soaked_seconds <= soaked + 20, "{:?}", verdict(&sim));
    sim.run_until(Verdict::Pass, 40, |s| {
        analysis_due(&s.spec, &s.status, s.now + SignedDuration::from_hours(1)).is_none()
    });
    assert!(verdict(&sim).soaked_seconds >= 60);
    assert_eq!(sim.status.phase, Phase::Succeeded);
    // Once, when it crosses the soak: the news that environments requiring it wait for.
    assert_eq!(sim.count("VerdictSoaked"), 1, "{:?}", sim.events);
}

#[test]
fn a_watch_that_never_soaks_ends_and_says_why() {
    let mut sim = Sim::new(10);
    sim.spec.promotion.soak = "60s".into();
    sim.run_until(Verdict::Pass, 200, |s| s.status.phase == Phase::Succeeded);
    // Holds for ever (a pool between its thresholds): no clean soak, and no analyses for ever.
    sim.run_until(Verdict::Hold, 200, |s| s.status.verdicts[0].watch_ended.is_some());
    let v = &sim.status.verdicts[0];
    assert!(v.soaked_seconds < 60 && v.result == VerdictResult::Succeeded, "{v:?}");
    assert_eq!(sim.count("VerdictWatchEnded"), 1);
    assert_eq!(analysis_due(&sim.spec, &sim.status, sim.now + SignedDuration::from_hours(1)), None);
    // Deciding again is quiet.
    let before = sim.status.clone();
    sim.advance(30);
    let d = sim.reconcile_with(Verdict::Hold, None);
    assert!(d.actions.is_empty(), "{:?}", d.actions);
    assert_eq!(d.status, before);
}

#[test]
fn the_watch_goes_on_through_an_invalid_spell_and_a_rollback_of_another_pool() {
    let mut sim = Sim::new(10);
    sim.spec.promotion.soak = "10m".into();
    sim.run_until(Verdict::Pass, 200, |s| s.status.phase == Phase::Succeeded);
    sim.run_until(Verdict::Pass, 10, |s| s.status.verdicts[0].soaked_seconds >= 10);
    // The target goes missing for a while, then comes back (the same object).
    sim.world.target_exists = false;
    sim.reconcile_with(Verdict::Pass, None);
    assert_eq!(sim.status.phase, Phase::Invalid);
    assert_eq!(analysis_due(&sim.spec, &sim.status, sim.now + SignedDuration::from_hours(1)), None);
    sim.world.target_exists = true;
    sim.run_until(Verdict::Pass, 20, |s| s.status.verdicts[0].soaked_seconds >= 30);
    // Another pool rolls out and back: the target still runs the promoted one, which is
    // still watched although its verdict is no longer the newest.
    sim.spec.tiers[0].connections_per_worker = 30;
    sim.hash = "another1234".into();
    sim.generation += 1;
    sim.run_until(Verdict::Fail, 200, |s| s.status.phase == Phase::RolledBack);
    assert_eq!(sim.status.verdicts[0].result, VerdictResult::RolledBack);
    let promoted = |s: &Sim| s.status.verdicts.iter().find(|v| v.hash == NEW).unwrap().soaked_seconds;
    let before = promoted(&sim);
    sim.run_until(Verdict::Pass, 20, |s| promoted(s) > before);
}

#[test]
fn a_failure_after_the_promotion_fails_the_verdict_but_rolls_nothing_back() {
    let mut sim = Sim::new(10);
    sim.run_until(Verdict::Pass, 200, |s| s.status.phase == Phase::Succeeded);
    let mut acted = vec![];
    for _ in 0..10 {
        sim.advance(10);
        acted.extend(
            sim.reconcile_with(Verdict::Fail, None).actions.into_iter().filter(|a| !matches!(a, Action::Event { .. })),
        );
    }
    let v = &sim.status.verdicts[0];
    assert_eq!(v.result, VerdictResult::Failed);
    assert!(v.reason.as_deref().unwrap().contains("2 analyses in a row failed"), "{v:?}");
    assert_eq!(sim.count("VerdictFailed"), 1);
    assert!(acted.is_empty(), "a promoted configuration is never rolled back by itself: {acted:?}");
    assert_eq!((sim.status.phase, sim.world.target.config_hash.as_str()), (Phase::Succeeded, NEW));
    assert!(sim.status.message.as_deref().unwrap().contains("does not roll back"), "{:?}", sim.status.message);
    // The watch is over: no more analyses.
    assert_eq!(analysis_due(&sim.spec, &sim.status, sim.now + SignedDuration::from_hours(1)), None);
}

#[test]
fn a_rollback_leaves_a_rolled_back_verdict() {
    let mut sim = Sim::new(10);
    sim.run_until(Verdict::Fail, 200, |s| s.status.phase == Phase::RolledBack);
    let v = &sim.status.verdicts[0];
    assert_eq!((v.result, v.hash.as_str(), v.environment.as_str()), (VerdictResult::RolledBack, NEW, "production"));
    assert!(v.reason.as_deref().unwrap().contains("analysis failed 2 times"), "{v:?}");
}

#[test]
fn each_step_soaks_for_its_pause() {
    let mut sim = Sim::new(10);
    sim.run_until(Verdict::Pass, 200, |s| s.status.phase == Phase::Succeeded);
    let starts: Vec<Timestamp> = {
        let mut v: Vec<Timestamp> = sim.trace.iter().filter_map(|s| s.step_started_at.as_ref().map(|t| t.0)).collect();
        v.dedup();
        v
    };
    assert_eq!(starts.len(), 3);
    for w in starts.windows(2) {
        assert!(w[1].duration_since(w[0]) >= SignedDuration::from_secs(60), "step shorter than its pause: {w:?}");
    }
}

#[test]
fn rolls_back_after_failure_limit_and_does_not_retry() {
    let mut sim = Sim::new(10);
    sim.run_until(Verdict::Fail, 100, |s| s.status.phase == Phase::RolledBack);
    assert!(sim.world.canary.is_none());
    assert_eq!(sim.world.target.spec_replicas, 10);
    assert_eq!(sim.world.target.config_hash, OLD);
    assert_eq!(sim.status.failed.as_ref().unwrap().hash, NEW);
    assert_eq!(sim.count("AnalysisFailed"), 2, "failureLimit is 2: {:?}", sim.events);
    // The same configuration is not tried again, however long we wait.
    for _ in 0..20 {
        sim.advance(30);
        let d = sim.reconcile_with(Verdict::Pass, None);
        assert!(d.actions.is_empty(), "{:?}", d.actions);
        assert_eq!(sim.status.phase, Phase::RolledBack);
    }
    // Until a person asks.
    sim.reconcile_with(Verdict::Pass, Some(ManualAction::Retry));
    sim.advance(5);
    sim.reconcile_with(Verdict::Pass, None);
    assert_eq!(sim.status.phase, Phase::Progressing);
}

#[test]
fn a_new_spec_generation_may_retry_a_failed_config() {
    let mut sim = Sim::new(10);
    sim.run_until(Verdict::Fail, 100, |s| s.status.phase == Phase::RolledBack);
    sim.generation += 1;
    sim.advance(5);
    sim.reconcile_with(Verdict::Pass, None);
    assert_eq!(sim.status.phase, Phase::Progressing);
}

#[test]
fn hold_zone_never_advances_and_rolls_back_at_the_deadline() {
    let mut sim = Sim::new(10);
    sim.run_until(Verdict::Hold, 200, |s| s.status.phase == Phase::RolledBack);
    assert!(sim.trace.iter().all(|s| s.step.unwrap_or(0) == 0), "advanced on Hold");
    let reason = &sim.status.failed.as_ref().unwrap().reason;
    assert!(reason.contains("progressDeadline"), "{reason}");
    // The deadline counts after the pause: 60 s pause + 300 s deadline, not earlier.
    let started = sim.trace.iter().find_map(|s| s.step_started_at.as_ref().map(|t| t.0)).unwrap();
    let rolling = sim.trace.iter().position(|s| s.phase == Phase::RollingBack).unwrap();
    let at_rollback = rolling as i64 * 5; // one reconcile every 5 s from t=0
    let began = started.duration_since("2026-01-01T00:00:00Z".parse().unwrap()).as_secs();
    assert!(at_rollback - began > 360, "rolled back {}s after the soak began", at_rollback - began);
    assert!(at_rollback - began <= 370, "rolled back late: {}s after the soak began", at_rollback - began);
}

/// An environment at fault (every interval Inconclusive) stops the soak's clock: the rollout
/// neither advances nor rolls back, past progressDeadline it is Degraded (one Event), and once
/// the analyses judge the configuration again the soak goes on where it stopped.
#[test]
fn an_inconclusive_environment_holds_the_soak_and_pages_once_past_the_deadline() {
    let mut sim = Sim::new(10);
    // 30 s into the first step's 60 s soak...
    sim.run_until(Verdict::Pass, 100, |s| s.status.soak.as_ref().is_some_and(|_| true) && s.soaked_at_least(30));
    let soaked_before = sim.status.soak.as_ref().unwrap().soaked_seconds;
    // ...the environment fails for ten minutes, twice the deadline.
    for _ in 0..120 {
        sim.advance(5);
        sim.reconcile_with(Verdict::Inconclusive, None);
        assert_eq!((sim.status.phase, sim.status.step), (Phase::Progressing, Some(0)), "{:?}", sim.status.message);
    }
    let a = sim.status.analysis.as_ref().unwrap();
    assert_eq!((a.verdict, a.consecutive_failures), (Verdict::Inconclusive, 0), "never counted as failures");
    assert!(a.environment.as_deref().unwrap().contains("the stable breached"), "{a:?}");
    assert_eq!(sim.count("AnalysisInconclusive"), 1, "one Event when the clock stops: {:?}", sim.reasons());
    assert_eq!(sim.count("EnvironmentDegraded"), 1, "pages once: {:?}", sim.reasons());
    let degraded = sim.status.conditions.iter().find(|c| c.type_ == "EnvironmentDegraded").unwrap();
    assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "EnvironmentAtFault"));
    assert!(sim.status.message.as_deref().unwrap().contains("not blaming the configuration"));
    let soak = sim.status.soak.clone().unwrap();
    assert!(soak.running_since.is_none() && soak.environment_since.is_some(), "{soak:?}");
    assert!(soak.soaked_seconds <= soaked_before + 30, "ten minutes of weather never counted: {soak:?}");
    // The weather clears: the soak resumes, Degraded goes False, and the rollout completes.
    sim.advance(5);
    sim.reconcile_with(Verdict::Pass, None);
    assert_eq!(sim.count("EnvironmentRecovered"), 1);
    let degraded = sim.status.conditions.iter().find(|c| c.type_ == "EnvironmentDegraded").unwrap();
    assert_eq!(degraded.status, "False");
    sim.run_until(Verdict::Pass, 400, |s| s.status.phase == Phase::Succeeded);
    assert_eq!(sim.count("AnalysisFailed"), 0);
}

/// A canary that loses its pods during a spell of weather still rolls back once they have been
/// missing for progressDeadline: the weather excuses the analyses, not missing pods.
#[test]
fn canary_pods_lost_in_the_weather_still_roll_back_at_the_deadline() {
    let mut sim = Sim::new(10);
    sim.run_until(Verdict::Pass, 100, |s| s.soaked_at_least(20));
    sim.run_until(Verdict::Inconclusive, 20, |s| s.status.soak.as_ref().unwrap().environment_since.is_some());
    if let Some(c) = &mut sim.world.canary {
        c.available = 0;
    }
    let lost = sim.now;
    for _ in 0..200 {
        sim.now += SignedDuration::from_secs(5);
        sim.reconcile_with(Verdict::Inconclusive, None);
        if let Some(c) = &mut sim.world.canary {
            c.available = 0;
        }
        if sim.status.phase == Phase::RollingBack || sim.status.phase == Phase::RolledBack {
            break;
        }
    }
    assert!(matches!(sim.status.phase, Phase::RollingBack | Phase::RolledBack), "{:?}", sim.status.message);
    let took = sim.now.duration_since(lost).as_secs();
    assert!((300..=310).contains(&took), "rolled back {took}s after the pods went missing (deadline 300s)");
    // While the pods were missing no analysis was recorded: the soak waits for its pods.
    assert!(sim.status.analysis.as_ref().unwrap().at.0 <= lost, "{:?}", sim.status.analysis);
}

/// A failover in the middle of an outage is news: one Event for the outage, one for the failover,
/// none for the outage's numbers moving.
#[test]
fn new_evidence_in_a_spell_of_weather_is_said_once() {
    let mut sim = Sim::new(10);
    sim.run_until(Verdict::Pass, 100, |s| s.soaked_at_least(20));
    for i in 0..6 {
        sim.evidence = Some(format!("the stable breached the same thresholds in the same interval: successRate {i}%"));
        sim.advance(5);
        sim.reconcile_with(Verdict::Inconclusive, None);
    }
    for _ in 0..4 {
        sim.evidence = Some("the Redis server changed role from master to replica (a failover)".into());
        sim.advance(5);
        sim.reconcile_with(Verdict::Inconclusive, None);
    }
    let said: Vec<&String> = sim.events.iter().filter(|(r, _)| *r == "AnalysisInconclusive").map(|(_, m)| m).collect();
    assert_eq!(said.len(), 2, "{said:?}");
    assert!(said[0].contains("the stable breached") && said[1].contains("failover"), "{said:?}");
}

/// One interval of weather in a soak costs that interval, not the rollout: the next pass
/// resumes the clock and the step still needs its full pause of judged time.
#[test]
fn one_inconclusive_interval_pauses_and_resumes_the_clock() {
    let mut sim = Sim::new(10);
    sim.run_until(Verdict::Pass, 100, |s| s.soaked_at_least(20));
    sim.advance(5);
    // Wait for the next analysis to come due, and judge it Inconclusive.
    sim.run_until(Verdict::Inconclusive, 10, |s| s.status.analysis.as_ref().unwrap().verdict == Verdict::Inconclusive);
    let stopped = sim.status.soak.clone().unwrap();
    assert!(stopped.running_since.is_none());
    sim.advance(5);
    sim.run_until(Verdict::Pass, 10, |s| s.status.soak.as_ref().unwrap().running_since.is_some());
    sim.run_until(Verdict::Pass, 100, |s| s.status.step == Some(1));
    let (paused, resumed) = (sim.count("AnalysisInconclusive"), sim.count("EnvironmentRecovered"));
    assert_eq!((paused, resumed), (1, 1), "{:?}", sim.reasons());
}

#[test]
fn no_data_is_never_promoted() {
    let mut sim = Sim::new(10);
    for _ in 0..40 {
        sim.reconcile_with(Verdict::NoData, None);
        assert_ne!(sim.status.phase, Phase::Promoting);
        assert!(sim.status.step.unwrap_or(0) == 0);
        sim.advance(5);
    }
}

#[test]
fn budget_blocks_without_touching_anything() {
    let mut sim = Sim::new(10);
    sim.spec.redis = Some(
        serde_json::from_value(serde_json::json!({"address": "127.0.0.1:6379", "maxClientsUtilization": 0.8})).unwrap(),
    );
    sim.max_clients = Some(3000); // limit 2400 < peak 3200
    let d = sim.reconcile_with(Verdict::Pass, None);
    assert_eq!(sim.status.phase, Phase::Blocked);
    assert!(d.actions.iter().all(|a| matches!(a, Action::Event { .. })), "{:?}", d.actions);
    let msg = sim.status.message.clone().unwrap();
    assert!(msg.contains("3200") && msg.contains("2400") && msg.contains("3000 maxclients x 0.8"), "{msg}");
    let budget = sim.status.conditions.iter().find(|c| c.type_ == "BudgetOk").unwrap();
    assert_eq!(budget.status, "False");
    // Raising maxclients unblocks.
    sim.max_clients = Some(10000);
    sim.advance(5);
    sim.reconcile_with(Verdict::Pass, None);
    assert_eq!(sim.status.phase, Phase::Progressing);
}

/// The server's live `maxclients` is checked by the core, and a server it cannot ask blocks a
/// rollout from starting but does not stop one in flight.
#[test]
fn the_live_redis_server_decides_the_budget() {
    use crate::core::analysis::redis::{RedisFault, RedisSignals};
    let mut sim = Sim::new(10);
    sim.spec.redis = Some(serde_json::from_value(serde_json::json!({"address": "127.0.0.1:6379"})).unwrap());
    let observed = |redis| Observed { redis: Some(redis), ..sim.world.observe() };
    let signals = |max| {
        Ok(RedisSignals {
            max_clients_note: None,
            max_clients: Some(max),
            connected_clients: 0,
            rejected_connections: 0,
            ping: std::time::Duration::ZERO,
            identity: None,
            nodes: Vec::new(),
        })
    };
    let desired = sim.desired();
    let small = observed(signals(1000));
    let d = decide(&sim.input(&desired, &small, None, None, false));
    assert_eq!(d.status.phase, Phase::Blocked);
    let reachable = d.status.conditions.iter().find(|c| c.type_ == "RedisReachable").unwrap();
    assert_eq!(
        (reachable.status.as_str(), reachable.message.as_str()),
        ("True", "127.0.0.1:6379 answers; maxclients 1000")
    );
    // A server that answers without saying its maxclients (an ACL user on Redis 6 without
    // CONFIG) cannot be promised anything: Blocked, saying what to set.
    let mute = observed(signals(1000).map(|s| RedisSignals { max_clients: None, ..s }));
    let d = decide(&sim.input(&desired, &mute, None, None, false));
    assert_eq!(d.status.phase, Phase::Blocked, "never on faith");
    let why = d.status.message.clone().unwrap();
    assert!(why.contains("does not say its maxclients") && why.contains("set spec.redis.maxClients"), "{why}");
    let down = observed(Err(RedisFault::Unavailable("redis 127.0.0.1:6379: connection refused".into())));
    let d = decide(&sim.input(&desired, &down, None, None, false));
    assert_eq!(d.status.phase, Phase::Blocked, "never on faith");
    assert!(d.status.message.unwrap().contains("connection refused"));
    // Mid-rollout, an outage of the server leaves the rollout alone (the gates see it instead).
    sim.run_until(Verdict::Pass, 50, |s| s.status.step_started_at.is_some());
    let down = Observed { redis: Some(Err(RedisFault::Unavailable("refused".into()))), ..sim.world.observe() };
    let d = decide(&sim.input(&desired, &down, None, None, false));
    assert_eq!(d.status.phase, Phase::Progressing);
}

#[test]
fn template_change_mid_rollout_restarts_with_a_reason() {
    let mut sim = Sim::new(10);
    sim.run_until(Verdict::Pass, 100, |s| s.status.step == Some(1) && s.status.step_started_at.is_some());
    sim.world.target.template_hash = "tpl-b".into();
    sim.run_until(Verdict::Pass, 50, |s| s.status.history.first().is_some_and(|h| h.outcome == Outcome::Restarted));
    assert!(sim.reasons().contains(&"RolloutRestarting") && sim.reasons().contains(&"RolloutRestarted"));
    assert!(sim.status.history[0].reason.contains("pod template changed"));
    assert!(sim.status.failed.is_none(), "a restart is not a failure");
    // The stable was restored before the restart, and the canary now runs the new template.
    assert!(sim.trace.iter().any(|s| s.phase == Phase::RollingBack));
    assert_eq!((sim.status.phase, sim.status.step), (Phase::Progressing, Some(0)));
    assert_eq!(sim.status.target_template_hash.as_deref(), Some("tpl-b"));
    sim.run_until(Verdict::Pass, 200, |s| s.status.phase == Phase::Succeeded);
    assert_eq!(sim.world.canary, None);
}

#[test]
fn spec_change_mid_rollout_restarts_for_the_new_config() {
    let mut sim = Sim::new(10);
    sim.run_until(Verdict::Pass, 100, |s| s.status.step == Some(1));
    sim.hash = "newer22222".into();
    sim.generation += 1;
    sim.run_until(Verdict::Pass, 50, |s| s.status.canary.as_ref().is_some_and(|c| c.hash == "newer22222"));
    assert_eq!(sim.status.step, Some(0));
}

#[test]
fn manual_pause_resume_promote_abort() {
    let mut sim = Sim::new(10);
    sim.run_until(Verdict::Pass, 100, |s| s.status.step_started_at.is_some());
    sim.reconcile_with(Verdict::Pass, Some(ManualAction::Pause));
    assert_eq!(sim.status.phase, Phase::Paused);
    for _ in 0..30 {
        sim.advance(5);
        sim.reconcile_with(Verdict::Pass, None);
        assert_eq!((sim.status.phase, sim.status.step), (Phase::Paused, Some(0)), "paused rollouts stay put");
    }
    sim.reconcile_with(Verdict::Pass, Some(ManualAction::Resume));
    assert_eq!(sim.status.phase, Phase::Progressing);
    sim.reconcile_with(Verdict::Pass, Some(ManualAction::Promote));
    assert_eq!(sim.status.phase, Phase::Promoting);
    sim.run_until(Verdict::Pass, 20, |s| s.status.phase == Phase::Succeeded);
    assert_eq!(sim.world.target.config_hash, NEW);

    let mut sim = Sim::new(10);
    sim.run_until(Verdict::Pass, 100, |s| s.status.step == Some(1));
    sim.reconcile_with(Verdict::Pass, Some(ManualAction::Abort));
    sim.run_until(Verdict::Pass, 20, |s| s.status.phase == Phase::RolledBack);
    assert!(sim.status.failed.as_ref().unwrap().reason.contains("aborted"));
    assert_eq!(sim.world.target.config_hash, OLD);
}

#[test]
fn refused_manual_actions_say_why() {
    let mut sim = Sim::new(10);
    sim.world.target.config_hash = NEW.into();
    let d = sim.reconcile_with(Verdict::Pass, Some(ManualAction::Promote));
    assert!(d.action_consumed);
    assert_eq!(sim.status.phase, Phase::Idle);
    assert!(sim.events.iter().any(|(r, m)| *r == "ManualActionIgnored" && m.contains("promote")), "{:?}", sim.events);
}

/// Two services on one Redis: a rollout starts only when its peak and the others' fit together,
/// and the wait names the others and the numbers.
#[test]
fn a_shared_redis_budget_counts_the_other_policies() {
    use crate::core::shared_budget::Peer;
    let mut sim = Sim::new(10);
    let peak = sim.desired().plan.budget.peak_connections;
    // Room for this rollout and 100 more connections (maxclients x 0.8).
    let max_clients = ((peak + 100) as f64 / 0.8).ceil() as i64;
    sim.spec.redis = Some(
        serde_json::from_value(serde_json::json!({"address": "redis.shared:6379", "maxClients": max_clients})).unwrap(),
    );
    let desired = sim.desired();
    let rolling = vec![Peer { policy: "saas/payments".into(), steady: 80, peak: Some(500) }];
    let observed = Observed { peers: rolling, ..sim.world.observe() };
    let d = decide(&sim.input(&desired, &observed, None, None, false));
    assert_eq!(d.status.phase, Phase::Blocked, "{:?}", d.status.message);
    let message = d.status.message.clone().unwrap_or_default();
    assert!(message.contains("waiting for room on the Redis server"), "{message}");
    assert!(message.contains(&format!("{peak} for this rollout + 500 for saas/payments (rolling out)")), "{message}");
    assert!(!d.actions.iter().any(|a| matches!(a, Action::ApplyCanary { .. })), "nothing starts");

    // The other rollout ended: its steady 80 leaves room.
    let settled = vec![Peer { policy: "saas/payments".into(), steady: 80, peak: None }];
    let observed = Observed { peers: settled, ..sim.world.observe() };
    let d = decide(&sim.input(&desired, &observed, None, None, false));
    assert_eq!(d.status.phase, Phase::Progressing, "{:?}", d.status.message);
    let mine = d.status.redis_connections.clone().expect("what others count for this policy");
    assert_eq!(mine.peak, Some(peak), "a rollout in flight tells the others its peak");

    // In flight, the rollout keeps its budget: its own canary's connections on the server, or
    // another rollout that started meanwhile, never abort it.
    sim.status = d.status;
    let crowded = vec![Peer { policy: "saas/payments".into(), steady: 80, peak: Some(5000) }];
    let observed = Observed { peers: crowded, ..sim.world.observe() };
    let d = decide(&sim.input(&desired, &observed, None, None, false));
    assert_eq!(d.status.phase, Phase::Progressing, "{:?}", d.status.message);
}

/// What the analyses saw of the canary's pools stays with its configuration, and gives advice
/// once it shows the pool mis-sized: a peak of 70% against production's 60% asks for more.
#[test]
fn the_pools_the_analyses_saw_give_advice() {
    let mut sim = Sim::new(10);
    sim.run_until(Verdict::Pass, 100, |s| s.status.analysis.is_some());
    let seen = sim.status.pool_seen.clone().expect("the canary's pools were measured");
    assert_eq!((seen.hash.as_str(), seen.peak_utilization), (sim.hash.as_str(), 20.0));
    assert_eq!(sim.status.advice, None, "20% of a 60% threshold is sized well");
    sim.run_until(Verdict::Hold, 20, |s| s.status.pool_seen.as_ref().is_some_and(|p| p.peak_utilization == 70.0));
    sim.run_until(Verdict::Pass, 300, |s| s.status.phase == Phase::Succeeded);
    let advice = sim.status.advice.clone().expect("advice after a 70% peak");
    // 70% of 40 is 28 in use: 47 puts it under the 60% promote threshold.
    assert_eq!(advice.connections_per_worker, 47, "{}", advice.message);
    assert!(advice.message.starts_with("production: peak utilization 70% of 40 over"), "{}", advice.message);
    // Once the watch is over, the advice stands still: no write while nothing is measured.
    sim.spec.promotion.soak = "30s".into();
    sim.run_until(Verdict::Pass, 40, |s| {
        analysis_due(&s.spec, &s.status, s.now + SignedDuration::from_hours(1)).is_none()
    });
    let before = sim.status.clone();
    sim.advance(600);
    assert_eq!(sim.reconcile_with(Verdict::Pass, None).status, before);
    // A new configuration starts over.
    sim.hash = "another1234".into();
    sim.generation += 1;
    sim.run_until(Verdict::Pass, 100, |s| s.status.pool_seen.as_ref().is_some_and(|p| p.hash == "another1234"));
    assert_eq!(sim.status.pool_seen.as_ref().unwrap().peak_utilization, 20.0);
}

#[test]
fn an_invalid_policy_answers_an_action_instead_of_keeping_it() {
    let mut sim = Sim::new(10);
    sim.world.target_exists = false;
    let d = sim.reconcile_with(Verdict::Pass, Some(ManualAction::Pause));
    assert_eq!(sim.status.phase, Phase::Invalid);
    assert!(d.action_consumed, "a person waiting on the action would never hear back");
    assert!(
        sim.events.iter().any(|(r, m)| *r == "ManualActionIgnored" && m.contains("action ignored")),
        "{:?}",
        sim.events
    );
}

#[test]
fn suspend_freezes_everything_and_keeps_the_action() {
    let mut sim = Sim::new(10);
    sim.spec.suspend = true;
    let d = sim.reconcile_with(Verdict::Pass, Some(ManualAction::Abort));
    assert!(d.actions.is_empty());
    assert!(!d.action_consumed);
    assert!(sim.world.canary.is_none());
}

/// The status message appears in one condition: Progressing during a rollout, Ready otherwise.
#[test]
fn ready_and_progressing_do_not_repeat_the_message() {
    let mut sim = Sim::new(10);
    let said = |s: &RedisPoolPolicyStatus, t: &str| {
        s.conditions.iter().find(|c| c.type_ == t).map(|c| (c.status.clone(), c.message.clone())).unwrap()
    };
    sim.run_until(Verdict::Pass, 100, |s| s.status.step_started_at.is_some());
    let message = sim.status.message.clone().unwrap();
    assert_eq!(said(&sim.status, "Progressing"), ("True".into(), message));
    assert_eq!(said(&sim.status, "Ready").0, "False");
    assert!(said(&sim.status, "Ready").1.contains("see the Progressing condition"));
    sim.run_until(Verdict::Fail, 100, |s| s.status.phase == Phase::RolledBack);
    let message = sim.status.message.clone().unwrap();
    assert_eq!(said(&sim.status, "Ready"), ("False".into(), message));
    assert_eq!(said(&sim.status, "Progressing"), ("False".into(), "no rollout in flight".into()));
}

/// An action nobody understands is answered in any phase, even suspended or mid-rollout: the
/// annotation goes and an Event says which actions exist; nothing else changes.
#[test]
fn an_unknown_action_is_answered_whatever_the_phase() {
    let mut sim = Sim::new(10);
    sim.run_until(Verdict::Pass, 100, |s| s.status.step_started_at.is_some());
    for suspend in [false, true] {
        sim.spec.suspend = suspend;
        let (desired, observed) = (sim.desired(), sim.world.observe());
        let mut input = sim.input(&desired, &observed, None, None, false);
        input.action = Some(Err(UnknownAction("frobnicate".into())));
        let d = decide(&input);
        assert!(d.action_consumed, "suspend {suspend}");
        assert_eq!(d.status.phase, sim.status.phase, "suspend {suspend}");
        let said: Vec<&Action> = d.actions.iter().filter(|a| matches!(a, Action::Event { .. })).collect();
        assert!(
            matches!(said.as_slice(), [Action::Event { reason: Reason::ManualActionIgnored, message }]
                if message.contains("\"frobnicate\"") && message.contains("promote, abort, retry, pause, resume or approve")),
            "suspend {suspend}: {said:?}"
        );
    }
}

#[test]
fn missing_target_is_invalid_and_cleans_the_canary() {
    let mut sim = Sim::new(10);
    sim.run_until(Verdict::Pass, 100, |s| s.status.step_started_at.is_some());
    sim.world.target_exists = false;
    let d = sim.reconcile_with(Verdict::Pass, None);
    assert_eq!(d.status.phase, Phase::Invalid);
    assert!(d.actions.contains(&Action::DeleteCanary));
    assert!(d.actions.iter().any(
        |a| matches!(a, Action::Event { reason: Reason::InvalidTarget, message, .. } if message.contains("not found"))
    ));
}

#[test]
fn zero_replicas_write_the_config_directly() {
    let mut sim = Sim::new(0);
    sim.run_until(Verdict::NoData, 10, |s| s.status.phase == Phase::Succeeded);
    assert_eq!(sim.world.target.config_hash, NEW);
    assert!(sim.world.canary.is_none());
}

#[test]
fn a_promotion_without_replicas_is_not_watched() {
    let mut sim = Sim::new(0);
    sim.run_until(Verdict::Pass, 10, |s| s.status.phase == Phase::Succeeded);
    let v = &sim.status.verdicts[0];
    assert!(v.watch_ended.as_deref().is_some_and(|w| w.contains("no replicas")), "{v:?}");
    assert_eq!(analysis_due(&sim.spec, &sim.status, sim.now + SignedDuration::from_hours(1)), None);
}

#[test]
fn single_replica_keeps_its_stable_pod_until_the_last_step() {
    let mut sim = Sim::new(1);
    sim.run_until(Verdict::Pass, 200, |s| s.status.phase == Phase::Succeeded);
    assert_eq!(sim.splits_seen(), vec![(1, 1), (1, 0)]);
}

// ---- living among other actors ---------------------------------------------------------------

/// The runbook's long soak with a short deadline: a canary pod lost late in the soak (long after
/// `progressDeadline` since the soak began) stops the soak clock for as long as it is missing,
/// and neither restarts the soak nor rolls back.
#[test]
fn a_canary_pod_lost_late_in_a_soak_pauses_the_clock() {
    let mut sim = Sim::new(10);
    sim.spec.rollout.steps[0].pause = "600s".into();
    sim.spec.rollout.analysis.progress_deadline = "60s".into();
    sim.run_until(Verdict::Pass, 20, |s| s.status.step_started_at.is_some());
    let began = sim.status.step_started_at.clone().unwrap();
    // 500 s into the 600 s soak the canary pod goes (eviction), for 20 s.
    for _ in 0..100 {
        sim.advance(5);
        sim.reconcile_with(Verdict::Pass, None);
    }
    sim.world.canary.as_mut().unwrap().available = 0;
    for _ in 0..4 {
        sim.now += SignedDuration::from_secs(5);
        sim.reconcile_with(Verdict::Pass, None);
        assert_eq!(sim.status.phase, Phase::Progressing, "a 20 s dip late in the soak rolled back");
        assert!(
            sim.status.message.as_deref().unwrap().contains("soak paused at 8m25s of 600s"),
            "{:?}",
            sim.status.message
        );
    }
    assert_eq!(sim.count("SoakPaused"), 1);
    sim.advance(5);
    sim.reconcile_with(Verdict::Pass, None);
    assert_eq!(sim.count("SoakResumed"), 1);
    assert_eq!(sim.status.step_started_at, Some(began.clone()), "the soak was not restarted");
    // The step advances once 600 s of soak have run: 20 s later than without the dip.
    sim.run_until(Verdict::Pass, 100, |s| s.status.step == Some(1));
    let advanced = sim.now.duration_since(began.0).as_secs();
    assert!((620..=630).contains(&advanced), "advanced {advanced}s after the soak began");
    sim.run_until(Verdict::Pass, 300, |s| s.status.phase == Phase::Succeeded);
    assert!(sim.status.failed.is_none());
}

#[test]
fn a_canary_gone_without_a_break_for_the_deadline_rolls_back_saying_so() {
    let mut sim = Sim::new(10);
    sim.spec.rollout.steps[0].pause = "600s".into();
    sim.run_until(Verdict::Pass, 20, |s| s.status.step_started_at.is_some());
    for _ in 0..80 {
        sim.now += SignedDuration::from_secs(5);
        sim.world.canary.as_mut().unwrap().available = 0;
        sim.reconcile_with(Verdict::Pass, None);
        if sim.status.phase != Phase::Progressing {
            break;
        }
    }
    let reason = &sim.status.rollback.as_ref().expect("rolling back").reason;
    assert!(
        reason.contains("unavailable for 5m5s without a break") && reason.contains("progressDeadline 300s"),
        "{reason}"
    );
}

/// A canary a person scaled, edited or deleted is put back to what the step needs.
#[test]
fn a_canary_changed_by_a_person_is_restored() {
    let mut sim = Sim::new(10);
    sim.run_until(Verdict::Pass, 20, |s| s.status.step_started_at.is_some());
    sim.world.canary.as_mut().unwrap().template_hash = String::new(); // edited
    let d = sim.reconcile_with(Verdict::Pass, None);
    assert!(d.actions.contains(&Action::ApplyCanary { replicas: 1, replace: false }), "{:?}", d.actions);
    sim.world.canary = None; // deleted
    let d = sim.reconcile_with(Verdict::Pass, None);
    assert!(d.actions.contains(&Action::ApplyCanary { replicas: 1, replace: false }), "{:?}", d.actions);
    sim.run_until(Verdict::Pass, 200, |s| s.status.phase == Phase::Succeeded);
}

/// With an HPA the operator never writes the target's replicas: canary pods run beside the
/// HPA's stable, sized from its current replicas, and the budget counts `maxReplicas`.
#[test]
fn with_an_hpa_canary_pods_run_beside_and_the_target_replicas_are_never_written() {
    let mut sim = Sim::with_hpa(10, 4, 20);
    assert_eq!(
        sim.desired().plan.budget.peak_connections,
        (20 + 5 + 20) * 160,
        "maxReplicas, its surge and the canary"
    );
    sim.run_until(Verdict::Pass, 30, |s| s.status.step_started_at.is_some());
    assert_eq!(sim.status.scaling.as_ref().map(|s| s.mode), Some(ScalingMode::Beside));
    assert_eq!((sim.world.target.spec_replicas, sim.world.canary.as_ref().unwrap().spec_replicas), (10, 1));
    let autoscaled = sim.status.conditions.iter().find(|c| c.type_ == "Autoscaled").unwrap();
    assert!(
        autoscaled.status == "True" && autoscaled.message.contains("HorizontalPodAutoscaler auth-api (4..20 replicas)")
    );
    // The HPA scales up mid-step: the canary follows (10% beside 16 is 2).
    sim.external_scale(16);
    sim.run_until(Verdict::Pass, 200, |s| {
        s.status.step == Some(1) || s.world.canary.as_ref().is_some_and(|c| c.spec_replicas == 2)
    });
    sim.run_until(Verdict::Pass, 300, |s| s.status.phase == Phase::Succeeded);
    assert_eq!(sim.count("SoakPaused"), 0, "the canary following the HPA is not an outage");
    assert!(!sim.world.wrote_autoscaled_replicas, "the operator wrote an autoscaled target's replicas");
    assert_eq!((sim.world.target.spec_replicas, sim.world.target.config_hash.as_str()), (16, NEW));
    assert!(sim.world.canary.is_none());
    assert!(
        sim.splits_seen().contains(&(16, 16)),
        "50% beside: as many canary as stable pods: {:?}",
        sim.splits_seen()
    );
}

/// Without an HPA, someone scaling the target mid-rollout takes the replicas over: the operator
/// does not scale it back, and the canary runs beside what they set.
#[test]
fn a_person_scaling_the_target_mid_rollout_takes_the_replicas_over() {
    let mut sim = Sim::new(10);
    sim.run_until(Verdict::Pass, 30, |s| s.status.step_started_at.is_some());
    assert_eq!(sim.world.target.spec_replicas, 9);
    sim.advance(5);
    sim.external_scale(20);
    sim.reconcile_with(Verdict::Pass, None);
    assert_eq!(sim.count("ReplicasHandedOver"), 1);
    assert_eq!(sim.status.scaling.as_ref().map(|s| s.mode), Some(ScalingMode::Beside));
    sim.run_until(Verdict::Pass, 300, |s| s.status.phase == Phase::Succeeded);
    assert_eq!(sim.world.target.spec_replicas, 20, "the person's replicas stand");
}

/// A GitOps tool that owns `replicas: 10` puts it back after the operator scaled the stable to 9:
/// the replicas are handed over, not scaled down again on every self-heal.
#[test]
fn a_gitops_reapply_of_the_fleet_size_hands_the_replicas_over() {
    let mut sim = Sim::new(10);
    sim.run_until(Verdict::Pass, 30, |s| s.status.step_started_at.is_some());
    assert_eq!(sim.world.target.spec_replicas, 9);
    sim.external_scale(10);
    let mut scaled = 0;
    for _ in 0..100 {
        let d = sim.reconcile_with(Verdict::Pass, None);
        scaled += d.actions.iter().filter(|a| matches!(a, Action::ScaleTarget { .. })).count();
        if sim.status.phase == Phase::Succeeded {
            break;
        }
        sim.advance(5);
    }
    assert_eq!(scaled, 0, "scaled the replicas GitOps put back");
    assert_eq!((sim.status.phase, sim.world.target.spec_replicas), (Phase::Succeeded, 10));
    assert_eq!(sim.count("ReplicasHandedOver"), 1);
}

/// A tier's replicas are applied once per spec generation, never re-enforced against others.
#[test]
fn tier_replicas_are_applied_once_per_generation() {
    let mut sim = Sim::new(10);
    sim.world.target.config_hash = NEW.into();
    sim.world.target.spec_replicas = 6;
    let d = sim.reconcile_with(Verdict::Pass, None);
    assert_eq!(d.actions.iter().filter(|a| matches!(a, Action::ScaleTarget { replicas: 10 })).count(), 1);
    sim.advance(5);
    sim.external_scale(14);
    for _ in 0..10 {
        sim.advance(5);
        let d = sim.reconcile_with(Verdict::Pass, None);
        assert!(d.actions.is_empty(), "re-enforced the tier's replicas: {:?}", d.actions);
    }
    sim.generation += 1;
    let d = sim.reconcile_with(Verdict::Pass, None);
    assert!(d.actions.contains(&Action::ScaleTarget { replicas: 10 }), "a new generation applies it again");
}

/// Argo CD self-heal puts Git's pool env back after every promotion: the operator rolls out
/// again once for the generation, then waits in Overridden naming the field manager.
#[test]
fn gitops_reverts_start_at_most_one_new_rollout() {
    let mut sim = Sim::new(10);
    sim.run_until(Verdict::Pass, 200, |s| s.status.phase == Phase::Succeeded);
    sim.gitops_revert();
    sim.run_until(Verdict::Pass, 300, |s| s.status.phase == Phase::Succeeded);
    assert_eq!(sim.count("RolloutStarted"), 2);
    assert!(sim.events.iter().any(|(r, m)| *r == "EnvOverridden" && m.contains("argocd-controller")));
    sim.gitops_revert();
    for _ in 0..50 {
        sim.advance(5);
        let d = sim.reconcile_with(Verdict::Pass, None);
        assert!(d.actions.iter().all(|a| matches!(a, Action::Event { .. })), "{:?}", d.actions);
    }
    assert_eq!(sim.count("RolloutStarted"), 2, "a second revert started another rollout");
    assert_eq!(sim.status.phase, Phase::Overridden);
    let msg = sim.status.message.clone().unwrap();
    assert!(msg.contains("field manager argocd-controller") && msg.contains("WORKERS"), "{msg}");
    let owned = sim.status.conditions.iter().find(|c| c.type_ == "EnvOwned").unwrap();
    assert_eq!((owned.status.as_str(), owned.reason.as_str()), ("False", "Overridden"));
    // A person lifts it.
    sim.reconcile_with(Verdict::Pass, Some(ManualAction::Retry));
    sim.run_until(Verdict::Pass, 300, |s| s.status.phase == Phase::Succeeded);
    assert_eq!(sim.count("RolloutStarted"), 3);
}

/// A revert that lands while the promotion is rolling the target out is not written over again.
#[test]
fn a_revert_during_the_promotion_is_not_fought() {
    let mut sim = Sim::new(10);
    sim.run_until(Verdict::Pass, 200, |s| s.status.phase == Phase::Promoting && s.world.target.config_hash == NEW);
    sim.gitops_revert();
    let mut promotes = 0;
    for _ in 0..40 {
        sim.advance(5);
        let d = sim.reconcile_with(Verdict::Pass, None);
        promotes += d.actions.iter().filter(|a| matches!(a, Action::PromoteTarget { .. })).count();
    }
    assert_eq!(promotes, 0, "wrote the pool over the revert");
    assert_eq!(sim.status.phase, Phase::Overridden);
    assert!(sim.world.canary.is_none());
    assert_eq!(sim.world.target.spec_replicas, 10);
    assert_eq!(sim.status.history[0].outcome, Outcome::Overridden);
}

#[test]
fn a_second_policy_touches_nothing_and_says_who_holds_the_target() {
    let mut sim = Sim::new(10);
    sim.world.second_policy = true;
    for _ in 0..10 {
        let d = sim.reconcile_with(Verdict::Pass, None);
        assert!(d.actions.iter().all(|a| matches!(a, Action::Event { .. })), "{:?}", d.actions);
        sim.advance(5);
    }
    assert_eq!(sim.status.phase, Phase::Conflict);
    assert!(sim.status.message.as_deref().unwrap().contains("saas/first"));
    assert_eq!(sim.count("Conflict"), 1, "one Event, not one per reconcile");
    sim.world.second_policy = false;
    sim.run_until(Verdict::Pass, 200, |s| s.status.phase == Phase::Succeeded);
}

/// A missing target is the cause to name, even when the canary's name belongs to someone else.
#[test]
fn a_missing_target_is_invalid_even_beside_a_foreign_canary() {
    let mut sim = Sim::new(10);
    sim.world.canary = Some(CanaryView {
        spec_replicas: 1,
        available: 1,
        config_hash: OLD.into(),
        template_hash: String::new(),
        foreign_owner: Some("RedisPoolPolicy other".into()),
        edited: false,
    });
    sim.world.target_exists = false;
    let d = sim.reconcile_with(Verdict::Pass, None);
    assert_eq!(d.status.phase, Phase::Invalid, "{:?}", d.status.message);
    assert!(d.status.message.as_deref().unwrap_or_default().contains("not found"), "{:?}", d.status.message);
    assert!(!d.actions.contains(&Action::DeleteCanary), "a canary that is not ours is never deleted");
}

#[test]
fn a_canary_owned_by_someone_else_is_never_touched() {
    let mut sim = Sim::new(10);
    sim.world.canary = Some(CanaryView {
        spec_replicas: 3,
        available: 3,
        config_hash: OLD.into(),
        template_hash: String::new(),
        foreign_owner: Some("RedisPoolPolicy other".into()),
        edited: false,
    });
    let d = sim.reconcile_with(Verdict::Pass, None);
    assert!(d.actions.iter().all(|a| matches!(a, Action::Event { .. })), "{:?}", d.actions);
    assert_eq!(sim.status.phase, Phase::Conflict);
    assert!(sim.status.message.as_deref().unwrap().contains("RedisPoolPolicy other"));
}

/// Deleting a policy mid-rollout gives the stable its replicas back before the finalizer goes.
#[test]
fn deleting_mid_rollout_restores_the_stable_then_releases() {
    let mut sim = Sim::new(10);
    sim.run_until(Verdict::Pass, 100, |s| s.status.step == Some(1) && s.status.step_started_at.is_some());
    assert_eq!(sim.world.target.spec_replicas, 5);
    let d = sim.reconcile_full(Verdict::Pass, None, true);
    assert!(!d.released && d.actions.contains(&Action::ScaleTarget { replicas: 10 }), "{:?}", d.actions);
    sim.advance(5);
    let d = sim.reconcile_full(Verdict::Pass, None, true);
    assert!(d.released && d.actions.contains(&Action::DeleteCanary), "{:?}", d.actions);
    assert_eq!(sim.world.target.config_hash, OLD, "the unfinished pool is not written");
    // An idle policy goes at once.
    let mut idle = Sim::new(10);
    idle.world.target.config_hash = NEW.into();
    assert!(idle.reconcile_full(Verdict::Pass, None, true).released);
}

/// A pool env var someone sets from a ConfigMap mid-rollout: the stable is restored first, then
/// the policy says what is wrong (and never writes beside the valueFrom).
#[test]
fn a_target_that_becomes_unusable_mid_rollout_is_restored_then_invalid() {
    let mut sim = Sim::new(10);
    sim.run_until(Verdict::Pass, 100, |s| s.status.step == Some(1) && s.status.step_started_at.is_some());
    sim.world.target.unusable = Some(Unusable::ValueFrom { container: "api".into(), vars: vec!["WORKERS".into()] });
    sim.world.target.config_hash = String::new();
    sim.run_until(Verdict::Pass, 20, |s| s.status.phase == Phase::Invalid);
    assert_eq!(sim.world.target.spec_replicas, 10);
    assert!(sim.world.canary.is_none());
    assert!(sim.status.message.as_deref().unwrap().contains("valueFrom"));
    for _ in 0..5 {
        sim.advance(5);
        let d = sim.reconcile_with(Verdict::Pass, None);
        assert!(d.actions.is_empty(), "{:?}", d.actions);
    }
}

/// A target replaced in place (same name, new object, as Argo CD's `Replace=true` does) restarts
/// the rollout on the new object instead of carrying on with the old one's numbers.
#[test]
fn a_target_replaced_mid_rollout_restarts_the_rollout() {
    let mut sim = Sim::new(10);
    sim.run_until(Verdict::Pass, 100, |s| s.status.step == Some(1) && s.status.step_started_at.is_some());
    sim.world.target = World::new(10).target;
    sim.world.target.uid = "uid-2".into();
    sim.run_until(Verdict::Pass, 50, |s| s.status.history.first().is_some_and(|h| h.outcome == Outcome::Restarted));
    assert!(sim.status.history[0].reason.contains("replaced"), "{:?}", sim.status.history[0]);
    assert_eq!(sim.status.target_uid.as_deref(), Some("uid-2"));
    sim.run_until(Verdict::Pass, 300, |s| s.status.phase == Phase::Succeeded);
    assert_eq!(sim.world.target.spec_replicas, 10);
}

/// Time when no operator was running never counts against a deadline.
#[test]
fn operator_downtime_does_not_count_against_the_deadline() {
    let mut sim = Sim::new(10);
    sim.run_until(Verdict::Hold, 100, |s| s.status.step_started_at.is_some());
    // The operator is down for an hour; the soak (60 s) completed meanwhile.
    sim.now += SignedDuration::from_hours(1);
    sim.awake_since = sim.now;
    sim.world.tick();
    for _ in 0..50 {
        sim.reconcile_with(Verdict::Hold, None);
        assert_eq!(sim.status.phase, Phase::Progressing, "the hour of downtime counted: {:?}", sim.status.message);
        sim.advance(5);
    }
    sim.run_until(Verdict::Hold, 50, |s| s.status.phase == Phase::RolledBack);
    let reason = sim.status.failed.as_ref().unwrap().reason.clone();
    assert!(reason.contains("no passing analysis within progressDeadline"), "{reason}");
}

/// A promotion whose target does not roll out within the deadline becomes Degraded, keeps the
/// canary serving, and completes when the target does.
#[test]
fn a_stalled_promotion_is_degraded_until_the_target_rolls_out() {
    let mut sim = Sim::new(10);
    sim.run_until(Verdict::Pass, 200, |s| s.status.phase == Phase::Promoting);
    for _ in 0..70 {
        sim.now += SignedDuration::from_secs(5);
        sim.world.target.rolled_out = false;
        sim.reconcile_with(Verdict::Pass, None);
    }
    assert_eq!(sim.status.phase, Phase::Degraded);
    assert!(sim.world.canary.is_some(), "the canary keeps serving");
    assert!(sim.status.message.as_deref().unwrap().contains("within progressDeadline"));
    assert_eq!(sim.count("PromotionStalled"), 1);
    sim.run_until(Verdict::Pass, 10, |s| s.status.phase == Phase::Succeeded);
    assert!(sim.world.canary.is_none());
}

// ---- properties over random event sequences --------------------------------------------------

#[derive(Clone, Debug)]
enum Event {
    /// Time passes and the Deployment controller catches up.
    Tick(i64),
    /// Time passes but pods are slow.
    Wait(i64),
    Reconcile(Verdict),
    Manual(ManualAction),
    /// The operator crashes after acting but before writing status, and restarts.
    CrashAfterActing(Verdict),
    TemplateChange,
    /// A canary pod is evicted (it comes back with the next tick).
    LoseCanaryPod,
    /// `kubectl scale`, or the HPA when there is one.
    ExternalScale(i32),
    /// A person edits or deletes the canary.
    EditCanary,
    DeleteCanary,
    /// A GitOps tool puts the old pool env back.
    GitopsRevert,
    /// Another policy claims the target, or lets go.
    SecondPolicy(bool),
    /// A cluster-wide freeze window opens (for a year), or is removed.
    Freeze(bool),
    /// The target Deployment is deleted, or comes back.
    TargetGone(bool),
}

fn arb_event() -> impl Strategy<Value = Event> {
    let verdict = prop_oneof![
        6 => Just(Verdict::Pass),
        2 => Just(Verdict::Hold),
        2 => Just(Verdict::Fail),
        1 => Just(Verdict::NoData),
        2 => Just(Verdict::Inconclusive)
    ];
    let manual = prop_oneof![
        Just(ManualAction::Promote),
        Just(ManualAction::Abort),
        Just(ManualAction::Retry),
        Just(ManualAction::Pause),
        Just(ManualAction::Resume),
        Just(ManualAction::Approve)
    ];
    prop_oneof![
        6 => (1i64..40).prop_map(Event::Tick),
        1 => (1i64..40).prop_map(Event::Wait),
        10 => verdict.clone().prop_map(Event::Reconcile),
        1 => manual.prop_map(Event::Manual),
        1 => verdict.prop_map(Event::CrashAfterActing),
        1 => Just(Event::TemplateChange),
        2 => Just(Event::LoseCanaryPod),
        1 => (1i32..30).prop_map(Event::ExternalScale),
        1 => Just(Event::EditCanary),
        1 => Just(Event::DeleteCanary),
        1 => Just(Event::GitopsRevert),
        1 => any::<bool>().prop_map(Event::SecondPolicy),
        1 => any::<bool>().prop_map(Event::TargetGone),
        1 => any::<bool>().prop_map(Event::Freeze),
    ]
}

/// Checks the invariants that must hold at every observed instant.
fn check_instant(sim: &Sim, prev: &RedisPoolPolicyStatus) -> Result<(), TestCaseError> {
    let w = &sim.world;
    let s = &sim.status;
    // Capacity: after every reconcile, requested pods are at least what whoever sized the target
    // asked for (a person deleting the canary breaks it until the operator's next look).
    if w.target_exists && sim.settled && !sim.hand_scaled && !sim.untracked_canary_deleted {
        prop_assert!(w.pods() >= w.total, "pods {} below total {}: {:?}", w.pods(), w.total, w);
    }
    // Budget: during a rollout, every pod that can coexist is within the plan's peak.
    let desired = sim.desired();
    let per_pod = desired.plan.pool.connections_per_pod;
    if sim.settled && !sim.status_is_stale && s.phase.is_active() && w.target_exists {
        prop_assert!(
            i64::from(w.pods()) * per_pod <= desired.plan.budget.peak_connections,
            "{} pods exceed the planned peak {}",
            w.pods(),
            desired.plan.budget.peak_connections
        );
    }
    // Canary + stable desired replicas equal the total at a settled step of a split rollout.
    if let (Some(r), true) = (&s.replicas, s.step_started_at.is_some())
        && matches!(s.phase, Phase::Progressing | Phase::Paused)
        && s.scaling.as_ref().is_some_and(|m| m.mode == ScalingMode::Split)
        && !sim.status_is_stale
    {
        let sp = split(r.total, s.weight.unwrap());
        prop_assert_eq!((r.canary, r.stable), (sp.canary, sp.stable));
    }
    // No step is skipped.
    let same_rollout = prev.canary == s.canary && prev.history.first() == s.history.first();
    if let (Some(a), Some(b)) = (prev.step, s.step)
        && same_rollout
    {
        prop_assert!(b == a || b == a + 1, "step went from {} to {}", a, b);
    }
    if prev.step.is_none() && s.step.is_some() {
        prop_assert_eq!(s.step, Some(0), "a rollout starts at step 0");
    }
    // A gated step begins only once approved, for the configuration rolling out.
    if let (Some(0), Some(1)) = (prev.step, s.step)
        && same_rollout
        && sim.spec.rollout.approvals.iter().any(|a| a.before == "step-2")
    {
        let hash = s.canary.as_ref().map(|c| c.hash.clone());
        let approved = s.approvals.iter().any(|a| a.gate == "step-2" && Some(&a.hash) == hash.as_ref());
        prop_assert!(approved, "step 2 began without its approval: {:?}", s.approvals);
    }
    // People read one 1-based step everywhere: `progress` is `step + 1` of the step count.
    let steps = sim.spec.rollout.steps.len().max(1);
    prop_assert_eq!(s.progress.clone(), s.step.map(|i| format!("{}/{steps}", i.min(steps as i32 - 1) + 1)));
    // Nothing is promoted without a Pass (or a person's promote): checked where the new
    // configuration is first written into the target.
    prop_assert!(!sim.unjustified_promotion, "the target got the new pool without a pass: {:?}", s.analysis);
    // Never fight: no writes to an autoscaled target's replicas, nothing done while another
    // policy holds the target, at most one automatic re-rollout after overrides.
    prop_assert!(!w.wrote_autoscaled_replicas, "wrote the replicas of a target an HPA scales");
    prop_assert!(!sim.acted_without_holding, "acted while another policy held the target");
    prop_assert!(sim.moved_while_frozen.is_none(), "moved inside a freeze window: {:?}", sim.moved_while_frozen);
    // The finalizer is held whenever deleting the policy would have something to give back.
    prop_assert!(sim.rested_holding.is_none(), "no finalizer while {:?}", sim.rested_holding);
    prop_assert!(sim.rerollouts <= 1, "{} automatic re-rollouts after promotions", sim.rerollouts);
    Ok(())
}

impl Sim {
    fn apply_event(&mut self, e: &Event) {
        self.settled = false;
        match e {
            Event::Tick(s) => self.advance(*s),
            Event::Wait(s) => self.now += SignedDuration::from_secs(*s),
            Event::Reconcile(v) => {
                self.reconcile_with(*v, None);
            }
            Event::Manual(a) => {
                self.reconcile_with(Verdict::Hold, Some(*a));
            }
            Event::CrashAfterActing(v) => {
                let saved = self.status.clone();
                self.reconcile_with(*v, None);
                // A lost status forgets a fleet re-based in that reconcile (a restart after someone
                // scaled the target): the rollout goes on with the fleet the saved status keeps.
                if let (true, Some(r)) = (saved.phase.is_active(), &saved.replicas)
                    && saved.scaling.as_ref().is_some_and(|s| s.mode == ScalingMode::Split)
                {
                    self.world.total = self.world.total.min(r.total);
                }
                self.status = saved;
                self.status_is_stale = true;
                self.awake_since = self.now;
            }
            Event::TemplateChange => {
                let n = self.world.target.template_hash.len();
                self.world.target.template_hash = format!("tpl-{n}");
            }
            Event::LoseCanaryPod => {
                if let Some(c) = &mut self.world.canary {
                    c.available = (c.available - 1).max(0);
                }
            }
            Event::ExternalScale(n) if self.world.target_exists => self.external_scale(*n),
            Event::ExternalScale(_) => {}
            Event::EditCanary => {
                if let Some(c) = &mut self.world.canary {
                    c.template_hash = String::new();
                }
            }
            Event::DeleteCanary => {
                self.untracked_canary_deleted |= self.status_is_stale && self.world.canary.is_some();
                self.world.canary = None;
            }
            Event::GitopsRevert => {
                if self.world.target.config_hash == NEW {
                    self.gitops_revert();
                }
            }
            Event::SecondPolicy(on) => self.world.second_policy = *on,
            Event::TargetGone(gone) => self.target_gone(*gone),
            Event::Freeze(on) => {
                let year = crate::core::api::FreezeWindow {
                    name: "year".into(),
                    schedule: None,
                    duration: None,
                    time_zone: None,
                    start: Some(self.now.to_string()),
                    end: Some((self.now + SignedDuration::from_hours(24 * 365)).to_string()),
                };
                self.cluster_windows = match on {
                    true => crate::core::freeze::read_all(&[year], "freezeWindows", "cluster/").unwrap(),
                    false => vec![],
                };
            }
        }
    }

    /// The target Deployment is deleted, or created anew (with the old pool, at the fleet size).
    fn target_gone(&mut self, gone: bool) {
        if !gone && !self.world.target_exists {
            // A new object (whether or not the operator saw the old one go): nothing was reverted
            // on it, and it runs what its creator gave it.
            (self.reverted, self.rerollouts) = (false, 0);
            let hpa = self.world.target.hpa.clone();
            let uid = format!("{}+", self.world.target.uid);
            self.world.target = World::new(self.world.total).target;
            self.world.target.hpa = hpa;
            self.world.target.uid = uid;
        }
        self.world.target_exists = !gone;
    }

    /// Other actors step back, and the world settles.
    fn calm(&mut self) {
        self.world.second_policy = false;
        self.target_gone(false);
        // The freeze window ends.
        self.cluster_windows.clear();
    }
}

fn drain(sim: &mut Sim) -> Result<(), TestCaseError> {
    sim.calm();
    for _ in 0..400 {
        let prev = sim.status.clone();
        sim.advance(5);
        // A paused rollout waits for a person, who eventually resumes it (and approves).
        let action = match (&sim.status.phase, &sim.status.pending_approval) {
            (Phase::Paused, _) => Some(ManualAction::Resume),
            (_, Some(_)) => Some(ManualAction::Approve),
            _ => None,
        };
        let d = sim.reconcile_with(Verdict::Pass, action);
        check_instant(sim, &prev)?;
        let settled =
            matches!(sim.status.phase, Phase::Succeeded | Phase::RolledBack | Phase::Idle | Phase::Overridden);
        if settled && sim.world.canary.is_none() && d.actions.is_empty() {
            break;
        }
    }
    let s = &sim.status;
    prop_assert!(
        matches!(s.phase, Phase::Succeeded | Phase::RolledBack | Phase::Idle | Phase::Overridden),
        "stuck in {:?}: {:?}",
        s.phase,
        s.message
    );
    prop_assert!(sim.world.canary.is_none(), "canary left behind");
    match s.phase {
        Phase::Succeeded => prop_assert_eq!(&sim.world.target.config_hash, NEW),
        Phase::RolledBack => prop_assert_eq!(&sim.world.target.config_hash, OLD),
        _ => {}
    }
    // Never mixed: the target runs one configuration or the other, and history agrees.
    if let Some(h) = s.history.first()
        && matches!(s.phase, Phase::Succeeded | Phase::RolledBack)
    {
        let expected = if s.phase == Phase::Succeeded { Outcome::Succeeded } else { Outcome::RolledBack };
        prop_assert_eq!(h.outcome, expected);
    }
    Ok(())
}

proptest! {
    // PROPTEST_CASES raises the count for a deeper search.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000),
        ..ProptestConfig::default()
    })]

    #[test]
    fn invariants_hold_and_every_rollout_ends(total in 1i32..25, hpa in any::<bool>(), gated in any::<bool>(), events in prop::collection::vec(arb_event(), 1..120)) {
        let mut sim = if hpa { Sim::with_hpa(total, 1, 30) } else { Sim::new(total) };
        if gated {
            // A person approves step 2 and the promotion.
            let person = |before: &str| crate::core::api::ApprovalSpec {
                before: before.into(),
                by: crate::core::api::Approver::Person,
                webhook: None,
            };
            sim.spec.rollout.approvals = vec![person("step-2"), person("promotion")];
        }
        for e in &events {
            let prev = sim.status.clone();
            sim.apply_event(e);
            check_instant(&sim, &prev)?;
        }
        drain(&mut sim)?;
    }

    #[test]
    fn deciding_again_comes_to_rest(total in 1i32..25, hpa in any::<bool>(), events in prop::collection::vec(arb_event(), 1..80), verdict in prop_oneof![Just(Verdict::Pass), Just(Verdict::Fail), Just(Verdict::Hold), Just(Verdict::Inconclusive)]) {
        let mut sim = if hpa { Sim::with_hpa(total, 1, 30) } else { Sim::new(total) };
        for e in &events {
            sim.apply_event(e);
        }
        let observed = sim.world.observe();
        let desired = sim.desired();
        let run = analysis_due(&sim.spec, &sim.status, sim.now).map(|due| analysis(due, verdict));
        // The shell plans again from the status it reads back; a decision that changes who sizes
        // the target, or ends a rollout, changes the plan too. On a world that stands still the
        // decisions come to rest within a few rounds: no loop.
        let mut first = decide(&sim.input(&desired, &observed, run.as_ref(), None, false));
        for _ in 0..4 {
            if first.status == sim.status {
                break;
            }
            sim.status = first.status.clone();
            let desired = sim.desired();
            first = decide(&sim.input(&desired, &observed, run.as_ref(), None, false));
        }
        prop_assert_eq!(&first.status, &sim.status, "no rest within a few rounds");
        // At rest, deciding again on the same status gives the same decision, without new Events.
        let desired = sim.desired();
        let second = decide(&sim.input(&desired, &observed, run.as_ref(), None, false));
        let not_events = |d: &Decision| d.actions.iter().filter(|a| !matches!(a, Action::Event { .. })).cloned().collect::<Vec<_>>();
        prop_assert_eq!(&second.status, &first.status);
        prop_assert_eq!(not_events(&second), not_events(&first));
        prop_assert!(second.actions.iter().all(|a| !matches!(a, Action::Event { .. })), "events repeat: {:?}", second.actions);
    }

    /// An environment at fault, however long, after whatever came before: no rollback and no
    /// promotion while it lasts.
    #[test]
    fn an_environment_wide_fault_never_rolls_back_or_promotes(
        total in 2i32..25,
        events in prop::collection::vec(arb_event(), 1..60),
        ticks in prop::collection::vec(1i64..40, 1..80),
    ) {
        let mut sim = Sim::new(total);
        for e in &events {
            sim.apply_event(e);
        }
        sim.calm();
        let before = (sim.status.phase, sim.world.target.config_hash.clone(), sim.count("RollingBack"));
        for t in ticks {
            sim.advance(t);
            let d = sim.reconcile_with(Verdict::Inconclusive, None);
            let analysing = matches!(sim.status.phase, Phase::Progressing | Phase::Paused)
                && sim.status.analysis.as_ref().is_some_and(|a| a.verdict == Verdict::Inconclusive);
            if analysing {
                prop_assert!(
                    !d.actions.iter().any(|a| matches!(a, Action::PromoteTarget { .. })),
                    "promoted in the weather: {:?}", d.actions
                );
                prop_assert_eq!(sim.count("RollingBack"), before.2, "rolled back in the weather: {:?}", sim.status.message);
            }
        }
        // A rollout the weather met is still in flight, or was never started.
        if before.0 == Phase::Progressing && sim.status.analysis.as_ref().is_some_and(|a| a.verdict == Verdict::Inconclusive) {
            prop_assert!(sim.status.phase.is_active(), "{:?}: {:?}", sim.status.phase, sim.status.message);
            prop_assert_eq!(&sim.world.target.config_hash, &before.1);
        }
    }

    /// A fault the canary alone shows rolls back within failureLimit + 1 intervals of its
    /// first failing analysis, whatever weather came before it.
    #[test]
    fn a_canary_only_fault_rolls_back_within_failure_limit_intervals(
        total in 2i32..25,
        before in prop::collection::vec(prop_oneof![Just(Verdict::Pass), Just(Verdict::Inconclusive), Just(Verdict::Hold)], 0..12),
    ) {
        let mut sim = Sim::new(total);
        sim.run_until(Verdict::Pass, 100, |s| s.status.soak.as_ref().is_some_and(|s| s.running_since.is_some()));
        for v in before {
            sim.advance(10);
            sim.reconcile_with(v, None);
        }
        prop_assume!(sim.status.phase == Phase::Progressing);
        let interval = 10;
        let limit = i64::from(sim.spec.rollout.analysis.failure_limit);
        let start = sim.now;
        for _ in 0..200 {
            sim.advance(5);
            sim.reconcile_with(Verdict::Fail, None);
            if matches!(sim.status.phase, Phase::RollingBack | Phase::RolledBack) {
                break;
            }
        }
        prop_assert!(matches!(sim.status.phase, Phase::RollingBack | Phase::RolledBack), "{:?}", sim.status.message);
        let took = sim.now.duration_since(start).as_secs();
        prop_assert!(took <= (limit + 1) * interval, "rolled back {}s after the fault began", took);
    }

    /// Whatever happened before, a policy being deleted gives its target back: the stable keeps
    /// its replicas, no canary stays, and the finalizer is released.
    #[test]
    fn deletion_always_gives_the_target_back(total in 1i32..25, hpa in any::<bool>(), events in prop::collection::vec(arb_event(), 1..80)) {
        let mut sim = if hpa { Sim::with_hpa(total, 1, 30) } else { Sim::new(total) };
        for e in &events {
            sim.apply_event(e);
        }
        sim.calm();
        let mut released = false;
        for _ in 0..200 {
            let prev = sim.status.clone();
            sim.advance(5);
            released = sim.reconcile_full(Verdict::Pass, None, true).released;
            check_instant(&sim, &prev)?;
            if released {
                break;
            }
        }
        prop_assert!(released, "never released; stuck in {:?}: {:?}", sim.status.phase, sim.status.message);
        prop_assert!(sim.world.canary.is_none(), "canary left behind");
        prop_assert!(sim.hand_scaled || sim.world.pods() >= sim.world.total);
    }
}

// ---- staging proves it first ---------------------------------------------------------------

mod chain {
    use super::*;
    use crate::core::api::{PolicyRef, Requirement};
    use crate::core::api::{RolloutVerdict, WorkerPool};
    use crate::core::promotion::{Clearance, Found, Required, Unreadable, check};

    /// A production policy that requires staging's verdict, soaked `soak`.
    fn production(soak: &str) -> Sim {
        let mut sim = Sim::new(10);
        sim.spec.promotion.requires = vec![Requirement {
            environment: "staging".into(),
            soak: soak.into(),
            from: PolicyRef { namespace: Some("staging".into()), name: "auth-api".into(), kubeconfig_secret_ref: None },
        }];
        sim.staging(vec![]);
        sim
    }

    fn pool(sim: &Sim) -> WorkerPool {
        WorkerPool::new(&sim.spec.pool, sim.spec.tiers[0].connections_per_worker)
    }

    fn staging_verdict(p: &WorkerPool, result: VerdictResult, soaked_secs: i64) -> RolloutVerdict {
        RolloutVerdict {
            hash: "stg0000000".into(),
            pool_hash: p.hash(),
            pool: p.clone(),
            environment: "staging".into(),
            result,
            finished_at: Time("2025-12-31T00:00:00Z".parse().unwrap()),
            soaked_seconds: soaked_secs,
            clean_at: None,
            analyses: 3,
            reason: (result != VerdictResult::Succeeded).then(|| "poolUtilization 91% is above 80".into()),
            watch_ended: None,
        }
    }

    impl Sim {
        fn staging(&mut self, verdicts: Vec<RolloutVerdict>) {
            self.world.required = Some(vec![Required {
                from: "staging/auth-api".into(),
                environment: "staging".into(),
                soak: crate::core::durations::parse_duration(&self.spec.promotion.requires[0].soak).unwrap(),
                found: Ok(Some(Found { verdicts, watches: SignedDuration::from_hours(24) })),
            }]);
        }
        fn staging_unreadable(&mut self) {
            if let Some(r) = self.world.required.as_mut() {
                r[0].found = Err(Unreadable::Timeout(5));
            }
        }
        fn gate(&self) -> Clearance {
            check(&pool(self), self.world.required.as_deref().unwrap_or(&[]))
        }
    }

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn production_waits_for_stagings_soak_then_starts_by_itself() {
        let mut sim = production("1h");
        for _ in 0..3 {
            let d = sim.reconcile_with(Verdict::Pass, None);
            assert!(d.actions.iter().all(|a| matches!(a, Action::Event { .. })), "{:?}", d.actions);
            sim.advance(30);
        }
        assert_eq!(sim.status.phase, Phase::Waiting);
        assert_eq!(sim.count("WaitingForVerdict"), 1, "one Event, not one per look");
        assert_eq!(sim.status.waiting_for.as_deref(), Some("staging/auth-api no verdict"));
        let p = pool(&sim);
        sim.staging(vec![staging_verdict(&p, VerdictResult::Succeeded, 1800)]);
        sim.reconcile_with(Verdict::Pass, None);
        assert_eq!(sim.status.waiting_for.as_deref(), Some("staging/auth-api 30m/1h"));
        assert!(
            sim.status.message.as_deref().unwrap().contains("soaked 30m of 1h in staging"),
            "{:?}",
            sim.status.message
        );
        assert!(sim.world.canary.is_none());
        sim.staging(vec![staging_verdict(&p, VerdictResult::Succeeded, 3600)]);
        sim.run_until(Verdict::Pass, 200, |s| s.status.phase == Phase::Succeeded);
        let started = sim.events.iter().find(|(r, _)| *r == "RolloutStarted").unwrap();
        assert!(started.1.contains("staging/auth-api proved worker pool"), "{}", started.1);
        assert_eq!(sim.status.waiting_for, None);
    }

    #[test]
    fn a_rolled_back_staging_blocks_production() {
        let mut sim = production("1h");
        let p = pool(&sim);
        sim.staging(vec![staging_verdict(&p, VerdictResult::RolledBack, 0)]);
        let d = sim.reconcile_with(Verdict::Pass, None);
        assert!(d.actions.iter().all(|a| matches!(a, Action::Event { .. })));
        assert_eq!(sim.status.phase, Phase::Blocked);
        assert!(sim.status.message.as_deref().unwrap().contains("poolUtilization 91%"), "{:?}", sim.status.message);
        assert_eq!(sim.reasons(), vec!["VerdictRefused"]);
    }

    #[test]
    fn a_verdict_on_stagings_other_pool_never_counts() {
        let mut sim = production("1h");
        let mut other = pool(&sim);
        other.connections_per_worker = 30;
        sim.staging(vec![staging_verdict(&other, VerdictResult::Succeeded, 86400)]);
        sim.reconcile_with(Verdict::Pass, None);
        assert_eq!(sim.status.phase, Phase::Waiting);
        let msg = sim.status.message.clone().unwrap();
        assert!(msg.contains("connectionsPerWorker 30 there, 40 here"), "{msg}");
    }

    #[test]
    fn mid_rollout_a_failed_verdict_rolls_back_and_an_unreadable_one_holds() {
        let mut sim = production("1h");
        let p = pool(&sim);
        sim.staging(vec![staging_verdict(&p, VerdictResult::Succeeded, 3600)]);
        sim.run_until(Verdict::Pass, 100, |s| s.status.step == Some(1));
        // Staging cannot be read: the step soaks and passes but does not advance, for longer
        // than the progress deadline, and nothing rolls back.
        sim.staging_unreadable();
        for _ in 0..100 {
            sim.advance(5);
            sim.reconcile_with(Verdict::Pass, None);
        }
        assert_eq!((sim.status.phase, sim.status.step), (Phase::Progressing, Some(1)));
        assert!(
            sim.status.message.as_deref().unwrap().contains("holding: waiting for staging/auth-api"),
            "{:?}",
            sim.status.message
        );
        // Staging's verdict failed since: production rolls back, saying why.
        sim.staging(vec![staging_verdict(&p, VerdictResult::Failed, 3600)]);
        sim.run_until(Verdict::Pass, 100, |s| s.status.phase == Phase::RolledBack);
        assert!(
            sim.status.history[0].reason.contains("a required verdict no longer holds"),
            "{:?}",
            sim.status.history[0]
        );
        assert_eq!(sim.world.target.config_hash, OLD);
    }

    /// The time a step was held for an unreadable verdict does not count against its deadline
    /// once the verdict is back and an analysis holds.
    #[test]
    fn time_held_for_a_verdict_is_not_the_canarys_deadline() {
        let mut sim = production("1h");
        let p = pool(&sim);
        sim.staging(vec![staging_verdict(&p, VerdictResult::Succeeded, 3600)]);
        sim.run_until(Verdict::Pass, 100, |s| s.status.step == Some(1));
        sim.staging_unreadable();
        for _ in 0..200 {
            sim.advance(5);
            sim.reconcile_with(Verdict::Pass, None);
        }
        sim.staging(vec![staging_verdict(&p, VerdictResult::Succeeded, 3600)]);
        for _ in 0..3 {
            sim.advance(5);
            sim.reconcile_with(Verdict::Hold, None);
        }
        assert_eq!((sim.status.phase, sim.status.step), (Phase::Progressing, Some(1)), "{:?}", sim.status.message);
        sim.run_until(Verdict::Pass, 200, |s| s.status.phase == Phase::Succeeded);
    }

    /// How staging's verdict can change between two looks.
    #[derive(Clone, Debug)]
    enum Staging {
        Nothing,
        OtherPool,
        Soaked(i64),
        RolledBack,
        Failed,
        Unreadable,
    }

    fn arb_staging() -> impl Strategy<Value = Staging> {
        prop_oneof![
            Just(Staging::Nothing),
            Just(Staging::OtherPool),
            (0i64..7200).prop_map(Staging::Soaked),
            Just(Staging::RolledBack),
            Just(Staging::Failed),
            Just(Staging::Unreadable),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(500),
            ..ProptestConfig::default()
        })]

        /// Whatever staging's verdict does, and whatever else happens, no production rollout
        /// starts and no step begins unless the verdict gate is clear at that instant.
        #[test]
        fn no_production_step_starts_without_a_matching_verdict(
            events in prop::collection::vec((arb_event(), proptest::option::weighted(0.2, arb_staging())), 1..150)
        ) {
            let mut sim = production("1h");
            let p = pool(&sim);
            let mut other = p.clone();
            other.retry.attempts += 1;
            for (e, change) in &events {
                match change {
                    Some(Staging::Nothing) => sim.staging(vec![]),
                    Some(Staging::OtherPool) => sim.staging(vec![staging_verdict(&other, VerdictResult::Succeeded, 7200)]),
                    Some(Staging::Soaked(s)) => sim.staging(vec![staging_verdict(&p, VerdictResult::Succeeded, *s)]),
                    Some(Staging::RolledBack) => sim.staging(vec![staging_verdict(&p, VerdictResult::RolledBack, 0)]),
                    Some(Staging::Failed) => sim.staging(vec![staging_verdict(&p, VerdictResult::Failed, 3600)]),
                    Some(Staging::Unreadable) => sim.staging_unreadable(),
                    None => {}
                }
                let prev = sim.status.clone();
                let gate = sim.gate();
                sim.apply_event(e);
                let s = &sim.status;
                let began = (!prev.phase.is_active() && s.phase == Phase::Progressing && s.step.is_some())
                    || (prev.canary == s.canary && matches!((prev.step, s.step), (Some(a), Some(b)) if b > a));
                // A person's promote skips the steps on their word, verdicts or not.
                let manual = matches!(e, Event::Manual(ManualAction::Promote));
                prop_assert!(!began || manual || matches!(gate, Clearance::Clear(_)), "a step began on {:?}: {:?}", gate, s.message);
                let promoted = prev.phase != Phase::Promoting && s.phase == Phase::Promoting && prev.phase.is_active();
                prop_assert!(!promoted || manual || matches!(gate, Clearance::Clear(_)), "promoted on {:?}", gate);
            }
        }
    }
}

/// What the shell asks besides `decide`.
mod questions {
    use std::time::Duration;

    use super::*;
    use crate::core::api::{ConfigRef, RolloutVerdict, WorkerPool};

    fn status(phase: Phase) -> RedisPoolPolicyStatus {
        RedisPoolPolicyStatus { phase, ..Default::default() }
    }

    /// A status at rest whose promoted configuration's verdict analyses still soak.
    fn soaking(phase: Phase) -> RedisPoolPolicyStatus {
        let pool = WorkerPool::new(&Default::default(), 40);
        let verdict = RolloutVerdict {
            hash: NEW.into(),
            pool_hash: pool.hash(),
            pool,
            environment: "production".into(),
            result: VerdictResult::Succeeded,
            finished_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::UNIX_EPOCH),
            soaked_seconds: 60,
            clean_at: None,
            analyses: 2,
            reason: None,
            watch_ended: None,
        };
        RedisPoolPolicyStatus {
            stable: Some(ConfigRef { hash: NEW.into(), plan: None, worker_pool: None }),
            verdicts: vec![verdict],
            ..status(phase)
        }
    }

    #[test]
    fn next_look_table() {
        let s = spec(10); // interval 10s, promotion soak 24h
        let secs = Duration::from_secs;
        for (phase, after) in [
            (Phase::Progressing, secs(10)),
            (Phase::RollingBack, secs(10)),
            (Phase::Waiting, secs(10)),
            (Phase::Blocked, secs(30)),
            (Phase::Conflict, secs(30)),
            (Phase::Idle, secs(300)),
            (Phase::Invalid, secs(300)),
        ] {
            assert_eq!(next_look(&s, &status(phase)), after, "{phase:?}");
        }
        // At rest, but soaking a verdict: analysed at the interval.
        assert_eq!(next_look(&s, &soaking(Phase::Succeeded)), secs(10));
        let mut slow = spec(10);
        slow.rollout.analysis.interval = "2m".into();
        assert_eq!(next_look(&slow, &status(Phase::Progressing)), secs(30), "at most 30 s during a rollout");
    }

    #[test]
    fn baselines_are_kept_while_something_is_measured() {
        let s = spec(10);
        assert!(keeps_baseline(&s, &status(Phase::Progressing)));
        assert!(keeps_baseline(&s, &soaking(Phase::Succeeded)));
        assert!(!keeps_baseline(&s, &status(Phase::Succeeded)));
        assert!(!keeps_baseline(&s, &soaking(Phase::Conflict)), "a policy in Conflict measures nothing");
    }

    #[test]
    fn redis_is_asked_when_a_rollout_may_start_or_runs() {
        let mut s = spec(10);
        let target = |hash: &str| TargetView { config_hash: hash.into(), ..Sim::new(10).world.target.clone() };
        assert!(!needs_redis(&s, &status(Phase::Idle), Some(&target(OLD)), NEW), "no spec.redis");
        s.redis = Some(serde_json::from_value(serde_json::json!({"address": "127.0.0.1:6379"})).unwrap());
        assert!(needs_redis(&s, &status(Phase::Idle), Some(&target(OLD)), NEW), "a rollout may start");
        assert!(!needs_redis(&s, &status(Phase::Idle), Some(&target(NEW)), NEW), "at rest");
        assert!(needs_redis(&s, &status(Phase::Progressing), Some(&target(OLD)), NEW), "in flight");
        assert!(!needs_redis(&s, &status(Phase::Progressing), None, NEW), "no target");
    }

    #[test]
    fn a_decision_is_confirmed_on_fresh_objects_when_it_writes_what_matters() {
        let quiet = Decision { status: status(Phase::Idle), actions: vec![], action_consumed: false, released: false };
        assert!(!needs_fresh(&quiet, StatusWrite::Nothing));
        assert!(!needs_fresh(&quiet, StatusWrite::Tallies), "tallies are written conditionally");
        assert!(needs_fresh(&quiet, StatusWrite::Now));
        assert!(needs_fresh(&Decision { action_consumed: true, ..quiet.clone() }, StatusWrite::Nothing));
        assert!(needs_fresh(&Decision { released: true, ..quiet.clone() }, StatusWrite::Nothing));
        let acts = Decision { actions: vec![Action::DeleteCanary], ..quiet };
        assert!(needs_fresh(&acts, StatusWrite::Nothing));
    }
}

mod freeze_windows {
    use super::*;
    use crate::core::api::FreezeWindow;

    /// A one-off window from `from` to `to` seconds after the simulation's start.
    fn window(sim: &Sim, name: &str, from: i64, to: i64) -> FreezeWindow {
        let at = |s: i64| (sim.now + SignedDuration::from_secs(s)).to_string();
        FreezeWindow {
            name: name.into(),
            schedule: None,
            duration: None,
            time_zone: None,
            start: Some(at(from)),
            end: Some(at(to)),
        }
    }

    #[test]
    fn no_rollout_starts_inside_a_window_and_it_starts_by_itself_after() {
        let mut sim = Sim::new(10);
        let w = window(&sim, "release-freeze", 0, 600);
        sim.spec.rollout.freeze_windows = vec![w];
        for _ in 0..10 {
            let d = sim.reconcile_with(Verdict::Pass, None);
            assert!(d.actions.iter().all(|a| matches!(a, Action::Event { .. })), "{:?}", d.actions);
            sim.advance(30);
        }
        assert_eq!(sim.status.phase, Phase::Waiting);
        assert_eq!(sim.count("FreezeHolds"), 1, "said once: {:?}", sim.events);
        let f = sim.status.freeze.as_ref().expect("status says which window holds");
        assert_eq!((f.window.as_str(), f.until.0.to_string().as_str()), ("release-freeze", "2026-01-01T00:10:00Z"));
        assert_eq!(sim.status.waiting_for.as_deref(), Some("freeze release-freeze until Thu 1 Jan 00:10 UTC"));
        assert!(sim.status.message.as_deref().unwrap().contains("no rollout starts"), "{:?}", sim.status.message);
        sim.advance(300);
        sim.reconcile_with(Verdict::Pass, None);
        assert_eq!(sim.status.phase, Phase::Progressing);
        assert_eq!((sim.status.freeze.as_ref(), sim.status.waiting_for.as_ref()), (None, None));
        assert_eq!(sim.count("FreezeEnded"), 1);
        sim.run_until(Verdict::Pass, 200, |s| s.status.phase == Phase::Succeeded);
    }

    #[test]
    fn a_window_that_opens_mid_rollout_holds_the_step_past_the_deadline_and_lets_it_go_after() {
        let mut sim = Sim::new(10);
        // Steps soak 60 s; the deadline is 300 s. The window opens at 30 s, for 20 minutes.
        let w = window(&sim, "incident", 30, 1230);
        sim.spec.rollout.freeze_windows = vec![w];
        sim.run_until(Verdict::Pass, 400, |s| s.now >= "2026-01-01T00:20:00Z".parse().unwrap());
        assert_eq!(sim.status.phase, Phase::Progressing, "not rolled back at the deadline");
        assert_eq!(sim.status.step, Some(0), "never advanced inside the window");
        assert!(sim.status.message.as_deref().unwrap().contains("held by freeze window incident"));
        assert!(sim.status.analysis.as_ref().is_some_and(|a| a.verdict == Verdict::Pass), "analyses go on");
        assert_eq!(sim.count("FreezeHolds"), 1, "{:?}", sim.events);
        sim.run_until(Verdict::Pass, 400, |s| s.status.phase == Phase::Succeeded);
        let advanced = sim.trace.iter().position(|s| s.step == Some(1)).unwrap();
        assert!(advanced as i64 * 5 >= 1230, "advanced at {}s, before the window closed", advanced * 5);
    }

    #[test]
    fn a_bad_canary_rolls_back_inside_a_window() {
        let mut sim = Sim::new(10);
        sim.spec.rollout.freeze_windows = vec![window(&sim, "incident", 30, 100_000)];
        sim.run_until(Verdict::Pass, 100, |s| s.status.freeze.is_some());
        sim.run_until(Verdict::Fail, 100, |s| s.status.phase == Phase::RolledBack);
        assert_eq!((sim.world.canary.is_none(), sim.world.target.spec_replicas), (true, 10));
        assert_eq!(sim.world.target.config_hash, OLD);
    }

    #[test]
    fn a_person_cannot_promote_inside_a_window() {
        let mut sim = Sim::new(10);
        sim.spec.rollout.freeze_windows = vec![window(&sim, "incident", 20, 100_000)];
        sim.run_until(Verdict::Pass, 100, |s| s.status.step_started_at.is_some());
        sim.advance(30);
        sim.reconcile_with(Verdict::Pass, Some(ManualAction::Promote));
        assert_eq!(sim.status.phase, Phase::Progressing);
        let (_, said) = sim.events.iter().rev().find(|(r, _)| *r == "ManualActionIgnored").unwrap();
        assert!(said.contains("promote refused: freeze window incident holds until"), "{said}");
    }

    #[test]
    fn the_operators_windows_hold_every_policy_and_are_named_as_cluster_windows() {
        let mut sim = Sim::new(10);
        // Thursday 1 January 2026, 00:00 UTC: a nightly window from 23:00 for two hours.
        let nightly = FreezeWindow {
            name: "nightly".into(),
            schedule: Some("0 23 * * *".into()),
            duration: Some("2h".into()),
            time_zone: Some("UTC".into()),
            start: None,
            end: None,
        };
        sim.cluster_windows = crate::core::freeze::read_all(&[nightly], "freezeWindows", "cluster/").unwrap();
        sim.reconcile_with(Verdict::Pass, None);
        assert_eq!(sim.status.phase, Phase::Waiting);
        assert_eq!(sim.status.freeze.as_ref().unwrap().window, "cluster/nightly");
        assert_eq!(sim.status.waiting_for.as_deref(), Some("freeze cluster/nightly until Thu 1 Jan 01:00 UTC"));
    }

    #[test]
    fn the_tiers_replicas_wait_for_the_window_too() {
        let mut sim = Sim::new(10);
        sim.run_until(Verdict::Pass, 200, |s| s.status.phase == Phase::Succeeded);
        sim.spec.tiers[0].replicas = Some(12);
        sim.generation += 1;
        sim.spec.rollout.freeze_windows = vec![window(&sim, "incident", 0, 60)];
        let d = sim.reconcile_with(Verdict::Pass, None);
        assert!(d.actions.iter().all(|a| matches!(a, Action::Event { .. })), "{:?}", d.actions);
        assert!(sim.status.freeze.is_some());
        sim.advance(61);
        let d = sim.reconcile_with(Verdict::Pass, None);
        assert!(d.actions.contains(&Action::ScaleTarget { replicas: 12 }), "{:?}", d.actions);
    }
}

mod approvals {
    use super::*;
    use crate::core::api::{ApprovalSpec, ApprovalWebhook, Approver, SecretKeyRef};

    fn person(before: &str) -> ApprovalSpec {
        ApprovalSpec { before: before.into(), by: Approver::Person, webhook: None }
    }

    fn webhook(before: &str, secret: &str) -> ApprovalSpec {
        ApprovalSpec {
            before: before.into(),
            by: Approver::Webhook,
            webhook: Some(ApprovalWebhook {
                url_secret_ref: SecretKeyRef { name: secret.into(), key: "url".into() },
                timeout_seconds: 10,
            }),
        }
    }

    #[test]
    fn a_step_waits_for_a_person_past_the_deadline_then_goes_on_when_approved() {
        let mut sim = Sim::new(10);
        sim.spec.rollout.approvals = vec![person("step-2")];
        sim.run_until(Verdict::Pass, 100, |s| s.status.pending_approval.is_some());
        // Soaked, passing, and held: longer than progressDeadline (300 s), never rolled back.
        for _ in 0..80 {
            sim.advance(5);
            sim.reconcile_with(Verdict::Pass, None);
        }
        assert_eq!((sim.status.phase, sim.status.step), (Phase::Progressing, Some(0)));
        let p = sim.status.pending_approval.as_ref().unwrap();
        assert_eq!((p.gate.as_str(), p.waiting_for.as_slice()), ("step-2", &["person".to_string()][..]));
        assert_eq!(sim.status.waiting_for.as_deref(), Some("approval step-2: person"));
        assert!(
            sim.status.message.as_deref().unwrap().contains("kubectl redispool approve"),
            "{:?}",
            sim.status.message
        );
        assert_eq!(sim.count("ApprovalRequested"), 1, "said once: {:?}", sim.events);
        // One failing analysis (below failureLimit) between two looks: the gate stays said.
        sim.advance(10);
        sim.reconcile_with(Verdict::Fail, None);
        assert!(sim.status.pending_approval.is_some(), "the wait was forgotten: {:?}", sim.status.message);
        sim.advance(10);
        sim.reconcile_with(Verdict::Pass, None);
        assert_eq!(sim.count("ApprovalRequested"), 1, "said again after a blip: {:?}", sim.events);
        sim.reconcile_with(Verdict::Pass, Some(ManualAction::Approve));
        assert_eq!(sim.status.step, Some(1), "approved: the step begins in the same decision");
        let (_, said) = sim.events.iter().find(|(r, _)| *r == "Approved").unwrap();
        assert_eq!(said, &format!("step-2 of pool configuration {NEW} approved by alice"));
        assert_eq!(sim.status.approvals[0].who, "alice");
        sim.run_until(Verdict::Pass, 200, |s| s.status.phase == Phase::Succeeded);
        assert!(sim.status.approvals.is_empty(), "used up with the rollout");
        assert_eq!(sim.status.waiting_for, None);
    }

    #[test]
    fn a_canary_that_fails_while_waiting_for_approval_still_rolls_back() {
        let mut sim = Sim::new(10);
        sim.spec.rollout.approvals = vec![person("promotion")];
        sim.run_until(Verdict::Pass, 200, |s| s.status.pending_approval.is_some());
        assert_eq!(sim.status.step, Some(2));
        sim.run_until(Verdict::Fail, 100, |s| s.status.phase == Phase::RolledBack);
        assert_eq!(sim.world.target.config_hash, OLD);
        assert_eq!(sim.status.pending_approval, None);
    }

    #[test]
    fn a_pre_rollout_check_that_says_no_blocks_with_its_answer_until_it_says_yes() {
        let mut sim = Sim::new(10);
        sim.spec.rollout.approvals = vec![webhook("start", "change-ticket")];
        sim.world.webhook = Some(Err("HTTP 409: change CHG-1234 is not approved yet".into()));
        for _ in 0..4 {
            let d = sim.reconcile_with(Verdict::Pass, None);
            assert!(d.actions.iter().all(|a| matches!(a, Action::Event { .. })), "{:?}", d.actions);
            sim.advance(5);
        }
        assert_eq!(sim.status.phase, Phase::Blocked);
        let msg = sim.status.message.as_deref().unwrap();
        assert!(msg.contains("webhook change-ticket: HTTP 409: change CHG-1234 is not approved yet"), "{msg}");
        assert_eq!(sim.count("ApprovalRefused"), 1, "{:?}", sim.events);
        sim.world.webhook = Some(Ok(()));
        sim.reconcile_with(Verdict::Pass, None);
        assert_eq!(sim.status.phase, Phase::Progressing);
        assert_eq!(sim.status.approvals[0].who, "webhook change-ticket");
        sim.run_until(Verdict::Pass, 200, |s| s.status.phase == Phase::Succeeded);
    }

    #[test]
    fn a_persons_promote_does_not_skip_the_promotions_webhook() {
        let mut sim = Sim::new(10);
        sim.spec.rollout.approvals = vec![webhook("promotion", "incident-bot")];
        sim.run_until(Verdict::Pass, 100, |s| s.status.step_started_at.is_some());
        sim.reconcile_with(Verdict::Pass, Some(ManualAction::Promote));
        assert_eq!(sim.status.phase, Phase::Progressing);
        let (_, said) = sim.events.iter().rev().find(|(r, _)| *r == "ManualActionIgnored").unwrap();
        assert_eq!(
            said,
            "promote refused: it would skip the approval of webhook incident-bot at promotion, which has not come"
        );
        sim.world.webhook = Some(Ok(()));
        sim.run_until(Verdict::Pass, 200, |s| s.status.phase == Phase::Succeeded);
        assert!(sim.reasons().contains(&"Approved"));
    }

    #[test]
    fn a_webhooks_yes_ends_its_refusal_while_a_person_is_still_to_approve() {
        let mut sim = Sim::new(10);
        sim.spec.rollout.approvals = vec![webhook("start", "change-ticket"), person("start")];
        sim.world.webhook = Some(Err("HTTP 409: not yet".into()));
        sim.reconcile_with(Verdict::Pass, None);
        sim.advance(5);
        sim.reconcile_with(Verdict::Pass, None);
        assert_eq!(sim.status.phase, Phase::Blocked);
        sim.world.webhook = Some(Ok(()));
        sim.advance(5);
        sim.reconcile_with(Verdict::Pass, None);
        assert_eq!(sim.status.phase, Phase::Waiting, "{:?}", sim.status.message);
        assert_eq!(sim.status.pending_approval.as_ref().unwrap().refused, None);
        sim.reconcile_with(Verdict::Pass, Some(ManualAction::Approve));
        assert_eq!(sim.status.phase, Phase::Progressing);
    }

    #[test]
    fn a_persons_promote_does_not_skip_a_later_steps_webhook() {
        let mut sim = Sim::new(10);
        sim.spec.rollout.approvals = vec![webhook("step-3", "cab")];
        sim.run_until(Verdict::Pass, 100, |s| s.status.step_started_at.is_some());
        sim.reconcile_with(Verdict::Pass, Some(ManualAction::Promote));
        assert_eq!(sim.status.phase, Phase::Progressing);
        let (_, said) = sim.events.iter().rev().find(|(r, _)| *r == "ManualActionIgnored").unwrap();
        assert_eq!(said, "promote refused: it would skip the approval of webhook cab at step-3, which has not come");
    }

    #[test]
    fn approve_with_nothing_waiting_is_refused() {
        let mut sim = Sim::new(10);
        sim.reconcile_with(Verdict::Pass, None);
        let d = sim.reconcile_with(Verdict::Pass, Some(ManualAction::Approve));
        assert!(d.action_consumed);
        assert_eq!(
            sim.events.last().unwrap(),
            &("ManualActionIgnored", "approve ignored: nothing waits for a person's approval".into())
        );
    }
}

mod notifications {
    use super::*;
    use crate::core::api::{DeliveryState, SecretKeyRef, Subscription, Trigger, WebhookDestination};
    use crate::core::rollout::notices::DeliveryResult;

    fn webhook(name: &str, on: Vec<Trigger>) -> Subscription {
        Subscription {
            name: name.into(),
            webhook: Some(WebhookDestination {
                url_secret_ref: Some(SecretKeyRef { name: "hook".into(), key: "url".into() }),
                signing_key_secret_ref: None,
            }),
            slack: None,
            alertmanager: None,
            on,
        }
    }

    fn triggers(sim: &Sim) -> Vec<(i64, Trigger)> {
        let n = sim.status.notifications.as_ref().unwrap();
        n.outbox.iter().map(|n| (n.id, n.trigger)).collect()
    }

    #[test]
    fn every_transition_is_recorded_once_with_the_status_that_says_it() {
        let mut sim = Sim::new(10);
        sim.spec.notifications = vec![webhook("oncall", vec![]), webhook("chat", vec![Trigger::Succeeded])];
        sim.run_until(Verdict::Pass, 200, |s| s.status.phase == Phase::Succeeded);
        let t = triggers(&sim);
        let ids: Vec<i64> = t.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, (1..=ids.len() as i64).collect::<Vec<_>>(), "ids count up without gaps: {t:?}");
        let kinds: Vec<Trigger> = t.iter().map(|(_, k)| *k).collect();
        use Trigger::*;
        assert_eq!(kinds, [RolloutStarted, StepAdvanced, StepAdvanced, Succeeded]);
        let outbox = &sim.status.notifications.as_ref().unwrap().outbox;
        assert_eq!(outbox[0].pending, ["oncall"], "chat only wants Succeeded");
        assert_eq!(outbox[3].pending, ["oncall", "chat"]);
        assert_eq!(outbox[3].phase, Phase::Succeeded);
        // Deciding again on the same status adds nothing.
        sim.advance(5);
        sim.reconcile_with(Verdict::Pass, None);
        assert_eq!(triggers(&sim).len(), 4);
    }

    #[test]
    fn deliveries_empty_the_outbox_and_failures_are_said_naming_the_destination() {
        let mut sim = Sim::new(10);
        sim.spec.notifications = vec![webhook("oncall", vec![])];
        sim.reconcile_with(Verdict::Pass, None);
        assert_eq!(triggers(&sim), [(1, Trigger::RolloutStarted)]);
        sim.deliveries =
            vec![DeliveryResult { id: 1, destination: "oncall".into(), attempts: 6, result: Err("HTTP 503".into()) }];
        sim.advance(1);
        sim.reconcile_with(Verdict::Pass, None);
        let n = sim.status.notifications.as_ref().unwrap();
        assert!(n.outbox.is_empty(), "given up: out of the outbox");
        assert_eq!((n.recent[0].state, n.recent[0].reason.as_deref()), (DeliveryState::Failed, Some("HTTP 503")));
        let (_, said) = sim.events.iter().find(|(r, _)| *r == "NotificationFailed").unwrap();
        assert_eq!(said, "notification 1 (RolloutStarted) to oncall failed after 6 attempts: HTTP 503");
        let c = sim.status.conditions.iter().find(|c| c.type_ == "NotificationsDelivered").unwrap();
        assert_eq!((c.status.as_str(), c.message.as_str()), ("False", "oncall: HTTP 503"));
        // The same results again (the shell reports until status shows them taken) change nothing.
        let before = sim.status.clone();
        sim.reconcile_with(Verdict::Pass, None);
        assert_eq!(sim.status.notifications, before.notifications);
        assert_eq!(sim.count("NotificationFailed"), 1);
    }

    #[test]
    fn alertmanager_hears_an_alert_end_whatever_it_subscribed_to() {
        let mut sim = Sim::new(10);
        let mut pager = webhook("pager", vec![Trigger::RolledBack]);
        pager.webhook = None;
        pager.alertmanager = Some(crate::core::api::AlertmanagerDestination {
            url_secret_ref: Some(SecretKeyRef { name: "am".into(), key: "url".into() }),
        });
        sim.spec.notifications = vec![pager];
        sim.run_until(Verdict::Fail, 100, |s| s.status.phase == Phase::RolledBack);
        let last = |sim: &Sim| sim.status.notifications.as_ref().unwrap().outbox.last().cloned().unwrap();
        let fired = last(&sim);
        assert_eq!(
            (fired.trigger, fired.firing.as_slice()),
            (Trigger::RolledBack, &["RedisPoolRolledBack".to_string()][..])
        );
        sim.reconcile_with(Verdict::Pass, Some(ManualAction::Retry));
        sim.advance(5);
        sim.reconcile_with(Verdict::Pass, None);
        assert_eq!(sim.status.phase, Phase::Progressing);
        let ended = last(&sim);
        assert_eq!(ended.resolved, ["RedisPoolRolledBack"], "{ended:?}");
        assert_eq!(ended.pending, ["pager"], "told although it subscribed to RolledBack only");
    }

    #[test]
    fn a_destination_down_for_long_loses_only_the_oldest_and_says_so() {
        let mut sim = Sim::new(10);
        sim.spec.notifications = vec![webhook("oncall", vec![])];
        // Pause and resume, over and over: two notices each.
        sim.run_until(Verdict::Pass, 100, |s| s.status.step_started_at.is_some());
        for _ in 0..20 {
            sim.reconcile_with(Verdict::Pass, Some(ManualAction::Pause));
            sim.reconcile_with(Verdict::Pass, Some(ManualAction::Resume));
        }
        let n = sim.status.notifications.as_ref().unwrap();
        assert_eq!(n.outbox.len(), notices::OUTBOX_LIMIT);
        assert_eq!(n.outbox.last().unwrap().id, n.sequence);
        assert!(n.recent.iter().all(|d| d.reason.as_deref().is_some_and(|r| r.starts_with("dropped"))));
    }
}

mod undo {
    use super::*;
    use crate::core::api::RollbackWindow;

    /// The policy found OLD running, then rolled NEW out: both succeeded here.
    fn after_a_rollout() -> Sim {
        let mut sim = Sim::new(10);
        sim.hash = OLD.into();
        sim.reconcile_with(Verdict::Pass, None);
        sim.hash = NEW.into();
        sim.generation += 1;
        sim.run_until(Verdict::Pass, 200, |s| s.status.phase == Phase::Succeeded);
        let kept: Vec<&str> = sim.status.succeeded.iter().map(|s| s.hash.as_str()).collect();
        assert_eq!(kept, [NEW, OLD]);
        assert_eq!((sim.status.succeeded[1].workers, sim.status.succeeded[1].pool.connections_per_worker), (4, 40));
        sim
    }

    fn back_to_old(sim: &mut Sim) {
        sim.hash = OLD.into();
        sim.generation += 1;
        sim.advance(5);
    }

    #[test]
    fn an_undo_within_the_window_is_promoted_at_once() {
        let mut sim = after_a_rollout();
        sim.spec.rollout.rollback_window = Some(RollbackWindow { revisions: 1 });
        // Mid-incident, inside a freeze window: an undo is a rollback.
        sim.spec.rollout.freeze_windows = vec![crate::core::api::FreezeWindow {
            name: "incident".into(),
            schedule: None,
            duration: None,
            time_zone: None,
            start: Some((sim.now - SignedDuration::from_hours(1)).to_string()),
            end: Some((sim.now + SignedDuration::from_hours(1)).to_string()),
        }];
        back_to_old(&mut sim);
        let steps_before = sim.count("StepAdvanced");
        let d = sim.reconcile_with(Verdict::Pass, None);
        assert_eq!(sim.status.phase, Phase::Promoting);
        assert!(d.actions.iter().any(|a| matches!(a, Action::PromoteTarget { .. })), "{:?}", d.actions);
        assert!(!d.actions.iter().any(|a| matches!(a, Action::ApplyCanary { .. })), "no canary: {:?}", d.actions);
        let (_, said) = sim.events.iter().rev().find(|(r, _)| *r == "RolloutStarted").unwrap();
        assert!(said.starts_with(&format!("fast undo to pool configuration {OLD}")), "{said}");
        sim.run_until(Verdict::Pass, 50, |s| s.status.phase == Phase::Succeeded);
        assert_eq!(sim.world.target.config_hash, OLD);
        assert_eq!(sim.count("StepAdvanced"), steps_before, "no step");
    }

    #[test]
    fn without_a_window_or_beyond_it_an_undo_takes_the_steps() {
        for window in [None, Some(RollbackWindow { revisions: 1 })] {
            let mut sim = after_a_rollout();
            sim.spec.rollout.rollback_window = window.clone();
            if window.is_some() {
                // NEW2 succeeded after NEW: OLD is two revisions back.
                sim.hash = "new2222222".into();
                sim.generation += 1;
                sim.run_until(Verdict::Pass, 200, |s| s.status.phase == Phase::Succeeded);
            }
            back_to_old(&mut sim);
            sim.reconcile_with(Verdict::Pass, None);
            assert_eq!(sim.status.phase, Phase::Progressing, "window {window:?}");
        }
    }
}
