//! The handler of a dialect route: what is left of the exchange once the stack has routed,
//! shed, authenticated and read the request — translate (400), step-up password, backend
//! (404, 400/409, then 502/503/504), the answer in the caller's dialect, the audit record.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::{Request, Response};
use serde_json::{Map, Value};

use super::http::{Body, from_dialect};
use super::ingress::Routed;
use super::respond::{About, refuse};
use crate::backend::Stored;
use crate::canonical::{Identity, Operation, Step, UserDoc, get, location};
use crate::config::Credential;
use crate::exchange::Exchange;
use crate::mapping::{Note, RouteKind};

/// Answers the exchange `exchange` of `routed` for `caller`.
pub async fn handle(
    routed: &Routed,
    exchange: &Exchange,
    caller: &Credential,
    req: Request<Bytes>,
) -> Response<Body> {
    let state = &routed.state;
    let limits = &state.config.limits;
    let (parts, bytes) = req.into_parts();
    if matches!(exchange.kind(), RouteKind::Get | RouteKind::List) {
        return read(routed, exchange, &parts.headers).await;
    }
    'answer: {
        let translation = match exchange.translate(&parts.headers, &bytes, limits) {
            Ok(t) => t,
            Err(rej) => break 'answer refuse(routed, &rej, About::default()),
        };
        let mut unknown = 0;
        for note in &translation.notes {
            unknown += u64::from(matches!(note, Note::UnknownMember(_)));
            tracing::debug!(request_id = %routed.request_id(), dialect = %exchange.mapping.dialect, "{note}");
        }
        state
            .metrics
            .unknown_members(&exchange.mapping.dialect, unknown);
        let op = translation.op;
        // Only the request's log line names the user: not worked out when it is not written.
        if tracing::enabled!(target: super::stack::LOG_TARGET, tracing::Level::INFO)
            && let Some(user) = user_label(&op)
        {
            let _ = routed.user.set(user);
        }
        if let Err(rej) = exchange.step_up(&op, caller).await {
            break 'answer refuse(routed, &rej, About::default());
        }
        write(routed, exchange, caller, op).await
    }
}

/// A read route: what it names, looked up in the store, answered in the dialect.
async fn read(routed: &Routed, exchange: &Exchange, headers: &http::HeaderMap) -> Response<Body> {
    let state = &routed.state;
    let lookup = match exchange.lookup(headers) {
        Ok(l) => l,
        Err(rej) => return refuse(routed, &rej, About::default()),
    };
    let target = lookup.target.clone();
    if let Some(t) = target.as_ref().and_then(crate::canonical::Target::of) {
        let _ = routed.user.set(t.label());
    }
    let Some(store) = state.backend.store() else {
        let e = crate::backend::BackendError::Unsupported(state.backend.kind(), "read users");
        return refuse(routed, &exchange.backend_rejection(e), About::default());
    };
    let limits = &state.config.limits;
    let timeout = Duration::from_millis(limits.request_timeout_ms);
    let started = Instant::now();
    let found = exchange.read(store, lookup, limits.max_list, timeout).await;
    state.metrics.backend(
        state.backend.kind(),
        started.elapsed(),
        found.as_ref().err(),
    );
    match found {
        Ok(found) => from_dialect(exchange.answer_found(&found, routed.request_id())),
        Err(e) => {
            let about = About {
                target: target.as_ref(),
                user: None,
            };
            refuse(routed, &exchange.backend_rejection(e), about)
        }
    }
}

/// The backend write, its answer and its audit record.
async fn write(
    routed: &Routed,
    exchange: &Exchange,
    caller: &Credential,
    op: Operation,
) -> Response<Body> {
    let state = &routed.state;
    // What error messages may name: the target and the user's identifying attributes only.
    let target = op.target.clone();
    let who = Identifying::of(&op.user);
    let audited = state.audit.prepare(&op);
    let timeout = Duration::from_millis(state.config.limits.request_timeout_ms);
    let started = Instant::now();
    let result = exchange.apply(&*state.backend, op, timeout).await;
    state.metrics.backend(
        state.backend.kind(),
        started.elapsed(),
        result.as_ref().err(),
    );
    // The answer is rendered (and a stored user answered as JSON read) before the audit
    // record, which names the stored id and the outcome the client hears.
    let answered =
        result.and_then(|stored| Ok((exchange.answer(&stored, routed.request_id())?, stored)));
    let error = answered.as_ref().err().map(ToString::to_string);
    let (resp, stored) = match answered {
        Ok((answer, stored)) => (from_dialect(answer), Some(stored)),
        Err(e) => {
            let who = who.doc();
            let about = About {
                target: target.as_ref(),
                user: Some(&who),
            };
            (refuse(routed, &exchange.backend_rejection(e), about), None)
        }
    };
    if let Some(prepared) = audited {
        let ctx = crate::audit::Context {
            request_id: routed.request_id(),
            caller: &caller.name,
            route: exchange.route_name(),
        };
        let status = resp.status().as_u16();
        state
            .audit
            .finish(
                ctx,
                prepared,
                status,
                error.as_deref(),
                stored.as_ref().and_then(Stored::id),
            )
            .await;
    }
    resp
}

/// The user an operation is about, as a log line names it: its userName as the audit trail
/// finds it, else what its target names.
fn user_label(op: &Operation) -> Option<String> {
    if let Some(who) = Identity::of_operation(op) {
        return Some(who.user_name);
    }
    op.target_key().map(|t| t.label())
}

/// The identifying attributes of a user, kept for an error message (never a secret); the
/// document is built only when there is an error to word.
struct Identifying([Option<Value>; 2]);

/// Where the identifying attributes live (resolved once).
static IDENTIFYING: LazyLock<[Vec<Step>; 2]> =
    LazyLock::new(|| [location("userName"), location("ext.authenticator")]);

impl Identifying {
    fn of(user: &UserDoc) -> Self {
        Self(IDENTIFYING.each_ref().map(|loc| get(&user.0, loc).cloned()))
    }

    fn doc(self) -> UserDoc {
        let mut m = Map::new();
        for (loc, v) in IDENTIFYING.iter().zip(self.0) {
            if let Some(v) = v {
                crate::canonical::set(&mut m, loc, v);
            }
        }
        UserDoc(m)
    }
}
