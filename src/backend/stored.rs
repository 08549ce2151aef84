//! What a write returns: the stored user, as a document where the backend built one, or as the
//! JSON a remote backend answered, checked and its `id` read but not built into a document.
//! Most dialects answer a write with a fixed or an empty body: the caller says with [`Want`]
//! whether it needs the document, and only those that render the stored user pay for it.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use serde::de::{self, Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde_json::Value;

use super::BackendError;
use crate::canonical::UserDoc;

/// What the caller of a write needs of the stored user: a backend that receives the user as
/// JSON parses it into a document only for [`Want::User`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Its `id` only (the answer is fixed or empty; the audit trail names the id).
    Id,
    /// The whole document (the answer renders it, or it is copied on).
    User,
}

/// The stored user a backend returned for a write.
pub struct Stored {
    form: Form,
}

enum Form {
    /// A document the backend built (SQLite, the SCIM backend).
    Doc(UserDoc),
    /// A JSON object with an `id` member (a webhook's answer), checked for syntax.
    Json { body: Bytes, id: Option<String> },
}

const NO_USER: &str = "the webhook answered without the stored user";
const NOT_JSON: &str = "a 2xx answer that is not JSON";

impl Stored {
    /// A stored user the backend holds as a document.
    pub fn from_doc(doc: UserDoc) -> Self {
        Self {
            form: Form::Doc(doc),
        }
    }

    /// A stored user answered as JSON: `body` must be one object with an `id` member (502
    /// otherwise). Its syntax is checked in full and its `id` read; no document is built.
    fn from_json(body: Bytes) -> Result<Self, BackendError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(BackendError::Failed(NO_USER.into()));
        }
        let text = std::str::from_utf8(&body).map_err(|_| BackendError::Failed(NOT_JSON.into()))?;
        let mut de = serde_json::Deserializer::from_str(text);
        let found = de
            .deserialize_map(IdVisitor)
            .and_then(|found| de.end().map(|()| found))
            .map_err(|e| {
                if e.classify() == serde_json::error::Category::Data {
                    BackendError::Failed(NO_USER.into())
                } else {
                    BackendError::Failed(NOT_JSON.into())
                }
            })?;
        let Some(id) = found else {
            return Err(BackendError::Failed(NO_USER.into()));
        };
        Ok(Self {
            form: Form::Json { body, id },
        })
    }

    /// A stored user answered as JSON, parsed into a document at once (for a caller that
    /// needs it whole): one object with an `id` member, else a 502.
    pub fn user_from_json(body: &[u8]) -> Result<UserDoc, BackendError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(BackendError::Failed(NO_USER.into()));
        }
        match serde_json::from_slice(body) {
            Ok(Value::Object(user)) if user.contains_key("id") => Ok(UserDoc(user)),
            Ok(_) => Err(BackendError::Failed(NO_USER.into())),
            Err(_) => Err(BackendError::Failed(NOT_JSON.into())),
        }
    }

    /// The stored user answered as JSON, in the form `want` asks for: parsed once into a
    /// document, or checked and its `id` read.
    pub fn from_answer(body: Bytes, want: Want) -> Result<Self, BackendError> {
        match want {
            Want::User => Self::user_from_json(&body).map(Self::from_doc),
            Want::Id => Self::from_json(body),
        }
    }

    /// The stored user's canonical `id`, when it is a string.
    pub fn id(&self) -> Option<&str> {
        match &self.form {
            Form::Doc(d) => d.id(),
            Form::Json { id, .. } => id.as_deref(),
        }
    }

    /// The stored user as a document (parsed now when it was answered as JSON).
    pub fn doc(&self) -> Result<Cow<'_, UserDoc>, BackendError> {
        match &self.form {
            Form::Doc(d) => Ok(Cow::Borrowed(d)),
            Form::Json { body, .. } => Self::user_from_json(body).map(Cow::Owned),
        }
    }

    /// The stored user as a document, taken.
    pub fn into_doc(self) -> Result<UserDoc, BackendError> {
        match self.form {
            Form::Doc(d) => Ok(d),
            Form::Json { body, .. } => Self::user_from_json(&body),
        }
    }
}

impl fmt::Debug for Stored {
    /// The id only: the stored user holds secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stored").field("id", &self.id()).finish()
    }
}

/// Walks one JSON object: `Some(id)` when it has an `id` member (`Some(None)` when that is not
/// a string), `None` when it has none; every other member skipped without being kept.
struct IdVisitor;

impl<'de> Visitor<'de> for IdVisitor {
    type Value = Option<Option<String>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a user object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<Key>()? {
            if key.0 {
                let v: Value = map.next_value()?;
                found = Some(v.as_str().map(str::to_owned));
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// A member name, kept only as whether it is `id` (no allocation).
struct Key(bool);

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(Key(v == "id"))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> Result<Stored, BackendError> {
        Stored::from_json(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn reads_the_id_and_parses_on_demand() {
        let s = json(r#"{"userName":"ann","emails":[{"value":"a@x"}],"id":"u-1"}"#).unwrap();
        assert_eq!(s.id(), Some("u-1"));
        let doc = s.doc().unwrap();
        assert_eq!(doc.0["userName"], "ann");
        assert_eq!(s.into_doc().unwrap().id(), Some("u-1"));
    }

    #[test]
    fn a_user_parsed_at_once_must_be_an_object_with_an_id() {
        let u = Stored::user_from_json(br#"{"id":"u-3","userName":"bo"}"#).unwrap();
        assert_eq!(u.id(), Some("u-3"));
        for body in [&b""[..], b"{}", b"[]", b"{\"id\""] {
            assert!(matches!(
                Stored::user_from_json(body),
                Err(BackendError::Failed(_))
            ));
        }
    }

    #[test]
    fn escaped_names_are_read() {
        let s = json(r#"{"\u0069d":"u-2"}"#).unwrap();
        assert_eq!(s.id(), Some("u-2"));
    }

    #[test]
    fn an_id_that_is_not_a_string_is_kept_as_none() {
        let s = json(r#"{"id":7}"#).unwrap();
        assert_eq!(s.id(), None);
    }

    #[test]
    fn refuses_what_is_not_a_stored_user() {
        for (body, want) in [
            (r#"{"userName":"ann"}"#, NO_USER),
            (r#"[{"id":"x"}]"#, NO_USER),
            (r#""id""#, NO_USER),
            (" \n", NO_USER),
            (r#"{"id":"x""#, "not JSON"),
            (r#"{"id":"x"} trailing"#, "not JSON"),
            (r#"{"id":"x","a":[1,}"#, "not JSON"),
            ("{\"id\":\"\u{7f}x\", \"b\": \"\\q\"}", "not JSON"),
        ] {
            match json(body) {
                Err(BackendError::Failed(m)) => assert!(m.contains(want), "{body}: {m}"),
                other => panic!("{body}: {other:?}"),
            }
        }
        assert!(matches!(
            Stored::from_json(Bytes::from_static(b"{\"id\":\"\xff\"}")),
            Err(BackendError::Failed(_))
        ));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!(
            r#"{{"id":"x","a":{}{}}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        // Skipping needs no stack (serde_json skips iteratively); building the document does,
        // and refuses past its depth limit.
        match json(&deep) {
            Ok(s) => assert!(matches!(s.doc(), Err(BackendError::Failed(_)))),
            Err(e) => assert!(matches!(e, BackendError::Failed(_))),
        }
    }
}
