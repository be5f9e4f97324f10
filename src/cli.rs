//! The command line: `crd`, `plan`, `run`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::api::validation::{Invalid, parse_policy};
use crate::plan::{PlanOptions, plan, render_text};
use crate::plugin::{Format, print_as};

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
    #[arg(long, env = "RPO_LOG_FORMAT", value_enum, default_value_t = crate::telemetry::LogFormat::Text)]
    pub log_format: crate::telemetry::LogFormat,
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
}

#[derive(clap::Args, Debug)]
pub struct PlanArgs {
    /// Policy manifest (YAML; several documents are planned one after the other). `-` for stdin.
    /// Repeat it to plan policies from several files together (a shared Redis budget).
    #[arg(short = 'f', long = "file", required = true)]
    pub file: Vec<PathBuf>,
    /// Tier to plan for (overrides spec.environment).
    #[arg(long)]
    pub environment: Option<String>,
    /// Total replicas (overrides the tier's replicas).
    #[arg(long)]
    pub replicas: Option<i32>,
    /// The Redis server's maxclients, for the budget check (overrides spec.redis.maxClients).
    #[arg(long)]
    pub max_clients: Option<i64>,
    /// Connections per pod the target holds today (default: the new value).
    #[arg(long)]
    pub current_connections_per_pod: Option<i64>,
    /// A HorizontalPodAutoscaler scales the target up to this many replicas: plan canary pods
    /// beside its stable and count the budget at maxReplicas.
    #[arg(long)]
    pub hpa_max_replicas: Option<i32>,
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
    Yaml,
}

/// Exit codes of `plan`.
pub const EXIT_INVALID: u8 = 1;
pub const EXIT_BUDGET: u8 = 3;

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
    crate::telemetry::init(args.log_format, &args.log_level);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let options = crate::controller::Options {
        kubeconfig: args.kubeconfig,
        settings: crate::controller::Settings {
            environment: args.environment,
            namespace: args.namespace,
            instance: args.instance,
            concurrency: args.concurrency,
        },
        metrics_addr: args.metrics_addr,
        leader_election: args.leader_election,
        lease_name: args.lease_name,
        lease_namespace: args.lease_namespace,
        lease_duration: args.lease_duration,
    };
    match runtime.block_on(crate::controller::start(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "the operator stopped");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The CRD exactly as `crds/redispoolpolicy.yaml` holds it.
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(&crate::api::validation::crd())
}

/// Plans the files of `args`; the exit code (0, `EXIT_INVALID` or `EXIT_BUDGET`).
pub fn run_plan(args: &PlanArgs) -> u8 {
    let mut documents = Vec::new();
    for file in &args.file {
        let text = if file.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin())
        } else {
            std::fs::read_to_string(file)
        };
        match text {
            Ok(t) => documents.push((file, t)),
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", file.display());
                return EXIT_INVALID;
            }
        }
    }
    let opts = PlanOptions {
        environment: args.environment.clone(),
        replicas: args.replicas,
        max_clients: args.max_clients,
        current_connections_per_pod: args.current_connections_per_pod,
        hpa_max_replicas: args.hpa_max_replicas,
    };
    let (mut invalid, mut over_budget) = (false, false);
    let mut reports = Vec::new();
    let mut policies = Vec::new();
    let all =
        documents.iter().flat_map(|(file, text)| split_documents(text).into_iter().enumerate().map(move |d| (file, d)));
    for (file, (i, doc)) in all {
        let label = format!("{} (document {})", file.display(), i + 1);
        let parsed = parse_policy(doc).map_err(PlanFailure::Invalid);
        match parsed.and_then(|p| plan(&p, &opts).map(|r| (p, r)).map_err(PlanFailure::Plan)) {
            Ok((policy, report)) => {
                over_budget |= !report.plan.budget.ok;
                reports.push(report);
                policies.push(policy);
            }
            Err(PlanFailure::Invalid(Invalid(violations))) => {
                eprintln!("error: {label} is not a valid RedisPoolPolicy:");
                for v in violations {
                    eprintln!("  - {v}");
                }
                invalid = true;
            }
            Err(PlanFailure::Plan(e)) => {
                eprintln!("error: {label}: {e}");
                invalid = true;
            }
        }
    }
    match args.output {
        Output::Json | Output::Yaml => {
            let format = if args.output == Output::Yaml { Format::Yaml } else { Format::Json };
            match reports.as_slice() {
                [one] => print_as(one, format),
                all => print_as(&all, format),
            }
        }
        Output::Text => {
            for r in &reports {
                print!("{}", render_text(r));
            }
        }
    }
    // Several policies on one Redis: the budget they share.
    for group in crate::plan::shared_groups(&policies, &reports) {
        over_budget |= !group.ok;
        // JSON and YAML stay parseable on stdout; the shared verdict still reaches a person.
        match args.output {
            Output::Text => print!("{}", group.text),
            _ if !group.ok => eprint!("{}", group.text),
            _ => {}
        }
    }
    // Policies that require each other's verdicts: do their worker pools match?
    for (text, ok) in crate::plan::chain_checks(&policies, &reports) {
        invalid |= !ok;
        match (ok, args.output) {
            (false, _) => eprintln!("error: {text}"),
            (true, Output::Text) => println!("{text}"),
            (true, _) => {}
        }
    }
    // An invalid policy outranks a budget verdict: it must be fixed first.
    if invalid {
        EXIT_INVALID
    } else if over_budget {
        EXIT_BUDGET
    } else {
        0
    }
}

enum PlanFailure {
    Invalid(Invalid),
    Plan(crate::plan::PlanError),
}

/// Splits a multi-document YAML stream, skipping empty documents.
pub fn split_documents(text: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == "---" {
            docs.push(&text[start..offset]);
            start = offset + line.len();
        }
        offset += line.len();
    }
    docs.push(&text[start..]);
    docs.into_iter().filter(|d| d.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))).collect()
}
