//! The generic runtime for what a mapping file declares about HTTP: routes, how the
//! credential is presented, and the shapes of success and error answers. No dialect is
//! named here; each mapping file fills these in.

pub mod auth;
pub mod route;
pub mod template;

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
    /// The backend failed or answered something unusable (502).
    BackendError,
    /// The backend is unreachable, or the gateway sheds load (503).
    BackendUnavailable,
    /// The backend did not answer in time (504).
    BackendTimeout,
}

impl Outcome {
    /// All outcomes, in status order.
    pub const ALL: [Outcome; 12] = [
        Outcome::Validation,
        Outcome::Unauthorized,
        Outcome::Forbidden,
        Outcome::NotFound,
        Outcome::MethodNotAllowed,
        Outcome::RequestTimeout,
        Outcome::Conflict,
        Outcome::PayloadTooLarge,
        Outcome::UnsupportedMediaType,
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
