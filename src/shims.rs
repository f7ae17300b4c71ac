//! The shim directory: symlinks named like compilers, pointing at cachepot, for the front of PATH.
//! Only compilers that exist on PATH get a link (as Debian's update-ccache-symlinks does): a link
//! for a missing compiler would make configure or cmake pick it, then fail. Links are relative
//! (`../../bin/cachepot`) when the directory and the binary share a prefix such as `/usr`, so a
//! staged root (DESTDIR), a chroot or a moved prefix stays correct.

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

/// The base names that take the Rust flow: a link for them routes every cargo build run with the
/// shim directory first on PATH, which a user who wanted C caching may not expect.
pub const RUST_NAMES: &[&str] = &["rustc", "clippy-driver"];

/// Which compilers get links: `--only c` or `--only rust`; both by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Only {
    All,
    C,
    Rust,
}

impl Only {
    pub fn parse(s: &str) -> Result<Only, String> {
        match s {
            "c" => Ok(Only::C),
            "rust" => Ok(Only::Rust),
            "all" => Ok(Only::All),
            _ => Err(format!(
                "--only {s}: accepted: c (cc, gcc, clang …), rust (rustc, clippy-driver), all"
            )),
        }
    }

    fn bases(self) -> Vec<&'static str> {
        base_names()
            .into_iter()
            .filter(|b| match self {
                Only::All => true,
                Only::C => !RUST_NAMES.contains(b),
                Only::Rust => RUST_NAMES.contains(b),
            })
            .collect()
    }
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
    /// What each link says: relative (`../../bin/cachepot`) where it can be.
    pub link: PathBuf,
    pub created: Vec<String>,
    pub kept: Vec<String>,
    pub removed: Vec<String>,
    pub skipped: Vec<String>,
}

/// Create or refresh `dir`'s links to `target` for every compiler found on `path_var` (of the kinds
/// `only` names; links of ours for other compilers are removed). `target` may be relative to `dir`.
pub fn install(dir: &Path, target: &Path, path_var: &std::ffi::OsStr, only: Only) -> io::Result<Report> {
    fs::create_dir_all(dir).map_err(|e| io::Error::new(e.kind(), format!("cannot create {}: {e}", dir.display())))?;
    let dir_canon = dir.canonicalize()?;
    let target_abs = dir_canon.join(target);
    let target_id = fs::metadata(&target_abs).map(|m| (m.dev(), m.ino())).ok();
    let link_text = link_text(&dir_canon, &target_abs, target);
    let target = link_text.as_path();
    let all_bases = base_names();
    let bases = only.bases();
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
    let mut report = Report {
        link: target.to_path_buf(),
        ..Report::default()
    };
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
        if !wanted.contains(&name) && is_compiler_name(&name, &all_bases) && is_ours(&e.path()) {
            fs::remove_file(e.path())?;
            report.removed.push(name);
        }
    }
    Ok(report)
}

/// What a link in `dir` says to reach `target_abs`: a relative path when both lie under a common
/// directory other than `/` (`/usr/lib/cachepot` → `../../bin/cachepot`) and that path leads to the
/// same file; otherwise `given` as it was (absolute, or relative as the user wrote it).
fn link_text(dir: &Path, target_abs: &Path, given: &Path) -> PathBuf {
    if given.is_relative() {
        return given.to_path_buf();
    }
    let (Some(parent), Some(file)) = (target_abs.parent(), target_abs.file_name()) else {
        return given.to_path_buf();
    };
    let Ok(parent) = parent.canonicalize() else {
        return given.to_path_buf();
    };
    let d: Vec<_> = dir.components().collect();
    let t: Vec<_> = parent.components().collect();
    let common = d.iter().zip(&t).take_while(|(a, b)| a == b).count();
    // Only the root in common: an absolute link says more (a home shim dir and /usr/local/bin).
    if common <= 1 {
        return given.to_path_buf();
    }
    let mut rel = PathBuf::new();
    for _ in common..d.len() {
        rel.push("..");
    }
    for c in &t[common..] {
        rel.push(c);
    }
    rel.push(file);
    let same = |a: &Path, b: &Path| match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    };
    if same(&dir.join(&rel), target_abs) {
        rel
    } else {
        given.to_path_buf()
    }
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
    fn links_are_relative_under_a_common_prefix() {
        let root = std::env::temp_dir().join(format!("cachepot-shims-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        fs::create_dir_all(root.join("usr/lib/cachepot")).unwrap();
        fs::write(root.join("usr/bin/cachepot"), "").unwrap();
        let dir = root.join("usr/lib/cachepot").canonicalize().unwrap();
        let target = root.join("usr/bin/cachepot").canonicalize().unwrap();
        assert_eq!(link_text(&dir, &target, &target), PathBuf::from("../../bin/cachepot"));
        // A relative target as given stays as given; a target that is missing stays absolute.
        let rel = Path::new("../x/cachepot");
        assert_eq!(link_text(&dir, &dir.join(rel), rel), rel);
        let gone = root.join("usr/bin/gone");
        assert_eq!(link_text(&dir, &gone, &gone), gone);
        fs::remove_dir_all(&root).unwrap();
    }

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
