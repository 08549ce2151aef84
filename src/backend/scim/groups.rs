//! The configured groups on a SCIM provider: each `[[groups]]` entry is the provider's group of
//! the same `displayName`, created there when missing. Memberships change through
//! `PATCH /Groups/{id}` (RFC 7644 §3.5.2), the way providers expect.

use serde_json::{Value, json};

use super::patch;
use crate::backend::BackendError;
use crate::canonical::GroupRef;
use crate::config::GroupConfig;

/// One configured group and its id on the provider.
#[derive(Debug, Clone)]
pub struct Group {
    /// The configured (numeric) id, what the dialects address.
    pub id: i64,
    /// The name (`displayName` on the provider).
    pub name: String,
    /// The provider's id.
    pub remote: String,
}

/// The configured groups, resolved on the provider.
#[derive(Debug, Default)]
pub struct Groups(pub Vec<Group>);

impl Groups {
    /// The group a reference names: by id, checked against the name when both are given, or
    /// by name alone. Unknown: an error naming what was asked for.
    pub fn find(&self, r: &GroupRef) -> Result<&Group, BackendError> {
        match (&r.value, &r.display) {
            (Some(v), display) => {
                let g = v
                    .parse::<i64>()
                    .ok()
                    .and_then(|n| self.0.iter().find(|g| g.id == n))
                    .ok_or_else(|| BackendError::UnknownGroup(format!("no group with id {v}")))?;
                match display {
                    Some(d) if *d != g.name => Err(BackendError::UnknownGroup(format!(
                        "group {} is called '{}', not '{d}'",
                        g.id, g.name
                    ))),
                    _ => Ok(g),
                }
            }
            (None, Some(d)) => self
                .0
                .iter()
                .find(|g| g.name == *d)
                .ok_or_else(|| BackendError::UnknownGroup(format!("no group named '{d}'"))),
            (None, None) => Err(BackendError::UnknownGroup(
                "a group needs an id or a name".into(),
            )),
        }
    }

    /// A provider group as a canonical reference: the configured id and name when it is a
    /// configured group, else the provider's own id and name.
    pub fn canonical(&self, remote: &str, display: Option<&str>) -> Value {
        match self.0.iter().find(|g| g.remote == remote) {
            Some(g) => json!({"value": g.id.to_string(), "display": g.name}),
            None => {
                let mut v = json!({ "value": remote });
                if let (Some(d), Value::Object(m)) = (display, &mut v) {
                    m.insert("display".into(), Value::String(d.to_owned()));
                }
                v
            }
        }
    }
}

/// The body that adds `user` to a group.
pub fn add_member(user: &str) -> Value {
    patch::body(vec![
        json!({"op": "add", "path": "members", "value": [{"value": user}]}),
    ])
}

/// The body that removes `user` from a group.
pub fn remove_member(user: &str) -> Value {
    let filter = format!("members[value eq {}]", quote(user));
    patch::body(vec![json!({"op": "remove", "path": filter})])
}

/// A SCIM filter string literal (JSON string syntax, RFC 7644 §3.4.2.2).
pub fn quote(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// The groups to create or look up, from config.
pub fn wanted(cfg: &[GroupConfig]) -> impl Iterator<Item = (i64, &str)> {
    cfg.iter().map(|g| (i64::from(g.id), g.name.as_str()))
}

impl Groups {
    /// The provider's id of the group a gateway id names: a configured group's number, or
    /// the provider's own id of another group.
    pub fn remote_of<'a>(&'a self, id: &'a str) -> &'a str {
        id.parse::<i64>()
            .ok()
            .and_then(|n| self.0.iter().find(|g| g.id == n))
            .map_or(id, |g| g.remote.as_str())
    }

    /// A provider group as this gateway serves it: a configured group under its number,
    /// `meta.location` under `/scim/v2/Groups`.
    pub fn served(
        &self,
        mut doc: serde_json::Map<String, Value>,
    ) -> serde_json::Map<String, Value> {
        let remote = doc
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let id = self
            .0
            .iter()
            .find(|g| g.remote == remote)
            .map_or(remote, |g| g.id.to_string());
        if let Some(Value::Object(meta)) = doc.get_mut("meta") {
            meta.insert(
                "location".into(),
                Value::String(format!("/scim/v2/Groups/{id}")),
            );
        }
        doc.insert("id".into(), Value::String(id));
        doc
    }
}
