//! The maintainers' triage (DESIGN §8, §9) against real NATS, ClickHouse and labs: the queue
//! groups likely duplicates and filters; a report carries its session (events, spans,
//! endpoint instances) and a Markdown summary; changes follow the status flow and each one
//! writes `feedback_activity` and `feedback.updated`; learner text stays text on every page;
//! only maintainers get in; reports survive ClickHouse and NATS outages.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::time::{Duration, Instant};

use common::bundled;
use common::stack::{
    Ingested, MAINTAINER_TOKEN, Relay, Stack, http, maintainer_cookie, ready_livelesson, session,
    wait_status,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn submit(stack: &Stack, s: &str, body: Value) -> reqwest::Response {
    http()
        .post(stack.url("/api/v1/feedback"))
        .header("x-antidote-session", s)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn submitted(stack: &Stack, s: &str, body: Value) -> String {
    let r = submit(stack, s, body).await;
    assert_eq!(r.status(), 201);
    r.json::<Value>().await.unwrap()["feedback_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Asserts a refused answer — its status, and a message naming `needle` — and returns the
/// error body.
async fn refused(r: reqwest::Response, status: u16, needle: &str) -> Value {
    assert_eq!(r.status(), status);
    let e: Value = r.json().await.unwrap();
    assert!(
        e["error"]["message"].as_str().unwrap().contains(needle),
        "{e}"
    );
    e
}

fn bearer(r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    r.bearer_auth(MAINTAINER_TOKEN)
}

async fn queue(stack: &Stack, query: &str) -> Value {
    let r = bearer(http().get(stack.url(&format!("/api/v1/triage/feedback{query}"))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{query}");
    r.json().await.unwrap()
}

/// The queue item holding report `id`, waiting until ingest stored it.
async fn queued(stack: &Stack, id: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let q = queue(stack, "").await;
        if let Some(item) = q["items"].as_array().unwrap().iter().find(|i| {
            i["feedback_ids"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == id)
        }) {
            return item.clone();
        }
        assert!(Instant::now() < deadline, "report {id} never queued: {q}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn ids(q: &Value) -> Vec<String> {
    q["items"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["feedback_ids"].as_array().unwrap().clone())
        .map(|x| x.as_str().unwrap().to_owned())
        .collect()
}

async fn patch(stack: &Stack, id: &str, body: Value) -> reqwest::Response {
    bearer(http().patch(stack.url(&format!("/api/v1/triage/feedback/{id}"))))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn page(stack: &Stack, path: &str) -> (StatusCode, String) {
    let r = http()
        .get(stack.url(path))
        .header("cookie", maintainer_cookie(stack).await)
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triage_routes_need_a_maintainer() {
    let db = Ingested::database("triage_auth").await;
    let stack = Stack::start_with_telemetry(bundled(), db.2.clone()).await;
    let s = session(&stack).await;
    let learner_cookie = format!("antidote_session={s}");
    let routes = [
        ("GET", "/api/v1/triage/feedback"),
        ("GET", "/api/v1/triage/feedback/abcdefghij"),
        ("PATCH", "/api/v1/triage/feedback/abcdefghij"),
    ];
    for (method, path) in routes {
        let method: reqwest::Method = method.parse().unwrap();
        for (label, request) in [
            ("no token", http().request(method.clone(), stack.url(path))),
            (
                "learner cookie",
                http()
                    .request(method.clone(), stack.url(path))
                    .header("cookie", &learner_cookie),
            ),
            (
                "learner header",
                http()
                    .request(method.clone(), stack.url(path))
                    .header("x-antidote-session", &s),
            ),
            (
                "wrong token",
                http()
                    .request(method.clone(), stack.url(path))
                    .bearer_auth("not-the-token"),
            ),
        ] {
            let r = request
                .json(&json!({"status": "triaged"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 401, "{method} {path} with {label}");
            let e: Value = r.json().await.unwrap();
            assert_eq!(e["error"]["code"], "unauthorized", "{e}");
        }
    }
    // The pages: a sign-in form instead of the queue, and no form post without a token.
    for request in [
        http().get(stack.url("/triage")),
        http()
            .get(stack.url("/triage"))
            .header("cookie", &learner_cookie),
        http()
            .post(stack.url("/triage/feedback/abcdefghij"))
            .header("cookie", &learner_cookie)
            .form(&[("status", "triaged")]),
    ] {
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), 401);
        let body = r.text().await.unwrap();
        assert!(body.contains(r#"id="login""#), "{body}");
        assert!(!body.contains(r#"id="queue""#));
    }
    // Signing in sets an HttpOnly cookie for the pages; a wrong token is told so.
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirect
        .post(stack.url("/triage/login"))
        .form(&[("token", MAINTAINER_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    // A signed, expiring sign-in: never the token itself.
    assert!(
        cookie.starts_with("antidote_maintainer=v1~maintainer~"),
        "{cookie}"
    );
    assert!(!cookie.contains(MAINTAINER_TOKEN), "{cookie}");
    assert!(cookie.contains("Max-Age=43200"), "{cookie}");
    // The token itself is no cookie, nor is a tampered sign-in.
    for forged in [
        format!("antidote_maintainer={MAINTAINER_TOKEN}"),
        cookie
            .split(';')
            .next()
            .unwrap()
            .replacen("~maintainer~", "~ana~", 1),
    ] {
        let r = http()
            .get(stack.url("/api/v1/triage/feedback"))
            .header("cookie", &forged)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{forged}");
    }
    assert!(cookie.contains("Path=/triage"), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let r = no_redirect
        .post(stack.url("/triage/login"))
        .form(&[("token", "guess")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.text().await.unwrap().contains("not valid"));
    let (status, body) = page(&stack, "/triage").await;
    assert_eq!(status, 200);
    assert!(body.contains("Feedback queue"), "{body}");
    // A shared link survives signing in; the way on stays on this site's triage pages.
    let r = http()
        .get(stack.url("/triage/feedback/abcdefghij"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains(r#"name="next" value="/triage/feedback/abcdefghij""#)
    );
    for (next, to) in [
        ("/triage/feedback/abcdefghij", "/triage/feedback/abcdefghij"),
        ("//evil.example/triage", "/triage"),
        ("https://evil.example/", "/triage"),
    ] {
        let r = no_redirect
            .post(stack.url("/triage/login"))
            .form(&[("token", MAINTAINER_TOKEN), ("next", next)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"], to, "{next}");
    }
    // The filter form as a browser sends it: every field, the empty ones empty.
    let (status, body) = page(
        &stack,
        "/triage?status=open&lesson=&category=&max_age_hours=&q=",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#"id="queue-empty""#), "{body}");
    let (status, body) = page(&stack, "/triage?max_age_hours=soon").await;
    assert_eq!(status, 400);
    assert!(body.contains("max_age_hours"), "{body}");
    // Another site's page cannot sign in, post a change or sign out.
    for path in [
        "/triage/login",
        "/triage/feedback/abcdefghij",
        "/triage/logout",
    ] {
        let r = no_redirect
            .post(stack.url(path))
            .header("cookie", maintainer_cookie(&stack).await)
            .header("origin", "http://evil.example")
            .form(&[("token", MAINTAINER_TOKEN), ("status", "triaged")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
    let r = no_redirect
        .post(stack.url("/triage/logout"))
        .header("cookie", maintainer_cookie(&stack).await)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/triage?signed_out=1");
    let (_, after) = page(&stack, "/triage?signed_out=1").await;
    assert!(after.contains("Signed out.") && after.contains(r#"id="login""#));
    let cleared: Vec<&str> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    for path in ["Path=/triage;", "Path=/;"] {
        assert!(
            cleared
                .iter()
                .any(|c| c.starts_with("antidote_maintainer=;")
                    && c.contains(path)
                    && c.contains("Max-Age=0")),
            "{path} in {cleared:?}"
        );
    }
    stack.stop().await;
    let _ = antidote_telemetry::clickhouse_client::client(&db.0)
        .query(&format!("DROP DATABASE IF EXISTS {}", db.1))
        .execute()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_groups_filters_and_moves_reports() {
    let db = Ingested::database("triage_queue").await;
    let stack = Stack::start_with_telemetry(bundled(), db.2.clone()).await;
    assert!(
        common::stack::export_telemetry_to(&stack).await,
        "the only test of this binary that exports spans"
    );
    let ingest = Ingested::start(&stack, db).await;
    let s = session(&stack).await;
    let ll = ready_livelesson(&stack, &s, "bash-basics").await;
    let ll_id = ll["id"].as_str().unwrap();
    let instance = ll["endpoints"][0]["instance"].as_str().unwrap().to_owned();

    // Two reports of one failure (numbers differ), one other with markup in it; a second
    // apart, as reports are ordered by their time in seconds.
    let next_second = || tokio::time::sleep(Duration::from_millis(1100));
    let a = submitted(
        &stack,
        &s,
        json!({"category": "lab_not_working", "message": "first", "livelesson_id": ll_id,
               "context": {"requestIds": ["req-a"], "traceIds": ["0af7651916cd43dd8448eb211c80319c"],
                           "errors": [{"message": "WebSocket closed 1006 after 31 ms"}]}}),
    )
    .await;
    next_second().await;
    let b = submitted(
        &stack,
        &s,
        json!({"category": "lab_not_working", "message": "second", "livelesson_id": ll_id,
               "context": {"errors": [{"message": "WebSocket closed 1006 after 87 ms"}]}}),
    )
    .await;
    next_second().await;
    let markup = r#"<script>alert("x")</script><img src=x onerror=alert(1)> & <b>bold</b>"#;
    let c = submitted(
        &stack,
        &s,
        json!({"category": "terminal", "message": markup, "livelesson_id": ll_id,
               "contact": "<i>me</i>@example.org"}),
    )
    .await;
    queued(&stack, &a, 20).await;
    let item = queued(&stack, &b, 20).await;
    assert_eq!(item["count"], 2, "{item}");
    assert_eq!(item["feedback_ids"], json!([b, a]), "newest first");
    assert_eq!(
        (item["lesson"].as_str(), item["stage"].as_i64()),
        (Some("bash-basics"), Some(0))
    );
    assert_eq!(item["status"], "new");
    let item = queued(&stack, &c, 20).await;
    assert_eq!(item["count"], 1);
    assert_eq!(item["message"], markup, "the API returns the text as sent");
    let all = queue(&stack, "").await;
    assert_eq!(all["reports"], 3);
    assert_eq!(
        all["items"][0]["feedback_id"],
        c.as_str(),
        "newest group first"
    );

    // Filters.
    assert_eq!(
        ids(&queue(&stack, "?category=terminal").await),
        [c.as_str()]
    );
    assert_eq!(ids(&queue(&stack, "?q=SECOND").await), [b.as_str()]);
    assert_eq!(ids(&queue(&stack, &format!("?q={a}")).await), [a.as_str()]);
    assert_eq!(ids(&queue(&stack, &format!("?q={s}")).await).len(), 3);
    assert_eq!(ids(&queue(&stack, "?q=example.org").await), [c.as_str()]);
    assert_eq!(
        ids(&queue(&stack, "?lesson=bash-basics&status=new&max_age_hours=1").await).len(),
        3
    );
    assert!(ids(&queue(&stack, "?lesson=linux-basics").await).is_empty());
    assert!(ids(&queue(&stack, "?status=closed").await).is_empty());
    for (query, needle) in [
        ("?status=done", "status"),
        ("?category=weather", "category"),
        ("?max_age_hours=soon", "max_age_hours"),
        ("?colour=red", "colour"),
    ] {
        let r = bearer(http().get(stack.url(&format!("/api/v1/triage/feedback{query}"))))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 422, "{query}");
        let e: Value = r.json().await.unwrap();
        assert!(
            e["error"]["message"].as_str().unwrap().contains(needle),
            "{query}: {e}"
        );
    }

    // One report, with its session down to the device.
    let r = bearer(http().get(stack.url(&format!("/api/v1/triage/feedback/{a}"))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["feedback"]["session_id"], s.as_str());
    assert_eq!(report["context"]["requestIds"], json!(["req-a"]));
    assert_eq!(report["group"].as_array().unwrap().len(), 2);
    let session_view = &report["session"];
    let kinds: Vec<&str> = session_view["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for k in [
        "session.created",
        "livelesson.ready",
        "endpoint.reachable",
        "feedback.submitted",
    ] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }
    assert!(!session_view["spans"].as_array().unwrap().is_empty());
    let endpoint = session_view["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["instance"] == instance.as_str())
        .unwrap_or_else(|| panic!("{instance} in {}", session_view["endpoints"]));
    assert_eq!(endpoint["backend"], "local");
    assert!(!endpoint["node"].as_str().unwrap().is_empty());
    assert_eq!(endpoint["reachability"][0]["reachable"], true);
    assert_eq!(session_view["feedback"].as_array().unwrap().len(), 3);
    assert_eq!(session_view["livelessons"][0]["id"], ll_id);
    let md = report["issue_markdown"].as_str().unwrap();
    for needle in [
        a.as_str(),
        s.as_str(),
        ll_id,
        instance.as_str(),
        "req-a",
        "0af7651916cd43dd8448eb211c80319c",
        "```text\nfirst\n```",
    ] {
        assert!(md.contains(needle), "{needle} in\n{md}");
    }

    // Triage: forward along the flow, with assignee and note.
    let r = patch(
        &stack,
        &a,
        json!({"status": "triaged", "assignee": "ana", "priority": "high", "note": "looking <now>"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let changed: Value = r.json().await.unwrap();
    assert_eq!(changed["visible"], true);
    assert_eq!(changed["feedback"]["status"], "triaged");
    assert_eq!(changed["feedback"]["revision"], 2);
    assert_eq!(changed["activity"]["actor"], "maintainer");
    // The queue shows it at once (the answer waited for ClickHouse).
    let item = queued(&stack, &a, 1).await;
    assert_eq!(
        item["feedback_id"],
        b.as_str(),
        "the group shows its newest"
    );
    let q = queue(&stack, "?status=triaged").await;
    assert_eq!(ids(&q), [a.as_str()]);
    assert_eq!(q["items"][0]["assignee"], "ana");
    assert_eq!(q["items"][0]["priority"], "high");
    #[derive(Debug, clickhouse::Row, serde::Deserialize)]
    struct Activity {
        actor: String,
        action: String,
        changed_keys: Vec<String>,
        old_values: Vec<String>,
        new_values: Vec<String>,
        note: String,
    }
    let rows: Vec<Activity> = ingest
        .client
        .query("SELECT actor, action, changed_keys, old_values, new_values, note FROM feedback_activity FINAL WHERE feedback_id = ?")
        .bind(&a)
        .fetch_all()
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].actor, "maintainer");
    assert_eq!(rows[0].action, "status");
    assert_eq!(rows[0].changed_keys, ["status", "assignee", "priority"]);
    assert_eq!(rows[0].old_values, ["new", "", ""]);
    assert_eq!(rows[0].new_values, ["triaged", "ana", "high"]);
    assert_eq!(rows[0].note, "looking <now>");

    // Refused: a jump in the flow, nothing at all, unknown fields and reports.
    let r = patch(&stack, &a, json!({"status": "resolved"})).await;
    let e = refused(r, 409, "`triaged` to `resolved`").await;
    assert_eq!(e["error"]["code"], "invalid_transition");
    for (body, status, needle) in [
        (json!({"status": "triaged"}), 422, "nothing to change"),
        (json!({"priority": "asap"}), 422, "priority"),
        (
            json!({"duplicate_of": "zzzzzzzzzz"}),
            422,
            "no report `zzzzzzzzzz`",
        ),
        (json!({"status": "duplicate"}), 422, "duplicate_of"),
        (
            json!({"status": "in_progress", "duplicate_of": b}),
            422,
            "only for status `duplicate`",
        ),
        (json!({"colour": "red"}), 422, "colour"),
        (json!({"assignee": "x".repeat(101)}), 422, "assignee"),
    ] {
        let r = patch(&stack, &a, body.clone()).await;
        assert_eq!(r.status(), status, "{body}");
        let e: Value = r.json().await.unwrap();
        assert!(
            e["error"]["message"].as_str().unwrap().contains(needle),
            "{body}: {e}"
        );
    }
    // A change made on an old revision (a page loaded before the last change) is refused,
    // never silently overwriting; on the current one it goes through.
    let r = patch(&stack, &a, json!({"priority": "low", "revision": 1})).await;
    let e = refused(r, 409, "since you loaded it").await;
    assert_eq!(e["error"]["code"], "stale", "{e}");
    let r = bearer(http().post(stack.url(&format!("/triage/feedback/{a}"))))
        .header("cookie", maintainer_cookie(&stack).await)
        .form(&[
            ("status", "triaged"),
            ("priority", ""),
            ("revision", "1"),
            ("note", "old page"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("since you loaded it") && html.contains("old page"),
        "{html}"
    );
    let q = queue(&stack, "?status=triaged").await;
    assert_eq!(q["items"][0]["priority"], "high", "nothing was overwritten");
    let r = patch(&stack, "zzzzzzzzzz", json!({"status": "triaged"})).await;
    assert_eq!(r.status(), 404);
    let r = patch(&stack, "BAD", json!({"status": "triaged"})).await;
    assert_eq!(r.status(), 404);

    // In progress, then a duplicate of the other report of its group; a note alone.
    assert_eq!(
        patch(&stack, &a, json!({"status": "in_progress"}))
            .await
            .status(),
        200
    );
    // The report page's form, as a browser sends it (the current status along): b repeats a.
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(stack.url(&format!("/triage/feedback/{b}")))
        .header("cookie", maintainer_cookie(&stack).await)
        .form(&[
            ("status", "new"),
            ("assignee", ""),
            ("priority", ""),
            ("duplicate_of", a.as_str()),
            ("note", "same socket drop"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("/triage/feedback/{b}?saved=1")
    );
    let (_, b_page) = page(&stack, &format!("/triage/feedback/{b}?saved=1")).await;
    assert!(
        b_page.contains(r#"id="report-status">duplicate<"#),
        "{b_page}"
    );
    assert!(b_page.contains(&format!(r#"<a href="/triage/feedback/{a}">{a}</a>"#)));
    // Duplicates point at an original, not along a chain.
    let r = patch(&stack, &c, json!({"duplicate_of": b})).await;
    refused(r, 422, "itself a duplicate").await;
    // Nor can an original become a duplicate while others point at it.
    let r = patch(&stack, &a, json!({"duplicate_of": c})).await;
    refused(r, 422, "original of 1").await;
    // The form shows an error at the form, keeping the note.
    let (status, html) = {
        let r = http()
            .post(stack.url(&format!("/triage/feedback/{a}")))
            .header("cookie", maintainer_cookie(&stack).await)
            .form(&[
                ("status", "new"),
                ("assignee", "bo"),
                ("duplicate_of", "zzzzzzzzzz"),
                ("note", "keep <this>"),
            ])
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    };
    // (The unknown original is named first; the status move is not even tried.)
    assert_eq!(status, 422);
    assert!(html.contains("no report `zzzzzzzzzz`"), "{html}");
    assert!(
        html.contains(r#"id="triage-error""#) && html.contains("keep &lt;this&gt;"),
        "{html}"
    );
    // Everything typed stays in the form, not just the note.
    assert!(
        html.contains(r#"id="triage-assignee" maxlength="100" value="bo""#),
        "{html}"
    );
    assert!(html.contains(r#"value="zzzzzzzzzz""#), "{html}");
    assert_eq!(
        patch(&stack, &a, json!({"note": "fix in review"}))
            .await
            .status(),
        200
    );
    let report: Value = bearer(http().get(stack.url(&format!("/api/v1/triage/feedback/{a}"))))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let actions: Vec<&str> = report["activity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["status", "status", "note"]);
    assert_eq!(report["feedback"]["revision"], 4);

    // Every change is an event too.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n: u64 = ingest
            .client
            .query("SELECT count() FROM events FINAL WHERE session_id = ? AND kind = 'feedback.updated'")
            .bind(&s)
            .fetch_one()
            .await
            .unwrap();
        if n == 4 {
            break;
        }
        assert!(Instant::now() < deadline, "{n} feedback.updated events");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Learner text is text on every page.
    let (status, queue_page) = page(&stack, "/triage?status=").await;
    assert_eq!(status, 200);
    let (status, report_page) = page(&stack, &format!("/triage/feedback/{c}")).await;
    assert_eq!(status, 200);
    let escaped = common::stack::escape_html(markup);
    for (name, html) in [("queue", &queue_page), ("report", &report_page)] {
        assert!(
            html.contains(&escaped),
            "{name} page shows the text escaped"
        );
        assert!(
            !html.contains("<script>alert"),
            "{name} page runs no learner script"
        );
        assert!(
            !html.contains("<img src=x"),
            "{name} page has no learner markup"
        );
        assert!(
            !html.contains("<b>bold"),
            "{name} page has no learner markup"
        );
    }
    assert!(report_page.contains("&lt;i&gt;me&lt;/i&gt;@example.org"));
    assert!(!report_page.contains("<i>me</i>"));
    assert!(
        report_page.contains(&instance),
        "the report page names the instance"
    );
    let (_, a_page) = page(&stack, &format!("/triage/feedback/{a}")).await;
    assert!(a_page.contains("looking &lt;now&gt;"), "notes are escaped");

    // However long ingest stalls, a change never builds on a revision older than the last one
    // published (here: as if revision 9 were on its way).
    antidote_platform::bus::record_published_revision(
        &stack.client.js,
        &stack.client.layout,
        &c,
        9,
    )
    .await
    .unwrap();
    let r = patch(&stack, &c, json!({"status": "triaged"})).await;
    refused(r, 409, "revision 9").await;

    // A maintainer's browser that also holds this learner's session: the triage pages and
    // static files are not part of the learner's session (its trace tree stays theirs).
    for path in ["/triage", "/assets/app.css"] {
        let r = http()
            .get(stack.url(path))
            .header(
                "cookie",
                format!("antidote_session={s}; {}", maintainer_cookie(&stack).await),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let marker = http()
        .get(stack.url("/api/v1/lessons"))
        .header("cookie", format!("antidote_session={s}"))
        .send()
        .await
        .unwrap();
    assert_eq!(marker.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let names: Vec<String> = ingest
            .client
            .query("SELECT name FROM spans FINAL WHERE session_id = ?")
            .bind(&s)
            .fetch_all()
            .await
            .unwrap();
        if names.iter().any(|n| n == "GET /api/v1/lessons") {
            assert!(
                !names
                    .iter()
                    .any(|n| n.starts_with("GET /triage") || n.starts_with("GET /assets")),
                "{names:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no spans of the session: {names:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The backlog in /metrics: one report (c) is still new.
    let metrics = http()
        .get(stack.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("antidote_feedback_untriaged 1"),
        "{metrics}"
    );
    let oldest: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("antidote_feedback_oldest_untriaged_seconds "))
        .unwrap_or_else(|| panic!("{metrics}"))
        .parse()
        .unwrap();
    assert!((0.0..600.0).contains(&oldest), "{oldest}");

    ingest.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_sent_while_clickhouse_is_down_appears_once_it_is_back() {
    let db = Ingested::database("triage_outage").await;
    let stack = Stack::start_with_telemetry(bundled(), db.2.clone()).await;
    let target =
        db.0.trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
    let relay = Relay::new(target);
    let ingest = Ingested::start_via(&stack, db, &relay.http_url()).await;
    let s = session(&stack).await;

    // ClickHouse is away for ingest: the report is still taken (it is in JetStream).
    let id = submitted(
        &stack,
        &s,
        json!({"category": "other", "message": "while away"}),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!ids(&queue(&stack, "").await).contains(&id));

    relay.up().await;
    let item = queued(&stack, &id, 30).await;
    assert_eq!(item["message"], "while away");
    assert_eq!(item["count"], 1);

    // A change while ingest cannot write: durable (202), shown once ClickHouse is back; a
    // second change meanwhile would build on a stale revision and is refused.
    relay.cut().await;
    let r = patch(&stack, &id, json!({"status": "triaged"})).await;
    assert_eq!(r.status(), 202);
    assert_eq!(r.json::<Value>().await.unwrap()["visible"], false);
    let r = patch(&stack, &id, json!({"assignee": "ana"})).await;
    refused(r, 409, "does not show yet").await;
    relay.up().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while ids(&queue(&stack, "?status=triaged").await) != [id.as_str()] {
        assert!(
            Instant::now() < deadline,
            "the change never reached the queue"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        patch(&stack, &id, json!({"assignee": "ana"}))
            .await
            .status(),
        200
    );

    ingest.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_nats_is_down_feedback_is_refused_clearly_and_taken_again_after() {
    let db = Ingested::database("triage_nats").await;
    let (stack, relay) = Stack::start_cuttable(bundled(), db.2.clone()).await;
    let ingest = Ingested::start(&stack, db).await;
    let s = session(&stack).await;

    relay.cut().await;
    stack.wait_readyz(false).await;
    let started = Instant::now();
    let r = submit(&stack, &s, json!({"category": "other", "message": "lost?"})).await;
    assert_eq!(r.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "answered in {:?}",
        started.elapsed()
    );
    let e: Value = r.json().await.unwrap();
    let message = e["error"]["message"].as_str().unwrap();
    assert!(message.contains("send it again"), "{message}");

    relay.up().await;
    stack.wait_readyz(true).await;
    let id = submitted(&stack, &s, json!({"category": "other", "message": "lost?"})).await;
    queued(&stack, &id, 20).await;
    // Nothing from the refused attempt was stored.
    assert_eq!(queue(&stack, "?q=lost").await["reports"], 1);

    ingest.stop().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_lab_report_shows_the_failing_instance_and_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let db = Ingested::database("triage_failed").await;
    let stack = Stack::start_with_telemetry(common::broken_labs(dir.path()), db.2.clone()).await;
    let ingest = Ingested::start(&stack, db).await;
    let s = session(&stack).await;
    let r = http()
        .post(stack.url("/api/v1/livelessons"))
        .header("x-antidote-session", &s)
        .json(&json!({"lesson": "broken-config", "stage": 0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let ll: Value = r.json().await.unwrap();
    let ll_id = ll["id"].as_str().unwrap();
    let failed = wait_status(&stack, &s, ll_id, "FAILED").await;
    let first = submitted(
        &stack,
        &s,
        json!({"category": "lab_not_working", "message": "it never started", "livelesson_id": ll_id}),
    )
    .await;
    // The same failure in another learner's lab: the same group (the lab's failure is the
    // error signature).
    let s2 = session(&stack).await;
    let r = http()
        .post(stack.url("/api/v1/livelessons"))
        .header("x-antidote-session", &s2)
        .json(&json!({"lesson": "broken-config", "stage": 0}))
        .send()
        .await
        .unwrap();
    let ll2: Value = r.json().await.unwrap();
    wait_status(&stack, &s2, ll2["id"].as_str().unwrap(), "FAILED").await;
    let second = submitted(
        &stack,
        &s2,
        json!({"category": "lab_not_working", "message": "broken for me too", "livelesson_id": ll2["id"]}),
    )
    .await;
    queued(&stack, &first, 20).await;
    let item = queued(&stack, &second, 20).await;
    assert_eq!(item["count"], 2, "{item}");

    let failing = failed["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["state"] == "failed")
        .unwrap_or_else(|| panic!("a failed endpoint in {failed}"));
    let instance = failing["instance"].as_str().unwrap();
    let (status, html) = page(&stack, &format!("/triage/feedback/{first}")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains(&format!(r#"data-instance="{instance}""#)),
        "{html}"
    );
    assert!(html.contains(r#"class="instance failed""#), "marked failed");
    assert!(html.contains("configuration FAILED"), "the failed run");
    assert!(html.contains("about to fail"), "the failure's output");
    assert!(
        html.contains("Failed in configure"),
        "the livelesson's failure"
    );

    ingest.stop().await;
    stack.stop().await;
}
