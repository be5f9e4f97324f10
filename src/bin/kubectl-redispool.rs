//! `kubectl redispool`: a kubectl plugin (any `kubectl-<name>` on the PATH is one).
use std::process::ExitCode;

fn main() -> ExitCode {
    redis_pool_operator::tools::plugin::main()
}
