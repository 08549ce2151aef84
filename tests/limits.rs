//! Limits answered in the caller's dialect: requests beyond `max_in_flight` are shed with a 503
//! and `Retry-After`; too many header fields or too large a head are refused before any work; a
//! slow head or an idle connection is closed; a slow body is a 408; connections beyond
//! `max_connections` wait.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::faulty::{Fault, faulty, gateway};
use serde_json::{Value, json};

#[tokio::test]
async fn requests_beyond_max_in_flight_are_shed_with_503_and_retry_after() {
    // A backend that never answers holds the one permit for the outbound timeout (500 ms).
    let (url, _) = faulty(Fault::Silence).await;
    let (base, config, _stop) = gateway(url, |c| c.limits.max_in_flight = 1).await;
    let token = common::dialect_token(&config, "vc-user-service");
    let send = |name: &'static str| {
        let (base, token) = (base.clone(), token.clone());
        async move {
            let r = reqwest::Client::new()
                .put(format!("{base}/user-service/v1/user"))
                .bearer_auth(token)
                .json(&json!({"userKey": {"username": name, "authenticator": "LOCAL"}}))
                .send()
                .await
                .unwrap();
            let retry = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            (r.status().as_u16(), retry, r.json::<Value>().await.unwrap())
        }
    };
    let first = tokio::spawn(send("held"));
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = Instant::now();
    let (status, retry, body) = send("shed").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "shedding must be immediate"
    );
    assert_eq!(retry.as_deref(), Some("1"));
    assert!(body.to_string().contains("capacity"), "{body}");
    let (status, _, _) = first.await.unwrap();
    assert_eq!(status, 504);
    // The permit is back: the next request is not shed (it times out on the silent backend).
    let (status, _, _) = send("after").await;
    assert_eq!(status, 504);
}

#[tokio::test]
async fn too_many_header_fields_are_refused() {
    let (url, seen) = faulty(Fault::Busy).await;
    let (base, _config, _stop) = gateway(url, |c| c.limits.max_headers = 16).await;
    let mut req = reqwest::Client::new()
        .put(format!("{base}/user-service/v1/user"))
        .header("content-type", "application/json")
        .body("{}");
    for i in 0..40 {
        req = req.header(format!("x-filler-{i}"), "x");
    }
    let r = req.send().await.unwrap();
    assert_eq!(r.status(), 431);
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_slow_head_and_an_idle_keep_alive_connection_are_closed_after_the_header_timeout() {
    use tokio::io::AsyncWriteExt;
    let (url, _) = faulty(Fault::Busy).await;
    let (base, _config, _stop) = gateway(url, |c| c.limits.header_read_timeout_ms = 300).await;
    let addr = base.trim_start_matches("http://").to_owned();
    // Slowloris: a head that never ends.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"PUT /user-service/v1/user HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (took, _) = read_until_closed(s).await;
    assert!(took < Duration::from_secs(2), "closed after {took:?}");
    // Keep-alive: one answered request, then silence.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (took, got) = read_until_closed(s).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(
        took < Duration::from_secs(2),
        "idle connection closed after {took:?}"
    );
}

/// Reads what the server sends until it closes the connection: how long that took, and what
/// it sent. Panics when the connection stays open 5 s without a byte.
async fn read_until_closed(mut s: tokio::net::TcpStream) -> (Duration, String) {
    use tokio::io::AsyncReadExt;
    let started = Instant::now();
    let mut buf = vec![0_u8; 4096];
    let mut got = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (
                    started.elapsed(),
                    String::from_utf8_lossy(&got).into_owned(),
                );
            }
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the connection stayed open"),
        }
    }
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_is_408_in_the_dialect_shape_and_writes_nothing() {
    use tokio::io::AsyncWriteExt;
    let (url, seen) = faulty(Fault::Busy).await;
    let (base, config, _stop) = gateway(url, |c| c.limits.request_timeout_ms = 400).await;
    let token = common::dialect_token(&config, "vc-user-service");
    let mut s = tokio::net::TcpStream::connect(base.trim_start_matches("http://"))
        .await
        .unwrap();
    let head = format!(
        "PUT /user-service/v1/user HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"userKey\":"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let (took, got) = read_until_closed(s).await;
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(
        got.to_ascii_lowercase().contains("connection: close"),
        "{got}"
    );
    // vc-user-service's error body (Spring Boot's shape) naming the limit.
    let body: Value = serde_json::from_str(got.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["status"], 408);
    assert!(
        body["message"].as_str().unwrap().contains("400 ms"),
        "{body}"
    );
    assert!(took < Duration::from_secs(2), "answered after {took:?}");
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_head_over_max_head_bytes_is_refused() {
    let (url, seen) = faulty(Fault::Busy).await;
    let (base, _config, _stop) = gateway(url, |c| c.limits.max_head_bytes = 8192).await;
    let r = reqwest::Client::new()
        .put(format!("{base}/user-service/v1/user"))
        .header("content-type", "application/json")
        .header("x-big", "x".repeat(20_000))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 431);
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn beyond_max_connections_a_new_connection_waits_until_one_closes() {
    use tokio::io::AsyncWriteExt;
    let (url, _) = faulty(Fault::Busy).await;
    let (base, _config, _stop) = gateway(url, |c| {
        c.limits.max_connections = 2;
        c.limits.header_read_timeout_ms = 10_000;
    })
    .await;
    let addr = base.trim_start_matches("http://").to_owned();
    let first = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let _second = tokio::net::TcpStream::connect(&addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The third is queued by the kernel, not served.
    let mut third = tokio::net::TcpStream::connect(&addr).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answered = tokio::spawn(async move {
        let (_, got) = read_until_closed(third).await;
        (Instant::now(), got)
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!answered.is_finished(), "served beyond max_connections");
    let closed_at = Instant::now();
    drop(first);
    let (at, got) = answered.await.unwrap();
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(at >= closed_at);
}
