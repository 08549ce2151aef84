//! The migration commands' command-line side: loading, progress, summaries, exit codes.

use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::Args;

use super::convert::{Converted, Converter};
use super::diff;
use super::import::{Importer, Summary, default_rejects};
use super::pick_route;
use crate::backend::Backend;
use crate::config::Config;
use crate::exchange::Exchange;
use crate::mapping::{Mapping, MappingSet};

/// What `import` and `export` work on.
#[derive(Debug, Args)]
pub struct Target {
    /// Config file (default: config/userbridge.toml when present).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// The dialect of the lines (a mapping file's stem).
    #[arg(long)]
    pub dialect: String,
    /// The route of the lines (default: the dialect's create route, else its first).
    #[arg(long)]
    pub route: Option<String>,
    /// A backend of `[backends]` instead of `[backend]`.
    #[arg(long)]
    pub backend: Option<String>,
}

/// `import` arguments.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Config, dialect, route, backend.
    #[command(flatten)]
    pub target: Target,
    /// Where refused lines go (default: FILE's stem + `.rejects.jsonl`).
    #[arg(long)]
    pub rejects: Option<PathBuf>,
    /// Lines in flight at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// JSON Lines: one request body per line, or `{"params": {…}, "body": {…}}`.
    pub file: PathBuf,
}

/// `export` arguments.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Config, dialect, route, backend.
    #[command(flatten)]
    pub target: Target,
    /// Output file (default: standard output).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `convert` arguments.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Config file (default: config/userbridge.toml when present).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// The dialect of the input lines.
    #[arg(long)]
    pub from: String,
    /// The dialect to write.
    #[arg(long)]
    pub to: String,
    /// The input route (default: as for import).
    #[arg(long)]
    pub from_route: Option<String>,
    /// The output route (default: as for import).
    #[arg(long)]
    pub to_route: Option<String>,
    /// Input JSON Lines.
    pub input: PathBuf,
    /// Output JSON Lines.
    pub output: PathBuf,
}

/// `diff` arguments.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Config file (default: config/userbridge.toml when present).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Compare only these canonical attributes (comma-separated, e.g. `userName,active`).
    #[arg(long, value_delimiter = ',')]
    pub attributes: Vec<String>,
    /// Compare only the attributes every one of these dialects carries (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub carried_by: Vec<String>,
    /// A backend name: `backend`, or one of `[backends]`.
    pub a: String,
    /// The other backend.
    pub b: String,
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

fn load(config: Option<&Path>) -> Result<(Config, MappingSet), String> {
    crate::load::load(config).map_err(|diags| {
        diags
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n\n")
    })
}

fn mapping(set: &MappingSet, dialect: &str) -> Result<Arc<Mapping>, String> {
    set.get(dialect).cloned().ok_or_else(|| {
        let known: Vec<&str> = set.mappings.iter().map(|m| &*m.dialect).collect();
        format!("no dialect `{dialect}` (known: {})", known.join(", "))
    })
}

fn open(
    cfg: &Config,
    audit: &crate::audit::Audit,
    name: Option<&str>,
) -> Result<Arc<dyn Backend>, String> {
    let b = cfg.named_backend(name.unwrap_or("backend"))?;
    crate::backend::open_in(b, cfg, audit)
}

/// Prints `Err` and gives exit code 1.
fn report(r: Result<i32, String>) -> i32 {
    r.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        1
    })
}

/// `userbridge import`: exit 0 when every line was applied or already true, 2 when some were
/// refused, 1 when the import could not run.
pub fn import(args: ImportArgs) -> i32 {
    report(import_inner(args))
}

fn import_inner(args: ImportArgs) -> Result<i32, String> {
    let t = &args.target;
    let (cfg, set) = load(t.config.as_deref())?;
    let mapping = mapping(&set, &t.dialect)?;
    let route = pick_route(&mapping, t.route.as_deref())?;
    let rejects = args.rejects.unwrap_or_else(|| default_rejects(&args.file));
    let total = count_lines(&args.file)?;
    let rt = runtime()?;
    let started = Instant::now();
    let summary = rt.block_on(async {
        let audit = crate::audit::Audit::open(&cfg)?;
        let backend = open(&cfg, &audit, t.backend.as_deref())?;
        let importer = Arc::new(Importer {
            exchange: Exchange::at(mapping, route, Default::default()),
            backend,
            max_depth: cfg.limits.max_json_depth,
            audit,
            source: args.file.display().to_string(),
        });
        let mut progress = Progress::new(total);
        let s = Arc::clone(&importer)
            .run(&args.file, &rejects, args.concurrency, |s| progress.show(s))
            .await;
        progress.finish();
        importer.audit.flush().await;
        s
    })?;
    let secs = started.elapsed().as_secs_f64();
    let _ = writeln!(
        std::io::stdout().lock(),
        "import {}: {} lines: {} applied ({} created, {} updated), {} identical, {} rejected{} — {:.1} s, {:.0} lines/s",
        args.file.display(),
        summary.lines,
        summary.created + summary.updated,
        summary.created,
        summary.updated,
        summary.identical,
        summary.rejected,
        if summary.rejected > 0 {
            format!(" (see {})", rejects.display())
        } else {
            String::new()
        },
        secs,
        summary.lines as f64 / secs.max(1e-9)
    );
    if summary.rejected == 0 {
        let _ = std::fs::remove_file(&rejects);
    }
    Ok(if summary.rejected > 0 { 2 } else { 0 })
}

fn count_lines(file: &Path) -> Result<u64, String> {
    use std::io::BufRead;
    let f = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut r = std::io::BufReader::new(f);
    let mut n = 0;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf) {
            Ok(0) => return Ok(n),
            Ok(_) => n += 1,
            Err(e) => return Err(format!("{}: {e}", file.display())),
        }
    }
}

/// A progress bar on a terminal, a plain line every few seconds otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    total: u64,
    started: Instant,
    last: Instant,
}

impl Progress {
    fn new(total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = indicatif::ProgressBar::new(total);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} lines  {per_sec}  eta {eta}  {msg}",
            ) {
                b.set_style(style);
            }
            b
        });
        Self {
            bar,
            total,
            started: Instant::now(),
            last: Instant::now(),
        }
    }

    fn show(&mut self, s: &Summary) {
        let done = s.done();
        if let Some(b) = &self.bar {
            b.set_position(done);
            b.set_message(format!("{} rejected", s.rejected));
            return;
        }
        if self.last.elapsed().as_secs() < 5 || done == self.total {
            return;
        }
        self.last = Instant::now();
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        let eta = (self.total.saturating_sub(done)) as f64 / rate.max(1e-9);
        eprintln!(
            "import: {done}/{} lines, {} rejected, {rate:.0} lines/s, eta {eta:.0} s",
            self.total, s.rejected
        );
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// `userbridge export`.
pub fn export(args: ExportArgs) -> i32 {
    report(export_inner(args))
}

fn export_inner(args: ExportArgs) -> Result<i32, String> {
    let t = &args.target;
    let (cfg, set) = load(t.config.as_deref())?;
    let mapping = mapping(&set, &t.dialect)?;
    let route = pick_route(&mapping, t.route.as_deref())?;
    let rt = runtime()?;
    let summary = rt.block_on(async {
        let backend = open(&cfg, &crate::audit::Audit::disabled(), t.backend.as_deref())?;
        let store = backend
            .store()
            .ok_or_else(|| format!("the {} backend cannot list users", backend.kind()))?;
        let skipped = |name: &str, why: &str| eprintln!("export: {name} left out: {why}");
        let r = match &args.out {
            Some(p) => {
                let f = crate::private_fs::create_async(p)
                    .await
                    .map_err(|e| format!("{}: {e}", p.display()))?;
                let mut w = tokio::io::BufWriter::new(f);
                super::export::export(store, &mapping, route, &mut w, skipped).await
            }
            None => {
                let mut w = tokio::io::BufWriter::new(tokio::io::stdout());
                super::export::export(store, &mapping, route, &mut w, skipped).await
            }
        };
        r.map_err(|e| e.to_string())
    })?;
    eprintln!(
        "export {}: {} users, {} written, {} left out",
        t.dialect, summary.users, summary.written, summary.skipped
    );
    Ok(0)
}

/// `userbridge convert`: exit 0 when every line converted, 2 when some were refused by their
/// own dialect (named on standard error, not written).
pub fn convert(args: ConvertArgs) -> i32 {
    report(convert_inner(args))
}

fn convert_inner(args: ConvertArgs) -> Result<i32, String> {
    use std::io::{BufRead, Write};
    let (cfg, set) = load(args.config.as_deref())?;
    let (from, to) = (mapping(&set, &args.from)?, mapping(&set, &args.to)?);
    let from_route = pick_route(&from, args.from_route.as_deref())?;
    let conv = Converter {
        to_route: pick_route(&to, args.to_route.as_deref())?,
        from: Exchange::at(from, from_route, Default::default()),
        to: &to,
        max_depth: cfg.limits.max_json_depth,
    };
    let input =
        std::fs::File::open(&args.input).map_err(|e| format!("{}: {e}", args.input.display()))?;
    let output = crate::private_fs::create(&args.output)
        .map_err(|e| format!("{}: {e}", args.output.display()))?;
    let mut reader = std::io::BufReader::new(input);
    let mut writer = std::io::BufWriter::new(output);
    let (mut lines, mut written, mut lossy, mut refused) = (0u64, 0u64, 0u64, 0u64);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| format!("{}: {e}", args.input.display()))?;
        if n == 0 {
            break;
        }
        lines += 1;
        match conv.line(buf.strip_suffix(b"\n").unwrap_or(&buf)) {
            Converted::Line { line, lost } => {
                writeln!(writer, "{line}").map_err(|e| e.to_string())?;
                written += 1;
                if !lost.is_empty() {
                    lossy += 1;
                    eprintln!(
                        "line {lines}: {} cannot carry: {}",
                        args.to,
                        lost.join(", ")
                    );
                }
            }
            Converted::Refused(error) => {
                refused += 1;
                eprintln!("line {lines}: refused by {}: {error}", args.from);
            }
        }
    }
    writer.flush().map_err(|e| e.to_string())?;
    eprintln!(
        "convert {} → {}: {lines} lines: {written} written ({lossy} with attributes {} cannot carry), {refused} refused",
        args.from, args.to, args.to
    );
    Ok(if refused > 0 { 2 } else { 0 })
}

/// `userbridge diff`: exit 0 when the backends agree, 1 when they differ, 2 on trouble.
pub fn diff(args: DiffArgs) -> i32 {
    match diff_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}

fn diff_inner(args: DiffArgs) -> Result<i32, String> {
    let (cfg, set) = load(args.config.as_deref())?;
    let mut attributes = if args.attributes.is_empty() {
        diff::default_attributes()
    } else {
        let all = diff::default_attributes();
        let mut chosen = Vec::new();
        for a in &args.attributes {
            match all.iter().find(|x| **x == a.as_str()) {
                Some(x) => chosen.push(*x),
                None => {
                    return Err(format!(
                        "`{a}` is not a comparable attribute ({})",
                        all.join(", ")
                    ));
                }
            }
        }
        chosen
    };
    for d in &args.carried_by {
        let carried = mapping(&set, d)?.carried();
        attributes.retain(|a| carried.iter().any(|c| super::convert::covers(c, a)));
    }
    let rt = runtime()?;
    let report = rt.block_on(async {
        let users = |name: String| {
            let cfg = &cfg;
            async move {
                let backend = open(cfg, &crate::audit::Audit::disabled(), Some(&name))?;
                let store = backend
                    .store()
                    .ok_or_else(|| format!("the {} backend cannot list users", backend.kind()))?;
                diff::all_users(store)
                    .await
                    .map_err(|e| format!("{name}: {e}"))
            }
        };
        let (a, b) = tokio::try_join!(users(args.a.clone()), users(args.b.clone()))?;
        Ok::<_, String>(diff::compare(&a, &b, attributes))
    })?;
    let text = if args.json {
        serde_json::to_string_pretty(&report).map_err(|e| e.to_string())? + "\n"
    } else {
        report.table(&args.a, &args.b)
    };
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes());
    Ok(if report.is_empty() { 0 } else { 1 })
}
