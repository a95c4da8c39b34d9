//! `mock-upstream`: a fast mock of OpenAI's chat completions (see `aihub_bench::mock`).
//! Prints `listening on ADDR` once bound.

use aihub_bench::mock::{self, MockConfig};
use clap::Parser;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Mock OpenAI upstream for benchmarks (127.0.0.1 only by default)")]
struct Args {
    /// Address to bind; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Content chunks of a streamed reply (request override: `x-mock-chunks` or `model@chunks=N`).
    #[arg(long, default_value_t = 20)]
    chunks: usize,
    /// Milliseconds between content chunks (`x-mock-chunk-delay-ms`, `model@delay_ms=N`).
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
    /// Milliseconds before the response head (`x-mock-latency-ms`, `model@latency_ms=N`).
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Runtime worker threads (default: one per CPU).
    #[arg(long)]
    threads: Option<usize>,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        rt.worker_threads(n.max(1));
    }
    let cfg = MockConfig {
        chunks: args.chunks.clamp(1, 10_000),
        chunk_delay: Duration::from_millis(args.chunk_delay_ms),
        latency: Duration::from_millis(args.latency_ms),
    };
    rt.enable_all().build()?.block_on(async move {
        let listener = aihub_bench::bind_and_announce(args.listen).await?;
        mock::serve(listener, cfg).await
    })
}
