//! JSONPath sources, compiled once with jsonpath-rust. A path made only of member names
//! (`$.userKey.username`) is lowered to a key chain: a request then costs one map lookup per
//! step instead of a query evaluation, and responses can be rendered back along the chain.

use jsonpath_rust::parser::model::{JpQuery, Segment, Selector};
use jsonpath_rust::parser::parse_json_path;
use jsonpath_rust::query::js_path_process;
use std::borrow::Cow;

use serde_json::Value;

use crate::json::Node;

/// A compiled JSONPath.
#[derive(Debug, Clone)]
pub enum JsonPathPlan {
    /// `$.a.b`: member names only.
    Keys(Vec<Box<str>>),
    /// Anything else: evaluated by jsonpath-rust; several matches become an array.
    Query(Box<JpQuery>),
}

impl JsonPathPlan {
    /// Parses `src`; the error is jsonpath-rust's message.
    pub fn compile(src: &str) -> Result<Self, String> {
        let q = parse_json_path(src).map_err(|e| e.to_string())?;
        let mut keys = Vec::with_capacity(q.segments.len());
        for seg in &q.segments {
            match seg {
                Segment::Selector(Selector::Name(n)) => keys.push(n.as_str().into()),
                _ => return Ok(Self::Query(Box::new(q))),
            }
        }
        if keys.is_empty() {
            return Ok(Self::Query(Box::new(q)));
        }
        Ok(Self::Keys(keys))
    }

    /// The key chain, when the path is a plain one.
    pub fn keys(&self) -> Option<&[Box<str>]> {
        match self {
            Self::Keys(k) => Some(k),
            Self::Query(_) => None,
        }
    }

    /// The node at the path in `root`. A plain path walks the parsed body without copying;
    /// a general query converts `root` to a `serde_json::Value` for jsonpath-rust (the slow path).
    pub fn get_node<'b>(&self, root: &'b Node<'b>) -> Option<Cow<'b, Node<'b>>> {
        match self {
            Self::Keys(keys) => {
                let mut v = root;
                for k in keys {
                    v = v.get(k)?;
                }
                Some(Cow::Borrowed(v))
            }
            Self::Query(_) => self
                .get(&root.to_value())
                .map(|v| Cow::Owned(Node::from_value(&v))),
        }
    }

    /// The value at the path in `root`; `None` when nothing matches.
    pub fn get<'a>(&self, root: &'a Value) -> Option<std::borrow::Cow<'a, Value>> {
        match self {
            Self::Keys(keys) => {
                let mut v = root;
                for k in keys {
                    v = v.as_object()?.get(&**k)?;
                }
                Some(std::borrow::Cow::Borrowed(v))
            }
            Self::Query(q) => {
                let found = js_path_process(q, root).ok()?;
                match found.len() {
                    0 => None,
                    1 => found
                        .into_iter()
                        .next()
                        .map(|r| std::borrow::Cow::Borrowed(r.val)),
                    _ => Some(std::borrow::Cow::Owned(Value::Array(
                        found.into_iter().map(|r| r.val.clone()).collect(),
                    ))),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_paths_become_key_chains_and_others_queries() {
        let p = JsonPathPlan::compile("$.userKey.username").unwrap();
        assert_eq!(p.keys().map(|k| k.len()), Some(2));
        let body = json!({"userKey": {"username": "ann"}, "roles": [{"name": "a"}, {"name": "b"}]});
        assert_eq!(p.get(&body).unwrap().as_ref(), &json!("ann"));
        let q = JsonPathPlan::compile("$.roles[*].name").unwrap();
        assert!(q.keys().is_none());
        assert_eq!(q.get(&body).unwrap().as_ref(), &json!(["a", "b"]));
        assert!(JsonPathPlan::compile("$..[").is_err());
        assert!(
            JsonPathPlan::compile("$.missing")
                .unwrap()
                .get(&body)
                .is_none()
        );
    }
}
