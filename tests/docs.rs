//! Every example in `docs/mapping-language.md` is exercised: `toml` blocks compile as mappings,
//! `toml invalid` blocks fail with the documented diagnostics, and `json request` blocks go
//! through the mapping above them with the documented canonical operation or error answer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use common::contains;
use common::markdown::blocks;
use serde_json::Value;
use userbridge::canonical::UserDoc;
use userbridge::mapping::load::load_str;
use userbridge::mapping::render::{Answered, ErrorContext};
use userbridge::mapping::{MappingSet, RouteMatch};

/// Completes a fragment into a whole mapping file; returns it and the number of lines put
/// before the fragment.
fn assemble(fragment: &str) -> (String, usize) {
    let has = |header: &str| fragment.lines().any(|l| l.trim() == header);
    let mut s = String::new();
    let mut before = 0;
    if !fragment.lines().any(|l| l.starts_with("dialect")) {
        s.push_str("dialect = \"example\"\n");
        before = 1;
    }
    s.push_str(fragment);
    if !has("[auth]") {
        s.push_str("\n[auth]\nheaders = [{ name = \"Authorization\", scheme = \"Bearer\" }]\n");
    }
    let mut fields = has("[[fields]]");
    if !has("[[routes]]") {
        s.push_str(concat!(
            "\n[[routes]]\nmethod = \"PUT\"\npaths = [\"/example/users\"]\noperation = \"create\"\n",
            "\n[[routes]]\nmethod = \"POST\"\npaths = [\"/example/users/{id}\"]\n",
            "operation = \"update\"\ntarget = [\"id\"]\n",
            "\n[[fields]]\nsource = \"param:id\"\nidentifies = \"id\"\ntype = \"string\"\n",
        ));
        fields = true;
    }
    if !fields {
        s.push_str("\n[[fields]]\nsource = \"$.displayName\"\nto = \"displayName\"\n");
    }
    if !has("[success]") {
        s.push_str("\n[success]\nbody = \"user\"\n");
    }
    if !has("[errors]") {
        s.push_str(
            "\n[errors]\nbody = { error = \"{message}\", field = \"{field?}\", status = \"{status}\" }\n",
        );
    }
    (s, before)
}

#[test]
fn every_mapping_language_example_holds() {
    let doc = std::fs::read_to_string("docs/mapping-language.md").unwrap();
    let blocks = blocks(&doc);
    let file = Path::new("example.toml");
    let vars = BTreeMap::new();
    let mut set: Option<MappingSet> = None;
    let (mut compiled, mut invalid, mut requests, mut tests) = (0, 0, 0, 0);
    let mut i = 0;
    while i < blocks.len() {
        let b = &blocks[i];
        let at = format!("docs/mapping-language.md:{}", b.line);
        let mut words = b.info.split_whitespace();
        match (words.next(), words.next()) {
            (Some("toml"), None) => {
                let (src, _) = assemble(&b.text);
                let m = load_str(file, &src, &vars).unwrap_or_else(|d| {
                    let all: Vec<String> = d.iter().map(ToString::to_string).collect();
                    panic!("{at}: example does not compile:\n{}", all.join("\n"))
                });
                let one = MappingSet {
                    mappings: vec![Arc::new(m)],
                };
                // An example's own [[tests]] pass, as `userbridge test` runs them.
                let limits = userbridge::config::Limits::default();
                for r in userbridge::authoring::test::run(&one, &limits, &[]) {
                    assert!(
                        r.passed(),
                        "{at}: the example's test `{}` fails:\n{}",
                        r.name,
                        r.failures.join("\n")
                    );
                    tests += 1;
                }
                set = Some(one);
                compiled += 1;
            }
            (Some("toml"), Some("invalid")) => {
                let (src, before) = assemble(&b.text);
                let diags = load_str(file, &src, &vars)
                    .err()
                    .unwrap_or_else(|| panic!("{at}: invalid example compiles"));
                let expect = blocks
                    .get(i + 1)
                    .filter(|n| n.info == "text")
                    .unwrap_or_else(|| panic!("{at}: no text block with the diagnostics"));
                for want in expect.text.lines().filter(|l| !l.trim().is_empty()) {
                    let rest = want.strip_prefix("example.toml:").unwrap();
                    let mut parts = rest.splitn(3, ':');
                    let line: usize = parts.next().unwrap().parse().unwrap();
                    let col: usize = parts.next().unwrap().parse().unwrap();
                    let msg = parts.next().unwrap().trim();
                    assert!(
                        diags.iter().any(|d| d.line == line + before
                            && d.col == col
                            && d.message.starts_with(msg)),
                        "{at}: expected `{want}`, got:\n{}",
                        diags
                            .iter()
                            .map(|d| format!("{}:{}: {}", d.line - before, d.col, d.message))
                            .collect::<Vec<_>>()
                            .join("\n")
                    );
                }
                invalid += 1;
                i += 1;
            }
            (Some("json"), Some("stored")) => {
                // A stored user (or a list of them) rendered as the named route answers it.
                let name = words.next().unwrap();
                let set = set.as_ref().expect("a stored user before any mapping");
                let mapping = &set.mappings[0];
                let route = mapping
                    .routes
                    .iter()
                    .position(|r| &*r.name == name)
                    .unwrap_or_else(|| panic!("{at}: no route `{name}`"));
                let stored: Value = serde_json::from_str(&b.text).unwrap();
                let doc = |v: &Value| UserDoc(v.as_object().cloned().unwrap());
                let list: Vec<UserDoc> = stored
                    .as_array()
                    .map_or_else(Vec::new, |a| a.iter().map(doc).collect());
                let one = stored.as_object().cloned().map(UserDoc).unwrap_or_default();
                let users = if stored.is_array() {
                    Answered::Many(&list, list.len())
                } else {
                    Answered::One(&one)
                };
                let r = mapping.route_response(route, users, "doc");
                let got: Value = serde_json::from_slice(&r.body).unwrap();
                let expect = blocks.get(i + 1).filter(|n| n.info == "json answer");
                let want: Value =
                    serde_json::from_str(&expect.expect("a json answer block").text).unwrap();
                assert!(
                    contains(&got, &want),
                    "{at}: answer\n{got:#}\ndoes not contain\n{want:#}"
                );
                assert!(
                    !got.to_string().contains("never shown"),
                    "{at}: a secret was rendered: {got}"
                );
                requests += 1;
                i += 1;
            }
            (Some("json"), Some("request")) => {
                let method: http::Method = words.next().unwrap().parse().unwrap();
                let path = words.next().unwrap();
                let set = set.as_ref().expect("a request before any mapping");
                let RouteMatch::Found {
                    mapping,
                    route,
                    params,
                } = set.route(&method, path)
                else {
                    panic!("{at}: no route for {method} {path}")
                };
                let expect = blocks.get(i + 1).expect("an expectation after a request");
                let want: Value = serde_json::from_str(&expect.text)
                    .unwrap_or_else(|e| panic!("{at}: expectation is not JSON: {e}"));
                let result = mapping.translate(
                    route,
                    &params,
                    &http::HeaderMap::new(),
                    b.text.as_bytes(),
                    32,
                );
                let mut kind = expect.info.split_whitespace().skip(1);
                match (kind.next(), result) {
                    (Some("canonical"), Ok(t)) => {
                        let got = serde_json::to_value(&t.op).unwrap();
                        assert!(
                            contains(&got, &want),
                            "{at}: canonical\n{got:#}\ndoes not contain\n{want:#}"
                        );
                    }
                    (Some("response"), Err(rej)) => {
                        let status: u16 = kind.next().unwrap().parse().unwrap();
                        let ctx = ErrorContext {
                            path,
                            request_id: "doc",
                            ..Default::default()
                        };
                        let r = mapping.error_response(&rej, &ctx);
                        let got: Value = serde_json::from_slice(&r.body).unwrap();
                        assert_eq!(r.status, status, "{at}: status");
                        assert!(
                            contains(&got, &want),
                            "{at}: error body\n{got:#}\ndoes not contain\n{want:#}"
                        );
                    }
                    (k, Ok(t)) => panic!("{at}: expected {k:?}, translated to {:?}", t.op),
                    (k, Err(rej)) => panic!("{at}: expected {k:?}, rejected: {}", rej.message),
                }
                requests += 1;
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    // The document's examples are all there (a broken block parser would find none).
    assert!(
        compiled >= 15 && invalid >= 5 && requests >= 12 && tests >= 3,
        "{compiled} {invalid} {requests} {tests}"
    );
}

/// Every key of the config schema, as `a.b` paths (one level into tables, and into each
/// backend kind).
fn schema_keys(schema: &Value, defs: &Value, prefix: &str, out: &mut Vec<String>) {
    let resolve = |v: &Value| -> Value {
        let mut v = v.clone();
        // `$ref`, possibly under `anyOf`/`allOf` (Option<T>, a documented struct).
        for _ in 0..3 {
            let r = v
                .get("$ref")
                .or_else(|| {
                    v.get("allOf")
                        .and_then(|a| a.get(0))
                        .and_then(|a| a.get("$ref"))
                })
                .and_then(Value::as_str)
                .map(str::to_owned);
            match r {
                Some(r) => v = defs[r.trim_start_matches("#/$defs/")].clone(),
                None => break,
            }
        }
        v
    };
    let schema = resolve(schema);
    if let Some(variants) = schema.get("oneOf").and_then(Value::as_array) {
        for v in variants {
            schema_keys(v, defs, prefix, out);
        }
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            out.push(path.clone());
            let inner = resolve(v);
            let inner = inner.get("items").map(resolve).unwrap_or(inner);
            if inner.get("properties").is_some() || inner.get("oneOf").is_some() {
                schema_keys(&inner, defs, &path, out);
            }
        }
    }
}

#[test]
fn config_doc_names_every_key_and_its_examples_load() {
    let doc = std::fs::read_to_string("docs/config.md").unwrap();
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string("schemas/config.schema.json").unwrap())
            .unwrap();
    let mut keys = Vec::new();
    schema_keys(&schema, &schema["$defs"], "", &mut keys);
    assert!(keys.len() > 25, "only {} keys found: {keys:?}", keys.len());
    let mut missing = Vec::new();
    for k in &keys {
        let leaf = k.rsplit('.').next().unwrap();
        let documented = doc.contains(&format!("| `{leaf}` |"))
            || doc.contains(&format!("`[{k}]`"))
            || doc.contains(&format!("`[[{k}]]`"))
            || doc.contains(&format!("`[{k}.NAME]`"));
        if !documented {
            missing.push(k.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "docs/config.md does not describe: {missing:?}"
    );

    let examples: Vec<_> = blocks(&doc)
        .into_iter()
        .filter(|b| b.info == "toml")
        .collect();
    assert!(examples.len() >= 2);
    let dir = tempfile::tempdir().unwrap();
    for b in examples {
        let p = dir.path().join(format!("example-{}.toml", b.line));
        std::fs::write(&p, &b.text).unwrap();
        if let Err(d) = userbridge::load::load_with(Some(&p), &userbridge::config::Flags::default())
        {
            panic!("docs/config.md:{}: example does not load: {d:?}", b.line);
        }
    }
}
