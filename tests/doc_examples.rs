//! The shell, TOML, JSON and YAML examples of `README.md` and `docs/` (beside the mapping
//! language and config examples, run by `tests/docs.rs`) are exercised here.
//!
//! `sh` blocks of README.md and docs/operations.md run, in order, as one bash script per doc in
//! a sandbox holding copies of `config/`, `mappings/`, `schemas/` and `docs/vendors/`, with a `cargo` on PATH
//! that runs the built binary (`cargo run [-q] [--release] -- ARGS`). A line running `serve` is
//! started in the background and waited for (`/readyz`). The only rewrites are the port
//! (`localhost:8080`), `/etc/userbridge/` and `/backups/` into the sandbox; lines that need what
//! this machine lacks (`docker`) or are the suite itself (`scripts/test`) are listed below and
//! checked to be the only ones not run. A comment right under a command is its expected output:
//! it must appear in the block's output, in order, `…` standing for anything.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::markdown::{Block, blocks};
use common::peers::free_port;

/// Commands the harness does not run, and why.
const NOT_RUN: &[(&str, &str)] = &[
    (
        "docker ",
        "no Docker engine here; hadolint checks the Dockerfile",
    ),
    ("scripts/test", "the test suite itself"),
];

const REWRITES: &[(&str, &str)] = &[
    ("localhost:8080", "127.0.0.1:$UB_PORT"),
    ("/etc/userbridge/", "config/"),
    ("/backups/", "backups/"),
];

/// One line of a block, turned into what the script runs. Returns the skipped command if the
/// line is one of `NOT_RUN`.
fn script_line(line: &str, skipping: &mut bool, skipped: &mut Vec<String>) -> String {
    let trimmed = line.trim_start();
    let continues = line.trim_end().ends_with('\\');
    if *skipping {
        *skipping = continues;
        return format!(": {line}");
    }
    if let Some((cmd, _)) = NOT_RUN.iter().find(|(p, _)| trimmed.starts_with(p)) {
        skipped.push((*cmd).to_owned());
        *skipping = continues;
        return format!(": not run here: {line}");
    }
    let mut out = line.to_owned();
    for (from, to) in REWRITES {
        out = out.replace(from, to);
    }
    let is_serve = !trimmed.starts_with('#') && out.split_whitespace().any(|w| w == "serve");
    if is_serve {
        let (cmd, comment) = match out.find("  #") {
            Some(i) => (&out[..i], &out[i..]),
            None => (out.as_str(), ""),
        };
        out = format!("{} >>serve.log 2>&1 & ub_ready {comment}", cmd.trim_end());
    }
    out
}

/// The expected outputs of a block: comment lines right under a command line.
fn expectations(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut after_command = false;
    for line in text.lines() {
        let t = line.trim();
        match t.strip_prefix("# ") {
            Some(expected) if after_command => out.push(expected.to_owned()),
            _ => after_command = !t.is_empty() && !t.starts_with('#'),
        }
    }
    out
}

/// `pattern` (with `…` for anything) occurs in `text` from `from`; the end of the match.
fn find_pattern(text: &str, from: usize, pattern: &str) -> Option<usize> {
    let mut parts = pattern.split('…');
    let first = parts.next().unwrap_or("");
    let mut start = from;
    // The first piece anchors the match; later pieces follow in order.
    loop {
        let at = start + text.get(start..)?.find(first)?;
        let mut end = at + first.len();
        let mut ok = true;
        for p in pattern.split('…').skip(1) {
            match text[end..].find(p) {
                Some(i) => end += i + p.len(),
                None => {
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            return Some(end);
        }
        start = at + first.len().max(1);
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A directory with the shipped config, mappings, schemas and vendor documents, `bin/cargo` running the built
/// binary, and `target/release/userbridge`.
fn sandbox() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for d in ["config", "mappings", "schemas", "docs/vendors"] {
        copy_dir(Path::new(d), &dir.path().join(d));
    }
    std::fs::create_dir_all(dir.path().join("backups")).unwrap();
    let exe = env!("CARGO_BIN_EXE_userbridge");
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(exe, bin.join("userbridge")).unwrap();
    std::fs::create_dir_all(dir.path().join("target/release")).unwrap();
    std::os::unix::fs::symlink(exe, dir.path().join("target/release/userbridge")).unwrap();
    let cargo = r#"#!/bin/sh
# The docs' cargo commands, on the binary the test suite built.
case "$1" in
  run) shift; while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do shift; done; shift; exec userbridge "$@" ;;
  build) exit 0 ;;
  *) echo "the doc harness does not run: cargo $*" >&2; exit 1 ;;
esac
"#;
    std::fs::write(bin.join("cargo"), cargo).unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(bin.join("cargo"))
        .status()
        .unwrap();
    dir
}

/// Runs the `sh` blocks of `doc` as one script; checks exit status and expectations. Returns
/// the commands not run.
fn run_doc(doc: &str) -> Vec<String> {
    let text = std::fs::read_to_string(doc).unwrap();
    let sh: Vec<Block> = blocks(&text)
        .into_iter()
        .filter(|b| b.info == "sh")
        .collect();
    assert!(!sh.is_empty(), "{doc}: no sh block");
    let dir = sandbox();
    let port = free_port();
    let mut script = String::from(concat!(
        "set -euo pipefail\n",
        "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n",
        "ub_ready() { for _ in $(seq 200); do ",
        "curl -sf \"http://127.0.0.1:$UB_PORT/readyz\" >/dev/null && return 0; sleep 0.05; done; ",
        "echo 'gateway not ready' >&2; cat serve.log >&2; return 1; }\n",
    ));
    let mut skipped = Vec::new();
    for b in &sh {
        script.push_str(&format!("echo '@@block {}'\n", b.line));
        let mut skipping = false;
        for l in b.text.lines() {
            script.push_str(&script_line(l, &mut skipping, &mut skipped));
            script.push('\n');
        }
    }
    script.push_str("echo '@@end'\n");
    let path = std::env::var("PATH").unwrap_or_default();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("exec 2>&1\n{script}"))
        .current_dir(dir.path())
        .env(
            "PATH",
            format!("{}:{path}", dir.path().join("bin").display()),
        )
        .env("UB_PORT", port.to_string())
        .env("USERBRIDGE_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env_remove("USERBRIDGE_LOG")
        .output()
        .unwrap();
    let output = String::from_utf8_lossy(&out.stdout).into_owned();
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
    assert!(
        out.status.success() && output.contains("@@end"),
        "{doc}: the examples failed ({}):\n--- output\n{output}\n--- serve.log\n{log}\n--- script\n{script}",
        out.status
    );
    for b in &sh {
        let marker = format!("@@block {}\n", b.line);
        let start = output.find(&marker).unwrap() + marker.len();
        let end = start + output[start..].find("@@").unwrap();
        let block_out = &output[start..end];
        let mut at = 0;
        for want in expectations(&b.text) {
            match find_pattern(block_out, at, &want) {
                Some(e) => at = e,
                None => panic!(
                    "{doc}:{}: expected output not found (in order): {want}\n--- the block printed\n{block_out}",
                    b.line
                ),
            }
        }
    }
    skipped
}

#[test]
fn readme_shell_examples_run() {
    let skipped = run_doc("README.md");
    assert_eq!(skipped, ["scripts/test"], "commands not run");
}

#[test]
fn migration_shell_examples_run() {
    let skipped = run_doc("docs/migration.md");
    assert!(skipped.is_empty(), "commands not run: {skipped:?}");
}

#[test]
fn operations_shell_examples_run() {
    let skipped = run_doc("docs/operations.md");
    assert_eq!(skipped, ["docker ", "docker "], "commands not run");
}

/// Cargo.toml declares the `kind` target `name`, or cargo finds it by its file.
fn target_exists(cargo: &str, kind: &str, name: &str) -> bool {
    cargo.contains(&format!("name = \"{name}\""))
        || Path::new(&format!("{kind}s/{name}.rs")).exists()
}

/// The benchmark and battery commands take minutes; what they name must exist.
#[test]
fn performance_commands_name_real_things() {
    assert!(commands_name_real_things("docs/performance.md") >= 6);
}

/// The same for the fault battery's and the fuzzers' commands, and the variables they take.
#[test]
fn reliability_commands_name_real_things() {
    assert!(commands_name_real_things("docs/reliability.md") >= 4);
}

/// Checks the scripts, targets and `BATTERY_*` variables the `sh` blocks of `doc` name;
/// returns how many.
fn commands_name_real_things(doc: &str) -> usize {
    let doc = std::fs::read_to_string(doc).unwrap();
    let cargo = std::fs::read_to_string("Cargo.toml").unwrap();
    let battery = std::fs::read_to_string("tests/battery/main.rs").unwrap();
    let mut checked = 0;
    for b in blocks(&doc).into_iter().filter(|b| b.info == "sh") {
        for w in b.text.split_whitespace() {
            if let Some((var, _)) = w.split_once('=')
                && var.starts_with("BATTERY_")
            {
                assert!(battery.contains(var), "the battery does not read {var}");
                checked += 1;
            }
            if w.starts_with("bench/") || w.starts_with("scripts/") {
                let meta = std::fs::metadata(w).unwrap_or_else(|_| panic!("{w} does not exist"));
                assert!(
                    std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 != 0,
                    "{w} is not executable"
                );
                checked += 1;
            }
            if let Some(ex) = w.strip_prefix("target/release/examples/") {
                assert!(target_exists(&cargo, "example", ex), "no example {ex}");
                checked += 1;
            }
        }
        for kind in ["bench", "example", "test"] {
            let flag = format!("--{kind} ");
            for (i, _) in b.text.match_indices(&flag) {
                let name = b.text[i + flag.len()..].split_whitespace().next().unwrap();
                assert!(target_exists(&cargo, kind, name), "no {kind} {name}");
                checked += 1;
            }
        }
    }
    checked
}

/// The backends' TOML examples load as config; the webhook example is a request the reference
/// receiver (the test suite's, over a real SQLite store) accepts.
#[tokio::test(flavor = "multi_thread")]
async fn backend_examples_load_and_the_webhook_example_is_accepted() {
    let doc = std::fs::read_to_string("docs/backends.md").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut tomls = 0;
    let mut jsons = 0;
    for b in blocks(&doc) {
        match b.info.as_str() {
            "toml" => {
                let p = dir.path().join(format!("backends-{}.toml", b.line));
                std::fs::write(&p, &b.text).unwrap();
                if let Err(d) =
                    userbridge::load::load_with(Some(&p), &userbridge::config::Flags::default())
                {
                    panic!("docs/backends.md:{}: example does not load: {d:?}", b.line);
                }
                tomls += 1;
            }
            "json" => {
                let receiver = common::peers::WebhookReceiver::start(&[]).await;
                let reply = reqwest::Client::new()
                    .post(&receiver.url)
                    .header("content-type", "application/json")
                    .body(b.text.clone())
                    .send()
                    .await
                    .unwrap();
                let status = reply.status();
                let body: serde_json::Value = reply.json().await.unwrap();
                assert!(
                    status.is_success() && body["id"].is_string() && body.get("password").is_none(),
                    "docs/backends.md:{}: the receiver answered {status} {body}",
                    b.line
                );
                jsons += 1;
            }
            other => panic!(
                "docs/backends.md:{}: a {other:?} block no test runs",
                b.line
            ),
        }
    }
    assert_eq!((tomls, jsons), (4, 1));
    // The mirror's example in docs/migration.md loads the same way.
    let doc = std::fs::read_to_string("docs/migration.md").unwrap();
    let mut n = 0;
    for b in blocks(&doc).into_iter().filter(|b| b.info == "toml") {
        let p = dir.path().join(format!("migration-{}.toml", b.line));
        std::fs::write(&p, &b.text).unwrap();
        if let Err(d) = userbridge::load::load_with(Some(&p), &userbridge::config::Flags::default())
        {
            panic!("docs/migration.md:{}: example does not load: {d:?}", b.line);
        }
        n += 1;
    }
    assert_eq!(n, 1);
    // And the deployment example of docs/operations.md.
    let doc = std::fs::read_to_string("docs/operations.md").unwrap();
    let mut n = 0;
    for b in blocks(&doc).into_iter().filter(|b| b.info == "toml") {
        let p = dir.path().join(format!("operations-{}.toml", b.line));
        std::fs::write(&p, &b.text).unwrap();
        if let Err(d) = userbridge::load::load_with(Some(&p), &userbridge::config::Flags::default())
        {
            panic!(
                "docs/operations.md:{}: example does not load: {d:?}",
                b.line
            );
        }
        n += 1;
    }
    assert_eq!(n, 1);
}

/// The scrape config points Prometheus at the port the image exposes (the path is its default,
/// `/metrics`, where the gateway serves them).
#[test]
fn operations_scrape_config_targets_the_exposed_port() {
    let doc = std::fs::read_to_string("docs/operations.md").unwrap();
    let dockerfile = std::fs::read_to_string("Dockerfile").unwrap();
    let yaml: Vec<_> = blocks(&doc)
        .into_iter()
        .filter(|b| b.info == "yaml")
        .collect();
    assert_eq!(yaml.len(), 1);
    let port = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("EXPOSE "))
        .unwrap()
        .trim();
    assert!(yaml[0].text.contains(&format!("userbridge:{port}")));
    assert!(!yaml[0].text.contains("metrics_path"));
}

#[test]
fn the_pattern_matcher_matches_in_order() {
    assert_eq!(find_pattern("a{x}b{y}", 0, "{x}…{y}"), Some(8));
    assert_eq!(find_pattern("a{y}b{x}", 0, "{x}…{y}"), None);
    assert_eq!(find_pattern("xx ab xx ac", 0, "a…c"), Some(11));
    assert_eq!(
        expectations("cmd\n# out\n\n# comment\ncmd2 \\\n  -d x\n# one\n# two\n"),
        ["out", "one", "two"]
    );
}
