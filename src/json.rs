//! Strict JSON reading for request bodies: duplicate member names are refused (RFC 8259
//! leaves them undefined), nesting is bounded, and no error message echoes input values.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// Why a body is not acceptable JSON.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JsonError {
    /// Not JSON, or not UTF-8; the message has line and column but no content.
    #[error("malformed JSON at line {line}, column {column}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A member name appears twice in one object.
    #[error("duplicate member `{0}`")]
    Duplicate(String),
    /// Deeper than the configured limit.
    #[error("JSON nested deeper than {0} levels")]
    TooDeep(usize),
    /// A number beyond what JSON numbers can hold here.
    #[error("number out of range at line {line}, column {column}")]
    NumberOutOfRange {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// Empty body.
    #[error("the request body is empty")]
    Empty,
}

/// A parsed JSON value that borrows its strings from the request body where it can
/// (no escapes), and keeps object members in a small vector in document order. Rules read
/// it; only what a rule maps is copied into the canonical operation.
#[derive(Debug, Clone, PartialEq)]
pub enum Node<'a> {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number.
    Num(serde_json::Number),
    /// A string.
    Str(Cow<'a, str>),
    /// An array.
    Arr(Vec<Node<'a>>),
    /// An object, members in document order (names are unique).
    Obj(Vec<(Cow<'a, str>, Node<'a>)>),
}

impl<'a> Node<'a> {
    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        match self {
            Node::Obj(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// True for `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Node::Null)
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }

    /// An owned `serde_json::Value` copy.
    pub fn to_value(&self) -> Value {
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Num(n) => Value::Number(n.clone()),
            Node::Str(s) => Value::String(s.to_string()),
            Node::Arr(a) => Value::Array(a.iter().map(Node::to_value).collect()),
            Node::Obj(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.to_string(), v.to_value()))
                    .collect(),
            ),
        }
    }

    /// Converts an owned value (a constant, a default) into a node.
    pub fn from_value(v: &Value) -> Node<'static> {
        match v {
            Value::Null => Node::Null,
            Value::Bool(b) => Node::Bool(*b),
            Value::Number(n) => Node::Num(n.clone()),
            Value::String(s) => Node::Str(Cow::Owned(s.clone())),
            Value::Array(a) => Node::Arr(a.iter().map(Node::from_value).collect()),
            Value::Object(m) => Node::Obj(
                m.iter()
                    .map(|(k, v)| (Cow::Owned(k.clone()), Node::from_value(v)))
                    .collect(),
            ),
        }
    }
}

/// Parses `bytes` as one JSON value, refusing duplicate names and nesting beyond `max_depth`.
pub fn parse_strict(bytes: &[u8], max_depth: usize) -> Result<Value, JsonError> {
    parse_node(bytes, max_depth).map(|n| n.to_value())
}

/// Parses `bytes` into a borrowed [`Node`], refusing duplicate names and deep nesting.
pub fn parse_node(bytes: &[u8], max_depth: usize) -> Result<Node<'_>, JsonError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(JsonError::Empty);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let seed = Strict {
        depth: 0,
        max: max_depth,
    };
    let v = seed.deserialize(&mut de).map_err(classify)?;
    de.end().map_err(classify)?;
    Ok(v)
}

fn classify(e: serde_json::Error) -> JsonError {
    let msg = e.to_string();
    if let Some(rest) = msg.strip_prefix("duplicate member `") {
        let name = rest.split('`').next().unwrap_or_default();
        return JsonError::Duplicate(name.to_owned());
    }
    if let Some(rest) = msg.strip_prefix("nested deeper than ") {
        let n = rest
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        return JsonError::TooDeep(n);
    }
    if msg.starts_with("recursion limit exceeded") {
        return JsonError::TooDeep(128);
    }
    if msg.starts_with("number out of range") {
        return JsonError::NumberOutOfRange {
            line: e.line(),
            column: e.column(),
        };
    }
    JsonError::Syntax {
        line: e.line(),
        column: e.column(),
    }
}

#[derive(Clone, Copy)]
struct Strict {
    depth: usize,
    max: usize,
}

impl Strict {
    fn deeper<E: serde::de::Error>(self) -> Result<Strict, E> {
        if self.depth >= self.max {
            return Err(E::custom(format_args!(
                "nested deeper than {} levels",
                self.max
            )));
        }
        Ok(Strict {
            depth: self.depth + 1,
            max: self.max,
        })
    }
}

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Node<'de>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Node<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

/// A member name, borrowed when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node<'de>, E> {
        Ok(Node::Num(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node<'de>, E> {
        Ok(Node::Num(v.into()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Node<'de>, E> {
        serde_json::Number::from_f64(v)
            .map(Node::Num)
            .ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let inner = self.deeper()?;
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(v) = seq.next_element_seed(inner)? {
            out.push(v);
        }
        Ok(Node::Arr(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let inner = self.deeper()?;
        let mut out: Vec<(Cow<'de, str>, Node<'de>)> = Vec::with_capacity(8);
        // Small objects: a scan finds duplicates faster than hashing; large ones get a set.
        let mut seen: Option<std::collections::HashSet<String>> = None;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let dup = match &mut seen {
                Some(set) => !set.insert(key.to_string()),
                None => out.iter().any(|(k, _)| *k == key),
            };
            if dup {
                return Err(A::Error::custom(format_args!("duplicate member `{key}`")));
            }
            let v = map.next_value_seed(inner)?;
            out.push((key, v));
            if seen.is_none() && out.len() == 32 {
                seen = Some(out.iter().map(|(k, _)| k.to_string()).collect());
            }
        }
        Ok(Node::Obj(out))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    /// The map of a JSON object literal (empty for anything else).
    pub(crate) fn obj(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        match v {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        }
    }

    use super::*;

    #[test]
    fn refuses_duplicates_depth_and_garbage_without_echo() {
        assert_eq!(
            parse_strict(br#"{"a":1,"a":2}"#, 8),
            Err(JsonError::Duplicate("a".into()))
        );
        assert_eq!(parse_strict(br#"[[[1]]]"#, 2), Err(JsonError::TooDeep(2)));
        assert!(parse_strict(br#"[[1]]"#, 2).is_ok());
        assert_eq!(parse_strict(b"  ", 8), Err(JsonError::Empty));
        let e = parse_strict(br#"{"password": "hunter2"#, 8).unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
        assert!(matches!(
            parse_strict(b"{\"a\":\"\xff\"}", 8),
            Err(JsonError::Syntax { .. })
        ));
        assert!(matches!(
            parse_strict(b"[1e999]", 8),
            Err(JsonError::NumberOutOfRange { .. })
        ));
        assert!(matches!(
            parse_strict(b"{} x", 8),
            Err(JsonError::Syntax { .. })
        ));
    }
}
