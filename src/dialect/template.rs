//! Body templates for dialect answers, compiled once.
//!
//! A JSON value whose strings may hold placeholders: a string that is exactly `{name}` is
//! replaced by the value with its own JSON type (`{status}` gives a number), `{name?}` leaves
//! the member out when the value is unset, any other `{name}` interpolates text, and an
//! object `{ "$json" = … }` renders its content and serialises it into a JSON string.
//! `now` and `now:FORMAT` give the current UTC time (chrono strftime, plus `%7f` for seven
//! fractional digits); `target.ATTR` and `user.ATTR` read canonical attributes.

use serde_json::{Map, Value};

use crate::canonical::{Step, location};

/// A placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Var {
    /// A named value (`status`, `message`, a var).
    Named(Box<str>),
    /// The current time, with an optional format.
    Now(Option<Box<str>>),
    /// A canonical attribute of the operation's target (`true`) or user.
    Attr {
        /// Read from the target (else the user).
        target: bool,
        /// Where.
        loc: Vec<Step>,
    },
}

#[derive(Debug, Clone)]
/// A piece of interpolated text.
pub enum Piece {
    /// Literal text.
    Text(Box<str>),
    /// A placeholder.
    Var(Var),
}

/// A compiled template.
#[derive(Debug, Clone)]
pub enum Template {
    /// A constant.
    Lit(Value),
    /// An object of templates.
    Obj(Vec<(Box<str>, Template)>),
    /// An array of templates.
    Arr(Vec<Template>),
    /// A whole-value placeholder.
    Whole {
        /// The placeholder.
        var: Var,
        /// Leave the member out when unset.
        optional: bool,
    },
    /// Text with placeholders.
    Interp(Vec<Piece>),
    /// Render, then serialise into a string.
    Json(Box<Template>),
}

/// Supplies placeholder values while rendering.
pub trait Scope {
    /// The value of `var`, or `None` when unset.
    fn get(&self, var: &Var) -> Option<Value>;
}

impl Template {
    /// Compiles a template value; the error names the bad placeholder.
    pub fn compile(v: &Value) -> Result<Self, String> {
        Ok(match v {
            Value::String(s) => compile_str(s)?,
            Value::Array(a) => {
                Template::Arr(a.iter().map(Self::compile).collect::<Result<_, _>>()?)
            }
            Value::Object(m) if m.len() == 1 && m.contains_key("$json") => {
                Template::Json(Box::new(Self::compile(&m["$json"])?))
            }
            Value::Object(m) => Template::Obj(
                m.iter()
                    .map(|(k, v)| Ok((k.as_str().into(), Self::compile(v)?)))
                    .collect::<Result<_, String>>()?,
            ),
            other => Template::Lit(other.clone()),
        })
    }

    /// Compiles a text template (a message): the result is always a string.
    pub fn compile_text(s: &str) -> Result<Self, String> {
        Ok(Template::Interp(pieces(s)?))
    }

    /// Calls `f` with every placeholder the template uses, for checks at load.
    pub fn each_var(&self, f: &mut dyn FnMut(&Var)) {
        match self {
            Template::Lit(_) => {}
            Template::Obj(members) => members.iter().for_each(|(_, t)| t.each_var(f)),
            Template::Arr(items) => items.iter().for_each(|t| t.each_var(f)),
            Template::Whole { var, .. } => f(var),
            Template::Interp(pieces) => pieces.iter().for_each(|p| {
                if let Piece::Var(v) = p {
                    f(v)
                }
            }),
            Template::Json(inner) => inner.each_var(f),
        }
    }

    /// Every named placeholder (`{message}`, a var) the template uses, for checks at load.
    pub fn named(&self, out: &mut Vec<Box<str>>) {
        self.each_var(&mut |v| {
            if let Var::Named(n) = v {
                out.push(n.clone());
            }
        });
    }

    /// Renders; `None` when a `{name?}` placeholder is unset at the top.
    pub fn render(&self, scope: &dyn Scope) -> Option<Value> {
        match self {
            Template::Lit(v) => Some(v.clone()),
            Template::Obj(members) => {
                let mut m = Map::with_capacity(members.len());
                for (k, t) in members {
                    if let Some(v) = t.render(scope) {
                        m.insert(k.to_string(), v);
                    }
                }
                Some(Value::Object(m))
            }
            Template::Arr(items) => Some(Value::Array(
                items.iter().filter_map(|t| t.render(scope)).collect(),
            )),
            Template::Whole { var, optional } => match scope.get(var) {
                Some(v) if !v.is_null() => Some(v),
                _ if *optional => None,
                _ => Some(Value::Null),
            },
            Template::Interp(ps) => Some(Value::String(interpolate(ps, scope))),
            Template::Json(inner) => inner.render(scope).map(|v| Value::String(v.to_string())),
        }
    }

    /// Renders as text (for message templates).
    pub fn render_text(&self, scope: &dyn Scope) -> String {
        match self.render(scope) {
            Some(Value::String(s)) => s,
            Some(v) => text_of(&v),
            None => String::new(),
        }
    }
}

fn compile_str(s: &str) -> Result<Template, String> {
    if let Some(inner) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}'))
        && !inner.contains(['{', '}'])
    {
        let (name, optional) = match inner.strip_suffix('?') {
            Some(n) => (n, true),
            None => (inner, false),
        };
        return Ok(Template::Whole {
            var: var(name)?,
            optional,
        });
    }
    let ps = pieces(s)?;
    if let [Piece::Text(t)] = ps.as_slice() {
        return Ok(Template::Lit(Value::String(t.to_string())));
    }
    if ps.is_empty() {
        return Ok(Template::Lit(Value::String(String::new())));
    }
    Ok(Template::Interp(ps))
}

fn pieces(s: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('{') {
        if i > 0 {
            out.push(Piece::Text(rest[..i].into()));
        }
        let end = rest[i..]
            .find('}')
            .ok_or_else(|| format!("unclosed `{{` in `{s}`"))?;
        out.push(Piece::Var(var(&rest[i + 1..i + end])?));
        rest = &rest[i + end + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.into()));
    }
    Ok(out)
}

fn var(name: &str) -> Result<Var, String> {
    if name == "now" {
        return Ok(Var::Now(None));
    }
    if let Some(fmt) = name.strip_prefix("now:") {
        let probe = fmt.replace("%7f", "0000000");
        if chrono::format::StrftimeItems::new(&probe).parse().is_err() {
            return Err(format!("`{fmt}` is not a valid time format"));
        }
        return Ok(Var::Now(Some(fmt.into())));
    }
    for (prefix, target) in [("target.", true), ("user.", false)] {
        if let Some(attr) = name.strip_prefix(prefix) {
            if crate::canonical::attribute(attr).is_none() {
                return Err(format!("`{attr}` is not a canonical attribute"));
            }
            return Ok(Var::Attr {
                target,
                loc: location(attr),
            });
        }
    }
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("bad placeholder `{{{name}}}`"));
    }
    Ok(Var::Named(name.into()))
}

fn interpolate(ps: &[Piece], scope: &dyn Scope) -> String {
    let mut s = String::new();
    for p in ps {
        match p {
            Piece::Text(t) => s.push_str(t),
            Piece::Var(v) => {
                if let Some(val) = scope.get(v) {
                    s.push_str(&text_of(&val));
                }
            }
        }
    }
    s
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Formats the current UTC time: RFC 3339 with milliseconds by default, or a strftime
/// format where `%7f` stands for seven fractional digits.
pub fn now(format: Option<&str>) -> String {
    let t = chrono::Utc::now();
    match format {
        None => t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        Some(f) => {
            use std::fmt::Write as _;
            let seven = format!("{:07}", t.timestamp_subsec_nanos() / 100);
            let mut out = String::new();
            // The format was checked at load; a failure here leaves the text empty, never panics.
            let _ = write!(out, "{}", t.format(&f.replace("%7f", &seven)));
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct S;
    impl Scope for S {
        fn get(&self, var: &Var) -> Option<Value> {
            match var {
                Var::Named(n) if &**n == "status" => Some(json!(400)),
                Var::Named(n) if &**n == "message" => {
                    Some(json!("firstName must be at most 64 characters"))
                }
                Var::Named(n) if &**n == "field" => Some(json!("firstName")),
                Var::Now(f) => Some(Value::String(now(f.as_deref()))),
                _ => None,
            }
        }
    }

    #[test]
    fn whole_optional_interpolated_and_json_string() {
        let t = Template::compile(&json!({
            "code": "{status}",
            "m": "E{status}: {message}.",
            "gone": "{nothing?}",
            "info": {"$json": {"error": "{message}", "field": "{field?}"}},
            "ts": "{now:%Y-%m-%dT%H:%M:%S.%7f}"
        }))
        .unwrap();
        let v = t.render(&S).unwrap();
        assert_eq!(v["code"], json!(400));
        assert_eq!(
            v["m"],
            json!("E400: firstName must be at most 64 characters.")
        );
        assert!(v.get("gone").is_none());
        assert_eq!(
            v["info"],
            json!(r#"{"error":"firstName must be at most 64 characters","field":"firstName"}"#)
        );
        let ts = v["ts"].as_str().unwrap();
        assert_eq!(ts.len(), "2026-11-25T10:15:30.1234567".len(), "{ts}");
    }

    #[test]
    fn bad_placeholders_are_compile_errors() {
        assert!(Template::compile(&json!("{target.nope}")).is_err());
        assert!(Template::compile(&json!("x {unclosed")).is_err());
        assert!(Template::compile(&json!("{now:%Q}")).is_err());
    }
}
