//! `Idempotency-Key`s in the database every gateway shares: a retry a load balancer sends to
//! another instance gets the first answer too. A key is held by an insert (the primary key
//! decides between two instances), answered by an update, released by a delete; a key held
//! longer than the lease without an answer (its gateway died) is taken over, and keys older
//! than the window are forgotten.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::Conn;
use crate::backend::BoxFuture;
use crate::backend::keys::{Kept, KeyStore, Seen};

/// The key store over the backend's pool.
pub struct PgKeys {
    conn: Arc<Conn>,
    /// When expired keys were last deleted (seconds since the epoch).
    swept: AtomicU64,
}

/// Expired keys are deleted at most this often.
const SWEEP_EVERY_S: u64 = 60;

impl PgKeys {
    pub(super) fn new(conn: Arc<Conn>) -> Self {
        Self {
            conn,
            swept: AtomicU64::new(0),
        }
    }

    async fn seen(
        &self,
        caller: &str,
        key: &str,
        hash: [u8; 32],
        window: Duration,
        lease: Duration,
    ) -> Result<Seen, String> {
        let client = self.conn.client().await.map_err(|e| e.to_string())?;
        let (window_s, lease_s) = (window.as_secs_f64(), lease.as_secs_f64());
        let hash = hash.as_slice();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if now.saturating_sub(self.swept.load(Ordering::Relaxed)) >= SWEEP_EVERY_S {
            self.swept.store(now, Ordering::Relaxed);
            client
                .execute(
                    "DELETE FROM idempotency_keys WHERE at < now() - $1 * interval '1 second'",
                    &[&window_s],
                )
                .await
                .map_err(|e| e.to_string())?;
        }
        for _ in 0..3 {
            let held = client
                .query_opt(
                    "INSERT INTO idempotency_keys (caller, key, body_hash) VALUES ($1, $2, $3)
                     ON CONFLICT (caller, key) DO UPDATE
                       SET body_hash = excluded.body_hash, status = NULL, content_type = NULL,
                           body = NULL, at = now()
                       WHERE idempotency_keys.at < now() - $4 * interval '1 second'
                          OR (idempotency_keys.status IS NULL
                              AND idempotency_keys.at < now() - $5 * interval '1 second')
                     RETURNING 1",
                    &[&caller, &key, &hash, &window_s, &lease_s],
                )
                .await
                .map_err(|e| e.to_string())?;
            if held.is_some() {
                return Ok(Seen::Fresh);
            }
            let row = client
                .query_opt(
                    "SELECT body_hash, status, content_type, body FROM idempotency_keys
                     WHERE caller = $1 AND key = $2",
                    &[&caller, &key],
                )
                .await
                .map_err(|e| e.to_string())?;
            // Released between the two statements: try to hold it again.
            let Some(row) = row else { continue };
            let stored: Vec<u8> = row.try_get(0).map_err(|e| e.to_string())?;
            if stored != hash {
                return Ok(Seen::Mismatch);
            }
            let status: Option<i32> = row.try_get(1).map_err(|e| e.to_string())?;
            let Some(status) = status else {
                return Ok(Seen::Running);
            };
            let content_type: Option<String> = row.try_get(2).map_err(|e| e.to_string())?;
            let body: Option<Vec<u8>> = row.try_get(3).map_err(|e| e.to_string())?;
            return Ok(Seen::Replay(Kept {
                status: u16::try_from(status).unwrap_or(500),
                content_type: content_type.and_then(|c| http::HeaderValue::from_str(&c).ok()),
                body: body.unwrap_or_default().into(),
            }));
        }
        Err("the key changed hands three times; try again".into())
    }
}

impl KeyStore for PgKeys {
    fn begin<'a>(
        &'a self,
        caller: &'a str,
        key: &'a str,
        body_hash: [u8; 32],
        window: Duration,
        lease: Duration,
    ) -> BoxFuture<'a, Result<Seen, String>> {
        Box::pin(self.seen(caller, key, body_hash, window, lease))
    }

    fn finish<'a>(&'a self, caller: &'a str, key: &'a str, kept: Kept) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let Ok(client) = self.conn.client().await else {
                return;
            };
            let done = if kept.status >= 500 {
                client
                    .execute(
                        "DELETE FROM idempotency_keys WHERE caller = $1 AND key = $2",
                        &[&caller, &key],
                    )
                    .await
            } else {
                let status = i32::from(kept.status);
                let ct = kept
                    .content_type
                    .as_ref()
                    .and_then(|c| c.to_str().ok())
                    .map(str::to_owned);
                client
                    .execute(
                        "UPDATE idempotency_keys SET status = $3, content_type = $4, body = $5
                         WHERE caller = $1 AND key = $2",
                        &[&caller, &key, &status, &ct, &kept.body.as_ref()],
                    )
                    .await
            };
            if let Err(e) = done {
                // The key stays held until its lease ends: a retry is then run again.
                tracing::warn!(error = %e, "could not record an idempotent answer");
            }
        })
    }

    fn release(&self, caller: &str, key: &str) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (conn, caller, key) = (Arc::clone(&self.conn), caller.to_owned(), key.to_owned());
        rt.spawn(async move {
            if let Ok(client) = conn.client().await {
                let _ = client
                    .execute(
                        "DELETE FROM idempotency_keys WHERE caller = $1 AND key = $2 AND status IS NULL",
                        &[&caller, &key],
                    )
                    .await;
            }
        });
    }
}
