//! The filter parser: tokens with their positions, recursive descent over RFC 7644's grammar
//! (`not` binds tightest, then `and`, then `or`), each attribute resolved as it is read.

use serde_json::Value;

use super::{Attr, Compare, Filter, FilterError, Kind, MAX_DEPTH, MAX_TERMS, Op};
use crate::canonical::schemas::{Schemas, split_schema};

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    OpenBracket,
    CloseBracket,
    /// A run of characters that are not space, brackets or quotes: a path, an operator, a
    /// keyword or a number.
    Word(String),
    /// A JSON string.
    Str(String),
}

/// A token and the (1-based) character it starts at.
struct Token {
    tok: Tok,
    at: usize,
}

fn invalid(at: usize, what: impl std::fmt::Display) -> FilterError {
    FilterError {
        scim_type: "invalidFilter",
        message: format!("{what} (at character {at})"),
    }
}

fn lex(text: &str) -> Result<Vec<Token>, FilterError> {
    let mut out = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        let (byte, c) = chars[i];
        let at = i + 1;
        let tok = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => Tok::Open,
            ')' => Tok::Close,
            '[' => Tok::OpenBracket,
            ']' => Tok::CloseBracket,
            '"' => {
                // A JSON string: up to the first quote not escaped.
                let mut j = i + 1;
                let mut escaped = false;
                while j < chars.len() && (escaped || chars[j].1 != '"') {
                    escaped = !escaped && chars[j].1 == '\\';
                    j += 1;
                }
                if j == chars.len() {
                    return Err(invalid(at, "a string is not closed"));
                }
                let end = chars[j].0 + 1;
                let s = serde_json::from_str::<String>(&text[byte..end])
                    .map_err(|e| invalid(at, format!("a string is not valid JSON: {e}")))?;
                i = j + 1;
                out.push(Token {
                    tok: Tok::Str(s),
                    at,
                });
                continue;
            }
            _ => {
                let mut j = i;
                while j < chars.len()
                    && !chars[j].1.is_whitespace()
                    && !matches!(chars[j].1, '(' | ')' | '[' | ']' | '"')
                {
                    j += 1;
                }
                let end = chars.get(j).map_or(text.len(), |(b, _)| *b);
                i = j;
                out.push(Token {
                    tok: Tok::Word(text[byte..end].to_owned()),
                    at,
                });
                continue;
            }
        };
        out.push(Token { tok, at });
        i += 1;
    }
    Ok(out)
}

/// Parses and resolves `text` against `schemas`.
pub fn parse(text: &str, schemas: &Schemas) -> Result<Filter, FilterError> {
    let tokens = lex(text)?;
    let mut p = Parser {
        tokens,
        pos: 0,
        end: text.chars().count() + 1,
        schemas,
        terms: 0,
    };
    if p.tokens.is_empty() {
        return Err(invalid(1, "the filter is empty"));
    }
    let f = p.or(None, 0)?;
    match p.tokens.get(p.pos) {
        None => Ok(f),
        Some(t) => Err(invalid(
            t.at,
            format!("expected `and`, `or` or the end, found {}", show(&t.tok)),
        )),
    }
}

/// Parses `text`, the filter of a value path (`emails[type eq "work"]`) on the multi-valued
/// complex attribute `parent`: its attributes are `parent`'s sub-attributes.
pub fn parse_within(text: &str, parent: &str, schemas: &Schemas) -> Result<Filter, FilterError> {
    let attr = resolve(parent, None, schemas).map_err(|m| path_error(1, &m))?;
    if !attr.multi || attr.kind != Kind::Complex {
        return Err(invalid(
            1,
            format!("`{}` is not a multi-valued complex attribute", attr.path),
        ));
    }
    let tokens = lex(text)?;
    if tokens.is_empty() {
        return Err(invalid(1, "the filter is empty"));
    }
    let mut p = Parser {
        tokens,
        pos: 0,
        end: text.chars().count() + 1,
        schemas,
        terms: 0,
    };
    let f = p.or(Some(&attr), 1)?;
    match p.tokens.get(p.pos) {
        None => Ok(f),
        Some(t) => Err(invalid(
            t.at,
            format!("expected `and`, `or` or the end, found {}", show(&t.tok)),
        )),
    }
}

fn show(t: &Tok) -> String {
    match t {
        Tok::Open => "`(`".into(),
        Tok::Close => "`)`".into(),
        Tok::OpenBracket => "`[`".into(),
        Tok::CloseBracket => "`]`".into(),
        Tok::Word(w) => format!("`{w}`"),
        Tok::Str(s) => format!("the string {}", Value::String(s.clone())),
    }
}

struct Parser<'a> {
    tokens: Vec<Token>,
    pos: usize,
    /// The position just after the text, for "expected … at the end".
    end: usize,
    schemas: &'a Schemas,
    terms: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|t| &t.tok)
    }

    fn at(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.end, |t| t.at)
    }

    fn keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(k))
    }

    fn expect(&mut self, want: &Tok, what: &str) -> Result<(), FilterError> {
        match self.tokens.get(self.pos) {
            Some(t) if t.tok == *want => {
                self.pos += 1;
                Ok(())
            }
            Some(t) => Err(invalid(
                t.at,
                format!("expected {what}, found {}", show(&t.tok)),
            )),
            None => Err(invalid(self.end, format!("expected {what} at the end"))),
        }
    }

    /// `and` terms joined by `or`.
    fn or(&mut self, within: Option<&Attr>, depth: usize) -> Result<Filter, FilterError> {
        let mut terms = vec![self.and(within, depth)?];
        while self.keyword("or") {
            self.pos += 1;
            terms.push(self.and(within, depth)?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Filter::Or(terms)
        })
    }

    /// Unary terms joined by `and`.
    fn and(&mut self, within: Option<&Attr>, depth: usize) -> Result<Filter, FilterError> {
        let mut terms = vec![self.unary(within, depth)?];
        while self.keyword("and") {
            self.pos += 1;
            terms.push(self.unary(within, depth)?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Filter::And(terms)
        })
    }

    fn group(&mut self, within: Option<&Attr>, depth: usize) -> Result<Filter, FilterError> {
        if depth >= MAX_DEPTH {
            return Err(invalid(
                self.at(),
                format!("the filter nests more than {MAX_DEPTH} deep"),
            ));
        }
        self.expect(&Tok::Open, "`(`")?;
        let f = self.or(within, depth + 1)?;
        self.expect(&Tok::Close, "`)`")?;
        Ok(f)
    }

    fn unary(&mut self, within: Option<&Attr>, depth: usize) -> Result<Filter, FilterError> {
        match self.peek() {
            Some(Tok::Open) => self.group(within, depth),
            Some(Tok::Word(w))
                if w.eq_ignore_ascii_case("not")
                    && matches!(
                        self.tokens.get(self.pos + 1).map(|t| &t.tok),
                        Some(Tok::Open)
                    ) =>
            {
                self.pos += 1;
                Ok(Filter::Not(Box::new(self.group(within, depth)?)))
            }
            Some(Tok::Word(_)) => self.attr_exp(within, depth),
            Some(t) => Err(invalid(
                self.at(),
                format!("expected an attribute, `not` or `(`, found {}", show(t)),
            )),
            None => Err(invalid(self.end, "expected an attribute at the end")),
        }
    }

    fn attr_exp(&mut self, within: Option<&Attr>, depth: usize) -> Result<Filter, FilterError> {
        let at = self.at();
        let Some(Tok::Word(path)) = self.peek().cloned() else {
            return Err(invalid(at, "expected an attribute"));
        };
        self.pos += 1;
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(FilterError {
                scim_type: "tooMany",
                message: format!(
                    "the filter has more than {MAX_TERMS} comparisons (at character {at})"
                ),
            });
        }
        let attr = resolve(&path, within, self.schemas).map_err(|m| path_error(at, &m))?;
        if self.peek() == Some(&Tok::OpenBracket) {
            return self.value_path(attr, within, at, depth);
        }
        self.comparison(attr, at)
    }

    /// `attr[filter]`, and the extension `attr[filter].sub op value` (a PATCH path's shape,
    /// which clients send in filters too).
    fn value_path(
        &mut self,
        attr: Attr,
        within: Option<&Attr>,
        at: usize,
        depth: usize,
    ) -> Result<Filter, FilterError> {
        if within.is_some() {
            return Err(invalid(at, "a value path cannot hold another"));
        }
        if !attr.multi || attr.kind != Kind::Complex || attr.keys.len() != first_len(&attr) {
            return Err(invalid(
                at,
                format!("`{}` is not a multi-valued complex attribute", attr.path),
            ));
        }
        if depth >= MAX_DEPTH {
            return Err(invalid(
                at,
                format!("the filter nests more than {MAX_DEPTH} deep"),
            ));
        }
        self.pos += 1;
        let inner = self.or(Some(&attr), depth + 1)?;
        self.expect(&Tok::CloseBracket, "`]`")?;
        if let Some(Tok::Word(w)) = self.peek().cloned()
            && let Some(sub) = w.strip_prefix('.')
        {
            let sub_at = self.at();
            self.pos += 1;
            let sub =
                resolve(sub, Some(&attr), self.schemas).map_err(|m| path_error(sub_at, &m))?;
            let cmp = self.comparison(sub, sub_at)?;
            return Ok(Filter::Has(attr, Box::new(Filter::And(vec![inner, cmp]))));
        }
        Ok(Filter::Has(attr, Box::new(inner)))
    }

    fn comparison(&mut self, mut attr: Attr, at: usize) -> Result<Filter, FilterError> {
        let op_at = self.at();
        let op = match self.peek() {
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("pr") => {
                self.pos += 1;
                return Ok(Filter::Present(attr));
            }
            Some(Tok::Word(w)) => Op::parse(w),
            _ => None,
        };
        let Some(op) = op else {
            let found = self.peek().map_or_else(|| "the end".to_owned(), show);
            return Err(invalid(
                op_at,
                format!(
                    "expected eq, ne, co, sw, ew, gt, ge, lt, le or pr after `{}`, found {found}",
                    attr.path
                ),
            ));
        };
        self.pos += 1;
        let value_at = self.at();
        let literal = match self.tokens.get(self.pos).map(|t| &t.tok) {
            Some(Tok::Str(s)) => Value::String(s.clone()),
            Some(Tok::Word(w)) => match w.to_ascii_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                _ => match serde_json::from_str::<serde_json::Number>(w) {
                    Ok(n) => Value::Number(n),
                    Err(_) => {
                        return Err(invalid(
                            value_at,
                            format!(
                                "expected a value (a quoted string, a number, true, false or null), found `{w}`"
                            ),
                        ));
                    }
                },
            },
            Some(t) => {
                return Err(invalid(
                    value_at,
                    format!(
                        "expected a value after `{}`, found {}",
                        op.as_str(),
                        show(t)
                    ),
                ));
            }
            None => {
                return Err(invalid(
                    value_at,
                    format!("expected a value after `{}` at the end", op.as_str()),
                ));
            }
        };
        self.pos += 1;
        value_of_complex(&mut attr, self.schemas).map_err(|m| invalid(at, m))?;
        let value = coerce(&attr, op, literal.clone()).map_err(|m| invalid(value_at, m))?;
        Ok(Filter::Compare(Compare {
            attr,
            op,
            value,
            sent: literal,
        }))
    }
}

fn path_error(at: usize, message: &str) -> FilterError {
    FilterError {
        scim_type: "invalidPath",
        message: format!("{message} (at character {at})"),
    }
}

/// How many keys name the attribute itself (an extension's attributes sit under its URN).
fn first_len(attr: &Attr) -> usize {
    if attr.keys.first().is_some_and(|k| k.starts_with("urn:")) {
        2
    } else {
        1
    }
}

/// The lookup key of an attribute in the schema index.
fn index_key(attr: &Attr) -> String {
    match attr.keys.split_first() {
        Some((urn, rest)) if urn.starts_with("urn:") => format!("{urn}:{}", rest.join(".")),
        _ => attr.keys.join("."),
    }
}

/// Resolves an attribute path; inside a value path (`within`), a sub-attribute of it.
pub(super) fn resolve(
    path: &str,
    within: Option<&Attr>,
    schemas: &Schemas,
) -> Result<Attr, String> {
    let unknown = || format!("no attribute `{path}`");
    if path.is_empty() {
        return Err("an attribute is missing".into());
    }
    if let Some(parent) = within {
        if path.contains('.') || path.contains(':') {
            return Err(format!(
                "`{path}` inside `{}[…]` must be one of its sub-attributes",
                parent.path
            ));
        }
        let info = schemas
            .attr(&format!("{}.{path}", index_key(parent)))
            .ok_or_else(|| format!("`{}` has no sub-attribute `{path}`", parent.path))?;
        return Ok(Attr {
            path: info.name.clone(),
            keys: vec![info.name.clone()],
            kind: Kind::of(&info.kind),
            case_exact: info.case_exact,
            multi: false,
        });
    }
    let (ext, rest) = split_schema(path).map_err(|()| format!("no schema for `{path}`"))?;
    if rest.is_empty() {
        return Err(format!("`{path}` names a schema, not an attribute"));
    }
    let (top, sub) = match rest.split_once('.') {
        Some((t, s)) => (t, Some(s)),
        None => (rest, None),
    };
    let key = |p: &str| match ext {
        Some(u) => format!("{u}:{p}"),
        None => p.to_owned(),
    };
    let top_info = schemas.attr(&key(top)).ok_or_else(unknown)?;
    let mut keys: Vec<String> = ext.map(str::to_owned).into_iter().collect();
    keys.push(top_info.name.clone());
    let mut canonical = key(&top_info.name);
    let leaf = match sub {
        None => top_info,
        Some(s) => {
            let info = schemas
                .attr(&key(&format!("{top}.{s}")))
                .ok_or_else(unknown)?;
            keys.push(info.name.clone());
            canonical = format!("{canonical}.{}", info.name);
            info
        }
    };
    Ok(Attr {
        path: canonical,
        keys,
        kind: Kind::of(&leaf.kind),
        case_exact: leaf.case_exact,
        multi: top_info.multi,
    })
}

/// A multi-valued complex attribute compared as a whole is compared by its `value`
/// (`emails co "@example.com"`); another complex attribute cannot be compared.
pub(super) fn value_of_complex(attr: &mut Attr, schemas: &Schemas) -> Result<(), String> {
    if attr.kind != Kind::Complex {
        return Ok(());
    }
    let value = schemas
        .attr(&format!("{}.value", index_key(attr)))
        .filter(|_| attr.keys.len() == first_len(attr))
        .ok_or_else(|| {
            format!(
                "`{}` is complex: compare one of its sub-attributes",
                attr.path
            )
        })?;
    attr.keys.push(value.name.clone());
    attr.path = format!("{}.{}", attr.path, value.name);
    attr.kind = Kind::of(&value.kind);
    attr.case_exact = value.case_exact;
    Ok(())
}

/// The literal made of the attribute's type where a client sent it otherwise (`"True"` for a
/// boolean, `42` for a string), folded for a case-insensitive string; an operator the type does
/// not have is refused.
fn coerce(attr: &Attr, op: Op, literal: Value) -> Result<Value, String> {
    let ordering = matches!(op, Op::Gt | Op::Ge | Op::Lt | Op::Le);
    let substring = matches!(op, Op::Co | Op::Sw | Op::Ew);
    if literal.is_null() {
        return if matches!(op, Op::Eq | Op::Ne) {
            Ok(Value::Null)
        } else {
            Err(format!("`{}` cannot compare with null", op.as_str()))
        };
    }
    match attr.kind {
        Kind::Boolean => {
            if ordering || substring {
                return Err(format!(
                    "`{}` is boolean: only eq and ne compare it",
                    attr.path
                ));
            }
            match literal {
                Value::Bool(b) => Ok(Value::Bool(b)),
                Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
                Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
                other => Err(format!("`{}` is boolean, not {other}", attr.path)),
            }
        }
        Kind::Number => {
            if substring {
                return Err(format!(
                    "`{}` is a number: `{}` compares strings",
                    attr.path,
                    op.as_str()
                ));
            }
            match literal {
                Value::Number(n) => Ok(Value::Number(n)),
                Value::String(s) => serde_json::from_str::<serde_json::Number>(s.trim())
                    .map(Value::Number)
                    .map_err(|_| format!("`{}` is a number, not {}", attr.path, Value::String(s))),
                other => Err(format!("`{}` is a number, not {other}", attr.path)),
            }
        }
        Kind::String | Kind::Reference | Kind::DateTime => {
            let s = match literal {
                Value::String(s) => s,
                other => other.to_string(),
            };
            Ok(Value::String(
                if attr.case_exact || attr.kind == Kind::DateTime {
                    s
                } else {
                    s.to_lowercase()
                },
            ))
        }
        Kind::Complex => Err(format!(
            "`{}` is complex: compare one of its sub-attributes",
            attr.path
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::schemas::USER;

    fn ok(f: &str) -> String {
        parse(f, &USER)
            .map(|f| f.to_string())
            .unwrap_or_else(|e| panic!("{f}: {e}"))
    }

    fn err(f: &str) -> FilterError {
        parse(f, &USER).expect_err(f)
    }

    #[test]
    fn the_rfc_examples_parse_and_print_canonically() {
        // RFC 7644 §3.4.2.2, the examples in order.
        let cases = [
            (r#"userName Eq "john""#, r#"userName eq "john""#),
            (
                r#"name.familyName co "O'Malley""#,
                r#"name.familyName co "o'malley""#,
            ),
            (r#"userName sw "J""#, r#"userName sw "j""#),
            (
                r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
                r#"userName sw "j""#,
            ),
            ("title pr", "title pr"),
            (
                r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
                r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
            ),
            (
                r#"title pr and userType eq "Employee""#,
                r#"title pr and userType eq "employee""#,
            ),
            (
                r#"title pr or userType eq "Intern""#,
                r#"title pr or userType eq "intern""#,
            ),
            (
                r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
                "",
            ),
            (
                r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
                r#"userType eq "employee" and (emails.value co "example.com" or emails.value co "example.org")"#,
            ),
            (
                r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
                r#"userType ne "employee" and not (emails.value co "example.com" or emails.value co "example.org")"#,
            ),
            (
                r#"userType eq "Employee" and (emails.type eq "work")"#,
                r#"userType eq "employee" and emails.type eq "work""#,
            ),
            (
                r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
                r#"userType eq "employee" and emails[type eq "work" and value co "@example.com"]"#,
            ),
            (
                r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
                r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
            ),
        ];
        for (input, want) in cases {
            if want.is_empty() {
                // `schemas` is not an attribute of the schema: an unknown path.
                assert_eq!(err(input).scim_type, "invalidPath", "{input}");
                continue;
            }
            assert_eq!(ok(input), want, "{input}");
            // What is printed parses to the same filter.
            assert_eq!(ok(want), want);
        }
    }

    #[test]
    fn extension_urns_booleans_numbers_and_precedence() {
        assert_eq!(
            ok(
                r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#
            ),
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#
        );
        assert_eq!(
            ok(r#"urn:userbridge:params:scim:schemas:extension:2.0:User:numericId eq "7""#),
            "urn:userbridge:params:scim:schemas:extension:2.0:User:numericId eq 7"
        );
        assert_eq!(ok(r#"active eq "False""#), "active eq false");
        assert_eq!(ok("ACTIVE EQ TRUE"), "active eq true");
        assert_eq!(ok(r#"a1 pr"#.replace("a1", "title").as_str()), "title pr");
        // `and` binds tighter than `or`; `not` tighter than both.
        assert_eq!(
            ok(r#"title pr or nickName pr and not(active eq true)"#),
            "title pr or (nickName pr and not (active eq true))"
        );
        assert_eq!(ok(r#"externalId eq "AbC""#), r#"externalId eq "AbC""#);
        assert_eq!(ok(r#"id eq "x-Y""#), r#"id eq "x-Y""#);
        assert_eq!(
            ok(r#"emails[type eq "work"].value eq "A@x.org""#),
            r#"emails[type eq "work" and value eq "a@x.org"]"#
        );
    }

    #[test]
    fn errors_name_the_position_and_the_type() {
        let e = err(r#"userName xx "a""#);
        assert_eq!(e.scim_type, "invalidFilter");
        assert!(
            e.message
                .contains("after `userName`, found `xx` (at character 10)"),
            "{e}"
        );
        let e = err(r#"userName eq"#);
        assert!(
            e.message.contains("expected a value after `eq` at the end"),
            "{e}"
        );
        let e = err(r#"userName eq "a"#);
        assert!(e.message.contains("not closed (at character 13)"), "{e}");
        let e = err(r#"nope eq "a""#);
        assert_eq!(e.scim_type, "invalidPath");
        assert!(
            e.message.contains("no attribute `nope` (at character 1)"),
            "{e}"
        );
        let e = err(r#"(userName eq "a""#);
        assert!(e.message.contains("expected `)` at the end"), "{e}");
        let e = err(r#"userName eq "a" userName eq "b""#);
        assert!(
            e.message.contains("found `userName` (at character 17)"),
            "{e}"
        );
        assert!(err("active gt true").message.contains("only eq and ne"));
        assert!(err(r#"name eq "x""#).message.contains("complex"));
        assert!(
            err(r#"userName[value eq "x"]"#)
                .message
                .contains("not a multi-valued")
        );
        assert!(
            err(r#"emails[nope eq "x"]"#)
                .message
                .contains("no sub-attribute `nope`")
        );
        assert!(err(r#"userName gt null"#).message.contains("null"));
        assert_eq!(err("").scim_type, "invalidFilter");
        assert_eq!(err("()").scim_type, "invalidFilter");
        let deep = format!("{}title pr{}", "(".repeat(40), ")".repeat(40));
        assert!(err(&deep).message.contains("nests more than"));
        let many = vec!["title pr"; MAX_TERMS + 1].join(" or ");
        assert_eq!(err(&many).scim_type, "tooMany");
    }
}
