//! The client side: creates and updates through all three dialects, the way their clients send
//! them, retried the way a careful client retries (a 5xx may or may not have been applied; the
//! client asks again and accepts a 409 on a retried create as "it exists").

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use crate::procs::COMMVAULT_PASSWORD;

/// Statuses a client may get under backend faults, per operation.
pub const EXPECTED: &[u16] = &[200, 409, 502, 503, 504];

/// How a write ended, as far as its client knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered 2xx: the gateway acknowledged it.
    Acked,
    /// A create answered 409 after an earlier 5xx: an earlier attempt was applied.
    ExistsAfterRetry,
    /// Every attempt ended 5xx: may or may not have been applied.
    Unknown,
}

/// One generated user and what happened to it.
#[derive(Clone, Debug)]
pub struct UserRun {
    pub name: String,
    pub create: Outcome,
    /// The update's dialect, outcome and the value it wrote.
    pub update: Option<(&'static str, Outcome, String)>,
}

/// What the whole load saw.
#[derive(Default)]
pub struct Tally {
    /// Requests sent (attempts, retries included).
    pub requests: AtomicUsize,
    /// Answers by `operation status`.
    pub statuses: Mutex<BTreeMap<String, u64>>,
    /// Anything outside the expected: no answer, an unexpected status, a body not in the
    /// dialect's shape.
    pub unexpected: Mutex<Vec<String>>,
    /// Every secret sent, in clear and as sent (Base64).
    pub secrets: Mutex<Vec<String>>,
    /// Latencies of answered requests, in microseconds.
    pub latencies: Mutex<Vec<u64>>,
}

impl Tally {
    fn note(&self, op: &str, status: u16) {
        *self
            .statuses
            .lock()
            .expect("tally")
            .entry(format!("{op} {status}"))
            .or_default() += 1;
    }

    fn odd(&self, what: String) {
        let mut u = self.unexpected.lock().expect("tally");
        if u.len() < 50 {
            u.push(what);
        }
    }

    /// The latencies so far, sorted, leaving none behind.
    pub fn take_latencies(&self) -> Vec<u64> {
        let mut l = std::mem::take(&mut *self.latencies.lock().expect("tally"));
        l.sort_unstable();
        l
    }

    fn secret(&self, s: String) {
        self.secrets.lock().expect("tally").push(s);
    }
}

/// The gateway under test and the run's names.
pub struct Target {
    pub base: String,
    pub run: String,
    pub client: reqwest::Client,
    /// The gateway's numericId index (read-only), for commvault's `{userId}`.
    pub index: std::path::PathBuf,
}

struct Req<'a> {
    op: &'static str,
    method: reqwest::Method,
    path: String,
    auth: (&'static str, &'a str),
    body: Value,
    idempotency_key: Option<String>,
}

/// Sends one request; `None` when no answer came (a failure of the gateway's promise).
async fn send(t: &Target, tally: &Tally, r: &Req<'_>) -> Option<(u16, Value)> {
    tally.requests.fetch_add(1, Ordering::Relaxed);
    let mut b = t
        .client
        .request(r.method.clone(), format!("{}{}", t.base, r.path))
        .header(r.auth.0, r.auth.1)
        .header("Content-Type", "application/json")
        .body(r.body.to_string());
    if let Some(k) = &r.idempotency_key {
        b = b.header("Idempotency-Key", k);
    }
    let started = Instant::now();
    let resp = match b.send().await {
        Ok(resp) => resp,
        Err(e) => {
            tally.odd(format!("{} {}: no answer: {e}", r.op, r.path));
            return None;
        }
    };
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    tally
        .latencies
        .lock()
        .expect("tally")
        .push(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
    tally.note(r.op, status);
    if !EXPECTED.contains(&status) {
        tally.odd(format!("{} {}: status {status}: {text}", r.op, r.path));
    }
    // Every answer with a body is the dialect's JSON (opscenter's success has none).
    let body = if text.is_empty() {
        Value::Null
    } else {
        match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(_) => {
                tally.odd(format!("{} {}: not JSON: {text}", r.op, r.path));
                Value::Null
            }
        }
    };
    Some((status, body))
}

/// Sends until an answer that is not a 5xx, at most `tries` times; the last answer and
/// whether an earlier attempt ended 5xx.
async fn retried(
    t: &Target,
    tally: &Tally,
    r: &Req<'_>,
    tries: usize,
) -> (Option<(u16, Value)>, bool) {
    let mut saw_5xx = false;
    let mut last = None;
    for attempt in 0..tries {
        last = send(t, tally, r).await;
        match &last {
            Some((s, _)) if *s >= 500 => {
                saw_5xx = true;
                tokio::time::sleep(Duration::from_millis(50 * (attempt as u64 + 1))).await;
            }
            _ => break,
        }
    }
    (last, saw_5xx)
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn numeric_id(index: &std::path::Path, id: &str) -> Option<i64> {
    let conn =
        rusqlite::Connection::open_with_flags(index, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    conn.query_row(
        "SELECT numeric_id FROM ids WHERE remote_id = ?1",
        [id],
        |r| r.get(0),
    )
    .ok()
}

/// Creates user `i` and updates it once, through dialect `i % 3`.
async fn one_user(t: &Target, tally: &Tally, i: usize) -> UserRun {
    let name = format!("bat-{}-{i}", t.run);
    let password = format!("Bat-{}-{i}-create-secret!", t.run);
    tally.secret(password.clone());
    let create = Req {
        op: "vc create",
        method: reqwest::Method::PUT,
        path: "/user-service/v1/user".into(),
        auth: ("Authorization", "Bearer battery-vc-token"),
        body: json!({
            "userKey": {"username": name, "authenticator": "LOCAL"},
            "password": password,
            "email": format!("bat{i}@battery.example"),
            "firstName": "Bat",
            "lastName": format!("User{i}"),
            "enabled": true
        }),
        // Half the creates carry an Idempotency-Key, as careful clients send; the racing ones
        // carry none, so that only the store's unique constraint stands between them.
        idempotency_key: (i.is_multiple_of(2) && !i.is_multiple_of(50))
            .then(|| format!("create-{}-{i}", t.run)),
    };
    // Every 50th user is created by four identical requests at once: one may win.
    let (answer, saw_5xx) = if i.is_multiple_of(50) {
        let (a, b, c, d) = tokio::join!(
            retried(t, tally, &create, 6),
            retried(t, tally, &create, 6),
            retried(t, tally, &create, 6),
            retried(t, tally, &create, 6),
        );
        let all = [a, b, c, d];
        let wins = all
            .iter()
            .filter(|(a, _)| matches!(a, Some((200, _))))
            .count();
        if wins > 1 {
            tally.odd(format!(
                "{name}: {wins} concurrent identical creates all answered 200"
            ));
        }
        let saw = all.iter().any(|(_, s)| *s);
        let winner = all
            .iter()
            .find(|(a, _)| matches!(a, Some((200, _))))
            .or_else(|| all.iter().find(|(a, _)| matches!(a, Some((409, _)))))
            .unwrap_or(&all[0])
            .0
            .clone();
        // Losers of the race get 409 without any 5xx: the answer they should get (the check
        // below on a 409 without a 5xx leaves racing users out).
        (winner, saw)
    } else {
        retried(t, tally, &create, 6).await
    };
    let (create_outcome, id) = match answer {
        Some((200, body)) => (Outcome::Acked, body["id"].as_str().map(str::to_owned)),
        Some((409, _)) => {
            if !saw_5xx && !i.is_multiple_of(50) {
                tally.odd(format!("{name}: a first create answered 409"));
            }
            (Outcome::ExistsAfterRetry, None)
        }
        _ => (Outcome::Unknown, None),
    };
    let mut run = UserRun {
        name: name.clone(),
        create: create_outcome,
        update: None,
    };
    if create_outcome == Outcome::Unknown {
        return run;
    }
    let index = t.index.clone();
    let numeric = match id.clone() {
        Some(id) => tokio::task::spawn_blocking(move || numeric_id(&index, &id))
            .await
            .ok()
            .flatten(),
        None => None,
    };
    let (dialect, req, marker) = match (i % 3, &id, numeric) {
        (1, Some(_), Some(n)) => {
            let marker = format!("Battery Full {i}");
            let new_password = format!("Bat-{}-{i}-new-secret!", t.run);
            tally.secret(new_password.clone());
            tally.secret(b64(&new_password));
            (
                "commvault-v4",
                Req {
                    op: "commvault update",
                    method: reqwest::Method::PUT,
                    path: format!("/webconsole/api/V4/user/{n}"),
                    auth: ("Authtoken", "QSDK battery-commvault-token"),
                    body: json!({
                        "fullName": marker,
                        "email": format!("bat{i}.cv@battery.example"),
                        "newPassword": b64(&new_password),
                        "validationPassword": b64(COMMVAULT_PASSWORD),
                        "enabled": true
                    }),
                    idempotency_key: None,
                },
                marker,
            )
        }
        (2, Some(id), _) => {
            let marker = format!("Ops-{i}-v2");
            (
                "opscenter",
                Req {
                    op: "opscenter update",
                    method: reqwest::Method::PUT,
                    path: format!("/portal/security/v1/users/{id}"),
                    auth: ("Authorization", "Bearer battery-opscenter-token"),
                    body: json!({
                        "id": id,
                        "username": name,
                        "firstName": "Bat",
                        "lastName": marker,
                        "enabled": true
                    }),
                    idempotency_key: None,
                },
                marker,
            )
        }
        _ => {
            let marker = format!("bat{i}.v2@upd.battery.example");
            (
                "vc-user-service",
                Req {
                    op: "vc update",
                    method: reqwest::Method::POST,
                    path: "/user-service/v1/user".into(),
                    auth: ("Authorization", "Bearer battery-vc-token"),
                    body: json!({
                        "userKey": {"username": name, "authenticator": "LOCAL"},
                        "email": marker
                    }),
                    idempotency_key: Some(format!("update-{}-{i}", t.run)),
                },
                marker,
            )
        }
    };
    let (answer, _) = retried(t, tally, &req, 6).await;
    let outcome = match answer {
        Some((200, _)) => Outcome::Acked,
        Some((s, body)) if s < 500 => {
            tally.odd(format!("{name}: update answered {s}: {body}"));
            Outcome::Unknown
        }
        _ => Outcome::Unknown,
    };
    run.update = Some((dialect, outcome, marker));
    run
}

/// Runs `users` users (a create and an update each) with `workers` concurrent clients, spread
/// over at least `span` (user `i` starts no earlier than `i / users` of it), so that the faults
/// injected on a clock meet the whole load, however fast the machine.
pub async fn run(
    t: Arc<Target>,
    tally: Arc<Tally>,
    users: usize,
    workers: usize,
    span: Duration,
) -> Vec<UserRun> {
    let started = tokio::time::Instant::now();
    tally.secret(COMMVAULT_PASSWORD.to_owned());
    tally.secret(b64(COMMVAULT_PASSWORD));
    let next = Arc::new(AtomicUsize::new(0));
    let out = Arc::new(Mutex::new(Vec::with_capacity(users)));
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (t, tally, next, out) = (
            Arc::clone(&t),
            Arc::clone(&tally),
            Arc::clone(&next),
            Arc::clone(&out),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= users {
                    return;
                }
                let due = span.mul_f64(i as f64 / users as f64);
                tokio::time::sleep_until(started + due).await;
                let r = one_user(&t, &tally, i).await;
                out.lock().expect("runs").push(r);
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    std::mem::take(&mut *out.lock().expect("runs"))
}
