//! Spec → plan. Every JSONPath, regex, transform, template and canonical destination is
//! resolved here, once; each mistake becomes a [`Diagnostic`] at its place in the file, and
//! all of them are kept so that `check` can print every one.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use toml::Spanned;

use super::spec::{BodySpec, FieldSpec, MappingSpec};
use super::*;
use crate::canonical::{attribute, location};
use crate::diagnostic::Diagnostic;

/// Collects diagnostics for one file.
pub(super) struct Compiler<'a> {
    pub file: &'a Path,
    pub src: &'a str,
    pub diags: Vec<Diagnostic>,
    /// Compiling a view's rules: `value` with `source` renders a constant.
    pub in_view: bool,
}

impl Compiler<'_> {
    pub fn err(&mut self, span: Range<usize>, msg: impl Into<String>) {
        self.diags
            .push(Diagnostic::at(self.file, self.src, Some(span), msg));
    }

    /// Compiles a whole spec. `spans` are the places of the `[[fields]]`, `[[routes]]` and
    /// `[[preconditions]]` tables and of the `success`/`errors` sections.
    pub fn mapping(
        &mut self,
        spec: MappingSpec,
        spans: &Spans,
        vars_override: &BTreeMap<String, String>,
    ) -> Option<Mapping> {
        let mut vars = spec.vars.clone();
        vars.extend(vars_override.iter().map(|(k, v)| (k.clone(), v.clone())));

        let headers: Vec<_> = spec
            .auth
            .headers
            .iter()
            .map(|h| (h.name.as_str(), h.scheme.as_deref(), h.scheme_optional))
            .collect();
        let auth = match AuthPlan::new(&headers, spec.auth.challenge.as_deref()) {
            Ok(a) => Some(a),
            Err(e) => {
                self.err(spans.auth.clone(), e);
                None
            }
        };

        let mut rules = Vec::new();
        let mut places = Vec::new();
        for (i, f) in spec.fields.iter().enumerate() {
            let at = spans.fields.get(i).cloned().unwrap_or_default();
            let line = self.src[..at.start.min(self.src.len())]
                .matches('\n')
                .count()
                + 1;
            if let Some(r) = self.rule(f, at, None) {
                rules.push(r);
                places.push(RulePlace {
                    line: u32::try_from(line).unwrap_or(u32::MAX),
                    written: written(f),
                    parts: f.parts.values().map(written).collect(),
                });
            }
        }
        let names: Vec<Box<str>> = rules.iter().map(|r| r.name.clone()).collect();
        // Cross-references by member name, resolved once.
        for (i, f) in spec.fields.iter().enumerate() {
            let at = spans.fields.get(i).cloned().unwrap_or_default();
            if let Some(rule) = rules.get_mut(i) {
                for w in &f.required_with {
                    match names.iter().position(|n| **n == **w) {
                        Some(j) => rule.required_with.push(j),
                        None => self.diags.push(Diagnostic::at(
                            self.file,
                            self.src,
                            Some(at.clone()),
                            format!("`required_with` names `{w}`, which no field rule is called"),
                        )),
                    }
                }
            }
        }

        let mut views = Vec::new();
        for (name, v) in &spec.views {
            self.in_view = true;
            let at = spans.views.get(name).cloned().unwrap_or_default();
            let vrules = v
                .fields
                .iter()
                .filter_map(|f| self.rule(f, at.clone(), None))
                .collect();
            self.in_view = false;
            views.push(View {
                name: name.as_str().into(),
                rules: vrules,
                include_unset: v.include_unset,
            });
        }

        let mut routes = Vec::new();
        let mut param_names = Vec::new();
        for (i, r) in spec.routes.iter().enumerate() {
            let at = spans.routes.get(i).cloned().unwrap_or_default();
            let method = match http::Method::from_bytes(r.method.get_ref().as_bytes()) {
                Ok(m) => m,
                Err(_) => {
                    self.err(
                        r.method.span(),
                        format!("`{}` is not an HTTP method", r.method.get_ref()),
                    );
                    continue;
                }
            };
            let mut paths = Vec::new();
            for p in &r.paths {
                match PathTemplate::compile(p.get_ref(), &vars) {
                    Ok(t) => {
                        param_names.extend(t.params().map(str::to_owned));
                        paths.push(t)
                    }
                    Err(e) => self.err(p.span(), e),
                }
            }
            if r.paths.is_empty() {
                self.err(at.clone(), "a route needs at least one path");
            }
            let mut target: Vec<Box<str>> = Vec::new();
            for t in &r.target {
                if !matches!(
                    t.get_ref().as_str(),
                    "id" | "userName" | "ext.authenticator" | "ext.numericId"
                ) {
                    self.err(t.span(), format!("`{}` cannot identify a user; use id, userName, ext.authenticator or ext.numericId", t.get_ref()));
                } else if !rules
                    .iter()
                    .any(|rule| rule.identifies.as_ref() == Some(&location(t.get_ref())))
                {
                    self.err(
                        t.span(),
                        format!(
                            "no field rule `identifies` the target attribute `{}`",
                            t.get_ref()
                        ),
                    );
                }
                target.push(t.get_ref().as_str().into());
            }
            let kind = r.operation;
            if matches!(kind, RouteKind::Update | RouteKind::Delete | RouteKind::Get)
                && r.target.is_empty()
            {
                self.err(
                    at.clone(),
                    format!(
                        "a {} route must say which attributes identify its `target`",
                        kind.as_str()
                    ),
                );
            }
            if !kind.takes_body() {
                // Without a body, the target comes from the path, the query or a header.
                for t in &r.target {
                    let loc = location(t.get_ref());
                    let from_request = rules.iter().any(|rule| {
                        rule.identifies.as_ref() == Some(&loc)
                            && matches!(
                                rule.source,
                                Source::Param(_) | Source::Query(_) | Source::Header(_)
                            )
                    });
                    if !from_request {
                        self.err(
                            t.span(),
                            format!(
                                "a {} route has no body: `{}` must be identified by a rule reading `param:`, `query:` or `header:`",
                                kind.as_str(),
                                t.get_ref()
                            ),
                        );
                    }
                }
            }
            if r.search.is_some() && kind != RouteKind::List {
                self.err(at.clone(), "only a list route has a `search`");
            }
            let search = r.search.as_ref().map(|sp| self.search(sp));
            let view = r.view.as_ref().and_then(|v| {
                match views.iter().position(|x| *x.name == **v.get_ref()) {
                    Some(i) => Some(i),
                    None => {
                        self.err(
                            v.span(),
                            format!("no view `{}` under `[views]`", v.get_ref()),
                        );
                        None
                    }
                }
            });
            let answer = r.answer.as_ref().map(|a| self.success(a, at.clone()));
            let members = r.members.as_ref().and_then(|m| {
                let text = m.get_ref();
                let (path, array) = match text.strip_suffix("[0]") {
                    Some(p) => (p, true),
                    None => (text.as_str(), false),
                };
                match JsonPathPlan::compile(path) {
                    Ok(JsonPathPlan::Keys(keys)) => Some(Members {
                        keys,
                        name: path.trim_start_matches("$.").into(),
                        array,
                    }),
                    _ => {
                        self.err(
                            m.span(),
                            format!(
                                "`members` must be a plain member path (`$.updates`), or one ending in `[0]` for an array of one object (`$.users[0]`), not `{text}`"
                            ),
                        );
                        None
                    }
                }
            });
            if members.is_some() && !kind.takes_body() {
                self.err(
                    at.clone(),
                    "only a create or update route reads `members` from a body",
                );
            }
            if kind == RouteKind::List
                && !answer
                    .as_ref()
                    .is_some_and(|a| matches!(a.body, SuccessBody::Template(_)))
            {
                self.err(
                    at.clone(),
                    "a list route needs its own `answer` with a `template` body holding `{users}`",
                );
            }
            let name = r.name.clone().unwrap_or_else(|| {
                format!(
                    "{} {}",
                    method,
                    r.paths.first().map_or("", |p| p.get_ref().as_str())
                )
            });
            // Where each target attribute lives, and the rule that fills it (for messages).
            let target_locs = target
                .iter()
                .map(|t| {
                    let loc = location(t);
                    let rule = rules
                        .iter()
                        .find(|r| r.identifies.as_ref() == Some(&loc))
                        .map_or(t.clone(), |r| r.name.clone());
                    (loc, rule)
                })
                .collect();
            let roles = r
                .roles
                .as_ref()
                .or_else(|| spec.auth.roles.get(&kind))
                .map(|v| v.iter().map(|s| s.as_str().into()).collect())
                .unwrap_or_default();
            routes.push(Route {
                name: name.into(),
                method,
                paths,
                kind,
                target,
                target_locs,
                roles,
                answer,
                view,
                search,
                members,
                rules: Vec::new(),
            });
        }
        // Rules for some routes only: the routes by name.
        for (i, f) in spec.fields.iter().enumerate() {
            let Some(names) = &f.routes else { continue };
            let at = spans.fields.get(i).cloned().unwrap_or_default();
            let mut idx = Vec::new();
            for n in names {
                match routes.iter().position(|r: &Route| *r.name == **n) {
                    Some(j) => idx.push(j),
                    None => self.err(
                        at.clone(),
                        format!("`routes` names `{n}`, which no route is called"),
                    ),
                }
            }
            if let Some(rule) = rules.get_mut(i) {
                rule.routes = Some(idx);
            }
        }
        // Path parameters named by rules must exist in some route.
        for (i, f) in spec.fields.iter().enumerate() {
            if let Some(src) = &f.source
                && let Some(p) = src.get_ref().strip_prefix("param:")
                && !param_names.iter().any(|n| n == p)
            {
                self.err(
                    src.span(),
                    format!("no route has a path parameter `{{{p}}}`"),
                );
            }
            if let Some(p) = &f.equals_param
                && !param_names.iter().any(|n| n == p)
            {
                let at = spans.fields.get(i).cloned().unwrap_or_default();
                self.err(
                    at,
                    format!("`equals_param` names `{p}`, which no route path has"),
                );
            }
        }

        let mut preconditions = Vec::new();
        for (i, p) in spec.preconditions.iter().enumerate() {
            let at = spans.preconditions.get(i).cloned().unwrap_or_default();
            if attribute(p.attribute.get_ref()).is_none() {
                self.err(
                    p.attribute.span(),
                    format!("`{}` is not a canonical attribute", p.attribute.get_ref()),
                );
                continue;
            }
            let equals_rule = match &p.equals_field {
                Some(f) => match names.iter().position(|n| **n == **f) {
                    Some(j) => {
                        if let Some(r) = rules.get_mut(j) {
                            r.keep = true;
                        }
                        Some(j)
                    }
                    None => {
                        self.err(
                            at.clone(),
                            format!("`equals_field` names `{f}`, which no field rule is called"),
                        );
                        continue;
                    }
                },
                None if p.absent => None,
                None => {
                    self.err(
                        at.clone(),
                        "a precondition needs `equals_field` or `absent = true`",
                    );
                    continue;
                }
            };
            let message = p.message.clone().unwrap_or_else(|| match &p.equals_field {
                Some(f) => format!("{f} must be the user's current {}", p.attribute.get_ref()),
                None => format!("the user's {} must be unset", p.attribute.get_ref()),
            });
            preconditions.push(Pre {
                attribute: p.attribute.get_ref().as_str().into(),
                equals_rule,
                message: message.into(),
            });
        }

        let success = self.success(&spec.success, spans.success.clone());
        let errors = self.errors(&spec.errors, spans.errors.clone());

        // Each route's own rules, once.
        for (idx, route) in routes.iter_mut().enumerate() {
            let op = route.kind.write();
            let params: Vec<&str> = route.paths.iter().flat_map(PathTemplate::params).collect();
            route.rules = rules
                .iter()
                .enumerate()
                .filter(|(_, r)| r.on_route(idx) && op.is_none_or(|op| r.applies(op)))
                .filter(|(_, r)| match &r.source {
                    // A path parameter the route lacks is always absent: nothing to run.
                    Source::Param(p) => {
                        params.contains(&&**p) || r.required || r.default_node.is_some()
                    }
                    _ => true,
                })
                .map(|(i, _)| i)
                .collect();
        }

        let mut known = Known::default();
        for r in &rules {
            known_from(&mut known, r);
        }
        let caller_password_field = rules
            .iter()
            .find(|r| r.dests.iter().any(|d| matches!(d, Dest::CallerPassword)))
            .map(|r| r.name.clone());

        let tests = self.tests(spec.tests);
        let (auth, errors) = (auth?, errors?);
        if !self.diags.is_empty() {
            return None;
        }
        Some(Mapping {
            dialect: Arc::from(spec.dialect.get_ref().as_str()),
            title: spec.title.unwrap_or_else(|| spec.dialect.get_ref().clone()),
            file: self.file.to_owned(),
            routes,
            auth,
            unknown: spec.unknown_members,
            rules,
            known,
            preconditions,
            views,
            success,
            errors,
            caller_password_field,
            tests,
            places,
        })
    }

    /// The `[[tests]]` entries, each placed at its `name`; one that could never run (neither a
    /// request nor a user to render, two bodies, nothing expected) is refused here.
    fn tests(&mut self, specs: Vec<super::spec::TestSpec>) -> Vec<FileTest> {
        let mut out = Vec::with_capacity(specs.len());
        for t in specs {
            let at = t.name.span();
            match (&t.request, &t.render) {
                (None, None) => self.err(at.clone(), "a test needs a `request` or a `render`"),
                (Some(_), Some(_)) => {
                    self.err(at.clone(), "a test has a `request` or a `render`, not both")
                }
                (Some(r), None) => {
                    let bodies = [
                        r.body.is_some(),
                        r.raw_body.is_some(),
                        r.body_file.is_some(),
                    ];
                    if bodies.iter().filter(|b| **b).count() > 1 {
                        self.err(
                            at.clone(),
                            "a test's request has one of `body`, `raw_body`, `body_file`",
                        );
                    }
                }
                (None, Some(_)) => {}
            }
            let mut t = t;
            if let Some(text) = t.expect_json.take() {
                match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(m)) => t.expect.extend(m),
                    Ok(_) => self.err(at.clone(), "a test's `expect_json` must be a JSON object"),
                    Err(e) => self.err(
                        at.clone(),
                        format!("a test's `expect_json` is not JSON: {e}"),
                    ),
                }
            }
            if t.expect.is_empty() {
                self.err(
                    at.clone(),
                    "a test expects something: `[tests.expect]` is empty",
                );
            }
            out.push(FileTest {
                place: Diagnostic::at(self.file, self.src, Some(at), ""),
                spec: t,
            });
        }
        out
    }

    /// A success answer: `[success]`, or a route's `answer`.
    fn success(&mut self, spec: &super::spec::SuccessSpec, at: Range<usize>) -> Success {
        let body = match &spec.body {
            BodySpec::User => SuccessBody::User,
            BodySpec::Empty => SuccessBody::Empty,
            BodySpec::Json(v) => SuccessBody::Fixed(bytes::Bytes::from(v.to_string())),
            BodySpec::Template(v) => match Template::compile(v) {
                Ok(t) => {
                    self.success_placeholders(&t, &at);
                    SuccessBody::Template(t)
                }
                Err(e) => {
                    self.err(at.clone(), e);
                    SuccessBody::Empty
                }
            },
        };
        let renders_user = match &body {
            SuccessBody::User => true,
            SuccessBody::Template(t) => {
                let mut uses = false;
                t.each_var(&mut |v| {
                    uses |= matches!(v, crate::dialect::template::Var::Attr { .. })
                        || matches!(v, crate::dialect::template::Var::Named(n) if &**n == "user" || &**n == "users");
                });
                uses
            }
            SuccessBody::Empty | SuccessBody::Fixed(_) => false,
        };
        Success {
            status: self.status(spec.status, at),
            body,
            include_unset: spec.include_unset,
            renders_user,
        }
    }

    /// A success template may name the rendered user(s), the list's total, the request id and
    /// canonical attributes of the user, never a secret one.
    fn success_placeholders(&mut self, t: &Template, at: &Range<usize>) {
        let mut bad = Vec::new();
        t.each_var(&mut |v| match v {
            crate::dialect::template::Var::Named(n)
                if !SUCCESS_PLACEHOLDERS.contains(&&**n) =>
            {
                bad.push(format!(
                    "unknown placeholder `{n}`: a success template may use {}, `now` and `user.ATTR`",
                    SUCCESS_PLACEHOLDERS.join(", ")
                ))
            }
            crate::dialect::template::Var::Attr { target: true, .. } => {
                bad.push("a success template names the stored user as `user.ATTR`, not `target.ATTR`".into())
            }
            crate::dialect::template::Var::Attr { loc, .. } => {
                if let Some(a) = crate::canonical::ATTRIBUTES
                    .iter()
                    .find(|a| a.secret && location(a.name) == *loc)
                {
                    bad.push(format!("`user.{}` is a secret: it is never rendered", a.name));
                }
            }
            _ => {}
        });
        for m in bad {
            self.err(at.clone(), m);
        }
    }

    fn search(&mut self, sp: &super::spec::SearchSpec) -> SearchPlan {
        let mut query = |s: &Option<Spanned<String>>| -> Option<Box<str>> {
            let s = s.as_ref()?;
            match s.get_ref().strip_prefix("query:") {
                Some(q) if !q.is_empty() => Some(q.into()),
                _ => {
                    self.err(
                        s.span(),
                        format!(
                            "`{}`: a list reads its search from `query:NAME`",
                            s.get_ref()
                        ),
                    );
                    None
                }
            }
        };
        let (source, offset, limit) = (query(&sp.source), query(&sp.offset), query(&sp.limit));
        let mut contains = Vec::new();
        for c in &sp.contains {
            match attribute(c.get_ref()) {
                Some(def) if def.secret => self.err(
                    c.span(),
                    format!("`{}` is a secret: it cannot be searched", c.get_ref()),
                ),
                Some(def) => contains.push(def.name),
                None => self.err(
                    c.span(),
                    format!("`{}` is not a canonical attribute", c.get_ref()),
                ),
            }
        }
        if source.is_some() && contains.is_empty() {
            self.err(
                sp.source.as_ref().map_or(0..0, Spanned::span),
                "a search text needs the attributes it is looked for in: `contains = [...]`",
            );
        }
        SearchPlan {
            source,
            contains,
            offset,
            limit,
        }
    }

    fn status(&mut self, status: u16, at: Range<usize>) -> u16 {
        if !(100..=599).contains(&status) {
            self.err(at, format!("{status} is not an HTTP status"));
        }
        status
    }

    fn template(&mut self, v: &serde_json::Value, at: &Range<usize>) -> Option<Template> {
        Template::compile(v)
            .map_err(|e| self.err(at.clone(), e))
            .ok()
    }

    fn headers(
        &mut self,
        h: &BTreeMap<String, String>,
        at: &Range<usize>,
    ) -> Vec<(http::HeaderName, Template)> {
        let mut out = Vec::new();
        for (k, v) in h {
            match (
                http::HeaderName::from_bytes(k.as_bytes()),
                Template::compile_text(v),
            ) {
                (Ok(name), Ok(t)) => out.push((name, t)),
                (Err(_), _) => self.err(at.clone(), format!("`{k}` is not a valid header name")),
                (_, Err(e)) => self.err(at.clone(), e),
            }
        }
        out
    }

    /// The place of `needle` inside `within`, to point a diagnostic at text inside a value
    /// whose own span the TOML parser does not keep (a template inside an inline table).
    fn find_in(&self, within: &Range<usize>, needle: &str) -> Option<Range<usize>> {
        // A `[table]`'s span may cover only its header: look on from its start, then anywhere.
        let from = within.start.min(self.src.len());
        let start = match self.src.get(from..).and_then(|h| h.find(needle)) {
            Some(i) => from + i,
            None => self.src.find(needle)?,
        } + 1;
        Some(start..start + needle.len() - 1)
    }

    fn errors(&mut self, spec: &super::spec::ErrorsSpec, at: Range<usize>) -> Option<Errors> {
        let body = self.template(&spec.body, &at);
        let headers = self.headers(&spec.headers, &at);
        let mut outcomes = Vec::new();
        for (outcome, o) in &spec.outcomes {
            let status = o.status.map(|s| self.status(s, at.clone()));
            let body = o.body.as_ref().and_then(|b| self.template(b, &at));
            let message = o.message.as_ref().and_then(|m| {
                Template::compile_text(m)
                    .map_err(|e| self.err(at.clone(), e))
                    .ok()
            });
            let headers = self.headers(&o.headers, &at);
            outcomes.push((
                *outcome,
                OutcomePlan {
                    status,
                    body,
                    message,
                    headers,
                    vars: o.vars.clone(),
                },
            ));
        }
        // Every named placeholder must be a built-in or a declared var: a typo is a load error,
        // not an empty member in production error bodies.
        let all_vars: Vec<&str> = spec
            .vars
            .keys()
            .chain(spec.outcomes.values().flat_map(|o| o.vars.keys()))
            .map(String::as_str)
            .collect();
        let mut used = Vec::new();
        body.iter().for_each(|t| t.named(&mut used));
        headers.iter().for_each(|(_, t)| t.named(&mut used));
        for (_, o) in &outcomes {
            o.body.iter().for_each(|t| t.named(&mut used));
            o.message.iter().for_each(|t| t.named(&mut used));
            o.headers.iter().for_each(|(_, t)| t.named(&mut used));
        }
        for name in &used {
            if !ERROR_PLACEHOLDERS.contains(&&**name) && !all_vars.contains(&&**name) {
                let span = self
                    .find_in(&at, &format!("{{{name}"))
                    .unwrap_or(at.clone());
                self.err(
                    span,
                    format!(
                        "unknown placeholder `{name}`: use one of {}, `now`, `target.ATTR`, `user.ATTR`, or declare it in `vars`",
                        ERROR_PLACEHOLDERS.join(", ")
                    ),
                );
            }
        }
        Some(Errors {
            content_type: spec.content_type.as_str().into(),
            body: body?,
            headers,
            vars: spec.vars.clone(),
            outcomes,
        })
    }

    /// Compiles one field rule. `parent` is the enclosing rule's name for nested rules.
    fn rule(&mut self, f: &FieldSpec, at: Range<usize>, parent: Option<&str>) -> Option<Rule> {
        let before = self.diags.len();
        let src_span = f.source.as_ref().map_or(at.clone(), Spanned::span);
        let mut constant = None;
        let source = match (&f.source, &f.value, &f.join) {
            (Some(s), None, None) => self.source(s),
            (Some(s), Some(v), None) if self.in_view => {
                constant = Some(v.clone());
                self.source(s)
            }
            (None, Some(v), None) => Source::Const(crate::json::Node::from_value(v)),
            (None, None, Some(_)) => Source::None,
            (None, None, None) if parent.is_some_and(|p| p.ends_with("[]")) => Source::None,
            (None, None, None) => {
                self.err(at.clone(), "a field rule needs `source`, `value` or `join`");
                Source::None
            }
            _ => {
                self.err(
                    src_span.clone(),
                    "use only one of `source`, `value` and `join`",
                );
                Source::None
            }
        };
        let own = f.name.clone().unwrap_or_else(|| match &f.source {
            Some(s) => {
                let s = s.get_ref();
                s.strip_prefix("$.")
                    .or_else(|| s.strip_prefix("param:"))
                    .or_else(|| s.strip_prefix("query:"))
                    .or_else(|| s.strip_prefix("header:"))
                    .unwrap_or(s)
                    .to_owned()
            }
            None if parent.is_some_and(|p| p.ends_with("[]")) => String::new(),
            None => f
                .parts
                .keys()
                .next()
                .cloned()
                .unwrap_or_else(|| "value".into()),
        });
        let name: Box<str> = match parent {
            Some(p) if own.is_empty() => p.into(),
            Some(p) => format!("{p}.{own}").into(),
            None => own.into(),
        };

        let types = match &f.ty {
            None => 0,
            Some(t) => {
                let mut mask = 0;
                for n in t.get_ref().names() {
                    mask |= match n {
                        "string" => T_STRING,
                        "boolean" => T_BOOL,
                        "integer" => T_INTEGER,
                        "int32" => T_INT32,
                        "number" => T_NUMBER,
                        "object" => T_OBJECT,
                        "array" => T_ARRAY,
                        other => {
                            self.err(t.span(), format!("unknown type `{other}`; expected string, boolean, integer, int32, number, object or array"));
                            0
                        }
                    };
                }
                mask
            }
        };

        let mut dests = Vec::new();
        if let Some(to) = &f.to {
            for d in to.get_ref().names() {
                // A view only renders: it may show the store's own attributes.
                match self.dest(d, parent.is_some(), f.read_only || self.in_view) {
                    Ok(dest) => dests.push(dest),
                    Err(e) => self.err(to.span(), e),
                }
            }
        }
        let identifies = f.identifies.as_ref().and_then(|t| {
            if matches!(t.get_ref().as_str(), "id" | "userName" | "ext.authenticator" | "ext.numericId") {
                Some(location(t.get_ref()))
            } else {
                self.err(t.span(), format!("`{}` cannot identify a user; use id, userName, ext.authenticator or ext.numericId", t.get_ref()));
                None
            }
        });

        let transforms = f
            .transform
            .iter()
            .filter_map(|t| {
                Transform::compile(t.get_ref(), f.ignore_case)
                    .map_err(|e| self.err(t.span(), e))
                    .ok()
            })
            .collect();
        let pattern = f.pattern.as_ref().and_then(|p| {
            regex::Regex::new(p.get_ref())
                .map_err(|e| self.err(p.span(), crate::diagnostic::regex_message(&e)))
                .ok()
        });
        if let (Some(min), Some(max)) = (f.min_length, f.max_length)
            && min > max
        {
            self.err(
                at.clone(),
                format!("`min_length` {min} is larger than `max_length` {max}"),
            );
        }
        let checks = Checks {
            min_length: f.min_length,
            max_length: f.max_length,
            pattern,
            must_not_contain: f
                .must_not_contain
                .iter()
                .map(|s| {
                    (
                        if f.ignore_case {
                            s.to_lowercase().into()
                        } else {
                            s.as_str().into()
                        },
                        s.as_str().into(),
                    )
                })
                .collect(),
            ignore_case: f.ignore_case,
            format: f.format,
            min: f.min,
            max: f.max,
            equals_param: f.equals_param.as_deref().map(Into::into),
            unique_by: f.unique_by.as_deref().map(Into::into),
            require_any_of: f.require_any_of.iter().map(|s| s.as_str().into()).collect(),
            message: f.message.as_deref().map(Into::into),
        };

        let items = f.items.as_ref().and_then(|i| {
            self.rule(i, at.clone(), Some(&format!("{name}[]")))
                .map(Box::new)
        });
        let fields = f
            .fields
            .iter()
            .filter_map(|sub| self.rule(sub, at.clone(), Some(&name)))
            .collect::<Vec<_>>();
        if !f.fields.is_empty() && f.items.is_none() && types & !T_OBJECT != 0 && types != 0 {
            self.err(
                at.clone(),
                "`fields` describe an object: the rule's `type` must be \"object\"",
            );
        }

        let join = match &f.join {
            Some(j) => self
                .join(j, &f.parts, &f.max_total_length, at.clone())
                .map(|mut j| {
                    // Where the completed value goes: what an operation's pending join writes.
                    j.locs = dests
                        .iter()
                        .filter_map(|d| match d {
                            Dest::Attr(loc, _) => Some(loc.clone()),
                            _ => None,
                        })
                        .collect();
                    std::sync::Arc::new(j)
                }),
            None => {
                if !f.parts.is_empty() {
                    self.err(at.clone(), "`parts` need a `join` template");
                }
                None
            }
        };

        // A view's member that shows no attribute is always unset: `null`, or its `render_unset`.
        if self.in_view && parent.is_none() && f.to.is_none() && constant.is_none() {
            constant = Some(f.render_unset.clone().unwrap_or(serde_json::Value::Null));
        }
        if self.diags.len() > before {
            return None;
        }
        let group_items = dests.iter().any(|d| matches!(d, Dest::GroupsValues));
        Some(Rule {
            name,
            source,
            dests,
            identifies,
            types,
            required: f.required,
            required_with: Vec::new(),
            nullable: f.nullable.unwrap_or(true) && !f.required,
            null_clears_join: f.null_clears_join,
            null_is_absent: f.null_is_absent,
            empty_is_null: f.empty_is_null,
            default: f.default.clone(),
            default_node: f.default.as_ref().map(crate::json::Node::from_value),
            default_on: f.default_on.clone(),
            operations: f.operations.clone(),
            routes: None,
            read_only: f.read_only,
            transforms,
            checks,
            items,
            fields,
            join,
            render_unset: f.render_unset.clone(),
            render: f.render.unwrap_or(true),
            constant,
            keep: false,
            group_items,
        })
    }

    fn source(&mut self, s: &Spanned<String>) -> Source {
        let text = s.get_ref();
        if let Some(p) = text.strip_prefix("param:") {
            return Source::Param(p.into());
        }
        if let Some(q) = text.strip_prefix("query:") {
            if q.is_empty() {
                self.err(s.span(), "`query:` needs a parameter name");
                return Source::None;
            }
            return Source::Query(q.into());
        }
        if let Some(h) = text.strip_prefix("header:") {
            return match http::HeaderName::from_bytes(h.as_bytes()) {
                Ok(h) => Source::Header(h),
                Err(_) => {
                    self.err(s.span(), format!("`{h}` is not a valid header name"));
                    Source::None
                }
            };
        }
        if !text.starts_with('$') {
            self.err(s.span(), format!("`{text}` is not a source: write a JSONPath (`$.member`), `param:NAME`, `query:NAME` or `header:NAME`"));
            return Source::None;
        }
        match JsonPathPlan::compile(text) {
            Ok(p) => Source::Body(p),
            Err(e) => {
                self.err(s.span(), format!("invalid JSONPath `{text}`: {e}"));
                Source::None
            }
        }
    }

    fn dest(&mut self, d: &str, nested: bool, read_only: bool) -> Result<Dest, String> {
        if nested {
            if d.is_empty() || d.contains('.') {
                return Err(format!(
                    "inside `fields`/`items`, `to` is a member name, not `{d}`"
                ));
            }
            return Ok(Dest::Member(d.into()));
        }
        match d {
            "groups.op" => return Ok(Dest::GroupsOp),
            "groups.values" => return Ok(Dest::GroupsValues),
            "callerPassword" => return Ok(Dest::CallerPassword),
            _ => {}
        }
        let def = attribute(d).ok_or_else(|| {
            format!("`{d}` is not a canonical attribute (see docs/mapping-language.md)")
        })?;
        if def.read_only && !read_only {
            return Err(format!(
                "`{d}` is read-only: only a rule with `read_only = true` may name it"
            ));
        }
        Ok(Dest::Attr(location(def.name), def))
    }

    fn join(
        &mut self,
        template: &Spanned<String>,
        parts: &BTreeMap<String, FieldSpec>,
        total: &Option<super::spec::TotalLength>,
        at: Range<usize>,
    ) -> Option<Join> {
        let mut compiled: Vec<(Box<str>, Rule)> = Vec::new();
        for (key, spec) in parts {
            if let Some(r) = self.rule(spec, at.clone(), None) {
                compiled.push((key.as_str().into(), r));
            }
        }
        let keys: Vec<&str> = parts.keys().map(String::as_str).collect();
        let (pieces, pattern) = match parse_join(template.get_ref(), &keys) {
            Ok(x) => x,
            Err(e) => {
                self.err(template.span(), e);
                return None;
            }
        };
        let split = regex::Regex::new(&format!("^{pattern}$"))
            .map_err(|e| self.err(template.span(), e.to_string()))
            .ok()?;
        // Part cross-references (`required_with`) are by member name among the parts.
        let part_names: Vec<Box<str>> = compiled.iter().map(|(_, r)| r.name.clone()).collect();
        for ((_, spec), (_, rule)) in parts.iter().zip(compiled.iter_mut()) {
            for w in &spec.required_with {
                match part_names.iter().position(|n| **n == **w) {
                    Some(j) => rule.required_with.push(j),
                    None => self.diags.push(Diagnostic::at(
                        self.file,
                        self.src,
                        Some(at.clone()),
                        format!("`required_with` names `{w}`, which is no part of this join"),
                    )),
                }
            }
        }
        let total = match total {
            Some(t) => {
                let mut idx = Vec::new();
                for p in &t.parts {
                    match keys.iter().position(|k| k == p) {
                        Some(i) => idx.push(i),
                        None => self.err(
                            at.clone(),
                            format!("`max_total_length` names `{p}`, which is no part"),
                        ),
                    }
                }
                Some((idx, t.max))
            }
            None => None,
        };
        Some(Join {
            pieces,
            split,
            parts: compiled,
            total,
            locs: Vec::new(),
        })
    }
}

/// Parses `tel:+{cc}-{number}[;ext={ext}]` into pieces and a splitting regex.
fn parse_join(t: &str, keys: &[&str]) -> Result<(Vec<JoinPiece>, String), String> {
    fn go(
        s: &mut std::iter::Peekable<std::str::Chars<'_>>,
        keys: &[&str],
        nested: bool,
    ) -> Result<(Vec<JoinPiece>, String), String> {
        let (mut pieces, mut re, mut text) = (Vec::new(), String::new(), String::new());
        let flush = |text: &mut String, pieces: &mut Vec<JoinPiece>, re: &mut String| {
            if !text.is_empty() {
                re.push_str(&regex::escape(text));
                pieces.push(JoinPiece::Text(std::mem::take(text).into()));
            }
        };
        while let Some(c) = s.next() {
            match c {
                '{' => {
                    flush(&mut text, &mut pieces, &mut re);
                    let name: String = s.by_ref().take_while(|c| *c != '}').collect();
                    let i = keys.iter().position(|k| *k == name).ok_or_else(|| {
                        format!("join template names `{{{name}}}`, which is no part")
                    })?;
                    re.push_str(&format!("(?P<{name}>.+?)"));
                    pieces.push(JoinPiece::Part(i));
                }
                '[' => {
                    flush(&mut text, &mut pieces, &mut re);
                    let (inner, inner_re) = go(s, keys, true)?;
                    re.push_str(&format!("(?:{inner_re})?"));
                    pieces.push(JoinPiece::Optional(inner));
                }
                ']' if nested => {
                    flush(&mut text, &mut pieces, &mut re);
                    return Ok((pieces, re));
                }
                other => text.push(other),
            }
        }
        if nested {
            return Err("unclosed `[` in join template".into());
        }
        flush(&mut text, &mut pieces, &mut re);
        Ok((pieces, re))
    }
    go(&mut t.chars().peekable(), keys, false)
}

fn known_from(k: &mut Known, r: &Rule) {
    if let Some(j) = &r.join {
        for (_, p) in &j.parts {
            known_from(k, p);
        }
    }
    let Source::Body(p) = &r.source else { return };
    let Some(keys) = p.keys() else {
        k.open = true;
        return;
    };
    let mut node = k;
    for key in keys {
        node = node.entry(key);
    }
    if r.items.is_some() || (r.types & T_OBJECT != 0 && r.fields.is_empty()) {
        node.open = true;
    }
    for f in &r.fields {
        known_from(node, f);
    }
}

/// Places of the parts of a mapping file, for diagnostics on unspanned values.
/// The named placeholders a success template may use.
const SUCCESS_PLACEHOLDERS: [&str; 4] = ["user", "users", "total", "request_id"];

/// The named placeholders every error template may use.
const ERROR_PLACEHOLDERS: [&str; 7] = [
    "status",
    "reason",
    "message",
    "field",
    "rule",
    "path",
    "request_id",
];

#[derive(Debug, Default)]
pub(super) struct Spans {
    pub fields: Vec<Range<usize>>,
    pub routes: Vec<Range<usize>>,
    pub preconditions: Vec<Range<usize>>,
    pub views: BTreeMap<String, Range<usize>>,
    pub auth: Range<usize>,
    pub success: Range<usize>,
    pub errors: Range<usize>,
}

/// A rule's source as written: `$.a.b`, `param:id`, `value …`, `join`.
fn written(f: &FieldSpec) -> Box<str> {
    match (&f.source, &f.value, &f.join) {
        (Some(s), _, _) => s.get_ref().as_str().into(),
        (None, Some(v), _) => format!("value {v}").into(),
        (None, None, Some(_)) => "join".into(),
        _ => "".into(),
    }
}
