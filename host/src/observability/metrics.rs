//! Prometheus metrics, served at `GET /metrics`. Labels are bounded: endpoints, provider
//! prefixes, app names and catalog model names — never request ids or free user input
//! (a model a catalog does not list is counted as `other`).

use prometheus_client::encoding::{text::encode, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

// Per-call label sets: fixed names are `&'static str` and the rest `Arc<str>`, made once
// per call and shared by every set, so looking a metric up allocates nothing more.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub endpoint: &'static str,
    pub provider: Arc<str>,
    pub model: Arc<str>,
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LatencyLabels {
    pub endpoint: &'static str,
    pub provider: Arc<str>,
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub app: Arc<str>,
    pub provider: Arc<str>,
    pub model: Arc<str>,
    pub direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CostLabels {
    pub app: Arc<str>,
    pub provider: Arc<str>,
    pub model: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    pub provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    /// `rpm`, `tpm` or `max_concurrent`.
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub provider: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

fn latency_buckets() -> impl Iterator<Item = f64> {
    [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
    ]
    .into_iter()
}

pub struct Metrics {
    registry: Registry,
    pub calls: Family<CallLabels, Counter>,
    pub call_duration: Family<LatencyLabels, Histogram>,
    pub upstream_duration: Family<ProviderLabels, Histogram>,
    pub time_to_first_token: Family<ProviderLabels, Histogram>,
    pub tokens: Family<TokenLabels, Counter>,
    pub cost: Family<CostLabels, Counter<f64, AtomicU64>>,
    pub retries: Family<ProviderLabels, Counter>,
    pub failovers: Family<ProviderLabels, Counter>,
    pub rate_limited: Family<LimitLabels, Counter>,
    /// 402s, by `reason` (`insufficient_credits`, `budget_exceeded`).
    pub payment_required: Family<ReasonLabels, Counter>,
    pub alerts_delivered: Counter,
    pub alerts_given_up: Counter,
    /// Redis commands that failed or timed out (the call then used local state).
    pub redis_errors: Counter,
    /// 1 while Redis answers, 0 while this instance runs on its own state.
    pub redis_up: Gauge,
    /// 1 while the Postgres change feed listens.
    pub change_feed_up: Gauge,
    /// 1 while the database answers (as the writer, key lookups and `/readyz` last saw).
    pub database_up: Gauge,
    /// Calls let in on a cached key verification while the database was unreachable.
    pub outage_auths: Counter,
    pub cache_lookups: Family<ResultLabels, Counter>,
    pub cache_bytes: Gauge,
    pub cache_entries: Gauge,
    pub credential_states: Family<StateLabels, Counter>,
    pub plugin_loads: Family<ResultLabels, Counter>,
    pub inflight: Gauge,
    pub streams: Gauge,
    pub call_log_queue: Gauge,
    pub call_log_dropped: Gauge,
    pub call_log_written: Gauge,
    /// Heap allocations and bytes so far, under `COUNT_HEAP_ALLOCS=1` only.
    heap: Option<(Gauge, Gauge)>,
    /// Provider, model and app label values, made once rather than per call.
    pub labels: Interned,
}

/// Label values kept as shared strings: a call's labels are clones (a reference count)
/// of values seen before. Label values are bounded (prefixes, catalog models, app names;
/// see the module doc); past [`MAX_INTERNED`] new ones are made per call instead.
#[derive(Default)]
pub struct Interned {
    known: arc_swap::ArcSwap<std::collections::HashSet<Arc<str>>>,
}

pub const MAX_INTERNED: usize = 4096;

impl Interned {
    pub fn get(&self, value: &str) -> Arc<str> {
        let known = self.known.load();
        if let Some(v) = known.get(value) {
            return v.clone();
        }
        let v: Arc<str> = Arc::from(value);
        if known.len() >= MAX_INTERNED {
            return v;
        }
        drop(known);
        self.known.rcu(|known| {
            let mut more = std::collections::HashSet::clone(known);
            if more.len() < MAX_INTERNED {
                more.insert(v.clone());
            }
            more
        });
        v
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("aihub");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "calls",
            "Consumer calls by endpoint, provider, model and status",
            calls.clone(),
        );
        let call_duration = Family::<LatencyLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(latency_buckets())
        });
        registry.register(
            "call_duration_seconds",
            "Consumer call latency, streams to their end",
            call_duration.clone(),
        );
        let upstream_duration = Family::<ProviderLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(latency_buckets())
        });
        registry.register(
            "upstream_duration_seconds",
            "Upstream latency to the response head, per attempt",
            upstream_duration.clone(),
        );
        let time_to_first_token = Family::<ProviderLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(latency_buckets())
        });
        registry.register(
            "time_to_first_token_seconds",
            "Time to the first streamed chunk sent to the client",
            time_to_first_token.clone(),
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register(
            "tokens",
            "Tokens by app, provider, model and direction (input, output, cached)",
            tokens.clone(),
        );
        let cost = Family::<CostLabels, Counter<f64, AtomicU64>>::default();
        registry.register(
            "cost_usd",
            "Cost in US dollars by app, provider and model",
            cost.clone(),
        );
        let retries = Family::<ProviderLabels, Counter>::default();
        registry.register(
            "retries",
            "Attempts after the first, by provider",
            retries.clone(),
        );
        let failovers = Family::<ProviderLabels, Counter>::default();
        registry.register(
            "failovers",
            "Calls moved on to another target, by the provider left",
            failovers.clone(),
        );
        let rate_limited = Family::<LimitLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Calls refused by aihub's own rate limits, by limit kind",
            rate_limited.clone(),
        );
        let payment_required = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "payment_required",
            "Calls refused with 402, by reason (insufficient_credits, budget_exceeded)",
            payment_required.clone(),
        );
        let alerts_delivered = Counter::default();
        registry.register(
            "alerts_delivered",
            "Alert webhook events the receiver accepted",
            alerts_delivered.clone(),
        );
        let alerts_given_up = Counter::default();
        registry.register(
            "alerts_given_up",
            "Alert webhook events given up after 24 hours of failed deliveries",
            alerts_given_up.clone(),
        );
        let redis_errors = Counter::default();
        registry.register(
            "redis_errors",
            "Redis commands that failed or timed out; those calls used this instance's own counters or missed the cache",
            redis_errors.clone(),
        );
        let redis_up = Gauge::default();
        registry.register(
            "redis_up",
            "1 while Redis (shared.redis_url) answers, 0 otherwise",
            redis_up.clone(),
        );
        let change_feed_up = Gauge::default();
        registry.register(
            "change_feed_up",
            "1 while this instance listens to the Postgres change feed (other instances' admin changes), 0 while it reconnects",
            change_feed_up.clone(),
        );
        let database_up = Gauge::default();
        registry.register(
            "database_up",
            "1 while the database answers, 0 while it cannot be reached (keys verified before are served; call records wait in memory)",
            database_up.clone(),
        );
        let outage_auths = Counter::default();
        registry.register(
            "database_outage_cached_auths",
            "Calls let in on a cached key verification while the database could not be reached",
            outage_auths.clone(),
        );
        let cache_lookups = Family::<ResultLabels, Counter>::default();
        registry.register(
            "cache_lookups",
            "Response-cache lookups of cacheable calls, by result (hit, miss)",
            cache_lookups.clone(),
        );
        let cache_bytes = Gauge::default();
        registry.register(
            "cache_bytes",
            "Bytes the response cache holds",
            cache_bytes.clone(),
        );
        let cache_entries = Gauge::default();
        registry.register(
            "cache_entries",
            "Answers the response cache holds",
            cache_entries.clone(),
        );
        let credential_states = Family::<StateLabels, Counter>::default();
        registry.register(
            "credential_state_changes",
            "Credential health transitions, by provider and new state",
            credential_states.clone(),
        );
        let plugin_loads = Family::<ResultLabels, Counter>::default();
        registry.register(
            "plugin_loads",
            "Plugin libraries loaded or refused",
            plugin_loads.clone(),
        );
        let inflight = Gauge::default();
        registry.register(
            "inflight_requests",
            "HTTP requests being served",
            inflight.clone(),
        );
        let streams = Gauge::default();
        registry.register(
            "active_streams",
            "Streamed replies in progress",
            streams.clone(),
        );
        let call_log_queue = Gauge::default();
        registry.register(
            "call_log_queue_depth",
            "Call records waiting for the writer",
            call_log_queue.clone(),
        );
        let call_log_dropped = Gauge::default();
        registry.register(
            "call_log_dropped_records",
            "Call records dropped because the queue was full (since start)",
            call_log_dropped.clone(),
        );
        let call_log_written = Gauge::default();
        registry.register(
            "call_log_written_records",
            "Call records written (since start)",
            call_log_written.clone(),
        );
        let heap = alloc_count::enabled().then(|| {
            let (count, bytes) = (Gauge::default(), Gauge::default());
            registry.register(
                "heap_allocations",
                "Heap allocations since start (COUNT_HEAP_ALLOCS=1)",
                count.clone(),
            );
            registry.register(
                "heap_allocated_bytes",
                "Bytes those allocations asked for",
                bytes.clone(),
            );
            (count, bytes)
        });
        Metrics {
            registry,
            calls,
            call_duration,
            upstream_duration,
            time_to_first_token,
            tokens,
            cost,
            retries,
            failovers,
            rate_limited,
            payment_required,
            alerts_delivered,
            alerts_given_up,
            redis_errors,
            redis_up,
            change_feed_up,
            database_up,
            outage_auths,
            cache_lookups,
            cache_bytes,
            cache_entries,
            credential_states,
            plugin_loads,
            inflight,
            streams,
            call_log_queue,
            call_log_dropped,
            call_log_written,
            heap,
            labels: Interned::default(),
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        if let Some((count, bytes)) = &self.heap {
            count.set(i64::try_from(alloc_count::allocations()).unwrap_or(i64::MAX));
            bytes.set(i64::try_from(alloc_count::bytes()).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Decrements a gauge when dropped (in-flight requests, open streams).
pub struct GaugeGuard(Gauge);

impl GaugeGuard {
    pub fn new(g: &Gauge) -> Self {
        g.inc();
        GaugeGuard(g.clone())
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn label_values_are_made_once_and_bounded() {
        let i = super::Interned::default();
        let a = i.get("openai");
        assert!(std::sync::Arc::ptr_eq(&a, &i.get("openai")));
        for n in 0..super::MAX_INTERNED + 10 {
            i.get(&format!("m{n}"));
        }
        assert_eq!(i.known.load().len(), super::MAX_INTERNED);
        assert_eq!(&*i.get("past-the-bound"), "past-the-bound");
    }

    use super::*;

    #[test]
    fn renders_counters_with_labels() {
        let m = Metrics::new();
        m.calls
            .get_or_create(&CallLabels {
                endpoint: "chat",
                provider: "echo".into(),
                model: "echo/echo-1".into(),
                status: "ok",
            })
            .inc();
        let text = m.render();
        assert!(text.contains("aihub_calls_total{endpoint=\"chat\",provider=\"echo\",model=\"echo/echo-1\",status=\"ok\"} 1"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
