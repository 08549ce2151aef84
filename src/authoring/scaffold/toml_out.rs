//! Writing TOML by hand, so that the skeleton keeps comments and the shipped files' layout:
//! inline values from JSON, keys quoted only where they must be, comments wrapped.

use serde_json::Value;

/// A TOML basic string.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A key: bare when it may be, quoted otherwise.
pub fn key(k: &str) -> String {
    let bare = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare { k.to_owned() } else { string(k) }
}

/// A JSON value as an inline TOML value; `None` for a `null` (TOML has none), also inside.
pub fn inline(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s),
        Value::Array(a) => {
            let items: Option<Vec<String>> = a.iter().map(inline).collect();
            format!("[{}]", items?.join(", "))
        }
        Value::Object(o) if o.is_empty() => "{}".to_owned(),
        Value::Object(o) => {
            let mut parts = Vec::with_capacity(o.len());
            for (k, v) in o {
                parts.push(format!("{} = {}", key(k), inline(v)?));
            }
            format!("{{ {} }}", parts.join(", "))
        }
    })
}

/// `text` as `# ` comment lines of at most `width` characters, each prefixed by `indent`.
pub fn comment(text: &str, indent: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for w in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + w.len() > width {
            out.push_str(&format!("{indent}# {line}\n"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(w);
    }
    if !line.is_empty() {
        out.push_str(&format!("{indent}# {line}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inline_values_parse_back() {
        let v = json!({"a b": [1, "x\"y\\z\n"], "ok": {"t": true}, "e": {}});
        let text = format!("v = {}", inline(&v).unwrap());
        let back: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(serde_json::to_value(&back["v"]).unwrap(), v);
        assert_eq!(inline(&json!([1, null])), None);
    }

    #[test]
    fn comments_wrap() {
        let c = comment("one two three four", "", 9);
        assert_eq!(c, "# one two\n# three\n# four\n");
    }
}
