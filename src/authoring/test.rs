//! `[[tests]]` in mapping files, run through the gateway's own exchange ([`dry_run`]): no
//! server, no credential check, no backend. Each test yields an **outcome** (a JSON value, the
//! same shape the golden cases use) that its `expect` table is compared with:
//!
//! - a translated write: `{"canonical": <the operation, secrets in clear>, "notes": [...]}`;
//! - a refusal: `{"status", "field", "rule", "body"}` (the dialect's error answer);
//! - a read: `{"read", "route", "target", "text", "offset", "limit"}`;
//! - a rendered user (`render`): `{"status", "content_type", "body"}`;
//! - no route: `{"route": "not found"}`; a wrong method: `{"route": "method not allowed", "allow"}`.

use std::path::Path;

use serde_json::{Map, Value, json};

use crate::canonical::UserDoc;
use crate::config::Limits;
use crate::diagnostic::Diagnostic;
use crate::exchange::{DryRun, Offline, dry_run};
use crate::mapping::render::Answered;
use crate::mapping::spec::{TestRequestSpec, TestSpec};
use crate::mapping::{FileTest, Mapping, MappingSet, RouteKind};
use crate::rejection::Outcome;

/// The request id error bodies carry in a test.
pub const REQUEST_ID: &str = "req-1";

/// What one test did.
#[derive(Debug)]
pub struct Report {
    /// The dialect whose file holds the test.
    pub dialect: String,
    /// The test's name.
    pub name: String,
    /// Where it is written.
    pub place: Diagnostic,
    /// The outcome it produced.
    pub outcome: Value,
    /// Each expectation that did not hold (empty: passed).
    pub failures: Vec<String>,
}

impl Report {
    /// Whether every expectation held.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// A failed test as `userbridge test` prints it: `file:line:col: test `NAME` failed` with
    /// the line and a caret, then each expectation that did not hold, indented.
    pub fn failure(&self) -> String {
        let mut place = self.place.clone();
        place.message = format!("test `{}` failed", self.name);
        let mut s = place.to_string();
        for f in &self.failures {
            s.push_str("\n  ");
            s.push_str(&f.replace('\n', "\n  "));
        }
        s
    }
}

/// Runs every test of `mappings` (all of `set` when empty) against `set`.
pub fn run(set: &MappingSet, limits: &Limits, mappings: &[&Mapping]) -> Vec<Report> {
    let all: Vec<&Mapping> = if mappings.is_empty() {
        set.mappings.iter().map(|m| &**m).collect()
    } else {
        mappings.to_vec()
    };
    let mut out = Vec::new();
    for m in all {
        for t in &m.tests {
            out.push(run_one(set, limits, m, t));
        }
    }
    out
}

fn run_one(set: &MappingSet, limits: &Limits, m: &Mapping, t: &FileTest) -> Report {
    let base = m.file.parent().unwrap_or_else(|| Path::new("."));
    let (outcome, failures) = match outcome(set, limits, m, &t.spec, base) {
        Ok(o) => {
            let f = compare(&o, &t.spec.expect);
            (o, f)
        }
        Err(e) => (Value::Null, vec![e]),
    };
    Report {
        dialect: m.dialect.to_string(),
        name: t.spec.name.get_ref().clone(),
        place: t.place.clone(),
        outcome,
        failures,
    }
}

/// The outcome of `t`, a test of `m`: the translation, refusal, read or rendered answer.
/// `base` is where a `body_file` is looked for. An error is a test that cannot run (an
/// unreadable body file, a bad header, an unknown route to render).
pub fn outcome(
    set: &MappingSet,
    limits: &Limits,
    m: &Mapping,
    t: &TestSpec,
    base: &Path,
) -> Result<Value, String> {
    if let Some(render) = &t.render {
        return rendered(m, t.route.as_deref(), render);
    }
    let Some(req) = &t.request else {
        return Err("a test needs a `request` or a `render`".into());
    };
    let req = TestRequest::of(req, base)?;
    let stored = t.stored.clone().map(UserDoc);
    let offline = req.offline();
    Ok(outcome_of(
        dry_run(set, limits, offline, stored.as_ref()),
        true,
    ))
}

/// A test's request, as the exchange takes it.
pub struct TestRequest {
    method: http::Method,
    path: String,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl TestRequest {
    /// The request of `req`; `base` is where a `body_file` is looked for. The error says what
    /// cannot be sent (an unreadable body file, a bad header or method).
    pub fn of(req: &TestRequestSpec, base: &Path) -> Result<Self, String> {
        let method = http::Method::from_bytes(req.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("`{}` is not an HTTP method", req.method))?;
        let mut headers = http::HeaderMap::new();
        for (k, v) in &req.headers {
            let name = http::HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("`{k}` is not a header name"))?;
            let value = http::HeaderValue::from_str(v)
                .map_err(|_| format!("the value of header `{k}` is not a header value"))?;
            headers.append(name, value);
        }
        let body: Vec<u8> = if let Some(raw) = &req.raw_body {
            raw.as_bytes().to_vec()
        } else if let Some(f) = &req.body_file {
            let p = base.join(f);
            std::fs::read(&p).map_err(|e| format!("body_file {}: {e}", p.display()))?
        } else if let Some(b) = &req.body {
            serde_json::to_vec(b).map_err(|e| e.to_string())?
        } else {
            Vec::new()
        };
        Ok(TestRequest {
            method,
            path: req.path.clone(),
            headers,
            body,
        })
    }

    /// The request as the dry run takes it.
    pub fn offline(&self) -> Offline<'_> {
        Offline {
            method: &self.method,
            path: &self.path,
            headers: &self.headers,
            body: &self.body,
            request_id: REQUEST_ID,
        }
    }
}

/// A dry run's result as an outcome value (the shapes in this module's doc); secrets in clear
/// when `expose`, else `***`.
pub fn outcome_of(run: DryRun, expose: bool) -> Value {
    match run {
        DryRun::NoRoute => json!({"route": "not found"}),
        DryRun::Refused { rejection, answer } if rejection.outcome == Outcome::MethodNotAllowed => {
            let allow: Vec<String> = answer
                .headers
                .iter()
                .find(|(n, _)| n == http::header::ALLOW)
                .map(|(_, v)| v.split(", ").map(str::to_owned).collect())
                .unwrap_or_default();
            json!({"route": "method not allowed", "allow": allow})
        }
        DryRun::Refused { rejection, answer } => {
            json!({"status": answer.status, "field": rejection.field, "rule": rejection.rule,
                   "body": normalise(body_json(&answer.body))})
        }
        DryRun::Read { exchange, lookup } => {
            json!({"read": exchange.kind().as_str(), "route": exchange.route_name(),
                   "target": lookup.target, "text": lookup.text,
                   "offset": lookup.offset, "limit": lookup.limit})
        }
        DryRun::Translated { translation, .. } => {
            let notes: Vec<String> = translation.notes.iter().map(ToString::to_string).collect();
            let op = if expose {
                translation.op.to_exposed_json()
            } else {
                serde_json::to_value(&translation.op).unwrap_or_default()
            };
            json!({"canonical": op, "notes": notes})
        }
    }
}

/// `render` (one stored user, or an array: a list's page) as the answer of `route` (default:
/// the dialect's update route).
fn rendered(m: &Mapping, route: Option<&str>, render: &Value) -> Result<Value, String> {
    let doc = |v: &Value| UserDoc(v.as_object().cloned().unwrap_or_default());
    let list: Vec<UserDoc> = render
        .as_array()
        .map_or_else(Vec::new, |a| a.iter().map(doc).collect());
    let user = doc(render);
    let index = match route {
        Some(n) => m
            .routes
            .iter()
            .position(|r| &*r.name == n)
            .ok_or_else(|| format!("the dialect has no route named `{n}`"))?,
        None => m
            .routes
            .iter()
            .position(|r| r.kind == RouteKind::Update)
            .ok_or("the dialect has no update route: name the `route` to render")?,
    };
    let answered = if render.is_array() {
        Answered::Many(&list, list.len())
    } else {
        Answered::One(&user)
    };
    let r = m.route_response(index, answered, REQUEST_ID);
    Ok(
        json!({"status": r.status, "content_type": r.content_type.as_deref(),
              "body": body_json(&r.body)}),
    )
}

/// An answer body as JSON: `null` when empty, a string when it is not JSON.
fn body_json(body: &[u8]) -> Value {
    if body.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// Error bodies carry the time of the answer; a test compares everything else.
fn normalise(mut v: Value) -> Value {
    if let Some(t) = v.get_mut("timestamp") {
        *t = json!("<timestamp>");
    }
    v
}

/// Each member of `expect` that `outcome` does not meet, described.
pub fn compare(outcome: &Value, expect: &Map<String, Value>) -> Vec<String> {
    let mut out = Vec::new();
    for (key, want) in expect {
        if key == "body_contains" {
            let Some(needle) = want.as_str() else {
                out.push("`body_contains` must be a string".into());
                continue;
            };
            let body = match outcome.get("body") {
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => String::new(),
            };
            if !body.contains(needle) {
                out.push(format!(
                    "body_contains: the body does not contain {}\n  body: {}",
                    json!(needle),
                    outcome.get("body").unwrap_or(&Value::Null)
                ));
            }
            continue;
        }
        let got = if key.starts_with('/') {
            outcome.pointer(key)
        } else {
            outcome.get(key)
        };
        match got {
            Some(g) if g == want => {}
            Some(g) if is_container(want) && is_container(g) => {
                out.push(format!("{key}: differs\n{}", diff(want, g)));
            }
            Some(g) => out.push(format!("{key}: expected {}, got {}", short(want), short(g))),
            None => out.push(format!(
                "{key}: expected {}, but the outcome has no `{key}`{}",
                short(want),
                kind_hint(outcome)
            )),
        }
    }
    out
}

fn is_container(v: &Value) -> bool {
    matches!(v, Value::Object(_) | Value::Array(_))
}

/// What kind of outcome it was, when an expected member is missing from it.
fn kind_hint(outcome: &Value) -> String {
    let kind = if outcome.get("canonical").is_some() {
        "a translation".to_owned()
    } else if outcome.get("read").is_some() {
        "a read".to_owned()
    } else if outcome.get("field").is_some() {
        format!(
            "a refusal ({} on `{}`: {})",
            outcome["status"],
            outcome["field"].as_str().unwrap_or("-"),
            outcome["rule"].as_str().unwrap_or("-")
        )
    } else if let Some(r) = outcome.get("route") {
        format!("no route ({r})")
    } else {
        "a rendered answer".to_owned()
    };
    format!(" (it was {kind})")
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 120 {
        format!("{}…", s.chars().take(120).collect::<String>())
    } else {
        s
    }
}

/// A line diff of two values, pretty-printed: `-` expected, `+` got.
fn diff(want: &Value, got: &Value) -> String {
    let w = serde_json::to_string_pretty(want).unwrap_or_default();
    let g = serde_json::to_string_pretty(&aligned(want, got)).unwrap_or_default();
    let d = similar::TextDiff::from_lines(&w, &g);
    let mut out = String::new();
    for (i, group) in d.grouped_ops(3).iter().enumerate() {
        if i > 0 {
            out.push_str("    …\n");
        }
        for op in group {
            for change in d.iter_changes(op) {
                let sign = match change.tag() {
                    similar::ChangeTag::Delete => "-",
                    similar::ChangeTag::Insert => "+",
                    similar::ChangeTag::Equal => " ",
                };
                out.push_str(&format!("  {sign} {}", change.value()));
                if !change.value().ends_with('\n') {
                    out.push('\n');
                }
            }
        }
    }
    out.trim_end().to_owned()
}

/// `got` with its objects' members in `want`'s order (then its own extras), so that a diff
/// shows what differs and not how the members happen to be ordered.
fn aligned(want: &Value, got: &Value) -> Value {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            let mut out = Map::with_capacity(g.len());
            for (k, wv) in w {
                if let Some(gv) = g.get(k) {
                    out.insert(k.clone(), aligned(wv, gv));
                }
            }
            for (k, gv) in g {
                if !w.contains_key(k) {
                    out.insert(k.clone(), gv.clone());
                }
            }
            Value::Object(out)
        }
        (Value::Array(w), Value::Array(g)) => Value::Array(
            g.iter()
                .enumerate()
                .map(|(i, gv)| w.get(i).map_or_else(|| gv.clone(), |wv| aligned(wv, gv)))
                .collect(),
        ),
        _ => got.clone(),
    }
}

/// The reports as a JUnit XML document (one suite per dialect), for CI.
pub fn junit(reports: &[Report]) -> String {
    let mut dialects: Vec<&str> = reports.iter().map(|r| r.dialect.as_str()).collect();
    dialects.dedup();
    let failed = reports.iter().filter(|r| !r.passed()).count();
    let mut x = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"userbridge test\" tests=\"{}\" failures=\"{failed}\">\n",
        reports.len()
    );
    for d in dialects {
        let mine: Vec<&Report> = reports.iter().filter(|r| r.dialect == d).collect();
        let f = mine.iter().filter(|r| !r.passed()).count();
        x.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{f}\">\n",
            xml(d),
            mine.len()
        ));
        for r in mine {
            x.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\" file=\"{}\" line=\"{}\"",
                xml(d),
                xml(&r.name),
                xml(&r.place.file.display().to_string()),
                r.place.line
            ));
            if r.passed() {
                x.push_str("/>\n");
            } else {
                x.push_str(&format!(
                    ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                    xml(r.failures[0].lines().next().unwrap_or_default()),
                    xml(&r.failures.join("\n"))
                ));
            }
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}

fn xml(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' => {}
            c => o.push(c),
        }
    }
    o
}
