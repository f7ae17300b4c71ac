//! The remote level: settings common to every backend (read-only, key prefix, local level on or
//! off, timeouts, back-off), choosing the one configured backend, and the back-off file that keeps a
//! dead server from costing every compile of a build a timeout. Each backend's own settings are
//! parsed in its module (`redis.rs`, `memcached.rs`, …) through [`Settings`], so that every
//! environment variable is read while the configuration is loaded, never on the compile path.
//!
//! TOML schema (environment variables win over the file):
//! ```toml
//! [cache.remote]
//! read_only = false        # CACHEPOT_REMOTE_READ_ONLY: use the remote for hits only
//! prefix = ""              # CACHEPOT_REMOTE_PREFIX: put before every key on the remote
//! local = true             # CACHEPOT_LOCAL=off: no local disk level in front of the remote
//! connect_timeout = "1s"   # CACHEPOT_REMOTE_CONNECT_TIMEOUT
//! timeout = "5s"           # CACHEPOT_REMOTE_TIMEOUT: one request's read/write time
//! backoff = "60s"          # CACHEPOT_REMOTE_BACKOFF: skip a failed remote this long
//! [cache.redis]            # or [cache.memcached], [cache.s3], [cache.reapi], …: one backend at a time
//! ```
//!
//! Back-off file grammar (`<cache dir>/remote-backoff`): one line `<unix seconds> <backend id>`,
//! the time until which the remote named by the id (a hash of its masked description) is skipped.

use super::Storage;
use super::disk::DiskStore;
use crate::setting::{ConfigError, EnvReader, Setting, Source, parse_bool};
use crate::trust::Level;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The `[cache.*]` tables that belong to the remote level (config.rs keeps them raw for us).
pub const TABLES: &[&str] = &["remote", "redis", "memcached", "s3", "azure", "gcs", "reapi"];

/// The keys of `[cache.remote]`, the settings every backend shares.
pub const COMMON_KEYS: &[&str] = &["read_only", "prefix", "local", "connect_timeout", "timeout", "backoff"];

/// Every key of the remote tables, dotted (`cache.redis.url`), for `config::file_keys`.
pub fn file_keys() -> Vec<String> {
    let tables: [(&str, &[&str]); 7] = [
        ("remote", COMMON_KEYS),
        ("redis", super::redis::KEYS),
        ("memcached", super::memcached::KEYS),
        ("s3", super::s3::KEYS),
        ("azure", super::azure::KEYS),
        ("gcs", super::gcs::KEYS),
        ("reapi", super::reapi::KEYS),
    ];
    debug_assert!(tables.iter().map(|t| t.0).eq(TABLES.iter().copied()));
    tables
        .iter()
        .flat_map(|(t, keys)| keys.iter().map(move |k| format!("cache.{t}.{k}")))
        .collect()
}

/// A value that must never be printed: `Debug` and `Display` show `****`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

/// The configured remote: one backend plus the common settings.
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    pub backend: Backend,
    pub read_only: Setting<bool>,
    pub prefix: Setting<String>,
    pub local: Setting<bool>,
    pub connect_timeout: Setting<Duration>,
    pub timeout: Setting<Duration>,
    pub backoff: Setting<Duration>,
}

/// The one configured backend, with its own settings.
#[derive(Debug, Clone)]
pub enum Backend {
    Redis(super::redis::RedisConfig),
    Memcached(super::memcached::MemcachedConfig),
    S3(Box<super::s3::S3Config>),
    Azure(Box<super::azure::AzureConfig>),
    Gcs(Box<super::gcs::GcsConfig>),
    Reapi(Box<super::reapi::ReapiConfig>),
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Redis(_) => "redis",
            Backend::Memcached(_) => "memcached",
            Backend::S3(_) => "s3",
            Backend::Azure(_) => "azure",
            Backend::Gcs(_) => "gcs",
            Backend::Reapi(_) => "reapi",
        }
    }

    /// Where the backend's main setting came from.
    fn source(&self) -> &Source {
        match self {
            Backend::Redis(c) => &c.url_source,
            Backend::Memcached(c) => &c.servers.source,
            Backend::S3(c) => &c.bucket.source,
            Backend::Azure(c) => c.source(),
            Backend::Gcs(c) => &c.bucket.source,
            Backend::Reapi(c) => &c.url.source,
        }
    }

    /// The backend's settings for `--show-config`, secrets masked.
    fn show(&self) -> Vec<(&'static str, String, String)> {
        match self {
            Backend::Redis(c) => c.show(),
            Backend::Memcached(c) => c.show(),
            Backend::S3(c) => c.show(),
            Backend::Azure(c) => c.show(),
            Backend::Gcs(c) => c.show(),
            Backend::Reapi(c) => c.show(),
        }
    }
}

pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(60);

impl RemoteConfig {
    /// The remote from the config file's `[cache.*]` tables and the environment; `None` when no
    /// backend is configured; an error when two are, or when a setting is bad.
    pub fn load(
        tables: &BTreeMap<String, toml::Table>,
        file: Option<&Path>,
        env: EnvReader,
    ) -> Result<Option<RemoteConfig>, ConfigError> {
        let settings = |name: &'static str| Settings {
            table_name: name,
            table: tables.get(name),
            file,
            env,
        };
        let mut found: Vec<Backend> = Vec::new();
        if let Some(c) = super::redis::RedisConfig::load(&settings("redis"))? {
            found.push(Backend::Redis(c));
        }
        if let Some(c) = super::memcached::MemcachedConfig::load(&settings("memcached"))? {
            found.push(Backend::Memcached(c));
        }
        if let Some(c) = super::s3::S3Config::load(&settings("s3"))? {
            found.push(Backend::S3(Box::new(c)));
        }
        if let Some(c) = super::azure::AzureConfig::load(&settings("azure"))? {
            found.push(Backend::Azure(Box::new(c)));
        }
        if let Some(c) = super::gcs::GcsConfig::load(&settings("gcs"))? {
            found.push(Backend::Gcs(Box::new(c)));
        }
        if let Some(c) = super::reapi::ReapiConfig::load(&settings("reapi"))? {
            found.push(Backend::Reapi(Box::new(c)));
        }
        let common = settings("remote");
        common.check_keys(COMMON_KEYS)?;
        if found.len() > 1 {
            let list: Vec<String> = found.iter().map(|b| format!("{} ({})", b.name(), b.source())).collect();
            return Err(ConfigError(format!(
                "two remote stores are configured: {}; cachepot uses one remote at a time: remove all but one",
                list.join(" and ")
            )));
        }
        let Some(backend) = found.pop() else {
            return Ok(None);
        };
        let mut prefix = common.string("prefix", "CACHEPOT_REMOTE_PREFIX")?;
        if let (None, Backend::S3(s3)) = (&prefix, &backend) {
            // The seed's name for the prefix, for S3 only.
            prefix = s3.key_prefix.clone();
        }
        if let Some(p) = &prefix
            && (p.value.len() > 100 || !p.value.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(ConfigError(format!(
                "remote key prefix {:?} ({}) is not valid; accepted: up to 100 printable ASCII characters without spaces",
                p.value, p.source
            )));
        }
        let read_only = match (common.bool("read_only", "CACHEPOT_REMOTE_READ_ONLY")?, &backend) {
            (Some(r), _) => r,
            // CACHEPOT_GCS_RW_MODE is the seed's switch for GCS, read-only by default.
            (None, Backend::Gcs(g)) => Setting {
                value: !g.read_write.value,
                source: g.read_write.source.clone(),
            },
            (None, _) => Setting {
                value: false,
                source: Source::Default,
            },
        };
        Ok(Some(RemoteConfig {
            backend,
            read_only,
            prefix: prefix.unwrap_or(Setting {
                value: String::new(),
                source: Source::Default,
            }),
            local: common.bool("local", "CACHEPOT_LOCAL")?.unwrap_or(Setting {
                value: true,
                source: Source::Default,
            }),
            connect_timeout: common
                .duration("connect_timeout", "CACHEPOT_REMOTE_CONNECT_TIMEOUT")?
                .unwrap_or(Setting {
                    value: DEFAULT_CONNECT_TIMEOUT,
                    source: Source::Default,
                }),
            timeout: common
                .duration("timeout", "CACHEPOT_REMOTE_TIMEOUT")?
                .unwrap_or(Setting {
                    value: DEFAULT_TIMEOUT,
                    source: Source::Default,
                }),
            backoff: common
                .duration("backoff", "CACHEPOT_REMOTE_BACKOFF")?
                .unwrap_or(Setting {
                    value: DEFAULT_BACKOFF,
                    source: Source::Default,
                }),
        }))
    }

    /// Rows for `--show-config`: (name, value, source), secrets masked.
    pub fn show(&self) -> Vec<(&'static str, String, String)> {
        let mut rows = vec![(
            "remote",
            self.backend.name().to_string(),
            self.backend.source().to_string(),
        )];
        rows.extend(self.backend.show());
        let dur = |d: &Setting<Duration>| (format_duration(d.value), d.source.to_string());
        let (ct, cts) = dur(&self.connect_timeout);
        let (t, ts) = dur(&self.timeout);
        let (b, bs) = dur(&self.backoff);
        rows.extend([
            (
                "remote_read_only",
                self.read_only.value.to_string(),
                self.read_only.source.to_string(),
            ),
            (
                "remote_prefix",
                format!("{:?}", self.prefix.value),
                self.prefix.source.to_string(),
            ),
            ("local", self.local.value.to_string(), self.local.source.to_string()),
            ("remote_connect_timeout", ct, cts),
            ("remote_timeout", t, ts),
            ("remote_backoff", b, bs),
        ]);
        rows
    }

    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: self.connect_timeout.value,
            io: self.timeout.value,
        }
    }

    /// The REAPI endpoint's settings when misses are to be compiled on it.
    pub fn remote_execution(&self) -> Option<&super::reapi::ReapiConfig> {
        match &self.backend {
            Backend::Reapi(c) if c.remote_execution.value => Some(c),
            _ => None,
        }
    }

    /// The backend as a store, not yet connected: connections are made on first use.
    fn open_backend(&self, cache_dir: &Path) -> Box<dyn Storage> {
        let t = self.timeouts();
        let prefix = self.prefix.value.clone();
        match &self.backend {
            Backend::Redis(c) => Box::new(super::redis::RedisStore::new(c.clone(), prefix, t)),
            Backend::Memcached(c) => Box::new(super::memcached::MemcachedStore::new(c.clone(), prefix, t)),
            Backend::S3(c) => Box::new(super::s3::S3Store::new(
                (**c).clone(),
                prefix,
                t,
                cache_dir.to_path_buf(),
            )),
            Backend::Azure(c) => Box::new(super::azure::AzureStore::new((**c).clone(), prefix, t)),
            Backend::Gcs(c) => Box::new(super::gcs::GcsStore::new(
                (**c).clone(),
                prefix,
                t,
                cache_dir.to_path_buf(),
            )),
            Backend::Reapi(c) => Box::new(super::reapi::ReapiStore::new((**c).clone(), prefix, t)),
        }
    }
}

/// How long a backend waits to connect, and for each read or write.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub io: Duration,
}

/// The store a compile uses: the local disk alone, or the local disk in front of the remote (or the
/// remote alone with `CACHEPOT_LOCAL=off`). Nothing is waited for here; with `connect_ahead` the
/// backend starts connecting (Redis: a thread) while the caller goes on.
pub fn open(
    cache_dir: &Path,
    max_size: u64,
    remote: Option<&RemoteConfig>,
    connect_ahead: bool,
    trust: Option<std::rc::Rc<crate::trust::Trust>>,
) -> Box<dyn Storage> {
    let disk: Box<dyn Storage> = Box::new(super::disk::Uncompressed(Box::new(Level::local(
        Box::new(DiskStore::new(cache_dir, max_size)),
        trust.clone(),
    ))));
    let Some(r) = remote else {
        return disk;
    };
    let backend = Level::remote(r.open_backend(cache_dir), &r.prefix.value, trust);
    let backoff = Backoff {
        file: cache_dir.join("remote-backoff"),
        id: crate::key::sha256_hex(backend.describe().as_bytes())[..16].to_string(),
        period: r.backoff.value,
    };
    // Read the back-off file now: a remote being skipped is not connected to in advance.
    let usable = !backoff.active();
    if usable && connect_ahead {
        backend.prepare();
    }
    Box::new(super::tiered::TieredStore::new(
        r.local.value.then_some(disk),
        Box::new(backend),
        r.read_only.value,
        backoff,
        usable,
        cache_dir.to_path_buf(),
    ))
}

/// The back-off file: after a remote failure, every compile skips the remote until the recorded
/// time, so a dead or hanging server costs one timeout per back-off period, not one per compile.
#[derive(Debug, Clone)]
pub struct Backoff {
    pub file: PathBuf,
    /// Which remote the file is about: a changed configuration is not skipped for the old one.
    pub id: String,
    pub period: Duration,
}

impl Backoff {
    /// Whether the remote is being skipped now.
    pub fn active(&self) -> bool {
        let Ok(text) = crate::limits::read_text(&self.file, crate::limits::CONFIG_FILE) else {
            return false;
        };
        let mut it = text.split_whitespace();
        match (it.next().and_then(|t| t.parse::<u64>().ok()), it.next()) {
            (Some(until), Some(id)) => id == self.id && unix_now() < until,
            _ => false,
        }
    }

    /// Start a back-off period now (temp file + rename, so readers never see half a line).
    pub fn start(&self) {
        if self.period.is_zero() {
            return;
        }
        let until = unix_now() + self.period.as_secs().max(1);
        if let Err(e) = crate::atomic::write(&self.file, format!("{until} {}\n", self.id).as_bytes()) {
            log::debug!(target: "remote", "cannot write {}: {e}", self.file.display());
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// One backend's settings source: its `[cache.<name>]` table and the environment (env wins).
pub struct Settings<'a> {
    pub table_name: &'static str,
    pub table: Option<&'a toml::Table>,
    pub file: Option<&'a Path>,
    pub env: EnvReader<'a>,
}

impl Settings<'_> {
    /// Reject keys of the table that are not in `accepted`.
    pub fn check_keys(&self, accepted: &[&str]) -> Result<(), ConfigError> {
        for key in self.table.into_iter().flat_map(|t| t.keys()) {
            if !accepted.contains(&key.as_str()) {
                return Err(self.bad(
                    key,
                    &format!("is not a known setting; accepted: {}", accepted.join(", ")),
                ));
            }
        }
        Ok(())
    }

    fn bad(&self, key: &str, what: &str) -> ConfigError {
        let file = self.file.map(|p| p.display().to_string()).unwrap_or_default();
        ConfigError(format!("config file {file}: `cache.{}.{key}` {what}", self.table_name))
    }

    fn file_source(&self) -> Source {
        Source::File(self.file.map(Path::to_path_buf).unwrap_or_default())
    }

    fn env_value(&self, var: &'static str) -> Option<String> {
        (self.env)(var)
            .filter(|v| !v.is_empty())
            .map(|v| v.to_string_lossy().into_owned())
    }

    /// A string setting: the first set variable of `vars`, else the table's `key`.
    pub fn string_any(&self, key: &str, vars: &[&'static str]) -> Result<Option<Setting<String>>, ConfigError> {
        for var in vars {
            if let Some(v) = self.env_value(var) {
                return Ok(Some(Setting {
                    value: v,
                    source: Source::Env(var),
                }));
            }
        }
        match self.table.and_then(|t| t.get(key)) {
            None => Ok(None),
            Some(v) => {
                let s = v.as_str().ok_or_else(|| self.bad(key, "must be a string"))?;
                Ok(Some(Setting {
                    value: s.to_string(),
                    source: self.file_source(),
                }))
            }
        }
    }

    pub fn string(&self, key: &str, var: &'static str) -> Result<Option<Setting<String>>, ConfigError> {
        self.string_any(key, &[var])
    }

    pub fn bool(&self, key: &str, var: &'static str) -> Result<Option<Setting<bool>>, ConfigError> {
        if let Some(v) = self.env_value(var) {
            let value = parse_bool(&v).ok_or_else(|| {
                ConfigError(format!(
                    "{var}={v}: not a boolean; accepted: 1/0, true/false, yes/no, on/off"
                ))
            })?;
            return Ok(Some(Setting {
                value,
                source: Source::Env(var),
            }));
        }
        match self.table.and_then(|t| t.get(key)) {
            None => Ok(None),
            Some(v) => Ok(Some(Setting {
                value: v.as_bool().ok_or_else(|| self.bad(key, "must be true or false"))?,
                source: self.file_source(),
            })),
        }
    }

    /// A whole number; `what` says what it is for the error message.
    pub fn u64(&self, key: &str, var: &'static str, what: &str) -> Result<Option<Setting<u64>>, ConfigError> {
        if let Some(v) = self.env_value(var) {
            let value = v
                .trim()
                .parse::<u64>()
                .map_err(|_| ConfigError(format!("{var}={v}: not a number; accepted: {what}")))?;
            return Ok(Some(Setting {
                value,
                source: Source::Env(var),
            }));
        }
        match self.table.and_then(|t| t.get(key)) {
            None => Ok(None),
            Some(toml::Value::Integer(n)) if *n >= 0 => Ok(Some(Setting {
                value: *n as u64,
                source: self.file_source(),
            })),
            Some(_) => Err(self.bad(key, &format!("must be {what}"))),
        }
    }

    pub fn duration(&self, key: &str, var: &'static str) -> Result<Option<Setting<Duration>>, ConfigError> {
        let accepted = "a duration such as \"500ms\", \"5s\" or \"2m\" (a bare number is seconds)";
        if let Some(v) = self.env_value(var) {
            let value = parse_duration(&v).ok_or_else(|| ConfigError(format!("{var}={v}: not {accepted}")))?;
            return Ok(Some(Setting {
                value,
                source: Source::Env(var),
            }));
        }
        let value = match self.table.and_then(|t| t.get(key)) {
            None => return Ok(None),
            Some(toml::Value::Integer(n)) if *n >= 0 => Duration::from_secs(*n as u64),
            Some(toml::Value::Float(f)) if *f >= 0.0 => Duration::from_secs_f64(*f),
            Some(toml::Value::String(s)) => {
                parse_duration(s).ok_or_else(|| self.bad(key, &format!("must be {accepted}")))?
            }
            Some(_) => return Err(self.bad(key, &format!("must be {accepted}"))),
        };
        Ok(Some(Setting {
            value,
            source: self.file_source(),
        }))
    }
}

/// `500ms`, `5s`, `2m`, `1h`, or a bare number of seconds (fractions allowed).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

pub fn format_duration(d: Duration) -> String {
    if d.subsec_millis() != 0 || d.is_zero() {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs())
    }
}

/// A URL with its password (between `user:` and `@`) replaced by `****`, for logs and output.
pub fn mask_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    let userinfo = &rest[..at];
    let masked = match userinfo.find(':') {
        Some(colon) => format!("{}:****", &userinfo[..colon]),
        None => "****".to_string(),
    };
    format!("{}{masked}{}", &url[..scheme_end], &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::ffi::OsString;

    fn load(vars: &[(&str, &str)], file: &str) -> Result<Option<RemoteConfig>, ConfigError> {
        let map: HashMap<String, OsString> = vars.iter().map(|(k, v)| (k.to_string(), OsString::from(v))).collect();
        let table: toml::Table = file.parse().unwrap();
        let tables: BTreeMap<String, toml::Table> = table
            .get("cache")
            .and_then(|c| c.as_table())
            .map(|c| {
                c.iter()
                    .map(|(k, v)| (k.clone(), v.as_table().unwrap().clone()))
                    .collect()
            })
            .unwrap_or_default();
        RemoteConfig::load(&tables, Some(Path::new("/c.toml")), &|n| map.get(n).cloned())
    }

    #[test]
    fn no_backend_means_no_remote() {
        assert!(load(&[("CACHEPOT_REMOTE_READ_ONLY", "1")], "").unwrap().is_none());
    }

    #[test]
    fn common_settings_from_env_and_file() {
        let r = load(
            &[
                ("CACHEPOT_REDIS", "redis://:pw@127.0.0.1:1/2"),
                ("CACHEPOT_LOCAL", "off"),
            ],
            "[cache.remote]\nread_only = true\ntimeout = \"250ms\"\nprefix = \"team/\"\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.backend.name(), "redis");
        assert!(r.read_only.value);
        assert!(!r.local.value);
        assert_eq!(r.local.source, Source::Env("CACHEPOT_LOCAL"));
        assert_eq!(r.timeout.value, Duration::from_millis(250));
        assert_eq!(r.prefix.value, "team/");
        assert_eq!(r.connect_timeout.value, DEFAULT_CONNECT_TIMEOUT);
        let shown = format!("{:?} {:?}", r, r.show());
        assert!(!shown.contains("pw"), "{shown}");
    }

    #[test]
    fn two_backends_are_an_error() {
        let e = load(
            &[("CACHEPOT_REDIS", "redis://127.0.0.1:1")],
            "[cache.memcached]\nservers = \"tcp://127.0.0.1:2\"\n",
        )
        .unwrap_err();
        assert!(
            e.0.starts_with(
                "two remote stores are configured: redis (env CACHEPOT_REDIS) and memcached (file /c.toml)"
            ),
            "{e}"
        );
    }

    #[test]
    fn bad_values_name_the_setting() {
        let e = load(
            &[("CACHEPOT_REDIS", "redis://h"), ("CACHEPOT_REMOTE_TIMEOUT", "soon")],
            "",
        )
        .unwrap_err();
        assert!(e.0.starts_with("CACHEPOT_REMOTE_TIMEOUT=soon: not a duration"), "{e}");
        let e = load(&[("CACHEPOT_REDIS", "redis://h")], "[cache.remote]\nreadonly = true\n").unwrap_err();
        assert!(e.0.contains("`cache.remote.readonly` is not a known setting"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("5"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("x"), None);
        assert_eq!(parse_duration("5 parsecs"), None);
    }

    #[test]
    fn masks_passwords() {
        assert_eq!(mask_url("redis://:secret@h:1/0"), "redis://:****@h:1/0");
        assert_eq!(
            mask_url("rediss://user:secret@h/#insecure"),
            "rediss://user:****@h/#insecure"
        );
        assert_eq!(mask_url("redis://h:1"), "redis://h:1");
        assert_eq!(mask_url("redis://token@h"), "redis://****@h");
    }

    #[test]
    fn backoff_file_round_trip() {
        let dir = std::env::temp_dir().join(format!("cachepot-backoff-{}", std::process::id()));
        let b = Backoff {
            file: dir.join("remote-backoff"),
            id: "abc".into(),
            period: Duration::from_secs(60),
        };
        assert!(!b.active());
        b.start();
        assert!(b.active());
        let other = Backoff {
            id: "def".into(),
            ..b.clone()
        };
        assert!(!other.active(), "a back-off is about one remote only");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
