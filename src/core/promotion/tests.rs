//! The verdict gate: table tests from the runbook (staging proves a pool for 24h before
//! production), and properties: nothing starts without a matching verdict, a changed pool needs
//! a new one, and a verdict on another pool or environment never counts.

use jiff::SignedDuration;
use proptest::prelude::*;

use super::*;
use crate::core::api::PoolSettings;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

fn pool(connections_per_worker: i32) -> WorkerPool {
    WorkerPool::new(&PoolSettings::default(), connections_per_worker)
}

fn verdict(p: &WorkerPool, environment: &str, result: VerdictResult, soaked_hours: i64) -> RolloutVerdict {
    RolloutVerdict {
        hash: format!("cfg{}", p.connections_per_worker),
        pool_hash: p.hash(),
        pool: p.clone(),
        environment: environment.into(),
        result,
        finished_at: Time("2026-11-27T00:00:00Z".parse().unwrap()),
        soaked_seconds: soaked_hours * 3600,
        clean_at: None,
        analyses: 0,
        reason: (result != VerdictResult::Succeeded).then(|| "successRate 97.1% is below 99".into()),
        watch_ended: None,
    }
}

fn staging(verdicts: Vec<RolloutVerdict>, soak_hours: i64) -> Required {
    Required {
        from: "staging/auth-api".into(),
        environment: "staging".into(),
        soak: SignedDuration::from_hours(soak_hours),
        found: Ok(Some(Found { verdicts, watches: SignedDuration::from_hours(24) })),
    }
}

fn message(g: &Clearance) -> String {
    match g {
        Clearance::Clear(met) => met.join("; "),
        Clearance::Wait { message, .. } => message.clone(),
        Clearance::Refuse(why) => why.clone(),
    }
}

#[test]
fn equal_pools_hash_equal_and_every_field_counts() {
    assert_eq!(pool(40).hash(), pool(40).hash());
    let base = pool(40);
    let mut variants = vec![pool(41)];
    let mut p = base.clone();
    p.health_check_interval_seconds += 1;
    variants.push(p);
    let mut p = base.clone();
    p.retry.attempts += 1;
    variants.push(p);
    let mut p = base.clone();
    p.retry.initial_backoff_ms += 1;
    variants.push(p);
    let mut p = base.clone();
    p.retry.max_backoff_ms += 1;
    variants.push(p);
    let mut p = base.clone();
    p.socket_timeout_seconds += 1;
    variants.push(p);
    let mut p = base.clone();
    p.connect_timeout_seconds += 1;
    variants.push(p);
    for v in &variants {
        assert_ne!(v.hash(), base.hash(), "{v:?}");
        assert_eq!(base.differences(v).len(), 1, "{v:?}");
    }
    assert_eq!(pool(40).differences(&pool(30)), vec!["connectionsPerWorker 30 there, 40 here".to_string()]);
}

#[test]
fn the_runbook_chain() {
    let p = pool(40);
    let h = p.hash();
    let cases: Vec<(&str, Vec<RolloutVerdict>, &str)> = vec![
        ("no verdict yet", vec![], "waiting for staging/auth-api: no verdict in staging yet"),
        (
            "a verdict on another pool",
            vec![verdict(&pool(30), "staging", VerdictResult::Succeeded, 48)],
            "connectionsPerWorker 30 there, 40 here",
        ),
        (
            "a verdict from another environment",
            vec![verdict(&p, "development", VerdictResult::Succeeded, 48)],
            "no verdict in staging yet",
        ),
        ("soaking", vec![verdict(&p, "staging", VerdictResult::Succeeded, 6)], "soaked 6h of 24h in staging"),
        ("rolled back", vec![verdict(&p, "staging", VerdictResult::RolledBack, 0)], "rolled back worker pool"),
        ("failed after promotion", vec![verdict(&p, "staging", VerdictResult::Failed, 3)], "after its promotion"),
        ("proved", vec![verdict(&p, "staging", VerdictResult::Succeeded, 24)], "proved worker pool"),
    ];
    for (case, verdicts, expect) in cases {
        let gate = check(&p, &[staging(verdicts, 24)]);
        let text = message(&gate);
        assert!(text.contains(expect), "{case}: {text}");
        let kind = match &gate {
            Clearance::Clear(_) => "clear",
            Clearance::Wait { .. } => "wait",
            Clearance::Refuse(_) => "refuse",
        };
        let want = match case {
            "rolled back" | "failed after promotion" => "refuse",
            "proved" => "clear",
            _ => "wait",
        };
        assert_eq!(kind, want, "{case}: {text}");
        if let Clearance::Wait { short, .. } = &gate
            && case == "soaking"
        {
            assert_eq!(short, "staging/auth-api 6h/24h");
        }
    }
    assert!(h.len() == 10);
}

#[test]
fn unreadable_waits_and_a_soak_that_can_never_come_refuses() {
    let p = pool(40);
    let mut r = staging(vec![], 24);
    r.found = Err(Unreadable::Timeout(5));
    let gate = check(&p, &[r]);
    assert!(
        matches!(&gate, Clearance::Wait { message, .. } if message.contains("cannot read it: no answer")),
        "{gate:?}"
    );
    let mut r = staging(vec![verdict(&p, "staging", VerdictResult::Succeeded, 12)], 48);
    r.found.as_mut().unwrap().as_mut().unwrap().watches = SignedDuration::from_hours(12);
    let gate = check(&p, &[r]);
    assert!(matches!(&gate, Clearance::Refuse(why) if why.contains("can never soak the 48h")), "{gate:?}");
}

#[test]
fn a_refusal_wins_over_a_wait_and_every_requirement_must_be_met() {
    let p = pool(40);
    let ok = staging(vec![verdict(&p, "staging", VerdictResult::Succeeded, 24)], 24);
    let mut canary_env = staging(vec![], 1);
    canary_env.environment = "canary".into();
    canary_env.from = "canary/auth-api".into();
    assert!(matches!(check(&p, &[ok.clone(), canary_env.clone()]), Clearance::Wait { .. }));
    let mut refused = canary_env.clone();
    refused.found = Ok(Some(Found {
        verdicts: vec![verdict(&p, "canary", VerdictResult::RolledBack, 0)],
        watches: SignedDuration::from_hours(24),
    }));
    let mut unreadable = ok.clone();
    unreadable.found = Err(Unreadable::Unreachable("connection refused".into()));
    assert!(matches!(check(&p, &[unreadable, refused]), Clearance::Refuse(_)));
    assert!(matches!(check(&p, &[]), Clearance::Clear(m) if m.is_empty()));
}

#[test]
fn remembering_keeps_one_verdict_per_pool_newest_first() {
    let mut kept = Vec::new();
    for cpw in [30, 40, 30, 50, 60, 70, 80] {
        remember(&mut kept, verdict(&pool(cpw), "staging", VerdictResult::Succeeded, 1));
    }
    let order: Vec<i32> = kept.iter().map(|v| v.pool.connections_per_worker).collect();
    assert_eq!(order, vec![80, 70, 60, 50, 30]);
}

fn arb_pool() -> impl Strategy<Value = WorkerPool> {
    (prop_oneof![Just(30), Just(40)], prop_oneof![Just(3), Just(5)]).prop_map(|(cpw, attempts)| {
        let mut p = pool(cpw);
        p.retry.attempts = attempts;
        p
    })
}

fn arb_verdict() -> impl Strategy<Value = RolloutVerdict> {
    let result = prop_oneof![
        4 => Just(VerdictResult::Succeeded),
        1 => Just(VerdictResult::RolledBack),
        1 => Just(VerdictResult::Failed)
    ];
    (arb_pool(), prop_oneof![Just("staging"), Just("development")], result, 0i64..48)
        .prop_map(|(p, env, result, hours)| verdict(&p, env, result, hours))
}

fn arb_required() -> impl Strategy<Value = Required> {
    (prop::collection::vec(arb_verdict(), 0..4), 0i64..30, 0..10).prop_map(|(verdicts, soak, readable)| {
        let mut r = staging(verdicts, soak);
        match readable {
            0 => r.found = Err(Unreadable::Unreachable("unreachable".into())),
            1 => r.found = Ok(None),
            _ => {}
        }
        r
    })
}

fn matches_requirement(p: &WorkerPool, r: &Required) -> bool {
    r.found.as_ref().ok().and_then(Option::as_ref).is_some_and(|f| {
        f.verdicts.iter().any(|v| {
            v.environment == r.environment
                && v.pool_hash == p.hash()
                && v.result == VerdictResult::Succeeded
                && v.soaked() >= r.soak
        })
    })
}

proptest! {
    /// Clear only when every requirement has a succeeded verdict, on this very pool, in its
    /// environment, soaked long enough.
    #[test]
    fn nothing_starts_without_a_matching_verdict(p in arb_pool(), required in prop::collection::vec(arb_required(), 0..3)) {
        if let Clearance::Clear(_) = check(&p, &required) {
            for r in &required {
                prop_assert!(matches_requirement(&p, r), "cleared without a verdict: {r:?}");
            }
        }
    }

    /// A pool that differs in any compared field needs its own verdict: one that clears pool A
    /// never clears pool B.
    #[test]
    fn a_changed_pool_needs_a_new_verdict(a in arb_pool(), field in 0usize..7, by in 1i32..100, soak in 0i64..30, hours in 0i64..48) {
        let mut b = a.clone();
        match field {
            0 => b.connections_per_worker += by,
            1 => b.health_check_interval_seconds += by,
            2 => b.retry.attempts += by,
            3 => b.retry.initial_backoff_ms += by,
            4 => b.retry.max_backoff_ms += by,
            5 => b.socket_timeout_seconds += by,
            _ => b.connect_timeout_seconds += by,
        }
        let required = [staging(vec![verdict(&a, "staging", VerdictResult::Succeeded, hours)], soak)];
        prop_assert!(!matches!(check(&b, &required), Clearance::Clear(_)));
    }

    /// Verdicts on other pools, or from other environments, change nothing about whether a
    /// policy may start.
    #[test]
    fn a_verdict_for_another_configuration_never_counts(p in arb_pool(), r in arb_required(), noise in prop::collection::vec(arb_verdict(), 0..4)) {
        let kind = |g: &Clearance| std::mem::discriminant(g);
        let before = check(&p, std::slice::from_ref(&r));
        let mut noisy = r.clone();
        if let Ok(Some(found)) = &mut noisy.found {
            let mine = found.verdicts.iter().find(|v| v.environment == r.environment && v.pool_hash == p.hash()).cloned();
            // Noise on other pools or environments only (the newest verdict of a pool is its own).
            found.verdicts.extend(noise.into_iter().filter(|v| v.environment != r.environment || v.pool_hash != p.hash()));
            if let Some(m) = mine {
                found.verdicts.retain(|v| v.pool_hash != p.hash() || v.environment != r.environment);
                found.verdicts.insert(0, m);
            }
        }
        prop_assert_eq!(kind(&check(&p, &[noisy])), kind(&before));
    }
}
