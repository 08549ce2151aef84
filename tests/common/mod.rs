//! Helpers shared by the integration tests (each test binary uses some of them).

#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;

/// The sample cases: `USERBRIDGE_SAMPLES`, else the shared spec's when this checkout sits
/// beside it, else the copy kept in `tests/samples` (so that a bare clone tests the same).
pub fn samples_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("USERBRIDGE_SAMPLES") {
        return PathBuf::from(p);
    }
    let shared = PathBuf::from("../shared/samples");
    if shared.is_dir() {
        shared
    } else {
        PathBuf::from("tests/samples")
    }
}

/// A client sending `Authorization: Bearer <token>` with every request.
pub fn authorized_client(token: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
    headers.insert(reqwest::header::AUTHORIZATION, value);
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// A vc-user-service create of `name` (`PUT /user-service/v1/user` with a password) sent to the
/// gateway at `base` with bearer `token`, by a client that ignores proxy variables.
pub async fn vc_create(base: &str, token: &str, name: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .put(format!("{base}/user-service/v1/user"))
        .bearer_auth(token)
        .json(&serde_json::json!({"userKey": {"username": name, "authenticator": "LOCAL"}, "password": "Pw-1234-xyz"}))
        .send()
        .await
        .unwrap()
}

/// A vc-user-service update of `name`'s email (`POST`, demo token, `X-Request-Id`
/// `request_id`) from a client that gives up after 300 ms and closes its connection; panics
/// when an answer came first.
pub async fn vc_update_given_up(base: &str, name: &str, email: &str, request_id: &str) {
    let sent = reqwest::Client::builder()
        .timeout(std::time::Duration::from_millis(300))
        .build()
        .unwrap()
        .post(format!("{base}/user-service/v1/user"))
        .bearer_auth("demo-vc-token")
        .header("x-request-id", request_id)
        .json(
            &serde_json::json!({"userKey": {"username": name, "authenticator": "LOCAL"},
                                  "email": email}),
        )
        .send()
        .await;
    assert!(sent.is_err(), "the client did not give up: {sent:?}");
}

/// The token of the first credential of `dialect` in `config`.
pub fn dialect_token(config: &userbridge::config::Config, dialect: &str) -> String {
    config
        .credentials
        .iter()
        .find(|c| c.dialect == dialect)
        .map(|c| c.token.expose().to_owned())
        .unwrap_or_else(|| panic!("no credential for {dialect}"))
}

/// `want` is contained in `got`: objects member by member, arrays item by item, else equal.
pub fn contains(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| g.get(k).is_some_and(|gv| contains(gv, wv))),
        (Value::Array(g), Value::Array(w)) => {
            g.len() == w.len() && g.iter().zip(w).all(|(a, b)| contains(a, b))
        }
        _ => got == want,
    }
}
/// `src` with the first `from` after `anchor` replaced by `to` (an edit a test makes to one
/// entry of a mapping file); panics when either is missing.
pub fn replace_after(src: &str, anchor: &str, from: &str, to: &str) -> String {
    let at = src.find(anchor).unwrap();
    let i = at + src[at..].find(from).unwrap();
    format!("{}{to}{}", &src[..i], &src[i + from.len()..])
}

pub mod binary;
pub mod faulty;
pub mod gateway;
pub mod logs;
pub mod markdown;
pub mod peers;
pub mod postgres;
