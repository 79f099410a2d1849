/// mimalloc instead of glibc malloc: a live-chat server makes many small, short-lived
/// allocations per socket; glibc kept ~10 KiB per idle socket and did not return memory after
/// connection bursts (measured with kefu-bench, docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    kefu::cli::main()
}
