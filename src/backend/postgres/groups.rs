//! Groups on PostgreSQL, as `/scim/v2/Groups` reads and edits them: the same `groups` and
//! `members` tables every dialect's group operations write, with the embedded store's rules
//! ([`crate::backend::row::GroupRow`]): a change of membership moves the version of the group
//! and of each user it adds or removes. A group is locked (`FOR UPDATE`) from read to write;
//! new groups are numbered under a table lock, so that two gateways never give one number
//! twice.

use deadpool_postgres::Transaction;
use serde_json::{Map, Value};

use super::db;
use crate::backend::BackendError;
use crate::backend::row::{GroupRow, group_written, no_such_member, now};

fn number(id: &str) -> Option<i32> {
    id.parse().ok().filter(|n| *n > 0)
}

async fn row(tx: &Transaction<'_>, n: i32, lock: bool) -> Result<Option<GroupRow>, BackendError> {
    let sql = format!(
        "SELECT id, name, external_id, created, modified, version FROM groups WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let stmt = tx.prepare_cached(&sql).await.map_err(db)?;
    match tx.query_opt(&stmt, &[&n]).await.map_err(db)? {
        Some(r) => Ok(Some(group_row(&r)?)),
        None => Ok(None),
    }
}

fn group_row(r: &tokio_postgres::Row) -> Result<GroupRow, BackendError> {
    let id: i32 = r.try_get(0).map_err(db)?;
    Ok(GroupRow {
        id: i64::from(id),
        name: r.try_get(1).map_err(db)?,
        external_id: r.try_get(2).map_err(db)?,
        created: r.try_get(3).map_err(db)?,
        modified: r.try_get(4).map_err(db)?,
        version: r.try_get(5).map_err(db)?,
    })
}

async fn doc(tx: &Transaction<'_>, r: GroupRow) -> Result<Map<String, Value>, BackendError> {
    let n = i32::try_from(r.id).unwrap_or(0);
    let stmt = tx
        .prepare_cached(
            "SELECT u.id, u.user_name FROM members m JOIN users u ON u.numeric_id = m.user_numeric_id
             WHERE m.group_id = $1 ORDER BY u.numeric_id",
        )
        .await
        .map_err(db)?;
    let members = tx
        .query(&stmt, &[&n])
        .await
        .map_err(db)?
        .iter()
        .map(|r| Ok((r.try_get(0).map_err(db)?, r.try_get(1).map_err(db)?)))
        .collect::<Result<Vec<(String, String)>, BackendError>>()?;
    Ok(r.into_doc(members))
}

/// The group `id` as a SCIM resource.
pub async fn get(
    tx: &Transaction<'_>,
    id: &str,
) -> Result<Option<Map<String, Value>>, BackendError> {
    let Some(n) = number(id) else {
        return Ok(None);
    };
    match row(tx, n, false).await? {
        Some(r) => Ok(Some(doc(tx, r).await?)),
        None => Ok(None),
    }
}

/// Every group, in id order.
pub async fn all(tx: &Transaction<'_>) -> Result<Vec<Map<String, Value>>, BackendError> {
    let rows = tx
        .query(
            "SELECT id, name, external_id, created, modified, version FROM groups ORDER BY id",
            &[],
        )
        .await
        .map_err(db)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(doc(tx, group_row(r)?).await?);
    }
    Ok(out)
}

/// The members' user numbers a client wrote; an unknown user is refused, naming it.
async fn member_numbers(
    tx: &Transaction<'_>,
    members: &[(usize, Vec<String>)],
) -> Result<Vec<i32>, BackendError> {
    let stmt = tx
        .prepare_cached("SELECT numeric_id FROM users WHERE id = $1")
        .await
        .map_err(db)?;
    let mut out = Vec::new();
    for (i, ids) in members {
        let mut n = None;
        for id in ids {
            if let Some(r) = tx.query_opt(&stmt, &[id]).await.map_err(db)? {
                n = Some(r.try_get::<_, i32>(0).map_err(db)?);
                break;
            }
        }
        let n = n.ok_or_else(|| no_such_member(*i, ids))?;
        if !out.contains(&n) {
            out.push(n);
        }
    }
    Ok(out)
}

/// Sets the members of `group`; the users added or removed.
async fn set_members(
    tx: &Transaction<'_>,
    group: i32,
    members: &[i32],
) -> Result<Vec<i32>, BackendError> {
    let before: Vec<i32> = tx
        .query(
            "SELECT user_numeric_id FROM members WHERE group_id = $1",
            &[&group],
        )
        .await
        .map_err(db)?
        .iter()
        .map(|r| r.try_get(0).map_err(db))
        .collect::<Result<_, _>>()?;
    let gone: Vec<i32> = before
        .iter()
        .copied()
        .filter(|u| !members.contains(u))
        .collect();
    let added: Vec<i32> = members
        .iter()
        .copied()
        .filter(|u| !before.contains(u))
        .collect();
    tx.execute(
        "DELETE FROM members WHERE group_id = $1 AND user_numeric_id = ANY($2)",
        &[&group, &gone],
    )
    .await
    .map_err(db)?;
    tx.execute(
        "INSERT INTO members (user_numeric_id, group_id) SELECT unnest($2::integer[]), $1
         ON CONFLICT DO NOTHING",
        &[&group, &added],
    )
    .await
    .map_err(db)?;
    Ok(gone.into_iter().chain(added).collect())
}

/// Moves the version of each user on (in number order): what its `groups` show changed.
async fn touch_users(tx: &Transaction<'_>, users: &[i32]) -> Result<(), BackendError> {
    tx.execute(
        "UPDATE users SET version = version + 1, modified = $2 WHERE numeric_id IN
           (SELECT numeric_id FROM users WHERE numeric_id = ANY($1) ORDER BY numeric_id FOR UPDATE)",
        &[&users, &now()],
    )
    .await
    .map_err(db)?;
    Ok(())
}

fn taken(name: &str) -> BackendError {
    BackendError::Conflict(format!("a group named '{name}' exists"))
}

/// Creates a group from a SCIM document.
pub async fn create(
    tx: &Transaction<'_>,
    g: &Map<String, Value>,
) -> Result<Map<String, Value>, BackendError> {
    let w = group_written(g)?;
    let members = member_numbers(tx, &w.members).await?;
    // Numbers follow the highest there is, as the embedded store's do; the lock makes two
    // gateways creating groups at once take turns.
    tx.batch_execute("LOCK TABLE groups IN SHARE ROW EXCLUSIVE MODE")
        .await
        .map_err(db)?;
    let ts = now();
    let inserted = tx
        .query_opt(
            "INSERT INTO groups (id, name, external_id, created, modified)
             SELECT coalesce(max(id), 0) + 1, $1, $2, $3, $3 FROM groups
             ON CONFLICT (name) DO NOTHING RETURNING id",
            &[&w.name, &w.external_id, &ts],
        )
        .await
        .map_err(db)?;
    let Some(inserted) = inserted else {
        return Err(taken(&w.name));
    };
    let id: i32 = inserted.try_get(0).map_err(db)?;
    let changed = set_members(tx, id, &members).await?;
    touch_users(tx, &changed).await?;
    get(tx, &id.to_string())
        .await?
        .ok_or(BackendError::NotFound)
}

/// The group `id`, locked, when it is at a version `if_match` names.
async fn current(
    tx: &Transaction<'_>,
    id: &str,
    if_match: Option<&str>,
) -> Result<i32, BackendError> {
    let n = number(id).ok_or(BackendError::NotFound)?;
    let r = row(tx, n, true).await?.ok_or(BackendError::NotFound)?;
    let g = doc(tx, r).await?;
    crate::backend::check_version(if_match, &g)?;
    Ok(n)
}

/// Replaces the group `id` (name, external id, members) when it is at a version `if_match`
/// names.
pub async fn replace(
    tx: &Transaction<'_>,
    id: &str,
    g: &Map<String, Value>,
    if_match: Option<&str>,
) -> Result<Map<String, Value>, BackendError> {
    let n = current(tx, id, if_match).await?;
    let w = group_written(g)?;
    let members = member_numbers(tx, &w.members).await?;
    tx.execute(
        "UPDATE groups SET name = $2, external_id = $3, modified = $4, version = version + 1
         WHERE id = $1",
        &[&n, &w.name, &w.external_id, &now()],
    )
    .await
    .map_err(|e| match super::conflict(&e) {
        true => taken(&w.name),
        false => db(e),
    })?;
    let changed = set_members(tx, n, &members).await?;
    touch_users(tx, &changed).await?;
    get(tx, id).await?.ok_or(BackendError::NotFound)
}

/// Deletes the group `id` (its memberships with it); false when there was none.
pub async fn delete(
    tx: &Transaction<'_>,
    id: &str,
    if_match: Option<&str>,
) -> Result<bool, BackendError> {
    let n = match current(tx, id, if_match).await {
        Ok(n) => n,
        Err(BackendError::NotFound) => return Ok(false),
        Err(e) => return Err(e),
    };
    let members: Vec<i32> = tx
        .query(
            "SELECT user_numeric_id FROM members WHERE group_id = $1",
            &[&n],
        )
        .await
        .map_err(db)?
        .iter()
        .map(|r| r.try_get(0).map_err(db))
        .collect::<Result<_, _>>()?;
    touch_users(tx, &members).await?;
    tx.execute("DELETE FROM groups WHERE id = $1", &[&n])
        .await
        .map_err(db)?;
    Ok(true)
}
