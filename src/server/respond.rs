//! The one place a refusal becomes an answer: in the dialect's own error shape for a dialect
//! route, as a SCIM error for `/scim/v2`, as plain JSON elsewhere; counted, logged, and with
//! `Retry-After` when the gateway sheds load.

use hyper::header::{HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::http::{Body, from_dialect};
use super::ingress::{Ingress, Routed};
use crate::canonical::UserDoc;
use crate::exchange::Unrouted;
use crate::mapping::render::ErrorContext;
use crate::rejection::{Outcome, Rejection};

/// The SCIM media type.
pub const SCIM_JSON: &str = "application/scim+json";
const SCIM_ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// The users a refusal may name in a dialect's error body (the target, and the user's
/// identifying attributes; never a secret).
#[derive(Default, Clone, Copy)]
pub struct About<'a> {
    /// The operation's target.
    pub target: Option<&'a UserDoc>,
    /// The user's identifying attributes.
    pub user: Option<&'a UserDoc>,
}

/// The answer to `rej` for the request `routed` describes.
pub fn refuse(routed: &Routed, rej: &Rejection, about: About<'_>) -> Response<Body> {
    let metrics = &routed.state.metrics;
    let mut resp = match &routed.ingress {
        Ingress::Dialect(exchange) => {
            metrics.rejection(&exchange.mapping.dialect, rej.rule);
            let ctx = ErrorContext {
                path: routed.path(),
                request_id: routed.request_id(),
                target: about.target,
                user: about.user,
            };
            from_dialect(exchange.refuse(rej, &ctx))
        }
        Ingress::Unrouted(Unrouted::MethodNotAllowed { mapping, .. }) => {
            let ctx = ErrorContext {
                path: routed.path(),
                request_id: routed.request_id(),
                ..ErrorContext::default()
            };
            from_dialect(mapping.error_response(rej, &ctx))
        }
        Ingress::Scim(_) => {
            metrics.rejection(metrics.scim_label(), rej.rule);
            let mut r = scim_error(
                StatusCode::from_u16(rej.outcome.default_status())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                scim_type(rej),
                &rej.message,
            );
            // As a dialect's 401 carries its `[auth] challenge`.
            if rej.outcome == Outcome::Unauthorized
                && let Some(c) = &super::scim::auth().challenge
                && let Ok(v) = HeaderValue::from_str(c)
            {
                r.headers_mut().insert(hyper::header::WWW_AUTHENTICATE, v);
            }
            r
        }
        Ingress::Unrouted(Unrouted::NotFound) | Ingress::Health | Ingress::Metrics => plain(rej),
    };
    if rej.outcome == Outcome::BackendUnavailable {
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    if rej.outcome != Outcome::Validation {
        tracing::info!(
            request_id = %routed.request_id(),
            dialect = routed.dialect().map_or("scim", |d| &**d),
            outcome = rej.outcome.as_str(),
            rule = rej.rule,
            status = resp.status().as_u16(),
            "refused"
        );
    }
    resp
}

/// The RFC 7644 `scimType` a refusal carries: its rule, when the rule is one of the keywords.
fn scim_type(rej: &Rejection) -> Option<&'static str> {
    const KEYWORDS: [&str; 9] = [
        "invalidFilter",
        "tooMany",
        "uniqueness",
        "mutability",
        "invalidSyntax",
        "invalidPath",
        "noTarget",
        "invalidValue",
        "sensitive",
    ];
    KEYWORDS.into_iter().find(|k| *k == rej.rule)
}

/// A SCIM error answer (RFC 7644 §3.12).
pub fn scim_error(status: StatusCode, scim_type: Option<&str>, detail: &str) -> Response<Body> {
    let mut body =
        json!({"schemas": [SCIM_ERROR], "status": status.as_u16().to_string(), "detail": detail});
    if let (Some(t), Value::Object(m)) = (scim_type, &mut body) {
        m.insert("scimType".into(), Value::String(t.into()));
    }
    super::http::json(status, SCIM_JSON, &body)
}

/// A refusal outside any dialect: `{"error", "message"}` with the outcome's status.
fn plain(rej: &Rejection) -> Response<Body> {
    let status =
        StatusCode::from_u16(rej.outcome.default_status()).unwrap_or(StatusCode::BAD_REQUEST);
    super::http::json(
        status,
        "application/json",
        &json!({"error": status.canonical_reason().unwrap_or(""), "message": rej.message}),
    )
}

/// The answer for a request no route takes: the dialect's 405 (with `Allow`), or a 404.
pub fn unrouted(routed: &Routed, method: &hyper::Method) -> Response<Body> {
    let Ingress::Unrouted(u) = &routed.ingress else {
        return not_found(routed.path());
    };
    let ctx = ErrorContext {
        path: routed.path(),
        request_id: routed.request_id(),
        ..ErrorContext::default()
    };
    match u.answer(method, &ctx) {
        Some(r) => from_dialect(r),
        None => not_found(routed.path()),
    }
}

fn not_found(path: &str) -> Response<Body> {
    super::http::json(
        StatusCode::NOT_FOUND,
        "application/json",
        &json!({"error": "Not Found", "message": "no route for this path", "path": path}),
    )
}
