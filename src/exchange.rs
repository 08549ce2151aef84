//! One exchange through a dialect route — route → credentials → translate → step-up →
//! backend → the answer in the caller's dialect — and the only code that does it.
//!
//! The gateway (`server`) runs every step; `translate`, `import` and `convert`, the
//! golden tests, the fuzz target and the benches run the steps that need no network through
//! [`dry_run`] or an [`Exchange`] they make for a named route. So what they test and measure
//! is what the gateway does, and every refusal is rendered by [`Exchange::refuse`].

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::backend::{Backend, BackendError, Search, Store, Stored, Want};
use crate::canonical::{Operation, UserDoc};
use crate::config::{Credential, Limits};
use crate::dialect::route::Params;
use crate::mapping::render::{Answered, ErrorContext};
use crate::mapping::{
    DialectResponse, Lookup, Mapping, MappingSet, Route, RouteKind, RouteMatch, Translation,
};
use crate::rejection::{Outcome, Rejection};

/// A request matched to one route of one dialect.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The dialect's compiled mapping.
    pub mapping: Arc<Mapping>,
    /// The route, an index into `mapping.routes`.
    pub route: usize,
    /// The path parameters the route's template took.
    pub params: Params,
    /// The query string (without `?`), kept only for the routes that read it.
    pub query: Option<Box<str>>,
}

/// What a read route found, to answer.
#[derive(Debug)]
pub enum Found {
    /// A get's user.
    One(UserDoc),
    /// A list's page, and how many users matched in all.
    Many(Vec<UserDoc>, usize),
}

/// Why a request has no exchange.
#[derive(Debug, Clone)]
pub enum Unrouted {
    /// No dialect has the path.
    NotFound,
    /// A dialect has the path, with other methods: its 405 answers.
    MethodNotAllowed {
        /// The dialect whose path it is.
        mapping: Arc<Mapping>,
        /// The methods its routes on that path take.
        allow: Vec<http::Method>,
    },
}

impl Unrouted {
    /// The 405 in the dialect's shape, with `Allow`; `None` for a path no dialect has.
    pub fn answer(&self, method: &http::Method, ctx: &ErrorContext<'_>) -> Option<DialectResponse> {
        let Unrouted::MethodNotAllowed { mapping, allow } = self else {
            return None;
        };
        let mut r = mapping.error_response(&Rejection::method_not_allowed(method, allow), ctx);
        let allow: Vec<&str> = allow.iter().map(http::Method::as_str).collect();
        r.headers.push((http::header::ALLOW, allow.join(", ")));
        Some(r)
    }
}

impl Exchange {
    /// The route `method` + `path` (no query string) names in `set`.
    pub fn route(set: &MappingSet, method: &http::Method, path: &str) -> Result<Self, Unrouted> {
        match set.route(method, path) {
            RouteMatch::Found {
                mapping,
                route,
                params,
            } => Ok(Self::at(Arc::clone(mapping), route, params)),
            RouteMatch::MethodNotAllowed { mapping, allow } => Err(Unrouted::MethodNotAllowed {
                mapping: Arc::clone(mapping),
                allow,
            }),
            RouteMatch::NotFound => Err(Unrouted::NotFound),
        }
    }

    /// The exchange of route `route` of `mapping` (`import` names its route, not a path).
    pub fn at(mapping: Arc<Mapping>, route: usize, params: Params) -> Self {
        Self {
            mapping,
            route,
            params,
            query: None,
        }
    }

    /// The exchange with the request's query string (`None` or empty: none). Only routes
    /// without a body read it; the others do not keep it.
    pub fn with_query(mut self, query: Option<&str>) -> Self {
        if let Some(q) = query.filter(|q| !q.is_empty())
            && !self.kind().takes_body()
        {
            self.query = Some(q.into());
        }
        self
    }

    /// What the route does.
    pub fn kind(&self) -> RouteKind {
        self.spec().map_or(RouteKind::Update, |r| r.kind)
    }

    /// The route's compiled plan.
    pub fn spec(&self) -> Option<&Route> {
        self.mapping.routes.get(self.route)
    }

    /// The route's name, for logs, metrics and the audit trail.
    pub fn route_name(&self) -> &str {
        self.spec().map_or("", |r| &*r.name)
    }

    /// The caller: the credential presented as the dialect's `[auth]` says (401 when absent or
    /// unknown, compared in constant time), holding a role the route accepts (403).
    pub fn authorize<'c>(
        &self,
        credentials: &'c [Credential],
        headers: &http::HeaderMap,
    ) -> Result<&'c Credential, Rejection> {
        let token = self
            .mapping
            .auth
            .token(headers)
            .ok_or_else(Rejection::no_credentials)?;
        let cred = credential(credentials, &self.mapping.dialect, token)
            .ok_or_else(Rejection::bad_credentials)?;
        let Some(route) = self.spec() else {
            return Err(Rejection::bad_credentials());
        };
        if !route.roles.is_empty() && !route.roles.iter().any(|r| cred.has_role(r)) {
            return Err(Rejection::forbidden(&route.action()));
        }
        Ok(cred)
    }

    /// Translates a request body (at most `limits.max_body_bytes`, nested at most
    /// `limits.max_json_depth`) into the canonical operation.
    pub fn translate(
        &self,
        headers: &http::HeaderMap,
        body: &[u8],
        limits: &Limits,
    ) -> Result<Translation, Rejection> {
        if body.len() > limits.max_body_bytes {
            return Err(Rejection::too_large(limits.max_body_bytes));
        }
        if self.kind() == RouteKind::Delete {
            // A delete names its user in the path or the query; a body is not read.
            let lookup = self.lookup(headers)?;
            let target = lookup.target.unwrap_or_default();
            return Ok(Translation {
                op: Operation::delete(Arc::clone(&self.mapping.dialect), target),
                notes: Vec::new(),
            });
        }
        self.mapping.translate(
            self.route,
            &self.params,
            headers,
            body,
            limits.max_json_depth,
        )
    }

    /// What a route without a body names: the target of a get or delete, a list's search.
    pub fn lookup(&self, headers: &http::HeaderMap) -> Result<Lookup, Rejection> {
        self.mapping.lookup(
            self.route,
            &self.params,
            self.query.as_deref().unwrap_or(""),
            headers,
        )
    }

    /// Runs a read route against `store` within `timeout`: the user a get names (404 when
    /// none), or the page of a list, at most `max_list` users.
    pub async fn read(
        &self,
        store: &dyn Store,
        lookup: Lookup,
        max_list: usize,
        timeout: Duration,
    ) -> Result<Found, BackendError> {
        let work = async {
            match self.kind() {
                RouteKind::List => {
                    let contains = self
                        .spec()
                        .and_then(|r| r.search.as_ref())
                        .map(|s| s.contains.clone())
                        .unwrap_or_default();
                    let search = Search {
                        text: lookup.text,
                        contains,
                        offset: lookup.offset,
                        limit: lookup.limit.unwrap_or(max_list).min(max_list),
                    };
                    let (users, total) = store.search(search).await?;
                    Ok(Found::Many(users, total))
                }
                _ => {
                    let target = lookup.target.unwrap_or_default();
                    match store.find(&target).await? {
                        Some(u) => Ok(Found::One(u)),
                        None => Err(BackendError::NotFound),
                    }
                }
            }
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(BackendError::Timeout),
        }
    }

    /// The answer to a read route, secrets never rendered.
    pub fn answer_found(&self, found: &Found, request_id: &str) -> DialectResponse {
        let users = match found {
            Found::One(u) => Answered::One(u),
            Found::Many(list, total) => Answered::Many(list, *total),
        };
        self.mapping.route_response(self.route, users, request_id)
    }

    /// Translates a body parsed already (an import or convert line).
    pub fn translate_value(
        &self,
        headers: &http::HeaderMap,
        body: &Value,
    ) -> Result<Translation, Rejection> {
        self.mapping
            .translate_value(self.route, &self.params, headers, body)
    }

    /// Step-up: an operation restating the caller's own password must carry the password of
    /// `caller` (constant time; a `password_argon2` is verified off the runtime).
    pub async fn step_up(&self, op: &Operation, caller: &Credential) -> Result<(), Rejection> {
        let Some(given) = &op.caller_password else {
            return Ok(());
        };
        let ok = match (&caller.password, &caller.password_argon2) {
            (Some(p), _) => p.ct_eq(given.expose().as_bytes()),
            (None, Some(phc)) => {
                crate::password::verify(phc.clone(), given.expose().to_owned()).await
            }
            (None, None) => false,
        };
        if ok {
            return Ok(());
        }
        let field = self
            .mapping
            .member_for("callerPassword")
            .unwrap_or("callerPassword");
        Err(Rejection::wrong_caller_password(field))
    }

    /// Applies `op` to `backend` within `timeout` (past it: [`BackendError::Timeout`]).
    pub async fn apply(
        &self,
        backend: &dyn Backend,
        op: Operation,
        timeout: Duration,
    ) -> Result<Stored, BackendError> {
        let want = if self.mapping.route_renders_user(self.route) {
            Want::User
        } else {
            Want::Id
        };
        match tokio::time::timeout(timeout, backend.apply(op, want)).await {
            Ok(r) => r,
            Err(_) => Err(BackendError::Timeout),
        }
    }

    /// What a backend's failure is to this dialect's client.
    pub fn backend_rejection(&self, e: BackendError) -> Rejection {
        let groups = self.mapping.member_for("groups.values").unwrap_or("groups");
        from_backend(e, groups)
    }

    /// The success answer, rendered from the stored user where the dialect returns it
    /// (secrets never rendered); a stored user answered as JSON is parsed only then. A stored
    /// user that cannot be read is the backend's failure (502).
    pub fn answer(
        &self,
        stored: &Stored,
        request_id: &str,
    ) -> Result<DialectResponse, BackendError> {
        if self.mapping.route_renders_user(self.route) {
            let doc = stored.doc()?;
            return Ok(self
                .mapping
                .route_response(self.route, Answered::One(&doc), request_id));
        }
        Ok(self
            .mapping
            .route_response(self.route, Answered::Nothing, request_id))
    }

    /// The refusal `rej` in the dialect's error shape.
    pub fn refuse(&self, rej: &Rejection, ctx: &ErrorContext<'_>) -> DialectResponse {
        self.mapping.error_response(rej, ctx)
    }
}

/// The credential of `dialect` whose token is `token`, compared in constant time against
/// every credential of that dialect (the time taken does not tell which one matched).
pub fn credential<'c>(
    credentials: &'c [Credential],
    dialect: &str,
    token: &str,
) -> Option<&'c Credential> {
    let mut found = None;
    let mut sha = None;
    for c in credentials {
        if c.dialect == dialect && c.matches(token.as_bytes(), &mut sha) && found.is_none() {
            found = Some(c);
        }
    }
    found
}

/// What a request becomes offline: the exchange without credentials or backend.
#[derive(Debug)]
pub enum DryRun {
    /// No dialect has the path.
    NoRoute,
    /// Refused: the rejection and the dialect's answer to it.
    Refused {
        /// Why.
        rejection: Rejection,
        /// The answer the gateway gives.
        answer: DialectResponse,
    },
    /// A read route: what it would look up in the store.
    Read {
        /// The route it took.
        exchange: Exchange,
        /// The target of a get, the search of a list.
        lookup: Lookup,
    },
    /// Translated.
    Translated {
        /// The route it took.
        exchange: Exchange,
        /// The canonical operation and the notes.
        translation: Translation,
    },
}

/// A request that reaches no store.
#[derive(Debug, Clone, Copy)]
pub struct Offline<'a> {
    /// The method.
    pub method: &'a http::Method,
    /// The path (a query string is ignored).
    pub path: &'a str,
    /// The headers.
    pub headers: &'a http::HeaderMap,
    /// The body.
    pub body: &'a [u8],
    /// The request id error bodies carry.
    pub request_id: &'a str,
}

/// Routes and translates `req` as the gateway would, and completes it against `stored` (the
/// user a backend would find) when given. No credential is checked, no backend called.
pub fn dry_run(
    set: &MappingSet,
    limits: &Limits,
    req: Offline<'_>,
    stored: Option<&UserDoc>,
) -> DryRun {
    let (path, query) = match req.path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (req.path, None),
    };
    let ctx = ErrorContext {
        path,
        request_id: req.request_id,
        ..ErrorContext::default()
    };
    let exchange = match Exchange::route(set, req.method, path) {
        Ok(e) => e.with_query(query),
        Err(u) => {
            return match (&u, u.answer(req.method, &ctx)) {
                (Unrouted::MethodNotAllowed { allow, .. }, Some(answer)) => DryRun::Refused {
                    rejection: Rejection::method_not_allowed(req.method, allow),
                    answer,
                },
                _ => DryRun::NoRoute,
            };
        }
    };
    let refused = |rejection: Rejection| DryRun::Refused {
        answer: exchange.refuse(&rejection, &ctx),
        rejection,
    };
    if matches!(exchange.kind(), RouteKind::Get | RouteKind::List) {
        return match exchange.lookup(req.headers) {
            Ok(lookup) => DryRun::Read { exchange, lookup },
            Err(rej) => refused(rej),
        };
    }
    let mut translation = match exchange.translate(req.headers, req.body, limits) {
        Ok(t) => t,
        Err(rej) => return refused(rej),
    };
    if let Some(stored) = stored
        && let Err(rej) = translation.op.complete(stored)
    {
        return refused(rej);
    }
    DryRun::Translated {
        exchange,
        translation,
    }
}

/// What a backend's failure is to a client; `groups_field` is the request member that
/// carries group references (to name it when a group is unknown).
fn from_backend(e: BackendError, groups_field: &str) -> Rejection {
    match e {
        BackendError::NotFound => Rejection::new(Outcome::NotFound, "target", "no such user"),
        BackendError::Conflict(m) => Rejection::new(Outcome::Conflict, "unique", m),
        BackendError::UnknownGroup(m) => {
            Rejection::invalid(groups_field, "group", format!("{groups_field}: {m}"))
        }
        BackendError::Rejected(rej) => rej,
        BackendError::Unavailable(m) => {
            tracing::warn!(error = %m, "backend unavailable");
            Rejection::new(
                Outcome::BackendUnavailable,
                "backend",
                "the backend is unavailable",
            )
        }
        BackendError::Timeout => Rejection::new(
            Outcome::BackendTimeout,
            "backend",
            "the backend did not answer in time",
        ),
        BackendError::Failed(m) => {
            tracing::warn!(error = %m, "backend failed");
            Rejection::new(Outcome::BackendError, "backend", "the backend failed")
        }
        e @ BackendError::Unsupported(..) => {
            Rejection::new(Outcome::BackendError, "backend", e.to_string())
        }
        BackendError::TooMany(m) => Rejection::invalid("search", "too_many", m),
        e @ BackendError::Changed(_) => Rejection::new(Outcome::Conflict, "version", e.to_string()),
    }
}

/// `translate --explain` and test coverage: what each rule of the route `req` takes did with
/// it; `None` when no route takes it. A body that does not parse is explained as empty (the
/// dry run says why it failed).
pub fn explain_offline(
    set: &MappingSet,
    limits: &Limits,
    req: &Offline<'_>,
) -> Option<crate::mapping::explain::Explanation> {
    let (path, query) = req.path.split_once('?').unwrap_or((req.path, ""));
    let ex = Exchange::route(set, req.method, path).ok()?;
    let node = if req.body.is_empty() {
        crate::json::Node::Obj(Vec::new())
    } else {
        crate::json::parse_node(req.body, limits.max_json_depth)
            .unwrap_or(crate::json::Node::Obj(Vec::new()))
    };
    ex.mapping
        .explain(ex.route, &ex.params, query, req.headers, &node)
}
