//! `bench/results/peers.md`: the table, how each gateway ran, the versions and the machine.

use super::{Gateway, Measured, Results};
use aihub_bench::stats::fmt_us;
use std::fmt::Write;
use std::process::{Command, Stdio};

/// `12,345`.
fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn mib(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}

/// A reason fit for a table cell: one line, no pipes, bounded.
fn cell_text(s: &str, max: usize) -> String {
    let one: String = s
        .replace(['\n', '\r'], " ")
        .replace('|', "/")
        .chars()
        .take(max)
        .collect();
    if s.chars().count() > max {
        format!("{one}…")
    } else {
        one
    }
}

fn errors_suffix(m: &Measured) -> String {
    if m.run.errors > 0 {
        format!(" ({} errors)", m.run.errors)
    } else {
        String::new()
    }
}

fn not_run(g: &Gateway) -> String {
    match &g.died {
        Some(_) => "not run (process died)".into(),
        None => "—".into(),
    }
}

/// A command's first output line (`python3 --version`), or "unknown".
fn version_of(program: &str) -> String {
    Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            let mut text = String::from_utf8_lossy(&o.stdout).to_string();
            text.push_str(&String::from_utf8_lossy(&o.stderr));
            text.lines().next().unwrap_or("").trim().to_string()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn date_utc() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .stdin(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown date".into())
}

pub fn render(r: &Results) -> String {
    let mut md = String::new();
    let gws = &r.gateways;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let _ = writeln!(md, "# aihub, LiteLLM and Portkey on one mock upstream\n");
    let _ = writeln!(
        md,
        "`make bench-peers`, {} mode, {} ({:.0} s). Machine: {cores} cores, {}, Linux {}.\n",
        r.plan.mode,
        date_utc(),
        r.total_secs,
        cpu_model(),
        kernel()
    );
    let _ = writeln!(
        md,
        "Every gateway gets the same mock upstream (`mock-upstream`) and the same load generator \
         (`aihub_bench::loadgen`, keep-alive HTTP/1.1), one gateway loaded at a time, slices \
         rotating; the mock, the load generator and the gateway share the machine's cores.\n"
    );

    // Header.
    let _ = write!(md, "| |");
    for g in gws {
        let _ = write!(md, " {} {} |", g.name, g.version);
    }
    for s in &r.skipped {
        let _ = write!(md, " {} {} |", s.name, s.version);
    }
    let _ = write!(md, "\n|---|");
    for _ in 0..gws.len() + r.skipped.len() {
        let _ = write!(md, "---|");
    }
    md.push('\n');

    let aihub_rps = gws
        .first()
        .and_then(|g| g.nonstream.as_ref())
        .map(|m| m.run.rps())
        .unwrap_or(0.0);
    let mut first_row = true;
    let mut row = |md: &mut String, label: &str, cell: &dyn Fn(&Gateway) -> String| {
        let _ = write!(md, "| {label} |");
        for g in gws {
            let _ = write!(md, " {} |", cell(g));
        }
        for _ in &r.skipped {
            let _ = write!(md, " {} |", if first_row { "skipped" } else { "—" });
        }
        md.push('\n');
        first_row = false;
    };
    row(
        &mut md,
        &format!("non-stream RPS, concurrency {}", r.concurrency),
        &|g| match &g.nonstream {
            Some(m) => {
                let rps = m.run.rps();
                let ratio = if g.name == "aihub" || aihub_rps <= 0.0 {
                    String::new()
                } else {
                    format!(" ({:.2}× aihub)", rps / aihub_rps)
                };
                format!("{}{ratio}{}", thousands(rps), errors_suffix(m))
            }
            None => not_run(g),
        },
    );
    row(&mut md, "latency p50, concurrency 1", &|g| match &g.c1 {
        Some(m) => format!("{}{}", fmt_us(m.latency.p50_us), errors_suffix(m)),
        None => not_run(g),
    });
    row(&mut md, "latency p99, concurrency 1", &|g| match &g.c1 {
        Some(m) => fmt_us(m.latency.p99_us),
        None => not_run(g),
    });
    row(
        &mut md,
        &format!(
            "stream time to first token p50, concurrency {} ({} chunks {} ms apart)",
            r.concurrency, r.stream_chunks, r.stream_delay_ms
        ),
        &|g| match (&g.streamed, &g.stream_failed) {
            (_, Some(why)) => format!("failed: {}", cell_text(why, 160)),
            (Some(m), None) => format!("{}{}", fmt_us(m.ttft.p50_us), errors_suffix(m)),
            (None, None) => not_run(g),
        },
    );
    row(
        &mut md,
        "whole stream p50, same run",
        &|g| match (&g.streamed, &g.stream_failed) {
            (_, Some(_)) => "failed".into(),
            (Some(m), None) => fmt_us(m.latency.p50_us),
            (None, None) => not_run(g),
        },
    );
    row(
        &mut md,
        &format!(
            "CPU seconds per 1,000 requests (non-stream, concurrency {}, process tree)",
            r.concurrency
        ),
        &|g| match g.nonstream.as_ref() {
            Some(m) => match (m.cpu_ticks, m.run.ok) {
                (Some(t), ok) if ok > 0 => format!(
                    "{:.3} s",
                    t as f64 / r.clk_tck.max(1) as f64 / ok as f64 * 1000.0
                ),
                _ => "unknown".into(),
            },
            None => not_run(g),
        },
    );
    row(&mut md, "RSS idle (sum of the process tree)", &|g| {
        mib(g.idle.rss_kb)
    });
    row(
        &mut md,
        "RSS after load (sum of the process tree)",
        &|g| match g.after {
            Some(m) => mib(m.rss_kb),
            None => not_run(g),
        },
    );
    row(
        &mut md,
        "PSS after load (shared pages split between processes)",
        &|g| match g.after.and_then(|m| m.pss_kb) {
            Some(kb) => mib(kb),
            None => "unknown".into(),
        },
    );
    row(&mut md, "processes", &|g| {
        g.after.unwrap_or(g.idle).processes.to_string()
    });
    md.push('\n');

    let _ = writeln!(md, "## How each gateway ran\n");
    for g in gws {
        let _ = writeln!(md, "- **{} {}**: {}.", g.name, g.version, g.how);
    }
    for s in &r.skipped {
        let _ = writeln!(
            md,
            "- **{} {}: skipped**: {}",
            s.name,
            s.version,
            cell_text(&s.reason, 600)
        );
    }
    md.push('\n');

    let _ = writeln!(md, "## Notes\n");
    let cl = r.call_log.as_ref();
    let count = |k: &str| {
        cl.and_then(|v| v.get(k))
            .and_then(|v| v.as_u64())
            .map_or("?".to_string(), |n| n.to_string())
    };
    let _ = writeln!(
        md,
        "- Call logging: aihub records every call (written {}, dropped {} at the end of this run). \
         LiteLLM runs without a database here, and without one it keeps no spend or call logs \
         (they need Postgres), so it does less work per request than aihub. Portkey's \
         open-source gateway keeps no call log of its own (only an in-memory live log stream \
         for its UI, which `--headless` turns off).",
        count("written"),
        count("dropped")
    );
    let _ = writeln!(
        md,
        "- LiteLLM ran {} uvicorn workers (one per core); its CPU and memory are summed over \
         the supervisor and every worker. aihub and Portkey are one process each (aihub: a \
         tokio runtime with a thread per core; Portkey: one node event loop, so it uses at \
         most about one core).",
        r.litellm_workers
    );
    let _ = writeln!(
        md,
        "- RSS sums count pages shared between processes (the interpreter and libraries of \
         forked workers) once per process; PSS splits them, so PSS is the fairer sum for a \
         multi-process gateway."
    );
    let _ = writeln!(
        md,
        "- Slices: non-stream concurrency {}: {} × {:.1} s per gateway; concurrency 1: {} \
         rounds of {:.1} s per gateway, the gateways alternating request by request; stream: \
         {} × {:.1} s per gateway; {:.1} s unmeasured warm-up per gateway before each.",
        r.concurrency,
        r.plan.cn.rounds,
        r.plan.cn.slice.as_secs_f64(),
        r.plan.c1.rounds,
        r.plan.c1.slice.as_secs_f64(),
        r.plan.stream.rounds,
        r.plan.stream.slice.as_secs_f64(),
        r.plan.warmup.as_secs_f64()
    );
    for g in gws {
        if let Some(why) = &g.died {
            let _ = writeln!(md, "- {} {}.", g.name, why);
        }
        for (what, m) in [
            ("non-stream", &g.nonstream),
            ("concurrency 1", &g.c1),
            ("stream", &g.streamed),
        ] {
            if let Some(m) = m.as_ref().filter(|m| m.run.errors > 0) {
                let _ = writeln!(
                    md,
                    "- {} had {} errors ({} ok) in the {what} scenario, e.g. {}",
                    g.name,
                    m.run.errors,
                    m.run.ok,
                    cell_text(&m.run.error_samples.join("; "), 300)
                );
            }
        }
    }
    let _ = writeln!(
        md,
        "- Tools: {}, node {}.",
        version_of("python3"),
        version_of("node")
    );
    md
}
