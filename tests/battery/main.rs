//! The fault battery (issue 6): the real gateway under backend faults, slowloris and bad input,
//! then a reconciliation against the backend's own SQLite file.
//!
//! ```text
//!  clients ──▶ userbridge (scim backend) ──▶ fault proxy ──▶ userbridge /scim/v2 (SQLite)
//!                   the gateway under test     cuts 5 %       killed -9 and restarted
//!                                              of replies     every 3 s
//! ```
//!
//! Phases: (1) creates and updates through all three dialects while the backend is killed and
//! restarted every 3 s and the proxy cuts replies after the backend committed; (2) slowloris
//! connections trickling headers while normal clients keep being served; (3) oversized and
//! malformed bodies. Then: every request answered, only expected statuses, every acknowledged
//! write in the store, no user twice, the gateway never crashed and exits cleanly on SIGTERM,
//! no secret in any log or audit trail.
//!
//! `cargo test --test battery` runs it (as part of the suite); `scripts/battery` runs it in
//! release with its figures written to `target/battery.json`. Environment: `BATTERY_USERS`
//! (default 5000: a create and an update each), `BATTERY_SECONDS` (30: the least time the load
//! is spread over, so that it meets ten kills), `BATTERY_SLOWLORIS` (1200),
//! `BATTERY_JSON` (a path for the figures), `BATTERY_STORE` (`sqlite`, or `postgres`: the
//! backend process on a throwaway PostgreSQL from `scripts/pg`, reconciled against its tables).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;
mod load;
mod malformed;
mod procs;
mod proxy;
mod slowloris;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::load::{Outcome, Tally, Target};
use crate::procs::Proc;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let k = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[k] as f64 / 1000.0
}

/// Raises the soft open-files limit to the hard one (slowloris needs thousands of sockets).
fn raise_nofile() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0)
}

fn main() {
    let started = Instant::now();
    let nofile = raise_nofile();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let report = rt.block_on(battery(nofile));
    let failures: Vec<String> = report["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_owned())
        .collect();
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    if let Ok(path) = std::env::var("BATTERY_JSON") {
        std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
    }
    println!("battery: {:.1} s", started.elapsed().as_secs_f64());
    if !failures.is_empty() {
        eprintln!("battery FAILED:");
        for f in &failures {
            eprintln!("  - {f}");
        }
        std::process::exit(1);
    }
    println!("battery passed");
}

async fn battery(nofile: u64) -> Value {
    let users = env_usize("BATTERY_USERS", 5000);
    // Each slowloris connection takes a descriptor here and one in the gateway.
    let fits = usize::try_from(nofile.saturating_sub(512)).unwrap_or(usize::MAX);
    let slow_asked = env_usize("BATTERY_SLOWLORIS", 1200);
    let slow_n = slow_asked.min(fits);
    let dir = tempfile::tempdir().unwrap();
    if std::env::var_os("BATTERY_KEEP").is_some() {
        eprintln!("battery: keeping {}", dir.path().display());
    }
    let run = format!("{:x}", std::process::id());
    let mut failures: Vec<String> = Vec::new();

    let pg = (std::env::var("BATTERY_STORE").as_deref() == Ok("postgres"))
        .then(common::postgres::Postgres::start);
    let backend = Arc::new(Mutex::new(match &pg {
        Some(pg) => Proc::backend_on_postgres(
            dir.path(),
            &pg.url,
            &pg.password,
            common::gateway::PG_SECRETS_KEY,
        ),
        None => Proc::backend(dir.path()),
    }));
    let backend_addr = backend.lock().unwrap().addr;
    let proxy = Arc::new(proxy::Proxy::start(backend_addr, 50, 0x5eed_1234).await);
    let mut gateway = Proc::gateway(dir.path(), proxy.addr);
    let gateway_pid = gateway.pid();
    let base = format!("http://{}", gateway.addr);
    let target = Arc::new(Target {
        base: base.clone(),
        run: run.clone(),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .pool_max_idle_per_host(64)
            // Below the gateway's idle timeout (the header timeout, 5 s), as a well-set client
            // is: a connection the server is closing is never picked for a new request.
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .unwrap(),
        index: dir.path().join("gateway-index.db"),
    });

    // Phase 1: load under kills and cut replies.
    let tally = Arc::new(Tally::default());
    let stop_kills = Arc::new(AtomicBool::new(false));
    let killer = {
        let (backend, proxy, stop) = (
            Arc::clone(&backend),
            Arc::clone(&proxy),
            Arc::clone(&stop_kills),
        );
        tokio::spawn(async move {
            let mut kills = 0_u64;
            let mut restart_ms = Vec::new();
            loop {
                tokio::time::sleep(Duration::from_secs(3)).await;
                if stop.load(Ordering::Relaxed) {
                    return (kills, restart_ms);
                }
                let b = Arc::clone(&backend);
                let down = tokio::task::spawn_blocking(move || b.lock().unwrap().kill9());
                down.await.unwrap();
                proxy.down();
                kills += 1;
                let b = Arc::clone(&backend);
                let took = tokio::task::spawn_blocking(move || b.lock().unwrap().spawn())
                    .await
                    .unwrap();
                restart_ms.push(took.as_millis() as u64);
                proxy.up().await;
            }
        })
    };
    let load_started = Instant::now();
    let span = Duration::from_secs(env_usize("BATTERY_SECONDS", 30) as u64);
    let runs = load::run(Arc::clone(&target), Arc::clone(&tally), users, 32, span).await;
    let load_secs = load_started.elapsed().as_secs_f64();
    stop_kills.store(true, Ordering::Relaxed);
    let (kills, restart_ms) = killer.await.unwrap();
    if (kills as f64) < span.as_secs_f64() / 3.0 - 1.0 {
        failures.push(format!(
            "the load took {load_secs:.1} s: only {kills} backend kills"
        ));
    }
    if !gateway.alive() {
        failures.push("the gateway died during the load".into());
    }
    let load_latencies = tally.take_latencies();

    // Phase 2: slowloris, while normal clients keep working (the backend stays up, and whole).
    proxy.set_cut(0);
    let stop_slow = Arc::new(AtomicBool::new(false));
    let attack = slowloris::start(gateway.addr, slow_n, Arc::clone(&stop_slow));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let normal = Arc::new(Tally::default());
    let normal_target = Arc::new(Target {
        base: base.clone(),
        run: format!("{run}-n"),
        client: target.client.clone(),
        index: target.index.clone(),
    });
    let held_at_start = attack.open.load(Ordering::Relaxed);
    let normal_started = Instant::now();
    let normal_runs = load::run(
        Arc::clone(&normal_target),
        Arc::clone(&normal),
        600,
        8,
        Duration::from_secs(3),
    )
    .await;
    let normal_secs = normal_started.elapsed().as_secs_f64();
    // Keep the attack up at least past one header timeout, to see it reaped and reopened.
    while normal_started.elapsed() < Duration::from_secs(7) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let held_at_end = attack.open.load(Ordering::Relaxed);
    stop_slow.store(true, Ordering::Relaxed);
    let normal_latencies = normal.take_latencies();
    let normal_ok = normal_runs
        .iter()
        .filter(|r| {
            r.create == Outcome::Acked && r.update.as_ref().is_some_and(|u| u.1 == Outcome::Acked)
        })
        .count();
    let peak = attack.peak.load(Ordering::Relaxed);
    if slow_n < slow_asked {
        failures.push(format!(
            "the open-files limit ({nofile}) allows only {slow_n} slowloris connections; raise it (ulimit -Hn)"
        ));
    }
    if peak < 1000.min(slow_n) {
        failures.push(format!("slowloris held only {peak} connections at once"));
    }
    if normal_ok != normal_runs.len() {
        failures.push(format!(
            "during slowloris {} of {} normal users were not served",
            normal_runs.len() - normal_ok,
            normal_runs.len()
        ));
    }
    for odd in normal.unexpected.lock().unwrap().iter() {
        failures.push(format!("during slowloris: {odd}"));
    }

    // Phase 3: bad input.
    let (bad_answers, bad_failures) = malformed::run(&base, 20).await;
    failures.extend(bad_failures);

    // Stop: the gateway drains and exits 0 on SIGTERM; then the backend.
    let alive_before_stop = gateway.alive();
    let exit = tokio::task::spawn_blocking(move || {
        let s = gateway.terminate(Duration::from_secs(15));
        (s, gateway)
    })
    .await
    .unwrap();
    let (exit_status, gateway) = exit;
    if !alive_before_stop {
        failures.push("the gateway crashed".into());
    }
    match exit_status {
        Some(s) if s.success() => {}
        other => failures.push(format!(
            "the gateway did not exit cleanly on SIGTERM: {other:?}"
        )),
    }
    backend.lock().unwrap().kill9();

    // Reconcile against the backend's own store.
    let stored = match &pg {
        Some(pg) => stored_in_postgres(pg),
        None => stored_in_sqlite(&dir.path().join("backend.db")),
    };
    let mut store = reconcile(stored, &runs, &normal_runs, &mut failures);
    store["kind"] = json!(if pg.is_some() { "postgres" } else { "sqlite" });
    for odd in tally.unexpected.lock().unwrap().iter() {
        failures.push(format!("load: {odd}"));
    }

    // Secrets: none in any log or audit trail of either process.
    let mut secrets = std::mem::take(&mut *tally.secrets.lock().unwrap());
    secrets.extend(std::mem::take(&mut *normal.secrets.lock().unwrap()));
    secrets.push(procs::SCIM_TOKEN.into());
    for t in [
        "battery-vc-token",
        "battery-commvault-token",
        "battery-opscenter-token",
    ] {
        secrets.push(t.into());
    }
    let files = [
        gateway.log().to_path_buf(),
        backend.lock().unwrap().log().to_path_buf(),
        dir.path().join("gateway-audit.jsonl"),
        dir.path().join("backend-audit.jsonl"),
    ];
    let (log_bytes, leaks) = scan(&files, &secrets);
    for l in &leaks {
        failures.push(format!("secret in {l}"));
    }
    if log_bytes == 0 {
        failures.push("no log was written (the secret scan saw nothing)".into());
    }
    // Kept with the rest of the run's logs for scripts/scan-test-logs.
    let kept = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-logs");
    if std::fs::create_dir_all(&kept).is_ok() {
        for (name, f) in [("gateway", &files[0]), ("backend", &files[1])] {
            let _ = std::fs::copy(f, kept.join(format!("battery-{name}.log")));
        }
    }

    let statuses = tally.statuses.lock().unwrap().clone();
    let mut by_status: BTreeMap<u16, u64> = BTreeMap::new();
    for (k, n) in &statuses {
        if let Some(s) = k.rsplit(' ').next().and_then(|s| s.parse().ok()) {
            *by_status.entry(s).or_default() += n;
        }
    }
    if std::env::var_os("BATTERY_KEEP").is_some() {
        let _ = dir.keep();
    }
    json!({
        "load": {
            "users": users,
            "requests": tally.requests.load(Ordering::Relaxed),
            "seconds": load_secs,
            "answers_by_status": by_status,
            "answers_by_operation": statuses,
            "p50_ms": percentile(&load_latencies, 0.50),
            "p99_ms": percentile(&load_latencies, 0.99),
            "max_ms": percentile(&load_latencies, 1.0),
        },
        "faults": {
            "backend_kills": kills,
            "backend_restart_ms_max": restart_ms.iter().max(),
            "replies_cut_after_commit": proxy.counters().cut.load(Ordering::Relaxed),
            "replies_passed": proxy.counters().replies.load(Ordering::Relaxed),
            "connections_severed_by_kills": proxy.counters().severed.load(Ordering::Relaxed),
        },
        "store": store,
        "slowloris": {
            "connections": slow_n,
            "peak_held": peak,
            "held_when_normal_load_began": held_at_start,
            "held_at_end": held_at_end,
            "opened": attack.opened.load(Ordering::Relaxed),
            "closed_by_gateway": attack.closed_by_gateway.load(Ordering::Relaxed),
            "normal_users": normal_runs.len(),
            "normal_users_served": normal_ok,
            "normal_requests": normal.requests.load(Ordering::Relaxed),
            "normal_seconds": normal_secs,
            "normal_p50_ms": percentile(&normal_latencies, 0.50),
            "normal_p99_ms": percentile(&normal_latencies, 0.99),
        },
        "bad_input": bad_answers,
        "gateway": {
            "pid": gateway_pid,
            "crashed": !alive_before_stop,
            "exit_on_sigterm": exit_status.map(|s| s.to_string()),
            "open_files_limit": nofile,
        },
        "secrets": {"distinct_checked": secrets.len(), "log_bytes_scanned": log_bytes, "found": leaks.len()},
        "failures": failures,
    })
}

/// The users the SQLite store at `db` holds: each lowercased name, with its documents.
fn stored_in_sqlite(db: &std::path::Path) -> BTreeMap<String, Vec<String>> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut stored: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut q = conn
        .prepare("SELECT lower(user_name), doc FROM users")
        .unwrap();
    let rows = q
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap();
    for row in rows {
        let (name, doc) = row.unwrap();
        stored.entry(name).or_default().push(doc);
    }
    stored
}

/// The users the database holds: each lowercased name, with its documents.
fn stored_in_postgres(pg: &common::postgres::Postgres) -> BTreeMap<String, Vec<String>> {
    let mut stored: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in pg.rows("SELECT lower(user_name), doc::text FROM users") {
        if let [name, doc] = &row[..] {
            stored.entry(name.clone()).or_default().push(doc.clone());
        }
    }
    stored
}

/// Checks the backend's store (`stored`: each name with its documents) against what the
/// clients were told; returns the figures.
fn reconcile(
    stored: BTreeMap<String, Vec<String>>,
    runs: &[load::UserRun],
    normal: &[load::UserRun],
    failures: &mut Vec<String>,
) -> Value {
    let duplicates = stored.values().filter(|v| v.len() > 1).count();
    let mut f = BTreeMap::<&str, u64>::new();
    for r in runs.iter().chain(normal) {
        let docs = stored.get(&r.name.to_lowercase());
        let present = docs.is_some();
        match (r.create, present) {
            (Outcome::Acked, true) => *f.entry("creates_acked_present").or_default() += 1,
            (Outcome::Acked, false) => {
                *f.entry("creates_acked_lost").or_default() += 1;
                failures.push(format!("acknowledged create of {} is not stored", r.name));
            }
            (Outcome::ExistsAfterRetry, true) => {
                *f.entry("creates_409_after_5xx_present").or_default() += 1;
            }
            (Outcome::ExistsAfterRetry, false) => {
                failures.push(format!("{} answered 409 but is not stored", r.name));
            }
            (Outcome::Unknown, true) => *f.entry("creates_unknown_applied").or_default() += 1,
            (Outcome::Unknown, false) => *f.entry("creates_unknown_not_applied").or_default() += 1,
        }
        if let Some((_, outcome, marker)) = &r.update {
            let has = docs.is_some_and(|d| d.iter().any(|doc| doc.contains(marker.as_str())));
            match (outcome, has) {
                (Outcome::Acked, true) => *f.entry("updates_acked_present").or_default() += 1,
                (Outcome::Acked, false) => {
                    *f.entry("updates_acked_lost").or_default() += 1;
                    failures.push(format!("acknowledged update of {} is not stored", r.name));
                }
                (_, true) => *f.entry("updates_unknown_applied").or_default() += 1,
                (_, false) => *f.entry("updates_unknown_not_applied").or_default() += 1,
            }
        }
    }
    if duplicates > 0 {
        failures.push(format!("{duplicates} users stored more than once"));
    }
    let lost = f.get("creates_acked_lost").copied().unwrap_or(0)
        + f.get("updates_acked_lost").copied().unwrap_or(0);
    let stray = stored.keys().filter(|k| k.starts_with("mal-")).count();
    if stray > 0 {
        failures.push(format!("{stray} users from rejected bad input were stored"));
    }
    json!({
        "users_stored": stored.len(),
        "duplicates": duplicates,
        "lost": lost,
        "from_bad_input": stray,
        "outcomes": f,
    })
}

/// Searches `files` for any of `secrets`; the bytes scanned and where each one found was.
fn scan(files: &[std::path::PathBuf], secrets: &[String]) -> (usize, Vec<String>) {
    let ac = aho_corasick::AhoCorasick::new(secrets).unwrap();
    let mut bytes = 0;
    let mut found = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read(f) else { continue };
        bytes += text.len();
        for m in ac.find_iter(&text).take(5) {
            found.push(format!(
                "{}: {:?}",
                f.display(),
                &secrets[m.pattern().as_usize()]
            ));
        }
    }
    (bytes, found)
}
