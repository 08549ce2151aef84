//! Backends: where canonical operations land. One trait, one file per kind; a new backend is a
//! new file here and a variant of [`crate::config::BackendConfig`].
//!
//! A backend receives the whole canonical operation — self-contained: an update that must be
//! completed against the stored user carries its plan, and the backend calls
//! [`Operation::complete`] once it has found the user, inside its own transaction — and returns
//! the stored user. No backend sees a mapping.

pub mod derived_groups;
pub mod http1;
pub mod index;
pub mod keys;
pub mod merge;
pub mod mirror;
pub mod outbound;
pub mod postgres;
pub mod row;
pub mod scim;
pub mod sqlite;
pub mod stored;
pub mod webhook;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::canonical::{EXT_SCHEMA, Operation, UserDoc};
use crate::config::{BackendConfig, GroupConfig};
use crate::rejection::Rejection;

pub use stored::{Stored, Want};

/// A boxed, sendable future: what trait objects can return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// How a backend operation failed. Never holds a secret value.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The target user does not exist.
    #[error("no such user")]
    NotFound,
    /// The user (or the new name) exists already.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A group the backend does not know.
    #[error("unknown group: {0}")]
    UnknownGroup(String),
    /// A precondition or a completed attribute failed its rule (the dialect's 400).
    #[error("{}", .0.message)]
    Rejected(Rejection),
    /// The backend could not be reached; the request never left (503).
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// No answer in time; the write may or may not have happened (504).
    #[error("backend timed out")]
    Timeout,
    /// The backend failed or answered something unusable (502).
    #[error("backend failed: {0}")]
    Failed(String),
    /// The backend cannot do this at all.
    #[error("the {0} backend cannot {1}")]
    Unsupported(&'static str, &'static str),
    /// A search would read more than the store is willing to (SCIM `tooMany`).
    #[error("{0}")]
    TooMany(String),
    /// The user is not at the version an `If-Match` named (412).
    #[error("the user changed: it is at version {0}")]
    Changed(String),
}

/// A place canonical users are written to.
pub trait Backend: Send + Sync {
    /// The kind, for logs and `/readyz`.
    fn kind(&self) -> &'static str;

    /// Applies one operation, all or nothing, and returns the stored user (secrets included:
    /// the caller renders it through a mapping, which never renders a secret); `want` says
    /// whether the caller needs the whole document or only its id.
    fn apply(&self, op: Operation, want: Want) -> BoxFuture<'_, Result<Stored, BackendError>>;

    /// Whether the backend answers now.
    fn ready(&self) -> BoxFuture<'_, Result<(), BackendError>>;

    /// The canonical store behind `/scim/v2`, when this backend is one.
    fn store(&self) -> Option<&dyn Store> {
        None
    }

    /// Figures of the backend's own for `/metrics` (the mirror's queue).
    fn gauges(&self) -> Vec<Gauge> {
        Vec::new()
    }

    /// Where `Idempotency-Key`s are kept when the backend is shared by several gateways (so
    /// that a retry sent to another instance is recognised); `None`: in the gateway's memory.
    fn idempotency_keys(&self) -> Option<Arc<dyn keys::KeyStore>> {
        None
    }

    /// The numericId index of the SCIM backend `scim` (a mirror's shadow), kept in this
    /// backend when several gateways share it; `None`: the SCIM backend's own file.
    fn scim_index(&self, scim: &BackendConfig) -> Option<index::Index> {
        let _ = scim;
        None
    }

    /// The queue a mirror over this backend (as its primary) keeps its copies in, when the
    /// backend is shared by several gateways; `None`: a SQLite file beside the gateway.
    fn mirror_queue(&self) -> Option<Arc<dyn mirror::Queue>> {
        None
    }
}

/// One figure a backend reports on `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct Gauge {
    /// The metric's name, after the `userbridge_` prefix.
    pub name: &'static str,
    /// Its help text.
    pub help: &'static str,
    /// Its value.
    pub value: i64,
    /// A running total (a counter) rather than a level.
    pub counter: bool,
}

impl Gauge {
    /// The value of a figure a backend keeps in an atomic (saturating at `i64::MAX`).
    pub fn value_of(a: &std::sync::atomic::AtomicU64) -> i64 {
        i64::try_from(a.load(std::sync::atomic::Ordering::Relaxed)).unwrap_or(i64::MAX)
    }
}

/// A list route's search: the users one of whose `contains` attributes holds `text`
/// (case-insensitively; every user when `None`), in creation order, `offset` skipped, at most
/// `limit` answered.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// The text looked for.
    pub text: Option<String>,
    /// The canonical attributes it is looked for in (any one).
    pub contains: Vec<&'static str>,
    /// Users to skip.
    pub offset: usize,
    /// The most users to answer.
    pub limit: usize,
}

impl Search {
    /// Whether `user` is one of the users searched for.
    pub fn matches(&self, user: &UserDoc) -> bool {
        let Some(text) = &self.text else {
            return true;
        };
        let needle = text.to_lowercase();
        self.contains.iter().any(|a| {
            user.attr(a)
                .and_then(Value::as_str)
                .is_some_and(|v| v.to_lowercase().contains(&needle))
        })
    }

    /// The search run over every user of `store`, read a page at a time: for a store that
    /// cannot search natively.
    pub async fn scan(&self, store: &dyn Store) -> Result<(Vec<UserDoc>, usize), BackendError> {
        const PAGE: usize = 200;
        let (mut found, mut total, mut start) = (Vec::new(), 0, 0);
        loop {
            let (page, all) = store.list(None, start, PAGE).await?;
            let n = page.len();
            for u in page {
                if self.matches(&u) {
                    if total >= self.offset && found.len() < self.limit {
                        found.push(u);
                    }
                    total += 1;
                }
            }
            start += n;
            if n == 0 || start >= all {
                return Ok((found, total));
            }
        }
    }
}

/// A `/scim/v2` search (RFC 7644 §3.4.2): a resolved filter, an order, a page. Without a
/// sort, matches come in creation order; with one, creation order breaks ties, so that pages
/// are stable.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// The users matched (every user when `None`).
    pub filter: Option<crate::filter::Filter>,
    /// `sortBy` / `sortOrder`.
    pub sort: Option<crate::filter::Sort>,
    /// Matches skipped (`startIndex` − 1).
    pub start: usize,
    /// The most matches answered.
    pub count: usize,
}

/// The most users a search reads when the store cannot filter or sort them itself: beyond
/// it, the search is refused (`tooMany`) rather than held in memory.
pub const MAX_SCAN: usize = 100_000;

impl Query {
    /// The page this query selects from `candidates` (in creation order), and how many match.
    pub fn select(&self, candidates: Vec<UserDoc>) -> (Vec<UserDoc>, usize) {
        self.select_by(candidates, |u| &u.0)
    }

    /// [`Query::select`] over any resources, each seen as a document through `doc`.
    pub fn select_by<T>(
        &self,
        candidates: Vec<T>,
        doc: impl Fn(&T) -> &Map<String, Value>,
    ) -> (Vec<T>, usize) {
        let mut matched: Vec<T> = match &self.filter {
            Some(f) => candidates
                .into_iter()
                .filter(|u| f.matches(doc(u)))
                .collect(),
            None => candidates,
        };
        if let Some(sort) = &self.sort {
            let mut keyed: Vec<(Option<Value>, T)> = matched
                .into_iter()
                .map(|u| (crate::filter::sort_key(&sort.attr, doc(&u)), u))
                .collect();
            keyed.sort_by(|(a, _), (b, _)| {
                let o = crate::filter::cmp_keys(a.as_ref(), b.as_ref());
                if sort.descending { o.reverse() } else { o }
            });
            matched = keyed.into_iter().map(|(_, u)| u).collect();
        }
        let total = matched.len();
        let page = matched
            .into_iter()
            .skip(self.start)
            .take(self.count)
            .collect();
        (page, total)
    }

    /// The query run over every user of `store`, read a page at a time and evaluated here: for
    /// a store that cannot filter natively.
    pub async fn scan<S: Store + ?Sized>(
        &self,
        store: &S,
    ) -> Result<(Vec<UserDoc>, usize), BackendError> {
        const PAGE: usize = 200;
        let mut all = Vec::new();
        loop {
            let page = Search {
                offset: all.len(),
                limit: PAGE,
                ..Search::default()
            };
            let (users, total) = store.search(page).await?;
            let n = users.len();
            all.extend(users);
            if all.len() > MAX_SCAN {
                return Err(BackendError::TooMany(format!(
                    "the search reads more than {MAX_SCAN} users: narrow it with a filter this \
                     backend runs itself"
                )));
            }
            if n == 0 || all.len() >= total {
                return Ok(self.select(all));
            }
        }
    }
}

/// A SCIM group (`id`, `displayName`, `externalId`, `members`, `meta`).
pub type GroupDoc = Map<String, Value>;

/// The groups a store keeps, as `/scim/v2/Groups` reads and edits them: the same groups, and
/// the same memberships, as the users' `groups` and every dialect's group operations.
pub trait GroupStore: Send + Sync {
    /// The group `id`.
    fn get_group(&self, id: &str) -> BoxFuture<'_, Result<Option<GroupDoc>, BackendError>>;
    /// Every group, in id order.
    fn all_groups(&self) -> BoxFuture<'_, Result<Vec<GroupDoc>, BackendError>>;
    /// Creates a group (its `members` are user ids).
    fn create_group(&self, group: GroupDoc) -> BoxFuture<'_, Result<GroupDoc, BackendError>>;
    /// Replaces the group `id` when it is at a version `if_match` names.
    fn replace_group(
        &self,
        id: &str,
        group: GroupDoc,
        if_match: Option<&str>,
    ) -> BoxFuture<'_, Result<GroupDoc, BackendError>>;
    /// Deletes the group `id` when it is at a version `if_match` names; false when there was
    /// none.
    fn delete_group(
        &self,
        id: &str,
        if_match: Option<&str>,
    ) -> BoxFuture<'_, Result<bool, BackendError>>;
}

/// A canonical user store that can also be read and edited directly (the `/scim/v2` ingress,
/// the dialects' read routes, export, diff).
pub trait Store: Send + Sync {
    /// The user with canonical `id`.
    fn get(&self, id: &str) -> BoxFuture<'_, Result<Option<UserDoc>, BackendError>>;
    /// Users whose `userName` equals `name` (all users when `None`), in creation order, after
    /// skipping `start` and taking at most `count`; and the total.
    fn list(
        &self,
        user_name: Option<String>,
        start: usize,
        count: usize,
    ) -> BoxFuture<'_, Result<(Vec<UserDoc>, usize), BackendError>>;
    /// The user a target document names (`id`, ext `numericId`, or `userName` with ext
    /// `authenticator`), without its secrets.
    fn find(&self, target: &UserDoc) -> BoxFuture<'_, Result<Option<UserDoc>, BackendError>>;
    /// The groups this store keeps, when it can serve `/scim/v2/Groups`.
    fn group_store(&self) -> Option<&dyn GroupStore> {
        None
    }
    /// The users `search` names, and how many matched in all.
    fn search(&self, search: Search) -> BoxFuture<'_, Result<(Vec<UserDoc>, usize), BackendError>>;
    /// The page of users a `/scim/v2` query selects, and how many match in all. By default
    /// every user is read and the query evaluated here ([`Query::scan`]).
    fn query(&self, query: Query) -> BoxFuture<'_, Result<(Vec<UserDoc>, usize), BackendError>> {
        Box::pin(async move { query.scan(self).await })
    }
    /// Creates a user from a SCIM document (server-owned members ignored).
    fn create(&self, user: UserDoc) -> BoxFuture<'_, Result<UserDoc, BackendError>>;
    /// Replaces the user `id` with `user` (attributes not in it are cleared), when it is at a
    /// version `if_match` names (an `If-Match` value; any version when `None`), in the same
    /// transaction as the write; else [`BackendError::Changed`].
    fn replace(
        &self,
        id: &str,
        user: UserDoc,
        if_match: Option<&str>,
    ) -> BoxFuture<'_, Result<UserDoc, BackendError>>;
    /// Deletes the user `id` when it is at a version `if_match` names; false when there was
    /// none.
    fn delete(&self, id: &str, if_match: Option<&str>)
    -> BoxFuture<'_, Result<bool, BackendError>>;
    /// Whether [`Store::get_with_secrets`] returns the stored secrets (a SCIM provider never
    /// returns a password).
    fn keeps_secrets(&self) -> bool {
        false
    }
    /// The user with canonical `id`, the secrets that must stay recoverable (MFA seeds, shared
    /// secrets) included where the store can give them back — a password never, it is kept
    /// as a hash (import compares them to skip identical lines, a mirror copies them; never
    /// rendered or printed).
    fn get_with_secrets(&self, id: &str) -> BoxFuture<'_, Result<Option<UserDoc>, BackendError>> {
        self.get(id)
    }
    /// Whether `clear` is the password the user `id` has, where the store can tell (it keeps
    /// passwords as hashes: [`crate::password`]); `None` where it cannot.
    fn verify_password(
        &self,
        id: &str,
        clear: String,
    ) -> BoxFuture<'_, Result<Option<bool>, BackendError>> {
        let _ = (id, clear);
        Box::pin(async { Ok(None) })
    }
}

/// Opens the configured backend.
pub fn open(
    cfg: &BackendConfig,
    groups: &[GroupConfig],
    secrets: &crate::config::SecretsConfig,
) -> Result<Arc<dyn Backend>, String> {
    match cfg {
        BackendConfig::Sqlite { path } => {
            Ok(Arc::new(sqlite::Sqlite::open(path, groups, secrets)?))
        }
        BackendConfig::Scim {
            url,
            token,
            index,
            http,
        } => Ok(Arc::new(scim::Scim::open(
            url,
            token.as_ref(),
            index,
            http,
            groups,
        )?)),
        BackendConfig::Webhook { url, token, http } => Ok(Arc::new(webhook::Webhook::open(
            url,
            token.as_ref(),
            http,
            groups,
        )?)),
        BackendConfig::Postgres { .. } => {
            let settings = postgres::Settings::of(cfg).ok_or("not a postgres backend")?;
            Ok(Arc::new(postgres::Postgres::open(
                &settings, groups, secrets,
            )?))
        }
        BackendConfig::Mirror { .. } => Err("a mirror backend is opened with open_in".into()),
    }
}

/// Opens `cfg`, a backend of `config` (a mirror opens the two it names; its copies are
/// recorded in `audit`).
pub fn open_in(
    cfg: &BackendConfig,
    config: &crate::config::Config,
    audit: &crate::audit::Audit,
) -> Result<Arc<dyn Backend>, String> {
    let BackendConfig::Mirror {
        primary,
        shadow,
        queue,
    } = cfg
    else {
        return open(cfg, &config.groups, &config.secrets);
    };
    let p = open(
        config.named_backend(primary)?,
        &config.groups,
        &config.secrets,
    )?;
    // A SCIM shadow numbers its users in the primary's store when the gateways share it.
    let shadow_cfg = config.named_backend(shadow)?;
    let s = match (shadow_cfg, p.scim_index(shadow_cfg)) {
        (
            BackendConfig::Scim {
                url, token, http, ..
            },
            Some(index),
        ) => Arc::new(scim::Scim::with_index(
            url,
            token.as_ref(),
            index,
            http,
            &config.groups,
        )?) as Arc<dyn Backend>,
        _ => open(shadow_cfg, &config.groups, &config.secrets)?,
    };
    // The primary's own queue when several gateways share it (PostgreSQL), else a file.
    let q: Arc<dyn mirror::Queue> = match p.mirror_queue() {
        Some(q) => q,
        None => Arc::new(mirror::SqliteQueue::open(queue, &config.secrets)?),
    };
    Ok(Arc::new(mirror::Mirror::open(
        p,
        s,
        q,
        queue,
        audit.clone(),
        &config.secrets,
    )?))
}

/// Whether an `If-Match` / `If-None-Match` value (`*`, or entity tags separated by commas)
/// names `version` (a user's `meta.version`); weak and strong tags compare alike, as RFC 7232
/// §2.3.2's weak comparison does.
pub fn etag_matches(header: &str, version: &str) -> bool {
    let bare = |t: &str| {
        let t = t.trim();
        t.strip_prefix("W/").unwrap_or(t).to_owned()
    };
    let version = bare(version);
    header
        .split(',')
        .any(|t| t.trim() == "*" || bare(t) == version)
}

/// The `meta.version` of a stored user.
pub fn version_of(user: &Map<String, Value>) -> Option<&str> {
    user.get("meta")?.get("version")?.as_str()
}

/// [`BackendError::Changed`] unless `if_match` (when given) names the version of `user`.
pub fn check_version(
    if_match: Option<&str>,
    user: &Map<String, Value>,
) -> Result<(), BackendError> {
    let Some(h) = if_match else { return Ok(()) };
    let current = version_of(user).unwrap_or("");
    if etag_matches(h, current) {
        Ok(())
    } else {
        Err(BackendError::Changed(current.to_owned()))
    }
}

/// Moves the secret attributes out of `doc`, keyed by attribute name.
pub(crate) fn take_secrets(doc: &mut Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for a in crate::canonical::ATTRIBUTES.iter().filter(|a| a.secret) {
        let loc = crate::canonical::location(a.name);
        if let Some(v) = crate::canonical::get(doc, &loc).cloned() {
            crate::canonical::remove(doc, &loc);
            out.insert(a.name.to_owned(), v);
        }
    }
    out
}

/// Removes the members a store owns (`id`, `meta`, `groups`, `schemas`, ext `numericId`) from a
/// document written by a client.
pub(crate) fn strip_server_owned(doc: &mut Map<String, Value>) {
    for k in ["id", "meta", "groups", "schemas"] {
        doc.shift_remove(k);
    }
    if let Some(Value::Object(ext)) = doc.get_mut(EXT_SCHEMA) {
        ext.shift_remove("numericId");
    }
}
