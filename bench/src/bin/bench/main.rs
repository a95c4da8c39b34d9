//! `bench`: the `make bench` driver (issue 6). Starts the mock upstream, the floor proxy
//! and aihub (openai plugin pointed at the mock, an app key, call logging on, SQLite in a
//! temp dir), drives direct-to-mock, floor and aihub with the same load, and writes
//! `bench/results/latest.md` and `latest.json`. It builds nothing: `make bench` runs
//! `cargo build --release --workspace` first. Last, a second aihub on a throwaway Postgres
//! database takes the same non-stream load as aihub on SQLite (`postgres.rs`).

mod aihub;
mod postgres;
mod procs;
mod report;

use aihub::{aihub_version, call_log_stats, get, start_aihub};
use aihub_bench::loadgen::{self, HttpClient, RequestSpec, RunResult, Stop};
use aihub_bench::procfs;
use aihub_bench::stats::{fmt_us, Summary};
use clap::Parser;
use procs::TempDir;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Benchmark aihub against a bare proxy floor and the mock upstream itself")]
pub struct Args {
    /// The short run (under a minute) for routine use.
    #[arg(long)]
    pub quick: bool,
    /// Where aihub, libaihub_openai.so, mock-upstream and floor are (default: next to this binary).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// Where latest.md and latest.json go (default: bench/results).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Content chunks of the streaming scenario.
    #[arg(long, default_value_t = 20)]
    pub stream_chunks: usize,
    /// Milliseconds between two chunks in the streaming scenario.
    #[arg(long, default_value_t = 5)]
    pub stream_delay_ms: u64,
    /// Concurrent streams held open for the memory scenario.
    #[arg(long, default_value_t = 1000)]
    pub idle_streams: usize,
    /// Concurrency of the throughput and streaming scenarios.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Keep the temp dir (aihub's data dir and logs) for inspection.
    #[arg(long)]
    pub keep_tmp: bool,
    /// The Postgres server the Postgres scenario makes its throwaway database
    /// (`aihub_bench_<pid>`) on; unreachable: the scenario is skipped.
    #[arg(long, default_value = postgres::DEFAULT_ADMIN_URL)]
    pub pg_admin_url: String,
    /// Skip the Postgres scenario.
    #[arg(long)]
    pub no_postgres: bool,
}

/// How long one scenario measures: `rounds` slices of `slice` per path, the paths
/// interleaved (rotating order) so that noise from a shared box hits them alike.
#[derive(Debug, Clone, Copy)]
pub struct Slices {
    pub rounds: usize,
    pub slice: Duration,
}

/// Durations of one mode.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub mode: &'static str,
    pub c1: Slices,
    pub cn: Slices,
    pub stream: Slices,
    /// aihub on SQLite against aihub on Postgres, non-stream at the same concurrency.
    pub pg: Slices,
    /// Unmeasured load on each path before a scenario (fills every pool on the way).
    pub warmup: Duration,
    /// How long the idle streams are held while RSS is sampled.
    pub hold: Duration,
    /// Requests of each kind in the allocation-counting pass.
    pub alloc_requests: u64,
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
                c1: s(4, 600),
                cn: s(3, 1000),
                stream: s(2, 1500),
                pg: s(3, 1000),
                warmup: Duration::from_millis(300),
                hold: Duration::from_secs(2),
                alloc_requests: 500,
            }
        } else {
            Plan {
                mode: "full",
                c1: s(10, 1000),
                cn: s(6, 2000),
                stream: s(5, 3000),
                pg: s(6, 2000),
                warmup: Duration::from_secs(1),
                hold: Duration::from_secs(5),
                alloc_requests: 2000,
            }
        }
    }
}

/// One way to the mock: straight, through the floor, through aihub.
pub struct Target {
    pub name: &'static str,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// The process that does this path's work (the mock itself for direct).
    pub pid: u32,
    /// Processes that work for this path alone, by a piece of their command line (the
    /// Postgres backends of aihub's database); their CPU is reported beside the path's.
    pub side: Option<String>,
}

/// One path's figures in one scenario.
pub struct PathResult {
    pub name: &'static str,
    pub run: RunResult,
    pub latency: Summary,
    pub ttft: Option<Summary>,
    /// CPU ticks of the path's own process during the measured runs (unknown for the
    /// mock when the paths were interleaved).
    pub cpu_ticks: Option<u64>,
    /// CPU ticks of the mock during the same runs (unknown when paths were interleaved).
    pub mock_ticks: Option<u64>,
    /// CPU ticks of the target's side processes during the same runs.
    pub side_ticks: Option<u64>,
}

pub struct ScenarioResult {
    pub key: &'static str,
    pub title: String,
    pub concurrency: usize,
    pub stream: bool,
    pub paths: Vec<PathResult>,
}

impl ScenarioResult {
    pub fn path(&self, name: &str) -> Option<&PathResult> {
        self.paths.iter().find(|p| p.name == name)
    }
}

/// One process holding many idle streams.
pub struct MemResult {
    pub name: &'static str,
    pub streams: usize,
    pub ready: usize,
    pub failed: usize,
    pub errors: Vec<String>,
    pub open_secs: f64,
    pub before_kb: u64,
    pub held_kb: u64,
    pub hwm_kb: u64,
    pub after_kb: u64,
    /// Open descriptors before, while holding, and 1 s after the client closed the streams.
    pub fds: [usize; 3],
}

/// Everything a run measured.
pub struct Results {
    pub plan: Plan,
    pub args_stream_chunks: usize,
    pub args_stream_delay_ms: u64,
    pub scenarios: Vec<ScenarioResult>,
    pub aihub_idle_fresh_kb: u64,
    pub floor_idle_fresh_kb: u64,
    pub memory: Vec<MemResult>,
    pub clk_tck: u64,
    pub total_secs: f64,
    /// aihub's call-log counters at the end (written, dropped, queued), if it reports them.
    pub call_log: Option<serde_json::Value>,
    /// `aihub version`.
    pub aihub_version: String,
    /// Heap allocations per request, from the counting pass.
    pub allocs: Option<AllocResult>,
    /// aihub on Postgres against aihub on SQLite (issue 17).
    pub postgres: postgres::PgOutcome,
}

/// Heap allocations per request, counted by a second floor and aihub started with
/// `COUNT_HEAP_ALLOCS=1` (the counting costs an atomic add per allocation, so the
/// timed scenarios run without it).
pub struct AllocResult {
    pub requests: u64,
    pub floor_nonstream: f64,
    pub aihub_nonstream: f64,
    pub floor_stream: f64,
    pub aihub_stream: f64,
    pub stream_chunks: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    aihub_bench::driver::run(
        "bench",
        "INVALID run (errors above); figures written anyway",
        drive(args),
    )
}

fn default_bin_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    exe.parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| "this binary has no directory".to_string())
}

fn require(path: PathBuf) -> Result<PathBuf, String> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: run `cargo build --release --workspace` first (or `make bench`)",
            path.display()
        ))
    }
}

fn progress(msg: impl AsRef<str>) {
    eprintln!("bench: {}", msg.as_ref());
}

/// Returns whether the run is valid (no errors anywhere).
async fn drive(args: Args) -> Result<bool, String> {
    let started = Instant::now();
    let plan = Plan::new(args.quick);
    let bin_dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => default_bin_dir()?,
    };
    let aihub_bin = require(bin_dir.join("aihub"))?;
    let openai_so = require(bin_dir.join("libaihub_openai.so"))?;
    let mock_bin = require(bin_dir.join("mock-upstream"))?;
    let floor_bin = require(bin_dir.join("floor"))?;
    let out_dir = args
        .out_dir
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("results"));

    // Dropped last: the processes below die before their files go.
    let tmp = TempDir::new(args.keep_tmp)?;
    let boot = Duration::from_secs(20);

    let (mock, mock_addr) =
        procs::spawn_announcing("mock-upstream", Command::new(&mock_bin), boot)?;
    progress(format!("mock-upstream on {mock_addr} (pid {})", mock.pid()));
    let mut floor_cmd = Command::new(&floor_bin);
    floor_cmd
        .arg("--upstream")
        .arg(format!("http://{mock_addr}"));
    let (floor, floor_addr) = procs::spawn_announcing("floor", floor_cmd, boot)?;
    progress(format!("floor on {floor_addr} (pid {})", floor.pid()));

    let (mut aihub, aihub_addr, app_key) =
        start_aihub(&tmp, "aihub", &[], &aihub_bin, &openai_so, mock_addr).await?;
    progress(format!("aihub on {aihub_addr} (pid {})", aihub.pid()));

    let targets = [
        Target {
            name: "direct",
            base: format!("http://{mock_addr}"),
            pid: mock.pid(),
            side: None,
        },
        Target {
            name: "floor",
            base: format!("http://{floor_addr}"),
            pid: floor.pid(),
            side: None,
        },
        Target {
            name: "aihub",
            base: format!("http://{aihub_addr}"),
            pid: aihub.pid(),
            side: None,
        },
    ];

    // Idle memory before any traffic.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let aihub_idle_fresh_kb = procfs::rss(aihub.pid()).map(|r| r.rss_kb).unwrap_or(0);
    let floor_idle_fresh_kb = procfs::rss(floor.pid()).map(|r| r.rss_kb).unwrap_or(0);

    let chunks = args.stream_chunks.clamp(1, 10_000);
    let model_plain = "mock/gpt-4o-mini".to_string();
    let model_stream = format!(
        "mock/gpt-4o-mini@chunks={chunks},delay_ms={}",
        args.stream_delay_ms
    );
    let model_idle = "mock/gpt-4o-mini@chunks=2,delay_ms=120000".to_string();
    let spec = |t: &Target, model: &str, stream: bool| -> Result<Arc<RequestSpec>, String> {
        let uri = format!("{}/v1/chat/completions", t.base)
            .parse()
            .map_err(|e| format!("bad uri: {e}"))?;
        let mut s = RequestSpec::post_json(
            uri,
            loadgen::chat_body(model, stream),
            Some(&app_key),
            stream,
        )?;
        if stream {
            // Every content chunk and [DONE] must come through.
            s.min_events = chunks as u64 + 1;
        }
        Ok(Arc::new(s))
    };

    // Smoke: one request of each kind on each path, so a broken setup fails loudly and early.
    for t in &targets {
        for (model, stream) in [(&model_plain, false), (&model_stream, true)] {
            let client = loadgen::client(1);
            let r = loadgen::run(&client, &spec(t, model, stream)?, 1, Stop::Requests(1)).await;
            if r.errors > 0 {
                let log = procs::tail(&tmp.join("aihub.stderr"), 20);
                return Err(format!(
                    "smoke request to {} (stream={stream}) failed: {}\naihub log tail:\n{log}",
                    t.name,
                    r.error_samples.join("; ")
                ));
            }
        }
    }
    progress(format!("all paths answer; {} mode", plan.mode));

    let mock_pid = mock.pid();
    let n = args.concurrency.max(1);
    let mut scenarios = Vec::new();
    let specs_plain: Vec<_> = targets
        .iter()
        .map(|t| spec(t, &model_plain, false))
        .collect::<Result<_, _>>()?;
    let specs_stream: Vec<_> = targets
        .iter()
        .map(|t| spec(t, &model_stream, true))
        .collect::<Result<_, _>>()?;
    scenarios.push(
        scenario(
            "nonstream_c1",
            "non-stream, concurrency 1".into(),
            &targets,
            &specs_plain,
            1,
            plan.c1,
            plan.warmup,
            mock_pid,
        )
        .await,
    );
    aihub.check_alive()?;
    scenarios.push(
        scenario(
            "nonstream_cn",
            format!("non-stream, concurrency {n}"),
            &targets,
            &specs_plain,
            n,
            plan.cn,
            plan.warmup,
            mock_pid,
        )
        .await,
    );
    aihub.check_alive()?;
    scenarios.push(
        scenario(
            "stream_cn",
            format!(
                "stream, {chunks} chunks {} ms apart, concurrency {n}",
                args.stream_delay_ms
            ),
            &targets,
            &specs_stream,
            n,
            plan.stream,
            plan.warmup,
            mock_pid,
        )
        .await,
    );
    aihub.check_alive()?;

    let mut memory = Vec::new();
    for t in &targets[1..] {
        let s = spec(t, &model_idle, true)?;
        memory.push(hold_idle(t, &s, args.idle_streams, plan.hold).await);
        aihub.check_alive()?;
    }

    let call_log = call_log_stats(&targets[2].base).await;
    let pg_plan = postgres::PgPlan {
        slices: plan.pg,
        warmup: plan.warmup,
        concurrency: n,
    };
    let postgres = postgres_pass(
        &args,
        &pg_plan,
        &tmp,
        (&aihub_bin, &openai_so),
        (mock_addr, mock_pid),
        (&targets[2], &app_key),
        &model_plain,
    )
    .await;
    match &postgres {
        postgres::PgOutcome::Skipped(why) => progress(format!("postgres scenario skipped: {why}")),
        postgres::PgOutcome::Failed(why) => progress(format!("postgres scenario FAILED: {why}")),
        postgres::PgOutcome::Ran(_) => {}
    }
    aihub.check_alive()?;
    drop(aihub);
    drop(floor);
    let allocs = match count_allocs(
        &tmp,
        &aihub_bin,
        &openai_so,
        &floor_bin,
        mock_addr,
        &model_plain,
        &model_stream,
        chunks,
        plan.alloc_requests,
    )
    .await
    {
        Ok(a) => Some(a),
        Err(e) => {
            progress(format!("allocation pass failed: {e}"));
            None
        }
    };
    let results = Results {
        plan,
        args_stream_chunks: chunks,
        args_stream_delay_ms: args.stream_delay_ms,
        scenarios,
        aihub_idle_fresh_kb,
        floor_idle_fresh_kb,
        memory,
        clk_tck: procfs::clk_tck(),
        total_secs: started.elapsed().as_secs_f64(),
        call_log,
        aihub_version: aihub_version(&aihub_bin),
        allocs,
        postgres,
    };
    let rendered = report::render(&results);
    println!("{}", rendered.markdown);
    std::fs::create_dir_all(&out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let md = out_dir.join("latest.md");
    let json = out_dir.join("latest.json");
    std::fs::write(&md, &rendered.markdown)
        .map_err(|e| format!("cannot write {}: {e}", md.display()))?;
    let pretty = serde_json::to_string_pretty(&rendered.json).unwrap_or_default();
    std::fs::write(&json, pretty + "\n")
        .map_err(|e| format!("cannot write {}: {e}", json.display()))?;
    progress(format!(
        "wrote {} and {} ({:.0} s)",
        md.display(),
        json.display(),
        started.elapsed().as_secs_f64()
    ));
    drop(mock);
    Ok(rendered.valid)
}

/// The allocation pass: a fresh floor and aihub counting allocations; after a warm-up,
/// `n` non-stream and `n / 10` stream requests at concurrency 1 through each, the count
/// read before and after (the call log flushed first).
#[allow(clippy::too_many_arguments)]
async fn count_allocs(
    tmp: &TempDir,
    aihub_bin: &Path,
    openai_so: &Path,
    floor_bin: &Path,
    mock_addr: std::net::SocketAddr,
    model_plain: &str,
    model_stream: &str,
    chunks: usize,
    n: u64,
) -> Result<AllocResult, String> {
    let boot = Duration::from_secs(20);
    let mut floor_cmd = Command::new(floor_bin);
    floor_cmd
        .arg("--upstream")
        .arg(format!("http://{mock_addr}"))
        .env("COUNT_HEAP_ALLOCS", "1");
    let (floor, floor_addr) = procs::spawn_announcing("floor-count", floor_cmd, boot)?;
    let (aihub, aihub_addr, key) = start_aihub(
        tmp,
        "aihub-count",
        &[("COUNT_HEAP_ALLOCS", "1")],
        aihub_bin,
        openai_so,
        mock_addr,
    )
    .await?;
    progress(format!(
        "allocation pass: floor pid {}, aihub pid {}",
        floor.pid(),
        aihub.pid()
    ));
    let client = loadgen::client(1);
    let floor_count = format!("http://{floor_addr}/__allocs");
    let aihub_count = format!("http://{aihub_addr}/metrics");
    let read = |floor: bool| {
        let (client, uri) = (
            client.clone(),
            if floor {
                floor_count.clone()
            } else {
                aihub_count.clone()
            },
        );
        async move {
            tokio::time::sleep(Duration::from_millis(400)).await;
            let (status, body) = get(&client, &uri).await.ok_or("no answer")?;
            if status != 200 {
                return Err(format!("{uri} answered {status}"));
            }
            let text = String::from_utf8_lossy(&body);
            let value = if floor {
                text.trim().to_string()
            } else {
                text.lines()
                    .find_map(|l| l.strip_prefix("aihub_heap_allocations "))
                    .ok_or("no aihub_heap_allocations in /metrics")?
                    .trim()
                    .to_string()
            };
            value.parse::<u64>().map_err(|e| format!("{uri}: {e}"))
        }
    };
    let mut per = [0f64; 4];
    for (i, (base, floor)) in [(floor_addr, true), (aihub_addr, false)]
        .into_iter()
        .enumerate()
    {
        for (j, (model, stream, count)) in [
            (model_plain, false, n),
            (model_stream, true, (n / 10).max(1)),
        ]
        .into_iter()
        .enumerate()
        {
            let uri = format!("http://{base}/v1/chat/completions")
                .parse()
                .map_err(|e| format!("bad uri: {e}"))?;
            let mut spec =
                RequestSpec::post_json(uri, loadgen::chat_body(model, stream), Some(&key), stream)?;
            if stream {
                spec.min_events = chunks as u64 + 1;
            }
            let spec = Arc::new(spec);
            let warm = loadgen::run(&client, &spec, 1, Stop::Requests(count / 5 + 1)).await;
            let before = read(floor).await?;
            let r = loadgen::run(&client, &spec, 1, Stop::Requests(count)).await;
            let after = read(floor).await?;
            if warm.errors + r.errors > 0 {
                return Err(format!("request errors: {}", r.error_samples.join("; ")));
            }
            per[i * 2 + j] = after.saturating_sub(before) as f64 / r.ok.max(1) as f64;
        }
    }
    drop(aihub);
    drop(floor);
    Ok(AllocResult {
        requests: n,
        floor_nonstream: per[0],
        floor_stream: per[1],
        aihub_nonstream: per[2],
        aihub_stream: per[3],
        stream_chunks: chunks,
    })
}

/// Warms every path up, then runs `slices.rounds` slices on each, rotating the order.
#[allow(clippy::too_many_arguments)]
async fn scenario(
    key: &'static str,
    title: String,
    targets: &[Target],
    specs: &[Arc<RequestSpec>],
    concurrency: usize,
    slices: Slices,
    warmup: Duration,
    mock_pid: u32,
) -> ScenarioResult {
    let clients: Vec<HttpClient> = targets
        .iter()
        .map(|_| loadgen::client(concurrency))
        .collect();
    let mut paths: Vec<PathResult> = targets
        .iter()
        .map(|t| PathResult {
            name: t.name,
            run: RunResult::default(),
            latency: Summary::default(),
            ttft: None,
            cpu_ticks: None,
            mock_ticks: None,
            side_ticks: None,
        })
        .collect();
    let stream = specs.first().is_some_and(|s| s.stream);
    for (i, client) in clients.iter().enumerate() {
        let _ = loadgen::run(client, &specs[i], concurrency, Stop::Duration(warmup)).await;
    }
    if concurrency == 1 {
        // Request by request across the paths; one slice per round covers them all.
        let pairs: Vec<_> = clients.iter().cloned().zip(specs.iter().cloned()).collect();
        for round in 0..slices.rounds {
            let own0: Vec<u64> = targets
                .iter()
                .map(|t| procfs::cpu_ticks(t.pid).unwrap_or(0))
                .collect();
            let runs = loadgen::run_interleaved(&pairs, slices.slice * targets.len() as u32).await;
            for (i, r) in runs.into_iter().enumerate() {
                let own1 = procfs::cpu_ticks(targets[i].pid).unwrap_or(0);
                report_slice(&title, round, slices.rounds, targets[i].name, &r);
                let p = &mut paths[i];
                // The mock serves every path at once here: its share is not separable.
                p.cpu_ticks = if targets[i].pid == mock_pid {
                    None
                } else {
                    Some(p.cpu_ticks.unwrap_or(0) + own1.saturating_sub(own0[i]))
                };
                p.mock_ticks = None;
                p.run.merge(r);
            }
        }
    } else {
        for round in 0..slices.rounds {
            for k in 0..targets.len() {
                let i = (round + k) % targets.len();
                let (t, spec, client) = (&targets[i], &specs[i], &clients[i]);
                let side0 = t.side.as_deref().map(side_cpu);
                let own0 = procfs::cpu_ticks(t.pid).unwrap_or(0);
                let mock0 = procfs::cpu_ticks(mock_pid).unwrap_or(0);
                let r = loadgen::run(client, spec, concurrency, Stop::Duration(slices.slice)).await;
                let own1 = procfs::cpu_ticks(t.pid).unwrap_or(0);
                let mock1 = procfs::cpu_ticks(mock_pid).unwrap_or(0);
                let side1 = t.side.as_deref().map(side_cpu);
                report_slice(&title, round, slices.rounds, t.name, &r);
                let p = &mut paths[i];
                p.cpu_ticks = Some(p.cpu_ticks.unwrap_or(0) + own1.saturating_sub(own0));
                p.mock_ticks = Some(p.mock_ticks.unwrap_or(0) + mock1.saturating_sub(mock0));
                if let (Some(before), Some(after)) = (side0, side1) {
                    // No process found: unknown, not zero.
                    if !after.is_empty() {
                        p.side_ticks =
                            Some(p.side_ticks.unwrap_or(0) + procfs::cpu_delta(&before, &after));
                    }
                }
                p.run.merge(r);
            }
        }
    }
    for p in &mut paths {
        p.latency = Summary::of(&mut p.run.latencies_ns);
        if stream {
            p.ttft = Some(Summary::of(&mut p.run.ttft_ns));
        }
        // The samples are summarised; free them.
        p.run.latencies_ns = Vec::new();
        p.run.ttft_ns = Vec::new();
    }
    ScenarioResult {
        key,
        title,
        concurrency,
        stream,
        paths,
    }
}

/// CPU ticks of every process whose command line holds `needle`.
fn side_cpu(needle: &str) -> Vec<(u32, u64)> {
    procfs::pids_with_cmdline(needle)
        .into_iter()
        .filter_map(|pid| procfs::cpu_ticks(pid).ok().map(|t| (pid, t)))
        .collect()
}

/// The Postgres scenario: a throwaway database, aihub on it, then the non-stream load on
/// aihub-on-SQLite and aihub-on-Postgres in alternating slices. Postgres unreachable (or
/// refusing the database) skips it; aihub failing on it fails it.
async fn postgres_pass(
    args: &Args,
    plan: &postgres::PgPlan,
    tmp: &TempDir,
    (aihub_bin, openai_so): (&Path, &Path),
    (mock_addr, mock_pid): (std::net::SocketAddr, u32),
    (sqlite, sqlite_key): (&Target, &str),
    model: &str,
) -> postgres::PgOutcome {
    use postgres::{PgOutcome, PgRun, ThrowawayDb};
    if args.no_postgres {
        return PgOutcome::Skipped("--no-postgres".into());
    }
    // Declared before the aihub on it, so that aihub is stopped before the database goes.
    let db = match ThrowawayDb::create(&args.pg_admin_url).await {
        Ok(db) => db,
        Err(e) => {
            return PgOutcome::Skipped(format!(
                "Postgres (--pg-admin-url, default {}) cannot be used: {e}",
                postgres::DEFAULT_ADMIN_URL
            ))
        }
    };
    progress(format!("postgres scenario: database {} created", db.name));
    let pool_size = 8;
    let pool = pool_size.to_string();
    let env = [
        ("AIHUB_STORAGE__URL", db.url.as_str()),
        ("AIHUB_STORAGE__POOL_SIZE", pool.as_str()),
    ];
    let (mut pg, pg_addr, pg_key) =
        match start_aihub(tmp, "aihub-pg", &env, aihub_bin, openai_so, mock_addr).await {
            Ok(started) => started,
            Err(e) => return PgOutcome::Failed(format!("aihub on Postgres did not start: {e}")),
        };
    progress(format!("aihub on Postgres on {pg_addr} (pid {})", pg.pid()));
    let targets = [
        postgres::sqlite_target(sqlite),
        Target {
            name: "aihub-pg",
            base: format!("http://{pg_addr}"),
            pid: pg.pid(),
            side: Some(postgres::backend_needle(&db.name)),
        },
    ];
    let mut specs = Vec::new();
    for (t, key) in targets.iter().zip([sqlite_key, pg_key.as_str()]) {
        let uri = match format!("{}/v1/chat/completions", t.base).parse() {
            Ok(u) => u,
            Err(e) => return PgOutcome::Failed(format!("bad uri: {e}")),
        };
        match RequestSpec::post_json(uri, loadgen::chat_body(model, false), Some(key), false) {
            Ok(s) => specs.push(Arc::new(s)),
            Err(e) => return PgOutcome::Failed(e),
        }
    }
    let smoke = loadgen::run(&loadgen::client(1), &specs[1], 1, Stop::Requests(1)).await;
    if smoke.errors > 0 {
        return PgOutcome::Failed(format!(
            "smoke request to aihub on Postgres failed: {}\naihub log tail:\n{}",
            smoke.error_samples.join("; "),
            procs::tail(&tmp.join("aihub-pg.stderr"), 20)
        ));
    }
    let n = plan.concurrency;
    let scenario = scenario(
        "nonstream_cn_pg",
        format!("non-stream, concurrency {n}, aihub on SQLite vs on Postgres (pool {pool_size})"),
        &targets,
        &specs,
        n,
        plan.slices,
        plan.warmup,
        mock_pid,
    )
    .await;
    if let Err(e) = pg.check_alive() {
        return PgOutcome::Failed(format!(
            "aihub on Postgres: {e}\naihub log tail:\n{}",
            procs::tail(&tmp.join("aihub-pg.stderr"), 20)
        ));
    }
    let call_log = call_log_stats(&targets[1].base).await;
    drop(pg);
    PgOutcome::Ran(Box::new(PgRun {
        scenario,
        call_log,
        pool_size,
        database: db.name.clone(),
    }))
}

fn report_slice(title: &str, round: usize, rounds: usize, name: &str, r: &RunResult) {
    let mut v = r.latencies_ns.clone();
    let s = Summary::of(&mut v);
    progress(format!(
        "{title} [{}/{rounds}] {name:<6} {:>8.0} req/s  p50 {:>9}  p99 {:>9}  errors {}",
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

/// Opens `n` slow streams through `t` and samples its RSS while they are held.
async fn hold_idle(t: &Target, spec: &Arc<RequestSpec>, n: usize, hold: Duration) -> MemResult {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before_kb = procfs::rss(t.pid).map(|r| r.rss_kb).unwrap_or(0);
    let fds_before = procfs::fd_count(t.pid).unwrap_or(0);
    let client = loadgen::client(n);
    let t0 = Instant::now();
    let held = loadgen::hold_streams(&client, spec, n);
    let all = held.wait_ready(n, Duration::from_secs(30)).await;
    let open_secs = t0.elapsed().as_secs_f64();
    let mut held_kb = 0;
    let end = Instant::now() + hold;
    while Instant::now() < end {
        if let Ok(r) = procfs::rss(t.pid) {
            held_kb = held_kb.max(r.rss_kb);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hwm_kb = procfs::rss(t.pid).map(|r| r.hwm_kb).unwrap_or(0);
    let fds_held = procfs::fd_count(t.pid).unwrap_or(0);
    // Streams not open at the end of the hold (failed, ended early, or never opened).
    let ready = held.ready.load(std::sync::atomic::Ordering::Relaxed);
    let failed = n.saturating_sub(ready);
    let mut errors = held
        .error_samples
        .lock()
        .map(|e| e.clone())
        .unwrap_or_default();
    if !all {
        errors.push(format!("only {ready} of {n} streams opened within 30 s"));
    }
    held.close(Duration::from_secs(10)).await;
    drop(client);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after_kb = procfs::rss(t.pid).map(|r| r.rss_kb).unwrap_or(0);
    let fds_after = procfs::fd_count(t.pid).unwrap_or(0);
    progress(format!(
        "{n} idle streams through {}: {ready} held, {failed} failed, RSS {} -> {} KiB (after close {} KiB), fds {fds_before} -> {fds_held} -> {fds_after}, opened in {open_secs:.1} s",
        t.name, before_kb, held_kb, after_kb
    ));
    MemResult {
        name: t.name,
        streams: n,
        ready,
        failed,
        errors,
        open_secs,
        before_kb,
        held_kb,
        hwm_kb,
        after_kb,
        fds: [fds_before, fds_held, fds_after],
    }
}
