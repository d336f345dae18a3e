//! Feedback intake: a learner's report is durable in JetStream before the API answers 201,
//! lands in ClickHouse's `feedback` with the lesson and stage from our own records, emits
//! `feedback.submitted` and counts in `/metrics`; bad reports are refused naming the field;
//! likely duplicates share a group key. (The triage queue comes with the rest of DESIGN §8.)

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::time::{Duration, Instant};

use common::bundled;
use common::stack::{Ingested, Stack, http, ready_livelesson, session};
use serde_json::{Value, json};

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct Stored {
    session_id: String,
    livelesson_id: String,
    lesson: String,
    stage: i16,
    category: String,
    rating: u8,
    message: String,
    status: String,
    group_key: String,
    client_context: String,
}

async fn stored(ingest: &Ingested, id: &str) -> Stored {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows: Vec<Stored> = ingest
            .client
            .query(
                "SELECT session_id, livelesson_id, lesson, stage, category, rating, message, \
                 status, group_key, client_context FROM feedback FINAL WHERE feedback_id = ?",
            )
            .bind(id)
            .fetch_all()
            .await
            .unwrap();
        if let Some(r) = rows.into_iter().next() {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "report {id} never reached ClickHouse"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn submit(stack: &Stack, s: &str, body: Value) -> reqwest::Response {
    http()
        .post(stack.url("/api/v1/feedback"))
        .header("x-antidote-session", s)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_stored_with_their_context_and_grouped() {
    let db = Ingested::database("feedback").await;
    let stack = Stack::start_with_telemetry(bundled(), db.2.clone()).await;
    let ingest = Ingested::start(&stack, db).await;
    let s = session(&stack).await;
    let ll = ready_livelesson(&stack, &s, "bash-basics").await;
    let id = ll["id"].as_str().unwrap();

    let text = "The terminal froze <script>alert(1)</script> & nothing works";
    let r = submit(
        &stack,
        &s,
        json!({
            "category": "lab_not_working", "rating": 2, "message": text,
            "livelesson_id": id, "page_url": "http://x/lessons/bash-basics",
            "context": {"requestIds": ["r-1"], "traceIds": ["t-1"],
                        "errors": [{"message": "WebSocket closed 1006 after 31 ms"}]},
        }),
    )
    .await;
    assert_eq!(r.status(), 201);
    let first = r.json::<Value>().await.unwrap()["feedback_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(first.len(), 10);
    let row = stored(&ingest, &first).await;
    assert_eq!(row.session_id, s);
    assert_eq!(row.livelesson_id, id);
    assert_eq!((row.lesson.as_str(), row.stage), ("bash-basics", 0));
    assert_eq!((row.category.as_str(), row.rating), ("lab_not_working", 2));
    assert_eq!(row.message, text, "stored as sent");
    assert_eq!(row.status, "new");
    assert!(
        row.client_context.contains("\"requestIds\""),
        "{}",
        row.client_context
    );

    // The same failure with other numbers in it: the same group.
    let r = submit(
        &stack,
        &s,
        json!({
            "category": "lab_not_working", "message": "again", "livelesson_id": id,
            "context": {"errors": [{"message": "WebSocket closed 1006 after 87 ms"}]},
        }),
    )
    .await;
    let second = r.json::<Value>().await.unwrap()["feedback_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(stored(&ingest, &second).await.group_key, row.group_key);

    // Another session naming this livelesson: the report is kept, the livelesson is not.
    let other = session(&stack).await;
    let r = submit(
        &stack,
        &other,
        json!({"category": "other", "message": "hi", "livelesson_id": id}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let foreign = r.json::<Value>().await.unwrap()["feedback_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let row = stored(&ingest, &foreign).await;
    assert_eq!((row.livelesson_id.as_str(), row.lesson.as_str()), ("", ""));

    // Sent again with its submission key (the first answer was lost): stored once, the
    // first report's ID comes back.
    let body =
        json!({"category": "other", "message": "resent", "submission_id": "k-0123456789abcdef"});
    let r = submit(&stack, &s, body.clone()).await;
    assert_eq!(r.status(), 201);
    let once = r.json::<Value>().await.unwrap()["feedback_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = submit(&stack, &s, body.clone()).await;
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.json::<Value>().await.unwrap()["feedback_id"],
        once.as_str()
    );
    stored(&ingest, &once).await;
    let n: u64 = ingest
        .client
        .query("SELECT count() FROM feedback FINAL WHERE message = 'resent'")
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(n, 1);
    // The same key from another session is another report.
    let r = submit(&stack, &other, body).await;
    assert_eq!(r.status(), 201);
    assert_ne!(
        r.json::<Value>().await.unwrap()["feedback_id"],
        once.as_str()
    );

    // Refused, naming the field; nothing stored.
    for (body, needle) in [
        (
            json!({"category": "other", "message": "x", "rating": 9}),
            "rating",
        ),
        (json!({"category": "other", "message": "  "}), "message"),
        (
            json!({"category": "other", "message": "x".repeat(4001)}),
            "4000",
        ),
        (json!({"category": "weather", "message": "x"}), "category"),
        (
            json!({"category": "other", "message": "x", "mood": "sad"}),
            "mood",
        ),
        (
            json!({"category": "other", "message": "x", "submission_id": "short"}),
            "submission_id",
        ),
    ] {
        let r = submit(&stack, &s, body).await;
        assert_eq!(r.status(), 422);
        let e: Value = r.json().await.unwrap();
        assert!(
            e["error"]["message"].as_str().unwrap().contains(needle),
            "{needle}: {e}"
        );
    }

    // The event and the counter.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n: u64 = ingest
            .client
            .query("SELECT count() FROM events FINAL WHERE session_id = ? AND kind = 'feedback.submitted' AND livelesson_id = ?")
            .bind(&s)
            .bind(id)
            .fetch_one()
            .await
            .unwrap();
        if n == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{n} feedback.submitted events");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = http()
        .get(stack.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("antidote_feedback_submitted_total{category=\"lab_not_working\"} 2"),
        "{metrics}"
    );

    ingest.stop().await;
    stack.stop().await;
}
