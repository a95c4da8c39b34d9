//! OpenAI embeddings through `InvokeModel` (`POST /model/{id}/invoke`), whose body is
//! the model family's own:
//!
//! - Amazon Titan text embeddings (`amazon.titan-embed-text-v2:0`, `-v1`): one text per
//!   call, `{"inputText", "dimensions"?}` → `{"embedding", "inputTextTokenCount"}`.
//! - Cohere Embed (`cohere.embed-english-v3`, `cohere.embed-multilingual-v3`): a batch,
//!   `{"texts", "input_type"}` → `{"embeddings": [[...]]}` (or `{"float": [[...]]}` when
//!   typed). `input_type` is `search_document` unless the body names another.
//!
//! Token counts come from the reply body, else from the `x-amzn-bedrock-input-token-count`
//! header InvokeModel answers with.

use plugin_api::openai::{self, params};
use plugin_api::serde_json::{self, json, Value};
use plugin_api::{Call, ProviderError, Reply, Response, Usage};

fn bad(message: impl Into<String>) -> ProviderError {
    ProviderError::bad_request(message)
}

/// The embedding model families this plugin can address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Titan,
    Cohere,
}

/// The family of a model id; inference-profile prefixes (`us.`) and ARNs are fine.
pub fn family(model: &str) -> Option<Family> {
    let m = model.to_ascii_lowercase();
    if m.contains("amazon.titan-embed") {
        Some(Family::Titan)
    } else if m.contains("cohere.embed") {
        Some(Family::Cohere)
    } else {
        None
    }
}

const INPUT_TYPES: [&str; 4] = [
    "search_document",
    "search_query",
    "classification",
    "clustering",
];

/// The texts of `input`: a string or an array of strings.
fn texts(body: &Value) -> Result<Vec<&str>, ProviderError> {
    match body.get("input") {
        Some(Value::String(s)) => Ok(vec![s.as_str()]),
        Some(Value::Array(items)) if items.is_empty() => Err(bad("'input' must not be empty")),
        Some(Value::Array(items)) => items
            .iter()
            .map(Value::as_str)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                bad("'input' must be a string or an array of strings; Bedrock models do not take token ids")
            }),
        Some(_) => Err(bad("'input' must be a string or an array of strings")),
        None => Err(bad("'input' is required")),
    }
}

/// The `InvokeModel` body for an OpenAI embeddings body.
pub fn request(model: &str, body: &Value) -> Result<Value, ProviderError> {
    let family = family(model).ok_or_else(|| {
        bad(format!(
            "{model:?} is not an embedding model this provider knows: embeddings support Amazon \
             Titan (amazon.titan-embed-*) and Cohere (cohere.embed-*) models"
        ))
    })?;
    openai::wants_base64(body).map_err(bad)?;
    let texts = texts(body)?;
    let dims = params::count(body, "dimensions").map_err(bad)?;
    match family {
        Family::Titan => {
            let [text] = texts.as_slice() else {
                return Err(bad(format!(
                    "Titan embedding models take one input per call, got {}; send them one at a \
                     time, or use a Cohere embedding model for batches",
                    texts.len()
                )));
            };
            let mut r = json!({ "inputText": text });
            if let Some(d) = dims {
                r["dimensions"] = json!(d);
            }
            Ok(r)
        }
        Family::Cohere => {
            if dims.is_some() {
                return Err(bad(
                    "'dimensions' is not supported by Cohere embedding models",
                ));
            }
            let input_type = params::one_of(body, "input_type", &INPUT_TYPES)
                .map_err(bad)?
                .unwrap_or("search_document");
            Ok(json!({ "texts": texts, "input_type": input_type }))
        }
    }
}

fn unreadable(e: impl std::fmt::Display) -> ProviderError {
    ProviderError::upstream(format!("Bedrock sent an unreadable embeddings reply: {e}"))
}

fn vector(v: &Value) -> Result<Vec<f64>, ProviderError> {
    v.as_array()
        .ok_or_else(|| unreadable("an embedding is not an array"))?
        .iter()
        .map(|x| {
            x.as_f64()
                .ok_or_else(|| unreadable("a value is not a number"))
        })
        .collect()
}

/// A 2xx `InvokeModel` reply in the OpenAI embeddings shape.
pub fn reply(call: &Call<'_>, resp: &Response<'_>) -> Result<Reply, ProviderError> {
    let v: Value = serde_json::from_slice(resp.body).map_err(unreadable)?;
    let vectors: Vec<Vec<f64>> = if let Some(e) = v.get("embedding") {
        vec![vector(e)?]
    } else {
        let list = match v.get("embeddings") {
            Some(Value::Array(l)) => l,
            Some(Value::Object(typed)) => typed
                .get("float")
                .and_then(Value::as_array)
                .ok_or_else(|| unreadable("'embeddings' has no 'float' vectors"))?,
            _ => return Err(unreadable("no 'embedding' or 'embeddings'")),
        };
        list.iter().map(vector).collect::<Result<_, _>>()?
    };
    let base64 = call
        .json::<Value>()
        .ok()
        .and_then(|b| openai::wants_base64(&b).ok())
        .unwrap_or(false);
    let data = openai::embedding_data(&vectors, base64);
    let tokens = v
        .get("inputTextTokenCount")
        .and_then(Value::as_u64)
        .or_else(|| {
            resp.header("x-amzn-bedrock-input-token-count")
                .and_then(|h| h.trim().parse().ok())
        });
    let n = tokens.unwrap_or(0);
    let body = json!({
        "object": "list",
        "data": data,
        "model": call.model,
        "usage": {"prompt_tokens": n, "total_tokens": n},
    });
    let usage = tokens.map(|n| Usage {
        input_tokens: n,
        ..Usage::default()
    });
    Reply::json(&body, usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        assert_eq!(family("amazon.titan-embed-text-v2:0"), Some(Family::Titan));
        assert_eq!(family("us.cohere.embed-english-v3"), Some(Family::Cohere));
        assert_eq!(family("anthropic.claude-3-haiku-20240307-v1:0"), None);
    }

    #[test]
    fn bodies() {
        let r = request(
            "amazon.titan-embed-text-v2:0",
            &json!({"input": ["a"], "dimensions": 256}),
        )
        .unwrap();
        assert_eq!(r, json!({"inputText": "a", "dimensions": 256}));
        let e = request(
            "amazon.titan-embed-text-v2:0",
            &json!({"input": ["a", "b"]}),
        )
        .unwrap_err();
        assert!(e.message.contains("one input per call, got 2"), "{e}");
        let r = request(
            "cohere.embed-english-v3",
            &json!({"input": ["a", "b"], "input_type": "search_query"}),
        )
        .unwrap();
        assert_eq!(
            r,
            json!({"texts": ["a", "b"], "input_type": "search_query"})
        );
        for (model, body) in [
            ("cohere.embed-english-v3", json!({"input": [1, 2]})),
            (
                "cohere.embed-english-v3",
                json!({"input": "a", "input_type": "x"}),
            ),
            (
                "cohere.embed-english-v3",
                json!({"input": "a", "dimensions": 3}),
            ),
            ("amazon.titan-embed-text-v2:0", json!({"input": []})),
            (
                "amazon.titan-embed-text-v2:0",
                json!({"input": "a", "encoding_format": "hex"}),
            ),
            ("meta.llama3-8b-instruct-v1:0", json!({"input": "a"})),
        ] {
            assert_eq!(
                request(model, &body).unwrap_err().class,
                plugin_api::ErrorClass::BadRequest,
                "{body}"
            );
        }
    }
}
