//! Every event kind of DESIGN §7 that the platform emits so far is produced by real work and
//! lands in ClickHouse with the session's IDs: sessions, livelessons that become READY,
//! change stage, fail in configuration or reachability and are deleted, terminals, client
//! errors, a server error and a feedback report. (`feedback.updated` comes with triage.)

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use antidote_telemetry::event::kind;
use common::stack::{Ingested, Stack, Term, http, ready_livelesson, wait_status};
use serde_json::{Value, json};

async fn start(stack: &Stack, s: &str, lesson: &str) -> String {
    let r: Value = http()
        .post(stack.url("/api/v1/livelessons"))
        .header("x-antidote-session", s)
        .json(&json!({"lesson": lesson}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_kind_lands_in_clickhouse_with_its_ids() {
    let dir = tempfile::tempdir().unwrap();
    let db = Ingested::database("kinds").await;
    let stack = Stack::start_full(
        common::broken_labs(dir.path()),
        |c| c.reachability_timeout = Duration::from_secs(2),
        Some(db.2.clone()),
    )
    .await;
    let ingest = Ingested::start(&stack, db).await;

    // session.created
    let s: Value = http()
        .post(stack.url("/api/v1/sessions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let s = s["session_id"].as_str().unwrap().to_owned();

    // requested, state_changed, endpoint.created/reachable/configured, ready
    let ll = ready_livelesson(&stack, &s, "configured-host").await;
    let configured = ll["id"].as_str().unwrap().to_owned();
    // stage_changed
    let basics = ready_livelesson(&stack, &s, "bash-basics").await;
    let basics = basics["id"].as_str().unwrap().to_owned();
    let r = http()
        .put(stack.url(&format!("/api/v1/livelessons/{basics}/stage")))
        .header("x-antidote-session", &s)
        .json(&json!({"stage": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // config_failed, unreachable, failed
    for lesson in ["broken-config", "never-reachable"] {
        let id = start(&stack, &s, lesson).await;
        wait_status(&stack, &s, &id, "FAILED").await;
    }
    // terminal.opened / closed; then the learner breaks their own lab (kills sshd), and the
    // verify check can no longer reach it: a 503, so an http.error.
    wait_status(&stack, &s, &basics, "READY").await;
    let mut term = Term::open(&stack, &s, &basics, "linux1").await;
    term.send("echo bye-$((1+1))\n").await;
    term.expect("bye-2", 20).await;
    term.send("sudo pkill -x sshd\n").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(term);
    let r = http()
        .post(stack.url(&format!("/api/v1/livelessons/{basics}/stages/1/verify")))
        .header("x-antidote-session", &s)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503, "{:?}", r.text().await);
    // client.error
    let r = http()
        .post(stack.url("/api/v1/client-errors"))
        .header("x-antidote-session", &s)
        .json(&json!({"message": "TypeError: x is undefined", "livelesson_id": basics}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // feedback.submitted
    let r = http()
        .post(stack.url("/api/v1/feedback"))
        .header("x-antidote-session", &s)
        .json(&json!({"category": "lab_not_working", "message": "sshd is gone", "livelesson_id": basics}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // livelesson.deleted, endpoint.deleted
    let r = http()
        .delete(stack.url(&format!("/api/v1/livelessons/{configured}")))
        .header("x-antidote-session", &s)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    let wanted = [
        kind::SESSION_CREATED,
        kind::LIVELESSON_REQUESTED,
        kind::LIVELESSON_STATE_CHANGED,
        kind::LIVELESSON_READY,
        kind::LIVELESSON_FAILED,
        kind::LIVELESSON_STAGE_CHANGED,
        kind::LIVELESSON_DELETED,
        kind::ENDPOINT_CREATED,
        kind::ENDPOINT_REACHABLE,
        kind::ENDPOINT_UNREACHABLE,
        kind::ENDPOINT_CONFIGURED,
        kind::ENDPOINT_CONFIG_FAILED,
        kind::ENDPOINT_DELETED,
        kind::TERMINAL_OPENED,
        kind::TERMINAL_CLOSED,
        kind::CLIENT_ERROR,
        kind::HTTP_ERROR,
        kind::FEEDBACK_SUBMITTED,
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    let found: BTreeMap<String, (u64, String, String)> = loop {
        let rows: Vec<(String, u64, String, String)> = ingest
            .client
            .query(
                "SELECT kind, count(), any(livelesson_id), any(request_id) FROM events FINAL \
                 WHERE session_id = ? GROUP BY kind",
            )
            .bind(&s)
            .fetch_all()
            .await
            .unwrap();
        let found: BTreeMap<_, _> = rows
            .into_iter()
            .map(|(k, n, l, r)| (k, (n, l, r)))
            .collect();
        if wanted.iter().all(|k| found.contains_key(*k)) {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "missing {:?}; found {found:?}",
            wanted
                .iter()
                .filter(|k| !found.contains_key(**k))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    for k in wanted
        .iter()
        .filter(|k| **k != kind::SESSION_CREATED && **k != kind::HTTP_ERROR)
    {
        assert!(!found[*k].1.is_empty(), "{k} has no livelesson_id");
    }
    assert!(
        !found[kind::HTTP_ERROR].2.is_empty(),
        "http.error names its request"
    );
    // A device-level event names its endpoint instance.
    let (instance, endpoint): (String, String) = ingest
        .client
        .query("SELECT any(instance), any(endpoint) FROM events FINAL WHERE session_id = ? AND kind = 'endpoint.configured'")
        .bind(&s)
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(endpoint, "linux1");
    assert!(
        instance.ends_with(&format!("{configured}-linux1")),
        "{instance}"
    );

    ingest.stop().await;
    stack.stop().await;
}
