//! `kubectl redispool`: the tool people reach for while a pool rolls out. `list`, `status
//! [--watch]`, the manual actions (which wait for the operator's answer), and `plan` for a file or
//! a live policy. The report and the screen are pure ([`report`], [`screen`]); this module reads
//! the cluster and prints.

mod action;
mod live_plan;
mod release;
pub mod report;
pub mod screen;
mod undo;
mod watch;

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, Namespace};
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::core::api::{RedisPoolPolicy, canary_name};
use crate::core::rollout::ManualAction;
use crate::tools::output::{Format, print_as};
use report::Snapshot;
use screen::Style;

#[derive(Parser, Debug)]
#[command(
    name = "kubectl-redispool",
    bin_name = "kubectl redispool",
    version,
    about = "Watch and steer RedisPoolPolicy rollouts",
    after_help = "Exit codes: 0 ok; 1 the rollout failed or the operator refused the action; 2 bad input \
                  (unknown policy or namespace); 3 the plan exceeds the Redis budget; 4 no cluster reachable; \
                  5 the operator did not answer in time."
)]
pub struct Cli {
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Args, Debug, Clone)]
pub struct KubeArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, which may list several, then
    /// ~/.kube/config).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Namespace (default: the context's namespace).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Every policy: environment, phase, step, weight, canary/stable, last verdict, age.
    List {
        /// All namespaces.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        #[arg(short = 'o', long, value_enum)]
        output: Option<Format>,
    },
    /// One policy: plan, steps, the last analysis's gates, Deployments, conditions, Events.
    Status(StatusArgs),
    /// Skip the remaining steps and promote the canary's configuration now.
    Promote {
        name: String,
        /// Skip every remaining step (what the operator's promote does; accepted for Argo habits).
        #[arg(long)]
        full: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Roll the canary back now and remember its configuration as failed.
    Abort {
        name: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Allow a rolled-back (or overridden) configuration to roll out again.
    Retry {
        name: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Hold the rollout at its current step.
    Pause {
        name: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Go on from a pause.
    Resume {
        name: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Approve the gate the rollout waits at for a person (before its start, a step, or the
    /// promotion); recorded with your user name.
    Approve {
        name: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// The pool plan of a policy file (no cluster needed) or of a live policy.
    Plan(PlanArgs),
    /// Let a deleted policy go when no operator will: give its target back what the rollout
    /// took (the stable's replicas, the canary), then remove its finalizer.
    Release {
        name: String,
        /// Delete the canary even when the stable cannot be given its replicas back (someone
        /// else set them since the operator did).
        #[arg(long)]
        force: bool,
    },
    /// Write a configuration that succeeded here back into the spec (the newest besides the one
    /// the target runs, or --to HASH); with spec.rollout.rollbackWindow it is promoted at once.
    Undo {
        name: String,
        /// The configuration (a hash from `status`, or its prefix).
        #[arg(long)]
        to: Option<String>,
        /// Write the spec even when a GitOps tool owns those fields.
        #[arg(long)]
        force: bool,
    },
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    pub name: String,
    /// Redraw on every change of the policy, its Deployments or its Events.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// With --watch: exit when the rollout ends, 0 on Succeeded or Idle, 1 on RolledBack,
    /// Blocked, Invalid, Conflict or Overridden.
    #[arg(long, requires = "watch")]
    pub until_done: bool,
    /// With --until-done: give up after this long (exit 5), e.g. `10m`.
    #[arg(long, value_parser = humantime::parse_duration, requires = "until_done")]
    pub timeout: Option<Duration>,
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Format>,
    /// Events shown on the screen.
    #[arg(long, default_value_t = 8)]
    pub events: usize,
}

#[derive(clap::Args, Debug, Clone, Copy)]
pub struct WaitArgs {
    /// How long to wait for the operator to act on it.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub timeout: Duration,
}

#[derive(clap::Args, Debug)]
pub struct PlanArgs {
    /// A live policy: reads its target's replicas and pool, an HPA's maxReplicas, and maxclients.
    #[arg(conflicts_with = "file", required_unless_present = "file")]
    pub name: Option<String>,
    /// Policy manifests instead (`-` for stdin; repeat it to plan several together); the same
    /// as `redis-pool-operator plan -f`.
    #[arg(short = 'f', long)]
    pub file: Vec<PathBuf>,
    /// Tier to plan for (default: the policy's).
    #[arg(long)]
    pub environment: Option<String>,
    /// The Redis server's maxclients (default: spec.redis.maxClients, then the live server).
    #[arg(long)]
    pub max_clients: Option<i64>,
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<Format>,
}

/// Exit codes, as `--help` lists them.
pub mod exit {
    pub const FAILED: u8 = 1;
    pub const BAD_INPUT: u8 = 2;
    // The same as `redis-pool-operator plan`, whose codes `plan -f` passes through.
    pub const OVER_BUDGET: u8 = crate::tools::plan_files::EXIT_BUDGET;
    pub const UNREACHABLE: u8 = 4;
    pub const TIMEOUT: u8 = 5;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot load the kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("cannot reach the Kubernetes API at {url}: {why} (check --kubeconfig and --context)")]
    Unreachable { url: String, why: String },
    #[error("namespace {0:?} does not exist")]
    NoNamespace(String),
    #[error("redispoolpolicy {name:?} not found in namespace {namespace:?}; {hint}")]
    NotFound { name: String, namespace: String, hint: String },
    #[error("{what}: {why}")]
    Api { what: String, why: String },
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Input(String),
}

impl Error {
    fn code(&self) -> u8 {
        match self {
            Error::Kubeconfig(_) | Error::Unreachable { .. } => exit::UNREACHABLE,
            Error::NoNamespace(_) | Error::NotFound { .. } | Error::Input(_) => exit::BAD_INPUT,
            Error::Api { .. } | Error::Refused(_) => exit::FAILED,
            Error::Timeout(_) => exit::TIMEOUT,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A connected client and what the request errors need to name.
pub struct Kube {
    pub client: Client,
    pub namespace: String,
    pub url: String,
}

impl Kube {
    pub async fn connect(args: &KubeArgs) -> Result<Kube> {
        let options = KubeConfigOptions { context: args.context.clone(), ..Default::default() };
        let config = match &args.kubeconfig {
            Some(path) => {
                let kubeconfig =
                    Kubeconfig::read_from(path).map_err(|e| Error::Kubeconfig(format!("{}: {e}", path.display())))?;
                Config::from_custom_kubeconfig(kubeconfig, &options).await
            }
            None => Config::from_kubeconfig(&options).await,
        }
        .map_err(|e| Error::Kubeconfig(e.to_string()))?;
        let namespace = args.namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
        let url = config.cluster_url.to_string();
        let client = Client::try_from(config).map_err(|e| Error::Kubeconfig(e.to_string()))?;
        Ok(Kube { client, namespace, url })
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Maps a failed request: an API answer is the API's message; anything else means the
    /// cluster was not reached.
    pub fn error<'a>(&'a self, what: &'a str) -> impl Fn(kube::Error) -> Error + 'a {
        move |e| match e {
            kube::Error::Api(s) => Error::Api { what: what.to_string(), why: s.message.clone() },
            other => Error::Unreachable { url: self.url.clone(), why: root_cause(&other) },
        }
    }

    /// The policy, or an error that says what exists instead.
    pub async fn policy(&self, name: &str) -> Result<RedisPoolPolicy> {
        let api: Api<RedisPoolPolicy> = self.api();
        if let Some(p) = api.get_opt(name).await.map_err(self.error("read the policy"))? {
            return Ok(p);
        }
        self.namespace_exists().await?;
        let names: Vec<String> = api
            .list(&ListParams::default())
            .await
            .map_err(self.error("list policies"))?
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect();
        let hint = if names.is_empty() {
            "there are no policies in this namespace (try -A with list)".to_string()
        } else {
            format!("policies here: {}", names.join(", "))
        };
        Err(Error::NotFound { name: name.into(), namespace: self.namespace.clone(), hint })
    }

    /// Fails when the namespace is known not to exist. Users allowed into one namespace only
    /// may not read namespaces: then nothing is known and nothing is said.
    pub async fn namespace_exists(&self) -> Result<()> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        match namespaces.get_opt(&self.namespace).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(Error::NoNamespace(self.namespace.clone())),
            Err(kube::Error::Api(e)) if e.code == 403 => Ok(()),
            Err(e) => Err(self.error("read the namespace")(e)),
        }
    }

    /// The policy, its Deployments and its Events, read once.
    pub async fn snapshot(&self, name: &str) -> Result<Snapshot> {
        let policy = self.policy(name).await?;
        let deployments: Api<Deployment> = self.api();
        let target_name = policy.spec.target_ref.name.clone();
        let target = deployments.get_opt(&target_name).await.map_err(self.error("read the target"))?;
        let canary = deployments.get_opt(&canary_name(&target_name)).await.map_err(self.error("read the canary"))?;
        let events = self.events(name).await?;
        Ok(Snapshot { policy, target, canary, events, now: jiff::Timestamp::now() })
    }

    /// The Events about a policy.
    pub async fn events(&self, name: &str) -> Result<Vec<Event>> {
        let events: Api<Event> = self.api();
        Ok(events
            .list(&ListParams::default().fields(&events_selector(name)))
            .await
            .map_err(self.error("list Events"))?
            .items)
    }
}

/// The field selector of a policy's Events.
pub fn events_selector(name: &str) -> String {
    format!("involvedObject.kind=RedisPoolPolicy,involvedObject.name={name}")
}

/// The innermost error message: "connection refused" rather than five layers of wrapping.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

pub fn style_for_stdout() -> Style {
    Style { colour: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.code())
        }
    }
}

async fn run(cli: Cli) -> Result<u8> {
    if let Command::Plan(PlanArgs { file, environment, max_clients, output, .. }) = &cli.command
        && !file.is_empty()
    {
        // Files need no cluster: the same planner as `redis-pool-operator plan`.
        return Ok(live_plan::from_file(file, environment.clone(), *max_clients, *output));
    }
    let kube = Kube::connect(&cli.kube).await?;
    let manual = |action, name: &String, wait: &WaitArgs| (action, name.clone(), wait.timeout);
    let (action, name, timeout) = match &cli.command {
        Command::List { all_namespaces, output } => return list(&kube, *all_namespaces, *output).await,
        Command::Status(args) => return status(&kube, args).await,
        Command::Plan(args) => return live_plan::live(&kube, args).await,
        Command::Release { name, force } => return release::run(&kube, name, *force).await,
        Command::Undo { name, to, force } => return undo::run(&kube, name, to.as_deref(), *force).await,
        Command::Promote { name, wait, .. } => manual(ManualAction::Promote, name, wait),
        Command::Abort { name, wait } => manual(ManualAction::Abort, name, wait),
        Command::Retry { name, wait } => manual(ManualAction::Retry, name, wait),
        Command::Pause { name, wait } => manual(ManualAction::Pause, name, wait),
        Command::Resume { name, wait } => manual(ManualAction::Resume, name, wait),
        Command::Approve { name, wait } => manual(ManualAction::Approve, name, wait),
    };
    action::run(&kube, &name, action, timeout).await
}

async fn list(kube: &Kube, all: bool, output: Option<Format>) -> Result<u8> {
    let api: Api<RedisPoolPolicy> = if all { Api::all(kube.client.clone()) } else { kube.api() };
    let mut policies = api.list(&ListParams::default()).await.map_err(kube.error("list policies"))?.items;
    if !all && policies.is_empty() {
        kube.namespace_exists().await?;
    }
    policies.sort_by(|a, b| (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name)));
    let now = jiff::Timestamp::now();
    let rows: Vec<_> = policies.iter().map(|p| report::list_row(p, now)).collect();
    match output {
        Some(f) => print_as(&rows, f),
        None if rows.is_empty() && all => eprintln!("No RedisPoolPolicies found."),
        None if rows.is_empty() => eprintln!("No RedisPoolPolicies found in namespace {}.", kube.namespace),
        None => print!("{}", screen::list_table(&rows, all, style_for_stdout())),
    }
    Ok(0)
}

async fn status(kube: &Kube, args: &StatusArgs) -> Result<u8> {
    if args.watch {
        return watch::run(kube, args).await;
    }
    let snapshot = kube.snapshot(&args.name).await?;
    let r = report::status_report(&snapshot);
    match args.output {
        Some(f) => print_as(&r, f),
        None => print!("{}", screen::status_screen(&r, style_for_stdout(), args.events)),
    }
    Ok(0)
}
