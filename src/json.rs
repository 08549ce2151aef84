//! Strict JSON reading for request bodies: duplicate member names are refused (RFC 8259
//! leaves them undefined), nesting is bounded, and no error message echoes input values.

use std::fmt;

use serde::de::{DeserializeSeed, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

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

/// Parses `bytes` as one JSON value, refusing duplicate names and nesting beyond `max_depth`.
pub fn parse_strict(bytes: &[u8], max_depth: usize) -> Result<Value, JsonError> {
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
    type Value = Value;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.deeper()?;
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(v) = seq.next_element_seed(inner)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.deeper()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(A::Error::custom(format_args!("duplicate member `{key}`")));
            }
            let v = map.next_value_seed(inner)?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
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
