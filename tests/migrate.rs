//! The migration commands, as an operator runs them (the real binary, real SQLite files):
//! 10 000 generated vc-user-service users with 1 % invalid lines imported, every line
//! accounted for, a re-run applying nothing; exported as commvault-v4 and opscenter bodies,
//! re-imported into a second store, and `diff` finds no difference in what the dialects carry.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

const USERS: usize = 10_000;

thread_local! {
    /// Environment variables the commands of this thread's test get (a database password).
    static ENVS: std::cell::RefCell<Vec<(String, String)>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn userbridge(dir: &Path, args: &[&str]) -> Output {
    let envs = ENVS.with(|e| e.borrow().clone());
    Command::new(env!("CARGO_BIN_EXE_userbridge"))
        .args(args)
        .envs(envs)
        .current_dir(dir)
        .output()
        .inspect(|o| common::logs::keep(args.first().copied().unwrap_or("run"), &o.stderr))
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The numbers of an import summary line: (lines, applied, created, updated, identical,
/// rejected).
fn counts(summary: &str) -> [u64; 6] {
    // "import users.jsonl: N lines: A applied (C created, U updated), I identical, R rejected"
    let after_name = summary.split_once(".jsonl: ").unwrap().1;
    let n: Vec<u64> = after_name
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .take(6)
        .map(|s| s.parse().unwrap())
        .collect();
    [n[0], n[1], n[2], n[3], n[4], n[5]]
}

/// A sandbox with the shipped config and mappings, and a second store named `second`.
fn sandbox() -> tempfile::TempDir {
    sandbox_with("\n[backends.second]\nkind = \"sqlite\"\npath = \"data/second.db\"\n")
}

/// A sandbox whose config ends with `more` (the second store, and what it needs).
fn sandbox_with(more: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    let mut cfg = std::fs::read_to_string("config/userbridge.toml").unwrap();
    cfg.push_str(more);
    // Cheap password hashes: this is about the migration's bookkeeping, not the hash's cost
    // (bench/sqlite and docs/performance.md measure that at the shipped parameters).
    cfg.push_str("\n[secrets.passwords]\nmemory_kib = 64\niterations = 1\n");
    std::fs::write(dir.path().join("config/userbridge.toml"), cfg).unwrap();
    let maps = dir.path().join("mappings");
    std::fs::create_dir_all(&maps).unwrap();
    for e in std::fs::read_dir("mappings").unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), maps.join(e.file_name())).unwrap();
    }
    dir
}

/// Line `i`: a full vc-user-service create; every hundredth is invalid in one of four ways.
fn line(i: usize) -> String {
    if i % 100 == 42 {
        return match (i / 100) % 4 {
            0 => format!(r#"{{"userKey":{{"username":"bad/{i}","authenticator":"LOCAL"}}}}"#),
            1 => format!(
                r#"{{"userKey":{{"username":"u{i}","authenticator":"LOCAL"}},"email":"not-an-email"}}"#
            ),
            2 => format!(
                r#"{{"userKey":{{"username":"u{i}","authenticator":"LOCAL"}},"password":"x"#
            ),
            _ => format!(
                r#"{{"userKey":{{"username":"u{i}","authenticator":"LOCAL"}},"enabled":"yes"}}"#
            ),
        };
    }
    json!({
        "userKey": {"username": format!("user{i:05}"), "authenticator": "LOCAL"},
        "password": format!("Pw-{i}-secret"),
        "email": format!("user{i}@example.com"),
        "firstName": format!("First{i}"),
        "lastName": format!("Last{i}"),
        "enabled": !i.is_multiple_of(3),
        "primaryPhone": format!("555 {:04}", i % 10_000),
        "primaryPhoneCountryCode": "+44",
        "timeZone": "Europe/London",
    })
    .to_string()
}

#[test]
fn import_export_reimport_and_diff_agree() {
    let dir = sandbox();
    round_trip(dir.path());
}

/// The same with the second store on PostgreSQL: what the embedded store holds goes into the
/// shared database, and `diff` finds the two equal in what the dialects carry.
#[test]
fn import_export_reimport_and_diff_agree_into_postgres() {
    let pg = common::postgres::Postgres::start();
    let dir = sandbox_with(&format!(
        "\n[backends.second]\nkind = \"postgres\"\nurl = \"{}\"\n\n[secrets]\nkey = \"{}\"\n",
        pg.url,
        common::gateway::PG_SECRETS_KEY
    ));
    ENVS.with(|e| {
        e.borrow_mut().push((
            "USERBRIDGE_BACKENDS__SECOND__PASSWORD".into(),
            pg.password.clone(),
        ));
    });
    round_trip(dir.path());
    assert_eq!(pg.psql("SELECT count(*) FROM users"), "9900");
}

fn round_trip(d: &Path) {
    let input: String = (0..USERS).map(|i| line(i) + "\n").collect();
    std::fs::write(d.join("users.jsonl"), input).unwrap();

    // Every line accounted for; the rejects name line and reason in the dialect's body.
    let first = userbridge(
        d,
        &["import", "--dialect", "vc-user-service", "users.jsonl"],
    );
    assert_eq!(first.status.code(), Some(2), "{}", stderr(&first));
    let [lines, applied, created, updated, identical, rejected] = counts(&stdout(&first));
    assert_eq!(lines, USERS as u64);
    assert_eq!((applied, created, updated, identical), (9_900, 9_900, 0, 0));
    assert_eq!(rejected, 100);
    let rejects = std::fs::read_to_string(d.join("users.rejects.jsonl")).unwrap();
    let mut rejected_lines: Vec<u64> = rejects
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["status"], 400, "{l}");
            let msg = v["error"]["message"].as_str().unwrap();
            assert!(
                ["userKey.username", "email", "malformed JSON", "enabled"]
                    .iter()
                    .any(|f| msg.contains(f)),
                "{l}"
            );
            assert!(!l.contains("Pw-"), "a secret in the rejects: {l}");
            v["line"].as_u64().unwrap()
        })
        .collect();
    rejected_lines.sort_unstable();
    let expected: Vec<u64> = (0..USERS)
        .filter(|i| i % 100 == 42)
        .map(|i| i as u64 + 1)
        .collect();
    assert_eq!(rejected_lines, expected);

    // Again: nothing applied twice.
    let again = userbridge(
        d,
        &["import", "--dialect", "vc-user-service", "users.jsonl"],
    );
    let [_, applied, _, _, identical, rejected] = counts(&stdout(&again));
    assert_eq!(
        (applied, identical, rejected),
        (0, 9_900, 100),
        "{}",
        stdout(&again)
    );

    // Export in two dialects: no secret leaves the store.
    for (dialect, file) in [("commvault-v4", "cv.jsonl"), ("opscenter", "ops.jsonl")] {
        let out = userbridge(d, &["export", "--dialect", dialect, "--out", file]);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = std::fs::read_to_string(d.join(file)).unwrap();
        assert_eq!(text.lines().count(), 9_900, "{dialect}");
        assert!(
            !text.contains("Pw-") && !text.contains("UHct"),
            "{dialect}: a secret exported"
        );
    }

    // Both into a second store, then compare what each pair of dialects carries.
    for (dialect, file) in [("commvault-v4", "cv.jsonl"), ("opscenter", "ops.jsonl")] {
        let out = userbridge(
            d,
            &["import", "--dialect", dialect, "--backend", "second", file],
        );
        assert!(
            out.status.success(),
            "{dialect}: {}{}",
            stdout(&out),
            stderr(&out)
        );
        let [lines, applied, ..] = counts(&stdout(&out));
        assert_eq!((lines, applied), (9_900, 9_900), "{}", stdout(&out));
    }
    for carried in ["vc-user-service,commvault-v4", "vc-user-service,opscenter"] {
        let out = userbridge(
            d,
            &[
                "diff",
                "backend",
                "second",
                "--carried-by",
                carried,
                "--json",
            ],
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(0), "{carried}: {report:#}");
        assert_eq!(report["matched"], 9_900);
        assert!(
            report["attributes"].as_array().unwrap().len() >= 3,
            "{report}"
        );
    }
    // Without the restriction, the attributes neither export carries do differ.
    let all = userbridge(d, &["diff", "backend", "second"]);
    assert_eq!(all.status.code(), Some(1));
    assert!(
        stdout(&all).contains("phoneNumbers[primary].value"),
        "{}",
        stdout(&all)
    );
}

#[test]
fn convert_names_what_the_target_cannot_carry() {
    let dir = sandbox();
    let d = dir.path();
    let input = [line(1), line(42), line(2)].join("\n") + "\n";
    std::fs::write(d.join("in.jsonl"), input).unwrap();
    let out = userbridge(
        d,
        &[
            "convert",
            "--from",
            "vc-user-service",
            "--to",
            "commvault-v4",
            "in.jsonl",
            "out.jsonl",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("line 2: refused by vc-user-service"), "{err}");
    assert!(
        err.contains("line 1: commvault-v4 cannot carry: name.givenName, name.familyName, phoneNumbers[primary].value"),
        "{err}"
    );
    let lines: Vec<Value> = std::fs::read_to_string(d.join("out.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    // Written as the target's create (cvpysdk's `POST User` body); the file's own secret is
    // carried, in the target's encoding.
    let user = &lines[0]["users"][0];
    assert_eq!(user["userEntity"]["userName"], "user00001");
    assert_eq!(user["password"], "UHctMS1zZWNyZXQ=");
    assert!(lines[0].get("newPassword").is_none(), "{}", lines[0]);
}
