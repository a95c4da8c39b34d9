//! Configuration: built-in defaults, then `aihub.toml` (or `--config FILE`), then
//! `aihub.<profile>.toml` (`AIHUB_PROFILE`), then `AIHUB_*` environment variables with
//! nested keys joined by `__`. Unknown keys are errors, so a typo is never silent.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub plugins: PluginsConfig,
    pub upstream: UpstreamConfig,
    pub log: LogConfig,
    pub call_log: CallLogConfig,
    pub resilience: ResilienceConfig,
    pub telemetry: TelemetryConfig,
    pub metrics: MetricsConfig,
    pub responses: ResponsesConfig,
    pub cache: CacheConfig,
    /// Credit billing (`billing`); off by default.
    #[serde(default)]
    pub billing: BillingConfig,
    /// Every app's rate limits where its own (admin API) say nothing.
    #[serde(default)]
    pub limits: crate::traffic::Limits,
    /// The web console at `/` and its login sessions.
    #[serde(default)]
    pub console: ConsoleConfig,
    /// State several instances share (Redis); unset: each instance keeps its own.
    #[serde(default)]
    pub shared: SharedConfig,
    /// Opens the admin API. Generated and printed once, on first start, when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<Secret>,
    /// Base64 of 32 bytes; encrypts stored provider keys. Else `<data_dir>/master.key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_key: Option<Secret>,
    #[serde(default)]
    pub providers: Vec<ProviderEntry>,
    /// Model aliases: a name clients use, served by the first target that can.
    #[serde(default)]
    pub routes: Vec<AliasEntry>,
    /// `AIHUB_*` environment variables that name no config section or key (a client's
    /// `AIHUB_KEY`, say): left out of the config and warned about once logging is up.
    #[serde(skip)]
    pub ignored_env: Vec<String>,
}

/// The top-level keys, as `AIHUB_<KEY>` or `AIHUB_<KEY>__...` names them.
const TOP_KEYS: &[&str] = &[
    "server",
    "storage",
    "plugins",
    "upstream",
    "log",
    "call_log",
    "resilience",
    "telemetry",
    "metrics",
    "responses",
    "cache",
    "billing",
    "limits",
    "console",
    "shared",
    "admin_token",
    "master_key",
    "providers",
    "routes",
];

/// Whether an environment key (prefix stripped, nested keys joined by `__`) is config.
fn is_config_env(key: &str) -> bool {
    // `split("__")` may already have turned the separators into dots.
    let top = key.split("__").next().unwrap_or(key);
    let top = top.split('.').next().unwrap_or(top);
    TOP_KEYS.iter().any(|k| k.eq_ignore_ascii_case(top))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResilienceConfig {
    /// Attempts per target (provider) of one call, the first included.
    pub max_attempts: u32,
    /// Deadline of a whole call, all attempts and the stream included.
    pub total_timeout_ms: u64,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    /// Cooldown of a rate-limited key when the upstream gave no `Retry-After`.
    pub rate_limit_cooldown_ms: u64,
    /// Consecutive 5xx/connect/timeout failures that eject a key.
    pub eject_after_failures: u32,
    pub eject_cooldown_ms: u64,
    pub eject_cooldown_max_ms: u64,
    /// Background re-checks of a key refused with 401/403: first after this, doubling.
    pub recheck_initial_ms: u64,
    pub recheck_max_ms: u64,
    /// Re-checks before giving up on a refused key (until an operator changes it).
    pub recheck_limit: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// OTLP traces endpoint; empty turns tracing export off. HTTP:
    /// `http://collector:4318/v1/traces`; gRPC: `http://collector:4317`.
    pub otlp_endpoint: String,
    /// `http` (protobuf over HTTP) or `grpc`.
    pub otlp_protocol: String,
    /// Extra headers (or gRPC metadata) sent with every export, e.g. an API key.
    #[serde(default)]
    pub otlp_headers: std::collections::BTreeMap<String, Secret>,
    pub service_name: String,
    /// Fraction of traces sampled (a client's sampled `traceparent` is always honoured).
    pub sample_ratio: f64,
    /// Put prompt and completion text in spans. Off: they may hold personal data.
    pub capture_content: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    pub enabled: bool,
    /// When set, `GET /metrics` needs `Authorization: Bearer <token>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
}

/// The exact response cache (`cache` module).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// Cache every call (with `default_ttl_seconds`), not only where a provider, alias or
    /// request asks.
    pub enabled: bool,
    pub default_ttl_seconds: u64,
    /// Memory the kept answers may take in all.
    pub max_bytes: u64,
    /// Larger answers are not kept.
    pub max_entry_bytes: u64,
    /// `app`: an app only ever gets its own answers back; `global`: apps share them.
    pub scope: CacheScope,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheScope {
    App,
    Global,
}

/// Credit billing. Off (self-host mode): nothing is refused for credit, costs are only
/// recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BillingConfig {
    pub enabled: bool,
    /// What one credit is worth in USD.
    pub usd_per_credit: f64,
    /// Added to the upstream cost, in percent.
    pub margin_percent: f64,
    /// Credits every new app is granted (0: none).
    pub new_app_grant: crate::billing::CreditAmount,
    /// Days the new-app grant lasts; unset: it does not expire.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_app_grant_days: Option<u32>,
    /// Output tokens a call is held for when it does not cap its output.
    pub default_max_output_tokens: u64,
    /// Where a refused app tops up, named in the 402 message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_up_url: Option<String>,
    /// What a response-cache hit is charged, in percent of the answer's price (0: free).
    pub cache_hit_percent: u32,
    /// Signs Stripe's webhook events (`whsec_...`); unset: `POST /api/billing/stripe` is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stripe_webhook_secret: Option<Secret>,
    /// A balance falling below this many credits raises `credits.low` (0: never).
    pub low_balance_credits: crate::billing::CreditAmount,
    /// Where alert events (`credits.low`, `credits.exhausted`, `credential.invalid`,
    /// `credential.recovered`, `budget.reached`) are POSTed; unset: no alerts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<String>,
    /// Signs each alert (`x-aihub-signature`); required with `webhook_url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook_secret: Option<Secret>,
}

impl Default for BillingConfig {
    fn default() -> Self {
        BillingConfig {
            enabled: false,
            usd_per_credit: 1.0,
            margin_percent: 0.0,
            new_app_grant: crate::billing::CreditAmount(0),
            new_app_grant_days: None,
            default_max_output_tokens: 4096,
            top_up_url: None,
            cache_hit_percent: 0,
            stripe_webhook_secret: None,
            low_balance_credits: crate::billing::CreditAmount(0),
            webhook_url: None,
            webhook_secret: None,
        }
    }
}

/// The web console (`console`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Serve the console and its login; off: `/` is a 404 and only the bearer token opens
    /// the admin API.
    pub enabled: bool,
    /// Hours a console session lasts after login.
    pub session_hours: u32,
    /// Mark the session cookie `Secure` (set it when a TLS proxy fronts aihub).
    pub secure_cookie: bool,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            enabled: true,
            session_hours: 12,
            secure_cookie: false,
        }
    }
}

/// OpenAI Responses kept by aihub (for `previous_response_id` and `GET /v1/responses/{id}`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponsesConfig {
    /// Days a response is kept; 0 keeps none (as if every call said `store: false`).
    pub retention_days: u32,
}

/// `[[routes]] model = "smart", targets = ["openai/gpt-4o", "anthropic/claude-sonnet-4-5"]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AliasEntry {
    pub model: String,
    pub targets: Vec<String>,
    /// `ordered` (first that can serve) or `weighted` (first pick by weight, then in order).
    #[serde(default = "ordered")]
    pub strategy: String,
    #[serde(default)]
    pub weights: Option<Vec<u32>>,
    /// Answers for this alias are cached this long (the response cache).
    #[serde(default)]
    pub cache_ttl_seconds: Option<u64>,
}

fn ordered() -> String {
    "ordered".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Port 0 picks a free port; the bound address goes to `<data_dir>/aihub.addr`.
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    /// How long in-flight requests may run after SIGTERM before the server exits anyway.
    pub shutdown_grace_ms: u64,
    /// A request head (request line and headers) must arrive within this, counted from the
    /// moment the server waits for it: on HTTP/1 that includes the wait for the next request
    /// on a kept-alive connection. A new connection must send its first request within it.
    pub header_read_timeout_ms: u64,
    /// A connection with no request in flight and no bytes moving for this long is closed
    /// (HTTP/2 and stalled HTTP/1 connections; an idle HTTP/1 connection meets
    /// `header_read_timeout_ms` first when that is shorter).
    pub idle_timeout_ms: u64,
    /// A request body not fully received within this gets 408.
    pub body_read_timeout_ms: u64,
    /// Open client connections; beyond it a new connection gets a fast 503 and is closed.
    /// 0: derived at start from the open-file limit (at most 10,000).
    pub max_connections: usize,
    /// Open connections per client IP; 0 turns the cap off. Behind a load balancer or proxy
    /// every client shares its IP: raise this or set 0 there.
    pub max_connections_per_peer: usize,
    /// Longest request target (path and query) accepted; longer gets 414.
    pub max_uri_bytes: usize,
    /// Largest total size of the request headers; larger gets 431.
    pub max_header_bytes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    /// Where the store lives: unset or `sqlite:` is the embedded SQLite database in
    /// `data_dir`; `postgres://` / `postgresql://` selects Postgres. May hold a password,
    /// hence a `Secret` (never logged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<Secret>,
    /// Postgres: connections per process (several instances share the server's
    /// `max_connections`).
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// While the database cannot be reached, a key verified within this many seconds
    /// (plus the auth cache's 30) is still let in; 0: refuse every call (503) at once.
    #[serde(default = "default_outage_grace_seconds")]
    pub outage_grace_seconds: u64,
}

fn default_pool_size() -> usize {
    8
}

fn default_outage_grace_seconds() -> u64 {
    300
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// Defaults to `<data_dir>/plugins`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Watch the directory and load new or replaced libraries while running.
    pub watch: bool,
    /// How long the loader check (a child `aihub plugins check`) may take per library
    /// before it is killed and the library refused.
    #[serde(default = "default_check_timeout_ms")]
    pub check_timeout_ms: u64,
}

fn default_check_timeout_ms() -> u64 {
    10_000
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub connect_timeout_ms: u64,
    /// Until the upstream's response headers arrive.
    pub first_byte_timeout_ms: u64,
    /// Longest silence allowed between two chunks of a streamed reply.
    pub idle_timeout_ms: u64,
    /// Largest upstream reply: a whole reply read into memory, or all the bytes of one
    /// streamed reply (past it the stream is stopped with an error event).
    pub max_response_bytes: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallLogConfig {
    /// Records waiting for the writer; beyond this, records are dropped (and counted)
    /// rather than slowing requests down.
    pub queue_capacity: usize,
}

/// Rate-limit counters and the response cache shared by several instances through Redis.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SharedConfig {
    /// `redis://[user:password@]host:port[/db]` (`rediss://` for TLS is refused: this
    /// build has no TLS for Redis). May hold a password: never logged.
    pub redis_url: Option<Secret>,
    /// Put in front of every key, so several deployments can share one Redis.
    pub key_prefix: String,
    /// A call in flight holds its concurrency slot at most this long: an instance that
    /// dies cannot hold slots for ever.
    pub slot_lease_seconds: u64,
    /// Each Redis command's deadline; past it the instance falls back to its own
    /// counters for that call (and the cache answers a miss).
    pub timeout_ms: u64,
}

impl SharedConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.redis_url {
            let url = url.expose();
            if url.starts_with("rediss://") {
                return Err(ConfigError::Invalid(
                    "shared.redis_url: rediss:// (TLS) is not supported by this build; reach Redis over a private network or a TLS tunnel and use redis://".into(),
                ));
            }
            if !url.starts_with("redis://") || redis::Client::open(url).is_err() {
                return Err(ConfigError::Invalid(
                    "shared.redis_url must be a URL like redis://[user:password@]host:port[/db]"
                        .into(),
                ));
            }
        }
        if self.key_prefix.len() > 64 {
            return Err(ConfigError::Invalid(
                "shared.key_prefix must be at most 64 bytes".into(),
            ));
        }
        if !(1..=86_400).contains(&self.slot_lease_seconds) {
            return Err(ConfigError::Invalid(
                "shared.slot_lease_seconds must be between 1 and 86400".into(),
            ));
        }
        if !(1..=60_000).contains(&self.timeout_ms) {
            return Err(ConfigError::Invalid(
                "shared.timeout_ms must be between 1 and 60000".into(),
            ));
        }
        Ok(())
    }
}

impl Default for SharedConfig {
    fn default() -> Self {
        SharedConfig {
            redis_url: None,
            key_prefix: "aihub:".into(),
            slot_lease_seconds: 900,
            timeout_ms: 250,
        }
    }
}

/// A configured secret: never printed by `Debug`.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A provider instance declared by the operator: a plugin under a routing prefix.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ProviderEntry {
    pub prefix: String,
    /// The plugin's manifest name (`openai`, `anthropic`, ...).
    pub plugin: String,
    /// Defaults to the plugin's own default for that prefix, if it has one.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Environment variable holding the API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Model ids to list in `/v1/models` for this provider.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Passed to the plugin as is.
    #[serde(default)]
    pub options: serde_json::Value,
    /// Override `[upstream]` for this provider.
    #[serde(default)]
    pub first_byte_timeout_ms: Option<u64>,
    #[serde(default)]
    pub idle_timeout_ms: Option<u64>,
    /// Deadline of one call to this provider (the stream included).
    #[serde(default)]
    pub total_timeout_ms: Option<u64>,
    /// Answers of this provider are cached this long (the response cache).
    #[serde(default)]
    pub cache_ttl_seconds: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 8090)),
                max_body_bytes: 16 * 1024 * 1024,
                shutdown_grace_ms: 30_000,
                header_read_timeout_ms: 10_000,
                idle_timeout_ms: 60_000,
                body_read_timeout_ms: 60_000,
                max_connections: 0,
                max_connections_per_peer: 1024,
                max_uri_bytes: 8 * 1024,
                max_header_bytes: 64 * 1024,
            },
            storage: StorageConfig {
                data_dir: PathBuf::from("./data"),
                url: None,
                pool_size: default_pool_size(),
                outage_grace_seconds: default_outage_grace_seconds(),
            },
            plugins: PluginsConfig {
                dir: None,
                watch: true,
                check_timeout_ms: default_check_timeout_ms(),
            },
            upstream: UpstreamConfig {
                connect_timeout_ms: 10_000,
                first_byte_timeout_ms: 300_000,
                idle_timeout_ms: 300_000,
                max_response_bytes: 64 * 1024 * 1024,
            },
            log: LogConfig {
                format: "text".into(),
            },
            call_log: CallLogConfig {
                queue_capacity: 50_000,
            },
            telemetry: TelemetryConfig {
                otlp_endpoint: String::new(),
                otlp_protocol: "http".into(),
                otlp_headers: Default::default(),
                service_name: "aihub".into(),
                sample_ratio: 1.0,
                capture_content: false,
            },
            metrics: MetricsConfig {
                enabled: true,
                token: None,
            },
            responses: ResponsesConfig { retention_days: 30 },
            limits: crate::traffic::Limits::default(),
            billing: BillingConfig::default(),
            console: ConsoleConfig::default(),
            shared: SharedConfig::default(),
            cache: CacheConfig {
                enabled: false,
                default_ttl_seconds: 300,
                max_bytes: 64 * 1024 * 1024,
                max_entry_bytes: 1024 * 1024,
                scope: CacheScope::App,
            },
            resilience: ResilienceConfig {
                max_attempts: 3,
                total_timeout_ms: 600_000,
                backoff_base_ms: 100,
                backoff_max_ms: 2_000,
                rate_limit_cooldown_ms: 30_000,
                eject_after_failures: 5,
                eject_cooldown_ms: 30_000,
                eject_cooldown_max_ms: 300_000,
                recheck_initial_ms: 5_000,
                recheck_max_ms: 300_000,
                recheck_limit: 20,
            },
            admin_token: None,
            master_key: None,
            providers: Vec::new(),
            routes: Vec::new(),
            ignored_env: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Loads the layered configuration. `file` is `--config`; without it `aihub.toml` in
    /// the working directory is read when present.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_from(
            file,
            Env::prefixed("AIHUB_").split("__"),
            std::env::var("AIHUB_PROFILE").ok(),
        )
    }

    fn load_from(
        file: Option<&Path>,
        env: Env,
        profile: Option<String>,
    ) -> Result<Config, ConfigError> {
        let base = match file {
            Some(f) if !f.exists() => return Err(ConfigError::MissingFile(f.to_path_buf())),
            Some(f) => f.to_path_buf(),
            None => PathBuf::from("aihub.toml"),
        };
        let mut fig =
            Figment::from(Serialized::defaults(Config::default())).merge(Toml::file(&base));
        if let Some(profile) = profile.filter(|p| !p.is_empty()) {
            let stem = base.file_stem().and_then(|s| s.to_str()).unwrap_or("aihub");
            let profiled = base.with_file_name(format!("{stem}.{profile}.toml"));
            fig = fig.merge(Toml::file(profiled));
        }
        // AIHUB_PROFILE selects the profile file; it is not a key. Names of no section
        // (a typo inside a section still is an error) are set aside and warned about.
        let env = env.ignore(&["PROFILE"]);
        let ignored: Vec<String> = env
            .iter()
            .map(|(k, _)| k.as_str().replace('.', "__"))
            .filter(|k| !is_config_env(k))
            .collect();
        let env = env.filter(|k| is_config_env(k.as_str()));
        let mut config: Config = fig.merge(env).extract().map_err(|e| {
            let msgs: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
            ConfigError::Invalid(msgs.join("; "))
        })?;
        config.validate()?;
        config.ignored_env = ignored;
        Ok(config)
    }

    /// Says, once logging is set up, which `AIHUB_*` variables were not read as config.
    pub fn warn_ignored_env(&self) {
        for key in &self.ignored_env {
            tracing::warn!(
                variable = %format!("AIHUB_{}", key.to_ascii_uppercase()),
                "environment variable ignored: it names no config section (nested keys join with `__`, e.g. AIHUB_SERVER__LISTEN)"
            );
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.server.max_body_bytes == 0 {
            return Err(ConfigError::Invalid(
                "server.max_body_bytes must be greater than 0".into(),
            ));
        }
        if self.plugins.check_timeout_ms == 0 {
            return Err(ConfigError::Invalid(
                "plugins.check_timeout_ms must be greater than 0".into(),
            ));
        }
        let s = &self.server;
        for (name, v) in [
            ("header_read_timeout_ms", s.header_read_timeout_ms),
            ("idle_timeout_ms", s.idle_timeout_ms),
            ("body_read_timeout_ms", s.body_read_timeout_ms),
            ("max_uri_bytes", s.max_uri_bytes as u64),
            ("max_header_bytes", s.max_header_bytes as u64),
        ] {
            if v == 0 {
                return Err(ConfigError::Invalid(format!(
                    "server.{name} must be greater than 0"
                )));
            }
        }
        let b = &self.billing;
        if !(b.usd_per_credit.is_finite()
            && b.usd_per_credit >= 0.000001
            && b.usd_per_credit <= 1e9)
        {
            return Err(ConfigError::Invalid(
                "billing.usd_per_credit must be a number between 0.000001 and 1e9".into(),
            ));
        }
        if !(b.margin_percent.is_finite() && (0.0..=100_000.0).contains(&b.margin_percent)) {
            return Err(ConfigError::Invalid(
                "billing.margin_percent must be between 0 and 100000".into(),
            ));
        }
        if b.cache_hit_percent > 100 {
            return Err(ConfigError::Invalid(
                "billing.cache_hit_percent must be between 0 and 100".into(),
            ));
        }
        if let Some(url) = &b.webhook_url {
            if !(url.starts_with("http://") || url.starts_with("https://"))
                || url.parse::<hyper::Uri>().is_err()
            {
                return Err(ConfigError::Invalid(format!(
                    "billing.webhook_url must be an http(s) URL, not {url:?}"
                )));
            }
            if b.webhook_secret
                .as_ref()
                .is_none_or(|s| s.expose().len() < 16)
            {
                return Err(ConfigError::Invalid(
                    "billing.webhook_secret (at least 16 characters) is required with billing.webhook_url: receivers verify alerts with it".into(),
                ));
            }
        }
        self.shared.validate()?;
        if !(1..=24 * 30).contains(&self.console.session_hours) {
            return Err(ConfigError::Invalid(
                "console.session_hours must be between 1 and 720".into(),
            ));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(ConfigError::Invalid(format!(
                "log.format must be \"text\" or \"json\", not {:?}",
                self.log.format
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for p in &self.providers {
            if p.prefix.is_empty() || p.prefix.contains('/') {
                return Err(ConfigError::Invalid(format!(
                    "providers: prefix {:?} must be non-empty and contain no '/'",
                    p.prefix
                )));
            }
            if !seen.insert(p.prefix.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "providers: prefix {:?} is declared twice",
                    p.prefix
                )));
            }
        }
        if !matches!(self.telemetry.otlp_protocol.as_str(), "http" | "grpc") {
            return Err(ConfigError::Invalid(format!(
                "telemetry.otlp_protocol must be \"http\" or \"grpc\", not {:?}",
                self.telemetry.otlp_protocol
            )));
        }
        if !(0.0..=1.0).contains(&self.telemetry.sample_ratio) {
            return Err(ConfigError::Invalid(
                "telemetry.sample_ratio must be between 0 and 1".into(),
            ));
        }
        if self.resilience.max_attempts == 0 {
            return Err(ConfigError::Invalid(
                "resilience.max_attempts must be at least 1".into(),
            ));
        }
        let mut names = std::collections::HashSet::new();
        for r in &self.routes {
            crate::store::aliases::validate(
                &r.model,
                &r.targets,
                &r.strategy,
                r.weights.as_deref(),
            )
            .map_err(|e| ConfigError::Invalid(format!("routes: {e}")))?;
            if !names.insert(r.model.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "routes: model {:?} is declared twice",
                    r.model
                )));
            }
        }
        Ok(())
    }

    pub fn health_policy(&self) -> crate::resilience::credential_health::HealthPolicy {
        let r = &self.resilience;
        let ms = std::time::Duration::from_millis;
        crate::resilience::credential_health::HealthPolicy {
            rate_limit_cooldown: ms(r.rate_limit_cooldown_ms),
            eject_after_failures: r.eject_after_failures,
            eject_cooldown: ms(r.eject_cooldown_ms),
            eject_cooldown_max: ms(r.eject_cooldown_max_ms),
            recheck_initial: ms(r.recheck_initial_ms),
            recheck_max: ms(r.recheck_max_ms),
            recheck_limit: r.recheck_limit,
        }
    }

    pub fn plugin_dir(&self) -> PathBuf {
        self.plugins
            .dir
            .clone()
            .unwrap_or_else(|| self.storage.data_dir.join("plugins"))
    }
}

#[cfg(test)]
// figment's Jail returns its own (large) error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    #[test]
    fn the_example_config_is_valid_and_its_commented_limits_parse() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/aihub.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        Jail::expect_with(|jail| {
            // Uncomment the `[limits]` block: what the example shows must parse too.
            let mut inside = false;
            let uncommented: String = text
                .lines()
                .map(|l| {
                    inside = (inside && !l.trim().is_empty()) || l == "# [limits]";
                    if inside {
                        l.trim_start_matches("# ").to_string()
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            jail.create_file("aihub.toml", &uncommented)?;
            let c = Config::load_from(None, Env::prefixed("AIHUB_NONE_"), None)
                .map_err(|e| e.to_string())?;
            assert_eq!(c.limits.all.rpm, Some(600));
            assert_eq!(c.limits.models["openai/gpt-4o"].rpm, Some(60));
            assert!(!c.cache.enabled);
            assert_eq!(c.responses.retention_days, 30);
            assert!(!c.billing.enabled);
            assert_eq!(c.billing.default_max_output_tokens, 4096);
            Ok(())
        });
    }

    #[test]
    fn billing_takes_amounts_as_numbers_or_text_and_refuses_bad_prices() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "aihub.toml",
                "[billing]\nenabled = true\nnew_app_grant = 5\nmargin_percent = 12.5\n",
            )?;
            jail.set_env("AIHUB_BILLING__TOP_UP_URL", "https://pay.example");
            let c = Config::load_from(None, Env::prefixed("AIHUB_").split("__"), None)
                .map_err(|e| e.to_string())?;
            assert!(c.billing.enabled);
            assert_eq!(c.billing.new_app_grant.0, 5_000_000_000);
            assert_eq!(c.billing.top_up_url.as_deref(), Some("https://pay.example"));
            assert_eq!(
                crate::billing::Pricing::from_config(&c.billing).margin_bp,
                1250
            );
            jail.create_file("aihub.toml", "[billing]\nnew_app_grant = \"0.5\"\n")?;
            let c = Config::load_from(None, Env::prefixed("AIHUB_NONE_"), None)
                .map_err(|e| e.to_string())?;
            assert_eq!(c.billing.new_app_grant.0, 500_000_000);
            for bad in [
                "usd_per_credit = 0",
                "margin_percent = -1",
                "new_app_grant = \"1.0000000001\"",
            ] {
                jail.create_file("aihub.toml", &format!("[billing]\n{bad}\n"))?;
                assert!(
                    Config::load_from(None, Env::prefixed("AIHUB_NONE_"), None).is_err(),
                    "{bad}"
                );
            }
            Ok(())
        });
    }

    #[test]
    fn layers_defaults_file_profile_env() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "aihub.toml",
                r#"
                [server]
                listen = "127.0.0.1:9000"
                [[providers]]
                prefix = "local"
                plugin = "openai"
                base_url = "http://127.0.0.1:1/v1"
                "#,
            )?;
            jail.create_file("aihub.test.toml", "[server]\nmax_body_bytes = 1000\n")?;
            jail.set_env("AIHUB_SERVER__MAX_BODY_BYTES", "2000");
            jail.set_env("AIHUB_STORAGE__DATA_DIR", "/tmp/x");
            let c = Config::load_from(
                None,
                Env::prefixed("AIHUB_").split("__"),
                Some("test".into()),
            )
            .map_err(|e| e.to_string())?;
            assert_eq!(c.server.listen.port(), 9000);
            assert_eq!(c.server.max_body_bytes, 2000);
            assert_eq!(c.storage.data_dir, PathBuf::from("/tmp/x"));
            assert_eq!(c.plugin_dir(), PathBuf::from("/tmp/x/plugins"));
            assert_eq!(c.providers[0].prefix, "local");
            Ok(())
        });
    }

    #[test]
    fn server_limits_default_and_follow_env() {
        Jail::expect_with(|jail| {
            let c = Config::load_from(None, Env::prefixed("AIHUB_").split("__"), None)
                .map_err(|e| e.to_string())?;
            assert_eq!(c.server.header_read_timeout_ms, 10_000);
            assert_eq!(c.server.max_connections, 0);
            assert_eq!(c.server.max_connections_per_peer, 1024);
            jail.set_env("AIHUB_SERVER__MAX_CONNECTIONS_PER_PEER", "0");
            jail.set_env("AIHUB_SERVER__IDLE_TIMEOUT_MS", "1500");
            let c = Config::load_from(None, Env::prefixed("AIHUB_").split("__"), None)
                .map_err(|e| e.to_string())?;
            assert_eq!(c.server.max_connections_per_peer, 0);
            assert_eq!(c.server.idle_timeout_ms, 1500);
            jail.set_env("AIHUB_SERVER__BODY_READ_TIMEOUT_MS", "0");
            let err =
                Config::load_from(None, Env::prefixed("AIHUB_").split("__"), None).unwrap_err();
            assert!(err.to_string().contains("body_read_timeout_ms"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn environment_names_of_no_section_are_set_aside_but_typos_inside_one_are_errors() {
        Jail::expect_with(|jail| {
            jail.set_env("AIHUB_KEY", "ak-client-side");
            jail.set_env("AIHUB_URL", "http://127.0.0.1:8090");
            jail.set_env("AIHUB_SERVER__MAX_BODY_BYTES", "2000");
            jail.set_env("AIHUB_CALL_LOG__QUEUE_CAPACITY", "77");
            let c = Config::load_from(None, Env::prefixed("AIHUB_").split("__"), None)
                .map_err(|e| e.to_string())?;
            assert_eq!(c.server.max_body_bytes, 2000);
            assert_eq!(c.call_log.queue_capacity, 77);
            let mut ignored = c.ignored_env.clone();
            ignored.sort();
            assert_eq!(ignored, ["key", "url"]);
            jail.set_env("AIHUB_SERVER__LISTN", "127.0.0.1:1");
            let err =
                Config::load_from(None, Env::prefixed("AIHUB_").split("__"), None).unwrap_err();
            assert!(err.to_string().contains("listn"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn every_top_level_key_is_known_to_the_environment_filter() {
        let c = Config {
            admin_token: Some(Secret::new("x")),
            master_key: Some(Secret::new("x")),
            ..Config::default()
        };
        let v = serde_json::to_value(&c).unwrap();
        for key in v.as_object().unwrap().keys() {
            assert!(is_config_env(key), "{key} is missing from TOP_KEYS");
        }
        assert_eq!(v.as_object().unwrap().len(), TOP_KEYS.len());
    }

    #[test]
    fn unknown_keys_are_errors() {
        Jail::expect_with(|jail| {
            jail.create_file("aihub.toml", "[server]\nlisten_addr = \"x\"\n")?;
            let err =
                Config::load_from(None, Env::prefixed("AIHUB_").split("__"), None).unwrap_err();
            assert!(err.to_string().contains("listen_addr"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let err = Config::load(Some(Path::new("/nonexistent/aihub.toml"))).unwrap_err();
        assert!(matches!(err, ConfigError::MissingFile(_)));
    }
}
