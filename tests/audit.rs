//! The audit trail of the real binary: one record per write in each dialect, with caller,
//! request id, changes (secrets as `***`) and outcome; `userbridge audit --user` shows one
//! user's history in order, including an update that named the user by id only. In a file,
//! and in the PostgreSQL backend's database (`[audit] sink = "postgres"`), where several
//! instances' records make one history and a record the database cannot take goes to the
//! file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use serde_json::{Value, json};

async fn send(
    method: reqwest::Method,
    url: String,
    header: (&str, &str),
    request_id: &str,
    body: Value,
) -> u16 {
    reqwest::Client::new()
        .request(method, url)
        .header(header.0, header.1)
        .header("x-request-id", request_id)
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Where the records of a test are read from.
enum Trail<'a> {
    File(&'a std::path::Path),
    Postgres(&'a common::postgres::Postgres),
}

impl Trail<'_> {
    /// The records so far, as JSON lines.
    fn text(&self) -> String {
        match self {
            Trail::File(p) => std::fs::read_to_string(p).unwrap_or_default(),
            Trail::Postgres(pg) => pg.psql("SELECT record FROM audit_trail ORDER BY seq"),
        }
    }

    /// Waits until at least `n` records are in, at most 10 s; their text.
    async fn wait_for(&self, n: usize) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let t = self.text();
            if t.lines().count() >= n || std::time::Instant::now() > deadline {
                return t;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// `userbridge audit --user USER --json` with `gw`'s config (and `envs`): the request ids of
/// its records.
fn history(gw: &common::binary::Running, user: &str, envs: &[(&str, &str)]) -> Vec<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_userbridge"))
        .args(["audit", "--user", user, "--json", "--config"])
        .arg(&gw.config)
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["requestId"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn every_write_is_recorded_without_secrets_and_audit_shows_a_users_history() {
    let gw = common::binary::start("info");
    let path = gw.dir.path().join("audit.jsonl");
    writes_recorded(&gw, &Trail::File(&path)).await;
    assert_eq!(history(&gw, "audrey", &[]), ["req-create", "req-commvault"]);
}

/// The database's environment for a gateway or a command on `pg`, with the trail there.
fn pg_env(pg: &common::postgres::Postgres) -> [(&str, &str); 3] {
    [
        ("USERBRIDGE_AUDIT__SINK", "postgres"),
        ("USERBRIDGE_BACKEND__PASSWORD", pg.password.as_str()),
        ("USERBRIDGE_SECRETS__KEY", common::gateway::PG_SECRETS_KEY),
    ]
}

#[tokio::test]
async fn on_postgres_the_trail_is_one_table_for_every_instance_and_survives_an_outage() {
    let pg = common::postgres::Postgres::start();
    let sink = [("USERBRIDGE_AUDIT__SINK", "postgres")];
    let a = pg.serve_env(&sink);
    writes_recorded(&a, &Trail::Postgres(&pg)).await;
    assert!(
        std::fs::read_to_string(a.dir.path().join("audit.jsonl"))
            .unwrap()
            .is_empty(),
        "records went to the file while the database took them"
    );
    // A second instance updates the same user: one history, read from either config.
    let b = pg.serve_env(&sink);
    let status = send(
        reqwest::Method::PUT,
        format!("{}/webconsole/api/V4/user/1", b.base),
        ("authtoken", "QSDK demo-commvault-token"),
        "req-second-instance",
        json!({"fullName": "Audrey K. Hepburn"}),
    )
    .await;
    assert_eq!(status, 200);
    Trail::Postgres(&pg).wait_for(4).await;
    assert_eq!(
        history(&a, "audrey", &pg_env(&pg)),
        ["req-create", "req-commvault", "req-second-instance"]
    );

    // The database goes away: writes fail (and are recorded as failed); the records wait,
    // then go to the file. Stopped with the database still away, nothing is lost.
    pg.stop_server();
    let status = send(
        reqwest::Method::PUT,
        format!("{}/webconsole/api/V4/user/1", b.base),
        ("authtoken", "QSDK demo-commvault-token"),
        "req-outage",
        json!({"fullName": "Nobody Home"}),
    )
    .await;
    assert_eq!(status, 503);
    let mut b = b;
    common::binary::signal(b.child.id(), "-TERM");
    assert!(b.wait_exit(20).success());
    let spilled = std::fs::read_to_string(b.dir.path().join("audit.jsonl")).unwrap();
    assert!(spilled.contains("req-outage"), "{spilled}");
    assert!(
        b.wait_for_log(
            "audit records the database did not take were written to the file",
            1
        ),
        "{}",
        b.log.lock().unwrap()
    );
}

/// Sends the test's writes through `gw` and checks the records `trail` holds of them.
async fn writes_recorded(gw: &common::binary::Running, trail: &Trail<'_>) {
    let b = &gw.base;
    let put = reqwest::Method::PUT;
    let created = send(
        put.clone(),
        format!("{b}/user-service/v1/user"),
        ("authorization", "Bearer demo-vc-token"),
        "req-create",
        json!({"userKey": {"username": "audrey", "authenticator": "LOCAL"},
               "password": "Pw-audit-1", "mfaSecret": "JBSWY3DPEHPK3PXP", "email": "a@example.com"}),
    )
    .await;
    assert_eq!(created, 200);
    let updated = send(
        put.clone(),
        format!("{b}/webconsole/api/V4/user/1"),
        ("authtoken", "QSDK demo-commvault-token"),
        "req-commvault",
        json!({"fullName": "Audrey Hepburn", "newPassword": "TjN3LVB3LWF1ZGl0",
               "validationPassword": "ZGVtby1hZG1pbi1wYXNzd29yZA=="}),
    )
    .await;
    assert_eq!(updated, 200);
    // A refused write (validation) never reaches the backend: no record.
    let refused = send(
        put.clone(),
        format!("{b}/webconsole/api/V4/user/1"),
        ("authtoken", "QSDK demo-commvault-token"),
        "req-refused",
        json!({"newPassword": "not base64!!"}),
    )
    .await;
    assert_eq!(refused, 400);
    // A write the backend refuses is recorded with its outcome.
    let missing = send(
        put,
        format!("{b}/webconsole/api/V4/user/99"),
        ("authtoken", "QSDK demo-commvault-token"),
        "req-missing",
        json!({"fullName": "Nobody"}),
    )
    .await;
    assert_eq!(missing, 404);

    let text = trail.wait_for(3).await;
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?} in {text}")))
        .collect();
    assert_eq!(records.len(), 3, "{text}");
    for secret in [
        "Pw-audit-1",
        "JBSWY3DPEHPK3PXP",
        "TjN3LVB3LWF1ZGl0",
        "N3w-Pw-audit",
        "ZGVtby1h",
        "demo-admin-password",
    ] {
        assert!(
            !text.contains(secret),
            "{secret} in the audit trail:\n{text}"
        );
    }
    let r = &records[0];
    assert_eq!(r["requestId"], "req-create");
    assert_eq!(r["caller"], "demo-vc-admin");
    assert_eq!(r["dialect"], "vc-user-service");
    assert_eq!(r["operation"], "create");
    assert_eq!(r["userName"], "audrey");
    assert_eq!(r["changes"]["password"], "***");
    assert_eq!(r["outcome"]["status"], 200);
    let id = r["id"].as_str().unwrap();
    let r = &records[1];
    assert_eq!(r["requestId"], "req-commvault");
    assert_eq!(r["operation"], "update");
    assert_eq!(r["changes"]["displayName"], "Audrey Hepburn");
    assert_eq!(r["id"], id);
    assert_eq!(records[2]["outcome"]["status"], 404);
}

#[tokio::test]
async fn a_write_whose_client_went_away_still_ends_and_is_recorded() {
    let pg = common::postgres::Postgres::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = pg.config();
    config.audit.enabled = true;
    config.audit.path = dir.path().join("audit.jsonl");
    let (base, _stop) = common::gateway::serve_config(config).await;
    let created = send(
        reqwest::Method::PUT,
        format!("{base}/user-service/v1/user"),
        ("authorization", "Bearer demo-vc-token"),
        "req-gone-create",
        json!({"userKey": {"username": "gone", "authenticator": "LOCAL"}}),
    )
    .await;
    assert_eq!(created, 200);
    // The update waits on the user's row; its client gives up and closes the connection.
    let mut holder = pg.hold("gone", 1.0);
    common::vc_update_given_up(&base, "gone", "gone@later.example", "req-gone-update").await;
    holder.wait().unwrap();
    // The write ran to its end once the row was free, and the trail says so.
    let trail = Trail::File(&dir.path().join("audit.jsonl"));
    let text = trail.wait_for(2).await;
    let update = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|r| r["requestId"] == "req-gone-update")
        .unwrap_or_else(|| panic!("no record of the update:\n{text}"));
    assert_eq!(update["outcome"]["status"], 200, "{update}");
    assert!(
        pg.psql("SELECT doc::text FROM users WHERE user_name = 'gone'")
            .contains("gone@later.example")
    );
}
