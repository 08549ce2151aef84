//! The reference for `bench/sqlite`: the same transactions the gateway's SQLite backend runs
//! for a create and for an update, as a plain rusqlite loop on one connection with the same
//! pragmas (WAL, synchronous NORMAL). Prints `creates/s` and `updates/s` as JSON.
//!
//! `cargo run --release --example bench-sqlite-loop -- DB_FILE CREATES UPDATES`
//!
//! With `--hash-rate SECONDS` instead, the ceiling a password create cannot pass: Argon2id
//! hashes per second at the default `[secrets.passwords]` parameters, one thread per CPU, with
//! nothing else running (`hashes_per_s`, `ms_per_hash` as JSON).

use std::time::Instant;

use rusqlite::{Connection, OptionalExtension, params};
// The store's own schema, so that the loop writes the same rows.
use userbridge::backend::sqlite::SCHEMA;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("DB_FILE")?;
    if path == "--hash-rate" {
        return hash_rate(args.next().ok_or("SECONDS")?.parse()?);
    }
    let creates: u64 = args.next().ok_or("CREATES")?.parse()?;
    let updates: u64 = args.next().ok_or("UPDATES")?.parse()?;
    let mut conn = Connection::open(&path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(SCHEMA)?;

    let started = Instant::now();
    for i in 0..creates {
        let name = format!("loop-user-{i}");
        let doc = serde_json::json!({"userName": name, "name": {"givenName": "Ann", "familyName": "Smith"},
            "emails": [{"value": format!("{name}@example.com"), "primary": true}], "active": true,
            "urn:userbridge:params:scim:schemas:extension:2.0:User": {"authenticator": "LOCAL"}});
        let tx = conn.transaction()?;
        let exists: Option<i64> = tx
            .query_row(
                "SELECT numeric_id FROM users WHERE user_name = ?1 AND authenticator = ?2",
                params![name, "LOCAL"],
                |r| r.get(0),
            )
            .optional()?;
        assert!(exists.is_none());
        let now = chrono::Utc::now().to_rfc3339();
        tx.execute(
            "INSERT INTO users (id, user_name, authenticator, doc, secrets, created, modified)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            params![
                uuid::Uuid::new_v4().to_string(),
                name,
                "LOCAL",
                doc.to_string(),
                r#"{"password":"Pw-1234"}"#,
                now
            ],
        )?;
        tx.commit()?;
    }
    let create_rate = creates as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    for i in 0..updates {
        let n = (i % creates.max(1)) as i64 + 1;
        let tx = conn.transaction()?;
        let doc: String = tx.query_row(
            "SELECT doc FROM users WHERE numeric_id = ?1",
            params![n],
            |r| r.get(0),
        )?;
        let mut doc: serde_json::Value = serde_json::from_str(&doc)?;
        doc["displayName"] = serde_json::Value::String(format!("Ann Smith {i}"));
        doc["urn:userbridge:params:scim:schemas:extension:2.0:User"]["description"] =
            serde_json::Value::String("Storage and backup operator".into());
        tx.execute(
            "UPDATE users SET doc = ?2, modified = ?3, version = version + 1 WHERE numeric_id = ?1",
            params![n, doc.to_string(), chrono::Utc::now().to_rfc3339()],
        )?;
        tx.commit()?;
    }
    let update_rate = updates as f64 / started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"creates_per_s": create_rate, "updates_per_s": update_rate})
    );
    Ok(())
}

/// Argon2id hashes per second on every CPU at the default parameters, for `seconds`.
fn hash_rate(seconds: f64) -> Result<(), Box<dyn std::error::Error>> {
    let hashing = userbridge::password::Hashing::new(&Default::default())?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = Instant::now();
    let done: u64 = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let hashing = &hashing;
                s.spawn(move || {
                    let mut n = 0u64;
                    while started.elapsed().as_secs_f64() < seconds {
                        if hashing.hash_now(&format!("Pw-1234-bench-{t}-{n}")).is_ok() {
                            n += 1;
                        }
                    }
                    n
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or(0)).sum()
    });
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"hashes_per_s": done as f64 / elapsed, "threads": threads,
            "ms_per_hash": elapsed * 1000.0 * threads as f64 / done.max(1) as f64})
    );
    Ok(())
}
