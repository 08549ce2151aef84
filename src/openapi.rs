//! OpenAPI 3.1 for a dialect, generated from its mapping file: the routes and their path
//! parameters, the credentials header, the request body with each member's type and
//! constraints, and the answers (the success body, and the error body of every status the
//! gateway may answer).
//!
//! Generated from the mapping's source (`MappingSpec`), so that what the document says is what
//! the engine enforces.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value, json};

use crate::dialect::Outcome;
use crate::mapping::spec::{BodySpec, FieldSpec, MappingSpec, TypeNames};

/// The OpenAPI document of the mapping file `file`, with `vars` (config over the file's own)
/// substituted into its paths.
pub fn document(file: &Path, vars: &BTreeMap<String, String>) -> Result<Value, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let spec: MappingSpec =
        toml::from_str(&text).map_err(|e| format!("{}: {}", file.display(), e.message()))?;
    let mut all_vars = spec.vars.clone();
    all_vars.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));

    let (security_scheme, header) = match spec.auth.headers.first() {
        Some(h)
            if h.name.eq_ignore_ascii_case("authorization")
                && h.scheme
                    .as_deref()
                    .is_some_and(|s| s.eq_ignore_ascii_case("bearer")) =>
        {
            (json!({"type": "http", "scheme": "bearer"}), h.name.clone())
        }
        Some(h) => (
            json!({"type": "apiKey", "in": "header", "name": h.name,
                   "description": h.scheme.as_ref().map(|s| format!("`{s} <token>`")).unwrap_or_default()}),
            h.name.clone(),
        ),
        None => (
            json!({"type": "http", "scheme": "bearer"}),
            "Authorization".into(),
        ),
    };

    let error_schema = error_schema(&spec.errors.body);
    let not_found_schema = json!({"anyOf": [error_schema.clone(), {
        "type": "object", "required": ["error", "message"],
        "properties": {"error": {"type": "string"}, "message": {"type": "string"}, "path": {"type": "string"}}
    }]});
    let error_ct = spec.errors.content_type.clone();
    let mut paths = Map::new();
    for (i, r) in spec.routes.iter().enumerate() {
        let op_kind = r.operation;
        let body = request_schema(&spec.fields, op_kind);
        for raw in &r.paths {
            let (path, params) = path_template(raw.get_ref(), &all_vars);
            let mut responses = Map::new();
            let success = match &spec.success.body {
                BodySpec::Empty => json!({"description": "done; no body"}),
                BodySpec::User => json!({"description": "the stored user, in the dialect",
                    "content": {"application/json": {"schema": {"type": "object"}}}}),
                BodySpec::Json(v) => json!({"description": "done",
                    "content": {"application/json": {"schema": literal_schema(v)}}}),
            };
            responses.insert(spec.success.status.to_string(), success);
            for o in Outcome::ALL {
                let status = spec
                    .errors
                    .outcomes
                    .get(&o)
                    .and_then(|p| p.status)
                    .unwrap_or(o.default_status());
                if o == Outcome::MethodNotAllowed {
                    continue;
                }
                let schema = if o == Outcome::NotFound {
                    not_found_schema.clone()
                } else {
                    error_schema.clone()
                };
                responses.insert(
                    status.to_string(),
                    json!({"description": o.as_str(),
                           "content": {error_ct.clone(): {"schema": schema}}}),
                );
            }
            // Headers too many or too large (hyper answers these itself, without a body).
            responses.insert(
                "431".into(),
                json!({"description": "request header fields too large"}),
            );
            let op = json!({
                "operationId": format!("{}-{}", r.name.clone().unwrap_or_else(|| format!("route-{i}")), paths.len()),
                "summary": format!("{} ({})", r.name.clone().unwrap_or_default(), op_kind.as_str()),
                "parameters": params,
                "security": [{"credentials": []}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": body}}},
                "responses": responses,
            });
            let method = r.method.get_ref().to_ascii_lowercase();
            let entry = paths.entry(path).or_insert_with(|| json!({}));
            if let Value::Object(m) = entry {
                m.insert(method, op);
            }
        }
    }
    Ok(json!({
        "openapi": "3.1.0",
        "info": {
            "title": spec.title.clone().unwrap_or_else(|| spec.dialect.get_ref().clone()),
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "The {} dialect as userbridge serves it, generated from {}. Credentials go in `{header}`.",
                spec.dialect.get_ref(),
                file.file_name().and_then(|f| f.to_str()).unwrap_or("its mapping file")
            ),
        },
        "paths": paths,
        "components": {"securitySchemes": {"credentials": security_scheme}},
    }))
}

/// `/a/{name:regex}/${var}` → the OpenAPI path and its parameters.
fn path_template(raw: &str, vars: &BTreeMap<String, String>) -> (String, Vec<Value>) {
    let mut out = String::new();
    let mut params = Vec::new();
    let mut rest = raw;
    while let Some(i) = rest.find(['{', '$']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(v) = tail.strip_prefix("${") {
            let end = v.find('}').unwrap_or(v.len());
            out.push_str(vars.get(&v[..end]).map_or("", String::as_str));
            rest = v.get(end + 1..).unwrap_or("");
        } else if let Some(p) = tail.strip_prefix('{') {
            let end = p.find('}').unwrap_or(p.len());
            let inner = &p[..end];
            let (name, re) = inner.split_once(':').unwrap_or((inner, ""));
            out.push('{');
            out.push_str(name);
            out.push('}');
            let mut schema = json!({"type": "string"});
            if let Some(ci) = re.strip_prefix("(?i)")
                && ci.chars().all(|c| c.is_ascii_alphanumeric())
            {
                // A case-insensitive literal: its spellings.
                schema["enum"] = json!([ci.to_ascii_lowercase(), ci.to_ascii_uppercase()]);
            } else if !re.is_empty() {
                schema["pattern"] = json!(format!("^(?:{re})$"));
            }
            params.push(json!({"name": name, "in": "path", "required": true, "schema": schema}));
            rest = p.get(end + 1..).unwrap_or("");
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    (out, params)
}

/// The JSON Schema of the request body: the members the fields read (`$.a.b`), nested.
fn request_schema(fields: &[FieldSpec], op: crate::canonical::OpKind) -> Value {
    let mut root = json!({"type": "object"});
    for f in fields {
        if f.operations.as_ref().is_some_and(|ops| !ops.contains(&op)) {
            continue;
        }
        if !f.parts.is_empty() {
            for p in f.parts.values() {
                add_member(&mut root, p);
            }
            continue;
        }
        add_member(&mut root, f);
    }
    root
}

fn add_member(root: &mut Value, f: &FieldSpec) {
    let Some(src) = f.source.as_ref().map(|s| s.get_ref().as_str()) else {
        return;
    };
    let Some(path) = src.strip_prefix("$.") else {
        return;
    };
    let steps: Vec<&str> = path.split('.').collect();
    if steps
        .iter()
        .any(|s| s.is_empty() || s.contains(['[', '*', '?']))
    {
        return;
    }
    let mut node = root;
    for (i, step) in steps.iter().enumerate() {
        let last = i + 1 == steps.len();
        let Some(m) = node.as_object_mut() else {
            return;
        };
        if last && f.required {
            let req = m.entry("required").or_insert_with(|| json!([]));
            if let Value::Array(a) = req
                && !a.iter().any(|x| x == *step)
            {
                a.push(json!(step));
            }
        }
        let Value::Object(props) = m.entry("properties").or_insert_with(|| json!({})) else {
            return;
        };
        let child = props
            .entry((*step).to_owned())
            .or_insert_with(|| json!({"type": "object"}));
        if last {
            *child = member_schema(f);
            return;
        }
        node = child;
    }
}

/// One member's schema from its field: type, nullability, lengths, bounds, items.
fn member_schema(f: &FieldSpec) -> Value {
    let mut s = Map::new();
    let names: Vec<&'static str> = match f.ty.as_ref().map(|t| t.get_ref()) {
        Some(TypeNames::One(t)) => vec![type_name(t)],
        Some(TypeNames::Many(ts)) => ts.iter().map(|t| type_name(t)).collect(),
        None => vec![],
    };
    let mut types: Vec<Value> = names.iter().map(|t| json!(t)).collect();
    if f.nullable.unwrap_or(true) && !types.is_empty() {
        types.push(json!("null"));
    }
    match types.len() {
        0 => {}
        1 => {
            s.insert("type".into(), types.remove(0));
        }
        _ => {
            s.insert("type".into(), Value::Array(types));
        }
    }
    // Transforms run before the checks; bounds are stated only where no transform changes
    // the value first.
    if f.transform.is_empty() {
        if let Some(n) = f.min_length {
            s.insert("minLength".into(), json!(n));
        }
        if let Some(n) = f.max_length {
            s.insert("maxLength".into(), json!(n));
        }
        if let Some(n) = f.min {
            s.insert("minimum".into(), json!(n));
        }
        if let Some(n) = f.max {
            s.insert("maximum".into(), json!(n));
        }
        // Patterns in the common subset of Rust's and ECMA-262's syntax (no inline flags or
        // groups with `(?`), as JSON Schema reads them.
        if let Some(p) = &f.pattern
            && !f.ignore_case
            && !p.get_ref().contains("(?")
        {
            s.insert("pattern".into(), json!(p.get_ref()));
        }
        if f.format == Some(crate::mapping::spec::Format::Email) {
            s.insert("format".into(), json!("email"));
        }
    }
    if let Some(items) = &f.items {
        let mut item = if items.fields.is_empty() {
            member_schema(items)
        } else {
            let mut obj = json!({"type": "object"});
            for sub in &items.fields {
                add_member(&mut obj, sub);
            }
            obj
        };
        if let Value::Object(m) = &mut item
            && items.fields.is_empty()
            && items.ty.is_none()
        {
            m.remove("type");
        }
        s.insert("items".into(), item);
    } else if !f.fields.is_empty() {
        let mut obj = json!({"type": "object"});
        for sub in &f.fields {
            add_member(&mut obj, sub);
        }
        if let Some(p) = obj.get("properties") {
            s.insert("properties".into(), p.clone());
        }
    }
    if let Some(m) = &f.message {
        s.insert("description".into(), json!(m));
    }
    Value::Object(s)
}

fn type_name(t: &str) -> &'static str {
    match t {
        "string" => "string",
        "integer" | "int32" => "integer",
        "number" => "number",
        "boolean" => "boolean",
        "array" => "array",
        "object" => "object",
        _ => "string",
    }
}

/// The error body: an object with the template's top-level members.
fn error_schema(template: &Value) -> Value {
    let mut props = Map::new();
    if let Value::Object(m) = template {
        for k in m.keys() {
            props.insert(k.clone(), json!({}));
        }
    }
    let required: Vec<&String> = props.keys().collect();
    json!({"type": "object", "required": required, "properties": props})
}

/// A fixed body as a schema that accepts exactly its members and their types.
fn literal_schema(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let props: Map<String, Value> = m
                .iter()
                .map(|(k, x)| (k.clone(), literal_schema(x)))
                .collect();
            let required: Vec<&String> = m.keys().collect();
            json!({"type": "object", "required": required, "properties": props})
        }
        Value::String(_) => json!({"type": "string"}),
        Value::Number(_) => json!({"type": "number"}),
        Value::Bool(_) => json!({"type": "boolean"}),
        Value::Array(_) => json!({"type": "array"}),
        Value::Null => json!({"type": "null"}),
    }
}
