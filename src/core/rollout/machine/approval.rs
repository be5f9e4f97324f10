//! Approval gates: before the start, a step, or the promotion, every approval the spec asks for
//! that gate must have been given for the configuration rolling out: a person's
//! (`kubectl redispool approve`), or a webhook's 2xx, which the shell brings as an answer.

use super::*;
use crate::core::api::{Approval, ApprovalSpec, Approver, PendingApproval};

/// Where a rollout passes a gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateAt {
    Start,
    /// Before the step with this index (0-based) begins.
    Step(usize),
    Promotion,
}

impl GateAt {
    /// As the spec and status name it: `start`, `step-2` (1-based), `promotion`.
    pub fn name(self) -> String {
        match self {
            GateAt::Start => "start".into(),
            GateAt::Step(i) => format!("step-{}", i + 1),
            GateAt::Promotion => "promotion".into(),
        }
    }
}

/// What a closed gate waits for.
pub(super) struct Closed {
    /// `a person (kubectl redispool approve auth-api)`, `webhook change-ticket`.
    pub waiting: Vec<String>,
    /// A webhook's last answer that was not 2xx.
    pub refused: Option<String>,
}

/// Who an approval of the spec is, as status records it.
fn who_approves(a: &ApprovalSpec) -> String {
    match (&a.by, &a.webhook) {
        (Approver::Webhook, Some(w)) => format!("webhook {}", w.url_secret_ref.name),
        _ => "person".into(),
    }
}

impl Machine<'_> {
    /// Whether `gate` is closed for the configuration `hash`: the approvals it still waits for.
    /// Webhook answers the shell brought are recorded (an approval, or the reason of a no); the
    /// gate is recorded as pending while closed.
    pub(super) fn gate_closed(&mut self, gate: GateAt, hash: &str) -> Option<Closed> {
        let name = gate.name();
        let asked: Vec<&ApprovalSpec> = self.input.spec.rollout.approvals.iter().filter(|a| a.before == name).collect();
        if asked.is_empty() {
            return None;
        }
        let pending = self.input.status.pending_approval.as_ref().filter(|p| p.gate == name && p.hash == hash);
        let mut refused = pending.and_then(|p| p.refused.clone());
        for answer in self.input.observed.approval_answers.iter().filter(|a| a.gate == name && a.hash == hash) {
            let who = format!("webhook {}", answer.webhook);
            if answer.answer.is_ok() && refused.as_deref().is_some_and(|r| r.starts_with(&format!("{who}:"))) {
                refused = None;
            }
            match &answer.answer {
                Ok(()) if !self.approved(&name, hash, &who) => {
                    let at = Time(self.now());
                    let approval =
                        Approval { gate: name.clone(), hash: hash.into(), by: Approver::Webhook, who: who.clone(), at };
                    self.status.approvals.push(approval);
                    self.event(Reason::Approved, messages::approved(&name, hash, &who));
                }
                Ok(()) => {}
                Err(why) => refused = Some(format!("{who}: {why}")),
            }
        }
        let waiting: Vec<String> =
            asked.iter().map(|a| who_approves(a)).filter(|who| !self.approved(&name, hash, who)).collect();
        if waiting.is_empty() {
            return None;
        }
        let since = pending.map_or_else(|| Time(self.now()), |p| p.since.clone());
        let record = PendingApproval {
            gate: name.clone(),
            hash: hash.into(),
            since,
            waiting_for: waiting.clone(),
            refused: refused.clone(),
        };
        self.status.waiting_for = Some(messages::awaiting_approval_short(&record));
        self.status.pending_approval = Some(record);
        Some(Closed { waiting, refused })
    }

    /// Every approval the start gate asks for is in (the webhooks' answers of this look count).
    pub(super) fn start_approved(&self) -> bool {
        let (name, hash) = (GateAt::Start.name(), &self.input.desired.hash);
        let answered = |who: &str| {
            self.input.observed.approval_answers.iter().any(|a| {
                a.gate == name && &a.hash == hash && a.answer.is_ok() && format!("webhook {}", a.webhook) == who
            })
        };
        self.input
            .spec
            .rollout
            .approvals
            .iter()
            .filter(|a| a.before == name)
            .map(who_approves)
            .all(|who| self.approved(&name, hash, &who) || answered(&who))
    }

    /// While the step soaks, what held its end at the last look stays said: a failed analysis or
    /// a missing pod between two looks neither ends a freeze nor a wait for approval (nor its
    /// Events, alerts or a person's `approve`).
    pub(super) fn keep_holds(&mut self, step: usize) {
        if self.input.status.freeze.is_some() {
            self.hold_for_freeze();
        }
        let gate = if step + 1 >= self.steps() { GateAt::Promotion } else { GateAt::Step(step + 1) };
        let hash = self.canary_hash();
        let waiting = self.input.status.pending_approval.as_ref().filter(|p| p.gate == gate.name() && p.hash == hash);
        if let Some(p) = waiting.cloned() {
            self.status.waiting_for = Some(messages::awaiting_approval_short(&p));
            self.status.pending_approval = Some(p);
        }
    }

    /// An approval by `who` (`person`: any person) of `gate` for `hash` was given.
    fn approved(&self, gate: &str, hash: &str, who: &str) -> bool {
        self.status.approvals.iter().any(|a| {
            a.gate == gate && a.hash == hash && (a.who == who || (who == "person" && a.by == Approver::Person))
        })
    }

    /// A person's `approve`: opens what waits for a person at the pending gate.
    pub(super) fn approve(&mut self) {
        let pending = self.input.status.pending_approval.clone();
        let Some(p) = pending.filter(|p| p.waiting_for.iter().any(|w| w == "person")) else {
            self.event(Reason::ManualActionIgnored, messages::nothing_to_approve());
            return;
        };
        let who = self.input.action_by.clone().unwrap_or_else(|| "an unknown person".into());
        let at = Time(self.now());
        let approval =
            Approval { gate: p.gate.clone(), hash: p.hash.clone(), by: Approver::Person, who: who.clone(), at };
        self.status.approvals.push(approval);
        self.event(Reason::Approved, messages::approved(&p.gate, &p.hash, &who));
    }

    /// A gate between here and the promotion waits for a webhook's approval that has not come:
    /// a person's `promote` (a person's approval of what it skips) cannot skip a webhook's.
    pub(super) fn promotion_awaits_webhook(&self) -> Option<String> {
        let hash = self.canary_hash();
        let ahead: Vec<String> = (self.step() + 1..self.steps())
            .map(|i| GateAt::Step(i).name())
            .chain(std::iter::once(GateAt::Promotion.name()))
            .collect();
        self.input
            .spec
            .rollout
            .approvals
            .iter()
            .filter(|a| ahead.contains(&a.before) && a.by == Approver::Webhook)
            .map(|a| (a.before.clone(), who_approves(a)))
            .find(|(gate, who)| !self.approved(gate, &hash, who))
            .map(|(gate, who)| format!("{who} at {gate}"))
    }

    /// An Event when the rollout begins waiting at a gate, and when a webhook says no anew.
    pub(super) fn say_approval(&mut self) {
        let (before, now) = (self.input.status.pending_approval.as_ref(), self.status.pending_approval.clone());
        let Some(p) = now else { return };
        let same_gate = before.is_some_and(|b| b.gate == p.gate && b.hash == p.hash);
        if !same_gate {
            self.event(Reason::ApprovalRequested, messages::approval_requested(&p));
        }
        if p.refused.is_some() && before.and_then(|b| b.refused.as_ref()) != p.refused.as_ref() {
            self.event(Reason::ApprovalRefused, messages::approval_refused(&p));
        }
    }
}
