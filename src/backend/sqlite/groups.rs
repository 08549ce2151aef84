//! Groups in the embedded store, as `/scim/v2/Groups` sees them: the `groups` table (the
//! configured groups and those created through SCIM) and the `members` table that every
//! dialect's group operations write too, so that a Commvault `userGroups` change shows in
//! `/Groups` and a `/Groups` PATCH in the user's `groups`.
//!
//! A group's `id` is its number (the `value` a user's `groups` show). A change of membership
//! moves the version of the group and of each user it adds or removes, so that both ETags
//! change with what their resources show.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value};

use super::{db, now};
use crate::backend::BackendError;
use crate::backend::row::{GroupRow, group_written, no_such_member};

/// Adds the columns a SCIM group has to a store made before them (schema version 2).
pub fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('groups')")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for (name, decl) in [
        ("external_id", "TEXT"),
        ("created", "TEXT NOT NULL DEFAULT ''"),
        ("modified", "TEXT NOT NULL DEFAULT ''"),
        ("version", "INTEGER NOT NULL DEFAULT 1"),
    ] {
        if !columns.iter().any(|c| c == name) {
            conn.execute_batch(&format!("ALTER TABLE groups ADD COLUMN {name} {decl}"))?;
        }
    }
    conn.execute_batch("PRAGMA user_version = 2")
}

/// Gives configured groups (and those of an older store) their creation time.
pub fn stamp(conn: &Connection) -> rusqlite::Result<()> {
    let ts = now();
    conn.execute(
        "UPDATE groups SET created = ?1, modified = ?1 WHERE created = ''",
        params![ts],
    )?;
    Ok(())
}

/// The group number an id names, when it is one.
fn number(id: &str) -> Option<i64> {
    id.parse().ok().filter(|n| *n > 0)
}

/// The group `id` as a SCIM resource.
pub fn get(tx: &Connection, id: &str) -> Result<Option<Map<String, Value>>, BackendError> {
    let Some(n) = number(id) else {
        return Ok(None);
    };
    let row = tx
        .prepare_cached(
            "SELECT id, name, external_id, created, modified, version FROM groups WHERE id = ?1",
        )
        .map_err(db)?
        .query_row(params![n], group_row)
        .optional()
        .map_err(db)?;
    row.map(|r| doc(tx, r)).transpose()
}

/// Every group, in id order.
pub fn all(tx: &Connection) -> Result<Vec<Map<String, Value>>, BackendError> {
    let rows: Vec<GroupRow> = tx
        .prepare_cached(
            "SELECT id, name, external_id, created, modified, version FROM groups ORDER BY id",
        )
        .map_err(db)?
        .query_map([], group_row)
        .map_err(db)?
        .collect::<Result<_, _>>()
        .map_err(db)?;
    rows.into_iter().map(|r| doc(tx, r)).collect()
}

fn group_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<GroupRow> {
    Ok(GroupRow {
        id: r.get(0)?,
        name: r.get(1)?,
        external_id: r.get(2)?,
        created: r.get(3)?,
        modified: r.get(4)?,
        version: r.get(5)?,
    })
}

fn doc(tx: &Connection, r: GroupRow) -> Result<Map<String, Value>, BackendError> {
    let members: Vec<(String, String)> = tx
        .prepare_cached(
            "SELECT u.id, u.user_name FROM members m JOIN users u ON u.numeric_id = m.user_numeric_id
             WHERE m.group_id = ?1 ORDER BY u.numeric_id",
        )
        .map_err(db)?
        .query_map(params![r.id], |row| Ok((row.get(0)?, row.get(1)?)))
        .map_err(db)?
        .collect::<Result<_, _>>()
        .map_err(db)?;
    Ok(r.into_doc(members))
}

/// What a client wrote: the name, the external id and the members' user numbers.
struct Written {
    name: String,
    external_id: Option<String>,
    members: Vec<i64>,
}

fn written(tx: &Connection, g: &Map<String, Value>) -> Result<Written, BackendError> {
    let w = group_written(g)?;
    let mut members = Vec::new();
    for (i, ids) in &w.members {
        let mut n = None;
        for id in ids {
            n = tx
                .prepare_cached("SELECT numeric_id FROM users WHERE id = ?1")
                .map_err(db)?
                .query_row(params![id], |r| r.get(0))
                .optional()
                .map_err(db)?;
            if n.is_some() {
                break;
            }
        }
        let n: i64 = n.ok_or_else(|| no_such_member(*i, ids))?;
        if !members.contains(&n) {
            members.push(n);
        }
    }
    Ok(Written {
        name: w.name,
        external_id: w.external_id,
        members,
    })
}

fn name_taken(tx: &Connection, name: &str, other_than: i64) -> Result<bool, BackendError> {
    tx.prepare_cached("SELECT 1 FROM groups WHERE name = ?1 AND id != ?2")
        .map_err(db)?
        .query_row(params![name, other_than], |_| Ok(()))
        .optional()
        .map_err(db)
        .map(|r| r.is_some())
}

/// Moves the version of each user on: what its `groups` show changed.
fn touch_users(tx: &Connection, users: &[i64]) -> Result<(), BackendError> {
    let ts = now();
    for u in users {
        tx.prepare_cached(
            "UPDATE users SET version = version + 1, modified = ?2 WHERE numeric_id = ?1",
        )
        .map_err(db)?
        .execute(params![u, ts])
        .map_err(db)?;
    }
    Ok(())
}

/// Moves the version of each group on: its members changed.
pub fn touch_groups(tx: &Connection, groups: &[i64]) -> Result<(), BackendError> {
    let ts = now();
    for g in groups {
        tx.prepare_cached("UPDATE groups SET version = version + 1, modified = ?2 WHERE id = ?1")
            .map_err(db)?
            .execute(params![g, ts])
            .map_err(db)?;
    }
    Ok(())
}

fn member_numbers(tx: &Connection, group: i64) -> Result<Vec<i64>, BackendError> {
    tx.prepare_cached("SELECT user_numeric_id FROM members WHERE group_id = ?1")
        .map_err(db)?
        .query_map(params![group], |r| r.get(0))
        .map_err(db)?
        .collect::<Result<_, _>>()
        .map_err(db)
}

/// Sets the members of `group` to `members`; the users added or removed.
fn set_members(tx: &Connection, group: i64, members: &[i64]) -> Result<Vec<i64>, BackendError> {
    let before = member_numbers(tx, group)?;
    let mut changed = Vec::new();
    for u in before.iter().filter(|u| !members.contains(u)) {
        tx.prepare_cached("DELETE FROM members WHERE user_numeric_id = ?1 AND group_id = ?2")
            .map_err(db)?
            .execute(params![u, group])
            .map_err(db)?;
        changed.push(*u);
    }
    for u in members.iter().filter(|u| !before.contains(u)) {
        tx.prepare_cached("INSERT INTO members (user_numeric_id, group_id) VALUES (?1, ?2)")
            .map_err(db)?
            .execute(params![u, group])
            .map_err(db)?;
        changed.push(*u);
    }
    Ok(changed)
}

/// Creates a group from a SCIM document.
pub fn create(tx: &Connection, g: &Map<String, Value>) -> Result<Map<String, Value>, BackendError> {
    let w = written(tx, g)?;
    if name_taken(tx, &w.name, 0)? {
        return Err(BackendError::Conflict(format!(
            "a group named '{}' exists",
            w.name
        )));
    }
    let ts = now();
    tx.prepare_cached(
        "INSERT INTO groups (name, external_id, created, modified) VALUES (?1, ?2, ?3, ?3)",
    )
    .map_err(db)?
    .execute(params![w.name, w.external_id, ts])
    .map_err(db)?;
    let id = tx.last_insert_rowid();
    let changed = set_members(tx, id, &w.members)?;
    touch_users(tx, &changed)?;
    get(tx, &id.to_string())?.ok_or(BackendError::NotFound)
}

fn current(tx: &Connection, id: &str, if_match: Option<&str>) -> Result<i64, BackendError> {
    let g = get(tx, id)?.ok_or(BackendError::NotFound)?;
    crate::backend::check_version(if_match, &g)?;
    number(id).ok_or(BackendError::NotFound)
}

/// Replaces the group `id` (name, external id, members) when it is at a version `if_match`
/// names.
pub fn replace(
    tx: &Connection,
    id: &str,
    g: &Map<String, Value>,
    if_match: Option<&str>,
) -> Result<Map<String, Value>, BackendError> {
    let n = current(tx, id, if_match)?;
    let w = written(tx, g)?;
    if name_taken(tx, &w.name, n)? {
        return Err(BackendError::Conflict(format!(
            "a group named '{}' exists",
            w.name
        )));
    }
    tx.prepare_cached(
        "UPDATE groups SET name = ?2, external_id = ?3, modified = ?4, version = version + 1
         WHERE id = ?1",
    )
    .map_err(db)?
    .execute(params![n, w.name, w.external_id, now()])
    .map_err(db)?;
    let changed = set_members(tx, n, &w.members)?;
    touch_users(tx, &changed)?;
    get(tx, id)?.ok_or(BackendError::NotFound)
}

/// Deletes the group `id` (its memberships with it); false when there was none.
pub fn delete(tx: &Connection, id: &str, if_match: Option<&str>) -> Result<bool, BackendError> {
    let n = match current(tx, id, if_match) {
        Ok(n) => n,
        Err(BackendError::NotFound) => return Ok(false),
        Err(e) => return Err(e),
    };
    let members = member_numbers(tx, n)?;
    touch_users(tx, &members)?;
    tx.prepare_cached("DELETE FROM groups WHERE id = ?1")
        .map_err(db)?
        .execute(params![n])
        .map_err(db)?;
    Ok(true)
}
