//! The user operations on PostgreSQL, each inside the caller's transaction: the same rules as
//! the embedded store ([`crate::backend::row`]), with the database keeping them across
//! gateways — `userName` + `authenticator` unique by constraint (a create that loses the race
//! is a conflict, never a second user), the target row locked (`FOR UPDATE`) for the whole of
//! an update, numeric ids from the table's identity.

use deadpool_postgres::{GenericClient, Transaction};
use serde_json::{Map, Value};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row as PgRow, Statement};

use super::{Ctx, db};
use crate::backend::BackendError;
use crate::backend::row::{
    GroupPick, UserRow, for_create, group_number, merge_into, name_and_authenticator,
    no_group_named, now, pick_group,
};
use crate::canonical::{GroupChange, GroupOp, Operation, Target, UserDoc};

/// The columns a user is read with; `secrets` as stored (sealed); its groups, `[[number,
/// name], …]` in number order, in the same statement (no second round trip).
pub const COLUMNS: &str = "SELECT numeric_id, id, doc::text, secrets, created, modified, version,
        (SELECT coalesce(json_agg(json_build_array(g.id, g.name) ORDER BY g.id), '[]'::json)::text
           FROM members m JOIN groups g ON g.id = m.group_id
          WHERE m.user_numeric_id = users.numeric_id)
   FROM users";

/// A user as read: its row and its groups.
pub struct Read {
    pub row: UserRow,
    /// `(number, name)` in number order.
    pub groups: Vec<(i64, String)>,
}

impl Read {
    /// The canonical document (secrets included when `with_secrets`).
    pub fn into_doc(self, with_secrets: bool) -> UserDoc {
        UserDoc(self.row.into_doc(self.groups, with_secrets))
    }
}

/// A user read with [`COLUMNS`], its secrets opened when `secrets` (else left empty).
pub fn row(ctx: &Ctx, r: &PgRow, secrets: bool) -> Result<Read, BackendError> {
    let numeric_id: i32 = r.try_get(0).map_err(db)?;
    let id: String = r.try_get(1).map_err(db)?;
    let doc: String = r.try_get(2).map_err(db)?;
    let sealed: String = r.try_get(3).map_err(db)?;
    let groups: String = r.try_get(7).map_err(db)?;
    let groups: Vec<(i64, String)> = serde_json::from_str(&groups)
        .map_err(|e| BackendError::Failed(format!("store: groups: {e}")))?;
    let secrets = if secrets {
        let clear = ctx
            .sealer
            .open(&id, &sealed)
            .map_err(BackendError::Failed)?;
        parse(&clear)?
    } else {
        Map::new()
    };
    Ok(Read {
        row: UserRow {
            numeric_id: i64::from(numeric_id),
            doc: parse(&doc)?,
            id,
            secrets,
            created: r.try_get(4).map_err(db)?,
            modified: r.try_get(5).map_err(db)?,
            version: r.try_get(6).map_err(db)?,
        },
        groups,
    })
}

fn parse(text: &str) -> Result<Map<String, Value>, BackendError> {
    serde_json::from_str(text).map_err(|e| BackendError::Failed(format!("store: {e}")))
}

fn text(v: &Map<String, Value>) -> Result<String, BackendError> {
    serde_json::to_string(v).map_err(|e| BackendError::Failed(format!("store: {e}")))
}

/// The first user `cond` selects (locked for the transaction when `lock`).
pub async fn find(
    ctx: &Ctx,
    c: &impl GenericClient,
    cond: &str,
    args: &[&(dyn ToSql + Sync)],
    lock: bool,
) -> Result<Option<Read>, BackendError> {
    let sql = format!(
        "{COLUMNS} WHERE {cond}{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let stmt = c.prepare_cached(&sql).await.map_err(db)?;
    match c.query_opt(&stmt, args).await.map_err(db)? {
        Some(r) => Ok(Some(row(ctx, &r, true)?)),
        None => Ok(None),
    }
}

/// The user a target names, locked when `lock`; `NotFound` when none.
pub async fn resolve(
    ctx: &Ctx,
    c: &impl GenericClient,
    target: &UserDoc,
    lock: bool,
) -> Result<Read, BackendError> {
    let found = match Target::of(target).ok_or(BackendError::NotFound)? {
        Target::Id(id) => find(ctx, c, "id = $1", &[&id], lock).await?,
        Target::NumericId(n) => match i32::try_from(n) {
            Ok(n) => find(ctx, c, "numeric_id = $1", &[&n], lock).await?,
            Err(_) => None,
        },
        Target::Name {
            user_name,
            authenticator,
        } => {
            find(
                ctx,
                c,
                "user_name = $1 AND authenticator = $2",
                &[&user_name, &authenticator],
                lock,
            )
            .await?
        }
    };
    found.ok_or(BackendError::NotFound)
}

/// A user's groups, `(number, name)` in number order.
pub async fn groups_of(
    tx: &Transaction<'_>,
    numeric_id: i64,
) -> Result<Vec<(i64, String)>, BackendError> {
    let n = i32::try_from(numeric_id).unwrap_or(0);
    let stmt = tx
        .prepare_cached(
            "SELECT g.id, g.name FROM groups g JOIN members m ON m.group_id = g.id
             WHERE m.user_numeric_id = $1 ORDER BY g.id",
        )
        .await
        .map_err(db)?;
    let rows = tx.query(&stmt, &[&n]).await.map_err(db)?;
    rows.iter()
        .map(|r| {
            let id: i32 = r.try_get(0).map_err(db)?;
            Ok((i64::from(id), r.try_get(1).map_err(db)?))
        })
        .collect()
}

/// The full document of a row, its groups read.
pub async fn doc(
    tx: &Transaction<'_>,
    r: UserRow,
    with_secrets: bool,
) -> Result<UserDoc, BackendError> {
    let groups = groups_of(tx, r.numeric_id).await?;
    Ok(UserDoc(r.into_doc(groups, with_secrets)))
}

/// Creates the user of a create operation. Two gateways creating one user at once: the
/// constraint lets one in, the other gets the conflict.
pub async fn create(
    ctx: &Ctx,
    tx: &Transaction<'_>,
    op: Operation,
) -> Result<UserDoc, BackendError> {
    let written = insert(ctx, tx, op.user.0).await?;
    if let Some(g) = &op.groups {
        apply_groups(tx, written.numeric_id, g).await?;
    }
    doc_of_written(tx, written).await
}

/// Creates the user of a create operation without group changes: one statement, committed by
/// itself (no `BEGIN`/`COMMIT` round trips); a new user is in no group.
pub async fn create_alone(
    ctx: &Ctx,
    client: &deadpool_postgres::Client,
    op: Operation,
) -> Result<UserDoc, BackendError> {
    let written = insert(ctx, client, op.user.0).await?;
    Ok(UserDoc(written.into_doc(Vec::new(), true)))
}

/// Inserts the user `user` describes: its row as written.
async fn insert(
    ctx: &Ctx,
    c: &impl deadpool_postgres::GenericClient,
    user: Map<String, Value>,
) -> Result<UserRow, BackendError> {
    let (doc, secrets) = for_create(user);
    let (name, auth) = name_and_authenticator(&doc)?;
    let id = uuid::Uuid::new_v4().to_string();
    let ts = now();
    let sealed = ctx
        .sealer
        .seal(&id, &text(&secrets)?)
        .map_err(BackendError::Failed)?;
    let stmt = c
        .prepare_cached(
            "INSERT INTO users (id, user_name, authenticator, doc, secrets, created, modified)
             VALUES ($1, $2, $3, $4::text::json, $5, $6, $6)
             ON CONFLICT (user_name, authenticator) DO NOTHING
             RETURNING numeric_id",
        )
        .await
        .map_err(db)?;
    let inserted = c
        .query_opt(&stmt, &[&id, &name, &auth, &text(&doc)?, &sealed, &ts])
        .await
        .map_err(db)?;
    let Some(inserted) = inserted else {
        return Err(BackendError::Conflict(
            "a user with this userName and authenticator exists".into(),
        ));
    };
    let numeric_id: i32 = inserted.try_get(0).map_err(db)?;
    Ok(UserRow {
        numeric_id: i64::from(numeric_id),
        id,
        doc,
        secrets,
        modified: ts.clone(),
        created: ts,
        version: 1,
    })
}

async fn doc_of_written(tx: &Transaction<'_>, r: UserRow) -> Result<UserDoc, BackendError> {
    doc(tx, r, true).await
}

/// Applies an update to the user its target names, the row locked from read to write: two
/// updates of one user, from any gateways, run one after the other, each on the other's result.
pub async fn update(
    ctx: &Ctx,
    tx: &Transaction<'_>,
    mut op: Operation,
) -> Result<UserDoc, BackendError> {
    let target = op.target.clone().unwrap_or_default();
    let read = resolve(ctx, tx, &target, true).await?;
    let Merged {
        row,
        doc,
        secrets,
        groups,
    } = merged(read, &mut op)?;
    let numeric_id = row.numeric_id;
    let stmt = update_statement(tx).await?;
    let written = write_row(ctx, tx, &stmt, row, doc, secrets).await?;
    match &op.groups {
        Some(g) => {
            apply_groups(tx, numeric_id, g).await?;
            doc_of_written(tx, written).await
        }
        // Its groups as read with it (the row is locked).
        None => Ok(UserDoc(written.into_doc(groups, true))),
    }
}

/// An update worked out on the user as read (its row locked): what to write.
pub struct Merged {
    /// The row as read (its document and secrets taken out).
    pub row: UserRow,
    /// The new document and secrets.
    pub doc: Map<String, Value>,
    pub secrets: Map<String, Value>,
    /// The user's groups as read.
    pub groups: Vec<(i64, String)>,
}

/// Checks `op`'s preconditions against the user as read and merges its changes in, as the
/// embedded store does. No I/O.
pub fn merged(read: Read, op: &mut Operation) -> Result<Merged, BackendError> {
    let Read { row: mut r, groups } = read;
    if op.is_conditional() {
        let stored = UserDoc(r.clone().into_doc(groups.clone(), true));
        op.complete(&stored).map_err(BackendError::Rejected)?;
    }
    let mut doc = std::mem::take(&mut r.doc);
    let mut secrets = std::mem::take(&mut r.secrets);
    merge_into(&mut doc, &mut secrets, std::mem::take(&mut op.user.0));
    Ok(Merged {
        row: r,
        doc,
        secrets,
        groups,
    })
}

/// The statement [`write_row`] runs, prepared (once per connection).
pub async fn update_statement(c: &impl GenericClient) -> Result<Statement, BackendError> {
    c.prepare_cached(
        "UPDATE users SET user_name = $2, authenticator = $3, doc = $4::text::json,
                secrets = $5, modified = $6, version = version + 1
         WHERE numeric_id = $1",
    )
    .await
    .map_err(db)
}

/// Writes a row's document and secrets with `stmt` ([`update_statement`]); a new name that is
/// taken is the conflict (the constraint decides, also against a gateway renaming another user
/// at the same time). The statement is sent when the future is first polled (so that a caller
/// can queue its `COMMIT` right behind it).
pub async fn write_row(
    ctx: &Ctx,
    c: &impl GenericClient,
    stmt: &Statement,
    r: UserRow,
    doc: Map<String, Value>,
    secrets: Map<String, Value>,
) -> Result<UserRow, BackendError> {
    let (name, auth) = name_and_authenticator(&doc)?;
    let modified = now();
    let sealed = ctx
        .sealer
        .seal(&r.id, &text(&secrets)?)
        .map_err(BackendError::Failed)?;
    let n = i32::try_from(r.numeric_id).unwrap_or(0);
    c.execute(stmt, &[&n, &name, &auth, &text(&doc)?, &sealed, &modified])
        .await
        .map_err(|e| match super::conflict(&e) {
            true => BackendError::Conflict("the new userName is taken".into()),
            false => db(e),
        })?;
    Ok(UserRow {
        doc,
        secrets,
        modified,
        version: r.version + 1,
        ..r
    })
}

/// Deletes the user a delete's target names; the user as it was (without secrets).
pub async fn delete(
    ctx: &Ctx,
    tx: &Transaction<'_>,
    op: Operation,
) -> Result<UserDoc, BackendError> {
    let target = op.target.unwrap_or_default();
    let r = resolve(ctx, tx, &target, true).await?;
    let n = i32::try_from(r.row.numeric_id).unwrap_or(0);
    let gone = r.into_doc(false);
    let stmt = tx
        .prepare_cached("DELETE FROM users WHERE numeric_id = $1")
        .await
        .map_err(db)?;
    tx.execute(&stmt, &[&n]).await.map_err(db)?;
    Ok(gone)
}

/// Resolves group references to known group numbers; an unknown one is an error naming it.
async fn group_ids(tx: &Transaction<'_>, g: &GroupChange) -> Result<Vec<i32>, BackendError> {
    let mut ids = Vec::with_capacity(g.values.len());
    for v in &g.values {
        let by_id: Option<(i64, String)> = match &v.value {
            Some(id) => {
                let Ok(n) = i32::try_from(group_number(id)?) else {
                    return Err(BackendError::UnknownGroup(format!("no group with id {id}")));
                };
                let stmt = tx
                    .prepare_cached("SELECT id, name FROM groups WHERE id = $1")
                    .await
                    .map_err(db)?;
                match tx.query_opt(&stmt, &[&n]).await.map_err(db)? {
                    Some(r) => Some((
                        i64::from(r.try_get::<_, i32>(0).map_err(db)?),
                        r.try_get(1).map_err(db)?,
                    )),
                    None => None,
                }
            }
            None => None,
        };
        let id = match pick_group(v, by_id)? {
            GroupPick::Number(n) => i32::try_from(n)
                .map_err(|_| BackendError::UnknownGroup(format!("no group with id {n}")))?,
            GroupPick::ByName(display) => {
                let stmt = tx
                    .prepare_cached("SELECT id FROM groups WHERE name = $1")
                    .await
                    .map_err(db)?;
                match tx.query_opt(&stmt, &[&display]).await.map_err(db)? {
                    Some(r) => r.try_get(0).map_err(db)?,
                    None => return Err(no_group_named(display)),
                }
            }
        };
        ids.push(id);
    }
    Ok(ids)
}

/// Applies a group operation to the user `user` (whose row the transaction holds). Every
/// group whose members change moves its version, in number order, so that two transactions
/// touching the same groups take their locks in the same order.
pub async fn apply_groups(
    tx: &Transaction<'_>,
    user: i64,
    g: &GroupChange,
) -> Result<(), BackendError> {
    let user = i32::try_from(user).unwrap_or(0);
    let ids = group_ids(tx, g).await?;
    let mut touched = ids.clone();
    if g.op == GroupOp::Replace {
        let stmt = tx
            .prepare_cached("SELECT group_id FROM members WHERE user_numeric_id = $1")
            .await
            .map_err(db)?;
        for r in tx.query(&stmt, &[&user]).await.map_err(db)? {
            touched.push(r.try_get(0).map_err(db)?);
        }
    }
    touched.sort_unstable();
    touched.dedup();
    let ts = now();
    let stmt = tx
        .prepare_cached(
            "UPDATE groups SET version = version + 1, modified = $2
             WHERE id IN (SELECT id FROM groups WHERE id = ANY($1) ORDER BY id FOR UPDATE)",
        )
        .await
        .map_err(db)?;
    tx.execute(&stmt, &[&touched, &ts]).await.map_err(db)?;
    if g.op == GroupOp::Replace {
        let stmt = tx
            .prepare_cached("DELETE FROM members WHERE user_numeric_id = $1")
            .await
            .map_err(db)?;
        tx.execute(&stmt, &[&user]).await.map_err(db)?;
    }
    let sql = match g.op {
        GroupOp::Add | GroupOp::Replace => {
            "INSERT INTO members (user_numeric_id, group_id) SELECT $1, unnest($2::integer[])
             ON CONFLICT DO NOTHING"
        }
        GroupOp::Remove => "DELETE FROM members WHERE user_numeric_id = $1 AND group_id = ANY($2)",
    };
    let stmt = tx.prepare_cached(sql).await.map_err(db)?;
    tx.execute(&stmt, &[&user, &ids]).await.map_err(db)?;
    Ok(())
}
