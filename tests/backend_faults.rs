//! A remote backend that fails: refused connections, resets after the request arrived, no
//! answer, an answer trickling in, garbage, 503, a redirect; ambient proxy variables. The
//! gateway answers each in the caller's dialect, never hangs, and never sends a write twice
//! once its bytes may have reached the backend.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::faulty::{Fault, faulty, gateway};
use serde_json::Value;
use userbridge::config::Config;

fn vc_token(config: &Config) -> String {
    common::dialect_token(config, "vc-user-service")
}

/// A vc-user-service create through a gateway whose backend misbehaves: the status, the body
/// and how long it took.
async fn create_through(url: String) -> (u16, Value, Duration, Option<String>) {
    let (base, config, _stop) = gateway(url, |_| {}).await;
    let started = Instant::now();
    let r = common::vc_create(&base, &vc_token(&config), "ann").await;
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

/// A backend that does not finish answering within `timeout_ms`: the dialect's 504, in time,
/// and the write sent once.
async fn times_out_once(fault: Fault) {
    let (url, seen) = faulty(fault).await;
    let (status, body, took, _) = create_through(url).await;
    assert_eq!(status, 504, "{body}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(seen.load(Ordering::SeqCst), 1, "the write was sent again");
}

#[tokio::test]
async fn silence_is_504_in_time_and_never_resent() {
    times_out_once(Fault::Silence).await;
}

#[tokio::test]
async fn an_answer_trickling_past_the_timeout_is_504_in_time_and_never_resent() {
    times_out_once(Fault::SlowBody).await;
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

#[tokio::test]
async fn a_redirect_is_not_followed_through_either_transport() {
    // Where the redirect points: a listener that counts who comes.
    let (elsewhere, followed) = faulty(Fault::Busy).await;
    let port: u16 = elsewhere
        .trim_start_matches("http://127.0.0.1:")
        .trim_end_matches("/hook")
        .parse()
        .unwrap();
    let (url, seen) = faulty(Fault::Redirect(port)).await;
    let (status, body, _, _) = create_through(url.clone()).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    // The same through reqwest (an explicit proxy takes that path): the proxy is the redirecting
    // listener itself, which answers 307 to the forwarded request.
    let (base, config, _stop) = gateway("http://127.0.0.1:9/hook".into(), |c| {
        if let userbridge::config::BackendConfig::Webhook { http, .. } = &mut c.backend {
            http.proxy = Some(url.trim_end_matches("/hook").to_owned());
        }
    })
    .await;
    let r = common::vc_create(&base, &vc_token(&config), "bob").await;
    assert_eq!(r.status(), 502);
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        followed.load(Ordering::SeqCst),
        0,
        "a redirect was followed"
    );
}

#[test]
fn ambient_proxy_variables_are_ignored() {
    // A "proxy" that counts connections, named in every variable clients usually honour.
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    proxy.set_nonblocking(true).unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let receiver = rt.block_on(common::peers::WebhookReceiver::start(&[]));
    let hook = receiver.url.clone();
    let gw = common::binary::start_with(
        "info",
        |c| {
            let start = c.find("[backend]").unwrap();
            let end = start + c[start..].find("\n\n").unwrap();
            format!(
                "{}[backend]\nkind = \"webhook\"\nurl = \"{hook}\"\n{}",
                &c[..start],
                &c[end..]
            )
        },
        &[
            ("HTTP_PROXY", &proxy_url),
            ("http_proxy", &proxy_url),
            ("HTTPS_PROXY", &proxy_url),
            ("ALL_PROXY", &proxy_url),
        ],
    );
    let status = rt
        .block_on(common::vc_create(&gw.base, "demo-vc-token", "carl"))
        .status()
        .as_u16();
    assert_eq!(status, 200, "the backend was not reached directly");
    assert!(proxy.accept().is_err(), "the ambient proxy was used");
}
