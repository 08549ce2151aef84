//! The canonical user operation: a SCIM 2.0 User (core, enterprise and userbridge extension)
//! inside an envelope that says what to do with it.
//!
//! The user is kept in SCIM's own JSON shape ([`UserDoc`]) so that an update can say "absent"
//! (no member) apart from "clear" (`null`), and so that a SCIM backend needs no mapping. The
//! attributes a mapping may name are listed once, in [`ATTRIBUTES`]; a mapping that names
//! another is refused at load.

use std::fmt;
use std::sync::Arc;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::redact::{REDACTED, Secret};

/// SCIM core User schema URN.
pub const CORE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// SCIM enterprise User extension URN.
pub const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The userbridge User extension URN.
pub const EXT_SCHEMA: &str = "urn:userbridge:params:scim:schemas:extension:2.0:User";

/// What the operation does.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    /// Make a new user.
    Create,
    /// Change an existing user, found by the operation's `target`.
    Update,
}

impl OpKind {
    /// The lowercase name, as in the canonical JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Create => "create",
            OpKind::Update => "update",
        }
    }
}

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
        write!(f, "{}", Value::Object(self.redacted()))
    }
}

impl Serialize for UserDoc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.redacted().serialize(s)
    }
}

/// A SCIM PATCH verb for group membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupOp {
    /// Add the listed groups.
    Add,
    /// Remove the listed groups.
    Remove,
    /// Make the user's groups exactly the list.
    Replace,
}

impl GroupOp {
    /// Parses the canonical verb.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "add" => Some(GroupOp::Add),
            "remove" => Some(GroupOp::Remove),
            "replace" => Some(GroupOp::Replace),
            _ => None,
        }
    }
}

/// A group named by id (`value`), name (`display`) or both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRef {
    /// The group's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The group's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

/// A change to the user's group membership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupChange {
    /// What to do with the listed groups.
    pub op: GroupOp,
    /// The groups.
    pub values: Vec<GroupRef>,
}

/// A condition the stored user must meet for an update to go ahead (checked by the backend
/// executor once the target is found). Violations are a 400 naming `field`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Precondition {
    /// The canonical attribute to look at.
    pub attribute: Box<str>,
    /// It must equal this value (`None`: it must be absent or null).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub equals: Option<Value>,
    /// The request member to name in the error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<Box<str>>,
    /// The message when it does not hold.
    pub message: Box<str>,
}

/// A multi-part attribute an update changed only in part (a phone's extension, say): the
/// backend executor completes it from the stored value through the mapping
/// ([`crate::mapping::Mapping::complete`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingJoin {
    /// Index of the join rule in the mapping.
    #[serde(skip)]
    pub rule: usize,
    /// The canonical attribute it writes.
    pub attribute: Box<str>,
    /// The parts sent: `Some(Value)` set, `Value::Null` cleared.
    pub parts: Map<String, Value>,
}

/// The canonical operation: what every dialect request becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// Create or update.
    pub operation: OpKind,
    /// The mapping that produced it.
    pub dialect: Arc<str>,
    /// Update only: the attributes that identify the user.
    pub target: Option<UserDoc>,
    /// Create: the new user. Update: only the attributes sent (`null` = clear).
    pub user: UserDoc,
    /// A group membership change, if any.
    pub groups: Option<GroupChange>,
    /// The calling administrator's own password, re-stated for a sensitive change.
    pub caller_password: Option<Secret>,
    /// Conditions on the stored user (update only).
    pub preconditions: Vec<Precondition>,
    /// Multi-part attributes to complete from the stored user (update only).
    pub pending: Vec<PendingJoin>,
}

impl Operation {
    /// The operation as JSON with secrets in clear: for backends and `--show-secrets`.
    pub fn to_exposed_json(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.insert("user".into(), Value::Object(self.user.exposed().clone()));
            if let Some(p) = &self.caller_password {
                m.insert(
                    "callerPassword".into(),
                    Value::String(p.expose().to_owned()),
                );
            }
        }
        v
    }
}

impl Serialize for Operation {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("operation", &self.operation)?;
        m.serialize_entry("dialect", &*self.dialect)?;
        if let Some(t) = &self.target {
            m.serialize_entry("target", t)?;
        }
        m.serialize_entry("user", &with_schemas(self.user.redacted()))?;
        if let Some(g) = &self.groups {
            m.serialize_entry("groups", g)?;
        }
        if let Some(p) = &self.caller_password {
            m.serialize_entry("callerPassword", p)?;
        }
        if !self.preconditions.is_empty() {
            m.serialize_entry("preconditions", &self.preconditions)?;
        }
        if !self.pending.is_empty() {
            m.serialize_entry("pending", &self.pending)?;
        }
        m.end()
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
