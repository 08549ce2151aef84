//! A remote backend that fails: refused connections, resets after the request arrived, no
//! answer, garbage, 503. The gateway answers each in the caller's dialect, never hangs, and
//! never sends a write twice once its bytes may have reached the backend.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use userbridge::config::{BackendConfig, Config, Flags, OutboundConfig};
use userbridge::mapping::MappingSet;
use userbridge::server::{State, serve};

/// What the faulty backend does once it has read a whole request.
#[derive(Clone, Copy)]
enum Fault {
    /// Close the connection without a word.
    Reset,
    /// Say nothing for longer than the gateway waits.
    Silence,
    /// Answer bytes that are not HTTP.
    Garbage,
    /// Answer 200 with a body that is not JSON.
    NotJson,
    /// Answer 503.
    Busy,
}

/// A backend that counts the requests it received and misbehaves.
async fn faulty(fault: Fault) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let count = Arc::clone(&count);
            tokio::spawn(async move {
                let mut buf = vec![0_u8; 65536];
                let mut got = 0;
                // Read until the headers and the announced body are in.
                loop {
                    let Ok(n) = s.read(&mut buf[got..]).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    got += n;
                    let text = String::from_utf8_lossy(&buf[..got]).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if got >= end + 4 + len {
                            break;
                        }
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                match fault {
                    Fault::Reset => drop(s),
                    Fault::Silence => tokio::time::sleep(Duration::from_secs(30)).await,
                    Fault::Garbage => {
                        let _ = s.write_all(b"\x00\x01 not http at all\r\n\r\n").await;
                    }
                    Fault::NotJson => {
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
                            .await;
                    }
                    Fault::Busy => {
                        let _ = s
                            .write_all(
                                b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n",
                            )
                            .await;
                    }
                }
            });
        }
    });
    (url, seen)
}

/// A gateway whose webhook backend is `url`, with short outbound timeouts.
async fn gateway(url: String) -> (String, Config, tokio::sync::oneshot::Sender<()>) {
    let (mut config, _) = Config::load(
        Some(std::path::Path::new("config/userbridge.toml")),
        &Flags::default(),
    )
    .unwrap();
    config.backend = BackendConfig::Webhook {
        url,
        token: None,
        http: OutboundConfig {
            connect_timeout_ms: 200,
            timeout_ms: 500,
            ..OutboundConfig::default()
        },
    };
    let set = MappingSet::load_dir(&config.mappings.dir, None, &config.mapping_vars()).unwrap();
    let state = State::new(config.clone(), set).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(
        listener,
        Arc::new(ArcSwap::from_pointee(state)),
        async {
            let _ = rx.await;
        },
        Duration::from_secs(1),
    ));
    (base, config, tx)
}

fn vc_token(config: &Config) -> String {
    config
        .credentials
        .iter()
        .find(|c| c.dialect == "vc-user-service")
        .map(|c| c.token.expose().to_owned())
        .unwrap()
}

/// A vc-user-service create through a gateway whose backend misbehaves: the status, the body
/// and how long it took.
async fn create_through(url: String) -> (u16, Value, Duration, Option<String>) {
    let (base, config, _stop) = gateway(url).await;
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
