//! The canonical user operation: a SCIM 2.0 User (core, enterprise and userbridge extension)
//! inside an envelope that says what to do with it.
//!
//! The user is kept in SCIM's own JSON shape ([`UserDoc`]) so that an update can say "absent"
//! (no member) apart from "clear" (`null`), and so that a SCIM backend needs no mapping. The
//! attributes a mapping may name are listed once, in [`ATTRIBUTES`]; a mapping that names
//! another is refused at load.

use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::redact::REDACTED;

/// SCIM core User schema URN.
pub const CORE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// SCIM enterprise User extension URN.
pub const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The userbridge User extension URN.
pub const EXT_SCHEMA: &str = "urn:userbridge:params:scim:schemas:extension:2.0:User";

mod identity;
mod json;
mod operation;
pub mod schemas;

pub use identity::{Identity, Target};
pub use json::DocJson;
pub use operation::{
    Completion, GroupChange, GroupOp, GroupRef, OpKind, Operation, PendingJoin, Precondition,
};

/// The kind of value a canonical attribute holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A JSON string.
    String,
    /// A JSON boolean.
    Boolean,
    /// A JSON integer.
    Integer,
    /// A JSON object with sub-attributes.
    Object,
    /// A JSON array (of strings or objects).
    Array,
}

/// One canonical attribute a mapping may read or write.
#[derive(Debug, Clone, Copy)]
pub struct AttrDef {
    /// Its name in mapping files: `userName`, `name.givenName`, `ext.mfa.secret`, …
    pub name: &'static str,
    /// The kind of value.
    pub kind: Kind,
    /// Never logged, printed or rendered into a response.
    pub secret: bool,
    /// Set by the backend only; a mapping may render it but never write it from a request.
    pub read_only: bool,
}

const fn attr(name: &'static str, kind: Kind) -> AttrDef {
    AttrDef {
        name,
        kind,
        secret: false,
        read_only: false,
    }
}
const fn secret(name: &'static str) -> AttrDef {
    AttrDef {
        name,
        kind: Kind::String,
        secret: true,
        read_only: false,
    }
}
const fn read_only(name: &'static str, kind: Kind) -> AttrDef {
    AttrDef {
        name,
        kind,
        secret: false,
        read_only: true,
    }
}

/// Every canonical user attribute. `ext.` names the userbridge extension, `enterprise.` the
/// enterprise extension; `emails[primary].value` is the value of the primary email.
pub const ATTRIBUTES: &[AttrDef] = &[
    read_only("id", Kind::String),
    attr("externalId", Kind::String),
    attr("userName", Kind::String),
    attr("name", Kind::Object),
    attr("name.givenName", Kind::String),
    attr("name.familyName", Kind::String),
    attr("name.formatted", Kind::String),
    attr("displayName", Kind::String),
    attr("emails", Kind::Array),
    attr("emails[primary].value", Kind::String),
    attr("phoneNumbers", Kind::Array),
    attr("phoneNumbers[primary].value", Kind::String),
    attr("active", Kind::Boolean),
    secret("password"),
    attr("timezone", Kind::String),
    attr("locale", Kind::String),
    attr("roles", Kind::Array),
    attr("entitlements", Kind::Array),
    read_only("groups", Kind::Array),
    read_only("meta.created", Kind::String),
    read_only("meta.lastModified", Kind::String),
    attr("enterprise.organization", Kind::String),
    read_only("ext.numericId", Kind::Integer),
    attr("ext.authenticator", Kind::String),
    attr("ext.orgId", Kind::String),
    attr("ext.locked", Kind::Boolean),
    attr("ext.mustChangePassword", Kind::Boolean),
    attr("ext.accountExpired", Kind::Boolean),
    attr("ext.credentialsExpired", Kind::Boolean),
    attr("ext.mfa.enabled", Kind::Boolean),
    secret("ext.mfa.secret"),
    secret("ext.sharedSecret"),
    attr("ext.notes", Kind::String),
    attr("ext.description", Kind::String),
    attr("ext.plan", Kind::Object),
    attr("ext.userPrincipalName", Kind::String),
    attr("ext.authenticationMethod", Kind::String),
    attr("ext.sso", Kind::Boolean),
    attr("ext.identityProvider", Kind::String),
    read_only("ext.createdBy", Kind::String),
    read_only("ext.lastModifiedBy", Kind::String),
    read_only("ext.lastSuccessfulLogin", Kind::String),
    read_only("ext.lastFailedLogin", Kind::String),
    read_only("ext.effectiveRoles", Kind::Array),
    read_only("ext.effectivePrivileges", Kind::Array),
];

/// Looks an attribute up by its mapping name, or by its SCIM URN-qualified name
/// (`urn:userbridge:params:scim:schemas:extension:2.0:User:mfa.secret`).
pub fn attribute(name: &str) -> Option<&'static AttrDef> {
    let short;
    let name = if let Some(rest) = name
        .strip_prefix(EXT_SCHEMA)
        .and_then(|r| r.strip_prefix(':'))
    {
        short = format!("ext.{rest}");
        short.as_str()
    } else if let Some(rest) = name
        .strip_prefix(ENTERPRISE_SCHEMA)
        .and_then(|r| r.strip_prefix(':'))
    {
        short = format!("enterprise.{rest}");
        short.as_str()
    } else {
        name
    };
    ATTRIBUTES.iter().find(|a| a.name == name)
}

/// One step of an attribute's location in the SCIM JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// An object member.
    Key(Box<str>),
    /// The primary element of a multi-valued attribute (`emails[primary]`).
    Primary(Box<str>),
}

/// The mapping-file name of a location: the inverse of [`location`] (`ext.mfa.secret`,
/// `emails[primary].value`).
pub fn display_steps(steps: &[Step]) -> String {
    let mut s = String::new();
    for (i, step) in steps.iter().enumerate() {
        let (key, primary) = match step {
            Step::Key(k) => (&**k, false),
            Step::Primary(k) => (&**k, true),
        };
        let key = match key {
            EXT_SCHEMA if i == 0 => "ext",
            ENTERPRISE_SCHEMA if i == 0 => "enterprise",
            k => k,
        };
        if i > 0 {
            s.push('.');
        }
        s.push_str(key);
        if primary {
            s.push_str("[primary]");
        }
    }
    s
}

/// Where an attribute lives in the SCIM JSON document: `ext.mfa.secret` is
/// `[EXT_SCHEMA, "mfa", "secret"]`.
pub fn location(name: &str) -> Vec<Step> {
    let (root, rest) = if let Some(r) = name.strip_prefix("ext.") {
        (Some(EXT_SCHEMA), r)
    } else if let Some(r) = name.strip_prefix("enterprise.") {
        (Some(ENTERPRISE_SCHEMA), r)
    } else {
        (None, name)
    };
    let mut steps: Vec<Step> = root.map(|r| Step::Key(r.into())).into_iter().collect();
    for part in rest.split('.') {
        match part.strip_suffix("[primary]") {
            Some(multi) => steps.push(Step::Primary(multi.into())),
            None => steps.push(Step::Key(part.into())),
        }
    }
    steps
}

/// Reads the value at `steps`; `None` when absent.
pub fn get<'a>(doc: &'a Map<String, Value>, steps: &[Step]) -> Option<&'a Value> {
    let (first, rest) = steps.split_first()?;
    let v = match first {
        Step::Key(k) => doc.get(&**k)?,
        Step::Primary(k) => primary(doc.get(&**k)?)?,
    };
    if rest.is_empty() {
        return Some(v);
    }
    get(v.as_object()?, rest)
}

fn primary(list: &Value) -> Option<&Value> {
    let items = list.as_array()?;
    items
        .iter()
        .find(|i| i.get("primary").and_then(Value::as_bool) == Some(true))
        .or_else(|| items.first())
}

/// Removes the attribute at `steps` (a primary element's value removes the element); empty
/// objects left behind are removed too.
pub fn remove(doc: &mut Map<String, Value>, steps: &[Step]) {
    let Some((first, rest)) = steps.split_first() else {
        return;
    };
    match first {
        Step::Key(k) if rest.is_empty() => {
            doc.shift_remove(&**k);
        }
        Step::Key(k) => {
            if let Some(Value::Object(inner)) = doc.get_mut(&**k) {
                remove(inner, rest);
                if inner.is_empty() {
                    doc.shift_remove(&**k);
                }
            }
        }
        Step::Primary(k) => {
            if let Some(Value::Array(items)) = doc.get_mut(&**k) {
                items.retain(|i| i.get("primary").and_then(Value::as_bool) != Some(true));
                if items.is_empty() {
                    doc.shift_remove(&**k);
                }
            }
        }
    }
}

/// Writes `value` at `steps`, creating objects on the way. A `Primary` step writes the
/// primary element of the list (a list of one, marked `primary`).
pub fn set(doc: &mut Map<String, Value>, steps: &[Step], value: Value) {
    let Some((first, rest)) = steps.split_first() else {
        return;
    };
    match first {
        // Keys are allocated only for members that are new.
        Step::Key(k) if rest.is_empty() => match doc.get_mut(&**k) {
            Some(slot) => *slot = value,
            None => {
                doc.insert(String::from(&**k), value);
            }
        },
        Step::Key(k) => {
            if !doc.get(&**k).is_some_and(Value::is_object) {
                doc.insert(String::from(&**k), Value::Object(Map::new()));
            }
            if let Some(Value::Object(inner)) = doc.get_mut(&**k) {
                set(inner, rest, value);
            }
        }
        Step::Primary(k) => {
            if value.is_null() && rest.len() == 1 {
                // Clearing the primary value clears the attribute.
                doc.insert(k.to_string(), Value::Null);
                return;
            }
            let mut item = Map::new();
            set(&mut item, rest, value);
            item.insert("primary".into(), Value::Bool(true));
            doc.insert(k.to_string(), Value::Array(vec![Value::Object(item)]));
        }
    }
}

fn secret_locations() -> &'static [Vec<Step>] {
    use std::sync::OnceLock;
    static LOCS: OnceLock<Vec<Vec<Step>>> = OnceLock::new();
    LOCS.get_or_init(|| {
        ATTRIBUTES
            .iter()
            .filter(|a| a.secret)
            .map(|a| location(a.name))
            .collect()
    })
}

/// A canonical user (or target) in SCIM JSON shape. `Debug` and `Serialize` redact every
/// secret attribute; [`UserDoc::exposed`] gives the clear document to backends.
#[derive(Clone, Default, PartialEq)]
pub struct UserDoc(pub Map<String, Value>);

impl UserDoc {
    /// The document with secrets in clear. For backends and `--show-secrets` only.
    pub fn exposed(&self) -> &Map<String, Value> {
        &self.0
    }

    /// A copy with every secret attribute replaced by `***`.
    pub fn redacted(&self) -> Map<String, Value> {
        let mut copy = self.0.clone();
        for loc in secret_locations() {
            redact_at(&mut copy, loc);
        }
        copy
    }

    /// A copy with every secret attribute removed: what a read of the store returns.
    pub fn redacted_without_secrets(&self) -> Map<String, Value> {
        let mut copy = self.0.clone();
        for loc in secret_locations() {
            remove(&mut copy, loc);
        }
        copy
    }

    /// The attribute called `name` (see [`ATTRIBUTES`]).
    pub fn attr(&self, name: &str) -> Option<&Value> {
        get(&self.0, &location(name))
    }

    /// The canonical `id`, when the document has one (a stored user does).
    pub fn id(&self) -> Option<&str> {
        self.0.get("id").and_then(Value::as_str)
    }

    /// True when the document has no attribute.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn redact_at(doc: &mut Map<String, Value>, steps: &[Step]) {
    let Some((Step::Key(k), rest)) = steps.split_first() else {
        return;
    };
    match doc.get_mut(&**k) {
        Some(v) if rest.is_empty() && !v.is_null() => {
            *v = Value::String(REDACTED.into());
        }
        Some(Value::Object(inner)) => redact_at(inner, rest),
        _ => {}
    }
}

impl fmt::Debug for UserDoc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match serde_json::to_string(&DocJson::redacted(&self.0)) {
            Ok(text) => f.write_str(&text),
            Err(_) => f.write_str("{}"),
        }
    }
}

impl Serialize for UserDoc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        DocJson::redacted(&self.0).serialize(s)
    }
}

/// The `schemas` a user document needs: core, plus each extension it carries.
pub fn schemas_of(user: &Map<String, Value>) -> Vec<&'static str> {
    let mut s = vec![CORE_SCHEMA];
    if user.contains_key(ENTERPRISE_SCHEMA) {
        s.push(ENTERPRISE_SCHEMA);
    }
    if user.contains_key(EXT_SCHEMA) {
        s.push(EXT_SCHEMA);
    }
    s
}

/// `user` with its `schemas` member first, naming what it carries.
pub fn with_schemas(user: Map<String, Value>) -> Map<String, Value> {
    let schemas: Vec<Value> = schemas_of(&user)
        .into_iter()
        .map(|s| Value::String(s.into()))
        .collect();
    let mut out = Map::with_capacity(user.len() + 1);
    out.insert("schemas".into(), Value::Array(schemas));
    out.extend(user);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn locations_follow_scim_shape() {
        let mut doc = Map::new();
        set(&mut doc, &location("ext.mfa.secret"), json!("s3cret"));
        set(&mut doc, &location("emails[primary].value"), json!("a@b.c"));
        set(&mut doc, &location("name.givenName"), json!("Ann"));
        assert_eq!(
            Value::Object(doc.clone()),
            json!({EXT_SCHEMA: {"mfa": {"secret": "s3cret"}},
                   "emails": [{"value": "a@b.c", "primary": true}],
                   "name": {"givenName": "Ann"}})
        );
        assert_eq!(
            get(&doc, &location("emails[primary].value")),
            Some(&json!("a@b.c"))
        );
        let user = UserDoc(doc);
        assert!(!format!("{user:?}").contains("s3cret"));
        assert!(!serde_json::to_string(&user).unwrap().contains("s3cret"));
        assert_eq!(user.attr("ext.mfa.secret"), Some(&json!("s3cret")));
    }

    #[test]
    fn urn_names_resolve() {
        assert_eq!(
            attribute(&format!("{EXT_SCHEMA}:mfa.secret")).map(|a| a.secret),
            Some(true)
        );
        assert!(attribute("nope").is_none());
    }
}
