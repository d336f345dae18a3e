//! Helpers for the end-to-end tests: where the real services are, unique names per test.
//!
//! The tests expect the NATS and ClickHouse servers that `deploy/local/services.sh start`
//! runs (the README's test command starts and stops them). Addresses come from
//! `ANTIDOTE_NATS_URL` / `ANTIDOTE_CLICKHOUSE_URL`, defaulting to the script's ports. A test
//! that cannot reach a service fails with a message saying how to start it — it never skips.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// The ports `deploy/local/services.sh` uses by default.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:14222";
pub const DEFAULT_CLICKHOUSE_URL: &str = "http://127.0.0.1:18123";

const HOW_TO_START: &str =
    "start the services with `deploy/local/services.sh start` (the README's test command does)";

pub fn nats_url() -> String {
    std::env::var("ANTIDOTE_NATS_URL").unwrap_or_else(|_| DEFAULT_NATS_URL.to_owned())
}

pub fn clickhouse_url() -> String {
    std::env::var("ANTIDOTE_CLICKHOUSE_URL").unwrap_or_else(|_| DEFAULT_CLICKHOUSE_URL.to_owned())
}

/// Connects to the test NATS server or panics with instructions.
pub async fn nats() -> async_nats::Client {
    let url = nats_url();
    match async_nats::ConnectOptions::new()
        .connection_timeout(std::time::Duration::from_secs(5))
        .connect(&url)
        .await
    {
        Ok(c) => c,
        Err(e) => panic!("cannot reach NATS at {url}: {e}; {HOW_TO_START}"),
    }
}

/// A ClickHouse client for the test server; panics with instructions when it is not there.
pub async fn clickhouse() -> clickhouse::Client {
    let url = clickhouse_url();
    let client = antidote_telemetry::clickhouse_client::client(&url);
    if let Err(e) = client.query("SELECT 1").fetch_one::<u8>().await {
        panic!("cannot reach ClickHouse at {url}: {e}; {HOW_TO_START}");
    }
    client
}

/// A name no other test (or earlier run) uses: `<base>_<pid>_<n>`.
pub fn unique(base: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{base}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The Python that has the test tools (chdb-core): the services venv when present.
pub fn python() -> PathBuf {
    let venv = std::env::var_os("ANTIDOTE_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".antidote/venv"));
    let p = venv.join("bin/python");
    if p.is_file() {
        p
    } else {
        PathBuf::from("python3")
    }
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}
