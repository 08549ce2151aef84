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
    // Opened with the key: the MFA seed, and of the password only its Argon2id hash.
    let id: String = conn
        .query_row(
            "SELECT id FROM users WHERE user_name = 'sealed-ann'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let (sealer, _) = userbridge::sealed::Sealer::load(&SecretsConfig::default(), path).unwrap();
    let clear = sealer.open(&id, &stored).unwrap();
    assert!(clear.contains(SEED), "{clear}");
    assert!(!clear.contains(PASSWORD), "{clear}");
    assert!(clear.contains("$argon2id$v=19$m=19456,t=2,p=1$"), "{clear}");
}

/// Every file under `dir`, its subdirectories too.
fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else if p.is_file() {
            out.push((
                p.display().to_string(),
                std::fs::read(&p).unwrap_or_default(),
            ));
        }
    }
    out
}

/// On PostgreSQL as in the embedded store: the password and the MFA seed a client sends are
/// in none of the cluster's files (tables and WAL, after a checkpoint), the column holds an
/// envelope naming the configured key, and the user still serves.
#[tokio::test]
async fn a_clients_secrets_are_sealed_in_postgres_and_still_serve() {
    let pg = common::postgres::Postgres::start();
    let config = pg.config();
    let (base, _stop) = common::gateway::serve_config(config).await;
    let c = reqwest::Client::new();
    let r = c
        .put(format!("{base}/user-service/v1/user"))
        .header("Authorization", "Bearer demo-vc-token")
        .json(
            &json!({"userKey": {"username": "sealed-pg", "authenticator": "LOCAL"},
                      "password": PASSWORD, "mfaSecret": SEED, "enabled": true}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    pg.psql("CHECKPOINT");
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let all = files_under(&pg.data_dir());
    assert!(all.len() > 100, "the cluster's files: {}", all.len());
    for secret in [
        PASSWORD.to_owned(),
        SEED.to_owned(),
        b64(PASSWORD),
        b64(SEED),
    ] {
        for (name, bytes) in &all {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} found in {name}"
            );
        }
    }
    let stored = pg.psql("SELECT secrets FROM users WHERE user_name = 'sealed-pg'");
    assert!(stored.starts_with("{\"sealed\":1,\"kid\":"), "{stored}");
    // The seed still serves: the store gives it back to what needs it (a mirror, import).
    let id = pg.psql("SELECT id FROM users WHERE user_name = 'sealed-pg'");
    let key = SecretsConfig {
        key: Some(userbridge::redact::Secret::new(
            common::gateway::PG_SECRETS_KEY,
        )),
        ..SecretsConfig::default()
    };
    let (sealer, _) = userbridge::sealed::Sealer::load(&key, Path::new(".")).unwrap();
    let clear = sealer.open(&id, &stored).unwrap();
    assert!(clear.contains(SEED) && !clear.contains(PASSWORD), "{clear}");
    // The password verifies (Commvault's step-up reads it through the store).
    let r = c
        .get(format!("{base}/scim/v2/Users/{id}"))
        .header("Authorization", "Bearer demo-scim-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(!body.contains(SEED) && !body.contains("argon2"), "{body}");
}

/// A mirror's shadow gets the clear password from the request that carried it (the primary
/// keeps only a hash): the shadow's own store verifies it, for a dialect create and for a
/// `/scim/v2` replace, and the queue keeps nothing once copied.
#[tokio::test]
async fn a_mirror_shadow_gets_the_password_the_request_sent() {
    let receiver = common::peers::WebhookReceiver::start(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::gateway::mirror_config(
        dir.path(),
        "http://127.0.0.1:1",
        userbridge::config::OutboundConfig::default(),
    );
    config.backends.insert(
        "shadow".into(),
        userbridge::config::BackendConfig::Webhook {
            url: receiver.url.clone(),
            token: None,
            http: userbridge::config::OutboundConfig::default(),
        },
    );
    let (base, _stop) = common::gateway::serve_config(config).await;
    let c = reqwest::Client::new();
    let r = c
        .put(format!("{base}/user-service/v1/user"))
        .bearer_auth("demo-vc-token")
        .json(
            &json!({"userKey": {"username": "shadowed", "authenticator": "LOCAL"},
                      "password": PASSWORD, "enabled": true}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let drained = || async {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while common::gateway::metric(&base, "userbridge_mirror_queue_depth").await != 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the mirror did not drain"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    drained().await;
    let shadow_id = |store: std::sync::Arc<Sqlite>| async move {
        store
            .store()
            .unwrap()
            .list(Some("shadowed".into()), 0, 1)
            .await
            .unwrap()
            .0[0]
            .id()
            .unwrap()
            .to_owned()
    };
    let sid = shadow_id(std::sync::Arc::clone(&receiver.store)).await;
    let verify = |pw: &'static str| {
        let store = std::sync::Arc::clone(&receiver.store);
        let sid = sid.clone();
        async move {
            store
                .store()
                .unwrap()
                .verify_password(&sid, pw.to_owned())
                .await
                .unwrap()
        }
    };
    assert_eq!(verify(PASSWORD).await, Some(true));
    // A /scim/v2 replace with a new password reaches the shadow too.
    let found = common::gateway::scim_users_named(&base, "shadowed").await;
    let id = found["Resources"][0]["id"].as_str().unwrap().to_owned();
    let r = c
        .put(format!("{base}/scim/v2/Users/{id}"))
        .bearer_auth("demo-scim-token")
        .json(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                      "userName": "shadowed", "password": "An0ther-Passw0rd",
                      "urn:userbridge:params:scim:schemas:extension:2.0:User": {"authenticator": "LOCAL"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    drained().await;
    assert_eq!(verify("An0ther-Passw0rd").await, Some(true));
    assert_eq!(verify(PASSWORD).await, Some(false));
    assert_nowhere(dir.path(), PASSWORD);
    assert_nowhere(dir.path(), "An0ther-Passw0rd");
}

/// A store from before sealing (secrets in clear in the column) is sealed at start; the
/// secrets still read back through the store, and no clear copy is left in the files. Another
/// key does not open the store.
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
        ..SecretsConfig::default()
    };
    let store = Sqlite::open(&path, &[], &key).unwrap();
    let u = store
        .store()
        .unwrap()
        .get_with_secrets("u-1")
        .await
        .unwrap()
        .unwrap();
    // The MFA seed reads back; the password was replaced by its hash: it verifies, and is
    // never given back.
    assert_eq!(
        u.0["urn:userbridge:params:scim:schemas:extension:2.0:User"]["mfa"]["secret"],
        SEED
    );
    assert!(u.0.get("password").is_none(), "{u:?}");
    let verify = |pw: &str| store.store().unwrap().verify_password("u-1", pw.to_owned());
    assert_eq!(verify(PASSWORD).await.unwrap(), Some(true));
    assert_eq!(verify("not-it").await.unwrap(), Some(false));
    drop(store);
    assert_nowhere(dir.path(), PASSWORD);
    assert_nowhere(dir.path(), SEED);
    // The configured key was used: nothing generated beside the store.
    assert!(!dir.path().join("secrets.key").exists());
    // Another key does not open them: a clear error, not the secrets.
    let other = SecretsConfig {
        key: Some(userbridge::redact::Secret::new("3b".repeat(32))),
        ..SecretsConfig::default()
    };
    // The store does not open: the start stops, naming both keys.
    let e = Sqlite::open(&path, &[], &other).err().unwrap();
    assert!(e.contains("sealed under key"), "{e}");
}

/// The mirror's queue holds what it must still copy to the shadow — the password included —
/// sealed, never in clear; once copied, nothing of it is left in any file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_queue_keeps_secrets_sealed_until_copied() {
    use common::binary::signal;
    let shadow = common::peers::ScimServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = common::gateway::mirror_config(
        dir.path(),
        &shadow.url,
        userbridge::config::OutboundConfig {
            timeout_ms: 500,
            ..userbridge::config::OutboundConfig::default()
        },
    );
    let (base, _stop) = common::gateway::serve_config(config).await;
    let c = reqwest::Client::new();
    // The shadow stops answering: the copies wait in the queue.
    signal(shadow.pid(), "-STOP");
    for i in 0..3 {
        let r = c
            .put(format!("{base}/user-service/v1/user"))
            .header("Authorization", "Bearer demo-vc-token")
            .json(
                &json!({"userKey": {"username": format!("queued-{i}"), "authenticator": "LOCAL"},
                          "password": format!("{PASSWORD}-{i}"), "mfaSecret": format!("{SEED}{i}"),
                          "enabled": true}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    assert!(common::gateway::metric(&base, "userbridge_mirror_queue_depth").await > 0);
    for i in 0..3 {
        assert_nowhere(dir.path(), &format!("{PASSWORD}-{i}"));
        assert_nowhere(dir.path(), &format!("{SEED}{i}"));
    }
    let queue = rusqlite::Connection::open(dir.path().join("mirror-queue.db")).unwrap();
    let sealed: String = queue
        .query_row(
            "SELECT secrets FROM pending ORDER BY seq LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(sealed.starts_with("{\"sealed\":1,"), "{sealed}");
    drop(queue);
    // Back: the copies open their secrets, reach the shadow, and leave the queue.
    signal(shadow.pid(), "-CONT");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while common::gateway::metric(&base, "userbridge_mirror_queue_depth").await != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the mirror did not drain"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        common::gateway::metric(&base, "userbridge_mirror_set_aside").await,
        0
    );
    let found: serde_json::Value = c
        .get(format!(
            "{}/Users?filter=userName%20eq%20%22queued-2%22",
            shadow.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["totalResults"], 1, "{found}");
    for i in 0..3 {
        assert_nowhere(dir.path(), &format!("{PASSWORD}-{i}"));
    }
}

/// A mirror queue from before sealing (secrets in the entries' documents) is sealed at start:
/// the pending entry keeps its secrets sealed, the entry set aside loses them.
/// A mirror queue as written before sealing: one pending copy and one set aside, each with
/// a password in its document.
fn clear_queue(queue: &Path) {
    {
        let conn = rusqlite::Connection::open(queue).unwrap();
        conn.execute_batch(
            "CREATE TABLE pending (seq INTEGER PRIMARY KEY AUTOINCREMENT,
                 op TEXT NOT NULL DEFAULT 'put', dialect TEXT NOT NULL, doc TEXT NOT NULL,
                 attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL DEFAULT 0,
                 error TEXT);
             CREATE TABLE dead (seq INTEGER PRIMARY KEY, dialect TEXT NOT NULL,
                 doc TEXT NOT NULL, error TEXT NOT NULL, at TEXT NOT NULL);",
        )
        .unwrap();
        let doc = json!({"userName": "old-queued", "password": PASSWORD}).to_string();
        conn.execute(
            "INSERT INTO pending (dialect, doc) VALUES ('vc-user-service', ?1)",
            [&doc],
        )
        .unwrap();
        let dead = json!({"userName": "old-dead", "password": format!("{PASSWORD}-dead")});
        conn.execute(
            "INSERT INTO dead (seq, dialect, doc, error, at) VALUES (9, 'vc-user-service', ?1, 'x', 't')",
            [dead.to_string()],
        )
        .unwrap();
    }
}

#[tokio::test]
async fn a_clear_mirror_queue_is_sealed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("mirror-queue.db");
    clear_queue(&queue);
    // The shadow is nowhere: opening the mirror does not need it.
    let config = common::gateway::mirror_config(
        dir.path(),
        "http://127.0.0.1:9",
        userbridge::config::OutboundConfig::default(),
    );
    let audit = userbridge::audit::Audit::disabled();
    let mirror = userbridge::backend::open_in(&config.backend, &config, &audit).unwrap();
    drop(mirror);
    assert_nowhere(dir.path(), PASSWORD);
    assert_nowhere(dir.path(), &format!("{PASSWORD}-dead"));
    let conn = rusqlite::Connection::open(&queue).unwrap();
    let (doc, sealed): (String, String) = conn
        .query_row("SELECT doc, secrets FROM pending", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(doc, json!({"userName": "old-queued"}).to_string());
    assert!(sealed.starts_with("{\"sealed\":1,"), "{sealed}");
}

/// Rotation of a mirror queue's key: copies waiting under the old key are resealed under the
/// new one (`rekey`, or at start), after which the old key is not needed; a key that opens
/// nothing stops it, naming the key ids.
#[test]
fn a_mirror_queue_is_resealed_under_a_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let queue = dir.path().join("mirror-queue.db");
    clear_queue(&queue);
    let old_file = dir.path().join("old.key");
    std::fs::write(&old_file, "6e".repeat(32)).unwrap();
    let old = SecretsConfig {
        key_file: Some(old_file.clone()),
        ..SecretsConfig::default()
    };
    let (n, old_kid) = userbridge::backend::mirror::rekey_queue(&queue, &old).unwrap();
    assert_eq!(n, 2, "the pending copy sealed, the set-aside one cleared");
    let stranger = SecretsConfig {
        key: Some(userbridge::redact::Secret::new("7f".repeat(32))),
        ..SecretsConfig::default()
    };
    let err = userbridge::backend::mirror::rekey_queue(&queue, &stranger).unwrap_err();
    assert!(
        err.contains(&old_kid) && err.contains("previous_key_files"),
        "{err}"
    );
    let new = SecretsConfig {
        previous_key_files: vec![old_file.clone()],
        ..stranger
    };
    let (n, new_kid) = userbridge::backend::mirror::rekey_queue(&queue, &new).unwrap();
    assert_eq!(n, 1);
    assert_ne!(new_kid, old_kid);
    std::fs::remove_file(&old_file).unwrap();
    let only_new = SecretsConfig {
        previous_key_files: Vec::new(),
        ..new
    };
    assert_eq!(
        userbridge::backend::mirror::rekey_queue(&queue, &only_new).unwrap(),
        (0, new_kid.clone())
    );
    let conn = rusqlite::Connection::open(&queue).unwrap();
    let sealed: String = conn
        .query_row("SELECT secrets FROM pending", [], |r| r.get(0))
        .unwrap();
    assert!(
        sealed.contains(&format!("\"kid\":\"{new_kid}\"")),
        "{sealed}"
    );
    drop(conn);
    assert_nowhere(dir.path(), PASSWORD);
}

/// Rotation: values sealed under a key now listed in `previous_key_files` still open, and the
/// store reseals them under the current key at open; after that the old key is not needed.
#[tokio::test]
async fn a_store_is_resealed_under_a_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rotated.db");
    let old_file = dir.path().join("old.key");
    std::fs::write(&old_file, "4c".repeat(32)).unwrap();
    let old = SecretsConfig {
        key_file: Some(old_file.clone()),
        ..SecretsConfig::default()
    };
    {
        let store = Sqlite::open(&path, &[], &old).unwrap();
        let op = userbridge::canonical::Operation {
            operation: userbridge::canonical::OpKind::Create,
            dialect: "test".into(),
            target: None,
            user: userbridge::canonical::UserDoc(
                json!({"userName": "rotated", "password": PASSWORD})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
            groups: None,
            caller_password: None,
            preconditions: Vec::new(),
            pending: Vec::new(),
        };
        store
            .apply(op, userbridge::backend::Want::Id)
            .await
            .unwrap();
    }
    let new = SecretsConfig {
        key: Some(userbridge::redact::Secret::new("5d".repeat(32))),
        previous_key_files: vec![old_file.clone()],
        ..SecretsConfig::default()
    };
    let store = Sqlite::open(&path, &[], &new).unwrap();
    let (resealed, kid) = store.resealed();
    assert_eq!(resealed, 1);
    let kid = kid.to_owned();
    let id = store
        .store()
        .unwrap()
        .list(Some("rotated".into()), 0, 10)
        .await
        .unwrap()
        .0[0]
        .id()
        .unwrap()
        .to_owned();
    drop(store);
    // The old key is gone: what the store holds opens under the new one alone.
    std::fs::remove_file(&old_file).unwrap();
    let only_new = SecretsConfig {
        previous_key_files: Vec::new(),
        ..new
    };
    let store = Sqlite::open(&path, &[], &only_new).unwrap();
    assert_eq!(store.resealed(), (0, kid.as_str()));
    let u = store
        .store()
        .unwrap()
        .get_with_secrets(&id)
        .await
        .unwrap()
        .unwrap();
    assert!(u.0.get("password").is_none(), "{u:?}");
    assert_eq!(
        store
            .store()
            .unwrap()
            .verify_password(&id, PASSWORD.to_owned())
            .await
            .unwrap(),
        Some(true)
    );
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let stored: String = conn
        .query_row("SELECT secrets FROM users", [], |r| r.get(0))
        .unwrap();
    assert!(stored.contains(&format!("\"kid\":\"{kid}\"")), "{stored}");
}

/// A caller's step-up password given as `password_argon2` (the config holds only its hash):
/// the right password lets a Commvault password change through, a wrong one is the dialect's
/// refusal naming `validationPassword`.
#[tokio::test]
async fn a_step_up_password_kept_as_a_hash_verifies() {
    let mut config = common::gateway::base_config();
    let hashing =
        userbridge::password::Hashing::new(&userbridge::config::PasswordConfig::default()).unwrap();
    let cred = config
        .credentials
        .iter_mut()
        .find(|c| c.dialect == "commvault-v4")
        .unwrap();
    cred.password = None;
    cred.password_argon2 = Some(hashing.hash_now("demo-admin-password").unwrap());
    let dir = tempfile::tempdir().unwrap();
    config.backend = userbridge::config::BackendConfig::Sqlite {
        path: dir.path().join("store.db"),
    };
    let (base, _stop) = common::gateway::serve_config(config).await;
    assert_eq!(
        common::vc_create(&base, "demo-vc-token", "stepped")
            .await
            .status(),
        200
    );
    let b64 = base64::engine::general_purpose::STANDARD;
    let change = |caller: &str| {
        json!({"newPassword": b64.encode("N3w-Secret-stepped"),
               "validationPassword": b64.encode(caller)})
    };
    let c = reqwest::Client::new();
    let send = |body: serde_json::Value| {
        c.put(format!("{base}/webconsole/api/V4/user/1"))
            .header("authtoken", "QSDK demo-commvault-token")
            .json(&body)
            .send()
    };
    let wrong = send(change("demo-admin-passwore")).await.unwrap();
    assert_eq!(wrong.status(), 400);
    let text = wrong.text().await.unwrap();
    assert!(text.contains("validationPassword"), "{text}");
    let right = send(change("demo-admin-password")).await.unwrap();
    assert_eq!(right.status(), 200, "{}", right.text().await.unwrap());
}
