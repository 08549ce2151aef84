//! The benchmark's backend: a tiny hyper server that reads each request body whole and answers
//! one fixed JSON document — a stored canonical user, which is what the `webhook` backend
//! protocol expects and what a pass-through proxy forwards back. It does as little as a
//! server can, so that the proxies in front of it are what the benchmark measures.
//!
//! `cargo run --release --example bench-backend -- 127.0.0.1:9100`

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

const USER: &str = r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:userbridge:params:scim:schemas:extension:2.0:User"],"id":"2819c223-7f76-453a-919d-413861904646","userName":"asmith","displayName":"Ann Smith","active":true,"emails":[{"value":"asmith@example.com","primary":true}],"groups":[{"value":"3","display":"Operators"},{"value":"4","display":"Auditors"}],"urn:userbridge:params:scim:schemas:extension:2.0:User":{"numericId":42,"authenticator":"LOCAL","description":"Storage and backup operator"},"meta":{"resourceType":"User","created":"2026-01-01T00:00:00Z","lastModified":"2026-01-01T00:00:00Z","version":"W/\"2\""}}"#;

async fn answer(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // Read the body whole, as a real backend would.
    let _ = req.into_body().collect().await;
    let mut r = Response::new(Full::new(Bytes::from_static(USER.as_bytes())));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9100".into())
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(answer))
                    .await;
            });
        }
    })
}
