//! `GET /v1/models`: every model of every routable provider, as `prefix/model`.

use crate::server::http::{self, Body};
use crate::state::AppState;
use hyper::Response;
use serde_json::json;

pub fn list(state: &AppState) -> Response<Body> {
    let table = state.routing.load();
    let mut data = Vec::new();
    for route in table.routes_sorted() {
        for m in &route.models {
            let mut entry = json!({
                "id": format!("{}/{}", route.prefix, m.id),
                "object": "model",
                "created": 0,
                "owned_by": route.plugin,
                "kind": m.kind,
            });
            if let Some(c) = m.context_window {
                entry["context_window"] = c.into();
            }
            if let (Some(i), Some(o)) = (m.input_price_per_mtok, m.output_price_per_mtok) {
                entry["pricing"] = json!({"input_per_mtok": i, "output_per_mtok": o});
            }
            data.push(entry);
        }
    }
    let mut aliases: Vec<_> = table.aliases().collect();
    aliases.sort_by(|a, b| a.model.cmp(&b.model));
    for a in aliases {
        data.push(json!({
            "id": a.model,
            "object": "model",
            "created": 0,
            "owned_by": "aihub",
            "kind": "alias",
            "targets": a.targets,
        }));
    }
    http::json(200, &json!({"object": "list", "data": data}))
}

/// `GET /v1/models` for Anthropic clients (the request carries `anthropic-version`):
/// Anthropic's list shape, chat models only.
pub fn list_anthropic(state: &AppState) -> Response<Body> {
    let table = state.routing.load();
    let mut data = Vec::new();
    for route in table.routes_sorted() {
        for m in route
            .models
            .iter()
            .filter(|m| m.kind == plugin_api::ModelKind::Chat)
        {
            let id = format!("{}/{}", route.prefix, m.id);
            data.push(json!({
                "type": "model",
                "id": id,
                "display_name": id,
                "created_at": "1970-01-01T00:00:00Z",
            }));
        }
    }
    let mut aliases: Vec<_> = table.aliases().collect();
    aliases.sort_by(|a, b| a.model.cmp(&b.model));
    for a in aliases {
        data.push(json!({
            "type": "model",
            "id": a.model,
            "display_name": a.model,
            "created_at": "1970-01-01T00:00:00Z",
        }));
    }
    let first = data.first().map(|m| m["id"].clone());
    let last = data.last().map(|m| m["id"].clone());
    http::json(
        200,
        &json!({"data": data, "has_more": false, "first_id": first, "last_id": last}),
    )
}
