//! The results as Markdown (printed and written to latest.md) and JSON (latest.json).

use crate::postgres::{self, PgOutcome};
use crate::{MemResult, PathResult, Results, ScenarioResult};
use aihub_bench::stats::{fmt_diff_us, fmt_us, round1, round3, Summary};
use serde_json::{json, Value};
use std::fmt::Write;

pub struct Rendered {
    pub markdown: String,
    pub json: Value,
    pub valid: bool,
}

/// One tracked target of issue 6.
struct Target {
    name: String,
    measured: String,
    limit: &'static str,
    value: Option<f64>,
    pass: Option<bool>,
}

fn mb(kb: u64) -> f64 {
    kb as f64 * 1024.0 / 1_000_000.0
}

fn fmt_mb(kb: u64) -> String {
    format!("{:.1} MB", mb(kb))
}

fn thousands(v: f64) -> String {
    let n = v.round() as i64;
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

struct Machine {
    nproc: usize,
    cpu: String,
    kernel: String,
    date: String,
    commit: String,
}

fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| format!("Linux {}", s.trim()))
        .unwrap_or_else(|_| "unknown kernel".into());
    let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());
    Machine {
        nproc,
        cpu,
        kernel,
        date: utc_now(),
        commit: commit(),
    }
}

/// `YYYY-MM-DD HH:MM UTC`, without a date crate.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        (rem % 3600) / 60
    )
}

fn commit() -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(rev) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{rev} + uncommitted changes")
            } else {
                rev
            }
        }
        None => "unknown".into(),
    }
}

fn summary_json(s: Option<Summary>) -> Value {
    s.map_or(Value::Null, Summary::to_json)
}

fn cpu_per_1k(ticks: u64, requests: u64, clk_tck: u64) -> Option<f64> {
    if requests == 0 || clk_tck == 0 {
        return None;
    }
    Some(ticks as f64 / clk_tck as f64 / (requests as f64 / 1000.0))
}

pub fn render(r: &Results) -> Rendered {
    let m = machine();
    let sc = |key: &str| r.scenarios.iter().find(|s| s.key == key);
    let path = |key: &str, name: &str| sc(key).and_then(|s| s.path(name));
    let mem = |name: &str| r.memory.iter().find(|x| x.name == name);

    let scenario_errors: u64 = r
        .scenarios
        .iter()
        .flat_map(|s| s.paths.iter())
        .map(|p| p.run.errors)
        .sum();
    let memory_errors: usize = r
        .memory
        .iter()
        .map(|x| x.failed + x.errors.len().min(1))
        .sum();
    // Postgres unreachable is a skip; aihub failing on a Postgres that answered is not.
    let (pg_errors, pg_failed) = match &r.postgres {
        PgOutcome::Ran(run) => (run.scenario.paths.iter().map(|p| p.run.errors).sum(), false),
        PgOutcome::Failed(_) => (0, true),
        PgOutcome::Skipped(_) => (0, false),
    };
    let scenario_errors = scenario_errors + pg_errors;
    let valid = scenario_errors == 0 && memory_errors == 0 && !pg_failed;

    // Tracked figures.
    let rps = |key: &str, name: &str| path(key, name).map(|p| p.run.rps());
    let ratio = match (rps("nonstream_cn", "aihub"), rps("nonstream_cn", "floor")) {
        (Some(a), Some(f)) if f > 0.0 => Some(a / f),
        _ => None,
    };
    let floor_direct = match (rps("nonstream_cn", "floor"), rps("nonstream_cn", "direct")) {
        (Some(f), Some(d)) if d > 0.0 => Some(f / d),
        _ => None,
    };
    let diff = |key: &str, a: &str, b: &str, f: fn(&PathResult) -> Option<f64>| match (
        path(key, a),
        path(key, b),
    ) {
        (Some(x), Some(y)) => match (f(x), f(y)) {
            (Some(x), Some(y)) => Some(x - y),
            _ => None,
        },
        _ => None,
    };
    let p50 = |p: &PathResult| Some(p.latency.p50_us);
    let p99 = |p: &PathResult| Some(p.latency.p99_us);
    let ttft50 = |p: &PathResult| p.ttft.map(|t| t.p50_us);
    let ttft99 = |p: &PathResult| p.ttft.map(|t| t.p99_us);
    let added_p50 = diff("nonstream_c1", "aihub", "floor", p50);
    let added_p99 = diff("nonstream_c1", "aihub", "floor", p99);
    let floor_p50 = diff("nonstream_c1", "floor", "direct", p50);
    let floor_p99 = diff("nonstream_c1", "floor", "direct", p99);
    let ttft_p50 = diff("stream_cn", "aihub", "floor", ttft50);
    let ttft_p99 = diff("stream_cn", "aihub", "floor", ttft99);
    let total_p50 = diff("stream_cn", "aihub", "floor", p50);
    let stream_rps_ratio = match (rps("stream_cn", "aihub"), rps("stream_cn", "floor")) {
        (Some(a), Some(f)) if f > 0.0 => Some(a / f),
        _ => None,
    };
    let aihub_mem = mem("aihub");
    // Idle is judged after load (the allocator keeps what the load made it take), which is
    // never below the fresh figure; both are reported.
    let idle_kb = aihub_mem.map_or(r.aihub_idle_fresh_kb, |x| {
        x.before_kb.max(r.aihub_idle_fresh_kb)
    });
    let n_streams = aihub_mem.map_or(0, |x| x.streams);

    let n = sc("nonstream_cn").map_or(64, |s| s.concurrency);
    let cpu_of = |name: &str| {
        path("nonstream_cn", name)
            .and_then(|p| p.cpu_ticks.and_then(|t| cpu_per_1k(t, p.run.ok, r.clk_tck)))
    };
    let cpu_ratio = match (cpu_of("aihub"), cpu_of("floor")) {
        (Some(a), Some(f)) if f > 0.0 => Some((a / f, a, f)),
        _ => None,
    };
    let targets = vec![
        Target {
            name: format!("aihub / floor RPS, non-stream c={n}"),
            measured: match (
                ratio,
                rps("nonstream_cn", "aihub"),
                rps("nonstream_cn", "floor"),
            ) {
                (Some(q), Some(a), Some(f)) => {
                    format!("{:.2} ({} / {} req/s)", q, thousands(a), thousands(f))
                }
                _ => "n/a".into(),
            },
            limit: "≥ 0.85",
            value: ratio,
            pass: ratio.map(|q| q >= 0.85),
        },
        Target {
            name: "added p50 latency (aihub − floor), c=1".into(),
            measured: added_p50.map_or("n/a".into(), fmt_diff_us),
            limit: "< 50 µs",
            value: added_p50,
            pass: added_p50.map(|v| v < 50.0),
        },
        Target {
            name: "added p99 latency (aihub − floor), c=1".into(),
            measured: added_p99.map_or("n/a".into(), fmt_diff_us),
            limit: "< 300 µs",
            value: added_p99,
            pass: added_p99.map(|v| v < 300.0),
        },
        Target {
            name: "aihub RSS idle (after load)".into(),
            measured: format!(
                "{} (fresh start: {})",
                fmt_mb(idle_kb),
                fmt_mb(r.aihub_idle_fresh_kb)
            ),
            limit: "< 30 MB",
            value: Some(mb(idle_kb)),
            pass: Some(idle_kb > 0 && mb(idle_kb) < 30.0),
        },
        Target {
            name: format!("aihub RSS holding {} streams", thousands(n_streams as f64)),
            measured: aihub_mem.map_or("n/a".into(), |x| fmt_mb(x.held_kb)),
            limit: "< 100 MB",
            value: aihub_mem.map(|x| mb(x.held_kb)),
            pass: aihub_mem.map(|x| x.held_kb > 0 && mb(x.held_kb) < 100.0 && x.failed == 0),
        },
        Target {
            name: format!("TTFT aihub − floor (p50, stream c={n})"),
            measured: ttft_p50.map_or("n/a".into(), fmt_diff_us),
            limit: "≤ 0.5 ms",
            value: ttft_p50,
            pass: ttft_p50.map(|v| v <= 500.0),
        },
        Target {
            name: format!("CPU per request aihub / floor, non-stream c={n}"),
            measured: cpu_ratio.map_or("n/a".into(), |(q, a, f)| {
                format!("{q:.2} ({a:.3} / {f:.3} s per 1,000)")
            }),
            limit: "≤ 1.3",
            value: cpu_ratio.map(|v| v.0),
            pass: cpu_ratio.map(|v| v.0 <= 1.3),
        },
        Target {
            name: "heap allocations per non-stream request, aihub".into(),
            measured: r.allocs.as_ref().map_or("n/a".into(), |a| {
                format!("{:.1} (floor {:.1})", a.aihub_nonstream, a.floor_nonstream)
            }),
            limit: "≤ 40",
            value: r.allocs.as_ref().map(|a| a.aihub_nonstream),
            pass: r.allocs.as_ref().map(|a| a.aihub_nonstream <= 40.0),
        },
    ];

    // ---- Markdown ----
    let mut md = String::new();
    let _ = writeln!(md, "# aihub benchmark ({} run)\n", r.plan.mode);
    if valid {
        let _ = writeln!(md, "**Run: VALID** (zero errors on every path).\n");
    } else {
        let _ = writeln!(
            md,
            "**Run: INVALID** ({scenario_errors} request errors, {memory_errors} idle-stream failures{}; see Errors). The figures below are not comparable.\n",
            if pg_failed { ", the Postgres scenario failed" } else { "" }
        );
    }
    let command = if r.plan.mode == "quick" {
        "make bench-quick"
    } else {
        "make bench"
    };
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| date | {} |", m.date);
    let _ = writeln!(
        md,
        "| machine | {} × {} (nproc {}), {} |",
        m.nproc, m.cpu, m.nproc, m.kernel
    );
    let _ = writeln!(md, "| commit | {} |", m.commit);
    let _ = writeln!(md, "| binary | {} |", r.aihub_version);
    let _ = writeln!(md, "| command | `{command}` |");
    let sl = |x: crate::Slices| format!("{} × {:?}", x.rounds, x.slice);
    let _ = writeln!(
        md,
        "| load | per path: c=1 {} (paths alternating request by request), c={n} {}, stream {} (paths alternating slice by slice, after a {:?} warm-up each); {} idle streams held {:?}; the run took {:.0} s |",
        sl(r.plan.c1),
        sl(r.plan.cn),
        sl(r.plan.stream),
        r.plan.warmup,
        thousands(n_streams as f64),
        r.plan.hold,
        r.total_secs
    );
    let _ = writeln!(
        md,
        "\nThe load generator, the mock, the floor and aihub share the same {} CPU(s); absolute figures move with the box, the aihub-vs-floor ratios under identical load are what we track.\n",
        m.nproc
    );

    let _ = writeln!(md, "## Targets (issue 12)\n");
    let _ = writeln!(
        md,
        "| target | measured | limit | status |\n|---|---|---|---|"
    );
    for t in &targets {
        let status = match t.pass {
            Some(true) => "PASS",
            Some(false) => "MISS",
            None => "n/a",
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            t.name, t.measured, t.limit, status
        );
    }

    if let Some(a) = &r.allocs {
        let _ = writeln!(
            md,
            "\nHeap allocations per request (a separate pass, `COUNT_HEAP_ALLOCS=1`, {} non-stream and {} stream requests at c=1): non-stream floor {:.1}, aihub {:.1}; stream of {} chunks floor {:.1}, aihub {:.1}.",
            a.requests,
            (a.requests / 10).max(1),
            a.floor_nonstream,
            a.aihub_nonstream,
            a.stream_chunks,
            a.floor_stream,
            a.aihub_stream
        );
    }
    let _ = writeln!(md, "\n## Other ratios\n");
    let log_num = |k: &str| {
        r.call_log
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_u64)
    };
    match (log_num("written"), log_num("dropped"), log_num("queued")) {
        (Some(w), d, q) => {
            let _ = writeln!(
                md,
                "- aihub call log at the end: {} records written, {} dropped, {} still queued{}",
                thousands(w as f64),
                d.unwrap_or(0),
                q.unwrap_or(0),
                if d.unwrap_or(0) > 0 {
                    " (**records were dropped: logging did not keep up with the load**)"
                } else {
                    ""
                }
            );
        }
        _ => {
            let _ = writeln!(md, "- aihub call log: no counters in /readyz");
        }
    }
    let opt = |v: Option<f64>, f: fn(f64) -> String| v.map_or("n/a".to_string(), f);
    let _ = writeln!(
        md,
        "- floor / direct RPS, non-stream c={n}: {}",
        opt(floor_direct, |v| format!("{v:.2}"))
    );
    let _ = writeln!(
        md,
        "- latency the floor adds over direct, c=1: p50 {}, p99 {}",
        opt(floor_p50, fmt_diff_us),
        opt(floor_p99, fmt_diff_us)
    );
    let _ = writeln!(
        md,
        "- streaming c={n}: aihub / floor streams per second {}; TTFT aihub − floor p99 {}; whole stream aihub − floor p50 {}",
        opt(stream_rps_ratio, |v| format!("{v:.2}")),
        opt(ttft_p99, fmt_diff_us),
        opt(total_p50, fmt_diff_us)
    );
    for x in &r.memory {
        let _ = writeln!(
            md,
            "- memory per held stream, {}: {:.1} KB",
            x.name,
            per_stream_kb(x)
        );
    }
    for key in ["nonstream_cn", "stream_cn"] {
        if let Some(s) = sc(key) {
            let cells: Vec<String> = s
                .paths
                .iter()
                .map(|p| {
                    let who = if p.name == "direct" { "mock" } else { p.name };
                    format!(
                        "{who} {}",
                        p.cpu_ticks
                            .and_then(|t| cpu_per_1k(t, p.run.ok, r.clk_tck))
                            .map_or("n/a".into(), |v| format!("{v:.3}"))
                    )
                })
                .collect();
            let _ = writeln!(
                md,
                "- CPU seconds per 1,000 requests, {}: {}",
                s.title,
                cells.join(", ")
            );
        }
    }

    render_postgres(&mut md, r);

    let _ = writeln!(md, "\n## Latency and throughput\n");
    let _ = writeln!(
        md,
        "| scenario | path | requests | errors | req/s | p50 | p90 | p99 | max |\n|---|---|--:|--:|--:|--:|--:|--:|--:|"
    );
    for s in &r.scenarios {
        for p in &s.paths {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                s.title,
                p.name,
                thousands(p.run.ok as f64),
                p.run.errors,
                thousands(p.run.rps()),
                fmt_us(p.latency.p50_us),
                fmt_us(p.latency.p90_us),
                fmt_us(p.latency.p99_us),
                fmt_us(p.latency.max_us)
            );
        }
    }
    for s in r.scenarios.iter().filter(|s| s.stream) {
        let _ = writeln!(
            md,
            "\nTime to first token (first SSE `data:` event), {}:\n",
            s.title
        );
        let _ = writeln!(
            md,
            "| path | p50 | p90 | p99 | max |\n|---|--:|--:|--:|--:|"
        );
        for p in &s.paths {
            if let Some(t) = p.ttft {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} |",
                    p.name,
                    fmt_us(t.p50_us),
                    fmt_us(t.p90_us),
                    fmt_us(t.p99_us),
                    fmt_us(t.max_us)
                );
            }
        }
    }

    let _ = writeln!(
        md,
        "\n## CPU (seconds per 1,000 requests, measured runs only)\n"
    );
    let _ = writeln!(
        md,
        "| scenario | mock (direct) | floor | aihub | mock, behind floor | mock, behind aihub |\n|---|--:|--:|--:|--:|--:|"
    );
    for s in &r.scenarios {
        let own = |name: &str| {
            s.path(name)
                .and_then(|p| cpu_per_1k(p.cpu_ticks?, p.run.ok, r.clk_tck))
                .map_or("n/a".into(), |v| format!("{v:.3}"))
        };
        let mock = |name: &str| {
            s.path(name)
                .and_then(|p| cpu_per_1k(p.mock_ticks?, p.run.ok, r.clk_tck))
                .map_or("n/a".into(), |v| format!("{v:.3}"))
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            s.title,
            own("direct"),
            own("floor"),
            own("aihub"),
            mock("floor"),
            mock("aihub")
        );
    }

    let _ = writeln!(md, "\n## Memory (VmRSS)\n");
    let _ = writeln!(
        md,
        "| process | fresh start | before streams | holding streams | per stream | 1 s after close | VmHWM (run peak) | streams held | open fds: before / holding / after close |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|"
    );
    for x in &r.memory {
        let fresh = if x.name == "aihub" {
            r.aihub_idle_fresh_kb
        } else {
            r.floor_idle_fresh_kb
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {:.1} KB | {} | {} | {}/{} (opened in {:.1} s) | {} / {} / {} |",
            x.name,
            fmt_mb(fresh),
            fmt_mb(x.before_kb),
            fmt_mb(x.held_kb),
            per_stream_kb(x),
            fmt_mb(x.after_kb),
            fmt_mb(x.hwm_kb),
            x.ready,
            x.streams,
            x.open_secs,
            x.fds[0],
            x.fds[1],
            x.fds[2]
        );
    }

    if !valid {
        let _ = writeln!(md, "\n## Errors\n");
        for s in &r.scenarios {
            for p in s.paths.iter().filter(|p| p.run.errors > 0) {
                let _ = writeln!(
                    md,
                    "- {} / {}: {} errors, e.g. {}",
                    s.title,
                    p.name,
                    p.run.errors,
                    p.run.error_samples.join("; ")
                );
            }
        }
        match &r.postgres {
            PgOutcome::Failed(why) => {
                let _ = writeln!(md, "- Postgres scenario: {why}");
            }
            PgOutcome::Ran(run) => {
                for p in run.scenario.paths.iter().filter(|p| p.run.errors > 0) {
                    let _ = writeln!(
                        md,
                        "- {} / {}: {} errors, e.g. {}",
                        run.scenario.title,
                        p.name,
                        p.run.errors,
                        p.run.error_samples.join("; ")
                    );
                }
            }
            PgOutcome::Skipped(_) => {}
        }
        for x in r
            .memory
            .iter()
            .filter(|x| x.failed > 0 || !x.errors.is_empty())
        {
            let _ = writeln!(
                md,
                "- idle streams / {}: {} not held; {}",
                x.name,
                x.failed,
                x.errors.join("; ")
            );
        }
    }

    // ---- JSON ----
    let scenarios: Vec<Value> = r
        .scenarios
        .iter()
        .map(|s| scenario_json(s, r.clk_tck))
        .collect();
    let memory: Vec<Value> = r
        .memory
        .iter()
        .map(|x| {
            json!({
                "process": x.name,
                "streams": x.streams,
                "held": x.ready,
                "failed": x.failed,
                "errors": x.errors,
                "open_secs": round3(x.open_secs),
                "rss_before_kb": x.before_kb,
                "rss_held_kb": x.held_kb,
                "per_stream_kb": round1(per_stream_kb(x)),
                "rss_after_close_kb": x.after_kb,
                "hwm_kb": x.hwm_kb,
                "fds_before": x.fds[0],
                "fds_holding": x.fds[1],
                "fds_after_close": x.fds[2],
            })
        })
        .collect();
    let json = json!({
        "valid": valid,
        "mode": r.plan.mode,
        "date": m.date,
        "commit": m.commit,
        "aihub_version": r.aihub_version,
        "machine": {"nproc": m.nproc, "cpu": m.cpu, "kernel": m.kernel},
        "plan": {
            "c1": {"rounds": r.plan.c1.rounds, "slice_secs": r.plan.c1.slice.as_secs_f64()},
            "cn": {"rounds": r.plan.cn.rounds, "slice_secs": r.plan.cn.slice.as_secs_f64()},
            "stream": {"rounds": r.plan.stream.rounds, "slice_secs": r.plan.stream.slice.as_secs_f64()},
            "warmup_secs": r.plan.warmup.as_secs_f64(),
            "hold_secs": r.plan.hold.as_secs_f64(),
            "concurrency": n,
            "stream_chunks": r.args_stream_chunks,
            "stream_delay_ms": r.args_stream_delay_ms,
            "idle_streams": n_streams,
        },
        "total_secs": round1(r.total_secs),
        "errors": {"requests": scenario_errors, "idle_streams": memory_errors},
        "ratios": {
            "rps_aihub_over_floor_cn": ratio.map(round3),
            "rps_floor_over_direct_cn": floor_direct.map(round3),
            "added_p50_us_c1": added_p50.map(round1),
            "added_p99_us_c1": added_p99.map(round1),
            "floor_added_p50_us_c1": floor_p50.map(round1),
            "floor_added_p99_us_c1": floor_p99.map(round1),
            "ttft_diff_p50_us": ttft_p50.map(round1),
            "ttft_diff_p99_us": ttft_p99.map(round1),
            "stream_total_diff_p50_us": total_p50.map(round1),
            "stream_rps_aihub_over_floor": stream_rps_ratio.map(round3),
        },
        "aihub_rss": {
            "idle_fresh_kb": r.aihub_idle_fresh_kb,
            "idle_after_load_kb": aihub_mem.map(|x| x.before_kb),
            "holding_streams_kb": aihub_mem.map(|x| x.held_kb),
            "peak_hwm_kb": aihub_mem.map(|x| x.hwm_kb),
            "per_stream_kb": aihub_mem.map(|x| round1(per_stream_kb(x))),
        },
        "floor_rss": {"idle_fresh_kb": r.floor_idle_fresh_kb},
        "aihub_call_log": r.call_log.clone().unwrap_or(Value::Null),
        "allocations_per_request": r.allocs.as_ref().map(|a| json!({
            "requests": a.requests,
            "nonstream": {"floor": round1(a.floor_nonstream), "aihub": round1(a.aihub_nonstream)},
            "stream": {"chunks": a.stream_chunks, "floor": round1(a.floor_stream), "aihub": round1(a.aihub_stream)},
        })),
        "targets": targets.iter().map(|t| json!({
            "target": t.name, "measured": t.measured, "limit": t.limit,
            "value": t.value.map(round3), "pass": t.pass,
        })).collect::<Vec<_>>(),
        "scenarios": scenarios,
        "memory": memory,
        "postgres": postgres_json(r),
    });

    Rendered {
        markdown: md,
        json,
        valid,
    }
}

/// CPU seconds per 1,000 requests of a path's own process and of its side processes.
fn path_cpu(p: &PathResult, clk_tck: u64) -> (Option<f64>, Option<f64>) {
    (
        p.cpu_ticks.and_then(|t| cpu_per_1k(t, p.run.ok, clk_tck)),
        p.side_ticks.and_then(|t| cpu_per_1k(t, p.run.ok, clk_tck)),
    )
}

/// The Postgres scenario's section (issue 17).
fn render_postgres(md: &mut String, r: &Results) {
    let _ = writeln!(md, "\n## aihub on Postgres (issue 17)\n");
    let run = match &r.postgres {
        PgOutcome::Skipped(why) => {
            let _ = writeln!(md, "Skipped (not an error): {why}.");
            return;
        }
        PgOutcome::Failed(why) => {
            let _ = writeln!(md, "**Failed**: {why}");
            return;
        }
        PgOutcome::Ran(run) => run,
    };
    let s = &run.scenario;
    let _ = writeln!(
        md,
        "A second aihub on a throwaway Postgres database (`{}`, `storage.pool_size` {}, call logging on, same mock and config) against aihub on SQLite, non-stream at c={}, the two alternating slice by slice ({} × {:?} each, after a {:?} warm-up). The Postgres server shares the machine: its backends' CPU is shown apart (the WAL writer and checkpointer are not counted).\n",
        run.database,
        run.pool_size,
        s.concurrency,
        r.plan.pg.rounds,
        r.plan.pg.slice,
        r.plan.warmup
    );
    let _ = writeln!(
        md,
        "| path | requests | errors | req/s | p50 | p99 | aihub CPU s / 1,000 | Postgres backends CPU s / 1,000 |\n|---|--:|--:|--:|--:|--:|--:|--:|"
    );
    let f3 = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
    for p in &s.paths {
        let (own, side) = path_cpu(p, r.clk_tck);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            p.name,
            thousands(p.run.ok as f64),
            p.run.errors,
            thousands(p.run.rps()),
            fmt_us(p.latency.p50_us),
            fmt_us(p.latency.p99_us),
            f3(own),
            if p.name == "aihub-pg" {
                f3(side)
            } else {
                "—".into()
            }
        );
    }
    let _ = writeln!(
        md,
        "\n- **RPS aihub on Postgres / aihub on SQLite: {}**",
        postgres::ratio(run).map_or("n/a".into(), |q| format!("{q:.2}"))
    );
    let num = |k: &str| {
        run.call_log
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_u64)
    };
    match num("written") {
        Some(w) => {
            let dropped = num("dropped").unwrap_or(0);
            let _ = writeln!(
                md,
                "- aihub-on-Postgres call log at the end: {} records written, {} dropped, {} still queued{}",
                thousands(w as f64),
                dropped,
                num("queued").unwrap_or(0),
                if dropped > 0 {
                    " (**records were dropped: the Postgres writer did not keep up**)"
                } else {
                    ""
                }
            );
        }
        None => {
            let _ = writeln!(md, "- aihub-on-Postgres call log: no counters in /readyz");
        }
    }
}

fn postgres_json(r: &Results) -> Value {
    match &r.postgres {
        PgOutcome::Skipped(why) => json!({"status": "skipped", "reason": why}),
        PgOutcome::Failed(why) => json!({"status": "failed", "reason": why}),
        PgOutcome::Ran(run) => {
            let path = |name: &str| {
                run.scenario.path(name).map(|p| {
                    let (own, side) = path_cpu(p, r.clk_tck);
                    json!({
                        "rps": round1(p.run.rps()),
                        "cpu_s_per_1k": own.map(round3),
                        "postgres_backends_cpu_s_per_1k": side.map(round3),
                    })
                })
            };
            json!({
                "status": "ran",
                "database": run.database,
                "pool_size": run.pool_size,
                "rps_pg_over_sqlite": postgres::ratio(run).map(round3),
                "sqlite": path("aihub-sqlite"),
                "pg": path("aihub-pg"),
                "pg_call_log": run.call_log.clone().unwrap_or(Value::Null),
                "scenario": scenario_json(&run.scenario, r.clk_tck),
            })
        }
    }
}

fn per_stream_kb(x: &MemResult) -> f64 {
    if x.streams == 0 {
        return 0.0;
    }
    (x.held_kb as f64 - x.before_kb as f64) * 1024.0 / 1000.0 / x.streams as f64
}

fn scenario_json(s: &ScenarioResult, clk_tck: u64) -> Value {
    let paths: Vec<Value> = s
        .paths
        .iter()
        .map(|p| {
            json!({
                "path": p.name,
                "requests": p.run.ok,
                "errors": p.run.errors,
                "error_samples": p.run.error_samples,
                "elapsed_secs": round3(p.run.elapsed.as_secs_f64()),
                "rps": round1(p.run.rps()),
                "latency": p.latency.to_json(),
                "ttft": summary_json(p.ttft),
                "events": p.run.events,
                "cpu_s_per_1k": p.cpu_ticks.and_then(|t| cpu_per_1k(t, p.run.ok, clk_tck)).map(round3),
                "mock_cpu_s_per_1k": p.mock_ticks.and_then(|t| cpu_per_1k(t, p.run.ok, clk_tck)).map(round3),
            })
        })
        .collect();
    json!({
        "scenario": s.key,
        "title": s.title,
        "concurrency": s.concurrency,
        "stream": s.stream,
        "paths": paths,
    })
}
