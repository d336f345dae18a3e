//! Feedback benchmark: the latency from a learner pressing *Send* to the report showing in a
//! maintainer's triage queue, p50/p95/p99, under an open-loop load of concurrent submissions
//! (default 100/s for 20 s), and the submit answer's own latency.
//!
//! Runs a whole Antidote in-process (scheduler, api role on loopback, ingest with its
//! production defaults: batches of 5000 flushed at least every second) against the NATS and
//! ClickHouse servers of `deploy/local/services.sh`. The maintainer polls
//! `GET /api/v1/triage/feedback` every 100 ms, as a queue page would refresh; each report has
//! an error signature of its own, so each is one queue row.
//!
//! ```sh
//! deploy/local/services.sh start && eval "$(deploy/local/services.sh env)"
//! cargo bench -p antidote-platform --bench feedback
//! ```

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a benchmark binary"
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::stack::{Ingested, MAINTAINER_TOKEN, Stack, http, session};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// `i` in letters (digits would be normalised away from the error signature).
fn letters(mut i: usize) -> String {
    let mut s = String::new();
    loop {
        s.push(char::from(b'a' + u8::try_from(i % 26).unwrap()));
        i /= 26;
        if i == 0 {
            return s;
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rate: u64 = env_or("BENCH_RATE", 100);
    let seconds: u64 = env_or("BENCH_SECONDS", 20);
    let total = usize::try_from(rate * seconds)?;

    let (url, database, client) = Ingested::database("bench_feedback").await;
    let stack = Stack::start_with_telemetry(common::bundled(), client.clone()).await;
    let stop = CancellationToken::new();
    let ingest = tokio::spawn(antidote_platform::ingest::run_all(
        antidote_platform::ingest::IngestConfig {
            database: database.clone(),
            retention_days: 0,
            ..Default::default()
        },
        async_nats::connect(common::nats_url()).await?,
        stack.client.layout.clone(),
        antidote_telemetry::clickhouse_client::client(&url),
        stop.clone(),
    ));
    let mut sessions = Vec::new();
    for _ in 0..20 {
        sessions.push(session(&stack).await);
    }

    // When each report was sent (keyed by its reference) and when the queue first showed it.
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let polling = CancellationToken::new();
    let poller = {
        let (seen, polling) = (seen.clone(), polling.clone());
        let url = stack.url("/api/v1/triage/feedback?max_age_hours=1");
        tokio::spawn(async move {
            let client = http();
            let mut polls = 0u64;
            while !polling.is_cancelled() {
                let t = Instant::now();
                if let Ok(r) = client.get(&url).bearer_auth(MAINTAINER_TOKEN).send().await
                    && let Ok(q) = r.json::<Value>().await
                {
                    let now = Instant::now();
                    let mut seen = seen.lock().unwrap();
                    for item in q["items"].as_array().into_iter().flatten() {
                        for id in item["feedback_ids"].as_array().into_iter().flatten() {
                            if let Some(id) = id.as_str() {
                                seen.entry(id.to_owned()).or_insert(now);
                            }
                        }
                    }
                    polls += 1;
                }
                tokio::time::sleep(Duration::from_millis(100).saturating_sub(t.elapsed())).await;
            }
            polls
        })
    };

    let client = http();
    let url = stack.url("/api/v1/feedback");
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total);
    let mut submit_latency = Vec::with_capacity(total);
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    for i in 0..total {
        // Open loop: every submission leaves at its time, whatever the others are doing.
        tokio::time::sleep_until((started + interval * u32::try_from(i)?).into()).await;
        let (client, url, sent) = (client.clone(), url.clone(), sent.clone());
        let s = sessions[i % sessions.len()].clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = client
                .post(&url)
                .header("x-antidote-session", &s)
                .json(&json!({
                    "category": "lab_not_working",
                    "message": format!("bench report {i}"),
                    "lesson": "bash-basics", "stage": 0,
                    "context": {"errors": [{"message": format!("bench error {}", letters(i))}]},
                }))
                .send()
                .await
                .ok()?;
            if r.status() != 201 {
                return None;
            }
            let id = r.json::<Value>().await.ok()?["feedback_id"]
                .as_str()?
                .to_owned();
            let answered = t.elapsed();
            sent.lock().unwrap().insert(id, t);
            Some(answered)
        }));
    }
    let mut failed = 0;
    for t in tasks {
        match t.await? {
            Some(d) => submit_latency.push(d),
            None => failed += 1,
        }
    }
    let submitting = started.elapsed();

    // Wait for the queue to show every stored report (or 30 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let missing = {
            let (sent, seen) = (sent.lock().unwrap(), seen.lock().unwrap());
            sent.keys().filter(|k| !seen.contains_key(*k)).count()
        };
        if missing == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    polling.cancel();
    let polls = poller.await?;
    let (sent, seen) = (sent.lock().unwrap().clone(), seen.lock().unwrap().clone());
    let mut visible: Vec<Duration> = sent
        .iter()
        .filter_map(|(id, t)| seen.get(id).map(|s| s.saturating_duration_since(*t)))
        .collect();
    visible.sort();
    submit_latency.sort();
    println!(
        "feedback: {} submissions in {:.1} s ({:.0}/s offered {rate}/s), {failed} failed, {} never seen in the queue ({polls} queue polls)",
        sent.len(),
        submitting.as_secs_f64(),
        sent.len() as f64 / submitting.as_secs_f64(),
        sent.len() - visible.len(),
    );
    println!(
        "POST /api/v1/feedback answered (201, durable in JetStream): p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
        percentile(&submit_latency, 0.50),
        percentile(&submit_latency, 0.95),
        percentile(&submit_latency, 0.99),
    );
    println!(
        "submit -> visible in the triage queue: p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms (target p95 <= 2000 ms)",
        percentile(&visible, 0.50),
        percentile(&visible, 0.95),
        percentile(&visible, 0.99),
        visible.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    );

    stop.cancel();
    let _ = ingest.await;
    stack.stop().await;
    let _ = antidote_telemetry::clickhouse_client::client(&url)
        .query(&format!("DROP DATABASE IF EXISTS {database}"))
        .execute()
        .await;
    Ok(())
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
