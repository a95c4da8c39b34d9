//! Test fixture: a plugin written for, and built against, plugin ABI 1 (the
//! `aihub-plugin-api` before ABI 2), exported the ordinary way. The current host must
//! refuse it with the message that says to rebuild. Built by `make abi1-fixture` (part of
//! `make test-fixtures`) outside the workspace, so this file uses the ABI 1 SDK.

use plugin_api::*;

pub struct Abi1;

impl Plugin for Abi1 {
    type Decoder = Nothing;

    fn manifest() -> Manifest {
        Manifest {
            name: "abi1".into(),
            version: "0.0.1".into(),
            description: "built against plugin ABI 1".into(),
            abi_version: 0,
            providers: vec![ProviderSpec {
                prefix: "abione".into(),
                base_url: String::new(),
                auth: AuthScheme::None,
                api_key_env: None,
                models: vec![ModelSpec::chat("m")],
            }],
        }
    }

    fn new(_config: ProviderConfig) -> Result<Self, String> {
        Ok(Abi1)
    }

    fn prepare(&self, call: &Call<'_>) -> Result<Prepared, ProviderError> {
        // ABI 1's call had the key as a field.
        let _ = call.api_key;
        Err(ProviderError::internal("an ABI 1 plugin must never be routed to"))
    }

    fn parse(&self, _call: &Call<'_>, _response: &Response<'_>) -> Result<Reply, ProviderError> {
        Err(ProviderError::internal("an ABI 1 plugin must never be routed to"))
    }

    fn stream(&self, _call: &Call<'_>) -> Result<Nothing, ProviderError> {
        Err(ProviderError::internal("an ABI 1 plugin must never be routed to"))
    }
}

pub struct Nothing;

impl StreamDecoder for Nothing {
    fn feed(&mut self, _bytes: &[u8], _out: &mut StreamOutput) -> Result<(), ProviderError> {
        Ok(())
    }
    fn finish(&mut self, _out: &mut StreamOutput) -> Result<(), ProviderError> {
        Ok(())
    }
}

plugin_api::export_plugin!(Abi1);
