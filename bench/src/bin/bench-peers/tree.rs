//! A gateway's whole process tree from /proc: LiteLLM runs a supervisor and one worker
//! per core, so its CPU time and memory are the sums over the root and every descendant.

use aihub_bench::procfs;
use std::collections::HashMap;

/// The root and all its descendants that are alive now.
pub fn pids(root: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![root];
    };
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for pid in dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
    {
        if let Some(ppid) = ppid(pid) {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        if let Some(kids) = children.get(&out[i]) {
            for &k in kids {
                if !out.contains(&k) {
                    out.push(k);
                }
            }
        }
        i += 1;
    }
    out
}

/// Field 4 of `/proc/<pid>/stat`.
fn ppid(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime of every process of the tree, by pid.
pub fn cpu_snapshot(root: u32) -> Vec<(u32, u64)> {
    pids(root)
        .into_iter()
        .filter_map(|pid| procfs::cpu_ticks(pid).ok().map(|t| (pid, t)))
        .collect()
}

pub use aihub_bench::procfs::cpu_delta;

/// Memory of a tree: RSS summed over its processes (pages shared between them, such as
/// the interpreter and libraries of forked workers, count once per process) and PSS
/// summed (shared pages split between the processes sharing them).
#[derive(Debug, Clone, Copy, Default)]
pub struct TreeMem {
    pub processes: usize,
    pub rss_kb: u64,
    pub pss_kb: Option<u64>,
}

pub fn memory(root: u32) -> TreeMem {
    let mut m = TreeMem {
        pss_kb: Some(0),
        ..TreeMem::default()
    };
    for pid in pids(root) {
        let Ok(r) = procfs::rss(pid) else { continue };
        m.processes += 1;
        m.rss_kb += r.rss_kb;
        m.pss_kb = match (m.pss_kb, pss_kb(pid)) {
            (Some(sum), Some(p)) => Some(sum + p),
            _ => None,
        };
    }
    m
}

/// `Pss:` of `/proc/<pid>/smaps_rollup`, KiB.
fn pss_kb(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let me = std::process::id();
        assert!(pids(me).contains(&child.id()));
        let m = memory(me);
        assert!(m.processes >= 2 && m.rss_kb > 0);
        let snap = cpu_snapshot(me);
        assert_eq!(cpu_delta(&snap, &snap), 0);
        let _ = child.kill();
        let _ = child.wait();
    }
}
