//! The local disk store. Layout: `<dir>/<k0>/<k1>/<key>`, where k0 and k1 are the key's first two
//! hex digits. Each of the 16 top-level buckets keeps its own size counter (`<dir>/<k0>/size`,
//! "files bytes") under a lock file, so the total size is known without scanning the cache, and
//! eviction (least recently used first, by mtime, which a hit refreshes) scans only the one bucket
//! that went over its share of the limit, as ccache does.
//!
//! Every entry is written to a temporary file beside its final name and renamed into place, so a
//! reader sees either the old entry, the new one, or none; readers verify entries anyway.
//!
//! An entry larger than its bucket's share is still kept when it fits the whole limit: the other
//! buckets make room for it (one bucket lock at a time). One larger than the whole limit is
//! refused (`StoreError::TooLarge`, counted). Something that is not ours where a file of ours
//! belongs (a directory named like an entry or a counter) is removed and the cache carries on.

use super::{Storage, StoreError};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const BUCKETS: u64 = 16;
/// Eviction cleans a bucket down to this fraction of its share, so it does not run on every put.
const EVICT_TO: f64 = 0.9;
/// Temporary files older than this were left by a killed process and are removed by eviction.
const STALE_TMP: Duration = Duration::from_secs(3600);

pub struct DiskStore {
    root: PathBuf,
    max_size: u64,
}

/// The local level as the caller sees it: large compressed bodies are kept uncompressed
/// (`entry::uncompressed_form`), so a hit of a large rlib copies bytes instead of decompressing
/// them; the remote still gets (and sends) them compressed. It wraps the trust level, so a signed
/// local object is signed in the form it is kept in.
pub struct Uncompressed(pub Box<dyn Storage>);

impl Storage for Uncompressed {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(key)
    }
    fn get_entry(&self, key: &str) -> Result<Option<super::Found>, StoreError> {
        self.0.get_entry(key)
    }
    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        match crate::entry::uncompressed_form(bytes) {
            Some(kept) => self.0.put(key, &kept),
            None => self.0.put(key, bytes),
        }
    }
    fn remove(&self, key: &str) -> Result<(), StoreError> {
        self.0.remove(key)
    }
    fn describe(&self) -> String {
        self.0.describe()
    }
    fn take_counters(&self) -> Vec<&'static str> {
        self.0.take_counters()
    }
    fn prepare(&self) {
        self.0.prepare()
    }
    fn accepts_writes(&self) -> bool {
        self.0.accepts_writes()
    }
    fn wants_large_compressed(&self) -> bool {
        false
    }
}

/// What one bucket holds, from its counter file.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub files: u64,
    pub bytes: u64,
}

impl DiskStore {
    /// The largest entry file the cache takes or reads: the size limit, within cachepot's own bound.
    fn entry_limit(&self) -> u64 {
        self.max_size.min(crate::limits::ENTRY_FILE)
    }

    /// The entry's file, open, checked to be a file no larger than the cache may hold, its mtime
    /// refreshed (eviction removes the least recently *used* entries first); with its length and
    /// its path.
    fn open_entry(&self, key: &str) -> Result<Option<(File, u64, PathBuf)>, StoreError> {
        let path = self.path_of(key)?;
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::Read(format!("{}: {e}", path.display()))),
        };
        let meta = f
            .metadata()
            .map_err(|e| StoreError::Read(format!("{}: {e}", path.display())))?;
        if !meta.is_file() {
            let _ = remove_not_ours(&path);
            return Err(StoreError::Read(format!("{} is not a file; removed", path.display())));
        }
        // An entry larger than the cache may hold (or than cachepot reads whole) is not ours.
        if meta.len() > self.entry_limit() {
            return Err(StoreError::Read(format!(
                "{} is larger than the cache limit",
                path.display()
            )));
        }
        let _ = f.set_modified(SystemTime::now());
        Ok(Some((f, meta.len(), path)))
    }

    pub fn new(root: &Path, max_size: u64) -> DiskStore {
        DiskStore {
            root: root.to_path_buf(),
            max_size,
        }
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, StoreError> {
        if !valid_key(key) {
            return Err(StoreError::Write(format!("invalid cache key {key:?}")));
        }
        Ok(self.root.join(&key[0..1]).join(&key[1..2]).join(key))
    }

    /// Entries and bytes in the whole cache, from the bucket counters (no scan).
    pub fn usage(&self) -> Usage {
        let mut total = Usage::default();
        for b in 0..BUCKETS {
            let u = read_counter(&self.bucket_dir(b)).unwrap_or_default();
            total.files += u.files;
            total.bytes += u.bytes;
        }
        total
    }

    /// Remove every entry (statistics are kept). A cache dir that is not a directory is an error.
    pub fn clear(&self) -> std::io::Result<()> {
        if !check_cache_dir(&self.root)? {
            return Ok(());
        }
        for b in 0..BUCKETS {
            let dir = self.bucket_dir(b);
            if !dir.exists() {
                continue;
            }
            let lock = BucketLock::acquire(&dir)?;
            for sub in fs::read_dir(&dir)? {
                let sub = sub?;
                if sub.file_type()?.is_dir() {
                    fs::remove_dir_all(sub.path())?;
                }
            }
            lock.write(Usage::default())?;
        }
        Ok(())
    }

    /// `--cleanup` and `--evict-older-than`: in every bucket, remove the entries not used within
    /// `max_age` (when given), then trim the bucket under its share of the limit as a put would;
    /// counters are rewritten from the scan. Returns what the cache held before and after.
    pub fn cleanup(&self, max_age: Option<Duration>) -> std::io::Result<(Usage, Usage)> {
        let before = self.usage();
        let cutoff = max_age.and_then(|age| SystemTime::now().checked_sub(age));
        for b in 0..BUCKETS {
            let dir = self.bucket_dir(b);
            if !dir.exists() {
                continue;
            }
            let lock = BucketLock::acquire(&dir)?;
            if let Some(cutoff) = cutoff {
                for sub in fs::read_dir(&dir)? {
                    let sub = sub?;
                    if !sub.file_type()?.is_dir() {
                        continue;
                    }
                    for f in fs::read_dir(sub.path())?.flatten() {
                        let old = f.metadata().and_then(|m| m.modified()).is_ok_and(|t| t < cutoff);
                        if old && !f.file_name().to_string_lossy().starts_with(".tmp") {
                            let _ = fs::remove_file(f.path());
                        }
                    }
                }
            }
            self.evict(&dir, &lock, None)?;
        }
        Ok((before, self.usage()))
    }

    fn bucket_dir(&self, bucket: u64) -> PathBuf {
        self.root.join(format!("{bucket:x}"))
    }

    fn bucket_limit(&self) -> u64 {
        self.max_size / BUCKETS
    }

    /// Scan one bucket: remove stale temporary files, then the least recently used entries until the
    /// bucket is under `EVICT_TO` of its share; rewrite its counter from what the scan saw.
    fn evict(&self, dir: &Path, lock: &BucketLock, keep: Option<&Path>) -> std::io::Result<Usage> {
        let target = (self.bucket_limit() as f64 * EVICT_TO) as u64;
        self.evict_to(dir, lock, target, keep)
    }

    /// Remove least recently used entries of one bucket (never `keep`, the entry just put) until
    /// it holds at most `target` bytes; rewrite its counter from what the scan saw.
    fn evict_to(&self, dir: &Path, lock: &BucketLock, target: u64, keep: Option<&Path>) -> std::io::Result<Usage> {
        let mut files = Vec::new();
        let now = SystemTime::now();
        for sub in fs::read_dir(dir)? {
            let sub = sub?;
            if !sub.file_type()?.is_dir() {
                continue;
            }
            for f in fs::read_dir(sub.path())? {
                let f = f?;
                let Ok(meta) = f.metadata() else { continue };
                if meta.is_dir() {
                    // Not ours (entries are files): it would make the key unusable for ever.
                    log::warn!(target: "disk", "removing the directory {} found where an entry belongs", f.path().display());
                    let _ = fs::remove_dir_all(f.path());
                    continue;
                }
                let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                if f.file_name().to_string_lossy().starts_with(".tmp") {
                    if now.duration_since(mtime).unwrap_or_default() > STALE_TMP {
                        let _ = fs::remove_file(f.path());
                    }
                    continue;
                }
                files.push((mtime, disk_size(meta.len()), f.path()));
            }
        }
        files.sort();
        let mut usage = Usage {
            files: files.len() as u64,
            bytes: files.iter().map(|f| f.1).sum(),
        };
        for (_, size, path) in &files {
            if usage.bytes <= target {
                break;
            }
            if keep == Some(path.as_path()) {
                continue;
            }
            if fs::remove_file(path).is_ok() {
                usage.files -= 1;
                usage.bytes -= size;
                log::debug!(target: "disk", "evicted {}", path.display());
            }
        }
        lock.write(usage)?;
        Ok(usage)
    }

    /// After an entry larger than its bucket's share was kept: evict from the other buckets, one
    /// lock at a time (never two, so no two processes can deadlock), until the total fits.
    fn trim_total(&self, skip: u64) -> std::io::Result<()> {
        let mut total = self.usage().bytes;
        for b in (1..BUCKETS).map(|i| (skip + i) % BUCKETS) {
            if total <= self.max_size {
                break;
            }
            let dir = self.bucket_dir(b);
            if !dir.is_dir() {
                continue;
            }
            let lock = BucketLock::acquire(&dir)?;
            let before = read_counter(&dir).unwrap_or_default().bytes;
            let after = self.evict_to(&dir, &lock, before.saturating_sub(total - self.max_size), None)?;
            total = total.saturating_sub(before.saturating_sub(after.bytes));
        }
        Ok(())
    }
}

/// Whether the cache dir exists (`Ok(false)`: nothing to do), or an error when it is not a
/// directory — `--clear-cache` must not report success on a regular file.
pub fn check_cache_dir(root: &Path) -> std::io::Result<bool> {
    match fs::metadata(root) {
        Ok(m) if m.is_dir() => Ok(true),
        Ok(_) => Err(std::io::Error::new(
            ErrorKind::NotADirectory,
            format!(
                "{} is not a directory; point CACHEPOT_DIR at a directory",
                root.display()
            ),
        )),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

impl Storage for DiskStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let Some((f, len, path)) = self.open_entry(key)? else {
            return Ok(None);
        };
        let max = self.entry_limit();
        let mut buf = Vec::with_capacity(len as usize);
        (&f).take(max + 1)
            .read_to_end(&mut buf)
            .map_err(|e| StoreError::Read(format!("{}: {e}", path.display())))?;
        if buf.len() as u64 > max {
            return Err(StoreError::Read(format!(
                "{} is larger than the cache limit",
                path.display()
            )));
        }
        Ok(Some(buf))
    }

    fn get_entry(&self, key: &str) -> Result<Option<super::Found>, StoreError> {
        // The reader stops at the entry's own length (entry::stream), so the size bound of `get`
        // holds for what it reads; a file that grew past it is refused here by its size.
        Ok(self.open_entry(key)?.map(|(f, len, _)| super::Found::File(f, len)))
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        if disk_size(bytes.len() as u64) > self.entry_limit() {
            return Err(StoreError::TooLarge(format!(
                "{key}: {} bytes do not fit the cache size limit of {} bytes",
                bytes.len(),
                self.max_size
            )));
        }
        let werr = |what: &Path, e: std::io::Error| StoreError::Write(format!("{}: {e}", what.display()));
        let parent = path.parent().expect("entry path has a parent");
        fs::create_dir_all(parent).map_err(|e| werr(parent, e))?;
        let tmp = parent.join(format!(".tmp.{key}.{}.{}", std::process::id(), nanos()));
        let write = || -> std::io::Result<()> {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(bytes)?;
            Ok(())
        };
        if let Err(e) = write() {
            let _ = fs::remove_file(&tmp);
            return Err(werr(&tmp, e));
        }
        let bucket = self.root.join(&key[0..1]);
        let lock = BucketLock::acquire(&bucket).map_err(|e| werr(&bucket, e))?;
        let old = match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {
                let _ = remove_not_ours(&path);
                None
            }
            Ok(m) => Some(disk_size(m.len())),
            Err(_) => None,
        };
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(werr(&path, e));
        }
        let mut usage = match read_counter(&bucket) {
            Some(u) => u,
            None => {
                // A missing or damaged counter: recount this bucket by scanning it.
                Usage {
                    files: 0,
                    bytes: u64::MAX,
                }
            }
        };
        usage.bytes = usage
            .bytes
            .saturating_sub(old.unwrap_or(0))
            .saturating_add(disk_size(bytes.len() as u64));
        usage.files += u64::from(old.is_none());
        if usage.bytes > self.bucket_limit() {
            let after = self.evict(&bucket, &lock, Some(&path)).map_err(|e| werr(&bucket, e))?;
            drop(lock);
            if after.bytes > self.bucket_limit() {
                // Kept although over this bucket's share: the others make room.
                let b = u64::from_str_radix(&key[0..1], 16).unwrap_or(0);
                self.trim_total(b).map_err(|e| werr(&self.root, e))?;
            }
        } else {
            lock.write(usage).map_err(|e| werr(&bucket, e))?;
        }
        Ok(())
    }

    fn remove(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        let bucket = self.root.join(&key[0..1]);
        let lock = BucketLock::acquire(&bucket).map_err(|e| StoreError::Write(format!("{}: {e}", bucket.display())))?;
        if let Ok(meta) = fs::symlink_metadata(&path)
            && remove_not_ours(&path).is_ok()
            && let Some(mut u) = read_counter(&bucket)
        {
            u.files = u.files.saturating_sub(1);
            u.bytes = u.bytes.saturating_sub(disk_size(meta.len()));
            let _ = lock.write(u);
        }
        Ok(())
    }

    fn describe(&self) -> String {
        format!("local disk {}", self.root.display())
    }
}

/// Keys are file names: at least two leading hex digits (the fan-out), then [0-9a-z.-].
fn valid_key(key: &str) -> bool {
    key.len() >= 3
        && key.as_bytes()[..2]
            .iter()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && key
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'.' || b == b'-')
}

/// Bytes a file of `len` bytes occupies, counted in 4 KiB blocks as a file system does.
fn disk_size(len: u64) -> u64 {
    len.div_ceil(4096) * 4096
}

fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

/// Remove a file, or a directory found where a file of ours belongs.
fn remove_not_ours(path: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        _ => fs::remove_file(path),
    }
}

fn read_counter(bucket: &Path) -> Option<Usage> {
    let text = fs::read_to_string(bucket.join("size")).ok()?;
    let mut it = text.split_whitespace().map(|n| n.parse::<u64>());
    match (it.next(), it.next()) {
        (Some(Ok(files)), Some(Ok(bytes))) => Some(Usage { files, bytes }),
        _ => None,
    }
}

/// An exclusive lock on one bucket's counter; dropped (or the process dying) releases it.
struct BucketLock {
    file: File,
}

impl BucketLock {
    fn acquire(bucket: &Path) -> std::io::Result<BucketLock> {
        fs::create_dir_all(bucket)?;
        let file = open_control_file(&bucket.join("size"), true)?;
        file.lock()?;
        Ok(BucketLock { file })
    }

    /// Rewrite the counter in place; safe because every writer holds the lock.
    fn write(&self, u: Usage) -> std::io::Result<()> {
        let mut f = &self.file;
        let text = format!("{} {}\n", u.files, u.bytes);
        f.seek(SeekFrom::Start(0))?;
        f.write_all(text.as_bytes())?;
        self.file.set_len(text.len() as u64)
    }
}

/// Open (creating) one of the cache's control files — a counter, a lock — repairing the damage
/// that would otherwise stop every later call: a directory in its place is removed first.
pub fn open_control_file(path: &Path, read: bool) -> std::io::Result<File> {
    let open = || {
        OpenOptions::new()
            .read(read)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
    };
    match open() {
        Err(_) if fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) => {
            log::warn!(target: "disk", "removing the directory {} found where a control file belongs", path.display());
            // Another process may be removing it at the same moment: whoever wins, open again.
            let _ = fs::remove_dir_all(path);
            open()
        }
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cachepot-disk-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    fn key(i: u32) -> String {
        crate::key::sha256_hex(&i.to_le_bytes())
    }

    #[test]
    fn put_get_remove() {
        let d = tmpdir("pgr");
        let s = DiskStore::new(&d, 1 << 30);
        assert_eq!(s.get(&key(1)).unwrap(), None);
        s.put(&key(1), b"hello").unwrap();
        assert_eq!(s.get(&key(1)).unwrap().as_deref(), Some(&b"hello"[..]));
        s.put(&key(1), b"again").unwrap();
        assert_eq!(s.usage(), Usage { files: 1, bytes: 4096 });
        s.remove(&key(1)).unwrap();
        assert_eq!(s.get(&key(1)).unwrap(), None);
        assert_eq!(s.usage(), Usage::default());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_large_entry_is_kept_uncompressed_and_streamed_from_its_file() {
        let d = tmpdir("stream");
        let s = Uncompressed(Box::new(DiskStore::new(&d, 1 << 30)));
        let entry = crate::entry::Entry {
            files: vec![("rlib".into(), b"0123456789abcdef".repeat(1 << 17))],
            ..Default::default()
        };
        let bytes = entry.encode();
        s.put(&key(1), &bytes).unwrap();
        let kept = s.get(&key(1)).unwrap().unwrap();
        assert!(
            kept.len() > 2 << 20 && bytes.len() < 1 << 20,
            "kept {} bytes",
            kept.len()
        );
        assert_eq!(crate::entry::Entry::decode(&kept).unwrap(), entry);
        let stream = |s: &Uncompressed| {
            let Some(super::super::Found::File(f, _)) = s.get_entry(&key(1)).unwrap() else {
                panic!("the local disk gives its file");
            };
            crate::entry::stream(std::io::BufReader::new(f), |_| Ok(Some(std::io::sink()))).map(|r| r.roles.len())
        };
        assert_eq!(stream(&s).unwrap(), 1, "one file section, verified");
        // Cut short while kept: the stream says so, nothing is taken for the entry.
        let path = d.join(&key(1)[..1]).join(&key(1)[1..2]).join(key(1));
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(kept.len() as u64 / 2).unwrap();
        assert!(stream(&s).is_err());
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn eviction_keeps_size_under_limit_and_keeps_recent() {
        let d = tmpdir("evict");
        // 16 buckets x 8 KiB: each bucket holds at most two 4 KiB entries.
        let s = DiskStore::new(&d, 16 * 8192);
        for i in 0..200 {
            s.put(&key(i), &[0u8; 100]).unwrap();
        }
        assert!(s.usage().bytes <= 16 * 8192, "{:?}", s.usage());
        let last = key(199);
        assert!(s.get(&last).unwrap().is_some(), "most recent entry was evicted");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn large_entries_are_kept_when_they_fit_the_limit() {
        let d = tmpdir("large");
        // 256 KiB: a bucket's share is 16 KiB; a 100 KiB entry is over it but fits the limit.
        let s = DiskStore::new(&d, 256 << 10);
        for i in 0..40 {
            s.put(&key(i), &[1u8; 4000]).unwrap();
        }
        let big = key(1000);
        s.put(&big, &vec![7u8; 100 << 10]).unwrap();
        assert_eq!(s.get(&big).unwrap().map(|b| b.len()), Some(100 << 10));
        assert!(s.usage().bytes <= 256 << 10, "{:?}", s.usage());
        // Larger than the whole limit: refused, and said so.
        let e = s.put(&key(1001), &vec![7u8; 300 << 10]).unwrap_err();
        assert_eq!(e.fault(), crate::stats::Fault::EntryTooLarge);
        assert_eq!(s.get(&key(1001)).unwrap(), None);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn directories_where_files_belong_are_repaired() {
        let d = tmpdir("dirs");
        let s = DiskStore::new(&d, 1 << 30);
        let k = key(5);
        s.put(&k, b"x").unwrap();
        // The bucket's counter and the entry itself replaced by directories.
        let bucket = d.join(&k[0..1]);
        fs::remove_file(bucket.join("size")).unwrap();
        fs::create_dir_all(bucket.join("size/sub")).unwrap();
        let entry = bucket.join(&k[1..2]).join(&k);
        fs::remove_file(&entry).unwrap();
        fs::create_dir_all(entry.join("sub")).unwrap();
        assert!(s.get(&k).is_err());
        assert!(!entry.exists(), "the directory in place of an entry stays");
        fs::create_dir_all(entry.join("sub")).unwrap();
        s.put(&k, b"y").unwrap();
        assert_eq!(s.get(&k).unwrap().as_deref(), Some(&b"y"[..]));
        fs::remove_file(bucket.join("size")).unwrap();
        fs::create_dir_all(bucket.join("size/sub")).unwrap();
        s.remove(&k).unwrap();
        assert_eq!(s.get(&k).unwrap(), None);
        fs::remove_file(bucket.join("size")).unwrap();
        fs::create_dir_all(bucket.join("size/sub")).unwrap();
        s.clear().unwrap();
        fs::remove_dir_all(&d).unwrap();
        // A regular file as the cache dir: clear says so instead of "cleared".
        fs::write(&d, b"").unwrap();
        assert!(DiskStore::new(&d, 1 << 30).clear().is_err());
        fs::remove_file(&d).unwrap();
    }

    #[test]
    fn rejects_keys_that_are_not_file_names() {
        let s = DiskStore::new(Path::new("/nonexistent"), 1);
        assert!(s.put("../etc", b"x").is_err());
        assert!(s.put("ab/cd", b"x").is_err());
    }
}
