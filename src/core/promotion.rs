//! Staging proves it first: the verdicts a rollout leaves behind, and the gate that lets a
//! policy start (or advance) only on another policy's verdict for the same worker pool. Pure.
//!
//! Tiers differ in workers and replicas by design, so what one environment can prove for another
//! is the pool **each worker** opens: its size and how it behaves on a bad day. A verdict counts
//! for a policy when these fields are equal (see [`WorkerPool`]):
//! `connectionsPerWorker`, `pool.healthCheckIntervalSeconds`, `pool.retry.attempts`,
//! `pool.retry.initialBackoffMs`, `pool.retry.maxBackoffMs`, `pool.socketTimeoutSeconds` and
//! `pool.connectTimeoutSeconds`. Workers, replicas, env var names and the gates may differ.

use crate::core::api::{PoolSettings, RolloutVerdict, VerdictResult, WorkerPool};
use crate::core::durations::human;
use jiff::SignedDuration;

impl WorkerPool {
    pub fn new(pool: &PoolSettings, connections_per_worker: i32) -> Self {
        WorkerPool {
            connections_per_worker,
            health_check_interval_seconds: pool.health_check_interval_seconds,
            retry: pool.retry.clone(),
            socket_timeout_seconds: pool.socket_timeout_seconds,
            connect_timeout_seconds: pool.connect_timeout_seconds,
        }
    }

    /// A short hash of the fields, in a fixed order: equal pools, equal hashes.
    pub fn hash(&self) -> String {
        let fields = self.fields().map(|(k, v)| format!("{k}={v}"));
        crate::core::render::short_hash(fields.join("\n").as_bytes())
    }

    fn fields(&self) -> [(&'static str, i32); 7] {
        [
            ("connectionsPerWorker", self.connections_per_worker),
            ("pool.healthCheckIntervalSeconds", self.health_check_interval_seconds),
            ("pool.retry.attempts", self.retry.attempts),
            ("pool.retry.initialBackoffMs", self.retry.initial_backoff_ms),
            ("pool.retry.maxBackoffMs", self.retry.max_backoff_ms),
            ("pool.socketTimeoutSeconds", self.socket_timeout_seconds),
            ("pool.connectTimeoutSeconds", self.connect_timeout_seconds),
        ]
    }

    /// The fields that differ, for people: `connectionsPerWorker 30 there, 40 here`.
    pub fn differences(&self, there: &WorkerPool) -> Vec<String> {
        self.fields()
            .into_iter()
            .zip(there.fields())
            .filter(|((_, here), (_, there))| here != there)
            .map(|((name, here), (_, there))| format!("{name} {there} there, {here} here"))
            .collect()
    }
}

impl RolloutVerdict {
    pub fn soaked(&self) -> SignedDuration {
        SignedDuration::from_secs(self.soaked_seconds.max(0))
    }
}

/// Verdicts kept in status: one per worker pool, newest first.
pub const VERDICT_LIMIT: usize = 5;

/// Adds `v` as the newest verdict, replacing an older one of the same worker pool. A pool that
/// succeeded again keeps the clean soak it had: what is proven is the worker pool, and another
/// rollout of it (more workers, say) does not undo that.
pub fn remember(verdicts: &mut Vec<RolloutVerdict>, mut v: RolloutVerdict) {
    let proven = verdicts.iter().find(|old| old.pool_hash == v.pool_hash && old.result == VerdictResult::Succeeded);
    if let Some(old) = proven.filter(|_| v.result == VerdictResult::Succeeded) {
        v.soaked_seconds = v.soaked_seconds.max(old.soaked_seconds);
    }
    verdicts.retain(|old| old.pool_hash != v.pool_hash);
    verdicts.insert(0, v);
    verdicts.truncate(VERDICT_LIMIT);
}

/// Why the policy a requirement names could not be read, in words that name the fix and never
/// quote a credential.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    #[error("no answer within {0}s")]
    Timeout(u64),
    #[error("unauthorized: the API server did not accept {whose} (an expired token?)")]
    Unauthorized { whose: &'static str },
    #[error(
        "forbidden: {whose} may not get redispoolpolicies in namespace {namespace} (see the README for the Role it \
         needs)"
    )]
    Forbidden { whose: &'static str, namespace: String },
    #[error("{whose} could not authenticate")]
    Unauthenticated { whose: &'static str },
    #[error("the API server answered {code} {reason}: {message}")]
    Answered { code: u16, reason: String, message: String },
    /// The connection failed (the client's own words).
    #[error("{0}")]
    Unreachable(String),
    /// The kubeconfig Secret that reaches another cluster is missing or unusable.
    #[error("{0}")]
    Kubeconfig(String),
}

/// One of `spec.promotion.requires`, resolved: what it asks, and what was found where it points.
#[derive(Clone, Debug, PartialEq)]
pub struct Required {
    /// Where the other policy lives, for people: `staging/auth-api`, `staging-cluster:saas/auth-api`.
    pub from: String,
    pub environment: String,
    pub soak: SignedDuration,
    /// The other policy's verdicts and how long it watches after a promotion (None: there is no
    /// such policy), or why it could not be read.
    pub found: Result<Option<Found>, Unreadable>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    pub verdicts: Vec<RolloutVerdict>,
    /// Its `spec.promotion.soak`: no verdict of it soaks longer.
    pub watches: SignedDuration,
}

/// Whether a rollout of `pool` may start (or step on).
#[derive(Clone, Debug, PartialEq)]
pub enum Clearance {
    /// Every requirement has its verdict; what they are, for the rollout's message.
    Clear(Vec<String>),
    /// A verdict is not in yet: wait. `short` is for `kubectl get`; `unreadable` when a
    /// requirement could not be read at all (a person should look).
    Wait { message: String, short: String, unreadable: bool },
    /// A verdict refuses this pool (it rolled back or failed there), or can never be in.
    Refuse(String),
}

/// Judges `pool` against every requirement: refused if any refuses, else waiting if any waits.
pub fn check(pool: &WorkerPool, required: &[Required]) -> Clearance {
    let hash = pool.hash();
    let mut met = Vec::new();
    let mut waits: Vec<(String, String)> = Vec::new();
    let mut unreadable = false;
    for r in required {
        match judge(pool, &hash, r) {
            Judged::Met(m) => met.push(m),
            Judged::Wait(message, short) => waits.push((message, short)),
            Judged::Unreadable(message, short) => {
                unreadable = true;
                waits.push((message, short));
            }
            Judged::Refuse(why) => return Clearance::Refuse(why),
        }
    }
    if waits.is_empty() {
        return Clearance::Clear(met);
    }
    let (messages, shorts): (Vec<String>, Vec<String>) = waits.into_iter().unzip();
    Clearance::Wait { message: messages.join("; "), short: shorts.join(", "), unreadable }
}

enum Judged {
    Met(String),
    Wait(String, String),
    Unreadable(String, String),
    Refuse(String),
}

fn judge(pool: &WorkerPool, hash: &str, r: &Required) -> Judged {
    let from = &r.from;
    let env = &r.environment;
    let found = match &r.found {
        Ok(Some(f)) => f,
        Ok(None) => {
            let message = format!("waiting for {from}: there is no such RedisPoolPolicy (yet)");
            return Judged::Unreadable(message, format!("{from} not found"));
        }
        Err(e) => {
            let message = format!("waiting for {from}: cannot read it: {e}");
            return Judged::Unreadable(message, format!("{from} unreadable"));
        }
    };
    let in_env = || found.verdicts.iter().filter(|v| &v.environment == env);
    let Some(v) = in_env().find(|v| v.pool_hash == hash) else {
        let message = match in_env().next() {
            Some(other) => format!(
                "waiting for {from}: no verdict in {env} on this worker pool {hash} yet; its last is on pool {} ({})",
                other.pool_hash,
                pool.differences(&other.pool).join(", ")
            ),
            None => format!("waiting for {from}: no verdict in {env} yet (this worker pool is {hash})"),
        };
        return Judged::Wait(message, format!("{from} no verdict"));
    };
    let reason = v.reason.as_deref().unwrap_or("no reason recorded");
    match v.result {
        VerdictResult::RolledBack => {
            return Judged::Refuse(format!("{from} rolled back worker pool {hash} in {env}: {reason}"));
        }
        VerdictResult::Failed => {
            return Judged::Refuse(format!(
                "worker pool {hash} failed in {env} ({from}) after its promotion: {reason}"
            ));
        }
        VerdictResult::Succeeded => {}
    }
    let (soaked, soak) = (v.soaked(), r.soak);
    if soaked >= soak {
        return Judged::Met(format!("{from} proved worker pool {hash} in {env}, soaked {}", human(soaked)));
    }
    if let Some(why) = &v.watch_ended {
        return Judged::Refuse(format!(
            "{from} stopped watching worker pool {hash} in {env} at {} of the {} required: {why}",
            human(soaked),
            human(soak)
        ));
    }
    if found.watches < soak {
        return Judged::Refuse(format!(
            "{from} watches a promotion for {} (its spec.promotion.soak), so its verdict can never soak the {} \
             this policy requires: raise its soak or lower this policy's",
            human(found.watches),
            human(soak)
        ));
    }
    Judged::Wait(
        format!("waiting for {from}: worker pool {hash} soaked {} of {} in {env}", human(soaked), human(soak)),
        format!("{from} {}/{}", human(soaked), human(soak)),
    )
}

#[cfg(test)]
mod tests;
