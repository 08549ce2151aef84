//! Reading the caller's credential as a mapping declares it (header, scheme word). Which
//! credentials exist is config's business; comparing them is the server's.

use super::super::mapping::spec::AuthSpec;

/// A compiled credential-extraction plan.
#[derive(Debug, Clone)]
pub struct AuthPlan {
    headers: Vec<(http::HeaderName, Option<Box<str>>, bool)>,
    /// `WWW-Authenticate` value on a 401.
    pub challenge: Option<Box<str>>,
    /// Roles needed for create (any one).
    pub create_roles: Vec<Box<str>>,
    /// Roles needed for update (any one).
    pub update_roles: Vec<Box<str>>,
}

impl AuthPlan {
    /// Compiles the spec; the error names a bad header.
    pub fn compile(spec: &AuthSpec) -> Result<Self, String> {
        let mut headers = Vec::new();
        for h in &spec.headers {
            let name = http::HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| format!("`{}` is not a valid header name", h.name))?;
            headers.push((name, h.scheme.as_deref().map(Into::into), h.scheme_optional));
        }
        let roles = |op| {
            spec.roles
                .get(&op)
                .map(|v: &Vec<String>| v.iter().map(|s| s.as_str().into()).collect())
                .unwrap_or_default()
        };
        Ok(Self {
            headers,
            challenge: spec.challenge.as_deref().map(Into::into),
            create_roles: roles(crate::canonical::OpKind::Create),
            update_roles: roles(crate::canonical::OpKind::Update),
        })
    }

    /// The token the caller presents, if any.
    pub fn token<'h>(&self, headers: &'h http::HeaderMap) -> Option<&'h str> {
        for (name, scheme, optional) in &self.headers {
            let Some(raw) = headers.get(name).and_then(|v| v.to_str().ok()) else {
                continue;
            };
            let raw = raw.trim();
            let token = match scheme {
                None => Some(raw),
                Some(scheme) => match raw.split_once(' ') {
                    Some((word, rest)) if word.eq_ignore_ascii_case(scheme) => {
                        Some(rest.trim_start())
                    }
                    _ if *optional => Some(raw),
                    _ => None,
                },
            };
            if let Some(t) = token.filter(|t| !t.is_empty()) {
                return Some(t);
            }
        }
        None
    }

    /// Roles that allow `op` (empty: any authenticated caller).
    pub fn roles_for(&self, op: crate::canonical::OpKind) -> &[Box<str>] {
        match op {
            crate::canonical::OpKind::Create => &self.create_roles,
            crate::canonical::OpKind::Update => &self.update_roles,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::spec::AuthHeaderSpec;

    #[test]
    fn scheme_is_case_insensitive_and_optional_when_declared() {
        let spec = AuthSpec {
            headers: vec![AuthHeaderSpec {
                name: "Authtoken".into(),
                scheme: Some("QSDK".into()),
                scheme_optional: true,
            }],
            challenge: None,
            roles: Default::default(),
        };
        let plan = AuthPlan::compile(&spec).unwrap();
        let mut h = http::HeaderMap::new();
        h.insert("authtoken", "qsdk abc".parse().unwrap());
        assert_eq!(plan.token(&h), Some("abc"));
        h.insert("authtoken", "abc".parse().unwrap());
        assert_eq!(plan.token(&h), Some("abc"));
        h.clear();
        assert_eq!(plan.token(&h), None);
    }
}
