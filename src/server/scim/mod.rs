//! The `/scim/v2` ingress over the canonical store (RFC 7644): a user created through any
//! vendor dialect is visible and editable as SCIM.

mod groups;
mod patch;
mod project;

use bytes::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::State;
use super::http::{Body, json};
use super::ingress::Routed;
use super::respond::SCIM_JSON;
use crate::backend::BackendError;
use crate::canonical::UserDoc;
use crate::canonical::schemas;
use crate::config::Credential;
use crate::dialect::auth::AuthPlan;

/// How a `/scim/v2` caller presents its `scim` credential: `Authorization: Bearer <token>`.
pub fn auth() -> &'static AuthPlan {
    static AUTH: std::sync::LazyLock<AuthPlan> =
        std::sync::LazyLock::new(|| AuthPlan::bearer("Bearer realm=\"userbridge\""));
    &AUTH
}

/// The most resources one list answer holds (`count` above it is lowered to it).
const MAX_RESULTS: usize = 1000;

/// A SCIM error answer.
fn error(status: StatusCode, scim_type: Option<&str>, detail: &str) -> Response<Body> {
    super::respond::scim_error(status, scim_type, detail)
}

/// A stored user as a SCIM resource: secrets are never returned; `meta.location` is where
/// this ingress serves it.
fn resource(user: &UserDoc) -> Value {
    let mut doc = user.redacted_without_secrets();
    if let Some(id) = user.id().map(|id| format!("/scim/v2/Users/{id}"))
        && let Some(Value::Object(meta)) = doc.get_mut("meta")
    {
        meta.insert("location".into(), Value::String(id));
    }
    Value::Object(doc)
}

fn backend_error(e: &BackendError) -> Response<Body> {
    match e {
        BackendError::NotFound => error(StatusCode::NOT_FOUND, None, "no such user"),
        BackendError::Conflict(m) => error(StatusCode::CONFLICT, Some("uniqueness"), m),
        BackendError::UnknownGroup(m) => error(StatusCode::BAD_REQUEST, Some("invalidValue"), m),
        BackendError::Rejected(r) => {
            error(StatusCode::BAD_REQUEST, Some("invalidValue"), &r.message)
        }
        BackendError::Unavailable(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            "the store is unavailable",
        ),
        BackendError::Timeout => error(
            StatusCode::GATEWAY_TIMEOUT,
            None,
            "the store did not answer in time",
        ),
        BackendError::Failed(_) => error(StatusCode::BAD_GATEWAY, None, "the store failed"),
        e @ BackendError::Unsupported(..) => {
            error(StatusCode::NOT_IMPLEMENTED, None, &e.to_string())
        }
        BackendError::TooMany(m) => error(StatusCode::BAD_REQUEST, Some("tooMany"), m),
        e @ BackendError::Changed(_) => {
            error(StatusCode::PRECONDITION_FAILED, None, &e.to_string())
        }
    }
}

/// Who wrote, for the audit trail.
#[derive(Clone, Copy)]
struct Call<'a> {
    state: &'a State,
    caller: &'a str,
    request_id: &'a str,
}

/// Handles a `/scim/v2` request the stack has authenticated (`caller`; none for discovery)
/// and read.
pub async fn handle(
    routed: &Routed,
    caller: Option<&Credential>,
    req: Request<Bytes>,
) -> Response<Body> {
    let state = &*routed.state;
    let Some(store) = state.backend.store() else {
        return error(
            StatusCode::NOT_IMPLEMENTED,
            None,
            "the configured backend is not a canonical store",
        );
    };
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().trim_end_matches('/');
    let rest = path.strip_prefix("/scim/v2").unwrap_or("");
    let query = parts.uri.query().unwrap_or("");
    let limits = &state.config.limits;
    let q = Query::parse(query);
    let call = Call {
        state,
        caller: caller.map_or("scim", |c| c.name.as_str()),
        request_id: routed.request_id(),
    };
    match (&parts.method, rest) {
        (&Method::GET, "/ServiceProviderConfig") => {
            json(StatusCode::OK, SCIM_JSON, &service_provider_config())
        }
        (&Method::GET, "/ResourceTypes") => json(
            StatusCode::OK,
            SCIM_JSON,
            &list(vec![resource_type(), group_resource_type()], 1, 2),
        ),
        (&Method::GET, "/ResourceTypes/User") => json(StatusCode::OK, SCIM_JSON, &resource_type()),
        (&Method::GET, "/ResourceTypes/Group") => {
            json(StatusCode::OK, SCIM_JSON, &group_resource_type())
        }
        (&Method::GET, "/Schemas") => {
            let mut all = schemas::USER.resources.clone();
            all.extend(schemas::GROUP.resources.iter().cloned());
            let n = all.len();
            json(StatusCode::OK, SCIM_JSON, &list(all, 1, n))
        }
        (&Method::GET, p) if p.starts_with("/Schemas/") => {
            let id = &p["/Schemas/".len()..];
            match schemas::USER.get(id).or_else(|| schemas::GROUP.get(id)) {
                Some(s) => json(StatusCode::OK, SCIM_JSON, s),
                None => error(StatusCode::NOT_FOUND, None, "no such schema"),
            }
        }
        (m, p) if p == "/Groups" || p.starts_with("/Groups/") => match store.group_store() {
            Some(groups) => {
                let rest = &p["/Groups".len()..];
                groups::handle(call, groups, m, rest, &parts.headers, &body, q).await
            }
            None => error(
                StatusCode::NOT_IMPLEMENTED,
                None,
                &format!(
                    "the {} backend keeps no groups for /Groups",
                    state.backend.kind()
                ),
            ),
        },
        (&Method::GET, "/Users") => search(store, q).await,
        (&Method::POST, "/Users/.search") => {
            let body = match read_doc(&body, limits) {
                Ok(d) => Value::Object(d.0),
                Err(resp) => return *resp,
            };
            search(store, Query::from_search_request(&body)).await
        }
        (&Method::POST, "/.search") => {
            let body = match read_doc(&body, limits) {
                Ok(d) => Value::Object(d.0),
                Err(resp) => return *resp,
            };
            search_all(store, Query::from_search_request(&body)).await
        }
        (_, "/ServiceProviderConfig" | "/ResourceTypes" | "/Schemas") => error(
            StatusCode::METHOD_NOT_ALLOWED,
            None,
            "this endpoint is read-only",
        ),
        (m, p)
            if *m != Method::GET
                && (p.starts_with("/ResourceTypes/") || p.starts_with("/Schemas/")) =>
        {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                None,
                "this endpoint is read-only",
            )
        }
        (&Method::POST, "/Users") => {
            let doc = match read_doc(&body, limits) {
                Ok(d) => d,
                Err(resp) => return *resp,
            };
            let sent = state.audit.is_enabled().then(|| doc.clone());
            let result = store.create(doc).await;
            let resp = match &result {
                Ok(u) => {
                    let mut r = with_etag(
                        json(StatusCode::CREATED, SCIM_JSON, &q.project(resource(u))),
                        u,
                    );
                    if let Some(Ok(v)) = u.id().map(|id| {
                        hyper::header::HeaderValue::from_str(&format!("/scim/v2/Users/{id}"))
                    }) {
                        r.headers_mut().insert(hyper::header::LOCATION, v);
                    }
                    r
                }
                Err(e) => backend_error(e),
            };
            let stored = result.as_ref().ok();
            audit(call, "create", None, sent, stored, &resp).await;
            resp
        }
        (m, p) if p.starts_with("/Users/") => {
            // The id as a path segment: percent-decoded (`%2D` is `-`, RFC 3986 §6.2.2.2).
            let Ok(id) = percent_encoding::percent_decode_str(&p["/Users/".len()..]).decode_utf8()
            else {
                return error(StatusCode::NOT_FOUND, None, "no such user");
            };
            let id = id.into_owned();
            let header = |name: hyper::header::HeaderName| {
                parts.headers.get(name).and_then(|v| v.to_str().ok())
            };
            let if_match = header(hyper::header::IF_MATCH);
            match *m {
                Method::GET => match store.get(&id).await {
                    Ok(Some(u)) => {
                        let current = crate::backend::version_of(&u.0).unwrap_or("");
                        if header(hyper::header::IF_NONE_MATCH)
                            .is_some_and(|h| crate::backend::etag_matches(h, current))
                        {
                            let mut r = Response::new(Body::default());
                            *r.status_mut() = StatusCode::NOT_MODIFIED;
                            return with_etag(r, &u);
                        }
                        with_etag(
                            json(StatusCode::OK, SCIM_JSON, &q.project(resource(&u))),
                            &u,
                        )
                    }
                    Ok(None) => error(StatusCode::NOT_FOUND, None, "no such user"),
                    Err(e) => backend_error(&e),
                },
                Method::PUT => {
                    let doc = match read_doc(&body, limits) {
                        Ok(d) => d,
                        Err(resp) => return *resp,
                    };
                    replace(call, store, &id, doc, if_match, &q, "replace").await
                }
                Method::PATCH => {
                    let ops = match read_doc(&body, limits) {
                        Ok(d) => Value::Object(d.0),
                        Err(resp) => return *resp,
                    };
                    patch(call, store, &id, &ops, if_match, &q).await
                }
                Method::DELETE => {
                    let resp = match store.delete(&id, if_match).await {
                        Ok(true) => {
                            let mut r = Response::new(Body::default());
                            *r.status_mut() = StatusCode::NO_CONTENT;
                            r
                        }
                        Ok(false) => error(StatusCode::NOT_FOUND, None, "no such user"),
                        Err(e) => backend_error(&e),
                    };
                    audit(call, "delete", Some(&id), None, None, &resp).await;
                    resp
                }
                _ => error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    None,
                    "method not allowed on a user",
                ),
            }
        }
        _ => error(StatusCode::NOT_FOUND, None, "no such resource"),
    }
}

/// `response` with the `ETag` of `user` (its `meta.version`).
fn with_etag(mut response: Response<Body>, user: &UserDoc) -> Response<Body> {
    if let Some(Ok(v)) =
        crate::backend::version_of(&user.0).map(hyper::header::HeaderValue::from_str)
    {
        response.headers_mut().insert(hyper::header::ETAG, v);
    }
    response
}

/// How many times a PATCH is made again on a user that changed between its read and its
/// write (when the client did not ask for a version itself).
const PATCH_ATTEMPTS: usize = 3;

/// Applies a PatchOp to the user `id`: read, patched, written back at the version read (so
/// that a write in between is never lost: the PATCH is made again on the new version, or,
/// when the client named a version with `If-Match`, answered 412).
async fn patch(
    call: Call<'_>,
    store: &dyn crate::backend::Store,
    id: &str,
    ops: &Value,
    if_match: Option<&str>,
    q: &Query,
) -> Response<Body> {
    for _ in 0..PATCH_ATTEMPTS {
        let mut user = match store.get(id).await {
            Ok(Some(u)) => u,
            Ok(None) => return error(StatusCode::NOT_FOUND, None, "no such user"),
            Err(e) => return backend_error(&e),
        };
        if let Err(e) = crate::backend::check_version(if_match, &user.0) {
            return backend_error(&e);
        }
        let read = crate::backend::version_of(&user.0).map(str::to_owned);
        if let Err(e) = patch::apply(&mut user.0, ops) {
            return error(StatusCode::BAD_REQUEST, Some(e.scim_type), &e.message);
        }
        let resp = replace(call, store, id, user, read.as_deref(), q, "patch").await;
        if resp.status() != StatusCode::PRECONDITION_FAILED || if_match.is_some() {
            return resp;
        }
    }
    error(
        StatusCode::CONFLICT,
        None,
        "the user kept changing while the PATCH was applied: send it again",
    )
}

/// Replaces the user `id` (a PUT, or the user a PATCH made) when it is at a version
/// `if_match` names, answers with it, and records the write as `operation`.
async fn replace(
    call: Call<'_>,
    store: &dyn crate::backend::Store,
    id: &str,
    user: UserDoc,
    if_match: Option<&str>,
    q: &Query,
    operation: &str,
) -> Response<Body> {
    let sent = call.state.audit.is_enabled().then(|| user.clone());
    let result = store.replace(id, user, if_match).await;
    let resp = match &result {
        Ok(u) => with_etag(json(StatusCode::OK, SCIM_JSON, &q.project(resource(u))), u),
        Err(e) => backend_error(e),
    };
    let stored = result.as_ref().ok();
    audit(call, operation, Some(id), sent, stored, &resp).await;
    resp
}

/// Records a `/scim/v2` write that reached the store: what was sent (secrets redacted; for a
/// PATCH, the user it made), the target, the outcome.
async fn audit(
    call: Call<'_>,
    operation: &str,
    target: Option<&str>,
    sent: Option<UserDoc>,
    stored: Option<&UserDoc>,
    resp: &Response<Body>,
) {
    let Call {
        state,
        caller,
        request_id,
    } = call;
    if !state.audit.is_enabled() {
        return;
    }
    let mut what = serde_json::Map::new();
    what.insert("operation".into(), Value::from(operation));
    what.insert("dialect".into(), Value::from("scim"));
    if let Some(id) = target {
        what.insert("target".into(), serde_json::json!({ "id": id }));
    }
    let who = stored
        .or(sent.as_ref())
        .and_then(|u| crate::canonical::Identity::of(u.exposed()));
    if let Some(doc) = &sent
        && let Ok(Value::Object(mut m)) = serde_json::to_value(doc)
    {
        crate::backend::strip_server_owned(&mut m);
        what.insert("changes".into(), Value::Object(m));
    }
    let status = resp.status();
    let error = (status.as_u16() >= 400).then(|| status.canonical_reason().unwrap_or("failed"));
    let ctx = crate::audit::Context {
        request_id,
        caller,
        route: "/scim/v2/Users",
    };
    let id = stored.and_then(UserDoc::id);
    state
        .audit
        .record(ctx, what, who, status.as_u16(), error, id)
        .await;
}

/// Parses a SCIM request body (the stack checked its media type and size): bounded depth, no
/// duplicate members, an object; else the `invalidSyntax` answer.
fn read_doc(body: &[u8], limits: &crate::config::Limits) -> Result<UserDoc, Box<Response<Body>>> {
    let detail = match crate::json::parse_strict(body, limits.max_json_depth) {
        Ok(Value::Object(m)) => return Ok(UserDoc(m)),
        Ok(_) => "the body must be a JSON object".to_owned(),
        Err(e) => e.to_string(),
    };
    Err(Box::new(error(
        StatusCode::BAD_REQUEST,
        Some("invalidSyntax"),
        &detail,
    )))
}

/// Users matching a query, projected, as a ListResponse.
async fn search(store: &dyn crate::backend::Store, q: Query) -> Response<Body> {
    let query = match q.resolve(&schemas::USER) {
        Ok(query) => query,
        Err(resp) => return *resp,
    };
    let start = query.start + 1;
    match store.query(query).await {
        Ok((users, total)) => {
            let items: Vec<Value> = users.iter().map(|u| q.project(resource(u))).collect();
            json(StatusCode::OK, SCIM_JSON, &list(items, start, total))
        }
        Err(e) => backend_error(&e),
    }
}

/// A search at the root (RFC 7644 §3.4.3): users, then groups, each filtered and sorted by
/// its own schema (a filter naming an attribute one of them lacks selects none of it; one that
/// neither has is the error), paged as one list.
async fn search_all(store: &dyn crate::backend::Store, q: Query) -> Response<Body> {
    let users = q.resolve(&schemas::USER);
    let groups = store.group_store().map(|g| (g, q.resolve(&schemas::GROUP)));
    let (start, count) = (q.start_index.max(1) - 1, q.count);
    let mut items = Vec::new();
    let mut total = 0;
    let mut resolved = false;
    match users {
        Ok(uq) => {
            resolved = true;
            match store.query(uq).await {
                Ok((page, n)) => {
                    items.extend(page.iter().map(|u| q.project(resource(u))));
                    total += n;
                }
                Err(e) => return backend_error(&e),
            }
        }
        Err(resp) if !matches!(groups, Some((_, Ok(_)))) => return *resp,
        Err(_) => {}
    }
    if let Some((g, Ok(mut gq))) = groups {
        resolved = true;
        gq.start = start.saturating_sub(total);
        gq.count = count.saturating_sub(items.len());
        match g.all_groups().await {
            Ok(all) => {
                let (page, n) = gq.select_by(all, |g| g);
                items.extend(page.into_iter().map(|g| groups::shown(g, &q)));
                total += n;
            }
            Err(e) => return backend_error(&e),
        }
    }
    if !resolved {
        return error(
            StatusCode::BAD_REQUEST,
            Some("invalidFilter"),
            "no resource type has this filter's attributes",
        );
    }
    json(StatusCode::OK, SCIM_JSON, &list(items, start + 1, total))
}

/// `filter`, `startIndex`, `count`, `attributes` and `excludedAttributes` of a request.
#[derive(Default)]
struct Query {
    filter: Option<String>,
    sort_by: Option<String>,
    sort_order: Option<String>,
    start_index: usize,
    count: usize,
    attributes: Option<String>,
    excluded: Option<String>,
}

impl Query {
    /// The filter and the sort resolved against a resource's schemas, and the page; else the
    /// `invalidFilter` / `invalidPath` answer naming the position.
    fn resolve(
        &self,
        schemas: &schemas::Schemas,
    ) -> Result<crate::backend::Query, Box<Response<Body>>> {
        let refuse = |e: crate::filter::FilterError| {
            Box::new(error(
                StatusCode::BAD_REQUEST,
                Some(e.scim_type),
                &e.message,
            ))
        };
        let filter = match self.filter.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(f) => Some(crate::filter::parse(f, schemas).map_err(refuse)?),
        };
        let sort = match self.sort_by.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(by) => Some(
                crate::filter::Sort::parse(by, self.sort_order.as_deref(), schemas)
                    .map_err(refuse)?,
            ),
        };
        Ok(crate::backend::Query {
            filter,
            sort,
            start: self.start_index.max(1) - 1,
            count: self.count,
        })
    }

    /// Projects one resource as the query asks.
    fn project(&self, resource: Value) -> Value {
        project::project(
            resource,
            self.attributes.as_deref(),
            self.excluded.as_deref(),
        )
    }

    /// The query of a `POST /.search` body (RFC 7644 §3.4.3).
    fn from_search_request(body: &Value) -> Self {
        let list = |k: &str| match body.get(k) {
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        let num = |k: &str, d: usize| {
            body.get(k)
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(d)
        };
        Query {
            filter: body
                .get("filter")
                .and_then(Value::as_str)
                .map(str::to_owned),
            sort_by: body
                .get("sortBy")
                .and_then(Value::as_str)
                .map(str::to_owned),
            sort_order: body
                .get("sortOrder")
                .and_then(Value::as_str)
                .map(str::to_owned),
            start_index: num("startIndex", 1),
            count: num("count", 100).min(MAX_RESULTS),
            attributes: list("attributes"),
            excluded: list("excludedAttributes"),
        }
    }

    fn parse(q: &str) -> Self {
        let mut out = Query {
            start_index: 1,
            count: 100,
            ..Query::default()
        };
        for pair in q.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned();
            match k {
                "filter" => out.filter = Some(v),
                // RFC 7644 §3.4.2.4: a startIndex below 1 is 1, a negative count is 0.
                "startIndex" => {
                    out.start_index = v
                        .trim()
                        .parse::<i64>()
                        .map_or(1, |n| usize::try_from(n).unwrap_or(1))
                }
                "count" => {
                    out.count = v
                        .trim()
                        .parse::<i64>()
                        .map_or(100, |n| usize::try_from(n).unwrap_or(0).min(MAX_RESULTS));
                }
                "sortBy" => out.sort_by = Some(v),
                "sortOrder" => out.sort_order = Some(v),
                "attributes" => out.attributes = Some(v),
                "excludedAttributes" => out.excluded = Some(v),
                _ => {}
            }
        }
        out
    }
}

fn list(items: Vec<Value>, start: usize, total: usize) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": items.len(),
        "Resources": items,
    })
}

fn service_provider_config() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": true},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [],
        "meta": {"resourceType": "ServiceProviderConfig", "location": "/scim/v2/ServiceProviderConfig"}
    })
}

fn group_resource_type() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": "Group",
        "name": "Group",
        "endpoint": "/Groups",
        "schema": "urn:ietf:params:scim:schemas:core:2.0:Group",
        "schemaExtensions": [],
        "meta": {"resourceType": "ResourceType", "location": "/scim/v2/ResourceTypes/Group"}
    })
}

fn resource_type() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "schema": "urn:ietf:params:scim:schemas:core:2.0:User",
        "schemaExtensions": [
            {"schema": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "required": false},
            {"schema": crate::canonical::EXT_SCHEMA, "required": false}
        ],
        "meta": {"resourceType": "ResourceType", "location": "/scim/v2/ResourceTypes/User"}
    })
}
