//! The `cachepot` command line: statistics, configuration, cache maintenance and the shim
//! directory. Compile calls never come here (see main.rs). Bad settings are hard errors here.

use crate::config::{Config, format_size};
use crate::stats::{self, Summary};
use crate::store::disk::DiskStore;
use argh::FromArgs;
use std::path::PathBuf;

/// cachepot: a compiler cache. Compile with `cachepot gcc -c a.c -o a.o`, or put a shim directory
/// (see --install-shims) first on PATH.
#[derive(FromArgs)]
pub struct Cli {
    /// print statistics
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
    /// print the version
    #[argh(switch, short = 'V')]
    pub version: bool,
    /// start the coordinator (machine-wide compile slots) in the background
    #[argh(switch)]
    pub start_coordinator: bool,
    /// stop the running coordinator
    #[argh(switch)]
    pub stop_coordinator: bool,
    /// with --start-coordinator: run it in the foreground, logging to stderr
    #[argh(switch)]
    pub foreground: bool,
}

/// Run a CLI command; returns the exit status.
pub fn run(cli: Cli) -> i32 {
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
        let target = match &cli.shim_target {
            Some(t) => t.clone(),
            None => crate::shims::default_target().map_err(|e| format!("cannot find this executable: {e}"))?,
        };
        let path = std::env::var_os("CACHEPOT_PATH")
            .filter(|p| !p.is_empty())
            .or_else(|| std::env::var_os("PATH"))
            .unwrap_or_default();
        let r = crate::shims::install(dir, &target, &path).map_err(|e| e.to_string())?;
        println!(
            "{}: {} linked to {}",
            dir.display(),
            join_or_none(&r.created.iter().chain(&r.kept).cloned().collect::<Vec<_>>()),
            target.display()
        );
        if !r.removed.is_empty() {
            println!("removed links for compilers no longer on PATH: {}", r.removed.join(" "));
        }
        if !r.skipped.is_empty() {
            println!("left alone (not cachepot's links): {}", r.skipped.join(" "));
        }
        return Ok(());
    }
    let any = cli.show_stats || cli.zero_stats || cli.clear_cache || cli.show_config;
    if !any {
        return Err("nothing to do; see `cachepot --help`, or compile with `cachepot gcc -c a.c`".into());
    }
    let cfg = Config::load().map_err(|e| e.to_string())?;
    let store = DiskStore::new(&cfg.dir.value, cfg.max_size.value);
    if cli.clear_cache {
        store
            .clear()
            .map_err(|e| format!("cannot clear {}: {e}", cfg.dir.value.display()))?;
        println!("cleared the cache in {}", cfg.dir.value.display());
    }
    if cli.zero_stats {
        stats::zero(&cfg.dir.value)
            .map_err(|e| format!("cannot reset statistics in {}: {e}", cfg.dir.value.display()))?;
        println!("statistics zeroed");
    }
    if cli.show_config {
        print!("{}", if cli.json { config_json(&cfg) } else { config_text(&cfg) });
    }
    if cli.show_stats {
        let summary = Summary::from_counters(&stats::read_all(&cfg.dir.value));
        let usage = store.usage();
        let coordinator = crate::coordinator::status(&cfg);
        print!(
            "{}",
            if cli.json {
                with_coordinator_json(stats_json(&cfg, &summary, usage.files, usage.bytes), &coordinator)
            } else {
                stats_text(&cfg, &summary, usage.files, usage.bytes) + &coordinator_text(&coordinator)
            }
        );
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

fn settings(cfg: &Config) -> Vec<(&'static str, String, String)> {
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "(unset)".into());
    let mut rows = vec![
        ("dir", cfg.dir.value.display().to_string(), cfg.dir.source.to_string()),
        (
            "cache_size",
            cfg.max_size.value.to_string(),
            cfg.max_size.source.to_string(),
        ),
        ("recache", cfg.recache.value.to_string(), cfg.recache.source.to_string()),
        ("disable", cfg.disable.value.to_string(), cfg.disable.source.to_string()),
        ("direct", cfg.direct.value.to_string(), cfg.direct.source.to_string()),
        ("debug", cfg.debug.value.to_string(), cfg.debug.source.to_string()),
        ("log", opt(&cfg.log.value), cfg.log.source.to_string()),
        (
            "error_log",
            opt(&cfg.error_log.value.as_ref().map(|p| p.display().to_string())),
            cfg.error_log.source.to_string(),
        ),
        (
            "basedirs",
            cfg.basedirs
                .value
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(":"),
            cfg.basedirs.source.to_string(),
        ),
        (
            "compiler_check",
            cfg.compiler_check.value.to_string(),
            cfg.compiler_check.source.to_string(),
        ),
        (
            "coordinator",
            cfg.coordinator.mode.value.to_string(),
            cfg.coordinator.mode.source.to_string(),
        ),
        (
            "jobs",
            cfg.coordinator.jobs.value.to_string(),
            cfg.coordinator.jobs.source.to_string(),
        ),
        (
            "idle_timeout",
            cfg.coordinator.idle_timeout.value.to_string(),
            cfg.coordinator.idle_timeout.source.to_string(),
        ),
        (
            "max_wait",
            cfg.coordinator.max_wait.value.to_string(),
            cfg.coordinator.max_wait.source.to_string(),
        ),
    ];
    match &cfg.remote {
        Some(r) => rows.extend(r.show()),
        None => rows.push(("remote", "(none)".into(), "default".into())),
    }
    let t = &cfg.trust;
    rows.push((
        "signing_key",
        opt(&t.signing_key.value.as_ref().map(|p| p.display().to_string())),
        t.signing_key.source.to_string(),
    ));
    let ids: Vec<String> = t.trusted_keys.value.iter().map(|k| k.to_string()).collect();
    rows.push(("trusted_keys", ids.join(" "), t.trusted_keys.source.to_string()));
    rows
}

fn config_text(cfg: &Config) -> String {
    let mut s = format!(
        "config file: {}\n",
        cfg.file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(none)".into())
    );
    for (name, value, source) in settings(cfg) {
        s.push_str(&format!("{name:<22} = {value:<40} ({source})\n"));
    }
    s
}

fn config_json(cfg: &Config) -> String {
    let items: Vec<String> = settings(cfg)
        .into_iter()
        .map(|(name, value, source)| {
            format!(
                "{}:{{\"value\":{},\"source\":{}}}",
                json_str(name),
                json_str(&value),
                json_str(&source)
            )
        })
        .collect();
    let file = cfg
        .file
        .as_ref()
        .map(|p| json_str(&p.display().to_string()))
        .unwrap_or_else(|| "null".into());
    format!("{{\"config_file\":{file},\"settings\":{{{}}}}}\n", items.join(","))
}

fn stats_text(cfg: &Config, s: &Summary, files: u64, bytes: u64) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<34} {v}\n"));
    line("cache location", cfg.dir.value.display().to_string());
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
    for (reason, n) in &s.not_cacheable {
        line(&format!("  not cacheable: {}", describe_reason(reason)), n.to_string());
    }
    for (detail, n) in &s.not_cacheable_details {
        line(&format!("    of which {detail}"), n.to_string());
    }
    line("cache errors", s.errors.values().sum::<u64>().to_string());
    for (kind, n) in &s.errors {
        line(&format!("  {}", describe_fault(kind)), n.to_string());
    }
    for (k, n) in &s.other {
        line(k, n.to_string());
    }
    line("entries", files.to_string());
    let pct = if cfg.max_size.value == 0 {
        0.0
    } else {
        100.0 * bytes as f64 / cfg.max_size.value as f64
    };
    line(
        "cache size",
        format!(
            "{} of {} ({pct:.1} %)",
            format_size(bytes),
            format_size(cfg.max_size.value)
        ),
    );
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

fn stats_json(cfg: &Config, s: &Summary, files: u64, bytes: u64) -> String {
    let map = |m: &std::collections::BTreeMap<String, u64>| {
        let items: Vec<String> = m.iter().map(|(k, v)| format!("{}:{v}", json_str(k))).collect();
        format!("{{{}}}", items.join(","))
    };
    format!(
        "{{\"cache_location\":{},\"requests\":{},\"hits\":{},\"hits_direct\":{},\"hits_preprocessed\":{},\"misses\":{},\"not_cacheable\":{},\"not_cacheable_reasons\":{},\"not_cacheable_details\":{},\"hit_rate\":{:.2},\"errors\":{},\"error_kinds\":{},\"other\":{},\"entries\":{files},\"bytes\":{bytes},\"max_bytes\":{}}}\n",
        json_str(&cfg.dir.value.display().to_string()),
        s.requests(),
        s.hits(),
        s.hits_direct,
        s.hits_preprocessed,
        s.misses,
        s.not_cacheable_total(),
        map(&s.not_cacheable),
        map(&s.not_cacheable_details),
        s.hit_rate(),
        s.errors.values().sum::<u64>(),
        map(&s.errors),
        map(&s.other),
        cfg.max_size.value,
    )
}

// ---- Coordinator commands and figures (src/coordinator/) ----

/// `--start-coordinator [--foreground]`, `--stop-coordinator`, and the seed's spelling
/// `CACHEPOT_START_SERVER=1 [CACHEPOT_NO_DAEMON=1] cachepot`. `None`: not a coordinator command.
fn coordinator_command(cli: &Cli) -> Option<Result<(), String>> {
    let asked = cli.start_coordinator || cli.stop_coordinator || cli.foreground;
    let other = cli.show_stats || cli.zero_stats || cli.clear_cache || cli.show_config || cli.install_shims.is_some();
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

fn with_coordinator_json(stats: String, figures: &CoordinatorFigures) -> String {
    let inner = match figures {
        None => "\"running\":false".to_string(),
        Some(f) => {
            let items: Vec<String> = f.iter().map(|(k, v)| format!("{}:{v}", json_str(k))).collect();
            format!("\"running\":true,{}", items.join(","))
        }
    };
    let body = stats.trim_end().strip_suffix('}').unwrap_or(&stats);
    format!("{body},\"coordinator\":{{{inner}}}}}\n")
}

// ---- end of coordinator commands ----

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
