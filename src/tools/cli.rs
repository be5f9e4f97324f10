//! The command line: `crd`, `plan`, `run`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::tools::plan_files::{PlanArgs, run_plan};

#[derive(Parser, Debug)]
#[command(name = "redis-pool-operator", version, about = "Rolls Redis connection pool settings out through canaries")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the RedisPoolPolicy CustomResourceDefinition as YAML.
    Crd,
    /// Validate a policy without a cluster and print its pool plan.
    Plan(PlanArgs),
    /// Run the controller.
    Run(RunArgs),
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Kubeconfig to use; without it: $KUBECONFIG, ~/.kube/config, or the in-cluster service account.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Tier for policies without spec.environment.
    #[arg(long, env = "RPO_ENVIRONMENT")]
    pub environment: Option<String>,
    /// Watch only this namespace (namespaced mode); all namespaces when unset.
    #[arg(long, env = "RPO_NAMESPACE")]
    pub namespace: Option<String>,
    /// Address for /healthz, /readyz and /metrics.
    #[arg(long, env = "RPO_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: std::net::SocketAddr,
    #[arg(long, env = "RPO_LOG_FORMAT", value_enum, default_value_t = crate::operator::telemetry::LogFormat::Text)]
    pub log_format: crate::operator::telemetry::LogFormat,
    /// Log filter, e.g. `info` or `redis_pool_operator=debug`.
    #[arg(long, env = "RPO_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Name of this instance in Events and the Lease (the pod name in a cluster).
    #[arg(long, env = "POD_NAME")]
    pub instance: Option<String>,
    /// Run only while holding a Lease, so that of several replicas exactly one writes.
    #[arg(long, env = "RPO_LEADER_ELECTION")]
    pub leader_election: bool,
    #[arg(long, env = "RPO_LEASE_NAME", default_value = "redis-pool-operator")]
    pub lease_name: String,
    /// Namespace of the Lease (the operator's own namespace in a cluster).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,
    /// Seconds a Lease stays valid without renewal: how long a standby waits for a dead leader.
    #[arg(long, env = "RPO_LEASE_DURATION", default_value_t = 15)]
    pub lease_duration: u64,
    /// Policies reconciled at once. Each reconcile holds an API server connection while it
    /// reads and writes, so this also bounds the operator's connections (and their memory).
    #[arg(long, env = "RPO_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// The cluster-wide settings file (YAML: `freezeWindows`), which the chart renders from its
    /// values. Read once at start: a file that cannot be read stops the operator, naming the field.
    #[arg(long, env = "RPO_CLUSTER_SETTINGS")]
    pub cluster_settings: Option<PathBuf>,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => match crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Plan(args) => ExitCode::from(run_plan(&args)),
        Command::Run(args) => run_controller(args),
    }
}

fn run_controller(args: RunArgs) -> ExitCode {
    crate::operator::telemetry::init(args.log_format, &args.log_level);
    let cluster = match read_cluster_settings(args.cluster_settings.as_deref()) {
        Ok(read) => read,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let options = crate::operator::Options {
        kubeconfig: args.kubeconfig,
        settings: crate::operator::Settings {
            environment: args.environment,
            namespace: args.namespace,
            instance: args.instance,
            concurrency: args.concurrency,
            cluster_windows: cluster.freeze_windows,
            cluster_subscriptions: cluster.notifications,
            secrets_namespace: args.lease_namespace.clone(),
        },
        metrics_addr: args.metrics_addr,
        leader_election: args.leader_election,
        lease_name: args.lease_name,
        lease_namespace: args.lease_namespace,
        lease_duration: args.lease_duration,
    };
    match runtime.block_on(crate::operator::start(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "the operator stopped");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The cluster-wide settings file, read and checked (none: nothing cluster-wide).
fn read_cluster_settings(
    path: Option<&std::path::Path>,
) -> Result<crate::core::cluster_settings::Read, Box<dyn std::error::Error>> {
    let Some(path) = path else { return Ok(Default::default()) };
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("--cluster-settings {name}: {e}"))?;
    Ok(crate::core::cluster_settings::ClusterSettings::parse(&text, &name)?)
}

/// The CRD exactly as `crds/redispoolpolicy.yaml` holds it.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(&crate::core::api::validation::crd())
}
