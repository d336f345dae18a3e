//! The ingest role against the real NATS and ClickHouse: events land exactly once, survive a
//! ClickHouse outage and an ingest restart.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use antidote_platform::bus::{self, Layout};
use antidote_platform::ingest::{Events, FeedbackActivity, Ingest, IngestConfig};
use antidote_telemetry::event::{Event, kind};
use antidote_telemetry::rows::Severity;
use antidote_telemetry::schema;
use antidote_tests::{clickhouse, clickhouse_url, nats, unique};
use async_nats::jetstream;
use tokio_util::sync::CancellationToken;

struct Setup {
    js: jetstream::Context,
    layout: Layout,
    db: String,
    ch: clickhouse::Client,
}

async fn setup() -> Setup {
    let ch = clickhouse().await;
    let db = unique("antidote_ingest");
    schema::migrate(&ch, &clickhouse_url(), &db).await.unwrap();
    let js = jetstream::new(nats().await);
    let layout = Layout::new(unique("t"));
    bus::ensure(&js, &layout).await.unwrap();
    Setup { js, layout, db, ch }
}

impl Setup {
    async fn publish(&self, session: &str, n: usize) {
        for i in 0..n {
            let mut e = Event::new(kind::ENDPOINT_CREATED, "test", Severity::Info)
                .message(format!("event {i}"));
            e.session_id = session.to_owned();
            bus::publish_event(&self.js, &self.layout, &e)
                .await
                .unwrap();
        }
    }

    /// (rows after collapsing duplicates, distinct event IDs) of a session.
    async fn counts(&self, session: &str) -> (u64, u64) {
        self.ch
            .query(&format!(
                "SELECT count(), uniqExact(event_id) FROM {}.events FINAL WHERE session_id = ?",
                self.db
            ))
            .bind(session)
            .fetch_one::<(u64, u64)>()
            .await
            .unwrap()
    }

    async fn wait_for_rows(&self, session: &str, n: u64, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (rows, ids) = self.counts(session).await;
            assert!(rows <= n, "more rows than events: {rows} > {n}");
            if rows == n {
                assert_eq!(ids, n);
                return;
            }
            assert!(
                Instant::now() < deadline,
                "only {rows} of {n} events arrived"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn ingest(&self, url: &str) -> impl std::future::Future<Output = Ingest> + '_ {
        let url = url.to_owned();
        async move {
            let config = IngestConfig {
                batch_size: 500,
                flush_interval: Duration::from_millis(200),
                database: self.db.clone(),
                retention_days: 0,
            };
            Ingest::<Events>::new(
                config,
                nats().await,
                self.layout.clone(),
                antidote_telemetry::clickhouse_client::client(&url),
            )
            .await
            .unwrap()
        }
    }

    async fn cleanup(self) {
        bus::remove(&self.js, &self.layout).await;
        let _ = self
            .ch
            .query(&format!("DROP DATABASE IF EXISTS {}", self.db))
            .execute()
            .await;
    }
}

#[tokio::test]
async fn events_land_in_clickhouse_exactly_once() {
    let s = setup().await;
    s.publish("s3ss10n001", 1200).await;
    let ingest = s.ingest(&clickhouse_url()).await;
    let stats = ingest.stats.clone();
    let stop = CancellationToken::new();
    let task = tokio::spawn(ingest.run(stop.clone()));
    s.wait_for_rows("s3ss10n001", 1200, 30).await;
    // A malformed message is dropped and counted, and does not stall the stream.
    s.js.publish(s.layout.event("broken"), "{not json".into())
        .await
        .unwrap()
        .await
        .unwrap();
    s.publish("s3ss10n001", 10).await;
    s.wait_for_rows("s3ss10n001", 1210, 30).await;
    stop.cancel();
    task.await.unwrap().unwrap();
    assert_eq!(stats.malformed.load(Ordering::Relaxed), 1);
    assert!(
        stats.batches.load(Ordering::Relaxed) >= 3,
        "batched by size"
    );
    s.cleanup().await;
}

#[tokio::test]
async fn restarting_ingest_mid_stream_loses_and_duplicates_nothing() {
    let s = setup().await;
    s.publish("s3ss10n002", 3000).await;
    for round in 0..3 {
        let ingest = s.ingest(&clickhouse_url()).await;
        let stop = CancellationToken::new();
        let task = tokio::spawn(ingest.run(stop.clone()));
        tokio::time::sleep(Duration::from_millis(150 + 100 * round)).await;
        stop.cancel();
        task.await.unwrap().unwrap();
    }
    let ingest = s.ingest(&clickhouse_url()).await;
    let stop = CancellationToken::new();
    let task = tokio::spawn(ingest.run(stop.clone()));
    s.wait_for_rows("s3ss10n002", 3000, 60).await;
    stop.cancel();
    task.await.unwrap().unwrap();
    s.cleanup().await;
}

#[tokio::test]
async fn a_clickhouse_outage_loses_nothing() {
    let s = setup().await;
    // ClickHouse "down": ingest talks to a port where nothing listens yet.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let ingest = s.ingest(&format!("http://127.0.0.1:{port}")).await;
    let stats = ingest.stats.clone();
    let stop = CancellationToken::new();
    let task = tokio::spawn(ingest.run(stop.clone()));
    let outage = Instant::now();
    s.publish("s3ss10n003", 10_000).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while stats.insert_failures.load(Ordering::Relaxed) < 2 {
        assert!(Instant::now() < deadline, "ingest never tried to insert");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The lag gauge shows the backlog while nothing can be committed (ingest refreshes it on
    // every retry; other tests of this binary may set it in between).
    let lag = antidote_telemetry::metrics::metrics()
        .ingest_lag
        .get_or_create(&antidote_telemetry::metrics::stream("events"))
        .clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    while lag.get() < 10_000 {
        assert!(
            Instant::now() < deadline,
            "lag gauge shows {} during the outage",
            lag.get()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ClickHouse stays away for 30 s; ingest keeps retrying and acknowledges nothing.
    tokio::time::sleep(Duration::from_secs(30).saturating_sub(outage.elapsed())).await;
    assert_eq!(s.counts("s3ss10n003").await.0, 0);

    // ClickHouse "returns": the port now forwards to the real server.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let target = clickhouse_url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let proxy = tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    // All 10,000, each exactly once (count after FINAL and distinct event IDs).
    s.wait_for_rows("s3ss10n003", 10_000, 120).await;
    stop.cancel();
    task.await.unwrap().unwrap();
    proxy.abort();
    s.cleanup().await;
}

#[tokio::test]
async fn ingest_refuses_a_durable_consumer_that_drains_other_subjects() {
    let s = setup().await;
    // A durable of the activity feed's name without its filter (left by a hand-made
    // consumer or an older version) would take `feedback.submitted` messages too.
    let stream = s.js.get_stream(s.layout.feedback_stream()).await.unwrap();
    stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("ingest-feedback_activity".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let ingest = Ingest::<FeedbackActivity>::new(
        IngestConfig {
            database: s.db.clone(),
            ..IngestConfig::default()
        },
        nats().await,
        s.layout.clone(),
        antidote_telemetry::clickhouse_client::client(&clickhouse_url()),
    )
    .await
    .unwrap();
    let e = ingest
        .run(CancellationToken::new())
        .await
        .expect_err("refused")
        .to_string();
    assert!(
        e.contains("ingest-feedback_activity") && e.contains(&s.layout.feedback("updated")),
        "{e}"
    );
    // The whole role stops with it (no shutdown asked), instead of running on without it.
    let all = antidote_platform::ingest::run_all(
        IngestConfig {
            database: s.db.clone(),
            ..IngestConfig::default()
        },
        nats().await,
        s.layout.clone(),
        antidote_telemetry::clickhouse_client::client(&clickhouse_url()),
        CancellationToken::new(),
    );
    let stopped = tokio::time::timeout(Duration::from_secs(30), all)
        .await
        .expect("ingest stops by itself");
    assert!(stopped.is_err());
    s.cleanup().await;
}
