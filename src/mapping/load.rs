//! Reading a mapping file: TOML parsed with places kept, each section and each array entry
//! deserialised on its own so that one mistake does not hide the next, then compiled.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::Mapping;
use super::compile::{Compiler, Spans};
use super::spec::MappingSpec;
use crate::diagnostic::Diagnostic;

/// Loads and compiles the mapping file at `file`, with config's variable overrides.
pub fn load_file(file: &Path, vars: &BTreeMap<String, String>) -> Result<Mapping, Vec<Diagnostic>> {
    let src = std::fs::read_to_string(file).map_err(|e| vec![Diagnostic::file(file, format!("cannot read: {e}"))])?;
    load_str(file, &src, vars)
}

/// Loads and compiles mapping text; `file` names it in diagnostics.
pub fn load_str(file: &Path, src: &str, vars: &BTreeMap<String, String>) -> Result<Mapping, Vec<Diagnostic>> {
    let mut c = Compiler { file, src, diags: Vec::new() };
    let spec = parse(&mut c);
    let Some((spec, spans)) = spec else { return Err(c.diags) };
    match c.mapping(spec, &spans, vars) {
        Some(m) if c.diags.is_empty() => Ok(m),
        _ => Err(c.diags),
    }
}

/// Deserialises one spanned TOML value, reporting a failure at its place.
pub(crate) fn de<T: DeserializeOwned>(
    file: &Path,
    src: &str,
    v: &Spanned<DeValue<'_>>,
    diags: &mut Vec<Diagnostic>,
) -> Option<T> {
    match T::deserialize(ValueDeserializer::from(v.clone())) {
        Ok(t) => Some(t),
        Err(e) => {
            let span = e.span().unwrap_or_else(|| v.span());
            diags.push(Diagnostic::at(file, src, Some(span), e.message().to_owned()));
            None
        }
    }
}

/// Parses a TOML document keeping places; syntax errors become diagnostics.
pub(crate) fn parse_table<'s>(file: &Path, src: &'s str, diags: &mut Vec<Diagnostic>) -> Option<Spanned<DeTable<'s>>> {
    let (table, errors) = DeTable::parse_recoverable(src);
    for e in &errors {
        diags.push(Diagnostic::at(file, src, e.span(), e.message().to_owned()));
    }
    errors.is_empty().then_some(table)
}

const ARRAYS: [&str; 3] = ["routes", "fields", "preconditions"];
const KEYS: [&str; 10] =
    ["dialect", "title", "vars", "auth", "routes", "unknown_members", "fields", "preconditions", "success", "errors"];

fn parse(c: &mut Compiler<'_>) -> Option<(MappingSpec, Spans)> {
    let (file, src) = (c.file, c.src);
    let table = parse_table(file, src, &mut c.diags)?;
    let mut spans = Spans::default();
    // Rebuild the document with each array entry checked on its own; an entry that fails is
    // reported and left out, so later entries are still checked.
    let mut whole = toml::Table::new();
    let mut ok = true;
    for (key, value) in table.get_ref().iter() {
        let k: &str = key.get_ref();
        if !KEYS.contains(&k) {
            c.err(key.span(), format!("unknown key `{k}`; expected one of {}", KEYS.join(", ")));
            ok = false;
            continue;
        }
        let span = value.span();
        match k {
            "auth" => spans.auth = span.clone(),
            "success" => spans.success = span.clone(),
            "errors" => spans.errors = span.clone(),
            _ => {}
        }
        if ARRAYS.contains(&k) {
            let Some(items) = value.get_ref().as_array() else {
                c.err(span, format!("`{k}` must be an array of tables (`[[{k}]]`)"));
                ok = false;
                continue;
            };
            let mut good = Vec::new();
            for item in items.iter() {
                let check = match k {
                    "routes" => de::<super::spec::RouteSpec>(file, src, item, &mut c.diags).is_some(),
                    "fields" => de::<super::spec::FieldSpec>(file, src, item, &mut c.diags).is_some(),
                    _ => de::<super::spec::PreconditionSpec>(file, src, item, &mut c.diags).is_some(),
                };
                ok &= check;
                let list: &mut Vec<Range<usize>> = match k {
                    "routes" => &mut spans.routes,
                    "fields" => &mut spans.fields,
                    _ => &mut spans.preconditions,
                };
                list.push(item.span());
                good.push(item.clone());
            }
            let _ = good;
        } else {
            let check = match k {
                "auth" => de::<super::spec::AuthSpec>(file, src, value, &mut c.diags).is_some(),
                "success" => de::<super::spec::SuccessSpec>(file, src, value, &mut c.diags).is_some(),
                "errors" => de::<super::spec::ErrorsSpec>(file, src, value, &mut c.diags).is_some(),
                "vars" => de::<BTreeMap<String, String>>(file, src, value, &mut c.diags).is_some(),
                "unknown_members" => de::<super::spec::UnknownPolicy>(file, src, value, &mut c.diags).is_some(),
                _ => de::<String>(file, src, value, &mut c.diags).is_some(),
            };
            ok &= check;
        }
        whole.insert(k.to_owned(), toml::Value::Boolean(true));
    }
    if !ok {
        return None;
    }
    // Every part is well-formed: deserialise the whole (spans in the result stay absolute).
    let root = Spanned::new(0..src.len(), DeValue::Table(table.into_inner()));
    de::<MappingSpec>(file, src, &root, &mut c.diags).map(|s| (s, spans))
}
