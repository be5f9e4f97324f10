//! Health gates: measured pool signals -> Pass / Hold / Fail. Pure.
//!
//! Each gate compares one signal against its promote and rollback thresholds; between the two
//! lies the hold zone (do not advance, do not roll back yet). A signal that is missing, or a rate
//! computed from too few requests, is `NoData`, which is never a Pass.

pub mod beside;
pub mod contract;
pub mod prometheus;
pub mod redis;
pub mod statistics;

use serde::{Deserialize, Serialize};

use crate::core::api::{AnalysisSpec, OnNoData, RedisPoolPolicySpec};
pub use crate::core::api::{Gate, GateResult, Verdict};

/// What one analysis interval measured on the canary pods (deltas over the interval).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Measurements {
    /// Requests served in the interval.
    pub requests: Option<i64>,
    /// Percent of those that succeeded.
    pub success_rate: Option<f64>,
    pub p95_latency_ms: Option<f64>,
    /// Highest pool utilization (percent) seen on any canary pod.
    pub pool_utilization: Option<f64>,
    pub pool_exhaustion_events: Option<i64>,
    pub redis_connection_errors: Option<i64>,
    /// Failed requests in the interval: with `requests`, the counts behind `success_rate` that
    /// a comparison with the stable weighs.
    pub failed_requests: Option<i64>,
    /// Pods whose counters were diffed: what per-pod comparisons divide by.
    pub pods: Option<i64>,
    /// The interval's latency histogram, when the provider has one: for the rank test.
    pub latency: Option<Buckets>,
    /// Connections the server refused for want of client slots ("max number of clients
    /// reached"), of `redis_connection_errors`, when the workload tells them apart.
    pub max_clients_errors: Option<i64>,
}

/// A latency histogram over one interval: bucket bounds (ms) and the count in each bucket (not
/// cumulative).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Buckets {
    pub le: Vec<f64>,
    pub counts: Vec<u64>,
}

/// All gates of one analysis and the combined verdict.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    pub verdict: Verdict,
    /// The gate that decided a Fail, Hold or Inconclusive.
    pub decided_by: Option<Gate>,
    pub gates: Vec<GateResult>,
    /// Why the verdict is Inconclusive: what the environment did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Why this failure rolls back at once, whatever `failureLimit` says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_once: Option<String>,
}

/// Higher is better (success rate): Pass at >= promote, Fail below rollback.
fn higher_is_better(gate: Gate, value: Option<f64>, promote: f64, rollback: f64, unit: &str) -> GateResult {
    let (verdict, message) = match value {
        None => (Verdict::NoData, "no data".to_string()),
        Some(v) if v < rollback => {
            (Verdict::Fail, format!("{v:.2}{unit} is below the rollback threshold {rollback}{unit}"))
        }
        Some(v) if v >= promote => (Verdict::Pass, format!("{v:.2}{unit} meets {promote}{unit}")),
        Some(v) => (Verdict::Hold, format!("{v:.2}{unit} is between {rollback}{unit} and {promote}{unit}")),
    };
    GateResult { gate, value, verdict, message, stable: None, dry_run: false }
}

/// Lower is better (latency, utilization): Pass at <= promote, Fail above rollback.
fn lower_is_better(gate: Gate, value: Option<f64>, promote: f64, rollback: f64, unit: &str) -> GateResult {
    let (verdict, message) = match value {
        None => (Verdict::NoData, "no data".to_string()),
        Some(v) if v > rollback => {
            (Verdict::Fail, format!("{v:.1}{unit} is above the rollback threshold {rollback}{unit}"))
        }
        Some(v) if v <= promote => (Verdict::Pass, format!("{v:.1}{unit} is within {promote}{unit}")),
        Some(v) => (Verdict::Hold, format!("{v:.1}{unit} is between {promote}{unit} and {rollback}{unit}")),
    };
    GateResult { gate, value, verdict, message, stable: None, dry_run: false }
}

/// Event counters: any count above `max` fails; there is no hold zone for exhaustion or errors.
fn at_most(gate: Gate, value: Option<i64>, max: i64) -> GateResult {
    let (verdict, message) = match value {
        None => (Verdict::NoData, "no data".to_string()),
        Some(v) if v > max => (Verdict::Fail, format!("{v} in the interval, more than the {max} allowed")),
        Some(v) => (Verdict::Pass, format!("{v} in the interval (max {max})")),
    };
    GateResult { gate, value: value.map(|v| v as f64), verdict, message, stable: None, dry_run: false }
}

/// One gate's absolute thresholds applied to `m`: the hard limits, whatever the stable does.
fn absolute(spec: &AnalysisSpec, gate: Gate, m: &Measurements) -> GateResult {
    // Rates and percentiles over too few requests are noise, not evidence.
    let enough = m.requests.is_some_and(|r| r >= spec.min_requests.max(1));
    let rated = |v: Option<f64>| if enough { v } else { None };
    match gate {
        Gate::SuccessRate => higher_is_better(
            gate,
            rated(m.success_rate),
            spec.success_rate.promote_at_least,
            spec.success_rate.rollback_below,
            "%",
        ),
        Gate::P95LatencyMs => lower_is_better(
            gate,
            rated(m.p95_latency_ms),
            spec.p95_latency_ms.promote_at_most,
            spec.p95_latency_ms.rollback_above,
            "ms",
        ),
        Gate::PoolUtilization => lower_is_better(
            gate,
            m.pool_utilization,
            spec.pool_utilization.promote_at_most,
            spec.pool_utilization.rollback_above,
            "%",
        ),
        Gate::PoolExhaustionEvents => at_most(gate, m.pool_exhaustion_events, spec.pool_exhaustion_events.max),
        Gate::RedisConnectionErrors => at_most(gate, m.redis_connection_errors, spec.redis_connection_errors.max),
    }
}

/// The analysis a tier is judged by: the policy's, with the gates the tier gives instead.
pub fn for_tier(spec: &RedisPoolPolicySpec, environment: &str) -> AnalysisSpec {
    let mut a = spec.rollout.analysis.clone();
    let Some(g) = spec.tiers.iter().find(|t| t.name == environment).and_then(|t| t.gates.as_ref()) else {
        return a;
    };
    if let Some(x) = &g.success_rate {
        a.success_rate = x.clone();
    }
    if let Some(x) = &g.p95_latency_ms {
        a.p95_latency_ms = x.clone();
    }
    if let Some(x) = &g.pool_utilization {
        a.pool_utilization = x.clone();
    }
    if let Some(x) = &g.pool_exhaustion_events {
        a.pool_exhaustion_events = x.clone();
    }
    if let Some(x) = &g.redis_connection_errors {
        a.redis_connection_errors = x.clone();
    }
    a
}

/// A gate's thresholds for people, as [`judge`] applies them: what promotes, what rolls back,
/// and the bound relative to the stable, when the gate has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Thresholds {
    pub unit: &'static str,
    pub promote: String,
    pub rollback: String,
    pub relative: Option<String>,
}

/// Whether `gate` runs dry: measured and shown, never deciding.
pub fn dry_run(spec: &AnalysisSpec, gate: Gate) -> bool {
    match gate {
        Gate::SuccessRate => spec.success_rate.dry_run,
        Gate::P95LatencyMs => spec.p95_latency_ms.dry_run,
        Gate::PoolUtilization => spec.pool_utilization.dry_run,
        Gate::PoolExhaustionEvents => spec.pool_exhaustion_events.dry_run,
        Gate::RedisConnectionErrors => spec.redis_connection_errors.dry_run,
    }
}

pub fn thresholds(spec: &AnalysisSpec, gate: Gate) -> Thresholds {
    let t = |unit, promote: String, rollback: String| Thresholds {
        unit,
        promote,
        rollback,
        relative: beside::relative_bound(spec, gate),
    };
    match gate {
        Gate::SuccessRate => t(
            "%",
            format!(">= {}%", spec.success_rate.promote_at_least),
            format!("< {}%", spec.success_rate.rollback_below),
        ),
        Gate::P95LatencyMs => t(
            "ms",
            format!("<= {}ms", spec.p95_latency_ms.promote_at_most),
            format!("> {}ms", spec.p95_latency_ms.rollback_above),
        ),
        Gate::PoolUtilization => t(
            "%",
            format!("<= {}%", spec.pool_utilization.promote_at_most),
            format!("> {}%", spec.pool_utilization.rollback_above),
        ),
        Gate::PoolExhaustionEvents => {
            let max = spec.pool_exhaustion_events.max;
            t("", format!("<= {max}"), format!("> {max}"))
        }
        Gate::RedisConnectionErrors => {
            let max = spec.redis_connection_errors.max;
            t("", format!("<= {max}"), format!("> {max}"))
        }
    }
}

/// What one analysis interval measured: the canary, the stable beside it (with
/// `baseline: Stable`, when it could be measured), and what the operator's probe saw the Redis
/// server go through (a restart, a failover, an outage), in words.
#[derive(Clone, Copy, Debug)]
pub struct Interval<'a> {
    pub canary: &'a Measurements,
    pub stable: Option<&'a Measurements>,
    pub redis: Option<&'a str>,
    /// The server refused the operator's own new connection for want of client slots ("max
    /// number of clients reached"), in its words.
    pub refused: Option<&'a str>,
}

/// The canary alone, as without a baseline.
pub fn evaluate(spec: &AnalysisSpec, m: &Measurements) -> Analysis {
    judge(spec, &Interval { canary: m, stable: None, redis: None, refused: None })
}

/// Judges one interval: every gate's absolute thresholds, its bound relative to the stable,
/// and whether a breach is the environment's (see [`beside`]); then combines them: any Fail ->
/// Fail; else any Inconclusive -> Inconclusive; else any Hold or NoData -> Hold (or Fail for
/// NoData when `onNoData: Fail`); else Pass. A Redis server that went away or changed makes
/// the whole interval Inconclusive, unless the canary failed a gate the stable beside it did
/// not. A server that refused a connection for want of client slots ("max number of clients
/// reached", to the canary or to the operator's probe) rolls back at once: the budget did not
/// hold.
pub fn judge(spec: &AnalysisSpec, i: &Interval) -> Analysis {
    let gates = Gate::ALL
        .iter()
        .map(|&gate| {
            let canary = absolute(spec, gate, i.canary);
            let judged = match i.stable {
                Some(stable) => beside::judge(spec, canary, &absolute(spec, gate, stable), i.canary, stable),
                None => canary,
            };
            GateResult { dry_run: dry_run(spec, gate), ..judged }
        })
        .collect();
    let mut analysis = combine(spec.on_no_data, gates);
    // A gate the canary fails beside a stable that passed it (or was not alike) is the canary's
    // own fault: no weather excuses it.
    let own_fault = analysis.gates.iter().any(|g| !g.dry_run && g.verdict == Verdict::Fail && g.stable.is_some());
    let refused = i.refused.map(|m| {
        format!(
            "the Redis server refused a new connection of the operator's probe ({m}): the fleet with this canary \
             does not fit maxclients"
        )
    });
    if let Some(why) = beside::canary_refused(i.canary, i.stable).or(refused) {
        analysis.verdict = Verdict::Fail;
        analysis.decided_by = Some(Gate::RedisConnectionErrors);
        analysis.at_once = Some(why);
    } else if let Some(redis) = i.redis.filter(|_| !own_fault) {
        analysis.verdict = Verdict::Inconclusive;
        analysis.environment = Some(redis.to_string());
    } else if analysis.verdict == Verdict::Inconclusive {
        analysis.environment = Some(beside::shared_breaches(&analysis.gates));
    }
    for g in &mut analysis.gates {
        // Status shows two decimals; more would only be float noise.
        g.value = g.value.map(|v| (v * 100.0).round() / 100.0);
        g.stable = g.stable.map(|v| (v * 100.0).round() / 100.0);
    }
    analysis
}

/// Combines gate results into one verdict; gates that run dry are shown, never counted.
pub fn combine(on_no_data: OnNoData, gates: Vec<GateResult>) -> Analysis {
    let no_data_fails = on_no_data == OnNoData::Fail;
    let first = |pred: &dyn Fn(Verdict) -> bool| gates.iter().find(|g| !g.dry_run && pred(g.verdict)).map(|g| g.gate);
    let (verdict, decided_by) =
        if let Some(g) = first(&|v| v == Verdict::Fail || (no_data_fails && v == Verdict::NoData)) {
            (Verdict::Fail, Some(g))
        } else if let Some(g) = first(&|v| v == Verdict::Inconclusive) {
            (Verdict::Inconclusive, Some(g))
        } else if let Some(g) = first(&|v| v != Verdict::Pass) {
            (Verdict::Hold, Some(g))
        } else {
            (Verdict::Pass, None)
        };
    Analysis { verdict, decided_by, gates, environment: None, at_once: None }
}

/// An analysis whose provider could not measure anything: never a Pass.
pub fn provider_failed(spec: &AnalysisSpec, error: &str) -> Analysis {
    let mut a = evaluate(spec, &Measurements::default());
    for g in &mut a.gates {
        g.message = format!("provider error: {error}");
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A gate that runs dry is measured and shown with its own verdict, and never decides.
    #[test]
    fn a_dry_run_gate_is_shown_never_counted() {
        let mut spec = AnalysisSpec::default();
        spec.p95_latency_ms.dry_run = true;
        let m = Measurements {
            requests: Some(1000),
            success_rate: Some(99.9),
            p95_latency_ms: Some(2500.0),
            pool_utilization: Some(20.0),
            pool_exhaustion_events: Some(0),
            redis_connection_errors: Some(0),
            ..Default::default()
        };
        let a = evaluate(&spec, &m);
        assert_eq!((a.verdict, a.decided_by), (Verdict::Pass, None), "{a:?}");
        let p95 = a.gates.iter().find(|g| g.gate == Gate::P95LatencyMs).unwrap();
        assert_eq!((p95.verdict, p95.dry_run, p95.value), (Verdict::Fail, true, Some(2500.0)));
        // The same numbers with the gate counting fail the analysis.
        spec.p95_latency_ms.dry_run = false;
        assert_eq!(evaluate(&spec, &m).verdict, Verdict::Fail);
    }

    fn healthy() -> Measurements {
        Measurements {
            requests: Some(1000),
            success_rate: Some(99.9),
            p95_latency_ms: Some(120.0),
            pool_utilization: Some(20.0),
            pool_exhaustion_events: Some(0),
            redis_connection_errors: Some(0),
            ..Default::default()
        }
    }

    fn verdict_of(m: &Measurements) -> (Verdict, Option<Gate>) {
        let a = evaluate(&AnalysisSpec::default(), m);
        (a.verdict, a.decided_by)
    }

    /// The runbook's staging asks pool utilization below 50%, production below 60%: 55% holds a
    /// staging canary and passes a production one; gates a tier does not give stay the policy's.
    #[test]
    fn a_tier_judges_by_its_own_gates() {
        let spec: RedisPoolPolicySpec = serde_json::from_value(serde_json::json!({
            "targetRef": {"name": "auth-api"},
            "tiers": [
                {"name": "staging", "workers": 2, "connectionsPerWorker": 30,
                 "gates": {"poolUtilization": {"promoteAtMost": 50, "rollbackAbove": 80}}},
                {"name": "production", "workers": 4, "connectionsPerWorker": 40}
            ],
            "rollout": {"analysis": {"successRate": {"promoteAtLeast": 99.9, "rollbackBelow": 99}}}
        }))
        .unwrap();
        let mut m = healthy();
        m.pool_utilization = Some(55.0);
        m.success_rate = Some(99.95);
        assert_eq!(evaluate(&for_tier(&spec, "staging"), &m).verdict, Verdict::Hold);
        assert_eq!(evaluate(&for_tier(&spec, "production"), &m).verdict, Verdict::Pass);
        assert_eq!(for_tier(&spec, "staging").success_rate.promote_at_least, 99.9, "kept from the policy");
        assert_eq!(for_tier(&spec, "unknown"), spec.rollout.analysis);
        assert_eq!(thresholds(&for_tier(&spec, "staging"), Gate::PoolUtilization).promote, "<= 50%");
    }

    #[test]
    fn thresholds_read_as_evaluate_applies_them() {
        let spec = AnalysisSpec::default();
        let t = |g| {
            let t = thresholds(&spec, g);
            (t.promote, t.rollback)
        };
        assert_eq!(t(Gate::SuccessRate), (">= 99.5%".into(), "< 99%".into()));
        assert_eq!(t(Gate::P95LatencyMs), ("<= 500ms".into(), "> 1000ms".into()));
        assert_eq!(t(Gate::PoolUtilization), ("<= 60%".into(), "> 80%".into()));
        assert_eq!(t(Gate::PoolExhaustionEvents), ("<= 0".into(), "> 0".into()));
        // The boundaries printed are the ones evaluate uses: 99.5 passes, 99.0 holds.
        let mut m = healthy();
        m.success_rate = Some(99.5);
        assert_eq!(verdict_of(&m).0, Verdict::Pass);
        m.success_rate = Some(99.0);
        assert_eq!(verdict_of(&m).0, Verdict::Hold);
    }

    #[test]
    fn runbook_thresholds_table() {
        use Gate::*;
        use Verdict::*;
        type Edit = fn(&mut Measurements);
        let cases: Vec<(&str, Edit, Verdict, Option<Gate>)> = vec![
            ("healthy", |_| {}, Pass, None),
            ("success exactly 99.5 passes", |m| m.success_rate = Some(99.5), Pass, None),
            ("success 99.2 holds", |m| m.success_rate = Some(99.2), Hold, Some(SuccessRate)),
            ("success exactly 99.0 holds", |m| m.success_rate = Some(99.0), Hold, Some(SuccessRate)),
            ("success 98.9 fails", |m| m.success_rate = Some(98.9), Fail, Some(SuccessRate)),
            ("p95 exactly 500 passes", |m| m.p95_latency_ms = Some(500.0), Pass, None),
            ("p95 700 holds", |m| m.p95_latency_ms = Some(700.0), Hold, Some(P95LatencyMs)),
            ("p95 exactly 1000 holds", |m| m.p95_latency_ms = Some(1000.0), Hold, Some(P95LatencyMs)),
            ("p95 1001 fails", |m| m.p95_latency_ms = Some(1001.0), Fail, Some(P95LatencyMs)),
            ("utilization 60 passes", |m| m.pool_utilization = Some(60.0), Pass, None),
            ("utilization 70 holds", |m| m.pool_utilization = Some(70.0), Hold, Some(PoolUtilization)),
            ("utilization 85 fails", |m| m.pool_utilization = Some(85.0), Fail, Some(PoolUtilization)),
            ("one exhaustion event fails", |m| m.pool_exhaustion_events = Some(1), Fail, Some(PoolExhaustionEvents)),
            ("one redis error fails", |m| m.redis_connection_errors = Some(1), Fail, Some(RedisConnectionErrors)),
            ("too few requests: rate gates have no data", |m| m.requests = Some(99), Hold, Some(SuccessRate)),
            ("no request count: no data", |m| m.requests = None, Hold, Some(SuccessRate)),
            ("missing utilization holds", |m| m.pool_utilization = None, Hold, Some(PoolUtilization)),
            (
                "a fail beats an earlier hold",
                |m| {
                    m.success_rate = Some(99.2);
                    m.redis_connection_errors = Some(3);
                },
                Fail,
                Some(RedisConnectionErrors),
            ),
            (
                "few requests still fail on utilization",
                |m| {
                    m.requests = Some(5);
                    m.pool_utilization = Some(95.0);
                },
                Fail,
                Some(PoolUtilization),
            ),
        ];
        for (name, edit, verdict, gate) in cases {
            let mut m = healthy();
            edit(&mut m);
            assert_eq!(verdict_of(&m), (verdict, gate), "{name}");
        }
    }

    #[test]
    fn no_data_can_be_made_to_fail_but_never_passes() {
        let spec = AnalysisSpec { on_no_data: OnNoData::Fail, ..AnalysisSpec::default() };
        let a = evaluate(&spec, &Measurements { requests: Some(0), ..healthy() });
        assert_eq!((a.verdict, a.decided_by), (Verdict::Fail, Some(Gate::SuccessRate)));
        let a = provider_failed(&AnalysisSpec::default(), "connection refused");
        assert_eq!(a.verdict, Verdict::Hold);
        assert!(a.gates.iter().all(|g| g.verdict == Verdict::NoData && g.message.contains("connection refused")));
    }

    #[test]
    fn messages_name_the_numbers() {
        let mut m = healthy();
        m.pool_utilization = Some(91.25);
        let a = evaluate(&AnalysisSpec::default(), &m);
        let g = a.gates.iter().find(|g| g.gate == Gate::PoolUtilization).unwrap();
        assert_eq!(g.message, "91.2% is above the rollback threshold 80%");
    }

    fn arb_opt_f64(lo: f64, hi: f64) -> impl Strategy<Value = Option<f64>> {
        prop::option::of(lo..hi)
    }

    proptest! {
        /// Pass requires every signal present and on the promote side of every threshold.
        #[test]
        fn pass_only_with_complete_healthy_data(
            requests in prop::option::of(0i64..10_000),
            success in arb_opt_f64(90.0, 100.0),
            p95 in arb_opt_f64(0.0, 3000.0),
            util in arb_opt_f64(0.0, 100.0),
            exhaustion in prop::option::of(0i64..3),
            errors in prop::option::of(0i64..3),
        ) {
            let m = Measurements { requests, success_rate: success, p95_latency_ms: p95, pool_utilization: util,
                                   pool_exhaustion_events: exhaustion, redis_connection_errors: errors,
                                   ..Default::default() };
            let a = evaluate(&AnalysisSpec::default(), &m);
            let healthy = requests.is_some_and(|r| r >= 100) && success.is_some_and(|v| v >= 99.5)
                && p95.is_some_and(|v| v <= 500.0) && util.is_some_and(|v| v <= 60.0)
                && exhaustion == Some(0) && errors == Some(0);
            prop_assert_eq!(a.verdict == Verdict::Pass, healthy);
            let breach = (requests.is_some_and(|r| r >= 100) && (success.is_some_and(|v| v < 99.0) || p95.is_some_and(|v| v > 1000.0)))
                || util.is_some_and(|v| v > 80.0) || exhaustion.is_some_and(|v| v > 0) || errors.is_some_and(|v| v > 0);
            prop_assert_eq!(a.verdict == Verdict::Fail, breach);
            prop_assert_eq!(a.decided_by.is_none(), a.verdict == Verdict::Pass);
        }
    }
}
