//! The providers this plugin offers by default and the models it knows.
//!
//! Prices are list prices in USD per million tokens as the providers publish them
//! (standard tier, prompts under any long-context surcharge); operators override rates
//! through the admin API when they change. A model without a published per-token price
//! (image models billed per image, routers whose price depends on the route) has none.

use plugin_api::{AuthScheme, Format, Manifest, ModelKind, ModelSpec, ProviderSpec};

/// The Azure endpoint's shape; the operator must replace it with their resource's URL.
pub const AZURE_BASE_URL: &str = "https://{resource}.openai.azure.com";

fn model(
    id: &str,
    kind: ModelKind,
    context: Option<u32>,
    input: Option<f64>,
    output: Option<f64>,
) -> ModelSpec {
    ModelSpec {
        id: id.to_string(),
        kind,
        context_window: context,
        input_price_per_mtok: input,
        output_price_per_mtok: output,
    }
}

fn chat(id: &str, context: u32, input: f64, output: f64) -> ModelSpec {
    model(
        id,
        ModelKind::Chat,
        Some(context),
        Some(input),
        Some(output),
    )
}

/// Embedding models bill input only.
fn embedding(id: &str, context: u32, input: f64) -> ModelSpec {
    model(
        id,
        ModelKind::Embedding,
        Some(context),
        Some(input),
        Some(0.0),
    )
}

fn image(id: &str) -> ModelSpec {
    model(id, ModelKind::Image, None, None, None)
}

/// Speech to text or text to speech (priced per minute or per character upstream, which
/// per-token rates do not express).
fn audio(id: &str) -> ModelSpec {
    model(id, ModelKind::Audio, None, None, None)
}

fn provider(
    prefix: &str,
    base_url: &str,
    auth: AuthScheme,
    key_env: Option<&str>,
    models: Vec<ModelSpec>,
) -> ProviderSpec {
    // Every server here takes OpenAI chat as it is; OpenAI and Poe also Responses.
    let mut native_formats = vec![Format::OpenAiChat];
    if matches!(prefix, "openai" | "poe") {
        native_formats.push(Format::OpenAiResponses);
    }
    ProviderSpec {
        prefix: prefix.to_string(),
        base_url: base_url.to_string(),
        auth,
        api_key_env: key_env.map(str::to_string),
        native_formats,
        models,
    }
}

fn openai_models() -> Vec<ModelSpec> {
    vec![
        chat("gpt-5", 400_000, 1.25, 10.00),
        chat("gpt-5-mini", 400_000, 0.25, 2.00),
        chat("gpt-5-nano", 400_000, 0.05, 0.40),
        chat("gpt-4.1", 1_047_576, 2.00, 8.00),
        chat("gpt-4.1-mini", 1_047_576, 0.40, 1.60),
        chat("gpt-4.1-nano", 1_047_576, 0.10, 0.40),
        chat("gpt-4o", 128_000, 2.50, 10.00),
        chat("gpt-4o-mini", 128_000, 0.15, 0.60),
        chat("o3", 200_000, 2.00, 8.00),
        chat("o4-mini", 200_000, 1.10, 4.40),
        chat("o3-mini", 200_000, 1.10, 4.40),
        embedding("text-embedding-3-small", 8_191, 0.02),
        embedding("text-embedding-3-large", 8_191, 0.13),
        embedding("text-embedding-ada-002", 8_191, 0.10),
        image("gpt-image-1"),
        image("dall-e-3"),
        audio("whisper-1"),
        audio("gpt-4o-transcribe"),
        audio("gpt-4o-mini-transcribe"),
        audio("tts-1"),
        audio("tts-1-hd"),
        audio("gpt-4o-mini-tts"),
    ]
}

/// Azure deployments are usually named after their model; global-standard prices match
/// OpenAI's.
fn azure_models() -> Vec<ModelSpec> {
    vec![
        chat("gpt-4.1", 1_047_576, 2.00, 8.00),
        chat("gpt-4.1-mini", 1_047_576, 0.40, 1.60),
        chat("gpt-4o", 128_000, 2.50, 10.00),
        chat("gpt-4o-mini", 128_000, 0.15, 0.60),
        chat("o4-mini", 200_000, 1.10, 4.40),
        embedding("text-embedding-3-small", 8_191, 0.02),
        embedding("text-embedding-3-large", 8_191, 0.13),
        image("dall-e-3"),
    ]
}

/// Volcengine Ark names models by id (`doubao-seed-1-6-250615`) or by the operator's
/// endpoint id (`ep-...`); both pass through as the model. Prices: Ark's CNY list prices
/// for the shortest input tier (prompts up to 32k tokens) converted at about 7.2 CNY to
/// the USD, from memory: to be checked against the console.
fn doubao_models() -> Vec<ModelSpec> {
    vec![
        chat("doubao-seed-1-6-250615", 256_000, 0.11, 1.11),
        chat("doubao-seed-1-6-thinking-250715", 256_000, 0.11, 1.11),
        chat("doubao-seed-1-6-flash-250715", 256_000, 0.02, 0.21),
        chat("doubao-1-5-pro-32k-250115", 32_768, 0.11, 0.28),
        embedding("doubao-embedding-text-240715", 4_096, 0.07),
    ]
}

/// Poe addresses bots by name; it bills in compute points per message, which vary by
/// bot and by message, so no per-token price is set.
fn poe_models() -> Vec<ModelSpec> {
    let bot = |id: &str, context: u32| model(id, ModelKind::Chat, Some(context), None, None);
    vec![
        bot("Claude-Sonnet-4", 200_000),
        bot("GPT-4o", 128_000),
        bot("Gemini-2.5-Pro", 1_048_576),
        bot("Grok-4", 256_000),
        bot("Llama-3.1-405B", 128_000),
    ]
}

/// Local models cost nothing per token; their context depends on how Ollama runs them.
fn ollama_models() -> Vec<ModelSpec> {
    let local = |id: &str, kind| model(id, kind, None, Some(0.0), Some(0.0));
    vec![
        local("llama3.2", ModelKind::Chat),
        local("llama3.1", ModelKind::Chat),
        local("qwen2.5", ModelKind::Chat),
        local("mistral", ModelKind::Chat),
        local("nomic-embed-text", ModelKind::Embedding),
    ]
}

pub(crate) fn manifest() -> Manifest {
    Manifest {
        name: "openai".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        description: "OpenAI and OpenAI-compatible APIs (DeepSeek, xAI, OpenRouter, Groq, Mistral, Together, Doubao/Volcengine Ark, Poe, Ollama, Azure OpenAI)".into(),
        abi_version: 0, // filled in by export_plugin!
        providers: vec![
            provider("openai", "https://api.openai.com/v1", AuthScheme::Bearer, Some("OPENAI_API_KEY"), openai_models()),
            provider(
                "deepseek",
                "https://api.deepseek.com",
                AuthScheme::Bearer,
                Some("DEEPSEEK_API_KEY"),
                vec![
                    chat("deepseek-chat", 128_000, 0.28, 0.42),
                    chat("deepseek-reasoner", 128_000, 0.28, 0.42),
                ],
            ),
            provider(
                "xai",
                "https://api.x.ai/v1",
                AuthScheme::Bearer,
                Some("XAI_API_KEY"),
                vec![
                    chat("grok-4", 256_000, 3.00, 15.00),
                    chat("grok-3", 131_072, 3.00, 15.00),
                    chat("grok-3-mini", 131_072, 0.30, 0.50),
                ],
            ),
            provider(
                "openrouter",
                "https://openrouter.ai/api/v1",
                AuthScheme::Bearer,
                Some("OPENROUTER_API_KEY"),
                vec![
                    chat("openai/gpt-4o", 128_000, 2.50, 10.00),
                    chat("openai/gpt-4o-mini", 128_000, 0.15, 0.60),
                    chat("anthropic/claude-sonnet-4", 200_000, 3.00, 15.00),
                    chat("google/gemini-2.5-flash", 1_048_576, 0.30, 2.50),
                    model("meta-llama/llama-3.3-70b-instruct", ModelKind::Chat, Some(131_072), None, None),
                ],
            ),
            provider(
                "groq",
                "https://api.groq.com/openai/v1",
                AuthScheme::Bearer,
                Some("GROQ_API_KEY"),
                vec![
                    chat("llama-3.3-70b-versatile", 131_072, 0.59, 0.79),
                    chat("llama-3.1-8b-instant", 131_072, 0.05, 0.08),
                ],
            ),
            provider(
                "mistral",
                "https://api.mistral.ai/v1",
                AuthScheme::Bearer,
                Some("MISTRAL_API_KEY"),
                vec![
                    chat("mistral-large-latest", 131_072, 2.00, 6.00),
                    chat("mistral-medium-latest", 131_072, 0.40, 2.00),
                    chat("mistral-small-latest", 131_072, 0.10, 0.30),
                    chat("codestral-latest", 256_000, 0.30, 0.90),
                    embedding("mistral-embed", 8_192, 0.10),
                ],
            ),
            provider(
                "together",
                "https://api.together.xyz/v1",
                AuthScheme::Bearer,
                Some("TOGETHER_API_KEY"),
                vec![
                    chat("meta-llama/Llama-3.3-70B-Instruct-Turbo", 131_072, 0.88, 0.88),
                    chat("meta-llama/Meta-Llama-3.1-8B-Instruct-Turbo", 131_072, 0.18, 0.18),
                    chat("deepseek-ai/DeepSeek-V3", 131_072, 1.25, 1.25),
                ],
            ),
            provider(
                "doubao",
                "https://ark.cn-beijing.volces.com/api/v3",
                AuthScheme::Bearer,
                Some("ARK_API_KEY"),
                doubao_models(),
            ),
            provider("poe", "https://api.poe.com/v1", AuthScheme::Bearer, Some("POE_API_KEY"), poe_models()),
            provider("ollama", "http://127.0.0.1:11434/v1", AuthScheme::None, None, ollama_models()),
            provider(
                "azure",
                AZURE_BASE_URL,
                AuthScheme::Header("api-key".into()),
                Some("AZURE_OPENAI_API_KEY"),
                azure_models(),
            ),
        ],
    }
}
