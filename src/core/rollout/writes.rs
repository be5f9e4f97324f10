//! When a decided status is written. Status is the rollout's memory and what a person reads, so
//! whatever a decision or a person depends on is written at once. What only moves because time
//! passed and analyses ran (the latest analysis's time and values, the pool utilization seen, a
//! verdict's soak, a message that counts minutes) waits in the operator's memory and is written at
//! most once a minute: during a rollout most analyses change nothing else.

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::core::api::RedisPoolPolicyStatus;

/// How long analysis tallies may wait before they are written.
pub const TALLIES_EVERY: SignedDuration = SignedDuration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusWrite {
    /// The decided status is the stored one.
    Nothing,
    /// Something a decision or a person depends on changed.
    Now,
    /// Only tallies changed, and they are a minute old: write them (no decision rides on them,
    /// so they need no fresh read; the write is still conditional on the resourceVersion).
    Tallies,
    /// Only tallies changed: keep the decided status in memory and decide on it next time.
    Later,
}

impl StatusWrite {
    pub fn writes(self) -> bool {
        matches!(self, StatusWrite::Now | StatusWrite::Tallies)
    }
}

/// Whether `decided` is written over `stored`, given when the operator last wrote this policy's
/// status (None: not since it started, so it writes).
pub fn status_write(
    stored: Option<&RedisPoolPolicyStatus>,
    decided: &RedisPoolPolicyStatus,
    last_write: Option<Timestamp>,
    now: Timestamp,
) -> StatusWrite {
    let Some(stored) = stored else { return StatusWrite::Now };
    if stored == decided {
        return StatusWrite::Nothing;
    }
    if without_tallies(stored) != without_tallies(decided) {
        return StatusWrite::Now;
    }
    match last_write {
        Some(at) if now.duration_since(at) < TALLIES_EVERY => StatusWrite::Later,
        _ => StatusWrite::Tallies,
    }
}

/// The status with what only counts time and analyses blanked out.
fn without_tallies(status: &RedisPoolPolicyStatus) -> RedisPoolPolicyStatus {
    let epoch = || Time(Timestamp::UNIX_EPOCH);
    let mut s = status.clone();
    // Ready or Progressing carries the message.
    for c in s.conditions.iter_mut().filter(|c| Some(&c.message) == s.message.as_ref()) {
        c.message.clear();
    }
    s.message = None;
    if let Some(a) = s.analysis.as_mut() {
        // The verdict, the failures in a row and the step stay: those are decisions.
        a.at = epoch();
        a.gates.clear();
    }
    if let Some(p) = s.pool_seen.as_mut() {
        p.peak_utilization = 0.0;
        p.exhaustion_events = 0;
        p.analyses = 0;
        p.last = None;
    }
    for v in &mut s.verdicts {
        v.analyses = 0;
        v.soaked_seconds = 0;
        v.clean_at = None;
    }
    // Advice says over how long and how many analyses it was seen; what it advises is news.
    if let Some(a) = s.advice.as_mut() {
        a.message.clear();
    }
    // A hold that began is news; how long it has lasted is a tally.
    if let Some(held) = s.soak.as_mut().and_then(|k| k.held_until.as_mut()) {
        *held = epoch();
    }
    s
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

    use super::*;
    use crate::core::analysis::Verdict;
    use crate::core::api::{AnalysisStatus, GateResult, Phase, PoolSeen, SoakStatus};

    fn at(s: i64) -> Time {
        Time(Timestamp::from_second(1_800_000_000 + s).unwrap())
    }

    fn gate(value: f64) -> GateResult {
        GateResult {
            gate: crate::core::api::Gate::PoolUtilization,
            value: Some(value),
            verdict: Verdict::Pass,
            message: format!("{value}"),
            stable: None,
            dry_run: false,
        }
    }

    /// A step's soak, analysed at `t` seconds.
    fn analysing(t: i64, utilization: f64) -> RedisPoolPolicyStatus {
        let mut s = RedisPoolPolicyStatus {
            phase: Phase::Progressing,
            step: Some(0),
            message: Some(format!("step 1/3 (10%): 1/1 canary pods available; soaked {t}s of 10m; last analysis Pass")),
            analysis: Some(AnalysisStatus {
                at: at(t),
                verdict: Verdict::Pass,
                decided_by: None,
                gates: vec![gate(utilization)],
                consecutive_failures: 0,
                provider_errors: 0,
                step: 0,
                after_promotion: false,
                environment: None,
            }),
            pool_seen: Some(PoolSeen {
                hash: "abc".into(),
                peak_utilization: utilization,
                analyses: (t / 30) as i32,
                since: Some(at(0)),
                last: Some(at(t)),
                ..Default::default()
            }),
            soak: Some(SoakStatus { running_since: Some(at(0)), canary: 1, ..Default::default() }),
            ..Default::default()
        };
        // As the core sets them: Progressing carries the message during a rollout.
        s.conditions = vec![
            condition("Progressing", "True", s.message.clone().unwrap()),
            condition("BudgetOk", "True", "fits".into()),
        ];
        s
    }

    fn condition(type_: &str, status: &str, message: String) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: "Progressing".into(),
            message,
            last_transition_time: at(0),
            observed_generation: Some(1),
        }
    }

    fn now(s: i64) -> Timestamp {
        at(s).0
    }

    #[test]
    fn nothing_changed_writes_nothing() {
        let s = analysing(30, 0.4);
        assert_eq!(status_write(Some(&s), &s.clone(), None, now(30)), StatusWrite::Nothing);
    }

    #[test]
    fn a_first_status_is_written() {
        assert_eq!(status_write(None, &analysing(0, 0.1), Some(now(0)), now(0)), StatusWrite::Now);
    }

    #[test]
    fn tallies_wait_a_minute_from_the_last_write() {
        let stored = analysing(30, 0.4);
        let decided = analysing(60, 0.5);
        assert_eq!(status_write(Some(&stored), &decided, Some(now(30)), now(60)), StatusWrite::Later);
        assert_eq!(status_write(Some(&stored), &decided, Some(now(30)), now(89)), StatusWrite::Later);
        assert_eq!(status_write(Some(&stored), &decided, Some(now(30)), now(90)), StatusWrite::Tallies);
        // After a restart the operator does not know when it last wrote: it writes.
        assert_eq!(status_write(Some(&stored), &decided, None, now(60)), StatusWrite::Tallies);
    }

    #[test]
    fn what_a_decision_or_a_person_reads_is_written_at_once() {
        let stored = analysing(30, 0.4);
        let last = Some(now(30));
        type Change = Box<dyn Fn(&mut RedisPoolPolicyStatus)>;
        let changes: Vec<(&str, Change)> = vec![
            ("phase", Box::new(|s| s.phase = Phase::Paused)),
            ("step", Box::new(|s| s.step = Some(1))),
            ("verdict", Box::new(|s| s.analysis.as_mut().unwrap().verdict = Verdict::Hold)),
            ("failures in a row", Box::new(|s| s.analysis.as_mut().unwrap().consecutive_failures = 1)),
            ("provider errors", Box::new(|s| s.analysis.as_mut().unwrap().provider_errors = 1)),
            ("the gate that decided", Box::new(|s| s.analysis.as_mut().unwrap().decided_by = Some("x".into()))),
            ("a new pool seen", Box::new(|s| s.pool_seen.as_mut().unwrap().hash = "def".into())),
            ("a hold begins", Box::new(|s| s.soak.as_mut().unwrap().held_until = Some(at(60)))),
            ("canary pods go missing", Box::new(|s| s.soak.as_mut().unwrap().unavailable_since = Some(at(60)))),
            ("no analysis", Box::new(|s| s.analysis = None)),
            ("a condition's own message", Box::new(|s| s.conditions[1].message = "over".into())),
            ("a condition flips", Box::new(|s| s.conditions[0].status = "False".into())),
        ];
        for (what, change) in changes {
            let mut decided = analysing(60, 0.5);
            change(&mut decided);
            assert_eq!(status_write(Some(&stored), &decided, last, now(60)), StatusWrite::Now, "{what}");
        }
    }

    #[test]
    fn a_verdict_soaking_is_a_tally_and_its_result_is_not() {
        use crate::core::api::{RolloutVerdict, VerdictResult, WorkerPool};
        let watched = |t: i64, result| {
            let mut s = analysing(t, 0.4);
            s.phase = Phase::Succeeded;
            s.verdicts = vec![RolloutVerdict {
                hash: "abc".into(),
                pool_hash: "p".into(),
                pool: WorkerPool::new(&Default::default(), 40),
                environment: "production".into(),
                result,
                finished_at: at(0),
                soaked_seconds: t,
                clean_at: Some(at(t)),
                analyses: (t / 30) as i32,
                reason: None,
                watch_ended: None,
            }];
            s
        };
        let stored = watched(30, VerdictResult::Succeeded);
        let last = Some(now(30));
        assert_eq!(
            status_write(Some(&stored), &watched(60, VerdictResult::Succeeded), last, now(60)),
            StatusWrite::Later
        );
        assert_eq!(status_write(Some(&stored), &watched(60, VerdictResult::Failed), last, now(60)), StatusWrite::Now);
    }

    #[test]
    fn advice_counting_analyses_is_a_tally_and_what_it_advises_is_not() {
        let advised = |t: i64, cpw: i32| {
            let mut s = analysing(t, 0.1);
            s.advice = Some(crate::core::api::Advice {
                connections_per_worker: cpw,
                frees_connections: 100,
                message: format!("peak 10% over {t}s ({} analyses)", t / 30),
            });
            s
        };
        let last = Some(now(30));
        assert_eq!(status_write(Some(&advised(30, 20)), &advised(60, 20), last, now(60)), StatusWrite::Later);
        assert_eq!(status_write(Some(&advised(30, 20)), &advised(60, 10), last, now(60)), StatusWrite::Now);
    }

    #[test]
    fn how_long_a_hold_lasted_is_a_tally() {
        let mut stored = analysing(30, 0.4);
        stored.soak.as_mut().unwrap().held_until = Some(at(30));
        let mut decided = analysing(60, 0.4);
        decided.soak.as_mut().unwrap().held_until = Some(at(60));
        assert_eq!(status_write(Some(&stored), &decided, Some(now(30)), now(60)), StatusWrite::Later);
    }
}
