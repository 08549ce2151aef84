//! `/metrics` after a scripted set of requests: the counts are the requests sent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::gateway::{Kind, start_on};
use serde_json::json;

fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("no series {series} in:\n{metrics}"))
}

#[tokio::test]
async fn metrics_count_what_was_sent() {
    metrics_count(Kind::Sqlite, "sqlite").await;
}

#[tokio::test]
async fn metrics_count_what_was_sent_on_postgres() {
    let m = metrics_count(Kind::Postgres, "postgres").await;
    // The pool: connections opened and idle again, nobody waiting, no failure (a conflict is
    // the store's answer, not its failure), no transaction run again.
    assert!(value(&m, "userbridge_postgres_pool_size") >= 1.0, "{m}");
    assert_eq!(
        value(&m, "userbridge_postgres_pool_available"),
        value(&m, "userbridge_postgres_pool_size")
    );
    assert_eq!(value(&m, "userbridge_postgres_pool_waiting"), 0.0);
    assert_eq!(value(&m, "userbridge_postgres_errors_total"), 0.0);
    assert_eq!(value(&m, "userbridge_postgres_retries_total"), 0.0);
}

/// The scripted requests against a gateway on `kind` (whose metrics say `backend`); the text
/// of its `/metrics` after them.
async fn metrics_count(kind: Kind, backend: &str) -> String {
    let gw = start_on(kind).await;
    let c = reqwest::Client::new();
    let vc_token = common::dialect_token(&gw.config, "vc-user-service");
    let create = |name: &str, unknown: bool| {
        let mut body = json!({"userKey": {"username": name, "authenticator": "LOCAL"}, "password": "Pw-metrics-1"});
        if unknown {
            body["favouriteColour"] = json!("teal");
        }
        c.put(format!("{}/user-service/v1/user", gw.base))
            .bearer_auth(&vc_token)
            .json(&body)
    };
    // Two creates (one with an unknown member), one duplicate, one without credentials, one
    // with a bad phone, one SCIM read.
    assert_eq!(create("m1", false).send().await.unwrap().status(), 200);
    assert_eq!(create("m2", true).send().await.unwrap().status(), 200);
    assert_eq!(create("m1", false).send().await.unwrap().status(), 409);
    let r = c
        .put(format!("{}/user-service/v1/user", gw.base))
        .json(&json!({"userKey": {"username": "m3", "authenticator": "LOCAL"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .put(format!("{}/user-service/v1/user", gw.base))
        .bearer_auth(&vc_token)
        .json(&json!({"userKey": {"username": "m4", "authenticator": "LOCAL"}, "primaryPhone": "555"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .get(format!("{}/scim/v2/Users", gw.base))
        .bearer_auth("demo-scim-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let r = c.get(format!("{}/metrics", gw.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let m = r.text().await.unwrap();
    let req = |status: u16| {
        format!(
            "userbridge_requests_total{{dialect=\"vc-user-service\",route=\"create-user\",operation=\"create\",status=\"{status}\"}}"
        )
    };
    assert_eq!(value(&m, &req(200)), 2.0);
    assert_eq!(value(&m, &req(409)), 1.0);
    assert_eq!(value(&m, &req(401)), 1.0);
    assert_eq!(value(&m, &req(400)), 1.0);
    assert_eq!(
        value(
            &m,
            "userbridge_requests_total{dialect=\"scim\",route=\"scim\",operation=\"read\",status=\"200\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "userbridge_request_duration_seconds_count{dialect=\"vc-user-service\",route=\"create-user\"}"
        ),
        5.0
    );
    assert_eq!(
        value(
            &m,
            "userbridge_rejections_total{dialect=\"vc-user-service\",rule=\"auth\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "userbridge_rejections_total{dialect=\"vc-user-service\",rule=\"unique\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "userbridge_unknown_members_ignored_total{dialect=\"vc-user-service\"}"
        ),
        1.0
    );
    // Three creates reached the store; the duplicate is a backend conflict.
    assert_eq!(
        value(
            &m,
            &format!("userbridge_backend_duration_seconds_count{{backend=\"{backend}\"}}")
        ),
        3.0
    );
    assert_eq!(
        value(
            &m,
            &format!("userbridge_backend_errors_total{{backend=\"{backend}\",kind=\"conflict\"}}")
        ),
        1.0
    );
    // Only the scrape itself is in flight... and it is not counted as a request.
    assert_eq!(value(&m, "userbridge_requests_in_flight"), 0.0);
    assert!(!m.contains("Pw-metrics-1"));
    m
}
