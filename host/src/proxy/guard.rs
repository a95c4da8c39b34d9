//! Records every consumer call exactly once: on success, on error, or — when the handler
//! or the stream is dropped because the client went away — as cancelled.

use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::calls::{CallRecord, CallStatus};
use crate::store::now_ms;
use plugin_api::{Endpoint, Usage};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct CallGuard {
    state: Arc<AppState>,
    start: Instant,
    rec: Option<CallRecord>,
    ttfb: Option<Duration>,
}

fn endpoint_name(e: Endpoint) -> &'static str {
    match e {
        Endpoint::Chat => "chat",
        Endpoint::Embeddings => "embeddings",
        Endpoint::Images => "images",
    }
}

impl CallGuard {
    pub fn new(
        state: &Arc<AppState>,
        request_id: &str,
        principal: &Principal,
        endpoint: Endpoint,
    ) -> Self {
        CallGuard {
            state: state.clone(),
            start: Instant::now(),
            ttfb: None,
            rec: Some(CallRecord {
                request_id: request_id.to_string(),
                app_id: Some(principal.app_id),
                key_id: Some(principal.key_id),
                provider: String::new(),
                model: String::new(),
                credential_id: None,
                endpoint: endpoint_name(endpoint),
                stream: false,
                status: CallStatus::Cancelled,
                http_status: 499,
                error_class: None,
                error_message: None,
                input_tokens: 0,
                output_tokens: 0,
                cached_tokens: 0,
                cost_micros: 0,
                latency_ms: 0,
                ttfb_ms: None,
                attempts: 0,
                created_at: now_ms(),
                credentials_tried: Vec::new(),
                requested_model: None,
            }),
        }
    }

    pub fn started(&self) -> Instant {
        self.start
    }

    pub fn rec(&mut self) -> Option<&mut CallRecord> {
        self.rec.as_mut()
    }

    /// Moves the recording duty out (into a stream's task), leaving an inert guard.
    pub fn take(&mut self) -> CallGuard {
        CallGuard {
            state: self.state.clone(),
            start: self.start,
            rec: self.rec.take(),
            ttfb: self.ttfb,
        }
    }

    pub fn first_byte(&mut self) {
        self.ttfb.get_or_insert_with(|| self.start.elapsed());
    }

    pub fn usage(&mut self, usage: Option<Usage>) {
        let Some(u) = usage else { return };
        let routes = self.state.routes.load();
        if let Some(rec) = self.rec.as_mut() {
            rec.input_tokens = u.input_tokens;
            rec.output_tokens = u.output_tokens;
            rec.cached_tokens = u.cached_input_tokens;
            rec.cost_micros = routes
                .price(&rec.model)
                .map(|r| r.cost_micros(u.input_tokens, u.output_tokens, u.cached_input_tokens))
                .unwrap_or(0);
        }
    }

    fn finish(&mut self, status: CallStatus, http_status: u16, error: Option<&ApiError>) {
        let Some(mut rec) = self.rec.take() else {
            return;
        };
        rec.status = status;
        rec.http_status = http_status;
        if let Some(e) = error {
            rec.error_class = Some(e.kind().to_string());
            rec.error_message = Some(e.to_string().chars().take(1000).collect());
        }
        rec.latency_ms = self.start.elapsed().as_millis() as u64;
        rec.ttfb_ms = self.ttfb.map(|t| t.as_millis() as u64);
        self.state.calls.record(rec);
    }

    pub fn ok(&mut self) {
        self.first_byte();
        self.finish(CallStatus::Ok, 200, None);
    }

    pub fn fail(&mut self, e: &ApiError) {
        self.finish(CallStatus::Error, e.status(), Some(e));
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if self.rec.is_some() {
            self.finish(CallStatus::Cancelled, 499, None);
        }
    }
}
