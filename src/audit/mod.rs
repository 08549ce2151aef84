//! The audit trail: one JSON line per write the gateway (or `import`, or the mirror) sent to a
//! backend, with its outcome. Kept in a file ([`file`]: append-only, rotated by size,
//! `audit.jsonl` → `audit.jsonl.1` → …, `keep` old files) or in the PostgreSQL backend's
//! database ([`db`]: one table every instance appends to). Secrets appear as `***` (the
//! canonical documents redact themselves when serialized). Records are written by a thread of
//! their own, never on the async runtime; a record is sent after the backend answered, so it
//! states the outcome.

mod db;
mod file;

use serde_json::{Map, Value};

pub use file::rotated;

use crate::canonical::Operation;
use crate::config::{AuditSink, Config};

/// Records in the channel before writers wait.
const QUEUE: usize = 4096;
/// How long the writer lets records gather after a write. A record reaches the file at most
/// this much later; `flush` (shutdown) does not wait for it.
const LINGER: std::time::Duration = std::time::Duration::from_millis(5);

/// The audit log handle; cheap to share. Disabled: records go nowhere.
#[derive(Debug, Clone)]
pub struct Audit {
    tx: Option<tokio::sync::mpsc::Sender<Msg>>,
}

/// What a record says of an operation, serialized ahead of its outcome ([`Audit::prepare`]).
#[derive(Debug)]
pub struct Prepared {
    what: String,
    who: Option<crate::canonical::Identity>,
}

/// Appends `v` as JSON (serializing these types cannot fail; a failure would leave `null`).
fn push_json(out: &mut String, v: &(impl serde::Serialize + ?Sized)) {
    match serde_json::to_string(v) {
        Ok(s) => out.push_str(&s),
        Err(_) => out.push_str("null"),
    }
}

/// What the writer thread receives.
#[derive(Debug)]
enum Msg {
    /// One record, a whole JSON line with its newline.
    Line(String),
    /// Flush, then say so.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Who did what, for one record.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The request id (or the import's line reference).
    pub request_id: &'a str,
    /// The caller: a credential's name, `scim`, `import`, `mirror`.
    pub caller: &'a str,
    /// The route (or command) that wrote.
    pub route: &'a str,
}

impl Audit {
    /// A log that records nothing.
    pub fn disabled() -> Self {
        Self { tx: None }
    }

    /// Whether records are kept.
    pub fn is_enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Opens (creates) the log file and starts the writer thread of the configured sink.
    pub fn open(config: &Config) -> Result<Self, String> {
        let cfg = &config.audit;
        if !cfg.enabled {
            return Ok(Self::disabled());
        }
        // The file is the database sink's fallback too: opened now, so that a path that
        // cannot be written is an error of the start.
        let writer = file::Writer::open(&cfg.path, cfg.max_bytes, cfg.keep)?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Msg>(QUEUE);
        let run: Box<dyn FnOnce() + Send> = match cfg.sink {
            AuditSink::File => Box::new(move || file_loop(rx, writer)),
            AuditSink::Postgres => {
                let sink = db::DbWriter::open(config, writer)?;
                Box::new(move || sink.run(rx))
            }
        };
        std::thread::Builder::new()
            .name("audit".into())
            .spawn(run)
            .map_err(|e| format!("cannot start the audit writer: {e}"))?;
        Ok(Self { tx: Some(tx) })
    }

    /// Records one canonical operation: its changes (secrets redacted), its outcome (HTTP
    /// status and, on failure, the error) and the stored user's id.
    pub async fn write(
        &self,
        ctx: Context<'_>,
        op: &Operation,
        status: u16,
        error: Option<&str>,
        stored_id: Option<&str>,
    ) {
        if let Some(p) = self.prepare(op) {
            self.finish(ctx, p, status, error, stored_id).await;
        }
    }

    /// What a record will say of `op`, serialized now: callers take it before the operation
    /// is moved into the backend, instead of keeping a copy of the operation. `None` when the
    /// trail is off.
    pub fn prepare(&self, op: &Operation) -> Option<Prepared> {
        self.tx.as_ref()?;
        let mut what = String::with_capacity(512);
        what.push_str("\"operation\":");
        push_json(&mut what, &op.operation);
        what.push_str(",\"dialect\":");
        push_json(&mut what, &*op.dialect);
        if let Some(t) = &op.target {
            what.push_str(",\"target\":");
            push_json(&mut what, t);
        }
        // The user as sent, secrets as `***` (a UserDoc serializes redacted, without schemas).
        what.push_str(",\"changes\":");
        push_json(&mut what, &op.user);
        if let Some(g) = &op.groups {
            what.push_str(",\"groups\":");
            push_json(&mut what, g);
        }
        Some(Prepared {
            what,
            who: crate::canonical::Identity::of_operation(op),
        })
    }

    /// Records a prepared operation with its outcome.
    pub async fn finish(
        &self,
        ctx: Context<'_>,
        p: Prepared,
        status: u16,
        error: Option<&str>,
        stored_id: Option<&str>,
    ) {
        self.send(ctx, &p.what, p.who, status, error, stored_id)
            .await;
    }

    /// Records one write described by `what` (`operation`, `dialect`, `target`, `changes`,
    /// `groups`, as [`Audit::write`] puts them; documents already redacted), made for `who`.
    pub async fn record(
        &self,
        ctx: Context<'_>,
        what: Map<String, Value>,
        who: Option<crate::canonical::Identity>,
        status: u16,
        error: Option<&str>,
        stored_id: Option<&str>,
    ) {
        if self.tx.is_none() {
            return;
        }
        let mut fragment = String::new();
        for (k, v) in &what {
            if !fragment.is_empty() {
                fragment.push(',');
            }
            push_json(&mut fragment, k);
            fragment.push(':');
            push_json(&mut fragment, v);
        }
        self.send(ctx, &fragment, who, status, error, stored_id)
            .await;
    }

    /// Builds the line around `what` (members without braces) and hands it to the writer.
    async fn send(
        &self,
        ctx: Context<'_>,
        what: &str,
        who: Option<crate::canonical::Identity>,
        status: u16,
        error: Option<&str>,
        stored_id: Option<&str>,
    ) {
        let Some(tx) = &self.tx else { return };
        let mut line = String::with_capacity(what.len() + 256);
        line.push_str("{\"time\":");
        push_json(
            &mut line,
            &chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        );
        for (k, v) in [
            ("requestId", ctx.request_id),
            ("caller", ctx.caller),
            ("route", ctx.route),
        ] {
            line.push_str(",\"");
            line.push_str(k);
            line.push_str("\":");
            push_json(&mut line, v);
        }
        if !what.is_empty() {
            line.push(',');
            line.push_str(what);
        }
        if let Some(who) = who {
            line.push_str(",\"userName\":");
            push_json(&mut line, &who.user_name);
            if let Some(a) = &who.authenticator {
                line.push_str(",\"authenticator\":");
                push_json(&mut line, a);
            }
        }
        if let Some(id) = stored_id {
            line.push_str(",\"id\":");
            push_json(&mut line, id);
        }
        line.push_str(",\"outcome\":{\"status\":");
        line.push_str(&status.to_string());
        if let Some(e) = error {
            line.push_str(",\"error\":");
            push_json(&mut line, e);
        }
        line.push_str("}}\n");
        if tx.send(Msg::Line(line)).await.is_err() {
            tracing::error!("the audit writer stopped; a record was lost");
        }
    }

    /// Waits until every record sent so far is written to the file.
    pub async fn flush(&self) {
        let Some(tx) = &self.tx else { return };
        let (done, wait) = tokio::sync::oneshot::channel();
        if tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// `first` and whatever else is queued behind it, without waiting: each record to `line`, each
/// flush request to `waiting` (answered once the batch is written).
fn take_queued(
    rx: &mut tokio::sync::mpsc::Receiver<Msg>,
    first: Msg,
    waiting: &mut Vec<tokio::sync::oneshot::Sender<()>>,
    mut line: impl FnMut(String),
) {
    let mut next = Some(first);
    while let Some(msg) = next {
        match msg {
            Msg::Line(l) => line(l),
            Msg::Flush(done) => waiting.push(done),
        }
        next = rx.try_recv().ok();
    }
}

/// The file sink's writer: whatever is queued goes in one write, then the file is flushed.
fn file_loop(mut rx: tokio::sync::mpsc::Receiver<Msg>, mut writer: file::Writer) {
    let mut waiting = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        take_queued(&mut rx, first, &mut waiting, |l| writer.write(&l));
        writer.flush();
        let flushed = !waiting.is_empty();
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
        // Under load, linger before looking again: records gather in the channel and go in
        // one write, and while this thread is not parked on the channel a sender's wake is an
        // atomic store, not a futex call (measured: a park per record cost about a third of
        // the gateway's CPU per request).
        if !flushed {
            std::thread::sleep(LINGER);
        }
    }
}

/// The records about `user`, oldest first: those naming it, then those touching one of the
/// ids those name (an update by id alone). From the file, and, with `sink = "postgres"`, from
/// the database too (the file holds what the database could not take).
pub fn for_user(config: &Config, user: &str) -> Result<Vec<Value>, String> {
    let cfg = &config.audit;
    let named = |v: &Value| v["userName"].as_str() == Some(user);
    let ids: std::collections::BTreeSet<String> = file::read(cfg, named)
        .iter()
        .filter_map(|v| v["id"].as_str().map(str::to_owned))
        .collect();
    let mut records = file::read(cfg, |v| {
        let target_id = v["target"]["id"].as_str().or(v["id"].as_str());
        named(v) || target_id.is_some_and(|id| ids.contains(id))
    });
    if cfg.sink == AuditSink::Postgres {
        records.extend(db::for_user(config, user)?);
        // Each source is in order; together, by time (the stable sort keeps a source's order
        // for records of the same millisecond).
        records.sort_by(|a, b| a["time"].as_str().cmp(&b["time"].as_str()));
    }
    Ok(records)
}
