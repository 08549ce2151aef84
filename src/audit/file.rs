//! The file sink: append, rotate by size, read back.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::AuditConfig;

/// The file side: append, rotate past `max_bytes`.
pub(super) struct Writer {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    file: std::io::BufWriter<std::fs::File>,
    size: u64,
}

impl Writer {
    pub(super) fn open(path: &Path, max_bytes: u64, keep: usize) -> Result<Self, String> {
        crate::private_fs::create_parent(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file =
            crate::private_fs::append(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Self {
            path: path.to_owned(),
            max_bytes,
            keep,
            file: std::io::BufWriter::new(file),
            size,
        })
    }

    /// The file written to.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn write(&mut self, line: &str) {
        if self.size > 0 && self.size + line.len() as u64 > self.max_bytes {
            self.rotate();
        }
        match self.file.write_all(line.as_bytes()) {
            Ok(()) => self.size += line.len() as u64,
            Err(e) => tracing::error!(error = %e, "audit log write failed"),
        }
    }

    pub(super) fn flush(&mut self) {
        if let Err(e) = self.file.flush() {
            tracing::error!(error = %e, "audit log flush failed");
        }
    }

    /// `audit.jsonl.{keep-1}` → `.{keep}` … `audit.jsonl` → `.1`, the oldest dropped.
    fn rotate(&mut self) {
        self.flush();
        for i in (1..self.keep).rev() {
            let _ = std::fs::rename(rotated(&self.path, i), rotated(&self.path, i + 1));
        }
        if self.keep > 0 {
            let _ = std::fs::rename(&self.path, rotated(&self.path, 1));
        } else {
            let _ = std::fs::remove_file(&self.path);
        }
        match crate::private_fs::create(&self.path) {
            Ok(f) => {
                self.file = std::io::BufWriter::new(f);
                self.size = 0;
            }
            Err(e) => tracing::error!(error = %e, "audit log rotation failed"),
        }
    }
}

/// The `n`th rotated file beside `path`.
pub fn rotated(path: &Path, n: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Every record of the log, oldest first (rotated files, then the current one), for which
/// `keep` holds. Unreadable lines are skipped.
pub fn read(cfg: &AuditConfig, mut keep: impl FnMut(&Value) -> bool) -> Vec<Value> {
    let mut files: Vec<PathBuf> = (1..=cfg.keep)
        .rev()
        .map(|i| rotated(&cfg.path, i))
        .collect();
    files.push(cfg.path.clone());
    let mut out = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        out.extend(
            text.lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|v| keep(v)),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_reads_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = AuditConfig {
            enabled: true,
            sink: crate::config::AuditSink::File,
            path: dir.path().join("a/audit.jsonl"),
            max_bytes: 120,
            keep: 2,
        };
        let mut w = Writer::open(&cfg.path, cfg.max_bytes, cfg.keep).unwrap();
        for i in 0..10 {
            w.write(&format!(
                "{}\n",
                serde_json::json!({"n": i, "pad": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"})
            ));
        }
        w.flush();
        assert!(rotated(&cfg.path, 2).exists() && !rotated(&cfg.path, 3).exists());
        let all = read(&cfg, |_| true);
        let ns: Vec<i64> = all.iter().map(|v| v["n"].as_i64().unwrap()).collect();
        // Two lines per file, three files: the six newest, in order.
        assert_eq!(ns, [4, 5, 6, 7, 8, 9]);
        // The trail, its rotations and the directory made for it are the owner's alone.
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        for p in [
            cfg.path.clone(),
            rotated(&cfg.path, 1),
            rotated(&cfg.path, 2),
        ] {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
        assert_eq!(mode(&dir.path().join("a")), 0o700);
    }
}
