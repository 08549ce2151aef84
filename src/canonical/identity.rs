//! Who an operation is about. A user is matched across backends and runs by its
//! [`Identity`] (`userName`, and `authenticator` where known); an update names its user by a
//! [`Target`] — the one rule every backend resolves.

use serde_json::{Map, Value};

use super::UserDoc;

/// What an update's target names, in the order a backend tries them: the canonical `id`, the
/// ext `numericId`, or the `userName` with the ext `authenticator` (absent: empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The canonical `id`.
    Id(String),
    /// The ext `numericId`.
    NumericId(i64),
    /// The `userName` and the ext `authenticator` (`""` when the target has none).
    Name {
        /// `userName`.
        user_name: String,
        /// ext `authenticator`, `""` when absent.
        authenticator: String,
    },
}

impl Target {
    /// What a target document names; `None` when it names nothing a backend can find.
    pub fn of(doc: &UserDoc) -> Option<Self> {
        if let Some(id) = doc.id() {
            return Some(Target::Id(id.to_owned()));
        }
        if let Some(n) = doc.attr("ext.numericId").and_then(Value::as_i64) {
            return Some(Target::NumericId(n));
        }
        let user_name = doc.attr("userName")?.as_str()?.to_owned();
        let authenticator = doc
            .attr("ext.authenticator")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        Some(Target::Name {
            user_name,
            authenticator,
        })
    }

    /// A short label for a log line (never a secret): the id, the number or the name.
    pub fn label(&self) -> String {
        match self {
            Target::Id(id) => id.clone(),
            Target::NumericId(n) => n.to_string(),
            Target::Name { user_name, .. } => user_name.clone(),
        }
    }
}

/// How users are matched across backends and runs: `userName`, and `authenticator` when known.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Identity {
    /// `userName`.
    pub user_name: String,
    /// ext `authenticator`, when the user has one.
    pub authenticator: Option<String>,
}

impl Identity {
    /// The identity of a canonical document, if it has a `userName`.
    pub fn of(doc: &Map<String, Value>) -> Option<Self> {
        let user_name = doc.get("userName")?.as_str()?.to_owned();
        let authenticator = doc
            .get(super::EXT_SCHEMA)
            .and_then(|e| e.get("authenticator"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Some(Self {
            user_name,
            authenticator,
        })
    }

    /// The identity an operation names: its user's, completed from its target, then from
    /// its preconditions (opscenter restates the name it must have: `username`).
    pub fn of_operation(op: &super::Operation) -> Option<Self> {
        let stated = |attr: &str| {
            op.preconditions
                .iter()
                .find(|p| &*p.attribute == attr)
                .and_then(|p| p.equals.as_ref()?.as_str().map(str::to_owned))
        };
        let from_preconditions = stated("userName").map(|user_name| Identity {
            user_name,
            authenticator: stated("ext.authenticator"),
        });
        [
            Identity::of(op.user.exposed()),
            op.target.as_ref().and_then(|t| Identity::of(t.exposed())),
            from_preconditions,
        ]
        .into_iter()
        .flatten()
        .reduce(|mut a, b| {
            a.authenticator = a.authenticator.or(b.authenticator);
            a
        })
    }

    /// Whether a stored user with identity `stored` is this one: the same name, and the same
    /// authenticator where both have one.
    pub fn matches(&self, stored: &Identity) -> bool {
        self.user_name == stored.user_name
            && match (&self.authenticator, &stored.authenticator) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.authenticator {
            Some(a) => write!(f, "{} ({a})", self.user_name),
            None => f.write_str(&self.user_name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identities_match_where_both_know_the_authenticator() {
        let a = Identity {
            user_name: "ann".into(),
            authenticator: Some("LOCAL".into()),
        };
        let b = Identity {
            user_name: "ann".into(),
            authenticator: None,
        };
        let c = Identity {
            user_name: "ann".into(),
            authenticator: Some("LDAP".into()),
        };
        assert!(a.matches(&b) && b.matches(&a) && !a.matches(&c));
    }

    #[test]
    fn targets_name_by_id_then_number_then_name() {
        let doc = |v: Value| UserDoc(v.as_object().cloned().unwrap_or_default());
        let ext = super::super::EXT_SCHEMA;
        assert_eq!(
            Target::of(&doc(json!({"id": "u1", "userName": "ann"}))),
            Some(Target::Id("u1".into()))
        );
        assert_eq!(
            Target::of(&doc(json!({"userName": "ann", ext: {"numericId": 7}}))),
            Some(Target::NumericId(7))
        );
        assert_eq!(
            Target::of(&doc(json!({"userName": "ann"}))),
            Some(Target::Name {
                user_name: "ann".into(),
                authenticator: String::new()
            })
        );
        assert_eq!(Target::of(&doc(json!({"displayName": "Ann"}))), None);
    }
}
