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
//! dir     := path:str state:u64 absent:u32 path:str*
//! str     := len:u32 bytes
//! ```
//! `digest` is xxh3-128 of the file's content. `stat` is a fingerprint of (device, inode, size,
//! mtime, ctime), recorded only for files older than `STAT_TRUST_AGE` when recorded; a file whose
//! stat still matches is not read again (0 = always read). `state` fingerprints a directory
//! (device, inode, mtime; 1 = the directory did not exist): while it is unchanged, no file can have
//! appeared in it, so its `absent` paths need no check. A result whose key is 64 zeros, with no
//! files, is a marker: the source's lookups go to preprocessor mode (`PREPROCESSOR_MODE`).
//! Version history: 1: first version (the marker reads as a result never found).

use crate::entry::{EntryError, Reader, decode_framed, encode_framed};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const MAGIC: &[u8; 7] = b"CPOTMAN";
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
    pub absent: Vec<PathBuf>,
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
    /// As `Holds`, but some files had to be read (their stat changed): worth re-recording.
    HoldsAfterReading,
    Fails,
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
                put_u32(&mut b, d.absent.len() as u32);
                for a in &d.absent {
                    put_str(&mut b, a.as_os_str().as_bytes());
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
                let mut absent = Vec::new();
                for _ in 0..get_u32(&mut r)? {
                    absent.push(PathBuf::from(std::ffi::OsString::from_vec(get_str(&mut r)?)));
                }
                set.dirs.push(WatchedDir { path, state, absent });
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
    /// Does this include set still describe what the compiler would read, relative to `cwd`?
    pub fn check(&self, cwd: &Path) -> Check {
        let mut read_any = false;
        for f in &self.files {
            let path = cwd.join(&f.path);
            let Ok(meta) = std::fs::metadata(&path) else {
                return Check::Fails;
            };
            if f.stat != 0 && stat_fingerprint(&meta) == f.stat {
                continue;
            }
            match crate::limits::read_regular(&path, crate::limits::INPUT_FILE) {
                Ok(data) if content_digest(&data) == f.digest => read_any = true,
                _ => return Check::Fails,
            }
        }
        for d in &self.dirs {
            if dir_state(&cwd.join(&d.path)) == d.state {
                continue;
            }
            if d.absent.iter().any(|a| cwd.join(a).symlink_metadata().is_ok()) {
                return Check::Fails;
            }
        }
        if read_any {
            Check::HoldsAfterReading
        } else {
            Check::Holds
        }
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
    let mut b = [0u8; 56];
    for (i, v) in [
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime() as u64,
        m.mtime_nsec() as u64,
        m.ctime() as u64,
        m.ctime_nsec() as u64,
    ]
    .iter()
    .enumerate()
    {
        b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    xxhash_rust::xxh3::xxh3_64(&b).max(2)
}

/// A directory's state: changes whenever an entry is added to, removed from or renamed in it.
pub fn dir_state(path: &Path) -> u64 {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            let mut b = [0u8; 32];
            for (i, v) in [m.dev(), m.ino(), m.mtime() as u64, m.mtime_nsec() as u64]
                .iter()
                .enumerate()
            {
                b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
            }
            xxhash_rust::xxh3::xxh3_64(&b).max(2)
        }
        _ => DIR_MISSING,
    }
}

/// Group must-be-absent paths by their directory, with each directory's current state.
pub fn watch_dirs(absent: &[PathBuf], cwd: &Path) -> Vec<WatchedDir> {
    let mut dirs: Vec<WatchedDir> = Vec::new();
    let mut index: std::collections::HashMap<PathBuf, usize> = std::collections::HashMap::new();
    for a in absent {
        let parent = a.parent().map(Path::to_path_buf).unwrap_or_default();
        match index.get(&parent) {
            Some(&i) => dirs[i].absent.push(a.clone()),
            None => {
                index.insert(parent.clone(), dirs.len());
                dirs.push(WatchedDir {
                    state: dir_state(&cwd.join(&parent)),
                    path: parent,
                    absent: vec![a.clone()],
                });
            }
        }
    }
    dirs
}

/// `dirs` with their states taken now: for a set that was just checked (its absent paths are
/// absent), so that the next check need not look at them one by one.
pub fn rewatch(dirs: &[WatchedDir], cwd: &Path) -> Vec<WatchedDir> {
    dirs.iter()
        .map(|d| WatchedDir {
            state: dir_state(&cwd.join(&d.path)),
            path: d.path.clone(),
            absent: d.absent.clone(),
        })
        .collect()
}

/// Does this text use a macro that expands to the time of compilation?
pub fn has_time_macros(data: &[u8]) -> bool {
    let mut i = 0;
    while let Some(pos) = data[i..].iter().position(|&b| b == b'_') {
        let at = i + pos;
        let rest = &data[at..];
        if rest.starts_with(b"__DATE__") || rest.starts_with(b"__TIME__") || rest.starts_with(b"__TIMESTAMP__") {
            return true;
        }
        i = at + 1;
    }
    false
}

/// Does this text look for headers that may not exist (`__has_include`, `__has_include_next`) or
/// continue a search past the file's own directory (`#include_next`)? What it finds changes when
/// a header appears where no dependency listing names a file: such calls get no include set.
pub fn probes_headers(data: &[u8]) -> bool {
    data.windows(13).any(|w| w == b"__has_include") || data.windows(12).any(|w| w == b"include_next")
}

/// Does this assembler text use `.include`, which the assembler reads and no listing names?
pub fn has_asm_include(data: &[u8]) -> bool {
    data.windows(8).any(|w| w == b".include")
}

/// The result key of a manifest's marker set: this source's include set cannot be recorded (a
/// header it reads looks for headers: `probes_headers`), so a lookup goes to preprocessor mode.
/// A valid key that no SHA-256 of ours gives: older versions read it as a result never found.
pub const PREPROCESSOR_MODE: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Does this text use the assembler's `.incbin`, which reads a file behind the compiler's back?
pub fn has_incbin(data: &[u8]) -> bool {
    data.windows(7).any(|w| w == b".incbin")
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
                absent: vec!["a/h.h".into()],
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
        let d = std::env::temp_dir().join(format!("cachepot-man-{}", std::process::id()));
        std::fs::create_dir_all(d.join("inc")).unwrap();
        std::fs::create_dir_all(d.join("a")).unwrap();
        std::fs::write(d.join("inc/h.h"), "x").unwrap();
        let mut s = set('0');
        s.files[0].digest = content_digest(b"x");
        s.dirs = watch_dirs(&[PathBuf::from("a/h.h")], &d);
        assert_eq!(s.check(&d), Check::HoldsAfterReading);
        std::fs::write(d.join("a/h.h"), "shadow").unwrap();
        assert_eq!(s.check(&d), Check::Fails);
        std::fs::remove_file(d.join("a/h.h")).unwrap();
        std::fs::write(d.join("inc/h.h"), "y").unwrap();
        assert_eq!(s.check(&d), Check::Fails);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn time_macros() {
        assert!(has_time_macros(b"const char *t = __TIME__;"));
        assert!(has_time_macros(b"__TIMESTAMP__"));
        assert!(!has_time_macros(b"__DATE_ __TIM__ _DATE__"));
    }
}
