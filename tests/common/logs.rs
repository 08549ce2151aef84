//! Every log line of a test run, kept for the secret scan that follows it
//! (`scripts/scan-test-logs`, run by `scripts/test`): the in-process gateways' lines at trace
//! level, and the stderr of every `userbridge` process the tests start.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

/// `target/tmp/test-logs`: one file per test binary, one per process it started.
pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("test-logs")
}

fn binary_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "test".to_owned())
}

/// Sends this test binary's in-process log lines (userbridge's at trace, the rest at info, JSON
/// as `serve --log-format json` writes them) to its file in [`dir`]. Idempotent; a test that
/// installs its own subscriber first keeps it.
pub fn capture() {
    static FILE: OnceLock<()> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = dir();
        if std::fs::create_dir_all(&dir).is_err() {
            return;
        }
        let path = dir.join(format!("{}-{}.jsonl", binary_name(), std::process::id()));
        let Ok(file) = std::fs::File::create(path) else {
            return;
        };
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info,userbridge=trace"))
            .with_ansi(false)
            .with_writer(Mutex::new(file))
            .json()
            .flatten_event(true)
            .try_init();
    });
}

/// Keeps `text` (a `userbridge` process's stderr) as `<test binary>-<pid>-<what>-<n>.log` in
/// [`dir`].
pub fn keep(what: &str, text: &[u8]) {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = dir();
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let name = format!("{}-{}-{what}-{n}.log", binary_name(), std::process::id());
    if let Ok(mut f) = std::fs::File::create(dir.join(name)) {
        let _ = f.write_all(text);
    }
}
