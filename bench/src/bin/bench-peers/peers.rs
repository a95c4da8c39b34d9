//! The two peers: the pinned versions (the one place they are set), their install into
//! `target/peers/` (reused when the pinned version is already there), and how each is
//! started and addressed.

use super::procs::{self, Proc, TempDir};
use aihub_bench::loadgen::{self, RequestSpec};
use http::header::{HeaderName, HeaderValue};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// LiteLLM proxy from PyPI (`litellm[proxy]`). 1.106.12 is the newest release whose
/// `proxy` extra resolves on PyPI as seen from this machine (1.108 and later pin
/// `litellm-proxy-extras` / `litellm-proxy` versions that are not published there).
pub const LITELLM_VERSION: &str = "1.106.12";
/// Portkey's open-source gateway from npm.
pub const PORTKEY_VERSION: &str = "1.15.2";

/// The upstream key every gateway sends to the mock (the mock accepts any).
pub const MOCK_KEY: &str = "sk-bench-mock-key";
const LITELLM_MASTER_KEY: &str = "sk-bench-litellm-master-key";

/// A gateway started by this driver, in a process group of its own: dropping it kills
/// the whole group (LiteLLM's workers are children of its supervisor, not of this
/// process, so `PR_SET_PDEATHSIG` on the supervisor alone would orphan them).
pub struct Group {
    pub proc: Proc,
}

impl Group {
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Ok(pgid) = i32::try_from(self.proc.pid()) {
            // SAFETY: kill has no memory-safety preconditions; the group is ours (the
            // child was started as the leader of a new group).
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

/// A peer that is up and answering.
pub struct Running {
    pub group: Group,
    pub base: String,
    pub version: String,
    /// How it was started, for the report.
    pub how: String,
    pub plain: Arc<RequestSpec>,
    pub stream: Arc<RequestSpec>,
    /// Its stdout and stderr.
    pub log: PathBuf,
}

/// The last line of a peer's log that names an error, for the report.
pub fn log_hint(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("Error") || l.contains("error"))?;
    Some(line.trim().chars().take(200).collect())
}

fn progress(msg: impl AsRef<str>) {
    eprintln!("bench-peers: {}", msg.as_ref());
}

/// Runs an installer command to completion (in a blocking thread, so a signal still
/// stops the driver), its output appended to `log`.
async fn run_logged(mut cmd: Command, log: &Path, what: &str) -> Result<(), String> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::null()).stdout(file).stderr(err);
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let what = what.to_string();
    let log = log.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let status = cmd
            .status()
            .map_err(|e| format!("cannot run {what}: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "{what} failed ({status}); last lines of {}:\n{}",
                log.display(),
                procs::tail(&log, 8)
            ))
        }
    })
    .await
    .map_err(|e| format!("{e}"))?
}

fn litellm_installed(venv: &Path) -> Option<String> {
    let out = Command::new(venv.join("bin/python"))
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('litellm'))",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && venv.join("bin/litellm").is_file()).then_some(v)
}

/// `target/peers/litellm/`: a venv with `litellm[proxy]==LITELLM_VERSION`.
pub async fn install_litellm(peers_dir: &Path) -> Result<PathBuf, String> {
    let venv = peers_dir.join("litellm");
    if litellm_installed(&venv).as_deref() == Some(LITELLM_VERSION) {
        return Ok(venv);
    }
    std::fs::create_dir_all(peers_dir)
        .map_err(|e| format!("cannot create {}: {e}", peers_dir.display()))?;
    let log = peers_dir.join("litellm-install.log");
    if !venv.join("bin/python").is_file() {
        progress(format!("creating a venv in {}", venv.display()));
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "venv"]).arg(&venv);
        run_logged(cmd, &log, "python3 -m venv").await?;
    }
    progress(format!(
        "installing litellm[proxy]=={LITELLM_VERSION} from PyPI (a few minutes the first time; log {})",
        log.display()
    ));
    let mut cmd = Command::new(venv.join("bin/python"));
    cmd.args(["-m", "pip", "install", "--disable-pip-version-check", "-q"])
        .arg(format!("litellm[proxy]=={LITELLM_VERSION}"));
    run_logged(cmd, &log, "pip install litellm[proxy]").await?;
    match litellm_installed(&venv) {
        Some(v) if v == LITELLM_VERSION => Ok(venv),
        other => Err(format!(
            "after pip install, the venv holds litellm {other:?}, not {LITELLM_VERSION}"
        )),
    }
}

fn portkey_package(dir: &Path) -> PathBuf {
    dir.join("node_modules/@portkey-ai/gateway")
}

fn portkey_installed(dir: &Path) -> Option<String> {
    let pkg = portkey_package(dir);
    let text = std::fs::read_to_string(pkg.join("package.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let version = v.get("version")?.as_str()?.to_string();
    pkg.join("build/start-server.js")
        .is_file()
        .then_some(version)
}

/// `target/peers/portkey/`: `npm install --prefix` of `@portkey-ai/gateway@PORTKEY_VERSION`.
pub async fn install_portkey(peers_dir: &Path) -> Result<PathBuf, String> {
    let dir = peers_dir.join("portkey");
    if portkey_installed(&dir).as_deref() == Some(PORTKEY_VERSION) {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let log = peers_dir.join("portkey-install.log");
    progress(format!(
        "installing @portkey-ai/gateway@{PORTKEY_VERSION} from npm (log {})",
        log.display()
    ));
    let mut cmd = Command::new("npm");
    cmd.args([
        "install",
        "--no-audit",
        "--no-fund",
        "--save-exact",
        "--prefix",
    ])
    .arg(&dir)
    .arg(format!("@portkey-ai/gateway@{PORTKEY_VERSION}"));
    run_logged(cmd, &log, "npm install @portkey-ai/gateway").await?;
    match portkey_installed(&dir) {
        Some(v) if v == PORTKEY_VERSION => Ok(dir),
        other => Err(format!(
            "after npm install, {} holds version {other:?}, not {PORTKEY_VERSION}",
            dir.display()
        )),
    }
}

/// A port that was free a moment ago (the peers take a port number, not port 0).
fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

/// Starts `cmd` as the leader of a new process group, output into `tmp/<name>.log`.
fn spawn_group(name: &'static str, mut cmd: Command, tmp: &TempDir) -> Result<Group, String> {
    let log_path = tmp.join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0);
    Ok(Group {
        proc: procs::spawn(name, cmd)?,
    })
}

/// Polls `GET uri` until it answers 200 (or the process dies, or `timeout` passes).
async fn wait_ready(
    group: &mut Group,
    uri: &str,
    timeout: Duration,
    log: &Path,
) -> Result<(), String> {
    let client = loadgen::client(1);
    let deadline = Instant::now() + timeout;
    let fail = |what: String| format!("{what}; log tail:\n{}", procs::tail(log, 15));
    loop {
        if super::aihub::get_status(&client, uri).await == Some(200) {
            return Ok(());
        }
        group.proc.check_alive().map_err(fail)?;
        if Instant::now() > deadline {
            return Err(fail(format!("{uri} did not answer 200 within {timeout:?}")));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn specs(
    base: &str,
    model: &str,
    bearer: &str,
    extra: &[(&'static str, String)],
    min_events: u64,
) -> Result<(Arc<RequestSpec>, Arc<RequestSpec>), String> {
    let mut out = Vec::new();
    for stream in [false, true] {
        let uri = format!("{base}/v1/chat/completions")
            .parse()
            .map_err(|e| format!("bad uri: {e}"))?;
        let mut s =
            RequestSpec::post_json(uri, loadgen::chat_body(model, stream), Some(bearer), stream)?;
        for (k, v) in extra {
            let v = HeaderValue::from_str(v).map_err(|e| format!("bad header {k}: {e}"))?;
            s.headers.push((HeaderName::from_static(k), v));
        }
        if stream {
            s.min_events = min_events;
        }
        out.push(Arc::new(s));
    }
    let stream = out.pop().ok_or("no stream spec")?;
    let plain = out.pop().ok_or("no plain spec")?;
    Ok((plain, stream))
}

/// LiteLLM proxy: one model routed to the mock as an OpenAI-compatible upstream, a master
/// key, no database (so no spend/call logs), one uvicorn worker per core.
pub async fn start_litellm(
    venv: &Path,
    tmp: &TempDir,
    mock: std::net::SocketAddr,
    workers: usize,
    min_events: u64,
) -> Result<Running, String> {
    let config = tmp.join("litellm.yaml");
    std::fs::write(
        &config,
        format!(
            "model_list:\n  - model_name: gpt-4o-mini\n    litellm_params:\n      model: openai/gpt-4o-mini\n      api_base: http://{mock}/v1\n      api_key: {MOCK_KEY}\n\
             general_settings:\n  master_key: {LITELLM_MASTER_KEY}\n"
        ),
    )
    .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    let port = free_port()?;
    let mut cmd = Command::new(venv.join("bin/litellm"));
    cmd.current_dir(&tmp.path)
        .arg("--config")
        .arg(&config)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--num_workers", &workers.to_string()])
        // No database: LiteLLM then keeps no spend logs, keys or call records.
        .env_remove("DATABASE_URL")
        // The bundled model price map, instead of fetching it from GitHub at start.
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .env("LITELLM_LOG", "ERROR");
    let how = format!(
        "`litellm --config litellm.yaml --host 127.0.0.1 --port {port} --num_workers {workers}` (uvicorn), model `gpt-4o-mini` → `openai/gpt-4o-mini` with `api_base` = the mock, a master key, no `DATABASE_URL`"
    );
    let mut group = spawn_group("litellm", cmd, tmp)?;
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(
        &mut group,
        &format!("{base}/health/liveliness"),
        Duration::from_secs(180),
        &tmp.join("litellm.log"),
    )
    .await?;
    let (plain, stream) = specs(&base, "gpt-4o-mini", LITELLM_MASTER_KEY, &[], min_events)?;
    Ok(Running {
        group,
        base,
        version: LITELLM_VERSION.to_string(),
        how,
        plain,
        stream,
        log: tmp.join("litellm.log"),
    })
}

/// Portkey's gateway on node: the provider and the mock as its custom host travel in
/// each request's headers, the upstream key in its Authorization header (passed through).
pub async fn start_portkey(
    dir: &Path,
    tmp: &TempDir,
    mock: std::net::SocketAddr,
    min_events: u64,
) -> Result<Running, String> {
    let port = free_port()?;
    let script = portkey_package(dir).join("build/start-server.js");
    let mut cmd = Command::new("node");
    cmd.current_dir(&tmp.path)
        .arg(&script)
        .arg(format!("--port={port}"))
        .arg("--headless")
        .env("NODE_ENV", "production");
    let how = format!(
        "`NODE_ENV=production node build/start-server.js --port={port} --headless` (one node process; it listens on all interfaces, there is no host option), headers `x-portkey-provider: openai`, `x-portkey-custom-host: http://{mock}/v1`, `Authorization: Bearer <upstream key>`"
    );
    let mut group = spawn_group("portkey", cmd, tmp)?;
    let base = format!("http://127.0.0.1:{port}");
    wait_ready(
        &mut group,
        &format!("{base}/"),
        Duration::from_secs(60),
        &tmp.join("portkey.log"),
    )
    .await?;
    let extra = [
        ("x-portkey-provider", "openai".to_string()),
        ("x-portkey-custom-host", format!("http://{mock}/v1")),
    ];
    let (plain, stream) = specs(&base, "gpt-4o-mini", MOCK_KEY, &extra, min_events)?;
    Ok(Running {
        group,
        base,
        version: portkey_installed(dir).unwrap_or_else(|| PORTKEY_VERSION.to_string()),
        how,
        plain,
        stream,
        log: tmp.join("portkey.log"),
    })
}
