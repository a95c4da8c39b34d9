//! `echo`: an offline provider. Answers a chat call with the last user message, word by
//! word when streamed, with token counts (one token per whitespace-separated word).
//! It needs no key and no network: the provider a new user tries first, and the one the
//! tests and benchmarks use to measure the gateway alone.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use plugin_api::openai::{chunk, completion, content_text, last_user_text, unix_now, usage_chunk};
use plugin_api::serde_json::{self, json, Value};
use plugin_api::*;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct Echo;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn new_id() -> String {
    format!(
        "chatcmpl-echo-{}-{}",
        unix_now(),
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    )
}

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// What `prepare` hands to `parse`/the decoder through the host, as a local "upstream".
fn local_body(request: &Value) -> Result<Value, ProviderError> {
    let messages = request
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            ProviderError::bad_request("'messages' must be an array of chat messages")
        })?;
    let prompt_tokens: u64 = messages
        .iter()
        .map(|m| {
            m.get("content")
                .map(content_text)
                .map(|t| words(&t))
                .unwrap_or(0)
        })
        .sum();
    let text = last_user_text(request).unwrap_or_default();
    Ok(json!({"text": text, "prompt_tokens": prompt_tokens}))
}

struct Local {
    text: String,
    usage: Usage,
}

fn read_local(body: &[u8]) -> Result<Local, ProviderError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| ProviderError::internal(format!("echo: {e}")))?;
    let text = v["text"].as_str().unwrap_or_default().to_string();
    let usage = Usage {
        input_tokens: v["prompt_tokens"].as_u64().unwrap_or(0),
        output_tokens: words(&text),
        ..Usage::default()
    };
    Ok(Local { text, usage })
}

impl Plugin for Echo {
    type Decoder = EchoStream;

    fn manifest() -> Manifest {
        Manifest {
            name: "echo".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Offline provider that repeats the last user message".into(),
            abi_version: 0,
            providers: vec![ProviderSpec {
                prefix: "echo".into(),
                base_url: String::new(),
                auth: AuthScheme::None,
                api_key_env: None,
                native_formats: vec![],
                models: vec![ModelSpec {
                    context_window: Some(1_000_000),
                    input_price_per_mtok: Some(0.0),
                    output_price_per_mtok: Some(0.0),
                    ..ModelSpec::chat("echo-1")
                }],
            }],
        }
    }

    fn new(_config: ProviderConfig) -> Result<Self, String> {
        Ok(Echo)
    }

    fn prepare(&self, call: &Call<'_>) -> Result<Prepared, ProviderError> {
        if call.endpoint != Endpoint::Chat {
            return Err(ProviderError::bad_request(
                "the echo provider only serves chat completions",
            ));
        }
        let request: Value = call.json()?;
        let body = serde_json::to_vec(&local_body(&request)?)
            .map_err(|e| ProviderError::internal(e.to_string()))?;
        Ok(Prepared::Local(LocalReply {
            status: 200,
            content_type: "application/json".into(),
            body,
        }))
    }

    fn parse(&self, call: &Call<'_>, response: &Response<'_>) -> Result<Reply, ProviderError> {
        let local = read_local(response.body)?;
        let body = completion(
            &new_id(),
            call.model,
            unix_now(),
            &local.text,
            "stop",
            &local.usage,
        );
        Reply::json(&body, Some(local.usage))
    }

    fn stream(&self, call: &Call<'_>) -> Result<EchoStream, ProviderError> {
        Ok(EchoStream {
            model: call.model.to_string(),
            include_usage: call.include_usage,
            body: Vec::new(),
        })
    }
}

pub struct EchoStream {
    model: String,
    include_usage: bool,
    body: Vec<u8>,
}

impl StreamDecoder for EchoStream {
    fn feed(&mut self, bytes: &[u8], _out: &mut StreamOutput) -> Result<(), ProviderError> {
        self.body.extend_from_slice(bytes);
        Ok(())
    }

    fn finish(&mut self, out: &mut StreamOutput) -> Result<(), ProviderError> {
        let local = read_local(&self.body)?;
        let (id, created) = (new_id(), unix_now());
        out.chunk(&chunk(
            &id,
            &self.model,
            created,
            json!({"role": "assistant", "content": ""}),
            None,
        ))?;
        for (i, word) in local.text.split_whitespace().enumerate() {
            let piece = if i == 0 {
                word.to_string()
            } else {
                format!(" {word}")
            };
            out.chunk(&chunk(
                &id,
                &self.model,
                created,
                json!({"content": piece}),
                None,
            ))?;
        }
        out.chunk(&chunk(&id, &self.model, created, json!({}), Some("stop")))?;
        if self.include_usage {
            out.chunk(&usage_chunk(&id, &self.model, created, &local.usage))?;
        }
        out.usage(local.usage);
        out.done();
        Ok(())
    }
}

plugin_api::export_plugin!(Echo);

#[cfg(test)]
mod tests {
    use super::*;

    fn call(body: &[u8], stream: bool, include_usage: bool) -> Call<'_> {
        Call {
            credential: Credential::None,
            stream,
            include_usage,
            ..Call::new(Endpoint::Chat, "echo-1", body)
        }
    }

    fn local(p: Prepared) -> Vec<u8> {
        match p {
            Prepared::Local(l) => l.body,
            other => panic!("expected a local reply, got {other:?}"),
        }
    }

    const BODY: &[u8] = br#"{"model":"echo/echo-1","messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hello big world"}]}"#;

    #[test]
    fn non_stream_echoes_last_user_message_with_usage() {
        let c = call(BODY, false, false);
        let body = local(Echo.prepare(&c).unwrap());
        let resp = Response {
            status: 200,
            headers: &[],
            body: &body,
        };
        let reply = Echo.parse(&c, &resp).unwrap();
        let v: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "hello big world");
        assert_eq!(v["usage"]["prompt_tokens"], 5);
        assert_eq!(v["usage"]["completion_tokens"], 3);
        assert_eq!(reply.usage.unwrap().output_tokens, 3);
    }

    #[test]
    fn stream_is_word_by_word_and_usage_chunk_only_when_asked() {
        for include_usage in [false, true] {
            let c = call(BODY, true, include_usage);
            let body = local(Echo.prepare(&c).unwrap());
            let mut d = Echo.stream(&c).unwrap();
            let mut out = StreamOutput::default();
            d.feed(&body, &mut out).unwrap();
            d.finish(&mut out).unwrap();
            assert!(out.done);
            let chunks: Vec<Value> = out
                .chunks
                .iter()
                .map(|c| serde_json::from_slice(c).unwrap())
                .collect();
            let text: String = chunks
                .iter()
                .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
                .collect();
            assert_eq!(text, "hello big world");
            let has_usage = chunks.iter().any(|c| c.get("usage").is_some());
            assert_eq!(has_usage, include_usage);
            assert_eq!(out.usage.unwrap().input_tokens, 5);
        }
    }

    #[test]
    fn missing_messages_is_a_bad_request() {
        let body = br#"{"model":"echo/echo-1"}"#;
        let err = Echo.prepare(&call(body, false, false)).unwrap_err();
        assert_eq!(err.class, ErrorClass::BadRequest);
    }
}
