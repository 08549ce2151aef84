//! A PostgreSQL that misbehaves under the gateway, as `backend_faults` does for the HTTP
//! backends: a row held past `timeout_ms` (504 in time, nothing written, the retry applied
//! once), a connection cut in the middle of a transaction (503 with Retry-After, nothing
//! written, the pool heals), every connection busy (503 in time). Each answer is the dialect's
//! own error body; each failure is counted on `/metrics`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::postgres::Postgres;
use serde_json::{Value, json};

/// A vc-user-service update of `name`'s email: status, Retry-After, body, how long it took.
async fn update(base: &str, name: &str, email: &str) -> (u16, Option<String>, Value, Duration) {
    let started = Instant::now();
    let r = reqwest::Client::new()
        .post(format!("{base}/user-service/v1/user"))
        .bearer_auth("demo-vc-token")
        .json(&json!({"userKey": {"username": name, "authenticator": "LOCAL"}, "email": email}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = r.json().await.unwrap_or(Value::Null);
    (status, retry, body, started.elapsed())
}

/// The emails stored for `name`.
fn stored(pg: &Postgres, name: &str) -> String {
    pg.psql(&format!(
        "SELECT doc->'emails' FROM users WHERE user_name = '{name}'"
    ))
}

fn assert_dialect_error(body: &Value, status: u16) {
    // vc-user-service's error body: its own members, the status repeated.
    assert_eq!(body["status"], status, "{body}");
    assert!(body["message"].is_string(), "{body}");
    assert!(body["requestId"].is_string(), "{body}");
}

#[tokio::test]
async fn a_row_held_past_the_timeout_is_504_in_time_and_nothing_is_written() {
    let pg = Postgres::start();
    let (base, _stop) = pg.gateway(4, 500).await;
    assert_eq!(
        common::vc_create(&base, "demo-vc-token", "ann")
            .await
            .status(),
        200
    );
    let mut holder = pg.hold("ann", 2.0);
    let (status, _, body, took) = update(&base, "ann", "ann@held.example").await;
    assert_eq!(status, 504, "{body}");
    assert_dialect_error(&body, 504);
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert!(!stored(&pg, "ann").contains("held.example"));
    holder.wait().unwrap();
    // The client's retry applies it, once.
    let (status, _, body, _) = update(&base, "ann", "ann@held.example").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        stored(&pg, "ann").matches("ann@held.example").count(),
        1,
        "{}",
        stored(&pg, "ann")
    );
    assert!(common::gateway::metric(&base, "userbridge_postgres_errors_total").await >= 1);
}

#[tokio::test]
async fn a_connection_cut_mid_transaction_is_503_nothing_is_written_and_the_pool_heals() {
    let pg = Postgres::start();
    let (base, _stop) = pg.gateway(4, 5000).await;
    assert_eq!(
        common::vc_create(&base, "demo-vc-token", "bob")
            .await
            .status(),
        200
    );
    let mut holder = pg.hold("bob", 3.0);
    let waiting = tokio::spawn({
        let base = base.clone();
        async move { update(&base, "bob", "bob@cut.example").await }
    });
    // The gateway's transaction waits on the row; its connection is cut (as a failover or an
    // administrator's pg_terminate_backend would).
    let mut cut = "0".to_owned();
    for _ in 0..100 {
        cut = pg.psql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
              WHERE application_name = 'userbridge' AND wait_event_type = 'Lock'",
        );
        if cut != "0" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cut, "1", "no gateway transaction was waiting");
    let (status, retry, body, _) = waiting.await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert_dialect_error(&body, 503);
    holder.wait().unwrap();
    assert!(!stored(&pg, "bob").contains("cut.example"));
    // The pool drops the dead connection: the retry is served.
    let (status, _, body, _) = update(&base, "bob", "bob@cut.example").await;
    assert_eq!(status, 200, "{body}");
    assert!(stored(&pg, "bob").contains("bob@cut.example"));
}

#[tokio::test]
async fn every_connection_busy_is_503_in_time() {
    let pg = Postgres::start();
    let (base, _stop) = pg.gateway(1, 600).await;
    assert_eq!(
        common::vc_create(&base, "demo-vc-token", "carl")
            .await
            .status(),
        200
    );
    let mut holder = pg.hold("carl", 2.0);
    // The one connection waits on carl's row; a second update of carl waits for it, then for
    // the row; a create behind both waits for the connection, past `timeout_ms`.
    let mut updates = Vec::new();
    for _ in 0..2 {
        let base = base.clone();
        updates.push(tokio::spawn(async move {
            update(&base, "carl", "carl@busy.example").await
        }));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    let r = common::vc_create(&base, "demo-vc-token", "dave").await;
    let took = started.elapsed();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    for u in updates {
        assert_eq!(u.await.unwrap().0, 504);
    }
    holder.wait().unwrap();
    assert_eq!(
        pg.psql("SELECT count(*) FROM users WHERE user_name = 'dave'"),
        "0"
    );
    assert_eq!(
        common::vc_create(&base, "demo-vc-token", "dave")
            .await
            .status(),
        200
    );
}

/// What the proxy cuts after: the next client message that holds these bytes (empty: the
/// next message at all).
type Trigger = std::sync::Arc<std::sync::Mutex<Option<&'static [u8]>>>;

/// A TCP proxy in front of `pg` that, once armed with a [`Trigger`], passes the matching
/// message on to the database and then cuts the client's connection before the answer comes
/// back: the write is applied, the gateway never learns it. Its port, and the trigger.
async fn answer_cutter(pg: &Postgres) -> (u16, Trigger) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = pg.url.split(':').nth(2).unwrap().split('/').next().unwrap();
    let upstream = format!("127.0.0.1:{upstream}");
    let trigger: Trigger = Default::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let armed = trigger.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::TcpStream::connect(&upstream).await.unwrap();
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let armed = armed.clone();
            let (cut_tx, mut cut_rx) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                let mut buf = vec![0; 64 * 1024];
                while let Ok(n) = cr.read(&mut buf).await {
                    if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    let hit = {
                        let mut a = armed.lock().unwrap();
                        let hit = a.is_some_and(|p| {
                            p.is_empty() || buf[..n].windows(p.len()).any(|w| w == p)
                        });
                        if hit {
                            *a = None;
                        }
                        hit
                    };
                    if hit {
                        // The database applies it; its answer never reaches the gateway.
                        let _ = cut_tx.send(true);
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        break;
                    }
                }
            });
            tokio::spawn(async move {
                let mut buf = vec![0; 64 * 1024];
                loop {
                    tokio::select! {
                        r = sr.read(&mut buf) => match r {
                            Ok(n) if n > 0 && !*cut_rx.borrow() => {
                                if cw.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                            _ => break,
                        },
                        _ = cut_rx.changed() => break,
                    }
                }
            });
        }
    });
    (port, trigger)
}

#[tokio::test]
async fn a_write_whose_answer_is_lost_is_502_never_resent_and_never_doubled() {
    let pg = Postgres::start();
    let (port, trigger) = answer_cutter(&pg).await;
    let config = pg.config_via(format!("postgres://userbridge@127.0.0.1:{port}/userbridge"));
    let (base, _stop) = common::gateway::serve_config(config).await;
    // Through the proxy, the schema migrated.
    assert_eq!(
        common::vc_create(&base, "demo-vc-token", "warm")
            .await
            .status(),
        200
    );

    // A create is one statement: cut after it is sent.
    *trigger.lock().unwrap() = Some(b"");
    let r = common::vc_create(&base, "demo-vc-token", "erin").await;
    assert_eq!(r.status(), 502, "{:?}", r.text().await);
    assert!(trigger.lock().unwrap().is_none(), "nothing was cut");
    // Applied once, not sent again; the client's retry learns the user is there.
    assert_eq!(
        pg.psql("SELECT count(*) FROM users WHERE user_name = 'erin'"),
        "1"
    );
    assert_eq!(
        common::vc_create(&base, "demo-vc-token", "erin")
            .await
            .status(),
        409
    );

    // An update is a transaction: cut after its COMMIT is sent.
    *trigger.lock().unwrap() = Some(b"COMMIT");
    let (status, _, body, _) = update(&base, "erin", "erin@cut.example").await;
    assert_eq!(status, 502, "{body}");
    assert!(trigger.lock().unwrap().is_none(), "no COMMIT was cut");
    let version = pg.psql("SELECT version FROM users WHERE user_name = 'erin'");
    assert_eq!(version, "2", "the update was applied other than once");
    assert!(stored(&pg, "erin").contains("erin@cut.example"));
}

#[tokio::test]
async fn a_client_gone_mid_update_leaves_no_transaction_open() {
    let pg = Postgres::start();
    let (base, _stop) = pg.gateway(2, 5000).await;
    assert_eq!(
        common::vc_create(&base, "demo-vc-token", "gwen")
            .await
            .status(),
        200
    );
    // The update waits on gwen's row; its client gives up and closes the connection.
    let mut holder = pg.hold("gwen", 1.0);
    common::vc_update_given_up(&base, "gwen", "gwen@gone.example", "req-gwen-gone").await;
    holder.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The write went through or not, but whole: no connection is left inside a transaction
    // (holding locks, or carrying a stale transaction into the next request).
    assert_eq!(
        pg.psql(
            "SELECT count(*) FROM pg_stat_activity
              WHERE application_name = 'userbridge' AND state LIKE 'idle in transaction%'"
        ),
        "0"
    );
    // And the pool serves the next writes normally.
    for i in 0..4 {
        let (status, _, body, _) = update(&base, "gwen", &format!("gwen{i}@next.example")).await;
        assert_eq!(status, 200, "{body}");
    }
}
