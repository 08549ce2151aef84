//! Thread-per-core serving in the real binary (`server.workers`): connections spread over the
//! workers, a reload reaches every worker (a keep-alive connection stays on the worker that
//! accepted it, so each connection sees its worker's state), and SIGTERM drains them all.

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
        let req = format!(
            "PUT /user-service/v1/user HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.reader.get_mut().write_all(req.as_bytes()).unwrap();
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
    let mut gw = common::binary::start_with(
        "info",
        |c| c.replacen("[server]\n", "[server]\nworkers = 4\n", 1),
        &[],
    );
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
    let db = rusqlite::Connection::open(gw.dir.path().join("store.db")).unwrap();
    let n: i64 = db
        .query_row("SELECT count(*) FROM users", [], |r| r.get(0))
        .unwrap();
    assert!(n >= 48, "{n} users stored");
}
