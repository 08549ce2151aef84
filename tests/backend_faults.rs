//! A remote backend that fails: refused connections, resets after the request arrived, no
//! answer, garbage, 503. The gateway answers each in the caller's dialect, never hangs, and
//! never sends a write twice once its bytes may have reached the backend.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::faulty::{Fault, faulty, gateway};
use serde_json::{Value, json};
use userbridge::config::Config;

fn vc_token(config: &Config) -> String {
    common::dialect_token(config, "vc-user-service")
}

/// A vc-user-service create through a gateway whose backend misbehaves: the status, the body
/// and how long it took.
async fn create_through(url: String) -> (u16, Value, Duration, Option<String>) {
    let (base, config, _stop) = gateway(url, |_| {}).await;
    let started = Instant::now();
    let r = reqwest::Client::new()
        .put(format!("{base}/user-service/v1/user"))
        .bearer_auth(vc_token(&config))
        .json(&json!({"userKey": {"username": "ann", "authenticator": "LOCAL"}, "password": "Pw-1234-xyz"}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry_after = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (status, body, started.elapsed(), retry_after)
}

#[tokio::test]
async fn refused_connection_is_503_with_retry_after() {
    // A port with nothing behind it.
    let port = common::peers::free_port();
    let (status, body, took, retry) = create_through(format!("http://127.0.0.1:{port}/hook")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert!(body.to_string().contains("unavailable"), "{body}");
    assert!(took < Duration::from_secs(5));
}

#[tokio::test]
async fn reset_after_the_request_arrived_is_502_and_never_resent() {
    let (url, seen) = faulty(Fault::Reset).await;
    let (status, body, _, _) = create_through(url).await;
    assert_eq!(status, 502, "{body}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(seen.load(Ordering::SeqCst), 1, "the write was sent again");
}

#[tokio::test]
async fn silence_is_504_in_time_and_never_resent() {
    let (url, seen) = faulty(Fault::Silence).await;
    let (status, body, took, _) = create_through(url).await;
    assert_eq!(status, 504, "{body}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(seen.load(Ordering::SeqCst), 1, "the write was sent again");
}

#[tokio::test]
async fn garbage_and_non_json_answers_are_502() {
    for fault in [Fault::Garbage, Fault::NotJson] {
        let (url, seen) = faulty(fault).await;
        let (status, body, _, _) = create_through(url).await;
        assert_eq!(status, 502, "{body}");
        assert_eq!(seen.load(Ordering::SeqCst), 1, "the write was sent again");
    }
}

#[tokio::test]
async fn a_busy_backend_is_503() {
    let (url, seen) = faulty(Fault::Busy).await;
    let (status, body, _, retry) = create_through(url).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(seen.load(Ordering::SeqCst), 1);
}
