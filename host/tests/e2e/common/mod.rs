//! Test harness for the end-to-end tests: runs the real `aihub` binary on a real socket
//! with a private data dir and plugin dir, plus a scriptable mock upstream (hyper 1).
//!
//! Every test file includes this module; not every file uses every helper.
#![allow(dead_code)]

use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::collections::hash_map::RandomState;
use std::convert::Infallible;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------
// Locating the binary and the plugin libraries
// ---------------------------------------------------------------------------------------

pub const ECHO: &str = "libaihub_echo.so";
pub const OPENAI: &str = "libaihub_openai.so";
pub const HELLO: &str = "libhello_plugin.so";
pub const FAULTY: &str = "libaihub_test_faulty_plugin.so";
pub const DUPE: &str = "libaihub_test_dupe_plugin.so";
pub const OLD_ABI: &str = "libaihub_test_old_abi_plugin.so";

/// How long a hot-added library may take to become visible in the tests (the contract
/// says 2 s; the tests are generous).
pub const HOT_ADD_TIMEOUT: Duration = Duration::from_secs(5);

pub fn aihub_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_aihub"))
}

/// The directory cargo puts the binary and the workspace's cdylibs in (`target/debug`).
pub fn lib_dir() -> PathBuf {
    aihub_bin()
        .parent()
        .expect("the aihub binary has a parent directory")
        .to_path_buf()
}

/// Path of a workspace plugin library; panics with a hint when it was not built.
pub fn plugin_lib(name: &str) -> PathBuf {
    let p = lib_dir().join(name);
    assert!(
        p.is_file(),
        "plugin library {} is missing: build the workspace first (`cargo build --workspace`, \
         which `make test` does before `cargo test`)",
        p.display()
    );
    p
}

/// The hello plugin rebuilt with HELLO_PLUGIN_VERSION=2.0.0.
pub fn hello_v2_lib() -> PathBuf {
    let p = lib_dir().join("test-plugins").join("libhello_plugin_v2.so");
    assert!(
        p.is_file(),
        "{} is missing: run `make test-fixtures` (it builds hello-plugin with \
         HELLO_PLUGIN_VERSION=2.0.0 and copies it there)",
        p.display()
    );
    p
}

pub fn random_hex() -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

/// A reqwest client that never uses a proxy (tests talk to 127.0.0.1 only).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("build reqwest client")
}

/// Like [`http_client`], sending `key` as the app key on every request (a request that
/// sets its own `Authorization` header keeps it).
pub fn http_client_with_key(key: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {key}").parse().expect("header value"),
    );
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .default_headers(headers)
        .build()
        .expect("build reqwest client")
}

// ---------------------------------------------------------------------------------------
// The server under test
// ---------------------------------------------------------------------------------------

#[derive(Default, Clone)]
pub struct ServerOptions {
    /// Library file names (in the target dir) copied into the plugin dir before start.
    plugins: Vec<String>,
    /// Raw files (name, bytes) written into the plugin dir before start.
    files: Vec<(String, Vec<u8>)>,
    /// Config TOML written to `<tmp>/aihub.toml` and passed with `--config`.
    config: Option<String>,
    env: Vec<(String, String)>,
    /// Start without `aihub apps create test` first (so nothing touches the store before
    /// the server does); `app_key()` is then empty.
    no_app: bool,
}

impl ServerOptions {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn plugin(mut self, lib: &str) -> Self {
        self.plugins.push(lib.to_string());
        self
    }

    pub fn file(mut self, name: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.files.push((name.to_string(), bytes.into()));
        self
    }

    pub fn config(mut self, toml: impl Into<String>) -> Self {
        self.config = Some(toml.into());
        self
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_string(), value.into()));
        self
    }

    /// The store at `url` (`AIHUB_STORAGE__URL`), e.g. a throwaway Postgres database.
    pub fn storage_url(self, url: &str) -> Self {
        self.env("AIHUB_STORAGE__URL", url)
    }

    /// Skip making the `test` app before the server starts.
    pub fn without_app(mut self) -> Self {
        self.no_app = true;
        self
    }
}

/// `aihub` with the test environment: private data and plugin dirs, any free port, the
/// given config file, and nothing inherited from the caller's `AIHUB_*` variables.
fn aihub_command(tmp: &Path, opts: &ServerOptions, admin_token: &str) -> Command {
    let plugin_dir = tmp.join("plugins");
    let mut cmd = Command::new(aihub_bin());
    if let Some(cfg) = &opts.config {
        let cfg_path = tmp.join("aihub.toml");
        std::fs::write(&cfg_path, cfg).expect("write config");
        cmd.arg("--config").arg(&cfg_path);
    }
    // Keep the caller's environment from leaking into the server's configuration.
    for (k, _) in std::env::vars() {
        if k.starts_with("AIHUB_") {
            cmd.env_remove(&k);
        }
    }
    for k in [
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ] {
        cmd.env_remove(k);
    }
    cmd.current_dir(tmp)
        .env("AIHUB_SERVER__LISTEN", "127.0.0.1:0")
        .env("AIHUB_STORAGE__DATA_DIR", tmp)
        .env("AIHUB_PLUGINS__DIR", &plugin_dir)
        .env("AIHUB_ADMIN_TOKEN", admin_token)
        .env("RUST_LOG", "info")
        .env("NO_PROXY", "127.0.0.1,localhost");
    for (k, v) in &opts.env {
        cmd.env(k, v);
    }
    cmd
}

pub struct TestServer {
    child: Mutex<Child>,
    pid: u32,
    tmp: TempDir,
    opts: ServerOptions,
    addr: SocketAddr,
    admin_token: String,
    app_key: String,
    client: reqwest::Client,
}

impl TestServer {
    pub fn data_dir(&self) -> &Path {
        self.tmp.path()
    }

    pub fn plugin_dir(&self) -> PathBuf {
        self.tmp.path().join("plugins")
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url(), path)
    }

    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// A client that sends the test app's key on every request.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The key of the app `test`, made with `aihub apps create` before the server started.
    pub fn app_key(&self) -> &str {
        &self.app_key
    }

    /// Starts `aihub serve` and waits until it is listening and `/readyz` says 200.
    pub async fn start(opts: ServerOptions) -> TestServer {
        let tmp = tempfile::Builder::new()
            .prefix("aihub-test-")
            .tempdir()
            .expect("create temp dir");
        let plugin_dir = tmp.path().join("plugins");
        std::fs::create_dir_all(&plugin_dir).expect("create plugin dir");
        for lib in &opts.plugins {
            let src = plugin_lib(lib);
            std::fs::copy(&src, plugin_dir.join(lib))
                .unwrap_or_else(|e| panic!("copy {} into the plugin dir: {e}", src.display()));
        }
        for (name, bytes) in &opts.files {
            std::fs::write(plugin_dir.join(name), bytes).expect("write plugin dir file");
        }

        let admin_token = format!("test-admin-{}", random_hex());
        std::fs::File::create(tmp.path().join("stdout.log")).unwrap();
        std::fs::File::create(tmp.path().join("stderr.log")).unwrap();

        let app_key = if opts.no_app {
            String::new()
        } else {
            let mut cmd = aihub_command(tmp.path(), &opts, &admin_token);
            let out = cmd
                .args(["apps", "create", "test"])
                .stdin(Stdio::null())
                .output()
                .expect("run aihub apps create");
            assert!(
                out.status.success(),
                "aihub apps create failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        assert!(
            opts.no_app || app_key.starts_with("ak-"),
            "unexpected app key {app_key:?}"
        );

        let client = http_client_with_key(&app_key);
        let (child, addr) = spawn_serve(tmp.path(), &opts, &admin_token, &client).await;
        TestServer {
            pid: child.id(),
            child: Mutex::new(child),
            tmp,
            opts,
            addr,
            admin_token,
            app_key,
            client,
        }
    }

    /// Starts `aihub serve` again on the same data dir, with the same options, admin token
    /// and app key (the `test` app is not made again). A server still running is killed
    /// first (SIGKILL): stop it yourself (SIGTERM + [`TestServer::wait_exit`]) for a
    /// graceful stop. The logs of both runs stay in `stdout.log`/`stderr.log`.
    pub async fn restart(&mut self) {
        {
            let mut child = self.child.lock().unwrap();
            if child.try_wait().expect("try_wait").is_none() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        let (child, addr) =
            spawn_serve(self.tmp.path(), &self.opts, &self.admin_token, &self.client).await;
        self.pid = child.id();
        self.addr = addr;
        *self.child.lock().unwrap() = child;
    }

    /// Runs an `aihub` command (e.g. `["migrate"]`) with this server's environment and data
    /// dir, and returns its output.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        aihub_command(self.tmp.path(), &self.opts, &self.admin_token)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run aihub")
    }

    /// stdout + stderr of the server so far.
    pub fn logs(&self) -> String {
        read_logs(self.tmp.path())
    }

    // ---- requests ----

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub async fn post_chat(&self, body: &Value) -> reqwest::Response {
        self.post_json("/v1/chat/completions", body).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// POST raw bytes as `application/json`.
    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub async fn admin_post(&self, path: &str) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// `GET /api/admin/plugins` as JSON (asserts 200).
    pub async fn plugin_listing(&self) -> Value {
        let resp = self.admin_get("/api/admin/plugins").await;
        assert_eq!(resp.status(), 200, "GET /api/admin/plugins");
        resp.json().await.expect("plugin listing is JSON")
    }

    /// Polls the admin listing until `pred` holds for the entry of `file` (by file name).
    pub async fn wait_for_plugin_entry(
        &self,
        file: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let listing = self.plugin_listing().await;
            if let Some(entry) = plugin_entry(&listing, file) {
                if pred(&entry) {
                    return entry;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "plugin entry for {file} did not reach the expected state within {timeout:?}; \
                     last listing: {listing:#}\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Posts `body` until it answers 200 (or `timeout`); returns the final JSON reply.
    pub async fn wait_routable(&self, body: &Value, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let resp = self.post_chat(body).await;
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            if status == 200 {
                return serde_json::from_str(&text).expect("200 reply is JSON");
            }
            if Instant::now() > deadline {
                panic!(
                    "{} did not become routable within {timeout:?}; last answer {status}: {text}\n{}",
                    body["model"],
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    // ---- plugin dir ----

    /// Copies a workspace library into the plugin dir under its own name (plain copy).
    pub fn install_plugin(&self, lib: &str) {
        let src = plugin_lib(lib);
        std::fs::copy(&src, self.plugin_dir().join(lib)).expect("copy plugin");
    }

    /// Writes `src` to a hidden temp name in the plugin dir, then renames it over `name`:
    /// the way an operator replaces a library.
    pub fn replace_plugin(&self, src: &Path, name: &str) {
        let tmp = self.plugin_dir().join(format!(".tmp-{}", random_hex()));
        std::fs::copy(src, &tmp).expect("copy plugin to temp name");
        std::fs::rename(&tmp, self.plugin_dir().join(name)).expect("rename plugin into place");
    }

    // ---- process ----

    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid.to_string())
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{sig} {} failed", self.pid);
    }

    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    pub fn sighup(&self) {
        self.signal("HUP");
    }

    pub fn sigint(&self) {
        self.signal("INT");
    }

    /// `None` while the process runs.
    pub fn try_exit_status(&self) -> Option<ExitStatus> {
        self.child.lock().unwrap().try_wait().expect("try_wait")
    }

    pub fn is_running(&self) -> bool {
        self.try_exit_status().is_none()
    }

    /// Waits for the process to exit; `None` on timeout.
    pub async fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.try_exit_status() {
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Asserts the process is alive and still answers a chat through echo.
    pub async fn assert_echo_still_works(&self) {
        assert!(self.is_running(), "the aihub process died\n{}", self.logs());
        let resp = self
            .post_chat(&json!({
                "model": "echo/echo-1",
                "messages": [{"role": "user", "content": "still alive"}]
            }))
            .await;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 200, "echo after the failure: {body}");
        assert_eq!(body["choices"][0]["message"]["content"], "still alive");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Ok(mut child) = self.child.lock() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let logs = read_logs(self.tmp.path());
            let tail: String = {
                let lines: Vec<&str> = logs.lines().collect();
                let from = lines.len().saturating_sub(80);
                lines[from..].join("\n")
            };
            eprintln!("---- aihub logs (last 80 lines) ----\n{tail}\n---- end of aihub logs ----");
        }
    }
}

/// Spawns `aihub serve` in `dir` (stdout/stderr appended to `dir/{stdout,stderr}.log`) and
/// waits until it is listening and `/readyz` says 200.
async fn spawn_serve(
    dir: &Path,
    opts: &ServerOptions,
    admin_token: &str,
    client: &reqwest::Client,
) -> (Child, SocketAddr) {
    let append = |name: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(name))
            .unwrap_or_else(|e| panic!("open {name}: {e}"))
    };
    // A server that was killed leaves its address file behind: never read a stale one.
    let addr_file = dir.join("aihub.addr");
    let _ = std::fs::remove_file(&addr_file);

    let mut cmd = aihub_command(dir, opts, admin_token);
    cmd.arg("serve");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(append("stdout.log")))
        .stderr(Stdio::from(append("stderr.log")));
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", aihub_bin().display()));

    let deadline = Instant::now() + Duration::from_secs(15);
    let mut addr: Option<SocketAddr> = None;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "aihub exited during start-up with {status}\n{}",
                read_logs(dir)
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "aihub did not become ready within 15 s (address file {}: {:?})\n{}",
                addr_file.display(),
                addr,
                read_logs(dir)
            );
        }
        if addr.is_none() {
            if let Ok(text) = std::fs::read_to_string(&addr_file) {
                addr = text.trim().parse().ok();
            }
        }
        if let Some(a) = addr {
            let ready = client
                .get(format!("http://{a}/readyz"))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if matches!(ready, Ok(ref r) if r.status() == 200) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    (child, addr.expect("address read"))
}

fn read_logs(dir: &Path) -> String {
    let out = std::fs::read_to_string(dir.join("stdout.log")).unwrap_or_default();
    let err = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
    format!("--- stdout ---\n{out}\n--- stderr ---\n{err}")
}

/// The entry of the admin listing whose `file` names `file` (a bare name or a path
/// ending in it).
pub fn plugin_entry(listing: &Value, file: &str) -> Option<Value> {
    listing["data"]
        .as_array()?
        .iter()
        .find(|e| {
            e["file"]
                .as_str()
                .map(|f| f == file || Path::new(f).file_name() == Some(file.as_ref()))
                .unwrap_or(false)
        })
        .cloned()
}

// ---------------------------------------------------------------------------------------
// Assertions on replies
// ---------------------------------------------------------------------------------------

/// Reads an error reply, checks status, content type and the OpenAI error shape
/// `{"error":{"message":string,"type":string,"code":string|null,"param":null|string}}`,
/// and returns the `error` object.
pub async fn expect_error(resp: reqwest::Response, status: u16, typ: &str) -> Value {
    let got = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(got, status, "status; body: {text}");
    assert!(
        ctype.starts_with("application/json"),
        "error content-type should be application/json, got {ctype:?}; body: {text}"
    );
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("error body is not JSON ({e}): {text}"));
    let err = assert_error_shape(&body);
    assert_eq!(err["type"], typ, "error type; body: {body}");
    err
}

/// Checks the OpenAI error shape of `body` and returns its `error` object.
pub fn assert_error_shape(body: &Value) -> Value {
    let err = body
        .get("error")
        .unwrap_or_else(|| panic!("no `error` object in {body}"));
    assert!(err.is_object(), "`error` is not an object: {body}");
    let msg = err["message"]
        .as_str()
        .unwrap_or_else(|| panic!("error.message is not a string: {body}"));
    assert!(!msg.is_empty(), "error.message is empty: {body}");
    assert!(
        err["type"].is_string(),
        "error.type is not a string: {body}"
    );
    assert!(
        err.get("code")
            .is_some_and(|c| c.is_string() || c.is_null()),
        "error.code must be present, a string or null: {body}"
    );
    assert!(
        err.get("param")
            .is_some_and(|p| p.is_string() || p.is_null()),
        "error.param must be present, a string or null: {body}"
    );
    err.clone()
}

pub fn chat_body(model: &str, user: &str) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": user}]
    })
}

// ---------------------------------------------------------------------------------------
// SSE
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default)]
pub struct SseOutcome {
    /// `data` of every event, in order (including `[DONE]`).
    pub events: Vec<String>,
    /// Whether a `data: [DONE]` event arrived.
    pub done: bool,
    /// A transport or parse error that ended the stream, if any.
    pub transport_error: Option<String>,
}

impl SseOutcome {
    /// The JSON events (everything but `[DONE]`), parsed; panics on a non-JSON event.
    pub fn json(&self) -> Vec<Value> {
        self.events
            .iter()
            .filter(|d| d.as_str() != "[DONE]")
            .map(|d| {
                serde_json::from_str(d)
                    .unwrap_or_else(|e| panic!("SSE event is not JSON ({e}): {d:?}"))
            })
            .collect()
    }

    /// Concatenated `choices[0].delta.content` of every chunk.
    pub fn content(&self) -> String {
        self.json()
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(String::from)
            })
            .collect()
    }

    /// Content pieces, one per chunk that carries content (empty strings skipped).
    pub fn content_pieces(&self) -> Vec<String> {
        self.json()
            .iter()
            .filter_map(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(String::from)
            })
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Events that are `{"error": ...}` objects.
    pub fn errors(&self) -> Vec<Value> {
        self.json()
            .into_iter()
            .filter(|v| v.get("error").is_some())
            .collect()
    }

    /// Chunks with a non-null `usage`.
    pub fn usage_chunks(&self) -> Vec<Value> {
        self.json()
            .into_iter()
            .filter(|v| v.get("usage").is_some_and(|u| !u.is_null()))
            .collect()
    }
}

/// Reads a streaming reply to its end with a real SSE parser.
pub async fn collect_sse(resp: reqwest::Response) -> SseOutcome {
    collect_sse_with(resp, |_| {}).await
}

/// Like [`collect_sse`], calling `on_event` with each event's data as it arrives.
pub async fn collect_sse_with(
    resp: reqwest::Response,
    mut on_event: impl FnMut(&str),
) -> SseOutcome {
    let mut out = SseOutcome::default();
    let mut stream = resp.bytes_stream().eventsource();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let next = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(n) => n,
            Err(_) => panic!("SSE stream did not end within 60 s; so far: {out:?}"),
        };
        match next {
            None => break,
            Some(Ok(ev)) => {
                on_event(&ev.data);
                if ev.data == "[DONE]" {
                    out.done = true;
                }
                out.events.push(ev.data);
            }
            Some(Err(e)) => {
                out.transport_error = Some(e.to_string());
                break;
            }
        }
    }
    out
}

pub fn content_type(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

// ---------------------------------------------------------------------------------------
// Mock upstream (an OpenAI-compatible server on 127.0.0.1)
// ---------------------------------------------------------------------------------------

/// One request the mock received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// How an SSE reply ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseEnd {
    /// `data: [DONE]` then a clean end of the body.
    Done,
    /// A clean end of the body without `[DONE]`.
    Eof,
    /// The connection is cut (body error) without `[DONE]`.
    Cut,
}

#[derive(Debug, Clone)]
pub enum MockReply {
    Json {
        status: u16,
        headers: Vec<(String, String)>,
        body: Value,
    },
    Raw {
        status: u16,
        content_type: String,
        body: Vec<u8>,
    },
    Sse {
        /// `data` payloads, each sent as one `data: ...\n\n` event.
        events: Vec<String>,
        /// Pause before each event.
        delay: Duration,
        end: SseEnd,
    },
}

impl MockReply {
    pub fn json(status: u16, body: Value) -> Self {
        MockReply::Json {
            status,
            headers: vec![],
            body,
        }
    }

    /// An OpenAI error body with the given status.
    pub fn openai_error(status: u16, message: &str, typ: &str) -> Self {
        MockReply::json(
            status,
            json!({"error": {"message": message, "type": typ, "param": null, "code": null}}),
        )
    }

    pub fn with_header(self, k: &str, v: &str) -> Self {
        match self {
            MockReply::Json {
                status,
                mut headers,
                body,
            } => {
                headers.push((k.to_string(), v.to_string()));
                MockReply::Json {
                    status,
                    headers,
                    body,
                }
            }
            other => other,
        }
    }

    /// An SSE stream of `chunks` (JSON), each after `delay`, ending as `end`.
    pub fn sse(chunks: Vec<Value>, delay: Duration, end: SseEnd) -> Self {
        MockReply::Sse {
            events: chunks.iter().map(|c| c.to_string()).collect(),
            delay,
            end,
        }
    }
}

/// An OpenAI `chat.completion` as an upstream would send it.
pub fn openai_completion(model: &str, content: &str, prompt: u64, completion: u64) -> Value {
    json!({
        "id": "chatcmpl-mock-1",
        "object": "chat.completion",
        "created": 1_700_000_000u64,
        "model": model,
        "system_fingerprint": "fp_mock",
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": null},
            "logprobs": null,
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion
        }
    })
}

/// OpenAI stream chunks for `pieces`: a role chunk, one chunk per piece, a finish chunk
/// and (when `usage` is given) the usage chunk with empty `choices`.
pub fn openai_stream_chunks(model: &str, pieces: &[&str], usage: Option<(u64, u64)>) -> Vec<Value> {
    let base = |choices: Value| {
        json!({
            "id": "chatcmpl-mock-s",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000u64,
            "model": model,
            "system_fingerprint": "fp_mock",
            "choices": choices,
        })
    };
    let mut v = vec![base(json!([{
        "index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null
    }]))];
    for p in pieces {
        v.push(base(json!([{
            "index": 0, "delta": {"content": p}, "logprobs": null, "finish_reason": null
        }])));
    }
    v.push(base(json!([{
        "index": 0, "delta": {}, "logprobs": null, "finish_reason": "stop"
    }])));
    if let Some((p, c)) = usage {
        let mut u = base(json!([]));
        u["usage"] = json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c});
        v.push(u);
    }
    v
}

type Handler = Arc<dyn Fn(&Recorded) -> MockReply + Send + Sync>;
type MockBody = UnsyncBoxBody<Bytes, std::io::Error>;

pub struct MockUpstream {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    events_sent: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl MockUpstream {
    /// Starts a mock that answers every request with `handler(&request)`.
    pub async fn start(
        handler: impl Fn(&Recorded) -> MockReply + Send + Sync + 'static,
    ) -> MockUpstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind mock upstream");
        let addr = listener.local_addr().unwrap();
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let events_sent: Arc<AtomicUsize> = Arc::default();
        let handler: Handler = Arc::new(handler);
        let (reqs, sent) = (requests.clone(), events_sent.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (handler, reqs, sent) = (handler.clone(), reqs.clone(), sent.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<Incoming>| {
                        let (handler, reqs, sent) = (handler.clone(), reqs.clone(), sent.clone());
                        async move { Ok::<_, Infallible>(serve_mock(req, handler, reqs, sent).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        MockUpstream {
            addr,
            requests,
            events_sent,
            task,
        }
    }

    /// Always the same reply.
    pub async fn always(reply: MockReply) -> MockUpstream {
        MockUpstream::start(move |_| reply.clone()).await
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL to configure (`http://127.0.0.1:PORT/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn calls(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    /// SSE events written so far (over all streams).
    pub fn events_sent(&self) -> usize {
        self.events_sent.load(Ordering::SeqCst)
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_mock(
    req: hyper::Request<Incoming>,
    handler: Handler,
    reqs: Arc<Mutex<Vec<Recorded>>>,
    sent: Arc<AtomicUsize>,
) -> hyper::Response<MockBody> {
    let method = req.method().to_string();
    let uri = req
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let rec = Recorded {
        method,
        uri,
        headers,
        body,
    };
    let reply = handler(&rec);
    reqs.lock().unwrap().push(rec);

    match reply {
        MockReply::Json {
            status,
            headers,
            body,
        } => {
            let mut b = hyper::Response::builder()
                .status(status)
                .header("content-type", "application/json");
            for (k, v) in headers {
                b = b.header(k, v);
            }
            b.body(full(body.to_string().into_bytes())).unwrap()
        }
        MockReply::Raw {
            status,
            content_type,
            body,
        } => hyper::Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(full(body))
            .unwrap(),
        MockReply::Sse { events, delay, end } => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
            tokio::spawn(async move {
                for data in events {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let frame = Frame::data(Bytes::from(format!("data: {data}\n\n")));
                    if tx.send(Ok(frame)).await.is_err() {
                        return;
                    }
                    sent.fetch_add(1, Ordering::SeqCst);
                }
                match end {
                    SseEnd::Done => {
                        if !delay.is_zero() {
                            tokio::time::sleep(delay).await;
                        }
                        let _ = tx
                            .send(Ok(Frame::data(Bytes::from_static(b"data: [DONE]\n\n"))))
                            .await;
                    }
                    SseEnd::Eof => {}
                    SseEnd::Cut => {
                        // Give the host time to read what was sent, then fail the body:
                        // hyper aborts the connection without the chunked terminator.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        let _ = tx
                            .send(Err(std::io::Error::new(
                                std::io::ErrorKind::ConnectionReset,
                                "mock: cut",
                            )))
                            .await;
                    }
                }
            });
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            });
            hyper::Response::builder()
                .status(200)
                .header("content-type", "text/event-stream")
                .header("cache-control", "no-cache")
                .body(StreamBody::new(stream).boxed_unsync())
                .unwrap()
        }
    }
}

fn full(bytes: Vec<u8>) -> MockBody {
    Full::new(Bytes::from(bytes))
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

/// The `[[providers]]` config block pointing the openai plugin at `mock` under `prefix`.
pub fn mock_provider_config(prefix: &str, mock: &MockUpstream, key_env: &str) -> String {
    format!(
        r#"
[[providers]]
prefix = "{prefix}"
plugin = "openai"
base_url = "{}"
api_key_env = "{key_env}"
"#,
        mock.base_url()
    )
}

// ---------------------------------------------------------------------------------------
// Store, admin API and call log helpers
// ---------------------------------------------------------------------------------------

/// Runs `aihub ARGS` with the test environment (data dir and plugin dir under `dir`, no
/// config file, nothing inherited from the caller's `AIHUB_*`), without a server.
pub fn run_aihub(dir: &Path, args: &[&str]) -> std::process::Output {
    aihub_command(dir, &ServerOptions::default(), "test-admin-unused")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run aihub {args:?}: {e}"))
}

/// Spawns `aihub ARGS` like [`run_aihub`] and waits at most `timeout` for it to exit; a
/// process still running then is killed and `None` is returned with what it printed.
pub fn run_aihub_timeout(
    dir: &Path,
    args: &[&str],
    timeout: Duration,
) -> (Option<ExitStatus>, String, String) {
    let out_path = dir.join(format!(".out-{}", random_hex()));
    let err_path = dir.join(format!(".err-{}", random_hex()));
    let mut child = aihub_command(dir, &ServerOptions::default(), "test-admin-unused")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::fs::File::create(&out_path).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&err_path).unwrap()))
        .spawn()
        .unwrap_or_else(|e| panic!("spawn aihub {args:?}: {e}"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);
    (status, out, err)
}

/// Runs Python code with `c`, a `sqlite3` connection to `db`, bound (python3 is on every
/// machine the tests run on; the test crate has no SQLite library of its own). Extra
/// arguments are in `sys.argv[2:]`. Commits at the end; returns stdout.
pub fn python_sqlite(db: &Path, code: &str, args: &[&str]) -> String {
    let script = format!(
        "import sqlite3, sys\nc = sqlite3.connect(sys.argv[1])\n{code}\nc.commit()\nc.close()\n"
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(db)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed to inspect the database: {e}"));
    assert!(
        out.status.success(),
        "python3 sqlite script failed: {}\n{code}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether `needle` occurs in `hay`.
pub fn contains_bytes(hay: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    let first = needle[0];
    let last_start = match hay.len().checked_sub(needle.len()) {
        Some(n) => n,
        None => return false,
    };
    let mut i = 0;
    while i <= last_start {
        match hay[i..=last_start].iter().position(|b| *b == first) {
            None => return false,
            Some(off) => {
                let at = i + off;
                if &hay[at..at + needle.len()] == needle {
                    return true;
                }
                i = at + 1;
            }
        }
    }
    false
}

/// Every regular file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

impl TestServer {
    /// An admin API request with the admin token and an optional JSON body.
    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .request(method.clone(), self.url(path))
            .bearer_auth(&self.admin_token);
        if let Some(b) = body {
            req = req.json(b);
        }
        req.send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// Like [`TestServer::admin`], asserting the status; returns the JSON body (`Null` when
    /// the body is empty).
    pub async fn admin_ok(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        status: u16,
    ) -> Value {
        let resp = self.admin(method.clone(), path, body).await;
        let got = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        assert_eq!(got, status, "{method} {path} {body:?}: {text}");
        if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{method} {path}: body is not JSON ({e}): {text}"))
        }
    }

    /// Creates an app and one key through the admin API: (app id, key).
    pub async fn create_app_with_key(&self, name: &str) -> (i64, String) {
        let (id, key, _) = self.create_app_with_key_id(name).await;
        (id, key)
    }

    /// Creates an app and one key: (app id, key, key id).
    pub async fn create_app_with_key_id(&self, name: &str) -> (i64, String, i64) {
        let app = self
            .admin_ok(
                reqwest::Method::POST,
                "/api/admin/apps",
                Some(&json!({ "name": name })),
                201,
            )
            .await;
        let id = app["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("app without id: {app}"));
        let made = self
            .admin_ok(
                reqwest::Method::POST,
                &format!("/api/admin/apps/{id}/keys"),
                Some(&json!({})),
                201,
            )
            .await;
        let key = made["key"]
            .as_str()
            .unwrap_or_else(|| panic!("no key in {made}"))
            .to_string();
        let kid = made["info"]["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("no key id in {made}"));
        (id, key, kid)
    }

    /// Every call row, once at least `n` are written (the call log writes off the request
    /// path), or what there is after 10 s.
    pub async fn calls_at_least(&self, n: usize) -> Vec<Value> {
        self.calls_matching_at_least("", n).await
    }

    /// [`Self::calls_at_least`] for the rows matching `query` (as [`Self::all_calls`]).
    pub async fn calls_matching_at_least(&self, query: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let calls = self.all_calls(query).await;
            if calls.len() >= n || Instant::now() > deadline {
                return calls;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Every call row matching `query` (e.g. `app=3&status=ok`, or empty), newest first,
    /// following `next_cursor` with pages of 1000.
    pub async fn all_calls(&self, query: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<i64> = None;
        loop {
            let mut path = String::from("/api/admin/calls?limit=1000");
            if !query.is_empty() {
                path.push('&');
                path.push_str(query);
            }
            if let Some(c) = cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = self.admin_ok(reqwest::Method::GET, &path, None, 200).await;
            let rows = page["data"]
                .as_array()
                .unwrap_or_else(|| panic!("GET {path}: no data array: {page}"));
            out.extend(rows.iter().cloned());
            match page["next_cursor"].as_i64() {
                Some(c) => cursor = Some(c),
                None => return out,
            }
        }
    }

    /// Polls [`TestServer::all_calls`] until it holds at least `n` rows (the call log is
    /// written off the request path, in batches); returns them.
    pub async fn wait_for_calls(&self, query: &str, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let rows = self.all_calls(query).await;
            if rows.len() >= n {
                return rows;
            }
            if Instant::now() > deadline {
                panic!(
                    "expected at least {n} call rows for {query:?} within {timeout:?}, got {}; readyz: {}",
                    rows.len(),
                    self.readyz().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `GET /readyz` as JSON.
    pub async fn readyz(&self) -> Value {
        self.get("/readyz")
            .await
            .json()
            .await
            .unwrap_or(Value::Null)
    }
}

pub mod formats;
pub mod pg;
pub mod providers;
pub mod python_sdk;
pub mod raw_http;
pub mod raw_stream;
pub mod scripted;
pub mod stored;
