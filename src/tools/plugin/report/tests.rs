use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Event;
use serde_json::json;

use super::*;
use crate::tools::plugin::screen::{Style, list_table, status_screen, strip_ansi};

fn now() -> Timestamp {
    "2026-11-27T12:00:00Z".parse().unwrap()
}

fn at(secs_ago: i64) -> String {
    (now() - SignedDuration::from_secs(secs_ago)).to_string()
}

/// The runbook's policy (soaks of 8h, 12h and 24h), generation 2, with `status` merged in.
fn policy(status: serde_json::Value) -> RedisPoolPolicy {
    let mut p: RedisPoolPolicy = serde_yaml::from_str(include_str!("../../../../examples/auth-api.yaml")).unwrap();
    p.metadata.generation = Some(2);
    p.metadata.creation_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now() - SignedDuration::from_hours(3)));
    p.status = Some(serde_json::from_value(status).unwrap());
    p
}

fn progressing_at_step_2() -> serde_json::Value {
    json!({
        "phase": "Progressing", "observedGeneration": 2, "environment": "production",
        "step": 1, "progress": "2/3", "weight": 50,
        "message": "step 2/3 (50%): soaking",
        "soak": {"soakedSeconds": 30, "runningSince": at(90), "canary": 5},
        "canary": {"hash": "new", "plan": {"tier": "production", "workers": 4, "connectionsPerWorker": 40, "connectionsPerPod": 160, "replicas": 10}},
        "analysis": {"at": at(4), "verdict": "Pass", "step": 1, "gates": [
            {"gate": "successRate", "value": 99.9, "stable": 99.93, "verdict": "Pass", "message": "ok"},
            {"gate": "p95LatencyMs", "value": 12.5, "verdict": "Pass", "message": "ok"},
            {"gate": "poolUtilization", "value": 35.0, "verdict": "Pass", "message": "ok"},
            {"gate": "poolExhaustionEvents", "value": 0.0, "verdict": "Pass", "message": "ok"},
            {"gate": "redisConnectionErrors", "value": 0.0, "verdict": "Pass", "message": "ok"}
        ]},
        "advice": {"connectionsPerWorker": 16, "freesConnections": 960,
            "message": "production: peak utilization 12% of 40 over 9 analyses; 4 x 16 would keep it under the 60% promote threshold and free 960 Redis connections"},
        "conditions": [{"type": "BudgetOk", "status": "True", "reason": "WithinBudget",
            "message": "planned peak of 2400 connections fits the budget of 8000", "lastTransitionTime": at(600)}]
    })
}

fn deployment(name: &str, replicas: i32, ready: i32, workers: &str, conns: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {}, "template": {"spec": {"containers": [{"name": "api", "env": [
            {"name": "WORKERS", "value": workers}, {"name": "REDIS_POOL_MAX_CONNECTIONS", "value": conns}]}]}}},
        "status": {"readyReplicas": ready, "updatedReplicas": ready}
    }))
    .unwrap()
}

fn event(name: &str, reason: &str, millis_ago: i64, count: i32) -> Event {
    let when = (now() - SignedDuration::from_millis(millis_ago)).to_string();
    serde_json::from_value(json!({
        "metadata": {"name": name}, "involvedObject": {}, "type": "Normal", "reason": reason,
        "message": format!("{reason} happened"), "eventTime": when,
        "series": if count > 1 { json!({"count": count, "lastObservedTime": when}) } else { json!(null) }
    }))
    .unwrap()
}

fn snapshot(status: serde_json::Value) -> Snapshot {
    Snapshot {
        policy: policy(status),
        target: Some(deployment("auth-api", 5, 5, "2", "30")),
        canary: Some(deployment("auth-api-pool-canary", 5, 4, "4", "40")),
        // Two Events of one reconcile, listed newest first, within the same second.
        events: vec![
            event("b", "StepStarted", 10_000, 1),
            event("a", "RolloutStarted", 700_000, 3),
            event("c", "StepAdvanced", 10_400, 1),
        ],
        now: now(),
    }
}

#[test]
fn settled_only_for_the_spec_the_operator_has_seen() {
    let with = |phase: &str, observed: i64| settled(&policy(json!({"phase": phase, "observedGeneration": observed})));
    assert_eq!(with("Succeeded", 2), Some(Settled::Succeeded));
    assert_eq!(with("Idle", 2), Some(Settled::Succeeded));
    for failed in ["RolledBack", "Blocked", "Invalid", "Conflict", "Overridden"] {
        assert_eq!(with(failed, 2), Some(Settled::Failed), "{failed}");
    }
    for active in ["Progressing", "Paused", "Promoting", "Degraded", "RollingBack"] {
        assert_eq!(with(active, 2), None, "{active}");
    }
    // The previous rollout's outcome, before the operator saw the new spec: not done yet.
    assert_eq!(with("Succeeded", 1), None);
    assert_eq!(with("RolledBack", 1), None);
}

#[test]
fn steps_read_the_soak_clock() {
    let r = status_report(&snapshot(progressing_at_step_2()));
    let states: Vec<_> = r.steps.iter().map(|s| (s.number, s.state, s.soaked_seconds)).collect();
    // 30 s soaked before, running for 90 s since: 120 s of the step's soak.
    assert_eq!(
        states,
        vec![(1, StepState::Done, None), (2, StepState::Soaking, Some(120)), (3, StepState::Pending, None)]
    );
    assert_eq!(r.steps[1].pause_seconds, 12 * 3600);

    let mut stopped = progressing_at_step_2();
    stopped["soak"] = json!({"soakedSeconds": 30, "unavailableSince": at(5), "canary": 5});
    let r = status_report(&snapshot(stopped));
    assert_eq!((r.steps[1].state, r.steps[1].soaked_seconds), (StepState::WaitingForCanary, Some(30)));

    let mut paused = progressing_at_step_2();
    paused["phase"] = json!("Paused");
    assert_eq!(status_report(&snapshot(paused)).steps[1].state, StepState::Paused);

    let done = status_report(&snapshot(json!({"phase": "Succeeded", "observedGeneration": 2})));
    assert!(done.steps.iter().all(|s| s.state == StepState::Done));
    let back = status_report(&snapshot(json!({"phase": "RolledBack", "observedGeneration": 2})));
    assert!(back.steps.iter().all(|s| s.state == StepState::NotReached));
}

#[test]
fn gates_carry_their_thresholds_and_waits_are_said() {
    let r = status_report(&snapshot(progressing_at_step_2()));
    let a = r.analysis.as_ref().unwrap();
    assert_eq!(a.step, 2, "steps are 1-based everywhere");
    let success = &a.gates[0];
    assert_eq!((success.promote.as_str(), success.rollback.as_str()), (">= 99.5%", "< 99%"));
    assert_eq!(gates_summary(&r), "Pass: success 99.90%, p95 12.50ms, utilization 35%, exhaustion 0, redis-errors 0");

    let mut fresh = progressing_at_step_2();
    fresh["analysis"] = serde_json::Value::Null;
    assert_eq!(gates_summary(&status_report(&snapshot(fresh))), "waiting for the first analysis");

    // The last analysis belongs to step 1: step 2 has none yet.
    let mut older = progressing_at_step_2();
    older["analysis"]["step"] = json!(0);
    assert_eq!(gates_summary(&status_report(&snapshot(older))), "waiting for the first analysis of step 2");
}

#[test]
fn deployments_show_their_pools_and_events_read_oldest_first() {
    let r = status_report(&snapshot(progressing_at_step_2()));
    let pools: Vec<_> = r.deployments.iter().map(|d| (d.role, d.pool.clone(), d.ready, d.replicas)).collect();
    assert_eq!(pools, vec![("stable", Some("2 x 30".into()), 5, 5), ("canary", Some("4 x 40".into()), 4, 5)]);
    assert_eq!(r.deployments[1].connections_per_pod, Some(160));
    let events: Vec<_> = r.events.iter().map(|e| (e.reason.as_str(), e.age_seconds, e.count)).collect();
    assert_eq!(events, vec![("RolloutStarted", 700, 3), ("StepAdvanced", 10, 1), ("StepStarted", 10, 1)]);

    let mut without_canary = snapshot(json!({"phase": "Idle", "observedGeneration": 2}));
    without_canary.canary = None;
    let r = status_report(&without_canary);
    assert!(!r.deployments[1].exists);
    assert_eq!(summary_line(&r), "Idle  stable 5/5 ready  ");
}

#[test]
fn the_screen_shows_one_step_numbering_and_the_gate_table() {
    let r = status_report(&snapshot(progressing_at_step_2()));
    let plain = status_screen(&r, Style { colour: false }, 8);
    assert!(
        plain.starts_with("RedisPoolPolicy saas/auth-api   Progressing   step 2/3 (50%)   environment production\n"),
        "{plain}"
    );
    assert!(plain.contains("   2    50%  soaking 2m of 12h, 11h58m left\n"), "{plain}");
    assert!(plain.contains("   3   100%  waiting (soak 24h)\n"), "{plain}");
    assert!(plain.contains("  step 2: Pass 4s ago\n"), "{plain}");
    assert!(
        plain.contains("  gate                        canary    stable  promote     rollback    verdict\n"),
        "{plain}"
    );
    assert!(
        plain.contains(
            "  successRate                 99.90%    99.93%  >= 99.5%    < 99%       Pass (no more than 0.5 points below stable)\n"
        ),
        "{plain}"
    );
    assert!(plain.contains("  canary  auth-api-pool-canary               4/5   ready   pool 4 x 40\n"), "{plain}");
    assert!(plain.contains("budget ok: planned peak of 2400 connections fits the budget of 8000"), "{plain}");
    assert!(plain.contains("\nAdvice\n  production: peak utilization 12% of 40 over 9 analyses; 4 x 16"), "{plain}");
    assert!(plain.contains("11m40s ago  Normal  RolloutStarted (x3): RolloutStarted happened"), "{plain}");
    assert!(!plain.contains('\x1b'), "no colour unless asked");
    let coloured = status_screen(&r, Style { colour: true }, 8);
    assert!(coloured.contains("\x1b[33mProgressing\x1b[0m"));
    assert_eq!(strip_ansi(&coloured), plain, "colour changes nothing but colour");
    // Only the newest events fit.
    assert!(!status_screen(&r, Style::default(), 1).contains("RolloutStarted"));
}

#[test]
fn the_list_aligns_columns() {
    let p = policy(progressing_at_step_2());
    let rows = vec![list_row(&p, now())];
    let table = list_table(&rows, true, Style::default());
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(
        lines[0],
        "NAMESPACE   NAME       ENVIRONMENT   PHASE         STEP   WEIGHT   CANARY/STABLE   VERDICT   AGE"
    );
    assert_eq!(
        lines[1],
        "saas        auth-api   production    Progressing   2/3    50%      -               Pass      3h"
    );
}

/// After a rollback the newest verdict is the rolled-back one; analyses still soak the older
/// verdict on what the target runs, and only that one says "watching".
#[test]
fn only_the_watched_verdict_is_watching() {
    let pool = json!({"connectionsPerWorker": 40, "healthCheckIntervalSeconds": 30,
        "retry": {"attempts": 3, "initialBackoffMs": 100, "maxBackoffMs": 2000},
        "socketTimeoutSeconds": 5, "connectTimeoutSeconds": 5});
    let verdict = |hash: &str, result: &str| {
        json!({"hash": hash, "poolHash": format!("pool-{hash}"), "pool": pool, "environment": "production",
            "result": result, "finishedAt": at(600), "soakedSeconds": 300})
    };
    let s = snapshot(json!({
        "phase": "RolledBack", "observedGeneration": 2, "environment": "production",
        "stable": {"hash": "good"},
        "verdicts": [verdict("bad", "RolledBack"), verdict("good", "Succeeded")],
    }));
    let r = status_report(&s);
    let watching: Vec<(&str, bool)> = r.verdicts.iter().map(|v| (v.pool_hash.as_str(), v.soak.is_some())).collect();
    assert_eq!(watching, [("pool-bad", false), ("pool-good", true)]);
    let screen = strip_ansi(&status_screen(&r, Style::default(), 10));
    let line = |pool: &str| screen.lines().find(|l| l.contains(pool)).unwrap_or_default().to_string();
    assert!(!line("pool-bad").contains("watching"), "{screen}");
    assert!(line("pool-good").contains("soaked 5m of 24h, watching"), "{screen}");
}

#[test]
fn the_screen_says_which_freeze_window_holds_and_when_each_opens() {
    let mut status = progressing_at_step_2();
    status["freeze"] = json!({"window": "cluster/year-end", "since": at(7200), "until": at(-3600)});
    status["waitingFor"] = json!("freeze cluster/year-end until Fri 27 Nov 13:00 UTC");
    let mut s = snapshot(status);
    // Friday 27 November 2026, 12:00 UTC: Berlin's weekend window opens at 17:00 UTC.
    let windows = json!([
        {"name": "weekend", "schedule": "0 18 * * FRI", "duration": "63h", "timeZone": "Europe/Berlin"},
        {"name": "black-friday", "start": "2026-11-27T00:00:00Z", "end": "2026-11-28T00:00:00Z"},
        {"name": "last-year", "start": "2025-12-24T00:00:00Z", "end": "2025-12-27T00:00:00Z"}
    ]);
    s.policy.spec.rollout.freeze_windows = serde_json::from_value(windows).unwrap();
    let r = status_report(&s);
    assert_eq!(r.frozen.as_ref().map(|f| (f.window.as_str(), f.held_seconds)), Some(("cluster/year-end", 7200)));
    let plain = status_screen(&r, Style { colour: false }, 8);
    assert!(plain.contains("\nFreeze windows\n  cluster/year-end holds the rollout (for 2h so far)\n"), "{plain}");
    assert!(
        plain.contains("  weekend       0 18 * * FRI for 63h (Europe/Berlin)  opens Fri 27 Nov 18:00 CET\n"),
        "{plain}"
    );
    assert!(
        plain.contains(
            "  black-friday  2026-11-27T00:00:00Z to 2026-11-28T00:00:00Z  holds until Sat 28 Nov 00:00 UTC\n"
        ),
        "{plain}"
    );
    assert!(plain.contains("  last-year     2025-12-24T00:00:00Z to 2025-12-27T00:00:00Z  over\n"), "{plain}");
}

#[test]
fn the_screen_says_which_gate_waits_for_whom_and_who_approved() {
    let mut status = progressing_at_step_2();
    status["pendingApproval"] = json!({"gate": "promotion", "hash": "new", "since": at(300),
        "waitingFor": ["person", "webhook change-ticket"], "refused": "webhook change-ticket: HTTP 409: CHG-1 not approved"});
    status["approvals"] = json!([{"gate": "step-2", "hash": "new", "by": "Person", "who": "alice", "at": at(600)}]);
    let r = status_report(&snapshot(status));
    let plain = status_screen(&r, Style { colour: false }, 8);
    assert!(
        plain.contains("\nApprovals\n  promotion waits for a person (kubectl redispool approve auth-api) and webhook change-ticket (for 5m)\n"),
        "{plain}"
    );
    assert!(plain.contains("  last answer: webhook change-ticket: HTTP 409: CHG-1 not approved\n"), "{plain}");
    assert!(plain.contains("  step-2  approved by alice  10m ago\n"), "{plain}");
}

#[test]
fn the_screen_lists_pending_notices_then_deliveries() {
    let mut status = progressing_at_step_2();
    status["notifications"] = json!({"sequence": 3,
    "outbox": [{"id": 3, "trigger": "StepAdvanced", "at": at(5), "phase": "Progressing", "message": "m", "pending": ["oncall"]}],
    "recent": [
        {"id": 2, "trigger": "RolloutStarted", "destination": "audit", "state": "Failed", "attempts": 6, "at": at(60), "reason": "HTTP 500"},
        {"id": 2, "trigger": "RolloutStarted", "destination": "oncall", "state": "Delivered", "attempts": 1, "at": at(120)}
    ]});
    let r = status_report(&snapshot(status));
    let plain = status_screen(&r, Style { colour: false }, 8);
    assert!(plain.contains("\nNotifications\n  #3   StepAdvanced      oncall         pending 5s ago\n"), "{plain}");
    assert!(
        plain.contains("  #2   RolloutStarted    audit          failed 1m ago (6 attempts): HTTP 500\n"),
        "{plain}"
    );
    assert!(plain.contains("  #2   RolloutStarted    oncall         delivered 2m ago (1 attempt)\n"), "{plain}");
}
