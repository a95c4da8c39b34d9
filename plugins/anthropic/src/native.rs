//! Calls that arrive in Anthropic's own Messages format ([`Format::AnthropicMessages`]).
//!
//! The client already speaks the upstream's language, so nothing is translated: its body
//! goes upstream byte for byte (only `model` becomes the upstream name), the reply and
//! the event stream come back as pass-through, and the plugin only reads usage, the end
//! of the stream and errors, with the same conventions as the translated path.

use crate::config::Settings;
use crate::response::{error_from_body, no_content, unreadable_reply, RawUsage};
use plugin_api::json::{replace_field, RawObject};
use plugin_api::*;
use serde::de::IgnoredAny;
use serde_json::Value;

/// The upstream request for a Messages-format call.
pub fn prepare(call: &Call<'_>, s: &Settings) -> Result<Prepared, ProviderError> {
    let model = call.model.trim();
    if model.is_empty() {
        return Err(ProviderError::bad_request(
            "no model named after the provider prefix",
        ));
    }
    let model = serde_json::to_string(model)
        .map_err(|e| ProviderError::internal(format!("cannot encode model: {e}")))?;
    let mut req = HttpRequest::post(format!("{}/v1/messages", s.base_url));
    req.body = replace_field(call.body, "model", &model)?;
    req = req.header("content-type", "application/json");
    // The client may know a newer API version or beta than the operator configured.
    let version = call
        .header("anthropic-version")
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or(&s.version);
    let beta = merged_beta(call, s.beta.as_deref());
    Ok(Prepared::Upstream(crate::with_headers(
        req,
        call,
        s,
        version,
        beta.as_deref(),
    )))
}

/// The client's `anthropic-beta` names (every header of that name, each a comma list),
/// then the configured ones, each once, in that order.
fn merged_beta(call: &Call<'_>, configured: Option<&str>) -> Option<String> {
    let client = call
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("anthropic-beta"))
        .map(|(_, v)| *v);
    let mut names: Vec<&str> = Vec::new();
    for name in client
        .chain(configured)
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    (!names.is_empty()).then(|| names.join(","))
}

/// A 2xx Messages reply, forwarded unchanged; only `type`, `content` and `usage` are
/// looked at, and failures are the ones the translated path reports.
pub fn reply(body: &[u8]) -> Result<Reply, ProviderError> {
    let obj = RawObject::parse(body).map_err(|e| {
        // JSON that is not an object reads as the translated path reads it.
        if serde_json::from_slice::<IgnoredAny>(body).is_ok() {
            no_content()
        } else {
            unreadable_reply(e)
        }
    })?;
    let kind = obj
        .get("type")
        .and_then(|t| serde_json::from_str::<String>(t).ok());
    if kind.as_deref() == Some("error") {
        let v: Value = serde_json::from_slice(body).map_err(unreadable_reply)?;
        return Err(error_from_body(&v));
    }
    if !obj.get("content").is_some_and(|c| c.starts_with('[')) {
        return Err(no_content());
    }
    let mut raw = RawUsage::default();
    if let Some(u) = obj.get("usage") {
        let u: Value = serde_json::from_str(u).map_err(unreadable_reply)?;
        raw.merge(&u);
    }
    Ok(Reply::pass_through(Some(raw.to_usage())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::testing::call;

    #[test]
    fn beta_names_are_merged_once_each() {
        let body = b"{}";
        let headers = [
            ("anthropic-beta", "a-1, b-2"),
            ("Anthropic-Beta", "b-2,c-3,"),
            ("x-other", "z"),
        ];
        let c = Call {
            headers: &headers,
            ..call(Endpoint::Chat, "m", body, None, false, false)
        };
        assert_eq!(
            merged_beta(&c, Some("c-3,d-4")).as_deref(),
            Some("a-1,b-2,c-3,d-4")
        );
        assert_eq!(
            merged_beta(&call(Endpoint::Chat, "m", body, None, false, false), None),
            None
        );
        assert_eq!(
            merged_beta(
                &call(Endpoint::Chat, "m", body, None, false, false),
                Some("x")
            ),
            Some("x".into())
        );
    }
}
