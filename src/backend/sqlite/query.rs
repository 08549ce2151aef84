//! A `/scim/v2` query run in SQL: the filter becomes a `WHERE` clause, the sort an `ORDER BY`,
//! the page `LIMIT`/`OFFSET`, so that only matching rows leave the database.
//!
//! Each comparison reads the attribute with SQLite's JSON functions (`doc -> '$."emails"'`, a
//! value path as `EXISTS (… json_each …)`; `id`, `numericId`, `meta` and `groups` from their
//! columns and tables) and compares through `scim_test`, a function registered on the
//! connection that runs [`crate::filter`]'s own comparison: a filter means the same here as
//! where it is evaluated in memory. `userName eq` also narrows by the `lower(user_name)`
//! index, and `id eq` by the `id` column, so that the lookups identity providers make before
//! every write read one row.

use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, params_from_iter};
use serde_json::{Map, Value};

use super::{Row, db, into_doc, row};
use crate::backend::{BackendError, Query};
use crate::canonical::{EXT_SCHEMA, UserDoc};
use crate::filter::{Attr, Compare, Filter, Kind, Lookup, Op, Sort};

/// The index a case-insensitive `userName eq` is served by (SQLite's `lower` folds ASCII).
pub const INDEX: &str =
    "CREATE INDEX IF NOT EXISTS users_user_name_lower ON users (lower(user_name))";

/// `Op::code` for `pr` in `scim_test`.
const PRESENT: u8 = 255;

/// Registers `scim_test` and `scim_key` on `conn`.
pub fn register(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("scim_test", 5, flags, test)?;
    conn.create_scalar_function("scim_key", 3, flags, key)
}

/// The attribute a function call's constant arguments describe: its sub-attribute keys (a
/// JSON array) and its flags (kind, case-exactness, plurality).
fn attr_of(keys: &str, flags: i64) -> Attr {
    let mut all = vec!["_".to_owned()];
    all.extend(serde_json::from_str::<Vec<String>>(keys).unwrap_or_default());
    let kind = match flags & 0xf {
        1 => Kind::Boolean,
        2 => Kind::Number,
        3 => Kind::DateTime,
        4 => Kind::Reference,
        5 => Kind::Complex,
        _ => Kind::String,
    };
    Attr {
        path: String::new(),
        keys: all,
        kind,
        case_exact: flags & 0x10 != 0,
        multi: flags & 0x20 != 0,
    }
}

fn flags_of(attr: &Attr) -> i64 {
    let kind = match attr.kind {
        Kind::String => 0,
        Kind::Boolean => 1,
        Kind::Number => 2,
        Kind::DateTime => 3,
        Kind::Reference => 4,
        Kind::Complex => 5,
    };
    kind | if attr.case_exact { 0x10 } else { 0 } | if attr.multi { 0x20 } else { 0 }
}

/// An attribute's value as SQLite hands it over, wrapped as the one member `_` of a document.
fn wrapped(v: ValueRef<'_>) -> Map<String, Value> {
    let value = match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::from(n),
        ValueRef::Real(f) => Value::from(f),
        ValueRef::Text(t) | ValueRef::Blob(t) => {
            let t = String::from_utf8_lossy(t);
            serde_json::from_str(&t).unwrap_or(Value::String(t.into_owned()))
        }
    };
    let mut m = Map::with_capacity(1);
    m.insert("_".into(), value);
    m
}

/// `scim_test(value, keys, op, flags, literal)`: whether the comparison holds. The
/// comparison is made once per statement from its constant arguments.
fn test(ctx: &mut Context<'_>) -> rusqlite::Result<bool> {
    let doc = wrapped(ctx.get_raw(0));
    let keys: String = ctx.get(1)?;
    let op: i64 = ctx.get(2)?;
    let flags: i64 = ctx.get(3)?;
    let filter = ctx.get_or_create_aux(4, |v| -> rusqlite::Result<Option<Filter>> {
        let attr = attr_of(&keys, flags);
        if op == i64::from(PRESENT) {
            return Ok(Some(Filter::Present(attr)));
        }
        let value: Value =
            serde_json::from_str(v.as_str().unwrap_or("null")).unwrap_or(Value::Null);
        Ok(u8::try_from(op).ok().and_then(Op::from_code).map(|op| {
            Filter::Compare(Compare {
                attr,
                op,
                sent: value.clone(),
                value,
            })
        }))
    })?;
    Ok(filter.as_ref().as_ref().is_some_and(|f| f.matches(&doc)))
}

/// `scim_key(value, keys, flags)`: what a row sorts by (NULL when it has no value).
fn key(ctx: &mut Context<'_>) -> rusqlite::Result<SqlValue> {
    let doc = wrapped(ctx.get_raw(0));
    let keys: String = ctx.get(1)?;
    let flags: i64 = ctx.get(2)?;
    let attr = attr_of(&keys, flags);
    Ok(match crate::filter::sort_key(&attr, &doc) {
        None => SqlValue::Null,
        Some(Value::Bool(b)) => SqlValue::Integer(i64::from(b)),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(SqlValue::Integer)
            .or_else(|| n.as_f64().map(SqlValue::Real))
            .unwrap_or(SqlValue::Null),
        Some(Value::String(s)) => SqlValue::Text(s),
        Some(v) => SqlValue::Text(v.to_string()),
    })
}

/// The parameters of the statement being written.
#[derive(Default)]
struct Sql {
    params: Vec<SqlValue>,
}

impl Sql {
    fn param(&mut self, v: SqlValue) -> String {
        self.params.push(v);
        format!("?{}", self.params.len())
    }
}

/// A JSON path member, quoted (`"urn:…:User"`).
fn member(key: &str) -> String {
    format!("\"{}\"", key.replace('"', ""))
}

/// The SQL that yields the attribute as JSON, and the sub-attribute keys left to walk.
/// `element` is the alias of a value path's `json_each`, whose elements the attribute is of.
fn source<'a>(attr: &'a Attr, element: Option<&str>) -> (String, &'a [String]) {
    if let Some(e) = element {
        return (format!("{e}.value"), &attr.keys[..]);
    }
    let ext = attr.keys.first().is_some_and(|k| k.starts_with("urn:"));
    let own = if ext { 2 } else { 1 };
    let (head, rest) = attr.keys.split_at(own.min(attr.keys.len()));
    let first = head.first().map(String::as_str).unwrap_or("");
    let sql = match (first, head.get(1).map(String::as_str)) {
        ("id", None) => "json_quote(id)".to_owned(),
        ("meta", None) => "json_object('resourceType', 'User', 'created', created, \
             'lastModified', modified, 'version', 'W/\"' || version || '\"')"
            .to_owned(),
        ("groups", None) => "(SELECT json_group_array(json_object('value', CAST(g.id AS TEXT), \
             'display', g.name)) FROM groups g WHERE g.id IN \
             (SELECT group_id FROM members WHERE user_numeric_id = users.numeric_id))"
            .to_owned(),
        (u, Some("numericId")) if u == EXT_SCHEMA => "numeric_id".to_owned(),
        _ => {
            let path: Vec<String> = head.iter().map(|k| member(k)).collect();
            format!("(doc -> '$.{}')", path.join("."))
        }
    };
    (sql, rest)
}

fn keys_json(keys: &[String]) -> SqlValue {
    SqlValue::Text(serde_json::to_string(keys).unwrap_or_else(|_| "[]".into()))
}

fn leaf(sql: &mut Sql, attr: &Attr, element: Option<&str>, op: u8, literal: &Value) -> String {
    let (src, rest) = source(attr, element);
    let keys = sql.param(keys_json(rest));
    let lit = sql.param(SqlValue::Text(literal.to_string()));
    let call = format!("scim_test({src}, {keys}, {op}, {}, {lit})", flags_of(attr));
    // The lookups made before every write use the columns' indexes as well.
    if element.is_none() && op == Op::Eq.code() {
        match Lookup::of_eq(attr, literal) {
            Some(Lookup::UserName(s)) => {
                let p = sql.param(SqlValue::Text(s.to_owned()));
                return format!("(lower(user_name) = {p} AND {call})");
            }
            Some(Lookup::Id(s)) => {
                let p = sql.param(SqlValue::Text(s.to_owned()));
                return format!("id = {p}");
            }
            None => {}
        }
    }
    call
}

fn write(sql: &mut Sql, f: &Filter, element: Option<&str>, depth: usize) -> String {
    match f {
        Filter::And(fs) | Filter::Or(fs) => {
            let sep = if matches!(f, Filter::And(_)) {
                " AND "
            } else {
                " OR "
            };
            let parts: Vec<String> = fs.iter().map(|x| write(sql, x, element, depth)).collect();
            format!("({})", parts.join(sep))
        }
        Filter::Not(x) => format!("(NOT {})", write(sql, x, element, depth)),
        Filter::Present(a) => leaf(sql, a, element, PRESENT, &Value::Null),
        Filter::Compare(c) => leaf(sql, &c.attr, element, c.op.code(), &c.value),
        Filter::Has(a, inner) => {
            let (src, _) = source(a, None);
            let alias = format!("e{depth}");
            let cond = write(sql, inner, Some(&alias), depth + 1);
            format!("EXISTS (SELECT 1 FROM json_each({src}) {alias} WHERE {cond})")
        }
    }
}

fn order(sql: &mut Sql, sort: &Sort) -> String {
    let (src, rest) = source(&sort.attr, None);
    let keys = sql.param(keys_json(rest));
    let k = format!("scim_key({src}, {keys}, {})", flags_of(&sort.attr));
    if sort.descending {
        format!("{k} IS NULL DESC, {k} DESC, numeric_id")
    } else {
        format!("{k} IS NULL, {k}, numeric_id")
    }
}

/// Runs `q` on the store's connection.
pub fn run(tx: &Connection, q: &Query) -> Result<(Vec<UserDoc>, usize), BackendError> {
    let mut sql = Sql::default();
    let cond = q
        .filter
        .as_ref()
        .map_or_else(|| "1".to_owned(), |f| write(&mut sql, f, None, 0));
    let total: i64 = tx
        .prepare_cached(&format!("SELECT count(*) FROM users WHERE {cond}"))
        .map_err(db)?
        .query_row(params_from_iter(sql.params.iter()), |r| r.get(0))
        .map_err(db)?;
    let by = match &q.sort {
        Some(s) => order(&mut sql, s),
        None => "numeric_id".to_owned(),
    };
    let limit = sql.param(SqlValue::Integer(
        i64::try_from(q.count).unwrap_or(i64::MAX),
    ));
    let offset = sql.param(SqlValue::Integer(
        i64::try_from(q.start).unwrap_or(i64::MAX),
    ));
    let mut stmt = tx
        .prepare_cached(&format!(
            "SELECT numeric_id, id, doc, '{{}}', created, modified, version FROM users \
             WHERE {cond} ORDER BY {by} LIMIT {limit} OFFSET {offset}"
        ))
        .map_err(db)?;
    let rows: Vec<Row> = stmt
        .query_map(params_from_iter(sql.params.iter()), row)
        .map_err(db)?
        .collect::<Result<_, _>>()
        .map_err(db)?;
    drop(stmt);
    let users = rows
        .into_iter()
        .map(|r| into_doc(tx, r, false).map(UserDoc))
        .collect::<Result<_, _>>()?;
    Ok((users, usize::try_from(total).unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::canonical::schemas::USER;
    use crate::canonical::{OpKind, Operation};
    use crate::filter::{Sort, parse};

    fn store() -> (Connection, Vec<UserDoc>) {
        let conn = super::super::test_connection();
        conn.execute(
            "INSERT INTO groups (id, name) VALUES (7, 'Admins'), (8, 'Ops')",
            [],
        )
        .unwrap();
        let people = [
            json!({"userName": "BJensen", "externalId": "E1", "active": true, "title": "Tour Guide",
                   "name": {"givenName": "Barbara", "familyName": "Jensen"},
                   "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true},
                              {"value": "babs@jensen.org", "type": "home"}],
                   "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "701984"}}),
            json!({"userName": "jsmith", "externalId": "e1", "active": false, "userType": "Intern",
                   "emails": [{"value": "JSmith@Example.org", "type": "work"}]}),
            json!({"userName": "Ärger", "active": true, "title": "",
                   "name": {"givenName": "Älf"},
                   "urn:userbridge:params:scim:schemas:extension:2.0:User": {"locked": true}}),
            json!({"userName": "zed", "displayName": "Zed Z", "userType": "Employee"}),
        ];
        let mut docs = Vec::new();
        for (i, p) in people.into_iter().enumerate() {
            let op = Operation {
                operation: OpKind::Create,
                dialect: Arc::from("scim"),
                target: None,
                user: UserDoc(p.as_object().cloned().unwrap()),
                groups: None,
                caller_password: None,
                preconditions: Vec::new(),
                pending: Vec::new(),
            };
            let u = super::super::create(&conn, op).unwrap();
            let n = u.0["urn:userbridge:params:scim:schemas:extension:2.0:User"]["numericId"]
                .as_i64()
                .unwrap();
            let g = if i % 2 == 0 { 7 } else { 8 };
            conn.execute(
                "INSERT INTO members (user_numeric_id, group_id) VALUES (?1, ?2)",
                [n, g],
            )
            .unwrap();
            docs.push(u);
        }
        // The documents as a read returns them (groups included, no secrets).
        let (all, _) = run(
            &conn,
            &Query {
                count: 100,
                ..Query::default()
            },
        )
        .unwrap();
        assert_eq!(all.len(), docs.len());
        (conn, all)
    }

    fn names(users: &[UserDoc]) -> Vec<String> {
        users
            .iter()
            .map(|u| u.0["userName"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Every filter selects in SQL exactly the users the in-memory evaluation selects, and
    /// the users written beside it.
    #[test]
    fn sql_and_memory_agree_on_every_filter() {
        let (conn, all) = store();
        let cases: &[(&str, &[&str])] = &[
            (r#"userName eq "bjensen""#, &["BJensen"]),
            (r#"userName eq "ärger""#, &["Ärger"]),
            (r#"userName eq "ÄRGER""#, &["Ärger"]),
            (r#"userName ne "bjensen""#, &["jsmith", "Ärger", "zed"]),
            (r#"userName sw "J""#, &["jsmith"]),
            (r#"userName co "E""#, &["BJensen", "Ärger", "zed"]),
            (r#"userName gt "k""#, &["Ärger", "zed"]),
            (r#"externalId eq "e1""#, &["jsmith"]),
            (r#"emails co "example""#, &["BJensen", "jsmith"]),
            (r#"emails.value ew ".ORG""#, &["BJensen", "jsmith"]),
            (
                r#"emails[type eq "work" and primary eq true]"#,
                &["BJensen"],
            ),
            (r#"emails[type eq "home"].value sw "babs""#, &["BJensen"]),
            (r#"not (emails pr)"#, &["Ärger", "zed"]),
            ("title pr", &["BJensen"]),
            ("active eq true", &["BJensen", "Ärger"]),
            (r#"active eq "False""#, &["jsmith"]),
            ("active ne true", &["jsmith", "zed"]),
            (r#"name.givenName sw "ä""#, &["Ärger"]),
            (
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#,
                &["BJensen"],
            ),
            (
                "urn:userbridge:params:scim:schemas:extension:2.0:User:locked eq true",
                &["Ärger"],
            ),
            (
                "urn:userbridge:params:scim:schemas:extension:2.0:User:numericId ge 3",
                &["Ärger", "zed"],
            ),
            (r#"groups.value eq "7""#, &["BJensen", "Ärger"]),
            (r#"groups[display eq "ops"]"#, &["jsmith", "zed"]),
            (
                r#"meta.created gt "2000-01-01T00:00:00Z""#,
                &["BJensen", "jsmith", "Ärger", "zed"],
            ),
            (
                r#"meta.resourceType eq "User" and userType eq "employee""#,
                &["zed"],
            ),
            (
                r#"(userType eq "intern" or title pr) and not (active eq false)"#,
                &["BJensen"],
            ),
            ("nickName eq null", &["BJensen", "jsmith", "Ärger", "zed"]),
            (r#"id eq "nope""#, &[]),
        ];
        for (f, want) in cases {
            let filter = parse(f, &USER).unwrap_or_else(|e| panic!("{f}: {e}"));
            let q = Query {
                filter: Some(filter),
                count: 100,
                ..Query::default()
            };
            let (sql, total) = run(&conn, &q).unwrap_or_else(|e| panic!("{f}: {e}"));
            let (mem, mem_total) = q.select(all.clone());
            assert_eq!(names(&sql), *want, "{f} in SQL");
            assert_eq!(names(&mem), *want, "{f} in memory");
            assert_eq!((total, mem_total), (want.len(), want.len()), "{f}");
        }
        // `id eq` by the column.
        let id = all[1].0["id"].as_str().unwrap();
        let q = Query {
            filter: Some(parse(&format!("id eq \"{id}\""), &USER).unwrap()),
            count: 10,
            ..Query::default()
        };
        assert_eq!(names(&run(&conn, &q).unwrap().0), ["jsmith"]);
    }

    #[test]
    fn sorting_and_paging_are_stable_and_agree() {
        let (conn, all) = store();
        let cases: &[(&str, Option<&str>, &[&str])] = &[
            ("userName", None, &["BJensen", "jsmith", "zed", "Ärger"]),
            (
                "userName",
                Some("descending"),
                &["Ärger", "zed", "jsmith", "BJensen"],
            ),
            // Users without a title come after those with one, in creation order.
            ("title", None, &["Ärger", "BJensen", "jsmith", "zed"]),
            (
                "title",
                Some("descending"),
                &["jsmith", "zed", "BJensen", "Ärger"],
            ),
            ("emails", None, &["BJensen", "jsmith", "Ärger", "zed"]),
            ("meta.created", Some("descending"), &[]),
        ];
        for (by, order, want) in cases {
            let sort = Sort::parse(by, *order, &USER).unwrap();
            let q = Query {
                sort: Some(sort),
                count: 100,
                ..Query::default()
            };
            let (sql, _) = run(&conn, &q).unwrap();
            let (mem, _) = q.select(all.clone());
            assert_eq!(names(&sql), names(&mem), "{by} {order:?}");
            if !want.is_empty() {
                assert_eq!(names(&sql), *want, "{by} {order:?}");
            }
            let page = Query {
                start: 1,
                count: 2,
                ..q
            };
            let (sql, total) = run(&conn, &page).unwrap();
            assert_eq!(total, 4);
            assert_eq!(names(&sql), names(&mem)[1..3], "{by} {order:?} page");
        }
    }

    /// The lookup an identity provider makes before every write reads one row by the index.
    #[test]
    fn a_user_name_lookup_uses_the_index() {
        let (conn, _) = store();
        let mut sql = Sql::default();
        let f = parse(r#"userName eq "BJensen""#, &USER).unwrap();
        let cond = write(&mut sql, &f, None, 0);
        let plan: Vec<String> = conn
            .prepare(&format!(
                "EXPLAIN QUERY PLAN SELECT id FROM users WHERE {cond}"
            ))
            .unwrap()
            .query_map(params_from_iter(sql.params.iter()), |r| {
                r.get::<_, String>(3)
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|p| p.contains("users_user_name_lower")),
            "{plan:?}"
        );
    }
}
