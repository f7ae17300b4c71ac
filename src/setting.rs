//! The building blocks of settings, shared by config.rs and the modules whose settings it reads
//! (store/, trust.rs): where a value came from, the error that names a bad one, and the one parser
//! of booleans and sizes. It depends on nothing else of cachepot, so no settings module needs the
//! whole configuration.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    File(PathBuf),
    Env(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => write!(f, "default"),
            Source::File(p) => write!(f, "file {}", p.display()),
            Source::Env(v) => write!(f, "env {v}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Setting<T> {
    pub value: T,
    pub source: Source,
}

impl<T> Setting<T> {
    pub fn default(value: T) -> Self {
        Setting {
            value,
            source: Source::Default,
        }
    }
}

/// A bad setting: which one, where, the value, and what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Reads one environment variable; a function so tests can supply their own environment.
pub type EnvReader<'a> = &'a dyn Fn(&str) -> Option<OsString>;

/// Parse a boolean environment value; the one place booleans are parsed.
pub fn env_bool(name: &str, value: &std::ffi::OsStr) -> Result<bool, ConfigError> {
    let s = value.to_string_lossy();
    parse_bool(&s).ok_or_else(|| {
        ConfigError(format!(
            "{name}={s}: not a boolean; accepted: 1/0, true/false, yes/no, on/off"
        ))
    })
}

/// 1/0, true/false, yes/no, on/off (any case); anything else is `None`.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// A size such as `10G`, `500MB`, `10g`, `1.5GiB` or `1048576`. K, M, G, T (any case, also KiB …
/// TiB) are powers of 1024, as in sccache; KB, MB, GB, TB are powers of 1000, as in ccache; a bare
/// number is bytes. Returns a message saying what is accepted.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let accepted = "not a size; accepted: a positive number with an optional unit: K, M, G, T (powers of 1024; KiB … TiB too) or KB, MB, GB, TB (powers of 1000), e.g. 10G or 500MB";
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(accepted.to_string()),
    };
    let n: f64 = num.parse().map_err(|_| accepted.to_string())?;
    let bytes = n * multiplier as f64;
    if bytes.is_nan() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(accepted.to_string());
    }
    Ok(bytes as u64)
}

pub fn expand_tilde(s: &str, home: Option<&Path>) -> PathBuf {
    if let Some(rest) = s.strip_prefix("~/") {
        let home = home
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("HOME").map(PathBuf::from));
        if let Some(h) = home {
            return h.join(rest);
        }
    }
    PathBuf::from(s)
}

pub fn absolute(p: PathBuf) -> PathBuf {
    if p.is_absolute() {
        p
    } else {
        std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p)
    }
}
