//! The `/scim/v2` ingress over the canonical store (RFC 7644): a user created through any
//! vendor dialect is visible and editable as SCIM.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::State;
use super::http::{Body, json};
use crate::backend::BackendError;
use crate::canonical::UserDoc;

const SCIM_JSON: &str = "application/scim+json";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// A SCIM error answer.
fn error(status: StatusCode, scim_type: Option<&str>, detail: &str) -> Response<Body> {
    let mut body =
        json!({"schemas": [ERROR_SCHEMA], "status": status.as_u16().to_string(), "detail": detail});
    if let (Some(t), Value::Object(m)) = (scim_type, &mut body) {
        m.insert("scimType".into(), Value::String(t.into()));
    }
    json(status, SCIM_JSON, &body)
}

/// A stored user as a SCIM resource: secrets are never returned.
fn resource(user: &UserDoc) -> Value {
    Value::Object(user.redacted_without_secrets())
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
    }
}

/// Handles a `/scim/v2` request.
pub async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let Some(store) = state.backend.store() else {
        return error(
            StatusCode::NOT_IMPLEMENTED,
            None,
            "the configured backend is not a canonical store",
        );
    };
    let path = req.uri().path().trim_end_matches('/');
    let rest = path.strip_prefix("/scim/v2").unwrap_or("");
    match (req.method(), rest) {
        (&Method::GET, p) if p.starts_with("/Users/") => {
            let id = &p["/Users/".len()..];
            match store.get(id).await {
                Ok(Some(u)) => json(StatusCode::OK, SCIM_JSON, &resource(&u)),
                Ok(None) => error(StatusCode::NOT_FOUND, None, "no such user"),
                Err(e) => backend_error(&e),
            }
        }
        _ => error(StatusCode::NOT_FOUND, None, "no such resource"),
    }
}
