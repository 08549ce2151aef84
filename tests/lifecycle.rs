//! Stopping: SIGTERM stops accepting at once, lets a request in flight finish (its write is
//! stored, its answer sent) and exits 0; the drain deadline bounds how long a stuck client can
//! hold the shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use userbridge::mapping::MappingSet;
use userbridge::server::{State, serve};

fn create_head(name: &str, body_len: usize) -> String {
    format!(
        "PUT /user-service/v1/user HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer demo-vc-token\r\n\
         Content-Type: application/json\r\nContent-Length: {body_len}\r\n\r\n"
    ) + &format!("{{\"userKey\":{{\"username\":\"{name}\",")
}

#[test]
fn sigterm_stops_accepting_finishes_the_request_in_flight_and_exits_0() {
    let gw = common::binary::start("info");
    let dir = drain_one(gw);
    // Its write is in the store.
    let db = rusqlite::Connection::open(dir.path().join("store.db")).unwrap();
    let n: i64 = db
        .query_row(
            "SELECT count(*) FROM users WHERE user_name = 'drained'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn on_postgres_sigterm_finishes_the_request_in_flight_and_exits_0() {
    let pg = common::postgres::Postgres::start();
    drain_one(pg.serve(""));
    assert_eq!(
        pg.psql("SELECT count(*) FROM users WHERE user_name = 'drained'"),
        "1"
    );
}

/// A create whose body is half sent when SIGTERM comes: no new connection is accepted, the
/// create is finished and answered, the process exits 0. The gateway's directory.
fn drain_one(mut gw: common::binary::Running) -> tempfile::TempDir {
    let addr = gw.base.trim_start_matches("http://").to_owned();
    let rest = "\"authenticator\":\"LOCAL\"},\"password\":\"Drain-Pass-1\"}";
    let head = create_head("drained", 0);
    let first_part = &head[head.find("\r\n\r\n").unwrap() + 4..];
    let body_len = first_part.len() + rest.len();
    let head = create_head("drained", body_len);
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(200));

    common::binary::signal(gw.child.id(), "-TERM");
    assert!(gw.wait_for_log("shutting down", 5));
    // No new connections once the signal is taken.
    let refused = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        std::net::TcpStream::connect(&addr).is_err()
    });
    assert!(refused, "still accepting after SIGTERM");

    // The request in flight completes and is answered.
    s.write_all(rest.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = String::new();
    let _ = s.read_to_string(&mut got);
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(got.contains("\"drained\""), "{got}");

    let status = gw.wait_exit(10);
    assert!(status.success(), "{status}");
    std::mem::replace(&mut gw.dir, tempfile::tempdir().unwrap())
}

#[tokio::test]
async fn the_drain_deadline_bounds_a_stuck_client() {
    use tokio::io::AsyncWriteExt;
    let config = common::gateway::base_config();
    let dir = tempfile::tempdir().unwrap();
    let mut config = config;
    config.backend = userbridge::config::BackendConfig::Sqlite {
        path: dir.path().join("store.db"),
    };
    let set = MappingSet::load_dir(&config.mappings.dir, None, &config.mapping_vars()).unwrap();
    common::logs::capture();
    let state = State::new(config, set).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(
        listener,
        Arc::new(ArcSwap::from_pointee(state)),
        async {
            let _ = rx.await;
        },
        Duration::from_millis(300),
    ));
    // A client that starts a request and never finishes its body.
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(create_head("stuck", 500).as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(3), server)
        .await
        .expect("shutdown waited for the stuck client")
        .unwrap();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(250), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

/// A webhook backend that is down at start: the gateway starts anyway, is not ready and
/// answers writes 503 + Retry-After, then becomes ready by itself once the backend is up.
#[tokio::test]
async fn a_backend_down_at_start_delays_readiness_not_the_start() {
    let port = common::peers::free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let gw = common::binary::start_with(
        "info",
        |c| {
            let at = c.find("kind = \"sqlite\"").unwrap();
            let end = at + c[at..].find("\npath = ").unwrap() + 1;
            let end = end + c[end..].find('\n').unwrap();
            format!(
                "{}kind = \"webhook\"\nurl = \"{url}\"{}",
                &c[..at],
                &c[end..]
            )
        },
        &[],
    );
    assert!(
        gw.wait_for_log("the backend is not ready", 5),
        "{}",
        gw.log.lock().unwrap()
    );
    let c = reqwest::Client::new();
    let r = c.get(format!("{}/readyz", gw.base)).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.text().await.unwrap().contains("webhook"));
    let create = || {
        c.put(format!("{}/user-service/v1/user", gw.base))
            .bearer_auth("demo-vc-token")
            .json(&serde_json::json!({"userKey": {"username": "late", "authenticator": "LOCAL"}}))
            .send()
    };
    let r = create().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");

    let _receiver =
        common::peers::WebhookReceiver::start_at(&format!("127.0.0.1:{port}"), &[]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = c.get(format!("{}/readyz", gw.base)).send().await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(create().await.unwrap().status(), 200);
}

/// A credential given as the SHA-256 `hash-secret` prints: the config holds no token, the
/// token still signs in, another does not.
#[tokio::test]
async fn a_credential_given_as_its_digest_signs_in_with_the_token() {
    use std::io::Write as _;
    let mut hash = std::process::Command::new(env!("CARGO_BIN_EXE_userbridge"))
        .arg("hash-secret")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    hash.stdin
        .take()
        .unwrap()
        .write_all(b"demo-vc-token\n")
        .unwrap();
    let out = hash.wait_with_output().unwrap();
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(line.starts_with("token_sha256 = \""), "{line}");
    let gw = common::binary::start_with(
        "info",
        |c| c.replace("token = \"demo-vc-token\"", line.trim()),
        &[],
    );
    let cfg = std::fs::read_to_string(&gw.config).unwrap();
    assert!(
        !cfg.contains("demo-vc-token"),
        "the config still holds the token"
    );
    let c = reqwest::Client::new();
    let create = |token: &'static str| {
        c.put(format!("{}/user-service/v1/user", gw.base))
            .bearer_auth(token)
            .json(&serde_json::json!({"userKey": {"username": "dig", "authenticator": "LOCAL"}}))
            .send()
    };
    assert_eq!(create("demo-vc-tokem").await.unwrap().status(), 401);
    assert_eq!(create("demo-vc-token").await.unwrap().status(), 200);
}
