//! The store's secrets column, sealed ([`crate::sealed`]): `ub_seal(id, json)` on every write
//! and `ub_open(id, sealed)` on every read that needs the secrets, both registered on the
//! store's connection, so that the clear value exists only in memory, for the statement that
//! uses it. A store written before sealing is sealed at start.

use std::path::Path;
use std::sync::Arc;

use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;

use crate::config::SecretsConfig;
use crate::sealed::{KeySource, Sealer};

/// Loads the key and registers `ub_seal` and `ub_open` on `conn`; the current key's id.
pub fn register(conn: &Connection, store: &Path, cfg: &SecretsConfig) -> Result<String, String> {
    let (sealer, source) = Sealer::load(cfg, store)?;
    match &source {
        KeySource::Beside(p) => tracing::warn!(
            key = %p.display(),
            kid = sealer.kid(),
            "the store's secrets are sealed under a key kept beside it: set [secrets] key_file \
             or USERBRIDGE_SECRETS__KEY, and keep the key apart from the store's backups"
        ),
        KeySource::File(p) => tracing::info!(key = %p.display(), kid = sealer.kid(), "secrets key"),
        KeySource::Config => tracing::info!(kid = sealer.kid(), "secrets key from the config"),
    }
    let kid = sealer.kid().to_owned();
    let sealer = Arc::new(sealer);
    let flags = FunctionFlags::SQLITE_UTF8;
    let fail = |e: rusqlite::Error| format!("{}: {e}", store.display());
    let s = Arc::clone(&sealer);
    conn.create_scalar_function("ub_seal", 2, flags, move |ctx| {
        let aad: String = ctx.get(0)?;
        let clear: String = ctx.get(1)?;
        s.seal(&aad, &clear)
            .map_err(|e| rusqlite::Error::UserFunctionError(e.into()))
    })
    .map_err(fail)?;
    let s = Arc::clone(&sealer);
    conn.create_scalar_function(
        "ub_open",
        2,
        flags | FunctionFlags::SQLITE_DETERMINISTIC,
        move |ctx| {
            let aad: String = ctx.get(0)?;
            let stored: String = ctx.get(1)?;
            s.open(&aad, &stored)
                .map_err(|e| rusqlite::Error::UserFunctionError(e.into()))
        },
    )
    .map_err(fail)?;
    Ok(kid)
}

/// Seals under the current key `kid` the secrets of every user whose secrets are in clear or
/// sealed under an earlier key; how many.
pub fn migrate(tx: &Connection, kid: &str) -> rusqlite::Result<usize> {
    tx.execute(
        "UPDATE users SET secrets = ub_seal(id, ub_open(id, secrets))
         WHERE secrets != '{}' AND secrets NOT LIKE ?1",
        [format!("{{\"sealed\":1,\"kid\":\"{kid}\",%")],
    )
}
