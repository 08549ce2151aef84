//! `userbridge diff`: the users of two backends compared by `userName` (+ `authenticator`),
//! attribute by attribute. A user without an authenticator on one side matches the same-named
//! user on the other. Groups compare by name (ids differ between backends); server-owned
//! attributes (`id`, `meta`, ext `numericId`) and secrets are not compared.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::convert::is_leaf;
use crate::backend::{BackendError, Store};
use crate::canonical::Identity;
use crate::canonical::{ATTRIBUTES, UserDoc, get, location};

/// Users read per page.
const PAGE: usize = 500;

/// One attribute that differs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Difference {
    /// The canonical attribute.
    pub attribute: &'static str,
    /// Its value in A (`null`: unset).
    pub a: Value,
    /// Its value in B.
    pub b: Value,
}

/// The comparison.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Report {
    /// Users in A.
    pub users_a: usize,
    /// Users in B.
    pub users_b: usize,
    /// Users found on both sides.
    pub matched: usize,
    /// Users only in A.
    pub only_in_a: Vec<String>,
    /// Users only in B.
    pub only_in_b: Vec<String>,
    /// Matched users whose attributes differ, by user.
    pub differing: BTreeMap<String, Vec<Difference>>,
    /// The attributes compared.
    pub attributes: Vec<&'static str>,
}

impl Report {
    /// Whether the two backends agree.
    pub fn is_empty(&self) -> bool {
        self.only_in_a.is_empty() && self.only_in_b.is_empty() && self.differing.is_empty()
    }

    /// The report as a readable table.
    pub fn table(&self, a: &str, b: &str) -> String {
        let mut s = String::new();
        let mut line = |t: String| {
            s.push_str(&t);
            s.push('\n');
        };
        line(format!(
            "{a}: {} users, {b}: {} users, matched: {}, only in {a}: {}, only in {b}: {}, differing: {}",
            self.users_a,
            self.users_b,
            self.matched,
            self.only_in_a.len(),
            self.only_in_b.len(),
            self.differing.len()
        ));
        for (side, names) in [(a, &self.only_in_a), (b, &self.only_in_b)] {
            if !names.is_empty() {
                line(format!("\nonly in {side}:"));
                for n in names {
                    line(format!("  {n}"));
                }
            }
        }
        if !self.differing.is_empty() {
            let rows: Vec<[String; 4]> = self
                .differing
                .iter()
                .flat_map(|(user, diffs)| {
                    diffs.iter().map(move |d| {
                        [
                            user.clone(),
                            d.attribute.to_owned(),
                            d.a.to_string(),
                            d.b.to_string(),
                        ]
                    })
                })
                .collect();
            let head = [
                "user".into(),
                "attribute".into(),
                a.to_owned(),
                b.to_owned(),
            ];
            let mut widths = [0usize; 4];
            for r in std::iter::once(&head).chain(&rows) {
                for (w, c) in widths.iter_mut().zip(r) {
                    *w = (*w).max(c.chars().count()).min(40);
                }
            }
            line(String::new());
            for r in std::iter::once(&head).chain(&rows) {
                let cells: Vec<String> = r
                    .iter()
                    .zip(widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                line(cells.join("  ").trim_end().to_owned());
            }
        }
        s
    }
}

/// Every user of `store`.
pub async fn all_users(store: &dyn Store) -> Result<Vec<UserDoc>, BackendError> {
    let mut out = Vec::new();
    loop {
        let (users, total) = store.list(None, out.len(), PAGE).await?;
        let n = users.len();
        out.extend(users);
        if n == 0 || out.len() >= total {
            return Ok(out);
        }
    }
}

/// The attributes compared by default: every writable, non-secret leaf, and `groups`.
pub fn default_attributes() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = ATTRIBUTES
        .iter()
        .filter(|a| !a.read_only && !a.secret && is_leaf(a.name))
        .map(|a| a.name)
        .collect();
    v.push("groups");
    v
}

/// Compares `a` with `b` on `attributes`.
pub fn compare(a: &[UserDoc], b: &[UserDoc], attributes: Vec<&'static str>) -> Report {
    let mut report = Report {
        users_a: a.len(),
        users_b: b.len(),
        attributes,
        ..Report::default()
    };
    // B by name; each B user is matched at most once.
    let mut by_name: BTreeMap<&str, Vec<(Identity, &UserDoc, bool)>> = BTreeMap::new();
    for u in b {
        if let Some(id) = Identity::of(u.exposed()) {
            let name: &str = u.exposed()["userName"].as_str().unwrap_or_default();
            by_name.entry(name).or_default().push((id, u, false));
        }
    }
    for u in a {
        let Some(ida) = Identity::of(u.exposed()) else {
            continue;
        };
        let candidates = by_name.get_mut(ida.user_name.as_str());
        // An exact identity first, then one where a side has no authenticator.
        let hit = candidates.and_then(|c| {
            let exact = c.iter().position(|(idb, _, used)| !used && *idb == ida);
            let loose = || {
                c.iter()
                    .position(|(idb, _, used)| !used && ida.matches(idb))
            };
            let i = exact.or_else(loose)?;
            c[i].2 = true;
            Some(c[i].1)
        });
        match hit {
            None => report.only_in_a.push(ida.to_string()),
            Some(ub) => {
                report.matched += 1;
                let diffs = differences(u.exposed(), ub.exposed(), &report.attributes);
                if !diffs.is_empty() {
                    report.differing.insert(ida.to_string(), diffs);
                }
            }
        }
    }
    for list in by_name.values() {
        for (id, _, used) in list {
            if !used {
                report.only_in_b.push(id.to_string());
            }
        }
    }
    report.only_in_a.sort();
    report.only_in_b.sort();
    report
}

fn differences(
    a: &Map<String, Value>,
    b: &Map<String, Value>,
    attributes: &[&'static str],
) -> Vec<Difference> {
    let mut out = Vec::new();
    for &attr in attributes {
        let (va, vb) = if attr == "groups" {
            (group_names(a), group_names(b))
        } else {
            (value_of(a, attr), value_of(b, attr))
        };
        if va != vb {
            out.push(Difference {
                attribute: attr,
                a: va,
                b: vb,
            });
        }
    }
    out
}

/// An attribute's value, with unset, `null` and empty lists all `null`.
fn value_of(doc: &Map<String, Value>, attr: &str) -> Value {
    match get(doc, &location(attr)) {
        None | Some(Value::Null) => Value::Null,
        Some(Value::Array(a)) if a.is_empty() => Value::Null,
        Some(v) => v.clone(),
    }
}

/// The user's group names, sorted (`null` when none).
fn group_names(doc: &Map<String, Value>) -> Value {
    let mut names: Vec<&str> = doc
        .get("groups")
        .and_then(Value::as_array)
        .map(|g| {
            g.iter()
                .filter_map(|g| g.get("display").or_else(|| g.get("value"))?.as_str())
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        return Value::Null;
    }
    names.sort_unstable();
    json!(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(v: Value) -> UserDoc {
        match v {
            Value::Object(m) => UserDoc(m),
            _ => unreachable!(),
        }
    }

    #[test]
    fn matches_by_name_and_authenticator_and_names_differences() {
        let ext = crate::canonical::EXT_SCHEMA;
        let a = vec![
            user(json!({"userName": "ann", ext: {"authenticator": "LOCAL"}, "title": "x"})),
            user(json!({"userName": "bob", ext: {"authenticator": "LOCAL"}})),
            user(json!({"userName": "cy", "groups": [{"value": "1", "display": "Ops"}]})),
        ];
        let b = vec![
            user(json!({"userName": "ann", "title": "y"})),
            user(json!({"userName": "cy", "groups": [{"value": "9", "display": "Ops"}]})),
            user(json!({"userName": "dee"})),
        ];
        let r = compare(&a, &b, vec!["title", "groups"]);
        assert_eq!(r.matched, 2);
        assert_eq!(r.only_in_a, ["bob (LOCAL)"]);
        assert_eq!(r.only_in_b, ["dee"]);
        assert_eq!(r.differing.len(), 1);
        assert_eq!(r.differing["ann (LOCAL)"][0].attribute, "title");
        assert!(
            r.table("old", "new")
                .contains("ann (LOCAL)  title      \"x\"  \"y\"")
        );
    }
}
