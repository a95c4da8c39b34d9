//! A provider instance's settings, read once from the operator's config.
//!
//! Options (all optional), under `[[providers]] options`:
//! - `anthropic_version`: the `anthropic-version` header, default [`DEFAULT_VERSION`].
//! - `max_tokens_default`: `max_tokens` sent when the client gives none (the Messages API
//!   requires it, OpenAI clients rarely send it). Default [`DEFAULT_MAX_TOKENS`].
//! - `beta`: the `anthropic-beta` header, a string or an array of strings (joined by `,`).
//! - `headers`: `{ "<name>": "<value>" }` sent with every request.

use plugin_api::ProviderConfig;
use serde_json::Value;

/// The Messages API version every current feature is documented against.
pub const DEFAULT_VERSION: &str = "2023-06-01";
/// Enough for a long answer on every current model, small enough for the oldest ones.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Without a trailing `/` or `/v1`.
    pub base_url: String,
    pub version: String,
    pub max_tokens_default: u64,
    pub beta: Option<String>,
    pub headers: Vec<(String, String)>,
}

impl Settings {
    pub fn from_config(config: &ProviderConfig) -> Result<Self, String> {
        let who = if config.prefix.is_empty() {
            "anthropic provider".to_string()
        } else {
            format!("provider '{}'", config.prefix)
        };
        let fail = |msg: String| format!("{who}: {msg}");

        let empty = serde_json::Map::new();
        let options = match &config.options {
            Value::Null => &empty,
            Value::Object(m) => m,
            other => return Err(fail(format!("options must be a table, got {other}"))),
        };

        let mut base_url = config.base_url.trim().trim_end_matches('/').to_string();
        if base_url.is_empty() {
            base_url = DEFAULT_BASE_URL.to_string();
        }
        // Operators often paste the versioned URL; the plugin adds `/v1/messages` itself.
        if let Some(stripped) = base_url.strip_suffix("/v1") {
            base_url = stripped.to_string();
        }
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(fail(format!(
                "base_url must start with http:// or https://, got '{base_url}'"
            )));
        }

        let version = match options.get("anthropic_version") {
            None | Some(Value::Null) => DEFAULT_VERSION.to_string(),
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            Some(other) => {
                return Err(fail(format!(
                    "options.anthropic_version must be a non-empty string, got {other}"
                )))
            }
        };

        let max_tokens_default = match options.get("max_tokens_default") {
            None | Some(Value::Null) => DEFAULT_MAX_TOKENS,
            Some(v) => match v.as_u64() {
                Some(n) if n > 0 => n,
                _ => {
                    return Err(fail(format!(
                        "options.max_tokens_default must be a positive integer, got {v}"
                    )))
                }
            },
        };

        let beta = match options.get("beta") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(Value::String(s)) => Some(s.trim().to_string()),
            Some(Value::Array(items)) => {
                let mut names = Vec::with_capacity(items.len());
                for item in items {
                    match item.as_str() {
                        Some(s) if !s.trim().is_empty() => names.push(s.trim()),
                        _ => {
                            return Err(fail(format!(
                                "options.beta must hold non-empty strings, got {item}"
                            )))
                        }
                    }
                }
                (!names.is_empty()).then(|| names.join(","))
            }
            Some(other) => {
                return Err(fail(format!(
                    "options.beta must be a string or an array of strings, got {other}"
                )))
            }
        };

        let headers = plugin_api::options::header_table(options.get("headers")).map_err(&fail)?;

        Ok(Settings {
            base_url,
            version,
            max_tokens_default,
            beta,
            headers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(base_url: &str, options: Value) -> Result<Settings, String> {
        Settings::from_config(&ProviderConfig {
            prefix: "anthropic".into(),
            base_url: base_url.into(),
            options,
        })
    }

    #[test]
    fn defaults() {
        let s = cfg("https://api.anthropic.com/", Value::Null).unwrap();
        assert_eq!(s.base_url, "https://api.anthropic.com");
        assert_eq!(s.version, "2023-06-01");
        assert_eq!(s.max_tokens_default, 4096);
        assert_eq!(s.beta, None);
        assert!(s.headers.is_empty());
        assert_eq!(cfg("", Value::Null).unwrap().base_url, DEFAULT_BASE_URL);
        assert_eq!(
            cfg("http://127.0.0.1:9/v1/", Value::Null).unwrap().base_url,
            "http://127.0.0.1:9"
        );
    }

    #[test]
    fn options_are_read_and_checked() {
        let s = cfg(
            "https://proxy.example/anthropic",
            json!({"anthropic_version": "2024-01-01", "max_tokens_default": 1000,
                   "beta": ["a-1", "b-2"], "headers": {"x-team": "blue"}}),
        )
        .unwrap();
        assert_eq!(s.version, "2024-01-01");
        assert_eq!(s.max_tokens_default, 1000);
        assert_eq!(s.beta.as_deref(), Some("a-1,b-2"));
        assert_eq!(s.headers, vec![("x-team".to_string(), "blue".to_string())]);

        for bad in [
            json!({"max_tokens_default": 0}),
            json!({"max_tokens_default": "many"}),
            json!({"beta": 3}),
            json!({"headers": ["x"]}),
            json!({"headers": {"x": {"y": 1}}}),
            json!({"headers": {"bad header": "v"}}),
            json!({"headers": {"x-a": "line\nbreak"}}),
            json!({"anthropic_version": ""}),
            json!("nope"),
        ] {
            let err = cfg("https://api.anthropic.com", bad.clone()).unwrap_err();
            assert!(err.starts_with("provider 'anthropic'"), "{bad}: {err}");
        }
        assert!(cfg("api.anthropic.com", Value::Null).is_err());
    }
}
