//! Bad input in every dialect: oversized, malformed, deep, duplicate members, numbers out of
//! range, bad Base64, bad UTF-8, the wrong media type, too many headers. Each must get its
//! status with the dialect's JSON error body, and none may write anything.

use std::collections::BTreeMap;

use serde_json::json;

struct Case {
    name: &'static str,
    method: reqwest::Method,
    path: &'static str,
    auth: (&'static str, &'static str),
    content_type: &'static str,
    body: Vec<u8>,
    extra_headers: usize,
    want: u16,
}

/// A case with the usual media type and no extra headers.
fn case(
    name: &'static str,
    path: &'static str,
    auth: (&'static str, &'static str),
    body: Vec<u8>,
    want: u16,
) -> Case {
    Case {
        name,
        method: reqwest::Method::PUT,
        path,
        auth,
        content_type: "application/json",
        body,
        extra_headers: 0,
        want,
    }
}

fn vc(name: &'static str, body: Vec<u8>, want: u16) -> Case {
    let auth = ("Authorization", "Bearer battery-vc-token");
    case(name, "/user-service/v1/user", auth, body, want)
}

fn commvault(name: &'static str, path: &'static str, body: Vec<u8>, want: u16) -> Case {
    case(
        name,
        path,
        ("Authtoken", "QSDK battery-commvault-token"),
        body,
        want,
    )
}

fn opscenter(name: &'static str, body: Vec<u8>, want: u16) -> Case {
    let auth = ("Authorization", "Bearer battery-opscenter-token");
    case(
        name,
        "/portal/security/v1/users/mal-ops-1",
        auth,
        body,
        want,
    )
}

fn deep(levels: usize) -> String {
    format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
}

fn cases() -> Vec<Case> {
    let big = format!(
        r#"{{"userKey":{{"username":"mal-big","authenticator":"LOCAL"}},"notes":"{}"}}"#,
        "x".repeat(100 * 1024)
    );
    let mut v = vec![
        vc("vc: body over max_body_bytes", big.into_bytes(), 413),
        vc(
            "vc: truncated JSON",
            br#"{"userKey":{"username":"mal-trunc""#.to_vec(),
            400,
        ),
        vc(
            "vc: duplicate member",
            br#"{"userKey":{"username":"mal-dup","authenticator":"LOCAL"},"password":"a","password":"b"}"#
                .to_vec(),
            400,
        ),
        vc(
            "vc: nesting deeper than max_json_depth",
            format!(
                r#"{{"userKey":{{"username":"mal-deep","authenticator":"LOCAL"}},"roles":{}}}"#,
                deep(200)
            )
            .into_bytes(),
            400,
        ),
        vc(
            "vc: bad UTF-8",
            b"{\"userKey\":{\"username\":\"mal-\xff\xfe\",\"authenticator\":\"LOCAL\"}}".to_vec(),
            400,
        ),
        vc("vc: not an object", br#"["mal-array"]"#.to_vec(), 400),
        vc("vc: empty body", Vec::new(), 400),
        commvault(
            "commvault: bad Base64 password",
            "/webconsole/api/V4/user/1",
            br#"{"newPassword":"not base64!!","validationPassword":"x"}"#.to_vec(),
            400,
        ),
        commvault(
            "commvault: Base64 of bad UTF-8",
            "/webconsole/api/V4/user/1",
            json!({"newPassword": "//79", "validationPassword": "YmF0dGVyeS1hZG1pbi1wYXNzd29yZA=="})
                .to_string()
                .into_bytes(),
            400,
        ),
        commvault(
            "commvault: userId beyond int32",
            "/webconsole/api/V4/user/99999999999",
            br#"{"fullName":"mal-range"}"#.to_vec(),
            400,
        ),
        commvault(
            "commvault: number out of range in the body",
            "/webconsole/api/V4/user/1",
            br#"{"fullName":"mal-plan","plan":{"id":3000000000}}"#.to_vec(),
            400,
        ),
        commvault(
            "commvault: fractional number for an int32",
            "/webconsole/api/V4/user/1",
            br#"{"fullName":"mal-plan","plan":{"id":7.5}}"#.to_vec(),
            400,
        ),
        opscenter(
            "opscenter: field over its length limit",
            json!({"id": "mal-ops-1", "username": "mal-ops", "firstName": "x".repeat(300)})
                .to_string()
                .into_bytes(),
            400,
        ),
        opscenter(
            "opscenter: huge exponent",
            br#"{"id":"mal-ops-1","username":"mal-ops","enabled":1e999999}"#.to_vec(),
            400,
        ),
    ];
    let mut wrong_type = vc(
        "vc: text/plain body",
        br#"{"userKey":{"username":"mal-type","authenticator":"LOCAL"}}"#.to_vec(),
        415,
    );
    wrong_type.content_type = "text/plain";
    v.push(wrong_type);
    let mut headers = vc(
        "vc: too many header fields",
        br#"{"userKey":{"username":"mal-headers","authenticator":"LOCAL"}}"#.to_vec(),
        431,
    );
    headers.extra_headers = 200;
    v.push(headers);
    v
}

/// Sends every case `rounds` times; returns the answers by case and the failures.
pub async fn run(base: &str, rounds: usize) -> (BTreeMap<String, u64>, Vec<String>) {
    let client = reqwest::Client::new();
    let mut answers = BTreeMap::new();
    let mut failures = Vec::new();
    for _ in 0..rounds {
        for c in cases() {
            let mut b = client
                .request(c.method.clone(), format!("{base}{}", c.path))
                .header(c.auth.0, c.auth.1)
                .header("Content-Type", c.content_type)
                .body(c.body.clone());
            for k in 0..c.extra_headers {
                b = b.header(format!("x-extra-{k}"), "1");
            }
            match b.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let text = resp.text().await.unwrap_or_default();
                    *answers.entry(format!("{} {status}", c.name)).or_default() += 1;
                    if status != c.want {
                        failures.push(format!("{}: {status} (want {}): {text}", c.name, c.want));
                    } else if status != 431
                        && serde_json::from_str::<serde_json::Value>(&text).is_err()
                    {
                        failures.push(format!("{}: the error body is not JSON: {text}", c.name));
                    }
                }
                Err(e) => failures.push(format!("{}: no answer: {e}", c.name)),
            }
        }
    }
    failures.dedup();
    (answers, failures)
}
