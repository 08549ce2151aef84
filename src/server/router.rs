//! The first decision for every request: health, the `/scim/v2` ingress, or a dialect route.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{CONNECTION, CONTENT_LENGTH, HeaderValue, TRANSFER_ENCODING};
use hyper::{HeaderMap, Request, Response, StatusCode};

use super::State;
use super::http::Body;

/// Routes one request. An answer given before the request's body was read (a refusal of the
/// caller, the path, the method, the media type or the size, or load shedding) closes the
/// connection and says so, as nginx does: the unread rest of the body would otherwise be taken
/// for the next request, and a client reusing the connection would find it gone.
pub async fn route(state: Arc<State>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let body_announced = announces_body(req.headers());
    let mut resp = dispatch(state, peer, req).await;
    if body_announced && answers_before_reading(resp.status()) {
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

/// Statuses the handlers may give before reading the whole body.
fn answers_before_reading(s: StatusCode) -> bool {
    matches!(s.as_u16(), 401 | 403 | 404 | 405 | 408 | 413 | 415 | 503)
}

async fn dispatch(state: Arc<State>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path();
    if path == "/healthz" || path == "/readyz" {
        return super::health::handle(&state, req).await;
    }
    if path == "/metrics" && req.method() == hyper::Method::GET {
        return super::http::text_with(
            hyper::StatusCode::OK,
            super::metrics::CONTENT_TYPE,
            state.metrics.render(&state.backend.gauges()),
        );
    }
    if path == "/scim/v2" || path.starts_with("/scim/v2/") {
        let started = std::time::Instant::now();
        let _in_flight = state.metrics.in_flight();
        let operation = match *req.method() {
            hyper::Method::GET => "read",
            hyper::Method::POST => "create",
            hyper::Method::PUT => "replace",
            hyper::Method::PATCH => "update",
            hyper::Method::DELETE => "delete",
            _ => "other",
        };
        let metrics = std::sync::Arc::clone(&state.metrics);
        let request_id = super::http::request_id(req.headers()).to_owned();
        let route = scim_route(path);
        let resp = super::scim::handle(state, req).await;
        metrics.scim_request(operation, resp.status().as_u16(), started.elapsed());
        tracing::info!(
            request_id = %request_id,
            %peer,
            dialect = "scim",
            route,
            operation,
            status = resp.status().as_u16(),
            latency_us = started.elapsed().as_micros() as u64,
            "request"
        );
        return resp;
    }
    super::gateway::handle(state, peer, req).await
}

/// The `/scim/v2` resource a path names, for the request log line (never the id itself).
fn scim_route(path: &str) -> &'static str {
    let rest = path.trim_start_matches("/scim/v2");
    if rest.ends_with("/.search") {
        return ".search";
    }
    match rest.trim_start_matches('/').split('/').next().unwrap_or("") {
        "Users" if rest.matches('/').count() > 1 => "Users/{id}",
        "Users" => "Users",
        "Groups" => "Groups",
        "Schemas" => "Schemas",
        "ResourceTypes" => "ResourceTypes",
        "ServiceProviderConfig" => "ServiceProviderConfig",
        _ => "other",
    }
}
