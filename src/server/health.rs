//! `GET /healthz` (the process answers) and `GET /readyz` (config loaded, backend reachable).

use hyper::{Method, Response, StatusCode};
use serde_json::json;

use super::State;
use super::http::{Body, json};

/// Answers a health probe.
pub async fn handle(state: &State, method: &Method, path: &str) -> Response<Body> {
    if method != Method::GET && method != Method::HEAD {
        let mut r = super::http::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        r.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("GET, HEAD"),
        );
        return r;
    }
    if path == "/healthz" {
        return json(StatusCode::OK, "application/json", &json!({"status": "ok"}));
    }
    let timeout = std::time::Duration::from_secs(2);
    match tokio::time::timeout(timeout, state.backend.ready()).await {
        Ok(Ok(())) => json(
            StatusCode::OK,
            "application/json",
            &json!({"status": "ready", "backend": state.backend.kind(), "dialects": state.mappings.mappings.len()}),
        ),
        Ok(Err(e)) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            "application/json",
            &json!({"status": "not ready", "backend": state.backend.kind(), "error": e.to_string()}),
        ),
        Err(_) => json(
            StatusCode::SERVICE_UNAVAILABLE,
            "application/json",
            &json!({"status": "not ready", "backend": state.backend.kind(), "error": "backend did not answer in time"}),
        ),
    }
}
