//! The plan report people read: what `plan -f` and `kubectl redispool plan` print, and the
//! checks of policies planned together (a shared Redis budget, a verdict chain).

use std::fmt::Write as _;

use serde::Serialize;

use super::{PlanError, PlanInput, ReplicasSource, plan};
use crate::core::api::{ClusterPools, RedisPoolPolicy, RedisSettings, RedisTopology, WorkerPool};
use crate::core::node_budget::NodeBudget;
use crate::core::sizing::{Fleet, RolloutPlan};

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PlanReport {
    pub policy: String,
    pub target: String,
    #[serde(flatten)]
    pub plan: RolloutPlan,
    /// Where the replica count came from.
    pub replicas_source: ReplicasSource,
    /// The gates this tier is judged by (its own thresholds, else the policy's).
    pub gates: Vec<GateThresholds>,
    /// What the canary is judged beside, and the steps where there is no stable to compare with.
    pub baseline: BaselineView,
    /// The per-worker pool: what a verdict proves, and what `spec.promotion.requires` compares.
    pub worker_pool: WorkerPool,
    pub worker_pool_hash: String,
    /// The verdicts a rollout waits for.
    pub requires: Vec<RequiredView>,
    /// How long analyses watch the target after a promotion (`spec.promotion.soak`).
    pub soak_after_promotion: String,
    /// Where the pools connect and what the budget is checked on (`spec.redis.topology`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<String>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RequiredView {
    /// `namespace/name`, with ` (kubeconfig in Secret NAME)` for another cluster.
    pub from: String,
    pub environment: String,
    pub soak: String,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BaselineView {
    /// `Stable` or `None`.
    pub compare_with: crate::core::api::AnalysisBaseline,
    /// 1-based steps whose stable has no pods (a split rollout's last step): there the canary is
    /// judged by its absolute thresholds and the Redis server's evidence only.
    pub steps_without_stable: Vec<usize>,
}

#[derive(Serialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GateThresholds {
    pub gate: &'static str,
    pub promote: String,
    pub rollback: String,
    /// The bound relative to the stable, when the gate has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relative: Option<String>,
    /// Measured and shown, never deciding.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// The plan report of `policy`, as `plan -f` and `kubectl redispool plan` print it.
pub fn report(policy: &RedisPoolPolicy, input: &PlanInput) -> Result<PlanReport, PlanError> {
    let planned = plan(policy, input)?;
    let spec = &policy.spec;
    let ns = policy.metadata.namespace.as_deref().unwrap_or("default");
    let name = policy.metadata.name.as_deref().unwrap_or("<unnamed>");
    let container = spec.target_ref.container.as_deref().unwrap_or("first container");
    let analysis = crate::core::analysis::for_tier(spec, &planned.environment);
    let gates = crate::core::api::Gate::ALL
        .into_iter()
        .map(|g| {
            let th = crate::core::analysis::thresholds(&analysis, g);
            let dry_run = crate::core::analysis::dry_run(&analysis, g);
            GateThresholds {
                gate: g.name(),
                promote: th.promote,
                rollback: th.rollback,
                relative: th.relative,
                dry_run,
            }
        })
        .collect();
    let steps_without_stable = match analysis.baseline {
        crate::core::api::AnalysisBaseline::Stable => {
            planned.plan.steps.iter().enumerate().filter(|(_, s)| s.stable_replicas == 0).map(|(i, _)| i + 1).collect()
        }
        crate::core::api::AnalysisBaseline::Nothing => Vec::new(),
    };
    let baseline = BaselineView { compare_with: analysis.baseline, steps_without_stable };
    let worker_pool = planned.worker_pool(spec);
    let requires = spec
        .promotion
        .requires
        .iter()
        .map(|r| RequiredView {
            from: required_from(ns, &r.from),
            environment: r.environment.clone(),
            soak: r.soak.clone(),
        })
        .collect();
    Ok(PlanReport {
        policy: format!("{ns}/{name}"),
        target: format!("Deployment {} ({container})", spec.target_ref.name),
        plan: planned.plan,
        replicas_source: planned.replicas_source,
        gates,
        baseline,
        worker_pool_hash: worker_pool.hash(),
        worker_pool,
        requires,
        soak_after_promotion: spec.promotion.soak.clone(),
        redis: spec.redis.as_ref().map(topology_line),
    })
}

/// What the budget is checked on, per topology, in the words `plan` prints.
fn topology_line(r: &RedisSettings) -> String {
    let replicas = if r.read_from_replicas { "every serving master and replica" } else { "every serving master" };
    match r.topology {
        RedisTopology::Standalone => format!("standalone server {}: the budget is its maxclients", r.address),
        RedisTopology::Cluster => match r.cluster_pools.unwrap_or_default() {
            ClusterPools::PerNode => format!(
                "cluster seen through seed {}: a pool per node, so {replicas} holds the whole fleet's pools; \
                 each must fit its own maxclients (nodes discovered at each probe)",
                r.address
            ),
            ClusterPools::Spread => format!(
                "cluster seen through seed {}: one pool spread over the nodes, so {replicas} holds an even share; \
                 each must fit its own maxclients (nodes discovered at each probe)",
                r.address
            ),
        },
        RedisTopology::Sentinel => format!(
            "the master the sentinels ({}) name {:?}{}: the budget is checked on it, and follows it after a failover",
            std::iter::once(r.address.as_str())
                .chain(r.sentinel.iter().flat_map(|s| s.addresses.iter().map(String::as_str)))
                .collect::<Vec<_>>()
                .join(", "),
            r.sentinel.as_ref().map_or("", |s| s.master_name.as_str()),
            if r.read_from_replicas { ", and each of its replicas (the application reads from them)" } else { "" }
        ),
        RedisTopology::Proxy => format!(
            "proxy {}: the budget is its client limit (maxClients); the servers behind it are not sized by the pool \
             and not checked",
            r.address
        ),
    }
}

/// Where a requirement points, for people: `staging/auth-api`, or with the Secret that reaches
/// another cluster.
fn required_from(ns: &str, from: &crate::core::api::PolicyRef) -> String {
    let at = from.at(ns);
    match &from.kubeconfig_secret_ref {
        Some(s) => format!("{at} (another cluster: kubeconfig in Secret {ns}/{})", s.name),
        None => at,
    }
}

/// A tier's gates for people: each with its thresholds, relative bound and dry run.
fn gates_line(gates: &[GateThresholds]) -> String {
    let gates: Vec<String> = gates
        .iter()
        .map(|g| {
            let dry = if g.dry_run { ", dry run" } else { "" };
            let relative = g.relative.as_ref().map(|r| format!(", {r}")).unwrap_or_default();
            format!("{} {} (rollback {}{relative}{dry})", g.gate, g.promote, g.rollback)
        })
        .collect();
    gates.join(", ")
}

/// What the canary is judged beside, for people.
fn baseline_line(b: &BaselineView) -> String {
    match b.compare_with {
        crate::core::api::AnalysisBaseline::Nothing => {
            "judged alone (baseline: None): absolute thresholds only; a fault every pod shares counts against the \
             canary"
                .into()
        }
        crate::core::api::AnalysisBaseline::Stable => {
            let mut line = "judged beside the stable over the same interval: a breach the stable shares, or a Redis \
                            restart, failover or outage, is Inconclusive (never a rollback)"
                .to_string();
            if !b.steps_without_stable.is_empty() {
                let steps: Vec<String> = b.steps_without_stable.iter().map(ToString::to_string).collect();
                let _ = write!(
                    line,
                    "; step {} has no stable pods: absolute thresholds and the Redis server's evidence only",
                    steps.join(", ")
                );
            }
            line
        }
    }
}

/// The report for people.
pub fn render_text(r: &PlanReport) -> String {
    let p = &r.plan.pool;
    let mut s = String::new();
    let _ = writeln!(s, "policy {} -> {}", r.policy, r.target);
    let _ = writeln!(
        s,
        "tier {}: {} workers x {} connections = {} connections per pod; {} replicas{} = {} connections steady",
        p.tier,
        p.workers,
        p.connections_per_worker,
        p.connections_per_pod,
        p.replicas,
        match r.replicas_source {
            ReplicasSource::Assumed => " (assumed: set tiers[].replicas or pass --replicas)",
            _ => "",
        },
        p.steady_connections()
    );
    let _ = writeln!(s, "gates ({}): {}", p.tier, gates_line(&r.gates));
    let _ = writeln!(s, "{}", baseline_line(&r.baseline));
    let w = &r.worker_pool;
    let _ = writeln!(
        s,
        "worker pool {}: {} connections, retry {} x {}..{} ms, timeouts {}s socket / {}s connect, health check {}s",
        r.worker_pool_hash,
        w.connections_per_worker,
        w.retry.attempts,
        w.retry.initial_backoff_ms,
        w.retry.max_backoff_ms,
        w.socket_timeout_seconds,
        w.connect_timeout_seconds,
        w.health_check_interval_seconds
    );
    for q in &r.requires {
        let _ = writeln!(
            s,
            "requires: a {} verdict on worker pool {} from {}, soaked {} after its promotion",
            q.environment, r.worker_pool_hash, q.from, q.soak
        );
    }
    let _ =
        writeln!(s, "after a promotion: analyses watch the target for {} (its verdict's soak)", r.soak_after_promotion);
    if let Fleet::Beside { max_stable } = r.plan.fleet {
        let _ = writeln!(
            s,
            "an HPA scales the target (up to {max_stable} replicas): canary pods run beside the stable, \
             weight = canary / (stable + canary), at most 50%; the budget counts {max_stable} stable replicas"
        );
    }
    let _ = writeln!(
        s,
        "{:<6}{:>8}{:>8}{:>8}{:>8}{:>18}",
        "step", "weight", "canary", "stable", "actual", "peak connections"
    );
    for (i, st) in r.plan.steps.iter().enumerate() {
        let _ = writeln!(
            s,
            "{:<6}{:>7}%{:>8}{:>8}{:>7}%{:>18}",
            i + 1,
            st.weight,
            st.canary_replicas,
            st.stable_replicas,
            st.actual_weight,
            st.peak_connections
        );
    }
    let _ = writeln!(
        s,
        "promotion peak connections: {} (the target's rolling update may add {} surge pods beside its old ones)",
        r.plan.promotion_peak_connections, r.plan.promotion_surge
    );
    if let Some(redis) = &r.redis {
        let _ = writeln!(s, "redis: {redis}");
    }
    let b = &r.plan.budget;
    if !b.nodes.is_empty() {
        s.push_str(&node_table(&b.nodes));
    }
    let verdict = if b.ok { "ok" } else { "EXCEEDED" };
    let _ = writeln!(s, "budget {verdict}: {}", b.explain());
    s
}

/// The budget on each cluster node: what `plan` prints when it asked the nodes.
pub fn node_table(nodes: &[NodeBudget]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<24}{:<10}{:<9}{:>11}{:>8}{:>8}{:>7}  verdict",
        "node", "id", "role", "maxclients", "limit", "others", "peak"
    );
    for n in nodes {
        let number = |v: Option<i64>| v.map_or("?".to_string(), |v| v.to_string());
        let verdict = match (n.ok, n.max_clients) {
            (_, None) => "unknown",
            (true, _) => "fits",
            (false, _) => "OVER",
        };
        let _ = writeln!(
            s,
            "{:<24}{:<10}{:<9}{:>11}{:>8}{:>8}{:>7}  {verdict}",
            n.address,
            n.id,
            n.role,
            number(n.max_clients),
            number(n.limit),
            n.others,
            n.peak
        );
    }
    s
}

/// The budget several planned policies share on one Redis server.
pub struct SharedGroup {
    pub text: String,
    /// Every policy can start with the others at their new steady connections.
    pub ok: bool,
}

/// Groups the planned policies by Redis server (see `shared_budget::group_key`) and, for each
/// server with two or more, says whether each rollout fits beside the others once they are done
/// (their new steady connections): the operator starts one only when its peak fits beside the
/// others' (their peaks while they roll out), so that is the condition for every one to run.
pub fn shared_groups(policies: &[RedisPoolPolicy], reports: &[PlanReport]) -> Vec<SharedGroup> {
    use std::collections::BTreeMap;
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, p) in policies.iter().enumerate() {
        if let Some(redis) = &p.spec.redis {
            let ns = p.metadata.namespace.as_deref().unwrap_or("default");
            groups.entry(crate::core::shared_budget::group_key(ns, redis)).or_default().push(i);
        }
    }
    // Two policies of one namespace and name live in different clusters (a chain's staging and
    // production): their servers of one address are two servers.
    let one_cluster = |members: &Vec<usize>| {
        let mut names: Vec<&str> = members.iter().map(|&i| reports[i].policy.as_str()).collect();
        names.sort();
        names.windows(2).all(|w| w[0] != w[1])
    };
    groups
        .into_iter()
        .filter(|(_, members)| members.len() > 1 && one_cluster(members))
        .map(|(key, members)| {
            let steady = |i: usize| reports[i].plan.pool.steady_connections();
            let mut text = format!("shared Redis {key}:\n");
            let mut ok = true;
            for &i in &members {
                // Each policy's own budget (its utilization), as the operator checks it.
                let limit = reports[i].plan.budget.limit;
                let own = reports[i].plan.budget.peak_connections;
                let others: i64 = members.iter().filter(|&&j| j != i).map(|&j| steady(j)).sum();
                let fits = limit.is_none_or(|l| own + others <= l);
                ok &= fits;
                let _ = writeln!(
                    text,
                    "  {}: peak {own} beside the others' steady {others} = {}{}",
                    reports[i].policy,
                    own + others,
                    match (limit, fits) {
                        (Some(l), true) => format!(" fits the budget of {l}"),
                        (Some(l), false) => format!(" EXCEEDS the budget of {l}: it could never start"),
                        (None, _) => " (no maxclients known)".to_string(),
                    }
                );
            }
            let all: i64 = members.iter().map(|&i| reports[i].plan.budget.peak_connections).sum();
            let smallest = members.iter().filter_map(|&i| reports[i].plan.budget.limit).min();
            if let Some(l) = smallest.filter(|l| all > *l) {
                let _ = writeln!(text, "  all at once: {all} > {l}: the operator runs them one after another");
            }
            SharedGroup { text, ok }
        })
        .collect()
}

/// For policies planned together, each requirement that names another of them: whether that
/// policy's worker pool (in the tier it plans) is the one this policy asks for, since only a
/// verdict on the same worker pool ever counts. False when one can never count.
pub fn chain_checks(policies: &[RedisPoolPolicy], reports: &[PlanReport]) -> Vec<(String, bool)> {
    let mut checks = Vec::new();
    for (p, r) in policies.iter().zip(reports) {
        let ns = p.metadata.namespace.as_deref().unwrap_or("default");
        for q in &p.spec.promotion.requires {
            let at = q.from.at(ns);
            // Another cluster's policy may carry this one's very name: never compare with itself.
            let Some(other) = reports.iter().find(|o| o.policy == at && !std::ptr::eq(*o, r)) else { continue };
            let tier = &other.plan.pool.tier;
            let (text, ok) = if tier != &q.environment {
                (
                    format!("{at} plans tier {tier}, not {}: its verdicts are not the ones required", q.environment),
                    false,
                )
            } else if other.worker_pool_hash == r.worker_pool_hash {
                (
                    format!("its {tier} tier runs the same worker pool {}: its verdict will count", r.worker_pool_hash),
                    true,
                )
            } else {
                let diff = r.worker_pool.differences(&other.worker_pool).join(", ");
                (format!("its {tier} tier runs another worker pool ({diff}): no verdict of it can ever count"), false)
            };
            checks.push((format!("{} requires {at}: {text}", r.policy), ok));
        }
    }
    checks
}
