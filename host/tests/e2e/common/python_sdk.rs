//! The official OpenAI and Anthropic Python SDKs, installed with pip into one venv kept in
//! the target directory (made once, reused by later runs), and a way to run a script
//! with them against the gateway.

use super::lib_dir;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Bump when the package list changes: a venv from another list is made again.
const PACKAGES: &[&str] = &[
    "openai>=1.66",
    "anthropic>=0.40",
    "botocore>=1.34",
    "stripe>=7",
];

/// The venv's python, made on first use. Tests of one binary run in parallel: the first
/// makes the venv while the others wait for it.
pub fn sdk_python() -> PathBuf {
    static VENV: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    VENV.get_or_init(make_venv).clone()
}

fn make_venv() -> PathBuf {
    let venv = lib_dir().join("sdk-venv");
    let python = venv.join("bin/python");
    let ready = venv.join(".ready");
    let want = PACKAGES.join(" ");
    if std::fs::read_to_string(&ready).is_ok_and(|s| s == want) {
        return python;
    }
    let run = |cmd: &mut Command, what: &str| {
        let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            out.status.success(),
            "{what} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let _ = std::fs::remove_dir_all(&venv);
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
    );
    run(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(PACKAGES),
        "pip install the SDKs",
    );
    std::fs::write(&ready, want).expect("mark the venv ready");
    python
}

/// Runs `script` with `args`; its stdout must be one JSON document.
pub fn run_script(python: &Path, script: &str, args: &[String]) -> Value {
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("ANTHROPIC_BASE_URL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "the SDK script failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "script output is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}
