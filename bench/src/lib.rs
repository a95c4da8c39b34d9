//! The benchmark harness of issue 6: a mock OpenAI upstream, a bare pass-through proxy
//! (the "floor"), a load generator, and the `bench` driver that runs them side by side
//! with `aihub`. Everything talks over 127.0.0.1 only.

pub mod driver;
pub mod floor;
pub mod loadgen;
pub mod mock;
pub mod procfs;
pub mod stats;

use std::net::SocketAddr;
use tokio::net::TcpListener;

/// Binds `addr` and announces the bound address on stdout (the driver reads that line).
pub async fn bind_and_announce(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    println!("listening on {bound}");
    use std::io::Write;
    std::io::stdout().flush()?;
    Ok(listener)
}

/// Parses the line printed by [`bind_and_announce`].
pub fn parse_announce(line: &str) -> Option<SocketAddr> {
    line.trim().strip_prefix("listening on ")?.parse().ok()
}
