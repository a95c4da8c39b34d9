//! Test fixture: claims the prefix `echo`, already taken by the echo plugin.

use plugin_api::*;

pub struct Dupe;

impl Plugin for Dupe {
    type Decoder = Nothing;

    fn manifest() -> Manifest {
        Manifest {
            name: "dupe".into(),
            version: "0.0.1".into(),
            description: "claims a taken prefix".into(),
            abi_version: 0,
            providers: vec![ProviderSpec {
                prefix: "echo".into(),
                base_url: String::new(),
                auth: AuthScheme::None,
                api_key_env: None,
                native_formats: vec![],
                models: vec![],
            }],
        }
    }

    fn new(_config: ProviderConfig) -> Result<Self, String> {
        Ok(Dupe)
    }

    fn prepare(&self, _call: &Call<'_>) -> Result<Prepared, ProviderError> {
        Err(ProviderError::internal("dupe must never be routed to"))
    }

    fn parse(&self, _call: &Call<'_>, _response: &Response<'_>) -> Result<Reply, ProviderError> {
        Err(ProviderError::internal("dupe must never be routed to"))
    }

    fn stream(&self, _call: &Call<'_>) -> Result<Nothing, ProviderError> {
        Err(ProviderError::internal("dupe must never be routed to"))
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

plugin_api::export_plugin!(Dupe);
