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

use crate::mapping::spec::{BodySpec, FieldSpec, MappingSpec, TransformSpec, TypeNames};
use crate::rejection::Outcome;

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
        let kind = r.operation;
        // Field rules filter by the canonical operation; a read filters as an update does.
        let op_kind = kind.write().unwrap_or(crate::canonical::OpKind::Update);
        let name = r.name.clone().unwrap_or_default();
        let for_route = |f: &&FieldSpec| f.routes.as_ref().is_none_or(|rs| rs.contains(&name));
        let (own, shared): (Vec<&FieldSpec>, Vec<&FieldSpec>) = spec
            .fields
            .iter()
            .filter(for_route)
            .partition(|f| f.routes.is_some());
        let body = match r
            .members
            .as_ref()
            .map(|m| m.get_ref().trim_start_matches("$."))
        {
            // The shared rules' members sit under `members` (an object, or an array of one).
            Some(at) => {
                let mut root = request_schema(own, op_kind);
                let inner = request_schema(shared, op_kind);
                let one = json!({"anyOf": [inner.clone(), {"type": "array", "minItems": 1, "maxItems": 1, "items": inner}]});
                root["properties"][at] = one;
                let req = root
                    .as_object_mut()
                    .map(|m| m.entry("required").or_insert_with(|| json!([])));
                if let Some(Value::Array(a)) = req {
                    a.push(json!(at));
                }
                root
            }
            None => request_schema(spec.fields.iter().filter(for_route), op_kind),
        };
        let answer = r.answer.as_ref().unwrap_or(&spec.success);
        for raw in &r.paths {
            let (path, mut params) = path_template(raw.get_ref(), &all_vars);
            constrain_params(&mut params, &spec.fields, op_kind);
            if !kind.takes_body() {
                params.extend(query_params(&spec.fields, r));
            }
            let mut responses = Map::new();
            let success = match &answer.body {
                BodySpec::Empty => json!({"description": "done; no body"}),
                BodySpec::User => json!({"description": "the stored user, in the dialect",
                    "content": {"application/json": {"schema": {"type": "object"}}}}),
                BodySpec::Json(v) => json!({"description": "done",
                    "content": {"application/json": {"schema": literal_schema(v)}}}),
                BodySpec::Template(v) => json!({"description": "the answer, in the dialect",
                    "content": {"application/json": {"schema": template_schema(v)}}}),
            };
            responses.insert(answer.status.to_string(), success);
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
            let mut op = json!({
                "operationId": format!("{}-{}", r.name.clone().unwrap_or_else(|| format!("route-{i}")), paths.len()),
                "summary": format!("{} ({})", r.name.clone().unwrap_or_default(), kind.as_str()),
                "parameters": params,
                "security": [{"credentials": []}],
                "responses": responses,
            });
            if kind.takes_body() {
                op["requestBody"] =
                    json!({"required": true, "content": {"application/json": {"schema": body}}});
            }
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

/// The query parameters a route without a body reads: its rules' `query:NAME` sources and
/// its search's.
fn query_params(fields: &[FieldSpec], r: &crate::mapping::spec::RouteSpec) -> Vec<Value> {
    let mut names: Vec<(String, Option<&FieldSpec>)> = Vec::new();
    for f in fields {
        if let Some(q) = f
            .source
            .as_ref()
            .and_then(|s| s.get_ref().strip_prefix("query:"))
        {
            names.push((q.to_owned(), Some(f)));
        }
    }
    if let Some(sp) = &r.search {
        for s in [&sp.source, &sp.offset, &sp.limit].into_iter().flatten() {
            if let Some(q) = s.get_ref().strip_prefix("query:") {
                names.push((q.to_owned(), None));
            }
        }
    }
    names
        .into_iter()
        .map(|(name, f)| {
            let mut schema = Map::from_iter([("type".into(), json!("string"))]);
            if let Some(f) = f {
                schema.extend(input_constraints(f));
            }
            json!({"name": name, "in": "query", "required": false, "schema": schema})
        })
        .collect()
}

/// The schema of a success template: placeholders of the rendered user(s) are objects and
/// arrays of objects, everything else as written.
fn template_schema(v: &Value) -> Value {
    match v {
        Value::String(s) if s == "{users}" => json!({"type": "array", "items": {"type": "object"}}),
        Value::String(s) if s == "{user}" => json!({"type": "object"}),
        Value::String(s) if s.starts_with('{') && s.ends_with('}') => json!({}),
        Value::Object(m) => {
            let props: Map<String, Value> = m
                .iter()
                .map(|(k, v)| (k.clone(), template_schema(v)))
                .collect();
            json!({"type": "object", "properties": props})
        }
        Value::Array(items) => match items.first() {
            Some(first) => json!({"type": "array", "items": template_schema(first)}),
            None => json!({"type": "array"}),
        },
        other => literal_schema(other),
    }
}

/// Adds to each path parameter the checks of the field reading it (`param:NAME`).
fn constrain_params(params: &mut [Value], fields: &[FieldSpec], op: crate::canonical::OpKind) {
    for p in params {
        let Some(name) = p["name"].as_str().map(str::to_owned) else {
            continue;
        };
        let source = format!("param:{name}");
        let Some(f) = fields.iter().find(|f| {
            f.source.as_ref().is_some_and(|s| *s.get_ref() == source)
                && f.operations.as_ref().is_none_or(|ops| ops.contains(&op))
        }) else {
            continue;
        };
        let c = input_constraints(f);
        if c.is_empty() {
            continue;
        }
        let Value::Object(schema) = &mut p["schema"] else {
            continue;
        };
        if schema.contains_key("pattern") || schema.contains_key("enum") {
            schema.insert("allOf".into(), json!([Value::Object(c)]));
        } else {
            schema.extend(c);
        }
        if let Some(m) = &f.message {
            p["description"] = json!(m);
        }
    }
}

/// The JSON Schema of the request body: the members the fields read (`$.a.b`), nested.
fn request_schema<'f>(
    fields: impl IntoIterator<Item = &'f FieldSpec>,
    op: crate::canonical::OpKind,
) -> Value {
    let mut root = json!({"type": "object"});
    for f in fields {
        if f.operations.as_ref().is_some_and(|ops| !ops.contains(&op)) {
            continue;
        }
        if !f.parts.is_empty() {
            for (name, p) in &f.parts {
                let note = f
                    .max_total_length
                    .as_ref()
                    .filter(|t| t.parts.contains(name))
                    .map(|t| total_length_note(f, t));
                add_member(&mut root, p, note.as_deref());
            }
            continue;
        }
        add_member(&mut root, f, None);
    }
    root
}

/// A join's limit over several members, which JSON Schema cannot state: said in words.
fn total_length_note(f: &FieldSpec, t: &crate::mapping::spec::TotalLength) -> String {
    let members: Vec<&str> = t
        .parts
        .iter()
        .filter_map(|n| f.parts.get(n)?.source.as_ref())
        .map(|s| s.get_ref().trim_start_matches("$."))
        .collect();
    format!(
        "{} together: at most {} characters (after transforms).",
        members.join(" and "),
        t.max
    )
}

/// Adds the member `f` reads to the object schema `root`; `note` is appended to its
/// description.
fn add_member(root: &mut Value, f: &FieldSpec, note: Option<&str>) {
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
            if let (Some(note), Value::Object(m)) = (note, child) {
                let text = match m.get("description").and_then(Value::as_str) {
                    Some(d) => format!("{d}. {note}"),
                    None => note.to_owned(),
                };
                m.insert("description".into(), json!(text));
            }
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
    s.extend(input_constraints(f));
    if let Some(items) = &f.items {
        let mut item = if items.fields.is_empty() {
            member_schema(items)
        } else {
            let mut obj = json!({"type": "object"});
            for sub in &items.fields {
                add_member(&mut obj, sub, None);
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
            add_member(&mut obj, sub, None);
        }
        if let Some(p) = obj.get("properties") {
            s.insert("properties".into(), p.clone());
        }
    }
    let equals = f
        .equals_param
        .as_ref()
        .map(|p| format!("Must equal the path parameter `{p}`."));
    let description: Vec<&str> = [f.message.as_deref(), equals.as_deref()]
        .into_iter()
        .flatten()
        .collect();
    if !description.is_empty() {
        s.insert("description".into(), json!(description.join(" ")));
    }
    Value::Object(s)
}

/// The field's checks, stated on the member as the client sends it: the checks hold after the
/// transforms, so each is carried back through them (last first), kept where the transform
/// preserves it, rewritten where it can be, dropped where it cannot.
fn input_constraints(f: &FieldSpec) -> Map<String, Value> {
    let mut c = Map::new();
    if let Some(n) = f.min_length {
        c.insert("minLength".into(), json!(n));
    }
    if let Some(n) = f.max_length {
        c.insert("maxLength".into(), json!(n));
    }
    if let Some(n) = f.min {
        c.insert("minimum".into(), json!(n));
    }
    if let Some(n) = f.max {
        c.insert("maximum".into(), json!(n));
    }
    // Patterns in the common subset of Rust's and ECMA-262's syntax (no inline flags or
    // groups with `(?`), as JSON Schema reads them.
    if let Some(p) = &f.pattern
        && !f.ignore_case
        && !p.get_ref().contains("(?")
    {
        c.insert("pattern".into(), json!(p.get_ref()));
    }
    match f.format {
        Some(crate::mapping::spec::Format::Email) => {
            c.insert("format".into(), json!("email"));
        }
        Some(crate::mapping::spec::Format::IanaTimezone) => {
            let mut names: Vec<Value> = chrono_tz::TZ_VARIANTS
                .iter()
                .map(|tz| json!(tz.name()))
                .collect();
            if f.nullable.unwrap_or(true) {
                names.push(Value::Null);
            }
            c.insert("enum".into(), Value::Array(names));
        }
        None => {}
    }
    for t in f.transform.iter().rev() {
        c = lift(c, t.get_ref(), f);
    }
    c
}

/// Well-formed padded Base64 (RFC 4648 §4).
const BASE64_PATTERN: &str = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$";

/// The constraints `after` on a transform's output, as constraints on its input.
fn lift(after: Map<String, Value>, t: &TransformSpec, f: &FieldSpec) -> Map<String, Value> {
    let mut c = Map::new();
    let keep = |c: &mut Map<String, Value>, k: &str| {
        if let Some(v) = after.get(k) {
            c.insert(k.into(), v.clone());
        }
    };
    let pattern = after.get("pattern").and_then(Value::as_str);
    match t {
        TransformSpec::Base64 => {
            if after.get("minLength").and_then(Value::as_u64).unwrap_or(0) > 0 {
                c.insert("minLength".into(), json!(4));
            }
            c.insert("contentEncoding".into(), json!("base64"));
            c.insert(
                "contentMediaType".into(),
                json!("text/plain; charset=utf-8"),
            );
            c.insert("pattern".into(), json!(BASE64_PATTERN));
        }
        // parse_int32 takes canonical decimals only (optional `-`, no leading zero).
        TransformSpec::ParseInt32 => {
            let min = after.get("minimum").and_then(Value::as_i64);
            let max = after
                .get("maximum")
                .and_then(Value::as_i64)
                .unwrap_or(i64::from(i32::MAX))
                .min(i64::from(i32::MAX));
            let pattern = match min {
                Some(1) if max >= 1 => format!("^(?:{})$", decimal_up_to(max.unsigned_abs())),
                _ => "^-?(?:0|[1-9][0-9]{0,9})$".to_owned(),
            };
            c.insert("pattern".into(), json!(pattern));
        }
        TransformSpec::ToString => {}
        // What a capture takes is the whole string matching its expression.
        TransformSpec::Capture(re) => {
            c.insert("pattern".into(), json!(re));
        }
        // Removing characters only shortens: a minimum length holds before too.
        TransformSpec::Strip(chars) => {
            keep(&mut c, "minLength");
            if let Some(p) = pattern.and_then(|p| strip_class_pattern(p, chars)) {
                c.insert("pattern".into(), json!(p));
            }
        }
        TransformSpec::TrimStart(prefix) => {
            keep(&mut c, "minLength");
            if let Some(n) = after.get("maxLength").and_then(Value::as_u64) {
                c.insert("maxLength".into(), json!(n + prefix.chars().count() as u64));
            }
            if let Some(rest) = pattern.and_then(|p| p.strip_prefix('^')) {
                c.insert(
                    "pattern".into(),
                    json!(format!("^(?:{})?{rest}", escape(prefix))),
                );
            }
        }
        TransformSpec::Replace { from, to } => {
            if from.chars().count() == to.chars().count() {
                keep(&mut c, "minLength");
                keep(&mut c, "maxLength");
            }
            if let (Some(p), [a], [b]) = (
                pattern,
                from.chars().collect::<Vec<_>>().as_slice(),
                to.chars().collect::<Vec<_>>().as_slice(),
            ) && alike_in_pattern(p, *a, *b)
            {
                c.insert("pattern".into(), json!(p));
            }
        }
        TransformSpec::Map(table) if !f.ignore_case => {
            let allows_numbers = f.ty.as_ref().is_some_and(|t| match t.get_ref() {
                TypeNames::One(t) => matches!(t.as_str(), "integer" | "int32" | "number"),
                TypeNames::Many(ts) => ts
                    .iter()
                    .any(|t| matches!(t.as_str(), "integer" | "int32" | "number")),
            });
            let mut values: Vec<Value> = table.keys().map(|k| json!(k)).collect();
            if allows_numbers {
                values.extend(
                    table
                        .keys()
                        .filter_map(|k| k.parse::<i64>().ok())
                        .map(Value::from),
                );
            }
            if f.nullable.unwrap_or(true) {
                values.push(Value::Null);
            }
            c.insert("enum".into(), Value::Array(values));
        }
        // Keys compared ignoring case: each letter either way, for the members sent as text.
        TransformSpec::Map(table) => {
            let alternatives: Vec<String> = table
                .keys()
                .map(|k| {
                    k.chars()
                        .map(|ch| {
                            let (lo, up) =
                                (ch.to_lowercase().to_string(), ch.to_uppercase().to_string());
                            if lo == up {
                                escape(&lo)
                            } else {
                                format!("[{lo}{up}]")
                            }
                        })
                        .collect()
                })
                .collect();
            c.insert(
                "pattern".into(),
                json!(format!("^(?:{})$", alternatives.join("|"))),
            );
        }
    }
    c
}

/// `^[C]+$` (or `*`) after removing the characters `strip`: the same class with them allowed
/// anywhere around.
fn strip_class_pattern(pattern: &str, strip: &str) -> Option<String> {
    let inner = pattern.strip_prefix("^[")?;
    let (class, quant) = inner
        .strip_suffix("]+$")
        .map(|c| (c, '+'))
        .or_else(|| inner.strip_suffix("]*$").map(|c| (c, '*')))?;
    if class.is_empty() || class.starts_with('^') || class.contains(['[', ']']) {
        return None;
    }
    let extra: String = strip
        .chars()
        .map(|ch| match ch {
            '\\' | ']' | '^' | '-' => format!("\\{ch}"),
            _ => ch.to_string(),
        })
        .collect();
    let any = format!("[{class}{extra}]*");
    Some(match quant {
        '+' => format!("^{any}[{class}]{any}$"),
        _ => format!("^{any}$"),
    })
}

/// A regular expression (no anchors) for the decimals 1..=`max`, without leading zeros.
fn decimal_up_to(max: u64) -> String {
    let d: Vec<u8> = max.to_string().bytes().map(|b| b - b'0').collect();
    let k = d.len();
    let mut alts = Vec::new();
    if k > 1 {
        alts.push(format!("[1-9][0-9]{{0,{}}}", k - 2));
    }
    // k digits: equal to `max` up to position i, smaller there, anything after.
    for i in 0..k {
        let lo = u8::from(i == 0);
        if d[i] > lo {
            let prefix: String = d[..i].iter().map(|x| char::from(b'0' + x)).collect();
            let rest = k - i - 1;
            let tail = if rest > 0 {
                format!("[0-9]{{{rest}}}")
            } else {
                String::new()
            };
            alts.push(format!("{prefix}[{lo}-{}]{tail}", d[i] - 1));
        }
    }
    alts.push(max.to_string());
    alts.join("|")
}

/// Every occurrence of `a` or `b` in `pattern` is inside a character class holding both, so
/// the pattern cannot tell them apart: replacing one by the other keeps its verdict.
fn alike_in_pattern(pattern: &str, a: char, b: char) -> bool {
    let mut chars = pattern.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' if chars.next().is_some_and(|e| e == a || e == b) => return false,
            '\\' => {}
            '[' => {
                // Items of the class: single characters and ranges (`\\x` is x). Negation
                // does not change whether two characters are alike.
                if chars.clone().next() == Some('^') {
                    chars.next();
                }
                let mut items: Vec<(char, char)> = Vec::new();
                let mut first = true;
                loop {
                    let c = match chars.next() {
                        Some(']') if !first => break,
                        Some('\\') => match chars.next() {
                            Some(e) => e,
                            None => return false,
                        },
                        Some(c) => c,
                        None => return false,
                    };
                    first = false;
                    let mut ahead = chars.clone();
                    match (ahead.next(), ahead.next()) {
                        (Some('-'), Some(hi)) if hi != ']' => {
                            chars.next();
                            chars.next();
                            items.push((c, hi));
                        }
                        _ => items.push((c, c)),
                    }
                }
                let member = |x: char| items.iter().any(|&(lo, hi)| lo <= x && x <= hi);
                if member(a) != member(b) {
                    return false;
                }
            }
            c if c == a || c == b => return false,
            _ => {}
        }
    }
    true
}

/// `text` as a regular expression matching itself.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        if "\\^$.|?*+()[]{}/".contains(ch) {
            out.push('\\');
        }
        out.push(ch);
    }
    out
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

#[cfg(test)]
mod tests {
    use super::decimal_up_to;

    #[test]
    fn replace_keeps_a_pattern_only_where_it_treats_both_alike() {
        use super::alike_in_pattern;
        assert!(alike_in_pattern("^[a-z]{2}([_-][a-z]{2})?$", '_', '-'));
        assert!(!alike_in_pattern("^[a-z]{2}(-[a-z]{2})?$", '_', '-'));
        assert!(!alike_in_pattern("^[a-z_]+$", '_', '-'));
        assert!(alike_in_pattern("^[0-9]+$", '_', '.'));
        assert!(!alike_in_pattern("^a\\.b$", '_', '.'));
    }

    #[test]
    fn decimal_up_to_matches_exactly_the_range() {
        for max in [1, 7, 9, 10, 19, 100, 305, 2147] {
            let re = regex::Regex::new(&format!("^(?:{})$", decimal_up_to(max))).unwrap();
            for n in 0..=3000u64 {
                assert_eq!(
                    re.is_match(&n.to_string()),
                    (1..=max).contains(&n),
                    "{max} {n}"
                );
            }
            assert!(!re.is_match("01"));
        }
        let re = regex::Regex::new(&format!("^(?:{})$", decimal_up_to(2_147_483_647))).unwrap();
        for n in ["1", "2147483647", "2147483639", "1999999999", "999999999"] {
            assert!(re.is_match(n), "{n}");
        }
        for n in [
            "0",
            "2147483648",
            "2147483650",
            "2200000000",
            "10000000000",
            "-1",
        ] {
            assert!(!re.is_match(n), "{n}");
        }
    }
}
