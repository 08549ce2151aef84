//! `/scim/v2/Users` searches with the whole RFC 7644 filter grammar, sorting and paging, over
//! real sockets, on each backend: the embedded SQLite store (filters run in SQL), a live
//! `scim2-server` (filters passed to it, or evaluated by the gateway where the provider cannot
//! run them), and a mirror over SQLite. Every backend answers the same table with the same
//! users; errors are RFC 7644 `invalidFilter` / `invalidPath` with the position.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use common::gateway::{Kind, start_on};

const TOKEN: &str = "demo-scim-token";

fn people() -> Vec<Value> {
    vec![
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                           "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
               "userName": "bjensen", "externalId": "E-1", "active": true, "title": "Tour Guide",
               "name": {"givenName": "Barbara", "familyName": "Jensen"},
               "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true},
                          {"value": "babs@jensen.org", "type": "home"}],
               "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "701984"}}),
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
               "userName": "jsmith", "externalId": "e-1", "active": false, "userType": "Intern",
               "emails": [{"value": "JSmith@Example.org", "type": "work"}]}),
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
               "userName": "alice", "active": true, "userType": "Employee",
               "name": {"givenName": "Alice", "familyName": "Zeta"}}),
    ]
}

/// `(filter, the userNames it selects, in creation order)`.
const TABLE: &[(&str, &[&str])] = &[
    (r#"userName eq "BJENSEN""#, &["bjensen"]),
    (r#"userName ne "bjensen""#, &["jsmith", "alice"]),
    (r#"userName sw "j""#, &["jsmith"]),
    (r#"userName co "I""#, &["jsmith", "alice"]),
    (r#"userName ew "N""#, &["bjensen"]),
    (r#"externalId eq "e-1""#, &["jsmith"]),
    (r#"emails co "example""#, &["bjensen", "jsmith"]),
    (r#"emails.value ew ".org""#, &["bjensen", "jsmith"]),
    (
        r#"emails[type eq "work" and primary eq true]"#,
        &["bjensen"],
    ),
    (
        r#"emails[type eq "work"] and not (emails[type eq "home"])"#,
        &["jsmith"],
    ),
    ("title pr", &["bjensen"]),
    ("not (title pr)", &["jsmith", "alice"]),
    ("active eq true", &["bjensen", "alice"]),
    (r#"active eq "False""#, &["jsmith"]),
    (r#"name.familyName gt "k""#, &["alice"]),
    (r#"name.givenName le "alice""#, &["alice"]),
    (
        r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#,
        &["bjensen"],
    ),
    (
        r#"(userType eq "intern" or title pr) and not (active eq false)"#,
        &["bjensen"],
    ),
    (
        r#"userType eq "Employee" or userName eq "jsmith""#,
        &["jsmith", "alice"],
    ),
    (
        r#"meta.created gt "2000-01-01T00:00:00Z""#,
        &["bjensen", "jsmith", "alice"],
    ),
    (r#"meta.lastModified lt "2000-01-01T00:00:00Z""#, &[]),
];

async fn get(c: &Client, url: &str) -> (StatusCode, Value) {
    let r = c.get(url).bearer_auth(TOKEN).send().await.unwrap();
    (r.status(), r.json().await.unwrap())
}

fn names(list: &Value) -> Vec<String> {
    list["Resources"]
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|u| u["userName"].as_str().unwrap().to_owned())
        .collect()
}

async fn seed(base: &str) {
    let c = Client::new();
    for p in people() {
        let r = c
            .post(format!("{base}/scim/v2/Users"))
            .bearer_auth(TOKEN)
            .header("Content-Type", "application/scim+json")
            .body(p.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap()
        );
    }
}

fn url(base: &str, query: &[(&str, &str)]) -> String {
    let mut u = reqwest::Url::parse(&format!("{base}/scim/v2/Users")).unwrap();
    u.query_pairs_mut().extend_pairs(query);
    u.to_string()
}

/// `in_order`: whether an unsorted answer comes in creation order (the gateway's stores); a
/// SCIM provider answers in its own order.
async fn the_table_holds(base: &str, in_order: bool) {
    let c = Client::new();
    for (filter, want) in TABLE {
        let (s, list) = get(&c, &url(base, &[("filter", filter)])).await;
        assert_eq!(s, StatusCode::OK, "{filter}: {list}");
        let mut got = names(&list);
        let mut want = want.to_vec();
        if !in_order {
            got.sort();
            want.sort_unstable();
        }
        assert_eq!(got, want, "{filter}");
        assert_eq!(list["totalResults"], json!(want.len()), "{filter}");
    }
}

async fn sorting_and_paging(base: &str) {
    let c = Client::new();
    let (_, list) = get(&c, &url(base, &[("sortBy", "userName")])).await;
    assert_eq!(names(&list), ["alice", "bjensen", "jsmith"]);
    let q = [
        ("sortBy", "name.familyName"),
        ("sortOrder", "descending"),
        ("startIndex", "1"),
        ("count", "2"),
    ];
    let (_, list) = get(&c, &url(base, &q)).await;
    // Users without the attribute come first when descending (RFC 7644 §3.4.2.3).
    assert_eq!(names(&list), ["jsmith", "alice"], "{list}");
    assert_eq!(list["totalResults"], 3);
    assert_eq!(list["itemsPerPage"], 2);
    // Okta's lookup: a filter, startIndex=1&count=100.
    let q = [
        ("filter", r#"userName eq "jsmith""#),
        ("startIndex", "1"),
        ("count", "100"),
    ];
    let (_, list) = get(&c, &url(base, &q)).await;
    assert_eq!(names(&list), ["jsmith"]);
    // count=0: only the total (RFC 7644 §3.4.2.4).
    let (_, list) = get(&c, &url(base, &[("count", "0")])).await;
    assert_eq!(list["totalResults"], 3);
    assert_eq!(names(&list), Vec::<String>::new());
    // POST /.search carries the same query in its body.
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": "emails co \"example\"",
        "sortBy": "userName",
        "sortOrder": "descending",
        "attributes": ["userName"],
        "startIndex": 1,
        "count": 10
    });
    let r = c
        .post(format!("{base}/scim/v2/Users/.search"))
        .bearer_auth(TOKEN)
        .header("Content-Type", "application/scim+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let list: Value = r.json().await.unwrap();
    assert_eq!(names(&list), ["jsmith", "bjensen"]);
    assert!(list["Resources"][0].get("emails").is_none(), "{list}");
}

async fn errors_name_the_position(base: &str) {
    let c = Client::new();
    let cases = [
        (r#"userName xx "a""#, "invalidFilter", "at character 10"),
        (r#"userName eq "a" and"#, "invalidFilter", "at the end"),
        (
            r#"nickname eq "a" or nope pr"#,
            "invalidPath",
            "no attribute `nope` (at character 20)",
        ),
        ("active gt true", "invalidFilter", "only eq and ne"),
    ];
    for (filter, scim_type, text) in cases {
        let (s, e) = get(&c, &url(base, &[("filter", filter)])).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{filter}");
        assert_eq!(e["scimType"], scim_type, "{filter}: {e}");
        assert_eq!(e["status"], "400");
        assert!(
            e["detail"].as_str().unwrap().contains(text),
            "{filter}: {e}"
        );
    }
    let (s, e) = get(&c, &url(base, &[("sortBy", "nope")])).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(e["scimType"], "invalidPath");
}

async fn on(kind: Kind) {
    let g = start_on(kind).await;
    seed(&g.base).await;
    the_table_holds(&g.base, !matches!(kind, Kind::Scim)).await;
    sorting_and_paging(&g.base).await;
    errors_name_the_position(&g.base).await;
}

#[tokio::test]
async fn on_sqlite() {
    on(Kind::Sqlite).await;
}

#[tokio::test]
async fn on_postgres() {
    on(Kind::Postgres).await;
}

#[tokio::test]
async fn on_a_scim_provider() {
    on(Kind::Scim).await;
}

/// A webhook receiver cannot filter: the gateway reads its users a page at a time and
/// evaluates the filter itself, with the same meaning.
#[tokio::test]
async fn on_a_webhook_receiver_the_gateway_evaluates() {
    let g = start_on(Kind::Webhook).await;
    let c = Client::new();
    for (name, enabled) in [("wanda", true), ("walter", false), ("xavier", true)] {
        let r = c
            .put(format!("{}/user-service/v1/user", g.base))
            .header("Authorization", "Bearer demo-vc-token")
            .json(
                &json!({"userKey": {"username": name, "authenticator": "LOCAL"},
                          "email": format!("{name}@example.com"), "enabled": enabled}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    }
    let cases: &[(&str, &[&str])] = &[
        (r#"userName sw "W""#, &["wanda", "walter"]),
        (r#"userName sw "w" and active eq true"#, &["wanda"]),
        (
            r#"emails[value ew "@EXAMPLE.COM"] and not (userName eq "wanda")"#,
            &["walter", "xavier"],
        ),
        ("active eq false", &["walter"]),
    ];
    for (filter, want) in cases {
        let (s, list) = get(&c, &url(&g.base, &[("filter", filter)])).await;
        assert_eq!(s, StatusCode::OK, "{filter}: {list}");
        assert_eq!(names(&list), *want, "{filter}");
    }
    let (_, list) = get(
        &c,
        &url(
            &g.base,
            &[
                ("sortBy", "userName"),
                ("sortOrder", "descending"),
                ("count", "2"),
            ],
        ),
    )
    .await;
    assert_eq!(names(&list), ["xavier", "wanda"]);
    assert_eq!(list["totalResults"], 3);
}

/// A mirror answers from its primary.
#[tokio::test]
async fn through_a_mirror() {
    let server = common::peers::ScimServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = common::gateway::mirror_config(
        dir.path(),
        &server.url,
        userbridge::config::OutboundConfig::default(),
    );
    let (base, _stop) = common::gateway::serve_config(config).await;
    seed(&base).await;
    the_table_holds(&base, true).await;
    sorting_and_paging(&base).await;
}
