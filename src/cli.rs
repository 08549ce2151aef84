//! The command line: `check`, `translate`, `serve`, `schema`. Each command returns its exit code.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{Config, Flags};
use crate::diagnostic::Diagnostic;
use crate::exchange::{DryRun, Exchange, Offline, dry_run};
use crate::load::{load, load_with};
use crate::mapping::DialectResponse;

/// userbridge: vendor user APIs in, one canonical user model through, any backend out.
#[derive(Debug, Parser)]
#[command(name = "userbridge", version, about)]
pub struct Cli {
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load the config and every mapping; print every error with its place; exit 1 if any.
    Check {
        /// Config file (default: config/userbridge.toml when present).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Translate one request offline and print the canonical operation (exit 0), or the
    /// dialect's error answer (exit 2). No credentials are checked and no backend is called.
    Translate {
        /// Config file (default: config/userbridge.toml when present).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// A request header, `Name: value` (repeatable).
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// Print secrets in clear instead of `***`.
        #[arg(long)]
        show_secrets: bool,
        /// The other direction: BODY is a canonical (SCIM shaped) user, printed as the success
        /// answer of the route METHOD PATH, as a client of that dialect would receive it.
        #[arg(long)]
        reverse: bool,
        /// Also say where each canonical attribute came from (the rule at file:line, its
        /// source, its transforms) and what became of each request member; `--explain=json`
        /// prints it and the result as one JSON object.
        #[arg(long, value_enum, num_args = 0..=1, require_equals = true, default_missing_value = "text")]
        explain: Option<ExplainFormat>,
        /// HTTP method.
        method: String,
        /// Request path (a query string is ignored).
        path: String,
        /// Body file, or `-` for standard input (default: empty body).
        body: Option<PathBuf>,
    },
    /// Run the `[[tests]]` of the mapping files through the gateway's own exchange (no server,
    /// no backend): each test's result, a diff at the test's file:line for each failure; exit 1
    /// when any fails.
    Test {
        /// Config file (default: config/userbridge.toml when present).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Also write the results as JUnit XML to this file.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Print each test's whole outcome (what its `expect` is compared with).
        #[arg(long)]
        show: bool,
        /// Also say, per mapping, which `[[fields]]` rules no test's request exercises.
        #[arg(long)]
        coverage: bool,
        /// Dialects, or mapping files (a file outside the config's mappings replaces the
        /// dialect of the same name); default: every mapping.
        mappings: Vec<String>,
    },
    /// Run the gateway: every dialect of the mappings on one listener, the configured backend.
    Serve {
        /// Config file (default: config/userbridge.toml when present).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Address to listen on (overrides `server.listen`).
        #[arg(long)]
        listen: Option<String>,
        /// Log format.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
        /// Serve on a non-loopback listener even with demo or short credentials (for labs).
        #[arg(long, env = "USERBRIDGE_ALLOW_INSECURE_CREDENTIALS")]
        allow_insecure_credentials: bool,
    },
    /// Print the OpenAPI 3.1 document of a dialect, generated from its mapping file.
    Openapi {
        /// Config file (default: config/userbridge.toml when present).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The dialect (a mapping file's stem).
        dialect: String,
    },
    /// Print a mapping skeleton for a vendor's operations from its OpenAPI 3.x document (YAML
    /// or JSON): routes, parameters, every request member as a rule with its checks, guessed
    /// canonical targets marked `# TODO check`, answers, and a test from the example.
    Scaffold {
        /// The vendor's OpenAPI 3.x document.
        #[arg(long)]
        openapi: PathBuf,
        /// An `operationId` to make a route of (repeatable; at least one).
        #[arg(long = "operation", required = true)]
        operations: Vec<String>,
        /// The dialect's name (default: the document's title in kebab case).
        #[arg(long)]
        dialect: Option<String>,
        /// Write the skeleton to this file (refused if it exists) instead of standard output.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Probe a health endpoint (for container HEALTHCHECKs without curl): exit 0 on a 200.
    Probe {
        /// `http://host:port/path` of the endpoint.
        #[arg(default_value = "http://127.0.0.1:8080/healthz")]
        url: String,
    },
    /// Apply a JSON Lines file of one dialect's request bodies to the backend, users matched
    /// by userName (+ authenticator); every line ends applied, identical or in the rejects
    /// file. Re-running applies nothing twice.
    Import(crate::migrate::cli::ImportArgs),
    /// Write every user of the backend as one dialect's request bodies (JSON Lines; secrets
    /// never exported).
    Export(crate::migrate::cli::ExportArgs),
    /// Convert a JSON Lines file of one dialect's bodies into another's, offline, naming per
    /// line what the second dialect cannot carry.
    Convert(crate::migrate::cli::ConvertArgs),
    /// Compare the users of two configured backends attribute by attribute (exit 0 same,
    /// 1 different, 2 trouble).
    Diff(crate::migrate::cli::DiffArgs),
    /// Show one user's history from the audit trail, oldest first.
    Audit {
        /// Config file (default: config/userbridge.toml when present).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The user's userName.
        #[arg(long)]
        user: String,
        /// Print the records as JSON Lines.
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema of config or mapping files, for editors.
    Schema {
        /// Which schema.
        which: SchemaKind,
    },
    /// Read a token from standard input (one line) and print the `token_sha256 = "…"` line
    /// that lets a credential's config hold its digest instead of the token; with
    /// `--password`, a caller password's `password_argon2 = "…"` line (Argon2id, OWASP's
    /// parameters).
    HashSecret {
        /// Hash a caller password (Argon2id) instead of a token (SHA-256).
        #[arg(long)]
        password: bool,
    },
    /// Reseal the embedded store's secrets under the current `[secrets]` key: values sealed
    /// under a key in `previous_key_files` (or kept in clear) are rewritten. `serve` does the
    /// same at start; this does it offline, and says how many.
    Rekey {
        /// Config file.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

/// How `serve` writes its logs.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// How `translate --explain` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExplainFormat {
    /// Lines for a person.
    Text,
    /// One JSON object: `{"explanation": …, "result": …}`.
    Json,
}

/// The schemas `schema` prints.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SchemaKind {
    /// `config/userbridge.toml`.
    Config,
    /// `mappings/*.toml`.
    Mapping,
}

/// Runs a parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Command::Check { config } => check(config.as_deref()),
        Command::Translate {
            config,
            headers,
            show_secrets,
            reverse,
            explain,
            method,
            path,
            body,
        } => translate(
            config.as_deref(),
            &headers,
            Mode {
                show_secrets,
                reverse,
                explain,
            },
            &method,
            &path,
            body.as_deref(),
        ),
        Command::Schema { which } => schema(which),
        Command::Test {
            config,
            junit,
            show,
            coverage,
            mappings,
        } => test(
            config.as_deref(),
            &mappings,
            junit.as_deref(),
            show,
            coverage,
        ),
        Command::HashSecret { password } => hash_secret(password),
        Command::Rekey { config } => rekey(config.as_deref()),
        Command::Audit { config, user, json } => audit(config.as_deref(), &user, json),
        Command::Import(a) => crate::migrate::cli::import(a),
        Command::Export(a) => crate::migrate::cli::export(a),
        Command::Convert(a) => crate::migrate::cli::convert(a),
        Command::Diff(a) => crate::migrate::cli::diff(a),
        Command::Probe { url } => probe(&url),
        Command::Scaffold {
            openapi,
            operations,
            dialect,
            out,
        } => scaffold(&openapi, operations, dialect, out.as_deref()),
        Command::Openapi { config, dialect } => openapi(config.as_deref(), &dialect),
        Command::Serve {
            config,
            listen,
            log_format,
            allow_insecure_credentials,
        } => serve(
            config.as_deref(),
            Flags { listen },
            log_format,
            allow_insecure_credentials,
        ),
    }
}

fn scaffold(
    openapi: &Path,
    operations: Vec<String>,
    dialect: Option<String>,
    out: Option<&Path>,
) -> i32 {
    use crate::authoring::{scaffold, vendor_doc::VendorDoc};
    let doc = match VendorDoc::read(openapi) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let req = scaffold::Request {
        operations,
        dialect,
        source: openapi.display().to_string(),
    };
    let text = match scaffold::scaffold(&doc, &req) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let Some(out) = out else {
        print!("{text}");
        return 0;
    };
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(out)
        .and_then(|mut f| f.write_all(text.as_bytes()));
    match written {
        Ok(()) => {
            eprintln!(
                "wrote {}: `userbridge test {}` runs its test; every `# TODO check` is a guess to confirm",
                out.display(),
                out.display()
            );
            0
        }
        Err(e) => {
            eprintln!("error: {}: {e}", out.display());
            1
        }
    }
}

fn test(
    config: Option<&Path>,
    mappings: &[String],
    junit: Option<&Path>,
    show: bool,
    coverage: bool,
) -> i32 {
    let (cfg, mut set) = match load(config) {
        Ok(x) => x,
        Err(d) => {
            print_diags(&d);
            return 1;
        }
    };
    let mut chosen: Vec<String> = Vec::new();
    for a in mappings {
        let p = Path::new(a);
        if !(a.ends_with(".toml") || p.is_file()) {
            if set.get(a).is_none() {
                eprintln!("error: no mapping defines the dialect `{a}`");
                return 1;
            }
            chosen.push(a.clone());
            continue;
        }
        let m = match crate::mapping::load::load_file(p, &Default::default()) {
            Ok(m) => m,
            Err(d) => {
                print_diags(&d);
                return 1;
            }
        };
        // Compiled again with the config's variables for that dialect, as serve would.
        let m = match cfg.mapping_vars().get(&*m.dialect) {
            Some(vars) => match crate::mapping::load::load_file(p, vars) {
                Ok(m) => m,
                Err(d) => {
                    print_diags(&d);
                    return 1;
                }
            },
            None => m,
        };
        let dialect = m.dialect.to_string();
        set.mappings.retain(|x| *x.dialect != *dialect);
        set.mappings.push(std::sync::Arc::new(m));
        chosen.push(dialect);
    }
    let conflicts = set.conflicts();
    if !conflicts.is_empty() {
        print_diags(&conflicts);
        return 1;
    }
    let picked: Vec<&crate::mapping::Mapping> = chosen
        .iter()
        .filter_map(|d| set.get(d))
        .map(|m| &**m)
        .collect();
    let reports = crate::authoring::test::run(&set, &cfg.limits, &picked);
    let mut out = std::io::stdout().lock();
    for r in &reports {
        let verdict = if r.passed() { "ok" } else { "FAILED" };
        let _ = writeln!(out, "test {}: {} ... {verdict}", r.dialect, r.name);
        if show {
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&r.outcome).unwrap_or_default()
            );
        }
    }
    let failed: Vec<&crate::authoring::test::Report> =
        reports.iter().filter(|r| !r.passed()).collect();
    if !failed.is_empty() {
        let _ = writeln!(out, "\nfailures:\n");
        for r in &failed {
            let _ = writeln!(out, "{}\n", r.failure());
        }
    }
    let empty: Vec<&str> = set
        .mappings
        .iter()
        .filter(|m| picked.is_empty() || picked.iter().any(|p| p.dialect == m.dialect))
        .filter(|m| m.tests.is_empty())
        .map(|m| &*m.dialect)
        .collect();
    for d in &empty {
        eprintln!("warning: the mapping of `{d}` has no [[tests]]");
    }
    if coverage {
        let all: Vec<&crate::mapping::Mapping> = if picked.is_empty() {
            set.mappings.iter().map(|m| &**m).collect()
        } else {
            picked.clone()
        };
        for c in crate::authoring::coverage::coverage(&set, &cfg.limits, &all) {
            let _ = writeln!(out, "{}", c.report());
        }
    }
    let _ = writeln!(
        out,
        "\ntest result: {}. {} passed; {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        reports.len() - failed.len(),
        failed.len()
    );
    if let Some(path) = junit {
        let written = crate::private_fs::create(path).and_then(|mut f| {
            std::io::Write::write_all(&mut f, crate::authoring::test::junit(&reports).as_bytes())
        });
        if let Err(e) = written {
            eprintln!("error: cannot write {}: {e}", path.display());
            return 2;
        }
    }
    i32::from(!failed.is_empty())
}

fn rekey(config: Option<&Path>) -> i32 {
    let config = match Config::load(config, &Flags::default()) {
        Ok((c, _)) => c,
        Err(diags) => {
            print_diags(&diags);
            return 1;
        }
    };
    let all = || std::iter::once(&config.backend).chain(config.backends.values());
    let mut stores: Vec<&Path> = all()
        .filter_map(|b| match b {
            crate::config::BackendConfig::Sqlite { path } => Some(path.as_path()),
            _ => None,
        })
        .collect();
    let mut queues: Vec<&Path> = all()
        .filter_map(|b| match b {
            crate::config::BackendConfig::Mirror { queue, .. } => Some(queue.as_path()),
            _ => None,
        })
        .collect();
    for list in [&mut stores, &mut queues] {
        list.sort();
        list.dedup();
    }
    if stores.is_empty() && queues.is_empty() {
        eprintln!(
            "rekey: no sqlite store or mirror queue in the config (other backends keep their own secrets)"
        );
        return 2;
    }
    let mut failed = false;
    for path in stores {
        match crate::backend::sqlite::Sqlite::open(path, &config.groups, &config.secrets) {
            Ok(s) => {
                let (n, kid) = s.resealed();
                println!(
                    "{}: {n} users resealed; all under key {kid}",
                    path.display()
                );
            }
            Err(e) => {
                eprintln!("rekey: {e}");
                failed = true;
            }
        }
    }
    for path in queues {
        match crate::backend::mirror::rekey_queue(path, &config.secrets) {
            Ok((n, kid)) => println!(
                "{}: {n} queued copies resealed; all under key {kid}",
                path.display()
            ),
            Err(e) => {
                eprintln!("rekey: {e}");
                failed = true;
            }
        }
    }
    i32::from(failed)
}

fn hash_secret(password: bool) -> i32 {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("hash-secret: cannot read standard input: {e}");
        return 2;
    }
    let what = if password { "password" } else { "token" };
    let Some(secret) = crate::config::secret_line(&line) else {
        eprintln!("hash-secret: no {what} on standard input");
        return 2;
    };
    if password {
        let hashed = crate::password::Hashing::new(&crate::config::PasswordConfig::default())
            .and_then(|h| h.hash_now(secret));
        match hashed {
            Ok(phc) => println!("password_argon2 = \"{phc}\""),
            Err(e) => {
                eprintln!("hash-secret: {e}");
                return 2;
            }
        }
        return 0;
    }
    let digest = crate::config::hex(&crate::config::sha256(secret.as_bytes()));
    println!("token_sha256 = \"{digest}\"");
    0
}

fn print_diags(diags: &[Diagnostic]) {
    let mut err = std::io::stderr().lock();
    for d in diags {
        let _ = writeln!(err, "{d}\n");
    }
}

fn serve(
    config: Option<&Path>,
    flags: Flags,
    log_format: LogFormat,
    allow_insecure_credentials: bool,
) -> i32 {
    let filter = tracing_subscriber::EnvFilter::try_from_env("USERBRIDGE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match log_format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
    let loaded = load_with(config, &flags);
    let (cfg, set) = match loaded {
        Ok(x) => x,
        Err(diags) => {
            print_diags(&diags);
            eprintln!(
                "error: not starting: {} problem(s) in config or mappings",
                diags.len()
            );
            return 1;
        }
    };
    if let Some(refusal) = crate::bootstrap::refusal(&cfg) {
        if !allow_insecure_credentials {
            eprintln!("error: {refusal}");
            return 1;
        }
        tracing::warn!(
            listen = %cfg.server.listen,
            "serving with demo or short credentials on a listener other machines reach \
             (--allow-insecure-credentials)"
        );
    }
    // Requests are served on the workers' runtimes (`server::workers`); this one keeps the
    // signals, reloads and the mirror's copying.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return 1;
        }
    };
    let path = config.map(Path::to_owned);
    // A reload is held to the same bootstrap check as the start.
    let load: std::sync::Arc<crate::server::reload::Loader> = std::sync::Arc::new(move || {
        let (cfg, set) = load_with(path.as_deref(), &flags)?;
        match crate::bootstrap::refusal(&cfg) {
            Some(r) if !allow_insecure_credentials => {
                let file = path
                    .clone()
                    .unwrap_or_else(|| "config/userbridge.toml".into());
                Err(vec![Diagnostic::file(&file, r)])
            }
            _ => Ok((cfg, set)),
        }
    });
    match runtime.block_on(crate::server::run(cfg, set, load)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn audit(config: Option<&Path>, user: &str, json: bool) -> i32 {
    let cfg = match Config::load(config, &Flags::default()) {
        Ok((c, _)) => c,
        Err(diags) => {
            print_diags(&diags);
            return 1;
        }
    };
    let records = match crate::audit::for_user(&cfg, user) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot read the audit trail: {e}");
            return 1;
        }
    };
    let mut out = std::io::stdout().lock();
    for r in &records {
        let line = if json {
            r.to_string()
        } else {
            let s = |k: &str| r[k].as_str().unwrap_or("-").to_owned();
            format!(
                "{}  {}  {}  {}  {}  {}{}  {}",
                s("time"),
                s("requestId"),
                s("caller"),
                s("dialect"),
                s("operation"),
                r["outcome"]["status"],
                r["outcome"]["error"]
                    .as_str()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default(),
                r["changes"]
            )
        };
        if writeln!(out, "{line}").is_err() {
            break;
        }
    }
    if records.is_empty() {
        let place = match cfg.audit.sink {
            crate::config::AuditSink::File => cfg.audit.path.display().to_string(),
            crate::config::AuditSink::Postgres => {
                format!("the database or {}", cfg.audit.path.display())
            }
        };
        eprintln!("no audit records for {user} in {place}");
        return 1;
    }
    0
}

fn probe(url: &str) -> i32 {
    use std::net::{TcpStream, ToSocketAddrs};
    let Some(rest) = url.strip_prefix("http://") else {
        eprintln!("error: only http:// URLs can be probed");
        return 2;
    };
    let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    let timeout = std::time::Duration::from_secs(3);
    let addr = match authority.to_socket_addrs().ok().and_then(|mut a| a.next()) {
        Some(a) => a,
        None => {
            eprintln!("error: cannot resolve {authority}");
            return 1;
        }
    };
    let result = (|| -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        write!(s, "GET /{path} HTTP/1.0\r\nHost: {authority}\r\n\r\n")?;
        let mut head = String::new();
        s.read_to_string(&mut head)?;
        Ok(head)
    })();
    match result {
        Ok(resp) if resp.starts_with("HTTP/1.1 200") || resp.starts_with("HTTP/1.0 200") => 0,
        Ok(resp) => {
            eprintln!("unhealthy: {}", resp.lines().next().unwrap_or(""));
            1
        }
        Err(e) => {
            eprintln!("unhealthy: {e}");
            1
        }
    }
}

fn check(config: Option<&Path>) -> i32 {
    match load(config) {
        Ok((cfg, set)) => {
            // What `serve` would refuse on this listener: a warning here, so that a config can
            // be checked before the credentials it will be given are in place.
            if let Some(refusal) = crate::bootstrap::refusal(&cfg) {
                eprintln!("warning: serve would refuse to start: {refusal}\n");
            }
            let embedded = std::iter::once(&cfg.backend)
                .chain(cfg.backends.values())
                .find_map(|b| match b {
                    crate::config::BackendConfig::Sqlite { path } => Some(path),
                    _ => None,
                });
            if let Some(store) = embedded
                && cfg.secrets.key.is_none()
                && cfg.secrets.key_file.is_none()
            {
                eprintln!(
                    "warning: no [secrets] key: the store's secrets are sealed under a key kept \
                     beside it ({}); set secrets.key_file or USERBRIDGE_SECRETS__KEY\n",
                    crate::sealed::beside(store).display()
                );
            }
            let names: Vec<&str> = set.mappings.iter().map(|m| &*m.dialect).collect();
            println!(
                "ok: config and {} mapping{} ({})",
                names.len(),
                if names.len() == 1 { "" } else { "s" },
                names.join(", ")
            );
            0
        }
        Err(diags) => {
            print_diags(&diags);
            let mut files: Vec<&Path> = diags.iter().map(|d| d.file.as_path()).collect();
            files.sort();
            files.dedup();
            eprintln!(
                "error: {} problem{} in {} file{}",
                diags.len(),
                if diags.len() == 1 { "" } else { "s" },
                files.len(),
                if files.len() == 1 { "" } else { "s" }
            );
            1
        }
    }
}

/// How `translate` runs.
struct Mode {
    show_secrets: bool,
    reverse: bool,
    explain: Option<ExplainFormat>,
}

fn translate(
    config: Option<&Path>,
    header_args: &[String],
    mode: Mode,
    method: &str,
    path: &str,
    body: Option<&Path>,
) -> i32 {
    let (cfg, set) = match load(config) {
        Ok(x) => x,
        Err(d) => {
            print_diags(&d);
            return 1;
        }
    };
    let mut headers = http::HeaderMap::new();
    for h in header_args {
        let parsed = h.split_once(':').and_then(|(n, v)| {
            Some((
                http::HeaderName::from_bytes(n.trim().as_bytes()).ok()?,
                http::HeaderValue::from_str(v.trim()).ok()?,
            ))
        });
        match parsed {
            Some((n, v)) => {
                headers.append(n, v);
            }
            None => {
                eprintln!("error: `-H {h}` is not a header; write `Name: value`");
                return 1;
            }
        }
    }
    let bytes = match body {
        None => Vec::new(),
        Some(p) if p == Path::new("-") => {
            let mut b = Vec::new();
            if let Err(e) = std::io::stdin().read_to_end(&mut b) {
                eprintln!("error: cannot read standard input: {e}");
                return 1;
            }
            b
        }
        Some(p) => match std::fs::read(p) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("error: cannot read {}: {e}", p.display());
                return 1;
            }
        },
    };
    let Ok(method) = http::Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
        eprintln!("error: `{method}` is not an HTTP method");
        return 1;
    };
    let path_only = path.split('?').next().unwrap_or(path);
    if mode.reverse {
        return reverse(&cfg, &set, &method, path_only, &bytes);
    }
    let req = Offline {
        method: &method,
        path,
        headers: &headers,
        body: &bytes,
        request_id: "offline",
    };
    if let Some(format) = mode.explain {
        return explain(&set, &cfg.limits, req, format, mode.show_secrets);
    }
    match dry_run(&set, &cfg.limits, req, None) {
        DryRun::NoRoute => {
            eprintln!("error: no mapping has a route for {method} {path_only}");
            2
        }
        DryRun::Refused { answer, .. } => {
            print_response(&answer);
            2
        }
        DryRun::Read { exchange, lookup } => {
            let mut v = serde_json::json!({"route": exchange.route_name(), "read": exchange.kind().as_str()});
            if let Some(t) = &lookup.target {
                v["target"] = serde_json::to_value(t).unwrap_or_default();
            }
            if exchange.kind() == crate::mapping::RouteKind::List {
                v["search"] = serde_json::json!({
                    "text": lookup.text,
                    "contains": exchange.spec().and_then(|r| r.search.as_ref()).map(|s| s.contains.clone()).unwrap_or_default(),
                    "offset": lookup.offset,
                    "limit": lookup.limit.unwrap_or(cfg.limits.max_list).min(cfg.limits.max_list),
                });
            }
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            0
        }
        DryRun::Translated { translation, .. } => {
            for n in &translation.notes {
                eprintln!("note: {n}");
            }
            let v = if mode.show_secrets {
                translation.op.to_exposed_json()
            } else {
                serde_json::to_value(&translation.op).unwrap_or_default()
            };
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            0
        }
    }
}

/// `translate --explain`: the explanation of the route's rules on `req`, then the result.
fn explain(
    set: &crate::mapping::MappingSet,
    limits: &crate::config::Limits,
    req: Offline<'_>,
    format: ExplainFormat,
    show_secrets: bool,
) -> i32 {
    let path = req.path.split_once('?').map_or(req.path, |(p, _)| p);
    let explanation = crate::exchange::explain_offline(set, limits, &req);
    let result = crate::authoring::test::outcome_of(dry_run(set, limits, req, None), show_secrets);
    let code = if result.get("canonical").is_some() || result.get("read").is_some() {
        0
    } else {
        2
    };
    let mut out = std::io::stdout().lock();
    let text = match format {
        ExplainFormat::Json => {
            let v = serde_json::json!({"explanation": explanation, "result": result});
            serde_json::to_string_pretty(&v).unwrap_or_default()
        }
        ExplainFormat::Text => {
            let head = match &explanation {
                Some(e) => crate::mapping::explain::render_text(e),
                None => format!("no mapping has a route for {} {path}\n", req.method),
            };
            let result = serde_json::to_string_pretty(&result).unwrap_or_default();
            format!("{head}\nresult:\n{result}")
        }
    };
    // A closed pipe (`| head`) ends the output, not the process with a panic.
    let _ = writeln!(out, "{text}");
    code
}

/// `translate --reverse`: a canonical user (or operation) as the route's success answer.
fn reverse(
    cfg: &Config,
    set: &crate::mapping::MappingSet,
    method: &http::Method,
    path: &str,
    bytes: &[u8],
) -> i32 {
    let exchange = match Exchange::route(set, method, path) {
        Ok(e) => e,
        Err(_) => {
            eprintln!("error: no mapping has a route for {method} {path}");
            return 2;
        }
    };
    // A canonical user, or a canonical operation (its `user`).
    let user = match crate::json::parse_strict(bytes, cfg.limits.max_json_depth) {
        Ok(serde_json::Value::Object(mut m)) => match m.shift_remove("user") {
            Some(serde_json::Value::Object(u)) if m.contains_key("operation") => u,
            Some(other) => {
                m.insert("user".into(), other);
                m
            }
            None => m,
        },
        Ok(_) => {
            eprintln!("error: the body must be a canonical user (a JSON object)");
            return 1;
        }
        Err(e) => {
            eprintln!("error: the body is not valid JSON: {e}");
            return 1;
        }
    };
    let stored = crate::backend::Stored::from_doc(crate::canonical::UserDoc(user));
    match exchange.answer(&stored, "") {
        Ok(r) => print_response(&r),
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    }
    0
}

fn openapi(config: Option<&Path>, dialect: &str) -> i32 {
    let (cfg, set) = match load(config) {
        Ok(x) => x,
        Err(d) => {
            print_diags(&d);
            return 1;
        }
    };
    let Some(mapping) = set.get(dialect) else {
        eprintln!("error: no mapping defines the dialect `{dialect}`");
        return 1;
    };
    let vars = cfg
        .dialects
        .get(dialect)
        .map(|d| d.vars.clone())
        .unwrap_or_default();
    match crate::openapi::document(&mapping.file, &vars) {
        Ok(doc) => {
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn print_response(r: &DialectResponse) {
    println!("HTTP {}", r.status);
    println!("{}", String::from_utf8_lossy(&r.body));
}

fn schema(which: SchemaKind) -> i32 {
    let s = match which {
        SchemaKind::Config => schemars::schema_for!(Config),
        SchemaKind::Mapping => schemars::schema_for!(crate::mapping::spec::MappingSpec),
    };
    println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
    0
}
