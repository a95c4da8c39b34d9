//! Checks a plugin library before the host maps it into its own address space.
//!
//! Mapping a damaged library can kill a process outright: the dynamic loader maps each
//! segment as its header says, and touching a page past the end of a truncated file raises
//! SIGBUS, which no `catch_unwind` sees. So a library is checked twice first:
//! 1. statically ([`check_static`]): an ELF shared object for this machine whose segments
//!    and sections all lie inside the file;
//! 2. by loading it in a short-lived child process (`aihub plugins check FILE`, see
//!    [`LoadCheck::run`]) under a timeout: a library that crashes or hangs the loader takes
//!    the child down, not the host, and is refused with the signal named.

use plugin_api::host::PluginLibrary;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The prefix every "this is no library we can use" refusal starts with.
const NOT_A_LIBRARY: &str = "not a loadable shared library";

/// Environment variables the child keeps: the ones that decide how the dynamic loader finds
/// a library's own dependencies, so the check loads exactly what the host would. Everything
/// else (the admin token, the master key, provider keys) stays out of the child.
const KEPT_ENV: [&str; 6] = [
    "PATH",
    "TMPDIR",
    "LD_LIBRARY_PATH",
    "LD_PRELOAD",
    "DYLD_LIBRARY_PATH",
    "DYLD_FALLBACK_LIBRARY_PATH",
];

/// Most of the child's stdout/stderr kept for the refusal message.
const OUTPUT_LIMIT: u64 = 64 * 1024;

/// The static check, where this platform's libraries are ELF files; elsewhere only the
/// child check guards the host.
pub fn check_static(bytes: &[u8]) -> Result<(), String> {
    if cfg!(all(unix, not(target_vendor = "apple"))) {
        check_elf(bytes, &Target::native())
    } else {
        Ok(())
    }
}

/// What a library must have been built for to be loadable here.
#[derive(Debug, Clone)]
pub struct Target {
    pub bits64: bool,
    pub little_endian: bool,
    /// `e_machine`, when this architecture is known.
    pub machine: Option<u16>,
    pub arch: &'static str,
}

impl Target {
    pub fn native() -> Self {
        use object::elf;
        let machine = match std::env::consts::ARCH {
            "x86_64" => Some(elf::EM_X86_64),
            "x86" => Some(elf::EM_386),
            "aarch64" => Some(elf::EM_AARCH64),
            "arm" => Some(elf::EM_ARM),
            "riscv64" | "riscv32" => Some(elf::EM_RISCV),
            "powerpc64" => Some(elf::EM_PPC64),
            "s390x" => Some(elf::EM_S390),
            "loongarch64" => Some(elf::EM_LOONGARCH),
            _ => None,
        }
        .map(|m| m.0);
        Target {
            bits64: cfg!(target_pointer_width = "64"),
            little_endian: cfg!(target_endian = "little"),
            machine,
            arch: std::env::consts::ARCH,
        }
    }
}

fn damaged(what: impl std::fmt::Display) -> String {
    format!("the library is truncated or damaged: {what}")
}

/// Validates an ELF file without mapping it: this machine's class, byte order and
/// architecture, a shared object with a dynamic section, and every segment, the section
/// header table and every section inside the file.
pub fn check_elf(bytes: &[u8], target: &Target) -> Result<(), String> {
    use object::elf::{FileHeader32, FileHeader64};
    use object::Endianness;
    if bytes.len() < 16 || &bytes[..4] != b"\x7fELF" {
        return Err(format!("{NOT_A_LIBRARY}: not an ELF file"));
    }
    let bits64 = match bytes[4] {
        c if c == object::elf::ELFCLASS32.0 => false,
        c if c == object::elf::ELFCLASS64.0 => true,
        other => return Err(damaged(format!("unknown ELF class {other}"))),
    };
    let little = match bytes[5] {
        d if d == object::elf::ELFDATA2LSB.0 => true,
        d if d == object::elf::ELFDATA2MSB.0 => false,
        other => return Err(damaged(format!("unknown ELF byte order {other}"))),
    };
    let width = |b: bool| if b { 64 } else { 32 };
    if bits64 != target.bits64 {
        return Err(format!(
            "{NOT_A_LIBRARY}: a {}-bit library, this host is {}-bit",
            width(bits64),
            width(target.bits64)
        ));
    }
    let order = |l: bool| if l { "little-endian" } else { "big-endian" };
    if little != target.little_endian {
        return Err(format!(
            "{NOT_A_LIBRARY}: a {} library, this host is {}",
            order(little),
            order(target.little_endian)
        ));
    }
    if bits64 {
        check_header::<FileHeader64<Endianness>>(bytes, target)
    } else {
        check_header::<FileHeader32<Endianness>>(bytes, target)
    }
}

fn check_header<H>(bytes: &[u8], target: &Target) -> Result<(), String>
where
    H: object::read::elf::FileHeader<Endian = object::Endianness>,
{
    use object::elf;
    use object::read::elf::{ProgramHeader, SectionHeader};
    let len = bytes.len() as u64;
    let header = H::parse(bytes).map_err(|e| damaged(format!("unreadable ELF header ({e})")))?;
    let endian = header
        .endian()
        .map_err(|e| damaged(format!("unreadable ELF header ({e})")))?;
    let file_type = header.e_type(endian);
    if file_type != elf::ET_DYN {
        return Err(format!(
            "{NOT_A_LIBRARY}: not a shared object (ELF file type {})",
            file_type.0
        ));
    }
    let machine = header.e_machine(endian).0;
    if let Some(expected) = target.machine.filter(|m| *m != machine) {
        return Err(format!(
            "{NOT_A_LIBRARY}: built for another processor (ELF machine {machine}), this host is {} (ELF machine {expected})",
            target.arch
        ));
    }
    let phoff: u64 = header.e_phoff(endian).into();
    let segments = header.program_headers(endian, bytes).map_err(|_| {
        damaged(format!(
            "the program header table at byte {phoff} does not fit: the file has {len} bytes"
        ))
    })?;
    let (mut loadable, mut dynamic) = (0, false);
    for (i, segment) in segments.iter().enumerate() {
        let (offset, size) = segment.file_range(endian);
        let end = offset.saturating_add(size);
        if end > len {
            return Err(damaged(format!(
                "segment {i} ends at byte {end} but the file has {len} bytes"
            )));
        }
        match segment.p_type(endian) {
            elf::PT_LOAD => loadable += 1,
            elf::PT_DYNAMIC => dynamic = true,
            _ => {}
        }
    }
    if loadable == 0 {
        return Err(format!("{NOT_A_LIBRARY}: it has no loadable segments"));
    }
    if !dynamic {
        return Err(format!("{NOT_A_LIBRARY}: it has no dynamic section"));
    }
    // The loader does not read sections, but a file cut anywhere past its segments loses
    // its section header table (linkers put it last): that is damage too.
    let shoff: u64 = header.e_shoff(endian).into();
    let sections = header.section_headers(endian, bytes).map_err(|_| {
        damaged(format!(
            "the section header table at byte {shoff} does not fit: the file has {len} bytes"
        ))
    })?;
    for (i, section) in sections.iter().enumerate() {
        if let Some((offset, size)) = section.file_range(endian) {
            let end = offset.saturating_add(size);
            if end > len {
                return Err(damaged(format!(
                    "section {i} ends at byte {end} but the file has {len} bytes"
                )));
            }
        }
    }
    Ok(())
}

/// The in-process half, run by `aihub plugins check FILE` (in the child): the static check,
/// then the full load (header, version and layout checks, manifest). The one-line JSON
/// summary of what the library offers.
pub fn check_file(path: &Path) -> Result<String, String> {
    // A bare file name would send the dynamic loader searching its library path.
    let path = &std::path::absolute(path)
        .map_err(|e| format!("cannot resolve {}: {e}", path.display()))?;
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    check_static(&bytes)?;
    drop(bytes);
    let library = PluginLibrary::load(path).map_err(|e| e.to_string())?;
    let m = library.manifest();
    let summary = serde_json::json!({
        "file": path.display().to_string(),
        "name": m.name,
        "version": m.version,
        "abi_version": m.abi_version,
        "prefixes": m.providers.iter().map(|p| p.prefix.as_str()).collect::<Vec<_>>(),
        "models": m.providers.iter().map(|p| p.models.len()).sum::<usize>(),
    });
    Ok(summary.to_string())
}

/// How the host runs the loader check in a child process.
#[derive(Debug, Clone)]
pub struct LoadCheck {
    /// The `aihub` executable, or why it cannot be found.
    program: Result<PathBuf, String>,
    timeout: Duration,
}

impl LoadCheck {
    /// Runs this very executable. On Linux through `/proc/self/exe`, which still names the
    /// running binary after an upgrade replaced the file on disk: the check runs the same
    /// loader code as the host that loads the library next.
    pub fn this_executable(timeout: Duration) -> Self {
        let proc_exe = Path::new("/proc/self/exe");
        let program = if cfg!(target_os = "linux") && proc_exe.exists() {
            Ok(proc_exe.to_path_buf())
        } else {
            std::env::current_exe().map_err(|e| format!("cannot find the aihub executable: {e}"))
        };
        LoadCheck { program, timeout }
    }

    /// A check run by `program` (tests give a stand-in).
    pub fn with_program(program: PathBuf, timeout: Duration) -> Self {
        LoadCheck {
            program: Ok(program),
            timeout,
        }
    }

    /// Runs `<aihub> plugins check <library>` and waits at most the timeout. `Ok` carries
    /// the child's summary line; `Err` the reason to refuse the library.
    pub fn run(&self, library: &Path) -> Result<String, String> {
        let program = self
            .program
            .as_ref()
            .map_err(|e| format!("cannot run the loader check: {e}"))?;
        let mut cmd = Command::new(program);
        cmd.args(["plugins", "check"]).arg(library);
        cmd.env_clear();
        for key in KEPT_ENV {
            if let Some(value) = std::env::var_os(key) {
                cmd.env(key, value);
            }
        }
        cmd.env("RUST_BACKTRACE", "0");
        verdict(run_bounded(cmd, self.timeout)?)
    }
}

/// What a finished child left.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Reads a pipe to its end on a thread of its own, keeping the first [`OUTPUT_LIMIT`]
/// bytes, so a chatty child never blocks on a full pipe.
fn drain(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        let _ = std::thread::Builder::new()
            .name("plugin-check-pipe".into())
            .spawn(move || {
                let mut kept = Vec::new();
                let _ = (&mut pipe).take(OUTPUT_LIMIT).read_to_end(&mut kept);
                let _ = std::io::copy(&mut pipe, &mut std::io::sink());
                let _ = tx.send(kept);
            });
    }
    rx
}

/// Runs `cmd` with no stdin and waits at most `timeout`; a child still running then is
/// killed. `Err` when it cannot be started or was killed.
pub fn run_bounded(mut cmd: Command, timeout: Duration) -> Result<Finished, String> {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run the loader check: {e}"))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let mut pause = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("the loader check could not be waited for: {e}"));
            }
        }
        if started.elapsed() >= timeout {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "the library did not finish loading within plugins.check_timeout_ms ({} ms): the loader check was stopped",
                timeout.as_millis()
            ));
        }
        std::thread::sleep(pause);
        // Short pauses: a check takes tens of milliseconds, and `try_wait` is one syscall.
        pause = (pause * 2).min(Duration::from_millis(5));
    };
    // A grandchild may still hold the pipes open: do not wait on it for long.
    let collect = |rx: mpsc::Receiver<Vec<u8>>| {
        let bytes = rx.recv_timeout(Duration::from_secs(1)).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Ok(Finished {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    })
}

/// The conventional name of a signal that can end a loader.
pub fn signal_name(signal: i32) -> Option<&'static str> {
    let names = [
        (libc::SIGSEGV, "SIGSEGV"),
        (libc::SIGBUS, "SIGBUS"),
        (libc::SIGABRT, "SIGABRT"),
        (libc::SIGILL, "SIGILL"),
        (libc::SIGFPE, "SIGFPE"),
        (libc::SIGTRAP, "SIGTRAP"),
        (libc::SIGSYS, "SIGSYS"),
        (libc::SIGKILL, "SIGKILL"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGPIPE, "SIGPIPE"),
        (libc::SIGALRM, "SIGALRM"),
        (libc::SIGXCPU, "SIGXCPU"),
        (libc::SIGXFSZ, "SIGXFSZ"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGUSR2, "SIGUSR2"),
    ];
    names.iter().find(|(n, _)| *n == signal).map(|(_, s)| *s)
}

fn shorten(text: &str) -> String {
    const MAX: usize = 400;
    if text.len() <= MAX {
        return text.to_string();
    }
    let mut cut = MAX;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &text[..cut])
}

/// The child's exit turned into a summary (success) or a refusal reason.
pub fn verdict(finished: Finished) -> Result<String, String> {
    use std::os::unix::process::ExitStatusExt;
    if finished.status.success() {
        let line = finished.stdout.lines().rev().find(|l| !l.trim().is_empty());
        return Ok(line.unwrap_or_default().trim().to_string());
    }
    if let Some(signal) = finished.status.signal() {
        let name = signal_name(signal).unwrap_or("a signal");
        return Err(format!(
            "the library crashed the loader check with {name} (signal {signal})"
        ));
    }
    // The child reports one line, `aihub: <reason>`, as every command does; the library
    // itself may have printed more.
    let lines = || finished.stderr.lines().rev().map(str::trim);
    let reason = lines()
        .find_map(|l| l.strip_prefix("aihub: "))
        .or_else(|| lines().find(|l| !l.is_empty()));
    match reason {
        Some(reason) => Err(shorten(reason)),
        None => Err(format!(
            "the loader check failed with exit code {}",
            finished.status.code().unwrap_or(-1)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script]);
        cmd
    }

    fn run(script: &str, timeout: Duration) -> Result<String, String> {
        verdict(run_bounded(sh(script), timeout)?)
    }

    #[test]
    fn a_crash_is_named_by_its_signal() {
        let err = run("kill -BUS $$", Duration::from_secs(10)).unwrap_err();
        assert_eq!(
            err,
            format!(
                "the library crashed the loader check with SIGBUS (signal {})",
                libc::SIGBUS
            )
        );
        let err = run("kill -SEGV $$", Duration::from_secs(10)).unwrap_err();
        assert!(err.contains("SIGSEGV"), "{err}");
        let err = run("kill -ABRT $$", Duration::from_secs(10)).unwrap_err();
        assert!(err.contains("SIGABRT"), "{err}");
    }

    #[test]
    fn a_hang_is_stopped_at_the_timeout() {
        let started = Instant::now();
        let err = run("sleep 60", Duration::from_millis(300)).unwrap_err();
        assert!(err.contains("did not finish loading within"), "{err}");
        assert!(err.contains("300 ms"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the child was not killed"
        );
    }

    #[test]
    fn a_refusal_carries_the_childs_reason() {
        let err = run(
            "echo noise >&2; echo 'aihub: incompatible plugin: too old' >&2; exit 1",
            Duration::from_secs(10),
        )
        .unwrap_err();
        assert_eq!(err, "incompatible plugin: too old");
        let err = run("exit 3", Duration::from_secs(10)).unwrap_err();
        assert_eq!(err, "the loader check failed with exit code 3");
    }

    #[test]
    fn success_gives_the_summary_line() {
        let ok = run(r#"echo '{"name":"x"}'"#, Duration::from_secs(10)).unwrap();
        assert_eq!(ok, r#"{"name":"x"}"#);
    }

    #[test]
    fn a_chatty_child_does_not_block() {
        // Far more than a pipe buffer on stdout and stderr.
        let ok = run(
            "head -c 1000000 /dev/zero; head -c 1000000 /dev/zero >&2; echo done",
            Duration::from_secs(30),
        );
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn a_missing_program_is_a_refusal() {
        let check =
            LoadCheck::with_program(PathBuf::from("/nonexistent/aihub"), Duration::from_secs(1));
        let err = check.run(Path::new("/tmp/x.so")).unwrap_err();
        assert!(err.starts_with("cannot run the loader check"), "{err}");
    }

    fn own_library() -> Option<Vec<u8>> {
        // Any shared object of this machine: the C library the test binary uses.
        [
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/usr/lib/x86_64-linux-gnu/libc.so.6",
            "/lib/aarch64-linux-gnu/libc.so.6",
            "/usr/lib/aarch64-linux-gnu/libc.so.6",
            "/lib64/libc.so.6",
            "/usr/lib64/libc.so.6",
        ]
        .iter()
        .find_map(|p| std::fs::read(p).ok())
    }

    #[test]
    fn elf_checks() {
        let target = Target::native();
        assert!(check_elf(b"hello", &target)
            .unwrap_err()
            .starts_with(NOT_A_LIBRARY));
        let Some(lib) = own_library() else {
            eprintln!("no system libc found; skipping");
            return;
        };
        check_elf(&lib, &target).unwrap();
        for cut in [64, 4096, 65536, lib.len() / 2, lib.len() - 100] {
            let err = check_elf(&lib[..cut], &target).unwrap_err();
            assert!(
                err.starts_with("the library is truncated or damaged"),
                "cut at {cut}: {err}"
            );
        }
        let err = check_elf(&lib[..65536], &target).unwrap_err();
        assert!(err.contains("but the file has 65536 bytes"), "{err}");
        // Another architecture.
        let other = Target {
            machine: target.machine.map(|m| m.wrapping_add(1)),
            ..target.clone()
        };
        if other.machine.is_some() {
            let err = check_elf(&lib, &other).unwrap_err();
            assert!(err.contains("another processor"), "{err}");
        }
        let other = Target {
            bits64: !target.bits64,
            ..target.clone()
        };
        assert!(check_elf(&lib, &other).unwrap_err().contains("-bit"));
        // An executable is no shared object... but a PIE is ET_DYN too; flip the type.
        let mut exe = lib.clone();
        let off = 16; // e_type
        let et_exec: u16 = 2;
        let bytes = if target.little_endian {
            et_exec.to_le_bytes()
        } else {
            et_exec.to_be_bytes()
        };
        exe[off..off + 2].copy_from_slice(&bytes);
        assert!(check_elf(&exe, &target)
            .unwrap_err()
            .contains("not a shared object"));
    }
}
