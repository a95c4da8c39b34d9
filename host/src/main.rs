//! `aihub`: a self-hosted AI gateway. The binary only hands the command line to the library.

/// The system allocator; counts allocations only under `COUNT_HEAP_ALLOCS=1` (the
/// bench's allocation pass).
#[global_allocator]
static ALLOC: alloc_count::Counting = alloc_count::Counting;

fn main() -> std::process::ExitCode {
    alloc_count::enable_from_env();
    aihub::cli::main()
}
