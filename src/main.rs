use std::process::ExitCode;

fn main() -> ExitCode {
    redis_pool_operator::cli::main()
}
