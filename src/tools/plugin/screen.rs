//! Reports as text for people: the `status` screen and the `list` table. Pure; colour only when
//! the caller says the output is a terminal.

use std::fmt::Write as _;

use super::report::{ListRow, StatusReport, StepState, ago, fmt_value, gates_summary};
use crate::core::api::{Phase, Verdict};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Style {
    pub colour: bool,
}

#[derive(Clone, Copy)]
enum Paint {
    Bold,
    Dim,
    Green,
    Yellow,
    Red,
}

impl Style {
    fn paint(self, p: Paint, text: &str) -> String {
        if !self.colour || text.is_empty() {
            return text.to_string();
        }
        let code = match p {
            Paint::Bold => "1",
            Paint::Dim => "2",
            Paint::Green => "32",
            Paint::Yellow => "33",
            Paint::Red => "31",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }

    fn phase(self, phase: Phase) -> String {
        let p = match phase {
            Phase::Succeeded | Phase::Idle => Paint::Green,
            Phase::Progressing | Phase::Paused | Phase::Promoting => Paint::Yellow,
            _ => Paint::Red,
        };
        self.paint(p, &format!("{phase:?}"))
    }

    fn verdict(self, v: Verdict) -> String {
        let p = match v {
            Verdict::Pass => Paint::Green,
            Verdict::Hold => Paint::Yellow,
            Verdict::Fail => Paint::Red,
            Verdict::NoData => Paint::Dim,
            Verdict::Inconclusive => Paint::Yellow,
        };
        self.paint(p, &format!("{v:?}"))
    }
}

/// Pads `text` (which may carry colour codes) to `width` visible characters.
fn pad(text: &str, width: usize) -> String {
    let visible = strip_ansi(text).chars().count();
    format!("{text}{}", " ".repeat(width.saturating_sub(visible)))
}

pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The `status` screen: header, plan, steps, the last analysis's gates, the Deployments,
/// conditions, history and the newest Events.
pub fn status_screen(r: &StatusReport, style: Style, max_events: usize) -> String {
    let mut s = String::new();
    header(&mut s, r, style);
    plan(&mut s, r, style);
    notes(&mut s, r, style);
    verdicts(&mut s, r, style);
    steps(&mut s, r, style);
    analysis(&mut s, r, style);
    deployments(&mut s, r, style);
    conditions(&mut s, r, style);
    history(&mut s, r, style);
    events(&mut s, r, style, max_events);
    s
}

/// The policy, its phase, step and environment, and what the operator says.
fn header(s: &mut String, r: &StatusReport, style: Style) {
    let step = r.progress.as_ref().map(|p| format!("   step {p} ({}%)", r.weight.unwrap_or(0))).unwrap_or_default();
    let env = r.environment.as_ref().map(|e| format!("   environment {e}")).unwrap_or_default();
    let _ = writeln!(
        s,
        "{}   {}{step}{env}",
        style.paint(Paint::Bold, &format!("RedisPoolPolicy {}/{}", r.namespace, r.name)),
        style.phase(r.phase)
    );
    if let Some(m) = &r.message {
        let _ = writeln!(s, "  {m}");
    }
}

/// The pool plan in force and its budget.
fn plan(s: &mut String, r: &StatusReport, style: Style) {
    if let Some(plan) = &r.plan {
        let p = &plan.pool;
        let _ = writeln!(s, "\n{}", style.paint(Paint::Bold, "Plan"));
        let _ = writeln!(
            s,
            "  {}: {} workers x {} connections = {} per pod, {} replicas",
            p.tier, p.workers, p.connections_per_worker, p.connections_per_pod, p.replicas
        );
        if let Some(b) = &plan.budget {
            let mark = match plan.budget_ok {
                Some(true) => style.paint(Paint::Green, "budget ok"),
                Some(false) => style.paint(Paint::Red, "budget exceeded"),
                None => "budget".into(),
            };
            let _ = writeln!(s, "  {mark}: {b}");
        }
    }
}

/// Advice, and what the policy waits for.
fn notes(s: &mut String, r: &StatusReport, style: Style) {
    if let Some(a) = &r.advice {
        let _ = writeln!(s, "\n{}\n  {a}", style.paint(Paint::Bold, "Advice"));
    }

    if let Some(w) = &r.waiting_for {
        let _ = writeln!(s, "\n{}\n  {w}", style.paint(Paint::Bold, "Waiting for"));
    }
    if r.frozen.is_some() || !r.freeze_windows.is_empty() {
        let _ = writeln!(s, "\n{}", style.paint(Paint::Bold, "Freeze windows"));
    }
    if let Some(f) = &r.frozen {
        let held = style.paint(Paint::Yellow, &format!("{} holds the rollout", f.window));
        let _ = writeln!(s, "  {held} (for {} so far)", ago(f.held_seconds));
    }
    let width = r.freeze_windows.iter().map(|w| w.name.len()).max().unwrap_or(0);
    for w in &r.freeze_windows {
        let _ = writeln!(s, "  {}  {}  {}", pad(&w.name, width), w.when, w.state);
    }
    approvals(s, r, style);
    notifications(s, r, style);
}

/// The notices waiting to be told and the last deliveries.
fn notifications(s: &mut String, r: &StatusReport, style: Style) {
    if r.notifications.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n{}", style.paint(Paint::Bold, "Notifications"));
    for n in &r.notifications {
        let state = match n.state.as_str() {
            "Delivered" => style.paint(Paint::Green, "delivered"),
            "Failed" => style.paint(Paint::Red, "failed"),
            _ => style.paint(Paint::Yellow, "pending"),
        };
        let tries = match n.attempts {
            0 => String::new(),
            1 => " (1 attempt)".into(),
            k => format!(" ({k} attempts)"),
        };
        let why = n.reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default();
        let trigger = format!("{:?}", n.trigger);
        let _ = writeln!(
            s,
            "  #{:<3} {trigger:<17} {:<14} {state} {} ago{tries}{why}",
            n.id,
            n.destination,
            ago(n.age_seconds)
        );
    }
}

/// The gate the rollout waits at, and the approvals it was given.
fn approvals(s: &mut String, r: &StatusReport, style: Style) {
    if r.pending_approval.is_none() && r.approvals.is_empty() {
        return;
    }
    let _ = writeln!(s, "\n{}", style.paint(Paint::Bold, "Approvals"));
    if let Some(p) = &r.pending_approval {
        let who: Vec<String> = p
            .waiting_for
            .iter()
            .map(|w| match w.as_str() {
                "person" => format!("a person (kubectl redispool approve {})", r.name),
                other => other.to_string(),
            })
            .collect();
        let waits = style.paint(Paint::Yellow, &format!("{} waits", p.gate));
        let _ = writeln!(s, "  {waits} for {} (for {})", who.join(" and "), ago(p.waiting_seconds));
        if let Some(no) = &p.refused {
            let _ = writeln!(s, "  last answer: {no}");
        }
    }
    for a in &r.approvals {
        let _ = writeln!(s, "  {}  approved by {}  {} ago", a.gate, a.who, ago(a.age_seconds));
    }
}

/// The verdicts its rollouts left, and which one analyses soak now.
fn verdicts(s: &mut String, r: &StatusReport, style: Style) {
    if !r.verdicts.is_empty() {
        let _ = writeln!(s, "\n{}", style.paint(Paint::Bold, "Verdicts"));
        for v in &r.verdicts {
            let result = match v.result {
                crate::core::api::VerdictResult::Succeeded => style.paint(Paint::Green, "Succeeded"),
                other => style.paint(Paint::Red, &format!("{other:?}")),
            };
            let soak = match &v.soak {
                Some(of) => format!("soaked {} of {of}, watching", ago(v.soaked_seconds)),
                None => format!("soaked {}", ago(v.soaked_seconds)),
            };
            let why = v.reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default();
            let _ = writeln!(
                s,
                "  worker pool {} ({} per worker)  {}  {result}  {soak}  {} ago{why}",
                v.pool_hash,
                v.connections_per_worker,
                v.environment,
                ago(v.age_seconds)
            );
        }
    }
}

/// Each step and where its soak stands.
fn steps(s: &mut String, r: &StatusReport, style: Style) {
    if !r.steps.is_empty() {
        let _ = writeln!(s, "\n{}", style.paint(Paint::Bold, "Steps"));
        for st in &r.steps {
            let pause = ago(st.pause_seconds);
            let soaked = st.soaked_seconds.unwrap_or(0);
            let state = match st.state {
                StepState::Done => style.paint(Paint::Green, "done"),
                StepState::Soaking => {
                    let left = (st.pause_seconds - soaked).max(0);
                    style.paint(Paint::Yellow, &format!("soaking {} of {pause}, {} left", ago(soaked), ago(left)))
                }
                StepState::WaitingForCanary => style.paint(
                    Paint::Yellow,
                    &format!("waiting for canary pods; soak stopped at {} of {pause}", ago(soaked)),
                ),
                StepState::Paused => {
                    style.paint(Paint::Yellow, &format!("paused at {} of {pause}; resume to go on", ago(soaked)))
                }
                StepState::Pending => style.paint(Paint::Dim, &format!("waiting (soak {pause})")),
                StepState::NotReached => style.paint(Paint::Dim, "-"),
            };
            let _ = writeln!(s, "  {:>2}  {:>4}%  {state}", st.number, st.weight);
        }
    }
}

/// The latest analysis: its verdict and each gate beside its thresholds.
fn analysis(s: &mut String, r: &StatusReport, style: Style) {
    let _ = writeln!(s, "\n{}", style.paint(Paint::Bold, "Analysis"));
    match &r.analysis {
        Some(a) => {
            let by = a.decided_by.as_ref().map(|g| format!(", decided by {g}")).unwrap_or_default();
            let fails = if a.consecutive_failures > 0 {
                format!(", {} failed in a row", a.consecutive_failures)
            } else {
                String::new()
            };
            // After a promotion (and after a rollback) analyses watch the target's own pods.
            let of = if a.after_promotion { "the target's pods".to_string() } else { format!("step {}", a.step) };
            let _ = writeln!(s, "  {of}: {} {} ago{by}{fails}", style.verdict(a.verdict), ago(a.age_seconds));
            let waiting = gates_summary(r);
            if waiting.starts_with("waiting") {
                let _ = writeln!(s, "  {waiting}");
            }
            if let Some(e) = &a.environment {
                let _ = writeln!(s, "  {}", style.paint(Paint::Yellow, &format!("the environment is at fault: {e}")));
            }
            let _ = writeln!(
                s,
                "  {:<24}{:>10}{:>10}  {:<12}{:<12}verdict",
                "gate", "canary", "stable", "promote", "rollback"
            );
            for g in &a.gates {
                let value = |v: Option<f64>| v.map_or("-".into(), |v| fmt_value(v, g.unit));
                let dry = if g.dry_run { " (dry run: shown, never counted)" } else { "" };
                let relative = g.relative.as_ref().map(|r| format!(" ({r})")).unwrap_or_default();
                let _ = writeln!(
                    s,
                    "  {:<24}{:>10}{:>10}  {:<12}{:<12}{}{dry}{relative}",
                    g.gate.name(),
                    value(g.value),
                    value(g.stable),
                    g.promote,
                    g.rollback,
                    style.verdict(g.verdict)
                );
            }
        }
        None => {
            let what = if r.phase.is_active() { "waiting for the first analysis" } else { "none yet" };
            let _ = writeln!(s, "  {}", style.paint(Paint::Dim, what));
        }
    }
}

/// The stable and the canary Deployments.
fn deployments(s: &mut String, r: &StatusReport, style: Style) {
    let _ = writeln!(s, "\n{}", style.paint(Paint::Bold, "Deployments"));
    for d in &r.deployments {
        if !d.exists {
            let _ = writeln!(s, "  {:<7} {:<32} {}", d.role, d.name, style.paint(Paint::Dim, "absent"));
            continue;
        }
        let pool = d.pool.as_ref().map(|p| format!("pool {p}")).unwrap_or_default();
        let _ = writeln!(s, "  {:<7} {:<32} {:>3}/{:<3} ready   {pool}", d.role, d.name, d.ready, d.replicas);
    }
}

fn conditions(s: &mut String, r: &StatusReport, style: Style) {
    if !r.conditions.is_empty() {
        let _ = writeln!(s, "\n{}", style.paint(Paint::Bold, "Conditions"));
        for c in &r.conditions {
            let status = match c.status.as_str() {
                "True" => style.paint(Paint::Green, "True"),
                "False" => style.paint(Paint::Red, "False"),
                other => style.paint(Paint::Yellow, other),
            };
            let _ = writeln!(s, "  {}{} {}: {}", pad(&c.type_, 16), pad(&status, 8), c.reason, c.message);
        }
    }
}

fn history(s: &mut String, r: &StatusReport, style: Style) {
    if !r.history.is_empty() {
        let _ = writeln!(s, "\n{}", style.paint(Paint::Bold, "History"));
        for h in &r.history {
            let _ = writeln!(s, "  {:>6} ago  {:<11} {}  {}", ago(h.age_seconds), h.outcome, h.hash, h.reason);
        }
    }
}

/// The newest `max_events` Events.
fn events(s: &mut String, r: &StatusReport, style: Style, max_events: usize) {
    if !r.events.is_empty() {
        let _ = writeln!(s, "\n{}", style.paint(Paint::Bold, "Events"));
        let skip = r.events.len().saturating_sub(max_events);
        for e in &r.events[skip..] {
            let kind = if e.type_ == "Warning" { style.paint(Paint::Red, "Warning") } else { e.type_.clone() };
            let times = if e.count > 1 { format!(" (x{})", e.count) } else { String::new() };
            let _ =
                writeln!(s, "  {:>6} ago  {} {}{times}: {}", ago(e.age_seconds), pad(&kind, 7), e.reason, e.message);
        }
    }
}

/// The `list` table, kubectl style.
pub fn list_table(rows: &[ListRow], all_namespaces: bool, style: Style) -> String {
    let mut table: Vec<Vec<String>> = Vec::new();
    let mut header = vec!["NAME", "ENVIRONMENT", "PHASE", "STEP", "WEIGHT", "CANARY/STABLE", "VERDICT", "AGE"];
    if all_namespaces {
        header.insert(0, "NAMESPACE");
    }
    table.push(header.into_iter().map(String::from).collect());
    for r in rows {
        let mut row = vec![
            r.name.clone(),
            r.environment.clone().unwrap_or_else(|| "-".into()),
            style.phase(r.phase),
            r.progress.clone().unwrap_or_else(|| "-".into()),
            r.weight.map_or("-".into(), |w| format!("{w}%")),
            r.replicas.clone().unwrap_or_else(|| "-".into()),
            r.verdict.map_or("-".into(), |v| style.verdict(v)),
            ago(r.age_seconds),
        ];
        if all_namespaces {
            row.insert(0, r.namespace.clone());
        }
        table.push(row);
    }
    let widths: Vec<usize> = (0..table[0].len())
        .map(|i| table.iter().map(|row| strip_ansi(&row[i]).chars().count()).max().unwrap_or(0))
        .collect();
    let mut s = String::new();
    for row in &table {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| pad(c, *w)).collect();
        let _ = writeln!(s, "{}", cells.join("   ").trim_end());
    }
    s
}
