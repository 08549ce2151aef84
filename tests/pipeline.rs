//! The one request pipeline: every ingress goes through the same stack. A panic in a handler
//! is a 500 in the caller's dialect (counted, the connection kept); `/scim/v2` is shed at
//! `max_in_flight` like a dialect route; an operation carries what a backend needs to complete
//! it, so no backend needs the mapping that made it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use userbridge::canonical::UserDoc;
use userbridge::config::{BackendConfig, Config};
use userbridge::exchange::{DryRun, Offline, dry_run};
use userbridge::mapping::MappingSet;
use userbridge::server::handle;
use userbridge::server::layer::HandlerFn;

/// Serves `config` with the gateway's handler, except that a request with `X-Test-Panic`
/// makes the handler panic.
async fn serve_panicking(config: Config) -> (String, tokio::sync::oneshot::Sender<()>) {
    let handler = HandlerFn(|req: Box<http::Request<bytes::Bytes>>| async move {
        if req.headers().contains_key("x-test-panic") {
            panic!("a handler bug");
        }
        handle(*req).await
    });
    common::gateway::serve_config_with(config, handler).await
}

fn sqlite_config(dir: &std::path::Path) -> Config {
    let mut config = common::gateway::base_config();
    config.backend = BackendConfig::Sqlite {
        path: dir.join("store.db"),
    };
    config
}

#[tokio::test]
async fn a_panicking_handler_answers_500_in_the_dialect_and_keeps_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (base, _stop) = serve_panicking(sqlite_config(dir.path())).await;
    // One client, one connection: the second request must find it alive.
    let c = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let body = json!({"userKey": {"username": "boom", "authenticator": "LOCAL"}});
    let r = c
        .put(format!("{base}/user-service/v1/user"))
        .bearer_auth("demo-vc-token")
        .header("X-Test-Panic", "1")
        .header("X-Request-Id", "panic-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    assert_eq!(r.headers()["x-request-id"], "panic-1");
    let err: Value = r.json().await.unwrap();
    // vc-user-service's own error shape, as for any other refusal of that dialect.
    let refused: Value = c
        .put(format!("{base}/user-service/v1/user"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&err), keys(&refused), "{err} vs {refused}");
    assert!(err.to_string().contains("the gateway failed"), "{err}");
    assert_eq!(
        common::gateway::metric(&base, "userbridge_panics_total").await,
        1
    );
    // The same connection serves the next request.
    let r = c
        .put(format!("{base}/user-service/v1/user"))
        .bearer_auth("demo-vc-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_panic_on_scim_is_a_scim_error() {
    let dir = tempfile::tempdir().unwrap();
    let (base, _stop) = serve_panicking(sqlite_config(dir.path())).await;
    let r = reqwest::Client::new()
        .get(format!("{base}/scim/v2/Users"))
        .bearer_auth("demo-scim-token")
        .header("X-Test-Panic", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 500);
    let err: Value = r.json().await.unwrap();
    assert_eq!(
        err["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    assert_eq!(err["status"], "500");
}

#[tokio::test]
async fn scim_is_shed_at_max_in_flight_like_a_dialect_route() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = sqlite_config(dir.path());
    config.limits.max_in_flight = 1;
    config.limits.request_timeout_ms = 10_000;
    let (base, _stop) = serve_panicking(config).await;
    let addr = base.trim_start_matches("http://").to_owned();
    // A dialect request whose body trickles holds the one permit.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(
        b"PUT /user-service/v1/user HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer demo-vc-token\r\n\
          Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"userKey\":",
    )
    .await
    .unwrap();
    let r = scim_list_until(&base, 503)
        .await
        .expect("/scim/v2 was not shed while the permit was held");
    assert_eq!(r.headers()["retry-after"], "1");
    let err: Value = r.json().await.unwrap();
    assert_eq!(
        err["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    // Health stays outside the limit.
    assert_eq!(
        reqwest::get(format!("{base}/healthz"))
            .await
            .unwrap()
            .status(),
        200
    );
    // The held request ends; the permit is back.
    drop(slow);
    assert!(
        scim_list_until(&base, 200).await.is_some(),
        "the permit did not come back"
    );
}

/// `GET /scim/v2/Users` until it answers `status` (for at most a second).
async fn scim_list_until(base: &str, status: u16) -> Option<reqwest::Response> {
    let c = reqwest::Client::new();
    for _ in 0..50 {
        let r = c
            .get(format!("{base}/scim/v2/Users"))
            .bearer_auth("demo-scim-token")
            .send()
            .await
            .unwrap();
        if r.status() == status {
            return Some(r);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test]
async fn scim_writes_honour_idempotency_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (base, _stop) = serve_panicking(sqlite_config(dir.path())).await;
    let c = reqwest::Client::new();
    let user =
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "idem"});
    let post = || {
        c.post(format!("{base}/scim/v2/Users"))
            .bearer_auth("demo-scim-token")
            .header("Content-Type", "application/scim+json")
            .header("Idempotency-Key", "scim-create-1")
            .body(user.to_string())
            .send()
    };
    let first = post().await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let again = post().await.unwrap();
    assert_eq!(
        again.status(),
        201,
        "a retried create is answered, not a 409"
    );
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.unwrap();
    assert_eq!(first["id"], again["id"]);
    let list = common::gateway::scim_users_named(&base, "idem").await;
    assert_eq!(list["totalResults"], 1);
}

#[tokio::test]
async fn an_early_refusal_on_scim_closes_the_connection_it_did_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let (base, _stop) = serve_panicking(sqlite_config(dir.path())).await;
    let addr = base.trim_start_matches("http://").to_owned();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(
        b"POST /scim/v2/Users HTTP/1.1\r\nHost: x\r\nContent-Type: application/scim+json\r\n\
          Content-Length: 5\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut head))
        .await
        .unwrap()
        .unwrap();
    let head = String::from_utf8_lossy(&head[..n]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(head.contains("www-authenticate: bearer"), "{head}");
}

#[test]
fn an_operation_completes_without_the_mapping_that_made_it() {
    let (cfg, _) = Config::load(
        Some(std::path::Path::new("config/userbridge.toml")),
        &Default::default(),
    )
    .unwrap();
    let set = MappingSet::load_dir(&cfg.mappings.dir, None, &cfg.mapping_vars()).unwrap();
    // vc-user-service's phone is a join of country code and number: sent in part, the rest
    // comes from the stored user.
    let body =
        br#"{"userKey":{"username":"ann","authenticator":"LOCAL"},"primaryPhone":"555 0199"}"#;
    let headers = http::HeaderMap::new();
    let req = Offline {
        method: &http::Method::POST,
        path: "/user-service/v1/user",
        headers: &headers,
        body,
        request_id: "t",
    };
    let DryRun::Translated { translation, .. } = dry_run(&set, &cfg.limits, req, None) else {
        panic!("not translated")
    };
    let mut op = translation.op;
    assert!(!op.pending.is_empty(), "the phone is completed later");
    drop(set); // every mapping gone: what a reload that changed them leaves a backend with
    let stored = UserDoc(
        json!({"userName": "ann", "phoneNumbers": [{"value": "tel:+44-5550100", "primary": true}]})
            .as_object()
            .cloned()
            .unwrap(),
    );
    op.complete(&stored).unwrap();
    assert_eq!(
        op.user.attr("phoneNumbers[primary].value"),
        Some(&json!("tel:+44-5550199"))
    );
}
