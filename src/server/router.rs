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
    if path == "/scim/v2" || path.starts_with("/scim/v2/") {
        return super::scim::handle(state, req).await;
    }
    super::gateway::handle(state, peer, req).await
}
