//! One `init` for every role: JSON logs on stderr and, queued for ClickHouse through NATS,
//! log records ([`crate::logs`]) and `tracing` spans turned into OpenTelemetry spans (W3C
//! trace context, [`crate::spans`]); and the
//! helpers that carry trace context and the session ID across HTTP and NATS.

use std::sync::Mutex;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tokio::sync::mpsc;
use tracing::Dispatch;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::rows::{LogRow, SpanRow};

/// The header carrying the learner's session on HTTP requests and NATS messages (contract).
pub const SESSION_HEADER: &str = "antidote-session-id";

/// What [`init`] set up: the tracer provider and the queues of finished spans and logs.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    spans: Mutex<Option<mpsc::Receiver<SpanRow>>>,
    logs: Mutex<Option<mpsc::Receiver<LogRow>>>,
}

impl Telemetry {
    /// The queue of finished spans, once (the span publisher takes it); `None` when this
    /// process's telemetry was set up elsewhere first.
    pub fn take_spans(&self) -> Option<mpsc::Receiver<SpanRow>> {
        self.spans.lock().ok().and_then(|mut s| s.take())
    }

    /// The queue of log records, once (the log publisher takes it).
    pub fn take_logs(&self) -> Option<mpsc::Receiver<LogRow>> {
        self.logs.lock().ok().and_then(|mut s| s.take())
    }

    /// Sends what the exporters hold (OTLP batches) now.
    pub fn flush(&self) {
        if let Some(p) = &self.provider {
            let _ = p.force_flush();
        }
    }

    /// Ends every span still open and stops the provider.
    pub fn shutdown(&self) {
        if let Some(p) = &self.provider {
            let _ = p.shutdown();
        }
    }
}

/// Sets up logging and tracing for the process (`service` names the spans' default role).
/// Only the first call installs anything; later calls get a `Telemetry` without spans.
pub fn init(service: &str) -> Telemetry {
    init_with(
        service,
        std::env::var(OTLP_ENDPOINT_ENV)
            .ok()
            .filter(|e| !e.trim().is_empty()),
    )
}

/// [`init`], exporting spans by OTLP/gRPC to `otlp` too when given.
pub fn init_with(service: &str, otlp: Option<String>) -> Telemetry {
    let (processor, rx) = crate::spans::ChannelProcessor::new(service);
    // Every learner action is traced, whatever sampling flag a browser's traceparent carries.
    let mut builder = SdkTracerProvider::builder()
        .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOn)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(format!("antidote-{service}"))
                .build(),
        )
        .with_span_processor(processor);
    if let Some(otlp) = otlp.and_then(otlp_processor) {
        builder = builder.with_span_processor(otlp);
    }
    let provider = builder.build();
    let (dispatch, logs) = stack(&provider, service);
    let installed = tracing::dispatcher::set_global_default(dispatch).is_ok();
    if !installed {
        return Telemetry {
            provider: None,
            spans: Mutex::new(None),
            logs: Mutex::new(None),
        };
    }
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    Telemetry {
        provider: Some(provider),
        spans: Mutex::new(Some(rx)),
        logs: Mutex::new(Some(logs)),
    }
}

/// The standard variable naming an OTLP/gRPC collector (e.g. `http://127.0.0.1:4317`).
pub const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// The same spans by OTLP/gRPC to `endpoint`, batched on the Tokio runtime (so `init` must
/// run inside one). A bad endpoint is reported and skipped: ClickHouse keeps getting every
/// span.
fn otlp_processor(
    endpoint: String,
) -> Option<impl opentelemetry_sdk::trace::SpanProcessor + 'static> {
    use opentelemetry_otlp::WithExportConfig;
    if tokio::runtime::Handle::try_current().is_err() {
        eprintln!("an OTLP endpoint is set but there is no Tokio runtime; OTLP export is off");
        return None;
    }
    match opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .build()
    {
        Ok(exporter) => Some(
            opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor::builder(
                exporter,
                opentelemetry_sdk::runtime::Tokio,
            )
            .build(),
        ),
        Err(e) => {
            eprintln!("cannot export spans by OTLP to {endpoint}: {e}; OTLP export is off");
            None
        }
    }
}

/// The subscriber every role runs: the level filter, JSON lines on stderr, our spans into
/// OpenTelemetry (`provider`), our log records into the returned queue.
fn stack(provider: &SdkTracerProvider, service: &str) -> (Dispatch, mpsc::Receiver<LogRow>) {
    let tracer = provider.tracer("antidote");
    let (log_layer, logs, dispatch_slot) = crate::logs::LogLayer::new(service);
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Spans of our own code only; libraries' spans (hyper, h2, ...) would drown the traces.
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(tracing_subscriber::filter::filter_fn(|m| {
            m.is_span() && m.target().starts_with("antidote")
        }));
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::stderr),
        )
        .with(otel)
        .with(log_layer);
    let dispatch = Dispatch::new(subscriber);
    // The log layer reads each record's trace from the OpenTelemetry layer through this
    // handle (inside a callback, the thread's default dispatcher is not available).
    let _ = dispatch_slot.set(dispatch.downgrade());
    (dispatch, logs)
}

/// The trace and span ID (hex) of the `tracing` span `id` in `dispatch`, empty when it has
/// none. Safe to call from a layer's callbacks (holding no span extensions).
pub fn ids_of_span(id: &tracing::span::Id, dispatch: &Dispatch) -> (String, String) {
    use opentelemetry::trace::TraceContextExt;
    tracing_opentelemetry::get_otel_context(id, dispatch)
        .map(|cx| {
            let span = cx.span();
            let sc = span.span_context();
            if sc.is_valid() {
                (sc.trace_id().to_string(), sc.span_id().to_string())
            } else {
                (String::new(), String::new())
            }
        })
        .unwrap_or_default()
}

/// The trace and span ID (hex) of the current `tracing` span, empty when there is none.
pub fn current_ids() -> (String, String) {
    use opentelemetry::trace::TraceContextExt;
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    if sc.is_valid() {
        (sc.trace_id().to_string(), sc.span_id().to_string())
    } else {
        (String::new(), String::new())
    }
}

struct HttpHeaders<'a>(&'a http::HeaderMap);

impl Extractor for HttpHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Makes `span` a child of the trace the HTTP request names in `traceparent` (if any).
pub fn set_parent_from_http(span: &tracing::Span, headers: &http::HeaderMap) {
    let cx = TraceContextPropagator::new().extract(&HttpHeaders(headers));
    let _ = span.set_parent(cx);
}

struct NatsHeaders<'a>(&'a mut async_nats::HeaderMap);

impl Injector for NatsHeaders<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

struct NatsHeadersRead<'a>(&'a async_nats::HeaderMap);

impl Extractor for NatsHeadersRead<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(async_nats::HeaderValue::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

/// Adds the current span's `traceparent`/`tracestate` to a NATS message's headers.
pub fn inject_nats(headers: &mut async_nats::HeaderMap) {
    let cx = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&cx, &mut NatsHeaders(headers));
}

/// Makes `span` a child of the trace a NATS message names in its headers (if any).
pub fn set_parent_from_nats(span: &tracing::Span, headers: Option<&async_nats::HeaderMap>) {
    if let Some(h) = headers {
        let cx = TraceContextPropagator::new().extract(&NatsHeadersRead(h));
        let _ = span.set_parent(cx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_context_survives_a_nats_hop() {
        let mut http_headers = http::HeaderMap::new();
        http_headers.insert(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
                .parse()
                .unwrap(),
        );
        let cx = TraceContextPropagator::new().extract(&HttpHeaders(&http_headers));
        let mut nats = async_nats::HeaderMap::new();
        TraceContextPropagator::new().inject_context(&cx, &mut NatsHeaders(&mut nats));
        assert_eq!(
            nats.get("traceparent").map(async_nats::HeaderValue::as_str),
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
        );
        let back = TraceContextPropagator::new().extract(&NatsHeadersRead(&nats));
        use opentelemetry::trace::TraceContextExt;
        assert_eq!(
            back.span().span_context().trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
    }
}

#[cfg(test)]
mod stack_tests {
    use super::*;

    #[test]
    fn the_whole_stack_delivers_spans_and_logs() {
        let (processor, mut spans) = crate::spans::ChannelProcessor::new("test");
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        let (dispatch, mut logs) = stack(&provider, "test");
        tracing::dispatcher::with_default(&dispatch, || {
            let span = tracing::info_span!(target: "antidote_platform::api", "http.request", session.id = %"abcdefghij");
            span.in_scope(|| {
                tracing::info!(target: "antidote_platform::api::error", code = "x", "request refused");
            });
        });
        let log = logs.try_recv().expect("a log record");
        assert_eq!(log.message, "request refused");
        assert_eq!(log.session_id, "abcdefghij");
        assert_eq!(log.trace_id.len(), 32, "{log:?}");
        let span = spans.try_recv().expect("a span");
        assert_eq!(span.trace_id, log.trace_id);
        assert_eq!(span.span_id, log.span_id);
    }
}
