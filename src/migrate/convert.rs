//! `userbridge convert`: one dialect's request bodies into another's, offline, through the
//! canonical model. Each line is translated by the first dialect's mapping (with all its
//! checks) and rendered by the second's; what the second cannot carry is named per line,
//! never dropped silently. Secrets a line carries are converted too (they are the file's own),
//! where the second dialect has a place for them.

use serde_json::Value;

use super::{line_of, parse_line, user_of_operation};
use crate::canonical::{ATTRIBUTES, get, location};
use crate::exchange::Exchange;
use crate::mapping::Mapping;
use crate::mapping::render::ErrorContext;
use crate::rejection::Rejection;

/// One converted line.
#[derive(Debug)]
pub enum Converted {
    /// The line in the target dialect, and the canonical attributes it could not carry.
    Line {
        /// The output line.
        line: Value,
        /// Attributes set by the input that the target dialect has no member for.
        lost: Vec<String>,
    },
    /// The input line was refused by its own dialect: the error body.
    Refused(Value),
}

/// A conversion between two dialects, routes chosen.
pub struct Converter<'a> {
    /// The input dialect's route (each line brings its own path parameters).
    pub from: Exchange,
    /// The output dialect.
    pub to: &'a Mapping,
    /// The output route (for its path parameters).
    pub to_route: usize,
    /// JSON nesting bound.
    pub max_depth: usize,
}

impl Converter<'_> {
    /// Converts one input line.
    pub fn line(&self, text: &[u8]) -> Converted {
        let refused =
            |rej: Rejection| {
                let answer = self.from.refuse(&rej, &ErrorContext::default());
                Converted::Refused(serde_json::from_slice(&answer.body).unwrap_or_else(|_| {
                    Value::String(String::from_utf8_lossy(&answer.body).into())
                }))
            };
        let req = match parse_line(text, self.max_depth) {
            Ok(r) => r,
            Err(m) => return refused(Rejection::invalid("body", "json", m)),
        };
        let from = Exchange {
            params: req.params,
            ..self.from.clone()
        };
        let op = match from.translate_value(&http::HeaderMap::new(), &req.body) {
            Ok(t) => t.op,
            Err(rej) => return refused(rej),
        };
        let user = user_of_operation(&op);
        let carried = self.to.carried();
        let mut lost: Vec<String> = leaves_set(user.exposed())
            .into_iter()
            .filter(|a| !carried.iter().any(|c| covers(c, a)))
            .map(str::to_owned)
            .collect();
        let body = self.to.render_request(self.to_route, &user, true);
        let params = match self.to.render_params(self.to_route, &user) {
            Ok(p) => p,
            Err(why) => {
                // The target route's parameter has no value: the line goes without it.
                lost.push(why);
                Default::default()
            }
        };
        Converted::Line {
            line: line_of(&params, body),
            lost,
        }
    }
}

/// The canonical attributes (leaves of the registry, and `groups`) set in `doc`.
pub fn leaves_set(doc: &serde_json::Map<String, Value>) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = ATTRIBUTES
        .iter()
        .filter(|a| !a.read_only && is_leaf(a.name))
        .filter(|a| get(doc, &location(a.name)).is_some_and(|v| !is_empty(v)))
        .map(|a| a.name)
        .collect();
    if doc.get("groups").is_some_and(|g| !is_empty(g)) {
        out.push("groups");
    }
    out
}

/// An attribute no other registry entry refines (`name.givenName`, not `name`).
pub fn is_leaf(name: &str) -> bool {
    !ATTRIBUTES.iter().any(|b| {
        b.name.len() > name.len()
            && b.name.starts_with(name)
            && matches!(b.name.as_bytes()[name.len()], b'.' | b'[')
    })
}

/// Whether carrying `carried` carries `attr` (the same, or a whole that contains it).
pub fn covers(carried: &str, attr: &str) -> bool {
    carried == attr
        || (attr.starts_with(carried) && matches!(attr.as_bytes()[carried.len()], b'.' | b'['))
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}
