//! Finding the real compiler: the first executable of the wanted name on PATH (or `CACHEPOT_PATH`)
//! that is not cachepot itself. "Itself" is any file with our canonical path or our (device, inode):
//! a symlink, a hard link, the shim directory listed twice. A plain *copy* of the binary cannot be
//! recognised that way, so every compiler we run also gets `CACHEPOT_GUARD` in its environment,
//! listing the cachepot executables already on the call chain; a cachepot that finds itself on that
//! list skips those too and passes the call straight through.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const GUARD_VAR: &str = "CACHEPOT_GUARD";

#[derive(Debug)]
pub struct NotFound {
    pub name: String,
    pub search_var: &'static str,
    pub path: OsString,
}

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot find the real compiler `{}`: no executable of that name other than cachepot itself in {}={}",
            self.name,
            self.search_var,
            self.path.to_string_lossy()
        )
    }
}

/// Who we are: the identities that mean "this is cachepot, do not run it as the compiler".
pub struct SelfIdentity {
    paths: Vec<PathBuf>,
    inodes: Vec<(u64, u64)>,
}

impl SelfIdentity {
    /// Our own executable plus every cachepot already on the call chain (from the guard variable).
    pub fn current() -> SelfIdentity {
        let mut id = SelfIdentity {
            paths: Vec::new(),
            inodes: Vec::new(),
        };
        if let Ok(exe) = std::env::current_exe() {
            id.add(&exe);
        }
        for p in guard_chain() {
            id.add(&p);
        }
        id
    }

    fn add(&mut self, p: &Path) {
        let canonical = p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
        if let Ok(m) = std::fs::metadata(&canonical) {
            self.inodes.push((m.dev(), m.ino()));
        }
        self.paths.push(canonical);
    }

    /// Is `candidate` (whose metadata the caller has: one `stat` per PATH entry) this cachepot or
    /// one up the call chain: the same inode, or the same canonical path?
    fn is_self_with(&self, candidate: &Path, m: &std::fs::Metadata) -> bool {
        self.inodes.contains(&(m.dev(), m.ino())) || self.is_self_by_path(candidate)
    }

    fn is_self_by_path(&self, candidate: &Path) -> bool {
        candidate
            .canonicalize()
            .map(|c| self.paths.contains(&c))
            .unwrap_or(false)
    }
}

/// The cachepot executables already on this call chain.
pub fn guard_chain() -> Vec<PathBuf> {
    std::env::var_os(GUARD_VAR)
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default()
}

/// True when a cachepot up the call chain is already caching this compile.
pub fn inside_cachepot() -> bool {
    std::env::var_os(GUARD_VAR).is_some_and(|v| !v.is_empty())
}

/// The guard value for compilers we start: the chain so far plus our own executable.
pub fn guard_value() -> OsString {
    let mut chain = guard_chain();
    if let Ok(exe) = std::env::current_exe() {
        chain.push(exe.canonicalize().unwrap_or(exe));
    }
    std::env::join_paths(chain).unwrap_or_default()
}

/// Find the compiler named `name` (a bare name searched on PATH, or a path used as given).
pub fn find_compiler(name: &OsStr, me: &SelfIdentity) -> Result<PathBuf, NotFound> {
    let (search_var, path) = match std::env::var_os("CACHEPOT_PATH").filter(|p| !p.is_empty()) {
        Some(p) => ("CACHEPOT_PATH", p),
        None => ("PATH", std::env::var_os("PATH").unwrap_or_default()),
    };
    let not_found = || NotFound {
        name: name.to_string_lossy().into_owned(),
        search_var,
        path: path.clone(),
    };
    if name.as_bytes().contains(&b'/') {
        let p = PathBuf::from(name);
        return match std::fs::metadata(&p) {
            Ok(m) if executable(&m) && !me.is_self_with(&p, &m) => Ok(p),
            _ => Err(not_found()),
        };
    }
    let mut searched: Vec<PathBuf> = Vec::new();
    for dir in std::env::split_paths(&path) {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        // A directory named twice on PATH holds the same files: one look.
        if searched.contains(&dir) {
            continue;
        }
        let candidate = dir.join(name);
        if let Ok(m) = std::fs::metadata(&candidate)
            && executable(&m)
            && !me.is_self_with(&candidate, &m)
        {
            return Ok(candidate);
        }
        searched.push(dir);
    }
    Err(not_found())
}

pub fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| executable(&m))
}

fn executable(m: &std::fs::Metadata) -> bool {
    m.is_file() && m.permissions().mode() & 0o111 != 0
}
