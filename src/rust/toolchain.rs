//! Which Rust toolchain a call runs, and its identity for keys, without starting any process.
//! The `rustc` on PATH is often rustup's proxy: one file for every toolchain. We pick the
//! toolchain the proxy would, in its order (`toolchain_name`): `RUSTUP_TOOLCHAIN` (which rustup
//! sets for everything cargo runs); else, walking up from the working directory, a directory
//! override in `$RUSTUP_HOME/settings.toml` or a `rust-toolchain`/`rust-toolchain.toml` file; else
//! the default toolchain. Where we cannot be sure which toolchain the proxy would pick, the call
//! is not cacheable. The identity is the content of the real rustc binary plus the sysroot's compiler
//! driver and standard library files (identity.rs: memoized by stat data, so two machines with
//! the same toolchain bytes agree, whatever their mtimes or install paths).

use crate::config::Config;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct Toolchain {
    /// The real rustc binary (not the proxy).
    pub rustc: PathBuf,
    /// The identity text for keys.
    pub identity: String,
}

/// Resolve the rustc that `real` (found on PATH or named by cargo) stands for.
pub fn resolve(real: &Path, cfg: &Config) -> Result<Toolchain, &'static str> {
    let canonical = real.canonicalize().map_err(|_| "rustc not found")?;
    let is_proxy = canonical
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == "rustup" || n.starts_with("rustup-"));
    let rustc = if is_proxy { proxied_rustc(real)? } else { canonical };
    let files = files(&rustc);
    let identity = crate::identity::of_files(&cfg.dir.value, &cfg.compiler_check.value, &files)
        .map_err(|_| "cannot read the rust toolchain")?;
    Ok(Toolchain { rustc, identity })
}

const UNKNOWN: &str = "rustup toolchain unknown";

fn proxied_rustc(real: &Path) -> Result<PathBuf, &'static str> {
    let home = match std::env::var_os("RUSTUP_HOME") {
        Some(h) => PathBuf::from(h),
        None => PathBuf::from(std::env::var_os("HOME").ok_or(UNKNOWN)?).join(".rustup"),
    };
    let cwd = std::env::current_dir().map_err(|_| UNKNOWN)?;
    let name = toolchain_name(std::env::var("RUSTUP_TOOLCHAIN").ok(), &home, &cwd)?;
    let tool = real.file_name().ok_or(UNKNOWN)?;
    let dir = if name.contains('/') {
        PathBuf::from(&name)
    } else {
        let toolchains = home.join("toolchains");
        let exact = toolchains.join(&name);
        if exact.is_dir() {
            exact
        } else {
            // `stable` names `stable-<host triple>`; accept it only when exactly one matches.
            let prefix = format!("{name}-");
            let matches: Vec<PathBuf> = std::fs::read_dir(&toolchains)
                .map_err(|_| UNKNOWN)?
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .collect();
            match matches.as_slice() {
                [one] => one.clone(),
                _ => return Err("rustup toolchain name is ambiguous"),
            }
        }
    };
    let rustc = dir.join("bin").join(tool);
    if crate::locate::is_executable(&rustc) {
        Ok(rustc)
    } else {
        Err("rustup toolchain not installed")
    }
}

/// The toolchain rustup's proxy picks: `from_env` (`RUSTUP_TOOLCHAIN`); else, from `cwd` up, each
/// directory's override in `settings.toml`, then its `rust-toolchain` file, then its
/// `rust-toolchain.toml` (rustup takes the one without extension when both exist); else the
/// default toolchain. A toolchain file that names a path, or that cannot be read as rustup reads
/// it, is not guessed at.
fn toolchain_name(from_env: Option<String>, home: &Path, cwd: &Path) -> Result<String, &'static str> {
    if let Some(name) = from_env.filter(|n| !n.is_empty()) {
        return Ok(name);
    }
    let settings: toml::Table =
        match crate::limits::read_regular(&home.join("settings.toml"), crate::limits::CONFIG_FILE) {
            Ok(bytes) => String::from_utf8(bytes)
                .ok()
                .and_then(|t| t.parse().ok())
                .ok_or("rustup settings.toml unreadable")?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => toml::Table::new(),
            Err(_) => return Err("rustup settings.toml unreadable"),
        };
    let overrides = settings.get("overrides").and_then(toml::Value::as_table);
    let cwd = cwd.canonicalize().unwrap_or_else(|_| cwd.to_path_buf());
    for dir in cwd.ancestors() {
        if let Some(name) = overrides.and_then(|o| o.get(&*dir.to_string_lossy())) {
            return name.as_str().map(str::to_string).ok_or("rustup override unreadable");
        }
        for file in ["rust-toolchain", "rust-toolchain.toml"] {
            let path = dir.join(file);
            if path.is_file() {
                let bytes = crate::limits::read_regular(&path, crate::limits::CONFIG_FILE)
                    .map_err(|_| "rust-toolchain file unreadable")?;
                return toolchain_file_channel(&String::from_utf8_lossy(&bytes));
            }
        }
    }
    settings
        .get("default_toolchain")
        .and_then(toml::Value::as_str)
        .map(str::to_string)
        .ok_or("no rustup default toolchain")
}

/// The channel a `rust-toolchain(.toml)` file names: `[toolchain] channel = "…"`, or (the legacy
/// form) the file's one line.
fn toolchain_file_channel(text: &str) -> Result<String, &'static str> {
    if let Ok(t) = text.parse::<toml::Table>()
        && let Some(tc) = t.get("toolchain").and_then(toml::Value::as_table)
    {
        if tc.contains_key("path") {
            return Err("rust-toolchain file names a path");
        }
        return tc
            .get("channel")
            .and_then(toml::Value::as_str)
            .map(str::to_string)
            .ok_or("rust-toolchain file without a channel");
    }
    let line = text.trim();
    if line.is_empty() || line.contains(char::is_whitespace) || line.contains(['[', '=', '"']) {
        return Err("rust-toolchain file unreadable");
    }
    Ok(line.to_string())
}

/// The files of a toolchain that decide what rustc produces, named relative to the sysroot:
/// rustc, the compiler driver libraries in `lib/` (or Debian's multiarch dir) and every installed
/// target's standard library files.
fn files(rustc: &Path) -> Vec<(String, PathBuf)> {
    let mut out = vec![("bin/rustc".to_string(), rustc.to_path_buf())];
    let Some(sysroot) = rustc.parent().and_then(Path::parent) else {
        return out;
    };
    list_files(sysroot, &sysroot.join("lib"), Some("librustc_driver"), &mut out);
    if let Ok(targets) = std::fs::read_dir(sysroot.join("lib/rustlib")) {
        let mut dirs: Vec<PathBuf> = targets.flatten().map(|e| e.path().join("lib")).collect();
        dirs.sort();
        for d in dirs {
            list_files(sysroot, &d, None, &mut out);
        }
    }
    // Debian keeps the driver in the multiarch directory.
    if let Ok(entries) = std::fs::read_dir(sysroot.join("lib")) {
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with("-linux-gnu"))
            .map(|e| e.path())
            .collect();
        dirs.sort();
        for d in dirs {
            list_files(sysroot, &d, Some("librustc_driver"), &mut out);
        }
    }
    out
}

fn list_files(sysroot: &Path, dir: &Path, prefix: Option<&str>, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut found: Vec<(String, PathBuf)> = entries
        .flatten()
        .filter(|e| prefix.is_none_or(|p| e.file_name().to_string_lossy().starts_with(p)))
        // The type the directory listing gives (no stat; lstat where the file system gives none):
        // every file's stat data is read once more, by identity::of_files, anyway.
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| {
            let p = e.path();
            let role = p.strip_prefix(sysroot).unwrap_or(&p).display().to_string();
            (role, p)
        })
        .collect();
    found.sort();
    out.extend(found);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_toolchain_as_rustup_does() {
        let root = std::env::temp_dir().join(format!("cachepot-tc-{}", std::process::id()));
        let home = root.join("rustup");
        let project = root.join("project");
        let sub = project.join("src/deep");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        let pick = |env: Option<&str>, cwd: &Path| toolchain_name(env.map(str::to_string), &home, cwd);
        assert_eq!(pick(None, &sub), Err("no rustup default toolchain"));
        std::fs::write(home.join("settings.toml"), "default_toolchain = \"stable\"\n").unwrap();
        assert_eq!(pick(None, &sub).unwrap(), "stable");
        std::fs::write(project.join("rust-toolchain.toml"), "[toolchain]\nchannel = \"1.80\"\n").unwrap();
        assert_eq!(pick(None, &sub).unwrap(), "1.80");
        // The legacy file wins over the .toml one in the same directory.
        std::fs::write(project.join("rust-toolchain"), "nightly-2024-05-01\n").unwrap();
        assert_eq!(pick(None, &sub).unwrap(), "nightly-2024-05-01");
        // A nearer file wins; a directory override wins over a file in the same directory.
        std::fs::write(sub.join("rust-toolchain"), "beta\n").unwrap();
        assert_eq!(pick(None, &sub).unwrap(), "beta");
        let canonical = sub.canonicalize().unwrap();
        std::fs::write(
            home.join("settings.toml"),
            format!(
                "default_toolchain = \"stable\"\n[overrides]\n\"{}\" = \"custom\"\n",
                canonical.display()
            ),
        )
        .unwrap();
        assert_eq!(pick(None, &sub).unwrap(), "custom");
        assert_eq!(pick(Some("env-wins"), &sub).unwrap(), "env-wins");
        std::fs::write(sub.join("rust-toolchain"), "[toolchain]\npath = \"/opt/rust\"\n").unwrap();
        assert_eq!(pick(None, &project.join("src")).unwrap(), "nightly-2024-05-01");
        let _ = std::fs::remove_dir_all(&root);
    }
}
