//! The provider this plugin offers by default and the models it knows.
//!
//! Prices are AWS's on-demand list prices in USD per million tokens in us-east-1 as
//! remembered when this catalog was written (not fetched): check the Bedrock pricing
//! page and override rates through the admin API where they matter. Other regions and
//! cross-region inference profiles (`us.`, `eu.` model ids) may price differently.

use crate::config::ENV_BEARER;
use plugin_api::{AuthScheme, Manifest, ModelKind, ModelSpec, ProviderSpec};

fn model(id: &str, kind: ModelKind, context: u32, input: f64, output: f64) -> ModelSpec {
    ModelSpec {
        id: id.to_string(),
        kind,
        context_window: Some(context),
        input_price_per_mtok: Some(input),
        output_price_per_mtok: Some(output),
    }
}

fn chat(id: &str, context: u32, input: f64, output: f64) -> ModelSpec {
    model(id, ModelKind::Chat, context, input, output)
}

/// Embedding models bill input only.
fn embedding(id: &str, context: u32, input: f64) -> ModelSpec {
    model(id, ModelKind::Embedding, context, input, 0.0)
}

pub fn manifest() -> Manifest {
    Manifest {
        name: "bedrock".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        description: "Amazon Bedrock: chat through the Converse API (tools, images, \
                      documents, streaming), Titan and Cohere embeddings; SigV4 or API keys"
            .into(),
        abi_version: 0, // filled in by export_plugin!
        providers: vec![ProviderSpec {
            prefix: "bedrock".into(),
            // Empty: the regional endpoint of the call's region (see the crate docs).
            base_url: String::new(),
            // The host must let calls through without a stored credential: the plugin
            // then signs with the keys it read from the environment.
            auth: AuthScheme::None,
            api_key_env: Some(ENV_BEARER.into()),
            native_formats: vec![],
            models: vec![
                chat(
                    "anthropic.claude-sonnet-4-20250514-v1:0",
                    200_000,
                    3.0,
                    15.0,
                ),
                chat(
                    "anthropic.claude-3-7-sonnet-20250219-v1:0",
                    200_000,
                    3.0,
                    15.0,
                ),
                chat(
                    "anthropic.claude-3-5-sonnet-20241022-v2:0",
                    200_000,
                    3.0,
                    15.0,
                ),
                chat(
                    "anthropic.claude-3-5-sonnet-20240620-v1:0",
                    200_000,
                    3.0,
                    15.0,
                ),
                chat(
                    "anthropic.claude-3-5-haiku-20241022-v1:0",
                    200_000,
                    0.80,
                    4.0,
                ),
                chat(
                    "anthropic.claude-3-haiku-20240307-v1:0",
                    200_000,
                    0.25,
                    1.25,
                ),
                chat("amazon.nova-pro-v1:0", 300_000, 0.80, 3.20),
                chat("amazon.nova-lite-v1:0", 300_000, 0.06, 0.24),
                chat("amazon.nova-micro-v1:0", 128_000, 0.035, 0.14),
                chat("meta.llama3-1-70b-instruct-v1:0", 128_000, 0.72, 0.72),
                chat("meta.llama3-1-8b-instruct-v1:0", 128_000, 0.22, 0.22),
                chat("mistral.mistral-large-2407-v1:0", 128_000, 2.0, 6.0),
                embedding("amazon.titan-embed-text-v2:0", 8_192, 0.02),
                embedding("amazon.titan-embed-text-v1", 8_192, 0.10),
                embedding("cohere.embed-english-v3", 512, 0.10),
                embedding("cohere.embed-multilingual-v3", 512, 0.10),
            ],
        }],
    }
}
