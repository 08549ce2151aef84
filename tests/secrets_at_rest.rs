//! Secrets at rest in the embedded store: a password and an MFA seed a client sends are not in
//! the store file, its WAL or the audit trail, in any encoding the tests can think of; they are
//! sealed under the key (generated beside the store with 0600 when none is configured, or the
//! configured one), still serve what needs them, and a store written in clear before sealing
//! is sealed at start with its clear copies gone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use base64::Engine;
use serde_json::json;
use userbridge::backend::Backend;
use userbridge::backend::sqlite::Sqlite;
use userbridge::config::SecretsConfig;

const PASSWORD: &str = "Tr0ub4dor&3-at-rest";
const SEED: &str = "JBSWY3DPEHPK3PXPATREST";

/// Every file under `dir`, read whole.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

fn assert_nowhere(dir: &Path, secret: &str) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
    for (name, bytes) in files(dir) {
        for needle in [secret.as_bytes(), b64.as_bytes()] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} found in {name}",
                String::from_utf8_lossy(needle)
            );
        }
    }
}

#[tokio::test]
async fn a_clients_secrets_are_sealed_on_disk_and_still_serve() {
    let g = common::gateway::start().await;
    let c = reqwest::Client::new();
    let r = c
        .put(format!("{}/user-service/v1/user", g.base))
        .header("Authorization", "Bearer demo-vc-token")
        .json(
            &json!({"userKey": {"username": "sealed-ann", "authenticator": "LOCAL"},
                      "email": "ann@example.com", "password": PASSWORD,
                      "mfaSecret": SEED, "enabled": true}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let userbridge::config::BackendConfig::Sqlite { path } = &g.config.backend else {
        panic!("not sqlite");
    };
    let dir = path.parent().unwrap();
    assert_nowhere(dir, PASSWORD);
    assert_nowhere(dir, SEED);
    // The key beside the store, the owner's alone.
    use std::os::unix::fs::PermissionsExt;
    let key = dir.join("secrets.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // What sqlite3 shows of the column: an envelope naming the key.
    let conn = rusqlite::Connection::open(path).unwrap();
    let stored: String = conn
        .query_row(
            "SELECT secrets FROM users WHERE user_name = 'sealed-ann'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(stored.starts_with("{\"sealed\":1,\"kid\":"), "{stored}");
}

/// A store from before sealing (secrets in clear in the column) is sealed at start; the
/// secrets still read back through the store, and no clear copy is left in the files.
#[tokio::test]
async fn a_clear_store_is_sealed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(userbridge::backend::sqlite::SCHEMA)
            .unwrap();
        let secrets = json!({"password": PASSWORD, "ext.mfa.secret": SEED}).to_string();
        conn.execute(
            "INSERT INTO users (id, user_name, authenticator, doc, secrets, created, modified)
             VALUES ('u-1', 'old-ann', 'LOCAL', '{\"userName\":\"old-ann\",\"urn:userbridge:params:scim:schemas:extension:2.0:User\":{\"authenticator\":\"LOCAL\"}}', ?1, 't', 't')",
            [secrets],
        )
        .unwrap();
    }
    let key = SecretsConfig {
        key: Some(userbridge::redact::Secret::new("2a".repeat(32))),
        key_file: None,
    };
    let store = Sqlite::open(&path, &[], &key).unwrap();
    let u = store
        .store()
        .unwrap()
        .get_with_secrets("u-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.0["password"], PASSWORD);
    drop(store);
    assert_nowhere(dir.path(), PASSWORD);
    assert_nowhere(dir.path(), SEED);
    // The configured key was used: nothing generated beside the store.
    assert!(!dir.path().join("secrets.key").exists());
    // Another key does not open them: a clear error, not the secrets.
    let other = SecretsConfig {
        key: Some(userbridge::redact::Secret::new("3b".repeat(32))),
        key_file: None,
    };
    let store = Sqlite::open(&path, &[], &other).unwrap();
    let e = store
        .store()
        .unwrap()
        .get_with_secrets("u-1")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("sealed under key"), "{e}");
}
