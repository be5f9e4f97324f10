//! The canary judged beside the stable, measured over the same interval by the same provider.
//! Pure.
//!
//! Two questions, per gate:
//! - **Relative bounds**: is the canary worse than the stable by more than the gate allows
//!   (`maxBelowStable`, `maxAboveStablePercent`, `maxAboveStable`)? Success rates are weighed
//!   with a confidence bound on the difference, latency with a rank test on the histograms, so
//!   that a handful of requests neither fails nor passes a step by itself.
//! - **The environment's fault**: when the canary breaches a rollback threshold and the stable
//!   breaches it too in the same interval, without the canary being worse than the stable, the
//!   fault is the environment's and the gate is Inconclusive: no evidence against the
//!   configuration, none for it. Event counts are compared per unit of exposure (requests, or
//!   pods without them): a stable of nine pods counts nine times the events of one canary pod
//!   in the same weather.

use super::statistics::{self, Comparison, Tally};
use super::{GateResult, Measurements, Verdict};
use crate::core::api::{AnalysisSpec, Gate};

/// `canary`'s absolute result for its gate, judged beside the stable's (`stable`, under the
/// same thresholds) and the two measurements.
pub fn judge(
    spec: &AnalysisSpec,
    canary: GateResult,
    stable: &GateResult,
    cm: &Measurements,
    sm: &Measurements,
) -> GateResult {
    let gate = canary.gate;
    let mut g = GateResult { stable: stable.value, ..canary };
    let relative = relative(spec, gate, cm, sm);
    match relative {
        Some((Verdict::Fail, why)) => {
            g.verdict = Verdict::Fail;
            g.message = why;
        }
        _ if g.verdict == Verdict::Fail && shared(spec, gate, stable, cm, sm) => {
            g.verdict = Verdict::Inconclusive;
            g.message = format!("{}; the stable breached it too ({})", g.message, value(gate, stable.value));
        }
        Some((verdict, why)) if g.verdict == Verdict::Pass && verdict != Verdict::Pass => {
            g.verdict = verdict;
            g.message = why;
        }
        _ => {}
    }
    g
}

/// How much worse than the stable the canary may be for a breach they share to still be the
/// environment's: half as often again (per request), or half as slow again, or ten points of
/// pool utilization. Beyond that the canary is worse in its own right, whatever the weather.
const ALIKE_RATIO: f64 = 1.5;
const ALIKE_UTILIZATION_POINTS: f64 = 10.0;

/// Whether the stable breached the canary's rollback threshold in the same interval, and the
/// canary is not materially worse than it: the fault is the environment's.
fn shared(spec: &AnalysisSpec, gate: Gate, stable: &GateResult, cm: &Measurements, sm: &Measurements) -> bool {
    let confidence = spec.confidence / 100.0;
    // Events (or failed requests) per unit of exposure: the stable breaches when its count at the
    // canary's exposure does, and the canary's are not significantly more frequent than
    // ALIKE_RATIO times the stable's.
    let counts = |breached: &dyn Fn(f64) -> bool, c: Option<i64>, s: Option<i64>| {
        let (Some(c), Some(s)) = (c.and_then(|c| u64::try_from(c).ok()), s.and_then(|s| u64::try_from(s).ok())) else {
            return false;
        };
        let Some((ce, se)) = exposures(cm, sm) else { return false };
        breached(s as f64 * ce / se) && !more_often(c, ce, s, se * ALIKE_RATIO.recip(), confidence)
    };
    let value = |m: &Measurements| match gate {
        Gate::P95LatencyMs => m.p95_latency_ms,
        Gate::PoolUtilization => m.pool_utilization,
        _ => None,
    };
    match gate {
        Gate::PoolExhaustionEvents => {
            let max = spec.pool_exhaustion_events.max as f64;
            counts(&|scaled| scaled > max, cm.pool_exhaustion_events, sm.pool_exhaustion_events)
        }
        Gate::RedisConnectionErrors => {
            let max = spec.redis_connection_errors.max as f64;
            counts(&|scaled| scaled > max, cm.redis_connection_errors, sm.redis_connection_errors)
        }
        Gate::SuccessRate => {
            stable.verdict == Verdict::Fail && counts(&|_| true, cm.failed_requests, sm.failed_requests)
        }
        Gate::P95LatencyMs => {
            stable.verdict == Verdict::Fail && value(cm).zip(value(sm)).is_some_and(|(c, s)| c <= s * ALIKE_RATIO)
        }
        Gate::PoolUtilization => {
            stable.verdict == Verdict::Fail
                && value(cm).zip(value(sm)).is_some_and(|(c, s)| c <= s + ALIKE_UTILIZATION_POINTS)
        }
    }
}

/// What each side's counts are measured against: requests when both served some, else pods.
fn exposures(cm: &Measurements, sm: &Measurements) -> Option<(f64, f64)> {
    match (cm.requests, sm.requests, cm.pods, sm.pods) {
        (Some(c), Some(s), _, _) if c > 0 && s > 0 => Some((c as f64, s as f64)),
        (_, _, Some(c), Some(s)) if c > 0 && s > 0 => Some((c as f64, s as f64)),
        _ => None,
    }
}

/// Whether `c` events over exposure `ce` are significantly more frequent than `s` over `se`,
/// at `confidence` (one-sided): the conditional binomial test of two Poisson rates. Given
/// `c + s` events at equal rates, the canary's share is Binomial(c + s, ce / (ce + se)).
pub fn more_often(c: u64, ce: f64, s: u64, se: f64, confidence: f64) -> bool {
    if c == 0 || ce <= 0.0 || se <= 0.0 {
        return false;
    }
    let n = c.saturating_add(s);
    let p = ce / (ce + se);
    // At or below its expected share the canary is not more frequent, whatever the test says
    // (and the tail from there is at least about a half).
    if c as f64 <= n as f64 * p {
        return false;
    }
    binomial_upper_tail(c, n, p) < 1.0 - confidence
}

/// P(X >= k) for X ~ Binomial(n, p), summed in log space (no underflow at large n). From above
/// the mean the terms only shrink: the sum stops once they no longer matter.
pub fn binomial_upper_tail(k: u64, n: u64, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    // ln C(n, k) from the log-gamma of its factorials.
    let ln_choose = ln_factorial(n) - ln_factorial(k) - ln_factorial(n - k);
    let first = ln_choose + k as f64 * lp + (n - k) as f64 * lq;
    // Relative to the first term, so that a tail far below f64's range still sums exactly.
    let (mut rel, mut sum) = (0.0f64, 0.0f64);
    for i in k..=n {
        sum += rel.exp();
        if i == n {
            break;
        }
        rel += ((n - i) as f64 / (i + 1) as f64).ln() + lp - lq;
        if (i as f64) > n as f64 * p && rel < sum.ln() - 40.0 {
            break;
        }
    }
    (first + sum.ln()).exp().min(1.0)
}

/// ln(n!): exact sums for small n, Stirling's series beyond (relative error below 1e-12).
fn ln_factorial(n: u64) -> f64 {
    if n < 64 {
        return (2..=n).map(|i| (i as f64).ln()).sum();
    }
    let x = n as f64;
    x * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI * x).ln() + 1.0 / (12.0 * x) - 1.0 / (360.0 * x.powi(3))
}

/// The gate's bound relative to the stable, judged: Pass within it, Fail beyond it with the
/// confidence asked, Hold while the evidence is not in. None without a bound or the numbers.
fn relative(spec: &AnalysisSpec, gate: Gate, cm: &Measurements, sm: &Measurements) -> Option<(Verdict, String)> {
    let confidence = spec.confidence / 100.0;
    match gate {
        Gate::SuccessRate => {
            let margin = spec.success_rate.max_below_stable?;
            let tally = |m: &Measurements| {
                let n = u64::try_from(m.requests?).ok().filter(|&n| n > 0)?;
                let failed = u64::try_from(m.failed_requests?).ok()?.min(n);
                Some(Tally { ok: n - failed, n })
            };
            let (c, s) = (tally(cm)?, tally(sm)?);
            let rate = |t: Tally| 100.0 * t.ok as f64 / t.n as f64;
            let (cr, sr) = (rate(c), rate(s));
            let said = format!("{cr:.2}% beside the stable's {sr:.2}%");
            let conf = spec.confidence;
            Some(match statistics::success_rate(s, c, margin / 100.0, confidence) {
                Comparison::Worse => {
                    (Verdict::Fail, format!("{said}: more than {margin} points below it ({conf}% confidence)"))
                }
                Comparison::NoWorse => (Verdict::Pass, format!("{said}: within {margin} points of it")),
                Comparison::NeedsMore(Some(more)) => (
                    Verdict::Hold,
                    format!("{said}: about {more} more canary requests to tell whether within {margin} points"),
                ),
                Comparison::NeedsMore(None) => {
                    (Verdict::Hold, format!("{said}: on the {margin}-point margin; more requests will not tell"))
                }
            })
        }
        Gate::P95LatencyMs => {
            let margin = spec.p95_latency_ms.max_above_stable_percent?;
            // A percentile of a handful of requests is noise, on either side.
            let enough = |m: &Measurements| m.requests.is_some_and(|r| r >= spec.min_requests.max(1));
            if !enough(cm) || !enough(sm) {
                return None;
            }
            let (c, s) = (cm.p95_latency_ms?, sm.p95_latency_ms?);
            let bound = s * (1.0 + margin / 100.0);
            let said = format!("{c:.1}ms beside the stable's {s:.1}ms");
            if c <= bound {
                return Some((Verdict::Pass, format!("{said}: within {margin}% of it")));
            }
            let ranked = match (&cm.latency, &sm.latency) {
                (Some(a), Some(b)) if a.le == b.le => statistics::slower_p_value(&a.counts, &b.counts),
                _ => None,
            };
            Some(match ranked {
                Some(p) if p >= 1.0 - confidence => (
                    Verdict::Hold,
                    format!("{said}: more than {margin}% above it, not yet significantly slower (p = {p:.3})"),
                ),
                _ => (Verdict::Fail, format!("{said}: more than {margin}% above it")),
            })
        }
        Gate::PoolUtilization => {
            let margin = spec.pool_utilization.max_above_stable?;
            let (c, s) = (cm.pool_utilization?, sm.pool_utilization?);
            let said = format!("{c:.1}% beside the stable's {s:.1}%");
            Some(match c - s > margin {
                true => (Verdict::Fail, format!("{said}: more than {margin} points above it")),
                false => (Verdict::Pass, format!("{said}: within {margin} points of it")),
            })
        }
        Gate::PoolExhaustionEvents | Gate::RedisConnectionErrors => None,
    }
}

/// The gate's relative bound for people (`plan`, the plugin), when it has one.
pub fn relative_bound(spec: &AnalysisSpec, gate: Gate) -> Option<String> {
    match gate {
        Gate::SuccessRate => {
            spec.success_rate.max_below_stable.map(|m| format!("no more than {m} points below stable"))
        }
        Gate::P95LatencyMs => {
            spec.p95_latency_ms.max_above_stable_percent.map(|m| format!("no more than {m}% above stable"))
        }
        Gate::PoolUtilization => {
            spec.pool_utilization.max_above_stable.map(|m| format!("no more than {m} points above stable"))
        }
        Gate::PoolExhaustionEvents | Gate::RedisConnectionErrors => None,
    }
}

/// The canary was refused by the server for want of client slots: the fleet with its pool does
/// not fit, whatever `failureLimit` says (the stable's count, when measured, is said beside).
pub fn canary_refused(cm: &Measurements, sm: Option<&Measurements>) -> Option<String> {
    let c = cm.max_clients_errors.filter(|&c| c > 0)?;
    let stable = match sm.and_then(|s| s.max_clients_errors) {
        Some(0) => " and the stable's never: the new pool does not fit the server's maxclients".to_string(),
        Some(s) => format!(" (the stable's {s} times): with this canary the fleet does not fit maxclients"),
        None => ": with this canary the fleet does not fit maxclients".to_string(),
    };
    Some(format!("the canary's connections were refused {c} times with \"max number of clients reached\"{stable}"))
}

/// The evidence of an interval whose breaches the stable shared, for the Event and condition.
pub fn shared_breaches(gates: &[GateResult]) -> String {
    let shared: Vec<String> = gates
        .iter()
        .filter(|g| g.verdict == Verdict::Inconclusive)
        .map(|g| format!("{} {} (canary {})", g.gate.name(), value(g.gate, g.stable), value(g.gate, g.value)))
        .collect();
    format!("the stable breached the same thresholds in the same interval: {}", shared.join(", "))
}

/// A gate's value for people, with its unit.
pub fn value(gate: Gate, v: Option<f64>) -> String {
    match (gate, v) {
        (_, None) => "no data".into(),
        (Gate::SuccessRate, Some(v)) => format!("{v:.2}%"),
        (Gate::P95LatencyMs, Some(v)) => format!("{v:.1}ms"),
        (Gate::PoolUtilization, Some(v)) => format!("{v:.1}%"),
        (Gate::PoolExhaustionEvents | Gate::RedisConnectionErrors, Some(v)) => format!("{v:.0}"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Buckets, Interval, judge as judge_interval};
    use super::*;

    fn m(requests: i64, failed: i64, p95: f64, util: f64, exhaustion: i64, errors: i64, pods: i64) -> Measurements {
        Measurements {
            requests: Some(requests),
            success_rate: Some(100.0 * (requests - failed) as f64 / requests as f64),
            p95_latency_ms: Some(p95),
            pool_utilization: Some(util),
            pool_exhaustion_events: Some(exhaustion),
            redis_connection_errors: Some(errors),
            failed_requests: Some(failed),
            pods: Some(pods),
            latency: None,
            max_clients_errors: Some(0),
        }
    }

    fn verdict(spec: &AnalysisSpec, canary: &Measurements, stable: &Measurements) -> (Verdict, Option<Gate>) {
        let a = judge_interval(spec, &Interval { canary, stable: Some(stable), redis: None, refused: None });
        (a.verdict, a.decided_by)
    }

    /// Exact binomial tails from Python 3's `math.comb` with `fractions.Fraction`:
    /// `sum(comb(n, i) * p**i * (1-p)**(n-i) for i in range(k, n+1))`.
    #[test]
    fn binomial_tails_match_exact_sums() {
        let cases = [
            (1, 10, 0.1, 0.6513215599),
            (5, 6, 0.1, 0.0000550000),
            (3, 20, 0.1, 0.3230731948),
            (30, 100, 0.2, 0.0112489787),
            (2, 2, 0.5, 0.25),
        ];
        for (k, n, p, want) in cases {
            let got = binomial_upper_tail(k, n, p);
            assert!((got - want).abs() < 1e-9, "P(X >= {k}) for Bin({n}, {p}): {got} != {want}");
        }
        // Large n: no underflow, and the tail past the mean is small but not zero.
        let far = binomial_upper_tail(1200, 10_000, 0.1);
        assert!(far > 0.0 && far < 1e-10, "{far}");
        // A million trials, fifteen standard deviations out: summed from the first term on, and
        // stopped long before the millionth.
        let tiny = binomial_upper_tail(1_500, 1_000_000, 0.001);
        assert!(tiny > 0.0 && tiny < 1e-30, "{tiny}");
        // Below the expected share the canary is never "more often", however many events.
        assert!(!more_often(100, 1.0, 900, 9.0, 0.95));
        assert!(more_often(200, 1.0, 900, 9.0, 0.95));
        assert!((binomial_upper_tail(1000, 10_000, 0.1) - 0.5048759163).abs() < 1e-8);
    }

    /// A Redis outage that every pod suffers alike is the environment's: Inconclusive, with the
    /// stable's values named; a fault the canary alone shows still fails.
    #[test]
    fn a_fault_the_stable_shares_is_inconclusive() {
        let spec = AnalysisSpec::default();
        // 6 s without Redis in a 30 s interval: a fifth of requests fail everywhere.
        let canary = m(300, 60, 40.0, 30.0, 0, 60, 1);
        let stable = m(2700, 540, 40.0, 30.0, 0, 540, 9);
        assert_eq!(verdict(&spec, &canary, &stable), (Verdict::Inconclusive, Some(Gate::SuccessRate)));
        let a = judge_interval(&spec, &Interval { canary: &canary, stable: Some(&stable), redis: None, refused: None });
        let why = a.environment.unwrap();
        assert!(
            why.contains("successRate 80.00% (canary 80.00%)") && why.contains("redisConnectionErrors 540"),
            "{why}"
        );
        // The stable healthy: the canary's own fault.
        let healthy = m(2700, 0, 40.0, 30.0, 0, 0, 9);
        assert_eq!(verdict(&spec, &canary, &healthy), (Verdict::Fail, Some(Gate::SuccessRate)));
        // The stable erring a little, the canary much more often: still the canary's.
        let mut worse = m(300, 0, 40.0, 30.0, 0, 30, 1);
        worse.redis_connection_errors = Some(30);
        let slightly = m(2700, 0, 40.0, 30.0, 0, 9, 9);
        assert_eq!(verdict(&spec, &worse, &slightly), (Verdict::Fail, Some(Gate::RedisConnectionErrors)));
        // The same errors per request on both sides: the environment's.
        let alike = m(2700, 0, 40.0, 30.0, 0, 270, 9);
        assert_eq!(verdict(&spec, &worse, &alike), (Verdict::Inconclusive, Some(Gate::RedisConnectionErrors)));
    }

    /// A breach the stable shares excuses only a canary that fared alike: at 40% beside a
    /// stable at 98.9% (both below the 99% rollback threshold), the canary fails in its own right.
    #[test]
    fn a_shared_breach_excuses_only_a_canary_that_fared_alike() {
        let spec = AnalysisSpec::default();
        let stable = m(27000, 297, 40.0, 30.0, 0, 0, 9);
        assert_eq!(
            verdict(&spec, &m(3000, 1800, 40.0, 30.0, 0, 0, 1), &stable),
            (Verdict::Fail, Some(Gate::SuccessRate))
        );
        assert_eq!(verdict(&spec, &m(3000, 36, 40.0, 30.0, 0, 0, 1), &stable).0, Verdict::Inconclusive);
        // Latency: slow everywhere, the canary not half as slow again.
        let slow = m(27000, 0, 1400.0, 30.0, 0, 0, 9);
        assert_eq!(verdict(&spec, &m(3000, 0, 1500.0, 30.0, 0, 0, 1), &slow).0, Verdict::Inconclusive);
        assert_eq!(verdict(&spec, &m(3000, 0, 2500.0, 30.0, 0, 0, 1), &slow).0, Verdict::Fail);
        // Utilization: the pool a change alters; ten points beyond the stable's is the canary's.
        let busy = m(27000, 0, 40.0, 85.0, 0, 0, 9);
        assert_eq!(verdict(&spec, &m(3000, 0, 40.0, 90.0, 0, 0, 1), &busy).0, Verdict::Inconclusive);
        assert_eq!(verdict(&spec, &m(3000, 0, 40.0, 100.0, 0, 0, 1), &busy).0, Verdict::Fail);
    }

    /// Exhaustion is compared per unit of exposure: one canary event beside nine stable ones at
    /// nine times the traffic is the weather; five beside one is the canary's pool.
    #[test]
    fn exhaustion_is_compared_per_exposure() {
        let spec = AnalysisSpec::default();
        let one = m(300, 0, 40.0, 30.0, 1, 0, 1);
        let nine = m(2700, 0, 40.0, 30.0, 9, 0, 9);
        assert_eq!(verdict(&spec, &one, &nine).0, Verdict::Inconclusive);
        let five = m(300, 0, 40.0, 30.0, 5, 0, 1);
        let rare = m(2700, 0, 40.0, 30.0, 1, 0, 9);
        assert_eq!(verdict(&spec, &five, &rare), (Verdict::Fail, Some(Gate::PoolExhaustionEvents)));
        // A stable without a single event breaches nothing.
        let none = m(2700, 0, 40.0, 30.0, 0, 0, 9);
        assert_eq!(verdict(&spec, &one, &none).0, Verdict::Fail);
    }

    /// One failed request in 150 neither fails nor passes a step beside a clean stable: the
    /// status says how many more requests would tell.
    #[test]
    fn a_small_sample_holds_and_says_how_many_more() {
        let spec = AnalysisSpec {
            min_requests: 100,
            success_rate: crate::core::api::SuccessRateGate {
                promote_at_least: 99.0,
                rollback_below: 98.0,
                max_below_stable: Some(0.5),
                dry_run: false,
            },
            ..AnalysisSpec::default()
        };
        let canary = m(150, 1, 40.0, 30.0, 0, 0, 1);
        let stable = m(1350, 0, 40.0, 30.0, 0, 0, 9);
        let a = judge_interval(&spec, &Interval { canary: &canary, stable: Some(&stable), redis: None, refused: None });
        let g = &a.gates[0];
        assert_eq!((a.verdict, g.verdict), (Verdict::Hold, Verdict::Hold), "{g:?}");
        assert!(g.message.contains("more canary requests"), "{}", g.message);
        assert_eq!(g.stable, Some(100.0));
        // Many requests at a rate well below the stable's: worse, with confidence.
        let bad = m(3000, 60, 40.0, 30.0, 0, 0, 1);
        assert_eq!(verdict(&spec, &bad, &m(27000, 0, 40.0, 30.0, 0, 0, 9)), (Verdict::Fail, Some(Gate::SuccessRate)));
        // And many at the stable's rate: within the margin, a pass.
        let good = m(30000, 3, 40.0, 30.0, 0, 0, 1);
        assert_eq!(verdict(&spec, &good, &m(270000, 27, 40.0, 30.0, 0, 0, 9)).0, Verdict::Pass);
    }

    /// Slow everywhere holds (the absolute promote threshold is not met) rather than failing;
    /// slow beyond the rollback threshold everywhere is the environment's.
    #[test]
    fn slow_everywhere_holds() {
        let mut spec = AnalysisSpec::default();
        spec.p95_latency_ms.max_above_stable_percent = Some(25.0);
        let slow = m(3000, 0, 700.0, 30.0, 0, 0, 1);
        assert_eq!(
            verdict(&spec, &slow, &m(27000, 0, 690.0, 30.0, 0, 0, 9)),
            (Verdict::Hold, Some(Gate::P95LatencyMs))
        );
        let slower = m(3000, 0, 1500.0, 30.0, 0, 0, 1);
        assert_eq!(verdict(&spec, &slower, &m(27000, 0, 1400.0, 30.0, 0, 0, 9)).0, Verdict::Inconclusive);
        // The canary alone slower than the stable by more than 25%: fails, even within the
        // absolute thresholds.
        assert_eq!(
            verdict(&spec, &m(3000, 0, 300.0, 30.0, 0, 0, 1), &m(27000, 0, 100.0, 30.0, 0, 0, 9)),
            (Verdict::Fail, Some(Gate::P95LatencyMs))
        );
    }

    /// With the histograms, a p95 above the margin that does not rank significantly slower
    /// holds: a few slow requests are not yet a slower pool.
    #[test]
    fn latency_above_the_margin_needs_the_ranks_to_agree() {
        let mut spec = AnalysisSpec::default();
        spec.p95_latency_ms.max_above_stable_percent = Some(25.0);
        let with = |p95, counts: Vec<u64>| {
            let mut x = m(counts.iter().sum::<u64>() as i64, 0, p95, 30.0, 0, 0, 1);
            x.latency = Some(Buckets { le: vec![10.0, 100.0, 1000.0], counts });
            x
        };
        let canary = with(90.0, vec![6, 3, 1]);
        let stable = with(60.0, vec![70, 25, 5]);
        assert_eq!(verdict(&spec, &canary, &stable).0, Verdict::Hold);
        let slow = with(900.0, vec![100, 300, 600]);
        assert_eq!(verdict(&spec, &slow, &with(60.0, vec![7000, 2500, 500])).0, Verdict::Fail);
    }

    /// "max number of clients reached" on the canary alone rolls back at once; a Redis change
    /// makes the interval Inconclusive however the gates read.
    #[test]
    fn redis_evidence_decides_the_interval() {
        let spec = AnalysisSpec::default();
        let mut canary = m(300, 3, 40.0, 30.0, 0, 3, 1);
        canary.max_clients_errors = Some(3);
        let stable = m(2700, 0, 40.0, 30.0, 0, 0, 9);
        let a = judge_interval(&spec, &Interval { canary: &canary, stable: Some(&stable), redis: None, refused: None });
        assert_eq!(a.verdict, Verdict::Fail);
        assert!(a.at_once.unwrap().contains("max number of clients"));
        // The stable refused too: the server is full with this canary; it still goes at once.
        let mut full = stable.clone();
        full.max_clients_errors = Some(30);
        let a = judge_interval(&spec, &Interval { canary: &canary, stable: Some(&full), redis: None, refused: None });
        assert!(a.at_once.unwrap().contains("the stable's 30 times"));
        // The operator's own probe refused: at once, with the server's words, weather or not.
        let healthy = m(300, 0, 40.0, 30.0, 0, 0, 1);
        let words = "max number of clients reached";
        let i = Interval { canary: &healthy, stable: Some(&stable), redis: Some("a restart"), refused: Some(words) };
        let a = judge_interval(&spec, &i);
        assert_eq!(a.verdict, Verdict::Fail);
        assert!(a.at_once.unwrap().contains("refused a new connection of the operator's probe (max number"));
        let healthy = m(300, 0, 40.0, 30.0, 0, 0, 1);
        let failing = m(300, 60, 40.0, 30.0, 0, 60, 1);
        let outage = m(2700, 540, 40.0, 30.0, 0, 540, 9);
        let change = "the Redis server restarted (run_id a is now b)";
        let judged = |c: &Measurements, s: Option<&Measurements>| {
            let a = judge_interval(&spec, &Interval { canary: c, stable: s, redis: Some(change), refused: None });
            (a.verdict, a.environment)
        };
        // Whatever the gates read, as long as the stable fared alike (or was not measured).
        let inconclusive = (Verdict::Inconclusive, Some(change.to_string()));
        assert_eq!(judged(&healthy, Some(&stable)), inconclusive);
        assert_eq!(judged(&failing, Some(&outage)), inconclusive);
        assert_eq!(judged(&failing, None), inconclusive);
        // The canary failing beside a stable that did not: its own fault, weather or not.
        assert_eq!(judged(&failing, Some(&stable)), (Verdict::Fail, None));
    }

    #[test]
    fn relative_bounds_read_for_people() {
        let mut spec = AnalysisSpec::default();
        assert_eq!(relative_bound(&spec, Gate::SuccessRate), None);
        spec.success_rate.max_below_stable = Some(0.5);
        spec.pool_utilization.max_above_stable = Some(20.0);
        assert_eq!(relative_bound(&spec, Gate::SuccessRate).unwrap(), "no more than 0.5 points below stable");
        assert_eq!(relative_bound(&spec, Gate::PoolUtilization).unwrap(), "no more than 20 points above stable");
        let canary = m(3000, 0, 40.0, 75.0, 0, 0, 1);
        assert_eq!(
            verdict(&spec, &canary, &m(27000, 0, 40.0, 40.0, 0, 0, 9)),
            (Verdict::Fail, Some(Gate::PoolUtilization))
        );
    }
}
