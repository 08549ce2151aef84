//! An update as an RFC 7644 §3.5.2 PATCH: one operation per changed attribute, computed from
//! the stored user, the changes and their merge.

use serde_json::{Map, Value, json};

/// The PatchOp message URN.
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// The PATCH operations that turn `stored` into `merged`, for the attributes `changes` names.
/// A complex change becomes one operation per sub-attribute it names (`name.givenName`,
/// `urn:…:User:mfa.enabled`), as the change itself is a merge; arrays and scalars are
/// replaced. Secrets, which a provider never returns, are removed when cleared even though
/// `stored` cannot show them.
pub fn operations(
    stored: &Map<String, Value>,
    merged: &Map<String, Value>,
    changes: &Map<String, Value>,
    is_secret: impl Fn(&str) -> bool,
) -> Vec<Value> {
    let mut ops = Vec::new();
    walk(
        &mut ops,
        "",
        1,
        Some(stored),
        Some(merged),
        changes,
        &is_secret,
    );
    ops
}

/// Walks `changes` below `prefix`. `level` counts attribute names in the paths made here: 1
/// for an attribute (of the core schema or of an extension), 2 for a sub-attribute, the
/// deepest SCIM paths go.
fn walk(
    ops: &mut Vec<Value>,
    prefix: &str,
    level: u8,
    stored: Option<&Map<String, Value>>,
    merged: Option<&Map<String, Value>>,
    changes: &Map<String, Value>,
    is_secret: &dyn Fn(&str) -> bool,
) {
    for (k, v) in changes {
        let path = match (prefix, level) {
            ("", _) => k.clone(),
            (p, 1) => format!("{p}:{k}"),
            (p, _) => format!("{p}.{k}"),
        };
        let old = stored.and_then(|m| m.get(k));
        let new = merged.and_then(|m| m.get(k));
        let (old_map, new_map) = (
            old.and_then(Value::as_object),
            new.and_then(Value::as_object),
        );
        let into = match v {
            // An extension's attributes are addressed as `urn:…:User:attr`.
            Value::Object(_) if level == 1 && prefix.is_empty() && k.starts_with("urn:") => Some(1),
            Value::Object(_) if level == 1 && (old.is_none() || old_map.is_some()) => Some(2),
            _ => None,
        };
        match (v, into) {
            (Value::Object(sub), Some(l)) if !is_secret(&path) => {
                walk(ops, &path, l, old_map, new_map, sub, is_secret);
            }
            _ => one(ops, &path, old, new, is_secret(&path)),
        }
    }
}

fn one(ops: &mut Vec<Value>, path: &str, old: Option<&Value>, new: Option<&Value>, secret: bool) {
    match (old, new) {
        (None, None) if secret => ops.push(json!({"op": "remove", "path": path})),
        (None, None) => {}
        (Some(_), None) => ops.push(json!({"op": "remove", "path": path})),
        (Some(o), Some(n)) if o == n => {}
        (Some(_), Some(n @ Value::Object(_))) => {
            ops.push(json!({"op": "remove", "path": path}));
            ops.push(json!({"op": "add", "path": path, "value": n}));
        }
        (None, Some(n)) => ops.push(json!({"op": "add", "path": path, "value": n})),
        (Some(_), Some(n)) => ops.push(json!({"op": "replace", "path": path, "value": n})),
    }
}

/// The PATCH request body.
pub fn body(ops: Vec<Value>) -> Value {
    json!({"schemas": [PATCH_SCHEMA], "Operations": ops})
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::json::tests::obj;

    #[test]
    fn one_operation_per_changed_attribute() {
        let ext = "urn:x:User";
        let stored = obj(
            json!({"userName": "a", "name": {"givenName": "A", "familyName": "B"},
            "title": "t", "emails": [{"value": "a@x", "primary": true}],
            ext: {"locked": true, "notes": "n", "mfa": {"enabled": true}}}),
        );
        let changes = obj(
            json!({"userName": "a", "name": {"givenName": "C", "middleName": null},
            "title": null, "displayName": "D", "password": null,
            "emails": [{"value": "b@x", "primary": true}],
            ext: {"locked": false, "notes": null, "mfa": {"secret": null, "enabled": false}}}),
        );
        let merged = obj(
            json!({"userName": "a", "name": {"givenName": "C", "familyName": "B"},
            "displayName": "D", "emails": [{"value": "b@x", "primary": true}],
            ext: {"locked": false, "mfa": {"enabled": false}}}),
        );
        let secret = |p: &str| p == "password" || p == "urn:x:User:mfa.secret";
        let ops = operations(&stored, &merged, &changes, secret);
        assert_eq!(
            ops,
            vec![
                json!({"op": "replace", "path": "name.givenName", "value": "C"}),
                json!({"op": "remove", "path": "title"}),
                json!({"op": "add", "path": "displayName", "value": "D"}),
                json!({"op": "remove", "path": "password"}),
                json!({"op": "replace", "path": "emails", "value": [{"value": "b@x", "primary": true}]}),
                json!({"op": "replace", "path": "urn:x:User:locked", "value": false}),
                json!({"op": "remove", "path": "urn:x:User:notes"}),
                json!({"op": "remove", "path": "urn:x:User:mfa.secret"}),
                json!({"op": "replace", "path": "urn:x:User:mfa.enabled", "value": false}),
            ]
        );
    }
}
