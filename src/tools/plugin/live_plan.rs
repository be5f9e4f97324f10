//! `plan`: a policy file (the operator's own `plan`), or a live policy planned from what the
//! cluster says: the target's replicas and current pool, an HPA's `maxReplicas`, and `maxclients`
//! from the flag, the spec, or the Redis server itself when it can be asked.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::ListParams;

use super::{Error, Format, Kube, PlanArgs, Result, exit, print_as};
use crate::core::analysis::redis::RedisSignals;
use crate::core::api::{RedisSettings, RedisTopology, canary_name};
use crate::core::deployments::{hpa_for, target_view};
use crate::core::plan::{PlanInput, Replicas, ReplicasSource, render_text, report};
use crate::tools::plan_files::{PlanArgs as FilePlanArgs, run_plan};

pub fn from_file(
    files: &[PathBuf],
    environment: Option<String>,
    max_clients: Option<i64>,
    output: Option<Format>,
) -> u8 {
    let args = FilePlanArgs {
        file: files.to_vec(),
        environment,
        replicas: None,
        max_clients,
        current_connections_per_pod: None,
        hpa_max_replicas: None,
        output: output.into(),
    };
    // The planner's codes are the plugin's: 0, 1 (invalid: FAILED) and 3 (OVER_BUDGET).
    run_plan(&args)
}

pub async fn live(kube: &Kube, args: &PlanArgs) -> Result<u8> {
    let name = args.name.as_deref().unwrap_or_default();
    let policy = kube.policy(name).await?;
    let spec = &policy.spec;
    let status = policy.status.clone().unwrap_or_default();
    let mut notes = Vec::new();

    let target: Option<Deployment> =
        kube.api::<Deployment>().get_opt(&spec.target_ref.name).await.map_err(kube.error("read the target"))?;
    let hpas = kube
        .api::<HorizontalPodAutoscaler>()
        .list(&ListParams::default())
        .await
        .map_err(kube.error("list HorizontalPodAutoscalers"))?
        .items;
    let hpa = hpa_for(&hpas, &spec.target_ref.name);
    let view = target.as_ref().map(|d| target_view(&policy, d, hpa.clone()));
    let canary_replicas = match &view {
        Some(_) => {
            let canary = kube.api::<Deployment>().get_opt(&canary_name(&spec.target_ref.name)).await;
            canary.map_err(kube.error("read the canary"))?.map(|c| c.spec.replicas.unwrap_or(1))
        }
        None => None,
    };
    let mut input = PlanInput {
        // The tier the operator runs the policy in outranks the spec's (edited since, say).
        environment: args.environment.as_deref().or(status.environment.as_deref()),
        default_environment: None,
        // Without a target, what a person would plan: the tier's replicas, or one.
        replicas: match &view {
            Some(v) => Replicas::Observed {
                target: Some(v),
                canary_replicas,
                status: &status,
                generation: policy.metadata.generation.unwrap_or(0),
            },
            None => Replicas::Given { replicas: None, hpa_max: None },
        },
        current_connections_per_pod: view.as_ref().and_then(|v| v.connections_per_pod),
        max_clients: args.max_clients,
        redis_nodes: &[],
    };
    // The server (or every cluster node, or the master the sentinels name) is asked unless
    // both the flag and the spec say its maxclients; a cluster's nodes are asked regardless.
    // Several nodes hold pools: a cluster's, or a Sentinel master's and its replicas'.
    let per_node = spec.redis.as_ref().is_some_and(|r| {
        r.topology == RedisTopology::Cluster || r.topology == RedisTopology::Sentinel && r.read_from_replicas
    });
    let signals = match spec.redis.as_ref() {
        Some(redis) if per_node || input.max_clients.is_none() && redis.max_clients.is_none() => {
            let (signals, note) = ask_redis(kube, redis).await;
            notes.push(note);
            signals
        }
        _ => None,
    };
    if let Some(s) = &signals {
        // Each node has its own maxclients; `--max-clients` stands for all of them.
        match per_node {
            true => input.redis_nodes = &s.nodes,
            false => input.max_clients = input.max_clients.or(s.max_clients),
        }
    }

    let report = report(&policy, &input).map_err(|e| Error::Input(e.to_string()))?;
    let fleet = match (&view, &hpa, report.replicas_source) {
        (None, _, _) => format!("the target Deployment {} does not exist yet", spec.target_ref.name),
        (Some(_), Some(h), _) => {
            format!("HorizontalPodAutoscaler {} scales the target up to {}", h.name, h.max_replicas)
        }
        (Some(v), None, ReplicasSource::Tier) => {
            format!("the tier's replicas apply (the target runs {} now)", v.spec_replicas)
        }
        (Some(v), None, _) => format!("the target runs {} replicas", v.spec_replicas),
    };
    notes.insert(0, fleet);
    if let Some(n) = input.current_connections_per_pod {
        notes.insert(1, format!("its pods hold {n} connections each today"));
    }
    match args.output {
        Some(f) => print_as(&report, f),
        None => {
            print!("{}", render_text(&report));
            println!("live: {}", notes.join("; "));
            if let Some(a) = &status.advice {
                println!("advice: {}", a.message);
            }
        }
    }
    Ok(if report.plan.budget.ok { 0 } else { exit::OVER_BUDGET })
}

/// What the Redis server itself says (with the policy's password and TLS settings): its
/// `maxclients`, and a cluster's nodes that hold pools, with what to say of it.
async fn ask_redis(kube: &Kube, redis: &RedisSettings) -> (Option<RedisSignals>, String) {
    let ask = crate::providers::redis_signals(&kube.client, &kube.namespace, redis);
    match tokio::time::timeout(Duration::from_secs(10), ask).await {
        Ok(Ok(s)) if !s.nodes.is_empty() => {
            let note = format!("{} nodes that hold pools asked through {}", s.nodes.len(), redis.address);
            (Some(s), note)
        }
        Ok(Ok(s)) if s.max_clients.is_some() => {
            let note = match &s.max_clients_note {
                Some(n) => format!("maxclients {} ({n})", s.max_clients.unwrap_or_default()),
                None => format!("maxclients {} read from {}", s.max_clients.unwrap_or_default(), redis.address),
            };
            (Some(s), note)
        }
        Ok(Ok(_)) => (None, format!("{} does not say its maxclients; pass --max-clients", redis.address)),
        Ok(Err(e)) => (None, format!("maxclients unknown ({e}); pass --max-clients")),
        Err(_) => (None, format!("maxclients unknown ({} did not answer); pass --max-clients", redis.address)),
    }
}
