//! Spans from `tracing` to ClickHouse: the OpenTelemetry SDK hands every finished span to
//! [`ChannelProcessor`], which turns it into a [`SpanRow`] and queues it (bounded: when the
//! queue is full the span is dropped and counted, never blocking the code that made it);
//! [`publish`] drains the queue to the `antidote.telemetry.spans` stream, where the ingest
//! role picks the rows up.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream;
use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry::{Context, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::metrics::{self, metrics};
use crate::rows::SpanRow;

/// How many finished spans may wait for NATS before new ones are dropped.
pub const QUEUE: usize = 65_536;

/// Attribute keys that become columns of `spans`.
pub const SESSION_ID: &str = "session.id";
pub const LESSON: &str = "lesson";
pub const LIVELESSON_ID: &str = "livelesson.id";
pub const ENDPOINT: &str = "endpoint";
pub const INSTANCE: &str = "instance";

/// Queues every finished span as a [`SpanRow`] of `service`.
#[derive(Debug)]
pub struct ChannelProcessor {
    service: String,
    tx: mpsc::Sender<SpanRow>,
}

impl ChannelProcessor {
    pub fn new(service: &str) -> (ChannelProcessor, mpsc::Receiver<SpanRow>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (
            ChannelProcessor {
                service: service.to_owned(),
                tx,
            },
            rx,
        )
    }
}

impl SpanProcessor for ChannelProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if self.tx.try_send(span_row(&self.service, &span)).is_err() {
            metrics()
                .telemetry_dropped
                .get_or_create(&metrics::stream("spans"))
                .inc();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.as_str().to_owned(),
        other => other.to_string(),
    }
}

/// A finished span as a row of `spans`.
pub fn span_row(service: &str, s: &SpanData) -> SpanRow {
    let start = nanos(s.start_time);
    let end = nanos(s.end_time);
    let (status_code, status_message) = match &s.status {
        Status::Unset => ("unset", String::new()),
        Status::Ok => ("ok", String::new()),
        Status::Error { description } => ("error", description.to_string()),
    };
    let mut row = SpanRow {
        ts: OffsetDateTime::from_unix_timestamp(i64::try_from(start / 1_000_000_000).unwrap_or(0))
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        ts_ns: start,
        duration_ns: end.saturating_sub(start),
        trace_id: s.span_context.trace_id().to_string(),
        span_id: s.span_context.span_id().to_string(),
        parent_span_id: if s.parent_span_id == SpanId::INVALID {
            String::new()
        } else {
            s.parent_span_id.to_string()
        },
        name: s.name.to_string(),
        kind: match s.span_kind {
            SpanKind::Client => "client",
            SpanKind::Server => "server",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
            SpanKind::Internal => "internal",
        }
        .to_owned(),
        service: service.to_owned(),
        status_code: status_code.to_owned(),
        status_message,
        session_id: String::new(),
        lesson: String::new(),
        livelesson_id: String::new(),
        endpoint: String::new(),
        instance: String::new(),
        attr_keys: Vec::new(),
        attr_values: Vec::new(),
    };
    for kv in &s.attributes {
        let key = kv.key.as_str();
        let value = text(&kv.value);
        if key == "code.module.name"
            && let Some(role) = role_of_module(&value)
        {
            row.service = role.to_owned();
        }
        match key {
            SESSION_ID => row.session_id = value,
            LESSON => row.lesson = value,
            LIVELESSON_ID => row.livelesson_id = value,
            ENDPOINT => row.endpoint = value,
            INSTANCE => row.instance = value,
            // Where in our code a span was made says little in a trace and costs a lot of rows.
            k if k.starts_with("code.") || k.starts_with("thread.") => {}
            _ => {
                row.attr_keys.push(key.to_owned());
                row.attr_values.push(value);
            }
        }
    }
    row
}

/// The role a module belongs to, so spans of `antidote up` (every role in one process) still
/// name their role.
pub fn role_of_module(module: &str) -> Option<&'static str> {
    let crate_path = module.strip_prefix("antidote_platform::")?;
    let top = crate_path.split("::").next().unwrap_or_default();
    Some(match top {
        "api" | "web" => "api",
        "scheduler" | "backend" => "scheduler",
        "ingest" => "ingest",
        _ => return None,
    })
}

/// Publishes queued spans to `subject` until `shutdown` (then what is queued, briefly).
/// Each message carries `Nats-Msg-Id` = span ID, so a retried publish is stored once.
pub async fn publish(
    rx: mpsc::Receiver<SpanRow>,
    js: jetstream::Context,
    subject: String,
    shutdown: CancellationToken,
) {
    drain(rx, js, subject, shutdown, "spans", |row: &SpanRow| {
        row.span_id.clone()
    })
    .await;
}

/// Drains a telemetry queue to `subject` in batches, each message's `Nats-Msg-Id` from
/// `id_of`; what cannot be published is counted as dropped under `label`.
pub(crate) async fn drain<R: serde::Serialize>(
    mut rx: mpsc::Receiver<R>,
    js: jetstream::Context,
    subject: String,
    shutdown: CancellationToken,
    label: &'static str,
    id_of: impl Fn(&R) -> String,
) {
    let mut batch = Vec::with_capacity(512);
    loop {
        let n = tokio::select! {
            biased;
            n = rx.recv_many(&mut batch, 512) => n,
            () = shutdown.cancelled() => {
                rx.close();
                while let Ok(row) = rx.try_recv() {
                    batch.push(row);
                }
                send(&js, &subject, &mut batch, label, &id_of).await;
                return;
            }
        };
        if n == 0 {
            return;
        }
        send(&js, &subject, &mut batch, label, &id_of).await;
    }
}

async fn send<R: serde::Serialize>(
    js: &jetstream::Context,
    subject: &str,
    batch: &mut Vec<R>,
    label: &'static str,
    id_of: &impl Fn(&R) -> String,
) {
    let dropped = || {
        metrics()
            .telemetry_dropped
            .get_or_create(&metrics::stream(label))
            .inc();
    };
    let mut acks = Vec::with_capacity(batch.len());
    for row in batch.drain(..) {
        let Ok(payload) = serde_json::to_vec(&row) else {
            dropped();
            continue;
        };
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", id_of(&row).as_str());
        match js
            .publish_with_headers(subject.to_owned(), headers, payload.into())
            .await
        {
            Ok(ack) => acks.push(ack),
            Err(_) => dropped(),
        }
    }
    for r in futures::future::join_all(acks.into_iter().map(|a| a.into_future())).await {
        if r.is_err() {
            dropped();
        }
    }
}
