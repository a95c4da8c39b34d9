//! A library that would crash the dynamic loader never reaches the host: truncated files
//! are refused by the static ELF check, and a file whose segments fit but whose content
//! crashes the loader is refused by the child-process check, with the signal named. The
//! server keeps serving throughout; `aihub plugins list` and `aihub plugins check` report
//! the refusal instead of dying.

use crate::common;

use common::*;
use serde_json::Value;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The sizes a copy of a real plugin is cut to.
fn cuts(len: usize) -> [usize; 4] {
    [4096, 65536, len / 2, len - 100]
}

fn echo_bytes() -> Vec<u8> {
    std::fs::read(plugin_lib(ECHO)).expect("read the echo plugin")
}

fn truncated(cut: usize) -> Vec<u8> {
    let mut bytes = echo_bytes();
    bytes.truncate(cut);
    bytes
}

/// The echo plugin with its dynamic section's string table address (DT_STRTAB) pointed at
/// unmapped memory: every segment still fits in the file, so the static check passes, but
/// the dynamic loader reads the names of the library's dependencies from there and
/// crashes (SIGSEGV). `None` when the library is not a 64-bit little-endian ELF file.
fn loader_crasher() -> Option<Vec<u8>> {
    let mut b = echo_bytes();
    if b.len() < 64 || &b[..4] != b"\x7fELF" || b[4] != 2 || b[5] != 1 {
        return None;
    }
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let u64_at = |b: &[u8], o: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[o..o + 8]);
        u64::from_le_bytes(a)
    };
    let phoff = u64_at(&b, 32) as usize;
    let (phentsize, phnum) = (u16_at(&b, 54), u16_at(&b, 56));
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let p_type = u32::from_le_bytes([b[ph], b[ph + 1], b[ph + 2], b[ph + 3]]);
        if p_type != 2 {
            continue; // not PT_DYNAMIC
        }
        let (offset, size) = (u64_at(&b, ph + 8) as usize, u64_at(&b, ph + 32) as usize);
        for entry in (offset..offset + size).step_by(16) {
            if u64_at(&b, entry) == 5 {
                // DT_STRTAB
                b[entry + 8..entry + 16].copy_from_slice(&0x7ff0_0000_0000u64.to_le_bytes());
                return Some(b);
            }
        }
    }
    None
}

fn assert_refused(entry: &Value, needle: &str) {
    assert_eq!(entry["status"], "refused", "{entry}");
    let err = entry["error"]
        .as_str()
        .unwrap_or_else(|| panic!("a refused entry needs a reason: {entry}"));
    assert!(
        err.contains(needle),
        "the reason should say {needle:?}: {err}"
    );
}

/// Writes `bytes` to a file outside the plugin dir (the source of a replace).
fn staged(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write staged library");
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_libraries_dropped_in_are_refused_and_the_server_keeps_serving() {
    let server = TestServer::start(ServerOptions::new().plugin(ECHO)).await;
    let stage = tempfile::tempdir().unwrap();
    let len = echo_bytes().len();
    for cut in cuts(len) {
        let name = format!("libtrunc_{cut}.so");
        let src = staged(stage.path(), &name, &truncated(cut));
        server.replace_plugin(&src, &name);
        let entry = server
            .wait_for_plugin_entry(&name, HOT_ADD_TIMEOUT, |e| e["status"] == "refused")
            .await;
        assert_refused(&entry, "the library is truncated or damaged");
        assert_refused(&entry, &format!("the file has {cut} bytes"));
        assert!(entry["name"].is_null(), "{entry}");
        server.assert_echo_still_works().await;
    }
    let logs = server.logs();
    assert!(
        logs.contains("plugin refused") && logs.contains("libtrunc_4096.so"),
        "the refusal should be logged\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_libraries_present_at_start_are_refused() {
    let len = echo_bytes().len();
    let mut opts = ServerOptions::new().plugin(ECHO);
    for cut in cuts(len) {
        opts = opts.file(&format!("libtrunc_{cut}.so"), truncated(cut));
    }
    let server = TestServer::start(opts).await;
    let listing = server.plugin_listing().await;
    for cut in cuts(len) {
        let entry = plugin_entry(&listing, &format!("libtrunc_{cut}.so"))
            .unwrap_or_else(|| panic!("libtrunc_{cut}.so missing: {listing:#}"));
        assert_refused(&entry, "the library is truncated or damaged");
    }
    assert_eq!(plugin_entry(&listing, ECHO).unwrap()["status"], "loaded");
    server.assert_echo_still_works().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_truncated_replacement_keeps_the_previous_version_serving() {
    let server = TestServer::start(ServerOptions::new().plugin(ECHO).plugin(HELLO)).await;
    let stage = tempfile::tempdir().unwrap();
    let hello = std::fs::read(plugin_lib(HELLO)).unwrap();
    let src = staged(stage.path(), "hello-cut.so", &hello[..hello.len() / 2]);
    server.replace_plugin(&src, HELLO);
    let entry = server
        .wait_for_plugin_entry(HELLO, HOT_ADD_TIMEOUT, |e| e["status"] == "refused")
        .await;
    assert_refused(&entry, "truncated or damaged");
    assert_eq!(entry["serving_version"], "0.1.0", "{entry}");
    let resp = server.post_chat(&chat_body("hello/world", "Ada")).await;
    assert_eq!(resp.status(), 200);
    let reply: Value = resp.json().await.unwrap();
    assert_eq!(
        reply["choices"][0]["message"]["content"],
        "Hello from hello-plugin v0.1.0: Ada"
    );
    server.assert_echo_still_works().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_library_that_crashes_the_loader_is_refused_with_the_signal_named() {
    let Some(crasher) = loader_crasher() else {
        eprintln!("the echo plugin is not a 64-bit little-endian ELF file; skipping");
        return;
    };
    // At start.
    let server = TestServer::start(
        ServerOptions::new()
            .plugin(ECHO)
            .file("libcrash_at_start.so", crasher.clone()),
    )
    .await;
    let listing = server.plugin_listing().await;
    let entry = plugin_entry(&listing, "libcrash_at_start.so")
        .unwrap_or_else(|| panic!("libcrash_at_start.so missing: {listing:#}"));
    assert_refused(
        &entry,
        "the library crashed the loader check with SIGSEGV (signal 11)",
    );
    server.assert_echo_still_works().await;

    // Dropped in while running.
    let stage = tempfile::tempdir().unwrap();
    let src = staged(stage.path(), "crash.so", &crasher);
    server.replace_plugin(&src, "libcrash.so");
    let entry = server
        .wait_for_plugin_entry("libcrash.so", HOT_ADD_TIMEOUT, |e| e["status"] == "refused")
        .await;
    assert_refused(&entry, "crashed the loader check with SIGSEGV");
    server.assert_echo_still_works().await;
    let kept: Vec<_> = files_under(&server.data_dir().join("loaded"))
        .into_iter()
        .filter(|f| f.to_string_lossy().contains("libcrash"))
        .collect();
    assert!(
        kept.is_empty(),
        "refused content keeps no private copy: {kept:?}"
    );
    assert!(
        server.logs().contains("crashed the loader check"),
        "the refusal should be logged\n{}",
        server.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_loader_check_that_takes_too_long_is_stopped_and_the_library_refused() {
    // No plugin loads within 1 ms (the child alone takes longer to start): the timeout
    // path, against the real binary.
    let server = TestServer::start(
        ServerOptions::new()
            .plugin(ECHO)
            .env("AIHUB_PLUGINS__CHECK_TIMEOUT_MS", "1"),
    )
    .await;
    let listing = server.plugin_listing().await;
    let entry = plugin_entry(&listing, ECHO).expect("echo listed");
    assert_refused(
        &entry,
        "did not finish loading within plugins.check_timeout_ms (1 ms)",
    );
    assert!(server.is_running());
    let resp = server.get("/healthz").await;
    assert_eq!(resp.status(), 200);
}

#[test]
fn plugins_list_and_check_report_damaged_libraries_without_dying() {
    let dir = tempfile::tempdir().unwrap();
    let libs = dir.path().join("libs");
    std::fs::create_dir_all(&libs).unwrap();
    std::fs::copy(plugin_lib(ECHO), libs.join(ECHO)).unwrap();
    let len = echo_bytes().len();
    for cut in cuts(len) {
        std::fs::write(libs.join(format!("libtrunc_{cut}.so")), truncated(cut)).unwrap();
    }
    let crasher = loader_crasher();
    if let Some(bytes) = &crasher {
        std::fs::write(libs.join("libcrash.so"), bytes).unwrap();
    }
    let libs_arg = libs.to_str().unwrap();

    let (status, out, err) = run_aihub_timeout(
        dir.path(),
        &["plugins", "list", libs_arg],
        Duration::from_secs(60),
    );
    let status = status.expect("plugins list finished");
    assert_eq!(status.signal(), None, "plugins list was killed: {err}");
    assert!(status.success(), "plugins list: {out}\n{err}");
    for cut in cuts(len) {
        let line = out
            .lines()
            .skip_while(|l| !l.contains(&format!("libtrunc_{cut}.so")))
            .take(2)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(line.contains("refused"), "{out}");
        assert!(line.contains("truncated or damaged"), "{out}");
    }
    assert!(
        out.lines()
            .any(|l| l.contains(ECHO) && l.contains("loaded")),
        "{out}"
    );
    if crasher.is_some() {
        assert!(
            out.contains("crashed the loader check with SIGSEGV"),
            "{out}"
        );
    }

    for cut in cuts(len) {
        let file = libs.join(format!("libtrunc_{cut}.so"));
        let (status, out, err) = run_aihub_timeout(
            dir.path(),
            &["plugins", "check", file.to_str().unwrap()],
            Duration::from_secs(30),
        );
        let status = status.expect("plugins check finished");
        assert_eq!(status.signal(), None, "plugins check was killed: {err}");
        assert_eq!(status.code(), Some(1), "{out}\n{err}");
        assert!(out.is_empty(), "{out}");
        assert!(
            err.trim()
                .starts_with("aihub: the library is truncated or damaged:"),
            "{err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }

    // A good library: a one-line JSON summary, exit 0, with or without --config.
    let echo = libs.join(ECHO);
    let (status, out, err) = run_aihub_timeout(
        dir.path(),
        &["plugins", "check", echo.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert!(status.is_some_and(|s| s.success()), "{err}");
    let summary: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(summary["name"], "echo", "{summary}");
    assert_eq!(
        summary["prefixes"],
        serde_json::json!(["echo"]),
        "{summary}"
    );
    let cfg = dir.path().join("some.toml");
    std::fs::write(&cfg, "[server]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    let (status, _, err) = run_aihub_timeout(
        dir.path(),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "plugins",
            "check",
            echo.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    assert!(status.is_some_and(|s| s.success()), "{err}");
    // The check opened no store: no database was made in the working directory.
    assert!(!dir.path().join("aihub.db").exists());
}
