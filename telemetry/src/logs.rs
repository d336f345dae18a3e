//! Log records to ClickHouse: [`LogLayer`] turns every `tracing` event of our code into a
//! [`LogRow`] — with the trace it was written in and the session, lesson and livelesson of
//! the spans around it (inherited from parent spans, so a log line deep in a backend step
//! still names the session) — and queues it without blocking (full queue: dropped and
//! counted). [`publish`] drains the queue to `<prefix>.telemetry.logs` for the ingest role.
//! The same records go to stderr as JSON lines through the fmt layer.

use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use async_nats::jetstream;
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::dispatcher::WeakDispatch;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::metrics::{self, metrics};
use crate::rows::LogRow;
use crate::spans::{LESSON, LIVELESSON_ID, SESSION_ID, role_of_module};

/// How many log records may wait for NATS before new ones are dropped.
pub const QUEUE: usize = 65_536;

/// The IDs a span (and so everything inside it) belongs to.
#[derive(Debug, Clone, Default)]
struct Ids {
    session_id: String,
    lesson: String,
    livelesson_id: String,
}

impl Visit for Ids {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name(), value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.set(field.name(), format!("{value:?}"));
    }
}

impl Ids {
    fn set(&mut self, name: &str, value: String) {
        if value.is_empty() {
            return;
        }
        match name {
            SESSION_ID => self.session_id = value,
            LESSON => self.lesson = value,
            LIVELESSON_ID => self.livelesson_id = value,
            _ => {}
        }
    }
}

/// The fields of one event.
#[derive(Default)]
struct Fields {
    message: String,
    ids: Ids,
    keys: Vec<String>,
    values: Vec<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.add(field.name(), value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.add(field.name(), format!("{value:?}"));
    }
}

impl Fields {
    fn add(&mut self, name: &str, value: String) {
        match name {
            "message" => self.message = value,
            SESSION_ID | LESSON | LIVELESSON_ID => self.ids.set(name, value),
            _ => {
                self.keys.push(name.to_owned());
                self.values.push(value);
            }
        }
    }
}

/// Queues our code's log records as [`LogRow`]s of `service`.
pub struct LogLayer {
    service: String,
    tx: mpsc::Sender<LogRow>,
    /// The dispatcher this layer is part of, to read a record's trace from the
    /// OpenTelemetry layer (set once the subscriber is built).
    dispatch: Arc<OnceLock<WeakDispatch>>,
}

impl LogLayer {
    /// The layer, its queue, and the slot to put the finished subscriber's dispatcher in.
    pub fn new(
        service: &str,
    ) -> (
        LogLayer,
        mpsc::Receiver<LogRow>,
        Arc<OnceLock<WeakDispatch>>,
    ) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let dispatch = Arc::new(OnceLock::new());
        (
            LogLayer {
                service: service.to_owned(),
                tx,
                dispatch: Arc::clone(&dispatch),
            },
            rx,
            dispatch,
        )
    }
}

/// Our crates, except the telemetry pipeline itself (its own records would loop).
fn ours(target: &str) -> bool {
    target.starts_with("antidote") && !target.starts_with("antidote_telemetry")
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for LogLayer {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ids = span
            .parent()
            .and_then(|p| p.extensions().get::<Ids>().cloned())
            .unwrap_or_default();
        attrs.record(&mut ids);
        span.extensions_mut().insert(ids);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(ids) = span.extensions_mut().get_mut::<Ids>()
        {
            values.record(ids);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        if !ours(meta.target()) {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        if let Some(span) = ctx.event_span(event)
            && let Some(ids) = span.extensions().get::<Ids>()
        {
            let own = std::mem::take(&mut fields.ids);
            fields.ids = ids.clone();
            for (k, v) in [
                (SESSION_ID, own.session_id),
                (LESSON, own.lesson),
                (LIVELESSON_ID, own.livelesson_id),
            ] {
                fields.ids.set(k, v);
            }
        }
        let dispatch = self.dispatch.get().and_then(WeakDispatch::upgrade);
        let (trace_id, span_id) = match (ctx.event_span(event), dispatch) {
            (Some(span), Some(d)) => crate::setup::ids_of_span(&span.id(), &d),
            _ => Default::default(),
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        let service = meta
            .module_path()
            .and_then(role_of_module)
            .unwrap_or(&self.service)
            .to_owned();
        let row = LogRow {
            log_id: uuid::Uuid::new_v4(),
            ts: OffsetDateTime::from_unix_timestamp(
                i64::try_from(now / 1_000_000_000).unwrap_or(0),
            )
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            ts_ns: now,
            level: meta.level().to_string(),
            target: meta.target().to_owned(),
            message: fields.message,
            service,
            trace_id,
            span_id,
            session_id: fields.ids.session_id,
            lesson: fields.ids.lesson,
            livelesson_id: fields.ids.livelesson_id,
            attr_keys: fields.keys,
            attr_values: fields.values,
        };
        if self.tx.try_send(row).is_err() {
            metrics()
                .telemetry_dropped
                .get_or_create(&metrics::stream("logs"))
                .inc();
        }
    }
}

/// Publishes queued log records to `subject` until `shutdown`; `Nats-Msg-Id` = log ID.
pub async fn publish(
    rx: mpsc::Receiver<LogRow>,
    js: jetstream::Context,
    subject: String,
    shutdown: CancellationToken,
) {
    crate::spans::drain(rx, js, subject, shutdown, "logs", |row: &LogRow| {
        row.log_id.to_string()
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn records_inherit_the_ids_of_their_spans() {
        let (layer, mut rx, _) = LogLayer::new("test");
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!(target: "antidote_platform::api", "outer", session.id = %"abcdefghij", lesson = tracing::field::Empty);
            let _o = outer.enter();
            outer.record("lesson", "bash-basics");
            let inner = tracing::info_span!(target: "antidote_platform::scheduler", "inner", livelesson.id = "llllllllll");
            let _i = inner.enter();
            tracing::warn!(target: "antidote_platform::scheduler", port = 22, "unreachable");
            tracing::info!(target: "hyper::proto", "not ours");
        });
        let row = rx.try_recv().unwrap();
        assert_eq!(row.message, "unreachable");
        assert_eq!(row.level, "WARN");
        assert_eq!(row.session_id, "abcdefghij");
        assert_eq!(row.lesson, "bash-basics");
        assert_eq!(row.livelesson_id, "llllllllll");
        assert_eq!(row.attr_keys, ["port"]);
        assert_eq!(row.attr_values, ["22"]);
        assert!(rx.try_recv().is_err(), "other crates' records stay out");
        // As published on NATS and read back by ingest.
        let json = serde_json::to_vec(&row).unwrap();
        let back: LogRow = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, row);
    }
}
