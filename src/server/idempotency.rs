//! `Idempotency-Key` (draft-ietf-httpapi-idempotency-key-header): a client that retries a write
//! with the same key and the same body gets the first answer again, not a second write.
//!
//! Keys are scoped by caller (a key of one credential never answers another's request), kept
//! for `limits.idempotency_window_s`. Answers below 500 are kept; a 5xx releases the key, so
//! that a retry is tried again (creates stay single through the store's uniqueness, updates are
//! idempotent in themselves). While the first request runs, a retry gets a 409; the same key
//! with another body gets a 400.
//!
//! Where the keys are kept is a [`KeyStore`]: this gateway's memory ([`Keys`], at most
//! `limits.idempotency_max_keys`, the oldest going first), or the backend when several gateways
//! share it (PostgreSQL), so that a retry sent to another instance is still recognised.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::backend::BoxFuture;
pub use crate::backend::keys::{Kept, KeyStore, Seen};

/// The header.
pub const HEADER: &str = "idempotency-key";
/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// What to do with a request that carries a key.
pub enum Begin {
    /// Answer this, as the first time.
    Replay(Kept),
    /// The first request with this key is still running.
    Running,
    /// The key was used with another body.
    Mismatch,
    /// The key store cannot be reached (503).
    Unavailable(String),
    /// Go ahead; report the answer through the guard.
    Fresh(Guard),
}

/// How long keys are kept (`limits.idempotency_window_s`), and how long a key may stay held
/// without an answer before another request takes it over (the request timeout, twice: its
/// gateway died).
#[derive(Debug, Clone, Copy)]
pub struct Windows {
    /// Keys older than this are forgotten.
    pub window: Duration,
    /// A key held without an answer for longer than this is abandoned.
    pub lease: Duration,
}

impl Windows {
    /// The windows `limits` sets.
    pub fn of(limits: &crate::config::Limits) -> Self {
        Windows {
            window: Duration::from_secs(limits.idempotency_window_s),
            lease: Duration::from_millis(limits.request_timeout_ms.saturating_mul(2)),
        }
    }
}

/// Looks `key` up for `caller` and a request `body` in `store`.
pub async fn begin(
    store: &Arc<dyn KeyStore>,
    windows: Windows,
    caller: &Arc<str>,
    key: &str,
    body: &[u8],
) -> Begin {
    let hash = crate::config::sha256(body);
    match store
        .begin(caller, key, hash, windows.window, windows.lease)
        .await
    {
        Ok(Seen::Fresh) => Begin::Fresh(Guard {
            store: Arc::clone(store),
            caller: Arc::clone(caller),
            key: Some(key.to_owned()),
        }),
        Ok(Seen::Replay(k)) => Begin::Replay(k),
        Ok(Seen::Running) => Begin::Running,
        Ok(Seen::Mismatch) => Begin::Mismatch,
        Err(e) => Begin::Unavailable(e),
    }
}

/// Releases the key unless the answer is recorded.
pub struct Guard {
    store: Arc<dyn KeyStore>,
    caller: Arc<str>,
    key: Option<String>,
}

impl Guard {
    /// Records the answer (kept when below 500, the key released otherwise).
    pub async fn finish(mut self, kept: Kept) {
        if let Some(key) = self.key.take() {
            self.store.finish(&self.caller, &key, kept).await;
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.store.release(&self.caller, &key);
        }
    }
}

enum State {
    Running,
    Done(Kept),
}

struct Entry {
    body_hash: [u8; 32],
    at: Instant,
    state: State,
}

type Key = (Arc<str>, String);

/// The entries, and their keys in insertion order (for expiry and eviction).
type Table = (HashMap<Key, Entry>, VecDeque<(Instant, Key)>);

/// The keys seen recently, in this gateway's memory.
pub struct Keys {
    capacity: usize,
    inner: Mutex<Table>,
}

impl Keys {
    /// A key store of at most `capacity` keys.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic while holding this lock leaves consistent data: keep using it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn seen(&self, caller: &str, key: &str, body_hash: [u8; 32], window: Duration) -> Seen {
        let now = Instant::now();
        let k: Key = (Arc::from(caller), key.to_owned());
        let mut g = self.lock();
        let (map, order) = &mut *g;
        // Expire, then make room.
        while let Some((at, old)) = order.front() {
            let expired = now.duration_since(*at) > window;
            if !expired && map.len() < self.capacity {
                break;
            }
            // Only drop the entry this queue slot was made for (a key re-used later has a
            // newer slot).
            if map.get(old).is_some_and(|e| e.at == *at) {
                map.remove(old);
            }
            order.pop_front();
        }
        match map.get(&k) {
            Some(e) if e.body_hash != body_hash => Seen::Mismatch,
            Some(Entry {
                state: State::Running,
                ..
            }) => Seen::Running,
            Some(Entry {
                state: State::Done(kept),
                ..
            }) => Seen::Replay(kept.clone()),
            None => {
                map.insert(
                    k.clone(),
                    Entry {
                        body_hash,
                        at: now,
                        state: State::Running,
                    },
                );
                order.push_back((now, k));
                Seen::Fresh
            }
        }
    }
}

impl KeyStore for Keys {
    fn begin<'a>(
        &'a self,
        caller: &'a str,
        key: &'a str,
        body_hash: [u8; 32],
        window: Duration,
        _lease: Duration,
    ) -> BoxFuture<'a, Result<Seen, String>> {
        // A held key lives as long as its request does here: a dropped request releases it.
        let seen = self.seen(caller, key, body_hash, window);
        Box::pin(async move { Ok(seen) })
    }

    fn finish<'a>(&'a self, caller: &'a str, key: &'a str, kept: Kept) -> BoxFuture<'a, ()> {
        let k: Key = (Arc::from(caller), key.to_owned());
        let mut g = self.lock();
        if kept.status >= 500 {
            g.0.remove(&k);
        } else if let Some(e) = g.0.get_mut(&k) {
            e.state = State::Done(kept);
        }
        Box::pin(async {})
    }

    fn release(&self, caller: &str, key: &str) {
        self.lock().0.remove(&(Arc::from(caller), key.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use bytes::Bytes;

    fn store(capacity: usize) -> Arc<dyn KeyStore> {
        Arc::new(Keys::new(capacity))
    }

    async fn begin_on(keys: &Arc<dyn KeyStore>, caller: &str, key: &str, body: &[u8]) -> Begin {
        let w = Windows {
            window: Duration::from_secs(60),
            lease: Duration::from_secs(20),
        };
        begin(keys, w, &Arc::from(caller), key, body).await
    }

    fn kept(status: u16) -> Kept {
        Kept {
            status,
            content_type: None,
            body: Bytes::from_static(b"{}"),
        }
    }

    #[tokio::test]
    async fn replay_running_mismatch_and_release() {
        let keys = store(10);
        let Begin::Fresh(g) = begin_on(&keys, "a", "k1", b"x").await else {
            panic!("fresh")
        };
        assert!(matches!(
            begin_on(&keys, "a", "k1", b"x").await,
            Begin::Running
        ));
        assert!(matches!(
            begin_on(&keys, "a", "k1", b"y").await,
            Begin::Mismatch
        ));
        // Another caller's key space.
        assert!(matches!(
            begin_on(&keys, "b", "k1", b"x").await,
            Begin::Fresh(_)
        ));
        g.finish(kept(200)).await;
        assert!(
            matches!(begin_on(&keys, "a", "k1", b"x").await, Begin::Replay(k) if k.status == 200)
        );
        // A 5xx releases the key; a dropped guard too.
        let Begin::Fresh(g) = begin_on(&keys, "a", "k2", b"x").await else {
            panic!("fresh")
        };
        g.finish(kept(504)).await;
        let Begin::Fresh(g) = begin_on(&keys, "a", "k2", b"x").await else {
            panic!("released")
        };
        drop(g);
        assert!(matches!(
            begin_on(&keys, "a", "k2", b"x").await,
            Begin::Fresh(_)
        ));
    }

    #[tokio::test]
    async fn capacity_drops_the_oldest() {
        let keys = store(2);
        for k in ["k1", "k2", "k3"] {
            if let Begin::Fresh(g) = begin_on(&keys, "a", k, b"x").await {
                g.finish(kept(200)).await;
            }
        }
        assert!(matches!(
            begin_on(&keys, "a", "k1", b"x").await,
            Begin::Fresh(_)
        ));
        assert!(matches!(
            begin_on(&keys, "a", "k3", b"x").await,
            Begin::Replay(_)
        ));
    }
}
