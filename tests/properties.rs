//! Property tests: canonical → dialect → canonical keeps every attribute the dialect carries,
//! and no input, however odd, makes the engine panic.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the line that failed

use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use userbridge::canonical::UserDoc;
use userbridge::dialect::route::Params;
use userbridge::mapping::{MappingSet, RouteMatch};

fn set() -> &'static MappingSet {
    static SET: OnceLock<MappingSet> = OnceLock::new();
    SET.get_or_init(|| {
        MappingSet::load_dir(Path::new("mappings"), None, &Default::default()).unwrap()
    })
}

fn translate(
    method: &str,
    path: &str,
    body: &Value,
) -> Result<userbridge::mapping::Translation, String> {
    let method = http::Method::from_bytes(method.as_bytes()).unwrap();
    match set().route(&method, path) {
        RouteMatch::Found {
            mapping,
            route,
            params,
        } => mapping
            .translate_value(route, &params, &http::HeaderMap::new(), body)
            .map_err(|r| r.message),
        _ => Err("no route".into()),
    }
}

/// Drops `null` members (on create, null and absent mean the same) recursively.
fn no_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), no_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(no_nulls).collect()),
        other => other.clone(),
    }
}

fn text() -> impl Strategy<Value = String> {
    "[A-Za-z0-9 ._éü🔒-]{1,20}"
}
fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9._-]{1,16}"
}
fn email() -> impl Strategy<Value = String> {
    ("[a-z0-9._]{1,10}", "[a-z0-9]{1,10}\\.[a-z]{2,4}").prop_map(|(l, d)| format!("{l}@{d}"))
}

prop_compose! {
    fn vc_body()(
        username in name(), authenticator in name(), email in proptest::option::of(email()),
        first in proptest::option::of(text()), last in proptest::option::of(text()),
        notes in proptest::option::of(text()), org in proptest::option::of(name()),
        flags in proptest::array::uniform8(any::<bool>()),
        phone in proptest::option::of(("[1-9][0-9]{0,2}", "[0-9]{4,10}", proptest::option::of("[0-9]{1,10}"))),
        tz in proptest::sample::select(vec!["America/New_York", "Europe/Berlin", "UTC", "Asia/Tokyo"]),
        locale in proptest::sample::select(vec!["en", "en-US", "de-DE", "fr"]),
        roles in proptest::collection::btree_set(name(), 0..4),
        privileges in proptest::collection::btree_set(name(), 0..4),
    ) -> Value {
        let mut b = json!({
            "userKey": {"username": username, "authenticator": authenticator},
            "enabled": flags[0], "locked": flags[1], "expired": flags[2], "credentialsExpired": flags[3],
            "usingMfa": flags[4], "forcePasswordChange": flags[5], "isSsoUser": flags[6],
            "timeZone": tz, "locale": locale,
            "roles": roles.iter().map(|r| json!({"name": r, "description": format!("{r} role"), "internal": flags[7],
                "privileges": [{"name": format!("{r}.use"), "description": null}]})).collect::<Vec<_>>(),
            "privileges": privileges.iter().map(|p| json!({"name": p, "description": "d"})).collect::<Vec<_>>(),
        });
        let m = b.as_object_mut().unwrap();
        for (k, v) in [("email", email), ("firstName", first), ("lastName", last), ("notes", notes), ("orgId", org)] {
            if let Some(v) = v { m.insert(k.into(), json!(v)); }
        }
        if let Some((cc, number, ext)) = phone
            && cc.len() + number.len() <= 15
        {
            m.insert("primaryPhone".into(), json!(number));
            m.insert("primaryPhoneCountryCode".into(), json!(cc));
            if let Some(e) = ext { m.insert("primaryPhoneExtension".into(), json!(e)); }
        }
        b
    }
}

prop_compose! {
    fn cv_body()(
        full in proptest::option::of(text()), new_name in proptest::option::of(name()),
        email in proptest::option::of(email()), description in proptest::option::of(text()),
        plan in proptest::option::of((1..=i32::MAX, text())), enabled in proptest::option::of(any::<bool>()),
        upn in proptest::option::of(email()), method in proptest::option::of(name()),
    ) -> Value {
        let mut m = Map::new();
        for (k, v) in [("fullName", full), ("newName", new_name), ("email", email), ("description", description),
                       ("userPrincipalName", upn), ("authenticationMethod", method)] {
            if let Some(v) = v { m.insert(k.into(), json!(v)); }
        }
        if let Some((id, n)) = plan { m.insert("plan".into(), json!({"id": id, "name": n})); }
        if let Some(e) = enabled { m.insert("enabled".into(), json!(e)); }
        Value::Object(m)
    }
}

prop_compose! {
    fn ops_body()(
        first in proptest::option::of("[A-Za-z é🔒]{0,64}"), last in proptest::option::of("[A-Za-z ü]{0,64}"),
        email in proptest::option::of(email()), description in proptest::option::of("[a-z 🔒]{0,128}"),
        enabled in proptest::option::of(any::<bool>()),
    ) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), json!("u-1"));
        m.insert("username".into(), json!("user_1"));
        for (k, v) in [("firstName", first), ("lastName", last), ("email", email), ("description", description)] {
            if let Some(v) = v { m.insert(k.into(), json!(v)); }
        }
        if let Some(e) = enabled { m.insert("enabled".into(), json!(e)); }
        Value::Object(m)
    }
}

/// canonical → dialect body → canonical: the user attributes must come back unchanged.
fn round_trip(
    dialect: &str,
    method: &str,
    path: &str,
    body: &Value,
    fix: impl Fn(&mut Map<String, Value>),
) {
    let first = translate(method, path, body)
        .unwrap_or_else(|e| panic!("valid body refused: {e}\n{body:#}"));
    let mapping = set().get(dialect).unwrap();
    let rendered = mapping.render_user(&first.op.user);
    let mut again = rendered.as_object().unwrap().clone();
    fix(&mut again);
    let second = translate(method, path, &Value::Object(again))
        .unwrap_or_else(|e| panic!("rendered body refused: {e}\n{rendered:#}"));
    let strip_secrets = |u: &UserDoc| no_nulls(&serde_json::to_value(u).unwrap());
    assert_eq!(
        strip_secrets(&second.op.user),
        strip_secrets(&first.op.user),
        "rendered: {rendered:#}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn vc_round_trip_keeps_every_attribute(body in vc_body()) {
        round_trip("vc-user-service", "PUT", "/user-service/v1/user", &body, |_| {});
    }

    #[test]
    fn commvault_round_trip_keeps_every_attribute(body in cv_body()) {
        round_trip("commvault-v4", "PUT", "/webconsole/api/V4/user/42", &body, |_| {});
    }

    #[test]
    fn opscenter_round_trip_keeps_every_attribute(body in ops_body()) {
        round_trip("opscenter", "PUT", "/portal/security/v1/users/u-1", &body, |m| {
            m.insert("id".into(), json!("u-1"));
            m.insert("username".into(), json!("user_1"));
        });
    }

    #[test]
    fn no_json_value_makes_any_route_panic(v in arb_json(), which in 0usize..4) {
        let (method, path) = [
            ("PUT", "/user-service/v1/user"), ("POST", "/user-service/v1/user"),
            ("PUT", "/webconsole/api/V4/user/42"), ("PUT", "/portal/security/v1/users/u-1"),
        ][which];
        let _ = translate(method, path, &v);
        // Objects with the dialects' own member names, holding arbitrary values.
        let names = ["userKey", "username", "authenticator", "primaryPhone", "primaryPhoneCountryCode",
            "primaryPhoneExtension", "roles", "privileges", "userGroups", "userGroupOperation", "plan",
            "newPassword", "validationPassword", "id", "email", "locale", "timeZone", "enabled"];
        let mut m = Map::new();
        for (i, n) in names.iter().enumerate() {
            if i % 3 == which % 3 { m.insert((*n).into(), v.clone()); }
        }
        let _ = translate(method, path, &Value::Object(m));
    }

    #[test]
    fn no_bytes_make_the_parser_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mapping = set().get("commvault-v4").unwrap();
        let params: Params = vec![("version".into(), "V4".into()), ("userId".into(), "42".into())];
        let _ = mapping.translate(0, &params, &http::HeaderMap::new(), &bytes, 32);
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        ".{0,12}".prop_map(Value::String),
        "[A-Za-z0-9+/=]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map("(id|name|username|value|[a-z]{1,6})", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The pattern the committed OpenAPI document of `dialect` gives member `member` of the
/// request body of `method` on `path` (as the document writes the path).
fn openapi_pattern(dialect: &str, path: &str, method: &str, member: &str) -> String {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("schemas/openapi/{dialect}.json")).unwrap(),
    )
    .unwrap();
    doc["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]["properties"]
        [member]["pattern"]
        .as_str()
        .unwrap_or_else(|| panic!("{dialect} {method} {path}: no pattern for {member}"))
        .to_owned()
}

fn from_openapi(dialect: &str, path: &str, method: &str, member: &str) -> BoxedStrategy<String> {
    let p = openapi_pattern(dialect, path, method, member);
    // Anchored at both ends: the generator makes whole strings and refuses anchors.
    let inner = p
        .strip_prefix('^')
        .and_then(|p| p.strip_suffix('$'))
        .unwrap();
    proptest::string::string_regex(inner).unwrap().boxed()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// What the OpenAPI documents promise for members behind transforms (strip, trim_start, a
    /// case-insensitive map) the gateway accepts: clients and schemathesis generating from
    /// them are not refused.
    #[test]
    fn values_matching_openapi_patterns_behind_transforms_are_accepted(
        phone in from_openapi("vc-user-service", "/user-service/v1/user", "put", "primaryPhone"),
        cc in from_openapi("vc-user-service", "/user-service/v1/user", "put", "primaryPhoneCountryCode"),
        op in from_openapi("commvault-v4", "/webconsole/api/{version}/user/{userId}", "put", "userGroupOperation"),
    ) {
        // The one limit a JSON Schema cannot state (the document says it in words): both
        // together, digits only, at most 15 (E.164).
        let digits = |s: &str| s.chars().filter(char::is_ascii_digit).count();
        prop_assume!(digits(&phone) + digits(&cc) <= 15);
        let vc = json!({
            "userKey": {"username": "ann", "authenticator": "LOCAL"},
            "password": "S3cret!x1",
            "primaryPhone": phone,
            "primaryPhoneCountryCode": cc,
        });
        if let Err(e) = translate("PUT", "/user-service/v1/user", &vc) {
            prop_assert!(false, "{vc}: {e}");
        }
        let cv = json!({"userGroupOperation": op, "userGroups": [{"id": 3}]});
        if let Err(e) = translate("PUT", "/webconsole/api/V4/user/42", &cv) {
            prop_assert!(false, "{cv}: {e}");
        }
    }
}
