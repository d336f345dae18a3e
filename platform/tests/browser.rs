//! The learner's web UI in a real browser: Debian's headless Chromium driven over WebDriver
//! (chromedriver, fantoccini) against a whole Antidote in the test process (real NATS, real
//! local backend). A learner goes catalog → lesson → READY, runs the guide's snippets in the
//! terminal, resizes it, survives a dropped websocket and moves to the next stage; sends
//! feedback, and a maintainer triages it in the queue and on the report page.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::stack::{Ingested, MAINTAINER_TOKEN, Stack};
use common::{bundled, fixture};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

/// chromedriver on a free port, killed on drop.
struct Driver {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn browser() -> (Driver, Client) {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start chromedriver ({e}); install chromium-driver (scripts/test.sh does)"
            )
        });
    let profile = tempfile::tempdir().unwrap();
    let driver = Driver {
        child,
        port,
        _profile: profile,
    };
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                format!("--user-data-dir={}", driver._profile.path().display()),
                "--window-size=1400,900",
            ]
        }),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = loop {
        match ClientBuilder::new(HttpConnector::new())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
        {
            Ok(c) => break c,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "chromedriver never answered: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    (driver, client)
}

/// The text of endpoint `name`'s terminal buffer, as xterm.js holds it.
async fn screen(c: &Client, name: &str) -> String {
    let v = c
        .execute(
            "const t = window.antidote.terminals[arguments[0]]; if (!t) return '';
             const b = t.term.buffer.active; const out = [];
             for (let i = 0; i < b.length; i++) out.push(b.getLine(i).translateToString(true));
             return out.join('\\n');",
            vec![json!(name)],
        )
        .await
        .unwrap();
    v.as_str().unwrap_or_default().to_owned()
}

/// Waits until `name`'s terminal shows `needle` `times` times.
async fn wait_screen(c: &Client, name: &str, needle: &str, times: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = screen(c, name).await;
        if s.matches(needle).count() >= times {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "terminal {name} never showed {needle:?} ×{times}:\n{s}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_ready(c: &Client) {
    c.wait()
        .at_most(Duration::from_secs(120))
        .for_element(Locator::Css("body[data-ready='true']"))
        .await
        .unwrap_or_else(|e| panic!("the lab never became ready: {e}"));
}

async fn wait_connected(c: &Client, name: &str) {
    c.wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css(&format!(
            ".terminal[data-endpoint='{name}'][data-connected='true']"
        )))
        .await
        .unwrap();
}

/// Types into the terminal as a person would: keystrokes into xterm's input element.
async fn type_keys(c: &Client, name: &str, text: &str) {
    let input = c
        .find(Locator::Css(&format!(
            ".terminal[data-endpoint='{name}'] textarea.xterm-helper-textarea"
        )))
        .await
        .unwrap();
    input.send_keys(text).await.unwrap();
}

#[tokio::test]
async fn a_learner_runs_yaml_introduction_in_the_browser() {
    let stack = Stack::start(fixture()).await;
    let (_driver, c) = browser().await;

    c.goto(&stack.url("/")).await.unwrap();
    let napalm = c
        .find(Locator::Css(
            "li[data-slug='napalm-multi-vendor-network-automation'] .reason",
        ))
        .await
        .unwrap();
    assert!(napalm.text().await.unwrap().contains("vqfx-snap1"));
    c.find(Locator::Css("li[data-slug='yaml-introduction'] a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_ready(&c).await;
    wait_connected(&c, "linux1").await;
    let status = c.find(Locator::Id("status")).await.unwrap();
    assert!(
        status.text().await.unwrap().contains("reachable 1 of 1"),
        "{}",
        status.text().await.unwrap()
    );

    let buttons = c.find_all(Locator::Css("button.snippet")).await.unwrap();
    assert!(buttons.len() >= 3, "{} snippet buttons", buttons.len());
    buttons[0].click().await.unwrap();
    wait_screen(&c, "linux1", "- NXOS", 1).await;
    buttons[1].click().await.unwrap();
    wait_screen(&c, "linux1", ">>>", 5).await;
    buttons[2].click().await.unwrap();
    wait_screen(&c, "linux1", "There are 4 values in this YAML file", 1).await;

    c.find(Locator::Id("next-stage"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#guide[data-stage='1']"))
        .await
        .unwrap();
    wait_ready(&c).await;
    let title = c.find(Locator::Id("stage-title")).await.unwrap();
    assert!(title.text().await.unwrap().starts_with("Stage 2 of"));
    let guide = c.find(Locator::Id("guide")).await.unwrap();
    assert!(!guide.text().await.unwrap().trim().is_empty());
    // The same livelesson, now at stage 1.
    let ll: Value = c
        .execute("return window.antidote.context.livelesson", vec![])
        .await
        .unwrap();
    assert_eq!(ll["stage"], 1, "{ll}");
    assert_eq!(ll["status"], "READY", "{ll}");

    c.close().await.unwrap();
    stack.stop().await;
}

#[tokio::test]
async fn the_terminal_resizes_and_reconnects() {
    let stack = Stack::start(fixture()).await;
    let (_driver, c) = browser().await;

    c.goto(&stack.url("/lessons/linux-basics")).await.unwrap();
    wait_ready(&c).await;
    wait_connected(&c, "linux1").await;
    let first = c.find(Locator::Css("button.snippet")).await.unwrap();
    first.click().await.unwrap();
    wait_screen(&c, "linux1", "/home/antidote\n", 1).await;

    type_keys(&c, "linux1", "stty size\n").await;
    let before = wait_screen(&c, "linux1", "stty size", 1).await;
    let size = |s: &str| {
        s.lines().rev().find_map(|l| {
            let mut it = l.split_whitespace();
            match (
                it.next()?.parse::<u16>(),
                it.next()?.parse::<u16>(),
                it.next(),
            ) {
                (Ok(r), Ok(c), None) => Some((r, c)),
                _ => None,
            }
        })
    };
    // Wait for the answer line after the command.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut s = before;
    while size(&s).is_none() {
        assert!(Instant::now() < deadline, "no stty answer:\n{s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        s = screen(&c, "linux1").await;
    }
    let (rows0, cols0) = size(&s).unwrap();

    // Still above the narrow-screen breakpoint (900 px), so the lab keeps its column.
    c.set_window_size(1100, 600).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let (rows1, cols1) = loop {
        type_keys(&c, "linux1", "clear; stty size\n").await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        let s = screen(&c, "linux1").await;
        if let Some(sz) = size(&s)
            && sz != (rows0, cols0)
        {
            break sz;
        }
        assert!(
            Instant::now() < deadline,
            "stty size stayed {rows0} {cols0}:\n{s}"
        );
    };
    assert!(
        cols1 < cols0 && rows1 < rows0,
        "{rows0}x{cols0} → {rows1}x{cols1}"
    );
    // The terminal's own idea of its size is what the shell sees.
    let xterm: Value = c
        .execute(
            "const t = window.antidote.terminals.linux1.term; return [t.rows, t.cols];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(xterm, json!([rows1, cols1]));

    // Drop the websocket: the page says so, reconnects, and the terminal works again.
    let banner_shown: Value = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const t = window.antidote.terminals.linux1;
             t.ws.addEventListener('close', () => done(!t.banner.hidden && t.banner.textContent));
             t.ws.close();",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(banner_shown, json!("disconnected — reconnecting…"));
    wait_connected(&c, "linux1").await;
    let banner = c
        .find(Locator::Css(
            ".terminal[data-endpoint='linux1'] .reconnecting",
        ))
        .await
        .unwrap();
    assert!(!banner.is_displayed().await.unwrap());
    type_keys(&c, "linux1", "echo back-$((40+2))\n").await;
    wait_screen(&c, "linux1", "back-42", 1).await;

    // A paste far over the server's 64 KiB frame limit arrives whole (the page splits it).
    c.execute(
        "const t = window.antidote.terminals.linux1;
         t.type('stty -echo; cat > /tmp/big\\n');
         t.type('y\\n'.repeat(40000));
         t.type('\\u0004stty echo; echo lines-$(wc -l < /tmp/big)\\n');",
        vec![],
    )
    .await
    .unwrap();
    wait_screen(&c, "linux1", "lines-40000", 1).await;

    c.close().await.unwrap();
    stack.stop().await;
}

#[tokio::test]
async fn a_learner_uses_hints_and_verify_to_finish_a_stage() {
    let stack = Stack::start(bundled()).await;
    let (_driver, c) = browser().await;

    c.goto(&stack.url("/lessons/bash-basics")).await.unwrap();
    wait_ready(&c).await;
    wait_connected(&c, "linux1").await;

    let hint = c.find(Locator::Id("hint")).await.unwrap();
    let shown = || async {
        let mut n = 0;
        for li in c.find_all(Locator::Css("#hints li")).await.unwrap() {
            if li.is_displayed().await.unwrap() {
                n += 1;
            }
        }
        n
    };
    assert_eq!(shown().await, 0);
    hint.click().await.unwrap();
    assert_eq!(shown().await, 1);
    let first = c.find(Locator::Css("#hints li")).await.unwrap();
    assert!(
        first
            .html(true)
            .await
            .unwrap()
            .contains("<code>mkdir notes</code>")
    );
    hint.click().await.unwrap();
    assert_eq!(shown().await, 2);
    assert!(!hint.is_enabled().await.unwrap(), "no more hints");
    let solution = c.find(Locator::Css("#solution summary")).await.unwrap();
    solution.click().await.unwrap();
    let code = c.find(Locator::Css("#solution pre")).await.unwrap();
    assert!(
        code.text()
            .await
            .unwrap()
            .contains("echo hello > ~/notes/hello.txt")
    );

    let verify = c.find(Locator::Id("verify")).await.unwrap();
    assert_eq!(verify.text().await.unwrap(), "Verify");
    let result = c.find(Locator::Id("verify-result")).await.unwrap();
    verify.click().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !result.text().await.unwrap().contains("Not yet") {
        assert!(
            Instant::now() < deadline,
            "{}",
            result.text().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    type_keys(
        &c,
        "linux1",
        "mkdir -p ~/notes && echo hello > ~/notes/hello.txt && echo ok-$((3*3))\n",
    )
    .await;
    wait_screen(&c, "linux1", "ok-9", 1).await;
    verify.click().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !result.text().await.unwrap().contains("Passed") {
        assert!(
            Instant::now() < deadline,
            "{}",
            result.text().await.unwrap()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    c.close().await.unwrap();
    stack.stop().await;
}

#[tokio::test]
async fn a_failed_lab_shows_why_and_closes_its_terminals() {
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack::start(common::broken_labs(dir.path())).await;
    let (_driver, c) = browser().await;

    c.goto(&stack.url("/lessons/broken-config")).await.unwrap();
    let failure = c
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css("#failure:not([hidden])"))
        .await
        .unwrap();
    let text = failure.text().await.unwrap();
    assert!(text.contains("The lab could not start"), "{text}");
    assert!(text.contains("configure"), "the failed phase: {text}");
    let details = c
        .find(Locator::Css("#failure details summary"))
        .await
        .unwrap();
    details.click().await.unwrap();
    let output = c.find(Locator::Css("#failure details pre")).await.unwrap();
    assert!(output.text().await.unwrap().contains("about to fail"));
    // The lab's instances are gone, and so are its terminals: nothing keeps reconnecting.
    let open: Value = c
        .execute(
            "return [Object.keys(window.antidote.terminals).length, document.querySelectorAll('.terminal').length]",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(open, json!([0, 0]));
    assert!(c.find(Locator::Id("retry")).await.is_ok());

    c.close().await.unwrap();
    stack.stop().await;
}

#[tokio::test]
async fn a_learner_sends_feedback_with_the_lab_attached() {
    let db = Ingested::database("browser_feedback").await;
    let stack = Stack::start_with_telemetry(bundled(), db.2.clone()).await;
    let ingest = Ingested::start(&stack, db).await;
    let (_driver, c) = browser().await;

    c.goto(&stack.url("/lessons/bash-basics")).await.unwrap();
    wait_ready(&c).await;
    c.find(Locator::Id("feedback-open"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.find(Locator::Css("#feedback-category option[value='terminal']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let text = "The <b>prompt</b> & \"cursor\" vanished";
    c.find(Locator::Id("feedback-message"))
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
    c.find(Locator::Id("feedback-send"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let status = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#feedback-status.sent"))
        .await
        .unwrap();
    let reference = status.attr("data-reference").await.unwrap().unwrap();
    assert!(status.text().await.unwrap().contains(&reference));
    let ll: Value = c
        .execute("return window.antidote.context.livelesson", vec![])
        .await
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    let (lesson, stage, category, message, livelesson, context) = loop {
        let rows: Vec<(String, i16, String, String, String, String)> = ingest
            .client
            .query("SELECT lesson, stage, category, message, livelesson_id, client_context FROM feedback FINAL WHERE feedback_id = ?")
            .bind(&reference)
            .fetch_all()
            .await
            .unwrap();
        if let Some(r) = rows.into_iter().next() {
            break r;
        }
        assert!(Instant::now() < deadline, "report {reference} never stored");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        (lesson.as_str(), stage, category.as_str()),
        ("bash-basics", 0, "terminal")
    );
    assert_eq!(message, text);
    assert_eq!(livelesson, ll["id"].as_str().unwrap());
    let instance = ll["endpoints"][0]["instance"].as_str().unwrap();
    assert!(context.contains(instance), "{context}");
    // Request IDs the page saw (trace IDs too where tracing runs: not in this process).
    assert!(context.contains("\"requestIds\":[\""), "{context}");
    assert!(context.contains("\"traceIds\":"), "{context}");

    c.close().await.unwrap();
    ingest.stop().await;
    stack.stop().await;
}

/// Opens the Feedback dialog (with `open`, a button on the page), sends `text` in
/// `category` and returns the status element once it settles.
async fn send_feedback(
    c: &Client,
    open: &str,
    category: &str,
    text: &str,
) -> fantoccini::elements::Element {
    c.find(Locator::Css(open))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.find(Locator::Css(&format!(
        "#feedback-category option[value='{category}']"
    )))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    let message = c.find(Locator::Id("feedback-message")).await.unwrap();
    message.clear().await.unwrap();
    message.send_keys(text).await.unwrap();
    click_send(c).await
}

async fn click_send(c: &Client) -> fantoccini::elements::Element {
    c.find(Locator::Id("feedback-send"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(
            "#feedback-status.sent, #feedback-status.failed",
        ))
        .await
        .unwrap()
}

async fn reference(status: &fantoccini::elements::Element) -> String {
    let text = status.text().await.unwrap();
    assert_eq!(
        status.attr("class").await.unwrap().as_deref(),
        Some("sent"),
        "{text}"
    );
    status.attr("data-reference").await.unwrap().unwrap()
}

/// Signs in on the maintainers' page with the token.
async fn sign_in(c: &Client, stack: &Stack) {
    c.goto(&stack.url("/triage")).await.unwrap();
    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(MAINTAINER_TOKEN)
        .await
        .unwrap();
    c.find(Locator::Id("login-send"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("filters"))
        .await
        .unwrap();
}

async fn texts(c: &Client, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in c.find_all(Locator::Css(css)).await.unwrap() {
        out.push(e.text().await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_maintainer_triages_a_learners_report() {
    let db = Ingested::database("browser_triage").await;
    let stack = Stack::start_with_telemetry(bundled(), db.2.clone()).await;
    assert!(
        common::stack::export_telemetry_to(&stack).await,
        "the only test of this binary that exports spans"
    );
    let ingest = Ingested::start(&stack, db).await;
    let (_driver, c) = browser().await;
    // The maintainer signs in first (the cookie is for /triage only), so the 2 s below are
    // the report's way through JetStream, ingest and ClickHouse.
    sign_in(&c, &stack).await;

    // The learner, on a READY lab.
    c.goto(&stack.url("/lessons/bash-basics")).await.unwrap();
    wait_ready(&c).await;
    let ll: Value = c
        .execute("return window.antidote.context.livelesson", vec![])
        .await
        .unwrap();
    let instance = ll["endpoints"][0]["instance"].as_str().unwrap().to_owned();
    let text = "My prompt vanished <img id=\"pwned\" src=x onerror=\"document.title='pwned'\"> <script>window.pwned=1</script>";
    let status = send_feedback(&c, "#feedback-open", "terminal", text).await;
    let id = reference(&status).await;
    let sent = Instant::now();

    // The maintainer sees it in the queue within 2 s, with lesson and stage.
    c.goto(&stack.url("/triage")).await.unwrap();
    let row = format!("tr.report[data-feedback-id='{id}']");
    loop {
        if c.find(Locator::Css(&row)).await.is_ok() {
            break;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(2),
            "report {id} not in the queue 2 s after it was sent"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        c.refresh().await.unwrap();
    }
    let row_el = c.find(Locator::Css(&row)).await.unwrap();
    assert_eq!(
        row_el
            .find(Locator::Css(".lesson-slug"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "bash-basics"
    );
    // As the learner saw it ("Stage 1 of 2"), the API's index 0 alongside.
    let stage = row_el.find(Locator::Css(".stage span")).await.unwrap();
    assert_eq!(stage.text().await.unwrap(), "1");
    assert_eq!(
        stage.attr("data-stage").await.unwrap().as_deref(),
        Some("0")
    );
    assert_eq!(
        row_el.attr("data-status").await.unwrap().as_deref(),
        Some("new")
    );
    // Learner markup is text here.
    let shown = row_el
        .find(Locator::Css(".message"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(shown, text);
    let injected: Value = c
        .execute("return [document.getElementById('pwned') === null, window.pwned === undefined, document.title]", vec![])
        .await
        .unwrap();
    assert_eq!(injected, json!([true, true, "Feedback queue · Antidote"]));

    // The report page: the session's events, spans and endpoint instances.
    row_el
        .find(Locator::Css(".message a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("report-message"))
        .await
        .unwrap();
    assert_eq!(
        c.find(Locator::Id("report-message"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        text
    );
    let kinds: Vec<String> = {
        let mut out = Vec::new();
        for e in c.find_all(Locator::Css("#events tr.event")).await.unwrap() {
            out.push(e.attr("data-kind").await.unwrap().unwrap_or_default());
        }
        out
    };
    for k in [
        "session.created",
        "livelesson.ready",
        "endpoint.reachable",
        "terminal.opened",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{k} in {kinds:?}");
    }
    let spans = texts(&c, "#spans li.span .span-name").await;
    assert!(spans.iter().any(|s| s.contains("livelesson")), "{spans:?}");
    assert!(spans.len() > 3, "{spans:?}");
    // An event's trace links to its tree.
    let linked: Value = c
        .execute(
            "const a = document.querySelector('#events a[href^=\"#trace-\"]');
             return a ? document.getElementById(a.getAttribute('href').slice(1)) !== null : null;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        linked,
        json!(true),
        "an event links to its trace in the tree"
    );
    let instances = texts(&c, "#instances .instance-name").await;
    assert!(instances.contains(&instance), "{instance} in {instances:?}");
    let injected: Value = c
        .execute(
            "return [document.getElementById('pwned') === null, window.pwned === undefined]",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(injected, json!([true, true]));
    // "Copy as issue" holds every ID.
    let md: Value = c
        .execute(
            "return document.getElementById('issue-markdown').value",
            vec![],
        )
        .await
        .unwrap();
    let md = md.as_str().unwrap();
    for needle in [
        id.as_str(),
        ll["id"].as_str().unwrap(),
        ll["session_id"].as_str().unwrap(),
        instance.as_str(),
    ] {
        assert!(md.contains(needle), "{needle} in {md}");
    }
    c.find(Locator::Id("copy-issue"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Css("#copy-status[data-copied='1']"))
        .await
        .unwrap();

    // Marking it triaged: an activity row, and the queue shows the new status.
    c.find(Locator::Css("#triage-status option[value='triaged']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.find(Locator::Id("triage-note"))
        .await
        .unwrap()
        .send_keys("reproduced <b>here</b>")
        .await
        .unwrap();
    c.find(Locator::Id("triage-save"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("triage-notice"))
        .await
        .unwrap();
    assert_eq!(
        c.find(Locator::Id("report-status"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "triaged"
    );
    let activity = texts(&c, "#activity li.activity").await;
    assert_eq!(activity.len(), 1, "{activity:?}");
    assert!(
        activity[0].contains("status: new → triaged")
            && activity[0].contains("reproduced <b>here</b>"),
        "{activity:?}"
    );
    #[derive(Debug, clickhouse::Row, serde::Deserialize)]
    struct Activity {
        actor: String,
        changed_keys: Vec<String>,
        note: String,
    }
    let a: Activity = ingest
        .client
        .query(
            "SELECT actor, changed_keys, note FROM feedback_activity FINAL WHERE feedback_id = ?",
        )
        .bind(&id)
        .fetch_one()
        .await
        .unwrap();
    assert_eq!(
        (a.actor.as_str(), a.changed_keys, a.note.as_str()),
        (
            "maintainer",
            vec!["status".to_owned()],
            "reproduced <b>here</b>"
        )
    );
    c.find(Locator::Css("a[href='/triage']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let row_el = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(&row))
        .await
        .unwrap();
    assert_eq!(
        row_el.attr("data-status").await.unwrap().as_deref(),
        Some("triaged")
    );

    c.close().await.unwrap();
    ingest.stop().await;
    stack.stop().await;
}

#[tokio::test]
async fn a_failed_lab_leads_through_report_this_to_its_device() {
    let dir = tempfile::tempdir().unwrap();
    let db = Ingested::database("browser_failed_report").await;
    let stack = Stack::start_with_telemetry(common::broken_labs(dir.path()), db.2.clone()).await;
    let ingest = Ingested::start(&stack, db).await;
    let (_driver, c) = browser().await;

    c.goto(&stack.url("/lessons/broken-config")).await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css("#failure:not([hidden])"))
        .await
        .unwrap();
    let ll: Value = c
        .execute("return window.antidote.context.livelesson", vec![])
        .await
        .unwrap();
    let failing = ll["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["state"] == "failed")
        .unwrap_or_else(|| panic!("a failed endpoint in {ll}"))["instance"]
        .as_str()
        .unwrap()
        .to_owned();
    let status = send_feedback(
        &c,
        "#failure .feedback-open-here",
        "lab_not_working",
        "It never started",
    )
    .await;
    let id = reference(&status).await;

    sign_in(&c, &stack).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        c.goto(&stack.url(&format!("/triage/feedback/{id}")))
            .await
            .unwrap();
        if c.find(Locator::Id("report-message")).await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "report {id} never stored");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let failed = c
        .find(Locator::Css(&format!(
            "article.instance.failed[data-instance='{failing}']"
        )))
        .await
        .unwrap_or_else(|e| panic!("the failing instance {failing} on the report page: {e}"));
    let output = failed
        .find(Locator::Css("details.config-run.bad pre.output"))
        .await
        .unwrap();
    assert!(output.text().await.unwrap().contains("about to fail"));
    let now = c
        .find(Locator::Id("livelesson-now"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(now.contains("FAILED") && now.contains("configure"), "{now}");

    c.close().await.unwrap();
    ingest.stop().await;
    stack.stop().await;
}

#[tokio::test]
async fn the_feedback_form_keeps_the_text_while_nats_is_down() {
    let db = Ingested::database("browser_feedback_nats").await;
    let (stack, relay) = Stack::start_cuttable(bundled(), db.2.clone()).await;
    let ingest = Ingested::start(&stack, db).await;
    let (_driver, c) = browser().await;
    c.goto(&stack.url("/")).await.unwrap();

    relay.cut().await;
    stack.wait_readyz(false).await;
    let text = "The catalog is empty for me";
    let status = send_feedback(&c, "#feedback-open", "other", text).await;
    assert_eq!(
        status.attr("class").await.unwrap().as_deref(),
        Some("failed")
    );
    let shown = status.text().await.unwrap();
    assert!(
        shown.contains("Not sent") && shown.contains("send it again"),
        "{shown}"
    );
    let kept: Value = c
        .execute(
            "return document.getElementById('feedback-message').value",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(kept, text, "the form keeps the text");

    relay.up().await;
    stack.wait_readyz(true).await;
    let status = click_send(&c).await;
    let id = reference(&status).await;
    assert_eq!(id.len(), 10);

    c.close().await.unwrap();
    ingest.stop().await;
    stack.stop().await;
}
