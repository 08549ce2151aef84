//! RFC 7644 §3.5.2 PATCH on a user document: `add`, `replace` and `remove`, with or without
//! a path; paths `attr`, `attr.sub`, `urn:…:User:attr[.sub]`, `attr[filter]` and
//! `attr[filter].sub`, where a filter is any RFC 7644 filter on the attribute's
//! sub-attributes ([`crate::filter`]), with the same meaning as in a search.
//!
//! What real provisioning clients send is accepted too: operation names in any case
//! (`Replace`), attribute names in any case, booleans as strings (`"False"`) for boolean
//! attributes, `add` through a filter that matches nothing (a new element is made from the
//! filter's `eq` terms), `remove` of multi-valued items given in `value`, and a single
//! complex attribute given as a bare id (Entra's `manager`), which is its `value`.

use serde_json::{Map, Value};

use crate::canonical::schemas::{AttrInfo, Schemas, USER, find_key, split_schema};
use crate::canonical::{CORE_SCHEMA, ENTERPRISE_SCHEMA, EXT_SCHEMA};

/// Why a PATCH was refused: the SCIM `scimType` and a message.
#[derive(Debug, PartialEq)]
pub struct PatchError {
    /// `invalidSyntax`, `invalidPath`, `invalidFilter`, `noTarget`, `mutability`,
    /// `invalidValue`.
    pub scim_type: &'static str,
    /// What is wrong, naming the path.
    pub message: String,
}

fn err(scim_type: &'static str, message: impl Into<String>) -> PatchError {
    PatchError {
        scim_type,
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Add,
    Replace,
    Remove,
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq)]
struct Path {
    /// The extension the attribute belongs to; `None` for the core schema.
    schema: Option<&'static str>,
    attr: String,
    filter: Option<crate::filter::Filter>,
    sub: Option<String>,
}

/// Applies a PatchOp message to a user document.
pub fn apply(doc: &mut Map<String, Value>, body: &Value) -> Result<(), PatchError> {
    apply_with(doc, body, &USER)
}

/// Applies a PatchOp message to `doc`, a resource of `schemas`.
pub fn apply_with(
    doc: &mut Map<String, Value>,
    body: &Value,
    schemas: &Schemas,
) -> Result<(), PatchError> {
    let ops = body
        .get("Operations")
        .or_else(|| body.get("operations"))
        .and_then(Value::as_array)
        .ok_or_else(|| err("invalidSyntax", "a PatchOp needs an `Operations` array"))?;
    for (i, o) in ops.iter().enumerate() {
        let op = match o
            .get("op")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase)
        {
            Some(s) if s == "add" => Op::Add,
            Some(s) if s == "replace" => Op::Replace,
            Some(s) if s == "remove" => Op::Remove,
            _ => {
                return Err(err(
                    "invalidSyntax",
                    format!("Operations[{i}].op must be add, replace or remove"),
                ));
            }
        };
        let value = o.get("value");
        match o
            .get("path")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
        {
            Some(p) => {
                let path = parse_path(p, schemas)?;
                one(doc, op, &path, value, true, schemas)?;
            }
            None if op == Op::Remove => {
                return Err(err(
                    "noTarget",
                    format!("Operations[{i}]: remove needs a path"),
                ));
            }
            None => {
                let Some(Value::Object(m)) = value else {
                    return Err(err(
                        "invalidValue",
                        format!("Operations[{i}]: without a path, the value must be an object"),
                    ));
                };
                for (k, v) in m {
                    match (known_schema(k), v) {
                        (Some(schema), Value::Object(sub)) if schema != CORE_SCHEMA => {
                            for (sk, sv) in sub {
                                let path = parse_path(&format!("{schema}:{sk}"), schemas)?;
                                one(doc, op, &path, Some(sv), false, schemas)?;
                            }
                        }
                        _ => {
                            let path = parse_path(k, schemas)?;
                            one(doc, op, &path, Some(v), false, schemas)?;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn known_schema(s: &str) -> Option<&'static str> {
    [CORE_SCHEMA, ENTERPRISE_SCHEMA, EXT_SCHEMA]
        .into_iter()
        .find(|u| u.eq_ignore_ascii_case(s))
}

fn parse_path(p: &str, schemas: &Schemas) -> Result<Path, PatchError> {
    let (schema, rest) =
        split_schema(p).map_err(|()| err("invalidPath", format!("`{p}`: unknown schema")))?;
    // A whole extension, addressed by its URN: a complex attribute of the document.
    if let (Some(ext), "") = (schema, rest) {
        return Ok(Path {
            schema: None,
            attr: ext.to_owned(),
            filter: None,
            sub: None,
        });
    }
    let end = rest.find(['[', '.']).unwrap_or(rest.len());
    let attr = &rest[..end];
    if attr.is_empty()
        || !attr
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_$-".contains(c))
    {
        return Err(err("invalidPath", format!("`{p}`: not an attribute path")));
    }
    let mut tail = &rest[end..];
    let mut filter = None;
    if let Some(f) = tail.strip_prefix('[') {
        let close =
            closing_bracket(f).ok_or_else(|| err("invalidPath", format!("`{p}`: unclosed `[`")))?;
        let parent = match schema {
            Some(s) => format!("{s}:{attr}"),
            None => attr.to_owned(),
        };
        filter = Some(
            crate::filter::parse_within(&f[..close], &parent, schemas)
                .map_err(|e| err(e.scim_type, format!("`{p}`: {}", e.message)))?,
        );
        tail = &f[close + 1..];
    }
    let sub = match tail.strip_prefix('.') {
        Some(s) if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '$') => {
            Some(s.to_owned())
        }
        None if tail.is_empty() => None,
        _ => return Err(err("invalidPath", format!("`{p}`: not an attribute path"))),
    };
    let mut path = Path {
        schema,
        attr: attr.to_owned(),
        filter,
        sub,
    };
    // The schema's own spelling of the names.
    if let Some(i) = info(schemas, &path.schema, &path.attr, None) {
        path.attr.clone_from(&i.name);
    }
    if let Some(s) = &path.sub
        && let Some(i) = info(schemas, &path.schema, &path.attr, Some(s))
    {
        path.sub = Some(i.name.clone());
    }
    Ok(path)
}

fn info<'a>(
    schemas: &'a Schemas,
    schema: &Option<&'static str>,
    attr: &str,
    sub: Option<&str>,
) -> Option<&'a AttrInfo> {
    let base = match schema {
        Some(s) => format!("{s}:{attr}"),
        None => attr.to_owned(),
    };
    match sub {
        Some(s) => schemas.attr(&format!("{base}.{s}")),
        None => schemas.attr(&base),
    }
}

/// Where the `]` that closes a value filter is (none inside a string literal).
fn closing_bracket(f: &str) -> Option<usize> {
    let (mut in_string, mut escaped) = (false, false);
    for (i, c) in f.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            ']' if !in_string => return Some(i),
            _ => {}
        }
    }
    None
}

fn coerce(info: Option<&AttrInfo>, v: &Value) -> Value {
    match (info, v) {
        (Some(i), Value::String(s)) if i.kind == "boolean" && !i.multi => {
            if s.eq_ignore_ascii_case("true") {
                Value::Bool(true)
            } else if s.eq_ignore_ascii_case("false") {
                Value::Bool(false)
            } else {
                v.clone()
            }
        }
        // A single complex value given as its id (Entra sends `manager` so): `{"value": …}`.
        (Some(i), Value::String(s)) if i.kind == "complex" && !i.multi => {
            serde_json::json!({ "value": s })
        }
        _ => v.clone(),
    }
}

/// The object holding the path's attribute (the document, or its extension member).
fn container<'a>(
    doc: &'a mut Map<String, Value>,
    schema: Option<&'static str>,
    create: bool,
) -> Option<&'a mut Map<String, Value>> {
    match schema {
        None => Some(doc),
        Some(s) => {
            if create && !doc.contains_key(s) {
                doc.insert(s.to_owned(), Value::Object(Map::new()));
            }
            doc.get_mut(s).and_then(Value::as_object_mut)
        }
    }
}

/// The existing key spelled like `name` in any case, else `name`.
fn key_in(m: &Map<String, Value>, name: &str) -> String {
    find_key(m, name)
        .cloned()
        .unwrap_or_else(|| name.to_owned())
}

fn one(
    doc: &mut Map<String, Value>,
    op: Op,
    path: &Path,
    value: Option<&Value>,
    by_path: bool,
    schemas: &Schemas,
) -> Result<(), PatchError> {
    let attr_info = info(schemas, &path.schema, &path.attr, None);
    let sub_info = path
        .sub
        .as_deref()
        .and_then(|s| info(schemas, &path.schema, &path.attr, Some(s)));
    let shown = match (path.schema, &path.sub) {
        (Some(s), Some(sub)) => format!("{s}:{}.{sub}", path.attr),
        (Some(s), None) => format!("{s}:{}", path.attr),
        (None, Some(sub)) => format!("{}.{sub}", path.attr),
        (None, None) => path.attr.clone(),
    };
    let read_only = |i: Option<&AttrInfo>| i.is_some_and(|i| i.mutability == "readOnly");
    if matches!(
        path.attr.to_ascii_lowercase().as_str(),
        "id" | "meta" | "schemas"
    ) || read_only(attr_info)
        || read_only(sub_info)
    {
        // A read-only attribute restated as it is, as Okta restates `id` beside the
        // attributes it replaces, changes nothing.
        let unchanged = path.sub.is_none()
            && path.filter.is_none()
            && op != Op::Remove
            && value.is_some()
            && find_key(doc, &path.attr).and_then(|k| doc.get(k)) == value;
        if unchanged && path.schema.is_none() {
            return Ok(());
        }
        return Err(err("mutability", format!("`{shown}` is read-only")));
    }
    let value = match (op, value) {
        (Op::Remove, v) => v.cloned(),
        (_, Some(v)) => Some(coerce(sub_info.or(attr_info), v)),
        (_, None) => return Err(err("invalidValue", format!("`{shown}`: a value is needed"))),
    };
    let Some(c) = container(doc, path.schema, op != Op::Remove) else {
        return match op {
            Op::Remove => Ok(()),
            _ => Err(err("invalidPath", format!("`{shown}`: no such extension"))),
        };
    };
    let key = key_in(c, &path.attr);
    let multi = attr_info.is_some_and(|i| i.multi)
        || matches!(c.get(&key), Some(Value::Array(_)))
        || (path.sub.is_none() && path.filter.is_none() && matches!(value, Some(Value::Array(_))));
    let result = match (&path.filter, &path.sub) {
        (None, None) => whole(c, &key, op, value, multi, by_path),
        (None, Some(sub)) => sub_attr(c, &key, sub, op, value, multi),
        (Some(f), sub) => filtered(c, &key, f, sub.as_deref(), op, value, &shown),
    };
    // An extension left empty goes away.
    if let Some(s) = path.schema
        && doc
            .get(s)
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
    {
        doc.shift_remove(s);
    }
    result
}

fn whole(
    c: &mut Map<String, Value>,
    key: &str,
    op: Op,
    value: Option<Value>,
    multi: bool,
    by_path: bool,
) -> Result<(), PatchError> {
    match (op, value) {
        (Op::Remove, Some(Value::Array(items))) if multi => {
            // Remove the listed items (by their `value` when they have one).
            if let Some(Value::Array(existing)) = c.get_mut(key) {
                existing.retain(|e| {
                    !items
                        .iter()
                        .any(|i| match (i.get("value"), e.get("value")) {
                            (Some(a), Some(b)) => a == b,
                            _ => i == e,
                        })
                });
                if existing.is_empty() {
                    c.shift_remove(key);
                }
            }
        }
        (Op::Remove, _) => {
            c.shift_remove(key);
        }
        (_, None | Some(Value::Null)) => {
            c.shift_remove(key);
        }
        (Op::Add, Some(v)) if multi => {
            let items = match v {
                Value::Array(a) => a,
                other => vec![other],
            };
            let list = c
                .entry(key.to_owned())
                .or_insert_with(|| Value::Array(Vec::new()));
            if !list.is_array() {
                *list = Value::Array(Vec::new());
            }
            if let Value::Array(existing) = list {
                for i in items {
                    if !existing.contains(&i) {
                        existing.push(i);
                    }
                }
            }
        }
        // A complex attribute (or a whole extension) the path names is set to the value;
        // sub-attributes change one by one through `attr.sub` paths or a path-less value.
        (_, Some(v @ Value::Object(_))) if !multi && by_path => {
            c.insert(key.to_owned(), v);
        }
        (_, Some(Value::Object(m))) if !multi => match c.get_mut(key) {
            // A complex attribute: the sub-attributes named change, the others stay.
            Some(Value::Object(existing)) => {
                for (k, v) in m {
                    let k = key_in(existing, &k);
                    if v.is_null() {
                        existing.shift_remove(&k);
                    } else {
                        existing.insert(k, v);
                    }
                }
            }
            _ => {
                c.insert(key.to_owned(), Value::Object(m));
            }
        },
        (Op::Replace, Some(v)) if multi => {
            let items = match v {
                Value::Array(a) => a,
                other => vec![other],
            };
            c.insert(key.to_owned(), Value::Array(items));
        }
        (_, Some(v)) => {
            c.insert(key.to_owned(), v);
        }
    }
    Ok(())
}

fn sub_attr(
    c: &mut Map<String, Value>,
    key: &str,
    sub: &str,
    op: Op,
    value: Option<Value>,
    multi: bool,
) -> Result<(), PatchError> {
    let set = |m: &mut Map<String, Value>, v: &Option<Value>| {
        let k = key_in(m, sub);
        match (op, v) {
            (Op::Remove, _) | (_, None | Some(Value::Null)) => {
                m.shift_remove(&k);
            }
            (_, Some(v)) => {
                m.insert(k, v.clone());
            }
        }
    };
    if multi {
        if let Some(Value::Array(items)) = c.get_mut(key) {
            for i in items.iter_mut().filter_map(Value::as_object_mut) {
                set(i, &value);
            }
        }
        return Ok(());
    }
    if op != Op::Remove && !matches!(c.get(key), Some(Value::Object(_))) {
        c.insert(key.to_owned(), Value::Object(Map::new()));
    }
    if let Some(Value::Object(m)) = c.get_mut(key) {
        set(m, &value);
        if m.is_empty() {
            c.shift_remove(key);
        }
    }
    Ok(())
}

fn filtered(
    c: &mut Map<String, Value>,
    key: &str,
    filter: &crate::filter::Filter,
    sub: Option<&str>,
    op: Op,
    value: Option<Value>,
    shown: &str,
) -> Result<(), PatchError> {
    let items = match c.get_mut(key) {
        Some(Value::Array(items)) => items,
        _ if op == Op::Add => {
            c.insert(key.to_owned(), Value::Array(Vec::new()));
            match c.get_mut(key) {
                Some(Value::Array(items)) => items,
                _ => return Ok(()),
            }
        }
        _ if op == Op::Remove => return Ok(()),
        _ => return Err(err("noTarget", format!("`{shown}` matches nothing"))),
    };
    let hits: Vec<usize> = (0..items.len())
        .filter(|&i| items[i].as_object().is_some_and(|o| filter.matches(o)))
        .collect();
    if hits.is_empty() {
        match op {
            Op::Remove => return Ok(()),
            Op::Replace if sub.is_none() => {
                return Err(err("noTarget", format!("`{shown}` matches nothing")));
            }
            // A new element made of the filter's `eq` terms and the value (what Entra ID's
            // `emails[type eq "work"].value` expects).
            _ => {
                let mut fresh = Map::new();
                for (k, v) in filter.eq_terms() {
                    fresh.insert(k.to_owned(), v.clone());
                }
                match (sub, value) {
                    (Some(s), Some(v)) => {
                        fresh.insert(s.to_owned(), v);
                    }
                    (None, Some(Value::Object(m))) => fresh.extend(m),
                    _ => {}
                }
                items.push(Value::Object(fresh));
                return Ok(());
            }
        }
    }
    for &i in hits.iter().rev() {
        match (op, sub, &value) {
            (Op::Remove, None, _) => {
                items.remove(i);
            }
            (_, Some(s), v) => {
                if let Some(m) = items[i].as_object_mut() {
                    let k = key_in(m, s);
                    match (op, v) {
                        (Op::Remove, _) | (_, None | Some(Value::Null)) => {
                            m.shift_remove(&k);
                        }
                        (_, Some(v)) => {
                            m.insert(k, v.clone());
                        }
                    }
                }
            }
            (Op::Add, None, Some(Value::Object(m))) => {
                if let Some(e) = items[i].as_object_mut() {
                    for (k, v) in m {
                        e.insert(key_in(e, k), v.clone());
                    }
                }
            }
            (_, None, Some(v)) => items[i] = v.clone(),
            (_, None, None) => {}
        }
    }
    if items.is_empty() {
        c.shift_remove(key);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(doc: Value, ops: Value) -> Result<Value, PatchError> {
        let mut d = doc.as_object().cloned().unwrap_or_default();
        apply(&mut d, &json!({"schemas": [], "Operations": ops}))?;
        Ok(Value::Object(d))
    }

    #[test]
    fn paths_with_schemas_filters_and_sub_attributes() {
        let doc = json!({"userName": "a", "emails": [
            {"value": "a@x", "type": "work", "primary": true}, {"value": "b@x", "type": "home"}]});
        let out = run(doc, json!([
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "c@x"},
            {"op": "remove", "path": "emails[type eq \"home\"]"},
            {"op": "add", "path": "name.givenName", "value": "G"},
            {"op": "add", "path": "urn:userbridge:params:scim:schemas:extension:2.0:User:locked", "value": "True"},
            {"op": "replace", "value": {"displayName": "D", "ACTIVE": "False"}},
        ]))
        .unwrap();
        assert_eq!(
            out,
            json!({"userName": "a", "emails": [{"value": "c@x", "type": "work", "primary": true}],
                   "name": {"givenName": "G"},
                   "urn:userbridge:params:scim:schemas:extension:2.0:User": {"locked": true},
                   "displayName": "D", "active": false})
        );
    }

    /// A PATCH path's value filter is the search grammar: `or`, `not`, a `]` inside a string,
    /// case-exactness from the schema.
    #[test]
    fn value_filters_take_the_whole_grammar() {
        let doc = json!({"userName": "a", "emails": [
            {"value": "a]b@x", "type": "work"}, {"value": "c@x", "type": "home"},
            {"value": "d@x", "type": "other", "primary": true}]});
        let out = run(doc, json!([
            {"op": "remove", "path": "emails[value eq \"A]B@X\" or (type eq \"HOME\" and not (primary eq true))]"},
        ]))
        .unwrap();
        assert_eq!(
            out["emails"],
            json!([{"value": "d@x", "type": "other", "primary": true}])
        );
        let e = run(
            json!({}),
            json!([{"op": "remove", "path": "emails[nope eq 1]"}]),
        )
        .unwrap_err();
        assert_eq!(e.scim_type, "invalidPath", "{e:?}");
    }

    #[test]
    fn add_through_an_unmatched_filter_makes_the_element() {
        let out = run(
            json!({"userName": "a"}),
            json!([
                {"op": "add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555"}
            ]),
        )
        .unwrap();
        assert_eq!(
            out["phoneNumbers"],
            json!([{"type": "mobile", "value": "+1 555"}])
        );
    }

    #[test]
    fn remove_needs_a_path_and_read_only_is_refused() {
        assert_eq!(
            run(json!({}), json!([{"op": "remove"}]))
                .unwrap_err()
                .scim_type,
            "noTarget"
        );
        assert_eq!(
            run(
                json!({}),
                json!([{"op": "replace", "path": "id", "value": "x"}])
            )
            .unwrap_err()
            .scim_type,
            "mutability"
        );
        assert_eq!(
            run(json!({}), json!([{"op": "move", "path": "a"}]))
                .unwrap_err()
                .scim_type,
            "invalidSyntax"
        );
        assert_eq!(
            run(
                json!({}),
                json!([{"op": "add", "path": "emails[type xx 1]", "value": 1}])
            )
            .unwrap_err()
            .scim_type,
            "invalidFilter"
        );
    }
}
