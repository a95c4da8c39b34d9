//! Starting aihub the way `make bench` does (temp data dir, release openai plugin, provider
//! `mock` pointed at the mock upstream, an app key, call logging on) and reading its
//! status. Shared by the `bench` and `bench-peers` drivers (the latter includes this file).

use super::procs::{self, Proc, TempDir};
use aihub_bench::loadgen::{self, HttpClient};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Creates aihub's data dir and app key, starts `aihub serve` and waits until it is ready.
pub async fn start_aihub(
    tmp: &TempDir,
    name: &str,
    extra_env: &[(&str, &str)],
    bin: &Path,
    openai_so: &Path,
    mock_addr: std::net::SocketAddr,
) -> Result<(Proc, std::net::SocketAddr, String), String> {
    let data_dir = tmp.join(format!("{name}-data"));
    let plugin_dir = data_dir.join("plugins");
    std::fs::create_dir_all(&plugin_dir)
        .map_err(|e| format!("cannot create {}: {e}", plugin_dir.display()))?;
    std::fs::copy(openai_so, plugin_dir.join("libaihub_openai.so"))
        .map_err(|e| format!("cannot copy the openai plugin: {e}"))?;
    let config = tmp.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "[[providers]]\nprefix = \"mock\"\nplugin = \"openai\"\nbase_url = \"http://{mock_addr}/v1\"\napi_key_env = \"BENCH_MOCK_KEY\"\n"
        ),
    )
    .map_err(|e| format!("cannot write {}: {e}", config.display()))?;

    let command = |sub: &[&str]| {
        let mut cmd = Command::new(bin);
        // Only this run's settings: no AIHUB_* from the caller's environment.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("AIHUB_") {
                cmd.env_remove(&k);
            }
        }
        cmd.current_dir(&tmp.path)
            .arg("--config")
            .arg(&config)
            .args(sub)
            .env("AIHUB_STORAGE__DATA_DIR", &data_dir)
            .env("AIHUB_SERVER__LISTEN", "127.0.0.1:0")
            .env("AIHUB_SERVER__SHUTDOWN_GRACE_MS", "1000")
            // Every bench connection comes from 127.0.0.1: 1,000 held streams plus the
            // load generator's pool would meet the per-peer cap meant for real clients.
            .env("AIHUB_SERVER__MAX_CONNECTIONS_PER_PEER", "0")
            .env(
                "AIHUB_ADMIN_TOKEN",
                "bench-admin-token-0123456789abcdef0123456789",
            )
            .env("BENCH_MOCK_KEY", "sk-bench-mock-key")
            .env("RUST_LOG", "warn")
            .envs(extra_env.iter().copied())
            .stdin(Stdio::null());
        cmd
    };

    let out = command(&["apps", "create", "bench"])
        .output()
        .map_err(|e| format!("cannot run aihub apps create: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "aihub apps create failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let key = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .ok_or("aihub apps create printed no key")?;

    let stderr = tmp.join(format!("{name}.stderr"));
    let log = std::fs::File::create(&stderr).map_err(|e| e.to_string())?;
    let out_log =
        std::fs::File::create(tmp.join(format!("{name}.stdout"))).map_err(|e| e.to_string())?;
    let mut cmd = command(&["serve"]);
    cmd.stdout(out_log).stderr(log);
    let mut proc = procs::spawn("aihub", cmd)?;

    let addr_file = data_dir.join("aihub.addr");
    let deadline = Instant::now() + Duration::from_secs(30);
    let fail = |what: String| format!("{what}\naihub log tail:\n{}", procs::tail(&stderr, 20));
    let addr = loop {
        if let Ok(s) = std::fs::read_to_string(&addr_file) {
            if let Ok(a) = s.trim().parse::<std::net::SocketAddr>() {
                break a;
            }
        }
        proc.check_alive().map_err(fail)?;
        if Instant::now() > deadline {
            return Err(fail("aihub wrote no address file within 30 s".into()));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    let client = loadgen::client(1);
    loop {
        if get_status(&client, &format!("http://{addr}/readyz")).await == Some(200) {
            break;
        }
        proc.check_alive().map_err(fail)?;
        if Instant::now() > deadline {
            return Err(fail("aihub was not ready within 30 s".into()));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Ok((proc, addr, key))
}

pub fn aihub_version(bin: &Path) -> String {
    Command::new(bin)
        .arg("version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

pub async fn get_status(client: &HttpClient, uri: &str) -> Option<u16> {
    get(client, uri).await.map(|(status, _)| status)
}

pub async fn get(client: &HttpClient, uri: &str) -> Option<(u16, bytes::Bytes)> {
    let req = http::Request::get(uri)
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .ok()?;
    let resp = tokio::time::timeout(Duration::from_secs(2), client.request(req))
        .await
        .ok()?
        .ok()?;
    let status = resp.status().as_u16();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .ok()?;
    Some((status, body.to_bytes()))
}

/// aihub's call-log counters from `/readyz` (`{"call_log": {"queued", "written",
/// "dropped"}}`), once the queue has drained (bounded wait).
pub async fn call_log_stats(base: &str) -> Option<serde_json::Value> {
    let client = loadgen::client(1);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = get(&client, &format!("{base}/readyz")).await?;
        if status != 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
        let log = v.get("call_log")?.clone();
        let queued = log.get("queued").and_then(|q| q.as_u64()).unwrap_or(0);
        if queued == 0 || Instant::now() > deadline {
            return Some(log);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
