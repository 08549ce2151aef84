//! `attributes` and `excludedAttributes` (RFC 7644 §3.9): which attributes an answer holds.
//! `id` and `schemas` are always returned.

use serde_json::{Map, Value};

use crate::canonical::schemas::find_key as key;
use crate::canonical::{ENTERPRISE_SCHEMA, EXT_SCHEMA};

/// One requested attribute: its extension (`None` for core), name (empty for a whole
/// extension) and sub-attribute.
#[derive(Debug, PartialEq)]
struct Name {
    schema: Option<&'static str>,
    attr: String,
    sub: Option<String>,
}

fn parse(raw: &str) -> Option<Name> {
    let (schema, rest) = crate::canonical::schemas::split_schema(raw.trim()).ok()?;
    if rest.is_empty() && schema.is_none() {
        return None;
    }
    let (attr, sub) = match rest.split_once('.') {
        Some((a, s)) => (a.to_owned(), Some(s.to_owned())),
        None => (rest.to_owned(), None),
    };
    Some(Name { schema, attr, sub })
}

fn names(list: &str) -> Vec<Name> {
    list.split(',').filter_map(parse).collect()
}

/// Projects one resource. `attributes` wins over `excludedAttributes` when both are given;
/// attributes the schema returns only on request are left out unless `attributes` names them.
pub fn project(resource: Value, attributes: Option<&str>, excluded: Option<&str>) -> Value {
    let Value::Object(mut doc) = resource else {
        return resource;
    };
    if attributes.is_none_or(|l| l.trim().is_empty()) {
        for (schema, attr) in crate::canonical::schemas::USER.on_request() {
            let schema = schema.and_then(|s| {
                [ENTERPRISE_SCHEMA, EXT_SCHEMA]
                    .into_iter()
                    .find(|u| *u == s)
            });
            drop_name(
                &mut doc,
                &Name {
                    schema,
                    attr: attr.to_owned(),
                    sub: None,
                },
            );
        }
    }
    if let Some(list) = attributes.filter(|l| !l.trim().is_empty()) {
        let mut out = Map::new();
        for always in ["schemas", "id"] {
            if let Some(v) = doc.get(always) {
                out.insert(always.into(), v.clone());
            }
        }
        for n in names(list) {
            copy(&doc, &mut out, &n);
        }
        return Value::Object(out);
    }
    if let Some(list) = excluded {
        for n in names(list) {
            drop_name(&mut doc, &n);
        }
    }
    Value::Object(doc)
}

fn copy(from: &Map<String, Value>, to: &mut Map<String, Value>, n: &Name) {
    let (src, dst) = match n.schema {
        None => (Some(from), to),
        Some(s) => {
            let src = from.get(s).and_then(Value::as_object);
            if src.is_none() {
                return;
            }
            let dst = to
                .entry(s.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            match dst.as_object_mut() {
                Some(d) => (src, d),
                None => return,
            }
        }
    };
    let Some(src) = src else { return };
    if n.attr.is_empty() {
        // A whole extension.
        for (k, v) in src {
            dst.insert(k.clone(), v.clone());
        }
        return;
    }
    let Some(k) = key(src, &n.attr) else { return };
    match (&n.sub, &src[k]) {
        (None, v) => {
            dst.insert(k.clone(), v.clone());
        }
        (Some(sub), Value::Object(inner)) => {
            if let Some(sk) = key(inner, sub) {
                let slot = dst
                    .entry(k.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Some(o) = slot.as_object_mut() {
                    o.insert(sk.clone(), inner[sk].clone());
                }
            }
        }
        (Some(sub), Value::Array(items)) => {
            let picked: Vec<Value> = items
                .iter()
                .filter_map(|i| {
                    let o = i.as_object()?;
                    let sk = key(o, sub)?;
                    let mut m = Map::new();
                    m.insert(sk.clone(), o[sk].clone());
                    Some(Value::Object(m))
                })
                .collect();
            dst.insert(k.clone(), Value::Array(picked));
        }
        _ => {}
    }
}

fn drop_name(doc: &mut Map<String, Value>, n: &Name) {
    if n.schema.is_none() && matches!(n.attr.to_ascii_lowercase().as_str(), "id" | "schemas") {
        return;
    }
    let target = match n.schema {
        None => Some(&mut *doc),
        Some(s) if n.attr.is_empty() => {
            doc.shift_remove(s);
            return;
        }
        Some(s) => doc.get_mut(s).and_then(Value::as_object_mut),
    };
    let Some(t) = target else { return };
    let Some(k) = key(t, &n.attr).cloned() else {
        return;
    };
    match &n.sub {
        None => {
            t.shift_remove(&k);
        }
        Some(sub) => match t.get_mut(&k) {
            Some(Value::Object(inner)) => {
                if let Some(sk) = key(inner, sub).cloned() {
                    inner.shift_remove(&sk);
                }
            }
            Some(Value::Array(items)) => {
                for o in items.iter_mut().filter_map(Value::as_object_mut) {
                    if let Some(sk) = key(o, sub).cloned() {
                        o.shift_remove(&sk);
                    }
                }
            }
            _ => {}
        },
    }
    if let Some(s) = n.schema
        && doc
            .get(s)
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
    {
        doc.shift_remove(s);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn attributes_and_excluded_attributes() {
        let user = json!({"schemas": ["s"], "id": "1", "userName": "a",
            "name": {"givenName": "G", "familyName": "F"},
            "emails": [{"value": "a@x", "type": "work"}],
            EXT_SCHEMA: {"locked": true, "notes": "n"}});
        assert_eq!(
            project(
                user.clone(),
                Some(
                    "userName,name.givenName,emails.value,urn:userbridge:params:scim:schemas:extension:2.0:User:locked"
                ),
                None
            ),
            json!({"schemas": ["s"], "id": "1", "userName": "a", "name": {"givenName": "G"},
                   "emails": [{"value": "a@x"}], EXT_SCHEMA: {"locked": true}})
        );
        assert_eq!(
            project(
                user,
                None,
                Some("NAME,emails.type,id,urn:userbridge:params:scim:schemas:extension:2.0:User")
            ),
            json!({"schemas": ["s"], "id": "1", "userName": "a", "emails": [{"value": "a@x"}]})
        );
    }
}
