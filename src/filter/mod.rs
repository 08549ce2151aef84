//! SCIM filters (RFC 7644 §3.4.2.2), the whole grammar: `eq ne co sw ew gt ge lt le pr`,
//! `and or not`, grouping, value paths (`emails[type eq "work" and primary eq true]`),
//! sub-attributes and extension URNs.
//!
//! A filter is parsed once per request ([`parse`]) and resolved against the resource's schema,
//! so that every attribute carries its canonical spelling, its type and its case-exactness;
//! an error names the position (`invalidFilter`, or `invalidPath` for an unknown attribute).
//! A backend then runs the resolved [`Filter`] natively where it can (SQL in SQLite, the
//! filter text passed to a SCIM provider) and evaluates it itself otherwise
//! ([`Filter::matches`]). [`Sort`] is a `sortBy`/`sortOrder` resolved the same way.

mod eval;
mod parse;

use std::fmt;

use serde_json::Value;

pub use eval::{cmp_keys, compare, sort_key, values};
pub use parse::{parse, parse_within};

use crate::canonical::schemas::Schemas;

/// The most comparisons one filter may hold, and how deeply it may nest: a filter is bounded
/// like every other input.
pub const MAX_TERMS: usize = 64;
/// See [`MAX_TERMS`].
pub const MAX_DEPTH: usize = 16;

/// A resolved filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Every one holds.
    And(Vec<Filter>),
    /// Any one holds.
    Or(Vec<Filter>),
    /// It does not hold.
    Not(Box<Filter>),
    /// `attr op value`.
    Compare(Compare),
    /// `attr pr`: the attribute has a value that is not null or empty.
    Present(Attr),
    /// `attr[filter]`: one element of the multi-valued `attr` matches `filter`, whose
    /// attributes are the element's sub-attributes.
    Has(Attr, Box<Filter>),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Contains.
    Co,
    /// Starts with.
    Sw,
    /// Ends with.
    Ew,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Ge,
    /// Less than.
    Lt,
    /// Less than or equal.
    Le,
}

impl Op {
    /// The operator's name in a filter.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::Co => "co",
            Op::Sw => "sw",
            Op::Ew => "ew",
            Op::Gt => "gt",
            Op::Ge => "ge",
            Op::Lt => "lt",
            Op::Le => "le",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            _ => return None,
        })
    }

    /// A stable number for the operator (what a backend passes to its own functions).
    pub fn code(self) -> u8 {
        self as u8
    }

    /// The operator with [`Op::code`] `n`.
    pub fn from_code(n: u8) -> Option<Self> {
        [
            Op::Eq,
            Op::Ne,
            Op::Co,
            Op::Sw,
            Op::Ew,
            Op::Gt,
            Op::Ge,
            Op::Lt,
            Op::Le,
        ]
        .get(usize::from(n))
        .copied()
    }
}

/// The type of an attribute's values, from its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `string`.
    String,
    /// `boolean`.
    Boolean,
    /// `integer` or `decimal`.
    Number,
    /// `dateTime`: compared as instants.
    DateTime,
    /// `reference` or `binary`: strings.
    Reference,
    /// `complex`.
    Complex,
}

impl Kind {
    fn of(schema_type: &str) -> Self {
        match schema_type {
            "boolean" => Kind::Boolean,
            "integer" | "decimal" => Kind::Number,
            "dateTime" => Kind::DateTime,
            "reference" | "binary" => Kind::Reference,
            "complex" => Kind::Complex,
            _ => Kind::String,
        }
    }
}

/// An attribute a filter names, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Attr {
    /// The canonical path, as a filter spells it (`name.givenName`,
    /// `urn:…:enterprise:2.0:User:manager.value`); inside a value path, the sub-attribute.
    pub path: String,
    /// The members from the document (or, inside a value path, the element) to the values:
    /// `["name", "givenName"]`, `["urn:…:enterprise:2.0:User", "manager", "value"]`.
    pub keys: Vec<String>,
    /// The values' type.
    pub kind: Kind,
    /// Whether strings compare with case.
    pub case_exact: bool,
    /// Whether the first member holds a list (the comparison holds for any element).
    pub multi: bool,
}

/// A comparison: the literal is already of the attribute's type where it could be made so
/// (`"True"` for a boolean is `true`), and folded to lower case for a case-insensitive one.
#[derive(Debug, Clone, PartialEq)]
pub struct Compare {
    /// The attribute.
    pub attr: Attr,
    /// The operator.
    pub op: Op,
    /// The literal.
    pub value: Value,
    /// The literal as the client wrote it (what a PATCH that adds through an unmatched value
    /// filter gives the new element).
    pub sent: Value,
}

/// An equality a store can serve from an index instead of reading every user: the lookups
/// identity providers make before every write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// `userName eq` an ASCII literal (folded to lower case: a store's `lower` and this
    /// filter's folding agree on ASCII).
    UserName(&'a str),
    /// `id eq`.
    Id(&'a str),
}

impl<'a> Lookup<'a> {
    /// The lookup an equality of `attr` (not inside a value path) with `literal` is, if any.
    pub fn of_eq(attr: &Attr, literal: &'a Value) -> Option<Self> {
        let (Value::String(s), [key]) = (literal, attr.keys.as_slice()) else {
            return None;
        };
        match key.as_str() {
            "userName" if !attr.case_exact && s.is_ascii() => Some(Lookup::UserName(s)),
            "id" => Some(Lookup::Id(s)),
            _ => None,
        }
    }
}

/// Why a filter was refused: the SCIM `scimType` and a message naming the position.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterError {
    /// `invalidFilter`, or `invalidPath` for an attribute the schema does not have.
    pub scim_type: &'static str,
    /// What is wrong, where.
    pub message: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A `sortBy` and `sortOrder` (RFC 7644 §3.4.2.3).
#[derive(Debug, Clone, PartialEq)]
pub struct Sort {
    /// The attribute sorted by (a multi-valued one by its primary value, else its first).
    pub attr: Attr,
    /// `sortOrder=descending`.
    pub descending: bool,
}

impl Sort {
    /// Resolves `sortBy` (and `sortOrder`: `ascending`, the default, or `descending`).
    pub fn parse(by: &str, order: Option<&str>, schemas: &Schemas) -> Result<Self, FilterError> {
        let descending = match order.map(str::to_ascii_lowercase).as_deref() {
            None | Some("" | "ascending") => false,
            Some("descending") => true,
            Some(o) => {
                return Err(FilterError {
                    scim_type: "invalidValue",
                    message: format!("sortOrder must be ascending or descending, not `{o}`"),
                });
            }
        };
        let mut attr = parse::resolve(by.trim(), None, schemas).map_err(|m| FilterError {
            scim_type: "invalidPath",
            message: format!("sortBy: {m}"),
        })?;
        parse::value_of_complex(&mut attr, schemas).map_err(|m| FilterError {
            scim_type: "invalidPath",
            message: format!("sortBy: {m}"),
        })?;
        Ok(Sort { attr, descending })
    }
}

impl Filter {
    /// The `attr eq value` terms the filter requires (itself, or those of its top `and`),
    /// with the values as sent: what an element matching it must hold.
    pub fn eq_terms(&self) -> Vec<(&str, &Value)> {
        fn one(f: &Filter) -> Option<(&str, &Value)> {
            match f {
                Filter::Compare(c) if c.op == Op::Eq && c.attr.keys.len() == 1 => {
                    Some((c.attr.keys[0].as_str(), &c.sent))
                }
                _ => None,
            }
        }
        match self {
            Filter::And(fs) => fs.iter().filter_map(one).collect(),
            f => one(f).into_iter().collect(),
        }
    }

    /// Every attribute the filter names (for a value path, the multi-valued attribute and its
    /// sub-attributes).
    pub fn attrs(&self) -> Vec<&Attr> {
        let mut out = Vec::new();
        self.walk_attrs(&mut out);
        out
    }

    fn walk_attrs<'a>(&'a self, out: &mut Vec<&'a Attr>) {
        match self {
            Filter::And(fs) | Filter::Or(fs) => fs.iter().for_each(|f| f.walk_attrs(out)),
            Filter::Not(f) => f.walk_attrs(out),
            Filter::Compare(c) => out.push(&c.attr),
            Filter::Present(a) => out.push(a),
            Filter::Has(a, f) => {
                out.push(a);
                f.walk_attrs(out);
            }
        }
    }
}

/// The filter in RFC 7644 syntax, canonical spelling, fully parenthesised where it nests:
/// what is passed to a SCIM provider.
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let joined = |f: &mut fmt::Formatter<'_>, fs: &[Filter], sep: &str| {
            for (i, x) in fs.iter().enumerate() {
                if i > 0 {
                    write!(f, " {sep} ")?;
                }
                match x {
                    Filter::And(_) | Filter::Or(_) => write!(f, "({x})")?,
                    _ => write!(f, "{x}")?,
                }
            }
            Ok(())
        };
        match self {
            Filter::And(fs) => joined(f, fs, "and"),
            Filter::Or(fs) => joined(f, fs, "or"),
            Filter::Not(x) => write!(f, "not ({x})"),
            Filter::Compare(c) => write!(f, "{} {} {}", c.attr.path, c.op.as_str(), c.value),
            Filter::Present(a) => write!(f, "{} pr", a.path),
            Filter::Has(a, x) => write!(f, "{}[{x}]", a.path),
        }
    }
}
