//! What the plugin offers: the `anthropic` provider and the models it knows.

use plugin_api::{AuthScheme, Format, Manifest, ModelSpec, ProviderSpec};

/// A chat model with its context window and list prices (USD per million tokens).
fn chat(id: &str, context_window: u32, input: f64, output: f64) -> ModelSpec {
    ModelSpec {
        context_window: Some(context_window),
        input_price_per_mtok: Some(input),
        output_price_per_mtok: Some(output),
        ..ModelSpec::chat(id)
    }
}

/// Anthropic's published list prices (standard tier, prompts up to 200K tokens). Aliases
/// and the dated snapshots they point to are both listed: clients use either.
fn models() -> Vec<ModelSpec> {
    vec![
        chat("claude-opus-4-5", 200_000, 5.00, 25.00),
        chat("claude-opus-4-5-20251101", 200_000, 5.00, 25.00),
        chat("claude-sonnet-4-5", 200_000, 3.00, 15.00),
        chat("claude-sonnet-4-5-20250929", 200_000, 3.00, 15.00),
        chat("claude-haiku-4-5", 200_000, 1.00, 5.00),
        chat("claude-haiku-4-5-20251001", 200_000, 1.00, 5.00),
        chat("claude-opus-4-1", 200_000, 15.00, 75.00),
        chat("claude-opus-4-1-20250805", 200_000, 15.00, 75.00),
        chat("claude-opus-4-0", 200_000, 15.00, 75.00),
        chat("claude-opus-4-20250514", 200_000, 15.00, 75.00),
        chat("claude-sonnet-4-0", 200_000, 3.00, 15.00),
        chat("claude-sonnet-4-20250514", 200_000, 3.00, 15.00),
        chat("claude-3-7-sonnet-latest", 200_000, 3.00, 15.00),
        chat("claude-3-7-sonnet-20250219", 200_000, 3.00, 15.00),
        chat("claude-3-5-haiku-latest", 200_000, 0.80, 4.00),
        chat("claude-3-5-haiku-20241022", 200_000, 0.80, 4.00),
        chat("claude-3-haiku-20240307", 200_000, 0.25, 1.25),
    ]
}

pub fn manifest() -> Manifest {
    Manifest {
        name: "anthropic".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        description: "Anthropic Claude through the Messages API, spoken as OpenAI Chat Completions"
            .into(),
        abi_version: 0, // filled in by export_plugin!
        providers: vec![ProviderSpec {
            prefix: "anthropic".into(),
            base_url: crate::config::DEFAULT_BASE_URL.into(),
            auth: AuthScheme::Header("x-api-key".into()),
            api_key_env: Some("ANTHROPIC_API_KEY".into()),
            native_formats: vec![Format::AnthropicMessages],
            models: models(),
        }],
    }
}
