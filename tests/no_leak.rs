//! Nothing leaks: the real binary, with trace-level JSON logs, is sent requests carrying known
//! secrets (accepted and refused ones); no answer and no log line contains any of them — on
//! the embedded store, and on PostgreSQL (whose client logs its statements at trace level),
//! where the database password and the secrets key must not appear either.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine as _;
use common::binary::Running;
use serde_json::json;

fn start() -> Running {
    common::binary::start("trace")
}

#[tokio::test]
async fn no_secret_in_any_answer_or_log_line() {
    no_leak(start(), &[]).await;
}

#[tokio::test]
async fn on_postgres_no_secret_in_any_answer_or_log_line() {
    let pg = common::postgres::Postgres::start();
    let gw = pg.serve_env(&[("USERBRIDGE_LOG", "trace")]);
    no_leak(gw, &[&pg.password, common::gateway::PG_SECRETS_KEY]).await;
}

/// Sends the requests carrying secrets through `gw`; neither its answers nor its log holds any
/// of them, nor any of `also`.
async fn no_leak(gw: Running, also: &[&str]) {
    let vc = "demo-vc-token".to_owned();
    let cv = "demo-commvault-token".to_owned();
    let c = reqwest::Client::new();
    let secrets = [
        "Leak-Pass-1",
        "Leak-Mfa-2",
        "Leak-Shared-3",
        "Leak-New-4",
        "demo-admin-password",
    ];
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut answers = String::new();
    for body in [
        json!({"userKey": {"username": "lee", "authenticator": "LOCAL"}, "password": secrets[0], "mfaSecret": secrets[1], "sharedSecret": secrets[2]}),
        json!({"userKey": {"username": "lee", "authenticator": "LOCAL"}, "password": secrets[0], "email": "not-an-email"}),
        json!({"userKey": {"username": "lee", "authenticator": "LOCAL"}, "password": 42}),
    ] {
        let r = c
            .put(format!("{}/user-service/v1/user", gw.base))
            .bearer_auth(&vc)
            .json(&body)
            .send()
            .await
            .unwrap();
        answers.push_str(&r.text().await.unwrap());
    }
    for body in [
        json!({"newPassword": b64.encode(secrets[3]), "validationPassword": b64.encode(secrets[4])}),
        json!({"newPassword": b64.encode(secrets[3]), "validationPassword": b64.encode("wrong-one")}),
        json!({"newPassword": format!("{}!!", secrets[3]), "validationPassword": b64.encode(secrets[4])}),
    ] {
        let r = c
            .put(format!("{}/webconsole/api/V4/user/1", gw.base))
            .header("Authtoken", format!("QSDK {cv}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        answers.push_str(&r.text().await.unwrap());
    }
    // A token in the wrong place is not logged either.
    let _ = c
        .put(format!("{}/user-service/v1/user", gw.base))
        .bearer_auth("Leak-Token-5")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    // Let the last lines reach the pipe.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let log = gw.log.lock().unwrap().clone();
    assert!(log.contains("request"), "the capture saw no request line");
    for s in secrets
        .iter()
        .chain(&["Leak-Token-5", vc.as_str(), cv.as_str()])
        .chain(also)
    {
        assert!(!answers.contains(s), "an answer contains {s}");
        assert!(!log.contains(s), "the log contains {s}");
    }
}
