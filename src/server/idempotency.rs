//! `Idempotency-Key` (draft-ietf-httpapi-idempotency-key-header): a client that retries a write
//! with the same key and the same body gets the first answer again, not a second write.
//!
//! Keys are scoped by caller (a key of one credential never answers another's request), kept
//! in memory for `limits.idempotency_window_s` and at most `limits.idempotency_max_keys` at
//! once (the oldest go first). Answers below 500 are kept; a 5xx releases the key, so that a
//! retry is tried again (creates stay single through the store's uniqueness, updates are
//! idempotent in themselves). While the first request runs, a retry gets a 409; the same key
//! with another body gets a 400.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

/// The header.
pub const HEADER: &str = "idempotency-key";
/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// A kept answer.
#[derive(Clone, Debug)]
pub struct Kept {
    /// Status.
    pub status: u16,
    /// `Content-Type`, if any.
    pub content_type: Option<hyper::header::HeaderValue>,
    /// Body.
    pub body: Bytes,
}

enum State {
    Running,
    Done(Kept),
}

struct Entry {
    body_hash: u64,
    at: Instant,
    state: State,
}

type Key = (Arc<str>, String);

/// The entries, and their keys in insertion order (for expiry and eviction).
type Table = (HashMap<Key, Entry>, VecDeque<(Instant, Key)>);

/// The keys seen recently.
pub struct Keys {
    window: Duration,
    capacity: usize,
    hasher: std::collections::hash_map::RandomState,
    inner: Mutex<Table>,
}

/// What to do with a request that carries a key.
pub enum Begin {
    /// Answer this, as the first time.
    Replay(Kept),
    /// The first request with this key is still running.
    Running,
    /// The key was used with another body.
    Mismatch,
    /// Go ahead; report the answer through the guard.
    Fresh(Guard),
}

/// Releases the key unless the answer is recorded.
pub struct Guard {
    keys: Arc<Keys>,
    key: Option<Key>,
}

impl Guard {
    /// Records the answer (kept when below 500, the key released otherwise).
    pub fn finish(mut self, kept: Kept) {
        if let Some(key) = self.key.take() {
            let mut g = self.keys.lock();
            if kept.status >= 500 {
                g.0.remove(&key);
            } else if let Some(e) = g.0.get_mut(&key) {
                e.state = State::Done(kept);
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.keys.lock().0.remove(&key);
        }
    }
}

impl Keys {
    /// A key store.
    pub fn new(window: Duration, capacity: usize) -> Self {
        Self {
            window,
            capacity: capacity.max(1),
            hasher: std::collections::hash_map::RandomState::new(),
            inner: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic while holding this lock leaves consistent data: keep using it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Looks `key` up for `caller` and a request `body`.
    pub fn begin(self: &Arc<Self>, caller: &Arc<str>, key: &str, body: &[u8]) -> Begin {
        let body_hash = self.hasher.hash_one(body);
        let now = Instant::now();
        let k: Key = (Arc::clone(caller), key.to_owned());
        let mut g = self.lock();
        let (map, order) = &mut *g;
        // Expire, then make room.
        while let Some((at, old)) = order.front() {
            let expired = now.duration_since(*at) > self.window;
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
            Some(e) if e.body_hash != body_hash => Begin::Mismatch,
            Some(Entry {
                state: State::Running,
                ..
            }) => Begin::Running,
            Some(Entry {
                state: State::Done(kept),
                ..
            }) => Begin::Replay(kept.clone()),
            None => {
                map.insert(
                    k.clone(),
                    Entry {
                        body_hash,
                        at: now,
                        state: State::Running,
                    },
                );
                order.push_back((now, k.clone()));
                Begin::Fresh(Guard {
                    keys: Arc::clone(self),
                    key: Some(k),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(status: u16) -> Kept {
        Kept {
            status,
            content_type: None,
            body: Bytes::from_static(b"{}"),
        }
    }

    #[test]
    fn replay_running_mismatch_and_release() {
        let keys = Arc::new(Keys::new(Duration::from_secs(60), 10));
        let a: Arc<str> = Arc::from("a");
        let Begin::Fresh(g) = keys.begin(&a, "k1", b"x") else {
            panic!("fresh")
        };
        assert!(matches!(keys.begin(&a, "k1", b"x"), Begin::Running));
        assert!(matches!(keys.begin(&a, "k1", b"y"), Begin::Mismatch));
        // Another caller's key space.
        assert!(matches!(
            keys.begin(&Arc::from("b"), "k1", b"x"),
            Begin::Fresh(_)
        ));
        g.finish(kept(200));
        assert!(matches!(keys.begin(&a, "k1", b"x"), Begin::Replay(k) if k.status == 200));
        // A 5xx releases the key; a dropped guard too.
        let Begin::Fresh(g) = keys.begin(&a, "k2", b"x") else {
            panic!("fresh")
        };
        g.finish(kept(504));
        let Begin::Fresh(g) = keys.begin(&a, "k2", b"x") else {
            panic!("released")
        };
        drop(g);
        assert!(matches!(keys.begin(&a, "k2", b"x"), Begin::Fresh(_)));
    }

    #[test]
    fn capacity_drops_the_oldest() {
        let keys = Arc::new(Keys::new(Duration::from_secs(60), 2));
        let a: Arc<str> = Arc::from("a");
        for k in ["k1", "k2", "k3"] {
            if let Begin::Fresh(g) = keys.begin(&a, k, b"x") {
                g.finish(kept(200));
            }
        }
        assert!(matches!(keys.begin(&a, "k1", b"x"), Begin::Fresh(_)));
        assert!(matches!(keys.begin(&a, "k3", b"x"), Begin::Replay(_)));
    }
}
