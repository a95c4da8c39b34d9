//! The context every phase of one call shares: the call record being built, timings,
//! the span, and the duty to account for the call exactly once — on success, on error,
//! or, when the handler or the stream is dropped because the client went away, as
//! cancelled: the call record for the store, the metrics, the access-log line and the
//! trace span's outcome.

use crate::auth::Principal;
use crate::error::ApiError;
use crate::inbound::Format;
use crate::observability::metrics::{
    CallLabels, CostLabels, LatencyLabels, ProviderLabels, TokenLabels,
};
use crate::state::AppState;
use crate::store::calls::{CallRecord, CallStatus};
use crate::store::now_ms;
use crate::store::rates::Tokens;
use plugin_api::{Endpoint, Usage};
use prometheus_client::metrics::histogram::Histogram;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a call's time went, for `Server-Timing` (milliseconds, summed over attempts).
#[derive(Debug, Default, Clone, Copy)]
pub struct Timings {
    pub auth: Duration,
    pub route: Duration,
    pub plugin: Duration,
    pub upstream: Duration,
}

pub struct CallContext {
    state: Arc<AppState>,
    start: Instant,
    rec: Option<CallRecord>,
    ttfb: Option<Duration>,
    pub(super) app: std::sync::Arc<str>,
    /// The served model is in its provider's catalog (a bounded metric label).
    pub known_model: bool,
    /// The response head went out as a 200 stream before the outcome was known.
    streaming: bool,
    pub span: tracing::Span,
    pub timings: Timings,
    /// `telemetry.capture_content`: prompt and completion text go into the span.
    pub capture_content: bool,
    /// Each failed attempt's error, in order, for the call record.
    attempt_errors: Vec<String>,
    /// The format the client spoke: stream ends and errors are rendered in it.
    pub format: Format,
    pub app_id: i64,
    pub key_id: i64,
    /// What the rate limits took for the call; settled and released when it is recorded.
    pub admission: Option<crate::traffic::Admission>,
    /// The tightest limits' state, for the response's `x-ratelimit-*` headers.
    pub rate_headers: Option<crate::traffic::RateHeaders>,
    /// A cache miss to fill with the answer (moves into a stream's task).
    pub cache: Option<crate::cache::Slot>,
    /// `x-aihub-cache` for the response: `hit` or `miss`, when the call was cacheable.
    pub cache_status: Option<&'static str>,
    /// Seconds transcribed, characters spoken or images generated, for rates priced by
    /// them.
    pub media: crate::store::rates::MediaUnits,
    /// What admission reserved under spend caps; settled when the call is recorded.
    pub budget: Option<crate::billing::budgets::Reservation>,
    /// The usage a stream has reported so far: priced if the stream is dropped before it
    /// accounts (the client went away).
    seen_usage: Option<Usage>,
    /// The provider's time-to-first-token histogram: a stream's context has one.
    ttft: Option<Histogram>,
}

pub fn endpoint_name(e: Endpoint) -> &'static str {
    match e {
        Endpoint::Chat => "chat",
        Endpoint::Embeddings => "embeddings",
        Endpoint::Images => "images",
        Endpoint::AudioTranscriptions => "audio_transcriptions",
        Endpoint::AudioTranslations => "audio_translations",
        Endpoint::AudioSpeech => "audio_speech",
    }
}

impl CallContext {
    pub fn new(
        state: &Arc<AppState>,
        request_id: &str,
        principal: &Principal,
        endpoint: Endpoint,
        span: tracing::Span,
        start: Instant,
    ) -> Self {
        CallContext {
            state: state.clone(),
            start,
            ttfb: None,
            app: principal.app_name.clone(),
            known_model: false,
            streaming: false,
            span,
            timings: Timings::default(),
            capture_content: false,
            attempt_errors: Vec::new(),
            format: Format::OpenAiChat,
            app_id: principal.app_id,
            key_id: principal.key_id,
            admission: None,
            rate_headers: None,
            cache: None,
            cache_status: None,
            media: Default::default(),
            budget: None,
            seen_usage: None,
            ttft: None,
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
                credentials_tried: Default::default(),
                requested_model: None,
                format: "openai_chat",
                cache_hit: false,
                charge_nanos: 0,
                hold_nanos: 0,
                hold_id: None,
            }),
        }
    }

    pub fn started(&self) -> Instant {
        self.start
    }

    pub fn rec(&mut self) -> Option<&mut CallRecord> {
        self.rec.as_mut()
    }

    /// Moves the accounting duty into a stream's body, leaving an inert context; `ttft` is
    /// the provider's time-to-first-token histogram, which the stream's first byte feeds.
    pub fn take_for_stream(&mut self, ttft: &Histogram) -> CallContext {
        self.streaming = true;
        CallContext {
            state: self.state.clone(),
            start: self.start,
            rec: self.rec.take(),
            ttfb: self.ttfb,
            app: self.app.clone(),
            known_model: self.known_model,
            streaming: true,
            span: self.span.clone(),
            timings: self.timings,
            capture_content: self.capture_content,
            attempt_errors: std::mem::take(&mut self.attempt_errors),
            format: self.format,
            app_id: self.app_id,
            key_id: self.key_id,
            admission: self.admission.take(),
            rate_headers: None,
            cache: self.cache.take(),
            cache_status: None,
            media: self.media,
            budget: self.budget.take(),
            seen_usage: self.seen_usage.take(),
            ttft: Some(ttft.clone()),
        }
    }

    /// Keeps the usage a stream reported so far, for the record of a stream the client
    /// leaves (see `Drop`).
    pub fn seen_usage(&mut self, usage: Option<Usage>) {
        self.seen_usage = usage;
    }

    pub fn first_byte(&mut self) {
        if self.ttfb.is_none() {
            let t = self.start.elapsed();
            self.ttfb = Some(t);
            if let Some(h) = &self.ttft {
                h.observe(t.as_secs_f64());
            }
        }
    }

    /// Tokens, cost (at the model's cost rate) and, with billing on, the charge (at the
    /// app's explicit price when it has one, else the cost rate with the margin).
    pub fn usage(&mut self, usage: Option<Usage>) {
        let Some(u) = usage else { return };
        let routes = self.state.routing.load();
        let tokens = Tokens::from(&u);
        if let Some(rec) = self.rec.as_mut() {
            rec.input_tokens = u.input_tokens;
            rec.output_tokens = u.output_tokens;
            rec.cached_tokens = u.cached_input_tokens;
            if self.state.credits.enabled {
                // From the tokens and the rate, not the rounded micro-USD cost: a tiny
                // call still costs at least a nano-credit.
                rec.charge_nanos = routes.charge_rate(self.app_id, &rec.model).map_or(0, |by| {
                    self.state.credits.pricing.charge_or_max(by, &tokens)
                });
            }
            rec.cost_micros = match routes.price(&rec.model) {
                None => 0,
                Some(r) => r.cost_micros(&tokens).unwrap_or_else(|| {
                    tracing::warn!(
                        model = %rec.model,
                        input_tokens = u.input_tokens,
                        output_tokens = u.output_tokens,
                        "reported usage is too large to price; cost recorded as 0"
                    );
                    0
                }),
            };
        }
    }

    /// Adds an audio call's per-second or per-character price, or an image call's
    /// per-image price, to its cost and charge.
    fn price_media(&self, rec: &mut CallRecord) {
        let routes = self.state.routing.load();
        if let Some(rate) = routes.price(&rec.model) {
            match rate.media_raw(self.media) {
                Some(raw) => {
                    let micros = i64::try_from(raw / 1_000_000).unwrap_or(i64::MAX);
                    rec.cost_micros = rec.cost_micros.saturating_add(micros);
                }
                None => {
                    tracing::warn!(model = %rec.model, "media usage too large to price; cost recorded as 0")
                }
            }
        }
        if !self.state.credits.enabled {
            return;
        }
        if let Some(by) = routes.charge_rate(self.app_id, &rec.model) {
            let max = crate::billing::MAX_CALL_NANOS;
            let nanos = by
                .rate()
                .media_raw(self.media)
                .and_then(|raw| self.state.credits.pricing.nanos_by(by, raw))
                .unwrap_or(max);
            rec.charge_nanos = rec.charge_nanos.saturating_add(nanos).min(max);
        }
    }

    /// What a cache hit costs: `billing.cache_hit_percent` of the answer's price, rounded
    /// up (0 unless billing is on and the percentage set).
    fn cache_hit_charge(&self, rec: &CallRecord) -> i64 {
        let percent = i64::from(self.state.config.billing.cache_hit_percent);
        if percent == 0 || !self.state.credits.enabled {
            return 0;
        }
        let routes = self.state.routing.load();
        let Some(by) = routes.charge_rate(self.app_id, &rec.model) else {
            return 0;
        };
        let tokens = Tokens::new(rec.input_tokens, rec.output_tokens, rec.cached_tokens);
        let full = self.state.credits.pricing.charge_or_max(by, &tokens);
        // `full` is bounded (`MAX_CALL_NANOS`) and `percent` by 100: no overflow.
        (full.saturating_mul(percent) + 99) / 100
    }

    /// `Server-Timing` for the response head, formatted on the stack (one copy, into the
    /// header value).
    pub fn server_timing(&self) -> Option<hyper::header::HeaderValue> {
        use std::io::Write;
        // Milliseconds to three places, from integer microseconds: float formatting to a
        // precision costs more than the rest of the header.
        struct Ms(Duration);
        impl std::fmt::Display for Ms {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let us = self.0.as_micros();
                write!(f, "{}.{:03}", us / 1000, us % 1000)
            }
        }
        let t = &self.timings;
        let mut buf = [0u8; 256];
        let mut w = &mut buf[..];
        write!(
            w,
            "auth;dur={}, route;dur={}, plugin;dur={}, upstream;dur={}, total;dur={}",
            Ms(t.auth),
            Ms(t.route),
            Ms(t.plugin),
            Ms(t.upstream),
            Ms(self.start.elapsed())
        )
        .ok()?;
        let len = 256 - w.len();
        hyper::header::HeaderValue::from_bytes(&buf[..len]).ok()
    }

    fn finish(&mut self, status: CallStatus, http_status: u16, error: Option<&ApiError>) {
        let Some(mut rec) = self.rec.take() else {
            return;
        };
        if let Some(mut a) = self.admission.take() {
            // A cached answer used no upstream tokens.
            let used = if rec.cache_hit {
                0
            } else {
                rec.input_tokens.saturating_add(rec.output_tokens)
            };
            a.settle(used);
        }
        if rec.cache_hit {
            // Served without an upstream call: `billing.cache_hit_percent` of its price.
            rec.charge_nanos = self.cache_hit_charge(&rec);
        } else if self.streaming
            && self.ttfb.is_some()
            && rec.charge_nanos == 0
            && rec.input_tokens == 0
            && rec.output_tokens == 0
        {
            // A stream that sent output but never reported usage (cancelled or cut before
            // its usage event) is charged what it was held for, not nothing.
            rec.charge_nanos = rec.hold_nanos;
        }
        if status == CallStatus::Ok && !self.media.is_empty() {
            self.price_media(&mut rec);
        }
        if let Some(r) = self.budget.take() {
            // A stream cut before its usage counts its estimate, as its credit charge
            // counts its hold.
            let cut_before_usage = self.streaming
                && self.ttfb.is_some()
                && !rec.cache_hit
                && rec.input_tokens == 0
                && rec.output_tokens == 0;
            let cost = if cut_before_usage && rec.cost_micros == 0 {
                r.estimate()
            } else {
                rec.cost_micros
            };
            for reached in self.state.budgets.settle(r, cost, now_ms()) {
                self.state.alerts.emit("budget.reached", reached.alert());
            }
        }
        rec.status = status;
        rec.http_status = http_status;
        if let Some(e) = error {
            rec.error_class = Some(e.kind().to_string());
            // `Display` of an upstream error scrubs credential-looking text (the attempt
            // scrubbed the key it used already).
            rec.error_message = Some(self.error_history(&e.to_string()));
        }
        let elapsed = self.start.elapsed();
        rec.latency_ms = elapsed.as_millis() as u64;
        rec.ttfb_ms = self.ttfb.map(|t| t.as_millis() as u64);
        self.account(&rec, elapsed, error);
        let _span = tracing::info_span!(parent: &self.span, "call_log.record").entered();
        self.state.calls.record(rec);
    }

    /// Metrics, span attributes and the access-log line.
    fn account(&self, rec: &CallRecord, elapsed: Duration, error: Option<&ApiError>) {
        let m = &self.state.metrics;
        let provider = m.labels.get(if rec.provider.is_empty() {
            "none"
        } else {
            rec.provider.as_str()
        });
        let model = m.labels.get(if self.known_model {
            rec.model.as_str()
        } else {
            "other"
        });
        let status = rec.status.as_str();
        m.calls
            .get_or_create(&CallLabels {
                endpoint: rec.endpoint,
                provider: provider.clone(),
                model: model.clone(),
                status,
            })
            .inc();
        m.call_duration
            .get_or_create(&LatencyLabels {
                endpoint: rec.endpoint,
                provider: provider.clone(),
                status,
            })
            .observe(elapsed.as_secs_f64());
        let used = rec.input_tokens > 0 || rec.output_tokens > 0 || rec.cost_micros > 0;
        let app = m.labels.get(if used { &self.app } else { "" });
        for (direction, n) in [
            ("input", rec.input_tokens),
            ("output", rec.output_tokens),
            ("cached", rec.cached_tokens),
        ] {
            if n > 0 {
                m.tokens
                    .get_or_create(&TokenLabels {
                        app: app.clone(),
                        provider: provider.clone(),
                        model: model.clone(),
                        direction,
                    })
                    .inc_by(n);
            }
        }
        if rec.cost_micros > 0 {
            m.cost
                .get_or_create(&CostLabels {
                    app,
                    provider: provider.clone(),
                    model,
                })
                .inc_by(rec.cost_micros as f64 / 1e6);
        }
        if rec.attempts > 1 {
            m.retries
                .get_or_create(&ProviderLabels {
                    provider: provider.to_string(),
                })
                .inc_by(u64::from(rec.attempts - 1));
        }
        let span = &self.span;
        span.record("gen_ai.usage.input_tokens", rec.input_tokens as i64);
        span.record("gen_ai.usage.output_tokens", rec.output_tokens as i64);
        let sent_status = if self.streaming { 200 } else { rec.http_status };
        span.record("http.response.status_code", i64::from(sent_status));
        if let Some(e) = error {
            span.record("error.type", e.kind());
            span.record("otel.status_code", "ERROR");
        }
        tracing::info!(
            target: "access",
            request_id = %rec.request_id,
            app = %self.app,
            endpoint = rec.endpoint,
            format = rec.format,
            model = %rec.model,
            provider = %rec.provider,
            status = sent_status,
            outcome = rec.status.as_str(),
            latency_ms = rec.latency_ms,
            ttfb_ms = rec.ttfb_ms,
            input_tokens = rec.input_tokens,
            output_tokens = rec.output_tokens,
            attempts = rec.attempts,
            error = error.map(|e| e.to_string()),
        );
    }

    pub fn ok(&mut self) {
        self.first_byte();
        self.finish(CallStatus::Ok, 200, None);
    }

    /// Notes why an attempt failed; the record keeps every attempt's error, not only the
    /// last one, so an operator sees a 429 on one key and a 500 on the next.
    pub fn attempt_failed(&mut self, e: &ApiError) {
        const EACH: usize = 300;
        if self.attempt_errors.len() < 8 {
            let text = e.to_string();
            self.attempt_errors
                .push(crate::bounds::truncate(&text, EACH).into_owned());
        }
    }

    /// The final error, preceded by the earlier attempts' errors when there were several.
    /// (The call log bounds the whole message when it takes the record.)
    fn error_history(&self, last: &str) -> String {
        let n = self.attempt_errors.len();
        let only_last = n == 0 || (n == 1 && self.attempt_errors[0] == last);
        if only_last {
            return last.to_string();
        }
        let mut out = String::new();
        for (i, m) in self.attempt_errors.iter().enumerate() {
            out.push_str(&format!("attempt {}: {m} | ", i + 1));
        }
        if self.attempt_errors.last().map(String::as_str) == Some(last) {
            out.truncate(out.len() - 3);
        } else {
            out.push_str(&format!("then: {last}"));
        }
        out
    }

    pub fn fail(&mut self, e: &ApiError) {
        self.finish(CallStatus::Error, e.status(), Some(e));
    }
}

impl Drop for CallContext {
    fn drop(&mut self) {
        if self.rec.is_some() {
            if let Some(u) = self.seen_usage.take() {
                self.usage(Some(u));
            }
            self.finish(CallStatus::Cancelled, 499, None);
        }
    }
}
