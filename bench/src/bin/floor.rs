//! `floor`: the bare pass-through proxy aihub is measured against (see `aihub_bench::floor`).
//! Prints `listening on ADDR` once bound.

use clap::Parser;
use std::net::SocketAddr;

#[derive(Parser)]
#[command(about = "Minimal pass-through proxy on aihub's HTTP stack: the floor of any gateway")]
struct Args {
    /// Address to bind; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where every request goes, e.g. `http://127.0.0.1:9000`.
    #[arg(long)]
    upstream: String,
    /// Runtime worker threads (default: one per CPU, as aihub).
    #[arg(long)]
    threads: Option<usize>,
}

#[global_allocator]
static ALLOC: alloc_count::Counting = alloc_count::Counting(std::alloc::System);

fn main() -> std::io::Result<()> {
    alloc_count::enable_from_env();
    let args = Args::parse();
    if !args.upstream.starts_with("http://") {
        eprintln!("floor: --upstream must be an http:// URL");
        std::process::exit(2);
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        rt.worker_threads(n.max(1));
    }
    rt.enable_all().build()?.block_on(async move {
        let listener = aihub_bench::bind_and_announce(args.listen).await?;
        aihub_bench::floor::serve(listener, &args.upstream).await
    })
}
