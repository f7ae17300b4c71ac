//! Who the compiler is, by content: the digest of the files that produce the output (the driver
//! and the programs it runs; for rustc, rustc, its driver library and the target's standard
//! library). Two installs of the same bytes — another machine, a re-installed toolchain, a fresh
//! CI image — agree; any changed program differs. A file's digest is memoized per machine by its
//! (device, inode, size, mtime, ctime), so a call pays a `stat` per file, not a hash.
//!
//! The digest is XXH3-128, not SHA-256: it is computed here, of files on this machine, so a
//! deliberate collision would need someone who can already replace the compiler; and a rustup
//! toolchain is ~450 MB, which a fresh CI runner hashes on its first call (XXH3 reads it at memory
//! speed, SHA-256 at a fraction of it). Calls that start together on a fresh machine do not all
//! hash: the first takes `identity/lock` and the others wait (at most `LOCK_WAIT`) and read its
//! result.
//!
//! Memo grammar (`<cache dir>/identity/digests`, replaced atomically; unknown lines are ignored,
//! and so are the SHA-256 lines of earlier versions):
//! ```text
//! line := dev ino size mtime_s mtime_ns ctime_s ctime_ns xxh3_128_hex path_hex "\n"
//! ```
//! A lost update (two calls adding at once) only costs a second hash later.

use crate::key::{KeyBuilder, hex, unhex};
use std::collections::HashMap;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// How a compiler is identified in keys (`CACHEPOT_COMPILER_CHECK`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CompilerCheck {
    /// The content of its files (the default): shared between machines with the same bytes.
    #[default]
    Content,
    /// Paths, sizes and mtimes: no hashing ever, but a re-install misses.
    Mtime,
    /// A fixed text the user vouches for (a CI pins its image's identity).
    String(String),
}

impl CompilerCheck {
    pub fn parse(s: &str) -> Option<CompilerCheck> {
        match s.trim() {
            "content" => Some(CompilerCheck::Content),
            "mtime" => Some(CompilerCheck::Mtime),
            t => t
                .strip_prefix("string:")
                .filter(|v| !v.is_empty())
                .map(|v| CompilerCheck::String(v.to_string())),
        }
    }
}

impl std::fmt::Display for CompilerCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CompilerCheck::Content => f.write_str("content"),
            CompilerCheck::Mtime => f.write_str("mtime"),
            CompilerCheck::String(s) => write!(f, "string:{s}"),
        }
    }
}

/// The identity text of a compiler made of `files` (each named by a role that does not depend on
/// where it is installed, e.g. "cc1" or "lib/librustc_driver-….so"), for keys.
pub fn of_files(cache_dir: &Path, check: &CompilerCheck, files: &[(String, PathBuf)]) -> std::io::Result<String> {
    match check {
        CompilerCheck::String(s) => Ok(format!("string:{s}")),
        CompilerCheck::Mtime => {
            let mut id = String::from("mtime\n");
            for (_, path) in files {
                let m = std::fs::metadata(path)?;
                id.push_str(&format!(
                    "{} size={} mtime={}.{}\n",
                    path.display(),
                    m.size(),
                    m.mtime(),
                    m.mtime_nsec()
                ));
            }
            Ok(id)
        }
        CompilerCheck::Content => {
            let mut memo = Memo::load(cache_dir);
            // The common case, every file known by its stat data: one stat per file.
            if let Some(digests) = memo.all_known(files) {
                let mut kb = KeyBuilder::new("compiler content", false);
                for ((role, _), digest) in files.iter().zip(digests) {
                    kb.add_digest(role, digest);
                }
                return Ok(format!("content:{}", kb.finish().0));
            }
            let _lock = {
                // Something to hash: once per machine, whoever comes first.
                let lock = MemoLock::take(cache_dir);
                memo = Memo::load(cache_dir);
                lock
            };
            let mut kb = KeyBuilder::new("compiler content", false);
            for (role, path) in files {
                kb.add_digest(role, &memo.digest(path)?);
            }
            memo.save();
            Ok(format!("content:{}", kb.finish().0))
        }
    }
}

/// The files that make up the compiler whose driver is `driver`, as `probe` finds them (by running
/// the driver), remembered in the cache dir until the driver itself changes: a hit never runs it.
pub fn programs(
    cache_dir: &Path,
    driver: &Path,
    probe: impl FnOnce() -> std::io::Result<Vec<(String, PathBuf)>>,
) -> std::io::Result<Vec<(String, PathBuf)>> {
    programs_for(cache_dir, "", driver, probe)
}

/// `programs` for another use of the same driver (`purpose`: "linker" for the programs gcc runs to
/// link, rust/link.rs), remembered apart: one list must never stand for the other.
pub fn programs_for(
    cache_dir: &Path,
    purpose: &str,
    driver: &Path,
    probe: impl FnOnce() -> std::io::Result<Vec<(String, PathBuf)>>,
) -> std::io::Result<Vec<(String, PathBuf)>> {
    let m = std::fs::metadata(driver)?;
    let k = StatKey::of(&m);
    let stamp = format!(
        "{} {} {} {} {} {} {} {}",
        k.dev,
        k.ino,
        k.size,
        k.mtime.0,
        k.mtime.1,
        k.ctime.0,
        k.ctime.1,
        hex(driver.as_os_str().as_bytes())
    );
    let name = hex(&xxhash_rust::xxh3::xxh3_128(driver.as_os_str().as_bytes()).to_le_bytes());
    let file = match purpose {
        "" => cache_dir.join("identity").join(format!("programs-{name}")),
        p => cache_dir.join("identity").join(format!("programs-{p}-{name}")),
    };
    // Read with its size as the buffer's (a memo grows to KBs: one read, not a doubling series).
    let text = crate::limits::read_text(&file, MAX_MEMO).unwrap_or_default();
    let mut lines = text.lines();
    if lines.next() == Some(stamp.as_str()) {
        let list: Option<Vec<(String, PathBuf)>> = lines
            .map(|l| {
                let (role, path) = l.rsplit_once(' ')?;
                Some((
                    role.to_string(),
                    PathBuf::from(std::ffi::OsStr::from_bytes(&unhex(path)?)),
                ))
            })
            .collect();
        if let Some(list) = list.filter(|l| !l.is_empty()) {
            return Ok(list);
        }
    }
    let list = probe()?;
    let mut out = format!("{stamp}\n");
    for (role, path) in &list {
        out.push_str(&format!("{role} {}\n", hex(path.as_os_str().as_bytes())));
    }
    if let Err(e) = crate::atomic::write(&file, out.as_bytes()) {
        log::debug!(target: "identity", "cannot save {}: {e}", file.display());
    }
    Ok(list)
}

/// Does this argument ask for the host CPU (`-march=native`, `-mcpu=native`, `-mtune=native`,
/// rustc's `target-cpu=native`)?
pub fn is_native(arg: &std::ffi::OsStr) -> bool {
    let a = arg.as_bytes();
    a.ends_with(b"=native")
        && (a.starts_with(b"-march=")
            || a.starts_with(b"-mcpu=")
            || a.starts_with(b"-mtune=")
            || a.ends_with(b"target-cpu=native"))
}

/// What the `native` options mean for this compiler on this CPU, as `probe` learns it from the
/// compiler; remembered by (compiler identity, options, CPU signature), so a hit runs nothing and
/// a cache dir shared by two machines never mixes their CPUs up.
pub fn resolve_native(
    cache_dir: &Path,
    identity: &str,
    options: &[&std::ffi::OsStr],
    probe: impl FnOnce() -> Option<String>,
) -> Option<String> {
    let mut kb = KeyBuilder::new("native", false);
    kb.add_str("compiler", identity);
    kb.add_str("cpu", &cpu_signature());
    for o in options {
        kb.add_os("option", o);
    }
    let name = kb.finish().0;
    let file = cache_dir.join("identity").join(format!("native-{}", &name[..32]));
    if let Ok(f) = std::fs::File::open(&file) {
        let mut text = String::new();
        if f.take(MAX_MEMO).read_to_string(&mut text).is_ok() && !text.is_empty() {
            return Some(text);
        }
    }
    let resolved = probe().filter(|r| !r.is_empty())?;
    if let Err(e) = crate::atomic::write(&file, resolved.as_bytes()) {
        log::debug!(target: "identity", "cannot save {}: {e}", file.display());
    }
    Some(resolved)
}

/// The CPU this runs on: vendor, family/model/stepping and feature bits (CPUID leaves 0, 1, 7),
/// read without a system call.
pub fn cpu_signature() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__cpuid, __cpuid_count};
        let (l0, l1, l7) = (__cpuid(0), __cpuid(1), __cpuid_count(7, 0));
        format!(
            "x86_64 {:08x}{:08x}{:08x} {:08x} {:08x}{:08x} {:08x}{:08x}{:08x}",
            l0.ebx, l0.edx, l0.ecx, l1.eax, l1.ecx, l1.edx, l7.ebx, l7.ecx, l7.edx
        )
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // Elsewhere the kernel's description of the CPU (read only when `native` is used).
        std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default()
    }
}

/// Hex digits of a memo digest (XXH3-128).
const DIGEST_HEX: usize = 32;

/// XXH3-128 of a file (hex), read in blocks: no buffer the size of the file (a 100 MB rlib read
/// whole costs its page faults, more than hashing it). The one file digest of compilers and of
/// the Rust flow's sources, crates and linker inputs.
pub fn content_digest(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    let mut buf = vec![0u8; 256 << 10];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hex(&h.digest128().to_be_bytes()))
}

/// How long a call waits for another that is hashing the same compiler before hashing it too.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// `identity/lock`, held while a call hashes compiler files (released when dropped, or when the
/// process dies). Not getting it — no lock file possible, or a holder stopped for longer than
/// `LOCK_WAIT` — only means hashing without it.
struct MemoLock {
    _held: Option<std::fs::File>,
}

impl MemoLock {
    fn take(cache_dir: &Path) -> MemoLock {
        let path = cache_dir.join("identity").join("lock");
        let _ = std::fs::create_dir_all(cache_dir.join("identity"));
        let Ok(f) = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
        else {
            return MemoLock { _held: None };
        };
        let start = std::time::Instant::now();
        loop {
            match f.try_lock() {
                Ok(()) => return MemoLock { _held: Some(f) },
                Err(std::fs::TryLockError::WouldBlock) if start.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(_) => {
                    log::debug!(target: "identity", "hashing without {}", path.display());
                    return MemoLock { _held: None };
                }
            }
        }
    }
}

/// The memo table of file digests.
struct Memo {
    file: PathBuf,
    entries: HashMap<StatKey, (String, Vec<u8>)>,
    changed: bool,
}

/// What identifies one version of a file on this machine without reading it.
#[derive(Hash, PartialEq, Eq, Clone, Copy)]
struct StatKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl StatKey {
    fn of(m: &std::fs::Metadata) -> StatKey {
        StatKey {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// The memo is small (a line per compiler file); anything larger is not ours.
const MAX_MEMO: u64 = 4 << 20;

impl Memo {
    fn load(cache_dir: &Path) -> Memo {
        let file = cache_dir.join("identity").join("digests");
        let mut entries = HashMap::new();
        let text = crate::limits::read_text(&file, MAX_MEMO).unwrap_or_default();
        for line in text.lines() {
            let w: Vec<&str> = line.split(' ').collect();
            let [dev, ino, size, ms, mn, cs, cn, digest, path] = w.as_slice() else {
                continue;
            };
            let n = |s: &str| s.parse::<i64>().ok();
            let (Some(dev), Some(ino), Some(size), Some(ms), Some(mn), Some(cs), Some(cn)) =
                (n(dev), n(ino), n(size), n(ms), n(mn), n(cs), n(cn))
            else {
                continue;
            };
            if digest.len() != DIGEST_HEX || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                continue;
            }
            let key = StatKey {
                dev: dev as u64,
                ino: ino as u64,
                size: size as u64,
                mtime: (ms, mn),
                ctime: (cs, cn),
            };
            let Some(path) = unhex(path) else {
                continue;
            };
            entries.insert(key, (digest.to_string(), path));
        }
        Memo {
            file,
            entries,
            changed: false,
        }
    }

    /// The memo's digests of `files` when it holds every one for its current stat data.
    fn all_known<'a>(&'a self, files: &[(String, PathBuf)]) -> Option<Vec<&'a str>> {
        files
            .iter()
            .map(|(_, path)| {
                let m = std::fs::metadata(path).ok()?;
                self.entries.get(&StatKey::of(&m)).map(|(d, _)| d.as_str())
            })
            .collect()
    }

    /// The XXH3-128 of a file's content, from the memo when its stat data still match. A file
    /// changed within the last two seconds is hashed but not remembered: its mtime may not yet
    /// tell the next change apart.
    fn digest(&mut self, path: &Path) -> std::io::Result<String> {
        let m = std::fs::metadata(path)?;
        let key = StatKey::of(&m);
        if let Some((d, _)) = self.entries.get(&key) {
            return Ok(d.clone());
        }
        let d = content_digest(path)?;
        let settled = m
            .modified()
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() >= 2)
            && std::fs::metadata(path)
                .map(|m2| StatKey::of(&m2) == key)
                .unwrap_or(false);
        if settled {
            self.entries
                .insert(key, (d.clone(), path.as_os_str().as_bytes().to_vec()));
            self.changed = true;
        }
        Ok(d)
    }

    fn save(&self) {
        if !self.changed {
            return;
        }
        let mut text = String::new();
        for (k, (d, p)) in &self.entries {
            // Drop files that are gone or replaced, so the table stays the size of what is installed.
            let p = Path::new(std::ffi::OsStr::from_bytes(p));
            if std::fs::metadata(p).map(|m| StatKey::of(&m) == *k).unwrap_or(false) {
                text.push_str(&format!(
                    "{} {} {} {} {} {} {} {d} {}\n",
                    k.dev,
                    k.ino,
                    k.size,
                    k.mtime.0,
                    k.mtime.1,
                    k.ctime.0,
                    k.ctime.1,
                    hex(p.as_os_str().as_bytes())
                ));
            }
        }
        if let Err(e) = crate::atomic::write(&self.file, text.as_bytes()) {
            log::debug!(target: "identity", "cannot save {}: {e}", self.file.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drivers_compiler_and_linker_programs_are_remembered_apart() {
        let d = std::env::temp_dir().join(format!("cachepot-progs-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let driver = d.join("gcc");
        std::fs::write(&driver, "x").unwrap();
        let list = |role: &str| vec![(role.to_string(), d.join(role))];
        let cc1 = programs(&d, &driver, || Ok(list("cc1"))).unwrap();
        let ld = programs_for(&d, "linker", &driver, || Ok(list("ld"))).unwrap();
        assert_eq!((cc1, ld), (list("cc1"), list("ld")));
        // Remembered: the probes are not asked again.
        let again = programs(&d, &driver, || panic!("probed again")).unwrap();
        let ld_again = programs_for(&d, "linker", &driver, || panic!("probed again")).unwrap();
        assert_eq!((again, ld_again), (list("cc1"), list("ld")));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn same_bytes_same_identity_any_path_or_mtime() {
        let dir = std::env::temp_dir().join(format!("cachepot-identity-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("a")).unwrap();
        std::fs::create_dir_all(dir.join("b")).unwrap();
        std::fs::write(dir.join("a/cc1"), b"program one").unwrap();
        std::fs::write(dir.join("b/cc1"), b"program one").unwrap();
        let id = |p: &str| of_files(&dir, &CompilerCheck::Content, &[("cc1".into(), dir.join(p))]).unwrap();
        assert_eq!(id("a/cc1"), id("b/cc1"));
        std::fs::write(dir.join("b/cc1"), b"program two").unwrap();
        assert_ne!(id("a/cc1"), id("b/cc1"));
        // mtime mode tells the two installs apart.
        let mt = |p: &str| of_files(&dir, &CompilerCheck::Mtime, &[("cc1".into(), dir.join(p))]).unwrap();
        assert_ne!(mt("a/cc1"), mt("b/cc1"));
        assert_eq!(
            of_files(&dir, &CompilerCheck::String("ci-1".into()), &[]).unwrap(),
            "string:ci-1"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parses_the_setting() {
        assert_eq!(CompilerCheck::parse("content"), Some(CompilerCheck::Content));
        assert_eq!(CompilerCheck::parse("mtime"), Some(CompilerCheck::Mtime));
        assert_eq!(
            CompilerCheck::parse("string:x"),
            Some(CompilerCheck::String("x".into()))
        );
        assert_eq!(CompilerCheck::parse("string:"), None);
        assert_eq!(CompilerCheck::parse("size"), None);
    }
}
