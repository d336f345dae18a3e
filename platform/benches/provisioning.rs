//! Provisioning benchmark: time-to-READY of the bundled three-router lesson (`ospf-triangle`),
//! alone and 20 at once, and the memory of each endpoint kind.
//!
//! Runs the real scheduler with the local backend against the NATS server of
//! `deploy/local/services.sh` (needs root):
//!
//! ```sh
//! deploy/local/services.sh start && eval "$(deploy/local/services.sh env)"
//! cargo bench -p antidote-platform --bench provisioning
//! ```
//!
//! Time-to-READY is measured from the request (as the API makes it) to the moment the
//! livelesson's KV entry says READY, so it includes queueing, every endpoint's start,
//! links, SSH logins and the stage configuration.

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a benchmark binary"
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use antidote_platform::backend::local::{LocalBackend, LocalConfig, netns};
use antidote_platform::bus::Layout;
use antidote_platform::livelesson::Status;
use antidote_platform::livelesson::client::Client;
use antidote_platform::scheduler::{Scheduler, SchedulerConfig};
use tokio_util::sync::CancellationToken;

const LESSON: &str = "ospf-triangle";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let alone_runs: usize = env_or("BENCH_ALONE_RUNS", 10);
    let batch: usize = env_or("BENCH_BATCH", 20);
    let batch_rounds: usize = env_or("BENCH_BATCH_ROUNDS", 3);

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let curriculum = Arc::new(antidote_platform::curriculum::load(
        &root.join("curriculum"),
    )?);
    let state = tempfile::Builder::new()
        .prefix("antidote-bench")
        .tempdir()?;
    let backend = Arc::new(LocalBackend::new(LocalConfig::new(state.path()))?);
    let nats_url =
        std::env::var("ANTIDOTE_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:14222".into());
    let layout = Layout::new(format!(
        "bench{}",
        antidote_platform::backend::local::random_id(6)
    ));
    let scheduler = Scheduler::new(
        SchedulerConfig::new("bench"),
        async_nats::connect(&nats_url).await?,
        layout.clone(),
        Arc::clone(&curriculum),
        backend.clone(),
    )
    .await?;
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(scheduler.run(shutdown.clone()));
    let client = Client::new(
        async_nats::connect(&nats_url).await?,
        layout.clone(),
        "bench",
    )
    .await?;

    println!("time-to-READY of `{LESSON}` (4 endpoints: 3 FRR routers + 1 host)");
    let mut alone = Vec::new();
    let mut memory: BTreeMap<&str, Vec<(u64, u64)>> = BTreeMap::new();
    for i in 0..alone_runs {
        let (t, id) = one(&client, &curriculum).await?;
        alone.push(t);
        if i == 0 {
            // Let the daemons settle (OSPF adjacencies, sshd idle) before measuring memory.
            tokio::time::sleep(Duration::from_secs(5)).await;
            let ll = client.get(&id).await?;
            for ep in &ll.endpoints {
                let kind = if ep.image == "frr" {
                    "router (frr)"
                } else {
                    "utility (idle)"
                };
                memory
                    .entry(kind)
                    .or_default()
                    .push(endpoint_memory(&ep.instance));
            }
        }
        delete(&client, &id).await?;
    }
    report("alone", &mut alone);

    let mut together = Vec::new();
    for _ in 0..batch_rounds {
        let started = Instant::now();
        let runs = (0..batch).map(|_| one(&client, &curriculum));
        let results = futures::future::join_all(runs).await;
        let wall = started.elapsed();
        let mut ids = Vec::new();
        for r in results {
            let (t, id) = r?;
            together.push(t);
            ids.push(id);
        }
        println!(
            "  round of {batch}: all READY after {:.2} s",
            wall.as_secs_f64()
        );
        for id in &ids {
            client.delete(id, "bench").await?;
        }
        for id in &ids {
            wait_gone(&client, id).await;
        }
    }
    report(&format!("{batch} at once"), &mut together);

    println!("memory per endpoint (sum over its processes; PSS shares libraries fairly)");
    for (kind, samples) in &memory {
        let n = samples.len() as u64;
        let pss = samples.iter().map(|s| s.0).sum::<u64>() / n;
        let rss = samples.iter().map(|s| s.1).sum::<u64>() / n;
        println!(
            "  {kind:<16} PSS {:>5.1} MiB   RSS {:>5.1} MiB   ({n} endpoints)",
            pss as f64 / 1024.0,
            rss as f64 / 1024.0
        );
    }

    shutdown.cancel();
    task.await??;
    for s in layout.streams() {
        let _ = client.js.delete_stream(&s.name).await;
    }
    let _ = client
        .js
        .delete_key_value(layout.livelessons_bucket())
        .await;
    let _ = client.js.delete_key_value(layout.sessions_bucket()).await;
    Ok(())
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One livelesson from request to READY; returns the time and its ID.
async fn one(
    client: &Client,
    curriculum: &antidote_platform::curriculum::Curriculum,
) -> anyhow::Result<(Duration, String)> {
    let session = client.create_session().await?;
    let started = Instant::now();
    let ll = client
        .request_livelesson(curriculum, &session.id, LESSON, 0)
        .await?;
    loop {
        let now = client.get(&ll.id).await?;
        match now.status {
            Status::Ready => return Ok((started.elapsed(), ll.id)),
            Status::Failed => anyhow::bail!("{} failed: {:?}", ll.id, now.error),
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

async fn delete(client: &Client, id: &str) -> anyhow::Result<()> {
    client.delete(id, "bench").await?;
    wait_gone(client, id).await;
    Ok(())
}

async fn wait_gone(client: &Client, id: &str) {
    while matches!(client.store.livelessons.get(id).await, Ok(Some(_))) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn report(label: &str, samples: &mut [Duration]) {
    if samples.is_empty() {
        return;
    }
    samples.sort();
    let pct = |p: f64| {
        let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
        samples[i].as_secs_f64()
    };
    println!(
        "  {label:<12} n={:<3} p50 {:.2} s   p95 {:.2} s   max {:.2} s",
        samples.len(),
        pct(0.5),
        pct(0.95),
        pct(1.0)
    );
}

/// (PSS, RSS) in KiB summed over the processes of an endpoint's namespace.
fn endpoint_memory(instance: &str) -> (u64, u64) {
    let mut pss = 0;
    let mut rss = 0;
    for pid in netns::pids(instance) {
        let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            let (Some(key), Some(value)) = (parts.next(), parts.next()) else {
                continue;
            };
            let kib: u64 = value.parse().unwrap_or(0);
            match key {
                "Pss:" => pss += kib,
                "Rss:" => rss += kib,
                _ => {}
            }
        }
    }
    (pss, rss)
}
