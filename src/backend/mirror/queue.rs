//! The mirror's queue of copies, behind one interface: a SQLite file beside one gateway
//! ([`SqliteQueue`], copied in queue order by that gateway's worker), or the tables of a
//! PostgreSQL primary that several gateways share (`backend::postgres`), whose workers claim
//! entries with `FOR UPDATE SKIP LOCKED`, one user's copies in the order they were queued.
//!
//! An entry is taken and handled in one step ([`Queue::take`]): the queue hands it to the
//! worker's copy and records what came of it (done, retried later, set aside). On PostgreSQL
//! the entry stays locked for that time, so a gateway killed in the middle leaves it to the
//! others at once; a copy sent twice is harmless (a copy makes the shadow's user equal to the
//! primary's).

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use crate::backend::{BackendError, BoxFuture};
use crate::sealed::Sealer;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS pending (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    op       TEXT NOT NULL DEFAULT 'put',
    dialect  TEXT NOT NULL,
    doc      TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at  INTEGER NOT NULL DEFAULT 0,
    error    TEXT,
    secrets  TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS dead (
    seq     INTEGER PRIMARY KEY,
    dialect TEXT NOT NULL,
    doc     TEXT NOT NULL,
    error   TEXT NOT NULL,
    at      TEXT NOT NULL
);
";

/// An entry as queued.
#[derive(Debug, Clone)]
pub struct Raw {
    /// Its place in the queue.
    pub seq: i64,
    /// `put` (make the shadow's user equal to `doc`) or `delete` (remove the user it names).
    pub op: String,
    /// The dialect of the write (for the audit trail).
    pub dialect: String,
    /// The user as the primary stored it, without secrets (JSON).
    pub doc: String,
    /// Its secrets, sealed for this entry (`{}` when none).
    pub secrets: String,
    /// Tries so far.
    pub attempts: i64,
    /// Not before (ms since the epoch).
    pub next_at: i64,
}

/// What came of handling an entry.
#[derive(Debug)]
pub enum Outcome {
    /// Copied: the entry goes.
    Done,
    /// Failed: tried again at `next_at` (ms since the epoch).
    Retry {
        /// Why.
        error: String,
        /// When.
        next_at: i64,
    },
    /// Refused for good: moved to the dead entries, its secrets dropped.
    SetAside {
        /// Why.
        error: String,
    },
}

/// What [`Queue::take`] did.
#[derive(Debug)]
pub enum Taken {
    /// Nothing to copy now.
    Empty,
    /// The next entry is due in this many milliseconds (a queue copied in order).
    NotDue(i64),
    /// An entry was handled, with this outcome.
    Handled(Outcome),
}

/// How the worker handles one entry.
pub type Handler<'a> = Box<dyn FnOnce(Raw) -> BoxFuture<'a, Outcome> + Send + 'a>;

/// A queue of copies.
pub trait Queue: Send + Sync {
    /// Queues a copy of the user `user` names (`userName` and authenticator: copies of one
    /// user are handled in the order queued).
    fn push<'a>(
        &'a self,
        op: &'a str,
        dialect: &'a str,
        user: &'a str,
        doc: String,
        secrets: String,
    ) -> BoxFuture<'a, Result<(), BackendError>>;

    /// Takes the next entry that is due, hands it to `handle` and records its outcome.
    fn take<'a>(
        &'a self,
        now_ms: i64,
        handle: Handler<'a>,
    ) -> BoxFuture<'a, Result<Taken, BackendError>>;

    /// Entries waiting, and entries set aside.
    fn counts(&self) -> BoxFuture<'_, Result<(i64, i64), BackendError>>;
}

/// The associated data an entry's secrets are sealed with: its document, so that they open
/// for that entry only.
pub fn entry_aad(doc: &str) -> String {
    format!("mirror:{doc}")
}

/// An entry's secrets, sealed for the entry whose document is `doc` (`{}` when none).
pub fn seal_entry(
    sealer: &Sealer,
    doc: &str,
    secrets: &serde_json::Map<String, Value>,
) -> Result<String, BackendError> {
    if secrets.is_empty() {
        return Ok("{}".to_owned());
    }
    sealer
        .seal(&entry_aad(doc), &Value::Object(secrets.clone()).to_string())
        .map_err(|e| BackendError::Failed(format!("mirror queue: {e}")))
}

fn db(e: rusqlite::Error) -> BackendError {
    BackendError::Failed(format!("mirror queue: {e}"))
}

/// The queue in a SQLite file beside one gateway: one worker, entries in queue order (the
/// queue waits behind a failing copy).
pub struct SqliteQueue {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteQueue {
    /// Opens (creates, 0600) the queue at `queue`, its secrets sealed under the current key.
    pub fn open(queue: &Path, secrets: &crate::config::SecretsConfig) -> Result<Self, String> {
        let (conn, _, _) = open_queue(queue, secrets)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, BackendError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let conn = conn
                .lock()
                .map_err(|_| BackendError::Failed("mirror queue lock poisoned".into()))?;
            f(&conn).map_err(db)
        })
        .await
        .map_err(|e| BackendError::Failed(format!("mirror queue task: {e}")))?
    }

    async fn head(&self) -> Result<Option<Raw>, BackendError> {
        self.blocking(|c| {
            c.prepare_cached(
                "SELECT seq, dialect, doc, attempts, next_at, op, secrets FROM pending ORDER BY seq LIMIT 1",
            )?
            .query_row([], |r| {
                Ok(Raw {
                    seq: r.get(0)?,
                    dialect: r.get(1)?,
                    doc: r.get(2)?,
                    attempts: r.get(3)?,
                    next_at: r.get(4)?,
                    op: r.get(5)?,
                    secrets: r.get(6)?,
                })
            })
            .optional()
        })
        .await
    }

    async fn record(&self, raw: &Raw, outcome: &Outcome) -> Result<(), BackendError> {
        let seq = raw.seq;
        let attempts = raw.attempts + 1;
        match outcome {
            Outcome::Done => {
                self.blocking(move |c| {
                    c.prepare_cached("DELETE FROM pending WHERE seq = ?1")?
                        .execute(params![seq])
                        .map(|_| ())
                })
                .await
            }
            Outcome::Retry { error, next_at } => {
                let (error, next_at) = (error.clone(), *next_at);
                self.blocking(move |c| {
                    c.prepare_cached(
                        "UPDATE pending SET attempts = ?2, next_at = ?3, error = ?4 WHERE seq = ?1",
                    )?
                    .execute(params![seq, attempts, next_at, error])
                    .map(|_| ())
                })
                .await
            }
            Outcome::SetAside { error } => {
                let error = error.clone();
                self.blocking(move |c| {
                    let tx = c.unchecked_transaction()?;
                    tx.execute(
                        "INSERT OR REPLACE INTO dead (seq, dialect, doc, error, at)
                         SELECT seq, dialect, doc, ?2, ?3 FROM pending WHERE seq = ?1",
                        params![seq, error, chrono::Utc::now().to_rfc3339()],
                    )?;
                    tx.execute("DELETE FROM pending WHERE seq = ?1", params![seq])?;
                    tx.commit()
                })
                .await
            }
        }
    }
}

impl Queue for SqliteQueue {
    fn push<'a>(
        &'a self,
        op: &'a str,
        dialect: &'a str,
        _user: &'a str,
        doc: String,
        secrets: String,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        let (op, dialect) = (op.to_owned(), dialect.to_owned());
        Box::pin(self.blocking(move |c| {
            c.prepare_cached(
                "INSERT INTO pending (op, dialect, doc, secrets) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![op, dialect, doc, secrets])
            .map(|_| ())
        }))
    }

    fn take<'a>(
        &'a self,
        now_ms: i64,
        handle: Handler<'a>,
    ) -> BoxFuture<'a, Result<Taken, BackendError>> {
        Box::pin(async move {
            let Some(raw) = self.head().await? else {
                return Ok(Taken::Empty);
            };
            if raw.next_at > now_ms {
                return Ok(Taken::NotDue(raw.next_at - now_ms));
            }
            let outcome = handle(raw.clone()).await;
            self.record(&raw, &outcome).await?;
            Ok(Taken::Handled(outcome))
        })
    }

    fn counts(&self) -> BoxFuture<'_, Result<(i64, i64), BackendError>> {
        Box::pin(self.blocking(|c| {
            let depth: i64 = c.query_row("SELECT count(*) FROM pending", [], |r| r.get(0))?;
            let dead: i64 = c.query_row("SELECT count(*) FROM dead", [], |r| r.get(0))?;
            Ok((depth, dead))
        }))
    }
}

/// Opens (creates, 0600) the queue at `queue`, its secrets sealed under the current key: the
/// connection, the sealer and how many entries were (re)sealed.
fn open_queue(
    queue: &Path,
    secrets: &crate::config::SecretsConfig,
) -> Result<(Connection, Sealer, usize), String> {
    let fail = |e: rusqlite::Error| format!("{}: {e}", queue.display());
    let conn = crate::private_fs::open_sqlite(queue)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(fail)?;
    conn.pragma_update(None, "secure_delete", "ON")
        .map_err(fail)?;
    conn.execute_batch(SCHEMA).map_err(fail)?;
    let (sealer, _) = Sealer::load(secrets, queue)?;
    let moved = seal_queue(&conn, &sealer).map_err(fail)?;
    Ok((conn, sealer, moved))
}

/// Reseals the secrets of the mirror queue at `queue` under the current key (`userbridge
/// rekey`, offline): how many entries, and that key's id.
pub fn rekey_queue(
    queue: &Path,
    secrets: &crate::config::SecretsConfig,
) -> Result<(usize, String), String> {
    let (_, sealer, moved) = open_queue(queue, secrets)?;
    Ok((moved, sealer.kid().to_owned()))
}

/// Moves the secrets a queue written before sealing kept in its documents into the sealed
/// column (entries set aside lose theirs), and reseals under the current key the entries
/// sealed under an earlier one, so that the earlier key can go once this has run; how many
/// entries changed.
fn seal_queue(conn: &Connection, sealer: &Sealer) -> Result<usize, rusqlite::Error> {
    let has_column = conn
        .prepare("SELECT 1 FROM pragma_table_info('pending') WHERE name = 'secrets'")?
        .exists([])?;
    if !has_column {
        conn.execute_batch("ALTER TABLE pending ADD COLUMN secrets TEXT NOT NULL DEFAULT '{}'")?;
    }
    let tx = conn.unchecked_transaction()?;
    let mut moved = 0usize;
    for table in ["pending", "dead"] {
        let rows: Vec<(i64, String)> = tx
            .prepare(&format!("SELECT seq, doc FROM {table}"))?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (seq, text) in rows {
            let Ok(Value::Object(mut doc)) = serde_json::from_str::<Value>(&text) else {
                continue;
            };
            let secrets = crate::backend::take_secrets(&mut doc);
            if secrets.is_empty() {
                continue;
            }
            let text = Value::Object(doc).to_string();
            if table == "pending" {
                let sealed = seal_entry(sealer, &text, &secrets)
                    .map_err(|e| rusqlite::Error::UserFunctionError(e.to_string().into()))?;
                tx.execute(
                    "UPDATE pending SET doc = ?2, secrets = ?3 WHERE seq = ?1",
                    params![seq, text, sealed],
                )?;
            } else {
                tx.execute(
                    "UPDATE dead SET doc = ?2 WHERE seq = ?1",
                    params![seq, text],
                )?;
            }
            moved += 1;
        }
    }
    let user_fn = |e: String| rusqlite::Error::UserFunctionError(e.into());
    let stale: Vec<(i64, String, String)> = tx
        .prepare("SELECT seq, doc, secrets FROM pending WHERE secrets != '{}'")?
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?
        .filter(|row| row.as_ref().map_or(true, |(_, _, s)| !sealer.is_current(s)))
        .collect::<Result<_, _>>()?;
    let resealed = stale.len();
    for (seq, doc, sealed) in stale {
        let aad = entry_aad(&doc);
        let clear = sealer.open(&aad, &sealed).map_err(user_fn)?;
        let again = sealer.seal(&aad, &clear).map_err(user_fn)?;
        tx.execute(
            "UPDATE pending SET secrets = ?2 WHERE seq = ?1",
            params![seq, again],
        )?;
    }
    tx.commit()?;
    if moved + resealed > 0 {
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    if moved > 0 {
        tracing::info!(
            entries = moved,
            "sealed the secrets the mirror queue kept in clear"
        );
    }
    if resealed > 0 {
        tracing::info!(
            entries = resealed,
            kid = sealer.kid(),
            "resealed the mirror queue's secrets under the current key"
        );
    }
    Ok(moved + resealed)
}
