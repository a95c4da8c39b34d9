//! OpenAI embeddings to `embedContent` (one input) or `batchEmbedContents` (a list),
//! and their replies back to OpenAI's `list` of `embedding`s.

use crate::errors;
use plugin_api::openai;
use plugin_api::serde_json::{self, json, Value};
use plugin_api::{Call, ProviderError, Reply, Usage};

fn bad(message: impl Into<String>) -> ProviderError {
    ProviderError::bad_request(message)
}

/// The Gemini method and body for an OpenAI embeddings body; `model` is the resource
/// name (`models/...`).
pub fn request(body: &Value, model: &str) -> Result<(&'static str, Value), ProviderError> {
    let dims = match body.get("dimensions") {
        None | Some(Value::Null) => None,
        Some(d) => Some(
            d.as_u64()
                .filter(|d| *d > 0)
                .ok_or_else(|| bad("'dimensions' must be a positive integer"))?,
        ),
    };
    openai::wants_base64(body).map_err(bad)?;
    let one = |text: &str| {
        let mut r = json!({"model": model, "content": {"parts": [{"text": text}]}});
        if let Some(d) = dims {
            r["outputDimensionality"] = json!(d);
        }
        r
    };
    match body.get("input") {
        Some(Value::String(s)) => Ok(("embedContent", one(s))),
        Some(Value::Array(items)) if items.is_empty() => Err(bad("'input' must not be empty")),
        Some(Value::Array(items)) => {
            let texts: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
            let texts = texts.ok_or_else(|| {
                bad("'input' must be a string or an array of strings; Gemini does not take token ids")
            })?;
            let requests: Vec<Value> = texts.into_iter().map(one).collect();
            Ok(("batchEmbedContents", json!({ "requests": requests })))
        }
        Some(_) => Err(bad("'input' must be a string or an array of strings")),
        None => Err(bad("'input' is required")),
    }
}

fn unreadable(e: impl std::fmt::Display) -> ProviderError {
    ProviderError::upstream(format!("Gemini sent an unreadable embeddings reply: {e}"))
}

fn values(embedding: &Value) -> Result<Vec<f64>, ProviderError> {
    embedding
        .get("values")
        .and_then(Value::as_array)
        .ok_or_else(|| unreadable("an embedding has no 'values'"))?
        .iter()
        .map(|x| {
            x.as_f64()
                .ok_or_else(|| unreadable("a value is not a number"))
        })
        .collect()
}

/// A 2xx embeddings reply in the OpenAI shape. Gemini reports no token counts for
/// embeddings, so usage is zero and unknown to the host rather than estimated.
pub fn reply(call: &Call<'_>, body: &[u8]) -> Result<Reply, ProviderError> {
    let v: Value = serde_json::from_slice(body).map_err(unreadable)?;
    if let Some(err) = errors::error_object(&v) {
        return Err(errors::from_error_value(err));
    }
    let vectors: Vec<Vec<f64>> = if let Some(e) = v.get("embedding") {
        vec![values(e)?]
    } else if let Some(list) = v.get("embeddings").and_then(Value::as_array) {
        list.iter().map(values).collect::<Result<_, _>>()?
    } else {
        return Err(unreadable("no 'embedding' or 'embeddings'"));
    };
    let base64 = call
        .json::<Value>()
        .ok()
        .and_then(|b| openai::wants_base64(&b).ok())
        .unwrap_or(false);
    let data = openai::embedding_data(&vectors, base64);
    let prompt = v
        .pointer("/usageMetadata/promptTokenCount")
        .and_then(Value::as_u64);
    let n = prompt.unwrap_or(0);
    let body = json!({
        "object": "list",
        "data": data,
        "model": call.model,
        "usage": {"prompt_tokens": n, "total_tokens": n},
    });
    let usage = prompt.map(|n| Usage {
        input_tokens: n,
        ..Usage::default()
    });
    Reply::json(&body, usage)
}
