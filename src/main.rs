use std::process::ExitCode;

/// mimalloc, not the C library's allocator: the same allocator on glibc (the benchmarks) and musl
/// (the image), and it returns freed memory to the system. The `heap-profile` feature leaves the C
/// library's in place, for heap profilers that hook malloc (heaptrack).
#[cfg(not(feature = "heap-profile"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    redis_pool_operator::tools::cli::main()
}
