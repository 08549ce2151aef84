//! HTTP calls to a remote backend (the `scim` and `webhook` kinds): one pooled client, bounded
//! answers, and the one retry that is always safe.
//!
//! A call is retried only when the connection could not be made: then the request provably
//! never left. A write whose bytes may have reached the backend (reset, timeout, garbage
//! reply) is never resent; it is reported as [`BackendError::Timeout`] or
//! [`BackendError::Failed`] and the caller answers 504/502.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, ETAG, HeaderValue, IF_MATCH};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::{BackendError, http1};
use crate::config::OutboundConfig;
use crate::redact::Secret;
use crate::rejection::{Outcome, Rejection};

/// The plain-HTTP transport ([`http1`]): the request driven in its own task over this
/// thread's connections. Used for `http://` backends without a proxy.
struct Lean {
    http: http1::Http1,
    timeout: Duration,
}

/// A configured remote endpoint.
pub struct Outbound {
    client: reqwest::Client,
    lean: Option<Lean>,
    base: String,
    /// `base` parsed once: a call to the base itself (the webhook) parses nothing.
    base_url: reqwest::Url,
    auth: Option<HeaderValue>,
    content_type: &'static str,
    connect_retries: u32,
    max_reply_bytes: usize,
}

/// What the backend answered.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The `ETag` header, if any.
    pub etag: Option<String>,
    /// The body (at most `max_reply_bytes`).
    pub body: Bytes,
}

impl Reply {
    /// The body as JSON; an empty body is `None`; anything else is a 502.
    pub fn json(&self) -> Result<Option<Value>, BackendError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        serde_json::from_slice(&self.body)
            .map(Some)
            .map_err(|_| BackendError::Failed(format!("a {} answer that is not JSON", self.status)))
    }

    /// What an unsuccessful answer means. A 503 is a refusal before any work (the write did
    /// not happen); other 5xx answers leave the outcome unknown.
    pub fn error(&self) -> BackendError {
        let body = self.json().ok().flatten();
        let detail = self.detail_of(body.as_ref());
        // The webhook protocol's error kind.
        let kind = body
            .as_ref()
            .and_then(|v| v.get("error"))
            .and_then(Value::as_str);
        match self.status.as_u16() {
            404 => BackendError::NotFound,
            409 => BackendError::Conflict(detail),
            400 | 422 if kind == Some("unknownGroup") => BackendError::UnknownGroup(detail),
            400 | 422 => BackendError::Rejected(Rejection::new(
                Outcome::Validation,
                "backend",
                format!("the backend refused the change: {detail}"),
            )),
            401 | 403 => BackendError::Failed(format!(
                "the backend refused userbridge's credentials ({})",
                self.status
            )),
            503 => BackendError::Unavailable(detail),
            504 => BackendError::Timeout,
            _ => BackendError::Failed(format!("the backend answered {}: {detail}", self.status)),
        }
    }

    /// A short description of an error answer for messages: its `detail` (SCIM) or
    /// `message`/`error` member, else the status.
    fn detail_of(&self, body: Option<&Value>) -> String {
        let from_body = body.and_then(|v| {
            ["detail", "message", "error"]
                .iter()
                .find_map(|k| v.get(*k).and_then(Value::as_str))
        });
        match from_body {
            Some(d) => d.chars().take(300).collect(),
            None => self.status.to_string(),
        }
    }
}

impl Outbound {
    /// A client for `base` (no trailing slash needed). `content_type` is what bodies are sent
    /// as.
    pub fn new(
        base: &str,
        token: Option<&Secret>,
        cfg: &OutboundConfig,
        content_type: &'static str,
    ) -> Result<Self, String> {
        let url = reqwest::Url::parse(base).map_err(|e| format!("backend url `{base}`: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "backend url `{base}`: only http and https are supported"
            ));
        }
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms))
            .timeout(Duration::from_millis(cfg.timeout_ms))
            .pool_idle_timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .user_agent(concat!("userbridge/", env!("CARGO_PKG_VERSION")));
        builder = match &cfg.proxy {
            Some(p) => builder
                .proxy(reqwest::Proxy::all(p).map_err(|e| format!("backend proxy `{p}`: {e}"))?),
            None => builder.no_proxy(),
        };
        let client = builder
            .build()
            .map_err(|e| format!("backend client: {e}"))?;
        let auth = match token {
            Some(t) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {}", t.expose()))
                    .map_err(|_| "backend token: not a valid header value".to_owned())?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        let lean = if url.scheme() == "http" && cfg.proxy.is_none() {
            let auth = auth.as_ref().and_then(|a| a.to_str().ok());
            Some(Lean {
                http: http1::Http1::new(
                    &url,
                    auth,
                    content_type,
                    Duration::from_millis(cfg.connect_timeout_ms),
                    cfg.max_reply_bytes,
                )?,
                timeout: Duration::from_millis(cfg.timeout_ms),
            })
        } else {
            None
        };
        Ok(Self {
            client,
            lean,
            base: base.trim_end_matches('/').to_owned(),
            base_url: url,
            auth,
            content_type,
            connect_retries: cfg.connect_retries,
            max_reply_bytes: cfg.max_reply_bytes,
        })
    }

    /// Sends `method` to `base + path` (path includes any query) with an optional JSON body
    /// and `If-Match`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        if_match: Option<&str>,
    ) -> Result<Reply, BackendError> {
        let body = body.map(encode).transpose()?;
        self.call_bytes(method, path, body, if_match).await
    }

    /// [`Outbound::call`] with the body already encoded (`content_type`).
    pub async fn call_bytes(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        if_match: Option<&str>,
    ) -> Result<Reply, BackendError> {
        if let Some(lean) = &self.lean {
            return self.call_lean(lean, method, path, body, if_match).await;
        }
        let url = if path.is_empty() {
            self.base_url.clone()
        } else {
            reqwest::Url::parse(&format!("{}{}", self.base, path))
                .map_err(|e| BackendError::Failed(format!("bad backend path: {e}")))?
        };
        let mut attempt = 0;
        loop {
            let mut req = self
                .client
                .request(method.clone(), url.clone())
                .header(ACCEPT, self.content_type);
            if let Some(a) = &self.auth {
                req = req.header(AUTHORIZATION, a.clone());
            }
            if let Some(m) = if_match {
                req = req.header(IF_MATCH, m);
            }
            if let Some(b) = &body {
                req = req.header(CONTENT_TYPE, self.content_type).body(b.clone());
            }
            match req.send().await {
                Ok(resp) => return self.read(resp).await,
                // Connect failed: nothing was sent, so trying again cannot double a write.
                Err(e) if e.is_connect() && attempt < self.connect_retries => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50 << attempt.min(4))).await;
                }
                Err(e) if e.is_connect() => {
                    return Err(BackendError::Unavailable(format!(
                        "cannot connect to {}",
                        self.base
                    )));
                }
                Err(e) if e.is_timeout() => return Err(BackendError::Timeout),
                Err(e) => {
                    return Err(BackendError::Failed(format!(
                        "{} {}: {}",
                        method,
                        self.base,
                        without_url(&e)
                    )));
                }
            }
        }
    }

    /// [`Outbound::call`] over the plain-HTTP transport: the same retry rule, timeouts and
    /// bounds.
    async fn call_lean(
        &self,
        lean: &Lean,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        if_match: Option<&str>,
    ) -> Result<Reply, BackendError> {
        let request = lean
            .http
            .request(
                &method,
                path,
                body.as_deref().map(|b| (self.content_type, b)),
                if_match,
            )
            .map_err(|f| self.fault(&method, f))?;
        let head_only = method == Method::HEAD;
        let mut attempt = 0;
        loop {
            match tokio::time::timeout(lean.timeout, lean.http.send(&request, head_only)).await {
                Err(_) => return Err(BackendError::Timeout),
                Ok(Ok(reply)) => return Ok(reply),
                // Connect failed: nothing was sent, so trying again cannot double a write.
                Ok(Err(http1::Fault::Connect(_))) if attempt < self.connect_retries => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(50 << attempt.min(4))).await;
                }
                Ok(Err(f)) => return Err(self.fault(&method, f)),
            }
        }
    }

    /// What a failed plain-HTTP exchange means for the caller.
    fn fault(&self, method: &Method, f: http1::Fault) -> BackendError {
        match f {
            http1::Fault::Connect(_) => {
                BackendError::Unavailable(format!("cannot connect to {}", self.base))
            }
            http1::Fault::Io(m) | http1::Fault::Answer(m) => {
                BackendError::Failed(format!("{method} {}: {m}", self.base))
            }
        }
    }

    async fn read(&self, mut resp: reqwest::Response) -> Result<Reply, BackendError> {
        let status = resp.status();
        let etag = etag(resp.headers());
        let mut body = BytesMut::new();
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    if body.len() + c.len() > self.max_reply_bytes {
                        return Err(BackendError::Failed(format!(
                            "an answer larger than {} bytes",
                            self.max_reply_bytes
                        )));
                    }
                    body.extend_from_slice(&c);
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => return Err(BackendError::Timeout),
                Err(e) => {
                    return Err(BackendError::Failed(format!(
                        "reading the answer: {}",
                        without_url(&e)
                    )));
                }
            }
        }
        Ok(Reply {
            status,
            etag,
            body: body.freeze(),
        })
    }
}

/// A request body as JSON.
pub fn encode(body: &(impl serde::Serialize + ?Sized)) -> Result<Bytes, BackendError> {
    serde_json::to_vec(body)
        .map(Bytes::from)
        .map_err(|e| BackendError::Failed(format!("cannot encode the request: {e}")))
}

/// The `ETag` header, if any.
fn etag(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get(ETAG)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `: cause: cause…` for each source of `e`.
fn causes(e: &dyn std::error::Error) -> String {
    let mut msg = String::new();
    let mut src = e.source();
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// An error's description without the URL (which may carry a query with user data): its
/// causes only, since reqwest's own message names the URL.
fn without_url(e: &reqwest::Error) -> String {
    let mut msg = causes(e).trim_start_matches(": ").to_owned();
    if msg.is_empty() {
        msg = if e.is_body() || e.is_decode() {
            "bad answer body".into()
        } else {
            "request failed".into()
        };
    }
    msg
}
