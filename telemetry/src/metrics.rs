//! The Prometheus metrics of every role (DESIGN §7), in one process-wide registry, exposed as
//! text by [`encode`] (the api role serves it at `/metrics`; the other roles with
//! `--metrics-listen`).
//!
//! Names follow Prometheus conventions: `antidote_<what>_<unit>`, counters end in `_total`.
//! Labels stay low-cardinality — lesson slugs, routes as declared (`/api/v1/livelessons/{id}`,
//! never the ID), states, categories — never session or livelesson IDs.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    /// The route as declared, or `unmatched`.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LessonLabels {
    pub lesson: String,
    pub backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CategoryLabels {
    pub category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabels {
    pub stream: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every metric family. Get them with [`metrics()`].
pub struct Metrics {
    registry: Registry,
    /// `antidote_http_requests_total{method,route,status}`
    pub http_requests: Family<HttpLabels, Counter>,
    /// `antidote_http_request_duration_seconds{method,route}`
    pub http_duration: HistogramFamily<RouteLabels>,
    /// `antidote_livelessons{state}`: livelessons per state, counted at scrape time.
    pub livelessons: Family<StateLabels, Gauge>,
    /// `antidote_livelesson_time_to_ready_seconds{lesson,backend}`
    pub time_to_ready: HistogramFamily<LessonLabels>,
    /// `antidote_livelesson_failures_total{lesson,backend}`
    pub livelesson_failures: Family<LessonLabels, Counter>,
    /// `antidote_endpoint_reachability_failures_total{lesson,backend}`
    pub reachability_failures: Family<LessonLabels, Counter>,
    /// `antidote_endpoint_configuration_failures_total{lesson,backend}`
    pub configuration_failures: Family<LessonLabels, Counter>,
    /// `antidote_terminals_open`
    pub terminals_open: Gauge,
    /// `antidote_feedback_submitted_total{category}`
    pub feedback: Family<CategoryLabels, Counter>,
    /// `antidote_feedback_oldest_untriaged_seconds`: age of the oldest report still `new`
    /// (0: none), refreshed from ClickHouse at scrape time.
    pub feedback_oldest_untriaged: Gauge,
    /// `antidote_feedback_untriaged`: reports still `new`.
    pub feedback_untriaged: Gauge,
    /// `antidote_ingest_lag_messages{stream}`: messages waiting in JetStream for ingest.
    pub ingest_lag: Family<StreamLabels, Gauge>,
    /// `antidote_ingest_batch_size{stream}`: messages per committed batch.
    pub ingest_batch_size: HistogramFamily<StreamLabels>,
    /// `antidote_ingest_rows_total{stream}`: rows committed to ClickHouse.
    pub ingest_rows: Family<StreamLabels, Counter>,
    /// `antidote_ingest_insert_failures_total{stream}`: failed inserts (retried).
    pub ingest_failures: Family<StreamLabels, Counter>,
    /// `antidote_telemetry_dropped_total{stream}`: spans or logs dropped before NATS (a full
    /// queue while NATS was unreachable).
    pub telemetry_dropped: Family<StreamLabels, Counter>,
}

fn latency_buckets() -> Histogram {
    // 1 ms … ~33 s
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

fn ready_buckets() -> Histogram {
    // 0.25 s … ~4 min
    Histogram::new(exponential_buckets(0.25, 2.0, 11))
}

fn batch_buckets() -> Histogram {
    // 1 … 16384 messages
    Histogram::new(exponential_buckets(1.0, 2.0, 15))
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            registry: Registry::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(latency_buckets),
            livelessons: Family::default(),
            time_to_ready: Family::new_with_constructor(ready_buckets),
            livelesson_failures: Family::default(),
            reachability_failures: Family::default(),
            configuration_failures: Family::default(),
            terminals_open: Gauge::default(),
            feedback: Family::default(),
            feedback_oldest_untriaged: Gauge::default(),
            feedback_untriaged: Gauge::default(),
            ingest_lag: Family::default(),
            ingest_batch_size: Family::new_with_constructor(batch_buckets),
            ingest_rows: Family::default(),
            ingest_failures: Family::default(),
            telemetry_dropped: Family::default(),
        };
        registry.register(
            "antidote_http_requests",
            "HTTP requests by route and status",
            m.http_requests.clone(),
        );
        registry.register_with_unit(
            "antidote_http_request_duration",
            "HTTP request duration by route",
            Unit::Seconds,
            m.http_duration.clone(),
        );
        registry.register(
            "antidote_livelessons",
            "Livelessons by state",
            m.livelessons.clone(),
        );
        registry.register_with_unit(
            "antidote_livelesson_time_to_ready",
            "Time from the request to READY, by lesson and backend",
            Unit::Seconds,
            m.time_to_ready.clone(),
        );
        registry.register(
            "antidote_livelesson_failures",
            "Livelessons that FAILED, by lesson and backend",
            m.livelesson_failures.clone(),
        );
        registry.register(
            "antidote_endpoint_reachability_failures",
            "Endpoints that never became reachable, by lesson and backend",
            m.reachability_failures.clone(),
        );
        registry.register(
            "antidote_endpoint_configuration_failures",
            "Stage configuration runs that failed, by lesson and backend",
            m.configuration_failures.clone(),
        );
        registry.register(
            "antidote_terminals_open",
            "Browser terminals open now",
            m.terminals_open.clone(),
        );
        registry.register(
            "antidote_feedback_submitted",
            "Feedback reports by category",
            m.feedback.clone(),
        );
        registry.register_with_unit(
            "antidote_feedback_oldest_untriaged",
            "Age of the oldest feedback report nobody has triaged yet (0: none)",
            Unit::Seconds,
            m.feedback_oldest_untriaged.clone(),
        );
        registry.register(
            "antidote_feedback_untriaged",
            "Feedback reports nobody has triaged yet",
            m.feedback_untriaged.clone(),
        );
        registry.register_with_unit(
            "antidote_ingest_lag",
            "Messages waiting in JetStream for the ingest role",
            Unit::Other("messages".into()),
            m.ingest_lag.clone(),
        );
        registry.register(
            "antidote_ingest_batch_size",
            "Messages per batch committed to ClickHouse",
            m.ingest_batch_size.clone(),
        );
        registry.register(
            "antidote_ingest_rows",
            "Rows committed to ClickHouse",
            m.ingest_rows.clone(),
        );
        registry.register(
            "antidote_ingest_insert_failures",
            "ClickHouse inserts that failed (and were retried)",
            m.ingest_failures.clone(),
        );
        registry.register(
            "antidote_telemetry_dropped",
            "Spans or logs dropped before reaching NATS",
            m.telemetry_dropped.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Sets the livelessons-by-state gauges to `counts` (every state listed, zeros too).
    pub fn set_livelessons<'a>(&self, counts: impl IntoIterator<Item = (&'a str, i64)>) {
        for (state, n) in counts {
            self.livelessons
                .get_or_create(&StateLabels {
                    state: state.to_owned(),
                })
                .set(n);
        }
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// The exposition in the OpenMetrics text format (which Prometheus scrapes).
pub fn encode() -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &METRICS.registry);
    out
}

/// Labels for a lesson on a backend.
pub fn lesson(lesson: &str, backend: &str) -> LessonLabels {
    LessonLabels {
        lesson: lesson.to_owned(),
        backend: backend.to_owned(),
    }
}

/// Labels for an ingest stream.
pub fn stream(name: &str) -> StreamLabels {
    StreamLabels {
        stream: name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_named_by_the_conventions() {
        let m = metrics();
        m.http_requests
            .get_or_create(&HttpLabels {
                method: "GET".into(),
                route: "/x".into(),
                status: 200,
            })
            .inc();
        m.time_to_ready
            .get_or_create(&lesson("l", "local"))
            .observe(1.0);
        m.terminals_open.inc();
        m.terminals_open.dec();
        m.ingest_lag.get_or_create(&stream("events")).set(3);
        m.feedback
            .get_or_create(&CategoryLabels {
                category: "terminal".into(),
            })
            .inc();
        let text = encode();
        for name in [
            "antidote_http_requests_total{method=\"GET\",route=\"/x\",status=\"200\"} 1",
            "antidote_livelesson_time_to_ready_seconds_bucket{",
            "# TYPE antidote_terminals_open gauge",
            "antidote_ingest_lag_messages{stream=\"events\"} 3",
            "antidote_feedback_submitted_total{category=\"terminal\"} 1",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }
}
