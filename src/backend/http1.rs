//! A small HTTP/1.1 client for plain-HTTP backends, driven inside the request's own task: no
//! connection task, no channel between the request and its connection, no pool lock. Each
//! serving thread keeps its own idle connections (`server::workers`); the request head is
//! written from a prefix made once (`Host`, `User-Agent`, `Accept`, `Authorization`), the body
//! in the same write.
//!
//! What it does not do, it refuses rather than guesses: an answer it cannot frame (no length,
//! no chunking, keep-alive asked) is read to the end of the connection, and a connection that
//! ended an answer in any doubtful way is never reused. A pooled connection is checked before
//! use (an idle connection the backend closed reads as ended) and never kept past its idle
//! time, so that a write is sent on a connection that is believed open; one that still fails
//! after its bytes may have left is reported, never resent (`outbound` keeps the rule: only a
//! failed connect is retried).

use std::cell::RefCell;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::outbound::Reply;

/// Idle connections kept per serving thread.
const MAX_IDLE: usize = 64;
/// How long an idle connection is kept.
const IDLE_FOR: Duration = Duration::from_secs(30);
/// The most response headers read.
const MAX_HEADERS: usize = 64;
/// The longest response head read.
const MAX_HEAD: usize = 16 * 1024;

/// How a call failed.
#[derive(Debug)]
pub enum Fault {
    /// No connection could be made: nothing was sent.
    Connect(std::io::Error),
    /// The connection failed or closed during the exchange: the request may have arrived.
    Io(String),
    /// The answer is not HTTP, or breaks a bound.
    Answer(String),
}

struct Idle {
    stream: TcpStream,
    since: Instant,
}

/// A plain-HTTP endpoint: `host:port`, the base path, the fixed part of every request head.
pub struct Http1 {
    authority: String,
    base_path: String,
    /// `Host`, `User-Agent`, `Accept` and `Authorization` lines, each ending in CRLF.
    fixed: Vec<u8>,
    connect_timeout: Duration,
    max_reply_bytes: usize,
    idle: thread_local::ThreadLocal<RefCell<Vec<Idle>>>,
}

impl Http1 {
    /// An endpoint for `url` (`http://host:port/path`), with `auth` as its `Authorization`
    /// value and `accept` as what it asks for.
    pub fn new(
        url: &reqwest::Url,
        auth: Option<&str>,
        accept: &str,
        connect_timeout: Duration,
        max_reply_bytes: usize,
    ) -> Result<Self, String> {
        // `host_str` keeps an IPv6 address in its brackets, as an authority needs it.
        let host = url
            .host_str()
            .ok_or_else(|| format!("backend url `{url}`: no host"))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let authority = format!("{host}:{port}");
        let host_header = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        let mut fixed = Vec::with_capacity(160);
        for (name, value) in [
            ("Host", host_header.as_str()),
            (
                "User-Agent",
                concat!("userbridge/", env!("CARGO_PKG_VERSION")),
            ),
            ("Accept", accept),
        ]
        .into_iter()
        .chain(auth.map(|a| ("Authorization", a)))
        {
            if value.bytes().any(|b| b == b'\r' || b == b'\n') {
                return Err(format!("backend {name}: not a valid header value"));
            }
            fixed.extend_from_slice(name.as_bytes());
            fixed.extend_from_slice(b": ");
            fixed.extend_from_slice(value.as_bytes());
            fixed.extend_from_slice(b"\r\n");
        }
        let mut base_path = url.path().to_owned();
        if let Some(q) = url.query() {
            base_path.push('?');
            base_path.push_str(q);
        }
        Ok(Self {
            authority,
            base_path,
            fixed,
            connect_timeout,
            max_reply_bytes,
            idle: thread_local::ThreadLocal::new(),
        })
    }

    /// The request head and body, ready to write: `method` to the base path, or to the base
    /// path (without its trailing `/`) followed by `path`.
    pub fn request(
        &self,
        method: &http::Method,
        path: &str,
        body: Option<(&str, &[u8])>,
        if_match: Option<&str>,
    ) -> Result<Vec<u8>, Fault> {
        let body_len = body.map_or(0, |(_, b)| b.len());
        let mut out = Vec::with_capacity(
            64 + self.base_path.len() + path.len() + self.fixed.len() + body_len,
        );
        out.extend_from_slice(method.as_str().as_bytes());
        out.push(b' ');
        if path.is_empty() {
            out.extend_from_slice(self.base_path.as_bytes());
        } else {
            out.extend_from_slice(self.base_path.trim_end_matches('/').as_bytes());
            out.extend_from_slice(path.as_bytes());
        }
        if path
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(Fault::Io("bad backend path".into()));
        }
        out.extend_from_slice(b" HTTP/1.1\r\n");
        out.extend_from_slice(&self.fixed);
        if let Some(m) = if_match {
            if m.bytes().any(|b| b == b'\r' || b == b'\n') {
                return Err(Fault::Io("bad If-Match value".into()));
            }
            out.extend_from_slice(b"If-Match: ");
            out.extend_from_slice(m.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if let Some((content_type, b)) = body {
            out.extend_from_slice(b"Content-Type: ");
            out.extend_from_slice(content_type.as_bytes());
            out.extend_from_slice(b"\r\nContent-Length: ");
            out.extend_from_slice(itoa::Buffer::new().format(b.len()).as_bytes());
            out.extend_from_slice(b"\r\n\r\n");
            out.extend_from_slice(b);
        } else if method_has_body(method) {
            out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
        } else {
            out.extend_from_slice(b"\r\n");
        }
        Ok(out)
    }

    /// Sends `request` (from [`Http1::request`]) and reads the answer.
    pub async fn send(&self, request: &[u8], head_only: bool) -> Result<Reply, Fault> {
        let mut stream = match self.checkout() {
            Some(s) => s,
            None => self.connect().await?,
        };
        stream
            .write_all(request)
            .await
            .map_err(|e| Fault::Io(format!("sending the request: {e}")))?;
        let (answer, reusable) = self.read(&mut stream, head_only).await?;
        if reusable {
            self.checkin(stream);
        }
        Ok(answer)
    }

    async fn connect(&self) -> Result<TcpStream, Fault> {
        let stream = tokio::time::timeout(
            self.connect_timeout,
            TcpStream::connect(self.authority.as_str()),
        )
        .await
        .map_err(|_| {
            Fault::Connect(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timed out",
            ))
        })?
        .map_err(Fault::Connect)?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// An idle connection of this thread that is still open.
    fn checkout(&self) -> Option<TcpStream> {
        let idle = self.idle.get()?;
        let mut idle = idle.try_borrow_mut().ok()?;
        while let Some(c) = idle.pop() {
            if c.since.elapsed() >= IDLE_FOR {
                continue;
            }
            // An idle connection has nothing to read: anything there (an end, a reset, stray
            // bytes) makes it unusable.
            let mut probe = [0u8; 1];
            match c.stream.try_read(&mut probe) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Some(c.stream),
                _ => continue,
            }
        }
        None
    }

    fn checkin(&self, stream: TcpStream) {
        let idle = self.idle.get_or(|| RefCell::new(Vec::new()));
        if let Ok(mut idle) = idle.try_borrow_mut() {
            idle.retain(|c| c.since.elapsed() < IDLE_FOR);
            if idle.len() < MAX_IDLE {
                idle.push(Idle {
                    stream,
                    since: Instant::now(),
                });
            }
        }
    }

    /// Reads one answer: the head, then the body by its length, its chunks, or to the end.
    /// Says whether the connection may carry another request.
    async fn read(&self, stream: &mut TcpStream, head_only: bool) -> Result<(Reply, bool), Fault> {
        let mut buf = BytesMut::with_capacity(4096);
        let mut parse_now = false;
        let (status, etag, framing, mut reusable, head_len) = loop {
            // What is already here after an interim answer is parsed before reading more.
            if !std::mem::take(&mut parse_now) && !fill(stream, &mut buf).await? {
                return Err(Fault::Io(if buf.is_empty() {
                    "the backend closed the connection without answering".into()
                } else {
                    "the backend closed the connection inside the answer".into()
                }));
            }
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let code = resp.code.unwrap_or(0);
                    if (100..200).contains(&code) {
                        // An interim answer (we send no `Expect`): skip it.
                        buf.advance(n);
                        parse_now = !buf.is_empty();
                        continue;
                    }
                    let status = StatusCode::from_u16(code)
                        .map_err(|_| Fault::Answer(format!("an answer with status {code}")))?;
                    let (framing, keep) = framing(&resp, head_only || code == 204 || code == 304)?;
                    let etag = resp
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("etag"))
                        .and_then(|h| std::str::from_utf8(h.value).ok())
                        .map(str::to_owned);
                    break (status, etag, framing, keep, n);
                }
                Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
                Ok(httparse::Status::Partial) => {
                    return Err(Fault::Answer("an answer head too large".into()));
                }
                Err(e) => return Err(Fault::Answer(format!("an answer that is not HTTP: {e}"))),
            }
        };
        buf.advance(head_len);
        let body = match framing {
            Framing::Length(n) => {
                if n > self.max_reply_bytes {
                    return Err(self.too_large());
                }
                buf.reserve(n.saturating_sub(buf.len()));
                while buf.len() < n {
                    more(stream, &mut buf).await?;
                }
                // Bytes past the answer are not ours to read: the connection is not reused.
                reusable &= buf.len() == n;
                buf.split_to(n).freeze()
            }
            Framing::Chunked => {
                let body = self.read_chunked(stream, &mut buf).await?;
                reusable &= buf.is_empty();
                body
            }
            Framing::ToEnd => {
                reusable = false;
                loop {
                    if buf.len() > self.max_reply_bytes {
                        return Err(self.too_large());
                    }
                    if !fill(stream, &mut buf).await? {
                        break;
                    }
                }
                buf.freeze()
            }
        };
        Ok((Reply { status, etag, body }, reusable))
    }

    async fn read_chunked(
        &self,
        stream: &mut TcpStream,
        buf: &mut BytesMut,
    ) -> Result<Bytes, Fault> {
        let mut body = BytesMut::new();
        loop {
            // A chunk size line.
            let (size, used) = loop {
                match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((used, size))) => break (size, used),
                    Ok(httparse::Status::Partial) if buf.len() < 1024 => {
                        more(stream, buf).await?;
                    }
                    _ => return Err(Fault::Answer("a chunked answer that is not".into())),
                }
            };
            buf.advance(used);
            let size = usize::try_from(size).map_err(|_| self.too_large())?;
            if body.len().saturating_add(size) > self.max_reply_bytes {
                return Err(self.too_large());
            }
            if size == 0 {
                // Trailers, then the blank line.
                loop {
                    match find_crlf(buf) {
                        Some(0) => {
                            buf.advance(2);
                            return Ok(body.freeze());
                        }
                        Some(n) if n < 8192 => buf.advance(n + 2),
                        None if buf.len() < 8192 => more(stream, buf).await?,
                        _ => return Err(Fault::Answer("trailers too large".into())),
                    }
                }
            }
            while buf.len() < size + 2 {
                more(stream, buf).await?;
            }
            body.extend_from_slice(&buf[..size]);
            if &buf[size..size + 2] != b"\r\n" {
                return Err(Fault::Answer("a chunk without its end".into()));
            }
            buf.advance(size + 2);
        }
    }

    fn too_large(&self) -> Fault {
        Fault::Answer(format!(
            "an answer larger than {} bytes",
            self.max_reply_bytes
        ))
    }
}

/// How an answer's body is delimited.
enum Framing {
    Length(usize),
    Chunked,
    ToEnd,
}

/// The body's framing (RFC 9112 §6.3) and whether the connection stays open after it.
fn framing(resp: &httparse::Response<'_, '_>, no_body: bool) -> Result<(Framing, bool), Fault> {
    let mut keep = resp.version == Some(1);
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| Fault::Answer("an answer with a bad Content-Length".into()))?;
            if length.is_some_and(|l| l != n) {
                return Err(Fault::Answer("an answer with two lengths".into()));
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            if v.trim().rsplit(',').next().map(str::trim) == Some("chunked") {
                chunked = true;
            } else {
                return Err(Fault::Answer(format!("an answer in `{v}` transfer coding")));
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            for token in v.split(',').map(str::trim) {
                match token {
                    "close" => keep = false,
                    "keep-alive" => keep = true,
                    _ => {}
                }
            }
        }
    }
    if no_body {
        return Ok((Framing::Length(0), keep));
    }
    if chunked {
        // A length beside chunking is ignored (§6.3), and the connection not reused.
        return Ok((Framing::Chunked, keep && length.is_none()));
    }
    Ok(match length {
        Some(n) => (Framing::Length(n), keep),
        None => (Framing::ToEnd, false),
    })
}

/// Reads what the backend sent next into `buf`; false at the end of the connection.
async fn fill(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<bool, Fault> {
    buf.reserve(4096);
    match stream.read_buf(buf).await {
        Ok(n) => Ok(n > 0),
        Err(e) => Err(Fault::Io(format!("reading the answer: {e}"))),
    }
}

/// [`fill`], where the answer is not whole yet: its end is an error.
async fn more(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<(), Fault> {
    if fill(stream, buf).await? {
        Ok(())
    } else {
        Err(Fault::Io(
            "the backend closed the connection inside the answer".into(),
        ))
    }
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

fn method_has_body(m: &http::Method) -> bool {
    matches!(
        *m,
        http::Method::POST | http::Method::PUT | http::Method::PATCH
    )
}
