//! The plain-HTTP backend client (`backend::http1`, through `backend::outbound`) against a real
//! socket server that answers as HTTP servers do: chunked bodies with trailers, interim 100s,
//! `Connection: close`, bodies to the end of the connection, an idle connection closed by the
//! server, oversized and garbage answers. Each request is seen by the server exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use userbridge::backend::BackendError;
use userbridge::backend::outbound::Outbound;
use userbridge::config::OutboundConfig;

/// What the server does after answering a request.
#[derive(Clone, Copy, PartialEq)]
enum After {
    KeepOpen,
    Close,
}

struct Server {
    url: String,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

/// A server answering its n-th request (over all connections) with `answers[n]`.
async fn server(answers: Vec<(&'static [u8], After)>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let answers = Arc::new(answers);
    let (c, r) = (Arc::clone(&connections), Arc::clone(&requests));
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            c.fetch_add(1, Ordering::SeqCst);
            let (r, answers) = (Arc::clone(&r), Arc::clone(&answers));
            tokio::spawn(connection(stream, r, answers));
        }
    });
    Server {
        url,
        connections,
        requests,
    }
}

async fn connection(
    mut stream: TcpStream,
    requests: Arc<AtomicUsize>,
    answers: Arc<Vec<(&'static [u8], After)>>,
) {
    let mut buf = Vec::new();
    loop {
        // One whole request: the head, then its Content-Length.
        let body_start = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..body_start]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        while buf.len() < body_start + len {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..body_start + len);
        let n = requests.fetch_add(1, Ordering::SeqCst);
        let (answer, after) = answers[n.min(answers.len() - 1)];
        if stream.write_all(answer).await.is_err() {
            return;
        }
        if after == After::Close {
            return;
        }
    }
}

fn client(url: &str, max_reply_bytes: usize) -> Outbound {
    let cfg = OutboundConfig {
        max_reply_bytes,
        ..OutboundConfig::default()
    };
    Outbound::new(url, None, &cfg, "application/json").unwrap()
}

async fn post(out: &Outbound) -> Result<(u16, String), BackendError> {
    let body = serde_json::json!({"operation": "get", "target": {"id": "1"}});
    let r = out.call(Method::POST, "", Some(&body), None).await?;
    Ok((
        r.status.as_u16(),
        String::from_utf8(r.body.to_vec()).unwrap(),
    ))
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"id\":\"1\"}\n";

#[tokio::test]
async fn a_kept_connection_carries_the_next_request() {
    let s = server(vec![(OK, After::KeepOpen)]).await;
    let out = client(&s.url, 1 << 20);
    for _ in 0..3 {
        assert_eq!(post(&out).await.unwrap(), (200, "{\"id\":\"1\"}\n".into()));
    }
    assert_eq!(s.connections.load(Ordering::SeqCst), 1);
    assert_eq!(s.requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn chunked_answers_with_trailers_are_whole_and_the_connection_is_kept() {
    let chunked: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
        4\r\n{\"id\r\n6;ext=1\r\n\":\"1\"}\r\n0\r\nX-Trailer: t\r\n\r\n";
    let s = server(vec![(chunked, After::KeepOpen)]).await;
    let out = client(&s.url, 1 << 20);
    assert_eq!(post(&out).await.unwrap(), (200, "{\"id\":\"1\"}".into()));
    assert_eq!(post(&out).await.unwrap(), (200, "{\"id\":\"1\"}".into()));
    assert_eq!(s.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_interim_100_is_skipped() {
    let a: &[u8] =
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}";
    let s = server(vec![(a, After::KeepOpen)]).await;
    assert_eq!(
        post(&client(&s.url, 1 << 20)).await.unwrap(),
        (201, "{}".into())
    );
}

#[tokio::test]
async fn connection_close_and_bodies_to_the_end_open_a_new_connection_next_time() {
    let close: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}";
    let to_end: &[u8] = b"HTTP/1.0 200 OK\r\n\r\n{\"a\":1}";
    let s = server(vec![
        (close, After::Close),
        (to_end, After::Close),
        (OK, After::KeepOpen),
    ])
    .await;
    let out = client(&s.url, 1 << 20);
    assert_eq!(post(&out).await.unwrap(), (200, "{}".into()));
    assert_eq!(post(&out).await.unwrap(), (200, "{\"a\":1}".into()));
    assert_eq!(post(&out).await.unwrap().0, 200);
    assert_eq!(s.connections.load(Ordering::SeqCst), 3);
    assert_eq!(s.requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_idle_connection_the_server_closed_is_not_used() {
    // The server answers with a length and keep-alive, then closes the idle connection.
    let s = server(vec![(OK, After::Close)]).await;
    let out = client(&s.url, 1 << 20);
    assert_eq!(post(&out).await.unwrap().0, 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The pooled connection reads as closed: a new one is made, and the request goes once.
    assert_eq!(post(&out).await.unwrap().0, 200);
    assert_eq!(s.connections.load(Ordering::SeqCst), 2);
    assert_eq!(s.requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn oversized_garbage_and_cut_answers_are_failures_named_so() {
    let big: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n";
    let s = server(vec![(big, After::Close)]).await;
    match post(&client(&s.url, 1024)).await {
        Err(BackendError::Failed(m)) => assert!(m.contains("larger than 1024"), "{m}"),
        other => panic!("{other:?}"),
    }
    let garbage: &[u8] = b"SMTP ready\r\n\r\n";
    let s = server(vec![(garbage, After::Close)]).await;
    match post(&client(&s.url, 1024)).await {
        Err(BackendError::Failed(m)) => assert!(m.contains("not HTTP"), "{m}"),
        other => panic!("{other:?}"),
    }
    let cut: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{\"id\"";
    let s = server(vec![(cut, After::Close)]).await;
    match post(&client(&s.url, 1024)).await {
        Err(BackendError::Failed(m)) => assert!(m.contains("inside the answer"), "{m}"),
        other => panic!("{other:?}"),
    }
    // A write whose answer was cut is never sent again.
    assert_eq!(s.requests.load(Ordering::SeqCst), 1);
}
