//! The mapping engine: one TOML file per dialect, compiled once into an immutable plan.
//!
//! `spec` (what a file says) → `load` (TOML with places, every error kept) → `compile`
//! (paths, transforms, templates resolved; canonical targets checked) → `apply` (request →
//! canonical operation) and `render` (canonical user → dialect body). `set` holds all the
//! dialects of a deployment and routes a request to one of them.

mod apply;
mod compile;
pub mod explain;
pub mod load;
pub mod path;
pub mod render;
pub mod set;
pub mod spec;
pub mod transform;

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use crate::canonical::{AttrDef, OpKind, Operation, Step};
use crate::dialect::auth::AuthPlan;
use crate::dialect::route::PathTemplate;
use crate::dialect::template::Template;
use crate::rejection::Outcome;
use path::JsonPathPlan;
pub use spec::RouteKind;
use spec::{Format, UnknownPolicy};
use transform::Transform;

pub use set::{MappingSet, RouteMatch};

/// A compiled dialect mapping. Immutable; share it behind an `Arc`.
#[derive(Debug)]
pub struct Mapping {
    /// The dialect's name.
    pub dialect: Arc<str>,
    /// Human title.
    pub title: String,
    /// The file it came from.
    pub file: PathBuf,
    /// Routes, in file order.
    pub routes: Vec<Route>,
    /// How callers present credentials.
    pub auth: AuthPlan,
    unknown: UnknownPolicy,
    rules: Vec<Rule>,
    /// `places[i]` is where `rules[i]` is written.
    places: Vec<RulePlace>,
    known: Known,
    preconditions: Vec<Pre>,
    /// The named views, in file order.
    views: Vec<View>,
    /// Success answer.
    pub success: Success,
    /// Error answers.
    pub errors: Errors,
    /// The request member that carries the caller's password, for error messages.
    pub caller_password_field: Option<Box<str>>,
    /// The file's `[[tests]]`, for `userbridge test`.
    pub tests: Vec<FileTest>,
}

/// A `[[tests]]` entry of a mapping file, with its place (at its `name`) for failures.
#[derive(Debug, Clone)]
pub struct FileTest {
    /// Where the test is written.
    pub place: crate::diagnostic::Diagnostic,
    /// What it says.
    pub spec: spec::TestSpec,
}

impl Mapping {
    /// The canonical attributes this dialect's requests write (`groups` when it carries group
    /// memberships), in rule order.
    pub fn carried(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        for r in &self.rules {
            for d in &r.dests {
                let name = match d {
                    Dest::Attr(_, def) => def.name,
                    Dest::GroupsValues => "groups",
                    _ => continue,
                };
                if !out.contains(&name) {
                    out.push(name);
                }
            }
        }
        // A member restating a stored attribute (opscenter's `username`) carries it too.
        for p in self
            .preconditions
            .iter()
            .filter(|p| p.equals_rule.is_some())
        {
            if let Some(def) = crate::canonical::ATTRIBUTES
                .iter()
                .find(|a| a.name == &*p.attribute)
                && !out.contains(&def.name)
            {
                out.push(def.name);
            }
        }
        out
    }

    /// The request member that fills `dest` (`groups.values`, `groups.op`, `callerPassword`,
    /// or a canonical attribute name), to name it in messages about what the backend found.
    pub fn member_for(&self, dest: &str) -> Option<&str> {
        self.rules
            .iter()
            .find(|r| {
                r.dests.iter().any(|d| match d {
                    Dest::GroupsValues => dest == "groups.values",
                    Dest::GroupsOp => dest == "groups.op",
                    Dest::CallerPassword => dest == "callerPassword",
                    Dest::Attr(_, def) => def.name == dest,
                    Dest::Member(_) => false,
                })
            })
            .map(|r| &*r.name)
    }
}

/// A compiled route.
#[derive(Debug)]
pub struct Route {
    /// Name for logs and metrics.
    pub name: Arc<str>,
    /// HTTP method.
    pub method: http::Method,
    /// Path templates; any one matches.
    pub paths: Vec<PathTemplate>,
    /// What it does.
    pub kind: RouteKind,
    /// Canonical attributes that identify the target (update, delete, get).
    pub target: Vec<Box<str>>,
    /// Their locations, and the rule that fills each (for the "is required" message).
    target_locs: Vec<(Vec<Step>, Box<str>)>,
    /// Roles that allow the route, any one (empty: any authenticated caller).
    pub roles: Vec<Box<str>>,
    /// The route's own success answer (else the mapping's).
    answer: Option<Success>,
    /// The view its answer renders users through (an index into the mapping's views).
    view: Option<usize>,
    /// List: which users it answers.
    pub search: Option<SearchPlan>,
    /// Where the shared rules' members are.
    members: Option<Members>,
    /// The rules a request on this route runs, in file order (indices into the mapping's
    /// rules): those for its operation and its name, not those reading a path parameter its
    /// paths lack. Worked out at load, so a request walks only its own.
    rules: Vec<usize>,
}

/// A route's `members`: where the shared rules read.
#[derive(Debug)]
struct Members {
    /// The key chain to it.
    keys: Vec<Box<str>>,
    /// Its name in messages (`users`).
    name: Box<str>,
    /// Written `$.path[0]`: an array of exactly one object.
    array: bool,
}

impl Route {
    /// What a caller of the route does, for a 403's message: `create users`.
    pub fn action(&self) -> String {
        let verb = match self.kind {
            RouteKind::Get | RouteKind::List => "read",
            k => k.as_str(),
        };
        format!("{verb} users")
    }

    /// The canonical operation a write route performs (`None` for a read).
    pub fn operation(&self) -> Option<OpKind> {
        self.kind.write()
    }
}

/// How a list route picks its users, compiled.
#[derive(Debug)]
pub struct SearchPlan {
    source: Option<Box<str>>,
    /// The attributes the text must be contained in (any one), by name.
    pub contains: Vec<&'static str>,
    offset: Option<Box<str>>,
    limit: Option<Box<str>>,
}

/// What a read or delete route's request names: its target, or the list's search.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Lookup {
    /// The attributes identifying the user (get, delete).
    pub target: Option<crate::canonical::UserDoc>,
    /// List: the text one of the `contains` attributes must hold (none: every user).
    pub text: Option<String>,
    /// List: users to skip.
    pub offset: usize,
    /// List: the most users to answer (none: the configured bound).
    pub limit: Option<usize>,
}

/// A named set of rendering rules.
#[derive(Debug)]
struct View {
    name: Box<str>,
    rules: Vec<Rule>,
    include_unset: bool,
}

/// The success answer plan.
#[derive(Debug)]
pub struct Success {
    /// HTTP status.
    pub status: u16,
    /// Body kind.
    pub body: SuccessBody,
    /// Render unset members.
    pub include_unset: bool,
    /// The body shows the stored user (so a write must return it whole), decided at load.
    pub renders_user: bool,
}

/// What a success body holds.
#[derive(Debug)]
pub enum SuccessBody {
    /// The stored user rendered through the rules.
    User,
    /// Nothing.
    Empty,
    /// A constant JSON body, serialised once.
    Fixed(bytes::Bytes),
    /// A template over the rendered user(s) and canonical attributes.
    Template(Template),
}

/// The error answer plan.
#[derive(Debug)]
pub struct Errors {
    content_type: Box<str>,
    body: Template,
    headers: Vec<(http::HeaderName, Template)>,
    vars: serde_json::Map<String, Value>,
    outcomes: Vec<(Outcome, OutcomePlan)>,
}

#[derive(Debug, Default)]
struct OutcomePlan {
    status: Option<u16>,
    body: Option<Template>,
    message: Option<Template>,
    headers: Vec<(http::HeaderName, Template)>,
    vars: serde_json::Map<String, Value>,
}

/// Where a value comes from.
#[derive(Debug, Clone)]
enum Source {
    Body(JsonPathPlan),
    Param(Box<str>),
    Query(Box<str>),
    Header(http::HeaderName),
    Const(crate::json::Node<'static>),
    None,
}

/// Where a value goes.
#[derive(Debug, Clone)]
enum Dest {
    Attr(Vec<Step>, &'static AttrDef),
    GroupsOp,
    GroupsValues,
    CallerPassword,
    Member(Box<str>),
}

const T_STRING: u8 = 1;
const T_BOOL: u8 = 2;
const T_INTEGER: u8 = 4;
const T_INT32: u8 = 8;
const T_NUMBER: u8 = 16;
const T_OBJECT: u8 = 32;
const T_ARRAY: u8 = 64;

#[derive(Debug, Clone, Default)]
struct Checks {
    min_length: Option<usize>,
    max_length: Option<usize>,
    pattern: Option<regex::Regex>,
    /// (text compared, text as written)
    must_not_contain: Vec<(Box<str>, Box<str>)>,
    ignore_case: bool,
    format: Option<Format>,
    min: Option<i64>,
    max: Option<i64>,
    equals_param: Option<Box<str>>,
    unique_by: Option<Box<str>>,
    require_any_of: Vec<Box<str>>,
    message: Option<Box<str>>,
}

#[derive(Debug, Clone)]
struct Join {
    pieces: Vec<JoinPiece>,
    split: regex::Regex,
    parts: Vec<(Box<str>, Rule)>,
    total: Option<(Vec<usize>, usize)>,
    /// Where the joined value is written (the rule's canonical attributes).
    locs: Vec<Vec<Step>>,
}

#[derive(Debug, Clone)]
enum JoinPiece {
    Text(Box<str>),
    Part(usize),
    Optional(Vec<JoinPiece>),
}

#[derive(Debug, Clone)]
struct Rule {
    name: Box<str>,
    source: Source,
    dests: Vec<Dest>,
    identifies: Option<Vec<Step>>,
    types: u8,
    required: bool,
    required_with: Vec<usize>,
    nullable: bool,
    null_clears_join: bool,
    null_is_absent: bool,
    empty_is_null: bool,
    default: Option<Value>,
    default_node: Option<crate::json::Node<'static>>,
    default_on: Option<Vec<OpKind>>,
    operations: Option<Vec<OpKind>>,
    /// The routes (indices) the rule is for; `None`: every route.
    routes: Option<Vec<usize>>,
    read_only: bool,
    transforms: Vec<Transform>,
    checks: Checks,
    items: Option<Box<Rule>>,
    fields: Vec<Rule>,
    join: Option<Arc<Join>>,
    render_unset: Option<Value>,
    render: bool,
    /// Views: a constant rendered at the source's place.
    constant: Option<Value>,
    keep: bool,
    /// The rule fills `groups.values`: its items are read straight into group references.
    group_items: bool,
}

/// Where a top-level rule is written and what it reads, for `translate --explain` only (kept
/// beside the rules, not in them, so that the request path walks no more than it needs).
#[derive(Debug, Clone)]
struct RulePlace {
    /// The line of its `[[fields]]` table.
    line: u32,
    /// Its source as written: `$.a.b`, `param:id`, `value …`, `join`.
    written: Box<str>,
    /// A join's parts' sources, as written.
    parts: Vec<Box<str>>,
}

impl Rule {
    fn applies(&self, op: OpKind) -> bool {
        self.operations.as_ref().is_none_or(|ops| ops.contains(&op))
    }

    /// Whether the rule runs for operation `op` on route `route`.
    fn applies_on(&self, op: OpKind, route: usize) -> bool {
        self.applies(op) && self.on_route(route)
    }

    /// Whether the rule is for route `route`.
    fn on_route(&self, route: usize) -> bool {
        self.routes.as_ref().is_none_or(|r| r.contains(&route))
    }
}

#[derive(Debug, Clone)]
struct Pre {
    attribute: Box<str>,
    equals_rule: Option<usize>,
    message: Box<str>,
}

/// Body members the rules know, for the unknown-member policy. Objects are small: a scan
/// beats hashing every member name.
#[derive(Debug, Default, Clone)]
struct Known {
    members: Vec<(Box<str>, Known)>,
    open: bool,
}

impl Known {
    fn get(&self, name: &str) -> Option<&Known> {
        self.members
            .iter()
            .find(|(k, _)| **k == *name)
            .map(|(_, v)| v)
    }

    fn entry(&mut self, name: &str) -> &mut Known {
        let i = match self.members.iter().position(|(k, _)| **k == *name) {
            Some(i) => i,
            None => {
                self.members.push((name.into(), Known::default()));
                self.members.len() - 1
            }
        };
        &mut self.members[i].1
    }
}

/// Something the engine noticed and dropped, for the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// A body member no rule knows, ignored.
    UnknownMember(String),
    /// A read-only member, dropped before validation.
    ReadOnlyDropped(String),
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Note::UnknownMember(m) => write!(f, "ignored unknown member `{m}`"),
            Note::ReadOnlyDropped(m) => write!(f, "dropped read-only member `{m}`"),
        }
    }
}

/// A successful translation.
#[derive(Debug)]
pub struct Translation {
    /// The canonical operation.
    pub op: Operation,
    /// What was dropped on the way.
    pub notes: Vec<Note>,
}

/// An answer in a dialect: status, headers and body bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct DialectResponse {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`, if the answer has a body.
    pub content_type: Option<Box<str>>,
    /// Other headers.
    pub headers: Vec<(http::HeaderName, String)>,
    /// The body.
    pub body: bytes::Bytes,
}
