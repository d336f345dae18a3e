//! Telemetry benchmark: the ingest role's sustained rate (events published to JetStream until
//! committed in ClickHouse, default settings), the session timeline query over 10 million
//! stored events of 100,000 sessions, and what exporting spans and logs costs on
//! time-to-READY (the same provisioning with and without the exporters, each in a process
//! of its own, since tracing is set up once per process).
//!
//! ```sh
//! deploy/local/services.sh start && eval "$(deploy/local/services.sh env)"
//! cargo bench -p antidote-platform --bench telemetry
//! ```
//!
//! Knobs: BENCH_EVENTS (300000), BENCH_STORED (10000000), BENCH_SESSIONS (100000),
//! BENCH_QUERIES (200), BENCH_READY_RUNS (20).

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a benchmark binary"
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use antidote_platform::bus::{self, Layout};
use antidote_platform::ingest::{Events, Ingest, IngestConfig};
use antidote_platform::livelesson::Status;
use antidote_telemetry::event::{Event, kind};
use antidote_telemetry::rows::Severity;
use tokio_util::sync::CancellationToken;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn clickhouse_url() -> String {
    std::env::var("ANTIDOTE_CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:18123".into())
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::var("BENCH_PHASE").as_deref() == Ok("ready") {
        return time_to_ready().await;
    }
    ingest_rate().await?;
    timeline_query().await?;
    // Time-to-READY with and without exporting spans and logs, each in its own process.
    let exe = std::env::current_exe()?;
    let mut p50 = Vec::new();
    for telemetry in ["0", "1"] {
        let out = std::process::Command::new(&exe)
            .env("BENCH_PHASE", "ready")
            .env("BENCH_TELEMETRY", telemetry)
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        print!("{text}");
        let ms: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("p50_ms="))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no p50 from the ready phase: {text}"))?;
        p50.push(ms);
    }
    println!(
        "telemetry overhead on time-to-READY (p50): {:+.1} % ({:.0} ms without, {:.0} ms with exporters)",
        (p50[1] / p50[0] - 1.0) * 100.0,
        p50[0],
        p50[1]
    );
    Ok(())
}

/// Publishes BENCH_EVENTS events and measures until ClickHouse has committed them all.
async fn ingest_rate() -> anyhow::Result<()> {
    let n: usize = env_or("BENCH_EVENTS", 300_000);
    let url = clickhouse_url();
    let db = format!("bench_ingest_{}", std::process::id());
    let ch = antidote_telemetry::clickhouse_client::client(&url);
    antidote_telemetry::schema::migrate(&ch, &url, &db).await?;
    let nats = async_nats::connect(common::nats_url()).await?;
    let js = async_nats::jetstream::new(nats.clone());
    let layout = Layout::new(format!(
        "bench{}",
        antidote_platform::backend::local::random_id(6)
    ));
    bus::ensure(&js, &layout).await?;

    let ingest = Ingest::<Events>::new(
        IngestConfig {
            database: db.clone(),
            ..IngestConfig::default()
        },
        nats.clone(),
        layout.clone(),
        ch.clone(),
    )
    .await?;
    let stop = CancellationToken::new();
    let task = tokio::spawn(ingest.run(stop.clone()));

    let started = Instant::now();
    // Publishers keep acknowledgements in flight, as the roles do under load.
    let per = n / 4;
    let publishers: Vec<_> = (0..4)
        .map(|w| {
            let (js, layout) = (js.clone(), layout.clone());
            tokio::spawn(async move {
                let mut acks = Vec::with_capacity(1024);
                for i in 0..per {
                    let mut e = Event::new(kind::ENDPOINT_CREATED, "bench", Severity::Info)
                        .message(format!("event {w}-{i}"));
                    e.session_id = format!("s{:09}", (w * per + i) % 100_000);
                    let payload = serde_json::to_vec(&e).unwrap();
                    acks.push(
                        js.publish(layout.event(&e.kind), payload.into())
                            .await
                            .unwrap(),
                    );
                    if acks.len() == 1024 {
                        for a in acks.drain(..) {
                            a.await.unwrap();
                        }
                    }
                }
                for a in acks {
                    a.await.unwrap();
                }
            })
        })
        .collect();
    for p in publishers {
        p.await?;
    }
    let published = started.elapsed();
    let total = (per * 4) as u64;
    let client = ch.clone().with_database(&db);
    loop {
        let have: u64 = client
            .query("SELECT count() FROM events")
            .fetch_one()
            .await?;
        if have >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();
    println!(
        "ingest: {:.0} events/s sustained ({total} events published in {:.1} s, all committed in ClickHouse after {:.1} s; batch 5000, flush 1 s)",
        total as f64 / elapsed.as_secs_f64(),
        published.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    let unique: u64 = client
        .query("SELECT uniqExact(event_id) FROM events")
        .fetch_one()
        .await?;
    assert_eq!(unique, total, "nothing lost, nothing twice");
    stop.cancel();
    task.await??;
    bus::remove(&js, &layout).await;
    ch.query(&format!("DROP DATABASE IF EXISTS {db}"))
        .execute()
        .await?;
    Ok(())
}

/// Stores BENCH_STORED events over BENCH_SESSIONS sessions (generated by the server), then
/// times the session timeline query for random sessions.
async fn timeline_query() -> anyhow::Result<()> {
    let stored: u64 = env_or("BENCH_STORED", 10_000_000);
    let sessions: u64 = env_or("BENCH_SESSIONS", 100_000);
    let queries: usize = env_or("BENCH_QUERIES", 200);
    let url = clickhouse_url();
    let db = format!("bench_timeline_{}", std::process::id());
    let ch = antidote_telemetry::clickhouse_client::client(&url);
    antidote_telemetry::schema::migrate(&ch, &url, &db).await?;
    let client = ch.clone().with_database(&db);
    let loading = Instant::now();
    // Spread over a week of partitions, as a week of traffic would be.
    client
        .query(&format!(
            "INSERT INTO events SELECT generateUUIDv4(), toDateTime(1796000000 + intDiv(number, {per_sec})), \
             (1796000000 + intDiv(number, {per_sec})) * 1000000000 + number % 1000000000, \
             'endpoint.created', 'info', 'scheduler', concat('s', toString(number % {sessions})), 'ospf-triangle', 0, \
             concat('l', toString(number % {sessions})), 'r1', 'inst', 'vm', '', '', '', 'created', [], [] \
             FROM system.numbers LIMIT {stored}",
            per_sec = stored / (7 * 24 * 3600) + 1,
        ))
        .execute()
        .await?;
    client
        .query("OPTIMIZE TABLE events FINAL")
        .execute()
        .await
        .ok();
    println!(
        "timeline: {stored} events over {sessions} sessions stored in {:.1} s",
        loading.elapsed().as_secs_f64()
    );
    let mut samples = Vec::with_capacity(queries);
    let mut rows = 0;
    for i in 0..queries {
        let s = format!("s{}", (i as u64 * 7919) % sessions);
        let t = Instant::now();
        let timeline = antidote_telemetry::timeline::session_timeline(&client, &s).await?;
        samples.push(t.elapsed());
        rows += timeline.events.len();
    }
    samples.sort();
    println!(
        "timeline query: p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms ({queries} sessions, {} events each on average)",
        pct(&samples, 0.50),
        pct(&samples, 0.95),
        samples.last().unwrap().as_secs_f64() * 1000.0,
        rows / queries
    );
    ch.query(&format!("DROP DATABASE IF EXISTS {db}"))
        .execute()
        .await?;
    Ok(())
}

/// One process's time-to-READY of `ospf-triangle` (BENCH_READY_RUNS runs), with the span
/// and log exporters when BENCH_TELEMETRY=1.
async fn time_to_ready() -> anyhow::Result<()> {
    let runs: usize = env_or("BENCH_READY_RUNS", 20);
    let with = std::env::var("BENCH_TELEMETRY").as_deref() == Ok("1");
    let stack = common::stack::Stack::start(common::bundled()).await;
    let stop = CancellationToken::new();
    if with {
        let telemetry = antidote_telemetry::init("bench");
        let js = async_nats::jetstream::new(async_nats::connect(common::nats_url()).await?);
        if let (Some(spans), Some(logs)) = (telemetry.take_spans(), telemetry.take_logs()) {
            tokio::spawn(antidote_telemetry::spans::publish(
                spans,
                js.clone(),
                stack.client.layout.spans(),
                stop.clone(),
            ));
            tokio::spawn(antidote_telemetry::logs::publish(
                logs,
                js,
                stack.client.layout.logs(),
                stop.clone(),
            ));
        }
    }
    let curriculum = common::bundled();
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let session = stack.client.create_session().await?;
        let started = Instant::now();
        let ll = stack
            .client
            .request_livelesson(&curriculum, &session.id, "ospf-triangle", 0)
            .await?;
        loop {
            let now = stack.client.get(&ll.id).await?;
            if now.status == Status::Ready {
                break;
            }
            anyhow::ensure!(now.status != Status::Failed, "failed: {:?}", now.error);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        samples.push(started.elapsed());
        stack.client.delete(&ll.id, "bench").await?;
        while stack.client.store.livelessons.get(&ll.id).await?.is_some() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    samples.sort();
    println!(
        "time-to-READY of ospf-triangle {} exporters: p50 {:.0} ms, p95 {:.0} ms ({runs} runs)",
        if with { "with" } else { "without" },
        pct(&samples, 0.5),
        pct(&samples, 0.95)
    );
    println!("p50_ms={}", pct(&samples, 0.5));
    stop.cancel();
    stack.stop().await;
    Ok(())
}
