//! `/Groups` for a backend whose groups are only its users' `groups` (a webhook receiver):
//! the configured groups, each with the users that show it as members. A membership change
//! is a user update with a group operation — the same operation a dialect's group change is —
//! so the receiver sees nothing it does not already handle. Groups are declared in config:
//! they are not created, renamed or deleted here.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{Backend, BackendError, GroupDoc, Query, Store, Want};
use crate::canonical::{GroupChange, GroupOp, GroupRef, OpKind, Operation, UserDoc};
use crate::config::GroupConfig;

const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";

/// The configured groups with their members, read from every user of `store`.
pub async fn all<S: Store + ?Sized>(
    store: &S,
    groups: &[GroupConfig],
) -> Result<Vec<GroupDoc>, BackendError> {
    let q = Query {
        count: super::MAX_SCAN,
        ..Query::default()
    };
    let (users, _) = q.scan(store).await?;
    Ok(groups.iter().map(|g| doc(g, &users)).collect())
}

fn member_of(user: &UserDoc, group: i32) -> bool {
    user.0
        .get("groups")
        .and_then(Value::as_array)
        .is_some_and(|gs| {
            gs.iter()
                .any(|g| g.get("value").and_then(Value::as_str) == Some(&group.to_string()))
        })
}

fn doc(g: &GroupConfig, users: &[UserDoc]) -> GroupDoc {
    let members: Vec<Value> = users
        .iter()
        .filter(|u| member_of(u, g.id))
        .filter_map(|u| {
            let id = u.id()?;
            Some(
                json!({"value": id, "display": u.0.get("userName"), "type": "User",
                        "$ref": format!("/scim/v2/Users/{id}")}),
            )
        })
        .collect();
    // The version is the members' digest: it moves exactly when they change.
    let mut ids: Vec<&str> = members
        .iter()
        .filter_map(|m| m.get("value").and_then(Value::as_str))
        .collect();
    ids.sort_unstable();
    let digest = crate::config::hex(&crate::config::sha256(ids.join("\n").as_bytes()));
    let mut m = Map::new();
    m.insert("schemas".into(), json!([GROUP_SCHEMA]));
    m.insert("id".into(), Value::String(g.id.to_string()));
    m.insert("displayName".into(), Value::String(g.name.clone()));
    m.insert("members".into(), Value::Array(members));
    m.insert(
        "meta".into(),
        json!({"resourceType": "Group", "version": format!("W/\"{}\"", &digest[..16]),
               "location": format!("/scim/v2/Groups/{}", g.id)}),
    );
    m
}

/// The group `id`.
pub async fn get<S: Store + ?Sized>(
    store: &S,
    groups: &[GroupConfig],
    id: &str,
) -> Result<Option<GroupDoc>, BackendError> {
    let Some(g) = groups.iter().find(|g| g.id.to_string() == id) else {
        return Ok(None);
    };
    Ok(all(store, std::slice::from_ref(g)).await?.pop())
}

fn member_ids(g: &GroupDoc) -> Vec<String> {
    g.get("members")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("value").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// Makes the members of group `id` those `group` lists, by a user update for each user added
/// or removed; the group then.
pub async fn replace<B: Backend + Store + ?Sized>(
    backend: &B,
    groups: &[GroupConfig],
    id: &str,
    group: GroupDoc,
    if_match: Option<&str>,
) -> Result<GroupDoc, BackendError> {
    let current = get(backend, groups, id)
        .await?
        .ok_or(BackendError::NotFound)?;
    super::check_version(if_match, &current)?;
    if let Some(name) = group.get("displayName").and_then(Value::as_str)
        && Some(name) != current.get("displayName").and_then(Value::as_str)
    {
        return Err(BackendError::Unsupported(
            "webhook",
            "rename a group: its name is declared in config",
        ));
    }
    let (before, after) = (member_ids(&current), member_ids(&group));
    for user in &after {
        if backend.get(user).await?.is_none() {
            return Err(BackendError::Rejected(
                crate::rejection::Rejection::invalid(
                    "members",
                    "invalid",
                    format!("members: no user with id {user}"),
                ),
            ));
        }
    }
    let changes = after
        .iter()
        .filter(|u| !before.contains(u))
        .map(|u| (u, GroupOp::Add))
        .chain(
            before
                .iter()
                .filter(|u| !after.contains(u))
                .map(|u| (u, GroupOp::Remove)),
        );
    for (user, op) in changes {
        let mut target = Map::new();
        target.insert("id".into(), Value::String(user.clone()));
        let update = Operation {
            operation: OpKind::Update,
            dialect: Arc::from("scim"),
            target: Some(UserDoc(target)),
            user: UserDoc::default(),
            groups: Some(GroupChange {
                op,
                values: vec![GroupRef {
                    value: Some(id.to_owned()),
                    display: None,
                }],
            }),
            caller_password: None,
            preconditions: Vec::new(),
            pending: Vec::new(),
        };
        backend.apply(update, Want::Id).await?;
    }
    get(backend, groups, id)
        .await?
        .ok_or(BackendError::NotFound)
}
