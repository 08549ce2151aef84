//! Shadow writes: a `primary` backend answers the clients; every write it acknowledged is
//! copied to a `shadow` backend through a persistent queue (SQLite, survives a restart).
//!
//! What is queued is the user as the primary stored it (not the request): the copy makes the
//! shadow's user of the same `userName` (+ `authenticator`) equal to it — every attribute set,
//! every attribute the primary does not hold cleared, groups replaced by name. Copies are
//! therefore idempotent and a later copy supersedes an earlier one. One worker copies in queue
//! order; a failure is retried with exponential backoff (the queue waits behind it, so the
//! order of writes holds). A copy the shadow refuses for good (a 4xx-like answer) is retried
//! a few times, then moved to the `dead` table, counted and audited, so one bad user cannot
//! stall the mirror.
//!
//! A queued user's secrets (the password the shadow must receive, MFA seeds) are kept apart
//! from its document, sealed ([`crate::sealed`]) with the entry's document as associated data,
//! and the entry is deleted (`secure_delete`) once copied; an entry set aside keeps no secret.
//! A queue written before sealing is sealed at start.

use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{
    Backend, BackendError, BoxFuture, Gauge, GroupDoc, GroupStore, Query, Search, Store, Stored,
    Want,
};
use crate::audit::Audit;
use crate::canonical::Identity;
use crate::canonical::{
    ATTRIBUTES, GroupChange, GroupOp, GroupRef, OpKind, Operation, UserDoc, location,
};
use crate::sealed::Sealer;

pub mod queue;
pub use queue::{Outcome, Queue, Raw, SqliteQueue, Taken, rekey_queue};

/// Tries of a copy the shadow refuses for good before it is set aside.
const PERMANENT_TRIES: i64 = 5;
/// The longest wait between tries.
const MAX_BACKOFF_MS: u64 = 30_000;

/// The mirror backend.
pub struct Mirror {
    inner: Arc<Inner>,
}

struct Inner {
    primary: Arc<dyn Backend>,
    shadow: Arc<dyn Backend>,
    queue: Arc<dyn Queue>,
    sealer: Sealer,
    wake: tokio::sync::Notify,
    audit: Audit,
    depth: AtomicI64,
    copied: AtomicU64,
    retried: AtomicU64,
    dead: AtomicI64,
}

/// One queued copy, its document parsed and its secrets opened.
struct Entry {
    seq: i64,
    /// `put` (make the shadow's user equal to `doc`) or `delete` (remove the user `doc` names).
    op: String,
    dialect: String,
    doc: Map<String, Value>,
    attempts: i64,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Mirror {
    /// A mirror over `queue` (the primary's own when it keeps one for many gateways, else a
    /// SQLite file) and starts the copying worker (when a runtime runs). The queued secrets
    /// are sealed under the key `secrets` names (beside `key_beside` when none is configured).
    pub fn open(
        primary: Arc<dyn Backend>,
        shadow: Arc<dyn Backend>,
        queue: Arc<dyn Queue>,
        key_beside: &Path,
        audit: Audit,
        secrets: &crate::config::SecretsConfig,
    ) -> Result<Self, String> {
        let (sealer, _) = Sealer::load(secrets, key_beside)?;
        let inner = Arc::new(Inner {
            primary,
            shadow,
            queue,
            sealer,
            wake: tokio::sync::Notify::new(),
            audit,
            depth: AtomicI64::new(0),
            copied: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            dead: AtomicI64::new(0),
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(worker(Arc::downgrade(&inner)));
        }
        Ok(Self { inner })
    }

    /// Copies waiting (as last counted).
    pub fn depth(&self) -> i64 {
        self.inner.depth.load(Ordering::Relaxed)
    }
}

impl Inner {
    async fn enqueue(
        self: &Arc<Self>,
        op: &'static str,
        dialect: &str,
        doc: &UserDoc,
    ) -> Result<(), BackendError> {
        let mut doc = doc.exposed().clone();
        let user = Identity::of(&doc)
            .map(|w| {
                format!(
                    "{}\u{1f}{}",
                    w.user_name,
                    w.authenticator.unwrap_or_default()
                )
            })
            .unwrap_or_default();
        let secrets = super::take_secrets(&mut doc);
        let text = Value::Object(doc).to_string();
        let sealed = queue::seal_entry(&self.sealer, &text, &secrets)?;
        self.queue.push(op, dialect, &user, text, sealed).await?;
        self.depth.fetch_add(1, Ordering::Relaxed);
        self.wake.notify_one();
        Ok(())
    }

    /// An entry as queued, its document parsed and its secrets opened.
    fn entry(&self, raw: &Raw) -> Result<Entry, BackendError> {
        let mut doc = match serde_json::from_str(&raw.doc) {
            Ok(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let secrets = self
            .sealer
            .open(&queue::entry_aad(&raw.doc), &raw.secrets)
            .map_err(|e| BackendError::Failed(format!("mirror queue entry {}: {e}", raw.seq)))?;
        if let Ok(Value::Object(secrets)) = serde_json::from_str::<Value>(&secrets) {
            for (k, v) in secrets {
                crate::canonical::set(&mut doc, &location(&k), v);
            }
        }
        Ok(Entry {
            seq: raw.seq,
            op: raw.op.clone(),
            dialect: raw.dialect.clone(),
            doc,
            attempts: raw.attempts,
        })
    }

    /// Copies one entry: what came of it, counted and audited.
    async fn handle(&self, raw: Raw) -> Outcome {
        let entry = match self.entry(&raw) {
            Ok(e) => e,
            Err(e) => {
                return Outcome::SetAside {
                    error: e.to_string(),
                };
            }
        };
        match self.copy(&entry).await {
            Ok(op) => {
                self.copied.fetch_add(1, Ordering::Relaxed);
                if entry.attempts > 0 {
                    self.record(&entry, Some(&op), 200, None).await;
                }
                Outcome::Done
            }
            Err((op, e)) => {
                let error = e.to_string();
                self.retried.fetch_add(1, Ordering::Relaxed);
                if permanent(&e) && entry.attempts + 1 >= PERMANENT_TRIES {
                    tracing::error!(seq = entry.seq, error = %error, "mirror: the shadow refuses this copy; set aside");
                    self.record(&entry, op.as_ref(), 0, Some(&format!("set aside: {error}")))
                        .await;
                    return Outcome::SetAside { error };
                }
                if entry.attempts == 0 {
                    tracing::warn!(seq = entry.seq, error = %error, "mirror: copy failed; retrying with backoff");
                    self.record(&entry, op.as_ref(), 0, Some(&error)).await;
                }
                let backoff = 100u64
                    .saturating_mul(1 << entry.attempts.clamp(0, 16))
                    .min(MAX_BACKOFF_MS);
                Outcome::Retry {
                    error,
                    next_at: now_ms() + i64::try_from(backoff).unwrap_or(i64::MAX / 2),
                }
            }
        }
    }

    /// Makes the shadow's user equal to `doc`: an update setting every attribute (and
    /// clearing the ones `doc` lacks), or a create when the shadow has no such user.
    async fn copy(&self, e: &Entry) -> Result<Operation, (Option<Operation>, BackendError)> {
        let Some(who) = Identity::of(&e.doc) else {
            return Err((
                None,
                BackendError::Failed("the queued user has no userName".into()),
            ));
        };
        let dialect: Arc<str> = Arc::from(e.dialect.as_str());
        if e.op == "delete" {
            return self.delete_copy(dialect, e).await;
        }
        let mut user = e.doc.clone();
        let groups = user.get("groups").and_then(Value::as_array).map(|g| {
            g.iter()
                .map(|g| GroupRef {
                    value: None,
                    display: g
                        .get("display")
                        .or_else(|| g.get("value"))
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                })
                .collect::<Vec<_>>()
        });
        super::strip_server_owned(&mut user);
        // Attributes the primary does not hold are cleared on the shadow.
        let mut changes = user.clone();
        for a in ATTRIBUTES
            .iter()
            .filter(|a| !a.read_only && !a.secret && !a.name.contains('['))
        {
            let loc = location(a.name);
            if crate::canonical::get(&changes, &loc).is_none() {
                crate::canonical::set(&mut changes, &loc, Value::Null);
            }
        }
        let group_change = Some(GroupChange {
            op: GroupOp::Replace,
            values: groups.unwrap_or_default(),
        });
        let target = {
            let mut t = Map::from_iter([("userName".into(), json!(who.user_name))]);
            if let Some(a) = &who.authenticator {
                crate::canonical::set(&mut t, &location("ext.authenticator"), json!(a));
            }
            UserDoc(t)
        };
        let update = Operation {
            operation: OpKind::Update,
            dialect,
            target: Some(target),
            user: UserDoc(changes),
            groups: group_change.clone(),
            caller_password: None,
            preconditions: Vec::new(),
            pending: Vec::new(),
        };
        match self.shadow.apply(update.clone(), Want::Id).await {
            Ok(_) => Ok(update),
            Err(BackendError::NotFound) => {
                let create = Operation {
                    operation: OpKind::Create,
                    target: None,
                    user: UserDoc(user),
                    ..update
                };
                match self.shadow.apply(create.clone(), Want::Id).await {
                    Ok(_) => Ok(create),
                    Err(e) => Err((Some(create), e)),
                }
            }
            Err(e) => Err((Some(update), e)),
        }
    }

    /// Removes the shadow's user the entry names (already gone counts as done).
    async fn delete_copy(
        &self,
        dialect: Arc<str>,
        e: &Entry,
    ) -> Result<Operation, (Option<Operation>, BackendError)> {
        let op = Operation::delete(dialect, UserDoc(e.doc.clone()));
        match self.shadow.apply(op.clone(), Want::Id).await {
            Ok(_) | Err(BackendError::NotFound) => Ok(op),
            Err(err) => Err((Some(op), err)),
        }
    }

    async fn record(&self, e: &Entry, op: Option<&Operation>, status: u16, error: Option<&str>) {
        let Some(op) = op else { return };
        let request_id = format!("mirror:{}", e.seq);
        let ctx = crate::audit::Context {
            request_id: &request_id,
            caller: "mirror",
            route: "shadow",
        };
        self.audit.write(ctx, op, status, error, None).await;
    }
}

/// Whether the shadow refused the copy itself (retrying will not help).
fn permanent(e: &BackendError) -> bool {
    matches!(
        e,
        BackendError::Rejected(_)
            | BackendError::UnknownGroup(_)
            | BackendError::Conflict(_)
            | BackendError::Unsupported(..)
    )
}

/// Copies queue entries until the mirror is dropped.
async fn worker(inner: Weak<Inner>) {
    loop {
        let Some(me) = inner.upgrade() else { return };
        if let Ok((depth, dead)) = me.queue.counts().await {
            me.depth.store(depth, Ordering::Relaxed);
            me.dead.store(dead, Ordering::Relaxed);
        }
        let handler: queue::Handler<'_> = Box::new(|raw| Box::pin(me.handle(raw)));
        match me.queue.take(now_ms(), handler).await {
            Ok(Taken::Handled(_)) => {}
            Ok(Taken::Empty) => {
                // Nothing to copy now: wait for a write (or look again in a while).
                let _ = tokio::time::timeout(Duration::from_secs(1), me.wake.notified()).await;
            }
            Ok(Taken::NotDue(wait)) => {
                let _ = tokio::time::timeout(
                    Duration::from_millis(wait.unsigned_abs().min(1000)),
                    std::future::pending::<()>(),
                )
                .await;
            }
            Err(e) => {
                tracing::error!(error = %e, "mirror queue unreadable");
                drop(me);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

impl Backend for Mirror {
    fn kind(&self) -> &'static str {
        "mirror"
    }

    fn apply(&self, op: Operation, _: Want) -> BoxFuture<'_, Result<Stored, BackendError>> {
        Box::pin(async move {
            let dialect = Arc::clone(&op.dialect);
            let kind = op.operation;
            let password = sent_password(&op.user);
            // The whole user: it is queued for the shadow.
            let stored = self.inner.primary.apply(op, Want::User).await?.into_doc()?;
            // Acknowledged by the primary: queued before the client hears of it. A queue that
            // cannot take it fails the request loudly rather than lose the copy silently.
            let queued = if kind == OpKind::Delete {
                self.inner
                    .enqueue("delete", &dialect, &identity_doc(&stored))
                    .await
            } else {
                self.inner
                    .enqueue("put", &dialect, &with_password(&stored, password))
                    .await
            };
            queued.map_err(|e| {
                tracing::error!(error = %e, "mirror: written to the primary but not queued for the shadow");
                e
            })?;
            Ok(Stored::from_doc(stored))
        })
    }

    fn ready(&self) -> BoxFuture<'_, Result<(), BackendError>> {
        // The clients depend on the primary only; the shadow may be down (copies wait).
        self.inner.primary.ready()
    }

    fn store(&self) -> Option<&dyn Store> {
        // Reads from the primary; writes through it, each one queued for the shadow.
        self.inner.primary.store().map(|_| self as &dyn Store)
    }

    fn gauges(&self) -> Vec<Gauge> {
        let depth = self.inner.depth.load(Ordering::Relaxed);
        vec![
            Gauge {
                name: "mirror_queue_depth",
                help: "Copies to the shadow backend waiting in the queue",
                value: depth,
                counter: false,
            },
            Gauge {
                name: "mirror_copies",
                help: "Copies the shadow backend acknowledged since start",
                value: Gauge::value_of(&self.inner.copied),
                counter: true,
            },
            Gauge {
                name: "mirror_copy_failures",
                help: "Copies the shadow backend failed (each is retried with backoff)",
                value: Gauge::value_of(&self.inner.retried),
                counter: true,
            },
            Gauge {
                name: "mirror_set_aside",
                help: "Copies the shadow refused for good, kept in the queue's dead table",
                value: self.inner.dead.load(Ordering::Relaxed),
                counter: false,
            },
        ]
    }
}

impl Mirror {
    fn primary_store(&self) -> Result<&dyn Store, BackendError> {
        self.inner.primary.store().ok_or(BackendError::Unsupported(
            "mirror",
            "serve /scim/v2 over this primary",
        ))
    }

    /// Queues a `/scim/v2` write the primary made (its dialect, in the audit trail: `scim`).
    async fn queued(&self, op: &'static str, user: UserDoc) -> Result<UserDoc, BackendError> {
        self.inner.enqueue(op, "scim", &user).await?;
        Ok(user)
    }
}

impl Mirror {
    fn primary_groups(&self) -> Result<&dyn GroupStore, BackendError> {
        self.primary_store()?
            .group_store()
            .ok_or(BackendError::Unsupported(
                "mirror",
                "serve /Groups over this primary",
            ))
    }

    /// Queues for the shadow each user whose groups a `/Groups` write changed: `before` and
    /// `after` are the group's member lists.
    async fn requeue_members(
        &self,
        before: Option<&GroupDoc>,
        after: Option<&GroupDoc>,
    ) -> Result<(), BackendError> {
        let ids = |g: Option<&GroupDoc>| -> Vec<String> {
            g.and_then(|g| g.get("members"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|m| m.get("value").and_then(Value::as_str).map(str::to_owned))
                .collect()
        };
        let (b, a) = (ids(before), ids(after));
        let store = self.primary_store()?;
        for id in b
            .iter()
            .filter(|x| !a.contains(x))
            .chain(a.iter().filter(|x| !b.contains(x)))
        {
            if let Some(user) = store.get(id).await? {
                let full = self.full(&user).await?;
                self.queued("put", full).await?;
            }
        }
        Ok(())
    }
}

/// `/Groups` on the primary; each user whose memberships change is copied to the shadow as a
/// user write (a shadow knows groups as its users' `groups`).
impl GroupStore for Mirror {
    fn get_group(&self, id: &str) -> BoxFuture<'_, Result<Option<GroupDoc>, BackendError>> {
        let id = id.to_owned();
        Box::pin(async move { self.primary_groups()?.get_group(&id).await })
    }

    fn all_groups(&self) -> BoxFuture<'_, Result<Vec<GroupDoc>, BackendError>> {
        Box::pin(async move { self.primary_groups()?.all_groups().await })
    }

    fn create_group(&self, group: GroupDoc) -> BoxFuture<'_, Result<GroupDoc, BackendError>> {
        Box::pin(async move {
            let made = self.primary_groups()?.create_group(group).await?;
            self.requeue_members(None, Some(&made)).await?;
            Ok(made)
        })
    }

    fn replace_group(
        &self,
        id: &str,
        group: GroupDoc,
        if_match: Option<&str>,
    ) -> BoxFuture<'_, Result<GroupDoc, BackendError>> {
        let (id, if_match) = (id.to_owned(), if_match.map(str::to_owned));
        Box::pin(async move {
            let groups = self.primary_groups()?;
            let before = groups.get_group(&id).await?;
            let after = groups
                .replace_group(&id, group, if_match.as_deref())
                .await?;
            self.requeue_members(before.as_ref(), Some(&after)).await?;
            Ok(after)
        })
    }

    fn delete_group(
        &self,
        id: &str,
        if_match: Option<&str>,
    ) -> BoxFuture<'_, Result<bool, BackendError>> {
        let (id, if_match) = (id.to_owned(), if_match.map(str::to_owned));
        Box::pin(async move {
            let groups = self.primary_groups()?;
            let before = groups.get_group(&id).await?;
            let gone = groups.delete_group(&id, if_match.as_deref()).await?;
            if gone {
                self.requeue_members(before.as_ref(), None).await?;
            }
            Ok(gone)
        })
    }
}

impl Store for Mirror {
    fn group_store(&self) -> Option<&dyn GroupStore> {
        self.inner
            .primary
            .store()?
            .group_store()
            .map(|_| self as &dyn GroupStore)
    }

    fn keeps_secrets(&self) -> bool {
        self.inner.primary.store().is_some_and(Store::keeps_secrets)
    }

    fn get_with_secrets(&self, id: &str) -> BoxFuture<'_, Result<Option<UserDoc>, BackendError>> {
        let id = id.to_owned();
        Box::pin(async move { self.primary_store()?.get_with_secrets(&id).await })
    }

    fn verify_password(
        &self,
        id: &str,
        clear: String,
    ) -> BoxFuture<'_, Result<Option<bool>, BackendError>> {
        let id = id.to_owned();
        Box::pin(async move { self.primary_store()?.verify_password(&id, clear).await })
    }

    fn get(&self, id: &str) -> BoxFuture<'_, Result<Option<UserDoc>, BackendError>> {
        let id = id.to_owned();
        Box::pin(async move { self.primary_store()?.get(&id).await })
    }

    fn find(&self, target: &UserDoc) -> BoxFuture<'_, Result<Option<UserDoc>, BackendError>> {
        let target = target.clone();
        Box::pin(async move { self.primary_store()?.find(&target).await })
    }

    fn search(&self, search: Search) -> BoxFuture<'_, Result<(Vec<UserDoc>, usize), BackendError>> {
        Box::pin(async move { self.primary_store()?.search(search).await })
    }

    fn list(
        &self,
        user_name: Option<String>,
        start: usize,
        count: usize,
    ) -> BoxFuture<'_, Result<(Vec<UserDoc>, usize), BackendError>> {
        Box::pin(async move { self.primary_store()?.list(user_name, start, count).await })
    }

    fn query(&self, q: Query) -> BoxFuture<'_, Result<(Vec<UserDoc>, usize), BackendError>> {
        Box::pin(async move { self.primary_store()?.query(q).await })
    }

    fn create(&self, user: UserDoc) -> BoxFuture<'_, Result<UserDoc, BackendError>> {
        Box::pin(async move {
            let password = sent_password(&user);
            let stored = self.primary_store()?.create(user).await?;
            let full = self.full(&stored).await?;
            self.queued("put", with_password(&full, password).into_owned())
                .await?;
            Ok(stored)
        })
    }

    fn replace(
        &self,
        id: &str,
        user: UserDoc,
        if_match: Option<&str>,
    ) -> BoxFuture<'_, Result<UserDoc, BackendError>> {
        let id = id.to_owned();
        let if_match = if_match.map(str::to_owned);
        Box::pin(async move {
            let password = sent_password(&user);
            let stored = self
                .primary_store()?
                .replace(&id, user, if_match.as_deref())
                .await?;
            let full = self.full(&stored).await?;
            self.queued("put", with_password(&full, password).into_owned())
                .await?;
            Ok(stored)
        })
    }

    fn delete(
        &self,
        id: &str,
        if_match: Option<&str>,
    ) -> BoxFuture<'_, Result<bool, BackendError>> {
        let id = id.to_owned();
        let if_match = if_match.map(str::to_owned);
        Box::pin(async move {
            let store = self.primary_store()?;
            let Some(user) = store.get(&id).await? else {
                return Ok(false);
            };
            let gone = store.delete(&id, if_match.as_deref()).await?;
            if gone {
                self.queued("delete", identity_doc(&user)).await?;
            }
            Ok(gone)
        })
    }
}

/// The clear password a write sent: the shadow gets it from the request that carried it,
/// since the primary keeps only its hash.
fn sent_password(user: &UserDoc) -> Option<Value> {
    crate::canonical::get(user.exposed(), &location("password"))
        .filter(|v| v.is_string())
        .cloned()
}

/// `stored` with the password the write sent, for the queue (which seals it apart and deletes
/// it once copied).
fn with_password(stored: &UserDoc, password: Option<Value>) -> std::borrow::Cow<'_, UserDoc> {
    match password {
        None => std::borrow::Cow::Borrowed(stored),
        Some(p) => {
            let mut doc = stored.clone();
            crate::canonical::set(&mut doc.0, &location("password"), p);
            std::borrow::Cow::Owned(doc)
        }
    }
}

/// What a queued delete names the user by on the shadow: its userName and authenticator.
fn identity_doc(user: &UserDoc) -> UserDoc {
    let mut doc = Map::new();
    if let Some(who) = Identity::of(user.exposed()) {
        doc.insert("userName".into(), json!(who.user_name));
        if let Some(a) = who.authenticator {
            crate::canonical::set(&mut doc, &location("ext.authenticator"), json!(a));
        }
    }
    UserDoc(doc)
}

impl Mirror {
    /// The stored user with its secrets, as the copy needs it.
    async fn full(&self, stored: &UserDoc) -> Result<UserDoc, BackendError> {
        let store = self.primary_store()?;
        let id = stored.id().unwrap_or_default();
        Ok(store
            .get_with_secrets(id)
            .await?
            .unwrap_or_else(|| stored.clone()))
    }
}
