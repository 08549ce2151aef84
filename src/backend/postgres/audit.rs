//! The audit trail in the database (`[audit] sink = "postgres"`): every gateway appends to one
//! table, so a user's history is one query whichever instance served each write. A record is
//! the line the file sink would have written, kept as `json` (its members in their order);
//! the user it names and the id it touched are columns the database derives from it.

use super::{Conn, Settings};
use crate::config::GroupConfig;

/// The audit table over a pool of its own (one connection: the trail's writer is one thread).
pub struct AuditTable {
    conn: Conn,
}

impl AuditTable {
    /// A table in the database `settings` name; nothing is connected yet (the schema is
    /// migrated by the first call that connects, as for the backend).
    pub fn open(settings: &Settings<'_>, groups: &[GroupConfig]) -> Result<Self, String> {
        Ok(Self {
            conn: Conn::open(settings, groups)?,
        })
    }

    /// `host:port/db`, for messages.
    pub fn label(&self) -> &str {
        &self.conn.label
    }

    /// Appends `records` (JSON lines, in order) in one statement.
    pub async fn append(&self, records: &[String]) -> Result<(), String> {
        let client = self.conn.client().await.map_err(|e| e.to_string())?;
        client
            .execute(
                "INSERT INTO audit_trail (record)
                 SELECT rtrim(r, E'\\n')::json FROM unnest($1::text[]) r",
                &[&records],
            )
            .await
            .map(|_| ())
            .map_err(|e| format!("{}: {e}", self.conn.label))
    }

    /// Every record naming `user`, or touching an id a record naming `user` touched (an
    /// update by id alone), oldest first.
    pub async fn for_user(&self, user: &str) -> Result<Vec<String>, String> {
        let client = self.conn.client().await.map_err(|e| e.to_string())?;
        let rows = client
            .query(
                "SELECT record::text FROM audit_trail
                  WHERE user_name = $1
                     OR user_id IN (SELECT user_id FROM audit_trail
                                     WHERE user_name = $1 AND user_id IS NOT NULL)
                  ORDER BY seq",
                &[&user],
            )
            .await
            .map_err(|e| format!("{}: {e}", self.conn.label))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }
}
