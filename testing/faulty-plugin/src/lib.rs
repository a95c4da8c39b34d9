//! Test fixture: a plugin that panics on purpose (prefix `faulty`).
//! Models: `panic-prepare`, `panic-parse`, `panic-stream` (two chunks, then a panic),
//! anything else answers "ok".

use plugin_api::openai::{chunk, completion, unix_now};
use plugin_api::serde_json::json;
use plugin_api::*;

pub struct Faulty;

impl Plugin for Faulty {
    type Decoder = FaultyStream;

    fn manifest() -> Manifest {
        Manifest {
            name: "faulty".into(),
            version: "0.0.1".into(),
            description: "panics on purpose".into(),
            abi_version: 0,
            providers: vec![ProviderSpec {
                prefix: "faulty".into(),
                base_url: String::new(),
                auth: AuthScheme::None,
                api_key_env: None,
                native_formats: vec![],
                models: vec![
                    ModelSpec::chat("panic-prepare"),
                    ModelSpec::chat("panic-stream"),
                ],
            }],
        }
    }

    fn new(_config: ProviderConfig) -> Result<Self, String> {
        Ok(Faulty)
    }

    fn prepare(&self, call: &Call<'_>) -> Result<Prepared, ProviderError> {
        if call.model == "panic-prepare" {
            panic!("faulty plugin: deliberate panic in prepare");
        }
        Ok(Prepared::Local(LocalReply {
            status: 200,
            content_type: "text/plain".into(),
            body: b"ok".to_vec(),
        }))
    }

    fn parse(&self, call: &Call<'_>, _response: &Response<'_>) -> Result<Reply, ProviderError> {
        if call.model == "panic-parse" {
            panic!("faulty plugin: deliberate panic in parse");
        }
        Reply::json(
            &completion("x", call.model, unix_now(), "ok", "stop", &Usage::default()),
            None,
        )
    }

    fn stream(&self, call: &Call<'_>) -> Result<FaultyStream, ProviderError> {
        Ok(FaultyStream {
            panic: call.model == "panic-stream",
        })
    }
}

pub struct FaultyStream {
    panic: bool,
}

impl StreamDecoder for FaultyStream {
    fn feed(&mut self, _bytes: &[u8], out: &mut StreamOutput) -> Result<(), ProviderError> {
        out.chunk(&chunk(
            "x",
            "m",
            unix_now(),
            json!({"role": "assistant", "content": "first"}),
            None,
        ))?;
        out.chunk(&chunk(
            "x",
            "m",
            unix_now(),
            json!({"content": " second"}),
            None,
        ))?;
        out.usage(Usage {
            input_tokens: 1,
            output_tokens: 2,
            ..Usage::default()
        });
        Ok(())
    }

    fn finish(&mut self, out: &mut StreamOutput) -> Result<(), ProviderError> {
        if self.panic {
            panic!("faulty plugin: deliberate panic mid-stream");
        }
        out.done();
        Ok(())
    }
}

plugin_api::export_plugin!(Faulty);
