//! One learner action is one trace: the HTTP request that starts the three-router lesson,
//! the scheduler's work on it and every endpoint's create, reachability and configuration
//! steps share the request's trace ID, and every span carries the session, lesson and
//! livelesson (device-level spans also endpoint and instance) — checked in ClickHouse after
//! the spans went through NATS and the ingest role; log records carry their trace and IDs. (Its own test binary: tracing is set up
//! once per process.)

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use antidote_platform::livelesson::Status;
use common::bundled;
use common::stack::{Ingested, Stack, http};
use serde::Deserialize;

#[derive(Debug, clickhouse::Row, Deserialize)]
struct Span {
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    service: String,
    status_code: String,
    session_id: String,
    lesson: String,
    livelesson_id: String,
    endpoint: String,
    instance: String,
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_a_lesson_is_one_trace_down_to_every_endpoint() {
    let db = Ingested::database("trace").await;
    let stack = Stack::start_with_telemetry(bundled(), db.2.clone()).await;
    assert!(
        common::stack::export_telemetry_to(&stack).await,
        "the only test of this binary that exports spans"
    );
    let ingest = Ingested::start(&stack, db).await;
    let (ch, database, clickhouse_url) = (
        ingest.client.clone(),
        ingest.database.clone(),
        ingest.url.clone(),
    );

    // The session's only HTTP request: the browser's click, continuing the browser's trace.
    let session = stack.client.create_session().await.unwrap().id;
    let r = http()
        .post(stack.url("/api/v1/livelessons"))
        .header("x-antidote-session", &session)
        .header("traceparent", format!("00-{TRACE}-{PARENT}-01"))
        .json(&serde_json::json!({"lesson": "ospf-triangle"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["x-trace-id"], TRACE);
    let id = r.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let ll = stack.client.get(&id).await.unwrap();
        if ll.status == Status::Ready {
            break;
        }
        assert_ne!(ll.status, Status::Failed, "{:?}", ll.error);
        assert!(Instant::now() < deadline, "never READY");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // 4 endpoints × (create, reachability) + 4 configured endpoints + the request, the
    // scheduler's request, provisioning and links.
    let expected = 4 + 4 + 4 + 4;
    let deadline = Instant::now() + Duration::from_secs(30);
    let spans: Vec<Span> = loop {
        let spans = ch
            .query(&format!(
                "SELECT trace_id, span_id, parent_span_id, name, service, status_code, session_id, \
                 lesson, livelesson_id, endpoint, instance FROM {database}.spans FINAL \
                 WHERE session_id = '{session}'"
            ))
            .fetch_all::<Span>()
            .await
            .unwrap();
        if spans.len() >= expected {
            break spans;
        }
        assert!(
            Instant::now() < deadline,
            "only {} spans of the session arrived: {spans:#?}",
            spans.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };

    let traces: HashSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    assert_eq!(traces, HashSet::from([TRACE]), "{spans:#?}");
    let mut by_name: BTreeMap<&str, Vec<&Span>> = BTreeMap::new();
    for s in &spans {
        by_name.entry(s.name.as_str()).or_default().push(s);
        assert_eq!(s.session_id, session, "{s:?}");
        assert_eq!(s.lesson, "ospf-triangle", "{s:?}");
        assert_eq!(s.livelesson_id, id, "{s:?}");
        assert_ne!(s.status_code, "error", "{s:?}");
    }
    let root = &by_name["POST /api/v1/livelessons"];
    assert_eq!(root.len(), 1);
    assert_eq!(
        root[0].parent_span_id, PARENT,
        "continues the browser's trace"
    );
    assert_eq!(root[0].service, "api");
    assert_eq!(by_name["scheduler.request"][0].service, "scheduler");
    assert_eq!(by_name["livelesson.provision"].len(), 1);
    assert_eq!(by_name["livelesson.links"].len(), 1);
    for step in [
        "endpoint.create",
        "endpoint.reachability",
        "endpoint.configure",
    ] {
        let endpoints: HashSet<&str> = by_name[step].iter().map(|s| s.endpoint.as_str()).collect();
        assert_eq!(
            endpoints,
            HashSet::from(["r1", "r2", "r3", "linux1"]),
            "{step}"
        );
        for s in &by_name[step] {
            assert!(
                s.instance.contains(&id) && s.instance.ends_with(&s.endpoint),
                "{s:?}"
            );
        }
    }
    // A tree: every span but the root hangs off another span of the trace.
    let ids: HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    for s in spans.iter().filter(|s| s.parent_span_id != PARENT) {
        assert!(ids.contains(s.parent_span_id.as_str()), "orphan {s:?}");
    }

    // The events of the provisioning belong to the same trace.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n: u64 = ch
            .query(&format!(
                "SELECT count() FROM {database}.events FINAL WHERE session_id = '{session}' \
                 AND kind = 'endpoint.configured' AND trace_id = '{TRACE}'"
            ))
            .fetch_one()
            .await
            .unwrap();
        if n == 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{n} endpoint.configured events in the trace"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Log records carry their request's trace and the session, lesson and livelesson of the
    // spans around them.
    const TRACE2: &str = "5bf92f3577b34da6a3ce929d0e0e4737";
    let r = http()
        .post(stack.url(&format!("/api/v1/livelessons/{id}/stages/2/verify")))
        .header("x-antidote-session", &session)
        .header("traceparent", format!("00-{TRACE2}-{PARENT}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows: Vec<(String, String, String, String)> = ch
            .query(&format!(
                "SELECT level, message, lesson, livelesson_id FROM {database}.logs FINAL \
                 WHERE session_id = '{session}' AND trace_id = '{TRACE2}'"
            ))
            .fetch_all()
            .await
            .unwrap();
        if let Some(row) = rows.iter().find(|r| r.1 == "request refused") {
            assert_eq!(row.0, "INFO");
            assert_eq!(row.2, "ospf-triangle");
            assert_eq!(row.3, id);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no log record of the refused request: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // The maintainers' view of the session: the CLI and the API.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_antidote"))
        .args([
            "session",
            &session,
            "--clickhouse-url",
            &clickhouse_url,
            "--database",
            &database,
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        format!("session {session}:"),
        "endpoint.configured".to_owned(),
        "livelesson.ready".to_owned(),
        "POST /api/v1/livelessons".to_owned(),
        "s   scheduler.request".to_owned(), // one level below the request
        "endpoint.reachability".to_owned(),
        format!("trace {TRACE}"),
    ] {
        assert!(text.contains(&needle), "{needle:?} missing from\n{text}");
    }
    for ep in ["r1", "r2", "r3", "linux1"] {
        let line = text
            .lines()
            .skip_while(|l| *l != "endpoints")
            .find(|l| l.split_whitespace().nth(1) == Some(ep))
            .unwrap_or_else(|| panic!("no endpoint line for {ep}:\n{text}"));
        assert!(line.contains(&format!("-{id}-{ep}")), "{line}");
    }
    let unknown = std::process::Command::new(env!("CARGO_BIN_EXE_antidote"))
        .args([
            "session",
            "zzzzzzzzzz",
            "--clickhouse-url",
            &clickhouse_url,
            "--database",
            &database,
        ])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stdout).contains("no events or spans recorded"));

    let timeline = stack.url(&format!("/api/v1/sessions/{session}/timeline"));
    for r in [
        http().get(&timeline),
        http().get(&timeline).header("x-antidote-session", &session),
        http().get(&timeline).bearer_auth("not-the-token"),
    ] {
        let r = r.send().await.unwrap();
        assert_eq!(r.status(), 401);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    let r = http()
        .get(&timeline)
        .bearer_auth(common::stack::MAINTAINER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let t: serde_json::Value = r.json().await.unwrap();
    assert_eq!(t["session_id"], session.as_str());
    assert!(t["spans"].as_array().unwrap().len() >= expected);
    let kinds: HashSet<&str> = t["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for k in [
        "livelesson.requested",
        "endpoint.created",
        "endpoint.reachable",
        "livelesson.ready",
    ] {
        assert!(kinds.contains(k), "{k} missing: {kinds:?}");
    }
    assert_eq!(t["endpoints"].as_array().unwrap().len(), 4);
    assert_eq!(t["livelessons"][0]["id"], id.as_str());

    ingest.stop().await;
    stack.stop().await;
}
