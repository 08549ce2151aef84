//! What a mapping file says, as serde types: the source of the JSON Schema that editors use
//! (`userbridge schema mapping`). Nothing here runs; [`super::compile`] turns it into the
//! engine's immutable plan and reports every mistake with its place in the file.
//!
//! Strings whose place matters for diagnostics (paths, destinations, templates) are
//! [`Spanned`], so that `check` can point at them.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

use crate::canonical::OpKind;

/// What a route does: a write (`create`, `update`, `delete`) goes to the backend as a canonical
/// operation; a read (`get`, `list`) is answered from the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RouteKind {
    /// Make a new user from the body.
    Create,
    /// Change the user the route's `target` names.
    Update,
    /// Remove the user the route's `target` names.
    Delete,
    /// Answer the user the route's `target` names.
    Get,
    /// Answer a list of users, filtered by the route's `search`.
    List,
}

impl RouteKind {
    /// The canonical operation a write route performs; `None` for a read.
    pub fn write(self) -> Option<OpKind> {
        match self {
            RouteKind::Create => Some(OpKind::Create),
            RouteKind::Update => Some(OpKind::Update),
            RouteKind::Delete => Some(OpKind::Delete),
            RouteKind::Get | RouteKind::List => None,
        }
    }

    /// The lowercase name, as mapping files write it.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Create => "create",
            RouteKind::Update => "update",
            RouteKind::Delete => "delete",
            RouteKind::Get => "get",
            RouteKind::List => "list",
        }
    }

    /// Whether the route reads a request body (create and update do; the others take their
    /// input from the path, the query and headers only).
    pub fn takes_body(self) -> bool {
        matches!(self, RouteKind::Create | RouteKind::Update)
    }
}

/// A whole mapping file: one vendor dialect.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingSpec {
    /// The dialect's name, as config, logs and the canonical `dialect` member call it.
    #[schemars(with = "String")]
    pub dialect: Spanned<String>,
    /// A human title for docs and OpenAPI.
    #[serde(default)]
    pub title: Option<String>,
    /// Variables substituted into route paths as `${name}`; config may override them.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// How callers authenticate.
    pub auth: AuthSpec,
    /// The HTTP routes this dialect serves.
    pub routes: Vec<RouteSpec>,
    /// Named sets of field rules that render users into answers shaped unlike the request
    /// body (a list's items, a lookup's answer); a route names one with `view`.
    #[serde(default)]
    pub views: BTreeMap<String, ViewSpec>,
    /// What to do with body members no field rule knows: `ignore` (named in the trace) or `reject` (400).
    #[serde(default)]
    pub unknown_members: UnknownPolicy,
    /// Field rules, applied in order: request member → canonical attribute, and back.
    pub fields: Vec<FieldSpec>,
    /// Conditions on the stored user that an update must meet.
    #[serde(default)]
    pub preconditions: Vec<PreconditionSpec>,
    /// The success answer.
    pub success: SuccessSpec,
    /// The error answers.
    pub errors: ErrorsSpec,
    /// Tests of this mapping, run by `userbridge test` (no server, no backend).
    #[serde(default)]
    pub tests: Vec<TestSpec>,
}

/// One `[[tests]]` entry: a request (or a stored user to render) and what must come of it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    /// What the test shows, as failures name it.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// The request, as a client sends it. Either this or `render`.
    #[serde(default)]
    pub request: Option<TestRequestSpec>,
    /// The user the backend holds, for an update's preconditions and merge.
    #[serde(default)]
    pub stored: Option<serde_json::Map<String, Value>>,
    /// The reverse direction: a stored canonical user (or, an array, a list's page)
    /// rendered as the answer of `route`.
    #[serde(default)]
    pub render: Option<Value>,
    /// The route whose answer `render` is (default: the dialect's update route).
    #[serde(default)]
    pub route: Option<String>,
    /// The expectation. Members whose name starts with `/` are JSON pointers into the outcome;
    /// `body_contains` is a substring of the answer body; any other member must equal the
    /// outcome's member of that name (`canonical`, `notes`, `status`, `field`, `rule`, `body`,
    /// `read`, `target`…). `userbridge test --show` prints a test's whole outcome.
    #[serde(default)]
    pub expect: serde_json::Map<String, Value>,
    /// More of the expectation, as JSON text: for values TOML cannot write (`null`).
    #[serde(default)]
    pub expect_json: Option<String>,
}

/// A test's request.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRequestSpec {
    /// HTTP method.
    pub method: String,
    /// The path, with a query string when the route reads one.
    pub path: String,
    /// Request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A JSON body, written as TOML.
    #[serde(default)]
    pub body: Option<Value>,
    /// A body given verbatim (invalid JSON, a number too deep to write as TOML).
    #[serde(default)]
    pub raw_body: Option<String>,
    /// A file holding the body, relative to the mapping file.
    #[serde(default)]
    pub body_file: Option<String>,
}

/// Policy for body members no rule knows.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnknownPolicy {
    /// Drop them and name them in the trace.
    #[default]
    Ignore,
    /// Refuse the request with a 400 naming the member.
    Reject,
}

/// How a caller presents its credential. The credentials themselves live in config.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthSpec {
    /// Headers that may carry the credential, tried in order.
    pub headers: Vec<AuthHeaderSpec>,
    /// `WWW-Authenticate` value sent with a 401, if any.
    #[serde(default)]
    pub challenge: Option<String>,
    /// Roles a caller needs, per route kind (`create`, `update`, `delete`, `get`, `list`):
    /// any one of the list suffices.
    #[serde(default)]
    pub roles: BTreeMap<RouteKind, Vec<String>>,
}

/// One header that may carry the credential.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthHeaderSpec {
    /// Header name (case-insensitive).
    pub name: String,
    /// Scheme word before the token (`Bearer`, `QSDK`), matched case-insensitively.
    #[serde(default)]
    pub scheme: Option<String>,
    /// Accept the bare token without the scheme word too.
    #[serde(default)]
    pub scheme_optional: bool,
}

/// One route: a method, one or more path templates, and the operation they perform.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteSpec {
    /// A name for logs and metrics (default: `METHOD first-path`).
    #[serde(default)]
    pub name: Option<String>,
    /// HTTP method, upper case.
    #[schemars(with = "String")]
    pub method: Spanned<String>,
    /// Path templates: literal segments, `{param}`, `{param:REGEX}` (anchored, e.g. `{v:(?i)v4}`),
    /// `${var}` from `vars`. Any one matching selects the route.
    #[schemars(with = "Vec<String>")]
    pub paths: Vec<Spanned<String>>,
    /// What the route does: `create`, `update`, `delete`, `get` or `list`.
    pub operation: RouteKind,
    /// Update, delete, get: the canonical attributes (`id`, `userName`, `ext.authenticator`,
    /// `ext.numericId`) that identify the user; field rules fill them with `identifies` (on
    /// delete and get, only rules reading `param:`, `query:` or `header:`).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub target: Vec<Spanned<String>>,
    /// Roles a caller needs for this route, any one suffices (default: the `[auth]` roles of
    /// its operation; empty: any authenticated caller).
    #[serde(default)]
    pub roles: Option<Vec<String>>,
    /// The view (a name under `[views]`) that renders users in this route's answer (default:
    /// the `[[fields]]` rules, as `body = "user"` renders them).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub view: Option<Spanned<String>>,
    /// List: which users the answer holds.
    #[serde(default)]
    pub search: Option<SearchSpec>,
    /// This route's success answer (default: `[success]`).
    #[serde(default)]
    pub answer: Option<SuccessSpec>,
    /// Where the members the shared field rules read are, when not at the body's root: a
    /// plain path (`$.updates`) to an object, or to an array of exactly one object (`$.users`).
    /// Rules that name this route in their `routes` read from the body's root.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub members: Option<Spanned<String>>,
}

/// How a list route picks its users.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchSpec {
    /// Where the search text comes from (`query:NAME`); absent or empty: every user.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub source: Option<Spanned<String>>,
    /// The canonical attributes that must contain the text (any one, case-insensitively).
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub contains: Vec<Spanned<String>>,
    /// Where the number of users to skip comes from (`query:NAME`, default 0).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub offset: Option<Spanned<String>>,
    /// Where the largest number of users to answer comes from (`query:NAME`; default and bound:
    /// `limits.max_list`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub limit: Option<Spanned<String>>,
}

/// A named set of field rules for answers.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ViewSpec {
    /// Render members whose attribute is unset (as `render_unset`, else `null`).
    #[serde(default)]
    pub include_unset: bool,
    /// The rules: `source` is the member's place in the rendered object, `to` the canonical
    /// attribute it shows; `value` with `source` renders a constant.
    pub fields: Vec<FieldSpec>,
}

/// A field rule: where a value comes from, what it must be, and where it goes.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// The member's name in error messages (default: the source path without `$.`).
    #[serde(default)]
    pub name: Option<String>,
    /// `$.json.path` into the body (JSONPath), `param:NAME` (path parameter), `query:NAME`
    /// (query parameter, its name matched case-insensitively) or `header:NAME`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub source: Option<Spanned<String>>,
    /// A constant value instead of a source.
    #[serde(default)]
    pub value: Option<Value>,
    /// Join: a template over `parts`, e.g. `tel:+{cc}-{number}[;ext={ext}]` (`[...]` only when
    /// its part is present). Rendering splits the canonical value back into the parts.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub join: Option<Spanned<String>>,
    /// Join parts by name, each a field rule of its own.
    #[serde(default)]
    pub parts: BTreeMap<String, FieldSpec>,
    /// Canonical destination(s) (see the attribute list in docs/mapping-language.md), or
    /// `groups.op`, `groups.values`, `callerPassword`; inside `fields`/`items`, a member name of
    /// the enclosing object. A list writes the same value to each.
    #[serde(default)]
    #[schemars(with = "Option<TypeNames>")]
    pub to: Option<Spanned<TypeNames>>,
    /// On update, the value also identifies the target user by this canonical attribute.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub identifies: Option<Spanned<String>>,
    /// Accepted JSON type(s): `string`, `boolean`, `integer`, `int32`, `number`, `object`, `array`.
    #[serde(default, rename = "type")]
    #[schemars(with = "Option<TypeNames>")]
    pub ty: Option<Spanned<TypeNames>>,
    /// The member must be present.
    #[serde(default)]
    pub required: bool,
    /// The member must be present when any of these members (by name) is present and not null.
    #[serde(default)]
    pub required_with: Vec<String>,
    /// `null` is allowed and clears the attribute (default true; false makes `null` a 400).
    #[serde(default)]
    pub nullable: Option<bool>,
    /// `null` is taken as absent: the attribute stays unchanged.
    #[serde(default)]
    pub null_is_absent: bool,
    /// Join parts: `null` on this part clears the whole joined attribute.
    #[serde(default)]
    pub null_clears_join: bool,
    /// `""` clears like `null`.
    #[serde(default)]
    pub empty_is_null: bool,
    /// Value used when the member is absent (on the operations in `default_on`).
    #[serde(default)]
    pub default: Option<Value>,
    /// Operations the default applies to (default: all).
    #[serde(default)]
    pub default_on: Option<Vec<OpKind>>,
    /// Apply the rule only for these operations (default: all).
    #[serde(default)]
    pub operations: Option<Vec<OpKind>>,
    /// Apply the rule only on these routes, by `name` (default: all). On a route with
    /// `members`, such a rule reads from the body's root.
    #[serde(default)]
    pub routes: Option<Vec<String>>,
    /// Read-only: dropped from requests with a trace line, rendered into responses.
    #[serde(default)]
    pub read_only: bool,
    /// Transforms, applied in order on the way in and in reverse order on the way out.
    #[serde(default)]
    #[schemars(with = "Vec<TransformSpec>")]
    pub transform: Vec<Spanned<TransformSpec>>,
    /// Minimum length in Unicode code points.
    #[serde(default)]
    pub min_length: Option<usize>,
    /// Maximum length in Unicode code points.
    #[serde(default)]
    pub max_length: Option<usize>,
    /// A regular expression the whole string must match (write `^…$`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub pattern: Option<Spanned<String>>,
    /// Substrings the string must not contain.
    #[serde(default)]
    pub must_not_contain: Vec<String>,
    /// `must_not_contain` and `map` ignore letter case.
    #[serde(default)]
    pub ignore_case: bool,
    /// A named format: `email` or `iana_timezone`.
    #[serde(default)]
    pub format: Option<Format>,
    /// Smallest allowed number.
    #[serde(default)]
    pub min: Option<i64>,
    /// Largest allowed number.
    #[serde(default)]
    pub max: Option<i64>,
    /// The value must equal this path parameter exactly.
    #[serde(default)]
    pub equals_param: Option<String>,
    /// Arrays: no two items may share this member's value.
    #[serde(default)]
    pub unique_by: Option<String>,
    /// Objects: at least one of these members must be present.
    #[serde(default)]
    pub require_any_of: Vec<String>,
    /// Joins: the named parts together hold at most this many characters.
    #[serde(default)]
    pub max_total_length: Option<TotalLength>,
    /// Message used instead of the generated one when a check fails.
    #[serde(default)]
    pub message: Option<String>,
    /// Arrays: the rule for each item.
    #[serde(default)]
    pub items: Option<Box<FieldSpec>>,
    /// Objects: rules for the members, with sources relative to the object (`$.id`).
    #[serde(default)]
    pub fields: Vec<FieldSpec>,
    /// Responses: the value rendered when the attribute is unset (default: the rule's `default`,
    /// else `null`).
    #[serde(default)]
    pub render_unset: Option<Value>,
    /// Responses: leave this member out.
    #[serde(default)]
    pub render: Option<bool>,
}

/// One name or several.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum TypeNames {
    /// One type.
    One(String),
    /// Any of these types.
    Many(Vec<String>),
}

impl TypeNames {
    /// The names as a slice.
    pub fn names(&self) -> Vec<&str> {
        match self {
            TypeNames::One(s) => vec![s.as_str()],
            TypeNames::Many(v) => v.iter().map(String::as_str).collect(),
        }
    }
}

/// A named string format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// One `@`, text on both sides, no whitespace.
    Email,
    /// A time-zone name of the IANA database (`America/New_York`).
    IanaTimezone,
}

/// A limit on the summed length of join parts.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TotalLength {
    /// The parts counted.
    pub parts: Vec<String>,
    /// The largest total, in code points.
    pub max: usize,
}

/// A transform step. Each has a reverse used when rendering responses.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TransformSpec {
    /// In: decode standard padded Base64 to UTF-8 text. Out: encode.
    Base64,
    /// In: a number becomes its decimal string. Out: back to a number.
    ToString,
    /// In: a decimal string becomes an int32 (else a 400). Out: back to a string.
    ParseInt32,
    /// In: remove each of these characters. Out: nothing.
    Strip(String),
    /// In: remove this prefix once, if present. Out: nothing.
    TrimStart(String),
    /// In: replace every `from` with `to`. Out: nothing.
    Replace {
        /// Text to find.
        from: String,
        /// Replacement.
        to: String,
    },
    /// In: look the value (string or number) up; a value not listed is a 400. Out: reverse lookup.
    Map(serde_json::Map<String, Value>),
    /// In: the first group of this regular expression, which the whole string must match
    /// (else a 400), e.g. `^byName\(userName='(.+)'\)$`. Out: nothing.
    Capture(String),
}

/// A condition on the stored user, checked once the update's target is found.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PreconditionSpec {
    /// Canonical attribute of the stored user.
    #[schemars(with = "String")]
    pub attribute: Spanned<String>,
    /// It must equal the value of this request member (by rule name).
    #[serde(default)]
    pub equals_field: Option<String>,
    /// It must be unset.
    #[serde(default)]
    pub absent: bool,
    /// The message when the condition fails.
    #[serde(default)]
    pub message: Option<String>,
}

/// The success answer.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SuccessSpec {
    /// HTTP status (default 200).
    #[serde(default = "ok")]
    pub status: u16,
    /// `user` (the stored user through the field rules, reversed), `empty`, `{ json = … }`,
    /// or `{ template = … }`.
    pub body: BodySpec,
    /// With `body = "user"`: render members whose attribute is unset (as `render_unset`).
    #[serde(default)]
    pub include_unset: bool,
}

fn ok() -> u16 {
    200
}

/// What a success body holds.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BodySpec {
    /// The stored user rendered through the field rules.
    User,
    /// No body and no `Content-Type`.
    Empty,
    /// A constant JSON body.
    Json(Value),
    /// A JSON template: `{user}` is the user rendered through the route's view, `{users}` the
    /// list's users so rendered, `{total}` how many users the list matched, `{user.ATTR}` a
    /// canonical attribute (never a secret); strings interpolate as in error bodies.
    Template(Value),
}

/// The error answers.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorsSpec {
    /// Body template. A string that is exactly `{name}` becomes that value with its JSON type,
    /// `{name?}` is left out when unset, other strings interpolate; `{ "$json" = … }` renders
    /// its content to a JSON string. Names: `status`, `reason`, `message`, `field`, `path`,
    /// `request_id`, `now` / `now:FORMAT` (chrono strftime; `%7f` is 7 fractional digits), vars.
    pub body: Value,
    /// `Content-Type` of error bodies.
    #[serde(default = "json_type")]
    pub content_type: String,
    /// Extra headers on every error.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Variables for every error.
    #[serde(default)]
    pub vars: serde_json::Map<String, Value>,
    /// Per-outcome overrides.
    #[serde(default)]
    pub outcomes: BTreeMap<crate::rejection::Outcome, OutcomeSpec>,
}

fn json_type() -> String {
    "application/json".into()
}

/// Overrides for one error outcome.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeSpec {
    /// HTTP status instead of the outcome's usual one.
    #[serde(default)]
    pub status: Option<u16>,
    /// Body template instead of the default one.
    #[serde(default)]
    pub body: Option<Value>,
    /// Message template (placeholders: `target.ATTR`, `user.ATTR`, `field`, `message`).
    #[serde(default)]
    pub message: Option<String>,
    /// Extra headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Variables for this outcome.
    #[serde(default)]
    pub vars: serde_json::Map<String, Value>,
}
