//! Applying an update's attributes to a stored user: what "absent ≠ null" means for a store.

use serde_json::{Map, Value};

/// Merges `changes` into `stored`: members absent from `changes` stay; `null` removes; objects
/// merge member by member; arrays and scalars replace. A multi-valued attribute whose change
/// holds only its primary element (`emails: [{value, primary: true}]`) replaces the stored
/// primary element and keeps the others.
pub fn merge(stored: &mut Map<String, Value>, changes: Map<String, Value>) {
    for (k, v) in changes {
        match v {
            Value::Null => {
                stored.shift_remove(&k);
            }
            Value::Object(inner) => match stored.get_mut(&k) {
                Some(Value::Object(existing)) => {
                    merge(existing, inner);
                    if existing.is_empty() {
                        stored.shift_remove(&k);
                    }
                }
                _ => {
                    let mut fresh = Map::new();
                    merge(&mut fresh, inner);
                    if !fresh.is_empty() {
                        stored.insert(k, Value::Object(fresh));
                    }
                }
            },
            Value::Array(items) if is_primary_only(&items) => {
                let mut kept: Vec<Value> = match stored.shift_remove(&k) {
                    Some(Value::Array(old)) => old.into_iter().filter(|i| !is_primary(i)).collect(),
                    _ => Vec::new(),
                };
                // A primary element whose value is cleared goes away.
                let mut all: Vec<Value> = items
                    .into_iter()
                    .filter(|i| !i.get("value").is_some_and(Value::is_null))
                    .collect();
                all.append(&mut kept);
                if !all.is_empty() {
                    stored.insert(k, Value::Array(all));
                }
            }
            other => {
                stored.insert(k, other);
            }
        }
    }
}

fn is_primary(item: &Value) -> bool {
    item.get("primary").and_then(Value::as_bool) == Some(true)
}

fn is_primary_only(items: &[Value]) -> bool {
    items.len() == 1 && is_primary(&items[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::json::tests::obj;

    #[test]
    fn absent_stays_null_clears_objects_merge() {
        let mut s = obj(
            json!({"userName": "a", "title": "x", "name": {"givenName": "A", "familyName": "B"}}),
        );
        merge(
            &mut s,
            obj(json!({"title": null, "name": {"givenName": "C", "familyName": null}})),
        );
        assert_eq!(
            Value::Object(s),
            json!({"userName": "a", "name": {"givenName": "C"}})
        );
    }

    #[test]
    fn primary_element_replaced_others_kept() {
        let mut s = obj(
            json!({"emails": [{"value": "w@x", "type": "work"}, {"value": "old@x", "primary": true}]}),
        );
        merge(
            &mut s,
            obj(json!({"emails": [{"value": "new@x", "primary": true}]})),
        );
        assert_eq!(
            Value::Object(s),
            json!({"emails": [{"value": "new@x", "primary": true}, {"value": "w@x", "type": "work"}]})
        );
    }
}
