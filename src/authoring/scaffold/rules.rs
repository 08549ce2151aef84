//! Field rules from a vendor's schema: one `[[fields]]` rule per request member (nested objects
//! flattened into `$.a.b` sources unless the canonical attribute is an object), with the
//! member's type, presence, length, pattern, range and enum carried into checks, and its
//! canonical target guessed by name.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use super::guess;
use super::toml_out::{comment, inline, string};
use crate::authoring::vendor_doc::VendorDoc;
use crate::canonical::{Kind, attribute};
use crate::mapping::RouteKind;

/// The trailing mark on every guessed line.
pub const TODO: &str = "  # TODO check";

/// One `[[fields]]` rule of the skeleton.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Comment lines written above it (already `# `-prefixed).
    pub notes: String,
    /// Its `key = value` lines, in the order written (a guess carries [`TODO`]).
    pub lines: Vec<String>,
    /// The routes (by name) it serves.
    pub routes: BTreeSet<String>,
    /// The attribute it `identifies`, if any.
    pub identifies: Option<&'static str>,
    /// The attribute it writes, if any, with the example's JSONPath-free member path
    /// (`["userKey", "username"]`) when the example value lands there unchanged.
    pub expect: Option<(&'static str, Vec<String>)>,
}

impl Rule {
    fn new(source: &str, notes: String) -> Self {
        Rule {
            notes,
            lines: vec![format!("source = {}", string(source))],
            routes: BTreeSet::new(),
            identifies: None,
            expect: None,
        }
    }

    fn line(&mut self, key: &str, value: impl AsRef<str>) {
        self.lines.push(format!("{key} = {}", value.as_ref()));
    }
}

/// What the rules of one operation are written for.
pub struct Ctx<'d> {
    /// The document, for `$ref`s.
    pub doc: &'d VendorDoc,
    /// The operation's route kind.
    pub kind: RouteKind,
    /// Whether any scaffolded route creates (so that defaults apply on create).
    pub creating: bool,
    /// Whether a scaffolded update, delete or get names its user by body members (no path
    /// parameter): then a member guessed `userName` or `ext.authenticator` also `identifies`.
    pub identify_by_body: bool,
    /// The path parameters and the attribute each identifies.
    pub params: Vec<(String, &'static str)>,
}

/// The JSONPath of member `name` under `prefix` (`$`, `$.userKey`).
pub fn member_path(prefix: &str, name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        format!("{prefix}.{name}")
    } else {
        format!(
            "{prefix}['{}']",
            name.replace('\\', "\\\\").replace('\'', "\\'")
        )
    }
}

/// The rule type of a schema: `string`, `boolean`, `int32`, `integer`, `number`, `object`,
/// `array`; `None` when the schema says none.
pub fn type_of(s: &Map<String, Value>) -> Option<&'static str> {
    let ty = match s.get("type") {
        Some(Value::String(t)) => t.as_str(),
        // OpenAPI 3.1: `type: [string, "null"]`.
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).find(|t| *t != "null")?,
        _ if s.contains_key("properties") => "object",
        _ => return None,
    };
    Some(match ty {
        "string" => "string",
        "boolean" => "boolean",
        "integer" if s.get("format").and_then(Value::as_str) == Some("int32") => "int32",
        "integer" => "integer",
        "number" => "number",
        "object" => "object",
        "array" => "array",
        _ => return None,
    })
}

/// The rules of every member of `schema`, a request body's object schema, under `prefix`.
/// `used` holds the targets already taken, so that a second member guessed the same
/// attribute is left for the author.
pub fn body(
    ctx: &Ctx<'_>,
    schema: &Map<String, Value>,
    prefix: &str,
    at: &[String],
    used: &mut BTreeSet<&'static str>,
) -> Vec<Rule> {
    let mut out = Vec::new();
    let required = required_of(schema);
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return out;
    };
    for (name, prop) in props {
        let p = ctx.doc.schema(prop);
        let path = member_path(prefix, name);
        let mut here = at.to_vec();
        here.push(name.clone());
        let is_required = required.contains(name.as_str());
        let target = guess::target(name);
        let object_target =
            target.is_some_and(|t| attribute(t).is_some_and(|a| a.kind == Kind::Object));
        if type_of(&p) == Some("object") && p.contains_key("properties") && !object_target {
            // An object the canonical model has no object for: its members, one rule each.
            let mut rule = Rule::new(&path, describe(&p));
            rule.line("type", string("object"));
            if is_required {
                rule.line("required", "true");
            }
            out.push(rule);
            out.extend(body(ctx, &p, &path, &here, used));
            continue;
        }
        out.push(member(ctx, &p, is_required, &path, &here, target, used));
    }
    out
}

fn required_of(schema: &Map<String, Value>) -> BTreeSet<&str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn describe(p: &Map<String, Value>) -> String {
    let mut notes = String::new();
    if let Some(d) = p.get("description").and_then(Value::as_str) {
        notes.push_str(&comment(d, "", 94));
    }
    notes
}

#[allow(clippy::too_many_arguments)]
fn member(
    ctx: &Ctx<'_>,
    p: &Map<String, Value>,
    is_required: bool,
    path: &str,
    at: &[String],
    target: Option<&'static str>,
    used: &mut BTreeSet<&'static str>,
) -> Rule {
    let mut rule = Rule::new(path, describe(p));
    let ty = type_of(p);
    let mut target = target;
    if let Some(t) = target
        && !used.insert(t)
    {
        rule.notes.push_str(&format!(
            "# TODO: `{t}` is guessed for an earlier member too; map this one or leave it\n"
        ));
        target = None;
    }
    // A body member naming the user a path parameter already names: it must agree.
    if ctx.kind == RouteKind::Update
        && let Some((param, _)) = ctx.params.iter().find(|(_, a)| Some(*a) == target)
    {
        if let Some(t) = ty {
            rule.line("type", string(t));
        }
        if is_required {
            rule.line("required", "true");
        }
        rule.lines
            .push(format!("equals_param = {}{TODO}", string(param)));
        return rule;
    }
    match target {
        Some(t) => rule.lines.push(format!("to = {}{TODO}", string(t))),
        None => rule.notes.push_str(
            "# TODO: no canonical attribute guessed: map it (`to = …`), or leave it checked only\n",
        ),
    }
    if let Some(t) = target {
        if guess::read_only(t) || p.get("readOnly") == Some(&Value::Bool(true)) {
            rule.line("read_only", "true");
            if let Some(items) = items(ctx, p, true) {
                rule.line("items", items);
            }
            return rule;
        }
        if ctx.identify_by_body && matches!(t, "userName" | "ext.authenticator") {
            rule.lines.push(format!("identifies = {}{TODO}", string(t)));
            rule.identifies = Some(t);
        }
    }
    if let Some(t) = ty {
        rule.line("type", string(t));
    }
    // A member with a default is never missing: the document's `required` is then its shape.
    let default = p.get("default").and_then(inline);
    if is_required && default.is_none() {
        rule.line("required", "true");
    }
    if let Some(d) = default {
        match target {
            Some("groups.op") => rule.line("default", d),
            Some(_) if ctx.creating => {
                rule.line("default", d);
                rule.line("default_on", "[\"create\"]");
            }
            _ => rule.notes.push_str(&format!(
                "# The document's default: {d} (an update leaves an absent member alone)\n"
            )),
        }
    }
    let mut transforms = Vec::new();
    let base64 = p
        .get("description")
        .and_then(Value::as_str)
        .is_some_and(|d| d.to_ascii_lowercase().contains("base64"))
        || p.get("format").and_then(Value::as_str) == Some("byte");
    if base64 && ty == Some("string") {
        transforms.push("\"base64\"".to_owned());
    }
    if let Some(values) = p.get("enum").and_then(Value::as_array) {
        let mut map = Map::new();
        for v in values {
            let Some(word) = v
                .as_str()
                .map(str::to_owned)
                .or_else(|| v.as_i64().map(|n| n.to_string()))
            else {
                continue;
            };
            let to = match target {
                Some("groups.op") => guess::group_op(&word)
                    .map_or_else(|| Value::String(word.clone()), |w| Value::String(w.into())),
                _ => v.clone(),
            };
            map.insert(word, to);
        }
        if let Some(m) = inline(&Value::Object(map)) {
            transforms.push(format!("{{ map = {m} }}"));
        }
    }
    if !transforms.is_empty() {
        rule.line("transform", format!("[{}]", transforms.join(", ")));
    }
    checks(p, &mut |k, v| rule.line(k, v));
    if ty == Some("array") {
        if let Some(u) = unique_by(ctx, p) {
            rule.line("unique_by", string(&u));
        }
        if let Some(items) = items(ctx, p, false) {
            rule.line("items", items);
        }
    }
    if ty == Some("object")
        && let Some(fields) = sub_fields(ctx, p, false, |n, _| n.to_owned())
    {
        rule.line("fields", fields);
    }
    let plain = transforms.is_empty()
        && matches!(
            ty,
            Some("string" | "boolean" | "integer" | "int32" | "number")
        );
    if let (Some(t), true) = (target, plain)
        && attribute(t).is_some()
        && !guess::secret(t)
    {
        rule.expect = Some((t, at.to_vec()));
    }
    rule
}

/// Length, pattern, format and range checks a schema states.
fn checks(p: &Map<String, Value>, line: &mut dyn FnMut(&str, String)) {
    for (from, to) in [("minLength", "min_length"), ("maxLength", "max_length")] {
        if let Some(n) = p.get(from).and_then(Value::as_u64) {
            line(to, n.to_string());
        }
    }
    if let Some(pat) = p.get("pattern").and_then(Value::as_str) {
        line("pattern", string(pat));
    }
    if p.get("format").and_then(Value::as_str) == Some("email") {
        line("format", string("email"));
    }
    for (from, to) in [("minimum", "min"), ("maximum", "max")] {
        if let Some(n) = p.get(from).and_then(Value::as_i64) {
            line(to, n.to_string());
        }
    }
}

/// `unique_by` for a `uniqueItems` array of objects: the items' first required member.
fn unique_by(ctx: &Ctx<'_>, p: &Map<String, Value>) -> Option<String> {
    if p.get("uniqueItems") != Some(&Value::Bool(true)) {
        return None;
    }
    let item = ctx.doc.schema(p.get("items")?);
    let req = required_of(&item);
    let props = item.get("properties")?.as_object()?;
    props.keys().find(|k| req.contains(k.as_str())).cloned()
}

/// The `items` value of an array rule: the item type, and for objects their members' rules.
fn items(ctx: &Ctx<'_>, p: &Map<String, Value>, read_only: bool) -> Option<String> {
    let item = ctx.doc.schema(p.get("items")?);
    match type_of(&item) {
        Some("object") => {
            let names: Vec<String> = item
                .get("properties")
                .and_then(Value::as_object)
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            let sib: Vec<&str> = names.iter().map(String::as_str).collect();
            let fields = sub_fields(ctx, &item, read_only, |n, _| guess::item_member(n, &sib))?;
            Some(format!("{{ type = \"object\", fields = {fields} }}"))
        }
        Some(t) if !read_only => Some(format!("{{ type = {} }}", string(t))),
        _ => None,
    }
}

/// The inline member rules of an object (or array item): `[\n  { source, to, type, … },\n]`.
fn sub_fields(
    ctx: &Ctx<'_>,
    obj: &Map<String, Value>,
    read_only: bool,
    name_of: impl Fn(&str, &Map<String, Value>) -> String,
) -> Option<String> {
    let props = obj.get("properties")?.as_object()?;
    let req = required_of(obj);
    let mut lines = Vec::new();
    for (name, prop) in props {
        let s = ctx.doc.schema(prop);
        let mut parts = vec![
            format!("source = {}", string(&member_path("$", name))),
            format!("to = {}", string(&name_of(name, &s))),
        ];
        if !read_only {
            if let Some(t) = type_of(&s) {
                parts.push(format!("type = {}", string(t)));
            }
            if req.contains(name.as_str()) {
                parts.push("required = true".into());
            }
            checks(&s, &mut |k, v| parts.push(format!("{k} = {v}")));
            if type_of(&s) == Some("array")
                && let Some(u) = unique_by(ctx, &s)
            {
                parts.push(format!("unique_by = {}", string(&u)));
            }
        }
        if type_of(&s) == Some("array")
            && let Some(i) = items(ctx, &s, read_only)
        {
            parts.push(format!("items = {}", i.replace('\n', "\n  ")));
        }
        lines.push(format!("  {{ {} }},", parts.join(", ")));
    }
    Some(format!("[\n{}\n]", lines.join("\n")))
}

/// A `param:NAME` rule for a path parameter, and the attribute it identifies: an integer is
/// a numeric id, a name-like string the user name, another string the canonical id.
pub fn param(
    name: &str,
    p: &Map<String, Value>,
    description: Option<&str>,
) -> (Rule, &'static str) {
    let n = guess::normal(name);
    let integer = matches!(type_of(p), Some("int32" | "integer"));
    let attr = if integer {
        "ext.numericId"
    } else if n.contains("authenticator") {
        "ext.authenticator"
    } else if n.contains("name") || n == "login" {
        "userName"
    } else {
        "id"
    };
    let mut notes = format!("# Path parameter `{name}`.\n");
    if let Some(d) = description {
        notes.push_str(&comment(d, "", 94));
    }
    let mut rule = Rule::new(&format!("param:{name}"), notes);
    rule.lines
        .push(format!("identifies = {}{TODO}", string(attr)));
    rule.line("type", string("string"));
    if integer {
        rule.line("transform", "[\"parse_int32\"]");
    }
    checks(p, &mut |k, v| rule.line(k, v));
    rule.identifies = Some(attr);
    (rule, attr)
}

/// The rules of a read view: each member of the answer's user object, its target guessed
/// (read-only attributes allowed), nested objects flattened.
pub fn view(ctx: &Ctx<'_>, item: &Map<String, Value>, prefix: &str, out: &mut Vec<String>) {
    let Some(props) = item.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, prop) in props {
        let p = ctx.doc.schema(prop);
        let path = member_path(prefix, name);
        let target = guess::target(name).filter(|t| attribute(t).is_some());
        if type_of(&p) == Some("object") && p.contains_key("properties") && target.is_none() {
            view(ctx, &p, &path, out);
            continue;
        }
        match target.filter(|t| !guess::secret(t)) {
            Some(t) => out.push(format!(
                "  {{ source = {}, to = {} }},  # TODO check",
                string(&path),
                string(t)
            )),
            None => out.push(format!(
                "  {{ source = {} }},  # TODO: always unset; map it or keep it",
                string(&path)
            )),
        }
    }
}
