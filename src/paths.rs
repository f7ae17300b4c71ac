//! Base directories: the one place that turns absolute paths under a base into paths relative to
//! the working directory for keys (so two checkouts, two build dirs or two machines with the same
//! layout compute the same keys), turns them back into this build's paths in restored dependency
//! files, and finds outputs that still embed a base's absolute path (those are never handed to
//! another location).
//!
//! Paths are compared as text, component by component, against the physical working directory
//! (getcwd); base directories are made absolute when the settings are read. A path that reaches a
//! base only through a symlink is not under it: it keeps its absolute text, and shares nothing.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

/// The base directories in force for one call: the configured ones, and the old sides of the
/// user's own path remappings (`-ffile-prefix-map=OLD=NEW` and friends).
#[derive(Debug, Clone, Default)]
pub struct Bases {
    /// Absolute, normalized, longest first (so the innermost base wins).
    dirs: Vec<PathBuf>,
}

impl Bases {
    pub fn new(dirs: impl IntoIterator<Item = PathBuf>) -> Bases {
        let mut dirs: Vec<PathBuf> = dirs
            .into_iter()
            .filter(|d| d.is_absolute())
            .map(|d| normalize(&d))
            .filter(|d| d.parent().is_some())
            .collect();
        dirs.sort_by_key(|d| std::cmp::Reverse(d.as_os_str().len()));
        dirs.dedup();
        Bases { dirs }
    }

    pub fn is_empty(&self) -> bool {
        self.dirs.is_empty()
    }

    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// `p` as the key names it: relative to `cwd` when it is absolute and under a base, else as is.
    pub fn key_path(&self, p: &Path, cwd: &Path) -> PathBuf {
        if p.is_absolute() && self.dirs.iter().any(|b| p.starts_with(b)) {
            relative(cwd, &normalize(p))
        } else {
            p.to_path_buf()
        }
    }

    /// An argument as the key names it: a path in it (the whole argument, or the value after a
    /// flag such as `-I`, `-include=`, `-fprofile-use=`, or either side of `OLD=NEW`) that lies
    /// under a base is made relative to `cwd`.
    pub fn key_arg(&self, arg: &OsStr, cwd: &Path) -> OsString {
        if self.is_empty() {
            return arg.to_os_string();
        }
        let b = arg.as_bytes();
        if b.first() == Some(&b'/') {
            return self.key_path(Path::new(arg), cwd).into_os_string();
        }
        if b.first() != Some(&b'-') {
            return arg.to_os_string();
        }
        // The flag name: leading '-', then letters, digits, '-', '_', '+', up to '=' or a '/'.
        let name_end = b
            .iter()
            .position(|&c| !(c.is_ascii_alphanumeric() || c == b'-' || c == b'_' || c == b'+' || c == b','))
            .unwrap_or(b.len());
        let (name, rest) = b.split_at(name_end);
        let (eq, value) = match rest.first() {
            Some(b'=') => rest.split_at(1),
            _ => rest.split_at(0),
        };
        let rebase = |part: &[u8]| -> Vec<u8> {
            if part.first() == Some(&b'/') {
                self.key_path(Path::new(OsStr::from_bytes(part)), cwd)
                    .into_os_string()
                    .into_vec()
            } else {
                part.to_vec()
            }
        };
        let mut out = name.to_vec();
        out.extend_from_slice(eq);
        match value.iter().position(|&c| c == b'=') {
            // -ffile-prefix-map=OLD=NEW and friends: each side on its own.
            Some(p) if name.ends_with(b"prefix-map") => {
                out.extend(rebase(&value[..p]));
                out.push(b'=');
                out.extend(rebase(&value[p + 1..]));
            }
            _ => out.extend(rebase(value)),
        }
        OsString::from_vec(out)
    }

    /// Whether `data` names any base by its absolute path.
    pub fn embedded_in(&self, data: &[u8]) -> bool {
        self.dirs.iter().any(|d| contains(data, d.as_os_str().as_bytes()))
    }

    /// Text for a key (preprocessed source): every absolute path under a base replaced by its path
    /// relative to `cwd` (the way arguments are keyed).
    pub fn rebase_text(&self, data: &[u8], cwd: &Path) -> Vec<u8> {
        self.rewrite_paths(data, |p| relative(cwd, p).into_os_string().into_vec())
    }

    /// A dependency listing (or the compiler's messages) for storage: every absolute path under a
    /// base replaced by a mark holding that path relative to `cwd`, so that `restore_listing`
    /// names the same file of this build's checkout.
    pub fn store_listing(&self, data: &[u8], cwd: &Path) -> Vec<u8> {
        self.rewrite_paths(data, |p| mark(relative(cwd, p).as_os_str().as_bytes()))
    }

    fn rewrite_paths(&self, data: &[u8], with: impl Fn(&Path) -> Vec<u8>) -> Vec<u8> {
        rewrite_paths(&self.dirs, data, with)
    }
}

/// `data` with each path that begins with one of `dirs` (at the start of a word: after a space, a
/// quote, a parenthesis, '=' or ':') and runs to the end of the word (a space, a quote, a
/// parenthesis, ':' or ','), replaced by `with(path)`, the path normalized.
pub fn rewrite_paths(dirs: &[PathBuf], data: &[u8], with: impl Fn(&Path) -> Vec<u8>) -> Vec<u8> {
    if !dirs.iter().any(|d| contains(data, d.as_os_str().as_bytes())) {
        return data.to_vec();
    }
    const STARTS: &[u8] = b" \t\r\n\"'(=:<,";
    const ENDS: &[u8] = b" \t\r\n\"'():,<>\0";
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        let at_word = i == 0 || STARTS.contains(&data[i - 1]);
        let base = at_word && data[i] == b'/' && {
            let rest = &data[i..];
            dirs.iter().any(|d| {
                let d = d.as_os_str().as_bytes();
                rest.starts_with(d) && rest.get(d.len()).is_none_or(|c| *c == b'/' || ENDS.contains(c))
            })
        };
        if base {
            let len = data[i..]
                .iter()
                .position(|c| ENDS.contains(c))
                .unwrap_or(data.len() - i);
            let path = normalize(Path::new(OsStr::from_bytes(&data[i..i + len])));
            out.extend(with(&path));
            i += len;
        } else {
            out.push(data[i]);
            i += 1;
        }
    }
    out
}

const MARK_OPEN: &[u8] = b"\0cachepot-base:";
const MARK_CLOSE: &[u8] = b"\0";

/// `path` (as a key names it: relative to the working directory, or `$NAME/…` for a named base)
/// inside a mark, for `restore_listing`.
pub fn mark(path: &[u8]) -> Vec<u8> {
    let mut m = MARK_OPEN.to_vec();
    m.extend_from_slice(path);
    m.extend_from_slice(MARK_CLOSE);
    m
}

/// Put this build's absolute paths back where `store_listing` left marks: each mark names a base
/// relative to the working directory, so `cwd` joined with it is this build's base.
pub fn restore_listing(data: &[u8], cwd: &Path) -> Vec<u8> {
    restore_listing_with(data, cwd, &|_| None)
}

/// As `restore_listing`, where a mark may also begin with a named base (`$NAME` or `$NAME/…`, see
/// rust/bases.rs) that `named` turns into this build's directory. A name it does not know stays
/// as it was stored.
pub fn restore_listing_with(data: &[u8], cwd: &Path, named: &dyn Fn(&str) -> Option<PathBuf>) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i..].starts_with(MARK_OPEN)
            && let Some(len) = data[i + MARK_OPEN.len()..].iter().position(|&c| c == 0)
        {
            let rel = &data[i + MARK_OPEN.len()..i + MARK_OPEN.len() + len];
            if rel.first() == Some(&b'$') {
                let (name, rest) = match rel.iter().position(|&c| c == b'/') {
                    Some(p) => (&rel[..p], &rel[p + 1..]),
                    None => (rel, &b""[..]),
                };
                match named(&String::from_utf8_lossy(name)) {
                    Some(dir) if rest.is_empty() => out.extend_from_slice(dir.as_os_str().as_bytes()),
                    Some(dir) => out.extend_from_slice(dir.join(OsStr::from_bytes(rest)).as_os_str().as_bytes()),
                    None => out.extend_from_slice(rel),
                }
            } else {
                let base = normalize(&cwd.join(OsStr::from_bytes(rel)));
                out.extend_from_slice(base.as_os_str().as_bytes());
            }
            i += MARK_OPEN.len() + len + MARK_CLOSE.len();
        } else {
            out.push(data[i]);
            i += 1;
        }
    }
    out
}

/// Remove `.` and resolve `..` lexically.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The relative path from directory `from` to `to` (both absolute and normalized).
pub fn relative(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<_> = from.components().collect();
    let to_c: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to_c).take_while(|(a, b)| a == b).count();
    let mut out = PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in &to_c[common..] {
        out.push(c.as_os_str());
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

/// Whether `needle` occurs in `haystack` (an empty needle never does).
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    // memchr's SIMD search: a miss scans its outputs (tens of MB for an rlib or a binary) once per
    // base, and a byte-by-byte window compare cost ~50 ms per base on a 20 MB rlib.
    !needle.is_empty() && memchr::memmem::find(haystack, needle).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bases() -> Bases {
        Bases::new([PathBuf::from("/home/a/proj"), PathBuf::from("/home/a/proj/build/")])
    }

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative(Path::new("/a/b/c"), Path::new("/a/d")),
            PathBuf::from("../../d")
        );
        assert_eq!(relative(Path::new("/a"), Path::new("/a")), PathBuf::from("."));
        assert_eq!(relative(Path::new("/a"), Path::new("/a/x/y")), PathBuf::from("x/y"));
    }

    #[test]
    fn arguments_under_a_base_are_keyed_relative() {
        let cwd = Path::new("/home/a/proj/build");
        let k = |a: &str| bases().key_arg(OsStr::new(a), cwd).into_string().unwrap();
        assert_eq!(k("-I/home/a/proj/include"), "-I../include");
        assert_eq!(k("/home/a/proj/src/a.c"), "../src/a.c");
        assert_eq!(k("-include=/home/a/proj/build/gen.h"), "-include=gen.h");
        assert_eq!(k("-fdebug-prefix-map=/home/a/proj/build=."), "-fdebug-prefix-map=.=.");
        assert_eq!(k("-ffile-prefix-map=/home/a/proj=/src"), "-ffile-prefix-map=..=/src");
        assert_eq!(k("-I/usr/include"), "-I/usr/include");
        assert_eq!(k("-I/home/a/projector"), "-I/home/a/projector");
        assert_eq!(k("-DX=/home/a/proj/y"), "-DX=../y");
        assert_eq!(k("-Wl,-rpath,/home/a/proj/lib"), "-Wl,-rpath,../lib");
        assert_eq!(k("-O2"), "-O2");
        // Two checkouts with the same layout key alike.
        let other = Bases::new([PathBuf::from("/srv/b/proj")]);
        assert_eq!(
            other
                .key_arg(OsStr::new("-I/srv/b/proj/include"), Path::new("/srv/b/proj/build"))
                .into_string()
                .unwrap(),
            "-I../include"
        );
    }

    #[test]
    fn a_common_parent_base_keeps_each_checkouts_own_paths() {
        // Base /tmp/bd holds two checkouts; each names its own headers after a hit.
        let b = Bases::new([PathBuf::from("/tmp/bd")]);
        let stored = b.store_listing(b"a.o: a.c /tmp/bd/one/inc/h.h\n", Path::new("/tmp/bd/one"));
        assert_eq!(
            restore_listing(&stored, Path::new("/tmp/bd/two")),
            b"a.o: a.c /tmp/bd/two/inc/h.h\n"
        );
        assert_eq!(
            b.rebase_text(b"# 1 \"/tmp/bd/one/inc/h.h\" 1\n", Path::new("/tmp/bd/one")),
            b.rebase_text(b"# 1 \"/tmp/bd/two/inc/h.h\" 1\n", Path::new("/tmp/bd/two"))
        );
    }

    #[test]
    fn listings_name_this_builds_base() {
        let a = Bases::new([PathBuf::from("/home/a/proj")]);
        let stored = a.store_listing(
            b"x.o: /home/a/proj/src/a.c /usr/include/stdio.h\n",
            Path::new("/home/a/proj/build"),
        );
        assert!(!a.embedded_in(&stored));
        let restored = restore_listing(&stored, Path::new("/srv/b/proj/build"));
        assert_eq!(restored, b"x.o: /srv/b/proj/src/a.c /usr/include/stdio.h\n");
        let other = a.store_listing(b"/home/a/projects/x.h /home/a/proj:", Path::new("/home/a/proj"));
        assert_eq!(
            restore_listing(&other, Path::new("/srv/b/proj")),
            b"/home/a/projects/x.h /srv/b/proj:"
        );
        assert_eq!(
            a.rebase_text(
                b"# 1 \"/home/a/proj/src/a.c\"\n/home/a/projx",
                Path::new("/home/a/proj/build")
            ),
            b"# 1 \"../src/a.c\"\n/home/a/projx"
        );
    }
}
