//! Why a request is refused: an [`Outcome`] (the class, with its usual status) and a
//! [`Rejection`] (outcome, the member at fault, the rule, the message). Every dialect renders
//! them in its own error shape; `/scim/v2` renders them as SCIM errors.
//!
//! The refusals the gateway makes around the mapping engine — capacity, credentials, media
//! type, size, time, idempotency, step-up, a caught panic — are built here and nowhere else;
//! the engine's own (a member that fails its rule) are built where the rule is checked, and
//! what a backend found becomes one in `Exchange::backend_rejection`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Every way a request can end other than success, each with its usual status.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A member, the body or a path parameter is invalid (400).
    Validation,
    /// No or unknown credentials (401).
    Unauthorized,
    /// Credentials without the needed role (403).
    Forbidden,
    /// No such user (404).
    NotFound,
    /// Known path, other method (405).
    MethodNotAllowed,
    /// The user exists already, or the new name is taken (409).
    Conflict,
    /// The body did not arrive within the request timeout (408).
    RequestTimeout,
    /// Body over the limit (413).
    PayloadTooLarge,
    /// Not JSON (415).
    UnsupportedMediaType,
    /// The gateway itself failed: a panic caught by the server stack (500).
    Internal,
    /// The backend failed or answered something unusable (502).
    BackendError,
    /// The backend is unreachable, or the gateway sheds load (503).
    BackendUnavailable,
    /// The backend did not answer in time (504).
    BackendTimeout,
}

impl Outcome {
    /// All outcomes, in status order.
    pub const ALL: [Outcome; 13] = [
        Outcome::Validation,
        Outcome::Unauthorized,
        Outcome::Forbidden,
        Outcome::NotFound,
        Outcome::MethodNotAllowed,
        Outcome::RequestTimeout,
        Outcome::Conflict,
        Outcome::PayloadTooLarge,
        Outcome::UnsupportedMediaType,
        Outcome::Internal,
        Outcome::BackendError,
        Outcome::BackendUnavailable,
        Outcome::BackendTimeout,
    ];

    /// The HTTP status the outcome has unless the mapping says otherwise.
    pub fn default_status(self) -> u16 {
        match self {
            Outcome::Validation => 400,
            Outcome::Unauthorized => 401,
            Outcome::Forbidden => 403,
            Outcome::NotFound => 404,
            Outcome::MethodNotAllowed => 405,
            Outcome::RequestTimeout => 408,
            Outcome::Conflict => 409,
            Outcome::PayloadTooLarge => 413,
            Outcome::UnsupportedMediaType => 415,
            Outcome::Internal => 500,
            Outcome::BackendError => 502,
            Outcome::BackendUnavailable => 503,
            Outcome::BackendTimeout => 504,
        }
    }

    /// The snake_case name (as in mapping files and metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Validation => "validation",
            Outcome::Unauthorized => "unauthorized",
            Outcome::Forbidden => "forbidden",
            Outcome::NotFound => "not_found",
            Outcome::MethodNotAllowed => "method_not_allowed",
            Outcome::RequestTimeout => "request_timeout",
            Outcome::Conflict => "conflict",
            Outcome::PayloadTooLarge => "payload_too_large",
            Outcome::UnsupportedMediaType => "unsupported_media_type",
            Outcome::Internal => "internal",
            Outcome::BackendError => "backend_error",
            Outcome::BackendUnavailable => "backend_unavailable",
            Outcome::BackendTimeout => "backend_timeout",
        }
    }
}

/// Why a request is refused: the outcome, a message naming the member, and the rule that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The outcome class.
    pub outcome: Outcome,
    /// A message for the client, naming the member at fault; never holds a secret value.
    pub message: String,
    /// The member at fault, when there is one.
    pub field: Option<String>,
    /// The rule that refused it (`required`, `max_length`, `json`, …), for traces and metrics.
    pub rule: &'static str,
}

impl Rejection {
    /// A 400 naming `field`.
    pub fn invalid(field: &str, rule: &'static str, message: String) -> Self {
        Self {
            outcome: Outcome::Validation,
            message,
            field: Some(field.to_owned()),
            rule,
        }
    }

    /// A refusal that names no member.
    pub fn new(outcome: Outcome, rule: &'static str, message: impl Into<String>) -> Self {
        Self {
            outcome,
            message: message.into(),
            field: None,
            rule,
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.outcome.as_str(),
            self.rule,
            self.message
        )
    }
}

/// The refusals the gateway makes around the mapping engine.
impl Rejection {
    /// 503: `max_in_flight` requests are being handled (the answer carries `Retry-After`).
    pub fn at_capacity() -> Self {
        Self::new(
            Outcome::BackendUnavailable,
            "max_in_flight",
            "the gateway is at capacity; try again shortly",
        )
    }

    /// 401: no credential presented.
    pub fn no_credentials() -> Self {
        Self::new(Outcome::Unauthorized, "auth", "credentials are missing")
    }

    /// 401: a credential no configured one matches.
    pub fn bad_credentials() -> Self {
        Self::new(
            Outcome::Unauthorized,
            "auth",
            "the credentials are not valid",
        )
    }

    /// 403: the caller lacks every role the route accepts; `action` says what it tried
    /// (`create users`).
    pub fn forbidden(action: &str) -> Self {
        Self::new(
            Outcome::Forbidden,
            "role",
            format!("the caller may not {action}"),
        )
    }

    /// 405: the path is known, the method is not.
    pub fn method_not_allowed(method: &http::Method, allow: &[http::Method]) -> Self {
        let allow: Vec<&str> = allow.iter().map(http::Method::as_str).collect();
        Self::new(
            Outcome::MethodNotAllowed,
            "method",
            format!(
                "{method} is not allowed on this path; allowed: {}",
                allow.join(", ")
            ),
        )
    }

    /// 415: the body is not JSON in UTF-8.
    pub fn not_json() -> Self {
        Self::new(
            Outcome::UnsupportedMediaType,
            "media_type",
            "Content-Type must be application/json (UTF-8)",
        )
    }

    /// 413: the body is over `limits.max_body_bytes`.
    pub fn too_large(max: usize) -> Self {
        Self::new(
            Outcome::PayloadTooLarge,
            "max_body_bytes",
            format!("the body is larger than {max} bytes"),
        )
    }

    /// 408: the body did not arrive within `limits.request_timeout_ms`.
    pub fn body_too_slow(timeout_ms: u64) -> Self {
        Self::new(
            Outcome::RequestTimeout,
            "request_timeout_ms",
            format!("the body did not arrive within {timeout_ms} ms"),
        )
    }

    /// 400: the connection failed while the body was read.
    pub fn unreadable_body() -> Self {
        Self::new(Outcome::Validation, "body", "the body could not be read")
    }

    /// 400: an `Idempotency-Key` that is empty, too long or not visible ASCII.
    pub fn bad_idempotency_key() -> Self {
        Self::invalid(
            "Idempotency-Key",
            "idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
        )
    }

    /// 409: the first request with this `Idempotency-Key` is still being handled.
    pub fn idempotency_running() -> Self {
        Self::new(
            Outcome::Conflict,
            "idempotency_key",
            "a request with this Idempotency-Key is still being handled",
        )
    }

    /// 400: this `Idempotency-Key` came with another body.
    pub fn idempotency_mismatch() -> Self {
        Self::invalid(
            "Idempotency-Key",
            "idempotency_key",
            "this Idempotency-Key was used with another body".into(),
        )
    }

    /// 400: the step-up password in `field` is not the calling administrator's.
    pub fn wrong_caller_password(field: &str) -> Self {
        Self::invalid(
            field,
            "caller_password",
            format!("{field} is not the calling administrator's password"),
        )
    }

    /// 500: the gateway failed (a panic, caught and counted); nothing is known to have been
    /// written by the request's own handler after the failure.
    pub fn internal() -> Self {
        Self::new(
            Outcome::Internal,
            "panic",
            "the gateway failed while handling this request",
        )
    }
}
