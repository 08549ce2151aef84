//! The gateway over real sockets: the server bound to port 0, a real SQLite file in a temp dir,
//! requests sent the way vendor clients send them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;

use base64::Engine as _;
use common::gateway::{Kind, start, start_on};
use common::samples_dir;
use serde_json::{Value, json};
use userbridge::config::Config;

fn token(config: &Config, name: &str) -> String {
    config
        .credentials
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.token.expose().to_owned())
        .unwrap()
}

fn cases() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dialect in ["vc-user-service", "commvault-v4", "opscenter"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(samples_dir().join(dialect))
            .unwrap()
            .map(|f| f.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        out.extend(files);
    }
    out
}

/// Replaces the samples' placeholders: ids of the created user and credentials of the config.
fn substitute(v: &Value, id: &str, numeric: i64, config: &Config) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    match v {
        Value::String(s) if s == "{{numericId}}" => Value::from(numeric),
        Value::String(s) => {
            // Base64 of a placeholder (`validationPassword`): decode, substitute, encode.
            if let Ok(bytes) = b64.decode(s)
                && let Ok(text) = String::from_utf8(bytes)
                && text == "<admin-password>"
            {
                let pw = config
                    .credentials
                    .iter()
                    .find_map(|c| c.password.as_ref())
                    .unwrap()
                    .expose()
                    .to_owned();
                return Value::String(b64.encode(pw));
            }
            Value::String(
                s.replace("{{id}}", id)
                    .replace("{{numericId}}", &numeric.to_string())
                    .replace("<vc-token>", &token(config, "demo-vc-admin"))
                    .replace("<commvault-token>", &token(config, "demo-commvault-admin"))
                    .replace(
                        "<opscenter-admin-token>",
                        &token(config, "demo-opscenter-admin"),
                    )
                    .replace(
                        "<opscenter-user-token>",
                        &token(config, "demo-opscenter-user"),
                    ),
            )
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| substitute(x, id, numeric, config))
                .collect(),
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (k.clone(), substitute(x, id, numeric, config)))
                .collect(),
        ),
        other => other.clone(),
    }
}

async fn send(
    client: &reqwest::Client,
    base: &str,
    req: &Value,
) -> (u16, reqwest::header::HeaderMap, String) {
    let method: reqwest::Method = req["method"].as_str().unwrap().parse().unwrap();
    let mut r = client.request(method, format!("{base}{}", req["path"].as_str().unwrap()));
    if let Some(h) = req["headers"].as_object() {
        for (k, v) in h {
            r = r.header(k.as_str(), v.as_str().unwrap());
        }
    }
    if !req["body"].is_null() {
        r = r.body(req["body"].to_string());
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.text().await.unwrap())
}

/// GETs `url` and parses the answer as JSON.
/// GET `url` as the demo `/scim/v2` credential.
async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    client
        .get(url)
        .bearer_auth(SCIM_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

const SCIM_TOKEN: &str = "demo-scim-token";

/// The ext `numericId` the store gave user `id`, read through `/scim/v2` (vc bodies lack it).
async fn numeric_id(client: &reqwest::Client, base: &str, id: &str) -> i64 {
    // Returned on request only (RFC 7643 `returned: request`).
    let user = get_json(
        client,
        &format!(
            "{base}/scim/v2/Users/{id}?attributes=urn:userbridge:params:scim:schemas:extension:2.0:User:numericId"
        ),
    )
    .await;
    user["urn:userbridge:params:scim:schemas:extension:2.0:User"]["numericId"]
        .as_i64()
        .unwrap()
}

/// The secrets the sample bodies carry, in clear.
fn secrets_of(body: &Value, out: &mut Vec<String>) {
    let b64 = base64::engine::general_purpose::STANDARD;
    if let Some(m) = body.as_object() {
        for (k, v) in m {
            if let Some(s) = v.as_str() {
                match k.as_str() {
                    "password" | "mfaSecret" | "sharedSecret" => out.push(s.to_owned()),
                    "newPassword" | "validationPassword" => {
                        out.push(s.to_owned());
                        if let Ok(b) = b64.decode(s) {
                            out.push(String::from_utf8_lossy(&b).into_owned());
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

#[tokio::test]
async fn every_sample_gets_its_expected_answer_in_order_on_one_store() {
    samples_in_order(Kind::Sqlite).await;
}

#[tokio::test]
async fn every_sample_on_the_scim_backend_against_scim2_server() {
    samples_in_order(Kind::Scim).await;
}

#[tokio::test]
async fn every_sample_gets_its_expected_answer_in_order_on_postgres() {
    samples_in_order(Kind::Postgres).await;
}

#[tokio::test]
async fn every_sample_on_the_webhook_backend() {
    samples_in_order(Kind::Webhook).await;
}

#[tokio::test]
async fn cross_dialect_create_update_read_as_scim() {
    cross_dialect(Kind::Sqlite).await;
}

#[tokio::test]
async fn cross_dialect_on_the_scim_backend_against_scim2_server() {
    cross_dialect(Kind::Scim).await;
}

#[tokio::test]
async fn cross_dialect_create_update_read_as_scim_on_postgres() {
    cross_dialect(Kind::Postgres).await;
}

#[tokio::test]
async fn cross_dialect_on_the_webhook_backend() {
    cross_dialect(Kind::Webhook).await;
}

/// Every sample case, in order, on one fresh store behind `kind`.
async fn samples_in_order(kind: Kind) {
    let gw = start_on(kind).await;
    let client = reqwest::Client::new();
    let (mut id, mut numeric) = (String::new(), 0_i64);
    let mut failures = Vec::new();
    let mut secrets = Vec::new();
    let mut bodies = Vec::new();
    for path in cases() {
        let case: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let req = substitute(&case["request"], &id, numeric, &gw.config);
        secrets_of(&req["body"], &mut secrets);
        let (status, headers, body) = send(&client, &gw.base, &req).await;
        let name = path.display().to_string();
        let want = case["expect"]["status"].as_u64().unwrap() as u16;
        if status != want {
            failures.push(format!("{name}: status {status}, expected {want}: {body}"));
            continue;
        }
        if headers.get("x-request-id").is_none() {
            failures.push(format!("{name}: no X-Request-Id"));
        }
        if let Some(words) = case["expect"]["error_mentions"].as_array() {
            for w in words {
                if !body.contains(w.as_str().unwrap()) {
                    failures.push(format!("{name}: error does not mention {w}: {body}"));
                }
            }
        }
        // Every answer but opscenter's empty success is JSON.
        if !body.is_empty() && serde_json::from_str::<Value>(&body).is_err() {
            failures.push(format!("{name}: body is not JSON: {body}"));
        }
        if name.ends_with("vc-user-service/01-create.json") {
            let created: Value = serde_json::from_str(&body).unwrap();
            id = created["id"].as_str().unwrap().to_owned();
            numeric = numeric_id(&client, &gw.base, &id).await;
        }
        bodies.push((name, body));
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(bodies.len() >= 20, "only {} sample cases ran", bodies.len());
    // No secret any request carried appears in any answer.
    secrets.retain(|s| s.len() >= 4);
    for (name, body) in &bodies {
        for s in &secrets {
            assert!(
                !body.contains(s.as_str()),
                "{name}: answer contains a secret"
            );
        }
    }
}

/// Create in vc-user-service, update through commvault-v4 and opscenter, read back as SCIM.
async fn cross_dialect(kind: Kind) {
    let gw = start_on(kind).await;
    let c = reqwest::Client::new();
    let vc = token(&gw.config, "demo-vc-admin");
    let cv = token(&gw.config, "demo-commvault-admin");
    let ops = token(&gw.config, "demo-opscenter-admin");
    let r = c
        .put(format!("{}/user-service/v1/user", gw.base))
        .bearer_auth(&vc)
        .json(&json!({"userKey": {"username": "zoe", "authenticator": "LOCAL"}, "password": "Pw-vc-1234",
                      "mfaSecret": "MFA-SECRET-XYZ", "email": "zoe@example.com", "firstName": "Zoë"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let created: Value = r.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let numeric = numeric_id(&c, &gw.base, &id).await;

    let r = c
        .put(format!("{}/commandcenter/api/v4/user/{numeric}", gw.base))
        .header("Authtoken", format!("QSDK {cv}"))
        .json(
            &json!({"fullName": "Zoë Example", "userGroups": [{"name": "Auditors"}],
                      "plan": {"id": 7, "name": "Gold"}, "description": "moved"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"errorMessage": "", "errorCode": 0})
    );

    let r = c
        .put(format!("{}/portal/security/v1/users/{id}", gw.base))
        .bearer_auth(&ops)
        .json(&json!({"id": id, "username": "zoe", "lastName": "Example", "enabled": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().is_empty());

    let text = c
        .get(format!("{}/scim/v2/Users/{id}", gw.base))
        .bearer_auth(SCIM_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let user: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(user["userName"], "zoe");
    assert_eq!(user["displayName"], "Zoë Example");
    assert_eq!(user["name"]["givenName"], "Zoë");
    assert_eq!(user["name"]["familyName"], "Example");
    assert_eq!(user["active"], true);
    assert_eq!(user["emails"][0]["value"], "zoe@example.com");
    let ext = &user["urn:userbridge:params:scim:schemas:extension:2.0:User"];
    assert_eq!(ext["plan"], json!({"id": 7, "name": "Gold"}));
    assert_eq!(ext["description"], "moved");
    assert_eq!(
        user["groups"],
        json!([{"value": "4", "display": "Auditors"}])
    );
    for s in ["Pw-vc-1234", "MFA-SECRET-XYZ"] {
        assert!(!text.contains(s), "SCIM read shows a secret");
    }
}

#[tokio::test]
async fn auth_media_type_size_and_method_in_the_dialect_shape() {
    let gw = start().await;
    let c = reqwest::Client::new();
    let url = format!("{}/webconsole/api/V4/user/1", gw.base);
    let cv = token(&gw.config, "demo-commvault-admin");
    // Unknown token: 401, Commvault code 5.
    let r = c
        .put(&url)
        .header("Authtoken", "QSDK nope")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["errorCode"], 5);
    // A Commvault PUT with this media type and body.
    let put = |content_type: &'static str, body: String| {
        c.put(&url)
            .header("Authtoken", &cv)
            .header("Content-Type", content_type)
            .body(body)
            .send()
    };
    // Wrong media type: 415, code 2.
    let r = put("text/plain", "{}".into()).await.unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(r.json::<Value>().await.unwrap()["errorCode"], 2);
    // Too large: 413.
    let big = format!("{{\"description\":\"{}\"}}", "x".repeat(70_000));
    let r = put("application/json", big.clone()).await.unwrap();
    assert_eq!(r.status(), 413);
    // The rest of the body was never read, so the connection closes and the answer says so;
    // a client that keeps sending on its pool is not handed a dead connection (20 in a row).
    assert_eq!(r.headers()["connection"], "close");
    for _ in 0..20 {
        let r = put("application/json", big.clone()).await.unwrap();
        assert_eq!(r.status(), 413);
        let r = put("application/json", json!({"plan": {"id": 0}}).to_string())
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
    }
    // Other method: 405 with Allow.
    let r = c.get(&url).header("Authtoken", &cv).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "PUT");
    // vc without credentials: 401 with the challenge.
    let r = c
        .put(format!("{}/user-service/v1/user", gw.base))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    // The client's request id comes back.
    let r = c
        .get(format!("{}/healthz", gw.base))
        .header("X-Request-Id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let r = c.get(format!("{}/readyz", gw.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // A wrong step-up password is a 400 naming validationPassword, and changes nothing.
    let r = c
        .put(&url)
        .header("Authtoken", &cv)
        .json(&json!({"newPassword": "eHl6", "validationPassword": "d3Jvbmc="}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("validationPassword"));
}

#[tokio::test]
async fn scim_ingress_create_filter_replace_delete() {
    let gw = start().await;
    let c = common::authorized_client(SCIM_TOKEN);
    let users = format!("{}/scim/v2/Users", gw.base);
    let scim = "application/scim+json";
    let body = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "bjensen",
                      "name": {"givenName": "Barbara"}, "password": "Scim-Pass-9", "active": true});
    let r = c
        .post(&users)
        .header("Content-Type", scim)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(r.headers().get("location").is_some());
    let text = r.text().await.unwrap();
    assert!(!text.contains("Scim-Pass-9"));
    let created: Value = serde_json::from_str(&text).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["meta"]["resourceType"], "User");
    // The same userName again: 409 uniqueness.
    let r = c
        .post(&users)
        .header("Content-Type", scim)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(r.json::<Value>().await.unwrap()["scimType"], "uniqueness");
    // No userName: 400.
    let r = c
        .post(&users)
        .header("Content-Type", scim)
        .body("{\"active\":true}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Filter.
    let r: Value = get_json(&c, &format!("{users}?filter=userName%20eq%20%22bjensen%22")).await;
    assert_eq!(r["totalResults"], 1);
    assert_eq!(r["Resources"][0]["id"], id);
    let r: Value = get_json(&c, &format!("{users}?filter=userName+eq+%22nobody%22")).await;
    assert_eq!(r["totalResults"], 0);
    // The id as a percent-encoded path segment (`%2D` is `-`), as some SCIM clients send it.
    let r: Value = get_json(&c, &format!("{users}/{}", id.replace('-', "%2D"))).await;
    assert_eq!(r["id"], id);
    // Replace: attributes not sent are cleared.
    let r = c
        .put(format!("{users}/{id}"))
        .header("Content-Type", scim)
        .body(json!({"userName": "bjensen", "displayName": "Babs"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let replaced: Value = r.json().await.unwrap();
    assert_eq!(replaced["displayName"], "Babs");
    assert!(replaced.get("name").is_none());
    assert_eq!(replaced["id"], id);
    // Delete, then 404.
    assert_eq!(
        c.delete(format!("{users}/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        c.get(format!("{users}/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let spc = c
        .get(format!("{}/scim/v2/ServiceProviderConfig", gw.base))
        .send()
        .await
        .unwrap();
    assert_eq!(spc.status(), 200);
}

#[tokio::test]
async fn a_scim_provider_without_the_extension_schema_is_not_ready_and_gets_no_write() {
    let server = common::peers::ScimServer::start_with(false).await;
    let gw = common::gateway::start_on_scim(&server).await;
    let c = reqwest::Client::new();
    let r = c.get(format!("{}/readyz", gw.base)).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body = r.text().await.unwrap();
    assert!(body.contains("schemas/scim/schemas.json"), "{body}");
    let r = c
        .put(format!("{}/user-service/v1/user", gw.base))
        .bearer_auth(token(&gw.config, "demo-vc-admin"))
        .json(&json!({"userKey": {"username": "kim", "authenticator": "LOCAL"}, "password": "Pw-kim-1234"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let users = get_json(&c, &format!("{}/Users", server.url)).await;
    assert_eq!(users["totalResults"], 0, "{users}");
}

#[tokio::test]
async fn the_callers_request_id_is_echoed_and_named_in_error_bodies_with_room_for_it() {
    let gw = start().await;
    let r = reqwest::Client::new()
        .put(format!("{}/user-service/v1/user", gw.base))
        .header("X-Request-Id", "trace-abc-123")
        .json(&json!({"userKey": {"username": "x", "authenticator": "LOCAL"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["x-request-id"], "trace-abc-123");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["requestId"], "trace-abc-123", "{body}");
}

#[tokio::test]
async fn scim_ingress_needs_a_scim_credential_and_writes_need_the_role() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::gateway::base_config();
    config.backend = userbridge::config::BackendConfig::Sqlite {
        path: dir.path().join("store.db"),
    };
    config.credentials.push(userbridge::config::Credential {
        name: "scim-reader".into(),
        dialect: "scim".into(),
        token: userbridge::redact::Secret::new("reader-token"),
        ..Default::default()
    });
    let (base, _stop) = common::gateway::serve_config(config).await;
    let c = reqwest::Client::new();
    let users = format!("{base}/scim/v2/Users");
    let user =
        json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "sam"});

    let r = c.get(&users).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer realm=\"userbridge\""
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:Error"
    );
    for token in ["wrong", "demo-vc-token", ""] {
        let r = c.get(&users).bearer_auth(token).send().await.unwrap();
        assert_eq!(r.status(), 401, "token {token:?}");
    }
    // A credential without the role reads, and may not write.
    let r = c
        .get(&users)
        .bearer_auth("reader-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .post(&users)
        .bearer_auth("reader-token")
        .json(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .post(&users)
        .bearer_auth(SCIM_TOKEN)
        .json(&user)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    // Discovery is open.
    let r = c
        .get(format!("{base}/scim/v2/ServiceProviderConfig"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
