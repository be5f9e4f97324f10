//! Honest small samples: comparing the canary with the stable measured over the same interval,
//! with a confidence bound instead of a bare threshold, so that one failed request in 150
//! neither fails nor promotes a step by itself. Pure.
//!
//! - Success rates: Newcombe's hybrid score interval for the difference of two proportions
//!   (Wilson score intervals combined), one-sided at the chosen confidence. The canary is worse
//!   when the whole interval of (stable - canary) lies above the allowed margin, and no worse
//!   when all of it lies at or below; otherwise the evidence is not in yet, and how many more
//!   canary requests would decide is estimated at the rates seen.
//! - Latency: the Mann-Whitney rank test on the two latency histograms (each bucket a group of
//!   ties), one-sided (is the canary slower?), normal approximation with tie and continuity
//!   corrections.
//!
//! The tests hold these to numbers computed with statsmodels 0.15 and scipy 1.17.

/// What a comparison found.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Comparison {
    /// The canary is worse than the stable beyond the margin, at the confidence asked.
    Worse,
    /// The canary is no worse than the stable beyond the margin, at the confidence asked.
    NoWorse,
    /// Not enough evidence either way; about this many more canary requests (at the rates
    /// seen) would decide, or None when no number of them would (the rates sit on the margin).
    NeedsMore(Option<u64>),
}

/// Successes of `n` requests.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tally {
    pub ok: u64,
    pub n: u64,
}

impl Tally {
    fn rate(self) -> f64 {
        if self.n == 0 { 0.0 } else { self.ok as f64 / self.n as f64 }
    }
}

/// The Wilson score interval of a proportion at normal quantile `z`.
pub fn wilson(t: Tally, z: f64) -> (f64, f64) {
    if t.n == 0 {
        return (0.0, 1.0);
    }
    let (n, p) = (t.n as f64, t.rate());
    let z2 = z * z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Newcombe's hybrid score interval for `stable - canary` (two-sided at quantile `z`, so each
/// bound is one-sided at the normal probability of `z`).
pub fn difference_interval(stable: Tally, canary: Tally, z: f64) -> (f64, f64) {
    let (p1, p2) = (stable.rate(), canary.rate());
    let ((l1, u1), (l2, u2)) = (wilson(stable, z), wilson(canary, z));
    let d = p1 - p2;
    (d - ((p1 - l1).powi(2) + (u2 - p2).powi(2)).sqrt(), d + ((u1 - p1).powi(2) + (p2 - l2).powi(2)).sqrt())
}

/// Whether the canary's success rate is worse than the stable's by more than `margin` (a
/// fraction: 0.005 is half a percentage point), at `confidence` (e.g. 0.95, one-sided). Short
/// of evidence, how many more canary requests would decide at the rates seen, the stable
/// serving beside it in the proportion it does now.
pub fn success_rate(stable: Tally, canary: Tally, margin: f64, confidence: f64) -> Comparison {
    let z = normal_quantile(confidence);
    let decide = |stable: Tally, canary: Tally| {
        let (low, high) = difference_interval(stable, canary, z);
        if low > margin {
            Some(Comparison::Worse)
        } else if high <= margin {
            Some(Comparison::NoWorse)
        } else {
            None
        }
    };
    if let Some(decided) = decide(stable, canary) {
        return decided;
    }
    // How many canary requests at the same rate would decide, while the stable serves beside it
    // in the same proportion as now: doubling, then halving back.
    let start = canary.n.max(1);
    let decides = |n: u64| {
        let grown = |t: Tally| {
            let m = (t.n as f64 * n as f64 / start as f64).round();
            Tally { ok: (t.rate() * m).round() as u64, n: m as u64 }
        };
        decide(grown(stable), Tally { ok: (canary.rate() * n as f64).round() as u64, n }).is_some()
    };
    let Some(enough) = (1..=40).map(|k| start.saturating_mul(1 << k.min(62))).find(|&n| decides(n)) else {
        return Comparison::NeedsMore(None);
    };
    let (mut lo, mut hi) = (start, enough);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if decides(mid) { hi = mid } else { lo = mid }
    }
    Comparison::NeedsMore(Some(hi - canary.n))
}

/// The one-sided p-value that the canary's latency is stochastically greater (slower) than the
/// stable's, from two histograms over the same buckets (counts per bucket, not cumulative).
/// None when either side has no observation.
pub fn slower_p_value(canary: &[u64], stable: &[u64]) -> Option<f64> {
    let (nx, ny) = (canary.iter().sum::<u64>() as f64, stable.iter().sum::<u64>() as f64);
    if nx == 0.0 || ny == 0.0 {
        return None;
    }
    // U of the canary: for each canary observation, the stable ones below it, ties counted half.
    let mut below = 0.0;
    let mut u = 0.0;
    let mut ties = 0.0;
    for (&c, &s) in canary.iter().zip(stable) {
        let (c, s) = (c as f64, s as f64);
        u += c * (below + s / 2.0);
        below += s;
        let t = c + s;
        ties += t * t * t - t;
    }
    let n = nx + ny;
    let mean = nx * ny / 2.0;
    let variance = nx * ny / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    if variance <= 0.0 {
        // Every observation in one bucket: nothing tells the two apart.
        return Some(1.0);
    }
    let z = (u - mean - 0.5) / variance.sqrt();
    Some(normal_sf(z))
}

/// P(Z > z) for a standard normal Z.
pub fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// The complementary error function: a series of positive terms below 2.5 (no cancellation),
/// the continued fraction above (where 1 - erf would lose the tail's digits).
fn erfc(x: f64) -> f64 {
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    if x < 2.5 {
        // erf(x) = 2/sqrt(pi) e^(-x^2) sum x^(2n+1) 2^n / (1 3 5 ... (2n+1))
        let (mut term, mut sum, mut n) = (x, x, 0.0);
        while term > 1e-17 * sum {
            n += 1.0;
            term *= 2.0 * x * x / (2.0 * n + 1.0);
            sum += term;
        }
        return 1.0 - 2.0 / std::f64::consts::PI.sqrt() * (-x * x).exp() * sum;
    }
    // erfc(x) = e^(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))), evaluated backwards.
    let mut f = x;
    for k in (1..=300).rev() {
        f = x + f64::from(k) / 2.0 / f;
    }
    (-x * x).exp() / std::f64::consts::PI.sqrt() / f
}

/// The standard normal quantile (Acklam's rational approximation, relative error below 1.2e-9,
/// refined by one Newton step on `normal_sf`).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] =
        [7.784_695_709_041_462e-3, 3.224_671_290_700_398e-1, 2.445_134_137_142_996, 3.754_408_661_907_416];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let x = if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    };
    // One Newton step: the density at x, and the error of the upper tail there.
    let density = (-x * x / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
    x - ((1.0 - p) - normal_sf(x)) / density
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance * b.abs().max(1e-12)
    }

    /// scipy.stats.norm: ppf(0.95), ppf(0.975), sf(1.0), sf(2.5), sf(-0.3), sf(6.0).
    #[test]
    fn the_normal_distribution_matches_scipy() {
        assert!(close(normal_quantile(0.95), 1.6448536269514722, 1e-12));
        assert!(close(normal_quantile(0.975), 1.959963984540054, 1e-12));
        assert!(close(normal_sf(1.0), 0.15865525393145707, 1e-12));
        assert!(close(normal_sf(2.5), 0.006209665325776132, 1e-12));
        assert!(close(normal_sf(-0.3), 0.6179114221889526, 1e-12));
        assert!(close(normal_sf(6.0), 9.865_876_450_376_95e-10, 1e-9), "the far tail: {}", normal_sf(6.0));
    }

    /// statsmodels `confint_proportions_2indep(stable_ok, stable_n, canary_ok, canary_n,
    /// method="newcomb", compare="diff", alpha=0.1)`.
    #[test]
    fn the_difference_interval_matches_statsmodels() {
        let cases = [
            (99950, 100000, 149, 150, 0.0009870431620683752, 0.028826037404093192),
            (99950, 100000, 1480, 1500, 0.008762393214055919, 0.01865553591746768),
            (9990, 10000, 9700, 10000, 0.02623578280988892, 0.03196294456126164),
            (995, 1000, 990, 1000, -0.0015962543017993373, 0.012133723291110461),
            (200, 200, 150, 150, -0.013347160654775703, 0.017717388595711037),
            (50, 100, 40, 100, -0.015503062419841382, 0.21181532317477555),
        ];
        let z = normal_quantile(0.95);
        for (s, ns, c, nc, low, high) in cases {
            let (l, h) = difference_interval(Tally { ok: s, n: ns }, Tally { ok: c, n: nc }, z);
            assert!(close(l, low, 1e-9) && close(h, high, 1e-9), "{s}/{ns} vs {c}/{nc}: ({l}, {h})");
        }
    }

    #[test]
    fn one_failed_request_in_150_neither_fails_nor_promotes() {
        let stable = Tally { ok: 99950, n: 100000 };
        let margin = 0.005; // half a percentage point
        let one_failed = success_rate(stable, Tally { ok: 149, n: 150 }, margin, 0.95);
        let Comparison::NeedsMore(Some(more)) = one_failed else { panic!("{one_failed:?}") };
        // At 99.33% the canary is worse than 99.95% by more than the margin: enough requests
        // at that rate fail it. Fewer than 150 more never do.
        assert!(more > 150, "{more}");
        let n = 150 + more;
        let stable_then = Tally { ok: 99950 * n / 150, n: 100000 * n / 150 };
        assert_eq!(success_rate(stable_then, Tally { ok: 149 * n / 150, n }, margin, 0.95), Comparison::Worse);
        // 150 perfect requests do not promote either: the margin cannot be excluded yet.
        let perfect = success_rate(stable, Tally { ok: 150, n: 150 }, margin, 0.95);
        assert!(matches!(perfect, Comparison::NeedsMore(Some(_))), "{perfect:?}");
        // With evidence: 1.3% failures in 1,500 fail; 0.05% in 100,000 pass.
        assert_eq!(success_rate(stable, Tally { ok: 1480, n: 1500 }, margin, 0.95), Comparison::Worse);
        assert_eq!(success_rate(stable, Tally { ok: 99950, n: 100000 }, margin, 0.95), Comparison::NoWorse);
    }

    #[test]
    fn equal_rates_on_the_margin_need_more_than_any_count() {
        // The canary exactly half a point worse: no sample size tells it from the margin.
        let stable = Tally { ok: 1000, n: 1000 };
        let canary = Tally { ok: 995, n: 1000 };
        assert_eq!(success_rate(stable, canary, 0.005, 0.95), Comparison::NeedsMore(None));
    }

    /// scipy.stats.mannwhitneyu(x, y, alternative="greater", use_continuity=True,
    /// method="asymptotic"), with x and y each bucket's index repeated by its count.
    #[test]
    fn the_rank_test_matches_scipy() {
        let cases: [(&[u64], &[u64], f64); 4] = [
            (&[5, 10, 20, 10, 5], &[10, 20, 20, 5, 0], 0.001288539608098937),
            (&[0, 0, 10, 30, 10], &[10, 20, 15, 5, 0], 3.289890466563936e-14),
            (&[1, 2, 3, 2, 1], &[1, 2, 3, 2, 1], 0.5181495540484772),
            (&[0, 1, 0, 0, 0], &[3, 40, 50, 6, 1], 0.852449577586706),
        ];
        for (canary, stable, p) in cases {
            let got = slower_p_value(canary, stable).unwrap();
            assert!(close(got, p, 1e-9), "{canary:?} vs {stable:?}: {got} (scipy {p})");
        }
        assert_eq!(slower_p_value(&[0, 0], &[1, 2]), None, "no canary observation");
        assert_eq!(slower_p_value(&[0, 4], &[0, 7]), Some(1.0), "one bucket tells nothing");
    }

    proptest::proptest! {
        /// A canary at least as good as the stable is never judged worse, whatever the counts;
        /// and one judged worse stays worse with more requests at the same rate.
        #[test]
        fn no_worse_canaries_never_fail_and_evidence_only_grows(
            stable_n in 1u64..200_000,
            stable_bad in 0u64..2_000,
            canary_n in 1u64..20_000,
            canary_bad in 0u64..2_000,
        ) {
            let stable = Tally { ok: stable_n.saturating_sub(stable_bad), n: stable_n };
            let canary = Tally { ok: canary_n.saturating_sub(canary_bad), n: canary_n };
            let verdict = success_rate(stable, canary, 0.005, 0.95);
            if canary.rate() >= stable.rate() {
                proptest::prop_assert_ne!(verdict, Comparison::Worse);
            }
            if verdict == Comparison::Worse {
                let more = Tally { ok: canary.ok * 4, n: canary.n * 4 };
                proptest::prop_assert_eq!(success_rate(stable, more, 0.005, 0.95), Comparison::Worse);
            }
        }
    }
}
