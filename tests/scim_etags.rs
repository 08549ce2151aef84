//! `/scim/v2` entity tags (RFC 7644 §3.14): every single-resource answer carries `ETag` (the
//! user's `meta.version`); `If-None-Match` on a read answers 304; `If-Match` on PUT, PATCH and
//! DELETE answers 412 when the user changed, and the write is not made. On SQLite and on a
//! live SCIM provider.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

use common::gateway::{Kind, start_on};

async fn send(
    c: &Client,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (StatusCode, Option<String>, Value) {
    let mut req = c.request(method, url).bearer_auth("demo-scim-token");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req
            .header("Content-Type", "application/scim+json")
            .body(b.to_string());
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let etag = r
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = r.text().await.unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, etag, v)
}

async fn etags_on(kind: Kind) {
    let g = start_on(kind).await;
    let c = Client::new();
    let users = format!("{}/scim/v2/Users", g.base);
    let (s, created_tag, user) = send(
        &c,
        Method::POST,
        &users,
        &[],
        Some(json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "etag-ann"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{user}");
    let v1 = user["meta"]["version"].as_str().unwrap().to_owned();
    assert_eq!(created_tag.as_deref(), Some(v1.as_str()));
    let one = format!("{users}/{}", user["id"].as_str().unwrap());

    // A read at the version the client holds: 304, no body.
    let (s, tag, _) = send(&c, Method::GET, &one, &[("If-None-Match", &v1)], None).await;
    assert_eq!(
        (s, tag.as_deref()),
        (StatusCode::NOT_MODIFIED, Some(v1.as_str()))
    );

    // A PATCH at that version is made and moves the version on.
    let set_title = |t: &str| {
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
               "Operations": [{"op": "replace", "path": "title", "value": t}]})
    };
    let (s, tag, user) = send(
        &c,
        Method::PATCH,
        &one,
        &[("If-Match", &v1)],
        Some(set_title("first")),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{user}");
    let v2 = tag.unwrap();
    assert_ne!(v2, v1);
    assert_eq!(user["meta"]["version"], json!(v2));

    // The same client, still at v1, is refused and changes nothing.
    for (method, body) in [
        (Method::PATCH, Some(set_title("stale"))),
        (
            Method::PUT,
            Some(
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                        "userName": "etag-ann", "title": "stale"}),
            ),
        ),
        (Method::DELETE, None),
    ] {
        let (s, _, e) = send(&c, method.clone(), &one, &[("If-Match", &v1)], body).await;
        assert_eq!(s, StatusCode::PRECONDITION_FAILED, "{method}: {e}");
        assert_eq!(e["status"], "412", "{e}");
    }
    let (s, tag, user) = send(&c, Method::GET, &one, &[("If-None-Match", &v1)], None).await;
    assert_eq!((s, tag.as_deref()), (StatusCode::OK, Some(v2.as_str())));
    assert_eq!(user["title"], "first");

    // `*` and a list holding the current version match.
    let list = format!("\"nope\", {v2}");
    let (s, _, user) = send(
        &c,
        Method::PATCH,
        &one,
        &[("If-Match", &list)],
        Some(set_title("second")),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{user}");
    let (s, _, _) = send(&c, Method::DELETE, &one, &[("If-Match", "*")], None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);

    // ServiceProviderConfig says so.
    let (_, _, spc) = send(
        &c,
        Method::GET,
        &format!("{}/scim/v2/ServiceProviderConfig", g.base),
        &[],
        None,
    )
    .await;
    assert_eq!(spc["etag"]["supported"], true);
    assert_eq!(spc["sort"]["supported"], true);
}

#[tokio::test]
async fn on_sqlite() {
    etags_on(Kind::Sqlite).await;
}

#[tokio::test]
async fn on_postgres() {
    etags_on(Kind::Postgres).await;
}

#[tokio::test]
async fn on_a_scim_provider() {
    etags_on(Kind::Scim).await;
}
