//! Logs and traces. Logs go to stderr (text or JSON); traces, when an OTLP endpoint is
//! configured, go to it over HTTP/protobuf or gRPC with a batch exporter on the tokio
//! runtime. W3C `traceparent` is read from clients and written to upstream requests.

use crate::config::{Config, TelemetryConfig};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::Context;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Flushes pending spans when the server stops.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    pub fn enabled(&self) -> bool {
        self.provider.is_some()
    }

    pub fn shutdown(&self) {
        if let Some(p) = &self.provider {
            if let Err(e) = p.force_flush() {
                tracing::warn!(error = %e, "flushing spans failed");
            }
            let _ = p.shutdown();
        }
    }
}

fn env_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

/// The log layer: text or JSON lines on stderr (colours only on a terminal).
fn fmt_layer<S>(config: &Config) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if config.log.format == "json" {
        fmt.json().flatten_event(true).boxed()
    } else {
        fmt.boxed()
    }
}

/// Logging only (the CLI commands).
pub fn init_logging(config: &Config) {
    let _ = tracing_subscriber::registry()
        .with(fmt_layer(config).with_filter(env_filter()))
        .try_init();
}

/// Logging plus, when configured, trace export. Call inside the tokio runtime.
pub fn init(config: &Config) -> Result<Telemetry, String> {
    let fmt = fmt_layer(config);
    let t = &config.telemetry;
    if t.otlp_endpoint.is_empty() {
        let _ = tracing_subscriber::registry()
            .with(fmt.with_filter(env_filter()))
            .try_init();
        return Ok(Telemetry { provider: None });
    }
    let provider = tracer_provider(t)?;
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let tracer = provider.tracer("aihub");
    // Spans are exported whatever the log level: the log filter must not starve them.
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_threads(false)
        .with_location(false)
        .with_tracked_inactivity(false)
        .with_filter(
            tracing_subscriber::filter::Targets::new().with_target("aihub", tracing::Level::INFO),
        );
    let _ = tracing_subscriber::registry()
        .with(fmt.with_filter(env_filter()))
        .with(otel)
        .try_init();
    tracing::info!(endpoint = %t.otlp_endpoint, protocol = %t.otlp_protocol, "exporting traces over OTLP");
    Ok(Telemetry {
        provider: Some(provider),
    })
}

fn tracer_provider(t: &TelemetryConfig) -> Result<SdkTracerProvider, String> {
    let exporter = match t.otlp_protocol.as_str() {
        "grpc" => {
            let mut headers = http::HeaderMap::new();
            for (k, v) in &t.otlp_headers {
                let name = http::HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes())
                    .map_err(|e| format!("telemetry.otlp_headers: bad name {k:?}: {e}"))?;
                let value = http::HeaderValue::from_str(v.expose())
                    .map_err(|_| format!("telemetry.otlp_headers: bad value for {k:?}"))?;
                headers.insert(name, value);
            }
            let metadata =
                opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(headers);
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(&t.otlp_endpoint)
                .with_timeout(Duration::from_secs(10))
                .with_metadata(metadata)
                .build()
        }
        _ => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(&t.otlp_endpoint)
            .with_timeout(Duration::from_secs(10))
            .with_headers(
                t.otlp_headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.expose().to_string()))
                    .collect(),
            )
            .with_http_client(ExportClient::new())
            .build(),
    }
    .map_err(|e| format!("cannot set up the OTLP exporter: {e}"))?;
    let processor =
        BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            t.sample_ratio,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(t.service_name.clone())
                .build(),
        )
        .build())
}

/// The OTLP/HTTP transport: hyper with rustls, like the upstream client.
#[derive(Debug, Clone)]
struct ExportClient {
    client: hyper_util::client::legacy::Client<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
        Full<Bytes>,
    >,
}

impl ExportClient {
    fn new() -> Self {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        ExportClient {
            client: hyper_util::client::legacy::Client::builder(
                hyper_util::rt::TokioExecutor::new(),
            )
            .build(https),
        }
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for ExportClient {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        let resp = self.client.request(request.map(Full::new)).await?;
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await?.to_bytes();
        Ok(http::Response::from_parts(parts, bytes))
    }
}

struct HeaderExtractor<'a>(&'a hyper::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct VecInjector<'a>(&'a mut Vec<(String, String)>);

impl Injector for VecInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
        self.0.push((key.to_string(), value));
    }
}

/// The trace context a client sent (`traceparent`/`tracestate`).
pub fn extract(headers: &hyper::HeaderMap) -> Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// Writes the current trace context into an upstream request's headers.
pub fn inject(cx: &Context, headers: &mut Vec<(String, String)>) {
    TraceContextPropagator::new().inject_context(cx, &mut VecInjector(headers));
}
