//! The `cachepot` command line: statistics, configuration, cache maintenance and the shim
//! directory. Compile calls never come here (see main.rs). Bad settings are hard errors here.
//! `--help` stays short; the manual is man/cachepot.1.

use crate::config::{Config, UNLIMITED, format_size};
use crate::stats::{self, Summary};
use crate::store::disk::DiskStore;
use argh::FromArgs;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// cachepot: a compiler cache for gcc, clang and rustc. Compile with `cachepot gcc -c a.c`, put a
/// shim directory (--install-shims) first on PATH, or set RUSTC_WRAPPER=cachepot for cargo.
#[derive(FromArgs)]
#[argh(note = "Settings, environment variables, the config file, remote stores and examples: man cachepot")]
pub struct Cli {
    /// print statistics: hits, misses, why calls were not cacheable, errors, size
    #[argh(switch, short = 's')]
    pub show_stats: bool,
    /// with --show-stats or --show-config: print JSON
    #[argh(switch)]
    pub json: bool,
    /// reset the statistics counters
    #[argh(switch, short = 'z')]
    pub zero_stats: bool,
    /// remove every cached entry
    #[argh(switch, short = 'C')]
    pub clear_cache: bool,
    /// trim the cache to its size limit now
    #[argh(switch, short = 'c')]
    pub cleanup: bool,
    /// remove entries not used for AGE (e.g. 30d, 12h), then trim
    #[argh(option)]
    pub evict_older_than: Option<String>,
    /// set the size limit in the config file (e.g. 10G, 500MB; 0 = no limit)
    #[argh(option, short = 'M')]
    pub max_size: Option<String>,
    /// print the merged configuration and where each value came from
    #[argh(switch)]
    pub show_config: bool,
    /// write a new private signing key to FILE (mode 0600, never over a file) and print its public key
    #[argh(option)]
    pub new_signing_key: Option<PathBuf>,
    /// create or refresh DIR with compiler-named links to cachepot, for the front of PATH
    #[argh(option)]
    pub install_shims: Option<PathBuf>,
    /// with --install-shims: the path the links point to (default: this executable)
    #[argh(option)]
    pub shim_target: Option<PathBuf>,
    /// with --install-shims: link only the C compilers (c) or only rustc and clippy-driver (rust)
    #[argh(option)]
    pub only: Option<String>,
    /// print the version and what this build supports
    #[argh(switch, short = 'V')]
    pub version: bool,
    /// start the coordinator (machine-wide compile slots) in the background
    #[argh(switch)]
    pub start_coordinator: bool,
    /// stop the running coordinator
    #[argh(switch)]
    pub stop_coordinator: bool,
    /// the same as --start-coordinator (sccache's name)
    #[argh(switch)]
    pub start_server: bool,
    /// the same as --stop-coordinator (sccache's name)
    #[argh(switch)]
    pub stop_server: bool,
    /// with --start-coordinator: run it in the foreground, logging to stderr
    #[argh(switch)]
    pub foreground: bool,
}

/// What this build supports, for `--version`: there are no optional cargo features, so this is the
/// fixed list of compilers, stores and modes compiled in.
const FEATURES: &[&str] = &[
    "gcc",
    "clang",
    "msvc",
    "clang-cl",
    "diab",
    "rustc",
    "direct-mode",
    "preprocessor-mode",
    "disk",
    "redis",
    "memcached",
    "s3",
    "gcs",
    "azure",
    "coordinator",
    "tls-rustls",
];

/// Run a CLI command; returns the exit status.
pub fn run(mut cli: Cli) -> i32 {
    cli.start_coordinator |= cli.start_server;
    cli.stop_coordinator |= cli.stop_server;
    match run_inner(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("cachepot: error: {e}");
            1
        }
    }
}

fn run_inner(cli: Cli) -> Result<(), String> {
    if cli.version {
        println!("cachepot {}", env!("CARGO_PKG_VERSION"));
        println!("features: {}", FEATURES.join(" "));
        return Ok(());
    }
    if let Some(file) = &cli.new_signing_key {
        println!("{}", crate::trust::new_signing_key(file)?);
        return Ok(());
    }
    if let Some(result) = coordinator_command(&cli) {
        return result;
    }
    if let Some(dir) = &cli.install_shims {
        return install_shims(&cli, dir);
    }
    if cli.only.is_some() {
        return Err("--only goes with --install-shims DIR".into());
    }
    let any = cli.show_stats
        || cli.zero_stats
        || cli.clear_cache
        || cli.show_config
        || cli.cleanup
        || cli.evict_older_than.is_some()
        || cli.max_size.is_some();
    if !any {
        return Err(
            "nothing to do; see `cachepot --help` or `man cachepot`, or compile with `cachepot gcc -c a.c`".into(),
        );
    }
    let age = match &cli.evict_older_than {
        Some(a) => Some(crate::config::parse_age(a).map_err(|e| format!("--evict-older-than {a}: {e}"))?),
        None => None,
    };
    for w in crate::config::unknown_env_warnings() {
        eprintln!("cachepot: warning: {w}");
    }
    let mut cfg = Config::load().map_err(|e| e.to_string())?;
    if let Some(size) = &cli.max_size {
        let (file, bytes) = crate::config::write_max_size(&cfg, size).map_err(|e| e.to_string())?;
        println!("size limit set to {} in {}", format_size(bytes), file.display());
        if let crate::config::Source::Env(var) = cfg.max_size.source {
            println!("note: {var} in the environment overrides it");
        }
        cfg = Config::load().map_err(|e| e.to_string())?;
    }
    let store = DiskStore::new(&cfg.dir.value, cfg.max_size.value);
    if cli.clear_cache || cli.zero_stats || cli.show_stats || cli.cleanup || age.is_some() {
        // Stores still finishing in the background (background.rs) count when they end.
        crate::background::wait_for_all(&cfg.dir.value);
    }
    if cli.clear_cache {
        store
            .clear()
            .map_err(|e| format!("cannot clear {}: {e}", cfg.dir.value.display()))?;
        println!("cleared the cache in {}", cfg.dir.value.display());
    }
    if cli.cleanup || age.is_some() {
        let (before, after) = store
            .cleanup(age)
            .map_err(|e| format!("cannot clean up {}: {e}", cfg.dir.value.display()))?;
        println!(
            "removed {} entries ({}); {} entries ({}) remain, limit {}",
            before.files.saturating_sub(after.files),
            format_size(before.bytes.saturating_sub(after.bytes)),
            after.files,
            format_size(after.bytes),
            format_size(cfg.max_size.value)
        );
    }
    if cli.zero_stats {
        stats::zero(&cfg.dir.value)
            .map_err(|e| format!("cannot reset statistics in {}: {e}", cfg.dir.value.display()))?;
        let fallback = crate::bad_setting::fallback_stats_root(&|n| std::env::var_os(n));
        if fallback.is_dir() {
            let _ = stats::zero(&fallback);
        }
        println!("statistics zeroed");
    }
    if cli.show_config {
        print!("{}", if cli.json { config_json(&cfg) } else { config_text(&cfg) });
    }
    if cli.show_stats {
        let mut counters = stats::read_all(&cfg.dir.value);
        // Compiles that met a bad setting where no cache dir could take the count.
        let fallback = crate::bad_setting::fallback_stats_root(&|n| std::env::var_os(n));
        if fallback != cfg.dir.value
            && let Some(n) = stats::read_all(&fallback).get(crate::bad_setting::COUNTER)
        {
            *counters.entry(crate::bad_setting::COUNTER.to_string()).or_default() += n;
        }
        let summary = Summary::from_counters(&counters);
        let usage = store.usage();
        let coordinator = crate::coordinator::status(&cfg);
        let problem = cache_dir_problem(&cfg.dir.value);
        if cli.json {
            let mut v = stats_json(&cfg, &summary, usage.files, usage.bytes);
            v["cache_dir_problem"] = match &problem {
                None => Value::Null,
                Some(p) => json!({"reason": p.reason, "since": p.since.map(unix_secs)}),
            };
            v["coordinator"] = coordinator_json(&coordinator);
            println!("{v}");
        } else {
            print!(
                "{}{}",
                stats_text(&cfg, &summary, usage.files, usage.bytes, problem.as_ref()),
                coordinator_text(&coordinator)
            );
        }
    }
    Ok(())
}

fn install_shims(cli: &Cli, dir: &Path) -> Result<(), String> {
    let target = match &cli.shim_target {
        Some(t) => t.clone(),
        None => crate::shims::default_target().map_err(|e| format!("cannot find this executable: {e}"))?,
    };
    let path = std::env::var_os("CACHEPOT_PATH")
        .filter(|p| !p.is_empty())
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_default();
    let only = match &cli.only {
        Some(o) => crate::shims::Only::parse(o)?,
        None => crate::shims::Only::All,
    };
    let r = crate::shims::install(dir, &target, &path, only).map_err(|e| e.to_string())?;
    let linked: Vec<String> = r.created.iter().chain(&r.kept).cloned().collect();
    println!(
        "{}: {} linked to {}",
        dir.display(),
        join_or_none(&linked),
        r.link.display()
    );
    let rust: Vec<&str> = linked
        .iter()
        .map(String::as_str)
        .filter(|n| crate::shims::is_compiler_name(n, crate::shims::RUST_NAMES))
        .collect();
    if !rust.is_empty() {
        println!(
            "note: {} linked too: with {} first on PATH, cargo builds go through cachepot as well; `--only c` links the C and C++ compilers only",
            rust.join(" "),
            dir.display()
        );
    }
    if !r.removed.is_empty() {
        println!("removed links for compilers no longer on PATH: {}", r.removed.join(" "));
    }
    if !r.skipped.is_empty() {
        println!("left alone (not cachepot's links): {}", r.skipped.join(" "));
    }
    Ok(())
}

fn join_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "no compilers found on PATH".into()
    } else {
        v.join(" ")
    }
}

/// Why the cache directory cannot hold entries: every compile then runs the compiler and counts
/// nothing, so `--show-stats` would otherwise show a quiet "0 requests".
struct DirProblem {
    reason: String,
    /// When the path in the way last changed (its ctime): the problem is at least that old.
    since: Option<SystemTime>,
}

fn cache_dir_problem(dir: &Path) -> Option<DirProblem> {
    use std::os::unix::fs::MetadataExt;
    let ctime = |m: &std::fs::Metadata| {
        u64::try_from(m.ctime())
            .ok()
            .map(|s| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(s))
    };
    // The directory itself, or the nearest existing directory it would be created in.
    let mut p = dir;
    let meta = loop {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => break m,
            Ok(m) => {
                return Some(DirProblem {
                    reason: format!("{} is not a directory", p.display()),
                    since: ctime(&m),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) => {
                p = p.parent()?
            }
            Err(e) => {
                return Some(DirProblem {
                    reason: format!("{}: {e}", p.display()),
                    since: None,
                });
            }
        }
    };
    let probe = p.join(format!(".cachepot-probe.{}", std::process::id()));
    match std::fs::OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            None
        }
        Err(e) => Some(DirProblem {
            reason: format!("cannot write in {}: {e}", p.display()),
            since: ctime(&meta),
        }),
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One `--show-config` row: a typed value (JSON numbers, booleans, null) and where it came from.
struct Row {
    name: &'static str,
    value: Value,
    source: String,
}

/// A remote backend's row value, typed: those modules show strings.
fn typed(s: &str) -> Value {
    match s {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        "(unset)" | "(none)" => Value::Null,
        _ if s.starts_with('"') => serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.into())),
        _ => s
            .parse::<u64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::String(s.into())),
    }
}

fn settings(cfg: &Config) -> Vec<Row> {
    let row = |name, value: Value, source: &crate::config::Source| Row {
        name,
        value,
        source: source.to_string(),
    };
    let size = if cfg.max_size.value == UNLIMITED {
        0
    } else {
        cfg.max_size.value
    };
    let mut rows = vec![
        row("dir", json!(cfg.dir.value), &cfg.dir.source),
        row("cache_size", json!(size), &cfg.max_size.source),
        row("recache", json!(cfg.recache.value), &cfg.recache.source),
        row("disable", json!(cfg.disable.value), &cfg.disable.source),
        row("direct", json!(cfg.direct.value), &cfg.direct.source),
        row("debug", json!(cfg.debug.value), &cfg.debug.source),
        row("log", json!(cfg.log.value), &cfg.log.source),
        row("error_log", json!(cfg.error_log.value), &cfg.error_log.source),
        row("basedirs", json!(cfg.basedirs.value), &cfg.basedirs.source),
        row(
            "rust_implicit_basedirs",
            json!(cfg.rust_implicit_basedirs.value),
            &cfg.rust_implicit_basedirs.source,
        ),
        row(
            "background_store",
            json!(cfg.background_store.value),
            &cfg.background_store.source,
        ),
        row(
            "compiler_check",
            json!(cfg.compiler_check.value.to_string()),
            &cfg.compiler_check.source,
        ),
        row(
            "coordinator",
            json!(cfg.coordinator.mode.value.to_string()),
            &cfg.coordinator.mode.source,
        ),
        row("jobs", json!(cfg.coordinator.jobs()), &cfg.coordinator.jobs.source),
        row(
            "idle_timeout",
            json!(cfg.coordinator.idle_timeout.value),
            &cfg.coordinator.idle_timeout.source,
        ),
        row(
            "max_wait",
            json!(cfg.coordinator.max_wait.value),
            &cfg.coordinator.max_wait.source,
        ),
    ];
    match &cfg.remote {
        Some(r) => rows.extend(r.show().into_iter().map(|(name, value, source)| Row {
            name,
            value: typed(&value),
            source,
        })),
        None => rows.push(Row {
            name: "remote",
            value: Value::Null,
            source: "default".into(),
        }),
    }
    let t = &cfg.trust;
    rows.push(row("signing_key", json!(t.signing_key.value), &t.signing_key.source));
    let ids: Vec<String> = t.trusted_keys.value.iter().map(|k| k.to_string()).collect();
    rows.push(row("trusted_keys", json!(ids), &t.trusted_keys.source));
    rows
}

fn config_file_line(cfg: &Config) -> String {
    match (&cfg.file, &cfg.searched) {
        (Some(f), _) => f.display().to_string(),
        (None, Some(s)) => format!("(none; looked for {})", s.display()),
        (None, None) => "(none; neither XDG_CONFIG_HOME nor HOME is set)".into(),
    }
}

fn config_text(cfg: &Config) -> String {
    let mut s = format!("config file: {}\n", config_file_line(cfg));
    for r in settings(cfg) {
        let value = match (&r.value, r.name) {
            (Value::Number(n), "cache_size") if n.as_u64() == Some(0) => "0 (unlimited)".to_string(),
            (Value::Number(n), "cache_size") => format!("{n} ({})", format_size(n.as_u64().unwrap_or(0))),
            (Value::String(v), _) => v.clone(),
            (Value::Null, _) => "(unset)".into(),
            (Value::Array(items), _) if items.is_empty() => "(none)".into(),
            (Value::Array(items), _) => items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(" "),
            (v, _) => v.to_string(),
        };
        s.push_str(&format!("{:<22} = {value:<40} ({})\n", r.name, r.source));
    }
    s
}

fn config_json(cfg: &Config) -> String {
    let mut settings_map = serde_json::Map::new();
    for r in settings(cfg) {
        settings_map.insert(r.name.to_string(), json!({"value": r.value, "source": r.source}));
    }
    let v = json!({
        "config_file": cfg.file,
        "config_file_searched": cfg.searched,
        "settings": settings_map,
    });
    format!("{v}\n")
}

/// At most this many not-cacheable reasons are listed one by one in the text; the rest are summed
/// (`--json` has them all). The reasons are a fixed set (the flag table's), so JSON stays bounded.
const REASON_ROWS: usize = 10;

fn stats_text(cfg: &Config, s: &Summary, files: u64, bytes: u64, problem: Option<&DirProblem>) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<34} {v}\n"));
    if s.config_errors > 0 {
        // First: every such compile ran without the cache, and said so nowhere a build reads.
        line(
            "COMPILES WITH A BAD SETTING",
            format!(
                "{} (config_error): ran without the cache; `cachepot --show-config` in their environment names the setting",
                s.config_errors
            ),
        );
    }
    line("cache location", cfg.dir.value.display().to_string());
    if let Some(p) = problem {
        let since = p
            .since
            .and_then(|t| jiff::Timestamp::try_from(t).ok())
            .map(|t| format!(", since {}", t.strftime("%Y-%m-%d %H:%M:%S UTC")))
            .unwrap_or_default();
        line(
            "CACHE DIRECTORY NOT USABLE",
            format!("{}{since}: compiles run uncached and are not counted", p.reason),
        );
    }
    line("compile requests", s.requests().to_string());
    line(
        "  cache hits",
        format!(
            "{} (direct {}, preprocessed {})",
            s.hits(),
            s.hits_direct,
            s.hits_preprocessed
        ),
    );
    line("  cache misses", s.misses.to_string());
    line("  not cacheable", s.not_cacheable_total().to_string());
    line("hit rate (of cacheable calls)", format!("{:.1} %", s.hit_rate()));
    let mut reasons: Vec<(&String, &u64)> = s.not_cacheable.iter().collect();
    reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    if !reasons.is_empty() {
        line("why not cacheable (calls)", String::new());
    }
    for (reason, n) in reasons.iter().take(REASON_ROWS) {
        line(&format!("  not cacheable: {}", describe_reason(reason)), n.to_string());
    }
    let mut details: Vec<(&String, &u64)> = s.not_cacheable_details.iter().collect();
    details.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (detail, n) in details.iter().take(REASON_ROWS) {
        line(&format!("    of which {detail}"), n.to_string());
    }
    if reasons.len() > REASON_ROWS {
        let rest: u64 = reasons[REASON_ROWS..].iter().map(|r| *r.1).sum();
        line(
            &format!("  {} more reasons", reasons.len() - REASON_ROWS),
            format!("{rest} (--json lists them)"),
        );
    }
    line("cache errors", s.errors.values().sum::<u64>().to_string());
    for (kind, n) in &s.errors {
        line(&format!("  {}", describe_fault(kind)), n.to_string());
    }
    for (k, n) in &s.other {
        line(k, n.to_string());
    }
    line("entries", files.to_string());
    let size = if cfg.max_size.value == UNLIMITED {
        format!("{} (no limit)", format_size(bytes))
    } else {
        let pct = 100.0 * bytes as f64 / cfg.max_size.value.max(1) as f64;
        format!(
            "{} of {} ({pct:.1} %)",
            format_size(bytes),
            format_size(cfg.max_size.value)
        )
    };
    line("cache size", size);
    out
}

/// The human text of a not-cacheable id (the id itself when this version does not know it).
fn describe_reason(id: &str) -> String {
    crate::compiler::NotCacheable::ALL
        .iter()
        .find(|r| r.id() == id)
        .map(|r| match r.detail() {
            Some(_) => r.describe().split(':').next().unwrap_or(id).to_string(),
            None => r.describe(),
        })
        .unwrap_or_else(|| id.to_string())
}

/// The human text of a fault id.
fn describe_fault(id: &str) -> String {
    crate::stats::Fault::ALL
        .iter()
        .find(|f| f.id() == id)
        .map(|f| f.describe().to_string())
        .unwrap_or_else(|| id.to_string())
}

fn stats_json(cfg: &Config, s: &Summary, files: u64, bytes: u64) -> Value {
    json!({
        "config_error": s.config_errors,
        "cache_location": cfg.dir.value,
        "requests": s.requests(),
        "hits": s.hits(),
        "hits_direct": s.hits_direct,
        "hits_preprocessed": s.hits_preprocessed,
        "misses": s.misses,
        "not_cacheable": s.not_cacheable_total(),
        "not_cacheable_reasons": s.not_cacheable,
        "not_cacheable_details": s.not_cacheable_details,
        "hit_rate": (s.hit_rate() * 100.0).round() / 100.0,
        "errors": s.errors.values().sum::<u64>(),
        "error_kinds": s.errors,
        "other": s.other,
        "entries": files,
        "bytes": bytes,
        "max_bytes": if cfg.max_size.value == UNLIMITED { Value::Null } else { json!(cfg.max_size.value) },
    })
}

// ---- Coordinator commands and figures (src/coordinator/) ----

/// `--start-coordinator [--foreground]`, `--stop-coordinator`, and the seed's spelling
/// `CACHEPOT_START_SERVER=1 [CACHEPOT_NO_DAEMON=1] cachepot`. `None`: not a coordinator command.
fn coordinator_command(cli: &Cli) -> Option<Result<(), String>> {
    let asked = cli.start_coordinator || cli.stop_coordinator || cli.foreground;
    let other = cli.show_stats
        || cli.zero_stats
        || cli.clear_cache
        || cli.show_config
        || cli.cleanup
        || cli.evict_older_than.is_some()
        || cli.max_size.is_some()
        || cli.install_shims.is_some();
    if !asked && other {
        return None;
    }
    let cfg = match Config::load() {
        Ok(c) => c,
        Err(e) => return asked.then(|| Err(e.to_string())),
    };
    let (start, foreground) = if asked {
        (cli.start_coordinator, cli.foreground)
    } else if cfg.coordinator.start_server {
        (true, cfg.coordinator.no_daemon)
    } else {
        return None;
    };
    if cli.stop_coordinator && start {
        return Some(Err(
            "--start-coordinator and --stop-coordinator exclude each other".into()
        ));
    }
    if foreground && !start {
        return Some(Err("--foreground goes with --start-coordinator".into()));
    }
    Some(if cli.stop_coordinator {
        crate::coordinator::stop(&cfg).map(|msg| println!("{msg}"))
    } else if foreground {
        crate::coordinator::run_foreground(&cfg)
    } else {
        crate::coordinator::start(&cfg).map(|msg| println!("{msg}"))
    })
}

type CoordinatorFigures = Option<std::collections::BTreeMap<String, u64>>;

fn coordinator_text(figures: &CoordinatorFigures) -> String {
    let Some(f) = figures else {
        return format!("{:<34} not running\n", "coordinator");
    };
    let get = |k: &str| f.get(k).copied().unwrap_or(0);
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<34} {v}\n"));
    line("coordinator", format!("running (pid {})", get("pid")));
    line(
        "  compile slots in use",
        format!(
            "{} of {} (peak {})",
            get("slots_in_use"),
            get("slots"),
            get("slots_peak")
        ),
    );
    line("  compiles waiting for a slot", get("slots_waiting").to_string());
    line("  slots granted since start", get("slots_granted").to_string());
    line("  slot waits since start", get("slot_waits").to_string());
    out
}

fn coordinator_json(figures: &CoordinatorFigures) -> Value {
    match figures {
        None => json!({"running": false}),
        Some(f) => {
            let mut m = serde_json::Map::new();
            m.insert("running".into(), Value::Bool(true));
            for (k, v) in f {
                m.insert(k.clone(), json!(v));
            }
            Value::Object(m)
        }
    }
}

// ---- end of coordinator commands ----
