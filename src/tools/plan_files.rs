//! `plan -f`: policy files planned without a cluster, alone or together (a shared Redis budget,
//! a verdict chain). The operator's `plan` and the plugin's `plan -f` are this one function.

use std::path::PathBuf;

use crate::core::api::validation::{Invalid, parse_policy};
use crate::core::plan::{PlanInput, Replicas, render_text, report};
use crate::tools::output::{Output, print_as};

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

/// Exit codes of `plan`.
pub const EXIT_INVALID: u8 = 1;
pub const EXIT_BUDGET: u8 = 3;

/// Plans the files of `args`; the exit code (0, `EXIT_INVALID` or `EXIT_BUDGET`).
pub fn run_plan(args: &PlanArgs) -> u8 {
    let documents = match read_files(&args.file) {
        Ok(documents) => documents,
        Err(code) => return code,
    };
    let input = PlanInput {
        environment: args.environment.as_deref(),
        default_environment: None,
        replicas: Replicas::Given { replicas: args.replicas, hpa_max: args.hpa_max_replicas },
        current_connections_per_pod: args.current_connections_per_pod,
        max_clients: args.max_clients,
        redis_nodes: &[],
    };
    let (mut invalid, mut over_budget) = (false, false);
    let mut reports = Vec::new();
    let mut policies = Vec::new();
    let all =
        documents.iter().flat_map(|(file, text)| split_documents(text).into_iter().enumerate().map(move |d| (file, d)));
    for (file, (i, doc)) in all {
        let label = format!("{} (document {})", file.display(), i + 1);
        let parsed = parse_policy(doc).map_err(PlanFailure::Invalid);
        match parsed.and_then(|p| report(&p, &input).map(|r| (p, r)).map_err(PlanFailure::Plan)) {
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
    match args.output.format() {
        Some(format) => match reports.as_slice() {
            [one] => print_as(one, format),
            all => print_as(&all, format),
        },
        None => {
            for r in &reports {
                print!("{}", render_text(r));
            }
        }
    }
    // Several policies on one Redis: the budget they share.
    for group in crate::core::plan::shared_groups(&policies, &reports) {
        over_budget |= !group.ok;
        // JSON and YAML stay parseable on stdout; the shared verdict still reaches a person.
        match args.output {
            Output::Text => print!("{}", group.text),
            _ if !group.ok => eprint!("{}", group.text),
            _ => {}
        }
    }
    // Policies that require each other's verdicts: do their worker pools match?
    for (text, ok) in crate::core::plan::chain_checks(&policies, &reports) {
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

/// Each file's text (`-` is stdin), or `EXIT_INVALID` once one cannot be read (said on stderr).
fn read_files(files: &[PathBuf]) -> Result<Vec<(&PathBuf, String)>, u8> {
    files
        .iter()
        .map(|file| {
            let text = match file.as_os_str() == "-" {
                true => std::io::read_to_string(std::io::stdin()),
                false => std::fs::read_to_string(file),
            };
            text.map(|t| (file, t)).map_err(|e| {
                eprintln!("error: cannot read {}: {e}", file.display());
                EXIT_INVALID
            })
        })
        .collect()
}

enum PlanFailure {
    Invalid(Invalid),
    Plan(crate::core::plan::PlanError),
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
