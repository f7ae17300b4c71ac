//! A compile call that meets a bad setting (`CACHEPOT_DIRECT=maybe`, a broken config file): it
//! runs the compiler exactly as without cachepot, and the problem is logged and counted as
//! `config_error`, never written over the compiler's stderr, which a build may read: autoconf's
//! `AC_LANG_WERROR` takes any text there for a failed check. Only when stderr is a terminal (a
//! person is watching) does one line say it, at most once per setting and day. The commands
//! (`--show-config`, `--show-stats`, …) still fail on the bad setting (cli.rs).

use crate::config::{self, Config, ConfigError};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// The counter of compile calls that met a bad setting (shown first by `--show-stats`).
pub const COUNTER: &str = "config_error";

/// Where the count goes when the cache dir cannot take it: under the private state dir.
pub fn fallback_stats_root(env: config::EnvReader) -> PathBuf {
    config::private_state_dir(env).join("config-errors")
}

/// Run the compile call without the cache after `Config::load` failed. Returns only when the
/// compiler could not be started.
pub fn compile_anyway(real: &Path, args: &[std::ffi::OsString]) -> i32 {
    let env = |name: &str| std::env::var_os(name);
    let (usable, errors) = Config::load_lenient(&env);
    if let Some(cfg) = &usable {
        crate::logging::init(cfg);
    }
    for e in &errors {
        log::warn!(target: "config", "{e}; this compile ran without the cache");
    }
    count(usable.as_ref(), &env);
    if std::io::stderr().is_terminal() {
        for e in errors.iter().filter(|e| first_today(e, &env)) {
            eprintln!(
                "cachepot: warning: {e}; compiling without the cache (said once a day; `cachepot --show-config` checks the settings)"
            );
        }
    }
    crate::call::exec_passthrough(real, args)
}

/// Count the call in the cache dir the other settings name, else in the private state dir.
fn count(usable: Option<&Config>, env: config::EnvReader) {
    let mut add = crate::stats::Counters::new();
    add.insert(COUNTER.to_string(), 1);
    if let Some(cfg) = usable
        && crate::stats::add_counters(&cfg.dir.value, &add).is_ok()
    {
        return;
    }
    let state = config::private_state_dir(env);
    let counted = crate::coordinator::ensure_private_dir(&state)
        .and_then(|()| crate::stats::add_counters(&fallback_stats_root(env), &add));
    if let Err(e) = counted {
        log::warn!(target: "config", "could not count the bad setting in {}: {e}", state.display());
    }
}

/// Whether this error was not yet shown today: true for the one call that creates today's marker
/// (named by the error's text and the day) in the private state dir. Without a usable marker
/// nothing is shown: a line on every compile is what this module exists to prevent.
fn first_today(e: &ConfigError, env: config::EnvReader) -> bool {
    let state = config::private_state_dir(env);
    let dir = state.join("warned");
    if crate::coordinator::ensure_private_dir(&state).is_err() || std::fs::create_dir_all(&dir).is_err() {
        return false;
    }
    let day = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0);
    let name = format!("{:016x}.{day}", xxhash_rust::xxh3::xxh3_64(e.0.as_bytes()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dir.join(name))
        .is_ok()
}
