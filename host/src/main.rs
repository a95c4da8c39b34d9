//! `aihub`: a self-hosted AI gateway. The binary only hands the command line to the library.

/// The system allocator; counts allocations only under `COUNT_HEAP_ALLOCS=1` (the
/// bench's allocation pass). mimalloc was measured in its place: the same
/// throughput and CPU per request, and more memory (idle 42 MB, 1,000 streams 114 MB,
/// past both targets), so it was not kept.
#[global_allocator]
static ALLOC: alloc_count::Counting = alloc_count::Counting(std::alloc::System);

fn main() -> std::process::ExitCode {
    alloc_count::enable_from_env();
    aihub::cli::main()
}
