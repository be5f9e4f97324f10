//! `decide`: one step of the rollout state machine. Each phase is a handler in its own file that
//! returns what comes next ([`Next`]); `run` follows those transitions, with a bound, and no
//! handler calls another.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::conditions::set_conditions;
use super::messages;
use super::notices;
use super::{
    Action, AnalysisRun, CanaryView, Decision, Due, Input, ManualAction, Reason, TargetView, rollout_total,
    watched_verdict,
};
use crate::core::analysis::Verdict;
use crate::core::api::{
    AnalysisStatus, ConfigRef, FailedConfig, HISTORY_LIMIT, HistoryEntry, Outcome, OverrideStatus, Phase, PoolPlan,
    PoolSeen, RedisConnections, RedisPoolPolicyStatus, ReplicaStatus, RollbackKind, RollbackStatus, SUCCEEDED_LIMIT,
    ScalingMode, ScalingStatus, SoakStatus, SucceededConfig,
};
use crate::core::api::{FreezeStatus, RolloutVerdict, VerdictResult, WorkerPool};
use crate::core::durations::{durations, human, step_pause};
use crate::core::freeze::{self, Frozen};
use crate::core::node_budget;
use crate::core::promotion::{self, Clearance};
use crate::core::shared_budget::{self, Shared};
use crate::core::sizing::{Budget, Split, actual_weight, beside, split};

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
        weather_news: false,
        judged_from: None,
        frozen: freeze_at(input),
    };
    m.status.observed_generation = Some(input.generation);
    for (reason, message) in notices::apply_deliveries(&mut m.status, input.deliveries, input.now) {
        m.event(reason, message);
    }
    // Set again below by whatever the freeze or an approval gate still holds.
    m.status.freeze = None;
    m.status.pending_approval = None;
    // Approvals count for the configuration they were given for.
    let rolling = input.status.canary.as_ref().map_or(input.desired.hash.as_str(), |c| c.hash.as_str());
    m.status.approvals.retain(|a| a.hash == input.desired.hash || a.hash == rolling);
    m.status.environment = Some(input.desired.environment.clone());
    m.run();
    if let Some(Err(unknown)) = &input.action {
        // Answered in any phase, not left waiting: the annotation goes and an Event says why.
        m.consumed = true;
        m.event(Reason::ManualActionIgnored, unknown.to_string());
    }
    // Remember the replicas this rollout wrote last, to tell another writer's value from ours.
    let wrote = m.actions.iter().rev().find_map(|a| match a {
        Action::ScaleTarget { replicas } | Action::PromoteTarget { replicas: Some(replicas) } => Some(*replicas),
        _ => None,
    });
    if let Some(r) = wrote.filter(|_| m.status.started_at.is_some()) {
        m.status.scaled_to = Some(r);
    }
    m.status.progress = m.status.step.map(|_| format!("{}/{}", m.step() + 1, m.steps()));
    if m.status.phase != Phase::Waiting && m.status.freeze.is_none() && m.status.pending_approval.is_none() {
        m.status.waiting_for = None;
    }
    m.say_freeze();
    m.say_approval();
    // What other policies on this Redis count for this one: its steady use, and its peak while
    // a rollout is in flight.
    m.status.advice = advice_for(input, m.status.pool_seen.as_ref());
    // A policy in Conflict or Invalid accounts for nothing: the pods it sees are not its own.
    let accounts = !matches!(m.status.phase, Phase::Conflict | Phase::Invalid);
    m.status.redis_connections = input.spec.redis.as_ref().filter(|_| accounts).map(|_| RedisConnections {
        steady: on_each_node(input, own_steady(input)),
        peak: m.status.phase.is_active().then(|| on_each_node(input, input.desired.plan.budget.peak_connections)),
    });
    set_conditions(&mut m.status, input, &m.budget);
    // The transitions people are told about, recorded with the status that says them.
    let subscriptions: Vec<_> = notices::destinations(&input.spec.notifications, input.cluster_subscriptions).collect();
    notices::record(&mut m.status, &m.actions, &subscriptions, input.now);
    if let Some((state, reason, message)) = notices::delivery_condition(&m.status) {
        super::set_condition(
            &mut m.status,
            "NotificationsDelivered",
            state,
            reason,
            &message,
            input.now,
            input.generation,
        );
    }
    Decision { status: m.status, actions: m.actions, action_consumed: m.consumed, released: m.released }
}

/// The plan's budget, checked against the `maxclients` the server reports now (unless the spec
/// gives one). A server that cannot be asked blocks a rollout from starting (never on faith), but
/// does not stop one in flight: the gates see the outage instead.
pub fn effective_budget(input: &Input) -> Budget {
    let b = &input.desired.plan.budget;
    let Some(redis) = input.spec.redis.as_ref() else { return b.clone() };
    let pinned = redis.max_clients;
    // A rollout in flight keeps the budget it started on: its own canary pods are among the
    // server's connected clients by now, and counting them again on top of its peak would
    // abort a healthy rollout.
    let active = input.status.phase.is_active();
    let signals = match &input.observed.redis {
        // Every cluster node that holds pools has a budget of its own: each must fit.
        Some(Ok(s)) if !s.nodes.is_empty() => {
            let ask = node_budget::Ask {
                peak: b.peak_connections,
                steady: own_steady(input),
                pools: redis.cluster_pools.unwrap_or_default(),
                pinned,
                utilization: b.utilization,
            };
            return node_budget::per_node(&ask, &input.observed.peers, &s.nodes, active);
        }
        Some(Ok(s)) => Some(s),
        Some(Err(e)) if pinned.is_none() && !active => return b.clone().unknown(e.to_string()),
        _ => None,
    };
    let max_clients = pinned.or(signals.and_then(|s| s.max_clients)).or(b.max_clients);
    let own = Budget::check(b.peak_connections, max_clients, b.utilization);
    if active {
        return own;
    }
    // A server that answers but does not say its maxclients cannot be promised anything.
    if let Some(s) = signals.filter(|_| max_clients.is_none()) {
        let why =
            s.max_clients_note.clone().unwrap_or_else(|| format!("{} does not say its maxclients", redis.address));
        return own.unknown(why);
    }
    // The server is shared: its budget holds this peak and what the others need at the same time.
    let shared =
        Shared { peers: input.observed.peers.clone(), connected_clients: signals.map(|s| s.connected_clients) };
    let demand = shared_budget::demand(own.peak_connections, own_steady(input), &shared);
    own.shared(demand)
}

/// The freeze window that holds now, of the policy's or the operator's. A window of the spec
/// that cannot be read (admission reads it with the same grammar, so only an API server without
/// the CRD's rules lets one in) holds until it is fixed: a freeze is never skipped on a typo.
fn freeze_at(input: &Input) -> Option<Frozen> {
    match freeze::read_all(&input.spec.rollout.freeze_windows, "spec.rollout.freezeWindows", "") {
        Ok(own) => {
            let all: Vec<freeze::Window> = own.into_iter().chain(input.cluster_windows.iter().cloned()).collect();
            freeze::frozen(&all, input.now)
        }
        Err(e) => Some(Frozen {
            window: format!("(unreadable: {e})"),
            since: input.now,
            until: Timestamp::MAX,
            until_local: "it is fixed".into(),
        }),
    }
}

/// What this policy puts on each node that holds its pools (the whole, unless a cluster
/// client spreads one pool over the nodes): what other policies on the server count for it.
fn on_each_node(input: &Input, total: i64) -> i64 {
    let pools = input.spec.redis.as_ref().and_then(|r| r.cluster_pools).unwrap_or_default();
    let nodes = match &input.observed.redis {
        Some(Ok(s)) => s.nodes.len(),
        _ => 0,
    };
    node_budget::on_each_node(total, pools, nodes)
}

/// Advice for the configuration the policy asks for, from what the analyses saw of it.
fn advice_for(input: &Input, seen: Option<&PoolSeen>) -> Option<crate::core::api::Advice> {
    let seen = seen.filter(|s| s.hash == input.desired.hash)?;
    let pool = &input.desired.plan.pool;
    let gates = crate::core::analysis::for_tier(input.spec, &pool.tier);
    // What the analyses covered, from the first to the last: stable while nothing is measured.
    let covered = seen.since.as_ref().zip(seen.last.as_ref()).map(|(a, b)| b.0.duration_since(a.0));
    let over = match covered {
        Some(d) if d >= SignedDuration::from_mins(1) => human(d),
        _ => messages::analyses(seen.analyses),
    };
    let numbers = crate::core::advice::Seen {
        peak_utilization: seen.peak_utilization,
        exhaustion_events: seen.exhaustion_events,
        over,
    };
    crate::core::advice::advise(
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

/// What a phase hands on: the decision is made, or another phase is evaluated in the same
/// decision (so that deciding again on the status it leaves gives the same status).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Next {
    Done,
    /// Entries: the policy is being deleted; it must not touch its target; it cannot be planned.
    Release,
    Conflict(String),
    Invalid(String),
    /// No rollout in flight: start one if the target needs it.
    Idle,
    /// A rollout restarts: start it again (as `Idle`, from a rollback).
    Start,
    Progress,
    Promote,
    RollBack,
    /// The soak of the verdict on the configuration the target runs, after its promotion.
    SoakVerdict,
}

/// More transitions than any path takes (the longest: a restart's rollback, a start, a step, a
/// promotion of a target without replicas). Reaching it is a bug; tests assert it in debug builds.
const TRANSITIONS: usize = 8;

mod analysis;
mod approval;
mod manual;

use approval::GateAt;
mod progress;
mod promote;
mod refusals;
mod roll_back;
mod scaling;
mod soak;
mod start;
mod verdict_soak;

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
    /// The analysis recorded now is Inconclusive on new evidence (the first of a spell, or
    /// another kind of fault than the one before): worth an Event.
    weather_news: bool,
    /// When the interval of the analysis recorded now began: the analysis before it.
    judged_from: Option<Timestamp>,
    /// The freeze window that holds now, the policy's or the operator's.
    frozen: Option<Frozen>,
}

impl Machine<'_> {
    /// The phase this decision begins in, then each transition the phases hand on.
    fn run(&mut self) {
        let Some(first) = self.entry() else { return };
        self.follow(first.clone());
        let input = self.input;
        let inactive = !self.status.phase.is_active();
        // What is said once no rollout is in flight, however the transitions got there:
        if let (Ok(target), Next::Idle) = (&input.observed.target, &first)
            && inactive
        {
            // the soak of the verdict the target runs on,
            self.follow_from(target, Next::SoakVerdict);
        }
        let was_active = input.status.phase.is_active();
        if let Next::Conflict(why) = &first
            && was_active
            && inactive
        {
            // that another policy (or owner) holds the target, once this policy's rollout is undone,
            self.enter(Phase::Conflict, Reason::Conflict, why.clone());
        }
        let promoting = matches!(input.status.phase, Phase::Promoting | Phase::Degraded);
        if matches!(first, Next::Release) && promoting && self.status.phase == Phase::Succeeded {
            // and that a deleted policy whose promotion completed can go.
            self.released = true;
        }
    }

    /// Where a decision begins: the checks that come before any phase, then the phase's own
    /// handler. None: nothing is decided (suspended).
    fn entry(&mut self) -> Option<Next> {
        if self.input.deleting {
            return Some(Next::Release);
        }
        if self.input.spec.suspend {
            // Frozen: no writes, and a pending manual action waits for resume.
            self.status.message = Some(messages::suspended());
            return None;
        }
        if let Err(held) = &self.input.observed.holder {
            return Some(Next::Conflict(held.to_string()));
        }
        if let Err(why) = &self.input.observed.target {
            return Some(Next::Invalid(why.to_string()));
        }
        if let Some(why) = self.foreign_canary() {
            return Some(Next::Conflict(why));
        }
        if let Some(Ok(action)) = &self.input.action {
            self.consumed = true;
            self.manual(*action);
        }
        Some(match self.status.phase {
            Phase::Idle
            | Phase::Succeeded
            | Phase::RolledBack
            | Phase::Blocked
            | Phase::Waiting
            | Phase::Invalid
            | Phase::Conflict
            | Phase::Overridden => Next::Idle,
            Phase::Progressing | Phase::Paused => Next::Progress,
            Phase::Promoting | Phase::Degraded => Next::Promote,
            Phase::RollingBack => Next::RollBack,
        })
    }

    /// Why this policy must not touch its target although it holds it: the canary's name belongs
    /// to an object this policy does not own.
    fn foreign_canary(&self) -> Option<String> {
        let owner = self.canary().and_then(|c| c.foreign_owner.clone())?;
        Some(messages::canary_not_ours(&crate::core::api::canary_name(&self.input.spec.target_ref.name), &owner))
    }

    /// Applies transitions until a phase says the decision is made.
    fn follow(&mut self, next: Next) {
        let input = self.input;
        match (next, &input.observed.target) {
            (Next::Release, _) => {
                let next = self.release();
                self.follow(next)
            }
            (Next::Conflict(why), _) => {
                let next = self.conflict(why);
                self.follow(next)
            }
            (Next::Invalid(why), _) => self.invalid(why),
            (next, Ok(target)) => self.follow_from(target, next),
            // The phases below need a target; the entry sent a decision without one elsewhere.
            (_, Err(_)) => {}
        }
    }

    fn follow_from(&mut self, target: &TargetView, mut next: Next) {
        for _ in 0..TRANSITIONS {
            next = match next {
                Next::Done => return,
                Next::Idle => match self.maybe_start(target) {
                    Next::Done => return,
                    started => started,
                },
                Next::Start => self.maybe_start(target),
                Next::Progress => self.progress(target),
                Next::Promote => self.promote(target),
                Next::RollBack => self.roll_back(target),
                Next::SoakVerdict => self.soak_verdict(target),
                Next::Release | Next::Conflict(_) | Next::Invalid(_) => {
                    unreachable!("entries are not transitions: {next:?}")
                }
            };
        }
        debug_assert_eq!(next, Next::Done, "a decision took more than {TRANSITIONS} transitions");
    }

    pub(super) fn now(&self) -> Timestamp {
        self.input.now
    }

    pub(super) fn event(&mut self, reason: Reason, message: String) {
        self.actions.push(Action::Event { reason, message });
    }

    /// Moves to `phase`, with an Event only when the phase actually changes (steady state is silent).
    pub(super) fn enter(&mut self, phase: Phase, reason: Reason, message: String) {
        if self.status.phase != phase {
            self.event(reason, message.clone());
        }
        self.status.phase = phase;
        self.status.message = Some(message);
    }

    /// Moves to `phase` (as `enter`), and the decision is made.
    fn end_in(&mut self, phase: Phase, reason: Reason, message: String) -> Next {
        self.enter(phase, reason, message);
        Next::Done
    }

    /// Our canary, if there is one (a foreign one never reaches the phases).
    pub(super) fn canary(&self) -> Option<&CanaryView> {
        self.input.observed.canary.as_ref()
    }

    pub(super) fn delete_canary_if_any(&mut self) {
        if self.canary().is_some_and(|c| c.foreign_owner.is_none()) {
            self.actions.push(Action::DeleteCanary);
        }
    }

    /// Time a condition has held since `since`, not counting time before this operator woke.
    pub(super) fn held_for(&self, since: Timestamp) -> SignedDuration {
        self.now().duration_since(since.max(self.input.awake_since))
    }

    pub(super) fn deadline(&self) -> SignedDuration {
        durations(self.input.spec).progress_deadline
    }

    pub(super) fn deadline_label(&self) -> &str {
        &self.input.spec.rollout.analysis.progress_deadline
    }

    pub(super) fn steps(&self) -> usize {
        self.input.spec.rollout.steps.len().max(1)
    }

    /// The current step index, clamped in case the spec lost steps mid-rollout.
    pub(super) fn step(&self) -> usize {
        (self.status.step.unwrap_or(0).max(0) as usize).min(self.steps() - 1)
    }

    pub(super) fn weight_of(&self, step: usize) -> i32 {
        self.input.spec.rollout.steps.get(step).map_or(100, |s| s.weight)
    }

    pub(super) fn clear_rollout(&mut self) {
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
    pub(super) fn desired_worker_pool(&self) -> WorkerPool {
        WorkerPool::new(&self.input.spec.pool, self.input.desired.plan.pool.connections_per_worker)
    }

    /// What `spec.promotion.requires` says of the worker pool the spec asks for.
    pub(super) fn clearance(&self) -> Clearance {
        if self.input.spec.promotion.requires.is_empty() {
            return Clearance::Clear(Vec::new());
        }
        match &self.input.observed.required {
            Some(required) => promotion::check(&self.desired_worker_pool(), required),
            // The shell reads them whenever a rollout may start or is in flight: never on faith.
            None => Clearance::Wait {
                message: "waiting: the verdicts spec.promotion.requires names were not read".into(),
                short: "not read".into(),
                unreadable: true,
            },
        }
    }

    /// Records how the rollout of the canary's configuration ended (before the rollout is cleared).
    pub(super) fn remember_verdict(&mut self, hash: String, result: VerdictResult, reason: Option<String>) {
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

    /// Records how a rollout ended; the approvals it was given are used up with it.
    pub(super) fn push_history(&mut self, hash: String, outcome: Outcome, reason: String) {
        self.status.approvals.retain(|a| a.hash != hash);
        let entry = HistoryEntry { hash, outcome, reason, finished_at: Time(self.now()) };
        self.status.history.insert(0, entry);
        self.status.history.truncate(HISTORY_LIMIT);
    }

    /// Holds the rollout for the freeze window, if one holds now: status and the Waiting column
    /// say which and until when. The window, for the caller's message.
    pub(super) fn hold_for_freeze(&mut self) -> Option<Frozen> {
        let f = self.frozen.clone()?;
        let since = self.input.status.freeze.as_ref().filter(|s| s.window == f.window).map(|s| s.since.clone());
        self.status.freeze = Some(FreezeStatus {
            window: f.window.clone(),
            since: since.unwrap_or(Time(self.now())),
            until: Time(f.until),
        });
        self.status.waiting_for = Some(messages::frozen_short(&f));
        Some(f)
    }

    /// An Event when a freeze begins or stops holding the rollout.
    fn say_freeze(&mut self) {
        let before = self.input.status.freeze.as_ref().map(|f| f.window.clone());
        let now = self.status.freeze.as_ref().map(|f| f.window.clone());
        if before == now {
            return;
        }
        match (&self.frozen, now) {
            (Some(f), Some(_)) => self.event(Reason::FreezeHolds, messages::frozen(f)),
            // It ended, not merely stopped being the reason of this look's hold.
            (None, None) => self.event(Reason::FreezeEnded, messages::freeze_ended(&before.unwrap_or_default())),
            (_, _) => {}
        }
    }

    pub(super) fn canary_hash(&self) -> String {
        self.status.canary.as_ref().map_or_else(|| self.input.desired.hash.clone(), |c| c.hash.clone())
    }
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
    let by = messages::field_managers(&names);
    (by, fields)
}

/// The target serves `replicas` within its own `maxUnavailable`: the canary may go.
fn stable_serves(target: &TargetView, replicas: i32) -> bool {
    target.available >= (replicas - target.max_unavailable).max(0)
}

/// What the target runs: a configuration and its plan, at the replicas it has now.
fn stable_ref(hash: &str, plan: Option<&crate::core::api::PoolPlan>, target: &TargetView) -> ConfigRef {
    let plan = plan.map(|p| crate::core::api::PoolPlan { replicas: target.spec_replicas, ..p.clone() });
    ConfigRef { hash: hash.to_string(), plan, worker_pool: None }
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
