//! A dialect request, end to end: auth → media type → body → translate → step-up password →
//! backend → the answer in the caller's dialect. The order of checks is the contract's:
//! 401, 403, 415, 413, 400, then what the backend finds (404, 400/409), then 502/503/504.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::{ALLOW, HeaderName, HeaderValue, RETRY_AFTER};
use hyper::{Request, Response, StatusCode};
use serde_json::Map;

use super::State;
use super::http::{Body, BodyError, from_dialect, is_json, read_body};
use super::idempotency::{self, Begin, Kept};
use crate::backend::BackendError;
use crate::canonical::{UserDoc, location};
use crate::dialect::{Outcome, Rejection};
use crate::mapping::render::ErrorContext;
use crate::mapping::{Mapping, RouteMatch};

/// What the metrics need to know of a request once it is answered.
#[derive(Default)]
struct Seen {
    route: Option<(Arc<str>, Arc<str>, &'static str)>,
}

/// Handles a request for a dialect route (or an unknown path), and counts it.
pub async fn handle(state: Arc<State>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let metrics = Arc::clone(&state.metrics);
    let _in_flight = metrics.in_flight();
    let mut seen = Seen::default();
    let resp = answer(state, peer, req, started, &mut seen).await;
    if let Some((dialect, route, operation)) = &seen.route {
        metrics.request(
            dialect,
            route,
            operation,
            resp.status().as_u16(),
            started.elapsed(),
        );
    }
    resp
}

async fn answer(
    state: Arc<State>,
    peer: SocketAddr,
    req: Request<Incoming>,
    started: Instant,
    seen: &mut Seen,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let request_id = super::http::request_id(&parts.headers);
    let path = parts.uri.path();
    let (mapping, route, params) = match state.mappings.route(&parts.method, path) {
        RouteMatch::Found {
            mapping,
            route,
            params,
        } => (Arc::clone(mapping), route, params),
        RouteMatch::MethodNotAllowed { mapping, allow } => {
            let rej = Rejection::new(
                Outcome::MethodNotAllowed,
                "method",
                format!("{} is not allowed on this path", parts.method),
            );
            let ctx = ErrorContext {
                path,
                request_id,
                ..Default::default()
            };
            let mut resp = from_dialect(mapping.error_response(&rej, &ctx));
            let allow: Vec<&str> = allow.iter().map(http::Method::as_str).collect();
            if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
                resp.headers_mut().insert(ALLOW, v);
            }
            return resp;
        }
        RouteMatch::NotFound => {
            return super::http::json(
                StatusCode::NOT_FOUND,
                "application/json",
                &serde_json::json!({"error": "Not Found", "message": "no route for this path", "path": path}),
            );
        }
    };
    let route_name = &*mapping.routes[route].name;
    let op_kind = mapping.routes[route].operation;
    seen.route = Some((
        Arc::clone(&mapping.dialect),
        Arc::clone(&mapping.routes[route].name),
        op_kind.as_str(),
    ));
    let answer = Answer {
        mapping: &mapping,
        path,
        request_id,
        metrics: &state.metrics,
    };

    // Load shedding (503 + Retry-After) before any work, once the dialect is known.
    let Ok(_permit) = state.in_flight.try_acquire() else {
        return answer.reject(
            &Rejection::new(
                Outcome::BackendUnavailable,
                "max_in_flight",
                "the gateway is at capacity; try again shortly",
            ),
            None,
            None,
        );
    };

    // Credentials (401), then the role the operation needs (403).
    let Some(token) = mapping.auth.token(&parts.headers) else {
        return answer.reject(
            &Rejection::new(Outcome::Unauthorized, "auth", "credentials are missing"),
            None,
            None,
        );
    };
    let Some(cred) = state.credential(&mapping.dialect, token) else {
        return answer.reject(
            &Rejection::new(
                Outcome::Unauthorized,
                "auth",
                "the credentials are not valid",
            ),
            None,
            None,
        );
    };
    let needed = mapping.auth.roles_for(op_kind);
    if !needed.is_empty() && !needed.iter().any(|r| cred.roles.iter().any(|c| **c == **r)) {
        return answer.reject(
            &Rejection::new(
                Outcome::Forbidden,
                "role",
                format!("the caller may not {} users", op_kind.as_str()),
            ),
            None,
            None,
        );
    }

    // Media type (415), size (413), then the body through the mapping (400).
    if !is_json(&parts.headers) {
        return answer.reject(
            &Rejection::new(
                Outcome::UnsupportedMediaType,
                "media_type",
                "Content-Type must be application/json (UTF-8)",
            ),
            None,
            None,
        );
    }
    let limits = &state.config.limits;
    let deadline =
        Duration::from_millis(limits.request_timeout_ms).saturating_sub(started.elapsed());
    let bytes = match read_body(&parts.headers, body, limits.max_body_bytes, deadline).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            return answer.reject(
                &Rejection::new(
                    Outcome::PayloadTooLarge,
                    "max_body_bytes",
                    format!("the body is larger than {} bytes", limits.max_body_bytes),
                ),
                None,
                None,
            );
        }
        Err(BodyError::TimedOut) => {
            return answer.reject(
                &Rejection::new(
                    Outcome::RequestTimeout,
                    "request_timeout_ms",
                    format!(
                        "the body did not arrive within {} ms",
                        limits.request_timeout_ms
                    ),
                ),
                None,
                None,
            );
        }
        Err(BodyError::Io) => {
            return answer.reject(
                &Rejection::new(Outcome::Validation, "body", "the body could not be read"),
                None,
                None,
            );
        }
    };
    // Idempotency-Key: a retried write with the same key and body gets the first answer.
    let guard = match parts.headers.get(idempotency::HEADER) {
        None => None,
        Some(v) => {
            let key = v
                .to_str()
                .ok()
                .filter(|k| !k.is_empty() && k.len() <= idempotency::MAX_KEY_LEN);
            let Some(key) = key else {
                return answer.reject(
                    &Rejection::invalid(
                        "Idempotency-Key",
                        "idempotency_key",
                        "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
                    ),
                    None,
                    None,
                );
            };
            let caller: Arc<str> = Arc::from(cred.name.as_str());
            match state.idempotency.begin(&caller, key, &bytes) {
                Begin::Replay(kept) => return replay(kept),
                Begin::Running => {
                    return answer.reject(
                        &Rejection::new(
                            Outcome::Conflict,
                            "idempotency_key",
                            "a request with this Idempotency-Key is still being handled",
                        ),
                        None,
                        None,
                    );
                }
                Begin::Mismatch => {
                    return answer.reject(
                        &Rejection::invalid(
                            "Idempotency-Key",
                            "idempotency_key",
                            "this Idempotency-Key was used with another body".into(),
                        ),
                        None,
                        None,
                    );
                }
                Begin::Fresh(g) => Some(g),
            }
        }
    };
    let mut user = None;
    let resp = write(
        &state,
        Write {
            mapping: &mapping,
            route,
            params: &params,
            headers: &parts.headers,
            bytes: &bytes,
            cred,
            answer: &answer,
            request_id,
            user: &mut user,
        },
    )
    .await;
    if let Some(g) = guard {
        g.finish(Kept {
            status: resp.status().as_u16(),
            content_type: resp.headers().get(hyper::header::CONTENT_TYPE).cloned(),
            body: resp.body().clone().into_inner().unwrap_or_default(),
        });
    }
    tracing::info!(
        request_id = %request_id,
        %peer,
        dialect = %mapping.dialect,
        route = %route_name,
        operation = op_kind.as_str(),
        caller = %cred.name,
        user = user.as_deref().unwrap_or(""),
        status = resp.status().as_u16(),
        latency_us = started.elapsed().as_micros() as u64,
        "request"
    );
    resp
}

/// The user an operation is about, as a log line names it: its userName as the audit trail
/// finds it, else the id or numericId its target names.
fn user_label(op: &crate::canonical::Operation) -> Option<String> {
    if let Some(who) = crate::migrate::Identity::of_operation(op) {
        return Some(who.user_name);
    }
    let target = op.target.as_ref()?;
    ["id", "ext.numericId"]
        .into_iter()
        .find_map(|k| target.attr(k))
        .map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        })
}

/// What [`write`] needs of the request.
struct Write<'a> {
    mapping: &'a Arc<Mapping>,
    route: usize,
    params: &'a crate::dialect::route::Params,
    headers: &'a hyper::HeaderMap,
    bytes: &'a [u8],
    cred: &'a crate::config::Credential,
    answer: &'a Answer<'a>,
    request_id: &'a str,
    /// Set to the user the request is about, for the request's log line.
    user: &'a mut Option<String>,
}

/// Translate (400), step-up password, backend, and the answer in the dialect.
async fn write(state: &State, w: Write<'_>) -> Response<Body> {
    let Write {
        mapping,
        route,
        params,
        headers,
        bytes,
        cred,
        answer,
        request_id,
        user,
    } = w;
    let limits = &state.config.limits;
    let translation = match mapping.translate(route, params, headers, bytes, limits.max_json_depth)
    {
        Ok(t) => t,
        Err(rej) => return answer.reject(&rej, None, None),
    };
    let mut unknown = 0;
    for note in &translation.notes {
        unknown += u64::from(matches!(note, crate::mapping::Note::UnknownMember(_)));
        tracing::debug!(request_id = %request_id, dialect = %mapping.dialect, "{note}");
    }
    state.metrics.unknown_members(&mapping.dialect, unknown);
    let op = translation.op;
    *user = user_label(&op);

    // Step-up: the caller's own password, compared in constant time.
    if let Some(given) = &op.caller_password {
        let ok = cred
            .password
            .as_ref()
            .is_some_and(|p| p.ct_eq(given.expose().as_bytes()));
        if !ok {
            let field = mapping
                .member_for("callerPassword")
                .unwrap_or("callerPassword");
            let rej = Rejection::invalid(
                field,
                "caller_password",
                format!("{field} is not the calling administrator's password"),
            );
            return answer.reject(&rej, None, None);
        }
    }

    // What error messages may name: the target and the user's identifying attributes only.
    let target = op.target.clone();
    let who = identity(&op.user);
    let timeout = Duration::from_millis(limits.request_timeout_ms);
    let audited = state.audit.prepare(&op);
    let backend_started = Instant::now();
    let result = tokio::time::timeout(timeout, state.backend.apply(op, Arc::clone(mapping))).await;
    let timed_out = BackendError::Timeout;
    let failed = match &result {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(e),
        Err(_) => Some(&timed_out),
    };
    state
        .metrics
        .backend(state.backend.kind(), backend_started.elapsed(), failed);
    let error = failed.map(ToString::to_string);
    let stored_id = match &result {
        Ok(Ok(stored)) => stored.id().map(str::to_owned),
        _ => None,
    };
    let resp = match result {
        Ok(Ok(stored)) => from_dialect(mapping.success_response(&stored)),
        Ok(Err(e)) => {
            let rej = crate::backend::rejection(mapping, e);
            answer.reject(&rej, target.as_ref(), Some(&who))
        }
        Err(_) => answer.reject(
            &Rejection::new(
                Outcome::BackendTimeout,
                "backend",
                "the backend did not answer in time",
            ),
            target.as_ref(),
            Some(&who),
        ),
    };
    if let Some(prepared) = audited {
        let ctx = crate::audit::Context {
            request_id,
            caller: &cred.name,
            route: mapping.routes.get(route).map_or("", |r| &*r.name),
        };
        let status = resp.status().as_u16();
        state
            .audit
            .finish(
                ctx,
                prepared,
                status,
                error.as_deref(),
                stored_id.as_deref(),
            )
            .await;
    }
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

/// Where error answers are rendered.
struct Answer<'a> {
    mapping: &'a Mapping,
    path: &'a str,
    request_id: &'a str,
    metrics: &'a super::metrics::Metrics,
}

impl Answer<'_> {
    fn reject(
        &self,
        rej: &Rejection,
        target: Option<&UserDoc>,
        user: Option<&UserDoc>,
    ) -> Response<Body> {
        self.metrics.rejection(&self.mapping.dialect, rej.rule);
        let ctx = ErrorContext {
            path: self.path,
            request_id: self.request_id,
            target,
            user,
        };
        let mut resp = from_dialect(self.mapping.error_response(rej, &ctx));
        if rej.outcome == Outcome::BackendUnavailable {
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if rej.outcome != Outcome::Validation {
            tracing::info!(
                request_id = %self.request_id,
                dialect = %self.mapping.dialect,
                outcome = rej.outcome.as_str(),
                status = resp.status().as_u16(),
                "refused"
            );
        }
        resp
    }
}

/// The identifying attributes of a user, for error messages (never a secret).
fn identity(user: &UserDoc) -> UserDoc {
    let mut m = Map::new();
    for name in ["userName", "ext.authenticator"] {
        if let Some(v) = user.attr(name) {
            crate::canonical::set(&mut m, &location(name), v.clone());
        }
    }
    UserDoc(m)
}
