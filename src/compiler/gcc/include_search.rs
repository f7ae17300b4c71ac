//! Where the compiler looks for headers, so direct mode can tell when a header created later would
//! shadow one it recorded (a new `inc/stdio.h` in front of `/usr/include/stdio.h`). The user's
//! directories come from the arguments; the compiler's own are asked of it once (`-E -v`) per
//! compiler, language and target-changing flags, and remembered in the cache directory.

use crate::compiler::CCompile;
use crate::key::sha256_hex;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Flags that change the compiler's own include directories.
fn changes_system_dirs(arg: &[u8]) -> bool {
    const PREFIXES: &[&[u8]] = &[
        b"-nostdinc",
        b"--sysroot",
        b"-isysroot",
        b"-target",
        b"--target",
        b"-m32",
        b"-m64",
        b"-mx32",
        b"-stdlib",
        b"-B",
        b"--gcc-toolchain",
        b"-resource-dir",
        b"-std",
    ];
    PREFIXES.iter().any(|p| arg.starts_with(p))
}

/// The compiler's built-in `#include <…>` directories for this call, from the cache dir or by
/// asking the compiler. `None` when they cannot be learned (then direct mode records nothing).
pub fn system_dirs(real: &Path, identity: &str, req: &CCompile, cfg: &crate::config::Config) -> Option<Vec<PathBuf>> {
    let cache_dir = &cfg.dir.value;
    let mut flags: Vec<OsString> = Vec::new();
    let args = &req.key_args;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_bytes();
        if changes_system_dirs(a) {
            flags.push(args[i].clone());
            // Separate-value forms.
            if (a == b"-target" || a == b"--sysroot" || a == b"-isysroot" || a == b"-B" || a == b"-resource-dir")
                && i + 1 < args.len()
            {
                flags.push(args[i + 1].clone());
                i += 1;
            }
        }
        i += 1;
    }
    let lang = match req.language.as_str() {
        "c++" | "c++-cpp-output" => "c++",
        "objective-c++" | "objective-c++-cpp-output" => "objective-c++",
        "objective-c" | "objective-c-cpp-output" => "objective-c",
        _ => "c",
    };
    let mut id = format!("{identity}\n{lang}\n");
    for f in &flags {
        id.push_str(&f.to_string_lossy());
        id.push('\n');
    }
    let file = cache_dir.join("search-dirs").join(&sha256_hex(id.as_bytes())[..32]);
    if let Ok(text) = crate::limits::read_text(&file, crate::limits::CONFIG_FILE) {
        return Some(text.lines().map(PathBuf::from).collect());
    }
    let _slot = crate::coordinator::slot(cfg);
    let out = Command::new(real)
        .args(&flags)
        .args(["-x", lang, "-E", "-v", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env(crate::locate::GUARD_VAR, crate::locate::guard_value())
        .output()
        .ok()?;
    let dirs = parse_verbose(&out.stderr)?;
    let text: String = dirs.iter().map(|d| format!("{}\n", d.display())).collect();
    let _ = crate::atomic::write(&file, text.as_bytes());
    Some(dirs)
}

/// The `#include <...> search starts here:` list of `cc -E -v`.
pub fn parse_verbose(stderr: &[u8]) -> Option<Vec<PathBuf>> {
    let text = String::from_utf8_lossy(stderr);
    let mut dirs = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("#include <...> search starts here:") {
            inside = true;
            continue;
        }
        if line.starts_with("End of search list.") {
            return Some(dirs);
        }
        if inside {
            let d = line.trim().trim_end_matches(" (framework directory)");
            dirs.push(PathBuf::from(d));
        }
    }
    None
}

/// The directories searched for this compile, in order: the user's (-iquote, -I, -isystem), the
/// compiler's own, then -idirafter. (The includer's own directory is handled by the caller.)
pub fn search_chain(req: &CCompile, system: &[PathBuf]) -> Vec<PathBuf> {
    let mut chain: Vec<PathBuf> = Vec::new();
    let mut after = Vec::new();
    for (kind, dir) in &req.include_dirs {
        match *kind {
            "-idirafter" => after.push(dir.clone()),
            _ => chain.push(dir.clone()),
        }
    }
    chain.extend(system.iter().cloned());
    chain.extend(after);
    chain
}

/// Options that add directories to the search without being in `CCompile::include_dirs`: with
/// one of these, a probe could be answered from a directory the chain does not name.
const UNLISTED_SEARCH: &[&[u8]] = &[
    b"-iprefix",
    b"-iwithprefix",
    b"-iwithsysroot",
    b"-iframework",
    b"-isystem-after",
    b"-cxx-isystem",
    b"-I-",
    b"-F",
    b"--include-directory",
    b"-Wp,",
    b"-Xpreprocessor",
    b"-Xclang",
];

/// The whole chain a `__has_include` probe may search (`search_chain`), or `None` when it cannot
/// be known: an option above, or an `-I=dir` relative to the sysroot.
pub fn probe_chain(real: &Path, identity: &str, req: &CCompile, cfg: &crate::config::Config) -> Option<Vec<PathBuf>> {
    let unlisted = req
        .key_args
        .iter()
        .any(|a| UNLISTED_SEARCH.iter().any(|p| a.as_bytes().starts_with(p)));
    let sysroot_relative = req.include_dirs.iter().any(|(_, d)| {
        let d = d.as_os_str().as_bytes();
        d.starts_with(b"=") || d.starts_with(b"$SYSROOT")
    });
    if unlisted || sysroot_relative {
        return None;
    }
    let system = system_dirs(real, identity, req, cfg)?;
    Some(search_chain(req, &system))
}

/// Paths that must stay absent for `includes` to be what the compiler would find again: for each
/// include found in search directory D as D/rel, every D'/rel in a directory searched before D
/// (including the directories of the source and of every included file, which quote includes
/// search first), that is absent now.
pub fn must_be_absent(includes: &[PathBuf], chain: &[PathBuf], cwd: &Path) -> Vec<PathBuf> {
    let mut current_dirs: Vec<PathBuf> = Vec::new();
    let mut seen_dirs: std::collections::HashSet<&Path> = std::collections::HashSet::new();
    for inc in includes {
        if let Some(p) = inc.parent()
            && seen_dirs.insert(p)
        {
            current_dirs.push(p.to_path_buf());
        }
    }
    let mut probe = Probe {
        cwd,
        dirs: std::collections::HashMap::new(),
    };
    let mut out: Vec<PathBuf> = Vec::new();
    // Candidates repeat across includes: dedupe by hash, not by scanning `out` (quadratic).
    let mut seen: std::collections::HashSet<PathBuf> = std::collections::HashSet::new();
    for inc in includes {
        for (i, dir) in chain.iter().enumerate() {
            let Ok(rel) = inc.strip_prefix(dir) else { continue };
            if rel.as_os_str().is_empty() {
                continue;
            }
            let earlier = current_dirs.iter().filter(|d| *d != dir).chain(chain[..i].iter());
            let candidates: Vec<PathBuf> = earlier.map(|d| d.join(rel)).filter(|c| c != inc).collect();
            // Only an interpretation consistent with what the compiler found counts.
            if candidates.iter().all(|c| !probe.exists(c)) {
                for c in candidates {
                    if seen.insert(c.clone()) {
                        out.push(c);
                    }
                }
            }
        }
    }
    out
}

/// Existence checks that remember directories: most candidates (`D/sys/x.h`, `D/bits/y.h` for
/// every earlier directory `D`) lie in a directory that does not exist, known after one lookup.
struct Probe<'a> {
    cwd: &'a Path,
    dirs: std::collections::HashMap<PathBuf, bool>,
}

impl Probe<'_> {
    /// Does `p` exist (following symlinks, as the compiler's open would)?
    fn exists(&mut self, p: &Path) -> bool {
        match p.parent() {
            Some(d) if !d.as_os_str().is_empty() && !self.is_dir(d) => false,
            _ => self.cwd.join(p).exists(),
        }
    }

    /// Is `d` a directory (a path beneath anything else cannot be opened)?
    fn is_dir(&mut self, d: &Path) -> bool {
        if let Some(&known) = self.dirs.get(d) {
            return known;
        }
        let known = match d.parent() {
            Some(up) if !up.as_os_str().is_empty() && !self.is_dir(up) => false,
            _ => self.cwd.join(d).is_dir(),
        };
        self.dirs.insert(d.to_path_buf(), known);
        known
    }
}

/// Precompiled headers (`*.gch`, `*.pch`) in the directories the compiler looks in for quoted and
/// `-include`d headers.
pub fn precompiled_headers(req: &CCompile, cwd: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = vec![req.source.parent().map(Path::to_path_buf).unwrap_or_default()];
    dirs.extend(
        req.include_dirs
            .iter()
            .filter(|(k, _)| *k != "-isystem" && *k != "-idirafter")
            .map(|(_, d)| d.clone()),
    );
    dirs.extend(
        req.include_files
            .iter()
            .map(|f| f.parent().map(Path::to_path_buf).unwrap_or_default()),
    );
    let mut found = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(cwd.join(&dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let b = name.as_encoded_bytes();
            if (b.ends_with(b".gch") || b.ends_with(b".pch")) && e.path().is_file() {
                let p = dir.join(&name);
                if !found.contains(&p) {
                    found.push(p);
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_gcc_verbose_output() {
        let err = b"ignoring nonexistent directory \"/x\"\n#include \"...\" search starts here:\n#include <...> search starts here:\n /usr/lib/gcc/x86_64-linux-gnu/12/include\n /usr/local/include\n /usr/include\nEnd of search list.\n";
        assert_eq!(
            parse_verbose(err).unwrap(),
            vec![
                PathBuf::from("/usr/lib/gcc/x86_64-linux-gnu/12/include"),
                PathBuf::from("/usr/local/include"),
                PathBuf::from("/usr/include")
            ]
        );
    }

    #[test]
    fn shadowing_candidates() {
        let d = std::env::temp_dir().join(format!("cachepot-inc-{}", std::process::id()));
        std::fs::create_dir_all(d.join("a")).unwrap();
        std::fs::create_dir_all(d.join("b")).unwrap();
        let chain = vec![d.join("a"), d.join("b")];
        let absent = must_be_absent(&[d.join("b/h.h")], &chain, &d);
        assert!(absent.contains(&d.join("a/h.h")), "{absent:?}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn shadowing_candidates_in_missing_and_present_subdirectories() {
        let d = std::env::temp_dir().join(format!("cachepot-inc-sub-{}", std::process::id()));
        std::fs::create_dir_all(d.join("a")).unwrap();
        std::fs::create_dir_all(d.join("b/sys")).unwrap();
        let chain = vec![d.join("a"), d.join("b")];
        // `a/sys` does not exist: `a/sys/h.h` must stay absent.
        let absent = must_be_absent(&[d.join("b/sys/h.h")], &chain, &d);
        assert!(absent.contains(&d.join("a/sys/h.h")), "{absent:?}");
        // `a/sys/h.h` exists, so the compiler cannot have found `b/sys/h.h` through `b`: that
        // reading is dropped, and with it the candidate.
        std::fs::create_dir_all(d.join("a/sys")).unwrap();
        std::fs::write(d.join("a/sys/h.h"), "").unwrap();
        let absent = must_be_absent(&[d.join("b/sys/h.h")], &chain, &d);
        assert!(!absent.contains(&d.join("a/sys/h.h")), "{absent:?}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
