//! Configuration: defaults, then the TOML file, then `CACHEPOT_*` environment variables (env wins).
//! Read once per process; nothing here touches the cache or the network. Every value remembers where
//! it came from, for `--show-config`.
//!
//! TOML schema (every key optional):
//! ```toml
//! recache = false            # CACHEPOT_RECACHE
//! disable = false            # CACHEPOT_DISABLE
//! direct = true              # CACHEPOT_DIRECT
//! debug = false              # CACHEPOT_DEBUG
//! log = "warn"               # CACHEPOT_LOG (env_logger filter)
//! error_log = "/tmp/cp.log"  # CACHEPOT_ERROR_LOG
//! compiler_check = "content" # CACHEPOT_COMPILER_CHECK: content | mtime | string:<text>
//! basedirs = ["/home/me/src"] # CACHEPOT_BASEDIRS (':'-separated)
//! rust_implicit_basedirs = true # CACHEPOT_RUST_IMPLICIT_BASEDIRS: $CARGO_HOME, target dir
//! background_store = true   # CACHEPOT_BACKGROUND_STORE: large stores finish after the call exits
//! [cache.disk]
//! dir = "~/.cache/cachepot"  # CACHEPOT_DIR
//! size = "10G"               # CACHEPOT_CACHE_SIZE
//! [coordinator]
//! mode = "off"               # CACHEPOT_COORDINATOR: off | auto
//! jobs = 8                   # CACHEPOT_JOBS (default: the number of CPUs)
//! idle_timeout = 600         # CACHEPOT_IDLE_TIMEOUT (seconds, 0 = never)
//! max_wait = 300             # CACHEPOT_COORDINATOR_MAX_WAIT (seconds a compile waits for a slot)
//! [cache.remote]             # and one of [cache.redis], [cache.memcached], …: see store/remote.rs
//! [trust]                    # signed entries: see trust.rs
//! signing_key = "ci.key"     # CACHEPOT_SIGNING_KEY (a file from `cachepot --new-signing-key`)
//! trusted_keys = ["cachepot-ed25519:…"]  # CACHEPOT_TRUSTED_KEYS (separated by spaces or commas)
//! ```

pub use crate::setting::{ConfigError, EnvReader, Setting, Source, env_bool, parse_bool, parse_size};
use crate::setting::{absolute, expand_tilde};
use crate::store::remote::{self, RemoteConfig};
pub use crate::trust::{TRUST_KEYS, TrustConfig};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Config {
    /// The config file that was read, if any.
    pub file: Option<PathBuf>,
    /// Where the config file was looked for (`CACHEPOT_CONF`, else the XDG path), for
    /// `--show-config` and `--max-size`; `None` when neither XDG_CONFIG_HOME nor HOME is set.
    pub searched: Option<PathBuf>,
    pub dir: Setting<PathBuf>,
    pub max_size: Setting<u64>,
    pub recache: Setting<bool>,
    pub disable: Setting<bool>,
    pub direct: Setting<bool>,
    pub debug: Setting<bool>,
    pub log: Setting<Option<String>>,
    pub error_log: Setting<Option<PathBuf>>,
    /// How compilers are identified in keys (identity.rs).
    pub compiler_check: Setting<crate::identity::CompilerCheck>,
    /// Base directories (paths.rs): absolute paths under them are keyed relative to the working
    /// directory, so checkouts and build dirs at other places share entries.
    pub basedirs: Setting<Vec<PathBuf>>,
    /// Rust: `$CARGO_HOME` and the build's target (profile) dir count as base directories without
    /// being configured (rust/bases.rs); off keeps their absolute paths in keys and outputs.
    pub rust_implicit_basedirs: Setting<bool>,
    /// A miss with a large store ahead exits as soon as its outputs are in place and stores in the
    /// background (background.rs); off stores before exiting.
    pub background_store: Setting<bool>,
    /// The remote store behind the local disk, if one is configured (store/remote.rs parses it).
    pub remote: Option<RemoteConfig>,
    /// The config file's remote `[cache.*]` tables, as read, for store/remote.rs.
    remote_tables: BTreeMap<String, toml::Table>,
    pub coordinator: CoordinatorConfig,
    pub trust: TrustConfig,
}

pub const DEFAULT_MAX_SIZE: u64 = 10 << 30;

/// The config file's top-level keys, and those of `[cache.disk]` and `[coordinator]`. A key is
/// accepted only when listed here, so these lists are what the file can say (tests/docs.rs holds
/// the man page and the README to them).
pub const TOP_KEYS: &[&str] = &[
    "recache",
    "disable",
    "direct",
    "debug",
    "log",
    "error_log",
    "compiler_check",
    "basedirs",
    "rust_implicit_basedirs",
    "background_store",
];
pub const DISK_KEYS: &[&str] = &["dir", "size"];
pub const COORDINATOR_KEYS: &[&str] = &["mode", "jobs", "idle_timeout", "max_wait"];

/// Every key the config file accepts, dotted: `direct`, `cache.disk.size`, `cache.redis.url`, …
pub fn file_keys() -> Vec<String> {
    let mut keys: Vec<String> = TOP_KEYS.iter().map(|k| k.to_string()).collect();
    keys.extend(DISK_KEYS.iter().map(|k| format!("cache.disk.{k}")));
    keys.extend(COORDINATOR_KEYS.iter().map(|k| format!("coordinator.{k}")));
    keys.extend(TRUST_KEYS.iter().map(|k| format!("trust.{k}")));
    keys.extend(remote::file_keys());
    keys
}

impl Config {
    /// Load from the process environment.
    pub fn load() -> Result<Config, ConfigError> {
        Config::load_with(&|name| std::env::var_os(name))
    }

    pub fn load_with(env: EnvReader) -> Result<Config, ConfigError> {
        Config::load_from(env, true)
    }

    /// The settings a compile call can still use when some are bad: each bad `CACHEPOT_*` variable
    /// is left out (its setting keeps the file's value or the default), and a bad config file is
    /// left out whole. Returns what could be loaded (`None` when not even that: no cache dir) and
    /// every error met. Only for counting and logging a call that then runs without the cache; the
    /// commands (`--show-config`, …) use `load` and fail on the first error.
    pub fn load_lenient(env: EnvReader) -> (Option<Config>, Vec<ConfigError>) {
        let mut left_out: Vec<&'static str> = Vec::new();
        let mut read_file = true;
        let mut errors = Vec::new();
        // Each round leaves out one more setting, so this ends.
        for _ in 0..=ENV_VARS.len() + 1 {
            let without = |name: &str| {
                if left_out.contains(&name) { None } else { env(name) }
            };
            let e = match Config::load_from(&without, read_file) {
                Ok(cfg) => return (Some(cfg), errors),
                Err(e) => e,
            };
            match env_var_named(&e.0) {
                Some(var) if !left_out.contains(&var) => {
                    left_out.push(var);
                    read_file &= var != "CACHEPOT_CONF";
                }
                _ if read_file => read_file = false,
                _ => {
                    if !errors.contains(&e) {
                        errors.push(e);
                    }
                    return (None, errors);
                }
            }
            if !errors.contains(&e) {
                errors.push(e);
            }
        }
        (None, errors)
    }

    fn load_from(env: EnvReader, read_file: bool) -> Result<Config, ConfigError> {
        let (found, searched) = if read_file {
            config_file_path(env)?
        } else {
            (None, None)
        };
        let mut cfg = Config {
            file: None,
            searched,
            dir: Setting::default(PathBuf::new()),
            max_size: Setting::default(DEFAULT_MAX_SIZE),
            recache: Setting::default(false),
            disable: Setting::default(false),
            direct: Setting::default(true),
            debug: Setting::default(false),
            log: Setting::default(None),
            error_log: Setting::default(None),
            compiler_check: Setting::default(crate::identity::CompilerCheck::Content),
            basedirs: Setting::default(Vec::new()),
            rust_implicit_basedirs: Setting::default(true),
            background_store: Setting::default(true),
            remote: None,
            remote_tables: BTreeMap::new(),
            coordinator: CoordinatorConfig::default(),
            trust: TrustConfig::default(),
        };
        if let Some(path) = found {
            cfg.apply_file(&path)?;
        }
        cfg.apply_env(env)?;
        if cfg.dir.source == Source::Default {
            // Only now: CACHEPOT_DIR or the file may name the cache dir where HOME is unset.
            cfg.dir.value = default_cache_dir(env)?;
        }
        cfg.remote = RemoteConfig::load(&cfg.remote_tables, cfg.file.as_deref(), env)?;
        Ok(cfg)
    }

    fn apply_file(&mut self, path: &Path) -> Result<(), ConfigError> {
        let bytes = crate::limits::read_regular(path, crate::limits::CONFIG_FILE)
            .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| ConfigError(format!("config file {} is not UTF-8 text", path.display())))?;
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            ConfigError(format!(
                "config file {} is not valid TOML: {}",
                path.display(),
                e.message()
            ))
        })?;
        let src = || Source::File(path.to_path_buf());
        let bad = |key: &str, what: &str| ConfigError(format!("config file {}: `{key}` {what}", path.display()));
        for (key, value) in &table {
            if !TOP_KEYS.contains(&key.as_str()) && key != "coordinator" && key != "cache" && key != "trust" {
                return Err(bad(
                    key,
                    &format!(
                        "is not a known setting; accepted: {}, [cache.disk], [coordinator], [trust], [cache.remote] and one remote table",
                        TOP_KEYS.join(", ")
                    ),
                ));
            }
            match key.as_str() {
                "recache" | "disable" | "direct" | "debug" | "rust_implicit_basedirs" | "background_store" => {
                    let b = value.as_bool().ok_or_else(|| bad(key, "must be true or false"))?;
                    let slot = match key.as_str() {
                        "recache" => &mut self.recache,
                        "disable" => &mut self.disable,
                        "direct" => &mut self.direct,
                        "rust_implicit_basedirs" => &mut self.rust_implicit_basedirs,
                        "background_store" => &mut self.background_store,
                        _ => &mut self.debug,
                    };
                    *slot = Setting {
                        value: b,
                        source: src(),
                    };
                }
                "log" => {
                    let s = value
                        .as_str()
                        .ok_or_else(|| bad(key, "must be a string such as \"debug\""))?;
                    self.log = Setting {
                        value: Some(s.to_string()),
                        source: src(),
                    };
                }
                "error_log" => {
                    let s = value.as_str().ok_or_else(|| bad(key, "must be a file path string"))?;
                    self.error_log = Setting {
                        value: Some(expand_tilde(s, None)),
                        source: src(),
                    };
                }
                "basedirs" => {
                    let what = "must be a list of absolute directory paths";
                    let list = value.as_array().ok_or_else(|| bad(key, what))?;
                    let mut dirs = Vec::new();
                    for v in list {
                        let d = expand_tilde(v.as_str().ok_or_else(|| bad(key, what))?, None);
                        if !d.is_absolute() {
                            return Err(bad(key, what));
                        }
                        dirs.push(physical(d));
                    }
                    self.basedirs = Setting {
                        value: dirs,
                        source: src(),
                    };
                }
                "compiler_check" => {
                    let what = "must be \"content\", \"mtime\" or \"string:<text>\"";
                    let s = value.as_str().ok_or_else(|| bad(key, what))?;
                    self.compiler_check = Setting {
                        value: crate::identity::CompilerCheck::parse(s).ok_or_else(|| bad(key, what))?,
                        source: src(),
                    };
                }
                "coordinator" => self.coordinator.apply_table(value, path)?,
                "trust" => self.trust.apply_table(value, path)?,
                "cache" => {
                    let cache = value
                        .as_table()
                        .ok_or_else(|| bad(key, "must be a table ([cache.disk])"))?;
                    for (name, backend) in cache {
                        match name.as_str() {
                            "disk" => self.apply_disk_table(backend, path)?,
                            other if remote::TABLES.contains(&other) => {
                                let t = backend
                                    .as_table()
                                    .ok_or_else(|| bad(&format!("cache.{other}"), "must be a table"))?;
                                self.remote_tables.insert(other.to_string(), t.clone());
                            }
                            other => {
                                return Err(bad(
                                    &format!("cache.{other}"),
                                    &format!(
                                        "is not a known storage table; accepted: [cache.disk], [cache.{}]",
                                        remote::TABLES.join("], [cache.")
                                    ),
                                ));
                            }
                        }
                    }
                }
                other => {
                    return Err(bad(
                        other,
                        "is not a known setting; accepted: recache, disable, direct, debug, log, error_log, compiler_check, basedirs, rust_implicit_basedirs, background_store, [cache.disk], [coordinator], [trust]",
                    ));
                }
            }
        }
        self.file = Some(path.to_path_buf());
        Ok(())
    }

    fn apply_disk_table(&mut self, value: &toml::Value, path: &Path) -> Result<(), ConfigError> {
        let bad =
            |key: &str, what: &str| ConfigError(format!("config file {}: `cache.disk.{key}` {what}", path.display()));
        let table = value.as_table().ok_or_else(|| bad("", "must be a table"))?;
        for (key, v) in table {
            if !DISK_KEYS.contains(&key.as_str()) {
                return Err(bad(
                    key,
                    &format!("is not a known setting; accepted: {}", DISK_KEYS.join(", ")),
                ));
            }
            match key.as_str() {
                "dir" => {
                    let s = v.as_str().ok_or_else(|| bad(key, "must be a directory path string"))?;
                    let dir = expand_tilde(s, None);
                    if !dir.is_absolute() {
                        // As for CACHEPOT_DIR: a relative dir would be one cache per working directory.
                        return Err(bad(key, "must be an absolute path (or start with ~/)"));
                    }
                    self.dir = Setting {
                        value: dir,
                        source: Source::File(path.to_path_buf()),
                    };
                }
                "size" => {
                    let size = match v {
                        toml::Value::Integer(n) if *n >= 0 => {
                            parse_cache_size(&n.to_string()).map_err(|what| bad(key, &what))?
                        }
                        toml::Value::String(s) => parse_cache_size(s).map_err(|what| bad(key, &what))?,
                        _ => {
                            return Err(bad(
                                key,
                                "must be a size such as \"10G\" or \"500MB\", or 0 for no limit",
                            ));
                        }
                    };
                    self.max_size = Setting {
                        value: size,
                        source: Source::File(path.to_path_buf()),
                    };
                }
                other => return Err(bad(other, "is not a known setting; accepted: dir, size")),
            }
        }
        Ok(())
    }

    fn apply_env(&mut self, env: EnvReader) -> Result<(), ConfigError> {
        let get = |name: &str| env(name).filter(|v| !v.is_empty());
        if let Some(v) = get("CACHEPOT_DIR") {
            if !Path::new(&v).is_absolute() {
                // Made absolute here it would name a different cache in every directory a build
                // compiles in: refuse it rather than scatter caches over the source tree.
                return Err(ConfigError(format!(
                    "CACHEPOT_DIR={}: a relative path would make one cache per working directory; set an absolute path",
                    v.to_string_lossy()
                )));
            }
            self.dir = Setting {
                value: PathBuf::from(v),
                source: Source::Env("CACHEPOT_DIR"),
            };
        }
        if let Some(v) = get("CACHEPOT_CACHE_SIZE") {
            let s = v.to_string_lossy();
            let size = parse_cache_size(&s).map_err(|what| ConfigError(format!("CACHEPOT_CACHE_SIZE={s}: {what}")))?;
            self.max_size = Setting {
                value: size,
                source: Source::Env("CACHEPOT_CACHE_SIZE"),
            };
        }
        for (name, slot) in [
            ("CACHEPOT_RECACHE", &mut self.recache),
            ("CACHEPOT_DISABLE", &mut self.disable),
            ("CACHEPOT_DIRECT", &mut self.direct),
            ("CACHEPOT_DEBUG", &mut self.debug),
            ("CACHEPOT_RUST_IMPLICIT_BASEDIRS", &mut self.rust_implicit_basedirs),
            ("CACHEPOT_BACKGROUND_STORE", &mut self.background_store),
        ] {
            if let Some(v) = get(name) {
                let value = env_bool(name, &v)?;
                *slot = Setting {
                    value,
                    source: Source::Env(name),
                };
            }
        }
        if let Some(v) = get("CACHEPOT_LOG") {
            self.log = Setting {
                value: Some(v.to_string_lossy().into_owned()),
                source: Source::Env("CACHEPOT_LOG"),
            };
        }
        if let Some(v) = get("CACHEPOT_ERROR_LOG") {
            self.error_log = Setting {
                value: Some(absolute(PathBuf::from(v))),
                source: Source::Env("CACHEPOT_ERROR_LOG"),
            };
        }
        if let Some(v) = get("CACHEPOT_BASEDIRS") {
            let text = v.to_string_lossy().into_owned();
            let mut dirs = Vec::new();
            for d in text.split(':').filter(|d| !d.is_empty()) {
                let d = PathBuf::from(d);
                if !d.is_absolute() {
                    return Err(ConfigError(format!(
                        "CACHEPOT_BASEDIRS={text}: {} is not absolute; accepted: absolute directories separated by ':'",
                        d.display()
                    )));
                }
                dirs.push(physical(d));
            }
            self.basedirs = Setting {
                value: dirs,
                source: Source::Env("CACHEPOT_BASEDIRS"),
            };
        }
        if let Some(v) = get("CACHEPOT_COMPILER_CHECK") {
            let text = v.to_string_lossy();
            self.compiler_check = Setting {
                value: crate::identity::CompilerCheck::parse(&text).ok_or_else(|| {
                    ConfigError(format!(
                        "CACHEPOT_COMPILER_CHECK={text}: accepted: content, mtime, string:<text>"
                    ))
                })?,
                source: Source::Env("CACHEPOT_COMPILER_CHECK"),
            };
        }
        self.coordinator.apply_env(env)?;
        self.trust.apply_env(env)?;
        Ok(())
    }
}

/// `--max-size SIZE`: write `[cache.disk] size` into the config file (the one read, else the path
/// searched, created with its directory). The rest of the file, comments included, is kept: only the
/// `size` line of `[cache.disk]` is replaced or added. Returns the file written and the limit.
pub fn write_max_size(cfg: &Config, value: &str) -> Result<(PathBuf, u64), ConfigError> {
    let size = parse_cache_size(value).map_err(|what| ConfigError(format!("--max-size {value}: {what}")))?;
    let Some(path) = cfg.file.clone().or_else(|| cfg.searched.clone()) else {
        return Err(ConfigError(
            "--max-size: no config file to write: set CACHEPOT_CONF, XDG_CONFIG_HOME or HOME".into(),
        ));
    };
    // A dotfile manager's symlink stays a symlink: the file it points to is the one replaced.
    let path = path.canonicalize().unwrap_or(path);
    let old = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(ConfigError(format!("cannot read config file {}: {e}", path.display()))),
    };
    let line = format!("size = {}", toml::Value::String(value.trim().to_string()));
    let text = with_disk_size_line(&old, &line);
    let parsed: Result<toml::Table, _> = text.parse();
    let written = parsed.ok().and_then(|t| {
        let v = t.get("cache")?.get("disk")?.get("size")?.as_str()?.to_string();
        Some(v)
    });
    if written.as_deref() != Some(value.trim()) {
        return Err(ConfigError(format!(
            "--max-size: could not edit {} safely (is `size` set another way there?); set `size = \"{}\"` under [cache.disk] by hand",
            path.display(),
            value.trim()
        )));
    }
    // 0600: the file may hold a remote store's password.
    crate::atomic::write_private(&path, text.as_bytes())
        .map_err(|e| ConfigError(format!("cannot write config file {}: {e}", path.display())))?;
    Ok((path, size))
}

/// `old` with its `[cache.disk]` table's `size` line replaced by `line`, or `line` added there (the
/// table too, when it is missing).
fn with_disk_size_line(old: &str, line: &str) -> String {
    let mut lines: Vec<String> = old.lines().map(str::to_string).collect();
    let header = lines.iter().position(|l| l.trim() == "[cache.disk]");
    match header {
        Some(h) => {
            let end = lines[h + 1..]
                .iter()
                .position(|l| l.trim_start().starts_with('['))
                .map_or(lines.len(), |p| h + 1 + p);
            let size_line = lines[h + 1..end].iter().position(|l| {
                let t = l.trim_start();
                t.strip_prefix("size")
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            });
            match size_line {
                Some(i) => lines[h + 1 + i] = line.to_string(),
                None => lines.insert(h + 1, line.to_string()),
            }
        }
        None => {
            if lines.last().is_some_and(|l| !l.trim().is_empty()) {
                lines.push(String::new());
            }
            lines.push("[cache.disk]".into());
            lines.push(line.to_string());
        }
    }
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// Every `CACHEPOT_*` variable cachepot reads (`CACHEPOT_GUARD` it also sets, for the compilers it
/// runs). tests/docs.rs keeps this list, the code, the man page and the README in step.
pub const ENV_VARS: &[&str] = &[
    "CACHEPOT_AZURE_BLOB_CONTAINER",
    "CACHEPOT_AZURE_CONNECTION_STRING",
    "CACHEPOT_BACKGROUND_STORE",
    "CACHEPOT_BASEDIRS",
    "CACHEPOT_BUCKET",
    "CACHEPOT_CACHE_SIZE",
    "CACHEPOT_COMPILER_CHECK",
    "CACHEPOT_CONF",
    "CACHEPOT_COORDINATOR",
    "CACHEPOT_COORDINATOR_MAX_WAIT",
    "CACHEPOT_DEBUG",
    "CACHEPOT_DIR",
    "CACHEPOT_DIRECT",
    "CACHEPOT_DISABLE",
    "CACHEPOT_ENDPOINT",
    "CACHEPOT_ERROR_LOG",
    "CACHEPOT_GCS_BUCKET",
    "CACHEPOT_GCS_CREDENTIALS_URL",
    "CACHEPOT_GCS_ENDPOINT",
    "CACHEPOT_GCS_KEY_PATH",
    "CACHEPOT_GCS_RW_MODE",
    "CACHEPOT_GUARD",
    "CACHEPOT_IDLE_TIMEOUT",
    "CACHEPOT_JOBS",
    "CACHEPOT_LOCAL",
    "CACHEPOT_LOG",
    "CACHEPOT_MEMCACHED",
    "CACHEPOT_MEMCACHED_ITEM_SIZE",
    "CACHEPOT_MEMCACHED_TTL",
    "CACHEPOT_NO_DAEMON",
    "CACHEPOT_PATH",
    "CACHEPOT_REAPI",
    "CACHEPOT_REAPI_CA",
    "CACHEPOT_REAPI_CLIENT_CERT",
    "CACHEPOT_REAPI_CLIENT_KEY",
    "CACHEPOT_REAPI_HEADERS",
    "CACHEPOT_REAPI_INSTANCE",
    "CACHEPOT_REAPI_PLATFORM",
    "CACHEPOT_RECACHE",
    "CACHEPOT_REDIS",
    "CACHEPOT_REDIS_TTL",
    "CACHEPOT_REGION",
    "CACHEPOT_REMOTE_BACKOFF",
    "CACHEPOT_REMOTE_CONNECT_TIMEOUT",
    "CACHEPOT_REMOTE_EXECUTION",
    "CACHEPOT_REMOTE_EXECUTION_TIMEOUT",
    "CACHEPOT_REMOTE_PREFIX",
    "CACHEPOT_REMOTE_READ_ONLY",
    "CACHEPOT_REMOTE_TIMEOUT",
    "CACHEPOT_REMOTE_TOOLCHAIN",
    "CACHEPOT_RUST_IMPLICIT_BASEDIRS",
    "CACHEPOT_S3_KEY_PREFIX",
    "CACHEPOT_S3_NO_CREDENTIALS",
    "CACHEPOT_S3_PATH_STYLE",
    "CACHEPOT_S3_USE_SSL",
    "CACHEPOT_SIGNING_KEY",
    "CACHEPOT_START_SERVER",
    "CACHEPOT_TRUSTED_KEYS",
];

/// The `CACHEPOT_*` variable an error message is about (messages start `NAME=value: …`), the
/// longest that matches, so that `CACHEPOT_DIRECT=…` is not taken for `CACHEPOT_DIR`.
fn env_var_named(message: &str) -> Option<&'static str> {
    ENV_VARS
        .iter()
        .filter(|name| {
            message.match_indices(*name).any(|(i, _)| {
                let next = message[i + name.len()..].chars().next();
                !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        })
        .max_by_key(|name| name.len())
        .copied()
}

/// One warning for each `CACHEPOT_*` variable of this process's environment that cachepot does not
/// read, naming the closest known one: a misspelt setting (`CACHEPOT_CACHESIZE`) would otherwise be
/// ignored without a word. For the commands (`--show-config`, `--show-stats`), not compile calls.
pub fn unknown_env_warnings() -> Vec<String> {
    let mut names: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("CACHEPOT_") && !ENV_VARS.contains(&k.as_str()))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| match closest_env_var(&name) {
            Some(known) => format!("{name} is not a cachepot setting and is ignored; did you mean {known}?"),
            None => format!("{name} is not a cachepot setting and is ignored (see `man cachepot`, ENVIRONMENT)"),
        })
        .collect()
}

/// The known variable nearest to `name` by edit distance, when it is near enough to be a typo.
fn closest_env_var(name: &str) -> Option<&'static str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1];
            for (j, cb) in b.iter().enumerate() {
                cur.push((prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1));
            }
            prev = cur;
        }
        prev[b.len()]
    }
    ENV_VARS
        .iter()
        .map(|k| (distance(name, k), *k))
        .filter(|(d, _)| *d <= 3)
        .min()
        .map(|(_, k)| k)
}

/// A base directory as the working directory will name it: symlinks resolved when it exists.
fn physical(d: PathBuf) -> PathBuf {
    d.canonicalize().unwrap_or(d)
}

/// The cache size limit that means "no limit" (`0`, as in ccache).
pub const UNLIMITED: u64 = u64::MAX;

/// The smallest limit that holds entries: the store splits the limit over 16 buckets, and a
/// bucket smaller than a typical object file would evict every entry it is given.
pub const MIN_CACHE_SIZE: u64 = 64 << 10;

/// The cache size limit: a size as [`parse_size`] reads it, or `0` for no limit. A limit too small
/// to hold a compile result is refused (a bare `100` is 100 bytes: nothing would ever be stored).
pub fn parse_cache_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let number = t.trim_end_matches(|c: char| c.is_ascii_alphabetic()).trim();
    if number.parse::<f64>().is_ok_and(|n| n == 0.0) {
        return Ok(UNLIMITED);
    }
    let bytes = parse_size(t).map_err(|e| format!("{e}; 0 = no limit"))?;
    if bytes < MIN_CACHE_SIZE {
        let hint = if t.bytes().all(|b| b.is_ascii_digit()) {
            format!(" (a number without a unit is bytes: did you mean {t}M or {t}G?)")
        } else {
            String::new()
        };
        return Err(format!(
            "{} is too small to hold compile results{hint}; accepted: at least 64K, or 0 for no limit",
            format_size(bytes)
        ));
    }
    Ok(bytes)
}

/// An age such as `30d`, `12h`, `90m`, `3600s` or `2w` (`--evict-older-than`).
pub fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    let accepted = "not an age; accepted: a number with a unit s, m, h, d or w, e.g. 30d or 12h";
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit_secs = match unit.trim() {
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        "w" => 7.0 * 86400.0,
        _ => return Err(accepted.to_string()),
    };
    let n: f64 = num.parse().map_err(|_| accepted.to_string())?;
    let secs = n * unit_secs;
    if !secs.is_finite() || secs < 0.0 {
        return Err(accepted.to_string());
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// Human form of a byte count, e.g. `10.0 GiB`.
pub fn format_size(bytes: u64) -> String {
    if bytes == UNLIMITED {
        return "unlimited".into();
    }
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn default_cache_dir(env: EnvReader) -> Result<PathBuf, ConfigError> {
    if let Some(x) = env("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Ok(absolute(PathBuf::from(x).join("cachepot")));
    }
    match env("HOME").filter(|v| !v.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".cache").join("cachepot")),
        None => Err(ConfigError(
            "neither CACHEPOT_DIR, XDG_CACHE_HOME nor HOME is set: set CACHEPOT_DIR to a cache directory".into(),
        )),
    }
}

/// A private directory of this user outside the cache (the coordinator's default directory:
/// `$XDG_RUNTIME_DIR/cachepot`, else `/tmp/cachepot-<uid>`), for what must be kept even when the
/// cache dir is unusable or unknown: the count of compiles that met a bad setting, and the markers
/// that keep a terminal warning to once a day.
pub fn private_state_dir(env: EnvReader) -> PathBuf {
    match env("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(run) => absolute(PathBuf::from(run)).join("cachepot"),
        None => CoordinatorConfig::default().dir,
    }
}

/// The config file to read (if it exists) and the path that was looked at.
fn config_file_path(env: EnvReader) -> Result<(Option<PathBuf>, Option<PathBuf>), ConfigError> {
    if let Some(p) = env("CACHEPOT_CONF").filter(|v| !v.is_empty()) {
        let p = absolute(PathBuf::from(p));
        if !p.is_file() {
            let what = match std::fs::metadata(&p) {
                Ok(m) if m.is_dir() => "is a directory",
                Ok(_) => "is not a regular file",
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => "no such file",
                Err(_) => "cannot be read",
            };
            return Err(ConfigError(format!(
                "CACHEPOT_CONF={}: {what}; point it at a TOML config file or unset it",
                p.display()
            )));
        }
        return Ok((Some(p.clone()), Some(p)));
    }
    let base = match env("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => match env("HOME").filter(|v| !v.is_empty()) {
            Some(h) => PathBuf::from(h).join(".config"),
            None => return Ok((None, None)),
        },
    };
    let p = base.join("cachepot").join("config.toml");
    Ok((p.is_file().then(|| p.clone()), Some(p)))
}

// ---- Coordinator settings (src/coordinator/) ----

/// Whether compile calls use the coordinator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordinatorMode {
    /// Never contact it: no socket, no slot, nothing.
    Off,
    /// Take a compile slot from it on a miss, starting it in the background when it is absent.
    Auto,
}

impl fmt::Display for CoordinatorMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CoordinatorMode::Off => "off",
            CoordinatorMode::Auto => "auto",
        })
    }
}

#[derive(Debug, Clone)]
pub struct CoordinatorConfig {
    pub mode: Setting<CoordinatorMode>,
    /// Machine-wide compile slots; 0 (the default) = the CPUs this process may run on, read by
    /// `jobs()` when the coordinator starts, so that a compile call never probes CPUs and cgroups.
    pub jobs: Setting<u32>,
    /// Seconds without any connection before the coordinator exits; 0 = never.
    pub idle_timeout: Setting<u64>,
    /// The longest a compile call waits for a slot before it compiles without one (seconds).
    pub max_wait: Setting<u64>,
    /// The seed's spelling of `cachepot --start-coordinator`: `CACHEPOT_START_SERVER=1`, and with
    /// `CACHEPOT_NO_DAEMON=1` in the foreground. Commands, not settings, so not in `--show-config`.
    pub start_server: bool,
    pub no_daemon: bool,
    /// The private directory holding the socket: `$XDG_RUNTIME_DIR/cachepot`, else
    /// `/tmp/cachepot-<uid>`.
    pub dir: PathBuf,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            mode: Setting::default(CoordinatorMode::Off),
            jobs: Setting::default(0),
            idle_timeout: Setting::default(600),
            max_wait: Setting::default(300),
            start_server: false,
            no_daemon: false,
            // SAFETY: geteuid has no preconditions and cannot fail.
            dir: PathBuf::from(format!("/tmp/cachepot-{}", unsafe { libc::geteuid() })),
        }
    }
}

impl CoordinatorConfig {
    /// The number of compile slots: as set, else the CPUs this process may run on.
    pub fn jobs(&self) -> u32 {
        match self.jobs.value {
            0 => std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
            n => n,
        }
    }

    fn apply_table(&mut self, value: &toml::Value, path: &Path) -> Result<(), ConfigError> {
        let bad =
            |key: &str, what: &str| ConfigError(format!("config file {}: `coordinator.{key}` {what}", path.display()));
        let table = value
            .as_table()
            .ok_or_else(|| bad("", "must be a table ([coordinator])"))?;
        let src = || Source::File(path.to_path_buf());
        for (key, v) in table {
            if !COORDINATOR_KEYS.contains(&key.as_str()) {
                return Err(bad(
                    key,
                    &format!("is not a known setting; accepted: {}", COORDINATOR_KEYS.join(", ")),
                ));
            }
            match key.as_str() {
                "mode" => {
                    let s = v.as_str().ok_or_else(|| bad(key, "must be \"off\" or \"auto\""))?;
                    let mode = parse_coordinator_mode(s).ok_or_else(|| bad(key, "must be \"off\" or \"auto\""))?;
                    self.mode = Setting {
                        value: mode,
                        source: src(),
                    };
                }
                "jobs" => match v.as_integer() {
                    Some(n) if (1..=65536).contains(&n) => {
                        self.jobs = Setting {
                            value: n as u32,
                            source: src(),
                        }
                    }
                    _ => return Err(bad(key, "must be a number of slots from 1 to 65536")),
                },
                "idle_timeout" => match v.as_integer() {
                    Some(n) if n >= 0 => {
                        self.idle_timeout = Setting {
                            value: n as u64,
                            source: src(),
                        }
                    }
                    _ => return Err(bad(key, "must be a number of seconds (0 = never)")),
                },
                "max_wait" => match v.as_integer() {
                    Some(n) if n >= 0 => {
                        self.max_wait = Setting {
                            value: n as u64,
                            source: src(),
                        }
                    }
                    _ => return Err(bad(key, "must be a number of seconds")),
                },
                other => {
                    return Err(bad(
                        other,
                        "is not a known setting; accepted: mode, jobs, idle_timeout, max_wait",
                    ));
                }
            }
        }
        Ok(())
    }

    fn apply_env(&mut self, env: EnvReader) -> Result<(), ConfigError> {
        let get = |name: &str| {
            env(name)
                .filter(|v| !v.is_empty())
                .map(|v| v.to_string_lossy().into_owned())
        };
        if let Some(v) = get("CACHEPOT_COORDINATOR") {
            let mode = parse_coordinator_mode(&v)
                .ok_or_else(|| ConfigError(format!("CACHEPOT_COORDINATOR={v}: accepted: off, auto")))?;
            self.mode = Setting {
                value: mode,
                source: Source::Env("CACHEPOT_COORDINATOR"),
            };
        }
        if let Some(v) = get("CACHEPOT_JOBS") {
            match v.trim().parse::<u32>() {
                Ok(n) if (1..=65536).contains(&n) => {
                    self.jobs = Setting {
                        value: n,
                        source: Source::Env("CACHEPOT_JOBS"),
                    }
                }
                _ => {
                    return Err(ConfigError(format!(
                        "CACHEPOT_JOBS={v}: accepted: a number of slots from 1 to 65536"
                    )));
                }
            }
        }
        if let Some(v) = get("CACHEPOT_IDLE_TIMEOUT") {
            let secs = v.trim().parse::<u64>().map_err(|_| {
                ConfigError(format!(
                    "CACHEPOT_IDLE_TIMEOUT={v}: accepted: a number of seconds (0 = never)"
                ))
            })?;
            self.idle_timeout = Setting {
                value: secs,
                source: Source::Env("CACHEPOT_IDLE_TIMEOUT"),
            };
        }
        if let Some(v) = get("CACHEPOT_COORDINATOR_MAX_WAIT") {
            let secs = v.trim().parse::<u64>().map_err(|_| {
                ConfigError(format!(
                    "CACHEPOT_COORDINATOR_MAX_WAIT={v}: accepted: a number of seconds"
                ))
            })?;
            self.max_wait = Setting {
                value: secs,
                source: Source::Env("CACHEPOT_COORDINATOR_MAX_WAIT"),
            };
        }
        self.dir = private_state_dir(env);
        if let Some(v) = env("CACHEPOT_START_SERVER").filter(|v| !v.is_empty()) {
            self.start_server = env_bool("CACHEPOT_START_SERVER", &v)?;
        }
        if let Some(v) = env("CACHEPOT_NO_DAEMON").filter(|v| !v.is_empty()) {
            self.no_daemon = env_bool("CACHEPOT_NO_DAEMON", &v)?;
        }
        Ok(())
    }
}

fn parse_coordinator_mode(s: &str) -> Option<CoordinatorMode> {
    match s.trim().to_ascii_lowercase().as_str() {
        "off" | "0" | "false" | "no" => Some(CoordinatorMode::Off),
        "auto" | "on" | "1" | "true" | "yes" => Some(CoordinatorMode::Auto),
        _ => None,
    }
}

#[cfg(test)]
mod coordinator_tests {
    use super::*;
    use std::collections::HashMap;
    use std::ffi::OsString;

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, OsString> = vars.iter().map(|(k, v)| (k.to_string(), OsString::from(v))).collect();
        Config::load_with(&|name| map.get(name).cloned())
    }

    #[test]
    fn coordinator_settings() {
        let c = load(&[("HOME", "/h")]).unwrap().coordinator;
        assert_eq!(c.mode.value, CoordinatorMode::Off);
        assert_eq!(c.idle_timeout.value, 600);
        assert!(c.jobs() >= 1);
        assert!(
            c.dir.to_str().unwrap().starts_with("/tmp/cachepot-"),
            "{}",
            c.dir.display()
        );
        let c = load(&[
            ("HOME", "/h"),
            ("CACHEPOT_COORDINATOR", "auto"),
            ("CACHEPOT_JOBS", "4"),
            ("CACHEPOT_IDLE_TIMEOUT", "0"),
            ("XDG_RUNTIME_DIR", "/run/user/7"),
            ("CACHEPOT_START_SERVER", "1"),
            ("CACHEPOT_NO_DAEMON", "1"),
        ])
        .unwrap()
        .coordinator;
        assert_eq!(c.mode.value, CoordinatorMode::Auto);
        assert_eq!((c.jobs.value, c.idle_timeout.value), (4, 0));
        assert_eq!(c.dir, PathBuf::from("/run/user/7/cachepot"));
        assert!(c.start_server && c.no_daemon);
        for (var, value, says) in [
            ("CACHEPOT_COORDINATOR", "maybe", "accepted: off, auto"),
            ("CACHEPOT_JOBS", "0", "from 1 to 65536"),
            ("CACHEPOT_IDLE_TIMEOUT", "-1", "number of seconds"),
        ] {
            let e = load(&[("HOME", "/h"), (var, value)]).unwrap_err();
            assert!(
                e.0.starts_with(&format!("{var}={value}: ")) && e.0.contains(says),
                "{e}"
            );
        }
    }
}

// ---- end of coordinator settings ----

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::ffi::OsString;

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, OsString> = vars.iter().map(|(k, v)| (k.to_string(), OsString::from(v))).collect();
        Config::load_with(&|name| map.get(name).cloned())
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10G"), Ok(10 << 30));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("2T"), Ok(2 << 40));
        assert!(parse_size("10X").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("0").is_err());
        assert!(parse_size("-5G").is_err());
    }

    #[test]
    fn sizes_users_of_ccache_and_sccache_type() {
        assert_eq!(parse_cache_size("10GB"), Ok(10_000_000_000));
        assert_eq!(parse_cache_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_cache_size("10g"), Ok(10 << 30));
        assert_eq!(parse_cache_size("10 GiB"), Ok(10 << 30));
        assert_eq!(parse_cache_size("0"), Ok(UNLIMITED));
        assert_eq!(parse_cache_size("0G"), Ok(UNLIMITED));
        let e = parse_cache_size("100").unwrap_err();
        assert!(
            e.contains("too small") && e.contains("did you mean 100M or 100G"),
            "{e}"
        );
        assert!(parse_cache_size("1K").unwrap_err().contains("at least 64K"));
        assert!(parse_cache_size("lots").unwrap_err().contains("0 = no limit"));
        assert_eq!(format_size(UNLIMITED), "unlimited");
    }

    #[test]
    fn max_size_edits_only_the_size_line() {
        let line = "size = \"20G\"";
        assert_eq!(with_disk_size_line("", line), "[cache.disk]\nsize = \"20G\"\n");
        assert_eq!(
            with_disk_size_line(
                "# mine\ndirect = true\n[cache.disk]\ndir = \"/c\"\nsize = \"1G\" # old\n[coordinator]\njobs = 2\n",
                line
            ),
            "# mine\ndirect = true\n[cache.disk]\ndir = \"/c\"\nsize = \"20G\"\n[coordinator]\njobs = 2\n"
        );
        assert_eq!(
            with_disk_size_line("[coordinator]\njobs = 2\n[cache.disk]\n", line),
            "[coordinator]\njobs = 2\n[cache.disk]\nsize = \"20G\"\n"
        );
    }

    #[test]
    fn every_listed_key_is_read_and_no_other() {
        let dir = std::env::temp_dir().join(format!("cachepot-cfg-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        let f = file.to_str().unwrap().to_string();
        for key in file_keys()
            .into_iter()
            .chain(["cache.disk.sise".to_string(), "coordinator.job".into()])
        {
            let (table, name) = key.rsplit_once('.').unwrap_or(("", &key));
            let header = if table.is_empty() {
                String::new()
            } else {
                format!("[{table}]\n")
            };
            std::fs::write(&file, format!("{header}{name} = \"x\"\n")).unwrap();
            let unknown = match load(&[("HOME", "/h"), ("CACHEPOT_CONF", &f)]) {
                Ok(_) => false,
                Err(e) => e.0.contains("not a known setting") || e.0.contains("not a known key"),
            };
            assert_eq!(unknown, key.ends_with("sise") || key.ends_with("job"), "{key}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ages() {
        assert_eq!(parse_age("30d").unwrap().as_secs(), 30 * 86400);
        assert_eq!(parse_age("12h").unwrap().as_secs(), 12 * 3600);
        assert_eq!(parse_age("3600s").unwrap().as_secs(), 3600);
        assert!(parse_age("30").unwrap_err().contains("s, m, h, d or w"));
    }

    #[test]
    fn misspelt_variables_get_a_suggestion() {
        assert_eq!(closest_env_var("CACHEPOT_CACHESIZE"), Some("CACHEPOT_CACHE_SIZE"));
        assert_eq!(closest_env_var("CACHEPOT_DIRR"), Some("CACHEPOT_DIR"));
        assert_eq!(closest_env_var("CACHEPOT_SOMETHING_ELSE_ENTIRELY"), None);
    }

    #[test]
    fn booleans() {
        for t in ["1", "true", "YES", "on"] {
            assert_eq!(parse_bool(t), Some(true));
        }
        for f in ["0", "False", "no", "OFF"] {
            assert_eq!(parse_bool(f), Some(false));
        }
        assert_eq!(parse_bool("maybe"), None);
    }

    #[test]
    fn env_overrides_defaults() {
        let c = load(&[
            ("HOME", "/h"),
            ("CACHEPOT_CACHE_SIZE", "1M"),
            ("CACHEPOT_RECACHE", "yes"),
        ])
        .unwrap();
        assert_eq!(c.dir.value, PathBuf::from("/h/.cache/cachepot"));
        assert_eq!(c.max_size.value, 1 << 20);
        assert_eq!(c.max_size.source, Source::Env("CACHEPOT_CACHE_SIZE"));
        assert!(c.recache.value);
    }

    #[test]
    fn bad_values_name_the_setting() {
        let e = load(&[("HOME", "/h"), ("CACHEPOT_DISABLE", "maybe")]).unwrap_err();
        assert!(e.0.starts_with("CACHEPOT_DISABLE=maybe: not a boolean"), "{e}");
        let e = load(&[("HOME", "/h"), ("CACHEPOT_CACHE_SIZE", "lots")]).unwrap_err();
        assert!(e.0.starts_with("CACHEPOT_CACHE_SIZE=lots: not a size"), "{e}");
    }

    #[test]
    fn a_compile_leaves_out_each_bad_setting_and_keeps_the_rest() {
        let env: HashMap<&str, &str> = [
            ("HOME", "/h"),
            ("CACHEPOT_DIR", "/cache"),
            ("CACHEPOT_DIRECT", "maybe"),
            ("CACHEPOT_CACHE_SIZE", "lots"),
            ("CACHEPOT_LOG", "debug"),
        ]
        .into_iter()
        .collect();
        let (cfg, errors) = Config::load_lenient(&|k| env.get(k).map(OsString::from));
        let cfg = cfg.unwrap();
        // CACHEPOT_DIRECT=… is not taken for CACHEPOT_DIR: the cache dir is kept.
        assert_eq!(cfg.dir.value, PathBuf::from("/cache"));
        assert_eq!(cfg.log.value.as_deref(), Some("debug"));
        assert!(cfg.direct.value);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].0.starts_with("CACHEPOT_"), "{errors:?}");
        // No cache dir at all: nothing loads, the error is still named.
        let (cfg, errors) = Config::load_lenient(&|k| (k == "CACHEPOT_DIR").then(|| OsString::from("rel")));
        assert!(cfg.is_none());
        assert!(errors[0].0.starts_with("CACHEPOT_DIR=rel"), "{errors:?}");
    }

    #[test]
    fn file_then_env() {
        let dir = std::env::temp_dir().join(format!("cachepot-cfg-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "direct = false\n[cache.disk]\ndir = \"/from/file\"\nsize = \"2G\"\n",
        )
        .unwrap();
        let f = file.to_str().unwrap();
        let c = load(&[("HOME", "/h"), ("CACHEPOT_CONF", f), ("CACHEPOT_CACHE_SIZE", "3G")]).unwrap();
        assert_eq!(c.dir.value, PathBuf::from("/from/file"));
        assert!(!c.direct.value);
        assert_eq!(c.max_size.value, 3 << 30);
        std::fs::write(&file, "[cache.disk]\nsise = 1\n").unwrap();
        let e = load(&[("HOME", "/h"), ("CACHEPOT_CONF", f)]).unwrap_err();
        assert!(e.0.contains("cache.disk.sise"), "{e}");
        std::fs::write(&file, "[cache.disk]\ndir = \"rel/cache\"\n").unwrap();
        let e = load(&[("HOME", "/h"), ("CACHEPOT_CONF", f)]).unwrap_err();
        assert!(e.0.contains("cache.disk.dir` must be an absolute path"), "{e}");
        let e = load(&[("HOME", "/h"), ("CACHEPOT_CONF", dir.to_str().unwrap())]).unwrap_err();
        assert!(
            e.0.ends_with("is a directory; point it at a TOML config file or unset it"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn relative_cache_dir_is_refused() {
        let e = load(&[("HOME", "/h"), ("CACHEPOT_DIR", "cache")]).unwrap_err();
        assert!(e.0.starts_with("CACHEPOT_DIR=cache: a relative path"), "{e}");
        assert_eq!(
            load(&[("HOME", "/h"), ("CACHEPOT_DIR", "/abs")]).unwrap().dir.value,
            PathBuf::from("/abs")
        );
    }

    #[test]
    fn endless_config_file_is_refused() {
        let e = load(&[("HOME", "/h"), ("CACHEPOT_CONF", "/dev/zero")]).unwrap_err();
        assert!(e.0.contains("/dev/zero"), "{e}");
    }
}
