//! The playground: `POST /api/console/playground` takes a chat request from a logged-in
//! console and runs it through the normal pipeline as the built-in app `playground`, so
//! its calls are authenticated, limited, billed and logged like any other. The app's key
//! is minted by this process, held only in its memory and never sent to the browser.

use crate::admin::service::AdminService;
use crate::error::ApiError;
use crate::inbound::Format;
use crate::server::http::Body;
use crate::state::AppState;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response};
use plugin_api::Endpoint;
use std::sync::Arc;

/// The built-in app's name.
pub const APP_NAME: &str = "playground";
/// The name of the keys this process mints for it.
const KEY_NAME: &str = "console playground";

/// This instance's key for the playground app, minted on first use.
#[derive(Default)]
pub struct PlaygroundKey {
    key: tokio::sync::Mutex<Option<String>>,
}

impl PlaygroundKey {
    async fn get(&self, state: &Arc<AppState>) -> Result<String, ApiError> {
        let mut held = self.key.lock().await;
        if let Some(k) = held.as_ref() {
            return Ok(k.clone());
        }
        let apps = &state.stores.apps;
        let app = match apps
            .list_apps()
            .await?
            .into_iter()
            .find(|a| a.name == APP_NAME)
        {
            Some(a) => a,
            None => {
                let app = apps.create_app(APP_NAME.into(), None).await?;
                // Like an app made through the admin API: the configured new-app grant.
                let c = &state.config.billing;
                if let Some((amount, expires)) =
                    crate::billing::new_app_grant(c, crate::store::now_ms())
                {
                    let note = Some("new app grant".to_string());
                    let credits = &state.stores.credits;
                    credits.grant_credits(app.id, amount, expires, note).await?;
                }
                app
            }
        };
        // Keys an earlier run minted are unknown now: revoke them rather than leave them.
        let admin = AdminService::new(state);
        for k in apps.list_keys(app.id).await? {
            if k.revoked_at.is_none() && k.name.as_deref() == Some(KEY_NAME) {
                admin.revoke_key(app.id, k.id).await?;
            }
        }
        let (_, key) = apps.create_key(app.id, Some(KEY_NAME.into())).await?;
        *held = Some(key.clone());
        Ok(key)
    }
}

pub async fn chat(
    state: &Arc<AppState>,
    mut req: Request<Incoming>,
    request_id: &str,
) -> Result<Response<Body>, ApiError> {
    super::auth::admin(state, &req)?;
    let key = state.console.playground.get(state).await?;
    let h = req.headers_mut();
    for name in ["cookie", "x-api-key", super::auth::CSRF_HEADER] {
        h.remove(name);
    }
    let bearer = HeaderValue::from_str(&format!("Bearer {key}"))
        .map_err(|_| ApiError::Internal("playground key is not a header value".into()))?;
    h.insert(hyper::header::AUTHORIZATION, bearer);
    crate::pipeline::handle(state, req, Endpoint::Chat, Format::OpenAiChat, request_id).await
}
