//! One structured line per request, for dialect routes and `/scim/v2` alike: request id,
//! dialect, route, operation, status, latency, and the user a dialect request is about.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use serde_json::{Value, json};

#[tokio::test]
async fn every_request_has_one_json_line_with_its_request_id() {
    let gw = common::binary::start("info");
    let c = reqwest::Client::new();
    let r = c
        .put(format!("{}/user-service/v1/user", gw.base))
        .bearer_auth("demo-vc-token")
        .header("X-Request-Id", "log-vc-1")
        .json(&json!({"userKey": {"username": "logged", "authenticator": "LOCAL"}, "password": "Log-Pass-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = c
        .get(format!("{}/scim/v2/Users/{id}", gw.base))
        .bearer_auth("demo-scim-token")
        .header("X-Request-Id", "log-scim-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(gw.wait_for_log("log-scim-1", 5));
    let log = gw.log.lock().unwrap().clone();
    let lines: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|v: &Value| v["message"] == "request")
        .collect();
    let one = |rid: &str| {
        let found: Vec<&Value> = lines.iter().filter(|v| v["request_id"] == rid).collect();
        assert_eq!(found.len(), 1, "{rid}: {found:?}");
        found[0].clone()
    };
    let vc = one("log-vc-1");
    assert_eq!(vc["dialect"], "vc-user-service");
    assert_eq!(vc["route"], "create-user");
    assert_eq!(vc["operation"], "create");
    assert_eq!(vc["user"], "logged");
    assert_eq!(vc["status"], 200);
    assert!(vc["latency_us"].as_u64().unwrap() > 0);
    let scim = one("log-scim-1");
    assert_eq!(scim["dialect"], "scim");
    assert_eq!(scim["route"], "Users/{id}");
    assert_eq!(scim["operation"], "read");
    assert_eq!(scim["status"], 200);
    assert!(!log.contains("Log-Pass-1"));
}
