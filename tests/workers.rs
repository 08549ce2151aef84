//! Thread-per-core serving in the real binary (`server.workers`): connections spread over the
//! workers, a reload reaches every worker (a keep-alive connection stays on the worker that
//! accepted it, so each connection sees its worker's state), and SIGTERM drains them all — on
//! the embedded store and on PostgreSQL, whose one pool the workers share (a worker that has
//! drained keeps driving the connections it opened until every worker has).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A keep-alive connection of its own.
struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(addr: &str) -> Self {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Self {
            reader: BufReader::new(s),
        }
    }

    /// A vc-user-service create on this connection: the status and the body.
    fn create(&mut self, token: &str, name: &str) -> (u16, String) {
        let body = format!(
            "{{\"userKey\":{{\"username\":\"{name}\",\"authenticator\":\"LOCAL\"}},\"password\":\"Pw-1234-xyz\"}}"
        );
        self.send("PUT", token, &body);
        self.answer()
    }

    /// Sends a vc-user-service request (`PUT` creates, `POST` updates) with `body`.
    fn send(&mut self, method: &str, token: &str, body: &str) {
        let req = format!(
            "{method} /user-service/v1/user HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.reader.get_mut().write_all(req.as_bytes()).unwrap();
    }

    /// Reads one answer: the status and the body.
    fn answer(&mut self) -> (u16, String) {
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line).unwrap();
        let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut len = 0;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body).unwrap();
        (status, String::from_utf8(body).unwrap())
    }
}

/// The open-connections gauge of each worker, from `/metrics`.
async fn connections_by_worker(base: &str) -> Vec<(String, i64)> {
    let text = common::gateway::metrics_text(base).await;
    text.lines()
        .filter_map(|l| l.strip_prefix("userbridge_connections{worker=\""))
        .map(|l| {
            let (w, rest) = l.split_once("\"}").unwrap();
            (w.to_owned(), rest.trim().parse().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn workers_share_the_load_a_reload_and_the_drain() {
    let gw = common::binary::start_with(
        "info",
        |c| c.replacen("[server]\n", "[server]\nworkers = 4\n", 1),
        &[],
    );
    let stored = share_load_reload_and_drain(gw).await;
    let db = rusqlite::Connection::open(stored.path().join("store.db")).unwrap();
    let n: i64 = db
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert!(n >= 48, "{n} users stored");
}

#[tokio::test]
async fn on_postgres_workers_share_the_load_a_reload_and_the_drain() {
    let pg = common::postgres::Postgres::start();
    let gw = pg.serve_env(&[("USERBRIDGE_SERVER__WORKERS", "4")]);
    share_load_reload_and_drain(gw).await;
    let n: i64 = pg.psql("SELECT count(*) FROM users").parse().unwrap();
    assert!(n >= 48, "{n} users stored");
}

/// Writes over connections spread across 4 workers, a reload, SIGTERM: every write answered,
/// exit 0. The gateway's directory, for the caller to count what was stored.
async fn share_load_reload_and_drain(mut gw: common::binary::Running) -> tempfile::TempDir {
    assert!(gw.wait_for_log("\"workers\":4", 5), "not 4 workers");
    let addr = gw.base.trim_start_matches("http://").to_owned();

    // 24 connections, one write each: every one answered, on more than one worker.
    let mut conns: Vec<Conn> = (0..24).map(|_| Conn::open(&addr)).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        let (status, body) = c.create("demo-vc-token", &format!("w{i}"));
        assert_eq!(status, 200, "{body}");
    }
    let open = connections_by_worker(&gw.base).await;
    let busy = open.iter().filter(|(_, n)| *n > 0).count();
    assert!(busy >= 2, "all connections on one worker: {open:?}");
    let total: i64 = open.iter().map(|(_, n)| n).sum();
    assert!(total >= 24, "{open:?}");

    // A credential added by a reload is known on every worker: each connection, still on the
    // worker that accepted it, is served with the new state.
    assert_eq!(
        Conn::open(&addr).create("rotated-vc-token", "before").0,
        401
    );
    let mut cfg = std::fs::read_to_string(&gw.config).unwrap();
    cfg.push_str(
        "\n[[credentials]]\nname = \"rotated\"\ndialect = \"vc-user-service\"\ntoken = \"rotated-vc-token\"\nroles = [\"user-administrator\"]\n",
    );
    std::fs::write(&gw.config, &cfg).unwrap();
    common::binary::signal(gw.child.id(), "-HUP");
    assert!(gw.wait_for_log("config and mappings reloaded", 10));
    for (i, c) in conns.iter_mut().enumerate() {
        let (status, body) = c.create("rotated-vc-token", &format!("r{i}"));
        assert_eq!(status, 200, "connection {i}: {body}");
    }

    // SIGTERM: every worker drains its idle connections and the process exits 0.
    common::binary::signal(gw.child.id(), "-TERM");
    let status = gw.wait_exit(15);
    assert!(status.success(), "{status}");
    std::mem::replace(&mut gw.dir, tempfile::tempdir().unwrap())
}

/// SIGTERM while requests on every worker wait on the database (their users' rows held by
/// other sessions, released one after another): each is answered 200 once its row is released, its write stored, and
/// the process exits 0 — though the workers drain at different moments and share one pool.
#[test]
fn on_postgres_sigterm_lets_every_workers_requests_finish() {
    let pg = common::postgres::Postgres::start();
    // Two connections for four workers: a request is served on whichever connection is free,
    // opened by whichever worker opened it.
    let mut gw = pg.serve_env(&[
        ("USERBRIDGE_SERVER__WORKERS", "4"),
        ("USERBRIDGE_BACKEND__POOL_SIZE", "2"),
    ]);
    let addr = gw.base.trim_start_matches("http://").to_owned();
    // Connections on every worker, each opening pool connections on its worker's runtime.
    let mut conns: Vec<Conn> = (0..8).map(|_| Conn::open(&addr)).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        assert_eq!(c.create("demo-vc-token", &format!("d{i}")).0, 200);
    }
    // Other sessions hold the rows, each its own for a different time: the requests finish
    // one after another, so the workers drain at different moments.
    let holders: Vec<_> = (0..conns.len())
        .map(|i| {
            let sql = format!(
                "BEGIN; SELECT 1 FROM users WHERE user_name = 'd{i}' FOR UPDATE; \
                 SELECT pg_sleep({}); COMMIT;",
                0.3 + 0.15 * i as f64
            );
            std::process::Command::new("psql")
                .arg(&pg.url)
                .args(["-X", "-q", "-c", &sql])
                .env("PGPASSWORD", &pg.password)
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for (i, c) in conns.iter_mut().enumerate() {
        let body = format!(
            "{{\"userKey\":{{\"username\":\"d{i}\",\"authenticator\":\"LOCAL\"}},\"email\":\"d{i}@drain.example\"}}"
        );
        c.send("POST", "demo-vc-token", &body);
    }
    std::thread::sleep(Duration::from_millis(300));
    common::binary::signal(gw.child.id(), "-TERM");
    for (i, c) in conns.iter_mut().enumerate() {
        let (status, body) = c.answer();
        assert_eq!(status, 200, "update {i}: {body}");
    }
    let status = gw.wait_exit(15);
    assert!(status.success(), "{status}\n{}", gw.log.lock().unwrap());
    for mut h in holders {
        assert!(h.wait().unwrap().success());
    }
    let n: i64 = pg
        .psql("SELECT count(*) FROM users WHERE doc::text LIKE '%@drain.example%'")
        .parse()
        .unwrap();
    assert_eq!(n, 8);
}
