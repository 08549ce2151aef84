//! The SCIM schemas the ingress serves (RFC 7643 §7), from the one committed description
//! `schemas/scim/schemas.json` (which a SCIM provider behind the `scim` backend loads too),
//! and an index of their attributes for PATCH paths: canonical spelling, type, plurality.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde_json::{Value, json};

use crate::canonical::{CORE_SCHEMA, ENTERPRISE_SCHEMA, EXT_SCHEMA};

/// The committed schema file.
const SCHEMAS: &str = include_str!("../../schemas/scim/schemas.json");
const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

/// What the index knows of one attribute.
#[derive(Debug, Clone)]
pub struct AttrInfo {
    /// The attribute's own spelling (`givenName`).
    pub name: String,
    /// `string`, `boolean`, `complex`, …
    pub kind: String,
    /// Whether it holds a list.
    pub multi: bool,
    /// `readOnly`, `readWrite`, …
    pub mutability: String,
    /// Whether its values compare with case (`caseExact`).
    pub case_exact: bool,
}

/// The served schemas and the attribute index.
pub struct Schemas {
    /// The Schema resources of the User resource type.
    pub resources: Vec<Value>,
    /// `lowercase path` (`name.givenname`, `urn:…:user:mfa.enabled`) → info. Core attributes
    /// are indexed without their URN as well.
    index: HashMap<String, AttrInfo>,
}

/// The User schemas, parsed once.
pub static USER: LazyLock<Schemas> = LazyLock::new(|| load("User"));

/// The Group schema, parsed once.
pub static GROUP: LazyLock<Schemas> = LazyLock::new(|| load("Group"));

/// The common attributes of every resource (RFC 7643 §3.1), which belong to no schema.
const COMMON: &[(&str, &str, bool)] = &[
    ("id", "string", true),
    ("externalId", "string", true),
    ("meta", "complex", false),
    ("meta.resourceType", "string", true),
    ("meta.created", "dateTime", false),
    ("meta.lastModified", "dateTime", false),
    ("meta.location", "reference", true),
    ("meta.version", "string", true),
];

fn load(resource: &str) -> Schemas {
    let all: Vec<Value> = serde_json::from_str(SCHEMAS).unwrap_or_default();
    let core = format!("urn:ietf:params:scim:schemas:core:2.0:{resource}");
    let mut resources = Vec::new();
    let mut index = HashMap::new();
    for (path, kind, case_exact) in COMMON {
        let name = path.rsplit('.').next().unwrap_or(path).to_owned();
        let info = AttrInfo {
            name,
            kind: (*kind).to_owned(),
            multi: false,
            mutability: "readOnly".into(),
            case_exact: *case_exact,
        };
        index.insert(path.to_ascii_lowercase(), info);
    }
    if let Some(a) = index.get_mut("externalid") {
        a.mutability = "readWrite".into();
    }
    for mut s in all {
        let id = s.get("id").and_then(Value::as_str).unwrap_or("").to_owned();
        if !id.ends_with(&format!(":{resource}")) {
            continue;
        }
        // What the ingress announces differs from the provider's file in two ways:
        // - numericId is assigned by the store: read-only, and returned when asked for
        //   (`attributes=`), so a client comparing what it wrote with what it reads sees no
        //   extra member;
        // - the extension's write-only secrets (`mfa.secret`, `sharedSecret`) are accepted and
        //   stored but not announced: a never-returned member inside a returned complex value
        //   makes SCIM testers (scim2-tester) expect it back.
        // A member's `display` is the member's userName, which the store fills in: read-only,
        // and returned when asked for (`attributes=members.display`), so that a client
        // comparing the members it wrote with those it reads sees no extra member.
        if id.ends_with(":Group")
            && let Some(Value::Array(attrs)) = s.get_mut("attributes")
        {
            for a in attrs.iter_mut() {
                if let Some(Value::Array(subs)) = a.get_mut("subAttributes") {
                    for sub in subs.iter_mut() {
                        if sub.get("name").and_then(Value::as_str) == Some("display") {
                            sub["mutability"] = Value::String("readOnly".into());
                            sub["returned"] = Value::String("request".into());
                        }
                    }
                }
            }
        }
        if id == EXT_SCHEMA
            && let Some(Value::Array(attrs)) = s.get_mut("attributes")
        {
            let never = |a: &Value| a.get("returned").and_then(Value::as_str) == Some("never");
            attrs.retain(|a| !never(a));
            for a in attrs.iter_mut() {
                if let Some(Value::Array(subs)) = a.get_mut("subAttributes") {
                    subs.retain(|s| !never(s));
                }
                if a.get("name").and_then(Value::as_str) == Some("numericId") {
                    a["mutability"] = Value::String("readOnly".into());
                    a["returned"] = Value::String("request".into());
                }
            }
        }
        for a in s
            .get("attributes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let top = info(a);
            let key = top.name.to_ascii_lowercase();
            for sub in a
                .get("subAttributes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let si = info(sub);
                let sk = format!("{key}.{}", si.name.to_ascii_lowercase());
                index.insert(format!("{}:{sk}", id.to_ascii_lowercase()), si.clone());
                if id == core {
                    index.insert(sk, si);
                }
            }
            index.insert(format!("{}:{key}", id.to_ascii_lowercase()), top.clone());
            if id == core {
                index.insert(key, top);
            }
        }
        s["meta"] = json!({
            "resourceType": "Schema",
            "location": format!("/scim/v2/Schemas/{id}"),
        });
        resources.push(s);
    }
    Schemas { resources, index }
}

fn info(a: &Value) -> AttrInfo {
    let s = |k: &str, d: &str| a.get(k).and_then(Value::as_str).unwrap_or(d).to_owned();
    AttrInfo {
        name: s("name", ""),
        kind: s("type", "string"),
        multi: a.get("multiValued").and_then(Value::as_bool) == Some(true),
        mutability: s("mutability", "readWrite"),
        case_exact: a.get("caseExact").and_then(Value::as_bool) == Some(true),
    }
}

impl Schemas {
    /// The attribute at `path` (`emails`, `name.givenName`, `urn:…:User:mfa.enabled`), in
    /// any case.
    pub fn attr(&self, path: &str) -> Option<&AttrInfo> {
        self.index.get(&path.to_ascii_lowercase())
    }

    /// The attributes returned only on request, as `(extension URN or None, name)`.
    pub fn on_request(&self) -> impl Iterator<Item = (Option<&str>, &str)> {
        self.resources.iter().flat_map(|s| {
            let id = s.get("id").and_then(Value::as_str).unwrap_or("");
            let ext = (id != USER_SCHEMA).then_some(id);
            s.get("attributes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|a| a.get("returned").and_then(Value::as_str) == Some("request"))
                .filter_map(move |a| Some((ext, a.get("name")?.as_str()?)))
        })
    }

    /// The Schema resource with `id`.
    pub fn get(&self, id: &str) -> Option<&Value> {
        self.resources
            .iter()
            .find(|s| s.get("id").and_then(Value::as_str) == Some(id))
    }
}

/// Splits an attribute name (`urn:…:User:attr.sub`, or `attr.sub`) into its extension (`None`
/// for the core schema or no URN) and the rest; a bare extension URN gives `(Some(ext), "")`.
/// `Err` when it starts with `urn:` but names no schema the ingress serves.
pub(crate) fn split_schema(p: &str) -> Result<(Option<&'static str>, &str), ()> {
    for u in [CORE_SCHEMA, ENTERPRISE_SCHEMA, EXT_SCHEMA] {
        if p.get(..u.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(u))
        {
            let after = &p[u.len()..];
            if after.is_empty() || after.starts_with(':') {
                let ext = (u != CORE_SCHEMA).then_some(u);
                return Ok((ext, after.strip_prefix(':').unwrap_or("")));
            }
        }
    }
    if p.get(..4)
        .is_some_and(|head| head.eq_ignore_ascii_case("urn:"))
    {
        Err(())
    } else {
        Ok((None, p))
    }
}

/// The key of `m` spelled like `name` in any case (SCIM names are case-insensitive).
pub(crate) fn find_key<'a>(
    m: &'a serde_json::Map<String, Value>,
    name: &str,
) -> Option<&'a String> {
    m.keys().find(|k| k.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_prefixes_split_in_any_case_and_never_panic_on_multibyte_input() {
        let ext = format!("{}:mfa.enabled", EXT_SCHEMA.to_uppercase());
        assert_eq!(split_schema(&ext), Ok((Some(EXT_SCHEMA), "mfa.enabled")));
        assert_eq!(split_schema(EXT_SCHEMA), Ok((Some(EXT_SCHEMA), "")));
        assert_eq!(
            split_schema("urn:ietf:params:scim:schemas:core:2.0:User:name"),
            Ok((None, "name"))
        );
        assert_eq!(split_schema("name.givenName"), Ok((None, "name.givenName")));
        assert_eq!(split_schema("urn:x:y"), Err(()));
        assert_eq!(split_schema("ur€x"), Ok((None, "ur€x")));
        assert_eq!(
            split_schema("urn:ietf:params:scim:schemas:core:2.€"),
            Err(())
        );
    }

    #[test]
    fn the_committed_schemas_load_and_index_every_canonical_attribute() {
        let s = &*USER;
        assert_eq!(
            s.resources.len(),
            3,
            "core, enterprise and userbridge User schemas"
        );
        for a in crate::canonical::ATTRIBUTES {
            let path = a.name.split('[').next().unwrap_or(a.name);
            let scim = match path.strip_prefix("ext.") {
                Some(r) => format!("{EXT_SCHEMA}:{r}"),
                None => match path.strip_prefix("enterprise.") {
                    Some(r) => format!("{}:{r}", crate::canonical::ENTERPRISE_SCHEMA),
                    None => path.to_owned(),
                },
            };
            // Common attributes (RFC 7643 §3.1) belong to no schema.
            if matches!(
                path,
                "id" | "externalId" | "meta.created" | "meta.lastModified"
            ) {
                continue;
            }
            assert_eq!(
                s.attr(&scim).is_some(),
                !a.secret || a.name == "password",
                "{scim}"
            );
        }
        assert_eq!(
            s.attr("NAME.GIVENNAME").map(|a| a.name.as_str()),
            Some("givenName")
        );
        assert_eq!(
            s.attr(&format!("{EXT_SCHEMA}:numericId"))
                .map(|a| a.mutability.as_str()),
            Some("readOnly")
        );
    }
}
