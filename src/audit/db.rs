//! The database sink: records go to the `audit_trail` table of the PostgreSQL backend's
//! database, in batches, from a thread with a runtime of its own (the serving runtimes never
//! wait for it). When the database does not take a batch, it is tried again for a while; what
//! is still not taken then — or when the gateway stops — is appended to the local file
//! instead, and the log says so: a record is never dropped.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc::Receiver;

use super::Msg;
use super::file::Writer;
use crate::backend::postgres::{AuditTable, Settings};
use crate::config::Config;

/// How long records wait for the database before they go to the file.
const SPILL_AFTER: Duration = Duration::from_secs(5);
/// How long to wait between attempts while the database refuses.
const RETRY: Duration = Duration::from_millis(250);
/// Records held for the database, at most, before they go to the file.
const HOLD: usize = 4 * super::QUEUE;

/// The writer: its state and the runtime it runs on.
pub(super) struct DbWriter {
    sink: DbSink,
    runtime: tokio::runtime::Runtime,
}

/// The writer's state.
struct DbSink {
    table: AuditTable,
    file: Writer,
    /// Records not yet in the database, oldest first, and when the oldest came.
    pending: Vec<String>,
    since: Option<Instant>,
    /// Whether the last attempt failed (the failure is logged once, not per attempt).
    failing: bool,
}

/// The table an audit trail of `config` goes to (`Config::audit_database` must be set: the
/// config's validation says so).
fn table(config: &Config) -> Result<AuditTable, String> {
    let settings = config
        .audit_database()
        .and_then(Settings::of)
        .ok_or("audit.sink = \"postgres\" needs a postgres backend")?;
    // One connection: the writer is one thread.
    let settings = Settings {
        pool_size: 1,
        ..settings
    };
    AuditTable::open(&settings, &config.groups)
}

impl DbWriter {
    /// The writer of `config`'s trail, `file` its fallback; its runtime is built now, so that
    /// a failure is an error of the start.
    pub(super) fn open(config: &Config, file: Writer) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the audit writer: {e}"))?;
        let sink = DbSink {
            table: table(config)?,
            file,
            pending: Vec::new(),
            since: None,
            failing: false,
        };
        Ok(Self { sink, runtime })
    }

    /// Takes records from `rx` until every sender is gone, then writes what is left.
    pub(super) fn run(self, rx: Receiver<Msg>) {
        let Self { sink, runtime } = self;
        runtime.block_on(sink.run(rx));
    }
}

impl DbSink {
    async fn run(mut self, mut rx: Receiver<Msg>) {
        let mut waiting = Vec::new();
        loop {
            let first = if self.pending.is_empty() {
                rx.recv().await
            } else {
                match tokio::time::timeout(RETRY, rx.recv()).await {
                    Ok(m) => m,
                    Err(_) => {
                        self.push_out(false).await;
                        continue;
                    }
                }
            };
            let Some(first) = first else { break };
            super::take_queued(&mut rx, first, &mut waiting, |l| {
                self.since.get_or_insert_with(Instant::now);
                self.pending.push(l);
            });
            let urgent = !waiting.is_empty();
            self.push_out(urgent).await;
            for done in waiting.drain(..) {
                let _ = done.send(());
            }
            if !urgent {
                // Let records gather: one insert for many.
                tokio::time::sleep(super::LINGER).await;
            }
        }
        self.push_out(true).await;
    }

    /// Sends the pending records to the database; when it does not take them and they have
    /// waited long enough (or `urgent`: someone waits for them to be written), to the file.
    async fn push_out(&mut self, urgent: bool) {
        if self.pending.is_empty() {
            return;
        }
        let limit = if urgent { RETRY * 4 } else { SPILL_AFTER };
        let sent = tokio::time::timeout(limit, self.table.append(&self.pending)).await;
        let error = match sent {
            Ok(Ok(())) => {
                if self.failing {
                    tracing::info!(
                        db = self.table.label(),
                        "the audit trail reaches the database again"
                    );
                    self.failing = false;
                }
                self.pending.clear();
                self.since = None;
                return;
            }
            Ok(Err(e)) => e,
            Err(_) => format!("{}: no answer in {limit:?}", self.table.label()),
        };
        if !self.failing {
            tracing::error!(error = %error, "the audit trail cannot be written to the database; retrying");
            self.failing = true;
        }
        let waited = self.since.map_or(Duration::ZERO, |t| t.elapsed());
        if urgent || waited >= SPILL_AFTER || self.pending.len() >= HOLD {
            for line in &self.pending {
                self.file.write(line);
            }
            self.file.flush();
            tracing::error!(
                records = self.pending.len(),
                file = %self.file.path().display(),
                "audit records the database did not take were written to the file instead"
            );
            self.pending.clear();
            self.since = None;
        }
    }
}

/// The database's records about `user`, oldest first.
pub(super) fn for_user(config: &Config, user: &str) -> Result<Vec<Value>, String> {
    let table = table(config)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let lines = runtime.block_on(table.for_user(user))?;
    Ok(lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}
