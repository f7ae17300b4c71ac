//! Direct-mode manifests. A manifest is stored under a key of everything known before compiling
//! (compiler, arguments, source, environment; see compile.rs) and lists, newest first, the include
//! sets seen with that key: each header read, with its content hash, and the paths that must stay
//! absent for the compiler to find the same headers again. When a set still holds, its result key
//! is known without running the preprocessor.
//!
//! Grammar (inside the framing of entry.rs, magic "CPOTMAN"; integers little-endian):
//! ```text
//! body    := count:u32 result*
//! result  := key:str files:u32 file* dirs:u32 dir*
//! file    := path:str digest:u128 stat:u64
//! dir     := path:str state:u64 names:u32 name:str*
//! str     := len:u32 bytes
//! ```
//! `digest` is xxh3-128 of the file's content. `stat` is a fingerprint of (device, inode, size,
//! mtime, ctime), recorded only for files older than `STAT_TRUST_AGE` when recorded; a file whose
//! stat still matches is not read again (0 = always read). A `dir` is the deepest directory that
//! existed on the way to a path that must stay absent, and `names` are the first components of
//! those paths below it, absent from it when recorded (`a/sys/h.h` with no `a/sys` is `a` with the
//! name `sys`). `state` fingerprints the directory (device, inode, mtime, ctime; 1 = it did not
//! exist; 0 = it changed too recently to be trusted): while it is unchanged, no entry can have
//! appeared in it, so a hit costs one `stat` per watched directory. When it changed, it is listed
//! once and a name that may be listed is looked up; a name that exists now fails the set (a
//! new `a/sys/` may hold `h.h`: a miss, never a false hit).
//! The `__has_include` probes of the build's own files need no record of their own: a probed
//! header that exists is a `file` (its content hashed like a header's), and every place where
//! one could be found but is not is a watched name (compiler/probes.rs).
//! A result whose key is 64 zeros, with no files, is a marker: the source's lookups go to
//! preprocessor mode (`PREPROCESSOR_MODE`).
//!
//! Version history (`FORMAT`, keyed into the manifest key, so versions never read each other's):
//! 1: a `dir` was each absent path's parent, with the full absent paths. 2: the deepest existing
//! directory with first components (a fresh build dir's hit went from ~8,500 stats to ~300).
//! 3: sets of sources whose files probe with `__has_include` are recorded (before, such a source
//! had the `PREPROCESSOR_MODE` marker; a new version leaves those markers behind).

use crate::entry::{EntryError, Reader, decode_framed, encode_framed};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const MAGIC: &[u8; 7] = b"CPOTMAN";
/// The manifest format version, fed into every manifest key (compile.rs).
pub const FORMAT: u32 = 3;
/// Include sets kept per manifest; older ones are dropped.
pub const MAX_RESULTS: usize = 12;
/// Files modified more recently than this before the compile may still be changing within the
/// file system's timestamp resolution; their stat is not trusted.
const STAT_TRUST_AGE: Duration = Duration::from_secs(2);
const DIR_MISSING: u64 = 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncludeFile {
    pub path: PathBuf,
    pub digest: u128,
    pub stat: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedDir {
    pub path: PathBuf,
    pub state: u64,
    /// Entry names that must not appear in it.
    pub names: Vec<std::ffi::OsString>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultSet {
    pub result_key: String,
    pub files: Vec<IncludeFile>,
    pub dirs: Vec<WatchedDir>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    pub results: Vec<ResultSet>,
}

/// What checking a result set against the file system found.
#[derive(Debug, PartialEq, Eq)]
pub enum Check {
    /// Every file has its recorded content and no shadowing file appeared.
    Holds,
    /// As `Holds`, and some stats were learned again (a file read, a directory listed) that can be
    /// trusted from now on: the set with them, and what learning them cost this time.
    HoldsRefreshed(ResultSet, Relearned),
    Fails,
}

/// What a check had to do beyond one stat per file and directory.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Relearned {
    pub files: usize,
    pub bytes: u64,
    pub dirs: usize,
    /// Entries of the directories listed.
    pub entries: usize,
}

impl Relearned {
    /// Is recording the refreshed set (rewriting the manifest: compress, write, rename, and the
    /// old file's blocks freed) cheaper than doing this again on the next hits? Not for one small
    /// generated header in a fresh build dir, which CI sees once per build dir; yes after a
    /// checkout or `touch` that changed many headers' stats, or a big directory (`/usr/include`
    /// after a package upgrade) that every hit would list again.
    pub fn worth_recording(&self) -> bool {
        self.files + self.dirs >= 8 || self.bytes >= 256 * 1024 || self.entries >= 512
    }
}

impl Manifest {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::new();
        put_u32(&mut b, self.results.len() as u32);
        for r in &self.results {
            put_str(&mut b, r.result_key.as_bytes());
            put_u32(&mut b, r.files.len() as u32);
            for f in &r.files {
                put_str(&mut b, f.path.as_os_str().as_bytes());
                b.extend_from_slice(&f.digest.to_le_bytes());
                b.extend_from_slice(&f.stat.to_le_bytes());
            }
            put_u32(&mut b, r.dirs.len() as u32);
            for d in &r.dirs {
                put_str(&mut b, d.path.as_os_str().as_bytes());
                b.extend_from_slice(&d.state.to_le_bytes());
                put_u32(&mut b, d.names.len() as u32);
                for n in &d.names {
                    put_str(&mut b, n.as_bytes());
                }
            }
        }
        encode_framed(MAGIC, &b)
    }

    pub fn decode(bytes: &[u8]) -> Result<Manifest, EntryError> {
        let body = decode_framed(MAGIC, bytes)?;
        let mut r = Reader { buf: &body, pos: 0 };
        let mut m = Manifest::default();
        for _ in 0..get_u32(&mut r)? {
            let key = String::from_utf8(get_str(&mut r)?).map_err(|_| EntryError::Malformed("result key"))?;
            if key.len() != 64 || !key.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(EntryError::Malformed("result key"));
            }
            let mut set = ResultSet {
                result_key: key,
                files: Vec::new(),
                dirs: Vec::new(),
            };
            for _ in 0..get_u32(&mut r)? {
                let path = PathBuf::from(std::ffi::OsString::from_vec(get_str(&mut r)?));
                let digest = u128::from_le_bytes(r.take(16)?.try_into().unwrap());
                let stat = u64::from_le_bytes(r.take(8)?.try_into().unwrap());
                set.files.push(IncludeFile { path, digest, stat });
            }
            for _ in 0..get_u32(&mut r)? {
                let path = PathBuf::from(std::ffi::OsString::from_vec(get_str(&mut r)?));
                let state = u64::from_le_bytes(r.take(8)?.try_into().unwrap());
                let mut names = Vec::new();
                for _ in 0..get_u32(&mut r)? {
                    let name = get_str(&mut r)?;
                    // One component: never a path that could reach outside the directory.
                    if name.is_empty() || name.contains(&b'/') || name == b"." || name == b".." {
                        return Err(EntryError::Malformed("watched name"));
                    }
                    names.push(std::ffi::OsString::from_vec(name));
                }
                set.dirs.push(WatchedDir { path, state, names });
            }
            m.results.push(set);
        }
        if r.pos != body.len() {
            return Err(EntryError::Malformed("trailing bytes"));
        }
        Ok(m)
    }

    /// Put `set` first, dropping an older set with the same result key and the oldest beyond
    /// `MAX_RESULTS`.
    pub fn add(&mut self, set: ResultSet) {
        self.results.retain(|r| r.result_key != set.result_key);
        self.results.insert(0, set);
        self.results.truncate(MAX_RESULTS);
    }
}

impl ResultSet {
    /// Does this include set still describe what the compiler would read, relative to `cwd`? Stats
    /// learned again are trusted only when older than `STAT_TRUST_AGE` before `start`.
    pub fn check(&self, cwd: &Path, start: SystemTime) -> Check {
        let mut fresh: Option<ResultSet> = None;
        let mut cost = Relearned::default();
        for (i, f) in self.files.iter().enumerate() {
            let path = cwd.join(&f.path);
            let Ok(meta) = std::fs::metadata(&path) else {
                return Check::Fails;
            };
            if f.stat != 0 && stat_fingerprint(&meta) == f.stat {
                continue;
            }
            match crate::limits::read_regular(&path, crate::limits::INPUT_FILE) {
                Ok(data) if content_digest(&data) == f.digest => {
                    cost.files += 1;
                    cost.bytes += data.len() as u64;
                    let stat = trusted_stat(&meta, start);
                    if stat != 0 {
                        fresh.get_or_insert_with(|| self.clone()).files[i].stat = stat;
                    }
                }
                _ => return Check::Fails,
            }
        }
        for (i, d) in self.dirs.iter().enumerate() {
            let dir = cwd.join(&d.path);
            // Stat before listing: an entry made after the stat changes the state recorded below.
            let meta = std::fs::metadata(&dir).ok().filter(|m| m.is_dir());
            let now = meta.as_ref().map_or(DIR_MISSING, dir_fingerprint);
            if d.state != 0 && now == d.state {
                continue;
            }
            if meta.is_some() && !all_absent(&dir, &d.names, &mut cost) {
                return Check::Fails;
            }
            cost.dirs += 1;
            // Gone (or no longer a directory): nothing beneath it can be found.
            let state = meta.as_ref().map_or(DIR_MISSING, |m| trusted_dir_state(m, start));
            if state != 0 && state != d.state {
                fresh.get_or_insert_with(|| self.clone()).dirs[i].state = state;
            }
        }
        match fresh {
            Some(set) => Check::HoldsRefreshed(set, cost),
            None => Check::Holds,
        }
    }
}

/// Are all `names` still absent from the directory `dir`? It is listed once, and only a name the
/// listing may hold is looked up (the lookup is the truth; the listing saves one per name).
fn all_absent(dir: &Path, names: &[std::ffi::OsString], cost: &mut Relearned) -> bool {
    let listing = Listing::read(dir);
    cost.entries += listing.as_ref().map_or(0, |l| l.names.len());
    names.iter().all(|n| {
        let maybe = listing.as_ref().is_none_or(|l| l.may_hold(n.as_bytes()));
        !maybe || dir.join(n).symlink_metadata().is_err()
    })
}

/// A directory's entry names, lower-cased, to tell which names it cannot hold. Case-insensitive
/// so that a case-folding directory (ext4 `+F`) is never read as lacking a name its lookup finds;
/// a directory with a non-ASCII name may fold it onto anything, so it is taken to hold every name.
struct Listing {
    names: std::collections::HashSet<Vec<u8>>,
    non_ascii: bool,
}

impl Listing {
    fn read(dir: &Path) -> Option<Listing> {
        let mut l = Listing {
            names: std::collections::HashSet::new(),
            non_ascii: false,
        };
        for e in std::fs::read_dir(dir).ok()? {
            let name = e.ok()?.file_name();
            let b = name.as_bytes();
            l.non_ascii |= !b.is_ascii();
            l.names.insert(b.to_ascii_lowercase());
        }
        Some(l)
    }

    fn may_hold(&self, name: &[u8]) -> bool {
        self.non_ascii || !name.is_ascii() || self.names.contains(&name.to_ascii_lowercase())
    }
}

/// The content hash recorded for include files.
pub fn content_digest(data: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(data)
}

/// The stat fingerprint of a file, or 0 when it changed too recently before `start` to be trusted.
pub fn trusted_stat(meta: &std::fs::Metadata, start: SystemTime) -> u64 {
    let limit = start.checked_sub(STAT_TRUST_AGE).unwrap_or(SystemTime::UNIX_EPOCH);
    if modified_or_changed_after(meta, limit) {
        0
    } else {
        stat_fingerprint(meta)
    }
}

/// Was the file modified or its inode changed after `t`?
pub fn modified_or_changed_after(meta: &std::fs::Metadata, t: SystemTime) -> bool {
    let t = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let as_dur = |s: i64, ns: i64| Duration::new(s.max(0) as u64, ns.clamp(0, 999_999_999) as u32);
    as_dur(meta.mtime(), meta.mtime_nsec()) >= t || as_dur(meta.ctime(), meta.ctime_nsec()) >= t
}

fn stat_fingerprint(m: &std::fs::Metadata) -> u64 {
    fingerprint(&[
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime() as u64,
        m.mtime_nsec() as u64,
        m.ctime() as u64,
        m.ctime_nsec() as u64,
    ])
}

/// A directory's state: changes whenever an entry is added to, removed from or renamed in it.
fn dir_fingerprint(m: &std::fs::Metadata) -> u64 {
    fingerprint(&[
        m.dev(),
        m.ino(),
        m.mtime() as u64,
        m.mtime_nsec() as u64,
        m.ctime() as u64,
        m.ctime_nsec() as u64,
    ])
}

/// XXH3-64 of up to 8 `fields` as little-endian bytes, kept above 1 (0 and 1 are reserved: never
/// trusted, did not exist). On the stack: this runs for every file and directory a hit checks.
fn fingerprint(fields: &[u64]) -> u64 {
    let mut b = [0u8; 64];
    for (i, v) in fields.iter().enumerate() {
        b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    xxhash_rust::xxh3::xxh3_64(&b[..fields.len() * 8]).max(2)
}

/// A directory's state, or 0 when it changed too recently before `start` to be trusted: an entry
/// made in the same timestamp tick as the last change would leave the state as recorded.
fn trusted_dir_state(m: &std::fs::Metadata, start: SystemTime) -> u64 {
    let limit = start.checked_sub(STAT_TRUST_AGE).unwrap_or(SystemTime::UNIX_EPOCH);
    if modified_or_changed_after(m, limit) {
        0
    } else {
        dir_fingerprint(m)
    }
}

/// Group must-be-absent paths (relative to `cwd` or absolute) by the deepest directory that exists
/// on the way to each, as the first component below it, with that directory's state (0 when it
/// changed after `start` less `STAT_TRUST_AGE`). Candidates under a missing `sys/` are then
/// covered by one stat of the directory that would have to hold it, not one failing stat per path.
pub fn watch_dirs(absent: &[PathBuf], cwd: &Path, start: SystemTime) -> Vec<WatchedDir> {
    use std::collections::{HashMap, HashSet};
    let mut dirs: Vec<WatchedDir> = Vec::new();
    let mut index: HashMap<PathBuf, (usize, HashSet<std::ffi::OsString>)> = HashMap::new();
    // Directory (as recorded) → its metadata when it exists as a directory.
    let mut seen: HashMap<PathBuf, Option<std::fs::Metadata>> = HashMap::new();
    let mut lookup = |p: &Path| -> Option<std::fs::Metadata> {
        seen.entry(p.to_path_buf())
            .or_insert_with(|| std::fs::metadata(cwd.join(p)).ok().filter(|m| m.is_dir()))
            .clone()
    };
    for a in absent {
        let parent = a.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut watched = parent.clone();
        let mut state = DIR_MISSING;
        let mut at = Some(parent.as_path());
        while let Some(p) = at {
            if let Some(m) = lookup(p) {
                watched = p.to_path_buf();
                state = trusted_dir_state(&m, start);
                break;
            }
            // "" is the working directory itself; above it there is nothing to walk to.
            at = p.parent().filter(|_| !p.as_os_str().is_empty());
        }
        let name = match a.strip_prefix(&watched).ok().and_then(|r| r.components().next()) {
            Some(std::path::Component::Normal(n)) => n.to_os_string(),
            // `x/..`-like remainders: watch the path's own parent, never trusted, for its name.
            _ => match (a.parent(), a.file_name()) {
                (Some(p), Some(n)) => {
                    watched = p.to_path_buf();
                    state = 0;
                    n.to_os_string()
                }
                _ => continue,
            },
        };
        let (i, names) = index.entry(watched.clone()).or_insert_with(|| {
            dirs.push(WatchedDir {
                state,
                path: watched,
                names: Vec::new(),
            });
            (dirs.len() - 1, HashSet::new())
        });
        if names.insert(name.clone()) {
            dirs[*i].names.push(name);
        }
    }
    dirs
}

/// Does this text use a macro that expands to the time of compilation?
pub fn has_time_macros(data: &[u8]) -> bool {
    // `__TIME__` and `__TIMESTAMP__` share their first six bytes.
    contains(data, b"__DATE__")
        || memchr::memmem::find_iter(data, b"__TIME").any(|at| {
            let rest = &data[at + 6..];
            rest.starts_with(b"__") || rest.starts_with(b"STAMP__")
        })
}

/// Whether `needle` occurs in `data`. These scans read every source and header a call reads (a
/// 9 MB amalgamation on each hit): memchr's SIMD search, not a byte-by-byte window compare.
fn contains(data: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(data, needle).is_some()
}

/// Does this text look for headers that may not exist (`__has_include`, `__has_include_next`) or
/// continue a search past the file's own directory (`#include_next`)? What it finds changes when
/// a header appears where no dependency listing names a file: a call whose files do gets an
/// include set only where compiler/probes.rs can follow every probe (a cheap test before it).
pub fn probes_headers(data: &[u8]) -> bool {
    contains(data, b"__has_include") || contains(data, b"include_next")
}

/// Does this assembler text use `.include`, which the assembler reads and no listing names?
pub fn has_asm_include(data: &[u8]) -> bool {
    contains(data, b".include")
}

/// The result key of a manifest's marker set: this source's include set cannot be recorded (a
/// file it reads looks for headers in a way that cannot be followed), so a lookup goes to
/// preprocessor mode.
/// A valid key that no SHA-256 of ours gives: older versions read it as a result never found.
pub const PREPROCESSOR_MODE: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Does this text use the assembler's `.incbin`, which reads a file behind the compiler's back?
pub fn has_incbin(data: &[u8]) -> bool {
    contains(data, b".incbin")
}

fn put_u32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_le_bytes());
}

fn put_str(b: &mut Vec<u8>, s: &[u8]) {
    put_u32(b, s.len() as u32);
    b.extend_from_slice(s);
}

fn get_u32(r: &mut Reader) -> Result<u32, EntryError> {
    Ok(u32::from_le_bytes(r.take(4)?.try_into().unwrap()))
}

fn get_str(r: &mut Reader) -> Result<Vec<u8>, EntryError> {
    let n = get_u32(r)? as usize;
    Ok(r.take(n)?.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(key: char) -> ResultSet {
        ResultSet {
            result_key: key.to_string().repeat(64),
            files: vec![IncludeFile {
                path: "inc/h.h".into(),
                digest: 7,
                stat: 0,
            }],
            dirs: vec![WatchedDir {
                path: "a".into(),
                state: 1,
                names: vec!["h.h".into()],
            }],
        }
    }

    #[test]
    fn round_trip_and_bound() {
        let mut m = Manifest::default();
        for c in "0123456789abcdef".chars() {
            m.add(set(c));
        }
        assert_eq!(m.results.len(), MAX_RESULTS);
        assert_eq!(m.results[0].result_key, "f".repeat(64));
        assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cachepot-man-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A start time that makes everything on disk old enough to be trusted, as if the files had
    /// been written long before the call.
    fn later() -> SystemTime {
        SystemTime::now() + Duration::from_secs(10)
    }

    #[test]
    fn header_probes_and_the_preprocessor_mode_marker() {
        assert!(probes_headers(b"#if __has_include(<x.h>)"));
        assert!(probes_headers(b"#if __has_include_next(<x.h>)"));
        assert!(probes_headers(b"#  include_next <x.h>"));
        assert!(!probes_headers(b"#include <x.h>"));
        assert!(has_asm_include(b"\t.include \"v.inc\"\n"));
        let mut m = Manifest::default();
        m.add(ResultSet {
            result_key: PREPROCESSOR_MODE.to_string(),
            files: Vec::new(),
            dirs: Vec::new(),
        });
        assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
    }

    #[test]
    fn check_detects_changes_and_shadowing() {
        let d = temp_dir("check");
        std::fs::create_dir_all(d.join("inc")).unwrap();
        std::fs::create_dir_all(d.join("a")).unwrap();
        std::fs::write(d.join("inc/h.h"), "x").unwrap();
        let now = SystemTime::now();
        let mut s = set('0');
        s.files[0].digest = content_digest(b"x");
        s.dirs = watch_dirs(&[PathBuf::from("a/h.h")], &d, now);
        assert_eq!(s.dirs[0].state, 0, "a directory made just now is not trusted");
        // Read and listed again, but nothing is old enough to record.
        assert_eq!(s.check(&d, now), Check::Holds);
        std::fs::write(d.join("a/h.h"), "shadow").unwrap();
        assert_eq!(s.check(&d, now), Check::Fails);
        std::fs::remove_file(d.join("a/h.h")).unwrap();
        std::fs::write(d.join("inc/h.h"), "y").unwrap();
        assert_eq!(s.check(&d, now), Check::Fails);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_header_in_a_new_subdirectory_of_a_watched_directory_fails() {
        let d = temp_dir("nested");
        std::fs::create_dir_all(d.join("early")).unwrap();
        std::fs::create_dir_all(d.join("late/sys")).unwrap();
        std::fs::write(d.join("late/sys/h.h"), "x").unwrap();
        let s = ResultSet {
            result_key: "0".repeat(64),
            files: Vec::new(),
            dirs: watch_dirs(
                &[PathBuf::from("early/sys/h.h"), PathBuf::from("early/h2.h")],
                &d,
                later(),
            ),
        };
        // `early/sys` does not exist: `early` is watched for both paths, with one trusted state.
        assert_eq!(s.dirs.len(), 1);
        assert_eq!(s.dirs[0].path, Path::new("early"));
        assert_eq!(s.dirs[0].names, ["sys", "h2.h"]);
        assert!(s.dirs[0].state > 1);
        assert_eq!(s.check(&d, later()), Check::Holds);
        // An unrelated entry: listed, still absent, and the new state is learned.
        std::fs::write(d.join("early/other.h"), "").unwrap();
        let Check::HoldsRefreshed(fresh, _) = s.check(&d, later()) else {
            panic!("expected a refreshed set")
        };
        assert_ne!(fresh.dirs[0].state, s.dirs[0].state);
        assert_eq!(fresh.check(&d, later()), Check::Holds);
        // A new `sys/` may hold `h.h`, found in front of `late/sys/h.h`: the set fails (a miss
        // then records `early/sys` itself).
        std::fs::create_dir_all(d.join("early/sys")).unwrap();
        assert_eq!(fresh.check(&d, later()), Check::Fails);
        assert_eq!(s.check(&d, later()), Check::Fails);
        std::fs::write(d.join("early/sys/h.h"), "shadow").unwrap();
        let s = ResultSet {
            result_key: "0".repeat(64),
            files: Vec::new(),
            dirs: watch_dirs(&[PathBuf::from("early/sys/h2.h")], &d, later()),
        };
        assert_eq!(s.dirs[0].path, Path::new("early/sys"));
        assert_eq!(s.check(&d, later()), Check::Holds);
        std::fs::write(d.join("early/sys/h2.h"), "shadow").unwrap();
        assert_eq!(s.check(&d, later()), Check::Fails);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_replaced_or_removed_directory_is_not_mistaken_for_the_recorded_one() {
        let d = temp_dir("replaced");
        std::fs::create_dir_all(d.join("early")).unwrap();
        let s = ResultSet {
            result_key: "0".repeat(64),
            files: Vec::new(),
            dirs: watch_dirs(&[PathBuf::from("early/h.h")], &d, later()),
        };
        std::fs::remove_dir_all(d.join("early")).unwrap();
        // Gone: nothing beneath it can be found.
        assert!(matches!(s.check(&d, later()), Check::HoldsRefreshed(..)));
        std::fs::create_dir_all(d.join("early")).unwrap();
        std::fs::write(d.join("early/h.h"), "shadow").unwrap();
        assert_eq!(s.check(&d, later()), Check::Fails);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn refreshing_is_recorded_when_it_saves_work() {
        let base = || Relearned {
            files: 1,
            bytes: 2000,
            dirs: 1,
            entries: 4,
        };
        assert!(!base().worth_recording());
        let with = |f: fn(&mut Relearned)| {
            let mut r = base();
            f(&mut r);
            r.worth_recording()
        };
        assert!(with(|r| r.files = 7));
        assert!(with(|r| r.bytes = 1 << 20));
        assert!(with(|r| r.entries = 1500));
    }

    #[test]
    fn a_name_listed_only_in_another_case_is_looked_up() {
        let d = temp_dir("case-lookup");
        std::fs::create_dir_all(d.join("early")).unwrap();
        std::fs::write(d.join("early/String.h"), "").unwrap();
        let s = ResultSet {
            result_key: "0".repeat(64),
            files: Vec::new(),
            dirs: watch_dirs(&[PathBuf::from("early/string.h")], &d, SystemTime::now()),
        };
        // On a case-sensitive file system `early/string.h` is still absent: not a miss forever.
        assert_eq!(s.check(&d, SystemTime::now()), Check::Holds);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn names_are_single_components() {
        let mut m = Manifest::default();
        let mut bad = set('0');
        bad.dirs[0].names = vec!["../h.h".into()];
        m.add(bad);
        assert!(Manifest::decode(&m.encode()).is_err());
    }

    #[test]
    fn listing_is_case_insensitive() {
        let d = temp_dir("case");
        std::fs::create_dir_all(d.join("early")).unwrap();
        std::fs::write(d.join("early/H.h"), "").unwrap();
        let l = Listing::read(&d.join("early")).unwrap();
        assert!(l.may_hold(b"h.h") && l.may_hold(b"H.H") && !l.may_hold(b"g.h"));
        std::fs::write(d.join("early/\u{e9}.h"), "").unwrap();
        assert!(Listing::read(&d.join("early")).unwrap().may_hold(b"g.h"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn time_macros() {
        assert!(has_time_macros(b"const char *t = __TIME__;"));
        assert!(has_time_macros(b"__TIMESTAMP__"));
        assert!(!has_time_macros(b"__DATE_ __TIM__ _DATE__"));
        assert!(has_time_macros(b"x __DATE__"));
        assert!(has_time_macros(b"__TIMEX __TIME__"));
        assert!(!has_time_macros(b"__TIMEX __TIMESTAMP_ __TIME"));
        assert!(has_incbin(b"  .incbin \"blob\"") && !has_incbin(b".incbi"));
    }
}
