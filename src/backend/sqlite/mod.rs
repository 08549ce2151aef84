//! The embedded canonical store: one SQLite file (rusqlite, bundled).
//!
//! Every user has a canonical `id` (UUID) and an ext `numericId` (a positive int32, the row id),
//! so that every dialect can address the same user. `userName` + ext `authenticator` are
//! unique. Each operation is all or nothing (a savepoint of its own) and runs on the store's
//! writer thread ([`writer`]), never on the async workers; the operations waiting together
//! share one commit. Secret attributes are kept in their own column and never returned by a
//! read of the `/scim/v2` ingress.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value};

use super::row::{
    GroupPick, UserRow as Row, for_create, for_replace, group_number, merge_into,
    name_and_authenticator, no_group_named, now, pick_group,
};
use super::{
    Backend, BackendError, BoxFuture, Gauge, GroupDoc, GroupStore, Query, Search, Store, Stored,
    Want,
};
use crate::canonical::{GroupChange, GroupOp, OpKind, Operation, Target, UserDoc};
use crate::config::GroupConfig;

mod groups;
mod passwords;
mod query;
mod seal;
mod writer;
use writer::Writer;

/// The schema, created or migrated at start. `PRAGMA user_version` holds its version.
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    numeric_id    INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    user_name     TEXT NOT NULL,
    authenticator TEXT NOT NULL DEFAULT '',
    doc           TEXT NOT NULL,
    secrets       TEXT NOT NULL DEFAULT '{}',
    created       TEXT NOT NULL,
    modified      TEXT NOT NULL,
    version       INTEGER NOT NULL DEFAULT 1,
    UNIQUE (user_name, authenticator)
);
CREATE TABLE IF NOT EXISTS groups (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS members (
    user_numeric_id INTEGER NOT NULL REFERENCES users(numeric_id) ON DELETE CASCADE,
    group_id        INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    PRIMARY KEY (user_numeric_id, group_id)
);
PRAGMA user_version = 1;
";

/// The SQLite backend.
pub struct Sqlite {
    writer: Writer,
    resealed: usize,
    kid: String,
    hashing: crate::password::Hashing,
}

impl Sqlite {
    /// How many users' secrets this open resealed (from clear, or from an earlier key), and
    /// the id of the key they are sealed under now.
    pub fn resealed(&self) -> (usize, &str) {
        (self.resealed, &self.kid)
    }

    /// Opens (creating when needed) the database at `path` and declares `groups`; users'
    /// secrets are sealed under the key `secrets` names ([`crate::sealed`]).
    pub fn open(
        path: &Path,
        groups: &[GroupConfig],
        secrets: &crate::config::SecretsConfig,
    ) -> Result<Self, String> {
        let fail = |e: rusqlite::Error| format!("{}: {e}", path.display());
        let mut conn = crate::private_fs::open_sqlite(path)?;
        // Every statement the store runs stays prepared (rusqlite keeps 16 by default; the
        // store has more, and an evicted one is parsed again on its next use).
        conn.set_prepared_statement_cache_capacity(64);
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(fail)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(fail)?;
        // Deleted content is overwritten, so that a secret rewritten sealed leaves no clear
        // copy in a free page.
        conn.pragma_update(None, "secure_delete", "ON")
            .map_err(fail)?;
        conn.execute_batch(SCHEMA).map_err(fail)?;
        let kid = seal::register(&conn, path, secrets)?;
        let hashing = crate::password::Hashing::new(&secrets.passwords)?;
        conn.execute_batch(query::INDEX).map_err(fail)?;
        groups::migrate(&conn).map_err(fail)?;
        query::register(&conn).map_err(fail)?;
        let tx = conn.transaction().map_err(fail)?;
        for g in groups {
            tx.execute(
                "INSERT INTO groups (id, name) VALUES (?1, ?2)
                 ON CONFLICT(id) DO UPDATE SET name = excluded.name",
                params![g.id, g.name],
            )
            .map_err(fail)?;
        }
        groups::stamp(&tx).map_err(fail)?;
        let resealed = seal::migrate(&tx, &kid).map_err(fail)?;
        let hashed = passwords::migrate(&tx, &hashing)
            .map_err(|e| format!("{}: hashing the stored passwords: {e}", path.display()))?;
        tx.commit().map_err(fail)?;
        if hashed > 0 {
            tracing::warn!(
                users = hashed,
                store = %path.display(),
                "replaced the clear passwords this store kept by their Argon2id hashes"
            );
        }
        if resealed > 0 || hashed > 0 {
            // The clear versions are gone from the WAL too.
            conn.pragma_update(None, "wal_checkpoint", "TRUNCATE")
                .map_err(fail)?;
            tracing::warn!(
                users = resealed,
                store = %path.display(),
                kid = %kid,
                "sealed under the current key the secrets this store kept in clear or under an \
                 earlier key"
            );
        }
        Ok(Self {
            writer: Writer::start(conn)?,
            resealed,
            kid,
            hashing,
        })
    }

    /// Runs `f` on the store's connection, inside a transaction shared with the operations
    /// waiting beside it, and answers once that transaction committed.
    fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, BackendError> + Send + 'static,
    ) -> BoxFuture<'_, Result<T, BackendError>> {
        Box::pin(self.writer.run(f))
    }
}

fn json(e: serde_json::Error) -> BackendError {
    BackendError::Failed(format!("store: {e}"))
}

fn db(e: rusqlite::Error) -> BackendError {
    if let rusqlite::Error::SqliteFailure(f, _) = &e
        && f.code == rusqlite::ErrorCode::ConstraintViolation
    {
        return BackendError::Conflict("a user with this userName and authenticator exists".into());
    }
    BackendError::Failed(format!("store: {e}"))
}

impl Backend for Sqlite {
    fn kind(&self) -> &'static str {
        "sqlite"
    }

    fn apply(&self, mut op: Operation, _: Want) -> BoxFuture<'_, Result<Stored, BackendError>> {
        Box::pin(async move {
            passwords::hash_in(&self.hashing, &mut op.user.0).await?;
            self.blocking(move |tx| {
                let stored = match op.operation {
                    OpKind::Create => create(tx, op)?,
                    OpKind::Update => update(tx, op)?,
                    OpKind::Delete => delete(tx, op)?,
                };
                Ok(Stored::from_doc(stored))
            })
            .await
        })
    }

    fn ready(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        self.blocking(|conn| {
            conn.query_row("SELECT 1", [], |_| Ok(()))
                .map_err(|e| BackendError::Unavailable(e.to_string()))
        })
    }

    fn store(&self) -> Option<&dyn Store> {
        Some(self)
    }

    fn gauges(&self) -> Vec<Gauge> {
        let c = self.writer.counts();
        vec![
            Gauge {
                name: "sqlite_commits",
                help: "Transactions the store committed (operations waiting together share one)",
                value: Gauge::value_of(&c.commits),
                counter: true,
            },
            Gauge {
                name: "sqlite_operations",
                help: "Operations the store ran in committed transactions",
                value: Gauge::value_of(&c.operations),
                counter: true,
            },
        ]
    }
}

impl Sqlite {
    fn get_doc(
        &self,
        id: &str,
        with_secrets: bool,
    ) -> BoxFuture<'_, Result<Option<UserDoc>, BackendError>> {
        let id = id.to_owned();
        self.blocking(move |tx| {
            let row = find(tx, "id = ?1", &[&id as &dyn rusqlite::ToSql])?;
            match row {
                Some(r) => Ok(Some(UserDoc(into_doc(tx, r, with_secrets)?))),
                None => Ok(None),
            }
        })
    }
}

impl Store for Sqlite {
    fn get(&self, id: &str) -> BoxFuture<'_, Result<Option<UserDoc>, BackendError>> {
        self.get_doc(id, false)
    }

    fn find(&self, target: &UserDoc) -> BoxFuture<'_, Result<Option<UserDoc>, BackendError>> {
        // The user without its secrets: what a read renders, or a webhook receiver answers.
        let target = target.clone();
        self.blocking(move |tx| match resolve(tx, &target) {
            Ok(r) => Ok(Some(UserDoc(into_doc(tx, r, false)?))),
            Err(BackendError::NotFound) => Ok(None),
            Err(e) => Err(e),
        })
    }

    fn search(&self, search: Search) -> BoxFuture<'_, Result<(Vec<UserDoc>, usize), BackendError>> {
        self.blocking(move |tx| search_users(tx, &search))
    }

    fn query(&self, q: Query) -> BoxFuture<'_, Result<(Vec<UserDoc>, usize), BackendError>> {
        self.blocking(move |tx| query::run(tx, &q))
    }

    fn group_store(&self) -> Option<&dyn GroupStore> {
        Some(self)
    }

    fn keeps_secrets(&self) -> bool {
        true
    }

    fn get_with_secrets(&self, id: &str) -> BoxFuture<'_, Result<Option<UserDoc>, BackendError>> {
        self.get_doc(id, true)
    }

    fn verify_password(
        &self,
        id: &str,
        clear: String,
    ) -> BoxFuture<'_, Result<Option<bool>, BackendError>> {
        let id = id.to_owned();
        Box::pin(async move {
            let Some(phc) = self
                .blocking(move |tx| passwords::stored_hash(tx, &id))
                .await?
            else {
                return Ok(Some(false));
            };
            Ok(Some(crate::password::verify(phc, clear).await))
        })
    }

    fn list(
        &self,
        user_name: Option<String>,
        start: usize,
        count: usize,
    ) -> BoxFuture<'_, Result<(Vec<UserDoc>, usize), BackendError>> {
        self.blocking(move |tx| {
            let (filter, args): (&str, Vec<&dyn rusqlite::ToSql>) = match &user_name {
                Some(n) => ("WHERE user_name = ?1", vec![n]),
                None => ("", vec![]),
            };
            let total: i64 = tx
                .query_row(
                    &format!("SELECT count(*) FROM users {filter}"),
                    args.as_slice(),
                    |r| r.get(0),
                )
                .map_err(db)?;
            let mut stmt = tx
                .prepare(&format!(
                    "SELECT numeric_id, id, doc, '{{}}', created, modified, version FROM users {filter}
                     ORDER BY numeric_id LIMIT {count} OFFSET {start}"
                ))
                .map_err(db)?;
            let rows: Vec<Row> = stmt
                .query_map(args.as_slice(), row)
                .map_err(db)?
                .collect::<Result<_, _>>()
                .map_err(db)?;
            drop(stmt);
            let mut users = Vec::with_capacity(rows.len());
            for r in rows {
                users.push(UserDoc(into_doc(tx, r, false)?));
            }
            Ok((users, usize::try_from(total).unwrap_or(0)))
        })
    }

    fn create(&self, mut user: UserDoc) -> BoxFuture<'_, Result<UserDoc, BackendError>> {
        Box::pin(async move {
            passwords::hash_in(&self.hashing, &mut user.0).await?;
            self.blocking(move |tx| {
                let stored = create(tx, Operation::scim_create(user))?;
                Ok(stored)
            })
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
            passwords::hash_in(&self.hashing, &mut user.0).await?;
            self.blocking(move |tx| {
                let Some(r) = find(tx, "id = ?1", &[&id as &dyn rusqlite::ToSql])? else {
                    return Err(BackendError::NotFound);
                };
                r.check_version(if_match.as_deref())?;
                let (doc, secrets) = for_replace(&r, user.0);
                let written = write_row(tx, r, doc, secrets)?;
                Ok(UserDoc(into_doc(tx, written, false)?))
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
        self.blocking(move |conn| {
            if let Some(h) = &if_match {
                match find(conn, "id = ?1", &[&id as &dyn rusqlite::ToSql])? {
                    Some(r) => r.check_version(Some(h))?,
                    None => return Ok(false),
                }
            }
            let n = conn
                .execute("DELETE FROM users WHERE id = ?1", params![id])
                .map_err(db)?;
            Ok(n > 0)
        })
    }
}

impl GroupStore for Sqlite {
    fn get_group(&self, id: &str) -> BoxFuture<'_, Result<Option<GroupDoc>, BackendError>> {
        let id = id.to_owned();
        self.blocking(move |tx| groups::get(tx, &id))
    }

    fn all_groups(&self) -> BoxFuture<'_, Result<Vec<GroupDoc>, BackendError>> {
        self.blocking(groups::all)
    }

    fn create_group(&self, group: GroupDoc) -> BoxFuture<'_, Result<GroupDoc, BackendError>> {
        self.blocking(move |tx| groups::create(tx, &group))
    }

    fn replace_group(
        &self,
        id: &str,
        group: GroupDoc,
        if_match: Option<&str>,
    ) -> BoxFuture<'_, Result<GroupDoc, BackendError>> {
        let (id, if_match) = (id.to_owned(), if_match.map(str::to_owned));
        self.blocking(move |tx| groups::replace(tx, &id, &group, if_match.as_deref()))
    }

    fn delete_group(
        &self,
        id: &str,
        if_match: Option<&str>,
    ) -> BoxFuture<'_, Result<bool, BackendError>> {
        let (id, if_match) = (id.to_owned(), if_match.map(str::to_owned));
        self.blocking(move |tx| groups::delete(tx, &id, if_match.as_deref()))
    }
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let parse = |i: usize, s: String| {
        serde_json::from_str::<Map<String, Value>>(&s).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
        })
    };
    Ok(Row {
        numeric_id: r.get(0)?,
        id: r.get(1)?,
        doc: parse(2, r.get(2)?)?,
        secrets: parse(3, r.get(3)?)?,
        created: r.get(4)?,
        modified: r.get(5)?,
        version: r.get(6)?,
    })
}

fn find(
    tx: &Connection,
    cond: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<Option<Row>, BackendError> {
    tx.prepare_cached(&format!(
        "SELECT numeric_id, id, doc, ub_open(id, secrets), created, modified, version FROM users WHERE {cond}"
    ))
    .map_err(db)?
    .query_row(args, row)
    .optional()
    .map_err(db)
}

fn find_by_numeric(tx: &Connection, n: i64) -> Result<Row, BackendError> {
    find(tx, "numeric_id = ?1", &[&n as &dyn rusqlite::ToSql])?.ok_or(BackendError::NotFound)
}

/// The user a target names, or `NotFound`.
fn resolve(tx: &Connection, target: &UserDoc) -> Result<Row, BackendError> {
    let found = match Target::of(target).ok_or(BackendError::NotFound)? {
        Target::Id(id) => find(tx, "id = ?1", &[&id as &dyn rusqlite::ToSql])?,
        Target::NumericId(n) => return find_by_numeric(tx, n),
        Target::Name {
            user_name,
            authenticator,
        } => find(
            tx,
            "user_name = ?1 AND authenticator = ?2",
            &[&user_name as &dyn rusqlite::ToSql, &authenticator],
        )?,
    };
    found.ok_or(BackendError::NotFound)
}

/// The users `search` names. Without a text, a page of the table; with one, the rows whose
/// document holds it are read (a prefilter in SQL where the text is plain ASCII, as the stored
/// JSON writes it) and each is checked on the attributes searched.
fn search_users(tx: &Connection, search: &Search) -> Result<(Vec<UserDoc>, usize), BackendError> {
    const COLUMNS: &str = "SELECT numeric_id, id, doc, '{}', created, modified, version FROM users";
    let Some(text) = &search.text else {
        let total: i64 = tx
            .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
            .map_err(db)?;
        let mut stmt = tx
            .prepare_cached(&format!("{COLUMNS} ORDER BY numeric_id LIMIT ?1 OFFSET ?2"))
            .map_err(db)?;
        let rows: Vec<Row> = stmt
            .query_map(
                params![
                    i64::try_from(search.limit).unwrap_or(i64::MAX),
                    i64::try_from(search.offset).unwrap_or(i64::MAX)
                ],
                row,
            )
            .map_err(db)?
            .collect::<Result<_, _>>()
            .map_err(db)?;
        drop(stmt);
        let users = rows
            .into_iter()
            .map(|r| into_doc(tx, r, false).map(UserDoc))
            .collect::<Result<_, _>>()?;
        return Ok((users, usize::try_from(total).unwrap_or(0)));
    };
    let plain = text
        .chars()
        .all(|c| c.is_ascii() && !c.is_ascii_control() && c != '"' && c != '\\');
    let needle = text.to_ascii_lowercase();
    let mut stmt = if plain {
        tx.prepare_cached(&format!(
            "{COLUMNS} WHERE instr(lower(doc), ?1) > 0 ORDER BY numeric_id"
        ))
    } else {
        tx.prepare_cached(&format!(
            "{COLUMNS} WHERE ?1 IS NOT NULL ORDER BY numeric_id"
        ))
    }
    .map_err(db)?;
    let rows: Vec<Row> = stmt
        .query_map(params![needle], row)
        .map_err(db)?
        .collect::<Result<_, _>>()
        .map_err(db)?;
    drop(stmt);
    let (mut users, mut total) = (Vec::new(), 0);
    for r in rows {
        let user = UserDoc(into_doc(tx, r, false)?);
        if search.matches(&user) {
            if total >= search.offset && users.len() < search.limit {
                users.push(user);
            }
            total += 1;
        }
    }
    Ok((users, total))
}

/// Deletes the user a delete's target names; the user as it was (without secrets).
fn delete(tx: &Connection, op: Operation) -> Result<UserDoc, BackendError> {
    let target = op.target.unwrap_or_default();
    let r = resolve(tx, &target)?;
    let numeric_id = r.numeric_id;
    let gone = UserDoc(into_doc(tx, r, false)?);
    tx.prepare_cached("DELETE FROM users WHERE numeric_id = ?1")
        .map_err(db)?
        .execute(params![numeric_id])
        .map_err(db)?;
    Ok(gone)
}

fn create(tx: &Connection, op: Operation) -> Result<UserDoc, BackendError> {
    let (doc, secrets) = for_create(op.user.0);
    let (name, auth) = name_and_authenticator(&doc)?;
    let exists: Option<i64> = tx
        .prepare_cached("SELECT numeric_id FROM users WHERE user_name = ?1 AND authenticator = ?2")
        .map_err(db)?
        .query_row(params![name, auth], |r| r.get(0))
        .optional()
        .map_err(db)?;
    if exists.is_some() {
        return Err(BackendError::Conflict(
            "a user with this userName and authenticator exists".into(),
        ));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let ts = now();
    tx.prepare_cached(
        "INSERT INTO users (id, user_name, authenticator, doc, secrets, created, modified)
         VALUES (?1, ?2, ?3, ?4, ub_seal(?1, ?5), ?6, ?6)",
    )
    .map_err(db)?
    .execute(params![
        id,
        name,
        auth,
        serde_json::to_string(&doc).map_err(json)?,
        serde_json::to_string(&secrets).map_err(json)?,
        ts
    ])
    .map_err(db)?;
    let numeric_id = tx.last_insert_rowid();
    if numeric_id > i64::from(i32::MAX) {
        return Err(BackendError::Failed("numeric ids are exhausted".into()));
    }
    if let Some(g) = &op.groups {
        apply_groups(tx, numeric_id, g)?;
    }
    // The stored user is what was just written: no read back.
    let written = Row {
        numeric_id,
        id,
        doc,
        secrets,
        modified: ts.clone(),
        created: ts,
        version: 1,
    };
    Ok(UserDoc(into_doc(tx, written, true)?))
}

fn update(tx: &Connection, mut op: Operation) -> Result<UserDoc, BackendError> {
    let target = op.target.clone().unwrap_or_default();
    let mut r = resolve(tx, &target)?;
    if op.is_conditional() {
        let stored = UserDoc(into_doc(tx, r.clone(), true)?);
        op.complete(&stored).map_err(BackendError::Rejected)?;
    }
    let mut doc = std::mem::take(&mut r.doc);
    let mut secrets = std::mem::take(&mut r.secrets);
    merge_into(&mut doc, &mut secrets, op.user.0);
    let (name, auth) = name_and_authenticator(&doc)?;
    let taken: Option<i64> = tx
        .prepare_cached(
            "SELECT numeric_id FROM users WHERE user_name = ?1 AND authenticator = ?2 AND numeric_id != ?3",
        )
        .map_err(db)?
        .query_row(
            params![name, auth, r.numeric_id],
            |row| row.get(0),
        )
        .optional()
        .map_err(db)?;
    if taken.is_some() {
        return Err(BackendError::Conflict("the new userName is taken".into()));
    }
    let numeric_id = r.numeric_id;
    let written = write_row(tx, r, doc, secrets)?;
    if let Some(g) = &op.groups {
        apply_groups(tx, numeric_id, g)?;
    }
    Ok(UserDoc(into_doc(tx, written, true)?))
}

/// Writes a row's document (without the store's own members) and secrets; the row as it now
/// is in the store.
fn write_row(
    tx: &Connection,
    r: Row,
    doc: Map<String, Value>,
    secrets: Map<String, Value>,
) -> Result<Row, BackendError> {
    let (name, auth) = name_and_authenticator(&doc)?;
    let modified = now();
    tx.prepare_cached(
        "UPDATE users SET user_name = ?2, authenticator = ?3, doc = ?4, secrets = ub_seal(id, ?5),
                modified = ?6, version = version + 1
         WHERE numeric_id = ?1",
    )
    .map_err(db)?
    .execute(params![
        r.numeric_id,
        name,
        auth,
        serde_json::to_string(&doc).map_err(json)?,
        serde_json::to_string(&secrets).map_err(json)?,
        modified
    ])
    .map_err(db)?;
    Ok(Row {
        doc,
        secrets,
        modified,
        version: r.version + 1,
        ..r
    })
}

/// Resolves group references to known group ids; an unknown one is an error naming it.
fn group_ids(tx: &Connection, g: &GroupChange) -> Result<Vec<i64>, BackendError> {
    let mut ids = Vec::with_capacity(g.values.len());
    for v in &g.values {
        let by_id: Option<(i64, String)> = match &v.value {
            Some(id) => tx
                .prepare_cached("SELECT id, name FROM groups WHERE id = ?1")
                .map_err(db)?
                .query_row(params![group_number(id)?], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
                .map_err(db)?,
            None => None,
        };
        let id = match pick_group(v, by_id)? {
            GroupPick::Number(n) => n,
            GroupPick::ByName(display) => tx
                .prepare_cached("SELECT id FROM groups WHERE name = ?1")
                .map_err(db)?
                .query_row(params![display], |r| r.get(0))
                .optional()
                .map_err(db)?
                .ok_or_else(|| no_group_named(display))?,
        };
        ids.push(id);
    }
    Ok(ids)
}

fn apply_groups(tx: &Connection, user: i64, g: &GroupChange) -> Result<(), BackendError> {
    let ids = group_ids(tx, g)?;
    // Every group whose members this changes shows a new version.
    let mut touched = ids.clone();
    if g.op == GroupOp::Replace {
        let before: Vec<i64> = tx
            .prepare_cached("SELECT group_id FROM members WHERE user_numeric_id = ?1")
            .map_err(db)?
            .query_map(params![user], |r| r.get(0))
            .map_err(db)?
            .collect::<Result<_, _>>()
            .map_err(db)?;
        touched.extend(before);
    }
    touched.sort_unstable();
    touched.dedup();
    groups::touch_groups(tx, &touched)?;
    if g.op == GroupOp::Replace {
        tx.prepare_cached("DELETE FROM members WHERE user_numeric_id = ?1")
            .map_err(db)?
            .execute(params![user])
            .map_err(db)?;
    }
    for id in ids {
        let sql = match g.op {
            GroupOp::Add | GroupOp::Replace => {
                "INSERT OR IGNORE INTO members (user_numeric_id, group_id) VALUES (?1, ?2)"
            }
            GroupOp::Remove => "DELETE FROM members WHERE user_numeric_id = ?1 AND group_id = ?2",
        };
        tx.prepare_cached(sql)
            .map_err(db)?
            .execute(params![user, id])
            .map_err(db)?;
    }
    Ok(())
}

/// A user's groups. Written as a subquery: the join ordered by group (`… JOIN … ORDER BY`) is
/// prepared anew on every run by this SQLite build (STAT4), a tenth of the store's time.
const USER_GROUPS: &str = "SELECT g.id, g.name FROM groups g
    WHERE g.id IN (SELECT group_id FROM members WHERE user_numeric_id = ?1) ORDER BY g.id";

/// The full canonical document of a row ([`UserRow::into_doc`]), its groups read.
fn into_doc(
    tx: &Connection,
    r: Row,
    with_secrets: bool,
) -> Result<Map<String, Value>, BackendError> {
    let groups: Vec<(i64, String)> = tx
        .prepare_cached(USER_GROUPS)
        .map_err(db)?
        .query_map(params![r.numeric_id], |row| Ok((row.get(0)?, row.get(1)?)))
        .map_err(db)?
        .collect::<Result<_, _>>()
        .map_err(db)?;
    Ok(r.into_doc(groups, with_secrets))
}

/// An in-memory store with the store's functions, sealing under a fixed key (tests).
#[cfg(test)]
fn test_connection() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    conn.execute_batch(query::INDEX).unwrap();
    groups::migrate(&conn).unwrap();
    query::register(&conn).unwrap();
    let key = crate::config::SecretsConfig {
        key: Some(crate::redact::Secret::new("11".repeat(32))),
        ..crate::config::SecretsConfig::default()
    };
    seal::register(&conn, Path::new("memory"), &key).unwrap();
    conn
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> Operation {
        let mut doc = Map::new();
        doc.insert("userName".into(), Value::String(name.into()));
        Operation::scim_create(UserDoc(doc))
    }

    /// The store, its WAL and shared-memory files and the directory made for them are the
    /// owner's alone, whatever the umask.
    #[tokio::test]
    async fn the_store_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("data/userbridge.db");
        let store = Sqlite::open(&path, &[], &Default::default()).unwrap();
        store.apply(user("ann"), Want::Id).await.unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        for f in [
            "userbridge.db",
            "userbridge.db-wal",
            "userbridge.db-shm",
            "secrets.key",
        ] {
            assert_eq!(mode(&root.path().join("data").join(f)), 0o600, "{f}");
        }
        assert_eq!(mode(&root.path().join("data")), 0o700);
    }

    /// Every statement a write runs is prepared once: none is prepared again on each run.
    #[test]
    fn the_write_path_statements_are_not_prepared_again() {
        let conn = test_connection();
        conn.execute(
            "INSERT INTO groups (id, name) VALUES (1, 'a'), (2, 'b')",
            [],
        )
        .unwrap();
        for i in 0..5 {
            let created = create(&conn, user(&format!("u{i}"))).unwrap();
            let n = created.0.len();
            assert!(n > 2, "{created:?}");
        }
        let cached = [
            USER_GROUPS,
            "SELECT numeric_id FROM users WHERE user_name = ?1 AND authenticator = ?2",
        ];
        for sql in cached {
            let st = conn.prepare_cached(sql).unwrap();
            assert!(st.get_status(rusqlite::StatementStatus::Run) >= 5, "{sql}");
            assert_eq!(
                st.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "{sql}"
            );
        }
    }
}
