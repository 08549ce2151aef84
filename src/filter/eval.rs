//! A resolved filter evaluated on a canonical document (what a backend that cannot run the
//! filter itself does), and the comparison every backend shares, so that a filter means the
//! same on each.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::{Attr, Compare, Filter, Kind, Op};

impl Filter {
    /// Whether `doc` (a resource, or inside a value path an element) matches.
    pub fn matches(&self, doc: &Map<String, Value>) -> bool {
        match self {
            Filter::And(fs) => fs.iter().all(|f| f.matches(doc)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(doc)),
            Filter::Not(f) => !f.matches(doc),
            Filter::Present(a) => values(doc, &a.keys).iter().any(|v| present(v)),
            Filter::Compare(c) => holds(c, &values(doc, &c.attr.keys)),
            Filter::Has(a, f) => values(doc, &a.keys)
                .iter()
                .filter_map(|v| v.as_object())
                .any(|elem| f.matches(elem)),
        }
    }
}

/// Whether a comparison holds for an attribute's values (any one of them; `ne` when none is
/// equal, so also when it has none).
pub(super) fn holds(c: &Compare, vals: &[&Value]) -> bool {
    match c.op {
        Op::Ne => !vals.iter().any(|v| compare(Op::Eq, &c.attr, v, &c.value)),
        op => {
            if c.value.is_null() {
                return !vals.iter().any(|v| present(v));
            }
            vals.iter().any(|v| compare(op, &c.attr, v, &c.value))
        }
    }
}

/// The member `key` of `m`, spelled as the schema does or in any case.
fn member<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    m.get(key).or_else(|| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// The values at `keys`, lists flattened at each step.
pub fn values<'a>(doc: &'a Map<String, Value>, keys: &[String]) -> Vec<&'a Value> {
    let mut current: Vec<&Value> = Vec::new();
    let Some((first, rest)) = keys.split_first() else {
        return current;
    };
    if let Some(v) = member(doc, first) {
        current.push(v);
    }
    for key in rest {
        let mut next = Vec::new();
        for v in current {
            match v {
                Value::Array(items) => next.extend(
                    items
                        .iter()
                        .filter_map(Value::as_object)
                        .filter_map(|o| member(o, key)),
                ),
                Value::Object(o) => next.extend(member(o, key)),
                _ => {}
            }
        }
        current = next;
    }
    current
        .into_iter()
        .flat_map(|v| match v {
            Value::Array(items) => items.iter().collect::<Vec<_>>(),
            v => vec![v],
        })
        .collect()
}

/// RFC 7644 `pr`: a value that is not null, not an empty string, list or object.
fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => a.iter().any(present),
        Value::Object(o) => o.values().any(present),
        _ => true,
    }
}

/// Whether `actual op literal` holds, for an attribute of `attr`'s type. `literal` is as the
/// parser made it (typed, folded); `op` is not `ne` (see [`holds`]).
pub fn compare(op: Op, attr: &Attr, actual: &Value, literal: &Value) -> bool {
    match attr.kind {
        Kind::Boolean => {
            let a = match actual {
                Value::Bool(b) => Some(*b),
                Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
                Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
                _ => None,
            };
            matches!(op, Op::Eq) && a.is_some() && a == literal.as_bool()
        }
        Kind::Number => {
            let a = match actual {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            };
            match (a, literal.as_f64()) {
                (Some(a), Some(b)) => ordered(op, a.partial_cmp(&b)),
                _ => false,
            }
        }
        Kind::Complex => false,
        Kind::String | Kind::Reference | Kind::DateTime => {
            let Some(b) = literal.as_str() else {
                return false;
            };
            let owned;
            let a = match actual {
                Value::String(s) => s.as_str(),
                Value::Number(_) | Value::Bool(_) => {
                    owned = actual.to_string();
                    owned.as_str()
                }
                _ => return false,
            };
            if attr.kind == Kind::DateTime
                && let (Ok(x), Ok(y)) = (
                    chrono::DateTime::parse_from_rfc3339(a),
                    chrono::DateTime::parse_from_rfc3339(b),
                )
            {
                return match op {
                    Op::Co | Op::Sw | Op::Ew => text(op, a, b),
                    _ => ordered(op, Some(x.cmp(&y))),
                };
            }
            if attr.case_exact || attr.kind == Kind::DateTime {
                text(op, a, b)
            } else {
                text(op, &a.to_lowercase(), b)
            }
        }
    }
}

fn text(op: Op, a: &str, b: &str) -> bool {
    match op {
        Op::Co => a.contains(b),
        Op::Sw => a.starts_with(b),
        Op::Ew => a.ends_with(b),
        _ => ordered(op, Some(a.cmp(b))),
    }
}

fn ordered(op: Op, o: Option<Ordering>) -> bool {
    let Some(o) = o else { return false };
    match op {
        Op::Eq => o == Ordering::Equal,
        Op::Ne => o != Ordering::Equal,
        Op::Gt => o == Ordering::Greater,
        Op::Ge => o != Ordering::Less,
        Op::Lt => o == Ordering::Less,
        Op::Le => o != Ordering::Greater,
        Op::Co | Op::Sw | Op::Ew => false,
    }
}

/// What `doc` is sorted by for `attr` (RFC 7644 §3.4.2.3): the primary element's value of a
/// multi-valued attribute, else its first; folded when the attribute is not case-exact.
pub fn sort_key(attr: &Attr, doc: &Map<String, Value>) -> Option<Value> {
    let v = if attr.multi && attr.keys.len() > 1 {
        let (list_keys, sub) = attr.keys.split_at(attr.keys.len() - 1);
        let elems = values(doc, list_keys);
        let primary = elems
            .iter()
            .find(|e| e.get("primary").and_then(Value::as_bool) == Some(true))
            .or_else(|| elems.first())?;
        primary
            .as_object()
            .and_then(|o| member(o, &sub[0]))?
            .clone()
    } else {
        (*values(doc, &attr.keys).first()?).clone()
    };
    match v {
        Value::Null => None,
        Value::String(s) if !attr.case_exact && attr.kind != Kind::DateTime => {
            Some(Value::String(s.to_lowercase()))
        }
        v => Some(v),
    }
}

/// The order of two sort keys: numbers by value, strings in code-point order, an absent value
/// after every present one.
pub fn cmp_keys(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (Some(x), Some(y)) => x.to_string().cmp(&y.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::canonical::schemas::USER;
    use crate::filter::parse;

    fn doc() -> serde_json::Map<String, serde_json::Value> {
        let v = json!({
            "id": "2819c223-7f76-453a-919d-413861904646",
            "externalId": "Bjensen",
            "userName": "BJensen@example.com",
            "name": {"familyName": "Jensen", "givenName": "Barbara"},
            "title": "",
            "userType": "Employee",
            "active": true,
            "emails": [
                {"value": "bjensen@example.com", "type": "work", "primary": true},
                {"value": "babs@jensen.org", "type": "home"}
            ],
            "groups": [{"value": "7", "display": "Admins"}],
            "meta": {"created": "2011-08-01T18:29:49.793Z", "lastModified": "2011-08-01T20:00:00+02:00"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "employeeNumber": "701984", "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
            },
            "urn:userbridge:params:scim:schemas:extension:2.0:User": {"numericId": 12, "locked": false}
        });
        v.as_object().cloned().unwrap()
    }

    fn m(f: &str) -> bool {
        parse(f, &USER)
            .unwrap_or_else(|e| panic!("{f}: {e}"))
            .matches(&doc())
    }

    #[test]
    fn every_operator_on_every_type() {
        let yes = [
            r#"userName eq "bjensen@EXAMPLE.com""#,
            r#"userName co "JENSEN""#,
            r#"userName sw "bj""#,
            r#"userName ew ".COM""#,
            r#"userName gt "a""#,
            r#"userName le "bjensen@example.com""#,
            r#"externalId eq "Bjensen""#,
            r#"name.familyName eq "jensen""#,
            r#"emails co "babs""#,
            r#"emails.type eq "home""#,
            r#"emails[type eq "work" and primary eq true]"#,
            r#"emails[type eq "work"].value eq "BJENSEN@example.com""#,
            r#"not (emails[type eq "home" and primary eq true])"#,
            "active eq true",
            r#"active eq "True""#,
            "active ne false",
            "urn:userbridge:params:scim:schemas:extension:2.0:User:numericId gt 11",
            "urn:userbridge:params:scim:schemas:extension:2.0:User:numericId le 12",
            r#"urn:userbridge:params:scim:schemas:extension:2.0:User:locked eq false"#,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value pr"#,
            r#"meta.created gt "2011-08-01T18:00:00Z""#,
            // 20:00 at +02:00 is 18:00 UTC: compared as instants, not as text.
            r#"meta.lastModified lt "2011-08-01T18:29:50Z""#,
            r#"groups.value eq "7""#,
            r#"groups[display eq "admins"]"#,
            "nickName ne \"x\"",
            "nickName eq null",
            "userName ne null",
            r#"title eq "x" or userType eq "employee""#,
            r#"(title pr or userName pr) and not (active eq false)"#,
        ];
        for f in yes {
            assert!(m(f), "{f} should match");
        }
        let no = [
            r#"externalId eq "bjensen""#,
            r#"id eq "2819C223-7F76-453A-919D-413861904646""#,
            "title pr",
            "nickName pr",
            r#"emails[type eq "home" and primary eq true]"#,
            "active eq false",
            r#"userName eq "x" and active eq true"#,
            "urn:userbridge:params:scim:schemas:extension:2.0:User:numericId lt 12",
            r#"meta.lastModified gt "2011-08-01T18:29:50Z""#,
            r#"groups.value eq "8""#,
            r#"nickName eq "x""#,
        ];
        for f in no {
            assert!(!m(f), "{f} should not match");
        }
    }

    #[test]
    fn sort_keys_take_the_primary_value_and_fold_case() {
        use super::{cmp_keys, sort_key};
        let s = crate::filter::Sort::parse("emails", None, &USER).unwrap();
        assert_eq!(
            sort_key(&s.attr, &doc()),
            Some(json!("bjensen@example.com"))
        );
        let s = crate::filter::Sort::parse("userName", Some("descending"), &USER).unwrap();
        assert!(s.descending);
        assert_eq!(
            sort_key(&s.attr, &doc()),
            Some(json!("bjensen@example.com"))
        );
        assert_eq!(
            cmp_keys(None, Some(&json!("a"))),
            std::cmp::Ordering::Greater
        );
        assert!(crate::filter::Sort::parse("name", None, &USER).is_err());
        assert!(crate::filter::Sort::parse("userName", Some("up"), &USER).is_err());
    }
}
