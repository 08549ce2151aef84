//! Transforms: one step of a field's pipeline, with its reverse for rendering. Errors name
//! the member and never echo the value (it may be a password).

use base64::Engine as _;
use serde_json::Value;

use super::spec::TransformSpec;

/// A compiled transform.
#[derive(Debug, Clone)]
pub enum Transform {
    /// Base64 (standard, padded) ↔ UTF-8 text.
    Base64,
    /// Number ↔ decimal string.
    ToString,
    /// Decimal string ↔ int32.
    ParseInt32,
    /// Remove these characters (input only).
    Strip(Box<str>),
    /// Remove this prefix (input only).
    TrimStart(Box<str>),
    /// Replace text (input only).
    Replace(Box<str>, Box<str>),
    /// Lookup table; keys compared as text, optionally ignoring case.
    Map {
        /// (key compared, lowercased when `ignore_case`; key as written; value), in file order.
        table: Vec<(String, String, Value)>,
        /// The keys as written, for messages.
        shown: Box<str>,
        /// Compare ignoring letter case.
        ignore_case: bool,
    },
    /// The first group of a regular expression the whole string matches (input only).
    Capture(regex::Regex),
}

impl Transform {
    /// The transform as a mapping file names it (`base64`, `strip(" -")`, `map`…).
    pub fn name(&self) -> String {
        match self {
            Self::Base64 => "base64".into(),
            Self::ToString => "to_string".into(),
            Self::ParseInt32 => "parse_int32".into(),
            Self::Strip(s) => format!("strip({s:?})"),
            Self::TrimStart(s) => format!("trim_start({s:?})"),
            Self::Replace(a, b) => format!("replace({a:?} → {b:?})"),
            Self::Map { shown, .. } => format!("map({shown})"),
            Self::Capture(re) => format!("capture({:?})", re.as_str()),
        }
    }

    /// Compiles a spec; `ignore_case` comes from the field rule. The error says what is wrong.
    pub fn compile(spec: &TransformSpec, ignore_case: bool) -> Result<Self, String> {
        Ok(match spec {
            TransformSpec::Capture(re) => {
                let re = regex::Regex::new(re).map_err(|e| crate::diagnostic::regex_message(&e))?;
                if re.captures_len() < 2 {
                    return Err(format!(
                        "`capture` needs a group in `{re}`: write `(…)` around what to keep"
                    ));
                }
                Self::Capture(re)
            }
            TransformSpec::Base64 => Self::Base64,
            TransformSpec::ToString => Self::ToString,
            TransformSpec::ParseInt32 => Self::ParseInt32,
            TransformSpec::Strip(s) => Self::Strip(s.as_str().into()),
            TransformSpec::TrimStart(s) => Self::TrimStart(s.as_str().into()),
            TransformSpec::Replace { from, to } => {
                Self::Replace(from.as_str().into(), to.as_str().into())
            }
            TransformSpec::Map(m) => {
                let table = m
                    .iter()
                    .map(|(k, v)| {
                        (
                            if ignore_case {
                                k.to_lowercase()
                            } else {
                                k.clone()
                            },
                            k.clone(),
                            v.clone(),
                        )
                    })
                    .collect();
                let shown = m.keys().map(String::as_str).collect::<Vec<_>>().join(", ");
                Self::Map {
                    table,
                    shown: shown.into(),
                    ignore_case,
                }
            }
        })
    }

    /// Applies the step to a request value. `Err` is the message tail after the member name.
    pub fn apply(&self, v: Value) -> Result<Value, String> {
        match self {
            Self::Base64 => {
                let Value::String(s) = v else {
                    return Err("must be a Base64 string".into());
                };
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(s.as_bytes())
                    .map_err(|_| "is not valid Base64".to_owned())?;
                String::from_utf8(bytes)
                    .map(Value::String)
                    .map_err(|_| "is not Base64 of UTF-8 text".into())
            }
            Self::ToString => match v {
                Value::Number(n) => Ok(Value::String(n.to_string())),
                other => Ok(other),
            },
            Self::ParseInt32 => {
                let text = v.as_str().ok_or("must be a string of digits")?;
                parse_int32(text)
                    .map(Value::from)
                    .ok_or_else(|| "must be a 32-bit integer written in decimal".into())
            }
            Self::Strip(chars) => Ok(map_str(v, |s| {
                s.chars().filter(|c| !chars.contains(*c)).collect()
            })),
            Self::TrimStart(p) => Ok(map_str(v, |s| s.strip_prefix(&**p).unwrap_or(s).to_owned())),
            Self::Replace(from, to) => Ok(map_str(v, |s| s.replace(&**from, to))),
            Self::Capture(re) => {
                let text = v.as_str().ok_or("must be a string")?;
                re.captures(text)
                    .filter(|c| c.get(0).is_some_and(|m| m.len() == text.len()))
                    .and_then(|c| c.get(1))
                    .map(|m| Value::String(m.as_str().to_owned()))
                    .ok_or_else(|| format!("must match `{}`", re.as_str()))
            }
            Self::Map {
                table,
                shown,
                ignore_case,
            } => {
                let owned;
                let key: &str = match &v {
                    Value::String(s) if *ignore_case && !s.is_ascii() => {
                        owned = s.to_lowercase();
                        &owned
                    }
                    Value::String(s) => s,
                    Value::Number(n) => {
                        owned = n.to_string();
                        &owned
                    }
                    Value::Bool(b) if *b => "true",
                    Value::Bool(_) => "false",
                    _ => "",
                };
                // Table keys are stored lowercased when ignoring case.
                table
                    .iter()
                    .find(|(k, _, _)| {
                        if *ignore_case {
                            k.eq_ignore_ascii_case(key)
                        } else {
                            k == key
                        }
                    })
                    .map(|(_, _, v)| v.clone())
                    .ok_or_else(|| format!("must be one of {shown}"))
            }
        }
    }

    /// The reverse step, for rendering a stored value back into the dialect.
    pub fn reverse(&self, v: Value) -> Value {
        match self {
            Self::Base64 => match v {
                Value::String(s) => {
                    Value::String(base64::engine::general_purpose::STANDARD.encode(s))
                }
                other => other,
            },
            Self::ToString => match &v {
                Value::String(s) => s.parse::<i64>().map(Value::from).unwrap_or(v),
                _ => v,
            },
            Self::ParseInt32 => match v {
                Value::Number(n) => Value::String(n.to_string()),
                other => other,
            },
            Self::Strip(_) | Self::TrimStart(_) | Self::Replace(..) | Self::Capture(_) => v,
            Self::Map { table, .. } => {
                // The first key (as written) that maps to this value.
                table
                    .iter()
                    .find(|(_, _, to)| *to == v)
                    .map(|(_, k, _)| Value::String(k.clone()))
                    .unwrap_or(v)
            }
        }
    }
}

fn map_str(v: Value, f: impl FnOnce(&str) -> String) -> Value {
    match v {
        Value::String(s) => Value::String(f(&s)),
        other => other,
    }
}

/// A canonical decimal int32: optional `-`, no `+`, no leading zero, within range.
pub fn parse_int32(s: &str) -> Option<i32> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base64_round_trips_and_errors_do_not_echo() {
        let t = Transform::Base64;
        assert_eq!(
            t.apply(json!("TjN3LVNlY3JldC1hbm4=")).unwrap(),
            json!("N3w-Secret-ann")
        );
        assert_eq!(
            t.reverse(json!("N3w-Secret-ann")),
            json!("TjN3LVNlY3JldC1hbm4=")
        );
        let e = t.apply(json!("not base64!!")).unwrap_err();
        assert!(!e.contains("not base64!!"));
        assert!(t.apply(json!("/w==")).is_err(), "0xFF is not UTF-8");
    }

    #[test]
    fn int32_parsing_is_strict() {
        assert_eq!(parse_int32("42"), Some(42));
        assert_eq!(parse_int32("2147483647"), Some(i32::MAX));
        for bad in ["4294967296", "+1", "042", "", "1e3", " 1", "2147483648"] {
            assert_eq!(parse_int32(bad), None, "{bad}");
        }
    }

    #[test]
    fn capture_keeps_the_group_of_a_whole_match() {
        let spec = TransformSpec::Capture(r"^byName\(userName='(.+)'\)$".into());
        let t = Transform::compile(&spec, false).unwrap();
        assert_eq!(
            t.apply(json!("byName(userName='ann')")).unwrap(),
            json!("ann")
        );
        assert!(t.apply(json!("byName(userName=ann)")).is_err());
        assert!(Transform::compile(&TransformSpec::Capture("^x$".into()), false).is_err());
        assert!(Transform::compile(&TransformSpec::Capture("(".into()), false).is_err());
    }

    #[test]
    fn map_ignores_case_and_reverses() {
        let table = json!({"ADD": "add", "2": "add"})
            .as_object()
            .unwrap()
            .clone();
        let spec = TransformSpec::Map(table);
        let t = Transform::compile(&spec, true).unwrap();
        assert_eq!(t.apply(json!("add")).unwrap(), json!("add"));
        assert_eq!(t.apply(json!(2)).unwrap(), json!("add"));
        assert!(t.apply(json!("nope")).unwrap_err().contains("ADD"));
        assert_eq!(
            t.reverse(json!("add")),
            json!("ADD"),
            "the first key written wins"
        );
    }
}
