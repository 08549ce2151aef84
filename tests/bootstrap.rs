//! The bootstrap check of the real binary: on a listener other machines reach, `serve`
//! refuses the shipped demo credentials and short ones (naming each credential, never its
//! value), starts with credentials of the operator's own (from mounted files or as digests),
//! and starts anyway with `--allow-insecure-credentials`. On loopback, the demo config serves
//! as before (every other test).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use userbridge::bootstrap::DEMO_SECRETS;

/// The shipped config with its store, audit trail and mappings in `dir`, passed through `edit`.
fn config(dir: &Path, edit: impl FnOnce(String) -> String) -> PathBuf {
    let shipped = std::fs::read_to_string("config/userbridge.toml").unwrap();
    let mappings = std::fs::canonicalize("mappings").unwrap();
    let cfg = shipped
        .replace(
            "data/userbridge.db",
            &dir.join("store.db").display().to_string(),
        )
        .replace(
            "dir = \"mappings\"",
            &format!("dir = \"{}\"", mappings.display()),
        );
    let cfg = format!(
        "{}\n[audit]\npath = \"{}\"\n",
        edit(cfg),
        dir.join("audit.jsonl").display()
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, cfg).unwrap();
    path
}

fn serve(cfg: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_userbridge"))
        .args(["serve", "--listen", "0.0.0.0:0", "--config"])
        .arg(cfg)
        .args(extra)
        .env_remove("USERBRIDGE_ALLOW_INSECURE_CREDENTIALS")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for the process to exit (its status and stderr), or for `listening` in its log
/// (`None`: it serves; it is killed).
fn outcome(child: Child) -> (Option<i32>, String) {
    outcome_after(child, Duration::from_secs(20))
}

/// Serves for a moment: true when it logged that it listens (then it is stopped).
fn serves(child: Child) -> (bool, String) {
    let (code, log) = outcome_after(child, Duration::from_secs(3));
    (code.is_none() && log.contains("listening"), log)
}

/// Like [`outcome`], but stops a process that is still running after `grace`.
fn outcome_after(mut child: Child, grace: Duration) -> (Option<i32>, String) {
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + grace;
    let mut code = None;
    while Instant::now() < deadline {
        if let Some(st) = child.try_wait().unwrap() {
            code = Some(st.code().unwrap_or(-1));
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if code.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let log = reader.join().unwrap();
    common::logs::keep("serve", log.as_bytes());
    (code, log)
}

#[test]
fn the_demo_credentials_never_face_a_network() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), |c| c);
    let (code, log) = outcome(serve(&cfg, &[]));
    assert_eq!(code, Some(1), "{log}");
    for name in [
        "demo-vc-admin",
        "demo-commvault-admin",
        "demo-opscenter-admin",
        "demo-scim-admin",
    ] {
        assert!(log.contains(name), "{name} not named: {log}");
    }
    assert!(log.contains("demo value the project publishes"), "{log}");
    assert!(log.contains("--allow-insecure-credentials"), "{log}");
    assert!(log.contains("token_file"), "{log}");
    for secret in DEMO_SECRETS {
        assert!(!log.contains(secret), "{secret} printed: {log}");
    }
    assert!(!log.contains("listening"));
}

#[test]
fn a_lab_may_allow_them() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), |c| c);
    let (up, log) = serves(serve(&cfg, &["--allow-insecure-credentials"]));
    assert!(up, "{log}");
    assert!(log.contains("demo or short credentials"), "{log}");
}

#[test]
fn short_tokens_and_demo_digests_are_refused_too() {
    let dir = tempfile::tempdir().unwrap();
    let demo_digest = userbridge::config::hex(&userbridge::config::sha256(b"demo-scim-token"));
    let cfg = config(dir.path(), |c| {
        c.replace("token = \"demo-vc-token\"", "token = \"short-token\"")
            .replace(
                "token = \"demo-scim-token\"",
                &format!("token_sha256 = \"{demo_digest}\""),
            )
    });
    let (code, log) = outcome(serve(&cfg, &[]));
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("(demo-vc-admin): the token is shorter than 24 characters"),
        "{log}"
    );
    assert!(
        log.contains("(demo-scim-admin): the token is a demo value"),
        "{log}"
    );
    assert!(!log.contains("short-token"), "{log}");
}

/// Credentials of the operator's own, as a container gets them: files mounted beside the
/// config, and a digest.
#[test]
fn own_credentials_from_files_serve_on_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    let mut edits = Vec::new();
    for (i, demo) in DEMO_SECRETS.iter().enumerate() {
        let own = format!("{:064x}", 0x5eed_u64 * (i as u64 + 7) * 1_000_003);
        let file = secrets.join(format!("s{i}"));
        std::fs::write(&file, format!("{own}\n")).unwrap();
        edits.push((*demo, file));
    }
    let cfg = config(dir.path(), move |mut c| {
        for (demo, file) in &edits {
            let file = file.display();
            c = c
                .replace(
                    &format!("token = \"{demo}\""),
                    &format!("token_file = \"{file}\""),
                )
                .replace(
                    &format!("password = \"{demo}\""),
                    &format!("password_file = \"{file}\""),
                );
        }
        c
    });
    let (up, log) = serves(serve(&cfg, &[]));
    assert!(up, "{log}");
    assert!(!log.contains("demo or short credentials"), "{log}");
}

/// The image's default config: every credential from a file under /run/secrets/userbridge/
/// (here a temp dir in its place). With the files it serves on every interface; without one
/// it stops, naming the file.
#[test]
fn the_container_config_serves_with_mounted_secrets_only() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    std::fs::create_dir(&secrets).unwrap();
    let container = std::fs::read_to_string("config/container.toml").unwrap();
    assert!(
        !container.contains("token = "),
        "a clear token in the image config"
    );
    let names: Vec<String> = container
        .lines()
        .filter_map(|l| l.strip_prefix("token_file = \"/run/secrets/userbridge/"))
        .chain(
            container
                .lines()
                .filter_map(|l| l.strip_prefix("password_file = \"/run/secrets/userbridge/")),
        )
        .map(|l| l.trim_end_matches('"').to_owned())
        .collect();
    assert_eq!(names.len(), 6, "{names:?}");
    let mappings = std::fs::canonicalize("mappings").unwrap();
    let cfg_text = container
        .replace("/run/secrets/userbridge", &secrets.display().to_string())
        .replace(
            "data/userbridge.db",
            &dir.path().join("store.db").display().to_string(),
        )
        .replace(
            "dir = \"mappings\"",
            &format!("dir = \"{}\"", mappings.display()),
        )
        .replace("0.0.0.0:8080", "0.0.0.0:0");
    let cfg = dir.path().join("container.toml");
    std::fs::write(
        &cfg,
        format!(
            "{cfg_text}\n[audit]\npath = \"{}\"\n",
            dir.path().join("audit.jsonl").display()
        ),
    )
    .unwrap();
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_userbridge"))
            .args(["serve", "--config"])
            .arg(&cfg)
            .env_remove("USERBRIDGE_ALLOW_INSECURE_CREDENTIALS")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (code, log) = outcome(start());
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains("vc-admin") && log.contains("token_file"),
        "{log}"
    );
    for (i, n) in names.iter().enumerate() {
        std::fs::write(
            secrets.join(n),
            format!("{:064x}\n", (i as u64 + 3) * 0x9e37_79b9),
        )
        .unwrap();
    }
    let (up, log) = serves(start());
    assert!(up, "{log}");
}

/// `check` warns of what `serve` would refuse (and still exits 0: the config is valid).
#[test]
fn check_warns_of_what_serve_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), |c| {
        c.replace("listen = \"127.0.0.1:8080\"", "listen = \"0.0.0.0:8080\"")
    });
    let out = Command::new(env!("CARGO_BIN_EXE_userbridge"))
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning: serve would refuse to start"),
        "{err}"
    );
    assert!(err.contains("demo-scim-admin"), "{err}");
}
