//! Guessing, from a vendor's member or parameter name, the canonical attribute it holds, and
//! from an operation's name and method, what kind of route it is. Every guess is written into
//! the skeleton marked `# TODO check`.

use crate::canonical::{ATTRIBUTES, attribute};
use crate::mapping::RouteKind;

/// Names vendors give canonical attributes, lower case without separators. Checked before
/// the attributes' own names.
const SYNONYMS: &[(&str, &[&str])] = &[
    (
        "userName",
        &[
            "username",
            "login",
            "loginname",
            "loginid",
            "newname",
            "newusername",
            "uid",
            "samaccountname",
        ],
    ),
    (
        "emails[primary].value",
        &["email", "mail", "emailaddress", "primaryemail", "newemail"],
    ),
    ("name.givenName", &["firstname", "givenname", "forename"]),
    (
        "name.familyName",
        &["lastname", "familyname", "surname", "sn"],
    ),
    (
        "displayName",
        &["fullname", "displayname", "commonname", "cn"],
    ),
    (
        "password",
        &["password", "newpassword", "passwd", "pwd", "userpassword"],
    ),
    (
        "callerPassword",
        &[
            "validationpassword",
            "oldpassword",
            "currentpassword",
            "callerpassword",
        ],
    ),
    (
        "active",
        &["enabled", "active", "enableuser", "isenabled", "isactive"],
    ),
    (
        "phoneNumbers[primary].value",
        &[
            "phone",
            "phonenumber",
            "primaryphone",
            "mobile",
            "telephone",
            "telephonenumber",
        ],
    ),
    ("timezone", &["timezone", "tz"]),
    ("locale", &["locale", "language", "preferredlanguage"]),
    ("ext.orgId", &["orgid", "organizationid", "tenantid"]),
    ("ext.locked", &["locked", "islocked", "accountlocked"]),
    (
        "ext.mustChangePassword",
        &[
            "forcepasswordchange",
            "mustchangepassword",
            "changepasswordatnextlogin",
            "passwordchangerequired",
        ],
    ),
    ("ext.accountExpired", &["expired", "accountexpired"]),
    (
        "ext.credentialsExpired",
        &["credentialsexpired", "passwordexpired"],
    ),
    (
        "ext.mfa.enabled",
        &["usingmfa", "mfaenabled", "mfa", "twofactorenabled"],
    ),
    ("ext.mfa.secret", &["mfasecret", "totpsecret"]),
    ("ext.notes", &["notes", "note", "comment", "comments"]),
    ("ext.userPrincipalName", &["userprincipalname", "upn"]),
    (
        "ext.authenticationMethod",
        &["authenticationmethod", "authmethod"],
    ),
    ("ext.sso", &["isssouser", "sso", "ssouser"]),
    ("ext.identityProvider", &["identityprovider", "idp"]),
    ("id", &["id", "objectid", "uuid", "guid", "userguid"]),
    (
        "meta.created",
        &[
            "created",
            "createdat",
            "createdinstant",
            "creationdate",
            "createtime",
        ],
    ),
    (
        "meta.lastModified",
        &[
            "lastmodified",
            "updatedat",
            "lastupdatedinstant",
            "modified",
            "lastupdated",
        ],
    ),
    (
        "ext.lastModifiedBy",
        &["lastupdatedby", "modifiedby", "updatedby"],
    ),
    (
        "ext.lastSuccessfulLogin",
        &["lastsuccessfulauthattempt", "lastlogin", "lastlogintime"],
    ),
    ("ext.lastFailedLogin", &["lastfailedauthattempt"]),
    ("ext.effectiveRoles", &["allroles"]),
    ("ext.effectivePrivileges", &["allprivileges"]),
    ("entitlements", &["privileges", "permissions"]),
    (
        "groups.values",
        &["usergroups", "groups", "associatedusergroups", "memberof"],
    ),
    (
        "groups.op",
        &["usergroupoperation", "groupoperation", "groupsoperation"],
    ),
];

/// `firstName`, `first_name`, `First-Name` → `firstname`.
pub fn normal(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The canonical attribute (or `groups.values`, `groups.op`, `callerPassword`) a member
/// named `name` most likely holds.
pub fn target(name: &str) -> Option<&'static str> {
    let n = normal(name);
    if let Some((t, _)) = SYNONYMS
        .iter()
        .find(|(_, names)| names.contains(&n.as_str()))
    {
        return Some(t);
    }
    // The attribute's own last name: `description` → `ext.description`.
    ATTRIBUTES
        .iter()
        .filter(|a| !matches!(a.name, "name" | "groups"))
        .find(|a| {
            let last = a.name.rsplit('.').next().unwrap_or(a.name);
            normal(last.trim_end_matches("[primary]")) == n
        })
        .map(|a| a.name)
}

/// Whether `t` (a guessed target) is one a request may not write.
pub fn read_only(t: &str) -> bool {
    attribute(t).is_some_and(|a| a.read_only)
}

/// Whether `t` holds a secret.
pub fn secret(t: &str) -> bool {
    t == "callerPassword" || attribute(t).is_some_and(|a| a.secret)
}

/// The member name, inside an array item, that a member named `name` most likely fills, when
/// the item has members `siblings` (`{id, name}` → `value`, `display`; `{name, description}`
/// → `value`, `display`).
pub fn item_member(name: &str, siblings: &[&str]) -> String {
    let has_id = siblings
        .iter()
        .any(|s| matches!(normal(s).as_str(), "id" | "value"));
    match normal(name).as_str() {
        "id" | "value" => "value".into(),
        "name" if has_id => "display".into(),
        "name" => "value".into(),
        "description" | "displayname" | "display" => "display".into(),
        _ => name.into(),
    }
}

/// The canonical value of a group operation word (`ADD` → `add`, `OVERWRITE` → `replace`).
pub fn group_op(word: &str) -> Option<&'static str> {
    match normal(word).as_str() {
        "add" | "append" | "insert" => Some("add"),
        "delete" | "remove" => Some("remove"),
        "overwrite" | "replace" | "set" => Some("replace"),
        "none" => Some("none"),
        _ => None,
    }
}

/// The route kind of an operation, from the words of its `operationId` and summary, else from
/// its method; the flag says the method decided (a weaker guess).
pub fn kind(id: &str, summary: &str, method: &str, has_path_params: bool) -> (RouteKind, bool) {
    const WORDS: &[(&[&str], RouteKind)] = &[
        (
            &["creat", "add", "regist", "insert", "provision", "new"],
            RouteKind::Create,
        ),
        (
            &["updat", "modif", "edit", "chang", "replac", "patch"],
            RouteKind::Update,
        ),
        (&["delet", "remov", "destroy"], RouteKind::Delete),
        (
            &["list", "search", "query", "findall", "getall"],
            RouteKind::List,
        ),
        (
            &["get", "read", "fetch", "show", "lookup", "retriev", "find"],
            RouteKind::Get,
        ),
    ];
    for text in [id, summary] {
        for w in words(text) {
            for (prefixes, k) in WORDS {
                if prefixes.iter().any(|p| w.starts_with(p)) {
                    return (*k, false);
                }
            }
        }
    }
    let k = match method {
        "POST" => RouteKind::Create,
        "PUT" if !has_path_params => RouteKind::Create,
        "PUT" | "PATCH" => RouteKind::Update,
        "DELETE" => RouteKind::Delete,
        _ if has_path_params => RouteKind::Get,
        _ => RouteKind::List,
    };
    (k, true)
}

/// The lower-case words of `camelCase`, `snake_case`, `kebab-case` or plain text.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in text.chars() {
        if !c.is_ascii_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        cur.push(c.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_vendors_use() {
        assert_eq!(target("firstName"), Some("name.givenName"));
        assert_eq!(target("last_name"), Some("name.familyName"));
        assert_eq!(target("newPassword"), Some("password"));
        assert_eq!(target("validationPassword"), Some("callerPassword"));
        assert_eq!(target("description"), Some("ext.description"));
        assert_eq!(target("userGroupOperation"), Some("groups.op"));
        assert_eq!(target("favouriteColour"), None);
        assert!(read_only("meta.created") && !read_only("userName"));
        assert!(secret("ext.mfa.secret") && secret("callerPassword") && !secret("active"));
    }

    #[test]
    fn route_kinds_from_names_then_methods() {
        assert_eq!(
            kind("UpdateUserDetails", "", "PUT", true),
            (RouteKind::Update, false)
        );
        assert_eq!(
            kind("createUser", "", "PUT", false),
            (RouteKind::Create, false)
        );
        assert_eq!(
            kind("x1", "Registering a user", "POST", false),
            (RouteKind::Create, false)
        );
        assert_eq!(kind("x2", "", "GET", true), (RouteKind::Get, true));
        assert_eq!(kind("x3", "", "GET", false), (RouteKind::List, true));
        assert_eq!(words("getHTTPUser_by-id"), ["get", "httpuser", "by", "id"]);
    }

    #[test]
    fn item_members() {
        assert_eq!(item_member("id", &["id", "name"]), "value");
        assert_eq!(item_member("name", &["id", "name"]), "display");
        assert_eq!(item_member("name", &["name", "description"]), "value");
        assert_eq!(
            item_member("description", &["name", "description"]),
            "display"
        );
        assert_eq!(group_op("OVERWRITE"), Some("replace"));
    }
}
