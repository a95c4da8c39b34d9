//! The provider this plugin offers by default and the models it knows.
//!
//! Prices are Google's list prices in USD per million tokens for the paid tier of the
//! Gemini Developer API, standard (not batch) rates, prompts under the 200k-token
//! long-context surcharge. Thinking tokens bill as output. A model without a published
//! per-token price has none; operators override rates through the admin API.

use plugin_api::{AuthScheme, Manifest, ModelKind, ModelSpec, ProviderSpec};

/// Where Google AI Studio keys are accepted.
pub const BASE_URL: &str = "https://generativelanguage.googleapis.com/v1beta";

/// Input and output token limits of the current text models (1,048,576 input tokens).
const ONE_MILLION: u32 = 1_048_576;

fn chat(id: &str, input: f64, output: f64) -> ModelSpec {
    ModelSpec {
        id: id.to_string(),
        kind: ModelKind::Chat,
        context_window: Some(ONE_MILLION),
        input_price_per_mtok: Some(input),
        output_price_per_mtok: Some(output),
    }
}

/// Embedding models bill input only; both accept 2,048 input tokens.
fn embedding(id: &str, input: Option<f64>) -> ModelSpec {
    ModelSpec {
        id: id.to_string(),
        kind: ModelKind::Embedding,
        context_window: Some(2_048),
        input_price_per_mtok: input,
        output_price_per_mtok: input.map(|_| 0.0),
    }
}

pub fn manifest() -> Manifest {
    Manifest {
        name: "gemini".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        description: "Google Gemini (AI Studio / Generative Language API): chat, tools, \
                      vision, streaming, embeddings"
            .into(),
        abi_version: 0, // filled in by export_plugin!
        providers: vec![ProviderSpec {
            prefix: "gemini".into(),
            base_url: BASE_URL.into(),
            auth: AuthScheme::Header("x-goog-api-key".into()),
            api_key_env: Some("GEMINI_API_KEY".into()),
            native_formats: vec![],
            models: vec![
                chat("gemini-2.5-pro", 1.25, 10.0),
                chat("gemini-2.5-flash", 0.30, 2.50),
                chat("gemini-2.5-flash-lite", 0.10, 0.40),
                chat("gemini-2.0-flash", 0.10, 0.40),
                embedding("gemini-embedding-001", Some(0.15)),
                // Offered free of charge; no per-token price is published for it.
                embedding("text-embedding-004", None),
            ],
        }],
    }
}
