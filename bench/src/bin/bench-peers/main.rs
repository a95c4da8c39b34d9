//! `bench-peers`: the `make bench-peers` driver (issue 12). The mock upstream and the load
//! generator of `make bench`, run against aihub (started as `make bench` starts it),
//! LiteLLM proxy and Portkey's open-source gateway (pinned versions from PyPI and npm,
//! installed under `target/peers/` on first use). Writes `bench/results/peers.md`.
//!
//! A peer that cannot be installed or started is reported as skipped and the run goes
//! on; the exit status is non-zero only when aihub itself fails.

#[path = "../bench/aihub.rs"]
mod aihub;
mod peers;
#[path = "../bench/procs.rs"]
mod procs;
mod report;
mod tree;

use aihub_bench::loadgen::{self, HttpClient, RequestSpec, RunResult, Stop};
use aihub_bench::stats::{fmt_us, Summary};
use clap::Parser;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tree::TreeMem;

#[derive(Parser)]
#[command(about = "Benchmark aihub against LiteLLM proxy and Portkey's gateway on the same mock")]
pub struct Args {
    /// A short run (about a minute once the peers are installed), for checking the setup.
    #[arg(long)]
    pub quick: bool,
    /// Where aihub, libaihub_openai.so and mock-upstream are (default: next to this binary).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Where peers.md goes (default: bench/results).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Where the peers are installed (default: target/peers in the workspace).
    #[arg(long)]
    pub peers_dir: Option<PathBuf>,
    /// Concurrency of the throughput and streaming scenarios.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Content chunks of the streaming scenario.
    #[arg(long, default_value_t = 20)]
    pub stream_chunks: usize,
    /// Milliseconds between two chunks in the streaming scenario.
    #[arg(long, default_value_t = 5)]
    pub stream_delay_ms: u64,
    /// LiteLLM worker processes (default: one per core).
    #[arg(long)]
    pub litellm_workers: Option<usize>,
    /// Leave a peer out: `litellm` or `portkey` (repeatable).
    #[arg(long)]
    pub skip: Vec<String>,
    /// Keep the temp dir (configs and logs) for inspection.
    #[arg(long)]
    pub keep_tmp: bool,
}

/// `rounds` slices of `slice` per gateway, the gateways rotating.
#[derive(Debug, Clone, Copy)]
pub struct Slices {
    pub rounds: usize,
    pub slice: Duration,
}

#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub mode: &'static str,
    pub cn: Slices,
    pub c1: Slices,
    pub stream: Slices,
    /// Unmeasured load on each gateway before each scenario.
    pub warmup: Duration,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        let s = |rounds, ms| Slices {
            rounds,
            slice: Duration::from_millis(ms),
        };
        if quick {
            Plan {
                mode: "quick",
                cn: s(2, 1000),
                c1: s(2, 500),
                stream: s(1, 1500),
                warmup: Duration::from_millis(500),
            }
        } else {
            Plan {
                mode: "full",
                cn: s(4, 3000),
                c1: s(5, 1000),
                stream: s(3, 3000),
                warmup: Duration::from_secs(2),
            }
        }
    }
}

/// What one gateway measured in one scenario.
#[derive(Default)]
pub struct Measured {
    pub run: RunResult,
    pub latency: Summary,
    pub ttft: Summary,
    /// CPU ticks of the gateway's process tree during the measured slices (not taken at
    /// concurrency 1, where the gateways alternate request by request).
    pub cpu_ticks: Option<u64>,
}

/// A gateway under test.
pub struct Gateway {
    pub name: &'static str,
    pub version: String,
    pub how: String,
    pub pid: u32,
    pub plain: Arc<RequestSpec>,
    pub stream: Arc<RequestSpec>,
    pub idle: TreeMem,
    pub after: Option<TreeMem>,
    /// Why streaming was not measured (the smoke stream failed).
    pub stream_failed: Option<String>,
    /// The process exited during the run.
    pub died: Option<String>,
    pub nonstream: Option<Measured>,
    pub c1: Option<Measured>,
    pub streamed: Option<Measured>,
}

/// A peer that did not take part.
pub struct Skipped {
    pub name: &'static str,
    pub version: &'static str,
    pub reason: String,
}

pub struct Results {
    pub plan: Plan,
    pub concurrency: usize,
    pub stream_chunks: usize,
    pub stream_delay_ms: u64,
    pub litellm_workers: usize,
    pub gateways: Vec<Gateway>,
    pub skipped: Vec<Skipped>,
    pub call_log: Option<serde_json::Value>,
    pub clk_tck: u64,
    pub total_secs: f64,
}

/// The process behind a gateway.
enum Handle {
    Aihub(procs::Proc),
    Peer(peers::Group),
}

impl Handle {
    fn check_alive(&mut self) -> Result<(), String> {
        match self {
            Handle::Aihub(p) => p.check_alive(),
            Handle::Peer(g) => g.proc.check_alive(),
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    aihub_bench::driver::run(
        "bench-peers",
        "aihub had request errors (above); figures written anyway",
        drive(args),
    )
}

fn progress(msg: impl AsRef<str>) {
    eprintln!("bench-peers: {}", msg.as_ref());
}

fn require(path: PathBuf) -> Result<PathBuf, String> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: run `cargo build --release --workspace` first (or `make bench-peers`)",
            path.display()
        ))
    }
}

/// `aihub 0.1.0 (plugin ABI 2, ...)` → `0.1.0`.
fn short_version(v: &str) -> String {
    let v = v.strip_prefix("aihub ").unwrap_or(v);
    v.split(" (").next().unwrap_or(v).to_string()
}

fn workspace_dir() -> PathBuf {
    let bench = Path::new(env!("CARGO_MANIFEST_DIR"));
    bench.parent().unwrap_or(bench).to_path_buf()
}

/// Idle memory once a gateway answers, before its first request: first the process tree
/// settles (LiteLLM answers as soon as one worker is up, the others may still be loading),
/// that is, spends under 5 % of a core over a second (at most 90 s of waiting).
async fn idle_memory(pid: u32) -> TreeMem {
    let quiet = aihub_bench::procfs::clk_tck() / 20;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let before = tree::cpu_snapshot(pid);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let spent = tree::cpu_delta(&before, &tree::cpu_snapshot(pid));
        if spent <= quiet || Instant::now() > deadline {
            break;
        }
    }
    tree::memory(pid)
}

/// One request of each kind: `(non-stream error, stream error)`.
async fn smoke(g: &Gateway) -> (Option<String>, Option<String>) {
    let mut out = [None, None];
    for (i, spec) in [&g.plain, &g.stream].into_iter().enumerate() {
        let r = loadgen::run(&loadgen::client(1), spec, 1, Stop::Requests(1)).await;
        if r.errors > 0 {
            out[i] = Some(r.error_samples.join("; "));
        }
    }
    let [plain, stream] = out;
    (plain, stream)
}

/// Returns whether aihub served every request.
async fn drive(args: Args) -> Result<bool, String> {
    let started = Instant::now();
    let plan = Plan::new(args.quick);
    let bin_dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()
            .map_err(|e| format!("cannot find this binary: {e}"))?
            .parent()
            .map(Path::to_path_buf)
            .ok_or("this binary has no directory")?,
    };
    let aihub_bin = require(bin_dir.join("aihub"))?;
    let openai_so = require(bin_dir.join("libaihub_openai.so"))?;
    let mock_bin = require(bin_dir.join("mock-upstream"))?;
    let out_dir = args
        .out_dir
        .clone()
        .unwrap_or_else(|| workspace_dir().join("bench/results"));
    let peers_dir = args
        .peers_dir
        .clone()
        .unwrap_or_else(|| workspace_dir().join("target/peers"));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let litellm_workers = args.litellm_workers.unwrap_or(cores).max(1);
    let chunks = args.stream_chunks.clamp(1, 10_000);
    // Every content chunk and [DONE] must come through.
    let min_events = chunks as u64 + 1;

    // Dropped last: the processes below die before their files go.
    let tmp = procs::TempDir::new(args.keep_tmp)?;

    // The stream shape is the mock's default, so it needs no model suffix or header that
    // a peer might not pass on.
    let mut mock_cmd = Command::new(&mock_bin);
    mock_cmd
        .arg("--chunks")
        .arg(chunks.to_string())
        .arg("--chunk-delay-ms")
        .arg(args.stream_delay_ms.to_string());
    let (mock, mock_addr) =
        procs::spawn_announcing("mock-upstream", mock_cmd, Duration::from_secs(20))?;
    progress(format!("mock-upstream on {mock_addr} (pid {})", mock.pid()));

    let (aihub_proc, aihub_addr, app_key) =
        aihub::start_aihub(&tmp, "aihub", &[], &aihub_bin, &openai_so, mock_addr).await?;
    progress(format!("aihub on {aihub_addr} (pid {})", aihub_proc.pid()));
    let aihub_base = format!("http://{aihub_addr}");
    let aihub_spec = |stream: bool| -> Result<Arc<RequestSpec>, String> {
        let uri = format!("{aihub_base}/v1/chat/completions")
            .parse()
            .map_err(|e| format!("bad uri: {e}"))?;
        let mut s = RequestSpec::post_json(
            uri,
            loadgen::chat_body("mock/gpt-4o-mini", stream),
            Some(&app_key),
            stream,
        )?;
        if stream {
            s.min_events = min_events;
        }
        Ok(Arc::new(s))
    };
    let aihub_version = aihub::aihub_version(&aihub_bin);
    let mut gateways = vec![Gateway {
        name: "aihub",
        version: short_version(&aihub_version),
        how: format!("`{aihub_version}`, started as `make bench` starts it: the release `openai` plugin, provider `mock` → the mock, an app key from `aihub apps create`, call logging on (SQLite), `RUST_LOG=warn`"),
        pid: aihub_proc.pid(),
        plain: aihub_spec(false)?,
        stream: aihub_spec(true)?,
        idle: idle_memory(aihub_proc.pid()).await,
        after: None,
        stream_failed: None,
        died: None,
        nonstream: None,
        c1: None,
        streamed: None,
    }];
    let mut handles = vec![Handle::Aihub(aihub_proc)];
    let (plain_err, stream_err) = smoke(&gateways[0]).await;
    if let Some(e) = plain_err.or(stream_err) {
        return Err(format!(
            "smoke request to aihub failed: {e}\naihub log tail:\n{}",
            procs::tail(&tmp.join("aihub.stderr"), 20)
        ));
    }

    let mut skipped = Vec::new();
    let skip = |name: &str| args.skip.iter().any(|s| s.eq_ignore_ascii_case(name));
    for (name, version) in [
        ("LiteLLM", peers::LITELLM_VERSION),
        ("Portkey", peers::PORTKEY_VERSION),
    ] {
        if skip(name) {
            skipped.push(Skipped {
                name,
                version,
                reason: "left out with --skip".into(),
            });
            continue;
        }
        let started = match name {
            "LiteLLM" => match peers::install_litellm(&peers_dir).await {
                Ok(venv) => {
                    progress(format!(
                        "starting LiteLLM {version} with {litellm_workers} workers"
                    ));
                    peers::start_litellm(&venv, &tmp, mock_addr, litellm_workers, min_events)
                        .await
                        .map_err(|e| format!("did not start: {e}"))
                }
                Err(e) => Err(format!("install failed: {e}")),
            },
            _ => match peers::install_portkey(&peers_dir).await {
                Ok(dir) => {
                    progress(format!("starting Portkey gateway {version}"));
                    peers::start_portkey(&dir, &tmp, mock_addr, min_events)
                        .await
                        .map_err(|e| format!("did not start: {e}"))
                }
                Err(e) => Err(format!("install failed: {e}")),
            },
        };
        let running = match started {
            Ok(r) => r,
            Err(reason) => {
                progress(format!("{name} skipped: {reason}"));
                skipped.push(Skipped {
                    name,
                    version,
                    reason,
                });
                continue;
            }
        };
        let pid = running.group.pid();
        progress(format!("{name} on {} (pid {pid})", running.base));
        let g = Gateway {
            name,
            version: running.version,
            how: running.how,
            pid,
            plain: running.plain,
            stream: running.stream,
            idle: idle_memory(pid).await,
            after: None,
            stream_failed: None,
            died: None,
            nonstream: None,
            c1: None,
            streamed: None,
        };
        match smoke(&g).await {
            (Some(e), _) => {
                progress(format!("{name} skipped: a non-stream request failed: {e}"));
                skipped.push(Skipped {
                    name,
                    version,
                    reason: format!("a non-stream chat completion failed: {e}"),
                });
                continue;
            }
            (None, Some(e)) => {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let e = match peers::log_hint(&running.log) {
                    Some(hint) => format!("{e}; its log: {hint}"),
                    None => e,
                };
                progress(format!("{name}: streaming failed, not measured: {e}"));
                gateways.push(Gateway {
                    stream_failed: Some(e),
                    ..g
                });
            }
            (None, None) => gateways.push(g),
        }
        handles.push(Handle::Peer(running.group));
    }
    progress(format!(
        "{} gateways answer; {} mode",
        gateways.len(),
        plan.mode
    ));

    let n = args.concurrency.max(1);
    let active = |gws: &[Gateway], stream: bool| -> Vec<usize> {
        (0..gws.len())
            .filter(|&i| gws[i].died.is_none() && !(stream && gws[i].stream_failed.is_some()))
            .collect()
    };

    let idx = active(&gateways, false);
    let title = format!("non-stream, concurrency {n}");
    let measured = rotating(&title, &gateways, &idx, false, n, plan.cn, plan.warmup).await;
    for (i, m) in idx.iter().zip(measured) {
        gateways[*i].nonstream = Some(m);
    }
    check(&mut gateways, &mut handles, &title)?;

    let idx = active(&gateways, false);
    let title = "non-stream, concurrency 1".to_string();
    let measured = interleaved(&title, &gateways, &idx, plan.c1, plan.warmup).await;
    for (i, m) in idx.iter().zip(measured) {
        gateways[*i].c1 = Some(m);
    }
    check(&mut gateways, &mut handles, &title)?;

    let idx = active(&gateways, true);
    let title = format!(
        "stream, {chunks} chunks {} ms apart, concurrency {n}",
        args.stream_delay_ms
    );
    let measured = rotating(&title, &gateways, &idx, true, n, plan.stream, plan.warmup).await;
    for (i, m) in idx.iter().zip(measured) {
        gateways[*i].streamed = Some(m);
    }
    check(&mut gateways, &mut handles, &title)?;

    tokio::time::sleep(Duration::from_secs(1)).await;
    for g in gateways.iter_mut().filter(|g| g.died.is_none()) {
        g.after = Some(tree::memory(g.pid));
    }
    let call_log = aihub::call_log_stats(&aihub_base).await;
    let aihub_ok = [
        &gateways[0].nonstream,
        &gateways[0].c1,
        &gateways[0].streamed,
    ]
    .iter()
    .all(|m| m.as_ref().is_some_and(|m| m.run.errors == 0));

    let results = Results {
        plan,
        concurrency: n,
        stream_chunks: chunks,
        stream_delay_ms: args.stream_delay_ms,
        litellm_workers,
        gateways,
        skipped,
        call_log,
        clk_tck: aihub_bench::procfs::clk_tck(),
        total_secs: started.elapsed().as_secs_f64(),
    };
    drop(handles);
    let md = report::render(&results);
    println!("{md}");
    std::fs::create_dir_all(&out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let path = out_dir.join("peers.md");
    std::fs::write(&path, &md).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    progress(format!(
        "wrote {} ({:.0} s)",
        path.display(),
        started.elapsed().as_secs_f64()
    ));
    drop(mock);
    Ok(aihub_ok)
}

/// After a scenario: aihub gone fails the run; a peer gone is marked and left out of the
/// scenarios that follow.
fn check(gateways: &mut [Gateway], handles: &mut [Handle], during: &str) -> Result<(), String> {
    for (g, h) in gateways.iter_mut().zip(handles.iter_mut()) {
        if g.died.is_some() {
            continue;
        }
        if let Err(e) = h.check_alive() {
            if g.name == "aihub" {
                return Err(format!("aihub died during {during}: {e}"));
            }
            progress(format!("{} died during {during}: {e}", g.name));
            g.died = Some(format!("exited during \"{during}\" ({e})"));
        }
    }
    Ok(())
}

fn finish(m: &mut Measured, stream: bool) {
    m.latency = Summary::of(&mut m.run.latencies_ns);
    if stream {
        m.ttft = Summary::of(&mut m.run.ttft_ns);
    }
    m.run.latencies_ns = Vec::new();
    m.run.ttft_ns = Vec::new();
}

/// Warms each gateway up, then `slices.rounds` slices on each, one gateway loaded at a
/// time (rotating the order), with the CPU time of its process tree around each slice.
async fn rotating(
    title: &str,
    gateways: &[Gateway],
    idx: &[usize],
    stream: bool,
    concurrency: usize,
    slices: Slices,
    warmup: Duration,
) -> Vec<Measured> {
    let spec = |i: usize| {
        if stream {
            gateways[i].stream.clone()
        } else {
            gateways[i].plain.clone()
        }
    };
    let clients: Vec<HttpClient> = idx.iter().map(|_| loadgen::client(concurrency)).collect();
    let mut out: Vec<Measured> = idx.iter().map(|_| Measured::default()).collect();
    for (k, &i) in idx.iter().enumerate() {
        let _ = loadgen::run(&clients[k], &spec(i), concurrency, Stop::Duration(warmup)).await;
    }
    for round in 0..slices.rounds {
        for j in 0..idx.len() {
            let k = (round + j) % idx.len();
            let g = &gateways[idx[k]];
            let before = tree::cpu_snapshot(g.pid);
            let r = loadgen::run(
                &clients[k],
                &spec(idx[k]),
                concurrency,
                Stop::Duration(slices.slice),
            )
            .await;
            let after = tree::cpu_snapshot(g.pid);
            report_slice(title, round, slices.rounds, g.name, &r);
            let m = &mut out[k];
            m.cpu_ticks = Some(m.cpu_ticks.unwrap_or(0) + tree::cpu_delta(&before, &after));
            m.run.merge(r);
        }
    }
    for m in &mut out {
        finish(m, stream);
    }
    out
}

/// Concurrency 1: the gateways alternate request by request, so noise on a shared box
/// hits them alike.
async fn interleaved(
    title: &str,
    gateways: &[Gateway],
    idx: &[usize],
    slices: Slices,
    warmup: Duration,
) -> Vec<Measured> {
    let pairs: Vec<_> = idx
        .iter()
        .map(|&i| (loadgen::client(1), gateways[i].plain.clone()))
        .collect();
    for (client, spec) in &pairs {
        let _ = loadgen::run(client, spec, 1, Stop::Duration(warmup / 2)).await;
    }
    let mut out: Vec<Measured> = idx.iter().map(|_| Measured::default()).collect();
    for round in 0..slices.rounds {
        let runs = loadgen::run_interleaved(&pairs, slices.slice * idx.len() as u32).await;
        for (k, r) in runs.into_iter().enumerate() {
            report_slice(title, round, slices.rounds, gateways[idx[k]].name, &r);
            out[k].run.merge(r);
        }
    }
    for m in &mut out {
        finish(m, false);
    }
    out
}

fn report_slice(title: &str, round: usize, rounds: usize, name: &str, r: &RunResult) {
    let mut v = r.latencies_ns.clone();
    let s = Summary::of(&mut v);
    progress(format!(
        "{title} [{}/{rounds}] {name:<7} {:>8.0} req/s  p50 {:>9}  p99 {:>9}  errors {}",
        round + 1,
        r.rps(),
        fmt_us(s.p50_us),
        fmt_us(s.p99_us),
        r.errors
    ));
    for e in r.error_samples.iter().take(3) {
        progress(format!("  error on {name}: {e}"));
    }
}
