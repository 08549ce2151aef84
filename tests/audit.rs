//! The audit trail of the real binary: one record per write in each dialect, with caller,
//! request id, changes (secrets as `***`) and outcome; `userbridge audit --user` shows one
//! user's history in order, including an update that named the user by id only.

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

#[tokio::test]
async fn every_write_is_recorded_without_secrets_and_audit_shows_a_users_history() {
    let gw = common::binary::start("info");
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

    let path = gw.dir.path().join("audit.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let text = loop {
        let t = std::fs::read_to_string(&path).unwrap_or_default();
        if t.lines().count() >= 3 || std::time::Instant::now() > deadline {
            break t;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
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

    // The user's history: both writes, in order, though the second named the user by number.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_userbridge"))
        .args(["audit", "--user", "audrey", "--json", "--config"])
        .arg(&gw.config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let history: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = history
        .iter()
        .map(|h| h["requestId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["req-create", "req-commvault"]);
}
