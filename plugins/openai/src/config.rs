//! A provider instance's settings, read once from the operator's config.
//!
//! Options (all optional), under `[[providers]] options`:
//! - `flavor`: `"openai"` or `"azure"`. Default: Azure when the prefix is `azure` or the
//!   host is `*.openai.azure.com` / `*.cognitiveservices.azure.com`, else OpenAI.
//! - `api_version` (Azure): `api-version` query parameter, default [`AZURE_API_VERSION`];
//!   `"v1"` or `"preview"` use Azure's `/openai/v1/...` paths instead of deployments.
//! - `deployments` (Azure): `{ "<model>": "<deployment name>" }` when deployments are not
//!   named after their models.
//! - `headers`: `{ "<name>": "<value>" }` sent with every request (e.g. OpenRouter's
//!   `HTTP-Referer`/`X-Title`, OpenAI's `OpenAI-Organization`/`OpenAI-Project`).
//! - `stream_usage`: send `stream_options.include_usage` upstream on streamed calls so
//!   usage is always recorded. Default true, except for Mistral, which refuses unknown
//!   fields with a 422 and sends usage in its last chunk anyway.
//! - `stream_pass_through`: on streamed calls whose client asked for usage, forward the
//!   upstream's event stream byte for byte instead of re-framing each chunk. Default true
//!   for OpenAI itself (`api.openai.com`, whose streams already are exactly what the
//!   client gets), false elsewhere (some servers report usage where OpenAI does not, and
//!   the decoder then writes the usage chunk the client asked for).
//! - `single_choice`: refuse chat calls asking for more than one choice (`n` > 1) with a
//!   clear bad request instead of sending them. Default true for Poe (`poe` prefix or
//!   `api.poe.com`), whose bots answer once per request and document `n` as 1 only.

use plugin_api::serde_json::Value;
use plugin_api::ProviderConfig;
use std::collections::BTreeMap;

/// Azure OpenAI's current GA data-plane version.
pub const AZURE_API_VERSION: &str = "2024-10-21";

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Flavor {
    OpenAi,
    Azure(Azure),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Azure {
    pub api_version: String,
    /// `/openai/v1/...` paths with the deployment in the body's `model`.
    pub v1: bool,
    pub deployments: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Settings {
    /// Without a trailing `/`.
    pub base_url: String,
    pub flavor: Flavor,
    pub headers: Vec<(String, String)>,
    pub stream_usage: bool,
    pub stream_pass_through: bool,
    pub single_choice: bool,
}

impl Settings {
    pub(crate) fn from_config(config: &ProviderConfig) -> Result<Self, String> {
        let who = if config.prefix.is_empty() {
            "openai provider".to_string()
        } else {
            format!("provider '{}'", config.prefix)
        };
        let fail = |msg: String| format!("{who}: {msg}");

        let options = match &config.options {
            Value::Null => serde_json::Map::new(),
            Value::Object(m) => m.clone(),
            other => return Err(fail(format!("options must be a table, got {other}"))),
        };

        let base_url = check_base_url(&config.base_url).map_err(&fail)?;
        let host = host_of(&base_url).to_ascii_lowercase();

        let flavor_name = match options.get("flavor") {
            None | Some(Value::Null) => {
                let azure_host = host.ends_with(".openai.azure.com")
                    || host.ends_with(".cognitiveservices.azure.com");
                if config.prefix == "azure" || azure_host {
                    "azure"
                } else {
                    "openai"
                }
            }
            Some(Value::String(s)) => s.as_str(),
            Some(other) => {
                return Err(fail(format!(
                    "options.flavor must be a string, got {other}"
                )))
            }
        };

        let flavor = match flavor_name {
            "openai" => Flavor::OpenAi,
            "azure" => Flavor::Azure(azure_options(&options).map_err(&fail)?),
            other => {
                return Err(fail(format!(
                    "options.flavor must be \"openai\" or \"azure\", got \"{other}\""
                )))
            }
        };

        let base_url = match flavor {
            // Operators often paste the endpoint with Azure's `/openai` path segment.
            Flavor::Azure(_) => base_url
                .strip_suffix("/openai/v1")
                .or_else(|| base_url.strip_suffix("/openai"))
                .unwrap_or(&base_url)
                .to_string(),
            Flavor::OpenAi => base_url,
        };

        let headers = plugin_api::options::header_table(options.get("headers")).map_err(&fail)?;

        let mistral = config.prefix == "mistral" || host == "api.mistral.ai";
        let stream_usage = match options.get("stream_usage") {
            None | Some(Value::Null) => !mistral,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(fail(format!(
                    "options.stream_usage must be true or false, got {other}"
                )))
            }
        };

        let stream_pass_through = match options.get("stream_pass_through") {
            None | Some(Value::Null) => host == "api.openai.com" && flavor == Flavor::OpenAi,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(fail(format!(
                    "options.stream_pass_through must be true or false, got {other}"
                )))
            }
        };

        let poe = config.prefix == "poe" || host == "api.poe.com";
        let single_choice = match options.get("single_choice") {
            None | Some(Value::Null) => poe,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(fail(format!(
                    "options.single_choice must be true or false, got {other}"
                )))
            }
        };

        Ok(Settings {
            base_url,
            flavor,
            headers,
            stream_usage,
            stream_pass_through,
            single_choice,
        })
    }
}

fn azure_options(options: &serde_json::Map<String, Value>) -> Result<Azure, String> {
    let api_version = match options.get("api_version") {
        None | Some(Value::Null) => AZURE_API_VERSION.to_string(),
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().all(is_query_safe) => {
            s.trim().to_string()
        }
        Some(other) => {
            return Err(format!(
                "options.api_version must be a version string, got {other}"
            ))
        }
    };
    let deployments = match options.get("deployments") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v.as_str() {
                Some(d) if !d.is_empty() => Ok((k.clone(), d.to_string())),
                _ => Err(format!("options.deployments.{k} must be a deployment name")),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(format!("options.deployments must be a table, got {other}")),
    };
    Ok(Azure {
        v1: matches!(api_version.as_str(), "v1" | "preview"),
        api_version,
        deployments,
    })
}

fn is_query_safe(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')
}

/// Checks that the base URL is an absolute http(s) URL we can append paths to.
fn check_base_url(raw: &str) -> Result<String, String> {
    let url = raw.trim().trim_end_matches('/');
    if url.is_empty() {
        return Err(
            "base_url is missing; set it to the API root, e.g. https://api.openai.com/v1".into(),
        );
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("base_url \"{raw}\" must start with http:// or https://"))?;
    if url.contains('{') || url.contains('}') {
        return Err(format!(
            "base_url \"{raw}\" still has a placeholder; set it to your endpoint, e.g. https://my-resource.openai.azure.com"
        ));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) || url.contains(['?', '#']) {
        return Err(format!(
            "base_url \"{raw}\" is not a usable URL (no spaces, query or fragment allowed)"
        ));
    }
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err(format!("base_url \"{raw}\" has no host"));
    }
    Ok(url.to_string())
}

/// The host (without port or user info) of a URL `check_base_url` accepted.
fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or_default();
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if authority.starts_with('[') {
        return authority.split(']').next().map_or(authority, |h| &h[1..]);
    }
    authority.split(':').next().unwrap_or(authority)
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::serde_json::json;

    fn cfg(prefix: &str, base: &str, options: Value) -> ProviderConfig {
        ProviderConfig {
            prefix: prefix.into(),
            base_url: base.into(),
            options,
        }
    }

    #[test]
    fn base_urls() {
        assert_eq!(
            check_base_url("https://api.openai.com/v1/").unwrap(),
            "https://api.openai.com/v1"
        );
        assert_eq!(
            check_base_url(" http://127.0.0.1:11434/v1// ").unwrap(),
            "http://127.0.0.1:11434/v1"
        );
        for bad in [
            "",
            "  ",
            "api.openai.com/v1",
            "ftp://x",
            "https://",
            "https:///v1",
            "https://{resource}.openai.azure.com",
            "https://a b",
            "https://x/v1?x=1",
        ] {
            assert!(check_base_url(bad).is_err(), "{bad}");
        }
        assert_eq!(host_of("https://user@Example.com:8443/v1"), "Example.com");
        assert_eq!(host_of("http://[::1]:11434/v1"), "::1");
    }

    #[test]
    fn flavors_and_options() {
        let s = Settings::from_config(&cfg(
            "azure",
            "https://r.openai.azure.com/openai/",
            Value::Null,
        ))
        .unwrap();
        assert_eq!(s.base_url, "https://r.openai.azure.com");
        assert!(
            matches!(&s.flavor, Flavor::Azure(a) if a.api_version == AZURE_API_VERSION && !a.v1)
        );
        let s = Settings::from_config(&cfg(
            "corp",
            "https://r.cognitiveservices.azure.com",
            json!({"api_version": "v1"}),
        ))
        .unwrap();
        assert!(matches!(&s.flavor, Flavor::Azure(a) if a.v1));
        let s = Settings::from_config(&cfg(
            "openai",
            "https://api.openai.com/v1",
            json!({"headers": {"OpenAI-Project": "p"}}),
        ))
        .unwrap();
        assert_eq!(s.flavor, Flavor::OpenAi);
        assert_eq!(
            s.headers,
            vec![("OpenAI-Project".to_string(), "p".to_string())]
        );
        assert!(s.stream_usage);
        let s = Settings::from_config(&cfg("mistral", "https://api.mistral.ai/v1", Value::Null))
            .unwrap();
        assert!(!s.stream_usage);
        let s = Settings::from_config(&cfg(
            "mine",
            "https://api.mistral.ai/v1",
            json!({"stream_usage": true}),
        ))
        .unwrap();
        assert!(s.stream_usage);
        assert!(!s.single_choice);
        let s = Settings::from_config(&cfg("poe", "https://api.poe.com/v1", Value::Null)).unwrap();
        assert!(s.single_choice && s.stream_usage);
        let s =
            Settings::from_config(&cfg("bots", "https://api.poe.com/v1/", Value::Null)).unwrap();
        assert!(s.single_choice, "recognised by host too");
        let s = Settings::from_config(&cfg(
            "poe",
            "https://api.poe.com/v1",
            json!({"single_choice": false}),
        ))
        .unwrap();
        assert!(!s.single_choice);
        let s = Settings::from_config(&cfg(
            "doubao",
            "https://ark.cn-beijing.volces.com/api/v3",
            Value::Null,
        ))
        .unwrap();
        assert_eq!(s.flavor, Flavor::OpenAi);
        assert!(s.stream_usage && !s.single_choice && !s.stream_pass_through);
    }

    #[test]
    fn bad_options_are_refused_with_the_prefix() {
        for opts in [
            json!([1]),
            json!({"flavor": "bedrock"}),
            json!({"headers": ["x"]}),
            json!({"headers": {"X-A": 1}}),
            json!({"headers": {"bad name": "v"}}),
            json!({"headers": {"X-A": "a\r\nb"}}),
            json!({"headers": {"Host": "h"}}),
            json!({"stream_usage": "yes"}),
            json!({"single_choice": 1}),
            json!({"flavor": "azure", "api_version": "2024 10"}),
            json!({"flavor": "azure", "deployments": {"gpt-4o": 3}}),
        ] {
            let err = Settings::from_config(&cfg("p1", "https://x.example/v1", opts.clone()))
                .unwrap_err();
            assert!(err.starts_with("provider 'p1': "), "{opts}: {err}");
        }
    }
}
