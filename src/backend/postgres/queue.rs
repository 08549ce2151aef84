//! A mirror's queue of copies in the database its primary is (`mirror_pending`): every
//! gateway's worker claims the oldest entry that is due and whose user has no earlier entry
//! waiting (`FOR UPDATE SKIP LOCKED`), so that copies of different users go in parallel across
//! gateways and copies of one user in the order they were queued. The entry stays locked while
//! it is copied; a gateway killed in the middle releases it at once (its connection closes)
//! and another takes it up.

use std::sync::Arc;

use super::Conn;
use crate::backend::BackendError;
use crate::backend::BoxFuture;
use crate::backend::mirror::queue::{Handler, Outcome, Queue, Raw, Taken};

/// The queue over the backend's pool.
pub struct PgQueue {
    conn: Arc<Conn>,
}

impl PgQueue {
    pub(super) fn new(conn: Arc<Conn>) -> Self {
        Self { conn }
    }
}

fn failed(e: tokio_postgres::Error) -> BackendError {
    BackendError::Failed(format!("mirror queue: {e}"))
}

impl Queue for PgQueue {
    fn push<'a>(
        &'a self,
        op: &'a str,
        dialect: &'a str,
        user: &'a str,
        doc: String,
        secrets: String,
    ) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let client = self.conn.client().await?;
            let stmt = client
                .prepare_cached(
                    "INSERT INTO mirror_pending (op, dialect, user_key, doc, secrets)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .await
                .map_err(failed)?;
            client
                .execute(&stmt, &[&op, &dialect, &user, &doc, &secrets])
                .await
                .map_err(failed)?;
            Ok(())
        })
    }

    fn take<'a>(
        &'a self,
        now_ms: i64,
        handle: Handler<'a>,
    ) -> BoxFuture<'a, Result<Taken, BackendError>> {
        Box::pin(async move {
            let mut client = self.conn.client().await?;
            let tx = client.transaction().await.map_err(failed)?;
            let row = tx
                .query_opt(
                    "SELECT p.seq, p.op, p.dialect, p.doc, p.secrets, p.attempts, p.next_at
                     FROM mirror_pending p
                     WHERE p.next_at <= $1
                       AND NOT EXISTS (SELECT 1 FROM mirror_pending q
                                       WHERE q.user_key = p.user_key AND q.seq < p.seq)
                     ORDER BY p.seq LIMIT 1
                     FOR UPDATE SKIP LOCKED",
                    &[&now_ms],
                )
                .await
                .map_err(failed)?;
            let Some(row) = row else {
                tx.rollback().await.map_err(failed)?;
                return Ok(Taken::Empty);
            };
            let attempts: i32 = row.try_get(5).map_err(failed)?;
            let raw = Raw {
                seq: row.try_get(0).map_err(failed)?,
                op: row.try_get(1).map_err(failed)?,
                dialect: row.try_get(2).map_err(failed)?,
                doc: row.try_get(3).map_err(failed)?,
                secrets: row.try_get(4).map_err(failed)?,
                attempts: i64::from(attempts),
                next_at: row.try_get(6).map_err(failed)?,
            };
            let seq = raw.seq;
            let outcome = handle(raw).await;
            match &outcome {
                Outcome::Done => {
                    tx.execute("DELETE FROM mirror_pending WHERE seq = $1", &[&seq])
                        .await
                        .map_err(failed)?;
                }
                Outcome::Retry { error, next_at } => {
                    tx.execute(
                        "UPDATE mirror_pending SET attempts = attempts + 1, next_at = $2, error = $3
                         WHERE seq = $1",
                        &[&seq, next_at, error],
                    )
                    .await
                    .map_err(failed)?;
                }
                Outcome::SetAside { error } => {
                    tx.execute(
                        "INSERT INTO mirror_dead (seq, dialect, doc, error, at)
                         SELECT seq, dialect, doc, $2, $3 FROM mirror_pending WHERE seq = $1
                         ON CONFLICT (seq) DO NOTHING",
                        &[&seq, error, &chrono::Utc::now().to_rfc3339()],
                    )
                    .await
                    .map_err(failed)?;
                    tx.execute("DELETE FROM mirror_pending WHERE seq = $1", &[&seq])
                        .await
                        .map_err(failed)?;
                }
            }
            tx.commit().await.map_err(failed)?;
            Ok(Taken::Handled(outcome))
        })
    }

    fn counts(&self) -> BoxFuture<'_, Result<(i64, i64), BackendError>> {
        Box::pin(async move {
            let client = self.conn.client().await?;
            let row = client
                .query_one(
                    "SELECT (SELECT count(*) FROM mirror_pending), (SELECT count(*) FROM mirror_dead)",
                    &[],
                )
                .await
                .map_err(failed)?;
            Ok((
                row.try_get(0).map_err(failed)?,
                row.try_get(1).map_err(failed)?,
            ))
        })
    }
}
