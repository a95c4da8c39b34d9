//! Provider settings (`options`, `base_url`, the environment read once at start) and the
//! credential and endpoint of each call.

use crate::sigv4::Keys;
use plugin_api::serde_json::{self, Value};
use plugin_api::{Credential, ProviderConfig, ProviderError};

/// The region when nothing names one (the AWS SDKs refuse to guess; a gateway that
/// starts anyway is more useful, and the crate docs say so).
pub const DEFAULT_REGION: &str = "us-east-1";

/// The regional endpoint, `{region}` replaced per call.
pub const ENDPOINT_TEMPLATE: &str = "https://bedrock-runtime.{region}.amazonaws.com";

/// Headers the plugin sets (and signs) itself; an operator copy would break the signature.
const OWN_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "accept",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

/// Environment variables read when the provider is built (see the crate docs).
pub const ENV_BEARER: &str = "AWS_BEARER_TOKEN_BEDROCK";
pub const ENV_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
pub const ENV_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
pub const ENV_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
pub const ENV_REGION: &str = "AWS_REGION";
pub const ENV_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";

/// Access keys owned by the provider (read from the environment or a parsed secret).
#[derive(Clone, PartialEq, Eq)]
pub struct OwnedKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
    pub region: Option<String>,
}

impl std::fmt::Debug for OwnedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedKeys")
            .field("access_key_id", &self.access_key_id)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl OwnedKeys {
    pub fn keys(&self) -> Keys<'_> {
        Keys {
            access_key_id: &self.access_key_id,
            secret_access_key: &self.secret_access_key,
            session_token: self.session_token.as_deref(),
        }
    }
}

/// How one call authenticates.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth<'a> {
    /// A Bedrock API key: `Authorization: Bearer`.
    Bearer(&'a str),
    /// SigV4 with these keys; `region` is the credential's own, if it names one.
    Sign {
        keys: Keys<'a>,
        region: Option<&'a str>,
    },
}

impl std::fmt::Debug for Auth<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Bearer(_) => f.write_str("Bearer(***)"),
            Auth::Sign { keys, region } => f
                .debug_struct("Sign")
                .field("keys", keys)
                .field("region", region)
                .finish(),
        }
    }
}

/// A stored secret, as the host hands it over in `Credential::ApiKey`.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret<'a> {
    Bearer(&'a str),
    Keys(OwnedKeys),
}

/// `AKID:SECRET[:TOKEN]` or JSON `{"access_key_id", "secret_access_key",
/// "session_token"?, "region"?}` are access keys; any other string is a Bedrock API key.
/// An access key id is 16 to 128 upper-case letters and digits (AWS's constraint), and a
/// Bedrock API key never holds a `:`, so the two forms cannot be confused.
pub fn parse_secret(s: &str) -> Result<Secret<'_>, ProviderError> {
    let t = s.trim();
    if t.starts_with('{') {
        return json_keys(t).map(Secret::Keys);
    }
    let parts: Vec<&str> = t.split(':').collect();
    let is_key_id = |id: &str| {
        (16..=128).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    };
    if (2..=3).contains(&parts.len()) && is_key_id(parts[0]) {
        if parts[1].is_empty() || parts.get(2).is_some_and(|p| p.is_empty()) {
            return Err(ProviderError::auth(
                "the stored Bedrock credential looks like ACCESS_KEY_ID:SECRET[:SESSION_TOKEN] \
                 but a part is empty",
            ));
        }
        return Ok(Secret::Keys(OwnedKeys {
            access_key_id: parts[0].to_string(),
            secret_access_key: parts[1].to_string(),
            session_token: parts.get(2).map(|p| p.to_string()),
            region: None,
        }));
    }
    if t.is_empty() {
        return Err(ProviderError::auth(
            "the stored Bedrock credential is empty",
        ));
    }
    Ok(Secret::Bearer(t))
}

fn json_keys(s: &str) -> Result<OwnedKeys, ProviderError> {
    // The message never quotes the secret: serde's errors could.
    let bad = |what: &str| {
        ProviderError::auth(format!(
            "the stored Bedrock credential is JSON but {what}; expected \
             {{\"access_key_id\": ..., \"secret_access_key\": ..., \"session_token\"?: ..., \"region\"?: ...}}"
        ))
    };
    let v: Value = serde_json::from_str(s).map_err(|_| bad("does not parse"))?;
    let field = |names: &[&str]| -> Result<Option<String>, ProviderError> {
        for n in names {
            match v.get(*n) {
                None | Some(Value::Null) => continue,
                Some(Value::String(s)) if !s.trim().is_empty() => {
                    return Ok(Some(s.trim().to_string()))
                }
                Some(_) => return Err(bad(&format!("\"{n}\" is not a non-empty string"))),
            }
        }
        Ok(None)
    };
    let id = field(&["access_key_id", "aws_access_key_id", "AccessKeyId"])?
        .ok_or_else(|| bad("has no \"access_key_id\""))?;
    let secret = field(&[
        "secret_access_key",
        "aws_secret_access_key",
        "SecretAccessKey",
    ])?
    .ok_or_else(|| bad("has no \"secret_access_key\""))?;
    let token = field(&["session_token", "aws_session_token", "SessionToken"])?;
    let region = field(&["region"])?;
    if let Some(r) = &region {
        check_region(r).map_err(ProviderError::auth)?;
    }
    Ok(OwnedKeys {
        access_key_id: id,
        secret_access_key: secret,
        session_token: token,
        region,
    })
}

/// A region name that can go into a host name: `us-east-1`, `us-gov-west-1`, `cn-north-1`.
pub fn check_region(r: &str) -> Result<(), String> {
    let ok = !r.is_empty()
        && r.len() <= 32
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !r.starts_with('-')
        && !r.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{}\" is not an AWS region name (e.g. us-east-1)",
            r.chars().take(40).collect::<String>()
        ))
    }
}

/// What the environment held when the provider was built.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Environment {
    pub bearer: Option<String>,
    pub keys: Option<OwnedKeys>,
    pub region: Option<String>,
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Environment")
            .field("bearer", &self.bearer.as_ref().map(|_| "***"))
            .field("keys", &self.keys)
            .field("region", &self.region)
            .finish()
    }
}

impl Environment {
    /// Reads the variables through `get`; empty values count as unset.
    pub fn read(get: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let var = |n: &str| {
            get(n)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let region = var(ENV_REGION).or_else(|| var(ENV_DEFAULT_REGION));
        if let Some(r) = &region {
            check_region(r).map_err(|e| format!("{ENV_REGION}: {e}"))?;
        }
        let keys = match (var(ENV_ACCESS_KEY_ID), var(ENV_SECRET_ACCESS_KEY)) {
            (Some(id), Some(secret)) => Some(OwnedKeys {
                access_key_id: id,
                secret_access_key: secret,
                session_token: var(ENV_SESSION_TOKEN),
                region: None,
            }),
            _ => None,
        };
        Ok(Environment {
            bearer: var(ENV_BEARER),
            keys,
            region,
        })
    }
}

impl std::fmt::Debug for Secret<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Bearer(_) => f.write_str("Bearer(***)"),
            Secret::Keys(k) => f.debug_tuple("Keys").field(k).finish(),
        }
    }
}

/// Where requests go, as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint {
    /// The regional endpoint, or an operator's URL holding `{region}`.
    Template(String),
    /// A fixed URL (a VPC endpoint, a proxy, a mock).
    Fixed(String),
}

/// A parsed endpoint URL, as the request needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `https://host[:port]`.
    pub origin: String,
    /// The `host` header value SigV4 signs: lower case, the port only when not the
    /// scheme's default (the HTTP client sends it so).
    pub host: String,
    /// A path prefix of the configured URL, without the trailing `/` (often empty).
    pub base_path: String,
}

/// Splits `scheme://authority/path`; refuses anything else, queries and fragments too.
pub fn parse_url(url: &str) -> Result<Target, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("base_url must start with http:// or https://, got {url:?}"))?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => "443",
        "http" => "80",
        _ => {
            return Err(format!(
                "base_url must start with http:// or https://, got {url:?}"
            ))
        }
    };
    if rest.contains(['?', '#']) {
        return Err(format!(
            "base_url may not have a query or fragment, got {url:?}"
        ));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let authority = authority.to_ascii_lowercase();
    let host_ok = !authority.is_empty()
        && !authority.contains('@')
        && authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b));
    if !host_ok {
        return Err(format!("base_url has no usable host, got {url:?}"));
    }
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port == default_port => h.to_string(),
        _ => authority.clone(),
    };
    Ok(Target {
        origin: format!("{scheme}://{authority}"),
        host,
        base_path: path.trim_end_matches('/').to_string(),
    })
}

/// The region in an AWS host name: the label after `bedrock-runtime` (or
/// `bedrock-runtime-fips`), as in `bedrock-runtime.eu-west-1.amazonaws.com` or
/// `vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com`.
pub fn region_in_host(host: &str) -> Option<String> {
    let host = host.split(':').next().unwrap_or(host);
    let labels: Vec<&str> = host.split('.').collect();
    let i = labels
        .iter()
        .position(|l| *l == "bedrock-runtime" || *l == "bedrock-runtime-fips")?;
    let region = labels.get(i + 1)?;
    let looks = region.contains('-') && region.ends_with(|c: char| c.is_ascii_digit());
    (looks && check_region(region).is_ok()).then(|| region.to_string())
}

/// One configured Bedrock upstream.
#[derive(Debug, Clone)]
pub struct Settings {
    endpoint: Endpoint,
    /// `options.region`, or the region of a fixed AWS endpoint: wins over the rest.
    fixed_region: Option<String>,
    env: Environment,
    /// Operator's extra headers (`options.headers`), sent unsigned.
    pub headers: Vec<(String, String)>,
}

impl Settings {
    pub fn new(config: &ProviderConfig, env: Environment) -> Result<Self, String> {
        let options = &config.options;
        if !(options.is_null() || options.is_object()) {
            return Err("options must be a table".into());
        }
        let region = match options.get("region") {
            None | Some(Value::Null) => None,
            Some(Value::String(r)) => {
                check_region(r.trim()).map_err(|e| format!("options.region: {e}"))?;
                Some(r.trim().to_string())
            }
            Some(_) => return Err("options.region must be a string such as \"us-east-1\"".into()),
        };
        let headers = plugin_api::options::header_table(options.get("headers"))?;
        if let Some((name, _)) = headers
            .iter()
            .find(|(n, _)| OWN_HEADERS.iter().any(|o| n.eq_ignore_ascii_case(o)))
        {
            return Err(format!(
                "options.headers.{name} is set (and signed) by the bedrock plugin itself"
            ));
        }
        let base = config.base_url.trim().trim_end_matches('/');
        let (endpoint, url_region) = if base.is_empty() {
            (Endpoint::Template(ENDPOINT_TEMPLATE.to_string()), None)
        } else if base.contains("{region}") {
            parse_url(&base.replace("{region}", DEFAULT_REGION))?;
            (Endpoint::Template(base.to_string()), None)
        } else {
            let t = parse_url(base)?;
            (Endpoint::Fixed(base.to_string()), region_in_host(&t.host))
        };
        Ok(Settings {
            endpoint,
            fixed_region: region.or(url_region),
            env,
            headers,
        })
    }

    /// How a call authenticates: its own credential, else the environment's (a bearer
    /// token first, as the AWS SDKs prefer it for Bedrock).
    pub fn auth<'a>(&'a self, credential: &Credential<'a>) -> Result<AuthOwned<'a>, ProviderError> {
        Ok(match *credential {
            Credential::AccessKey {
                id,
                secret,
                session_token,
                region,
            } => AuthOwned::Borrowed(Auth::Sign {
                keys: Keys {
                    access_key_id: id,
                    secret_access_key: secret,
                    session_token,
                },
                region,
            }),
            Credential::ApiKey(s) | Credential::ServiceAccount(s) => match parse_secret(s)? {
                Secret::Bearer(t) => AuthOwned::Borrowed(Auth::Bearer(t)),
                Secret::Keys(k) => AuthOwned::Parsed(k),
            },
            Credential::None => {
                if let Some(t) = &self.env.bearer {
                    AuthOwned::Borrowed(Auth::Bearer(t))
                } else if let Some(k) = &self.env.keys {
                    AuthOwned::Borrowed(Auth::Sign {
                        keys: k.keys(),
                        region: None,
                    })
                } else {
                    return Err(ProviderError::auth(format!(
                        "no AWS credentials for Bedrock: add a credential to the provider, or set \
                         {ENV_BEARER}, or {ENV_ACCESS_KEY_ID} and {ENV_SECRET_ACCESS_KEY} \
                         (with {ENV_SESSION_TOKEN} for temporary keys) before starting the gateway"
                    )));
                }
            }
        })
    }

    /// The region of a call: `options.region` or the fixed endpoint's, else the
    /// credential's, else the environment's, else [`DEFAULT_REGION`].
    pub fn region<'a>(
        &'a self,
        credential_region: Option<&'a str>,
    ) -> Result<&'a str, ProviderError> {
        if let Some(r) = &self.fixed_region {
            return Ok(r);
        }
        if let Some(r) = credential_region {
            check_region(r).map_err(ProviderError::auth)?;
            return Ok(r);
        }
        Ok(self.env.region.as_deref().unwrap_or(DEFAULT_REGION))
    }

    /// The endpoint for `region`.
    pub fn target(&self, region: &str) -> Result<Target, ProviderError> {
        let url = match &self.endpoint {
            Endpoint::Template(t) => t.replace("{region}", region),
            Endpoint::Fixed(u) => u.clone(),
        };
        parse_url(&url).map_err(ProviderError::internal)
    }
}

/// An [`Auth`] that may own keys parsed from a stored secret.
#[derive(Debug)]
pub enum AuthOwned<'a> {
    Borrowed(Auth<'a>),
    Parsed(OwnedKeys),
}

impl AuthOwned<'_> {
    pub fn get(&self) -> Auth<'_> {
        match self {
            AuthOwned::Borrowed(a) => a.clone(),
            AuthOwned::Parsed(k) => Auth::Sign {
                keys: k.keys(),
                region: k.region.as_deref(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::serde_json::json;

    const AKID: &str = "AKIAIOSFODNN7EXAMPLE";

    #[test]
    fn secrets() {
        assert_eq!(
            parse_secret("ABSKQmVkcm9ja0FQSUtleS1leGFtcGxl").unwrap(),
            Secret::Bearer("ABSKQmVkcm9ja0FQSUtleS1leGFtcGxl")
        );
        let Secret::Keys(k) = parse_secret(&format!("{AKID}:wJalr/K7MDENG+bPxRfi:tok==")).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (k.access_key_id.as_str(), k.secret_access_key.as_str()),
            (AKID, "wJalr/K7MDENG+bPxRfi")
        );
        assert_eq!(k.session_token.as_deref(), Some("tok=="));
        let Secret::Keys(k) = parse_secret(
            &json!({"access_key_id": AKID, "secret_access_key": "s", "region": "eu-west-3"})
                .to_string(),
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            (k.session_token, k.region.as_deref()),
            (None, Some("eu-west-3"))
        );
        // A short or lower-case first part is not a key id: the string is a bearer token.
        assert!(matches!(
            parse_secret("bedrock-api-key-x:y").unwrap(),
            Secret::Bearer(_)
        ));
        for bad in [
            format!("{AKID}:"),
            format!("{AKID}:s:"),
            "{\"access_key_id\":\"A\"}".to_string(),
            "{not json".to_string(),
            json!({"access_key_id": AKID, "secret_access_key": "s", "region": "x/y"}).to_string(),
            "  ".to_string(),
        ] {
            let e = parse_secret(&bad).unwrap_err();
            assert_eq!(e.class, plugin_api::ErrorClass::Auth, "{bad}");
            assert!(!e.message.contains("\"s\""), "{e}");
        }
        let e = parse_secret("{\"secret_access_key\": \"hunter2\"").unwrap_err();
        assert!(!e.message.contains("hunter2"), "{e}");
    }

    #[test]
    fn urls_and_regions() {
        let t = parse_url("https://Bedrock-Runtime.eu-west-1.amazonaws.com:443/").unwrap();
        assert_eq!(t.host, "bedrock-runtime.eu-west-1.amazonaws.com");
        assert_eq!(t.base_path, "");
        let t = parse_url("http://127.0.0.1:8080/proxy/").unwrap();
        assert_eq!(
            (t.host.as_str(), t.base_path.as_str()),
            ("127.0.0.1:8080", "/proxy")
        );
        assert_eq!(t.origin, "http://127.0.0.1:8080");
        for bad in [
            "ftp://x",
            "https://",
            "https://u@h",
            "https://h/?q",
            "bedrock",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        assert_eq!(
            region_in_host("vpce-0a.bedrock-runtime.us-east-2.vpce.amazonaws.com").as_deref(),
            Some("us-east-2")
        );
        assert_eq!(
            region_in_host("bedrock-runtime-fips.us-gov-west-1.amazonaws.com").as_deref(),
            Some("us-gov-west-1")
        );
        assert_eq!(region_in_host("localhost:9000"), None);
        assert!(check_region("us-east-1").is_ok());
        assert!(check_region("evil.com/x").is_err());
    }

    fn settings(base: &str, options: Value, env: Environment) -> Result<Settings, String> {
        Settings::new(
            &ProviderConfig {
                prefix: "bedrock".into(),
                base_url: base.into(),
                options,
            },
            env,
        )
    }

    #[test]
    fn region_precedence() {
        let env = Environment {
            region: Some("eu-central-1".into()),
            ..Environment::default()
        };
        let s = settings("", Value::Null, env.clone()).unwrap();
        assert_eq!(s.region(None).unwrap(), "eu-central-1");
        assert_eq!(s.region(Some("ap-south-1")).unwrap(), "ap-south-1");
        assert_eq!(
            s.target("ap-south-1").unwrap().host,
            "bedrock-runtime.ap-south-1.amazonaws.com"
        );
        let s = settings("", json!({"region": "us-west-2"}), env.clone()).unwrap();
        assert_eq!(s.region(Some("ap-south-1")).unwrap(), "us-west-2");
        let s = settings(
            "https://bedrock-runtime.sa-east-1.amazonaws.com",
            Value::Null,
            env,
        )
        .unwrap();
        assert_eq!(s.region(Some("ap-south-1")).unwrap(), "sa-east-1");
        let s = settings("http://127.0.0.1:9", Value::Null, Environment::default()).unwrap();
        assert_eq!(s.region(None).unwrap(), DEFAULT_REGION);
        assert_eq!(s.target("eu-west-1").unwrap().host, "127.0.0.1:9");
        let s = settings(
            "https://{region}.proxy.example/br",
            Value::Null,
            Environment::default(),
        )
        .unwrap();
        assert_eq!(
            s.target("eu-west-1").unwrap().origin,
            "https://eu-west-1.proxy.example"
        );
        assert!(s.region(Some("no such")).is_err());
    }

    #[test]
    fn bad_options_are_refused() {
        for (base, options, says) in [
            ("", json!({"region": 3}), "options.region"),
            ("", json!({"region": "us east"}), "not an AWS region"),
            (
                "",
                json!({"headers": {"Authorization": "x"}}),
                "set (and signed)",
            ),
            ("", json!({"headers": {"x-a": 1}}), "must be a string"),
            ("", json!("x"), "must be a table"),
            ("bedrock.example", Value::Null, "http://"),
        ] {
            let e = settings(base, options, Environment::default()).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn environment() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |n: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.to_string())
            }
        };
        let env = Environment::read(vars(&[
            (ENV_ACCESS_KEY_ID, AKID),
            (ENV_SECRET_ACCESS_KEY, "s"),
            (ENV_SESSION_TOKEN, ""),
            (ENV_DEFAULT_REGION, "eu-north-1"),
        ]))
        .unwrap();
        let k = env.keys.clone().unwrap();
        assert_eq!((k.access_key_id.as_str(), k.session_token), (AKID, None));
        assert_eq!(env.region.as_deref(), Some("eu-north-1"));
        assert_eq!(env.bearer, None);
        // A bearer token wins over keys when both are set.
        let env = Environment::read(vars(&[
            (ENV_BEARER, "ABSKtoken"),
            (ENV_ACCESS_KEY_ID, AKID),
            (ENV_SECRET_ACCESS_KEY, "s"),
        ]))
        .unwrap();
        let s = settings("", Value::Null, env).unwrap();
        assert_eq!(
            s.auth(&Credential::None).unwrap().get(),
            Auth::Bearer("ABSKtoken")
        );
        // Debug output never shows a secret.
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("ABSKtoken") && !shown.contains("\"s\""),
            "{shown}"
        );
        // Half a key pair is no key pair.
        let env = Environment::read(vars(&[(ENV_ACCESS_KEY_ID, AKID)])).unwrap();
        assert_eq!(env.keys, None);
        let s = settings("", Value::Null, env).unwrap();
        let e = s.auth(&Credential::None).unwrap_err();
        assert!(e.message.contains(ENV_BEARER), "{e}");
        assert!(Environment::read(vars(&[(ENV_REGION, "not/a/region")])).is_err());
    }
}
