//! The `/scim/v2` ingress checked by a SCIM compliance tester: `scim2 test` (PyPI `scim2-cli`
//! with `scim2-tester`, installed into `.venv` by `scripts/test`) against the gateway on a real
//! socket over a real SQLite store, and over a real PostgreSQL. Every check must succeed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::gateway::{Kind, start_on};
use common::peers::venv_bin;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim2_tester_reports_no_failure() {
    scim2_tester_on(Kind::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scim2_tester_reports_no_failure_on_postgres() {
    scim2_tester_on(Kind::Postgres).await;
}

async fn scim2_tester_on(kind: Kind) {
    let gw = start_on(kind).await;
    let bin = venv_bin("scim2");
    let url = format!("{}/scim/v2", gw.base);
    let program = bin.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(program)
            .arg("--url")
            .arg(url)
            .env("SCIM_CLI_HEADERS", "Authorization: Bearer demo-scim-token")
            .arg("test")
            .output()
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| {
        panic!(
            "cannot run {}: {e}. Run scripts/test, which installs the SCIM peers into .venv",
            bin.display()
        )
    });
    let text = String::from_utf8_lossy(&out.stdout);
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for line in text.lines() {
        if let Some(status) = line.split_whitespace().next()
            && status.chars().all(|c| c.is_ascii_uppercase())
            && line.starts_with(status)
        {
            *counts.entry(status).or_default() += 1;
        }
    }
    let failures: usize = counts
        .iter()
        .filter(|(k, _)| **k != "SUCCESS")
        .map(|(_, n)| n)
        .sum();
    // The summary line quoted in notes and docs.
    println!("scim2 test: {counts:?}, {failures} failures");
    assert!(
        out.status.success() && failures == 0 && counts.get("SUCCESS").copied().unwrap_or(0) > 100,
        "scim2 test failed ({counts:?}):\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
