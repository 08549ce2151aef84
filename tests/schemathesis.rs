//! Each dialect's OpenAPI document (generated from its mapping, committed under
//! `schemas/openapi/`) is current, and schemathesis (PyPI, in `.venv` from `scripts/test`),
//! fuzzing the live gateway from it, finds no 5xx, no undocumented status, no wrong content
//! type and no answer that breaks its schema.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::gateway::start;
use common::peers::venv_bin;

const DIALECTS: [(&str, &str); 3] = [
    ("vc-user-service", "Authorization: Bearer demo-vc-token"),
    ("commvault-v4", "Authtoken: QSDK demo-commvault-token"),
    (
        "opscenter",
        "Authorization: Bearer demo-opscenter-admin-token",
    ),
];

#[test]
fn the_committed_openapi_documents_are_current() {
    for (d, _) in DIALECTS {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_userbridge"))
            .args(["openapi", d])
            .output()
            .unwrap();
        assert!(out.status.success());
        let committed = std::fs::read_to_string(format!("schemas/openapi/{d}.json")).unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout) == committed,
            "schemas/openapi/{d}.json is stale: run `userbridge openapi {d} > schemas/openapi/{d}.json`"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_failure_in_any_dialect() {
    let gw = start().await;
    let bin = venv_bin("st");
    for (d, header) in DIALECTS {
        let (program, base, spec) = (
            bin.clone(),
            gw.base.clone(),
            format!("schemas/openapi/{d}.json"),
        );
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(program)
                .args(["run", &spec, "--url", &base, "-H", header])
                .args([
                    "--checks",
                    "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
                    "--max-examples",
                    "30",
                    "--seed",
                    "1",
                ])
                .env("NO_COLOR", "1")
                .output()
        })
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("cannot run schemathesis: {e}. Run scripts/test, which installs it into .venv"));
        let text = String::from_utf8_lossy(&out.stdout);
        let summary = text
            .lines()
            .skip_while(|l| !l.contains("Test cases:"))
            .nth(1)
            .unwrap_or("")
            .trim()
            .to_owned();
        println!("schemathesis {d}: {summary}");
        assert!(
            out.status.success() && summary.contains("passed") && !summary.contains("failed"),
            "schemathesis found failures for {d}:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
