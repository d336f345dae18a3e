//! `antidote up` as an operator runs it: every role in one process against the real NATS and
//! ClickHouse servers, printing its URL; the UI and API answer, a lesson boots and is deleted
//! through the API, and SIGTERM stops the process cleanly.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{nats_url, repo_root};
use serde_json::{Value, json};

#[tokio::test]
async fn antidote_up_serves_the_ui_and_runs_a_lesson() {
    let state = tempfile::tempdir().unwrap();
    let prefix = format!("t{}", antidote_platform::backend::local::random_id(8));
    let clickhouse = std::env::var("ANTIDOTE_CLICKHOUSE_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:18123".into());
    let mut child = Command::new(env!("CARGO_BIN_EXE_antidote"))
        .arg("up")
        .args(["--listen", "127.0.0.1:0"])
        .env("ANTIDOTE_NATS_URL", nats_url())
        .env("ANTIDOTE_CLICKHOUSE_URL", &clickhouse)
        .env("ANTIDOTE_NATS_PREFIX", &prefix)
        .env("ANTIDOTE_CURRICULUM", repo_root().join("curriculum"))
        .env("ANTIDOTE_LOCAL_STATE_DIR", state.path())
        .env("ANTIDOTE_WEB_MODULES", repo_root().join("web/node_modules"))
        .env("ANTIDOTE_SCHEDULER_ID", &prefix)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let url = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("antidote up printed no URL within 60 s");
        if let Some(rest) = line.strip_prefix("Antidote is up: ") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with('/'),
        "{url}"
    );

    let c = reqwest::Client::new();
    let home = c.get(&url).send().await.unwrap();
    assert_eq!(home.status(), 200);
    let html = home.text().await.unwrap();
    assert!(html.contains("data-slug=\"bash-basics\""), "{html}");
    assert_eq!(
        c.get(format!("{url}readyz")).send().await.unwrap().status(),
        200
    );
    let asset = c
        .get(format!("{url}assets/vendor/xterm.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(asset.status(), 200);

    let session: Value = c
        .post(format!("{url}api/v1/sessions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let s = session["session_id"].as_str().unwrap();
    let ll: Value = c
        .post(format!("{url}api/v1/livelessons"))
        .header("x-antidote-session", s)
        .json(&json!({"lesson": "bash-basics"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = ll["id"].as_str().unwrap();
    let at = format!("{url}api/v1/livelessons/{id}");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let ll: Value = c
            .get(&at)
            .header("x-antidote-session", s)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if ll["status"] == "READY" {
            break;
        }
        assert_ne!(ll["status"], "FAILED", "{ll}");
        assert!(Instant::now() < deadline, "never READY: {ll}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = c
        .delete(&at)
        .header("x-antidote-session", s)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(60);
    while c
        .get(&at)
        .header("x-antidote-session", s)
        .send()
        .await
        .unwrap()
        .status()
        != 404
    {
        assert!(Instant::now() < deadline, "never deleted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "antidote up ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");

    let nats = async_nats::connect(nats_url()).await.unwrap();
    antidote_platform::bus::remove(
        &async_nats::jetstream::new(nats),
        &antidote_platform::bus::Layout::new(&prefix),
    )
    .await;
}
