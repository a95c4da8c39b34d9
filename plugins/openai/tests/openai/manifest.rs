use crate::common::*;
use aihub_openai::{OpenAi, AZURE_BASE_URL};
use plugin_api::serde_json::{json, Value};
use plugin_api::*;
use std::collections::HashSet;

#[test]
fn manifest_lists_every_provider_with_its_documented_endpoint() {
    let m = OpenAi::manifest();
    assert_eq!(m.name, "openai");
    assert_eq!(m.version, env!("CARGO_PKG_VERSION"));
    let expect = [
        (
            "openai",
            "https://api.openai.com/v1",
            AuthScheme::Bearer,
            Some("OPENAI_API_KEY"),
        ),
        (
            "deepseek",
            "https://api.deepseek.com",
            AuthScheme::Bearer,
            Some("DEEPSEEK_API_KEY"),
        ),
        (
            "xai",
            "https://api.x.ai/v1",
            AuthScheme::Bearer,
            Some("XAI_API_KEY"),
        ),
        (
            "openrouter",
            "https://openrouter.ai/api/v1",
            AuthScheme::Bearer,
            Some("OPENROUTER_API_KEY"),
        ),
        (
            "groq",
            "https://api.groq.com/openai/v1",
            AuthScheme::Bearer,
            Some("GROQ_API_KEY"),
        ),
        (
            "mistral",
            "https://api.mistral.ai/v1",
            AuthScheme::Bearer,
            Some("MISTRAL_API_KEY"),
        ),
        (
            "together",
            "https://api.together.xyz/v1",
            AuthScheme::Bearer,
            Some("TOGETHER_API_KEY"),
        ),
        (
            "doubao",
            "https://ark.cn-beijing.volces.com/api/v3",
            AuthScheme::Bearer,
            Some("ARK_API_KEY"),
        ),
        (
            "poe",
            "https://api.poe.com/v1",
            AuthScheme::Bearer,
            Some("POE_API_KEY"),
        ),
        (
            "ollama",
            "http://127.0.0.1:11434/v1",
            AuthScheme::None,
            None,
        ),
        (
            "azure",
            AZURE_BASE_URL,
            AuthScheme::Header("api-key".into()),
            Some("AZURE_OPENAI_API_KEY"),
        ),
    ];
    assert_eq!(m.providers.len(), expect.len());
    for (spec, (prefix, base, auth, env)) in m.providers.iter().zip(expect) {
        assert_eq!(spec.prefix, prefix);
        assert_eq!(spec.base_url, base);
        assert_eq!(spec.auth, auth);
        assert_eq!(spec.api_key_env.as_deref(), env);
        assert!(!spec.models.is_empty(), "{prefix} has models");
        let ids: HashSet<_> = spec.models.iter().map(|m| &m.id).collect();
        assert_eq!(
            ids.len(),
            spec.models.len(),
            "{prefix}: model ids are unique"
        );
        for model in &spec.models {
            for price in [model.input_price_per_mtok, model.output_price_per_mtok]
                .into_iter()
                .flatten()
            {
                assert!(price.is_finite() && price >= 0.0, "{prefix}/{}", model.id);
            }
        }
    }
    // The manifest crosses the ABI as JSON.
    let round: Manifest =
        plugin_api::serde_json::from_value(plugin_api::serde_json::to_value(&m).unwrap()).unwrap();
    assert_eq!(round, m);
}

#[test]
fn well_known_prices() {
    let m = OpenAi::manifest();
    let find = |prefix: &str, id: &str| {
        m.providers
            .iter()
            .find(|p| p.prefix == prefix)
            .and_then(|p| p.models.iter().find(|m| m.id == id))
            .cloned()
            .unwrap_or_else(|| panic!("{prefix}/{id}"))
    };
    let gpt4o = find("openai", "gpt-4o");
    assert_eq!(
        (gpt4o.kind, gpt4o.context_window),
        (ModelKind::Chat, Some(128_000))
    );
    assert_eq!(
        (gpt4o.input_price_per_mtok, gpt4o.output_price_per_mtok),
        (Some(2.50), Some(10.00))
    );
    let mini = find("openai", "gpt-4o-mini");
    assert_eq!(
        (mini.input_price_per_mtok, mini.output_price_per_mtok),
        (Some(0.15), Some(0.60))
    );
    let emb = find("openai", "text-embedding-3-small");
    assert_eq!(
        (emb.kind, emb.input_price_per_mtok),
        (ModelKind::Embedding, Some(0.02))
    );
    assert_eq!(find("openai", "dall-e-3").kind, ModelKind::Image);
    assert!(find("deepseek", "deepseek-chat")
        .input_price_per_mtok
        .is_some());
    assert!(find("xai", "grok-4").output_price_per_mtok.is_some());
    assert_eq!(find("ollama", "llama3.2").input_price_per_mtok, Some(0.0));
    let seed = find("doubao", "doubao-seed-1-6-250615");
    assert_eq!(
        (seed.kind, seed.context_window),
        (ModelKind::Chat, Some(256_000))
    );
    assert!(seed.output_price_per_mtok > seed.input_price_per_mtok);
    assert_eq!(
        find("doubao", "doubao-embedding-text-240715").kind,
        ModelKind::Embedding
    );
    // Poe bills in points per message: no per-token price.
    let bot = find("poe", "Claude-Sonnet-4");
    assert_eq!(
        (bot.input_price_per_mtok, bot.output_price_per_mtok),
        (None, None)
    );
    assert!(find("poe", "GPT-4o").context_window.is_some());
}

#[test]
fn every_default_provider_but_azure_starts_from_its_manifest_entry() {
    for spec in OpenAi::manifest().providers {
        let made = OpenAi::new(ProviderConfig {
            prefix: spec.prefix.clone(),
            base_url: spec.base_url.clone(),
            options: Value::Null,
        });
        if spec.prefix == "azure" {
            let err = made.unwrap_err();
            assert!(
                err.contains("placeholder") && err.contains("azure"),
                "{err}"
            );
        } else {
            assert!(made.is_ok(), "{}: {:?}", spec.prefix, made.err());
        }
    }
}

#[test]
fn missing_or_invalid_base_url_is_refused_clearly() {
    let make = |base: &str, options: Value| {
        OpenAi::new(ProviderConfig {
            prefix: "mine".into(),
            base_url: base.into(),
            options,
        })
    };
    let err = make("", Value::Null).unwrap_err();
    assert!(err.contains("base_url is missing"), "{err}");
    let err = make("api.example.com/v1", Value::Null).unwrap_err();
    assert!(err.contains("http"), "{err}");
    let err = make("https://api.example.com/v1", json!({"headers": "x"})).unwrap_err();
    assert!(err.contains("options.headers"), "{err}");
    assert!(make("https://api.example.com/v1/", json!({})).is_ok());
    // A trailing slash is not doubled in URLs.
    let p = provider("mine", "https://api.example.com/v1/", Value::Null);
    let req = upstream(p.prepare(&chat(br#"{"messages":[]}"#, false, false)));
    assert_eq!(req.url, "https://api.example.com/v1/chat/completions");
}
