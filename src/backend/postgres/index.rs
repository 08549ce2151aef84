//! The numericId index of a SCIM provider in the shared database (`scim_ids`, one id space per
//! provider URL): a mirror's SCIM shadow numbers its users here, so that gateways copying to
//! it never give one number twice.

use std::sync::Arc;

use super::Conn;
use crate::backend::index::SharedIndex;
use crate::backend::{BackendError, BoxFuture};

/// The index of the provider at `provider`.
pub struct PgIndex {
    conn: Arc<Conn>,
    provider: String,
}

impl PgIndex {
    pub(super) fn new(conn: Arc<Conn>, provider: String) -> Self {
        Self { conn, provider }
    }
}

fn failed(e: tokio_postgres::Error) -> BackendError {
    BackendError::Failed(format!("index: {e}"))
}

impl SharedIndex for PgIndex {
    fn reserve(&self) -> BoxFuture<'_, Result<i64, BackendError>> {
        Box::pin(async move {
            let client = self.conn.client().await?;
            // A number bound by a lookup (a user the provider had before) is skipped: the
            // identity moves on at each try.
            for _ in 0..16 {
                match client
                    .query_one(
                        "INSERT INTO scim_ids (provider) VALUES ($1) RETURNING numeric_id",
                        &[&self.provider],
                    )
                    .await
                {
                    Ok(row) => return Ok(i64::from(row.try_get::<_, i32>(0).map_err(failed)?)),
                    Err(e) if super::conflict(&e) => continue,
                    Err(e) => return Err(super::db(e)),
                }
            }
            Err(BackendError::Failed(
                "index: no free number after 16 tries".into(),
            ))
        })
    }

    fn bind<'a>(&'a self, n: i64, remote: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let client = self.conn.client().await?;
            let n = i32::try_from(n).map_err(|_| BackendError::NotFound)?;
            client
                .execute(
                    "INSERT INTO scim_ids (provider, numeric_id, remote_id) VALUES ($1, $2, $3)
                     ON CONFLICT (provider, numeric_id) DO UPDATE SET remote_id = excluded.remote_id",
                    &[&self.provider, &n, &remote],
                )
                .await
                .map_err(failed)?;
            Ok(())
        })
    }

    fn release(&self, n: i64) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            let client = self.conn.client().await?;
            let n = i32::try_from(n).unwrap_or(0);
            client
                .execute(
                    "DELETE FROM scim_ids WHERE provider = $1 AND numeric_id = $2 AND remote_id IS NULL",
                    &[&self.provider, &n],
                )
                .await
                .map_err(failed)?;
            Ok(())
        })
    }

    fn remote(&self, n: i64) -> BoxFuture<'_, Result<Option<String>, BackendError>> {
        Box::pin(async move {
            let Ok(n) = i32::try_from(n) else {
                return Ok(None);
            };
            let client = self.conn.client().await?;
            let row = client
                .query_opt(
                    "SELECT remote_id FROM scim_ids WHERE provider = $1 AND numeric_id = $2",
                    &[&self.provider, &n],
                )
                .await
                .map_err(failed)?;
            Ok(row.and_then(|r| r.get::<_, Option<String>>(0)))
        })
    }

    fn forget<'a>(&'a self, remote: &'a str) -> BoxFuture<'a, Result<(), BackendError>> {
        Box::pin(async move {
            let client = self.conn.client().await?;
            client
                .execute(
                    "DELETE FROM scim_ids WHERE provider = $1 AND remote_id = $2",
                    &[&self.provider, &remote],
                )
                .await
                .map_err(failed)?;
            Ok(())
        })
    }
}
