//! The reference for the translation benchmark: the Commvault V4 update translated by hand
//! (serde structs, the same checks, the same canonical operation). Shared by
//! `benches/translate.rs` and `examples/profile_translate.rs`.

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value};
use userbridge::canonical::{
    GroupChange, GroupOp, GroupRef, OpKind, Operation, Step, UserDoc, location, set,
};
use userbridge::redact::Secret;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CvUpdate {
    full_name: Option<String>,
    new_name: Option<String>,
    email: Option<String>,
    description: Option<String>,
    user_group_operation: Option<Value>,
    user_groups: Option<Vec<CvGroup>>,
    new_password: Option<String>,
    validation_password: Option<String>,
    plan: Option<CvPlan>,
    enabled: Option<bool>,
    user_principal_name: Option<String>,
    authentication_method: Option<String>,
}

#[derive(Deserialize)]
struct CvGroup {
    id: Option<i32>,
    name: Option<String>,
}

#[derive(Deserialize)]
struct CvPlan {
    id: Option<i32>,
    name: Option<String>,
}

/// Attribute locations, resolved once (as the engine resolves them at load).
pub struct Locs {
    display: Vec<Step>,
    formatted: Vec<Step>,
    user_name: Vec<Step>,
    email: Vec<Step>,
    description: Vec<Step>,
    password: Vec<Step>,
    plan: Vec<Step>,
    active: Vec<Step>,
    upn: Vec<Step>,
    auth_method: Vec<Step>,
    numeric_id: Vec<Step>,
}

fn b64(s: &str) -> Result<String, &'static str> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|_| "not base64")?;
    String::from_utf8(bytes).map_err(|_| "not utf-8")
}

/// The same translation, written by hand for this one dialect.
pub fn hand_written(
    body: &[u8],
    user_id: &str,
    l: &Locs,
    dialect: &std::sync::Arc<str>,
) -> Result<Operation, &'static str> {
    let req: CvUpdate = serde_json::from_slice(body).map_err(|_| "json")?;
    let id = userbridge::mapping::transform::parse_int32(user_id)
        .filter(|i| *i > 0)
        .ok_or("userId")?;
    let mut user = Map::new();
    let mut target = Map::new();
    set(&mut target, &l.numeric_id, Value::from(id));
    if let Some(v) = req.full_name {
        set(&mut user, &l.display, Value::String(v.clone()));
        set(&mut user, &l.formatted, Value::String(v));
    }
    if let Some(v) = req.new_name {
        if v.is_empty() || v.contains('/') || v.to_lowercase().contains("%2f") {
            return Err("newName");
        }
        set(&mut user, &l.user_name, Value::String(v));
    }
    if let Some(v) = req.email {
        let mut parts = v.split('@');
        if !matches!((parts.next(), parts.next(), parts.next()), (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty())
            || v.chars().any(char::is_whitespace)
        {
            return Err("email");
        }
        set(&mut user, &l.email, Value::String(v));
    }
    if let Some(v) = req.description {
        set(&mut user, &l.description, Value::String(v));
    }
    let verb = match &req.user_group_operation {
        None => Some(GroupOp::Add),
        Some(Value::String(s)) => match s.to_ascii_uppercase().as_str() {
            "ADD" => Some(GroupOp::Add),
            "DELETE" => Some(GroupOp::Remove),
            "OVERWRITE" => Some(GroupOp::Replace),
            _ => return Err("userGroupOperation"),
        },
        Some(Value::Number(n)) => match n.as_i64() {
            Some(0) => None,
            Some(1) => Some(GroupOp::Replace),
            Some(2) => Some(GroupOp::Add),
            Some(3) => Some(GroupOp::Remove),
            _ => return Err("userGroupOperation"),
        },
        _ => return Err("userGroupOperation"),
    };
    let groups = match (req.user_groups, verb) {
        (Some(gs), Some(op)) => {
            let mut values = Vec::with_capacity(gs.len());
            for g in gs {
                if g.id.is_none() && g.name.is_none() || g.id.is_some_and(|i| i < 1) {
                    return Err("userGroups");
                }
                values.push(GroupRef {
                    value: g.id.map(|i| i.to_string()),
                    display: g.name,
                });
            }
            Some(GroupChange { op, values })
        }
        _ => None,
    };
    if let Some(p) = &req.new_password {
        let clear = b64(p)?;
        if clear.is_empty() {
            return Err("newPassword");
        }
        set(&mut user, &l.password, Value::String(clear));
        if req.validation_password.is_none() {
            return Err("validationPassword");
        }
    }
    let caller_password = match req.validation_password {
        Some(v) => Some(Secret::new(b64(&v)?)),
        None => None,
    };
    if let Some(p) = req.plan {
        if p.id.is_none() && p.name.is_none() || p.id.is_some_and(|i| i < 1) {
            return Err("plan");
        }
        let mut m = Map::new();
        if let Some(i) = p.id {
            m.insert("id".into(), Value::from(i));
        }
        if let Some(n) = p.name {
            m.insert("name".into(), Value::String(n));
        }
        set(&mut user, &l.plan, Value::Object(m));
    }
    if let Some(v) = req.enabled {
        set(&mut user, &l.active, Value::Bool(v));
    }
    if let Some(v) = req.user_principal_name {
        set(&mut user, &l.upn, Value::String(v));
    }
    if let Some(v) = req.authentication_method {
        set(&mut user, &l.auth_method, Value::String(v));
    }
    Ok(Operation {
        operation: OpKind::Update,
        dialect: dialect.clone(),
        target: Some(UserDoc(target)),
        user: UserDoc(user),
        groups,
        caller_password,
        preconditions: Vec::new(),
        pending: Vec::new(),
    })
}

impl Default for Locs {
    /// Resolves every location.
    fn default() -> Self {
        Locs {
            display: location("displayName"),
            formatted: location("name.formatted"),
            user_name: location("userName"),
            email: location("emails[primary].value"),
            description: location("ext.description"),
            password: location("password"),
            plan: location("ext.plan"),
            active: location("active"),
            upn: location("ext.userPrincipalName"),
            auth_method: location("ext.authenticationMethod"),
            numeric_id: location("ext.numericId"),
        }
    }
}
