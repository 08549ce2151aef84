//! The `webhook` backend: POSTs each canonical operation as JSON to one URL, for estates whose
//! backend speaks neither SQL nor SCIM. The protocol is in `docs/webhook.md`:
//!
//! - `{"operation": "create", "dialect", "user", "groups"?}` → 201/200 and the stored user;
//! - `{"operation": "update", "dialect", "target", "user", "groups"?}` → 200 and the stored
//!   user; `user` holds only the attributes sent (`null` clears);
//! - `{"operation": "get", "target"}` → 200 and the stored user, or 404. The gateway asks it
//!   only when an update has conditions on the stored user (a mapping's preconditions, or an
//!   attribute sent in part), and then pins the update to the user's `id`; and for a
//!   dialect's read route that names one user;
//! - `{"operation": "delete", "dialect", "target"}` → 200 and the user as it was, or 404;
//! - `{"operation": "list", "search", "contains", "offset", "limit"}` → 200 and
//!   `{"users": [...], "total": N}`: the users one of whose `contains` attributes holds
//!   `search` (case-insensitively; every user when `null`), in creation order.
//!
//! Secrets travel in clear (the receiver must set them): use https and a token. The caller's
//! own password is checked by the gateway and never sent.

use reqwest::Method;
use serde::Serialize;
use serde_json::{Map, Value};

use super::outbound::{self, Outbound};
use super::{Backend, BackendError, BoxFuture, Search, Store, Stored, Want};
use crate::canonical::{DocJson, GroupChange, OpKind, Operation, UserDoc};
use crate::config::OutboundConfig;
use crate::redact::Secret;

/// The webhook backend.
pub struct Webhook {
    http: Outbound,
    /// The configured groups: what `/Groups` serves, with the members the users show.
    groups: Vec<crate::config::GroupConfig>,
}

impl Webhook {
    /// A backend posting to `url`.
    pub fn open(
        url: &str,
        token: Option<&Secret>,
        cfg: &OutboundConfig,
        groups: &[crate::config::GroupConfig],
    ) -> Result<Self, String> {
        Ok(Self {
            http: Outbound::new(url, token, cfg, "application/json")?,
            groups: groups.to_vec(),
        })
    }

    /// Posts `body`; the body of a successful answer.
    async fn send(&self, body: &(impl Serialize + ?Sized)) -> Result<bytes::Bytes, BackendError> {
        let r = self
            .http
            .call_bytes(Method::POST, "", Some(outbound::encode(body)?), None)
            .await?;
        if !r.status.is_success() {
            return Err(r.error());
        }
        Ok(r.body)
    }

    /// The stored user `target` names, as a document (parsed once).
    async fn lookup(&self, target: Value) -> Result<UserDoc, BackendError> {
        let get = serde_json::json!({"operation": "get", "target": target});
        Stored::user_from_json(&self.send(&get).await?)
    }
}

/// The wire form of an operation: secrets in clear, no caller password, no conditions (the
/// gateway resolved them). Written straight from the operation, without building a document.
#[derive(Serialize)]
struct Wire<'a> {
    operation: &'static str,
    dialect: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<DocJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    groups: Option<&'a GroupChange>,
}

fn wire(op: &Operation) -> Wire<'_> {
    Wire {
        operation: op.operation.as_str(),
        dialect: &op.dialect,
        target: op.target.as_ref().map(|t| &t.0),
        user: (op.operation != OpKind::Delete).then(|| DocJson::exposed_with_schemas(&op.user.0)),
        groups: op.groups.as_ref(),
    }
}

impl Backend for Webhook {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn apply(&self, mut op: Operation, want: Want) -> BoxFuture<'_, Result<Stored, BackendError>> {
        Box::pin(async move {
            if op.operation == OpKind::Update && op.is_conditional() {
                let target = op.target.take().unwrap_or_default();
                let stored = self.lookup(Value::Object(target.0)).await?;
                op.complete(&stored).map_err(BackendError::Rejected)?;
                let mut pinned = Map::new();
                if let Some(id) = stored.0.get("id") {
                    pinned.insert("id".into(), id.clone());
                }
                op.target = Some(UserDoc(pinned));
            }
            Stored::from_answer(self.send(&wire(&op)).await?, want)
        })
    }

    fn ready(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        Box::pin(async move {
            // Any HTTP answer shows the receiver is up; only a failed connection is not ready.
            match self.http.call(Method::OPTIONS, "", None, None).await {
                Ok(_) => Ok(()),
                Err(BackendError::Unavailable(m)) => Err(BackendError::Unavailable(m)),
                Err(BackendError::Timeout) => Err(BackendError::Timeout),
                Err(_) => Ok(()),
            }
        })
    }

    fn store(&self) -> Option<&dyn Store> {
        Some(self)
    }
}

/// The receiver's answer to a `list` operation.
#[derive(serde::Deserialize)]
struct ListAnswer {
    users: Vec<Map<String, Value>>,
    #[serde(default)]
    total: Option<usize>,
}

/// Reads through the `get` and `list` operations; a webhook estate is written through the
/// dialects.
/// `/Groups`: the configured groups and the users that show them
/// ([`super::derived_groups`]).
impl super::GroupStore for Webhook {
    fn get_group(&self, id: &str) -> BoxFuture<'_, Result<Option<super::GroupDoc>, BackendError>> {
        let id = id.to_owned();
        Box::pin(async move { super::derived_groups::get(self, &self.groups, &id).await })
    }

    fn all_groups(&self) -> BoxFuture<'_, Result<Vec<super::GroupDoc>, BackendError>> {
        Box::pin(super::derived_groups::all(self, &self.groups))
    }

    fn create_group(
        &self,
        _group: super::GroupDoc,
    ) -> BoxFuture<'_, Result<super::GroupDoc, BackendError>> {
        Box::pin(async {
            Err(BackendError::Unsupported(
                "webhook",
                "create a group: its groups are declared in config",
            ))
        })
    }

    fn replace_group(
        &self,
        id: &str,
        group: super::GroupDoc,
        if_match: Option<&str>,
    ) -> BoxFuture<'_, Result<super::GroupDoc, BackendError>> {
        let (id, if_match) = (id.to_owned(), if_match.map(str::to_owned));
        Box::pin(async move {
            super::derived_groups::replace(self, &self.groups, &id, group, if_match.as_deref())
                .await
        })
    }

    fn delete_group(
        &self,
        _id: &str,
        _if_match: Option<&str>,
    ) -> BoxFuture<'_, Result<bool, BackendError>> {
        Box::pin(async {
            Err(BackendError::Unsupported(
                "webhook",
                "delete a group: its groups are declared in config",
            ))
        })
    }
}

impl Store for Webhook {
    fn group_store(&self) -> Option<&dyn super::GroupStore> {
        Some(self)
    }

    fn find(&self, target: &UserDoc) -> BoxFuture<'_, Result<Option<UserDoc>, BackendError>> {
        let target = Value::Object(target.0.clone());
        Box::pin(async move {
            match self.lookup(target).await {
                Ok(u) => Ok(Some(u)),
                Err(BackendError::NotFound) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn search(&self, search: Search) -> BoxFuture<'_, Result<(Vec<UserDoc>, usize), BackendError>> {
        Box::pin(async move {
            let body = serde_json::json!({
                "operation": "list",
                "search": search.text,
                "contains": search.contains,
                "offset": search.offset,
                "limit": search.limit,
            });
            let answer = self.send(&body).await?;
            let list: ListAnswer = serde_json::from_slice(&answer).map_err(|_| {
                BackendError::Failed(
                    "a list answer that is not {\"users\": [...], \"total\": N}".into(),
                )
            })?;
            let total = list.total.unwrap_or(list.users.len());
            let users = list
                .users
                .into_iter()
                .filter(|u| u.contains_key("id"))
                .map(UserDoc)
                .collect();
            Ok((users, total))
        })
    }

    fn get(&self, id: &str) -> BoxFuture<'_, Result<Option<UserDoc>, BackendError>> {
        let mut target = serde_json::Map::new();
        target.insert("id".into(), Value::String(id.to_owned()));
        let target = UserDoc(target);
        Box::pin(async move { self.find(&target).await })
    }

    fn list(
        &self,
        user_name: Option<String>,
        start: usize,
        _count: usize,
    ) -> BoxFuture<'_, Result<(Vec<UserDoc>, usize), BackendError>> {
        Box::pin(async move {
            let Some(name) = user_name else {
                return Err(BackendError::Unsupported("webhook", "list all users"));
            };
            let target = serde_json::json!({"userName": name});
            match self.lookup(target).await {
                Ok(u) if start == 0 => Ok((vec![u], 1)),
                Ok(_) => Ok((Vec::new(), 1)),
                Err(BackendError::NotFound) => Ok((Vec::new(), 0)),
                Err(e) => Err(e),
            }
        })
    }

    fn create(&self, _user: UserDoc) -> BoxFuture<'_, Result<UserDoc, BackendError>> {
        Box::pin(async { Err(BackendError::Unsupported("webhook", "create through SCIM")) })
    }

    fn replace(
        &self,
        _id: &str,
        _user: UserDoc,
        _if_match: Option<&str>,
    ) -> BoxFuture<'_, Result<UserDoc, BackendError>> {
        Box::pin(async { Err(BackendError::Unsupported("webhook", "replace through SCIM")) })
    }

    fn delete(
        &self,
        _id: &str,
        _if_match: Option<&str>,
    ) -> BoxFuture<'_, Result<bool, BackendError>> {
        Box::pin(async { Err(BackendError::Unsupported("webhook", "delete")) })
    }
}
