//! `loadgen`: drive one target with a fixed concurrency and report RPS and latency
//! percentiles, or hold N idle streams open while sampling a process's RSS.

use aihub_bench::loadgen::{self, RequestSpec, Stop};
use aihub_bench::procfs;
use aihub_bench::stats::{fmt_us, Summary};
use clap::Parser;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Load generator for OpenAI-style chat completions")]
struct Args {
    /// Full URL, e.g. http://127.0.0.1:8090/v1/chat/completions
    #[arg(long)]
    url: String,
    #[arg(long, default_value = "mock/gpt-4o-mini")]
    model: String,
    /// Bearer key (the aihub app key).
    #[arg(long)]
    key: Option<String>,
    /// Ask for SSE and measure time to first event.
    #[arg(long)]
    stream: bool,
    /// A stream must carry at least this many `data:` events ([DONE] included).
    #[arg(long, default_value_t = 0)]
    min_events: u64,
    #[arg(long, short = 'c', default_value_t = 64)]
    concurrency: usize,
    /// Stop after this many requests (else after --duration-secs).
    #[arg(long, short = 'n')]
    requests: Option<u64>,
    #[arg(long, default_value_t = 10.0)]
    duration_secs: f64,
    /// Unmeasured load first, to fill every connection pool on the way.
    #[arg(long, default_value_t = 1.0)]
    warmup_secs: f64,
    /// Instead of load: hold this many streams open (use a slow model, e.g.
    /// `mock/gpt-4o-mini@chunks=2,delay_ms=120000`).
    #[arg(long)]
    idle_streams: Option<usize>,
    #[arg(long, default_value_t = 5.0)]
    hold_secs: f64,
    /// Sample this process's VmRSS/VmHWM while holding streams.
    #[arg(long)]
    pid: Option<u32>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = rt.block_on(run(args));
    std::process::exit(code);
}

async fn run(args: Args) -> i32 {
    let uri = match args.url.parse() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("loadgen: bad --url: {e}");
            return 2;
        }
    };
    let body = loadgen::chat_body(&args.model, args.stream || args.idle_streams.is_some());
    let mut spec = match RequestSpec::post_json(uri, body, args.key.as_deref(), args.stream) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return 2;
        }
    };
    spec.min_events = args.min_events;
    let spec = Arc::new(spec);

    if let Some(n) = args.idle_streams {
        let client = loadgen::client(n);
        let before = args.pid.and_then(|p| procfs::rss(p).ok());
        let held = loadgen::hold_streams(&client, &spec, n);
        let all = held.wait_ready(n, Duration::from_secs(60)).await;
        let ready = held.ready.load(std::sync::atomic::Ordering::Relaxed);
        let mut peak = 0;
        let end = std::time::Instant::now() + Duration::from_secs_f64(args.hold_secs);
        while std::time::Instant::now() < end {
            if let Some(r) = args.pid.and_then(|p| procfs::rss(p).ok()) {
                peak = peak.max(r.rss_kb);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let hwm = args.pid.and_then(|p| procfs::rss(p).ok()).map(|r| r.hwm_kb);
        let failed = held.failed.load(std::sync::atomic::Ordering::Relaxed);
        let samples = held.error_samples.lock().expect("not poisoned").clone();
        held.close(Duration::from_secs(10)).await;
        let out = serde_json::json!({
            "streams": n, "ready": ready, "failed": failed, "all_ready": all,
            "rss_before_kb": before.map(|r| r.rss_kb), "rss_held_kb": args.pid.map(|_| peak),
            "hwm_kb": hwm, "errors": samples,
        });
        if args.json {
            println!("{out}");
        } else {
            println!("held {ready}/{n} streams ({failed} failed)");
            if let Some(b) = before {
                println!(
                    "RSS before {} KiB, holding {} KiB, per stream {:.1} KiB, VmHWM {} KiB",
                    b.rss_kb,
                    peak,
                    (peak as f64 - b.rss_kb as f64) / n as f64,
                    hwm.unwrap_or(0)
                );
            }
            for e in samples {
                println!("error: {e}");
            }
        }
        return if failed == 0 && ready == n { 0 } else { 1 };
    }

    let client = loadgen::client(args.concurrency);
    if args.warmup_secs > 0.0 {
        let _ = loadgen::run(
            &client,
            &spec,
            args.concurrency,
            Stop::Duration(Duration::from_secs_f64(args.warmup_secs)),
        )
        .await;
    }
    let stop = match args.requests {
        Some(n) => Stop::Requests(n),
        None => Stop::Duration(Duration::from_secs_f64(args.duration_secs)),
    };
    let mut r = loadgen::run(&client, &spec, args.concurrency, stop).await;
    let lat = Summary::of(&mut r.latencies_ns);
    let ttft = Summary::of(&mut r.ttft_ns);
    if args.json {
        let out = serde_json::json!({
            "ok": r.ok, "errors": r.errors, "error_samples": r.error_samples,
            "elapsed_s": r.elapsed.as_secs_f64(), "rps": r.rps(),
            "latency": lat.to_json(),
            "ttft": if args.stream { ttft.to_json() } else { serde_json::Value::Null },
        });
        println!("{out}");
    } else {
        println!(
            "{} ok, {} errors in {:.2} s: {:.0} req/s",
            r.ok,
            r.errors,
            r.elapsed.as_secs_f64(),
            r.rps()
        );
        let line = |name: &str, s: Summary| {
            println!(
                "{name:<8} p50 {}  p90 {}  p99 {}  max {}",
                fmt_us(s.p50_us),
                fmt_us(s.p90_us),
                fmt_us(s.p99_us),
                fmt_us(s.max_us)
            )
        };
        line("latency", lat);
        if args.stream {
            line("ttft", ttft);
        }
        for e in &r.error_samples {
            println!("error: {e}");
        }
    }
    if r.errors == 0 {
        0
    } else {
        1
    }
}
