//! The HTTP API and terminals over real HTTP and websockets, with the scheduler and the local
//! backend behind them against the real NATS server: bad input gets JSON errors with request
//! IDs, a learner runs a real lesson and its verify checks, and a session reaches only its
//! own livelessons, terminals and http presentations.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::path::Path;

use common::stack::{Stack, Term, http, ready_livelesson, session, terminal_request};
use common::{bundled, fixture, repo_root};
use serde_json::{Value, json};

/// Asserts the DESIGN §9 error shape and that its request ID is the response header's.
async fn assert_error(r: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status().as_u16(), status, "{:?}", r.url().path());
    let header = r
        .headers()
        .get("x-request-id")
        .expect("x-request-id")
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["error"]["request_id"], header.as_str(), "{body}");
    assert!(
        !body["error"]["message"].as_str().unwrap().is_empty(),
        "{body}"
    );
    body
}

#[tokio::test]
async fn bad_input_gets_a_json_error_with_the_request_id() {
    let stack = Stack::start(bundled()).await;
    let s = session(&stack).await;
    let c = http();
    let post = |body: &'static str| {
        c.post(stack.url("/api/v1/livelessons"))
            .header("x-antidote-session", &s)
            .header("content-type", "application/json")
            .body(body)
    };

    let b = assert_error(
        post("{\"lesson\":").send().await.unwrap(),
        400,
        "bad_request",
    )
    .await;
    assert!(
        b["error"]["message"].as_str().unwrap().contains("JSON"),
        "{b}"
    );
    let b = assert_error(
        post(r#"{"lesson":"bash-basics","bogus":1}"#)
            .send()
            .await
            .unwrap(),
        422,
        "unprocessable",
    )
    .await;
    assert!(
        b["error"]["message"].as_str().unwrap().contains("bogus"),
        "{b}"
    );
    assert_error(
        post(r#"{"lesson":5}"#).send().await.unwrap(),
        422,
        "unprocessable",
    )
    .await;
    assert_error(
        post(r#"{"lesson":"bash-basics","stage":-1}"#)
            .send()
            .await
            .unwrap(),
        422,
        "unprocessable",
    )
    .await;
    assert_error(
        post(r#"{"lesson":"no-such-lesson"}"#).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    let b = assert_error(
        post(r#"{"lesson":"bash-basics","stage":9}"#)
            .send()
            .await
            .unwrap(),
        422,
        "stage_out_of_range",
    )
    .await;
    assert!(
        b["error"]["message"].as_str().unwrap().contains("stage 9"),
        "{b}"
    );
    let huge = format!(r#"{{"lesson":"{}"}}"#, "x".repeat(200_000));
    let r = c
        .post(stack.url("/api/v1/livelessons"))
        .header("x-antidote-session", &s)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_error(r, 413, "payload_too_large").await;
    let r = c
        .post(stack.url("/api/v1/livelessons"))
        .header("x-antidote-session", &s)
        .header("content-type", "text/plain")
        .body(r#"{"lesson":"bash-basics"}"#)
        .send()
        .await
        .unwrap();
    assert_error(r, 415, "unsupported_media_type").await;

    // No session, or one nobody created.
    let r = c
        .post(stack.url("/api/v1/livelessons"))
        .json(&json!({"lesson": "bash-basics"}))
        .send()
        .await
        .unwrap();
    assert_error(r, 401, "no_session").await;
    let r = c
        .get(stack.url("/api/v1/livelessons/abcdefghij"))
        .header("x-antidote-session", "zzzzzzzzzz")
        .send()
        .await
        .unwrap();
    assert_error(r, 401, "no_session").await;

    // Bad and unknown IDs are plain 404s.
    for id in ["abcdefghij", "..%2F..%2Fetc", "UPPERCASE1", "x"] {
        let r = c
            .get(stack.url(&format!("/api/v1/livelessons/{id}")))
            .header("x-antidote-session", &s)
            .send()
            .await
            .unwrap();
        assert_error(r, 404, "not_found").await;
    }
    let r = c
        .put(stack.url("/api/v1/livelessons/abcdefghij/stage"))
        .header("x-antidote-session", &s)
        .json(&json!({"stage": "one"}))
        .send()
        .await
        .unwrap();
    assert_error(r, 422, "unprocessable").await;
    let r = c
        .post(stack.url("/api/v1/livelessons/abcdefghij/stages/x/verify"))
        .header("x-antidote-session", &s)
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "bad_request").await;
    let r = c
        .get(stack.url("/api/v1/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "not_found").await;
    let r = c.delete(stack.url("/api/v1/lessons")).send().await.unwrap();
    assert_error(r, 405, "method_not_allowed").await;
    let r = c
        .post(stack.url("/api/v1/client-errors"))
        .json(&json!({"message": "  "}))
        .send()
        .await
        .unwrap();
    assert_error(r, 422, "unprocessable").await;

    // A request ID the client sends is kept; the same on success.
    let rid = "0b0d3c4e-7f11-4a52-9f5e-1d2c3b4a5f60";
    let r = c
        .get(stack.url("/api/v1/lessons"))
        .header("x-request-id", rid)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], rid);
    stack.stop().await;
}

#[tokio::test]
async fn the_catalog_and_openapi_document_describe_the_api() {
    let stack = Stack::start(fixture()).await;
    let c = http();
    let lessons: Vec<Value> = c
        .get(stack.url("/api/v1/lessons"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let by_slug = |slug: &str| lessons.iter().find(|l| l["slug"] == slug).unwrap().clone();
    assert_eq!(by_slug("linux-basics")["available"], true);
    let napalm = by_slug("napalm-multi-vendor-network-automation");
    assert_eq!(napalm["available"], false);
    assert!(
        napalm["unavailable_reason"]
            .as_str()
            .unwrap()
            .contains("vqfx-snap1"),
        "{napalm}"
    );
    let detail: Value = c
        .get(stack.url("/api/v1/lessons/yaml-introduction"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["endpoints"][0]["name"], "linux1");
    assert!(detail["stages"].as_array().unwrap().len() >= 2);

    let doc: Value = c
        .get(stack.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/healthz",
        "/readyz",
        "/api/v1/sessions",
        "/api/v1/lessons",
        "/api/v1/lessons/{slug}",
        "/api/v1/livelessons",
        "/api/v1/livelessons/{id}",
        "/api/v1/livelessons/{id}/stage",
        "/api/v1/livelessons/{id}/keepalive",
        "/api/v1/livelessons/{id}/endpoints/{endpoint}/terminal",
        "/api/v1/livelessons/{id}/stages/{stage}/verify",
        "/api/v1/client-errors",
    ] {
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} missing from the document"
        );
    }
    let r = c.get(stack.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    stack.stop().await;
}

#[tokio::test]
async fn a_learner_runs_linux_basics_and_another_session_sees_nothing_of_it() {
    let stack = Stack::start(fixture()).await;
    let a = session(&stack).await;
    let ll = ready_livelesson(&stack, &a, "linux-basics").await;
    let id = ll["id"].as_str().unwrap();
    assert_eq!(ll["endpoints"][0]["name"], "linux1");
    assert!(!ll["endpoints"][0]["instance"].as_str().unwrap().is_empty());

    // Asking again gives the same livelesson.
    let again: Value = http()
        .post(stack.url("/api/v1/livelessons"))
        .header("x-antidote-session", &a)
        .json(&json!({"lesson": "linux-basics"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["id"], id);

    let mut term = Term::open(&stack, &a, id, "linux1").await;
    term.send("pwd\n").await;
    term.expect("/home/antidote", 20).await;
    term.resize(100, 30).await;
    term.send("stty size\n").await;
    term.expect("30 100", 20).await;

    // Another session: 404 for everything of it.
    let b = session(&stack).await;
    let c = http();
    let path = format!("/api/v1/livelessons/{id}");
    for r in [
        c.get(stack.url(&path)).header("x-antidote-session", &b),
        c.put(stack.url(&format!("{path}/stage")))
            .header("x-antidote-session", &b)
            .json(&json!({"stage": 1})),
        c.post(stack.url(&format!("{path}/keepalive")))
            .header("x-antidote-session", &b),
        c.post(stack.url(&format!("{path}/stages/0/verify")))
            .header("x-antidote-session", &b),
        c.delete(stack.url(&path)).header("x-antidote-session", &b),
        c.get(stack.url(&format!("/livelessons/{id}/endpoints/linux1/http/web/")))
            .header("x-antidote-session", &b),
    ] {
        assert_error(r.send().await.unwrap(), 404, "not_found").await;
    }
    let denied = tokio_tungstenite::connect_async(terminal_request(&stack, &b, id, "linux1")).await;
    match denied {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 404),
        other => panic!("second session's terminal: {other:?}"),
    }

    // The owner still has it, and keepalive works.
    let r = c
        .post(stack.url(&format!("{path}/keepalive")))
        .header("x-antidote-session", &a)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // The fixture's stages have no verify check.
    let r = c
        .post(stack.url(&format!("{path}/stages/0/verify")))
        .header("x-antidote-session", &a)
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "not_found").await;
    let r = c
        .delete(stack.url(&path))
        .header("x-antidote-session", &a)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    stack.stop().await;
}

#[tokio::test]
async fn verify_fails_before_the_work_and_passes_after_it() {
    let stack = Stack::start(bundled()).await;
    let s = session(&stack).await;
    let ll = ready_livelesson(&stack, &s, "bash-basics").await;
    let id = ll["id"].as_str().unwrap();
    let verify = || async {
        let r = http()
            .post(stack.url(&format!("/api/v1/livelessons/{id}/stages/0/verify")))
            .header("x-antidote-session", &s)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.json::<Value>().await.unwrap()
    };
    // Only the stage the livelesson is at can be checked.
    let r = http()
        .post(stack.url(&format!("/api/v1/livelessons/{id}/stages/1/verify")))
        .header("x-antidote-session", &s)
        .send()
        .await
        .unwrap();
    assert_error(r, 409, "wrong_stage").await;
    let lesson: Value = http()
        .get(stack.url("/api/v1/lessons/bash-basics"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(lesson["stages"][0]["hints"].as_array().unwrap().len(), 2);
    assert!(
        lesson["stages"][0]["solution"]
            .as_str()
            .unwrap()
            .contains("mkdir")
    );
    let before = verify().await;
    assert_eq!(before["passed"], false, "{before}");
    assert!(
        before["output"].as_str().unwrap().contains("mkdir"),
        "the failure hint is shown: {before}"
    );
    let mut term = Term::open(&stack, &s, id, "linux1").await;
    term.send("mkdir -p ~/notes && echo hello > ~/notes/hello.txt && echo done-$((6*7))\n")
        .await;
    term.expect("done-42", 20).await;
    let after = verify().await;
    assert_eq!(after["passed"], true, "{after}");
    // Each check is an event, with its result and output, for whoever triages a report.
    let stream = stack
        .client
        .js
        .get_stream(stack.client.layout.events_stream())
        .await
        .unwrap();
    let last = stream
        .get_last_raw_message_by_subject(&stack.client.layout.event("livelesson.verified"))
        .await
        .unwrap();
    let event: Value = serde_json::from_slice(&last.payload).unwrap();
    assert_eq!(event["livelesson_id"], id);
    assert_eq!(event["stage"], 0);
    let attrs: Vec<(&str, &str)> = event["attr_keys"]
        .as_array()
        .unwrap()
        .iter()
        .zip(event["attr_values"].as_array().unwrap())
        .map(|(k, v)| (k.as_str().unwrap(), v.as_str().unwrap()))
        .collect();
    assert!(attrs.contains(&("passed", "true")), "{attrs:?}");
    stack.stop().await;
}

/// A curriculum with the bundled images plus a lesson whose endpoint serves HTTP.
fn web_curriculum(dir: &Path) -> antidote_platform::curriculum::Curriculum {
    let root = repo_root().join("curriculum");
    let copy = |rel: &str| {
        let to = dir.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(root.join(rel), to).unwrap();
    };
    copy("curriculum.meta.yaml");
    copy("collections/antidote/collection.meta.yaml");
    let write = |rel: &str, text: &str| {
        let to = dir.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, text).unwrap();
    };
    write(
        "images/webhost/image.meta.yaml",
        "slug: webhost\ndescription: A Linux host serving its lesson directory over HTTP\n\
         sshUser: antidote\nsshPassword: antidotepassword\n\
         local:\n  kind: linux\n  services:\n  - python3 -m http.server 8000 --bind 127.0.0.1 --directory /antidote\n",
    );
    write(
        "lessons/web-basics/lesson.meta.yaml",
        "name: Web Basics\nslug: web-basics\ncategory: fundamentals\ntier: prod\n\
         description: An endpoint with a web page\nshortDescription: Web\n\
         endpoints:\n- name: web1\n  image: webhost\n  presentations:\n  - name: cli\n    port: 22\n    type: ssh\n  - name: site\n    port: 8000\n    type: http\n\
         stages:\n- description: Look at the page\n  guideType: markdown\n",
    );
    write("lessons/web-basics/stage0/a b.txt", "spaced out\n");
    write(
        "lessons/web-basics/stage0/guide.md",
        "# Hello from web1 <b>&</b>\n",
    );
    let c = antidote_platform::curriculum::load(dir).unwrap();
    assert!(c.invalid_lessons.is_empty(), "{:?}", c.invalid_lessons);
    c
}

#[tokio::test]
async fn http_presentations_reach_only_their_own_session() {
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start(web_curriculum(dir.path())).await;
    let a = session(&stack).await;
    let ll = ready_livelesson(&stack, &a, "web-basics").await;
    let id = ll["id"].as_str().unwrap();
    let site = format!("/livelessons/{id}/endpoints/web1/http/site");
    let c = http();

    let r = c
        .get(stack.url(&format!("{site}/stage0/guide.md?x=1")))
        .header("x-antidote-session", &a)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "# Hello from web1 <b>&</b>\n");
    let r = c
        .get(stack.url(&format!("{site}/")))
        .header("x-antidote-session", &a)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.text().await.unwrap().contains("stage0/"),
        "directory listing"
    );
    // Paths reach the endpoint as the browser encoded them.
    let r = c
        .get(stack.url(&format!("{site}/stage0/a%20b.txt")))
        .header("x-antidote-session", &a)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "spaced out\n");
    // The endpoint's own 404 passes through as it is, not as the platform's JSON error.
    let r = c
        .get(stack.url(&format!("{site}/missing")))
        .header("x-antidote-session", &a)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body = r.text().await.unwrap();
    assert!(!body.contains("\"request_id\""), "{body}");
    // Unknown presentations and ssh ones are not proxied.
    for p in ["nope", "cli"] {
        let r = c
            .get(stack.url(&format!("/livelessons/{id}/endpoints/web1/http/{p}/")))
            .header("x-antidote-session", &a)
            .send()
            .await
            .unwrap();
        assert_error(r, 404, "not_found").await;
    }

    let b = session(&stack).await;
    let r = c
        .get(stack.url(&format!("{site}/stage0/guide.md")))
        .header("x-antidote-session", &b)
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "not_found").await;
    let r = c.get(stack.url(&format!("{site}/"))).send().await.unwrap();
    assert_error(r, 401, "no_session").await;
    stack.stop().await;
}

#[tokio::test]
async fn people_get_error_pages_and_programs_get_json() {
    let stack = Stack::start(bundled()).await;
    let c = http();
    for (path, status, text) in [
        (
            "/lessons/no-such-lesson",
            404,
            "unknown lesson `no-such-lesson`",
        ),
        ("/lessons/bash-basics?stage=9", 404, "there is no stage 9"),
        (
            "/lessons/bash-basics?stage=two",
            400,
            "stage must be a whole number",
        ),
        ("/no/such/page", 404, "no route for GET /no/such/page"),
    ] {
        let r = c.get(stack.url(path)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{path}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(r.headers().contains_key("x-request-id"));
        let html = r.text().await.unwrap();
        assert!(
            html.contains(&common::stack::escape_html(text)),
            "{path}: {html}"
        );
        assert!(html.contains(r#"href="/""#), "{path}: a way back");
    }
    let r = c
        .get(stack.url("/api/v1/no-such-route"))
        .send()
        .await
        .unwrap();
    assert_error(r, 404, "not_found").await;

    // The lesson page tells its script whether the learner has a session yet, so a first
    // visit makes one instead of being refused first.
    let page = |cookie: Option<String>| {
        let mut r = c.get(stack.url("/lessons/bash-basics"));
        if let Some(cookie) = cookie {
            r = r.header("cookie", cookie);
        }
        async move { r.send().await.unwrap().text().await.unwrap() }
    };
    assert!(page(None).await.contains(r#""hasSession":false"#));
    assert!(
        page(Some("antidote_session=zzzzzzzzzz".into()))
            .await
            .contains(r#""hasSession":false"#),
        "an unknown session is none"
    );
    let s = session(&stack).await;
    assert!(
        page(Some(format!("antidote_session={s}")))
            .await
            .contains(r#""hasSession":true"#)
    );
    stack.stop().await;
}
