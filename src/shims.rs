//! The shim directory: symlinks named like compilers, pointing at cachepot, for the front of PATH.
//! Only compilers that exist on PATH get a link (as Debian's update-ccache-symlinks does): a link
//! for a missing compiler would make configure or cmake pick it, then fail.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};

/// The base names we masquerade as, from `shims/names.txt`.
pub fn base_names() -> Vec<&'static str> {
    include_str!("../shims/names.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// Is `name` one of ours: a base name, optionally with a target-triplet prefix and/or a version
/// suffix (`x86_64-linux-gnu-gcc-12`), but not a sibling tool (`gcc-ar`, `clang-format`)?
pub fn is_compiler_name(name: &str, bases: &[&str]) -> bool {
    let unversioned = match name.rfind('-') {
        Some(pos) if name[pos + 1..].bytes().all(|b| b.is_ascii_digit() || b == b'.') && pos + 1 < name.len() => {
            &name[..pos]
        }
        _ => name,
    };
    bases.iter().any(|base| {
        unversioned == *base
            || unversioned
                .strip_suffix(base)
                .is_some_and(|prefix| prefix.ends_with('-') && prefix.len() > 1 && prefix.matches('-').count() >= 2)
    })
}

#[derive(Debug, Default)]
pub struct Report {
    pub created: Vec<String>,
    pub kept: Vec<String>,
    pub removed: Vec<String>,
    pub skipped: Vec<String>,
}

/// Create or refresh `dir`'s links to `target` for every compiler found on `path_var`.
pub fn install(dir: &Path, target: &Path, path_var: &std::ffi::OsStr) -> io::Result<Report> {
    fs::create_dir_all(dir).map_err(|e| io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display())))?;
    let dir_canon = dir.canonicalize()?;
    let target_id = fs::metadata(target).map(|m| (m.dev(), m.ino())).ok();
    let bases = base_names();
    let mut wanted = BTreeSet::new();
    for p in std::env::split_paths(path_var) {
        if p.canonicalize().ok().as_deref() == Some(dir_canon.as_path()) {
            continue;
        }
        let Ok(entries) = fs::read_dir(&p) else { continue };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !is_compiler_name(&name, &bases) || !crate::locate::is_executable(&e.path()) {
                continue;
            }
            // Never link to ourselves (another shim directory on PATH).
            if fs::metadata(e.path())
                .map(|m| Some((m.dev(), m.ino())) == target_id)
                .unwrap_or(false)
            {
                continue;
            }
            wanted.insert(name);
        }
    }
    let mut report = Report::default();
    let is_ours = |link: &Path| -> bool {
        match fs::read_link(link) {
            Ok(t) => {
                t.file_name().is_some_and(|n| n == "cachepot")
                    || fs::metadata(link)
                        .map(|m| Some((m.dev(), m.ino())) == target_id)
                        .unwrap_or(false)
            }
            Err(_) => false,
        }
    };
    for name in &wanted {
        let link = dir.join(name);
        match fs::symlink_metadata(&link) {
            Ok(_) if is_ours(&link) => {
                if fs::read_link(&link).ok().as_deref() == Some(target) {
                    report.kept.push(name.clone());
                    continue;
                }
                fs::remove_file(&link)?;
            }
            Ok(_) => {
                report.skipped.push(name.clone());
                continue;
            }
            Err(_) => {}
        }
        symlink(target, &link)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot create {}: {e}", link.display())))?;
        report.created.push(name.clone());
    }
    // Links of ours for compilers that are gone would make configure pick a missing compiler.
    for e in fs::read_dir(dir)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !wanted.contains(&name) && is_compiler_name(&name, &bases) && is_ours(&e.path()) {
            fs::remove_file(e.path())?;
            report.removed.push(name);
        }
    }
    Ok(report)
}

/// Where shims point by default: this executable.
pub fn default_target() -> io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe.canonicalize().unwrap_or(exe))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiler_names() {
        let b = base_names();
        for yes in [
            "gcc",
            "g++",
            "cc",
            "c++",
            "clang",
            "clang++",
            "gcc-12",
            "clang-14",
            "clang++-14",
            "x86_64-linux-gnu-gcc",
            "x86_64-linux-gnu-gcc-12",
            "arm-none-eabi-g++",
        ] {
            assert!(is_compiler_name(yes, &b), "{yes}");
        }
        for no in [
            "gcc-ar",
            "gcc-nm-12",
            "clang-format",
            "clang-cpp-14",
            "x86_64-linux-gnu-gcc-ar-12",
            "c++filt",
            "gccgo",
            "x-gcc",
            "cpp",
        ] {
            assert!(!is_compiler_name(no, &b), "{no}");
        }
    }
}
