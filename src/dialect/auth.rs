//! Reading the caller's credential as a mapping declares it (header, scheme word). Which
//! credentials exist is config's business; which roles a route needs is the route's.

/// A compiled credential-extraction plan.
#[derive(Debug, Clone)]
pub struct AuthPlan {
    headers: Vec<(http::HeaderName, Option<Box<str>>, bool)>,
    /// `WWW-Authenticate` value on a 401.
    pub challenge: Option<Box<str>>,
}

impl AuthPlan {
    /// A plan reading the credential from `headers` — each `(name, scheme word, scheme word
    /// optional)` — tried in order; the error names a bad header.
    pub fn new(
        headers: &[(&str, Option<&str>, bool)],
        challenge: Option<&str>,
    ) -> Result<Self, String> {
        let mut out = Vec::new();
        for (name, scheme, optional) in headers {
            let name = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("`{name}` is not a valid header name"))?;
            out.push((name, scheme.map(Into::into), *optional));
        }
        Ok(Self {
            headers: out,
            challenge: challenge.map(Into::into),
        })
    }

    /// `Authorization: Bearer <token>`, the scheme word required, answering a 401 with
    /// `WWW-Authenticate: <challenge>`.
    pub fn bearer(challenge: &str) -> Self {
        Self {
            headers: vec![(http::header::AUTHORIZATION, Some("Bearer".into()), false)],
            challenge: Some(challenge.into()),
        }
    }

    /// The headers that carry credentials: marked sensitive wherever requests are traced.
    pub fn header_names(&self) -> impl Iterator<Item = &http::HeaderName> {
        self.headers.iter().map(|(n, _, _)| n)
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_is_case_insensitive_and_optional_when_declared() {
        let plan = AuthPlan::new(&[("Authtoken", Some("QSDK"), true)], None).unwrap();
        let mut h = http::HeaderMap::new();
        h.insert("authtoken", "qsdk abc".parse().unwrap());
        assert_eq!(plan.token(&h), Some("abc"));
        h.insert("authtoken", "abc".parse().unwrap());
        assert_eq!(plan.token(&h), Some("abc"));
        h.clear();
        assert_eq!(plan.token(&h), None);
    }

    #[test]
    fn bearer_scheme_is_required_when_not_optional() {
        let plan = AuthPlan::new(&[("Authorization", Some("Bearer"), false)], None).unwrap();
        let mut h = http::HeaderMap::new();
        h.insert("authorization", "abc".parse().unwrap());
        assert_eq!(plan.token(&h), None);
        h.insert("authorization", "bearer  abc".parse().unwrap());
        assert_eq!(plan.token(&h), Some("abc"));
    }
}
