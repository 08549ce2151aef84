//! The routing decision, made once per request by the stack's routing layer and read by every
//! layer after it: which ingress the request is for (health, metrics, `/scim/v2`, a dialect
//! route), with the state snapshot it is served from.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use hyper::Method;
use hyper::header::HeaderValue;

use super::State;
use crate::exchange::{Exchange, Unrouted};

/// What a request is for.
#[derive(Debug, Clone)]
pub enum Ingress {
    /// `/healthz`, `/readyz`.
    Health,
    /// `GET /metrics`.
    Metrics,
    /// `/scim/v2/…`.
    Scim(ScimCall),
    /// A dialect route.
    Dialect(Exchange),
    /// No route: a dialect's path with another method (its 405), or no dialect's path (404).
    Unrouted(Unrouted),
}

/// A `/scim/v2` request, classified.
#[derive(Debug, Clone, Copy)]
pub struct ScimCall {
    /// `read`, `create`, `replace`, `update`, `delete` (metrics, logs).
    pub operation: &'static str,
    /// The resource (`Users/{id}`, `Schemas`…), for the log line; never the id.
    pub route: &'static str,
    /// Discovery (`ServiceProviderConfig`, `ResourceTypes`, `Schemas`): open to anyone.
    pub discovery: bool,
    /// Changes users: needs the `user-administrator` role, may carry an `Idempotency-Key`.
    pub writes: bool,
}

/// The routing decision and what every later layer needs with it.
pub struct Routed {
    /// The state the whole request is served from (a reload mid-request does not change it).
    pub state: Arc<State>,
    /// The ingress.
    pub ingress: Ingress,
    /// The request's URI (its path, for error bodies).
    pub uri: http::Uri,
    /// The request id (the caller's `X-Request-Id`, or the one the stack made).
    pub request_id: Option<HeaderValue>,
    /// The peer's address.
    pub peer: std::net::SocketAddr,
    /// When the request arrived.
    pub started: Instant,
    /// The caller the credentials layer found: an index into `config.credentials`.
    pub caller: OnceLock<usize>,
    /// The user the request is about (its userName, else what its target names), as the
    /// handler found it, for the request's log line.
    pub user: OnceLock<String>,
}

impl Routed {
    /// The request's path.
    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// The request id, or empty.
    pub fn request_id(&self) -> &str {
        self.request_id
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The caller's credential, once the credentials layer found one.
    pub fn caller(&self) -> Option<&crate::config::Credential> {
        self.state.config.credentials.get(*self.caller.get()?)
    }

    /// The dialect label for metrics and logs (`scim` for `/scim/v2`, empty otherwise).
    pub fn dialect(&self) -> Option<&Arc<str>> {
        match &self.ingress {
            Ingress::Dialect(e) => Some(&e.mapping.dialect),
            Ingress::Unrouted(Unrouted::MethodNotAllowed { mapping, .. }) => Some(&mapping.dialect),
            _ => None,
        }
    }

    /// Whether the request is served by a handler that does work: only these are shed,
    /// authenticated, bounded and made idempotent.
    pub fn is_served(&self) -> bool {
        matches!(self.ingress, Ingress::Dialect(_) | Ingress::Scim(_))
    }

    /// Whether the handler reads a body (and so the media type and size are checked).
    pub fn takes_body(&self, method: &Method) -> bool {
        match &self.ingress {
            Ingress::Dialect(e) => e.kind().takes_body(),
            // Discovery endpoints answer 405 to a write, whatever its body.
            Ingress::Scim(c) => {
                !c.discovery
                    && (*method == Method::POST
                        || *method == Method::PUT
                        || *method == Method::PATCH)
            }
            _ => false,
        }
    }

    /// Whether the request changes users (so an `Idempotency-Key` applies to it).
    pub fn writes(&self) -> bool {
        match &self.ingress {
            Ingress::Dialect(e) => e.kind().write().is_some(),
            Ingress::Scim(c) => c.writes,
            _ => false,
        }
    }
}

/// Decides the ingress of `method` + `uri` against `state`'s mappings.
pub fn decide(state: &State, method: &Method, uri: &http::Uri) -> Ingress {
    let path = uri.path();
    if path == "/healthz" || path == "/readyz" {
        return Ingress::Health;
    }
    if path == "/metrics" && method == Method::GET {
        return Ingress::Metrics;
    }
    if path == "/scim/v2" || path.starts_with("/scim/v2/") {
        return Ingress::Scim(scim_call(method, path));
    }
    match Exchange::route(&state.mappings, method, path) {
        Ok(e) => Ingress::Dialect(e.with_query(uri.query())),
        Err(u) => Ingress::Unrouted(u),
    }
}

fn scim_call(method: &Method, path: &str) -> ScimCall {
    let rest = path.trim_start_matches("/scim/v2").trim_end_matches('/');
    let search = rest.ends_with("/.search");
    let resource = rest.trim_start_matches('/').split('/').next().unwrap_or("");
    let route = match resource {
        _ if search => ".search",
        "Users" if rest.matches('/').count() > 1 => "Users/{id}",
        "Users" => "Users",
        "Groups" => "Groups",
        "Schemas" => "Schemas",
        "ResourceTypes" => "ResourceTypes",
        "ServiceProviderConfig" => "ServiceProviderConfig",
        _ => "other",
    };
    let operation = match *method {
        Method::GET => "read",
        Method::POST if search => "read",
        Method::POST => "create",
        Method::PUT => "replace",
        Method::PATCH => "update",
        Method::DELETE => "delete",
        _ => "other",
    };
    ScimCall {
        operation,
        route,
        discovery: matches!(route, "Schemas" | "ResourceTypes" | "ServiceProviderConfig"),
        writes: *method != Method::GET && *method != Method::HEAD && !search,
    }
}
