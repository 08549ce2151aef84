//! `/scim/v2/Groups` end to end over real sockets, on the embedded store and on a live SCIM
//! provider behind the `scim` backend: create with members,
//! read, list with `displayName eq` and `excludedAttributes=members`, PATCH of `members` the
//! way Entra ID sends it (`Add`/`Remove` with a `value` list) and the way Okta does
//! (`remove` with `members[value eq "…"]`, `replace` of `displayName`), PUT, ETags, delete —
//! consistent with the users' `groups` and with a Commvault `userGroups` change.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

use common::gateway::{Kind, start_on};

async fn send(c: &Client, method: Method, url: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = c.request(method, url).bearer_auth("demo-scim-token");
    if let Some(b) = body {
        req = req
            .header("Content-Type", "application/scim+json")
            .body(b.to_string());
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn member_ids(g: &Value) -> Vec<String> {
    let mut v: Vec<String> = g["members"]
        .as_array()
        .map(|m| {
            m.iter()
                .map(|x| x["value"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn group_names(u: &Value) -> Vec<String> {
    u["groups"]
        .as_array()
        .map(|g| {
            g.iter()
                .map(|x| x["display"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn patch(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

#[tokio::test]
async fn groups_end_to_end_on_sqlite() {
    groups_end_to_end(Kind::Sqlite).await;
}

#[tokio::test]
async fn groups_end_to_end_on_postgres() {
    groups_end_to_end(Kind::Postgres).await;
}

#[tokio::test]
async fn groups_end_to_end_on_a_scim_provider() {
    groups_end_to_end(Kind::Scim).await;
}

async fn groups_end_to_end(kind: Kind) {
    let g = start_on(kind).await;
    let c = Client::new();
    let scim = format!("{}/scim/v2", g.base);
    let mut ids = Vec::new();
    for name in ["grp-ann", "grp-bob"] {
        let (s, u) = send(
            &c,
            Method::POST,
            &format!("{scim}/Users"),
            Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name})),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{u}");
        ids.push(u["id"].as_str().unwrap().to_owned());
    }
    let (ann, bob) = (ids[0].clone(), ids[1].clone());

    // Create, with one member.
    let (s, group) = send(
        &c,
        Method::POST,
        &format!("{scim}/Groups"),
        Some(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": "Engineering", "externalId": "eng-1",
                    "members": [{"value": ann}]}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{group}");
    let gid = group["id"].as_str().unwrap().to_owned();
    assert_eq!(member_ids(&group), std::slice::from_ref(&ann));
    // A member's display (its userName) is returned when asked for.
    assert!(group["members"][0].get("display").is_none(), "{group}");
    let (_, shown) = send(
        &c,
        Method::GET,
        &format!("{scim}/Groups/{gid}?attributes=displayName,members,members.display"),
        None,
    )
    .await;
    assert_eq!(shown["members"][0]["display"], "grp-ann", "{shown}");
    assert_eq!(group["meta"]["resourceType"], "Group");
    let one = format!("{scim}/Groups/{gid}");

    // The user shows it.
    let (_, u) = send(&c, Method::GET, &format!("{scim}/Users/{ann}"), None).await;
    assert_eq!(group_names(&u), ["Engineering"]);

    // A second group of the same name is a conflict; a member that is no user is refused.
    let (s, e) = send(
        &c,
        Method::POST,
        &format!("{scim}/Groups"),
        Some(json!({"displayName": "Engineering"})),
    )
    .await;
    assert_eq!(
        (s, e["scimType"].as_str()),
        (StatusCode::CONFLICT, Some("uniqueness"))
    );
    let (s, e) = send(
        &c,
        Method::POST,
        &format!("{scim}/Groups"),
        Some(json!({"displayName": "Ghosts", "members": [{"value": "no-such-user"}]})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{e}");
    assert!(
        e["detail"].as_str().unwrap().contains("no-such-user"),
        "{e}"
    );

    // Entra's lookup before it creates: filter on displayName, members left out.
    let mut url = reqwest::Url::parse(&format!("{scim}/Groups")).unwrap();
    url.query_pairs_mut()
        .append_pair("excludedAttributes", "members")
        .append_pair("filter", "displayName eq \"engineering\"");
    let (s, l) = send(&c, Method::GET, url.as_str(), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(l["totalResults"], 1, "{l}");
    assert_eq!(l["Resources"][0]["id"], json!(gid));
    assert!(l["Resources"][0].get("members").is_none(), "{l}");
    // The configured groups are groups too.
    let mut url = reqwest::Url::parse(&format!("{scim}/Groups")).unwrap();
    url.query_pairs_mut()
        .append_pair(
            "filter",
            "displayName eq \"Auditors\" or externalId eq \"eng-1\"",
        )
        .append_pair("sortBy", "displayName");
    let (_, l) = send(&c, Method::GET, url.as_str(), None).await;
    let names: Vec<&str> = l["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Auditors", "Engineering"]);

    // Entra adds and removes members with a value list, ops in PascalCase.
    let (s, g1) = send(
        &c,
        Method::PATCH,
        &one,
        Some(patch(
            json!([{"op": "Add", "path": "members", "value": [{"value": bob}]}]),
        )),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{g1}");
    let mut both = vec![ann.clone(), bob.clone()];
    both.sort();
    assert_eq!(member_ids(&g1), both);
    let (s, g2) = send(
        &c,
        Method::PATCH,
        &one,
        Some(patch(
            json!([{"op": "Remove", "path": "members", "value": [{"value": ann}]}]),
        )),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{g2}");
    assert_eq!(member_ids(&g2), std::slice::from_ref(&bob));
    let (_, u) = send(&c, Method::GET, &format!("{scim}/Users/{ann}"), None).await;
    assert!(group_names(&u).is_empty(), "{u}");

    // Okta removes by a value filter and renames with replace.
    let (s, g3) = send(
        &c,
        Method::PATCH,
        &one,
        Some(patch(json!([
            {"op": "remove", "path": format!("members[value eq \"{bob}\"]")},
            {"op": "replace", "value": {"id": gid, "displayName": "Engineering EU"}}
        ]))),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{g3}");
    assert!(member_ids(&g3).is_empty());
    assert_eq!(g3["displayName"], "Engineering EU");

    // PUT replaces the members; a stale If-Match is refused.
    let stale = g1["meta"]["version"].as_str().unwrap().to_owned();
    let r = c
        .put(&one)
        .bearer_auth("demo-scim-token")
        .header("Content-Type", "application/scim+json")
        .header("If-Match", stale)
        .body(json!({"displayName": "x", "members": []}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    let (s, g4) = send(
        &c,
        Method::PUT,
        &one,
        Some(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": "Engineering EU", "members": [{"value": ann}, {"value": bob}]}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{g4}");
    assert_eq!(member_ids(&g4), both);

    // Delete: gone from the users' groups too.
    let (s, _) = send(&c, Method::DELETE, &one, None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = send(&c, Method::GET, &one, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, u) = send(&c, Method::GET, &format!("{scim}/Users/{bob}"), None).await;
    assert!(group_names(&u).is_empty(), "{u}");
}

/// A Commvault client's `userGroups` change shows in `/Groups`, and a `/Groups` PATCH in the
/// Commvault read of the user.
#[tokio::test]
async fn a_dialect_group_operation_and_groups_agree_on_sqlite() {
    a_dialect_group_operation_and_groups_agree(Kind::Sqlite).await;
}

#[tokio::test]
async fn a_dialect_group_operation_and_groups_agree_on_postgres() {
    a_dialect_group_operation_and_groups_agree(Kind::Postgres).await;
}

#[tokio::test]
async fn a_dialect_group_operation_and_groups_agree_on_a_scim_provider() {
    a_dialect_group_operation_and_groups_agree(Kind::Scim).await;
}

async fn a_dialect_group_operation_and_groups_agree(kind: Kind) {
    let g = start_on(kind).await;
    let c = Client::new();
    let scim = format!("{}/scim/v2", g.base);
    let (s, u) = send(
        &c,
        Method::POST,
        &format!("{scim}/Users"),
        Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "cv-grp"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    let id = u["id"].as_str().unwrap().to_owned();
    // numericId is returned on request only.
    let (_, u) = send(
        &c,
        Method::GET,
        &format!(
            "{scim}/Users/{id}?attributes=urn:userbridge:params:scim:schemas:extension:2.0:User:numericId"
        ),
        None,
    )
    .await;
    let numeric = u["urn:userbridge:params:scim:schemas:extension:2.0:User"]["numericId"]
        .as_i64()
        .unwrap();
    let (_, before) = send(&c, Method::GET, &format!("{scim}/Groups/4"), None).await;
    assert_eq!(before["displayName"], "Auditors");
    let r = c
        .put(format!("{}/webconsole/api/V4/user/{numeric}", g.base))
        .header("Authtoken", "QSDK demo-commvault-token")
        .header("Accept", "application/json")
        .json(&json!({"newName": "cv-grp", "userGroups": [{"name": "Auditors"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let (_, after) = send(&c, Method::GET, &format!("{scim}/Groups/4"), None).await;
    assert_eq!(member_ids(&after), std::slice::from_ref(&id));
    assert_ne!(after["meta"]["version"], before["meta"]["version"]);

    let (s, _) = send(
        &c,
        Method::PATCH,
        &format!("{scim}/Groups/3"),
        Some(patch(
            json!([{"op": "add", "path": "members", "value": [{"value": id}]}]),
        )),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let r = c
        .get(format!("{}/webconsole/api/User/{numeric}", g.base))
        .header("Authtoken", "QSDK demo-commvault-token")
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    let text = body.to_string();
    assert!(
        text.contains("Operators") && text.contains("Auditors"),
        "{body}"
    );
}

/// Through a mirror: `/Groups` writes go to the primary, and each user whose memberships
/// changed is copied to the shadow, whose provider then shows the membership.
#[tokio::test]
async fn through_a_mirror_the_shadow_gets_the_memberships() {
    let server = common::peers::ScimServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = common::gateway::mirror_config(
        dir.path(),
        &server.url,
        userbridge::config::OutboundConfig::default(),
    );
    let (base, _stop) = common::gateway::serve_config(config).await;
    let c = Client::new();
    let scim = format!("{base}/scim/v2");
    let (s, u) = send(
        &c,
        Method::POST,
        &format!("{scim}/Users"),
        Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "mirror-grp"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    let id = u["id"].as_str().unwrap().to_owned();
    let (s, g) = send(
        &c,
        Method::PATCH,
        &format!("{scim}/Groups/3"),
        Some(patch(
            json!([{"op": "add", "path": "members", "value": [{"value": id}]}]),
        )),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{g}");
    assert_eq!(member_ids(&g), std::slice::from_ref(&id));
    // The shadow's provider: the user of that name is a member of its Operators group.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let mut url = reqwest::Url::parse(&format!("{}/Groups", server.url)).unwrap();
        url.query_pairs_mut()
            .append_pair("filter", "displayName eq \"Operators\"");
        let l: Value = c.get(url).send().await.unwrap().json().await.unwrap();
        let members = l["Resources"][0]["members"].clone();
        let mut url = reqwest::Url::parse(&format!("{}/Users", server.url)).unwrap();
        url.query_pairs_mut()
            .append_pair("filter", "userName eq \"mirror-grp\"");
        let users: Value = c.get(url).send().await.unwrap().json().await.unwrap();
        if let Some(shadow_id) = users["Resources"][0]["id"].as_str()
            && members
                .as_array()
                .is_some_and(|m| m.iter().any(|x| x["value"] == shadow_id))
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the shadow never showed the membership: {l} {users}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// On a webhook receiver, `/Groups` serves the configured groups with the users that show
/// them; a membership change reaches the receiver as a user update with a group operation.
#[tokio::test]
async fn on_a_webhook_receiver_groups_are_the_users_groups() {
    let g = start_on(Kind::Webhook).await;
    let c = Client::new();
    let scim = format!("{}/scim/v2", g.base);
    let r = c
        .put(format!("{}/user-service/v1/user", g.base))
        .header("Authorization", "Bearer demo-vc-token")
        .json(
            &json!({"userKey": {"username": "wh-grp", "authenticator": "LOCAL"},
                      "email": "wh-grp@example.com", "enabled": true}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mut url = reqwest::Url::parse(&format!("{scim}/Users")).unwrap();
    url.query_pairs_mut()
        .append_pair("filter", "userName eq \"wh-grp\"");
    let (_, l) = send(&c, Method::GET, url.as_str(), None).await;
    let id = l["Resources"][0]["id"].as_str().unwrap().to_owned();

    let (s, before) = send(&c, Method::GET, &format!("{scim}/Groups/3"), None).await;
    assert_eq!(s, StatusCode::OK, "{before}");
    assert_eq!(before["displayName"], "Operators");
    let (s, after) = send(
        &c,
        Method::PATCH,
        &format!("{scim}/Groups/3"),
        Some(patch(
            json!([{"op": "Add", "path": "members", "value": [{"value": id}]}]),
        )),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{after}");
    assert_eq!(member_ids(&after), std::slice::from_ref(&id));
    assert_ne!(after["meta"]["version"], before["meta"]["version"]);
    let (_, u) = send(&c, Method::GET, &format!("{scim}/Users/{id}"), None).await;
    assert_eq!(group_names(&u), ["Operators"], "{u}");
    let (_, l) = send(&c, Method::GET, &format!("{scim}/Groups"), None).await;
    assert_eq!(l["totalResults"], 2, "{l}");
    let (s, gone) = send(
        &c,
        Method::PATCH,
        &format!("{scim}/Groups/3"),
        Some(patch(
            json!([{"op": "remove", "path": format!("members[value eq \"{id}\"]")}]),
        )),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{gone}");
    assert!(member_ids(&gone).is_empty());
    let (s, e) = send(
        &c,
        Method::POST,
        &format!("{scim}/Groups"),
        Some(json!({"displayName": "New"})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_IMPLEMENTED, "{e}");
}
