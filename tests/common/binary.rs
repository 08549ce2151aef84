//! The real `userbridge` binary, started on port 0 with a config in a temp dir (the shipped
//! config, its store moved there); its log lines are collected.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// A running gateway process; killed when dropped.
pub struct Running {
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Every log line so far.
    pub log: Arc<Mutex<String>>,
    /// The config file it was started with (tests may edit it and send SIGHUP).
    pub config: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Ok(log) = self.log.lock() {
            super::logs::keep("serve", log.as_bytes());
        }
    }
}

impl Running {
    /// Waits until the process exits, at most `secs` seconds (then the test fails).
    pub fn wait_exit(&mut self, secs: u64) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(std::time::Instant::now() < deadline, "did not exit");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Waits until a log line contains `what`; false after `secs` seconds.
    pub fn wait_for_log(&self, what: &str, secs: u64) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while std::time::Instant::now() < deadline {
            if self.log.lock().unwrap().contains(what) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        false
    }
}

/// Starts `userbridge serve` with JSON logs at `level`; returns once it listens.
pub fn start(level: &str) -> Running {
    start_with(level, |c| c, &[])
}

/// [`start`], with the config text passed through `edit` and extra environment variables.
pub fn start_with(
    level: &str,
    edit: impl FnOnce(String) -> String,
    envs: &[(&str, &str)],
) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let shipped = std::fs::read_to_string("config/userbridge.toml").unwrap();
    let db = dir.path().join("store.db");
    let mappings = std::fs::canonicalize("mappings").unwrap();
    let cfg = shipped
        .replace("data/userbridge.db", &db.display().to_string())
        .replace(
            "dir = \"mappings\"",
            &format!("dir = \"{}\"", mappings.display()),
        );
    let cfg = format!(
        "{cfg}\n[audit]\npath = \"{}\"\n",
        dir.path().join("audit.jsonl").display()
    );
    let cfg_path = dir.path().join("config.toml");
    std::fs::write(&cfg_path, edit(cfg)).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_userbridge"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--config",
        ])
        .arg(&cfg_path)
        .env("USERBRIDGE_LOG", level)
        .envs(envs.iter().copied())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["message"] == "listening"
            {
                let _ = tx.send(v["addr"].as_str().unwrap_or_default().to_owned());
            }
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let Ok(addr) = rx.recv_timeout(std::time::Duration::from_secs(20)) else {
        let _ = child.kill();
        let _ = child.wait();
        std::thread::sleep(std::time::Duration::from_millis(100));
        panic!("the gateway did not start:\n{}", log.lock().unwrap());
    };
    Running {
        child,
        base: format!("http://{addr}"),
        log,
        config: cfg_path,
        dir,
    }
}

/// Sends `sig` (`-TERM`, `-HUP`, `-STOP`, …) to process `pid`.
pub fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid} failed");
}
