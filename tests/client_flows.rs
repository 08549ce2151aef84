//! Each dialect's client as the vendor's own client works, over real sockets: it knows only a
//! user's name, finds the user through the dialect's read route, takes the id from the answer,
//! updates the user by that id, reads it back and deletes it — on SQLite, on a live
//! `scim2-server`, on a webhook receiver, and through a mirror whose shadow sees the delete.
//!
//! The Commvault client follows the vendor's Python SDK (`cvpysdk`): `GET User` and a map of
//! `users[].userEntity.userName` (lower-cased) → `userId`, `GET User/{id}?Level=50`, the V4
//! update, `DELETE User/{id}?newUserId=…&newUserGroupId=…`, with `Authtoken: QSDK …` and
//! `Accept: application/json` on every call.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

use common::gateway::{Gateway, Kind, start_on};

const VC: &str = "Bearer demo-vc-token";
const OPS: &str = "Bearer demo-opscenter-admin-token";
const CV: &str = "QSDK demo-commvault-token";

async fn call(
    c: &Client,
    method: Method,
    url: &str,
    auth: (&str, &str),
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = c
        .request(method, url)
        .header(auth.0, auth.1)
        .header("Accept", "application/json");
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    let v = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    (status, v)
}

/// Ops Center: register, list with `search` (the id is the list item's `id`), update by that
/// id, get, delete, get (404), list (empty).
async fn opscenter_flow(base: &str, name: &str) {
    let c = Client::new();
    let users = format!("{base}/portal/security/v1/users");
    let auth = ("Authorization", OPS);
    let (s, _) = call(
        &c,
        Method::POST,
        &users,
        auth,
        Some(
            json!({"username": name, "firstName": "Olga", "lastName": "Petrova",
                    "email": format!("{name}@example.com"), "enabled": true}),
        ),
    )
    .await;
    assert_eq!(s, 200, "register");

    // The client knows only the name: it searches, part of it and in another case.
    let part = name[..name.len() - 1].to_uppercase();
    let (s, list) = call(
        &c,
        Method::GET,
        &format!("{users}?search={part}"),
        auth,
        None,
    )
    .await;
    assert_eq!(s, 200);
    let found: Vec<&Value> = list
        .as_array()
        .expect("a JSON array")
        .iter()
        .filter(|u| u["username"] == name)
        .collect();
    assert_eq!(found.len(), 1, "{list}");
    let id = found[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(found[0]["enabled"], true);
    assert_eq!(found[0]["builtin"], false);

    let (s, body) = call(
        &c,
        Method::PUT,
        &format!("{users}/{id}"),
        auth,
        Some(json!({"id": id, "username": name, "description": "moved to ops", "enabled": false})),
    )
    .await;
    assert_eq!(s, 200, "update: {body}");

    let (s, user) = call(&c, Method::GET, &format!("{users}/{id}"), auth, None).await;
    assert_eq!(s, 200);
    assert_eq!(user["description"], "moved to ops");
    assert_eq!(user["enabled"], false);
    assert_eq!(user["firstName"], "Olga");
    assert_eq!(user["dn"], Value::Null);

    let (s, _) = call(&c, Method::DELETE, &format!("{users}/{id}"), auth, None).await;
    assert_eq!(s, 200, "delete");
    let (s, err) = call(&c, Method::GET, &format!("{users}/{id}"), auth, None).await;
    assert_eq!(s, 404);
    assert_eq!(err["errorMessage"], "KAOP20012-E Not Found.");
    let (s, list) = call(
        &c,
        Method::GET,
        &format!("{users}?search={name}"),
        auth,
        None,
    )
    .await;
    assert_eq!((s, list), (StatusCode::OK, json!([])));
}

/// Commvault, as cvpysdk does it; the user was created by another client (vc-user-service).
async fn commvault_flow(base: &str, name: &str) {
    let c = Client::new();
    seed_vc(base, name).await;
    let api = format!("{base}/webconsole/api");
    let auth = ("Authtoken", CV);

    // cvpysdk Users._get_users: {userName.lower(): userId}.
    let (s, all) = call(&c, Method::GET, &format!("{api}/User"), auth, None).await;
    assert_eq!(s, 200);
    let ids: std::collections::HashMap<String, i64> = all["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| {
            (
                u["userEntity"]["userName"].as_str().unwrap().to_lowercase(),
                u["userEntity"]["userId"].as_i64().unwrap(),
            )
        })
        .collect();
    let id = ids[&name.to_lowercase()];

    // User._get_user_properties.
    let user_url = format!("{api}/User/{id}?Level=50");
    let (s, props) = call(&c, Method::GET, &user_url, auth, None).await;
    assert_eq!(s, 200);
    let props = &props["users"][0];
    assert_eq!(props["userEntity"]["userName"], name);
    assert_eq!(props["email"], format!("{name}@example.com"));

    // The V4 update, by that id: a new full name and a group.
    let (s, body) = call(
        &c,
        Method::PUT,
        &format!("{api}/V4/user/{id}"),
        auth,
        Some(
            json!({"fullName": "Carl Vance", "userGroupOperation": "ADD",
                    "userGroups": [{"name": "Operators"}]}),
        ),
    )
    .await;
    assert_eq!(
        (s, &body["errorCode"]),
        (StatusCode::OK, &json!(0)),
        "{body}"
    );

    let (s, props) = call(&c, Method::GET, &user_url, auth, None).await;
    assert_eq!(s, 200);
    let props = &props["users"][0];
    assert_eq!(props["fullName"], "Carl Vance");
    assert_eq!(
        props["associatedUserGroups"][0]["userGroupName"], "Operators",
        "{props}"
    );

    // Users.delete: both transfer parameters, one of them 0.
    let (s, gone) = call(
        &c,
        Method::DELETE,
        &format!("{api}/User/{id}?newUserId=1&newUserGroupId=0"),
        auth,
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(gone["response"][0]["errorCode"], 0, "{gone}");
    assert_eq!(gone["response"][0]["entity"]["userName"], name);
    let (s, err) = call(&c, Method::GET, &user_url, auth, None).await;
    assert_eq!((s, &err["errorCode"]), (StatusCode::NOT_FOUND, &json!(3)));
}

async fn seed_vc(base: &str, name: &str) {
    let c = Client::new();
    let (s, body) = call(
        &c,
        Method::PUT,
        &format!("{base}/user-service/v1/user"),
        ("Authorization", VC),
        Some(
            json!({"userKey": {"username": name, "authenticator": "LOCAL"},
                    "email": format!("{name}@example.com"), "password": "S3cret-pass!",
                    "mfaSecret": "JBSWY3DPEHPK3PXP", "enabled": true}),
        ),
    )
    .await;
    assert_eq!(s, 200, "create {name}: {body}");
}

/// VikingCloud: find by user key (both paths), update, read back, delete (204), 404.
async fn vc_flow(base: &str, name: &str) {
    let c = Client::new();
    seed_vc(base, name).await;
    let auth = ("Authorization", VC);
    let by_key = format!("{base}/user-service/v1/user/LOCAL/{name}");
    let (s, user) = call(&c, Method::GET, &by_key, auth, None).await;
    assert_eq!(s, 200);
    assert_eq!(user["userKey"]["username"], name);
    for secret in ["password", "mfaSecret", "sharedSecret"] {
        assert!(user.get(secret).is_none(), "{secret} rendered: {user}");
    }
    let (s, body) = call(
        &c,
        Method::POST,
        &format!("{base}/user-service/v1/user"),
        auth,
        Some(
            json!({"userKey": {"username": name, "authenticator": "LOCAL"},
                    "notes": "checked", "locked": true}),
        ),
    )
    .await;
    assert_eq!(s, 200, "update: {body}");
    let internal = format!("{base}/user-service/internal/user/LOCAL/{name}");
    let (s, user) = call(&c, Method::GET, &internal, auth, None).await;
    assert_eq!(s, 200);
    assert_eq!(
        (&user["notes"], &user["locked"]),
        (&json!("checked"), &json!(true))
    );
    let (s, _) = call(&c, Method::DELETE, &by_key, auth, None).await;
    assert_eq!(s, 204);
    let (s, err) = call(&c, Method::GET, &by_key, auth, None).await;
    assert_eq!(s, 404);
    assert_eq!(err["status"], 404);
}

/// Commvault's create, as cvpysdk's `Users.add` sends it, then found by name like the SDK's
/// `get` after it; a second create of the name is the dialect's conflict.
async fn commvault_create_flow(base: &str, name: &str) {
    use base64::Engine as _;
    let c = Client::new();
    let auth = ("Authtoken", CV);
    let users = format!("{base}/commandcenter/api/User");
    let password = base64::engine::general_purpose::STANDARD.encode("Pa55-word!");
    let body = json!({"users": [{
        "password": password, "email": format!("{name}@example.com"), "fullName": "Dana Cruz",
        "systemGeneratePassword": false, "userEntity": {"userName": name},
        "securityAssociations": {}, "associatedUserGroups": [{"userGroupName": "Auditors"}]}]});
    let (s, created) = call(&c, Method::POST, &users, auth, Some(body.clone())).await;
    assert_eq!(s, 200, "{created}");
    let item = &created["response"][0];
    assert_eq!(
        (&item["errorCode"], &item["entity"]["userName"]),
        (&json!(0), &json!(name))
    );
    let id = item["entity"]["userId"].as_i64().unwrap();
    let (s, props) = call(
        &c,
        Method::GET,
        &format!("{users}/{id}?Level=50"),
        auth,
        None,
    )
    .await;
    assert_eq!(s, 200);
    let props = &props["users"][0];
    assert_eq!(props["fullName"], "Dana Cruz");
    assert_eq!(
        props["associatedUserGroups"][0]["userGroupName"],
        "Auditors"
    );
    assert!(!props.to_string().contains("Pa55-word!") && !props.to_string().contains(&password));
    let (s, err) = call(&c, Method::POST, &users, auth, Some(body)).await;
    assert_eq!(
        (s, &err["errorCode"]),
        (StatusCode::CONFLICT, &json!(4)),
        "{err}"
    );
    let (s, _) = call(&c, Method::DELETE, &format!("{users}/{id}"), auth, None).await;
    assert_eq!(s, 200);
}

async fn every_flow(gw: &Gateway, tag: &str) {
    opscenter_flow(&gw.base, &format!("ops-{tag}")).await;
    commvault_flow(&gw.base, &format!("CvUser-{tag}")).await;
    commvault_create_flow(&gw.base, &format!("o'cv-new-{tag}")).await;
    vc_flow(&gw.base, &format!("vc-{tag}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dialect_finds_updates_reads_and_deletes_on_sqlite() {
    let gw = start_on(Kind::Sqlite).await;
    every_flow(&gw, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dialect_finds_updates_reads_and_deletes_on_a_scim_provider() {
    let gw = start_on(Kind::Scim).await;
    every_flow(&gw, "scim").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dialect_finds_updates_reads_and_deletes_on_postgres() {
    let gw = start_on(Kind::Postgres).await;
    every_flow(&gw, "pg").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dialect_finds_updates_reads_and_deletes_on_a_webhook() {
    let gw = start_on(Kind::Webhook).await;
    every_flow(&gw, "hook").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_need_a_role_that_reads_and_name_the_bad_parameter() {
    let gw = start_on(Kind::Sqlite).await;
    let c = Client::new();
    // An Ops Center user without the administrator roles may not even list.
    let (s, err) = call(
        &c,
        Method::GET,
        &format!("{}/portal/security/v1/users", gw.base),
        ("Authorization", "Bearer demo-opscenter-user-token"),
        None,
    )
    .await;
    assert_eq!(s, 403);
    assert!(err["errorMessage"].as_str().unwrap().contains("read users"));
    // A Commvault id that is not an int32 is the dialect's 400 naming it.
    let (s, err) = call(
        &c,
        Method::GET,
        &format!("{}/webconsole/api/User/12ab", gw.base),
        ("Authtoken", CV),
        None,
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        err["errorMessage"].as_str().unwrap().contains("userId"),
        "{err}"
    );
    // No credentials: 401 with the challenge, before any lookup.
    let r = c
        .get(format!("{}/user-service/v1/user/LOCAL/x", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
}

/// How many users named `name` the SCIM provider at `url` holds.
async fn provider_users_named(url: &str, name: &str) -> u64 {
    let list: Value = Client::new()
        .get(format!("{url}/Users?filter=userName%20eq%20%22{name}%22"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["totalResults"].as_u64().unwrap_or(0)
}

/// Waits until the mirror's queue is empty.
async fn drained(base: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while common::gateway::metric(base, "userbridge_mirror_queue_depth").await != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the mirror queue did not drain"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialect_delete_through_a_mirror_removes_the_user_from_the_shadow_too() {
    let shadow = common::peers::ScimServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = common::gateway::mirror_config(
        dir.path(),
        &shadow.url,
        userbridge::config::OutboundConfig::default(),
    );
    let (base, _stop) = common::gateway::serve_config(config).await;

    let c = Client::new();
    for name in ["mirror-cv", "mirror-vc"] {
        seed_vc(&base, name).await;
    }
    drained(&base).await;
    assert_eq!(provider_users_named(&shadow.url, "mirror-cv").await, 1);
    assert_eq!(provider_users_named(&shadow.url, "mirror-vc").await, 1);

    // Commvault finds its id on the primary and deletes by it; vc deletes by key.
    let (_, all) = call(
        &c,
        Method::GET,
        &format!("{base}/webconsole/api/User"),
        ("Authtoken", CV),
        None,
    )
    .await;
    let id = all["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["userEntity"]["userName"] == "mirror-cv")
        .map(|u| u["userEntity"]["userId"].as_i64().unwrap())
        .unwrap();
    let (s, _) = call(
        &c,
        Method::DELETE,
        &format!("{base}/webconsole/api/User/{id}?newUserId=1&newUserGroupId=0"),
        ("Authtoken", CV),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = call(
        &c,
        Method::DELETE,
        &format!("{base}/user-service/v1/user/LOCAL/mirror-vc"),
        ("Authorization", VC),
        None,
    )
    .await;
    assert_eq!(s, 204);
    drained(&base).await;
    assert_eq!(provider_users_named(&shadow.url, "mirror-cv").await, 0);
    assert_eq!(provider_users_named(&shadow.url, "mirror-vc").await, 0);

    // Both deletes are in the audit trail, each with its caller and route.
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let deletes: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["operation"] == "delete" && r["caller"] != "mirror")
        .collect();
    assert_eq!(deletes.len(), 2, "{audit}");
    assert!(
        deletes
            .iter()
            .all(|r| r["outcome"]["status"].as_u64().unwrap() < 300)
    );
    assert!(!audit.contains("S3cret-pass!") && !audit.contains("JBSWY3DPEHPK3PXP"));
}
