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
