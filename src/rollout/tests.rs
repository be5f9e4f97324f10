//! The state machine, driven against a small simulated world: scenario tests for each path, and
//! property tests over random event sequences for the invariants of DESIGN.md section 3.

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

use super::*;
use crate::analysis::{Analysis, Gate, GateResult, Verdict};
use crate::api::{Phase, RedisPoolPolicyStatus, RolloutSpec, Step, TargetRef, Tier};
use crate::sizing::{RolloutPlan, default_surge, split};

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
        tiers: vec![Tier { name: "production".into(), workers: 4, connections_per_worker: 40, replicas: Some(total) }],
        pool: Default::default(),
        redis: None,
        rollout,
        env_names: Default::default(),
        suspend: false,
    }
}

fn desired(spec: &RedisPoolPolicySpec, hash: &str, max_clients: Option<i64>) -> Desired {
    let tier = &spec.tiers[0];
    let total = tier.replicas.unwrap_or(1);
    Desired {
        environment: tier.name.clone(),
        hash: hash.into(),
        plan: RolloutPlan::new(spec, tier, total, None, default_surge(total), max_clients),
    }
}

fn analysis(step: i32, verdict: Verdict) -> AnalysisRun {
    let gate = Gate::PoolUtilization;
    let (value, decided_by) = match verdict {
        Verdict::Pass => (20.0, None),
        Verdict::Hold => (70.0, Some(gate)),
        Verdict::Fail => (95.0, Some(gate)),
        Verdict::NoData => (0.0, Some(gate)),
    };
    let verdict_of_combined = if verdict == Verdict::NoData { Verdict::Hold } else { verdict };
    AnalysisRun {
        step,
        analysis: Analysis {
            verdict: verdict_of_combined,
            decided_by,
            gates: vec![GateResult { gate, value: Some(value), verdict, message: format!("{value}%") }],
        },
        provider_error: None,
    }
}

/// The cluster as the controller would see it. Pods become available one tick after asked for.
#[derive(Clone, Debug)]
struct World {
    target: TargetView,
    canary: Option<CanaryView>,
    /// Fleet size the rollout must keep: target + canary never below it once available.
    total: i32,
}

impl World {
    fn new(total: i32) -> Self {
        World {
            target: TargetView {
                spec_replicas: total,
                available: total,
                rolled_out: true,
                config_hash: OLD.into(),
                template_hash: "tpl-a".into(),
                max_unavailable: default_surge(total).min(total),
            },
            canary: None,
            total,
        }
    }

    fn observe(&self) -> Observed {
        Observed { target: Ok(self.target.clone()), canary: self.canary.clone() }
    }

    fn apply(&mut self, actions: &[Action], desired_hash: &str) {
        for a in actions {
            match a {
                Action::ApplyCanary { replicas } => {
                    let template = self.target.template_hash.clone();
                    let c = self.canary.get_or_insert(CanaryView {
                        spec_replicas: 0,
                        available: 0,
                        config_hash: desired_hash.into(),
                        template_hash: template.clone(),
                    });
                    if c.config_hash != desired_hash || c.template_hash != template {
                        c.available = 0; // new pods
                    }
                    c.spec_replicas = *replicas;
                    c.available = c.available.min(*replicas);
                    c.config_hash = desired_hash.into();
                    c.template_hash = template;
                }
                Action::ScaleTarget { replicas } => {
                    self.target.spec_replicas = *replicas;
                    self.target.available = self.target.available.min(*replicas);
                    self.target.rolled_out = self.target.available == *replicas;
                }
                Action::PromoteTarget { replicas } => {
                    if self.target.config_hash != desired_hash {
                        self.target.config_hash = desired_hash.into();
                        // A new template replaces the pods: old ones stay available while new start.
                        self.target.rolled_out = false;
                    }
                    self.target.spec_replicas = *replicas;
                    self.target.available = self.target.available.min(*replicas);
                    self.target.rolled_out &= self.target.available == *replicas;
                }
                Action::DeleteCanary => self.canary = None,
                Action::Event { .. } => {}
            }
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
    desired: Desired,
    generation: i64,
    status: RedisPoolPolicyStatus,
    world: World,
    now: Timestamp,
    events: Vec<(&'static str, String)>,
    trace: Vec<RedisPoolPolicyStatus>,
    manual_promote_just_now: bool,
    /// A reconcile wrote the new configuration into the target without a passing last step, a
    /// person's promote, or an empty fleet.
    unjustified_promotion: bool,
    /// The last reconcile's status write was lost (a crash), so status and world may disagree.
    status_is_stale: bool,
}

impl Sim {
    fn new(total: i32) -> Self {
        let spec = spec(total);
        let desired = desired(&spec, NEW, None);
        Sim {
            spec,
            desired,
            generation: 1,
            status: RedisPoolPolicyStatus::default(),
            world: World::new(total),
            now: "2026-01-01T00:00:00Z".parse().unwrap(),
            events: vec![],
            trace: vec![],
            manual_promote_just_now: false,
            unjustified_promotion: false,
            status_is_stale: false,
        }
    }

    /// One reconcile: analyse when due (with `verdict`), decide, act, record.
    fn reconcile_with(&mut self, verdict: Verdict, action: Option<ManualAction>) -> Decision {
        let run = analysis_due(&self.spec, &self.status, self.now).map(|step| analysis(step, verdict));
        let observed = self.world.observe();
        let input = Input {
            spec: &self.spec,
            generation: self.generation,
            status: &self.status,
            desired: &self.desired,
            observed: &observed,
            analysis: run.as_ref(),
            action,
            now: self.now,
        };
        let d = decide(&input);
        let first_write = self.world.target.config_hash != self.desired.hash
            && d.actions.iter().any(|a| matches!(a, Action::PromoteTarget { .. }));
        if first_write {
            let last = self.spec.rollout.steps.len() as i32 - 1;
            let passed = d.status.analysis.as_ref().is_some_and(|a| a.verdict == Verdict::Pass && a.step == last);
            self.unjustified_promotion |= !(passed || action == Some(ManualAction::Promote) || self.world.total == 0);
        }
        self.world.apply(&d.actions, &self.desired.hash);
        for a in &d.actions {
            if let Action::Event { reason, message, .. } = a {
                self.events.push((reason, message.clone()));
            }
        }
        self.status = d.status.clone();
        self.status_is_stale = false;
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

    fn reasons(&self) -> Vec<&str> {
        self.events.iter().map(|(r, _)| *r).collect()
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
    assert_eq!(sim.status.history[0].outcome, crate::api::Outcome::Succeeded);
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
    // Steady state afterwards: no actions at all, and the same status.
    let before = sim.status.clone();
    for _ in 0..3 {
        sim.advance(10);
        let d = sim.reconcile_with(Verdict::Pass, None);
        assert!(d.actions.is_empty(), "steady state acts: {:?}", d.actions);
        assert_eq!(d.status, before);
    }
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
    let fails = sim.events.iter().filter(|(r, _)| *r == "AnalysisFailed").count();
    assert_eq!(fails, 2, "failureLimit is 2: {:?}", sim.events);
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
    // Deadline counts after the pause: 60 s pause + 300 s deadline.
    let started = sim.trace.iter().find_map(|s| s.step_started_at.as_ref().map(|t| t.0)).unwrap();
    let rolled = sim.trace.iter().position(|s| s.phase == Phase::RollingBack).unwrap();
    let _ = rolled;
    assert!(sim.now.duration_since(started) >= SignedDuration::from_secs(360));
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
    sim.desired = desired(&sim.spec, NEW, Some(3000)); // limit 2400 < peak 3200
    let d = sim.reconcile_with(Verdict::Pass, None);
    assert_eq!(sim.status.phase, Phase::Blocked);
    assert!(d.actions.iter().all(|a| matches!(a, Action::Event { .. })), "{:?}", d.actions);
    let msg = sim.status.message.clone().unwrap();
    assert!(msg.contains("3200") && msg.contains("2400") && msg.contains("3000 maxclients x 0.8"), "{msg}");
    let budget = sim.status.conditions.iter().find(|c| c.type_ == "BudgetOk").unwrap();
    assert_eq!(budget.status, "False");
    // Raising maxclients unblocks.
    sim.desired = desired(&sim.spec, NEW, Some(10000));
    sim.advance(5);
    sim.reconcile_with(Verdict::Pass, None);
    assert_eq!(sim.status.phase, Phase::Progressing);
}

#[test]
fn template_change_mid_rollout_restarts_with_a_reason() {
    let mut sim = Sim::new(10);
    sim.run_until(Verdict::Pass, 100, |s| s.status.step == Some(1) && s.status.step_started_at.is_some());
    sim.world.target.template_hash = "tpl-b".into();
    sim.run_until(Verdict::Pass, 50, |s| {
        s.status.history.first().is_some_and(|h| h.outcome == crate::api::Outcome::Restarted)
    });
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
    sim.desired = desired(&sim.spec, "newer22222", None);
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

#[test]
fn suspend_freezes_everything_and_keeps_the_action() {
    let mut sim = Sim::new(10);
    sim.spec.suspend = true;
    let d = sim.reconcile_with(Verdict::Pass, Some(ManualAction::Abort));
    assert!(d.actions.is_empty());
    assert!(!d.action_consumed);
    assert!(sim.world.canary.is_none());
}

#[test]
fn missing_target_is_invalid_and_cleans_the_canary() {
    let mut sim = Sim::new(10);
    sim.run_until(Verdict::Pass, 100, |s| s.status.step_started_at.is_some());
    let observed =
        Observed { target: Err("Deployment saas/auth-api not found".into()), canary: sim.world.canary.clone() };
    let input = Input {
        spec: &sim.spec,
        generation: 1,
        status: &sim.status,
        desired: &sim.desired,
        observed: &observed,
        analysis: None,
        action: None,
        now: sim.now,
    };
    let d = decide(&input);
    assert_eq!(d.status.phase, Phase::Invalid);
    assert!(d.actions.contains(&Action::DeleteCanary));
    assert!(
        d.actions.iter().any(
            |a| matches!(a, Action::Event { reason: "InvalidTarget", message, .. } if message.contains("not found"))
        )
    );
}

#[test]
fn zero_replicas_write_the_config_directly() {
    let mut sim = Sim::new(0);
    sim.run_until(Verdict::NoData, 10, |s| s.status.phase == Phase::Succeeded);
    assert_eq!(sim.world.target.config_hash, NEW);
    assert!(sim.world.canary.is_none());
}

#[test]
fn single_replica_keeps_its_stable_pod_until_the_last_step() {
    let mut sim = Sim::new(1);
    sim.run_until(Verdict::Pass, 200, |s| s.status.phase == Phase::Succeeded);
    assert_eq!(sim.splits_seen(), vec![(1, 1), (1, 0)]);
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
    /// The operator crashes after acting but before writing status.
    CrashAfterActing(Verdict),
    TemplateChange,
}

fn arb_event() -> impl Strategy<Value = Event> {
    let verdict = prop_oneof![
        6 => Just(Verdict::Pass),
        2 => Just(Verdict::Hold),
        2 => Just(Verdict::Fail),
        1 => Just(Verdict::NoData)
    ];
    let manual = prop_oneof![
        Just(ManualAction::Promote),
        Just(ManualAction::Abort),
        Just(ManualAction::Retry),
        Just(ManualAction::Pause),
        Just(ManualAction::Resume)
    ];
    prop_oneof![
        6 => (1i64..40).prop_map(Event::Tick),
        1 => (1i64..40).prop_map(Event::Wait),
        10 => verdict.clone().prop_map(Event::Reconcile),
        1 => manual.prop_map(Event::Manual),
        1 => verdict.prop_map(Event::CrashAfterActing),
        1 => Just(Event::TemplateChange),
    ]
}

/// Checks the invariants that must hold at every observed instant.
fn check_instant(sim: &Sim, prev: &RedisPoolPolicyStatus) -> Result<(), TestCaseError> {
    let w = &sim.world;
    let s = &sim.status;
    // Capacity: requested pods never drop below the fleet.
    prop_assert!(w.pods() >= w.total, "pods {} below total {}: {:?}", w.pods(), w.total, w);
    // Budget: every pod that can coexist is within the plan's peak.
    let per_pod = sim.desired.plan.pool.connections_per_pod;
    let peak = sim.desired.plan.budget.peak_connections;
    prop_assert!(i64::from(w.pods()) * per_pod <= peak, "{} pods exceed the planned peak {}", w.pods(), peak);
    // Canary + stable desired replicas equal the total at a settled step.
    if let (Some(r), true) = (&s.replicas, s.step_started_at.is_some())
        && matches!(s.phase, Phase::Progressing | Phase::Paused)
        && !sim.status_is_stale
    {
        let sp = split(r.total, s.weight.unwrap());
        prop_assert_eq!((r.canary, r.stable), (sp.canary, sp.stable));
        prop_assert_eq!(w.target.spec_replicas, sp.stable);
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
    // Nothing is promoted without a Pass (or a person's promote): checked where the new
    // configuration is first written into the target.
    prop_assert!(!sim.unjustified_promotion, "the target got the new pool without a pass: {:?}", s.analysis);
    Ok(())
}

impl Sim {
    fn apply_event(&mut self, e: &Event) {
        self.manual_promote_just_now = false;
        match e {
            Event::Tick(s) => self.advance(*s),
            Event::Wait(s) => self.now += SignedDuration::from_secs(*s),
            Event::Reconcile(v) => {
                self.reconcile_with(*v, None);
            }
            Event::Manual(a) => {
                self.manual_promote_just_now = *a == ManualAction::Promote;
                self.reconcile_with(Verdict::Hold, Some(*a));
            }
            Event::CrashAfterActing(v) => {
                let saved = self.status.clone();
                self.reconcile_with(*v, None);
                self.status = saved;
                self.status_is_stale = true;
            }
            Event::TemplateChange => {
                let n = self.world.target.template_hash.len();
                self.world.target.template_hash = format!("tpl-{n}");
            }
        }
    }
}

proptest! {
    // PROPTEST_CASES raises the count for a deeper search.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000),
        ..ProptestConfig::default()
    })]

    #[test]
    fn invariants_hold_and_every_rollout_ends(total in 1i32..25, events in prop::collection::vec(arb_event(), 1..120)) {
        let mut sim = Sim::new(total);
        for e in &events {
            let prev = sim.status.clone();
            sim.apply_event(e);
            check_instant(&sim, &prev)?;
        }
        // Drain: the world settles, nothing else happens; the rollout must end cleanly.
        for _ in 0..400 {
            if matches!(sim.status.phase, Phase::Succeeded | Phase::RolledBack | Phase::Idle) && sim.world.canary.is_none() {
                break;
            }
            let prev = sim.status.clone();
            sim.advance(5);
            // A paused rollout waits for a person, who eventually resumes it.
            let action = (sim.status.phase == Phase::Paused).then_some(ManualAction::Resume);
            sim.reconcile_with(Verdict::Pass, action);
            check_instant(&sim, &prev)?;
        }
        let s = &sim.status;
        prop_assert!(matches!(s.phase, Phase::Succeeded | Phase::RolledBack | Phase::Idle), "stuck in {:?}", s.phase);
        prop_assert!(sim.world.canary.is_none(), "canary left behind");
        prop_assert_eq!(sim.world.target.spec_replicas, total);
        match s.phase {
            Phase::Succeeded => prop_assert_eq!(&sim.world.target.config_hash, NEW),
            Phase::RolledBack => prop_assert_eq!(&sim.world.target.config_hash, OLD),
            _ => {}
        }
        // Never mixed: the target runs one configuration or the other, and history agrees.
        if let Some(h) = s.history.first() && s.phase != Phase::Idle {
            let expected = if s.phase == Phase::Succeeded { crate::api::Outcome::Succeeded } else { crate::api::Outcome::RolledBack };
            prop_assert_eq!(h.outcome, expected);
        }
    }

    #[test]
    fn deciding_again_on_its_own_status_changes_nothing(total in 1i32..25, events in prop::collection::vec(arb_event(), 1..80), verdict in prop_oneof![Just(Verdict::Pass), Just(Verdict::Fail), Just(Verdict::Hold)]) {
        let mut sim = Sim::new(total);
        for e in &events {
            sim.apply_event(e);
        }
        let observed = sim.world.observe();
        let run = analysis_due(&sim.spec, &sim.status, sim.now).map(|step| analysis(step, verdict));
        let mk = |status| Input { spec: &sim.spec, generation: sim.generation, status, desired: &sim.desired,
                                  observed: &observed, analysis: run.as_ref(), action: None, now: sim.now };
        let first = decide(&mk(&sim.status));
        let second = decide(&mk(&first.status));
        let not_events = |d: &Decision| d.actions.iter().filter(|a| !matches!(a, Action::Event { .. })).cloned().collect::<Vec<_>>();
        prop_assert_eq!(&second.status, &first.status);
        prop_assert_eq!(not_events(&second), not_events(&first));
        prop_assert!(second.actions.iter().all(|a| !matches!(a, Action::Event { .. })), "events repeat: {:?}", second.actions);
    }
}
