//! The first decision for every request: health, the `/scim/v2` ingress, or a dialect route.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response};

use super::State;
use super::http::Body;

/// Routes one request.
pub async fn route(state: Arc<State>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
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
        let resp = super::scim::handle(state, req).await;
        metrics.scim_request(operation, resp.status().as_u16(), started.elapsed());
        return resp;
    }
    super::gateway::handle(state, peer, req).await
}
