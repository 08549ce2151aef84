//! Request → canonical operation. Rules run in file order; the first failing rule answers
//! with a 400 naming its member. Nothing here parses the mapping: it only follows the plan.

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::*;
use crate::canonical::{
    Completion, GroupChange, GroupOp, GroupRef, PendingJoin, Precondition, UserDoc, get, set,
};
use crate::dialect::route::Params;
use crate::json::{JsonError, Node, parse_node};
use crate::redact::Secret;
use crate::rejection::Rejection;

pub(super) enum Eval {
    Absent,
    Null,
    Value(Value),
    /// The items of a `groups.values` rule, read straight into references (no map per item).
    Groups(Vec<GroupRef>),
}

pub(super) struct Ctx<'a> {
    pub(super) op: OpKind,
    pub(super) params: &'a Params,
    pub(super) query: &'a str,
    pub(super) headers: &'a http::HeaderMap,
}

#[derive(Default)]
pub(super) struct Out {
    pub(super) user: Map<String, Value>,
    target: Map<String, Value>,
    groups_op: Option<Value>,
    groups_values: Option<Vec<GroupRef>>,
    caller_password: Option<Secret>,
    pending: Vec<PendingJoin>,
    kept: Vec<(usize, Value)>,
}

/// The 400 for a body that is not acceptable JSON.
pub fn json_rejection(e: JsonError) -> Rejection {
    Rejection::new(crate::rejection::Outcome::Validation, "json", e.to_string())
}

impl Mapping {
    /// Translates a request body for route `route` (an index into `routes`).
    pub fn translate(
        &self,
        route: usize,
        params: &Params,
        headers: &http::HeaderMap,
        body: &[u8],
        max_depth: usize,
    ) -> Result<Translation, Rejection> {
        let node = parse_node(body, max_depth).map_err(json_rejection)?;
        self.translate_node(route, params, headers, &node)
    }

    /// Translates an already parsed body (an import line, a test).
    pub fn translate_value(
        &self,
        route: usize,
        params: &Params,
        headers: &http::HeaderMap,
        body: &Value,
    ) -> Result<Translation, Rejection> {
        self.translate_node(route, params, headers, &Node::from_value(body))
    }

    /// Translates a parsed body.
    pub fn translate_node(
        &self,
        route: usize,
        params: &Params,
        headers: &http::HeaderMap,
        body: &Node<'_>,
    ) -> Result<Translation, Rejection> {
        let route = self.route_plan(route)?;
        let Node::Obj(_) = body else {
            return Err(Rejection::new(
                crate::rejection::Outcome::Validation,
                "json",
                "the request body must be a JSON object",
            ));
        };
        let op = match route.kind {
            RouteKind::Create => OpKind::Create,
            RouteKind::Update => OpKind::Update,
            _ => {
                return Err(Rejection::new(
                    crate::rejection::Outcome::Validation,
                    "route",
                    format!("a {} route takes no body to translate", route.kind.as_str()),
                ));
            }
        };
        // The shared rules read the route's `members` object; rules for this route the root.
        let scope = match &route.members {
            Some(m) => members_of(body, m)?,
            None => body,
        };
        let Node::Obj(members) = scope else {
            return Err(Rejection::new(
                crate::rejection::Outcome::Validation,
                "json",
                "the request body must be a JSON object",
            ));
        };
        let node_of = |rule: &Rule| if rule.routes.is_some() { body } else { scope };
        let mut notes = Vec::new();
        self.unknown_members(&self.known, members, &mut Vec::new(), &mut notes)?;
        let ctx = Ctx {
            op,
            params,
            query: "",
            headers,
        };
        let mut out = Out::default();
        for &i in &route.rules {
            let Some(rule) = self.rules.get(i) else {
                continue;
            };
            let node = node_of(rule);
            if rule.read_only {
                if fetch(rule, node, &ctx).is_some() {
                    notes.push(Note::ReadOnlyDropped(rule.name.to_string()));
                }
                continue;
            }
            if !rule.required_with.is_empty()
                && !present(rule, node, &ctx)
                && let Some(j) = rule
                    .required_with
                    .iter()
                    .copied()
                    .find(|&j| present(&self.rules[j], node_of(&self.rules[j]), &ctx))
            {
                return Err(required_with(&rule.name, &self.rules[j].name));
            }
            if let Some(join) = &rule.join {
                apply_join(i, rule, join, node, &ctx, &mut out)?;
                continue;
            }
            let ev = eval(rule, fetch(rule, node, &ctx), &ctx)?;
            write(i, rule, ev, &ctx, &mut out)?;
        }
        self.finish(route, out, notes)
    }

    /// The compiled route `route`, or the 400 for an index no route has.
    fn route_plan(&self, route: usize) -> Result<&Route, Rejection> {
        self.routes.get(route).ok_or_else(|| {
            Rejection::new(
                crate::rejection::Outcome::Validation,
                "route",
                "no such route",
            )
        })
    }

    /// What a route without a body (delete, get, list) names, from its path parameters, its
    /// query string (`a=1&b=2`, no `?`) and headers: the rules reading those that identify the
    /// user, then the list's search. A 400 naming the parameter when one is not acceptable.
    pub fn lookup(
        &self,
        route: usize,
        params: &Params,
        query: &str,
        headers: &http::HeaderMap,
    ) -> Result<Lookup, Rejection> {
        let route = self.route_plan(route)?;
        let ctx = Ctx {
            op: OpKind::Update,
            params,
            query,
            headers,
        };
        let mut out = Out::default();
        if !route.target.is_empty() {
            for &i in &route.rules {
                let Some(rule) = self.rules.get(i) else {
                    continue;
                };
                let from_request = matches!(
                    rule.source,
                    Source::Param(_) | Source::Query(_) | Source::Header(_)
                );
                if !from_request || rule.identifies.is_none() {
                    continue;
                }
                let ev = eval(rule, fetch(rule, &Node::Null, &ctx), &ctx)?;
                write(i, rule, ev, &ctx, &mut out)?;
            }
            target_present(route, &out.target)?;
        }
        let mut lookup = Lookup {
            target: (!route.target.is_empty()).then(|| UserDoc(std::mem::take(&mut out.target))),
            ..Lookup::default()
        };
        if let Some(search) = &route.search {
            lookup.text = search
                .source
                .as_deref()
                .and_then(|q| query_param(query, q))
                .filter(|t| !t.is_empty())
                .map(Cow::into_owned);
            let number = |name: &Option<Box<str>>| -> Result<Option<usize>, Rejection> {
                let Some(name) = name.as_deref() else {
                    return Ok(None);
                };
                match query_param(query, name) {
                    None => Ok(None),
                    Some(v) => v.parse::<usize>().map(Some).map_err(|_| {
                        Rejection::invalid(name, "type", format!("{name} must be a whole number"))
                    }),
                }
            };
            lookup.offset = number(&search.offset)?.unwrap_or(0);
            lookup.limit = number(&search.limit)?;
        }
        Ok(lookup)
    }

    fn finish(&self, route: &Route, out: Out, notes: Vec<Note>) -> Result<Translation, Rejection> {
        let op = route.kind.write().unwrap_or(OpKind::Update);
        target_present(route, &out.target)?;
        let groups = match out.groups_values {
            Some(mut values) => {
                // A reference naming no group (the Commvault SDK's `[{}]`) names nothing.
                values.retain(|g| g.value.is_some() || g.display.is_some());
                let verb = out
                    .groups_op
                    .as_ref()
                    .and_then(Value::as_str)
                    .unwrap_or("add");
                match verb {
                    "none" => None,
                    v => {
                        let op = GroupOp::parse(v).ok_or_else(|| {
                            Rejection::new(
                                crate::rejection::Outcome::Validation,
                                "groups",
                                format!("`{v}` is not a group operation"),
                            )
                        })?;
                        Some(GroupChange { op, values })
                    }
                }
            }
            _ => None,
        };
        let preconditions = if op == OpKind::Update {
            self.preconditions
                .iter()
                .map(|p| Precondition {
                    attribute: p.attribute.clone(),
                    equals: p.equals_rule.and_then(|j| {
                        out.kept
                            .iter()
                            .find(|(i, _)| *i == j)
                            .map(|(_, v)| v.clone())
                    }),
                    field: p.equals_rule.map(|j| self.rules[j].name.clone()),
                    message: p.message.clone(),
                })
                .filter(|p| p.field.is_none() || p.equals.is_some())
                .collect()
        } else {
            Vec::new()
        };
        Ok(Translation {
            op: Operation {
                operation: op,
                dialect: self.dialect.clone(),
                target: (op == OpKind::Update).then_some(UserDoc(out.target)),
                user: UserDoc(out.user),
                groups,
                caller_password: out.caller_password,
                preconditions,
                pending: out.pending,
            },
            notes,
        })
    }

    /// Walks the body against the members the rules know. The dotted name of an unknown
    /// member is built only when one is found.
    fn unknown_members<'n>(
        &self,
        known: &Known,
        members: &'n [(std::borrow::Cow<'_, str>, Node<'_>)],
        path: &mut Vec<&'n str>,
        notes: &mut Vec<Note>,
    ) -> Result<(), Rejection> {
        if known.open {
            return Ok(());
        }
        for (k, v) in members {
            match known.get(k) {
                Some(sub) => {
                    if let Node::Obj(inner) = v
                        && !sub.members.is_empty()
                    {
                        path.push(k);
                        self.unknown_members(sub, inner, path, notes)?;
                        path.pop();
                    }
                }
                None => {
                    let mut name = path.join(".");
                    if !name.is_empty() {
                        name.push('.');
                    }
                    name.push_str(k);
                    if self.unknown == UnknownPolicy::Reject {
                        return Err(Rejection::invalid(
                            &name,
                            "unknown_member",
                            format!("{name} is not a known member"),
                        ));
                    }
                    notes.push(Note::UnknownMember(name));
                }
            }
        }
        Ok(())
    }
}

/// The object a route's `members` path names: an object, or for `$.path[0]` an array of
/// exactly one object.
pub(super) fn members_of<'b>(body: &'b Node<'b>, m: &Members) -> Result<&'b Node<'b>, Rejection> {
    let name = &*m.name;
    let mut v = body;
    for k in &m.keys {
        v = v
            .get(k)
            .ok_or_else(|| Rejection::invalid(name, "required", format!("{name} is required")))?;
    }
    match v {
        Node::Obj(_) if !m.array => Ok(v),
        Node::Arr(items) if m.array && items.len() == 1 && matches!(items[0], Node::Obj(_)) => {
            Ok(&items[0])
        }
        Node::Arr(items) if m.array && items.len() > 1 => Err(Rejection::invalid(
            name,
            "members",
            format!("{name} must hold exactly one item: send one request per user"),
        )),
        _ if m.array => Err(Rejection::invalid(
            name,
            "type",
            format!("{name} must be an array of one object"),
        )),
        _ => Err(Rejection::invalid(
            name,
            "type",
            format!("{name} must be an object"),
        )),
    }
}

/// Every attribute the route's target needs was given (else a 400 naming its rule).
fn target_present(route: &Route, target: &Map<String, Value>) -> Result<(), Rejection> {
    for (loc, name) in &route.target_locs {
        if get(target, loc).is_none() {
            return Err(Rejection::invalid(
                name,
                "required",
                format!("{name} is required"),
            ));
        }
    }
    Ok(())
}

/// The value of query parameter `name` (matched case-insensitively: `Level` is `level`),
/// percent-decoded with `+` as a space; the first one when repeated.
pub(crate) fn query_param<'q>(query: &'q str, name: &str) -> Option<Cow<'q, str>> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if !decode_component(k).eq_ignore_ascii_case(name) {
            return None;
        }
        Some(decode_component(v))
    })
}

fn decode_component(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let spaced = s.replace('+', " ");
    Cow::Owned(
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

fn group_ref(item: Value) -> GroupRef {
    let mut g = GroupRef {
        value: None,
        display: None,
    };
    let Value::Object(m) = item else { return g };
    for (k, v) in m {
        let text = match v {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            _ => continue,
        };
        match k.as_str() {
            "value" => g.value = Some(text),
            "display" => g.display = Some(text),
            _ => {}
        }
    }
    g
}

pub(super) fn fetch<'b>(
    rule: &'b Rule,
    body: &'b Node<'b>,
    ctx: &Ctx<'b>,
) -> Option<Cow<'b, Node<'b>>> {
    match &rule.source {
        Source::Body(p) => p.get_node(body),
        Source::Param(name) => ctx
            .params
            .iter()
            .find(|(n, _)| **n == **name)
            .map(|(_, v)| Cow::Owned(Node::Str(Cow::Borrowed(v.as_str())))),
        Source::Query(name) => query_param(ctx.query, name).map(|v| Cow::Owned(Node::Str(v))),
        Source::Header(h) => ctx
            .headers
            .get(h)
            .and_then(|v| v.to_str().ok())
            .map(|s| Cow::Owned(Node::Str(Cow::Borrowed(s)))),
        Source::Const(v) => Some(Cow::Borrowed(v)),
        Source::None => None,
    }
}

fn present<'b>(rule: &'b Rule, body: &'b Node<'b>, ctx: &Ctx<'b>) -> bool {
    fetch(rule, body, ctx).is_some_and(|v| !v.is_null())
}

fn required_with(name: &str, other: &str) -> Rejection {
    Rejection::invalid(
        name,
        "required_with",
        format!("{name} is required when {other} is given"),
    )
}

pub(super) fn eval<'b>(
    rule: &'b Rule,
    raw: Option<Cow<'b, Node<'b>>>,
    ctx: &Ctx<'b>,
) -> Result<Eval, Rejection> {
    let name = &*rule.name;
    let node = match raw {
        Some(v) => v,
        None => match &rule.default_node {
            Some(d)
                if rule
                    .default_on
                    .as_ref()
                    .is_none_or(|ops| ops.contains(&ctx.op)) =>
            {
                Cow::Borrowed(d)
            }
            _ if rule.required => {
                return Err(Rejection::invalid(
                    name,
                    "required",
                    format!("{name} is required"),
                ));
            }
            _ => return Ok(Eval::Absent),
        },
    };
    let node: &Node<'_> = &node;
    if node.is_null() {
        if rule.null_is_absent {
            return Ok(Eval::Absent);
        }
        if !rule.nullable {
            return Err(Rejection::invalid(
                name,
                "nullable",
                format!("{name} must not be null"),
            ));
        }
        return Ok(Eval::Null);
    }
    if rule.empty_is_null && node.as_str() == Some("") {
        return Ok(Eval::Null);
    }
    type_check(rule, node)?;
    structure_checks(rule, node)?;
    if let (Some(items), Node::Arr(list), true) = (&rule.items, node, rule.group_items) {
        let mut out = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            out.push(group_item(items, item, ctx).map_err(|e| index(e, name, i))?);
        }
        return Ok(Eval::Groups(out));
    }
    if let (Some(items), Node::Arr(list)) = (&rule.items, node) {
        let mut out = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            match eval(items, Some(Cow::Borrowed(item)), ctx) {
                Ok(Eval::Value(x)) => out.push(x),
                Ok(_) => {
                    let e = Rejection::invalid(
                        &items.name,
                        "nullable",
                        format!("{} must not be null", items.name),
                    );
                    return Err(index(e, name, i));
                }
                Err(e) => return Err(index(e, name, i)),
            }
        }
        return Ok(Eval::Value(Value::Array(out)));
    }
    if let (false, Node::Obj(_)) = (rule.fields.is_empty(), node) {
        let mut m = Map::with_capacity(rule.fields.len());
        members(rule, node, ctx, |member, v| {
            m.insert(member.into(), v);
        })?;
        return Ok(Eval::Value(Value::Object(m)));
    }
    let mut v = node.to_value();
    for t in &rule.transforms {
        v = t
            .apply(v)
            .map_err(|tail| Rejection::invalid(name, "transform", format!("{name} {tail}")))?;
    }
    checks(rule, &v, ctx)?;
    Ok(Eval::Value(v))
}

/// Evaluates an object rule's member rules over `node`, handing each member that is set (or
/// `null`) to `put`.
fn members<'b>(
    rule: &'b Rule,
    node: &'b Node<'b>,
    ctx: &Ctx<'b>,
    mut put: impl FnMut(&str, Value),
) -> Result<(), Rejection> {
    for f in &rule.fields {
        let raw = match &f.source {
            Source::Body(p) => p.get_node(node),
            _ => fetch(f, node, ctx),
        };
        let Some(Dest::Member(member)) = f.dests.first() else {
            continue;
        };
        match eval(f, raw, ctx)? {
            Eval::Absent | Eval::Groups(_) => {}
            Eval::Null => put(member, Value::Null),
            Eval::Value(x) => put(member, x),
        }
    }
    Ok(())
}

/// One item of a `groups.values` array, as a group reference. An object item with member rules
/// is read member by member; anything else goes through the general path.
fn group_item<'b>(
    items: &'b Rule,
    item: &'b Node<'b>,
    ctx: &Ctx<'b>,
) -> Result<GroupRef, Rejection> {
    if items.fields.is_empty() || !matches!(item, Node::Obj(_)) {
        return match eval(items, Some(Cow::Borrowed(item)), ctx)? {
            Eval::Value(v) => Ok(group_ref(v)),
            _ => Err(Rejection::invalid(
                &items.name,
                "nullable",
                format!("{} must not be null", items.name),
            )),
        };
    }
    type_check(items, item)?;
    structure_checks(items, item)?;
    let mut g = GroupRef {
        value: None,
        display: None,
    };
    members(items, item, ctx, |member, v| {
        let text = match v {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            _ => return,
        };
        match member {
            "value" => g.value = Some(text),
            "display" => g.display = Some(text),
            _ => {}
        }
    })?;
    Ok(g)
}

/// Puts the item index into a nested rule's error: `userGroups[].id` → `userGroups[1].id`.
fn index(mut e: Rejection, parent: &str, i: usize) -> Rejection {
    let from = format!("{parent}[]");
    let to = format!("{parent}[{i}]");
    e.message = e.message.replacen(&from, &to, 1);
    e.field = e.field.map(|f| f.replacen(&from, &to, 1));
    e
}

fn type_check(rule: &Rule, v: &Node<'_>) -> Result<(), Rejection> {
    let t = rule.types;
    if t == 0 {
        return Ok(());
    }
    let ok = match v {
        Node::Str(_) => t & T_STRING != 0,
        Node::Bool(_) => t & T_BOOL != 0,
        Node::Num(n) => {
            (t & T_NUMBER != 0)
                || (t & T_INTEGER != 0 && (n.is_i64() || n.is_u64()))
                || (t & T_INT32 != 0 && n.as_i64().is_some_and(|x| i32::try_from(x).is_ok()))
        }
        Node::Obj(_) => t & T_OBJECT != 0,
        Node::Arr(_) => t & T_ARRAY != 0,
        Node::Null => true,
    };
    if ok {
        return Ok(());
    }
    let mut kinds = Vec::new();
    for (bit, word) in [
        (T_STRING, "a string"),
        (T_BOOL, "a boolean"),
        (T_INTEGER, "an integer"),
        (T_INT32, "a 32-bit integer"),
        (T_NUMBER, "a number"),
        (T_OBJECT, "an object"),
        (T_ARRAY, "an array"),
    ] {
        if t & bit != 0 {
            kinds.push(word);
        }
    }
    let name = &rule.name;
    Err(Rejection::invalid(
        name,
        "type",
        format!("{name} must be {}", kinds.join(" or ")),
    ))
}

/// A failed check of `rule`: the rule's own `message` (with `{name}`) when it has one, else `msg`.
fn check_failed(rule: &Rule, check: &'static str, msg: String) -> Rejection {
    let name = &*rule.name;
    let msg = match rule.checks.message.as_deref() {
        Some(m) => m.replace("{name}", name),
        None => msg,
    };
    Rejection::invalid(name, check, msg)
}

fn checks(rule: &Rule, v: &Value, ctx: &Ctx<'_>) -> Result<(), Rejection> {
    let c = &rule.checks;
    let name = &*rule.name;
    let fail = |check: &'static str, msg: String| Err(check_failed(rule, check, msg));
    match v {
        Value::String(s) => {
            if c.min_length.is_some() || c.max_length.is_some() {
                let n = s.chars().count();
                if let Some(min) = c.min_length.filter(|m| n < *m) {
                    return fail(
                        "min_length",
                        format!("{name} must be at least {min} character{}", plural(min)),
                    );
                }
                if let Some(max) = c.max_length.filter(|m| n > *m) {
                    return fail(
                        "max_length",
                        format!("{name} must be at most {max} character{}", plural(max)),
                    );
                }
            }
            if let Some((_, bad)) = c.must_not_contain.iter().find(|(x, _)| {
                if c.ignore_case {
                    contains_ignore_case(s, x)
                } else {
                    s.contains(&**x)
                }
            }) {
                return fail(
                    "must_not_contain",
                    format!("{name} must not contain '{bad}'"),
                );
            }
            if let Some(re) = &c.pattern
                && !re.is_match(s)
            {
                return fail("pattern", format!("{name} must match {}", re.as_str()));
            }
            match c.format {
                Some(Format::Email) if !is_email(s) => {
                    return fail("format", format!("{name} must be an email address"));
                }
                Some(Format::IanaTimezone) if s.parse::<chrono_tz::Tz>().is_err() => {
                    return fail(
                        "format",
                        format!("{name} must be an IANA time-zone name such as America/New_York"),
                    );
                }
                _ => {}
            }
            if let Some(p) = &c.equals_param {
                let param = ctx
                    .params
                    .iter()
                    .find(|(n, _)| **n == **p)
                    .map(|(_, v)| v.as_str());
                if param != Some(s.as_str()) {
                    return fail(
                        "equals_param",
                        format!("{name} must equal the {p} of the path"),
                    );
                }
            }
        }
        Value::Number(n) => {
            if let (Some(min), Some(x)) = (c.min, n.as_f64())
                && x < min as f64
            {
                return fail("min", format!("{name} must be at least {min}"));
            }
            if let (Some(max), Some(x)) = (c.max, n.as_f64())
                && x > max as f64
            {
                return fail("max", format!("{name} must be at most {max}"));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Checks on the shape of arrays and objects, on the parsed body before anything is copied.
fn structure_checks(rule: &Rule, node: &Node<'_>) -> Result<(), Rejection> {
    let c = &rule.checks;
    let name = &*rule.name;
    let fail = |check: &'static str, msg: String| Err(check_failed(rule, check, msg));
    match node {
        Node::Arr(items) => {
            if let Some(by) = &c.unique_by {
                let keys: Vec<&Node<'_>> = items.iter().filter_map(|i| i.get(by)).collect();
                if keys.iter().enumerate().any(|(i, k)| keys[..i].contains(k)) {
                    return fail(
                        "unique_by",
                        format!("{name} has two items with the same {by}"),
                    );
                }
            }
        }
        Node::Obj(_)
            if !c.require_any_of.is_empty()
                && !c
                    .require_any_of
                    .iter()
                    .any(|k| node.get(k).is_some_and(|v| !v.is_null())) =>
        {
            let list = c
                .require_any_of
                .iter()
                .map(|k| &**k)
                .collect::<Vec<_>>()
                .join(" or ");
            return fail("require_any_of", format!("{name} needs {list}"));
        }
        _ => {}
    }
    Ok(())
}

/// `hay` contains `needle` (already lowercase), ignoring case; no allocation for ASCII needles.
fn contains_ignore_case(hay: &str, needle: &str) -> bool {
    if !needle.is_ascii() {
        return hay.to_lowercase().contains(needle);
    }
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// One `@`, text on both sides, no whitespace.
fn is_email(s: &str) -> bool {
    let mut it = s.split('@');
    matches!((it.next(), it.next(), it.next()), (Some(l), Some(d), None) if !l.is_empty() && !d.is_empty())
        && !s.chars().any(char::is_whitespace)
}

fn write(i: usize, rule: &Rule, ev: Eval, ctx: &Ctx<'_>, out: &mut Out) -> Result<(), Rejection> {
    let v = match ev {
        Eval::Absent => return Ok(()),
        // A create carries the whole new user: `null` there means unset, not "clear".
        Eval::Null if ctx.op == OpKind::Create => return Ok(()),
        Eval::Null => {
            if rule.identifies.is_some() && ctx.op == OpKind::Update {
                return Err(Rejection::invalid(
                    &rule.name,
                    "nullable",
                    format!("{} must not be null", rule.name),
                ));
            }
            Value::Null
        }
        Eval::Value(v) => v,
        Eval::Groups(values) => {
            out.groups_values = Some(values);
            return Ok(());
        }
    };
    if rule.keep {
        out.kept.push((i, v.clone()));
    }
    if let (Some(loc), OpKind::Update) = (&rule.identifies, ctx.op) {
        set(&mut out.target, loc, v.clone());
    }
    // Each destination but the last gets a copy; the last takes the value.
    let mut v = Some(v);
    let last = rule.dests.len().saturating_sub(1);
    for (n, d) in rule.dests.iter().enumerate() {
        let Some(value) = (if n == last { v.take() } else { v.clone() }) else {
            break;
        };
        match d {
            Dest::Attr(loc, _) => set(&mut out.user, loc, value),
            Dest::GroupsOp => out.groups_op = Some(value),
            Dest::GroupsValues => {
                out.groups_values = match value {
                    Value::Array(items) => Some(items.into_iter().map(group_ref).collect()),
                    _ => None,
                }
            }
            Dest::CallerPassword => out.caller_password = value.as_str().map(Secret::new),
            Dest::Member(_) => {}
        }
    }
    Ok(())
}

pub(super) fn apply_join(
    i: usize,
    rule: &Rule,
    join: &Arc<Join>,
    body: &Node<'_>,
    ctx: &Ctx<'_>,
    out: &mut Out,
) -> Result<(), Rejection> {
    let mut evals = Vec::with_capacity(join.parts.len());
    for (_, part) in &join.parts {
        evals.push(eval(part, fetch(part, body, ctx), ctx)?);
    }
    if evals.iter().all(|e| matches!(e, Eval::Absent)) {
        return Ok(());
    }
    let clears = join
        .parts
        .iter()
        .zip(&evals)
        .any(|((_, p), e)| p.null_clears_join && matches!(e, Eval::Null));
    let attr = rule.dests.iter().find_map(|d| match d {
        Dest::Attr(_, def) => Some(def.name),
        _ => None,
    });
    let value = if ctx.op == OpKind::Update && clears {
        Value::Null
    } else if ctx.op == OpKind::Update && evals.iter().any(|e| matches!(e, Eval::Absent)) {
        // Sent in part: completed from the stored value once the target is known.
        let mut parts = Map::new();
        for ((_, p), e) in join.parts.iter().zip(evals) {
            match e {
                Eval::Absent | Eval::Groups(_) => {}
                Eval::Null => {
                    parts.insert(p.name.to_string(), Value::Null);
                }
                Eval::Value(v) => {
                    parts.insert(p.name.to_string(), v);
                }
            }
        }
        out.pending.push(PendingJoin {
            plan: Arc::clone(join) as Arc<dyn Completion>,
            attribute: attr.unwrap_or_default().into(),
            parts,
        });
        return Ok(());
    } else {
        let parts = evals
            .into_iter()
            .map(|e| match e {
                Eval::Value(Value::String(s)) => Some(s),
                Eval::Value(other) => Some(other.to_string()),
                _ => None,
            })
            .collect();
        finish_join(join, parts)?
    };
    if ctx.op == OpKind::Create && value.is_null() {
        return Ok(());
    }
    write(i, rule, Eval::Value(value), ctx, out)
}

/// A join sent in part, completed from the stored value: the stored value split into its parts,
/// the parts sent laid over them, the unit rules checked over the result.
impl Completion for Join {
    fn complete(
        &self,
        stored: &UserDoc,
        sent: &Map<String, Value>,
        user: &mut UserDoc,
    ) -> Result<(), Rejection> {
        let stored_value = self
            .locs
            .first()
            .and_then(|loc| get(stored.exposed(), loc))
            .and_then(Value::as_str);
        let mut parts = split(self, stored_value);
        for (slot, (_, part)) in parts.iter_mut().zip(&self.parts) {
            if let Some(v) = sent.get(&*part.name) {
                *slot = v.as_str().map(str::to_owned);
            }
        }
        let v = finish_join(self, parts)?;
        for loc in &self.locs {
            set(&mut user.0, loc, v.clone());
        }
        Ok(())
    }
}

/// Checks the unit rules of a join over its final parts and builds the value (`null` when no
/// part is left).
fn finish_join(join: &Join, parts: Vec<Option<String>>) -> Result<Value, Rejection> {
    for (j, (_, part)) in join.parts.iter().enumerate() {
        if parts[j].is_none()
            && let Some(k) = part
                .required_with
                .iter()
                .copied()
                .find(|&k| parts.get(k).is_some_and(Option::is_some))
        {
            return Err(required_with(&part.name, &join.parts[k].1.name));
        }
    }
    if parts.iter().all(Option::is_none) {
        return Ok(Value::Null);
    }
    if let Some((idx, max)) = &join.total {
        let n: usize = idx
            .iter()
            .filter_map(|&k| parts[k].as_deref())
            .map(|s| s.chars().count())
            .sum();
        if n > *max {
            let names = idx
                .iter()
                .map(|&k| &*join.parts[k].1.name)
                .collect::<Vec<_>>()
                .join(" and ");
            let first = idx.first().map_or("value", |&k| &*join.parts[k].1.name);
            return Err(Rejection::invalid(
                first,
                "max_total_length",
                format!("{names} together must be at most {max} characters"),
            ));
        }
    }
    let mut s = String::new();
    render_pieces(&join.pieces, &parts, &mut s);
    Ok(Value::String(s))
}

fn render_pieces(pieces: &[JoinPiece], parts: &[Option<String>], s: &mut String) {
    for p in pieces {
        match p {
            JoinPiece::Text(t) => s.push_str(t),
            JoinPiece::Part(i) => s.push_str(parts[*i].as_deref().unwrap_or_default()),
            JoinPiece::Optional(inner) => {
                if all_parts_present(inner, parts) {
                    render_pieces(inner, parts, s);
                }
            }
        }
    }
}

fn all_parts_present(pieces: &[JoinPiece], parts: &[Option<String>]) -> bool {
    pieces.iter().all(|p| match p {
        JoinPiece::Text(_) => true,
        JoinPiece::Part(i) => parts[*i].is_some(),
        JoinPiece::Optional(_) => true,
    })
}

/// Splits a stored joined value back into its parts (all `None` when it does not match).
pub(super) fn split(join: &Join, value: Option<&str>) -> Vec<Option<String>> {
    let caps = value.and_then(|v| join.split.captures(v));
    join.parts
        .iter()
        .map(|(key, _)| {
            caps.as_ref()
                .and_then(|c| c.name(key))
                .map(|m| m.as_str().to_owned())
        })
        .collect()
}
