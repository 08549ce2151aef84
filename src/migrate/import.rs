//! `userbridge import`: a JSON Lines file of one dialect's request bodies, applied to a backend
//! with bounded concurrency. Every line ends as exactly one of: created, updated, identical
//! (nothing to do), or rejected (written to the rejects file with its line number and the
//! dialect's error body). Users are matched by `userName` (+ `authenticator`), whatever route
//! the line goes through, so a re-run after an interruption applies nothing twice.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use super::{drop_nulls, parse_line};
use crate::backend::{Backend, BackendError, Store, Stored, Want, merge::merge};
use crate::canonical::{
    ATTRIBUTES, GroupChange, GroupOp, Identity, OpKind, Operation, UserDoc, location,
};
use crate::exchange::Exchange;
use crate::mapping::render::ErrorContext;
use crate::rejection::Rejection;

/// What became of one line.
#[derive(Debug)]
pub enum LineOutcome {
    /// A new user.
    Created,
    /// An existing user changed.
    Updated,
    /// The user already held everything the line says.
    Identical,
    /// Not applied: the dialect's status and error body, and a reason for the operator.
    Rejected {
        /// The dialect's HTTP status for it.
        status: u16,
        /// The dialect's error body.
        error: Value,
    },
}

/// The counts of one run; `created + updated + identical + rejected == lines`.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Lines read.
    pub lines: u64,
    /// Users created.
    pub created: u64,
    /// Users updated.
    pub updated: u64,
    /// Lines already true of the backend.
    pub identical: u64,
    /// Lines refused (in the rejects file).
    pub rejected: u64,
}

impl Summary {
    fn add(&mut self, o: &LineOutcome) {
        match o {
            LineOutcome::Created => self.created += 1,
            LineOutcome::Updated => self.updated += 1,
            LineOutcome::Identical => self.identical += 1,
            LineOutcome::Rejected { .. } => self.rejected += 1,
        }
    }

    /// Lines done so far.
    pub fn done(&self) -> u64 {
        self.created + self.updated + self.identical + self.rejected
    }
}

/// What an import needs.
pub struct Importer {
    /// The route lines go through (each line brings its own path parameters).
    pub exchange: Exchange,
    /// Where users are written.
    pub backend: Arc<dyn Backend>,
    /// JSON nesting bound.
    pub max_depth: usize,
    /// Where each write is recorded (caller `import`, request id `FILE:LINE`).
    pub audit: crate::audit::Audit,
    /// The input's name, for the audit trail.
    pub source: String,
}

impl Importer {
    /// Imports `input`, writing refused lines to `rejects`; at most `concurrency` lines in
    /// flight. `progress` is called with the running summary now and then.
    pub async fn run(
        self: Arc<Self>,
        input: &Path,
        rejects: &Path,
        concurrency: usize,
        mut progress: impl FnMut(&Summary),
    ) -> Result<Summary, String> {
        let file = tokio::fs::File::open(input)
            .await
            .map_err(|e| format!("{}: {e}", input.display()))?;
        let mut reader = tokio::io::BufReader::new(file);
        let out = crate::private_fs::create_async(rejects)
            .await
            .map_err(|e| format!("{}: {e}", rejects.display()))?;
        let mut out = tokio::io::BufWriter::new(out);
        let mut summary = Summary::default();
        let mut tasks = tokio::task::JoinSet::new();
        let mut last_report = Instant::now();
        let mut line_no = 0u64;
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = reader
                .read_until(b'\n', &mut buf)
                .await
                .map_err(|e| format!("{}: {e}", input.display()))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            summary.lines += 1;
            let text = std::mem::take(&mut buf);
            let me = Arc::clone(&self);
            tasks.spawn(async move { (line_no, me.line(line_no, &text).await) });
            while tasks.len() >= concurrency.max(1) {
                if let Some(done) = tasks.join_next().await {
                    record(done, &mut summary, &mut out).await?;
                }
            }
            if last_report.elapsed() >= Duration::from_millis(200) {
                progress(&summary);
                last_report = Instant::now();
            }
        }
        while let Some(done) = tasks.join_next().await {
            record(done, &mut summary, &mut out).await?;
        }
        out.flush()
            .await
            .map_err(|e| format!("{}: {e}", rejects.display()))?;
        progress(&summary);
        Ok(summary)
    }

    /// One line, start to end. Never panics on any input.
    pub async fn line(&self, line_no: u64, text: &[u8]) -> LineOutcome {
        let text = trim_line_end(text);
        if text.iter().all(u8::is_ascii_whitespace) {
            return self.refused(
                line_no,
                Rejection::invalid("line", "json", "the line is empty".into()),
            );
        }
        let req = match parse_line(text, self.max_depth) {
            Ok(r) => r,
            Err(m) => return self.refused(line_no, Rejection::invalid("body", "json", m)),
        };
        let exchange = Exchange {
            params: req.params,
            ..self.exchange.clone()
        };
        let op = match exchange.translate_value(&http::HeaderMap::new(), &req.body) {
            Ok(t) => t.op,
            Err(rej) => return self.refused(line_no, rej),
        };
        match self.apply(line_no, op).await {
            Ok(o) => o,
            Err(rej) => self.refused(line_no, rej),
        }
    }

    /// The dialect's error answer for a refused line; its request id is `FILE:LINE`, as in
    /// the audit trail.
    fn refused(&self, line_no: u64, rej: Rejection) -> LineOutcome {
        let request_id = format!("{}:{line_no}", self.source);
        let path = self
            .exchange
            .spec()
            .and_then(|r| r.paths.first())
            .map_or("", |p| p.text.as_str());
        let ctx = ErrorContext {
            path,
            request_id: &request_id,
            ..ErrorContext::default()
        };
        let answer = self.exchange.refuse(&rej, &ctx);
        let error = serde_json::from_slice(&answer.body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&answer.body).into()));
        LineOutcome::Rejected {
            status: answer.status,
            error,
        }
    }

    async fn apply(&self, line_no: u64, op: Operation) -> Result<LineOutcome, Rejection> {
        let who = Identity::of_operation(&op).ok_or_else(|| {
            Rejection::invalid(
                "userName",
                "required",
                "the line names no userName: import matches users by userName".into(),
            )
        })?;
        let store = self.store()?;
        // Two tries: a create that loses a race with another line for the same user updates.
        for _ in 0..2 {
            let found = self.find(store, &who).await?;
            let result = match found {
                None => self
                    .create(line_no, &op, &who)
                    .await
                    .map(|_| LineOutcome::Created),
                Some(stored) => self.update(line_no, store, &op, stored).await,
            };
            match result {
                Err(BackendError::Conflict(_)) => continue,
                Err(e) => return Err(self.exchange.backend_rejection(e)),
                Ok(o) => return Ok(o),
            }
        }
        Err(self
            .exchange
            .backend_rejection(BackendError::Conflict(format!("{who} exists already"))))
    }

    fn store(&self) -> Result<&dyn Store, Rejection> {
        self.backend.store().ok_or_else(|| {
            self.exchange.backend_rejection(BackendError::Unsupported(
                self.backend.kind(),
                "look users up",
            ))
        })
    }

    /// The stored user `who` names: by name, then authenticator where both have one; more
    /// than one candidate is refused rather than guessed.
    async fn find(&self, store: &dyn Store, who: &Identity) -> Result<Option<UserDoc>, Rejection> {
        let (users, _) = store
            .list(Some(who.user_name.clone()), 0, 100)
            .await
            .map_err(|e| self.exchange.backend_rejection(e))?;
        let mut matching: Vec<UserDoc> = users
            .into_iter()
            .filter(|u| Identity::of(u.exposed()).is_some_and(|s| who.matches(&s)))
            .collect();
        match matching.len() {
            0 => Ok(None),
            1 => Ok(matching.pop()),
            n => Err(Rejection::invalid(
                "userName",
                "target",
                format!("{n} users are named {who}; give the authenticator"),
            )),
        }
    }

    /// Applies `op` and records it in the audit trail.
    async fn audited(&self, line_no: u64, op: Operation) -> Result<Stored, BackendError> {
        let prepared = self.audit.prepare(&op);
        let result = self.backend.apply(op, Want::Id).await;
        if let Some(prepared) = prepared {
            let request_id = format!("{}:{line_no}", self.source);
            let ctx = crate::audit::Context {
                request_id: &request_id,
                caller: "import",
                route: "import",
            };
            let (status, error, id) = match &result {
                Ok(u) => (200, None, u.id()),
                Err(e) => (0, Some(e.to_string()), None),
            };
            self.audit
                .finish(ctx, prepared, status, error.as_deref(), id)
                .await;
        }
        result
    }

    async fn create(
        &self,
        line_no: u64,
        op: &Operation,
        who: &Identity,
    ) -> Result<Stored, BackendError> {
        let mut user = op.user.exposed().clone();
        drop_nulls(&mut user);
        crate::backend::strip_server_owned(&mut user);
        user.insert("userName".into(), Value::String(who.user_name.clone()));
        if let Some(a) = &who.authenticator {
            crate::canonical::set(
                &mut user,
                &location("ext.authenticator"),
                Value::String(a.clone()),
            );
        }
        let groups = op.groups.as_ref().and_then(|g| match g.op {
            GroupOp::Remove => None,
            _ => Some(GroupChange {
                op: GroupOp::Replace,
                values: g.values.clone(),
            }),
        });
        let create = Operation {
            operation: OpKind::Create,
            dialect: Arc::clone(&op.dialect),
            target: None,
            user: UserDoc(user),
            groups,
            caller_password: None,
            preconditions: Vec::new(),
            pending: Vec::new(),
        };
        self.audited(line_no, create).await
    }

    async fn update(
        &self,
        line_no: u64,
        store: &dyn Store,
        op: &Operation,
        stored: UserDoc,
    ) -> Result<LineOutcome, BackendError> {
        let id = stored.id().unwrap_or_default().to_owned();
        let mut changes = op.user.exposed().clone();
        crate::backend::strip_server_owned(&mut changes);
        // A password is compared by verifying it against the stored hash: the same one is not
        // written again (nor hashed again).
        if let Some(Value::String(pw)) = changes.get("password")
            && store.verify_password(&id, pw.clone()).await? == Some(true)
        {
            changes.shift_remove("password");
        }
        let secrets = carries_secrets(&changes);
        let comparable = !secrets || store.keeps_secrets();
        if comparable {
            let current = if secrets {
                store.get_with_secrets(&id).await?.unwrap_or(stored)
            } else {
                stored
            };
            let mut merged = current.exposed().clone();
            merge(&mut merged, changes.clone());
            if merged == *current.exposed() && groups_unchanged(current.exposed(), op) {
                return Ok(LineOutcome::Identical);
            }
        }
        let update = Operation {
            operation: OpKind::Update,
            dialect: Arc::clone(&op.dialect),
            target: Some(UserDoc(Map::from_iter([("id".into(), json!(id))]))),
            user: UserDoc(changes),
            groups: op.groups.clone(),
            caller_password: None,
            preconditions: op.preconditions.clone(),
            pending: op.pending.clone(),
        };
        self.audited(line_no, update)
            .await
            .map(|_| LineOutcome::Updated)
    }
}

/// The line without its line break.
fn trim_line_end(text: &[u8]) -> &[u8] {
    let t = text.strip_suffix(b"\n").unwrap_or(text);
    t.strip_suffix(b"\r").unwrap_or(t)
}

/// Whether `doc` sets a secret attribute.
fn carries_secrets(doc: &Map<String, Value>) -> bool {
    ATTRIBUTES
        .iter()
        .filter(|a| a.secret)
        .any(|a| crate::canonical::get(doc, &location(a.name)).is_some_and(|v| !v.is_null()))
}

/// Whether the operation's group change leaves the stored memberships as they are.
fn groups_unchanged(stored: &Map<String, Value>, op: &Operation) -> bool {
    let Some(change) = &op.groups else {
        return true;
    };
    let current: Vec<&str> = stored
        .get("groups")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|g| g.get("value")?.as_str()).collect())
        .unwrap_or_default();
    let named: Vec<&str> = change
        .values
        .iter()
        .filter_map(|g| g.value.as_deref())
        .collect();
    if named.len() != change.values.len() {
        return false; // named by display only: let the backend decide
    }
    match change.op {
        GroupOp::Add => named.iter().all(|g| current.contains(g)),
        GroupOp::Remove => named.iter().all(|g| !current.contains(g)),
        GroupOp::Replace => {
            named.len() == current.len() && named.iter().all(|g| current.contains(g))
        }
    }
}

async fn record(
    done: Result<(u64, LineOutcome), tokio::task::JoinError>,
    summary: &mut Summary,
    out: &mut tokio::io::BufWriter<tokio::fs::File>,
) -> Result<(), String> {
    let (line, outcome) = done.map_err(|e| format!("an import task failed: {e}"))?;
    summary.add(&outcome);
    if let LineOutcome::Rejected { status, error } = outcome {
        let mut text = json!({"line": line, "status": status, "error": error}).to_string();
        text.push('\n');
        out.write_all(text.as_bytes())
            .await
            .map_err(|e| format!("rejects file: {e}"))?;
    }
    Ok(())
}

/// The rejects file beside `input`: `users.jsonl` → `users.rejects.jsonl`.
pub fn default_rejects(input: &Path) -> PathBuf {
    let stem = input
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "import".into());
    input.with_file_name(format!("{stem}.rejects.jsonl"))
}
