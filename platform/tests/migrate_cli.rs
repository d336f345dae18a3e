//! `antidote migrate` as an operator runs it, against the ClickHouse the services script
//! started (ANTIDOTE_CLICKHOUSE_URL, default the script's port).

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

use std::process::Command;

fn clickhouse_url() -> String {
    std::env::var("ANTIDOTE_CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:18123".into())
}

fn migrate(url: &str, db: &str) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_antidote"))
        .args(["migrate", "--clickhouse-url", url, "--database", db])
        .output()
        .expect("run antidote");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn migrate_twice_applies_once_and_then_nothing() {
    let url = clickhouse_url();
    let db = format!("antidote_cli_{}", std::process::id());
    let (code, out, err) = migrate(&url, &db);
    assert_eq!(code, 0, "first run failed: {err}");
    assert!(out.contains("applied 1"), "{out}");
    let (code, out, err) = migrate(&url, &db);
    assert_eq!(code, 0, "second run failed: {err}");
    assert!(out.contains("applied none; already applied 1"), "{out}");
    // Clean up through ClickHouse's HTTP interface with a plain HTTP/1.0 request.
    let body = format!("DROP DATABASE IF EXISTS {db}");
    let status = std::net::TcpStream::connect(url.trim_start_matches("http://")).map(|mut s| {
        use std::io::{Read, Write};
        let req = format!(
            "POST / HTTP/1.0\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        resp
    });
    assert!(status.unwrap().starts_with("HTTP/1.0 200"));
}

#[test]
fn unreachable_clickhouse_is_a_one_line_error_naming_the_url() {
    // Port 9 (discard) on loopback: nothing listens there.
    let (code, out, err) = migrate("http://127.0.0.1:9", "antidote");
    assert_eq!(code, 1, "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: cannot reach ClickHouse at http://127.0.0.1:9"),
        "{err}"
    );
}
