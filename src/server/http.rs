//! Small HTTP helpers shared by the handlers: the body type, answers, media types and bounded
//! body reading.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{HeaderMap, Response, StatusCode};

use crate::mapping::DialectResponse;

/// The response body type.
pub type Body = Full<Bytes>;

/// A dialect's answer as an HTTP response.
pub fn from_dialect(r: DialectResponse) -> Response<Body> {
    let mut resp = Response::new(Full::new(r.body));
    *resp.status_mut() =
        StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    if let Some(ct) = r.content_type
        && let Ok(v) = HeaderValue::from_str(&ct)
    {
        h.insert(CONTENT_TYPE, v);
    }
    for (name, value) in r.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.append(name, v);
        }
    }
    resp
}

/// A JSON answer.
pub fn json(
    status: StatusCode,
    content_type: &'static str,
    body: &serde_json::Value,
) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// A plain-text answer.
pub fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// An owned text answer with its content type.
pub fn text_with(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// True for `application/json` and `application/*+json`, with no charset or UTF-8.
pub fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mut parts = ct.split(';');
    let essence = parts.next().unwrap_or("").trim();
    let Some((kind, sub)) = essence.split_once('/') else {
        return false;
    };
    let sub = sub.to_ascii_lowercase();
    if !kind.eq_ignore_ascii_case("application") || !(sub == "json" || sub.ends_with("+json")) {
        return false;
    }
    parts.all(|p| match p.split_once('=') {
        Some((k, v)) if k.trim().eq_ignore_ascii_case("charset") => {
            let v = v.trim().trim_matches('"');
            v.eq_ignore_ascii_case("utf-8") || v.eq_ignore_ascii_case("utf8")
        }
        _ => true,
    })
}

/// Why a body could not be read.
pub enum BodyError {
    /// Over the limit.
    TooLarge,
    /// Not all there within the deadline (a slow-body client).
    TimedOut,
    /// The connection failed while reading.
    Io,
}

/// Reads the whole body within `deadline`, refusing more than `max` bytes (before reading when
/// `Content-Length` already says so).
pub async fn read_body(
    headers: &HeaderMap,
    body: Incoming,
    max: usize,
    deadline: std::time::Duration,
) -> Result<Bytes, BodyError> {
    if let Some(n) = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<u64>().ok())
        && n > max as u64
    {
        return Err(BodyError::TooLarge);
    }
    match tokio::time::timeout(deadline, Limited::new(body, max).collect()).await {
        Err(_) => Err(BodyError::TimedOut),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyError::TooLarge),
        Ok(Err(_)) => Err(BodyError::Io),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("x")),
        );
        h
    }

    #[test]
    fn json_media_types() {
        assert!(is_json(&ct("application/json")));
        assert!(is_json(&ct("Application/JSON; charset=UTF-8")));
        assert!(is_json(&ct("application/scim+json")));
        assert!(is_json(&ct("application/json;charset=\"utf-8\"")));
        assert!(!is_json(&ct("application/json; charset=latin1")));
        assert!(!is_json(&ct("text/plain")));
        assert!(!is_json(&ct("application/jsonx")));
        assert!(!is_json(&HeaderMap::new()));
    }
}
