//! The provider this plugin offers by default and the models it knows.
//!
//! Ideogram bills per image, not per token, and [`ModelSpec`] has only per-token
//! prices, so no model carries a price; operators set rates through the admin API.
//! For reference, the list prices in USD per image when this was written (from
//! memory, to be checked): 3.0 Flash/Turbo/Default/Quality ~0.03/0.03/0.06/0.09, V_2
//! 0.08, V_2_TURBO 0.05, V_2A 0.04, V_2A_TURBO 0.025, V_1 0.06, V_1_TURBO 0.02.

use plugin_api::{AuthScheme, Manifest, ModelKind, ModelSpec, ProviderSpec};

/// Ideogram's API root; both the 3.0 and the legacy paths hang off it.
pub const BASE_URL: &str = "https://api.ideogram.ai";

/// The header Ideogram reads the key from.
pub const KEY_HEADER: &str = "Api-Key";

fn image(id: &str) -> ModelSpec {
    ModelSpec {
        id: id.to_string(),
        kind: ModelKind::Image,
        context_window: None,
        input_price_per_mtok: None,
        output_price_per_mtok: None,
    }
}

pub fn manifest() -> Manifest {
    let mut models: Vec<ModelSpec> = crate::request::V3_MODELS
        .iter()
        .map(|(id, _)| image(id))
        .collect();
    models.extend(crate::request::LEGACY_MODELS.iter().map(|id| image(id)));
    Manifest {
        name: "ideogram".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        description: "Ideogram image generation (3.0 and the legacy V_1/V_2 models) behind \
                      OpenAI's images API"
            .into(),
        abi_version: 0, // filled in by export_plugin!
        providers: vec![ProviderSpec {
            prefix: "ideogram".into(),
            base_url: BASE_URL.into(),
            auth: AuthScheme::Header(KEY_HEADER.into()),
            api_key_env: Some("IDEOGRAM_API_KEY".into()),
            native_formats: vec![],
            models,
        }],
    }
}
