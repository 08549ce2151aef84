//! Reading a mapping file: TOML parsed with places kept, each section and each array entry
//! deserialised on its own so that one mistake does not hide the next, then compiled.

use std::collections::BTreeMap;
use std::path::Path;

use toml::Spanned;

use super::Mapping;
use super::compile::{Compiler, Spans};
use super::spec::MappingSpec;
use crate::diagnostic::{Diagnostic, de, parse_table};

/// Loads and compiles the mapping file at `file`, with config's variable overrides.
pub fn load_file(file: &Path, vars: &BTreeMap<String, String>) -> Result<Mapping, Vec<Diagnostic>> {
    let src = std::fs::read_to_string(file)
        .map_err(|e| vec![Diagnostic::file(file, format!("cannot read: {e}"))])?;
    load_str(file, &src, vars)
}

/// Loads and compiles mapping text; `file` names it in diagnostics.
pub fn load_str(
    file: &Path,
    src: &str,
    vars: &BTreeMap<String, String>,
) -> Result<Mapping, Vec<Diagnostic>> {
    let mut c = Compiler {
        file,
        src,
        diags: Vec::new(),
        in_view: false,
    };
    let spec = parse(&mut c);
    let Some((spec, spans)) = spec else {
        return Err(c.diags);
    };
    match c.mapping(spec, &spans, vars) {
        Some(m) if c.diags.is_empty() => Ok(m),
        _ => Err(c.diags),
    }
}

const KEYS: [&str; 12] = [
    "dialect",
    "title",
    "vars",
    "auth",
    "routes",
    "views",
    "unknown_members",
    "fields",
    "preconditions",
    "success",
    "errors",
    "tests",
];

fn parse(c: &mut Compiler<'_>) -> Option<(MappingSpec, Spans)> {
    use super::spec::*;
    let (file, src) = (c.file, c.src);
    let table = parse_table(file, src, &mut c.diags)?;
    let mut spans = Spans::default();
    let mut spec = MappingSpec {
        dialect: Spanned::new(0..0, String::new()),
        title: None,
        vars: BTreeMap::new(),
        auth: AuthSpec {
            headers: Vec::new(),
            challenge: None,
            roles: BTreeMap::new(),
        },
        routes: Vec::new(),
        views: BTreeMap::new(),
        unknown_members: UnknownPolicy::Ignore,
        fields: Vec::new(),
        preconditions: Vec::new(),
        tests: Vec::new(),
        success: SuccessSpec {
            status: 200,
            body: BodySpec::Empty,
            include_unset: false,
        },
        errors: ErrorsSpec {
            body: serde_json::Value::Null,
            content_type: "application/json".into(),
            headers: BTreeMap::new(),
            vars: serde_json::Map::new(),
            outcomes: BTreeMap::new(),
        },
    };
    let mut seen = Vec::new();
    // Each section, and each entry of the arrays, is read on its own: an entry that fails is
    // reported and left out, and the rest is still compiled so that its mistakes show too.
    for (key, value) in table.get_ref().iter() {
        let k: &str = key.get_ref();
        let span = value.span();
        let d = &mut c.diags;
        match k {
            "dialect" => {
                if let Some(v) = de::<Spanned<String>>(file, src, value, d) {
                    spec.dialect = v;
                }
            }
            "title" => spec.title = de(file, src, value, d),
            "vars" => spec.vars = de(file, src, value, d).unwrap_or_default(),
            "unknown_members" => spec.unknown_members = de(file, src, value, d).unwrap_or_default(),
            "views" => {
                let Some(views) = value.get_ref().as_table() else {
                    c.err(span, "`views` must be a table of views (`[views.NAME]`)");
                    continue;
                };
                for (name, v) in views.iter() {
                    if let Some(view) = de(file, src, v, d) {
                        spans.views.insert(name.get_ref().to_string(), v.span());
                        spec.views.insert(name.get_ref().to_string(), view);
                    }
                }
            }
            "auth" => {
                spans.auth = span;
                if let Some(a) = de(file, src, value, d) {
                    spec.auth = a;
                }
            }
            "success" => {
                spans.success = span;
                if let Some(a) = de(file, src, value, d) {
                    spec.success = a;
                }
            }
            "errors" => {
                spans.errors = span;
                if let Some(a) = de(file, src, value, d) {
                    spec.errors = a;
                }
            }
            "tests" => {
                let Some(items) = value.get_ref().as_array() else {
                    c.err(span, "`tests` must be an array of tables (`[[tests]]`)");
                    continue;
                };
                for item in items.iter() {
                    if let Some(t) = de(file, src, item, d) {
                        spec.tests.push(t);
                    }
                }
            }
            "routes" | "fields" | "preconditions" => {
                let Some(items) = value.get_ref().as_array() else {
                    c.err(
                        span,
                        format!("`{k}` must be an array of tables (`[[{k}]]`)"),
                    );
                    continue;
                };
                for item in items.iter() {
                    match k {
                        "routes" => {
                            if let Some(r) = de(file, src, item, d) {
                                spec.routes.push(r);
                                spans.routes.push(item.span());
                            }
                        }
                        "fields" => {
                            if let Some(r) = de(file, src, item, d) {
                                spec.fields.push(r);
                                spans.fields.push(item.span());
                            }
                        }
                        _ => {
                            if let Some(r) = de(file, src, item, d) {
                                spec.preconditions.push(r);
                                spans.preconditions.push(item.span());
                            }
                        }
                    }
                }
            }
            _ => {
                c.err(
                    key.span(),
                    format!("unknown key `{k}`; expected one of {}", KEYS.join(", ")),
                );
                continue;
            }
        }
        seen.push(k.to_owned());
    }
    for required in ["dialect", "auth", "routes", "fields", "success", "errors"] {
        if !seen.iter().any(|k| k == required) {
            c.diags.push(Diagnostic::at(
                file,
                src,
                Some(0..0),
                format!("missing key `{required}`"),
            ));
        }
    }
    Some((spec, spans))
}
