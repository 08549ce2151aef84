//! Typed, layered configuration: built-in defaults < the TOML file < `USERBRIDGE_*`
//! environment (`__` separates levels: `USERBRIDGE_SERVER__LISTEN`) < command-line flags.
//! Unknown keys are errors. Mistakes in the file are reported at their line and column;
//! secrets are never echoed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use toml::Spanned;
use toml::de::DeValue;

use crate::diagnostic::Diagnostic;
use crate::diagnostic::{de, parse_table};
use crate::redact::Secret;

/// The default config file, relative to the working directory.
pub const DEFAULT_FILE: &str = "config/userbridge.toml";

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The listener.
    #[serde(default)]
    pub server: ServerConfig,
    /// Request limits.
    #[serde(default)]
    pub limits: Limits,
    /// Where the mapping files are and which to load.
    #[serde(default)]
    pub mappings: MappingsConfig,
    /// Per-dialect settings, by dialect name (the mapping file's stem).
    #[serde(default)]
    pub dialects: BTreeMap<String, DialectConfig>,
    /// The backend canonical operations go to.
    #[serde(default)]
    pub backend: BackendConfig,
    /// More backends by name, for the migration commands (`diff A B`, `import --backend`,
    /// `export --backend`); `backend` names the one above.
    #[serde(default)]
    pub backends: BTreeMap<String, BackendConfig>,
    /// The audit trail of writes.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Groups the embedded store knows, created at start.
    #[serde(default)]
    pub groups: Vec<GroupConfig>,
    /// Caller credentials, per dialect. Secrets: never logged.
    #[serde(default)]
    pub credentials: Vec<Credential>,
    /// The key the embedded store seals users' secrets under.
    #[serde(default)]
    pub secrets: SecretsConfig,
}

/// Where the key that seals secrets at rest comes from ([`crate::sealed`]): `key` (best from
/// the environment, `USERBRIDGE_SECRETS__KEY`), else `key_file`, else a key the store generates
/// beside itself. 32 bytes, as 64 hex digits or Base64 (`openssl rand -hex 32`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// The key itself. Secret: never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Secret>,
    /// A file holding the key (a mounted secret), kept apart from the store and its backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// Files holding the keys used before the current one: values sealed under them still
    /// open, and the store reseals them under the current key at start (`userbridge rekey`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous_key_files: Vec<PathBuf>,
    /// How the embedded store hashes passwords ([`crate::password`]).
    #[serde(default)]
    pub passwords: PasswordConfig,
}

/// Argon2id parameters for the passwords the embedded store keeps (OWASP's password storage
/// guidance by default: 19 MiB, 2 iterations, 1 lane). A hash made under other parameters
/// still verifies: each hash names its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordConfig {
    /// Memory per hash, in KiB.
    #[serde(default = "default_memory_kib")]
    pub memory_kib: u32,
    /// Passes over that memory.
    #[serde(default = "default_iterations")]
    pub iterations: u32,
    /// Lanes.
    #[serde(default = "default_parallelism")]
    pub parallelism: u32,
    /// Hashes computed at once, off the serving threads (`0`: one per CPU).
    #[serde(default)]
    pub threads: usize,
}

fn default_memory_kib() -> u32 {
    19_456
}
fn default_iterations() -> u32 {
    2
}
fn default_parallelism() -> u32 {
    1
}

impl Default for PasswordConfig {
    fn default() -> Self {
        Self {
            memory_kib: default_memory_kib(),
            iterations: default_iterations(),
            parallelism: default_parallelism(),
            threads: 0,
        }
    }
}

/// The HTTP listener.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Serving threads, each with its own listener on `listen` (`SO_REUSEPORT`), its own
    /// runtime and its own backend connections, so that no request crosses threads. `0`: one
    /// per CPU the process may run on.
    #[serde(default)]
    pub workers: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            workers: 0,
        }
    }
}

impl ServerConfig {
    /// The number of serving threads: `workers`, or one per available CPU.
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            n => n,
        }
    }
}

/// The audit trail: one JSON line per write sent to a backend, with its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Write the trail.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Where records go: `file` (this instance's `path`), or `postgres` (a table in the
    /// database of the postgres backend, or of a mirror's postgres primary, that every
    /// instance shares; a record the database cannot take goes to `path` instead).
    #[serde(default)]
    pub sink: AuditSink,
    /// The log file (created with its directory); rotated files get `.1`, `.2`, … appended.
    #[serde(default = "default_audit_path")]
    pub path: PathBuf,
    /// Rotate when the file would grow past this many bytes.
    #[serde(default = "default_audit_bytes")]
    pub max_bytes: u64,
    /// Rotated files kept.
    #[serde(default = "default_audit_keep")]
    pub keep: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            sink: AuditSink::File,
            path: default_audit_path(),
            max_bytes: default_audit_bytes(),
            keep: default_audit_keep(),
        }
    }
}

/// Where the audit trail is kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuditSink {
    /// A JSON-lines file per instance, rotated by size.
    #[default]
    File,
    /// A table in the PostgreSQL backend's database.
    Postgres,
}

fn yes() -> bool {
    true
}
fn default_mirror_queue() -> PathBuf {
    PathBuf::from("data/mirror-queue.db")
}
fn default_audit_path() -> PathBuf {
    PathBuf::from("data/audit.jsonl")
}
fn default_audit_bytes() -> u64 {
    10 * 1024 * 1024
}
fn default_audit_keep() -> usize {
    5
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

/// Bounds on what a request may be.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest request body, in bytes (413 beyond).
    #[serde(default = "default_body")]
    pub max_body_bytes: usize,
    /// Deepest JSON nesting (400 beyond).
    #[serde(default = "default_depth")]
    pub max_json_depth: usize,
    /// Whole-request deadline, in milliseconds.
    #[serde(default = "default_timeout")]
    pub request_timeout_ms: u64,
    /// Time a client has to send its request headers, in milliseconds (slowloris guard).
    #[serde(default = "default_header_timeout")]
    pub header_read_timeout_ms: u64,
    /// Most header fields in one request (431 beyond).
    #[serde(default = "default_max_headers")]
    pub max_headers: usize,
    /// Largest request head (request line and headers), in bytes.
    #[serde(default = "default_max_head")]
    pub max_head_bytes: usize,
    /// Most open client connections; beyond it, new connections wait in the kernel's backlog.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Most requests handled at once; beyond it, requests are shed with the dialect's 503 and
    /// `Retry-After`.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// How long an `Idempotency-Key`'s first answer is kept, in seconds.
    #[serde(default = "default_idempotency_window")]
    pub idempotency_window_s: u64,
    /// Most `Idempotency-Key`s kept at once (the oldest go first).
    #[serde(default = "default_idempotency_keys")]
    pub idempotency_max_keys: usize,
    /// Most users a dialect's list route answers at once (a smaller limit the client asks for
    /// is honoured; the dialect's paging, where it has one, reaches the rest).
    #[serde(default = "default_max_list")]
    pub max_list: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: default_body(),
            max_json_depth: default_depth(),
            request_timeout_ms: default_timeout(),
            header_read_timeout_ms: default_header_timeout(),
            max_headers: default_max_headers(),
            max_head_bytes: default_max_head(),
            max_connections: default_max_connections(),
            max_in_flight: default_max_in_flight(),
            idempotency_window_s: default_idempotency_window(),
            idempotency_max_keys: default_idempotency_keys(),
            max_list: default_max_list(),
        }
    }
}

fn default_max_list() -> usize {
    1000
}
fn default_body() -> usize {
    64 * 1024
}
fn default_depth() -> usize {
    32
}
fn default_timeout() -> u64 {
    10_000
}
fn default_header_timeout() -> u64 {
    5_000
}
fn default_max_headers() -> usize {
    64
}
fn default_max_head() -> usize {
    16 * 1024
}
fn default_max_connections() -> usize {
    4096
}
fn default_max_in_flight() -> usize {
    1024
}
fn default_idempotency_window() -> u64 {
    24 * 3600
}
fn default_idempotency_keys() -> usize {
    100_000
}

/// Mapping files.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingsConfig {
    /// Directory of `*.toml` mapping files (relative to the working directory).
    #[serde(default = "default_mappings")]
    pub dir: PathBuf,
    /// Load only these dialects (file stems); all when absent.
    #[serde(default)]
    pub enabled: Option<Vec<String>>,
}

impl Default for MappingsConfig {
    fn default() -> Self {
        Self {
            dir: default_mappings(),
            enabled: None,
        }
    }
}

fn default_mappings() -> PathBuf {
    "mappings".into()
}

/// Settings for one dialect.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DialectConfig {
    /// Overrides of the mapping's `vars` (for example `base` for a path prefix).
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
}

/// The backend.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum BackendConfig {
    /// The embedded SQLite store.
    Sqlite {
        /// The database file.
        #[serde(default = "default_db")]
        path: PathBuf,
    },
    /// A SCIM 2.0 service provider (RFC 7644) over HTTP.
    Scim {
        /// Base URL of the provider, ending before `/Users` (`https://idp.example/scim/v2`).
        url: String,
        /// Bearer token, if the provider needs one.
        #[serde(default)]
        token: Option<Secret>,
        /// The local index that allocates ext `numericId`s and maps them to the provider's ids.
        #[serde(default = "default_scim_index")]
        index: PathBuf,
        /// Outbound call settings (`[backend.http]`).
        #[serde(default)]
        http: OutboundConfig,
    },
    /// Shadow writes: `primary` answers, every acknowledged write is copied to `shadow`
    /// through a persistent queue (both name entries of `[backends]`).
    Mirror {
        /// The backend that answers the clients.
        primary: String,
        /// The backend each acknowledged write is copied to.
        shadow: String,
        /// The queue of copies (SQLite; survives a restart).
        #[serde(default = "default_mirror_queue")]
        queue: PathBuf,
    },
    /// A PostgreSQL database that several gateways share: users, groups, memberships and
    /// sealed secrets, with uniqueness and numeric ids kept by the database; migrated at start.
    Postgres {
        /// `postgres://USER@HOST:PORT/DB`, with `?sslmode=verify-full` for TLS (the server
        /// verified against `sslrootcert=/path/ca.pem`, else the system's roots). Never a
        /// password: give `password`, `password_file` or `USERBRIDGE_BACKEND__PASSWORD`.
        url: String,
        /// The database user's password.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<Secret>,
        /// A file holding it (a mounted container secret); a trailing newline is not part of it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password_file: Option<PathBuf>,
        /// Connections each gateway keeps open, at most.
        #[serde(default = "default_pg_pool")]
        pool_size: usize,
        /// Time to wait for a connection, or for one statement, in milliseconds.
        #[serde(default = "default_pg_timeout")]
        timeout_ms: u64,
    },
    /// POSTs the canonical operation as JSON to a URL (see `docs/webhook.md`).
    Webhook {
        /// The URL.
        url: String,
        /// Shared secret sent as a bearer token, if any.
        #[serde(default)]
        token: Option<Secret>,
        /// Outbound call settings (`[backend.http]`).
        #[serde(default)]
        http: OutboundConfig,
    },
}

fn default_pg_pool() -> usize {
    16
}

fn default_pg_timeout() -> u64 {
    5000
}

/// Settings of the HTTP calls to a remote backend. Redirects are never followed and no
/// ambient proxy (`HTTP_PROXY`…) is used unless `proxy` names one.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutboundConfig {
    /// Time to establish a connection, in milliseconds. A failed connect is retried (the
    /// request never left); nothing else is.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Time for one call, connect to last byte of the answer, in milliseconds.
    #[serde(default = "default_call_timeout")]
    pub timeout_ms: u64,
    /// How many times a failed connect is tried again.
    #[serde(default = "default_connect_retries")]
    pub connect_retries: u32,
    /// Largest answer body accepted, in bytes.
    #[serde(default = "default_reply_bytes")]
    pub max_reply_bytes: usize,
    /// An explicit proxy URL; none by default.
    #[serde(default)]
    pub proxy: Option<String>,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            connect_timeout_ms: default_connect_timeout(),
            timeout_ms: default_call_timeout(),
            connect_retries: default_connect_retries(),
            max_reply_bytes: default_reply_bytes(),
            proxy: None,
        }
    }
}

fn default_scim_index() -> PathBuf {
    "data/scim-index.db".into()
}
fn default_connect_timeout() -> u64 {
    1_000
}
fn default_call_timeout() -> u64 {
    5_000
}
fn default_connect_retries() -> u32 {
    2
}
fn default_reply_bytes() -> usize {
    1024 * 1024
}

impl Default for BackendConfig {
    fn default() -> Self {
        Self::Sqlite { path: default_db() }
    }
}

fn default_db() -> PathBuf {
    "data/userbridge.db".into()
}

/// A group the embedded store declares.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// Positive id.
    pub id: i32,
    /// Name.
    pub name: String,
}

/// One caller credential.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// Who this is (logs say this, never the token).
    pub name: String,
    /// The dialect it is valid for.
    pub dialect: String,
    /// The token the caller presents (or give `token_file`).
    #[serde(default)]
    #[schemars(transform = no_default)]
    pub token: Secret,
    /// A file holding the token (a mounted container secret), read at start and on reload;
    /// a trailing newline is not part of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// Instead of the token, its SHA-256 as 64 hex digits (`userbridge hash-secret` prints it):
    /// the config then holds nothing a caller could present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_sha256: Option<String>,
    /// `token_sha256`, decoded at load.
    #[serde(skip)]
    #[schemars(skip)]
    pub digest: Option<[u8; 32]>,
    /// Roles granted.
    #[serde(default)]
    pub roles: Vec<String>,
    /// The caller's own password, for step-up checks (`callerPassword`).
    #[serde(default)]
    pub password: Option<Secret>,
    /// A file holding that password, as `token_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// Instead of the password, its Argon2id hash as a PHC string (`userbridge hash-secret
    /// --password` prints it): verified off the serving threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_argon2: Option<String>,
}

impl Config {
    /// Reads the credentials' `token_file` and `password_file` into their secrets; the problems
    /// name the credential and the file, never what a file holds.
    fn read_secret_files(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, c) in self.credentials.iter_mut().enumerate() {
            let what = format!("credentials[{i}] ({})", c.name);
            if let Some(h) = &c.token_sha256 {
                if !c.token.expose().is_empty() || c.token_file.is_some() {
                    out.push(format!(
                        "{what} gives token_sha256 with token or token_file: keep one"
                    ));
                }
                match unhex32(h) {
                    Some(d) => c.digest = Some(d),
                    None => out.push(format!("{what}: token_sha256 must be 64 hex digits")),
                }
            }
            if let Some(f) = &c.token_file {
                if !c.token.expose().is_empty() {
                    out.push(format!("{what} gives both token and token_file: keep one"));
                }
                match read_secret_file(f) {
                    Ok(s) => c.token = s,
                    Err(e) => out.push(format!("{what}: token_file {e}")),
                }
            }
            if let Some(f) = &c.password_file {
                if c.password.is_some() {
                    out.push(format!(
                        "{what} gives both password and password_file: keep one"
                    ));
                }
                match read_secret_file(f) {
                    Ok(s) => c.password = Some(s),
                    Err(e) => out.push(format!("{what}: password_file {e}")),
                }
            }
            if let Some(h) = &c.password_argon2 {
                if c.password.is_some() {
                    out.push(format!(
                        "{what} gives password_argon2 with password or password_file: keep one"
                    ));
                }
                if let Err(e) = crate::password::check_phc(h) {
                    out.push(format!("{what}: password_argon2 is {e}"));
                }
            }
        }
        if let Err(e) = crate::password::Hashing::new(&self.secrets.passwords) {
            out.push(e);
        }
        let backends = std::iter::once(("backend".to_owned(), &mut self.backend)).chain(
            self.backends
                .iter_mut()
                .map(|(n, b)| (format!("backends.{n}"), b)),
        );
        for (what, b) in backends {
            let BackendConfig::Postgres {
                url,
                password,
                password_file,
                ..
            } = b
            else {
                continue;
            };
            if url_has_password(url) {
                out.push(format!(
                    "{what}: the url holds a password: give it as password, password_file or \
                     USERBRIDGE_BACKEND__PASSWORD, so that it is never printed with the url"
                ));
            }
            if let Some(f) = password_file {
                if password.is_some() {
                    out.push(format!(
                        "{what} gives both password and password_file: keep one"
                    ));
                }
                match read_secret_file(f) {
                    Ok(p) => *password = Some(p),
                    Err(e) => out.push(format!("{what}: password_file {e}")),
                }
            }
        }
        out
    }
}

/// Whether a `postgres://` URL carries a password (`user:secret@host`, or `password=`).
fn url_has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let userinfo = authority.rsplit_once('@').map(|(u, _)| u);
    userinfo.is_some_and(|u| u.contains(':'))
        || url
            .split_once('?')
            .is_some_and(|(_, q)| q.split('&').any(|kv| kv.starts_with("password=")))
}

/// The SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// `bytes` as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// 64 hex digits as 32 bytes.
fn unhex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Drops a schema's `default` (a secret's default would show as `***`).
fn no_default(schema: &mut schemars::Schema) {
    schema.remove("default");
}

/// A secret as a file or standard input gives it: the text without its trailing line break;
/// `None` when nothing is left.
pub fn secret_line(text: &str) -> Option<&str> {
    Some(text.trim_end_matches(['\n', '\r'])).filter(|s| !s.is_empty())
}

/// A secret kept in a file (see [`secret_line`]).
fn read_secret_file(path: &Path) -> Result<Secret, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    secret_line(&text)
        .map(Secret::new)
        .ok_or_else(|| format!("{} is empty", path.display()))
}

impl Credential {
    /// Whether `presented` is this credential's token, in constant time (against its SHA-256
    /// when the config gives the digest; `sha` computes the presented token's once per request).
    pub fn matches(&self, presented: &[u8], sha: &mut Option<[u8; 32]>) -> bool {
        match &self.digest {
            Some(d) => {
                let got = sha.get_or_insert_with(|| sha256(presented));
                crate::redact::constant_time_eq(got, d)
            }
            None => self.token.ct_eq(presented),
        }
    }

    /// Whether the credential was granted `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// Command-line overrides, the top layer.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Flags {
    /// `--listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

impl Config {
    /// The backend called `name`: `backend` is the main one, others come from `[backends]`.
    pub fn named_backend(&self, name: &str) -> Result<&BackendConfig, String> {
        if name == "backend" {
            return Ok(&self.backend);
        }
        self.backends.get(name).ok_or_else(|| {
            let known: Vec<&str> = std::iter::once("backend")
                .chain(self.backends.keys().map(String::as_str))
                .collect();
            format!(
                "no backend `{name}` in the config (known: {})",
                known.join(", ")
            )
        })
    }

    /// Loads the layered configuration from `file` (or the default file when it exists).
    /// Every problem found in the file is returned, each at its place.
    pub fn load(
        file: Option<&Path>,
        flags: &Flags,
    ) -> Result<(Config, Option<PathBuf>), Vec<Diagnostic>> {
        let path = match file {
            Some(p) => Some(p.to_owned()),
            None => Path::new(DEFAULT_FILE)
                .exists()
                .then(|| PathBuf::from(DEFAULT_FILE)),
        };
        let mut diags = Vec::new();
        if let Some(p) = &path {
            match std::fs::read_to_string(p) {
                Ok(src) => check_file(p, &src, &mut diags),
                Err(e) => diags.push(Diagnostic::file(p, format!("cannot read: {e}"))),
            }
        }
        if !diags.is_empty() {
            return Err(diags);
        }
        // The defaults name the backend's kind only: a file choosing another kind must not
        // inherit the default kind's settings (`path`) as unknown keys.
        let mut defaults = serde_json::to_value(Config::default()).unwrap_or_default();
        if let Some(b) = defaults.get_mut("backend") {
            *b = serde_json::json!({"kind": "sqlite"});
        }
        let mut fig = Figment::from(Serialized::defaults(defaults));
        if let Some(p) = &path {
            fig = fig.merge(Toml::file_exact(p));
        }
        fig = fig.merge(Env::prefixed("USERBRIDGE_").ignore(&["LOG"]).split("__"));
        if let Some(l) = &flags.listen {
            fig = fig.merge(Serialized::default("server.listen", l));
        }
        let where_ = path.clone().unwrap_or_else(|| PathBuf::from("<defaults>"));
        let mut cfg: Config = fig.extract().map_err(|e| {
            e.into_iter()
                .map(|e| Diagnostic::file(&where_, redact_figment(&e)))
                .collect::<Vec<_>>()
        })?;
        let mut problems = cfg.read_secret_files();
        if problems.is_empty() {
            problems = cfg.validate();
        }
        if !problems.is_empty() {
            return Err(problems
                .into_iter()
                .map(|m| Diagnostic::file(&where_, m))
                .collect());
        }
        Ok((cfg, path))
    }

    /// The problems of a config file's text (syntax, unknown keys, types), each at its place;
    /// what `load` reports before it layers anything.
    pub fn check_source(file: &Path, src: &str) -> Vec<Diagnostic> {
        let mut diags = Vec::new();
        check_file(file, src, &mut diags);
        diags
    }

    /// The PostgreSQL backend an audit trail with `sink = "postgres"` is kept in: `[backend]`,
    /// or the primary of a mirror `[backend]`.
    pub fn audit_database(&self) -> Option<&BackendConfig> {
        let db = match &self.backend {
            BackendConfig::Mirror { primary, .. } => self.backends.get(primary)?,
            b => b,
        };
        matches!(db, BackendConfig::Postgres { .. }).then_some(db)
    }

    /// Checks that need the whole config: unique names and ids.
    fn validate(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.audit.enabled
            && self.audit.sink == AuditSink::Postgres
            && self.audit_database().is_none()
        {
            out.push(
                "audit.sink = \"postgres\" keeps the trail in the postgres backend's database: \
                 [backend] must be kind = \"postgres\" (or a mirror whose primary is)"
                    .into(),
            );
        }
        if self.backends.contains_key("backend") {
            out.push("backends.backend: the name `backend` means [backend]; choose another".into());
        }
        for (name, b) in std::iter::once(("backend", &self.backend))
            .chain(self.backends.iter().map(|(k, v)| (k.as_str(), v)))
        {
            let BackendConfig::Mirror {
                primary, shadow, ..
            } = b
            else {
                continue;
            };
            if primary == shadow {
                out.push(format!("{name}: primary and shadow are both `{primary}`"));
            }
            for (role, n) in [("primary", primary), ("shadow", shadow)] {
                match self.backends.get(n) {
                    None => out.push(format!(
                        "{name}.{role} names `{n}`, which [backends] does not define"
                    )),
                    Some(BackendConfig::Mirror { .. }) => {
                        out.push(format!("{name}.{role}: `{n}` is a mirror itself"))
                    }
                    Some(_) => {}
                }
            }
        }
        for (i, g) in self.groups.iter().enumerate() {
            if g.id <= 0 {
                out.push(format!("groups[{i}].id must be a positive integer"));
            }
            if self.groups[..i]
                .iter()
                .any(|o| o.id == g.id || o.name == g.name)
            {
                out.push(format!(
                    "groups[{i}] repeats the id or name of an earlier group"
                ));
            }
        }
        // Each token's digest once (a digest given in the config is the token's own).
        let digests: Vec<[u8; 32]> = self
            .credentials
            .iter()
            .map(|c| {
                c.digest
                    .unwrap_or_else(|| sha256(c.token.expose().as_bytes()))
            })
            .collect();
        for (i, c) in self.credentials.iter().enumerate() {
            if c.token.expose().is_empty() && c.digest.is_none() {
                out.push(format!(
                    "credentials[{i}] ({}) has an empty token (give token, token_file or token_sha256)",
                    c.name
                ));
            }
            if self.credentials[..i]
                .iter()
                .zip(&digests)
                .any(|(o, d)| o.dialect == c.dialect && *d == digests[i])
            {
                out.push(format!(
                    "credentials[{i}] ({}) repeats the token of an earlier credential",
                    c.name
                ));
            }
        }
        out
    }

    /// Per-dialect variable overrides, for loading mappings.
    pub fn mapping_vars(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        self.dialects
            .iter()
            .map(|(k, v)| (k.clone(), v.vars.clone()))
            .collect()
    }
}

/// Figment's messages can quote a value; keep the key path and kind, drop the value.
fn redact_figment(e: &figment::Error) -> String {
    use figment::error::Kind;
    let key = if e.path.is_empty() {
        String::new()
    } else {
        format!("`{}`: ", e.path.join("."))
    };
    let origin = e
        .metadata
        .as_ref()
        .map(|m| format!(" (from {})", m.name))
        .unwrap_or_default();
    let what = match &e.kind {
        Kind::InvalidType(actual, expected) => {
            format!("expected {expected}, found {}", kind_word(actual))
        }
        Kind::InvalidValue(actual, expected) => {
            format!("invalid value ({}), expected {expected}", kind_word(actual))
        }
        Kind::UnknownField(f, _) => format!("unknown key `{f}`"),
        Kind::UnknownVariant(v, exp) => {
            format!("unknown variant `{v}`, expected one of {}", exp.join(", "))
        }
        Kind::MissingField(f) => format!("missing key `{f}`"),
        Kind::DuplicateField(f) => format!("duplicate key `{f}`"),
        other => other.to_string(),
    };
    format!("{key}{what}{origin}")
}

fn kind_word(a: &figment::error::Actual) -> &'static str {
    use figment::error::Actual;
    match a {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
        Actual::Float(_) => "a float",
        Actual::Char(_) | Actual::Str(_) => "a string",
        Actual::Seq => "an array",
        Actual::Map => "a table",
        _ => "another kind of value",
    }
}

/// Checks the file alone, one top-level section at a time, so that every section's first
/// mistake is reported with its line.
fn check_file(path: &Path, src: &str, diags: &mut Vec<Diagnostic>) {
    let Some(table) = parse_table(path, src, diags) else {
        return;
    };
    for (key, value) in table.get_ref().iter() {
        let mut one = toml::de::DeTable::new();
        one.insert(key.clone(), value.clone());
        let root = Spanned::new(0..src.len(), DeValue::Table(one));
        let _ = de::<Config>(path, src, &root, diags);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_section_mistake_is_reported_at_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[server]\nlisten = 80\n\n[limits]\nmax_body_byte = 1\n\n[[credentials]]\nname = \"x\"\ndialect = \"d\"\ntoken = \"hunter2\"\nbogus = 1\n").unwrap();
        let errs = Config::load(Some(&p), &Flags::default()).unwrap_err();
        let lines: Vec<usize> = errs.iter().map(|d| d.line).collect();
        assert_eq!(lines, vec![2, 5, 11], "{errs:?}");
        assert!(
            errs.iter()
                .all(|d| !d.to_string().contains("hunter2") || d.line == 10)
        );
    }

    #[test]
    fn a_file_choosing_a_backend_kind_inherits_no_other_kind_s_settings() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "[backend]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:1/h\"\n[backend.http]\ntimeout_ms = 7\n",
        )
        .unwrap();
        let (cfg, _) = Config::load(Some(&p), &Flags::default()).unwrap();
        assert!(
            matches!(&cfg.backend, BackendConfig::Webhook { url, http, .. } if url == "http://127.0.0.1:1/h" && http.timeout_ms == 7)
        );
        std::fs::write(&p, "[backend]\nkind = \"sqlite\"\npath = \"x.db\"\n").unwrap();
        let (cfg, _) = Config::load(Some(&p), &Flags::default()).unwrap();
        assert!(
            matches!(&cfg.backend, BackendConfig::Sqlite { path } if path == Path::new("x.db"))
        );
    }

    #[test]
    fn credential_secrets_can_come_from_files_and_errors_never_show_them() {
        let dir = tempfile::tempdir().unwrap();
        let (tok, pw) = (dir.path().join("token"), dir.path().join("pw"));
        std::fs::write(&tok, "file-token-123\n").unwrap();
        std::fs::write(&pw, "file-password\r\n").unwrap();
        let p = dir.path().join("c.toml");
        let cred = |extra: &str| {
            format!(
                "[[credentials]]\nname = \"x\"\ndialect = \"d\"\ntoken_file = \"{}\"\npassword_file = \"{}\"\n{extra}",
                tok.display(),
                pw.display()
            )
        };
        std::fs::write(&p, cred("")).unwrap();
        let (cfg, _) = Config::load(Some(&p), &Flags::default()).unwrap();
        let c = &cfg.credentials[0];
        assert!(c.token.ct_eq(b"file-token-123"));
        assert!(c.password.as_ref().unwrap().ct_eq(b"file-password"));

        std::fs::write(&p, cred("token = \"inline\"\n")).unwrap();
        let errs = Config::load(Some(&p), &Flags::default()).unwrap_err();
        let text = format!("{errs:?}");
        assert!(text.contains("both token and token_file"), "{text}");
        assert!(
            !text.contains("file-token-123") && !text.contains("inline"),
            "{text}"
        );

        std::fs::write(&tok, "\n").unwrap();
        std::fs::write(&p, cred("")).unwrap();
        let text = format!(
            "{:?}",
            Config::load(Some(&p), &Flags::default()).unwrap_err()
        );
        assert!(text.contains("is empty"), "{text}");
        std::fs::remove_file(&tok).unwrap();
        let text = format!(
            "{:?}",
            Config::load(Some(&p), &Flags::default()).unwrap_err()
        );
        assert!(
            text.contains("token_file") && text.contains("cannot read"),
            "{text}"
        );
    }

    #[test]
    fn a_token_digest_must_be_64_hex_digits_and_alone() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        let cred = |extra: &str| format!("[[credentials]]\nname = \"x\"\ndialect = \"d\"\n{extra}");
        let hex64 = hex(&sha256(b"t0ken"));
        std::fs::write(&p, cred(&format!("token_sha256 = \"{hex64}\"\n"))).unwrap();
        let (cfg, _) = Config::load(Some(&p), &Flags::default()).unwrap();
        let c = &cfg.credentials[0];
        assert!(c.matches(b"t0ken", &mut None) && !c.matches(b"t0kem", &mut None));
        for (extra, want) in [
            ("token_sha256 = \"abc\"\n".to_owned(), "64 hex digits"),
            (
                format!("token_sha256 = \"{hex64}\"\ntoken = \"t\"\n"),
                "keep one",
            ),
        ] {
            std::fs::write(&p, cred(&extra)).unwrap();
            let text = format!(
                "{:?}",
                Config::load(Some(&p), &Flags::default()).unwrap_err()
            );
            assert!(text.contains(want), "{text}");
        }
    }

    #[test]
    fn flags_override_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, "[server]\nlisten = \"127.0.0.1:1\"\n").unwrap();
        let (cfg, _) = Config::load(
            Some(&p),
            &Flags {
                listen: Some("127.0.0.1:2".into()),
            },
        )
        .unwrap();
        assert_eq!(cfg.server.listen, "127.0.0.1:2");
    }
}
