//! Identity providers' provisioning cycles against `/scim/v2`, request by request as each
//! provider's published examples show them, over real sockets; no answer may be an error
//! that the provider does not expect.
//!
//! - Microsoft Entra ID (its "develop a SCIM endpoint" request/response examples): lookup by
//!   `userName eq` (zero results, then one), create with the enterprise extension, lookup by
//!   `externalId` and by `emails[type eq "work"].value`, PATCH with PascalCase `Replace`,
//!   value paths and string booleans, disable, group create, group lookup by `displayName`
//!   with `excludedAttributes=members`, `Add`/`Remove` of members with value lists, group
//!   rename, deletes.
//! - Okta (its SCIM 2.0 guide): `userName eq` with `startIndex=1&count=100`, create,
//!   `PUT`-based profile update, deactivate with `replace` `{"active": false}` without a path,
//!   group push (create, `replace` members, rename with `id` restated, `remove` by value
//!   filter), delete.
//!
//! Both run on the embedded store and on a live SCIM provider behind the `scim` backend.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

use common::gateway::{Kind, start_on};

struct Idp {
    c: Client,
    scim: String,
}

impl Idp {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self
            .c
            .request(method.clone(), format!("{}{path}", self.scim))
            .bearer_auth("demo-scim-token");
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/scim+json; charset=utf-8")
                .body(b.to_string());
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        (status, v)
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let mut u = reqwest::Url::parse(&format!("{}{path}", self.scim)).unwrap();
        u.query_pairs_mut().extend_pairs(query);
        let full = u.as_str()[self.scim.len()..].to_owned();
        self.call(Method::GET, &full, None).await.1
    }
}

fn patch(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

async fn entra_users(idp: &Idp, tag: &str) -> String {
    let user_name = format!("Test_User_{tag}@contoso.com");
    let filter = format!("userName eq \"{user_name}\"");
    let l = idp.get("/Users", &[("filter", &filter)]).await;
    assert_eq!(l["totalResults"], 0, "{l}");
    let (s, u) = idp
        .call(
            Method::POST,
            "/Users",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
                "externalId": format!("0a21f0f2-8d2a-4f8e-bf98-{tag}"),
                "userName": user_name,
                "active": true,
                "emails": [{"primary": true, "type": "work", "value": format!("Test_User_{tag}@testuser.com")}],
                "meta": {"resourceType": "User"},
                "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
                "roles": [],
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Sales"}
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let id = u["id"].as_str().unwrap().to_owned();
    let l = idp.get("/Users", &[("filter", &filter)]).await;
    assert_eq!(l["Resources"][0]["id"], json!(id));
    let by_ext = format!("externalId eq \"0a21f0f2-8d2a-4f8e-bf98-{tag}\"");
    let l = idp.get("/Users", &[("filter", &by_ext)]).await;
    assert_eq!(l["totalResults"], 1, "{l}");
    let by_mail = format!("emails[type eq \"work\"].value eq \"test_user_{tag}@testuser.com\"");
    let l = idp.get("/Users", &[("filter", &by_mail)]).await;
    assert_eq!(l["totalResults"], 1, "{l}");

    // Multi-valued and single-valued updates, as Entra sends them.
    let (_, u) = idp
        .call(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(patch(json!([
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
                {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
                {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "701984"},
                {"op": "Replace", "value": {"displayName": "Updated Name", "title": "Engineer"}}
            ]))),
        )
        .await;
    assert_eq!(u["emails"][0]["value"], "updatedEmail@microsoft.com", "{u}");
    assert_eq!(u["name"]["familyName"], "updatedFamilyName");
    assert_eq!(
        u["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["employeeNumber"],
        "701984"
    );
    assert_eq!(u["title"], "Engineer");
    // Disable, with the boolean as a string (Entra's behaviour before aadOptscim062020).
    let (_, u) = idp
        .call(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(patch(
                json!([{"op": "Replace", "path": "active", "value": "False"}]),
            )),
        )
        .await;
    assert_eq!(u["active"], false);
    let l = idp
        .get(
            "/Users",
            &[("filter", &format!("{filter} and active eq false"))],
        )
        .await;
    assert_eq!(l["totalResults"], 1, "{l}");
    id
}

async fn okta_users(idp: &Idp, tag: &str) -> String {
    let user_name = format!("okta.{tag}@example.com");
    let filter = format!("userName eq \"{user_name}\"");
    let q = [
        ("filter", filter.as_str()),
        ("startIndex", "1"),
        ("count", "100"),
    ];
    let l = idp.get("/Users", &q).await;
    assert_eq!(l["totalResults"], 0);
    assert_eq!(l["Resources"], json!([]));
    let (s, u) = idp
        .call(
            Method::POST,
            "/Users",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": user_name,
                "name": {"givenName": "John", "familyName": "Doe"},
                "emails": [{"primary": true, "value": user_name, "type": "work"}],
                "displayName": "John Doe",
                "locale": "en-US",
                "externalId": format!("00ujl29u0le5T6Aj{tag}"),
                "groups": [],
                "password": "1mz050nq",
                "active": true
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert!(u.get("password").is_none(), "{u}");
    let id = u["id"].as_str().unwrap().to_owned();
    let l = idp.get("/Users", &q).await;
    assert_eq!(l["Resources"][0]["id"], json!(id));
    let _ = idp.call(Method::GET, &format!("/Users/{id}"), None).await;
    // Okta updates a profile with PUT, restating the whole user.
    let (_, u) = idp
        .call(
            Method::PUT,
            &format!("/Users/{id}"),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "id": id,
                "userName": user_name,
                "name": {"givenName": "Another", "familyName": "Doe"},
                "emails": [{"primary": true, "value": user_name, "type": "work"}],
                "displayName": "Another Doe",
                "locale": "en-US",
                "externalId": format!("00ujl29u0le5T6Aj{tag}"),
                "groups": [],
                "active": true,
                "meta": {"resourceType": "User"}
            })),
        )
        .await;
    assert_eq!(u["name"]["givenName"], "Another");
    // Deactivate: replace without a path.
    let (_, u) = idp
        .call(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(patch(
                json!([{"op": "replace", "value": {"active": false}}]),
            )),
        )
        .await;
    assert_eq!(u["active"], false);
    id
}

async fn entra_groups(idp: &Idp, member: &str) {
    let (s, g) = idp
        .call(
            Method::POST,
            "/Groups",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group",
                            "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/Group"],
                "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
                "displayName": "displayName",
                "meta": {"resourceType": "Group"}
            })),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let gid = g["id"].as_str().unwrap().to_owned();
    let l = idp
        .get(
            "/Groups",
            &[
                ("excludedAttributes", "members"),
                ("filter", "displayName eq \"displayName\""),
            ],
        )
        .await;
    assert_eq!(l["Resources"][0]["id"], json!(gid));
    let _ = idp
        .get(
            &format!("/Groups/{gid}"),
            &[("excludedAttributes", "members")],
        )
        .await;
    let one = format!("/Groups/{gid}");
    idp.call(
        Method::PATCH,
        &one,
        Some(patch(json!([{"op": "Replace", "path": "displayName", "value": "1879db59updatedDisplayName"}]))),
    )
    .await;
    let (_, g) = idp
        .call(
            Method::PATCH,
            &one,
            Some(patch(json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": member}]}]))),
        )
        .await;
    assert_eq!(g["members"][0]["value"], json!(member), "{g}");
    let filter = format!("members[value eq \"{member}\"]");
    let l = idp.get("/Groups", &[("filter", &filter)]).await;
    assert_eq!(l["totalResults"], 1, "{l}");
    let (_, g) = idp
        .call(
            Method::PATCH,
            &one,
            Some(patch(json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": member}]}]))),
        )
        .await;
    assert_eq!(g["members"], json!([]), "{g}");
    idp.call(Method::DELETE, &one, None).await;
}

async fn okta_groups(idp: &Idp, member: &str) {
    let (_, g) = idp
        .call(
            Method::POST,
            "/Groups",
            Some(json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Test SCIMv2",
                "members": []
            })),
        )
        .await;
    let gid = g["id"].as_str().unwrap().to_owned();
    let one = format!("/Groups/{gid}");
    let (_, g) = idp
        .call(
            Method::PATCH,
            &one,
            Some(patch(json!([{"op": "replace", "path": "members",
                               "value": [{"value": member, "display": "user"}]}]))),
        )
        .await;
    assert_eq!(g["members"][0]["value"], json!(member));
    idp.call(
        Method::PATCH,
        &one,
        Some(patch(
            json!([{"op": "replace", "value": {"id": gid, "displayName": "Test SCIMv2 renamed"}}]),
        )),
    )
    .await;
    let (_, g) = idp
        .call(
            Method::PATCH,
            &one,
            Some(patch(
                json!([{"op": "remove", "path": format!("members[value eq \"{member}\"]")}]),
            )),
        )
        .await;
    assert_eq!(g["displayName"], "Test SCIMv2 renamed");
    assert_eq!(g["members"], json!([]));
    idp.call(Method::DELETE, &one, None).await;
}

async fn cycles(kind: Kind) {
    let g = start_on(kind).await;
    let idp = Idp {
        c: Client::new(),
        scim: format!("{}/scim/v2", g.base),
    };
    let entra = entra_users(&idp, "dfeef4c5").await;
    let okta = okta_users(&idp, "kt1").await;
    entra_groups(&idp, &entra).await;
    okta_groups(&idp, &okta).await;
    for id in [entra, okta] {
        let (s, _) = idp
            .call(Method::DELETE, &format!("/Users/{id}"), None)
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
    }
}

#[tokio::test]
async fn entra_and_okta_on_sqlite() {
    cycles(Kind::Sqlite).await;
}

#[tokio::test]
async fn entra_and_okta_on_postgres() {
    cycles(Kind::Postgres).await;
}

#[tokio::test]
async fn entra_and_okta_on_a_scim_provider() {
    cycles(Kind::Scim).await;
}

/// What Entra ID sends besides its main cycle: a PATCH without a path whose keys are dotted
/// or URN-qualified, `manager` as a bare id (its documented behaviour), booleans as strings
/// inside such a map, and a `Remove` of the manager.
#[tokio::test]
async fn entra_quirks() {
    let g = start_on(Kind::Sqlite).await;
    let idp = Idp {
        c: Client::new(),
        scim: format!("{}/scim/v2", g.base),
    };
    let (_, u) = idp
        .call(
            Method::POST,
            "/Users",
            Some(
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                        "userName": "quirks@contoso.com", "active": true}),
            ),
        )
        .await;
    let id = u["id"].as_str().unwrap().to_owned();
    let ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
    let (_, u) = idp
        .call(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(patch(json!([
                {"op": "Replace", "value": {
                    "name.givenName": "Quinn",
                    "name.familyName": "Irk",
                    format!("{ent}:department"): "Finance",
                    "active": "False"
                }},
                {"op": "Add", "path": format!("{ent}:manager"), "value": "26118915-6090-4610-87e4-49d8ca9f808d"}
            ]))),
        )
        .await;
    assert_eq!(u["name"]["givenName"], "Quinn", "{u}");
    assert_eq!(u["name"]["familyName"], "Irk");
    assert_eq!(u[ent]["department"], "Finance");
    assert_eq!(u["active"], false);
    assert_eq!(
        u[ent]["manager"]["value"], "26118915-6090-4610-87e4-49d8ca9f808d",
        "{u}"
    );
    let (_, u) = idp
        .call(
            Method::PATCH,
            &format!("/Users/{id}"),
            Some(patch(
                json!([{"op": "Remove", "path": format!("{ent}:manager")}]),
            )),
        )
        .await;
    assert!(u[ent].get("manager").is_none(), "{u}");
}
