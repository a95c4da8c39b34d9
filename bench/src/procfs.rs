//! What the driver reads about a process from /proc: memory and CPU time.

use std::io;

/// Resident set size now and its high-water mark, in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rss {
    pub rss_kb: u64,
    pub hwm_kb: u64,
}

pub fn rss(pid: u32) -> io::Result<Rss> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    match (field("VmRSS:"), field("VmHWM:")) {
        (Some(rss_kb), Some(hwm_kb)) => Ok(Rss { rss_kb, hwm_kb }),
        _ => Err(io::Error::other(format!(
            "no VmRSS/VmHWM in /proc/{pid}/status"
        ))),
    }
}

/// utime + stime of the whole process (all threads), in clock ticks.
pub fn cpu_ticks(pid: u32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name may hold spaces and parentheses: fields resume after the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| io::Error::other("malformed /proc stat"))?;
    // rest starts at field 3 (state); utime and stime are fields 14 and 15.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| io::Error::other("malformed /proc stat"))
    };
    Ok(get(14)? + get(15)?)
}

/// Open file descriptors (sockets included) of a process.
pub fn fd_count(pid: u32) -> io::Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// Processes whose command line (arguments joined by spaces) contains `needle`: how the
/// driver finds the Postgres backends serving one database, whose process title reads
/// `postgres: ... <user> <database> <client> <state>`.
pub fn pids_with_cmdline(needle: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|raw| {
                let line: Vec<u8> = raw.iter().map(|&b| if b == 0 { b' ' } else { b }).collect();
                String::from_utf8_lossy(&line).contains(needle)
            })
        })
        .collect()
}

/// Clock ticks per second (`getconf CLK_TCK`).
pub fn clk_tck() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 {
        v as u64
    } else {
        100
    }
}

/// CPU ticks spent between two snapshots of (pid, ticks): a process new since `before`
/// counts from zero; one gone by `after` is not counted (the processes measured live for
/// the whole run).
pub fn cpu_delta(before: &[(u32, u64)], after: &[(u32, u64)]) -> u64 {
    after
        .iter()
        .map(|(pid, t1)| {
            let t0 = before.iter().find(|(p, _)| p == pid).map_or(0, |(_, t)| *t);
            t1.saturating_sub(t0)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_self() {
        let me = std::process::id();
        let r = rss(me).unwrap();
        assert!(r.rss_kb > 0 && r.hwm_kb >= r.rss_kb);
        cpu_ticks(me).unwrap();
        assert!(fd_count(me).unwrap() > 0);
        assert!(clk_tck() > 0);
    }

    #[test]
    fn finds_itself_by_its_command_line() {
        let me = std::process::id();
        let exe = std::env::args().next().unwrap();
        assert!(pids_with_cmdline(&exe).contains(&me));
        assert!(pids_with_cmdline("no process has this in its command line \u{1}").is_empty());
    }
}
