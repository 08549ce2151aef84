//! Reading a vendor's OpenAPI 3.x document (YAML or JSON) for `userbridge scaffold`: its
//! operations by `operationId`, its security schemes, its first server's base path, and its
//! schemas with `$ref` followed and `allOf` merged.

use std::path::Path;

use serde_json::{Map, Value};

/// The methods an OpenAPI path item may hold operations under, in the order routes are listed.
const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// How deep `$ref` chains and `allOf` nesting are followed (a cycle stops here).
const MAX_DEPTH: usize = 32;

/// A parsed OpenAPI document.
#[derive(Debug)]
pub struct VendorDoc {
    root: Value,
}

/// One operation of the document.
#[derive(Debug, Clone)]
pub struct Operation<'a> {
    /// Its `operationId`.
    pub id: &'a str,
    /// The HTTP method, upper case.
    pub method: String,
    /// The path template, as the document writes it (`/users/{id}`).
    pub path: &'a str,
    /// The operation object.
    pub op: &'a Value,
    /// Parameters of the path item and of the operation (the operation's win), resolved.
    pub parameters: Vec<&'a Value>,
}

impl VendorDoc {
    /// Reads `file`: JSON when it starts with `{`, YAML otherwise. The error names the file
    /// and, for YAML, the parser's line and column.
    pub fn read(file: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("{}: cannot read: {e}", file.display()))?;
        let root: Value = if text.trim_start().starts_with('{') {
            serde_json::from_str(&text).map_err(|e| format!("{}:{e}", file.display()))?
        } else {
            serde_saphyr::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?
        };
        let version = root.get("openapi").and_then(Value::as_str).unwrap_or("");
        if !version.starts_with("3.") {
            return Err(format!(
                "{}: not an OpenAPI 3.x document (its `openapi` member is {})",
                file.display(),
                if version.is_empty() {
                    "missing".to_owned()
                } else {
                    format!("`{version}`")
                }
            ));
        }
        Ok(VendorDoc { root })
    }

    /// The document's `info.title`.
    pub fn title(&self) -> Option<&str> {
        self.root.pointer("/info/title").and_then(Value::as_str)
    }

    /// Every operation, in document order.
    pub fn operations(&self) -> Vec<Operation<'_>> {
        let mut out = Vec::new();
        let Some(paths) = self.root.get("paths").and_then(Value::as_object) else {
            return out;
        };
        for (path, item) in paths {
            let item = self.resolve(item);
            for m in METHODS {
                let Some(op) = item.get(m) else { continue };
                let Some(id) = op.get("operationId").and_then(Value::as_str) else {
                    continue;
                };
                let mut parameters: Vec<&Value> = Vec::new();
                let lists = [item.get("parameters"), op.get("parameters")];
                for p in lists
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_array)
                    .flatten()
                {
                    let p = self.resolve(p);
                    let key = |v: &Value| (v.get("name").cloned(), v.get("in").cloned());
                    parameters.retain(|q| key(q) != key(p));
                    parameters.push(p);
                }
                out.push(Operation {
                    id,
                    method: m.to_ascii_uppercase(),
                    path,
                    op,
                    parameters,
                });
            }
        }
        out
    }

    /// The operation whose `operationId` is `id`; the error lists the ones there are.
    pub fn operation(&self, id: &str) -> Result<Operation<'_>, String> {
        let all = self.operations();
        if let Some(op) = all.iter().find(|o| o.id == id) {
            return Ok(op.clone());
        }
        let ids: Vec<&str> = all.iter().map(|o| o.id).collect();
        Err(if ids.is_empty() {
            format!("no operation `{id}`: the document names none (no `operationId`)")
        } else {
            format!("no operation `{id}`; the document has: {}", ids.join(", "))
        })
    }

    /// The path of the first server's URL (`https://host/portal` → `/portal`), without a
    /// trailing slash; `None` when it has none.
    pub fn base_path(&self) -> Option<String> {
        let url = self
            .root
            .pointer("/servers/0/url")
            .and_then(Value::as_str)?;
        let rest = match url.split_once("://") {
            Some((_, r)) => r.split_once('/').map_or("", |(_, p)| p),
            None => url.trim_start_matches('/'),
        };
        let rest = rest.trim_end_matches('/');
        (!rest.is_empty() && !rest.contains('{')).then(|| format!("/{rest}"))
    }

    /// The security schemes an operation needs: its own `security`, else the document's;
    /// each resolved in `components.securitySchemes`, with its name.
    pub fn security<'a>(&'a self, op: &Operation<'a>) -> Vec<(&'a str, &'a Value)> {
        let reqs = op
            .op
            .get("security")
            .or_else(|| self.root.get("security"))
            .and_then(Value::as_array);
        let schemes = self.root.pointer("/components/securitySchemes");
        let mut out = Vec::new();
        for req in reqs.into_iter().flatten().filter_map(Value::as_object) {
            for name in req.keys() {
                if let Some(s) = schemes.and_then(|s| s.get(name))
                    && !out.iter().any(|(n, _)| n == name)
                {
                    out.push((name.as_str(), self.resolve(s)));
                }
            }
        }
        out
    }

    /// Follows `$ref` (local, `#/…`) until a value that is not one; a reference that does not
    /// resolve, or a cycle, leaves the reference itself.
    pub fn resolve<'a>(&'a self, mut v: &'a Value) -> &'a Value {
        for _ in 0..MAX_DEPTH {
            let Some(r) = v.get("$ref").and_then(Value::as_str) else {
                return v;
            };
            let Some(target) = r.strip_prefix('#').and_then(|p| self.root.pointer(p)) else {
                return v;
            };
            v = target;
        }
        v
    }

    /// A schema as one object: `$ref` followed, `allOf` merged (properties in order, `required`
    /// joined), the rest of the outermost schema kept.
    pub fn schema(&self, v: &Value) -> Map<String, Value> {
        self.merge(v, 0)
    }

    fn merge(&self, v: &Value, depth: usize) -> Map<String, Value> {
        let v = self.resolve(v);
        let mut out = Map::new();
        if depth > MAX_DEPTH {
            return out;
        }
        let Some(obj) = v.as_object() else {
            return out;
        };
        for part in obj
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let m = self.merge(part, depth + 1);
            absorb(&mut out, m);
        }
        let mut own = obj.clone();
        own.remove("allOf");
        absorb(&mut out, own);
        out
    }

    /// The name of the component schema `v` refers to, if it is a `$ref` to one.
    pub fn ref_name(v: &Value) -> Option<&str> {
        v.get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.rsplit('/').next())
    }
}

/// Merges `m` into `out`: `properties` and `required` joined, other members replaced.
fn absorb(out: &mut Map<String, Value>, m: Map<String, Value>) {
    for (k, v) in m {
        match (k.as_str(), out.get_mut(&k), v) {
            ("properties", Some(Value::Object(have)), Value::Object(more)) => have.extend(more),
            ("required", Some(Value::Array(have)), Value::Array(more)) => {
                for r in more {
                    if !have.contains(&r) {
                        have.push(r);
                    }
                }
            }
            (_, _, v) => {
                out.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(yaml: &str) -> VendorDoc {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let f = dir.path().join("d.yaml");
        std::fs::write(&f, yaml).unwrap_or_else(|e| panic!("{e}"));
        VendorDoc::read(&f).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn all_of_and_refs_merge_in_order() {
        let d = doc(r#"
openapi: 3.0.3
paths: {}
components:
  schemas:
    Base: { type: object, required: [a], properties: { a: { type: string } } }
    Loop: { $ref: '#/components/schemas/Loop' }
    Both:
      allOf:
        - $ref: '#/components/schemas/Base'
        - { type: object, required: [b], properties: { b: { type: integer } } }
"#);
        let s = d.schema(&serde_json::json!({"$ref": "#/components/schemas/Both"}));
        let props: Vec<&String> = s["properties"]
            .as_object()
            .map(|p| p.keys().collect())
            .unwrap_or_default();
        assert_eq!(props, ["a", "b"]);
        assert_eq!(s["required"], serde_json::json!(["a", "b"]));
        // A cycle ends, leaving the reference.
        let l = d.schema(&serde_json::json!({"$ref": "#/components/schemas/Loop"}));
        assert!(l.contains_key("$ref"));
    }

    #[test]
    fn a_missing_operation_lists_the_ones_there_are() {
        let d = doc(
            "openapi: 3.1.0\npaths:\n  /u:\n    get: { operationId: listUsers }\n    post: { operationId: addUser }\n",
        );
        let e = d.operation("nope").err().unwrap_or_default();
        assert!(e.contains("listUsers, addUser"), "{e}");
        assert_eq!(
            d.operation("addUser").map(|o| o.method).ok().as_deref(),
            Some("POST")
        );
    }

    #[test]
    fn swagger_2_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let f = dir.path().join("s.json");
        std::fs::write(&f, r#"{"swagger": "2.0", "paths": {}}"#).unwrap_or_else(|e| panic!("{e}"));
        let e = VendorDoc::read(&f).err().unwrap_or_default();
        assert!(e.contains("not an OpenAPI 3.x document"), "{e}");
    }
}
