//! A template for a third-party aihub provider plugin.
//!
//! It offers the prefix `hello` and answers any chat call locally with a greeting that
//! names its version, so swapping in a rebuilt library is visible in the replies. Copy
//! this crate, rename it, and replace `prepare`/`parse`/the decoder with your provider's
//! translation (see the `plugin_api` crate docs for one that calls an upstream).
//!
//! Built against plugin ABI 2: a [`Call`] also carries the client's headers
//! (`call.header("...")`, credentials removed), its inbound `format`, the `credential`
//! (`call.api_key()` for the common single key) and the host's clock (`now_unix_ms`,
//! used below so the plugin stays pure). A reply that already is what the client wants
//! can be `Reply::pass_through(usage)`: the host forwards the upstream bytes unchanged.
//!
//! Build: `cargo build --release`, then copy `target/release/libhello_plugin.so` into the
//! gateway's plugin directory (write it under a temporary name and `mv` it into place).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use plugin_api::openai::{chunk, completion, last_user_text, usage_chunk};
use plugin_api::serde_json::{json, Value};
use plugin_api::*;

/// The version string the plugin reports; `HELLO_PLUGIN_VERSION` at build time overrides
/// the crate version (the gateway's tests build two versions this way).
const VERSION: &str = match option_env!("HELLO_PLUGIN_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};

pub struct Hello;

fn greeting(request: &Value) -> String {
    let name = last_user_text(request).unwrap_or_default();
    format!("Hello from hello-plugin v{VERSION}: {name}")
}

fn usage_of(text: &str) -> Usage {
    Usage {
        input_tokens: 1,
        output_tokens: text.split_whitespace().count() as u64,
        ..Usage::default()
    }
}

impl Plugin for Hello {
    type Decoder = HelloStream;

    fn manifest() -> Manifest {
        Manifest {
            name: "hello".into(),
            version: VERSION.into(),
            description: "Template plugin that greets".into(),
            abi_version: 0,
            providers: vec![ProviderSpec {
                prefix: "hello".into(),
                base_url: String::new(),
                auth: AuthScheme::None,
                api_key_env: None,
                native_formats: vec![],
                models: vec![ModelSpec::chat("world")],
            }],
        }
    }

    fn new(_config: ProviderConfig) -> Result<Self, String> {
        Ok(Hello)
    }

    fn prepare(&self, call: &Call<'_>) -> Result<Prepared, ProviderError> {
        let request: Value = call.json()?;
        Ok(Prepared::Local(LocalReply {
            status: 200,
            content_type: "text/plain".into(),
            body: greeting(&request).into_bytes(),
        }))
    }

    fn parse(&self, call: &Call<'_>, response: &Response<'_>) -> Result<Reply, ProviderError> {
        let text = String::from_utf8_lossy(response.body);
        let usage = usage_of(&text);
        Reply::json(
            &completion(
                "chatcmpl-hello",
                call.model,
                call.now_unix_ms / 1000,
                &text,
                "stop",
                &usage,
            ),
            Some(usage),
        )
    }

    fn stream(&self, call: &Call<'_>) -> Result<HelloStream, ProviderError> {
        Ok(HelloStream {
            model: call.model.to_string(),
            include_usage: call.include_usage,
            created: call.now_unix_ms / 1000,
            text: Vec::new(),
        })
    }
}

pub struct HelloStream {
    model: String,
    include_usage: bool,
    /// From the call: the host's clock, in seconds.
    created: u64,
    text: Vec<u8>,
}

impl StreamDecoder for HelloStream {
    fn feed(&mut self, bytes: &[u8], _out: &mut StreamOutput) -> Result<(), ProviderError> {
        self.text.extend_from_slice(bytes);
        Ok(())
    }

    fn finish(&mut self, out: &mut StreamOutput) -> Result<(), ProviderError> {
        let text = String::from_utf8_lossy(&self.text).into_owned();
        let usage = usage_of(&text);
        let created = self.created;
        out.chunk(&chunk(
            "chatcmpl-hello",
            &self.model,
            created,
            json!({"role": "assistant", "content": text}),
            None,
        ))?;
        out.chunk(&chunk(
            "chatcmpl-hello",
            &self.model,
            created,
            json!({}),
            Some("stop"),
        ))?;
        if self.include_usage {
            out.chunk(&usage_chunk("chatcmpl-hello", &self.model, created, &usage))?;
        }
        out.usage(usage);
        out.done();
        Ok(())
    }
}

plugin_api::export_plugin!(Hello);
