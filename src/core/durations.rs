//! The spec's durations, read once with their fallbacks, and durations written for people.

use jiff::SignedDuration;

use crate::core::api::RedisPoolPolicySpec;

/// The spec's durations, parsed. Admission guarantees the format; a value that still fails to
/// parse (an old CRD without the rules) falls back to the runbook default, never to zero.
pub struct Durations {
    pub interval: SignedDuration,
    pub progress_deadline: SignedDuration,
    /// `spec.promotion.soak`: how long analyses watch a promotion.
    pub promotion_soak: SignedDuration,
}

pub fn parse_duration(s: &str) -> Option<SignedDuration> {
    humantime::parse_duration(s).ok().and_then(|d| SignedDuration::try_from(d).ok())
}

pub fn durations(spec: &RedisPoolPolicySpec) -> Durations {
    let a = &spec.rollout.analysis;
    Durations {
        interval: parse_duration(&a.interval).unwrap_or(SignedDuration::from_secs(30)),
        progress_deadline: parse_duration(&a.progress_deadline).unwrap_or(SignedDuration::from_hours(1)),
        promotion_soak: promotion_soak(spec),
    }
}

/// `spec.promotion.soak`, the runbook's 24h when it cannot be read.
pub fn promotion_soak(spec: &RedisPoolPolicySpec) -> SignedDuration {
    parse_duration(&spec.promotion.soak).unwrap_or(SignedDuration::from_hours(24))
}

pub fn step_pause(spec: &RedisPoolPolicySpec, step: usize) -> SignedDuration {
    spec.rollout.steps.get(step).and_then(|s| parse_duration(&s.pause)).unwrap_or(SignedDuration::ZERO)
}

/// A duration for people: `8h`, `25m`, `12s`, `1h30m`.
pub fn human(d: SignedDuration) -> String {
    let secs = d.as_secs().max(0);
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, _) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}
