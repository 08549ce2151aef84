//! Golden tests driven by data: every `tests/golden/<dialect>/*.json` case holds a request
//! (or a canonical user to render) and the exact expected output. A new case needs no
//! recompile. Run with `UPDATE_GOLDEN=1` to (re)write the `expect` members, then review
//! the diff.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the line that failed

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use userbridge::canonical::UserDoc;
use userbridge::exchange::{DryRun, Offline, dry_run};
use userbridge::mapping::render::Answered;
use userbridge::mapping::{MappingSet, RouteKind};
use userbridge::rejection::Outcome;

fn mappings() -> MappingSet {
    MappingSet::load_dir(Path::new("mappings"), None, &Default::default())
        .expect("shipped mappings load")
}

fn normalise(mut v: Value) -> Value {
    if let Some(t) = v.get_mut("timestamp") {
        *t = json!("<timestamp>");
    }
    v
}

fn run_case(set: &MappingSet, case: &Value) -> Value {
    let dialect = case["dialect"].as_str().unwrap_or_default();
    if let Some(render) = case.get("render") {
        let m = set.get(dialect).expect("dialect");
        // One stored user, or (an array) a list route's page.
        let doc = |v: &Value| UserDoc(v.as_object().cloned().unwrap_or_default());
        let list: Vec<UserDoc> = render
            .as_array()
            .map_or_else(Vec::new, |a| a.iter().map(doc).collect());
        let user = doc(render);
        // The answer of the route the case names, else of the dialect's update route.
        let route = case["route"]
            .as_str()
            .and_then(|n| m.routes.iter().position(|r| &*r.name == n))
            .or_else(|| m.routes.iter().position(|r| r.kind == RouteKind::Update))
            .expect("route");
        let answered = if render.is_array() {
            Answered::Many(&list, list.len())
        } else {
            Answered::One(&user)
        };
        let r = m.route_response(route, answered, "");
        let body: Value = if r.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&r.body).unwrap()
        };
        return json!({"status": r.status, "content_type": r.content_type.as_deref(), "body": body});
    }
    let req = &case["request"];
    let method = http::Method::from_bytes(req["method"].as_str().unwrap().as_bytes()).unwrap();
    let path = req["path"].as_str().unwrap();
    let mut headers = http::HeaderMap::new();
    if let Some(h) = req.get("headers").and_then(Value::as_object) {
        for (k, v) in h {
            headers.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.as_str().unwrap().parse().unwrap(),
            );
        }
    }
    let body: Vec<u8> = match &req["raw_body"] {
        Value::String(s) => s.as_bytes().to_vec(),
        _ => serde_json::to_vec(&req["body"]).unwrap(),
    };
    let stored = case
        .get("stored")
        .map(|s| UserDoc(s.as_object().cloned().unwrap_or_default()));
    let req = Offline {
        method: &method,
        path,
        headers: &headers,
        body: &body,
        request_id: "req-1",
    };
    // The gateway's own exchange, short of credentials and backend.
    match dry_run(set, &limits(), req, stored.as_ref()) {
        DryRun::NoRoute => json!({"route": "not found"}),
        DryRun::Refused { rejection, answer } if rejection.outcome == Outcome::MethodNotAllowed => {
            let allow = answer
                .headers
                .iter()
                .find(|(n, _)| n == http::header::ALLOW)
                .map(|(_, v)| v.split(", ").map(str::to_owned).collect::<Vec<_>>())
                .unwrap_or_default();
            json!({"route": "method not allowed", "allow": allow})
        }
        DryRun::Refused { rejection, answer } => {
            let body: Value = serde_json::from_slice(&answer.body).unwrap();
            json!({"status": answer.status, "field": rejection.field, "rule": rejection.rule, "body": normalise(body)})
        }
        DryRun::Read { exchange, lookup } => {
            json!({"read": exchange.kind().as_str(), "route": exchange.route_name(),
                   "target": lookup.target, "text": lookup.text,
                   "offset": lookup.offset, "limit": lookup.limit})
        }
        DryRun::Translated { translation, .. } => {
            let notes: Vec<String> = translation.notes.iter().map(ToString::to_string).collect();
            json!({"canonical": translation.op.to_exposed_json(), "notes": notes})
        }
    }
}

/// The shipped config's limits, as the gateway applies them.
fn limits() -> userbridge::config::Limits {
    let (cfg, _) = userbridge::config::Config::load(
        Some(Path::new("config/userbridge.toml")),
        &Default::default(),
    )
    .expect("the shipped config loads");
    cfg.limits
}

fn cases() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir("tests/golden").unwrap() {
        let dir = dir.unwrap().path();
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|e| e == "json") {
                out.push(f);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn golden_cases_match_their_expected_output() {
    let set = mappings();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    let files = cases();
    assert!(
        files.len() >= 60,
        "expected the golden corpus, found {} cases",
        files.len()
    );
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let mut case: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let dialect = f
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        case["dialect"] = json!(dialect);
        let got = run_case(&set, &case);
        if update {
            case.as_object_mut().unwrap().remove("dialect");
            case["expect"] = got;
            std::fs::write(f, serde_json::to_string_pretty(&case).unwrap() + "\n").unwrap();
        } else if case["expect"] != got {
            failures.push(format!(
                "{}\n  expected: {}\n  got:      {}",
                f.display(),
                serde_json::to_string(&case["expect"]).unwrap(),
                serde_json::to_string(&got).unwrap()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden case(s) differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
