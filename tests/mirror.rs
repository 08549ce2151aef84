//! Shadow writes over real sockets: SQLite primary, a real `scim2-server` as the shadow. The
//! shadow is stopped (SIGSTOP) mid-run while clients keep writing — every client is answered
//! by the primary — then started again (SIGCONT); once the queue drains, the two backends
//! agree on every user and attribute, and the failures showed in `/metrics` and the audit log.
//!
//! scim2-server keeps its users in memory, so it is paused rather than killed: a restart would
//! lose what it holds (a real provider keeps it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use userbridge::config::OutboundConfig;

use common::binary::signal;

async fn vc(client: &reqwest::Client, base: &str, method: reqwest::Method, body: Value) -> u16 {
    client
        .request(method, format!("{base}/user-service/v1/user"))
        .bearer_auth("demo-vc-token")
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn create(i: usize) -> Value {
    json!({"userKey": {"username": format!("m{i:03}"), "authenticator": "LOCAL"},
           "password": format!("Pw-mirror-{i}"), "email": format!("m{i}@example.com"),
           "firstName": format!("M{i}"), "enabled": i.is_multiple_of(2),
           "primaryPhone": format!("555 {i:04}"), "primaryPhoneCountryCode": "+1"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shadow_catches_up_after_a_stop_and_agrees_with_the_primary() {
    let shadow = common::peers::ScimServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = common::gateway::mirror_config(
        dir.path(),
        &shadow.url,
        OutboundConfig {
            timeout_ms: 500,
            ..OutboundConfig::default()
        },
    );
    let (base, _stop) = common::gateway::serve_config(config.clone()).await;
    let client = reqwest::Client::new();
    let put = reqwest::Method::PUT;
    let post = reqwest::Method::POST;

    for i in 0..30 {
        assert_eq!(vc(&client, &base, put.clone(), create(i)).await, 200);
    }
    // The shadow stops answering; the clients do not notice.
    signal(shadow.pid(), "-STOP");
    let started = Instant::now();
    for i in 30..60 {
        assert_eq!(vc(&client, &base, put.clone(), create(i)).await, 200);
    }
    for i in (0..60).step_by(3) {
        let change = json!({"userKey": {"username": format!("m{i:03}"), "authenticator": "LOCAL"},
                            "lastName": "Renamed", "email": null, "enabled": true});
        assert_eq!(vc(&client, &base, post.clone(), change).await, 200);
    }
    // Groups, through another dialect (commvault user 5 = m004).
    let groups = client
        .put(format!("{base}/webconsole/api/V4/user/5"))
        .header("authtoken", "QSDK demo-commvault-token")
        .json(&json!({"userGroupOperation": "ADD", "userGroups": [{"id": 3}, {"id": 4}]}))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(groups, 200);
    // The /scim/v2 ingress writes through the mirror too: a create, a PATCH, a delete.
    let scim = |m: reqwest::Method, path: &str| {
        client
            .request(m, format!("{base}/scim/v2{path}"))
            .bearer_auth("demo-scim-token")
            .header("content-type", "application/scim+json")
    };
    let made = scim(reqwest::Method::POST, "/Users")
        .json(
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                      "userName": "scimmy", "password": "Pw-mirror-scim", "title": "Engineer"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 201);
    let by_name = |name: &'static str| {
        let base = base.clone();
        async move {
            let list = common::gateway::scim_users_named(&base, name).await;
            list["Resources"][0]["id"].as_str().unwrap().to_owned()
        }
    };
    let m001 = by_name("m001").await;
    let patched = scim(reqwest::Method::PATCH, &format!("/Users/{m001}"))
        .json(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                      "Operations": [{"op": "replace", "path": "displayName", "value": "Patched"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let m002 = by_name("m002").await;
    let deleted = scim(reqwest::Method::DELETE, &format!("/Users/{m002}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "clients waited on the stopped shadow: {:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let queued = common::gateway::metric(&base, "userbridge_mirror_queue_depth").await;
    assert!(queued > 0, "queue depth {queued}");
    assert!(common::gateway::metric(&base, "userbridge_mirror_copy_failures_total").await > 0);

    // Started again: the queue drains.
    signal(shadow.pid(), "-CONT");
    let deadline = Instant::now() + Duration::from_secs(90);
    while common::gateway::metric(&base, "userbridge_mirror_queue_depth").await != 0 {
        assert!(Instant::now() < deadline, "the mirror did not drain");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        common::gateway::metric(&base, "userbridge_mirror_set_aside").await,
        0
    );

    // The two backends agree: what `userbridge diff primary shadow` runs.
    let audit = userbridge::audit::Audit::disabled();
    let mut users = Vec::new();
    for name in ["primary", "shadow"] {
        let b = userbridge::backend::open_in(config.named_backend(name).unwrap(), &config, &audit)
            .unwrap();
        users.push(
            userbridge::migrate::diff::all_users(b.store().unwrap())
                .await
                .unwrap(),
        );
    }
    let report = userbridge::migrate::diff::compare(
        &users[0],
        &users[1],
        userbridge::migrate::diff::default_attributes(),
    );
    // 60 created, one more through /scim/v2, one deleted there.
    assert_eq!(report.matched, 60, "{}", report.table("primary", "shadow"));
    let attr = |u: &userbridge::canonical::UserDoc, k: &str| u.exposed().get(k).cloned();
    assert!(
        users[1]
            .iter()
            .all(|u| attr(u, "userName") != Some(json!("m002")))
    );
    assert!(
        users[1]
            .iter()
            .any(|u| attr(u, "displayName") == Some(json!("Patched")))
    );
    assert!(
        users[1]
            .iter()
            .any(|u| attr(u, "title") == Some(json!("Engineer")))
    );
    assert!(report.is_empty(), "{}", report.table("primary", "shadow"));

    // The failures are in the audit trail, as the mirror's.
    let trail = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(
        trail
            .lines()
            .any(|l| l.contains("\"caller\":\"mirror\"") && l.contains("\"error\"")),
        "no mirror failure in the audit trail"
    );
    assert!(!trail.contains("Pw-mirror-"), "a secret in the audit trail");
    for op in ["create", "patch", "delete"] {
        assert!(
            trail
                .lines()
                .any(|l| l.contains("\"caller\":\"demo-scim-admin\"")
                    && l.contains(&format!("\"operation\":\"{op}\""))),
            "no /scim/v2 {op} in the audit trail"
        );
    }
}
