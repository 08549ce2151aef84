//! Where `Idempotency-Key`s are kept ([`crate::server::idempotency`]): in the gateway's memory,
//! or — when the backend is shared by several gateways — in the backend itself, so that a
//! client's retry that a load balancer sends to another instance still gets the first answer.

use std::time::Duration;

use bytes::Bytes;

use super::BoxFuture;

/// A kept answer.
#[derive(Clone, Debug)]
pub struct Kept {
    /// Status.
    pub status: u16,
    /// `Content-Type`, if any.
    pub content_type: Option<http::HeaderValue>,
    /// Body.
    pub body: Bytes,
}

/// What became of a key when a request carrying it began.
#[derive(Debug)]
pub enum Seen {
    /// Not seen (or expired, or abandoned): the request goes ahead, and the key is now held.
    Fresh,
    /// Answered before: this answer, again.
    Replay(Kept),
    /// The first request with this key is still running.
    Running,
    /// The key was used with another body.
    Mismatch,
}

/// A store of keys, scoped by caller.
pub trait KeyStore: Send + Sync {
    /// Holds `key` of `caller` for a request whose body hashes to `body_hash`, or says why not.
    /// Keys older than `window` are forgotten; a key held longer than `lease` without an
    /// answer (its gateway died) is taken over. An error is a store that cannot be reached
    /// (the request is refused with a 503).
    fn begin<'a>(
        &'a self,
        caller: &'a str,
        key: &'a str,
        body_hash: [u8; 32],
        window: Duration,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Seen, String>>;

    /// Records the answer of the request holding `key` (a 5xx releases the key instead, so
    /// that a retry is tried again).
    fn finish<'a>(&'a self, caller: &'a str, key: &'a str, kept: Kept) -> BoxFuture<'a, ()>;

    /// Releases `key` without an answer (the request was dropped).
    fn release(&self, caller: &str, key: &str);
}
