//! The index of a remote backend: allocates the ext `numericId` every dialect can address a
//! user by, and maps it to the remote id. A small SQLite file beside the gateway (calls run
//! off the async workers), or — when the gateways share a PostgreSQL database — a table of it
//! ([`SharedIndex`]), so that two gateways never give one number twice.
//!
//! A number is reserved before the create is sent and bound to the remote id once the backend
//! acknowledged it. A create whose outcome is unknown (timeout) keeps its reservation unbound;
//! a later lookup by that number asks the backend and binds it then.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

use super::{BackendError, BoxFuture};

/// An index kept in a store several gateways share.
pub trait SharedIndex: Send + Sync {
    /// Reserves a new number (a positive int32).
    fn reserve(&self) -> BoxFuture<'_, Result<i64, BackendError>>;
    /// Binds a reserved (or new) number to a remote id.
    fn bind<'a>(&'a self, n: i64, remote: &'a str) -> BoxFuture<'a, Result<(), BackendError>>;
    /// Gives a reservation back.
    fn release(&self, n: i64) -> BoxFuture<'_, Result<(), BackendError>>;
    /// The remote id bound to `n`.
    fn remote(&self, n: i64) -> BoxFuture<'_, Result<Option<String>, BackendError>>;
    /// Forgets a deleted remote user.
    fn forget<'a>(&'a self, remote: &'a str) -> BoxFuture<'a, Result<(), BackendError>>;
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ids (
    numeric_id INTEGER PRIMARY KEY AUTOINCREMENT,
    remote_id  TEXT UNIQUE
);
PRAGMA user_version = 1;
";

/// The index.
#[derive(Clone)]
pub struct Index {
    kept: Kept,
}

#[derive(Clone)]
enum Kept {
    File(Arc<Mutex<Connection>>),
    Shared(Arc<dyn SharedIndex>),
}

fn db(e: rusqlite::Error) -> BackendError {
    BackendError::Failed(format!("index: {e}"))
}

impl Index {
    /// Opens (creating when needed) the index at `path`.
    pub fn open(path: &Path) -> Result<Self, String> {
        let fail = |e: rusqlite::Error| format!("{}: {e}", path.display());
        let conn = crate::private_fs::open_sqlite(path)?;
        conn.execute_batch(SCHEMA).map_err(fail)?;
        Ok(Self {
            kept: Kept::File(Arc::new(Mutex::new(conn))),
        })
    }

    /// An index kept in `shared`.
    pub fn shared(shared: Arc<dyn SharedIndex>) -> Self {
        Self {
            kept: Kept::Shared(shared),
        }
    }

    fn shared_one(&self) -> Option<&Arc<dyn SharedIndex>> {
        match &self.kept {
            Kept::Shared(s) => Some(s),
            Kept::File(_) => None,
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, BackendError> {
        let Kept::File(conn) = &self.kept else {
            return Err(BackendError::Failed("index: not a file".into()));
        };
        let conn = Arc::clone(conn);
        tokio::task::spawn_blocking(move || {
            let guard = conn
                .lock()
                .map_err(|_| BackendError::Failed("index lock poisoned".into()))?;
            f(&guard).map_err(db)
        })
        .await
        .map_err(|e| BackendError::Failed(format!("index task: {e}")))?
    }

    /// Reserves a new number (a positive int32).
    pub async fn reserve(&self) -> Result<i64, BackendError> {
        if let Some(s) = self.shared_one() {
            return s.reserve().await;
        }
        let n = self
            .run(|c| {
                c.execute("INSERT INTO ids (remote_id) VALUES (NULL)", [])?;
                Ok(c.last_insert_rowid())
            })
            .await?;
        if n > i64::from(i32::MAX) {
            return Err(BackendError::Failed("numeric ids are exhausted".into()));
        }
        Ok(n)
    }

    /// Binds a reserved (or new) number to a remote id.
    pub async fn bind(&self, n: i64, remote: &str) -> Result<(), BackendError> {
        if let Some(s) = self.shared_one() {
            return s.bind(n, remote).await;
        }
        let remote = remote.to_owned();
        self.run(move |c| {
            c.execute(
                "INSERT INTO ids (numeric_id, remote_id) VALUES (?1, ?2)
                 ON CONFLICT(numeric_id) DO UPDATE SET remote_id = excluded.remote_id",
                params![n, remote],
            )
            .map(drop)
        })
        .await
    }

    /// Gives a reservation back (the create certainly failed).
    pub async fn release(&self, n: i64) -> Result<(), BackendError> {
        if let Some(s) = self.shared_one() {
            return s.release(n).await;
        }
        self.run(move |c| {
            c.execute(
                "DELETE FROM ids WHERE numeric_id = ?1 AND remote_id IS NULL",
                params![n],
            )
            .map(drop)
        })
        .await
    }

    /// The remote id bound to `n`: `None` when unknown or not bound yet.
    pub async fn remote(&self, n: i64) -> Result<Option<String>, BackendError> {
        if let Some(s) = self.shared_one() {
            return s.remote(n).await;
        }
        self.run(move |c| {
            c.query_row(
                "SELECT remote_id FROM ids WHERE numeric_id = ?1",
                params![n],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()
            .map(Option::flatten)
        })
        .await
    }

    /// Forgets a deleted remote user.
    pub async fn forget(&self, remote: &str) -> Result<(), BackendError> {
        if let Some(s) = self.shared_one() {
            return s.forget(remote).await;
        }
        let remote = remote.to_owned();
        self.run(move |c| {
            c.execute("DELETE FROM ids WHERE remote_id = ?1", params![remote])
                .map(drop)
        })
        .await
    }
}
