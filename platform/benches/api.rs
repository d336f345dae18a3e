//! API benchmark: requests/s of `GET /api/v1/livelessons/{id}` under concurrent load, and
//! the terminal keystroke round trip (a byte typed into the websocket until its echo comes
//! back from the endpoint's shell), p50/p99.
//!
//! Runs a whole Antidote in-process (scheduler, local backend, api role on loopback) against
//! the NATS server of `deploy/local/services.sh` (needs root):
//!
//! ```sh
//! deploy/local/services.sh start && eval "$(deploy/local/services.sh env)"
//! cargo bench -p antidote-platform --bench api
//! ```
//!
//! The load generator shares the machine's two cores with the server and NATS, so the
//! numbers are a floor for what a separate client would see.

#![allow(
    clippy::unwrap_used,
    clippy::print_stdout,
    reason = "a benchmark binary"
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::stack::{Stack, Term, http, ready_livelesson, session};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let concurrency: usize = env_or("BENCH_CONCURRENCY", 64);
    let seconds: u64 = env_or("BENCH_SECONDS", 10);
    let keystrokes: usize = env_or("BENCH_KEYSTROKES", 2000);

    let stack = Stack::start(common::fixture()).await;
    let s = session(&stack).await;
    let ll = ready_livelesson(&stack, &s, "linux-basics").await;
    let id = ll["id"].as_str().unwrap().to_owned();

    // --- GET /api/v1/livelessons/{id} ------------------------------------------------------
    let url = stack.url(&format!("/api/v1/livelessons/{id}"));
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let client = http();
    // Warm up the connection pool.
    for _ in 0..concurrency {
        client
            .get(&url)
            .header("x-antidote-session", &s)
            .send()
            .await?;
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, s) = (client.clone(), url.clone(), s.clone());
            let (done, failed) = (done.clone(), failed.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    match client
                        .get(&url)
                        .header("x-antidote-session", &s)
                        .send()
                        .await
                    {
                        Ok(r) if r.status() == 200 => {
                            let _ = r.bytes().await;
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let ok = done.load(Ordering::Relaxed);
    println!(
        "GET /api/v1/livelessons/{{id}}: {:.0} requests/s ({ok} in {elapsed:.1} s, {concurrency} concurrent, {} failed)",
        ok as f64 / elapsed,
        failed.load(Ordering::Relaxed)
    );

    // --- keystroke round trip ---------------------------------------------------------------
    let mut term = Term::open(&stack, &s, &id, "linux1").await;
    // `cat` reads the terminal and the line discipline echoes every byte: type one, wait for
    // its echo, and end the line now and then so it never grows.
    term.send("echo ready-$((1+1)); cat >/dev/null\n").await;
    term.expect("ready-2", 20).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut samples = Vec::with_capacity(keystrokes);
    for i in 0..keystrokes {
        let c = char::from(b'a' + u8::try_from(i % 26).unwrap());
        let t = Instant::now();
        term.send(&c.to_string()).await;
        term.expect(&c.to_string(), 10).await;
        samples.push(t.elapsed());
        if i % 40 == 39 {
            term.send("\n").await;
        }
    }
    samples.sort();
    let pct = |p: f64| {
        let i = ((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i].as_secs_f64() * 1000.0
    };
    println!(
        "terminal keystroke round trip: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({keystrokes} keystrokes)",
        pct(0.50),
        pct(0.99),
        samples.last().unwrap().as_secs_f64() * 1000.0
    );
    stack.stop().await;
    Ok(())
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
