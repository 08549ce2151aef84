//! `translate --explain`: where every attribute of a translation came from. Each rule of the
//! route is looked at on its own, the way the translation runs it (the same fetch and the same
//! evaluation), and what became of each member of the request is worked out from the rules
//! that read it. Offline only: the gateway's translation never pays for this.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::Value;

use super::apply::{Ctx, Eval, Out, apply_join, eval, fetch, members_of};
use super::*;
use crate::dialect::route::Params;
use crate::json::Node;

/// What each rule of a route did with one request, and what became of each request member.
#[derive(Debug, Serialize)]
pub struct Explanation {
    /// The dialect.
    pub dialect: String,
    /// The route taken.
    pub route: String,
    /// Its kind.
    pub kind: &'static str,
    /// The rules the route runs, in order.
    pub rules: Vec<RuleTrace>,
    /// The request body's members (dotted paths), each with what became of it.
    pub members: Vec<MemberTrace>,
}

/// One rule, on this request.
#[derive(Debug, Serialize)]
pub struct RuleTrace {
    /// `file:line` of its `[[fields]]` table.
    pub at: String,
    /// Its source as written (`$.a.b`, `param:id`, `value …`, `join`).
    pub source: String,
    /// The canonical attributes it writes (empty: it writes none, e.g. a check or a target).
    pub to: Vec<String>,
    /// The canonical attribute it identifies the target by, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identifies: Option<String>,
    /// Its transforms, in order.
    pub transforms: Vec<String>,
    /// What it did: `set`, `default`, `cleared`, `absent`, `groups`, `read-only: dropped`,
    /// `read-only: absent`, `refused: …`, `not for this operation`.
    pub outcome: String,
    /// The value it wrote (after its transforms); `"***"` for a secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
}

/// One request member.
#[derive(Debug, Serialize)]
pub struct MemberTrace {
    /// Its dotted path in the body (`userKey.username`).
    pub member: String,
    /// What became of it: `mapped`, `secret`, `read-only`, `ignored` or `refused`.
    pub became: &'static str,
    /// The rules that read it (`file:line`) and where each put it.
    pub by: Vec<String>,
}

impl Mapping {
    /// Explains route `route` on a request: its path parameters, query (no `?`), headers and
    /// parsed body (`Node::Obj` of nothing for a route without a body).
    pub fn explain(
        &self,
        route: usize,
        params: &Params,
        query: &str,
        headers: &http::HeaderMap,
        body: &Node<'_>,
    ) -> Option<Explanation> {
        let r = self.routes.get(route)?;
        let op = r.kind.write().unwrap_or(OpKind::Update);
        let ctx = Ctx {
            op,
            params,
            query,
            headers,
        };
        let scope = match &r.members {
            Some(m) => members_of(body, m).unwrap_or(body),
            None => body,
        };
        let file = self.file.display().to_string();
        let mut rules = Vec::new();
        for &i in &r.rules {
            let Some(rule) = self.rules.get(i) else {
                continue;
            };
            let node = if rule.routes.is_some() { body } else { scope };
            let Some(place) = self.places.get(i) else {
                continue;
            };
            rules.push(trace(&file, rule, place, node, &ctx));
        }
        let mut members = Vec::new();
        if let Node::Obj(_) = scope {
            walk(scope, "", &mut |path| {
                members.push(self.member(path, &r.rules, &file));
            });
        }
        Some(Explanation {
            dialect: self.dialect.to_string(),
            route: r.name.to_string(),
            kind: r.kind.as_str(),
            rules,
            members,
        })
    }

    /// Every `[[fields]]` rule of the file: `(file:line, its source as written)`, in file order,
    /// as [`RuleTrace::at`] names them.
    pub fn rule_sites(&self) -> Vec<(String, String)> {
        let file = self.file.display().to_string();
        self.places
            .iter()
            .map(|p| {
                let source = if p.parts.is_empty() {
                    p.written.to_string()
                } else {
                    format!("join of {}", p.parts.join(", "))
                };
                (format!("{file}:{}", p.line), source)
            })
            .collect()
    }

    /// What became of the member at dotted `path`: the rules of `route_rules` that read it
    /// (itself, or an object or array above it).
    fn member(&self, path: &str, route_rules: &[usize], file: &str) -> MemberTrace {
        let mut by = Vec::new();
        let (mut secret, mut read_only) = (false, false);
        for &i in route_rules {
            let (Some(rule), Some(place)) = (self.rules.get(i), self.places.get(i)) else {
                continue;
            };
            let reads = |written: &str| {
                written.strip_prefix("$.").is_some_and(|read| {
                    path == read
                        || path
                            .strip_prefix(read)
                            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
                })
            };
            let covers = reads(&place.written) || place.parts.iter().any(|p| reads(p));
            if !covers {
                continue;
            }
            secret |= rule.is_secret();
            read_only |= rule.read_only;
            let to = rule.targets();
            by.push(if to.is_empty() {
                format!("{file}:{} (checked)", place.line)
            } else {
                format!("{file}:{} → {}", place.line, to.join(", "))
            });
        }
        let became = if by.is_empty() {
            match self.unknown {
                UnknownPolicy::Ignore => "ignored",
                UnknownPolicy::Reject => "refused",
            }
        } else if read_only {
            "read-only"
        } else if secret {
            "secret"
        } else {
            "mapped"
        };
        MemberTrace {
            member: path.to_owned(),
            became,
            by,
        }
    }
}

impl Rule {
    fn is_secret(&self) -> bool {
        self.dests
            .iter()
            .any(|d| matches!(d, Dest::Attr(_, def) if def.secret))
            || self.dests.iter().any(|d| matches!(d, Dest::CallerPassword))
    }

    /// The canonical attributes (or group fields) the rule writes, by name.
    fn targets(&self) -> Vec<String> {
        self.dests
            .iter()
            .filter_map(|d| match d {
                Dest::Attr(_, def) => Some(def.name.to_owned()),
                Dest::GroupsOp => Some("groups.op".to_owned()),
                Dest::GroupsValues => Some("groups.values".to_owned()),
                Dest::CallerPassword => Some("callerPassword".to_owned()),
                Dest::Member(_) => None,
            })
            .collect()
    }
}

impl RuleTrace {
    /// Whether the request gave the rule something to work on: a value it set, defaulted,
    /// cleared, checked or refused (not: absent, not for this operation).
    pub fn exercised(&self) -> bool {
        !(self.outcome.starts_with("absent")
            || self.outcome == "not for this operation"
            || self.outcome == "read-only: absent")
    }
}

fn trace(file: &str, rule: &Rule, place: &RulePlace, node: &Node<'_>, ctx: &Ctx<'_>) -> RuleTrace {
    let source = if rule.join.is_some() {
        format!("join of {}", place.parts.join(", "))
    } else {
        place.written.to_string()
    };
    let mut t = RuleTrace {
        at: format!("{file}:{}", place.line),
        source,
        to: rule.targets(),
        identifies: rule
            .identifies
            .as_ref()
            .map(|steps| crate::canonical::display_steps(steps)),
        transforms: rule.transforms.iter().map(Transform::name).collect(),
        outcome: String::new(),
        value: None,
    };
    if !rule.applies(ctx.op) {
        t.outcome = "not for this operation".into();
        return t;
    }
    let fetched = fetch(rule, node, ctx);
    if rule.read_only {
        t.outcome = if fetched.is_some() {
            "read-only: dropped".into()
        } else {
            "read-only: absent".into()
        };
        return t;
    }
    if let Some(join) = &rule.join {
        let mut out = Out::default();
        t.outcome = match apply_join(0, rule, join, node, ctx, &mut out) {
            Err(rej) => format!("refused: {}", rej.message),
            Ok(()) => match join
                .locs
                .first()
                .and_then(|l| crate::canonical::get(&out.user, l))
            {
                Some(v) => {
                    t.value = Some(v.clone());
                    "set".into()
                }
                // An update that sends only some parts completes them from the stored user.
                None if ctx.op == OpKind::Update => {
                    "absent, or completed from the stored user".into()
                }
                None => "absent".into(),
            },
        };
        return t;
    }
    let was_sent = fetched.is_some();
    t.outcome = match eval(rule, fetched.map(|c| Cow::Owned(c.into_owned())), ctx) {
        Ok(Eval::Absent) => "absent".into(),
        Ok(Eval::Null) if ctx.op == OpKind::Create => "null: unset on a create".into(),
        Ok(Eval::Null) => "cleared".into(),
        Ok(Eval::Groups(g)) => format!("groups: {} named", g.len()),
        Ok(Eval::Value(_)) if t.to.is_empty() && t.identifies.is_none() => "checked".into(),
        Ok(Eval::Value(v)) => {
            t.value = Some(if rule.is_secret() {
                Value::String("***".into())
            } else {
                v
            });
            if was_sent { "set" } else { "default" }.into()
        }
        Err(rej) => format!("refused: {}", rej.message),
    };
    t
}

/// Calls `f` with the dotted path of every member of `node` (an object), depth first: an
/// object's members are walked into, an array or a scalar is one member.
fn walk(node: &Node<'_>, prefix: &str, f: &mut impl FnMut(&str)) {
    let Node::Obj(members) = node else {
        return;
    };
    for (k, v) in members.iter() {
        let path = if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Node::Obj(m) if !m.is_empty() => walk(v, &path, f),
            _ => f(&path),
        }
    }
}

/// The explanation as text: one line per rule, then one per request member.
pub fn render_text(e: &Explanation) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "{} route `{}` ({})", e.dialect, e.route, e.kind);
    let _ = writeln!(s, "\nrules, in the order they run:");
    let w = e.rules.iter().map(|r| r.at.len()).max().unwrap_or(0);
    for r in &e.rules {
        let to = if r.to.is_empty() {
            r.identifies
                .as_ref()
                .map_or_else(|| "-".to_owned(), |i| format!("identifies {i}"))
        } else {
            r.to.join(", ")
        };
        let transforms = if r.transforms.is_empty() {
            String::new()
        } else {
            format!(" | {}", r.transforms.join(" | "))
        };
        let value = r
            .value
            .as_ref()
            .map_or_else(String::new, |v| format!(" = {v}"));
        let _ = writeln!(
            s,
            "  {:<w$}  {}{transforms} → {to}: {}{value}",
            r.at, r.source, r.outcome
        );
    }
    if !e.members.is_empty() {
        let _ = writeln!(s, "\nrequest members:");
        let w = e.members.iter().map(|m| m.member.len()).max().unwrap_or(0);
        for m in &e.members {
            let by = if m.by.is_empty() {
                "no rule reads it".to_owned()
            } else {
                m.by.join("; ")
            };
            let _ = writeln!(s, "  {:<w$}  {:<9} {by}", m.member, m.became);
        }
    }
    s
}
