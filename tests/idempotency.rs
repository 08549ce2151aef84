//! `Idempotency-Key`: a retried create gets the first answer and writes nothing twice; the key
//! with another body is refused; a retry while the first runs gets a 409 — with the keys in
//! memory and, on PostgreSQL, in the database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::faulty::{Fault, faulty, gateway};
use common::gateway::{Kind, start_on};
use serde_json::{Value, json};

fn vc_token(config: &userbridge::config::Config) -> String {
    common::dialect_token(config, "vc-user-service")
}

#[tokio::test]
async fn a_retried_create_gets_the_first_answer_and_one_user() {
    retried_create(Kind::Sqlite).await;
}

#[tokio::test]
async fn a_retried_create_gets_the_first_answer_and_one_user_on_postgres() {
    retried_create(Kind::Postgres).await;
}

async fn retried_create(kind: Kind) {
    let gw = start_on(kind).await;
    let c = reqwest::Client::new();
    let token = vc_token(&gw.config);
    let body = json!({"userKey": {"username": "idem", "authenticator": "LOCAL"}, "password": "Pw-idem-123"});
    let send = |key: &str, body: &Value| {
        c.put(format!("{}/user-service/v1/user", gw.base))
            .bearer_auth(&token)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
    };
    let first = send("k-1", &body).await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_body = first.text().await.unwrap();

    let again = send("k-1", &body).await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.text().await.unwrap(), first_body);

    // Without the key the retry is a second write, which the store refuses.
    let plain = c
        .put(format!("{}/user-service/v1/user", gw.base))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 409);

    let other = json!({"userKey": {"username": "idem2", "authenticator": "LOCAL"}, "password": "Pw-idem-123"});
    let r = send("k-1", &other).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("Idempotency-Key"));

    let list = common::gateway::scim_users_named(&gw.base, "idem").await;
    assert_eq!(list["totalResults"], 1);
}

#[tokio::test]
async fn a_retry_while_the_first_runs_is_409_and_a_5xx_releases_the_key() {
    let (url, seen) = faulty(Fault::Silence).await;
    let (base, config, _stop) = gateway(url, |_| {}).await;
    let token = vc_token(&config);
    let send = || {
        let (base, token) = (base.clone(), token.clone());
        async move {
            reqwest::Client::new()
                .put(format!("{base}/user-service/v1/user"))
                .bearer_auth(token)
                .header("Idempotency-Key", "slow-1")
                .json(&json!({"userKey": {"username": "slow", "authenticator": "LOCAL"}}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let first = tokio::spawn(send());
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(send().await, 409);
    assert_eq!(first.await.unwrap(), 504);
    // The 504 was not kept: the retry goes to the backend again.
    assert_eq!(send().await, 504);
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn on_postgres_a_retry_while_the_first_runs_is_409_and_a_5xx_releases_the_key() {
    let pg = common::postgres::Postgres::start();
    let (base, _stop) = pg.gateway(4, 600).await;
    assert_eq!(
        common::vc_create(&base, "demo-vc-token", "slow")
            .await
            .status(),
        200
    );
    let send = || {
        let base = base.clone();
        async move {
            reqwest::Client::new()
                .post(format!("{base}/user-service/v1/user"))
                .bearer_auth("demo-vc-token")
                .header("Idempotency-Key", "slow-1")
                .json(
                    &json!({"userKey": {"username": "slow", "authenticator": "LOCAL"},
                              "email": "slow@example.com"}),
                )
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // The user's row is held elsewhere: the first update waits for it.
    let mut holder = pg.hold("slow", 1.5);
    let first = tokio::spawn(send());
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(send().await, 409);
    assert_eq!(first.await.unwrap(), 504);
    holder.wait().unwrap();
    // The 504 was not kept: the retry goes to the database again, and is applied.
    assert_eq!(send().await, 200);
    assert_eq!(
        pg.psql("SELECT count(*) FROM idempotency_keys WHERE key = 'slow-1' AND status = 200"),
        "1"
    );
}
