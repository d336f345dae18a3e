//! The ingest role: drains JetStream streams into ClickHouse — `EVENTS` into `events`,
//! `SPANS` into `spans`, `LOGS` into `logs`, `FEEDBACK` into `feedback` and, from its
//! `feedback.updated` messages, `feedback_activity` — one [`Feed`] each, the same pipeline
//! for all.
//!
//! Per feed, one durable pull consumer (`ingest-<feed>`, shared by every ingest replica)
//! feeds batches that flush on size or time. A batch is inserted with the `clickhouse` crate
//! and its messages are acknowledged only after ClickHouse accepted the insert; while
//! ClickHouse is unreachable the batch is retried with backoff and everything else waits in
//! JetStream, so nothing is lost. Rows are keyed by their ID in a ReplacingMergeTree, so a
//! redelivered message never counts twice (`FINAL`). Malformed messages are terminated and
//! counted.
//!

use antidote_telemetry::metrics::{self, metrics};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::bus::{self, Layout};
use antidote_telemetry::event::Event;
use antidote_telemetry::rows::{
    EventRow, FeedbackActivityRow, FeedbackRow, FeedbackUpdate, LogRow, SpanRow,
};

/// One stream → table pipeline.
pub trait Feed: Send + Sync + 'static {
    type Row: clickhouse::RowOwned + clickhouse::RowWrite + serde::Serialize + Send + Sync;
    /// The feed's name: metric label, consumer `ingest-<name>`, and ClickHouse table.
    const NAME: &'static str;
    /// The stream it drains.
    fn stream(layout: &Layout) -> String;
    /// Only the stream's messages on this subject (`None`: all of them).
    fn filter_subject(_layout: &Layout) -> Option<String> {
        None
    }
    /// How long a waiting row may wait for its batch, given the configured interval.
    fn flush_interval(configured: Duration) -> Duration {
        configured
    }
    /// A message's row, or why it is malformed.
    fn decode(payload: &[u8]) -> Result<Self::Row, String>;
}

/// `EVENTS` → `events`.
pub struct Events;

impl Feed for Events {
    type Row = EventRow;
    const NAME: &'static str = "events";
    fn stream(layout: &Layout) -> String {
        layout.events_stream()
    }
    fn decode(payload: &[u8]) -> Result<EventRow, String> {
        serde_json::from_slice::<Event>(payload)
            .map(|e| EventRow::from(&e))
            .map_err(|e| e.to_string())
    }
}

/// Feedback is written by people, a few rows at a time, and a maintainer waits for it: its
/// feeds flush at least this often, whatever the (throughput-minded) configured interval.
pub const FEEDBACK_FLUSH: Duration = Duration::from_millis(200);

/// `FEEDBACK` → `feedback` (every submitted or updated state of a report; the highest
/// revision wins).
pub struct Feedback;

impl Feed for Feedback {
    type Row = FeedbackRow;
    const NAME: &'static str = "feedback";
    fn stream(layout: &Layout) -> String {
        layout.feedback_stream()
    }
    fn decode(payload: &[u8]) -> Result<FeedbackRow, String> {
        serde_json::from_slice(payload).map_err(|e| e.to_string())
    }
    fn flush_interval(configured: Duration) -> Duration {
        FEEDBACK_FLUSH.min(configured)
    }
}

/// `FEEDBACK`'s `feedback.updated` messages → `feedback_activity` (the same message carries
/// the report's new state, which [`Feedback`] stores).
pub struct FeedbackActivity;

impl Feed for FeedbackActivity {
    type Row = FeedbackActivityRow;
    const NAME: &'static str = "feedback_activity";
    fn stream(layout: &Layout) -> String {
        layout.feedback_stream()
    }
    fn filter_subject(layout: &Layout) -> Option<String> {
        Some(layout.feedback("updated"))
    }
    fn flush_interval(configured: Duration) -> Duration {
        FEEDBACK_FLUSH.min(configured)
    }
    fn decode(payload: &[u8]) -> Result<FeedbackActivityRow, String> {
        serde_json::from_slice::<FeedbackUpdate>(payload)
            .map(|u| u.activity)
            .map_err(|e| e.to_string())
    }
}

/// `LOGS` → `logs` (published as rows by `antidote_telemetry::logs`).
pub struct Logs;

impl Feed for Logs {
    type Row = LogRow;
    const NAME: &'static str = "logs";
    fn stream(layout: &Layout) -> String {
        layout.logs_stream()
    }
    fn decode(payload: &[u8]) -> Result<LogRow, String> {
        serde_json::from_slice(payload).map_err(|e| e.to_string())
    }
}

/// `SPANS` → `spans` (published as rows by `antidote_telemetry::spans`).
pub struct Spans;

impl Feed for Spans {
    type Row = SpanRow;
    const NAME: &'static str = "spans";
    fn stream(layout: &Layout) -> String {
        layout.spans_stream()
    }
    fn decode(payload: &[u8]) -> Result<SpanRow, String> {
        serde_json::from_slice(payload).map_err(|e| e.to_string())
    }
}

/// Settings of the ingest role.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Flush when this many events are waiting.
    pub batch_size: usize,
    /// Flush at least this often when events are waiting.
    pub flush_interval: Duration,
    /// ClickHouse database holding the contract tables.
    pub database: String,
    /// Drop events, spans and logs older than this many days (0: keep everything).
    pub retention_days: u32,
}

impl Default for IngestConfig {
    fn default() -> IngestConfig {
        IngestConfig {
            batch_size: 5000,
            flush_interval: Duration::from_secs(1),
            database: antidote_telemetry::clickhouse_client::DATABASE.to_owned(),
            retention_days: 30,
        }
    }
}

/// Counters for `/metrics` and tests.
#[derive(Debug, Default)]
pub struct IngestStats {
    pub inserted: AtomicU64,
    pub batches: AtomicU64,
    pub malformed: AtomicU64,
    pub insert_failures: AtomicU64,
}

/// The ingest pipeline of one feed (events by default).
pub struct Ingest<F: Feed = Events> {
    config: IngestConfig,
    js: jetstream::Context,
    layout: Layout,
    clickhouse: clickhouse::Client,
    pub stats: Arc<IngestStats>,
    _feed: std::marker::PhantomData<F>,
}

impl<F: Feed> Ingest<F> {
    pub async fn new(
        config: IngestConfig,
        nats: async_nats::Client,
        layout: Layout,
        clickhouse: clickhouse::Client,
    ) -> anyhow::Result<Ingest<F>> {
        let js = jetstream::new(nats);
        bus::ensure(&js, &layout).await?;
        let clickhouse = clickhouse.with_database(&config.database);
        Ok(Ingest {
            config,
            js,
            layout,
            clickhouse,
            stats: Arc::default(),
            _feed: std::marker::PhantomData,
        })
    }

    /// Runs until `shutdown`; the batch in hand is flushed (or left unacknowledged) first.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let stream = self
            .js
            .get_stream(F::stream(&self.layout))
            .await
            .map_err(|e| anyhow::anyhow!("cannot open the {} stream: {e}", F::NAME))?;
        let consumer_name = format!("ingest-{}", F::NAME);
        let max_pending = i64::try_from(self.config.batch_size * 4).unwrap_or(i64::MAX);
        let mut consumer = stream
            .get_or_create_consumer(
                &consumer_name,
                consumer::pull::Config {
                    durable_name: Some(consumer_name.clone()),
                    filter_subject: F::filter_subject(&self.layout).unwrap_or_default(),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_secs(60),
                    max_ack_pending: max_pending,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("cannot create the ingest consumer: {e}"))?;
        // An existing durable keeps its own configuration: one draining other subjects would
        // drop their messages as malformed, so refuse to run on it.
        let want = F::filter_subject(&self.layout).unwrap_or_default();
        let have = &consumer.cached_info().config.filter_subject;
        if *have != want {
            anyhow::bail!(
                "the ingest consumer `{consumer_name}` on stream {} filters `{have}` where this version needs `{want}`; remove it (`nats consumer rm {} {consumer_name}`) and start ingest again — unacknowledged messages stay in the stream",
                F::stream(&self.layout),
                F::stream(&self.layout),
            );
        }

        let flush_interval = F::flush_interval(self.config.flush_interval);
        let mut batch: Vec<(F::Row, jetstream::Message)> =
            Vec::with_capacity(self.config.batch_size);
        let mut oldest: Option<tokio::time::Instant> = None;
        loop {
            // Flush first when due, then fetch more while there is room, then cancellation.
            let due = oldest.is_some_and(|t| t.elapsed() >= flush_interval);
            if batch.len() >= self.config.batch_size || (due && !batch.is_empty()) {
                self.flush(&mut batch, &mut consumer, &shutdown).await;
                oldest = None;
                continue;
            }
            if shutdown.is_cancelled() {
                break;
            }
            let room = self.config.batch_size - batch.len();
            let wait = oldest.map_or(flush_interval, |t| {
                flush_interval.saturating_sub(t.elapsed())
            });
            let fetched = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                f = consumer
                    .fetch()
                    .max_messages(room)
                    .expires(wait.max(Duration::from_millis(10)))
                    .messages() => f,
            };
            let mut messages = match fetched {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot fetch events; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            while let Some(msg) = messages.next().await {
                let Ok(msg) = msg else { break };
                if let Ok(info) = msg.info() {
                    // What the stream still holds for us beyond this message.
                    metrics()
                        .ingest_lag
                        .get_or_create(&metrics::stream(F::NAME))
                        .set(i64::try_from(info.pending).unwrap_or(i64::MAX));
                }
                match F::decode(&msg.payload) {
                    Ok(row) => {
                        batch.push((row, msg));
                        oldest.get_or_insert_with(tokio::time::Instant::now);
                    }
                    Err(e) => {
                        // Never retry data errors: they would fail forever.
                        tracing::error!(error = %e, subject = %msg.subject, feed = F::NAME, "dropping a malformed message");
                        self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                        let _ = msg.ack_with(jetstream::AckKind::Term).await;
                    }
                }
            }
        }
        if !batch.is_empty() {
            self.flush(&mut batch, &mut consumer, &shutdown).await;
        }
        Ok(())
    }

    /// Inserts the batch, retrying with backoff until ClickHouse takes it (or shutdown, in
    /// which case the messages stay unacknowledged and are redelivered later), then acks.
    async fn flush(
        &self,
        batch: &mut Vec<(F::Row, jetstream::Message)>,
        consumer: &mut consumer::PullConsumer,
        shutdown: &CancellationToken,
    ) {
        let mut backoff = Duration::from_millis(200);
        let mut logged = false;
        loop {
            match self.insert(batch).await {
                Ok(()) => break,
                Err(e) => {
                    self.stats.insert_failures.fetch_add(1, Ordering::Relaxed);
                    metrics()
                        .ingest_failures
                        .get_or_create(&metrics::stream(F::NAME))
                        .inc();
                    if !logged {
                        tracing::error!(error = %e, events = batch.len(), "ClickHouse rejected or missed a batch; keeping it in JetStream and retrying");
                        logged = true;
                    }
                    // Nothing is fetched while the batch is held: the backlog the lag gauge
                    // shows comes from the consumer itself (waiting + held, unacknowledged).
                    if let Ok(info) = consumer.info().await {
                        let waiting =
                            info.num_pending + u64::try_from(info.num_ack_pending).unwrap_or(0);
                        metrics()
                            .ingest_lag
                            .get_or_create(&metrics::stream(F::NAME))
                            .set(i64::try_from(waiting).unwrap_or(i64::MAX));
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => {
                            batch.clear();
                            return;
                        }
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        if logged {
            tracing::info!("ClickHouse is back; ingest caught up with the held batch");
        }
        let n = batch.len() as u64;
        let labels = metrics::stream(F::NAME);
        metrics()
            .ingest_batch_size
            .get_or_create(&labels)
            .observe(n as f64);
        metrics().ingest_rows.get_or_create(&labels).inc_by(n);
        let acks = batch
            .drain(..)
            .map(|(_, msg)| async move { msg.ack().await });
        for r in futures::future::join_all(acks).await {
            if let Err(e) = r {
                // The row is committed; a lost ack only means a redelivery, which collapses.
                tracing::warn!(error = %e, "ack failed after insert");
            }
        }
        self.stats.inserted.fetch_add(n, Ordering::Relaxed);
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
    }

    async fn insert(
        &self,
        batch: &[(F::Row, jetstream::Message)],
    ) -> Result<(), clickhouse::error::Error> {
        let mut insert = self.clickhouse.insert::<F::Row>(F::NAME).await?;
        for (row, _) in batch {
            insert.write(row).await?;
        }
        insert.end().await
    }
}

/// Every feed (events, spans, logs, feedback, feedback activity) with one configuration
/// until `shutdown`.
pub async fn run_all(
    config: IngestConfig,
    nats: async_nats::Client,
    layout: Layout,
    clickhouse: clickhouse::Client,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let events = Ingest::<Events>::new(
        config.clone(),
        nats.clone(),
        layout.clone(),
        clickhouse.clone(),
    )
    .await?;
    let spans = Ingest::<Spans>::new(
        config.clone(),
        nats.clone(),
        layout.clone(),
        clickhouse.clone(),
    )
    .await?;
    let retention = tokio::spawn(retain(
        config.retention_days,
        clickhouse.clone(),
        config.database.clone(),
        shutdown.clone(),
    ));
    let logs = Ingest::<Logs>::new(
        config.clone(),
        nats.clone(),
        layout.clone(),
        clickhouse.clone(),
    )
    .await?;
    let feedback = Ingest::<Feedback>::new(
        config.clone(),
        nats.clone(),
        layout.clone(),
        clickhouse.clone(),
    )
    .await?;
    let activity = Ingest::<FeedbackActivity>::new(config, nats, layout, clickhouse).await?;
    // One feed failing stops them all, at once and loudly: a role that looks healthy while a
    // table silently stays empty is worse than one that exits.
    let feeds = shutdown.child_token();
    let watch = |name: &'static str,
                 run: std::pin::Pin<
        Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send>,
    >| {
        let feeds = feeds.clone();
        async move {
            let r = run.await;
            if let Err(e) = &r {
                tracing::error!(error = %e, feed = name, "an ingest feed stopped; stopping ingest");
                feeds.cancel();
            }
            r
        }
    };
    let (e, s, l, f, a) = tokio::join!(
        watch(Events::NAME, Box::pin(events.run(feeds.clone()))),
        watch(Spans::NAME, Box::pin(spans.run(feeds.clone()))),
        watch(Logs::NAME, Box::pin(logs.run(feeds.clone()))),
        watch(Feedback::NAME, Box::pin(feedback.run(feeds.clone()))),
        watch(
            FeedbackActivity::NAME,
            Box::pin(activity.run(feeds.clone()))
        )
    );
    retention.abort();
    e.and(s).and(l).and(f).and(a)
}

/// Drops telemetry older than `days` once an hour (and at start) until `shutdown`.
async fn retain(
    days: u32,
    clickhouse: clickhouse::Client,
    database: String,
    shutdown: CancellationToken,
) {
    if days == 0 {
        return;
    }
    loop {
        let before = antidote_telemetry::retention::cutoff(time::OffsetDateTime::now_utc(), days);
        match antidote_telemetry::retention::drop_before(&clickhouse, &database, before).await {
            Ok(dropped) if !dropped.is_empty() => {
                tracing::info!(?dropped, days, "dropped telemetry past retention");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "retention could not drop old partitions; retrying in an hour")
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
    }
}
