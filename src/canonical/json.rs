//! A user document written as JSON without copying it: `schemas` first when asked for, secrets
//! as `***` while serializing — never by redacting a clone of the document.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::{Step, schemas_of, secret_locations};
use crate::redact::REDACTED;

/// How [`DocJson`] writes a document.
#[derive(Debug, Clone, Copy)]
pub struct DocJson<'a> {
    doc: &'a Map<String, Value>,
    schemas: bool,
    redact: bool,
}

impl<'a> DocJson<'a> {
    /// Secrets as `***`, no `schemas` member added: logs, the audit trail, `Debug`.
    pub fn redacted(doc: &'a Map<String, Value>) -> Self {
        Self {
            doc,
            schemas: false,
            redact: true,
        }
    }

    /// `schemas` first, secrets as `***`: an operation shown to a person.
    pub fn redacted_with_schemas(doc: &'a Map<String, Value>) -> Self {
        Self {
            doc,
            schemas: true,
            redact: true,
        }
    }

    /// `schemas` first, secrets in clear: the body a backend receives.
    pub fn exposed_with_schemas(doc: &'a Map<String, Value>) -> Self {
        Self {
            doc,
            schemas: true,
            redact: false,
        }
    }
}

/// Every secret location, as a bit set over [`secret_locations`] (at most 64 of them: the
/// catalogue has three).
fn every_secret() -> u64 {
    match secret_locations().len() {
        n if n >= 64 => u64::MAX,
        n => (1u64 << n) - 1,
    }
}

impl Serialize for DocJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mask = if self.redact { every_secret() } else { 0 };
        let mut m = s.serialize_map(None)?;
        if self.schemas {
            // A document that names its schemas keeps them (as `with_schemas` does).
            match self.doc.get("schemas") {
                Some(own) => m.serialize_entry("schemas", own)?,
                None => m.serialize_entry("schemas", &schemas_of(self.doc))?,
            }
        }
        for (k, v) in self.doc {
            if self.schemas && k == "schemas" {
                continue;
            }
            m.serialize_entry(k, &member(v, k, mask, 0))?;
        }
        m.end()
    }
}

/// A value below a document, with the secret locations (`mask`) that pass through it.
struct Masked<'a> {
    value: &'a Value,
    mask: u64,
    depth: usize,
}

enum Member<'a> {
    Redacted,
    Value(Masked<'a>),
}

/// What member `key` (holding `value`, at `depth`) is written as: `***` when a secret location
/// ends at it and it holds something, else its value with the locations that go on below it.
fn member<'a>(value: &'a Value, key: &str, mask: u64, depth: usize) -> Member<'a> {
    let mut below = 0;
    if mask != 0 {
        for (i, loc) in secret_locations().iter().enumerate().take(64) {
            if mask & (1 << i) == 0 {
                continue;
            }
            if matches!(loc.get(depth), Some(Step::Key(k)) if **k == *key) {
                if loc.len() == depth + 1 {
                    if !value.is_null() {
                        return Member::Redacted;
                    }
                } else {
                    below |= 1 << i;
                }
            }
        }
    }
    Member::Value(Masked {
        value,
        mask: below,
        depth: depth + 1,
    })
}

impl Serialize for Member<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Member::Redacted => s.serialize_str(REDACTED),
            Member::Value(m) => m.serialize(s),
        }
    }
}

impl Serialize for Masked<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.value {
            Value::Object(inner) if self.mask != 0 => {
                let mut m = s.serialize_map(Some(inner.len()))?;
                for (k, v) in inner {
                    m.serialize_entry(k, &member(v, k, self.mask, self.depth))?;
                }
                m.end()
            }
            v => v.serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::canonical::{UserDoc, with_schemas};

    fn doc() -> Map<String, Value> {
        let v = json!({
            "userName": "ann",
            "password": "Tr0ub4dor&3",
            "emails": [{"value": "a@x", "primary": true}],
            super::super::EXT_SCHEMA: {
                "mfa": {"enabled": true, "secret": "JBSWY3DP"},
                "sharedSecret": null,
                "orgId": "emea"
            }
        });
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn redacting_while_writing_is_redacting_a_copy() {
        let d = doc();
        let written = serde_json::to_value(DocJson::redacted(&d)).unwrap();
        assert_eq!(written, Value::Object(UserDoc(d.clone()).redacted()));
        assert!(!written.to_string().contains("Tr0ub4dor"));
        assert!(!written.to_string().contains("JBSWY3DP"));
        // A cleared secret stays cleared, not `***`.
        assert_eq!(
            written[super::super::EXT_SCHEMA]["sharedSecret"],
            Value::Null
        );
    }

    #[test]
    fn with_schemas_writes_what_with_schemas_builds() {
        let d = doc();
        let text = serde_json::to_string(&DocJson::exposed_with_schemas(&d)).unwrap();
        assert_eq!(
            text,
            serde_json::to_string(&with_schemas(d.clone())).unwrap()
        );
        let text = serde_json::to_string(&DocJson::redacted_with_schemas(&d)).unwrap();
        assert_eq!(
            text,
            serde_json::to_string(&with_schemas(UserDoc(d).redacted())).unwrap()
        );
    }
}
