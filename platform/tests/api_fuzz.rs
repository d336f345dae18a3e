//! The OpenAPI document against the running API: schemathesis (from PyPI, installed by
//! scripts/test.sh) generates requests from `/api/v1/openapi.json` — valid and invalid — and
//! checks that no answer is a 5xx and that every status, content type and body is one the
//! document declares. A fixed seed and example count keep the run repeatable.

#![allow(clippy::unwrap_used, reason = "a test fails by panicking")]

mod common;

use std::process::Command;

use common::bundled;
use common::stack::{Stack, session};

fn schemathesis() -> std::path::PathBuf {
    let venv = std::env::var_os("ANTIDOTE_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| common::repo_root().join(".antidote/test/venv"));
    let bin = venv.join("bin/schemathesis");
    assert!(
        bin.is_file(),
        "{} is missing; scripts/test.sh installs schemathesis into the test venv",
        bin.display()
    );
    bin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzing_the_openapi_document_finds_no_5xx_and_no_schema_violation() {
    let stack = Stack::start(bundled()).await;
    let session = session(&stack).await;
    let report = tempfile::tempdir().unwrap();
    let bin = schemathesis();
    let schema = stack.url("/api/v1/openapi.json");
    let run = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args(["--no-color", "run", &schema])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                "--phases",
                "examples,coverage,fuzzing",
                "--max-examples",
                "25",
                "--seed",
                "20261203",
                "--workers",
                "2",
                "--request-timeout",
                "20",
                // Websockets are not HTTP request/response: the API tests cover the terminal.
                "--exclude-path-regex",
                "/terminal$",
                "--header",
                &format!("X-Antidote-Session: {session}"),
                "--report-dir",
            ])
            .arg(report.path())
            // Its cache goes to the working directory: keep it out of the checkout.
            .current_dir(report.path())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "schemathesis found problems ({}):\n{stdout}\n{stderr}",
        run.status
    );
    assert!(
        stdout.contains("passed") && !stdout.contains("No operations"),
        "schemathesis ran nothing:\n{stdout}"
    );
    stack.stop().await;
}
