//! The manifest names the provider, its auth and the models it knows, with prices.

use aihub_anthropic::Anthropic;
use plugin_api::*;

#[test]
fn one_provider_with_priced_models() {
    let m = Anthropic::manifest();
    assert_eq!(m.name, "anthropic");
    assert_eq!(m.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(m.providers.len(), 1);
    let p = &m.providers[0];
    assert_eq!(p.prefix, "anthropic");
    assert_eq!(p.base_url, "https://api.anthropic.com");
    assert_eq!(p.auth, AuthScheme::Header("x-api-key".into()));
    assert_eq!(p.api_key_env.as_deref(), Some("ANTHROPIC_API_KEY"));
    for id in [
        "claude-sonnet-4-5",
        "claude-opus-4-1",
        "claude-haiku-4-5",
        "claude-3-5-haiku-latest",
    ] {
        assert!(p.models.iter().any(|x| x.id == id), "{id} missing");
    }
    let mut seen = std::collections::HashSet::new();
    for model in &p.models {
        assert!(seen.insert(&model.id), "{} listed twice", model.id);
        assert_eq!(model.kind, ModelKind::Chat);
        assert!(model.context_window.unwrap() >= 200_000);
        let (i, o) = (
            model.input_price_per_mtok.unwrap(),
            model.output_price_per_mtok.unwrap(),
        );
        assert!(i > 0.0 && o >= i * 4.0, "{}: {i}/{o}", model.id);
    }
    let sonnet = p
        .models
        .iter()
        .find(|x| x.id == "claude-sonnet-4-5")
        .unwrap();
    assert_eq!(
        (sonnet.input_price_per_mtok, sonnet.output_price_per_mtok),
        (Some(3.0), Some(15.0))
    );
}
