//! `/scim/v2/Groups` (RFC 7643 §4.2): create, read, list with filters, replace, PATCH of
//! `members` and `displayName`, delete — over the store's own groups, so that a group a
//! dialect's group operation changes is the group this endpoint shows.

use bytes::Bytes;
use hyper::{HeaderMap, Method, Response, StatusCode};
use serde_json::Value;

use super::{Call, Query, error, list, read_doc};
use crate::backend::{BackendError, GroupDoc, GroupStore, etag_matches, version_of};
use crate::canonical::schemas::GROUP;
use crate::server::http::{Body, json};
use crate::server::respond::SCIM_JSON;

fn group_error(e: &BackendError) -> Response<Body> {
    match e {
        BackendError::NotFound => error(StatusCode::NOT_FOUND, None, "no such group"),
        e => super::backend_error(e),
    }
}

/// A group as the query asks for it: members' `display` only when `attributes` names it.
pub(super) fn shown(mut g: GroupDoc, q: &Query) -> Value {
    let asked = q.attributes.as_deref().is_some_and(|a| {
        a.split(',')
            .any(|x| x.trim().eq_ignore_ascii_case("members.display"))
    });
    if !asked && let Some(Value::Array(members)) = g.get_mut("members") {
        for m in members.iter_mut().filter_map(Value::as_object_mut) {
            m.shift_remove("display");
        }
    }
    q.project(Value::Object(g))
}

fn answer(status: StatusCode, g: &GroupDoc, q: &Query) -> Response<Body> {
    let mut r = json(status, SCIM_JSON, &shown(g.clone(), q));
    if let Some(Ok(v)) = version_of(g).map(hyper::header::HeaderValue::from_str) {
        r.headers_mut().insert(hyper::header::ETAG, v);
    }
    r
}

/// Handles a request under `/scim/v2/Groups` (`rest` is the path after it).
pub(super) async fn handle(
    call: Call<'_>,
    store: &dyn GroupStore,
    method: &Method,
    rest: &str,
    headers: &HeaderMap,
    body: &Bytes,
    q: Query,
) -> Response<Body> {
    let limits = &call.state.config.limits;
    let header = |name: hyper::header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let if_match = header(hyper::header::IF_MATCH);
    match (method, rest) {
        (&Method::GET, "") => search(store, q).await,
        (&Method::POST, "/.search") => match read_doc(body, limits) {
            Ok(d) => search(store, Query::from_search_request(&Value::Object(d.0))).await,
            Err(resp) => *resp,
        },
        (&Method::POST, "") => {
            let doc = match read_doc(body, limits) {
                Ok(d) => d.0,
                Err(resp) => return *resp,
            };
            let resp = match store.create_group(doc).await {
                Ok(g) => {
                    let mut r = answer(StatusCode::CREATED, &g, &q);
                    if let Some(Ok(v)) = g.get("id").and_then(Value::as_str).map(|id| {
                        hyper::header::HeaderValue::from_str(&format!("/scim/v2/Groups/{id}"))
                    }) {
                        r.headers_mut().insert(hyper::header::LOCATION, v);
                    }
                    r
                }
                Err(e) => group_error(&e),
            };
            audit(call, "group-create", None, &resp).await;
            resp
        }
        (m, p) if p.starts_with('/') && !p[1..].contains('/') => {
            let id = percent_encoding::percent_decode_str(&p[1..])
                .decode_utf8_lossy()
                .into_owned();
            match *m {
                Method::GET => match store.get_group(&id).await {
                    Ok(Some(g)) => {
                        let current = version_of(&g).unwrap_or("");
                        if header(hyper::header::IF_NONE_MATCH)
                            .is_some_and(|h| etag_matches(h, current))
                        {
                            let mut r = answer(StatusCode::NOT_MODIFIED, &g, &q);
                            *r.body_mut() = Body::default();
                            return r;
                        }
                        answer(StatusCode::OK, &g, &q)
                    }
                    Ok(None) => error(StatusCode::NOT_FOUND, None, "no such group"),
                    Err(e) => group_error(&e),
                },
                Method::PUT => {
                    let doc = match read_doc(body, limits) {
                        Ok(d) => d.0,
                        Err(resp) => return *resp,
                    };
                    let resp = match store.replace_group(&id, doc, if_match).await {
                        Ok(g) => answer(StatusCode::OK, &g, &q),
                        Err(e) => group_error(&e),
                    };
                    audit(call, "group-replace", Some(&id), &resp).await;
                    resp
                }
                Method::PATCH => {
                    let ops = match read_doc(body, limits) {
                        Ok(d) => Value::Object(d.0),
                        Err(resp) => return *resp,
                    };
                    let resp = patch(store, &id, &ops, if_match, &q).await;
                    audit(call, "group-patch", Some(&id), &resp).await;
                    resp
                }
                Method::DELETE => {
                    let resp = match store.delete_group(&id, if_match).await {
                        Ok(true) => {
                            let mut r = Response::new(Body::default());
                            *r.status_mut() = StatusCode::NO_CONTENT;
                            r
                        }
                        Ok(false) => error(StatusCode::NOT_FOUND, None, "no such group"),
                        Err(e) => group_error(&e),
                    };
                    audit(call, "group-delete", Some(&id), &resp).await;
                    resp
                }
                _ => error(
                    StatusCode::METHOD_NOT_ALLOWED,
                    None,
                    "method not allowed on a group",
                ),
            }
        }
        _ => error(StatusCode::NOT_FOUND, None, "no such resource"),
    }
}

/// A PATCH: the group read, patched, written back at the version read (made again when it
/// changed in between, unless the client named a version itself). Entra's `remove` of
/// `members` with a `value` list and Okta's `members[value eq "…"]` both work.
async fn patch(
    store: &dyn GroupStore,
    id: &str,
    ops: &Value,
    if_match: Option<&str>,
    q: &Query,
) -> Response<Body> {
    for _ in 0..super::PATCH_ATTEMPTS {
        let mut g = match store.get_group(id).await {
            Ok(Some(g)) => g,
            Ok(None) => return error(StatusCode::NOT_FOUND, None, "no such group"),
            Err(e) => return group_error(&e),
        };
        if let Err(e) = crate::backend::check_version(if_match, &g) {
            return group_error(&e);
        }
        let read = version_of(&g).map(str::to_owned);
        if let Err(e) = super::patch::apply_with(&mut g, ops, &GROUP) {
            return error(StatusCode::BAD_REQUEST, Some(e.scim_type), &e.message);
        }
        match store.replace_group(id, g, read.as_deref()).await {
            Ok(g) => {
                // RFC 7644 §3.5.2: 204 is allowed; the resource is what Entra and Okta read.
                return answer(StatusCode::OK, &g, q);
            }
            Err(BackendError::Changed(_)) if if_match.is_none() => {}
            Err(e) => return group_error(&e),
        }
    }
    error(
        StatusCode::CONFLICT,
        None,
        "the group kept changing while the PATCH was applied: send it again",
    )
}

async fn search(store: &dyn GroupStore, q: Query) -> Response<Body> {
    let query = match q.resolve(&GROUP) {
        Ok(query) => query,
        Err(resp) => return *resp,
    };
    match store.all_groups().await {
        Ok(all) => {
            let (page, total) = query.select_by(all, |g| g);
            let start = query.start + 1;
            let items: Vec<Value> = page.into_iter().map(|g| shown(g, &q)).collect();
            json(StatusCode::OK, SCIM_JSON, &list(items, start, total))
        }
        Err(e) => group_error(&e),
    }
}

/// Records a `/scim/v2/Groups` write.
async fn audit(call: Call<'_>, operation: &str, target: Option<&str>, resp: &Response<Body>) {
    if !call.state.audit.is_enabled() {
        return;
    }
    let mut what = serde_json::Map::new();
    what.insert("operation".into(), Value::from(operation));
    what.insert("dialect".into(), Value::from("scim"));
    if let Some(id) = target {
        what.insert("target".into(), serde_json::json!({ "group": id }));
    }
    let status = resp.status();
    let failed = (status.as_u16() >= 400).then(|| status.canonical_reason().unwrap_or("failed"));
    let ctx = crate::audit::Context {
        request_id: call.request_id,
        caller: call.caller,
        route: "/scim/v2/Groups",
    };
    call.state
        .audit
        .record(ctx, what, None, status.as_u16(), failed, None)
        .await;
}
