//! The migration commands: `import` (JSON Lines of dialect bodies into a backend, every line
//! accounted for), `export` (a backend's users as dialect bodies), `convert` (one dialect's
//! bodies into another's, offline, naming what is lost) and `diff` (two backends compared
//! attribute by attribute). What they share is here: the line format and the user's identity.

pub mod cli;
pub mod convert;
pub mod diff;
pub mod export;
pub mod import;

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::canonical::{Operation, UserDoc};
use crate::dialect::route::Params;
use crate::mapping::Mapping;

/// One input line as a request: the route's path parameters and the body.
///
/// A line is the request body itself, or, for routes with path parameters,
/// `{"params": {"userId": "42"}, "body": {…}}`.
#[derive(Debug)]
pub struct LineRequest {
    /// Path parameters.
    pub params: Params,
    /// The request body.
    pub body: Value,
}

/// Parses one line (strict JSON: duplicate members and excessive depth refused, no echo).
pub fn parse_line(text: &[u8], max_depth: usize) -> Result<LineRequest, String> {
    let v = crate::json::parse_strict(text, max_depth).map_err(|e| e.to_string())?;
    let is_envelope = matches!(&v, Value::Object(m)
        if m.contains_key("body") && m.keys().all(|k| k == "body" || k == "params"));
    if !is_envelope {
        return Ok(LineRequest {
            params: Params::new(),
            body: v,
        });
    }
    let Value::Object(mut m) = v else {
        return Err("the line must be a JSON object".into());
    };
    let mut params = Params::new();
    if let Some(p) = m.remove("params") {
        let Value::Object(p) = p else {
            return Err("params must be an object".into());
        };
        for (k, v) in p {
            let text = match v {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                _ => return Err(format!("params.{k} must be a string or a number")),
            };
            params.push((Arc::from(k.as_str()), text));
        }
    }
    Ok(LineRequest {
        params,
        body: m.remove("body").unwrap_or(Value::Null),
    })
}

/// A line for `req`: the body alone when there are no parameters.
pub fn line_of(params: &Params, body: Value) -> Value {
    if params.is_empty() {
        return body;
    }
    let p: Map<String, Value> = params
        .iter()
        .map(|(k, v)| (k.to_string(), Value::String(v.clone())))
        .collect();
    serde_json::json!({"params": p, "body": body})
}

/// The route lines go through: the one named, else the first that creates, else the first.
pub fn pick_route(mapping: &Mapping, name: Option<&str>) -> Result<usize, String> {
    match name {
        Some(n) => mapping
            .routes
            .iter()
            .position(|r| &*r.name == n)
            .ok_or_else(|| {
                let known: Vec<&str> = mapping.routes.iter().map(|r| &*r.name).collect();
                format!(
                    "{} has no route `{n}` (routes: {})",
                    mapping.dialect,
                    known.join(", ")
                )
            }),
        None => Ok(mapping
            .routes
            .iter()
            .position(|r| r.kind == crate::mapping::RouteKind::Create)
            .unwrap_or(0)),
    }
}

/// The canonical user an operation describes, for rendering in another dialect: its user
/// with the identifying attributes of its target, and its groups when they are a whole list.
pub fn user_of_operation(op: &Operation) -> UserDoc {
    let mut doc = op.user.exposed().clone();
    if let Some(t) = &op.target {
        for (k, v) in t.exposed() {
            match (doc.get_mut(k), v) {
                (Some(Value::Object(mine)), Value::Object(theirs)) => {
                    for (ik, iv) in theirs {
                        mine.entry(ik.clone()).or_insert_with(|| iv.clone());
                    }
                }
                (None, _) => {
                    doc.insert(k.clone(), v.clone());
                }
                _ => {}
            }
        }
    }
    if let Some(g) = &op.groups
        && g.op != crate::canonical::GroupOp::Remove
    {
        let values: Vec<Value> = g
            .values
            .iter()
            .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
            .collect();
        doc.insert("groups".into(), Value::Array(values));
    }
    drop_nulls(&mut doc);
    UserDoc(doc)
}

/// Removes `null` members, recursively (absent and null mean the same in a whole user).
pub fn drop_nulls(doc: &mut Map<String, Value>) {
    doc.retain(|_, v| !v.is_null());
    for v in doc.values_mut() {
        if let Value::Object(inner) = v {
            drop_nulls(inner);
        }
    }
    doc.retain(|_, v| !matches!(v, Value::Object(m) if m.is_empty()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_bodies_or_envelopes() {
        let l = parse_line(br#"{"userKey":{"username":"a"}}"#, 32).unwrap();
        assert!(l.params.is_empty());
        assert!(l.body.get("userKey").is_some());
        let l = parse_line(br#"{"params":{"userId":7},"body":{"fullName":"A"}}"#, 32).unwrap();
        assert_eq!(l.params, vec![(Arc::from("userId"), "7".to_owned())]);
        assert_eq!(l.body["fullName"], "A");
        // A body that merely has a `body` member among others stays a body.
        let l = parse_line(br#"{"body":"x","notes":"y"}"#, 32).unwrap();
        assert_eq!(l.body["notes"], "y");
        assert!(parse_line(b"{\"a\":1,\"a\":2}", 32).is_err());
        assert!(
            parse_line(b"{\"password\":\"s3cret", 32)
                .unwrap_err()
                .find("s3cret")
                .is_none()
        );
    }
}
