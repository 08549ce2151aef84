//! All the dialects of one deployment, and routing a request to one of them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Mapping;
use crate::diagnostic::Diagnostic;
use crate::dialect::route::Params;

/// The compiled mappings, in load order.
#[derive(Debug, Default)]
pub struct MappingSet {
    /// The mappings.
    pub mappings: Vec<Arc<Mapping>>,
}

/// Where a request goes.
#[derive(Debug)]
pub enum RouteMatch<'a> {
    /// A route of a mapping.
    Found {
        /// The mapping.
        mapping: &'a Arc<Mapping>,
        /// Index into `mapping.routes`.
        route: usize,
        /// Path parameters.
        params: Params,
    },
    /// The path is a mapping's, the method is not.
    MethodNotAllowed {
        /// The mapping whose path it is (its error shape answers).
        mapping: &'a Arc<Mapping>,
        /// Methods that would be allowed.
        allow: Vec<http::Method>,
    },
    /// No mapping has the path.
    NotFound,
}

impl MappingSet {
    /// Loads every `*.toml` in `dir` (sorted by name), or only `only` when given. `vars` holds
    /// per-dialect variable overrides. All diagnostics of all files are returned together.
    pub fn load_dir(
        dir: &Path,
        only: Option<&[String]>,
        vars: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<Self, Vec<Diagnostic>> {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect(),
            Err(e) => {
                return Err(vec![Diagnostic::file(
                    dir,
                    format!("cannot read the mappings directory: {e}"),
                )]);
            }
        };
        files.sort();
        let none = BTreeMap::new();
        let mut set = MappingSet::default();
        let mut diags = Vec::new();
        for f in &files {
            let stem = f
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned();
            if only.is_some_and(|o| !o.contains(&stem)) {
                continue;
            }
            match super::load::load_file(f, vars.get(&stem).unwrap_or(&none)) {
                Ok(m) => {
                    if set.mappings.iter().any(|x| x.dialect == m.dialect) {
                        diags.push(Diagnostic::file(
                            f,
                            format!("dialect `{}` is defined twice", m.dialect),
                        ));
                    }
                    set.mappings.push(Arc::new(m));
                }
                Err(d) => diags.extend(d),
            }
        }
        if let Some(only) = only {
            for name in only {
                if !files
                    .iter()
                    .any(|f| f.file_stem().and_then(|s| s.to_str()) == Some(name))
                {
                    diags.push(Diagnostic::file(
                        dir,
                        format!("no mapping file `{name}.toml`"),
                    ));
                }
            }
        }
        diags.extend(set.conflicts());
        if diags.is_empty() {
            Ok(set)
        } else {
            Err(diags)
        }
    }

    /// Routes that answer the same method and path shape, in one mapping or two: a request
    /// would reach only the first, so each later one is an error naming both.
    pub fn conflicts(&self) -> Vec<Diagnostic> {
        let mut seen: Vec<(&http::Method, String, &Mapping, &str)> = Vec::new();
        let mut diags = Vec::new();
        for m in &self.mappings {
            for r in &m.routes {
                for p in &r.paths {
                    let shape = p.shape();
                    let earlier = seen
                        .iter()
                        .find(|(method, s, _, _)| *method == r.method && *s == shape);
                    match earlier {
                        Some((_, _, other, name)) => diags.push(Diagnostic::file(
                            &m.file,
                            format!(
                                "route `{}` answers {} {} as route `{name}` of `{}` ({}) does: a request would reach only that one",
                                r.name,
                                r.method,
                                p.text,
                                other.dialect,
                                other.file.display()
                            ),
                        )),
                        None => seen.push((&r.method, shape, m, &r.name)),
                    }
                }
            }
        }
        diags
    }

    /// The mapping called `dialect`.
    pub fn get(&self, dialect: &str) -> Option<&Arc<Mapping>> {
        self.mappings.iter().find(|m| &*m.dialect == dialect)
    }

    /// Routes `method` + `path` (without query string). Only the routes taking `method` are
    /// matched against the path; the others are looked at only to answer a 405.
    pub fn route(&self, method: &http::Method, path: &str) -> RouteMatch<'_> {
        let mut params = Params::new();
        for m in &self.mappings {
            for (i, r) in m.routes.iter().enumerate() {
                if r.method == *method && r.paths.iter().any(|p| p.matches(path, &mut params)) {
                    return RouteMatch::Found {
                        mapping: m,
                        route: i,
                        params,
                    };
                }
            }
        }
        let mut allow: Option<(&Arc<Mapping>, Vec<http::Method>)> = None;
        for m in &self.mappings {
            for r in &m.routes {
                if !r.paths.iter().any(|p| p.matches(path, &mut params)) {
                    continue;
                }
                params.clear();
                let entry = allow.get_or_insert_with(|| (m, Vec::new()));
                if !entry.1.contains(&r.method) {
                    entry.1.push(r.method.clone());
                }
            }
        }
        match allow {
            Some((mapping, allow)) => RouteMatch::MethodNotAllowed { mapping, allow },
            None => RouteMatch::NotFound,
        }
    }
}
