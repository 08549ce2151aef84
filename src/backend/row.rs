//! A user as the SQL stores keep it (SQLite, PostgreSQL): one row of its attributes, its
//! sealed secrets and the store's own members, and the rules both stores apply to it alike —
//! the document a row reads as, its version, `userName` + `authenticator` as its key.

use serde_json::{Map, Value};

use super::BackendError;
use crate::canonical::{self, location};

/// A user row.
#[derive(Debug, Clone)]
pub struct UserRow {
    /// ext `numericId`: the row's number, a positive int32.
    pub numeric_id: i64,
    /// The canonical id (a UUID).
    pub id: String,
    /// Its attributes, without the store's members and without secrets.
    pub doc: Map<String, Value>,
    /// Its secret attributes, opened (a password as its hash).
    pub secrets: Map<String, Value>,
    /// `meta.created`.
    pub created: String,
    /// `meta.lastModified`.
    pub modified: String,
    /// Moves on with every write.
    pub version: i64,
}

impl UserRow {
    /// The version its `meta.version` shows (a weak ETag).
    pub fn etag(&self) -> String {
        format!("W/\"{}\"", self.version)
    }

    /// [`BackendError::Changed`] unless `if_match` (when given) names the row's version.
    pub fn check_version(&self, if_match: Option<&str>) -> Result<(), BackendError> {
        match if_match {
            Some(h) if !super::etag_matches(h, &self.etag()) => {
                Err(BackendError::Changed(self.etag()))
            }
            _ => Ok(()),
        }
    }

    /// The full canonical document of the row: its attributes, the store's members (`id`,
    /// `numericId`, `meta`, `groups` — `(number, name)` pairs — and `schemas`) and, when
    /// `with_secrets`, its secrets (a password's hash never).
    pub fn into_doc(self, groups: Vec<(i64, String)>, with_secrets: bool) -> Map<String, Value> {
        let version = self.etag();
        let mut doc = Map::with_capacity(self.doc.len() + 4);
        doc.insert("id".into(), Value::String(self.id));
        doc.extend(self.doc);
        canonical::set(
            &mut doc,
            &location("ext.numericId"),
            Value::from(self.numeric_id),
        );
        if with_secrets {
            for (k, v) in self
                .secrets
                .into_iter()
                .filter(|(_, v)| !crate::password::is_hash(v))
            {
                canonical::set(&mut doc, &location(&k), v);
            }
        }
        if !groups.is_empty() {
            let groups = groups
                .into_iter()
                .map(|(id, name)| serde_json::json!({ "value": id.to_string(), "display": name }))
                .collect();
            doc.insert("groups".into(), Value::Array(groups));
        }
        doc.insert(
            "meta".into(),
            serde_json::json!({
                "resourceType": "User",
                "created": self.created,
                "lastModified": self.modified,
                "version": version,
            }),
        );
        canonical::with_schemas(doc)
    }
}

/// The time a write is stamped with (RFC 3339, milliseconds, UTC).
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A user's key: its `userName` (required, not empty) and ext `authenticator` (`""` when
/// unset).
pub fn name_and_authenticator(doc: &Map<String, Value>) -> Result<(String, String), BackendError> {
    let name = canonical::get(doc, &location("userName"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            BackendError::Rejected(crate::rejection::Rejection::invalid(
                "userName",
                "required",
                "userName is required".into(),
            ))
        })?;
    let auth = canonical::get(doc, &location("ext.authenticator"))
        .and_then(Value::as_str)
        .unwrap_or("");
    Ok((name.to_owned(), auth.to_owned()))
}

/// What a create stores: the document without nulls and server-owned members, and its
/// secrets apart.
pub fn for_create(mut doc: Map<String, Value>) -> (Map<String, Value>, Map<String, Value>) {
    doc.retain(|_, v| !v.is_null());
    super::strip_server_owned(&mut doc);
    let secrets = super::take_secrets(&mut doc);
    (doc, secrets)
}

/// What a replace (`/scim/v2` PUT) of the row `r` stores: the document without server-owned
/// members, and the secrets it restates over those the row has (SCIM never returns secrets,
/// so a client cannot restate them: those not restated are kept, each on its own).
pub fn for_replace(
    r: &UserRow,
    mut doc: Map<String, Value>,
) -> (Map<String, Value>, Map<String, Value>) {
    super::strip_server_owned(&mut doc);
    let mut secrets = r.secrets.clone();
    secrets.extend(super::take_secrets(&mut doc));
    (doc, secrets)
}

/// Merges an update's `changes` into the row's document and secrets (a secret set to `null`
/// is removed), by the store's merge rules.
pub fn merge_into(
    doc: &mut Map<String, Value>,
    secrets: &mut Map<String, Value>,
    mut changes: Map<String, Value>,
) {
    super::strip_server_owned(&mut changes);
    for (k, v) in super::take_secrets(&mut changes) {
        if v.is_null() {
            secrets.shift_remove(&k);
        } else {
            secrets.insert(k, v);
        }
    }
    super::merge::merge(doc, changes);
}

/// A group row, as the SQL stores keep it.
#[derive(Debug, Clone)]
pub struct GroupRow {
    /// Its number (`id`, and the `value` users' `groups` show).
    pub id: i64,
    /// `displayName`, unique.
    pub name: String,
    /// `externalId`.
    pub external_id: Option<String>,
    /// `meta.created`.
    pub created: String,
    /// `meta.lastModified`.
    pub modified: String,
    /// Moves on when its name or its members change.
    pub version: i64,
}

const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

impl GroupRow {
    /// The group as a SCIM resource, with its `members` (`(user id, userName)`, in the order
    /// given).
    pub fn into_doc(self, members: Vec<(String, String)>) -> Map<String, Value> {
        let members: Vec<Value> = members
            .into_iter()
            .map(|(id, name)| {
                serde_json::json!({"value": id, "display": name, "type": "User",
                                   "$ref": format!("/scim/v2/Users/{id}")})
            })
            .collect();
        let mut m = Map::new();
        m.insert("schemas".into(), serde_json::json!([GROUP_SCHEMA]));
        m.insert("id".into(), Value::String(self.id.to_string()));
        if let Some(e) = self.external_id {
            m.insert("externalId".into(), Value::String(e));
        }
        m.insert("displayName".into(), Value::String(self.name));
        m.insert("members".into(), Value::Array(members));
        m.insert(
            "meta".into(),
            serde_json::json!({
                "resourceType": "Group",
                "created": self.created,
                "lastModified": self.modified,
                "version": format!("W/\"{}\"", self.version),
                "location": format!("/scim/v2/Groups/{}", self.id),
            }),
        );
        m
    }
}

/// What a client wrote of a group: its name, external id, and for each member (by its place
/// in `members`) the user ids that may name it — its `value`, then the id its `$ref` locates.
#[derive(Debug)]
pub struct GroupWritten {
    /// `displayName`.
    pub name: String,
    /// `externalId`.
    pub external_id: Option<String>,
    /// `(index, candidate user ids)` per member.
    pub members: Vec<(usize, Vec<String>)>,
}

fn invalid(field: &str, message: String) -> BackendError {
    BackendError::Rejected(crate::rejection::Rejection::invalid(
        field, "invalid", message,
    ))
}

/// Reads a group a client wrote; a missing name or a member without a value is refused,
/// naming it.
pub fn group_written(g: &Map<String, Value>) -> Result<GroupWritten, BackendError> {
    let get = |k: &str| {
        g.iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(k))
            .map(|(_, v)| v)
    };
    let name = get("displayName")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| invalid("displayName", "displayName is required".into()))?
        .to_owned();
    let external_id = get("externalId").and_then(Value::as_str).map(str::to_owned);
    let mut members = Vec::new();
    match get("members") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, m) in items.iter().enumerate() {
                let value = m.get("value").and_then(Value::as_str);
                // A member is named by its `value`, or by the user its `$ref` locates.
                let by_ref = m
                    .get("$ref")
                    .and_then(Value::as_str)
                    .and_then(|r| r.rsplit_once("/Users/"))
                    .map(|(_, id)| id.trim_end_matches('/'));
                if value.is_none() && by_ref.is_none() {
                    return Err(invalid("members", format!("members[{i}] needs a value")));
                }
                let ids = [value, by_ref]
                    .into_iter()
                    .flatten()
                    .map(str::to_owned)
                    .collect();
                members.push((i, ids));
            }
        }
        Some(_) => return Err(invalid("members", "members must be a list".into())),
    }
    Ok(GroupWritten {
        name,
        external_id,
        members,
    })
}

/// The refusal of member `i`, which names no user.
pub fn no_such_member(i: usize, ids: &[String]) -> BackendError {
    let named = ids.first().map_or("", String::as_str);
    invalid("members", format!("members[{i}]: no user with id {named}"))
}

/// What a group reference of a dialect's group operation names, once the store has looked up
/// the group its `value` numbers (`by_id`: that group's number and name, if there is one).
pub enum GroupPick<'a> {
    /// This group number.
    Number(i64),
    /// The group of this name, still to be looked up.
    ByName(&'a str),
}

/// The number a reference's `value` gives; not a number is an unknown group, named.
pub fn group_number(value: &str) -> Result<i64, BackendError> {
    value
        .parse()
        .map_err(|_| BackendError::UnknownGroup(format!("no group with id {value}")))
}

/// Resolves a group reference: a `value` must name a group, and a `display` beside it must be
/// that group's name; a `display` alone names the group to look up.
pub fn pick_group(
    r: &crate::canonical::GroupRef,
    by_id: Option<(i64, String)>,
) -> Result<GroupPick<'_>, BackendError> {
    match (&r.value, by_id, &r.display) {
        (Some(id), None, _) => Err(BackendError::UnknownGroup(format!("no group with id {id}"))),
        (Some(_), Some((n, name)), Some(display)) if name != *display => Err(
            BackendError::UnknownGroup(format!("group {n} is called '{name}', not '{display}'")),
        ),
        (Some(_), Some((n, _)), _) => Ok(GroupPick::Number(n)),
        (None, _, Some(display)) => Ok(GroupPick::ByName(display)),
        (None, _, None) => Err(BackendError::UnknownGroup(
            "a group needs an id or a name".into(),
        )),
    }
}

/// The refusal of a group name no group has.
pub fn no_group_named(display: &str) -> BackendError {
    BackendError::UnknownGroup(format!("no group named '{display}'"))
}
