//! Canonical → dialect: the stored user rendered back through the field rules, and the
//! dialect's success and error answers. Secret attributes are never rendered.

use serde_json::{Map, Value};

use super::*;
use crate::canonical::{UserDoc, get};
use crate::dialect::route::Params;
use crate::dialect::template::{Scope, Var, now};
use crate::rejection::Rejection;

/// What an error answer may mention besides the rejection itself.
#[derive(Debug, Default, Clone, Copy)]
pub struct ErrorContext<'a> {
    /// The request path.
    pub path: &'a str,
    /// The request id.
    pub request_id: &'a str,
    /// The operation's target, when known.
    pub target: Option<&'a UserDoc>,
    /// The operation's user, when known.
    pub user: Option<&'a UserDoc>,
}

/// The users a success answer renders.
#[derive(Debug, Clone, Copy)]
pub enum Answered<'a> {
    /// None (a fixed or empty answer).
    Nothing,
    /// One stored user (a write's, a get's).
    One(&'a UserDoc),
    /// A list's page, and how many users matched in all.
    Many(&'a [UserDoc], usize),
}

impl Mapping {
    /// Renders a canonical user as this dialect's user body (the field rules in reverse).
    pub fn render_user(&self, user: &UserDoc) -> Value {
        self.render_with(&self.rules, self.success.include_unset, user)
    }

    /// Renders a user as route `route`'s answer shows it: through its view, else the rules.
    pub fn render_user_for(&self, route: usize, user: &UserDoc) -> Value {
        let plan = self.routes.get(route);
        match plan.and_then(|r| r.view).and_then(|v| self.views.get(v)) {
            Some(view) => self.render_with(&view.rules, view.include_unset, user),
            None => {
                let unset = self.success_of(route).include_unset;
                self.render_with(&self.rules, unset, user)
            }
        }
    }

    fn render_with(&self, rules: &[Rule], include_unset: bool, user: &UserDoc) -> Value {
        let mut out = Map::new();
        for rule in rules {
            render_rule(rule, user.exposed(), &mut out, include_unset, false);
        }
        Value::Object(out)
    }

    /// The success answer of route `route`: its own `answer`, else `[success]`.
    pub fn success_of(&self, route: usize) -> &Success {
        self.routes
            .get(route)
            .and_then(|r| r.answer.as_ref())
            .unwrap_or(&self.success)
    }

    /// Whether route `route`'s answer needs the stored user (else a write may skip reading it).
    pub fn route_renders_user(&self, route: usize) -> bool {
        self.success_of(route).renders_user
    }

    /// Route `route`'s success answer for `users`, secrets never rendered.
    pub fn route_response(
        &self,
        route: usize,
        users: Answered<'_>,
        request_id: &str,
    ) -> DialectResponse {
        let plan = self.success_of(route);
        let json = Some("application/json".into());
        let (content_type, body) = match (&plan.body, users) {
            (SuccessBody::Empty, _) => (None, bytes::Bytes::new()),
            (SuccessBody::Fixed(b), _) => (json, b.clone()),
            (SuccessBody::User, Answered::One(u)) => (
                json,
                bytes::Bytes::from(self.render_user_for(route, u).to_string()),
            ),
            (SuccessBody::User, _) => (json, bytes::Bytes::from_static(b"{}")),
            (SuccessBody::Template(t), users) => {
                let scope = SuccessScope {
                    mapping: self,
                    route,
                    users,
                    request_id,
                };
                let v = t.render(&scope).unwrap_or(Value::Null);
                (json, bytes::Bytes::from(v.to_string()))
            }
        };
        DialectResponse {
            status: plan.status,
            content_type,
            headers: Vec::new(),
            body,
        }
    }

    /// The path parameters of `route` for `user`: each from the canonical attribute its field
    /// identifies the user by (e.g. commvault's `userId` from ext `numericId`). `Err` names a
    /// parameter the user has no value for.
    pub fn render_params(&self, route: usize, user: &UserDoc) -> Result<Params, String> {
        let mut out = Params::new();
        let Some(r) = self.routes.get(route) else {
            return Err("no such route".into());
        };
        let Some(template) = r.paths.first() else {
            return Ok(out);
        };
        for name in template.param_names() {
            // A parameter no rule reads (a version segment) needs no value.
            if !self
                .rules
                .iter()
                .any(|r| matches!(&r.source, Source::Param(p) if **p == **name))
            {
                continue;
            }
            match self.param_value(name, user) {
                Some(v) => out.push((Arc::clone(name), v)),
                None => return Err(format!("no value for the path parameter `{name}`")),
            }
        }
        Ok(out)
    }

    /// The value of path parameter `name` for `user`: the canonical attribute the rule reading
    /// it identifies the user by, through its transforms in reverse.
    fn param_value(&self, name: &str, user: &UserDoc) -> Option<String> {
        let rule = self
            .rules
            .iter()
            .find(|rule| matches!(&rule.source, Source::Param(p) if **p == *name))?;
        let v = get(user.exposed(), rule.identifies.as_deref()?)?;
        match reverse(rule, v.clone()) {
            Value::String(s) => Some(s),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// Renders a canonical user as a request body of this dialect: what a client would send
    /// to write it (export, convert), group memberships included (as the dialect's "replace").
    /// With `secrets`, secret attributes are rendered too (convert carries a file's own
    /// secrets); the caller's own password never.
    pub fn render_request(&self, route: usize, user: &UserDoc, secrets: bool) -> Value {
        let doc = user.exposed();
        let plan = self.routes.get(route);
        let op = plan.and_then(Route::operation).unwrap_or(OpKind::Update);
        // The shared rules' members go under the route's `members`, its own rules at the root.
        let mut root = Map::new();
        let groups = doc
            .get("groups")
            .and_then(Value::as_array)
            .filter(|g| !g.is_empty());
        let mut inner = Map::new();
        for rule in self.rules.iter().filter(|r| r.applies_on(op, route)) {
            let out = if rule.routes.is_some() {
                &mut root
            } else {
                &mut inner
            };
            match (rule.dests.first(), &rule.source, groups) {
                (Some(Dest::GroupsValues), Source::Body(p), Some(groups)) => {
                    let items: Vec<Value> = groups.iter().map(|g| group_item(rule, g)).collect();
                    if let Some(keys) = p.keys() {
                        put(out, keys, Value::Array(items));
                    }
                }
                (Some(Dest::GroupsOp), Source::Body(p), Some(_)) => {
                    if let Some(keys) = p.keys() {
                        put(out, keys, reverse(rule, Value::from("replace")));
                    }
                }
                (Some(Dest::GroupsValues | Dest::GroupsOp), ..) => {}
                _ => render_rule(rule, doc, out, false, secrets),
            }
            // Members that restate what identifies the user: equal to a path parameter, or
            // to a stored attribute (a precondition), rather than written anywhere.
            let Source::Body(p) = &rule.source else {
                continue;
            };
            let Some(keys) = p.keys() else { continue };
            // A member that only identifies the user (vc's partial update's `username`).
            if rule.dests.is_empty()
                && let Some(v) = rule.identifies.as_deref().and_then(|loc| get(doc, loc))
            {
                put(out, keys, reverse(rule, v.clone()));
            }
            if let Some(v) = rule
                .checks
                .equals_param
                .as_deref()
                .and_then(|name| self.param_value(name, user))
            {
                put(out, keys, Value::String(v));
            }
        }
        for pre in self.preconditions.iter().filter(|_| op == OpKind::Update) {
            let Some(rule) = pre.equals_rule.and_then(|i| self.rules.get(i)) else {
                continue;
            };
            let (Source::Body(p), Some(v)) = (
                &rule.source,
                get(doc, &crate::canonical::location(&pre.attribute)),
            ) else {
                continue;
            };
            if let Some(keys) = p.keys() {
                put(&mut inner, keys, v.clone());
            }
        }
        match plan.and_then(|r| r.members.as_ref()) {
            Some(m) => {
                let inner = Value::Object(inner);
                let v = if m.array {
                    Value::Array(vec![inner])
                } else {
                    inner
                };
                put(&mut root, &m.keys, v);
                Value::Object(root)
            }
            None => {
                root.extend(inner);
                Value::Object(root)
            }
        }
    }

    /// The error answer for `rej`, in this dialect's shape.
    pub fn error_response(&self, rej: &Rejection, ctx: &ErrorContext<'_>) -> DialectResponse {
        let plan = self
            .errors
            .outcomes
            .iter()
            .find(|(o, _)| *o == rej.outcome)
            .map(|(_, p)| p);
        let status = plan
            .and_then(|p| p.status)
            .unwrap_or_else(|| rej.outcome.default_status());
        let mut scope = ErrScope {
            rej,
            ctx,
            status,
            vars: [plan.map(|p| &p.vars), Some(&self.errors.vars)],
            message: None,
        };
        if let Some(t) = plan.and_then(|p| p.message.as_ref()) {
            scope.message = Some(t.render_text(&scope));
        }
        let body_t = plan
            .and_then(|p| p.body.as_ref())
            .unwrap_or(&self.errors.body);
        let body = body_t.render(&scope).unwrap_or(Value::Null);
        let mut headers = Vec::new();
        for (name, t) in self
            .errors
            .headers
            .iter()
            .chain(plan.map(|p| p.headers.as_slice()).unwrap_or_default())
        {
            headers.push((name.clone(), t.render_text(&scope)));
        }
        if rej.outcome == crate::rejection::Outcome::Unauthorized
            && let Some(c) = &self.auth.challenge
        {
            headers.push((http::header::WWW_AUTHENTICATE, c.to_string()));
        }
        DialectResponse {
            status,
            content_type: Some(self.errors.content_type.clone()),
            headers,
            body: bytes::Bytes::from(body.to_string()),
        }
    }
}

struct SuccessScope<'a> {
    mapping: &'a Mapping,
    route: usize,
    users: Answered<'a>,
    request_id: &'a str,
}

impl Scope for SuccessScope<'_> {
    fn get(&self, var: &Var) -> Option<Value> {
        match (var, self.users) {
            (Var::Now(f), _) => Some(Value::String(now(f.as_deref()))),
            // Secret attributes are refused when the template is compiled.
            (Var::Attr { loc, .. }, Answered::One(u)) => get(u.exposed(), loc).cloned(),
            (Var::Named(n), users) => match (&**n, users) {
                ("user", Answered::One(u)) => Some(self.mapping.render_user_for(self.route, u)),
                ("users", Answered::Many(list, _)) => Some(Value::Array(
                    list.iter()
                        .map(|u| self.mapping.render_user_for(self.route, u))
                        .collect(),
                )),
                ("users", _) => Some(Value::Array(Vec::new())),
                ("total", Answered::Many(_, total)) => Some(Value::from(total)),
                ("request_id", _) => Some(Value::String(self.request_id.to_owned())),
                _ => None,
            },
            _ => None,
        }
    }
}

struct ErrScope<'a> {
    rej: &'a Rejection,
    ctx: &'a ErrorContext<'a>,
    status: u16,
    vars: [Option<&'a Map<String, Value>>; 2],
    message: Option<String>,
}

impl Scope for ErrScope<'_> {
    fn get(&self, var: &Var) -> Option<Value> {
        match var {
            Var::Now(f) => Some(Value::String(now(f.as_deref()))),
            Var::Attr { target, loc } => {
                let doc = if *target {
                    self.ctx.target
                } else {
                    self.ctx.user
                }?;
                get(&doc.redacted(), loc).cloned()
            }
            Var::Named(n) => match &**n {
                "status" => Some(Value::from(self.status)),
                "reason" => Some(Value::String(
                    http::StatusCode::from_u16(self.status)
                        .ok()
                        .and_then(|s| s.canonical_reason())
                        .unwrap_or("Error")
                        .into(),
                )),
                "message" => Some(Value::String(
                    self.message
                        .clone()
                        .unwrap_or_else(|| self.rej.message.clone()),
                )),
                "field" => self.rej.field.clone().map(Value::String),
                "rule" => Some(Value::String(self.rej.rule.into())),
                "path" => Some(Value::String(self.ctx.path.to_owned())),
                "request_id" => Some(Value::String(self.ctx.request_id.to_owned())),
                other => self
                    .vars
                    .iter()
                    .flatten()
                    .find_map(|m| m.get(other).cloned()),
            },
        }
    }
}

fn is_secret(rule: &Rule) -> bool {
    rule.dests.iter().any(|d| {
        matches!(
            d,
            Dest::CallerPassword | Dest::Attr(_, crate::canonical::AttrDef { secret: true, .. })
        )
    })
}

/// One canonical group (`{value, display}`) as the dialect's item, through the item rules.
fn group_item(rule: &Rule, group: &Value) -> Value {
    let mut item = Map::new();
    let subs = rule.items.as_ref().map_or(&[][..], |i| i.fields.as_slice());
    for sub in subs {
        let (Some(Dest::Member(m)), Source::Body(p)) = (sub.dests.first(), &sub.source) else {
            continue;
        };
        let (Some(keys), Some(v)) = (p.keys(), group.get(&**m)) else {
            continue;
        };
        // Canonical group values are text; a dialect taking numbers gets the number.
        let v = match v {
            Value::String(s)
                if sub.types & (T_INTEGER | T_INT32) != 0 && sub.types & T_STRING == 0 =>
            {
                s.parse::<i64>().map_or_else(|_| v.clone(), Value::from)
            }
            _ => v.clone(),
        };
        put(&mut item, keys, reverse(sub, v));
    }
    Value::Object(item)
}

fn render_rule(
    rule: &Rule,
    user: &Map<String, Value>,
    out: &mut Map<String, Value>,
    include_unset: bool,
    secrets: bool,
) {
    let caller = rule.dests.iter().any(|d| matches!(d, Dest::CallerPassword));
    if !rule.render || caller || (is_secret(rule) && !secrets) {
        return;
    }
    if let (Some(c), Source::Body(p)) = (&rule.constant, &rule.source) {
        if let Some(keys) = p.keys() {
            put(out, keys, c.clone());
        }
        return;
    }
    if let Some(join) = &rule.join {
        let value = rule.dests.iter().find_map(|d| match d {
            Dest::Attr(loc, _) => get(user, loc).and_then(Value::as_str),
            _ => None,
        });
        let parts = super::apply::split(join, value);
        for ((_, part), v) in join.parts.iter().zip(parts) {
            let Source::Body(p) = &part.source else {
                continue;
            };
            let Some(keys) = p.keys() else { continue };
            match v {
                Some(s) => put(out, keys, reverse(part, Value::String(s))),
                None if include_unset => put(out, keys, unset(part)),
                None => {}
            }
        }
        return;
    }
    let Source::Body(p) = &rule.source else {
        return;
    };
    let Some(keys) = p.keys() else { return };
    let Some(Dest::Attr(loc, _)) = rule.dests.iter().find(|d| matches!(d, Dest::Attr(..))) else {
        return;
    };
    match get(user, loc) {
        Some(v) if !v.is_null() => put(out, keys, reverse(rule, v.clone())),
        _ if include_unset => put(out, keys, unset(rule)),
        _ => {}
    }
}

fn unset(rule: &Rule) -> Value {
    rule.render_unset
        .clone()
        .or_else(|| rule.default.clone())
        .unwrap_or(Value::Null)
}

/// A canonical value back into the dialect's form: nested rules, then transforms reversed.
fn reverse(rule: &Rule, v: Value) -> Value {
    let v = match (v, &rule.items) {
        (Value::Array(items), Some(item_rule)) => {
            Value::Array(items.into_iter().map(|i| reverse(item_rule, i)).collect())
        }
        (v, _) => v,
    };
    let v = match v {
        Value::Object(m) if !rule.fields.is_empty() => {
            let mut out = Map::new();
            for f in &rule.fields {
                let (Source::Body(p), Some(Dest::Member(member))) = (&f.source, f.dests.first())
                else {
                    continue;
                };
                let Some(keys) = p.keys() else { continue };
                match m.get(&**member) {
                    Some(x) if !x.is_null() => put(&mut out, keys, reverse(f, x.clone())),
                    _ => put(&mut out, keys, unset(f)),
                }
            }
            Value::Object(out)
        }
        other => other,
    };
    rule.transforms.iter().rev().fold(v, |v, t| t.reverse(v))
}

fn put(out: &mut Map<String, Value>, keys: &[Box<str>], v: Value) {
    let Some((last, path)) = keys.split_last() else {
        return;
    };
    let mut node = out;
    for k in path {
        let slot = node
            .entry(k.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        let Value::Object(inner) = slot else { return };
        node = inner;
    }
    node.insert(last.to_string(), v);
}
