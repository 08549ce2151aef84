//! `userbridge scaffold`: a mapping skeleton for a vendor's operations from its OpenAPI 3.x
//! document. Routes, path parameters, every request member as a rule with its type, length,
//! pattern, range and enum carried into checks, canonical targets guessed by name and marked
//! `# TODO check`, the success and error answers from the responses, and a `[[tests]]` entry
//! from the document's example. The skeleton is compiled before it is printed: what `check`
//! would refuse is a bug here, never the author's to find.

mod guess;
mod rules;
mod toml_out;

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::{Map, Value};

use self::rules::{Ctx, Rule, TODO};
use self::toml_out::{comment, inline, key, string};
use super::vendor_doc::{Operation, VendorDoc};
use crate::canonical::{Step, location};
use crate::mapping::RouteKind;

/// What a path parameter's example keeps unencoded: RFC 3986's unreserved characters.
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// What to scaffold.
#[derive(Debug, Clone)]
pub struct Request {
    /// The `operationId`s, one route each, in this order.
    pub operations: Vec<String>,
    /// The dialect's name (default: the document's title, in kebab case).
    pub dialect: Option<String>,
    /// How the header comment names the document.
    pub source: String,
}

/// One route of the skeleton, with what its rules need.
struct RouteOut<'a> {
    op: Operation<'a>,
    name: String,
    kind: RouteKind,
    by_method: bool,
    params: Vec<(String, &'static str)>,
    rules: Vec<Rule>,
    target: Vec<&'static str>,
    answer: Answer,
    example: Option<Value>,
}

/// A success answer, as a route's `answer` or the file's `[success]`.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    status: u16,
    body: String,
    include_unset: bool,
    note: Option<&'static str>,
}

/// The skeleton for `req`'s operations of `doc`.
pub fn scaffold(doc: &VendorDoc, req: &Request) -> Result<String, String> {
    if req.operations.is_empty() {
        return Err("name at least one operation (`--operation ID`)".into());
    }
    let mut ops = Vec::new();
    for id in &req.operations {
        if ops.iter().any(|o: &Operation<'_>| o.id == id) {
            return Err(format!("operation `{id}` is named twice"));
        }
        ops.push(doc.operation(id)?);
    }
    let mut routes: Vec<RouteOut<'_>> = Vec::new();
    for op in ops {
        let summary = op.op.get("summary").and_then(Value::as_str).unwrap_or("");
        let path_params = path_params(&op);
        let (kind, by_method) = guess::kind(op.id, summary, &op.method, !path_params.is_empty());
        let mut name = guess::words(op.id).join("-");
        while routes.iter().any(|r| r.name == name) {
            name.push_str("-2");
        }
        routes.push(RouteOut {
            op,
            name,
            kind,
            by_method,
            params: Vec::new(),
            rules: Vec::new(),
            target: Vec::new(),
            answer: Answer {
                status: 200,
                body: "\"empty\"".into(),
                include_unset: false,
                note: None,
            },
            example: None,
        });
    }
    let creating = routes.iter().any(|r| r.kind == RouteKind::Create);
    let identify_by_body = routes.iter().any(|r| {
        matches!(
            r.kind,
            RouteKind::Update | RouteKind::Delete | RouteKind::Get
        ) && path_params(&r.op).is_empty()
    });
    for r in &mut routes {
        let mut ctx = Ctx {
            doc,
            kind: r.kind,
            creating,
            identify_by_body,
            params: Vec::new(),
        };
        for (pname, p) in path_params(&r.op) {
            let schema = p.get("schema").map(|s| doc.schema(s)).unwrap_or_default();
            let pname = param_name(pname);
            let (rule, attr) = rules::param(
                &pname,
                &schema,
                p.get("description").and_then(Value::as_str),
            );
            ctx.params.push((pname, attr));
            r.rules.push(rule);
        }
        if r.kind.takes_body() {
            if let Some(schema) = body_schema(doc, &r.op) {
                let mut used = BTreeSet::new();
                r.rules
                    .extend(rules::body(&ctx, &doc.schema(schema), "$", &[], &mut used));
            }
            r.example = body_example(doc, &r.op);
        }
        r.target = r.rules.iter().filter_map(|x| x.identifies).collect();
        r.target.dedup();
        for x in &mut r.rules {
            x.routes.insert(r.name.clone());
        }
        r.answer = answer(doc, &r.op, r.kind);
        r.params = ctx.params;
    }
    let text = write(doc, req, &routes);
    verify(&text)?;
    Ok(text)
}

/// A parameter's name as a mapping writes it (`user-id` → `user_id`).
fn param_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The document's path with its parameters named as the mapping names them.
fn route_path(op: &Operation<'_>) -> String {
    let mut path = op.path.to_owned();
    for (name, _) in path_params(op) {
        path = path.replace(&format!("{{{name}}}"), &format!("{{{}}}", param_name(name)));
    }
    path
}

/// The operation's path parameters, in order: `(name, parameter object)`.
fn path_params<'a>(op: &Operation<'a>) -> Vec<(&'a str, &'a Value)> {
    op.parameters
        .iter()
        .filter(|p| p.get("in").and_then(Value::as_str) == Some("path"))
        .filter_map(|p| Some((p.get("name")?.as_str()?, *p)))
        .collect()
}

/// The query parameter of `op` named like one of `names` (normalised).
fn query_param<'a>(op: &Operation<'a>, names: &[&str]) -> Option<&'a str> {
    op.parameters
        .iter()
        .filter(|p| p.get("in").and_then(Value::as_str) == Some("query"))
        .filter_map(|p| p.get("name")?.as_str())
        .find(|n| names.contains(&guess::normal(n).as_str()))
}

/// The media type a response is sent as (its first JSON one).
fn media_type(doc: &VendorDoc, holder: &Value) -> Option<String> {
    let content = doc.resolve(holder).get("content")?.as_object()?;
    content.keys().find(|t| t.contains("json")).cloned()
}

/// The JSON media type object of a request body or response.
fn json_content<'a>(doc: &'a VendorDoc, holder: &'a Value) -> Option<&'a Value> {
    let content = doc.resolve(holder).get("content")?.as_object()?;
    content
        .iter()
        .find(|(t, _)| t.contains("json"))
        .or_else(|| content.iter().next())
        .map(|(_, v)| v)
}

fn body_schema<'a>(doc: &'a VendorDoc, op: &Operation<'a>) -> Option<&'a Value> {
    json_content(doc, op.op.get("requestBody")?)?.get("schema")
}

/// The example of a media type: `example`, the first of `examples`, or the schema's.
fn example_of(doc: &VendorDoc, media: &Value) -> Option<Value> {
    if let Some(e) = media.get("example") {
        return Some(e.clone());
    }
    if let Some(e) = media
        .get("examples")
        .and_then(Value::as_object)
        .and_then(|m| m.values().next())
    {
        return doc.resolve(e).get("value").cloned();
    }
    doc.schema(media.get("schema")?).get("example").cloned()
}

fn body_example(doc: &VendorDoc, op: &Operation<'_>) -> Option<Value> {
    example_of(doc, json_content(doc, op.op.get("requestBody")?)?)
}

/// The first 2xx response of `op`: `(status, response object)`.
fn success_response<'a>(op: &Operation<'a>) -> Option<(u16, &'a Value)> {
    let responses = op.op.get("responses")?.as_object()?;
    responses.iter().find_map(|(code, r)| {
        let status = if code.eq_ignore_ascii_case("2XX") {
            200
        } else {
            code.parse().ok()?
        };
        (200..300).contains(&status).then_some((status, r))
    })
}

/// A route's success answer from its first 2xx response.
fn answer(doc: &VendorDoc, op: &Operation<'_>, kind: RouteKind) -> Answer {
    let Some((status, resp)) = success_response(op) else {
        return Answer {
            status: 200,
            body: "\"empty\"".into(),
            include_unset: false,
            note: Some("the document states no 2xx answer"),
        };
    };
    let Some(media) = json_content(doc, resp) else {
        return Answer {
            status,
            body: "\"empty\"".into(),
            include_unset: false,
            note: None,
        };
    };
    let schema = media.get("schema");
    if matches!(kind, RouteKind::Get | RouteKind::List) {
        return read_answer(doc, schema, kind, status);
    }
    let request = body_schema(doc, op).and_then(VendorDoc::ref_name);
    let same = request.is_some() && schema.and_then(VendorDoc::ref_name) == request;
    if same || schema.is_some_and(|s| is_user(doc, s)) {
        return Answer {
            status,
            body: "\"user\"".into(),
            include_unset: true,
            note: None,
        };
    }
    match example_of(doc, media).as_ref().and_then(inline) {
        Some(e) => Answer {
            status,
            body: format!("{{ json = {e} }}"),
            include_unset: false,
            note: None,
        },
        None => Answer {
            status,
            body: "{ json = {} }".into(),
            include_unset: false,
            note: Some("the document gives no example of this answer: write it"),
        },
    }
}

/// Whether a schema describes a user: it has a member guessed to be its id or its name.
fn is_user(doc: &VendorDoc, schema: &Value) -> bool {
    doc.schema(schema)
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| {
            p.keys()
                .any(|k| matches!(guess::target(k), Some("id" | "userName")))
        })
}

/// The answer of a read: the user rendered through the view, alone (`"user"`), in a list, or
/// under the member the document's answer puts it.
fn read_answer(doc: &VendorDoc, schema: Option<&Value>, kind: RouteKind, status: u16) -> Answer {
    let one = |body: String| Answer {
        status,
        body,
        include_unset: false,
        note: None,
    };
    let s = schema.map(|s| doc.schema(s)).unwrap_or_default();
    let list = kind == RouteKind::List;
    if rules::type_of(&s) == Some("array") {
        return one(if list {
            "{ template = \"{users}\" }".into()
        } else {
            "{ template = [\"{user}\"] }".into()
        });
    }
    let props = s.get("properties").and_then(Value::as_object);
    let wrapper = props.is_some_and(|p| {
        p.values()
            .any(|v| rules::type_of(&doc.schema(v)) == Some("array"))
    });
    if !wrapper {
        return one(if list {
            "{ template = \"{users}\" }".into()
        } else {
            "\"user\"".into()
        });
    }
    // The envelope: its array holds the users, a count-like number the total.
    let mut parts = Vec::new();
    for (k, v) in props.into_iter().flatten() {
        let v = doc.schema(v);
        let value = match rules::type_of(&v) {
            Some("array") if list => "\"{users}\"",
            Some("array") => "[\"{user}\"]",
            Some("int32" | "integer")
                if list
                    && matches!(
                        guess::normal(k).as_str(),
                        "total" | "count" | "totalresults" | "totalcount" | "size"
                    ) =>
            {
                "\"{total}\""
            }
            _ => continue,
        };
        parts.push(format!("{} = {value}", key(k)));
    }
    one(format!("{{ template = {{ {} }} }}", parts.join(", ")))
}

/// The user object a read answers: the array's item, the wrapper's array's item, or itself.
fn read_item(doc: &VendorDoc, op: &Operation<'_>) -> Map<String, Value> {
    let Some(schema) = success_response(op)
        .and_then(|(_, r)| json_content(doc, r))
        .and_then(|m| m.get("schema"))
    else {
        return Map::new();
    };
    let mut s = doc.schema(schema);
    for _ in 0..2 {
        if rules::type_of(&s) == Some("array") {
            s = s.get("items").map(|i| doc.schema(i)).unwrap_or_default();
            continue;
        }
        let inner = s
            .get("properties")
            .and_then(Value::as_object)
            .and_then(|p| {
                p.values()
                    .map(|v| doc.schema(v))
                    .find(|v| rules::type_of(v) == Some("array"))
            });
        match inner {
            Some(a) => s = a,
            None => break,
        }
    }
    s
}

/// The error body template, from the first 4xx answer with a JSON schema, else from a success
/// answer that carries a message (the "generic response" vendors answer both with).
fn error_body(
    doc: &VendorDoc,
    routes: &[RouteOut<'_>],
) -> (Map<String, Value>, Vec<String>, Option<String>) {
    let mut schemas = Vec::new();
    for r in routes {
        let Some(responses) = r.op.op.get("responses").and_then(Value::as_object) else {
            continue;
        };
        for (code, resp) in responses {
            if code.starts_with('4')
                && let Some(s) = json_content(doc, resp).and_then(|m| m.get("schema"))
            {
                schemas.push((doc.schema(s), media_type(doc, resp)));
            }
        }
    }
    for r in routes {
        if let Some(s) = success_response(&r.op)
            .and_then(|(_, resp)| json_content(doc, resp))
            .and_then(|m| m.get("schema"))
        {
            schemas.push((doc.schema(s), None));
        }
    }
    let mut notes = Vec::new();
    for (s, media) in schemas {
        let Some(props) = s.get("properties").and_then(Value::as_object) else {
            continue;
        };
        let mut body = Map::new();
        let mut message = false;
        for (name, p) in props {
            let p = doc.schema(p);
            let integer = matches!(rules::type_of(&p), Some("int32" | "integer"));
            let value = match guess::normal(name).as_str() {
                "message" | "errormessage" | "errordescription" | "detail" | "errorstring"
                | "description" => {
                    message = true;
                    "{message}"
                }
                "status" | "statuscode" | "httpstatus" => "{status}",
                "error" | "title" | "reason" => "{reason}",
                "timestamp" | "time" | "date" => "{now}",
                "path" | "instance" => "{path}",
                "requestid" | "traceid" | "correlationid" => "{request_id}",
                _ if integer => {
                    notes.push(format!("`{name}`: the vendor's number for each outcome (vars `code`, per outcome in [errors.outcomes])"));
                    "{code}"
                }
                _ => {
                    notes.push(format!("`{name}` is left out: say what it holds"));
                    continue;
                }
            };
            body.insert(name.clone(), Value::String(value.into()));
        }
        if message {
            return (body, notes, media.filter(|m| m != "application/json"));
        }
        notes.clear();
    }
    let mut body = Map::new();
    body.insert("message".into(), Value::String("{message}".into()));
    notes.push("the document states no error body: this one is a guess".into());
    (body, notes, None)
}

/// The dialect name: `--dialect`, else the title in kebab case.
fn dialect_name(doc: &VendorDoc, req: &Request) -> String {
    req.dialect
        .clone()
        .unwrap_or_else(|| guess::words(doc.title().unwrap_or("new-dialect")).join("-"))
}

fn write(doc: &VendorDoc, req: &Request, routes: &[RouteOut<'_>]) -> String {
    let mut o = String::new();
    let ids: Vec<&str> = routes.iter().map(|r| r.op.id).collect();
    let _ = writeln!(o, "#:schema ../schemas/mapping.schema.json");
    let _ = writeln!(
        o,
        "# Scaffolded by `userbridge scaffold` from {} ({}).",
        req.source,
        ids.join(", ")
    );
    o.push_str(&comment(
        "Every line marked `# TODO check` is a guess from a name: confirm it against the vendor's \
         pages, then delete the mark. `userbridge check` loads this file; `userbridge test FILE` \
         runs its tests; docs/mapping-language.md says what each key means.",
        "",
        94,
    ));
    let _ = writeln!(o, "\ndialect = {}", string(&dialect_name(doc, req)));
    if let Some(t) = doc.title() {
        let _ = writeln!(o, "title = {}", string(t));
    }
    let base = doc.base_path();
    if let Some(b) = &base {
        let _ = writeln!(
            o,
            "\n# The base path of the document's first server; config may set another."
        );
        let _ = writeln!(o, "vars = {{ base = {} }}", string(b));
    }
    write_auth(doc, routes, &mut o);
    for r in routes {
        write_route(r, base.is_some(), routes, &mut o);
    }
    write_rules(routes, &mut o);
    write_view(doc, routes, &mut o);
    let first_write = routes
        .iter()
        .find(|r| r.kind.write().is_some())
        .map(|r| &r.answer);
    let success = first_write.cloned().unwrap_or(Answer {
        status: 200,
        body: "\"empty\"".into(),
        include_unset: false,
        note: None,
    });
    let _ = writeln!(o, "\n[success]");
    if let Some(n) = success.note {
        let _ = writeln!(o, "# TODO: {n}");
    }
    let _ = writeln!(o, "status = {}\nbody = {}", success.status, success.body);
    if success.include_unset {
        let _ = writeln!(o, "include_unset = true");
    }
    let (body, notes, media) = error_body(doc, routes);
    let _ = writeln!(o, "\n[errors]");
    if let Some(m) = media {
        let _ = writeln!(o, "content_type = {}", string(&m));
    }
    for n in &notes {
        o.push_str(&comment(&format!("TODO: {n}"), "", 94));
    }
    let _ = writeln!(
        o,
        "body = {}",
        inline(&Value::Object(body.clone())).unwrap_or_default()
    );
    if body.values().any(|v| v == "{code}") {
        let _ = writeln!(o, "vars = {{ code = 1 }}{TODO}");
    }
    write_tests(routes, base.as_deref(), &mut o);
    o
}

fn write_auth(doc: &VendorDoc, routes: &[RouteOut<'_>], o: &mut String) {
    let _ = writeln!(o, "\n[auth]");
    let mut headers = Vec::new();
    let mut challenge = None;
    let mut seen = BTreeSet::new();
    for r in routes {
        for (name, s) in doc.security(&r.op) {
            if !seen.insert(name) {
                continue;
            }
            let ty = s.get("type").and_then(Value::as_str).unwrap_or("");
            let scheme = s.get("scheme").and_then(Value::as_str).unwrap_or("");
            match ty {
                "http" if scheme.eq_ignore_ascii_case("bearer") => {
                    headers.push("{ name = \"Authorization\", scheme = \"Bearer\" }".to_owned());
                    challenge.get_or_insert("Bearer");
                }
                "http" if scheme.eq_ignore_ascii_case("basic") => {
                    let _ = writeln!(
                        o,
                        "# TODO: `{name}` is HTTP Basic; userbridge takes tokens: give callers one"
                    );
                }
                "oauth2" | "openIdConnect" => {
                    headers.push("{ name = \"Authorization\", scheme = \"Bearer\" }".to_owned());
                    challenge.get_or_insert("Bearer");
                }
                "apiKey" if s.get("in").and_then(Value::as_str) == Some("header") => {
                    let h = s.get("name").and_then(Value::as_str).unwrap_or("X-Api-Key");
                    headers.push(format!("{{ name = {} }}", string(h)));
                }
                _ => {
                    let _ = writeln!(
                        o,
                        "# TODO: security scheme `{name}` ({ty}) has no header form here"
                    );
                }
            }
        }
    }
    headers.dedup();
    if headers.is_empty() {
        let _ = writeln!(
            o,
            "# TODO: the document names no header credential; this is a guess"
        );
        headers.push("{ name = \"Authorization\", scheme = \"Bearer\" }".to_owned());
        challenge = Some("Bearer");
    }
    let _ = writeln!(o, "headers = [{}]", headers.join(", "));
    if let Some(c) = challenge {
        let _ = writeln!(o, "challenge = {}", string(c));
    }
    let kinds: BTreeSet<&str> = routes.iter().map(|r| r.kind.as_str()).collect();
    let roles: Vec<String> = kinds
        .iter()
        .map(|k| format!("{k} = [\"user-administrator\"]"))
        .collect();
    let _ = writeln!(
        o,
        "# TODO: the roles of the vendor's callers, per route kind (config gives tokens their roles)."
    );
    let _ = writeln!(o, "roles = {{ {} }}", roles.join(", "));
}

fn write_route(r: &RouteOut<'_>, based: bool, all: &[RouteOut<'_>], o: &mut String) {
    let _ = writeln!(o, "\n[[routes]]");
    let summary = r.op.op.get("summary").and_then(Value::as_str).unwrap_or("");
    o.push_str(&comment(&format!("{}: {summary}", r.op.id), "", 94));
    let _ = writeln!(o, "name = {}", string(&r.name));
    let _ = writeln!(o, "method = {}", string(&r.op.method));
    let path = if based {
        format!("${{base}}{}", route_path(&r.op))
    } else {
        route_path(&r.op)
    };
    let _ = writeln!(o, "paths = [{}]", string(&path));
    let mark = if r.by_method { TODO } else { "" };
    let _ = writeln!(o, "operation = {}{mark}", string(r.kind.as_str()));
    if matches!(
        r.kind,
        RouteKind::Update | RouteKind::Delete | RouteKind::Get
    ) {
        if r.target.is_empty() {
            let _ = writeln!(
                o,
                "# TODO: which members name the user? (`target`, and `identifies` on their rules)"
            );
        } else {
            let t: Vec<String> = r.target.iter().map(|t| string(t)).collect();
            let _ = writeln!(o, "target = [{}]{TODO}", t.join(", "));
        }
    }
    if matches!(r.kind, RouteKind::Get | RouteKind::List) {
        let _ = writeln!(o, "view = \"user\"");
    }
    if r.kind == RouteKind::List {
        let search = query_param(
            &r.op,
            &["search", "q", "query", "filter", "name", "username"],
        );
        let offset = query_param(&r.op, &["offset", "skip", "start", "startindex"]);
        let limit = query_param(&r.op, &["limit", "count", "size", "pagesize", "top", "max"]);
        let mut parts = Vec::new();
        if let Some(s) = search {
            parts.push(format!("source = \"query:{s}\", contains = [\"userName\"]"));
        }
        if let Some(s) = offset {
            parts.push(format!("offset = \"query:{s}\""));
        }
        if let Some(s) = limit {
            parts.push(format!("limit = \"query:{s}\""));
        }
        if !parts.is_empty() {
            let _ = writeln!(o, "search = {{ {} }}{TODO}", parts.join(", "));
        }
    }
    let first_write = all
        .iter()
        .find(|x| x.kind.write().is_some())
        .map(|x| &x.answer);
    if r.kind.write().is_none() || first_write != Some(&r.answer) {
        if let Some(n) = r.answer.note {
            let _ = writeln!(o, "# TODO: {n}");
        }
        let unset = if r.answer.include_unset {
            ", include_unset = true"
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "answer = {{ status = {}, body = {}{unset} }}",
            r.answer.status, r.answer.body
        );
    }
}

/// Every route's rules, one rule where routes share it exactly, limited by `routes = [...]`
/// where only some do.
fn write_rules(routes: &[RouteOut<'_>], o: &mut String) {
    let mut merged: Vec<Rule> = Vec::new();
    for r in routes {
        for rule in &r.rules {
            match merged.iter_mut().find(|m| m.lines == rule.lines) {
                Some(m) => m.routes.extend(rule.routes.iter().cloned()),
                None => merged.push(rule.clone()),
            }
        }
    }
    let all: BTreeSet<String> = routes.iter().map(|r| r.name.clone()).collect();
    for rule in &merged {
        let _ = writeln!(o, "\n[[fields]]");
        o.push_str(&rule.notes);
        for l in &rule.lines {
            let _ = writeln!(o, "{l}");
        }
        if rule.routes != all {
            let names: Vec<String> = rule.routes.iter().map(|n| string(n)).collect();
            let _ = writeln!(o, "routes = [{}]", names.join(", "));
        }
    }
}

fn write_view(doc: &VendorDoc, routes: &[RouteOut<'_>], o: &mut String) {
    let Some(read) = routes.iter().find(|r| r.kind.write().is_none()) else {
        return;
    };
    let ctx = Ctx {
        doc,
        kind: read.kind,
        creating: false,
        identify_by_body: false,
        params: Vec::new(),
    };
    let mut lines = Vec::new();
    rules::view(&ctx, &read_item(doc, &read.op), "$", &mut lines);
    let _ = writeln!(
        o,
        "\n# The user as the read routes answer it.\n[views.user]\ninclude_unset = true\nfields = ["
    );
    for l in lines {
        let _ = writeln!(o, "{l}");
    }
    let _ = writeln!(o, "]");
}

/// One test per route: its request from the document's examples, and what the example's
/// members must become where a rule carries them unchanged.
fn write_tests(routes: &[RouteOut<'_>], base: Option<&str>, o: &mut String) {
    let mut wrote = false;
    for r in routes {
        if r.kind.takes_body() && r.example.is_none() {
            let _ = writeln!(
                o,
                "\n# TODO: the document has no example of `{}`: write a test for it.",
                r.op.id
            );
            continue;
        }
        if !wrote {
            let _ = writeln!(
                o,
                "\n# ---- tests: `userbridge test FILE` runs them; `--show` prints each outcome."
            );
            wrote = true;
        }
        let mut path = format!("{}{}", base.unwrap_or(""), r.op.path);
        for (name, p) in path_params(&r.op) {
            let ex = p
                .get("example")
                .or_else(|| p.pointer("/schema/example"))
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .unwrap_or_else(|| "1".to_owned());
            let enc = percent_encoding::utf8_percent_encode(&ex, PATH_SEGMENT).to_string();
            path = path.replace(&format!("{{{name}}}"), &enc);
        }
        let _ = writeln!(
            o,
            "\n[[tests]]\nname = {}",
            string(&format!("{}: the document's example", r.op.id))
        );
        let _ = writeln!(
            o,
            "[tests.request]\nmethod = {}\npath = {}",
            string(&r.op.method),
            string(&path)
        );
        let mut expect = vec![];
        match r.kind.write() {
            Some(k) => expect.push(format!("\"/canonical/operation\" = {}", string(k.as_str()))),
            None => expect.push(format!("read = {}", string(r.kind.as_str()))),
        }
        if let Some(ex) = &r.example {
            if let Some(body) = ex.as_object() {
                let _ = writeln!(
                    o,
                    "headers = {{ Content-Type = \"application/json\" }}\n[tests.request.body]"
                );
                for (k, v) in body {
                    if let Some(v) = inline(v) {
                        let _ = writeln!(o, "{} = {v}", key(k));
                    }
                }
            } else {
                let _ = writeln!(o, "raw_body = {}", string(&ex.to_string()));
            }
            for rule in r.rules.iter() {
                let Some((attr, at)) = &rule.expect else {
                    continue;
                };
                let value = at.iter().try_fold(ex, |v, k| v.get(k));
                let Some(value) = value.and_then(inline) else {
                    continue;
                };
                expect.push(format!(
                    "{} = {value}",
                    string(&format!("/canonical/user{}", pointer(attr)))
                ));
            }
        }
        let _ = writeln!(o, "[tests.expect]");
        for e in expect {
            let _ = writeln!(o, "{e}");
        }
    }
}

/// The JSON pointer of a canonical attribute in the operation's user (`emails[primary].value`
/// → `/emails/0/value`).
fn pointer(attr: &str) -> String {
    let mut p = String::new();
    for step in location(attr) {
        let (k, primary) = match step {
            Step::Key(k) => (k, false),
            Step::Primary(k) => (k, true),
        };
        p.push('/');
        p.push_str(&k.replace('~', "~0").replace('/', "~1"));
        if primary {
            p.push_str("/0");
        }
    }
    p
}

/// Compiles the skeleton as `check` would; its diagnostics are this generator's bug.
fn verify(text: &str) -> Result<(), String> {
    let file = std::path::Path::new("scaffold.toml");
    crate::mapping::load::load_str(file, text, &Default::default())
        .map(|_| ())
        .map_err(|d| {
            let msgs: Vec<String> = d.iter().map(ToString::to_string).collect();
            format!(
                "the skeleton does not load (a bug in scaffold; please report it):\n{}\n\n{text}",
                msgs.join("\n")
            )
        })
}
