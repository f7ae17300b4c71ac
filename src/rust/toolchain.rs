//! Which Rust toolchain a call runs, and its identity for keys, without starting any process.
//! The `rustc` on PATH is often rustup's proxy: one file for every toolchain. The proxy picks the
//! toolchain from `RUSTUP_TOOLCHAIN` (which rustup sets for everything cargo runs), so we resolve
//! it the same way; where we cannot be sure which toolchain the proxy would pick, the call is not
//! cacheable. The identity is the content of the real rustc binary plus the sysroot's compiler
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

fn proxied_rustc(real: &Path) -> Result<PathBuf, &'static str> {
    const UNKNOWN: &str = "rustup toolchain unknown (RUSTUP_TOOLCHAIN unset)";
    let name = std::env::var("RUSTUP_TOOLCHAIN").map_err(|_| UNKNOWN)?;
    let tool = real.file_name().ok_or(UNKNOWN)?;
    let dir = if name.contains('/') {
        PathBuf::from(&name)
    } else {
        let home = match std::env::var_os("RUSTUP_HOME") {
            Some(h) => PathBuf::from(h),
            None => PathBuf::from(std::env::var_os("HOME").ok_or(UNKNOWN)?).join(".rustup"),
        };
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
        .filter(|e| e.metadata().is_ok_and(|m| m.is_file()))
        .map(|e| {
            let p = e.path();
            let role = p.strip_prefix(sysroot).unwrap_or(&p).display().to_string();
            (role, p)
        })
        .collect();
    found.sort();
    out.extend(found);
}
