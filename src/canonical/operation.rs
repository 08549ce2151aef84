//! The canonical operation: what every dialect request becomes, self-contained — it carries
//! the compiled plan of anything a backend must complete against the stored user, so a
//! backend needs no mapping.

use std::fmt;
use std::sync::Arc;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use super::UserDoc;
use crate::redact::Secret;
use crate::rejection::{Outcome, Rejection};

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
    /// Remove the user the operation's `target` names.
    Delete,
}

impl OpKind {
    /// The lowercase name, as in the canonical JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            OpKind::Create => "create",
            OpKind::Update => "update",
            OpKind::Delete => "delete",
        }
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

/// How a multi-part attribute sent in part is completed from the stored user: compiled by the
/// mapping at load, carried by the operation behind an `Arc`.
pub trait Completion: Send + Sync + fmt::Debug {
    /// Writes into `user` the whole attribute made of the stored value's parts with the
    /// `parts` sent laid over them (`null`: that part cleared); a 400 when the result breaks
    /// the attribute's rule.
    fn complete(
        &self,
        stored: &UserDoc,
        parts: &Map<String, Value>,
        user: &mut UserDoc,
    ) -> Result<(), Rejection>;
}

/// A multi-part attribute an update changed only in part (a phone's extension, say), to be
/// completed from the stored value by [`Operation::complete`].
#[derive(Debug, Clone, Serialize)]
pub struct PendingJoin {
    /// How to complete it.
    #[serde(skip)]
    pub plan: Arc<dyn Completion>,
    /// The canonical attribute it writes.
    pub attribute: Box<str>,
    /// The parts sent: `Some(Value)` set, `Value::Null` cleared.
    pub parts: Map<String, Value>,
}

impl PartialEq for PendingJoin {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.plan, &other.plan)
            && self.attribute == other.attribute
            && self.parts == other.parts
    }
}

/// The canonical operation: what every dialect request becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// Create or update.
    pub operation: OpKind,
    /// The mapping that produced it.
    pub dialect: Arc<str>,
    /// Update and delete: the attributes that identify the user.
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
    /// The create of `user` from `/scim/v2` (no group change, no preconditions).
    pub fn scim_create(user: UserDoc) -> Self {
        Self {
            operation: OpKind::Create,
            dialect: Arc::from("scim"),
            target: None,
            user,
            groups: None,
            caller_password: None,
            preconditions: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// The delete of the user `target` names, from `dialect`.
    pub fn delete(dialect: Arc<str>, target: UserDoc) -> Self {
        Self {
            operation: OpKind::Delete,
            dialect,
            target: Some(target),
            user: UserDoc::default(),
            groups: None,
            caller_password: None,
            preconditions: Vec::new(),
            pending: Vec::new(),
        }
    }

    /// Completes an update against the stored user, once the backend has found it (inside
    /// its own transaction, where it has one): checks the preconditions, then completes the
    /// multi-part attributes sent in part. A 400 naming the member when either fails.
    pub fn complete(&mut self, stored: &UserDoc) -> Result<(), Rejection> {
        for p in &self.preconditions {
            let current = stored.attr(&p.attribute).filter(|v| !v.is_null());
            let ok = match &p.equals {
                Some(want) => current == Some(want),
                None => current.is_none(),
            };
            if !ok {
                return Err(match &p.field {
                    Some(f) => Rejection::invalid(f, "precondition", p.message.to_string()),
                    None => {
                        Rejection::new(Outcome::Validation, "precondition", p.message.to_string())
                    }
                });
            }
        }
        for pending in std::mem::take(&mut self.pending) {
            pending
                .plan
                .complete(stored, &pending.parts, &mut self.user)?;
        }
        Ok(())
    }

    /// Whether the backend must read the stored user before writing ([`Operation::complete`]
    /// has work to do).
    pub fn is_conditional(&self) -> bool {
        !self.preconditions.is_empty() || !self.pending.is_empty()
    }

    /// What the target names, typed; `None` for a create.
    pub fn target_key(&self) -> Option<super::Target> {
        self.target.as_ref().and_then(super::Target::of)
    }

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
        m.serialize_entry("user", &super::DocJson::redacted_with_schemas(&self.user.0))?;
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
