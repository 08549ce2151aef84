//! A backend that misbehaves on purpose, and a gateway in front of it (webhook backend, short
//! outbound timeouts).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use userbridge::config::{BackendConfig, Config, OutboundConfig};

/// What the faulty backend does once it has read a whole request.
#[derive(Clone, Copy)]
pub enum Fault {
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
    /// Answer 307 to `http://127.0.0.1:PORT/elsewhere`.
    Redirect(u16),
    /// Answer 200 headers at once, then the body a byte every 200 ms.
    SlowBody,
}

/// A backend that counts the requests it received and misbehaves.
pub async fn faulty(fault: Fault) -> (String, Arc<AtomicUsize>) {
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
                    Fault::Redirect(port) => {
                        let head = format!(
                            "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:{port}/elsewhere\r\ncontent-length: 0\r\n\r\n"
                        );
                        let _ = s.write_all(head.as_bytes()).await;
                    }
                    Fault::SlowBody => {
                        let body = br#"{"id":"slow","userName":"ann"}"#;
                        let head = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                            body.len()
                        );
                        let _ = s.write_all(head.as_bytes()).await;
                        for b in body {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            if s.write_all(&[*b]).await.is_err() {
                                break;
                            }
                        }
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
pub async fn gateway(
    url: String,
    tweak: impl FnOnce(&mut Config),
) -> (String, Config, tokio::sync::oneshot::Sender<()>) {
    let mut config = super::gateway::base_config();
    config.backend = BackendConfig::Webhook {
        url,
        token: None,
        http: OutboundConfig {
            connect_timeout_ms: 200,
            timeout_ms: 500,
            ..OutboundConfig::default()
        },
    };
    tweak(&mut config);
    let (base, tx) = super::gateway::serve_config(config.clone()).await;
    (base, config, tx)
}
