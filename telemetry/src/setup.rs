//! One `init` for every role: JSON logs on stderr, `tracing` spans turned into OpenTelemetry
//! spans (W3C trace context), queued for ClickHouse through NATS ([`crate::spans`]); and the
//! helpers that carry trace context and the session ID across HTTP and NATS.

use std::sync::Mutex;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tokio::sync::mpsc;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::rows::SpanRow;

/// The header carrying the learner's session on HTTP requests and NATS messages (contract).
pub const SESSION_HEADER: &str = "antidote-session-id";

/// What [`init`] set up: the tracer provider and the queue of finished spans.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    spans: Mutex<Option<mpsc::Receiver<SpanRow>>>,
}

impl Telemetry {
    /// The queue of finished spans, once (the span publisher takes it); `None` when this
    /// process's telemetry was set up elsewhere first.
    pub fn take_spans(&self) -> Option<mpsc::Receiver<SpanRow>> {
        self.spans.lock().ok().and_then(|mut s| s.take())
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
    let (processor, rx) = crate::spans::ChannelProcessor::new(service);
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .build();
    let tracer = provider.tracer("antidote");
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Spans of our own code only; libraries' spans (hyper, h2, ...) would drown the traces.
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(tracing_subscriber::filter::filter_fn(|m| {
            m.is_span() && m.target().starts_with("antidote")
        }));
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::stderr),
        )
        .with(otel)
        .try_init()
        .is_ok();
    if !installed {
        return Telemetry {
            provider: None,
            spans: Mutex::new(None),
        };
    }
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    Telemetry {
        provider: Some(provider),
        spans: Mutex::new(Some(rx)),
    }
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
