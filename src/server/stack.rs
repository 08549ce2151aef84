//! The one server stack every request goes through, whatever its ingress (a dialect route,
//! `/scim/v2`, health, metrics). Built in [`stack`], outermost layer first; each layer says
//! why it sits where it does. Refusals become answers in [`super::respond`] only.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::FutureExt;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_LENGTH, HeaderName, HeaderValue, TRANSFER_ENCODING};
use hyper::{HeaderMap, Request, Response, StatusCode};
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tracing::Instrument;

use super::http::{Body, BodyError, is_json, read_body};
use super::idempotency::{self, Begin, Kept};
use super::ingress::{Ingress, Routed, decide};
use super::layer::{Handler, IntoTower, Middleware, Req, Then, middleware};
use super::respond::{About, refuse};
use super::{Shared, State};
use crate::rejection::Rejection;

/// The target of the per-request log line (`observe`), for code that asks whether it is
/// written.
pub const LOG_TARGET: &str = module_path!();

/// The stack for one connection from `peer`, around `handler` (the gateway's is
/// [`super::Handle`]; tests put others there).
pub fn stack<H: Handler<Bytes>>(
    state: Shared,
    peer: SocketAddr,
    handler: H,
) -> impl tower::Service<
    Request<Incoming>,
    Response = Response<Body>,
    Error = std::convert::Infallible,
    Future: Send,
> + Clone {
    let sensitive = sensitive_headers(&state.load());
    ServiceBuilder::new()
        // Request ids first, so that every answer below — a refusal, a panic's 500 — carries
        // the `X-Request-Id` its log lines and audit records are filed under.
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(PropagateRequestIdLayer::x_request_id())
        // Credential headers (every mapping's `[auth]` headers, Authorization, Cookie) are
        // marked sensitive before anything below can print a request.
        .layer(SetSensitiveRequestHeadersLayer::from_shared(sensitive))
        // The layers below are composed statically: one state machine, one allocation per
        // request (see `layer`).
        .layer(IntoTower)
        // Routing: one state snapshot for the whole request (a reload mid-request changes
        // nothing for it) and the ingress decided once; every layer below reads them.
        .layer(Then(Route { state, peer }))
        // One span, one set of metrics and one log line per request, for every ingress. Above
        // the panic guard, so that a panic's 500 is counted and logged like any answer.
        .layer(Then(Observe))
        // Panic guard: a panic below answers 500 in the caller's dialect and is counted; the
        // connection lives on.
        .layer(Then(Guard))
        // Answers given before the body was read close the connection (the unread rest of a
        // body would be taken for the next request).
        .layer(Then(CloseUnread))
        // Shedding before any work: at `max_in_flight` a dialect or SCIM request is a 503
        // with `Retry-After`, and costs no credential check and no body read.
        .layer(Then(Shed))
        // Credentials (401) and roles (403) before the body, as the dialects' contracts order
        // them: an unknown caller cannot make the gateway read a body.
        .layer(Then(Authenticate))
        // The body: media type (415), size (413), and arrival within the request timeout
        // (408) — the request is whole in memory below this layer.
        .layer(Then(ReadBody))
        // Idempotency needs the caller and the whole body: a retried write with the same key
        // and body gets the first answer, before any handler work.
        .layer(Then(Idempotent))
        .service(handler)
}

/// The headers never to print: each mapping's credential headers, and the usual ones.
fn sensitive_headers(state: &State) -> Arc<[HeaderName]> {
    let mut names = vec![
        hyper::header::AUTHORIZATION,
        hyper::header::COOKIE,
        hyper::header::PROXY_AUTHORIZATION,
    ];
    for m in &state.mappings.mappings {
        for n in m.auth.header_names() {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
    }
    Arc::from(names)
}

/// The `Routed` of a request (the routing layer put it there).
fn routed<B>(req: &Request<B>) -> Option<Arc<Routed>> {
    req.extensions().get::<Arc<Routed>>().cloned()
}

/// The routing layer: decides the ingress against the state of the moment.
#[derive(Clone)]
struct Route {
    state: Shared,
    peer: SocketAddr,
}

impl<S: Handler<Incoming>> Middleware<Incoming, S> for Route {
    fn call(
        &self,
        req: Req<Incoming>,
        next: &S,
    ) -> impl std::future::Future<Output = Response<Body>> + Send {
        route(self.state.load_full(), self.peer, req, next)
    }
}

async fn route<S: Handler<Incoming>>(
    state: Arc<State>,
    peer: SocketAddr,
    mut req: Req<Incoming>,
    next: &S,
) -> Response<Body> {
    let ingress = decide(&state, req.method(), req.uri());
    let routed = Routed {
        ingress,
        uri: req.uri().clone(),
        // As the request-id layer above left it: the caller's, or the one it made.
        request_id: req.headers().get("x-request-id").cloned(),
        peer,
        started: Instant::now(),
        caller: OnceLock::new(),
        user: OnceLock::new(),
        state,
    };
    req.extensions_mut().insert(Arc::new(routed));
    next.handle(req).await
}

middleware!(
    /// One span, the metrics and the log line of a request.
    Observe, Incoming, observe
);

async fn observe<S: Handler<Incoming>>(req: Req<Incoming>, next: &S) -> Response<Body> {
    let Some(r) = routed(&req) else {
        return next.handle(req).await;
    };
    let (dialect, route, operation) = match &r.ingress {
        Ingress::Dialect(e) => (
            Some(Arc::clone(&e.mapping.dialect)),
            e.spec().map(|s| Arc::clone(&s.name)),
            e.spec().map_or("", |s| s.kind.as_str()),
        ),
        Ingress::Scim(c) => (
            Some(r.state.metrics.scim_label().clone()),
            None,
            c.operation,
        ),
        _ => (None, None, ""),
    };
    let Some(dialect) = dialect else {
        return next.handle(req).await;
    };
    let _in_flight = r.state.metrics.in_flight();
    let span = tracing::info_span!("request", request_id = %r.request_id(), dialect = %dialect);
    let resp = next.handle(req).instrument(span).await;
    let status = resp.status().as_u16();
    let took = r.started.elapsed();
    let caller = r.caller().map_or("", |c| c.name.as_str());
    let user = r.user.get().map_or("", String::as_str);
    let route_label: &str = match (&r.ingress, &route) {
        (Ingress::Scim(c), _) => c.route,
        (_, Some(name)) => name,
        _ => "",
    };
    match &route {
        Some(name) => r
            .state
            .metrics
            .request(&dialect, name, operation, status, took),
        None => r.state.metrics.scim_request(operation, status, took),
    }
    tracing::info!(
        request_id = %r.request_id(),
        peer = %r.peer,
        dialect = %dialect,
        route = route_label,
        operation,
        caller,
        user,
        status,
        latency_us = took.as_micros() as u64,
        "request"
    );
    resp
}

middleware!(
    /// A panic below becomes a 500 in the caller's dialect.
    Guard, Incoming, guard
);

async fn guard<S: Handler<Incoming>>(req: Req<Incoming>, next: &S) -> Response<Body> {
    let r = routed(&req);
    match AssertUnwindSafe(next.handle(req)).catch_unwind().await {
        Ok(resp) => resp,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("");
            tracing::error!(panic = what, "a request handler panicked; answered 500");
            let Some(r) = r else {
                return super::http::text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n");
            };
            r.state.metrics.panic();
            refuse(&r, &Rejection::internal(), About::default())
        }
    }
}

middleware!(
    /// `Connection: close` on answers given before the body was read.
    CloseUnread, Incoming, close_unread
);

async fn close_unread<S: Handler<Incoming>>(req: Req<Incoming>, next: &S) -> Response<Body> {
    let announced = announces_body(req.headers());
    let mut resp = next.handle(req).await;
    if announced && answers_before_reading(resp.status()) {
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// The request says a body follows.
fn announces_body(h: &HeaderMap) -> bool {
    h.contains_key(TRANSFER_ENCODING)
        || h.get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

/// Statuses the layers may give before reading the whole body.
fn answers_before_reading(s: StatusCode) -> bool {
    matches!(s.as_u16(), 401 | 403 | 404 | 405 | 408 | 413 | 415 | 503)
}

middleware!(
    /// `max_in_flight`.
    Shed, Incoming, shed
);

async fn shed<S: Handler<Incoming>>(req: Req<Incoming>, next: &S) -> Response<Body> {
    let Some(r) = routed(&req).filter(|r| r.is_served()) else {
        return next.handle(req).await;
    };
    let Ok(_permit) = r.state.in_flight.try_acquire() else {
        return refuse(&r, &Rejection::at_capacity(), About::default());
    };
    next.handle(req).await
}

middleware!(
    /// Credentials and roles.
    Authenticate, Incoming, authenticate
);

async fn authenticate<S: Handler<Incoming>>(req: Req<Incoming>, next: &S) -> Response<Body> {
    let Some(r) = routed(&req).filter(|r| r.is_served()) else {
        return next.handle(req).await;
    };
    let creds = &r.state.config.credentials;
    let found = match &r.ingress {
        Ingress::Dialect(e) => e.authorize(creds, req.headers()).map(Some),
        Ingress::Scim(c) if c.discovery => Ok(None),
        Ingress::Scim(c) => scim_caller(creds, req.headers(), c.writes).map(Some),
        _ => Ok(None),
    };
    let caller = match found {
        Err(rej) => return refuse(&r, &rej, About::default()),
        Ok(None) => return next.handle(req).await,
        Ok(Some(c)) => creds.iter().position(|x| std::ptr::eq(x, c)),
    };
    // The credential found is one of `creds`; were it not, it would be no caller at all.
    let Some(caller) = caller else {
        return refuse(&r, &Rejection::bad_credentials(), About::default());
    };
    let _ = r.caller.set(caller);
    next.handle(req).await
}

/// The `scim` credential presented as [`super::scim::auth`] says; a write needs the role
/// `user-administrator`.
fn scim_caller<'c>(
    creds: &'c [crate::config::Credential],
    headers: &HeaderMap,
    writes: bool,
) -> Result<&'c crate::config::Credential, Rejection> {
    let token = super::scim::auth()
        .token(headers)
        .ok_or_else(Rejection::no_credentials)?;
    let cred =
        crate::exchange::credential(creds, "scim", token).ok_or_else(Rejection::bad_credentials)?;
    if writes && !cred.has_role("user-administrator") {
        return Err(Rejection::forbidden("change users"));
    }
    Ok(cred)
}

middleware!(
    /// Media type, size and arrival of the body.
    ReadBody, Incoming => Bytes, body
);

async fn body<S: Handler<Bytes>>(req: Req<Incoming>, next: &S) -> Response<Body> {
    let (parts, incoming) = (*req).into_parts();
    let Some(r) = parts
        .extensions
        .get::<Arc<Routed>>()
        .cloned()
        .filter(|r| r.takes_body(&parts.method))
    else {
        return next
            .handle(Box::new(Request::from_parts(parts, Bytes::new())))
            .await;
    };
    if !is_json(&parts.headers) {
        return refuse(&r, &Rejection::not_json(), About::default());
    }
    let limits = &r.state.config.limits;
    let deadline =
        Duration::from_millis(limits.request_timeout_ms).saturating_sub(r.started.elapsed());
    let bytes = match read_body(&parts.headers, incoming, limits.max_body_bytes, deadline).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            return refuse(
                &r,
                &Rejection::too_large(limits.max_body_bytes),
                About::default(),
            );
        }
        Err(BodyError::TimedOut) => {
            let rej = Rejection::body_too_slow(limits.request_timeout_ms);
            return refuse(&r, &rej, About::default());
        }
        Err(BodyError::Io) => return refuse(&r, &Rejection::unreadable_body(), About::default()),
    };
    next.handle(Box::new(Request::from_parts(parts, bytes)))
        .await
}

middleware!(
    /// `Idempotency-Key`.
    Idempotent, Bytes, idempotent
);

async fn idempotent<S: Handler<Bytes>>(req: Req<Bytes>, next: &S) -> Response<Body> {
    let Some(r) = routed(&req).filter(|r| r.writes()) else {
        return next.handle(req).await;
    };
    let Some(value) = req.headers().get(idempotency::HEADER) else {
        return next.handle(req).await;
    };
    let Some(key) = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= idempotency::MAX_KEY_LEN)
        .map(str::to_owned)
    else {
        return refuse(&r, &Rejection::bad_idempotency_key(), About::default());
    };
    let caller: Arc<str> = r
        .caller()
        .map_or_else(|| Arc::from(""), |c| Arc::from(c.name.as_str()));
    let windows = idempotency::Windows::of(&r.state.config.limits);
    let guard = match idempotency::begin(&r.state.idempotency, windows, &caller, &key, req.body())
        .await
    {
        Begin::Replay(kept) => return replay(kept),
        Begin::Running => return refuse(&r, &Rejection::idempotency_running(), About::default()),
        Begin::Mismatch => {
            return refuse(&r, &Rejection::idempotency_mismatch(), About::default());
        }
        Begin::Unavailable(e) => {
            let rej = Rejection::new(
                crate::rejection::Outcome::BackendUnavailable,
                "unavailable",
                format!("the idempotency keys cannot be read: {e}"),
            );
            return refuse(&r, &rej, About::default());
        }
        Begin::Fresh(g) => g,
    };
    let resp = next.handle(req).await;
    guard
        .finish(Kept {
            status: resp.status().as_u16(),
            content_type: resp.headers().get(hyper::header::CONTENT_TYPE).cloned(),
            body: resp.body().clone().into_inner().unwrap_or_default(),
        })
        .await;
    resp
}

/// A kept answer, sent again for a retried request.
fn replay(kept: Kept) -> Response<Body> {
    let mut r = Response::new(Body::new(kept.body));
    *r.status_mut() = StatusCode::from_u16(kept.status).unwrap_or(StatusCode::OK);
    if let Some(ct) = kept.content_type {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, ct);
    }
    r.headers_mut().insert(
        HeaderName::from_static("idempotent-replayed"),
        HeaderValue::from_static("true"),
    );
    r
}
