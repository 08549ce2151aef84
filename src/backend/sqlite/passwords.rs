//! Passwords in the store ([`crate::password`]): a write's clear password is replaced by its
//! Argon2id hash before the operation reaches the writer thread, so the writer never waits on
//! a hash and the clear value never reaches the database. The hash is kept among the sealed
//! secrets as `{"phc": "$argon2id$…"}`; reads never return it, [`verify`] checks against it.
//! A store written before hashing is hashed once at start ([`migrate`]).

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value, json};

use crate::backend::BackendError;
pub use crate::password::hash_in;
use crate::password::{Hashing, PHC};

/// The hash stored for the user `id`, if it has a password.
pub fn stored_hash(tx: &Connection, id: &str) -> Result<Option<String>, BackendError> {
    let secrets: Option<String> = tx
        .prepare_cached("SELECT ub_open(id, secrets) FROM users WHERE id = ?1")
        .map_err(super::db)?
        .query_row(params![id], |r| r.get(0))
        .optional()
        .map_err(super::db)?;
    Ok(secrets
        .and_then(|s| serde_json::from_str::<Map<String, Value>>(&s).ok())
        .and_then(|m| m.get("password")?.get(PHC)?.as_str().map(str::to_owned)))
}

/// Hashes the clear passwords a store written before hashing kept (sealed or not), on every
/// CPU, once: a marker in `store_meta` says it is done. How many.
pub fn migrate(tx: &Connection, hashing: &Hashing) -> Result<usize, String> {
    let fail = |e: rusqlite::Error| e.to_string();
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    )
    .map_err(fail)?;
    let done: Option<String> = tx
        .query_row(
            "SELECT value FROM store_meta WHERE key = 'passwords'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(fail)?;
    if done.is_some() {
        return Ok(0);
    }
    let mut clear: Vec<(String, Map<String, Value>, String)> = Vec::new();
    {
        let mut stmt = tx
            .prepare("SELECT id, ub_open(id, secrets) FROM users WHERE secrets != '{}'")
            .map_err(fail)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(fail)?;
        for row in rows {
            let (id, text) = row.map_err(fail)?;
            let Ok(mut secrets) = serde_json::from_str::<Map<String, Value>>(&text) else {
                continue;
            };
            if let Some(Value::String(pw)) = secrets.shift_remove("password") {
                clear.push((id, secrets, pw));
            }
        }
    }
    let hashed = hash_all(hashing, clear)?;
    let n = hashed.len();
    for (id, mut secrets, phc) in hashed {
        secrets.insert("password".into(), json!({ PHC: phc }));
        tx.execute(
            "UPDATE users SET secrets = ub_seal(id, ?2) WHERE id = ?1",
            params![id, Value::Object(secrets).to_string()],
        )
        .map_err(fail)?;
    }
    tx.execute(
        "INSERT INTO store_meta (key, value) VALUES ('passwords', 'argon2id')",
        [],
    )
    .map_err(fail)?;
    Ok(n)
}

type Pending = (String, Map<String, Value>, String);

/// Each clear password replaced by its hash, the work spread over the CPUs.
fn hash_all(hashing: &Hashing, clear: Vec<Pending>) -> Result<Vec<Pending>, String> {
    if clear.is_empty() {
        return Ok(clear);
    }
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let chunk = clear.len().div_ceil(cpus);
    let mut parts: Vec<Vec<Pending>> = Vec::new();
    let mut rest = clear;
    while rest.len() > chunk {
        let tail = rest.split_off(chunk);
        parts.push(rest);
        rest = tail;
    }
    parts.push(rest);
    std::thread::scope(|s| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| {
                s.spawn(move || {
                    part.into_iter()
                        .map(|(id, secrets, pw)| Ok((id, secrets, hashing.hash_now(&pw)?)))
                        .collect::<Result<Vec<_>, String>>()
                })
            })
            .collect();
        let mut out = Vec::new();
        for h in handles {
            out.extend(
                h.join()
                    .map_err(|_| "a hashing thread failed".to_owned())??,
            );
        }
        Ok(out)
    })
}
