//! Secrets that cannot be printed by accident.
//!
//! [`Secret`] holds a password or shared secret. Its `Debug`, `Display` and `Serialize`
//! all give `***`; the value is reached only through [`Secret::expose`], so every place
//! that handles the clear text is greppable.

use std::fmt;

use serde::{Serialize, Serializer};
use subtle::ConstantTimeEq;

/// The text every redacted value prints as.
pub const REDACTED: &str = "***";

/// A secret string: redacted in `Debug`, `Display` and `Serialize`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a clear-text secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The clear text. Call only where the secret must leave the process (backend, check).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares with `other` in time independent of where the two differ.
    pub fn ct_eq(&self, other: &[u8]) -> bool {
        constant_time_eq(self.0.as_bytes(), other)
    }
}

/// Constant-time byte comparison (the length is not hidden, the content is).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

impl schemars::JsonSchema for Secret {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "description": "A secret: never logged or printed." })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_prints_as_stars_everywhere() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
        assert!(s.ct_eq(b"hunter2"));
        assert!(!s.ct_eq(b"hunter3"));
        assert!(!s.ct_eq(b"hunter"));
    }
}
