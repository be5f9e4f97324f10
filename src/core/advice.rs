//! Pool size advice from what the analyses saw: the runbook's "analyse production traffic
//! patterns, adjust pool size if needed". Pure, and never applied by the operator: a person
//! changes the spec.
//!
//! The rule, per worker (each worker has its own pool of `connectionsPerWorker`):
//! - connections in use at peak = peak utilization x connectionsPerWorker;
//! - **raise** when the pool was exhausted, or its peak passed the tier's promote threshold:
//!   to the size that puts the peak at the threshold (and, after exhaustion, whose real demand
//!   the capped utilization hides, at least a quarter more than today);
//! - **lower** when the peak stayed under a quarter of the threshold: to the size that puts the
//!   peak at half the threshold, and say how many Redis connections that frees;
//! - otherwise the pool is sized well and there is nothing to say.

use crate::core::api::Advice;

/// What the analyses of one pool configuration saw.
#[derive(Clone, Debug, PartialEq)]
pub struct Seen {
    /// The highest pool utilization any analysis measured, in percent.
    pub peak_utilization: f64,
    /// Pool exhaustion events counted over the same analyses.
    pub exhaustion_events: i64,
    /// What the numbers cover, for people: `24h`, `37 analyses`.
    pub over: String,
}

/// The advice for a tier of `workers x connections_per_worker` on `replicas` pods judged by a
/// `promote_at_most` utilization (percent), or None when the pool is sized well.
pub fn advise(
    tier: &str,
    workers: i32,
    connections_per_worker: i32,
    replicas: i32,
    promote_at_most: f64,
    seen: &Seen,
) -> Option<Advice> {
    let current = connections_per_worker.max(1);
    let in_use = seen.peak_utilization.max(0.0) / 100.0 * f64::from(current);
    // A hair under the exact quotient, so float noise in 12% of 40 does not round 16 up to 17.
    let size_for = |aim_percent: f64| (in_use / (aim_percent / 100.0) - 1e-9).ceil().max(1.0) as i32;
    let fleet = |per_worker: i32| i64::from(per_worker) * i64::from(workers) * i64::from(replicas.max(0));
    let peak = format!("{tier}: peak utilization {:.0}% of {current} over {}", seen.peak_utilization, seen.over);
    let advice = |n: i32, message: String| Advice {
        connections_per_worker: n,
        frees_connections: fleet(current) - fleet(n),
        message,
    };
    if seen.exhaustion_events > 0 {
        let n = size_for(promote_at_most).max((f64::from(current) * 1.25).ceil() as i32).max(current + 1);
        return Some(advice(
            n,
            format!(
                "{peak} and the pool was exhausted {} times: raise connectionsPerWorker to {n} ({workers} x {n}), \
                 {} more Redis connections",
                seen.exhaustion_events,
                fleet(n) - fleet(current)
            ),
        ));
    }
    if seen.peak_utilization > promote_at_most {
        let n = size_for(promote_at_most).max(current + 1);
        return Some(advice(
            n,
            format!(
                "{peak}, above the {promote_at_most}% promote threshold: raise connectionsPerWorker to {n} \
                 ({workers} x {n}), {} more Redis connections",
                fleet(n) - fleet(current)
            ),
        ));
    }
    if seen.peak_utilization < promote_at_most / 4.0 {
        let n = size_for(promote_at_most / 2.0);
        if n < current {
            return Some(advice(
                n,
                format!(
                    "{peak}; {workers} x {n} would keep it under the {promote_at_most}% promote threshold and free {} \
                     Redis connections",
                    fleet(current) - fleet(n)
                ),
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(peak: f64, exhaustion: i64) -> Seen {
        Seen { peak_utilization: peak, exhaustion_events: exhaustion, over: "24h".into() }
    }

    /// The runbook's numbers: production 4 x 40 on 10 pods, judged at 60%.
    #[test]
    fn runbook_table() {
        // (case, peak utilization, exhaustion events, advised (connectionsPerWorker, freed))
        type Case = (&'static str, f64, i64, Option<(i32, i64)>);
        let cases: Vec<Case> = vec![
            // 12% of 40 is 4.8 in use: 16 puts it at 30%, half the threshold; 10 x 4 x 24 freed.
            ("mostly idle", 12.0, 0, Some((16, 960))),
            ("a third of the threshold is fine", 20.0, 0, None),
            ("at the threshold is fine", 60.0, 0, None),
            // 86% of 40 is 34.4 in use: 58 puts it at the 60% threshold; 10 x 4 x 18 more.
            ("above the threshold", 86.0, 0, Some((58, -720))),
            // Exhausted at 100%: the real demand is hidden, so at least a quarter more (67 > 50).
            ("exhausted", 100.0, 3, Some((67, -1080))),
            // Exhausted with a low peak (a burst between analyses): still a quarter more.
            ("exhausted in a burst", 30.0, 1, Some((50, -400))),
            // Nothing in use: the smallest pool, 1.
            ("unused", 0.0, 0, Some((1, 1560))),
        ];
        for (name, peak, exhaustion, want) in cases {
            let got = advise("production", 4, 40, 10, 60.0, &seen(peak, exhaustion));
            assert_eq!(got.as_ref().map(|a| (a.connections_per_worker, a.frees_connections)), want, "{name}: {got:?}");
        }
    }

    #[test]
    fn messages_say_what_to_change_and_what_it_costs() {
        let low = advise("production", 4, 40, 10, 60.0, &seen(12.0, 0)).unwrap();
        assert_eq!(
            low.message,
            "production: peak utilization 12% of 40 over 24h; 4 x 16 would keep it under the 60% promote threshold \
             and free 960 Redis connections"
        );
        let high = advise("production", 4, 40, 10, 60.0, &seen(86.0, 0)).unwrap();
        assert_eq!(
            high.message,
            "production: peak utilization 86% of 40 over 24h, above the 60% promote threshold: raise connectionsPerWorker \
             to 58 (4 x 58), 720 more Redis connections"
        );
        // Staging judged at 50% (the runbook's staging criteria): 45% is fine there.
        assert_eq!(advise("staging", 2, 30, 3, 50.0, &seen(45.0, 0)), None);
    }
}
