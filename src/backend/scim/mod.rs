//! The `scim` backend: a SCIM 2.0 service provider over HTTP (RFC 7644).
//!
//! - create: `POST /Users`, with the ext `numericId` the local [`Index`] allocated;
//! - update: the target is found by id, by `numericId` (index, then a filter) or by a
//!   `userName eq` filter; the change goes as a `PATCH` when the provider announces it
//!   (`PUT` of the merged user otherwise), with `If-Match` when it announces ETags, and is
//!   computed again from a fresh read when the provider answers 412;
//! - groups: the configured groups are the provider's groups of the same name, changed
//!   through `PATCH /Groups/{id}` after the user write; every group is resolved before any
//!   write, so an unknown group writes nothing.
//!
//! The provider must serve the userbridge extension schema (`schemas/scim/schemas.json`):
//! without it the extension's attributes would be dropped, so the backend refuses to start
//! writing and `/readyz` says why.

mod groups;
pub mod patch;

use std::path::Path;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value};
use tokio::sync::OnceCell;

use self::groups::{Group, Groups, quote};
use super::index::Index;
use super::merge::merge;
use super::outbound::{Outbound, Reply};
use super::{
    Backend, BackendError, BoxFuture, GroupDoc, GroupStore, Query, Search, Store, Stored, Want,
    strip_server_owned,
};
use crate::canonical::{
    self, ATTRIBUTES, EXT_SCHEMA, GroupChange, GroupOp, OpKind, Operation, Target, UserDoc,
    location,
};
use crate::config::{GroupConfig, OutboundConfig};
use crate::redact::Secret;

const SCIM_JSON: &str = "application/scim+json";
/// What a path segment or query value encodes: all but RFC 3986's unreserved characters
/// (providers that do not decode `%2D` still find `a-b`).
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// How many times an update is recomputed after the provider reported a concurrent change.
const PRECONDITION_ATTEMPTS: usize = 3;

/// What the provider announces.
#[derive(Debug, Clone, Copy)]
struct Features {
    patch: bool,
    etag: bool,
    filter: bool,
    sort: bool,
}

/// The SCIM backend.
pub struct Scim {
    http: Outbound,
    index: Index,
    config_groups: Vec<GroupConfig>,
    groups: OnceCell<Groups>,
    features: OnceCell<Features>,
    /// The SCIM paths of secret attributes (`password`, `urn:…:User:mfa.secret`, …).
    secret_paths: Vec<String>,
}

impl Scim {
    /// A backend for the provider at `url`; `index` is the local numericId index file.
    pub fn open(
        url: &str,
        token: Option<&Secret>,
        index: &Path,
        http: &OutboundConfig,
        groups: &[GroupConfig],
    ) -> Result<Self, String> {
        Self::with_index(url, token, Index::open(index)?, http, groups)
    }

    /// A backend for the provider at `url` over `index` (a file's, or a shared store's).
    pub fn with_index(
        url: &str,
        token: Option<&Secret>,
        index: Index,
        http: &OutboundConfig,
        groups: &[GroupConfig],
    ) -> Result<Self, String> {
        let secret_paths = ATTRIBUTES
            .iter()
            .filter(|a| a.secret)
            .map(|a| match a.name.strip_prefix("ext.") {
                Some(rest) => format!("{EXT_SCHEMA}:{rest}"),
                None => a.name.to_owned(),
            })
            .collect();
        Ok(Self {
            http: Outbound::new(url, token, http, SCIM_JSON)?,
            index,
            config_groups: groups.to_vec(),
            groups: OnceCell::new(),
            features: OnceCell::new(),
            secret_paths,
        })
    }

    fn is_secret(&self, path: &str) -> bool {
        self.secret_paths.iter().any(|p| p == path)
    }

    async fn features(&self) -> Result<Features, BackendError> {
        self.features
            .get_or_try_init(|| async {
                let r = self
                    .http
                    .call(Method::GET, "/ServiceProviderConfig", None, None)
                    .await?;
                let spc = Value::Object(ok_json(&r)?);
                let on = |p: &str| spc.pointer(p).and_then(Value::as_bool) == Some(true);
                let features = Features {
                    patch: on("/patch/supported"),
                    etag: on("/etag/supported"),
                    filter: on("/filter/supported"),
                    sort: on("/sort/supported"),
                };
                let s = self
                    .http
                    .call(Method::GET, &format!("/Schemas/{EXT_SCHEMA}"), None, None)
                    .await?;
                if s.status == StatusCode::NOT_FOUND {
                    return Err(BackendError::Failed(format!(
                        "the SCIM provider does not serve the schema {EXT_SCHEMA}: load \
                         schemas/scim/schemas.json into it"
                    )));
                }
                ok_json(&s)?;
                Ok(features)
            })
            .await
            .copied()
    }

    /// The configured groups on the provider, looked up (and created when missing) once.
    async fn groups(&self) -> Result<&Groups, BackendError> {
        self.groups
            .get_or_try_init(|| async {
                let mut out = Vec::with_capacity(self.config_groups.len());
                for (id, name) in groups::wanted(&self.config_groups) {
                    let filter = format!("displayName eq {}", quote(name));
                    let found = self.search("/Groups", &filter, 1, 1).await?.0;
                    let remote = match found.into_iter().next() {
                        Some(g) => id_of(&g)?,
                        None => {
                            let body = serde_json::json!({
                                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                "displayName": name,
                            });
                            let r = self
                                .http
                                .call(Method::POST, "/Groups", Some(&body), None)
                                .await?;
                            id_of(&ok_json(&r)?)?
                        }
                    };
                    out.push(Group {
                        id,
                        name: name.to_owned(),
                        remote,
                    });
                }
                Ok(Groups(out))
            })
            .await
    }

    /// `GET {endpoint}?filter=…`: the resources and the total.
    async fn search(
        &self,
        endpoint: &str,
        filter: &str,
        start: usize,
        count: usize,
    ) -> Result<(Vec<Map<String, Value>>, usize), BackendError> {
        self.search_sorted(endpoint, filter, None, start, count)
            .await
    }

    /// [`Scim::search`], sorted by the provider.
    async fn search_sorted(
        &self,
        endpoint: &str,
        filter: &str,
        sort: Option<&crate::filter::Sort>,
        start: usize,
        count: usize,
    ) -> Result<(Vec<Map<String, Value>>, usize), BackendError> {
        let mut path = format!("{endpoint}?startIndex={start}&count={count}");
        if !filter.is_empty() {
            path.push_str("&filter=");
            path.extend(utf8_percent_encode(filter, COMPONENT));
        }
        if let Some(s) = sort {
            path.push_str("&sortBy=");
            path.extend(utf8_percent_encode(&s.attr.path, COMPONENT));
            if s.descending {
                path.push_str("&sortOrder=descending");
            }
        }
        let r = self.http.call(Method::GET, &path, None, None).await?;
        let list = ok_json(&r)?;
        let total = list
            .get("totalResults")
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0);
        let items = match list.get("Resources") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| v.as_object().cloned())
                .collect(),
            _ => Vec::new(),
        };
        Ok((items, total))
    }

    /// The provider's user `id` and its version, or `None`.
    async fn fetch(
        &self,
        id: &str,
    ) -> Result<Option<(Map<String, Value>, Option<String>)>, BackendError> {
        let path = format!("/Users/{}", utf8_percent_encode(id, COMPONENT));
        let r = self.http.call(Method::GET, &path, None, None).await?;
        if r.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let doc = ok_json(&r)?;
        let version = version_of(&r, &doc);
        Ok(Some((doc, version)))
    }

    /// The user an update's target names.
    async fn resolve(
        &self,
        target: &UserDoc,
    ) -> Result<(Map<String, Value>, Option<String>), BackendError> {
        let (user_name, want) = match Target::of(target).ok_or(BackendError::NotFound)? {
            Target::Id(id) => return self.fetch(&id).await?.ok_or(BackendError::NotFound),
            Target::NumericId(n) => return self.resolve_numeric(n).await,
            Target::Name {
                user_name,
                authenticator,
            } => (user_name, authenticator),
        };
        let doc = self
            .search_one(&format!("userName eq {}", quote(&user_name)))
            .await?;
        let have = canonical::get(&doc, &location("ext.authenticator"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if want != have {
            return Err(BackendError::NotFound);
        }
        self.fetch(&id_of(&doc)?)
            .await?
            .ok_or(BackendError::NotFound)
    }

    /// The user with ext `numericId` `n`: through the local index, else by a filter (and
    /// then indexed).
    async fn resolve_numeric(
        &self,
        n: i64,
    ) -> Result<(Map<String, Value>, Option<String>), BackendError> {
        if let Some(remote) = self.index.remote(n).await?
            && let Some(found) = self.fetch(&remote).await?
        {
            return Ok(found);
        }
        let filter = format!("{EXT_SCHEMA}:numericId eq {n}");
        let doc = self.search_one(&filter).await?;
        self.index.bind(n, &id_of(&doc)?).await?;
        self.fetch(&id_of(&doc)?)
            .await?
            .ok_or(BackendError::NotFound)
    }

    async fn search_one(&self, filter: &str) -> Result<Map<String, Value>, BackendError> {
        self.search("/Users", filter, 1, 2)
            .await?
            .0
            .into_iter()
            .next()
            .ok_or(BackendError::NotFound)
    }

    /// The provider's groups the user is in: its `groups` attribute when the provider keeps
    /// one, else a search of the groups by member.
    async fn groups_of(
        &self,
        user: &Map<String, Value>,
    ) -> Result<Vec<(String, Option<String>)>, BackendError> {
        if let Some(Value::Array(items)) = user.get("groups") {
            return Ok(refs(items, "value", "display"));
        }
        let id = id_of(user)?;
        let filter = format!("members.value eq {}", quote(&id));
        let path = format!(
            "/Groups?attributes=displayName&filter={}",
            utf8_percent_encode(&filter, COMPONENT)
        );
        let r = self.http.call(Method::GET, &path, None, None).await?;
        if r.status == StatusCode::NOT_FOUND {
            // No `/Groups` endpoint: the provider keeps no groups, so the user is in none (a
            // 404 here must not turn an applied write into the caller's "no such user").
            return Ok(Vec::new());
        }
        match ok_json(&r)?.get("Resources") {
            Some(Value::Array(items)) => Ok(refs(items, "id", "displayName")),
            _ => Ok(Vec::new()),
        }
    }

    /// A provider user as a canonical document, with its groups as configured references.
    async fn canonical(&self, doc: Map<String, Value>) -> Result<UserDoc, BackendError> {
        let member_of = self.groups_of(&doc).await?;
        self.canonical_with(doc, &member_of).await
    }

    /// [`Scim::canonical`] when the user's groups (provider id, name) are known already.
    async fn canonical_with(
        &self,
        mut doc: Map<String, Value>,
        member_of: &[(String, Option<String>)],
    ) -> Result<UserDoc, BackendError> {
        let groups = self.groups().await?;
        let refs: Vec<Value> = member_of
            .iter()
            .map(|(remote, display)| groups.canonical(remote, display.as_deref()))
            .collect();
        doc.shift_remove("groups");
        if !refs.is_empty() {
            doc.insert("groups".into(), Value::Array(refs));
        }
        if let Some(Value::Object(meta)) = doc.get_mut("meta") {
            meta.shift_remove("location");
        }
        Ok(UserDoc(doc))
    }

    /// The groups a change names, all resolved before anything is written.
    async fn plan(&self, change: Option<&GroupChange>) -> Result<Vec<Group>, BackendError> {
        let Some(change) = change else {
            return Ok(Vec::new());
        };
        let groups = self.groups().await?;
        change
            .values
            .iter()
            .map(|r| groups.find(r).cloned())
            .collect()
    }

    /// Applies a membership change to the user `uid` (the user write went through already).
    async fn change_groups(
        &self,
        user: &Map<String, Value>,
        op: GroupOp,
        plan: &[Group],
    ) -> Result<(), BackendError> {
        let uid = id_of(user)?;
        let (add, remove): (Vec<&str>, Vec<String>) = match op {
            GroupOp::Add => (plan.iter().map(|g| g.remote.as_str()).collect(), vec![]),
            GroupOp::Remove => (vec![], plan.iter().map(|g| g.remote.clone()).collect()),
            GroupOp::Replace => {
                let current = self.groups_of(user).await?;
                let add = plan
                    .iter()
                    .filter(|g| !current.iter().any(|(c, _)| *c == g.remote))
                    .map(|g| g.remote.as_str())
                    .collect();
                let remove = current
                    .into_iter()
                    .map(|(c, _)| c)
                    .filter(|c| !plan.iter().any(|g| g.remote == *c))
                    .collect();
                (add, remove)
            }
        };
        let calls = add.iter().map(|g| (*g, groups::add_member(&uid))).chain(
            remove
                .iter()
                .map(|g| (g.as_str(), groups::remove_member(&uid))),
        );
        for (group, body) in calls {
            let path = format!("/Groups/{}", utf8_percent_encode(group, COMPONENT));
            let r = self
                .http
                .call(Method::PATCH, &path, Some(&body), None)
                .await
                .map_err(|e| partly(&e))?;
            if !r.status.is_success() {
                return Err(partly(&r.error()));
            }
        }
        Ok(())
    }

    async fn create_user(
        &self,
        user: UserDoc,
        change: Option<&GroupChange>,
    ) -> Result<UserDoc, BackendError> {
        self.features().await?;
        let plan = self.plan(change).await?;
        let mut doc = user.0;
        doc.retain(|_, v| !v.is_null());
        strip_server_owned(&mut doc);
        let n = self.index.reserve().await?;
        canonical::set(&mut doc, &location("ext.numericId"), Value::from(n));
        let body = with_schemas(doc);
        let r = match self
            .http
            .call(Method::POST, "/Users", Some(&body), None)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                // Only a create that provably never left gives its number back.
                if matches!(e, BackendError::Unavailable(_)) {
                    self.index.release(n).await?;
                }
                return Err(e);
            }
        };
        if r.status.is_client_error() {
            self.index.release(n).await?;
            return Err(r.error());
        }
        let created = ok_json(&r)?;
        let uid = id_of(&created)?;
        self.index.bind(n, &uid).await?;
        let adds = change.is_some_and(|c| c.op != GroupOp::Remove) && !plan.is_empty();
        if adds {
            self.change_groups(&created, GroupOp::Add, &plan).await?;
        }
        if created.contains_key("groups") {
            return self.canonical(created).await;
        }
        // A new user is in the groups just added, and only those: no need to ask.
        let member_of: Vec<(String, Option<String>)> = if adds {
            plan.iter()
                .map(|g| (g.remote.clone(), Some(g.name.clone())))
                .collect()
        } else {
            Vec::new()
        };
        self.canonical_with(created, &member_of).await
    }

    /// Deletes the user a delete's target names; the user as it was.
    async fn delete_user(&self, op: Operation) -> Result<UserDoc, BackendError> {
        let target = op.target.unwrap_or_default();
        let (stored, _) = self.resolve(&target).await?;
        let uid = id_of(&stored)?;
        let gone = self.canonical(stored).await?;
        let path = format!("/Users/{}", utf8_percent_encode(&uid, COMPONENT));
        let r = self.http.call(Method::DELETE, &path, None, None).await?;
        match r.status {
            StatusCode::NOT_FOUND => Err(BackendError::NotFound),
            s if s.is_success() => {
                self.index.forget(&uid).await?;
                Ok(gone)
            }
            _ => Err(r.error()),
        }
    }

    async fn update_user(&self, op: Operation) -> Result<UserDoc, BackendError> {
        let features = self.features().await?;
        let target = op.target.clone().unwrap_or_default();
        for _ in 0..PRECONDITION_ATTEMPTS {
            let (stored, version) = self.resolve(&target).await?;
            let uid = id_of(&stored)?;
            let mut op = op.clone();
            op.complete(&UserDoc(stored.clone()))
                .map_err(BackendError::Rejected)?;
            let plan = self.plan(op.groups.as_ref()).await?;
            let mut changes = op.user.0;
            strip_server_owned(&mut changes);
            let mut merged = stored.clone();
            strip_server_owned(&mut merged);
            merge(&mut merged, changes.clone());
            if merged
                .get("userName")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(BackendError::Rejected(
                    crate::rejection::Rejection::invalid(
                        "userName",
                        "required",
                        "userName is required".into(),
                    ),
                ));
            }
            let if_match = version.as_deref().filter(|_| features.etag);
            let path = format!("/Users/{}", utf8_percent_encode(&uid, COMPONENT));
            let reply = if features.patch {
                let ops = patch::operations(&stored, &merged, &changes, |p| self.is_secret(p));
                if ops.is_empty() {
                    None
                } else {
                    let body = patch::body(ops);
                    Some(
                        self.http
                            .call(Method::PATCH, &path, Some(&body), if_match)
                            .await?,
                    )
                }
            } else {
                let body = with_schemas(merged);
                Some(
                    self.http
                        .call(Method::PUT, &path, Some(&body), if_match)
                        .await?,
                )
            };
            match reply {
                Some(r) if r.status == StatusCode::PRECONDITION_FAILED => continue,
                Some(r) if !r.status.is_success() => return Err(r.error()),
                _ => {}
            }
            if let Some(g) = &op.groups {
                self.change_groups(&stored, g.op, &plan).await?;
            }
            let (fresh, _) = self.fetch(&uid).await?.ok_or(BackendError::NotFound)?;
            return self.canonical(fresh).await;
        }
        Err(BackendError::Conflict(
            "the user kept changing on the provider; try again".into(),
        ))
    }
}

/// `(id, name)` of each group in a list, read from members `id_key` and `name_key`.
fn refs(items: &[Value], id_key: &str, name_key: &str) -> Vec<(String, Option<String>)> {
    items
        .iter()
        .filter_map(|g| {
            let id = g.get(id_key)?.as_str()?.to_owned();
            Some((
                id,
                g.get(name_key).and_then(Value::as_str).map(str::to_owned),
            ))
        })
        .collect()
}

/// A group change that failed after the user was written: the answer must say so.
fn partly(e: &BackendError) -> BackendError {
    BackendError::Failed(format!(
        "the user was written but its group membership was not changed: {e}"
    ))
}

/// The body of a success answer as a JSON object, or the error the answer means.
fn ok_json(r: &Reply) -> Result<Map<String, Value>, BackendError> {
    if !r.status.is_success() {
        return Err(r.error());
    }
    match r.json()? {
        Some(Value::Object(m)) => Ok(m),
        _ => Err(BackendError::Failed(format!(
            "a {} answer without a JSON object",
            r.status
        ))),
    }
}

fn id_of(doc: &Map<String, Value>) -> Result<String, BackendError> {
    doc.get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| BackendError::Failed("a resource without an id".into()))
}

fn version_of(r: &Reply, doc: &Map<String, Value>) -> Option<String> {
    r.etag.clone().or_else(|| {
        doc.get("meta")
            .and_then(|m| m.get("version"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    })
}

/// A user document with its `schemas` member first.
fn with_schemas(doc: Map<String, Value>) -> Value {
    Value::Object(canonical::with_schemas(doc))
}

impl Backend for Scim {
    fn kind(&self) -> &'static str {
        "scim"
    }

    fn apply(&self, op: Operation, _: Want) -> BoxFuture<'_, Result<Stored, BackendError>> {
        Box::pin(async move {
            let doc = match op.operation {
                OpKind::Create => {
                    let change = op.groups;
                    self.create_user(op.user, change.as_ref()).await
                }
                OpKind::Update => self.update_user(op).await,
                OpKind::Delete => self.delete_user(op).await,
            };
            doc.map(Stored::from_doc)
        })
    }

    fn ready(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            self.features().await?;
            self.groups().await.map(drop)
        })
    }

    fn store(&self) -> Option<&dyn Store> {
        Some(self)
    }
}

impl Scim {
    /// A provider group as the gateway serves it: ids translated, `$ref`s to this gateway.
    async fn served_group(&self, doc: Map<String, Value>) -> Result<GroupDoc, BackendError> {
        let mut g = self.groups().await?.served(doc);
        // A group without members has an empty list, as the embedded store shows it.
        g.entry("members")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Some(Value::Array(members)) = g.get_mut("members") {
            for m in members.iter_mut().filter_map(Value::as_object_mut) {
                if let Some(v) = m.get("value").and_then(Value::as_str).map(str::to_owned) {
                    m.insert("$ref".into(), Value::String(format!("/scim/v2/Users/{v}")));
                }
            }
        }
        Ok(g)
    }

    /// Refuses members that are no user on the provider, among those `doc` adds to `before`
    /// (a provider may keep any value; the gateway's store does not, and neither does this),
    /// and gives each member its `display`, the user's userName, as the embedded store does.
    async fn check_members(
        &self,
        doc: &mut Map<String, Value>,
        before: Option<&Map<String, Value>>,
    ) -> Result<(), BackendError> {
        let known: Vec<(String, Option<Value>)> = before
            .and_then(|d| d.get("members"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| {
                let v = m.get("value")?.as_str()?.to_owned();
                Some((v, m.get("display").cloned()))
            })
            .collect();
        let Some(Value::Array(members)) = doc.get_mut("members") else {
            return Ok(());
        };
        for (i, m) in members.iter_mut().enumerate() {
            let Some(m) = m.as_object_mut() else { continue };
            let Some(v) = m.get("value").and_then(Value::as_str).map(str::to_owned) else {
                continue;
            };
            m.shift_remove("$ref");
            let display = match known.iter().find(|(k, _)| *k == v) {
                Some((_, d)) => d.clone(),
                None => match self.fetch(&v).await? {
                    Some((user, _)) => user.get("userName").cloned(),
                    None => {
                        return Err(BackendError::Rejected(
                            crate::rejection::Rejection::invalid(
                                "members",
                                "invalid",
                                format!("members[{i}]: no user with id {v}"),
                            ),
                        ));
                    }
                },
            };
            match display {
                Some(d) => m.insert("display".into(), d),
                None => m.shift_remove("display"),
            };
        }
        Ok(())
    }

    /// Refuses a `displayName` another group of the provider has (the configured groups are
    /// found by their name; a provider may allow two of one name, the gateway does not).
    async fn check_name(
        &self,
        doc: &Map<String, Value>,
        own: Option<&str>,
    ) -> Result<(), BackendError> {
        let Some(name) = doc.get("displayName").and_then(Value::as_str) else {
            return Ok(());
        };
        let filter = format!("displayName eq {}", quote(name));
        let (found, _) = self.search("/Groups", &filter, 1, 2).await?;
        if found
            .iter()
            .any(|g| g.get("id").and_then(Value::as_str) != own)
        {
            return Err(BackendError::Conflict(format!(
                "a group named '{name}' exists"
            )));
        }
        Ok(())
    }

    /// The provider's group a gateway id names, and its version.
    async fn fetch_group(
        &self,
        id: &str,
    ) -> Result<Option<(String, Map<String, Value>, Option<String>)>, BackendError> {
        let remote = self.groups().await?.remote_of(id).to_owned();
        let path = format!("/Groups/{}", utf8_percent_encode(&remote, COMPONENT));
        let r = self.http.call(Method::GET, &path, None, None).await?;
        if r.status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let doc = ok_json(&r)?;
        let version = super::version_of(&doc).map(str::to_owned);
        Ok(Some((path, doc, version)))
    }
}

impl GroupStore for Scim {
    fn get_group(&self, id: &str) -> BoxFuture<'_, Result<Option<GroupDoc>, BackendError>> {
        let id = id.to_owned();
        Box::pin(async move {
            match self.fetch_group(&id).await? {
                Some((_, doc, _)) => Ok(Some(self.served_group(doc).await?)),
                None => Ok(None),
            }
        })
    }

    fn all_groups(&self) -> BoxFuture<'_, Result<Vec<GroupDoc>, BackendError>> {
        Box::pin(async move {
            const PAGE: usize = 200;
            // The configured groups exist on the provider before it is listed.
            self.groups().await?;
            let mut out = Vec::new();
            loop {
                let (page, total) = self.search("/Groups", "", out.len() + 1, PAGE).await?;
                let n = page.len();
                for g in page {
                    out.push(self.served_group(g).await?);
                }
                if out.len() > super::MAX_SCAN {
                    return Err(BackendError::TooMany(format!(
                        "the provider has more than {} groups",
                        super::MAX_SCAN
                    )));
                }
                if n == 0 || out.len() >= total {
                    return Ok(out);
                }
            }
        })
    }

    fn create_group(&self, group: GroupDoc) -> BoxFuture<'_, Result<GroupDoc, BackendError>> {
        Box::pin(async move {
            let mut doc = group;
            for k in ["id", "meta"] {
                doc.shift_remove(k);
            }
            self.check_name(&doc, None).await?;
            self.check_members(&mut doc, None).await?;
            doc.insert(
                "schemas".into(),
                serde_json::json!(["urn:ietf:params:scim:schemas:core:2.0:Group"]),
            );
            let r = self
                .http
                .call(Method::POST, "/Groups", Some(&Value::Object(doc)), None)
                .await?;
            self.served_group(ok_json(&r)?).await
        })
    }

    fn replace_group(
        &self,
        id: &str,
        group: GroupDoc,
        if_match: Option<&str>,
    ) -> BoxFuture<'_, Result<GroupDoc, BackendError>> {
        let id = id.to_owned();
        let wanted = if_match.map(str::to_owned);
        Box::pin(async move {
            let features = self.features().await?;
            let (path, stored, version) =
                self.fetch_group(&id).await?.ok_or(BackendError::NotFound)?;
            super::check_version(wanted.as_deref(), &stored)?;
            let mut doc = group;
            for k in ["id", "meta"] {
                doc.shift_remove(k);
            }
            self.check_name(&doc, stored.get("id").and_then(Value::as_str))
                .await?;
            self.check_members(&mut doc, Some(&stored)).await?;
            doc.insert(
                "schemas".into(),
                serde_json::json!(["urn:ietf:params:scim:schemas:core:2.0:Group"]),
            );
            let if_match = version.as_deref().filter(|_| features.etag);
            let r = self
                .http
                .call(Method::PUT, &path, Some(&Value::Object(doc)), if_match)
                .await?;
            if r.status == StatusCode::PRECONDITION_FAILED {
                return Err(BackendError::Changed(String::new()));
            }
            self.served_group(ok_json(&r)?).await
        })
    }

    fn delete_group(
        &self,
        id: &str,
        if_match: Option<&str>,
    ) -> BoxFuture<'_, Result<bool, BackendError>> {
        let id = id.to_owned();
        let wanted = if_match.map(str::to_owned);
        Box::pin(async move {
            let features = self.features().await?;
            let Some((path, stored, version)) = self.fetch_group(&id).await? else {
                return Ok(false);
            };
            super::check_version(wanted.as_deref(), &stored)?;
            let if_match = version.as_deref().filter(|_| features.etag);
            let r = self
                .http
                .call(Method::DELETE, &path, None, if_match)
                .await?;
            match r.status {
                StatusCode::NOT_FOUND => Ok(false),
                StatusCode::PRECONDITION_FAILED => Err(BackendError::Changed(String::new())),
                s if s.is_success() => Ok(true),
                _ => Err(r.error()),
            }
        })
    }
}

/// A canonical attribute's SCIM path in a filter: `emails[primary].value` is `emails.value`,
/// ext attributes are URN-qualified.
fn filter_path(name: &str) -> String {
    let plain = name.replace("[primary]", "");
    match plain.strip_prefix("ext.") {
        Some(rest) => format!("{EXT_SCHEMA}:{rest}"),
        None => plain,
    }
}

impl Store for Scim {
    fn group_store(&self) -> Option<&dyn GroupStore> {
        Some(self)
    }

    fn find(&self, target: &UserDoc) -> BoxFuture<'_, Result<Option<UserDoc>, BackendError>> {
        let target = target.clone();
        Box::pin(async move {
            match self.resolve(&target).await {
                Ok((doc, _)) => Ok(Some(self.canonical(doc).await?)),
                Err(BackendError::NotFound) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn search(&self, search: Search) -> BoxFuture<'_, Result<(Vec<UserDoc>, usize), BackendError>> {
        Box::pin(async move {
            // The provider filters (`co` is case-insensitive on these attributes) and pages.
            let filter = match &search.text {
                Some(t) => search
                    .contains
                    .iter()
                    .map(|a| format!("{} co {}", filter_path(a), quote(t)))
                    .collect::<Vec<_>>()
                    .join(" or "),
                None => String::new(),
            };
            let (items, total) = self
                .search("/Users", &filter, search.offset + 1, search.limit)
                .await?;
            let mut users = Vec::with_capacity(items.len());
            for doc in items.into_iter().take(search.limit) {
                users.push(self.canonical(doc).await?);
            }
            Ok((users, total))
        })
    }

    fn query(&self, q: Query) -> BoxFuture<'_, Result<(Vec<UserDoc>, usize), BackendError>> {
        Box::pin(async move {
            let features = self.features().await?;
            // The provider runs the filter and the sort when it announces them, except on
            // `groups`, whose ids are this gateway's, not the provider's.
            let on_groups = q
                .filter
                .as_ref()
                .is_some_and(|f| f.attrs().iter().any(|a| a.keys[0] == "groups"))
                || q.sort.as_ref().is_some_and(|s| s.attr.keys[0] == "groups");
            if on_groups
                || (q.filter.is_some() && !features.filter)
                || (q.sort.is_some() && !features.sort)
            {
                return q.scan(self).await;
            }
            let filter = q
                .filter
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            let (items, total) = self
                .search_sorted("/Users", &filter, q.sort.as_ref(), q.start + 1, q.count)
                .await?;
            let mut users = Vec::with_capacity(items.len());
            for doc in items.into_iter().take(q.count) {
                users.push(self.canonical(doc).await?);
            }
            Ok((users, total))
        })
    }

    fn get(&self, id: &str) -> BoxFuture<'_, Result<Option<UserDoc>, BackendError>> {
        let id = id.to_owned();
        Box::pin(async move {
            match self.fetch(&id).await? {
                Some((doc, _)) => Ok(Some(self.canonical(doc).await?)),
                None => Ok(None),
            }
        })
    }

    fn list(
        &self,
        user_name: Option<String>,
        start: usize,
        count: usize,
    ) -> BoxFuture<'_, Result<(Vec<UserDoc>, usize), BackendError>> {
        Box::pin(async move {
            let filter = user_name
                .map(|n| format!("userName eq {}", quote(&n)))
                .unwrap_or_default();
            let (items, total) = self.search("/Users", &filter, start + 1, count).await?;
            let mut users = Vec::with_capacity(items.len());
            for doc in items {
                users.push(self.canonical(doc).await?);
            }
            Ok((users, total))
        })
    }

    fn create(&self, user: UserDoc) -> BoxFuture<'_, Result<UserDoc, BackendError>> {
        Box::pin(self.create_user(user, None))
    }

    fn replace(
        &self,
        id: &str,
        user: UserDoc,
        if_match: Option<&str>,
    ) -> BoxFuture<'_, Result<UserDoc, BackendError>> {
        let id = id.to_owned();
        let wanted = if_match.map(str::to_owned);
        Box::pin(async move {
            let features = self.features().await?;
            let (stored, version) = self.fetch(&id).await?.ok_or(BackendError::NotFound)?;
            // The version the client named is the one read; the provider then refuses the
            // write if the user changed since (its own `If-Match`).
            super::check_version(wanted.as_deref(), &stored)?;
            let mut doc = user.0;
            doc.retain(|_, v| !v.is_null());
            strip_server_owned(&mut doc);
            // The number every dialect addresses the user by stays.
            if let Some(n) = canonical::get(&stored, &location("ext.numericId")).cloned() {
                canonical::set(&mut doc, &location("ext.numericId"), n);
            }
            let path = format!("/Users/{}", utf8_percent_encode(&id, COMPONENT));
            let if_match = version.as_deref().filter(|_| features.etag);
            let r = self
                .http
                .call(Method::PUT, &path, Some(&with_schemas(doc)), if_match)
                .await?;
            self.canonical(ok_json(&r)?).await
        })
    }

    fn delete(
        &self,
        id: &str,
        if_match: Option<&str>,
    ) -> BoxFuture<'_, Result<bool, BackendError>> {
        let id = id.to_owned();
        let wanted = if_match.map(str::to_owned);
        Box::pin(async move {
            let path = format!("/Users/{}", utf8_percent_encode(&id, COMPONENT));
            let mut version = None;
            if let Some(h) = &wanted {
                let features = self.features().await?;
                let Some((stored, v)) = self.fetch(&id).await? else {
                    return Ok(false);
                };
                super::check_version(Some(h), &stored)?;
                version = v.filter(|_| features.etag);
            }
            let r = self
                .http
                .call(Method::DELETE, &path, None, version.as_deref())
                .await?;
            match r.status {
                StatusCode::NOT_FOUND => Ok(false),
                s if s.is_success() => {
                    self.index.forget(&id).await?;
                    Ok(true)
                }
                _ => Err(r.error()),
            }
        })
    }
}
