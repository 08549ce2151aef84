//! PostgreSQL: the store several gateways share. Users, groups, memberships and sealed
//! secrets, as the embedded store keeps them ([`crate::backend::row`]), with the database
//! keeping the rules across instances: `userName` + `authenticator` unique by constraint,
//! numeric ids from an identity column, every operation one transaction (an update holds its
//! user's row from read to write), retried when the database reports a serialization failure
//! or a deadlock.
//!
//! The pool connects lazily: `serve` starts whatever the database is doing, `/readyz` answers
//! 503 until it answers, and the schema is migrated on the first connection that works
//! ([`schema`]). A lost connection is dropped from the pool and replaced on the next call.

mod audit;
mod groups;
mod index;
mod keys;
mod queue;
mod schema;
mod tls;
mod users;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Transaction};
use tokio::sync::OnceCell;
use tokio_postgres::error::SqlState;

use super::{
    Backend, BackendError, BoxFuture, Gauge, GroupDoc, GroupStore, Search, Store, Stored, Want,
};
use crate::canonical::{OpKind, Operation, UserDoc};
use crate::config::{GroupConfig, SecretsConfig};
use crate::redact::Secret;
use crate::sealed::Sealer;

pub use audit::AuditTable;
pub use schema::MIGRATIONS;

/// What the operations need besides the transaction.
pub struct Ctx {
    sealer: Sealer,
}

/// The pool and what every user of it shares (the backend, the idempotency keys).
struct Conn {
    pool: Pool,
    groups: Vec<GroupConfig>,
    migrated: OnceCell<usize>,
    errors: AtomicU64,
    /// Transactions run again after a serialization failure or a deadlock.
    retries: AtomicU64,
    /// `host:port/db`, for messages (never the password).
    label: String,
}

impl Conn {
    /// A pool over the database `settings` name; nothing is connected yet. The schema is
    /// migrated (and `groups` declared) by the first call that connects.
    fn open(settings: &Settings<'_>, groups: &[GroupConfig]) -> Result<Self, String> {
        let (mut pg, tls) = tls::parse(settings.url)?;
        if let Some(p) = settings.password {
            pg.password(p.expose());
        }
        pg.connect_timeout(settings.timeout);
        pg.application_name("userbridge");
        let ms = settings.timeout.as_millis();
        pg.options(format!("-c statement_timeout={ms} -c lock_timeout={ms}"));
        let label = label(&pg);
        let cfg = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match tls {
            tls::Tls::Off => Manager::from_config(pg, tokio_postgres::NoTls, cfg),
            tls::Tls::On(roots) => Manager::from_config(pg, tls::connector(roots.as_deref())?, cfg),
        };
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size.max(1))
            .wait_timeout(Some(settings.timeout))
            .create_timeout(Some(settings.timeout))
            .recycle_timeout(Some(settings.timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| format!("backend ({label}): {e}"))?;
        Ok(Self {
            pool,
            groups: groups.to_vec(),
            migrated: OnceCell::new(),
            errors: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            label,
        })
    }

    /// A connection, the schema migrated first (once per process).
    async fn client(&self) -> Result<deadpool_postgres::Object, BackendError> {
        let mut client = self.pool.get().await.map_err(|e| self.unavailable(e))?;
        self.migrated
            .get_or_try_init(|| async {
                schema::migrate(&mut client, &self.groups)
                    .await
                    .map_err(|e| self.failed(e))
            })
            .await?;
        Ok(client)
    }

    fn unavailable(&self, e: deadpool_postgres::PoolError) -> BackendError {
        self.errors.fetch_add(1, Ordering::Relaxed);
        BackendError::Unavailable(format!("{}: {e}", self.label))
    }

    /// `e` as a backend error, counted when it is the database's failure (not a conflict, a
    /// missing row or a retry).
    fn failed(&self, e: tokio_postgres::Error) -> BackendError {
        let e = db(e);
        self.count(&e);
        e
    }

    /// The error of a write whose answer the connection lost `when`: it may have been applied,
    /// so it is never run again, and not answered as "retry" (503).
    fn maybe_applied(&self, when: &str) -> BackendError {
        BackendError::Failed(format!(
            "{}: the connection was lost {when}; the write may or may not have been applied",
            self.label
        ))
    }

    fn count(&self, e: &BackendError) {
        if matches!(
            e,
            BackendError::Unavailable(_) | BackendError::Timeout | BackendError::Failed(_)
        ) {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The PostgreSQL backend.
pub struct Postgres {
    conn: Arc<Conn>,
    ctx: Arc<Ctx>,
    hashing: crate::password::Hashing,
}

/// How often a transaction the database aborted for a serialization failure or a deadlock is
/// run again.
const RETRIES: usize = 5;

/// The settings of [`Postgres::open`].
pub struct Settings<'a> {
    /// `postgres://USER@HOST:PORT/DB[?sslmode=…]`.
    pub url: &'a str,
    /// The password.
    pub password: Option<&'a Secret>,
    /// Connections kept, at most.
    pub pool_size: usize,
    /// Wait for a connection, or one statement, at most this long.
    pub timeout: Duration,
}

impl<'a> Settings<'a> {
    /// The settings of a `[backend] kind = "postgres"`; `None` for another kind.
    pub fn of(cfg: &'a crate::config::BackendConfig) -> Option<Self> {
        let crate::config::BackendConfig::Postgres {
            url,
            password,
            pool_size,
            timeout_ms,
            ..
        } = cfg
        else {
            return None;
        };
        Some(Self {
            url,
            password: password.as_ref(),
            pool_size: *pool_size,
            timeout: Duration::from_millis(*timeout_ms),
        })
    }
}

impl Postgres {
    /// A backend over the database `settings` name. Nothing is connected yet; the secrets key
    /// must be configured (every gateway must seal under the same key, so none is generated).
    pub fn open(
        settings: &Settings<'_>,
        groups: &[GroupConfig],
        secrets: &SecretsConfig,
    ) -> Result<Self, String> {
        let conn = Conn::open(settings, groups)?;
        if secrets.key.is_none() && secrets.key_file.is_none() {
            return Err(format!(
                "the postgres backend ({}) needs [secrets] key_file or \
                 USERBRIDGE_SECRETS__KEY: every gateway on the database seals users' secrets \
                 under the same key, so none is generated",
                conn.label
            ));
        }
        let (sealer, _) = Sealer::load(secrets, std::path::Path::new("."))?;
        tracing::info!(kid = sealer.kid(), store = %conn.label, "secrets key");
        Ok(Self {
            conn: Arc::new(conn),
            ctx: Arc::new(Ctx { sealer }),
            hashing: crate::password::Hashing::new(&secrets.passwords)?,
        })
    }

    fn failed(&self, e: tokio_postgres::Error) -> BackendError {
        self.conn.failed(e)
    }

    /// Runs `f` in a transaction, committed when it succeeds; run again (a few times) when
    /// the database aborted it for a serialization failure or a deadlock.
    async fn transaction<T, F>(&self, f: F) -> Result<T, BackendError>
    where
        F: for<'t> Fn(&'t Ctx, &'t Transaction<'t>) -> BoxFuture<'t, Result<T, BackendError>>,
    {
        let mut client = self.conn.client().await?;
        let mut attempt = 0;
        loop {
            let tx = client.transaction().await.map_err(|e| self.failed(e))?;
            let result = f(&self.ctx, &tx).await;
            let result = match result {
                Ok(v) => match tx.commit().await {
                    Ok(()) => Ok(v),
                    // The COMMIT was sent and its answer lost: the write may have been
                    // applied. Never run again, and not answered as "retry" (503).
                    Err(e) if lost(&e) => {
                        let e = self.conn.maybe_applied("while committing");
                        self.conn.count(&e);
                        return Err(e);
                    }
                    Err(e) => Err(Retry::Db(e)),
                },
                Err(e) => {
                    let _ = tx.rollback().await;
                    Err(Retry::Backend(e))
                }
            };
            match result {
                Ok(v) => return Ok(v),
                Err(Retry::Db(e)) if retryable(&e) && attempt < RETRIES => {
                    attempt += 1;
                    self.conn.retries.fetch_add(1, Ordering::Relaxed);
                }
                Err(Retry::Backend(e)) if run_again(&e) && attempt < RETRIES => {
                    attempt += 1;
                    self.conn.retries.fetch_add(1, Ordering::Relaxed);
                }
                Err(Retry::Db(e)) => return Err(self.failed(e)),
                Err(Retry::Backend(e)) => {
                    self.conn.count(&e);
                    return Err(e);
                }
            }
        }
    }
}

impl Postgres {
    /// Creates `op`'s user in one statement, committed by itself. An answer lost after the
    /// statement was sent is a write that may have been applied: never sent again, and not
    /// answered as "retry" (503).
    async fn alone(&self, op: Operation) -> Result<UserDoc, BackendError> {
        let client = self.conn.client().await?;
        let dead_already = client.is_closed();
        match users::create_alone(&self.ctx, &client, op).await {
            Err(BackendError::Unavailable(cause)) if !dead_already => {
                let e = self
                    .conn
                    .maybe_applied(&format!("after the create was sent ({cause})"));
                self.conn.count(&e);
                Err(e)
            }
            r => r.inspect_err(|e| self.conn.count(e)),
        }
    }
}

impl Postgres {
    /// Updates the user `op` targets (without group changes) in one transaction of two round
    /// trips: `BEGIN` queued with the locking read, the write queued with `COMMIT`. The same
    /// rules as [`users::update`]; a refusal (not found, a precondition, a taken name) rolls
    /// back. Run again, like any transaction, on a serialization failure or a deadlock.
    ///
    /// It runs as a task of its own: the request's future is dropped when its client goes
    /// away, and a transaction begun by hand must still end (committed or rolled back) before
    /// its connection goes back to the pool.
    async fn pipelined(&self, op: Operation) -> Result<UserDoc, BackendError> {
        let (conn, ctx) = (Arc::clone(&self.conn), Arc::clone(&self.ctx));
        tokio::spawn(pipelined(conn, ctx, op))
            .await
            .unwrap_or_else(|e| Err(BackendError::Failed(format!("the update stopped: {e}"))))
    }
}

/// [`Postgres::pipelined`], on its task.
async fn pipelined(
    conn: Arc<Conn>,
    ctx: Arc<Ctx>,
    mut op: Operation,
) -> Result<UserDoc, BackendError> {
    let client = conn.client().await?;
    let target = op.target.take().unwrap_or_default();
    let mut attempt = 0;
    loop {
        let result = pipelined_once(&conn, &ctx, &client, &target, op.clone()).await;
        match result {
            Err(e) if run_again(&e) && attempt < RETRIES => {
                attempt += 1;
                conn.retries.fetch_add(1, Ordering::Relaxed);
            }
            r => return r.inspect_err(|e| conn.count(e)),
        }
    }
}

async fn pipelined_once(
    conn: &Conn,
    ctx: &Ctx,
    client: &deadpool_postgres::Client,
    target: &UserDoc,
    mut op: Operation,
) -> Result<UserDoc, BackendError> {
    // `biased`: polled in the order written, so sent in that order — BEGIN first, the
    // statement and the locking read right behind it.
    let (begun, stmt, read) = tokio::join!(
        biased;
        client.batch_execute("BEGIN"),
        users::update_statement(client),
        users::resolve(ctx, client, target, true),
    );
    if let Err(e) = begun {
        // Nothing was written (the read, if it ran, ran outside a transaction).
        return Err(db(e));
    }
    let prepared = match (stmt, read) {
        (Ok(stmt), Ok(read)) => users::merged(read, &mut op).map(|m| (stmt, m)),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    let (stmt, m) = match prepared {
        Ok(p) => p,
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(e);
        }
    };
    let groups = m.groups;
    // The write is sent when first polled, COMMIT right behind it.
    let (written, committed) = tokio::join!(
        biased;
        users::write_row(ctx, client, &stmt, m.row, m.doc, m.secrets),
        client.batch_execute("COMMIT"),
    );
    match (written, committed) {
        (Ok(w), Ok(())) => Ok(UserDoc(w.into_doc(groups, true))),
        // The COMMIT (or the write) was sent and its answer lost: it may have been applied.
        (_, Err(e)) if lost(&e) => Err(conn.maybe_applied("while committing")),
        // The write was refused: the COMMIT of the failed transaction rolled it back.
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(db(e)),
    }
}

/// An indexed condition that every user `query`'s filter selects satisfies, if the filter
/// has one at its top (alone, or in an `and`): a [`Lookup`](crate::filter::Lookup).
fn narrowing(query: &super::Query) -> Option<(&'static str, String)> {
    use crate::filter::{Filter, Lookup, Op};
    fn of(f: &Filter) -> Option<(&'static str, String)> {
        match f {
            Filter::Compare(c) if c.op == Op::Eq => match Lookup::of_eq(&c.attr, &c.value)? {
                Lookup::UserName(s) => Some(("lower(user_name) = lower($1)", s.to_owned())),
                Lookup::Id(s) => Some(("id = $1", s.to_owned())),
            },
            Filter::And(all) => all.iter().find_map(of),
            _ => None,
        }
    }
    of(query.filter.as_ref()?)
}

enum Retry {
    Db(tokio_postgres::Error),
    Backend(BackendError),
}

impl From<tokio_postgres::Error> for Retry {
    fn from(e: tokio_postgres::Error) -> Self {
        Retry::Db(e)
    }
}

/// How [`db`] marks an error the transaction may be run again for.
const RETRY_MARK: &str = "store: retry: ";

/// Whether `e` is a serialization failure or a deadlock ([`db`] marked it): the transaction
/// may be run again.
fn run_again(e: &BackendError) -> bool {
    matches!(e, BackendError::Failed(m) if m.starts_with(RETRY_MARK))
}

fn retryable(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    })
}

/// Whether `e` is a unique constraint violation.
fn conflict(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// Whether `e` is a lost connection: closed, an I/O error (no answer from the server), a
/// connection exception (class 08), or the server ending the session (shut down, restarting,
/// `pg_terminate_backend`: 57P01–57P03).
fn lost(e: &tokio_postgres::Error) -> bool {
    let Some(code) = e.code() else {
        return true;
    };
    e.is_closed()
        || code.code().starts_with("08")
        || *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CRASH_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
}

/// A database error as a backend error: a lost or refused connection before the commit is
/// `Unavailable` (503: the transaction rolled back), a uniqueness violation a conflict, a
/// statement or lock wait cut at `timeout_ms` a timeout (504; rolled back too), the rest a
/// failure.
fn db(e: tokio_postgres::Error) -> BackendError {
    if retryable(&e) {
        return BackendError::Failed(format!("{RETRY_MARK}{e}"));
    }
    if conflict(&e) {
        return BackendError::Conflict("a user with this userName and authenticator exists".into());
    }
    if lost(&e) {
        return BackendError::Unavailable(format!("PostgreSQL: {e}"));
    }
    if e.code() == Some(&SqlState::QUERY_CANCELED)
        || e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE)
    {
        return BackendError::Timeout;
    }
    if e.code() == Some(&SqlState::SEQUENCE_GENERATOR_LIMIT_EXCEEDED) {
        return BackendError::Failed("numeric ids are exhausted".into());
    }
    BackendError::Failed(format!("store: {e}"))
}

/// `host:port/db` of a connection config.
fn label(pg: &tokio_postgres::Config) -> String {
    let host = pg
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_default();
    let port = pg.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", pg.get_dbname().unwrap_or(""))
}

impl Backend for Postgres {
    fn kind(&self) -> &'static str {
        "postgres"
    }

    fn apply(&self, mut op: Operation, _: Want) -> BoxFuture<'_, Result<Stored, BackendError>> {
        Box::pin(async move {
            crate::password::hash_in(&self.hashing, &mut op.user.0).await?;
            match (op.operation, op.groups.is_none()) {
                // One statement: no transaction around it.
                (OpKind::Create, true) => return self.alone(op).await.map(Stored::from_doc),
                // Two round trips: BEGIN with the read, the write with COMMIT.
                (OpKind::Update, true) => return self.pipelined(op).await.map(Stored::from_doc),
                _ => {}
            }
            let op = &op;
            let stored = self
                .transaction(move |ctx, tx| {
                    let op = op.clone();
                    Box::pin(async move {
                        match op.operation {
                            OpKind::Create => users::create(ctx, tx, op).await,
                            OpKind::Update => users::update(ctx, tx, op).await,
                            OpKind::Delete => users::delete(ctx, tx, op).await,
                        }
                    })
                })
                .await?;
            Ok(Stored::from_doc(stored))
        })
    }

    fn ready(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let client = self.conn.client().await?;
            client
                .simple_query("SELECT 1")
                .await
                .map(|_| ())
                .map_err(|e| self.failed(e))
        })
    }

    fn store(&self) -> Option<&dyn Store> {
        Some(self)
    }

    fn idempotency_keys(&self) -> Option<Arc<dyn super::keys::KeyStore>> {
        Some(Arc::new(keys::PgKeys::new(Arc::clone(&self.conn))))
    }

    fn scim_index(&self, scim: &crate::config::BackendConfig) -> Option<super::index::Index> {
        let crate::config::BackendConfig::Scim { url, .. } = scim else {
            return None;
        };
        let shared = index::PgIndex::new(Arc::clone(&self.conn), url.clone());
        Some(super::index::Index::shared(Arc::new(shared)))
    }

    fn mirror_queue(&self) -> Option<Arc<dyn super::mirror::Queue>> {
        Some(Arc::new(queue::PgQueue::new(Arc::clone(&self.conn))))
    }

    fn gauges(&self) -> Vec<Gauge> {
        let status = self.conn.pool.status();
        let level = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        vec![
            Gauge {
                name: "postgres_pool_size",
                help: "Connections the pool holds now",
                value: level(status.size),
                counter: false,
            },
            Gauge {
                name: "postgres_pool_available",
                help: "Connections idle in the pool",
                value: level(status.available),
                counter: false,
            },
            Gauge {
                name: "postgres_pool_waiting",
                help: "Requests waiting for a connection",
                value: level(status.waiting),
                counter: false,
            },
            Gauge {
                name: "postgres_errors",
                help: "Database calls that failed (connections refused or lost included)",
                value: Gauge::value_of(&self.conn.errors),
                counter: true,
            },
            Gauge {
                name: "postgres_retries",
                help: "Transactions run again after a serialization failure or a deadlock",
                value: Gauge::value_of(&self.conn.retries),
                counter: true,
            },
        ]
    }
}

impl Postgres {
    fn read_one(
        &self,
        cond: &'static str,
        arg: String,
        with_secrets: bool,
    ) -> BoxFuture<'_, Result<Option<UserDoc>, BackendError>> {
        Box::pin(async move {
            // One statement: no transaction around it.
            let client = self.conn.client().await?;
            let found = users::find(&self.ctx, &client, cond, &[&arg], false)
                .await
                .inspect_err(|e| self.conn.count(e))?;
            Ok(found.map(|r| r.into_doc(with_secrets)))
        })
    }

    /// A page of users in creation order, after `cond` (with `args`), and how many there are.
    async fn page(
        &self,
        cond: &'static str,
        arg: Option<String>,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<UserDoc>, usize), BackendError> {
        let (offset, limit) = (
            i64::try_from(offset).unwrap_or(i64::MAX),
            i64::try_from(limit).unwrap_or(i64::MAX),
        );
        self.transaction(move |ctx, tx| {
            let arg = arg.clone();
            Box::pin(async move {
                let (count, rows) = match &arg {
                    Some(a) => {
                        let c: i64 = tx
                            .query_one(&format!("SELECT count(*) FROM users WHERE {cond}"), &[a])
                            .await
                            .map_err(db)?
                            .get(0);
                        let rows = tx
                            .query(
                                &format!(
                                    "{} WHERE {cond} ORDER BY numeric_id LIMIT $2 OFFSET $3",
                                    users::COLUMNS
                                ),
                                &[a, &limit, &offset],
                            )
                            .await
                            .map_err(db)?;
                        (c, rows)
                    }
                    None => {
                        let c: i64 = tx
                            .query_one("SELECT count(*) FROM users", &[])
                            .await
                            .map_err(db)?
                            .get(0);
                        let rows = tx
                            .query(
                                &format!(
                                    "{} ORDER BY numeric_id LIMIT $1 OFFSET $2",
                                    users::COLUMNS
                                ),
                                &[&limit, &offset],
                            )
                            .await
                            .map_err(db)?;
                        (c, rows)
                    }
                };
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    out.push(users::row(ctx, r, false)?.into_doc(false));
                }
                Ok((out, usize::try_from(count).unwrap_or(0)))
            })
        })
        .await
    }
}

impl Store for Postgres {
    fn get(&self, id: &str) -> BoxFuture<'_, Result<Option<UserDoc>, BackendError>> {
        self.read_one("id = $1", id.to_owned(), false)
    }

    fn get_with_secrets(&self, id: &str) -> BoxFuture<'_, Result<Option<UserDoc>, BackendError>> {
        self.read_one("id = $1", id.to_owned(), true)
    }

    fn keeps_secrets(&self) -> bool {
        true
    }

    fn group_store(&self) -> Option<&dyn GroupStore> {
        Some(self)
    }

    fn find(&self, target: &UserDoc) -> BoxFuture<'_, Result<Option<UserDoc>, BackendError>> {
        let target = target.clone();
        Box::pin(async move {
            // One statement: no transaction around it.
            let client = self.conn.client().await?;
            match users::resolve(&self.ctx, &client, &target, false).await {
                Ok(r) => Ok(Some(r.into_doc(false))),
                Err(BackendError::NotFound) => Ok(None),
                Err(e) => {
                    self.conn.count(&e);
                    Err(e)
                }
            }
        })
    }

    fn list(
        &self,
        user_name: Option<String>,
        start: usize,
        count: usize,
    ) -> BoxFuture<'_, Result<(Vec<UserDoc>, usize), BackendError>> {
        Box::pin(async move {
            match user_name {
                Some(n) => self.page("user_name = $1", Some(n), start, count).await,
                None => self.page("", None, start, count).await,
            }
        })
    }

    fn query(
        &self,
        query: super::Query,
    ) -> BoxFuture<'_, Result<(Vec<UserDoc>, usize), BackendError>> {
        Box::pin(async move {
            match narrowing(&query) {
                // The users the filter can select, by an index; the filter itself (its meaning
                // as everywhere else) then runs on those.
                Some((cond, arg)) => {
                    let (candidates, _) = self.page(cond, Some(arg), 0, super::MAX_SCAN).await?;
                    Ok(query.select(candidates))
                }
                None => query.scan(self).await,
            }
        })
    }

    fn search(&self, search: Search) -> BoxFuture<'_, Result<(Vec<UserDoc>, usize), BackendError>> {
        Box::pin(async move {
            let Some(text) = search.text.clone() else {
                return self.page("", None, search.offset, search.limit).await;
            };
            // The rows whose document holds the text (as its JSON writes it, when it is plain
            // ASCII), each then checked on the attributes searched.
            let plain = text
                .chars()
                .all(|c| c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\');
            let needle = if plain {
                text.to_ascii_lowercase()
            } else {
                String::new()
            };
            let (candidates, _) = self
                .page(
                    "strpos(lower(doc::text), $1) > 0",
                    Some(needle),
                    0,
                    super::MAX_SCAN + 1,
                )
                .await?;
            if candidates.len() > super::MAX_SCAN {
                return Err(BackendError::TooMany(format!(
                    "the search reads more than {} users: narrow it",
                    super::MAX_SCAN
                )));
            }
            let (mut users, mut total) = (Vec::new(), 0);
            for u in candidates {
                if search.matches(&u) {
                    if total >= search.offset && users.len() < search.limit {
                        users.push(u);
                    }
                    total += 1;
                }
            }
            Ok((users, total))
        })
    }

    fn create(&self, mut user: UserDoc) -> BoxFuture<'_, Result<UserDoc, BackendError>> {
        Box::pin(async move {
            crate::password::hash_in(&self.hashing, &mut user.0).await?;
            let op = Operation::scim_create(user);
            let op = &op;
            self.transaction(move |ctx, tx| Box::pin(users::create(ctx, tx, op.clone())))
                .await
        })
    }

    fn replace(
        &self,
        id: &str,
        mut user: UserDoc,
        if_match: Option<&str>,
    ) -> BoxFuture<'_, Result<UserDoc, BackendError>> {
        let id = id.to_owned();
        let if_match = if_match.map(str::to_owned);
        Box::pin(async move {
            crate::password::hash_in(&self.hashing, &mut user.0).await?;
            self.transaction(move |ctx, tx| {
                let (id, if_match, user) = (id.clone(), if_match.clone(), user.clone());
                Box::pin(async move {
                    let Some(users::Read { row: r, groups }) =
                        users::find(ctx, tx, "id = $1", &[&id], true).await?
                    else {
                        return Err(BackendError::NotFound);
                    };
                    r.check_version(if_match.as_deref())?;
                    let (doc, secrets) = crate::backend::row::for_replace(&r, user.0);
                    let stmt = users::update_statement(tx).await?;
                    let written = users::write_row(ctx, tx, &stmt, r, doc, secrets).await?;
                    // A replace leaves the user's groups as they are (read with the row).
                    Ok(UserDoc(written.into_doc(groups, false)))
                })
            })
            .await
        })
    }

    fn delete(
        &self,
        id: &str,
        if_match: Option<&str>,
    ) -> BoxFuture<'_, Result<bool, BackendError>> {
        let id = id.to_owned();
        let if_match = if_match.map(str::to_owned);
        Box::pin(async move {
            self.transaction(move |ctx, tx| {
                let (id, if_match) = (id.clone(), if_match.clone());
                Box::pin(async move {
                    let Some(r) = users::find(ctx, tx, "id = $1", &[&id], true).await? else {
                        return Ok(false);
                    };
                    r.row.check_version(if_match.as_deref())?;
                    let n = tx
                        .execute("DELETE FROM users WHERE id = $1", &[&id])
                        .await
                        .map_err(db)?;
                    Ok(n > 0)
                })
            })
            .await
        })
    }

    fn verify_password(
        &self,
        id: &str,
        clear: String,
    ) -> BoxFuture<'_, Result<Option<bool>, BackendError>> {
        let id = id.to_owned();
        Box::pin(async move {
            let phc = self
                .transaction(move |ctx, tx| {
                    let id = id.clone();
                    Box::pin(async move {
                        let r = users::find(ctx, tx, "id = $1", &[&id], false).await?;
                        Ok(r.and_then(|r| {
                            r.row
                                .secrets
                                .get("password")?
                                .get(crate::password::PHC)?
                                .as_str()
                                .map(str::to_owned)
                        }))
                    })
                })
                .await?;
            match phc {
                Some(phc) => Ok(Some(crate::password::verify(phc, clear).await)),
                None => Ok(Some(false)),
            }
        })
    }
}

impl GroupStore for Postgres {
    fn get_group(&self, id: &str) -> BoxFuture<'_, Result<Option<GroupDoc>, BackendError>> {
        let id = id.to_owned();
        Box::pin(self.transaction(move |_, tx| {
            let id = id.clone();
            Box::pin(async move { groups::get(tx, &id).await })
        }))
    }

    fn all_groups(&self) -> BoxFuture<'_, Result<Vec<GroupDoc>, BackendError>> {
        Box::pin(self.transaction(|_, tx| Box::pin(groups::all(tx))))
    }

    fn create_group(&self, group: GroupDoc) -> BoxFuture<'_, Result<GroupDoc, BackendError>> {
        Box::pin(self.transaction(move |_, tx| {
            let group = group.clone();
            Box::pin(async move { groups::create(tx, &group).await })
        }))
    }

    fn replace_group(
        &self,
        id: &str,
        group: GroupDoc,
        if_match: Option<&str>,
    ) -> BoxFuture<'_, Result<GroupDoc, BackendError>> {
        let (id, if_match) = (id.to_owned(), if_match.map(str::to_owned));
        Box::pin(self.transaction(move |_, tx| {
            let (id, group, if_match) = (id.clone(), group.clone(), if_match.clone());
            Box::pin(async move { groups::replace(tx, &id, &group, if_match.as_deref()).await })
        }))
    }

    fn delete_group(
        &self,
        id: &str,
        if_match: Option<&str>,
    ) -> BoxFuture<'_, Result<bool, BackendError>> {
        let (id, if_match) = (id.to_owned(), if_match.map(str::to_owned));
        Box::pin(self.transaction(move |_, tx| {
            let (id, if_match) = (id.clone(), if_match.clone());
            Box::pin(async move { groups::delete(tx, &id, if_match.as_deref()).await })
        }))
    }
}
