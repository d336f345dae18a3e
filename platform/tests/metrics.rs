//! `/metrics` after real work: a lesson that reaches READY, one whose configuration fails,
//! one whose endpoint never becomes reachable, an open terminal, HTTP traffic and events
//! ingested into ClickHouse. The exposition is parsed and each family checked with its
//! labels. (One test in its own binary: the registry is process-wide.)

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::stack::{Ingested, Stack, Term, http, ready_livelesson, session, wait_status};
use serde_json::{Value, json};

/// One sample: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses the text exposition (the subset prometheus-client writes).
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let mut map = BTreeMap::new();
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap();
            map.insert(k.to_owned(), v.trim_matches('"').to_owned());
        }
        out.push((name.to_owned(), map, value.parse().unwrap()));
    }
    out
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(v))
        })
        .map(|(_, _, v)| *v)
}

async fn scrape(stack: &Stack) -> Vec<Sample> {
    let r = http().get(stack.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    parse(&r.text().await.unwrap())
}

#[tokio::test]
async fn metrics_expose_every_family_with_its_labels() {
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start_with(common::broken_labs(dir.path()), |c| {
        c.reachability_timeout = Duration::from_secs(2);
    })
    .await;

    // Ingest the stack's streams into a database of this test's own.
    let ingest = Ingested::start(&stack, Ingested::database("metrics").await).await;

    let s = session(&stack).await;
    let ready = ready_livelesson(&stack, &s, "bash-basics").await;
    let id = ready["id"].as_str().unwrap();
    for lesson in ["broken-config", "never-reachable"] {
        let r: Value = http()
            .post(stack.url("/api/v1/livelessons"))
            .header("x-antidote-session", &s)
            .json(&json!({"lesson": lesson}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        wait_status(&stack, &s, r["id"].as_str().unwrap(), "FAILED").await;
    }
    let _ = http()
        .get(stack.url("/api/v1/no-such-route"))
        .send()
        .await
        .unwrap();

    let mut term = Term::open(&stack, &s, id, "linux1").await;
    term.send("echo open-$((2+2))\n").await;
    term.expect("open-4", 20).await;
    let m = scrape(&stack).await;
    assert_eq!(value(&m, "antidote_terminals_open", &[]), Some(1.0));
    drop(term);

    for (state, n) in [("READY", 1.0), ("FAILED", 2.0), ("BOOTING", 0.0)] {
        assert_eq!(
            value(&m, "antidote_livelessons", &[("state", state)]),
            Some(n),
            "{state}"
        );
    }
    assert_eq!(
        value(
            &m,
            "antidote_livelesson_time_to_ready_seconds_count",
            &[("lesson", "bash-basics"), ("backend", "local")]
        ),
        Some(1.0)
    );
    assert!(
        value(
            &m,
            "antidote_livelesson_time_to_ready_seconds_bucket",
            &[("lesson", "bash-basics"), ("le", "+Inf")]
        )
        .is_some()
    );
    for (name, lesson) in [
        ("antidote_livelesson_failures_total", "broken-config"),
        ("antidote_livelesson_failures_total", "never-reachable"),
        (
            "antidote_endpoint_configuration_failures_total",
            "broken-config",
        ),
        (
            "antidote_endpoint_reachability_failures_total",
            "never-reachable",
        ),
    ] {
        assert_eq!(
            value(&m, name, &[("lesson", lesson), ("backend", "local")]),
            Some(1.0),
            "{name} {lesson}"
        );
    }
    assert!(
        value(
            &m,
            "antidote_http_requests_total",
            &[
                ("method", "GET"),
                ("route", "/api/v1/livelessons/{id}"),
                ("status", "200")
            ]
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        value(
            &m,
            "antidote_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        )
        .is_some()
    );
    assert!(
        value(
            &m,
            "antidote_http_request_duration_seconds_count",
            &[("method", "POST"), ("route", "/api/v1/sessions")]
        )
        .is_some()
    );

    // Ingest: rows committed, batch sizes, lag.
    let deadline = Instant::now() + Duration::from_secs(30);
    let m = loop {
        let m = scrape(&stack).await;
        if value(&m, "antidote_ingest_rows_total", &[("stream", "events")]).unwrap_or(0.0) >= 10.0 {
            break m;
        }
        assert!(Instant::now() < deadline, "ingest committed nothing");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        value(
            &m,
            "antidote_ingest_batch_size_count",
            &[("stream", "events")]
        )
        .is_some()
    );
    assert!(value(&m, "antidote_ingest_lag_messages", &[("stream", "events")]).is_some());
    let deadline = Instant::now() + Duration::from_secs(10);
    while value(&scrape(&stack).await, "antidote_terminals_open", &[]) != Some(0.0) {
        assert!(Instant::now() < deadline, "closed terminal still counted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    ingest.stop().await;
    stack.stop().await;
}
