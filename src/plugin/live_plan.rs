//! `plan`: a policy file (the operator's own `plan`), or a live policy planned from what the
//! cluster says: the target's replicas and current pool, an HPA's `maxReplicas`, and `maxclients`
//! from the flag, the spec, or the Redis server itself when it can be asked.

use std::path::PathBuf;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::ListParams;

use super::{Error, Format, Kube, PlanArgs, Result, exit, print_as};
use crate::cli::{Output, PlanArgs as FilePlanArgs, run_plan};
use crate::controller::deployments::{hpa_for, target_env};
use crate::plan::{PlanOptions, plan, render_text};
use crate::render::observed_connections_per_pod;
use crate::sizing::tier;

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
        output: match output {
            None => Output::Text,
            Some(Format::Json) => Output::Json,
            Some(Format::Yaml) => Output::Yaml,
        },
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
    let environment = args.environment.clone().or(status.environment.clone()).or(spec.environment.clone());
    let tier_replicas = environment.as_deref().and_then(|e| tier(spec, e)).and_then(|t| t.replicas);

    let mut opts = PlanOptions { environment, max_clients: args.max_clients, ..Default::default() };
    match &target {
        None => notes.push(format!("the target Deployment {} does not exist yet", spec.target_ref.name)),
        Some(d) => {
            let running = d.spec.replicas.unwrap_or(1);
            if let Some(h) = &hpa {
                opts.hpa_max_replicas = Some(h.max_replicas.max(running));
                notes.push(format!("HorizontalPodAutoscaler {} scales the target up to {}", h.name, h.max_replicas));
            } else if tier_replicas.is_some() && status.replicas_applied_generation != policy.metadata.generation {
                notes.push(format!("the tier's replicas apply (the target runs {running} now)"));
            } else {
                opts.replicas = Some(running);
                notes.push(format!("the target runs {running} replicas"));
            }
            if let Ok(env) = target_env(&policy, d) {
                opts.current_connections_per_pod = observed_connections_per_pod(&spec.env_names, &env);
                if let Some(n) = opts.current_connections_per_pod {
                    notes.push(format!("its pods hold {n} connections each today"));
                }
            }
        }
    }
    if opts.max_clients.is_none()
        && let Some(redis) = spec.redis.as_ref().filter(|r| r.max_clients.is_none())
    {
        let asked = tokio::time::timeout(
            Duration::from_secs(5),
            crate::providers::redis_signals(&kube.client, &kube.namespace, redis),
        )
        .await;
        match asked {
            Ok(Ok(s)) if s.max_clients.is_some() => {
                opts.max_clients = s.max_clients;
                notes.push(format!("maxclients {} read from {}", s.max_clients.unwrap_or_default(), redis.address));
            }
            Ok(Ok(_)) => notes.push(format!("{} does not say its maxclients; pass --max-clients", redis.address)),
            Ok(Err(e)) => notes.push(format!("maxclients unknown ({e}); pass --max-clients")),
            Err(_) => notes.push(format!("maxclients unknown ({} did not answer); pass --max-clients", redis.address)),
        }
    }

    let report = plan(&policy, &opts).map_err(|e| Error::Input(e.to_string()))?;
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
