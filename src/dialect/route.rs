//! Path templates: literal segments, `{param}` and `{param:REGEX}` segments, `${var}`
//! substitution. Compiled once; matching walks segments without allocating for literals.

use std::collections::BTreeMap;
use std::sync::Arc;

use percent_encoding::percent_decode_str;
use regex::Regex;

/// One segment of a path template.
#[derive(Debug, Clone)]
enum Seg {
    Lit(Box<str>),
    Param { name: Arc<str>, re: Option<Regex> },
}

/// A compiled path template.
#[derive(Debug, Clone)]
pub struct PathTemplate {
    segs: Vec<Seg>,
    /// The template as written (after `${var}` substitution), for docs and `Allow` lookups.
    pub text: String,
}

/// Path parameters captured by a match, percent-decoded.
pub type Params = Vec<(Arc<str>, String)>;

impl PathTemplate {
    /// The names of its parameters, in order.
    pub fn param_names(&self) -> impl Iterator<Item = &Arc<str>> {
        self.segs.iter().filter_map(|s| match s {
            Seg::Param { name, .. } => Some(name),
            Seg::Lit(_) => None,
        })
    }

    /// Compiles `template` with `vars` substituted. The error says what is wrong.
    pub fn compile(template: &str, vars: &BTreeMap<String, String>) -> Result<Self, String> {
        let text = substitute(template, vars)?;
        if !text.starts_with('/') {
            return Err(format!("path template `{text}` must start with `/`"));
        }
        let mut segs = Vec::new();
        for raw in text[1..].split('/') {
            if let Some(inner) = raw.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
                let (name, re) = match inner.split_once(':') {
                    Some((n, re)) => {
                        let re = Regex::new(&format!("^(?:{re})$")).map_err(|e| {
                            format!("`{raw}`: {}", crate::diagnostic::regex_message(&e))
                        })?;
                        (n, Some(re))
                    }
                    None => (inner, None),
                };
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(format!("bad parameter name in `{raw}`"));
                }
                segs.push(Seg::Param {
                    name: name.into(),
                    re,
                });
            } else if raw.contains(['{', '}']) {
                return Err(format!(
                    "segment `{raw}` mixes text and a parameter; a parameter is a whole segment"
                ));
            } else {
                segs.push(Seg::Lit(raw.into()));
            }
        }
        Ok(Self { segs, text })
    }

    /// Matches a request path (no query string), appending parameters to `params`.
    pub fn matches(&self, path: &str, params: &mut Params) -> bool {
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        let start = params.len();
        let mut parts = rest.split('/');
        for seg in &self.segs {
            let Some(part) = parts.next() else {
                params.truncate(start);
                return false;
            };
            let ok = match seg {
                Seg::Lit(l) => **l == *part,
                Seg::Param { name, re } => match percent_decode_str(part).decode_utf8() {
                    Ok(v) if !v.is_empty() && re.as_ref().is_none_or(|re| re.is_match(&v)) => {
                        params.push((name.clone(), v.into_owned()));
                        true
                    }
                    _ => false,
                },
            };
            if !ok {
                params.truncate(start);
                return false;
            }
        }
        if parts.next().is_some() {
            params.truncate(start);
            return false;
        }
        true
    }

    /// What the template matches, without its parameters' names (`/users/{}`,
    /// `/users/{:[0-9]+}`): two templates of one shape match the same requests.
    pub fn shape(&self) -> String {
        let mut s = String::new();
        for seg in &self.segs {
            s.push('/');
            match seg {
                Seg::Lit(l) => s.push_str(l),
                Seg::Param { re: None, .. } => s.push_str("{}"),
                Seg::Param { re: Some(re), .. } => {
                    s.push_str("{:");
                    s.push_str(re.as_str());
                    s.push('}');
                }
            }
        }
        s
    }

    /// The parameter names, in order.
    pub fn params(&self) -> impl Iterator<Item = &str> {
        self.segs.iter().filter_map(|s| match s {
            Seg::Param { name, .. } => Some(&**name),
            Seg::Lit(_) => None,
        })
    }
}

fn substitute(template: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let end = rest[i..]
            .find('}')
            .ok_or_else(|| format!("unclosed `${{` in `{template}`"))?;
        let name = &rest[i + 2..i + end];
        let value = vars
            .get(name)
            .ok_or_else(|| format!("unknown variable `${{{name}}}`"))?;
        out.push_str(value.trim_end_matches('/'));
        rest = &rest[i + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_regex_and_var_segments() {
        let vars = BTreeMap::from([("base".to_owned(), "/portal".to_owned())]);
        let t = PathTemplate::compile("${base}/api/{v:(?i)v4}/user/{userId}", &vars).unwrap();
        let mut p = Params::new();
        assert!(t.matches("/portal/api/V4/user/42", &mut p));
        assert_eq!(
            p,
            vec![("v".into(), "V4".into()), ("userId".into(), "42".into())]
        );
        p.clear();
        assert!(t.matches("/portal/api/v4/user/a%20b", &mut p));
        assert_eq!(p[1].1, "a b");
        p.clear();
        assert!(!t.matches("/portal/api/v5/user/42", &mut p));
        assert!(!t.matches("/portal/api/v4/user/42/x", &mut p));
        assert!(!t.matches("/portal/api/v4/user", &mut p));
        assert!(!t.matches("/portal/api/v4/user/", &mut p));
        assert!(p.is_empty());
        assert!(PathTemplate::compile("/x/{bad", &vars).is_err());
        assert!(PathTemplate::compile("${nope}/x", &vars).is_err());
    }
}
